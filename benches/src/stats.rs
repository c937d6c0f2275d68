//! Percentiles of one run, and medians with their spread over several runs.

/// The percentiles of one run's round-trip samples, in nanoseconds.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// How many samples.
    pub n: usize,
    /// Back-to-back: the median over batches of consecutive round trips timed as a whole (no
    /// clock read between them) of the mean round trip; NaN when none was timed so.
    pub b2b: f64,
}

/// What one run's timing loop measured (see `latency::Timer`).
#[derive(Debug, Default)]
pub struct Timed {
    /// Round trips timed one by one, in nanoseconds.
    pub samples: Vec<u64>,
    /// Mean round trip of each back-to-back batch, in nanoseconds.
    pub batches: Vec<f64>,
}

/// Batches a run must have timed for its back-to-back figure to count: with one, a single
/// preemption inside it decided the figure (a review's loaded quick run: 219 us against F's
/// 22 us at 64 KiB, one batch each, and a "miss" where the one-by-one ratio was 0.76).
pub const MIN_B2B_BATCHES: usize = 2;

/// A run whose p50 is more than this many times the median of its transport's other runs was
/// disturbed: the machine ran something else on the benchmark's CPUs for much of it (a review's
/// loaded run: 12 ms round trips against 0.3 us, ten samples). Such runs are left out of the
/// figures and counted (`Runs::disturbed`), for every transport alike. Against the median, not
/// the best run: one lucky run of a blocking transport (whose time depends on how deeply the
/// idle CPU slept) must not make all the typical ones look disturbed.
pub const DISTURBED: f64 = 4.0;

impl Sample {
    /// The percentiles of the one-by-one samples and the median of the batches (NaN with fewer
    /// than [`MIN_B2B_BATCHES`]).
    pub fn of(t: Timed) -> Sample {
        let mut samples = t.samples;
        samples.sort_unstable();
        Sample {
            p50: percentile(&samples, 0.50),
            p99: percentile(&samples, 0.99),
            p999: percentile(&samples, 0.999),
            n: samples.len(),
            b2b: if t.batches.len() >= MIN_B2B_BATCHES {
                median(&t.batches)
            } else {
                f64::NAN
            },
        }
    }
}

/// Nearest-rank percentile of sorted samples; NaN when there are none.
pub fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

/// The median of some values (mean of the middle two for an even count); NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Spread of values around their median: (max - min) / median, in percent.
pub fn spread_pct(values: &[f64]) -> f64 {
    let m = median(values);
    let v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.len() < 2 || m == 0.0 || m.is_nan() {
        return 0.0;
    }
    let max = v.iter().copied().fold(f64::MIN, f64::max);
    let min = v.iter().copied().fold(f64::MAX, f64::min);
    (max - min) / m * 100.0
}

/// The runs of one latency measurement.
#[derive(Debug, Clone, Default)]
pub struct Runs {
    /// One entry per successful run.
    pub runs: Vec<Sample>,
    /// The round each entry of `runs` was measured in (rounds interleave the transports).
    pub rounds: Vec<usize>,
    /// Runs that failed (reported, not hidden).
    pub failures: usize,
    /// Runs left out as disturbed ([`Runs::drop_disturbed`]; reported, not hidden).
    pub disturbed: usize,
    /// Runs left out as taken in the far placement ([`Runs::drop_round`], see `placement`;
    /// reported, not hidden).
    pub far: usize,
}

impl Runs {
    /// Adds the run of round `round`.
    pub fn push(&mut self, round: usize, s: Sample) {
        self.runs.push(s);
        self.rounds.push(round);
    }

    /// Leaves out the run of round `round`, if there is one, counting it in `far`: the
    /// placement probes around it say the host had moved the two CPUs apart meanwhile.
    pub fn drop_round(&mut self, round: usize) -> bool {
        let Some(k) = self.rounds.iter().position(|&r| r == round) else {
            return false;
        };
        self.rounds.remove(k);
        self.runs.remove(k);
        self.far += 1;
        true
    }

    /// Leaves out the runs whose p50 is over [`DISTURBED`] times the median of the other runs'
    /// p50s (the others': with two runs, the median of both could never be exceeded so),
    /// counting them in `disturbed`; returns how many.
    pub fn drop_disturbed(&mut self) -> usize {
        let keep: Vec<bool> = (0..self.runs.len())
            .map(|i| {
                let others: Vec<f64> = (0..self.runs.len())
                    .filter(|&j| j != i)
                    .map(|j| self.runs[j].p50)
                    .collect();
                let typical = median(&others);
                let p50 = self.runs[i].p50;
                p50.is_nan() || typical.is_nan() || p50 <= DISTURBED * typical
            })
            .collect();
        let mut flags = keep.iter();
        self.runs.retain(|_| *flags.next().unwrap());
        let mut flags = keep.iter();
        self.rounds.retain(|_| *flags.next().unwrap());
        let dropped = keep.iter().filter(|k| !**k).count();
        self.disturbed += dropped;
        dropped
    }

