//! iceoryx2 (crates.io `iceoryx2` 0.10): the blackboard and publish-subscribe, one service per
//! direction, used through the public API the way its examples do.
//!
//! - Blackboard: one entry (key 0) of type `[u8; N]` per direction. The sender loans the entry's
//!   write cell, copies the payload in and updates it (`loan_uninit`, `value_mut`,
//!   `assume_init_and_update`: no intermediate copy); the receiver spins on `is_up_to_date` of the
//!   last value it got (the equivalent of mmf's `generation()`), then `get`s the new value (the
//!   copy out). Entry types are fixed-size, so the payload sizes are the ones of the benchmark.
//! - Publish-subscribe: `[u8]` slices. The sender loans a slice, `write_from_slice`s the payload
//!   and sends; the receiver spins on `receive` and copies the sample out into a reused `Vec`.

use std::cell::RefCell;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::reader::{EntryHandle, Reader};
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::port::writer::{EntryHandleMut, Writer};
use iceoryx2::prelude::*;

use crate::buf::Buf;
use crate::latency::{
    payload, seq_of, spin_until, stamp, start, Side, Timer, Transport, RT_TIMEOUT, STOP,
};
use crate::proc::Resources;
use crate::stats::Timed;
use crate::Plan;

type Svc = ipc::Service;

fn node() -> Result<Node<Svc>> {
    set_log_level(LogLevel::Error);
    NodeBuilder::new()
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<Svc>()
        .map_err(|e| anyhow!("iceoryx2 node: {e:?}"))
}

fn service_name(base: &str, dir: &str) -> Result<ServiceName> {
    ServiceName::new(&format!("{base}/{dir}")).map_err(|e| anyhow!("iceoryx2 service name: {e:?}"))
}

fn base_name() -> String {
    format!("mmf-bench/{}/{}", std::process::id(), crate::shm::next_id())
}

fn base_of(res: &Resources) -> Result<&str> {
    res.names
        .first()
        .map(String::as_str)
        .context("no service name given")
}

/// One side of the blackboard ping-pong, for entries of `N` bytes.
///
/// Not a [`Side`]: the last value received must stay a local of the ping/pong loop, so that
/// `get` copies straight into it (kept in a struct field, the value takes a second copy through
/// the stack, which would charge iceoryx2 for a copy it does not make).
pub struct Board<const N: usize> {
    tx: Option<EntryHandleMut<Svc, u64, [u8; N]>>,
    rx: EntryHandle<Svc, u64, [u8; N]>,
    out: Buf,
    _writer: Writer<Svc, u64>,
    _reader: Reader<Svc, u64>,
    _services: Vec<iceoryx2::service::port_factory::blackboard::PortFactory<Svc, u64>>,
    _node: Node<Svc>,
}

impl<const N: usize> Board<N> {
    /// Creates both blackboards; the parent writes the first ("ping").
    pub fn parent() -> Result<(Board<N>, Resources)> {
        let node = node()?;
        let base = base_name();
        let create = |dir: &str| {
            node.service_builder(&service_name(&base, dir)?)
                .blackboard_creator::<u64>()
                .add::<[u8; N]>(0, [0u8; N])
                .create()
                .map_err(|e| anyhow!("iceoryx2 blackboard create: {e:?}"))
        };
        let ping = create("ping")?;
        let pong = create("pong")?;
        let side = Board::new(node, ping, pong)?;
        Ok((
            side,
            Resources {
                names: vec![base],
                ..Resources::default()
            },
        ))
    }

    /// Opens both blackboards; the child writes the second ("pong").
    pub fn child(res: &Resources) -> Result<Board<N>> {
        let node = node()?;
        let base = base_of(res)?;
        let open = |dir: &str| {
            node.service_builder(&service_name(base, dir)?)
                .blackboard_opener::<u64>()
                .open()
                .map_err(|e| anyhow!("iceoryx2 blackboard open: {e:?}"))
        };
        let ping = open("ping")?;
        let pong = open("pong")?;
        Board::new(node, pong, ping)
    }

