//! The `open_read` fuzz target's body, shared with the stable tests (`tests/hostile.rs` includes
//! this file), so that it compiles, and its images stay valid, with every change to the format.
//!
//! A channel image is untrusted input: whatever another process wrote into the mapping, opening
//! it, reading it, inspecting it and publishing into it must give `Ok` or a typed error, never a
//! panic, an out-of-bounds access, a hang or a huge allocation.
//!
//! Input format (every read past the end of the input yields zeros):
//!
//! * byte 0, `mode`: if `mode % 8 == 0`, the rest of the input is handed to `open_image` as is
//!   (pure random images: exercises the header checks).
//! * otherwise a *valid* image is built first, so that the fuzzer spends its time behind the
//!   header checks (docs/FORMAT.md §3, §4):
//!   - capacity `1 + byte` (1..=256), readers `byte % 5` (0..=4), a flags byte (bit 0: checksum;
//!     bit 1: capacity `(1 + byte) * 256` instead, 256 B..64 KiB, so that the large-value paths
//!     run: vectored copies of 2 KiB and more, the publish's prefetch, the read's clock; bit 2:
//!     the waits and reads-after of `exercise` get 1 ms instead of none, so that a wait reaches
//!     the futex and the waiter counts of a hostile image),
//!   - the value this handle will publish later (tag, length, bytes),
//!   - up to 3 *well-formed values*: frames (slot, generation, tag, length, payload; correct CRC
//!     when the checksum flag is set) or header-only values (descriptor and inline buffer, slot
//!     0xff); `latest` and `written` name the last one,
//!   - then a list of *edits* until the input runs out: overwrite a header word, `latest`, the
//!     lock, `written` or the waiter count, a pin-entry word (a `pinned` word most often), a
//!     descriptor or inline-buffer word, a frame word (seq, generation, len, tag, crc, reserved),
//!     a payload word, any word or byte; add a frame or a header-only value; recompute a frame's
//!     CRC; or grow/shrink the image.
//!
//! Then the image is opened with tiny read and lock timeouts and every read/inspect/publish entry
//! point is called. Results are ignored, except one property that must hold on a private channel
//! that nobody else writes: after `publish_raw` returns `Ok(g)`, `read_raw` returns that very
//! value with generation `g`.

use std::time::Duration;

use mmf_codec::ChannelExt;
use mmf_core::{Channel, Options, Tag, MAGIC};

const LINE: usize = 64;
pub const W: usize = 8;

/// The layout version these images are built for (FORMAT.md §4, word 1). The stable test
/// `tests/hostile.rs` checks that an unedited image opens, so that a new version cannot leave the
/// fuzzer stopped at "unsupported version" again (it did, from version 2 until this check).
const VERSION: u64 = 7;
/// The largest value kept in an inline buffer (FORMAT.md §4.1).
const INLINE_MAX: usize = 120;
/// `latest`'s slot byte for a value kept in the header only (FORMAT.md §4).
const NO_SLOT: u64 = 0xff;

// Header words (FORMAT.md §4).
const H_VERSION: usize = 1;
const H_HEADER_SIZE: usize = 2;
const H_CAPACITY: usize = 3;
const H_SLOT_COUNT: usize = 4;
const H_SLOT_STRIDE: usize = 5;
const H_READERS: usize = 6;
const H_TOTAL_SIZE: usize = 7;
const H_INCARNATION: usize = 8;
const H_CREATED_NS: usize = 9;
const H_CREATOR: usize = 10;
const H_FLAGS: usize = 11;
const H_KIND: usize = 12;
pub const H_LATEST: usize = 16;
/// Descriptor `b`: `inline_gen[b]` at word 17 + 2b, `inline_meta[b]` at 18 + 2b.
pub const H_INLINE_DESC: usize = 17;
/// Inline buffer `b`: words 24 + 16b to 39 + 16b, the value in the first 15, the stamp last.
const H_INLINE_DATA: usize = 24;
const H_LOCK: usize = 56;
const H_WRITTEN: usize = 58;
const H_WAITERS: usize = 60;
/// The pin table's first byte: after the header's 8 lines.
const PINS: usize = 512;
/// Pin entry words (FORMAT.md §5).
const P_PINNED: usize = 1;

// Frame words (FORMAT.md §6).
const F_SEQ: usize = 0;
const F_GEN: usize = 1;
pub const F_LEN: usize = 2;
pub const F_TAG: usize = 3;
const F_CRC: usize = 4;
const CRC_PRESENT: u64 = 1 << 32;

/// Reads the fuzz input front to back; past its end everything is zero.
pub struct Input<'a>(pub &'a [u8]);

