//! The latest-value ("snapshot") protocol: reader-pinned slots over seqlocked frames.
//!
//! # Design
//!
//! A channel made for `R` pinned readers has `R + 2` slots. The header word `latest` names the
//! slot that holds the newest committed frame together with its generation (one atomic word, so
//! readers learn both at once). A writer, holding the writer lock, always writes a slot that is
//! neither `latest` nor pinned by any reader, then publishes it by storing `latest`. Readers copy
//! the slot `latest` names. With `R` readers pinning at most one slot each, at least one slot is
//! always free, so a writer never waits for a reader, and a reader whose pin is in place can never
//! be overwritten mid-copy, so it never starves under a back-to-back writer (the single-buffer
//! seqlock does: its reader restarts whenever a write overlaps its copy).
//!
//! # Why a pin protects the copy (the Dekker argument)
//!
//! Pinned reader: `l = latest.load(SeqCst)`; `pin.store(slot(l), SeqCst)`; copy; validate. Writer:
//! `latest.store(Release)` then a SeqCst fence at the end of one publish; at the start of the
//! next (after the lock's SeqCst compare-and-swap) it scans the pins with SeqCst loads, and it
//! never picks the slot `latest` names (it knows it from `H_WRITTEN`, which holds the same slot,
//! and a generation of the same parity: the same value but after a takeover over a `latest` that
//! a stray write lowered, `resync_written`).
//! The fence, the reader's operations and the scan are in the single total order of SeqCst
//! operations, and a SeqCst load that follows the fence in it sees the store of `latest` or a
//! later one (the fence stands for the store). A writer whose scan follows the pin store sees the
//! pin and avoids the slot for as long as it is pinned. A writer whose scan precedes the pin store
//! can only have picked the slot if `latest` had already moved away from it at that scan, that is,
//! if a whole publish completed between the reader's load of `latest` and its pin store, a window
//! of a few nanoseconds; validation then rejects the copy and the reader tries again. So a pinned
//! reader is overtaken only by that race, never by the length of its own copy, and never starves.
//!
//! Reads are optimistic first: the first attempt copies and validates without pinning (a pin is
//! a store the writer's next scan has to fetch from the reader's core); only a failed attempt
//! pins. With nobody overtaking (request/reply, or a slower writer) reads cost no pin traffic.
//! A handle whose read needed a retry pins from the first attempt for its next reads
//! (`Channel::read_into` keeps the count), so under a writer that publishes back-to-back a
//! reader does not pay a failed optimistic attempt per snapshot.
//!
//! # The polled line
//!
//! Readers poll the cache line of `latest`, so every store a writer makes to it, and every load
//! after a reader has taken it, moves the line between cores. The line therefore holds only
//! `latest` and two descriptors (generation, length, tag) of the values of generations `g` and
//! `g + 1`, which a writer stores right before `latest` (`store_descriptor`); what writers need
//! to read, including their own copy of `latest` (`H_WRITTEN`, stored under the lock right after
//! it, so the next writer picks its slot without touching the polled line), lives on the lock's
//! line. A reader learns a value's length with `latest` and starts copying at once; a value of
//! up to 120 bytes is also in an inline buffer of the header, double-buffered by generation and
//! validated by re-reading `latest` or, once `latest` has moved on, the buffer's own stamp (see
//! `store_descriptor` and `stamp_inline` for why either suffices).
//!
//! # Header-only values
//!
//! While every pin entry's `pinned` word is 0 (no reader copies from a slot or wants to), a value
//! of up to 120 bytes given as one slice goes into the inline buffer alone, and `latest` names
//! no slot ([`NO_SLOT`]): the slot, its stamp and its frame are only needed by a reader that a
//! writer overtakes (`store_header_only`). Such a reader, pinned, stores [`PIN_WANT_SLOTS`] into
//! its entry when `latest` names no slot; every later pin scan sees it, so writers keep values in
//! slots again, which it then pins as above. A handle takes the wish (or its pin) off after
//! `PIN_KEPT_READS` reads in a row that needed no pin (`Channel::read_into`). Readers without a
//! pin entry cannot ask: against a back-to-back writer of small values they retry more.
//!
//! Every copy is still validated: pinning makes retries rare, validation makes torn values
//! impossible whatever a reader's own timing. What validation cannot catch is a writer that
//! rewrites the copy `latest` names while `latest` still names it; honest writers never do, but
//! they find the free copy through `written` (which a writer that breaks the protocol may leave
//! wrong, see FORMAT.md §14), and only a checksum catches what such a writer tears. A slot copy
//! whose descriptor gave its length is validated like an inline copy, by `latest` still naming its
//! generation, and reads the frame line only when that fails (`copy_slot_by_latest`); other slot
//! copies by the slot's seqlock stamp and the frame's generation (`seqlock.rs`). A reader that
//! cannot pin (a read-only mapping, or more readers than pin entries) reads by validation alone:
//! writers rotate through the lowest unpinned slots (all of them for small values, fewer for large
//! ones, see `Layout::rotation`), so the slot it copies is reused only after `rotation - 1` further
//! publishes, sooner when pinned slots are skipped (the copy is then retried).
//!
//! Every bound is local: a reader gives up with `Contended` after a bounded time, every length is
//! checked against the layout before it is used, and a slot index out of range is `Corrupt`.

use std::io;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::frame::{Meta, Tag};
use crate::layout::*;
use crate::lock;
use crate::os;
use crate::region::{Intent, Region, WORD};
use crate::seqlock;
use crate::sync::{spin_hint, AtomicU64, Ordering};

/// Knobs of the bounded waits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// How long a writer waits for another writer's lock.
    pub lock: Duration,
    /// How long a reader keeps retrying before `Contended`.
    pub read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            lock: Duration::from_secs(5),
            read: Duration::from_secs(1),
        }
    }
}

/// A mapped channel: its memory, its validated layout, and what the header said at open.
pub(crate) struct Snapshot {
    pub region: Region,
    pub layout: Layout,
    pub checksum: bool,
    /// The channel's name, for error messages.
    pub name: String,
    /// Whether this handle may publish small values in the header only (`Options::header_only`;
    /// set when the handle is finished, `true` until then).
    pub header_only: bool,
    /// The channel's file, and how this handle tells whether a lock or pin owner is alive (set
    /// when the handle is finished; no file, so checks by pid, until then).
    pub liveness: os::Liveness,
    /// The `latest` word found at open naming a slot whose frame does not match it
    /// ([`damaged_latest`](Self::damaged_latest)): a file restored after a machine crash with
    /// only some of its pages written back, or a mapping another program wrote into. While
    /// `latest` still holds it, reads of that slot read the frame first, which reports the
    /// damage, instead of trusting the descriptor; the next publish replaces it.
    pub damaged: Option<u64>,
    /// What only cold paths keep: boxed, since state held inline made every publish a few
    /// instructions longer by the layout of the handle alone (callgrind: the wake-up record,
    /// 64 B 184 -> 190, 4 KiB 834 -> 852; the truncation verdict, 4 KiB 856 -> 876, without the
    /// check for waiters too).
    pub cold: Box<Cold>,
    /// The words this handle's publishes write for their process (the last writer), less its
    /// pid: its PID namespace, start time and boot ([`os::process_word_rest`]), asked once, when
    /// a writable handle is made (0 for a read-only one, which never writes them).
    pub process_rest: u64,
}

/// A handle's state that only its cold paths touch ([`Snapshot::cold`]).
#[derive(Default)]
pub(crate) struct Cold {
    /// A writer's record of the header's waiter count against the pin entries', taken when
    /// its wake-up calls woke nobody: an excess that stays put is a waiter killed between its
    /// two counts ([`Snapshot::woke_nobody`]).
    idle_wakes: std::sync::Mutex<IdleLook>,
    /// Whether the file was shorter than the mapping when a trip was first reported
    /// ([`truncated`](Snapshot::truncated)): decided once, so that the handle's later errors
    /// say the same (a file shrunk and written again, as `cp` over it does, is whole at a
    /// later look).
    shrunk: std::sync::OnceLock<bool>,
}

#[derive(Default)]
struct IdleLook {
    /// When a publish last looked (at most one look per [`WAITERS_SETTLE`]).
    last: Option<Instant>,
    /// The header and the entries' sum at the last look, when the header exceeded the sum.
    excess: Option<(u64, u64)>,
    /// When a publish last looked for entries counting a dead waiter (at most one look per
    /// [`REAP_EVERY`]).
    reaped: Option<Instant>,
}

/// What one look at the value `latest` names found ([`Snapshot::look_latest`]).
pub(crate) enum Look {
    /// Generation, tag and length, as its frame (or header-only descriptor) states them.
    Value(u64, Tag, usize),
    /// `latest` moved during the look, or the slot's stamp was odd or changed: nothing to
    /// conclude. (A writer stores its odd stamp *before* its Release fence, so a reader that
    /// sees it learns nothing about `latest`: the slot may be one a writer is filling for a
    /// later generation while this reader's `latest` is still an earlier one. Loom found that.)
    Unsettled,
    /// `latest` stayed put while what it names did not match it, which no writer leaves
    /// behind.
    Damaged {
        /// The `latest` word.
        latest: u64,
        /// What is wrong, for an error message.
        what: String,
        /// Whether the frame itself (or the header-only descriptor) is wrong, rather than only
        /// the slot value's descriptor, which a read can do without.
        frame: bool,
    },
}

/// Generation 0's value, "nothing published yet": empty, tagged 0, whatever a stray write left
/// in slot 0's frame or the descriptor of generation 0 (the diff review read 5 bytes there).
fn nothing_yet(buf: &mut Vec<u8>) -> Meta {
    buf.clear();
    Meta {
        generation: 0,
        tag: Tag::EMPTY,
        len: 0,
        retries: 0,
    }
}

/// What a `latest` naming generation 0 means ([`Snapshot::generation_0`]).
#[derive(Debug, PartialEq, Eq)]
enum Gen0 {
    /// Nothing was published when `latest` was loaded: generation 0's empty value, whatever
    /// slot 0's frame holds.
    Unpublished,
    /// Values were published and `latest` has moved on since it was loaded: read again.
    Moved,
    /// Values were published, and `latest` still names generation 0, which no publish stores:
    /// it was overwritten (the message says so; a read adds what may have done it and what
    /// mends it, as `verify` does to a look's damage).
    Overwritten(String),
}

/// After attempts at a read have failed for this long, the reader sleeps between them instead
/// of yielding ([`read_backoff`]).
const READ_YIELD_FOR: Duration = Duration::from_micros(200);

/// How long a read whose attempts have failed for `waited` with `latest` where it was sleeps
/// before the next: nothing for the first [`READ_YIELD_FOR`] (a writer busy with the value's
/// slot holds it for microseconds), then an eighth of the time so far, at most 1 ms, as a
/// writer waiting for the lock does: a frame that stays odd (a writer stopped in the middle,
/// or another process's stray write) cost a core for the whole read timeout, yielding to
/// nobody on an idle machine (a liveness review measured 98-99% CPU for 1 s a read, sustained
/// in a follower's loop). It adds at most ~12% to the time until `latest` moves on. A read
/// that a writer keeps overtaking (`latest` moving) never sleeps. Never under loom, which has
/// no clock.
fn read_backoff(waited: Duration) -> Option<Duration> {
    (!cfg!(mmf_loom) && waited >= READ_YIELD_FOR)
        .then(|| (waited / 8).min(Duration::from_millis(1)))
}

/// Outcome of one attempt at copying a slot.
enum Attempt {
    Done(Meta),
    Retry,
    /// What no correct writer leaves, in what a read looks at (`latest`, a descriptor, the
    /// frame and payload it names): the current value alone is damaged, since the next publish
    /// rewrites all of that (the geometry, which it does not, is checked at open). Its message
    /// ends with [`VALUE_DAMAGED`].
    Damaged(String),
    /// The value's `len` bytes (at most the channel's capacity) did not fit in memory: the
    /// caller's buffer could not grow to hold them ([`Region::copy_out`]).
    NoRoom {
        len: usize,
        source: std::collections::TryReserveError,
    },
}

/// Why the fast read ([`Snapshot::read_inline`]) left a read to the general one
/// ([`Snapshot::read`]), which the general read goes on from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Miss {
    /// Not a read the fast path makes: a channel with checksums, a descriptor not (yet, or no
    /// longer) of `latest`'s generation, a slot out of range, generation 0 (which the general
    /// read answers by the writers' count). The general read starts afresh.
    Elsewhere,
    /// The inline copy of a small value was overtaken by a publish: the general read goes
    /// straight to the slot (`inline` false).
    InlineOvertaken,
    /// The copy of a slot value failed (overtaken, or the slot was found damaged at open and its
    /// frame disagreed). That was the read's first, optimistic attempt: the general read counts
    /// it as lost (`lost`) and goes on with the pinned one.
    SlotFailed,
}

impl Snapshot {
    /// Writes a fresh header into zeroed memory: geometry and identity first, the version, then
    /// the magic last (with Release), so an opener that sees the magic sees a complete header.
    pub(crate) fn init(&self, flags: u64, incarnation: u64, created_ns: u64, creator: u64) {
        let l = &self.layout;
        let w = |i: usize, v: u64| self.region.word(i).store(v, Ordering::Relaxed);
        w(H_HEADER_SIZE, l.header_bytes as u64);
        w(H_CAPACITY, l.capacity as u64);
        w(H_SLOT_COUNT, l.slots as u64);
        w(H_SLOT_STRIDE, l.stride_bytes as u64);
        w(H_READERS, l.readers as u64);
        w(H_TOTAL_SIZE, l.total_bytes as u64);
        w(H_INCARNATION, incarnation);
        w(H_CREATED_NS, created_ns);
        w(H_CREATOR, creator);
        w(H_FLAGS, flags);
        w(H_KIND, KIND_SNAPSHOT);
        w(H_LATEST, pack_latest(0, 0));
        w(H_WRITTEN, pack_latest(0, 0));
        w(H_VERSION, VERSION);
        self.region.word(H_MAGIC).store(MAGIC, Ordering::Release);
    }

    /// Reads the geometry fields of a header (magic with Acquire, via a fence so that it works on
    /// read-only mappings).
    pub(crate) fn read_fields(region: &Region) -> HeaderFields {
        let r = |i: usize| region.word(i).load(Ordering::Relaxed);
        let magic = crate::sync::load_acquire(region.word(H_MAGIC));
        HeaderFields {
            magic,
            version: r(H_VERSION),
            header_size: r(H_HEADER_SIZE),
            capacity: r(H_CAPACITY),
            slot_count: r(H_SLOT_COUNT),
            slot_stride: r(H_SLOT_STRIDE),
            readers: r(H_READERS),
            total_size: r(H_TOTAL_SIZE),
            kind: r(H_KIND),
        }
    }

    /// A header word (Relaxed).
    pub(crate) fn header(&self, i: usize) -> u64 {
        self.region.word(i).load(Ordering::Relaxed)
    }

    /// The header's fixed words, before the pin table (a layout is never smaller): indexed with
    /// the `H_*` constants, with no bounds check each.
    #[inline(always)]
    fn fixed(&self) -> &[AtomicU64; H_PINS] {
        self.region.array(0)
    }

    /// The generation of the newest value: one atomic load.
    #[inline]
    pub(crate) fn generation(&self) -> u64 {
        split_latest(crate::sync::load_acquire(self.region.word(H_LATEST))).0
    }

    /// The generation of the writers' own copy of `latest`, `H_WRITTEN` (on the writers' cache
    /// line: for the rare look of a follower that refused a value, not for every read).
    pub(crate) fn written_generation(&self) -> u64 {
        split_latest(crate::sync::load_acquire(self.region.word(H_WRITTEN))).0
    }

    /// Generation, tag and length of the latest value, without copying it (for `info`), or
    /// why they cannot be told: the value is damaged ([`Look::Damaged`]), or writers published
    /// faster than 1024 looks could follow.
    pub(crate) fn peek(&self) -> std::result::Result<(u64, Tag, usize), String> {
        let before = crate::sync::load_acquire(self.region.word(H_LATEST));
        match self.settled_look(1024) {
            Look::Value(gen, tag, len) => Ok((gen, tag, len)),
            Look::Damaged { what, .. } => Err(what),
            Look::Unsettled => Err(self.unsettled(before)),
        }
    }

    /// Why 1024 looks found no settled value, `latest` having been `before` at the first: its
    /// frame left marked as being written, if `latest` stayed there and that frame's stamp is
    /// odd (writers never write the slot `latest` names), else writers that kept publishing.
    fn unsettled(&self, before: u64) -> String {
        self.left_open(before)
            .unwrap_or_else(|| "no settled look in 1024 tries: writers kept publishing".into())
    }

