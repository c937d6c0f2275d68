//! Where the host put the benchmark's two CPUs, as a figure a reader can compare across runs and
//! machines: the round trip of one cache line between two threads pinned to them, taken at the
//! start of a run, before each latency size and at the end.
//!
//! Why: on a virtual machine the hypervisor may move the two vCPUs, for minutes at a time, onto
//! cores that share a cache or onto ones that do not. A scratch probe on the Zen 4 host
//! (2026-12-07, stop 69; 296 samples over 150 s) found three levels of this figure: ~100 ns
//! (most samples), 31-40 ns (a few: the vCPUs on one physical core's two threads) and 430-460 ns
//! (the host's "slow mode", in which every spinning transport takes 4-5x as long), while a
//! single CPU's own timings (a `pause` loop, `Instant::now`) stayed the same throughout. So the
//! slow mode is a placement, not a slower machine, and its ratios are true for that placement
//! but not comparable with a run in the other: they shrink towards 1. The latency section's
//! guard (`Report::slow_mode`) sees a run that changed placement from F's rounds; this figure
//! also labels a run that stayed in one placement from start to end, which that guard cannot
//! see (BENCHMARKS.md, Method).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::sys;

/// One probe: when it was taken, and the cache line's round trip (none where it could not be
/// measured: one CPU only, pinning refused, or the partner thread too slow to answer).
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    /// `start`, `before 64 B` (a latency size), `end`.
    pub at: String,
    /// Mean round trip of the median batch, in ns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rt_ns: Option<f64>,
}

/// The run's probes, in the order taken.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Placement {
    /// The two CPUs (this thread is pinned to the first already).
    #[serde(skip)]
    pub cpus: (usize, usize),
    /// Every probe taken.
    pub probes: Vec<Probe>,
}

/// Round trips per batch, and batches per probe: a probe takes 1-10 ms.
const BATCH: u32 = 2_000;
const BATCHES: usize = 5;

/// A probe that has not finished by then gives no figure (both threads on one CPU, where every
/// round trip waits for a time slice).
const PROBE_LIMIT: Duration = Duration::from_millis(300);

/// The largest over the smallest figure of a run beyond which its placement changed: the
/// levels seen on the Zen 4 host are 3-4.5x apart, a run in one placement stays within ~1.3x.
pub const PLACEMENT_CHANGED: f64 = 2.5;

impl Placement {
    /// No probes yet; `cpus` as the harness pins to them, this thread on the first.
    pub fn new(cpus: (usize, usize)) -> Placement {
        Placement {
            cpus,
            probes: Vec::new(),
        }
    }

    /// Takes a probe now, labelled `at`.
    pub fn sample(&mut self, at: impl Into<String>) {
        let rt_ns = line_round_trip(self.cpus);
        self.probes.push(Probe {
            at: at.into(),
            rt_ns,
        });
    }

    /// The smallest and largest figure, if any probe gave one.
    pub fn range(&self) -> Option<(f64, f64)> {
        let mut figures = self.probes.iter().filter_map(|p| p.rt_ns);
        let first = figures.next()?;
        Some(figures.fold((first, first), |(lo, hi), x| (lo.min(x), hi.max(x))))
    }

    /// What the probes say, for the report: the range, and whether the placement changed
    /// during the run (then which probes were the far ones).
    pub fn describe(&self) -> Option<String> {
        let (lo, hi) = self.range()?;
        let n = self.probes.iter().filter(|p| p.rt_ns.is_some()).count();
        let range = if hi - lo < 0.5 {
            format!("{lo:.0} ns")
        } else {
            format!("{lo:.0}-{hi:.0} ns")
        };
        let mut s = format!(
            "placement: one cache line's round trip between the two CPUs {range} ({n} probes: \
             start, before each latency size, end)"
        );
        if hi / lo > PLACEMENT_CHANGED {
            let far: Vec<String> = self
                .probes
                .iter()
                .filter_map(|p| {
                    let x = p.rt_ns?;
                    (x / lo > PLACEMENT_CHANGED).then(|| format!("{} {x:.0} ns", p.at))
                })
                .collect();
            s.push_str(&format!(
                "; the placement changed during the run (the far probes: {}): figures taken in \
                 the two placements are not comparable, and ratios shrink towards 1 in the far \
                 one",
                far.join(", ")
            ));
        } else {
            s.push_str(
                "; one placement throughout: compare the figure with other runs' before \
                 comparing their ratios (BENCHMARKS.md, Method)",
            );
        }
        Some(s)
    }
}

