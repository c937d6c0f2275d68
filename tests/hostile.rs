//! The bounded, stable-toolchain twin of the fuzz targets in `fuzz/`: valid channel images with
//! arbitrary words, bits and bytes overwritten (and plain random bytes), opened and used through
//! every read path. Every outcome must be `Ok` or a typed error, within a bounded time.

use std::time::{Duration, Instant};

use mmf::prelude::*;
use proptest::prelude::*;

/// The `open_read` fuzz target's body (`fuzz/` needs nightly and cargo-fuzz; this keeps its code
/// compiling, and its images valid, on every change). It lives here, not in `fuzz/`, because
/// `fuzz/` is a package of its own, which `cargo package` leaves out of `mmf`'s: these tests
/// must build from the published crate too (CI builds them from `cargo package`'s output).
#[path = "hostile/open_read.rs"]
mod open_read;

/// The bytes of a real file channel that `options` creates, once `publish` has published into
/// it and every handle is closed; the file is removed.
fn channel_bytes(options: &Options, publish: impl FnOnce(&Channel)) -> Vec<u8> {
    let path = std::env::temp_dir().join(format!(
        "mmf-hostile-img-{}-{:?}.mmf",
        std::process::id(),
        std::thread::current().id()
    ));
    let loc = Location::file(&path);
    let _ = Channel::remove(&loc);
    let ch = options.create(&loc).unwrap();
    publish(&ch);
    drop(ch);
    let bytes = std::fs::read(&path).unwrap();
    Channel::remove(&loc).unwrap();
    bytes
}

/// A channel image: a real file channel with a few values published, read back as bytes.
fn image(capacity: usize, readers: usize, checksum: bool, publishes: u8) -> Vec<u8> {
    let mut options = Options::new();
    options
        .capacity(capacity)
        .readers(readers)
        .checksum(checksum);
    channel_bytes(&options, |ch| {
        for i in 0..publishes {
            let _ = match i % 3 {
                0 => ch.publish_str(&"t".repeat(i as usize % (capacity + 1))),
                1 => ch.publish(&vec![i; (i as usize) % (capacity / 2 + 1)]),
                _ => ch.publish_json("{\"a\":[1,2,{\"b\":null}]}"),
            };
        }
    })
}

#[derive(Debug, Clone)]
enum Edit {
    Word { at: usize, value: u64 },
    Bit { at: usize, bit: u8 },
    Byte { at: usize, value: u8 },
    Truncate { keep: usize },
    Extend { by: usize },
}

fn edit() -> impl Strategy<Value = Edit> {
    let interesting = prop_oneof![
        any::<u64>(),
        Just(0u64),
        Just(u64::MAX),
        (0u64..4096),
        (0u64..64).prop_map(|s| s << 8 | (s & 7)), // plausible `latest` words
        (0u64..64).prop_map(|g| g << 8 | 0xff),    // ... naming a value in the header only
        Just((u64::MAX >> 8) << 8 | 0xff),         // ... at the last generation
        (0u64..=128, 0u64..6).prop_map(|(len, tag)| len | tag << 32), // descriptor `meta` words
    ];
    prop_oneof![
        4 => (0usize..4096, interesting).prop_map(|(at, value)| Edit::Word { at, value }),
        2 => (0usize..32768, 0u8..8).prop_map(|(at, bit)| Edit::Bit { at, bit }),
        2 => (0usize..32768, any::<u8>()).prop_map(|(at, value)| Edit::Byte { at, value }),
        1 => (0usize..32768).prop_map(|keep| Edit::Truncate { keep }),
        1 => (1usize..256).prop_map(|by| Edit::Extend { by }),
    ]
}

fn apply(bytes: &mut Vec<u8>, e: &Edit) {
    let n = bytes.len();
    match *e {
        Edit::Word { at, value } if n >= 8 => {
            let at = (at * 8) % (n - 7) / 8 * 8;
            bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
        }
        Edit::Bit { at, bit } if n > 0 => bytes[at % n] ^= 1 << bit,
        Edit::Byte { at, value } if n > 0 => bytes[at % n] = value,
        Edit::Truncate { keep } => bytes.truncate(keep),
        Edit::Extend { by } => bytes.extend(std::iter::repeat_n(0xA5, by)),
        _ => {}
    }
}

