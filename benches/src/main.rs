//! `mmf-bench`: mmf side by side with the physical floor and its IPC peers, across two pinned
//! processes, in one run (issue 7). `docs/BENCHMARKS.md` explains the figures.
//!
//! ```text
//! cargo run --release -p mmf-bench -- [--quick] [--json FILE]
//!     [--only latency,breakdown,publish,throughput,cli]
//!     [--transports floor,mmf,...] [--sizes 64,4096] [--runs N]
//! cargo run --release -p mmf-bench --features seed-peers,iceoryx2 -- ...   # every peer
//! ```
//!
//! The harness re-executes itself (`--child JOB`) for the second process; see `proc.rs`.

mod breakdown;
mod buf;
mod clibench;
mod latency;
mod machine;
mod placement;
mod proc;
mod publish_cost;
mod report;
mod seqlock;
mod shm;
mod stats;
mod sys;
mod throughput;
mod transports;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::latency::Transport;
use crate::proc::{Job, JobKind};

/// How much to measure, and where.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `--quick`.
    pub quick: bool,
    /// Payload sizes.
    pub sizes: Vec<usize>,
    /// Interleaved runs per latency measurement.
    pub runs: usize,
    /// Unmeasured round trips at the start of every latency round.
    pub lat_warmup: Duration,
    /// Measured time per latency round.
    pub lat_budget: Duration,
    /// Sample cap per latency round.
    pub lat_max_samples: usize,
    /// Interleaved runs per throughput measurement.
    pub tp_runs: usize,
    /// Length of one throughput run.
    pub tp_duration: Duration,
    /// Spawns per CLI command.
    pub cli_n: usize,
    /// The parent's CPU and the children's.
    pub cpus: (usize, usize),
    /// `--verbose`: print every run.
    pub verbose: bool,
}

impl Plan {
    fn new(quick: bool, cpus: (usize, usize)) -> Plan {
        let sizes = vec![64, 4096, 64 * 1024, 1 << 20];
        if quick {
            Plan {
                quick,
                sizes,
                runs: 3,
                lat_warmup: Duration::from_millis(20),
                lat_budget: Duration::from_millis(150),
                lat_max_samples: 100_000,
                tp_runs: 3,
                tp_duration: Duration::from_millis(200),
                cli_n: 40,
                cpus,
                verbose: false,
            }
        } else {
            Plan {
                quick,
                sizes,
                runs: 15,
                lat_warmup: Duration::from_millis(30),
                lat_budget: Duration::from_millis(250),
                lat_max_samples: 200_000,
                tp_runs: 7,
                tp_duration: Duration::from_millis(400),
                cli_n: 200,
                cpus,
                verbose: false,
            }
        }
    }
}

/// The sections `--only` can pick, in the order a run measures them.
const SECTIONS: [&str; 5] = ["latency", "breakdown", "publish", "throughput", "cli"];

/// Command-line options.
#[derive(Debug, Default)]
struct Args {
    quick: bool,
    json: Option<std::path::PathBuf>,
    only: Option<Vec<String>>,
    transports: Option<Vec<String>>,
    sizes: Option<Vec<usize>>,
    runs: Option<usize>,
    verbose: bool,
    /// A seconds-long check that every part still works (the tests use it).
    smoke: bool,
}

const USAGE: &str = "\
usage: mmf-bench [--quick] [--json FILE] [--only latency,breakdown,publish,throughput,cli]
                 [--transports floor,mmf,...] [--sizes 64,4096,...] [--runs N] [--verbose]
                 [--smoke]

