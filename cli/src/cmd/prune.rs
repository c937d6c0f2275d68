//! `mmf prune`: remove stale shared-memory channels (no process maps them, creator and last
//! writer gone, neither created nor written from the command line for a while), so that crashed
//! services do not leak `/dev/shm` forever.

use std::io::Write;
use std::time::SystemTime;

use mmf::channel::host;
use mmf::Location;

use crate::args::PruneArgs;
use crate::exit::{Coded, ERROR};

pub fn run(a: PruneArgs) -> anyhow::Result<()> {
    let mut out = String::new();
    // A file that cannot be removed is said and skipped: the others are still worth removing,
    // and the exit status tells a script that something was left.
    let mut failed = 0usize;
    let mut not_removed = |what: &str, e: &dyn std::fmt::Display| {
        let _ = writeln!(std::io::stderr(), "mmf: could not remove {what}: {e}");
        failed += 1;
    };
    for (listing, in_use) in host::list_with_use()? {
        let location = Location::shm(&listing.name)?;
        // A creator killed before its channel was ready left a file nothing can open.
        let unfinished = matches!(
            listing.info,
            Err(mmf::channel::Error::NotInitialized { .. })
        ) && host::is_unfinished(&location, a.older_than);
        // Another user's channel cannot be removed from the sticky /dev/shm: theirs to prune.
        if !unfinished && !super::abandoned(&listing, in_use) {
            continue;
        }
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
            // Decided again under the lock it removes under: a handle opened since the listing
            // keeps the channel, so does a new channel made under the name meanwhile, and so
            // does a process that published since and still runs.
            // (An unfinished one is judged by its lock and age alone: its creator's pid, if it
            // got as far as writing it, may belong to another process by now.)
            let removed = if unfinished {
                host::remove_unused(&location, a.older_than)
            } else {
                host::remove_stale(&location, a.older_than)
            };
            match removed {
                Ok(true) => {}
                Ok(false) | Err(mmf::channel::Error::NotFound { .. }) => continue,
                Err(e) => {
                    not_removed(&super::shown(&listing.name), &e);
                    continue;
                }
            }
        }
        out.push_str(&super::shown(&listing.name));
        out.push_str(if unfinished {
            " (never finished: its creator died)\n"
        } else {
            "\n"
        });
    }
    // Channels that a killed `new --force` made under a temporary name and never renamed.
    for path in host::abandoned_replacements(a.older_than)? {
        if !a.dry_run {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    not_removed(&super::shown(&path.to_string_lossy()), &e);
                    continue;
                }
            }
        }
        if let Some(name) = path.file_name() {
            out.push_str(&super::shown(&name.to_string_lossy()));
            out.push_str(" (an unfinished replacement)\n");
        }
    }
    super::print_bytes(out.as_bytes())?;
    if failed > 0 {
        return Err(Coded(
            ERROR,
            format!("stale files left in place: {failed} (see above)"),
        )
        .into());
    }
    Ok(())
}
