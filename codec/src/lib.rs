//! `mmf-codec`: typed values for mmf channels.
//!
//! Every frame in a channel carries a codec [`Tag`]. This crate gives the tags meaning and adds
//! typed publish and read methods to [`Channel`] through the [`ChannelExt`] trait:
//!
//! | method | tag written | reads accept |
//! |---|---|---|
//! | [`publish`](ChannelExt::publish) / [`read`](ChannelExt::read) | MessagePack (structs as maps with field names) | MessagePack, JSON; text into a type that takes a string |
//! | [`publish_str`](ChannelExt::publish_str) / [`read_string`](ChannelExt::read_string) | text | text, JSON |
//! | [`publish_bytes`](ChannelExt::publish_bytes) / [`read_bytes`](ChannelExt::read_bytes) | bytes | any |
//! | [`publish_json`](ChannelExt::publish_json) / [`read_json`](ChannelExt::read_json) | MessagePack (from JSON text) | MessagePack, JSON |
//!
//! ```
//! use mmf::{Channel, ChannelExt};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, PartialEq, Debug)]
//! struct Config { threads: u32, name: String }
//!
//! let ch = Channel::anonymous(1024)?;
//! ch.publish(&Config { threads: 8, name: "bench".into() })?;
//! let cfg: Config = ch.read()?;
//! assert_eq!(cfg, Config { threads: 8, name: "bench".into() });
//! // The same value as JSON, for a script:
//! assert_eq!(ch.read_json()?, r#"{"threads":8,"name":"bench"}"#);
//! # Ok::<(), mmf::Error>(())
//! ```
//!
//! The examples name items as the facade crate `mmf` re-exports them, which is how most
//! programs use this crate: `mmf::ChannelExt` is this crate's [`ChannelExt`], and `mmf::Error`
//! its [`Error`].
//!
//! Typed values are encoded into a buffer the thread keeps for the next publish, checked as
//! readers will check them (one MessagePack document, nested no deeper than
//! [`json::MAX_DEPTH`]), and published with one copy through [`Channel::publish_raw`], which
//! keeps a small value in the channel's header. A value that does not fit, fails to encode or
//! would not read back (not one document, or nested too deep) publishes nothing. (Encoding
//! straight into the channel's slot, through [`Channel::publish_with`], is slower for the many
//! small writes a serializer makes.)

// docs.rs (`--cfg docsrs`, nightly) labels each item that a feature gates, `async` here.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]
#![warn(clippy::missing_errors_doc)]

mod error;
pub mod json;
mod keys;
mod msgpack;
#[cfg(feature = "async")]
mod stream;

use std::io;

pub use error::{Error, Result};
pub use mmf_core::{Channel, Follower, Meta, Tag};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
#[cfg(feature = "async")]
pub use stream::{TypedValueStream, ValueStreamExt};

/// The extension traits are for mmf's own types only (sealed, as crossbeam's are): a method
/// added to one later breaks no implementation elsewhere.
mod sealed {
    pub trait Sealed {}
    impl Sealed for mmf_core::Channel {}
    impl Sealed for mmf_core::Follower {}
    #[cfg(feature = "async")]
    impl Sealed for mmf_core::ValueStream {}
}

/// Typed publish and read methods for [`Channel`]. `use mmf::prelude::*` brings it in scope.
///
/// Sealed: implemented for [`Channel`] only.
pub trait ChannelExt: sealed::Sealed {
    /// Publishes `value` as MessagePack (structs as maps with field names, so that MessagePack
    /// readers in other languages see named fields). Returns the new generation.
    ///
    /// A `&str` or `String` goes out as a MessagePack string too, which `read::<String>()`
    /// reads back and `read_string` refuses ([`Error::WrongTag`]): text for scripts and
    /// `read_string` (`mmf read` prints it as it is) is [`publish_str`](ChannelExt::publish_str).
    ///
    /// # Errors
    ///
    /// A value larger than the channel is [`TooLarge`](mmf_core::Error::TooLarge) (in
    /// [`Error::Channel`]) with its whole encoded length; one serde cannot encode, or nested
    /// deeper than [`json::MAX_DEPTH`], is [`Error::Encode`]; an encoding this process cannot
    /// allocate room for is [`Error::OutOfMemory`]; the publish's own errors are
    /// [`Error::Channel`]. In each case nothing is published.
    ///
    /// # Keys given twice
    ///
    /// Maps go out as serde writes them: one that names a key twice (a `#[serde(flatten)]` map
    /// that holds a field's name) is not looked for here, which would cost every publish of a
    /// struct a comparison of its field names;
    /// [`read_json`](ChannelExt::read_json) refuses such a value, and a typed read refuses it
    /// or keeps one of the two, as the type's `Deserialize` does with a key given twice.
    ///
    /// # 128-bit integers
    ///
    /// rmp-serde writes an `i128` or `u128` as 16 bytes of binary, which a typed read takes
    /// back for a field of that type, but not inside a `#[serde(flatten)]` struct, an
    /// internally tagged (`#[serde(tag = "...")]`) or untagged enum: serde reads those through a
    /// buffer of its own, which has no 128-bit integers, and the read fails with "i128 is not
    /// supported" (serde_json fails the same way), though the publish succeeded. There, give
    /// the field a 64-bit type, or write it as a string (`#[serde(with = ...)]`). The 16 bytes
    /// do not say which of the two they are: an `i128` of `-1` read into a `u128` is
    /// `u128::MAX`, and the other way round. A negative integer of up to 64 bits (an older
    /// version's `i64` field, JSON's `-1`) read into a `u128` is refused.
    ///
    /// ```
    /// use mmf::{Channel, ChannelExt};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Serialize, Deserialize, Debug, PartialEq)]
    /// struct Config { threads: u32, label: String }
    ///
    /// let ch = Channel::anonymous(1024)?;
    /// let cfg = Config { threads: 8, label: "warm".into() };
    /// assert_eq!(ch.publish(&cfg)?, 1);
    /// assert_eq!(ch.read::<Config>()?, cfg);
    /// // Scripts see it as JSON (`mmf read NAME`):
    /// assert_eq!(ch.read_json()?, r#"{"threads":8,"label":"warm"}"#);
    /// # Ok::<(), mmf::Error>(())
    /// ```
    fn publish<T: Serialize + ?Sized>(&self, value: &T) -> Result<u64>;

