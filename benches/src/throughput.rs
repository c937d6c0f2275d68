//! Throughput and reader progress: this process publishes back-to-back (pinned to the first CPU)
//! while 0, 1 or 2 reader processes (pinned to the second CPU) copy snapshots as fast as they
//! can. Measured for mmf and, as the reference, for a naive single-buffer seqlock.
//!
//! Per reader: consistent snapshots per second, the share of the generations published during
//! its run that it saw (distinct generations it copied / generations the writer published between
//! the reader's start and stop), and retries per snapshot
//! (`Meta::retries` for mmf, failed validations for the seqlock).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mmf_core::{Channel, Options, Tag};
use serde::{Deserialize, Serialize};

use crate::latency::{self, fmt_len, payload, Transport};
use crate::placement::{Placement, Probed, Settle};
use crate::proc::{Job, JobKind, Peer, Resources};
use crate::seqlock::NaiveSeqlock;
use crate::shm::{SharedMap, LINE};
use crate::stats::{fmt_rate, median, spread_pct, Sample};
use crate::Plan;

/// The fewest back-to-back batches whose median F's round trip before a run is taken from;
/// with fewer, its one-by-one p50.
const MIN_BATCHES: usize = 8;

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// An mmf channel (default options, capacity = payload).
    Mmf,
    /// The naive single-buffer seqlock.
    Seqlock,
}

impl Target {
    /// The name in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Target::Mmf => "mmf",
            Target::Seqlock => "seqlock-naive",
        }
    }
}

/// What one reader reports.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct ReaderStats {
    /// Consistent snapshots completed.
    pub snapshots: u64,
    /// Distinct generations among them.
    pub distinct: u64,
    /// First generation seen.
    pub first_gen: u64,
    /// Last generation seen.
    pub last_gen: u64,
    /// The writer's generation when the reader started counting.
    pub window_start: u64,
    /// The writer's generation when the reader stopped.
    pub window_end: u64,
    /// Retries over all snapshots (and, for the seqlock, over the unfinished last attempt).
    pub retries: u64,
    /// How long the reader ran.
    pub elapsed_ns: u64,
}

impl ReaderStats {
    /// Snapshots per second.
    pub fn rate(&self) -> f64 {
        self.snapshots as f64 / (self.elapsed_ns.max(1) as f64 / 1e9)
    }

    /// Fresh snapshots (distinct generations) per second.
    pub fn fresh_rate(&self) -> f64 {
        self.distinct as f64 / (self.elapsed_ns.max(1) as f64 / 1e9)
    }

    /// Share of the generations published during the reader's run that it saw.
    pub fn seen(&self) -> f64 {
        let published = self.window_end.saturating_sub(self.window_start).max(1);
        (self.distinct as f64 / published as f64).min(1.0)
    }
}

/// One run: the writer's rate and each reader's report.
#[derive(Debug, Clone)]
pub struct TpRun {
    /// Publishes per second.
    pub writes_per_s: f64,
    /// One entry per reader.
    pub readers: Vec<ReaderStats>,
    /// The faster floor's round trip at this size (F's or `floor-mmfcopy`'s, back to back
    /// where enough batches were timed, else p50), both measured right before this run (the
    /// reference for "x 1/F": the host's fast and slow modes last seconds, so a reference taken
    /// minutes earlier in the latency section may come from the other mode). `None` without
    /// readers.
    pub floor_rt_ns: Option<f64>,
    /// The round (0-based) this run belongs to, by which a run beside a far placement probe
    /// is left out ([`TpMeasured::drop_round`]).
    pub round: usize,
}

