//! A MessagePack reader that never recurses: one item head at a time, and a check of a whole
//! document (structure, depth, trailing bytes) before anything else decodes it.
//!
//! A value in a channel is written by another process, so its bytes are untrusted. Decoders that
//! recurse per nesting level (rmp-serde's typed decoding, serde's derived `Deserialize` for
//! recursive types) overflow the stack on deep enough input: a recursive enum read through
//! rmp-serde counts no depth at all, and 500 levels of `serde_json::Value` overflow a 2 MiB
//! thread stack in a debug build. [`check`] walks the document with an explicit stack of counts,
//! bounded by [`MAX_DEPTH`], so every decoder after it sees a document no deeper than that.

use crate::error::{Error, Result};

/// Deepest nesting of arrays and maps accepted in a MessagePack value: 127 containers, one inside
/// the other. JSON text of that depth is the deepest serde_json (and so
/// [`json_to_msgpack`](crate::json::json_to_msgpack) and [`read`](crate::ChannelExt::read) of a
/// JSON value) reads back, so a value read as JSON can be published again, unless a binary or
/// an extension at the deepest levels (rendered as `{"$bin": ..}`, `{"$ext": {..}}`) takes its
/// JSON one or two levels further. A typed decode of that depth fits a 2 MiB thread stack in a
/// debug build.
pub const MAX_DEPTH: usize = 127;

