//! `mmf read NAME`: print the current value, or wait for the next one.

use anyhow::Context;
use mmf::{Location, Meta, Options, Tag};

use crate::args::{OutFormat, ReadArgs};
use crate::exit::{Coded, EMPTY, EXITED, INVALID_INPUT, TIMEOUT, USAGE};
use crate::follow::{self, Followed, Waited};

pub fn run(a: ReadArgs) -> anyhow::Result<()> {
    // Said here rather than by clap, whose "required arguments were not provided:
    // <--wait|--after <GEN>>" left it to the reader to see that --timeout was the cause.
    if (a.timeout.is_some() || a.pid.is_some()) && !a.wait && a.after.is_none() {
        let flag = if a.timeout.is_some() {
            "--timeout"
        } else {
            "--pid"
        };
        return Err(Coded(
            USAGE,
            format!(
                "{flag} bounds a wait: give it with --wait (the next value) or --after GEN; a \
                 plain read does not wait"
            ),
        )
        .into());
    }
    let format = if a.json { OutFormat::Json } else { a.format };
    // Said, not ignored (a migrating user's review: `--format bytes --pretty` printed the
    // bytes as if --pretty were not there).
    if a.pretty && matches!(format, OutFormat::Msgpack | OutFormat::Bytes) {
        return Err(Coded(
            USAGE,
            format!(
                "--pretty indents JSON, and --format {} prints bytes as stored: give one of them",
                match format {
                    OutFormat::Msgpack => "msgpack",
                    _ => "bytes",
                }
            ),
        )
        .into());
    }
    let location = Location::parse_os(&a.name)?;
    let (meta, bytes, incarnation) = if a.wait || a.after.is_some() {
        let after = a.after.map(|g| (g, a.incarnation));
        read_next(location.clone(), after, a.timeout, a.pid)?
    } else {
        // Plain reads open read-only and unpinned: the cheapest open there is, and read
        // permission is enough.
        let ch = Options::new().read_only(true).open(&location)?;
        let (meta, bytes) = ch.read_raw()?;
        touch(&ch);
        (meta, bytes, ch.incarnation())
    };
    if meta.is_unpublished() {
        return Err(Coded(
            EMPTY,
            format!(
                "channel '{location}' holds no value yet; publish one with `{}`, or wait with \
                 --wait",
                crate::exit::out_command(super::typed(&location))
            ),
        )
        .into());
    }
    if a.meta && a.pretty {
        let value = super::watch::record_value(meta, &bytes)
            .map_err(|e| cannot_show(&location, meta, e))?;
        return print_record_pretty(meta, incarnation, &value);
    }
    if a.meta {
        let mut bytes = bytes;
        let line = super::watch::line_for(&location, meta, incarnation, &mut bytes, None, true)
            .map_err(|e| cannot_show(&location, meta, e))?;
        return super::print_bytes(&line);
    }
    // Indented, a value is written as it is rendered (`print_pretty`): MessagePack shown as
    // JSON, and JSON text shown as JSON or as text.
    let json_out = matches!(format, OutFormat::Auto | OutFormat::Json);
    let indented = match meta.tag {
        Tag::MSGPACK => json_out,
        Tag::JSON => json_out || format == OutFormat::Text,
        _ => false,
    };
    if a.pretty && indented {
        return print_pretty(&location, meta, &bytes);
    }
    // JSON given to `mmf out` without --json is stored as text, which --pretty leaves as it is:
    // said, as `read --json` says it (a new user's review got it unindented without a word).
    // Only where text is printed (`--format json` refuses it, and says why).
    let as_text_json = a.pretty
        && !a.raw
        && matches!(format, OutFormat::Auto | OutFormat::Text)
        && meta.tag == Tag::TEXT
        && std::str::from_utf8(&bytes).is_ok_and(mmf::json::looks_like_json);
    let out = render(&location, meta, bytes, format, a.raw)
        .map_err(|e| cannot_show(&location, meta, e))?;
    super::print_bytes(&out)?;
    if as_text_json {
        crate::exit::note(format_args!(
            "'{location}' holds JSON published as text (`mmf out` without --json), printed as \
             it is stored: publish it with --json for --pretty to indent it"
        ));
    }
    Ok(())
}

