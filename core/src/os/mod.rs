//! The thin platform layer: where shared memory lives, allocating a file's blocks up front, and
//! telling whether a process is still alive. One file per platform, chosen at compile time (the
//! memmap2 pattern); `unsupported.rs` is where a port to a system without one starts (the crate
//! builds on Unix only).

#[cfg_attr(unix, path = "unix.rs")]
#[cfg_attr(not(unix), path = "unsupported.rs")]
mod imp;

pub(crate) use imp::*;

/// What this process's memory cgroup leaves for shared memory: a file in a tmpfs takes memory,
/// charged to the cgroup of the process that allocates it (a container's `--memory` limit), and
/// a cgroup past its limit has the kernel kill one of its processes, not fail the allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemoryLimit {
    /// The tightest limit of the cgroup and its ancestors, in bytes.
    pub(crate) limit: u64,
    /// About what may still be charged under it (`CgroupFigures::room` in `unix.rs`).
    pub(crate) room: u64,
    /// The directory of that cgroup.
    pub(crate) cgroup: std::path::PathBuf,
}

/// Which process this is: its pid and its count of forks ([`forks`]), as a pid alone comes back
/// to a descendant of a process that died. What one process did (counted a waiter, started a
/// thread) is undone or used by that process alone, not by a child made by `fork` that
/// inherited the memory saying so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProcessId {
    pid: u32,
    forks: u64,
}

impl ProcessId {
    /// The calling process.
    pub(crate) fn current() -> ProcessId {
        ProcessId {
            pid: std::process::id(),
            forks: forks(),
        }
    }
}

/// A value of which every process has its own, made at its first use there and never freed: a
/// child made by `fork` inherits its parent's, but not the threads that serve it, nor perhaps
/// its locks in a usable state (one may have been held as the parent forked), nor every file
/// descriptor it owns (another thread may have opened one after the fork copied the table);
/// so the child makes its own and leaves the inherited one untouched, not even dropped. A
/// process is told by its [`ProcessId`].
pub(crate) struct PerProcess<T: 'static> {
    current: std::sync::atomic::AtomicPtr<Owned<T>>,
}

/// A [`PerProcess`] value, with the process it belongs to.
struct Owned<T> {
    process: ProcessId,
    value: T,
}

impl<T: Sync + 'static> PerProcess<T> {
    pub(crate) const fn new() -> PerProcess<T> {
        PerProcess {
            current: std::sync::atomic::AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// This process's value, if it made one.
    pub(crate) fn get(&self) -> Option<&'static T> {
        Self::ours(self.current.load(std::sync::atomic::Ordering::Acquire))
    }

    /// The value `p` (a value of `current`) points to, if this process made it.
    fn ours(p: *mut Owned<T>) -> Option<&'static T> {
        // SAFETY: `current` only ever holds null or a pointer from `Box::leak` (never freed, so
        // valid for `'static`), published with Release by the compare-and-swap below after the
        // `Owned` was written, and read with Acquire. `T: Sync`: shared by every thread.
        let owned = unsafe { p.as_ref() }?;
        (owned.process == ProcessId::current()).then_some(&owned.value)
    }

    /// This process's value, made by `make` if it has none yet. Of two threads that make one
    /// at once, one's is kept; the other's is dropped unused (it was leaked until Miri's leak
    /// check found it), so `make` must have no effect beyond its value.
    pub(crate) fn get_or_make(&self, make: impl FnOnce() -> T) -> &'static T {
        use std::sync::atomic::Ordering;
        if let Some(value) = self.get() {
            return value;
        }
        let fresh: &'static mut Owned<T> = Box::leak(Box::new(Owned {
            process: ProcessId::current(),
            value: make(),
        }));
        let fresh = std::ptr::from_mut(fresh);
        let mut current = self.current.load(Ordering::Acquire);
        loop {
            if let Some(value) = Self::ours(current) {
                // SAFETY: `fresh` came from `Box::leak` above and was never stored in `current`
                // (the compare-and-swap below failed, or was not tried): no one else has it.
                drop(unsafe { Box::from_raw(fresh) });
                return value;
            }
            match self
                .current
                .compare_exchange(current, fresh, Ordering::AcqRel, Ordering::Acquire)
            {
                // (The one it replaces, an ancestor's, stays leaked: see above.)
                Ok(_) => {
                    // SAFETY: `fresh` came from `Box::leak` above and is never freed.
                    return &unsafe { &*fresh }.value;
                }
                Err(now) => current = now,
            }
        }
    }
}