    /// Reads the current value into `T`: a MessagePack or JSON value as serde decodes it, and a
    /// text value (what `mmf out NAME hello` publishes) into a type that takes a string
    /// (`String`, `Option<String>`, an enum's unit variant by its name), as it is stored: text
    /// from `echo busy | mmf out T` ends with its newline.
    ///
    /// A map published as JSON (`publish_json`, `mmf out NAME --json`) has text keys, since
    /// JSON's keys are text; read into a map keyed by integers of up to 64 bits, floats or
    /// bools (or newtypes or options of them), each key is read from its text as serde_json
    /// reads JSON's keys (`"80"` as `80`), as docs/FORMAT.md §7.1 says.
    ///
    /// Types whose serde forms depend on `is_human_readable` are read in both: the compact
    /// forms rmp-serde writes, which [`publish`](ChannelExt::publish) stores (an `IpAddr` as
    /// `{"V4": [10, 0, 0, 1]}`), and, where those do not fit, the human-readable ones that JSON
    /// gives (`"10.0.0.1"`, a `SocketAddr` as `"10.0.0.1:80"`, and the text forms of uuids or
    /// times where their crates have them), so that a value published as JSON by a shell or by
    /// another language reads as serde_json would read it. Only a read that the compact forms
    /// failed pays for the second try; where both fail, the error says where each did. One
    /// exception is serde's own: inside an internally tagged, adjacently tagged or untagged
    /// enum, or a `#[serde(flatten)]` field, serde buffers the value and reads it as
    /// human-readable whatever the format, so there only the text forms read, and such a type
    /// holding an `IpAddr` that `publish` stored (compact) does not read back: publish it with
    /// [`publish_json`](ChannelExt::publish_json) of its serde_json text, or give the field a
    /// form of its own (`#[serde(with = ...)]`).
    ///
    /// The value's bytes are copied into a buffer this thread keeps (as a typed publish encodes
    /// into it), so a read allocates only what `T` itself holds (a `String`, a `Vec`): none for
    /// a `T` of numbers, arrays and unit enums. [`read_after`](ChannelExt::read_after) and
    /// [`FollowerExt::read_after`] copy the same way. The thread keeps that buffer for its
    /// next typed call while it is no larger than 1 MiB: a thread that must not hold a large
    /// value's bytes reads with [`read_with`](ChannelExt::read_with) into a buffer of its own.
    ///
    /// # Errors
    ///
    /// - [`Error::Empty`]: nothing has been published yet;
    /// - [`Error::Decode`]: a value that cannot become a `T` (another shape, or not what its
    ///   tag says), with its generation ([`Error::generation`]);
    /// - [`Error::WrongTag`]: a value of a tag that holds no typed value (bytes), with its
    ///   generation;
    /// - [`Error::Channel`]: what the read itself met ([`Channel::read_into`]'s errors).
    ///
    /// Decoding allocates what `T`'s `Deserialize` allocates, which for open-ended types
    /// (`Vec`, maps, `serde_json::Value`) can be many times the value's size: a `Vec` of
    /// `Value`s decodes each one-byte nil into 32 bytes. As with any serde decoding, an
    /// allocation refused there aborts the process; a reader of values from a peer it does not
    /// trust reads into types whose size the value cannot inflate, or keeps the channel's
    /// capacity well below the memory at hand. (The JSON renderings, [`read_json`] and
    /// [`read_json_pretty`], ask for their room and fail with [`Error::OutOfMemory`].)
    ///
    /// [`read_json`]: ChannelExt::read_json
    /// [`read_json_pretty`]: ChannelExt::read_json_pretty
    ///
    /// ```
    /// use mmf::{Channel, ChannelExt, Error};
    ///
    /// let ch = Channel::anonymous(256)?;
    /// assert!(matches!(ch.read::<u32>(), Err(Error::Empty { .. })));
    /// ch.publish(&7u32)?;
    /// assert_eq!(ch.read::<u32>()?, 7);
    /// ch.publish_str("ready")?;                        // a text value
    /// assert_eq!(ch.read::<String>()?, "ready");
    /// let err = ch.read::<u32>().unwrap_err();          // not a number
    /// assert_eq!(err.generation(), Some(2));
    /// ch.publish_json(r#"{"80": "http"}"#)?;            // JSON's keys are text
    /// let ports: std::collections::HashMap<u16, String> = ch.read()?;
    /// assert_eq!(ports[&80], "http");
    /// # Ok::<(), mmf::Error>(())
    /// ```
    fn read<T: DeserializeOwned>(&self) -> Result<T>;

    /// Like [`read`](ChannelExt::read), but copies through the caller's buffer (no allocation
    /// for the copy when it is large enough) and also returns the frame's [`Meta`].
    ///
    /// # Errors
    ///
    /// As [`read`](ChannelExt::read).
    fn read_with<T: DeserializeOwned>(&self, buf: &mut Vec<u8>) -> Result<(Meta, T)>;