/// Marks a shared-memory channel used (its file's times): a channel that scripts only read,
/// between whose `mmf read`s no process maps it, is not one `mmf prune` takes for abandoned an
/// hour after its last `mmf out` (a config a harness published once and its workers read for
/// hours). Where this user may not (another user's channel it may only read), nothing is said:
/// the read was what was asked. A file channel's times are left alone: `prune` does not look
/// at those, and a read that changed a file on disk would surprise backups and `make`; but a
/// path to a shared-memory channel's own file (`mmf read /dev/shm/mmf.T`) is that channel, which
/// `prune` counts, and is touched as its name would be.
fn touch(ch: &mmf::Channel) {
    let shm = match ch.location() {
        Location::Shm(_) => true,
        Location::File(path) => super::is_shm_file(path),
        _ => false,
    };
    if shm {
        let _ = ch.touch();
    }
}

/// Prints a MessagePack or JSON value indented, written as it is rendered. Indented JSON can
/// take hundreds of times the bytes of a deeply nested value another process stored (two spaces
/// a level on every line), which must not all be held in memory at once. An invalid value
/// prints nothing: JSON text is checked whole by `write_json_pretty` before it writes, and
/// MessagePack here first, by a rendering into nothing (which alone finds a map with a key
/// twice before the end of the map).
fn print_pretty(location: &Location, meta: Meta, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let text = (meta.tag == Tag::JSON)
        .then(|| crate::exit::utf8(bytes))
        .transpose()
        .map_err(|e| not_shown(location, meta, &e))?;
    if text.is_none() {
        mmf::json::write_msgpack_as_json(bytes, std::io::sink())
            .map_err(|e| cannot_show(location, meta, e.into()))?;
    }
    crate::interrupt::writing(|| {
        let mut out = std::io::BufWriter::with_capacity(64 << 10, super::Stdout::lock());
        match text {
            Some(text) => mmf::json::write_json_pretty(text, &mut out).map_err(|e| match e {
                // Writing failed (a closed pipe, a full disk): not the value's fault.
                mmf::Error::Write(_) => anyhow::Error::from(e).context(super::WRITING_STDOUT),
                e => cannot_show(location, meta, e.into()),
            })?,
            // Checked above: only writing can fail.
            None => mmf::json::write_msgpack_as_json_pretty(bytes, &mut out)
                .context(super::WRITING_STDOUT)?,
        }
        out.write_all(b"\n")
            .and_then(|()| out.flush())
            .context(super::WRITING_STDOUT)
    })
}

/// Prints `--meta`'s record indented, as `--pretty` indents a value: its fields a line each,
/// and `value` (one line of JSON, `watch::record_value`) indented one level further. Not the
/// one-line record indented whole: that nests one level deeper than the value, and a value
/// of the 127 levels mmf reads would be refused (a first version's).
fn print_record_pretty(meta: Meta, incarnation: u64, value: &str) -> anyhow::Result<()> {
    use std::io::Write;
    /// Writes what it is given with two spaces after each line feed (JSON text has line
    /// feeds only between tokens: strings hold them escaped).
    struct Deeper<W>(W);
    impl<W: Write> Write for Deeper<W> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            for (i, part) in buf.split(|&b| b == b'\n').enumerate() {
                if i > 0 {
                    self.0.write_all(b"\n  ")?;
                }
                self.0.write_all(part)?;
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.0.flush()
        }
    }
    crate::interrupt::writing(|| {
        let mut out = std::io::BufWriter::with_capacity(64 << 10, super::Stdout::lock());
        let head = super::watch::record_head(meta, incarnation, None, true)?;
        out.write_all(head.as_bytes())
            .context(super::WRITING_STDOUT)?;
        // (The value was checked as it was made: only writing can fail.)
        mmf::json::write_json_pretty(value, Deeper(&mut out)).context(super::WRITING_STDOUT)?;
        out.write_all(b"\n}\n")
            .and_then(|()| out.flush())
            .context(super::WRITING_STDOUT)
    })
}

/// A value another process stored that cannot be printed as asked (invalid MessagePack, JSON
/// text that breaks the rules, text that is not UTF-8 made JSON): which channel and value, and
/// how to see it anyway. Other errors pass as they are.
fn cannot_show(location: &Location, meta: Meta, e: anyhow::Error) -> anyhow::Error {
    if !(e.is::<mmf::Error>() || e.is::<crate::exit::NotUtf8>()) {
        return e;
    }
    not_shown(location, meta, &e)
}

