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

use std::collections::TryReserveError;

#[cfg(all(target_arch = "x86_64", not(mmf_loom), not(miri), not(mmf_no_asm)))]
use crate::layout::LINE_WORDS;
use crate::sync::{AtomicU64, Ordering};

/// Bytes in one word of a region.
pub(crate) const WORD: usize = 8;

/// What a prefetch prepares a line for ([`Region::prefetch_lines`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Intent {
    /// Reading: a shared copy.
    Read,
    /// Writing: the line taken from other cores' caches.
    Write,
}

/// Mapped (or, in tests and under loom, heap) memory viewed as `words` atomic 64-bit words.
pub(crate) struct Region {
    #[cfg(not(mmf_loom))]
    base: std::ptr::NonNull<AtomicU64>,
    /// The mapping's entry in the `SIGBUS` registry (`os/sigbus.rs`). Declared before `_map`,
    /// so it is dropped, and the entry gone, before the mapping is unmapped.
    #[cfg(not(mmf_loom))]
    guard: crate::os::sigbus::Registration,
    /// Keeps the mapping alive for as long as `base` is used.
    #[cfg(not(mmf_loom))]
    _map: memmap2::MmapRaw,
    #[cfg(mmf_loom)]
    cells: Box<[AtomicU64]>,
    words: usize,
    writable: bool,
}

// SAFETY: a `Region` only exposes atomics (which are `Sync`) and owned copies; the raw base
// pointer is never handed out, and the mapping it points into lives as long as the `Region`.
#[cfg(not(mmf_loom))]
unsafe impl Send for Region {}
// SAFETY: see `Send` above: every access through `&Region` is an atomic operation.
#[cfg(not(mmf_loom))]
unsafe impl Sync for Region {}

