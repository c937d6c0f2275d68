//! Threads racing on one in-process channel through the real [`Region`](crate::region::Region):
//! raw pointers into an anonymous mapping and the word-copy routines of `region.rs`, which the
//! loom models (`loom_tests.rs`) never reach, since under loom a region is heap cells.
//!
//! Natively these run many rounds and check every value read whole. Under Miri they are how the
//! `unsafe` code of `region.rs` and the seqlock's claim of soundness are checked: Miri reports
//! a data race between a copy and any plain access (the reason the copies are atomic), an
//! access outside the mapping, a read of uninitialised memory and a misaligned pointer, and it
//! emulates weak memory for the atomics. Run them there with
//! `MIRIFLAGS=-Zmiri-disable-isolation cargo +nightly miri test -p mmf-core --lib race_tests`
//! (`.ci/run` does). Miri executes the portable copies: the x86-64 string and SIMD
//! copies are assembly and intrinsics it cannot run, which the native runs cover.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::frame::Tag;
use crate::layout::{H_LATEST, H_LOCK, H_WRITER_CLAIM};
use crate::snapshot::{Miss, Snapshot, Timeouts};
use crate::testing::{checked_read, publish, snapshot, Read};

const WRITER: u64 = 1;
const PINNED_READER: u64 = 2;
const PEER: u64 = 3;

/// Values each writer publishes in a race. Miri runs a few hundred times slower.
const ROUNDS: u64 = if cfg!(miri) { 24 } else { 3_000 };

/// Words the scribbler writes in [`a_peer_scribbling_anywhere_gives_errors_never_a_crash`].
const SCRIBBLES: u64 = if cfg!(miri) { 400 } else { 200_000 };

/// Reads the readers of a race must make while its writer (or scribbler) goes on, before it
/// may stop at its `ROUNDS` (or `SCRIBBLES`).
const OVERLAP: u64 = if cfg!(miri) { 8 } else { 200 };

/// How long a writer goes on for want of [`OVERLAP`] reads: readers that never ran meanwhile
/// fail the race.
const RACE_LIMIT: Duration = Duration::from_secs(10);

/// How the threads of a race meet, so that they overlap: run natively, a writer's thousands
/// of publishes were often over before a reader's first read (a review counted no read
/// mid-race in 6 of 8 readers). Each reader says when it has read once; the writer starts once
/// all have, and goes on past its minimum until the readers have read [`OVERLAP`] times while
/// it ran (or for [`RACE_LIMIT`]). Its last generation, then `done`, tell the readers where it
/// ended; `done` is also set if it panics, so that no reader waits for ever.
struct Race {
    readers: usize,
    ready: AtomicUsize,
    overlapped: AtomicU64,
    last: AtomicU64,
    done: AtomicBool,
}

impl Race {
    fn new(readers: usize) -> Race {
        Race {
            readers,
            ready: AtomicUsize::new(0),
            overlapped: AtomicU64::new(0),
            last: AtomicU64::new(0),
            done: AtomicBool::new(false),
        }
    }