Measures mmf against the physical floor and its IPC peers across two pinned processes and prints
the tables and the issue's bars as ratios. --quick takes about a minute, the full run several;
--smoke only checks in seconds that every part works (tiny samples, meaningless figures).
Transports: floor-line floor floor-2buf floor-mmfcopy floor-validated mmf mmf-wait mmf-wait-any
mmf-async mmf-stream mmf-follow futex pipe uds
raw_sync-busy raw_sync-event iceoryx2-blackboard iceoryx2-pubsub (the last four need
--features seed-peers / iceoryx2).";

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args> {
    let mut a = Args::default();
    let list = |v: Option<String>, flag: &str| -> Result<Vec<String>> {
        let v = v.with_context(|| format!("{flag} needs a value"))?;
        Ok(v.split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect())
    };
    // A list that names nothing measures nothing: refused as a usage error (`--sizes ,` was
    // taken as no narrowing at all).
    let some = |v: Vec<String>, flag: &str| -> Result<Vec<String>> {
        if v.is_empty() {
            bail!("{flag} names nothing");
        }
        Ok(v)
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--smoke" => a.smoke = true,
            "--verbose" | "-v" => a.verbose = true,
            "--json" => a.json = Some(it.next().context("--json needs a file")?.into()),
            // Names checked here, before anything runs: a mistyped one is a usage error (exit
            // 2), not a failure after the machine's banner (exit 1).
            "--only" => {
                let only = some(list(it.next(), "--only")?, "--only")?;
                if let Some(bad) = only.iter().find(|s| !SECTIONS.contains(&s.as_str())) {
                    bail!("unknown section {bad:?} (sections: {})", SECTIONS.join(","));
                }
                a.only = Some(only);
            }
            "--transports" => {
                let names = some(list(it.next(), "--transports")?, "--transports")?;
                if let Some(bad) = names.iter().find(|n| Transport::from_name(n).is_none()) {
                    bail!("unknown transport {bad:?}\n{USAGE}");
                }
                a.transports = Some(names);
            }
            "--sizes" => {
                a.sizes = Some(
                    some(list(it.next(), "--sizes")?, "--sizes")?
                        .iter()
                        .map(|s| match s.parse::<usize>() {
                            // The floor's flag and every transport's check word take 8 bytes.
                            Ok(n) if n >= 8 => Ok(n),
                            Ok(n) => bail!("--sizes: {n} is below the least payload, 8 bytes"),
                            Err(e) => bail!("--sizes: {s:?} is not a number of bytes: {e}"),
                        })
                        .collect::<Result<_>>()?,
                )
            }
            "--runs" => {
                let n = it.next().context("--runs needs a number")?;
                a.runs = match n.parse::<usize>() {
                    Ok(0) => bail!("--runs: 0 measures nothing; give 1 or more"),
                    Ok(n) => Some(n),
                    Err(e) => bail!("--runs: {n:?} is not a number: {e}"),
                }
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let first = args.next();
    if first.as_deref() == Some("--child") {
        return match child_main(args.next()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mmf-bench child: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let args = match parse_args(first.into_iter().chain(args)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mmf-bench: {e:#}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mmf-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    // A path that cannot be written fails now, not after minutes of measuring whose figures
    // it would then lose. Opened to append, which changes nothing in a file already there (a
    // run that fails keeps the last one's figures); one made here only for the check is
    // removed again.
    if let Some(path) = &args.json {
        let existed = path.exists();
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .with_context(|| format!("cannot write the --json file {}", path.display()))?;
        if !existed {
            let _ = std::fs::remove_file(path);
        }
    }
    shm::remove_stale();
    let wants = |section: &str| {
        args.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|s| s == section))
    };
    // Built before this process pins itself to one CPU, which cargo and rustc would inherit:
    // the build then took a third of a quick run on one core.
    let mmf_cli = wants("cli").then(clibench::locate_mmf);
    let allowed = sys::allowed_cpus();
    let cpus = match allowed.as_slice() {
        [a, b, ..] => (*a, *b),
        [a] => (*a, *a),
        [] => (0, 1),
    };
    let pinned = sys::pin_to_cpu(cpus.0);
    let pinning = match &pinned {
        Ok(()) if cpus.0 != cpus.1 => format!(
            "this process (ping, writer, spawner) on cpu {}, child processes (pong, readers) on \
             cpu {} (sched_setaffinity)",
            cpus.0, cpus.1
        ),
        Ok(()) => format!("only cpu {} is available: both processes share it", cpus.0),
        Err(e) => format!("not pinned: sched_setaffinity failed: {e}"),
    };
    let mut plan = Plan::new(args.quick || args.smoke, cpus);
    plan.verbose = args.verbose;
    if args.smoke {
        plan.sizes = vec![64, 4096];
        plan.runs = 1;
        plan.tp_runs = 1;
        plan.lat_warmup = Duration::from_millis(5);
        plan.lat_budget = Duration::from_millis(20);
        plan.tp_duration = Duration::from_millis(20);
        plan.cli_n = 3;
    }
    if let Some(s) = &args.sizes {
        plan.sizes = s.clone();
    }
    if let Some(r) = args.runs {
        plan.runs = r;
        plan.tp_runs = r;
    }
    // What the figures can stand for: only a "full" run judges the issue's bars as a whole.
    let mode = if args.smoke {
        "smoke"
    } else if args.only.is_some()
        || args.transports.is_some()
        || args.sizes.is_some()
        || args.runs.is_some()
    {
        if args.quick {
            "quick, narrowed"
        } else {
            "narrowed"
        }
    } else if args.quick {
        "quick"
    } else {
        "full"
    };
    let machine = machine::Machine::probe(cpus, allowed, pinning, mode);
    println!("mmf-bench: {} run\n{}", machine.mode, machine.describe());

    let mut missing = Vec::new();
    let mut transports = Vec::new();
    for t in Transport::ALL {
        if let Some(only) = &args.transports {
            if !only.iter().any(|n| n == t.name()) {
                continue;
            }
        }
        match t.missing() {
            Some(why) => missing.push((t, why)),
            None => transports.push(t),
        }
    }

    // Unpinned, a probe would not be between the two CPUs: none gives a figure.
    let mut placement = placement::Placement::new(if pinned.is_ok() {
        cpus
    } else {
        (cpus.0, cpus.0)
    });
    placement.sample("start");
    let lat = if wants("latency") {
        eprintln!("latency ({} runs per transport and size)...", plan.runs);
        latency::run(&plan, &transports, &mut placement)
    } else {
        Vec::new()
    };
    let breakdown = if wants("breakdown") && cpus.0 != cpus.1 {
        placement.sample("before breakdown");
        eprintln!("breakdown of a round trip (F, floor-validated and mmf, two threads)...");
        Some(breakdown::run(&plan).map_err(|e| format!("{e:#}")))
    } else {
        None
    };
    let publish = wants("publish").then(|| {
        eprintln!(
            "publish cost with nobody waiting ({} rounds per size)...",
            plan.runs
        );
        publish_cost::run(&plan).map_err(|e| format!("{e:#}"))
    });
    let tp = if wants("throughput") {
        placement.sample("before throughput");
        eprintln!(
            "throughput and reader progress ({} runs each)...",
            plan.tp_runs
        );
        throughput::run(&plan, &mut placement)
    } else {
        Vec::new()
    };
    let cli = mmf_cli.map(|mmf| {
        eprintln!("CLI ({} spawns per command)...", plan.cli_n);
        mmf.and_then(|mmf| clibench::run(&plan, &mmf))
            .map(|(bin, m)| (bin.display().to_string(), m))
            .map_err(|e| format!("{e:#}"))
    });
    placement.sample("end");
    let report = report::Report {
        machine: &machine,
        placement: &placement,
        lat: &lat,
        breakdown,
        publish,
        missing,
        tp: &tp,
        cli,
    };
    print!("{}", report.render());
    println!("\n(total {:.0} s)", started.elapsed().as_secs_f64());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report.json())?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// The second process: parse the job, die with the parent, pin, work.
fn child_main(spec: Option<String>) -> Result<()> {
    let job: Job = serde_json::from_str(&spec.context("--child needs a job")?)?;
    sys::die_with_parent(job.parent);
    if let Some(cpu) = job.cpu {
        sys::pin_to_cpu(cpu).with_context(|| format!("pinning to cpu {cpu}"))?;
    }
    let idle = Duration::from_millis(job.idle_ms);
    match job.kind {
        JobKind::Pong {
            transport,
            len,
            res,
        } => latency::child(&transport, len, res, idle),
        JobKind::Reader { target, len, res } => throughput::child(&target, len, &res, idle),
        JobKind::Publishes { len, n, wake } => publish_cost::child(len, n, wake),
    }
}
