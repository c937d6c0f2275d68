//! The error type of `mmf-codec`.

use mmf_core::Tag;

/// What went wrong encoding, decoding or transcoding a value.
///
/// A failed publish publishes nothing: the channel keeps its previous value.
///
/// The enum and each of its variants with named fields are `#[non_exhaustive]`: match their
/// fields with `..`, so that a field added later breaks no caller.
///
/// Through the facade this is `mmf::Error`, and the channel layer's error it wraps
/// `mmf::channel::Error`; [`channel`](Error::channel) reaches it without a nested pattern:
///
/// ```
/// use mmf::prelude::*;
/// let ch = Channel::anonymous(64)?;
/// match ch.read::<u32>() {
///     Err(mmf::Error::Empty { .. }) => {}                    // nothing published yet
///     Err(e) if e.channel().is_some_and(|c| matches!(c, mmf::channel::Error::Corrupt { .. })) => {
///         panic!("damaged: {e}")
///     }
///     Err(e @ mmf::Error::Decode { .. }) => panic!("not a u32: {e}"),
///     other => panic!("{other:?}"),
/// }
/// match Channel::open("error-doc-never-created") {
///     Err(mmf::channel::Error::NotFound { .. }) => {}        // `?` makes it an `mmf::Error`
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), mmf::Error>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The channel itself failed (missing, too large, corrupt, ...).
    #[error(transparent)]
    Channel(#[from] mmf_core::Error),
    /// The current value has another codec tag than the one asked for.
    #[error("channel '{name}' holds {} value (generation {generation}), not {expected}; {}", a_tag(*found), read_hint(*found))]
    #[non_exhaustive]
    WrongTag {
        /// The channel.
        name: String,
        /// What the caller asked for.
        expected: &'static str,
        /// The tag found.
        found: Tag,
        /// Generation of the value found.
        generation: u64,
    },
    /// Nothing has been published to the channel yet.
    #[error("channel '{name}' holds no value yet (generation 0); publish one first, or wait for the first (`read_after(0, timeout)`, `Channel::wait_for_change`)")]
    #[non_exhaustive]
    Empty {
        /// The channel.
        name: String,
    },
    /// Input that is not valid JSON; nothing was published.
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    #[non_exhaustive]
    InvalidJson {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error, as serde_json counts it: 0 where the text ended at the
        /// start of a line (empty input, or one that ends with a newline too early).
        column: usize,
        /// What the parser expected.
        message: String,
    },
    /// Bytes that are not one valid MessagePack document.
    #[error("invalid MessagePack: {0}")]
    InvalidMsgpack(String),
    /// Valid MessagePack that JSON cannot express: two keys of one map that read the same in JSON
    /// (a key given twice, as a `#[serde(flatten)]` map holding a field's name publishes it, or `1`
    /// and `"1"`), where a JSON object holds each key once and dropping one would lose data. Its
    /// bytes read as they are ([`ChannelExt::read_bytes`](crate::ChannelExt::read_bytes)).
    #[error("valid MessagePack that JSON cannot show: {0}")]
    NotJson(String),
    /// A value serde could not encode: its `Serialize` failed (a custom one that returns an
    /// error, a `Mutex` poisoned while serialised, a sequence that does not know its length
    /// where MessagePack asks for it).
    #[error("could not encode the value: {0}")]
    Encode(String),
    /// Writing transcoded text to its destination failed. Its message holds the OS error's
    /// text, which is not also returned as [`source`](std::error::Error::source) (a reporter
    /// that prints the causes would show it twice), as the channel layer's errors do
    /// ([`mmf_core::Error`]): match the field to tell, say, a closed pipe's
    /// [`BrokenPipe`](std::io::ErrorKind::BrokenPipe).
    #[error("could not write the JSON text: {0}")]
    Write(std::io::Error),
    /// This process could not allocate the memory that a value's encoding, transcoding or
    /// rendering takes (a `ulimit -v`, a container's limit, a value near the memory at hand):
    /// an error, where a `Vec`'s own growth would have aborted the process. A publish that
    /// fails so publishes nothing.
    #[error(
        "could not allocate {bytes} bytes for {what}: this process has too little memory (a \
         `ulimit -v`, or a container's limit)"
    )]
    #[non_exhaustive]
    OutOfMemory {
        /// What was being made: "the MessagePack encoding of the value", "the JSON text of
        /// the value", ...
        what: &'static str,
        /// The bytes it would have held after the refused allocation.
        bytes: usize,
    },
    /// A value that does not decode into the requested type.
    #[error(
        "the {tag} value of channel '{name}' (generation {generation}) does not decode as \
         {}: {message}",
        ShortType(ty)
    )]
    #[non_exhaustive]
    Decode {
        /// The channel.
        name: String,
        /// Generation of the value.
        generation: u64,
        /// Its codec tag.
        tag: Tag,
        /// The Rust type asked for, as [`std::any::type_name`] gives it (`"text (UTF-8)"` for
        /// `read_string`, `"JSON text"` for `read_json`). The message shows it without the
        /// standard library's module paths: `Vec<String>`, not
        /// `alloc::vec::Vec<alloc::string::String>`.
        ty: &'static str,
        /// What did not match, and how to see the value another way.
        message: String,
    },
}

