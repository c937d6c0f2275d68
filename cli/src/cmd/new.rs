//! `mmf new NAME --size SIZE`: create a channel.

use anyhow::Context;
use mmf::{Location, Options};

use crate::args::NewArgs;

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
    result.with_context(|| match a.force || a.exist_ok {
        true => format!("cannot create channel '{location}'"),
        false => format!("cannot create channel '{location}' (--force recreates, --exist-ok opens an existing one)"),
    })?;
    Ok(())
}