    /// Reads the newest value into `T` once its generation is past `since` (at once if it is
    /// already), waiting until `until` is over (a timeout, a deadline, a [`Stop`](mmf_core::Stop):
    /// [`Until`](mmf_core::Until)): [`Channel::read_after_into`], typed. `None` if it is over
    /// first. With the generation of the last value seen as `since`, a loop sees
    /// every change, whatever it spends on each value.
    ///
    /// The loop keeps `since` itself, from the values and from the errors that carry a
    /// generation, as below. A [`Follower`]'s `read_after` ([`FollowerExt`]), which the loop of
    /// a consumer that must outlive its writer's restarts calls instead, takes `&mut since` and
    /// keeps it for the loop: code moved from one to the other changes there.
    ///
    /// # Errors
    ///
    /// Those of [`read`](ChannelExt::read), but for `Empty` (a wait from 0 waits for the first
    /// value). A value that cannot become a `T` ([`Error::Decode`], or [`Error::WrongTag`] for
    /// bytes) carries its generation, [`Error::generation`]: a loop that goes on reads after
    /// it, as below, where another process published text where a list was expected.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mmf::{Channel, ChannelExt};
    ///
    /// let ch = Channel::anonymous(256)?;
    /// ch.publish(&[1, 2])?;
    /// # let other = &ch;
    /// let mut seen = 0;
    /// loop {
    ///     match ch.read_after::<Vec<u32>>(seen, Duration::from_millis(10)) {
    ///         Ok(Some((meta, v))) => {
    ///             assert_eq!((meta.generation, v), (1, vec![1, 2]));
    ///             seen = meta.generation;
    ///             other.publish_str("oops")?;          // not a list
    ///         }
    ///         Ok(None) => break,                       // nothing newer within 10 ms
    ///         Err(e) => match e.generation() {
    ///             Some(g) => {
    ///                 assert_eq!(g, 2);                 // one bad value: say so, read on
    ///                 eprintln!("skipped: {e}");
    ///                 seen = g;
    ///             }
    ///             None => return Err(e),               // the channel itself failed
    ///         },
    ///     }
    /// }
    /// assert_eq!(seen, 2);
    /// # Ok::<(), mmf::Error>(())
    /// ```
    fn read_after<T: DeserializeOwned>(
        &self,
        since: u64,
        until: impl Into<mmf_core::Until>,
    ) -> Result<Option<(Meta, T)>>;

    /// Publishes UTF-8 text. Returns the new generation.
    ///
    /// # Errors
    ///
    /// [`Channel::publish_raw`]'s, as [`Error::Channel`]: a text longer than the capacity is
    /// [`TooLarge`](mmf_core::Error::TooLarge), and publishes nothing.
    fn publish_str(&self, text: &str) -> Result<u64>;

    /// Reads a text (or JSON) value as a `String`.
    ///
    /// # Errors
    ///
    /// Nothing published yet is [`Error::Empty`], another tag [`Error::WrongTag`]; bytes that
    /// are not UTF-8 are [`Error::Decode`], naming the channel and the value; the read's own
    /// errors are [`Error::Channel`].
    fn read_string(&self) -> Result<String>;

    /// Publishes raw bytes. Returns the new generation.
    ///
    /// # Errors
    ///
    /// [`Channel::publish_raw`]'s, as [`Error::Channel`].
    fn publish_bytes(&self, bytes: &[u8]) -> Result<u64>;

    /// Reads the current value's bytes, whatever its tag.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] while nothing has been published (an empty value that was published
    /// reads as no bytes); the read's own errors are [`Error::Channel`].
    fn read_bytes(&self) -> Result<Vec<u8>>;

    /// Checks that `json` is valid JSON and publishes it as MessagePack. Returns the new
    /// generation.
    ///
    /// # Errors
    ///
    /// Invalid JSON, and JSON nested deeper than [`json::MAX_DEPTH`], is
    /// [`Error::InvalidJson`] with its line and column, an encoding this process cannot
    /// allocate room for [`Error::OutOfMemory`], and the publish's own errors
    /// ([`TooLarge`](mmf_core::Error::TooLarge)...) [`Error::Channel`]; in each case nothing is
    /// published.
    fn publish_json(&self, json: &str) -> Result<u64>;

    /// Reads a MessagePack or JSON value as JSON text on one line (see [`json`] for how
    /// MessagePack that JSON cannot express is rendered; [`read_json_pretty`] for indented
    /// text). JSON text another process stored ([`Tag::JSON`]) is checked as
    /// [`json::validate_json`] checks it and laid out the same way: its numbers, escapes and
    /// key order stay as written. A value that is not what its tag says (invalid MessagePack,
    /// JSON text that breaks those rules) is [`Error::Decode`], naming the channel and the
    /// value.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] while nothing has been published, [`Error::WrongTag`] for text or
    /// bytes, [`Error::Decode`] as said above, [`Error::OutOfMemory`] where this process cannot
    /// allocate the text (asked for, not assumed: a rendering may be several times the value's
    /// size), and the read's own errors as [`Error::Channel`].
    ///
    /// [`read_json_pretty`]: ChannelExt::read_json_pretty
    fn read_json(&self) -> Result<String>;

    /// [`read_json`](ChannelExt::read_json), indented (as serde_json's `to_string_pretty`
    /// indents). JSON text another process stored keeps its key order, and serde_json writes
    /// its numbers and strings anew (`2.50` as `2.5`, `"\u0041"` as `"A"`, `1e2` as `100.0`).
    ///
    /// ```
    /// use mmf::{Channel, ChannelExt};
    /// let ch = Channel::anonymous(256)?;
    /// ch.publish_json(r#"{"a": [1, 2]}"#)?;
    /// assert_eq!(ch.read_json()?, r#"{"a":[1,2]}"#);
    /// assert_eq!(ch.read_json_pretty()?, "{\n  \"a\": [\n    1,\n    2\n  ]\n}");
    /// # Ok::<(), mmf::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`read_json`](ChannelExt::read_json).
    fn read_json_pretty(&self) -> Result<String>;
}

