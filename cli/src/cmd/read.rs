//! `mmf read NAME`: print the current value, or wait for the next one.

use mmf::{Channel, Location, Meta, Options, Tag};

use crate::args::{OutFormat, ReadArgs};
use crate::exit::{Coded, EMPTY, INVALID_INPUT};
use crate::interrupt;

pub fn run(a: ReadArgs) -> anyhow::Result<()> {
    let location = Location::parse(&a.name)?;
    let waiting = a.wait || a.after.is_some();
    // Plain reads open read-only and unpinned: the cheapest open there is, and read permission
    // is enough. Waiting readers want a pin entry (to sleep on the futex instead of polling).
    let ch = if waiting {
        open_for_waiting(&location)?
    } else {
        Options::new().read_only(true).open(&location)?
    };
    if waiting {
        let since = a.after.unwrap_or_else(|| ch.generation());
        interrupt::wait_or_exit(&ch, since, a.timeout, || {
            format!(
                "no value newer than generation {since} of '{location}' came within the timeout"
            )
        })?;
    }
    let (meta, bytes) = ch.read_raw()?;
    if meta.is_empty() {
        return Err(Coded(
            EMPTY,
            format!("channel '{location}' holds no value yet; publish one with `mmf out {location} VALUE`, or wait with --wait"),
        )
        .into());
    }
    let out = render(&location, meta, bytes, a.format, a.pretty, a.raw)?;
    super::print_bytes(&out)
}

/// Opens read-write if allowed (a pin entry lets a waiter sleep on the futex), else read-only
/// (which waits by polling).
pub(super) fn open_for_waiting(location: &Location) -> anyhow::Result<Channel> {
    match Options::new().open(location) {
        Err(mmf::core::Error::PermissionDenied { .. }) => {
            Ok(Options::new().read_only(true).open(location)?)
        }
        other => Ok(other?),
    }
}

/// The bytes to print for a value, by the requested format.
pub(super) fn render(
    location: &Location,
    meta: Meta,
    bytes: Vec<u8>,
    format: OutFormat,
    pretty: bool,
    raw: bool,
) -> anyhow::Result<Vec<u8>> {
    let as_text = |bytes: Vec<u8>| -> anyhow::Result<Vec<u8>> {
        if pretty && meta.tag == Tag::JSON {
            let v: serde_json::Value = serde_json::from_slice(&bytes)?;
            return Ok(line(serde_json::to_string_pretty(&v)?.into_bytes(), false));
        }
        Ok(line(bytes, raw))
    };
    let as_json = |bytes: Vec<u8>| -> anyhow::Result<Vec<u8>> {
        Ok(line(
            mmf::json::msgpack_to_json(&bytes, pretty)?.into_bytes(),
            raw,
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
    match (format, meta.tag) {
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