    /// The writer's side: waits for every reader's first read, then calls `step` with 1, 2, ...
    /// for at least `min` steps and on until the readers overlapped it enough; `step` returns
    /// the generation it published, if it did.
    fn run_writer(&self, min: u64, mut step: impl FnMut(u64) -> Option<u64>) {
        /// Sets `done` however the writer ends.
        struct Finish<'a>(&'a AtomicBool);
        impl Drop for Finish<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Release);
            }
        }
        let _finish = Finish(&self.done);
        while self.ready.load(Ordering::Acquire) < self.readers {
            std::thread::yield_now();
        }
        let started = std::time::Instant::now();
        for n in 1.. {
            if let Some(g) = step(n) {
                self.last.store(g, Ordering::Relaxed);
            }
            let enough = self.overlapped.load(Ordering::Relaxed) >= OVERLAP;
            if n >= min && (enough || started.elapsed() > RACE_LIMIT) {
                break;
            }
        }
    }

    /// The readers' side: calls `read` until the writer is done, then once more, which must
    /// see its last generation (`None` from `read`: a read that returned no value, which a
    /// scribbled channel may give). `read`'s generations never go back.
    fn run_reader(&self, mut read: impl FnMut(usize) -> Option<u64>) {
        let mut last = 0;
        for round in 0.. {
            let finished = self.done.load(Ordering::Acquire);
            let got = read(round);
            if let Some(g) = got {
                assert!(g >= last, "a read went back from {last} to {g}");
                last = g;
            }
            if round == 0 {
                self.ready.fetch_add(1, Ordering::Release);
            } else if !finished {
                self.overlapped.fetch_add(1, Ordering::Relaxed);
            }
            if finished {
                if got.is_some() {
                    let g = self.last.load(Ordering::Relaxed);
                    assert_eq!(last, g, "a read after the writer's last publish, {g}");
                }
                break;
            }
        }
    }

    /// After the race: the readers did read while the writer ran.
    fn overlapped(&self) {
        let n = self.overlapped.load(Ordering::Relaxed);
        assert!(
            n >= OVERLAP,
            "{n} reads while the writer ran, of {OVERLAP} wanted"
        );
    }
}

/// A writer publishes generations 1, 2, ... (at least `ROUNDS`) while two readers, one pinned
/// and one not, read, each cycling through the read paths. Every value read is whole, a
/// reader's generations never go back, and a read after the last publish sees it.
fn readers_race_a_writer(header_only: bool, checksum: bool, len: usize) {
    let s = snapshot(header_only, 2, checksum, len, "race");
    let race = Race::new(2);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            race.run_writer(ROUNDS, |g| {
                publish(&s, WRITER, g);
                Some(g)
            })
        });
        for pinned in [true, false] {
            let (s, race) = (&s, &race);
            scope.spawn(move || {
                let pin = if pinned {
                    Some(s.claim_pin(PINNED_READER).expect("a free pin entry"))
                } else {
                    None
                };
                let ways = [Read::Fast, Read::General, Read::Slot];
                race.run_reader(|round| {
                    let how = ways[round % ways.len()];
                    let g = checked_read(s, pin, how)
                        .unwrap_or_else(|e| panic!("{how:?} read (pinned: {pinned}): {e}"));
                    Some(g)
                });
                if let Some(e) = pin {
                    s.release_pin(e, PINNED_READER);
                }
            });
        }
    });
    race.overlapped();
}

#[test]
fn readers_racing_a_writer_of_inline_values_see_whole_values() {
    readers_race_a_writer(true, false, 16);
}

#[test]
fn readers_racing_a_writer_of_inline_values_sent_through_slots_see_whole_values() {
    readers_race_a_writer(false, false, 16);
}

#[test]
fn readers_racing_a_writer_of_slot_values_see_whole_values() {
    // Past the inline area (120 B), and not a whole number of words: the copies' tails.
    readers_race_a_writer(true, false, 203);
}

#[test]
fn readers_racing_a_writer_of_checksummed_values_see_whole_values() {
    readers_race_a_writer(true, true, 203);
}

#[test]
fn readers_racing_a_writer_of_page_sized_values_see_whole_values() {
    readers_race_a_writer(true, false, 4096);
}

/// The next number of a xorshift generator: the scribbler's, seeded per test.
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// A word a hostile or buggy peer might write: anything, a small count or length, a
/// generation near the channel's, or a `latest` naming a real slot.
fn forged_word(x: &mut u64, s: &Snapshot) -> u64 {
    let r = next(x);
    let latest = s.region.word(H_LATEST).load(Ordering::Relaxed);
    match r % 6 {
        0 => next(x),
        1 => r >> 58,
        2 => u64::MAX - (r >> 60),
        3 => latest.wrapping_add((r % 3) << 8),
        4 => (latest & !0xff) | (r >> 61),
        _ => s.layout.capacity as u64 + (r >> 62),
    }
}

