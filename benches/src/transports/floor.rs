//! The reference transports over a plain shared mapping: the cache-line ping-pong, the floor F,
//! F over two buffers each way, F with mmf's copies, F made torn-free (double-buffered and
//! validated), and the bare futex ping-pong.
//!
//! Layout of the mapping: the A-to-B word at byte 0, the B-to-A word at [`LINE`], the A-to-B
//! buffer at 4096 and the B-to-A buffer after it (page-aligned). The parent is A.

use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use mmf_core::__bench::{atomic_load_bytes, atomic_store_bytes};

use crate::buf::Buf;
use crate::latency::{payload, seq_of, spin_until, stamp, Side, Split, RT_TIMEOUT};
use crate::proc::Resources;
use crate::shm::{SharedMap, LINE};
use crate::sys;

const BUF: usize = 4096;

fn buf_stride(len: usize) -> usize {
    len.div_ceil(4096) * 4096
}

/// Offsets (tx word, rx word, tx buffers, rx buffers) for the parent (A) or the child (B), with
/// `per_side` buffers of `buf_stride(len)` bytes each way.
fn offsets(len: usize, per_side: usize, parent: bool) -> (usize, usize, usize, usize) {
    let (a, b) = (BUF, BUF + per_side * buf_stride(len));
    if parent {
        (0, LINE, a, b)
    } else {
        (LINE, 0, b, a)
    }
}

/// A mapping with the two flag lines and `per_side` buffers each way.
fn create(len: usize, per_side: usize) -> Result<(SharedMap, Resources)> {
    let map = SharedMap::create(BUF + 2 * per_side * buf_stride(len))?;
    let res = Resources {
        paths: vec![map.path().to_owned()],
        ..Resources::default()
    };
    Ok((map, res))
}

fn open(res: &Resources) -> Result<SharedMap> {
    let Some(path) = res.paths.first() else {
        bail!("no mapping given");
    };
    Ok(SharedMap::open(path)?)
}

/// The bare cache-line ping-pong: each side stores the sequence number into its own line and
/// spins on the other's. No payload (8 bytes: the number itself).
pub struct Line {
    map: SharedMap,
    tx: usize,
    rx: usize,
    last: u64,
}

impl Line {
    /// The parent's side and what the child needs.
    pub fn parent() -> Result<(Line, Resources)> {
        let (map, res) = create(8, 1)?;
        Ok((
            Line {
                map,
                tx: 0,
                rx: LINE,
                last: 0,
            },
            res,
        ))
    }

    /// The child's side.
    pub fn child(res: &Resources) -> Result<Line> {
        Ok(Line {
            map: open(res)?,
            tx: LINE,
            rx: 0,
            last: 0,
        })
    }
}

impl Side for Line {
    #[inline]
    fn send(&mut self, seq: u64) -> Result<()> {
        self.map.u64_at(self.tx).store(seq, Ordering::Release);
        Ok(())
    }

    #[inline]
    fn recv(&mut self, timeout: Duration) -> Result<u64> {
        let word: &AtomicU64 = self.map.u64_at(self.rx);
        let last = self.last;
        let v = spin_until(timeout, || {
            let v = word.load(Ordering::Acquire);
            (v != last).then_some(v)
        })?;
        self.last = v;
        Ok(v)
    }
}