impl Region {
    /// Wraps a mapping. `writable` says whether the mapping was made `PROT_WRITE`.
    ///
    /// The mapping's length must be a whole number of words (the caller's layout guarantees it
    /// and this checks it); its start is page-aligned, so every word is aligned.
    #[cfg(not(mmf_loom))]
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
            guard: crate::os::sigbus::Registration::new(ptr, len, writable),
            _map: map,
            words: len / WORD,
            writable,
        }
    }

    /// A private, zeroed, writable region of `bytes` bytes (an anonymous mapping), for channels
    /// that live inside one process: tests and benchmarks.
    #[cfg(not(mmf_loom))]
    pub(crate) fn anonymous(bytes: usize) -> std::io::Result<Region> {
        let map = memmap2::MmapOptions::new().len(bytes).map_anon()?;
        Ok(Region::from_map(memmap2::MmapRaw::from(map), true))
    }

    /// A zeroed heap region of `bytes` bytes made of loom atomics.
    #[cfg(mmf_loom)]
    pub(crate) fn anonymous(bytes: usize) -> std::io::Result<Region> {
        assert!(bytes.is_multiple_of(WORD));
        let cells = (0..bytes / WORD).map(|_| AtomicU64::new(0)).collect();
        Ok(Region {
            cells,
            words: bytes / WORD,
            writable: true,
        })
    }

    /// Writes the mapping's dirty pages back to its file and waits for the device (`msync` with
    /// `MS_SYNC`). Nothing to do for heap regions.
    pub(crate) fn flush(&self) -> std::io::Result<()> {
        #[cfg(not(mmf_loom))]
        return self._map.flush();
        #[cfg(mmf_loom)]
        Ok(())
    }

    /// Whether a `SIGBUS` on this mapping was caught (`os/sigbus.rs`): its file was truncated
    /// under it, and pages of it are private zeros now. Always false where no handler is
    /// installed (the process would have died instead).
    ///
    /// A compiler fence first: the handler runs on the thread whose access faulted, and the
    /// flag's Relaxed load must not be moved ahead of the accesses to the mapping before it in
    /// this thread's program (atomic accesses to other words may be reordered so), or a check
    /// after a fault would miss it. It emits no instruction.
    #[inline]
    pub(crate) fn tripped(&self) -> bool {
        #[cfg(not(mmf_loom))]
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
        #[cfg(not(mmf_loom))]
        return self.guard.tripped();
        #[cfg(mmf_loom)]
        false
    }

    /// The flag behind [`tripped`](Self::tripped), valid for the rest of the process.
    #[cfg(all(not(mmf_loom), feature = "async"))]
    pub(crate) fn trip_flag(&self) -> &'static std::sync::atomic::AtomicBool {
        self.guard.flag()
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
        if i >= self.words {
            out_of_region(i, 1, self.words);
        }
        #[cfg(not(mmf_loom))]
        {
            // SAFETY: `i < words`, and `base` points at `words` aligned, initialised `u64`s of a
            // mapping kept alive by `self._map`; `AtomicU64` has the size and alignment of `u64`,
            // and its `UnsafeCell` makes a shared reference to memory others mutate legitimate.
            unsafe { &*self.base.as_ptr().add(i) }
        }
        #[cfg(mmf_loom)]
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
        if first > self.words || n > self.words - first {
            out_of_region(first, n, self.words);
        }
        #[cfg(not(mmf_loom))]
        {
            // SAFETY: the range lies inside the mapping (asserted above), which `self._map` keeps
            // alive; the words are aligned `u64`s viewed as `AtomicU64`s (same size and
            // alignment), and a slice of atomics may alias memory other processes mutate.
            unsafe { std::slice::from_raw_parts(self.base.as_ptr().add(first), n) }
        }
        #[cfg(mmf_loom)]
        {
            &self.cells[first..first + n]
        }
    }

    /// Words `first .. first + N` as an array of atomics, or a panic if they leave the region:
    /// one bounds check for the lot, after which constant indices into the array need none
    /// (the header's fixed words are read and written this way on every publish and read).
    #[inline]
    pub(crate) fn array<const N: usize>(&self, first: usize) -> &[AtomicU64; N] {
        self.words(first, N)
            .try_into()
            .expect("`words` returns exactly N words")
    }

    /// Asks the CPU to start fetching `lines` consecutive cache lines from word `first` on (those
    /// inside the region; one bounds check for all of them), for reading (`prefetcht0`) or, with
    /// [`Intent::Write`], for writing (`prefetchw`, where the processor has it: the lines are
    /// taken from other cores' caches at once, before the stores that need them). A reader calls
    /// it as soon as it knows which lines it will copy, so that their transfers from the writer's
    /// core overlap each other and the checks it makes before the copy. A hint either way: no
    /// load or store happens, so nothing is read or written, ordered or racing, and nothing
    /// faults.
    #[inline(always)]
    pub(crate) fn prefetch_lines(&self, first: usize, lines: usize, intent: Intent) {
        #[cfg(all(target_arch = "x86_64", not(mmf_loom), not(miri), not(mmf_no_asm)))]
        {
            let lines = lines.min(self.words.saturating_sub(first).div_ceil(LINE_WORDS));
            if lines == 0 || (intent == Intent::Write && !vector::has_prefetchw()) {
                return;
            }
            // SAFETY: `first < words` (else `lines` is 0), so the pointer is inside the live
            // mapping.
            let mut p = unsafe { self.base.as_ptr().add(first) };
            for _ in 0..lines {
                // SAFETY: `p` starts inside the region and every line but the last one advanced
                // past lies inside it (`lines` is clamped to the region's end), so each `p`
                // used here points into the mapping; `prefetcht0` / `prefetchw` (present,
                // checked above) only hint the cache: they read and write no memory
                // architecturally, cannot fault, and touch no register or flag.
                unsafe {
                    match intent {
                        Intent::Read => std::arch::asm!(
                            "prefetcht0 [{p}]",
                            p = in(reg) p,
                            options(nostack, preserves_flags, readonly)
                        ),
                        Intent::Write => std::arch::asm!(
                            "prefetchw [{p}]",
                            p = in(reg) p,
                            options(nostack, preserves_flags, readonly)
                        ),
                    }
                }
                p = p.wrapping_add(LINE_WORDS);
            }
        }
        #[cfg(not(all(target_arch = "x86_64", not(mmf_loom), not(miri), not(mmf_no_asm))))]
        let _ = (first, lines, intent);
    }

    /// Replaces the contents of `dst` with the `len` bytes that start at word `first`, read with
    /// `Relaxed` atomic word loads (see the module docs for why not `memcpy`).
    ///
    /// Fails, leaving `dst` empty, when `dst` cannot grow to `len` bytes: `len` comes from the
    /// mapping, and a channel's capacity (sparse in its file) may be more than this process can
    /// allocate, where `Vec::reserve` would abort the process.
    #[inline]
    pub(crate) fn copy_out(
        &self,
        first: usize,
        len: usize,
        dst: &mut Vec<u8>,
    ) -> Result<(), TryReserveError> {
        dst.clear();
        dst.try_reserve(len)?;
        atomic_load_bytes(self.words(first, len.div_ceil(WORD)), len, dst);
        Ok(())
    }

    /// [`copy_out`](Self::copy_out) for a value of a few lines at most (an inline value),
    /// compiled into the caller.
    #[inline(always)]
    pub(crate) fn copy_out_small(&self, first: usize, len: usize, dst: &mut Vec<u8>) {
        debug_assert!(len <= crate::layout::INLINE_CAPACITY);
        load_bytes::<true>(self.words(first, len.div_ceil(WORD)), len, dst);
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

/// The panic of [`Region::word`] and [`Region::words`] for a range outside the region (a bug: the
/// ranges come from a validated layout, see `words`). Apart and cold so that the checks on the
/// hot paths compile to a compare and a branch, without the message's arguments set up before
/// every access.
#[cold]
#[inline(never)]
#[track_caller]
fn out_of_region(first: usize, n: usize, words: usize) -> ! {
    panic!("words {first}..{first}+{n} leave a region of {words} words")
}

/// Replaces the contents of `dst` with the first `len` bytes of `src`, each word read as one
/// `Relaxed` atomic load would read it: the copy a reader makes of a slot that a writer may be
/// changing.
///
/// Whole cache lines go through `vector::load_lines` where the target has it (see the module
/// docs for why that is the same thing to the memory model); the rest, word by word, through
/// `AtomicU64::load`. Public (hidden) so that the benchmarks can weigh it against `memcpy`.
///
/// # Panics
/// If `src` holds fewer than `len` bytes.
#[inline]
pub fn atomic_load_bytes(src: &[AtomicU64], len: usize, dst: &mut Vec<u8>) {
    load_bytes::<false>(src, len, dst);
}

/// [`atomic_load_bytes`], compiled for a copy of a few lines (`SMALL`: the header's inline
/// values, at most [`INLINE_CAPACITY`](crate::layout::INLINE_CAPACITY) bytes) or for any length.
/// A small copy never takes the string instruction (`vector::load_lines_sse`), so it inlines
/// into its caller as a few vector moves instead of a call through the general copy's checks.
#[inline(always)]
fn load_bytes<const SMALL: bool>(src: &[AtomicU64], len: usize, dst: &mut Vec<u8>) {
    let full = len / WORD;
    let tail = len % WORD;
    assert!(
        src.len() >= full + usize::from(tail != 0),
        "{len} bytes from {} words",
        src.len()
    );
    dst.clear();
    dst.reserve(len);
    let out = dst.spare_capacity_mut().as_mut_ptr().cast::<u8>();
    let put = |w: usize, v: u64| {
        // SAFETY: `w < full`, so bytes `w * 8 .. w * 8 + 8` lie below `len`, inside the spare
        // capacity `reserve(len)` provided; an unaligned write of a `u64` there is in bounds.
        unsafe { out.add(w * WORD).cast::<u64>().write_unaligned(v) }
    };
    #[cfg(not(all(target_arch = "x86_64", not(mmf_loom), not(miri), not(mmf_no_asm))))]
    let done = 0;
    #[cfg(all(target_arch = "x86_64", not(mmf_loom), not(miri), not(mmf_no_asm)))]
    let done = {
        let (lead, lines) = vector::split(src.as_ptr() as usize, full);
        for (w, word) in src[..lead].iter().enumerate() {
            put(w, word.load(Ordering::Relaxed));
        }
        if lines > 0 {
            // SAFETY: words `lead .. lead + 8 * lines` are inside `src` (`lead + 8 * lines <=
            // full <= src.len()`) and start 16-byte aligned (`split`); the destination bytes
            // `lead * 8 ..` of the same length are inside `dst`'s spare capacity; a `Vec`'s buffer
            // never overlaps a slice of atomics we only borrow.
            unsafe {
                let (from, to) = (src.as_ptr().add(lead).cast::<u8>(), out.add(lead * WORD));
                if SMALL {
                    vector::load_lines_sse(from, to, lines)
                } else {
                    vector::load_lines(from, to, lines)
                }
            };
        }
        lead + lines * LINE_WORDS
    };
    // Sub-slices, not `take`/`skip` adaptors: the loop compiles to a plain counted loop.
    for (w, word) in src[done..full].iter().enumerate() {
        put(done + w, word.load(Ordering::Relaxed));
    }
    if tail != 0 {
        let word = src[full].load(Ordering::Relaxed);
        // SAFETY: bytes `full * 8 .. len` (`tail` of them) lie inside the reserved spare capacity.
        unsafe { write_tail(out.add(full * WORD), word, tail) };
    }
    // SAFETY: every byte below `len` was written above (`full` whole words, then `tail` bytes),
    // and `len <= capacity` after `reserve(len)`.
    unsafe { dst.set_len(len) };
}

/// Stores `src` into `dst` as one `Relaxed` atomic store per word would, the last word
/// zero-padded: the copy a writer makes into a slot that a stale reader may be validating.
///
/// Whole cache lines go through `vector::store_lines` where the target has it, the rest through
/// `AtomicU64::store`.
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
    let full = src.len() / WORD;
    let word_at =
        |w: usize| u64::from_ne_bytes(src[w * WORD..w * WORD + WORD].try_into().expect("8 bytes"));
    #[cfg(not(all(target_arch = "x86_64", not(mmf_loom), not(miri), not(mmf_no_asm))))]
    let done = 0;
    #[cfg(all(target_arch = "x86_64", not(mmf_loom), not(miri), not(mmf_no_asm)))]
    let done = {
        let (lead, lines) = vector::split(dst.as_ptr() as usize, full);
        for (w, word) in dst[..lead].iter().enumerate() {
            word.store(word_at(w), Ordering::Relaxed);
        }
        if lines > 0 {
            // SAFETY: the bytes `lead * 8 ..` of `src` and the words `lead ..` of `dst`, `lines`
            // lines of each, are in bounds (`lead + 8 * lines <= full`, and `dst` has at least
            // `full` words, asserted above); the destination starts 16-byte aligned (`split`); a
            // `&[u8]` cannot overlap atomics that are being stored to.
            unsafe {
                vector::store_lines(
                    src.as_ptr().add(lead * WORD),
                    dst.as_ptr().add(lead).cast::<u8>().cast_mut(),
                    lines,
                )
            };
        }
        lead + lines * LINE_WORDS
    };
    for (w, word) in dst[done..full].iter().enumerate() {
        word.store(word_at(done + w), Ordering::Relaxed);
    }
    let rest = &src[full * WORD..];
    if !rest.is_empty() {
        dst[full].store(padded_word(rest), Ordering::Relaxed);
    }
}

