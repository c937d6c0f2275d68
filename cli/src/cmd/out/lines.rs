//! `mmf out NAME --lines`: each line of standard input published as a value of its own, as it
//! comes, into the channel that the name leads to at the time.

use std::io::BufRead;
use std::time::{Duration, Instant};

use anyhow::Context;
use mmf::{Channel, Location, Options};

use super::{json_blank, limit_of, open_for, publish, Waiting};
use crate::args::{InFormat, OutArgs};
use crate::exit::{Coded, ERROR, INVALID_INPUT, NOT_FOUND, TOO_LARGE};

/// How often the name is looked at whatever the `retired` hint says (which `rm`, or a remover
/// that may not write the file, leaves unset), as often as a `Follower` looks; the channel's
/// file is touched then too.
const LOOK_EVERY: Duration = Duration::from_millis(100);

/// One line of standard input, as [`next_line`] read it.
enum Line {
    /// The value, without its line end, in the buffer. `drained`: the input read so far is
    /// used up (the next read may wait: the input paused, or ended); `ended`: the input ended
    /// with this line, which had no line end.
    Value { drained: bool, ended: bool },
    /// The buffer is full (the limit and two bytes for a line end) and no line end came yet:
    /// the rest of the line is still to be read ([`next_line`] again, with a larger limit, or
    /// [`skip_line`]).
    Partial,
    /// No more input.
    End,
}

pub(super) fn run(a: &OutArgs, location: &Location) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let format = a.format();
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    let mut input = Waiting(stdin.lock());
    // What ends a line: a newline, or NUL (`-z`) for values that may hold newlines.
    let end = if a.zero_terminated { 0 } else { b'\n' };
    let mut options = Options::new();
    options
        .lock_timeout(a.lock_timeout)
        .exclusive_writer(a.exclusive);
    let mut ch = match options.open(location) {
        // The command writing to our standard input may be the one that creates the channel
        // (`(mmf new N; producer) | mmf out N --lines`): looked for again once input has come.
        Err(mmf::channel::Error::NotFound { .. }) if !terminal => {
            let first = input.fill_buf().with_context(|| {
                format!(
                    "reading standard input failed: nothing was published to '{location}', \
                     which does not exist yet"
                )
            })?;
            let len = first.iter().position(|&b| b == end).unwrap_or(first.len());
            open_for(&options, location, len)?
        }
        other => other?,
    };
    if terminal {
        crate::exit::note(format_args!(
            "publishing each line typed to '{location}' as a value; end with Ctrl-D"
        ));
    }
    let mut line = Vec::new();
    // The number of the last line published, for what a failure says.
    let mut last: Option<u64> = None;
    let mut number = 0u64;
    // With --keep-going: the lines skipped (the first one's number and exit code), and how
    // many were published, for what the command ends with.
    let mut skips = Skips::default();
    let mut follow = Follow::new(&options, location);
    // The feed, to its end or to the failure that ends it, which then also says what
    // --keep-going skipped before it (each skip was said as it happened, maybe long before).
    let feed = || -> anyhow::Result<()> {
        loop {
            line.clear();
            number += 1;
            let unread = || unread(location, number, last);
            // Longer than a value of this channel: the name may lead to a larger one now (`new
            // --force` with a larger size), which the line may fit. `holds`: how many bytes it
            // holds, or more than how many.
            let too_long = |holds: &dyn std::fmt::Display, ch: &Channel| {
                Coded(
                    TOO_LARGE,
                    format!(
                        "the line holds {holds} bytes, more than channel '{location}' (capacity \
                         {} bytes) can hold as a value (`{}` makes a larger channel, dropping the \
                         current value)",
                        ch.capacity(),
                        crate::exit::command(
                            "new",
                            super::super::typed(location),
                            "--size SIZE --force"
                        )
                    ),
                )
            };
            // A line that cannot be a value: skipped with --keep-going, else the end.
            let mut refuse =
                |e: anyhow::Error| match a.keep_going && skips.take(&e, number, location) {
                    true => Ok(()),
                    false => Err(e.context(not_published(location, number, last))),
                };
            // (Whether the line was skipped, whether the input read so far is used up, whether it
            // ended with this line.)
            let (refused, drained, ended) = loop {
                let limit = limit_of(&ch, format);
                match next_line(&mut input, &mut line, limit, end).with_context(unread)? {
                    Line::Partial => {
                        ch = follow.look(ch, number, last)?;
                        if limit_of(&ch, format) > limit {
                            continue;
                        }
                        // Refused before the rest is read, which may never end (`yes | tr -d
                        // '\n'` read on in silence, an ops review's): without --keep-going the
                        // command ends here, with it the skip is said while its rest is read past.
                        // (Of the channel in hand: a replacement may be smaller.)
                        let more = format!("more than {}", limit_of(&ch, format));
                        refuse(too_long(&more, &ch).into())?;
                        let at_end = skip_line(&mut input, end).with_context(unread)?;
                        // (Input that ended with it is not asked again: a terminal would wait for
                        // another Ctrl-D, a review's third.)
                        break (true, at_end, at_end);
                    }
                    // Whole, one byte too long (the room kept for a `\r`).
                    Line::Value { drained, ended } if line.len() as u64 > limit => {
                        ch = follow.look(ch, number, last)?;
                        if line.len() as u64 > limit_of(&ch, format) {
                            refuse(too_long(&line.len(), &ch).into())?;
                            break (true, drained, ended);
                        }
                        break (false, drained, ended);
                    }
                    Line::Value { drained, ended } => break (false, drained, ended),
                    Line::End => break (false, true, true),
                }
            };
            let skipped = match format {
                _ if refused || ended && line.is_empty() => true,
                // JSON Lines: a blank line carries no document (JSON's own whitespace only).
                InFormat::Json => json_blank(&line),
                _ => a.no_empty && line.is_empty(),
            };
            if !skipped {
                ch = follow.current(ch, number, last, drained)?;
                let published = match publish_line(&ch, format, &line, number, a.zero_terminated) {
                    Ok(generation) => Some(generation),
                    Err(e) => {
                        refuse(e)?;
                        None
                    }
                };
                if let Some(generation) = published {
                    after_publish(a, &ch, location, generation, number)?;
                    last = Some(number);
                    skips.published += 1;
                    // The input paused here (the next read may wait): a replacement right around this
                    // publish (renamed before it, marked after the hint was read), which the next line
                    // would find only when it comes (`tail -F`: maybe hours later), is looked for now.
                    if drained {
                        ch = follow.settle(ch, number, |ch| {
                            let generation =
                                publish_line(ch, format, &line, number, a.zero_terminated)
                                    .with_context(|| {
                                        format!(
                                        "'{location}' was replaced as line {number} was published, \
                                         and publishing it again into the new channel failed; no \
                                         later line was published"
                                    )
                                    })?;
                            after_publish(a, ch, location, generation, number)
                        })?;
                    }
                }
            }
            // Not asked again at the end of the input: a terminal would wait for another
            // Ctrl-D.
            if ended {
                let _ = ch.touch();
                return Ok(());
            }
        }
    };
    match feed() {
        Ok(()) => skips.outcome(location),
        Err(e) => Err(skips.before(e, location)),
    }
}

