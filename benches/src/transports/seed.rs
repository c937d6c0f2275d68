//! The seed port's stack: a `shared_memory` mapping with two `raw_sync` events (one per
//! direction) and two buffers. The sender copies its payload into its buffer and sets its event;
//! the receiver waits on the event (auto-reset), copies out, answers.
//!
//! `BusyEvent` spins (a compare-and-swap per iteration, Relaxed, no `spin_loop` hint); `Event` is
//! a process-shared pthread mutex and condition variable. raw_sync's events use Relaxed atomics or
//! a mutex that does not cover our buffer, so the payload hand-off adds a Release fence before
//! `set` and an Acquire fence after `wait` (free on x86). Waits use whole-second timeouts in a
//! loop: raw_sync builds the sub-second part of its timespec wrongly.

use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use raw_sync::events::{BusyEvent, Event, EventImpl, EventInit, EventState};
use raw_sync::Timeout;
use shared_memory::{Shmem, ShmemConf};

use crate::buf::Buf;
use crate::latency::{payload, seq_of, stamp, Side};
use crate::proc::Resources;

const EVENT_B: usize = 512;
const BUF: usize = 4096;

fn stride(len: usize) -> usize {
    len.div_ceil(4096) * 4096
}

/// One side.
pub struct Seed {
    // Dropped first: the events point into the mapping.
    tx_ev: Box<dyn EventImpl>,
    rx_ev: Box<dyn EventImpl>,
    shm: Shmem,
    tx_buf: usize,
    rx_buf: usize,
    len: usize,
    out: Buf,
    inb: Buf,
}

impl Seed {
    /// Creates the mapping and both events (`busy`: `BusyEvent`, else `Event`).
    pub fn parent(len: usize, busy: bool) -> Result<(Seed, Resources)> {
        let shm = ShmemConf::new()
            .size(BUF + 2 * stride(len))
            .create()
            .map_err(|e| anyhow!("shared_memory create: {e}"))?;
        let base = shm.as_ptr();
        let new = |off: usize| -> Result<Box<dyn EventImpl>> {
            // SAFETY: `off + 512 <= BUF <= len()`, so the event's memory (a few dozen bytes,
            // `size_of` below 512) lies inside the fresh mapping, which outlives the event (the
            // struct drops events before the mapping); nothing else uses these bytes yet.
            let made = unsafe {
                if busy {
                    BusyEvent::new(base.add(off), true)
                } else {
                    Event::new(base.add(off), true)
                }
            };
            made.map(|(ev, _)| ev)
                .map_err(|e| anyhow!("raw_sync event: {e}"))
        };
        let (tx_ev, rx_ev) = (new(0)?, new(EVENT_B)?);
        let res = Resources {
            names: vec![
                shm.get_os_id().to_owned(),
                if busy { "busy" } else { "event" }.into(),
            ],
            ..Resources::default()
        };
        let side = Seed {
            tx_ev,
            rx_ev,
            shm,
            tx_buf: BUF,
            rx_buf: BUF + stride(len),
            len,
            out: payload(len),
            inb: Buf::zeroed(len),
        };
        Ok((side, res))
    }

    /// Opens the parent's mapping and events.
    pub fn child(len: usize, res: &Resources) -> Result<Seed> {
        let [os_id, kind] = res.names.as_slice() else {
            bail!("os id and event kind expected");
        };
        let shm = ShmemConf::new()
            .os_id(os_id)
            .open()
            .map_err(|e| anyhow!("shared_memory open: {e}"))?;
        if shm.len() < BUF + 2 * stride(len) {
            bail!("mapping of {} bytes is too small", shm.len());
        }
        let base = shm.as_ptr();
        let busy = kind == "busy";
        let open = |off: usize| -> Result<Box<dyn EventImpl>> {
            // SAFETY: the parent initialised an event of this kind at this offset of the mapping
            // (checked large enough above) before starting us; the mapping outlives the event.
            let opened = unsafe {
                if busy {
                    BusyEvent::from_existing(base.add(off))
                } else {
                    Event::from_existing(base.add(off))
                }
            };
            opened
                .map(|(ev, _)| ev)
                .map_err(|e| anyhow!("raw_sync event: {e}"))
        };
        // The child sends on the second event and receives on the first.
        let (tx_ev, rx_ev) = (open(EVENT_B)?, open(0)?);
        Ok(Seed {
            tx_ev,
            rx_ev,
            shm,
            tx_buf: BUF + stride(len),
            rx_buf: BUF,
            len,
            out: payload(len),
            inb: Buf::zeroed(len),
        })
    }
}

impl Side for Seed {
    fn send(&mut self, seq: u64) -> Result<()> {
        stamp(self.out.as_mut_slice(), seq);
        // SAFETY: `tx_buf + len` lies inside the mapping (sized for both buffers); the peer
        // reads this buffer only after our `set` and has finished reading it before it answered
        // our previous message.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.out.as_ptr(),
                self.shm.as_ptr().add(self.tx_buf),
                self.len,
            )
        };
        fence(Ordering::Release);
        self.tx_ev
            .set(EventState::Signaled)
            .map_err(|e| anyhow!("raw_sync set: {e}"))
    }

    fn recv(&mut self, timeout: Duration) -> Result<u64> {
        // The clock only after a timed-out wait: a clock read per message (~30 ns here) would
        // weigh on this peer's round trip, which is a few hundred nanoseconds.
        let mut start: Option<Instant> = None;
        while let Err(e) = self.rx_ev.wait(Timeout::Val(Duration::from_secs(1))) {
            if start.get_or_insert_with(Instant::now).elapsed() > timeout {
                bail!("no message within {timeout:?} ({e})");
            }
        }
        fence(Ordering::Acquire);
        // SAFETY: `rx_buf + len` lies inside the mapping; the peer wrote it before setting the
        // event we just consumed and does not write it again until we answer.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.shm.as_ptr().add(self.rx_buf),
                self.inb.as_mut_ptr(),
                self.len,
            )
        };
        Ok(seq_of(self.inb.as_slice()))
    }
}