/// [`atomic_store_bytes`] for a small value (at most a few lines), inlined, into `N` places (a
/// slot and the header's inline buffer, or the inline buffer alone), where the general copy's
/// call and set-up would cost more than the copying itself. Whole lines go through the SSE loop,
/// once per target, when every target starts 16-byte aligned (`vector::split`); the rest word by
/// word, each word loaded once.
///
/// # Panics
/// If a target has fewer words than `src` needs.
#[inline(always)]
pub(crate) fn atomic_store_small<const N: usize>(to: [&[AtomicU64]; N], src: &[u8]) {
    let full = src.len() / WORD;
    let need = src.len().div_ceil(WORD);
    let to = to.map(|t| &t[..need]);
    #[cfg(not(all(target_arch = "x86_64", not(mmf_loom), not(miri), not(mmf_no_asm))))]
    let done = 0;
    // Whole lines with the vector loop, when all targets start 16-byte aligned (a slot's payload
    // and the inline buffers start on a line) and the processor has AVX (`vector::split`).
    #[cfg(all(target_arch = "x86_64", not(mmf_loom), not(miri), not(mmf_no_asm)))]
    let done = match vector::split(to.iter().fold(0, |a, t| a | t.as_ptr() as usize), full) {
        (0, lines) if lines > 0 => {
            for t in &to {
                // SAFETY: `lines * 8 <= full` words of the target and bytes of `src` (every
                // target holds at least `full` words: sliced above), the target 16-byte aligned
                // (`split` found no leading word to copy), and a `&[u8]` cannot overlap atomics
                // being stored to.
                unsafe {
                    vector::store_lines_sse(src.as_ptr(), t.as_ptr().cast::<u8>().cast_mut(), lines)
                };
            }
            lines * LINE_WORDS
        }
        _ => 0,
    };
    let mut chunks = src[done * WORD..].chunks_exact(WORD);
    for (i, chunk) in (&mut chunks).enumerate() {
        let v = u64::from_ne_bytes(chunk.try_into().expect("8 bytes"));
        for t in &to {
            t[done + i].store(v, Ordering::Relaxed);
        }
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let v = padded_word(rest);
        for t in &to {
            t[full].store(v, Ordering::Relaxed);
        }
    }
}

