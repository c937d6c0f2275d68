//! `mmf new NAME --size SIZE`: create a channel.

use std::os::unix::fs::PermissionsExt;

use anyhow::Context;
use mmf::{Channel, Location, Options};

use crate::args::NewArgs;
use crate::exit;

/// Permission bits of a new channel's file when `--mode` is not given.
const DEFAULT_MODE: u32 = 0o600;

pub fn run(a: NewArgs) -> anyhow::Result<()> {
    let location = Location::parse(&a.name)?;
    let mut o = Options::new();
    o.capacity(a.size)
        .readers(a.readers)
        .mode(a.mode.unwrap_or(DEFAULT_MODE))
        .checksum(a.checksum);
    let result = if a.force {
        o.create_or_replace(&location)
    } else if a.exist_ok {
        o.open_or_create(&location)
    } else {
        o.create(&location)
    };
    let channel = result.with_context(|| format!("cannot create channel '{location}'"))?;
    // `--exist-ok` keeps a channel as it is. One that cannot do what the script asked for (too
    // small for the values it is about to publish, too few reader entries, no checksums, other
    // permission bits) would only fail or surprise later, so say it now and leave it untouched.
    let shortfalls = shortfalls(&channel, &location, &a);
    if !shortfalls.is_empty() {
        return Err(exit::Coded(
            exit::EXISTS,
            format!(
                "channel '{location}' exists with {}; --force replaces it",
                shortfalls.join(", ")
            ),
        )
        .into());
    }
    Ok(())
}

/// How an existing channel falls short of what `a` asks for, one phrase each (none for a channel
/// just created, which has what was asked).
fn shortfalls(channel: &Channel, location: &Location, a: &NewArgs) -> Vec<String> {
    let info = channel.info();
    let mut out = Vec::new();
    if info.capacity < a.size {
        out.push(format!(
            "a capacity of {} bytes, less than the {} asked for",
            info.capacity, a.size
        ));
    }
    if info.readers < a.readers {
        out.push(format!(
            "{} reader entries, fewer than the {} asked for",
            info.readers, a.readers
        ));
    }
    if a.checksum && !info.checksum {
        out.push("no checksums, which --checksum asks for".to_string());
    }
    // Only an explicit --mode is compared: without it the script said nothing about access.
    if let (Some(mode), Some(path)) = (a.mode, location.path()) {
        if let Ok(meta) = std::fs::metadata(&path) {
            let have = meta.permissions().mode() & 0o7777;
            if have != mode {
                out.push(format!("mode {have:04o}, not the {mode:04o} asked for"));
            }
        }
    }
    out
}
