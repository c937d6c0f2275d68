//! mmf itself: a pair of channels (ping: parent to child, pong: child to parent), created with
//! the default [`Options`] and a capacity of exactly the payload size, used the way the README
//! shows: `publish_raw` a reused buffer, spin on `generation()` (or block in
//! `wait_for_change`, or await `changed`), `read_into` a reused `Vec`; or await each value of
//! a [`ValueStream`] (`Follower::values`), which hands it over as a `Vec` of its own; or a
//! [`Follower`]'s blocking loop, `read_after_into` the reused `Vec`.

use std::future::Future;
use std::sync::Arc;
use std::task::{Poll, Wake, Waker};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mmf_core::{Channel, Follower, Options, Tag, ValueStream};

use crate::buf::Buf;
use crate::latency::{payload, seq_of, spin_until, stamp, Side, Split, Transport};
use crate::proc::Resources;

/// Whether this mmf-core has `Channel::wait_for_change` (the `mmf-wait` case).
pub const HAS_WAIT: bool = true;

/// How a side learns that a value arrived.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Arrival {
    /// Spins on `generation()` (`mmf`).
    Spin,
    /// Blocks in `wait_for_change` (`mmf-wait`).
    Block,
    /// Blocks in `mmf_core::wait_any` on the channel and three idle ones (`mmf-wait-any`).
    BlockAny,
    /// Awaits `changed` (`mmf-async`).
    Await,
    /// Awaits the next item of `Follower::values` (`mmf-stream`).
    Stream,
    /// Blocks in `Follower::read_after_into` (`mmf-follow`).
    Follow,
}

impl Arrival {
    /// The arrival of an mmf transport.
    pub fn of(t: Transport) -> Arrival {
        match t {
            Transport::MmfWait => Arrival::Block,
            Transport::MmfWaitAny => Arrival::BlockAny,
            Transport::MmfAsync => Arrival::Await,
            Transport::MmfStream => Arrival::Stream,
            Transport::MmfFollow => Arrival::Follow,
            _ => Arrival::Spin,
        }
    }
}

/// One side: publishes on `tx`, reads `rx`.
pub struct Mmf {
    tx: Channel,
    rx: Channel,
    out: Buf,
    inb: Vec<u8>,
    seen: u64,
    arrival: Arrival,
    /// The values of `rx`'s name (`Arrival::Stream`).
    stream: Option<ValueStream>,
    /// `rx`'s name followed (`Arrival::Follow`).
    follower: Option<Follower>,
    /// Channels nobody publishes on, waited on beside `rx` (`Arrival::BlockAny`).
    idle: Option<[Channel; 3]>,
    /// Unparks this side's thread (`Arrival::Await`'s executor).
    waker: Waker,
    /// The channels' names, removed on drop by the side that created them.
    owned: Vec<String>,
}

impl Mmf {
    /// Creates both channels; the parent publishes on the first.
    pub fn parent(len: usize, arrival: Arrival) -> Result<(Mmf, Resources)> {
        let base = format!("bench-{}-{}", std::process::id(), crate::shm::next_id());
        let names = vec![format!("{base}-ping"), format!("{base}-pong")];
        let create = |n: &str| -> Result<Channel> {
            Options::new()
                .capacity(len)
                .create(n)
                .with_context(|| format!("creating channel {n}"))
        };
        let tx = create(&names[0])?;
        let rx = match create(&names[1]) {
            Ok(rx) => rx,
            Err(e) => {
                let _ = Channel::remove(&names[0]);
                return Err(e);
            }
        };
        let side = Mmf::new(tx, rx, len, arrival, names.clone(), &names[1])?;
        Ok((
            side,
            Resources {
                names,
                ..Resources::default()
            },
        ))
    }

    /// Opens both channels; the child publishes on the second.
    pub fn child(len: usize, res: &Resources, arrival: Arrival) -> Result<Mmf> {
        let [ping, pong] = res.names.as_slice() else {
            bail!("two channel names expected");
        };
        let rx = Channel::open(ping).with_context(|| format!("opening {ping}"))?;
        let tx = Channel::open(pong).with_context(|| format!("opening {pong}"))?;
        Mmf::new(tx, rx, len, arrival, Vec::new(), ping)
    }

    fn new(
        tx: Channel,
        rx: Channel,
        len: usize,
        arrival: Arrival,
        owned: Vec<String>,
        rx_name: &str,
    ) -> Result<Mmf> {
        let seen = rx.generation();
        let follow = || {
            Follower::open(rx_name, Duration::ZERO).with_context(|| format!("following {rx_name}"))
        };
        let stream = match arrival {
            Arrival::Stream => Some(follow()?.values(seen)),
            _ => None,
        };
        let follower = match arrival {
            Arrival::Follow => Some(follow()?),
            _ => None,
        };
        Ok(Mmf {
            tx,
            rx,
            out: payload(len),
            inb: Vec::with_capacity(len),
            seen,
            arrival,
            stream,
            follower,
            idle: match arrival {
                Arrival::BlockAny => {
                    let idle = || Channel::anonymous(64).context("creating an idle channel");
                    Some([idle()?, idle()?, idle()?])
                }
                _ => None,
            },
            waker: Arc::new(Unpark(std::thread::current())).into(),
            owned,
        })
    }
}

