//! `mmf out NAME [VALUE]`: publish a value from the argument or standard input.

use std::io::{BufRead, Read};

use anyhow::Context;
use mmf::{Channel, ChannelExt, Location, Options, Tag};

use crate::args::{InFormat, OutArgs};
use crate::exit::{Coded, INVALID_INPUT, NOT_FOUND, TOO_LARGE, USAGE};

mod lines;

pub fn run(a: OutArgs) -> anyhow::Result<()> {
    let location = Location::parse_os(&a.name)?;
    if a.lines {
        // '-' is standard input, which --lines reads anyway; `-- -` is the text '-'.
        if a.value.as_ref().is_some_and(|v| v != "-")
            || (a.value.is_some() && dash_after_double_dash(std::env::args_os()))
        {
            return Err(Coded(
                USAGE,
                "--lines publishes the lines of standard input, not a VALUE: pipe the values \
                 in, one a line"
                    .into(),
            )
            .into());
        }
        return lines::run(&a, &location);
    }
    use std::os::unix::ffi::OsStrExt;
    let input: Vec<u8> = match a.value.as_deref() {
        // Not UTF-8 (a shell's `$'\xff'`): bytes for --bytes and --msgpack, an error of its
        // own for text.
        Some(v) if v != "-" => v.as_bytes().to_vec(),
        // After '--', '-' is the text '-': `mmf out T -- "$text"` publishes any text, where
        // reading standard input instead would take a loop's next lines (`while read -r l; do
        // mmf out T -- "$l"; done`), or publish nothing from a job's /dev/null.
        Some(_) if dash_after_double_dash(std::env::args_os()) => b"-".to_vec(),
        given if stdin_is_null() => {
            let what = match given {
                Some(_) => "the value was to be read from standard input ('-')",
                None => "no value was given",
            };
            return Err(Coded(
                USAGE,
                format!(
                    "{what} and standard input is /dev/null (or closed): nothing was published \
                     to '{location}'; give the value as an argument (`{} VALUE`; '' is an \
                     empty one) or pipe it in",
                    crate::exit::command("out", &a.name, "")
                ),
            )
            .into());
        }
        _ => read_stdin(&location, a.format())?,
    };
    if a.no_empty && input.is_empty() {
        return Err(Coded(
            INVALID_INPUT,
            format!(
                "the value is empty: nothing was published to '{location}', which keeps its \
                 value (--no-empty)"
            ),
        )
        .into());
    }
    // Opened (again) once the value is here: while standard input was read, the channel may
    // have been created, or replaced by `new --force`, and a value published into the old one
    // would be lost without a word.
    let mut options = Options::new();
    options.lock_timeout(a.lock_timeout);
    let mut ch = open_for(&options, &location, input.len())?;
    // Input that is refused (not UTF-8, not JSON, no JSON at all) is said to leave the channel
    // as it was, as an empty value and a failed read of standard input are (a migrating user's
    // review found `true | mmf out T --json` the one refusal that did not say so).
    let mut generation =
        publish(&ch, a.format(), &input, true).map_err(|e| {
            match crate::exit::code(&e) == INVALID_INPUT {
                true => e.context(format!(
                    "nothing was published to '{location}', which keeps its value"
                )),
                false => e,
            }
        })?;
    // Removed or replaced between that open and the publish (`rm`, `new --force`, `prune`):
    // the value went where no reader looks. Publish it into what the name holds now, or say
    // that nothing does (exit 3), rather than exit 0 having lost it.
    let mut tries = 0;
    while !ch.is_current().unwrap_or(true) {
        tries += 1;
        if tries > 3 {
            return Err(Coded(
                crate::exit::ERROR,
                format!(
                    "'{location}' was replaced {tries} times while the value was being \
                     published; it may not hold the value"
                ),
            )
            .into());
        }
        ch = options.open(&location)?;
        generation = publish(&ch, a.format(), &input, true)?;
    }
    // No handle outlives this command: tell `mmf prune` the channel is in use all the same. A
    // failure here takes nothing from the publish, which is done.
    let _ = ch.touch();
    if a.sync {
        // The value is out: a script told it failed must not publish it again blindly.
        ch.flush().with_context(|| {
            format!(
                "generation {generation} is published to '{location}', but making it durable \
                 (--sync) failed"
            )
        })?;
    }
    if a.print_generation {
        // The value is out: a script told it failed must not publish it again blindly.
        super::print_bytes(format!("{generation}\n").as_bytes()).with_context(|| {
            format!("generation {generation} is published to '{location}'; printing it failed")
        })?;
    }
    Ok(())
}

/// Whether the command line `args` has a '-' after its first '--': the value (`mmf out NAME --
/// -`; clap gives the value alone, without saying where '--' was).
fn dash_after_double_dash(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    args.skip_while(|a| a != "--").skip(1).any(|a| a == "-")
}

