//! Ending blocking waits early: [`Stop`], a switch that any thread (or a signal handler, or the
//! exit of another process) turns, and [`Until`], what bounds a wait: a timeout, a deadline, a
//! `Stop`, or a timeout and a `Stop` together.
//!
//! A wait with a `Stop` sleeps in one `futex_waitv(2)` on two words: the channel's `latest` (as
//! every blocking wait does) and the `Stop`'s own private word, which [`Stop::stop`] sets and
//! wakes. A stop is therefore seen at once, never lost between a wait's last check and its
//! sleep (the kernel compares both words before it sleeps). Where `futex_waitv` is missing
//! (Linux before 5.16, a seccomp filter), such a wait sleeps in slices of a millisecond.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::os;

/// A switch that ends blocking waits early, from another thread, a signal handler, or when
/// another process exits: give it to a wait through [`Until`] (`Until::from(&stop)`, or
/// `Until::timeout(d).or(&stop)`), and once [`stop`](Stop::stop) is called, that wait, and
/// every later one given it, returns as its timeout would: `None` (or, for
/// [`Follower::open`](crate::Follower::open), the error of a channel not found). A value
/// already newer than the one waited past is still returned: a stop cuts a wait short, it
/// does not hide what is there. [`is_stopped`](Stop::is_stopped) tells a stop from a timeout.
///
/// Clones share the switch. Once stopped it stays stopped: make a new one for the next waits.
///
/// ```
/// use std::time::Duration;
/// use mmf_core::{Channel, Stop, Until};
///
/// let ch = Channel::anonymous(64)?;
/// let stop = Stop::new();
/// std::thread::scope(|s| {
///     let waiter = s.spawn(|| ch.wait_for_change(0, Until::from(&stop)));
///     std::thread::sleep(Duration::from_millis(20));
///     stop.stop(); // a shutdown, say: the waiter returns at once
///     assert_eq!(waiter.join().unwrap(), None);
/// });
/// assert!(stop.is_stopped());
/// # Ok::<(), mmf_core::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct Stop {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// 0 until stopped, then 1: a private futex word that a wait sleeps on beside the channel's
    /// `latest`. Shared with the threads that watch processes for their exit.
    word: Arc<AtomicU32>,
    /// One end of a socket pair per such thread: dropped with the last clone of the `Stop`,
    /// which the thread sees as a hang-up, and ends.
    #[cfg(unix)]
    watchers: Mutex<Vec<std::os::unix::net::UnixStream>>,
    #[cfg(not(unix))]
    watchers: Mutex<Vec<()>>,
}

impl std::fmt::Debug for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stop")
            .field("stopped", &self.is_stopped())
            .finish()
    }
}

impl Stop {
    /// A switch not turned yet.
    pub fn new() -> Stop {
        Stop::default()
    }

    /// Turns the switch: every wait given this `Stop` (or a clone) returns now, as its timeout
    /// would, and every later one at once. Async-signal-safe (an atomic store and a
    /// `futex(2)` wake, no lock, no allocation): a `SIGTERM` handler may call it, on a `Stop`
    /// it reaches without a lock (a `static` one, say).
    pub fn stop(&self) {
        fire(&self.inner.word);
    }

    /// Whether [`stop`](Stop::stop) was called, or a process given to
    /// [`stop_on_exit`](Stop::stop_on_exit) has exited.
    pub fn is_stopped(&self) -> bool {
        self.inner.word.load(Ordering::SeqCst) != 0
    }

    /// Turns the switch when process `pid` exits (before this returns if it has exited already,
    /// or there is no such process): so
    /// that a harness waiting for a worker's result, or a script's reader waiting for its
    /// writer's next value, stops waiting when that process ends without one. May be called
    /// for several processes: the first to exit stops the waits.
    ///
    /// On Linux the exit is seen at once (a `pidfd`, polled by a thread of this process that
    /// ends when the process exits or the last clone of this `Stop` is dropped); where there
    /// are no pidfds (Linux before 5.3), within 10 ms, by looking whether the pid is gone or a
    /// zombie. A zombie counts as exited: a child of the caller's that it has not reaped yet
    /// has exited all the same. For such a child pass [`Child::id`](std::process::Child::id)
    /// before reaping it (`Child::wait`, `try_wait`): after that its pid may name another
    /// process.
    ///
    /// ```
    /// use std::process::Command;
    /// use std::time::Duration;
    /// use mmf_core::{Channel, Stop, Until};
    ///
    /// let results = Channel::anonymous(64)?;
    /// let mut worker = Command::new("sleep").arg("0.05").spawn()?;
    /// let stop = Stop::new();
    /// stop.stop_on_exit(worker.id())?;
    /// // The worker ends without publishing: the wait ends with it, not after 30 s.
    /// let waited = results.wait_for_change(0, Until::timeout(Duration::from_secs(30)).or(&stop));
    /// assert_eq!(waited, None);
    /// assert!(stop.is_stopped());
    /// worker.wait()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOptions`] for pid 0 or one beyond `i32::MAX` (no process has it),
    /// [`Error::ProcessWatch`] if the thread that watches it could not be started.
    pub fn stop_on_exit(&self, pid: u32) -> Result<()> {
        if pid == 0 || i32::try_from(pid).is_err() {
            return Err(Error::InvalidOptions(format!(
                "pid {pid} names no process; give the pid of the process whose exit stops the wait"
            )));
        }
        self.watch(pid)
    }

