//! Unix (tested on Linux) implementation of the platform layer.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

/// Directory of shared-memory channels: `$MMF_SHM_DIR` if set (tests point it at a small tmpfs,
/// containers at a volume), else `/dev/shm`.
pub(crate) fn shm_dir() -> PathBuf {
    match std::env::var_os("MMF_SHM_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from("/dev/shm"),
    }
}

/// Whether two files' metadata describe the same file (device and inode).
pub(crate) fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

/// Sets `file`'s access and modification times to now (`futimens` with a null `times`). Only
/// this form (or both times `UTIME_NOW`) needs no more than write access; any other, even
/// `UTIME_OMIT` for one of the two, needs the file's owner.
pub(crate) fn touch(file: &File) -> io::Result<()> {
    // SAFETY: a null `times` means "both to now"; `futimens` reads nothing through it. The
    // descriptor is `file`'s, open for the call.
    let rc = unsafe { libc::futimens(file.as_raw_fd(), std::ptr::null()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Writes back the whole file system that holds `file` (`syncfs`), for a directory entry whose
/// directory this process may not open to `fsync` (write and search permission, no read): the
/// entry is written back with everything else there. Elsewhere than Linux, `sync` (every file
/// system; it reports nothing).
#[cfg(target_os = "linux")]
pub(crate) fn sync_file_system(file: &File) -> io::Result<()> {
    // SAFETY: `syncfs` takes a descriptor, `file`'s, open for the call, and touches no memory of
    // ours.
    if unsafe { libc::syncfs(file.as_raw_fd()) } == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        // Refused by a seccomp filter (`EPERM`, or `ENOSYS` for a call it does not know): every
        // file system then, as elsewhere than Linux. `--sync` failed there after publishing.
        // (`sync(2)` waits for every file system, a hung network mount's too.) A filter that
        // refuses `sync` as well (systemd's `@sync` group holds both) leaves the first error.
        Some(libc::EPERM | libc::ENOSYS) => {
            // SAFETY: `sync` takes nothing and touches no memory of ours; made as a system call
            // to see a filter's refusal, which libc's `sync` hides.
            if unsafe { libc::syscall(libc::SYS_sync) } == 0 {
                Ok(())
            } else {
                Err(e)
            }
        }
        _ => Err(e),
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn sync_file_system(_file: &File) -> io::Result<()> {
    // SAFETY: `sync` takes nothing and cannot fail.
    unsafe { libc::sync() };
    Ok(())
}

/// Renames `from` to `to` unless `to` exists, in one step, whatever the name `from` leads to
/// at that instant (a link itself, not its target): `renameat2` with `RENAME_NOREPLACE` on
/// Linux, `renamex_np` with `RENAME_EXCL` on macOS (built, not run here).
/// `ErrorKind::Unsupported` where the kernel or the file system has no such rename.
#[cfg(any(target_os = "linux", target_os = "macos"))]
pub(crate) fn rename_noreplace(from: &std::path::Path, to: &std::path::Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let from = std::ffi::CString::new(from.as_os_str().as_bytes())?;
    let to = std::ffi::CString::new(to.as_os_str().as_bytes())?;
    // SAFETY: both paths are NUL-terminated strings that live across the call, which only
    // reads them; `AT_FDCWD` makes them plain paths.
    #[cfg(target_os = "linux")]
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    // SAFETY: both paths are NUL-terminated strings that live across the call, which only
    // reads them.
    #[cfg(target_os = "macos")]
    let rc = unsafe { libc::renamex_np(from.as_ptr(), to.as_ptr(), libc::RENAME_EXCL) };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        // No `renameat2` (Linux before 3.15), or a file system without the flag (`EINVAL` on
        // Linux, `ENOTSUP` on macOS).
        Some(libc::ENOSYS | libc::EINVAL | libc::ENOTSUP) => Err(io::ErrorKind::Unsupported.into()),
        _ => Err(e),
    }
}

/// No rename that refuses an existing target in one step here: `Unsupported`.
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
pub(crate) fn rename_noreplace(_from: &std::path::Path, _to: &std::path::Path) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Extra `open(2)` flags: never follow a symlink planted under a channel's name.
pub(crate) const NOFOLLOW: i32 = libc::O_NOFOLLOW;

/// `path` resolved without opening what it leads to (`O_PATH`, with `flags` such as
/// [`NOFOLLOW`]): a handle good for `fstat` and for [`reopen`], on which no device's or FIFO's
/// `open` has run. `None` where the system has no such open.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn open_path_only(path: &std::path::Path, flags: i32) -> Option<io::Result<File>> {
    use std::os::unix::fs::OpenOptionsExt;
    Some(
        std::fs::OpenOptions::new()
            .read(true) // O_RDONLY, which O_PATH ignores with every flag but these
            .custom_flags(libc::O_PATH | libc::O_CLOEXEC | flags)
            .open(path),
    )
}

/// No `O_PATH` here: `None`.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn open_path_only(_path: &std::path::Path, _flags: i32) -> Option<io::Result<File>> {
    None
}

/// The file that `handle` (from [`open_path_only`]) refers to, opened with `options` through
/// `/proc/self/fd`: that names the open handle, not the path again, so what a path now leads to
/// (a link swapped in meanwhile) does not matter. `None` where `/proc` is not mounted (a
/// container may lack it); `options` must not hold `O_NOFOLLOW` (the entry is a link).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn reopen(handle: &File, options: &std::fs::OpenOptions) -> Option<io::Result<File>> {
    match options.open(format!("/proc/self/fd/{}", handle.as_raw_fd())) {
        // The entry exists for as long as the handle is open, even for a file since unlinked.
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        opened => Some(opened),
    }
}

/// Not reached where [`open_path_only`] gives `None`.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn reopen(_handle: &File, _options: &std::fs::OpenOptions) -> Option<io::Result<File>> {
    None
}

/// Gives `file` `len` bytes of real storage now, so that a full `/dev/shm` is an `ENOSPC` here and
/// not a `SIGBUS` on first touch later (`ftruncate` alone would make a sparse file). Not on
/// macOS (no `posix_fallocate`: a sized file there), nor where writes reserve no blocks for
/// later ones (ZFS, which answers `fallocate` with `EINVAL`: written over, still no promise).
pub(crate) fn allocate(file: &File, len: u64) -> io::Result<()> {
    libc::off_t::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "size too large"))?;
    #[cfg(target_os = "linux")]
    no_copy_on_write(file);
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    {
        // Asked for in parts, each repeated where a signal interrupts it (`EINTR`): a tmpfs
        // before Linux 6.11 (commit ca86a5d2f9fe, 2024) gives up an allocation when a signal
        // with a handler is pending, undoing what that call took (libqb, ODP and dqlite met it
        // on `/dev/shm`), and glibc's `posix_fallocate` does not retry. Creation failed so
        // ("allocating: Interrupted system call") in a process with a handler (SIGCHLD after a
        // child exits, a profiler's SIGPROF). A retry of the whole size could lose every race
        // against a periodic signal, so a part interrupted is halved, down to a MiB, and the
        // parts already allocated stay; a MiB interrupted (200-260 us on an idle tmpfs here,
        // which signals every 200 us starved in a review's emulation of such a kernel) is
        // asked for once more with this thread's signals blocked, then delivered.
        let mut at = 0;
        let mut part = ALLOCATE_PART;
        while at < len {
            let n = part.min(len - at);
            // Both fit an `off_t`: `at + n <= len`, which did (above).
            let (offset, size) = (at as libc::off_t, n as libc::off_t);
            // SAFETY: `posix_fallocate` only reads its integer arguments; the fd is `file`'s,
            // which the closure borrows, so it stays open for each of its calls (one, or two
            // where the first was interrupted).
            let fallocate = || unsafe { libc::posix_fallocate(file.as_raw_fd(), offset, size) };
            let rc = match fallocate() {
                libc::EINTR if n <= ALLOCATE_PART_MIN => with_signals_blocked(fallocate),
                rc => rc,
            };
            match rc {
                0 => at += n,
                // Whole MiBs: parts end at page boundaries. (An `EINTR` with the signals
                // blocked is no signal's: an error, below.)
                libc::EINTR if n > ALLOCATE_PART_MIN => {
                    part = ((n / 2) & !(ALLOCATE_PART_MIN - 1)).max(ALLOCATE_PART_MIN);
                }
                err => return allocate_failed(file, len, err),
            }
        }
        Ok(())
    }
    // No `posix_fallocate` here (macOS): a sized file.
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    file.set_len(len)
}

