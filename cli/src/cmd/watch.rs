//! `mmf watch NAME`: print each new value as it is published (the newest each time it looks).

use mmf::{Location, Meta, Tag};
use serde_json::json;

use crate::args::{OutFormat, WatchArgs};
use crate::exit::{EXITED, INTERRUPTED};
use crate::follow::{self, Followed, Waited};

pub fn run(a: WatchArgs) -> anyhow::Result<()> {
    let location = Location::parse_os(&a.name)?;
    // (The --pid process exited without creating the channel: exit 9, as `read --pid` ends, so
    // that a harness tells a worker that died before its first value from one that finished.)
    let mut followed = Followed::open(location.clone(), follow::deadline(a.timeout), a.pid)?;
    let mut buf = Vec::new();
    // The generation when the watch began (0 if the channel did not exist yet: then every
    // value is new): values published since and not printed were skipped, those before were
    // not. Read once, here: values published between the open and the first read, or on a
    // channel that held none yet, count (a review saw "skipped":0 for both).
    let mut start = if followed.created_meanwhile() {
        0
    } else {
        followed.channel().generation()
    };
    // Generation of the last value printed; with --new-only, "now" counts as printed.
    let mut last = if a.new_only { start } else { 0 };
    let (mut printed, mut skipped_total, mut unshown) = (0u64, 0u64, 0u64);
    // The generation of a value the watch could not read (damaged), waited past.
    let mut refused = None;
    // When --timeout ends the watch: DUR after the last value that came, not after the last
    // look (damaged values, which a peer may store as often as it likes, kept it going for
    // ever: 8.4 s of `--timeout 2s` in a liveness review).
    let mut deadline = follow::deadline(a.timeout);
    let outcome = loop {
        if a.count.is_some_and(|n| printed >= n) {
            break Ok(());
        }
        let waited = followed.wait(last, refused, deadline, |ch| {
            format!(
                "no new value on '{location}' within the timeout{}",
                super::damaged(ch).unwrap_or_default()
            )
        });
        match waited {
            Ok(Waited::Changed) => {}
            // Removed and created again: every value of the new channel is new to this watch,
            // and one it does not print was skipped (all came after the watch began).
            Ok(Waited::Replaced) => {
                (last, start, refused) = (0, 0, None);
                continue;
            }
            // The --pid process exited and its last value is printed: the end, as `tail --pid`.
            // One that exited before any value came is exit 9, as for `read --pid` (a harness
            // reviewer's `set -e` script took a worker that crashed at its start for one that
            // finished); values that came but were not printed (`--json` skips others) are
            // said, unless --quiet.
            Err(e) if crate::exit::code(&e) == EXITED => match (printed, unshown) {
                (0, 0) => break Err(e),
                (0, _) => {
                    crate::exit::note(format_args!("{e}"));
                    break Ok(());
                }
                _ => break Ok(()),
            },
            Err(e) => break Err(e),
        }
        let current = followed.channel().generation();
        let meta = match followed.channel().read_into(&mut buf) {
            Ok(meta) => meta,
            // The current value damaged (a machine crash before the file was written back, or
            // another process's stray write): say so and wait for the publish that replaces
            // it, as `read --wait` does. Its generation is not the watch's count: it may be
            // nobody's (a stray write of the count, far ahead of the writer's own).
            Err(e) if follow::passed_by_wait(&e) => {
                // Judged before it is said (a write to a full pipe could take long); read once
                // more where the writer may have published that generation since.
                if followed.refuse(current) && e.mended_by_publish() {
                    continue;
                }
                follow::waiting_past(e, "watch", &a.name);
                refused = Some(current);
                unshown += 1;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if meta.generation <= last {
            continue;
        }
        // Generations published before the watch began are not "skipped", nor is a refused
        // one below this (said as not shown).
        let skipped_from = match refused.take() {
            Some(r) if r < meta.generation => r.max(last),
            _ => last,
        };
        let skipped = meta
            .generation
            .saturating_sub(skipped_from.max(start).saturating_add(1));
        // Saturating: a peer's stray writes of the count, in channel after channel made anew
        // under the name, can add up past 2^64 (a review's finding: a debug build panicked).
        skipped_total = skipped_total.saturating_add(skipped);
        let incarnation = followed.channel().incarnation();
        if a.json && !matches!(meta.tag, Tag::MSGPACK | Tag::JSON) {
            unshown += 1;
            // JSON given to `mmf out` without --json is stored as text: said as `read --json`
            // says it (a new user's review got "a text value, not JSON" of `{"a":1}`).
            let what = if meta.tag == Tag::TEXT
                && std::str::from_utf8(&buf).is_ok_and(mmf::json::looks_like_json)
            {
                "is JSON published as text (`mmf out` without --json: publish it with --json to \
                 watch it as JSON)"
                    .to_owned()
            } else {
                format!("is {} value, not JSON", a_tag(meta.tag))
            };
            crate::exit::say(format_args!(
                "generation {} of '{location}' {what}, skipped (--json); `{}` prints it",
                meta.generation,
                crate::exit::command("read", super::typed(&location), "")
            ));
            last = meta.generation;
            deadline = follow::deadline(a.timeout);
            continue;
        }
        let shown = match a.zero_terminated {
            true => nul_terminated(meta, &mut buf),
            false => line_for(
                &location,
                meta,
                incarnation,
                &mut buf,
                Some(skipped),
                a.meta,
            ),
        };
        let out = match shown {
            Ok(line) => line,
            Err(e) => {
                // Another process stored something that cannot be shown (invalid MessagePack,
                // JSON text that breaks the rules): say so and watch on; the next value may be
                // fine, and ending here would end every script reading this watch.
                unshown += 1;
                crate::exit::say(format_args!(
                    "generation {} of '{location}' cannot be shown, skipped: {e}; `{}` prints \
                     its bytes",
                    meta.generation,
                    crate::exit::command("read", super::typed(&location), "--format bytes")
                ));
                if a.meta {
                    super::print_bytes(&error_line(meta, incarnation, skipped, &format!("{e}"))?)?;
                }
                last = meta.generation;
                deadline = follow::deadline(a.timeout);
                continue;
            }
        };
        // One write and a flush per value, so a pipe reader sees whole lines as they come.
        super::print_bytes(&out)?;
        last = meta.generation;
        // DUR from now: time blocked on a slow reader of the output is not time without values.
        deadline = follow::deadline(a.timeout);
        printed += 1;
    };
    if skipped_total > 0 {
        crate::exit::say(format_args!(
            "watch printed {printed} {} and skipped {skipped_total} {} (a latest-value channel \
             keeps only the newest; this reader fell behind)",
            if printed == 1 { "value" } else { "values" },
            if skipped_total == 1 {
                "generation"
            } else {
                "generations"
            },
        ));
    }
    if unshown > 0 {
        crate::exit::say(format_args!(
            "{unshown} {} of '{location}' could not be shown (above)",
            if unshown == 1 { "value" } else { "values" }
        ));
    }
    match outcome {
        // An interrupt is the normal way to end a watch: no message, but its exit code.
        Err(e) if crate::exit::code(&e) == INTERRUPTED => Err(e),
        other => other,
    }
}

/// One value as one line: NDJSON for JSON, MessagePack (as JSON) and raw bytes (`{"$bin":
/// base64}`), text as it is (with a newline added), or with `meta` the JSON record of
/// generation, the channel's incarnation, skipped generations (where given: `read --meta` has
/// none), codec and value.
///
/// The line is built as text, not as a `serde_json::Value`: a tree of a large value another
/// process stored would take many times its size in memory.
pub(super) fn line_for(
    location: &Location,
    meta: Meta,
    incarnation: u64,
    buf: &mut Vec<u8>,
    skipped: Option<u64>,
    with_meta: bool,
) -> anyhow::Result<Vec<u8>> {
    if meta.tag == Tag::TEXT && !with_meta {
        return super::read::render(location, meta, std::mem::take(buf), OutFormat::Auto, false);
    }
    let value = record_value(meta, buf)?;
    let head = if with_meta {
        record_head(meta, incarnation, skipped, false)?
    } else {
        String::new()
    };
    let tail = if with_meta { "}\n" } else { "\n" };
    // Room asked for, not assumed: the value may be most of the memory at hand, and a line
    // grown by `format!` or `push` would abort the process where the allocator refuses.
    let mut line = if head.is_empty() {
        value.into_bytes()
    } else {
        let mut line = Vec::new();
        reserve(&mut line, head.len() + value.len() + tail.len())?;
        line.extend_from_slice(head.as_bytes());
        line.extend_from_slice(value.as_bytes());
        line
    };
    reserve(&mut line, tail.len())?;
    line.extend_from_slice(tail.as_bytes());
    Ok(line)
}

/// A `--meta` record up to its value: `{"generation":..,"incarnation":"..",["skipped":..,]
/// "codec":..,"value":`, on one line, or `indented` a field a line (`read --meta --pretty`), so
/// that both print the same fields.
pub(super) fn record_head(
    meta: Meta,
    incarnation: u64,
    skipped: Option<u64>,
    indented: bool,
) -> anyhow::Result<String> {
    let fields = [
        Some(("generation", meta.generation.to_string())),
        // The incarnation as `info --json` gives it: 16 hex digits (as a number, it would lose
        // its low bits in jq and JavaScript, which hold integers in doubles).
        Some(("incarnation", format!("\"{incarnation:016x}\""))),
        skipped.map(|s| ("skipped", s.to_string())),
        Some(("codec", serde_json::to_string(&meta.tag.to_string())?)),
    ];
    let (open, between, colon) = match indented {
        true => ("{\n  ", ",\n  ", ": "),
        false => ("{", ",", ":"),
    };
    // Written in place: one string a record, as each watched value makes one.
    use std::fmt::Write;
    let mut head = String::with_capacity(128);
    head.push_str(open);
    for (name, value) in fields.into_iter().flatten() {
        write!(head, "\"{name}\"{colon}{value}{between}")?;
    }
    write!(head, "\"value\"{colon}")?;
    Ok(head)
}

/// A value as one line of JSON, as a `--meta` record holds it: MessagePack as JSON, JSON text
/// checked (FORMAT.md §7.1) and made one line, text as a JSON string, and raw bytes, or text
/// that is not UTF-8, as `{"$bin": base64}`.
pub(super) fn record_value(meta: Meta, buf: &[u8]) -> anyhow::Result<String> {
    Ok(match meta.tag {
        Tag::MSGPACK => mmf::json::msgpack_to_json(buf)?,
        // (Stored text may span several lines.)
        Tag::JSON => mmf::json::compact_json(crate::exit::utf8(buf)?)?,
        // Text that is not UTF-8 is shown as the bytes it is, not with replacement characters.
        Tag::TEXT => match std::str::from_utf8(buf) {
            Ok(text) => json_string(text)?,
            Err(_) => bin(buf)?,
        },
        // Raw bytes have no line of their own (printed back to back, one value would run into
        // the next): one JSON line each.
        _ => bin(buf)?,
    })
}

/// One value for `-z`: as stored (text as it is, JSON as one line, bytes raw), then a NUL; a
/// value that holds a NUL is an error, which the watch says and skips.
fn nul_terminated(meta: Meta, buf: &mut Vec<u8>) -> anyhow::Result<Vec<u8>> {
    let mut value = match meta.tag {
        Tag::MSGPACK => mmf::json::msgpack_to_json(buf)?.into_bytes(),
        Tag::JSON => mmf::json::compact_json(crate::exit::utf8(buf)?)?.into_bytes(),
        _ => std::mem::take(buf),
    };
    if value.contains(&0) {
        anyhow::bail!("it holds a NUL byte, which ends a value with -z");
    }
    reserve(&mut value, 1)?;
    value.push(0);
    Ok(value)
}

/// Room for `more` bytes beside what `line` holds, or an error that says it could not be had.
fn reserve(line: &mut Vec<u8>, more: usize) -> anyhow::Result<()> {
    line.try_reserve_exact(more).map_err(|e| {
        anyhow::anyhow!(
            "no memory for a line of {} bytes ({e}); `mmf read NAME --format bytes` prints the \
             value as it is",
            line.len().saturating_add(more)
        )
    })
}

/// `text` as a JSON string, in a string whose room is asked for first: its exact length is
/// counted before it is written (serde_json escapes `"`, `\` and control characters only).
fn json_string(text: &str) -> anyhow::Result<String> {
    let escaped: usize = text
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum();
    let mut out = Vec::new();
    reserve(&mut out, escaped + 2)?;
    serde_json::to_writer(&mut out, text)?;
    debug_assert_eq!(
        out.len(),
        escaped + 2,
        "the count matches serde_json's escapes"
    );
    Ok(String::from_utf8(out)?)
}

/// "a text", "a bytes", "a tag 300": what `--json` skipped.
fn a_tag(tag: Tag) -> String {
    match tag.name() {
        Some(name) => format!("a {name}"),
        None => format!("a {tag}"),
    }
}

/// `{"$bin": base64}`.
fn bin(bytes: &[u8]) -> anyhow::Result<String> {
    Ok(mmf::json::bytes_to_json(bytes)?)
}

/// With `--meta`, the record of a value that cannot be shown: its generation, the channel's
/// incarnation, skipped generations and codec, and the error in place of the value. (Not
/// counted by `--count`.)
fn error_line(meta: Meta, incarnation: u64, skipped: u64, error: &str) -> anyhow::Result<Vec<u8>> {
    let mut line = serde_json::to_vec(&json!({
        "generation": meta.generation,
        "incarnation": format!("{incarnation:016x}"),
        "skipped": skipped,
        "codec": meta.tag.to_string(),
        "error": error,
    }))?;
    line.push(b'\n');
    Ok(line)
}