/// Opens the channel a value of `len` bytes is for, with `options`: a missing one is exit 3,
/// with advice to create it large enough for the value (of what was read of it: standard input
/// is read up to [`MISSING_READ`] bytes while the channel is missing).
fn open_for(options: &Options, location: &Location, len: usize) -> anyhow::Result<Channel> {
    options.open(location).map_err(|e| match e {
        mmf::channel::Error::NotFound { name, .. } => {
            Coded(NOT_FOUND, crate::exit::not_found(&name, len)).into()
        }
        e => e.into(),
    })
}

/// Whether standard input is `/dev/null`. A process started with it closed gets `/dev/null`
/// there too (Rust's runtime opens it on a closed descriptor 0), so this is also `mmf out NAME
/// <&-`. Reading the value from it can only be a mistake (a script that forgot the value, or
/// whose value was the text '-', a job without input), and publishing the empty input would
/// replace the value readers have.
fn stdin_is_null() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let stdin = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from);
    let (Ok(null), Ok(Ok(stdin))) = (std::fs::metadata("/dev/null"), stdin.map(|f| f.metadata()))
    else {
        return false;
    };
    stdin.file_type().is_char_device() && stdin.rdev() == null.rdev()
}

/// How much standard input is read while the channel is missing, waiting for it to appear.
const MISSING_READ: u64 = 1 << 20;

/// The context of a failed read of standard input: that nothing was published, as every other
/// refusal of `out` says (a review's `mmf out T < /` said only "Is a directory").
fn unread(location: &Location) -> String {
    format!(
        "reading standard input failed: nothing was published to '{location}', which keeps its \
         value"
    )
}

/// Standard input, read only as far as a value can fit the channel (`yes | mmf out NAME` must
/// not read until memory runs out). JSON text may be longer than its MessagePack (spaces, long
/// numbers), so it may run to 16 times the capacity, plus 1 MiB.
///
/// The channel may not exist yet: the command writing to our standard input may be the one
/// that creates it (`(mmf new N ...; echo hi) | mmf out N`). So a missing channel is looked for
/// again once the first input has come, and at the end of the input if that comes within
/// [`MISSING_READ`] bytes; only then is it an error (at once, when standard input is a terminal).
/// It may also be replaced meanwhile (`new --force`), by a larger one: input beyond the first
/// channel's capacity is read on when the channel there now holds more.
fn read_stdin(location: &Location, format: InFormat) -> anyhow::Result<Vec<u8>> {
    use std::io::IsTerminal;
    let stdin = std::io::stdin();
    let mut input = Waiting(stdin.lock());
    let mut buf = Vec::new();
    let mut ch = match Options::new().open(location) {
        // Typed at a terminal: nobody is about to create it; say so before the typing.
        Err(e @ mmf::channel::Error::NotFound { .. }) if stdin.is_terminal() => {
            return Err(e.into())
        }
        Err(mmf::channel::Error::NotFound { .. }) => {
            input.fill_buf().with_context(|| unread(location))?;
            match Options::new().open(location) {
                Err(mmf::channel::Error::NotFound { .. }) => {
                    // Maybe created while the input is still coming: read on (at most
                    // MISSING_READ), and look a last time at its end.
                    (&mut input)
                        .take(MISSING_READ + 1)
                        .read_to_end(&mut buf)
                        .with_context(|| unread(location))?;
                    open_for(&Options::new(), location, buf.len())?
                }
                other => other?,
            }
        }
        other => other?,
    };
    if stdin.is_terminal() {
        // Otherwise `mmf out NAME` at a prompt looks like a hang (a note: --quiet keeps it
        // unsaid).
        crate::exit::note(format_args!(
            "reading the value for '{location}' from the terminal; end it with Ctrl-D (or give \
             it as an argument: mmf out NAME VALUE)"
        ));
    }
    loop {
        let limit = limit_of(&ch, format);
        let room = limit.saturating_add(1).saturating_sub(buf.len() as u64);
        (&mut input)
            .take(room)
            .read_to_end(&mut buf)
            .with_context(|| unread(location))?;
        if buf.len() as u64 <= limit {
            return Ok(buf);
        }
        match Options::new().open(location) {
            Ok(now) if limit_of(&now, format) > limit => ch = now,
            _ => break,
        }
    }
    let cap = ch.capacity();
    let what = match format {
        InFormat::Json => format!("more than {} bytes of JSON text", limit_of(&ch, format)),
        _ => format!("more than {cap} bytes"),
    };
    Err(Coded(
        TOO_LARGE,
        format!(
            "standard input holds {what}, more than channel '{location}' (capacity {cap} bytes) \
             can hold; nothing was published (`{}` makes a larger channel, dropping the \
             current value)",
            crate::exit::command("new", super::typed(location), "--size SIZE --force")
        ),
    )
    .into())
}