/// F: memcpy the payload into a shared buffer and Release-store a flag; the receiver spins on
/// the flag (Acquire), copies the payload out and answers the same way. No consistency protocol:
/// the flag hand-off is what keeps the two sides off the same buffer at the same time.
///
/// With `N = 2` buffers each way (`floor-2buf`), message `seq` goes through buffer `seq % 2`:
/// everything else as F. A torn-free channel whose writer never waits for a reader cannot
/// write the buffer the last value is in (a reader may be copying it), so it needs two at the
/// least; this row is what that alone costs (on a 4 KiB payload, every buffer a core touches
/// takes one of the eight ways of its 32 KiB L1 data cache).
///
/// `N` is a constant so that F's own code is exactly what it was with one buffer: a run-time
/// count cost F a division per copy, 70 ns on its 64 B round trip (170 to 240 ns).
///
/// With `MMF_COPY` (`floor-mmfcopy`), the two copies are mmf's own (`atomic_store_bytes` into
/// the mapping, `atomic_load_bytes` out of it into a `Vec`, as `read_into` copies) instead of
/// `memcpy`: everything else as F. Where mmf's copy is the faster (4 KiB on the AMD Zen 4 host,
/// where `floor-validated`, which adds a protocol to those copies, ran 0.92x F), this is the
/// minimal transfer, and the bars judge mmf against the faster of the two.
pub struct Floor<const N: u64 = 1, const MMF_COPY: bool = false> {
    map: SharedMap,
    len: usize,
    stride: usize,
    off: (usize, usize, usize, usize),
    out: Buf,
    /// Where `memcpy`'s copy out goes (`len` bytes; empty with `MMF_COPY`, which copies into
    /// `inv`).
    inb: Buf,
    /// Where `MMF_COPY`'s copy out goes.
    inv: Vec<u8>,
    last: u64,
}

impl<const N: u64, const MMF_COPY: bool> Floor<N, MMF_COPY> {
    /// The parent's side and what the child needs.
    pub fn parent(len: usize) -> Result<(Floor<N, MMF_COPY>, Resources)> {
        let (map, res) = create(len, N as usize)?;
        Ok((Floor::new(map, len, true), res))
    }

    /// The child's side.
    pub fn child(len: usize, res: &Resources) -> Result<Floor<N, MMF_COPY>> {
        Ok(Floor::new(open(res)?, len, false))
    }

    fn new(map: SharedMap, len: usize, parent: bool) -> Floor<N, MMF_COPY> {
        Floor {
            map,
            len,
            stride: buf_stride(len),
            off: offsets(len, N as usize, parent),
            out: payload(len),
            inb: Buf::zeroed(if MMF_COPY { 0 } else { len }),
            inv: Vec::with_capacity(if MMF_COPY { len } else { 0 }),
            last: 0,
        }
    }
}

impl<const N: u64, const MMF_COPY: bool> Floor<N, MMF_COPY> {
    /// Byte offset of the buffer message `seq` goes through, of the ones at `base` (`base`
    /// itself when `N = 1`, folded at compile time).
    #[inline(always)]
    fn at(&self, base: usize, seq: u64) -> usize {
        base + (seq % N) as usize * self.stride
    }
}

impl<const N: u64, const MMF_COPY: bool> Side for Floor<N, MMF_COPY> {
    #[inline]
    fn send(&mut self, seq: u64) -> Result<()> {
        stamp(self.out.as_mut_slice(), seq);
        if MMF_COPY {
            let words = self
                .map
                .words(self.at(self.off.2, seq), self.len.div_ceil(8));
            atomic_store_bytes(words, self.out.as_slice());
            self.map.u64_at(self.off.0).store(seq, Ordering::Release);
            return Ok(());
        }
        let dst = self.map.bytes(self.at(self.off.2, seq), self.len);
        // SAFETY: `dst` holds `len` bytes of the mapping (checked by `bytes`) and `out` holds
        // `len` bytes; they do not overlap. The peer reads this buffer only after it sees the
        // Release store below, and has finished with its previous contents before it answered
        // our previous message (which we saw with Acquire), so nobody else touches it now.
        unsafe { std::ptr::copy_nonoverlapping(self.out.as_ptr(), dst, self.len) };
        self.map.u64_at(self.off.0).store(seq, Ordering::Release);
        Ok(())
    }

    #[inline]
    fn recv(&mut self, timeout: Duration) -> Result<u64> {
        self.arrived(timeout)?;
        self.take()
    }
}