/// The lines `--keep-going` skipped, and the values published.
#[derive(Default)]
struct Skips {
    count: u64,
    /// The first one's number and exit code.
    first: Option<(u64, u8)>,
    /// Lines published (not those skipped as blank, nor the skipped ones).
    published: u64,
}

impl Skips {
    /// Whether `err`, line `number`'s, is the line's own fault (not UTF-8 or not JSON, too
    /// large for the channel), which `--keep-going` skips: then it is said on standard error,
    /// and counted.
    fn take(&mut self, err: &anyhow::Error, number: u64, location: &Location) -> bool {
        let code = crate::exit::code(err);
        if code != INVALID_INPUT && code != TOO_LARGE {
            return false;
        }
        let why = crate::exit::report(err, "out", Some(&super::super::typed(location)));
        crate::exit::say(format_args!("line {number} skipped: {why}"));
        self.count += 1;
        self.first.get_or_insert((number, code));
        true
    }

    /// `err`, which ended the command, followed by what was skipped before it, if anything was.
    fn before(&self, err: anyhow::Error, location: &Location) -> anyhow::Error {
        let Some((first, _)) = self.first else {
            return err;
        };
        let code = crate::exit::code(&err);
        let what = crate::exit::report(&err, "out", Some(&super::super::typed(location)));
        let skipped = match self.count {
            1 => format!("before that, line {first} could not be published and was skipped"),
            n => format!(
                "before that, {n} lines could not be published and were skipped (the first, \
                 line {first})"
            ),
        };
        Coded(code, format!("{what}; {skipped}")).into()
    }

