//! Cross-process round-trip latency: a ping-pong between this process (pinned to one CPU) and a
//! child (pinned to another), over every transport, the payload copied in and out on both sides.
//!
//! Every transport implements [`Side`]. The parent [`ping`]s: stamps a sequence number into the
//! first 8 bytes of its payload, sends it, waits for the reply and checks that the reply carries
//! the same number; the child [`pong`]s: waits, copies the message out, answers with a payload of
//! the same size. Only the parent's clock is read; one sample is one whole round trip.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::buf::Buf;
use crate::placement::{Placement, Probed, Settle};
use crate::proc::{Job, JobKind, Peer, Resources};
use crate::stats::{fmt_ns, Runs, Sample, Timed};
use crate::transports::{floor, mmf, stream};
use crate::Plan;

/// The sequence number that tells the child to exit.
pub const STOP: u64 = u64::MAX;

/// One end of a ping-pong.
pub trait Side {
    /// Sends a message of the benchmark's size carrying `seq` in its first 8 bytes.
    fn send(&mut self, seq: u64) -> Result<()>;
    /// Waits (at most `timeout`) for the peer's next message, copies it out, and returns the
    /// sequence number it carries.
    fn recv(&mut self, timeout: Duration) -> Result<u64>;
}

/// A [`Side`] whose receive has two phases that can be timed apart (`breakdown.rs`): waiting
/// until the peer's message is there, and copying it out. Its `recv` is the two in a row.
pub trait Split: Side {
    /// Spins (at most `timeout`) until the peer's next message has arrived; copies nothing.
    fn arrived(&mut self, timeout: Duration) -> Result<()>;
    /// Copies the message that [`arrived`](Split::arrived) saw out, and returns its number.
    fn take(&mut self) -> Result<u64>;
}

/// Spins (with `spin_loop`, the way a user spins on `Channel::generation`) until `poll` returns
/// something; reads the clock only every 4096 polls, so that the fast path is the poll alone.
#[inline(always)]
pub fn spin_until<T>(timeout: Duration, mut poll: impl FnMut() -> Option<T>) -> Result<T> {
    let mut n: u32 = 0;
    let mut started: Option<Instant> = None;
    loop {
        if let Some(v) = poll() {
            return Ok(v);
        }
        std::hint::spin_loop();
        n = n.wrapping_add(1);
        if n % 4096 == 0 && started.get_or_insert_with(Instant::now).elapsed() > timeout {
            bail!("no message within {timeout:?}");
        }
    }
}

/// Writes `seq` into the first 8 bytes of a message (all messages are at least 8 bytes).
#[inline(always)]
pub fn stamp(msg: &mut [u8], seq: u64) {
    msg[..8].copy_from_slice(&seq.to_le_bytes());
}

/// The sequence number in the first 8 bytes of a message.
#[inline(always)]
pub fn seq_of(msg: &[u8]) -> u64 {
    u64::from_le_bytes(msg[..8].try_into().expect("8 bytes"))
}

/// A page-aligned payload of `len` bytes with a recognisable pattern (see `buf.rs` for why
/// page-aligned).
pub fn payload(len: usize) -> Buf {
    Buf::pattern(len)
}