impl<const N: u64, const MMF_COPY: bool> Split for Floor<N, MMF_COPY> {
    #[inline]
    fn arrived(&mut self, timeout: Duration) -> Result<()> {
        let flag = self.map.u64_at(self.off.1);
        let last = self.last;
        self.last = spin_until(timeout, || {
            let v = flag.load(Ordering::Acquire);
            (v != last).then_some(v)
        })?;
        Ok(())
    }

    #[inline]
    fn take(&mut self) -> Result<u64> {
        if MMF_COPY {
            let words = self
                .map
                .words(self.at(self.off.3, self.last), self.len.div_ceil(8));
            atomic_load_bytes(words, self.len, &mut self.inv);
            return Ok(seq_of(&self.inv));
        }
        let src = self.map.bytes(self.at(self.off.3, self.last), self.len);
        // SAFETY: `src` holds `len` bytes of the mapping, `inb` holds `len` bytes; the peer wrote
        // the buffer before its Release store of the flag we loaded with Acquire, and does not
        // write it again until we answer.
        unsafe { std::ptr::copy_nonoverlapping(src, self.inb.as_mut_ptr(), self.len) };
        Ok(seq_of(self.inb.as_slice()))
    }
}

/// F made torn-free at the least cost we know: each direction has two buffers, the sender
/// writes message `g` into buffer `g % 2` with atomic word stores (mmf's own copy routine) and
/// Release-stores `g` into its flag; the receiver loads the flag, copies buffer `g % 2` with
/// atomic word loads and keeps the copy only if the flag still says `g` (the sender rewrites that
/// buffer only after it has moved the flag on). One store to the polled line per message, as in
/// F; what it adds is the word-wise copies and one reload of the flag. A reference for what any
/// protocol that never hands out a torn value must pay over F, not a peer: it has no writer
/// exclusion, no slots a slow reader can hold, and a reader overtaken twice just retries.
pub struct Validated {
    map: SharedMap,
    len: usize,
    stride: usize,
    off: (usize, usize, usize, usize),
    out: Buf,
    inb: Vec<u8>,
    sent: u64,
    last: u64,
    /// The message `arrived` saw (the flag's value), which `take` copies.
    next: u64,
}

impl Validated {
    /// The parent's side and what the child needs.
    pub fn parent(len: usize) -> Result<(Validated, Resources)> {
        let (map, res) = create(len, 2)?;
        Ok((Validated::new(map, len, true), res))
    }

    /// The child's side.
    pub fn child(len: usize, res: &Resources) -> Result<Validated> {
        Ok(Validated::new(open(res)?, len, false))
    }

    fn new(map: SharedMap, len: usize, parent: bool) -> Validated {
        Validated {
            map,
            len,
            stride: buf_stride(len),
            off: offsets(len, 2, parent),
            out: payload(len),
            inb: Vec::with_capacity(len),
            sent: 0,
            last: 0,
            next: 0,
        }
    }

    /// Byte offset of buffer `g % 2` of the pair at `base`.
    fn at(&self, base: usize, g: u64) -> usize {
        base + (g % 2) as usize * self.stride
    }
}

impl Side for Validated {
    #[inline]
    fn send(&mut self, seq: u64) -> Result<()> {
        stamp(self.out.as_mut_slice(), seq);
        let g = self.sent + 1;
        // Orders our earlier flag stores before the buffer stores below: a receiver whose copy
        // reads any of them then also sees the flag moved past the `g` it is copying.
        fence(Ordering::Release);
        let words = self.map.words(self.at(self.off.2, g), self.len.div_ceil(8));
        atomic_store_bytes(words, self.out.as_slice());
        self.map.u64_at(self.off.0).store(g, Ordering::Release);
        self.sent = g;
        Ok(())
    }

    #[inline]
    fn recv(&mut self, timeout: Duration) -> Result<u64> {
        self.arrived(timeout)?;
        self.take()
    }
}