/// `f`'s answer, called with every signal this thread may block blocked (the signals that
/// come meanwhile are delivered once the mask is back).
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn with_signals_blocked(f: impl FnOnce() -> libc::c_int) -> libc::c_int {
    // SAFETY: all-zero `sigset_t`s are valid values of this plain C type, filled or written
    // by the calls below before they are read.
    let (mut all, mut before): (libc::sigset_t, libc::sigset_t) =
        unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
    // SAFETY: `all` is a valid, writable set; `pthread_sigmask` reads `all` and writes
    // `before`, both live across the call (SIGKILL and SIGSTOP stay unblocked, as ever).
    let blocked = unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut before) == 0
    };
    let rc = f();
    if blocked {
        // SAFETY: puts back the mask read above, a valid set that lives across the call.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &before, std::ptr::null_mut()) };
    }
    rc
}

/// The most `allocate` asks for in one call (a part of a larger channel), and the least it
/// halves a part to where signals keep interrupting the call.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
const ALLOCATE_PART: u64 = 1 << 30;
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
const ALLOCATE_PART_MIN: u64 = 1 << 20;

/// What `allocate` does where `posix_fallocate` answered `err` (not `EINTR`) for some part of
/// `file`'s first `len` bytes.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn allocate_failed(file: &File, len: u64, err: i32) -> io::Result<()> {
    match err {
        // File systems without fallocate (`EOPNOTSUPP`, `EINVAL`), and a `fallocate` that a
        // seccomp filter refuses (`EPERM`, or `ENOSYS` as for a call it does not know; a
        // sandbox's: every channel's creation failed there, "allocating: Function not
        // implemented"). The file is new, regular, and opened for writing by this process:
        // no other `EPERM` applies. Sized, then written over, so that a full file
        // system is still an `ENOSPC` here: a sized file alone is sparse, and a publish's
        // first touch of a page no block backs is a `SIGBUS` (strace refusing `fallocate`
        // made `mmf new --force` beside a full tmpfs succeed so).
        // A part already allocated is written over again: zeros, in a new file.
        libc::EOPNOTSUPP | libc::EINVAL | libc::ENOSYS | libc::EPERM => {
            file.set_len(len)?;
            write_every_block(file, len)
        }
        err => Err(io::Error::from_raw_os_error(err)),
    }
}

/// Backs each block of the first `len` bytes of `file`, all zeros (a file just sized), with
/// storage, by writing zeros over them, a MiB a call (glibc's `posix_fallocate` writes a byte
/// into each block where a file system has no `fallocate`: a call per page, which made a 256 MiB
/// channel's creation take 0.83-0.93 s on a tmpfs here, against 0.66-0.71 s so and 0.36-0.46 s
/// with `fallocate`). The errors are the writes' (`ENOSPC` where the file system is full).
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn write_every_block(file: &File, len: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let zeros = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < len {
        let n = usize::try_from(len - at).map_or(zeros.len(), |left| left.min(zeros.len()));
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// On btrfs, turns copy-on-write off for `file`, which must still be empty (btrfs takes the
/// flag, `chattr +C`'s, only then). A copy-on-write file takes new blocks at every write, so
/// the blocks `posix_fallocate` reserved back only the first write of each page: on a full file
/// system a later store through the mapping finds none and raises `SIGBUS` (a review saw every
/// publish into a channel on a full btrfs fail so, and a process without mmf's handler killed).
/// Without copy-on-write btrfs writes a page in place, into the blocks allocated for it, as
/// ext4 and tmpfs do; a channel's file gives up btrfs's data checksums and compression, which
/// a mapping that is rewritten in place cannot use anyway. Pages shared with a reflink copy or a
/// snapshot are still copied at their first write. Best effort: another file system, or a
/// refusal, leaves the file as it is.
#[cfg(target_os = "linux")]
fn no_copy_on_write(file: &File) {
    /// `FS_NOCOW_FL` of `<linux/fs.h>` (not in `libc`).
    const FS_NOCOW_FL: libc::c_int = 0x0080_0000;
    let fd = file.as_raw_fd();
    // SAFETY: an all-zero `statfs` is a valid value of this plain C struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open (owned by `file`) and `st` a valid, writable struct for the call.
    if unsafe { libc::fstatfs(fd, &mut st) } != 0 {
        return;
    }
    // `f_type` and the magic differ in type between C libraries: compared as i64.
    #[allow(clippy::unnecessary_cast)]
    if st.f_type as i64 != libc::BTRFS_SUPER_MAGIC as i64 {
        return;
    }
    let mut flags: libc::c_int = 0;
    // SAFETY: `FS_IOC_GETFLAGS` writes one `int` (the kernel's type for it, whatever the
    // request's encoding says) through the pointer, which points at `flags`.
    if unsafe { libc::ioctl(fd, libc::FS_IOC_GETFLAGS, &mut flags) } != 0 {
        return;
    }
    if flags & FS_NOCOW_FL == 0 {
        flags |= FS_NOCOW_FL;
        // SAFETY: `FS_IOC_SETFLAGS` reads one `int` through the pointer, which points at `flags`.
        let _ = unsafe { libc::ioctl(fd, libc::FS_IOC_SETFLAGS, &flags) };
    }
}

/// The attribute that makes the file at `path` refuse changes to root too, where it has one:
/// `"immutable"` (`chattr +i`: no write, removal, rename or link) or `"append-only"` (`chattr
/// +a`: no write but appending, no removal); `None` where it has neither, or that cannot be
/// told (no such file, a file system that does not report them, a kernel before 4.11, not
/// Linux with glibc: musl, which mmf does not build for, lacks `renameat2` anyway).
///
/// Asked with `statx`, which opens nothing: an open (for `FS_IOC_GETFLAGS`) of whatever a
/// swapped-in link led to, a device or a terminal, would reach its driver (the diff review's);
/// nor does it trigger an automount (`AT_NO_AUTOMOUNT`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn unchangeable(path: &std::path::Path) -> Option<&'static str> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: an all-zero `statx` is a valid value of this plain C struct.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path, `st` a valid, writable struct for the call, and
    // `AT_FDCWD` resolves a relative path from the working directory.
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_NO_AUTOMOUNT,
            libc::STATX_TYPE,
            &mut st,
        )
    };
    if rc != 0 {
        return None;
    }
    // Only the attributes the file system reports (`stx_attributes_mask`) mean anything.
    let attributes = st.stx_attributes & st.stx_attributes_mask;
    if attributes & libc::STATX_ATTR_IMMUTABLE as u64 != 0 {
        Some("immutable")
    } else if attributes & libc::STATX_ATTR_APPEND as u64 != 0 {
        Some("append-only")
    } else {
        None
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn unchangeable(_path: &std::path::Path) -> Option<&'static str> {
    None
}