/// The transports of the latency benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Two atomics on two cache lines of a shared mapping, spinning: the bare coherence cost.
    FloorLine,
    /// F: memcpy into a shared buffer, Release-store a flag; the reader spins, copies out.
    Floor,
    /// F with two buffers each way, used in turn (a reference: what the second buffer alone
    /// costs, which every torn-free protocol that never makes a writer wait needs).
    Floor2,
    /// F with mmf's copies (`floor::Floor`'s `MMF_COPY`).
    FloorMmfCopy,
    /// F made torn-free: double-buffered, validated by reloading the flag (a reference).
    Validated,
    /// mmf: a channel per direction, spinning on `generation()`, `read_into`, `publish_raw`.
    Mmf,
    /// mmf blocking in `Channel::wait_for_change` instead of spinning.
    MmfWait,
    /// mmf blocking in `mmf::wait_any` on the channel and three idle ones (one `futex_waitv`
    /// on four headers): what waiting on several channels costs over waiting on one.
    MmfWaitAny,
    /// mmf awaiting `Channel::changed` in a minimal executor (the thread parks until the
    /// waker, run by the process's notifier thread, unparks it).
    MmfAsync,
    /// mmf through `Follower::values`, the stream of a followed name's values, in the same
    /// executor: each value handed over as an owned `Vec`.
    MmfStream,
    /// mmf through `Follower::read_after_into`, a followed name's blocking consumer loop
    /// (a `wait_for_change` that looks at the name every 100 ms, then `read_into`).
    MmfFollow,
    /// Like F, but sleeping in `FUTEX_WAIT` and woken by `FUTEX_WAKE` (no spinning).
    Futex,
    /// A pipe per direction (`write_all` / `read_exact`).
    Pipe,
    /// A Unix domain stream socket pair.
    Uds,
    /// `shared_memory` + `raw_sync::BusyEvent` (auto-reset, spinning).
    RawSyncBusy,
    /// `shared_memory` + `raw_sync::Event` (auto-reset, process-shared mutex + condvar).
    RawSyncEvent,
    /// iceoryx2 blackboard: an entry per direction, spinning on `is_up_to_date`, `get`.
    IoxBlackboard,
    /// iceoryx2 publish-subscribe of `[u8]` slices, spinning on `receive`.
    IoxPubSub,
}

impl Transport {
    /// Every transport, in table order.
    pub const ALL: [Transport; 18] = [
        Transport::FloorLine,
        Transport::Floor,
        Transport::Floor2,
        Transport::FloorMmfCopy,
        Transport::Validated,
        Transport::Mmf,
        Transport::MmfWait,
        Transport::MmfWaitAny,
        Transport::MmfAsync,
        Transport::MmfStream,
        Transport::MmfFollow,
        Transport::Futex,
        Transport::Pipe,
        Transport::Uds,
        Transport::RawSyncBusy,
        Transport::RawSyncEvent,
        Transport::IoxBlackboard,
        Transport::IoxPubSub,
    ];

    /// The name in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Transport::FloorLine => "floor-line",
            Transport::Floor => "floor",
            Transport::Floor2 => "floor-2buf",
            Transport::FloorMmfCopy => "floor-mmfcopy",
            Transport::Validated => "floor-validated",
            Transport::Mmf => "mmf",
            Transport::MmfWait => "mmf-wait",
            Transport::MmfWaitAny => "mmf-wait-any",
            Transport::MmfAsync => "mmf-async",
            Transport::MmfStream => "mmf-stream",
            Transport::MmfFollow => "mmf-follow",
            Transport::Futex => "futex",
            Transport::Pipe => "pipe",
            Transport::Uds => "uds",
            Transport::RawSyncBusy => "raw_sync-busy",
            Transport::RawSyncEvent => "raw_sync-event",
            Transport::IoxBlackboard => "iceoryx2-blackboard",
            Transport::IoxPubSub => "iceoryx2-pubsub",
        }
    }

    /// The transport of a name.
    pub fn from_name(name: &str) -> Option<Transport> {
        Transport::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Whether this is one of the peers a user would pick instead of mmf.
    pub fn is_peer(self) -> bool {
        !matches!(
            self,
            Transport::FloorLine
                | Transport::Floor
                | Transport::Floor2
                | Transport::FloorMmfCopy
                | Transport::Validated
                | Transport::Mmf
                | Transport::MmfWait
                | Transport::MmfWaitAny
                | Transport::MmfAsync
                | Transport::MmfStream
                | Transport::MmfFollow
        )
    }

    /// Whether the receiver sleeps in the kernel instead of spinning.
    pub fn blocks(self) -> bool {
        matches!(
            self,
            Transport::MmfWait
                | Transport::MmfWaitAny
                | Transport::MmfAsync
                | Transport::MmfStream
                | Transport::MmfFollow
                | Transport::Futex
                | Transport::Pipe
                | Transport::Uds
                | Transport::RawSyncEvent
        )
    }

    /// Why the transport is not in this build, if it is not.
    pub fn missing(self) -> Option<&'static str> {
        match self {
            Transport::MmfWait if !mmf::HAS_WAIT => {
                Some("Channel::wait_for_change is not in mmf-core yet")
            }
            Transport::RawSyncBusy | Transport::RawSyncEvent if !cfg!(feature = "seed-peers") => {
                Some("build with --features seed-peers")
            }
            Transport::IoxBlackboard | Transport::IoxPubSub if !cfg!(feature = "iceoryx2") => {
                Some("build with --features iceoryx2")
            }
            _ => None,
        }
    }
}