impl ChannelExt for Channel {
    fn publish<T: Serialize + ?Sized>(&self, value: &T) -> Result<u64> {
        publish_msgpack(self, |w| {
            let mut ser = rmp_serde::Serializer::new(w).with_struct_map();
            value
                .serialize(&mut ser)
                .map_err(|e| Error::Encode(e.to_string()))
        })
    }

    fn read<T: DeserializeOwned>(&self) -> Result<T> {
        with_scratch(|buf| Ok(self.read_with(buf)?.1))
    }

    fn read_with<T: DeserializeOwned>(&self, buf: &mut Vec<u8>) -> Result<(Meta, T)> {
        let meta = self.read_into(buf)?;
        decode_read(self, meta, buf)
    }

    fn read_after<T: DeserializeOwned>(
        &self,
        since: u64,
        until: impl Into<mmf_core::Until>,
    ) -> Result<Option<(Meta, T)>> {
        with_scratch(|buf| match self.read_after_into(since, buf, until)? {
            Some(meta) => decode_read(self, meta, buf).map(Some),
            None => Ok(None),
        })
    }

    fn publish_str(&self, text: &str) -> Result<u64> {
        Ok(self.publish_raw(Tag::TEXT, text.as_bytes())?)
    }

    fn read_string(&self) -> Result<String> {
        let (meta, bytes) = self.read_raw()?;
        match meta.tag {
            Tag::TEXT | Tag::JSON => String::from_utf8(bytes)
                .map_err(|e| unreadable_text(self, meta, TEXT, &not_utf8(e.utf8_error()))),
            _ => Err(wrong(self, meta, "a text value")),
        }
    }

    fn publish_bytes(&self, bytes: &[u8]) -> Result<u64> {
        Ok(self.publish_raw(Tag::BYTES, bytes)?)
    }

    fn read_bytes(&self) -> Result<Vec<u8>> {
        let (meta, bytes) = self.read_raw()?;
        if meta.is_unpublished() {
            return Err(Error::Empty {
                name: self.location().to_string(),
            });
        }
        Ok(bytes)
    }

    fn publish_json(&self, json_text: &str) -> Result<u64> {
        json::validate_json(json_text)?;
        // Its errors as they are: one that ran out of memory counting the text's containers
        // stays `OutOfMemory` (it was said as invalid input); a write refused room is said by
        // `publish_msgpack`.
        publish_msgpack(self, |w| json::write_json_as_msgpack(json_text, w))
    }

    fn read_json(&self) -> Result<String> {
        read_json_as(self, false)
    }

    fn read_json_pretty(&self) -> Result<String> {
        read_json_as(self, true)
    }
}

/// [`ChannelExt::read_json`], indented with `pretty`.
fn read_json_as(ch: &Channel, pretty: bool) -> Result<String> {
    let (meta, bytes) = ch.read_raw()?;
    let unreadable = |e| unreadable(ch, meta, JSON_TEXT, e);
    match meta.tag {
        Tag::MSGPACK if pretty => json::msgpack_to_json_pretty(&bytes).map_err(unreadable),
        Tag::MSGPACK => json::msgpack_to_json(&bytes).map_err(unreadable),
        Tag::JSON => {
            // Text another process wrote: passed on only when it is one valid document (an
            // integer beyond 64 bits, which a rendering through `Value` would silently make a
            // float, is refused), laid out as asked whatever its own layout: on one line (as a
            // MessagePack value reads) or pretty.
            let text = std::str::from_utf8(&bytes)
                .map_err(|e| unreadable_text(ch, meta, JSON_TEXT, &not_utf8(e)))?;
            if pretty {
                json::pretty_json(text).map_err(unreadable)
            } else {
                json::compact_json(text).map_err(unreadable)
            }
        }
        _ => Err(wrong(ch, meta, "a MessagePack or JSON value")),
    }
}

/// Publishes the MessagePack that `encode` writes, from this thread's reusable buffer. An
/// encoder failure is [`Error::Encode`] with the encoder's own message, a value beyond the
/// channel's capacity [`TooLarge`](mmf_core::Error::TooLarge) with the value's whole encoded length (the
/// encoding past the capacity is counted, not kept, so that the size it names fits), a
/// document readers would refuse (nested deeper than [`json::MAX_DEPTH`]) [`Error::Encode`], an
/// encoding this process cannot allocate room for [`Error::OutOfMemory`]; in each case nothing
/// is published.
fn publish_msgpack<F>(ch: &Channel, encode: F) -> Result<u64>
where
    F: FnOnce(&mut Bounded<'_>) -> Result<()>,
{
    with_scratch(|buf| {
        let capacity = ch.capacity();
        let mut w = Bounded {
            buf,
            capacity,
            overflow: None,
            refused: None,
        };
        let encoded = encode(&mut w);
        match (w.refused, w.overflow, encoded) {
            (Some(bytes), _, _) => Err(Error::OutOfMemory {
                what: "the MessagePack encoding of the value",
                bytes,
            }),
            (None, Some(len), _) => {
                Err(mmf_core::Error::too_large(ch.location().to_string(), len, capacity).into())
            }
            (None, None, Err(e)) => Err(e),
            (None, None, Ok(())) => match msgpack::check(buf) {
                Err(e) => Err(Error::Encode(format!("mmf readers would refuse it: {e}"))),
                Ok(()) => ch.publish_raw(Tag::MSGPACK, buf).map_err(Error::from),
            },
        }
    })
}

/// `f` given this thread's reusable buffer, empty: typed publishes encode into it and the typed
/// reads that take no buffer ([`ChannelExt::read`], the `read_after`s) copy into it, so that
/// neither allocates for its bytes once the thread's buffer has grown to its values (a library
/// user counted two allocations a typed read, where a service reads millions a second).
fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    // Taken out, not borrowed: a `Serialize` impl that publishes to another channel while it
    // is being encoded (or a `Deserialize` that reads one) gets an empty buffer of its own
    // instead of a panic. And a new one where the thread's is gone: a typed call from another
    // thread-local's `Drop` at the thread's exit must not abort the process (a review's
    // finding: `take` and `set` panic once the buffer's own thread-local is destroyed).
    let mut buf = SCRATCH.try_with(std::cell::Cell::take).unwrap_or_default();
    buf.clear();
    let out = f(&mut buf);
    // A thread that once published or read a huge value does not keep its memory.
    if buf.capacity() <= KEEP {
        let _ = SCRATCH.try_with(|s| s.set(buf));
    }
    out
}