impl<'a> Input<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.u8();
        }
        u64::from_le_bytes(b)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let take = n.min(self.0.len());
        let (head, rest) = self.0.split_at(take);
        self.0 = rest;
        let mut v = head.to_vec();
        v.resize(n, 0);
        v
    }
}

/// Geometry of FORMAT.md §3.
#[derive(Clone, Copy)]
struct Geo {
    capacity: usize,
    readers: usize,
    slots: usize,
    header: usize,
    stride: usize,
    total: usize,
}

impl Geo {
    fn new(capacity: usize, readers: usize) -> Geo {
        let slots = readers + 2;
        let header = PINS + LINE * readers;
        let stride = LINE + capacity.div_ceil(LINE) * LINE;
        Geo {
            capacity,
            readers,
            slots,
            header,
            stride,
            total: header + slots * stride,
        }
    }
    /// Byte offset of word `field` of slot `s`'s frame (or payload word `field - 8`).
    fn slot(&self, s: usize, field: usize) -> usize {
        self.header + s * self.stride + field * W
    }
    fn pin(&self, e: usize, field: usize) -> usize {
        PINS + e * LINE + field * W
    }
}

/// The word at byte `off` of an image, 0 past its end.
pub fn get(img: &[u8], off: usize) -> u64 {
    match img.get(off..off + W) {
        Some(b) => u64::from_le_bytes(b.try_into().unwrap()),
        None => 0,
    }
}

/// Stores the word at byte `off` of an image, nothing past its end.
pub fn put(img: &mut [u8], off: usize, v: u64) {
    if let Some(b) = img.get_mut(off..off + W) {
        b.copy_from_slice(&v.to_le_bytes());
    }
}

/// A new value for a word that currently holds `cur`, in the ways that tend to matter.
fn value(inp: &mut Input, cur: u64, g: &Geo) -> u64 {
    match inp.u8() % 11 {
        0 => inp.u64(),
        1 => u64::from(inp.u8()),
        2 => cur.wrapping_add(u64::from(inp.u8()) + 1),
        3 => cur.wrapping_sub(u64::from(inp.u8()) + 1),
        4 => cur ^ (1u64 << (inp.u8() % 64)),
        5 => {
            let interesting = [
                0,
                1,
                2,
                u64::MAX,
                u64::MAX - 1,
                i64::MAX as u64,
                1 << 32,
                (1 << 32) - 1,
                1 << 40,
                (1 << 40) + 1,
                1 << 56,
                (1 << 56) - 1,
                u64::from(u16::MAX),
                u64::from(u16::MAX) + 1,
                g.capacity as u64,
                g.capacity as u64 + 1,
                g.slots as u64,
                g.slots as u64 + 1,
                g.readers as u64,
                63,
                64,
                65,
                MAGIC,
                u64::from(std::process::id()),
            ];
            interesting[inp.u8() as usize % interesting.len()]
        }
        // A `latest`-shaped word: generation << 8 | slot (0xff: in the header only).
        6 => {
            let slot = match inp.u8() % 4 {
                0 => NO_SLOT,
                _ => u64::from(inp.u8() % (g.slots as u8 + 2)),
            };
            (u64::from(inp.u16()) << 8) | slot
        }
        7 => (inp.u64() & (u64::MAX >> 8)) << 8 | u64::from(inp.u8()),
        // A crc-shaped word.
        8 => CRC_PRESENT | u64::from(inp.u16()) << 16 | u64::from(inp.u16()),
        // A descriptor-shaped word: length | tag << 32, or a pin entry's "keep values in slots".
        9 if inp.u8() & 1 == 0 => u64::from(inp.u8()) | u64::from(inp.u8() % 6) << 32,
        9 => u64::MAX,
        _ => 0,
    }
}

fn tag(inp: &mut Input) -> u64 {
    match inp.u8() % 8 {
        0..=4 => u64::from(inp.u8() % 5), // empty, bytes, text, msgpack, json
        5 => u64::from(inp.u16()),
        6 => u64::from(u16::MAX) + u64::from(inp.u8()),
        _ => 3, // msgpack: the deepest decoding path
    }
}

