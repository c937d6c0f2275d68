//! `mmf remove NAME...`: unlink channels.

use mmf::{Channel, Location};

use crate::args::RemoveArgs;
use crate::exit;

pub fn run(a: RemoveArgs) -> anyhow::Result<()> {
    let mut first_error: Option<anyhow::Error> = None;
    for name in &a.names {
        let result = Location::parse_os(name).and_then(|location| Channel::remove(&location));
        match result {
            Ok(()) => {}
            Err(mmf::channel::Error::NotFound { .. }) if a.force => {}
            Err(e) => {
                let e = anyhow::Error::from(e);
                if a.names.len() > 1 {
                    // Report each failure, carry on with the other names.
                    let line = exit::report(&e, "remove-one-of-many", Some(name));
                    exit::say(format_args!("{line}"));
                }
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) if a.names.len() > 1 => {
            Err(exit::Coded(exit::code(&e), "some channels were not removed".into()).into())
        }
        Some(e) => Err(e),
        None => Ok(()),
    }
}