    #[cfg(unix)]
    fn watch(&self, pid: u32) -> Result<()> {
        use std::os::fd::AsFd;
        let exit = match os::pidfd_open(pid) {
            Ok(fd) => Some(fd),
            // Gone already (reaped, or never there).
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => None,
            // No pidfds here: look at the pid instead.
            Err(_) => None,
        };
        // Exited already (a zombie included): stopped now, before this returns.
        let ended = match &exit {
            Some(fd) => matches!(
                os::poll_any(&[fd.as_fd()], Some(Duration::ZERO)),
                Ok(Some(_))
            ),
            None => os::pid_exited(pid),
        };
        if ended {
            self.stop();
            return Ok(());
        }
        let failed = |source| Error::ProcessWatch { pid, source };
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(failed)?;
        let word = Arc::clone(&self.inner.word);
        std::thread::Builder::new()
            .name("mmf-exit-watch".into())
            .spawn(move || watch_exit(pid, exit, &theirs, &word))
            .map_err(failed)?;
        self.inner
            .watchers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(ours);
        Ok(())
    }

    #[cfg(not(unix))]
    fn watch(&self, pid: u32) -> Result<()> {
        Err(Error::ProcessWatch {
            pid,
            source: std::io::ErrorKind::Unsupported.into(),
        })
    }

    /// The private futex word that waits sleep on.
    pub(crate) fn word(&self) -> &AtomicU32 {
        &self.inner.word
    }
}

/// Sets `word` and wakes every wait sleeping on it.
fn fire(word: &AtomicU32) {
    word.store(1, Ordering::SeqCst);
    os::wake_private(word);
}

/// A watcher thread's body: fires `word` once process `pid` has exited, or ends without
/// firing once `hangup`'s other end is dropped (the `Stop` with it).
#[cfg(unix)]
fn watch_exit(
    pid: u32,
    exit: Option<std::os::fd::OwnedFd>,
    hangup: &std::os::unix::net::UnixStream,
    word: &AtomicU32,
) {
    use std::os::fd::AsFd;
    /// How often the pid is looked at where there is no pidfd to poll.
    const LOOK_EVERY: Duration = Duration::from_millis(10);
    loop {
        if word.load(Ordering::SeqCst) != 0 {
            return; // stopped meanwhile: nothing left to do
        }
        let polled = match &exit {
            Some(fd) => os::poll_any(&[fd.as_fd(), hangup.as_fd()], Some(Duration::from_secs(1))),
            None => os::poll_any(&[hangup.as_fd()], Some(LOOK_EVERY)).map(|ready| ready.map(|_| 1)),
        };
        match polled {
            Ok(Some(0)) => break,
            Ok(Some(_)) => return,
            // A timeout, or a failed poll (no memory): look at the pid itself, and again later.
            Ok(None) | Err(_) => {
                if os::pid_exited(pid) {
                    break;
                }
                if polled.is_err() {
                    std::thread::sleep(LOOK_EVERY);
                }
            }
        }
    }
    fire(word);
}