#[cfg(all(target_os = "linux", not(mmf_loom)))]
pub(crate) mod sigbus;

/// Where no `SIGBUS` handler is written yet: mappings are not registered, and `install` says so.
#[cfg(all(not(target_os = "linux"), not(mmf_loom)))]
pub(crate) mod sigbus {
    /// A mapping's (empty) place in the registry.
    pub(crate) struct Registration;

    impl Registration {
        pub(crate) fn new(_start: *const u8, _len: usize, _writable: bool) -> Registration {
            Registration
        }

        pub(crate) fn tripped(&self) -> bool {
            false
        }

        #[cfg(feature = "async")]
        pub(crate) fn flag(&self) -> &'static std::sync::atomic::AtomicBool {
            static NEVER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
            &NEVER
        }
    }

    pub(crate) fn install() -> std::io::Result<()> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "catching SIGBUS on truncated channels is implemented on Linux only",
        ))
    }

    pub(crate) fn installed() -> bool {
        false
    }

    pub(crate) fn trips() -> usize {
        0
    }
}

/// Identity of a lock or pin owner as stored in lock and pin-owner words (docs/FORMAT.md §5).
/// Bits 0-21 are always the pid (as the owner's own PID namespace numbers it; Linux pids are
/// below 2^22), for messages; the rest depends on bit 63:
///
/// | bits | kernel-held (bit 63 set) | judged by pid (bit 63 clear) |
/// |---|---|---|
/// | 22-61 | random, drawn per handle | 22-47: PID-namespace tag ([`namespace_tag`]; 0 = unknown) |
/// | 62 | 1 (puts the lock byte past 2^62) | 48-62: low 15 bits of the start time (0 = unknown) |
///
/// A kernel-held token is alive exactly while some open file description holds a lock on its
/// byte of the channel's file ([`lock_offset`]), which the kernel drops when the last one
/// closes, whatever namespaces the processes are in ([`Liveness::alive`]). Without one (an
/// anonymous channel, a platform or file system without open-file-description locks),
/// liveness falls back to the pid, and then only within one PID namespace.
pub(crate) fn token_pid(token: u64) -> u32 {
    (token & PID_MASK) as u32
}

/// Bit 63 of a token: its handle holds a shared open-file-description lock on byte
/// [`lock_offset`] of the channel's file for as long as it lives.
pub(crate) const KERNEL_HELD: u64 = 1 << 63;
/// Bit 62 of a kernel-held token, always set: its lock byte lies past 2^62, beyond any file.
const KERNEL_FAR: u64 = 1 << 62;
/// The random bits of a kernel-held token (22-61): 40 of them.
const KERNEL_RANDOM: u64 = ((1 << 40) - 1) << PID_BITS;

const PID_BITS: u32 = 22;
const PID_MASK: u64 = (1 << PID_BITS) - 1;
const TAG_BITS: u32 = 26;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;
/// A tag no namespace gets: "never judge this token by its pid" (a pid too large for 22 bits).
const TAG_UNJUDGEABLE: u64 = TAG_MASK;
const START_MASK: u64 = (1 << 15) - 1;

/// The byte of the channel's file whose lock says that the handle of a kernel-held `token` is
/// alive: the token without bit 63 (so below 2^63, a valid `off_t`; from 2^62 on).
pub(crate) fn lock_offset(token: u64) -> u64 {
    token & !KERNEL_HELD
}

/// The namespace tag of a token judged by pid (bits 22-47).
fn token_namespace(token: u64) -> u64 {
    (token >> PID_BITS) & TAG_MASK
}

/// The start-time bits of a token judged by pid (bits 48-62).
fn token_start(token: u64) -> u64 {
    (token >> 48) & START_MASK
}

/// This process's PID namespace as a token's 26-bit tag: 1 to 2^26 - 2, or 0 where the
/// namespace is unknown. Linux numbers these inodes from one counter it shares with other
/// `/proc` entries (some hundred of them per network namespace), so live namespaces get
/// distinct tags unless tens of millions of inodes lie between them. Asked anew each time (one
/// `stat`): a process can move its children into a new namespace and fork without exec.
pub(crate) fn namespace_tag() -> u64 {
    pid_namespace().map_or(0, |ino| ino % (TAG_MASK - 1) + 1)
}

/// This process's token judged by pid (bit 63 clear, see [`token_pid`]).
pub(crate) fn self_token() -> u64 {
    let pid = std::process::id();
    let tag = if u64::from(pid) > PID_MASK {
        TAG_UNJUDGEABLE
    } else {
        namespace_tag()
    };
    let start = process_start_time(pid).unwrap_or(0) & START_MASK;
    u64::from(pid) & PID_MASK | tag << PID_BITS | start << 48
}