    /// What is wrong with the frame of the value `latest` names, if it is marked as being
    /// written and `latest` is still `before` (loaded before some looks that settled nothing):
    /// no writer writes the slot `latest` names, so a machine crash or another process left it
    /// so. `None` otherwise.
    pub(crate) fn left_open(&self, before: u64) -> Option<String> {
        let (gen, slot) = split_latest(before);
        if crate::sync::load_acquire(self.region.word(H_LATEST)) != before
            || !self.frame_left_open(before)
        {
            return None;
        }
        let reads = if self.checksum {
            "reads of it fail as contended after their timeout; `mmf recover` \
             (`Channel::recover`) publishes the newest earlier value still whole again"
        } else {
            "on a channel without checksums reads take it by its descriptor all the same, and \
             the next publish, or `mmf recover` for a small value, mends it"
        };
        Some(format!(
            "the frame of generation {gen} in slot {slot} is marked as being written, and no \
             writer moved `latest` off it in 1024 looks: a machine crash wrote the frame back in \
             the middle of its write, or another process wrote there (no writer writes the slot \
             `latest` names); {reads}"
        ))
    }

    /// The `latest` word if what it names is damaged, checked once at open (a few looks, while
    /// writers move it): see [`damaged`](Self::damaged).
    pub(crate) fn damaged_latest(&self) -> Option<u64> {
        match self.settled_look(64) {
            Look::Damaged { latest, .. } => Some(latest),
            _ => None,
        }
    }

    /// The first of up to `tries` looks ([`look_latest`](Self::look_latest)) that found a
    /// value or damage; [`Look::Unsettled`] if none did (writers kept moving `latest`).
    pub(crate) fn settled_look(&self, tries: u32) -> Look {
        for _ in 0..tries {
            match self.look_latest() {
                Look::Unsettled => {}
                settled => return settled,
            }
        }
        Look::Unsettled
    }

    /// One look at the value `latest` names: its frame's stamp, generation, length and tag (no
    /// payload), or its header-only descriptor, checked against `latest` and against the
    /// descriptor a reader may copy by, with `latest` reloaded after them.
    ///
    /// Why a mismatch in a frame with an even, unchanged stamp under a `latest` that stayed put
    /// is damage and not a race: a writer stores a value's frame and descriptor before
    /// `latest`, so having loaded `latest` (then an Acquire fence) this reader sees that frame
    /// or a later one; and a writer never writes the slot `latest` names, so a later frame is
    /// one written after `latest` moved on. Its field stores follow `begin_write`'s Release
    /// fence and its even stamp is a Release store, so loading any of them (then an Acquire
    /// fence) makes the reload see `latest` moved (the argument of
    /// [`copy_slot_by_latest`](Self::copy_slot_by_latest)), unless the stamp is odd, the one
    /// store before that fence: an odd or changing stamp proves nothing ([`Look::Unsettled`]).
    ///
    /// At generation 0 nothing is looked at: the writers' count answers, as in a read
    /// ([`at_generation_0`](Self::at_generation_0)): "nothing published yet" where it agrees,
    /// whatever the descriptor or slot 0's frame hold; damage where values were published and
    /// `latest` still names generation 0; unsettled where `latest` moved on
    /// ([`generation_0`](Self::generation_0)).
    pub(crate) fn look_latest(&self) -> Look {
        let latest = crate::sync::load_acquire(self.region.word(H_LATEST));
        if split_latest(latest).0 != 0 {
            return self.look_at(latest);
        }
        match self.generation_0() {
            Gen0::Unpublished => Look::Value(0, Tag::EMPTY, 0),
            Gen0::Overwritten(what) => Look::Damaged {
                latest,
                what,
                frame: true,
            },
            Gen0::Moved => Look::Unsettled,
        }
    }

    /// [`look_latest`](Self::look_latest)'s look at what `latest` (loaded with Acquire) names.
    fn look_at(&self, latest: u64) -> Look {
        let l = &self.layout;
        let (gen, slot) = split_latest(latest);
        let stayed = || {
            crate::sync::fence(Ordering::Acquire);
            self.region.word(H_LATEST).load(Ordering::Relaxed) == latest
        };
        if slot == NO_SLOT {
            // In the header only: the same bounds as a read's (`read_header_only`); a
            // checksummed channel has no header-only values (its `max` is 0).
            let max = l.inline_max(self.checksum);
            return match self.descriptor(gen) {
                _ if !stayed() => Look::Unsettled,
                Some((len, tag)) if max > 0 && len <= max => Look::Value(gen, tag, len),
                _ => Look::Damaged {
                    latest,
                    what: format!(
                        "latest names generation {gen} in no slot, but descriptor {} does not \
                         describe a value of that generation of at most {max} bytes",
                        gen % 2
                    ),
                    frame: true,
                },
            };
        }
        if slot >= l.slots {
            return Look::Damaged {
                latest,
                what: format!("latest names slot {slot} of {}", l.slots),
                frame: true,
            };
        }
        let seq = self.region.word(l.slot(slot, F_SEQ));
        let s1 = crate::sync::load_acquire(seq);
        let field = |i: usize| self.region.word(l.slot(slot, i)).load(Ordering::Relaxed);
        let (fgen, len, tag) = (field(F_GEN), field(F_LEN), field(F_TAG));
        let desc = self.descriptor(gen);
        crate::sync::fence(Ordering::Acquire);
        let s2 = seq.load(Ordering::Relaxed);
        if !stayed() || s1 % 2 == 1 || s2 != s1 {
            return Look::Unsettled;
        }
        let mut frame = true;
        let problem = if fgen != gen {
            format!("slot {slot} holds generation {fgen}")
        } else if len > l.capacity as u64 || tag > u64::from(u16::MAX) {
            format!(
                "the frame in slot {slot} claims {len} bytes (capacity {}) and tag {tag}",
                l.capacity
            )
        } else {
            match desc {
                Some((dlen, dtag)) if dlen as u64 != len || u64::from(dtag.0) != tag => {
                    frame = false;
                    format!(
                        "its descriptor states {dlen} bytes tagged {}, its frame in slot {slot} \
                         {len} bytes tagged {tag}",
                        dtag.0
                    )
                }
                _ => return Look::Value(gen, Tag(tag as u16), len as usize),
            }
        };
        Look::Damaged {
            latest,
            what: format!("latest names generation {gen} in slot {slot}, but {problem}"),
            frame,
        }
    }

    /// Claims a free reader-pin entry for `token`, taking over entries whose owner died.
    ///
    /// A dead owner's entry is also cleared when a free one is found first: its `pinned` word
    /// may hold a pin or a wish for slots (`PIN_WANT_SLOTS`), and every writer's `pin_scan` would
    /// then keep small values out of the header for as long as the word stays, that is for good,
    /// since nobody else ever looks at a dead owner's entry while free ones are left; and its
    /// waiter count (an owner killed while blocked in a wait) would keep every writer making a
    /// wake-up call for nobody. This runs once per handle, at its first read or wait; it checks
    /// the liveness only of owners whose `pinned` or waiting word is set.
    ///
    /// It also mends a header waiter count far above what the entries count (a peer wrote it):
    /// see [`heal_waiters`](Self::heal_waiters).
    pub(crate) fn claim_pin(&self, token: u64) -> Option<usize> {
        if !self.region.writable() {
            return None;
        }
        let owner = |e| self.region.word(self.layout.pin(e, PIN_OWNER));
        let mut claimed = None;
        for e in 0..self.layout.readers {
            // A free entry counts nobody; a count left in it (by a peer, or by a release that
            // died half-way) would keep writers waking nobody: `take_over` clears it.
            if self.take_over(e, 0, token) {
                claimed = Some(e);
                break;
            }
        }
        for e in 0..self.layout.readers {
            if Some(e) == claimed {
                continue;
            }
            let pinned = self.region.word(self.layout.pin(e, PIN_SLOT));
            let waiting = self.region.word(self.layout.pin(e, PIN_WAITING));
            if claimed.is_some()
                && pinned.load(Ordering::Relaxed) == 0
                && waiting.load(Ordering::Relaxed) == 0
            {
                continue;
            }
            let cur = owner(e).load(Ordering::Relaxed);
            // The dead owner may have died while counted as a waiter: `take_over` takes it off
            // the count.
            if cur != 0
                && cur != token
                && !self.liveness.alive(cur)
                && self.take_over(e, cur, token)
            {
                if claimed.is_none() {
                    // Ours; the loop goes on to clear the other dead entries that pin.
                    claimed = Some(e);
                    continue;
                }
                // Cleared for the table's sake only: give it back.
                self.release_pin(e, token);
            }
        }
        self.heal_waiters();
        claimed
    }

    /// Frees what handles that are gone left held: the writer lock, reader-pin entries (with
    /// what they counted as waiting; in entries nobody owns, what stray writes left there) and
    /// the header's waiter count. Owners judged alive are
    /// left (`kept`). Only for a snapshot mapped while its caller holds an exclusive `flock` on
    /// the file ([`free_orphans`](crate::host::free_orphans)): every handle holds a shared one
    /// for as long as it lives, so no handle is open anywhere, and every owner these words name
    /// has let its handle go, or never took the lock that FORMAT.md §8 asks of a handle.
    ///
    /// The lock is freed as a takeover frees it (`publish_locked`'s `recovered`): `written`
    /// resynchronised with `latest` ([`resync_written`](Self::resync_written)) while the lock
    /// word still holds the orphan's token, since a writer that died between its stores of
    /// `latest` and `written` left `written` behind, and the next writer, taking a free lock,
    /// trusts `written`; then the token is swapped for 0, and `recoveries` counts it.
    #[cfg(not(mmf_loom))]
    pub(crate) fn free_orphans(&self) -> crate::host::Orphans {
        let h = self.fixed();
        let mut freed = crate::host::Orphans::default();
        let owner = h[H_LOCK].load(Ordering::Acquire);
        if owner != 0 {
            let state = self.liveness.judge(owner);
            let holder = crate::LockOwner {
                pid: os::token_pid(owner),
                state,
            };
            if state == os::OwnerState::Alive {
                freed.lock_kept = Some(holder);
            } else {
                self.resync_written();
                if h[H_LOCK]
                    .compare_exchange(owner, 0, Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
                {
                    h[H_RECOVERIES].fetch_add(1, Ordering::Relaxed);
                    freed.lock = Some(holder);
                }
            }
        }
        // An exclusive writer's claim, judged as the lock's holder. Without the lock (which a
        // holder judged alive may keep): no handle is open to publish or claim meanwhile.
        let claim_word = &h[H_WRITER_CLAIM];
        let claim = claim_word.load(Ordering::Relaxed);
        if claim != 0 {
            let state = self.liveness.judge(claim);
            let holder = crate::LockOwner {
                pid: os::token_pid(claim),
                state,
            };
            if state == os::OwnerState::Alive {
                freed.exclusive_writer_kept = Some(holder);
            } else if claim_word
                .compare_exchange(claim, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                freed.exclusive_writer = Some(holder);
            }
        }
        let w = self.region.word(H_WAITERS);
        let waiting = w.load(Ordering::SeqCst);
        for e in 0..self.layout.readers {
            let owner_word = self.region.word(self.layout.pin(e, PIN_OWNER));
            let owner = owner_word.load(Ordering::Acquire);
            if owner != 0 && self.liveness.judge(owner) == os::OwnerState::Alive {
                freed.pins_kept += 1;
                continue;
            }
            // As a reader's takeover of a dead entry (FORMAT.md §5): its pin and its waiting
            // count go before the entry is free. In an entry nobody owns they were written by no
            // handle (a peer's stray write), and a `pinned` there keeps values out of the
            // header, a `waiting` the header's count up, for as long as the channel exists.
            self.take_waiting(e);
            self.region
                .word(self.layout.pin(e, PIN_SLOT))
                .store(0, Ordering::Release);
            if owner != 0
                && owner_word
                    .compare_exchange(owner, 0, Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
            {
                freed.pins += 1;
            }
        }
        // What entries still count (those kept) is all that may wait.
        let counted = self.counted_waiters();
        let _ = w.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
            (v > counted).then_some(counted)
        });
        freed.waiters = waiting.saturating_sub(w.load(Ordering::SeqCst));
        freed
    }