/// The last, partial word of a value (`rest` holds 1 to 7 bytes), zero-padded: the word whose
/// first `rest.len()` bytes in memory are `rest`.
///
/// On a little-endian target without a copy through a buffer (a call to `memcpy` for a length
/// known only at run time): two loads of 4 (or 2) bytes, the second ending at the slice's end,
/// overlap by the bytes they share, which are the same in both, so OR-ing them with the second
/// shifted to its offset gives every byte once.
#[inline(always)]
fn padded_word(rest: &[u8]) -> u64 {
    let n = rest.len();
    debug_assert!((1..WORD).contains(&n));
    #[cfg(target_endian = "little")]
    {
        let le = |b: &[u8]| b.iter().rev().fold(0u64, |v, &x| v << 8 | u64::from(x));
        match n {
            4.. => le(&rest[..4]) | le(&rest[n - 4..]) << ((n - 4) * 8),
            2.. => le(&rest[..2]) | le(&rest[n - 2..]) << ((n - 2) * 8),
            _ => le(&rest[..1]),
        }
    }
    #[cfg(not(target_endian = "little"))]
    {
        let mut last = [0u8; WORD];
        last[..n].copy_from_slice(rest);
        u64::from_ne_bytes(last)
    }
}

/// Writes the first `tail` bytes (1 to 7) of `word`'s memory representation to `to`: a 4-, a 2-
/// and a 1-byte store as `tail`'s bits say, instead of a loop of single bytes.
///
/// # Safety
/// `to` must be valid for writes of `tail` bytes.
#[inline(always)]
unsafe fn write_tail(to: *mut u8, word: u64, tail: usize) {
    debug_assert!((1..WORD).contains(&tail));
    let bytes = word.to_ne_bytes();
    let mut at = 0;
    for width in [4, 2, 1] {
        if tail & width != 0 {
            // SAFETY: `at + width <= tail` (the widths taken so far are `tail`'s higher bits),
            // inside what the caller guarantees; `bytes[at..at + width]` is in the array.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr().add(at), to.add(at), width) };
            at += width;
        }
    }
}

/// Whole-line copies between shared and private memory: `rep movsq` from 2 KiB on, else SSE2
/// (baseline on x86-64), four 16-byte moves a line instead of eight 8-byte ones.
///
/// `rep movsq` matters most on the writer's side: on current x86 CPUs the string instructions
/// write whole lines without first reading them in from the core that holds them (the lines a
/// reader has just copied), which the vector loop cannot do; a 64 KiB round trip between two
/// processes went from 1.22-1.28x to 0.87-1.04x of the `memcpy` floor with it.
///
/// # Why this is still an atomic copy
///
/// Rust has no 16-byte relaxed atomic load, so these loops are inline assembly. An `asm!` block is
/// opaque to the compiler: it must assume the block reads and writes the memory it is given, in
/// any way the hardware allows, and it cannot split, merge or elide those accesses (the Rust
/// reference, "Inline assembly", rules). What matters to the memory model is therefore what the
/// instructions do on the hardware:
///
/// * **Atomicity.** Every 16-byte access to shared memory here is 16-byte aligned, and the loops
///   run only on processors with AVX, on which such an SSE access is single-copy atomic as a whole
///   (Intel SDM vol. 3A, 9.1.1; AMD APM vol. 2, 7.3.2); older processors, for which the manuals
///   promise nothing per 8-byte half of a wider access, take the word loop. `rep movsq` moves
///   quadword elements; on the shared side each is an aligned 8-byte access, which is
///   single-copy atomic on every x86-64 processor (SDM 9.1.1).
/// * **Order.** The seqlock needs the payload loads to be done before the stamp is re-read, and
///   the payload stores to be visible before the stamp is made even again. x86-64 orders plain
///   loads with loads and stores with stores; a fast-string operation may reorder its own
///   element accesses, so the string copy is followed by `lfence` (loads: every prior load has
///   completed before a later one starts) or `sfence` (stores: every prior store is ordered before
///   a later one) inside the same block.
///
/// So each block behaves as a sequence of `Relaxed` `AtomicU64` loads (or stores) of the words it
/// covers, in some order, which is exactly what the portable loop does: no data race, no torn
/// word, and the seqlock's fences around the copy order it as they order the portable loop (the
/// block is not `nomem`/`readonly`, so the compiler keeps every memory access on its side of it).
///
/// Neither Miri nor the sanitizers see into `asm!`: under Miri, and built with
/// `--cfg mmf_no_asm` (docs/RELIABILITY.md, "Sanitizers"), every copy takes the portable loop,
/// whose accesses they check.
#[cfg(all(target_arch = "x86_64", not(mmf_loom), not(miri), not(mmf_no_asm)))]
mod vector {
    use std::arch::asm;
    use std::sync::atomic::{AtomicU8, Ordering};

    use super::LINE_WORDS;

    /// Copies of this many lines (2 KiB) and more use `rep movsq`. Below, its start-up cost (and
    /// the fence after it) outweighs what it saves. Measured on AMD Zen 3, best of 20 x 20,000
    /// copies in one process, SSE loop against `rep movsq`: loads 11 against 41 ns at 512 B, 20
    /// against 50 ns at 1 KiB, even at 2-3 KiB; stores 14 against 31 ns at 512 B, 20 against 40
    /// ns at 1 KiB, 46 against 42 ns at 2 KiB, 89 against 61 ns at 4 KiB. Between two processes
    /// (three 21-round A/Bs, mmf / F per round), 512 B went from 2.57-2.61x to 1.96-2.26x.
    pub(super) const STRING_FROM_LINES: usize = 32;

