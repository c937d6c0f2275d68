//! `mmf recover NAME`: publish again the newest earlier value still whole when the current one
//! is damaged (or a small value's own copy from the header, when its frame alone is).

use anyhow::Context;
use mmf::{Location, Options};

use crate::args::RecoverArgs;

pub fn run(a: RecoverArgs) -> anyhow::Result<()> {
    let location = Location::parse_os(&a.name)?;
    let ch = Options::new().open(&location)?;
    let line = match ch.recover()? {
        Some(r) => {
            // A repair after a machine crash, of a file channel: on the disk before it is said
            // (a crash soon after would otherwise bring the damage back).
            if let Location::File(_) = location {
                ch.flush().with_context(|| {
                    format!(
                        "generation {} of '{location}' is the recovered value, but writing it \
                         back to the disk failed",
                        r.meta.generation
                    )
                })?;
            }
            format!(
                "recovered '{location}': the value of generation {} ({}, {} B) is generation {} \
                 now\n",
                r.from, r.meta.tag, r.meta.len, r.meta.generation
            )
        }
        // Nothing to mend, or `latest` moved while recover looked (another writer published,
        // or a peer keeps writing it): "whole" only where a read says so (a hostile-mapping
        // review got "is whole" of a value every read refused, under a peer flipping `latest`).
        None => match ch.read_raw() {
            Ok((meta, _)) if meta.generation == 0 => {
                format!("'{location}' needs no recovery: nothing was published to it yet\n")
            }
            Ok((meta, _)) => format!(
                "'{location}' needs no recovery: its current value (generation {}) reads whole\n",
                meta.generation
            ),
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "'{location}' changed while recover looked at it, and its current value \
                         does not read; retry `{}` once no other process writes to it",
                        crate::exit::command("recover", super::typed(&location), "")
                    )
                })
            }
        },
    };
    super::print_bytes(line.as_bytes())
}
