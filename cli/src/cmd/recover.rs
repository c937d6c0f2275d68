//! `mmf recover NAME`: publish again the newest earlier value still whole when the current one
//! is damaged (or a small value's own copy from the header, when its frame alone is).

use mmf::{Location, Options};

use crate::args::RecoverArgs;

pub fn run(a: RecoverArgs) -> anyhow::Result<()> {
    let location = Location::parse(&a.name)?;
    let ch = Options::new().open(&location)?;
    let line = match ch.recover()? {
        Some(r) => format!(
            "recovered '{location}': the value of generation {} ({}, {} B) is generation {} now\n",
            r.from, r.meta.tag, r.meta.len, r.meta.generation
        ),
        None => match ch.generation() {
            0 => format!("'{location}' needs no recovery: nothing was published to it yet\n"),
            g => format!(
                "'{location}' needs no recovery: its current value (generation {g}) is whole\n"
            ),
        },
    };
    super::print_bytes(line.as_bytes())
}