    /// Stores of this many lines (above 4 KiB) and more use `rep movsq` on AMD Zen 4
    /// ([`zen4`]); below, the SSE loop. Measured on a Zen 4 host (family 19h, model 11h) between
    /// two processes (docs/BENCHMARKS.md, "The 4 KiB copy on the Zen 4 host"), eight rounds of
    /// `--only latency --sizes 4096` each way: with the SSE loop's stores at 4 KiB, mmf / F per
    /// round 1.15-1.23 against 1.21-1.32, and `floor-validated` (F through these copies)
    /// 0.90-0.97 against 1.03-1.10; beyond 4 KiB no difference stood out. On the AMD Zen 5 host
    /// the same change had made the 4 KiB publish slower (1.47-1.85x F against 1.10-1.31x), so
    /// every other processor keeps [`STRING_FROM_LINES`].
    pub(super) const ZEN4_STRING_STORES_FROM_LINES: usize = 65;

    /// The number of lines from which [`store_lines`] takes `rep movsq`: asked of the processor
    /// once (two `cpuid`s), and only by a store of [`STRING_FROM_LINES`] lines or more.
    #[inline]
    pub(super) fn string_stores_from_lines() -> usize {
        static KNOWN: AtomicU8 = AtomicU8::new(0);
        let zen4 = asked_once(&KNOWN, || {
            #[allow(unused_unsafe)]
            // SAFETY: every x86-64 processor has `cpuid` and its leaves 0 and 1.
            let (vendor, signature) = unsafe {
                (
                    std::arch::x86_64::__cpuid(0),
                    std::arch::x86_64::__cpuid(1).eax,
                )
            };
            // "AuthenticAMD", in the order the registers hold it.
            let amd =
                (vendor.ebx, vendor.edx, vendor.ecx) == (0x6874_7541, 0x6974_6e65, 0x444d_4163);
            amd && zen4(signature)
        });
        if zen4 {
            ZEN4_STRING_STORES_FROM_LINES
        } else {
            STRING_FROM_LINES
        }
    }

    /// Whether an AMD processor's signature (CPUID leaf 1, EAX) is a Zen 4's: family 19h,
    /// models 10h-1Fh and 60h-AFh, the ranges Linux gives `X86_FEATURE_ZEN4`
    /// (`arch/x86/kernel/cpu/amd.c`). The family is the base family plus the extended one where
    /// the base is Fh; the model takes the extended model as its high nibble where the base
    /// family is 6h or Fh.
    pub(super) fn zen4(signature: u32) -> bool {
        let base_family = (signature >> 8) & 0xf;
        let family = if base_family == 0xf {
            base_family + ((signature >> 20) & 0xff)
        } else {
            base_family
        };
        let model = if base_family == 0xf || base_family == 0x6 {
            ((signature >> 4) & 0xf) | (((signature >> 16) & 0xf) << 4)
        } else {
            (signature >> 4) & 0xf
        };
        family == 0x19 && matches!(model, 0x10..=0x1f | 0x60..=0xaf)
    }

    /// Whether the processor has `prefetchw` (CPUID leaf 0x8000_0001, ECX bit 8, "PRFCHW";
    /// std's feature detection does not name it). Asked once, then read from a static.
    #[inline]
    pub(super) fn has_prefetchw() -> bool {
        static KNOWN: AtomicU8 = AtomicU8::new(0);
        asked_once(&KNOWN, || {
            // `__cpuid` is a safe function from Rust 1.94 on, unsafe before (MSRV 1.89).
            #[allow(unused_unsafe)]
            // SAFETY: every x86-64 processor has `cpuid`; leaf 0x8000_0000 reports the
            // highest extended leaf, and 0x8000_0001 is asked only when it exists.
            unsafe {
                std::arch::x86_64::__cpuid(0x8000_0000).eax >= 0x8000_0001
                    && std::arch::x86_64::__cpuid(0x8000_0001).ecx & (1 << 8) != 0
            }
        })
    }

    /// Whether the processor enumerates AVX (CPUID leaf 1, ECX bit 28), the flag under which
    /// the manuals promise that an aligned 16-byte SSE access is atomic (see the module docs;
    /// whether the OS enables the AVX registers does not matter to an SSE load). Asked once
    /// with one `cpuid`, then read from a static.
    ///
    /// Not `is_x86_feature_detected!("avx")`: its first use in a process asks some ten CPUID
    /// leaves, and in a virtual machine each `cpuid` traps to the hypervisor. On the 2-core VM
    /// of `docs/BENCHMARKS.md` that first use was about 80 us of the 1 ms an `mmf read`
    /// takes from spawn to exit (`perf record` over 1,000 runs: 5.8% of the samples).
    #[inline]
    fn has_avx() -> bool {
        static KNOWN: AtomicU8 = AtomicU8::new(0);
        asked_once(&KNOWN, || {
            #[allow(unused_unsafe)]
            // SAFETY: every x86-64 processor has `cpuid` and its leaf 1.
            unsafe {
                std::arch::x86_64::__cpuid(1).ecx & (1 << 28) != 0
            }
        })
    }

    /// The answer of `ask`, asked on the first call and then read from `known` (0: not asked
    /// yet, 1: no, 2: yes). Two threads may both ask on their first calls; they get the same
    /// answer.
    #[inline]
    fn asked_once(known: &AtomicU8, ask: impl FnOnce() -> bool) -> bool {
        match known.load(Ordering::Relaxed) {
            0 => {
                let has = ask();
                known.store(if has { 2 } else { 1 }, Ordering::Relaxed);
                has
            }
            answer => answer == 2,
        }
    }

