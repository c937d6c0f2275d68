//! Model checks of the publish/read protocol with loom: every interleaving (up to loom's
//! preemption bound) of a writer and a reader on a tiny channel, asserting that no read ever
//! returns a torn value. Run with
//! `RUSTFLAGS="--cfg mmf_loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p mmf-core --release --lib loom`.

use loom::sync::Arc;
use loom::thread;

use crate::frame::Tag;
use crate::snapshot::{Snapshot, Timeouts};
use crate::testing::{check, checked_read, publish, snapshot, Read};

const WRITER: u64 = 1;
const READER: u64 = 2;
/// Two words, so a torn copy (one word old, one new) is observable. Small enough to be stored
/// inline as well, so reads go through the inline copy first.
const LEN: usize = 16;
/// One word more than a writer keeps inline under loom (`LEN`, see `layout::INLINE_MAX`): a
/// value that lives in its slot only, which the fast read copies from there
/// (`Snapshot::read_inline`).
const SLOT_LEN: usize = LEN + 8;

fn channel(readers: usize) -> Arc<Snapshot> {
    channel_with(readers, false, LEN)
}

/// With `checksum`, the inline area is unused and every read copies a slot. Every value the
/// models publish is `len` bytes, the channel's capacity.
fn channel_with(readers: usize, checksum: bool, len: usize) -> Arc<Snapshot> {
    channel_on(true, readers, checksum, len)
}

/// [`snapshot`] in an `Arc` of loom's.
fn channel_on(header_only: bool, readers: usize, checksum: bool, len: usize) -> Arc<Snapshot> {
    Arc::new(snapshot(header_only, readers, checksum, len, "loom"))
}

/// The model most tests share: a writer publishes generations 1 and 2 while this thread reads
/// `reads` times (pinned if `pinned`, on the fast path first where `reads` says so).
fn two_publishes_against(readers: usize, checksum: bool, pinned: bool, reads: &'static [Read]) {
    publishes_against(true, LEN, 0, readers, checksum, pinned, reads);
}

/// The same after `before` values were published (generations `1..=before`): the writer then
/// publishes the next two. With `before` 1 the value being read is no longer the empty
/// generation 0, so a copy mixing it with its slot's rewrite can show. The channel is made by
/// [`channel_on`] with `header_only`.
fn publishes_against(
    header_only: bool,
    len: usize,
    before: u64,
    readers: usize,
    checksum: bool,
    pinned: bool,
    reads: &'static [Read],
) {
    loom::model(move || {
        let s = channel_on(header_only, readers, checksum, len);
        for g in 1..=before {
            publish(&s, WRITER, g);
        }
        let w = s.clone();
        let t = thread::spawn(move || {
            publish(&w, WRITER, before + 1);
            publish(&w, WRITER, before + 2);
        });
        let pin = if pinned { s.claim_pin(READER) } else { None };
        assert_eq!(pin.is_some(), pinned);
        for &how in reads {
            check(&s, pin, how);
        }
        t.join().unwrap();
    });
}

#[test]
fn loom_pinned_reader_sees_whole_values() {
    // Two reads, the fast path's and the general loop's.
    two_publishes_against(1, false, true, &[Read::Fast, Read::General]);
}

#[test]
fn loom_unpinned_reader_sees_whole_values() {
    // No pin entries: two slots, so the second publish rewrites the slot of generation 0 while
    // the reader may be copying it; validation alone must reject the mix. Both read paths.
    two_publishes_against(0, false, false, &[Read::Fast]);
    two_publishes_against(0, false, false, &[Read::General]);
}

#[test]
fn loom_slot_copies_validated_by_latest_see_whole_values() {
    // Straight to the slot on a channel without checksums: the copy is validated by `latest`,
    // and by the frame once `latest` has moved on. Unpinned (two slots, the second publish
    // rewrites the one being copied) and pinned.
    two_publishes_against(0, false, false, &[Read::Slot]);
    two_publishes_against(1, false, true, &[Read::Slot]);
    // Generation 1 in slot 1 while the publish of 3 rewrites that slot: the frame still states
    // generation 1 until the rewrite ends, so only the odd stamp rejects a mixed copy.
    publishes_against(true, LEN, 1, 0, false, false, &[Read::Slot]);
}

