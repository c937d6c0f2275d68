//! `mmf list`: the shared-memory channels on this host, with who uses them.

use mmf::channel::host;
use serde_json::json;
use unicode_width::UnicodeWidthStr;

use crate::args::ListArgs;

pub fn run(a: ListArgs) -> anyhow::Result<()> {
    if a.names {
        // Names only, for completion and scripts: the directory's entries, none opened; a
        // name no command would take (a file someone else put there) is left out.
        let mut text = String::new();
        for name in host::channel_names()? {
            text.push_str(&name);
            text.push('\n');
        }
        return super::print_bytes(text.as_bytes());
    }
    let listings = mmf::list()?;
    unfinished_replacements();
    // Where it looked, where it found nothing: a shell without the writers' `MMF_SHM_DIR`
    // looks elsewhere, and an empty table did not say where (a migrating user's review).
    if listings.is_empty() && !a.json {
        crate::exit::note(format_args!("no channels in {}", host::shm_dir().display()));
    }
    if a.json {
        let items: Vec<_> = listings
            .iter()
            .map(|l| match &l.info {
                Ok(i) => {
                    let mut r = super::info::record(&l.name, i, false);
                    r["in_use"] = json!(l.in_use);
                    r["stale"] = json!(super::prunable(l));
                    r
                }
                // What is known of it: whether it is held (a creator at work), and whether
                // prune would remove it (a file a killed `new` left).
                Err(e) => json!({
                    "name": l.name,
                    "error": listed_error(&l.name, e),
                    "in_use": l.in_use,
                    "stale": super::unfinished(l),
                }),
            })
            .collect();
        return super::print_json(&serde_json::Value::Array(items), false);
    }
    let mut rows = vec![[
        "NAME",
        "CAPACITY",
        "SIZE",
        "GENERATION",
        "VALUE",
        "IN USE",
        "CREATOR",
    ]
    .map(String::from)];
    for l in &listings {
        // Quoted with a space inside too: the table's columns are split at spaces.
        let name = if l.name.contains(' ') {
            format!("{:?}", l.name)
        } else {
            super::shown(&l.name)
        };
        rows.push(match &l.info {
            Ok(i) => [
                name,
                i.capacity.to_string(),
                i.size_bytes.to_string(),
                i.generation.to_string(),
                // Damage first: a stray write that zeroed `latest` reads as generation 0 over
                // values published before (a review's `-` where `read` said "damaged").
                if i.damage.is_some() {
                    // Its tag and length could not be told (`mmf info NAME` says why).
                    "damaged".into()
                } else if i.generation == 0 {
                    "-".into()
                } else {
                    format!("{} {}B", i.tag, i.len)
                },
                use_cell(l.in_use, super::prunable(l)),
                format!(
                    "{} ({})",
                    i.creator_pid,
                    super::info::process_state(i.creator_state)
                ),
            ],
            Err(e) => {
                let mut r = ["?"; 7].map(String::from);
                r[0] = name;
                // Held or not tells a channel being created from one its creator left.
                r[5] = use_cell(l.in_use, super::unfinished(l));
                r[6] = format!("unreadable: {}", listed_error(&l.name, e));
                r
            }
        });
    }
    super::print_bytes(table(&rows).as_bytes())
}

/// Says on standard error (unless `--quiet`) what `new --force` runs killed half-way left in the
/// shared-memory directory under temporary names, which the list has no row for: memory that
/// only `ls -a` would show otherwise (a review left 24 MiB so), a minute old and more.
fn unfinished_replacements() {
    let files = host::abandoned_replacements(std::time::Duration::ZERO).unwrap_or_default();
    if files.is_empty() {
        return;
    }
    let bytes: u64 = files
        .iter()
        .filter_map(|f| std::fs::symlink_metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let words: Vec<String> = files.iter().map(crate::exit::shell_word).collect();
    let (count, them) = match files.len() {
        1 => ("1 file".to_owned(), "it"),
        n => (format!("{n} files"), "them"),
    };
    crate::exit::note(format_args!(
        "also {count} of {} that `new --force` runs killed half-way left (unfinished \
         replacements, which no name reaches): `mmf prune` removes {them} once an hour old, \
         `rm -- {}` at once",
        crate::size::format_size(bytes),
        words.join(" ")
    ));
}

fn use_cell(in_use: Option<bool>, stale: bool) -> String {
    match in_use {
        None => "?".into(),
        Some(true) => "yes".into(),
        Some(false) if stale => "no (stale)".into(),
        Some(false) => "no".into(),
    }
}

/// Left-aligned columns separated by two spaces, aligned by the columns a terminal gives each
/// cell (a CJK character takes two; `format!`'s padding counts characters, so it would not do).
pub(super) fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let widths: Vec<usize> = (0..N)
        .map(|c| rows.iter().map(|r| r[c].width()).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, &w)| format!("{cell}{}", " ".repeat(w - cell.width())))
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text
}

/// A listing's error as `list` says it. A channel of another layout (after an upgrade, every
/// channel an older mmf made) gets the ways out that `read` and `out` give: the library's line
/// says which mmf made it, and nothing else ever clears it (`prune` cannot judge it).
fn listed_error(name: &str, e: &mmf::channel::Error) -> String {
    match e {
        // An older mmf's (a newer one's is told by the library's line to use that mmf).
        mmf::channel::Error::UnsupportedVersion {
            found, supported, ..
        } if super::other_layout(*found) && found < supported => match super::is_own_shm(name) {
            true => format!(
                "{e}; `{}` removes it once nothing uses it, `{}` re-creates it in this layout",
                crate::exit::command("remove", name, ""),
                crate::exit::command("new", name, "--size SIZE --force"),
            ),
            // Another user's, in the sticky /dev/shm: neither would work for this user.
            false => format!("{e}; its owner (or root) can remove it or re-create it"),
        },
        _ => e.to_string(),
    }
}
