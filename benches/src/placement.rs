//! Where the host put the benchmark's two CPUs, as a figure a reader can compare across runs and
//! machines: the round trip of one cache line between two threads pinned to them, taken at the
//! start of a run, before every latency run and after each size's last, before the breakdown
//! and throughput sections, before every throughput run with readers and after each size's
//! last, and at the end.
//!
//! Why: on a virtual machine the hypervisor may move the two vCPUs, for seconds at a time, onto
//! cores that share a cache or onto ones that do not. A scratch probe on the Zen 4 host
//! (2026-12-07, stop 69; 296 samples over 150 s) found three levels of this figure: 87-164 ns
//! (273 samples), 31-45 ns (20: perhaps one core's two hardware threads) and 432-464 ns (3: the
//! host's "slow mode", in which every spinning transport takes 4-5x as long), while a single
//! CPU's own timings (a `pause` loop, `Instant::now`) in the slow samples were those of the
//! others; a review's 120 probes a quarter second apart found 68 % at ~100 ns, 22 % at 400-460
//! ns in stretches of some 6 s, 10 % at 28-52 ns. So the slowdown is in the path between the two
//! CPUs, not in either (a placement apart, or contention on that path), and the ratios of a run
//! taken there are not comparable with those of a run in the other placement (they shrink
//! towards 1). A spinning transport's latency run with a probe beside it (the one before it,
//! or the next one) over [`PLACEMENT_CHANGED`] times the median of the start's and the latency
//! section's probes is left out of the figures and counted (`latency::run`), as a disturbed run
//! is, unless so many are that the size is unsettled (its spinning bars then not judged); a run
//! that stayed in one placement from start to end is labelled by its figure, which another
//! run's can be compared with (BENCHMARKS.md, Method, "Placement probes"). The throughput
//! section does the same with its runs with readers (`throughput::run`), against the median
//! of every probe up to its end.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::{stats, sys};

/// One probe: when it was taken, and the cache line's round trip (none where it could not be
/// measured: one CPU only, pinning refused, no thread to spare, or the partner thread too slow
/// to answer).
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    /// `start`, `4 KiB round 3 mmf` (before that latency run), `after 4 KiB`, `before
    /// breakdown`, `before throughput`, `end`.
    pub at: String,
    /// Mean round trip of the fastest batch, in ns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rt_ns: Option<f64>,
    /// For the latency and throughput sections' probes: whether it was judged in the far
    /// placement (over [`PLACEMENT_CHANGED`] times the median of the probes up to that
    /// section's end), the verdict the runs beside it got.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub far: Option<bool>,
}

/// The run's probes, in the order taken (the report writes `probes` and `unsettled` to the
/// JSON).
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// The two CPUs (this thread is pinned to the first already); the same CPU twice where
    /// the harness could not pin, so that no probe gives a figure.
    pub cpus: (usize, usize),
    /// Every probe taken.
    pub probes: Vec<Probe>,
    /// The latency sizes whose runs had too many far probes beside them to leave out (size,
    /// far runs, runs; [`settle`]): their spinning bars are not judged.
    pub unsettled: Vec<(usize, usize, usize)>,
    /// The same for the throughput section's runs with readers (`throughput::run`): those
    /// sizes' reader bars are not judged.
    pub tp_unsettled: Vec<(usize, usize, usize)>,
}

/// Round trips per batch, and batches per probe (after a warm-up batch): a probe takes 1-6 ms.
const BATCH: u32 = 2_000;
const BATCHES: usize = 5;

/// A probe that has not finished by then gives no figure (both threads on one CPU, where every
/// round trip waits for a time slice).
const PROBE_LIMIT: Duration = Duration::from_millis(300);

/// A probe over this many times the median it is judged against (`mark_far`, `far_of`) was
/// taken in the far placement: the Zen 4 host's far level (400-460 ns) is 4-4.6x its usual one
/// (~100 ns), which itself stays within ~1.6x. Only upwards: the near level (28-52 ns) is no
/// reason to leave a run out.
pub const PLACEMENT_CHANGED: f64 = 2.5;

impl Placement {
    /// No probes yet; `cpus` as the harness pins to them, this thread on the first.
    pub fn new(cpus: (usize, usize)) -> Placement {
        Placement {
            cpus,
            probes: Vec::new(),
            unsettled: Vec::new(),
            tp_unsettled: Vec::new(),
        }
    }

    /// Takes a probe now, labelled `at`; returns its figure.
    pub fn sample(&mut self, at: impl Into<String>) -> Option<f64> {
        let rt_ns = line_round_trip(self.cpus);
        self.probes.push(Probe {
            at: at.into(),
            rt_ns,
            far: None,
        });
        rt_ns
    }

