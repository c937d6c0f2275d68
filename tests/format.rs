//! docs/FORMAT.md is complete: `tests/decode_channel.py`, written from the document alone in
//! another language, decodes live channels that mmf wrote.

use std::process::Command;

use mmf::prelude::*;

fn decode(path: &std::path::Path) -> (bool, serde_json::Value, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/decode_channel.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(path)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let v = serde_json::from_str(stdout.trim()).unwrap_or(serde_json::Value::Null);
    (
        out.status.success(),
        v,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn an_independent_decoder_reads_what_mmf_wrote() {
    let path = std::env::temp_dir().join(format!("mmf-format-{}.mmf", std::process::id()));
    let loc = Location::file(&path);
    for checksum in [false, true] {
        let ch = Options::new()
            .capacity(1000)
            .readers(3)
            .checksum(checksum)
            .create(&loc)
            .unwrap();
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
}