/// Typed reads for [`Follower`]: a consumer's loop over a name's values, decoded, across the
/// writer's restarts. `use mmf::prelude::*` brings it in scope.
///
/// Sealed: implemented for [`Follower`] only.
pub trait FollowerExt: sealed::Sealed {
    /// Waits until `until` is over (a timeout, a deadline, a [`Stop`](mmf_core::Stop):
    /// [`Until`](mmf_core::Until)) for a value newer than generation `since` under the followed
    /// name and decodes it into `T`, as [`ChannelExt::read`] does:
    /// [`Follower::read_after_into`], typed, which keeps `since` (set to the value's
    /// generation, and to 0 when the name leads to a new channel). `None` if it is over first.
    ///
    /// # Errors
    ///
    /// Those of [`Follower::read_after_into`], as [`Error::Channel`], and of
    /// [`ChannelExt::read`]: a value that cannot become a `T` ([`Error::Decode`], or
    /// [`Error::WrongTag`] for bytes) has moved `since` past it, and a loop goes on after it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mmf::{Channel, ChannelExt, Follower, FollowerExt};
    ///
    /// # let name = format!("codec-read-after-doc-{}", std::process::id());
    /// let writer = Channel::create(&name, 256)?;
    /// let mut follower = Follower::open(&name, Duration::from_secs(5))?;
    /// writer.publish(&[1u32, 2])?;
    /// writer.publish_str("not a list")?;
    /// writer.publish(&[3u32])?;
    ///
    /// // The newest value comes: a consumer slower than its writer skips values.
    /// let mut seen = 0;
    /// let (meta, v) = follower
    ///     .read_after::<Vec<u32>>(&mut seen, Duration::from_secs(5))?
    ///     .expect("a value");
    /// assert_eq!((meta.generation, v, seen), (3, vec![3], 3));
    /// writer.publish_str("oops")?;
    /// let err = follower.read_after::<Vec<u32>>(&mut seen, Duration::from_secs(5)).unwrap_err();
    /// assert_eq!((err.generation(), seen), (Some(4), 4));   // said, and gone past
    /// # Channel::remove(&name)?;
    /// # Ok::<(), mmf::Error>(())
    /// ```
    fn read_after<T: DeserializeOwned>(
        &mut self,
        since: &mut u64,
        until: impl Into<mmf_core::Until>,
    ) -> Result<Option<(Meta, T)>>;
}

impl FollowerExt for Follower {
    fn read_after<T: DeserializeOwned>(
        &mut self,
        since: &mut u64,
        until: impl Into<mmf_core::Until>,
    ) -> Result<Option<(Meta, T)>> {
        with_scratch(|buf| match self.read_after_into(since, buf, until)? {
            Some(meta) => decode_read(self.channel(), meta, buf).map(Some),
            None => Ok(None),
        })
    }
}

thread_local! {
    /// The buffer typed publishes encode into and typed reads copy into ([`with_scratch`]),
    /// kept for the thread's next one.
    static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// The largest buffer a thread keeps between typed publishes and reads ([`with_scratch`]).
const KEEP: usize = 1 << 20;

/// A `Vec` that stops growing at the channel's capacity: a value too large for the channel is
/// encoded to its end (so that `TooLarge` can name its whole length, a size that fits it: one
/// that stopped at the first refused write named one only a few bytes past the capacity, and a
/// channel made that large refused it again), but only counted from there on, never kept.
struct Bounded<'a> {
    buf: &'a mut Vec<u8>,
    capacity: usize,
    /// The encoded length so far, once it passed the capacity.
    overflow: Option<usize>,
    /// The length a write refused room by the allocator would have made.
    refused: Option<usize>,
}

impl Bounded<'_> {
    /// Counts a write of `n` bytes that does not fit, or that follows one that did not.
    #[cold]
    fn count(&mut self, n: usize) {
        let len = self.overflow.unwrap_or(self.buf.len()).saturating_add(n);
        self.overflow = Some(len);
    }
}

impl io::Write for Bounded<'_> {
    #[inline]
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write_all(data)?;
        Ok(data.len())
    }

    #[inline]
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        if self.overflow.is_some() || data.len() > self.capacity - self.buf.len() {
            self.count(data.len());
            return Ok(());
        }
        // Room asked for, not assumed: a value near the memory at hand is an error, not the
        // abort of the process that a `Vec`'s own growth is.
        json::try_extend(self.buf, data, &mut self.refused)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Decodes a value read as bytes into `T`, by the rules [`ChannelExt::read`] reads by: for a
