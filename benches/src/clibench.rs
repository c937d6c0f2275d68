//! The CLI from a shell's point of view: the wall time from spawning a command to its exit, for
//! `mmf read` and `mmf out` of a small value against `cat` of a small file (and `true`, the
//! cost of a spawn alone), and for `mmf out --lines` publishing [`LINES`] lines, each a value,
//! against `cat` of those lines. The commands alternate (cat, read, out, true, cat, ...); each
//! runs `plan.cli_n` times after a few unmeasured ones. Children inherit this process's pinning.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::stats::{percentile, spread_pct};
use crate::Plan;

/// The small value.
pub const VALUE: &str = "Hello World!";

/// How many lines `mmf out --lines` publishes (`seq 1 LINES`), each a value of its own.
pub const LINES: usize = 100_000;

/// The measured commands, in table order.
pub const COMMANDS: [&str; 6] = [
    "cat FILE",
    "mmf read NAME",
    "mmf out NAME VALUE",
    "true",
    "cat LINES",
    "mmf out NAME --lines < LINES",
];

/// What a command's wall time is compared with: `cat` of the same input.
pub fn reference(command: &str) -> &'static str {
    if command.ends_with("LINES") {
        "cat LINES"
    } else {
        "cat FILE"
    }
}

/// The bytes a command takes in: the small value, or the [`LINES`] lines.
fn input_bytes(command: &str) -> usize {
    if command.ends_with("LINES") {
        lines_text().len()
    } else {
        VALUE.len()
    }
}

/// `seq 1 LINES`'s output.
fn lines_text() -> String {
    (1..=LINES).map(|i| format!("{i}\n")).collect()
}

/// The spawn-to-exit times of one command.
pub struct CliMeasured {
    /// One of [`COMMANDS`].
    pub command: &'static str,
    /// The bytes it takes in (the value, or the lines).
    pub input_bytes: usize,
    /// Sorted wall times in ns.
    pub samples: Vec<u64>,
}

impl CliMeasured {
    /// Median wall time.
    pub fn p50(&self) -> f64 {
        percentile(&self.samples, 0.5)
    }

    /// 99th percentile.
    pub fn p99(&self) -> f64 {
        percentile(&self.samples, 0.99)
    }

    /// Interquartile spread relative to the median, in percent (the samples are single spawns,
    /// so the full range would mostly show the machine's noise).
    pub fn spread(&self) -> f64 {
        spread_pct(&[
            percentile(&self.samples, 0.25),
            self.p50(),
            percentile(&self.samples, 0.75),
        ])
    }
}

/// Finds the `mmf` binary: `$MMF_BIN`, else the one next to this executable, which cargo is
/// asked to build first (in the profile this executable was built with; a no-op when it is up
/// to date), so that a run never times a CLI older than the library it measures.
pub fn locate_mmf() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("MMF_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("executable without a directory")?;
    let candidate = dir.join("mmf");
    let release = dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&workspace)
        .args(["build", "--quiet", "--locked", "-p", "mmf-cli"]);
    if release {
        cmd.arg("--release");
    }
    match cmd.status() {
        Ok(status) if status.success() && candidate.is_file() => Ok(candidate),
        _ if candidate.is_file() => {
            eprintln!(
                "  warning: could not rebuild the mmf CLI; timing {} as it is",
                candidate.display()
            );
            Ok(candidate)
        }
        Ok(status) => bail!("could not build {} ({status})", candidate.display()),
        Err(e) => Err(e).context("running cargo to build the mmf CLI"),
    }
}

