//! Where a round trip's time goes: F, `floor-validated` and mmf between two threads of this
//! process, pinned to the two CPUs, each round trip stamped at six points (`sys::ticks`): A's
//! send, the hand-off to B (until B's spin sees the message), B's copy out, B's send, the
//! hand-off back, A's copy out.
//!
//! The latency section measures whole round trips between two processes; this section says which
//! part of mmf's round trip is longer than F's. The stamps (an `lfence` and a TSC read each) add
//! the same few tens of nanoseconds to both transports' round trips, so read the differences,
//! not the ratio; the ratio is the latency section's. Threads instead of processes change
//! nothing that matters here: both transports go through the same named shared memory as in the
//! latency section (the child side opens it by name), and the two threads run on the two CPUs
//! the processes would.

use std::time::Instant;

use anyhow::{anyhow, ensure, Result};
use serde::Serialize;

use crate::latency::{Split, RT_TIMEOUT};
use crate::transports::{
    floor::{Floor, Validated},
    mmf::{Arrival, Mmf},
};
use crate::{stats, sys, Plan};

/// Mean nanoseconds of each segment of a round trip, over the fastest 90 % of that segment's
/// samples (the rest are interrupts and host preemptions).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Segments {
    /// A's send: the copy in and the publish.
    pub a_send_ns: f64,
    /// From the end of A's send until B's spin sees the message.
    pub to_b_ns: f64,
    /// B's copy out (with mmf: `read_into`).
    pub b_read_ns: f64,
    /// B's send of the answer.
    pub b_send_ns: f64,
    /// From the end of B's send until A's spin sees it.
    pub to_a_ns: f64,
    /// A's copy out.
    pub a_read_ns: f64,
    /// The whole round trip (the same trimmed mean, taken over round trips).
    pub rt_ns: f64,
}

impl Segments {
    pub fn fields(&self) -> [f64; 7] {
        [
            self.a_send_ns,
            self.to_b_ns,
            self.b_read_ns,
            self.b_send_ns,
            self.to_a_ns,
            self.a_read_ns,
            self.rt_ns,
        ]
    }

    fn from_fields(f: [f64; 7]) -> Segments {
        Segments {
            a_send_ns: f[0],
            to_b_ns: f[1],
            b_read_ns: f[2],
            b_send_ns: f[3],
            to_a_ns: f[4],
            a_read_ns: f[5],
            rt_ns: f[6],
        }
    }

    /// Field by field, the median over rounds.
    fn median(rounds: &[Segments]) -> Segments {
        let mut f = [0.0; 7];
        for (i, x) in f.iter_mut().enumerate() {
            *x = stats::median(&rounds.iter().map(|s| s.fields()[i]).collect::<Vec<_>>());
        }
        Segments::from_fields(f)
    }
}

/// The section's result.
#[derive(Debug, Clone, Serialize)]
pub struct Breakdown {
    /// Payload bytes.
    pub payload_bytes: usize,
    /// Round trips timed per round.
    pub round_trips: usize,
    /// Rounds per transport (F, `floor-validated` and mmf alternate).
    pub rounds: usize,
    /// F, field by field the median over rounds.
    pub floor: Segments,
    /// `floor-validated` (F made torn-free: two buffers, mmf's word copies, a flag re-read), the
    /// same: what of mmf's extra any torn-free hand-off pays.
    pub validated: Segments,
    /// mmf, the same.
    pub mmf: Segments,
}

