//! JSON <-> MessagePack without a Rust type, for the CLI and for scripts.
//!
//! JSON to MessagePack is written as the text is read, with no tree of the value (the lengths
//! of arrays and objects, which JSON does not give before their end, are counted in a reading
//! of their own first): integers stay integers (every `i64` and `u64`; a larger one is refused
//! rather than made a float; `-0` is the float `-0.0`), other numbers become `f64`, objects
//! become maps with string keys (an object with a key twice is refused, as MessagePack to JSON
//! would refuse the map), and 128 levels of nesting are refused (serde_json's limit, so at most
//! 127 = [`MAX_DEPTH`]).
//!
//! MessagePack to JSON renders what JSON can express as itself, and the rest as follows
//! (documented, never a panic):
//!
//! | MessagePack | JSON |
//! |---|---|
//! | binary, or a string that is not UTF-8 | `{"$bin": "<base64>"}` |
//! | extension type `t` (timestamps are type -1) | `{"$ext": {"type": t, "data": "<base64>"}}` |
//! | map key that is not a string | the key's compact JSON text (`1` → `"1"`), cut to [`MAX_KEY_TEXT`] bytes with a trailing `…` |
//! | two keys of one map that read the same (`1` and `"1"`, or a key twice) | an error: a JSON object holds a key once, and dropping one would lose data |
//! | NaN, +inf, -inf | `"NaN"`, `"Infinity"`, `"-Infinity"` |
//! | `f32` | the same number as `f64` |
//! | an integer above 2^53 | the exact integer (JavaScript's `JSON.parse` rounds it; Python's does not) |
//!
//! The renderings are not escaped: a map whose only key is `"$bin"` or `"$ext"`, or the string
//! `"NaN"`, reads the same as what it stands for. Writers that must tell them apart avoid such
//! values.
//!
//! Input is untrusted: it is checked whole before anything is written, without recursion (one
//! document; no reserved marker `0xc1`; lengths within the bytes present; nesting no deeper than
//! [`MAX_DEPTH`]; nothing after it), then written as it is read, so memory grows with the output
//! and the map keys, not with a tree of the value. (Only a map key that is itself an array or a
//! map is rendered by recursion, at most [`MAX_DEPTH`] levels deep.)

use std::borrow::Cow;
use std::io;

use serde_json::ser::{CompactFormatter, Formatter, PrettyFormatter};
use serde_json::Value as Json;

use crate::error::{Error, Result};
pub use crate::msgpack::MAX_DEPTH;
use crate::msgpack::{self, Head};

/// Longest rendering of a non-string map key. Keys that are themselves maps with non-string
/// keys would otherwise be escaped once more per level, doubling in size each time: 63 bytes of
/// MessagePack could demand gigabytes of JSON. With the cap, output stays linear in the input.
pub const MAX_KEY_TEXT: usize = 256;

/// Checks that `json` is one valid JSON document.
///
/// An integer outside the 64-bit range (below `i64::MIN` or above `u64::MAX`) is an error too:
/// MessagePack has no larger integers, and the parser would silently make it a float, so that
/// `18446744073709551616` came back as `1.8446744073709552e19`. Write such a number as a string,
/// or with a fraction or exponent to ask for a float. So is a number beyond `f64`'s range
/// (`1e400`), nesting of 128 levels or more, a `\u` escape that is half a surrogate pair, and an
/// object with a key twice.
///
/// ```
/// use mmf::{json::validate_json, Error};
/// validate_json(r#"{"id": 18446744073709551615, "x": 1e300}"#)?;
/// let err = validate_json(r#"{"id": 18446744073709551616}"#).unwrap_err();
/// assert!(matches!(err, Error::InvalidJson { line: 1, column: 8, .. }), "{err}");
/// # Ok::<(), mmf::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::InvalidJson`], with the line and column, for text that is not one JSON document and
/// for what the paragraph above refuses (quoting at most the start of a long key or number);
/// [`Error::OutOfMemory`] where this process cannot allocate the room that finding a key given
/// twice takes (about 50 bytes a key of the largest object).
pub fn validate_json(json: &str) -> Result<()> {
    // Syntax first, so that the integer scan sees valid JSON; then numbers, with a message of
    // their own at the number's start; then depth and escapes.
    let mut de = serde_json::Deserializer::from_str(json);
    <serde::de::IgnoredAny as serde::Deserialize>::deserialize(&mut de)
        .map_err(|e| Error::json_in(&e, json))?;
    de.end().map_err(|e| Error::json_in(&e, json))?;
    check_integers(json)?;
    let mut de = serde_json::Deserializer::from_str(json);
    let no_room = std::cell::Cell::new(0);
    serde::de::DeserializeSeed::deserialize(Checked { no_room: &no_room }, &mut de).map_err(
        |e| match no_room.get() {
            0 => Error::json_in(&e, json),
            bytes => Error::OutOfMemory {
                what: "the keys of an object, kept to find one given twice",
                bytes,
            },
        },
    )?;
    Ok(())
}

/// Whether `text` is a JSON object or array (surrounding whitespace allowed): text that was
/// most likely published as text by mistake (`mmf out NAME '{...}'` without `--json`,
/// `publish_str` of JSON), which errors about such a value point out.
///
/// ```
/// use mmf::json::looks_like_json;
/// assert!(looks_like_json(" {\"threads\": 8}\n"));
/// assert!(looks_like_json("[1, 2]"));
/// assert!(!looks_like_json("42"));   // a number is as likely plain text
/// assert!(!looks_like_json("{not json}"));
/// ```
pub fn looks_like_json(text: &str) -> bool {
    let text = text.trim();
    (text.starts_with('{') || text.starts_with('['))
        && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

/// JSON text on one line: checked as [`validate_json`] checks it, then stripped of the
/// whitespace between its tokens. Nothing else changes: numbers, escapes and the order of keys
/// stay as written. For printing JSON text another process stored as one line (NDJSON).
///
/// ```
/// let text = "{\n  \"a\": [1, 2.50],\n  \"b\": \"x y\\\" z\"\n}";
/// assert_eq!(mmf::json::compact_json(text)?, r#"{"a":[1,2.50],"b":"x y\" z"}"#);
/// assert!(mmf::json::compact_json(r#"{"a": 1, "a": 2}"#).is_err());
/// # Ok::<(), mmf::Error>(())
/// ```
///
/// # Errors
///
/// As [`validate_json`], and [`Error::OutOfMemory`] where this process cannot allocate the
/// result.
pub fn compact_json(json: &str) -> Result<String> {
    validate_json(json)?;
    // Never longer than the text: no growth past this.
    let mut out = String::new();
    out.try_reserve(json.len())
        .map_err(|_| Error::OutOfMemory {
            what: "the JSON text on one line",
            bytes: json.len(),
        })?;
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            in_string = c == '"';
            out.push(c);
        }
    }
    Ok(out)
}

