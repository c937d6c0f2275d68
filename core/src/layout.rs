//! The byte layout of a snapshot channel: header words, reader-pin entries and slots.
//!
//! `docs/FORMAT.md` is the prose twin of this file; the two must change together (the test at the
//! bottom pins the numbers that document states). Every field is a little-endian `u64` at an
//! 8-byte-aligned offset, accessed atomically; groups that different processes write are kept
//! on separate 64-byte cache lines.

use crate::error::{Error, Result};
use crate::region::WORD;

/// First 8 bytes of every mmf channel: `b"MMFCHAN\0"`.
pub const MAGIC: u64 = u64::from_le_bytes(*b"MMFCHAN\0");
/// Layout version this build reads and writes.
pub const VERSION: u64 = 7;
/// `kind` of a latest-value (snapshot) channel. A future ring/stream channel gets its own kind
/// behind the same first 128 bytes.
pub const KIND_SNAPSHOT: u64 = 1;
/// Header flag: every frame carries a CRC-32 of its payload.
pub const FLAG_CHECKSUM: u64 = 1;
/// Largest number of pinned readers (so slots fit a 64-bit mask).
pub const MAX_READERS: usize = 62;
/// Largest capacity of one value (1 TiB), far above any sane channel, low enough that no size
/// computation can overflow.
pub const MAX_CAPACITY: usize = 1 << 40;
/// The bytes of slots a writer rotates through, at most, for slots of up to this size (see
/// `Layout::rotation`): a quarter of a 32 KiB L1 data cache. A 4 KiB value's slot covers each of
/// the 64 sets of such a cache (8 ways) once; a process that writes one channel and reads another
/// (a request and its reply) while copying from and to buffers of its own keeps
/// `2 * rotation + 2` lines in every set: 6 of the 8 ways with two slots, all 8 with three (none
/// left for the stack, the header lines or the caller's data), 14 with six.
/// Measured on AMD Zen 4 (round trips between two processes, mmf / F per round, 9 interleaved
/// runs, twice): 4 KiB 1.78-1.79x with six slots, 1.17-1.33x with two; 3 KiB 1.75-1.79x against
/// 1.29-1.34x; no change at 16 KiB and 64 KiB, whose slots miss the L1 anyway.
pub(crate) const ROTATION_L1_BYTES: usize = 8 * 1024;
/// The same budget for larger slots, which do not fit an L1 however few they are: about half of
/// a typical L2 cache, so that a 1 MiB channel does not spread its writes over megabytes. Wider
/// than the L1 budget because a rotation of two leaves a reader that cannot pin (a read-only
/// mapping) a window of one publish: under a back-to-back 64 KiB writer such readers retried
/// 0.34 times per snapshot with two slots and not once in three runs with this budget's three.
pub(crate) const ROTATION_L2_BYTES: usize = 256 * 1024;
/// Cache line size used for padding.
pub const LINE: usize = 64;
pub(crate) const LINE_WORDS: usize = LINE / WORD;

