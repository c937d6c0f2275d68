//! Blocking until the next value: a futex on the header's `latest` word.
//!
//! The futex word is the low 32 bits of `latest` (generation << 8 | slot), which every publish
//! changes anyway, so a publish with nobody waiting pays one extra load (of `waiters`, on the
//! cache line it has just written) and nothing else.
//!
//! Waiter: count itself in `waiters` (SeqCst), load `latest` (SeqCst); if the generation moved,
//! done; else `FUTEX_WAIT(latest, low 32 bits seen)`, which sleeps only if the word still holds
//! that value. Writer: store `latest` (Release), a SeqCst fence, then load `waiters` (SeqCst) and
//! `FUTEX_WAKE` if it is not zero. In the single total order of SeqCst operations either the
//! waiter's load follows the writer's fence (so it sees the new generation, which the store
//! sequenced before the fence wrote, and does not sleep), or the writer's load follows the
//! waiter's increment (it wakes); a wake that comes between the waiter's check and
//! its `FUTEX_WAIT` makes the wait return at once because the word changed. Spurious wake-ups,
//! signals and timeouts simply loop back to the check. So no wake-up is lost.
//!
//! A handle counts itself through its reader-pin entry (`PIN_WAITING`), so that when a waiting
//! process dies, the process that later takes its entry over subtracts it from `waiters` again;
//! until then writers merely make a few unneeded wake calls. Handles without an entry (read-only
//! mappings, all entries taken) and platforms without futexes poll `latest` with a backoff that
//! grows to 1 ms.
//!
//! `waiters` lives in shared memory, so a peer can store anything there (or the repair of a dead
//! waiter's entry can take off too much). A sleeper therefore never sleeps longer than
//! [`MAX_SLEEP`] at a time before it looks at `latest` again: a wrong count costs a wake-up at
//! most that much latency, never the wake-up itself.

use std::time::{Duration, Instant};

/// The longest one futex sleep of a waiter (blocking, or the async notifier thread) before it
/// checks `latest` again, whatever the count of waiters says.
pub(crate) const MAX_SLEEP: Duration = Duration::from_millis(100);

use crate::layout::*;
use crate::os;
use crate::snapshot::Snapshot;
use crate::stop::Until;
use crate::sync::{load_acquire, Ordering};

impl Snapshot {
    /// Blocks until the generation exceeds `since` (returning it) or `until` is over (`None`:
    /// its deadline passed, or its [`Stop`](crate::Stop) was stopped). `pin` is the caller's
    /// reader-pin entry, if it has one; `spin` how long to spin first.
    ///
    /// With `Stop`s, the futex sleep is one `futex_waitv` on `latest` and each stop's private
    /// word, so that [`Stop::stop`](crate::Stop::stop) (a store, then a wake) ends it with
    /// nothing lost: the kernel compares every word before sleeping. Without `futex_waitv` it
    /// sleeps in slices of a millisecond.
    ///
    /// `mark`: a follower's view of the header's `retired` word at its last look at the name;
    /// once the word reads otherwise, the wait returns `None` early, so that the follower looks
    /// again. The retiring process wakes the futexes of `latest` and `retired` after its store;
    /// the sleep is one `futex_waitv` on both (and the stops' words), so a mark stored between
    /// this check and the sleep ends it too. Without `futex_waitv` the sleep is on `latest`
    /// alone, and a wake lost in that window is made up by the sleep's bound ([`MAX_SLEEP`]).
    pub(crate) fn wait_for_change(
        &self,
        pin: Option<usize>,
        since: u64,
        until: &Until,
        spin: Duration,
        mark: Option<u64>,
    ) -> Option<u64> {
        let latest = self.region.word(H_LATEST);
        // Both looks work on a read-only handle's mapping (`load_acquire`). The futex loop's own
        // SeqCst load below, which the waiter count's protocol needs, runs on writable
        // mappings alone.
        let retired_word = self.region.word(H_RETIRED);
        let retired = || mark.is_some_and(|m| load_acquire(retired_word) != m);
        // A mapping the `SIGBUS` handler tripped (`truncation`) is private zero pages now, which
        // no writer reaches: "moved", to `since + 1`, so that the caller reads (and learns
        // `Truncated`) instead of waiting out its timeout, or looping on `None`.
        let moved = || {
            let g = split_latest(load_acquire(latest)).0;
            if g > since {
                Some(g)
            } else if self.region.tripped() {
                Some(since.saturating_add(1))
            } else {
                None
            }
        };
        if let Some(g) = moved() {
            return Some(g);
        }
        if retired() {
            return None;
        }
        if let Some(done) = spin_first(spin, until, moved) {
            return done;
        }
        let remaining = || until.left();
        let Some(e) = pin.filter(|_| os::FUTEX && self.region.writable()) else {
            // Polling fallback.
            let mut nap = Duration::from_micros(20);
            loop {
                if let Some(g) = moved() {
                    return Some(g);
                }
                if retired() {
                    return None;
                }
                // Over: one more look (as above).
                let Some(left) = remaining() else {
                    return moved();
                };
                std::thread::sleep(nap.min(left));
                nap = (nap * 2).min(Duration::from_millis(1));
            }
        };
        // The timeout passed (a zero one, or used up spinning), or a stop came: not counted as
        // a waiter, which would make writers issue wake-ups for nobody; one more look.
        if remaining().is_none() {
            return moved();
        }
        self.enter_waiting(e);
        let result = loop {
            let l = latest.load(Ordering::SeqCst);
            let g = split_latest(l).0;
            if g > since {
                break Some(g);
            }
            if self.region.tripped() {
                break Some(since.saturating_add(1));
            }
            if retired() {
                break None;
            }
            // Over: one more look, for a value published between the load above and a stop
            // (or the deadline) that ends the wait.
            let Some(left) = remaining() else {
                break moved();
            };
            let left = left.min(MAX_SLEEP);
            // A follower sleeps on the `retired` word too, expecting the mark it looked at: a
            // mark stored after `retired()` above, whose wake came before this sleep, still
            // ends it, for the kernel compares every word before it sleeps.
            let stops = until.stop_words();
            let slept = match mark {
                Some(m) => os::wait_while_any(
                    &[(latest, l as u32), (retired_word, m as u32)],
                    &stops,
                    left,
                ),
                None if stops.is_empty() => {
                    os::wait_while(latest, l as u32, left);
                    true
                }
                None => os::wait_while_unstopped(latest, l as u32, &stops, left),
            };
            // No `futex_waitv` (before Linux 5.16, or a seccomp filter): the futex on `latest`
            // alone, in slices of a millisecond where a stop must be seen. A follower's mark
            // whose wake is lost then waits out this sleep (`MAX_SLEEP` at most).
            if !slept {
                let slice = if stops.is_empty() {
                    left
                } else {
                    left.min(Duration::from_millis(1))
                };
                os::wait_while(latest, l as u32, slice);
            }
        };
        self.leave_waiting(e);
        result
    }