impl Drop for Mmf {
    fn drop(&mut self) {
        for n in &self.owned {
            let _ = Channel::remove(n);
        }
    }
}

impl Side for Mmf {
    #[inline]
    fn send(&mut self, seq: u64) -> Result<()> {
        stamp(self.out.as_mut_slice(), seq);
        self.tx.publish_raw(Tag::BYTES, self.out.as_slice())?;
        Ok(())
    }

    #[inline]
    fn recv(&mut self, timeout: Duration) -> Result<u64> {
        self.arrived(timeout)?;
        self.take()
    }
}

impl Split for Mmf {
    #[inline]
    fn arrived(&mut self, timeout: Duration) -> Result<()> {
        let seen = self.seen;
        match self.arrival {
            Arrival::Block => {
                wait_for_change(&self.rx, seen, timeout)?;
            }
            Arrival::BlockAny => {
                let Some(idle) = &self.idle else {
                    bail!("no idle channels to wait on");
                };
                wait_any(idle, &self.rx, seen, timeout)?;
            }
            Arrival::Await => {
                block_on(self.rx.changed(seen), &self.waker, timeout)?;
            }
            Arrival::Stream => {
                let Some(stream) = self.stream.as_mut() else {
                    bail!("no stream to await");
                };
                let (meta, bytes) = block_on(stream.recv(), &self.waker, timeout)??;
                self.seen = meta.generation;
                self.inb = bytes;
            }
            Arrival::Follow => {
                let Some(follower) = self.follower.as_mut() else {
                    bail!("no follower to read with");
                };
                if follower
                    .read_after_into(&mut self.seen, &mut self.inb, timeout)?
                    .is_none()
                {
                    bail!("no publish within {timeout:?}");
                }
            }
            Arrival::Spin => {
                let rx = &self.rx;
                spin_until(timeout, || (rx.generation() != seen).then_some(()))?;
            }
        }
        Ok(())
    }

    #[inline]
    fn take(&mut self) -> Result<u64> {
        if matches!(self.arrival, Arrival::Stream | Arrival::Follow) {
            // `arrived` took the value already, as the stream and the follower give it.
            return Ok(seq_of(&self.inb));
        }
        let meta = self.rx.read_into(&mut self.inb)?;
        self.seen = meta.generation;
        Ok(seq_of(&self.inb))
    }
}

/// Blocks in `Channel::wait_for_change` until the generation moves past `since` (in slices of
/// one second, up to `timeout`).
pub fn wait_for_change(ch: &Channel, since: u64, timeout: Duration) -> Result<u64> {
    in_slices(timeout, |slice| {
        ch.wait_for_change(since, slice).into_option()
    })
}

/// Blocks in `mmf_core::wait_any` on `idle` (at generation 0, where nobody publishes) and
/// then `ch` until `ch`'s generation moves past `since` (in slices of one second, up to
/// `timeout`). The waits are an array: no allocation inside the round trip.
fn wait_any(idle: &[Channel; 3], ch: &Channel, since: u64, timeout: Duration) -> Result<u64> {
    let waits = [(&idle[0], 0), (&idle[1], 0), (&idle[2], 0), (ch, since)];
    in_slices(timeout, |slice| match mmf_core::wait_any(&waits, slice) {
        Some((3, g)) => Ok(Some(g)),
        Some((i, _)) => bail!("idle channel {i} moved"),
        None => Ok(None),
    })
}

/// Calls `wait` with slices of at most a second of `timeout` until it gives a value; an error
/// once `timeout` is spent.
fn in_slices<T>(
    timeout: Duration,
    mut wait: impl FnMut(Duration) -> Result<Option<T>>,
) -> Result<T> {
    let start = Instant::now();
    loop {
        let slice = timeout
            .saturating_sub(start.elapsed())
            .min(Duration::from_secs(1));
        if let Some(v) = wait(slice)? {
            return Ok(v);
        }
        if start.elapsed() >= timeout {
            bail!("no publish within {timeout:?}");
        }
    }
}

/// Wakes by unparking the thread that polls.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// The smallest executor, as a single-threaded runtime's would wait: polls `f`, parks the thread
/// until `waker` (whose thread is this one) unparks it, polls again; up to `timeout`.
fn block_on<F: Future>(f: F, waker: &Waker, timeout: Duration) -> Result<F::Output> {
    let mut cx = std::task::Context::from_waker(waker);
    let mut f = std::pin::pin!(f);
    let start = Instant::now();
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return Ok(v);
        }
        let Some(left) = timeout.checked_sub(start.elapsed()) else {
            bail!("no publish within {timeout:?}");
        };
        std::thread::park_timeout(left);
    }
}

/// Accepts `wait_for_change` returning either `Option<u64>` or `Result<Option<u64>>` (its
/// signature was being settled while this harness was written).
trait IntoOption {
    fn into_option(self) -> Result<Option<u64>>;
}

impl IntoOption for Option<u64> {
    fn into_option(self) -> Result<Option<u64>> {
        Ok(self)
    }
}

impl IntoOption for mmf_core::Result<Option<u64>> {
    fn into_option(self) -> Result<Option<u64>> {
        Ok(self?)
    }
}