    /// For a run of `words` words starting at address `at` (8-byte aligned): how many leading
    /// words to copy one by one until the address is 16-byte aligned, and how many whole lines
    /// the vector loop can then copy (none on a processor without AVX, see the module docs).
    /// A run shorter than a line never asks the processor, so a small value's read costs no
    /// `cpuid`.
    #[inline]
    pub(super) fn split(at: usize, words: usize) -> (usize, usize) {
        let lead = usize::from(!at.is_multiple_of(16)).min(words);
        let lines = (words - lead) / LINE_WORDS;
        if lines == 0 || !has_avx() {
            return (0, 0);
        }
        (lead, lines)
    }

    /// Whether a copy of `lines` lines goes through `rep movsq` rather than the SSE loop: from
    /// `from_lines` on ([`STRING_FROM_LINES`] for loads, [`string_stores_from_lines`] for
    /// stores), unless the destination starts 1 to 63 bytes after the source modulo a page. In
    /// that case the string instruction runs some twenty times slower on the CPUs measured (AMD
    /// Zen 3: every store seems to alias a pending load), which the SSE loop does not.
    #[inline]
    fn use_string_copy(src: *const u8, dst: *mut u8, lines: usize, from_lines: usize) -> bool {
        let skew = (dst as usize).wrapping_sub(src as usize) % 4096;
        lines >= from_lines && !(1..64).contains(&skew)
    }

    /// `rep movsq` of `$words` quadwords from `$src` to `$dst`, then the fence `$fence` (see
    /// "Order" in the module docs). Expands to an `asm!` call: use it inside `unsafe`.
    macro_rules! movsq_then {
        ($fence:literal, $src:expr, $dst:expr, $words:expr) => {
            asm!(
                "rep movsq",
                $fence,
                inout("rcx") $words => _,
                inout("rsi") $src => _,
                inout("rdi") $dst => _,
                options(nostack, preserves_flags),
            )
        };
    }

    /// One 64-byte line per round, `$lines` rounds: four 16-byte loads with `$load` from `$src`,
    /// four stores with `$store` to `$dst` (`movdqa` on the aligned shared side, `movdqu` on the
    /// private side). Expands to an `asm!` call: use it inside `unsafe`.
    macro_rules! sse_lines {
        ($load:literal, $store:literal, $src:expr, $dst:expr, $lines:expr) => {
            asm!(
                "2:",
                concat!($load, " {a}, xmmword ptr [{src}]"),
                concat!($load, " {b}, xmmword ptr [{src} + 16]"),
                concat!($load, " {c}, xmmword ptr [{src} + 32]"),
                concat!($load, " {d}, xmmword ptr [{src} + 48]"),
                concat!($store, " xmmword ptr [{dst}], {a}"),
                concat!($store, " xmmword ptr [{dst} + 16], {b}"),
                concat!($store, " xmmword ptr [{dst} + 32], {c}"),
                concat!($store, " xmmword ptr [{dst} + 48], {d}"),
                "add {src}, 64",
                "add {dst}, 64",
                "dec {n}",
                "jnz 2b",
                src = inout(reg) $src => _,
                dst = inout(reg) $dst => _,
                n = inout(reg) $lines => _,
                a = out(xmm_reg) _,
                b = out(xmm_reg) _,
                c = out(xmm_reg) _,
                d = out(xmm_reg) _,
                options(nostack),
            )
        };
    }

    /// Copies `lines` 64-byte lines from `src` (shared memory, 16-byte aligned) to `dst`
    /// (private memory, any alignment).
    ///
    /// # Safety
    /// `src` must be valid for reads and 16-byte aligned, `dst` valid for writes, both for
    /// `lines * 64` bytes, not overlapping; `lines > 0`.
    #[inline]
    pub(super) unsafe fn load_lines(src: *const u8, dst: *mut u8, lines: usize) {
        debug_assert!(lines > 0 && (src as usize).is_multiple_of(16));
        if use_string_copy(src, dst, lines, STRING_FROM_LINES) {
            // SAFETY: the caller guarantees both ranges; `rep movsq` moves exactly `lines * 8`
            // quadwords forward (the direction flag is clear on entry to an asm block) from the
            // 16-byte (so 8-byte) aligned `src`; neither it nor `lfence` touches the stack or the
            // flags; rcx, rsi and rdi are declared clobbered.
            unsafe { movsq_then!("lfence", src, dst, lines * LINE_WORDS) };
        } else {
            // SAFETY: the caller guarantees what `load_lines_sse` needs (the same as here).
            unsafe { load_lines_sse(src, dst, lines) };
        }
    }

    /// [`load_lines`] through the SSE loop always: for copies of a few lines, too short for the
    /// string instruction, and for the longer ones the string instruction would slow down.
    ///
    /// # Safety
    /// As for [`load_lines`].
    #[inline(always)]
    pub(super) unsafe fn load_lines_sse(src: *const u8, dst: *mut u8, lines: usize) {
        debug_assert!(lines > 0 && (src as usize).is_multiple_of(16));
        // SAFETY: the caller guarantees both ranges; the loop touches exactly `lines * 64` bytes
        // of each, with aligned loads (`movdqa` faults on misalignment, which the caller rules
        // out) and unaligned stores; it uses no stack and clobbers only the registers it declares.
        unsafe { sse_lines!("movdqa", "movdqu", src, dst, lines) };
    }