/// A peer writes forged words anywhere in the mapping, the header included, while a writer
/// publishes and a pinned and an unpinned reader read by every path. Nothing may panic, hang or
/// (under Miri) touch memory out of bounds or race; every call returns a value no longer than
/// the capacity, or an error. Once the peer stops and the writer publishes over its damage, the
/// readers read whole values again.
fn a_peer_scribbles(checksum: bool, len: usize, seed: u64) {
    let s = snapshot(true, 2, checksum, len, "scribbled");
    publish(&s, WRITER, 1);
    let words = s.layout.total_bytes / 8;
    let short = Timeouts {
        lock: Duration::from_millis(2),
        read: Duration::from_millis(2),
    };
    let race = Race::new(2);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut x = seed;
            race.run_writer(SCRIBBLES, |_| {
                let i = (next(&mut x) % words as u64) as usize;
                if i == H_LOCK || i == H_WRITER_CLAIM {
                    // A forged lock holder or writer claim refuses every publish (other tests
                    // have it): left out, the writer goes on publishing through the damage.
                    return None;
                }
                let w = forged_word(&mut x, &s);
                s.region.word(i).store(w, Ordering::Relaxed);
                None
            });
        });
        scope.spawn(|| {
            let mut g = 2u64;
            while !race.done.load(Ordering::Acquire) {
                let value = vec![g as u8; len];
                // Refusals are expected (a forged lock holder, say); only a panic is a failure.
                let _ = s.publish_bytes::<true>(WRITER, Tag::BYTES, &short, &value);
                g += 1;
            }
        });
        for pinned in [true, false] {
            let (s, race) = (&s, &race);
            scope.spawn(move || {
                let mut pin = None;
                let mut buf = Vec::new();
                race.run_reader(|round| {
                    if pinned && pin.is_none() {
                        pin = s.claim_pin(PINNED_READER);
                    }
                    buf.clear();
                    let first = match round % 3 {
                        0 => s.read_inline(&mut buf),
                        1 => Err(Miss::Elsewhere),
                        _ => Err(Miss::InlineOvertaken),
                    };
                    let read = match first {
                        Ok(_) => Ok(()),
                        Err(miss) => {
                            buf.clear();
                            let inline = miss != Miss::InlineOvertaken;
                            s.read(|| pin, false, inline, false, &mut buf, &short)
                                .map(|_| ())
                        }
                    };
                    if read.is_ok() {
                        assert!(buf.len() <= len, "{} bytes read of {len}", buf.len());
                    }
                    // Generations are the peer's to forge here: none is checked.
                    None
                });
                if let Some(e) = pin {
                    s.release_pin(e, PINNED_READER);
                }
            });
        }
    });
    race.overlapped();
    // A publish that goes through once the peer has stopped (the peer may have left a forged
    // lock holder or pins, which refuse it) leaves a value that reads whole.
    let value = vec![0xa5; len];
    if s.publish_bytes::<true>(PEER, Tag::BYTES, &short, &value)
        .is_ok()
    {
        let mut buf = Vec::new();
        let read = s.read(|| None, false, true, false, &mut buf, &short);
        assert!(read.is_ok(), "after a publish: {:?}", read.err());
        assert_eq!(buf, value);
    }
}

#[test]
fn a_peer_scribbling_anywhere_gives_errors_never_a_crash() {
    a_peer_scribbles(false, 203, 0x9e37_79b9_7f4a_7c15);
}

#[test]
fn a_peer_scribbling_over_a_checksummed_channel_gives_errors_never_a_crash() {
    a_peer_scribbles(true, 203, 0xd1b5_4a32_d192_ed03);
}

