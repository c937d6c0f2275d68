//! Truncated channels as errors, not crashes: an opt-in, process-wide `SIGBUS` handler.
//!
//! A process that shrinks a channel's file (`ftruncate`, `truncate -s 0`, a careless
//! `> /dev/shm/mmf.NAME`) makes every later access to the pages past the new end raise `SIGBUS`
//! in every process that has the file mapped, and by default that kills them. Nothing in the
//! mapping can warn a reader first: the size check at open and `Channel::verify` only narrow the
//! window.
//!
//! [`install`] closes it (for whole pages), for processes that opt in (the CLI does; a library must not take a
//! process-wide signal behind its user's back). Every file mapping a `Region` makes is entered in
//! a registry here, whether or not the handler is installed; the handler, on a `SIGBUS` of code
//! `BUS_ADRERR` whose address lies in a registered mapping (a truncation; or the same code for a
//! page a full file system cannot supply: mmf allocates a channel's file whole at creation, and
//! on btrfs turns copy-on-write off for it, so only a page another process punched out of the
//! file, or one a reflink copy or a snapshot shares on a full btrfs, meets that; or an I/O
//! error. Each is handled as a truncation, its handle reporting `Truncated` for good, whose
//! `shrunk` says which it was):
//!
//! 1. maps private zero pages over the mapping from the faulting page to its end
//!    (`mmap(MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS)`): after a truncation those pages are gone
//!    from the file anyway, and pages before the faulting one that are gone too fault and get
//!    the same treatment when they are touched. After a page punched out or an I/O error, the
//!    pages after it may still be the file's: they become zeros in this mapping alone (every
//!    other mapping of the file keeps the file's pages), of no consequence, as the handle
//!    reports `Truncated` from then on;
//! 2. marks the mapping's entry tripped;
//! 3. returns, so the faulting instruction runs again and reads zeros (or writes into the
//!    private page).
//!
//! To the protocol the zeros are one more value a peer wrote, which every read path already
//! treats as untrusted; and the handle checks its entry after each read, publish and `verify`,
//! and reports [`Error::Truncated`](crate::Error::Truncated) instead of what it copied. Every
//! other `SIGBUS` (another address, another code, one sent with `kill`) goes to the handler that
//! was installed before this one: Rust's own stack-overflow handler in a Rust program (which
//! resets the default action for anything that is not a stack overflow), or the default action,
//! which ends the process as before. This is PulseAudio's `memtrap` and the JVM's handling of
//! truncated `MappedByteBuffer`s, with the address ranges in a lock-free table.
//!
//! # Why this is sound
//!
//! The handler only reads atomics, calls `mmap`, `sigaction` and `raise` (system calls, safe in
//! a signal handler on Linux), and saves and restores `errno`. The registry is read lock-free:
//! each entry is a small seqlock (`seq` odd while an entry is written), and entries live in
//! chunks that are never freed, so the handler can walk them at any moment. A `Region` enters
//! its mapping before it first touches it and leaves the registry before the mapping is unmapped
//! (its field order), so no entry ever names an address range that is not that mapping. Replacing
//! mapped pages under the program is, to Rust, the same as another process storing zeros there:
//! `Region` only reaches mapped memory through atomics and its copy routines, never through
//! references that promise the memory does not change.

use std::cell::UnsafeCell;
use std::sync::atomic::{fence, AtomicBool, AtomicI32, AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Mutex, Once};

/// Entries per chunk of the registry; a process with more mappings open adds chunks.
const CHUNK: usize = 32;

/// One registered mapping: `[start, end)` in this process's address space.
struct Entry {
    /// Even: `start`, `end`, `prot` are stable; odd: being written.
    seq: AtomicUsize,
    /// First byte of the mapping; 0 when the entry is free.
    start: AtomicUsize,
    /// One past the mapping's last page.
    end: AtomicUsize,
    /// The protection the zero pages get: that of the mapping.
    prot: AtomicUsize,
    /// Set by the handler when it replaced pages of this mapping.
    tripped: AtomicBool,
    /// Taken by a registration; read and written only under `REGISTER`.
    used: AtomicBool,
}

