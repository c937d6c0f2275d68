//! `mmf out NAME --lines`: each line of standard input published as a value of its own, as it
//! comes, into the channel that the name leads to at the time.

use std::io::{BufRead, Read};
use std::time::{Duration, Instant};

use anyhow::Context;
use mmf::{Channel, Location, Options};

use super::{limit_of, open_for, publish, Waiting};
use crate::args::{InFormat, OutArgs};
use crate::exit::{Coded, NOT_FOUND, TOO_LARGE};

/// How often the name is looked at whatever the `retired` hint says (which `rm`, or a remover
/// that may not write the file, leaves unset): as often as a `Follower` looks.
const LOOK_EVERY: Duration = Duration::from_millis(100);

/// One line of standard input, as [`next_line`] read it.
enum Line {
    /// The value, without its `\n` or `\r\n`, in the buffer.
    Value,
    /// A line of this many bytes (without its end), longer than a value may be: skipped.
    TooLong(u64),
    /// No more input.
    End,
}

pub(super) fn run(a: &OutArgs, location: &Location) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let format = a.format();
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    let mut input = Waiting(stdin.lock());
    let mut options = Options::new();
    options.lock_timeout(a.lock_timeout);
    let mut ch = match options.open(location) {
        // The command writing to our standard input may be the one that creates the channel
        // (`(mmf new N; producer) | mmf out N --lines`): looked for again once input has come.
        Err(mmf::channel::Error::NotFound { .. }) if !terminal => {
            let first = input
                .fill_buf()
                .with_context(|| unread(location, 1, None))?;
            let len = first
                .iter()
                .position(|&b| b == b'\n')
                .unwrap_or(first.len());
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
    // The last line published, for the last look at the name (see the end).
    let mut last: Option<Vec<u8>> = None;
    let mut number = 0u64;
    let mut follow = Follow::new();
    loop {
        line.clear();
        number += 1;
        let read = next_line(&mut input, &mut line, limit_of(&ch, format))
            .with_context(|| unread(location, number, last.as_ref()))?;
        let skipped = match read {
            Line::End => break,
            Line::TooLong(len) => {
                let cap = ch.capacity();
                return Err(anyhow::Error::new(Coded(
                    TOO_LARGE,
                    format!(
                        "the line holds {len} bytes, more than channel '{location}' (capacity {cap} \
                         bytes) can hold as a value (`{}` makes a larger channel, dropping the \
                         current value)",
                        crate::exit::command("new", super::super::typed(location), "--size SIZE --force")
                    ),
                ))
                .context(not_published(location, number, last.as_ref())));
            }
            Line::Value => match format {
                // JSON Lines: a blank line carries no document.
                InFormat::Json => line.iter().all(u8::is_ascii_whitespace),
                _ => a.no_empty && line.is_empty(),
            },
        };
        if skipped {
            continue;
        }
        ch = follow.current(ch, &options, location, number, last.as_ref())?;
        let generation = publish(&ch, format, &line)
            .with_context(|| not_published(location, number, last.as_ref()))?;
        after_publish(a, &ch, location, generation, number)?;
        match &mut last {
            Some(last) => std::mem::swap(last, &mut line),
            None => last = Some(std::mem::take(&mut line)),
        }
    }
    // The last value is where readers of the name look, as `mmf out`'s is: the hint and the
    // looks above may miss a replacement that came right before its publish.
    if let Some(value) = &last {
        let mut tries = 0;
        while !ch.is_current().unwrap_or(true) {
            tries += 1;
            if tries > 3 {
                return Err(Coded(
                    crate::exit::ERROR,
                    format!(
                        "'{location}' was replaced {tries} times while the last line was being \
                         published; it may not hold it"
                    ),
                )
                .into());
            }
            ch = reopen(&options, location, number, Some(value))?;
            let generation = publish(&ch, format, value)?;
            after_publish(a, &ch, location, generation, number)?;
        }
    }
    let _ = ch.touch();
    Ok(())
}

/// Where the name leads: looked at when the channel's `retired` hint is set (at once after an
/// mmf process removed or replaced it), and every [`LOOK_EVERY`] besides.
struct Follow {
    looked: Instant,
    /// Whether the hint is worth a look: not once it was set on a channel that the name still
    /// led to (a stray write, which would otherwise cost a look before every line).
    trust_hint: bool,
}

impl Follow {
    fn new() -> Follow {
        Follow {
            looked: Instant::now(),
            trust_hint: true,
        }
    }

    fn current(
        &mut self,
        ch: Channel,
        options: &Options,
        location: &Location,
        number: u64,
        last: Option<&Vec<u8>>,
    ) -> anyhow::Result<Channel> {
        let hinted = self.trust_hint && ch.retired_hint();
        if !hinted && self.looked.elapsed() < LOOK_EVERY {
            return Ok(ch);
        }
        self.looked = Instant::now();
        // A look that fails says nothing about the name: publish on, as before it.
        if ch.is_current().unwrap_or(true) {
            self.trust_hint &= !hinted;
            return Ok(ch);
        }
        let now = reopen(options, location, number, last)?;
        crate::exit::note(format_args!(
            "'{location}' was replaced; publishing from line {number} into the new channel"
        ));
        self.trust_hint = true;
        Ok(now)
    }
}

/// The channel under the name now, once the one in hand was removed or replaced: a name with
/// nothing under it ends the command (exit 3), as `mmf out` does.
fn reopen(
    options: &Options,
    location: &Location,
    number: u64,
    last: Option<&Vec<u8>>,
) -> anyhow::Result<Channel> {
    options.open(location).map_err(|e| match e {
        mmf::channel::Error::NotFound { .. } => Coded(
            NOT_FOUND,
            format!(
                "'{location}' was removed while lines were being published: line {number} of \
                 standard input was not published, nor any after it"
            ),
        )
        .into(),
        e => anyhow::Error::new(e).context(not_published(location, number, last)),
    })
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
        super::super::print_bytes(format!("{generation}\n").as_bytes()).with_context(|| {
            format!(
                "line {number} is published to '{location}' as generation {generation}; \
                 printing it failed, and no later line was published"
            )
        })?;
    }
    Ok(())
}