// Line 0: identity and geometry, written once by the creator (magic last).
pub(crate) const H_MAGIC: usize = 0;
pub(crate) const H_VERSION: usize = 1;
pub(crate) const H_HEADER_SIZE: usize = 2;
pub(crate) const H_CAPACITY: usize = 3;
pub(crate) const H_SLOT_COUNT: usize = 4;
pub(crate) const H_SLOT_STRIDE: usize = 5;
pub(crate) const H_READERS: usize = 6;
pub(crate) const H_TOTAL_SIZE: usize = 7;
// Line 1: more identity, written once by the creator; `retired`, at most once more by a
// process that removes the channel's name or replaces it.
pub(crate) const H_INCARNATION: usize = 8;
pub(crate) const H_CREATED_NS: usize = 9;
pub(crate) const H_CREATOR: usize = 10;
pub(crate) const H_FLAGS: usize = 11;
pub(crate) const H_KIND: usize = 12;
/// Set (to the pid of the process that did it, never 0) by an mmf process that removed the
/// channel's name or renamed another channel over it, right after, followed by a wake of every
/// sleeper on `latest`: a follower of the name looks at it at once instead of at its next look.
/// A hint only: written at most once after creation, and read only by followers' waits.
pub(crate) const H_RETIRED: usize = 13;
// Line 2: `latest`, the word readers poll, and the inline buffers' descriptors; nothing else. A
// writer stores to it only at the end of a publish (the descriptor, then `latest`) and never loads
// from it, so a reader spinning on it takes the line from the writer once per publish.
pub(crate) const H_LATEST: usize = 16;
/// Inline buffer `b`'s descriptor: the generation whose value it holds (word
/// `H_INLINE_GEN + 2 * b`) and that value's length (bits 0-31) and tag (bits 32-47) (the word
/// after it).
pub(crate) const H_INLINE_GEN: usize = 17;
/// Lines 3-4 and 5-6: inline buffers 0 and 1, two lines each: [`INLINE_CAPACITY`] bytes of
/// value from the first line's start, then the buffer's stamp (the last word of the second line,
/// `Layout::inline_stamp`). Generation `g` goes to buffer `g % 2` when it is small enough.
pub(crate) const H_INLINE_DATA: usize = 24;
/// Values of up to this many bytes (two cache lines less the inline buffer's stamp) are also
/// stored in the header, so that a reader that has seen `latest` change finds the value in one
/// or two more lines instead of a frame line and payload. A value of up to 64 bytes fills the
/// buffer's first line alone: a reader whose copy `latest` still vouches for (the common case,
/// `Snapshot::copy_inline`) does not wait for the second line, the stamp's, which it only
/// hints to the CPU for the case where `latest` has moved.
pub const INLINE_CAPACITY: usize = 2 * LINE - WORD;
/// The largest value a writer stores inline: [`INLINE_CAPACITY`], but two words under loom, so
/// that the model checks also cover values kept in their slot only (`loom_tests`) with values of
/// three words instead of sixteen, whose copies multiply the interleavings past what a run
/// can explore (one such model with 17-word values took 8 minutes with a single preemption).
#[cfg(not(mmf_loom))]
const INLINE_MAX: usize = INLINE_CAPACITY;
#[cfg(mmf_loom)]
const INLINE_MAX: usize = 2 * WORD;
// Line 7: the writers' line: exclusion, and what only writers (and rare waiters) touch.
pub(crate) const H_LOCK: usize = 56;
pub(crate) const H_RECOVERIES: usize = 57;
/// The writers' own copy of `latest`, stored right after it under the lock: the next writer reads
/// this instead of `latest`, whose line is in the readers' caches.
pub(crate) const H_WRITTEN: usize = 58;
pub(crate) const H_LAST_WRITER: usize = 59;
/// Number of handles blocked in `wait_for_change`; a writer issues a futex wake only when it is
/// not zero.
pub(crate) const H_WAITERS: usize = 60;
/// The exclusive writer's token (`Options::exclusive_writer`), 0 if none: stored and cleared
/// under the writer lock (but for its holder's own release, and `free_orphans` while no handle
/// is open), and loaded by every publish once it holds the lock, from the line it has just
/// taken.
pub(crate) const H_WRITER_CLAIM: usize = 61;
/// First word of the reader-pin table: one cache line per entry, `owner` then `pinned`.
pub(crate) const H_PINS: usize = 64;
/// Words per reader-pin entry (one cache line).
pub(crate) const PIN_WORDS: usize = LINE_WORDS;
pub(crate) const PIN_OWNER: usize = 0;
pub(crate) const PIN_SLOT: usize = 1;
/// How many of the entry owner's threads are counted in `H_WAITERS` (so that the count can be
/// repaired when the owner dies while waiting).
pub(crate) const PIN_WAITING: usize = 2;

// Frame header: the first line of every slot.
pub(crate) const F_SEQ: usize = 0;
pub(crate) const F_GEN: usize = 1;
pub(crate) const F_LEN: usize = 2;
pub(crate) const F_TAG: usize = 3;
pub(crate) const F_CRC: usize = 4;
/// Bit set in the CRC word when it holds a checksum (CRC-32 in the low 32 bits).
pub(crate) const CRC_PRESENT: u64 = 1 << 32;
/// Payload starts one line into the slot.
pub(crate) const F_PAYLOAD: usize = LINE_WORDS;

/// `latest` packs the generation (high 56 bits) and the slot holding it (low 8 bits).
pub(crate) const SLOT_BITS: u32 = 8;