/// A type's name as [`std::any::type_name`] gives it, shown without the paths of the standard
/// library's own modules (`std::`, `core::`, `alloc::`), which say nothing to the reader of a
/// message: `HashMap<String, Vec<u8>>` for
/// `std::collections::hash::map::HashMap<alloc::string::String, alloc::vec::Vec<u8>>`. The
/// caller's own types keep their paths, which tell one `Config` from another.
struct ShortType<'a>(&'a str);

impl std::fmt::Display for ShortType<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A path is a run of identifier characters and colons; what lies between paths (`<`,
        // `, `, `[`, `; 4]`, `&`, ...) is written as it is.
        let in_path = |c: char| c.is_alphanumeric() || c == '_' || c == ':';
        let mut rest = self.0;
        while !rest.is_empty() {
            let end = rest.find(|c| !in_path(c)).unwrap_or(rest.len());
            let (path, after) = rest.split_at(end);
            let shown = match path.split_once("::") {
                Some(("std" | "core" | "alloc", _)) => path.rsplit("::").next().unwrap_or(path),
                _ => path,
            };
            f.write_str(shown)?;
            let gap = after.find(in_path).unwrap_or(after.len());
            f.write_str(&after[..gap])?;
            rest = &after[gap..];
        }
        Ok(())
    }
}

/// "a text", "an empty", "a tag 300": the tag's name with its article, for [`Error::WrongTag`].
fn a_tag(found: Tag) -> String {
    let name = found.to_string();
    let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {name}")
}

/// What to do with a value of tag `found`, for [`Error::WrongTag`].
fn read_hint(found: Tag) -> String {
    match found {
        Tag::BYTES => "read it as bytes (`read_bytes`)".into(),
        Tag::TEXT => "read it as text (`read_string`)".into(),
        Tag::MSGPACK | Tag::JSON => {
            "read it as a serde type (`read::<T>()`), or as JSON text (`read_json`)".into()
        }
        // A writer should never publish tag 0 ("no value yet"); another implementation did.
        Tag::EMPTY => "tag 0 means \"no value yet\" and is never published, so the writer is \
                       broken; its bytes can still be read as bytes"
            .into(),
        Tag(n) => format!("tag {n} is not one of mmf's codecs; read its bytes"),
    }
}

/// For a caller whose function returns [`std::io::Result`], as `serde_json::Error` converts: an
/// [`io::Error`](std::io::Error) of the nearest [`ErrorKind`](std::io::ErrorKind) that holds
/// this one. A channel's error ([`Error::Channel`]) converts as
/// [`mmf_core::Error`] does (and holds that one); a value that does not
/// decode, or is not valid JSON or MessagePack, is `InvalidData`; a value that cannot be
/// encoded `InvalidInput`; a channel with no value yet `NotFound`.
///
/// ```
/// use std::io::ErrorKind;
/// use mmf::prelude::*;
/// fn port(ch: &Channel) -> std::io::Result<u16> {
///     Ok(ch.read::<u16>()?)
/// }
/// let ch = Channel::anonymous(64)?;
/// assert_eq!(port(&ch).unwrap_err().kind(), ErrorKind::NotFound); // no value yet
/// ch.publish_str("eighty")?;
/// assert_eq!(port(&ch).unwrap_err().kind(), ErrorKind::InvalidData);
/// ch.publish(&80u16)?;
/// assert_eq!(port(&ch)?, 80);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl From<Error> for std::io::Error {
    fn from(e: Error) -> std::io::Error {
        use std::io::ErrorKind as K;
        let e = match e {
            Error::Channel(inner) => return std::io::Error::from(inner),
            e => e,
        };
        let kind = match &e {
            // Converted above.
            Error::Channel(_) => K::Other,
            Error::Write(w) => w.kind(),
            Error::Empty { .. } => K::NotFound,
            Error::Encode(_) => K::InvalidInput,
            Error::OutOfMemory { .. } => K::OutOfMemory,
            Error::WrongTag { .. }
            | Error::InvalidJson { .. }
            | Error::InvalidMsgpack(_)
            | Error::NotJson(_)
            | Error::Decode { .. } => K::InvalidData,
        };
        std::io::Error::new(kind, e)
    }
}

impl Error {
    /// The channel layer's error this one wraps ([`Error::Channel`]), to ask it what it tells
    /// (say [`mended_by_publish`](mmf_core::Error::mended_by_publish)); `None` for an error of
    /// the value or its encoding.
    pub fn channel(&self) -> Option<&mmf_core::Error> {
        match self {
            Error::Channel(e) => Some(e),
            _ => None,
        }
    }