/// The effective user id of this process.
pub(crate) fn euid() -> u32 {
    // SAFETY: `geteuid` takes nothing, cannot fail and has no memory-safety preconditions.
    unsafe { libc::geteuid() }
}

/// Forks seen since the first call of [`forks`]: every child that `fork` makes from then on
/// starts with its parent's count plus one ([`count_fork`]).
static FORKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The `pthread_atfork` child handler: one atomic add, which is async-signal-safe, as a handler
/// run in the child of a multithreaded process must be.
extern "C" fn count_fork() {
    FORKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// How many `fork`s made this process since the first call of this function in an ancestor
/// (or in itself): a process identity that, unlike the pid, a descendant never shares with the
/// process it was forked from, even where the pid of a process that has died comes back to a
/// descendant of its. `0` in the process that first called it. Callers compare pids as well,
/// for what this count cannot see: a fork that runs no `pthread_atfork` handlers (a raw
/// `clone`, glibc's `_Fork`), one made by another thread while the first call was registering
/// the handler, and a registration that failed (no memory).
pub(crate) fn forks() -> u64 {
    use std::sync::atomic::{AtomicBool, Ordering};
    // Not a `Once`: a fork while another thread was inside it would leave the child's copy
    // "running" for ever, and the child's first call waiting on a thread it does not have.
    static REGISTERED: AtomicBool = AtomicBool::new(false);
    // A load first: every poll of a `changed` future comes here, and a swap each time would be
    // a locked write to one line from every polling thread.
    if !REGISTERED.load(Ordering::Relaxed) && !REGISTERED.swap(true, Ordering::Relaxed) {
        // SAFETY: `count_fork` is an `extern "C" fn()` that lives as long as the program and
        // only does an atomic add (async-signal-safe); no handler is given for the other two
        // points. A failure (ENOMEM) registers nothing, which the doc above allows for.
        unsafe { libc::pthread_atfork(None, None, Some(count_fork)) };
    }
    FORKS.load(Ordering::Relaxed)
}

/// Whether a process with this pid exists (it may be a zombie, or belong to another user).
pub(crate) fn pid_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: `kill` with signal 0 sends nothing; it only checks that the pid exists and may be
    // signalled. It has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Whether process `pid` of this PID namespace holds the open-file-description lock on byte
/// `offset` of `file` through one of its open files: `/proc/PID/fdinfo/N` lists the locks each
/// open file holds (`lock: 1: OFDLCK ADVISORY READ -1 MAJ:MIN:INODE START END`). A kernel-held
/// token carries the pid its holder has in its own namespace, which here may be another
/// process or none (a container's, or a holder that forked without exec and died, whose child
/// now holds the lock): only this lock ties that pid to the holder. `None` where it cannot be
/// told: `/proc` absent or hiding others' processes (`hidepid`), another user's process, more
/// than 65,536 open files to look through.
pub(crate) fn pid_holds_lock(pid: u32, file: &File, offset: u64) -> Option<bool> {
    use std::os::unix::fs::MetadataExt;
    let inode = file.metadata().ok()?.ino();
    let fds = match std::fs::read_dir(format!("/proc/{pid}/fdinfo")) {
        Ok(fds) => fds,
        // No such process here, where `/proc` shows every process (init's entry is there).
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return std::fs::metadata("/proc/1/stat").is_ok().then_some(false);
        }
        Err(_) => return None,
    };
    let lock = format!(":{inode} {offset} ");
    for (n, fd) in fds.enumerate() {
        if n == 1 << 16 {
            return None;
        }
        let Ok(fd) = fd else { continue };
        // (A file closed meanwhile: gone, not the holder's.)
        let Ok(info) = std::fs::read_to_string(fd.path()) else {
            continue;
        };
        let held = info
            .lines()
            .any(|l| l.starts_with("lock:") && l.contains(" OFDLCK ") && l.contains(&lock));
        if held {
            return Some(true);
        }
    }
    Some(false)
}

/// The path `file` was opened by, as the kernel keeps it (`/proc/self/fd/N`), for messages.
pub(crate) fn path_of(file: &File) -> Option<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()
}

/// Whether process `pid` of this PID namespace is stopped (`SIGSTOP`, a debugger): state `T`
/// or `t` in `/proc/PID/stat`.
pub(crate) fn pid_stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // Field 3, after the command name, which is in parentheses and may hold anything.
        stat.rfind(')')
            .and_then(|end| stat[end + 1..].split_ascii_whitespace().next())
            .is_some_and(|state| state == "T" || state == "t")
    })
}

/// Whether some open file description holds a `flock` on the file of `meta`, by the kernel's
/// table of locks (`/proc/locks`, readable by every user), which names a file by its device and
/// inode: for a file this process may not open, to lock it and see. A waiter queued for a lock
/// (a line with `->`) holds none. `Err` where that table cannot be read (no `/proc`).
///
/// The kernel makes that table anew for each `read`, at most a page of it, resuming at the
/// *position* in its list of locks where the last `read` stopped: a lock dropped before that
/// position in between shifts the rest, and the line after the position is never shown. So
/// the table is read with a buffer that takes a page in one `read` (`std::fs::read_to_string`
/// starts with a 32-byte read, which split even a short table so: while other threads locked
/// and unlocked files, it missed a held lock one read in five). A table longer than a page is
/// still read in parts, which may skip a line: one not found so is read again, up to
/// [`LOCK_TABLE_READS`] times, before the answer is `false`; one read whole in a single `read`
/// is not.
#[cfg(target_os = "linux")]
pub(crate) fn flock_held(meta: &std::fs::Metadata) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let (major, minor) = (libc::major(meta.dev()), libc::minor(meta.dev()));
    let file = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    let mut table = Vec::new();
    for _ in 0..LOCK_TABLE_READS {
        let parts = read_lock_table(&mut table)?;
        // "1: FLOCK  ADVISORY  READ 14672 00:1b:66380 0 EOF"
        let held = table.split(|&b| b == b'\n').any(|line| {
            let mut fields = line
                .split(u8::is_ascii_whitespace)
                .filter(|f| !f.is_empty());
            fields.nth(1) == Some(b"FLOCK") && fields.nth(3) == Some(file.as_bytes())
        });
        if held || parts <= 1 {
            return Ok(held);
        }
    }
    Ok(false)
}

/// How many times [`flock_held`] reads a table of locks that takes more than one `read`
/// before it says a file is not held.
#[cfg(target_os = "linux")]
const LOCK_TABLE_READS: usize = 4;

