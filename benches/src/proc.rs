//! The second process: the harness re-executes its own binary with `--child JOB` (JOB as JSON),
//! talks to it through its standard output ("ready", then a result line), and never waits for
//! it without a bound.
//!
//! A child dies with its parent (`PR_SET_PDEATHSIG`); a child that outlives its time limit is
//! killed by a watchdog thread of the parent, which also unblocks a parent stuck in a blocking
//! read on a transport (the kernel closes the child's end).

use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::sys;

/// What a child process is asked to do.
#[derive(Debug, Serialize, Deserialize)]
pub struct Job {
    /// The parent's pid, to die with it.
    pub parent: u32,
    /// CPU to pin to, if any.
    pub cpu: Option<usize>,
    /// How long the child waits for any one message before giving up.
    pub idle_ms: u64,
    /// The work.
    pub kind: JobKind,
}

/// The kinds of child work.
#[derive(Debug, Serialize, Deserialize)]
pub enum JobKind {
    /// Answer every ping of the latency benchmark on `transport` with a message of `len` bytes.
    Pong {
        /// Transport name (see `latency::Transport`).
        transport: String,
        /// Payload bytes.
        len: usize,
        /// Where the transport's resources are.
        res: Resources,
    },
    /// Read snapshots back-to-back until told to stop, then print the counts.
    Reader {
        /// `mmf` or `seqlock`.
        target: String,
        /// Payload bytes.
        len: usize,
        /// Where the channel / seqlock and the control words are.
        res: Resources,
    },
    /// Publish `n` values of `len` bytes on a private channel, with or without the check for
    /// waiters, and exit (run under valgrind to count instructions; see `publish_cost`).
    Publishes {
        /// Payload bytes.
        len: usize,
        /// How many publishes.
        n: u64,
        /// `publish_raw` (true) or the same without the check for waiters (false).
        wake: bool,
    },
}

/// Names of the resources a transport set up in the parent, for the child to open.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Resources {
    /// Files to map.
    pub paths: Vec<PathBuf>,
    /// Channel or service names, os ids.
    pub names: Vec<String>,
    /// Inherited file descriptors.
    pub fds: Vec<i32>,
    /// The child's ends of pipes and sockets: kept open in the parent until the child is
    /// spawned, then closed there.
    #[serde(skip)]
    pub child_fds: Vec<OwnedFd>,
}

/// A running child process.
pub struct Peer {
    child: Child,
    stdout: ChildStdout,
    pending: Vec<u8>,
    cancel: Option<mpsc::Sender<()>>,
    watchdog: Option<JoinHandle<()>>,
}

impl Peer {
    /// Starts `job` in a new process of this binary; it is killed after `limit` at the latest.
    pub fn spawn(job: &Job, limit: Duration) -> Result<Peer> {
        Peer::spawn_under(&[], job, limit)
    }

    /// [`spawn`](Peer::spawn), with the binary run by the command `wrapper` (its program and
    /// arguments; empty: run it directly), such as valgrind.
    pub fn spawn_under(wrapper: &[&str], job: &Job, limit: Duration) -> Result<Peer> {
        let exe = std::env::current_exe().context("locating this executable")?;
        let spec = serde_json::to_string(job)?;
        let mut command = match wrapper {
            [] => Command::new(&exe),
            [program, args @ ..] => {
                let mut c = Command::new(program);
                c.args(args).arg(&exe);
                c
            }
        };
        let mut child = command
            .arg("--child")
            .arg(spec)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| match wrapper.first() {
                Some(w) => format!("starting the child process under {w}"),
                None => "starting the child process".into(),
            })?;
        let stdout = child.stdout.take().expect("piped stdout");
        let pid = child.id();
        let (tx, rx) = mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!("mmf-bench: child {pid} exceeded its {limit:?}; killing it");
                sys::kill(pid);
            }
        });
        Ok(Peer {
            child,
            stdout,
            pending: Vec::new(),
            cancel: Some(tx),
            watchdog: Some(watchdog),
        })
    }

    /// Reads the child's output up to the next line that starts with `prefix` and returns the
    /// rest of it (other lines are echoed); fails after `timeout` or when the child exits.
    pub fn expect(&mut self, prefix: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(nl) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=nl).collect();
                let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
                if let Some(rest) = line.strip_prefix(prefix) {
                    return Ok(rest.trim().to_owned());
                }
                eprintln!("child: {line}");
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("the child did not say {prefix:?} within {timeout:?}");
            }
            if sys::poll_readable(self.stdout.as_raw_fd(), left)? {
                let mut chunk = [0u8; 4096];
                let n = self.stdout.read(&mut chunk)?;
                if n == 0 {
                    let status = self.child.wait()?;
                    bail!("the child exited ({status}) before saying {prefix:?}");
                }
                self.pending.extend_from_slice(&chunk[..n]);
            }
        }
    }

    /// Waits for the child to exit (at most `timeout`, then kills it); an error unless it exited
    /// with success.
    pub fn finish(mut self, timeout: Duration) -> Result<()> {
        // Bounded below; and a pid reaped here must not be killed by the watchdog afterwards.
        self.stop_watchdog();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                if status.success() {
                    return Ok(());
                }
                bail!("the child failed: {status}");
            }
            if Instant::now() >= deadline {
                bail!("the child did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn stop_watchdog(&mut self) {
        drop(self.cancel.take());
        if let Some(w) = self.watchdog.take() {
            let _ = w.join();
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop_watchdog();
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Marks the child's ends of pipes/sockets inheritable and returns their numbers for the job.
pub fn pass_fds(fds: &[&OwnedFd]) -> io::Result<Vec<i32>> {
    fds.iter()
        .map(|fd| {
            sys::inheritable(fd.as_raw_fd())?;
            Ok(fd.as_raw_fd())
        })
        .collect()
}