    /// What the command ends with: success where no line was skipped, else the first skipped
    /// line's exit code, so that a pipeline's status shows the loss (as `make -k` ends).
    fn outcome(&self, location: &Location) -> anyhow::Result<()> {
        let Some((first, code)) = self.first else {
            return Ok(());
        };
        // What was published, counted (a review's: blank lines skipped as such were said to
        // have gone to the channel).
        let went = match self.published {
            0 => format!("nothing was published to '{location}'"),
            1 => format!("1 line was published to '{location}'"),
            n => format!("{n} lines were published to '{location}'"),
        };
        let what = match self.count {
            1 => format!("line {first} could not be published and was skipped; {went}"),
            n => format!(
                "{n} lines could not be published and were skipped (the first, line {first}); \
                 {went}"
            ),
        };
        Err(Coded(code, what).into())
    }
}

/// `line` (number `number`) published into `ch`: as `mmf out` publishes a value, except that a
/// line other than the first is never taken for UTF-16 (its byte-order mark comes first), and
/// a JSON error names the column alone (the line is one). `nul`: lines end with NUL (`-z`),
/// and a JSON error names the line within the record too.
fn publish_line(
    ch: &Channel,
    format: InFormat,
    line: &[u8],
    number: u64,
    nul: bool,
) -> anyhow::Result<u64> {
    publish(ch, format, line, number == 1).map_err(|e| {
        let json = e
            .chain()
            .find_map(|e| match e.downcast_ref::<mmf::Error>() {
                Some(mmf::Error::InvalidJson {
                    line,
                    column,
                    message,
                    ..
                }) => Some((*line, *column, message.clone())),
                _ => None,
            });
        match json {
            Some((line_in, column, message)) => {
                // A document cut at the line's end: one written over several lines (`jq .`
                // indents), which --lines reads line by line (a migrating user's review).
                // (With -z, a record may hold newlines: no such advice there.)
                let hint = match !nul && message.starts_with("EOF while parsing") {
                    true => {
                        " (--lines reads one whole JSON document a line: `jq -c` writes them so)"
                    }
                    false => "",
                };
                // With -z a record may span lines: the line within it is said too (the
                // second review's).
                let at = match nul {
                    true => format!("line {line_in}, column {column} of the record"),
                    false => format!("column {column}"),
                };
                Coded(
                    INVALID_INPUT,
                    format!("invalid JSON at {at}: {message}{hint}"),
                )
                .into()
            }
            None => e,
        }
    })
}

/// Where the name leads: looked at when the channel's `retired` hint is set (at once after an
/// mmf process removed or replaced it), and every [`LOOK_EVERY`] besides.
struct Follow<'a> {
    options: &'a Options,
    location: &'a Location,
    looked: Instant,
    /// Lines published since the clock was last read: it is read every [`CLOCK_EVERY`] lines,
    /// and whenever the input pauses (a clock read is a fifth of a line's cost).
    unclocked: u32,
    /// Whether the hint is worth a look: not once it was set on a channel that the name still
    /// led to (a stray write, which would otherwise cost a look before every line).
    trust_hint: bool,
}

/// How many lines in a row may go by without a read of the clock while the input keeps
/// coming (some microseconds' worth).
const CLOCK_EVERY: u32 = 64;

