//! Writer exclusion across processes, without a kernel lock on the fast path.
//!
//! The lock is one header word: 0 when free, else the owner's token (`os::token_pid`).
//! Acquiring is one compare-and-swap. A writer that finds the word taken spins briefly, then
//! yields, and from time to time asks the OS whether the owner is still alive: an owner that
//! died (SIGKILL mid-publish) no longer holds its kernel lock on the channel file (or, judged by
//! pid, has a missing pid or a different start time), and the waiter takes the lock over with a compare-and-swap from the dead token, so exactly one
//! waiter recovers it. The dead writer was writing a slot that is neither the latest nor pinned,
//! and left that slot's stamp odd, so the last committed value stays readable throughout.
//!
//! Whether an owner is alive is `os::Liveness`'s to say: by the kernel lock every read-write
//! handle on a file holds (across PID namespaces), else by pid within one namespace; an owner
//! that cannot be judged is never taken for dead (FORMAT.md §5, §14).

use std::time::{Duration, Instant};

use crate::os;
use crate::sync::{spin_hint, AtomicU64, Ordering};

/// Why the lock could not be had.
#[derive(Debug)]
pub(crate) struct Busy {
    /// Token of the owner seen last.
    pub owner: u64,
    pub waited: Duration,
}

/// How often a waiting writer checks whether the owner is alive.
const LIVENESS_EVERY: Duration = Duration::from_millis(1);

/// Takes the writer lock for `token`, recovering it from a dead owner, or gives up after
/// `timeout`. Returns whether the lock was taken over from a dead owner.
///
/// The uncontended case, one compare-and-swap, is inlined into the publish; the wait is not.
#[inline(always)]
pub(crate) fn acquire(
    word: &AtomicU64,
    token: u64,
    timeout: Duration,
    live: &os::Liveness,
) -> Result<bool, Busy> {
    if try_acquire(word, token) {
        return Ok(false);
    }
    acquire_contended(word, token, timeout, live)
}

/// Takes the writer lock for `token` if it is free: one compare-and-swap, no waiting.
#[inline(always)]
pub(crate) fn try_acquire(word: &AtomicU64, token: u64) -> bool {
    // SeqCst (a full barrier) so that the pin scan that follows is ordered after the previous
    // writer's store of `latest` and the SeqCst fence after it (see snapshot.rs).
    word.compare_exchange(0, token, Ordering::SeqCst, Ordering::Relaxed)
        .is_ok()
}

/// Spins before the wait loop reads the clock and judges the owner: a lock is usually held for
/// a publish's few hundred nanoseconds. Under loom none, so that a model reaches the takeover of
/// a dead owner's lock within its preemption bound.
const SPINS_BEFORE_CHECKS: u32 = if cfg!(mmf_loom) { 0 } else { 32 };

/// After this long a waiting writer sleeps between its looks at the lock instead of yielding.
const YIELD_FOR: Duration = Duration::from_micros(200);

/// How long a writer that has waited `waited` for the lock sleeps before it looks again: nothing
/// for the first [`YIELD_FOR`] (a publish holds the lock for nanoseconds to microseconds), then
/// an eighth of the wait so far, at most [`LIVENESS_EVERY`], so a lock held for long is taken
/// at most ~12 % later than it is freed. Never under loom, which has no clock.
fn backoff(waited: Duration) -> Option<Duration> {
    (!cfg!(mmf_loom) && waited >= YIELD_FOR).then(|| (waited / 8).min(LIVENESS_EVERY))
}

/// [`acquire`] after its first compare-and-swap failed: spin, yield, check the owner's liveness.
#[cold]
#[inline(never)]
fn acquire_contended(
    word: &AtomicU64,
    token: u64,
    timeout: Duration,
    live: &os::Liveness,
) -> Result<bool, Busy> {
    let start = Instant::now();
    let mut next_check = Duration::ZERO;
    let mut round = 0u32;
    let mut owner = word.load(Ordering::Relaxed);
    loop {
        let cur = word.load(Ordering::Relaxed);
        if cur == 0 {
            if word
                .compare_exchange(0, token, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
            {
                return Ok(false);
            }
        } else {
            owner = cur;
        }
        if round >= SPINS_BEFORE_CHECKS {
            // Every way round the loop ends here, failed compare-and-swaps included: a peer that
            // keeps rewriting the word (freeing it, or storing fresh dead owners) cannot keep a
            // publish past its timeout.
            let waited = start.elapsed();
            if cur != 0 && waited >= next_check {
                next_check = waited + LIVENESS_EVERY;
                if cur != token
                    && !live.alive(cur)
                    && word
                        .compare_exchange(cur, token, Ordering::SeqCst, Ordering::Relaxed)
                        .is_ok()
                {
                    return Ok(true);
                }
            }
            if waited >= timeout {
                return Err(Busy { owner, waited });
            }
            if let Some(nap) = backoff(waited) {
                // Held for long (a slow `publish_with` fill, a stopped process): sleep instead
                // of yielding, which cost a waiting `mmf out` 60 % of a core for its timeout.
                std::thread::sleep(nap.min(timeout - waited));
                continue;
            }
        }
        spin_hint(round);
        round = round.saturating_add(1);
    }
}

/// Releases the lock (only ever called by its owner).
#[inline]
pub(crate) fn release(word: &AtomicU64) {
    word.store(0, Ordering::Release);
}
