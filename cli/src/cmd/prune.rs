//! `mmf prune`: remove stale shared-memory channels (no process maps them, creator and last
//! writer gone, neither created nor written from the command line for a while), so that crashed
//! services do not leak `/dev/shm` forever.

use std::io::Write;
use std::time::SystemTime;

use mmf::core::host;
use mmf::{Channel, Location};

use crate::args::PruneArgs;

pub fn run(a: PruneArgs) -> anyhow::Result<()> {
    let mut out = String::new();
    for (listing, in_use) in host::list_with_use()? {
        let Ok(info) = &listing.info else { continue };
        if !in_use.is_some_and(|u| host::is_stale(info, u)) {
            continue;
        }
        let location = Location::shm(&listing.name)?;
        let Ok(touched) = host::last_touched(&location) else {
            continue;
        };
        let idle = SystemTime::now()
            .duration_since(touched)
            .unwrap_or_default();
        if idle < a.older_than {
            continue;
        }
        if !a.dry_run {
            match Channel::remove_location(&location) {
                Ok(()) | Err(mmf::core::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        out.push_str(&super::shown(&listing.name));
        out.push('\n');
    }
    // Channels that a killed `new --force` made under a temporary name and never renamed. One
    // that cannot be removed is said and skipped: the others are still worth removing.
    for path in host::abandoned_replacements(a.older_than)? {
        if !a.dry_run {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    let _ = writeln!(
                        std::io::stderr(),
                        "mmf: could not remove {}: {e}",
                        super::shown(&path.to_string_lossy())
                    );
                    continue;
                }
            }
        }
        if let Some(name) = path.file_name() {
            out.push_str(&super::shown(&name.to_string_lossy()));
            out.push_str(" (an unfinished replacement)\n");
        }
    }
    super::print_bytes(out.as_bytes())
}
