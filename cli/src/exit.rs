//! Exit codes (documented in `mmf --help` and the README) and error messages.

use mmf::core::Error as CoreError;
use mmf::Error as CodecError;

/// Any error not listed below.
pub const ERROR: u8 = 1;
/// Bad flags or arguments (clap also exits with 2), or an invalid channel name.
pub const USAGE: u8 = 2;
/// No channel under that name.
pub const NOT_FOUND: u8 = 3;
/// The value does not fit the channel.
pub const TOO_LARGE: u8 = 4;
/// Invalid input: JSON, MessagePack or UTF-8 that does not parse, or a value of another format.
pub const INVALID_INPUT: u8 = 5;
/// `new` found a channel under the name already.
pub const EXISTS: u8 = 6;
/// The channel holds no value yet.
pub const EMPTY: u8 = 7;
/// A bounded wait ran out.
pub const TIMEOUT: u8 = 8;
/// Ctrl-C or SIGTERM ended a wait (the shell convention for SIGINT).
pub const INTERRUPTED: u8 = 130;

fn core_error(err: &anyhow::Error) -> Option<&CoreError> {
    err.chain().find_map(|e| {
        e.downcast_ref::<CoreError>()
            .or_else(|| match e.downcast_ref::<CodecError>() {
                Some(CodecError::Channel(c)) => Some(c),
                _ => None,
            })
    })
}

/// The exit code for an error.
pub fn code(err: &anyhow::Error) -> u8 {
    if let Some(c) = core_error(err) {
        return match c {
            CoreError::NotFound { .. } => NOT_FOUND,
            CoreError::TooLarge { .. } => TOO_LARGE,
            CoreError::AlreadyExists { .. } => EXISTS,
            CoreError::InvalidName { .. }
            | CoreError::InvalidOptions(_)
            | CoreError::IsADirectory { .. }
            | CoreError::NotAFile { .. } => USAGE,
            CoreError::Contended { .. } => TIMEOUT,
            _ => ERROR,
        };
    }
    for e in err.chain() {
        if let Some(c) = e.downcast_ref::<CodecError>() {
            return match c {
                CodecError::Empty { .. } => EMPTY,
                CodecError::WrongTag { .. }
                | CodecError::InvalidJson { .. }
                | CodecError::InvalidMsgpack(_)
                | CodecError::InvalidUtf8(_)
                | CodecError::Decode { .. }
                | CodecError::Encode(_) => INVALID_INPUT,
                _ => ERROR,
            };
        }
        if let Some(code) = e.downcast_ref::<Coded>() {
            return code.0;
        }
    }
    ERROR
}

/// The one-line message: the error and its causes, joined.
pub fn message(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in err.chain() {
        let s = e.to_string();
        // thiserror's `transparent` and `#[source]` can repeat a message; say it once.
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

/// What to do next, in the command line's own terms, for the library errors whose messages
/// (written for any caller) cannot name `mmf`'s verbs and flags; `None` when the message says
/// enough.
pub fn hint(err: &anyhow::Error, verb: &str) -> Option<String> {
    let invalid_utf8 = err.chain().any(|e| {
        matches!(
            e.downcast_ref::<CodecError>(),
            Some(CodecError::InvalidUtf8(_))
        )
    });
    if invalid_utf8 && verb == "out" {
        return Some("--bytes publishes it as raw bytes".into());
    }
    Some(match (core_error(err)?, verb) {
        (CoreError::NotFound { .. }, "remove") => {
            "nothing was removed; --force ignores names that do not exist".into()
        }
        (CoreError::NotFound { name }, _) => {
            format!("create it with `mmf new {} --size 1KiB`", shell_word(name))
        }
        (CoreError::TooLarge { .. }, "out") => {
            "`mmf new NAME --size SIZE --force` does, dropping the current value".into()
        }
        (CoreError::AlreadyExists { .. }, "new") => {
            "--force replaces it, --exist-ok opens it as it is".into()
        }
        (CoreError::NotInitialized { name }, _) if !name.contains('/') => format!(
            "if its creator died, `mmf remove {}` clears it",
            shell_word(name)
        ),
        // mmf removes only files that start with its magic, which a half-made one does not.
        (CoreError::NotInitialized { name }, _) => format!(
            "if its creator died, delete the file: rm {}",
            shell_word(name)
        ),
        (CoreError::Corrupt { name, .. }, _) => format!(
            "`mmf new {} --size SIZE --force` replaces it",
            shell_word(name)
        ),
        (CoreError::Truncated { name }, _) => format!(
            "run the command again; if the channel is damaged, `mmf new {} --size SIZE --force` \
             re-creates it",
            shell_word(name)
        ),
        (CoreError::UnsupportedVersion { name, .. }, _) => format!(
            "the mmf that made it still reads it; `mmf new {} --size SIZE --force` re-creates it \
             in this layout, without its value",
            shell_word(name)
        ),
        _ => return None,
    })
}

/// `word` as one shell word: as it is if it needs no quoting, else in single quotes.
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Whether the error is a write to a closed pipe.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// An error that carries its own exit code (for conditions the library has no error for).
#[derive(Debug)]
pub struct Coded(pub u8, pub String);

impl std::fmt::Display for Coded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

impl std::error::Error for Coded {}
