//! Mapped memory, seen only as an array of `AtomicU64` words.
//!
//! This is one of the few modules of `mmf-core` that holds `unsafe` code. Everything another
//! process can change under us lives in a [`Region`], and a `Region` hands out nothing but
//! `&AtomicU64` (whose `UnsafeCell` says "may change behind your back") and owned copies. It never
//! forms a `&[u8]` or `&mut [u8]` into the mapping, so no Rust reference ever promises the
//! compiler that shared memory is frozen or exclusively ours.
//!
//! # Why the payload copy is sound under Rust's memory model
//!
//! A reader may copy a slot at the very moment a (buggy, hostile, or simply stale-seen) writer
//! rewrites it. If either side used plain `memcpy`, that overlap would be a data race, which is
//! undefined behaviour even when the reader later throws the bytes away (the seqlock "read, then
//! validate" pattern does exactly that). So both sides move payload bytes with `Relaxed` atomic
//! 8-byte loads and stores ([`Region::copy_out`], [`Region::copy_in_words`]): concurrent atomic
//! accesses of the same size are never a data race, a torn *value* is possible but a torn *word*
//! is not, and the seqlock's fences (see `seqlock.rs`) decide whether the copied value is kept.
//! This is the "byte-wise atomic memcpy" of the C++ proposal P1478, at word granularity; on x86-64
//! and AArch64 a relaxed 8-byte load or store is an ordinary `mov`/`ldr`, so the cost against
//! `memcpy` is the loss of SIMD width, which `benches/` measures.
//!
//! Relaxed loads of at most pointer width are also allowed on read-only memory (std's
//! "Atomic accesses to read-only memory"), which is how a reader that mapped a channel
//! `PROT_READ` reads it; such a reader never calls a store or a read-modify-write.

use crate::sync::{AtomicU64, Ordering};

/// Bytes in one word of a region.
pub(crate) const WORD: usize = 8;

/// Mapped (or, in tests and under loom, heap) memory viewed as `words` atomic 64-bit words.
pub(crate) struct Region {
    #[cfg(not(loom))]
    base: std::ptr::NonNull<AtomicU64>,
    /// Keeps the mapping alive for as long as `base` is used.
    #[cfg(not(loom))]
    _map: memmap2::MmapRaw,
    #[cfg(loom)]
    cells: Box<[AtomicU64]>,
    words: usize,
    writable: bool,
}

// SAFETY: a `Region` only exposes atomics (which are `Sync`) and owned copies; the raw base
// pointer is never handed out, and the mapping it points into lives as long as the `Region`.
#[cfg(not(loom))]
unsafe impl Send for Region {}
// SAFETY: see `Send` above: every access through `&Region` is an atomic operation.
#[cfg(not(loom))]
unsafe impl Sync for Region {}

impl Region {
    /// Wraps a mapping. `writable` says whether the mapping was made `PROT_WRITE`.
    ///
    /// The mapping's length must be a whole number of words (the caller's layout guarantees it
    /// and this checks it); its start is page-aligned, so every word is aligned.
    #[cfg(not(loom))]
    pub(crate) fn from_map(map: memmap2::MmapRaw, writable: bool) -> Region {
        let len = map.len();
        assert!(
            len.is_multiple_of(WORD),
            "mapping length {len} is not a whole number of words"
        );
        let ptr = map.as_mut_ptr();
        assert!(
            (ptr as usize).is_multiple_of(std::mem::align_of::<AtomicU64>()),
            "mapping is not word-aligned"
        );
        let base = std::ptr::NonNull::new(ptr.cast::<AtomicU64>()).expect("mmap returned null");
        Region {
            base,
            _map: map,
            words: len / WORD,
            writable,
        }
    }

    /// A private, zeroed, writable region of `bytes` bytes (an anonymous mapping), for channels
    /// that live inside one process: tests and benchmarks.
    #[cfg(not(loom))]
    pub(crate) fn anonymous(bytes: usize) -> std::io::Result<Region> {
        let map = memmap2::MmapOptions::new().len(bytes).map_anon()?;
        Ok(Region::from_map(memmap2::MmapRaw::from(map), true))
    }

    /// A zeroed heap region of `bytes` bytes made of loom atomics.
    #[cfg(loom)]
    pub(crate) fn anonymous(bytes: usize) -> std::io::Result<Region> {
        assert!(bytes.is_multiple_of(WORD));
        let cells = (0..bytes / WORD).map(|_| AtomicU64::new(0)).collect();
        Ok(Region {
            cells,
            words: bytes / WORD,
            writable: true,
        })
    }

    /// Whether stores are allowed (the mapping is `PROT_WRITE`).
    pub(crate) fn writable(&self) -> bool {
        self.writable
    }

    /// The word at index `i`.
    ///
    /// Indices come from a `Layout` that was checked against the mapping's length when the
    /// channel was opened, never straight from shared memory; the assert guards against a bug in
    /// this crate, not against a peer.
    #[inline]
    pub(crate) fn word(&self, i: usize) -> &AtomicU64 {
        assert!(
            i < self.words,
            "word index {i} out of a region of {} words",
            self.words
        );
        #[cfg(not(loom))]
        {
            // SAFETY: `i < words`, and `base` points at `words` aligned, initialised `u64`s of a
            // mapping kept alive by `self._map`; `AtomicU64` has the size and alignment of `u64`,
            // and its `UnsafeCell` makes a shared reference to memory others mutate legitimate.
            unsafe { &*self.base.as_ptr().add(i) }
        }
        #[cfg(loom)]
        {
            &self.cells[i]
        }
    }