/// Reads all of `/proc/locks` into `table` (cleared first), each `read` with room for more
/// than a page (see [`flock_held`]): how many `read`s brought lines.
#[cfg(target_os = "linux")]
fn read_lock_table(table: &mut Vec<u8>) -> io::Result<usize> {
    use std::io::Read;
    const ROOM: usize = 64 * 1024;
    let mut locks = File::open("/proc/locks")?;
    table.clear();
    let mut parts = 0;
    loop {
        let len = table.len();
        table.resize(len + ROOM, 0);
        match locks.read(&mut table[len..]) {
            Ok(0) => {
                table.truncate(len);
                return Ok(parts);
            }
            Ok(n) => {
                table.truncate(len + n);
                parts += 1;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => table.truncate(len),
            Err(e) => return Err(e),
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn flock_held(_meta: &std::fs::Metadata) -> io::Result<bool> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Identity of this process's PID namespace: the inode number of `/proc/self/ns/pid`, or `None`
/// where there is no such file (no `/proc` mounted, a kernel without PID namespaces).
#[cfg(target_os = "linux")]
pub(crate) fn pid_namespace() -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid").ok().map(|m| m.ino())
}

/// Systems without PID namespaces have one: every process is in it.
#[cfg(not(target_os = "linux"))]
pub(crate) fn pid_namespace() -> Option<u64> {
    Some(0)
}

/// Whether `/proc/PID/stat` start times read here are comparable with those other processes of
/// this PID namespace read: `/proc` must be this namespace's (in a container that did not mount
/// its own, `/proc/PID` is some other process; then `NSpid` lists more than one pid, and a
/// kernel without the line (before 4.1) cannot tell, so that counts as another's), and this
/// process must be in the initial time namespace (another one shifts every start time by its
/// offset, so a process in the initial one would read different numbers).
#[cfg(target_os = "linux")]
fn start_times_comparable() -> bool {
    const INITIAL_TIME_NS: u64 = 0xEFFF_FFFA;
    use std::os::unix::fs::MetadataExt;
    let own_proc = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .is_some_and(|pids| pids.split_ascii_whitespace().count() == 1)
    });
    let time_ns = std::fs::metadata("/proc/self/ns/time").map(|m| m.ino());
    own_proc && time_ns.map_or(true, |ino| ino == INITIAL_TIME_NS)
}

#[cfg(not(target_os = "linux"))]
fn start_times_comparable() -> bool {
    false
}

/// `fcntl` with an open-file-description lock request of `kind` on the byte at `offset`.
#[cfg(target_os = "linux")]
fn ofd_lock(
    file: &File,
    cmd: libc::c_int,
    kind: libc::c_short,
    offset: u64,
) -> io::Result<libc::flock> {
    let mut fl = libc::flock {
        l_type: kind,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: libc::off_t::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?,
        l_len: 1,
        l_pid: 0, // required for open-file-description locks
    };
    // SAFETY: `fcntl` with F_OFD_SETLK / F_OFD_GETLK reads (and for GETLK writes) the `flock`
    // we pass, which lives for the call; the descriptor is open for as long as `file` is.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), cmd, &mut fl as *mut libc::flock) };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(fl)
    }
}

/// Takes a shared open-file-description lock on the byte at `offset` of `file`, held until the
/// last descriptor of this open file description closes (when the process dies, at the latest).
#[cfg(target_os = "linux")]
pub(crate) fn lock_shared_byte(file: &File, offset: u64) -> io::Result<()> {
    ofd_lock(
        file,
        libc::F_OFD_SETLK,
        libc::F_RDLCK as libc::c_short,
        offset,
    )
    .map(drop)
}

