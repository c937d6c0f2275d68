//! `mmf out NAME [VALUE]`: publish a value from the argument or standard input.

use std::io::Read;

use anyhow::Context;
use mmf::{Channel, ChannelExt, Location, Options, Tag};

use crate::args::{InFormat, OutArgs};
use crate::exit::{Coded, INVALID_INPUT, TOO_LARGE};

pub fn run(a: OutArgs) -> anyhow::Result<()> {
    let location = Location::parse(&a.name)?;
    let input: Vec<u8> = match a.value.as_deref() {
        Some(v) if v != "-" => v.as_bytes().to_vec(),
        _ => {
            // The channel as it is now bounds how much of standard input is read (`yes | mmf
            // out NAME` must not read until memory runs out). It may not exist yet: the
            // command writing to our standard input may be the one that creates it
            // (`(mmf new N ...; echo hi) | mmf out N`), so then the input is read whole.
            match Options::new().open(&location) {
                Ok(ch) => read_stdin(Some(&ch), a.format())?,
                Err(mmf::core::Error::NotFound { .. }) => read_stdin(None, a.format())?,
                Err(e) => return Err(e.into()),
            }
        }
    };
    // Opened (again) once the value is here: while standard input was read, the channel may
    // have been created, or replaced by `new --force`, and a value published into the old one
    // would be lost without a word.
    let ch = Options::new().open(&location)?;
    let generation = publish(&ch, a.format(), &input)?;
    // No handle outlives this command: tell `mmf prune` the channel is in use all the same. A
    // failure here takes nothing from the publish, which is done.
    let _ = ch.touch();
    if a.sync {
        ch.flush()?;
    }
    if a.print_generation {
        super::print_bytes(format!("{generation}\n").as_bytes())?;
    }
    Ok(())
}

/// Standard input, read only as far as the value can fit in `ch` (whole without a channel). JSON
/// text may be longer than its MessagePack (spaces, long numbers), so it may run to 16 times the
/// capacity, plus 1 MiB.
fn read_stdin(ch: Option<&Channel>, format: InFormat) -> anyhow::Result<Vec<u8>> {
    let Some(ch) = ch else {
        let mut buf = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut buf)
            .context("reading standard input")?;
        return Ok(buf);
    };
    let cap = ch.capacity() as u64;
    let limit = match format {
        InFormat::Json => cap.saturating_mul(16).saturating_add(1 << 20),
        _ => cap,
    };
    let mut buf = Vec::new();
    std::io::stdin()
        .lock()
        .take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .context("reading standard input")?;
    if buf.len() as u64 > limit {
        let what = match format {
            InFormat::Json => format!("more than {limit} bytes of JSON text"),
            _ => format!("more than {cap} bytes"),
        };
        return Err(Coded(
            TOO_LARGE,
            format!(
                "standard input holds {what}, more than channel '{}' (capacity {cap} bytes) can \
                 hold; nothing was published",
                ch.location()
            ),
        )
        .into());
    }
    Ok(buf)
}

fn publish(ch: &Channel, format: InFormat, input: &[u8]) -> anyhow::Result<u64> {
    if matches!(format, InFormat::Text | InFormat::Json)
        && (input.starts_with(&[0xff, 0xfe]) || input.starts_with(&[0xfe, 0xff]))
    {
        // PowerShell 5 writes UTF-16 through `>` and `Out-File`: say so, rather than "not UTF-8".
        return Err(Coded(
            INVALID_INPUT,
            "the input is UTF-16 (it starts with a UTF-16 byte-order mark), not UTF-8; in \
             PowerShell pipe the text in, or write it with `Out-File -Encoding utf8`"
                .into(),
        )
        .into());
    }
    Ok(match format {
        InFormat::Text => ch.publish_str(std::str::from_utf8(input).map_err(mmf::Error::from)?)?,
        InFormat::Json => {
            let text = std::str::from_utf8(input).map_err(mmf::Error::from)?;
            // RFC 8259 lets a parser ignore a byte-order mark; Windows tools (PowerShell 5's
            // UTF-8 among them) write one.
            ch.publish_json(text.strip_prefix('\u{feff}').unwrap_or(text))?
        }
        InFormat::Msgpack => {
            // Check that it is one whole document before it reaches readers.
            mmf::json::check_msgpack(input)?;
            ch.publish_raw(Tag::MSGPACK, input)?
        }
        InFormat::Bytes => ch.publish_bytes(input)?,
    })
}