    fn new(
        node: Node<Svc>,
        tx_service: iceoryx2::service::port_factory::blackboard::PortFactory<Svc, u64>,
        rx_service: iceoryx2::service::port_factory::blackboard::PortFactory<Svc, u64>,
    ) -> Result<Board<N>> {
        let writer = tx_service
            .writer_builder()
            .create()
            .map_err(|e| anyhow!("iceoryx2 writer: {e:?}"))?;
        let reader = rx_service
            .reader_builder()
            .create()
            .map_err(|e| anyhow!("iceoryx2 reader: {e:?}"))?;
        let tx = writer
            .entry::<[u8; N]>(&0)
            .map_err(|e| anyhow!("iceoryx2 writer entry: {e:?}"))?;
        let rx = reader
            .entry::<[u8; N]>(&0)
            .map_err(|e| anyhow!("iceoryx2 reader entry: {e:?}"))?;
        Ok(Board {
            tx: Some(tx),
            rx,
            out: payload(N),
            _writer: writer,
            _reader: reader,
            _services: vec![tx_service, rx_service],
            _node: node,
        })
    }

    /// Copies the payload, stamped with `seq`, into the entry's write cell and publishes it.
    #[inline(never)]
    fn send(&mut self, seq: u64) -> Result<()> {
        stamp(self.out.as_mut_slice(), seq);
        let handle = self.tx.take().context("entry handle lost")?;
        let mut cell = handle.loan_uninit();
        let dst = cell.value_mut().as_mut_ptr().cast::<u8>();
        // SAFETY: `dst` is the loaned write cell of an entry of type `[u8; N]` (N bytes, any
        // alignment suffices for bytes) that only this writer touches until the update below;
        // `out` holds N bytes (`payload(N)`) and does not overlap the shared memory.
        unsafe { std::ptr::copy_nonoverlapping(self.out.as_ptr(), dst, N) };
        // SAFETY: all N bytes of the cell were initialised by the copy above.
        self.tx = Some(unsafe { cell.assume_init_and_update() });
        Ok(())
    }

    /// The loop of both sides: take the entry's current value, call `start` (the parent sends
    /// its first ping, the child says it is ready: only now, or the first update could be taken
    /// for the initial value), then wait until the entry changes, `get` it (the copy out) into a
    /// local of this loop, hand its sequence number to `next`, and send what `next` answers
    /// (`None`: return). Keeping `last` a local here lets `get` copy straight into it; in other
    /// shapes the compiler copied the value through the stack a second time, which would charge
    /// iceoryx2 for a copy it does not make.
    fn serve(
        &mut self,
        timeout: Duration,
        start: impl FnOnce(&mut Self) -> Result<()>,
        mut next: impl FnMut(u64) -> Result<Option<u64>>,
    ) -> Result<()> {
        let mut last = self.rx.get();
        start(self)?;
        loop {
            let rx = &self.rx;
            spin_until(timeout, || (!rx.is_up_to_date(&last)).then_some(()))?;
            last = rx.get();
            // Only the first 8 bytes are used below: without this, LTO lets the compiler shrink
            // `get`'s copy of the value to those 8 bytes, and iceoryx2 would be timed without the
            // copy out that every other transport makes.
            std::hint::black_box(&last);
            match next(seq_of(&last[..]))? {
                Some(seq) => self.send(seq)?,
                None => return Ok(()),
            }
        }
    }

    /// The parent's loop (see `latency::ping`), on [`Board::serve`], timed by the same
    /// [`Timer`] as every other transport.
    fn ping(&mut self, plan: &Plan) -> Result<Timed> {
        let mut seq = 1u64;
        let timer = RefCell::new(Timer::new(plan));
        self.serve(
            RT_TIMEOUT,
            |board| {
                timer.borrow_mut().before();
                board.send(1)
            },
            |got| {
                ensure!(got == seq, "reply {got} to ping {seq}");
                let mut t = timer.borrow_mut();
                if !t.after() {
                    return Ok(None);
                }
                seq += 1;
                t.before();
                Ok(Some(seq))
            },
        )?;
        self.send(STOP)?;
        Ok(timer.into_inner().finish())
    }

    /// The child's loop (see `latency::pong`), on [`Board::serve`].
    fn pong(&mut self, idle: Duration) -> Result<()> {
        self.serve(
            idle,
            |_| {
                println!("ready");
                Ok(())
            },
            |seq| Ok((seq != STOP).then_some(seq)),
        )
    }
}

fn board_round<const N: usize>(plan: &Plan) -> Result<Timed> {
    let (mut board, res) = Board::<N>::parent()?;
    let peer = start(res, Transport::IoxBlackboard, N, plan)?;
    let samples = board.ping(plan)?;
    peer.finish(Duration::from_secs(10))?;
    Ok(samples)
}

fn board_child<const N: usize>(res: &Resources, idle: Duration) -> Result<()> {
    Board::<N>::child(res)?.pong(idle)
}