/// Writes a complete, consistent frame into slot `s` and returns its `latest` word.
fn write_frame(img: &mut [u8], g: &Geo, checksum: bool, inp: &mut Input) -> u64 {
    let s = inp.u8() as usize % g.slots;
    let gen = match inp.u8() % 4 {
        0 => u64::from(inp.u8()),
        1 => u64::from(inp.u16()),
        2 => (u64::MAX >> 8) - u64::from(inp.u8() % 4),
        _ => inp.u64() & (u64::MAX >> 8),
    };
    let t = tag(inp);
    let len = inp.u16() as usize % (g.capacity + 1);
    let payload = inp.bytes(len);
    let seq = u64::from(inp.u8()) * 2;
    put(img, g.slot(s, F_SEQ), seq);
    put(img, g.slot(s, F_GEN), gen);
    put(img, g.slot(s, F_LEN), len as u64);
    put(img, g.slot(s, F_TAG), t);
    let crc = if checksum {
        CRC_PRESENT | u64::from(crc32fast::hash(&payload))
    } else {
        0
    };
    put(img, g.slot(s, F_CRC), crc);
    let base = g.slot(s, 8);
    // Zero the whole payload area first, then the value (the writer zero-pads the last word).
    // (`get_mut`: an earlier edit may have truncated the image.)
    if let Some(area) = img.get_mut(base..base + g.stride - LINE) {
        area.fill(0);
        area[..len].copy_from_slice(&payload);
    }
    // Mostly as a whole publish leaves it (FORMAT.md §4.1, §11 steps 2 and 6a): the descriptor
    // too, and on a channel without checksums the buffer's stamp and, for a small value, the
    // inline copy, so that reads and `recover` meet slot values that the header vouches for.
    if !inp.u8().is_multiple_of(4) {
        let b = (gen % 2) as usize;
        put(img, (H_INLINE_DESC + 2 * b) * W, gen);
        put(img, (H_INLINE_DESC + 2 * b + 1) * W, len as u64 | t << 32);
        if !checksum {
            let inline = (H_INLINE_DATA + 16 * b) * W;
            if len <= INLINE_MAX.min(g.capacity) {
                if let Some(area) = img.get_mut(inline..inline + INLINE_MAX) {
                    area.fill(0);
                    area[..len].copy_from_slice(&payload);
                }
            }
            put(img, inline + INLINE_MAX, gen);
        }
    }
    (gen << 8) | s as u64
}

/// Writes a complete value of generation `gen` into descriptor and inline buffer `gen % 2` and
/// returns the `latest` word that names it in the header only (FORMAT.md §4.1, §11 step 2a).
fn write_header_only(img: &mut [u8], g: &Geo, inp: &mut Input) -> u64 {
    let gen = u64::from(inp.u16()) & (u64::MAX >> 8);
    let b = (gen % 2) as usize;
    let t = tag(inp);
    let len = inp.u8() as usize % (INLINE_MAX.min(g.capacity) + 1);
    let payload = inp.bytes(len);
    put(img, (H_INLINE_DESC + 2 * b) * W, gen);
    put(img, (H_INLINE_DESC + 2 * b + 1) * W, len as u64 | t << 32);
    let base = (H_INLINE_DATA + 16 * b) * W;
    if let Some(area) = img.get_mut(base..base + INLINE_MAX) {
        area.fill(0);
        area[..len].copy_from_slice(&payload);
    }
    put(img, base + INLINE_MAX, gen); // the buffer's stamp
    (gen << 8) | NO_SLOT
}

/// A valid image: the header of FORMAT.md §4 for `capacity` and `readers`, nothing published.
pub fn well_formed(capacity: usize, readers: usize, checksum: bool) -> Vec<u8> {
    let g = Geo::new(capacity, readers);
    let mut img = vec![0u8; g.total];
    let h = |img: &mut [u8], i: usize, v: u64| put(img, i * W, v);
    h(&mut img, H_VERSION, VERSION);
    h(&mut img, H_HEADER_SIZE, g.header as u64);
    h(&mut img, H_CAPACITY, g.capacity as u64);
    h(&mut img, H_SLOT_COUNT, g.slots as u64);
    h(&mut img, H_SLOT_STRIDE, g.stride as u64);
    h(&mut img, H_READERS, g.readers as u64);
    h(&mut img, H_TOTAL_SIZE, g.total as u64);
    h(&mut img, H_INCARNATION, 0x1234_5679);
    h(&mut img, H_CREATED_NS, 1_700_000_000_000_000_000);
    h(&mut img, H_CREATOR, 0);
    h(&mut img, H_FLAGS, u64::from(checksum));
    h(&mut img, H_KIND, 1);
    h(&mut img, H_LATEST, 0);
    h(&mut img, 0, MAGIC);
    img
}

/// What `build_image` built besides the image: the value the handle publishes later, and
/// whether `exercise` waits.
pub struct Plan {
    pub_tag: Tag,
    pub_bytes: Vec<u8>,
    waits: bool,
}