/// 64 random bits (SipHash under the per-process random keys std draws from the OS, over the
/// clock, the pid and a counter).
fn random_bits() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

/// The token of a new read-write handle on `file` (`None`: an anonymous channel). Kernel-held
/// (random, and its lock taken on `file`, held until the file is closed) where the lock can be
/// had, else judged by pid ([`self_token`]). Computed once per handle: no `/proc` read on the
/// common path.
pub(crate) fn claim_token(file: Option<&std::fs::File>) -> u64 {
    if let Some(f) = file {
        let pid = u64::from(std::process::id()) & PID_MASK;
        let token = KERNEL_HELD | KERNEL_FAR | random_bits() & KERNEL_RANDOM | pid;
        if lock_shared_byte(f, lock_offset(token)).is_ok() {
            return token;
        }
    }
    self_token()
}

/// Whether a token judged by pid names a process of another PID namespace than this one's, or
/// one whose namespace is unknown on either side: its pid cannot be checked from here.
pub(crate) fn token_foreign(token: u64) -> bool {
    let mine = namespace_tag();
    let theirs = token_namespace(token);
    mine == 0 || theirs == 0 || theirs != mine
}

/// A header word that names a process (`creator`, `last_writer`; docs/FORMAT.md §4), in one
/// word so that a reader never pairs one writer's pid with another's start time:
///
/// | bits | field (0 = not known) |
/// |---|---|
/// | 0-21 | the pid, as the process's own PID namespace numbers it (Linux pids are below 2^22) |
/// | 22-37 | its PID namespace: the inode of `/proc/self/ns/pid` mod 65535, plus 1 |
/// | 38-53 | its start: field 22 of `/proc/PID/stat` (clock ticks since boot) mod 65535, plus 1 |
/// | 54-63 | the boot it ran in: FNV-1a of `/proc/sys/kernel/random/boot_id` mod 1023, plus 1 |
///
/// This is the word of the calling process without its pid (which publishes take from their
/// token): computed once per writable handle, so a publish stores one word it already has.
pub(crate) fn process_word_rest() -> u64 {
    let start = process_start_time(std::process::id()).map_or(0, start_tag);
    pid_namespace_tag() << 22 | start << 38 | boot_tag() << 54
}

/// The pid field of a process word ([`process_word_rest`]).
pub(crate) fn pid_bits(pid: u32) -> u64 {
    u64::from(pid) & PID_MASK
}

/// The pid a process word names (0: none).
pub(crate) fn process_word_pid(word: u64) -> u32 {
    (word & PID_MASK) as u32
}

/// This process's PID namespace as a process word's 16-bit field: 1 to 65535, 0 for unknown.
/// Asked anew each time (one `stat`): a process can move its children into a new namespace.
fn pid_namespace_tag() -> u64 {
    pid_namespace().map_or(0, |ino| ino % 65535 + 1)
}

/// A start time as a process word's 16-bit field: 1 to 65535.
fn start_tag(ticks: u64) -> u64 {
    ticks % 65535 + 1
}

/// What this process can tell of the process a header word names ([`process_word_rest`]):
/// `Dead` for no pid, a process of an earlier boot (a file channel that outlived a restart),
/// a pid that runs no process here (or only a zombie, exited and not yet reaped), or one whose
/// process started at another time than the word's (the pid came back to another process,
/// perhaps in a later container whose PID namespace got the same inode); `Unknown` for a
/// process of another PID namespace (a container's: its pid names another process here, or
/// none); else `Alive`. Start times are counted in clock ticks since boot, not wall-clock
/// time, so a clock set forward or back changes nothing. A field the word does not know (0) is
/// not compared, and a start time this process cannot read ([`process_start_time`]) neither:
/// then the pid decides, and a pid given to another process of the same namespace reads as
/// alive.
pub(crate) fn judge_process_word(word: u64) -> OwnerState {
    let pid = process_word_pid(word);
    if pid == 0 {
        return OwnerState::Dead;
    }
    let field = |shift: u32, bits: u32| (word >> shift) & ((1 << bits) - 1);
    let (namespace, start, boot) = (field(22, 16), field(38, 16), field(54, 10));
    let this_boot = boot_tag();
    if boot != 0 && this_boot != 0 && boot != this_boot {
        return OwnerState::Dead;
    }
    if namespace != 0 && pid_namespace_tag() != namespace {
        return OwnerState::Unknown("a process of another PID namespace (container)");
    }
    // A zombie too: it runs no more (a harness's worker that exited before its parent's
    // `wait`), as `Stop::on_exit_of` and `read --pid` take it.
    if pid_exited(pid) {
        return OwnerState::Dead;
    }
    match process_start_time(pid) {
        Some(ticks) if start != 0 && start_tag(ticks) != start => OwnerState::Dead,
        _ => OwnerState::Alive,
    }
}