    /// Copies `lines` 64-byte lines from `src` (private memory, any alignment) to `dst` (shared
    /// memory, 16-byte aligned).
    ///
    /// # Safety
    /// `src` must be valid for reads, `dst` valid for writes and 16-byte aligned, both for
    /// `lines * 64` bytes, not overlapping; `lines > 0`.
    #[inline]
    pub(super) unsafe fn store_lines(src: *const u8, dst: *mut u8, lines: usize) {
        debug_assert!(lines > 0 && (dst as usize).is_multiple_of(16));
        // A store shorter than the string copy's threshold on any processor asks no `cpuid`.
        if lines >= STRING_FROM_LINES
            && use_string_copy(src, dst, lines, string_stores_from_lines())
        {
            // SAFETY: as in `load_lines`, with the aligned side being the stores and `sfence`.
            unsafe { movsq_then!("sfence", src, dst, lines * LINE_WORDS) };
        } else {
            // SAFETY: the caller guarantees what `store_lines_sse` needs (the same as here).
            unsafe { store_lines_sse(src, dst, lines) };
        }
    }

    /// [`store_lines`] through the SSE loop always: for copies of a few lines.
    ///
    /// # Safety
    /// As for [`store_lines`].
    #[inline(always)]
    pub(super) unsafe fn store_lines_sse(src: *const u8, dst: *mut u8, lines: usize) {
        debug_assert!(lines > 0 && (dst as usize).is_multiple_of(16));
        // SAFETY: as in `load_lines_sse`, with the aligned side being the stores.
        unsafe { sse_lines!("movdqu", "movdqa", src, dst, lines) };
    }
}

#[cfg(all(test, not(mmf_loom)))]
mod tests {
    use super::*;

    #[test]
    fn copy_round_trips_every_tail_length() {
        let r = Region::anonymous(4096).unwrap();
        let mut out = Vec::new();
        for len in 0..100usize {
            let src: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            r.copy_in_words(3, &src);
            r.copy_out(3, len, &mut out).unwrap();
            assert_eq!(out, src, "len {len}");
        }
    }

    /// The vector loops cover whole lines after a 16-byte-aligning lead; every start word (odd and
    /// even), and lengths around line boundaries, must round-trip and leave the words after the
    /// value untouched (the last partial word zero-padded).
    #[test]
    fn copy_round_trips_across_alignments_and_line_lengths() {
        let r = Region::anonymous(8192).unwrap();
        let mut out = Vec::new();
        for first in 0..4usize {
            // 4160 B and more: 65 lines, where the stores take the string instruction on an
            // AMD Zen 4 as on every other processor (from 2 KiB elsewhere). Not under Miri, which
            // runs the portable copy (no string instruction) and would take a minute more.
            let long: &[usize] = if cfg!(miri) { &[] } else { &[4096, 4160, 4200] };
            let lengths = (0..=200usize)
                .chain([
                    255, 256, 257, 511, 512, 513, 1000, 2047, 2048, 2049, 2100, 4000,
                ])
                .chain(long.iter().copied());
            for len in lengths {
                // The words the value and the checks below touch, not the whole region: Miri
                // runs this test too.
                for w in 0..=first + len.div_ceil(WORD) {
                    r.word(w).store(u64::MAX, Ordering::Relaxed);
                }
                let src: Vec<u8> = (0..len).map(|i| (i * 31 + first + len) as u8).collect();
                r.copy_in_words(first, &src);
                r.copy_out(first, len, &mut out).unwrap();
                assert_eq!(out, src, "first word {first}, len {len}");
                let end = first + len.div_ceil(WORD);
                assert_eq!(
                    r.word(end).load(Ordering::Relaxed),
                    u64::MAX,
                    "{first}/{len}"
                );
                if first > 0 {
                    assert_eq!(r.word(first - 1).load(Ordering::Relaxed), u64::MAX);
                }
                if len % WORD != 0 {
                    let last = r.word(end - 1).load(Ordering::Relaxed).to_ne_bytes();
                    assert!(last[len % WORD..].iter().all(|&b| b == 0), "{first}/{len}");
                }
            }
        }
    }

    /// A small value's two-place store (slot and inline buffer) and the inline copy's small
    /// load: every length an inline value can have, with each target line-aligned (the vector
    /// loop) or not (the word loop), round-trips and leaves the words around it untouched.
    #[test]
    fn small_copies_round_trip_at_every_inline_length_and_alignment() {
        use crate::layout::INLINE_CAPACITY;
        let r = Region::anonymous(8192).unwrap();
        let mut out = Vec::new();
        for (a_first, b_first) in [(8, 40), (9, 40), (8, 41), (17, 57)] {
            for len in 0..=INLINE_CAPACITY {
                // Up to the word after the last target (`c_first` below), not the whole region.
                for w in 0..=b_first + 32 + len.div_ceil(WORD) {
                    r.word(w).store(u64::MAX, Ordering::Relaxed);
                }
                let src: Vec<u8> = (0..len).map(|i| (i * 13 + len + a_first) as u8).collect();
                let n = len.div_ceil(WORD);
                // Two targets, then one more place alone.
                atomic_store_small([r.words(a_first, n), r.words(b_first, n)], &src);
                let c_first = b_first + 32;
                atomic_store_small([r.words(c_first, n)], &src);
                for first in [a_first, b_first, c_first] {
                    r.copy_out_small(first, len, &mut out);
                    assert_eq!(out, src, "at word {first}, len {len}");
                    r.copy_out(first, len, &mut out).unwrap();
                    assert_eq!(out, src, "at word {first}, len {len}, general copy");
                    let (before, after) = (first - 1, first + n);
                    for w in [before, after] {
                        assert_eq!(r.word(w).load(Ordering::Relaxed), u64::MAX, "{first}/{len}");
                    }
                    if len % WORD != 0 {
                        let last = r.word(after - 1).load(Ordering::Relaxed).to_ne_bytes();
                        assert!(last[len % WORD..].iter().all(|&b| b == 0), "{first}/{len}");
                    }
                }
            }
        }
    }