/// The latency of one transport at one payload size, measured over several interleaved runs.
pub struct Measured {
    /// Which transport.
    pub transport: Transport,
    /// Payload bytes (8 for the cache line).
    pub len: usize,
    /// Per-run percentiles.
    pub runs: Runs,
}

/// The order in which round `r` runs `here` (indices into it): the spinning transports in
/// table order, then the blocking ones, reversed every other round to cancel drift. The bars
/// compare mmf with F and with the spinning peers round by round, and the host's modes last
/// seconds, so those transports run back to back instead of on either side of the blocking
/// ones (about 1.4 s for five of them).
fn round_order(here: &[Transport], r: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..here.len()).collect();
    order.sort_by_key(|&i| here[i].blocks());
    if r % 2 == 1 {
        order.reverse();
    }
    order
}

/// Runs the latency benchmark: for each payload size, `plan.runs` rounds of every transport,
/// interleaved (A B C ... A B C ...; the order alternates between runs to cancel drift).
pub fn run(plan: &Plan, transports: &[Transport], placement: &mut Placement) -> Vec<Measured> {
    // Each size's transports, runs, and the runs' order and probes, settled once every size
    // has run.
    let mut sizes = Vec::new();
    for &len in &plan.sizes {
        let here: Vec<Transport> = transports
            .iter()
            .copied()
            .filter(|&t| t != Transport::FloorLine || len == plan.sizes[0])
            .collect();
        let mut runs: Vec<Runs> = here.iter().map(|_| Runs::default()).collect();
        // A placement probe before every run and one after the last (a few ms each, against a
        // run's ~0.3 s or more).
        let mut probed = Probed::default();
        for r in 0..plan.runs {
            for i in round_order(&here, r) {
                let t = here[i];
                let msg_len = if t == Transport::FloorLine { 8 } else { len };
                let at = format!("{} round {} {}", fmt_len(len), r + 1, t.name());
                probed.before(placement, at, (i, r));
                match round(t, msg_len, plan) {
                    Ok(timed) => {
                        let s = Sample::of(timed);
                        if plan.verbose {
                            eprintln!(
                                "    run {} {} {}: p50 {} p99 {} p999 {} ({} samples)",
                                r + 1,
                                t.name(),
                                fmt_len(msg_len),
                                fmt_ns(s.p50),
                                fmt_ns(s.p99),
                                fmt_ns(s.p999),
                                s.n
                            );
                        }
                        runs[i].push(r, s);
                    }
                    Err(e) => {
                        eprintln!(
                            "  {} {}: run {} failed: {e:#}",
                            t.name(),
                            fmt_len(msg_len),
                            r + 1
                        );
                        runs[i].failures += 1;
                    }
                }
            }
        }
        probed.after(placement, format!("after {}", fmt_len(len)));
        sizes.push((len, here, runs, probed));
    }
    // Every probe of the section judged against the median of all of them (and the start's):
    // against the median so far, a first size run mostly in the far placement set its own
    // reference and went unseen (the third review's finding).
    let median = placement.median();
    let mut out = Vec::new();
    for (len, here, mut runs, probed) in sizes {
        probed.mark(placement, median);
        // Not with fewer than three runs a transport (`--smoke`, `--runs 2`): there a run left
        // out would leave a transport one run or none, and a smoke run's figures mean nothing.
        // Nor for the blocking transports, whose round trips are wake-ups through the
        // hypervisor (~40 us here), which a cache line's few hundred ns do not move, and whose
        // bar is not a spinning one.
        if plan.runs >= 3 {
            let kept: Vec<&[usize]> = here
                .iter()
                .zip(&runs)
                .map(|(t, r)| {
                    if t.blocks() {
                        &[][..]
                    } else {
                        r.rounds.as_slice()
                    }
                })
                .collect();
            match probed.settle(median, &kept) {
                Settle::Drop(far) => {
                    for (i, r) in far {
                        if !here[i].blocks() {
                            runs[i].drop_round(r);
                        }
                    }
                }
                Settle::Unsettled { far, runs } => placement.unsettled.push((len, far, runs)),
            }
        }
        for (t, mut runs) in here.into_iter().zip(runs) {
            runs.drop_disturbed();
            let msg_len = if t == Transport::FloorLine { 8 } else { len };
            eprintln!(
                "  {:<20} {:>8}  {}",
                t.name(),
                fmt_len(msg_len),
                runs.brief()
            );
            out.push(Measured {
                transport: t,
                len: msg_len,
                runs,
            });
        }
    }
    out
}

