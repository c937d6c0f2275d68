//! `mmf read NAME`: print the current value.

use mmf::{Location, Meta, Options, Tag};

use crate::args::{OutFormat, ReadArgs};
use crate::exit::{Coded, EMPTY, INVALID_INPUT};

pub fn run(a: ReadArgs) -> anyhow::Result<()> {
    let location = Location::parse(&a.name)?;
    // Read-only and unpinned: the cheapest open there is, and read permission is enough.
    let ch = Options::new().read_only(true).open(&location)?;
    let (meta, bytes) = ch.read_raw()?;
    if meta.is_empty() {
        return Err(Coded(
            EMPTY,
            format!("channel '{location}' holds no value yet; publish one with `mmf out {location} VALUE`"),
        )
        .into());
    }
    let out = render(&location, meta, bytes, &a)?;
    super::print_bytes(&out)
}

/// The bytes to print for a value, by the requested format.
fn render(
    location: &Location,
    meta: Meta,
    bytes: Vec<u8>,
    a: &ReadArgs,
) -> anyhow::Result<Vec<u8>> {
    let as_text = |bytes: Vec<u8>| -> anyhow::Result<Vec<u8>> {
        if a.pretty && meta.tag == Tag::JSON {
            let v: serde_json::Value = serde_json::from_slice(&bytes)?;
            return Ok(line(serde_json::to_string_pretty(&v)?.into_bytes(), false));
        }
        Ok(line(bytes, a.raw))
    };
    let as_json = |bytes: Vec<u8>| -> anyhow::Result<Vec<u8>> {
        Ok(line(
            mmf::json::msgpack_to_json(&bytes, a.pretty)?.into_bytes(),
            a.raw,
        ))
    };
    let mismatch = |wanted: &str| -> anyhow::Error {
        Coded(
            INVALID_INPUT,
            format!(
                "channel '{location}' holds a {} value (generation {}), not {wanted}; use --format auto",
                meta.tag, meta.generation
            ),
        )
        .into()
    };
    match (a.format, meta.tag) {
        (OutFormat::Auto | OutFormat::Text, Tag::TEXT | Tag::JSON) => as_text(bytes),
        (OutFormat::Auto | OutFormat::Json, Tag::MSGPACK) => as_json(bytes),
        (OutFormat::Json, Tag::JSON) => as_text(bytes),
        (OutFormat::Msgpack, Tag::MSGPACK) | (OutFormat::Bytes, _) => Ok(bytes),
        (OutFormat::Msgpack, Tag::JSON) => Ok(mmf::json::json_to_msgpack(
            std::str::from_utf8(&bytes).map_err(mmf::Error::from)?,
        )?),
        (OutFormat::Auto, _) => Ok(bytes),
        (OutFormat::Text, _) => Err(mismatch("text")),
        (OutFormat::Json, _) => Err(mismatch("MessagePack or JSON")),
        (OutFormat::Msgpack, _) => Err(mismatch("MessagePack")),
    }
}

/// Text ends with exactly the newline it had, or one added (unless `raw`).
fn line(mut bytes: Vec<u8>, raw: bool) -> Vec<u8> {
    if !raw && bytes.last() != Some(&b'\n') {
        bytes.push(b'\n');
    }
    bytes
}