    /// Counts one waiter in the header, through pin entry `e` (so it can be repaired).
    ///
    /// The header's count goes up first and, in [`leave_waiting`](Snapshot::leave_waiting),
    /// down last: a process that dies between the two adds then leaves `waiters` too high
    /// (writers make a needless wake call) rather than too low. The other order could let the
    /// repair of its entry subtract a count `waiters` never got, taking off another sleeper's,
    /// whom writers would then stop waking.
    ///
    /// Both adds saturate: a peer that stored `u64::MAX` there must not make the count wrap to 0,
    /// which would tell writers that nobody waits.
    pub(crate) fn enter_waiting(&self, e: usize) {
        let up = |w: &crate::sync::AtomicU64| {
            let _ = w.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                Some(v.saturating_add(1))
            });
        };
        up(self.region.word(H_WAITERS));
        up(self.region.word(self.layout.pin(e, PIN_WAITING)));
    }

    /// Undoes [`enter_waiting`](Snapshot::enter_waiting): the header's count comes off only if
    /// the entry still held this wait's. Whoever took the entry's count meanwhile (a takeover of
    /// the entry, or its release by a handle this one shares it with: a forked child waits
    /// through the entry its parent claimed, and the parent may close that handle) lowered the
    /// header by as much; lowering it again took another sleeper's count, and writers skipped
    /// that sleeper's wake (it saw the value only at its 100 ms re-check). An entry a peer
    /// zeroed leaves the header too high instead: a needless wake, which writers mend.
    pub(crate) fn leave_waiting(&self, e: usize) {
        let mine = self.region.word(self.layout.pin(e, PIN_WAITING));
        let held = mine.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1));
        if held.is_ok() {
            self.sub_waiters(1);
        }
    }
}

/// A wait's spin before it sleeps: for `spin`, never past `until`'s deadline (and no overflow for
/// a spin of `Duration::MAX`), `look` every 64 pauses. `Some` of what the wait returns: what a
/// look found, or, once a stop came, what one more look finds (a value published before the
/// stop: a worker's last, published right before its exit turned it); `None` once the spin is
/// over with nothing found.
fn spin_first<T>(spin: Duration, until: &Until, look: impl Fn() -> Option<T>) -> Option<Option<T>> {
    if spin.is_zero() {
        return None;
    }
    let now = Instant::now();
    let spin_end = match (now.checked_add(spin), until.deadline()) {
        (Some(u), Some(d)) => u.min(d),
        (Some(u), None) => u,
        (None, d) => d.unwrap_or(now + Duration::from_secs(3600)),
    };
    while Instant::now() < spin_end {
        for _ in 0..64 {
            std::hint::spin_loop();
        }
        if let Some(found) = look() {
            return Some(Some(found));
        }
        if until.stopped() {
            return Some(look());
        }
    }
    None
}