/// Whether an open file description other than `file`'s holds a lock on the byte at `offset`,
/// and whether that lock is on exactly that byte (a token's liveness lock) or covers more.
#[cfg(target_os = "linux")]
pub(crate) fn byte_locked(file: &File, offset: u64) -> io::Result<super::ByteLock> {
    let fl = ofd_lock(
        file,
        libc::F_OFD_GETLK,
        libc::F_WRLCK as libc::c_short,
        offset,
    )?;
    Ok(if fl.l_type == libc::F_UNLCK as libc::c_short {
        super::ByteLock::Free
    } else if u64::try_from(fl.l_start) == Ok(offset)
        // A lock that reaches the largest offset is reported as running to the end (0).
        && (fl.l_len == 1 || (fl.l_len == 0 && offset == i64::MAX as u64))
    {
        super::ByteLock::Exact
    } else {
        super::ByteLock::Covered
    })
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn lock_shared_byte(_file: &File, _offset: u64) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn byte_locked(_file: &File, _offset: u64) -> io::Result<super::ByteLock> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Start time of a process in clock ticks since boot (field 22 of `/proc/PID/stat`), or `None`
/// where `/proc` is not available or its start times are not comparable across the processes
/// of this namespace ([`start_times_comparable`]).
pub(crate) fn process_start_time(pid: u32) -> Option<u64> {
    if !start_times_comparable() {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: skip past the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // `rest` starts at field 3; field 22 is the 20th of them.
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// This boot as a process word's 10-bit field ([`super::process_word_rest`]): FNV-1a of the
/// kernel's boot id (a random UUID drawn at each boot, the same in every namespace) mod 1023,
/// plus 1; 0 where it cannot be read. Read once per process, as a rule: threads that ask at
/// once each read it, and store the same value. Not a `OnceLock`, whose waiters wait for ever
/// in a child made by `fork` while another thread of the parent read it (a review found 8 of
/// 400 such children hung in their first open).
#[cfg(target_os = "linux")]
pub(crate) fn boot_tag() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    /// The tag with bit 63 set once read (0: not yet).
    static TAG: AtomicU64 = AtomicU64::new(0);
    const KNOWN: u64 = 1 << 63;
    let known = TAG.load(Relaxed);
    if known & KNOWN != 0 {
        return known & !KNOWN;
    }
    let tag = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map_or(0, |id| {
        let hash = id.trim().bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        hash % 1023 + 1
    });
    TAG.store(tag | KNOWN, Relaxed);
    tag
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn boot_tag() -> u64 {
    0
}

/// Sleeps while the low 32 bits of `word` (its first four bytes: the format is little-endian)
/// equal `expected`, for at most `timeout`; returns early on a wake-up, a signal, or a spurious
/// wake. Callers re-check their condition in a loop.
///
/// On Linux this is `FUTEX_WAIT` on the shared mapping (not `FUTEX_PRIVATE_FLAG`, so a writer in
/// another process can wake it); elsewhere a short sleep.
#[cfg(all(target_os = "linux", target_endian = "little"))]
pub(crate) fn wait_while(
    word: &std::sync::atomic::AtomicU64,
    expected: u32,
    timeout: std::time::Duration,
) {
    // SAFETY: the futex address is the first 4 bytes of a live, aligned `AtomicU64` (8-aligned,
    // so 4-aligned) in a shared mapping, which the borrow keeps mapped for the call. The kernel
    // reads those 4 bytes while other threads and processes may store the whole word: a read
    // outside Rust's memory model (a system call), single-copy atomic on the 64-bit targets mmf
    // builds for, as an aligned 4-byte load within an aligned 8-byte store is. (Miri, which
    // models it as a Rust atomic of another size, reports a mixed-size race: `race_tests.rs`.)
    unsafe {
        futex_wait(
            std::ptr::from_ref(word).cast::<u32>(),
            false,
            expected,
            timeout,
        )
    }
}

/// Wakes every thread sleeping in [`wait_while`] on `word`, in any process; how many it woke
/// (1 when the call failed, which tells nothing).
#[cfg(all(target_os = "linux", target_endian = "little"))]
pub(crate) fn wake_all(word: &std::sync::atomic::AtomicU64) -> usize {
    // SAFETY: FUTEX_WAKE only uses the address as a key (it does not dereference user memory
    // beyond validating the mapping); the remaining arguments are ignored.
    let woke = unsafe {
        libc::syscall(
            libc::SYS_futex,
            std::ptr::from_ref(word).cast::<u32>(),
            libc::FUTEX_WAKE,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    usize::try_from(woke).unwrap_or(1)
}

/// Whether [`wait_while`] really sleeps until woken (a futex) rather than polling.
pub(crate) const FUTEX: bool = cfg!(all(target_os = "linux", target_endian = "little"));

#[cfg(not(all(target_os = "linux", target_endian = "little")))]
pub(crate) fn wait_while(
    _word: &std::sync::atomic::AtomicU64,
    _expected: u32,
    timeout: std::time::Duration,
) {
    std::thread::sleep(timeout.min(std::time::Duration::from_millis(1)));
}

/// No futex: nobody sleeps on `word` to be woken (waits poll); 1, which tells nothing.
#[cfg(not(all(target_os = "linux", target_endian = "little")))]
pub(crate) fn wake_all(_word: &std::sync::atomic::AtomicU64) -> usize {
    1
}

/// One entry of `futex_waitv(2)` (Linux 5.16+), as the kernel lays it out.
#[cfg(target_os = "linux")]
#[repr(C)]
pub(crate) struct FutexWaitv {
    pub val: u64,
    pub uaddr: u64,
    pub flags: u32,
    pub reserved: u32,
}

/// `FUTEX2_SIZE_U32`: the futex is a 32-bit word.
#[cfg(target_os = "linux")]
pub(crate) const FUTEX2_SIZE_U32: u32 = 0x02;
/// `FUTEX2_PRIVATE`: the futex is in memory private to this process.
#[cfg(target_os = "linux")]
pub(crate) const FUTEX2_PRIVATE: u32 = 128;

/// The kernel's `struct __kernel_timespec`, which `futex_waitv` reads: two 64-bit fields on
/// every target, where `libc::timespec` has 32-bit ones on some (an unsafe-code audit's finding;
/// the crate builds for 64-bit targets only today, see `lib.rs`).
#[cfg(target_os = "linux")]
#[repr(C)]
struct KernelTimespec {
    tv_sec: i64,
    tv_nsec: i64,
}

/// Sleeps until any of `waiters` is woken or differs from its expected value, or `timeout`
/// passes. Returns `false` if it could not sleep: the kernel has no `futex_waitv` (before Linux
/// 5.16), a seccomp filter refuses it (`EPERM`), or the call failed (`EFAULT`, `EINVAL`,
/// `ENOMEM`); the caller must then not call again at once, or it would spin.
///
/// # Safety
/// Every `uaddr` must be the address of a 4-byte-aligned `u32` (in a shared mapping for entries
/// without `FUTEX2_PRIVATE`). The kernel only reads the words, and only before it sleeps: one
/// unmapped by then makes the call fail (`EFAULT`); one unmapped or mapped anew during the
/// sleep wakes nobody, so a caller that cannot keep every word mapped for the call (the async
/// notifier) must have another word among them that wakes it when one goes.
#[cfg(target_os = "linux")]
pub(crate) unsafe fn futex_waitv(waiters: &[FutexWaitv], timeout: std::time::Duration) -> bool {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let ns = i128::from(now.tv_nsec) + i128::from(timeout.subsec_nanos());
    let abs = KernelTimespec {
        tv_sec: now
            .tv_sec
            .saturating_add(i64::try_from(timeout.as_secs()).unwrap_or(1 << 30))
            .saturating_add((ns / 1_000_000_000) as i64),
        tv_nsec: (ns % 1_000_000_000) as i64,
    };
    // SAFETY: `waiters` is a live slice of correctly laid-out entries whose addresses the caller
    // vouches for; `abs` outlives the call and is laid out as the kernel reads it (two 64-bit
    // fields whatever `libc::timespec` is on the target); the kernel only reads both.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex_waitv,
            waiters.as_ptr(),
            waiters.len() as libc::c_uint,
            0 as libc::c_uint,
            &abs as *const KernelTimespec,
            libc::CLOCK_MONOTONIC,
        )
    };
    rc >= 0
        || matches!(
            io::Error::last_os_error().raw_os_error(),
            Some(libc::EAGAIN | libc::EINTR | libc::ETIMEDOUT)
        )
}

/// Whether this process ignores `signal` (its disposition is `SIG_IGN`), asked of the kernel
/// with `sigaction`, which any Unix answers (`/proc/self/status`, where Linux shows the same
/// mask, is Linux's alone, may be unmounted, and under an emulator such as qemu-user shows the
/// emulator's handlers). False where `signal` names no signal.
pub(crate) fn signal_ignored(signal: i32) -> bool {
    let mut old = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: a null new action only asks for the current one, which the kernel writes to
    // `old`, memory for one `sigaction` that outlives the call. No handler is changed.
    let rc = unsafe { libc::sigaction(signal, std::ptr::null(), old.as_mut_ptr()) };
    // SAFETY: all-zero bytes are a valid `sigaction` (integers, a handler address as an
    // integer, a signal set, and on glibc an `Option` of a function, `None` when zero), and on
    // success the kernel filled it in.
    rc == 0 && unsafe { old.assume_init() }.sa_sigaction == libc::SIG_IGN
}

/// Wakes every thread of this process sleeping on the private futex `word`.
#[cfg(target_os = "linux")]
pub(crate) fn wake_private(word: &std::sync::atomic::AtomicU32) {
    // SAFETY: FUTEX_WAKE uses the address as a key only; the other arguments are ignored.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            std::ptr::from_ref(word),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// No futex: nobody sleeps on a private word to be woken (waits on one poll).
#[cfg(not(target_os = "linux"))]
pub(crate) fn wake_private(_word: &std::sync::atomic::AtomicU32) {}

/// Sleeps while the private futex `word` holds `expected`, for at most `timeout`; returns early
/// on a wake-up, a signal or a spurious wake (callers re-check). Elsewhere than on Linux, a
/// sleep of at most a millisecond.
#[cfg(target_os = "linux")]
pub(crate) fn wait_private(
    word: &std::sync::atomic::AtomicU32,
    expected: u32,
    timeout: std::time::Duration,
) {
    // SAFETY: a live, aligned `AtomicU32` of this process, which the borrow keeps alive.
    unsafe {
        futex_wait(
            std::ptr::from_ref(word).cast::<u32>(),
            true,
            expected,
            timeout,
        )
    }
}

/// `FUTEX_WAIT` on the 32-bit word at `word` (`FUTEX_PRIVATE_FLAG` if `private`): sleeps while
/// it holds `expected`, for at most `timeout`; returns early on a wake-up, a signal or a
/// spurious wake. Every error (EAGAIN: the value changed, EINTR, ETIMEDOUT) means "re-check",
/// which every caller does.
///
/// # Safety
/// `word` must point to a live, 4-byte-aligned `u32` that stays mapped for the call (in a
/// shared mapping where `private` is false and another process is to wake it).
#[cfg(target_os = "linux")]
unsafe fn futex_wait(word: *const u32, private: bool, expected: u32, timeout: std::time::Duration) {
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    let op = if private {
        libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG
    } else {
        libc::FUTEX_WAIT
    };
    // SAFETY: the caller vouches for `word`, which the kernel only reads, atomically; `ts`
    // outlives the call; the other arguments are ignored by FUTEX_WAIT.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word,
            op,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn wait_private(
    _word: &std::sync::atomic::AtomicU32,
    _expected: u32,
    timeout: std::time::Duration,
) {
    std::thread::sleep(timeout.min(std::time::Duration::from_millis(1)));
}

/// [`wait_while`] on the shared `word` that also ends when any of the private futex words
/// `stops` (the [`Stop`](crate::Stop)s') no longer holds 0 or is woken: [`wait_while_any`] with
/// one shared word.
pub(crate) fn wait_while_unstopped(
    word: &std::sync::atomic::AtomicU64,
    expected: u32,
    stops: &[&std::sync::atomic::AtomicU32],
    timeout: std::time::Duration,
) -> bool {
    wait_while_any(&[(word, expected)], stops, timeout)
}

/// [`wait_while`] on several shared words at once: sleeps until any of `words` no longer holds
/// its expected low 32 bits or is woken, or any of the private futex words `stops` (the
/// [`Stop`](crate::Stop)s') no longer holds 0 or is woken, or `timeout` passes; one
/// `futex_waitv` on them all. Returns `false` if it could not sleep (no `futex_waitv`: before
/// Linux 5.16, or refused by a seccomp filter; more than 128 words in all; no shared word); the
/// caller then waits in short slices.
#[cfg(all(target_os = "linux", target_endian = "little"))]
pub(crate) fn wait_while_any(
    words: &[(&std::sync::atomic::AtomicU64, u32)],
    stops: &[&std::sync::atomic::AtomicU32],
    timeout: std::time::Duration,
) -> bool {
    if words.is_empty() || words.len() + stops.len() > 128 {
        return false;
    }
    let mut entries = Vec::with_capacity(words.len() + stops.len());
    entries.extend(words.iter().map(|&(word, expected)| FutexWaitv {
        val: u64::from(expected),
        uaddr: std::ptr::from_ref(word) as u64,
        flags: FUTEX2_SIZE_U32,
        reserved: 0,
    }));
    entries.extend(stops.iter().map(|stop| private_entry(stop)));
    // SAFETY: the first `words.len()` entries are each the first 4 bytes (the low half:
    // little-endian) of a live, 8-aligned `AtomicU64` in a shared mapping that the caller's
    // borrows keep mapped; the others live, aligned `AtomicU32`s of this process's own memory,
    // marked private, which the borrows of `stops` keep alive.
    unsafe { futex_waitv(&entries, timeout) }
}

#[cfg(not(all(target_os = "linux", target_endian = "little")))]
pub(crate) fn wait_while_any(
    _words: &[(&std::sync::atomic::AtomicU64, u32)],
    _stops: &[&std::sync::atomic::AtomicU32],
    _timeout: std::time::Duration,
) -> bool {
    false
}

/// Sleeps until any of the private futex words `words` no longer holds 0 or is woken, or
/// `timeout` passes: one `futex_waitv`. `false` if it could not sleep (as
/// [`wait_while_unstopped`]).
#[cfg(target_os = "linux")]
pub(crate) fn wait_private_any(
    words: &[&std::sync::atomic::AtomicU32],
    timeout: std::time::Duration,
) -> bool {
    if words.is_empty() || words.len() > 128 {
        return false;
    }
    let entries: Vec<FutexWaitv> = words.iter().map(|w| private_entry(w)).collect();
    // SAFETY: live, aligned `AtomicU32`s of this process's own memory, marked private, which
    // the borrows of `words` keep alive for the call.
    unsafe { futex_waitv(&entries, timeout) }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn wait_private_any(
    _words: &[&std::sync::atomic::AtomicU32],
    _timeout: std::time::Duration,
) -> bool {
    false
}

/// Whether this kernel has `futex_waitv` (Linux 5.16+, not refused by a seccomp filter): for
/// the tests of a sleep that only it makes (one on a stop's word, or on a follower's `retired`
/// word, beside the channel's), which have nothing to test without it and say so.
#[cfg(test)]
pub(crate) fn has_futex_waitv() -> bool {
    // A word that differs from the expected 0: the call returns at once, EAGAIN, if it exists.
    let there = wait_private_any(
        &[&std::sync::atomic::AtomicU32::new(1)],
        std::time::Duration::ZERO,
    );
    if !there {
        eprintln!("no futex_waitv here: nothing to test");
    }
    there
}

/// A `futex_waitv` entry for a private 32-bit word that holds 0 while its waits may sleep.
#[cfg(target_os = "linux")]
fn private_entry(word: &std::sync::atomic::AtomicU32) -> FutexWaitv {
    FutexWaitv {
        val: 0,
        uaddr: std::ptr::from_ref(word) as u64,
        flags: FUTEX2_SIZE_U32 | FUTEX2_PRIVATE,
        reserved: 0,
    }
}

/// A file descriptor that becomes readable when process `pid` has exited (`pidfd_open(2)`,
/// Linux 5.3+): its thread group is gone, or a zombie whose parent has not reaped it yet.
/// `ESRCH`: no such process.
#[cfg(target_os = "linux")]
pub(crate) fn pidfd_open(pid: u32) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: `pidfd_open` takes a pid and flags and touches no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0u32) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = std::os::fd::RawFd::try_from(fd).map_err(|_| io::Error::from(io::ErrorKind::Other))?;
    // SAFETY: the kernel just returned this descriptor, open, and owned by nothing else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn pidfd_open(_pid: u32) -> io::Result<std::os::fd::OwnedFd> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Waits until one of `fds` is readable, hung up or in error, or `timeout` passes (`None`: no
/// limit): for each of `fds`, whether it is (all `false` on the timeout). A signal restarts the
/// wait.
pub(crate) fn poll_ready(
    fds: &[std::os::fd::BorrowedFd<'_>],
    timeout: Option<std::time::Duration>,
) -> io::Result<Vec<bool>> {
    let mut polled: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.map_or(-1, |t| {
        libc::c_int::try_from(t.as_millis().max(u128::from(!t.is_zero())))
            .unwrap_or(libc::c_int::MAX)
    });
    loop {
        // SAFETY: `polled` is a live, writable array of `polled.len()` initialised pollfds, whose
        // descriptors the borrows keep open for the call.
        let rc = unsafe { libc::poll(polled.as_mut_ptr(), polled.len() as libc::nfds_t, ms) };
        if rc >= 0 {
            return Ok(polled.iter().map(|p| p.revents != 0).collect());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Whether process `pid` has exited: it is gone, or a zombie its parent has not reaped yet
/// (where `/proc` shows it), with no thread of it left running.
pub(crate) fn pid_exited(pid: u32) -> bool {
    if !pid_exists(pid) {
        return true;
    }
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
    };
    let ended = field("State:").is_some_and(|s| s.starts_with(['Z', 'X']));
    let threads = field("Threads:").and_then(|t| t.parse::<u32>().ok());
    ended && threads.is_none_or(|n| n <= 1)
}

/// How many mappings this process has, and how many the system allows a process
/// (`vm.max_map_count`, 65,530 by default), where both can be read: past the limit every
/// `mmap` fails with `ENOMEM`, as where memory is short. Read with buffers on the stack and no
/// allocation, since an allocation large enough to be a mapping of its own fails there too.
#[cfg(target_os = "linux")]
pub(crate) fn mappings() -> Option<(u64, u64)> {
    use std::io::Read;
    let mut buf = [0u8; 4096];
    let mut limit = std::fs::File::open("/proc/sys/vm/max_map_count").ok()?;
    let n = limit.read(&mut buf).ok()?;
    let limit = std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()?;
    let mut maps = std::fs::File::open("/proc/self/maps").ok()?;
    let mut lines = 0;
    loop {
        match maps.read(&mut buf) {
            Ok(0) => return Some((lines, limit)),
            Ok(n) => lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn mappings() -> Option<(u64, u64)> {
    None
}

/// The largest file this process may make (`RLIMIT_FSIZE`'s soft limit; `ulimit -f`), in bytes;
/// `None` for no limit. A write or allocation past it fails with `EFBIG`, and first sends
/// `SIGXFSZ`, which ends the process unless it is caught or ignored.
pub(crate) fn file_size_limit() -> Option<u64> {
    // SAFETY: an all-zero `rlimit` is a valid value of this plain C struct.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `limit` is a valid, writable struct for the call; the resource is a constant.
    if unsafe { libc::getrlimit(libc::RLIMIT_FSIZE, &mut limit) } != 0 {
        return None;
    }
    (limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur as u64)
}

/// The bytes this process may allocate in the file system holding `dir`, as `statvfs` tells
/// it: the blocks free to anyone, and for root also those the file system reserves for root
/// (ext4 keeps 5 % back from other users). `None` where the file system states no size at all
/// (a tmpfs mounted with `size=0`, ramfs: no limit), which says nothing about room.
pub(crate) fn room(dir: &std::path::Path) -> io::Result<Option<u64>> {
    let st = statvfs(dir)?;
    if st.f_blocks == 0 {
        return Ok(None);
    }
    let blocks = if euid() == 0 { st.f_bfree } else { st.f_bavail };
    Ok(Some((blocks as u64).saturating_mul(st.f_frsize as u64)))
}

fn statvfs(dir: &std::path::Path) -> io::Result<libc::statvfs> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: an all-zero `statvfs` is a valid value of this plain C struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a valid, writable struct for the call.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// Whether the file system holding `dir` keeps its files in memory (tmpfs), where a channel's
/// bytes count against the memory cgroup's limit; `false` where that cannot be told.
pub(crate) fn in_memory(dir: &std::path::Path) -> bool {
    in_memory_known(dir) == Some(true)
}

/// [`in_memory`], `None` where it cannot be told (`statfs` failed; not Linux).
#[cfg(target_os = "linux")]
pub(crate) fn in_memory_known(dir: &std::path::Path) -> Option<bool> {
    // (ramfs, 0x858458f6, has no constant in `libc`.)
    #[allow(clippy::unnecessary_cast)]
    let tmpfs = libc::TMPFS_MAGIC as i64;
    file_system_kind(dir).map(|kind| kind == tmpfs || kind == 0x8584_58f6)
}

/// Whether the file system holding `dir` is hugetlbfs, which gives every file a whole number of
/// huge pages (2 MiB, say), and answers an allocation with `ENOSPC` where no huge page is free.
/// `false` where it cannot be told.
#[cfg(target_os = "linux")]
pub(crate) fn huge_pages_only(dir: &std::path::Path) -> bool {
    // `HUGETLBFS_MAGIC` of `<linux/magic.h>`.
    file_system_kind(dir) == Some(0x9584_58f6)
}

/// The magic number of the file system holding `dir` (`statfs`'s `f_type`), `None` where
/// `statfs` fails.
#[cfg(target_os = "linux")]
fn file_system_kind(dir: &std::path::Path) -> Option<i64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: an all-zero `statfs` is a valid value of this plain C struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a valid, writable struct for the call.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    // `f_type` and the magic constants differ in type between C libraries: compared as i64.
    #[allow(clippy::unnecessary_cast)]
    Some(st.f_type as i64)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn in_memory_known(_dir: &std::path::Path) -> Option<bool> {
    None
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn huge_pages_only(_dir: &std::path::Path) -> bool {
    false
}

/// The memory limit of this process's cgroup (v2, or v1's `memory` controller) and of its
/// ancestors, the tightest of them; `None` where none is set or none can be read (no cgroup
/// file system mounted, another platform). Read from `/proc/self/cgroup` and
/// `/proc/self/mountinfo`, as the kernel shows them to this process (a container's own view).
#[cfg(target_os = "linux")]
pub(crate) fn memory_limit() -> Option<super::MemoryLimit> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    // v1's memory controller if this process is in one, else v2's unified hierarchy.
    let v1 = cgroups.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
        controllers
            .split(',')
            .any(|c| c == "memory")
            .then_some(path)
    });
    let (path, v2) = match v1 {
        Some(path) => (path, false),
        None => (cgroups.lines().find_map(|l| l.strip_prefix("0::"))?, true),
    };
    let (root, mount_point) = mounts.lines().find_map(|l| {
        let (mount, fs) = l.split_once(" - ")?;
        let mut fs = fs.split(' ');
        let (kind, _source, options) = (fs.next()?, fs.next()?, fs.next()?);
        let wanted = if v2 {
            kind == "cgroup2"
        } else {
            kind == "cgroup" && options.split(',').any(|o| o == "memory")
        };
        let mut m = mount.split(' ');
        let (root, point) = (m.nth(3)?, m.next()?);
        wanted.then_some((root, point))
    })?;
    // The cgroup's path below the mount's root (`/` unless the mount shows a subtree). A path
    // outside that root (a cgroup namespace whose process sees the host's mount) is not under
    // the mount at all: nothing is said rather than some other cgroup's limit.
    let below = std::path::Path::new(path)
        .strip_prefix(unescape_mount_path(root))
        .ok()?;
    let top = PathBuf::from(unescape_mount_path(mount_point));
    let mut dir = top.join(below);
    let mut tightest: Option<super::MemoryLimit> = None;
    loop {
        if let Some((limit, room)) = cgroup_room(&dir, v2) {
            if tightest.as_ref().is_none_or(|t| room < t.room) {
                tightest = Some(super::MemoryLimit {
                    limit,
                    room,
                    cgroup: dir.clone(),
                });
            }
        }
        if dir == top || !dir.pop() || !dir.starts_with(&top) {
            break;
        }
        // v1, a parent with `use_hierarchy` 0 (kernels before 5.11 allowed it): its children's
        // charges are not its own, so neither its limit nor its ancestors' apply.
        if !v2
            && std::fs::read_to_string(dir.join("memory.use_hierarchy"))
                .is_ok_and(|s| s.trim() == "0")
        {
            break;
        }
    }
    tightest
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn memory_limit() -> Option<super::MemoryLimit> {
    None
}

/// `(limit, room)` of the one cgroup at `dir`, if it has a limit ([`CgroupFigures::room`]).
#[cfg(target_os = "linux")]
fn cgroup_room(dir: &std::path::Path, v2: bool) -> Option<(u64, u64)> {
    let read = |file: &str| std::fs::read_to_string(dir.join(file)).ok();
    let number = |text: Option<String>| text.and_then(|t| t.trim().parse::<u64>().ok());
    // "max" (v2), or v1's "no limit", a page-rounded `i64::MAX`.
    let limit = |text: Option<String>| number(text).filter(|&l| l < 1 << 62);
    let (limit, usage) = if v2 {
        (limit(read("memory.max"))?, number(read("memory.current"))?)
    } else {
        (
            limit(read("memory.limit_in_bytes"))?,
            number(read("memory.usage_in_bytes"))?,
        )
    };
    let figures = CgroupFigures {
        limit,
        usage,
        stat: read("memory.stat").unwrap_or_default(),
        v1: !v2,
    };
    Some((limit, figures.room()))
}

/// What one cgroup's files say of its memory, as [`cgroup_room`] read them.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
#[derive(Debug)]
struct CgroupFigures {
    /// `memory.max` (v2), `memory.limit_in_bytes` (v1).
    limit: u64,
    /// `memory.current` (v2), `memory.usage_in_bytes` (v1): every page charged, the kernel's
    /// own included.
    usage: u64,
    /// `memory.stat`.
    stat: String,
    /// A cgroup of v1's memory controller (else v2's): its `memory.stat` figures for the cgroup
    /// and its descendants are the `total_` ones.
    v1: bool,
}

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
impl CgroupFigures {
    /// A `memory.stat` figure (0 if absent).
    fn stat(&self, key: &str) -> u64 {
        self.stat
            .lines()
            .filter_map(|l| l.split_once(' '))
            .find(|(k, _)| {
                if self.v1 {
                    k.strip_prefix("total_") == Some(key)
                } else {
                    *k == key
                }
            })
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// About what a new file in a tmpfs may still take before the kernel kills: the limit
    /// less what the kernel cannot reclaim.
    ///
    /// Reclaimable: the file cache (`active_file`, `inactive_file`; a tmpfs's pages are not in
    /// it, they are swap-backed), and in v2 the kernel's reclaimable caches (`slab_reclaimable`:
    /// dentries and inodes of files not in use; the dentries of a tmpfs's files are in that
    /// figure too, though they stay, some 200 bytes a file). v1 does not tell the kernel's
    /// caches from its memory that stays (the inodes and dentries of a tmpfs's files, stacks,
    /// page tables), so there all of it counts as held: a cgroup full of directory cache is
    /// refused a channel that would fit, rather than one being let through that gets a process
    /// killed.
    ///
    /// Swap counts for nothing. Whether the kernel would swap pages out to make room depends
    /// on every cgroup below the limited one (each v1 cgroup's own swappiness, v2's
    /// `memory.swap.max` at each level) and on how hot the pages are, and a tmpfs file being
    /// allocated keeps its own pages in memory: a channel that would fit only by swapping is
    /// refused, where counting swap let channels through to a kill of another process.
    fn room(&self) -> u64 {
        let mut reclaimable = self.stat("active_file") + self.stat("inactive_file");
        if !self.v1 {
            reclaimable += self.stat("slab_reclaimable");
        }
        self.limit
            .saturating_sub(self.usage.saturating_sub(reclaimable))
    }
}

/// A path as `/proc/self/mountinfo` writes it: space, tab, newline and backslash as octal
/// escapes (`\040`).
#[cfg(target_os = "linux")]
fn unescape_mount_path(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) if b[i] == b'\\' => {
                out.push(
                    d.iter()
                        .fold(0u8, |n, c| n.wrapping_mul(8).wrapping_add(c - b'0')),
                );
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Total and available bytes of the file system holding `dir` (`statvfs`).
pub(crate) fn space(dir: &std::path::Path) -> io::Result<(u64, u64)> {
    let st = statvfs(dir)?;
    let frag = st.f_frsize as u64;
    Ok((st.f_blocks as u64 * frag, st.f_bavail as u64 * frag))
}

#[cfg(test)]
mod tests {
    use super::CgroupFigures;

    /// `sigaction` tells an ignored signal from a defaulted one. SIGWINCH, which no other test
    /// of this crate touches and whose default action ignores it too (only `SIG_IGN` counts);
    /// the disposition the process was started with is put back.
    #[test]
    fn an_ignored_signal_is_told_from_a_defaulted_one() {
        let set = |to| {
            // SAFETY: `SIG_DFL` and `SIG_IGN` install no handler, and the disposition this
            // returns, put back at the end, is one this process had.
            let before = unsafe { libc::signal(libc::SIGWINCH, to) };
            assert_ne!(before, libc::SIG_ERR);
            before
        };
        let started_with = set(libc::SIG_DFL);
        let defaulted = super::signal_ignored(libc::SIGWINCH);
        set(libc::SIG_IGN);
        let ignored = super::signal_ignored(libc::SIGWINCH);
        set(started_with);
        assert!(!defaulted);
        assert!(ignored);
        assert!(!super::signal_ignored(libc::SIGKILL));
        assert!(!super::signal_ignored(0));
        assert!(!super::signal_ignored(100_000));
    }

    const MIB: u64 = 1 << 20;

    /// The arithmetic of a cgroup's room, on figures as the kernel writes them
    /// (`cli/tests/cli.rs` charges a real cgroup's directory cache).
    #[test]
    fn a_cgroups_room_counts_what_the_kernel_reclaims_as_free() {
        // v2: 100 MiB limit, 90 charged: 35 anonymous, 5 tmpfs, 20 file cache, 30 reclaimable
        // slab (dentries), 5 other kernel memory; some swapped out already (not counted).
        let v2 = CgroupFigures {
            limit: 100 * MIB,
            usage: 90 * MIB,
            stat: format!(
                "anon {}\nfile {}\nshmem {}\nactive_file {}\ninactive_file {}\n\
                 slab_reclaimable {}\nslab_unreclaimable {}\nunevictable {}\n",
                35 * MIB,
                25 * MIB,
                5 * MIB,
                12 * MIB,
                8 * MIB,
                30 * MIB,
                5 * MIB,
                10 * MIB
            ),
            v1: false,
        };
        assert_eq!(v2.room(), 60 * MIB);

        // v1: the `total_` figures (not the cgroup's own); its kernel memory (here 40 MiB, in
        // the usage) counts as held.
        let v1 = CgroupFigures {
            limit: 64 * MIB,
            usage: 60 * MIB,
            stat: format!(
                "active_file {}\ninactive_file {}\ntotal_active_file {}\n\
                 total_inactive_file {}\ntotal_rss {}\ntotal_swap {}\n",
                50 * MIB,
                50 * MIB,
                10 * MIB,
                6 * MIB,
                3 * MIB,
                2 * MIB
            ),
            v1: true,
        };
        assert_eq!(v1.room(), 20 * MIB);
        // Figures read at different moments (usage below what is reclaimable): the whole limit.
        let v1 = CgroupFigures {
            usage: 10 * MIB,
            ..v1
        };
        assert_eq!(v1.room(), 64 * MIB);
    }

    /// A held lock is found in the kernel's table however busy it is: while three threads lock
    /// and unlock files of their own (their locks come and go ahead of it in the table), every
    /// one of many looks finds it.
    #[test]
    #[cfg(target_os = "linux")]
    fn a_held_flock_is_found_while_others_come_and_go() {
        let dir = std::env::temp_dir().join(format!("mmf-flock-held-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let held = std::fs::File::create(dir.join("held")).unwrap();
        held.lock_shared().unwrap();
        let meta = held.metadata().unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let churners: Vec<_> = (0..3)
            .map(|i| {
                let file = std::fs::File::create(dir.join(format!("churn{i}"))).unwrap();
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        file.lock_shared().unwrap();
                        file.unlock().unwrap();
                    }
                })
            })
            .collect();
        let missed = (0..5_000)
            .filter(|_| !super::flock_held(&meta).unwrap())
            .count();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for churner in churners {
            churner.join().unwrap();
        }
        drop(held);
        // Gone once every copy of the descriptor is: a child that another test of this
        // process forks meanwhile holds one until it execs or exits.
        let t = std::time::Instant::now();
        while super::flock_held(&meta).unwrap() {
            assert!(
                t.elapsed() < std::time::Duration::from_secs(10),
                "no lock is held any more"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(missed, 0, "looks that missed the held lock, of 5000");
    }
}