/// The scalar methods of a JSON visitor that keeps nothing of a scalar (`Checked`,
/// `CountSeed`): each one `Ok(())`.
macro_rules! ignore_scalars {
    () => {
        fn visit_bool<E>(self, _: bool) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> std::result::Result<(), E> {
            Ok(())
        }
    };
}

/// Every part of a JSON document parsed and dropped: unlike `IgnoredAny`, which serde_json skips
/// without counting depth or decoding escapes, this meets serde_json's nesting limit (128 levels)
/// and its checks of `\u` escapes (a lone surrogate), as the transcoding after it will; and it
/// refuses an object with a key twice. The keys of an object are kept to find a second one, as
/// borrowed from the text where they have no escapes, in a set that asks for its room: where it
/// is refused, `no_room` is set to the bytes asked for and the walk ends (a review: another
/// process's object of 5 million keys aborted a reader under a memory limit).
#[derive(Clone, Copy)]
struct Checked<'a> {
    no_room: &'a std::cell::Cell<usize>,
}

impl<'de> serde::de::DeserializeSeed<'de> for Checked<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Checked<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    ignore_scalars!();
    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<(), A::Error> {
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<(), A::Error> {
        // A key given twice would reach MessagePack twice (the transcoding streams), where reading
        // it back as JSON would have to drop one of them.
        let mut keys = std::collections::HashSet::new();
        while let Some(key) = map.next_key_seed(KeyText)? {
            map.next_value_seed(self)?;
            if keys.try_reserve(1).is_err() {
                self.no_room
                    .set((keys.len() + 1).saturating_mul(2 * std::mem::size_of::<Cow<'de, str>>()));
                return Err(serde::de::Error::custom("no room for the keys"));
            }
            if let Some(key) = keys.replace(key) {
                return Err(serde::de::Error::custom(format!(
                    "the key {} appears twice in one object",
                    quoted_key(&key)
                )));
            }
        }
        Ok(())
    }
}

/// A JSON object's key, borrowed from the text where it has no escapes.
struct KeyText;

impl<'de> serde::de::DeserializeSeed<'de> for KeyText {
    type Value = Cow<'de, str>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for KeyText {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string key")
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> std::result::Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(s))
    }
    fn visit_str<E>(self, s: &str) -> std::result::Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> std::result::Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(s))
    }
}

/// A key for a message: quoted and escaped as Rust's `{:?}` writes it (no control character
/// reaches a terminal), cut to [`MAX_KEY_TEXT`] bytes with a trailing `…` (a review: two equal
/// keys of a megabyte each made a one-line diagnostic of 6 MB).
fn quoted_key(key: &str) -> String {
    crate::error::brief(format!("{key:?}"), MAX_KEY_TEXT)
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
                // A number of a million digits is quoted by its start.
                let shown = || crate::error::brief(token.to_owned(), MAX_KEY_TEXT);
                let message = if !token.contains(['.', 'e', 'E']) {
                    (token.parse::<i64>().is_err() && token.parse::<u64>().is_err()).then(|| {
                        format!(
                            "the integer {} does not fit in 64 bits, the largest integers MessagePack \
                             holds (as a string, or with a fraction or exponent as a float, it would)",
                            shown()
                        )
                    })
                } else {
                    // The validating pass skips numbers without converting them.
                    token
                        .parse::<f64>()
                        .map_or(true, |f| f.is_infinite())
                        .then(|| {
                            format!(
                                "the number {} is beyond the range of a 64-bit float",
                                shown()
                            )
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

/// Transcodes one JSON document into MessagePack written to `out`. It checks only what the
/// parser checks: validate first with [`validate_json`], which also refuses an integer beyond
/// 64 bits (made a float here) and a key given twice (passed on here), and gives the position
/// of an error.
///
/// # Errors
///
/// [`Error::Encode`], with the parser's message alone (no position), for JSON it refuses;
/// [`Error::Write`], holding the OS error, for a write to `out` that failed (a
/// closed pipe stays a [`BrokenPipe`](io::ErrorKind::BrokenPipe), as with
/// [`write_json_pretty`]); [`Error::InvalidJson`] for text after the document;
/// [`Error::OutOfMemory`] where the lengths of its arrays and objects, counted first (4 bytes
/// each), find no room. Text that does not parse writes nothing (it is read whole before the
/// first byte is written); a write that failed leaves what was written before it in `out`.
pub fn write_json_as_msgpack<W: io::Write>(json: &str, out: W) -> Result<()> {
    // JSON gives no length before an array or object ends, and MessagePack wants it first:
    // counted in a pass of their own (what rmp-serde would otherwise buffer, each container
    // copied once per level it is nested in, by a growth that aborts where memory is short),
    // then written straight to `out`, as rmp-serde writes each value.
    let mut counts = Counts::default();
    // Room for every container the text opens, asked for at once: grown one at a time, the
    // list would hold up to twice its size while it moves.
    let containers = containers(json);
    if counts.lens.try_reserve_exact(containers).is_err() {
        return Err(Error::OutOfMemory {
            what: LENGTHS,
            bytes: containers.saturating_mul(size_of::<u32>()),
        });
    }
    let mut de = serde_json::Deserializer::from_str(json);
    let counted = serde::de::DeserializeSeed::deserialize(CountSeed(&mut counts), &mut de);
    if let Some(bytes) = counts.refused {
        return Err(Error::OutOfMemory {
            what: LENGTHS,
            bytes,
        });
    }
    counted.map_err(|e| Error::Encode(message_alone(&e)))?;
    de.end().map_err(|e| Error::json(&e))?;
    let mut de = serde_json::Deserializer::from_str(json);
    let mut emit = Emit {
        counts: counts.lens.iter(),
        out,
        error: None,
    };
    let emitted = serde::de::DeserializeSeed::deserialize(EmitSeed(&mut emit), &mut de);
    match (emitted, emit.error) {
        (_, Some(e)) => Err(Error::Write(e)),
        (Err(e), None) => Err(Error::Encode(message_alone(&e))),
        (Ok(()), None) => Ok(()),
    }
}

/// What [`write_json_as_msgpack`] counts first, for [`Error::OutOfMemory`].
const LENGTHS: &str = "the lengths of the JSON text's arrays and objects";

/// A parser's error without its position (`... at line 1 column 5`), which the callers of
/// [`write_json_as_msgpack`] give of their own after [`validate_json`].
fn message_alone(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match (e.line(), text.rfind(" at line ")) {
        (1.., Some(at)) => text[..at].to_owned(),
        _ => text,
    }
}

/// How many arrays and objects JSON text opens, as far as its brackets outside strings tell (for
/// text that is not valid JSON, a guess: the counting that follows refuses it).
fn containers(json: &str) -> usize {
    let (mut n, mut in_string, mut escaped) = (0, false, false);
    for &b in json.as_bytes() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else if b == b'[' || b == b'{' {
            n += 1;
        }
    }
    n
}

/// The element counts of a JSON document's arrays and objects, in the order they open.
#[derive(Default)]
struct Counts {
    /// At most 2^32 - 1 each: MessagePack's largest array or map.
    lens: Vec<u32>,
    /// The length a count refused room by the allocator would have made the list.
    refused: Option<usize>,
}

/// Counts the containers of one JSON value into [`Counts`].
struct CountSeed<'a>(&'a mut Counts);

impl<'de> serde::de::DeserializeSeed<'de> for CountSeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl CountSeed<'_> {
    /// A place in the list for the container that opens now, filled in when it ends.
    fn open<E: serde::de::Error>(&mut self) -> std::result::Result<usize, E> {
        let counts = &mut *self.0;
        if counts.lens.try_reserve(1).is_err() {
            counts.refused = Some(counts.lens.len().saturating_add(1) * size_of::<u32>());
            return Err(E::custom("out of memory"));
        }
        counts.lens.push(0);
        Ok(counts.lens.len() - 1)
    }
}

impl<'de> serde::de::Visitor<'de> for CountSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    ignore_scalars!();
    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        mut self,
        mut seq: A,
    ) -> std::result::Result<(), A::Error> {
        let at = self.open()?;
        let mut n = 0u32;
        while seq.next_element_seed(CountSeed(self.0))?.is_some() {
            n = n.checked_add(1).ok_or_else(too_many)?;
        }
        self.0.lens[at] = n;
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        mut self,
        mut map: A,
    ) -> std::result::Result<(), A::Error> {
        let at = self.open()?;
        let mut n = 0u32;
        while map.next_key::<serde::de::IgnoredAny>()?.is_some() {
            map.next_value_seed(CountSeed(self.0))?;
            n = n.checked_add(1).ok_or_else(too_many)?;
        }
        self.0.lens[at] = n;
        Ok(())
    }
}