#[test]
fn loom_fast_reads_of_slot_values_see_whole_values() {
    // A value too large to be inline: the fast read goes on from the descriptor to the slot,
    // a copy validated by `latest` (by the frame once `latest` has moved on), and hands a
    // failed copy to the general read. Unpinned, two slots: the second publish rewrites the
    // slot being copied, the one of generation 0 or (after one publish before) of generation 1.
    publishes_against(true, SLOT_LEN, 0, 0, false, false, &[Read::Fast]);
    publishes_against(true, SLOT_LEN, 1, 0, false, false, &[Read::Fast]);
    // Pinned: a failed fast copy is the read's first attempt lost (`Miss::SlotFailed`), and the
    // general read goes on with the pinned one, which the writer's next publish must avoid.
    publishes_against(true, SLOT_LEN, 1, 1, false, true, &[Read::Fast]);
}

#[test]
fn loom_inline_copies_kept_by_the_stamp_see_whole_values() {
    // The value being read is generation 1 (then 2), in inline buffer 1 (then 0), and the
    // writer's second publish rewrites that buffer, through every route into it: a slice's,
    // into the header alone (with `header_only`, since nobody pins) or into the slot and the
    // buffer together, word by word (without), and the closure's (the buffer copied from the
    // slot at the end). A reader whose copy `latest` no longer vouches for (the writer's first
    // publish moved it) keeps it if the buffer's stamp still names its generation
    // (`Snapshot::copy_inline`); this checks that no such copy is torn. Unpinned, two slots.
    for header_only in [true, false] {
        publishes_against(header_only, LEN, 1, 0, false, false, &[Read::Fast]);
        publishes_against(header_only, LEN, 2, 0, false, false, &[Read::Fast]);
    }
}

#[test]
fn loom_slot_reads_see_whole_values() {
    // The same two readers on a checksummed channel, whose values are never inline: the slot
    // protocol alone, pinned and unpinned.
    two_publishes_against(1, true, true, &[Read::Fast]);
    two_publishes_against(0, true, false, &[Read::Fast]);
}

#[test]
fn loom_a_stray_generation_0_latest_reads_as_no_value_yet_or_a_whole_value() {
    // A stray write that left `latest` at generation 0 naming no slot, on a channel nothing was
    // published to yet: while the writers' count is 0 that is "no value yet" (FORMAT.md §10.5,
    // `Snapshot::at_generation_0`, the read loop's step before any attempt), and a first
    // publish racing the read makes it a whole value of the generation read, never damage nor
    // a torn value (stop 56's diff review found no model of that path). Pinned (the reader
    // asks for slots) and not, both read paths; and on a channel with checksums, whose header
    // holds no value at all, so that only the rule can answer.
    use crate::layout::{pack_latest, H_LATEST, NO_SLOT};
    use crate::sync::Ordering;
    for (checksum, pinned, how) in [
        (false, false, Read::General),
        (false, false, Read::Fast),
        (false, true, Read::General),
        (true, false, Read::General),
        (true, true, Read::General),
    ] {
        loom::model(move || {
            let s = channel_with(1, checksum, LEN);
            s.region
                .word(H_LATEST)
                .store(pack_latest(0, NO_SLOT), Ordering::Relaxed);
            let w = s.clone();
            let t = thread::spawn(move || {
                publish_bytes(&w, 1);
                publish_bytes(&w, 2);
            });
            let pin = if pinned { s.claim_pin(READER) } else { None };
            check(&s, pin, how);
            t.join().unwrap();
        });
    }
}