    /// Median over the rounds both measured of this run's p50 over `base`'s p50 in the same
    /// round. The host's fast and slow modes last seconds and hit every transport of a round
    /// alike, so this ratio moves far less from one full run to the next than the ratio of the
    /// two medians, which can pair a fast-mode median with a slow-mode one.
    pub fn paired(&self, base: &Runs) -> Option<f64> {
        self.paired_by(base, |s| s.p50)
    }

    /// [`paired`](Runs::paired) for the back-to-back figure.
    pub fn paired_b2b(&self, base: &Runs) -> Option<f64> {
        self.paired_by(base, |s| s.b2b)
    }

    fn paired_by(&self, base: &Runs, key: fn(&Sample) -> f64) -> Option<f64> {
        let ratios: Vec<f64> = self
            .rounds
            .iter()
            .zip(&self.runs)
            .filter_map(|(r, s)| {
                let b = base.rounds.iter().position(|x| x == r)?;
                let d = key(&base.runs[b]);
                (d > 0.0).then(|| key(s) / d)
            })
            .collect();
        let m = median(&ratios);
        m.is_finite().then_some(m)
    }

    /// Median over runs of each run's back-to-back round trip (NaN if none was timed so).
    pub fn b2b(&self) -> f64 {
        median(&self.runs.iter().map(|s| s.b2b).collect::<Vec<_>>())
    }

    /// Median over runs of each run's p50.
    pub fn p50(&self) -> f64 {
        median(&self.runs.iter().map(|s| s.p50).collect::<Vec<_>>())
    }

    /// Median over runs of each run's p99.
    pub fn p99(&self) -> f64 {
        median(&self.runs.iter().map(|s| s.p99).collect::<Vec<_>>())
    }

    /// Median over runs of each run's p99.9.
    pub fn p999(&self) -> f64 {
        median(&self.runs.iter().map(|s| s.p999).collect::<Vec<_>>())
    }

    /// The lowest p50 of any run: what the transport does when the machine leaves it alone.
    pub fn best(&self) -> f64 {
        self.runs
            .iter()
            .map(|s| s.p50)
            .fold(f64::NAN, |a, b| if a.is_nan() || b < a { b } else { a })
    }

    /// Spread of the runs' p50s, in percent of their median.
    pub fn spread(&self) -> f64 {
        spread_pct(&self.runs.iter().map(|s| s.p50).collect::<Vec<_>>())
    }

    /// Median number of samples per run.
    pub fn samples(&self) -> usize {
        median(&self.runs.iter().map(|s| s.n as f64).collect::<Vec<_>>()) as usize
    }

    /// A one-line summary for progress output.
    pub fn brief(&self) -> String {
        if self.runs.is_empty() {
            return format!("no successful run ({} failed)", self.failures);
        }
        format!(
            "RT p50 {} p99 {} p999 {} (±{:.0}%, {} runs x ~{} samples{})",
            fmt_ns(self.p50()),
            fmt_ns(self.p99()),
            fmt_ns(self.p999()),
            self.spread() / 2.0,
            self.runs.len(),
            self.samples(),
            if self.failures > 0 {
                format!(", {} failed", self.failures)
            } else {
                String::new()
            } + &if self.disturbed > 0 {
                format!(
                    ", {} left out: p50 over {DISTURBED}x the other runs' median",
                    self.disturbed
                )
            } else {
                String::new()
            } + &if self.far > 0 {
                format!(", {} left out: probed in the far placement", self.far)
            } else {
                String::new()
            }
        )
    }
}

/// A duration in nanoseconds with a readable unit: `287 ns`, `1.48 us`, `134 us`, `1.2 ms`.
pub fn fmt_ns(ns: f64) -> String {
    if ns.is_nan() {
        "-".into()
    } else if ns < 1_000.0 {
        format!("{ns:.0} ns")
    } else if ns < 10_000.0 {
        format!("{:.2} us", ns / 1e3)
    } else if ns < 1_000_000.0 {
        format!("{:.1} us", ns / 1e3)
    } else if ns < 10_000_000.0 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.1} ms", ns / 1e6)
    }
}