    /// Judges the probes of `range` against `median` ([`far_of`]), keeping the verdict with
    /// each.
    pub fn mark_far(&mut self, range: std::ops::Range<usize>, median: Option<f64>) {
        for p in &mut self.probes[range] {
            p.far = Some(far_of(p.rt_ns, median));
        }
    }

    /// The median of the figures so far.
    pub fn median(&self) -> Option<f64> {
        let m = stats::median(
            &self
                .probes
                .iter()
                .filter_map(|p| p.rt_ns)
                .collect::<Vec<_>>(),
        );
        m.is_finite().then_some(m)
    }

    /// The smallest and largest figure, if any probe gave one.
    pub fn range(&self) -> Option<(f64, f64)> {
        let mut figures = self.probes.iter().filter_map(|p| p.rt_ns);
        let first = figures.next()?;
        Some(figures.fold((first, first), |(lo, hi), x| (lo.min(x), hi.max(x))))
    }

    /// What the probes say, for the report: the range and the median, and how many probes
    /// found the far placement (over [`PLACEMENT_CHANGED`] times the median).
    pub fn describe(&self) -> Option<String> {
        let (lo, hi) = self.range()?;
        let median = self.median()?;
        let n = self.probes.iter().filter(|p| p.rt_ns.is_some()).count();
        // The verdict a latency or throughput probe got (the runs beside it got the same), or
        // one over the median of all: a probe between the sections, or one the median it was
        // judged against (of the probes up to its section's end) did not find far while the
        // run's does.
        let far = self
            .probes
            .iter()
            .filter(|p| {
                p.far == Some(true) || p.rt_ns.is_some_and(|x| x > PLACEMENT_CHANGED * median)
            })
            .count();
        let range = if hi - lo < 0.5 {
            format!("{lo:.0} ns")
        } else {
            format!("{lo:.0}-{hi:.0} ns, median {median:.0} ns")
        };
        let mut s = format!(
            "placement: one cache line's round trip between the two CPUs {range} ({n} probes)"
        );
        if far > 0 {
            s.push_str(&format!(
                "; {far} in the far placement (over {PLACEMENT_CHANGED}x the median), where \
                 ratios shrink towards 1"
            ));
        } else {
            s.push_str(
                "; one placement throughout: compare the figure with another run's before \
                 comparing their ratios (BENCHMARKS.md, Method)",
            );
        }
        Some(s)
    }
}

/// One size's runs that crossed between the two CPUs, in the order taken, each with the probe
/// taken right before it, and one probe after the last: the `k`-th run lies between probes `k`
/// and `k + 1` (`far_runs`). The latency and throughput sections keep one a size and judge it
/// once the section has ended ([`Probed::settle`]).
#[derive(Debug, Default)]
pub struct Probed {
    /// The runs (index of what ran, round), in the order taken; a failed run too (its probes
    /// bound it, and leaving it out leaves out nothing).
    ran: Vec<(usize, usize)>,
    /// Each probe's figure.
    probes: Vec<Option<f64>>,
    /// The index of the first of them in [`Placement::probes`].
    first: usize,
}

impl Probed {
    /// Takes the probe, labelled `at`, before `run` (index of what runs, round).
    pub fn before(&mut self, placement: &mut Placement, at: String, run: (usize, usize)) {
        if self.probes.is_empty() {
            self.first = placement.probes.len();
        }
        self.probes.push(placement.sample(at));
        self.ran.push(run);
    }

    /// Takes the probe after the last run, labelled `at` (none if nothing ran).
    pub fn after(&mut self, placement: &mut Placement, at: String) {
        if !self.ran.is_empty() {
            self.probes.push(placement.sample(at));
        }
    }

    /// Judges these probes against `median`, keeping each verdict in `placement`.
    pub fn mark(&self, placement: &mut Placement, median: Option<f64>) {
        placement.mark_far(self.first..self.first + self.probes.len(), median);
    }

    /// Which runs to leave out, their probes judged against `median` ([`settle`]); `kept[i]`:
    /// the rounds in which what ran as index `i` has a successful run that may be left out
    /// (none for what is never left out).
    pub fn settle(&self, median: Option<f64>, kept: &[&[usize]]) -> Settle {
        settle(&self.ran, &self.probes, kept, |x| far_of(x, median))
    }
}