    /// Words `first .. first + n` as a slice of atomics, or a panic if they leave the region.
    ///
    /// Callers pass ranges computed from a validated `Layout` and a length already checked
    /// against the slot's capacity; the assert repeats that check against the region itself, so
    /// no length read from shared memory can ever reach outside the mapping.
    #[inline]
    pub(crate) fn words(&self, first: usize, n: usize) -> &[AtomicU64] {
        assert!(
            first <= self.words && n <= self.words - first,
            "words {first}..{first}+{n} leave a region of {} words",
            self.words
        );
        #[cfg(not(loom))]
        {
            // SAFETY: the range lies inside the mapping (asserted above), which `self._map` keeps
            // alive; the words are aligned `u64`s viewed as `AtomicU64`s (same size and
            // alignment), and a slice of atomics may alias memory other processes mutate.
            unsafe { std::slice::from_raw_parts(self.base.as_ptr().add(first), n) }
        }
        #[cfg(loom)]
        {
            &self.cells[first..first + n]
        }
    }

    /// Replaces the contents of `dst` with the `len` bytes that start at word `first`, read with
    /// `Relaxed` atomic word loads (see the module docs for why not `memcpy`).
    #[inline]
    pub(crate) fn copy_out(&self, first: usize, len: usize, dst: &mut Vec<u8>) {
        atomic_load_bytes(self.words(first, len.div_ceil(WORD)), len, dst);
    }

    /// Stores `src` at word `first` onward with `Relaxed` atomic word stores; a partial last word
    /// is padded with zeros. Only called by the writer that holds the channel's writer lock, on a
    /// slot no pinned reader uses.
    #[inline]
    pub(crate) fn copy_in_words(&self, first: usize, src: &[u8]) {
        assert!(self.writable, "store into a read-only mapping");
        atomic_store_bytes(self.words(first, src.len().div_ceil(WORD)), src);
    }
}

/// Replaces the contents of `dst` with the first `len` bytes of `src`, each word read with one
/// `Relaxed` atomic load: the copy a reader makes of a slot that a writer may be changing.
///
/// Public (hidden) so that the benchmarks can weigh it against `memcpy`.
///
/// # Panics
/// If `src` holds fewer than `len` bytes.
#[inline]
pub fn atomic_load_bytes(src: &[AtomicU64], len: usize, dst: &mut Vec<u8>) {
    let full = len / WORD;
    let tail = len % WORD;
    assert!(
        src.len() >= full + usize::from(tail != 0),
        "{len} bytes from {} words",
        src.len()
    );
    dst.clear();
    dst.reserve(len);
    let out = dst.spare_capacity_mut();
    for (chunk, word) in out[..full * WORD].chunks_exact_mut(WORD).zip(src) {
        let bytes = word.load(Ordering::Relaxed).to_ne_bytes();
        for (o, b) in chunk.iter_mut().zip(bytes) {
            o.write(b);
        }
    }
    if tail != 0 {
        let bytes = src[full].load(Ordering::Relaxed).to_ne_bytes();
        for (o, b) in out[full * WORD..len].iter_mut().zip(bytes) {
            o.write(b);
        }
    }
    // SAFETY: the loops above initialised every byte of `dst`'s spare capacity below `len`
    // (`full` whole words, then `tail` bytes), and `len <= capacity` after `reserve(len)`.
    unsafe { dst.set_len(len) };
}

/// Stores `src` into `dst` with one `Relaxed` atomic store per word, the last word zero-padded:
/// the copy a writer makes into a slot that a stale reader may be validating.
///
/// # Panics
/// If `dst` has fewer words than `src` needs.
#[inline]
pub fn atomic_store_bytes(dst: &[AtomicU64], src: &[u8]) {
    assert!(
        dst.len() >= src.len().div_ceil(WORD),
        "{} bytes into {} words",
        src.len(),
        dst.len()
    );
    let mut chunks = src.chunks_exact(WORD);
    for (word, chunk) in dst.iter().zip(&mut chunks) {
        word.store(
            u64::from_ne_bytes(chunk.try_into().expect("8 bytes")),
            Ordering::Relaxed,
        );
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut last = [0u8; WORD];
        last[..rest.len()].copy_from_slice(rest);
        dst[src.len() / WORD].store(u64::from_ne_bytes(last), Ordering::Relaxed);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn copy_round_trips_every_tail_length() {
        let r = Region::anonymous(4096).unwrap();
        let mut out = Vec::new();
        for len in 0..100usize {
            let src: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            r.copy_in_words(3, &src);
            r.copy_out(3, len, &mut out);
            assert_eq!(out, src, "len {len}");
        }
    }

    #[test]
    #[should_panic(expected = "leave a region")]
    fn copy_out_past_the_end_is_refused() {
        let r = Region::anonymous(64).unwrap();
        let mut out = Vec::new();
        r.copy_out(4, 40, &mut out);
    }
}