fn build_image(inp: &mut Input) -> (Vec<u8>, Plan) {
    let (size, readers, flags) = (1 + inp.u8() as usize, inp.u8() as usize % 5, inp.u8());
    let capacity = if flags & 2 != 0 { size * 256 } else { size };
    let g = Geo::new(capacity, readers);
    let checksum = flags & 1 != 0;
    let pub_tag = Tag(inp.u16() % 8);
    let pub_len = inp.u16() as usize % (g.capacity + 8); // sometimes too large on purpose
    let pub_bytes = inp.bytes(pub_len);

    let mut img = well_formed(g.capacity, g.readers, checksum);
    let h = |img: &mut [u8], i: usize, v: u64| put(img, i * W, v);

    for _ in 0..inp.u8() % 4 {
        // Mostly frames in slots; a header-only value now and then (on a checksummed channel
        // too, where it is corrupt).
        let latest = match inp.u8() % 4 {
            0 => write_header_only(&mut img, &g, inp),
            _ => write_frame(&mut img, &g, checksum, inp),
        };
        h(&mut img, H_LATEST, latest);
        h(&mut img, H_WRITTEN, latest);
    }

    // Edits, until the input runs out.
    let mut edits = 0;
    while !inp.is_empty() && edits < 64 {
        edits += 1;
        let op = inp.u8();
        let off = match op % 13 {
            0 => inp.u8() as usize % 64 * W,
            1 => H_LATEST * W,
            2 => [H_LOCK, H_WRITTEN, H_WAITERS][inp.u8() as usize % 3] * W,
            3 if g.readers > 0 => g.pin(inp.u8() as usize % g.readers, inp.u8() as usize % 8),
            3 => inp.u8() as usize % 64 * W,
            4 => g.slot(inp.u8() as usize % g.slots, inp.u8() as usize % 8),
            5 => {
                let s = inp.u8() as usize % g.slots;
                let words = (g.stride - LINE) / W;
                let word = if words > 256 {
                    inp.u16() as usize
                } else {
                    inp.u8() as usize
                };
                g.slot(s, 8 + word % words)
            }
            6 => inp.u16() as usize % (img.len() / W).max(1) * W,
            7 => {
                // Poke one byte anywhere.
                let at = inp.u16() as usize;
                let b = inp.u8();
                if !img.is_empty() {
                    let n = img.len();
                    img[at % n] = b;
                }
                continue;
            }
            8 => {
                // Make a slot's CRC agree with its (possibly edited) payload again.
                let s = inp.u8() as usize % g.slots;
                let len = get(&img, g.slot(s, F_LEN));
                if len <= g.capacity as u64 {
                    let base = g.slot(s, 8);
                    if let Some(p) = img.get(base..base + len as usize) {
                        let c = crc32fast::hash(p);
                        put(&mut img, g.slot(s, F_CRC), CRC_PRESENT | u64::from(c));
                    }
                }
                continue;
            }
            9 => {
                // Another well-formed frame, named by `latest` or not.
                let latest = write_frame(&mut img, &g, checksum, inp);
                if inp.u8() & 1 == 0 {
                    put(&mut img, H_LATEST * W, latest);
                }
                continue;
            }
            10 => {
                // Another header-only value, named by `latest` or not.
                let latest = write_header_only(&mut img, &g, inp);
                if inp.u8() & 1 == 0 {
                    put(&mut img, H_LATEST * W, latest);
                }
                continue;
            }
            11 => {
                // A descriptor word, or a word of an inline buffer.
                match inp.u8() % 2 {
                    0 => (H_INLINE_DESC + inp.u8() as usize % 4) * W,
                    _ => (H_INLINE_DATA + inp.u8() as usize % 32) * W,
                }
            }
            12 if g.readers > 0 => g.pin(inp.u8() as usize % g.readers, P_PINNED),
            12 => H_LATEST * W,
            _ => {
                // Resize (a truncated or grown file).
                let d = inp.u8() as usize;
                if inp.u8() & 1 == 0 {
                    img.truncate(img.len().saturating_sub(d));
                } else {
                    img.resize(img.len() + d, 0);
                }
                continue;
            }
        };
        let cur = get(&img, off);
        let v = value(inp, cur, &g);
        put(&mut img, off, v);
    }
    let plan = Plan {
        pub_tag,
        pub_bytes,
        waits: flags & 4 != 0,
    };
    (img, plan)
}

