//! JSON <-> MessagePack without a Rust type, for the CLI and for scripts.
//!
//! JSON to MessagePack is streamed ([`serde_transcode`]): integers stay integers (every `i64` and
//! `u64`), other numbers become `f64`, objects become maps with string keys, and nesting deeper
//! than 128 levels is refused (serde_json's limit).
//!
//! MessagePack to JSON renders what JSON can express as itself, and the rest as follows
//! (documented, lossless where JSON allows, never a panic):
//!
//! | MessagePack | JSON |
//! |---|---|
//! | binary, or a string that is not UTF-8 | `{"$bin": "<base64>"}` |
//! | extension type `t` | `{"$ext": {"type": t, "data": "<base64>"}}` |
//! | map key that is not a string | the key's compact JSON text (`1` → `"1"`), cut to [`MAX_KEY_TEXT`] bytes with a trailing `…` |
//! | NaN, +inf, -inf | `"NaN"`, `"Infinity"`, `"-Infinity"` |
//! | `f32` | the same number as `f64` |
//!
//! Input is untrusted: lengths are bounded by the bytes present, nesting by [`MAX_DEPTH`], and
//! trailing bytes after the document are an error.

use std::io;

use serde_json::{Map, Number, Value as Json};

use crate::error::{Error, Result};

/// Deepest MessagePack nesting [`msgpack_to_json`] decodes.
pub const MAX_DEPTH: usize = 512;

/// Longest rendering of a non-string map key. Keys that are themselves maps with non-string
/// keys would otherwise be escaped once more per level, doubling in size each time: 63 bytes of
/// MessagePack could demand gigabytes of JSON. With the cap, output stays linear in the input.
pub const MAX_KEY_TEXT: usize = 256;

/// Checks that `json` is one valid JSON document, with the line and column of any error.
///
/// An integer outside the 64-bit range (below `i64::MIN` or above `u64::MAX`) is an error too:
/// MessagePack has no larger integers, and the parser would silently make it a float, so that
/// `18446744073709551616` came back as `1.8446744073709552e19`. Write such a number as a string,
/// or with a fraction or exponent to ask for a float. So is a number beyond `f64`'s range
/// (`1e400`).
///
/// ```
/// use mmf_codec::{json::validate_json, Error};
/// validate_json(r#"{"id": 18446744073709551615, "x": 1e300}"#)?;
/// let err = validate_json(r#"{"id": 18446744073709551616}"#).unwrap_err();
/// assert!(matches!(err, Error::InvalidJson { line: 1, column: 8, .. }), "{err}");
/// # Ok::<(), mmf_codec::Error>(())
/// ```
pub fn validate_json(json: &str) -> Result<()> {
    let mut de = serde_json::Deserializer::from_str(json);
    <serde::de::IgnoredAny as serde::Deserialize>::deserialize(&mut de)
        .map_err(|e| Error::json(&e))?;
    de.end().map_err(|e| Error::json(&e))?;
    check_integers(json)
}