/// loop that reads into a buffer it keeps ([`Channel::read_after_into`],
/// [`Follower::read_after_into`], [`Channel::read_into`]) or takes the untyped `ValueStream`
/// (feature `async`), and decodes each value itself. `channel` is the one
/// the bytes were read from (its name goes into an error), `meta` what the read returned.
///
/// `T` may borrow from `bytes`: a `&str` field (or a `Cow<str>` marked `#[serde(borrow)]`,
/// which also takes a JSON string with escapes) is the buffer's own text, not a copy, so a type
/// that holds nothing else on the heap decodes without allocating; a text value (tag 2) reads
/// into a `&str` too.
///
/// ```
/// use std::time::Duration;
/// use mmf::{decode, Channel, ChannelExt};
///
/// let ch = Channel::anonymous(256)?;
/// let mut buf = Vec::new(); // kept from one value to the next: no allocation per read
/// ch.publish(&[1u32, 2])?;
/// let meta = ch.read_after_into(0, &mut buf, Duration::ZERO)?.expect("a value");
/// let v: Vec<u32> = decode(&ch, meta, &buf)?;
/// assert_eq!(v, [1, 2]);
/// ch.publish_str("oops")?;
/// let meta = ch.read_after_into(meta.generation, &mut buf, Duration::ZERO)?.expect("a value");
/// let err = decode::<Vec<u32>>(&ch, meta, &buf).unwrap_err();
/// assert_eq!(err.generation(), Some(2));
/// // What a read of an empty channel returns:
/// let empty = Channel::anonymous(64)?;
/// let meta = empty.read_into(&mut buf)?;
/// assert!(matches!(decode::<u32>(&empty, meta, &buf), Err(mmf::Error::Empty { .. })));
///
/// // Borrowing: `name` is read in place, in `buf`.
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Job<'a> { id: u32, name: &'a str }
/// ch.publish(&Job { id: 1, name: "resize" })?;
/// let meta = ch.read_into(&mut buf)?;
/// let job: Job = decode(&ch, meta, &buf)?;
/// assert_eq!((job.id, job.name), (1, "resize"));
/// # Ok::<(), mmf::Error>(())
/// ```
///
/// # Errors
///
/// As for [`ChannelExt::read`]'s decoding: a value that cannot become a `T` is
/// [`Error::Decode`], one of bytes (or another tag mmf has no decoding of)
/// [`Error::WrongTag`], each with `meta`'s generation ([`Error::generation`]); a `meta` of no
/// value ([`Meta::is_unpublished`]) is [`Error::Empty`].
pub fn decode<'a, T: Deserialize<'a>>(channel: &Channel, meta: Meta, bytes: &'a [u8]) -> Result<T> {
    decode_read(channel, meta, bytes).map(|(_, value)| value)
}

/// What a decode error for a missing field adds: how a type may gain fields.
const ADDED_FIELD: &str = "; a field added to the type reads values without it as its default \
                           with `#[serde(default)]`, or as `None` where it is an `Option`";

/// Whether `de` read its whole input, as far as can be told: reading a next value must fail
/// for want of input at a marker. rmp-serde stops short of a whole value only where it peeked
/// at a marker (an `Option`'s) and the type did not take it, which this catches; a hand-made
/// `Deserialize` that stops inside a value rmp-serde reads in parts (an extension's data) may
/// go unseen. Either way the document was checked whole first (`msgpack::check`).
fn msgpack_at_end<'de, C: rmp_serde::config::SerializerConfig>(
    de: &mut rmp_serde::Deserializer<rmp_serde::decode::ReadRefReader<'de, [u8]>, C>,
) -> bool {
    use serde::Deserialize;
    match serde::de::IgnoredAny::deserialize(de) {
        Err(rmp_serde::decode::Error::InvalidMarkerRead(e)) => {
            e.kind() == std::io::ErrorKind::UnexpectedEof
        }
        _ => false,
    }
}

