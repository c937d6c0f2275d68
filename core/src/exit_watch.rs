//! The exit watcher behind [`Stop::stop_on_exit`](crate::Stop::stop_on_exit): one thread of
//! this process that sees every watched process exit and turns the `Stop`s waiting for it.
//!
//! Each watched process is a `pidfd` (Linux 5.3+), which the thread polls together with the
//! read end of a socket pair: a byte on it wakes the thread when a watch is added or a `Stop`
//! that watches something is dropped, so that it polls what is watched now. Where there are no
//! pidfds the thread looks at such a pid every [`LOOK_EVERY`]. The thread starts with the first
//! watch and ends once nothing is left to watch (every watched process has exited, every
//! `Stop` that watched one was turned or dropped): a harness of a thousand workers has one
//! thread for them all, and a process that watches nothing has none.
//!
//! A watch ends when its process exits or its `Stop`'s last clone is dropped (told by a token
//! of the `Stop`'s that the watch holds weakly, dropped before the wake-up: the `Stop`'s word
//! may outlive it, held by a wait or by the async notifier). One whose `Stop` was turned by
//! [`Stop::stop`](crate::Stop::stop) (which must stay async-signal-safe, so it takes no lock
//! and writes to no socket) ends at the thread's next wake-up: it keeps its `pidfd` open until
//! then, and costs nothing else.
//!
//! A child forked without exec has a copy of this state but not the thread, perhaps its lock
//! held, and perhaps not every descriptor in it: the state is per process
//! ([`PerProcess`](crate::os::PerProcess)), and the child's first watch makes its own. The
//! parent's watches stay the parent's: a `Stop` the child inherited is not turned there by the
//! exits its parent watched for (documented at `Stop::stop_on_exit`).

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use crate::os::{self, PerProcess};

/// How often a pid without a pidfd is looked at.
const LOOK_EVERY: Duration = Duration::from_millis(10);

/// One watched process.
struct Watch {
    pid: u32,
    /// Its pidfd; `None` where there are none (the pid is looked at instead).
    exit: Option<OwnedFd>,
    /// The word of the `Stop` to turn.
    word: Arc<AtomicU32>,
    /// The `Stop`'s token, gone once its last clone is dropped: the watch ends then.
    alive: Weak<()>,
}

/// What the adding side and the thread share, under [`WATCHER`]'s lock.
#[derive(Default)]
struct Shared {
    /// Whether the thread runs (it clears this, under the lock, as it ends).
    running: bool,
    /// Watches added since the thread last looked.
    added: Vec<Watch>,
    /// The write end of the thread's wake-up pair, while it runs.
    wake: Option<UnixStream>,
}

/// This process's watcher state.
static WATCHER: PerProcess<Mutex<Shared>> = PerProcess::new();

/// `state`'s lock. Nothing under it panics, so poisoning means nothing here.
fn lock(state: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Turns `word` (a `Stop`'s) to `pid` when process `pid` exits: at once with `exit`, its
/// pidfd; within [`LOOK_EVERY`] without one; not once `alive` (the `Stop`'s token) is gone.
/// Starts the thread if none runs.
pub(crate) fn watch(
    pid: u32,
    exit: Option<OwnedFd>,
    word: Arc<AtomicU32>,
    alive: Weak<()>,
) -> std::io::Result<()> {
    let state = WATCHER.get_or_make(Mutex::default);
    let mut shared = lock(state);
    if !shared.running {
        // No thread (none yet, or it ended): a new one, with a new pair. Its first look takes
        // the lock, so it sees the watch added below.
        let (wake, woken) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        woken.set_nonblocking(true)?;
        std::thread::Builder::new()
            .name("mmf-exit-watch".into())
            .spawn(move || run(state, &woken))?;
        shared.running = true;
        shared.wake = Some(wake);
    }
    shared.added.push(Watch {
        pid,
        exit,
        word,
        alive,
    });
    nudge(&shared);
    Ok(())
}

/// Wakes the thread, if this process has one, to look at what it watches: a `Stop` that
/// watched something was dropped.
pub(crate) fn wake() {
    if let Some(state) = WATCHER.get() {
        nudge(&lock(state));
    }
}

/// One byte to the thread, if it runs. A full socket (the thread has bytes to read already) is
/// as good.
fn nudge(shared: &Shared) {
    if let Some(wake) = &shared.wake {
        let _ = (&*wake).write(&[1]);
    }
}

/// The thread's body: polls the wake-up end and every pidfd until nothing is left to watch.
fn run(state: &Mutex<Shared>, woken: &UnixStream) {
    let mut watches: Vec<Watch> = Vec::new();
    loop {
        {
            let mut shared = lock(state);
            watches.append(&mut shared.added);
            // Ended: turned (by the exit below, or by hand), or its `Stop` dropped.
            watches.retain(|w| w.alive.strong_count() > 0 && w.word.load(Ordering::SeqCst) == 0);
            if watches.is_empty() {
                // Its write end goes with it: a process that watches nothing holds nothing.
                shared.running = false;
                shared.wake = None;
                return;
            }
        }
        let fds: Vec<BorrowedFd<'_>> = std::iter::once(woken.as_fd())
            .chain(
                watches
                    .iter()
                    .filter_map(|w| w.exit.as_ref().map(AsFd::as_fd)),
            )
            .collect();
        let timeout = watches
            .iter()
            .any(|w| w.exit.is_none())
            .then_some(LOOK_EVERY);
        // A failed poll (no memory): every pid is looked at instead, and again a little later.
        let ready = os::poll_ready(&fds, timeout).unwrap_or_else(|_| {
            std::thread::sleep(LOOK_EVERY);
            Vec::new()
        });
        drop(fds);
        if ready.first() == Some(&true) && drained(woken) {
            // Every sender is gone: not reached while the state holds the write end.
            let mut shared = lock(state);
            shared.running = false;
            shared.wake = None;
            return;
        }
        let mut next_fd = 1;
        for w in &watches {
            let ended = match w.exit {
                Some(_) => {
                    next_fd += 1;
                    match ready.get(next_fd - 1) {
                        Some(&ready) => ready,
                        None => os::pid_exited(w.pid),
                    }
                }
                None => os::pid_exited(w.pid),
            };
            if ended {
                crate::stop::fire(&w.word, w.pid);
            }
        }
    }
}

/// Reads every byte the wake-up end holds; whether its other end is gone.
fn drained(mut woken: &UnixStream) -> bool {
    let mut bytes = [0u8; 64];
    loop {
        match woken.read(&mut bytes) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// The exit watcher threads of this process now (threads named `mmf-exit-watch`).
#[cfg(test)]
pub(crate) fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|c| c.trim() == "mmf-exit-watch")
        .count()
}
