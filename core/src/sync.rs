//! The one door through which the protocol reaches atomics.
//!
//! Under `--cfg loom` these are loom's model-checked atomics, so `tests/loom` in this crate can
//! explore every interleaving of the publish/read protocol (as crossbeam and bytes do); in normal
//! builds they are the standard library's.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU64, Ordering};

/// Tell the scheduler (or loom) that this thread is waiting for another one.
#[inline]
pub(crate) fn spin_hint(round: u32) {
    #[cfg(loom)]
    {
        let _ = round;
        loom::thread::yield_now();
    }
    #[cfg(not(loom))]
    {
        if round < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}