/// The faster of two floors' round trips (`None` where neither was measured; a figure that is
/// not a positive finite one counts as not measured).
fn faster_floor(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    let ok = |x: Option<f64>| x.filter(|x| x.is_finite() && *x > 0.0);
    match (ok(a), ok(b)) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// All runs of one (target, size, reader count).
pub struct TpMeasured {
    /// What was measured.
    pub target: Target,
    /// Payload bytes.
    pub len: usize,
    /// Concurrent readers.
    pub readers: usize,
    /// Successful runs.
    pub runs: Vec<TpRun>,
    /// Failed runs.
    pub failures: usize,
    /// Runs left out because a placement probe beside them found the far placement (`run`).
    pub far: usize,
}

impl TpMeasured {
    /// Leaves out the run of round `round`, if there is one, counting it in `far`: the
    /// placement probes around it say the host had moved the two CPUs apart meanwhile, so its
    /// reader rate and the floor measured before it may come from different placements.
    pub fn drop_round(&mut self, round: usize) -> bool {
        let Some(k) = self.runs.iter().position(|r| r.round == round) else {
            return false;
        };
        self.runs.remove(k);
        self.far += 1;
        true
    }

    /// Median writes per second over runs.
    pub fn writes_per_s(&self) -> f64 {
        median(&self.runs.iter().map(|r| r.writes_per_s).collect::<Vec<_>>())
    }

    fn per_reader(&self, f: impl Fn(&ReaderStats) -> f64) -> Vec<f64> {
        self.runs
            .iter()
            .flat_map(|r| r.readers.iter().map(&f))
            .collect()
    }

    /// Median over runs and readers of the snapshots per second.
    pub fn reader_rate(&self) -> f64 {
        median(&self.per_reader(ReaderStats::rate))
    }

    /// Median over runs and readers of the reader's `rate` (snapshots per second, or fresh
    /// ones) times the one-way time of the faster floor measured right before that run (F or
    /// `floor-mmfcopy`); `None` without readers or without floor figures.
    pub fn reader_vs_floor(&self, rate: fn(&ReaderStats) -> f64) -> Option<f64> {
        let v: Vec<f64> = self
            .runs
            .iter()
            .filter_map(|r| Some((r, r.floor_rt_ns?)))
            .flat_map(|(r, f)| r.readers.iter().map(move |s| rate(s) * f / 2.0 / 1e9))
            .collect();
        let m = median(&v);
        m.is_finite().then_some(m)
    }

    /// The faster floor's median round trip over the floor measurements that preceded this
    /// measurement's runs.
    pub fn floor_rt_ns(&self) -> Option<f64> {
        let m = median(
            &self
                .runs
                .iter()
                .filter_map(|r| r.floor_rt_ns)
                .collect::<Vec<_>>(),
        );
        m.is_finite().then_some(m)
    }

    /// Median over runs and readers of the fresh snapshots (new generations) per second.
    pub fn fresh_rate(&self) -> f64 {
        median(&self.per_reader(ReaderStats::fresh_rate))
    }

    /// Spread of the reader rates (or of the write rates without readers), in percent.
    pub fn spread(&self) -> f64 {
        if self.readers == 0 {
            spread_pct(&self.runs.iter().map(|r| r.writes_per_s).collect::<Vec<_>>())
        } else {
            spread_pct(&self.per_reader(ReaderStats::rate))
        }
    }

    /// Median share of generations seen.
    pub fn seen(&self) -> f64 {
        median(&self.per_reader(ReaderStats::seen))
    }

    /// Retries per snapshot over all runs and readers (NaN when no snapshot completed).
    pub fn retries_per_snapshot(&self) -> f64 {
        let snaps: u64 = self
            .runs
            .iter()
            .flat_map(|r| &r.readers)
            .map(|s| s.snapshots)
            .sum();
        let retries: u64 = self
            .runs
            .iter()
            .flat_map(|r| &r.readers)
            .map(|s| s.retries)
            .sum();
        if snaps == 0 {
            f64::NAN
        } else {
            retries as f64 / snaps as f64
        }
    }

    /// Each reader's median rate, for the table ("r1 / r2").
    pub fn reader_rates(&self) -> Vec<f64> {
        (0..self.readers)
            .map(|i| {
                median(
                    &self
                        .runs
                        .iter()
                        .filter_map(|r| r.readers.get(i).map(ReaderStats::rate))
                        .collect::<Vec<_>>(),
                )
            })
            .collect()
    }
}

/// Runs every (target, reader count) for each size, interleaved over `plan.tp_runs` runs.
///
/// A placement probe is taken before every run with readers (before the floor that run's
/// reader rate is compared with) and one after each size's last: the floor and the readers
/// cross between the two CPUs, and the host's far placement (`placement`) slows both, by
/// different amounts, for seconds at a time. Once the section ends its probes are judged
/// against the median of every probe of the run so far, and a run with readers with a far
/// probe beside it is left out, as the latency section does (`placement::settle`: not with
/// fewer than three runs, and where too many are far the size's reader bar is not judged:
/// `Placement::tp_unsettled`). Runs without readers have no probe: one CPU works alone.
pub fn run(plan: &Plan, placement: &mut Placement) -> Vec<TpMeasured> {
    // Each size's measurements, and its runs with readers (case index, round) with their
    // probes, judged once every size has run.
    let mut sizes = Vec::new();
    let cases: Vec<(Target, usize)> = [Target::Mmf, Target::Seqlock]
        .into_iter()
        .flat_map(|t| (0..=2).map(move |r| (t, r)))
        .collect();
    for &len in &plan.sizes {
        let mut got: Vec<TpMeasured> = cases
            .iter()
            .map(|&(target, readers)| TpMeasured {
                target,
                len,
                readers,
                runs: Vec::new(),
                failures: 0,
                far: 0,
            })
            .collect();
        let mut probed = Probed::default();
        // F for `x 1/F`: a short ping-pong right before every run with readers, so that the
        // two figures share the host's mode (which lasts seconds).
        let floor_plan = Plan {
            lat_warmup: plan.lat_warmup.min(Duration::from_millis(10)),
            lat_budget: plan.lat_budget.min(Duration::from_millis(60)),
            ..plan.clone()
        };
        for r in 0..plan.tp_runs {
            let mut order: Vec<usize> = (0..cases.len()).collect();
            if r % 2 == 1 {
                order.reverse();
            }
            for i in order {
                let (target, readers) = cases[i];
                // The faster of F and F through mmf's copies, as the latency bars take it
                // (`Report::versus_floor`): where mmf's copy is the faster (4 KiB on the Zen 4
                // host), F's `memcpy` alone made the rate a payload crosses at lower than the
                // minimal transfer's.
                let floor_rt_ns = if readers == 0 {
                    None
                } else {
                    let at = format!(
                        "{} throughput round {} {} {readers}r",
                        fmt_len(len),
                        r + 1,
                        target.name()
                    );
                    probed.before(placement, at, (i, r));
                    let measure = |t: Transport| match latency::round(t, len, &floor_plan) {
                        // Back to back when enough batches were timed (no clock read between
                        // round trips, see `latency::Timer`): the rate at which F moves
                        // payloads, which the one-by-one p50 understates by the cost of a clock
                        // read. Else the p50: in 60 ms a 1 MiB F times one or two batches, and
                        // one stalled batch once made F's round trip 322 us where the latency
                        // section's was 91 us (the clock read is nothing at that size).
                        Ok(timed) => {
                            let batches = timed.batches.len();
                            let s = Sample::of(timed);
                            Some(if batches >= MIN_BATCHES && s.b2b.is_finite() {
                                s.b2b
                            } else {
                                s.p50
                            })
                        }
                        Err(e) => {
                            eprintln!(
                                "  {} {}: run {} failed: {e:#}",
                                t.name(),
                                fmt_len(len),
                                r + 1
                            );
                            None
                        }
                    };
                    faster_floor(measure(Transport::Floor), measure(Transport::FloorMmfCopy))
                };
                match round(target, len, readers, plan) {
                    Ok(run) => got[i].runs.push(TpRun {
                        floor_rt_ns,
                        round: r,
                        ..run
                    }),
                    Err(e) => {
                        eprintln!(
                            "  {} {} {readers}r: run {} failed: {e:#}",
                            target.name(),
                            fmt_len(len),
                            r + 1
                        );
                        got[i].failures += 1;
                    }
                }
            }
        }
        probed.after(placement, format!("after {} throughput", fmt_len(len)));
        sizes.push((len, got, probed));
    }
    let median = placement.median();
    let mut out = Vec::new();
    for (len, mut got, probed) in sizes {
        probed.mark(placement, median);
        // Not with fewer than three runs a case (`--smoke`, `--runs 1` or `2`): a run left out
        // there would leave one run or none.
        if plan.tp_runs >= 3 {
            if let Some((far, runs)) = leave_out_far(&mut got, |kept| probed.settle(median, kept)) {
                placement.tp_unsettled.push((len, far, runs));
            }
        }
        for m in &got {
            eprintln!(
                "  {:<14} {:>8} {} readers: writes {} reader {} seen {:.0}% retries/snap {:.3}",
                m.target.name(),
                fmt_len(len),
                m.readers,
                fmt_rate(m.writes_per_s()),
                fmt_rate(m.reader_rate()),
                m.seen() * 100.0,
                m.retries_per_snapshot()
            );
        }
        out.extend(got);
    }
    out
}

/// Leaves out of one size's measurements `got` the runs with readers (index into `got`,
/// round) that `settle` finds beside a far placement probe, given the rounds each measurement
/// has a run of (none for those without readers, which are never left out; see
/// `placement::settle`); where too many are, leaves nothing out and returns (far runs, runs
/// with readers).
fn leave_out_far(
    got: &mut [TpMeasured],
    settle: impl FnOnce(&[&[usize]]) -> Settle,
) -> Option<(usize, usize)> {
    let rounds: Vec<Vec<usize>> = got
        .iter()
        .map(|m| {
            if m.readers == 0 {
                Vec::new()
            } else {
                m.runs.iter().map(|r| r.round).collect()
            }
        })
        .collect();
    let kept: Vec<&[usize]> = rounds.iter().map(Vec::as_slice).collect();
    match settle(&kept) {
        Settle::Drop(out) => {
            for (i, r) in out {
                got[i].drop_round(r);
            }
            None
        }
        Settle::Unsettled { far, runs } => Some((far, runs)),
    }
}

/// The control words: "go" at 0, "stop" at [`LINE`].
const GO: usize = 0;
const STOP: usize = LINE;
/// The naive seqlock's mapping: the stamp at 0, the payload from 4096.
const SEQ_DATA: usize = 4096;

enum Writer {
    Mmf(Box<Channel>, String),
    Seqlock(SharedMap),
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Writer::Mmf(_, name) = self {
            let _ = Channel::remove(name);
        }
    }
}