    /// Lowers the header's waiter count to what the pin entries count when it is far above
    /// that. Every waiter is counted in an entry too, right after the header (`enter_waiting`),
    /// so the header can only exceed the entries' sum by the waits just starting; a count more
    /// than [`WAITERS_SLACK`] above it was written by a peer, and would make every publish pay a
    /// wake-up call for as long as the channel exists. Should waits that are just starting or
    /// leaving be miscounted by it (the entries are not read at one instant), a waiter left
    /// uncounted is woken late, not never: waits look again at least every `wait::MAX_SLEEP`.
    /// A small excess that stays (a waiter killed between its two counts) is the writers' to
    /// mend, whose wake-up calls it costs ([`woke_nobody`](Self::woke_nobody)).
    fn heal_waiters(&self) {
        let counted = self.counted_waiters();
        let w = self.region.word(H_WAITERS);
        let _ = w.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
            (v > counted.saturating_add(WAITERS_SLACK)).then_some(counted)
        });
    }

    /// A publish's wake-up call woke nobody while the header counted waiters. Either they are
    /// awake (spinning before they sleep, or between their count and their sleep: the entries
    /// count them too), or the header counts a waiter that no entry does: one killed between
    /// its two counts (`enter_waiting`), whose entry holds nothing for a takeover to subtract,
    /// and which would cost every publish a wake-up call for as long as the channel exists.
    /// At most once per [`WAITERS_SETTLE`], this compares the two counts; an excess found the
    /// same, with the same sum, by two looks (so at least that long apart: a wait is between
    /// its two counts for nanoseconds) is lowered to the sum by compare-and-swap. Cold: only
    /// publishes that already paid a system call for nobody come here, and nothing here sleeps.
    ///
    /// Should a wait preempted between its counts for that long be taken off all the same, it
    /// is woken late, not never (waits look again at least every `wait::MAX_SLEEP`), and the
    /// count is right again once it leaves (the header's decrement saturates at 0).
    #[cfg(not(mmf_loom))]
    #[cold]
    #[inline(never)]
    fn woke_nobody(&self) {
        let Ok(mut look) = self.cold.idle_wakes.try_lock() else {
            return; // another thread of this handle is looking
        };
        let now = Instant::now();
        if look
            .last
            .is_some_and(|t| now.duration_since(t) < WAITERS_SETTLE)
        {
            return;
        }
        look.last = Some(now);
        let counted = self.counted_waiters();
        let w = self.region.word(H_WAITERS);
        let header = w.load(Ordering::SeqCst);
        look.excess = match look.excess {
            _ if header <= counted => None,
            Some(seen) if seen == (header, counted) => {
                let _ = w.compare_exchange(header, counted, Ordering::SeqCst, Ordering::Relaxed);
                None
            }
            _ => Some((header, counted)),
        };
        if counted != 0
            && look
                .reaped
                .is_none_or(|t| now.duration_since(t) >= REAP_EVERY)
        {
            look.reaped = Some(now);
            self.reap_dead_waiters();
        }
    }

    /// Takes off the waiter counts of entries whose owner died while it waited (a process
    /// killed in `wait_for_change`), and those left in entries nobody owns, which every publish
    /// pays a wake-up call for nobody: 206 ns a publish against 14 ns, where a writer that never
    /// reads (whose handle claims no entry, which would clear them) paid it for as long as it
    /// ran (a resource audit's measurement). Each such entry is taken over as a reader's claim
    /// takes a dead owner's (FORMAT.md §5), its pin and count cleared, and given back free.
    ///
    /// From [`woke_nobody`](Self::woke_nobody) only, under the writer lock, whose word holds
    /// this writer's token (a peer's write over it makes the entry briefly another token's,
    /// and free again). Entries with a waiter count alone are judged: one liveness test each,
    /// at most once per [`REAP_EVERY`].
    #[cfg(not(mmf_loom))]
    fn reap_dead_waiters(&self) {
        let token = self.fixed()[H_LOCK].load(Ordering::Relaxed);
        if token == 0 {
            return;
        }
        for e in 0..self.layout.readers {
            let waiting = self.region.word(self.layout.pin(e, PIN_WAITING));
            if waiting.load(Ordering::Relaxed) == 0 {
                continue;
            }
            let owner = self.region.word(self.layout.pin(e, PIN_OWNER));
            let cur = owner.load(Ordering::Relaxed);
            if cur == token || (cur != 0 && self.liveness.alive(cur)) {
                continue;
            }
            if self.take_over(e, cur, token) {
                self.release_pin(e, token);
            }
        }
    }

    /// Takes pin entry `e` over from `cur` (0 for a free entry, else a dead owner's token) for
    /// `token`, as a reader's claim does (FORMAT.md §10.2, steps 1 and 2): `owner` swapped by
    /// compare-and-swap, then `pinned` cleared and the entry's waiter count taken off the
    /// header's. `false`, and nothing touched, where the entry changed hands meanwhile.
    fn take_over(&self, e: usize, cur: u64, token: u64) -> bool {
        let owner = self.region.word(self.layout.pin(e, PIN_OWNER));
        if owner
            .compare_exchange(cur, token, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        self.region
            .word(self.layout.pin(e, PIN_SLOT))
            .store(0, Ordering::SeqCst);
        self.take_waiting(e);
        true
    }

    /// The sum of the pin entries' waiter counts (saturating: a peer may have written anything).
    fn counted_waiters(&self) -> u64 {
        (0..self.layout.readers)
            .map(|e| {
                self.region
                    .word(self.layout.pin(e, PIN_WAITING))
                    .load(Ordering::SeqCst)
            })
            .fold(0, u64::saturating_add)
    }

    /// Sets entry `e`'s waiter count to 0 and takes what it held off the header's count.
    fn take_waiting(&self, e: usize) {
        let stale = self
            .region
            .word(self.layout.pin(e, PIN_WAITING))
            .swap(0, Ordering::SeqCst);
        self.sub_waiters(stale);
    }

    /// Lowers the header's waiter count by `n`, never below zero (a peer may have written
    /// anything there).
    pub(crate) fn sub_waiters(&self, n: u64) {
        if n == 0 {
            return;
        }
        let w = self.region.word(H_WAITERS);
        let _ = w.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
            Some(v.saturating_sub(n))
        });
    }

    /// Gives a pin entry back.
    ///
    /// Whatever the entry still counts as waiting is taken off `waiters` first: nothing of a
    /// handle that is going away can still wait, but a future that was leaked (`mem::forget`)
    /// while registered never unregistered, and would otherwise stay counted for good.
    pub(crate) fn release_pin(&self, e: usize, token: u64) {
        // An entry that is no longer ours (taken over by a process that judged us dead, which
        // FORMAT §14 says can happen on some file systems) is its new owner's: clearing its pin
        // or its waiting count would cost that owner its slot or its wake-ups.
        let owner = self.region.word(self.layout.pin(e, PIN_OWNER));
        if owner.load(Ordering::Acquire) != token {
            return;
        }
        self.take_waiting(e);
        self.region
            .word(self.layout.pin(e, PIN_SLOT))
            .store(0, Ordering::Release);
        let _ = self
            .region
            .word(self.layout.pin(e, PIN_OWNER))
            .compare_exchange(token, 0, Ordering::Release, Ordering::Relaxed);
    }

    /// [`Error::TooLarge`] for a value of `len` bytes, out of the publish's way.
    #[cold]
    fn too_large(&self, len: usize) -> Error {
        Error::TooLarge {
            name: self.name.clone(),
            len,
            capacity: self.layout.capacity,
        }
    }

    /// Publishes the bytes that `fill` writes as the next value, tagged `tag`.
    ///
    /// Nothing is visible to readers until `fill` has returned `Ok` and the frame is complete; if
    /// `fill` fails or overflows the capacity, the previous value stays the latest.
    ///
    /// `WAKE`: whether to check for waiters after the store of `latest` (and wake them). Every
    /// real publish passes `true`; without the check a publish wakes nobody, which breaks
    /// `wait_for_change`. `false` exists only so that the benchmarks can measure what the check
    /// costs a publish that finds nobody waiting (the issue's "publish without the notification
    /// feature"), in the same build and the same run as the real thing.
    pub(crate) fn publish<F, const WAKE: bool>(
        &self,
        token: u64,
        tag: Tag,
        t: &Timeouts,
        source: Source<'_, F>,
    ) -> Result<u64>
    where
        F: FnOnce(&mut SlotWriter<'_>) -> io::Result<()>,
    {
        if !self.region.writable() {
            return Err(Error::ReadOnly {
                name: self.name.clone(),
            });
        }
        let h = self.fixed();
        let lock_word = &h[H_LOCK];
        let recovered = if lock::try_acquire(lock_word, token) {
            false
        } else {
            self.lock_contended(token, t)?
        };
        // Released on every path, a panicking `fill` included (its slot's stamp stays odd).
        let _guard = LockGuard(lock_word);
        // While a `fill` runs, this thread holds the lock: a publish from inside it to the same
        // channel is refused at once (`lock_contended`) rather than waiting for itself.
        #[cfg(not(mmf_loom))]
        let _filling = matches!(source, Source::Fill(_))
            .then(|| filling::Filling::enter(std::ptr::from_ref(lock_word) as usize, token));
        let pins = self.pin_scan();
        self.check_claim(token, recovered)?;
        self.publish_locked::<F, WAKE>(
            tag,
            u64::from(os::token_pid(token)) | self.process_rest,
            recovered,
            pins,
            source,
        )
    }

    /// [`publish`](Self::publish)'s lock after its first compare-and-swap failed: refused at once
    /// if this thread holds it already (a publish from inside a `publish_with` closure on the
    /// same channel, which would otherwise wait for itself until the lock timeout), else
    /// [`lock::acquire`] (spin, yield, take over from a dead owner). Whether it was taken over.
    #[cold]
    #[inline(never)]
    fn lock_contended(&self, token: u64, t: &Timeouts) -> Result<bool> {
        let h = self.fixed();
        let lock_word = &h[H_LOCK];
        #[cfg(not(mmf_loom))]
        if filling::holds(
            std::ptr::from_ref(lock_word) as usize,
            lock_word.load(Ordering::Relaxed),
        ) {
            return Err(Error::Reentrant {
                name: self.name.clone(),
            });
        }
        match lock::acquire(lock_word, token, t.lock, &self.liveness) {
            Ok(false) => Ok(false),
            Ok(true) => {
                h[H_RECOVERIES].fetch_add(1, Ordering::Relaxed);
                Ok(true)
            }
            Err(busy) => Err(Error::Contended {
                name: self.name.clone(),
                what: lock_holder(busy.owner, token, &self.liveness, t.lock.is_zero()),
                waited: busy.waited,
            }),
        }
    }

    /// The exclusive-writer check of a publish that holds the lock: one load from the line the
    /// lock's compare-and-swap has just brought in, and a compare or two (no field of the
    /// handle: state it keeps inline lengthens every publish by its layout alone, see `cold`).
    /// A claim that is this handle's token is its own (a token judged by pid is its whole
    /// process's, and a forked child's copy of a handle has its parent's). The claim word is
    /// stored under the lock alone (but for a holder's own release,
    /// [`release_claim`](Self::release_claim)), so a claim made before this publish took the
    /// lock is seen here, and none is made until it lets the lock go: Relaxed loads and
    /// stores, the lock orders them.
    ///
    /// `recovered`: whether this publish took the lock over from a dead writer, whose
    /// `written` a refusal resynchronises first, as a failed publish after a takeover leaves it
    /// (`publish_locked`): the next writer, taking a free lock, trusts it.
    #[inline(always)]
    fn check_claim(&self, token: u64, recovered: bool) -> Result<()> {
        let claim = self.fixed()[H_WRITER_CLAIM].load(Ordering::Relaxed);
        if claim == 0 || claim == token {
            return Ok(());
        }
        self.foreign_claim(claim, recovered)
    }

    /// [`check_claim`](Self::check_claim) found another handle's claim, which refuses the
    /// publish while its owner may be alive and is cleared once it is dead (FORMAT.md §5's
    /// rules, as for the writer lock).
    #[cold]
    #[inline(never)]
    fn foreign_claim(&self, claim: u64, recovered: bool) -> Result<()> {
        if self.liveness.alive(claim) {
            if recovered {
                self.resync_written();
            }
            return Err(Error::WriterClaimed {
                name: self.name.clone(),
                pid: os::token_pid(claim),
            });
        }
        let _ = self.fixed()[H_WRITER_CLAIM].compare_exchange(
            claim,
            0,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        Ok(())
    }

    /// Claims the channel's writer role for `token` (`Channel::claim_writer`): under the
    /// writer lock, the claim word is taken if it is free, this token's already, or a dead
    /// owner's; another live owner's claim is [`Error::WriterClaimed`].
    pub(crate) fn claim_writer(&self, token: u64, t: &Timeouts) -> Result<()> {
        if !self.region.writable() {
            return Err(Error::ReadOnly {
                name: self.name.clone(),
            });
        }
        let h = self.fixed();
        let lock_word = &h[H_LOCK];
        let recovered = if lock::try_acquire(lock_word, token) {
            false
        } else {
            self.lock_contended(token, t)?
        };
        let _guard = LockGuard(lock_word);
        if recovered {
            // As a publish after a takeover does first: the next writer trusts `written`.
            self.resync_written();
        }
        let word = &h[H_WRITER_CLAIM];
        let claim = word.load(Ordering::Relaxed);
        if claim != 0 && claim != token && self.liveness.alive(claim) {
            return Err(Error::WriterClaimed {
                name: self.name.clone(),
                pid: os::token_pid(claim),
            });
        }
        word.store(token, Ordering::Relaxed);
        Ok(())
    }

    /// Gives the writer role `token` claimed back: the claim word cleared if it still holds
    /// `token` (a compare-and-swap, without the lock: no other party stores this handle's
    /// token there, and a publish that loaded it in the meantime was refused while the claim
    /// stood).
    pub(crate) fn release_claim(&self, token: u64) {
        let _ = self.fixed()[H_WRITER_CLAIM].compare_exchange(
            token,
            0,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// [`publish`](Self::publish) of a value the caller holds as one slice (`bytes.len() <=
    /// capacity`, checked by the caller), with the common case on a path of its own: a small
    /// value while no reader reads from a slot, published into the header only
    /// ([`store_header_only`](Self::store_header_only)), inlined into the caller: some 170
    /// instructions for 64 bytes, lock and pin scan included, where the general path takes some
    /// 290 (callgrind). Anything else (a checksummed channel, a larger value, a pin, a contended
    /// lock) goes the general way.
    #[inline(always)]
    pub(crate) fn publish_bytes<const WAKE: bool>(
        &self,
        token: u64,
        tag: Tag,
        t: &Timeouts,
        bytes: &[u8],
    ) -> Result<u64> {
        let h = self.fixed();
        let lock_word = &h[H_LOCK];
        if self.may_be_header_only(bytes.len())
            && self.region.writable()
            && lock::try_acquire(lock_word, token)
        {
            let _guard = LockGuard(lock_word);
            self.check_claim(token, false)?;
            let pid = u64::from(os::token_pid(token)) | self.process_rest;
            let pins = self.pin_scan();
            if pins.is_none() {
                // Not recovered (the lock was free), so `written` is the latest value.
                let gen = split_latest(h[H_WRITTEN].load(Ordering::Relaxed)).0;
                return self.publish_header_only::<WAKE>(gen, tag, bytes, pid);
            }
            return self.publish_locked_out_of_line::<WAKE>(tag, pid, pins, bytes);
        }
        self.publish::<NoFill, WAKE>(token, tag, t, Source::Bytes(bytes))
    }

    /// [`publish_locked`](Self::publish_locked) out of line, for
    /// [`publish_bytes`](Self::publish_bytes) when a reader pins or wants slots:
    /// [`publish`](Self::publish) keeps its own inlined copy, so a larger value's publish makes
    /// one call, not two.
    #[inline(never)]
    fn publish_locked_out_of_line<const WAKE: bool>(
        &self,
        tag: Tag,
        pid: u64,
        pins: Option<u64>,
        bytes: &[u8],
    ) -> Result<u64> {
        self.publish_locked::<NoFill, WAKE>(tag, pid, false, pins, Source::Bytes(bytes))
    }

    /// The publish under the writer lock, after the pin scan (`pins`).
    #[inline(always)]
    fn publish_locked<F, const WAKE: bool>(
        &self,
        tag: Tag,
        pid: u64,
        recovered: bool,
        pins: Option<u64>,
        source: Source<'_, F>,
    ) -> Result<u64>
    where
        F: FnOnce(&mut SlotWriter<'_>) -> io::Result<()>,
    {
        let l = &self.layout;
        let h = self.fixed();
        let written = &h[H_WRITTEN];
        // We hold the lock, so `written` is the `latest` the previous writer committed (both are
        // stored under the lock, and its Release unlock synchronised with our lock). It lives on
        // the writers' line, which readers never touch, so reading it costs no cache miss, where
        // `latest` itself would have to come back from the readers polling it. A writer that died
        // between the two stores left `written` behind `latest`; the lock was then recovered, and
        // `latest` is read instead (`resync_written`).
        let prev = if recovered {
            // Resynchronise at once: if this publish fails, the next writer (which takes the lock
            // normally) must still start from the real `latest`.
            self.resync_written()
        } else {
            written.load(Ordering::Relaxed)
        };
        if let Source::Bytes(bytes) = &source {
            // Before any slot is touched: a refused value leaves no odd stamp behind.
            if bytes.len() > l.capacity {
                return Err(self.too_large(bytes.len()));
            }
        }
        let (gen, cur) = split_latest(prev);
        if let (None, Source::Bytes(bytes)) = (pins, &source) {
            if self.may_be_header_only(bytes.len()) {
                // Nobody reads from a slot: the value goes into the header only.
                return self.publish_header_only::<WAKE>(gen, tag, bytes, pid);
            }
        }
        let next = self.next_generation(gen)?;
        self.stamp_inline(next);
        let slot = choose_slot(l.slots, l.rotation, cur, pins.unwrap_or(0)).ok_or_else(|| {
            Error::Corrupt {
                name: self.name.clone(),
                what: "every slot is pinned, more pins than reader entries".into(),
                value_only: false,
            }
        })?;
        // The frame's fields as one slice of known length: one bounds check, not one a field.
        let frame = self.region.words(l.slot(slot, 0), F_PAYLOAD);
        let seq = &frame[F_SEQ];
        let odd = seqlock::begin_write(seq);
        let first = l.slot(slot, F_PAYLOAD);
        // On failure the stamp stays odd: the slot is not latest and now reads as "being written".
        // `from_slot`: whether a small value's inline copy is still to be made, from the slot.
        let (len, crc, from_slot) = match source {
            Source::Bytes(bytes) if !self.checksum && bytes.len() <= l.inline_max(false) => {
                // A small value goes into the slot and the inline buffer in one pass, each word
                // loaded once. The inline stores follow `begin_write`'s Release fence, which
                // follows our lock acquisition: the order `store_descriptor` explains.
                let n = bytes.len().div_ceil(WORD);
                let slot_words = self.region.words(first, n);
                let b = (next % 2) as usize;
                let inline_words = &self.fixed()[Layout::inline_data(b)..][..n];
                crate::region::atomic_store_small([slot_words, inline_words], bytes);
                (bytes.len(), None, false)
            }
            Source::Bytes(bytes) => {
                if bytes.len() <= PREFETCH_BYTES {
                    // Every payload line, and the frame line's remaining stores.
                    let lines = 1 + bytes.len().div_ceil(LINE);
                    self.region
                        .prefetch_lines(l.slot(slot, 0), lines, Intent::Write);
                }
                // `bytes.len() <= capacity`: checked above.
                self.region.copy_in_words(first, bytes);
                let crc = self.checksum.then(|| crc32fast::hash(bytes));
                // Not inline: too large, or a checksummed channel (whose inline buffers stay
                // unused, so only an empty value "fits", with nothing to copy).
                (bytes.len(), crc, false)
            }
            Source::Fill(fill) => {
                let mut w = SlotWriter::new(&self.region, first, l.capacity, self.checksum);
                let filled = fill(&mut w);
                match (filled, w.finish()) {
                    (Ok(()), Ok((len, crc))) => (len, crc, true),
                    (_, Err(len)) => return Err(self.too_large(len)),
                    (Err(source), Ok(_)) => {
                        return Err(Error::Encode {
                            name: self.name.clone(),
                            cause: source,
                        })
                    }
                }
            }
        };
        frame[F_GEN].store(next, Ordering::Relaxed);
        frame[F_LEN].store(len as u64, Ordering::Relaxed);
        frame[F_TAG].store(u64::from(tag.0), Ordering::Relaxed);
        let crc = crc.map_or(0, |c| CRC_PRESENT | u64::from(c));
        frame[F_CRC].store(crc, Ordering::Relaxed);
        seqlock::end_write(seq, odd);
        self.store_descriptor(slot, next, len, tag, from_slot);
        if from_slot {
            // `store_descriptor` copied the value from the slot into the inline buffer: those
            // loads from the mapping come before `commit`'s load of the trip mark, or a weakly
            // ordered CPU could copy zeros mapped in between and still find no mark. Free on
            // x86; only this path loads the value from the mapping.
            #[cfg(not(mmf_loom))]
            std::sync::atomic::fence(Ordering::Acquire);
        }
        self.commit::<WAKE>(pack_latest(next, slot), pid)?;
        Ok(next)
    }

    /// The newest generation a slot's closed frame names past those of `latest` and
    /// `written`, if one does (and `latest` is past generation 0): what a machine crash leaves
    /// in a file whose slot pages were written back and whose header page was not, or a copy
    /// of the file made while a writer published. Within [`LOST_GENERATIONS`] of them (a frame
    /// further ahead is a stray write's: a crash loses the publishes of the half minute before
    /// it at most), and below the last generations, which a writer could not go past. Not the
    /// inline stamps: they share the header's page with `latest`, so no crash separates them,
    /// and a publish that failed after its stamp (a `publish_with` closure's error) leaves one
    /// ahead, which a diff review found costing the next open two generations.
    fn lost_generations(&self) -> Option<u64> {
        let l = &self.layout;
        let h = self.fixed();
        let latest = split_latest(h[H_LATEST].load(Ordering::Acquire)).0;
        let known = latest.max(split_latest(h[H_WRITTEN].load(Ordering::Acquire)).0);
        if latest == 0 {
            return None;
        }
        let lost =
            |gen: u64| gen > known && gen - known <= LOST_GENERATIONS && gen < MAX_GENERATION - 1;
        (0..l.slots)
            .filter_map(|slot| {
                let seq = self.region.word(l.slot(slot, F_SEQ));
                seqlock::read_begin(seq)?;
                let field = |i: usize| self.region.word(l.slot(slot, i)).load(Ordering::Relaxed);
                let (gen, len, tag) = (field(F_GEN), field(F_LEN), field(F_TAG));
                (lost(gen) && len <= l.capacity as u64 && tag <= 0xffff).then_some(gen)
            })
            .max()
    }

    /// At open, for a handle that may publish: if values newer than `latest` and `written` are
    /// still in the file ([`lost_generations`](Self::lost_generations)), moves `written` past
    /// them under the writer lock (as `resync_written` does for a `written` ahead of
    /// `latest`), so that the next publish makes a generation no value had. Otherwise it would
    /// make the generation of a value the crash lost, in the slot that value was in (the
    /// choice of slot follows the generations), and a second crash that wrote back the header's
    /// page but not that slot's would serve the lost value under the new one's generation, its
    /// checksum matching (a crash audit's finding). Only where the writer lock is free (see
    /// below): best effort, the next open looks again.
    pub(crate) fn go_past_lost_generations(&self, token: u64) {
        if self.lost_generations().is_none() {
            return;
        }
        let h = self.fixed();
        let lock_word = &h[H_LOCK];
        // Held: by a live writer, whose frame is ahead until it commits, and an open must not
        // wait for it (one stopped mid-publish would hold the open up to the lock timeout); or
        // by a writer killed mid-publish, whose frame is the value it did not publish, and whose
        // generation the next publish makes, the takeover's rule (§11 step 2).
        if !lock::try_acquire(lock_word, token) {
            return;
        }
        let _guard = LockGuard(lock_word);
        // Under the lock no writer is between its frame and its `latest`.
        if let Some(gen) = self.lost_generations() {
            let slot = split_latest(h[H_LATEST].load(Ordering::Acquire)).1;
            h[H_WRITTEN].store(pack_latest(gen, slot), Ordering::Release);
            self.resync_written();
        }
    }

    /// The generation after `gen`, or `Corrupt` (nothing stored) if `gen` is
    /// [`MAX_GENERATION`], which only a write from outside mmf puts there.
    #[inline(always)]
    fn next_generation(&self, gen: u64) -> Result<u64> {
        if gen >= MAX_GENERATION {
            return Err(self.generation_exhausted(gen));
        }
        Ok(gen + 1)
    }

    /// [`next_generation`](Self::next_generation)'s error, out of the publish's way.
    #[cold]
    #[inline(never)]
    fn generation_exhausted(&self, gen: u64) -> Error {
        Error::Corrupt {
            name: self.name.clone(),
            what: format!(
                "its generation counter is at its limit, 2^56 - 1 ({gen}), and a publish \
                 would wrap it to 0, below every generation a reader has seen; no run of \
                 correct publishes gets there (it takes about a century at 20 million a \
                 second), so another program wrote into the mapping; nothing was published"
            ),
            value_only: false,
        }
    }

    /// After the writer lock was taken over from a holder judged dead (or freed for it): the
    /// `latest` the next publish goes on from, stored in `written` for the writers after it.
    ///
    /// A writer that died between its stores of `latest` and `written` (`commit`) left `written`
    /// one behind, and `latest` is taken. No writer leaves `written` ahead of `latest`, as it
    /// stores `latest` first: where it is ahead, a stray write lowered `latest` (zeroed it, or
    /// set it back to an older value that still reads whole), or a copy of the file was made
    /// while a writer published. Going on from the lowered `latest` reused generations readers
    /// had seen (a second generation 1, which a reader past 2 never takes for new), and hid the
    /// damage from `recover`, which then found "nothing published yet" (a review's finding).
    /// Going on from `written` as it is, as a first version of this did, rewrote what `latest`
    /// names while readers copy it, and they accepted the mix (the next review's finding):
    /// readers validate by `latest`, so the next publish must keep off `latest`'s slot and the
    /// inline buffer of its generation's parity. So the generation goes on from `written`'s,
    /// raised by one where its parity differs from `latest`'s (the next generation then takes
    /// the other inline buffer), with `latest`'s slot as the one to keep off: the state a
    /// writer that had just committed `latest` leaves, but for a later generation. (Past the
    /// generation limit, `latest` is taken as before.)
    ///
    /// Acquire loads: the CAS that took the lock from the dead holder synchronises with nothing
    /// (it never released it), so these loads are what order the publish they name before ours,
    /// and with it that publish's stamp before ours (`stamp_inline`). Release, as `commit`'s
    /// store: see `generation_0`.
    fn resync_written(&self) -> u64 {
        let h = self.fixed();
        let latest = h[H_LATEST].load(Ordering::Acquire);
        let written = h[H_WRITTEN].load(Ordering::Acquire);
        let ((gen_l, slot), (gen_w, _)) = (split_latest(latest), split_latest(written));
        let past = gen_w + ((gen_w ^ gen_l) & 1);
        let resynced = if gen_w > gen_l && past <= MAX_GENERATION {
            pack_latest(past, slot)
        } else {
            latest
        };
        h[H_WRITTEN].store(resynced, Ordering::Release);
        resynced
    }

    /// The end of every successful publish: the value becomes current with the store of
    /// `latest`, then the writers' copy of it, the writer's pid, and the wake-up of waiters.
    ///
    /// Refused (`Truncated`, nothing stored) once the mapping tripped (`Region::tripped`): the
    /// header's page may still be the file's while the slot or inline copy just written went to
    /// private zero pages, and storing `latest` would publish zeros to every other process.
    #[inline(always)]
    fn commit<const WAKE: bool>(&self, latest: u64, pid: u64) -> Result<()> {
        if self.region.tripped() {
            return Err(self.truncated());
        }
        let h = self.fixed();
        let latest_word = &h[H_LATEST];
        // A Release store, then a SeqCst fence: the fence puts the store before every SeqCst
        // operation that follows the fence in the single total order (C++20 [atomics.order]: a
        // SeqCst load that follows the fence there sees the store or a later one), which is
        // what the pin protocol and the waiter count need (module docs; the next publish's pin
        // scan and this publish's load of `waiters` come after the fence). On x86 a SeqCst
        // store is an `xchg` on the polled line, which waits for the earlier stores (the
        // inline buffer's line, held by the reader that copied the last value) to reach memory
        // before it takes the polled line in turn: two cross-core transfers one after the
        // other. The plain store lets the two lines' transfers overlap, and the fence (a locked
        // operation on this thread's stack) waits for both together. On an Intel Xeon host a
        // 64 B round trip fell from 1.27-1.41x F per round to 0.95-1.10x (1.35-1.54x to
        // 0.98-1.11x back to back) in six alternations of the two binaries (BENCHMARKS.md,
        // History).
        latest_word.store(latest, Ordering::Release);
        // Release: a reader that loads it past generation 0 then sees this `latest` or a later
        // one (`generation_0`). A plain store on x86, as Relaxed is.
        h[H_WRITTEN].store(latest, Ordering::Release);
        h[H_LAST_WRITER].store(pid, Ordering::Relaxed);
        crate::sync::fence(Ordering::SeqCst);
        // Waiters raise the count before they check `latest` and park; both sides are SeqCst
        // (here the fence after the store), so either the waiter sees the new `latest` or this
        // load sees the waiter (no lost wake-up). With nobody waiting, this load of a word on
        // the writers' own line is the whole cost.
        #[cfg(not(mmf_loom))]
        if WAKE && h[H_WAITERS].load(Ordering::SeqCst) != 0 && os::wake_all(latest_word) == 0 {
            self.woke_nobody();
        }
        Ok(())
    }

    /// `Truncated`, for the paths that find the mapping tripped (`Region::tripped`).
    #[cold]
    pub(crate) fn truncated(&self) -> Error {
        // Looked at the first time a trip is reported, not at the fault (the signal handler
        // knows the address, not the file): a file still as long as the mapping then was not
        // shrunk, and what faulted was a page the file system could not supply (btrfs out of
        // space for a page shared with a reflink copy, an I/O error), which its own message
        // explains, or the file was shrunk and written again before the look.
        let shrunk = *self.cold.shrunk.get_or_init(|| {
            match self.liveness.file().map(std::fs::File::metadata) {
                Some(Ok(meta)) => meta.len() < self.layout.total_bytes as u64,
                _ => true,
            }
        });
        Error::Truncated {
            name: self.name.clone(),
            shrunk,
        }
    }

    /// Whether a value of `len` bytes, given as one slice, may be published in the header only
    /// (when `pin_scan` finds no pin): small enough for an inline buffer, on a channel without
    /// checksums, by a handle that has not turned header-only publishes off.
    #[inline(always)]
    fn may_be_header_only(&self, len: usize) -> bool {
        self.header_only && !self.checksum && len <= self.layout.inline_max(false)
    }

    /// The whole publish, under the lock, of a value that
    /// [`may_be_header_only`](Self::may_be_header_only) while `pin_scan` found no pin: the
    /// generation after `gen`, in the header only. Returns that generation.
    #[inline(always)]
    fn publish_header_only<const WAKE: bool>(
        &self,
        gen: u64,
        tag: Tag,
        bytes: &[u8],
        pid: u64,
    ) -> Result<u64> {
        let next = self.next_generation(gen)?;
        self.store_header_only(next, tag, bytes);
        self.commit::<WAKE>(pack_latest(next, NO_SLOT), pid)?;
        Ok(next)
    }

    /// Stores generation `gen`'s value (at most `inline_max` bytes, on a channel without
    /// checksums) into inline buffer `gen % 2` and its descriptor, and nowhere else: the whole
    /// publish of a small value while no reader reads from a slot (`pin_scan` found every
    /// `pinned` word 0). `latest` then names [`NO_SLOT`].
    ///
    /// Why the header alone suffices: a reader copies the inline buffer and validates the copy by
    /// `latest` still naming `gen`, as for any inline copy (`store_descriptor` has the argument;
    /// the Release fence below plays the part of `begin_write`'s there). Keeping a slot as well
    /// only helps a reader that a writer overtakes, and such a reader, if it has a pin entry,
    /// says so ([`PIN_WANT_SLOTS`]), which every later `pin_scan` sees. What it saves: the slot
    /// choice, the slot's stamp, payload and frame. Measured between two processes, with
    /// [`publish_bytes`](Self::publish_bytes)' path (in-run A/Bs in one binary against channels
    /// made to keep every value in a slot, mmf / F per round, six runs of 45 rounds, the two
    /// kinds of channel taking turns in the first and second row): 64 B round trips 0.03-0.18
    /// lower, 0.10 on average. The same header-only publish reached through the general path
    /// measured only 0.00-0.06 lower (five runs): the short path counts as much as the slot.
    #[inline(always)]
    fn store_header_only(&self, gen: u64, tag: Tag, bytes: &[u8]) {
        let h = self.fixed();
        let b = (gen % 2) as usize;
        self.stamp_inline(gen);
        crate::sync::fence(Ordering::Release);
        let n = bytes.len().div_ceil(WORD);
        crate::region::atomic_store_small([&h[Layout::inline_data(b)..][..n]], bytes);
        let desc = Layout::inline_desc(b);
        h[desc].store(gen, Ordering::Relaxed);
        h[desc + 1].store(descriptor_meta(bytes.len(), tag), Ordering::Relaxed);
    }

    /// Stamps inline buffer `gen % 2` with `gen`: the first store of a publish of `gen` (on a
    /// channel without checksums, whose inline buffers are in use) into that buffer or its
    /// descriptor, made before the Release fence that precedes the others (`begin_write`'s, or
    /// those of [`store_header_only`](Self::store_header_only) and
    /// [`store_descriptor`](Self::store_descriptor)), whatever the value's size.
    ///
    /// What it is for: a reader that copied buffer `g % 2` and found `latest` moved on may still
    /// keep the copy if the stamp still says `g` ([`copy_inline`](Self::copy_inline)). If any load
    /// of its copy (or of the descriptor) read a store of the publish of `g + 2` or later, that
    /// store follows this stamp store and the Release fence after it, which then synchronises with
    /// the reader's Acquire fence, so the reader's load of the stamp sees `g + 2` or later. The
    /// stamp cannot show an older publish than `g`'s either: the reader acquired `latest == g`,
    /// which the publish of `g` stored after its stamp. (Both rest on one buffer's stamps being
    /// stored in generation order: each publish happens after the one before it, through the lock,
    /// or, after taking the lock over from a dead writer, through the Acquire load of `latest` in
    /// `publish_locked`.) Under a back-to-back writer this turns a copy that `latest` alone would
    /// throw away (the writer publishes again while the reader copies, but writes the other buffer)
    /// into a kept one, and the stamp's line is one the reader fetched with the copy, not the
    /// polled line the writer keeps rewriting: measured on AMD Zen 5, two processes, a 64 B reader
    /// under a back-to-back writer completed 12.7-16.5 M snapshots/s against 8.1-10.5 M/s with
    /// `latest` alone (runs of the builds alternating, BENCHMARKS.md, History). Checking `latest`
    /// first keeps a round trip as it was: there `latest` has not moved, and the stamp's line is
    /// never waited for.
    #[inline(always)]
    fn stamp_inline(&self, gen: u64) {
        if !self.checksum {
            self.fixed()[Layout::inline_stamp((gen % 2) as usize)].store(gen, Ordering::Relaxed);
        }
    }

    /// Takes this reader's pin off its slot (or its wish for slots): a handle's pinned reads have
    /// ended, and writers may go back to publishing small values in the header only.
    pub(crate) fn unpin(&self, e: usize) {
        self.region
            .word(self.layout.pin(e, PIN_SLOT))
            .store(0, Ordering::Release);
    }

    /// The mask of slots that readers have pinned (bit `s` for slot `s`), from the pin table, or
    /// `None` if every entry's `pinned` word is 0: no reader reads from a slot or wants to, so a
    /// small value may be published in the header only. SeqCst loads: see the pin protocol in
    /// `read`. An entry holds `slot + 1`, and anything else means "nothing pinned" (but not 0:
    /// "wants slots", [`PIN_WANT_SLOTS`] among others). The common case, a table of zeros, is told
    /// by OR-ing the entries, without the per-entry work; an entry seen set is then read again,
    /// which is as good as reading it once: a pin it shows was taken before this scan, and one it
    /// no longer shows was released.
    #[inline(always)]
    fn pin_scan(&self) -> Option<u64> {
        let l = &self.layout;
        // The table as one slice: one bounds check, not one per entry.
        let (first, words) = l.pin_table();
        let entries = self.region.words(first, words).chunks_exact(PIN_WORDS);
        let any = entries
            .clone()
            .fold(0, |any, e| any | e[PIN_SLOT].load(Ordering::SeqCst));
        if any == 0 {
            return None;
        }
        let mut pinned = 0;
        for e in entries {
            // One unsigned compare of `v - 1` (0 wraps around) covers both ends of the range.
            let slot = e[PIN_SLOT].load(Ordering::SeqCst).wrapping_sub(1);
            if slot < l.slots as u64 {
                pinned |= 1 << slot;
            }
        }
        Some(pinned)
    }

    /// Describes generation `gen` (just completed in `slot`) in descriptor `gen % 2` of the polled
    /// line, and, if the value is small enough, copies it into inline buffer `gen % 2`, before
    /// `latest` names `gen`. A reader then learns the value's length and tag from the line that
    /// told it `latest`, and can start copying at once instead of first fetching the frame line.
    ///
    /// Double buffering: while `latest` is `g`, writers touch only descriptor and buffer
    /// `(g + 1) % 2`; those of `g` are rewritten only by the publish of `g + 2`, which starts
    /// after `latest` became `g + 1`. So a reader that copies buffer `g % 2` and then still
    /// finds `latest == g` has a clean copy (and one that finds `latest` moved on can still ask
    /// the buffer's stamp, [`stamp_inline`](Self::stamp_inline)): if any of its loads had read a
    /// store of that later publish, the Release fence below would synchronise with the reader's
    /// Acquire fence, and its reload of `latest` would see `g + 1` or later. That fence follows
    /// the store of `g + 1` either through the lock (taken after the writer of `g + 1` released
    /// it) or, when the lock was recovered from a dead writer (whose CAS synchronises with
    /// nothing), through this writer's own load of a `latest` past `g`, made before the fence
    /// (read-read coherence). A descriptor used only as a length for a slot copy needs no such
    /// argument: the slot's own frame, read under its stamp, must agree with it.
    /// With `from_slot`, a small value's inline copy is made here, word for word from the slot
    /// (a value that came through a `fill` closure); a value the caller gave as one slice was
    /// stored into the inline buffer together with the slot.
    #[inline(always)]
    fn store_descriptor(&self, slot: usize, gen: u64, len: usize, tag: Tag, from_slot: bool) {
        crate::sync::fence(Ordering::Release);
        let b = (gen % 2) as usize;
        if from_slot && len <= self.layout.inline_max(self.checksum) {
            // The slot is still in this core's cache.
            let n = len.div_ceil(WORD);
            let from = self.region.words(self.layout.slot(slot, F_PAYLOAD), n);
            let to = self.region.words(Layout::inline_data(b), n);
            for (t, f) in to.iter().zip(from) {
                t.store(f.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        }
        let (h, desc) = (self.fixed(), Layout::inline_desc(b));
        h[desc].store(gen, Ordering::Relaxed);
        h[desc + 1].store(descriptor_meta(len, tag), Ordering::Relaxed);
    }

    /// Length and tag of generation `gen`'s value, as its descriptor on the polled line states
    /// them, if that descriptor is `gen`'s and in range (a hint: callers validate it).
    #[inline(always)]
    fn descriptor(&self, gen: u64) -> Hint {
        self.descriptor_in((gen % 2) as usize, gen)
    }

    /// [`descriptor`](Self::descriptor) from descriptor `b`, which must be `gen % 2`.
    #[inline(always)]
    fn descriptor_in(&self, b: usize, gen: u64) -> Hint {
        debug_assert_eq!(
            b as u64,
            gen % 2,
            "descriptor {b} asked for generation {gen}"
        );
        let (h, desc) = (self.fixed(), Layout::inline_desc(b));
        if h[desc].load(Ordering::Relaxed) != gen {
            return None;
        }
        let meta = h[desc + 1].load(Ordering::Relaxed);
        let (len, tag) = ((meta & 0xffff_ffff) as usize, meta >> 32);
        (len <= self.layout.capacity && tag <= u64::from(u16::MAX))
            .then_some((len, Tag(tag as u16)))
    }

    /// One validated copy of generation `gen`'s value (`len` bytes, tagged `tag`, small enough to
    /// be inline) from inline buffer `b` (`gen % 2`); `latest` is what the caller loaded, with
    /// Acquire. The copy is clean if `latest` has not moved
    /// ([`store_descriptor`](Self::store_descriptor)) or, if it has, if the buffer's stamp still
    /// names `gen` ([`stamp_inline`](Self::stamp_inline)); `latest` is asked first because in a
    /// request/reply exchange it is still in this core's cache while the stamp's line may not
    /// be. `None` when neither holds (a publish of `gen + 2` or later began writing the
    /// buffer): the caller copies the slot instead.
    #[inline(always)]
    fn copy_inline(
        &self,
        b: usize,
        latest: u64,
        gen: u64,
        len: usize,
        tag: Tag,
        buf: &mut Vec<u8>,
    ) -> Option<Meta> {
        self.region.copy_out_small(Layout::inline_data(b), len, buf);
        crate::sync::fence(Ordering::Acquire);
        let h = self.fixed();
        let clean = h[H_LATEST].load(Ordering::Relaxed) == latest
            || h[Layout::inline_stamp(b)].load(Ordering::Relaxed) == gen;
        clean.then_some(Meta {
            generation: gen,
            tag,
            len,
            retries: 0,
        })
    }

    /// The first attempt of a read: the descriptor of `latest`'s generation and the validated
    /// copy of its inline buffer or, for a value too large to be inline, of the slot the
    /// descriptor names ([`copy_slot`](Self::copy_slot), as the general read's first attempt
    /// would make it); on a channel with checksums, whose values are never inline, only the
    /// prefetch of the slot's first lines. Kept apart from [`read`](Self::read) so that the
    /// common read compiles to a short path; a [`Miss`] says why the general read must take over
    /// and where it goes on from. Going on to the slot here rather than in the general read saves
    /// a read of a slot value ~200 instructions (629 against 420 at 512 B in one process,
    /// callgrind), 10-15 ns a read between two threads on the two CPUs (BENCHMARKS.md, History).
    #[inline(always)]
    pub(crate) fn read_inline(&self, buf: &mut Vec<u8>) -> Result<Meta, Miss> {
        let latest = crate::sync::load_acquire(&self.fixed()[H_LATEST]);
        let (gen, slot) = split_latest(latest);
        if slot >= self.layout.slots && slot != NO_SLOT {
            return Err(Miss::Elsewhere);
        }
        let max = self.layout.inline_max(self.checksum);
        if max == 0 {
            // A checksummed channel keeps no inline copies: only the slot's hint.
            if let (Some((len, _)), true) = (self.descriptor(gen), slot != NO_SLOT) {
                self.prefetch_slot(slot, len);
            }
            return Err(Miss::Elsewhere);
        }
        // A branch on the buffer, not an address computed from `gen`: see `read_inline_from`.
        if gen.is_multiple_of(2) {
            self.read_inline_from::<0>(latest, gen, slot, max, buf)
        } else {
            self.read_inline_from::<1>(latest, gen, slot, max, buf)
        }
    }

    /// The rest of [`read_inline`](Self::read_inline) for generation `gen`, whose descriptor and
    /// inline buffer are number `B` (`gen % 2`), compiled once for each `B`.
    ///
    /// Why two copies instead of one that computes the addresses from `gen`: the addresses of
    /// the descriptor and of the buffer then depend only on a branch, which the CPU predicts (a
    /// reader that sees every generation sees them alternate), not on the value of `latest`.
    /// In a request/reply exchange the buffer's line then starts on its way from the writer's
    /// core while `latest` is still being resolved, instead of after it (most likely because the
    /// CPU has run ahead of the spin on `latest`: the transports whose buffer address does not
    /// depend on the flag they poll, F among them, show the same). Measured between two
    /// processes, in-run A/Bs of this code against the computed address in one binary (mmf / F
    /// per round, runs of 15 rounds): 64 B 1.46-1.62 against 1.85-1.92 (three runs, A/A 0.00-0.05),
    /// 128 B 1.27-1.55 against 1.42-1.92 (three runs, before layout version 6, when 128 B was
    /// still inline); 4 KiB, read from a slot, unchanged. In
    /// scratch transports of the harness, one protocol with its buffer chosen by a branch or by
    /// arithmetic on the polled value measured 1.00-1.08 against 1.27-1.69. `#[inline(never)]`
    /// keeps the two copies apart: inlined into one function, the compiler may merge them back
    /// into one computed address. A reader that skips generations mispredicts the branch about
    /// half the time, a few nanoseconds each.
    #[inline(never)]
    fn read_inline_from<const B: usize>(
        &self,
        latest: u64,
        gen: u64,
        slot: usize,
        max: usize,
        buf: &mut Vec<u8>,
    ) -> Result<Meta, Miss> {
        // Generation 0 is the general read's to answer, by the writers' count (`read`'s rule,
        // FORMAT.md §10.5). Here, in the copy for even generations, not in `read_inline`,
        // which is inlined into every read: the copy for odd ones has no test at all.
        if B == 0 && gen == 0 {
            return Err(Miss::Elsewhere);
        }
        // Start the buffer's transfer now; the checks below then overlap it. Both of its lines:
        // the length is not known yet, and the second holds the stamp that the validation asks
        // once `latest` has moved on (a back-to-back writer): without this hint a 64 B reader
        // under such a writer fell back to 9.2 M snapshots/s from 14.6 (one run each, Zen 5).
        let data = Layout::inline_data(B);
        self.region.prefetch_lines(data, 1, Intent::Read);
        self.region
            .prefetch_lines(data + LINE_WORDS, 1, Intent::Read);
        match self.inline_attempt(B, latest, gen, max, buf) {
            Ok(meta) => Ok(meta),
            // A usable descriptor, not overtaken: a value too large to be inline, copied from
            // its slot as the general read's first attempt would. A copy that failed (overtaken,
            // or a slot found damaged at open, which `copy_slot` reads by its frame) goes to the
            // general read as that attempt lost: it pins, retries, or reports the damage.
            Err((Some(hint), false)) => {
                if slot == NO_SLOT {
                    return Err(Miss::Elsewhere);
                }
                self.prefetch_slot(slot, hint.0);
                match self.copy_slot(slot, gen, Some(hint), buf) {
                    Attempt::Done(meta) => Ok(meta),
                    Attempt::Retry | Attempt::Damaged(_) | Attempt::NoRoom { .. } => {
                        Err(Miss::SlotFailed)
                    }
                }
            }
            Err((_, true)) => Err(Miss::InlineOvertaken),
            Err((None, false)) => Err(Miss::Elsewhere),
        }
    }

    /// Starts fetching the first [`PREFETCH_BYTES`] of the `len` payload bytes the descriptor
    /// announces for `slot` (and, on a channel with checksums, its frame line, which that read
    /// needs: [`copy_slot`](Self::copy_slot)), before the general read gets to copy them, so that
    /// their transfers from the writer's core overlap each other and the code in between.
    #[inline(always)]
    fn prefetch_slot(&self, slot: usize, len: usize) {
        let frame = usize::from(self.checksum);
        let lines = frame + len.min(PREFETCH_BYTES).div_ceil(LINE);
        let first = self.layout.slot(slot, (1 - frame) * F_PAYLOAD);
        self.region.prefetch_lines(first, lines, Intent::Read);
    }

    /// The descriptor of generation `gen` (which `latest` names) and, if the value has at most
    /// `max` bytes (`max > 0`), its validated inline copy. On failure: the descriptor's length
    /// and tag if it was usable (a hint for the slot copy), and whether the copy was overtaken.
    #[inline(always)]
    fn inline_attempt(
        &self,
        b: usize,
        latest: u64,
        gen: u64,
        max: usize,
        buf: &mut Vec<u8>,
    ) -> Result<Meta, (Hint, bool)> {
        let Some((len, tag)) = self.descriptor_in(b, gen) else {
            return Err((None, false));
        };
        if len > max {
            return Err((Some((len, tag)), false));
        }
        match self.copy_inline(b, latest, gen, len, tag, buf) {
            Some(meta) => Ok(meta),
            None => Err((Some((len, tag)), true)),
        }
    }

    /// Copies the latest value into `buf` (replacing its contents). `pin` yields this handle's pin
    /// entry, if it has one; without one the read relies on validation alone. It is asked for only
    /// if the first, optimistic attempt fails, so the common read does no bookkeeping for it at
    /// all. With `eager`, the pin is asked for before the first attempt (the caller has seen its
    /// optimistic reads fail lately, under a writer that overtakes them). With `inline` false, a
    /// small value is copied from its slot, not from the header (the caller has seen inline copies
    /// overtaken lately: the header lines are then the ones a back-to-back writer keeps rewriting,
    /// while a slot stays untouched for several publishes). With `lost`, the caller's fast path
    /// already made the first, optimistic attempt and lost it ([`Miss::SlotFailed`]): it counts
    /// as this read's first, so the read goes on pinned and reports it among its retries.
    /// Returns the value's meta and whether an inline copy was overtaken.
    pub(crate) fn read(
        &self,
        pin: impl FnOnce() -> Option<usize>,
        eager: bool,
        inline: bool,
        lost: bool,
        buf: &mut Vec<u8>,
        t: &Timeouts,
    ) -> Result<(Meta, bool)> {
        let latest_word = self.region.word(H_LATEST);
        let mut pin = Some(pin);
        let mut pin_word = None;
        let mut retries: u32 = u32::from(lost);
        let mut started: Option<Instant> = None;
        let mut overtaken = false;
        // The `latest` seen after the last failed attempt, and since when it stays there while
        // attempts keep failing (`read_backoff`).
        let mut stuck: (u64, Option<Instant>) = (u64::MAX, None);
        loop {
            // The first attempt is optimistic and touches nothing but the slot: when no writer is
            // overtaking us (the common case, e.g. a request/reply exchange) that saves the two
            // cache-line transfers a pin costs (our store, the writer's next scan). Only after a
            // failed attempt does the reader pin, which guarantees progress.
            if retries >= u32::from(!eager) {
                if let Some(p) = pin.take() {
                    pin_word = p().map(|e| self.region.word(self.layout.pin(e, PIN_SLOT)));
                }
            }
            // Pinned, SeqCst: the load must follow the pin's SeqCst store in the total order
            // (see `pin_latest`); unpinned, Acquire is enough.
            let l = match pin_word {
                Some(_) => latest_word.load(Ordering::SeqCst),
                None => crate::sync::load_acquire(latest_word),
            };
            let (gen, slot) = split_latest(l);
            let attempt = if gen == 0 {
                // Generation 0 is answered by the writers' count, not by what an attempt would
                // find (FORMAT.md §10.5), so no attempt is made: see `at_generation_0`.
                self.at_generation_0(buf)
            } else if slot == NO_SLOT {
                if let Some(pw) = pin_word {
                    // No slot to pin: ask writers to keep values in slots (every pin scan that
                    // follows this SeqCst store in the total order sees it, so at most the
                    // publish already under way stays in the header only), and copy the header
                    // meanwhile. The next attempt pins the slot `latest` names.
                    if pw.load(Ordering::Relaxed) == 0 {
                        pw.store(PIN_WANT_SLOTS, Ordering::SeqCst);
                    }
                }
                self.read_header_only(l, buf)
            } else if slot >= self.layout.slots {
                self.out_of_range(slot)
            } else {
                match self.first_pass(retries, l, inline, &mut overtaken, buf) {
                    Ok(meta) => Attempt::Done(meta),
                    Err(hint) => match pin_word {
                        Some(pw) => {
                            let (gen, slot, hint) =
                                self.pin_latest(pw, latest_word, l, gen, slot, hint);
                            self.copy_slot(slot, gen, hint, buf)
                        }
                        None => self.copy_slot(slot, gen, hint, buf),
                    },
                }
            };
            match attempt {
                Attempt::Done(mut meta) => {
                    meta.retries = retries;
                    return Ok((meta, overtaken));
                }
                Attempt::Damaged(what) => {
                    return Err(Error::Corrupt {
                        name: self.name.clone(),
                        what,
                        value_only: true,
                    })
                }
                Attempt::NoRoom { len, source } => {
                    return Err(Error::OutOfMemory {
                        name: self.name.clone(),
                        len: len as u64,
                        cause: source,
                    })
                }
                Attempt::Retry => {}
            }
            retries = retries.saturating_add(1);
            // The file was truncated under us: zero pages never validate, so say so now instead
            // of after the read timeout.
            if retries.is_multiple_of(64) && self.region.tripped() {
                return Err(self.truncated());
            }
            // The clock starts at the first failed attempt (a read that succeeds at once never
            // reads it). It is asked every 64th attempt while attempts spin, after every one
            // once they yield (`spin_hint`), and after every attempt that copied
            // [`CLOCK_EVERY_ATTEMPT_FROM`] bytes or more (what it copied is still in `buf`):
            // asked every 64th attempt only, it let a read with a 5 ms timeout of a 512 MiB
            // value that a peer kept invalidating run for 3.2-3.9 s, and one with a 2 ms
            // timeout (an async stream's slice) run for 180 ms on a machine whose cores were
            // busy, where each yield gives them the core for a while.
            let since = *started.get_or_insert_with(Instant::now);
            let waited = (retries.is_multiple_of(64)
                || retries > 64
                || buf.len() >= CLOCK_EVERY_ATTEMPT_FROM)
                .then(|| since.elapsed());
            if waited.is_some_and(|waited| waited >= t.read) {
                return Err(Error::Contended {
                    name: self.name.clone(),
                    what: format!(
                        "no consistent snapshot after {retries} attempts; if no writer is busy \
                         and it stays so, a crash left the value half written, which `mmf \
                         recover` (`Channel::recover`) repairs"
                    ),
                    waited: since.elapsed(),
                });
            }
            // Only while `latest` stays put: a writer that keeps publishing overtakes attempts
            // that each may succeed, and sleeping would only make fewer of them (the diff
            // review of the first version: unpinned 4 KiB reads over 10 ms rose from 0-1 to
            // 51-77 in 3 s, and 1 MiB reads timed out).
            let pause = if retries > 64 {
                let now = latest_word.load(Ordering::Relaxed);
                if now != stuck.0 {
                    stuck = (now, None);
                }
                let at = *stuck.1.get_or_insert_with(Instant::now);
                read_backoff(at.elapsed())
            } else {
                None
            };
            match pause {
                Some(pause) => {
                    std::thread::sleep(pause.min(t.read.saturating_sub(since.elapsed())))
                }
                None => spin_hint(retries),
            }
        }
    }

    /// One attempt at a value that `latest` (which the caller loaded, with Acquire or SeqCst)
    /// keeps in the header only ([`NO_SLOT`]): the validated copy of its inline buffer, as in
    /// [`read_inline`](Self::read_inline). `Retry` when a publish overtook the copy (there is no
    /// slot to fall back on), `Corrupt` when `latest` stayed put while its descriptor did not
    /// describe an inline value of its generation, which no writer leaves behind.
    ///
    /// Never called at generation 0, which [`read`](Self::read) answers by the writers' count.
    fn read_header_only(&self, latest: u64, buf: &mut Vec<u8>) -> Attempt {
        debug_assert_ne!(split_latest(latest).0, 0, "an attempt at generation 0");
        let gen = split_latest(latest).0;
        let b = (gen % 2) as usize;
        let max = self.layout.inline_max(self.checksum);
        let what = if max == 0 {
            // A checksummed channel: no writer keeps a value in the header only there, since the
            // header has no room for its checksum. Not even an empty one is accepted unchecked.
            "on a channel with checksums, whose values are always in slots".to_owned()
        } else {
            match self.inline_attempt(b, latest, gen, max, buf) {
                Ok(meta) => return Attempt::Done(meta),
                Err((_, true)) => return Attempt::Retry,
                Err((_, false)) => format!(
                    "but descriptor {b} does not describe a value of that generation of at most \
                     {max} bytes"
                ),
            }
        };
        // Damage, or a publish that moved `latest` on meanwhile: a writer stores the descriptor
        // before `latest`, so only a `latest` that stayed put while it was wrong is corrupt.
        crate::sync::fence(Ordering::Acquire);
        if self.fixed()[H_LATEST].load(Ordering::Relaxed) == latest {
            Attempt::Damaged(format!(
                "latest names generation {gen} in no slot, {what}: {VALUE_DAMAGED}"
            ))
        } else {
            Attempt::Retry
        }
    }

    /// An attempt at a `latest` naming `slot`, which is not one of the channel's: no writer
    /// stores that, so it is damage. (At generation 0 no attempt is made: the rule of FORMAT.md
    /// §10.5 holds whatever an attempt would find, as `look_latest` and a reader in another
    /// language apply it; a format review found reads calling such a new channel corrupt where
    /// `verify` called it whole.)
    #[cold]
    fn out_of_range(&self, slot: usize) -> Attempt {
        Attempt::Damaged(format!(
            "latest names slot {slot} of {}: {VALUE_DAMAGED}",
            self.layout.slots
        ))
    }

    /// Pins the slot of `latest` (`l`, generation `gen` in `slot`, `hint` its descriptor) for a
    /// copy, and returns the value to copy: that one, or a newer one `latest` moved on to before
    /// the pin was in place.
    ///
    /// The pin stays in place after a read (it costs the entry one slot, which the R + 2 slots
    /// provide for), so a reader that finds the same latest slot again writes nothing: no
    /// cache-line transfer to the writer's next pin scan. Our own earlier SeqCst store of the
    /// same value still precedes this read's SeqCst load of `latest` in the total order, which
    /// is all the argument needs.
    ///
    /// After a new pin, `latest` is loaded again (SeqCst, after the SeqCst store of the pin): a
    /// writer whose pin scan missed the pin scanned before the store in the total order, after the
    /// SeqCst fence that follows a writer's store of a `latest` past `l` (a writer only fills the
    /// slot `latest` names once `latest` has moved off it; the lock orders the previous writer's
    /// fence before this scan), so the reload sees `latest` moved. Then the copy would most likely
    /// be overtaken, and be thrown away as a retry; it is re-aimed at the new `latest` before it
    /// starts instead (a few times at most: the copy's validation decides in any case). Measured
    /// under a back-to-back writer of 4 KiB values on a host whose cross-core copy takes longer
    /// than a publish (BENCHMARKS.md).
    #[inline]
    fn pin_latest(
        &self,
        pw: &crate::sync::AtomicU64,
        latest_word: &crate::sync::AtomicU64,
        mut l: u64,
        mut gen: u64,
        mut slot: usize,
        mut hint: Hint,
    ) -> (u64, usize, Hint) {
        for _ in 0..4 {
            if pw.load(Ordering::Relaxed) == slot as u64 + 1 {
                break;
            }
            pw.store(slot as u64 + 1, Ordering::SeqCst);
            let now = latest_word.load(Ordering::SeqCst);
            let (now_gen, now_slot) = split_latest(now);
            if now == l || now_slot >= self.layout.slots || now_gen == 0 {
                // Still the one pinned, or no slot to aim at, or generation 0, which no attempt
                // reads. The copy goes on at `l`: it returns that value, latest when loaded, if
                // it validates, and retries otherwise (then the next attempt meets the rule).
                break;
            }
            (l, gen, slot, hint) = (now, now_gen, now_slot, self.descriptor(now_gen));
        }
        (gen, slot, hint)
    }

    /// The first pass of a read: the descriptor of `latest`'s generation, and with it the inline
    /// copy of a small value. Returns the finished read, or the length and tag to copy the slot
    /// with (`None`: the descriptor was not usable, read the frame first). A failed inline copy
    /// goes on to the slot with the same `latest` (still a value that was latest during the read),
    /// so it costs no retry. Later passes use the slot alone.
    #[inline(always)]
    fn first_pass(
        &self,
        retries: u32,
        latest: u64,
        inline: bool,
        overtaken: &mut bool,
        buf: &mut Vec<u8>,
    ) -> Result<Meta, Hint> {
        if retries != 0 {
            return Err(None);
        }
        let gen = split_latest(latest).0;
        let max = self.layout.inline_max(self.checksum);
        if !inline || max == 0 {
            return Err(self.descriptor(gen));
        }
        self.inline_attempt((gen % 2) as usize, latest, gen, max, buf)
            .map_err(|(hint, o)| {
                *overtaken = o;
                hint
            })
    }

    /// Copies the first `len` payload bytes of `slot` into `buf` (replacing its contents), or
    /// fails, leaving `buf` empty, when `buf` cannot grow that large. The caller then reports
    /// [`Attempt::NoRoom`] only if `len` proves to be the current value's (the same validation
    /// as for a copy), and retries otherwise: a length read while a writer rewrote the slot is
    /// no value's.
    #[inline(always)]
    fn copy_payload(
        &self,
        slot: usize,
        len: usize,
        buf: &mut Vec<u8>,
    ) -> std::result::Result<(), std::collections::TryReserveError> {
        self.region
            .copy_out(self.layout.slot(slot, F_PAYLOAD), len, buf)
    }

    /// One validated copy of `slot`, expected to hold generation `gen`. With `hint` (the length
    /// and tag the descriptor states), the payload copy starts at once: on a channel without
    /// checksums it is validated by `latest` alone
    /// ([`copy_slot_by_latest`](Self::copy_slot_by_latest)), on one with checksums in parallel
    /// with the fetch of the frame line, which must then agree with the hint (else: retry, and
    /// the next attempt reads the frame first).
    ///
    /// Never called at generation 0, which [`read`](Self::read) answers by the writers' count
    /// ([`at_generation_0`](Self::at_generation_0)).
    #[inline(always)]
    fn copy_slot(&self, slot: usize, gen: u64, hint: Hint, buf: &mut Vec<u8>) -> Attempt {
        debug_assert_ne!(gen, 0, "an attempt at generation 0");
        // A value found damaged at open is read by its frame, which reports the damage.
        let hint = hint.filter(|_| self.damaged != Some(pack_latest(gen, slot)));
        if let (Some(hint), false) = (hint, self.checksum) {
            return self.copy_slot_by_latest(slot, gen, hint, buf);
        }
        let l = &self.layout;
        let seq = self.region.word(l.slot(slot, F_SEQ));
        let Some(s1) = seqlock::read_begin(seq) else {
            return self.retry_unless_damaged(slot, gen);
        };
        let field = |i: usize| self.region.word(l.slot(slot, i)).load(Ordering::Relaxed);
        if let Some((hlen, htag)) = hint {
            // `hlen <= capacity` (checked by `descriptor`).
            let copied = self.copy_payload(slot, hlen, buf);
            let (fgen, len, tag, crc) = (field(F_GEN), field(F_LEN), field(F_TAG), field(F_CRC));
            if !seqlock::read_validate(seq, s1)
                || fgen != gen
                || len != hlen as u64
                || tag != u64::from(htag.0)
            {
                return Attempt::Retry;
            }
            if let Err(source) = copied {
                return Attempt::NoRoom { len: hlen, source };
            }
            return self.checked(slot, gen, crc, htag, buf);
        }
        let fgen = field(F_GEN);
        let len = field(F_LEN);
        let tag = field(F_TAG);
        let crc = field(F_CRC);
        if len > l.capacity as u64 || tag > u64::from(u16::MAX) {
            // Only a complete frame that is itself wrong is corruption; a changing one is a race.
            if seqlock::read_validate(seq, s1) && fgen == gen {
                return Attempt::Damaged(format!(
                    "frame in slot {slot} claims {len} bytes (capacity {}) and tag {tag}: \
                     {VALUE_DAMAGED}",
                    l.capacity
                ));
            }
            return Attempt::Retry;
        }
        let len = len as usize;
        let copied = self.copy_payload(slot, len, buf);
        if !seqlock::read_validate(seq, s1) || fgen != gen {
            return self.retry_unless_damaged(slot, gen);
        }
        if let Err(source) = copied {
            return Attempt::NoRoom { len, source };
        }
        self.checked(slot, gen, crc, Tag(tag as u16), buf)
    }

    /// Whether the slot `latest` names has an odd stamp: a write begun and never ended. Only
    /// meaningful under the writer lock, where no writer is busy ([`Channel::recover`]); a
    /// reader without it may see a later writer's odd stamp before `latest` moves for it.
    ///
    /// [`Channel::recover`]: crate::Channel::recover
    pub(crate) fn frame_left_open(&self, latest: u64) -> bool {
        let (_, slot) = split_latest(latest);
        slot < self.layout.slots
            && crate::sync::load_acquire(self.region.word(self.layout.slot(slot, F_SEQ))) % 2 == 1
    }

    /// The newest value still whole that `latest`'s damaged one may be replaced with, for
    /// [`Channel::recover`](crate::Channel::recover) (`latest` loaded with Acquire): its
    /// generation, tag and bytes. Candidates: the frames of the slots other than the one
    /// `latest` names, and the inline buffers (`whole_inline`), of generations up to the newer
    /// of `latest`'s and the writers' count (`written`, which a publish stores after `latest`:
    /// one past `latest`'s generation means a stray write moved `latest` back, and every
    /// generation up to it was published). A frame of `latest`'s own generation in another
    /// slot counts only where its descriptor describes it: a stray write of `latest`'s slot
    /// bits leaves the value whole there (a hostile-mapping review found `recover` bringing
    /// back an older value over it, or, `latest` moved back, none at all). In the slot
    /// `latest` names, only a frame newer than `latest` counts. Each frame is copied as a
    /// seqlock read (an even stamp, unchanged around the copy) and checked as a read checks it
    /// (length and tag in range, the CRC where the frame has one); without checksums a payload
    /// torn by a crash cannot be told. (The damaged value's own inline copy is no candidate
    /// here: a read tries it before the slot, and goes to the slot first only after an inline
    /// copy was overtaken (`Channel`'s `slot_reads`), that is after `latest` moved off the value
    /// found damaged at open; so a value that has a whole one does not read as damaged.
    /// `Channel::recover` publishes that copy again by itself, when reads succeed but the frame
    /// is damaged.)
    ///
    /// Two frames of one generation (a writer killed after filling a slot and before storing
    /// `latest` leaves one, and the next writer publishes that generation again): the one its
    /// descriptor describes, if it still does (and its length or tag tells them apart), is the
    /// one that was published; an inline copy of that generation is that one too.
    ///
    /// `OutOfMemory` when a candidate too large for this process to allocate (its frame whole,
    /// read under its stamp) is newer than every whole one found: bringing back an older value
    /// instead would lose the newest.
    pub(crate) fn newest_whole_before(&self, latest: u64) -> Result<Option<(u64, Tag, Vec<u8>)>> {
        let l = &self.layout;
        let (gen, current) = split_latest(latest);
        let written = self.written_generation();
        // A `latest` of generation 0 under a writers' count past it was overwritten (no
        // publish stores 0): every whole value up to the count is a candidate, in any slot.
        let current = if gen == 0 { usize::MAX } else { current };
        let upper = gen.max(written);
        let mut buf = Vec::new();
        // The best so far, and whether its descriptor still describes it: the newer of the
        // inline buffers' values, if any is whole (a channel of small values keeps them in the
        // header only while no reader wants slots, so its slots may hold nothing recent).
        let candidates = 1..=upper;
        let inline = [0, 1].map(|b| self.whole_inline(b, candidates.clone(), &mut buf));
        let mut best = inline.into_iter().flatten().max_by_key(|v| v.0);
        let mut described = best.is_some();
        // The newest candidate that could not be copied for want of memory.
        let mut too_large: Option<(u64, u64, std::collections::TryReserveError)> = None;
        // The slot `latest` names holds its damaged value, or an older frame over a payload
        // its value may have half overwritten; a frame newer than `latest` there was published
        // after it (the writers' count says so), and `latest` moved back. An older frame with a
        // CRC is taken all the same if its CRC matches (below): a machine crash that wrote
        // back the header's page and not the slot's leaves the flushed value there whole, and
        // a payload half overwritten fails the check (a crash audit found such values given
        // up for lost).
        for slot in 0..l.slots {
            let seq = self.region.word(l.slot(slot, F_SEQ));
            let Some(s1) = seqlock::read_begin(seq) else {
                continue;
            };
            let field = |i: usize| self.region.word(l.slot(slot, i)).load(Ordering::Relaxed);
            let (fgen, len, tag, crc) = (field(F_GEN), field(F_LEN), field(F_TAG), field(F_CRC));
            let matches = self
                .descriptor(fgen)
                .is_some_and(|(dlen, dtag)| dlen as u64 == len && u64::from(dtag.0) == tag);
            let newer = best
                .as_ref()
                .is_none_or(|b| fgen > b.0 || (fgen == b.0 && matches && !described));
            if fgen == 0
                || (slot == current && fgen <= gen && crc & CRC_PRESENT == 0)
                || fgen > upper
                || (fgen == gen && !matches)
                || !newer
                || len > l.capacity as u64
                || tag > 0xffff
            {
                continue;
            }
            let copied = self.copy_payload(slot, len as usize, &mut buf);
            if !seqlock::read_validate(seq, s1) {
                continue;
            }
            if let Err(source) = copied {
                if too_large.as_ref().is_none_or(|t| fgen > t.0) {
                    too_large = Some((fgen, len, source));
                }
                continue;
            }
            if crc & CRC_PRESENT != 0 && crc32fast::hash(&buf) != crc as u32 {
                continue;
            }
            best = Some((fgen, Tag(tag as u16), std::mem::take(&mut buf)));
            described = matches;
        }
        match too_large {
            Some((g, len, source)) if best.as_ref().is_none_or(|b| g > b.0) => {
                Err(Error::OutOfMemory {
                    name: self.name.clone(),
                    len,
                    cause: source,
                })
            }
            _ => Ok(best),
        }
    }

    /// The value inline buffer `b` holds, if it is whole: of a generation `d` in `gens`, at
    /// most the generation of a `latest` the caller loaded with Acquire (so the publish of `d`
    /// is visible), not 0, described by its descriptor as a value small enough to be inline, in
    /// a buffer whose stamp names `d` before and after the copy. A publish of `d + 2` or later,
    /// even one cut short by a killed writer or a crash, stamps the buffer before it rewrites
    /// it (`stamp_inline`), so a copy that stamp vouches for holds nothing but the value of `d`.
    /// Why not [`copy_inline`](Self::copy_inline), whose check this shares: its other test, an
    /// unchanged `latest`, vouches only for `latest`'s own buffer. The publish of `gen + 1`
    /// rewrites the buffer of `gen - 1` while `latest` still names `gen`.
    pub(crate) fn whole_inline(
        &self,
        b: usize,
        gens: std::ops::RangeInclusive<u64>,
        buf: &mut Vec<u8>,
    ) -> Option<(u64, Tag, Vec<u8>)> {
        let max = self.layout.inline_max(self.checksum);
        let stamp = &self.fixed()[Layout::inline_stamp(b)];
        let d = stamp.load(Ordering::Relaxed);
        if max == 0 || d == 0 || !gens.contains(&d) || d % 2 != b as u64 {
            return None;
        }
        let (len, tag) = self.descriptor_in(b, d).filter(|&(len, _)| len <= max)?;
        self.region.copy_out_small(Layout::inline_data(b), len, buf);
        crate::sync::fence(Ordering::Acquire);
        (stamp.load(Ordering::Relaxed) == d).then(|| (d, tag, std::mem::take(buf)))
    }

    /// After a frame-first copy of `slot` failed to validate as generation `gen`: `Retry` if a
    /// publish moved `latest` on (the usual race), `Corrupt` if `latest` still names that slot
    /// and generation and the frame is wrong ([`look_latest`](Self::look_latest) says why and
    /// why no writer leaves that). Without this, such a frame (a file restored after a machine
    /// crash with only its header page written back) was retried until the read timed out as
    /// "contended", and retrying later never helped.
    #[cold]
    fn retry_unless_damaged(&self, slot: usize, gen: u64) -> Attempt {
        // The usual race first, with one load: `latest` moved on, so this is no damage of it
        // (the look below would come to the same, after loading the frame and descriptor).
        if self.region.word(H_LATEST).load(Ordering::Relaxed) != pack_latest(gen, slot) {
            return Attempt::Retry;
        }
        match self.look_latest() {
            Look::Damaged {
                latest,
                what,
                frame: true,
            } if latest == pack_latest(gen, slot) => {
                Attempt::Damaged(format!("{what}: {VALUE_DAMAGED}"))
            }
            _ => Attempt::Retry,
        }
    }

    /// A copy of `slot`'s payload (`len` bytes, tagged `tag`, as generation `gen`'s descriptor
    /// states), validated without touching the frame line unless a publish overtook the copy.
    ///
    /// Why `latest` alone validates it: the publish of `gen` made `slot` latest, and no writer
    /// stores into the slot `latest` names (`choose_slot` never picks it). So the first publish
    /// that can rewrite `slot` is that of `gen + 2` or later, and it starts after `latest` moved
    /// off `gen`: under the lock after the store of `gen + 1`, or, if it recovered the lock from
    /// a writer that died, after loading a `latest` past `gen` (else it avoids `slot` too). Its
    /// stores into the slot follow `begin_write`'s Release fence. If any load of our copy read
    /// one of them, that fence synchronises with our Acquire fence below, so our reload of
    /// `latest` sees `gen + 1` or later (it happens after the store of `gen + 1`, or after the
    /// rewriting writer's load of a later value, which read-read coherence carries over). Hence
    /// `latest` still naming `gen` proves the copy clean, and the descriptor too (the double
    /// buffering argument of `store_descriptor`). The same argument as for the inline copy, with
    /// the slot for the buffer.
    ///
    /// Not touching the frame line is the point: in a request/reply exchange the writer's next
    /// `begin_write` into this slot then finds the line still in its own cache, instead of
    /// waiting for it to come back from this reader's core before its payload stores can drain.
    /// Measured between two processes (in-run A/Bs of the two reads in one binary, mmf / F per
    /// round, runs of 15 rounds): at 4 KiB 0.08 lower on average than reading the stamp first
    /// (eight runs, -0.04 to 0.27), against 0.02 between two identical variants (nine runs); at
    /// 1 KiB 0.05 and 0.15 lower (two runs); at 64 KiB no difference.
    ///
    /// When `latest` has moved on, the copy may still be clean: the slot is intact until the
    /// publish of `gen + 2` writes it. The stamp decides: any store of that publish which the
    /// copy read makes the reload below see its odd stamp (or a later one), and a stamp that is
    /// even again belongs to a completed rewrite, whose frame generation (loaded after the stamp
    /// with Acquire) is no longer `gen`. So an even stamp with the frame still stating `gen`,
    /// `len` and `tag` means no store of a rewrite reached the copy.
    fn copy_slot_by_latest(
        &self,
        slot: usize,
        gen: u64,
        (len, tag): (usize, Tag),
        buf: &mut Vec<u8>,
    ) -> Attempt {
        let l = &self.layout;
        // `len <= capacity` (checked by `descriptor`).
        let copied = self.copy_payload(slot, len, buf);
        crate::sync::fence(Ordering::Acquire);
        let now = self.region.word(H_LATEST).load(Ordering::Relaxed);
        if let Err(source) = copied {
            // `latest` still naming `gen` vouches for its descriptor, and so for `len`.
            return if split_latest(now).0 == gen {
                Attempt::NoRoom { len, source }
            } else {
                Attempt::Retry
            };
        }
        if split_latest(now).0 != gen {
            // Overtaken: the frame decides, read as one slice (one bounds check). The stamp is
            // read as a seqlock read begins (Relaxed, then Acquire), here after the copy.
            let frame = self.region.words(l.slot(slot, 0), F_PAYLOAD);
            if seqlock::read_begin(&frame[F_SEQ]).is_none()
                || frame[F_GEN].load(Ordering::Relaxed) != gen
                || frame[F_LEN].load(Ordering::Relaxed) != len as u64
                || frame[F_TAG].load(Ordering::Relaxed) != u64::from(tag.0)
            {
                return Attempt::Retry;
            }
        }
        Attempt::Done(Meta {
            generation: gen,
            tag,
            len,
            retries: 0,
        })
    }

    /// The attempt at a `latest` naming generation 0 (loaded first), in place of any copy: the
    /// rule is the read loop's, applied once before the attempt's kind is chosen (header only,
    /// slot, out of range), so no path that copies meets generation 0. Nothing published yet
    /// (an empty value, `buf` cleared) if the writers' count (`written`) is at generation 0 too,
    /// whatever the descriptor, inline buffer or slot 0's frame hold; damage if values were
    /// published and `latest` still names generation 0 ([`generation_0`](Self::generation_0));
    /// else a retry, at the value `latest` moved on to.
    ///
    /// On a new channel no writer stores into slot 0's frame before a publish of generation 2,
    /// which follows the count's store of 1. A stray write that left the frame odd or naming
    /// another generation made every read of a new channel spin until its timeout, and then
    /// advise a `recover` that found nothing to bring back (a damage review). The rule was
    /// first applied at each of the three attempts' sites, after the attempt; one step in the
    /// read loop is the form the diff reviews of stops 56 and 57 asked for.
    #[cold]
    fn at_generation_0(&self, buf: &mut Vec<u8>) -> Attempt {
        match self.generation_0() {
            Gen0::Unpublished => Attempt::Done(nothing_yet(buf)),
            Gen0::Overwritten(what) => Attempt::Damaged(format!("{what}: {VALUE_DAMAGED}")),
            Gen0::Moved => Attempt::Retry,
        }
    }

    /// What a `latest` naming generation 0, loaded (with Acquire) before this call, means: see
    /// [`Gen0`]. A read or look asks this instead of copying or looking at what that `latest`
    /// names ([`at_generation_0`](Self::at_generation_0)), so that a zeroed `latest`
    /// (the likeliest stray write) does not read as "no value yet" once values were published:
    /// on a channel of small values, kept in the header only, slot 0's frame is never written
    /// and still holds generation 0's empty value, which that `latest` then named whole.
    ///
    /// Why the answers are right, with `written` stored with Release right after each `latest`
    /// (`commit`, and the recovered writer's copy in `publish_locked`): a count of 0 means no
    /// publish had stored it when it was loaded, so generation 0 was the latest value when
    /// `latest` was (the answer "nothing yet" is that moment's). A count past 0 was stored after
    /// a `latest` past generation 0 (or copied from one), and its Acquire load synchronises with
    /// that store, so the reload of `latest` sees that value or a later one in its modification
    /// order: generation 0 there is a store no publish makes ([`Gen0::Overwritten`]); anything
    /// else is a publish that overtook the read ([`Gen0::Moved`]), which is no damage. (A first
    /// version loaded the count with Relaxed and called a generation-0 `latest` damaged without
    /// the reload; under loom it raced the first publish, reporting damage for a `latest` that
    /// had just moved on.)
    #[cold]
    fn generation_0(&self) -> Gen0 {
        let written = self.written_generation();
        if written == 0 {
            return Gen0::Unpublished;
        }
        let latest = self.region.word(H_LATEST).load(Ordering::Relaxed);
        if split_latest(latest).0 != 0 {
            return Gen0::Moved;
        }
        Gen0::Overwritten(format!(
            "latest names generation 0, but the writers' count is at {written}: it was \
             overwritten"
        ))
    }

    /// The end of a validated slot copy: the checksum, if the frame has one.
    fn checked(&self, slot: usize, gen: u64, crc: u64, tag: Tag, buf: &[u8]) -> Attempt {
        if crc & CRC_PRESENT != 0 && crc32fast::hash(buf) != crc as u32 {
            return Attempt::Damaged(format!(
                "checksum mismatch in slot {slot}, generation {gen}: {VALUE_DAMAGED}"
            ));
        }
        Attempt::Done(Meta {
            generation: gen,
            tag,
            len: buf.len(),
            retries: 0,
        })
    }
}

/// How much of a slot value a read hints the CPU to fetch at once ([`Snapshot::prefetch_slot`]),
/// and the largest value whose slot a publish takes for writing (`prefetchw`) before it copies
/// the value in: readers copy such values out of their slots, so their cores hold the slot's
/// lines, and the hint has the writer claim them all at once instead of a few at a time as its
/// stores reach them (small values are read from the inline buffer and leave the slot in the
/// writer's cache). A value that comes through a `fill` closure has no length up front and gets
/// no write hint. Measured between two processes (in-run A/Bs, mmf / F per round, with and
/// without): the read hint took 512 B from 1.90-2.14 to 1.83-1.91, 1 KiB from 2.20-2.55 to
/// 1.87-2.21, 2 KiB from 1.37-1.55 to 1.19-1.45; the write hint on top took 1 KiB from 1.85-2.07
/// to 1.62-2.00 and 2 KiB from 1.27-1.84 to 1.32-1.71. At 4 KiB and above neither did better
/// than the noise, while in one process (a hot cache, nothing to fetch) the write hint made a
/// 4 KiB publish 60-150 ns slower, so the hints stop at 2 KiB. There the read hint costs a
/// reader in the writer's own process 10-25 ns (best of 15 x 100,000 reads), less than it saves
/// a reader in another process.
const PREFETCH_BYTES: usize = 2048;

/// A read's retries ask the clock after every attempt that copied this many bytes or more (a
/// copy of some microseconds, beside which the clock read is nothing), else every 64th attempt.
/// So a read overruns its timeout by at most 64 copies of less than this, or one larger copy,
/// besides the attempts made before the clock started.
const CLOCK_EVERY_ATTEMPT_FROM: usize = 64 << 10;

/// How far the header's waiter count may exceed the pin entries' counts (waits that have counted
/// themselves in the header and not yet in their entry) before [`Snapshot::heal_waiters`] takes
/// it for a peer's doing.
const WAITERS_SLACK: u64 = 1 << 16;

/// How far past `latest` and `written` a frame may be and still count as a value a machine
/// crash lost ([`Snapshot::lost_generations`]): a crash loses what was published since the
/// kernel last wrote the file back (about half a minute at most; 2^32 publishes take over three
/// minutes at 20 million a second), and a frame further ahead was written by someone else.
const LOST_GENERATIONS: u64 = 1 << 32;

/// How long a smaller excess of the header's waiter count over the entries' must stay unchanged
/// for [`Snapshot::woke_nobody`] to take it for a waiter killed between its two counts.
const WAITERS_SETTLE: Duration = Duration::from_millis(1);

/// How often at most a writer whose wake-up calls woke nobody looks for entries that count a
/// dead waiter ([`Snapshot::reap_dead_waiters`]): a liveness test per counting entry, which a
/// writer whose waiters are all alive but awake would otherwise repeat every millisecond.
#[cfg(not(mmf_loom))]
const REAP_EVERY: Duration = Duration::from_millis(100);

/// What a descriptor says of a value, length and tag, when it is usable: a slot copy can start
/// with it at once, validated by `latest` (`Snapshot::copy_slot_by_latest`), or on a channel with
/// checksums while the frame line arrives (the frame must then agree).
type Hint = Option<(usize, Tag)>;

/// The last generation `latest`'s 56 bits can hold. A writer never wraps past it (to 0, which
/// means "no value yet", and below every generation a reader has seen, whose wait for a newer one
/// would then never end): no run of correct publishes gets there, about a century at 20 million
/// a second, so a `latest` at it was written by someone else (FORMAT.md §11 step 2).
const MAX_GENERATION: u64 = u64::MAX >> SLOT_BITS;

/// A descriptor's second word: the length in bits 0-31 and the tag in bits 32-47, or all ones
/// (which no reader accepts: its tag field is out of range) for a value of 4 GiB or more, whose
/// length does not fit.
fn descriptor_meta(len: usize, tag: Tag) -> u64 {
    match u32::try_from(len) {
        Ok(len) => u64::from(len) | u64::from(tag.0) << 32,
        Err(_) => u64::MAX,
    }
}

/// The slot a writer fills next, given the current one (`cur`, possibly out of range in a damaged
/// header) and the mask of pinned slots: never `cur`, never a pinned slot, `None` if every slot is
/// one of those (impossible with at most `R` pins among `R + 2` slots).
///
/// It rotates through the lowest `rotation` slots that are not pinned, starting after `cur`. A
/// wide rotation gives an unpinned copy the longest window before its slot is rewritten; a narrow
/// one keeps the writer filling memory its readers have just read, still in cache.
/// `Layout::rotation` sizes it to a cache budget: a quarter of an L1 for slots of up to 8 KiB (all
/// slots for small values, two from about 2.6 KiB, so that the slots a process writes and reads
/// stay in its L1), half an L2 for larger ones (two from about 85 KiB). A shortcut when nothing is
/// pinned, bit arithmetic otherwise: this runs on every publish.
#[inline(always)]
fn choose_slot(slots: usize, rotation: usize, cur: usize, pinned: u64) -> Option<usize> {
    if pinned == 0 && cur < slots {
        // The common case, nobody pinned: the slot after `cur` within the lowest `rotation`
        // slots, wrapping to slot 0, in a few instructions (what the bit arithmetic gives for an
        // empty mask; never `cur`, as `rotation >= 2`, or `slots`, which is at least 2).
        let next = cur + 1;
        return Some(if next < rotation.min(slots) { next } else { 0 });
    }
    choose_slot_by_mask(slots, rotation, cur, pinned)
}

/// [`choose_slot`] for any mask, by bit arithmetic. Out of line: only a publish that finds a pin
/// gets here, and the common publish stays short.
#[inline(never)]
fn choose_slot_by_mask(slots: usize, rotation: usize, cur: usize, pinned: u64) -> Option<usize> {
    let all = u64::MAX >> (64 - slots);
    let cur_bit = if cur < slots { 1u64 << cur } else { 0 };
    let busy = pinned | cur_bit;
    // The rotation: the lowest `rotation` slots among the unpinned ones and `cur`.
    let mut eligible = (all & !pinned) | cur_bit;
    let members = if rotation >= slots || eligible.count_ones() as usize <= rotation {
        eligible
    } else {
        let mut members = 0u64;
        for _ in 0..rotation {
            let low = eligible & eligible.wrapping_neg();
            members |= low;
            eligible ^= low;
        }
        members
    };
    let free = members & !busy;
    let upto_cur = if cur < slots {
        (2u64 << cur).wrapping_sub(1)
    } else {
        0
    };
    let pick = if free & !upto_cur != 0 {
        free & !upto_cur
    } else if free != 0 {
        free
    } else {
        all & !busy
    };
    (pick != 0).then(|| pick.trailing_zeros() as usize)
}

/// What a publish stores: a value the caller holds as one slice, or a closure that streams it
/// into the slot.
pub(crate) enum Source<'b, F> {
    /// The whole value; copied straight into the slot and, if small, from the same slice into
    /// the inline buffer.
    Bytes(&'b [u8]),
    /// Writes the value through a [`SlotWriter`].
    Fill(F),
}

/// The `F` of a [`Source::Bytes`], which has no closure.
pub(crate) type NoFill = fn(&mut SlotWriter<'_>) -> io::Result<()>;

/// The writer locks this thread holds while it runs `publish_with` closures, so that a publish
/// from inside one to the same channel is told from a wait for another writer.
#[cfg(not(mmf_loom))]
mod filling {
    use std::cell::RefCell;

    thread_local! {
        /// The lock word's address and the holder's token of each closure running, outermost
        /// first. It grows with the nesting, once per thread, and is reused.
        static HELD: RefCell<Vec<(usize, u64)>> = const { RefCell::new(Vec::new()) };
    }

    /// A closure running under the lock at `word` (an address in this process), taken with
    /// `token`; forgotten when dropped.
    pub(super) struct Filling;

    impl Filling {
        pub(super) fn enter(word: usize, token: u64) -> Filling {
            // (`try_with`: a publish from a thread-local's destructor finds the record gone.)
            let _ = HELD.try_with(|h| h.borrow_mut().push((word, token)));
            Filling
        }
    }

    impl Drop for Filling {
        fn drop(&mut self) {
            let _ = HELD.try_with(|h| h.borrow_mut().pop());
        }
    }

    /// Whether this thread, inside a closure, holds the lock at `word` whose owner is `owner`:
    /// the same word (the same handle, or another handle on the same mapping), or the same
    /// channel mapped again by another handle, whose token is its own alone (kernel-held: a
    /// token judged by pid is the whole process's, which other threads may hold elsewhere).
    pub(super) fn holds(word: usize, owner: u64) -> bool {
        HELD.try_with(|h| {
            h.borrow().iter().any(|&(w, token)| {
                w == word || (owner & crate::os::KERNEL_HELD != 0 && token == owner)
            })
        })
        .unwrap_or(false)
    }
}

/// What a read that found the current value damaged says of it, after what it found: why it may
/// be so, and what mends it. The errors that end with it have `value_only` set
/// ([`Error::mended_by_publish`]).
pub(crate) const VALUE_DAMAGED: &str = "the file was not all written back before a machine \
     crash (a file channel not flushed), or was copied while a writer published, or another \
     program wrote into the mapping; recovering \
     it (`Channel::recover`, `mmf recover NAME`) publishes the newest earlier value still whole \
     again, and any publish replaces it";

/// Releases the writer lock when dropped.
struct LockGuard<'a>(&'a crate::sync::AtomicU64);

impl Drop for LockGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        lock::release(self.0);
    }
}

/// Marker carried inside the `io::Error` a [`SlotWriter`] returns when a value outgrows the slot:
/// the length the value had reached.
#[derive(Debug)]
struct Overflow(usize);

impl std::fmt::Display for Overflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "value exceeds the channel's capacity ({} bytes so far)",
            self.0
        )
    }
}

impl std::error::Error for Overflow {}

/// Writes a value straight into a free slot of the channel, as an [`io::Write`].
///
/// Handed to the closure of [`Channel::publish_with`](crate::Channel::publish_with). Bytes go into
/// shared memory with atomic word stores (a `&mut [u8]` into the slot would not be sound while an
/// unpinned reader may be validating a stale copy of it); writes past the capacity fail with an
/// error and the publish is abandoned, leaving the previous value in place.
pub struct SlotWriter<'a> {
    region: &'a Region,
    first: usize,
    capacity: usize,
    len: usize,
    /// Bytes of the current, not yet stored, word.
    pending: [u8; WORD],
    crc: Option<crc32fast::Hasher>,
    overflow: Option<usize>,
}