impl Split for Validated {
    #[inline]
    fn arrived(&mut self, timeout: Duration) -> Result<()> {
        let flag = self.map.u64_at(self.off.1);
        let last = self.last;
        self.next = spin_until(timeout, || {
            let v = flag.load(Ordering::Acquire);
            (v != last).then_some(v)
        })?;
        Ok(())
    }

    #[inline]
    fn take(&mut self) -> Result<u64> {
        // `take` has no timeout of its own: a copy overtaken for this long is a failed run.
        let timeout = RT_TIMEOUT;
        let flag = self.map.u64_at(self.off.1);
        let mut g = self.next;
        // The clock is read only once a copy has failed: `Instant::now` costs ~30 ns here, a
        // fifth of F's whole round trip.
        let mut start: Option<Instant> = None;
        loop {
            let at = self.at(self.off.3, g);
            let words = self.map.words(at, self.len.div_ceil(8));
            atomic_load_bytes(words, self.len, &mut self.inb);
            fence(Ordering::Acquire);
            let now = flag.load(Ordering::Relaxed);
            if now == g {
                break;
            }
            if start.get_or_insert_with(Instant::now).elapsed() > timeout {
                bail!("no consistent copy within {timeout:?}");
            }
            g = now;
        }
        self.last = g;
        Ok(seq_of(&self.inb))
    }
}

/// The bare futex ping-pong: like F, but the receiver sleeps in `FUTEX_WAIT` on a shared word and
/// the sender bumps the word and calls `FUTEX_WAKE` every time (no spinning, no waiter count).
pub struct Futex {
    floor: Floor,
    sent: u32,
    seen: u32,
}

impl Futex {
    /// The parent's side and what the child needs.
    pub fn parent(len: usize) -> Result<(Futex, Resources)> {
        let (floor, res) = Floor::parent(len)?;
        Ok((
            Futex {
                floor,
                sent: 0,
                seen: 0,
            },
            res,
        ))
    }

    /// The child's side.
    pub fn child(len: usize, res: &Resources) -> Result<Futex> {
        Ok(Futex {
            floor: Floor::child(len, res)?,
            sent: 0,
            seen: 0,
        })
    }
}

impl Side for Futex {
    #[inline]
    fn send(&mut self, seq: u64) -> Result<()> {
        let f = &mut self.floor;
        stamp(f.out.as_mut_slice(), seq);
        let dst = f.map.bytes(f.off.2, f.len);
        // SAFETY: as in `Floor::send`: the hand-off through the futex word (Release here,
        // Acquire in the peer) keeps the two sides off the buffer at the same time.
        unsafe { std::ptr::copy_nonoverlapping(f.out.as_ptr(), dst, f.len) };
        self.sent = self.sent.wrapping_add(1);
        let word: &AtomicU32 = f.map.u32_at(f.off.0);
        word.store(self.sent, Ordering::Release);
        sys::futex_wake(word, 1);
        Ok(())
    }

    #[inline]
    fn recv(&mut self, timeout: Duration) -> Result<u64> {
        let f = &mut self.floor;
        let word: &AtomicU32 = f.map.u32_at(f.off.1);
        let mut started: Option<Instant> = None;
        loop {
            let v = word.load(Ordering::Acquire);
            if v != self.seen {
                self.seen = v;
                break;
            }
            sys::futex_wait(word, v, Duration::from_millis(100));
            if started.get_or_insert_with(Instant::now).elapsed() > timeout {
                bail!("no message within {timeout:?}");
            }
        }
        let src = f.map.bytes(f.off.3, f.len);
        // SAFETY: as in `Floor::recv`, with the futex word as the flag.
        unsafe { std::ptr::copy_nonoverlapping(src, f.inb.as_mut_ptr(), f.len) };
        Ok(seq_of(f.inb.as_slice()))
    }
}