/// The slot field of a `latest` whose value is in the header only (inline buffer `g % 2`), in
/// no slot: what a writer publishes for a small value while no reader pins (see
/// `Snapshot::store_header_only`). Never a slot index: there are at most 64 slots.
pub(crate) const NO_SLOT: usize = 0xff;

/// A pin entry's `pinned` word that pins no slot but asks writers to keep every value in a slot
/// (no [`NO_SLOT`] publishes) while it is set: what a reader stores when it must read from a
/// slot and `latest` names none.
pub(crate) const PIN_WANT_SLOTS: u64 = u64::MAX;

/// Splits a `latest` word into (generation, slot).
pub(crate) fn split_latest(latest: u64) -> (u64, usize) {
    (
        latest >> SLOT_BITS,
        (latest & ((1 << SLOT_BITS) - 1)) as usize,
    )
}

/// Packs a generation and a slot into a `latest` word.
pub(crate) fn pack_latest(generation: u64, slot: usize) -> u64 {
    (generation << SLOT_BITS) | slot as u64
}

/// Geometry of one channel, computed from its options or validated from its header. Every index
/// the protocol uses is derived from a `Layout`, never read from shared memory directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub capacity: usize,
    pub readers: usize,
    pub slots: usize,
    pub header_bytes: usize,
    pub stride_bytes: usize,
    pub total_bytes: usize,
    /// How many slots a writer rotates through (the lowest ones not pinned): as many as fit in
    /// [`ROTATION_L1_BYTES`] (slots of up to that size) or [`ROTATION_L2_BYTES`] (larger ones),
    /// at least 2, at most all. Correctness needs only that a writer never
    /// picks `latest` or a pinned slot; this is a policy, trading an unpinned copy's window (it is
    /// rewritten after `rotation - 1` publishes) against the cache footprint of the writes. With
    /// the default four pins (6 slots), by capacity: all slots up to 1280 B, then fewer, two from
    /// 2625 B to 8128 B (the default capacity, 4 KiB, among them); all again from 8129 B to
    /// 43584 B, then fewer, and two from 87297 B on (docs/FORMAT.md §11 step 2).
    pub rotation: usize,
}

/// How many slots a writer rotates through (see [`Layout::rotation`]).
fn rotation(stride_bytes: usize, slots: usize) -> usize {
    let budget = if stride_bytes <= ROTATION_L1_BYTES {
        ROTATION_L1_BYTES
    } else {
        ROTATION_L2_BYTES
    };
    (budget / stride_bytes).clamp(2, slots)
}

fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

impl Layout {
    /// The layout for a new channel.
    pub(crate) fn new(capacity: usize, readers: usize) -> Result<Layout> {
        if capacity == 0 || capacity > MAX_CAPACITY {
            return Err(Error::InvalidOptions(format!(
                "capacity must be 1 byte to {MAX_CAPACITY} bytes, not {capacity}"
            )));
        }
        if readers > MAX_READERS {
            return Err(Error::InvalidOptions(format!(
                "at most {MAX_READERS} pinned readers, not {readers}"
            )));
        }
        let slots = readers + 2;
        let header_bytes = (H_PINS + readers * PIN_WORDS) * WORD;
        let stride_bytes = LINE + round_up(capacity, LINE);
        let total_bytes = header_bytes + slots * stride_bytes;
        Ok(Layout {
            capacity,
            readers,
            slots,
            header_bytes,
            stride_bytes,
            total_bytes,
            rotation: rotation(stride_bytes, slots),
        })
    }

    /// Rebuilds the layout from header fields and checks that each one agrees with the others
    /// and with the size of the file (`None` for anonymous memory).
    pub(crate) fn from_header(h: &HeaderFields, file_len: Option<u64>) -> Result<Layout, String> {
        let capacity = usize::try_from(h.capacity).map_err(|_| "capacity overflows")?;
        let readers = usize::try_from(h.readers).map_err(|_| "reader count overflows")?;
        let l = Layout::new(capacity, readers).map_err(|e| format!("header: {e}"))?;
        let check = |what: &str, found: u64, want: usize| {
            if found == want as u64 {
                Ok(())
            } else {
                Err(format!("{what} is {found}, expected {want}"))
            }
        };
        check("header size", h.header_size, l.header_bytes)?;
        check("slot count", h.slot_count, l.slots)?;
        check("slot stride", h.slot_stride, l.stride_bytes)?;
        check("total size", h.total_size, l.total_bytes)?;
        if let Some(len) = file_len {
            if len != l.total_bytes as u64 {
                let total = l.total_bytes;
                return Err(if len > total as u64 {
                    format!(
                        "file is {len} bytes but the header describes {total} bytes: it was \
                         grown, and if nothing else changed, `truncate -s {total}` on it gives \
                         back the channel and its value"
                    )
                } else {
                    format!(
                        "file is {len} bytes but the header describes {total} bytes: it was \
                         truncated, and the values past its end are lost"
                    )
                });
            }
        }
        Ok(l)
    }

