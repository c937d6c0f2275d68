//! JSON <-> MessagePack transcoding (`mmf_codec::json`) on arbitrary bytes.
//!
//! Never a panic, a hang or a huge allocation; and the properties that must hold:
//!
//! * MessagePack side: compact and pretty renderings succeed or fail together; when they succeed,
//!   both are valid JSON that parses back to exactly `msgpack_to_value(bytes)`, and that JSON
//!   text transcodes back to MessagePack which renders to the same value again.
//! * JSON side (input is UTF-8): if serde_json accepts the text as a `Value`, `json_to_msgpack`
//!   must succeed (unless the text holds an integer beyond 64 bits or a key twice, which it
//!   refuses), and `msgpack_to_json` of its output (compact and pretty) must parse back to an
//!   equal `Value`. `compact_json` and `write_json_pretty` (what `mmf read` and `watch` print
//!   JSON text another process stored with) succeed exactly when `validate_json` does, and give
//!   back the same `Value`.
//! * `check_msgpack` accepts whatever renders, and refuses only what does not render or holds
//!   map keys that collide in JSON (`NotJson`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use mmf_codec::json::{
    check_msgpack, compact_json, json_to_msgpack, msgpack_to_json, msgpack_to_json_pretty,
    msgpack_to_value, validate_json, write_json_pretty,
};
use serde::Deserialize;
use serde_json::Value;

/// Parses JSON text without serde_json's nesting limit (mmf reads MessagePack up to 127 levels,
/// which is within it; the limit is lifted so that a deeper rendering would still be compared).
fn parse_deep(text: &str) -> Value {
    let mut de = serde_json::Deserializer::from_str(text);
    de.disable_recursion_limit();
    let v = Value::deserialize(&mut de).expect("msgpack_to_json produced invalid JSON");
    de.end().expect("msgpack_to_json produced trailing text");
    v
}

fuzz_target!(|data: &[u8]| {
    // MessagePack -> JSON.
    let compact = msgpack_to_json(data);
    let pretty = msgpack_to_json_pretty(data);
    let value = msgpack_to_value(data);
    assert_eq!(compact.is_ok(), pretty.is_ok(), "compact vs pretty");
    assert_eq!(compact.is_ok(), value.is_ok(), "text vs value");
    if let (Ok(c), Ok(p), Ok(v)) = (&compact, &pretty, &value) {
        let vc = parse_deep(c);
        let vp = parse_deep(p);
        assert_eq!(&vc, v, "compact JSON does not parse back to the value");
        assert_eq!(&vp, v, "pretty JSON does not parse back to the value");
        // JSON -> MessagePack -> JSON again (only within serde_json's default depth of 128,
        // which json_to_msgpack keeps).
        if let Ok(mp) = json_to_msgpack(c) {
            let again = msgpack_to_value(&mp).expect("json_to_msgpack output must decode");
            assert_eq!(
                &again, v,
                "msgpack -> JSON -> msgpack -> JSON changed the value"
            );
        }
    }

    // The check without rendering agrees with the rendering.
    match (check_msgpack(data), &compact) {
        (Err(e), Ok(_)) => panic!("check_msgpack refused what renders: {e}"),
        (Ok(()), Err(e)) => assert!(
            matches!(e, mmf_codec::Error::NotJson(_)),
            "check_msgpack accepted what does not render: {e}"
        ),
        _ => {}
    }

    // JSON text another process stored, as `read` and `watch` print it.
    if let Ok(text) = std::str::from_utf8(data) {
        let valid = validate_json(text).is_ok();
        let one_line = compact_json(text);
        let mut indented = Vec::new();
        let pretty = write_json_pretty(text, &mut indented);
        assert_eq!(one_line.is_ok(), valid, "compact_json vs validate_json");
        assert_eq!(pretty.is_ok(), valid, "write_json_pretty vs validate_json");
        if let Ok(line) = one_line {
            assert!(!line.contains('\n'), "compact_json kept a newline");
            let v = parse_deep(text);
            assert_eq!(parse_deep(&line), v, "compact_json changed the value");
            let indented = String::from_utf8(indented).expect("pretty JSON is UTF-8");
            assert_eq!(
                parse_deep(&indented),
                v,
                "write_json_pretty changed the value"
            );
        }
    }

    // JSON -> MessagePack -> JSON.
    if let Ok(text) = std::str::from_utf8(data) {
        let parsed = serde_json::from_str::<Value>(text);
        let mp = json_to_msgpack(text);
        if let Ok(v) = parsed {
            let mp = match mp {
                Ok(mp) => mp,
                // serde_json reads an integer beyond 64 bits as a float, and keeps the last of
                // a key given twice; mmf refuses both instead.
                Err(mmf_codec::Error::InvalidJson { message, .. })
                    if message.contains("does not fit in 64 bits")
                        || message.contains("appears twice in one object") =>
                {
                    return;
                }
                Err(e) => panic!("valid JSON refused by json_to_msgpack: {e}"),
            };
            for pretty in [false, true] {
                let back = if pretty {
                    msgpack_to_json_pretty(&mp)
                } else {
                    msgpack_to_json(&mp)
                }
                .expect("json_to_msgpack output must decode");
                let v2: Value = serde_json::from_str(&back).expect("round-tripped JSON must parse");
                assert_eq!(
                    v, v2,
                    "JSON -> MessagePack -> JSON changed the value (pretty {pretty})"
                );
            }
        }
    }
});