impl<'a> Follow<'a> {
    fn new(options: &'a Options, location: &'a Location) -> Follow<'a> {
        Follow {
            options,
            location,
            looked: Instant::now(),
            unclocked: 0,
            trust_hint: true,
        }
    }

    /// `ch`, or the channel the name leads to now if it was removed or replaced, when the hint
    /// says so or the last look is [`LOOK_EVERY`] old (asked when the input `paused`, or every
    /// [`CLOCK_EVERY`] lines).
    fn current(
        &mut self,
        ch: Channel,
        number: u64,
        last: Option<u64>,
        paused: bool,
    ) -> anyhow::Result<Channel> {
        let hinted = self.trust_hint && ch.retired_hint();
        if !hinted {
            self.unclocked += 1;
            if !paused && self.unclocked < CLOCK_EVERY {
                return Ok(ch);
            }
            self.unclocked = 0;
            if self.looked.elapsed() < LOOK_EVERY {
                return Ok(ch);
            }
        }
        let ch = self.look(ch, number, last)?;
        // Writes through the mapping leave a shared-memory file's time alone: `mmf prune` must
        // not take a channel published to a moment ago for abandoned once this ends (by a
        // signal, as `tail -F | mmf out T --lines` does). Best effort.
        let _ = ch.touch();
        Ok(ch)
    }

    /// `ch`, or the channel the name leads to now if it was removed or replaced: looked at now.
    /// A name with nothing under it ends the command (exit 3), as `mmf out` does.
    fn look(&mut self, ch: Channel, number: u64, last: Option<u64>) -> anyhow::Result<Channel> {
        let (options, location) = (self.options, self.location);
        let hinted = self.trust_hint && ch.retired_hint();
        self.looked = Instant::now();
        // A look that fails says nothing about the name: publish on, as before it.
        if ch.is_current().unwrap_or(true) {
            self.trust_hint &= !hinted;
            // A file cut inside its header page faults nothing: the rest of the page reads as
            // zeros, and what is published there reaches no one (a review's `truncate -s 100`
            // under a feed, which went on publishing and exited 0). Its size tells, as a
            // `Follower`'s look finds it; a damaged value alone is mended by the next line, and
            // an `fstat` that failed says nothing, as a failed look at the name says nothing.
            match ch.verify() {
                Err(
                    e @ (mmf::channel::Error::Corrupt { .. }
                    | mmf::channel::Error::Truncated { .. }),
                ) if !e.mended_by_publish() => {
                    return Err(anyhow::Error::new(e).context(format!(
                        "{} (and lines published after its file was cut, grown or written \
                         over, within the last {} ms, reached no one)",
                        not_published(location, number, last),
                        LOOK_EVERY.as_millis()
                    )))
                }
                _ => return Ok(ch),
            }
        }
        let now = options.open(location).map_err(|e| match e {
            mmf::channel::Error::NotFound { .. } => Coded(
                NOT_FOUND,
                format!(
                    "'{location}' was removed while lines were being published: {} (`{}` makes \
                     it again)",
                    not_published(location, number, last),
                    crate::exit::command("new", super::super::typed(location), "--size SIZE")
                ),
            )
            .into(),
            e => anyhow::Error::new(e).context(not_published(location, number, last)),
        })?;
        crate::exit::note(format_args!(
            "'{location}' was replaced; publishing from line {number} into the new channel"
        ));
        self.trust_hint = true;
        Ok(now)
    }

    /// After the publish of line `number` into `ch` where the input paused: the channel the
    /// name leads to now, with `again` (the publish, made anew) done in it first if it replaced
    /// `ch` and holds no value yet, never over a value another writer published there. A name
    /// with nothing under it is left to the next line's look.
    fn settle(
        &mut self,
        mut ch: Channel,
        number: u64,
        mut again: impl FnMut(&Channel) -> anyhow::Result<()>,
    ) -> anyhow::Result<Channel> {
        let (options, location) = (self.options, self.location);
        for _ in 0..3 {
            if ch.is_current().unwrap_or(true) {
                return Ok(ch);
            }
            let Ok(now) = options.open(location) else {
                return Ok(ch);
            };
            self.looked = Instant::now();
            self.trust_hint = true;
            ch = now;
            if ch.generation() == 0 {
                again(&ch)?;
                crate::exit::note(format_args!(
                    "'{location}' was replaced as line {number} was published: published it \
                     again into the new channel"
                ));
            }
        }
        Ok(ch)
    }
}

/// What follows each publish: `--sync`'s write-back and `--print-generation`'s line.
fn after_publish(
    a: &OutArgs,
    ch: &Channel,
    location: &Location,
    generation: u64,
    number: u64,
) -> anyhow::Result<()> {
    if a.sync {
        ch.flush().with_context(|| {
            format!(
                "line {number} is published to '{location}' as generation {generation}, but \
                 making it durable (--sync) failed; no later line was published"
            )
        })?;
    }
    if a.print_generation {
        if let Err(e) = super::super::print_bytes(format!("{generation}\n").as_bytes()) {
            let what = format!(
                "line {number} is published to '{location}' as generation {generation}; \
                 printing it failed, and no later line was published"
            );
            // Not the quiet success of a broken pipe (`mmf read | head`): input is left
            // unpublished, which a pipeline's status must show (`set -o pipefail`).
            return Err(match crate::exit::is_broken_pipe(&e) {
                true => Coded(
                    ERROR,
                    format!("{what}: the reader of standard output has gone (broken pipe)"),
                )
                .into(),
                false => e.context(what),
            });
        }
    }
    Ok(())
}

/// What a line that could not be published leaves: the lines before it are out.
fn not_published(location: &Location, number: u64, last: Option<u64>) -> String {
    let published = match last {
        Some(last) => format!("line {last} was the last published"),
        None => "none was published".to_owned(),
    };
    format!(
        "line {number} of standard input was not published to '{location}', nor any after it; \
         {published}"
    )
}