/// Runs F, `floor-validated` and mmf in turn at the smallest of the plan's sizes.
pub fn run(plan: &Plan) -> Result<Breakdown> {
    let len = plan.sizes.iter().copied().min().unwrap_or(64).max(8);
    let (trips, rounds) = if plan.quick {
        (20_000, 3)
    } else {
        (100_000, plan.runs.clamp(1, 7))
    };
    let mut floor = Vec::new();
    let mut validated = Vec::new();
    let mut mmf = Vec::new();
    for _ in 0..rounds {
        let (a, res) = Floor::<1>::parent(len)?;
        let b = Floor::<1>::child(len, &res)?;
        floor.push(trace(a, b, plan.cpus, trips)?);
        let (a, res) = Validated::parent(len)?;
        let b = Validated::child(len, &res)?;
        validated.push(trace(a, b, plan.cpus, trips)?);
        let (a, res) = Mmf::parent(len, Arrival::Spin)?;
        let b = Mmf::child(len, &res, Arrival::Spin)?;
        mmf.push(trace(a, b, plan.cpus, trips)?);
    }
    Ok(Breakdown {
        payload_bytes: len,
        round_trips: trips,
        rounds,
        floor: Segments::median(&floor),
        validated: Segments::median(&validated),
        mmf: Segments::median(&mmf),
    })
}

/// `trips` round trips (after a tenth as many unmeasured) between `a` on this thread and `b` on
/// a second one, pinned to `cpus.0` (where the harness already runs) and `cpus.1`.
fn trace<S: Split + Send>(
    mut a: S,
    mut b: S,
    cpus: (usize, usize),
    trips: usize,
) -> Result<Segments> {
    let warm = trips / 10;
    let total = warm + trips;
    let mut at = vec![[0u64; 4]; total];
    let (clock0, ticks0) = (Instant::now(), sys::ticks());
    let bt = std::thread::scope(|s| -> Result<Vec<[u64; 3]>> {
        let peer = s.spawn(move || -> Result<Vec<[u64; 3]>> {
            sys::pin_to_cpu(cpus.1)?;
            let mut bt = vec![[0u64; 3]; total];
            for r in bt.iter_mut() {
                b.arrived(RT_TIMEOUT)?;
                let u0 = sys::ticks();
                let seq = b.take()?;
                let u1 = sys::ticks();
                b.send(seq)?;
                *r = [u0, u1, sys::ticks()];
            }
            Ok(bt)
        });
        let mine = (|| -> Result<()> {
            for (i, r) in at.iter_mut().enumerate() {
                let seq = i as u64 + 1;
                let t0 = sys::ticks();
                a.send(seq)?;
                let t1 = sys::ticks();
                a.arrived(RT_TIMEOUT)?;
                let t2 = sys::ticks();
                let got = a.take()?;
                let t3 = sys::ticks();
                ensure!(got == seq, "reply {got} to message {seq}");
                *r = [t0, t1, t2, t3];
            }
            Ok(())
        })();
        let theirs = peer
            .join()
            .map_err(|_| anyhow!("the second thread panicked"))?;
        mine?;
        theirs
    })?;
    let ns_per_tick = clock0.elapsed().as_nanos() as f64 / (sys::ticks() - ticks0).max(1) as f64;
    let seg = |f: &dyn Fn(&[u64; 4], &[u64; 3]) -> u64| -> f64 {
        let mut v: Vec<u64> = at[warm..]
            .iter()
            .zip(&bt[warm..])
            .map(|(t, u)| f(t, u))
            .collect();
        v.sort_unstable();
        let keep = &v[..(v.len() * 9 / 10).max(1)];
        keep.iter().sum::<u64>() as f64 / keep.len() as f64 * ns_per_tick
    };
    // Stamps of one CPU against the other's can differ by a few ticks either way; a hand-off
    // that the stamps make negative counts as zero.
    Ok(Segments {
        a_send_ns: seg(&|t, _| t[1] - t[0]),
        to_b_ns: seg(&|t, u| u[0].saturating_sub(t[1])),
        b_read_ns: seg(&|_, u| u[1] - u[0]),
        b_send_ns: seg(&|_, u| u[2] - u[1]),
        to_a_ns: seg(&|t, u| t[2].saturating_sub(u[2])),
        a_read_ns: seg(&|t, _| t[3] - t[2]),
        rt_ns: seg(&|t, _| t[3] - t[0]),
    })
}
