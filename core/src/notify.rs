//! `async` waits: [`Channel::changed`], [`Follower::changed`](crate::Follower::changed) and
//! [`Follower::open_async`](crate::Follower::open_async) return runtime-agnostic futures, and
//! [`Follower::values`](crate::Follower::values) a stream.
//!
//! # Design and cost
//!
//! Parking a runtime thread per waiting channel would defeat the point of async, and polling
//! would burn a core. Instead one background thread per process (started on first use, named
//! `mmf-notify`) sleeps in `futex_waitv(2)` on the `latest` words of *every* channel that has a
//! pending future, plus one private control word that registrations bump to make it re-arm. When
//! a writer in any process publishes, the kernel wakes that thread, which wakes exactly the
//! futures whose channel moved. A registered future counts as a waiter in the channel header
//! (like a blocking waiter), so writers issue the wake only while someone waits. A future may
//! also ask to be woken at a time (a follower's, to look at its name every 100 ms), or ask for
//! that alone (a follower being opened, before there is a channel to watch): the thread sleeps
//! no longer than until the earliest such time, so no timer of the executor's is needed.
//!
//! Cost: one thread and one syscall per wake-up for the whole process, however many channels
//! are awaited, up to 127 at a time (channel handles and [`Stop`](crate::Stop)s awaited
//! through [`Stop::stopped`](crate::Stop::stopped) together; two handles of one channel map its
//! word at two addresses and count twice); beyond that, or on kernels before Linux
//! 5.16 (no `futex_waitv`), or outside Linux, the thread re-checks pending channels every
//! millisecond. With no channel pending it sleeps: until a future comes, a follower's time to
//! look, or, on Linux, a [`Stop`](crate::Stop) awaited through `Stop::stopped` is turned (a
//! stop bumps the thread's control word, on which it then sleeps alone); outside Linux a
//! pending `Stop::stopped` is looked at every millisecond too.
//! So it does while any pending future cannot be counted as a waiter (a read-only handle, or
//! one that found no free reader-pin entry): writers do not wake the futex for it.
//! A [`Follower`](crate::Follower) waiting (its `changed`, its value stream) also looks at its
//! name every 100 ms, each on its own schedule: idle followers cost the thread and their tasks
//! about ten wake-ups a second each (a review measured 100 idle value streams on 100 channels
//! at 2.4 % of a core on tokio's `current_thread` runtime, 7.4 % on two worker threads, where
//! 100 plain `Channel::changed` futures cost nothing measurable). Waits that keep resolving at
//! once yield to the executor now and then (see [`Channel::changed`]).
//! Works with any executor (tokio, async-std, smol, a hand-rolled `block_on`): it only uses
//! `std::task::Waker`. With no future pending the thread sleeps until one is; a process made by
//! `fork` starts a thread of its own at its first pending future.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
#[cfg(not(target_os = "linux"))]
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
#[cfg(not(target_os = "linux"))]
use std::sync::Condvar;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::channel::Channel;
use crate::layout::split_latest;
use crate::os::{PerProcess, ProcessId};

/// The future returned by [`Channel::changed`]: resolves to the new generation once the
/// channel's generation exceeds the one it was created with.
#[must_use = "futures do nothing unless polled"]
pub struct Changed<'a> {
    ch: &'a Channel,
    since: u64,
    waiting: Waiting,
}

/// A future's registration with the notifier, if it has one: what [`Changed`] and
/// [`FollowerChanged`](crate::FollowerChanged) wait with.
#[derive(Debug, Default)]
pub(crate) struct Waiting {
    /// Registration id, the pin entry through which it is counted as a waiter, and the process
    /// that counted it (a forked child that drops an inherited future must not uncount the
    /// parent's wait, nor a descendant that got the pid of an ancestor that died).
    reg: Option<(u64, Option<usize>, ProcessId)>,
    /// Its yield to the executor, when this thread's waits have resolved at once for long.
    yielding: Yield,
}

/// How long the waits of one thread may keep resolving at once before the next one yields to
/// the executor ([`Yield`]). (A count, as tokio's budget of 128 operations, made a flat-out
/// consumer with no work per value yield every 64 values, 12-20 % of its rate.)
const AT_ONCE_FOR: Duration = Duration::from_millis(2);

/// A row of waits resolved at once that ends after this long without one: the thread did
/// something else meanwhile (a consumer that samples every 10 ms awaits its executor's timer in
/// between), and its next wait starts a row of its own instead of yielding each time.
const AT_ONCE_GAP: Duration = Duration::from_millis(50);