/// What bounds a blocking wait: a timeout or a deadline, and a [`Stop`] that may end it early.
/// Every blocking wait of mmf takes `impl Into<Until>`, so that a plain [`Duration`] (a
/// timeout; `Duration::MAX`: none), an [`Instant`] (a deadline), a `&Stop` (no timeout, until
/// stopped), or an `Until` built from them is accepted.
///
/// ```
/// use std::time::{Duration, Instant};
/// use mmf_core::{Channel, Stop, Until};
/// let ch = Channel::anonymous(64)?;
/// let stop = Stop::new();
/// assert_eq!(ch.wait_for_change(0, Duration::from_millis(5)), None);             // a timeout
/// assert_eq!(ch.wait_for_change(0, Instant::now()), None);                       // a deadline
/// stop.stop();
/// assert_eq!(ch.wait_for_change(0, Until::forever().or(&stop)), None);          // stopped
/// # Ok::<(), mmf_core::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Until {
    /// `None`: no deadline.
    deadline: Option<Instant>,
    stop: Option<Stop>,
}

impl Until {
    /// No deadline: until what is waited for comes (or a [`Stop`] given with
    /// [`or`](Until::or) is stopped).
    pub fn forever() -> Until {
        Until::default()
    }

    /// Until `timeout` from now (`Duration::MAX`, or any past the clock's range: no limit).
    pub fn timeout(timeout: Duration) -> Until {
        Until {
            deadline: Instant::now().checked_add(timeout),
            stop: None,
        }
    }

    /// Until `deadline`.
    pub fn deadline(deadline: Instant) -> Until {
        Until {
            deadline: Some(deadline),
            stop: None,
        }
    }

    /// This bound, or until `stop` is stopped, whichever comes first.
    #[must_use]
    pub fn or(mut self, stop: &Stop) -> Until {
        self.stop = Some(stop.clone());
        self
    }

    /// The deadline, if there is one.
    pub fn deadline_at(&self) -> Option<Instant> {
        self.deadline
    }

    /// The `Stop`, if there is one.
    pub fn stop(&self) -> Option<&Stop> {
        self.stop.as_ref()
    }

    /// Whether the wait is over: the deadline passed, or the `Stop` was stopped.
    pub fn is_over(&self) -> bool {
        self.left().is_none()
    }

    /// The time left, `None` once the wait is over; an hour where there is no deadline (a wait
    /// sleeps no longer at a time).
    pub(crate) fn left(&self) -> Option<Duration> {
        if self.stop.as_ref().is_some_and(Stop::is_stopped) {
            return None;
        }
        match self.deadline {
            None => Some(Duration::from_secs(3600)),
            Some(d) => d
                .checked_duration_since(Instant::now())
                .filter(|r| !r.is_zero()),
        }
    }

    /// This bound, shortened to at most `slice` from now (with the same `Stop`).
    pub(crate) fn within(&self, slice: Duration) -> Until {
        let cut = Instant::now().checked_add(slice);
        Until {
            deadline: match (self.deadline, cut) {
                (Some(d), Some(c)) => Some(d.min(c)),
                (d, c) => d.or(c),
            },
            stop: self.stop.clone(),
        }
    }

    /// Sleeps for `pause` or until the wait is over, whichever comes first; at once where the
    /// `Stop` is stopped meanwhile.
    pub(crate) fn sleep(&self, pause: Duration) {
        let end = Instant::now().checked_add(pause);
        loop {
            let Some(left) = self.left() else {
                return;
            };
            let left = end.map_or(left, |e| {
                left.min(e.saturating_duration_since(Instant::now()))
            });
            if left.is_zero() {
                return;
            }
            match &self.stop {
                Some(stop) => os::wait_private(stop.word(), 0, left),
                None => std::thread::sleep(left),
            }
        }
    }
}

impl From<Duration> for Until {
    /// A timeout, from now.
    fn from(timeout: Duration) -> Until {
        Until::timeout(timeout)
    }
}

impl From<Instant> for Until {
    /// A deadline.
    fn from(deadline: Instant) -> Until {
        Until::deadline(deadline)
    }
}

impl From<&Stop> for Until {
    /// No deadline; until stopped.
    fn from(stop: &Stop) -> Until {
        Until::forever().or(stop)
    }
}