    /// The generation of the value this error is about, where a value was read but could not
    /// be given as asked ([`Decode`](Error::Decode), [`WrongTag`](Error::WrongTag)): a loop
    /// reading after each value may say so and go on after it
    /// ([`ChannelExt::read_after`](crate::ChannelExt::read_after) shows one). `None` for every
    /// other error, which is about the channel or the call rather than one value.
    pub fn generation(&self) -> Option<u64> {
        match self {
            Error::Decode { generation, .. } | Error::WrongTag { generation, .. } => {
                Some(*generation)
            }
            _ => None,
        }
    }

    /// [`json`](Error::json) for a syntax error in `text`, saying so where the error is at a
    /// `NaN` or an `Infinity`: Python's `json.dumps` writes them (unless `allow_nan=False`),
    /// JavaScript's `JSON.parse` and JSON itself have no such values; and where it is at a
    /// trailing comma in an object.
    pub(crate) fn json_in(e: &serde_json::Error, text: &str) -> Error {
        let mut error = Error::json(e);
        if let Error::InvalidJson {
            line,
            column,
            message,
        } = &mut error
        {
            let at = text
                .split('\n')
                .nth(line.saturating_sub(1))
                .and_then(|l| l.get(column.saturating_sub(1)..))
                .unwrap_or_default();
            if at.starts_with("NaN") || at.starts_with("Infinity") {
                message.push_str(
                    " (JSON has no NaN or Infinity, which Python's json.dumps writes unless \
                     allow_nan=False: send null, or the number as a string)",
                );
            }
            // `{"a": 1,}`: serde_json, expecting another key, says only that a key must be a
            // string.
            let before = text.split('\n').take(*line).collect::<Vec<_>>().join("\n");
            let before = before
                .get(..before.len().saturating_sub(at.len()))
                .unwrap_or_default();
            if message == "key must be a string"
                && at.starts_with('}')
                && before.trim_end().ends_with(',')
            {
                message.push_str(
                    " (a comma before '}' starts another key: JSON allows no trailing comma)",
                );
            }
            // serde_json names a lone surrogate escape by what it expected next: "lone leading
            // surrogate" for a `\udcff` (a trailing one), "unexpected end of hex escape" for a
            // `\ud800` with no `\u` after it.
            let lone = |b: &str| {
                let b = b.to_ascii_lowercase();
                [
                    "\\ud8", "\\ud9", "\\uda", "\\udb", "\\udc", "\\udd", "\\ude", "\\udf",
                ]
                .iter()
                .any(|p| b.contains(p))
            };
            if (message.contains("surrogate") || message == "unexpected end of hex escape")
                && lone(before)
            {
                message.push_str(
                    " (a \\uD800-\\uDFFF escape without its pair: JSON text must be valid \
                     Unicode; Python's json.dumps writes one for a str that holds a surrogate, \
                     as os.fsdecode makes of a file name that is not UTF-8)",
                );
            }
            if message == "recursion limit exceeded" {
                message.push_str(&format!(
                    " (nested deeper than the {} levels mmf reads)",
                    crate::msgpack::MAX_DEPTH
                ));
            }
        }
        error
    }

    pub(crate) fn json(e: &serde_json::Error) -> Error {
        let message = e.to_string();
        // serde_json appends " at line L column C"; keep only the description.
        let message = match message.rfind(" at line ") {
            Some(i) => message[..i].to_owned(),
            None => message,
        };
        Error::InvalidJson {
            line: e.line(),
            column: e.column(),
            message: brief(message, MAX_QUOTED),
        }
    }
}

/// `message`, or its first `max` bytes (cut at a character boundary) and a note of how many
/// more there were: for messages that quote what a value holds (a key, a number, a serde
/// error naming a string), which another process chooses and could make megabytes long, where
/// a diagnostic is one line.
pub(crate) fn brief(mut message: String, max: usize) -> String {
    if message.len() <= max {
        return message;
    }
    let mut cut = max;
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    let more = message.len() - cut;
    message.truncate(cut);
    message.push_str(&format!("… ({more} bytes more)"));
    message
}

/// At most this many bytes of a message from serde (which may quote a whole string of the
/// value) go into an error ([`brief`]).
pub(crate) const MAX_QUOTED: usize = 1024;

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::ShortType;

    #[test]
    fn type_names_lose_the_standard_library_paths_only() {
        let shown = |name: &str| ShortType(name).to_string();
        assert_eq!(shown(std::any::type_name::<String>()), "String");
        assert_eq!(
            shown(std::any::type_name::<
                std::collections::HashMap<String, Vec<Option<u8>>>,
            >()),
            "HashMap<String, Vec<Option<u8>>>"
        );
        assert_eq!(
            shown(std::any::type_name::<(u8, &str, [u16; 4])>()),
            "(u8, &str, [u16; 4])"
        );
        assert_eq!(
            shown("my_app::config::Config<alloc::string::String>"),
            "my_app::config::Config<String>"
        );
        // Not type paths: left as they are.
        assert_eq!(shown("text (UTF-8)"), "text (UTF-8)");
        assert_eq!(shown("JSON text"), "JSON text");
        assert_eq!(shown(""), "");
    }
}