/// How long after a yield the notifier thread wakes the task. Woken at once, the wake reached
/// tokio's `current_thread` runtime before it had looked at its timers, and it took it without
/// looking (it looks every 61 tasks: a 1 ms ticker still waited 123 ms, a review found); woken
/// a little later, the runtime finds nothing to run, looks at its timers and I/O, and parks
/// until the wake, as after `tokio::task::yield_now`.
const YIELD_FOR: Duration = Duration::from_micros(50);

/// This thread's row of waits resolved at once: when it began, and when the last one resolved.
#[derive(Clone, Copy)]
struct AtOnce {
    since: Instant,
    last: Instant,
}

thread_local! {
    static AT_ONCE: std::cell::Cell<Option<AtOnce>> = const { std::cell::Cell::new(None) };
}

/// A wait that found its value there and would resolve at once: whether this thread's waits
/// have kept resolving at once for [`AT_ONCE_FOR`], so that this one yields first (a new row
/// begins with the wait after the yield).
fn at_once_spent() -> bool {
    AT_ONCE.with(|row| {
        let now = Instant::now();
        let since = match row.get() {
            Some(r) if now.duration_since(r.last) < AT_ONCE_GAP => r.since,
            _ => now,
        };
        let spent = now.duration_since(since) >= AT_ONCE_FOR;
        row.set((!spent).then_some(AtOnce { since, last: now }));
        spent
    })
}

/// A wait that was pending and resolved: its task gave the thread back meanwhile, and the row
/// of waits resolved at once begins again. (Not a wait that is merely pending: in a `select!`
/// of an always-ready wait and an idle one, the idle one is pending every time while the task
/// never gives the thread back, a review found.)
fn slept() {
    AT_ONCE.with(|row| row.set(None));
}

/// A yield to the executor by a wait that would resolve at once, after this thread's waits
/// did for long ([`at_once_spent`]): pending, its task woken by the notifier thread a moment
/// later ([`YIELD_FOR`]).
///
/// A writer that publishes faster than a consumer takes values keeps every wait ready, and a
/// consumer's loop (`changed(seen).await`, read, work) then never gave the thread back: on a
/// one-thread runtime every other task waited for as long as the writer ran (a review: a 1 ms
/// ticker held up 116-612 ms on tokio's `current_thread`, up to 4 s in a debug build). A task
/// that wakes itself while it runs (`wake_by_ref`, which the value stream did every 64 items)
/// goes back on the runtime's local queue, and tokio looks at its timers and I/O only every 61
/// of those (785 ms there).
#[derive(Debug, Default)]
pub(crate) struct Yield {
    /// Its registration's id, while it waits to be woken.
    id: Option<u64>,
}

impl Yield {
    /// Ready unless this thread's waits have resolved at once for long; then pending once,
    /// woken by the notifier thread, and ready when polled again. Ready too where the notifier
    /// thread cannot be started (no threads left): the wait resolves without yielding, as it
    /// did before yields were made.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(id) = self.id.take() {
            deregister(id);
            return Poll::Ready(());
        }
        if !at_once_spent() {
            return Poll::Ready(());
        }
        let Ok(n) = try_notifier() else {
            return Poll::Ready(());
        };
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        n.register(
            id,
            Registration::channelless(cx, Some(Instant::now() + YIELD_FOR), None),
        );
        self.id = Some(id);
        Poll::Pending
    }
}

impl Drop for Yield {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            deregister(id);
        }
    }
}

struct Registration {
    /// Address of the channel's `latest` word; valid while the registration exists. The future
    /// that made it borrows the channel and removes it (under the lock) when dropped; a future
    /// that is never dropped (`mem::forget`, which safe code may do) cannot, so the channel's own
    /// `Drop` removes what is left of its registrations, under the same lock, before it unmaps
    /// ([`forget_channel`]). `None` for a [`Timer`]'s, which watches no channel.
    word: Option<usize>,
    /// The futex word's value (the low half of `latest`) when the future last polled.
    expected: u32,
    /// The whole `latest` word then: a generation that moved by a multiple of 2^24 with the
    /// same slot (a peer can write that) leaves the futex word as it was, and must still wake.
    seen: u64,
    waker: Waker,
    /// Whether writers know about this waiter (else it must be re-checked by polling).
    counted: bool,
    /// When to wake the future even if nothing moved (a follower's look at its name).
    wake_at: Option<Instant>,
    /// A follower's: the address of the channel's `retired` word (valid as `word` is) and the
    /// value its last look read; the future is woken once the word reads otherwise.
    mark: Option<(usize, u64)>,
    /// The channel's mark of a truncation caught by the `SIGBUS` handler: set, the zero pages
    /// will never move, so the future is woken to resolve (`Changed::poll`).
    tripped: &'static std::sync::atomic::AtomicBool,
    /// A [`Stopped`]'s: the word of its `Stop` (a private futex word, 0 until stopped), held
    /// here so that it lives as long as the registration; the future is woken once it is not 0.
    stop: Option<Arc<AtomicU32>>,
}