    /// Both copy routes of the vector module (string instruction, and the SSE loop it falls back
    /// to when the destination sits just after the source modulo a page) give the same bytes.
    #[test]
    fn copies_round_trip_whatever_the_page_offset_between_source_and_destination() {
        let r = Region::anonymous(16384).unwrap();
        let dst_addr = r.word(8) as *const AtomicU64 as usize;
        let backing: Vec<u8> = (0..12288).map(|i| (i % 251) as u8).collect();
        let mut out = Vec::new();
        for skew in [0usize, 8, 16, 24, 40, 63, 64, 100, 2048] {
            // A source whose address is `skew` bytes before the destination, modulo a page.
            let base = backing.as_ptr() as usize;
            let want = dst_addr.wrapping_sub(skew) % 4096;
            let start = (want + 4096 - base % 4096) % 4096;
            let src = &backing[start..start + 4096];
            assert_eq!(dst_addr.wrapping_sub(src.as_ptr() as usize) % 4096, skew);
            r.copy_in_words(8, src);
            r.copy_out(8, src.len(), &mut out).unwrap();
            assert_eq!(out, src, "skew {skew}");
        }
    }

    /// The CPUID bits read for `prefetchw` and AVX are the ones Linux reports as
    /// `3dnowprefetch` and `avx`.
    #[test]
    #[cfg(all(
        target_arch = "x86_64",
        target_os = "linux",
        not(mmf_loom),
        not(miri),
        not(mmf_no_asm)
    ))]
    fn feature_detection_agrees_with_the_kernel() {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
        let flags = cpuinfo.lines().find(|l| l.starts_with("flags")).unwrap();
        let has = |flag: &str| flags.split_whitespace().any(|f| f == flag);
        let kernel = has("3dnowprefetch");
        assert_eq!(vector::has_prefetchw(), kernel);
        assert_eq!(vector::has_prefetchw(), kernel, "the cached answer");
        // A run of whole lines takes the vector loop exactly where the kernel sees AVX; a run
        // shorter than a line never does.
        let lines = usize::from(has("avx")) * 2;
        assert_eq!(vector::split(64, 2 * LINE_WORDS), (0, lines));
        assert_eq!(
            vector::split(64, 2 * LINE_WORDS),
            (0, lines),
            "the cached answer"
        );
        assert_eq!(
            vector::split(72, 2 * LINE_WORDS + 1),
            (usize::from(lines > 0), lines)
        );
        assert_eq!(vector::split(64, LINE_WORDS - 1), (0, 0));
        // The processor's family and model as the kernel decoded them, through the decoding
        // the copy's choice uses (`vector::zen4`), for the Zen 4 test below to hold here too.
        let field = |name: &str| -> u32 {
            let line = cpuinfo.lines().find(|l| l.starts_with(name)).unwrap();
            line.rsplit(':').next().unwrap().trim().parse().unwrap()
        };
        let amd = cpuinfo
            .lines()
            .any(|l| l.starts_with("vendor_id") && l.ends_with("AuthenticAMD"));
        let (family, model) = (field("cpu family"), field("model\t"));
        let zen4 = amd && family == 0x19 && matches!(model, 0x10..=0x1f | 0x60..=0xaf);
        let signature = {
            let f = family.min(0xf);
            (f << 8) | ((family - f) << 20) | ((model & 0xf) << 4) | ((model >> 4) << 16)
        };
        assert_eq!(amd && vector::zen4(signature), zen4);
        // And what the copy asks of the processor itself (`cpuid`: the vendor, the signature)
        // comes to the same answer.
        let stores_from = if zen4 {
            vector::ZEN4_STRING_STORES_FROM_LINES
        } else {
            vector::STRING_FROM_LINES
        };
        assert_eq!(vector::string_stores_from_lines(), stores_from);
        // Hints for words outside the region do nothing.
        let r = Region::anonymous(256).unwrap();
        for intent in [Intent::Read, Intent::Write] {
            r.prefetch_lines(0, 100, intent);
            r.prefetch_lines(31, 2, intent);
            r.prefetch_lines(32, 1, intent);
            r.prefetch_lines(usize::MAX, 3, intent);
        }
    }

    /// Signatures (CPUID leaf 1, EAX) of processors the copy's choice was measured on, or that
    /// sit next to them: only the Zen 4s take the SSE loop's stores up to 4 KiB.
    #[cfg(all(target_arch = "x86_64", not(mmf_loom), not(miri), not(mmf_no_asm)))]
    #[test]
    fn only_a_zen_4_signature_is_taken_for_one() {
        for (signature, zen4, what) in [
            (
                0x00a1_0f11,
                true,
                "EPYC 9004 (Genoa), family 19h model 11h: this project's host",
            ),
            (0x00a6_0f12, true, "Ryzen 7000 (Raphael), model 61h"),
            (
                0x00aa_0f01,
                true,
                "EPYC 8004 / 9004 (Siena, Bergamo), model A0h",
            ),
            (0x00a0_0f11, false, "EPYC 7003 (Milan), Zen 3, model 01h"),
            (0x00a2_0f10, false, "Ryzen 5000 (Vermeer), Zen 3, model 21h"),
            (0x00b0_0f21, false, "EPYC 9005 (Turin), Zen 5, family 1Ah"),
            (0x0083_0f10, false, "EPYC 7002 (Rome), Zen 2, family 17h"),
            (
                0x0008_06f8,
                false,
                "Xeon (Sapphire Rapids), family 6 model 8Fh",
            ),
            (
                0x000c_06f2,
                false,
                "Xeon (model 207, Emerald Rapids), family 6 model CFh",
            ),
        ] {
            assert_eq!(vector::zen4(signature), zen4, "{what}");
        }
    }

    #[test]
    #[should_panic(expected = "leave a region")]
    fn copy_out_past_the_end_is_refused() {
        let r = Region::anonymous(64).unwrap();
        let mut out = Vec::new();
        let _ = r.copy_out(4, 40, &mut out);
    }
}