/// One run: set up, start the readers, publish back-to-back for `plan.tp_duration`, stop.
pub fn round(target: Target, len: usize, readers: usize, plan: &Plan) -> Result<TpRun> {
    let ctl = SharedMap::create(4096)?;
    let mut res = Resources {
        paths: vec![ctl.path().to_owned()],
        ..Resources::default()
    };
    let writer = match target {
        Target::Mmf => {
            let name = format!("bench-{}-{}-tp", std::process::id(), crate::shm::next_id());
            let ch = Options::new()
                .capacity(len)
                .create(&name)
                .with_context(|| format!("creating {name}"))?;
            res.names.push(name.clone());
            Writer::Mmf(Box::new(ch), name)
        }
        Target::Seqlock => {
            let map = SharedMap::create(SEQ_DATA + len.div_ceil(8) * 8)?;
            res.paths.push(map.path().to_owned());
            Writer::Seqlock(map)
        }
    };
    // A value there before the readers start (the seqlock's buffer written once): a new
    // channel's first publish of a large value takes milliseconds of page faults, during which
    // readers counted reads of the empty channel as snapshots (a review found 763 in one 1 MiB
    // run, most of its reader rate). Publishing twice per slot writes the slots the writer's
    // rotation uses while no reader pins one (two, for values of a few KiB and up); those a
    // pinning reader sends it to fault at their first use during the run, as in use.
    let msg = payload(len);
    match &writer {
        Writer::Mmf(ch, _) => {
            for _ in 0..2 * ch.info().slots {
                ch.publish_raw(Tag::BYTES, msg.as_slice())?;
            }
        }
        Writer::Seqlock(map) => {
            NaiveSeqlock::new(map.u64_at(0), map.words(SEQ_DATA, len.div_ceil(8)))
                .write(msg.as_slice());
        }
    }
    let mut peers = Vec::new();
    for _ in 0..readers {
        let job = Job {
            parent: std::process::id(),
            cpu: Some(plan.cpus.1),
            idle_ms: 30_000,
            kind: JobKind::Reader {
                target: target.name().into(),
                len,
                res: Resources {
                    paths: res.paths.clone(),
                    names: res.names.clone(),
                    ..Resources::default()
                },
            },
        };
        let mut peer = Peer::spawn(&job, plan.tp_duration + Duration::from_secs(60))?;
        peer.expect("ready", Duration::from_secs(20))?;
        peers.push(peer);
    }
    ctl.u64_at(GO).store(1, Ordering::Release);
    let start = Instant::now();
    let mut writes = 0u64;
    match &writer {
        Writer::Mmf(ch, _) => loop {
            ch.publish_raw(Tag::BYTES, msg.as_slice())?;
            writes += 1;
            if writes % 16 == 0 && start.elapsed() >= plan.tp_duration {
                break;
            }
        },
        Writer::Seqlock(map) => {
            let lock = NaiveSeqlock::new(map.u64_at(0), map.words(SEQ_DATA, len.div_ceil(8)));
            loop {
                lock.write(msg.as_slice());
                writes += 1;
                if writes % 16 == 0 && start.elapsed() >= plan.tp_duration {
                    break;
                }
            }
        }
    }
    let elapsed = start.elapsed();
    ctl.u64_at(STOP).store(1, Ordering::Release);
    let mut stats = Vec::new();
    for mut peer in peers {
        let line = peer.expect("result", Duration::from_secs(20))?;
        if plan.verbose {
            eprintln!("    reader: {line}");
        }
        stats.push(serde_json::from_str::<ReaderStats>(&line)?);
        peer.finish(Duration::from_secs(10))?;
    }
    drop(writer);
    Ok(TpRun {
        writes_per_s: writes as f64 / elapsed.as_secs_f64(),
        readers: stats,
        floor_rt_ns: None,
        round: 0,
    })
}

