//! The per-slot sequence stamp: crossbeam's `SeqLock` recipe, spelled out for shared memory.
//!
//! Each slot's frame starts with a `u64` stamp. Even means "the slot holds a complete frame",
//! odd means "a writer is (or was, if it died) in the middle of writing it".
//!
//! Writer ([`begin_write`] → payload and frame stores → [`end_write`]):
//! 1. `seq.store(odd, Relaxed)` then `fence(Release)`: the fence orders the odd stamp before
//!    every later store to the slot, so a reader that sees any of the new bytes is guaranteed to
//!    see the stamp move (Boehm, "Can seqlocks get along with programming language memory
//!    models?", MSPC 2012, the fence-based writer).
//! 2. Payload and frame fields: `Relaxed` atomic stores (see `region.rs`).
//! 3. `seq.store(odd + 1, Release)`: everything written before is visible to a reader that
//!    acquires this even stamp.
//!
//! Reader ([`read_begin`] → `Relaxed` loads → [`read_validate`]):
//! 1. `s1 = seq.load(Relaxed)` then `fence(Acquire)` (an acquire load, written as a relaxed load
//!    plus a fence so that it is allowed on a read-only mapping); odd → retry.
//! 2. Copy the frame with `Relaxed` atomic loads.
//! 3. `fence(Acquire)` then `s2 = seq.load(Relaxed)`; keep the copy only if `s1 == s2`. If any
//!    load in step 2 read a store made after a writer's step 1, that writer's release fence
//!    synchronises with this acquire fence, so the reload sees at least the odd stamp and differs.
//!
//! A writer that gives up (or dies) leaves the stamp odd: the slot then reads as "being written"
//! until the next writer completes a frame in it, so no reader can ever accept a half-written
//! slot as the value of its earlier generation. [`begin_write`] accepts an odd stamp and moves
//! past it.

use crate::sync::{fence, AtomicU64, Ordering};

/// Marks a slot "being written" and returns the odd stamp to hand to [`end_write`].
#[inline]
pub(crate) fn begin_write(seq: &AtomicU64) -> u64 {
    let s = seq.load(Ordering::Relaxed);
    let odd = if s.is_multiple_of(2) {
        s.wrapping_add(1)
    } else {
        s.wrapping_add(2)
    };
    seq.store(odd, Ordering::Relaxed);
    fence(Ordering::Release);
    odd
}

/// Marks the slot complete: its frame is the one written since [`begin_write`].
#[inline]
pub(crate) fn end_write(seq: &AtomicU64, odd: u64) {
    seq.store(odd.wrapping_add(1), Ordering::Release);
}

/// Starts an optimistic read: the even stamp, or `None` while a write is in progress.
#[inline]
pub(crate) fn read_begin(seq: &AtomicU64) -> Option<u64> {
    let s = crate::sync::load_acquire(seq);
    s.is_multiple_of(2).then_some(s)
}

/// Ends an optimistic read: true if no write touched the slot since [`read_begin`] returned `s1`.
#[inline]
pub(crate) fn read_validate(seq: &AtomicU64, s1: u64) -> bool {
    fence(Ordering::Acquire);
    seq.load(Ordering::Relaxed) == s1
}