impl Entry {
    const fn free() -> Entry {
        Entry {
            seq: AtomicUsize::new(0),
            start: AtomicUsize::new(0),
            end: AtomicUsize::new(0),
            prot: AtomicUsize::new(0),
            tripped: AtomicBool::new(false),
            used: AtomicBool::new(false),
        }
    }

    /// Writes the entry's range (under `REGISTER`): odd `seq`, the fields, even `seq`.
    fn write(&self, start: usize, end: usize, prot: usize) {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        self.start.store(start, Ordering::Relaxed);
        self.end.store(end, Ordering::Relaxed);
        self.prot.store(prot, Ordering::Relaxed);
        self.seq.store(s.wrapping_add(2), Ordering::Release);
    }

    /// The entry's range and protection if it is in use and was not being written meanwhile.
    fn read(&self) -> Option<(usize, usize, usize)> {
        let s = self.seq.load(Ordering::Acquire);
        if s % 2 == 1 {
            return None;
        }
        let range = (
            self.start.load(Ordering::Relaxed),
            self.end.load(Ordering::Relaxed),
            self.prot.load(Ordering::Relaxed),
        );
        fence(Ordering::Acquire);
        (self.seq.load(Ordering::Relaxed) == s && range.0 != 0).then_some(range)
    }
}

/// A block of entries; chunks after the first are allocated on demand and never freed.
struct Chunk {
    entries: [Entry; CHUNK],
    next: AtomicPtr<Chunk>,
}

impl Chunk {
    const fn empty() -> Chunk {
        Chunk {
            entries: [const { Entry::free() }; CHUNK],
            next: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// The chunk after this one, if any.
    fn next(&self) -> Option<&'static Chunk> {
        let p = self.next.load(Ordering::Acquire);
        // SAFETY: `next` is only ever set to a pointer from `Box::leak` (in `Registration::new`),
        // and leaked chunks are never freed or moved, so a non-null one points at a live `Chunk`
        // for the rest of the process.
        (!p.is_null()).then(|| unsafe { &*p })
    }
}

static FIRST: Chunk = Chunk::empty();
/// Serialises registrations (never taken by the handler). One per process: a child forked while
/// another thread held the lock would otherwise wait for it for ever at its first open, create
/// or drop of a channel (a review's 5000 forks beside two threads making channels hung up to
/// two children). The child's own lock leaves an entry that a vanished thread was writing
/// with an odd `seq` and `used` set: skipped by the handler, never reused, a few bytes lost.
static REGISTER: super::PerProcess<Mutex<()>> = super::PerProcess::new();

/// This process's [`REGISTER`], taken.
fn register_lock() -> std::sync::MutexGuard<'static, ()> {
    REGISTER
        .get_or_make(|| Mutex::new(()))
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}
/// The page size, set by the first registration.
static PAGE: AtomicUsize = AtomicUsize::new(0);

/// Every entry of the registry, chunk by chunk.
fn entries() -> impl Iterator<Item = &'static Entry> {
    std::iter::successors(Some(&FIRST), |c| c.next()).flat_map(|c| c.entries.iter())
}

/// A mapping's place in the registry, for as long as the mapping exists. Dropping it removes
/// the mapping from the registry; the owner must drop it before it unmaps.
pub(crate) struct Registration {
    entry: &'static Entry,
}

impl Registration {
    /// Enters the mapping `[start, start + len)` (`writable`: mapped `PROT_WRITE`).
    pub(crate) fn new(start: *const u8, len: usize, writable: bool) -> Registration {
        let page = page_size();
        let start = start as usize;
        let end = start.saturating_add(len).next_multiple_of(page);
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        let _guard = register_lock();
        let entry = match entries().find(|e| !e.used.load(Ordering::Relaxed)) {
            Some(e) => e,
            None => {
                let mut last = &FIRST;
                while let Some(c) = last.next() {
                    last = c;
                }
                let chunk: &'static Chunk = Box::leak(Box::new(Chunk::empty()));
                last.next
                    .store(std::ptr::from_ref(chunk).cast_mut(), Ordering::Release);
                &chunk.entries[0]
            }
        };
        entry.used.store(true, Ordering::Relaxed);
        entry.tripped.store(false, Ordering::Relaxed);
        entry.write(start, end, prot as usize);
        Registration { entry }
    }