/// What a line that could not be published leaves: the lines before it are out.
fn not_published(location: &Location, number: u64, last: Option<&Vec<u8>>) -> String {
    let keeps = match last {
        Some(_) => format!("line {}'s value or a later writer's", number - 1),
        None => "its value".to_owned(),
    };
    format!(
        "line {number} of standard input was not published, nor any after it; '{location}' \
         keeps {keeps}"
    )
}

/// The context of a failed read of standard input.
fn unread(location: &Location, number: u64, last: Option<&Vec<u8>>) -> String {
    format!(
        "reading standard input failed: {}",
        not_published(location, number, last)
    )
}

/// Reads the next line into `buf` (empty), without its `\n` or `\r\n`: at most `limit` bytes
/// of it are kept, and a longer line is read to its end and dropped (`yes | tr -d '\n'` must
/// not fill memory). A last line without `\n` is a line.
fn next_line(input: &mut impl BufRead, buf: &mut Vec<u8>, limit: u64) -> std::io::Result<Line> {
    // Room for the value and its line end.
    let room = limit.saturating_add(2);
    let n = input.by_ref().take(room).read_until(b'\n', buf)? as u64;
    if n == 0 {
        return Ok(Line::End);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        return Ok(Line::Value);
    }
    if n < room {
        // The input ended within the line.
        return Ok(Line::Value);
    }
    // Longer than any value: read on to its end, keeping nothing.
    let mut len = n;
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            return Ok(Line::TooLong(len));
        }
        match chunk.iter().position(|&b| b == b'\n') {
            Some(at) => {
                input.consume(at + 1);
                len += at as u64;
                return Ok(Line::TooLong(len));
            }
            None => {
                let all = chunk.len();
                input.consume(all);
                len += all as u64;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{next_line, Line};

    /// Lines split as `BufRead::lines` splits them, a long one dropped whole.
    #[test]
    fn lines_are_split_at_their_ends_and_a_long_one_is_dropped_to_its_end() {
        let mut input: &[u8] = b"a\r\n\nb\rc\n0123456789abc\nlast";
        let mut got = Vec::new();
        loop {
            let mut buf = Vec::new();
            match next_line(&mut input, &mut buf, 8).unwrap() {
                Line::End => break,
                Line::Value => got.push(String::from_utf8(buf).unwrap()),
                Line::TooLong(len) => got.push(format!("too long: {len}")),
            }
        }
        assert_eq!(got, ["a", "", "b\rc", "too long: 13", "last"]);
    }
}