/// The value `buf` holds (read from `ch`, described by `meta`) decoded into `T`, from a
/// MessagePack, JSON or text frame; one that cannot become a `T`, invalid or not, is
/// [`Error::Decode`] with its generation (a reader can go on after it). Either is checked first
/// by the rules mmf reads by: MessagePack without recursion ([`msgpack::check`]; rmp-serde
/// counts no depth for enum variants, so a deep enough recursive enum from another process
/// would otherwise overflow the stack), JSON text as JSON published as such is (FORMAT.md §7.1:
/// no integer beyond 64 bits made a float on the way, no key given twice).
fn decode_read<'a, T: Deserialize<'a>>(
    ch: &Channel,
    meta: Meta,
    buf: &'a [u8],
) -> Result<(Meta, T)> {
    let failed = |message: String| Error::Decode {
        name: ch.location().to_string(),
        generation: meta.generation,
        tag: meta.tag,
        ty: std::any::type_name::<T>(),
        message,
    };
    // A valid value of another shape reads as JSON; an invalid one only as bytes.
    // (What serde says can quote a whole string of the value: `brief`.)
    let quoted = |e: &dyn std::fmt::Display| error::brief(e.to_string(), error::MAX_QUOTED);
    let mismatch = |e: &dyn std::fmt::Display| {
        let e = quoted(e);
        // Most often a field added to the reader's type, read from a writer that has not
        // changed yet (a library user's review: nothing said how types may change).
        let added = match e.contains("missing field `") {
            true => ADDED_FIELD,
            false => "",
        };
        failed(format!(
            "{e}{added}; read it as JSON to see what it holds (`read_json`, or `mmf read NAME`)"
        ))
    };
    let invalid =
        |e: &dyn std::fmt::Display| failed(format!("{}; read_bytes gives its bytes", quoted(e)));
    let value = match meta.tag {
        Tag::MSGPACK => {
            msgpack::check(buf).map_err(|e| invalid(&e))?;
            // Through `TextKeys`: text map keys read as numbers and bools where those are
            // asked for, as serde_json reads a map published as JSON, and a `u128` read by
            // what the value is (rmp-serde's own read made a negative integer a huge one).
            // From the slice itself: `Deserializer::new` reads through a buffer of its own,
            // allocated for every value (a library user's count: one allocation a decode, of
            // a `u64` too, where the docs promise none from a reused buffer).
            let mut de = rmp_serde::Deserializer::from_read_ref(buf);
            match T::deserialize(keys::TextKeys(&mut de)) {
                // `check` found one document, so `T` read it all unless its `Deserialize`
                // stopped early where rmp-serde does not count (it does for arrays and maps).
                // A reader over the slice does not tell where it is: a next value must not be
                // there.
                Ok(value) if msgpack_at_end(&mut de) => value,
                Ok(_) => return Err(mismatch(&"the type did not read the whole value")),
                // Read again in serde's human-readable forms (`human_readable`), apart and
                // cold. A read that succeeds never runs it, but pays for its being there:
                // rmp-serde's reads, built for a second config, are inlined less (callgrind, a
                // 7-field struct read 20,000 times: 6,276 instructions a read against 6,230,
                // +0.7 %, the same with this call inlined).
                Err(e) => human_readable(buf, &e).map_err(|message| mismatch(&message))?,
            }
        }
        Tag::JSON => {
            let text = std::str::from_utf8(buf).map_err(|e| invalid(&not_utf8(e)))?;
            json::validate_json(text).map_err(|e| invalid(&e))?;
            serde_json::from_slice(buf).map_err(|e| {
                let mut de = serde_json::Deserializer::from_slice(buf);
                match serde_path_to_error::deserialize::<_, T>(&mut de) {
                    Err(e) => mismatch(&at(&e)),
                    Ok(_) => mismatch(&e),
                }
            })?
        }
        // Text, as `mmf out NAME hello` or `publish_str` stores it: into a type that takes a
        // string (a `String`, a `&str`, an `Option<String>`, a newtype of one, an enum's unit
        // variant by name), as a JSON string would be (serde's own `StrDeserializer` refuses
        // `Option`).
        Tag::TEXT => {
            let text = std::str::from_utf8(buf).map_err(|e| invalid(&not_utf8(e)))?;
            T::deserialize(Text(text)).map_err(|e| {
                let e = quoted(&e);
                failed(if json::looks_like_json(text) {
                    format!(
                        "{e}; the text is JSON, published as text: publish it as JSON \
                         (publish_json, `mmf out NAME --json`) to read it as a typed value"
                    )
                } else {
                    format!("{e}; read_string gives the text")
                })
            })?
        }
        _ => return Err(wrong(ch, meta, "a MessagePack, JSON or text value")),
    };
    Ok((meta, value))
}

/// A text value (tag 2) read into a type as a JSON string would be, borrowed from the buffer
/// it was read into (a `&str` field is that text): a string; into an `Option`, `Some` of it;
/// into a newtype, its content; into an enum, the unit variant of that name. (It was read
/// through an owned `serde_json::Value`, which gave no borrowed string: the diff review's.)
struct Text<'a>(&'a str);

impl<'de> serde::Deserializer<'de> for Text<'de> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        visitor.visit_borrowed_str(self.0)
    }

    fn deserialize_option<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: serde::de::Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        let text: serde::de::value::BorrowedStrDeserializer<'de, Self::Error> =
            serde::de::value::BorrowedStrDeserializer::new(self.0);
        serde::Deserializer::deserialize_enum(text, name, variants, visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

/// A MessagePack value that did not decode into `T` in rmp-serde's compact forms (`e`), read
/// again in serde's human-readable forms, which JSON gives (an `IpAddr` as "10.0.0.1", a
/// `SocketAddr`, a uuid or a time as text), and in which a map or a value published as JSON
/// (`publish_json`, `mmf out NAME --json`) or by another language holds them; rmp-serde reads
/// and writes the compact forms (an `IpAddr` as `{"V4": [10, 0, 0, 1]}`), which `publish`
/// stores. Where this fails too, where and why each read failed, as the error's message.
#[cold]
#[inline(never)]
fn human_readable<'a, T: Deserialize<'a>>(
    buf: &'a [u8],
    e: &rmp_serde::decode::Error,
) -> std::result::Result<T, String> {
    let mut readable = rmp_serde::Deserializer::from_read_ref(buf).with_human_readable();
    if let Ok(value) = T::deserialize(keys::TextKeys(&mut readable)) {
        if msgpack_at_end(&mut readable) {
            return Ok(value);
        }
    }
    // Again, to find where: tracking the path costs every read (a string for each map key), so
    // only a read that failed pays for it. Where the human-readable forms fail elsewhere, both
    // are said, each cut to half the room, as alternatives: which one applies depends on who
    // published the value.
    let compact = where_failed::<T, _>(rmp_serde::Deserializer::from_read_ref(buf), e);
    let text = where_failed::<T, _>(
        rmp_serde::Deserializer::from_read_ref(buf).with_human_readable(),
        e,
    );
    Err(if text == compact {
        compact
    } else {
        let half = error::MAX_QUOTED / 2 - 100;
        format!(
            "{}; or, in the text forms that JSON gives addresses, times and ids: {}",
            error::brief(compact, half),
            error::brief(text, half)
        )
    })
}

/// Where and why a typed read of the MessagePack `de` reads failed, `e` its error without the
/// path: read again with the path tracked (`at`), with what a map key takes where the read
/// failed at one.
fn where_failed<'a, T: Deserialize<'a>, C: rmp_serde::config::SerializerConfig>(
    mut de: rmp_serde::Deserializer<rmp_serde::decode::ReadRefReader<'a, [u8]>, C>,
    e: &rmp_serde::decode::Error,
) -> String {
    match serde_path_to_error::deserialize::<_, T>(keys::TextKeys(&mut de)) {
        // Of the wrong kind (not a key of the right kind with a value out of range, `-1` for a
        // `u128`: the hint would not fit it).
        Err(e) if at_map_key(&e) && !at(&e).contains("invalid value: integer") => {
            format!("{}; {TEXT_KEYS}", at(&e))
        }
        Err(e) => at(&e),
        Ok(_) if msgpack_at_end(&mut de) => said(e),
        Ok(_) => "the type did not read the whole value".to_owned(),
    }
}

/// Whether a typed read failed at a map's key (the path's last segment is a key not read yet).
fn at_map_key<E>(e: &serde_path_to_error::Error<E>) -> bool {
    matches!(
        e.path().iter().next_back(),
        Some(serde_path_to_error::Segment::Unknown)
    )
}

/// What a MessagePack read that failed at a map key adds: what keys it takes where another
/// kind was stored (a map published as JSON has text keys).
const TEXT_KEYS: &str = "a map key of the wrong kind (JSON's keys are text: a map published as \
    JSON has text keys, read as numbers of up to 64 bits or bools where the type asks for those \
    and the text spells one, as serde_json reads them)";

/// A typed read's error with the field it happened at, where it was not the value itself:
/// `map.<key>: invalid type ...` (a struct with many fields, or a map keyed by integers that
/// came as JSON strings, is otherwise a hunt).
fn at<E: std::error::Error + 'static>(e: &serde_path_to_error::Error<E>) -> String {
    let inner = said(e.inner());
    match e.path().to_string().as_str() {
        "." => inner,
        path => format!("at {path}: {inner}"),
    }
}