/// One cache line's round trip between this thread (pinned to `cpus.0` by the caller) and a
/// thread pinned to `cpus.1`: two lines, each written by one side, spun on by the other. The
/// median of [`BATCHES`] batch means, after a warm-up batch. `None` with one CPU, where
/// pinning fails, or past [`PROBE_LIMIT`].
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
        let partner = s.spawn(|| {
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
            let mut means = Vec::with_capacity(BATCHES);
            for _ in 0..BATCHES {
                means.push(batch()?);
            }
            means.sort_by(f64::total_cmp);
            Some(means[BATCHES / 2])
        })();
        stop.store(true, Ordering::Relaxed);
        figure
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(figures: &[(&str, Option<f64>)]) -> Placement {
        Placement {
            cpus: (0, 1),
            probes: figures
                .iter()
                .map(|&(at, rt_ns)| Probe {
                    at: at.into(),
                    rt_ns,
                })
                .collect(),
        }
    }

    #[test]
    fn one_placement_is_said_with_its_range() {
        let p = with(&[
            ("start", Some(98.0)),
            ("before 64 B", Some(104.0)),
            ("end", None),
        ]);
        assert_eq!(p.range(), Some((98.0, 104.0)));
        let s = p.describe().unwrap();
        assert!(s.contains("98-104 ns (2 probes"), "{s}");
        assert!(s.contains("one placement throughout"), "{s}");
    }

    #[test]
    fn a_changed_placement_names_the_far_probes() {
        let p = with(&[
            ("start", Some(101.0)),
            ("before 64 B", Some(99.0)),
            ("before 4 KiB", Some(448.0)),
            ("end", Some(452.0)),
        ]);
        let s = p.describe().unwrap();
        assert!(s.contains("99-452 ns"), "{s}");
        assert!(s.contains("changed during the run"), "{s}");
        assert!(
            s.contains("(the far probes: before 4 KiB 448 ns, end 452 ns)"),
            "{s}"
        );
    }

    #[test]
    fn no_figure_no_line() {
        assert!(with(&[("start", None)]).describe().is_none());
        assert!(with(&[]).range().is_none());
    }

    /// A real probe between two threads: a figure where the machine has two CPUs this process
    /// may pin to, none with one CPU given twice.
    #[test]
    fn the_probe_measures_a_round_trip_between_two_cpus() {
        assert_eq!(line_round_trip((0, 0)), None);
        let allowed = sys::allowed_cpus();
        let [a, b, ..] = allowed[..] else {
            // As the other test crates say a part they could not run (CI lists them).
            let line = "mmf-bench placement: the probe between two CPUs (fewer than two allowed)";
            eprintln!("SKIPPED: {line}");
            if let Some(log) = std::env::var_os("MMF_SKIPPED_LOG") {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(log)
                    .unwrap();
                writeln!(f, "{line}").unwrap();
            }
            return;
        };
        // The probe pins the calling thread's partner only; this test thread runs where the
        // test harness put it, which is enough for a figure (not for a good one).
        let rt = std::thread::spawn(move || {
            sys::pin_to_cpu(a).ok()?;
            line_round_trip((a, b))
        })
        .join()
        .unwrap();
        if let Some(rt) = rt {
            assert!(rt.is_finite() && rt > 0.0, "{rt}");
        }
    }
}