/// The context of a failed read of standard input.
fn unread(location: &Location, number: u64, last: Option<u64>) -> String {
    format!(
        "reading standard input failed: {}",
        not_published(location, number, last)
    )
}

/// Reads on into `buf` up to the end of the line, without its `end` byte (`\n`, where a `\r`
/// before it goes too, or NUL for `-z`), keeping at most `limit` bytes of value and two of line
/// end: a longer line is [`Line::Partial`] (`yes | tr -d '\n'` must not fill memory). A last
/// line without its end is a line. Room that cannot be had is an error (`OutOfMemory`), not an
/// abort as `read_until`'s.
fn next_line(
    input: &mut impl BufRead,
    buf: &mut Vec<u8>,
    limit: u64,
    end: u8,
) -> std::io::Result<Line> {
    let room = usize::try_from(limit.saturating_add(2)).unwrap_or(usize::MAX);
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            return Ok(if buf.is_empty() {
                Line::End
            } else {
                Line::Value {
                    drained: true,
                    ended: true,
                }
            });
        }
        let left = room.saturating_sub(buf.len());
        let (take, whole) = match chunk[..chunk.len().min(left)]
            .iter()
            .position(|&b| b == end)
        {
            Some(at) => (at + 1, true),
            None => (chunk.len().min(left), false),
        };
        let drained = take == chunk.len();
        buf.try_reserve(take).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::OutOfMemory,
                format!("out of memory for a line of more than {} bytes", buf.len()),
            )
        })?;
        buf.extend_from_slice(&chunk[..take]);
        input.consume(take);
        if whole {
            buf.pop();
            if end == b'\n' && buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(Line::Value {
                drained,
                ended: false,
            });
        }
        if buf.len() >= room {
            return Ok(Line::Partial);
        }
    }
}

/// Reads past the rest of a line whose start is in hand, keeping nothing: whether the input
/// ended with it (no `end` came).
fn skip_line(input: &mut impl BufRead, end: u8) -> std::io::Result<bool> {
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            return Ok(true);
        }
        let (take, ended) = match chunk.iter().position(|&b| b == end) {
            Some(at) => (at + 1, true),
            None => (chunk.len(), false),
        };
        input.consume(take);
        if ended {
            return Ok(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{next_line, skip_line, Line};

    /// Every line of `input`, read with `limit` and `end`: its text, or what a line too long
    /// for the limit had read of it when it was found too long.
    fn split(mut input: &[u8], limit: u64, end: u8) -> Vec<String> {
        let mut got = Vec::new();
        loop {
            let mut buf = Vec::new();
            match next_line(&mut input, &mut buf, limit, end).unwrap() {
                Line::End => return got,
                Line::Value { .. } => got.push(String::from_utf8(buf).unwrap()),
                Line::Partial => {
                    skip_line(&mut input, end).unwrap();
                    got.push(format!("too long: {}", String::from_utf8(buf).unwrap()));
                }
            }
        }
    }

    /// Lines split as `BufRead::lines` splits them, a long one found too long once it has
    /// `limit` bytes and two more (room for a `\r` of its line end), and read past to its end.
    #[test]
    fn lines_are_split_at_their_ends_and_a_long_one_is_read_past() {
        let input = b"a\r\n\nb\rc\n0123456789abc\r\n12345678\r\n123456789\r\nlast";
        assert_eq!(
            split(input, 8, b'\n'),
            [
                "a",
                "",
                "b\rc",
                "too long: 0123456789",
                "12345678",
                "too long: 123456789\r",
                "last"
            ]
        );
    }

    /// A line read on with a larger limit after `Partial` is whole.
    #[test]
    fn a_partial_line_reads_on_with_a_larger_limit() {
        let mut input: &[u8] = b"0123456789abc\nnext\n";
        let mut buf = Vec::new();
        assert!(matches!(
            next_line(&mut input, &mut buf, 4, b'\n').unwrap(),
            Line::Partial
        ));
        assert_eq!(buf, b"012345");
        assert!(matches!(
            next_line(&mut input, &mut buf, 64, b'\n').unwrap(),
            Line::Value { .. }
        ));
        assert_eq!(buf, b"0123456789abc");
    }

    /// With `-z` a NUL ends a value, which keeps its newlines and a `\r` at its end.
    #[test]
    fn nul_terminated_values_keep_their_newlines() {
        let input = b"a\nb\r\n\0c\r\0\0last\n";
        assert_eq!(split(input, 8, 0), ["a\nb\r\n", "c\r", "", "last\n"]);
    }
}
