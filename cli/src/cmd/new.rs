//! `mmf new NAME --size SIZE`: create a channel.

use anyhow::Context;
use mmf::{Location, Options};

use crate::args::NewArgs;
use crate::exit;

pub fn run(a: NewArgs) -> anyhow::Result<()> {
    let location = Location::parse(&a.name)?;
    let mut o = Options::new();
    o.capacity(a.size)
        .readers(a.readers)
        .mode(a.mode)
        .checksum(a.checksum);
    let result = if a.force {
        o.create_or_replace(&location)
    } else if a.exist_ok {
        o.open_or_create(&location)
    } else {
        o.create(&location)
    };
    let channel = result.with_context(|| format!("cannot create channel '{location}'"))?;
    // `--exist-ok` keeps a channel as it is; one too small for the values the script is about to
    // publish would only fail later, at the first large `out`, so say it now.
    if channel.capacity() < a.size {
        return Err(exit::Coded(
            exit::EXISTS,
            format!(
                "channel '{location}' exists with a capacity of {} bytes, less than the {} asked for; --force replaces it",
                channel.capacity(),
                a.size
            ),
        )
        .into());
    }
    Ok(())
}