/// The reader child: open, say "ready", wait for "go", read until "stop", print the counts.
pub fn child(target: &str, len: usize, res: &Resources, idle: Duration) -> Result<()> {
    let Some(ctl_path) = res.paths.first() else {
        bail!("no control mapping given");
    };
    let ctl = SharedMap::open(ctl_path)?;
    let (go, stop) = (ctl.u64_at(GO), ctl.u64_at(STOP));
    let stopped = || stop.load(Ordering::Relaxed) != 0;
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    let mut s = ReaderStats::default();
    let see = |gen: u64, s: &mut ReaderStats| {
        if gen != s.last_gen {
            s.distinct += 1;
            if s.first_gen == 0 {
                s.first_gen = gen;
            }
            s.last_gen = gen;
        }
    };
    let wait_go = || -> Result<Instant> {
        let t = Instant::now();
        while go.load(Ordering::Acquire) == 0 {
            if t.elapsed() > idle {
                bail!("no go within {idle:?}");
            }
            std::thread::yield_now();
        }
        Ok(Instant::now())
    };
    let t0;
    match target {
        "mmf" => {
            let Some(name) = res.names.first() else {
                bail!("no channel name given");
            };
            let ch = Channel::open(name)?;
            println!("ready");
            t0 = wait_go()?;
            s.window_start = ch.generation();
            if s.window_start == 0 {
                bail!("the channel holds no value at go: the writer publishes before it");
            }
            while !stopped() {
                let m = ch.read_into(&mut buf)?;
                // Completed once the writer had stopped: not a snapshot taken under it.
                if stopped() {
                    break;
                }
                s.snapshots += 1;
                s.retries += u64::from(m.retries);
                see(m.generation, &mut s);
            }
            s.window_end = ch.generation();
        }
        "seqlock-naive" => {
            let Some(path) = res.paths.get(1) else {
                bail!("no seqlock mapping given");
            };
            let map = SharedMap::open(path)?;
            let lock = NaiveSeqlock::new(map.u64_at(0), map.words(SEQ_DATA, len.div_ceil(8)));
            println!("ready");
            t0 = wait_go()?;
            let stamp = map.u64_at(0);
            s.window_start = stamp.load(Ordering::Relaxed) / 2;
            let mut failed = 0u64;
            while !stopped() {
                let mut tries = 0u64;
                let got = lock.read(len, &mut buf, || {
                    tries += 1;
                    stopped()
                });
                match got {
                    // Completed once the writer had stopped: not taken under it (a seqlock
                    // that never completes a read under a writer counted one a run, the
                    // final value: "5 snapshots/s").
                    Some(_) if stopped() => break,
                    Some((gen, retries)) => {
                        s.snapshots += 1;
                        s.retries += retries;
                        see(gen, &mut s);
                    }
                    None => failed += tries,
                }
            }
            s.window_end = stamp.load(Ordering::Relaxed) / 2;
            // Attempts of the last, unfinished read count as retries too: a reader that never
            // completes shows its futile work.
            s.retries += failed;
        }
        other => bail!("unknown reader target {other}"),
    }
    s.elapsed_ns = t0.elapsed().as_nanos() as u64;
    println!("result {}", serde_json::to_string(&s)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement;

    /// One size's measurements: the writer alone and with one reader, a successful run in each
    /// of `rounds` (a reader run's floor figure is its round, to tell the runs apart).
    fn measured(rounds: &[usize]) -> Vec<TpMeasured> {
        (0..=1)
            .map(|readers| TpMeasured {
                target: Target::Mmf,
                len: 64,
                readers,
                runs: rounds
                    .iter()
                    .map(|&round| TpRun {
                        writes_per_s: 1e7,
                        readers: vec![ReaderStats::default(); readers],
                        floor_rt_ns: (readers > 0).then_some(round as f64),
                        round,
                    })
                    .collect(),
                failures: 0,
                far: 0,
            })
            .collect()
    }

    /// A run with readers beside a far probe is left out and counted; the writer alone has no
    /// probe and keeps every run; a far probe between two runs puts both out.
    #[test]
    fn a_reader_run_beside_a_far_probe_is_left_out() {
        let far = |x: Option<f64>| x.is_some_and(|x| x > 250.0);
        let mut got = measured(&[0, 1, 2, 3, 4, 5, 6]);
        // The reader case ran in rounds 0-6; probe k before run k, probe 7 after the last.
        let ran: Vec<(usize, usize)> = (0..7).map(|r| (1, r)).collect();
        let mut probes = vec![Some(100.0); 8];
        probes[3] = Some(450.0);
        let settled = |kept: &[&[usize]]| placement::settle(&ran, &probes, kept, far);
        assert_eq!(leave_out_far(&mut got, settled), None);
        assert_eq!(got[0].runs.len(), 7);
        assert_eq!((got[0].far, got[1].far), (0, 2));
        let left: Vec<usize> = got[1].runs.iter().map(|r| r.round).collect();
        assert_eq!(left, [0, 1, 4, 5, 6]);
        // The reference is left to the runs kept: rounds 2 and 3's floors are gone.
        assert_eq!(got[1].floor_rt_ns(), Some(4.0));
        // A missing round drops nothing.
        assert!(!got[1].drop_round(3));
    }

    /// Over half of a size's runs with readers beside a far probe: nothing is left out and the
    /// size is reported unsettled (its reader bar then not judged).
    #[test]
    fn too_many_far_reader_runs_leave_the_size_unsettled() {
        let far = |x: Option<f64>| x.is_some_and(|x| x > 250.0);
        let mut got = measured(&[0, 1, 2, 3, 4]);
        let ran: Vec<(usize, usize)> = (0..5).map(|r| (1, r)).collect();
        let probes = [100.0, 100.0, 460.0, 440.0, 100.0, 100.0].map(Some);
        let settled = |kept: &[&[usize]]| placement::settle(&ran, &probes, kept, far);
        assert_eq!(leave_out_far(&mut got, settled), Some((3, 5)));
        assert_eq!((got[1].runs.len(), got[1].far), (5, 0));
    }

    /// The reader bar's reference is the faster floor of the two measured before a run, and a
    /// floor that gave no usable figure leaves the other.
    #[test]
    fn the_reader_bar_takes_the_faster_floor() {
        assert_eq!(faster_floor(Some(1000.0), Some(880.0)), Some(880.0));
        assert_eq!(faster_floor(Some(120.0), Some(160.0)), Some(120.0));
        assert_eq!(faster_floor(None, Some(880.0)), Some(880.0));
        assert_eq!(faster_floor(Some(f64::NAN), Some(880.0)), Some(880.0));
        assert_eq!(faster_floor(Some(1000.0), Some(0.0)), Some(1000.0));
        assert_eq!(faster_floor(None, None), None);
    }
}