/// The runs of `ran` (transport index, round), the `k`-th of them taken between probes `k` and
/// `k + 1` of `probes`, that had a probe beside them in the far placement (`far`): the host
/// may have moved the two CPUs apart at any time between the two probes, so either one in
/// the far placement puts the run there. A failed run is in `ran` too (its probes bound it),
/// and dropping it drops nothing.
fn far_runs(
    ran: &[(usize, usize)],
    probes: &[Option<f64>],
    far: impl Fn(Option<f64>) -> bool,
) -> Vec<(usize, usize)> {
    ran.iter()
        .enumerate()
        .filter(|&(k, _)| {
            far(probes.get(k).copied().flatten()) || far(probes.get(k + 1).copied().flatten())
        })
        .map(|(_, &run)| run)
        .collect()
}

/// What a size's placement probes make of its runs ([`settle`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Settle {
    /// Leave these runs (transport index, round) out: each had a probe beside it in the far
    /// placement (none, where no probe was far).
    Drop(Vec<(usize, usize)>),
    /// `far` of the size's `runs` runs had a far probe beside them: over half of them, or so
    /// many that a transport would keep fewer than two runs. Nothing is left out, and the
    /// size's spinning bars are not judged: the size ran in the far placement as much as in
    /// the other, or the reference itself is in doubt (a median of probes at the ~35 ns level
    /// puts every ~100 ns probe over 2.5x it).
    Unsettled { far: usize, runs: usize },
}

/// [`far_runs`], unless too many runs are far ([`Settle::Unsettled`]). `kept[i]`: the rounds
/// transport `i` has a successful run of.
pub fn settle(
    ran: &[(usize, usize)],
    probes: &[Option<f64>],
    kept: &[&[usize]],
    far: impl Fn(Option<f64>) -> bool,
) -> Settle {
    let out = far_runs(ran, probes, far);
    let unsettled = Settle::Unsettled {
        far: out.len(),
        runs: ran.len(),
    };
    if out.len() * 2 > ran.len() {
        return unsettled;
    }
    for (i, rounds) in kept.iter().enumerate() {
        let lost = out
            .iter()
            .filter(|&&(t, r)| t == i && rounds.contains(&r))
            .count();
        if lost > 0 && rounds.len() - lost < 2 {
            return unsettled;
        }
    }
    Settle::Drop(out)
}

/// Whether figure `rt_ns` lies in the far placement: over [`PLACEMENT_CHANGED`] times
/// `median`. No figure, or none to compare with: not far.
pub fn far_of(rt_ns: Option<f64>, median: Option<f64>) -> bool {
    match (rt_ns, median) {
        (Some(x), Some(m)) => x > PLACEMENT_CHANGED * m,
        _ => false,
    }
}

