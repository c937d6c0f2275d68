//! The thin platform layer: where shared memory lives, allocating a file's blocks up front, and
//! telling whether a process is still alive. One file per platform, chosen at compile time (the
//! memmap2 pattern); `stub.rs` answers `Unsupported` where no port exists yet.

#[cfg_attr(unix, path = "unix.rs")]
#[cfg_attr(not(unix), path = "stub.rs")]
mod imp;

pub(crate) use imp::*;

/// Identity of a live process as stored in lock and pin-owner words (docs/FORMAT.md §5):
///
/// | bits | what |
/// |---|---|
/// | 0-31 | the pid, as the process's own PID namespace numbers it |
/// | 32-47 | a tag of that PID namespace ([`namespace_tag`]; 0 = unknown) |
/// | 48-63 | the low 16 bits of its start time in clock ticks since boot (0 = unknown) |
///
/// The start time keeps a recycled pid from passing for the process that died; the namespace
/// tag keeps a process from judging a token it cannot check: a pid means nothing outside its
/// namespace, so a token from another one is never taken for dead ([`token_alive`]).
pub(crate) fn token_pid(token: u64) -> u32 {
    token as u32
}

/// The namespace tag of a token (bits 32-47).
fn token_namespace(token: u64) -> u16 {
    (token >> 32) as u16
}

/// The start-time bits of a token (bits 48-63).
fn token_start(token: u64) -> u16 {
    (token >> 48) as u16
}

/// The 16 low bits of a start time as a token holds them.
fn start_bits(ticks: u64) -> u16 {
    ticks as u16
}

/// This process's PID namespace as a token's 16-bit tag: 1 to 65535, or 0 where the namespace is
/// unknown. Linux numbers namespace inodes from one counter (from 0xF000_0000 on, the initial
/// PID namespace 0xEFFF_FFFC), so live namespaces get distinct tags unless 65,535 or more of
/// those inodes lie between them. Asked anew each time (one `stat`): a process can move its
/// children into a new namespace and fork without exec, and the rare callers (a handle's
/// creation, a dead-owner check) can afford it.
pub(crate) fn namespace_tag() -> u16 {
    pid_namespace().map_or(0, |ino| (ino % 65_535) as u16 + 1)
}

/// This process's token (see [`token_pid`]). Computed once per handle, not per operation.
pub(crate) fn self_token() -> u64 {
    let pid = std::process::id();
    let start = process_start_time(pid).map_or(0, start_bits);
    u64::from(pid) | u64::from(namespace_tag()) << 32 | u64::from(start) << 48
}

/// Whether a token names a process of another PID namespace than this one's (or one of the two
/// namespaces is unknown while the other is not), whose liveness this process cannot check.
pub(crate) fn token_foreign(token: u64) -> bool {
    token_namespace(token) != namespace_tag()
}

/// Whether the process a token names may still be running: `false` only when it is known dead.
///
/// A token of this PID namespace whose pid does not exist, or exists with another start time, is
/// dead; where either start time is unknown (0), only the pid is compared. A token of another
/// namespace ([`token_foreign`]) is taken as alive: its pid may name an unrelated process here or
/// none at all, and taking a live writer's lock or a live reader's pin would let a reader accept
/// a torn value. Such an owner's lock or entry is only ever recovered from its own namespace.
pub(crate) fn token_alive(token: u64) -> bool {
    let pid = token_pid(token);
    if pid == 0 {
        return false;
    }
    if token_foreign(token) {
        return true;
    }
    if !pid_exists(pid) {
        return false;
    }
    let want = token_start(token);
    match process_start_time(pid) {
        Some(start) if want != 0 => start_bits(start) == want,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_token_is_alive_and_of_this_namespace() {
        let me = self_token();
        assert_eq!(token_pid(me), std::process::id());
        assert!(!token_foreign(me));
        assert!(token_alive(me));
        if cfg!(target_os = "linux") {
            assert_ne!(namespace_tag(), 0, "Linux with /proc has a namespace tag");
            assert_ne!(token_start(me), 0, "with /proc the start time is known");
        }
    }

    #[test]
    fn a_token_from_another_namespace_is_never_judged_dead() {
        let me = self_token();
        // The same pid, and a pid that surely does not exist here, in another namespace.
        let other_ns = u64::from(namespace_tag().wrapping_add(1).max(1)) << 32;
        let mask = 0xffff_u64 << 32;
        for pid in [u64::from(std::process::id()), 0x7fff_fff0] {
            let foreign = (me & !mask & !0xffff_ffff) | pid | other_ns;
            assert!(token_foreign(foreign));
            assert!(token_alive(foreign), "pid {pid} of another namespace");
        }
    }

    #[test]
    fn a_dead_or_recycled_pid_of_this_namespace_is_dead() {
        let me = self_token();
        let ns = u64::from(namespace_tag()) << 32;
        assert!(!token_alive(0x7fff_fff0 | ns), "no such pid");
        assert!(!token_alive(ns), "pid 0");
        if token_start(me) != 0 {
            // This pid with another start time: the pid was recycled.
            let recycled = me ^ (1 << 48);
            assert!(!token_alive(recycled));
        }
    }
}