/// Types a typed read decodes into besides `serde_json::Value`: a recursive enum (rmp-serde
/// counts no depth for enum variants: a deep one once overflowed the stack), options, boxes,
/// a struct by field names.
#[allow(dead_code)]
#[derive(serde::Deserialize, Debug)]
enum Tree {
    Leaf(u8),
    Node(Vec<Tree>),
    Named { a: Option<Box<Tree>>, b: String },
}

#[allow(dead_code)]
#[derive(serde::Deserialize, Debug)]
struct Record {
    k: Option<Vec<Option<f64>>>,
    t: Option<Tree>,
}

/// Every read, inspect and publish entry point, on a channel opened from a hostile image; waits
/// and reads-after get `wait` (zero: they only look).
pub fn exercise(ch: &Channel, pub_tag: Tag, pub_bytes: &[u8], wait: Duration) {
    let _ = ch.read_raw();
    let mut buf = Vec::new();
    let _ = ch.read_into(&mut buf);
    let _ = ch.info();
    let _ = ch.is_pinned();
    let _ = format!("{ch:?}");
    let g = ch.generation();
    let _ = ch.wait_for_change(g, wait);
    let _ = ch.wait_for_change(g.saturating_sub(1), Duration::ZERO);
    let _ = ch.read_after_into(g.saturating_sub(1), &mut buf, wait);
    let _ = ch.read_next_into(&mut buf, wait);
    let _ = ch.read_after::<Record>(0, Duration::ZERO);
    let _ = ch.read_json();
    let _ = ch.read_json_pretty();
    let _ = ch.read_string();
    let _ = ch.read_bytes();
    let _ = ch.read::<serde_json::Value>();
    let _ = ch.read::<String>();
    let _ = ch.read::<(u8, i64, f64)>();
    let _ = ch.read::<Tree>();
    let _ = ch.read::<Vec<Option<Tree>>>();
    let _ = ch.read::<Record>();
    let _ = ch.verify();
    // Recovering a hostile image (the slots' frames and the header's inline copies are its
    // candidates): any value it publishes again is what a read returns next.
    if let Ok(Some(r)) = ch.recover() {
        let (meta, bytes) = ch.read_raw().expect("read after a successful recover");
        assert_eq!(
            (meta.generation, meta.tag, bytes.len()),
            (r.meta.generation, r.meta.tag, r.meta.len),
            "read after recover"
        );
    }

    // A writer over a hostile image must still work or fail with a typed error.
    let published = ch.publish_raw(pub_tag, pub_bytes);
    let read = ch.read_raw();
    if let Ok(gen) = published {
        // Nobody else can write this private copy: the value just published is the latest.
        let (meta, bytes) = read.expect("read after a successful publish");
        assert_eq!(meta.generation, gen, "generation after publish");
        assert_eq!(meta.tag, pub_tag, "tag after publish");
        assert_eq!(bytes, pub_bytes, "bytes after publish");
        assert_eq!(ch.generation(), gen);
    }
    let _ = ch.info();
    let _ = ch.read_json();
    let _ = ch.publish_str("{\"k\": [1, 2.5, null]}");
    let _ = ch.publish_json("{\"k\": [1, 2.5, null]}");
    let _ = ch.read::<serde_json::Value>();
    let _ = ch.publish(&(1u8, "two", 3.0f64));
    let _ = ch.read_json_pretty();
    let _ = ch.wait_for_change(0, Duration::ZERO);
    let _ = ch.wait_for_change(ch.generation(), wait);
}

/// Opens an image as the fuzz targets do: tiny timeouts, so a contended image cannot look like a
/// hang.
pub fn open(img: &[u8]) -> Option<Channel> {
    let mut o = Options::new();
    o.read_timeout(Duration::from_millis(3))
        .lock_timeout(Duration::from_millis(3))
        .wait_spin(Duration::ZERO);
    o.open_image(img).ok()
}

/// One fuzz input (see the module docs for its layout); returns whether the image opened, that
/// is, whether the input got past the header checks to the protocol.
pub fn run(data: &[u8]) -> bool {
    let mut inp = Input(data);
    let mode = inp.u8();
    if mode % 8 == 0 {
        let img = inp.0;
        let Some(ch) = open(img) else {
            return false;
        };
        let tail = &img[img.len().saturating_sub(16)..];
        exercise(&ch, Tag(u16::from(mode >> 3)), tail, Duration::ZERO);
        return true;
    }
    let (img, plan) = build_image(&mut inp);
    let Some(ch) = open(&img) else {
        return false;
    };
    let wait = if plan.waits {
        Duration::from_millis(1)
    } else {
        Duration::ZERO
    };
    exercise(&ch, plan.pub_tag, &plan.pub_bytes, wait);
    true
}