/// Whether the owner of a lock or pin entry is alive, as a handle can tell (docs/FORMAT.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OwnerState {
    /// Alive (its kernel lock on the channel file is held, or its pid runs with its start
    /// time): a writer waits for it.
    Alive,
    /// Dead: the next writer (or reader, for a pin entry) takes it over.
    Dead,
    /// Cannot be told from here (why): taken as alive, so writers wait for it, and if it has
    /// exited, [`host::free_orphans`](crate::host::free_orphans) (`mmf recover`) frees the lock
    /// once no process has the channel open.
    Unknown(&'static str),
}

/// The channel's file as a handle keeps it (for its `flock`, and the kernel lock of its token),
/// and how the handle tells whether the owner of a token is alive: through the kernel locks on
/// that file (tokens with [`KERNEL_HELD`]), else by pid.
#[derive(Debug, Default)]
pub(crate) struct Liveness {
    /// `None` for an anonymous channel or one opened from an image.
    file: Option<std::fs::File>,
}

impl Liveness {
    /// Liveness checks through `file`, which this keeps open.
    pub(crate) fn of(file: Option<std::fs::File>) -> Liveness {
        Liveness { file }
    }

    /// The channel's file.
    pub(crate) fn file(&self) -> Option<&std::fs::File> {
        self.file.as_ref()
    }

    /// Whether the owner of `token` may still be running: `false` only when it is known dead.
    pub(crate) fn alive(&self, token: u64) -> bool {
        self.judge(token) != OwnerState::Dead
    }

    /// What can be told of the owner of `token`.
    ///
    /// * With [`KERNEL_HELD`]: alive while an open description of the file holds a lock on the
    ///   token's byte ([`lock_offset`]), dead once none does. The kernel releases the lock when
    ///   the process dies however it dies, so this holds across PID and time namespaces and
    ///   needs no `/proc`. Unknown if the lock cannot be tested (no file here, an error) or
    ///   another lock covers the byte (a whole-file `fcntl` lock, or `flock` on NFS, which the
    ///   kernel emulates with one).
    /// * Without: a token of another PID namespace, or of an unknown one ([`token_foreign`]),
    ///   is unknown: its pid may name an unrelated process here, or none, and taking a live
    ///   writer's lock or a live reader's pin would let a reader accept a torn value. Otherwise a
    ///   pid that does not exist, or exists with another start time (where both are known), is
    ///   dead.
    pub(crate) fn judge(&self, token: u64) -> OwnerState {
        if token & KERNEL_HELD != 0 {
            let Some(f) = &self.file else {
                return OwnerState::Unknown("its lock cannot be tested without the channel's file");
            };
            return match byte_locked(f, lock_offset(token)) {
                Ok(ByteLock::Exact) => OwnerState::Alive,
                Ok(ByteLock::Free) => OwnerState::Dead,
                Ok(ByteLock::Covered) => {
                    OwnerState::Unknown("another lock on the channel file covers its liveness lock")
                }
                Err(_) => OwnerState::Unknown("its liveness lock cannot be tested on this file"),
            };
        }
        let pid = token_pid(token);
        if pid == 0 {
            return OwnerState::Dead;
        }
        // A token that names no PID namespace: a stray write of a small number (a
        // hostile-mapping review wrote a shell's pid over the lock word), or a live handle
        // that could take no kernel lock (`ENOLCK`, NFS without lockd) and sees no `/proc` of
        // its own. Nothing here tells the two apart, and taking a live writer's lock lets
        // readers accept torn values (a diff review made 125,652 of them so, with a first
        // version that called such tokens dead): said as what it may be, and waited for.
        if token_namespace(token) == 0 {
            return OwnerState::Unknown(
                "its token names no PID namespace and it holds no liveness lock: a process \
                 that could take no kernel lock and sees no /proc of its own, or a stray \
                 write over the lock word",
            );
        }
        if token_foreign(token) {
            return OwnerState::Unknown(
                "it is of another PID namespace and holds no liveness lock, so it cannot be \
                 checked from here",
            );
        }
        if !pid_exists(pid) {
            return OwnerState::Dead;
        }
        let want = token_start(token);
        match process_start_time(pid) {
            Some(start) if want != 0 && start & START_MASK != want => OwnerState::Dead,
            _ => OwnerState::Alive,
        }
    }
}