/// One item's head: what its marker and length bytes say, with its bytes for scalars.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Head<'a> {
    Nil,
    Bool(bool),
    /// A non-negative integer (of any width).
    Uint(u64),
    /// A negative integer.
    Int(i64),
    F32(f32),
    F64(f64),
    /// A string's bytes (not checked to be UTF-8).
    Str(&'a [u8]),
    Bin(&'a [u8]),
    Ext(i8, &'a [u8]),
    /// An array of this many items.
    Array(u32),
    /// A map of this many key-value pairs.
    Map(u32),
}

/// A cursor over a MessagePack document.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    /// Byte offset of the next item.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Moves to byte `pos` (an item's start that [`skip`] found).
    pub(crate) fn seek(&mut self, pos: usize) {
        self.pos = pos.min(self.bytes.len());
    }

    /// `n` bytes, or an error naming where the document ends too early.
    fn take(&mut self, n: usize, at: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| {
                Error::InvalidMsgpack(format!(
                    "the document ends at byte {} inside the item at byte {at} (it needs {n} more bytes at byte {})",
                    self.bytes.len(),
                    self.pos
                ))
            })?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn be<const N: usize>(&mut self, at: usize) -> Result<[u8; N]> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N, at)?);
        Ok(a)
    }

    /// A length of `N` bytes, big-endian.
    fn len<const N: usize>(&mut self, at: usize) -> Result<usize> {
        let b = self.be::<N>(at)?;
        Ok(b.iter().fold(0usize, |n, &x| (n << 8) | usize::from(x)))
    }

    /// Reads the next item's head; for strings, binaries and extensions also their bytes.
    pub(crate) fn head(&mut self) -> Result<Head<'a>> {
        let at = self.pos;
        let [m] = self.be::<1>(at).map_err(|_| {
            Error::InvalidMsgpack(format!(
                "the document ends at byte {at} where an item should start{}",
                if at == 0 { " (the value is empty)" } else { "" }
            ))
        })?;
        Ok(match m {
            0x00..=0x7f => Head::Uint(u64::from(m)),
            0x80..=0x8f => Head::Map(u32::from(m & 0x0f)),
            0x90..=0x9f => Head::Array(u32::from(m & 0x0f)),
            0xa0..=0xbf => Head::Str(self.take(usize::from(m & 0x1f), at)?),
            0xc0 => Head::Nil,
            0xc1 => {
                return Err(Error::InvalidMsgpack(format!(
                    "byte {at} is 0xc1, a marker MessagePack never uses"
                )))
            }
            0xc2 => Head::Bool(false),
            0xc3 => Head::Bool(true),
            0xc4 => Head::Bin(self.sized::<1>(at)?),
            0xc5 => Head::Bin(self.sized::<2>(at)?),
            0xc6 => Head::Bin(self.sized::<4>(at)?),
            0xc7 => self.ext_sized::<1>(at)?,
            0xc8 => self.ext_sized::<2>(at)?,
            0xc9 => self.ext_sized::<4>(at)?,
            0xca => Head::F32(f32::from_be_bytes(self.be(at)?)),
            0xcb => Head::F64(f64::from_be_bytes(self.be(at)?)),
            0xcc => Head::Uint(u64::from(u8::from_be_bytes(self.be(at)?))),
            0xcd => Head::Uint(u64::from(u16::from_be_bytes(self.be(at)?))),
            0xce => Head::Uint(u64::from(u32::from_be_bytes(self.be(at)?))),
            0xcf => Head::Uint(u64::from_be_bytes(self.be(at)?)),
            0xd0 => int(i64::from(i8::from_be_bytes(self.be(at)?))),
            0xd1 => int(i64::from(i16::from_be_bytes(self.be(at)?))),
            0xd2 => int(i64::from(i32::from_be_bytes(self.be(at)?))),
            0xd3 => int(i64::from_be_bytes(self.be(at)?)),
            0xd4 => self.ext(1, at)?,
            0xd5 => self.ext(2, at)?,
            0xd6 => self.ext(4, at)?,
            0xd7 => self.ext(8, at)?,
            0xd8 => self.ext(16, at)?,
            0xd9 => Head::Str(self.sized::<1>(at)?),
            0xda => Head::Str(self.sized::<2>(at)?),
            0xdb => Head::Str(self.sized::<4>(at)?),
            0xdc => Head::Array(u32::from(u16::from_be_bytes(self.be(at)?))),
            0xdd => Head::Array(u32::from_be_bytes(self.be(at)?)),
            0xde => Head::Map(u32::from(u16::from_be_bytes(self.be(at)?))),
            0xdf => Head::Map(u32::from_be_bytes(self.be(at)?)),
            0xe0..=0xff => Head::Int(i64::from(m as i8)),
        })
    }

    /// A length of `N` bytes, then that many bytes (a str or bin 8/16/32).
    fn sized<const N: usize>(&mut self, at: usize) -> Result<&'a [u8]> {
        let n = self.len::<N>(at)?;
        self.take(n, at)
    }

    /// A length of `N` bytes, then an extension of that many bytes (ext 8/16/32).
    fn ext_sized<const N: usize>(&mut self, at: usize) -> Result<Head<'a>> {
        let n = self.len::<N>(at)?;
        self.ext(n, at)
    }

    fn ext(&mut self, n: usize, at: usize) -> Result<Head<'a>> {
        let [ty] = self.be::<1>(at)?;
        Ok(Head::Ext(ty as i8, self.take(n, at)?))
    }
}

/// A signed integer's head: `Uint` when it is not negative (MessagePack writers may use a signed
/// marker for any value), so that every integer has one reading.
fn int(v: i64) -> Head<'static> {
    u64::try_from(v).map_or(Head::Int(v), Head::Uint)
}

/// Items still to come in the open containers, innermost last, while walking a document.
#[derive(Default)]
pub(crate) struct Nesting {
    left: Vec<u64>,
}

impl Nesting {
    /// Takes `head` into account: a container with items opens (an error past [`MAX_DEPTH`]),
    /// anything else completes an item, which may complete the containers around it. Returns
    /// how many containers closed, or `None` once the document's one top-level item is complete.
    pub(crate) fn step(&mut self, head: &Head<'_>, at: usize) -> Result<Option<usize>> {
        let items = match *head {
            Head::Array(n) => u64::from(n),
            Head::Map(n) => 2 * u64::from(n),
            _ => 0,
        };
        if matches!(head, Head::Array(_) | Head::Map(_)) && self.left.len() >= MAX_DEPTH {
            return Err(Error::InvalidMsgpack(format!(
                "the container at byte {at} is nested {} deep, deeper than the {MAX_DEPTH} levels mmf reads",
                self.left.len() + 1
            )));
        }
        if items > 0 {
            self.left.push(items);
            return Ok(Some(0));
        }
        let mut closed = 0;
        loop {
            match self.left.last_mut() {
                None => return Ok(None),
                Some(left) => {
                    *left -= 1;
                    if *left > 0 {
                        return Ok(Some(closed));
                    }
                    self.left.pop();
                    closed += 1;
                }
            }
        }
    }
}