impl<'a> SlotWriter<'a> {
    fn new(region: &'a Region, first: usize, capacity: usize, checksum: bool) -> Self {
        SlotWriter {
            region,
            first,
            capacity,
            len: 0,
            pending: [0; WORD],
            crc: checksum.then(crc32fast::Hasher::new),
            overflow: None,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes that can still be written.
    pub fn remaining(&self) -> usize {
        self.capacity - self.len
    }

    /// Appends bytes.
    ///
    /// # Errors
    ///
    /// An [`io::Error`] of kind [`Other`](io::ErrorKind::Other), with none of the bytes
    /// written, if they are more than [`remaining`](Self::remaining) or an earlier `put`
    /// failed: a value past the capacity, which the publish then refuses with
    /// [`Error::TooLarge`](crate::Error::TooLarge), whatever the closure returns.
    pub fn put(&mut self, mut src: &[u8]) -> io::Result<()> {
        if self.overflow.is_some() || src.len() > self.remaining() {
            let total = self.overflow.unwrap_or(self.len) + src.len();
            self.overflow = Some(total);
            return Err(io::Error::other(Overflow(total)));
        }
        if let Some(h) = &mut self.crc {
            h.update(src);
        }
        let used = self.len % WORD;
        if used != 0 {
            let take = (WORD - used).min(src.len());
            self.pending[used..used + take].copy_from_slice(&src[..take]);
            self.len += take;
            src = &src[take..];
            if self.len.is_multiple_of(WORD) {
                let w = self.first + self.len / WORD - 1;
                self.region
                    .word(w)
                    .store(u64::from_ne_bytes(self.pending), Ordering::Relaxed);
            } else {
                return Ok(());
            }
        }
        let whole = src.len() / WORD * WORD;
        if whole > 0 {
            self.region
                .copy_in_words(self.first + self.len / WORD, &src[..whole]);
            self.len += whole;
        }
        let rest = &src[whole..];
        self.pending = [0; WORD];
        self.pending[..rest.len()].copy_from_slice(rest);
        self.len += rest.len();
        Ok(())
    }

    /// Stores the last partial word; returns the length and checksum, or, for a value too
    /// large, the length it was refused at.
    fn finish(self) -> std::result::Result<(usize, Option<u32>), usize> {
        if let Some(len) = self.overflow {
            return Err(len);
        }
        let used = self.len % WORD;
        if used != 0 {
            let mut last = self.pending;
            last[used..].fill(0);
            let w = self.first + self.len / WORD;
            self.region
                .word(w)
                .store(u64::from_ne_bytes(last), Ordering::Relaxed);
        }
        Ok((self.len, self.crc.map(crc32fast::Hasher::finalize)))
    }
}

impl std::fmt::Debug for SlotWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotWriter")
            .field("len", &self.len)
            .field("capacity", &self.capacity)
            .field("overflow", &self.overflow)
            .field("checksum", &self.crc.is_some())
            .finish()
    }
}