impl Registration {
    /// A registration that watches no channel: a [`Timer`]'s (`wake_at`) or a [`Stopped`]'s
    /// (`stop`). Nothing for writers to count, and nothing to poll: the time, or the stop's
    /// word, which wakes the notifier itself.
    fn channelless(
        cx: &Context<'_>,
        wake_at: Option<Instant>,
        stop: Option<Arc<AtomicU32>>,
    ) -> Registration {
        Registration {
            word: None,
            expected: 0,
            seen: 0,
            waker: cx.waker().clone(),
            counted: true,
            wake_at,
            mark: None,
            tripped: &NEVER_TRIPPED,
            stop,
        }
    }
}

struct Notifier {
    regs: Mutex<HashMap<u64, Registration>>,
    control: AtomicU32,
    /// Set once its thread runs: no registration is made before (see [`notifier`]).
    thread: OnceLock<()>,
    /// Held by the poll that starts the thread.
    starting: Mutex<()>,
    /// Where the thread sleeps outside Linux when it has no channel or stop to look at:
    /// [`Notifier::idle`]. `idling` says that it may be asleep there, so that a re-arm costs no
    /// lock otherwise. (On Linux it sleeps on `control` itself.)
    #[cfg(not(target_os = "linux"))]
    idle: (Mutex<()>, Condvar),
    #[cfg(not(target_os = "linux"))]
    idling: AtomicBool,
}

/// The process's notifier, once started. A child made by `fork` inherits its parent's notifier
/// but not the thread that runs it (nor, perhaps, its lock in a usable state): for the child
/// that one does not count, and the child starts its own at its first pending future.
static N: PerProcess<Notifier> = PerProcess::new();

/// Registration ids, for the whole process and whatever `fork` makes of it: a future a forked
/// child inherited holds an id its parent gave it, which must not be one the child's own
/// notifier hands out again (the child would then remove or replace its own registration).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A channel's `latest` word as a waiter loads it: SeqCst where the waiter may be counted in
/// the header (the count's protocol with writers, see `snapshot.rs`), else Relaxed plus an
/// Acquire fence (`load_acquire`), the only load sound on a read-only mapping, where no waiter
/// is counted.
fn load_latest(word: &AtomicU64, counted: bool) -> u64 {
    if counted {
        word.load(Ordering::SeqCst)
    } else {
        crate::sync::load_acquire(word)
    }
}

/// This process's notifier, with its thread running. A thread that cannot be started (no
/// threads left) panics the poll; the next poll tries again. No future is registered in a
/// notifier before its thread runs: other polls wait on `starting` for the one starting it,
/// and try themselves if it failed (a registration made meanwhile would never be woken). The
/// panic comes after `starting` is released, so a panic hook that polls a future of its own
/// does not wait for itself, and the lock is not poisoned.
fn notifier() -> &'static Notifier {
    match try_notifier() {
        Ok(n) => n,
        Err(e) => panic!("could not start the mmf-notify thread: {e}"),
    }
}

/// This process's notifier, its thread started if it was not: the error where the thread
/// cannot be started (no threads left), for a later call to try again.
fn try_notifier() -> std::io::Result<&'static Notifier> {
    let n: &'static Notifier = N.get_or_make(|| Notifier {
        regs: Mutex::new(HashMap::new()),
        control: AtomicU32::new(0),
        thread: OnceLock::new(),
        starting: Mutex::new(()),
        #[cfg(not(target_os = "linux"))]
        idle: (Mutex::new(()), Condvar::new()),
        #[cfg(not(target_os = "linux"))]
        idling: AtomicBool::new(false),
    });
    if n.thread.get().is_some() {
        return Ok(n);
    }
    let _starting = n.starting.lock().unwrap_or_else(|e| e.into_inner());
    if n.thread.get().is_none() {
        std::thread::Builder::new()
            .name("mmf-notify".into())
            .spawn(move || n.run())?;
        let _ = n.thread.set(());
    }
    Ok(n)
}

/// At most this many channels in one `futex_waitv` call (the kernel's limit is 128, one entry
/// is the control word).
const MAX_WAITV: usize = 127;

/// How long the notifier sleeps with no future pending (Linux: elsewhere it polls).
#[cfg(target_os = "linux")]
const IDLE_SLEEP: Duration = Duration::from_secs(3600);