    /// Whether the handler replaced pages of this mapping: its file was truncated under it, and
    /// whatever was read from or written to those pages since was not the channel's.
    #[inline]
    pub(crate) fn tripped(&self) -> bool {
        self.entry.tripped.load(Ordering::Relaxed)
    }

    /// The flag behind [`tripped`](Self::tripped), for holders that may outlive the mapping
    /// (the async notifier's registrations): entries are never freed, so it stays valid.
    #[cfg(feature = "async")]
    pub(crate) fn flag(&self) -> &'static AtomicBool {
        &self.entry.tripped
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let _guard = register_lock();
        self.entry.write(0, 0, 0);
        self.entry.used.store(false, Ordering::Relaxed);
    }
}

fn page_size() -> usize {
    match PAGE.load(Ordering::Relaxed) {
        0 => {
            // SAFETY: `sysconf` reads a configuration value; no pointers are involved.
            let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            let p = usize::try_from(p)
                .ok()
                .filter(|p| p.is_power_of_two())
                .unwrap_or(4096);
            PAGE.store(p, Ordering::Relaxed);
            p
        }
        p => p,
    }
}

/// The disposition of `SIGBUS` before [`install`], which the handler passes other faults to.
struct Previous(UnsafeCell<Option<libc::sigaction>>);
// SAFETY: written only inside `INSTALL`'s `call_once` (once per process), and only while the
// handler that reads it is not installed; only read afterwards.
unsafe impl Sync for Previous {}
static PREVIOUS: Previous = Previous(UnsafeCell::new(None));
/// Stored (Release) once `PREVIOUS` is written, and loaded (Acquire) by the handler before it
/// reads it: the handler runs on whichever thread faults, and the kernel's order (the write,
/// then `sigaction`, then a delivery) is outside Rust's memory model, where only this pair
/// makes the write happen before the read (ThreadSanitizer reported the two as a race).
static PREVIOUS_SET: AtomicBool = AtomicBool::new(false);
/// Set when the previous handler, called for a signal that was not ours, restored the default
/// action (Rust's stack-overflow handler does, for anything but a stack overflow): from then on
/// the default action is "the previous disposition", and ours is put back in front of it.
static PREVIOUS_NOW_DEFAULT: AtomicBool = AtomicBool::new(false);
/// The installation's `Once`, one per process: a child forked while another thread of its
/// parent ran the installation would find the parent's copy of a plain `Once` "running" for
/// ever, and its own `install` would wait for a thread that does not exist in it.
static INSTALL: super::PerProcess<Once> = super::PerProcess::new();
/// `errno` of a failed installation; 0 once installed.
static INSTALL_ERRNO: AtomicI32 = AtomicI32::new(-1);
/// How many times the handler replaced pages, for tests and `is_installed`'s callers.
static TRIPS: AtomicUsize = AtomicUsize::new(0);

/// Our disposition: `on_sigbus` with siginfo, on the alternate stack if the thread has one.
fn ours() -> libc::sigaction {
    // SAFETY: a zeroed `sigaction` is a valid value of the plain C struct (handler SIG_DFL,
    // empty mask, no flags); the fields set below make it ours.
    let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
    new.sa_sigaction = on_sigbus as *const () as libc::sighandler_t;
    new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    // SAFETY: `sa_mask` is ours to initialise; `sigemptyset` is async-signal-safe.
    unsafe { libc::sigemptyset(&mut new.sa_mask) };
    new
}

/// The current disposition of `SIGBUS`, if it can be read.
fn current() -> Option<libc::sigaction> {
    // SAFETY: a zeroed `sigaction` is valid; `sigaction` with a null new action only reads the
    // current one into `cur`, which we own (async-signal-safe).
    let mut cur: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: see above.
    (unsafe { libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut cur) } == 0).then_some(cur)
}

/// Installs the handler (once per process; later calls return the first call's outcome).
pub(crate) fn install() -> std::io::Result<()> {
    install_in(&INSTALL, || {})
}

