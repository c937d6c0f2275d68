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
//! A watch ends when its process exits or its `Stop`'s last clone is dropped. One whose `Stop`
//! was turned by [`Stop::stop`](crate::Stop::stop) (which must stay async-signal-safe, so it
//! takes no lock and writes to no socket) ends at the thread's next wake-up: it keeps its
//! `pidfd` open until then, and costs nothing else.
//!
//! A child forked without exec has a copy of this state but not the thread: a watch it adds
//! starts a thread of its own (the state records which process started the thread).

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use crate::os;

/// How often a pid without a pidfd is looked at.
const LOOK_EVERY: Duration = Duration::from_millis(10);

/// One watched process.
struct Watch {
    pid: u32,
    /// Its pidfd; `None` where there are none (the pid is looked at instead).
    exit: Option<OwnedFd>,
    /// The word of the `Stop` to turn: weak, so that a dropped `Stop` ends its watch.
    word: Weak<AtomicU32>,
}

/// What the adding side and the thread share, under [`WATCHER`].
struct Shared {
    /// The process that started the thread: a forked child has this state but not the thread.
    owner: u32,
    /// Whether the thread runs (it clears this, under the lock, as it ends).
    running: bool,
    /// Watches added since the thread last looked.
    added: Vec<Watch>,
    /// The write end of the thread's wake-up pair.
    wake: UnixStream,
}

static WATCHER: Mutex<Option<Shared>> = Mutex::new(None);

/// The process that last started a thread ([`Shared::owner`]), readable without the lock: a
/// forked child's drop of a `Stop` it inherited looks at this and leaves the lock alone (which
/// the fork may have copied held, by a thread the child does not have).
static OWNER: AtomicU32 = AtomicU32::new(0);

/// The shared state. Nothing under the lock panics, so poisoning means nothing here.
fn lock() -> MutexGuard<'static, Option<Shared>> {
    WATCHER.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Turns `word` (a `Stop`'s) to `pid` when process `pid` exits: at once with `exit`, its
/// pidfd; within [`LOOK_EVERY`] without one. Starts the thread if none runs.
pub(crate) fn watch(pid: u32, exit: Option<OwnedFd>, word: &Arc<AtomicU32>) -> std::io::Result<()> {
    let mut guard = lock();
    let me = std::process::id();
    let shared = match guard.as_mut() {
        Some(shared) if shared.running && shared.owner == me => shared,
        _ => {
            // No thread here (none yet, it ended, or this is a forked child): a new one, with
            // a new pair. Its first look takes the lock, so it sees the watch added below.
            let (wake, woken) = UnixStream::pair()?;
            wake.set_nonblocking(true)?;
            woken.set_nonblocking(true)?;
            std::thread::Builder::new()
                .name("mmf-exit-watch".into())
                .spawn(move || run(&woken))?;
            OWNER.store(me, Ordering::SeqCst);
            guard.insert(Shared {
                owner: me,
                running: true,
                added: Vec::new(),
                wake,
            })
        }
    };
    shared.added.push(Watch {
        pid,
        exit,
        word: Arc::downgrade(word),
    });
    nudge(shared);
    Ok(())
}

/// Wakes the thread, if this process has one, to look at what it watches: a `Stop` that
/// watched something was dropped.
pub(crate) fn wake() {
    if OWNER.load(Ordering::SeqCst) != std::process::id() {
        return;
    }
    if let Some(shared) = lock().as_ref() {
        if shared.running && shared.owner == std::process::id() {
            nudge(shared);
        }
    }
}

/// One byte to the thread. A full socket (the thread has bytes to read already) is as good.
fn nudge(shared: &Shared) {
    let _ = (&shared.wake).write(&[1]);
}

/// The thread's body: polls the wake-up end and every pidfd until nothing is left to watch.
fn run(woken: &UnixStream) {
    let mut watches: Vec<Watch> = Vec::new();
    loop {
        {
            let mut guard = lock();
            let Some(shared) = guard.as_mut() else {
                return; // not reached: the state outlives the thread
            };
            watches.append(&mut shared.added);
            // Ended: turned (by the exit below, or by hand) or dropped.
            watches.retain(|w| {
                w.word
                    .upgrade()
                    .is_some_and(|w| w.load(Ordering::SeqCst) == 0)
            });
            if watches.is_empty() {
                shared.running = false;
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
            let mut guard = lock();
            if let Some(shared) = guard.as_mut() {
                shared.running = false;
            }
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
                if let Some(word) = w.word.upgrade() {
                    crate::stop::fire(&word, w.pid);
                }
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