impl From<Stop> for Until {
    /// No deadline; until stopped.
    fn from(stop: Stop) -> Until {
        Until {
            deadline: None,
            stop: Some(stop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    /// The exit watchers of this process now (threads named `mmf-exit-watch`). No other test
    /// of this crate starts one.
    fn watchers() -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|c| c.trim() == "mmf-exit-watch")
            .count()
    }

    /// Polls `done` for up to 10 s.
    fn soon(done: impl Fn() -> bool) -> bool {
        let t = Instant::now();
        while !done() {
            if t.elapsed() > Duration::from_secs(10) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    #[test]
    fn a_watcher_ends_with_its_stop_or_with_the_process() {
        let before = watchers();
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let stop = Stop::new();
        stop.stop_on_exit(sleeper.id()).unwrap();
        let clone = stop.clone();
        // (A thread names itself once it runs.)
        assert!(soon(|| watchers() == before + 1));
        // Dropped with the last clone, not the first; the process still runs.
        drop(stop);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(watchers(), before + 1);
        drop(clone);
        assert!(
            soon(|| watchers() == before),
            "the watcher outlived its Stop"
        );
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();

        // One whose process exits fires, and ends.
        let mut quick = std::process::Command::new("true").spawn().unwrap();
        let stop = Stop::new();
        stop.stop_on_exit(quick.id()).unwrap();
        assert!(soon(|| stop.is_stopped()), "the exit was not seen");
        assert!(
            soon(|| watchers() == before),
            "the watcher outlived the process"
        );
        quick.wait().unwrap();
    }

    #[test]
    fn without_a_pidfd_the_watch_looks_at_the_pid_and_sees_a_zombie() {
        let mut child = std::process::Command::new("sleep")
            .arg("0.05")
            .spawn()
            .unwrap();
        let word = Arc::new(AtomicU32::new(0));
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let pid = child.id();
        let fired = Arc::clone(&word);
        let watcher = std::thread::spawn(move || watch_exit(pid, None, &theirs, &fired));
        // Not reaped: a zombie, which counts as exited.
        assert!(
            soon(|| word.load(Ordering::SeqCst) != 0),
            "the exit was not seen"
        );
        watcher.join().unwrap();
        assert!(child.try_wait().unwrap().is_some());
        drop(ours);

        // And it ends, without firing, when its Stop goes.
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let word = Arc::new(AtomicU32::new(0));
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let pid = sleeper.id();
        let fired = Arc::clone(&word);
        let watcher = std::thread::spawn(move || watch_exit(pid, None, &theirs, &fired));
        std::thread::sleep(Duration::from_millis(30));
        drop(ours);
        watcher.join().unwrap();
        assert_eq!(word.load(Ordering::SeqCst), 0);
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
    }

    #[test]
    #[cfg(all(target_os = "linux", target_endian = "little"))]
    fn a_stop_wakes_a_sleep_on_the_channel_word() {
        // The channel's word never changes here: only the stop can end the 20 s sleep early.
        let latest = AtomicU64::new(5);
        let stop = Stop::new();
        std::thread::scope(|s| {
            let sleeper = s.spawn(|| {
                let t = Instant::now();
                let slept =
                    os::wait_while_unstopped(&latest, 5, stop.word(), Duration::from_secs(20));
                (slept, t.elapsed())
            });
            std::thread::sleep(Duration::from_millis(20));
            stop.stop();
            let (slept, took) = sleeper.join().unwrap();
            assert!(slept, "futex_waitv is missing on this kernel");
            assert!(took < Duration::from_secs(10), "slept {took:?}");
        });
        // Stopped before the call: no sleep at all.
        assert!(os::wait_while_unstopped(
            &latest,
            5,
            stop.word(),
            Duration::from_secs(20)
        ));
    }

    #[test]
    fn until_bounds() {
        assert_eq!(Until::forever().deadline_at(), None);
        assert_eq!(Until::from(Duration::MAX).deadline_at(), None);
        assert!(Until::from(Duration::ZERO).is_over());
        assert!(!Until::from(Duration::from_secs(60)).is_over());
        let stop = Stop::new();
        let until = Until::timeout(Duration::from_secs(60)).or(&stop);
        // A slice of it keeps the stop, and the sooner end.
        let slice = until.within(Duration::from_millis(5));
        assert!(slice.deadline_at() < until.deadline_at());
        assert!(!slice.is_over());
        stop.stop();
        assert!(until.is_over() && slice.is_over());
        assert!(Until::from(&stop).is_over() && Until::from(stop.clone()).is_over());
        // A sleep ends at the stop, not at its length.
        let stop = Stop::new();
        let until = Until::from(&stop);
        std::thread::scope(|s| {
            let sleeper = s.spawn(|| {
                let t = Instant::now();
                until.sleep(Duration::from_secs(20));
                t.elapsed()
            });
            std::thread::sleep(Duration::from_millis(20));
            stop.stop();
            assert!(sleeper.join().unwrap() < Duration::from_secs(10));
        });
        // And at its length without one.
        let t = Instant::now();
        Until::forever().sleep(Duration::from_millis(20));
        assert!(t.elapsed() >= Duration::from_millis(20));
    }
}