/// One channel of a [`wait_any`]: its mapping, its handle's reader-pin entry (if it has one) and
/// the generation waited past.
pub(crate) struct AnyWait<'a> {
    pub snap: &'a Snapshot,
    pub pin: Option<usize>,
    pub since: u64,
}

impl AnyWait<'_> {
    /// The generation, if it moved past `since` (or `since + 1` for a mapping the `SIGBUS`
    /// handler tripped, as in [`Snapshot::wait_for_change`]).
    fn moved(&self) -> Option<u64> {
        self.moved_at(load_acquire(self.snap.region.word(H_LATEST)))
    }

    /// [`moved`](Self::moved), of `latest` loaded as `l`.
    fn moved_at(&self, l: u64) -> Option<u64> {
        let g = split_latest(l).0;
        if g > self.since {
            Some(g)
        } else if self.snap.region.tripped() {
            Some(self.since.saturating_add(1))
        } else {
            None
        }
    }

    /// The entry this wait counts itself through: `None` where it polls instead (no entry, a
    /// read-only mapping, no futex).
    fn sleeps(&self) -> Option<usize> {
        self.pin
            .filter(|_| os::FUTEX && self.snap.region.writable())
    }
}

/// [`Snapshot::wait_for_change`] on several channels at once: blocks until the generation of any
/// of `items` exceeds its `since`, and returns the first such item's index (in the order given)
/// with its generation; `None` once `until` is over, after one more look.
///
/// Each item that can sleep on its futex ([`AnyWait::sleeps`]) counts itself in its header's
/// `waiters` before its first SeqCst look, as a single wait does, so that no wake-up is lost;
/// the sleep is one `futex_waitv` on every such item's `latest` and every stop's word. Items
/// that cannot sleep there are looked at between sleeps, which are then at most a millisecond
/// long; where no item can, the wait polls as a single one does.
pub(crate) fn wait_any(
    items: &[AnyWait<'_>],
    until: &Until,
    spin: Duration,
) -> Option<(usize, u64)> {
    let look = || {
        items
            .iter()
            .enumerate()
            .find_map(|(i, w)| w.moved().map(|g| (i, g)))
    };
    if let Some(found) = look() {
        return Some(found);
    }
    if let Some(done) = spin_first(spin, until, look) {
        return done;
    }
    // Each item's entry, where it sleeps on its futex.
    let entries: Vec<Option<usize>> = items.iter().map(AnyWait::sleeps).collect();
    if entries.iter().all(Option::is_none) {
        // Polling fallback, as a single wait's.
        let mut nap = Duration::from_micros(20);
        loop {
            if let Some(found) = look() {
                return Some(found);
            }
            let Some(left) = until.left() else {
                return look();
            };
            std::thread::sleep(nap.min(left));
            nap = (nap * 2).min(Duration::from_millis(1));
        }
    }
    if until.left().is_none() {
        return look();
    }
    let sleepers = || {
        items
            .iter()
            .zip(&entries)
            .filter_map(|(w, e)| e.map(|e| (w.snap, e)))
    };
    for (snap, e) in sleepers() {
        snap.enter_waiting(e);
    }
    // Items that cannot sleep are looked at every millisecond.
    let slice = if entries.iter().all(Option::is_some) {
        MAX_SLEEP
    } else {
        Duration::from_millis(1)
    };
    let stops = until.stop_words();
    let result = loop {
        // Every item in order, the sleepers' words with SeqCst (the waiter count's protocol),
        // each word's value kept for the sleep. Two handles of one mapping share a word: the
        // kernel is given each address once.
        let mut words: Vec<(&crate::sync::AtomicU64, u32)> = Vec::with_capacity(items.len());
        let mut found = None;
        for (i, (w, e)) in items.iter().zip(&entries).enumerate() {
            let latest = w.snap.region.word(H_LATEST);
            let l = if e.is_some() {
                latest.load(Ordering::SeqCst)
            } else {
                load_acquire(latest)
            };
            if let Some(g) = w.moved_at(l) {
                found = Some((i, g));
                break;
            }
            if e.is_some() && !words.iter().any(|&(word, _)| std::ptr::eq(word, latest)) {
                words.push((latest, l as u32));
            }
        }
        if found.is_some() {
            break found;
        }
        // Over: one more look, for a value published between the loads above and a stop (or
        // the deadline) that ends the wait.
        let Some(left) = until.left() else {
            break look();
        };
        let left = left.min(slice);
        if !os::wait_while_any(&words, &stops, left) {
            os::wait_while(words[0].0, words[0].1, left.min(Duration::from_millis(1)));
        }
    };
    for (snap, e) in sleepers() {
        snap.leave_waiting(e);
    }
    result
}