/// One cache line's round trip between this thread (pinned to `cpus.0` by the caller) and a
/// thread pinned to `cpus.1`: two lines, each written by one side, spun on by the other. The
/// fastest of [`BATCHES`] batch means, after a warm-up batch: the placement sets a floor,
/// which a disturbance (the other CPU busy for a while) only adds to, and the far placement
/// lasts seconds, so every batch of a probe taken in it is slow. `None` with one CPU, where
/// pinning fails or no thread can be started, or past [`PROBE_LIMIT`].
pub fn line_round_trip(cpus: (usize, usize)) -> Option<f64> {
    if cpus.0 == cpus.1 {
        return None;
    }
    #[repr(align(128))]
    struct Line(AtomicU64);
    let (ping, pong) = (Line(AtomicU64::new(0)), Line(AtomicU64::new(0)));
    let (stop, pinned) = (AtomicBool::new(false), AtomicBool::new(false));
    let deadline = Instant::now() + PROBE_LIMIT;
    std::thread::scope(|s| {
        let partner = std::thread::Builder::new().spawn_scoped(s, || {
            if sys::pin_to_cpu(cpus.1).is_err() {
                return;
            }
            pinned.store(true, Ordering::Release);
            let mut seen = 0;
            while !stop.load(Ordering::Relaxed) {
                let v = ping.0.load(Ordering::Acquire);
                if v != seen {
                    seen = v;
                    pong.0.store(v, Ordering::Release);
                }
                std::hint::spin_loop();
            }
        });
        let Ok(partner) = partner else {
            return None;
        };
        let figure = (|| {
            while !pinned.load(Ordering::Acquire) {
                if partner.is_finished() || Instant::now() > deadline {
                    return None;
                }
                std::thread::yield_now();
            }
            let mut i = 0u64;
            let mut batch = || -> Option<f64> {
                let t = Instant::now();
                for _ in 0..BATCH {
                    i += 1;
                    ping.0.store(i, Ordering::Release);
                    let mut spins = 0u32;
                    while pong.0.load(Ordering::Acquire) != i {
                        std::hint::spin_loop();
                        spins = spins.wrapping_add(1);
                        if spins == 0 || (spins % 4096 == 0 && Instant::now() > deadline) {
                            return None;
                        }
                    }
                }
                Some(t.elapsed().as_nanos() as f64 / f64::from(BATCH))
            };
            batch()?;
            let mut fastest = f64::INFINITY;
            for _ in 0..BATCHES {
                fastest = fastest.min(batch()?);
            }
            Some(fastest)
        })();
        stop.store(true, Ordering::Relaxed);
        figure
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run is left out where the probe before it or the one after it (the next run's, or the
    /// size's last) found the far placement; the others stay, a failed run included in the
    /// bookkeeping (its probes bound it).
    #[test]
    fn a_run_beside_a_far_probe_is_left_out() {
        // Rounds 0 and 1 of transports 0 and 1; the probe before round 1's second run (and
        // after its first) is far, and so is the last one.
        let ran = [(0, 0), (1, 0), (1, 1), (0, 1)];
        let probes = [Some(100.0), Some(101.0), Some(450.0), None, Some(99.0)];
        let far = |x: Option<f64>| x.is_some_and(|x| x > 250.0);
        assert_eq!(far_runs(&ran, &probes, far), [(1, 0), (1, 1)]);
        let probes = [Some(100.0), Some(101.0), Some(102.0), None, Some(460.0)];
        assert_eq!(far_runs(&ran, &probes, far), [(0, 1)]);
        let probes = [Some(100.0); 5];
        assert!(far_runs(&ran, &probes, far).is_empty());
    }

    /// Far runs are left out while they are half of the size's runs at most and every
    /// transport keeps two runs; beyond that nothing is left out and the size is unsettled.
    #[test]
    fn too_many_far_runs_leave_the_size_unsettled() {
        let far = |x: Option<f64>| x.is_some_and(|x| x > 250.0);
        // Two transports, three rounds each, in the order run.
        let ran = [(0, 0), (1, 0), (1, 1), (0, 1), (0, 2), (1, 2)];
        let all: [&[usize]; 2] = [&[0, 1, 2], &[0, 1, 2]];
        let near = Some(100.0);
        let away = Some(450.0);
        // The last probe far: one run of six, transport 1 keeps two.
        let one = [near, near, near, near, near, near, away];
        assert_eq!(settle(&ran, &one, &all, far), Settle::Drop(vec![(1, 2)]));
        // Nothing far: nothing left out.
        assert_eq!(settle(&ran, &[near; 7], &all, far), Settle::Drop(vec![]));
        // A far probe between runs 2 and 3 (before run 3): runs 2 and 3 out, a third.
        let two = [near, near, near, away, near, near, near];
        assert_eq!(
            settle(&ran, &two, &all, far),
            Settle::Drop(vec![(1, 1), (0, 1)])
        );
        // Three far runs of six: half, but transport 0 would keep one run of three.
        let three = [near, near, near, away, away, near, near];
        assert_eq!(
            settle(&ran, &three, &all, far),
            Settle::Unsettled { far: 3, runs: 6 }
        );
        // Four of six: over half.
        let four = [near, near, near, away, away, away, near];
        assert_eq!(
            settle(&ran, &four, &all, far),
            Settle::Unsettled { far: 4, runs: 6 }
        );
        // Transport 1's round 1 failed: losing round 2 too leaves it one run.
        let failed: [&[usize]; 2] = [&[0, 1, 2], &[0, 2]];
        assert_eq!(
            settle(&ran, &one, &failed, far),
            Settle::Unsettled { far: 1, runs: 6 }
        );
    }

    impl Placement {
        /// [`far_of`] against the median of every probe.
        fn is_far(&self, rt_ns: Option<f64>) -> bool {
            far_of(rt_ns, self.median())
        }
    }

    fn with(figures: &[(&str, Option<f64>)]) -> Placement {
        Placement {
            cpus: (0, 1),
            probes: figures
                .iter()
                .map(|&(at, rt_ns)| Probe {
                    at: at.into(),
                    rt_ns,
                    far: None,
                })
                .collect(),
            ..Placement::default()
        }
    }

    #[test]
    fn one_placement_is_said_with_its_range() {
        let p = with(&[
            ("start", Some(98.0)),
            ("64 B round 1 floor", Some(104.0)),
            ("64 B round 1 mmf", Some(101.0)),
            ("end", None),
        ]);
        assert_eq!(p.range(), Some((98.0, 104.0)));
        assert_eq!(p.median(), Some(101.0));
        let s = p.describe().unwrap();
        assert!(s.contains("98-104 ns, median 101 ns (3 probes)"), "{s}");
        assert!(s.contains("one placement throughout"), "{s}");
        // The near level (one core's two threads, perhaps) is no change of placement.
        let near = with(&[
            ("start", Some(35.0)),
            ("a", Some(100.0)),
            ("b", Some(101.0)),
        ]);
        assert!(!near.is_far(Some(35.0)) && !near.is_far(Some(101.0)));
        assert!(near
            .describe()
            .unwrap()
            .contains("one placement throughout"));
    }

    /// A probe over 2.5x the median is far, and the line counts such probes; the median, not
    /// the smallest figure, is the reference, so one fast probe does not make the usual ones
    /// far.
    #[test]
    fn far_probes_are_counted_against_the_median() {
        let p = with(&[
            ("start", Some(101.0)),
            ("64 B round 1 floor", Some(30.0)),
            ("64 B round 1 mmf", Some(99.0)),
            ("4 KiB round 1 floor", Some(448.0)),
            ("4 KiB round 1 mmf", Some(102.0)),
            ("end", Some(452.0)),
        ]);
        assert_eq!(p.median(), Some(101.5));
        assert!(p.is_far(Some(448.0)));
        assert!(!p.is_far(Some(101.0)) && !p.is_far(Some(30.0)) && !p.is_far(None));
        let s = p.describe().unwrap();
        assert!(s.contains("30-452 ns, median 102 ns (6 probes)"), "{s}");
        assert!(
            s.contains("; 2 in the far placement (over 2.5x the median"),
            "{s}"
        );
        // A verdict kept with a probe is the one counted: the runs beside it got it.
        let mut p = p;
        p.mark_far(1..3, p.median());
        assert_eq!(p.probes[1].far, Some(false));
        p.probes[1].far = Some(true);
        assert!(p.describe().unwrap().contains("; 3 in the far placement"));
    }

    /// Where probes at the near level (~35 ns) hold the median, every probe at the usual level
    /// is over 2.5x it: judged far, which `latency::settle` then refuses to act on when they
    /// are many (the size is unsettled, not cut down to its near runs).
    #[test]
    fn a_median_at_the_near_level_makes_the_usual_level_far() {
        let p = with(&[
            ("a", Some(35.0)),
            ("b", Some(35.0)),
            ("c", Some(35.0)),
            ("d", Some(100.0)),
            ("e", Some(101.0)),
        ]);
        assert!(p.is_far(Some(101.0)) && !p.is_far(Some(35.0)));
    }

    #[test]
    fn no_figure_no_line() {
        assert!(with(&[("start", None)]).describe().is_none());
        assert!(with(&[]).range().is_none());
        assert!(!with(&[]).is_far(Some(1e9)));
    }

    /// A real probe between two threads: a figure where the machine has two CPUs this process
    /// may pin to (none where the other CPU is too busy to answer within the probe's limit,
    /// said as a skip), none with one CPU given twice.
    #[test]
    fn the_probe_measures_a_round_trip_between_two_cpus() {
        assert_eq!(line_round_trip((0, 0)), None);
        let allowed = sys::allowed_cpus();
        let [a, b, ..] = allowed[..] else {
            skipped("the probe between two CPUs: fewer than two allowed");
            return;
        };
        // As the harness calls it: from a thread pinned to the first CPU; three tries, as a
        // busy machine may keep the other CPU past the probe's limit once.
        let rt = std::thread::spawn(move || {
            if sys::pin_to_cpu(a).is_err() {
                return Err("pinning this thread was refused");
            }
            (0..3)
                .find_map(|_| line_round_trip((a, b)))
                .ok_or("no figure in three tries (the other CPU refused or busy past the limit)")
        })
        .join()
        .unwrap();
        match rt {
            Ok(rt) => assert!(rt.is_finite() && rt > 0.0, "{rt}"),
            Err(why) => skipped(&format!("the probe between two CPUs: {why}")),
        }
    }

    /// As the other test crates' helpers: says a part of a test that did not run, on standard
    /// error and, where `MMF_SKIPPED_LOG` names a file, in a line there (`BINARY TEST: WHY`),
    /// which CI counts and lists; a log it cannot write is no failure.
    fn skipped(why: &str) {
        use std::io::Write;
        eprintln!("SKIPPED: {why}");
        let Some(log) = std::env::var_os("MMF_SKIPPED_LOG") else {
            return;
        };
        let thread = std::thread::current();
        let line = format!("mmf-bench {}: {why}\n", thread.name().unwrap_or("?"));
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .and_then(|mut f| f.write_all(line.as_bytes()));
    }
}