/// A rate with a readable unit: `12.3 M/s`, `456 k/s`.
pub fn fmt_rate(per_s: f64) -> String {
    if per_s.is_nan() {
        "-".into()
    } else if per_s >= 1e6 {
        format!("{:.2} M/s", per_s / 1e6)
    } else if per_s >= 1e3 {
        format!("{:.1} k/s", per_s / 1e3)
    } else {
        format!("{per_s:.0} /s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let s: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&s, 0.5), 500.0);
        assert_eq!(percentile(&s, 0.99), 990.0);
        assert_eq!(percentile(&s, 0.999), 999.0);
        assert_eq!(percentile(&[7], 0.999), 7.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn median_and_spread() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(spread_pct(&[90.0, 100.0, 110.0]), 20.0);
        assert_eq!(spread_pct(&[5.0]), 0.0);
    }

    /// A run whose every percentile is `p50`, with no back-to-back figure.
    fn sample(p50: f64) -> Sample {
        Sample {
            p50,
            p99: p50,
            p999: p50,
            n: 1,
            b2b: f64::NAN,
        }
    }

    #[test]
    fn paired_ratios_match_rounds_and_skip_missing_ones() {
        let s = sample;
        let mut f = Runs::default();
        let mut m = Runs::default();
        // Round 0 slow, 1 fast, 2 failed for F, 3 fast: the medians pair 100 with 400 (ratio
        // 4.0 or 0.25 depending on the mix), the rounds give 2.0 every time.
        for (r, v) in [(0, 400.0), (1, 100.0), (3, 100.0)] {
            f.push(r, s(v));
        }
        for (r, v) in [(0, 800.0), (1, 200.0), (2, 150.0), (3, 200.0)] {
            m.push(r, s(v));
        }
        assert_eq!(m.paired(&f), Some(2.0));
        assert_eq!(Runs::default().paired(&f), None);
    }

    /// A run of the far placement is left out by its round (not by its position: round 1 of
    /// this transport failed), counted, and pairs with nothing afterwards.
    #[test]
    fn a_far_run_is_left_out_by_its_round_and_counted() {
        let s = sample;
        let mut f = Runs::default();
        let mut m = Runs::default();
        for (r, v) in [(0, 100.0), (2, 400.0), (3, 100.0)] {
            f.push(r, s(v));
        }
        for (r, v) in [(0, 120.0), (1, 120.0), (2, 410.0), (3, 130.0)] {
            m.push(r, s(v));
        }
        assert!(f.drop_round(2));
        assert!(!f.drop_round(1), "round 1 failed: nothing to leave out");
        assert_eq!((f.rounds.clone(), f.far, f.runs.len()), (vec![0, 3], 1, 2));
        assert_eq!(f.p50(), 100.0);
        // mmf keeps its round 2, which now pairs with nothing: 1.2 and 1.3.
        assert_eq!(m.paired(&f), Some(1.25));
        assert!(
            f.brief()
                .contains("1 left out: probed in the far placement"),
            "{}",
            f.brief()
        );
    }

    #[test]
    fn disturbed_runs_are_left_out_with_their_rounds_and_counted() {
        let s = sample;
        let mut f = Runs::default();
        let mut m = Runs::default();
        for (r, v) in [(0, 100.0), (1, 110.0), (2, 12_000.0), (3, 105.0)] {
            f.push(r, s(v));
        }
        // Round 1 disturbed for mmf alone: round 2, disturbed for F, pairs with nothing.
        for (r, v) in [(0, 120.0), (1, 900.0), (2, 130.0), (3, 126.0)] {
            m.push(r, s(v));
        }
        assert_eq!((f.drop_disturbed(), m.drop_disturbed()), (1, 1));
        assert_eq!(
            (f.rounds.clone(), m.rounds.clone()),
            (vec![0, 1, 3], vec![0, 2, 3])
        );
        assert_eq!((f.disturbed, f.runs.len()), (1, 3));
        assert_eq!(m.paired(&f), Some(1.2));
        assert_eq!(f.p50(), 105.0);
        assert!(m.brief().contains("1 left out"), "{}", m.brief());
        // One lucky run (a blocking transport's idle CPU that did not sleep deeply) leaves the
        // typical ones in: a review's [60, 62, 65, 64, 14] us dropped four against the best.
        let mut w = Runs::default();
        for (r, v) in [(0, 60e3), (1, 62e3), (2, 65e3), (3, 64e3), (4, 14e3)] {
            w.push(r, s(v));
        }
        assert_eq!(w.drop_disturbed(), 0);
        // Two runs: the disturbed one goes (against the median of both, it never could).
        let mut two = Runs::default();
        for (r, v) in [(0, 12_000.0), (1, 100.0)] {
            two.push(r, s(v));
        }
        assert_eq!((two.drop_disturbed(), two.rounds.clone()), (1, vec![1]));
        let mut one = Runs::default();
        one.push(0, s(5.0));
        assert_eq!(one.drop_disturbed(), 0);
    }

    #[test]
    fn a_single_batch_gives_no_back_to_back_figure() {
        let timed = |batches: Vec<f64>| Timed {
            samples: vec![100, 200, 300],
            batches,
        };
        assert!(Sample::of(timed(vec![2000.0])).b2b.is_nan());
        assert_eq!(Sample::of(timed(vec![150.0, 170.0])).b2b, 160.0);
        assert_eq!(Sample::of(timed(vec![])).p50, 200.0);
    }

    #[test]
    fn units() {
        assert_eq!(fmt_ns(287.0), "287 ns");
        assert_eq!(fmt_ns(1480.0), "1.48 us");
        assert_eq!(fmt_ns(134_000.0), "134.0 us");
        assert_eq!(fmt_rate(12_300_000.0), "12.30 M/s");
    }
}