/// One round: sets the transport up, starts the child, pings, stops the child.
pub fn round(t: Transport, len: usize, plan: &Plan) -> Result<Timed> {
    match t {
        Transport::FloorLine => {
            let (side, res) = floor::Line::parent()?;
            drive(side, res, t, len, plan)
        }
        Transport::Floor => {
            let (side, res) = floor::Floor::<1>::parent(len)?;
            drive(side, res, t, len, plan)
        }
        Transport::Floor2 => {
            let (side, res) = floor::Floor::<2>::parent(len)?;
            drive(side, res, t, len, plan)
        }
        Transport::FloorMmfCopy => {
            let (side, res) = floor::Floor::<1, true>::parent(len)?;
            drive(side, res, t, len, plan)
        }
        Transport::Validated => {
            let (side, res) = floor::Validated::parent(len)?;
            drive(side, res, t, len, plan)
        }
        Transport::Futex => {
            let (side, res) = floor::Futex::parent(len)?;
            drive(side, res, t, len, plan)
        }
        Transport::Mmf
        | Transport::MmfWait
        | Transport::MmfWaitAny
        | Transport::MmfAsync
        | Transport::MmfStream
        | Transport::MmfFollow => {
            let (side, res) = mmf::Mmf::parent(len, mmf::Arrival::of(t))?;
            drive(side, res, t, len, plan)
        }
        Transport::Pipe => {
            let (side, res) = stream::Stream::pipes(len)?;
            drive(side, res, t, len, plan)
        }
        Transport::Uds => {
            let (side, res) = stream::Stream::socket_pair(len)?;
            drive(side, res, t, len, plan)
        }
        #[cfg(feature = "seed-peers")]
        Transport::RawSyncBusy | Transport::RawSyncEvent => {
            let busy = t == Transport::RawSyncBusy;
            let (side, res) = crate::transports::seed::Seed::parent(len, busy)?;
            drive(side, res, t, len, plan)
        }
        #[cfg(feature = "iceoryx2")]
        Transport::IoxBlackboard => crate::transports::iox::blackboard_round(len, plan),
        #[cfg(feature = "iceoryx2")]
        Transport::IoxPubSub => {
            let (side, res) = crate::transports::iox::PubSub::parent(len)?;
            drive(side, res, t, len, plan)
        }
        #[allow(unreachable_patterns)]
        _ => bail!("{} is not in this build", t.name()),
    }
}

/// Starts the child for `t`, waits for it to be ready, pings, and lets it exit.
pub fn drive<S: Side>(
    mut side: S,
    res: Resources,
    t: Transport,
    len: usize,
    plan: &Plan,
) -> Result<Timed> {
    let peer = start(res, t, len, plan)?;
    let samples = ping(&mut side, plan).with_context(|| format!("{} ping", t.name()))?;
    peer.finish(Duration::from_secs(10))?;
    Ok(samples)
}