impl Notifier {
    fn run(&self) {
        loop {
            let control = self.control.load(Ordering::SeqCst);
            // (`stops` keeps the stops' words alive while the thread sleeps on them.)
            let (words, stops, overflow, earliest) = {
                let regs = self.regs.lock().unwrap_or_else(|p| p.into_inner());
                let mut words: Vec<(usize, u32)> = regs
                    .values()
                    .filter(|r| r.counted)
                    .filter_map(|r| Some((r.word?, r.expected)))
                    .collect();
                // Many futures on one handle are one futex word: the limit counts handles (and
                // expected values: futures that last polled at different generations).
                words.sort_unstable();
                words.dedup();
                let mut stops: Vec<Arc<AtomicU32>> =
                    regs.values().filter_map(|r| r.stop.clone()).collect();
                stops.sort_unstable_by_key(|w| Arc::as_ptr(w) as usize);
                stops.dedup_by_key(|w| Arc::as_ptr(w) as usize);
                let overflow = words.len() + stops.len() > MAX_WAITV;
                words.truncate(MAX_WAITV);
                stops.truncate(MAX_WAITV - words.len());
                // A follower's future sleeps on its channel's `retired` word too, expecting the
                // mark it last looked at: a mark stored after `wake_moved` looked at the word,
                // whose wake came before this sleep, still ends it (the kernel compares every
                // word before it sleeps), as in `Snapshot::wait_for_change`. Only as many as
                // fit beside the rest: one left out costs at most this sleep's bound
                // (`MAX_SLEEP`) should its wake come in that window, where an overflow would
                // make the thread poll every millisecond.
                let mut marks: Vec<(usize, u32)> = regs
                    .values()
                    .filter(|r| r.counted)
                    .filter_map(|r| r.mark.map(|(w, seen)| (w, seen as u32)))
                    .collect();
                marks.sort_unstable();
                marks.dedup();
                marks.truncate(MAX_WAITV - words.len() - stops.len());
                words.extend(marks);
                let uncounted = regs.values().any(|r| !r.counted);
                let earliest = regs.values().filter_map(|r| r.wake_at).min();
                (words, stops, uncounted || overflow, earliest)
            };
            let slept = self.sleep(control, &words, &stops, overflow, earliest);
            if !slept {
                // No `futex_waitv` (an old kernel, a seccomp filter that refuses it, not Linux)
                // or a failed call: poll instead of spinning on the error, but only while there
                // is a channel to look at. With nothing but times to wake, stops or nothing at
                // all pending, polling would wake this thread a thousand times a second for
                // the rest of the process's life (a `Stop::stopped` awaited for a service's
                // whole life did). On Linux a stop turned since `control` was loaded bumped it
                // (`stop_fired`), which ends the sleep on it; one turned before was looked at
                // by that load's time: seen here, it is woken without a sleep.
                let quiet = words.is_empty()
                    && !overflow
                    && (cfg!(target_os = "linux") || stops.is_empty());
                if quiet {
                    if !stops.iter().any(|s| s.load(Ordering::SeqCst) != 0) {
                        self.idle(control, earliest);
                    }
                } else {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            self.wake_moved();
        }
    }

    /// One `futex_waitv`, until `earliest` at the latest; false if it could not sleep (the
    /// caller then polls).
    #[cfg(target_os = "linux")]
    fn sleep(
        &self,
        control: u32,
        words: &[(usize, u32)],
        stops: &[Arc<AtomicU32>],
        overflow: bool,
        earliest: Option<Instant>,
    ) -> bool {
        use crate::os::{FutexWaitv, FUTEX2_PRIVATE, FUTEX2_SIZE_U32};
        let mut entries = Vec::with_capacity(words.len() + stops.len() + 1);
        entries.push(FutexWaitv {
            val: u64::from(control),
            uaddr: std::ptr::from_ref(&self.control) as u64,
            flags: FUTEX2_SIZE_U32 | FUTEX2_PRIVATE,
            reserved: 0,
        });
        for &(word, expected) in words {
            entries.push(FutexWaitv {
                val: u64::from(expected),
                uaddr: word as u64,
                flags: FUTEX2_SIZE_U32,
                reserved: 0,
            });
        }
        // A stop's word: private, and 0 until stopped (a stopped one returns at once).
        for stop in stops {
            entries.push(FutexWaitv {
                val: 0,
                uaddr: Arc::as_ptr(stop) as u64,
                flags: FUTEX2_SIZE_U32 | FUTEX2_PRIVATE,
                reserved: 0,
            });
        }
        let timeout = if overflow {
            Duration::from_millis(1)
        } else if words.is_empty() {
            // No channel to look at: only a registration (which bumps `control`) or a stop
            // (whose word is in `entries`, and which wakes it) gives it work.
            IDLE_SLEEP
        } else {
            crate::wait::MAX_SLEEP
        };
        let timeout = earliest.map_or(timeout, |t| {
            timeout.min(t.saturating_duration_since(Instant::now()))
        });
        // SAFETY: the control word lives in a leaked, never-freed `Notifier`. Each channel word
        // is the first half of a live `latest` word, or of the `retired` word of the same
        // header (a follower's registration: `Registration::mark`): a registration is removed
        // (under the lock, bumping `control`) before its channel is unmapped (by its future's
        // drop, or else by the channel's, see `Registration::word`), and if that happens after
        // we copied its address, the bumped control word makes the call return at once; an
        // address unmapped in between gives EFAULT (then we poll), not undefined behaviour: the
        // kernel only reads. Each stop's word is in memory of this process that `stops` keeps
        // alive.
        unsafe { crate::os::futex_waitv(&entries, timeout) }
    }

    /// Sleeps until `control` moves from `control` (the registrations changed, or a stop was
    /// turned) or `until` comes, without `futex_waitv`: on Linux in `FUTEX_WAIT` on the control
    /// word, which [`Notifier::rearm`] and [`stop_fired`] wake after they bump it (the kernel
    /// compares the word before it sleeps, so a bump after the caller's load is not lost).
    #[cfg(target_os = "linux")]
    fn idle(&self, control: u32, until: Option<Instant>) {
        while self.control.load(Ordering::SeqCst) == control {
            let left = match until {
                None => IDLE_SLEEP,
                Some(t) => t.saturating_duration_since(Instant::now()),
            };
            if left.is_zero() {
                break;
            }
            crate::os::wait_private(&self.control, control, left);
        }
    }

    /// Sleeps until the registrations change (`control` moves from `control`) or `until`
    /// comes, outside Linux: on the condition variable that [`Notifier::rearm`] signals while
    /// `idling` is set.
    #[cfg(not(target_os = "linux"))]
    fn idle(&self, control: u32, until: Option<Instant>) {
        let (lock, cv) = &self.idle;
        let mut guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        // SeqCst, as `rearm`'s increment and load: either `rearm` sees `idling` set (and then
        // signals under the lock, after this thread waits), or this load sees its increment.
        self.idling.store(true, Ordering::SeqCst);
        while self.control.load(Ordering::SeqCst) == control {
            guard = match until {
                None => cv.wait(guard).unwrap_or_else(|p| p.into_inner()),
                Some(t) => {
                    let left = t.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    cv.wait_timeout(guard, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
        self.idling.store(false, Ordering::SeqCst);
    }

    #[cfg(not(target_os = "linux"))]
    fn sleep(
        &self,
        _control: u32,
        _words: &[(usize, u32)],
        _stops: &[Arc<AtomicU32>],
        _overflow: bool,
        _earliest: Option<Instant>,
    ) -> bool {
        false
    }

    /// Wakes and drops every registration whose channel's `latest` moved, whose channel was
    /// truncated under it, or whose time to wake came.
    ///
    /// The wakers run after the lock is released: a waker may poll or drop a `Changed` on the
    /// spot (an inline executor, or the last reference to a task), which takes the same lock. A
    /// waker that panics is contained here, so that it cannot stop this thread, and with it every
    /// async wait of the process.
    fn wake_moved(&self) {
        let moved: Vec<Registration> = {
            let now = Instant::now();
            let mut regs = self.regs.lock().unwrap_or_else(|p| p.into_inner());
            regs.extract_if(|_, r| {
                let latest = r.word.map(|w| {
                    // SAFETY: see `Registration::word`: we hold the lock, so the channel is
                    // mapped (a timer's registration has no word, and reads nothing).
                    let word = unsafe { &*(w as *const AtomicU64) };
                    load_latest(word, r.counted)
                });
                // A tripped channel's word may read as it did (0 before the first value, or a
                // header page still in the file): wake it anyway. The notifier looks at least
                // every `MAX_SLEEP`.
                let retired = r.mark.is_some_and(|(w, seen)| {
                    // SAFETY: as for `word` above: the same channel's header, mapped while the
                    // registration exists, which the lock we hold keeps.
                    crate::sync::load_acquire(unsafe { &*(w as *const AtomicU64) }) != seen
                });
                latest.is_some_and(|l| l != r.seen)
                    || retired
                    || r.stop
                        .as_ref()
                        .is_some_and(|w| w.load(Ordering::SeqCst) != 0)
                    || r.tripped.load(Ordering::Relaxed)
                    || r.wake_at.is_some_and(|t| t <= now)
            })
            .map(|(_, r)| r)
            .collect()
        };
        for r in moved {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.waker.wake()));
        }
    }

    /// Puts `reg` under `id` (a future's, or a timer's), replacing what that one registered
    /// before. The thread only needs to re-arm when its set of futex words, their expected
    /// values or its times to wake changed: a repeated poll that merely refreshes the waker
    /// costs no system call.
    fn register(&self, id: u64, reg: Registration) {
        let (expected, wake_at) = (reg.expected, reg.wake_at);
        let previous = self
            .regs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, reg);
        // (`previous`, and the waker it holds, is dropped here, outside the lock.)
        if previous.is_none_or(|p| p.expected != expected || p.wake_at != wake_at) {
            self.rearm();
        }
    }

    fn rearm(&self) {
        self.control.fetch_add(1, Ordering::SeqCst);
        #[cfg(target_os = "linux")]
        crate::os::wake_private(&self.control);
        #[cfg(not(target_os = "linux"))]
        if self.idling.load(Ordering::SeqCst) {
            // The thread is (or is about to be) asleep in `idle`: taking the lock waits until
            // it is in `wait`, so the signal cannot come between its look and its sleep.
            let (lock, cv) = &self.idle;
            drop(lock.lock().unwrap_or_else(|p| p.into_inner()));
            cv.notify_all();
        }
    }
}

/// Bumps the control word of this process's notifier, if it has one, after a stop's word was
/// turned (`stop::fire`): a thread that cannot sleep in `futex_waitv` sleeps on that word
/// alone ([`Notifier::idle`]) and so wakes to look at the stops. Async-signal-safe, as
/// `Stop::stop` must stay: a load, an atomic increment and a futex wake; no lock, no
/// allocation (`PerProcess::get` asks for the process id only once a notifier exists, by which
/// time the fork counter's handler is registered).
pub(crate) fn stop_fired() {
    // Orders the stop's turned word (a SeqCst compare-and-swap) before the look for a
    // notifier, as the notifier orders its registration before its look at that word: of a
    // notifier made while the stop fires, either it sees the word turned or this sees it.
    std::sync::atomic::fence(Ordering::SeqCst);
    if let Some(n) = N.get() {
        n.control.fetch_add(1, Ordering::SeqCst);
        #[cfg(target_os = "linux")]
        crate::os::wake_private(&n.control);
    }
}

/// Takes registration `id` off this process's notifier. Not `notifier()`: a drop must not start
/// a thread (in a forked child, whose notifier never held the registration, there may be none).
/// The notifier need only look again if it was still watching for this one: one that resolved
/// was taken off by `wake_moved` already (a review counted 2.64 wake-ups of the notifier per
/// resolved future with the rearm made always, where 2 are needed).
fn deregister(id: u64) {
    let Some(n) = N.get() else { return };
    let removed = n.regs.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    if removed.is_some() {
        // Its waker is dropped outside the lock (see `wake_moved`).
        drop(removed);
        n.rearm();
    }
}

/// Removes the registrations left on the channel whose `latest` word is at `word`: called by
/// the channel's `Drop`, before it unmaps. A live `Changed` borrows its channel, so the only
/// registrations left then are those of futures that were leaked without being dropped; the
/// channel's pin entry, released right after, takes their waiter counts with it.
pub(crate) fn forget_channel(word: usize) {
    let Some(n) = N.get() else { return };
    let left: Vec<Registration> = {
        let mut regs = n.regs.lock().unwrap_or_else(|p| p.into_inner());
        regs.extract_if(|_, r| r.word == Some(word))
            .map(|(_, r)| r)
            .collect()
    };
    if !left.is_empty() {
        n.rearm();
    }
    // Their wakers are dropped here, outside the lock (see `wake_moved`).
    drop(left);
}

// docs.rs labels the items of a module the feature gates by themselves, not those of an impl
// block there on a type of another module.
#[cfg_attr(docsrs, doc(cfg(feature = "async")))]
impl Channel {
    /// A future that resolves to the new generation once the generation exceeds `since`.
    /// On a channel truncated under the mapping (caught by
    /// [`truncation::install`](crate::truncation::install)'s handler) it resolves with
    /// `since + 1`, so that the read that follows reports `Truncated`.
    ///
    /// Executor-agnostic; see the [`notify`](self) module docs for how it waits: one shared
    /// thread per process, asleep in the kernel on Linux 5.16+ (it looks again every 100 ms)
    /// while every pending future counts as a waiter, that is, is on a read-write handle with
    /// a reader-pin entry, and at most 127 channel handles are awaited. Otherwise (one future on a
    /// read-only handle, or on a handle that found every entry taken, is enough) the thread
    /// looks at every pending channel each millisecond: about 5 % of a core here.
    ///
    /// Like every wait on a handle it has no timeout of its own and is bound to this channel's
    /// memory, not to its name: a channel removed (or replaced under its name) while awaited
    /// stays pending until something publishes to that memory. Race it against a timer of the
    /// executor's, and look whether the name still leads here with [`Channel::is_current`]
    /// (what a [`Follower`](crate::Follower) does every 100 ms, and at once when an mmf
    /// process removed or replaced the channel).
    ///
    /// In a consumer's loop, wait on from the generation that the *read* returned, not the one
    /// this future resolved to: a writer may publish again between the two, the read then
    /// gets that newer value, and a wait from the older generation resolves at once for a
    /// value already read (a consumer that counts values reads some twice). The example below
    /// keeps the count so; [`Follower::values`](crate::Follower::values) does it for you.
    ///
    /// Under a writer that publishes faster than the consumer reads, every wait would resolve
    /// at once, and a consumer's loop would never give its executor's thread back. So once the
    /// waits of a thread have kept resolving at once for 2 ms, the next one is pending once and
    /// its task is woken from the notifier thread 50 us later: the executor runs its other
    /// tasks, its timers and its I/O first (as after `tokio::task::yield_now`), and no value is
    /// lost. This costs a busy consumer about 5 % of its rate. The same holds for [`Follower::changed`](crate::Follower::changed) and
    /// [`Follower::values`](crate::Follower::values).
    ///
    /// # Panics
    ///
    /// A poll panics if the process cannot start that thread (no threads left: `RLIMIT_NPROC`,
    /// `threads-max`), as `std::thread::spawn` does; a later poll tries again.
    ///
    /// ```
    /// use mmf::{Channel, Tag};
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     struct W(std::thread::Thread);
    /// #     impl std::task::Wake for W { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
    /// #     let waker = std::sync::Arc::new(W(std::thread::current())).into();
    /// #     let mut cx = std::task::Context::from_waker(&waker);
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v } std::thread::park() }
    /// # }
    /// // `block_on`: your executor's (tokio's `Runtime::block_on`, `futures::executor::block_on`);
    /// // a minimal one is hidden in this example.
    /// let ch = Channel::anonymous(64)?;
    /// std::thread::scope(|s| {
    ///     s.spawn(|| {
    ///         std::thread::sleep(std::time::Duration::from_millis(20));
    ///         ch.publish_raw(Tag::TEXT, b"hi")
    ///     });
    ///     assert_eq!(block_on(ch.changed(0)), 1);     // or `ch.changed(0).await` in async code
    /// });
    ///
    /// // A consumer's loop: the next wait starts from the generation of the value read.
    /// let mut seen = 1;
    /// std::thread::scope(|s| {
    ///     s.spawn(|| {
    ///         for i in 2..=50u32 {
    ///             ch.publish_raw(Tag::TEXT, &i.to_le_bytes()).expect("publish");
    ///         }
    ///     });
    ///     while seen < 50 {
    ///         block_on(ch.changed(seen));
    ///         let (meta, _value) = ch.read_raw()?;
    ///         assert!(meta.generation > seen, "no value is read twice");
    ///         seen = meta.generation;
    ///     }
    ///     Ok::<(), mmf::channel::Error>(())
    /// })?;
    /// # Ok::<(), mmf::channel::Error>(())
    /// ```
    pub fn changed(&self, since: u64) -> Changed<'_> {
        Changed {
            ch: self,
            since,
            waiting: Waiting::default(),
        }
    }
}