/// [`install`] with its per-process `Once`, and a pause inside the installation (before its
/// `sigaction`), which tests fork in.
fn install_in(once: &super::PerProcess<Once>, pause: impl FnOnce()) -> std::io::Result<()> {
    let _ = page_size();
    once.get_or_make(Once::new).call_once(|| {
        let errno = || {
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EINVAL)
        };
        let Some(old) = current() else {
            INSTALL_ERRNO.store(errno(), Ordering::Release);
            return;
        };
        pause();
        if old.sa_sigaction == ours().sa_sigaction {
            // Ours already: a forked child whose parent had installed it (dispositions are
            // inherited), or a second installation in this process (tests). `PREVIOUS` was
            // written before that `sigaction` and holds what came before ours; storing ours
            // there would make the handler pass faults on to itself.
            INSTALL_ERRNO.store(0, Ordering::Release);
            return;
        }
        // SAFETY: `call_once` runs this once per process, and only while the handler is not
        // this process's disposition (checked above), so nothing reads `PREVIOUS`
        // concurrently; the handler reads it only after `sigaction` below made it the
        // disposition, which happens after this store.
        unsafe { *PREVIOUS.0.get() = Some(old) };
        PREVIOUS_SET.store(true, Ordering::Release);
        let new = ours();
        // SAFETY: installs a handler whose body is async-signal-safe (see the module docs);
        // `new` is fully initialised and the old disposition is not asked for again.
        let rc = unsafe { libc::sigaction(libc::SIGBUS, &new, std::ptr::null_mut()) };
        INSTALL_ERRNO.store(if rc == 0 { 0 } else { errno() }, Ordering::Release);
    });
    match INSTALL_ERRNO.load(Ordering::Acquire) {
        0 => Ok(()),
        e => Err(std::io::Error::from_raw_os_error(e)),
    }
}

/// Whether the handler is this process's disposition of `SIGBUS` now: installed, and not
/// replaced since by anyone else.
pub(crate) fn installed() -> bool {
    INSTALL_ERRNO.load(Ordering::Acquire) == 0
        && current().is_some_and(|c| c.sa_sigaction == ours().sa_sigaction)
}

/// How many faults on registered mappings the handler has absorbed in this process.
pub(crate) fn trips() -> usize {
    TRIPS.load(Ordering::Relaxed)
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid `siginfo_t` to an `SA_SIGINFO` handler; `si_addr` is
    // the faulting address for the fault codes (`si_code > 0`), checked before it is used.
    let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    if code == libc::BUS_ADRERR && replace_pages(addr) {
        return;
    }
    pass_on(sig, code, info, ctx);
}

/// The registered mapping that holds `addr`: its entry, end and protection. Lock-free, as the
/// handler needs: it may run while any thread of the process registers or drops a mapping.
fn registered(addr: usize) -> Option<(&'static Entry, usize, usize)> {
    entries().find_map(|e| {
        let (start, end, prot) = e.read()?;
        (start..end).contains(&addr).then_some((e, end, prot))
    })
}

