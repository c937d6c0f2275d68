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

/// Extra `open(2)` flags: never follow a symlink planted under a channel's name.
pub(crate) const NOFOLLOW: i32 = libc::O_NOFOLLOW;

/// Gives `file` `len` bytes of real storage now, so that a full `/dev/shm` is an `ENOSPC` here and
/// not a `SIGBUS` on first touch later (`ftruncate` alone would make a sparse file).
pub(crate) fn allocate(file: &File, len: u64) -> io::Result<()> {
    let off_len = libc::off_t::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "size too large"))?;
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    {
        // SAFETY: `posix_fallocate` only reads its integer arguments; the fd is open and owned by
        // `file` for the duration of the call.
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, off_len) };
        match rc {
            0 => return Ok(()),
            // File systems without fallocate: fall back to a sized (possibly sparse) file.
            libc::EOPNOTSUPP | libc::EINVAL => {}
            err => return Err(io::Error::from_raw_os_error(err)),
        }
    }
    let _ = off_len;
    file.set_len(len)
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

/// Start time of a process in clock ticks since boot (field 22 of `/proc/PID/stat`), or `None`
/// where `/proc` is not available.
pub(crate) fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: skip past the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // `rest` starts at field 3; field 22 is the 20th of them.
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}
