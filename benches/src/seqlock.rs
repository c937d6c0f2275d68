//! The reference for reader progress: a naive single-buffer seqlock over a shared mapping (the
//! design mmf's reader-pinned slots replace). The writer makes the stamp odd, stores the payload
//! with Relaxed atomic word stores, and makes it even again; a reader copies with Relaxed atomic
//! word loads and retries whenever the stamp was odd or moved during its copy. Under a writer that
//! publishes back-to-back, a copy that takes longer than one publish never completes.
//!
//! The payload copies are mmf's own (`mmf_core::__bench::atomic_{load,store}_bytes`), so that the
//! comparison with mmf is one of protocols, not of copy loops.

use std::sync::atomic::{fence, AtomicU64, Ordering};

use mmf_core::__bench::{atomic_load_bytes, atomic_store_bytes};

/// A seqlock over `words` (the payload) guarded by `stamp`.
pub struct NaiveSeqlock<'a> {
    stamp: &'a AtomicU64,
    words: &'a [AtomicU64],
}

impl<'a> NaiveSeqlock<'a> {
    /// A seqlock over memory that all parties map.
    pub fn new(stamp: &'a AtomicU64, words: &'a [AtomicU64]) -> Self {
        NaiveSeqlock { stamp, words }
    }

    /// Publishes `src` (at most `8 * words.len()` bytes; a partial last word is zero-padded).
    /// Single writer only.
    pub fn write(&self, src: &[u8]) {
        let s = self.stamp.load(Ordering::Relaxed);
        self.stamp.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        atomic_store_bytes(self.words, src);
        self.stamp.store(s.wrapping_add(2), Ordering::Release);
    }

    /// Copies `len` bytes into `dst` once a copy validates; returns the generation (stamp / 2)
    /// and the number of failed attempts, or `None` if `give_up` said so first.
    pub fn read(
        &self,
        len: usize,
        dst: &mut Vec<u8>,
        mut give_up: impl FnMut() -> bool,
    ) -> Option<(u64, u64)> {
        let mut retries = 0;
        loop {
            let s1 = self.stamp.load(Ordering::Acquire);
            if s1 % 2 == 0 {
                atomic_load_bytes(self.words, len, dst);
                fence(Ordering::Acquire);
                if self.stamp.load(Ordering::Relaxed) == s1 {
                    return Some((s1 / 2, retries));
                }
            }
            retries += 1;
            if give_up() {
                return None;
            }
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let stamp = AtomicU64::new(0);
        let words: Vec<AtomicU64> = (0..4).map(|_| AtomicU64::new(0)).collect();
        let s = NaiveSeqlock::new(&stamp, &words);
        s.write(b"hello, seqlock!");
        let mut out = Vec::new();
        assert_eq!(s.read(15, &mut out, || true), Some((1, 0)));
        assert_eq!(out, b"hello, seqlock!");
    }
}