/// More elements in one array or object than MessagePack can say (2^32 - 1).
fn too_many<E: serde::de::Error>() -> E {
    E::custom("more than 2^32 - 1 elements in one array or object, more than MessagePack holds")
}

/// Writes a JSON document as MessagePack, with the container lengths [`Counts`] found.
struct Emit<'a, W> {
    counts: std::slice::Iter<'a, u32>,
    out: W,
    /// The first error of `out`, kept whole (the parser carries errors as text).
    error: Option<io::Error>,
}

impl<W: io::Write> Emit<'_, W> {
    /// `r`, a write's result, as the parser's error type, keeping an OS error.
    fn wrote<E: serde::de::Error, T>(
        &mut self,
        r: std::result::Result<T, rmp::encode::ValueWriteError<io::Error>>,
    ) -> std::result::Result<(), E> {
        match r {
            Ok(_) => Ok(()),
            Err(
                rmp::encode::ValueWriteError::InvalidMarkerWrite(e)
                | rmp::encode::ValueWriteError::InvalidDataWrite(e),
            ) => {
                let message = e.to_string();
                self.error.get_or_insert(e);
                Err(E::custom(message))
            }
        }
    }

    /// The length counted for the container that opens now.
    fn len<E: serde::de::Error>(&mut self) -> std::result::Result<u32, E> {
        self.counts
            .next()
            .copied()
            .ok_or_else(|| E::custom("the text changed between its two readings"))
    }
}

/// Writes one JSON value as MessagePack through [`Emit`].
struct EmitSeed<'a, 'b, W>(&'a mut Emit<'b, W>);