/// Checks that `bytes` are exactly one MessagePack document, nested no deeper than
/// [`MAX_DEPTH`], with no reserved marker (`0xc1`) and nothing after it. Linear in the input, no
/// recursion, no allocation sized by the input's lengths.
pub(crate) fn check(bytes: &[u8]) -> Result<()> {
    let end = skip(bytes)?;
    if end != bytes.len() {
        return Err(Error::InvalidMsgpack(format!(
            "{} trailing bytes after the document (at byte {end})",
            bytes.len() - end
        )));
    }
    Ok(())
}

/// The length of the one document at the start of `bytes`, checked as [`check`] does.
pub(crate) fn skip(bytes: &[u8]) -> Result<usize> {
    // Every typed publish and read walks its document: the walk that builds no `Head`s first,
    // and for a document it refuses, the one that says why.
    match skip_fast(bytes) {
        Some(end) => Ok(end),
        None => skip_explained(bytes),
    }
}

/// [`skip`]'s walk in one loop over the markers, without the error messages: `None` for any
/// document [`skip_explained`] refuses (and for any nested deeper than 24 levels), and the same
/// length for any other it takes (the tests compare the two on every marker family, cuts and
/// random documents).
fn skip_fast(bytes: &[u8]) -> Option<usize> {
    let be = |at: usize, n: usize| -> Option<u64> {
        let b = bytes.get(at..at.checked_add(n)?)?;
        Some(b.iter().fold(0u64, |v, &x| (v << 8) | u64::from(x)))
    };
    // Items still to come: `cur` in the innermost open container (in a register: one count in
    // memory, decremented by every item, would make each item wait for the last one's store),
    // `outer[..depth]` in the containers around it. At the top level `cur` counts the one
    // document. Deeper documents (rare, and up to `MAX_DEPTH`) take the explained walk: this
    // array is set to zeros on every call.
    let mut outer = [0u64; 24];
    let mut depth = 0;
    let mut cur = 1u64;
    let mut pos = 0usize;
    loop {
        let m = *bytes.get(pos)?;
        pos += 1;
        // The items the head opens (a container), or the bytes after the marker it spans.
        let (container, items, span): (bool, u64, u64) = match m {
            0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => (false, 0, 0),
            0x80..=0x8f => (true, 2 * u64::from(m & 0x0f), 0),
            0x90..=0x9f => (true, u64::from(m & 0x0f), 0),
            0xa0..=0xbf => (false, 0, u64::from(m & 0x1f)),
            0xc1 => return None,
            0xc4 | 0xd9 => (false, 0, 1 + be(pos, 1)?),
            0xc5 | 0xda => (false, 0, 2 + be(pos, 2)?),
            0xc6 | 0xdb => (false, 0, 4 + be(pos, 4)?),
            0xc7 => (false, 0, 2 + be(pos, 1)?),
            0xc8 => (false, 0, 3 + be(pos, 2)?),
            0xc9 => (false, 0, 5 + be(pos, 4)?),
            0xca | 0xce | 0xd2 => (false, 0, 4),
            0xcb | 0xcf | 0xd3 => (false, 0, 8),
            0xcc | 0xd0 => (false, 0, 1),
            0xcd | 0xd1 => (false, 0, 2),
            0xd4 => (false, 0, 2),
            0xd5 => (false, 0, 3),
            0xd6 => (false, 0, 5),
            0xd7 => (false, 0, 9),
            0xd8 => (false, 0, 17),
            0xdc => (true, be(pos, 2)?, 2),
            0xdd => (true, be(pos, 4)?, 4),
            0xde => (true, 2 * be(pos, 2)?, 2),
            0xdf => (true, 2 * be(pos, 4)?, 4),
        };
        // `span` is at most 5 + u32::MAX; where that does not fit a `usize` or overflows it,
        // the explained walk gets the document (and refuses it).
        pos = pos.checked_add(usize::try_from(span).ok()?)?;
        if pos > bytes.len() || (container && depth >= outer.len()) {
            return None;
        }
        if items > 0 {
            outer[depth] = cur;
            depth += 1;
            cur = items;
            continue;
        }
        // A complete item, which may complete the containers around it.
        loop {
            cur -= 1;
            if cur > 0 {
                break;
            }
            if depth == 0 {
                return Some(pos);
            }
            depth -= 1;
            cur = outer[depth];
        }
    }
}