/// Whether `bytes` hold no JSON document: JSON's whitespace alone (space, tab, line feed,
/// carriage return; not form feed), or nothing.
fn json_blank(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// How many bytes of input a value for `ch` may take: its capacity, and for JSON text, which
/// may be longer than its MessagePack (spaces, long numbers), 16 times that plus 1 MiB.
fn limit_of(ch: &Channel, format: InFormat) -> u64 {
    let cap = ch.capacity() as u64;
    match format {
        InFormat::Json => cap.saturating_mul(16).saturating_add(1 << 20),
        _ => cap,
    }
}

/// Publishes `input` into `ch` as `format` says; `first`: the input's start, where a UTF-16
/// byte-order mark is looked for.
fn publish(ch: &Channel, format: InFormat, input: &[u8], first: bool) -> anyhow::Result<u64> {
    if first
        && matches!(format, InFormat::Text | InFormat::Json)
        && (input.starts_with(&[0xff, 0xfe]) || input.starts_with(&[0xfe, 0xff]))
    {
        // PowerShell 5 writes UTF-16 through `>` and `Out-File`: say so, rather than "not UTF-8".
        return Err(Coded(
            INVALID_INPUT,
            "the input is UTF-16 (it starts with a UTF-16 byte-order mark), not UTF-8; in \
             PowerShell pipe the text in, or write it with `Out-File -Encoding utf8`"
                .into(),
        )
        .into());
    }
    use crate::exit::utf8;
    Ok(match format {
        InFormat::Text => ch.publish_str(utf8(input)?)?,
        InFormat::Json => {
            // JSON is UTF-8 text (RFC 8259): not "--bytes publishes it", which is no JSON.
            let text = utf8(input).map_err(|e| {
                Coded(
                    INVALID_INPUT,
                    format!("JSON must be UTF-8 text, and this input is not: {e}"),
                )
            })?;
            // RFC 8259 lets a parser ignore a byte-order mark; Windows tools (PowerShell 5's
            // UTF-8 among them) write one.
            let text = text.strip_prefix('\u{feff}').unwrap_or(text);
            if json_blank(text.as_bytes()) {
                // Said as such, not "EOF while parsing a value at column 0" (a review's).
                return Err(Coded(
                    INVALID_INPUT,
                    format!(
                        "no JSON document: the input is {}",
                        match text.is_empty() {
                            true => "empty",
                            false => "only whitespace",
                        }
                    ),
                )
                .into());
            }
            ch.publish_json(text).map_err(|e| match e {
                // The size refused is the MessagePack's, not the text's: say so.
                mmf::Error::Channel(mmf::channel::Error::TooLarge { .. }) => {
                    anyhow::Error::new(e).context("JSON is stored as MessagePack")
                }
                e => e.into(),
            })?
        }
        InFormat::Msgpack => {
            // Check that it is one whole document that `mmf read` can show (no map with two
            // keys that read the same in JSON) before it reaches readers: rendered as JSON into
            // nothing, which keeps only the open maps' keys.
            mmf::json::write_msgpack_as_json(input, std::io::sink()).context(
                "`mmf read` could not show it (--bytes stores it as raw \
                     bytes)",
            )?;
            ch.publish_raw(Tag::MSGPACK, input)?
        }
        InFormat::Bytes => ch.publish_bytes(input)?,
    })
}

/// Standard input that waits for its data where the program that shares it left it
/// non-blocking (`O_NONBLOCK` is the open file's, set for all its users: a Node.js parent sets
/// it on the pipes it makes): a read then fails with `EAGAIN` ("Resource temporarily
/// unavailable") instead of waiting, and `mmf out` gave up on the value with it.
struct Waiting<R>(R);

impl<R: BufRead> Waiting<R> {
    /// Waits until standard input can be read (or is at its end, or fails): see `ready_for`.
    fn wait() -> bool {
        super::ready_for(&std::io::stdin(), rustix::event::PollFlags::IN)
    }
}

impl<R: BufRead> Read for Waiting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match self.0.read(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Self::wait() => {}
                done => return done,
            }
        }
    }
}

impl<R: BufRead> BufRead for Waiting<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        // Asked first, then borrowed: a loop that returned the borrow would hold it across
        // the next try. The end of the input is returned as it is: asked again, a terminal
        // waits for a second Ctrl-D (a review's `mmf out T --lines` at a prompt).
        loop {
            match self.0.fill_buf() {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Self::wait() => {}
                Err(e) => return Err(e),
                Ok([]) => return Ok(&[]),
                Ok(_) => break,
            }
        }
        self.0.fill_buf()
    }

    fn consume(&mut self, n: usize) {
        self.0.consume(n);
    }
}
