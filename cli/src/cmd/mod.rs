//! One module per verb; `run` dispatches.

mod completions;
mod doctor;
mod info;
mod list;
mod new;
mod out;
mod prune;
mod read;
mod remove;
mod watch;

use std::io::Write;

use crate::args::{Cli, Command};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::New(a) => new::run(a),
        Command::Info(a) => info::run(a),
        Command::Out(a) => out::run(a),
        Command::Read(a) => read::run(a),
        Command::Watch(a) => watch::run(a),
        Command::List(a) => list::run(a),
        Command::Remove(a) => remove::run(a),
        Command::Completions(a) => completions::run(a),
        Command::Prune(a) => prune::run(a),
        Command::Doctor(a) => doctor::run(a),
    }
}

/// Writes `bytes` to standard output and flushes (a closed pipe surfaces as `BrokenPipe`).
fn print_bytes(bytes: &[u8]) -> anyhow::Result<()> {
    crate::interrupt::writing(|| {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes)?;
        out.flush()?;
        Ok(())
    })
}

/// Prints a JSON value on one line, or indented.
fn print_json(v: &serde_json::Value, pretty: bool) -> anyhow::Result<()> {
    let mut text = if pretty {
        serde_json::to_string_pretty(v)?
    } else {
        serde_json::to_string(v)?
    };
    text.push('\n');
    print_bytes(text.as_bytes())
}

/// A file name from the shared-memory directory, as it may be printed: quoted and escaped if it
/// holds a control character, a line or paragraph separator, or an invisible or bidirectional
/// formatting character. Anyone can create a file there; its name must not break a table or a
/// line, drive the terminal, or disguise itself as another name.
pub(super) fn shown(name: &str) -> String {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(
                c,
                '\u{061c}'
                    | '\u{200b}'..='\u{200f}'
                    | '\u{2028}'..='\u{202e}'
                    | '\u{2066}'..='\u{2069}'
                    | '\u{feff}'
            )
    };
    if name.chars().any(unsafe_char) {
        // `{:?}` escapes control characters and (as `\u{..}`) these invisible ones.
        format!("{name:?}")
    } else {
        name.to_owned()
    }
}