/// [`skip`] with an error that says where and why the document is refused.
fn skip_explained(bytes: &[u8]) -> Result<usize> {
    let mut r = Reader::new(bytes);
    let mut nesting = Nesting::default();
    loop {
        let at = r.pos();
        let head = r.head()?;
        if nesting.step(&head, at)?.is_none() {
            return Ok(r.pos());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(bytes: &[u8]) -> String {
        match check(bytes) {
            Err(Error::InvalidMsgpack(m)) => m,
            other => panic!("{:x?}: {other:?}", &bytes[..bytes.len().min(8)]),
        }
    }

    #[test]
    fn every_marker_family_is_read() {
        let v = rmpv::Value::Array(vec![
            rmpv::Value::Nil,
            true.into(),
            0.into(),
            127.into(),
            255.into(),
            65_535.into(),
            u32::MAX.into(),
            u64::MAX.into(),
            (-1).into(),
            (-33).into(),
            i16::MIN.into(),
            i32::MIN.into(),
            i64::MIN.into(),
            rmpv::Value::F32(1.5),
            rmpv::Value::F64(-0.0),
            "x".repeat(31).into(),
            "x".repeat(200).into(),
            "x".repeat(70_000).into(),
            rmpv::Value::Binary(vec![1; 300]),
            rmpv::Value::Ext(-1, vec![0; 4]),
            rmpv::Value::Ext(7, vec![0; 3]),
            rmpv::Value::Ext(7, vec![0; 70_000]),
            rmpv::Value::Map(vec![(1.into(), 2.into()); 20]),
            rmpv::Value::Array(vec![rmpv::Value::Nil; 70_000]),
        ]);
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &v).unwrap();
        check(&bytes).unwrap();
        assert_eq!(skip_fast(&bytes), Some(bytes.len()));
        for cut in [1, 2, 10, bytes.len() / 2, bytes.len() - 1] {
            assert!(invalid(&bytes[..cut]).contains("the document ends at byte"));
            assert_eq!(skip_fast(&bytes[..cut]), None);
        }
        // Every marker alone, and followed by a few bytes of every kind: the two walks agree.
        for m in 0..=255u8 {
            for tail in [
                &[][..],
                &[0x00],
                &[0x01, 0xc0],
                &[0x00, 0x02, 0x05, 0x91, 0xc0],
                &[0xff; 20],
            ] {
                let mut doc = vec![m];
                doc.extend_from_slice(tail);
                for end in 1..=doc.len() {
                    agree(&doc[..end]);
                }
            }
        }
    }

    /// `skip_fast` and `skip_explained` take and refuse the same documents, with the same length,
    /// except that `skip_fast` leaves those deeper than its 24 levels to the other.
    fn agree(bytes: &[u8]) {
        let explained = skip_explained(bytes).ok();
        let expected = explained.filter(|_| depth(bytes) <= 24);
        assert_eq!(
            skip_fast(bytes),
            expected,
            "{:x?}",
            &bytes[..bytes.len().min(16)]
        );
        // Whichever walk answers, `skip` says what the explained walk says.
        assert_eq!(skip(bytes).ok(), explained);
    }

    /// How deep the (valid) document nests.
    fn depth(bytes: &[u8]) -> usize {
        let (mut r, mut nesting, mut deepest) = (Reader::new(bytes), Nesting::default(), 0);
        loop {
            let at = r.pos();
            let head = r.head().unwrap();
            if matches!(head, Head::Array(_) | Head::Map(_)) {
                // An empty container is a level too.
                deepest = deepest.max(nesting.left.len() + 1);
            }
            let done = nesting.step(&head, at).unwrap().is_none();
            if done {
                return deepest;
            }
        }
    }

    #[test]
    fn the_fast_walk_agrees_with_the_explained_one_on_random_documents() {
        // Valid documents of random shape, each then cut, and with bytes changed at random.
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for _ in 0..3000 {
            let mut doc = Vec::new();
            let mut open = 0u32;
            for _ in 0..(next() % 40) {
                let r = next();
                let item: &[u8] = match r % 12 {
                    0 => &[0x92],
                    1 => &[0x81],
                    2 => &[0xdc, 0x00, 0x01],
                    3 => &[0xde, 0x00, 0x01],
                    4 => &[0xa3, b'a', b'b', b'c'],
                    5 => &[0xc4, 0x02, 1, 2],
                    6 => &[0xd6, 0x01, 1, 2, 3, 4],
                    7 => &[0xcb, 0, 0, 0, 0, 0, 0, 0, 0],
                    8 => &[0x90],
                    9 => &[0xc7, 0x01, 0x05, 0xaa],
                    10 => &[0xd9, 0x01, b'x'],
                    _ => &[0x05],
                };
                if item[0] & 0xf0 == 0x90 || item[0] & 0xf0 == 0x80 || item[0] >= 0xdc {
                    open += 1;
                }
                doc.extend_from_slice(item);
            }
            doc.extend(std::iter::repeat_n(0xc0, (open * 2) as usize + 1));
            agree(&doc);
            if !doc.is_empty() {
                let cut = (next() as usize) % doc.len();
                agree(&doc[..cut]);
                let mut bent = doc.clone();
                let at = (next() as usize) % bent.len();
                bent[at] = next() as u8;
                agree(&bent);
            }
        }
        // Depth: 24 levels and one more around them (the fast walk's limit); 127 levels are
        // taken, 128 refused.
        for levels in [23, 24, 25] {
            let mut doc = vec![0x91; levels - 1];
            doc.push(0x90);
            agree(&doc);
            assert_eq!((depth(&doc), skip(&doc).unwrap()), (levels, levels));
        }
        let mut deep = vec![0x91; MAX_DEPTH - 1];
        deep.push(0x90);
        agree(&deep);
        deep.insert(0, 0x91);
        agree(&deep);
        let mut deep = [0xdc, 0x00, 0x01].repeat(MAX_DEPTH);
        deep.push(0xc0);
        agree(&deep);
        deep.splice(0..0, [0x81, 0xc0]);
        agree(&deep);
    }

    #[test]
    fn depth_reserved_marker_trailing_and_empty_are_refused() {
        let mut deep = vec![0x91; MAX_DEPTH - 1];
        deep.push(0x90);
        check(&deep).unwrap();
        deep.insert(0, 0x91);
        assert!(
            invalid(&deep).contains("nested 128 deep"),
            "{}",
            invalid(&deep)
        );
        // A recursive enum's encoding ({"Node": {"Node": ...}}) is maps all the way down.
        let mut tree = b"\x81\xa4Node".repeat(100_000);
        tree.extend(b"\xa4Leaf");
        assert!(invalid(&tree).contains("deeper than the 127 levels"));
        assert!(invalid(&[0x92, 0xc1, 0xc0]).contains("0xc1"));
        assert!(invalid(&[0x01, 0x02]).contains("1 trailing bytes"));
        assert!(invalid(&[]).contains("the value is empty"));
        // Lengths claiming more than is there cost nothing.
        assert!(invalid(&[0xdd, 0xff, 0xff, 0xff, 0xff]).contains("ends at byte 5"));
        assert!(invalid(&[0xc6, 0xff, 0xff, 0xff, 0xff]).contains("needs 4294967295 more"));
    }
}