/// Starts the child for `t` and waits until it is ready.
pub fn start(mut res: Resources, t: Transport, len: usize, plan: &Plan) -> Result<Peer> {
    let child_fds = std::mem::take(&mut res.child_fds);
    let job = Job {
        parent: std::process::id(),
        cpu: Some(plan.cpus.1),
        idle_ms: 20_000,
        kind: JobKind::Pong {
            transport: t.name().into(),
            len,
            res,
        },
    };
    let limit = plan.lat_warmup + plan.lat_budget + Duration::from_secs(60);
    let mut peer = Peer::spawn(&job, limit)?;
    drop(child_fds);
    peer.expect("ready", Duration::from_secs(20))?;
    Ok(peer)
}

/// The parent's half: warm up, then time round trips until the budget or the sample cap is
/// reached; then tell the child to stop.
pub fn ping<S: Side>(side: &mut S, plan: &Plan) -> Result<Timed> {
    let samples = ping_loop(plan, |seq| {
        side.send(seq)?;
        side.recv(RT_TIMEOUT)
    })?;
    side.send(STOP)?;
    Ok(samples)
}

/// How long the parent waits for any one reply.
pub const RT_TIMEOUT: Duration = Duration::from_secs(10);

/// The timing loop of [`ping`]: `round_trip(seq)` sends `seq` and returns the number in the reply.
#[inline(always)]
pub fn ping_loop(plan: &Plan, mut round_trip: impl FnMut(u64) -> Result<u64>) -> Result<Timed> {
    let mut timer = Timer::new(plan);
    let mut seq = 0u64;
    loop {
        seq += 1;
        timer.before();
        let got = round_trip(seq)?;
        ensure!(got == seq, "reply {got} to ping {seq}");
        if !timer.after() {
            return Ok(timer.finish());
        }
    }
}

/// Round trips timed one by one, each between two clock reads: what gives p50, p99 and p999.
/// The clock reads leave a gap of ~20-30 ns between round trips, in which the other side can
/// finish work it does after it replied (a review found that this gap hides part of mmf's cost
/// at 64 B), so every block of [`SINGLES`] such round trips is followed by [`BATCH`] more timed
/// as a whole, back to back, with no clock read between them: their mean is the
/// "back-to-back" round trip, for which nothing can hide in gaps.
pub struct Timer {
    warm_until: Instant,
    end: Instant,
    max: usize,
    /// Position in the current block: `0..SINGLES` one by one, then the batch.
    at: usize,
    t0: Instant,
    timed: Timed,
}

/// Round trips timed one by one per block.
pub const SINGLES: usize = 192;
/// Round trips timed together per block.
pub const BATCH: usize = 64;

impl Timer {
    /// A timer for one run of `plan`: warm-up, then its budget or sample cap.
    pub fn new(plan: &Plan) -> Timer {
        let now = Instant::now();
        let warm_until = now + plan.lat_warmup;
        Timer {
            warm_until,
            end: warm_until + plan.lat_budget,
            max: plan.lat_max_samples,
            at: 0,
            t0: now,
            // At 1 MiB a round trip takes ~100 us and more; size for the fast ones, capped.
            timed: Timed {
                samples: Vec::with_capacity(plan.lat_max_samples.min(1 << 18)),
                batches: Vec::new(),
            },
        }
    }

    /// Right before a round trip is started.
    #[inline(always)]
    pub fn before(&mut self) {
        if self.at <= SINGLES {
            // A single, or the first of a batch.
            self.t0 = Instant::now();
        }
    }

    /// Right after its reply arrived; false once the run is complete.
    #[inline(always)]
    pub fn after(&mut self) -> bool {
        let at = self.at;
        self.at = if at + 1 == SINGLES + BATCH { 0 } else { at + 1 };
        if at >= SINGLES && at + 1 < SINGLES + BATCH {
            // Inside a batch: no clock read.
            return true;
        }
        let t1 = Instant::now();
        if self.t0 >= self.warm_until {
            let ns = (t1 - self.t0).as_nanos() as u64;
            if at < SINGLES {
                self.timed.samples.push(ns);
            } else {
                self.timed.batches.push(ns as f64 / BATCH as f64);
            }
            if self.timed.samples.len() >= self.max || t1 >= self.end {
                return false;
            }
        }
        true
    }

    /// What the run measured.
    pub fn finish(self) -> Timed {
        self.timed
    }
}