/// What a test of a token's lock byte found ([`byte_locked`]). (Only Linux has the
/// open-file-description locks that make one: elsewhere the test is `Unsupported`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) enum ByteLock {
    /// No other open file description holds a lock on the byte.
    Free,
    /// Another holds a lock on exactly that byte: the token's owner.
    Exact,
    /// Another holds a lock that covers the byte and more: nothing can be told.
    Covered,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_token_is_of_this_namespace() {
        let me = self_token();
        assert_eq!(token_pid(me), std::process::id());
        assert_eq!(me & KERNEL_HELD, 0);
        if cfg!(target_os = "linux") {
            assert_ne!(namespace_tag(), 0, "Linux with /proc has a namespace tag");
            assert!(!token_foreign(me));
            assert!(Liveness::default().alive(me));
        }
    }

    #[test]
    fn a_token_from_another_namespace_is_never_judged_by_pid() {
        let me = self_token();
        let other = (namespace_tag() % (TAG_MASK - 1)) + 1;
        for pid in [u64::from(std::process::id()), PID_MASK] {
            let foreign = me & !PID_MASK & !(TAG_MASK << PID_BITS) | pid | other << PID_BITS;
            assert!(token_foreign(foreign));
            assert!(Liveness::default().alive(foreign), "pid {pid} elsewhere");
        }
        let unknown = me & !(TAG_MASK << PID_BITS) | PID_MASK;
        assert!(Liveness::default().alive(unknown), "a namespace of tag 0");
    }

    #[test]
    fn a_dead_or_recycled_pid_of_this_namespace_is_dead() {
        if namespace_tag() == 0 {
            return; // no namespace to be "this" one: nothing is judged by pid
        }
        let me = self_token();
        let here = namespace_tag() << PID_BITS;
        let live = Liveness::default();
        assert!(!live.alive(PID_MASK | here), "no such pid");
        assert!(!live.alive(here), "pid 0");
        if token_start(me) != 0 {
            assert!(
                !live.alive(me ^ (1 << 48)),
                "this pid with another start time"
            );
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_kernel_held_token_is_alive_while_its_lock_is_held() {
        let path = std::env::temp_dir().join(format!("mmf-liveness-{}", std::process::id()));
        let checker = std::fs::File::create(&path).unwrap();
        let holder = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let live = Liveness::of(Some(checker));
        let token = claim_token(Some(&holder));
        if !cfg!(target_os = "linux") {
            assert_eq!(
                token & KERNEL_HELD,
                0,
                "no open-file-description locks here"
            );
            let _ = std::fs::remove_file(&path);
            return;
        }
        assert_ne!(
            token & KERNEL_HELD,
            0,
            "Linux has open-file-description locks"
        );
        assert_eq!(
            live.judge(token),
            OwnerState::Alive,
            "held through another description"
        );
        // A lock over the whole file (someone's `lockf`, or `flock` on NFS) covers the byte:
        // nothing can be told, so alive.
        let whole = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mut fl = libc::flock {
            l_type: libc::F_RDLCK as libc::c_short,
            l_whence: libc::SEEK_SET as libc::c_short,
            l_start: 0,
            l_len: 0, // to the end of the file, however far it grows
            l_pid: 0,
        };
        // SAFETY: a valid descriptor and a `flock` that outlives the call.
        let rc = unsafe {
            libc::fcntl(
                std::os::fd::AsRawFd::as_raw_fd(&whole),
                libc::F_OFD_SETLK,
                &mut fl,
            )
        };
        assert_eq!(rc, 0);
        // (After each drop, as long as a process another test is spawning may hold a copy of
        // the descriptor: `testing::once_released`.)
        drop(holder);
        let covered = || matches!(live.judge(token), OwnerState::Unknown(_));
        let _ = crate::testing::once_released(|| covered().then_some(()));
        assert!(covered(), "covered by another lock");
        drop(whole);
        let _ = crate::testing::once_released(|| (!live.alive(token)).then_some(()));
        assert!(!live.alive(token), "released with the last descriptor");
        assert!(
            Liveness::default().alive(token),
            "without a file: cannot tell, so alive"
        );
        let _ = std::fs::remove_file(&path);
    }
}
