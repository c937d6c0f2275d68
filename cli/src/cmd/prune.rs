//! `mmf prune`: remove stale shared-memory channels (no process maps them, creator and last
//! writer gone, neither created, written nor read from the command line for a while), so that
//! crashed services do not leak `/dev/shm` forever.

use std::time::SystemTime;

use mmf::channel::host;
use mmf::Location;
use serde_json::json;

use crate::args::PruneArgs;
use crate::exit::{Coded, ERROR};

pub fn run(a: PruneArgs) -> anyhow::Result<()> {
    let mut out = String::new();
    // With --json: a record of each file removed (or, with --dry-run, that would be), every
    // name as it is, where the text output can only say some of them on standard error.
    let mut records = Vec::new();
    let record = |name: Option<&str>, path: std::path::PathBuf, kind: &str| {
        json!({
            "name": name,
            "path": std::path::absolute(&path).unwrap_or(path).display().to_string(),
            "kind": kind,
            "removed": !a.dry_run,
        })
    };
    // What the notes on standard error say was done.
    let did = if a.dry_run { "would remove" } else { "removed" };
    // A file that cannot be removed is said and skipped: the others are still worth removing,
    // and the exit status tells a script that something was left.
    let mut failed = 0usize;
    let mut not_removed = |what: &str, e: &dyn std::fmt::Display| {
        crate::exit::say(format_args!("could not remove {what}: {e}"));
        failed += 1;
    };
    // Which patterns matched a channel, stale or not: one that matched none is likely a typo.
    let mut matched = vec![false; a.patterns.len()];
    let mut chosen = |name: &str| {
        let mut any = a.patterns.is_empty();
        // (A pattern that is not UTF-8 matches no shared-memory name, which is.)
        for (hit, p) in matched.iter_mut().zip(&a.patterns) {
            if p.to_str().is_some_and(|p| matches(p, name)) {
                (*hit, any) = (true, true);
            }
        }
        any
    };
    // Said to the user who can clear it (its owner, or root): another user's file is theirs,
    // and a prune run from cron would say it on every run, for every user.
    let skipped = |name: &str, e: &dyn std::fmt::Display| {
        // The files whose names read so (a name that is not UTF-8 is listed made readable).
        let file = format!("mmf.{name}");
        let paths: Vec<_> = std::fs::read_dir(host::shm_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|d| d.file_name().to_string_lossy() == file)
            .map(|d| d.path())
            .collect();
        let others =
            !paths.is_empty() && paths.into_iter().all(|p| !host::is_own(Location::File(p)));
        if !others {
            crate::exit::note(format_args!(
                "skipped a file in the shared-memory directory: {e}"
            ));
        }
    };
    // Stale channels left for being used more recently than `--older-than`: said where a
    // `--dry-run` finds nothing to remove, which right after a crash looks as if prune found
    // nothing stale at all. (Not otherwise: a channel used from the command line alone looks
    // like this between its commands, and a prune run from cron would say so every time.)
    let mut kept_young = 0usize;
    // Channels a PATTERN named that are another user's, which only they (or root) may prune
    // from the sticky directory: said, where they were skipped in silence (a review's finding;
    // not without PATTERNs, where a prune run from cron would say it every time).
    let mut theirs = 0usize;
    // Channels of this user's a PATTERN named, kept as in use (held, or their creator or last
    // writer runs), and those that cannot be read as channels: said, as a harness cleaning up
    // after a crash otherwise learns nothing of why its names are still there (a harness
    // author's review: an orphaned `watch` held one, and prune said nothing).
    // (A file not initialised yet is none of those: being made, or left by a creator that died
    // too recently to be sure: the diff review's.)
    let (mut in_use, mut unreadable, mut unfinished_young) = (0usize, 0usize, 0usize);
    let mut other_layout = Vec::new();
    // Files removed (or, with --dry-run, that would be), whether their names were printed or
    // said on standard error.
    let mut pruned = 0usize;
    for listing in mmf::list()? {
        if !chosen(&listing.name) {
            continue;
        }
        // A file under a name no channel can have (`mmf.` alone, a control character, bytes
        // that are not UTF-8), which any user can put in /dev/shm: not a channel, so not
        // prune's; said, and the others are pruned.
        let location = match (&listing.info, Location::shm(&listing.name)) {
            (Err(e @ mmf::channel::Error::InvalidName { .. }), _) => {
                skipped(&listing.name, e);
                continue;
            }
            (_, Err(e)) => {
                skipped(&listing.name, &e);
                continue;
            }
            (_, Ok(location)) => location,
        };
        // A creator killed before its channel was ready left a file nothing can open.
        let unfinished = matches!(
            listing.info,
            Err(mmf::channel::Error::NotInitialized { .. })
        ) && host::is_unfinished(&location, a.older_than);
        // Another user's channel cannot be removed from the sticky /dev/shm: theirs to prune.
        if !unfinished && !super::abandoned(&listing) {
            // This user's channels of another layout (an older mmf's, after an upgrade): this
            // mmf cannot read their creator and last writer, which keep a channel no process
            // holds while its service runs, so they stay, said with or without PATTERNs, as
            // nothing else would ever clear them.
            if matches!(
                listing.info,
                Err(mmf::channel::Error::UnsupportedVersion { found, .. })
                    if super::other_layout(found)
            ) && host::is_own(&location)
            {
                other_layout.push(crate::exit::shell_word(&listing.name));
                continue;
            }
            if !a.patterns.is_empty() {
                match (host::is_own(&location), &listing.info) {
                    (false, _) => theirs += 1,
                    (true, Ok(_)) => in_use += 1,
                    (true, Err(mmf::channel::Error::NotInitialized { .. })) => {
                        unfinished_young += 1
                    }
                    (true, Err(_)) => unreadable += 1,
                }
            }
            continue;
        }
        let Ok(touched) = host::last_touched(&location) else {
            continue;
        };
        let idle = SystemTime::now()
            .duration_since(touched)
            .unwrap_or_default();
        if idle < a.older_than {
            kept_young += 1;
            continue;
        }
        if !a.dry_run {
            // Decided again under the lock it removes under: a handle opened since the listing
            // keeps the channel, so does a new channel made under the name meanwhile, and so
            // does a process that published since and still runs.
            // (An unfinished one is judged by its lock, its age and its start of zeros alone:
            // a channel finished under the name since is kept; its creator's pid, if it
            // got as far as writing it, may belong to another process by now.)
            let removed = if unfinished {
                host::remove_unfinished(&location, a.older_than)
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
        pruned += 1;
        if a.json {
            let kind = if unfinished { "unfinished" } else { "stale" };
            let path = location.path().unwrap_or_default();
            records.push(record(Some(&listing.name), path, kind));
            continue;
        }
        // Standard output has the names alone, one a line, for a script to give back to mmf;
        // what they were is said on standard error. A name shown quoted (a control character,
        // a space at either end) is no name mmf takes back: a line `" x"` would name another
        // channel, one called so (a review removed a live one through it). It is said on
        // standard error alone.
        let shown = super::shown(&listing.name);
        if shown == listing.name {
            out.push_str(&shown);
            out.push('\n');
        } else {
            crate::exit::note(format_args!(
                "{} the channel named {shown} (quoted: its name cannot be printed as it is)",
                did,
            ));
        }
        if unfinished {
            crate::exit::note(format_args!(
                "{} {}: never finished (its creator died before it was ready)",
                did,
                super::shown(&listing.name)
            ));
        }
    }
    // Channels that a killed `new --force` made under a temporary name and never renamed: no
    // name tells whose they were, so not when only some channels were asked for.
    let abandoned = if a.patterns.is_empty() {
        host::abandoned_replacements(a.older_than)?
    } else {
        Vec::new()
    };
    for path in abandoned {
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
        pruned += 1;
        if a.json {
            records.push(record(None, path, "replacement"));
            continue;
        }
        // No channel's name: said on standard error alone.
        if let Some(name) = path.file_name() {
            crate::exit::note(format_args!(
                "{} {}: an unfinished replacement (of a `new --force` that was killed)",
                did,
                super::shown(&name.to_string_lossy())
            ));
        }
    }
    if a.json {
        super::print_json(&serde_json::Value::Array(records), false)?;
    } else {
        super::print_bytes(out.as_bytes())?;
    }
    // Also where PATTERNs named the channels (a harness's own, after a crash): a prune that
    // removed nothing and said nothing looked as if nothing were left (a review's finding).
    if kept_young > 0 && ((a.dry_run && pruned == 0) || !a.patterns.is_empty()) {
        crate::exit::note(format_args!(
            "note: {}{kept_young} stale channel{s} kept: created, written or read less than {} ago \
             (--older-than; `--older-than 0` takes {them} too)",
            if pruned == 0 {
                "nothing to prune; "
            } else {
                ""
            },
            crate::duration::show_duration(a.older_than),
            s = if kept_young == 1 { "" } else { "s" },
            them = if kept_young == 1 { "it" } else { "them" },
        ));
    }
    if in_use > 0 {
        crate::exit::note(format_args!(
            "{in_use} channel{s} that match{es} {are} kept as in use: a process holds {it}, or \
             {its} creator or last writer runs (`mmf info NAME` says which)",
            s = if in_use == 1 { "" } else { "s" },
            es = if in_use == 1 { "es" } else { "" },
            are = if in_use == 1 { "is" } else { "are" },
            it = if in_use == 1 { "it" } else { "them" },
            its = if in_use == 1 { "its" } else { "their" },
        ));
    }
    if unfinished_young > 0 {
        let n = unfinished_young;
        crate::exit::note(format_args!(
            "{n} channel{s} that match{es} {are} kept as not initialised yet: being created, or \
             left by a creator that died less than {} ago",
            crate::duration::show_duration(a.older_than.max(std::time::Duration::from_secs(60))),
            s = if n == 1 { "" } else { "s" },
            es = if n == 1 { "es" } else { "" },
            are = if n == 1 { "is" } else { "are" },
        ));
    }
    if unreadable > 0 {
        crate::exit::note(format_args!(
            "{unreadable} file{s} that match{es} cannot be read by this mmf (`mmf list` says why)",
            s = if unreadable == 1 { "" } else { "s" },
            es = if unreadable == 1 { "es" } else { "" },
        ));
    }
    if !other_layout.is_empty() {
        let n = other_layout.len();
        crate::exit::note(format_args!(
            "{n} channel{s} of another layout {are} left as {they} {are} ({}): this mmf cannot \
             read {their} creator and last writer, which keep a channel that no process holds \
             while its service runs (`mmf list` says which mmf made {them}); `mmf remove NAME` \
             removes one once nothing uses it",
            other_layout.join(", "),
            s = if n == 1 { "" } else { "s" },
            are = if n == 1 { "is" } else { "are" },
            they = if n == 1 { "it" } else { "they" },
            their = if n == 1 { "its" } else { "their" },
            them = if n == 1 { "it" } else { "them" },
        ));
    }
    if theirs > 0 {
        crate::exit::note(format_args!(
            "{theirs} channel{s} that match{es} {are} another user's, which only that user or \
             root may prune",
            s = if theirs == 1 { "" } else { "s" },
            es = if theirs == 1 { "es" } else { "" },
            are = if theirs == 1 { "is" } else { "are" },
        ));
    }
    for (typed, _) in a.patterns.iter().zip(&matched).filter(|(_, hit)| !**hit) {
        let p = typed.to_string_lossy();
        if p.contains('/') {
            // A name with '/' is a file path, which no shared-memory name matches.
            crate::exit::note(format_args!(
                "no channel matches '{p}': prune looks at shared-memory channels only (`mmf \
                 list` shows their names); a file channel is removed with `{}`",
                crate::exit::command("remove", typed, "")
            ));
            continue;
        }
        crate::exit::note(format_args!(
            "no channel matches '{p}' (`mmf list` shows their names)"
        ));
    }
    if failed > 0 {
        return Err(Coded(
            ERROR,
            format!("stale files left in place: {failed} (see above)"),
        )
        .into());
    }
    Ok(())
}

/// Whether `name` matches the shell-style `pattern`: `*` any run of characters (none too), `?`
/// any one character, every other character itself. Backtracks to the last `*` only, so it
/// takes time linear in the lengths' product at worst, never exponential.
fn matches(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut i, mut j) = (0, 0);
    // Where the last `*` was, and where in `name` it stands in for up to.
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        match p.get(i) {
            Some('*') => {
                star = Some((i, j));
                i += 1;
            }
            Some(&c) if c == '?' || c == n[j] => {
                i += 1;
                j += 1;
            }
            _ => match star {
                // The `*` takes one more character, and the rest is tried again after it.
                Some((si, sj)) => {
                    star = Some((si, sj + 1));
                    i = si + 1;
                    j = sj + 1;
                }
                None => return false,
            },
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn patterns_match_as_in_a_shell() {
        for (pattern, name) in [
            ("run42.cfg", "run42.cfg"),
            ("run42.*", "run42.cfg"),
            ("run42.*", "run42."),
            ("*", ""),
            ("*", "anything"),
            ("*.res", "w1.res"),
            ("w?.res", "w1.res"),
            ("a*b*c", "aXbYbZc"),
            ("*a*", "banana"),
            ("**x", "x"),
            ("é?", "éß"),
        ] {
            assert!(matches(pattern, name), "{pattern} {name}");
        }
        for (pattern, name) in [
            ("run42.cfg", "run42.cfgx"),
            ("run42.*", "run43.cfg"),
            ("w?.res", "w12.res"),
            ("a*b*c", "aXbYbZ"),
            ("?", ""),
            ("", "x"),
            ("x*", "yx"),
        ] {
            assert!(!matches(pattern, name), "{pattern} {name}");
        }
        // A pattern made to backtrack a lot still ends at once.
        let name = "a".repeat(10_000);
        assert!(!matches(&format!("{}b", "*a".repeat(50)), &name));
    }
}