impl std::fmt::Debug for Changed<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changed")
            .field("channel", self.ch.location())
            .field("since", &self.since)
            .field("registered", &self.waiting.reg.is_some())
            .finish()
    }
}

impl Future for Changed<'_> {
    type Output = u64;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        let this = self.get_mut();
        this.waiting.poll(this.ch, this.since, None, None, cx)
    }
}

impl Waiting {
    /// Resolves to `ch`'s generation once it exceeds `since`; until then registers `cx`'s waker
    /// with the notifier, to be woken when `ch`'s `latest` word moves, when `ch` is truncated
    /// under its mapping (then resolves with `since + 1`, see [`Channel::changed`]), or at
    /// `wake_at`; and, with `mark` (a follower's), when `ch`'s `retired` word reads other than
    /// it, for the follower to look at its name (the caller looks at the word first). A
    /// registration left by an earlier poll is updated; one that resolves is removed.
    pub(crate) fn poll(
        &mut self,
        ch: &Channel,
        since: u64,
        wake_at: Option<Instant>,
        mark: Option<u64>,
        cx: &mut Context<'_>,
    ) -> Poll<u64> {
        // A read-only handle is never counted; a writable one may be.
        let latest = load_latest(ch.latest_word(), !ch.is_read_only());
        let g = split_latest(latest).0;
        if g > since {
            if self.reg.is_some() {
                // Pending before: the task slept until now.
                slept();
            }
            self.unregister(ch);
            if self.yielding.poll(cx).is_pending() {
                return Poll::Pending;
            }
            return Poll::Ready(g);
        }
        if ch.tripped() {
            // Truncated under the mapping (the `SIGBUS` handler caught it, here or in the
            // notifier thread): its zero pages will never move. Resolve, so that the caller's
            // next read reports `Truncated` instead of this future waiting for ever.
            self.unregister(ch);
            return Poll::Ready(since.saturating_add(1));
        }
        let n = notifier();
        let word = std::ptr::from_ref(ch.latest_word()) as usize;
        // Counted as a waiter (claiming a pin entry on a handle's first wait) outside the lock.
        let (id, entry, counted_by) = *self.reg.get_or_insert_with(|| {
            (
                NEXT_ID.fetch_add(1, Ordering::Relaxed),
                ch.waiter_enter(),
                ProcessId::current(),
            )
        });
        // A future a forked child inherited pending is counted by its parent, which may stop
        // waiting (or exit) while the child waits on: not counted here, so that the child's
        // notifier looks at the word every millisecond instead of sleeping on wake-ups that
        // writers make only while someone is counted.
        let counted = entry.is_some() && counted_by == ProcessId::current();
        n.register(
            id,
            Registration {
                word: Some(word),
                expected: latest as u32,
                seen: latest,
                waker: cx.waker().clone(),
                counted,
                wake_at,
                mark: mark.map(|m| (std::ptr::from_ref(ch.retired_word()) as usize, m)),
                tripped: ch.trip_flag(),
                stop: None,
            },
        );
        Poll::Pending
    }

