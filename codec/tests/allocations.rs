//! What a read from a reused buffer allocates: nothing, for a value whose type holds nothing on
//! the heap. The README's "zero-allocation hot path" (`read_into`, then `decode` from the same
//! buffer) promises it, and a library user counted one allocation a decode, of a `u64` too:
//! rmp-serde's `Deserializer::new` reads through a buffer of its own, made for every value.
//!
//! The allocator of this test binary counts the allocations each thread makes; each test
//! counts its own thread's, so tests running side by side do not disturb each other.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use std::time::Duration;

use mmf_codec::{decode, Channel, ChannelExt, Error, Follower, FollowerExt};
use serde::{Deserialize, Serialize};

thread_local! {
    /// Allocations (and reallocations) this thread made. A `const` initialiser: reading it
    /// allocates nothing, which an allocator's own bookkeeping must not.
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

struct Counting;

// SAFETY: every call is passed on to `System` unchanged; counting touches only a thread-local
// `Cell` with a `const` initialiser, which neither allocates nor unwinds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        COUNT.with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's guarantees for `layout` are `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` (through `alloc` or `realloc` above) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        COUNT.with(|c| c.set(c.get() + 1));
        // SAFETY: as for `dealloc`; the caller's guarantees for `new_size` are `System`'s.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// How many allocations `f` made on this thread, and what it returned.
fn counted<T>(f: impl FnOnce() -> T) -> (u64, T) {
    let before = COUNT.with(Cell::get);
    let out = f();
    (COUNT.with(Cell::get) - before, out)
}

/// A market tick as a service would publish it: nothing on the heap.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
struct Tick {
    seq: u64,
    bid: f64,
    ask: f64,
    side: Side,
    levels: [u32; 4],
    venue: Option<u16>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
enum Side {
    Buy,
    Sell,
}

#[test]
fn a_read_into_a_reused_buffer_and_its_decode_allocate_nothing() {
    let ch = Channel::anonymous(4096).unwrap();
    let mut buf = Vec::with_capacity(4096);
    let tick = Tick {
        seq: 7,
        bid: 99.5,
        ask: 100.25,
        side: Side::Sell,
        levels: [1, 2, 3, 4],
        venue: Some(3),
    };
    ch.publish(&tick).unwrap();
    let (n, meta) = counted(|| ch.read_into(&mut buf).unwrap());
    assert_eq!(n, 0, "read_into");
    let (n, read) = counted(|| decode::<Tick>(&ch, meta, &buf));
    assert_eq!((n, read.unwrap()), (0, tick), "decode of a struct");

    // The typed calls that take no buffer copy through the thread's own, as typed publishes
    // encode into it: after a first call has grown it, none allocates.
    let (_, first) = counted(|| ch.read::<Tick>());
    assert_eq!(first.unwrap(), tick);
    let (n, read) = counted(|| ch.read::<Tick>());
    assert_eq!((n, read.unwrap()), (0, tick), "read");
    let (n, read) = counted(|| ch.read_after::<Tick>(0, Duration::ZERO));
    assert_eq!((n, read.unwrap().unwrap().1), (0, tick), "read_after");
    let (n, published) = counted(|| ch.publish(&tick));
    assert_eq!((n, published.unwrap()), (0, 2), "publish");

    ch.publish(&u64::MAX).unwrap();
    let meta = ch.read_into(&mut buf).unwrap();
    let (n, read) = counted(|| decode::<u64>(&ch, meta, &buf));
    assert_eq!((n, read.unwrap()), (0, u64::MAX), "decode of a u64");

    // The check that the type read the whole value stays: a struct that takes the first
    // element of a longer array is refused (rmp-serde counts arrays' elements itself), and a
    // value of the wrong shape too.
    ch.publish(&(1u64, 2u64)).unwrap();
    let meta = ch.read_into(&mut buf).unwrap();
    #[derive(Deserialize, Debug)]
    struct One(#[allow(dead_code)] u64);
    assert!(matches!(
        decode::<One>(&ch, meta, &buf),
        Err(Error::Decode { .. })
    ));
    assert!(matches!(
        decode::<Tick>(&ch, meta, &buf),
        Err(Error::Decode { .. })
    ));
    assert_eq!(decode::<(u64, u64)>(&ch, meta, &buf).unwrap(), (1, 2));
    // A `Deserialize` that leaves the value unread where rmp-serde counts nothing (an option's
    // `Some`, whose contents it never asks for) is refused.
    assert!(matches!(
        decode::<Unread>(&ch, meta, &buf),
        Err(Error::Decode { message, .. }) if message.contains("did not read the whole value")
    ));
}

/// A record whose text fields borrow from the buffer the value was read into.
#[derive(Deserialize, Debug, PartialEq)]
struct Order<'a> {
    id: u64,
    symbol: &'a str,
    #[serde(borrow)]
    note: std::borrow::Cow<'a, str>,
    tags: Vec<&'a str>,
}

/// `decode` borrows from the bytes it is given (a review's: it asked for `DeserializeOwned`):
/// a type with `&str` fields reads without copying them, and with no allocation where it holds
/// nothing else on the heap; from MessagePack and from JSON text alike.
#[test]
fn decode_borrows_from_its_buffer() {
    #[derive(Serialize)]
    struct Sent {
        id: u64,
        symbol: String,
        note: String,
        tags: Vec<String>,
    }
    let ch = Channel::anonymous(4096).unwrap();
    let mut buf = Vec::with_capacity(4096);
    ch.publish(&Sent {
        id: 9,
        symbol: "ACME".into(),
        note: "filled".into(),
        tags: vec![],
    })
    .unwrap();
    let meta = ch.read_into(&mut buf).unwrap();
    let (n, order) = counted(|| decode::<Order>(&ch, meta, &buf));
    let order = order.unwrap();
    assert_eq!(n, 0, "decode of borrowed fields");
    assert_eq!(
        (order.id, order.symbol, &*order.note),
        (9, "ACME", "filled")
    );
    // The field is the buffer's own bytes, not a copy.
    assert!(buf.as_ptr_range().contains(&order.symbol.as_ptr()));
    assert!(matches!(order.note, std::borrow::Cow::Borrowed(_)));

    // JSON text: borrowed where a string has no escapes; a `Cow` takes one that has.
    ch.publish_json(r#"{"id": 1, "symbol": "XY", "note": "a \"quoted\" word", "tags": ["t"]}"#)
        .unwrap();
    let meta = ch.read_into(&mut buf).unwrap();
    let order = decode::<Order>(&ch, meta, &buf).unwrap();
    assert_eq!(
        (order.symbol, &*order.note, order.tags),
        ("XY", "a \"quoted\" word", vec!["t"])
    );
    assert!(buf.as_ptr_range().contains(&order.symbol.as_ptr()));

    // A text value, as `mmf out NAME text` publishes it: a `&str` of the buffer, and a newtype
    // or `Option` of one, as a JSON string reads (it read through an owned string, which no
    // `&str` can borrow: the diff review's).
    ch.publish_str("ready").unwrap();
    let meta = ch.read_into(&mut buf).unwrap();
    let (n, text) = counted(|| decode::<&str>(&ch, meta, &buf));
    assert_eq!((n, text.unwrap()), (0, "ready"));
    assert!(buf
        .as_ptr_range()
        .contains(&decode::<&str>(&ch, meta, &buf).unwrap().as_ptr()));
    #[derive(Deserialize, Debug, PartialEq)]
    struct Status<'a>(&'a str);
    assert_eq!(
        decode::<Option<Status>>(&ch, meta, &buf).unwrap(),
        Some(Status("ready"))
    );
}

/// A follower's typed read, which a consumer's loop calls for every value, allocates nothing
/// either once its thread's buffer has grown. (Every 100 ms a follower also looks at the name,
/// which allocates: a read that a pause of the machine puts after such a look is retried.)
#[test]
fn a_followers_typed_read_allocates_nothing() {
    /// Removes the channel however the test ends.
    struct Named(String);
    impl Drop for Named {
        fn drop(&mut self) {
            let _ = Channel::remove(&self.0);
        }
    }
    let name = Named(format!("codec-allocations-{}", std::process::id()));
    let writer = Channel::create(&name.0, 256).unwrap();
    let mut follower = Follower::open(&name.0, Duration::from_secs(5)).unwrap();
    let mut seen = 0;
    let mut read = |i: u64| {
        writer.publish(&[i, i + 1]).unwrap();
        let (n, read) = counted(|| follower.read_after::<[u64; 2]>(&mut seen, Duration::ZERO));
        let (meta, value) = read.unwrap().unwrap();
        assert_eq!((meta.generation, value), (i + 1, [i, i + 1]));
        n
    };
    read(0);
    let counts: Vec<u64> = (1..6).map(&mut read).collect();
    assert!(counts.contains(&0), "allocations of each read: {counts:?}");
}

/// Takes any value without reading it: an option's visitor that ignores what is in it.
#[derive(Debug)]
struct Unread;

impl<'de> Deserialize<'de> for Unread {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Unread, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Unread;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("anything")
            }
            fn visit_some<D: serde::Deserializer<'de>>(self, _: D) -> Result<Unread, D::Error> {
                Ok(Unread)
            }
        }
        d.deserialize_option(Visitor)
    }
}
