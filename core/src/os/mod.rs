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
/// | 0-21 | the pid, as the process's own PID namespace numbers it (Linux pids are below 2^22) |
/// | 22-47 | a tag of that PID namespace ([`namespace_tag`]; 0 = unknown) |
/// | 48-62 | the low 15 bits of its start time in clock ticks since boot (0 = unknown) |
/// | 63 | [`KERNEL_HELD`]: the process holds the kernel lock of [`lock_offset`] on the file |
///
/// A token with bit 63 is alive exactly while some open file description holds a lock on
/// its byte of the channel's file, which the kernel drops when the last one closes, whatever
/// namespaces the two processes are in ([`Liveness::alive`]). Without it (an anonymous channel,
/// a platform or file system without open-file-description locks), liveness falls back to the
/// pid, and then only within one PID namespace.
pub(crate) fn token_pid(token: u64) -> u32 {
    (token & PID_MASK) as u32
}

/// Bit 63 of a token: its process holds a shared open-file-description lock on byte
/// [`lock_offset`] of the channel's file for as long as it may own anything in the channel.
pub(crate) const KERNEL_HELD: u64 = 1 << 63;

const PID_BITS: u32 = 22;
const PID_MASK: u64 = (1 << PID_BITS) - 1;
const TAG_BITS: u32 = 26;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;
/// A tag no namespace gets: "never judge this token by its pid" (a pid too large for 22 bits).
const TAG_UNJUDGEABLE: u64 = TAG_MASK;
const START_MASK: u64 = (1 << 15) - 1;

/// The byte of the channel's file whose lock says that the process of `token` is alive: the
/// token without bit 63 (so below 2^63, a valid `off_t`). Far beyond the end of any channel:
/// nothing else locks there.
pub(crate) fn lock_offset(token: u64) -> u64 {
    token & !KERNEL_HELD
}

/// The namespace tag of a token (bits 22-47).
fn token_namespace(token: u64) -> u64 {
    (token >> PID_BITS) & TAG_MASK
}

/// The start-time bits of a token (bits 48-62).
fn token_start(token: u64) -> u64 {
    (token >> 48) & START_MASK
}

/// This process's PID namespace as a token's 26-bit tag: 1 to 2^26 - 2, or 0 where the
/// namespace is unknown. Linux numbers these inodes from one counter it shares with other
/// `/proc` entries (some hundred of them per network namespace), so live namespaces get
/// distinct tags unless tens of millions of inodes lie between them. Asked anew each time (one
/// `stat`): a process can move its children into a new namespace and fork without exec, and the
/// rare callers (a handle's creation, a dead-owner check) can afford it.
pub(crate) fn namespace_tag() -> u64 {
    pid_namespace().map_or(0, |ino| ino % (TAG_MASK - 1) + 1)
}

/// This process's token without [`KERNEL_HELD`] (see [`token_pid`]).
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

/// This process's token for a handle on `file` (`None`: an anonymous channel): with
/// [`KERNEL_HELD`] if the lock of its byte could be taken on `file` (then held until the file
/// is closed), else without. Computed once per read-write handle.
pub(crate) fn claim_token(file: Option<&std::fs::File>) -> u64 {
    let token = self_token();
    match file {
        Some(f) if lock_shared_byte(f, lock_offset(token)).is_ok() => token | KERNEL_HELD,
        _ => token,
    }
}

/// Whether a token without [`KERNEL_HELD`] names a process of another PID namespace than this
/// one's, or one whose namespace is unknown on either side: its pid cannot be checked from here.
pub(crate) fn token_foreign(token: u64) -> bool {
    let mine = namespace_tag();
    let theirs = token_namespace(token);
    mine == 0 || theirs == 0 || theirs != mine
}

/// How a handle tells whether the process of a token is alive: through the kernel locks on its
/// channel's file (tokens with [`KERNEL_HELD`]), else by pid.
#[derive(Debug, Default)]
pub(crate) struct Liveness {
    /// The channel's file (a duplicate of the handle's descriptor); `None` for an anonymous
    /// channel or a read-only handle, which never judge an owner.
    file: Option<std::fs::File>,
}

impl Liveness {
    /// Liveness checks through `file`.
    pub(crate) fn of(file: Option<std::fs::File>) -> Liveness {
        Liveness { file }
    }

    /// Whether the process of `token` may still be running: `false` only when it is known dead.
    ///
    /// * With [`KERNEL_HELD`]: alive while any open description of the file holds a lock on
    ///   the token's byte ([`lock_offset`]). The kernel releases it when the process dies
    ///   however it dies, so this holds across PID and time namespaces and needs no `/proc`.
    ///   If the lock cannot be tested (no file here, an error), alive.
    /// * Without: a token of another PID namespace, or of an unknown one ([`token_foreign`]), is
    ///   alive: its pid may name an unrelated process here, or none, and taking a live writer's
    ///   lock or a live reader's pin would let a reader accept a torn value. Otherwise a pid
    ///   that does not exist, or exists with another start time (where both are known), is dead.
    pub(crate) fn alive(&self, token: u64) -> bool {
        if token & KERNEL_HELD != 0 {
            return match &self.file {
                Some(f) => byte_locked(f, lock_offset(token)).unwrap_or(true),
                None => true,
            };
        }
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
            Some(start) if want != 0 => start & START_MASK == want,
            _ => true,
        }
    }
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
        assert!(live.alive(token), "held through another description");
        drop(holder);
        assert!(!live.alive(token), "released with the last descriptor");
        assert!(
            Liveness::default().alive(token),
            "without a file: cannot tell, so alive"
        );
        let _ = std::fs::remove_file(&path);
    }
}