/// [`cannot_show`], for what is known to be the value's fault.
fn not_shown(location: &Location, meta: Meta, e: &dyn std::fmt::Display) -> anyhow::Error {
    Coded(
        INVALID_INPUT,
        format!(
            "the {} value in '{location}' (generation {}) cannot be shown as asked: {e}; \
             `{}` prints its bytes",
            meta.tag,
            meta.generation,
            crate::exit::command("read", super::typed(location), "--format bytes")
        ),
    )
    .into()
}

/// The first value newer than generation `after` (default: the current one), waiting for the
/// channel to be created if it does not exist yet, with the incarnation of its channel. If the
/// channel is removed and created again meanwhile, the new channel's first value counts as
/// newer, whatever its generation; so does one of a channel that is not of the incarnation
/// given with `after`. A newer value a crash damaged is said on stderr and waited past.
fn read_next(
    location: Location,
    after: Option<(u64, Option<u64>)>,
    timeout: Option<std::time::Duration>,
    pid: Option<u32>,
) -> anyhow::Result<(Meta, Vec<u8>, u64)> {
    let deadline = follow::deadline(timeout);
    let mut followed = Followed::open(location.clone(), deadline, pid)?;
    let incarnation = after.and_then(|(_, i)| i);
    let mut since = match after {
        // GEN of another channel that had the name: every value of this one is newer.
        Some((_, Some(incarnation))) if followed.channel().incarnation() != incarnation => 0,
        Some((after, _)) => after,
        // Every value of a channel that did not exist when the command started is new.
        None if followed.created_meanwhile() => 0,
        None => followed.channel().generation(),
    };
    // The generation of a newer value a crash damaged: waited past, `since` left as it is.
    let mut refused = None;
    // `--wait` alone waits for a value newer than the one there when it began: a worker that
    // published before that, and then exited or published no more, ends the wait with the
    // timeout or `--pid`'s exit, which say that its value is there (if it still is: not once
    // the channel was removed, or holds another generation).
    let there_already = |followed: &Followed, since: u64, refused: Option<u64>| {
        (after.is_none()
            && since > 0
            && refused.is_none()
            && !followed.is_gone()
            && followed.channel().generation() == since
            // A damaged value there is said as such (`damaged`), and no read takes it.
            && super::damaged(followed.channel()).is_none())
        .then(|| {
            format!(
                " (generation {since} was there when the wait began, and --wait waits for \
                     a newer value: `{}` takes that one too)",
                crate::exit::command("read", super::typed(&location), "--wait --after 0")
            )
        })
    };
    loop {
        let waited = followed.wait(since, refused, deadline, |ch| {
            let now = ch.generation();
            // `--after GEN` kept from another channel under the name (one removed and created
            // again starts from 1): the wait could only end by a timeout.
            let behind = if let Some(what) = super::damaged(ch) {
                what
            } else if now < since && incarnation.is_some() {
                format!(
                    " (the channel is at generation {now}: GEN is ahead of every value it has \
                     had)"
                )
            } else if now < since {
                format!(
                    " (the channel is at generation {now}, incarnation {:016x}: was GEN taken \
                     from a channel since removed and created again? give its --incarnation \
                     with it)",
                    ch.incarnation()
                )
            } else if let Some(damaged) = refused {
                // Said on stderr when it came; the timeout's message alone must not read as
                // though nothing had been published.
                format!(
                    " (generation {damaged} came, could not be read (damaged, or kept busy), \
                     and was waited past for the publish \
                     that replaces it)"
                )
            } else {
                String::new()
            };
            format!(
                "no value newer than generation {since} of '{location}' came within the \
                 timeout{behind}"
            )
        });
        let waited = waited.map_err(|e| match e.downcast::<Coded>() {
            Ok(Coded(code @ (EXITED | TIMEOUT), why)) => {
                let hint = there_already(&followed, since, refused).unwrap_or_default();
                Coded(code, why + &hint).into()
            }
            Ok(coded) => coded.into(),
            Err(e) => e,
        })?;
        match waited {
            Waited::Changed => {
                let current = followed.channel().generation();
                match followed.channel().read_raw() {
                    Ok((meta, bytes)) if meta.generation > since => {
                        touch(followed.channel());
                        return Ok((meta, bytes, followed.channel().incarnation()));
                    }
                    // Another process moved `latest` back between the wait and the read: not
                    // newer, wait again.
                    Ok(_) => {}
                    // The newer value a crash damaged: say so, and wait for the one that
                    // replaces it.
                    Err(e) if follow::passed_by_wait(&e) => {
                        // Judged before it is said (a write to a full pipe could take long).
                        if followed.refuse(current) && e.mended_by_publish() {
                            continue;
                        }
                        follow::waiting_past(e, "read", &super::typed(&location));
                        refused = Some(current);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Waited::Replaced => (since, refused) = (0, None),
        }
    }
}

/// The bytes to print for a value, by the requested format, on one line where it is JSON
/// (`print_pretty` writes it indented).
pub(super) fn render(
    location: &Location,
    meta: Meta,
    bytes: Vec<u8>,
    format: OutFormat,
    raw: bool,
) -> anyhow::Result<Vec<u8>> {
    let as_text = |bytes: Vec<u8>| line(bytes, raw);
    // A rendering, not text as stored: --raw does not apply, and it ends its line (a review
    // found `--raw` printing JSON lines without their newline).
    let as_json = |bytes: Vec<u8>| line(mmf::json::msgpack_to_json(&bytes)?.into_bytes(), false);
    let mismatch = |wanted: &str| -> anyhow::Error {
        // JSON given to `mmf out` without --json is stored as text.
        let published_as_text = meta.tag == Tag::TEXT
            && std::str::from_utf8(&bytes).is_ok_and(mmf::json::looks_like_json);
        Coded(
            INVALID_INPUT,
            format!(
                "channel '{location}' holds a {} value (generation {}), not {wanted}; {}",
                meta.tag,
                meta.generation,
                if published_as_text {
                    "it is JSON published as text (`mmf out` without --json): publish it \
                     with --json to read it as JSON, or read it with --format auto"
                } else {
                    "use --format auto"
                }
            ),
        )
        .into()
    };
    // JSON text another process stored is printed as JSON (auto, `--format json|msgpack`; and
    // indented, by `print_pretty`) only if it is valid by the rules of JSON published as such
    // (FORMAT.md §7.1): a script would take invalid text for JSON, and a rendering of it could
    // make an integer beyond 64 bits a float and drop a key given twice, without a word. Asked
    // for as text or bytes, it is passed on as it is stored.
    let converted = matches!(
        format,
        OutFormat::Auto | OutFormat::Json | OutFormat::Msgpack
    );
    if meta.tag == Tag::JSON && converted {
        mmf::json::validate_json(crate::exit::utf8(&bytes)?)?;
    }
    match (format, meta.tag) {
        (OutFormat::Auto | OutFormat::Text, Tag::TEXT | Tag::JSON) => as_text(bytes),
        (OutFormat::Auto | OutFormat::Json, Tag::MSGPACK) => as_json(bytes),
        (OutFormat::Json, Tag::JSON) => as_text(bytes),
        (OutFormat::Msgpack, Tag::MSGPACK) | (OutFormat::Bytes, _) => Ok(bytes),
        (OutFormat::Msgpack, Tag::JSON) => {
            Ok(mmf::json::json_to_msgpack(crate::exit::utf8(&bytes)?)?)
        }
        (OutFormat::Auto, _) => Ok(bytes),
        (OutFormat::Text, _) => Err(mismatch("text")),
        (OutFormat::Json, _) => Err(mismatch("MessagePack or JSON")),
        // (A JSON value is converted: both are what it takes.)
        (OutFormat::Msgpack, _) => Err(mismatch("MessagePack or JSON")),
    }
}

/// Text ends with exactly the newline it had, or one added (unless `raw`). The byte's room is
/// asked for, not assumed: `bytes` holds exactly the value, which may be most of the memory at
/// hand, and growing it with `push` would abort the process where the allocator refuses.
fn line(mut bytes: Vec<u8>, raw: bool) -> anyhow::Result<Vec<u8>> {
    if !raw && bytes.last() != Some(&b'\n') {
        bytes.try_reserve_exact(1).map_err(|e| {
            anyhow::anyhow!(
                "no memory to add a newline to a value of {} bytes ({e}); `--format bytes` \
                 prints it as it is",
                bytes.len()
            )
        })?;
        bytes.push(b'\n');
    }
    Ok(bytes)
}
