//! What a frame says about its value: codec tag, length and generation.

use std::fmt;

/// The codec tag stored with every frame, telling readers how to interpret the bytes.
///
/// The core treats tags as opaque numbers; `mmf-codec` gives the known ones meaning. Tags 1-4 are
/// mmf's codecs, 5-255 kept for codecs to come (a publish refuses them:
/// [`Error::ReservedTag`](crate::Error::ReservedTag)), 256 and above are free for applications.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(pub u16);

/// The constant's name for mmf's tags (`Tag::MSGPACK`), the number for others (`Tag(300)`): a
/// `Debug` of [`Meta`] or an [`Info`](crate::Info) then says what the value is.
impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "Tag::{}", n.to_ascii_uppercase()),
            None => write!(f, "Tag({})", self.0),
        }
    }
}

impl Tag {
    /// No value has been published yet (generation 0). Never published: a publish with it is
    /// [`Error::EmptyTag`](crate::Error::EmptyTag).
    pub const EMPTY: Tag = Tag(0);
    /// Raw bytes.
    pub const BYTES: Tag = Tag(1);
    /// UTF-8 text.
    pub const TEXT: Tag = Tag(2);
    /// A MessagePack document (serde values, JSON transcoded by the CLI).
    pub const MSGPACK: Tag = Tag(3);
    /// A JSON document stored as UTF-8 text.
    pub const JSON: Tag = Tag(4);

    /// Whether a publish may carry this tag: mmf's own codecs (1 to 4) and applications' tags
    /// (256 and up); not [`Tag::EMPTY`], nor 5 to 255, which mmf keeps for codecs to come.
    ///
    /// ```
    /// use mmf::Tag;
    /// assert!(Tag::TEXT.is_publishable() && Tag(300).is_publishable());
    /// assert!(!Tag::EMPTY.is_publishable() && !Tag(5).is_publishable());
    /// ```
    #[inline]
    pub const fn is_publishable(self) -> bool {
        matches!(self.0, 1..=4 | 256..)
    }

    /// The tag's short name (`"text"`, `"msgpack"`, ...), or `None` for an application tag.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Tag::EMPTY => "empty",
            Tag::BYTES => "bytes",
            Tag::TEXT => "text",
            Tag::MSGPACK => "msgpack",
            Tag::JSON => "json",
            _ => return None,
        })
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "tag {}", self.0),
        }
    }
}

/// What a read returns beside the bytes: which value it was and how it is encoded.
///
/// Two `Meta`s are equal where every field is, [`retries`](Meta::retries) included, which
/// describes the read rather than the value: to tell whether two reads saw the same value,
/// compare their [`generation`](Meta::generation)s.
///
/// Non-exhaustive: later versions may tell more of a value (where it came from, say) without
/// breaking code that reads these fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Meta {
    /// Generation of the value: 1 for the first publish, +1 per publish, 0 for "nothing yet".
    pub generation: u64,
    /// Codec tag of the value.
    pub tag: Tag,
    /// Length of the value in bytes.
    pub len: usize,
    /// How many times the read started over because a writer overtook it (0 almost always).
    pub retries: u32,
}

impl Meta {
    /// Whether nothing has been published to the channel yet (generation 0). A published value
    /// of zero bytes is not unpublished: its `len` is 0, its generation is not.
    pub fn is_unpublished(&self) -> bool {
        self.generation == 0
    }
}