impl<'de, W: io::Write> serde::de::DeserializeSeed<'de> for EmitSeed<'_, '_, W> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, W: io::Write> serde::de::Visitor<'de> for EmitSeed<'_, '_, W> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    // Each as rmp-serde's serializer writes it: the smallest marker that holds an integer.
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> std::result::Result<(), E> {
        let r = rmp::encode::write_bool(&mut self.0.out, v)
            .map_err(rmp::encode::ValueWriteError::InvalidMarkerWrite);
        self.0.wrote(r)
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<(), E> {
        let r = rmp::encode::write_sint(&mut self.0.out, v);
        self.0.wrote(r)
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<(), E> {
        let r = rmp::encode::write_uint(&mut self.0.out, v);
        self.0.wrote(r)
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> std::result::Result<(), E> {
        let r = rmp::encode::write_f64(&mut self.0.out, v);
        self.0.wrote(r)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<(), E> {
        let r = rmp::encode::write_str(&mut self.0.out, v);
        self.0.wrote(r)
    }
    fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<(), E> {
        let r = rmp::encode::write_nil(&mut self.0.out)
            .map_err(rmp::encode::ValueWriteError::InvalidMarkerWrite);
        self.0.wrote(r)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<(), A::Error> {
        let n = self.0.len()?;
        let r = rmp::encode::write_array_len(&mut self.0.out, n);
        self.0.wrote(r)?;
        let mut seen = 0u32;
        while seq.next_element_seed(EmitSeed(&mut *self.0))?.is_some() {
            seen += 1;
        }
        same_len(n, seen)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<(), A::Error> {
        let n = self.0.len()?;
        let r = rmp::encode::write_map_len(&mut self.0.out, n);
        self.0.wrote(r)?;
        let mut seen = 0u32;
        while map.next_key_seed(EmitSeed(&mut *self.0))?.is_some() {
            map.next_value_seed(EmitSeed(&mut *self.0))?;
            seen += 1;
        }
        same_len(n, seen)
    }
}

/// Whether a container had as many elements when it was written as when it was counted (one
/// text read twice: always, unless the parser is not deterministic).
fn same_len<E: serde::de::Error>(counted: u32, written: u32) -> std::result::Result<(), E> {
    if counted == written {
        Ok(())
    } else {
        Err(E::custom("the text changed between its two readings"))
    }
}

/// JSON text to a MessagePack document.
///
/// ```
/// let mp = mmf::json::json_to_msgpack(r#"{"n": 18446744073709551615}"#)?;
/// assert_eq!(mmf::json::msgpack_to_json(&mp)?, r#"{"n":18446744073709551615}"#);
/// # Ok::<(), mmf::Error>(())
/// ```
///
/// # Errors
///
/// As [`validate_json`], and [`Error::OutOfMemory`] where this process cannot allocate the
/// result.
pub fn json_to_msgpack(json: &str) -> Result<Vec<u8>> {
    validate_json(json)?;
    let what = "the MessagePack of the JSON text";
    let mut out = TryVec::with_capacity(json.len(), what)?;
    let written = write_json_as_msgpack(json, &mut out);
    out.into_result(written)
}

/// A MessagePack document to JSON text on one line.
///
/// ```
/// use mmf::json::{json_to_msgpack, msgpack_to_json, msgpack_to_json_pretty};
/// let mp = json_to_msgpack(r#"{"step": 10, "tags": ["a", "b"]}"#)?;
/// assert_eq!(msgpack_to_json(&mp)?, r#"{"step":10,"tags":["a","b"]}"#);
/// assert!(msgpack_to_json_pretty(&mp)?.starts_with("{\n  \"step\": 10,"));
/// // Two keys that would read the same in JSON ({1: .., "1": ..}) are an error, not a lost entry:
/// assert!(msgpack_to_json(&[0x82, 0x01, 0xc0, 0xa1, b'1', 0xc0]).is_err());
/// # Ok::<(), mmf::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::InvalidMsgpack`] for bytes that are not one valid MessagePack document,
/// [`Error::NotJson`] for one that JSON cannot show (see the module docs), and
/// [`Error::OutOfMemory`] where this process cannot allocate the text.
pub fn msgpack_to_json(bytes: &[u8]) -> Result<String> {
    to_json_string(bytes, false)
}

/// [`msgpack_to_json`], indented (as serde_json's `to_string_pretty` indents).
///
/// # Errors
///
/// As [`msgpack_to_json`].
pub fn msgpack_to_json_pretty(bytes: &[u8]) -> Result<String> {
    to_json_string(bytes, true)
}

fn to_json_string(bytes: &[u8], pretty: bool) -> Result<String> {
    let what = "the JSON text of the value";
    let mut out = TryVec::with_capacity(bytes.len().saturating_mul(2).min(1 << 20), what)?;
    let written = write_as_json(bytes, pretty, &mut out);
    // Every byte written came from `str`s, the formatter's ASCII and base64.
    String::from_utf8(out.into_result(written)?).map_err(|e| Error::Encode(e.to_string()))
}

/// JSON text indented (as serde_json's `to_string_pretty` indents), after checking it as
/// [`validate_json`] does. It is rendered as it is read, with no tree of the value in memory,
/// into a string whose room is asked for, not assumed: the indented text of a deeply nested
/// value is many times its size (each line of a value nested 127 deep starts with 254
/// spaces), and text another process stored may be most of the memory at hand. Numbers and
/// strings read as serde_json writes them: `2.50` becomes `2.5`, `"\u00e9"` becomes `"é"`.
///
/// ```
/// let text = r#"{"a":[1,2.50],"b":"x"}"#;
/// assert_eq!(mmf::json::pretty_json(text)?, "{\n  \"a\": [\n    1,\n    2.5\n  ],\n  \"b\": \"x\"\n}");
/// assert!(mmf::json::pretty_json(r#"{"a": 1, "a": 2}"#).is_err());
/// # Ok::<(), mmf::Error>(())
/// ```
///
/// # Errors
///
/// As [`validate_json`], and [`Error::OutOfMemory`] where this process cannot allocate the
/// result.
pub fn pretty_json(json: &str) -> Result<String> {
    let what = "the JSON text indented";
    let mut out = TryVec::with_capacity(json.len().saturating_mul(2).min(1 << 20), what)?;
    let written = write_json_pretty(json, &mut out);
    // Every byte written came from `str`s and the formatter's ASCII.
    String::from_utf8(out.into_result(written)?).map_err(|e| Error::Encode(e.to_string()))
}

/// A `Vec` that asks the allocator for its room instead of assuming it: a write the allocator
/// refuses fails (and is said as [`Error::OutOfMemory`]), where a `Vec`'s own growth would
/// abort the process. A rendering of a value another process stored can take several times its
/// size, and the value may be most of the memory at hand.
pub(crate) struct TryVec {
    buf: Vec<u8>,
    what: &'static str,
    /// The length a refused write would have made.
    refused: Option<usize>,
}

impl TryVec {
    /// An empty buffer with room for `len` bytes, for making `what`.
    pub(crate) fn with_capacity(len: usize, what: &'static str) -> Result<TryVec> {
        let mut buf = Vec::new();
        buf.try_reserve(len)
            .map_err(|_| Error::OutOfMemory { what, bytes: len })?;
        Ok(TryVec {
            buf,
            what,
            refused: None,
        })
    }

    /// The bytes written, or the writer's error: [`Error::OutOfMemory`] where a write was
    /// refused room, whatever error that made the writer give.
    pub(crate) fn into_result(self, written: Result<()>) -> Result<Vec<u8>> {
        match (self.refused, written) {
            (Some(bytes), _) => Err(Error::OutOfMemory {
                what: self.what,
                bytes,
            }),
            (None, Err(e)) => Err(e),
            (None, Ok(())) => Ok(self.buf),
        }
    }
}

impl io::Write for TryVec {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write_all(data)?;
        Ok(data.len())
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        try_extend(&mut self.buf, data, &mut self.refused)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Appends `data` to `buf` where the allocator gives the room; else sets `refused` to the
/// length it would have made and fails with `OutOfMemory`, `buf` as it was. (What [`TryVec`]
/// and a typed publish's encoding buffer write with.)
#[inline]
pub(crate) fn try_extend(
    buf: &mut Vec<u8>,
    data: &[u8],
    refused: &mut Option<usize>,
) -> io::Result<()> {
    if buf.try_reserve(data.len()).is_err() {
        *refused = Some(buf.len().saturating_add(data.len()));
        return Err(io::ErrorKind::OutOfMemory.into());
    }
    buf.extend_from_slice(data);
    Ok(())
}

/// Writes a MessagePack document as JSON text on one line to `out`, by the rules of the module
/// docs, as it goes: the memory it takes beside `out` is the document's map keys (to refuse
/// duplicates) and one entry per open container, not a tree of the value.
///
/// The document is checked whole before anything is written: invalid MessagePack writes nothing.
/// A map with two keys that read the same in JSON is refused when the map ends, after the text
/// before it was written.
///
/// # Errors
///
/// As [`msgpack_to_json`], and [`Error::Write`] if writing to `out` fails.
pub fn write_msgpack_as_json<W: io::Write>(bytes: &[u8], out: W) -> Result<()> {
    write_as_json(bytes, false, out)
}

/// [`write_msgpack_as_json`], indented (as serde_json's `to_writer_pretty` indents).
///
/// # Errors
///
/// As [`write_msgpack_as_json`].
pub fn write_msgpack_as_json_pretty<W: io::Write>(bytes: &[u8], out: W) -> Result<()> {
    write_as_json(bytes, true, out)
}

fn write_as_json<W: io::Write>(bytes: &[u8], pretty: bool, mut out: W) -> Result<()> {
    msgpack::check(bytes)?;
    if pretty {
        transcode(bytes, &mut PrettyFormatter::new(), &mut out, true)?;
    } else {
        transcode(bytes, &mut CompactFormatter, &mut out, true)?;
    }
    Ok(())
}

/// Writes JSON text to `out` indented, as it is read (no tree of the value in memory), after
/// checking it as [`validate_json`] does: invalid text writes nothing.
///
/// ```
/// let mut out = Vec::new();
/// mmf::json::write_json_pretty(r#"{"a":[1,2]}"#, &mut out)?;
/// assert_eq!(String::from_utf8(out).unwrap(), "{\n  \"a\": [\n    1,\n    2\n  ]\n}");
/// # Ok::<(), mmf::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::InvalidJson`] as [`validate_json`] gives it, with nothing written;
/// [`Error::Write`] if writing to `out` fails.
pub fn write_json_pretty<W: io::Write>(json: &str, out: W) -> Result<()> {
    validate_json(json)?;
    let mut de = serde_json::Deserializer::from_str(json);
    // serde_transcode hands the serializer's errors back through the deserializer as text: the
    // writer keeps its own, so that a closed pipe stays an `io::Error` the caller can tell.
    let mut out = KeepError { out, error: None };
    let mut ser = serde_json::Serializer::pretty(&mut out);
    let result = serde_transcode::transcode(&mut de, &mut ser);
    match (result, out.error) {
        (Ok(()), _) => Ok(()),
        (Err(_), Some(e)) => Err(Error::Write(e)),
        (Err(e), None) => Err(Error::Encode(e.to_string())),
    }
}

/// A writer that keeps the first error of the writer it wraps.
struct KeepError<W> {
    out: W,
    error: Option<io::Error>,
}

impl<W: io::Write> io::Write for KeepError<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf).map_err(|e| self.keep(e))
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.out.write_all(buf).map_err(|e| self.keep(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush().map_err(|e| self.keep(e))
    }
}

impl<W> KeepError<W> {
    /// Keeps `e` itself (its errno too) if it is the first, and gives the serializer a copy of
    /// its kind and text.
    fn keep(&mut self, e: io::Error) -> io::Error {
        let handed = io::Error::new(e.kind(), e.to_string());
        if self.error.is_none() {
            self.error = Some(e);
        }
        handed
    }
}

/// A MessagePack document to a `serde_json::Value`, by the rules of the module docs.
///
/// A map's keys keep their MessagePack order where serde_json's `preserve_order` feature is on
/// in the build (the `mmf` command turns it on); mmf does not turn it on for its library users,
/// whose `serde_json::Map` it would change: keys come sorted there. [`msgpack_to_json`] keeps
/// the order in either build.
///
/// # Errors
///
/// As [`msgpack_to_json`].
pub fn msgpack_to_value(bytes: &[u8]) -> Result<Json> {
    let text = msgpack_to_json(bytes)?;
    // Its numbers are exact. Its depth is at most `MAX_DEPTH` + 2 (a `$ext` rendering at the
    // deepest level), which may pass serde_json's limit of 127 but is bounded: lifting the limit
    // cannot overflow the stack.
    let mut de = serde_json::Deserializer::from_str(&text);
    de.disable_recursion_limit();
    <Json as serde::Deserialize>::deserialize(&mut de).map_err(|e| Error::Encode(e.to_string()))
}

/// Checks that `bytes` are one MessagePack document that mmf reads (see [`MAX_DEPTH`] and
/// docs/FORMAT.md §7.1), without rendering it: a value JSON cannot show as it is (map keys that
/// collide once rendered) is still valid MessagePack.
///
/// ```
/// use mmf::json::check_msgpack;
/// check_msgpack(&[0x82, 0x01, 0xc0, 0xa1, b'1', 0xc0])?; // {1: nil, "1": nil}
/// assert!(check_msgpack(&[0x92, 0x01]).is_err()); // an array of 2 with 1 item
/// # Ok::<(), mmf::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::InvalidMsgpack`], saying why, for bytes that are not one such document.
pub fn check_msgpack(bytes: &[u8]) -> Result<()> {
    msgpack::check(bytes)
}

/// An open array or map while transcoding.
struct Open {
    map: bool,
    /// Byte offset of the container in the document, for messages.
    at: usize,
    /// Items written so far (a map's keys and values each count).
    done: u64,
    /// Items in all.
    items: u64,
    /// Index in `keys` of this map's first key.
    keys_from: usize,
}

/// Transcodes the checked document at the start of `bytes` and returns its length. `dedup`:
/// refuse maps with two keys of the same text (off when rendering a non-string key, whose text
/// is only a label and may be cut).
fn transcode<F: Formatter, W: io::Write + ?Sized>(
    bytes: &[u8],
    f: &mut F,
    out: &mut W,
    dedup: bool,
) -> Result<usize> {
    let mut r = msgpack::Reader::new(bytes);
    let mut stack: Vec<Open> = Vec::new();
    // The text of every key of the open maps, and where each one is in it.
    let mut key_text = String::new();
    let mut keys: Vec<(usize, usize)> = Vec::new();
    loop {
        let at = r.pos();
        let head = r.head()?;
        if let Some(o) = stack.last() {
            let first = o.done == 0;
            if !o.map {
                f.begin_array_value(out, first).map_err(Error::Write)?;
            } else if o.done % 2 == 0 {
                // A key: its text, written as a JSON string and kept to find duplicates.
                let utf8 = match head {
                    Head::Str(s) => std::str::from_utf8(s).ok(),
                    _ => None,
                };
                let text = match utf8 {
                    Some(s) => Cow::Borrowed(s),
                    None => {
                        // The whole key, whatever it is, rendered on its own (in one walk: a
                        // separate skip per level of keys within keys would walk a deep key's
                        // bytes twice as often).
                        let (text, len) = render_key(&bytes[at..])?;
                        r.seek(at + len);
                        Cow::Owned(text)
                    }
                };
                f.begin_object_key(out, first).map_err(Error::Write)?;
                write_str(&text, out)?;
                f.end_object_key(out).map_err(Error::Write)?;
                f.begin_object_value(out).map_err(Error::Write)?;
                if dedup {
                    // Room asked for, not taken: a peer's map of millions of keys fails the
                    // read under a memory limit, where growth would abort the process (a
                    // review).
                    let no_room = |bytes: usize| Error::OutOfMemory {
                        what: "the keys of a map, kept to find one given twice",
                        bytes,
                    };
                    key_text
                        .try_reserve(text.len())
                        .map_err(|_| no_room(key_text.len().saturating_add(text.len())))?;
                    keys.try_reserve(1).map_err(|_| {
                        no_room((keys.len() + 1).saturating_mul(2 * std::mem::size_of::<usize>()))
                    })?;
                    let start = key_text.len();
                    key_text.push_str(&text);
                    keys.push((start, key_text.len()));
                }
                if let Some(o) = stack.last_mut() {
                    o.done += 1;
                }
                continue;
            }
        }
        let items = match head {
            Head::Array(n) => {
                f.begin_array(out).map_err(Error::Write)?;
                u64::from(n)
            }
            Head::Map(n) => {
                f.begin_object(out).map_err(Error::Write)?;
                2 * u64::from(n)
            }
            scalar => {
                write_scalar(scalar, f, out)?;
                0
            }
        };
        if items > 0 {
            stack.push(Open {
                map: matches!(head, Head::Map(_)),
                at,
                done: 0,
                items,
                keys_from: keys.len(),
            });
            continue;
        }
        if let Head::Array(_) = head {
            f.end_array(out).map_err(Error::Write)?;
        } else if let Head::Map(_) = head {
            f.end_object(out).map_err(Error::Write)?;
        }
        // An item is complete: end it in its container, and close every container it completes.
        loop {
            let Some(o) = stack.last_mut() else {
                return Ok(r.pos());
            };
            if o.map {
                f.end_object_value(out).map_err(Error::Write)?;
            } else {
                f.end_array_value(out).map_err(Error::Write)?;
            }
            o.done += 1;
            if o.done < o.items {
                break;
            }
            let (map, map_at, keys_from) = (o.map, o.at, o.keys_from);
            stack.pop();
            if map {
                f.end_object(out).map_err(Error::Write)?;
                check_keys(&mut keys[keys_from..], &key_text, map_at)?;
                if let Some(&(start, _)) = keys.get(keys_from) {
                    key_text.truncate(start);
                }
                keys.truncate(keys_from);
            } else {
                f.end_array(out).map_err(Error::Write)?;
            }
        }
    }
}

/// Refuses two equal keys among one map's (`keys` are spans of `text`; their order is lost).
fn check_keys(keys: &mut [(usize, usize)], text: &str, at: usize) -> Result<()> {
    keys.sort_unstable_by(|a, b| text[a.0..a.1].cmp(&text[b.0..b.1]));
    match keys
        .windows(2)
        .find(|w| text[w[0].0..w[0].1] == text[w[1].0..w[1].1])
    {
        None => Ok(()),
        Some(w) => Err(Error::NotJson(format!(
            "the map at byte {at} has two keys that both read {} in JSON, where an object holds \
             each key once; read the value's bytes to see both",
            quoted_key(&text[w[0].0..w[0].1])
        ))),
    }
}

/// The compact JSON text of the non-string map key at the start of `bytes`, cut at a character
/// boundary to [`MAX_KEY_TEXT`] bytes (only that much is kept while rendering it), and the key's
/// length in bytes.
fn render_key(bytes: &[u8]) -> Result<(String, usize)> {
    let mut capped = Capped {
        buf: Vec::with_capacity(MAX_KEY_TEXT + 1),
        total: 0,
    };
    let len = transcode(bytes, &mut CompactFormatter, &mut capped, false)?;
    let valid = match std::str::from_utf8(&capped.buf) {
        Ok(s) => s,
        // The cap can split a character; the part before it is what counts.
        Err(e) => std::str::from_utf8(&capped.buf[..e.valid_up_to()]).unwrap_or_default(),
    };
    let mut text = valid.to_owned();
    if capped.total > MAX_KEY_TEXT {
        let mut cut = MAX_KEY_TEXT - '…'.len_utf8();
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    Ok((text, len))
}

/// A writer that keeps the first `MAX_KEY_TEXT + 1` bytes and counts the rest.
struct Capped {
    buf: Vec<u8>,
    total: usize,
}

impl io::Write for Capped {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = (MAX_KEY_TEXT + 1).saturating_sub(self.buf.len());
        self.buf.extend_from_slice(&data[..data.len().min(room)]);
        self.total = self.total.saturating_add(data.len());
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes a value that is not a container.
fn write_scalar<F: Formatter, W: io::Write + ?Sized>(
    head: Head<'_>,
    f: &mut F,
    out: &mut W,
) -> Result<()> {
    let r = match head {
        Head::Nil => f.write_null(out),
        Head::Bool(b) => f.write_bool(out, b),
        Head::Uint(u) => f.write_u64(out, u),
        Head::Int(i) => f.write_i64(out, i),
        Head::F32(x) => return write_float(f64::from(x), f, out),
        Head::F64(x) => return write_float(x, f, out),
        // A MessagePack "string" that is not UTF-8 is rendered like binary, not dropped.
        Head::Str(s) => match std::str::from_utf8(s) {
            Ok(text) => return write_str(text, out),
            Err(_) => return write_tagged("$bin", s, None, f, out),
        },
        Head::Bin(b) => return write_tagged("$bin", b, None, f, out),
        Head::Ext(ty, data) => return write_tagged("$ext", data, Some(ty), f, out),
        Head::Array(_) | Head::Map(_) => Ok(()),
    };
    r.map_err(Error::Write)
}

fn write_str<W: io::Write + ?Sized>(text: &str, out: &mut W) -> Result<()> {
    serde_json::to_writer(&mut *out, text)
        .map_err(io::Error::from)
        .map_err(Error::Write)
}

/// A float as a JSON number, or as the string JSON uses by convention for a non-finite one.
fn write_float<F: Formatter, W: io::Write + ?Sized>(x: f64, f: &mut F, out: &mut W) -> Result<()> {
    if x.is_finite() {
        return f.write_f64(out, x).map_err(Error::Write);
    }
    write_str(
        if x.is_nan() {
            "NaN"
        } else if x > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        },
        out,
    )
}

/// `{"$bin": "<base64>"}`, or with `ext` `{"$ext": {"type": t, "data": "<base64>"}}`.
fn write_tagged<F: Formatter, W: io::Write + ?Sized>(
    tag: &str,
    data: &[u8],
    ext: Option<i8>,
    f: &mut F,
    out: &mut W,
) -> Result<()> {
    let w = |r: io::Result<()>| r.map_err(Error::Write);
    w(f.begin_object(out))?;
    w(f.begin_object_key(out, true))?;
    write_str(tag, out)?;
    w(f.end_object_key(out))?;
    w(f.begin_object_value(out))?;
    if let Some(ty) = ext {
        w(f.begin_object(out))?;
        w(f.begin_object_key(out, true))?;
        write_str("type", out)?;
        w(f.end_object_key(out))?;
        w(f.begin_object_value(out))?;
        w(f.write_i64(out, i64::from(ty)))?;
        w(f.end_object_value(out))?;
        w(f.begin_object_key(out, false))?;
        write_str("data", out)?;
        w(f.end_object_key(out))?;
        w(f.begin_object_value(out))?;
        w(write_base64_str(data, out))?;
        w(f.end_object_value(out))?;
        w(f.end_object(out))?;
    } else {
        w(write_base64_str(data, out))?;
    }
    w(f.end_object_value(out))?;
    w(f.end_object(out))
}

/// Standard base64 with padding (RFC 4648), for the `$bin` and `$ext` renderings.
pub fn base64(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len().div_ceil(3) * 4);
    write_base64(bytes, &mut out).expect("a Vec takes every write");
    String::from_utf8(out).expect("base64 is ASCII")
}

/// Bytes as mmf shows them in JSON, `{"$bin":"<base64>"}` (as [`msgpack_to_json`] shows a
/// MessagePack binary, and `mmf read` and `watch` a bytes value), in a string whose room is
/// asked for first.
///
/// ```
/// assert_eq!(mmf::json::bytes_to_json(b"\x00\xff")?, r#"{"$bin":"AP8="}"#);
/// # Ok::<(), mmf::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::OutOfMemory`] where this process cannot allocate the string.
pub fn bytes_to_json(bytes: &[u8]) -> Result<String> {
    const HEAD: &[u8] = br#"{"$bin":""#;
    const TAIL: &[u8] = br#""}"#;
    let len = bytes
        .len()
        .div_ceil(3)
        .saturating_mul(4)
        .saturating_add(HEAD.len() + TAIL.len());
    let mut out = TryVec::with_capacity(len, "the JSON of the bytes")?;
    let written = io::Write::write_all(&mut out, HEAD)
        .and_then(|()| write_base64(bytes, &mut out))
        .and_then(|()| io::Write::write_all(&mut out, TAIL))
        .map_err(Error::Write);
    let out = out.into_result(written)?;
    Ok(String::from_utf8(out).expect("base64 and the braces are ASCII"))
}

/// `bytes` in base64 between double quotes: a JSON string (base64 needs no escapes).
fn write_base64_str<W: io::Write + ?Sized>(bytes: &[u8], out: &mut W) -> io::Result<()> {
    out.write_all(b"\"")?;
    write_base64(bytes, out)?;
    out.write_all(b"\"")
}

/// Writes `bytes` in standard base64 with padding (RFC 4648) to `out`, a piece at a time: a
/// large binary is not made into one string first.
fn write_base64<W: io::Write + ?Sized>(bytes: &[u8], out: &mut W) -> io::Result<()> {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut piece = [0u8; 1024];
    for input in bytes.chunks(piece.len() / 4 * 3) {
        let mut n = 0;
        for chunk in input.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                piece[n] = if i <= chunk.len() {
                    ABC[(v >> (18 - 6 * i) & 63) as usize]
                } else {
                    b'='
                };
                n += 1;
            }
        }
        out.write_all(&piece[..n])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pretty_json` lays text out as serde_json's `to_string_pretty` of its `Value` does
    /// (which `read_json_pretty` used before it rendered as it reads), keys in their order.
    #[test]
    fn pretty_json_indents_as_a_value_would_be() {
        for text in [
            "0",
            "-0",
            "[]",
            "{}",
            r#"{"z": [], "a": {}, "m": [1, -2, 2.50, 1e2, 18446744073709551615]}"#,
            r#"["\u00e9\ud83d\ude00", "tab\there", "quote\"", null, true, false]"#,
            r#"[[[[{"deep": [0.1, 1.7976931348623157e308, -9223372036854775808]}]]]]"#,
        ] {
            let value: Json = serde_json::from_str(text).unwrap();
            let expected = serde_json::to_string_pretty(&value).unwrap();
            assert_eq!(pretty_json(text).unwrap(), expected, "{text}");
        }
        assert!(matches!(pretty_json("[1,"), Err(Error::InvalidJson { .. })));
    }

    /// `EPIPE` (Linux, the BSDs and macOS alike).
    const EPIPE: i32 = 32;

    /// A writer whose reader has gone, as a closed pipe is.
    struct Closed;

    impl io::Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from_raw_os_error(EPIPE))
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A failed write is `Error::Write` with the OS error, from every function that
    /// writes to a caller's writer: `write_json_as_msgpack` made it `Encode` text, so a caller
    /// could not tell a closed pipe from JSON it refused.
    #[test]
    fn a_closed_writer_is_a_write_error_that_keeps_its_kind() {
        let kinds = [
            write_json_as_msgpack(r#"{"a": [1, 2]}"#, Closed),
            write_json_pretty(r#"{"a": [1, 2]}"#, Closed),
            write_msgpack_as_json(&[0x91, 0x01], Closed),
            write_msgpack_as_json_pretty(&[0x91, 0x01], Closed),
        ]
        .map(|r| match r {
            Err(Error::Write(e)) => Some((e.kind(), e.raw_os_error())),
            _ => None,
        });
        // The OS's error itself, errno and all.
        assert_eq!(kinds, [Some((io::ErrorKind::BrokenPipe, Some(EPIPE))); 4]);
    }

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

    /// Python writes NaN and Infinity into JSON unless told not to: the error says what they
    /// are, and only where the error is at one of them.
    #[test]
    fn nan_and_infinity_are_named_where_the_error_is_at_one() {
        for (json, line, column) in [
            ("{\"x\": NaN}", 1, 7),
            ("{\"x\": -Infinity}", 1, 8),
            ("[1,\n Infinity]", 2, 2),
        ] {
            match validate_json(json) {
                Err(Error::InvalidJson {
                    line: l,
                    column: c,
                    message,
                }) => {
                    assert_eq!((l, c), (line, column), "{json}");
                    assert!(message.contains("JSON has no NaN or Infinity"), "{message}");
                }
                other => panic!("{json}: {other:?}"),
            }
        }
        for json in ["[Nope]", "{\"NaN\": x}", "[1,]"] {
            let message = validate_json(json).unwrap_err().to_string();
            assert!(!message.contains("NaN or Infinity"), "{json}: {message}");
        }
        assert!(validate_json("[\"NaN\", \"Infinity\"]").is_ok());
    }

    /// A trailing comma in an object (serde_json says only that a key must be a string) is
    /// named; a key that is not a string is not taken for one.
    #[test]
    fn a_trailing_comma_in_an_object_is_named() {
        for json in ["{\"a\": 1,}", "{\"a\": 1 ,\n  }", "[{\"a\": {\"b\": 2,}}]"] {
            let message = validate_json(json).unwrap_err().to_string();
            assert!(message.contains("no trailing comma"), "{json}: {message}");
        }
        for json in ["{\"a\": 1, 2: 3}", "{1: 2}", "{,}"] {
            let message = validate_json(json).unwrap_err().to_string();
            assert!(!message.contains("trailing comma"), "{json}: {message}");
        }
    }

    /// A lone surrogate escape (what Python's json.dumps writes for a str from os.fsdecode)
    /// and nesting past the limit are said as such: serde_json called a trailing surrogate a
    /// "lone leading" one, a leading one "unexpected end of hex escape", and depth only
    /// "recursion limit exceeded".
    #[test]
    fn lone_surrogates_and_too_deep_nesting_are_named() {
        for json in [r#""name-\udcff""#, r#""\ud800""#, r#"["\uDBFF x"]"#] {
            let message = validate_json(json).unwrap_err().to_string();
            assert!(
                message.contains("escape without its pair: JSON text must be valid Unicode"),
                "{json}: {message}"
            );
        }
        assert!(validate_json(r#""\ud83d\ude00 \u00e9""#).is_ok());
        let deep = format!("{}{}", "[".repeat(128), "]".repeat(128));
        let message = validate_json(&deep).unwrap_err().to_string();
        assert!(
            message.contains("nested deeper than the 127 levels mmf reads"),
            "{message}"
        );
        let message = validate_json(r#""\u12""#).unwrap_err().to_string();
        assert!(!message.contains("without its pair"), "{message}");
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
                serde_json::from_str::<Json>(&msgpack_to_json(&mp).unwrap()).unwrap(),
                serde_json::from_str::<Json>(json).unwrap(),
                "{json}"
            );
        }
    }

    #[test]
    fn extremes_and_unicode_survive() {
        let json = r#"{"max":18446744073709551615,"min":-9223372036854775808,"f":1.5,"s":"héllo ✓ 😀","n":null,"a":[[],{},[1,[2,[3]]]],"t":true}"#;
        let mp = json_to_msgpack(json).unwrap();
        let back: Json = serde_json::from_str(&msgpack_to_json(&mp).unwrap()).unwrap();
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
        let json = msgpack_to_json(&bytes).unwrap();
        assert_eq!(
            json,
            r#"{"1":{"$bin":"AP8="},"x":{"$ext":{"type":5,"data":"AQID"}},"nan":"NaN","inf":"-Infinity","[true]":null}"#
        );
        // A "string" whose bytes are not UTF-8 (fixstr of 2 bytes): kept, as binary.
        assert_eq!(
            msgpack_to_json(&[0xa2, 0xff, 0xfe]).unwrap(),
            r#"{"$bin":"//4="}"#
        );
    }

    #[test]
    fn maps_nested_as_keys_cannot_blow_up() {
        // {{{…{nil: nil}…: nil}: nil}: nil}: 31 levels of maps as keys, 63 bytes (the fuzz
        // regression tests/hostile/regressions/codec-nested-map-keys, which tests/hostile.rs
        // runs). Each level used to escape the one below again, doubling the output: 2^32 bytes
        // of JSON.
        let mut bytes = vec![0x81; 31];
        bytes.extend(std::iter::repeat_n(0xc0, 32));
        let started = std::time::Instant::now();
        let json = msgpack_to_json(&bytes).unwrap();
        assert!(json.len() < 64 * MAX_KEY_TEXT, "{} bytes", json.len());
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        let pretty = msgpack_to_json_pretty(&bytes).unwrap();
        assert!(
            pretty.len() < 64 * MAX_KEY_TEXT * 2,
            "{} bytes",
            pretty.len()
        );
        // A short non-string key keeps its full text.
        let mut small = Vec::new();
        let v = rmpv::Value::Map(vec![(
            rmpv::Value::Array(vec![1.into(), "é".into()]),
            true.into(),
        )]);
        rmpv::encode::write_value(&mut small, &v).unwrap();
        assert_eq!(msgpack_to_json(&small).unwrap(), r#"{"[1,\"é\"]":true}"#);
        // A long key is cut at a character boundary: `["` and 125 two-byte characters, then `…`.
        let mut long = Vec::new();
        rmpv::encode::write_value(&mut long, &rmpv::Value::Array(vec!["é".repeat(200).into()]))
            .unwrap();
        let (text, len) = render_key(&long).unwrap();
        assert_eq!(len, long.len());
        assert_eq!(text.len(), MAX_KEY_TEXT - 1);
        assert!(text.starts_with("[\"éé") && text.ends_with("é…"), "{text}");
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
                matches!(msgpack_to_json(bad), Err(Error::InvalidMsgpack(_))),
                "{:x?}",
                &bad[..bad.len().min(8)]
            );
        }
    }
}