/// Everything a reader (and a writer) does with a channel; nothing may panic or hang.
///
/// Each operation is bounded by the 5 ms timeouts set here (a busy-looking image makes a read
/// wait out its whole timeout, so a case takes up to ~50 ms). Each must also end well before
/// the defaults (read 1 s, lock 5 s): an operation that ignored its timeout would take at least
/// that long however idle the machine, while one that honours it stays far below even on a
/// loaded one (the whole case once took 2.2 s with two busy loops beside the tests, ~0.25 s an
/// operation), so the bound is per operation.
fn exercise(bytes: &[u8]) {
    let mut o = Options::new();
    o.read_timeout(Duration::from_millis(5))
        .lock_timeout(Duration::from_millis(5));
    let bounded = |what: &str, t: Instant| {
        assert!(
            t.elapsed() < Duration::from_millis(900),
            "{what} took {:?}: more than its timeout allows",
            t.elapsed()
        );
    };
    let t = Instant::now();
    let opened = o.open_image(bytes);
    bounded("open", t);
    let Ok(ch) = opened else { return };
    let mut buf = Vec::new();
    let t = Instant::now();
    if let Ok(meta) = ch.read_into(&mut buf) {
        assert_eq!(meta.len, buf.len());
        assert!(meta.len <= ch.capacity());
    }
    bounded("read_into", t);
    let t = Instant::now();
    let _ = ch.read_json();
    bounded("read_json", t);
    let t = Instant::now();
    let _ = ch.read_json_pretty();
    bounded("read_json (pretty)", t);
    let t = Instant::now();
    let _ = ch.read_string();
    bounded("read_string", t);
    let t = Instant::now();
    let _ = ch.read::<serde_json::Value>();
    bounded("read", t);
    let t = Instant::now();
    let _ = ch.info();
    bounded("info", t);
    let t = Instant::now();
    let _ = ch.verify();
    bounded("verify", t);
    let t = Instant::now();
    let g = ch.generation();
    let _ = ch.wait_for_change(g, Duration::ZERO);
    bounded("wait_for_change", t);
    let t = Instant::now();
    let _ = ch.publish_raw(Tag::TEXT, b"after");
    bounded("publish_raw", t);
    let t = Instant::now();
    if let Ok((meta, v)) = ch.read_raw() {
        assert!(meta.len <= ch.capacity() && v.len() == meta.len);
    }
    bounded("read_raw", t);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn damaged_images_give_errors_not_panics(
        capacity in 1usize..300,
        readers in 0usize..4,
        checksum in any::<bool>(),
        publishes in 0u8..8,
        edits in prop::collection::vec(edit(), 1..16),
    ) {
        let mut bytes = image(capacity, readers, checksum, publishes);
        for e in &edits {
            apply(&mut bytes, e);
        }
        exercise(&bytes);
    }

    #[test]
    fn random_bytes_give_errors_not_panics(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        exercise(&bytes);
    }

    #[test]
    fn random_bytes_behind_a_valid_header_give_errors_not_panics(
        readers in 0usize..3,
        tail in prop::collection::vec(any::<u8>(), 0..4096),
    ) {
        let mut bytes = image(64, readers, false, 0);
        // Keep the identity and geometry lines (0 and 1); everything the protocol reads later,
        // from `latest` and the inline value on, is random.
        let header = 128;
        let n = tail.len().min(bytes.len() - header);
        bytes[header..header + n].copy_from_slice(&tail[..n]);
        exercise(&bytes);
    }
}

/// The bytes of a file channel of `capacity` (no pinned readers: the header is 512 bytes, slot
/// `s` at `512 + s * (64 + capacity rounded up to 64)`) after one publish of `value`.
fn one_value(capacity: usize, header_only: bool, tag: Tag, value: &[u8]) -> Vec<u8> {
    let mut options = Options::new();
    options
        .capacity(capacity)
        .readers(0)
        .header_only(header_only);
    channel_bytes(&options, |ch| {
        assert_eq!(ch.publish_raw(tag, value).unwrap(), 1)
    })
}

/// Byte offsets from FORMAT.md's word indices (the fuzz body's): `latest`, generation 1's
/// descriptor (descriptor 1: `inline_gen[1]`, `inline_meta[1]`), and a frame's `len` and `tag`.
const LATEST: usize = open_read::H_LATEST * open_read::W;
const INLINE_GEN_1: usize = (open_read::H_INLINE_DESC + 2) * open_read::W;
const INLINE_META_1: usize = INLINE_GEN_1 + open_read::W;
const F_LEN: usize = open_read::F_LEN * open_read::W;
const F_TAG: usize = open_read::F_TAG * open_read::W;
use open_read::{get as word, put as set_word};