/// Runs the comparison; the channel and the file live in a private directory under
/// `/dev/shm` (`MMF_SHM_DIR` points the CLI there).
pub fn run(plan: &Plan, mmf: &Path) -> Result<(PathBuf, Vec<CliMeasured>)> {
    let dir = crate::shm::unique_path("cli");
    std::fs::create_dir(&dir)?;
    let result = run_in(plan, mmf, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result.map(|m| (mmf.to_owned(), m))
}

fn run_in(plan: &Plan, mmf: &Path, dir: &Path) -> Result<Vec<CliMeasured>> {
    let file = dir.join("value.txt");
    std::fs::write(&file, VALUE)?;
    let lines = dir.join("lines.txt");
    std::fs::write(&lines, lines_text())?;
    let name = "bench-cli";
    // The lines go to a channel of their own: `mmf read NAME` reads the small value each time.
    let lines_name = "bench-cli-lines";
    let mmf_cmd = |args: &[&str]| {
        let mut c = Command::new(mmf);
        c.env("MMF_SHM_DIR", dir).args(args);
        c
    };
    for channel in [name, lines_name] {
        let status = mmf_cmd(&["new", channel, "--size", "4KiB"]).status()?;
        if !status.success() {
            bail!("mmf new failed: {status}");
        }
    }
    let status = mmf_cmd(&["out", name, VALUE]).status()?;
    if !status.success() {
        bail!("mmf out failed: {status}");
    }
    // Every line is a value: the last one is what the channel holds, LINES generations on.
    let before = mmf_cmd(&["info", lines_name, "--json"]).output()?;
    let status = mmf_cmd(&["out", lines_name, "--lines"])
        .stdin(std::fs::File::open(&lines)?)
        .status()?;
    let after = mmf_cmd(&["info", lines_name, "--json"]).output()?;
    let generation = |out: &std::process::Output| {
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v["generation"].as_u64())
    };
    let published = generation(&after)
        .zip(generation(&before))
        .map(|(a, b)| a - b);
    let last = mmf_cmd(&["read", lines_name, "--raw"]).output()?;
    if !status.success()
        || published != Some(LINES as u64)
        || last.stdout != LINES.to_string().as_bytes()
    {
        bail!(
            "mmf out --lines ({status}) published {published:?} values, the last {:?}",
            String::from_utf8_lossy(&last.stdout)
        );
    }
    let status = mmf_cmd(&["out", name, VALUE]).status()?;
    if !status.success() {
        bail!("mmf out failed: {status}");
    }
    let out = mmf_cmd(&["read", name]).output()?;
    if String::from_utf8_lossy(&out.stdout).trim_end() != VALUE {
        bail!(
            "mmf read printed {:?}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let cat = |what: &Path| {
        let mut c = Command::new("cat");
        c.arg(what);
        Ok(c)
    };
    let make = |i: usize| -> Result<Command> {
        match i {
            0 => cat(&file),
            1 => Ok(mmf_cmd(&["read", name])),
            2 => Ok(mmf_cmd(&["out", name, VALUE])),
            3 => Ok(Command::new("true")),
            4 => cat(&lines),
            _ => {
                let mut c = mmf_cmd(&["out", lines_name, "--lines"]);
                c.stdin(std::fs::File::open(&lines)?);
                Ok(c)
            }
        }
    };
    let mut samples: Vec<Vec<u64>> = vec![Vec::with_capacity(plan.cli_n); COMMANDS.len()];
    let warmup = 3;
    for round in 0..warmup + plan.cli_n {
        let mut order: Vec<usize> = (0..COMMANDS.len()).collect();
        order.rotate_left(round % COMMANDS.len());
        for i in order {
            let mut cmd = make(i)?;
            if !COMMANDS[i].contains('<') {
                cmd.stdin(Stdio::null());
            }
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
            let t = Instant::now();
            let status = cmd
                .status()
                .with_context(|| format!("running {}", COMMANDS[i]))?;
            let dt = t.elapsed().as_nanos() as u64;
            if !status.success() {
                bail!("{} failed: {status}", COMMANDS[i]);
            }
            if round >= warmup {
                samples[i].push(dt);
            }
        }
    }
    Ok(COMMANDS
        .iter()
        .zip(samples)
        .map(|(&command, mut s)| {
            s.sort_unstable();
            CliMeasured {
                command,
                input_bytes: input_bytes(command),
                samples: s,
            }
        })
        .collect())
}