/// Maps zero pages over the registered mapping that holds `addr`, from its page to the
/// mapping's end; false if no registered mapping holds it (or `mmap` failed).
fn replace_pages(addr: usize) -> bool {
    let Some((entry, end, prot)) = registered(addr) else {
        return false;
    };
    // Tripped *before* the pages change: another thread reading through the same handle may
    // read the zero pages without faulting the moment they are mapped, and must then find the
    // mark when it checks after its copy (its copy's loads come before that check: the read
    // path's Acquire fences, and x86's load order). SeqCst, and the `mmap` system call between
    // this store and the new pages, publish the mark first. If `mmap` fails the process dies of
    // the fault anyway.
    entry.tripped.store(true, Ordering::SeqCst);
    let page = PAGE.load(Ordering::Relaxed);
    let from = addr & !(page - 1);
    // SAFETY: `errno` is this thread's; reading it is always allowed.
    let errno = unsafe { *libc::__errno_location() };
    // SAFETY: `[from, end)` lies inside a live mapping of this process: the registry holds only
    // mappings that are still mapped (a `Region` leaves it before it unmaps), and `end` is that
    // mapping's end rounded up to a page, as `mmap` laid it out. Nothing in this process holds a
    // Rust reference that promises those bytes do not change (see `region.rs`); `MAP_FIXED`
    // replaces exactly those pages. After a truncation they are all gone from the file; after a
    // page punched out or an I/O error, those after the faulting one may still be the file's,
    // and become zeros in this mapping alone (the module docs): to Rust, a peer's store.
    let p = unsafe {
        libc::mmap(
            from as *mut libc::c_void,
            end - from,
            prot as libc::c_int,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    // SAFETY: restores this thread's `errno`, which the interrupted code may be about to read.
    unsafe { *libc::__errno_location() = errno };
    if p == libc::MAP_FAILED {
        return false;
    }
    TRIPS.fetch_add(1, Ordering::Relaxed);
    true
}

/// Hands a `SIGBUS` that is not ours (`code`: its `si_code`; 0 or less when a process sent
/// it) to the disposition installed before ours, as if ours were not there.
fn pass_on(
    sig: libc::c_int,
    code: libc::c_int,
    info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
) {
    // False: `PREVIOUS` not written (the handler runs only once it was, so never here).
    let previous = if PREVIOUS_SET.load(Ordering::Acquire) {
        // SAFETY: `PREVIOUS` was written before this handler was installed and is never
        // written again (see `install`); `PREVIOUS_SET`, stored with Release after that write
        // and loaded with Acquire above, makes the write happen before this read.
        unsafe { *PREVIOUS.0.get() }
    } else {
        None
    };
    let previous = previous.filter(|_| !PREVIOUS_NOW_DEFAULT.load(Ordering::Acquire));
    let handler = previous.map_or(libc::SIG_DFL, |p| p.sa_sigaction);
    if handler == libc::SIG_IGN && code <= 0 {
        // Ignored before us: a `kill -BUS` stays ignored.
        return;
    }
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // The default action, as if we had never been installed (a fault cannot be ignored:
        // the kernel kills for it whatever the disposition). A fault re-runs the faulting
        // instruction on return and now ends the process; a `SIGBUS` sent with `kill` is
        // raised again and delivered once this handler returns.
        // SAFETY: a zeroed `sigaction` is SIG_DFL with an empty mask and no flags.
        let dfl: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: restores the default disposition; `dfl` is a valid struct we own.
        unsafe { libc::sigaction(libc::SIGBUS, &dfl, std::ptr::null_mut()) };
        if code <= 0 {
            // SAFETY: `raise` is async-signal-safe; SIGBUS is blocked while we run, so it is
            // delivered, with the default action, when we return.
            unsafe { libc::raise(libc::SIGBUS) };
        }
        return;
    }
    let flags = previous.map_or(0, |p| p.sa_flags);
    if flags & libc::SA_SIGINFO != 0 {
        // SAFETY: with `SA_SIGINFO` the previous disposition's `sa_sigaction` is a three-argument
        // handler, which we call as the kernel would have, with the kernel's own arguments.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(handler) };
        f(sig, info, ctx);
    } else {
        // SAFETY: without `SA_SIGINFO` it is a one-argument handler (not SIG_DFL or SIG_IGN,
        // handled above).
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
        f(sig);
    }
    // A handler that restored the default action (Rust's does, for anything but a stack
    // overflow) would otherwise have removed ours too, and the next truncation would kill:
    // take the default as the previous disposition from now on and stand in front of it again.
    // A fault re-runs and reaches that default through us; a second `kill -BUS` kills, as it
    // would have without us. A handler that installed something else is left in place.
    if current().is_some_and(|c| c.sa_sigaction == libc::SIG_DFL) {
        PREVIOUS_NOW_DEFAULT.store(true, Ordering::Release);
        let new = ours();
        // SAFETY: puts our handler back (async-signal-safe); `new` is fully initialised.
        unsafe { libc::sigaction(libc::SIGBUS, &new, std::ptr::null_mut()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Forks a child that runs `work` under a 5 s alarm (whose default action ends a child
    /// that hangs) and leaves with `_exit`, 0 if `work` said so; the child's wait status.
    fn in_a_forked_child(work: impl FnOnce() -> bool) -> i32 {
        // SAFETY: the child runs `work` (the calls a program that forks makes) and `_exit`s.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            // SAFETY: `alarm` only schedules SIGALRM, whose default action ends this child.
            unsafe { libc::alarm(5) };
            let ok = work();
            // SAFETY: leaves the child without running the test harness's exit handlers.
            unsafe { libc::_exit(if ok { 0 } else { 3 }) };
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above; `status` is a valid out-pointer.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        status
    }

    /// A child forked while another thread holds the registry's lock makes and drops
    /// registrations of its own: the lock is per process. With one lock for all, the child's
    /// first registration waited for ever (for a thread that does not exist in the child);
    /// here an alarm ends such a child.
    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot fork")]
    fn a_child_forked_while_the_lock_is_held_registers() {
        let map = memmap2::MmapOptions::new().len(4096).map_anon().unwrap();
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let _guard = register_lock();
            held_tx.send(()).unwrap();
            let _ = done_rx.recv();
        });
        held_rx.recv().unwrap();
        let status = in_a_forked_child(|| {
            drop(Registration::new(map.as_ptr(), map.len(), true));
            true
        });
        done_tx.send(()).unwrap();
        holder.join().unwrap();
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the child hung on the registry's lock (status {status:#x})"
        );
    }

    /// Threads register and drop mappings of their own (more than a chunk holds, so chunks are
    /// added while lookups walk them), and each looks its mappings up as the handler does, with
    /// no lock, while the others write entries: a live mapping is always found, with its range
    /// and protection, and a dropped one never. Under Miri (`.ci/run`), which checks the
    /// registry's seqlock and chunk list for data races.
    #[test]
    fn lookups_racing_registrations_find_every_live_mapping_and_no_other() {
        let (threads, maps, rounds) = if cfg!(miri) { (3, 12, 2) } else { (4, 24, 50) };
        let page = page_size();
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(move || {
                    let maps: Vec<memmap2::MmapMut> = (0..maps)
                        .map(|_| {
                            memmap2::MmapOptions::new()
                                .len(2 * page)
                                .map_anon()
                                .unwrap()
                        })
                        .collect();
                    let start = |m: &memmap2::MmapMut| m.as_ptr() as usize;
                    for _ in 0..rounds {
                        let held: Vec<Registration> = maps
                            .iter()
                            .map(|m| Registration::new(m.as_ptr(), m.len(), true))
                            .collect();
                        for m in &maps {
                            let (_, end, prot) =
                                registered(start(m) + page + 8).expect("a live mapping found");
                            assert_eq!(end, start(m) + 2 * page);
                            assert_eq!(prot, (libc::PROT_READ | libc::PROT_WRITE) as usize);
                        }
                        drop(held);
                        for m in &maps {
                            // Still mapped (by this thread), so no one else registers it.
                            assert!(registered(start(m)).is_none(), "a dropped mapping found");
                        }
                    }
                });
            }
        });
    }

    /// A child forked while another thread of its parent is inside the installation (paused
    /// before its `sigaction`) installs the handler itself, at once: the `Once` is per
    /// process. With one `Once` for all, the child's copy said "running" for ever and its
    /// `install` waited for a thread that does not exist in it; here an alarm ends such a
    /// child.
    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot fork")]
    fn a_child_forked_during_the_installation_installs() {
        static ONCE: super::super::PerProcess<Once> = super::super::PerProcess::new();
        let (inside_tx, inside_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let installer = std::thread::spawn(move || {
            install_in(&ONCE, || {
                inside_tx.send(()).unwrap();
                let _ = go_rx.recv();
            })
        });
        inside_rx.recv().unwrap();
        let status = in_a_forked_child(|| install_in(&ONCE, || {}).is_ok() && installed());
        go_tx.send(()).unwrap();
        installer.join().unwrap().unwrap();
        assert!(installed());
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the child did not install the handler (status {status:#x})"
        );
    }
}