/// A waiter sleeping on the futex (through a pin entry, counted in the header) and a writer
/// play ping-pong: the writer publishes, then waits for the waiter to have seen that value.
/// Every generation is seen, in turn, and the rounds take far less than a wake-up lost each
/// time would cost (each wait then ends at its 100 ms re-check, `MAX_SLEEP`: 20 s for 200
/// rounds; checked by publishing without the wake-up). A second waiter, with a `Stop` beside
/// its timeout, sleeps in `futex_waitv` and ends on the stop, not at its deadline.
///
/// Not under Miri: it models the kernel's read of the futex word (the low half of `latest`) as
/// a 4-byte Rust atomic load, and reports it racing with the writer's 8-byte store of `latest`,
/// a mixed-size race that Rust's memory model leaves undefined. The kernel's read is outside
/// that model, and single-copy atomic on every target mmf builds for (`os::unix::wait_while`).
#[test]
#[cfg_attr(
    miri,
    ignore = "Miri models the kernel's futex read as a mixed-size Rust atomic"
)]
fn waiters_are_woken_by_each_publish_and_by_a_stop() {
    use crate::stop::{Stop, Until};
    use std::time::Instant;
    let s = snapshot(true, 2, false, 64, "wait");
    let rounds = 200;
    let acked = AtomicU64::new(0);
    let stop = Stop::new();
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| {
            let e = s.claim_pin(PINNED_READER).expect("a free pin entry");
            for seen in 0..rounds {
                let until = Until::timeout(Duration::from_secs(20));
                let g = s
                    .wait_for_change(Some(e), seen, &until, Duration::ZERO, None)
                    .expect("woken before the timeout");
                assert_eq!(g, seen + 1);
                checked_read(&s, Some(e), Read::Fast).unwrap();
                acked.store(g, Ordering::Release);
            }
            s.release_pin(e, PINNED_READER);
        });
        let stopped = scope.spawn(|| {
            let e = s.claim_pin(PEER).expect("a second pin entry");
            let until = Until::timeout(Duration::from_secs(60)).or(&stop);
            // Waits past every generation the writer will publish: only the stop ends it.
            let got = s.wait_for_change(Some(e), u64::MAX >> 8, &until, Duration::ZERO, None);
            s.release_pin(e, PEER);
            (got, Instant::now())
        });
        let started = Instant::now();
        for g in 1..=rounds {
            publish(&s, WRITER, g);
            while acked.load(Ordering::Acquire) < g {
                std::thread::yield_now();
            }
        }
        let took = started.elapsed();
        waiter.join().unwrap();
        assert!(
            took < Duration::from_secs(10),
            "{rounds} rounds took {took:?}"
        );
        let asked = Instant::now();
        stop.stop();
        let (got, ended) = stopped.join().unwrap();
        assert_eq!(got, None);
        // Ended by the stop, not by its 60 s deadline (a generous bound: a stop's wake is
        // immediate, and a lost one is made up within `MAX_SLEEP`).
        assert!(ended.duration_since(asked) < Duration::from_secs(30));
    });
}

/// The same race through the public API, on one handle that the threads share (so its
/// reader-pin entry, claimed at the first read, is shared too): `publish_raw` and
/// `publish_with` against `read_into` and `read_raw`, at an inline size and a slot size.
#[test]
fn threads_sharing_a_handle_read_whole_values() {
    for len in [40, 203] {
        let ch = crate::Options::new()
            .capacity(len)
            .readers(2)
            .anonymous()
            .unwrap();
        let race = Race::new(2);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                race.run_writer(ROUNDS, |g| {
                    let value = vec![g as u8; len];
                    let published = if g % 2 == 0 {
                        ch.publish_raw(Tag::BYTES, &value)
                    } else {
                        ch.publish_with(Tag::BYTES, |w| std::io::Write::write_all(w, &value))
                    };
                    assert_eq!(published.unwrap(), g);
                    Some(g)
                })
            });
            for by_raw in [false, true] {
                let (ch, race) = (&ch, &race);
                scope.spawn(move || {
                    let mut buf = Vec::new();
                    race.run_reader(|_| {
                        let meta = if by_raw {
                            let (meta, value) = ch.read_raw().unwrap();
                            buf = value;
                            meta
                        } else {
                            ch.read_into(&mut buf).unwrap()
                        };
                        let g = meta.generation;
                        if g > 0 {
                            assert_eq!(buf.len(), len);
                            assert!(buf.iter().all(|&b| b == g as u8), "torn at {g}: {buf:?}");
                        }
                        Some(g)
                    });
                });
            }
        });
        race.overlapped();
    }
}