/// The child's half: answer every message until [`STOP`].
pub fn pong<S: Side>(side: &mut S, idle: Duration) -> Result<()> {
    loop {
        let seq = side.recv(idle)?;
        if seq == STOP {
            return Ok(());
        }
        side.send(seq)?;
    }
}

/// The child's entry for a latency job: open the transport, say "ready", pong.
pub fn child(transport: &str, len: usize, res: Resources, idle: Duration) -> Result<()> {
    let t = Transport::from_name(transport).context("unknown transport")?;
    let ready = || println!("ready");
    match t {
        Transport::FloorLine => {
            let mut s = floor::Line::child(&res)?;
            ready();
            pong(&mut s, idle)
        }
        Transport::Floor => {
            let mut s = floor::Floor::<1>::child(len, &res)?;
            ready();
            pong(&mut s, idle)
        }
        Transport::Floor2 => {
            let mut s = floor::Floor::<2>::child(len, &res)?;
            ready();
            pong(&mut s, idle)
        }
        Transport::FloorMmfCopy => {
            let mut s = floor::Floor::<1, true>::child(len, &res)?;
            ready();
            pong(&mut s, idle)
        }
        Transport::Validated => {
            let mut s = floor::Validated::child(len, &res)?;
            ready();
            pong(&mut s, idle)
        }
        Transport::Futex => {
            let mut s = floor::Futex::child(len, &res)?;
            ready();
            pong(&mut s, idle)
        }
        Transport::Mmf
        | Transport::MmfWait
        | Transport::MmfWaitAny
        | Transport::MmfAsync
        | Transport::MmfStream
        | Transport::MmfFollow => {
            let mut s = mmf::Mmf::child(len, &res, mmf::Arrival::of(t))?;
            ready();
            pong(&mut s, idle)
        }
        Transport::Pipe | Transport::Uds => {
            let mut s = stream::Stream::child(len, &res, t == Transport::Uds)?;
            ready();
            pong(&mut s, idle)
        }
        #[cfg(feature = "seed-peers")]
        Transport::RawSyncBusy | Transport::RawSyncEvent => {
            let mut s = crate::transports::seed::Seed::child(len, &res)?;
            ready();
            pong(&mut s, idle)
        }
        #[cfg(feature = "iceoryx2")]
        Transport::IoxBlackboard => crate::transports::iox::blackboard_child(len, &res, idle),
        #[cfg(feature = "iceoryx2")]
        Transport::IoxPubSub => {
            let mut s = crate::transports::iox::PubSub::child(len, &res)?;
            ready();
            pong(&mut s, idle)
        }
        #[allow(unreachable_patterns)]
        _ => bail!("{transport} is not in this build"),
    }
}

/// `64 B`, `4 KiB`, `1 MiB`.
pub fn fmt_len(len: usize) -> String {
    if len >= 1 << 20 && len % (1 << 20) == 0 {
        format!("{} MiB", len >> 20)
    } else if len >= 1024 && len % 1024 == 0 {
        format!("{} KiB", len >> 10)
    } else {
        format!("{len} B")
    }
}

#[cfg(test)]
mod tests {
    use super::{round_order, Transport};

    #[test]
    fn spinning_transports_run_back_to_back_in_every_round() {
        let here = Transport::ALL;
        let names = |r| -> Vec<&str> {
            round_order(&here, r)
                .into_iter()
                .map(|i| here[i].name())
                .collect()
        };
        let first = names(0);
        assert_eq!(
            first,
            [
                "floor-line",
                "floor",
                "floor-2buf",
                "floor-mmfcopy",
                "floor-validated",
                "mmf",
                "raw_sync-busy",
                "iceoryx2-blackboard",
                "iceoryx2-pubsub",
                "mmf-wait",
                "mmf-wait-any",
                "mmf-async",
                "mmf-stream",
                "mmf-follow",
                "futex",
                "pipe",
                "uds",
                "raw_sync-event",
            ]
        );
        let mut second = names(1);
        second.reverse();
        assert_eq!(second, first, "the next round runs them backwards");
        assert_eq!(names(2), first);
    }
}
