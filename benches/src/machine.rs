//! What machine the figures come from: CPU, cores, caches, kernel, clock, pinning, load.

use std::time::Instant;

use serde::Serialize;

use crate::sys;

/// The machine section of the report and of the JSON file.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// `model name` of /proc/cpuinfo.
    pub cpu_model: String,
    /// `cpu family`, `model` and `stepping` of /proc/cpuinfo: the microarchitecture, which a VM's
    /// model name hides (this project's machine moved from an AMD Zen 3 host, family 25 model 1,
    /// to a Zen 4, model 17, under the same "AMD EPYC", and some ratios moved with it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_family_model: Option<String>,
    /// Online CPUs.
    pub cores: usize,
    /// CPUs this process was allowed to use before pinning itself.
    pub cpus_allowed: Vec<usize>,
    /// Whether the two benchmark CPUs are SMT siblings (one physical core), if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smt_siblings: Option<bool>,
    /// Per-core and shared caches, from sysfs.
    pub caches: String,
    /// `cpu MHz` of /proc/cpuinfo (as the kernel reports it; a VM may report the host's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_mhz: Option<f64>,
    /// Hypervisor, when the CPU flags say there is one.
    pub virtualized: bool,
    /// Kernel release.
    pub kernel: String,
    /// Current clock source (the cost and resolution of `Instant::now` depend on it).
    pub clocksource: String,
    /// Median cost of one `Instant::now()`, in ns (every latency sample includes about one).
    pub timer_overhead_ns: f64,
    /// How the processes were placed.
    pub pinning: String,
    /// Load average when the run started (the machine is shared).
    pub load_average: String,
    /// The directory of mmf's channels and of the harness's own shared files (F, the
    /// seqlock), and its file system type: a tmpfs, unless `MMF_SHM_DIR` says otherwise.
    pub shm_dir: String,
    /// `quick` or `full` (`smoke` for `--smoke`), with `, narrowed` where `--only`,
    /// `--transports`, `--sizes` or `--runs` narrowed it.
    pub mode: String,
    /// The commit of the source tree the harness ran from (`git describe --always --dirty`:
    /// `-dirty` where it held changes not committed), so that a result file says which code
    /// it measured; absent where git or the repository is not there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Cargo features of this build.
    pub features: Vec<&'static str>,
    /// Seconds since the epoch at the start of the run.
    pub started_unix: u64,
}

impl Machine {
    /// Inspects the machine. `cpus` are the two CPUs the harness pins to; `pinning` says
    /// whether pinning worked.
    pub fn probe(
        cpus: (usize, usize),
        allowed: Vec<usize>,
        pinning: String,
        mode: &str,
    ) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            cpuinfo
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim() == name)
                .map(|(_, v)| v.trim().to_owned())
        };
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_owned())
                .unwrap_or_default()
        };
        let siblings = read(&format!(
            "/sys/devices/system/cpu/cpu{}/topology/thread_siblings_list",
            cpus.0
        ));
        let smt = (!siblings.is_empty()).then(|| cpus.0 != cpus.1 && list_has(&siblings, cpus.1));
        let mut features = Vec::new();
        if cfg!(feature = "seed-peers") {
            features.push("seed-peers");
        }
        if cfg!(feature = "iceoryx2") {
            features.push("iceoryx2");
        }
        Machine {
            cpu_model: field("model name").unwrap_or_else(|| "unknown".into()),
            cpu_family_model: field("cpu family").zip(field("model")).map(|(f, m)| {
                let stepping =
                    field("stepping").map_or(String::new(), |s| format!(" stepping {s}"));
                format!("family {f} model {m}{stepping}")
            }),
            cores: sys::online_cpus(),
            cpus_allowed: allowed,
            smt_siblings: smt,
            caches: caches(cpus.0),
            cpu_mhz: field("cpu MHz").and_then(|v| v.parse().ok()),
            virtualized: field("flags").is_some_and(|f| f.split(' ').any(|x| x == "hypervisor")),
            kernel: sys::kernel(),
            clocksource: read("/sys/devices/system/clocksource/clocksource0/current_clocksource"),
            timer_overhead_ns: timer_overhead(),
            pinning,
            load_average: read("/proc/loadavg")
                .split(' ')
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
            shm_dir: shm_dir(),
            mode: mode.into(),
            commit: commit(),
            features,
            started_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }

    /// The lines printed above the tables.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let mut line = |k: &str, v: String| s.push_str(&format!("  {k:<11} {v}\n"));
        line(
            "cpu",
            format!(
                "{} ({}{} online{}{})",
                self.cpu_model,
                self.cpu_family_model
                    .as_ref()
                    .map_or(String::new(), |fm| format!("{fm}; ")),
                self.cores,
                self.cpu_mhz
                    .map_or(String::new(), |m| format!(", {m:.0} MHz")),
                if self.virtualized {
                    ", virtual machine"
                } else {
                    ""
                }
            ),
        );
        line("caches", self.caches.clone());
        line("kernel", format!("Linux {}", self.kernel));
        line(
            "clock",
            format!(
                "{} (Instant::now costs ~{:.0} ns; each sample includes one)",
                self.clocksource, self.timer_overhead_ns
            ),
        );
        line("pinning", self.pinning.clone());
        line("shm dir", self.shm_dir.clone());
        line(
            "load",
            format!("{} at start (shared machine)", self.load_average),
        );
        line(
            "build",
            format!(
                "mmf-bench {}{}, features: {}",
                self.mode,
                self.commit
                    .as_ref()
                    .map_or(String::new(), |c| format!(", commit {c}")),
                if self.features.is_empty() {
                    "none".into()
                } else {
                    self.features.join(", ")
                }
            ),
        );
        s
    }
}