/// A descriptor whose tag has bits above the 16 of a tag set is damaged (FORMAT.md §10.0, step
/// 3), not a tag to cut to 16 bits: a header-only value it describes is corrupt, and a value
/// kept in a slot too is read from the slot.
#[test]
fn a_descriptor_tag_beyond_16_bits_is_damage() {
    for header_only in [true, false] {
        let mut bytes = one_value(64, header_only, Tag::TEXT, b"hi");
        // Slot 0xff names a value in the header alone.
        assert_eq!(word(&bytes, LATEST) & 0xff == 0xff, header_only);
        assert_eq!(word(&bytes, INLINE_GEN_1), 1);
        let meta = word(&bytes, INLINE_META_1);
        assert_eq!(meta, u64::from(Tag::TEXT.0) << 32 | 2);
        set_word(&mut bytes, INLINE_META_1, meta | 1 << 48);
        let ch = Options::new().open_image(&bytes).unwrap();
        match (header_only, ch.read_raw()) {
            (true, Err(mmf::channel::Error::Corrupt { .. })) => {}
            (false, Ok((m, value))) => {
                assert_eq!(
                    (m.generation, m.tag, &value[..]),
                    (1, Tag::TEXT, &b"hi"[..])
                )
            }
            (_, got) => panic!("header only: {header_only}: {got:?}"),
        }
    }
}

/// `latest` naming the slot just past the last is corrupt (FORMAT.md §10.0, step 1: before the
/// descriptor is used), though the descriptor and inline buffer of its generation are whole.
#[test]
fn latest_naming_the_slot_past_the_last_is_corrupt() {
    let mut bytes = one_value(64, false, Tag::TEXT, b"hi");
    let slots = 2; // no pinned readers
    assert!(word(&bytes, LATEST) & 0xff < slots);
    set_word(&mut bytes, LATEST, 1 << 8 | slots);
    let ch = Options::new().open_image(&bytes).unwrap();
    let got = ch.read_raw();
    assert!(
        matches!(got, Err(mmf::channel::Error::Corrupt { .. })),
        "{got:?}"
    );
    assert!(ch.verify().is_err());
}

/// A frame is the authoritative copy of a value not kept inline (over 120 bytes): a descriptor
/// whose length or tag differ from the frame's is a wrong hint, and the read returns the frame's
/// value (FORMAT.md §10.3); a frame whose own tag is beyond 16 bits is damage, which `read_raw`
/// and `verify` report, whatever the descriptor says.
#[test]
fn a_slot_value_is_its_frame_s_whatever_the_descriptor_says() {
    let value: Vec<u8> = (0..200u8).collect();
    let image = one_value(256, false, Tag::BYTES, &value);
    let slot = (word(&image, LATEST) & 0xff) as usize;
    assert!(slot < 2);
    let frame = 512 + slot * (64 + 256);
    assert_eq!(word(&image, frame + F_LEN), 200);
    assert_eq!(word(&image, frame + F_TAG), u64::from(Tag::BYTES.0));
    let meta = word(&image, INLINE_META_1);
    assert_eq!(meta, u64::from(Tag::BYTES.0) << 32 | 200);
    for hint in [
        u64::from(Tag::BYTES.0) << 32 | 150,
        u64::from(Tag::BYTES.0) << 32 | 256,
        u64::from(Tag::TEXT.0) << 32 | 200,
    ] {
        let mut bytes = image.clone();
        set_word(&mut bytes, INLINE_META_1, hint);
        let ch = Options::new().open_image(&bytes).unwrap();
        let (m, got) = ch.read_raw().unwrap();
        assert_eq!(
            (m.generation, m.tag, &got[..]),
            (1, Tag::BYTES, &value[..]),
            "{hint:#x}"
        );
    }
    let mut bytes = image.clone();
    set_word(&mut bytes, frame + F_TAG, u64::from(Tag::BYTES.0) | 1 << 16);
    for hint in [meta, u64::from(Tag::BYTES.0 | 0xfffe) << 32 | 200] {
        set_word(&mut bytes, INLINE_META_1, hint);
        let ch = Options::new().open_image(&bytes).unwrap();
        let got = ch.read_raw();
        assert!(
            matches!(got, Err(mmf::channel::Error::Corrupt { .. })),
            "{hint:#x}: {got:?}"
        );
        let said = ch.verify().unwrap_err().to_string();
        let tag = u64::from(Tag::BYTES.0) | 1 << 16;
        assert!(
            said.contains(&format!("claims 200 bytes (capacity 256) and tag {tag}")),
            "{said}"
        );
    }
}