    /// Largest value a writer also stores inline in the header (0 on checksummed channels, whose
    /// inline area is unused: it has no room for the checksum).
    #[inline]
    pub(crate) fn inline_max(&self, checksum: bool) -> usize {
        if checksum {
            0
        } else {
            INLINE_MAX.min(self.capacity)
        }
    }

    /// Word index of inline buffer `b`'s descriptor (generation; the length and tag follow).
    pub(crate) fn inline_desc(b: usize) -> usize {
        H_INLINE_GEN + 2 * b
    }

    /// Word index of inline buffer `b`'s first data word.
    pub(crate) fn inline_data(b: usize) -> usize {
        H_INLINE_DATA + b * 2 * LINE_WORDS
    }

    /// Word index of inline buffer `b`'s stamp: the generation of the publish that last began
    /// writing into buffer or descriptor `b` (`Snapshot::stamp_inline`), right after its data.
    pub(crate) fn inline_stamp(b: usize) -> usize {
        Self::inline_data(b) + INLINE_CAPACITY / WORD
    }

    /// Word index of reader entry `e`'s field.
    pub(crate) fn pin(&self, e: usize, field: usize) -> usize {
        debug_assert!(e < self.readers);
        H_PINS + e * PIN_WORDS + field
    }

    /// The whole pin table as (first word, number of words): `readers` entries of [`PIN_WORDS`]
    /// words, for a writer's scan of every entry.
    pub(crate) fn pin_table(&self) -> (usize, usize) {
        (H_PINS, self.readers * PIN_WORDS)
    }

    /// Word index of slot `s`'s frame field (or, with `F_PAYLOAD`, its first payload word).
    pub(crate) fn slot(&self, s: usize, field: usize) -> usize {
        debug_assert!(s < self.slots);
        (self.header_bytes + s * self.stride_bytes) / WORD + field
    }
}