    /// Takes the registration (made with `ch`) off the notifier, and the waiter count it added
    /// off `ch`. Must be called before `ch` goes, or is swapped for another channel.
    pub(crate) fn unregister(&mut self, ch: &Channel) {
        if let Some((id, entry, counted_by)) = self.reg.take() {
            deregister(id);
            if let Some(e) = entry.filter(|_| counted_by == ProcessId::current()) {
                ch.waiter_leave(e);
            }
        }
    }
}

impl Drop for Changed<'_> {
    fn drop(&mut self) {
        self.waiting.unregister(self.ch);
    }
}

/// A wake-up at a time, with no channel: what waits for a channel to be created
/// ([`Follower::open_async`](crate::Follower::open_async)) sleeps on between its looks. The
/// notifier thread runs its waker at that time; dropping it takes the registration off.
#[derive(Debug, Default)]
pub(crate) struct Timer {
    /// Its registration's id, while it has one.
    id: Option<u64>,
}

/// The trip flag of a registration that watches no channel: never set.
static NEVER_TRIPPED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl Timer {
    /// Ready once `at` has passed; until then registers `cx`'s waker to be woken at `at`.
    pub(crate) fn poll(&mut self, at: Instant, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= at {
            self.cancel();
            return Poll::Ready(());
        }
        let id = *self
            .id
            .get_or_insert_with(|| NEXT_ID.fetch_add(1, Ordering::Relaxed));
        notifier().register(id, Registration::channelless(cx, Some(at), None));
        Poll::Pending
    }

    /// Takes its registration off the notifier, if it has one.
    fn cancel(&mut self) {
        if let Some(id) = self.id.take() {
            deregister(id);
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// The future returned by [`Stop::stopped`](crate::Stop::stopped) (feature `async`): resolves
/// to why the [`Stop`](crate::Stop) was turned, once it is.
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct Stopped {
    stop: crate::Stop,
    /// Its registration's id, while it has one.
    id: Option<u64>,
}

impl Stopped {
    pub(crate) fn new(stop: crate::Stop) -> Stopped {
        Stopped { stop, id: None }
    }

    /// Takes its registration off the notifier, if it has one.
    fn cancel(&mut self) {
        if let Some(id) = self.id.take() {
            deregister(id);
        }
    }
}

impl Future for Stopped {
    type Output = crate::StopReason;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<crate::StopReason> {
        let this = self.get_mut();
        if let Some(reason) = this.stop.reason() {
            this.cancel();
            return Poll::Ready(reason);
        }
        let id = *this
            .id
            .get_or_insert_with(|| NEXT_ID.fetch_add(1, Ordering::Relaxed));
        // The notifier sleeps on the stop's word beside the channels' (`futex_waitv` compares
        // it with 0 before it sleeps, so a stop between this look and that sleep is not lost),
        // and `Stop::stop`'s wake of that word wakes it: the stop stays async-signal-safe.
        let stop = Some(Arc::clone(this.stop.word_arc()));
        notifier().register(id, Registration::channelless(cx, None, stop));
        Poll::Pending
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        self.cancel();
    }
}