/// The integer-range check of [`validate_json`], on text already known to be valid JSON: every
/// number token outside a string that has no fraction and no exponent must fit `i64` or `u64`.
fn check_integers(json: &str) -> Result<()> {
    let bytes = json.as_bytes();
    let (mut i, mut in_string) = (0, false);
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1, // the escaped byte cannot end the string
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                let token = &json[start..i];
                let message = if !token.contains(['.', 'e', 'E']) {
                    (token.parse::<i64>().is_err() && token.parse::<u64>().is_err()).then(|| {
                        format!(
                            "the integer {token} does not fit in 64 bits, the largest integers MessagePack \
                             holds (as a string, or with a fraction or exponent as a float, it would)"
                        )
                    })
                } else {
                    // The validating pass skips numbers without converting them.
                    token
                        .parse::<f64>()
                        .map_or(true, |f| f.is_infinite())
                        .then(|| {
                            format!("the number {token} is beyond the range of a 64-bit float")
                        })
                };
                if let Some(message) = message {
                    let line = json[..start].matches('\n').count() + 1;
                    let column = start - json[..start].rfind('\n').map_or(0, |n| n + 1) + 1;
                    return Err(Error::InvalidJson {
                        line,
                        column,
                        message,
                    });
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Transcodes one JSON document into MessagePack written to `out`. Validate first with
/// [`validate_json`] to get the position of a syntax error; this reports only its message.
pub fn write_json_as_msgpack<W: io::Write>(json: &str, out: W) -> Result<()> {
    let mut de = serde_json::Deserializer::from_str(json);
    let mut ser = rmp_serde::Serializer::new(out);
    serde_transcode::transcode(&mut de, &mut ser).map_err(|e| Error::Encode(e.to_string()))?;
    de.end().map_err(|e| Error::json(&e))
}

/// JSON text to a MessagePack document.
///
/// ```
/// let mp = mmf_codec::json::json_to_msgpack(r#"{"n": 18446744073709551615}"#)?;
/// assert_eq!(mmf_codec::json::msgpack_to_json(&mp, false)?, r#"{"n":18446744073709551615}"#);
/// # Ok::<(), mmf_codec::Error>(())
/// ```
pub fn json_to_msgpack(json: &str) -> Result<Vec<u8>> {
    validate_json(json)?;
    let mut out = Vec::with_capacity(json.len());
    write_json_as_msgpack(json, &mut out)?;
    Ok(out)
}

/// A MessagePack document to JSON text (compact, or indented with `pretty`).
pub fn msgpack_to_json(bytes: &[u8], pretty: bool) -> Result<String> {
    let value = msgpack_to_value(bytes)?;
    let text = if pretty {
        serde_json::to_string_pretty(&value)
    } else {
        serde_json::to_string(&value)
    };
    text.map_err(|e| Error::Encode(e.to_string()))
}

/// A MessagePack document to a `serde_json::Value`, by the rules of the module docs.
pub fn msgpack_to_value(bytes: &[u8]) -> Result<Json> {
    let mut rd = bytes;
    let value = rmpv::decode::read_value_with_max_depth(&mut rd, MAX_DEPTH)
        .map_err(|e| Error::InvalidMsgpack(e.to_string()))?;
    if !rd.is_empty() {
        return Err(Error::InvalidMsgpack(format!(
            "{} trailing bytes after the document (at byte {})",
            rd.len(),
            bytes.len() - rd.len()
        )));
    }
    Ok(to_json(value))
}

fn to_json(v: rmpv::Value) -> Json {
    use rmpv::Value as Mp;
    match v {
        Mp::Nil => Json::Null,
        Mp::Boolean(b) => Json::Bool(b),
        Mp::Integer(i) => match (i.as_u64(), i.as_i64()) {
            (Some(u), _) => Json::Number(u.into()),
            (None, Some(s)) => Json::Number(s.into()),
            // rmpv integers are always one of the two.
            (None, None) => Json::Null,
        },
        Mp::F32(f) => float(f64::from(f)),
        Mp::F64(f) => float(f),
        // A MessagePack "string" that is not UTF-8 is rendered like binary, not dropped.
        Mp::String(s) if s.is_str() => Json::String(s.into_str().unwrap_or_default()),
        Mp::String(s) => tagged("$bin", Json::String(base64(&s.into_bytes()))),
        Mp::Binary(b) => tagged("$bin", Json::String(base64(&b))),
        Mp::Array(items) => Json::Array(items.into_iter().map(to_json).collect()),
        Mp::Map(entries) => {
            let mut m = Map::with_capacity(entries.len().min(1024));
            for (k, v) in entries {
                let key = match k {
                    Mp::String(s) if s.is_str() => s.into_str().unwrap_or_default(),
                    other => key_text(to_json(other).to_string()),
                };
                m.insert(key, to_json(v));
            }
            Json::Object(m)
        }
        Mp::Ext(ty, data) => {
            let mut m = Map::new();
            m.insert("type".into(), Json::Number(ty.into()));
            m.insert("data".into(), Json::String(base64(&data)));
            tagged("$ext", Json::Object(m))
        }
    }
}

/// A non-string key's JSON text, cut at a character boundary to [`MAX_KEY_TEXT`] bytes.
fn key_text(mut text: String) -> String {
    if text.len() > MAX_KEY_TEXT {
        let mut cut = MAX_KEY_TEXT - '…'.len_utf8();
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// A float as a JSON number, or as the string JSON uses by convention for a non-finite one.
fn float(f: f64) -> Json {
    match Number::from_f64(f) {
        Some(n) => Json::Number(n),
        None if f.is_nan() => Json::String("NaN".into()),
        None if f > 0.0 => Json::String("Infinity".into()),
        None => Json::String("-Infinity".into()),
    }
}

fn tagged(key: &str, v: Json) -> Json {
    let mut m = Map::new();
    m.insert(key.into(), v);
    Json::Object(m)
}

/// Standard base64 with padding (RFC 4648), for the `$bin` and `$ext` renderings.
pub fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(raw.as_bytes()), enc);
        }
    }

    #[test]
    fn integers_beyond_64_bits_are_refused_not_made_floats() {
        for (json, line, column) in [
            ("18446744073709551616", 1, 1),
            ("[1, -9223372036854775809]", 1, 5),
            ("{\n  \"id\": 123456789012345678901234567890\n}", 2, 9),
            ("[1e400]", 1, 2),
            ("[-1.5E+309]", 1, 2),
        ] {
            match json_to_msgpack(json) {
                Err(Error::InvalidJson {
                    line: l,
                    column: c,
                    message,
                }) => {
                    assert_eq!((l, c), (line, column), "{json}: {message}");
                    assert!(
                        message.contains("does not fit in 64 bits")
                            || message.contains("beyond the range of a 64-bit float"),
                        "{message}"
                    );
                }
                other => panic!("{json}: {other:?}"),
            }
        }
        // Digits in strings (escaped quotes included), floats and the 64-bit extremes pass.
        for json in [
            r#""123456789012345678901234567890""#,
            r#"{"a\"99999999999999999999": "\\", "b": "x\"1"}"#,
            "[18446744073709551615, -9223372036854775808, 1.8446744073709552e19, 1e300, -0, 0.5]",
        ] {
            let mp = json_to_msgpack(json).unwrap();
            assert_eq!(
                serde_json::from_str::<Json>(&msgpack_to_json(&mp, false).unwrap()).unwrap(),
                serde_json::from_str::<Json>(json).unwrap(),
                "{json}"
            );
        }
    }

    #[test]
    fn extremes_and_unicode_survive() {
        let json = r#"{"max":18446744073709551615,"min":-9223372036854775808,"f":1.5,"s":"héllo ✓ 😀","n":null,"a":[[],{},[1,[2,[3]]]],"t":true}"#;
        let mp = json_to_msgpack(json).unwrap();
        let back: Json = serde_json::from_str(&msgpack_to_json(&mp, false).unwrap()).unwrap();
        assert_eq!(back, serde_json::from_str::<Json>(json).unwrap());
        assert_eq!(back["max"].as_u64(), Some(u64::MAX));
        assert_eq!(back["min"].as_i64(), Some(i64::MIN));
    }

    #[test]
    fn what_json_cannot_express_has_a_documented_rendering() {
        use rmpv::Value as Mp;
        let v = Mp::Map(vec![
            (Mp::from(1), Mp::Binary(vec![0, 255])),
            (Mp::from("x"), Mp::Ext(5, vec![1, 2, 3])),
            (Mp::from("nan"), Mp::F64(f64::NAN)),
            (Mp::from("inf"), Mp::F32(f32::NEG_INFINITY)),
            (Mp::Array(vec![Mp::from(true)]), Mp::Nil),
        ]);
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &v).unwrap();
        let json = msgpack_to_json(&bytes, false).unwrap();
        assert_eq!(
            json,
            r#"{"1":{"$bin":"AP8="},"x":{"$ext":{"type":5,"data":"AQID"}},"nan":"NaN","inf":"-Infinity","[true]":null}"#
        );
        // A "string" whose bytes are not UTF-8 (fixstr of 2 bytes): kept, as binary.
        assert_eq!(
            msgpack_to_json(&[0xa2, 0xff, 0xfe], false).unwrap(),
            r#"{"$bin":"//4="}"#
        );
    }

    #[test]
    fn maps_nested_as_keys_cannot_blow_up() {
        // {{{…{nil: nil}…: nil}: nil}: nil}: 31 levels of maps as keys, 63 bytes. Each level used
        // to escape the one below again, doubling the output: 2^32 bytes of JSON.
        let mut bytes = vec![0x81; 31];
        bytes.extend(std::iter::repeat_n(0xc0, 32));
        let started = std::time::Instant::now();
        let json = msgpack_to_json(&bytes, false).unwrap();
        assert!(json.len() < 64 * MAX_KEY_TEXT, "{} bytes", json.len());
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // Also through the fuzz regression file, if present.
        let reg = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fuzz/regressions/codec-nested-map-keys"
        );
        if let Ok(input) = std::fs::read(reg) {
            let _ = msgpack_to_json(&input, true);
        }
        // A short non-string key keeps its full text.
        let mut small = Vec::new();
        let v = rmpv::Value::Map(vec![(
            rmpv::Value::Array(vec![1.into(), "é".into()]),
            true.into(),
        )]);
        rmpv::encode::write_value(&mut small, &v).unwrap();
        assert_eq!(
            msgpack_to_json(&small, false).unwrap(),
            r#"{"[1,\"é\"]":true}"#
        );
        assert_eq!(key_text("é".repeat(200)).len(), MAX_KEY_TEXT - 1);
    }

    #[test]
    fn bad_input_is_an_error_with_a_position() {
        match json_to_msgpack("{\"a\": [1, 2,]}").unwrap_err() {
            Error::InvalidJson {
                line: 1, column, ..
            } => assert_eq!(column, 13),
            other => panic!("{other}"),
        }
        assert!(matches!(
            json_to_msgpack("{} {}").unwrap_err(),
            Error::InvalidJson { .. }
        ));
        assert!(matches!(
            json_to_msgpack("").unwrap_err(),
            Error::InvalidJson { .. }
        ));
        // Truncated, trailing, absurd length, absurd depth. (rmpv reads the reserved marker 0xc1 as nil.)
        for bad in [
            &[0x92, 0x01][..],
            &[0x01, 0x02],
            &[0xdd, 0xff, 0xff, 0xff, 0xff],
            &[0x91; 100_000],
        ] {
            assert!(
                matches!(msgpack_to_json(bad, false), Err(Error::InvalidMsgpack(_))),
                "{:x?}",
                &bad[..bad.len().min(8)]
            );
        }
    }
}
