//! A benchmark harness's pattern: a parent passes each run's configuration to a worker process,
//! collects the worker's results, and notices a worker that fails before publishing at once,
//! instead of waiting out a timeout.
//!
//! ```text
//! cargo run --release --example harness
//! ```
//!
//! The parent owns both channels, made with `Options::remove_on_drop`, so that nothing stays in
//! `/dev/shm` however the harness ends, but for a kill by a signal (Ctrl-C too), which drops
//! nothing: each start first removes what an earlier harness left so, as `mmf prune
//! --older-than 0` would (a plain `mmf prune` waits until such a channel has been idle for an
//! hour).
//! It starts the worker (the same executable with the arguments `worker NAME`) and waits for a
//! result until the worker exits: a `Stop` turned by the worker's exit (`Stop::on_exit_of`)
//! ends the wait at once, as `mmf read --pid PID` does for scripts. Run 2's worker fails on
//! purpose.

use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use mmf::prelude::*;
use serde::{Deserialize, Serialize};

type Outcome<T> = Result<T, Box<dyn std::error::Error>>;

/// What the parent tells the worker about a run.
#[derive(Serialize, Deserialize, Debug)]
struct Config {
    run: u32,
    iterations: u32,
    /// Whether the worker fails before it publishes (to show the parent noticing).
    fail: bool,
}

/// What the worker reports.
#[derive(Serialize, Deserialize, Debug)]
struct Results {
    run: u32,
    timings_ns: Vec<f64>,
}

/// How a run ended, as the parent saw it.
enum Ended {
    Published(Results),
    Exited(ExitStatus),
    TimedOut,
}

fn main() -> Outcome<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("worker") {
        return worker(&args[2]);
    }
    harness()
}

fn harness() -> Outcome<()> {
    // What harnesses killed by a signal left: each channel only if no process holds it and
    // neither the process that made it nor the last to write it still runs (another harness
    // running now keeps its own). Best effort: another user's is not this harness's to remove.
    for listing in mmf::list()? {
        if listing.name.starts_with("harness-") && listing.is_stale() {
            let _ = mmf::channel::host::remove_stale(&listing.name, Duration::ZERO);
        }
    }
    let name = format!("harness-{}", std::process::id());
    let mut options = Options::new();
    options.capacity(64 * 1024).remove_on_drop(true);
    let config = options.create(format!("{name}-config"))?;
    let results = options.create(format!("{name}-results"))?;
    // The generation of the last result read: a result is new when it is past it.
    let mut seen = 0;
    let mut as_expected = true;
    for (run, fail) in [(1, false), (2, true), (3, false)] {
        config.publish(&Config {
            run,
            iterations: 1000,
            fail,
        })?;
        let started = Instant::now();
        let mut worker = Command::new(std::env::current_exe()?)
            .args(["worker", &name])
            .spawn()?;
        let ended = match collect(&results, &mut seen, &mut worker, Duration::from_secs(20)) {
            Ok(ended) => ended,
            Err(e) => {
                // Not left running: a result that does not decode ends the harness.
                let _ = worker.kill();
                let _ = worker.wait();
                return Err(e);
            }
        };
        let took = started.elapsed();
        match &ended {
            Ended::Published(r) => {
                let mut t = r.timings_ns.clone();
                t.sort_by(f64::total_cmp);
                println!(
                    "run {}: {} timings, median {:.0} ns (result after {took:.1?})",
                    r.run,
                    t.len(),
                    t[t.len() / 2]
                );
                as_expected &= !fail && r.run == run;
            }
            Ended::Exited(status) => {
                println!("run {run}: the worker ended ({status}) without a result, noticed after {took:.1?}");
                as_expected &= fail;
            }
            Ended::TimedOut => {
                println!("run {run}: no result within 20 s; stopping the worker");
                let _ = worker.kill();
                as_expected = false;
            }
        }
        worker.wait()?;
        // A result published after the wait gave up (between the timeout and the kill) is no
        // run's: the next run waits past it, where it would have taken it for its own.
        if !matches!(ended, Ended::Published(_)) {
            seen = seen.max(results.generation());
        }
    }
    // A return, not `std::process::exit`, which would skip the drops: `config` and `results`
    // drop here, and their names go with them (`main` returning `Err` exits with 1).
    if !as_expected {
        return Err("a run did not end as it should have".into());
    }
    Ok(())
}

/// Waits for a result newer than `seen` (and takes its generation) until `worker` exits or
/// `timeout` passes. A result the worker published right before it exited is still taken: a
/// stop ends a wait, it does not hide a value that is there.
fn collect(
    results: &Channel,
    seen: &mut u64,
    worker: &mut Child,
    timeout: Duration,
) -> Outcome<Ended> {
    let exit = Stop::on_exit_of(worker)?;
    match results.read_after::<Results>(*seen, Until::timeout(timeout).or(&exit))? {
        Some((meta, r)) => {
            *seen = meta.generation;
            Ok(Ended::Published(r))
        }
        // It has exited: reaping it takes no time.
        None if exit.is_stopped() => Ok(Ended::Exited(worker.wait()?)),
        None => Ok(Ended::TimedOut),
    }
}

fn worker(name: &str) -> Outcome<()> {
    let config: Config = Channel::open(format!("{name}-config"))?.read()?;
    if config.fail {
        eprintln!("worker: run {} fails on purpose", config.run);
        std::process::exit(70);
    }
    let timings_ns = (0..config.iterations)
        .map(|i| {
            let t = Instant::now();
            std::hint::black_box((0..100u64).fold(u64::from(i), |a, b| a.wrapping_mul(31) ^ b));
            t.elapsed().as_nanos() as f64
        })
        .collect();
    Channel::open(format!("{name}-results"))?.publish(&Results {
        run: config.run,
        timings_ns,
    })?;
    Ok(())
}
