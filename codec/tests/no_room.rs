//! Reading a value whose rendering takes more memory than this process may have: an error that
//! says so, never an abort. Another process chooses the value; a reader under a `ulimit -v` or
//! a container's limit must survive it (a review: a MessagePack map of 10 million keys, or JSON
//! text with 5 million, aborted `mmf read` and every `mmf watch` of the channel in the
//! bookkeeping that finds a key given twice).
//!
//! The allocator of this test binary refuses every single allocation above [`LIMIT`], as such
//! a limit refuses the large ones first. One test, so that no other test runs under the limit.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use mmf_codec::{Channel, ChannelExt, Error, Tag};

/// The largest allocation the allocator grants (`usize::MAX`: any).
static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);

struct Limited;

// SAFETY: every call is passed on to `System` unchanged, except that an allocation above
// `LIMIT` returns null, which `GlobalAlloc` allows (it reports a refused allocation).
unsafe impl GlobalAlloc for Limited {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > LIMIT.load(Ordering::Relaxed) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's guarantees for `layout` are `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` (through `alloc` or `realloc` above) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > LIMIT.load(Ordering::Relaxed) {
            return std::ptr::null_mut();
        }
        // SAFETY: as for `dealloc`; the caller's guarantees for `new_size` are `System`'s.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Limited = Limited;

/// `f` with single allocations limited to `bytes`.
fn limited<T>(bytes: usize, f: impl FnOnce() -> T) -> T {
    LIMIT.store(bytes, Ordering::Relaxed);
    let out = f();
    LIMIT.store(usize::MAX, Ordering::Relaxed);
    out
}

/// 4-character keys, all different, for a map of `n`.
fn key(i: usize) -> [u8; 4] {
    let digit = |d: usize| b'A' + (i / 58usize.pow(d as u32) % 58) as u8;
    [digit(3), digit(2), digit(1), digit(0)]
}

#[test]
fn keys_beyond_the_memory_at_hand_are_an_error_not_an_abort() {
    const N: usize = 200_000;
    let ch = Channel::anonymous(8 << 20).unwrap();

    // MessagePack: a map32 of N keys, each value 0 (6 bytes a key). Its JSON text takes 9 bytes a
    // key; the keys kept to find a second one take 16 a key, in one `Vec` that doubles.
    let mut value = vec![0xdf];
    value.extend_from_slice(&(N as u32).to_be_bytes());
    for i in 0..N {
        value.push(0xa4);
        value.extend_from_slice(&key(i));
        value.push(0);
    }
    ch.publish_raw(Tag::MSGPACK, &value).unwrap();
    let whole = ch.read_json().unwrap();
    // (A few keys hold a backslash, written escaped.)
    assert!(whole.len() > 9 * N, "{}", whole.len());
    for pretty in [false, true] {
        let read = limited(3 << 20, || {
            if pretty {
                ch.read_json_pretty()
            } else {
                ch.read_json()
            }
        });
        match read {
            Err(Error::OutOfMemory { what, bytes, .. }) => {
                assert!(what.contains("keys"), "{what}");
                // (What the keys kept so far and the next one take.)
                assert!(bytes > 1 << 20, "{bytes}");
            }
            other => panic!("MessagePack map, pretty {pretty}: {other:?}"),
        }
    }

    // JSON text another process stored: `{"AAAA":0,...}`, 9 bytes a key, checked for a key
    // given twice in a set of 16-byte entries (and its control bytes) before it is passed on.
    let text = whole.as_bytes();
    ch.publish_raw(Tag::JSON, text).unwrap();
    assert_eq!(ch.read_json().unwrap(), whole);
    let read = limited(3 << 20, || ch.read_json());
    match read {
        Err(Error::OutOfMemory { what, .. }) => assert!(what.contains("keys"), "{what}"),
        other => panic!("JSON text: {other:?}"),
    }

    // The last value is untouched, and reads whole once the memory is there.
    assert_eq!(ch.read_json().unwrap(), whole);
}
