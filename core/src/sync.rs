//! The one door through which the protocol reaches atomics.
//!
//! Under `--cfg mmf_loom` these are loom's model-checked atomics, so `loom_tests` in this crate can
//! explore every interleaving of the publish/read protocol (as crossbeam and bytes do); in normal
//! builds they are the standard library's.

#[cfg(mmf_loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU64, Ordering};
#[cfg(not(mmf_loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU64, Ordering};

/// An Acquire load of `word` that is sound on a read-only mapping too (`PROT_READ`, a read-only
/// handle's): the standard library promises only `Relaxed` loads of up to 8 bytes to work on
/// read-only memory (an `Acquire` or `SeqCst` load may be a read-modify-write on some target).
/// So a `Relaxed` load, then an Acquire fence, which orders every later access after the load
/// as an `Acquire` load would (and more).
#[inline]
pub(crate) fn load_acquire(word: &AtomicU64) -> u64 {
    let value = word.load(Ordering::Relaxed);
    fence(Ordering::Acquire);
    value
}

/// Tell the scheduler (or loom) that this thread is waiting for another one.
#[inline]
pub(crate) fn spin_hint(round: u32) {
    #[cfg(mmf_loom)]
    {
        let _ = round;
        loom::thread::yield_now();
    }
    #[cfg(not(mmf_loom))]
    {
        if round < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}