/// The geometry fields of a header, as read from (or to be written to) a mapping.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct HeaderFields {
    pub magic: u64,
    pub version: u64,
    pub header_size: u64,
    pub capacity: u64,
    pub slot_count: u64,
    pub slot_stride: u64,
    pub readers: u64,
    pub total_size: u64,
    pub kind: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rotation FORMAT.md §11 states: an L1 budget up to 8 KiB slots, an L2 budget above.
    #[test]
    fn writers_rotate_within_an_l1_budget_for_small_slots_and_an_l2_budget_for_large_ones() {
        let rotation = |capacity, readers| Layout::new(capacity, readers).unwrap().rotation;
        assert_eq!(rotation(64, 4), 6);
        assert_eq!(rotation(1000, 4), 6);
        assert_eq!(rotation(1024, 4), 6);
        assert_eq!(rotation(2048, 4), 3);
        assert_eq!(rotation(4096, 4), 2);
        assert_eq!(rotation(8192 - 64, 4), 2);
        assert_eq!(rotation(8192, 4), 6);
        assert_eq!(rotation(64 * 1024, 4), 3);
        assert_eq!(rotation(1 << 20, 4), 2);
        assert_eq!(rotation(64, 62), 64);
        assert_eq!(rotation(4096, 0), 2);
    }

    /// These numbers are stated in docs/FORMAT.md; change both together.
    #[test]
    // Under loom a writer keeps at most two words inline (`INLINE_MAX`), not FORMAT.md's 120 B.
    #[cfg_attr(mmf_loom, ignore = "loom keeps fewer bytes inline")]
    fn layout_matches_format_md() {
        assert_eq!(&MAGIC.to_le_bytes(), b"MMFCHAN\0");
        let l = Layout::new(1000, 4).unwrap();
        assert_eq!(VERSION, 7);
        assert_eq!(NO_SLOT, 0xff);
        assert_eq!(PIN_WANT_SLOTS, u64::MAX);
        assert_eq!(l.header_bytes, 512 + 4 * 64);
        assert_eq!(l.slots, 6);
        assert_eq!(l.stride_bytes, 64 + 1024);
        assert_eq!(l.total_bytes, 768 + 6 * 1088);
        assert_eq!(l.slot(0, F_SEQ) * 8, 768);
        assert_eq!(l.slot(1, F_PAYLOAD) * 8, 768 + 1088 + 64);
        assert_eq!(l.pin(3, PIN_SLOT) * 8, 512 + 3 * 64 + 8);
        assert_eq!(H_LATEST * 8, 128);
        assert_eq!(Layout::inline_desc(0) * 8, 136);
        assert_eq!(Layout::inline_desc(1) * 8, 152);
        assert_eq!(Layout::inline_data(0) * 8, 192);
        assert_eq!(Layout::inline_data(1) * 8, 320);
        assert_eq!(Layout::inline_stamp(0) * 8, 312);
        assert_eq!(Layout::inline_stamp(1) * 8, 440);
        assert_eq!(INLINE_CAPACITY, 120);
        assert_eq!(H_LOCK * 8, 448);
        assert_eq!(H_WRITTEN * 8, 464);
        assert_eq!(H_LAST_WRITER * 8, 472);
        assert_eq!(H_WAITERS * 8, 480);
        assert_eq!(H_WRITER_CLAIM * 8, 488);
        assert_eq!(H_RETIRED * 8, 104);
        assert_eq!(l.inline_max(false), 120);
        assert_eq!(l.inline_max(true), 0);
        assert_eq!(Layout::new(40, 0).unwrap().inline_max(false), 40);
        assert_eq!(pack_latest(5, 3), (5 << 8) | 3);
        assert_eq!(
            split_latest(pack_latest(u64::MAX >> 8, 255)),
            (u64::MAX >> 8, 255)
        );
    }

    #[test]
    fn bad_geometry_is_refused() {
        assert!(Layout::new(0, 1).is_err());
        assert!(Layout::new(MAX_CAPACITY + 1, 1).is_err());
        assert!(Layout::new(8, MAX_READERS + 1).is_err());
        // The bounds themselves are taken (an off-by-one at either would refuse them).
        assert_eq!(Layout::new(1, 0).unwrap().capacity, 1);
        let big = Layout::new(MAX_CAPACITY, MAX_READERS).unwrap();
        assert_eq!((big.capacity, big.slots), (MAX_CAPACITY, MAX_READERS + 2));
        assert_eq!(
            big.total_bytes,
            big.header_bytes + big.slots * (LINE + MAX_CAPACITY)
        );
        let l = Layout::new(100, 2).unwrap();
        let good = HeaderFields {
            magic: MAGIC,
            version: VERSION,
            header_size: l.header_bytes as u64,
            capacity: 100,
            slot_count: 4,
            slot_stride: l.stride_bytes as u64,
            readers: 2,
            total_size: l.total_bytes as u64,
            kind: KIND_SNAPSHOT,
        };
        assert_eq!(
            Layout::from_header(&good, Some(l.total_bytes as u64)).unwrap(),
            l
        );
        let shorter = Layout::from_header(&good, Some(l.total_bytes as u64 - 64)).unwrap_err();
        assert!(shorter.contains("it was truncated"), "{shorter}");
        let longer = Layout::from_header(&good, Some(l.total_bytes as u64 + 64)).unwrap_err();
        assert!(longer.contains("it was grown"), "{longer}");
        for bad in [
            HeaderFields {
                capacity: u64::MAX,
                ..good
            },
            HeaderFields {
                slot_count: 9,
                ..good
            },
            HeaderFields {
                header_size: 0,
                ..good
            },
            HeaderFields {
                slot_stride: 8,
                ..good
            },
            HeaderFields {
                total_size: 1 << 62,
                ..good
            },
            HeaderFields {
                readers: 1000,
                ..good
            },
        ] {
            assert!(Layout::from_header(&bad, None).is_err(), "{bad:?}");
        }
    }
}