#[test]
fn loom_a_stray_generation_0_latest_over_published_values_is_damage_or_a_whole_value() {
    // After values were published, a stray write stores a generation-0 `latest` (slot 0) right
    // after the writer's next publish, while a reader reads a value kept in slots: every read
    // returns a whole value that was published, or reports that damage, never a torn value
    // nor generation 0's empty one (values were published). Pinned (whose re-aim after the pin
    // may meet the stray `latest`: `Snapshot::pin_latest`) and not; the fast path, and the
    // general read straight to the slot. (It passes with that re-aim allowed to aim at
    // generation 0 too: the frame-first copy then finds the same damage. The model checks the
    // outcomes, not which path reached them.)
    use crate::layout::{pack_latest, H_LATEST};
    use crate::sync::Ordering;
    for (pinned, how) in [(true, Read::Slot), (true, Read::Fast), (false, Read::Fast)] {
        loom::model(move || {
            let s = channel_on(true, 1, false, SLOT_LEN);
            publish(&s, WRITER, 1);
            let w = s.clone();
            let t = thread::spawn(move || {
                publish(&w, WRITER, 2);
                w.region
                    .word(H_LATEST)
                    .store(pack_latest(0, 0), Ordering::Relaxed);
            });
            let pin = if pinned { s.claim_pin(READER) } else { None };
            match checked_read(&s, pin, how) {
                Ok(generation) => assert!(generation == 1 || generation == 2, "{generation}"),
                Err(crate::Error::Corrupt { what, .. }) => {
                    assert!(what.contains("latest names generation 0"), "{what}")
                }
                Err(e) => panic!("{e}"),
            }
            t.join().unwrap();
        });
    }
}

#[test]
fn loom_header_only_values_and_a_reader_that_wants_slots() {
    // Small values given as slices, published while nobody pins, live in the header only; a
    // pinned reader that finds one asks for slots, and the writer may switch to slots between
    // its two publishes. Both read paths, pinned and unpinned.
    for (pinned, reads) in [
        (true, &[Read::General, Read::General][..]),
        (true, &[Read::Fast, Read::Slot][..]),
        (false, &[Read::General][..]),
    ] {
        loom::model(move || {
            let s = channel(1);
            publish_bytes(&s, 1);
            let w = s.clone();
            let t = thread::spawn(move || {
                publish_bytes(&w, 2);
                publish_bytes(&w, 3);
            });
            let pin = if pinned { s.claim_pin(READER) } else { None };
            for &how in reads {
                check(&s, pin, how);
            }
            t.join().unwrap();
        });
    }
}

#[test]
fn loom_recovery_candidates_from_the_header_are_whole() {
    // `Channel::recover` looks for the newest whole value (`newest_whole_before`) without the
    // writer lock, copying the inline buffers while a writer may be rewriting them:
    // generations 1 and 2 are in the header only, and the writer publishes 3 and 4 (4 rewrites
    // buffer 0, 2's) while this thread looks. Whatever it returns must be whole, and published:
    // of a generation up to `latest`'s or the writers' count (`written`, which it reads too,
    // for a `latest` a stray write moved back) as loaded after it returned.
    use crate::layout::H_LATEST;
    use crate::sync::Ordering;
    loom::model(|| {
        let s = channel(0);
        publish_bytes(&s, 1);
        publish_bytes(&s, 2);
        let w = s.clone();
        let t = thread::spawn(move || {
            publish_bytes(&w, 3);
            publish_bytes(&w, 4);
        });
        let latest = s.region.word(H_LATEST).load(Ordering::Acquire);
        if let Some((g, _, bytes)) = s.newest_whole_before(latest).unwrap() {
            let written = s.written_generation();
            assert!(
                g <= (latest >> 8).max(written),
                "{g} beyond {latest:#x} and the count {written}"
            );
            assert!(
                bytes.iter().all(|&b| u64::from(b) == g),
                "torn: {bytes:?} as {g}"
            );
        }
        t.join().unwrap();
    });
}

/// Value `g` as a slice: in the header only unless a reader pins or wants slots.
fn publish_bytes(s: &Snapshot, g: u8) {
    // The path `Channel::publish_raw` takes.
    s.publish_bytes::<true>(WRITER, Tag::BYTES, &Timeouts::default(), &[g; LEN])
        .unwrap();
}

