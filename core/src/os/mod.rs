//! The thin platform layer: where shared memory lives, allocating a file's blocks up front, and
//! telling whether a process is still alive. One file per platform, chosen at compile time (the
//! memmap2 pattern); `stub.rs` answers `Unsupported` where no port exists yet.

#[cfg_attr(unix, path = "unix.rs")]
#[cfg_attr(not(unix), path = "stub.rs")]
mod imp;

pub(crate) use imp::*;

/// Identity of a live process as stored in lock and lease words: the pid in the low 32 bits, the
/// low 32 bits of its start time (clock ticks since boot) in the high 32, so that a recycled pid
/// is not mistaken for the process that died.
pub(crate) fn token_pid(token: u64) -> u32 {
    token as u32
}

/// This process's token (see [`token_pid`]). Computed once per handle, not per operation.
pub(crate) fn self_token() -> u64 {
    let pid = std::process::id();
    let start = process_start_time(pid).unwrap_or(0);
    u64::from(pid) | (u64::from(start as u32) << 32)
}

/// Whether the process a token names is still running.
///
/// A token whose pid does not exist, or exists with another start time, is dead. Where start
/// times are unknown (0), only the pid is compared.
pub(crate) fn token_alive(token: u64) -> bool {
    let pid = token_pid(token);
    if pid == 0 {
        return false;
    }
    if !pid_exists(pid) {
        return false;
    }
    let want = (token >> 32) as u32;
    match process_start_time(pid) {
        Some(start) if want != 0 => start as u32 == want,
        _ => true,
    }
}