/// A decoder's error as a message tells it: its own text, but for rmp-serde's
/// [`TypeMismatch`](rmp_serde::decode::Error::TypeMismatch), which it words in its own terms
/// ("wrong msgpack marker FixStr(1)"), told as serde words its other mismatches ("invalid
/// type: a string of 1 byte, expected a number (a boolean for a bool)"): rmp-serde raises it
/// where a field that takes a number or a boolean (or an `i128`, whose bytes it also reads)
/// finds another kind of value, and does not say which of them (a review read "expected a
/// number or a boolean" of a `u64` field, which refuses a boolean).
fn said(e: &(dyn std::error::Error + 'static)) -> String {
    use rmp::Marker as M;
    let Some(rmp_serde::decode::Error::TypeMismatch(marker)) = e.downcast_ref() else {
        return e.to_string();
    };
    let found = match *marker {
        M::Null => "nil".to_owned(),
        M::True | M::False => "a boolean".to_owned(),
        M::FixPos(_) | M::FixNeg(_) | M::U8 | M::U16 | M::U32 | M::U64 => "an integer".to_owned(),
        M::I8 | M::I16 | M::I32 | M::I64 => "an integer".to_owned(),
        M::F32 | M::F64 => "a float".to_owned(),
        M::FixStr(1) => "a string of 1 byte".to_owned(),
        M::FixStr(n) => format!("a string of {n} bytes"),
        M::Str8 | M::Str16 | M::Str32 => "a string".to_owned(),
        M::Bin8 | M::Bin16 | M::Bin32 => "bytes".to_owned(),
        M::FixArray(_) | M::Array16 | M::Array32 => "an array".to_owned(),
        M::FixMap(_) | M::Map16 | M::Map32 => "a map".to_owned(),
        M::FixExt1 | M::FixExt2 | M::FixExt4 | M::FixExt8 | M::FixExt16 => {
            "an extension value".to_owned()
        }
        M::Ext8 | M::Ext16 | M::Ext32 => "an extension value".to_owned(),
        M::Reserved => "the reserved marker 0xc1".to_owned(),
    };
    format!("invalid type: {found}, expected a number (a boolean for a bool)")
}

/// What [`read_string`](ChannelExt::read_string) reads a value as, for [`Error::Decode`].
const TEXT: &str = "text (UTF-8)";

/// What [`read_json`](ChannelExt::read_json) reads a value as, for [`Error::Decode`].
const JSON_TEXT: &str = "JSON text";

/// A value `ch` holds (described by `meta`) that is not what its tag says (`e`: invalid UTF-8,
/// JSON or MessagePack), read as `what`: [`Error::Decode`], which names the channel and the
/// value, as a typed read's does; [`Error::OutOfMemory`] (no room for its rendering) as it is.
fn unreadable(ch: &Channel, meta: Meta, what: &'static str, e: Error) -> Error {
    match e {
        // No memory for the rendering says nothing of the value: said as it is.
        Error::OutOfMemory { .. } => e,
        e => unreadable_text(ch, meta, what, &e),
    }
}

/// What a value that should be UTF-8 text, and is not, says in its [`Error::Decode`].
fn not_utf8(e: std::str::Utf8Error) -> String {
    format!("value is not valid UTF-8: {e}")
}

/// [`unreadable`], with the reason as text.
fn unreadable_text(
    ch: &Channel,
    meta: Meta,
    what: &'static str,
    e: &dyn std::fmt::Display,
) -> Error {
    Error::Decode {
        name: ch.location().to_string(),
        generation: meta.generation,
        tag: meta.tag,
        ty: what,
        message: format!(
            "{}; read_bytes gives its bytes",
            error::brief(e.to_string(), error::MAX_QUOTED)
        ),
    }
}

fn wrong(ch: &Channel, meta: Meta, expected: &'static str) -> Error {
    let name = ch.location().to_string();
    if meta.is_unpublished() {
        Error::Empty { name }
    } else {
        Error::WrongTag {
            name,
            expected,
            found: meta.tag,
            generation: meta.generation,
        }
    }
}