/// On a checksummed channel a reader copies a slot value by its descriptor's length and tag
/// while it fetches the frame, which must agree (FORMAT.md §10.0, "The hint"): a descriptor
/// changed under an open handle (so not judged at open) to another length or tag is a wrong
/// hint, and the read returns the frame's value, whole, with its tag.
#[test]
fn a_wrong_hint_on_a_checksummed_channel_reads_the_frame() {
    use std::os::unix::fs::FileExt;
    let path = std::env::temp_dir().join(format!("mmf-hostile-hint-{}.mmf", std::process::id()));
    let loc = Location::file(&path);
    let _ = Channel::remove(&loc);
    let ch = Options::new()
        .capacity(256)
        .readers(0)
        .checksum(true)
        .create(&loc)
        .unwrap();
    let reader = Channel::open(&loc).unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let value: Vec<u8> = (0..200u8).collect();
    for (i, hint) in [
        u64::from(Tag::BYTES.0) << 32 | 150,
        u64::from(Tag::BYTES.0) << 32 | 256,
        u64::from(Tag::TEXT.0) << 32 | 200,
    ]
    .into_iter()
    .enumerate()
    {
        // Generation 1, 2, 3: descriptor 1, 0, 1.
        let g = ch.publish_raw(Tag::BYTES, &value).unwrap();
        assert_eq!(g, i as u64 + 1);
        let meta_at = ((open_read::H_INLINE_DESC + 1 + 2 * (g as usize % 2)) * open_read::W) as u64;
        let mut meta = [0; 8];
        file.read_exact_at(&mut meta, meta_at).unwrap();
        assert_eq!(
            u64::from_le_bytes(meta),
            u64::from(Tag::BYTES.0) << 32 | 200
        );
        file.write_all_at(&hint.to_le_bytes(), meta_at).unwrap();
        let (m, got) = reader.read_raw().unwrap();
        assert_eq!(
            (m.generation, m.tag, &got[..]),
            (g, Tag::BYTES, &value[..]),
            "{hint:#x}"
        );
    }
    drop((ch, reader));
    Channel::remove(&loc).unwrap();
}

/// The fuzz target builds its images by hand from docs/FORMAT.md. An unedited one must open and
/// work: from layout version 2 until this test existed, every image it built was refused as
/// "unsupported version", and the fuzzer never got past the header checks.
#[test]
fn the_fuzz_targets_unedited_images_are_valid_channels() {
    for (capacity, readers, checksum) in [
        (1, 0, false),
        (64, 4, false),
        (200, 2, true),
        (256, 4, false),
        // Flags bit 1's large capacities.
        (256 * 256, 4, true),
        (3 * 256, 0, false),
    ] {
        let img = open_read::well_formed(capacity, readers, checksum);
        let ch = Options::new().open_image(&img).unwrap();
        assert_eq!(ch.capacity(), capacity);
        assert_eq!(ch.generation(), 0);
        let value = vec![7u8; capacity];
        let g = ch.publish_raw(Tag::BYTES, &value).unwrap();
        let (meta, bytes) = ch.read_raw().unwrap();
        assert_eq!((meta.generation, meta.tag, bytes), (g, Tag::BYTES, value));
    }
}

/// The fuzz target's body on its saved regression inputs, then on pseudo-random inputs for a
/// few seconds (`MMF_FUZZ_SECS`, default 3; the seed is printed, `MMF_FUZZ_SEED` repeats it). Most
/// structured inputs must get past the header checks, or the fuzzer would test nothing.
#[test]
fn the_open_read_fuzz_body_survives_its_regressions_and_random_inputs() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/hostile/regressions");
    let (mut saved, mut codec) = (0, 0);
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let input = std::fs::read(&path).unwrap();
        if file.starts_with("open_read-") {
            open_read::run(&input);
            saved += 1;
        } else if file.starts_with("codec-") {
            // The codec target's inputs: MessagePack rendered as JSON, in bounded time and
            // room (they once took seconds and gigabytes), or refused.
            let started = Instant::now();
            for json in [
                mmf::json::msgpack_to_json(&input),
                mmf::json::msgpack_to_json_pretty(&input),
            ]
            .into_iter()
            .flatten()
            {
                assert!(json.len() < 1 << 20, "{file}: {} bytes", json.len());
            }
            assert!(started.elapsed() < Duration::from_secs(1), "{file}");
            codec += 1;
        }
    }
    assert!(saved > 0 && codec > 0, "no regression inputs in {dir}");
    let secs: u64 = std::env::var("MMF_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let seed: u64 = std::env::var("MMF_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("MMF_FUZZ_SEED={seed}");
    let mut state = seed;
    let mut next = move || {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let deadline = Instant::now() + Duration::from_secs(secs);
    let (mut structured, mut opened) = (0u32, 0u32);
    // At least 64 structured inputs however slow the machine (a count of inputs within the
    // time failed on a loaded one), more as the time allows.
    while Instant::now() < deadline || structured < 64 {
        let len = (next() % 700) as usize;
        let mut data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if let Some(mode) = data.first_mut() {
            // Seven in eight build a valid image first (mode % 8 != 0), as in the fuzz target.
            let structured_input = *mode % 8 != 0;
            let got_in = open_read::run(&data);
            if structured_input {
                structured += 1;
                opened += u32::from(got_in);
            }
        }
    }
    println!("{structured} structured inputs, {opened} opened");
    assert!(
        opened * 2 >= structured,
        "only {opened} of {structured} structured images opened: the fuzz target's images no longer match the format"
    );
}