/// A latency round over the blackboard, for the payload sizes that have an entry type.
pub fn blackboard_round(len: usize, plan: &Plan) -> Result<Timed> {
    match len {
        64 => board_round::<64>(plan),
        4096 => board_round::<4096>(plan),
        65536 => board_round::<65536>(plan),
        1048576 => board_round::<1048576>(plan),
        _ => bail!("no blackboard entry type for {len} bytes"),
    }
}

/// The child's half of [`blackboard_round`].
pub fn blackboard_child(len: usize, res: &Resources, idle: Duration) -> Result<()> {
    match len {
        64 => board_child::<64>(res, idle),
        4096 => board_child::<4096>(res, idle),
        65536 => board_child::<65536>(res, idle),
        1048576 => board_child::<1048576>(res, idle),
        _ => bail!("no blackboard entry type for {len} bytes"),
    }
}

/// One side of the publish-subscribe ping-pong.
pub struct PubSub {
    publisher: Publisher<Svc, [u8], ()>,
    subscriber: Subscriber<Svc, [u8], ()>,
    len: usize,
    out: Buf,
    inb: Buf,
    _services: Vec<iceoryx2::service::port_factory::publish_subscribe::PortFactory<Svc, [u8], ()>>,
    _node: Node<Svc>,
}

impl PubSub {
    /// Creates both services; the parent publishes on the first ("ping").
    pub fn parent(len: usize) -> Result<(PubSub, Resources)> {
        let node = node()?;
        let base = base_name();
        let create = |dir: &str| {
            node.service_builder(&service_name(&base, dir)?)
                .publish_subscribe::<[u8]>()
                .create()
                .map_err(|e| anyhow!("iceoryx2 publish-subscribe create: {e:?}"))
        };
        let ping = create("ping")?;
        let pong = create("pong")?;
        let side = PubSub::new(node, ping, pong, len)?;
        Ok((
            side,
            Resources {
                names: vec![base],
                ..Resources::default()
            },
        ))
    }

    /// Opens both services; the child publishes on the second ("pong").
    pub fn child(len: usize, res: &Resources) -> Result<PubSub> {
        let node = node()?;
        let base = base_of(res)?;
        let open = |dir: &str| {
            node.service_builder(&service_name(base, dir)?)
                .publish_subscribe::<[u8]>()
                .open()
                .map_err(|e| anyhow!("iceoryx2 publish-subscribe open: {e:?}"))
        };
        let ping = open("ping")?;
        let pong = open("pong")?;
        PubSub::new(node, pong, ping, len)
    }

    fn new(
        node: Node<Svc>,
        tx: iceoryx2::service::port_factory::publish_subscribe::PortFactory<Svc, [u8], ()>,
        rx: iceoryx2::service::port_factory::publish_subscribe::PortFactory<Svc, [u8], ()>,
        len: usize,
    ) -> Result<PubSub> {
        let publisher = tx
            .publisher_builder()
            .initial_max_slice_len(len)
            .create()
            .map_err(|e| anyhow!("iceoryx2 publisher: {e:?}"))?;
        let subscriber = rx
            .subscriber_builder()
            .create()
            .map_err(|e| anyhow!("iceoryx2 subscriber: {e:?}"))?;
        Ok(PubSub {
            publisher,
            subscriber,
            len,
            out: payload(len),
            inb: Buf::zeroed(len),
            _services: vec![tx, rx],
            _node: node,
        })
    }
}

impl Side for PubSub {
    #[inline]
    fn send(&mut self, seq: u64) -> Result<()> {
        stamp(self.out.as_mut_slice(), seq);
        let sample = self
            .publisher
            .loan_slice_uninit(self.len)
            .map_err(|e| anyhow!("iceoryx2 loan: {e:?}"))?;
        sample
            .write_from_slice(self.out.as_slice())
            .send()
            .map_err(|e| anyhow!("iceoryx2 send: {e:?}"))?;
        Ok(())
    }

    #[inline]
    fn recv(&mut self, timeout: Duration) -> Result<u64> {
        let sub = &self.subscriber;
        let sample = spin_until(timeout, || match sub.receive() {
            Ok(Some(s)) => Some(Ok(s)),
            Ok(None) => None,
            Err(e) => Some(Err(anyhow!("iceoryx2 receive: {e:?}"))),
        })??;
        let got = sample.payload();
        ensure!(got.len() == self.len, "sample of {} bytes", got.len());
        self.inb.as_mut_slice().copy_from_slice(got);
        Ok(seq_of(self.inb.as_slice()))
    }
}
