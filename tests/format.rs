//! docs/FORMAT.md is complete: `tests/decode_channel.py`, written from the document alone in
//! another language, decodes live channels that mmf wrote; `tests/write_channel.py`, written so
//! too, publishes values that mmf reads, beside mmf's own writers.

use std::process::Command;

use mmf::prelude::*;

/// What a missing `python3` says: these tests run Python programs written from FORMAT.md alone.
const NEEDS_PYTHON: &str = "python3 could not be run: the format tests run Python programs \
                            written from FORMAT.md; install python3";

/// `python3 tests/SCRIPT`, to be given its arguments.
fn python(script: &str) -> Command {
    let mut c = Command::new("python3");
    c.arg(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join(script),
    );
    c
}

fn decode(path: &std::path::Path) -> (bool, serde_json::Value, String) {
    let out = python("decode_channel.py")
        .arg(path)
        .output()
        .expect(NEEDS_PYTHON);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let v = serde_json::from_str(stdout.trim()).unwrap_or(serde_json::Value::Null);
    (
        out.status.success(),
        v,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// The channel the decoder's and the writer's tests use at `loc`: 1000 bytes, three reader-pin
/// entries (none of the defaults: the geometry is read, not assumed).
fn format_channel(loc: &Location, checksum: bool) -> Channel {
    Options::new()
        .capacity(1000)
        .readers(3)
        .checksum(checksum)
        .create(loc)
        .unwrap()
}

#[test]
fn an_independent_decoder_reads_what_mmf_wrote() {
    let path = std::env::temp_dir().join(format!("mmf-format-{}.mmf", std::process::id()));
    let loc = Location::file(&path);
    for checksum in [false, true] {
        let ch = format_channel(&loc, checksum);
        let (ok, v, err) = decode(&path);
        assert!(ok, "{err}");
        assert_eq!(
            (
                v["generation"].as_u64(),
                v["tag"].as_u64(),
                v["len"].as_u64()
            ),
            (Some(0), Some(0), Some(0))
        );
        ch.publish_str("Hello World!").unwrap();
        let (ok, v, err) = decode(&path);
        assert!(ok, "{err}");
        assert_eq!(v["generation"], 1);
        assert_eq!(v["tag"], 2);
        assert_eq!(v["payload_hex"], "48656c6c6f20576f726c6421");
        // With nobody reading through a pin, a small value is in the header only, except on
        // checksummed channels, whose inline area is unused.
        assert_eq!(v["inline"], !checksum);
        assert_eq!(v["header_only"], !checksum);
        // A MessagePack value in another slot, then many more publishes cycling the slots.
        // Filled through `publish_with`, which writes a slot and copies a small value from there
        // into the inline buffer (typed publishes go through `publish_raw`, as above).
        for i in 0..25u8 {
            ch.publish_with(Tag::MSGPACK, |w| w.put(&[0x93, i, i, i]))
                .unwrap();
        }
        let (ok, v, err) = decode(&path);
        assert!(ok, "{err}");
        assert_eq!(
            (v["generation"].as_u64(), v["tag"].as_u64()),
            (Some(26), Some(3))
        );
        assert_eq!(v["payload_hex"], "93181818", "fixarray of three 24s");
        assert_eq!(v["inline"], !checksum);
        assert_eq!(
            v["header_only"], false,
            "values filled through publish_with are in a slot"
        );
        // A typed publish of a small value is in the header only, like a string.
        ch.publish(&[1u8, 2]).unwrap();
        let (ok, v, err) = decode(&path);
        assert!(ok, "{err}");
        assert_eq!(
            (&v["payload_hex"], &v["header_only"]),
            (&"920102".into(), &(!checksum).into())
        );
        // A reader that wants slots (pin entry 0, docs/FORMAT.md section 5): small values go
        // into a slot and the inline buffer, and the decoder checks that the two agree.
        poke(&path, 512 + 8, u64::MAX);
        ch.publish_str("in a slot").unwrap();
        let (ok, v, err) = decode(&path);
        assert!(ok, "{err}");
        assert_eq!(v["payload_hex"], "696e206120736c6f74");
        assert_eq!(
            (&v["inline"], &v["header_only"]),
            (&(!checksum).into(), &false.into())
        );
        poke(&path, 512 + 8, 0);
        // A value larger than the inline area is in its slot only.
        let big = "y".repeat(200);
        ch.publish_str(&big).unwrap();
        let (ok, v, err) = decode(&path);
        assert!(ok, "{err}");
        assert_eq!(
            (v["generation"].as_u64(), v["len"].as_u64()),
            (Some(29), Some(200))
        );
        assert_eq!(v["payload_hex"], "79".repeat(200));
        assert_eq!(v["inline"], false);
        drop(ch);
        Channel::remove(&loc).unwrap();
    }
}

/// The decoder's "value": each tag's payload decoded as sections 7 and 7.1 say, MessagePack to
/// the same JSON that `read_json` renders (a binary, an extension, NaN and an infinity, an
/// `f32`, a float with no fraction, keys that are no strings, integers of every width); and a
/// NAME is the shared-memory channel that section 1 names, in `MMF_SHM_DIR`.
#[test]
fn the_decoder_renders_values_as_mmf_does() {
    use rmpv::Value as V;
    let dir = std::env::temp_dir().join(format!("mmf-format-values-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let loc = Location::file(dir.join("mmf.values"));
    let ch = Options::new().capacity(4096).create(&loc).unwrap();
    let by_name_text = || {
        let out = python("decode_channel.py")
            .arg("values")
            .env("MMF_SHM_DIR", &dir)
            .output()
            .expect(NEEDS_PYTHON);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{err}");
        String::from_utf8(out.stdout).unwrap()
    };
    let by_name = || serde_json::from_str::<serde_json::Value>(&by_name_text()).unwrap();
    let doc = V::Map(vec![
        (V::from("bin"), V::Binary(vec![0, 1, 2, 255])),
        (V::from("ext"), V::Ext(-1, vec![7; 8])),
        (V::from("nan"), V::F64(f64::NAN)),
        (V::from("minus infinity"), V::F64(f64::NEG_INFINITY)),
        (V::from("f32"), V::F32(0.1)),
        (V::from("one"), V::F64(1.0)),
        (V::from(7), V::from("an integer key")),
        (V::F64(1e-7), V::from("a float key")),
        (V::F64(0.00001), V::from("another")),
        (V::F64(f64::NAN), V::from("a NaN key")),
        (V::from("NaN"), V::from("the string NaN as a key")),
        (V::Array(vec![V::from(1), V::Nil]), V::Boolean(true)),
        (
            V::from("ints"),
            V::Array(vec![
                V::from(-1),
                V::from(-200),
                V::from(300),
                V::from(70_000),
                V::from(u64::MAX),
                V::from(i64::MIN),
            ]),
        ),
        (V::from("text"), V::from("ünï ✓")),
    ]);
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, &doc).unwrap();
    ch.publish_raw(Tag::MSGPACK, &bytes).unwrap();
    let rendered: serde_json::Value = serde_json::from_str(&ch.read_json().unwrap()).unwrap();
    let v = by_name();
    assert_eq!(v["generation"], 1);
    assert_eq!(v["value"], rendered, "{v}");
    assert_eq!(v["value"]["bin"], serde_json::json!({"$bin": "AAEC/w=="}));
    assert_eq!(v["value"]["[1,null]"], true);
    assert_eq!(v["value"]["1e-7"], "a float key");
    assert_eq!(v["value"]["\"NaN\""], "a NaN key");

    let deep = |n| format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes();
    ch.publish_raw(Tag::JSON, b"{\"k\": [1, 2.5]}").unwrap();
    assert_eq!(by_name()["value"], serde_json::json!({"k": [1, 2.5]}));
    // What mmf takes at the edges of section 7.1's rules, the decoder takes too.
    ch.publish_raw(Tag::JSON, &deep(127)).unwrap();
    ch.read_json().unwrap();
    // (One level more than serde_json parses by default: the text is looked at.)
    let v = by_name_text();
    assert!(
        v.contains(&format!("\"value\": {}", "[".repeat(127))) && !v.contains("value_error"),
        "{v}"
    );
    let edges = b"[18446744073709551615, -9223372036854775808, -0, \"\\ud83d\\ude00\", \"[{\"]";
    ch.publish_raw(Tag::JSON, edges).unwrap();
    ch.read_json().unwrap();
    assert_eq!(
        by_name()["value"],
        serde_json::json!([u64::MAX, i64::MIN, -0.0, "😀", "[{"])
    );
    // JSON text that mmf refuses, Python's json module would take: refused as mmf does.
    for text in [
        &b"{\"k\": 1, \"k\": 2}"[..],
        b"[NaN]",
        b"[1e400]",
        b"[18446744073709551616]",
        b"-9223372036854775809",
        b"\"\\ud800\"",
        b"{\"\\udc00\": 1}",
        &deep(128),
    ] {
        ch.publish_raw(Tag::JSON, text).unwrap();
        assert!(ch.read_json().is_err());
        let v = by_name();
        assert!(
            v.get("value").is_none() && v["value_error"].is_string(),
            "{v}"
        );
    }
    ch.publish_str("plain text").unwrap();
    assert_eq!(by_name()["value"], "plain text");
    ch.publish_raw(Tag::BYTES, b"\x01").unwrap();
    let v = by_name();
    assert!(
        v.get("value").is_none() && v.get("value_error").is_none(),
        "{v}"
    );
    // A payload mmf cannot read either: said, and the rest still decoded.
    ch.publish_raw(Tag::MSGPACK, &[0x92, 0x01]).unwrap();
    assert!(ch.read_json().is_err());
    let v = by_name();
    assert_eq!(v["value_error"], "a length beyond the payload's end", "{v}");
    assert_eq!(v["payload_hex"], "9201");
    drop(ch);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Stores `v` at `offset` of the (mapped) channel file at `path`, without truncating it.
fn poke(path: &std::path::Path, offset: u64, v: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&v.to_le_bytes(), offset).unwrap();
}

#[test]
fn the_decoder_refuses_what_mmf_refuses() {
    let path = std::env::temp_dir().join(format!("mmf-format-bad-{}.mmf", std::process::id()));
    let ch = Options::new()
        .capacity(64)
        .create(Location::file(&path))
        .unwrap();
    ch.publish_str("x").unwrap();
    drop(ch);
    let good = std::fs::read(&path).unwrap();
    for (what, offset, value) in [
        ("magic", 0usize, 1u64),
        ("version", 8, 1),
        ("capacity", 24, 65),
    ] {
        let mut bad = good.clone();
        bad[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
        std::fs::write(&path, &bad).unwrap();
        let (ok, _, err) = decode(&path);
        assert!(!ok && !err.is_empty(), "{what}");
        assert!(Channel::open(path.to_str().unwrap()).is_err(), "{what}");
    }
    // Damage found at read time: the value "x" is header-only; with the checksum flag set, or a
    // descriptor of another length, no reader may take it.
    for (what, offset, value) in [
        (
            "a header-only value on a channel with checksums",
            88usize,
            1u64,
        ),
        ("a header-only value of 200 bytes", 152 + 8, 200 | 2 << 32),
        // Slot 0's frame still holds the new channel's empty generation 0 (FORMAT.md §10.5).
        ("a zeroed latest once values were published", 128, 0),
    ] {
        let mut bad = good.clone();
        bad[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
        std::fs::write(&path, &bad).unwrap();
        let (ok, _, err) = decode(&path);
        assert!(!ok && err.contains("corrupt"), "{what}: {err}");
        let ch = Channel::open(path.to_str().unwrap()).unwrap();
        assert!(ch.read_raw().is_err(), "{what}");
    }
    std::fs::remove_file(&path).unwrap();

    // A new channel (with checksums, so reads take slot 0's frame) whose frame a stray write
    // left odd, then naming another generation: still nothing published (§10.5).
    let ch = Options::new()
        .capacity(64)
        .readers(0)
        .checksum(true)
        .create(Location::file(&path))
        .unwrap();
    for (offset, value) in [(512, 1), (520, 7)] {
        poke(&path, offset, value);
        let (ok, v, err) = decode(&path);
        assert!(ok, "{err}");
        assert_eq!(
            (v["generation"].as_u64(), v["len"].as_u64()),
            (Some(0), Some(0))
        );
        assert_eq!(ch.read_raw().unwrap().0.generation, 0);
    }
    drop(ch);
    std::fs::remove_file(&path).unwrap();
}

/// Removes its file when dropped, a failed test's too (the test removes it itself, checked).
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Kills its process when dropped: a failed test leaves no writer holding a channel's lock.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `tests/write_channel.py` with `args`: its exit code, standard output (trimmed) and
/// standard error.
fn python_write(args: &[&str]) -> (Option<i32>, String, String) {
    let out = python("write_channel.py")
        .args(args)
        .output()
        .expect(NEEDS_PYTHON);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// The writer written from FORMAT.md honours an exclusive writer's claim (§4 word 61, §11 step
/// 1): refused (exit 10) while mmf's claiming handle lives, the value kept; publishing once it
/// is dropped.
#[test]
fn an_independent_writer_keeps_off_a_claimed_channel() {
    let path = std::env::temp_dir().join(format!("mmf-format-x-{}.mmf", std::process::id()));
    let _cleanup = RemoveOnDrop(path.clone());
    let p = path.to_str().unwrap();
    let loc = Location::file(&path);
    let ch = Options::new()
        .capacity(64)
        .exclusive_writer(true)
        .create(&loc)
        .unwrap();
    ch.publish_str("mine").unwrap();
    let (code, _, err) = python_write(&[p, "theirs", "--text"]);
    assert_eq!(code, Some(10), "{err}");
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    let reader = Channel::open(&loc).unwrap();
    assert_eq!(reader.read_string().unwrap(), "mine");
    drop(ch);
    let (code, gen, err) = python_write(&[p, "theirs", "--text", "--print-generation"]);
    assert_eq!((code, gen.as_str()), (Some(0), "2"), "{err}");
    assert_eq!(reader.read_string().unwrap(), "theirs");
}

/// The writer written from FORMAT.md goes on past the generations a machine crash lost (§12):
/// in a checksummed file channel whose slot pages were written back after generation 11 and
/// whose header page was not (it names 10), its first publish makes the generation mmf's own
/// writer makes there, past 11. Publishing 11 again, in the slot the lost 11 is in, would let
/// a second crash serve the lost value as the new 11, its CRC matching (the Rust test
/// `a_writer_goes_on_past_the_generations_a_crash_lost`).
#[test]
fn an_independent_writer_goes_on_past_the_generations_a_crash_lost() {
    let path = std::env::temp_dir().join(format!("mmf-format-c-{}.mmf", std::process::id()));
    let _cleanup = RemoveOnDrop(path.clone());
    let loc = Location::file(&path);
    let ch = Options::new()
        .capacity(4096)
        .checksum(true)
        .create(&loc)
        .unwrap();
    for g in 1..=10 {
        ch.publish_raw(Tag::BYTES, &[g; 4096]).unwrap();
    }
    ch.flush().unwrap();
    let flushed = std::fs::read(&path).unwrap();
    ch.publish_raw(Tag::BYTES, &[11; 4096]).unwrap();
    let after11 = std::fs::read(&path).unwrap();
    drop(ch);
    // The crash image: the flushed file, with the pages of generation 11's slot written back.
    let mut disk = flushed;
    disk[4096..3 * 4096].copy_from_slice(&after11[4096..3 * 4096]);
    std::fs::write(&path, &disk).unwrap();
    // A read-only handle, which does not look: the image reads as the flushed 10.
    let reader = Options::new().read_only(true).open(&loc).unwrap();
    assert_eq!(reader.read_raw().unwrap().0.generation, 10);

    // mmf's own writer on a copy of the image: past 11, and of the parity §11 step 2 keeps
    // (a `written` ahead of `latest` goes on so that the inline buffer `latest`'s value may be
    // in is kept off), 13.
    let copy = path.with_extension("copy");
    let _cleanup_copy = RemoveOnDrop(copy.clone());
    std::fs::write(&copy, &disk).unwrap();
    let mmf_gen = Channel::open(Location::file(&copy))
        .unwrap()
        .publish_str("after the crash")
        .unwrap();
    assert!(mmf_gen > 11, "{mmf_gen}");

    let p = path.to_str().unwrap();
    let (code, gen, err) = python_write(&[p, "after the crash", "--text", "--print-generation"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        gen,
        mmf_gen.to_string(),
        "not the generation mmf's writer makes"
    );
    let (meta, text) = reader.read_raw().unwrap();
    assert_eq!(
        (meta.generation, &text[..]),
        (mmf_gen, &b"after the crash"[..])
    );
    reader.verify().unwrap();
}

/// A writer in another language, written from FORMAT.md alone, publishes text, JSON (as
/// MessagePack) and bytes that mmf reads: header-only, and in a slot for a reader that wants
/// slots; a value of exactly the capacity; one byte more is refused and the value kept; mmf's
/// own publishes go on from its generation.
#[test]
fn an_independent_writer_publishes_what_mmf_reads() {
    let path = std::env::temp_dir().join(format!("mmf-format-w-{}.mmf", std::process::id()));
    let _cleanup = RemoveOnDrop(path.clone());
    let p = path.to_str().unwrap();
    let loc = Location::file(&path);
    for checksum in [false, true] {
        let ch = format_channel(&loc, checksum);
        let (code, gen, err) = python_write(&[p, "Hello World!", "--text", "--print-generation"]);
        assert_eq!((code, gen.as_str()), (Some(0), "1"), "{err}");
        let (meta, text) = ch.read_raw().unwrap();
        assert_eq!(
            (meta.generation, meta.tag, &text[..]),
            (1, Tag::TEXT, &b"Hello World!"[..])
        );
        assert_eq!(ch.read_string().unwrap(), "Hello World!");

        let json = r#"{"a":[1,2.5,"x",-7],"b":null,"c":{"d":true}}"#;
        let (code, _, err) = python_write(&[p, json, "--json"]);
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(ch.read_raw().unwrap().0.tag, Tag::MSGPACK);
        let read: serde_json::Value = serde_json::from_str(&ch.read_json().unwrap()).unwrap();
        assert_eq!(
            read,
            serde_json::from_str::<serde_json::Value>(json).unwrap()
        );

        // A reader that wants slots (pin entry 0): the value goes into a slot.
        poke(&path, 512 + 8, u64::MAX);
        let (code, _, err) = python_write(&[p, "in a slot", "--text"]);
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(ch.read_string().unwrap(), "in a slot");
        poke(&path, 512 + 8, 0);

        let full = "z".repeat(1000);
        let (code, _, err) = python_write(&[p, &full, "--bytes"]);
        assert_eq!(code, Some(0), "{err}");
        let (code, _, err) = python_write(&[p, &format!("{full}z"), "--bytes"]);
        assert_eq!(code, Some(4), "one byte over the capacity: {err}");
        let (meta, bytes) = ch.read_raw().unwrap();
        assert_eq!((meta.generation, meta.tag), (4, Tag::BYTES));
        assert_eq!(bytes, full.as_bytes(), "the refused value changed nothing");
        ch.verify().unwrap();
        ch.publish_str("mmf again").unwrap();
        let (meta, text) = ch.read_raw().unwrap();
        assert_eq!((meta.generation, &text[..]), (5, &b"mmf again"[..]));
        drop(ch);
        Channel::remove(&loc).unwrap();
    }
}

/// Whether `v` is whole as `write_channel.py`'s `make_pattern` makes it (and `pattern` here):
/// a head of one letter and 8 hex digits, one byte repeated, the hex CRC-32 of all that.
fn whole(v: &[u8]) -> bool {
    let Some((body, crc)) = v.len().checked_sub(8).map(|n| v.split_at(n)) else {
        return false;
    };
    body.len() >= 9
        && format!("{:08x}", crc32fast::hash(body)).as_bytes() == crc
        && body[9..].windows(2).all(|w| w[0] == w[1])
}

/// A value `whole` accepts: `who`, the counter, a filler, the CRC-32.
fn pattern(who: u8, counter: u32, size: usize) -> Vec<u8> {
    let mut body = vec![who];
    body.extend(format!("{counter:08x}").as_bytes());
    body.resize(size - 8, b'A' + (counter % 26) as u8);
    let crc = format!("{:08x}", crc32fast::hash(&body));
    body.extend(crc.as_bytes());
    body
}

/// The writer in another language and mmf's writer publish into one channel at once, while an
/// mmf reader checks every value it reads: the lock (FORMAT.md §11 step 1, with the token of
/// §5) keeps them from interleaving, so no value is torn and none is lost (the generation is
/// the sum of both counts), on channels with and without checksums. (Without the lock in the
/// Python writer, this failed with lost publishes and torn values.)
#[test]
fn an_independent_writer_and_mmf_publish_into_one_channel_at_once() {
    const EACH: u32 = 3000;
    for checksum in [false, true] {
        let path = std::env::temp_dir().join(format!(
            "mmf-format-both-{}-{checksum}.mmf",
            std::process::id()
        ));
        let _cleanup = RemoveOnDrop(path.clone());
        let loc = Location::file(&path);
        let ch = Options::new()
            .capacity(2048)
            .checksum(checksum)
            .create(&loc)
            .unwrap();
        let done = std::sync::atomic::AtomicBool::new(false);
        let (reads, python) = std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let reader = Channel::open(path.to_str().unwrap()).unwrap();
                let mut reads = 0u64;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    match reader.read_raw() {
                        Ok((meta, v)) if meta.generation > 0 => {
                            let head = String::from_utf8_lossy(&v[..v.len().min(24)]);
                            assert!(
                                whole(&v),
                                "torn at generation {}: {head}..",
                                meta.generation
                            );
                            reads += 1;
                        }
                        Ok(_) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                reads
            });
            let python = s.spawn(|| {
                python_write(&[
                    path.to_str().unwrap(),
                    "--repeat",
                    &EACH.to_string(),
                    "--pattern-sizes",
                    "17,100,300,2048",
                    "--who",
                    "P",
                ])
            });
            // From before the other writer starts until after it ends.
            let mut ours = 0u32;
            while !python.is_finished() {
                let size = [17, 64, 1000, 2048][ours as usize % 4];
                ch.publish_raw(Tag::TEXT, &pattern(b'R', ours, size))
                    .unwrap();
                ours += 1;
            }
            let python = python.join().unwrap();
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            (reader.join().unwrap(), (python, ours))
        });
        let ((code, _, err), ours) = python;
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(ch.generation(), u64::from(EACH + ours), "no publish lost");
        assert!(whole(&ch.read_raw().unwrap().1));
        assert!(reads > 0);
        assert_eq!(ch.info().writer_recoveries, 0);
        drop(ch);
        Channel::remove(&loc).unwrap();
    }
}

/// The writer in another language killed in the middle of a publish, its lock held: mmf's next
/// publish judges its token dead (FORMAT.md §5) and takes the lock over, counting a recovery;
/// readers kept the last value throughout.
#[test]
fn a_killed_independent_writer_leaves_a_lock_mmf_takes_over() {
    let path = std::env::temp_dir().join(format!("mmf-format-kill-{}.mmf", std::process::id()));
    let _cleanup = RemoveOnDrop(path.clone());
    let loc = Location::file(&path);
    let ch = Options::new().capacity(1000).create(&loc).unwrap();
    ch.publish_str("before").unwrap();
    let mut child = python_holding(&[
        path.to_str().unwrap(),
        &"x".repeat(500),
        "--hold",
        "payload-half:60",
    ]);
    assert_eq!(
        ch.read_string().unwrap(),
        "before",
        "read while the lock is held"
    );
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    ch.publish_str("after").unwrap();
    assert_eq!(ch.read_string().unwrap(), "after");
    assert_eq!(ch.info().writer_recoveries, 1);
    ch.verify().unwrap();
    drop(ch);
    Channel::remove(&loc).unwrap();
}

/// `tests/write_channel.py` run with `args`, one of them a `--hold STAGE:SECS`, once it holds
/// there (it says so on standard error).
fn python_holding(args: &[&str]) -> KillOnDrop {
    use std::io::{BufRead, BufReader};
    let mut child = KillOnDrop(
        python("write_channel.py")
            .args(args)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect(NEEDS_PYTHON),
    );
    let mut line = String::new();
    BufReader::new(child.0.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("holding at "), "{line}");
    child
}

/// The word at `offset` of the channel file at `path`.
fn peek(path: &std::path::Path, offset: u64) -> u64 {
    use std::os::unix::fs::FileExt;
    let mut b = [0; 8];
    let f = std::fs::File::open(path).unwrap();
    f.read_exact_at(&mut b, offset).unwrap();
    u64::from_le_bytes(b)
}

/// The independent writer's takeover over a lowered `latest` (FORMAT.md §11 step 2), as mmf's
/// own (`core/tests/channel.rs`): a writer killed holding the lock, then `latest` set back by a
/// stray write to the value before, which still reads whole, with `written` at the newer one.
/// The writer that takes the lock over keeps off the slot `latest` names, so a read in the
/// middle of its publish returns that value whole, and goes on past the writers' count:
/// generation 4, `written`'s 2 raised to `latest`'s parity, plus one. (With `written` kept as it
/// was, that read returned 2,000 bytes of the new value; with `written` set to `latest`, the
/// publish was a second generation 2.)
#[test]
fn an_independent_writers_takeover_over_a_lowered_latest_keeps_off_what_readers_copy() {
    const LATEST: u64 = 128;
    const N: usize = 4000;
    let path = std::env::temp_dir().join(format!("mmf-format-lowered-{}.mmf", std::process::id()));
    let _cleanup = RemoveOnDrop(path.clone());
    let p = path.to_str().unwrap();
    let loc = Location::file(&path);
    let ch = Options::new().capacity(4096).create(&loc).unwrap();
    ch.publish_raw(Tag::TEXT, &[b'A'; N]).unwrap();
    let latest_1 = peek(&path, LATEST);
    ch.publish_raw(Tag::TEXT, &[b'B'; N]).unwrap();

    // A writer killed while it holds the lock, before it wrote anything.
    let hold = |stage: &str, value: &str| python_holding(&[p, value, "--text", "--hold", stage]);
    drop(hold("locked:60", "never"));
    poke(&path, LATEST, latest_1);
    let (meta, value) = ch.read_raw().unwrap();
    assert_eq!(
        (meta.generation, value == [b'A'; N]),
        (1, true),
        "still whole"
    );

    // The next writer takes the lock over; read in the middle of its payload.
    let c = "C".repeat(N);
    let mut writer = hold("payload-half:2", &c);
    let (meta, value) = ch.read_raw().unwrap();
    assert_eq!(
        (
            meta.generation,
            value.iter().filter(|&&b| b == b'C').count()
        ),
        (1, 0),
        "a read during the takeover's publish"
    );
    assert!(writer.0.wait().unwrap().success());
    let (meta, value) = ch.read_raw().unwrap();
    assert_eq!((meta.generation, value == c.as_bytes()), (4, true));
    assert_eq!(ch.info().writer_recoveries, 1);
}