impl io::Write for SlotWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.put(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.put(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What a writer that timed out waiting for the lock says of its holder (`token`: its own;
/// `try_once`: its lock timeout is zero).
fn lock_holder(owner: u64, token: u64, live: &os::Liveness, try_once: bool) -> String {
    let pid = os::token_pid(owner);
    if owner == token {
        // Its own lock test cannot see its own kernel lock: it would say "dead". A forked copy
        // of the handle shares its identity (a review found a killed child's lock called
        // another thread's).
        return format!(
            "writer lock held under this handle's own identity (pid {pid}): by another of its \
             threads, or by a process forked from pid {pid} through a copy of the handle, which \
             if killed while publishing leaves it held until pid {pid} exits; a forked process \
             should open a handle of its own"
        );
    }
    match live.judge(owner) {
        os::OwnerState::Unknown(why) => format!(
            "writer lock held by pid {pid}, which may be alive: {why}; `fuser -v {}` names the \
             processes that have the channel open: once none has, `mmf recover` of the channel \
             (`host::free_orphans` in Rust) frees the lock, keeping its value",
            path_for_fuser(live)
        ),
        os::OwnerState::Alive => holder_alive(owner, live, try_once),
        // It died after the last check; the next attempt takes the lock over.
        os::OwnerState::Dead => format!("writer lock held by pid {pid}, which has just exited"),
    }
}

/// The channel's file as a shell word, for a `fuser` in a message: quoted where it holds more
/// than letters, digits and `/._-+:,@%=` (a space would split it), without the ` (deleted)` the
/// kernel adds to the path of a removed file.
fn path_for_fuser(live: &os::Liveness) -> String {
    let Some(path) = live.file().and_then(os::path_of) else {
        return "FILE".to_owned();
    };
    let path = path.display().to_string();
    let path = path.strip_suffix(" (deleted)").unwrap_or(&path);
    if path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+:,@%=".contains(&b))
    {
        path.to_owned()
    } else {
        format!("'{}'", path.replace('\'', r"'\''"))
    }
}

/// [`lock_holder`] of a holder judged alive. A kernel-held token's pid is the holder's own,
/// which in another PID namespace (a container sharing the directory) names another process
/// here, or none, and which a holder that forked without exec and died leaves to its child:
/// it is believed only where that process holds the token's lock ([`os::pid_holds_lock`]),
/// a look through its open files that a try-once publish (`try_once`: a lock timeout of
/// zero, perhaps in a loop) does not take. A token judged by pid is of this namespace, and
/// its start time matched.
fn holder_alive(owner: u64, live: &os::Liveness, try_once: bool) -> String {
    let pid = os::token_pid(owner);
    let holds = if owner & os::KERNEL_HELD == 0 {
        Some(true)
    } else if try_once {
        None
    } else {
        live.file()
            .and_then(|f| os::pid_holds_lock(pid, f, os::lock_offset(owner)))
    };
    let stopped = || os::pid_stopped(pid);
    match holds {
        Some(true) if stopped() => format!(
            "writer lock held by pid {pid}, which is stopped (a SIGSTOP or a debugger) in the \
             middle of a publish: `kill -CONT {pid}` lets it finish, and ending it frees the \
             lock"
        ),
        Some(true) => format!(
            "writer lock held by pid {pid}, which is alive and publishing (if it is stuck, \
             ending it frees the lock)"
        ),
        Some(false) => format!(
            "writer lock held by a live handle whose token names pid {pid}, but no process {pid} \
             here holds it: the holder runs in another PID namespace (a container), or died \
             after a fork without exec and its child holds the lock; `fuser -v {}` names the \
             processes of this namespace that have the channel open, and ending the holder \
             frees the lock",
            path_for_fuser(live)
        ),
        // A try-once publish's: short, claiming nothing of the pid.
        None if try_once => format!("writer lock held by a live handle (pid {pid})"),
        // Not known to be the holder (another user's process, whose open files this process
        // may not list; `/proc` hiding them): the pid is said as what it is, and a process of
        // that pid here that is stopped as what it may be.
        None => format!(
            "writer lock held by a live handle of pid {pid} as its own PID namespace numbers it \
             (a holder in another PID namespace, a container, is another pid here, and a holder \
             that died after a fork without exec left the lock to its child){}; `fuser -v {}` \
             names the processes of this namespace that have the channel open, and ending the \
             holder frees the lock",
            if stopped() {
                format!(
                    "; a process {pid} here is stopped: if it is the holder, `kill -CONT {pid}` \
                     lets it finish its publish"
                )
            } else {
                String::new()
            },
            path_for_fuser(live)
        ),
    }
}

#[cfg(all(test, not(mmf_loom)))]
mod tests {
    use super::{choose_slot, choose_slot_by_mask};

    /// A slot a reader has pinned is never rewritten, however many publishes follow, and the
    /// writer goes back to the whole rotation once the pin is released. (The pin is stored into
    /// the table the way a reader's pinned attempt stores it.)
    #[test]
    fn writers_never_rewrite_a_pinned_slot() {
        use super::{split_latest, Ordering, F_GEN, PIN_SLOT};
        use crate::{Options, Tag};
        for readers in [1, 2, 4, 8] {
            let ch = Options::new()
                .capacity(64)
                .readers(readers)
                .anonymous()
                .unwrap();
            let snap = ch.snapshot();
            let (l, r) = (&snap.layout, &snap.region);
            let entry = readers - 1;
            let pin = r.word(l.pin(entry, PIN_SLOT));
            // A reader that wants slots: the value goes into one (not the header only).
            pin.store(super::PIN_WANT_SLOTS, Ordering::SeqCst);
            ch.publish_raw(Tag::BYTES, b"pinned value").unwrap();
            let (gen, slot) = split_latest(r.word(super::H_LATEST).load(Ordering::SeqCst));
            assert!(
                slot < l.slots,
                "{readers} readers: no slot while a reader wants one"
            );
            pin.store(slot as u64 + 1, Ordering::SeqCst);
            let mut used = 0u64;
            for i in 0..4 * l.slots {
                ch.publish_raw(Tag::BYTES, format!("value {i}").as_bytes())
                    .unwrap();
                let (_, s) = split_latest(r.word(super::H_LATEST).load(Ordering::SeqCst));
                assert_ne!(
                    s, slot,
                    "{readers} readers: publish {i} took the pinned slot"
                );
                used |= 1 << s;
            }
            assert_eq!(r.word(l.slot(slot, F_GEN)).load(Ordering::SeqCst), gen);
            // Unpinned, but still wanting slots: the slot is back in the rotation.
            pin.store(super::PIN_WANT_SLOTS, Ordering::SeqCst);
            for i in 0..l.slots {
                ch.publish_raw(Tag::BYTES, format!("after {i}").as_bytes())
                    .unwrap();
                let (_, s) = split_latest(r.word(super::H_LATEST).load(Ordering::SeqCst));
                used |= 1 << s;
            }
            assert_ne!(used & 1 << slot, 0, "the released slot is used again");
        }
    }

    /// A read whose fast path lost its slot copy (`Miss::SlotFailed`) goes on pinned at once and
    /// counts that copy among its retries, as the general read does with a lost first attempt of
    /// its own; without `lost` the first attempt is the optimistic one, and asks for no pin.
    #[test]
    fn a_read_that_lost_its_fast_slot_copy_pins_at_once_and_counts_it() {
        use super::{split_latest, Ordering, Timeouts, H_LATEST, PIN_SLOT};
        use crate::{Options, Tag};
        use std::cell::Cell;
        let ch = Options::new().capacity(4096).anonymous().unwrap();
        let snap = ch.snapshot();
        ch.publish_raw(Tag::BYTES, &[5; 4096]).unwrap();
        let slot = split_latest(snap.region.word(H_LATEST).load(Ordering::SeqCst)).1;
        assert!(slot < snap.layout.slots);
        let e = snap.claim_pin(7).unwrap();
        let pin = snap.region.word(snap.layout.pin(e, PIN_SLOT));
        let asked = Cell::new(false);
        let mut buf = Vec::new();
        for lost in [false, true] {
            let (meta, _) = snap
                .read(
                    || {
                        asked.set(true);
                        Some(e)
                    },
                    false,
                    true,
                    lost,
                    &mut buf,
                    &Timeouts::default(),
                )
                .unwrap();
            assert_eq!(buf, [5; 4096]);
            let pinned = pin.load(Ordering::SeqCst);
            if lost {
                assert_eq!(
                    (meta.retries, asked.get(), pinned),
                    (1, true, slot as u64 + 1)
                );
            } else {
                assert_eq!((meta.retries, asked.get(), pinned), (0, false, 0));
            }
        }
    }

    /// Small values go into the header only while every pin entry is 0; a pinned reader that
    /// finds such a value asks for slots, the next publish then uses one, and a reader that takes
    /// its pin off gives the writers their header-only publishes back.
    #[test]
    fn a_reader_that_wants_slots_gets_them_and_gives_them_back() {
        use super::{
            split_latest, Ordering, Timeouts, H_LATEST, NO_SLOT, PIN_SLOT, PIN_WANT_SLOTS,
        };
        use crate::layout::INLINE_CAPACITY;
        use crate::{Options, Tag};
        let ch = Options::new().capacity(200).anonymous().unwrap();
        let snap = ch.snapshot();
        let slot_of_latest = || split_latest(snap.region.word(H_LATEST).load(Ordering::SeqCst)).1;
        ch.publish_raw(Tag::BYTES, &[1; INLINE_CAPACITY]).unwrap();
        assert_eq!(slot_of_latest(), NO_SLOT);
        // Larger than the inline buffers, or streamed: always a slot.
        ch.publish_raw(Tag::BYTES, &[1; INLINE_CAPACITY + 1])
            .unwrap();
        assert!(slot_of_latest() < snap.layout.slots);
        ch.publish_with(Tag::BYTES, |w| w.put(b"streamed")).unwrap();
        assert!(slot_of_latest() < snap.layout.slots);
        ch.publish_raw(Tag::BYTES, b"two").unwrap();
        assert_eq!(slot_of_latest(), NO_SLOT);
        // A pinned read (as after an overtaken one) of a header-only value.
        let e = snap.claim_pin(7).unwrap();
        let pin = snap.region.word(snap.layout.pin(e, PIN_SLOT));
        let mut buf = Vec::new();
        let (meta, _) = snap
            .read(
                || Some(e),
                true,
                true,
                false,
                &mut buf,
                &Timeouts::default(),
            )
            .unwrap();
        assert_eq!((meta.generation, &buf[..]), (4, &b"two"[..]));
        assert_eq!(pin.load(Ordering::SeqCst), PIN_WANT_SLOTS);
        ch.publish_raw(Tag::BYTES, b"three").unwrap();
        let slot = slot_of_latest();
        assert!(slot < snap.layout.slots, "a reader wants slots");
        // Its next pinned read pins that slot, and the writer keeps to slots.
        snap.read(
            || Some(e),
            true,
            false,
            false,
            &mut buf,
            &Timeouts::default(),
        )
        .unwrap();
        assert_eq!(
            (&buf[..], pin.load(Ordering::SeqCst)),
            (&b"three"[..], slot as u64 + 1)
        );
        ch.publish_raw(Tag::BYTES, b"four").unwrap();
        assert!(slot_of_latest() < snap.layout.slots);
        snap.unpin(e);
        ch.publish_raw(Tag::BYTES, b"five").unwrap();
        assert_eq!(slot_of_latest(), NO_SLOT);
        assert_eq!(ch.read_raw().unwrap().1, b"five");
    }

    /// `choose_slot`'s shortcut for an empty pin table picks what the bit arithmetic picks.
    #[test]
    #[cfg_attr(
        miri,
        ignore = "exhaustive arithmetic without unsafe code, for minutes under Miri"
    )]
    fn the_rotation_shortcut_agrees_with_choose_slot_when_nothing_is_pinned() {
        for slots in 2..=64usize {
            for rotation in 2..=slots {
                for cur in 0..slots {
                    assert_eq!(
                        choose_slot(slots, rotation, cur, 0),
                        choose_slot_by_mask(slots, rotation, cur, 0),
                        "{slots} slots, rotation {rotation}, current {cur}"
                    );
                }
            }
        }
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "exhaustive arithmetic without unsafe code, for minutes under Miri"
    )]
    fn the_chosen_slot_is_never_current_or_pinned_and_exists_when_one_is_free() {
        for slots in 2..=8usize {
            for rotation in 2..=slots {
                for cur in 0..slots + 2 {
                    for pinned in 0..1u64 << slots {
                        let busy = pinned | if cur < slots { 1 << cur } else { 0 };
                        let got = choose_slot(slots, rotation, cur, pinned);
                        match got {
                            Some(s) => {
                                assert!(s < slots && s != cur && pinned & (1 << s) == 0);
                            }
                            None => assert_eq!(busy.count_ones() as usize, slots),
                        }
                    }
                }
            }
        }
        let full = choose_slot(64, 64, 3, !(1 << 3));
        assert_eq!(full, None, "64 slots, all busy");
        assert_eq!(
            choose_slot(64, 64, 63, 0),
            Some(0),
            "wraps from the last of 64"
        );
    }

    #[test]
    fn a_length_that_does_not_fit_32_bits_gives_a_descriptor_no_reader_accepts() {
        use super::{descriptor_meta, Tag};
        assert_eq!(descriptor_meta(10, Tag(2)), 0x2_0000_000A);
        assert_eq!(descriptor_meta(u32::MAX as usize, Tag(7)), 0x7_FFFF_FFFF);
        // 2^32 + 10 bytes must not read back as 10 bytes with tag 3.
        let m = descriptor_meta((1 << 32) + 10, Tag(2));
        assert_eq!(m, u64::MAX);
        assert!(m >> 32 > u64::from(u16::MAX));
    }

    #[test]
    fn writers_rotate_through_the_lowest_unpinned_slots() {
        let run = |slots, rotation, pinned, n| {
            let mut cur = 0;
            (0..n)
                .map(|_| {
                    cur = choose_slot(slots, rotation, cur, pinned).unwrap();
                    cur
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(6, 6, 0, 7), [1, 2, 3, 4, 5, 0, 1]);
        assert_eq!(run(6, 2, 0, 4), [1, 0, 1, 0]);
        assert_eq!(run(6, 3, 0, 4), [1, 2, 0, 1]);
        // Slot 1 pinned: the rotation of three is 0, 2, 3.
        assert_eq!(run(6, 3, 0b10, 4), [2, 3, 0, 2]);
    }
}