#[test]
fn loom_two_writers_exclude_each_other() {
    loom::model(|| {
        let s = channel(1);
        let a = s.clone();
        let b = s.clone();
        // Same token, as two threads of one process: they must still exclude each other.
        let ta = thread::spawn(move || publish(&a, WRITER, 1));
        let tb = thread::spawn(move || publish(&b, WRITER, 1));
        ta.join().unwrap();
        tb.join().unwrap();
        assert_eq!(s.generation(), 2);
        let mut buf = Vec::new();
        let (meta, _) = s
            .read(|| None, false, true, false, &mut buf, &Timeouts::default())
            .unwrap();
        assert_eq!((meta.generation, buf), (2, vec![1; LEN]));
    });
}

/// A writer that died holding the lock after it had stored `latest` for its value but before it
/// stored `written` (FORMAT.md §11 steps 7 and 7a): the next writer judges it dead, takes the
/// lock over, and must start from `latest`, not from the stale `written`. Were it to trust
/// `written`, it would rewrite the copies `latest` names while the reader copies them, and the
/// reader (validating by `latest`) would accept the mix. The owner is a token of pid 0, which
/// every handle judges dead at once.
#[test]
fn loom_a_recovered_writer_starts_from_latest_not_written() {
    use crate::layout::{H_LOCK, H_WRITTEN};
    use crate::sync::Ordering;
    const DEAD: u64 = 5 << 22; // pid 0, namespace tag 5
    for (pinned, reads) in [
        (true, &[Read::Fast][..]),
        (false, &[Read::General][..]),
        (true, &[Read::Slot][..]),
    ] {
        loom::model(move || {
            let s = channel(1);
            publish(&s, WRITER, 1);
            let written_after_1 = s.region.word(H_WRITTEN).load(Ordering::Relaxed);
            publish(&s, WRITER, 2);
            // ... and so it died: `written` still says generation 1, the lock is the dead one's.
            s.region
                .word(H_WRITTEN)
                .store(written_after_1, Ordering::Relaxed);
            s.region.word(H_LOCK).store(DEAD, Ordering::Relaxed);
            let w = s.clone();
            let t = thread::spawn(move || publish(&w, WRITER, 3));
            let pin = if pinned { s.claim_pin(READER) } else { None };
            for &how in reads {
                check(&s, pin, how);
            }
            t.join().unwrap();
            assert_eq!(
                s.generation(),
                3,
                "the recovered publish follows generation 2"
            );
        });
    }
}

/// A `latest` that a stray write set back to an older value that still reads whole, under a
/// dead writer's lock, with `written` at the newer one (FORMAT.md §11 step 2). The takeover goes
/// on past `written`'s generation, but keeps off what `latest` names, its slot and the inline
/// buffer of its generation's parity, which the reader copies meanwhile: a first version went
/// on from `written` as it was and rewrote them, and a review's reader accepted a torn value.
/// (`lowered` is the generation `latest` is set back to, the one before the last of
/// `published`, whose copies are still whole; the takeover's value is `next`, the generation it
/// must get: `written`'s, raised to `latest`'s parity, plus one.)
#[test]
fn loom_a_takeover_over_a_lowered_latest_keeps_off_what_it_names() {
    use crate::layout::{H_LATEST, H_LOCK};
    use crate::sync::Ordering;
    const DEAD: u64 = 5 << 22; // pid 0, namespace tag 5
    for (published, lowered, next, pinned, reads) in [
        (2, 1, 4, true, &[Read::Fast][..]),
        (2, 1, 4, false, &[Read::General][..]),
        (3, 2, 5, true, &[Read::Slot][..]),
        (3, 2, 5, false, &[Read::Fast][..]),
    ] {
        loom::model(move || {
            let s = channel(1);
            let mut kept = 0;
            for g in 1..=published {
                publish(&s, WRITER, g);
                if g == lowered {
                    kept = s.region.word(H_LATEST).load(Ordering::Relaxed);
                }
            }
            s.region.word(H_LATEST).store(kept, Ordering::Relaxed);
            s.region.word(H_LOCK).store(DEAD, Ordering::Relaxed);
            let w = s.clone();
            let t = thread::spawn(move || publish(&w, WRITER, next));
            let pin = if pinned { s.claim_pin(READER) } else { None };
            for &how in reads {
                check(&s, pin, how);
            }
            t.join().unwrap();
            assert_eq!(s.generation(), u64::from(next), "past the writers' count");
        });
    }
}
