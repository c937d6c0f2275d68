//! Page-aligned byte buffers for the payloads the harness copies with `memcpy`.
//!
//! On this machine's CPU (AMD EPYC, Zen 3, FSRM) glibc's `memcpy` of 4 KiB to 256 KiB uses
//! `rep movsb`, which runs about 20 times slower (~2 GB/s instead of ~45) when the destination
//! lies 1 to 31 bytes after the source modulo 4096 (measured; `docs/BENCHMARKS.md`). A heap
//! `Vec` lands at an arbitrary page offset, so whether a transport hits that case would depend on
//! the allocator's mood. Every local buffer the harness copies to or from shared memory is
//! therefore page-aligned, like the shared buffers themselves: the fast case, for every transport
//! whose shared buffers the harness places.

use std::alloc::{alloc_zeroed, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;

/// Alignment of every [`Buf`].
pub const ALIGN: usize = 4096;

/// A zero-initialised, page-aligned, fixed-length byte buffer.
pub struct Buf {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: `Buf` owns its allocation exclusively, like a `Box<[u8]>`.
unsafe impl Send for Buf {}

impl Buf {
    /// `len` zero bytes at a page boundary.
    pub fn zeroed(len: usize) -> Buf {
        let layout = Self::layout(len);
        // SAFETY: the layout has a non-zero size (at least 1) and a power-of-two alignment.
        let ptr = unsafe { alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(ptr) else {
            handle_alloc_error(layout)
        };
        Buf { ptr, len }
    }

    /// `len` bytes with a recognisable pattern (not zeroes, which a page might share).
    pub fn pattern(len: usize) -> Buf {
        let mut b = Buf::zeroed(len);
        for (i, x) in b.as_mut_slice().iter_mut().enumerate() {
            *x = (i * 131 + 7) as u8;
        }
        b
    }

    fn layout(len: usize) -> Layout {
        Layout::from_size_align(len.max(1), ALIGN).expect("buffer layout")
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` points to `len` initialised (zeroed, then written) bytes that we own and
        // that live as long as `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Start of the bytes, for copies.
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// Start of the bytes, for copies into the buffer.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        // SAFETY: `ptr` was allocated in `zeroed` with exactly this layout and not freed since.
        unsafe { dealloc(self.ptr.as_ptr(), Self::layout(self.len)) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_patterned() {
        let b = Buf::pattern(5000);
        assert_eq!(b.as_ptr() as usize % ALIGN, 0);
        assert_eq!(b.as_slice().len(), 5000);
        assert_eq!(b.as_slice()[1], 138);
        assert!(Buf::zeroed(0).as_slice().is_empty());
    }
}