/// The commit of the repository this harness was built from, as `git describe --always
/// --dirty --abbrev=7` says it at the start of the run (so a binary built before a checkout
/// names the tree as it is then); `None` without git, or where the workspace is no
/// repository's top (a copy without `.git` inside another repository would name that one's
/// commit: the second review's).
fn commit() -> Option<String> {
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(workspace)
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
        (out.status.success() && !text.is_empty()).then_some(text)
    };
    let top = git(&["rev-parse", "--show-toplevel"])?;
    let same = |p: &std::path::Path| std::fs::canonicalize(p).ok();
    if same(std::path::Path::new(&top)) != same(workspace) {
        return None;
    }
    git(&["describe", "--always", "--dirty", "--abbrev=7"])
}

/// [`crate::shm::dir`] and the type of the file system it is on (from /proc/mounts: the
/// longest mount point that contains it).
fn shm_dir() -> String {
    let dir = crate::shm::dir();
    let real = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let fs = mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let (point, kind) = (f.nth(1)?, f.next()?);
            real.starts_with(point).then_some((point.len(), kind))
        })
        .max_by_key(|&(len, _)| len)
        .map_or("file system unknown", |(_, kind)| kind);
    format!("{} ({fs})", dir.display())
}

/// Whether a sysfs CPU list (`0-3,8`) contains `cpu`.
fn list_has(list: &str, cpu: usize) -> bool {
    list.split(',').any(|part| match part.split_once('-') {
        Some((a, b)) => matches!((a.parse::<usize>(), b.parse::<usize>()), (Ok(a), Ok(b)) if (a..=b).contains(&cpu)),
        None => part.parse() == Ok(cpu),
    })
}

/// `L1d 32K, L2 512K, L3 32768K (shared by 0-1)` from sysfs.
fn caches(cpu: usize) -> String {
    let mut out = Vec::new();
    for i in 0..8 {
        let dir = format!("/sys/devices/system/cpu/cpu{cpu}/cache/index{i}");
        let read =
            |f: &str| std::fs::read_to_string(format!("{dir}/{f}")).map(|s| s.trim().to_owned());
        let (Ok(level), Ok(kind), Ok(size)) = (read("level"), read("type"), read("size")) else {
            break;
        };
        if kind == "Instruction" {
            continue;
        }
        let shared = read("shared_cpu_list").unwrap_or_default();
        let name = if kind == "Data" {
            format!("L{level}d")
        } else {
            format!("L{level}")
        };
        out.push(format!("{name} {size} (cpus {shared})"));
    }
    if out.is_empty() {
        "unknown".into()
    } else {
        out.join(", ")
    }
}

/// Median cost of `Instant::now()` over a few batches.
fn timer_overhead() -> f64 {
    let mut per = Vec::new();
    for _ in 0..21 {
        let t = Instant::now();
        for _ in 0..1000 {
            std::hint::black_box(Instant::now());
        }
        per.push(t.elapsed().as_nanos() as f64 / 1000.0);
    }
    crate::stats::median(&per)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_lists() {
        assert!(super::list_has("0-3,8", 2));
        assert!(super::list_has("0-3,8", 8));
        assert!(!super::list_has("0-3,8", 5));
        assert!(super::list_has("1", 1));
    }
}
