//! `mmf watch NAME`: print every new value as it is published.

use std::io::Write;

use mmf::{Location, Tag};
use serde_json::json;

use crate::args::{OutFormat, WatchArgs};
use crate::exit::INTERRUPTED;
use crate::follow::{self, Followed, Waited};

pub fn run(a: WatchArgs) -> anyhow::Result<()> {
    let location = Location::parse(&a.name)?;
    let mut followed = Followed::open(location.clone(), follow::deadline(a.timeout))?;
    let mut buf = Vec::new();
    // Generation of the last value printed; with --new-only, "now" counts as printed (unless
    // the channel did not exist yet when the watch began: then every value is new).
    let mut last = if a.new_only && !followed.created_meanwhile() {
        followed.channel().generation()
    } else {
        0
    };
    let (mut printed, mut skipped_total) = (0u64, 0u64);
    let mut first = true;
    let outcome = loop {
        if a.count.is_some_and(|n| printed >= n) {
            break Ok(());
        }
        let waited = followed.wait(last, follow::deadline(a.timeout), || {
            format!("no new value on '{location}' within the timeout")
        });
        match waited {
            Ok(Waited::Changed) => {}
            // Removed and created again: every value of the new channel is new to this watch,
            // and one it does not print was skipped (all came after the watch began).
            Ok(Waited::Replaced) => {
                (last, first) = (0, false);
                continue;
            }
            Err(e) => break Err(e),
        }
        let meta = followed.channel().read_into(&mut buf)?;
        if meta.generation <= last {
            continue;
        }
        // Generations published before the watch began are not "skipped".
        let skipped = if first && !a.new_only {
            0
        } else {
            meta.generation - last - 1
        };
        skipped_total += skipped;
        first = false;
        let out = if a.meta {
            let value = match meta.tag {
                Tag::MSGPACK => mmf::json::msgpack_to_value(&buf)?,
                Tag::JSON => {
                    let text = std::str::from_utf8(&buf).map_err(mmf::Error::from)?;
                    mmf::json::validate_json(text)?;
                    serde_json::from_str(text)?
                }
                Tag::TEXT => json!(String::from_utf8_lossy(&buf)),
                _ => json!({ "$bin": mmf::json::base64(&buf) }),
            };
            let mut line = serde_json::to_vec(&json!({
                "generation": meta.generation,
                "skipped": skipped,
                "codec": meta.tag.to_string(),
                "value": value,
            }))?;
            line.push(b'\n');
            line
        } else if !matches!(meta.tag, Tag::TEXT | Tag::JSON | Tag::MSGPACK) {
            // Raw bytes have no line of their own (they were printed back to back, one value
            // running into the next): one JSON line each, as --meta renders them.
            let mut line = serde_json::to_vec(&json!({ "$bin": mmf::json::base64(&buf) }))?;
            line.push(b'\n');
            line
        } else {
            super::read::render(
                &location,
                meta,
                std::mem::take(&mut buf),
                OutFormat::Auto,
                false,
                false,
            )?
        };
        // One write and a flush per value, so a pipe reader sees whole lines as they come.
        super::print_bytes(&out)?;
        last = meta.generation;
        printed += 1;
    };
    if skipped_total > 0 {
        let _ = writeln!(
            std::io::stderr(),
            "mmf: watch printed {printed} values and skipped {skipped_total} generations (a latest-value channel keeps only the newest; this reader fell behind)"
        );
    }
    match outcome {
        // An interrupt is the normal way to end a watch: no message, but its exit code.
        Err(e) if crate::exit::code(&e) == INTERRUPTED => Err(e),
        other => other,
    }
}
