//! The public handle: [`Channel`], its [`Options`], and [`Info`] about a channel.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::{explained, Error, Result};
use crate::frame::{Meta, Tag};
use crate::layout::*;
use crate::name::{dir_of, Location, ToLocation};
use crate::os;
use crate::os::OwnerState;
use crate::region::{Region, WORD};
use crate::snapshot::{Look, Miss, SlotWriter, Snapshot, Source, Timeouts};
use crate::stop::Until;
use crate::sync::Ordering;

/// A named latest-value channel: writers publish values atomically, readers copy consistent
/// snapshots of the newest one.
///
/// A `Channel` is `Send + Sync`; share it by reference or `Arc` between threads, or open the
/// same name again in another process. Readers never block writers and a writer never waits for
/// a reader (the protocol, byte by byte: `docs/FORMAT.md` in the repository; why it is correct:
/// the module docs of `mmf_core`'s `snapshot.rs`).
///
/// A handle belongs to the process that made it. A process forked from it inherits a copy that
/// still reads and writes whole values, but shares the parent's reader-pin entry (either may
/// then retry more) and its writer identity; dropping the copy (or a `changed` future) there
/// leaves the parent's entry and waits alone, and gives back an entry the copy claimed in the
/// child. But a child killed while it publishes or waits through the copy leaves the writer
/// lock, or a waiter count, under the parent's identity, which the parent cannot tell from its
/// own (its publishes then fail with [`Error::Contended`], and so do every other process's,
/// until the parent exits). The other way round too: the kernel lock that shows the writer
/// alive is the child's as well, so a parent killed while it publishes leaves the writer lock
/// held until every process it forked (without `exec`) has exited. A forked process that goes
/// on using a channel should open its own handle. A fork may come while another thread is inside
/// mmf (claiming the handle's reader-pin entry, making the process's first handle): the child
/// never waits for that thread, which the fork did not copy. A parent that drops its handle
/// while a child waits through its copy takes the child's wait off the channel's count (the
/// entry is the parent's): the child's wait then sees a new value within 100 ms, not at once.
///
/// ```
/// use mmf::{Channel, Tag};
/// # let name = format!("doc-channel-{}", std::process::id());
/// let writer = Channel::create(&name, 1024)?;          // process A
/// writer.publish_raw(Tag::TEXT, b"Hello World!")?;
///
/// let reader = Channel::open(&name)?;                  // process B
/// let (meta, bytes) = reader.read_raw()?;
/// assert_eq!(bytes, b"Hello World!");
/// assert_eq!((meta.generation, meta.tag), (1, Tag::TEXT));
///
/// Channel::remove(&name)?;
/// # Ok::<(), mmf::channel::Error>(())
/// ```
pub struct Channel {
    snap: Snapshot,
    location: Location,
    token: u64,
    /// This handle's reader-pin entry, claimed at its first read (so handles that only write
    /// never take one): none when none was free or the mapping is read-only.
    pin: PinState,
    pin_busy: AtomicBool,
    /// Reads that pin from their first attempt: started by a read that needed a retry.
    eager_reads: Streak,
    /// Reads that copy small values from their slot rather than from the header: started by a
    /// read whose inline copy was overtaken.
    slot_reads: Streak,
    /// Reads left before this handle takes its pin off (see `read_into`): started by every
    /// pinned read.
    pin_kept: Streak<PIN_KEPT_READS>,
    timeouts: Timeouts,
    wait_spin: Duration,
    /// The process that claimed `pin`'s entry: a forked child that drops its copy of a handle
    /// whose entry the parent claimed leaves the entry, which the parent still uses, alone (and
    /// gives back one it claimed itself).
    pin_pid: AtomicU32,
    /// [`Options::remove_on_drop`]: the process that made the handle, which alone removes the
    /// name when it drops it.
    remove_on_drop: Option<u32>,
    /// The process that claimed the writer role through this handle ([`Channel::claim_writer`]),
    /// which alone gives it back on drop (a forked child's copy leaves its parent's claim); 0
    /// if none did.
    claim_pid: AtomicU32,
}

/// A per-handle countdown of reads that take a slower but surer path after a writer overtook one:
/// an event starts it at `LENGTH`, each later read without the event counts it down, and at zero
/// the fast path is tried again. Relaxed: it only steers the fast path, so a lost update between
/// threads sharing the handle costs nothing but a detour.
#[derive(Default)]
struct Streak<const LENGTH: u32 = 64>(AtomicU32);

impl<const LENGTH: u32> Streak<LENGTH> {
    /// Reads left in the streak (0: none).
    #[inline]
    fn left(&self) -> u32 {
        self.0.load(Relaxed)
    }

    /// After a read: restart on `event`, else count down from `left` (what `left()` said before).
    #[inline]
    fn after(&self, left: u32, event: bool) {
        if event {
            self.0.store(LENGTH, Relaxed);
        } else if left > 0 {
            self.0.store(left - 1, Relaxed);
        }
    }
}

/// A handle's reader-pin entry, claimed at its first read or wait: one word, 0 before the claim,
/// [`PIN_CLAIMING`] with the claiming process's pid during it, [`PIN_DONE`] with the entry plus
/// one (0: none) after.
#[derive(Default)]
struct PinState(AtomicU64);

const PIN_CLAIMING: u64 = 1 << 63;
const PIN_DONE: u64 = 1 << 62;

/// What [`PinState::begin`] found.
enum PinClaim {
    /// Claimed already: the entry, if any.
    Done(Option<usize>),
    /// This thread claims it now, and ends the claim with [`Claiming::finish`].
    Ours,
    /// Another thread of this process is claiming it.
    Busy,
}

impl PinState {
    /// `Some(entry)` once the claim is over (`entry`: the entry, if one was free); `None`
    /// before.
    #[inline]
    fn claimed(&self) -> Option<Option<usize>> {
        Self::done(self.0.load(Acquire))
    }

    /// What the word `v` says once the claim is over: the entry, if any.
    fn done(v: u64) -> Option<Option<usize>> {
        (v & PIN_DONE != 0).then(|| (v & 0xff).checked_sub(1).map(|e| e as usize))
    }

    /// Starts the claim for process `pid`, or says why not. A claim another process began
    /// (a parent's thread, as this copy of the handle was forked) will not end here: this
    /// copy ends it without an entry.
    fn begin(&self, pid: u32) -> PinClaim {
        let v = self.0.load(Acquire);
        if let Some(entry) = Self::done(v) {
            return PinClaim::Done(entry);
        }
        if v & PIN_CLAIMING != 0 {
            if v & u64::from(u32::MAX) != u64::from(pid) {
                let _ = self.0.compare_exchange(v, PIN_DONE, AcqRel, Acquire);
            }
            return PinClaim::Busy;
        }
        match self
            .0
            .compare_exchange(0, PIN_CLAIMING | u64::from(pid), Acquire, Acquire)
        {
            Ok(_) => PinClaim::Ours,
            Err(_) => PinClaim::Busy,
        }
    }
}

/// A claim under way ([`PinClaim::Ours`]): ended by [`finish`](Claiming::finish), or without
/// an entry if the claim panics, so that the handle's other threads do not wait for ever. Only
/// the claiming thread stores to the word meanwhile (the others of its process wait, and a
/// forked copy's word is its own).
struct Claiming<'a> {
    state: &'a PinState,
    finished: bool,
}

impl Claiming<'_> {
    fn finish(&mut self, entry: Option<usize>) {
        let done = PIN_DONE | entry.map_or(0, |e| e as u64 + 1);
        self.state.0.store(done, Release);
        self.finished = true;
    }
}

impl Drop for Claiming<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.state.0.store(PIN_DONE, Release);
        }
    }
}

/// How many reads in a row without a pin a handle makes before it takes its pin off
/// (`Channel::pin_kept_one_read_less`). Long enough that a reader under a back-to-back writer,
/// which pins again right after, pays for the round (a few retries while writers go back to
/// slots) once in a thousand reads; short enough that a reader that was overtaken once gives
/// writers their header-only publishes back within a fraction of a millisecond of reads.
const PIN_KEPT_READS: u32 = 1024;

/// How to create or open a channel: capacity, pinned readers, permissions, checksums, timeouts.
///
/// ```
/// use mmf::{Location, Options};
/// let ch = Options::new().capacity(64 * 1024).readers(2).anonymous()?;
/// assert_eq!(ch.capacity(), 64 * 1024);
/// # Ok::<(), mmf::channel::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Options {
    capacity: usize,
    readers: usize,
    mode: Option<u32>,
    checksum: bool,
    read_only: bool,
    timeouts: Timeouts,
    init_timeout: Duration,
    /// How long an open waits at least for another process's exclusive `flock` to go
    /// ([`LOCK_GRACE`]; [`list`] tries once, then waits for all of them together).
    lock_grace: Duration,
    wait_spin: Duration,
    header_only: bool,
    remove_on_drop: bool,
    exclusive_writer: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options::new()
    }
}

impl Options {
    /// Defaults: capacity 4 KiB, 4 pinned readers, mode 0600 (less the umask), no checksums,
    /// read-write.
    pub fn new() -> Options {
        Options {
            capacity: 4096,
            readers: 4,
            mode: None,
            checksum: false,
            read_only: false,
            timeouts: Timeouts::default(),
            init_timeout: Duration::from_millis(250),
            lock_grace: LOCK_GRACE,
            wait_spin: Duration::ZERO,
            header_only: true,
            remove_on_drop: false,
            exclusive_writer: false,
        }
    }

    /// Largest value, in bytes, the channel holds (used at creation).
    pub fn capacity(&mut self, bytes: usize) -> &mut Self {
        self.capacity = bytes;
        self
    }

    /// How many readers can pin a slot at once (used at creation; default 4, at most 62). The
    /// channel has `readers + 2` slots; further readers still read, by validation alone, and
    /// their waits poll instead of sleeping on a futex
    /// ([`wait_for_change`](Channel::wait_for_change)): count every handle that will wait.
    /// `0` makes every reader one of those: no handle pins, and every wait polls (up to
    /// 1,000 looks a second).
    pub fn readers(&mut self, readers: usize) -> &mut Self {
        self.readers = readers;
        self
    }

    /// Permission bits of a new channel's file (0o000 to 0o777: others, such as set-user-ID,
    /// are [`Error::InvalidOptions`] at creation), set exactly (the umask does not apply). Without
    /// it the file is created `0o600` (owner only) less the process's umask, except by
    /// [`create_or_replace`](Self::create_or_replace), which keeps the replaced channel's bits
    /// (and its owner and group, where this process may set them) if the replaced file lies in
    /// a directory only root and its owner can write, or is this process's own, no other name
    /// leads to it and neither its group nor others may write it: not another user's file in
    /// `/dev/shm` or `/tmp`, which anyone could have planted under the name, nor a file there
    /// that others may write (another user may have linked it under the name). A channel
    /// shared for writing there (`0o666`) is replaced with its mode given again.
    ///
    /// A mode that gives group and others no write (`0o644`, `0o640`, `0o600`) is set as the file
    /// is created, before it is allocated: other users' readers then see a channel being made and
    /// wait for it, as the owner's do (the header's magic, written last, says when it is
    /// complete). A mode that lets them write (`0o666`) is set once the header is complete,
    /// and until then their opens are refused.
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = Some(mode);
        self
    }

    /// Whether a new channel stores a CRC-32 with every value, verified on every read.
    pub fn checksum(&mut self, on: bool) -> &mut Self {
        self.checksum = on;
        self
    }

    /// Open without write access: reads only, by validation (no pin), on a `PROT_READ` mapping;
    /// its waits poll (see [`wait_for_change`](Channel::wait_for_change)).
    /// For [`open`](Options::open) only: a channel is created read-write, so creating with it
    /// set is [`Error::InvalidOptions`].
    pub fn read_only(&mut self, on: bool) -> &mut Self {
        self.read_only = on;
        self
    }

    /// Whether [`read_only`](Options::read_only) is set.
    pub(crate) fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// How long a publish waits for another writer's lock before `Contended` (default 5 s).
    pub fn lock_timeout(&mut self, d: Duration) -> &mut Self {
        self.timeouts.lock = d;
        self
    }

    /// How long a read retries before `Contended` (default 1 s; reached only under abuse). The
    /// time counts from the read's first failed attempt and is checked after every attempt that
    /// copied 64 KiB or more (else every 64th): a read may take its timeout plus a few copies of
    /// the value. Once its attempts have failed for 200 µs with the latest value where it was,
    /// a read sleeps between them (an eighth of that time, at most 1 ms), so that a value
    /// nobody can read whole (a frame a crash left half written) does not cost a core for the
    /// whole timeout; a writer that keeps publishing is retried at once.
    pub fn read_timeout(&mut self, d: Duration) -> &mut Self {
        self.timeouts.read = d;
        self
    }

    /// How long `open` waits for a creator that is still initialising (default 250 ms), and
    /// `open` and `create` wait for an exclusive `flock` another process holds on the file (at
    /// least 50 ms: mmf's own last an instant; see `docs/RELIABILITY.md`).
    ///
    /// A creator allocates the whole channel before it writes the header, about a second a
    /// GiB on a tmpfs here: processes that start together and `open_or_create` a channel of
    /// hundreds of MiB should raise this, or the ones that lose the race to create it find it
    /// still uninitialised ([`Error::NotInitialized`]). A [`Follower`](crate::Follower) waits
    /// past it for a creator still at work, as [`Follower::open`](crate::Follower::open) says.
    ///
    /// Another user's channel made with a [`mode`](Self::mode) that lets group or others write
    /// keeps its creation mode (0600 less the umask) until its header is complete, and refuses
    /// other users until then (so does one made by a creator that sets any mode last: another
    /// implementation, an earlier mmf): an open refused on another user's file with no bit for
    /// group or others, still empty (for the whole timeout, as an empty file of one's own) or born
    /// within this timeout held between one and ten seconds (where the file system keeps birth
    /// times: a tmpfs such as `/dev/shm` since Linux 5.18; before, only an empty file counts),
    /// is waited on the same way, then refused ([`Error::PermissionDenied`]); a private
    /// channel of another user just made is refused only after that wait.
    pub fn init_timeout(&mut self, d: Duration) -> &mut Self {
        self.init_timeout = d;
        self
    }

    /// How long `wait_for_change` spins re-checking the generation before it sleeps (default 0:
    /// sleep at once). Spinning trades a core for a faster wake-up when values come in quick
    /// succession.
    pub fn wait_spin(&mut self, d: Duration) -> &mut Self {
        self.wait_spin = d;
        self
    }

    /// Whether this handle's publishes may keep a small value (up to 120 bytes, given as one
    /// slice) in the channel's header alone, with no slot, while no reader pins a slot (default:
    /// yes; `docs/FORMAT.md` §4.1): a third fewer instructions, and a shorter round trip between
    /// processes (`docs/BENCHMARKS.md`). A reader that a writer overtakes asks for slots again
    /// through its pin entry, but readers without one (read-only mappings, more readers than the
    /// channel's pin entries) cannot: under a writer that publishes small values back-to-back
    /// they retry several times per read. Turn it off on the writer when such readers must keep
    /// up with it.
    ///
    /// ```
    /// use mmf::{Options, Tag};
    /// let ch = Options::new().capacity(64).header_only(false).anonymous()?;
    /// ch.publish_raw(Tag::TEXT, b"kept in a slot")?;
    /// assert_eq!(ch.read_raw()?.1, b"kept in a slot");
    /// # Ok::<(), mmf::channel::Error>(())
    /// ```
    pub fn header_only(&mut self, on: bool) -> &mut Self {
        self.header_only = on;
        self
    }

    /// Whether dropping the handle that *creates* a channel with these options removes the
    /// channel's name (default `false`): for a channel that lives as long as its maker, such as
    /// a harness's channel for one run's results, so that a run that returns early or panics
    /// (and unwinds) leaves nothing in `/dev/shm`. Like [`Channel::remove`], the removal marks
    /// the channel retired, and its followers see the name gone at once.
    ///
    /// Set it in the process that *reads* what the channel carries, not in one that publishes
    /// a value meant to outlive it: a worker that makes its own result channel with it,
    /// publishes and returns takes the name, and the result, with it before a reader that
    /// opens by name (a [`Follower`](crate::Follower) looks every 100 ms) has found it: a
    /// worker that returns at once loses its result nearly every time. The consumer makes the
    /// channel with it and the worker opens it, as in `examples/harness.rs`.
    ///
    /// Only handles made by [`create`](Options::create),
    /// [`create_or_replace`](Options::create_or_replace), and
    /// [`open_or_create`](Options::open_or_create) when it creates: a handle that opens an
    /// existing channel with these options never removes it. Only if the name still leads to
    /// this handle's channel (one made anew under it since is left alone), only in the process
    /// that made the handle (a child made by `fork` that drops its copy leaves it), and as best
    /// effort: a drop cannot report a removal that fails; [`Channel::close`] drops the handle
    /// and says how its removal went. Nothing is removed where nothing is
    /// dropped: a process killed by a signal, one that ends with `std::process::exit` or
    /// aborts (`panic = "abort"` too), a handle leaked or kept in a `static`; `mmf prune`
    /// removes what such processes leave once no process holds it and it has been idle for its
    /// `--older-than` (an hour by default), and [`host::remove_stale`](crate::host::remove_stale)
    /// with an age of zero at once.
    ///
    /// ```
    /// use mmf::{Channel, Location, Options, Tag};
    /// use mmf::channel::Error;
    /// # let name = format!("remove-on-drop-doc-{}", std::process::id());
    /// let location = Location::parse(&name)?;
    /// {
    ///     let results = Options::new().capacity(256).remove_on_drop(true).create(&location)?;
    ///     results.publish_raw(Tag::TEXT, b"run 1: 42 ms")?;
    ///     // ... a worker reads it ...
    /// }
    /// assert!(matches!(Channel::open(&name), Err(Error::NotFound { .. })));
    /// # Ok::<(), mmf::channel::Error>(())
    /// ```
    pub fn remove_on_drop(&mut self, on: bool) -> &mut Self {
        self.remove_on_drop = on;
        self
    }

    /// Whether handles made with these options claim the channel's writer role for their
    /// life (default `false`): while such a handle lives, publishes through any other handle,
    /// of any process, fail with [`Error::WriterClaimed`], and so does another claim. For a
    /// service that must be a value's only source: a second instance started by mistake fails
    /// at its start, saying the first one's pid, instead of publishing over it, or of
    /// [replacing](Options::create_or_replace) its channel and leaving it to publish where no
    /// reader looks. Readers are not affected.
    ///
    /// The claim is made as the handle is created or opened ([`Channel::claim_writer`]), and
    /// given back when it is dropped; a process that ends however it ends (a SIGKILL too) gives
    /// it up with its handles, and the next publish or claim elsewhere finds it gone. With
    /// [`create_or_replace`](Options::create_or_replace), another process's live claim on the
    /// channel under the name refuses the replacement, and the old channel and its writer go
    /// on; the replacement holds the old channel's claim until the new channel, claimed while
    /// it has its temporary name, is under the name, so of several at once one alone succeeds.
    /// A claim of another handle of this process does not refuse it (a service that grows its
    /// channel).
    ///
    /// What it holds off: mmf handles (this version on) and the `mmf` command line's `out`.
    /// Programs that write the format without reading the claim word (mmf before it, a
    /// reimplementation that skips it: docs/FORMAT.md §11 step 1) are not held off. Within one
    /// process, a child made by `fork` shares the claim of its parent's handle (the parent
    /// alone gives it back); where the OS has no open-file-description locks (other than
    /// Linux), so do all handles of one process, and the first of them dropped gives it back.
    ///
    /// # Errors
    ///
    /// What the creation or open gives, and [`Error::WriterClaimed`] if another live handle
    /// holds the claim (nothing made, nothing replaced); [`Error::InvalidOptions`] with
    /// [`read_only`](Options::read_only), which cannot publish.
    ///
    /// ```
    /// use mmf::{Channel, Options, Tag};
    /// use mmf::channel::Error;
    /// # let name = format!("exclusive-doc-{}", std::process::id());
    /// let service = Options::new().capacity(64).exclusive_writer(true).create(&name)?;
    /// service.publish_raw(Tag::TEXT, b"from the service")?;
    ///
    /// // A second writer, here or in any other process, is refused while the service lives.
    /// let other = Channel::open(&name)?;
    /// assert!(matches!(
    ///     other.publish_raw(Tag::TEXT, b"not mine to say"),
    ///     Err(Error::WriterClaimed { .. })
    /// ));
    /// assert_eq!(other.read_raw()?.1, b"from the service");
    ///
    /// drop(service); // the claim goes with its handle
    /// other.publish_raw(Tag::TEXT, b"now it is")?;
    /// # Channel::remove(&name)?;
    /// # Ok::<(), mmf::channel::Error>(())
    /// ```
    pub fn exclusive_writer(&mut self, on: bool) -> &mut Self {
        self.exclusive_writer = on;
        self
    }

    /// Claims the writer role for `ch` if these options ask for it
    /// ([`exclusive_writer`](Options::exclusive_writer)). A read-only handle never gets here:
    /// `open` refuses the two options together, and every creation refuses `read_only`.
    fn claimed(&self, ch: Channel) -> Result<Channel> {
        if self.exclusive_writer {
            ch.claim_writer()?;
        }
        Ok(ch)
    }

    /// Creates a new channel at `location` (a [`Location`], a name or a path: [`ToLocation`]).
    ///
    /// The channel takes about `(readers + 2) x capacity` bytes of its file system (shared
    /// memory for a name, the disk for a path), all allocated here.
    ///
    /// A file path's directories are not reached through a symbolic link that is another
    /// user's in a sticky directory others may write to, such as `/tmp`, which the directory's
    /// owner did not make either (the rule of [`create_or_replace`](Options::create_or_replace)):
    /// such a link could lead root's new file into any directory that user chose. The name
    /// itself is never followed (a link there is [`Error::AlreadyExists`]).
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidName`]: a name that cannot be;
    /// - [`Error::InvalidOptions`]: a capacity of 0 or beyond
    ///   [`MAX_CAPACITY`](crate::MAX_CAPACITY), more than [`MAX_READERS`](crate::MAX_READERS)
    ///   readers, a [`mode`](Options::mode) with bits beyond `0o777`, or
    ///   [`read_only`](Options::read_only) set;
    /// - [`Error::AlreadyExists`]: a channel has the name; [`Error::NotInitialized`]: an empty
    ///   or zero-filled file does (a channel being created, or one whose creator died);
    ///   [`Error::WrongMagic`], [`Error::NotAFile`], [`Error::IsADirectory`]: something else
    ///   does;
    /// - [`Error::NoSpace`]: the file system has less room than the channel needs, said before
    ///   anything is allocated where it states its free space as too little (`statvfs`; for
    ///   root, the blocks reserved for root count), else when the allocation fails (nothing is
    ///   left allocated);
    /// - [`Error::MemoryLimit`]: in a file system held in memory (tmpfs, such as `/dev/shm`),
    ///   the channel would take more than this process's memory cgroup has left of its limit
    ///   (a container's `--memory`), past which the kernel kills a process instead of failing
    ///   the allocation;
    /// - [`Error::FileSizeLimit`]: the channel's file would be larger than this process may
    ///   make one (`ulimit -f`), past which the kernel ends it with `SIGXFSZ`;
    /// - [`Error::PermissionDenied`], [`Error::Io`]: the OS refused (a missing directory
    ///   included, which the message names), or a directory on the way is reached through
    ///   another user's link in a sticky directory (`PermissionDenied`); [`Error::Io`] also
    ///   when other processes removed the new file from under the name before this call could
    ///   lock it, 8 times over (once is made up for by creating again).
    ///
    /// ```
    /// use mmf::{Channel, Options, Tag};
    /// # let name = format!("options-create-doc-{}", std::process::id());
    /// // 4 KiB values; one reader pin (for one reading process), 2 slots besides.
    /// let ch = Options::new().capacity(4096).readers(1).create(&name)?;
    /// ch.publish_raw(Tag::TEXT, b"ready")?;
    /// assert_eq!(Channel::open(&name)?.read_raw()?.1, b"ready");
    /// Channel::remove(&name)?;
    /// # Ok::<(), mmf::channel::Error>(())
    /// ```
    pub fn create(&self, location: impl ToLocation) -> Result<Channel> {
        self.claimed(self.create_parsed(&*location.to_location()?)?)
    }

    /// [`create`](Options::create) of a location already read.
    fn create_parsed(&self, location: &Location) -> Result<Channel> {
        let Some(path) = location.path() else {
            return self.anonymous();
        };
        // A file path's directory (or one `MMF_SHM_DIR` chose) is reached through a handle
        // ([`pin`]), each link on the way judged as it is met: a peer that swaps a directory
        // of its own for a link cannot steer the new file into a directory of its choosing.
        // Errors name the path given.
        match pin(location, &path, Pin::Creation)? {
            Some(pinned) => self
                .create_at(location, &pinned.through, &pinned.shown)
                .map_err(|e| pinned.shown(e)),
            None => {
                judge_unpinned(location, &path, "a creation")?;
                self.create_at(location, &path, &path)
            }
        }
    }

    /// [`create`](Options::create) of the channel named `location`, in a file at `path`
    /// (`location`'s own, or a temporary one that [`create_or_replace`](Options::create_or_replace)
    /// renames to it). `shown` is that path as the user knows it, for the texts of errors (`path`
    /// may go through a [`Pinned`] handle's `/proc/self/fd/N`).
    fn create_at(&self, location: &Location, path: &Path, shown: &Path) -> Result<Channel> {
        self.creatable()?;
        let layout = Layout::new(self.capacity, self.readers)?;
        check_platform()?;
        let name = location.to_string();
        let mut made = 0;
        let (file, meta) = loop {
            let file = create_new_file(location, path, shown, &name)?;
            // Just made with O_EXCL: the name leads to it (its identity, for the checks below).
            let meta = file.metadata().map_err(|e| {
                let _ = std::fs::remove_file(path);
                io_error(&name, path, "inspecting", e)
            })?;
            // A shared lock for as long as the handle lives says "in use" to `mmf prune`, and to
            // `open_or_create`, which takes an empty file nobody holds for a dead creator's.
            let locked = lock_shared_by(
                &file,
                Instant::now(),
                Instant::now().checked_add(self.init_timeout),
                false,
                LOCK_GRACE,
            );
            // A creator stalled between its creation and its lock (stopped, frozen, swapping
            // for a second or more) may find that file removed as a dead creator's, and another
            // channel perhaps made under the name: it makes its own again (or finds the name
            // taken), never a channel nobody can reach, and removes nothing of another's.
            if !still_named(&meta, location, path) {
                made += 1;
                if made == 8 {
                    return Err(Error::Io {
                        op: "creating",
                        path: path.to_owned(),
                        cause: io::Error::other(
                            "the file was removed from under the name as it was being created, \
                             8 times; retry later, and look for what keeps removing files there",
                        ),
                    });
                }
                continue;
            }
            if let Err(e) = locked {
                // Only this creator's file: the name may lead to another's by now.
                let _ = unlink_same(location, path, &meta);
                return Err(io_error(&name, path, "locking", e));
            }
            break (file, meta);
        };
        // From here on a failure must not leave a half-made channel behind; only this
        // creator's own file is removed (the name may lead to another's by now, made after a
        // remover took this one for a dead creator's).
        let unlink_own = || {
            let _ = unlink_same(location, path, &meta);
        };
        let cleanup = |err: Error| {
            unlink_own();
            err
        };
        // A mode that lets group or others read but not write is set now, before the file is
        // allocated: the magic, written last, already tells every opener whether the channel
        // is complete, and another user's follower that may open the file sees a channel being
        // made (empty, or a header of zeros, and held) and waits for it, where in the creation
        // mode it could only be refused and guessed at. A mode that lets them write waits for
        // the header (below): another user could otherwise truncate the file or write a
        // header of their own under the creator's.
        let set_mode = |mode: u32, name: &str| {
            file.set_permissions(std::fs::Permissions::from_mode(mode))
                .map_err(|e| cleanup(io_error(name, path, "setting the mode of", e)))
        };
        let early = self.mode.filter(|mode| mode & 0o022 == 0);
        if let Some(mode) = early {
            set_mode(mode, &name)?;
        }
        let bytes = layout.total_bytes as u64;
        let dir = dir_of(path).to_owned();
        let no_space = |available: Option<u64>| Error::NoSpace {
            name: name.clone(),
            bytes,
            dir: dir.clone(),
            available,
        };
        let unkept_size = |made: Option<u64>| {
            let why = match made {
                Some(made) => format!("made {made} bytes, not {bytes}: {UNKEPT_SIZE}"),
                None => UNKEPT_SIZE.to_owned(),
            };
            io_error(
                &name,
                path,
                "creating",
                io::Error::new(io::ErrorKind::Unsupported, why),
            )
        };
        // hugetlbfs gives a mapped file whole huge pages, and a channel's file must keep the
        // size its header gives: refused whatever the size (one of whole huge pages would fit,
        // but a channel there is not one this format describes) and before its room is judged
        // (a `size=` mount's, which said "no space") or a huge page is taken.
        if huge_pages_only(&dir) {
            return Err(cleanup(unkept_size(None)));
        }
        // Past the file size limit, the allocation would end the process (`SIGXFSZ`) and
        // leave the empty file under the name.
        if let Some(limit) = os::file_size_limit().filter(|&limit| limit < bytes) {
            return Err(cleanup(Error::FileSizeLimit {
                name: name.clone(),
                bytes,
                limit,
            }));
        }
        // Refused before a block is taken where the file system says this process has too few
        // (root counting the blocks reserved for it): a `posix_fallocate` that fails half-way
        // holds what it took until the file is removed, so a size mistyped by a unit (G for M)
        // would fill the file system for a moment, and other programs writing there would
        // fail. A file system that states no size (unlimited tmpfs, ramfs) is not judged.
        if let Ok(Some(room)) = os::room(&dir) {
            if room < bytes {
                return Err(cleanup(no_space(Some(room))));
            }
        }
        // A file in memory (tmpfs) is charged to this process's memory cgroup, and one past its
        // limit is not an `ENOSPC`: the kernel kills a process of the cgroup (this one, or a
        // service beside it), whatever room the file system has. Refused while it would not
        // fit, counting what the kernel reclaims first (file cache; under v2 its own caches
        // too) as free, and swap as nothing.
        let over_limit = |memory: crate::host::MemoryLimit| Error::MemoryLimit {
            name: name.clone(),
            bytes,
            room: memory.room,
            limit: memory.limit,
            cgroup: memory.cgroup,
        };
        if let Some(memory) = crate::host::memory_limit(&dir).filter(|m| m.room < bytes) {
            return Err(cleanup(over_limit(memory)));
        }
        os::allocate(&file, bytes).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOSPC) => {
                // Given back first (the handle still open holds the blocks of a removed file):
                // the space a failed allocation took is not the file system's free space.
                let _ = file.set_len(0);
                unlink_own();
                no_space(os::room(&dir).ok().flatten())
            }
            // The kernel could not make room for pages the estimate above counted on (a tmpfs
            // fails an allocation whose own pages reclaim keeps trying to swap out: hot memory
            // beside it, or the machine's pressure): said as the estimate's refusal, with the
            // room there is once the pages are given back.
            Some(libc::ENOMEM) => {
                let _ = file.set_len(0);
                cleanup(match crate::host::memory_limit(&dir) {
                    Some(memory) => over_limit(memory),
                    None => io_error(&name, path, "allocating", e),
                })
            }
            _ => cleanup(io_error(&name, path, "allocating", e)),
        })?;
        let map = memmap2::MmapOptions::new()
            .len(layout.total_bytes)
            .map_raw(&file)
            .map_err(|e| cleanup(io_error(&name, path, "mapping", e)))?;
        // Any file system that rounds a file's size up, as hugetlbfs does when it is mapped (a
        // 7,296 byte channel's file was 2 MiB there), makes a file no open accepts, its size
        // being the header's: refused, where it was made and then called corrupt by every
        // open.
        match file.metadata() {
            Ok(meta) if meta.len() != bytes => {
                drop(map);
                let _ = file.set_len(0);
                return Err(cleanup(unkept_size(Some(meta.len()))));
            }
            Ok(_) => {}
            Err(e) => return Err(cleanup(io_error(&name, path, "creating", e))),
        }
        let region = Region::from_map(map, true);
        let snap = Snapshot {
            region,
            layout,
            checksum: self.checksum,
            name,
            header_only: true,
            liveness: os::Liveness::default(),
            damaged: None,
            cold: Default::default(),
            process_rest: os::process_word_rest(),
        };
        snap.init(
            self.flags(),
            incarnation(),
            now_ns(),
            os::pid_bits(std::process::id()) | snap.process_rest,
        );
        if let Some(mode) = self.mode.filter(|_| early.is_none()) {
            // Exactly the bits asked for (not less the umask, as the default 0600 is), and set
            // only once the header is complete (iceoryx2's creation order).
            set_mode(mode, &snap.name)?;
        }
        let mut ch = self.finish(snap, location.clone(), Some(file));
        // Only a handle that made its channel removes it (`Options::remove_on_drop`).
        ch.remove_on_drop = self.remove_on_drop.then(std::process::id);
        Ok(ch)
    }

    /// Opens an existing channel. A channel still being created is waited for up to
    /// [`init_timeout`](Self::init_timeout) (which says when an open refused for permission
    /// waits too).
    ///
    /// # Errors
    ///
    /// As [`Channel::open`]: [`Error::NotFound`] if there is none, [`Error::NotInitialized`]
    /// for a file still not initialised once `init_timeout` has passed, and so on. A
    /// [`Location::Anonymous`] is [`Error::NotFound`] too: a private channel has no name to
    /// open it by.
    ///
    /// ```
    /// use mmf::{Channel, Options};
    /// use std::time::Duration;
    /// # let name = format!("options-open-doc-{}", std::process::id());
    /// # let _made = Channel::create(&name, 64)?;
    /// // Read-only (a reader that must never write), giving up on a busy value after 50 ms.
    /// let ch = Options::new()
    ///     .read_only(true)
    ///     .read_timeout(Duration::from_millis(50))
    ///     .open(&name)?;
    /// assert_eq!(ch.generation(), 0);
    /// # Channel::remove(&name)?;
    /// # Ok::<(), mmf::channel::Error>(())
    /// ```
    pub fn open(&self, location: impl ToLocation) -> Result<Channel> {
        if self.exclusive_writer && self.read_only {
            return Err(exclusive_read_only());
        }
        self.claimed(self.open_parsed(&*location.to_location()?)?)
    }

    /// [`open`](Options::open) of a location already read.
    fn open_parsed(&self, location: &Location) -> Result<Channel> {
        let Some(path) = location.path() else {
            return Err(Error::not_found(location));
        };
        check_platform()?;
        let name = location.to_string();
        let start = Instant::now();
        // `None`: an `init_timeout` too long to represent, that is, none.
        let deadline = start.checked_add(self.init_timeout);
        let mut renamed = 0;
        loop {
            match self.try_open(location, &path, &name, start, deadline) {
                Err(Error::NotInitialized { .. })
                    if deadline.is_none_or(|d| Instant::now() < d) =>
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                // Another user's channel that still has its creation mode: perhaps being made,
                // waited on as one (and refused as before once the wait is over).
                Err(Error::PermissionDenied { .. })
                    if deadline.is_none_or(|d| Instant::now() < d)
                        && being_made(&path, self.init_timeout) =>
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                // The name was removed or replaced while this open waited for its lock: open
                // what the name holds now (a bounded number of times, against a peer renaming
                // files in a loop).
                Ok(None) if renamed < 64 => renamed += 1,
                Ok(None) => return Err(replaced_too_often(path)),
                Ok(Some(ch)) => return Ok(ch),
                Err(e) => return Err(e),
            }
        }
    }

    /// One attempt at [`open`](Self::open), begun at `start`: `Ok(None)` when the file it
    /// opened was no longer the one under the name once it held its lock.
    fn try_open(
        &self,
        location: &Location,
        path: &Path,
        name: &str,
        start: Instant,
        deadline: Option<Instant>,
    ) -> Result<Option<Channel>> {
        let (file, meta) = open_channel_file(location, path, name, !self.read_only)?;
        // Bounded from the open's start, not this attempt's: a peer renaming a locked file
        // after another over the name costs the open its bound once, not once a file.
        lock_shared_by(&file, start, deadline, true, self.lock_grace)
            .map_err(|e| io_error(name, path, "locking", e))?;
        // `mmf prune` removes a channel under an exclusive lock (`host::remove_unused`): an open
        // that waited for that lock holds a file no longer under the name, which nobody else
        // can reach. Likewise a channel replaced meanwhile (`create_or_replace`).
        if !still_named(&meta, location, path) {
            return Ok(None);
        }
        let snap = map_checked(&file, meta.len(), name, path, !self.read_only)?;
        Ok(Some(self.finish(snap, location.clone(), Some(file))))
    }

    /// Opens a channel image held in memory (a copy of a channel's bytes) as a private channel,
    /// validating it exactly as `open` validates a file. For fuzzing and property tests of the
    /// untrusted-input paths; not part of the stable API.
    #[doc(hidden)]
    pub fn open_image(&self, bytes: &[u8]) -> Result<Channel> {
        let name = "(image)";
        let len = bytes.len() as u64;
        let min = Layout::new(1, 0).expect("minimal layout").header_bytes as u64;
        if len < min || !len.is_multiple_of(8) {
            return Err(small_image_error(
                &bytes[..bytes.len().min(HEAD_BYTES)],
                len,
                name,
            ));
        }
        let region = Region::anonymous(bytes.len()).map_err(|e| Error::Io {
            op: "allocating",
            path: PathBuf::from(name),
            cause: e,
        })?;
        crate::region::atomic_store_bytes(region.words(0, bytes.len() / 8), bytes);
        let snap = validate(region, len, name)?;
        Ok(self.finish(snap, Location::Anonymous, None))
    }

    /// Opens the channel if it exists (whatever its capacity), else creates it. With
    /// [`read_only`](Options::read_only) it only opens.
    ///
    /// A channel that an earlier version of a service made smaller than this one asks for is
    /// opened as it is, and a value that does not fit fails at its publish
    /// ([`Error::TooLarge`]). A service whose values may have grown compares
    /// [`Channel::capacity`] with what it needs, and makes the channel anew
    /// ([`create_or_replace`](Options::create_or_replace): its followers move to the new one).
    ///
    /// A shared-memory file left under the name by a creator that died before the channel was
    /// ready (killed while it allocated, as past a container's memory limit) is replaced: one
    /// still empty, or whose first word (the magic, written last) is zero, this user's (root:
    /// anyone's), on which no process holds a `flock` (a creator holds one from right after
    /// creating it, as every handle does) and that has not changed for a second. A service
    /// restarted after such a kill thus comes back by itself, where every call refused the
    /// name. A file path is never replaced ([`Error::NotInitialized`] as before): what lies
    /// there may be a user's file, or a channel whose header a machine crash did not write
    /// back.
    ///
    /// # Errors
    ///
    /// Those of [`create`](Options::create) and of [`open`](Options::open), but for the
    /// [`Error::AlreadyExists`] and [`Error::NotFound`] of a channel created or removed by
    /// another process between the two, which are tried again (a channel there and not
    /// initialised yet is waited for as `open` waits, twice if a process holds it or it
    /// changed within the last second, a file path's too, and one whose creator died is
    /// replaced, as said above; [`Error::NotInitialized`] for one still not initialised then,
    /// or at a file path that nobody holds and that has not changed for a second, and [`Error::PermissionDenied`] for another
    /// user's that this one may not open); and:
    /// - [`Error::InvalidOptions`]: no channel there, with [`read_only`](Options::read_only);
    /// - [`Error::Io`]: the name is a symbolic link to nothing (creating never follows a link,
    ///   opening does), or other processes kept creating and removing the channel for 100
    ///   rounds, or removed this call's file from under the name as it created it, 8 times.
    ///
    /// ```
    /// use mmf::{Channel, Options, Tag};
    /// # let name = format!("open-or-create-doc-{}", std::process::id());
    /// // A service that restarts: the first start creates the channel, later ones keep it and
    /// // its value.
    /// let first = Options::new().capacity(256).open_or_create(&name)?;
    /// first.publish_raw(Tag::TEXT, b"state 1")?;
    /// let again = Options::new().capacity(256).open_or_create(&name)?;
    /// assert_eq!(again.read_raw()?.1, b"state 1");
    /// Channel::remove(&name)?;
    /// # Ok::<(), mmf::channel::Error>(())
    /// ```
    pub fn open_or_create(&self, location: impl ToLocation) -> Result<Channel> {
        self.open_or_create_with_origin(location).map(|(ch, _)| ch)
    }

    /// [`open_or_create`](Options::open_or_create), also telling whether the channel was created
    /// here or was there already, say to compare an existing channel with what was asked for.
    ///
    /// ```
    /// use mmf::{Options, Origin};
    /// let name = format!("origin-doc-{}", std::process::id());
    /// let (a, origin) = Options::new().capacity(64).open_or_create_with_origin(&name)?;
    /// assert_eq!(origin, Origin::Created);
    /// let (b, origin) = Options::new().capacity(4096).open_or_create_with_origin(&name)?;
    /// assert_eq!(origin, Origin::Existing);
    /// assert_eq!(b.capacity(), a.capacity()); // the existing channel's, not the one asked for
    /// # mmf::Channel::remove(&name)?;
    /// # Ok::<(), mmf::channel::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`open_or_create`](Options::open_or_create).
    pub fn open_or_create_with_origin(
        &self,
        location: impl ToLocation,
    ) -> Result<(Channel, Origin)> {
        self.open_or_create_parsed(&*location.to_location()?)
    }

    /// [`open_or_create_with_origin`](Options::open_or_create_with_origin) of a location
    /// already read.
    fn open_or_create_parsed(&self, location: &Location) -> Result<(Channel, Origin)> {
        if self.read_only {
            // It can open, not create: an existing channel opens read-only.
            return match self.open(location) {
                Err(Error::NotFound { name, .. }) => Err(Error::InvalidOptions(format!(
                    "no channel named '{name}' exists, and a read_only handle cannot create one; \
                     create it without read_only"
                ))),
                other => other.map(|ch| (ch, Origin::Existing)),
            };
        }
        for _ in 0..100 {
            match self.create(location) {
                // A directory on the way that a creation may not go through (another user's
                // link in a sticky directory, [`Options::create`]) leads to a channel that
                // `open` opens all the same: opened, as before creations judged their links (a
                // diff review found `new --exist-ok` refusing it). Likewise a directory this
                // user may not write to. Otherwise the creation's refusal stands.
                Err(refused @ Error::PermissionDenied { .. }) => {
                    return match self.open(location) {
                        Ok(ch) => Ok((ch, Origin::Existing)),
                        Err(Error::NotFound { .. }) => Err(refused),
                        Err(e) => Err(e),
                    };
                }
                // A channel there, or one being created (which `open` waits for).
                Err(Error::AlreadyExists { name } | Error::NotInitialized { name }) => {
                    match self.open(location) {
                        // A file whose creator died before the channel was ready (killed while
                        // it allocated: a container's memory limit, a restart) would refuse
                        // every later call: removed if nobody holds it and it has not changed
                        // for a second (a creator locks it right after creating it), and the
                        // name created anew.
                        // (Another process doing the same at the same moment may remove it
                        // first, and the name then holds that process's channel, finished or
                        // being made: opened once more.)
                        Err(e @ Error::NotInitialized { .. }) => {
                            use crate::host::Leftover;
                            match crate::host::remove_left_unfinished(
                                location,
                                Duration::from_secs(1),
                            ) {
                                Leftover::Gone => {}
                                // Kept by this look (held by an opener, say, for longer than
                                // the lock is waited for), yet removed by another process
                                // before the open below: look again, as after `Gone`.
                                Leftover::Kept => match self.open(location) {
                                    Err(Error::NotFound { .. }) => {}
                                    other => return other.map(|ch| (ch, Origin::Existing)),
                                },
                                Leftover::NotOurs => return Err(e),
                            }
                        }
                        // Removed between our create and open: try again; unless the name is a
                        // symlink to nothing, which creating (never through a link) finds taken
                        // and opening (through it) finds missing, for ever.
                        Err(Error::NotFound { .. }) => {
                            let path = location.path().unwrap_or_default();
                            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_symlink()) {
                                return Err(Error::Io {
                                    op: "opening",
                                    path,
                                    cause: io::Error::new(
                                        io::ErrorKind::NotFound,
                                        format!(
                                        "'{name}' is a symbolic link to a file that does not exist"
                                    ),
                                    ),
                                });
                            }
                        }
                        other => return other.map(|ch| (ch, Origin::Existing)),
                    }
                }
                other => return other.map(|ch| (ch, Origin::Created)),
            }
        }
        // Created and removed by others faster than we can open it, a hundred times over.
        Err(Error::Io {
            op: "opening",
            path: location.path().unwrap_or_default(),
            cause: io::Error::other(
                "another process kept creating and removing it (100 rounds); retry later",
            ),
        })
    }

    /// Replaces any channel under the name with a new one. Handles to the old channel keep
    /// working on the old memory; new opens see the new one (a new incarnation).
    ///
    /// The new channel is made whole under a temporary name in the same directory, then renamed
    /// over the old one: no opener ever finds the name missing. Temporary files that
    /// replacements killed half-way left in the same directory are removed
    /// ([`host::abandoned_replacements_in`](crate::host::abandoned_replacements_in)).
    ///
    /// A file path that is a symbolic link to a channel replaces the channel it leads to (as
    /// opening follows it), unless a link met on the way (the name's, a directory's, or one a
    /// link leads to) is another user's in a sticky directory others may write to, such as
    /// `/tmp`, which the directory's owner did not make either: the kernel's
    /// `fs.protected_symlinks` rule, applied whatever that setting says, and to every link on
    /// the way (the kernel judges only the last). It is judged before the replacement, not
    /// against a peer that swaps a directory of its own for such a link meanwhile.
    /// [`Channel::remove`] applies it to the directories on the way.
    ///
    /// # Errors
    ///
    /// In every case the old channel and its value, if there is one, stay as they were:
    /// - [`Error::InvalidName`], [`Error::InvalidOptions`], [`Error::NoSpace`],
    ///   [`Error::MemoryLimit`]: as for [`create`](Options::create) (the new channel needs its
    ///   room while the old one still holds its own);
    /// - [`Error::WrongMagic`], [`Error::NotAChannel`], [`Error::NotAFile`]: a file path that
    ///   holds something other than a channel, refused as [`Channel::remove`] refuses it;
    ///   [`Error::IsADirectory`]: a directory under the name or path;
    /// - [`Error::BeingCreated`]: another process is still creating a channel at the file path
    ///   once [`init_timeout`](Options::init_timeout) (250 ms) has passed: a creation under way
    ///   (its file empty or zero where the magic goes, held as a creator holds it) is waited
    ///   for that long, then replaced once made;
    /// - [`Error::PermissionDenied`], [`Error::Io`]: the OS refused (a missing directory
    ///   included), or a symbolic link on the way is another user's in a sticky directory
    ///   (`PermissionDenied`), or led elsewhere once the channel it led to was
    ///   checked, or another file was put at the file path (or under the temporary name)
    ///   while the new channel was made: nothing is replaced then. (Another channel put there
    ///   meanwhile, by a replacement that renamed first or a `create`, is replaced as the one
    ///   found first would have been; a name freed meanwhile is taken.)
    ///
    /// ```
    /// use mmf::{Channel, Options, Tag};
    /// # let name = format!("create-or-replace-doc-{}", std::process::id());
    /// let old = Options::new().capacity(64).create(&name)?;
    /// old.publish_raw(Tag::TEXT, b"from the last run")?;
    /// // A new run starts afresh, at once, with a larger channel: readers that open the name from
    /// // now on get the new one (the old handle still works on the old memory).
    /// let new = Options::new().capacity(4096).create_or_replace(&name)?;
    /// assert_eq!(new.generation(), 0);
    /// assert!(!old.is_current()?);
    /// Channel::remove(&name)?;
    /// # Ok::<(), mmf::channel::Error>(())
    /// ```
    pub fn create_or_replace(&self, location: impl ToLocation) -> Result<Channel> {
        let location = location.to_location()?;
        if !self.exclusive_writer {
            return self.create_or_replace_parsed(&location);
        }
        self.creatable()?;
        // Exclusive replacements of one name exclude each other through the claim of the
        // channel they replace, held until the replacement (claimed while it has its temporary
        // name) is under the name; where there is none, through `create`, which one of them
        // alone wins. A diff review had two of them both succeed, one left publishing where no
        // reader looks, in 197 rounds of 200, when each only looked for a live claim first.
        for _ in 0..8 {
            let old = Options::new()
                .init_timeout(self.init_timeout)
                .lock_timeout(self.timeouts.lock)
                .open(&*location);
            match old {
                Ok(old) => {
                    match old.claim_writer() {
                        Ok(()) => {}
                        // Another handle of this process: replacing its channel is this
                        // process's own decision (a service that grows its channel).
                        Err(Error::WriterClaimed { .. }) if old.claim_held_here() => {}
                        Err(Error::WriterClaimed { pid, .. }) => {
                            return Err(Error::WriterClaimed {
                                name: location.to_string(),
                                pid,
                            })
                        }
                        Err(e) => return Err(e),
                    }
                    // Claimed once another replacement had replaced it and let its claim go:
                    // that replacement's channel is the one to look at.
                    if !old.is_current().unwrap_or(true) {
                        continue;
                    }
                    let new = self.create_or_replace_parsed(&location)?;
                    // The old channel's claim goes with `old`, now that it is retired.
                    drop(old);
                    return self.claimed(new);
                }
                Err(Error::NotFound { .. }) => match self.create(&*location) {
                    // Another process made one meanwhile, or is making it: its claim is looked
                    // at, as above (the open waits for the creation).
                    Err(Error::AlreadyExists { .. } | Error::NotInitialized { .. }) => continue,
                    made => return made,
                },
                // Not a channel that opens (something else under the name, another user's):
                // replaced as without the claim, where the replacement may.
                Err(_) => return self.claimed(self.create_or_replace_parsed(&location)?),
            }
        }
        Err(Error::Contended {
            name: location.to_string(),
            what: "channels kept being made and removed under the name while an exclusive \
                   replacement looked at it"
                .into(),
            waited: Duration::ZERO,
        })
    }

    /// [`create_or_replace`](Options::create_or_replace) of a location already read.
    fn create_or_replace_parsed(&self, location: &Location) -> Result<Channel> {
        let Some(path) = location.path() else {
            return self.anonymous();
        };
        check_platform()?;
        let name = location.to_string();
        // For a file path, the channel found there (through a link, if it is one).
        let checked = match check_replaceable_made(location, &path, &name, Some(self.init_timeout))
        {
            Ok(checked) => checked,
            Err(Error::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        if path.as_os_str().as_encoded_bytes().ends_with(b"/") {
            return Err(directory(&name));
        }
        match location {
            Location::File(_) => unprotected_link(&name, &path, &path, "a replacement")?,
            // The shared-memory directory's own path (`MMF_SHM_DIR`'s): a name there is never
            // followed through a link (`check_replaceable`).
            _ => shm_dir_link(&name, &path, "a replacement")?,
        }
        // From here on a file path's directory is reached through a handle ([`pin`]), and
        // errors name the path as given.
        let mut pins = Vec::new();
        let made = self.replace_through(location, &name, checked, path, &mut pins);
        made.map_err(|e| pins.iter().fold(e, |e, pinned| pinned.shown(e)))
    }

    /// [`create_or_replace`](Options::create_or_replace) once the name (`name`, its path
    /// `path`) was checked: `checked` is the channel found there. Every handle a file path (or
    /// an `MMF_SHM_DIR`) is reached through ([`pin`]) goes into `pins`, for the caller to say
    /// errors by the path given.
    fn replace_through(
        &self,
        location: &Location,
        name: &str,
        checked: Option<std::fs::Metadata>,
        path: PathBuf,
        pins: &mut Vec<Pinned>,
    ) -> Result<Channel> {
        let given = path.clone();
        let path = match pin(location, &path, Pin::Replacement)? {
            Some(pinned) => {
                let through = pinned.through.clone();
                pins.push(pinned);
                through
            }
            None => path,
        };
        // A file path that is a link to a channel: replace the channel it leads to (readers of
        // the real path would never see a replacement of the link), as opening follows it. A
        // shared-memory name is never followed; a dangling link is replaced itself.
        // Only a link that led to the channel checked above is followed: one that appeared
        // since (the name was free, or dangling, when checked) is replaced itself, so that a
        // link planted in that moment cannot have root rename a channel over what it leads to.
        let path = match (location, &checked) {
            (Location::File(_), Some(checked))
                if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_symlink()) =>
            {
                // Through the handle on the name's directory, each link judged as it is
                // met (where there is one: elsewhere, by path).
                let real = match pins.last() {
                    Some(pinned) => Some(follow_judged(pinned, location, &given)?),
                    None => None,
                };
                let real_path = match &real {
                    Some(real) => real.through.clone(),
                    None => std::fs::canonicalize(&path).unwrap_or(path),
                };
                // Resolved again: the link must still lead to the channel checked above, not to
                // a file someone pointed it at meanwhile, which the rename would replace.
                if !still_named(checked, location, &real_path) {
                    let shown = real.as_ref().map_or(&real_path, |r| &r.shown);
                    return Err(io_error(
                        name,
                        shown,
                        "replacing",
                        io::Error::other(
                            "the link led elsewhere once the channel it led to was checked; \
                             retry",
                        ),
                    ));
                }
                pins.extend(real);
                real_path
            }
            _ => path,
        };
        // What the replaced channel's users rely on: its mode, owner and group; only from a
        // file that is a channel (checked above) or a plain file under a shared-memory name,
        // and only where nobody else can have planted it there ([`inheritable`]).
        let kept = match location {
            Location::File(_) => checked.clone(),
            _ => std::fs::symlink_metadata(&path)
                .ok()
                .filter(|m| m.is_file()),
        }
        .filter(|old| inheritable(old, &path));
        // Hidden from `list` (no `mmf.` prefix) while it is being made. One left behind by a
        // process killed before the rename is removed by the next replacement in its directory
        // (below), and in the shared-memory directory also by `mmf prune`
        // (`host::abandoned_replacements`).
        let tmp = path.with_file_name(format!("{REPLACEMENT_PREFIX}{:016x}", incarnation()));
        // The temporary file as the user would name it, for the texts of errors.
        let tmp_shown = match (pins.last(), tmp.file_name()) {
            (Some(pinned), Some(file_name)) => pinned.shown.with_file_name(file_name),
            _ => tmp.clone(),
        };
        let ch = self
            .create_at(location, &tmp, &tmp_shown)
            .map_err(|e| match e {
                // Errors name the channel's own path, not the temporary one.
                Error::Io { op, path: p, cause } if p == tmp => Error::Io {
                    op,
                    path: path.clone(),
                    cause,
                },
                Error::PermissionDenied {
                    name,
                    path: p,
                    cause,
                } if p == tmp => Error::PermissionDenied {
                    name,
                    path: path.clone(),
                    cause,
                },
                e => e,
            })?;
        // The new file, as made: what is under the temporary name may be another's by now.
        let made = ch.snap.liveness.file().and_then(|f| f.metadata().ok());
        let drop_tmp = || {
            if let Some(made) = &made {
                let _ = unlink_same(location, &tmp, made);
            }
        };
        // Claimed before its name is the channel's (`Options::exclusive_writer`), so that no
        // other writer claims or publishes to it first.
        if self.exclusive_writer {
            if let Err(e) = ch.claim_writer() {
                drop_tmp();
                return Err(e);
            }
        }
        // (A channel made at a path always holds its file.)
        if let (Some(old), Some(file)) = (
            kept.filter(|_| self.mode.is_none()),
            ch.snap.liveness.file(),
        ) {
            use std::os::unix::fs::MetadataExt;
            // Through the new file's own descriptor, never its path: in a directory another
            // user may write to (where `inheritable` lets a replacement keep the mode), the
            // temporary name could be swapped for a link to any file between its creation and
            // these calls, and root would give that file away (found by a review).
            // Best effort for the owner (only root may give a file away; a member of the old
            // group may set that), exact for the mode, which is ours to set.
            let uid = Some(old.uid()).filter(|_| os::euid() == 0);
            let _ = std::os::unix::fs::fchown(file, uid, Some(old.gid()));
            // With read and write for the owner, which a channel needs: a file of mode 0000
            // under the name (one not even a channel) would lock its owner out of the new one.
            let mode = std::fs::Permissions::from_mode(old.mode() & 0o777 | 0o600);
            if let Err(e) = file.set_permissions(mode) {
                drop_tmp();
                return Err(io_error(name, &path, "setting the mode of", e));
            }
        }
        // Held across the rename: `mmf prune` unlinks a channel under an exclusive lock once it
        // has checked that the name still holds it, and without this a rename in between would
        // have the new channel unlinked. Best effort: a lock held for long is nobody's to wait
        // for, and the replacement goes on.
        let old = open_retiring(location, &path);
        let _old_locked = old.as_ref().map(|f| {
            let now = Instant::now();
            lock_shared_by(
                f,
                now,
                now.checked_add(Duration::from_millis(100)),
                false,
                LOCK_GRACE,
            )
        });
        // A file path must still hold what was checked above: the channel found there, or
        // nothing. Making the new channel may take seconds (a large one's allocation), in which
        // a user's file may be put under the name, which the rename would replace (found by a
        // review: `new --force` of 600 MiB overwrote a file put there meanwhile, 4 times of 4).
        // What was free is taken only while still free (no rename over a file put there since;
        // a dangling link, replaced itself as before, excepted).
        // Nothing replaced, and why: the temporary file goes.
        let refused = |why: &'static str| {
            drop_tmp();
            io_error(name, &path, "replacing", io::Error::other(why))
        };
        let put_there = || {
            refused(
                "another file was put under the name while the new channel was made; nothing \
             was replaced: look at what is there, then retry",
            )
        };
        // And the temporary name must still hold the new file: in a directory another user
        // may write to, it may have been swapped for a link, which the rename would put under
        // the channel's name.
        let ours = made.as_ref().is_some_and(|made| {
            std::fs::symlink_metadata(&tmp).is_ok_and(|now| same_file(&now, made))
        });
        if !ours {
            return Err(refused(
                "the new channel's temporary file was replaced by another while it was made; \
             nothing was replaced: look at who else writes to the directory",
            ));
        }
        // What changed under a file path meanwhile is looked at again (a few times, against a
        // peer that keeps changing it): another channel put there (a concurrent `--force`, whose
        // rename came first, or a `create`) is replaced as the one checked would have been, and
        // a name freed (the channel removed) is taken while still free. A review found both
        // refused as "another file was put under the name": one of two restarting services
        // that replace their channel at once failed about every time.
        let mut retired = None;
        let renamed = match (location, checked) {
            (Location::File(_), mut checked) => {
                let mut tries = 0;
                // A channel another process is creating under the name is waited for (its
                // magic comes last), up to what `open` waits for one.
                let until = Instant::now() + self.init_timeout.min(Duration::from_secs(5));
                loop {
                    tries += 1;
                    if tries > 8 {
                        return Err(put_there());
                    }
                    match &checked {
                        Some(checked) if still_named(checked, location, &path) => {
                            break std::fs::rename(&tmp, &path);
                        }
                        Some(_) => {}
                        None => match move_noreplace(&tmp, &path) {
                            Ok(()) => break Ok(()),
                            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                                let dangling = std::fs::symlink_metadata(&path)
                                    .is_ok_and(|m| m.is_symlink())
                                    && std::fs::metadata(&path).is_err();
                                if dangling {
                                    break std::fs::rename(&tmp, &path);
                                }
                            }
                            // Neither such a rename nor a hard link here (a file system
                            // with neither).
                            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                                break std::fs::rename(&tmp, &path)
                            }
                            Err(e) => break Err(e),
                        },
                    }
                    // What the name holds now: a channel (replaced), nothing (taken while
                    // free), or anything else (left alone).
                    let left = until.saturating_duration_since(Instant::now());
                    checked = match check_replaceable_made(location, &path, name, Some(left)) {
                        Ok(Some(now)) => {
                            retired = open_retiring(location, &path);
                            Some(now)
                        }
                        Ok(None) | Err(Error::NotFound { .. }) => None,
                        // As at the first look (nothing replaced; the temporary file goes).
                        Err(e @ Error::BeingCreated { .. }) => {
                            drop_tmp();
                            return Err(e);
                        }
                        Err(_) => return Err(put_there()),
                    };
                }
            }
            _ => std::fs::rename(&tmp, &path),
        };
        if let Err(e) = renamed {
            drop_tmp();
            return Err(match e.kind() {
                io::ErrorKind::IsADirectory | io::ErrorKind::DirectoryNotEmpty => directory(name),
                _ => io_error(name, &path, "replacing", e),
            });
        }
        // Its followers move to the new channel now, not at their next look.
        for old in old.iter().chain(&retired) {
            mark_retired(old);
        }
        // Beside a file path nothing else would ever find them. Best effort: the replacement is
        // done whatever happens to another process's leftovers.
        if let Some(dir) = tmp.parent() {
            for left in
                crate::host::abandoned_replacements_in(dir, Duration::ZERO).unwrap_or_default()
            {
                let _ = std::fs::remove_file(left);
            }
        }
        Ok(ch)
    }

    /// A private channel in this process's memory (tests, benchmarks, threads of one process).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOptions`], as [`create`](Options::create) gives it; [`Error::Io`] if the
    /// memory cannot be mapped.
    pub fn anonymous(&self) -> Result<Channel> {
        self.claimed(self.anonymous_made()?)
    }

    /// [`anonymous`](Options::anonymous) before its claim.
    fn anonymous_made(&self) -> Result<Channel> {
        self.creatable()?;
        let layout = Layout::new(self.capacity, self.readers)?;
        let region = Region::anonymous(layout.total_bytes).map_err(|e| Error::Io {
            op: "allocating",
            path: PathBuf::from("(anonymous)"),
            cause: e,
        })?;
        let snap = Snapshot {
            region,
            layout,
            checksum: self.checksum,
            name: "(anonymous)".into(),
            header_only: true,
            liveness: os::Liveness::default(),
            damaged: None,
            cold: Default::default(),
            process_rest: os::process_word_rest(),
        };
        snap.init(
            self.flags(),
            incarnation(),
            now_ns(),
            os::pid_bits(std::process::id()) | snap.process_rest,
        );
        Ok(self.finish(snap, Location::Anonymous, None))
    }

    /// Refuses options no creation can honour: a read-only handle cannot make the channel it
    /// would hold (and a handle that silently could publish would not be read-only).
    fn creatable(&self) -> Result<()> {
        if self.read_only {
            return Err(Error::InvalidOptions(
                "read_only is for opening an existing channel; create it without it, then open \
                 it again read-only where only reading is wanted"
                    .into(),
            ));
        }
        // Set-user-ID, set-group-ID and sticky bits mean nothing on a channel, and the first
        // two would not survive: the kernel clears them when a process other than root
        // allocates the file, which comes after an early mode is set.
        if let Some(mode) = self.mode.filter(|m| m & !0o777 != 0) {
            return Err(Error::InvalidOptions(format!(
                "mode {mode:#o} has bits beyond the permission bits (0o777): give permission bits \
                 only (0o000 to 0o777), such as 0o600 or 0o644"
            )));
        }
        Ok(())
    }

    fn flags(&self) -> u64 {
        if self.checksum {
            FLAG_CHECKSUM
        } else {
            0
        }
    }

    fn finish(&self, mut snap: Snapshot, location: Location, file: Option<File>) -> Channel {
        snap.header_only = self.header_only;
        // The file lives in `snap.liveness` (its `flock` says "in use" to `mmf prune`). A
        // read-only handle neither locks nor pins, so it needs no identity (and skips the lock
        // that taking one costs: `mmf read` in a shell loop notices). A read-write one on a file
        // holds its token's kernel lock on it, and judges other owners through it.
        snap.liveness = os::Liveness::of(file);
        let token = if snap.region.writable() {
            os::claim_token(snap.liveness.file())
        } else {
            0
        };
        if token != 0 {
            snap.go_past_lost_generations(token);
        }
        Channel {
            snap,
            location,
            token,
            pin: PinState::default(),
            pin_busy: AtomicBool::new(false),
            eager_reads: Streak::default(),
            slot_reads: Streak::default(),
            pin_kept: Streak::default(),
            timeouts: self.timeouts,
            wait_spin: self.wait_spin,
            pin_pid: AtomicU32::new(0),
            remove_on_drop: None,
            claim_pid: AtomicU32::new(0),
        }
    }
}

impl Channel {
    /// Creates a channel holding values of up to `capacity` bytes, with default [`Options`].
    /// `location` is a [`Location`], a shared-memory name, or a file path: a string is one if it
    /// contains a `/` (`"./state.mmf"`, not `"state.mmf"`, which is a shared-memory name), a
    /// [`Path`] always is ([`ToLocation`]). The channel takes about `(readers + 2) x
    /// capacity` bytes (6x with the default 4 readers: one slot per pinned reader, and two).
    ///
    /// Up to `readers` handles at once (4 here; [`Options::readers`] sets it) hold a
    /// reader-pin entry. Handles beyond them still read whole values, but their waits poll,
    /// waking up to a thousand times a second while nothing changes
    /// ([`is_pinned`](Channel::is_pinned) tells): count every handle that will wait.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidName`], [`Error::InvalidOptions`]: a name or capacity that cannot be;
    /// - [`Error::AlreadyExists`]: a channel has the name; [`Error::NotInitialized`]: an empty
    ///   or zero-filled file does (one being created, or whose creator died);
    ///   [`Error::WrongMagic`], [`Error::NotAFile`], [`Error::IsADirectory`]: something else
    ///   does;
    /// - [`Error::NoSpace`], [`Error::MemoryLimit`], [`Error::FileSizeLimit`]: too little room
    ///   in its file system, or in the memory cgroup for one in memory, or a file size limit
    ///   too low, as for [`Options::create`] (nothing is left allocated);
    /// - [`Error::PermissionDenied`], [`Error::Io`]: the OS refused (a missing directory
    ///   included, which the message names).
    ///
    /// ```
    /// use mmf::{Channel, Tag};
    /// # let name = format!("channel-create-doc-{}", std::process::id());
    /// let ch = Channel::create(&name, 1024)?; // values of up to 1 KiB
    /// ch.publish_raw(Tag::TEXT, b"hello")?;
    /// Channel::remove(&name)?;
    /// # Ok::<(), mmf::channel::Error>(())
    /// ```
    pub fn create(location: impl ToLocation, capacity: usize) -> Result<Channel> {
        Options::new().capacity(capacity).create(location)
    }

    /// Opens an existing channel by [`Location`], shared-memory name or file path
    /// ([`ToLocation`]), read-write (see
    /// [`Options::read_only`] for read permission alone), with default [`Options`].
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidName`]: a name that cannot be;
    /// - [`Error::NotFound`]: nothing under the name;
    /// - [`Error::NotInitialized`]: a file still empty or zero-filled after
    ///   [`Options::init_timeout`] (250 ms): a creator that died, or another program's file;
    /// - [`Error::WrongMagic`], [`Error::NotAFile`], [`Error::IsADirectory`],
    ///   [`Error::UnsupportedVersion`], [`Error::UnsupportedKind`], [`Error::Corrupt`]:
    ///   something that is not a channel
    ///   this build reads;
    /// - [`Error::PermissionDenied`], [`Error::Io`]: the OS refused.
    ///
    /// ```
    /// use mmf::{Channel, Tag};
    /// use mmf::channel::Error;
    /// # let name = format!("channel-open-doc-{}", std::process::id());
    /// # Channel::create(&name, 64)?.publish_raw(Tag::TEXT, b"42")?;
    /// // In another process: the name another process created.
    /// let ch = Channel::open(&name)?;
    /// let (meta, value) = ch.read_raw()?;
    /// assert_eq!((meta.generation, &value[..]), (1, &b"42"[..]));
    /// assert!(matches!(Channel::open("no-such-channel"), Err(Error::NotFound { .. })));
    /// # Channel::remove(&name)?;
    /// # Ok::<(), mmf::channel::Error>(())
    /// ```
    pub fn open(location: impl ToLocation) -> Result<Channel> {
        Options::new().open(location)
    }

    /// Removes (unlinks) a channel by [`Location`], name or path ([`ToLocation`]). Open handles
    /// keep working on their memory until they are dropped; the name is free at once.
    ///
    /// A file path is removed only if the file starts with the mmf magic number: any other file
    /// (a typo, an empty or zero-filled file, a channel whose creator died before it finished)
    /// is left alone. A shared-memory name is removed whatever it holds: `/dev/shm/mmf.NAME` is
    /// mmf's own namespace, and this is how an unfinished channel there is cleared.
    ///
    /// ```
    /// use mmf::Channel;
    /// use mmf::channel::Error;
    /// let dir = std::env::temp_dir().join(format!("mmf-remove-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let notes = dir.join("notes.txt");
    /// std::fs::write(&notes, b"")?;
    /// let err = Channel::remove(notes.to_str().unwrap()).unwrap_err();
    /// assert!(matches!(err, Error::NotAChannel { .. }), "{err}");
    /// assert!(notes.exists());
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidName`]: a name that cannot be;
    /// - [`Error::NotFound`]: nothing under the name;
    /// - [`Error::WrongMagic`], [`Error::NotAChannel`]: a file path whose file does not start
    ///   with the magic number, as said above; [`Error::NotAFile`]: one that is not a regular
    ///   file; [`Error::IsADirectory`]: a directory under the name or path;
    /// - [`Error::BeingCreated`]: another process is still creating a channel at the file path
    ///   250 ms later: a creation under way (its file empty or zero where the magic goes, held
    ///   as a creator holds it) is waited for that long, then removed once made;
    /// - [`Error::PermissionDenied`], [`Error::Io`]: the OS refused (another user's file in a
    ///   directory such as `/dev/shm`, whose sticky bit lets only its owner remove it), or
    ///   another file was put under the path while it was checked; `PermissionDenied` also for
    ///   a file path whose directory is reached through another user's symbolic link in a
    ///   sticky directory others may write to (the kernel's `fs.protected_symlinks` rule,
    ///   whatever that setting says).
    pub fn remove(location: impl ToLocation) -> Result<()> {
        remove_if(&*location.to_location()?, Expect::Any).map(drop)
    }

    /// Drops this handle, and for one whose drop would remove its channel
    /// ([`Options::remove_on_drop`]) removes it now and says how that went, which a drop cannot:
    /// `Ok(true)` if it removed the channel, `Ok(false)` if there was nothing for it to remove
    /// (a handle without `remove_on_drop`, one of another process, or a name that no longer
    /// leads to this channel: removed, or made anew, since). Its own file (the same device and
    /// inode) is removed whatever another program wrote over it since, as its drop removes it.
    ///
    /// ```
    /// use mmf::{Channel, Options};
    /// # let name = format!("close-doc-{}", std::process::id());
    /// let results = Options::new().capacity(64).remove_on_drop(true).create(&name)?;
    /// assert!(results.close()?, "removed");
    /// assert!(!Channel::create(&name, 64)?.close()?, "left: not made to be removed");
    /// # Channel::remove(&name)?;
    /// # Ok::<(), mmf::channel::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Channel::remove`] fails: [`Error::PermissionDenied`] or [`Error::Io`] where the OS
    /// refuses the removal (an immutable file, a read-only file system). The handle is dropped
    /// all the same, and the channel stays under its name.
    pub fn close(mut self) -> Result<bool> {
        self.remove_own()
    }

    /// Keeps the channel under its name when this handle drops or closes: a handle made with
    /// [`Options::remove_on_drop`] no longer removes it. Returns whether it was going to (`true`
    /// once, for a handle made to remove its channel, in the process that made it).
    ///
    /// For a channel whose use turns out to outlast its maker: made to be cleaned up if the
    /// work fails half-way, kept once it succeeds.
    ///
    /// ```
    /// use mmf::{Channel, Options, Tag};
    /// # let name = format!("keep-doc-{}", std::process::id());
    /// let mut results = Options::new().capacity(64).remove_on_drop(true).create(&name)?;
    /// results.publish_raw(Tag::TEXT, b"all 12 runs passed")?;
    /// assert!(results.keep(), "it was going to remove the channel");
    /// drop(results);
    /// assert_eq!(Channel::open(&name)?.read_raw()?.1, b"all 12 runs passed");
    /// # Channel::remove(&name)?;
    /// # Ok::<(), mmf::channel::Error>(())
    /// ```
    pub fn keep(&mut self) -> bool {
        self.remove_on_drop.take() == Some(std::process::id())
    }

    /// What [`close`](Channel::close) and the drop do to the channel: remove it if this handle
    /// is to ([`Options::remove_on_drop`], in the process that made it), once.
    fn remove_own(&mut self) -> Result<bool> {
        if self.remove_on_drop.take() != Some(std::process::id()) {
            return Ok(false);
        }
        let (Some(file), Some(path)) = (self.snap.liveness.file(), self.location.path()) else {
            return Ok(false);
        };
        let mine = file
            .metadata()
            .map_err(|e| io_error(&self.location.to_string(), &path, "inspecting", e))?;
        match remove_if(&self.location, Expect::Own(&mine)) {
            // The name leads to nothing, or (a file path) to what is no channel: not this one.
            Err(
                Error::NotFound { .. }
                | Error::WrongMagic { .. }
                | Error::NotAChannel { .. }
                | Error::NotAFile { .. }
                | Error::IsADirectory { .. },
            ) => Ok(false),
            removed => removed,
        }
    }

    /// A private, in-process channel of `capacity` bytes (default [`Options`] otherwise).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOptions`] for a capacity of 0 or beyond
    /// [`MAX_CAPACITY`](crate::MAX_CAPACITY); [`Error::Io`] if the memory cannot be mapped.
    pub fn anonymous(capacity: usize) -> Result<Channel> {
        Options::new().capacity(capacity).anonymous()
    }

    /// Publishes `bytes` as the next value, tagged `tag`, and returns its generation.
    ///
    /// The value becomes visible to readers all at once.
    ///
    /// # Errors
    ///
    /// In every case nothing is published and the previous value stays the latest:
    /// - [`Error::TooLarge`]: a value larger than the capacity;
    /// - [`Error::EmptyTag`]: the tag [`Tag::EMPTY`], which marks a channel with no value yet;
    /// - [`Error::ReservedTag`]: a tag from 5 to 255, kept for mmf's codecs to come
    ///   ([`Tag::is_publishable`]);
    /// - [`Error::ReadOnly`]: a handle opened read-only;
    /// - [`Error::Contended`]: another writer held the writer lock past
    ///   [`Options::lock_timeout`];
    /// - [`Error::Reentrant`]: a publish from inside this channel's
    ///   [`publish_with`](Channel::publish_with) closure;
    /// - [`Error::Corrupt`], [`Error::Truncated`]: another process damaged or shrank the
    ///   mapping.
    ///
    /// ```
    /// use mmf::{Channel, Tag};
    /// let ch = Channel::anonymous(64)?;
    /// assert_eq!(ch.publish_raw(Tag::BYTES, &[1, 2, 3])?, 1);
    /// assert_eq!(ch.publish_raw(Tag::TEXT, b"second")?, 2);
    /// // Too large: an error, and the last value stays.
    /// assert!(ch.publish_raw(Tag::BYTES, &[0; 65]).is_err());
    /// assert_eq!(ch.read_raw()?.1, b"second");
    /// # Ok::<(), mmf::channel::Error>(())
    /// ```
    #[inline]
    pub fn publish_raw(&self, tag: Tag, bytes: &[u8]) -> Result<u64> {
        self.publish_raw_as::<true>(tag, bytes)
    }

    /// `publish_raw`, with or without the check for waiters (`Snapshot::publish`; `false`
    /// is for the benchmarks only, through `__bench`).
    #[inline(always)]
    pub(crate) fn publish_raw_as<const WAKE: bool>(&self, tag: Tag, bytes: &[u8]) -> Result<u64> {
        if bytes.len() > self.snap.layout.capacity || !tag.is_publishable() {
            return Err(self.refused(tag, bytes.len()));
        }
        let published = self
            .snap
            .publish_bytes::<WAKE>(self.token, tag, &self.timeouts, bytes);
        self.checked_publish(published)
    }

    /// Publishes the bytes that `fill` writes into a free slot (no intermediate buffer), tagged
    /// `tag`, and returns the new generation. `fill` runs under the channel's writer lock: a
    /// publish from inside it to this same channel is refused with [`Error::Reentrant`] (it
    /// would wait for that lock), through this handle or any other on the same mapping, and
    /// through another handle of its own where the channel's file takes the kernel locks that
    /// give each handle a token of its own (else, as a publish waiting for another thread, with
    /// [`Error::Contended`] at the lock timeout).
    ///
    /// ```
    /// use std::io::Write;
    /// use mmf::{Channel, Tag};
    /// let ch = Channel::anonymous(64)?;
    /// ch.publish_with(Tag::TEXT, |w| write!(w, "{} + {} = {}", 1, 2, 1 + 2))?;
    /// assert_eq!(ch.read_raw()?.1, b"1 + 2 = 3");
    /// # Ok::<(), mmf::channel::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// In every case nothing is published and the previous value stays the latest:
    /// - [`Error::EmptyTag`], [`Error::ReservedTag`]: a tag no publish carries, refused before
    ///   `fill` runs;
    /// - [`Error::TooLarge`]: `fill` wrote, or tried to write, more than the capacity (whatever
    ///   it returned then);
    /// - [`Error::Encode`]: `fill` returned an error, which is its `cause` (and its
    ///   [`os_error`](Error::os_error));
    /// - [`Error::ReadOnly`], [`Error::Contended`], [`Error::Reentrant`], [`Error::Corrupt`],
    ///   [`Error::Truncated`]: as for [`publish_raw`](Channel::publish_raw).
    pub fn publish_with<F>(&self, tag: Tag, fill: F) -> Result<u64>
    where
        F: FnOnce(&mut SlotWriter<'_>) -> io::Result<()>,
    {
        if !tag.is_publishable() {
            return Err(tag_refused(tag));
        }
        self.publish_fill(tag, fill)
    }

    /// [`publish_with`](Self::publish_with) for any tag but [`Tag::EMPTY`] (the caller's
    /// check): [`recover`](Self::recover) publishes again a value of a tag that a later mmf's
    /// codec wrote.
    fn publish_fill<F>(&self, tag: Tag, fill: F) -> Result<u64>
    where
        F: FnOnce(&mut SlotWriter<'_>) -> io::Result<()>,
    {
        debug_assert_ne!(tag, Tag::EMPTY);
        let published =
            self.snap
                .publish::<F, true>(self.token, tag, &self.timeouts, Source::Fill(fill));
        self.checked_publish(published)
    }

    /// Why [`publish_raw`](Self::publish_raw) refuses a value of `len` bytes tagged `tag`
    /// before it starts: too large, or a tag no publish carries.
    #[cold]
    fn refused(&self, tag: Tag, len: usize) -> Error {
        if len > self.snap.layout.capacity {
            Error::TooLarge {
                name: self.snap.name.clone(),
                len,
                capacity: self.snap.layout.capacity,
            }
        } else {
            tag_refused(tag)
        }
    }

    /// Copies the latest value into `buf` (replacing its contents, reusing its allocation) and
    /// returns what it is. Never blocks a writer; never returns a torn value. Before the first
    /// publish, `Ok` with [`Meta::is_unpublished`] and no bytes.
    ///
    /// # Errors
    ///
    /// - [`Error::Contended`]: writers overtook every copy for [`Options::read_timeout`];
    /// - [`Error::Corrupt`]: the mapping holds what no correct writer writes (with
    ///   [`Error::mended_by_publish`] where only the current value is damaged);
    /// - [`Error::OutOfMemory`]: a value larger than this process can allocate;
    /// - [`Error::Truncated`]: another process shrank the file while it was mapped.
    ///
    /// ```
    /// use mmf::{Channel, Tag};
    /// let ch = Channel::anonymous(1024)?;
    /// ch.publish_raw(Tag::BYTES, &[7; 100])?;
    /// // One buffer for every read: no allocation once it has grown to the largest value.
    /// let mut buf = Vec::with_capacity(1024);
    /// let meta = ch.read_into(&mut buf)?;
    /// assert_eq!((meta.generation, meta.tag, buf.len()), (1, Tag::BYTES, 100));
    /// # Ok::<(), mmf::channel::Error>(())
    /// ```
    #[inline]
    pub fn read_into(&self, buf: &mut Vec<u8>) -> Result<Meta> {
        self.read_into_by(buf, &self.timeouts)
    }

    /// [`read_into`](Self::read_into), giving up as `Contended` after `t.read`.
    #[inline]
    fn read_into_by(&self, buf: &mut Vec<u8>, t: &Timeouts) -> Result<Meta> {
        // The pin entry belongs to the handle and is claimed at its first read (once per
        // handle), even when the fast path below needs none.
        let entry = self.pin_entry();
        let eager = self.eager_reads.left();
        let slot_only = self.slot_reads.left();
        // The common case first, apart from the general loop: a read whose first copy succeeds,
        // from the header (a small value) or from the slot the header names (see
        // `Snapshot::read_inline`).
        let mut miss = Miss::Elsewhere;
        if slot_only == 0 && eager == 0 {
            match self.snap.read_inline(buf) {
                Ok(meta) => {
                    self.pin_kept_one_read_less(entry);
                    self.intact()?;
                    return Ok(meta);
                }
                // The general read goes on from where the fast one stopped.
                Err(m) => miss = m,
            }
        }
        self.read_general(buf, entry, eager, slot_only, miss, t)
    }

    /// [`read_raw`](Self::read_raw), giving up as `Contended` after `budget` (or this handle's
    /// own read timeout, if shorter): for a stream's read inside `poll`, which must not spin for
    /// the whole read timeout on the executor's thread.
    #[cfg(feature = "async")]
    pub(crate) fn read_raw_within(&self, budget: Duration) -> Result<(Meta, Vec<u8>)> {
        let t = Timeouts {
            read: budget.min(self.timeouts.read),
            ..self.timeouts
        };
        let mut buf = Vec::new();
        let meta = self.read_into_by(&mut buf, &t)?;
        Ok((meta, buf))
    }

    /// How long a read of this handle retries before `Contended` ([`Options::read_timeout`]).
    #[cfg(feature = "async")]
    pub(crate) fn read_timeout(&self) -> Duration {
        self.timeouts.read
    }

    /// `read_into` past its fast path: optimistic, then pinned attempts, slot copies. `fast` says
    /// why the fast path left the read here (`Miss::Elsewhere` if it was not tried).
    fn read_general(
        &self,
        buf: &mut Vec<u8>,
        entry: Option<usize>,
        eager: u32,
        slot_only: u32,
        fast: Miss,
        t: &Timeouts,
    ) -> Result<Meta> {
        let fast_overtaken = fast == Miss::InlineOvertaken;
        // A second thread reading through the same handle at the same moment reads by validation
        // alone instead of sharing the pin. The per-read claim on the entry, an atomic swap, is
        // only made after a failed optimistic attempt, so a plain read does no RMW at all.
        let mut pinned = false;
        let take_pin = || {
            let e = entry?;
            pinned = !self
                .pin_busy
                .swap(true, std::sync::atomic::Ordering::Acquire);
            pinned.then_some(e)
        };
        // After a read that had to retry (a writer overtook it), the next `Streak::LENGTH` reads pin
        // at once instead of first losing an optimistic attempt; then optimism is tried again.
        // Likewise, after an inline copy was overtaken, the next reads of small values go to the
        // slot (see `Snapshot::read`). Both counts are per handle and only steer the fast path.
        let inline = slot_only == 0 && !fast_overtaken;
        let result = self.snap.read(
            take_pin,
            eager > 0,
            inline,
            fast == Miss::SlotFailed,
            buf,
            t,
        );
        if pinned {
            self.pin_busy
                .store(false, std::sync::atomic::Ordering::Release);
            // This read pinned: the count towards taking the pin off starts again.
            self.pin_kept.after(0, true);
        } else {
            self.pin_kept_one_read_less(entry);
        }
        let (mut meta, overtaken) = self.checked(result)?;
        self.eager_reads.after(eager, meta.retries > 0);
        self.slot_reads
            .after(slot_only, overtaken || fast_overtaken);
        // The fast path's inline copy, overtaken, was this read's first attempt: a start over
        // that `Meta::retries` counts, as it counts a slot copy lost there (`lost` above). Not
        // before the two counts above, which steer the next reads by what this one met
        // inside (an overtaken inline copy sends them to the slot, not to pin at once).
        // (It was left out: the benchmark's retries per snapshot at 64 B under-counted, an
        // audit of its method found.)
        meta.retries = meta.retries.saturating_add(u32::from(fast_overtaken));
        Ok(meta)
    }

    /// Counts a read that did not pin towards taking this handle's pin off. The pin (or the wish
    /// for slots, when `latest` named none) stays after a pinned read, and while any pin entry is
    /// set writers keep every value in a slot, giving up header-only publishes (`Snapshot`'s
    /// `store_header_only`). So after [`PIN_KEPT_READS`] reads in a row that needed no pin, the
    /// handle takes it off. A reader that a writer keeps overtaking pins again at once; one that
    /// is not overtaken any more gives the writers their fast path back.
    #[inline]
    fn pin_kept_one_read_less(&self, entry: Option<usize>) {
        let left = self.pin_kept.left();
        if left > 0 {
            self.pin_kept.after(left, false);
            if left == 1 {
                self.unpin(entry);
            }
        }
    }

    /// Takes this handle's pin off, unless another thread is reading through it right now (then
    /// the next read tries again).
    #[cold]
    fn unpin(&self, entry: Option<usize>) {
        let Some(e) = entry else { return };
        if self
            .pin_busy
            .swap(true, std::sync::atomic::Ordering::Acquire)
        {
            self.pin_kept.0.store(1, Relaxed);
            return;
        }
        self.snap.unpin(e);
        self.pin_busy
            .store(false, std::sync::atomic::Ordering::Release);
    }

    /// `Err(Truncated)` once the process's `SIGBUS` handler caught an access to this handle's
    /// mapping past the end of its (truncated) file: whatever the operation copied or stored
    /// since was not the channel's.
    #[inline]
    fn intact(&self) -> Result<()> {
        if self.snap.region.tripped() {
            return Err(self.truncated());
        }
        Ok(())
    }

    #[cold]
    fn truncated(&self) -> Error {
        self.snap.truncated()
    }

    /// `result`, unless the mapping tripped meanwhile ([`intact`](Self::intact)): then
    /// `Truncated`, whatever the operation made of the zero pages.
    #[inline(always)]
    fn checked<T>(&self, result: Result<T>) -> Result<T> {
        match result {
            Ok(v) => {
                self.intact()?;
                Ok(v)
            }
            Err(e) => Err(self.truncated_or(e)),
        }
    }

    /// A publish's `result`, with a failure explained by a trip reported as `Truncated`. A
    /// success needs no second look: `Snapshot::commit` refuses to store `latest` once the
    /// mapping tripped, so a publish that succeeded reached the file before any truncation
    /// that this handle's accesses ran into.
    #[inline(always)]
    fn checked_publish(&self, result: Result<u64>) -> Result<u64> {
        result.map_err(|e| self.truncated_or(e))
    }

    #[cold]
    fn truncated_or(&self, e: Error) -> Error {
        if self.snap.region.tripped() {
            self.truncated()
        } else {
            e
        }
    }

    /// The latest value as an owned buffer, with what it is.
    ///
    /// # Errors
    ///
    /// As [`read_into`](Channel::read_into).
    pub fn read_raw(&self) -> Result<(Meta, Vec<u8>)> {
        let mut buf = Vec::new();
        let meta = self.read_into(&mut buf)?;
        Ok((meta, buf))
    }

    /// Generation of the newest value (0 before the first publish): one atomic load, so
    /// "has it changed since `g`?" costs nothing. A handle whose channel was truncated under it
    /// ([`truncation`](crate::truncation)) reads 0 here, a change from any earlier generation:
    /// the read that follows says [`Error::Truncated`].
    #[inline]
    pub fn generation(&self) -> u64 {
        self.snap.generation()
    }

    /// The generation of the writers' own count, `written` (FORMAT.md §4): `latest` as the last
    /// publish stored it, which another process's stray write of `latest` leaves as it was.
    pub(crate) fn written_generation(&self) -> u64 {
        self.snap.written_generation()
    }

    /// Blocks until the generation moves past `since`, then returns the new generation; returns
    /// `None` if `until` is over first: a timeout (a [`Duration`]), a deadline (an [`Instant`]), or
    /// a [`Stop`](crate::Stop) that was stopped ([`Until`]). On Linux a handle with a reader-pin
    /// entry sleeps on a futex in the shared header until a writer in any process publishes (and
    /// looks again at least every 100 ms, see `wait.rs`). A handle without one polls the
    /// generation, every millisecond once it has waited a while: a read-only handle
    /// ([`Options::read_only`]), and one that found every entry taken (a channel has
    /// [`Options::readers`] of them, 4 by default, for all processes together; see
    /// [`is_pinned`](Channel::is_pinned) after a first read). Fifty such handles waiting took a
    /// quarter of a core here; make the channel with as many readers as will wait on it.
    ///
    /// Every publish wakes every handle asleep here, with one system call that wakes each
    /// sleeper in turn, and each then runs to look. Many waiters under a writer that publishes
    /// back to back share the CPUs with it: on the project's 2-core VM (Intel model 207), `mmf
    /// out --lines` took 0.08-0.12 us a publish alone, 0.26-0.29 us with one `mmf watch`
    /// waiting, 2.6-3.9 us with 10 and 49-75 us with 50 (most of it the writer's own wake-up
    /// call; a loop of `publish_raw` on the model 167 host before: 0.10, 0.18, 2.6 and
    /// 118 us). Publish no faster than the waiters need values, or let those that need not see
    /// each value poll at their own pace (a [`read_into`](Self::read_into) every so often)
    /// instead of waiting. Once the
    /// channel was truncated under this handle and the `SIGBUS` handler caught it
    /// ([`truncation`](crate::truncation)), it returns `since + 1` at once (within 100 ms when
    /// another thread trips the handle), so that the caller's next read reports `Truncated`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mmf::{Channel, Tag};
    /// let ch = Channel::anonymous(64)?;
    /// assert_eq!(ch.wait_for_change(0, Duration::from_millis(10)), None);
    /// std::thread::scope(|s| {
    ///     s.spawn(|| ch.publish_raw(Tag::TEXT, b"next"));
    ///     assert_eq!(ch.wait_for_change(0, Duration::from_secs(10)), Some(1));
    /// });
    /// # Ok::<(), mmf::channel::Error>(())
    /// ```
    #[must_use = "`None` means the wait timed out or was stopped, with no new value"]
    pub fn wait_for_change(&self, since: u64, until: impl Into<Until>) -> Option<u64> {
        self.wait_unless_retired(since, &until.into(), None)
    }

    /// [`wait_for_change`](Channel::wait_for_change) that also returns `None` early once the
    /// header's `retired` word reads other than `mark` (a follower's; see
    /// [`retired_mark`](Channel::retired_mark)).
    pub(crate) fn wait_unless_retired(
        &self,
        since: u64,
        until: &Until,
        mark: Option<u64>,
    ) -> Option<u64> {
        self.snap
            .wait_for_change(self.pin_entry(), since, until, self.wait_spin, mark)
    }

    /// The header's `retired` word: 0 until an mmf process removes the channel's name or
    /// renames another channel over it ([`mark_retired`]). Any value, from shared memory: a
    /// follower compares it with what it read at its last look, nothing more.
    pub(crate) fn retired_mark(&self) -> u64 {
        crate::sync::load_acquire(self.snap.region.word(H_RETIRED))
    }

    /// Like [`wait_for_change`](Channel::wait_for_change) with "now" as `since`: blocks until the
    /// next publish, then copies the new value into `buf`. `None` once `until` is over (a
    /// timeout, a deadline, a [`Stop`](crate::Stop): [`Until`]).
    ///
    /// "Next" counts from the call: a value published between two calls (while the caller was
    /// busy with the last one) is not waited for, it is missed. A loop that must see the newest
    /// value every time it changes uses [`read_after_into`](Channel::read_after_into) with the
    /// generation it saw last.
    ///
    /// # Errors
    ///
    /// As [`read_into`](Channel::read_into), of the read after the wait; [`Error::Truncated`]
    /// comes at once, without a wait, once the `SIGBUS` handler caught an access to this
    /// handle's mapping ([`truncation`](crate::truncation)).
    pub fn read_next_into(
        &self,
        buf: &mut Vec<u8>,
        until: impl Into<Until>,
    ) -> Result<Option<Meta>> {
        self.intact()?;
        let since = self.generation();
        match self.wait_for_change(since, until) {
            // After a trip the wait returns at once, and this read reports it.
            Some(_) => self.read_into(buf).map(Some),
            None => Ok(None),
        }
    }

    /// Copies the newest value into `buf` once its generation is past `since`: at once if it is
    /// already, else when a writer publishes one (blocking as
    /// [`wait_for_change`](Channel::wait_for_change) does). `None` if `until` is over first (a
    /// timeout, a deadline, a [`Stop`](crate::Stop): [`Until`]).
    ///
    /// With the generation of the value it saw last as `since`, a consumer loop sees the newest
    /// value every time one came, however long it spent on the last (values published meanwhile
    /// but already overtaken are skipped: the channel holds the latest value only).
    ///
    /// `until` bounds the wait; the read after it is [`read_into`](Channel::read_into)'s, which
    /// a writer overtaking it without pause or a corrupt channel can make take up to
    /// [`Options::read_timeout`] more before it says `Contended`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mmf::{Channel, Tag};
    /// let ch = Channel::anonymous(64)?;
    /// let mut buf = Vec::new();
    /// ch.publish_raw(Tag::TEXT, b"first")?;
    /// let seen = ch.read_after_into(0, &mut buf, Duration::from_secs(1))?.unwrap();
    /// ch.publish_raw(Tag::TEXT, b"while busy")?;
    /// // Published before this call, and still newer than what was seen: read at once.
    /// let next = ch.read_after_into(seen.generation, &mut buf, Duration::from_secs(1))?.unwrap();
    /// assert_eq!((next.generation, &buf[..]), (2, &b"while busy"[..]));
    /// assert_eq!(ch.read_after_into(2, &mut buf, Duration::from_millis(10))?, None);
    /// # Ok::<(), mmf::channel::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`read_next_into`](Channel::read_next_into).
    pub fn read_after_into(
        &self,
        since: u64,
        buf: &mut Vec<u8>,
        until: impl Into<Until>,
    ) -> Result<Option<Meta>> {
        self.intact()?;
        let until = until.into();
        loop {
            if self.wait_unless_retired(since, &until, None).is_none() {
                return Ok(None);
            }
            // After a trip the wait returns at once, and this read reports it.
            let meta = self.read_into(buf)?;
            // A peer may have moved `latest` back meanwhile: wait again, within the timeout.
            if meta.generation > since {
                return Ok(Some(meta));
            }
            if until.is_over() {
                return Ok(None);
            }
        }
    }

    /// Whether the `SIGBUS` handler caught an access to this handle's mapping (`truncation`).
    #[cfg(feature = "async")]
    pub(crate) fn tripped(&self) -> bool {
        self.snap.region.tripped()
    }

    /// The flag behind [`tripped`](Self::tripped), valid for the rest of the process.
    #[cfg(feature = "async")]
    pub(crate) fn trip_flag(&self) -> &'static std::sync::atomic::AtomicBool {
        self.snap.region.trip_flag()
    }

    /// The header's `latest` word (the futex word of async waits).
    #[cfg(feature = "async")]
    pub(crate) fn latest_word(&self) -> &std::sync::atomic::AtomicU64 {
        self.snap.region.word(H_LATEST)
    }

    /// The header's `retired` word (see [`retired_mark`](Channel::retired_mark)).
    #[cfg(feature = "async")]
    pub(crate) fn retired_word(&self) -> &std::sync::atomic::AtomicU64 {
        self.snap.region.word(H_RETIRED)
    }

    /// Counts this handle as a waiter in the header and returns its pin entry, or `None` if it
    /// cannot be counted (read-only, no free entry, no futex) and must poll instead.
    #[cfg(feature = "async")]
    pub(crate) fn waiter_enter(&self) -> Option<usize> {
        let e = self
            .pin_entry()
            .filter(|_| os::FUTEX && self.snap.region.writable())?;
        self.snap.enter_waiting(e);
        Some(e)
    }

    /// Undoes a successful [`waiter_enter`](Channel::waiter_enter).
    #[cfg(feature = "async")]
    pub(crate) fn waiter_leave(&self, e: usize) {
        self.snap.leave_waiting(e);
    }

    /// The snapshot under this handle, for the crate's own tests.
    #[cfg(test)]
    pub(crate) fn snapshot(&self) -> &Snapshot {
        &self.snap
    }

    /// This handle's pin entry, claimed on first use.
    #[inline]
    fn pin_entry(&self) -> Option<usize> {
        match self.pin.claimed() {
            Some(entry) => entry,
            None => self.claim_pin_entry(),
        }
    }

    /// [`pin_entry`](Self::pin_entry)'s first use: one thread claims the entry while the
    /// handle's other threads wait for it (a claim takes microseconds: a few compare-and-swaps,
    /// a liveness test of dead owners). Not a `OnceLock`, whose waiters wait for ever where the
    /// claiming thread is not there to finish: in a child made by `fork` while a thread of the
    /// parent claimed (a review found such children hung in their first read, 5 in 2,500).
    /// Such a child's copy goes without an entry; the one the parent's thread claims is the
    /// parent's.
    #[cold]
    #[inline(never)]
    fn claim_pin_entry(&self) -> Option<usize> {
        let pid = std::process::id();
        loop {
            match self.pin.begin(pid) {
                PinClaim::Done(entry) => return entry,
                PinClaim::Ours => {
                    self.pin_pid.store(pid, Relaxed);
                    let mut claiming = Claiming {
                        state: &self.pin,
                        finished: false,
                    };
                    let entry = self.snap.claim_pin(self.token);
                    claiming.finish(entry);
                    return entry;
                }
                PinClaim::Busy => std::thread::yield_now(),
            }
        }
    }

    /// Largest value the channel holds, in bytes.
    pub fn capacity(&self) -> usize {
        self.snap.layout.capacity
    }

    /// Where the channel lives.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Random id chosen at creation: tells a channel from one removed and created again under
    /// the same name. The CLI writes it as 16 hex digits (`mmf info`, `mmf read --meta`, and
    /// `--incarnation` takes that form): `format!("{:016x}", ch.incarnation())`.
    pub fn incarnation(&self) -> u64 {
        self.snap.header(H_INCARNATION)
    }

    /// Whether the channel's name (or path) still leads to this handle's channel: `false` once
    /// any process removed it, or removed it and created another under the same name.
    ///
    /// A handle keeps working on its channel's memory either way (publishing and reading succeed),
    /// but no process can open that channel any more, so a long-lived reader or writer that
    /// follows the name should open it again (`mmf watch` and `mmf read --wait` do). Compares
    /// the device and inode of the file the name leads to with the handle's: a `stat` and an
    /// `fstat`. Always `true` for an anonymous channel or one opened from an image.
    ///
    /// ```
    /// use mmf::Channel;
    /// let name = format!("is-current-doc-{}", std::process::id());
    /// let ch = Channel::create(&name, 64)?;
    /// assert!(ch.is_current()?);
    /// Channel::remove(&name)?;
    /// assert!(!ch.is_current()?);
    /// let again = Channel::create(&name, 64)?;
    /// assert!(again.is_current()? && !ch.is_current()?);
    /// # Channel::remove(&name)?;
    /// # Ok::<(), mmf::channel::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::PermissionDenied`], [`Error::Io`]: the file the name leads to, or the handle's
    /// own, could not be inspected, for another reason than that nothing is under the name
    /// (which is `Ok(false)`).
    pub fn is_current(&self) -> Result<bool> {
        let (Some(file), Some(path)) = (self.snap.liveness.file(), self.location.path()) else {
            return Ok(true);
        };
        let name = self.location.to_string();
        // A `stat`, not an open: the file's mode may have changed to one this process cannot
        // open (the handle still works), which says nothing about which file the name holds.
        // A link is followed where an open would follow it (a file path's, not `/dev/shm`'s).
        let now = match self.location {
            Location::Shm(_) => std::fs::symlink_metadata(&path),
            _ => std::fs::metadata(&path),
        };
        let now = match now {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_error(&name, &path, "inspecting", e)),
        };
        let mine = file
            .metadata()
            .map_err(|e| io_error(&name, &path, "inspecting", e))?;
        // Device and inode: a freed inode number cannot come back to another file meanwhile,
        // because `file` keeps ours alive.
        Ok(os::same_file(&now, &mine))
    }

    /// Whether a process has marked this channel retired: a hint, one atomic load, cheap enough
    /// to ask before every publish, that [`is_current`](Channel::is_current) may now say
    /// `false`.
    ///
    /// mmf writes the header's `retired` word (FORMAT.md §8) right after it removes the
    /// channel's name or renames another channel over it: [`Channel::remove`],
    /// [`create_or_replace`](Options::create_or_replace), `mmf remove`, `mmf new --force`,
    /// `mmf prune`. A writer that follows the name publishes at full speed and calls
    /// `is_current` (a `stat` and an `fstat`) only when this says `true`, and, since the hint
    /// can be missed, every so often besides ([`Follower`](crate::Follower) looks every 100 ms):
    ///
    /// - **Missed**: a name removed by another program (`rm`), or by an mmf process that may
    ///   not write the file, leaves the word 0, as does the removal of a name that was not the
    ///   file's last (a second hard link, a symbolic link's path: the file lives on under the
    ///   other); and an mmf remover writes it just after the name is gone, so a publish in
    ///   between lands in the retired channel unseen.
    /// - **Wrong**: the word lives in shared memory, which any process that may write the
    ///   channel can set (a stray write, a peer of an older layout): `true` is confirmed with
    ///   `is_current` before the writer acts on it, and a writer that finds it set and the
    ///   channel current stops trusting the hint.
    ///
    /// Always `false` for an anonymous channel; for one opened from an image, what the image's
    /// word holds.
    ///
    /// ```
    /// use mmf::{Channel, Tag};
    /// let name = format!("retired-hint-doc-{}", std::process::id());
    /// let mut writer = Channel::create(&name, 64)?;
    /// assert!(!writer.retired_hint());
    /// mmf::Options::new().capacity(64).create_or_replace(&name)?; // `mmf new NAME --force`
    /// // Before a publish: one load, and a stat only when the hint says so.
    /// if writer.retired_hint() && !writer.is_current()? {
    ///     writer = Channel::open(&name)?;
    /// }
    /// writer.publish_raw(Tag::TEXT, b"where readers of the name look")?;
    /// let mut buf = Vec::new();
    /// Channel::open(&name)?.read_into(&mut buf)?;
    /// assert_eq!(buf, b"where readers of the name look");
    /// # Channel::remove(&name)?;
    /// # Ok::<(), mmf::channel::Error>(())
    /// ```
    pub fn retired_hint(&self) -> bool {
        self.retired_mark() != 0
    }

    /// Claims the channel's writer role for this handle, as [`Options::exclusive_writer`] does
    /// at open: from now until this handle is dropped, publishes through other handles (of any
    /// process) fail with [`Error::WriterClaimed`]. Claiming again is a no-op.
    ///
    /// Made under the writer lock, so a publish that began before it has ended, and none
    /// begins after it without finding the claim. A claim whose holder has died (however: its
    /// kernel lock went with it, docs/FORMAT.md §5) is taken over, so a standby can take the
    /// role as soon as the active writer is gone:
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use mmf::channel::Error;
    /// let ch = mmf::Channel::open("orders")?;
    /// loop {
    ///     match ch.claim_writer() {
    ///         Ok(()) => break, // the active writer is gone: this one takes over
    ///         Err(Error::WriterClaimed { .. }) => std::thread::sleep(Duration::from_millis(100)),
    ///         Err(e) => return Err(e),
    ///     }
    /// }
    /// # Ok::<(), mmf::channel::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::WriterClaimed`]: another handle that may still be running holds the claim;
    /// [`Error::ReadOnly`]: this handle cannot publish; [`Error::Contended`]: the writer lock
    /// stayed held past the [lock timeout](Options::lock_timeout); [`Error::Reentrant`]: from
    /// inside a [`publish_with`](Channel::publish_with) closure on this channel.
    pub fn claim_writer(&self) -> Result<()> {
        self.snap.claim_writer(self.token, &self.timeouts)?;
        // The first process to claim through this handle gives the claim back: a child made
        // by `fork` whose copy claims again (a no-op, its token is its parent's) must not give
        // back its parent's claim when it drops the copy (a diff review saw it happen).
        let _ = self
            .claim_pid
            .compare_exchange(0, std::process::id(), Relaxed, Relaxed);
        Ok(())
    }

    /// Whether this channel's writer role is claimed by another handle of this process: its
    /// token's kernel lock is held by this process (`/proc/self/fdinfo`), or, judged by pid,
    /// the token names this process.
    fn claim_held_here(&self) -> bool {
        let claim = self.snap.header(H_WRITER_CLAIM);
        let me = std::process::id();
        if claim & os::KERNEL_HELD == 0 {
            return claim != 0 && os::token_pid(claim) == me;
        }
        self.snap
            .liveness
            .file()
            .is_some_and(|f| os::pid_holds_lock(me, f, os::lock_offset(claim)) == Some(true))
    }

    /// Marks the channel as used now: sets its file's modification time, which `mmf prune` and
    /// `mmf doctor` (through [`host::last_touched`](crate::host::last_touched)) read as the
    /// time of its last activity. Publishing does not do this by itself (a publish makes no
    /// system call; and writes through a shared mapping set the time of a `/dev/shm` file only
    /// at a process's first write to each page, not at a long-running writer's later ones), so
    /// a writer that does not keep a handle open, as the CLI's `out` does not, calls
    /// this to keep `prune` from taking the channel for abandoned; the CLI's `read` calls it
    /// too, so that a value scripts only read is kept. A no-op for an anonymous
    /// channel. Sets the access time too (the only form of the call that write access alone
    /// allows, so that any process that may publish may also touch).
    ///
    /// # Errors
    ///
    /// [`Error::PermissionDenied`] where this process may not set the file's times (it needs
    /// write permission on the file, or to own it); [`Error::Io`] for any other refusal.
    pub fn touch(&self) -> Result<()> {
        let (Some(file), Some(path)) = (self.snap.liveness.file(), self.location.path()) else {
            return Ok(());
        };
        os::touch(file).map_err(|e| io_error(&self.location.to_string(), &path, "touching", e))
    }

    /// Makes the current contents durable: writes the mapping back to its file and waits for
    /// the storage device (`msync(MS_SYNC)`). For a channel in a file (a path), the value
    /// published last before this call then survives a crash of the machine or a power loss
    /// that comes before the next publish; without it, the kernel writes the pages back in its
    /// own time (usually within half a minute), and a crash of *the process* loses nothing
    /// either way. For a shared-memory channel it costs little and changes nothing: `/dev/shm`
    /// does not survive a reboot. Publishing never flushes by itself, which would cost a disk
    /// write per value.
    ///
    /// A value published after the last flush may reach the disk in part (pages are written
    /// back in any order). After such a crash, reads fail with [`Error::Corrupt`] when the
    /// frame of the value `latest` names did not reach the disk, until the next publish or a
    /// [`recover`](Self::recover); a
    /// frame that did, over a payload that did not, reads as whole unless the channel has
    /// checksums ([`Options::checksum`]). A file channel that must survive power loss wants
    /// both. For a file channel this also writes back its directory (the one holding the file,
    /// where the path is a link to it), so that a channel created or replaced since is found
    /// under its name after a crash. Where this user may not read that directory (mode `0711`,
    /// say), it cannot be opened to be written back, and the whole file system holding the file
    /// is written back instead (`syncfs` on Linux, which also reports another file's failed
    /// write-back there; elsewhere `sync`, which may return before the writes are done; this
    /// had skipped the directory, and failed `mmf out --sync` there after it had published
    /// before that). A
    /// [`read_only`](Options::read_only) handle writes back the file as it is, through its
    /// file handle.
    ///
    /// ```
    /// # let path = std::env::temp_dir().join(format!("flush-doc-{}.mmf", std::process::id()));
    /// use mmf::{Options, Tag};
    /// let ch = Options::new().capacity(64).create(&path)?;
    /// ch.publish_raw(Tag::TEXT, b"state to keep")?;
    /// ch.flush()?; // on disk now
    /// # mmf::Channel::remove(&path)?;
    /// # Ok::<(), mmf::channel::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the mapping, or a file channel's directory, could not be written back
    /// (`msync`, `fsync`, `syncfs`: a full or failing disk, say); [`Error::Truncated`] for a handle
    /// whose file was shrunk under it (what it wrote since went nowhere).
    pub fn flush(&self) -> Result<()> {
        if self.snap.region.tripped() {
            return Err(self.snap.truncated());
        }
        let path = self.location.path().unwrap_or_default();
        // A read-only handle's mapping is not a shared writable one, which `msync` skips (it
        // wrote nothing back, a review found): its file is written back through its handle
        // (`fsync` needs no write access).
        match (self.snap.region.writable(), self.snap.liveness.file()) {
            (false, Some(file)) => file.sync_data(),
            _ => self.snap.region.flush(),
        }
        .map_err(|e| Error::Io {
            op: "flushing",
            path: path.clone(),
            cause: e,
        })?;
        // The file's name too: a channel created (or replaced) since the directory was last
        // written back would otherwise be missing, or the old one, after a crash.
        // The directory the file is in: through a link, the target's (where `create_or_replace`
        // renames a replacement), not the link's (a review found the link's synced instead).
        if let Location::File(_) = self.location {
            let real = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            let failed = |op, e| Error::Io {
                op,
                path: path.clone(),
                cause: e,
            };
            match File::open(dir_of(&real)) {
                Ok(dir) => dir
                    .sync_all()
                    .map_err(|e| failed("flushing the directory of", e)),
                // A directory this process may write and search but not read (mode -wx) cannot
                // be opened for its `fsync`: the whole file system is written back instead
                // (the directory was skipped, and the promise of a durable name with it).
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    match self.snap.liveness.file() {
                        Some(file) => os::sync_file_system(file).map_err(|e| {
                            failed(
                                "writing back the file system (its directory may not be read) of",
                                e,
                            )
                        }),
                        None => Ok(()),
                    }
                }
                Err(e) => Err(failed("flushing the directory of", e)),
            }?;
        }
        Ok(())
    }

    /// When the value `latest` names is damaged (its frame does not match it, as a machine
    /// crash leaves a file channel that was not flushed: see [`flush`](Self::flush)), publishes
    /// the newest earlier value that is still whole again, as the next generation, so that
    /// readers have a value instead of [`Error::Corrupt`]. It looks for one in the other slots
    /// and, on a channel without checksums, in the header, which keeps the last two values of
    /// up to 120 bytes (a channel of small values keeps them there alone while no reader wants
    /// slots). Where a stray write damaged `latest` itself (its slot bits, or its generation
    /// moved back below the writers' count), the value it named, or a later one the writers
    /// published, may still be whole elsewhere: the newest whole one comes back. `Ok(None)`
    /// when the current value reads whole (nothing is published; `verify` may still report
    /// damage that this cannot repair, such as a descriptor that disagrees with a whole frame,
    /// until the next publish), or when another writer published meanwhile.
    ///
    /// Also damaged: a value whose frame a crash left half written (its stamp odd for good), which
    /// reads cannot tell from a writer busy with it and report as [`Error::Contended`] once their
    /// timeout passes; `recover` then looks again under the writer lock, where no writer is busy.
    /// And a small value whose frame is damaged, or left open, while its copy in the header is
    /// whole: reads take that copy and succeed, but [`verify`](Self::verify) or
    /// [`Info::damage`] report the frame; `recover` publishes the copy again, for a frame left
    /// open only once the writer lock confirms it ([`Recovered::from`] is then the current
    /// generation), after which `verify` and `info().damage` are clean.
    ///
    /// A value is whole when its frame is complete and in range, and its CRC matches where the
    /// channel has checksums; without them, a payload that a crash left half written back
    /// cannot be told from a whole one, so recover channels with checksums where that matters.
    /// Which value comes back is the newest whole one; it may be older than the last flushed
    /// one if a later publish reused that one's slot. [`Recovered::from`] says which.
    ///
    /// ```
    /// # let name = format!("recover-doc-{}", std::process::id());
    /// let ch = mmf::Channel::create(&name, 64)?;
    /// ch.publish_raw(mmf::Tag::TEXT, b"fine")?;
    /// assert!(ch.recover()?.is_none()); // nothing to recover
    /// # mmf::Channel::remove(&name)?;
    /// # Ok::<(), mmf::channel::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// In every case nothing is published:
    /// - [`Error::Corrupt`]: the current value is damaged and no earlier one is whole; only a
    ///   new publish helps then ([`Error::mended_by_publish`]);
    /// - [`Error::Contended`]: reads of the current value timed out
    ///   ([`Options::read_timeout`]), and it is not a frame a crash left open: writers kept
    ///   overtaking them;
    /// - [`Error::OutOfMemory`]: a value to bring back larger than this process can allocate;
    /// - [`Error::ReadOnly`], [`Error::Contended`], [`Error::Reentrant`], [`Error::Corrupt`],
    ///   [`Error::Truncated`]: those of its publish, as [`publish_raw`](Channel::publish_raw)
    ///   has them.
    pub fn recover(&self) -> Result<Option<Recovered>> {
        self.intact()?;
        // Damaged: what a read refuses as corrupt (a frame that does not match `latest`, a
        // checksum that does not match its frame, ...) under a `latest` that stayed put.
        let word = self.snap.region.word(H_LATEST);
        let latest = crate::sync::load_acquire(word);
        // A read that timed out with `latest` where it was: perhaps a frame left open for good.
        let mut contended = None;
        // Whether the damage is a frame left open, which only the writer lock can tell from a
        // write under way (a contended read, or a look that never settled).
        let mut left_open = false;
        let candidate = match self.read_raw() {
            Err(Error::Corrupt { .. }) if crate::sync::load_acquire(word) == latest => {
                self.snap.newest_whole_before(latest)?
            }
            Err(e @ Error::Contended { .. }) if crate::sync::load_acquire(word) == latest => {
                contended = Some(e);
                left_open = true;
                self.snap.newest_whole_before(latest)?
            }
            // Reads take a small value's inline copy before its slot, so a value whose frame
            // is damaged or was left open by a crash (what `verify` and `info().damage` report)
            // may still read as whole: publishing that copy again leaves nothing to report.
            // Only when the frame is what is wrong: a frame that is whole while the descriptor
            // disagrees with it may be the right one, and the inline copy follows the
            // descriptor.
            Ok(_) => {
                match self.snap.settled_look(64) {
                    Look::Damaged {
                        latest: l,
                        frame: true,
                        ..
                    } if l == latest => {}
                    Look::Unsettled if crate::sync::load_acquire(word) == latest => {
                        left_open = true
                    }
                    _ => return Ok(None),
                }
                let gen = split_latest(latest).0;
                let b = (gen % 2) as usize;
                match self.snap.whole_inline(b, gen..=gen, &mut Vec::new()) {
                    Some(own) => Some(own),
                    // No copy of its own: a value this handle read by `latest` and its
                    // descriptor alone (the fast path of a value in a slot, which does not
                    // look at the frame: docs/FORMAT.md §14), while the frame `latest` names
                    // holds another (a stray write of `latest`'s slot bits). Other handles'
                    // reads, `info` and `verify` call it damaged: the newest whole value comes
                    // back, as for a read that failed (a hostile-mapping review found this
                    // `recover` doing nothing).
                    None => self.snap.newest_whole_before(latest)?,
                }
            }
            Err(Error::Corrupt { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        // A whole value tagged 0 ("no value yet", which no mmf writer publishes; an older or
        // foreign one's) cannot be published again: as good as none.
        let candidate = candidate.filter(|&(_, tag, _)| tag != Tag::EMPTY);
        let Some((from, tag, bytes)) = candidate else {
            if crate::sync::load_acquire(word) != latest {
                return Ok(None);
            }
            if let Some(e) = contended.filter(|_| !self.snap.frame_left_open(latest)) {
                return Err(e);
            }
            return Err(Error::Corrupt {
                name: self.snap.name.clone(),
                what: format!(
                    "its latest value is damaged and {}",
                    crate::error::NOTHING_WHOLE
                ),
                value_only: true,
            });
        };
        // Whatever its tag: one from 5 to 255 is a later mmf's codec's, to keep as it is.
        let published = self.publish_fill(tag, |w| {
            // Under the writer lock: only while `latest` still names the damaged value.
            if crate::sync::load_acquire(word) != latest {
                return Err(io::Error::other(GaveUp::MovedOn));
            }
            // With the lock held no writer is busy with a frame (and the lock's Acquire made
            // every earlier holder's stores visible): an odd stamp on the slot `latest` names
            // is one that no write will ever close. Anything else was a race after all. (This
            // runs once this publish has begun its own slot, never the one `latest` names; a
            // publish given up here leaves that slot "being written", as any failed fill does.)
            if left_open && !self.snap.frame_left_open(latest) {
                return Err(io::Error::other(GaveUp::NotDamaged));
            }
            w.put(&bytes)
        });
        let gave_up = match &published {
            Err(Error::Encode { cause, .. }) => cause
                .get_ref()
                .and_then(|e| e.downcast_ref::<GaveUp>())
                .copied(),
            _ => None,
        };
        match (published, gave_up) {
            (_, Some(GaveUp::MovedOn)) => Ok(None),
            // A contended read stays an error; a value that reads whole needed nothing.
            (_, Some(GaveUp::NotDamaged)) => contended.map_or(Ok(None), Err),
            (Ok(generation), None) => Ok(Some(Recovered {
                from,
                meta: Meta {
                    generation,
                    tag,
                    len: bytes.len(),
                    retries: 0,
                },
            })),
            (Err(e), None) => Err(e),
        }
    }

    /// Whether this handle was opened read-only.
    pub fn is_read_only(&self) -> bool {
        !self.snap.region.writable()
    }

    /// Whether this handle holds a reader-pin entry (reads with guaranteed progress, waits that
    /// sleep on a futex). A handle claims one at its first read or wait, if one is free;
    /// handles that only publish never do.
    pub fn is_pinned(&self) -> bool {
        matches!(self.pin.claimed(), Some(Some(_)))
    }

    /// Checks that the channel is still what it was when it was mapped: the backing file has
    /// the same size (another process may have truncated it, and touching a mapped page past the
    /// end of a file raises `SIGBUS`, which ends the process unless it installed
    /// [`truncation::install`](crate::truncation::install)), and the header still holds the same
    /// magic, version and geometry, and that the frame of the value `latest` names matches it
    /// (a reader copying by the value's descriptor does not look: FORMAT.md §10.0), nor is
    /// marked as being written (which no writer leaves the value `latest` names). Cheap (one
    /// `fstat` and a few loads): call it now and then in long-running services, or after an
    /// error. It also catches what the `SIGBUS` handler
    /// cannot: a file cut inside its last page, whose remainder reads as zeros without a fault.
    ///
    /// ```
    /// # let path = std::env::temp_dir().join(format!("verify-doc-{}.mmf", std::process::id()));
    /// let ch = mmf::Options::new().create(&mmf::Location::file(&path))?;
    /// ch.verify()?;
    /// std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(100).unwrap();
    /// assert!(matches!(ch.verify(), Err(mmf::channel::Error::Corrupt { .. })));
    /// # std::fs::remove_file(&path).unwrap();
    /// # Ok::<(), mmf::channel::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// - [`Error::Corrupt`]: the file's size, or the header's magic, version or geometry, is not
    ///   what it was (only removing and creating the channel again mends that); or the frame of
    ///   the value `latest` names does not match it ([`Error::mended_by_publish`]: the next
    ///   publish, or [`recover`](Self::recover), mends that);
    /// - [`Error::Truncated`]: the `SIGBUS` handler caught an access to this handle's mapping;
    /// - [`Error::Io`]: the file could not be inspected (`fstat`).
    pub fn verify(&self) -> Result<()> {
        self.verify_mapping()?;
        let before = crate::sync::load_acquire(self.snap.region.word(H_LATEST));
        let what = match self.snap.settled_look(1024) {
            Look::Damaged { what, .. } => format!("{what}: {}", crate::snapshot::VALUE_DAMAGED),
            // A frame left open, which `info` reports too (a crash audit found `verify`
            // passing it).
            Look::Unsettled => match self.snap.left_open(before) {
                Some(what) => what,
                None => return Ok(()),
            },
            Look::Value(..) => return Ok(()),
        };
        Err(Error::Corrupt {
            name: self.snap.name.clone(),
            what,
            value_only: true,
        })
    }

    /// [`verify`](Self::verify) of what no publish can mend: the file's size and the header's
    /// magic, version and geometry, without the current value's frame (which the next publish
    /// replaces, and which a wait for that publish must not give up on).
    pub(crate) fn verify_mapping(&self) -> Result<()> {
        self.intact()?;
        let s = &self.snap;
        let corrupt = |what: String| {
            Err(Error::Corrupt {
                name: s.name.clone(),
                what,
                value_only: false,
            })
        };
        if let Some(f) = self.snap.liveness.file() {
            let len = f
                .metadata()
                .map_err(|e| Error::Io {
                    op: "inspecting",
                    path: self.location.path().unwrap_or_default(),
                    cause: e,
                })?
                .len();
            if len != s.layout.total_bytes as u64 {
                return corrupt(format!(
                    "its file is now {len} bytes, not {}: someone truncated or resized it while it was mapped; stop using this handle",
                    s.layout.total_bytes
                ));
            }
        }
        let h = Snapshot::read_fields(&s.region);
        // Truncated between the `fstat` and these loads: zeros, not an overwritten header.
        self.intact()?;
        if h.magic != MAGIC || h.version != VERSION || h.kind != KIND_SNAPSHOT {
            return corrupt(format!(
                "its header was overwritten (magic {:#x}, version {}, kind {})",
                h.magic, h.version, h.kind
            ));
        }
        match Layout::from_header(&h, None) {
            Ok(l) if l == s.layout => Ok(()),
            Ok(_) => corrupt("its header now describes another geometry".into()),
            Err(what) => corrupt(what),
        }
    }

    /// Everything the header says about the channel and its current value. It reads the header
    /// as it is and checks nothing: on a handle whose channel was truncated under it the
    /// counters read as zeros, and [`verify`](Self::verify) tells.
    pub fn info(&self) -> Info {
        let s = &self.snap;
        let created_ns = s.header(H_CREATED_NS);
        let created = UNIX_EPOCH + Duration::from_nanos(created_ns);
        let creator = s.header(H_CREATOR);
        let last_writer = s.header(H_LAST_WRITER);
        let ((generation, tag, len), damage) = match s.peek() {
            Ok(value) => (value, None),
            Err(what) => ((s.generation(), Tag::EMPTY, 0), Some(what)),
        };
        Info {
            location: self.location.clone(),
            capacity: s.layout.capacity,
            readers: s.layout.readers,
            pins_in_use: (0..s.layout.readers)
                .filter(|&e| {
                    let owner = s.region.word(s.layout.pin(e, PIN_OWNER)).load(Relaxed);
                    owner != 0
                        && (owner == self.token || s.liveness.judge(owner) != OwnerState::Dead)
                })
                .count(),
            slots: s.layout.slots,
            size_bytes: s.layout.total_bytes as u64,
            generation,
            tag,
            len,
            damage,
            incarnation: s.header(H_INCARNATION),
            created,
            creator_pid: os::process_word_pid(creator),
            creator_state: os::judge_process_word(creator),
            last_writer_pid: Some(os::process_word_pid(last_writer)).filter(|&pid| pid != 0),
            last_writer_state: (os::process_word_pid(last_writer) != 0)
                .then(|| os::judge_process_word(last_writer)),
            checksum: s.checksum,
            writer_recoveries: s.header(H_RECOVERIES),
            waiters: s.header(H_WAITERS),
            file: s.liveness.file().and_then(|f| f.metadata().ok()).map(|m| {
                use std::os::unix::fs::MetadataExt;
                FileOwner {
                    uid: m.uid(),
                    gid: m.gid(),
                    mode: m.mode() & 0o7777,
                    links: m.nlink(),
                    yours: m.uid() == os::euid(),
                }
            }),
            exclusive_writer: match s.header(H_WRITER_CLAIM) {
                0 => None,
                owner => Some(self.owner(owner)),
            },
            writer_lock: match s.header(H_LOCK) {
                0 => None,
                owner => Some(self.owner(owner)),
            },
        }
    }

    /// The holder of the writer lock or the writer role whose token is `owner`, as
    /// [`info`](Self::info) reports it. This handle's own token is alive (another of its threads
    /// is publishing), which its own lock test cannot see. A kernel-held token whose lock is
    /// held, but not by the process of its pid here (`/proc/PID/fdinfo`), cannot be told alive:
    /// its pid died after a fork without exec and a child holds the lock through the copied
    /// descriptor, or it is another PID namespace's pid (a review found `info` calling such a
    /// dead pid "alive, publishing", while a publish's message told the truth). Reading the
    /// holder's descriptors takes milliseconds for thousands of them, which `info` can spend.
    fn owner(&self, owner: u64) -> LockOwner {
        let pid = os::token_pid(owner);
        let s = &self.snap;
        let state = if owner == self.token {
            OwnerState::Alive
        } else {
            match (s.liveness.judge(owner), s.liveness.file()) {
                (OwnerState::Alive, Some(file))
                    if owner & os::KERNEL_HELD != 0
                        && os::pid_holds_lock(pid, file, os::lock_offset(owner)) == Some(false) =>
                {
                    OwnerState::Unknown(
                        "its liveness lock is held, but not by a process of its pid here: by a \
                         process it forked without exec (it may have exited), or it runs in \
                         another PID namespace",
                    )
                }
                (state, _) => state,
            }
        };
        LockOwner { pid, state }
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        // Best effort (see `Options::remove_on_drop`): a drop cannot report.
        let _ = self.remove_own();
        // Before the mapping goes: the notifier thread must not touch it afterwards.
        #[cfg(feature = "async")]
        crate::notify::forget_channel(std::ptr::from_ref(self.latest_word()) as usize);
        // A forked child's copy of a handle whose entry (or writer role) its parent claimed
        // (same token): the parent still uses it.
        let pid = std::process::id();
        let pinned = self
            .pin
            .claimed()
            .flatten()
            .filter(|_| self.pin_pid.load(Relaxed) == pid);
        let claimed = self.claim_pid.load(Relaxed) == pid;
        // A file truncated under the mapping (which `verify` reports) would make the stores
        // that give the entry and the claim back raise SIGBUS: drop such a handle without
        // touching it.
        let intact = || {
            self.snap.liveness.file().is_none_or(|f| {
                f.metadata()
                    .is_ok_and(|m| m.len() >= self.snap.layout.total_bytes as u64)
            })
        };
        if (pinned.is_some() || claimed) && intact() {
            if let Some(e) = pinned {
                self.snap.release_pin(e, self.token);
            }
            if claimed {
                self.snap.release_claim(self.token);
            }
        }
    }
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("location", &self.location)
            .field("capacity", &self.capacity())
            .field("generation", &self.generation())
            .field("read_only", &self.is_read_only())
            .field("pinned", &self.is_pinned())
            .finish()
    }
}

/// The error of a publish tagged `tag`, which [`Tag::is_publishable`] refuses.
#[cold]
fn tag_refused(tag: Tag) -> Error {
    debug_assert!(!tag.is_publishable());
    if tag == Tag::EMPTY {
        Error::EmptyTag
    } else {
        Error::ReservedTag { tag: tag.0 }
    }
}

/// What [`Channel::recover`] published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Recovered {
    /// The generation the value had when it was first published.
    pub from: u64,
    /// The value as published again: its new generation, tag and length.
    pub meta: Meta,
}

/// Why [`Channel::recover`]'s publish gave up under the writer lock (carried out of the fill
/// as its error's cause, and told apart by type, not by message).
#[derive(Debug, Clone, Copy, thiserror::Error)]
enum GaveUp {
    /// Another writer published first.
    #[error("another writer published meanwhile")]
    MovedOn,
    /// After a read that timed out: no damage found under the lock.
    #[error("the value is not damaged")]
    NotDamaged,
}

/// The holder of a channel's writer lock, as [`Channel::info`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct LockOwner {
    /// Its pid, as its own PID namespace numbers it.
    pub pid: u32,
    /// Whether it is alive, as this handle can tell (docs/FORMAT.md §5).
    pub state: OwnerState,
}

/// Who owns a channel's file and who may open it ([`Info::file`]), as the handle's own file
/// reports it (`fstat`): not what the name leads to now, if it was replaced since.
///
/// In a directory anyone may write (`/dev/shm`, `/tmp`), any user can make a channel under a
/// name before the service that means to make it does ("squatting"): that service's
/// [`open_or_create`](Options::open_or_create), or a reader's open, then gets a channel that
/// user owns, can write into and can truncate. A service that must not trust such a channel
/// checks [`yours`](FileOwner::yours) (or `uid`) after the open; `mmf info` shows the owner
/// and `mmf new --exist-ok` says when the channel it kept is another user's.
///
/// ```
/// use mmf::Channel;
/// let name = format!("file-owner-doc-{}", std::process::id());
/// let ch = Channel::create(&name, 64)?;
/// let file = ch.info().file.expect("a channel with a file");
/// assert!(file.yours);
/// assert_eq!((file.mode & 0o077, file.links), (0, 1)); // 0600 less the umask, one name
/// # Channel::remove(&name)?;
/// # Ok::<(), mmf::channel::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct FileOwner {
    /// The owner's user ID.
    pub uid: u32,
    /// The file's group ID.
    pub gid: u32,
    /// Its permission bits (`0o600`, `0o644`, ...).
    pub mode: u32,
    /// How many names (hard links) lead to it: more than one under a shared-memory name is a
    /// link someone made to another file.
    pub links: u64,
    /// Whether this process's effective user owns it.
    pub yours: bool,
}

/// What [`Channel::info`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Info {
    /// Where the channel lives.
    pub location: Location,
    /// Largest value in bytes.
    pub capacity: usize,
    /// Reader-pin entries.
    pub readers: usize,
    /// Reader-pin entries held by open handles (of running processes, or of processes whose
    /// liveness cannot be told here); an entry left by a process that died is free to the next
    /// handle that needs one. While all [`readers`](Info::readers) are held, a further handle
    /// reads by validation alone and its waits poll ([`Channel::is_pinned`]).
    pub pins_in_use: usize,
    /// Slots (`readers + 2`).
    pub slots: usize,
    /// Bytes of memory (or file) the channel occupies.
    pub size_bytes: u64,
    /// Generation of the current value (0: nothing published yet).
    pub generation: u64,
    /// Codec tag of the current value ([`Tag::EMPTY`] when `damage` says why it is unknown).
    pub tag: Tag,
    /// Length of the current value (0 when `damage` says why it is unknown).
    pub len: usize,
    /// Why the current value's tag and length could not be told, if they could not: what
    /// `latest` names does not match it (the value was damaged, as by a machine crash before a
    /// file channel was flushed, and reads fail with [`Error::Corrupt`] until the next
    /// publish), or writers published faster than `info` could look.
    pub damage: Option<String>,
    /// Random id of this incarnation of the name.
    pub incarnation: u64,
    /// When the channel was created.
    pub created: SystemTime,
    /// Pid of the creating process, in its own PID namespace.
    pub creator_pid: u32,
    /// Whether the creating process still runs: [`Alive`](OwnerState::Alive) if a process of
    /// that pid runs in this PID namespace and started when the creator did (the header keeps
    /// its start in clock ticks since boot, docs/FORMAT.md §4), [`Dead`](OwnerState::Dead) if
    /// none does (the pid came back to another process, or the creator ran before the machine
    /// last started), [`Unknown`](OwnerState::Unknown) for a creator in another PID namespace
    /// (another container), whose pid means nothing here. Where start times cannot be read
    /// (no `/proc` of this namespace), a pid that came back reads as alive. Nothing that
    /// removes or takes over anything relies on it alone (`prune` also asks whether any
    /// process has the file open).
    pub creator_state: OwnerState,
    /// Pid of the process that published last, if any.
    pub last_writer_pid: Option<u32>,
    /// Whether that process still runs, told as for the creator; `None` if nobody has
    /// published.
    pub last_writer_state: Option<OwnerState>,
    /// Whether values carry a CRC-32.
    pub checksum: bool,
    /// How many times a writer took the lock over from a writer that had died.
    pub writer_recoveries: u64,
    /// Who holds the writer lock right now: `None` when it is free (the usual case: a writer
    /// holds it only while it publishes). A holder that stays, and is not alive, is what makes
    /// publishes fail with [`Error::Contended`].
    pub writer_lock: Option<LockOwner>,
    /// The handle holding the channel's writer role ([`Options::exclusive_writer`]), if one
    /// claimed it: while it is alive, only it publishes. A claim whose holder is dead is
    /// cleared by the next publish or claim.
    pub exclusive_writer: Option<LockOwner>,
    /// Waits for a new value under way right now, as counted in the header: each thread blocked
    /// in `wait_for_change` (or a `Follower`'s wait) and each pending `changed()` future, of
    /// any process; a peer may have written anything there (writers mend an excess).
    pub waiters: u64,
    /// The file's owner, group, mode and number of names ([`FileOwner`]); `None` for an
    /// anonymous channel, one opened from an image, or where `fstat` failed.
    pub file: Option<FileOwner>,
}

/// Whether [`Options::open_or_create_with_origin`] created the channel or found it there.
///
/// Non-exhaustive: a later release may tell more ways a channel came to be there (say, one
/// that replaced what a killed creator left), so a `match` needs a `_` arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Origin {
    /// This call created it, with the options given.
    Created,
    /// It was there already (made by anyone, with its own capacity and reader-pin entries),
    /// and this call opened it.
    Existing,
}

/// One entry of [`list`]: a channel's name and what opening it told.
///
/// Non-exhaustive: later versions may tell more of each channel.
#[derive(Debug)]
#[non_exhaustive]
pub struct Listing {
    /// Name of the channel (without the file prefix). For a file whose name is not UTF-8, that
    /// name made readable with U+FFFD, which no channel's name contains, so it never leads to
    /// another channel; its [`info`](Listing::info) is then [`Error::InvalidName`].
    pub name: String,
    /// Its header, or why it could not be read (e.g. corrupt, another user's).
    pub info: Result<Info>,
    /// Whether any process holds a handle to it ([`host::in_use`](crate::host::in_use)):
    /// `None` where that could not be found out (a file this user cannot open).
    pub in_use: Option<bool>,
}

impl Listing {
    /// Whether the channel looks abandoned: its header was read, no process holds a handle to
    /// it, and neither its creator nor its last writer is known to be running (one of another
    /// PID namespace, [`OwnerState::Unknown`], counts as gone: nobody has the channel open,
    /// and its pid cannot be checked from here). A channel used only from the
    /// CLI (whose processes never outlive a command) is stale by this definition between
    /// commands, which is why `mmf prune` also asks how long ago it was last touched
    /// ([`host::last_touched`](crate::host::last_touched)).
    pub fn is_stale(&self) -> bool {
        let Ok(info) = &self.info else { return false };
        // A creator or writer of another PID namespace, whose liveness cannot be told, does
        // not keep a channel nobody has open: age (`mmf prune --older-than`) decides.
        self.in_use == Some(false)
            && info.creator_state != OwnerState::Alive
            && info.last_writer_state != Some(OwnerState::Alive)
    }
}

/// Blocks until any of several channels has a value past the generation given with it, and
/// returns the index (in `waits`) and generation of the first such channel; `None` if `until`
/// is over first: a timeout (a [`Duration`]), a deadline (an [`Instant`]), or a
/// [`Stop`](crate::Stop) that was stopped ([`Until`]).
///
/// Each `(channel, since)` is what [`Channel::wait_for_change`] takes, and each channel is
/// waited on as it would be there, all at once: on Linux (5.16 or later) one `futex_waitv` sleep
/// on every channel's header and every `Stop` of `until`, woken by a publish in any process to
/// any of them, so a service with a configuration channel and a command channel needs no thread
/// for each. A channel that would poll there (a read-only handle, one without a reader-pin
/// entry) is looked at between sleeps, every millisecond; before Linux 5.16, or beyond 128
/// channels and stops together, the sleep is cut into slices of a millisecond. The wait spins
/// first for the longest [`Options::wait_spin`] among the channels.
///
/// The index is the first in the order given whose generation moved, not the first that
/// changed in time: others may have moved too. A loop that handles one channel a wake-up and
/// always passes the same order can starve the last ones behind a first one that changes
/// without pause; look at every channel after a wake-up (as the example does), or rotate the
/// order. With no channel at all it waits for `until` to be over, and returns `None`.
///
/// ```
/// use std::time::Duration;
/// use mmf::{Channel, Tag};
/// let config = Channel::anonymous(64)?;
/// let commands = Channel::anonymous(64)?;
/// let mut seen = [config.generation(), commands.generation()];
/// std::thread::scope(|s| {
///     s.spawn(|| commands.publish_raw(Tag::TEXT, b"reload"));
///     let waits = [(&config, seen[0]), (&commands, seen[1])];
///     let (i, generation) = mmf::wait_any(&waits, Duration::from_secs(10)).unwrap();
///     assert_eq!((i, generation), (1, 1));
///     // Every channel that moved, not only the one returned.
///     for (i, (ch, since)) in waits.iter().enumerate() {
///         if ch.generation() > *since {
///             seen[i] = ch.generation(); // read it here: ch.read_into(...)
///         }
///     }
/// });
/// assert_eq!(seen, [0, 1]);
/// assert_eq!(mmf::wait_any(&[(&config, 0), (&commands, 1)], Duration::from_millis(10)), None);
/// # Ok::<(), mmf::channel::Error>(())
/// ```
#[must_use = "`None` means the wait timed out or was stopped, with no new value"]
pub fn wait_any(waits: &[(&Channel, u64)], until: impl Into<Until>) -> Option<(usize, u64)> {
    let until = until.into();
    if let [(ch, since)] = waits {
        return ch.wait_for_change(*since, until).map(|g| (0, g));
    }
    let items: Vec<crate::wait::AnyWait<'_>> = waits
        .iter()
        .map(|&(ch, since)| crate::wait::AnyWait {
            snap: &ch.snap,
            pin: ch.pin_entry(),
            since,
        })
        .collect();
    let spin = waits
        .iter()
        .map(|(ch, _)| ch.wait_spin)
        .max()
        .unwrap_or_default();
    if items.is_empty() {
        until.sleep(Duration::MAX); // until it is over
        return None;
    }
    crate::wait::wait_any(&items, &until, spin)
}

/// Lists the shared-memory channels on this host (files `mmf.*` of the shared-memory directory),
/// sorted by name. Each is opened read-only to read its header, and looked at for handles
/// held by any process ([`Listing::in_use`]).
///
/// Each file is mapped while it is looked at, files of other users too (anyone may put a file
/// in `/dev/shm`): one that its owner truncates meanwhile makes the read raise `SIGBUS`, which
/// ends the process unless it installed [`truncation::install`](crate::truncation::install)
/// (the `mmf` command does). A service that lists channels on a host shared with users it does
/// not trust installs it, as it does to open their channels.
///
/// # Errors
///
/// [`Error::Unsupported`] on a platform without named channels; [`Error::Io`] if the
/// shared-memory directory cannot be read (missing: see `MMF_SHM_DIR`). A channel that cannot
/// be opened is listed, with the error in its [`info`](Listing::info).
///
/// ```
/// # let name = format!("list-doc-{}", std::process::id());
/// # let _ch = mmf::Channel::create(&name, 64)?;
/// for listing in mmf::list()? {
///     // Each shared-memory channel by name, with what its header says (or why it could not be
///     // opened).
///     if let Ok(info) = &listing.info {
///         println!("{}: {} bytes, generation {}", listing.name, info.capacity, info.generation);
///     }
/// }
/// assert!(mmf::list()?.iter().any(|l| l.name == name));
/// # mmf::Channel::remove(&name)?;
/// # Ok::<(), mmf::channel::Error>(())
/// ```
pub fn list() -> Result<Vec<Listing>> {
    check_platform()?;
    let mut out: Vec<Listing> = shm_files(crate::name::SHM_PREFIX)?
        .into_iter()
        .map(|(name, path)| {
            // A name that is not UTF-8 is no channel's, but its file takes memory all the
            // same: listed, under its name made readable, with why it cannot be opened.
            if !name_is_utf8(&path) {
                return Listing {
                    info: Err(Error::InvalidName {
                        name: name.clone(),
                        reason: "it is not UTF-8 (shown with U+FFFD in place of its bad bytes; \
                                 no channel has such a name: delete the file with rm)",
                    }),
                    name,
                    in_use: None,
                };
            }
            let info = listed_info(&name);
            let in_use = Location::shm(&name)
                .ok()
                .and_then(|loc| crate::host::in_use(&loc).ok());
            Listing { name, info, in_use }
        })
        .collect();
    // Files another process holds under an exclusive `flock`, tried once above: waited for
    // all together, for one open's grace in all. Each waited its own grace before, and a peer
    // holding forty such files in `/dev/shm` held `list`, `doctor` and `prune` two seconds (a
    // hostile-mapping review; a thousand, fifty). mmf's own such locks last an instant.
    let held = |l: &Listing| l.info.as_ref().is_err_and(Error::is_locked_out);
    let since = Instant::now();
    while out.iter().any(held) && since.elapsed() < LOCK_GRACE {
        std::thread::sleep(Duration::from_millis(1));
        for l in out.iter_mut().filter(|l| held(l)) {
            l.info = listed_info(&l.name);
        }
    }
    // Said with the time waited for them, not the first look's none.
    for l in out.iter_mut().filter(|l| held(l)) {
        if let Err(Error::Io { cause, .. }) = &mut l.info {
            *cause = held_too_long(since.elapsed());
        }
    }
    // Removed between the directory's read and the open: no longer there to list (a review
    // saw such names listed as unreadable, "no channel named ...").
    out.retain(|l| !matches!(l.info, Err(Error::NotFound { .. })));
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// [`list`]'s look at the shared-memory channel `name`: opened read-only, not waited for if
/// still being created, nor if another process holds an exclusive `flock` on it.
fn listed_info(name: &str) -> Result<Info> {
    Location::shm(name).and_then(|loc| {
        let mut o = Options::new();
        o.read_only(true).init_timeout(Duration::ZERO);
        o.lock_grace = Duration::ZERO;
        o.open(&loc).map(|ch| {
            let info = ch.info();
            // This handle never leaves the listing, so its shared `flock` is given back by
            // hand, as `Exclusive` gives mmf's own exclusive ones back: left to the close, it
            // lived on in a child this process forked meanwhile and made the channel look in
            // use, to the next look and to this very listing's. (A handle a program holds
            // keeps its lock to the close: a forked copy of it may go on using the channel.)
            if let Some(file) = ch.snap.liveness.file() {
                let _ = file.unlock();
            }
            info
        })
    })
}

/// The entries of the shared-memory directory whose names start with `prefix`: the rest of each
/// name (where it is not UTF-8, made so with U+FFFD: [`name_is_utf8`] tells), and the path.
pub(crate) fn shm_files(prefix: &str) -> Result<Vec<(String, PathBuf)>> {
    dir_files(&os::shm_dir(), prefix).map_err(|e| match e {
        Error::Io { op, path, cause } if cause.kind() == io::ErrorKind::NotFound => Error::Io {
            op,
            path,
            cause: missing_shm_dir(cause),
        },
        Error::Io { op, path, cause } if cause.raw_os_error() == Some(libc::ENOTDIR) => Error::Io {
            op,
            cause: not_a_directory(&path, cause),
            path,
        },
        e => e,
    })
}

/// Whether the file name of `path`, one of [`shm_files`]'s, is UTF-8 (and its name there the
/// name itself, not one made readable).
pub(crate) fn name_is_utf8(path: &Path) -> bool {
    path.file_name().is_some_and(|name| name.to_str().is_some())
}

/// The entries of `dir` whose names start with `prefix`: the rest of each name (where it is not
/// UTF-8, made so with U+FFFD: [`name_is_utf8`] tells), and its path.
pub(crate) fn dir_files(dir: &Path, prefix: &str) -> Result<Vec<(String, PathBuf)>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::Io {
        op: "listing",
        path: dir.to_owned(),
        cause: e,
    })?;
    Ok(entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let rest = name.as_encoded_bytes().strip_prefix(prefix.as_bytes())?;
            Some((String::from_utf8_lossy(rest).into_owned(), entry.path()))
        })
        .collect())
}

/// [`host::free_orphans`](crate::host::free_orphans): the channel at `location` mapped under
/// an exclusive `flock`, and what handles that are gone left held in it freed; `Ok(None)` if a
/// process holds a handle to it (the lock is not to be had).
pub(crate) fn free_orphans(location: &Location) -> Result<Option<crate::host::Orphans>> {
    let Some(path) = location.path() else {
        return Ok(None);
    };
    let name = &location.to_string();
    // A rename over the name between the open and the lock (`new --force`) leaves the name to
    // another file: looked at again, as `open` does.
    for _ in 0..64 {
        let (file, meta) = open_channel_file(location, &path, name, true)?;
        let held = match Exclusive::try_take(&file) {
            Ok(Some(held)) => held,
            Ok(None) => return Ok(None),
            Err(e) => return Err(io_error(name, &path, "locking", e)),
        };
        if !still_named(&meta, location, &path) {
            continue;
        }
        let mut snap = map_checked(&file, meta.len(), name, &path, true)?;
        // Owners are judged through this descriptor, which holds no byte locks, so it sees
        // every other's. It moves there, and the guard of its exclusive lock with it: the
        // same lock, given back when `_held` goes, after the freeing (and on a panic in it).
        std::mem::forget(held);
        snap.liveness = os::Liveness::of(Some(file));
        let _held = snap.liveness.file().map(Exclusive);
        return Ok(Some(snap.free_orphans()));
    }
    Err(replaced_too_often(path))
}

/// The file under a channel's name, opened (read-write if `write`) as an opener opens it: not
/// a FIFO or device, never through a link planted under a shared-memory name, a regular file;
/// and its metadata.
fn open_channel_file(
    location: &Location,
    path: &Path,
    name: &str,
    write: bool,
) -> Result<(File, std::fs::Metadata)> {
    not_special(location, path, name)?;
    let file = open_existing(location, path, write).map_err(|e| match e.kind() {
        io::ErrorKind::IsADirectory => directory(name),
        io::ErrorKind::NotFound => Error::not_found(location),
        _ => io_error(name, path, "opening", e),
    })?;
    let meta = file
        .metadata()
        .map_err(|e| io_error(name, path, "inspecting", e))?;
    regular_file(&meta, name)?;
    Ok((file, meta))
}

/// The error of an open that found the file under the name replaced each time it had locked
/// it, 64 times (a peer renaming files over the name in a loop).
fn replaced_too_often(path: PathBuf) -> Error {
    Error::Io {
        op: "opening",
        path,
        cause: io::Error::other(
            "the file under this name was replaced 64 times while it was being opened",
        ),
    }
}

/// Maps the channel file `file` of `len` bytes (read-write if `write`) and checks its header
/// ([`validate`]), telling a file too small to be a channel by its first bytes: still being
/// created, or not a channel. For [`Options::open`] and [`free_orphans`], once they hold their
/// lock on it.
fn map_checked(file: &File, len: u64, name: &str, path: &Path, write: bool) -> Result<Snapshot> {
    match map_and_validate(file, len, name, path, write) {
        // What does not fit the size read before: the file may have grown meanwhile, as its
        // creator allocates it (on tmpfs `posix_fallocate` grows a file in steps, and the
        // header and magic follow): our magic in a file too small for a channel, or a header
        // that states more than was mapped. A creator that is done leaves the size the header
        // states, so an open that then reads it again maps the whole channel (an operator's
        // review found `read --wait` racing a 32 MiB `new` calling the channel truncated in 6
        // runs of 20). A size that stays what it was is the damage it says.
        Err(Error::Corrupt { .. }) if file.metadata().is_ok_and(|m| m.len() != len) => {
            Err(Error::NotInitialized {
                name: name.to_owned(),
            })
        }
        other => other,
    }
}

/// [`map_checked`] on the size `len` as read, whatever the file's size is by now.
fn map_and_validate(
    file: &File,
    len: u64,
    name: &str,
    path: &Path,
    write: bool,
) -> Result<Snapshot> {
    let min = Layout::new(1, 0).expect("minimal layout").header_bytes as u64;
    if len < min || !len.is_multiple_of(8) {
        // Too small to map as a channel: tell "still being created" from "not a channel".
        let mut head = Vec::with_capacity(HEAD_BYTES);
        file.take(HEAD_BYTES as u64)
            .read_to_end(&mut head)
            .map_err(|e| io_error(name, path, "reading", e))?;
        return Err(small_image_error(&head, len, name));
    }
    let map_len = usize::try_from(len).map_err(|_| Error::Corrupt {
        name: name.to_owned(),
        what: format!("file of {len} bytes cannot be mapped"),
        value_only: false,
    })?;
    let mut mo = memmap2::MmapOptions::new();
    mo.len(map_len);
    let map = if write {
        mo.map_raw(file)
    } else {
        mo.map_raw_read_only(file)
    }
    .map_err(|e| io_error(name, path, "mapping", e))?;
    validate(Region::from_map(map, write), len, name)
}

/// Checks a mapped header (magic, version, kind, geometry against the mapping's `len`) and
/// returns the channel it describes.
fn validate(region: Region, len: u64, name: &str) -> Result<Snapshot> {
    let h = Snapshot::read_fields(&region);
    let name = name.to_owned();
    if h.magic == 0 {
        return Err(Error::NotInitialized { name });
    }
    if h.magic != MAGIC {
        return Err(Error::WrongMagic {
            name,
            found: h.magic,
            file_len: len,
        });
    }
    if h.version != VERSION {
        return Err(Error::UnsupportedVersion {
            name,
            found: h.version,
            supported: VERSION,
        });
    }
    if h.kind != KIND_SNAPSHOT {
        return Err(Error::UnsupportedKind {
            name,
            found: h.kind,
            supported: KIND_SNAPSHOT,
        });
    }
    let layout = match Layout::from_header(&h, Some(len)) {
        Ok(l) => l,
        Err(what) => {
            return Err(Error::Corrupt {
                name,
                what,
                value_only: false,
            })
        }
    };
    let checksum = region.word(H_FLAGS).load(Ordering::Relaxed) & FLAG_CHECKSUM != 0;
    let mut snap = Snapshot {
        region,
        layout,
        checksum,
        name,
        header_only: true,
        liveness: os::Liveness::default(),
        damaged: None,
        cold: Default::default(),
        process_rest: 0,
    };
    if snap.region.writable() {
        snap.process_rest = os::process_word_rest();
    }
    snap.damaged = snap.damaged_latest();
    Ok(snap)
}

/// How many of a file's first bytes [`small_image_error`] looks at: the header's words up to
/// `kind`, which say the size the file should have.
const HEAD_BYTES: usize = (H_KIND + 1) * WORD;

/// The error for a file or image too small (or oddly sized) to be a channel, from its first
/// bytes (up to [`HEAD_BYTES`]): nothing yet (being created), our magic (truncated, or grown by
/// a few bytes: then the size the header describes, as `open` says of a file grown by a multiple
/// of 8), or something else.
fn small_image_error(head: &[u8], len: u64, name: &str) -> Error {
    let word = |i: usize| {
        let mut word = [0u8; 8];
        let bytes = head.get(i * WORD..).unwrap_or_default();
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        u64::from_le_bytes(word)
    };
    let magic = word(H_MAGIC);
    let name = name.to_owned();
    if head.is_empty() || magic == 0 {
        Error::NotInitialized { name }
    } else if magic == MAGIC && head.len() >= 8 {
        // (Not the 7 bytes the magic has before its NUL, which pad to it: FORMAT.md §9 step 2.)
        let fields = HeaderFields {
            magic,
            version: word(H_VERSION),
            header_size: word(H_HEADER_SIZE),
            capacity: word(H_CAPACITY),
            slot_count: word(H_SLOT_COUNT),
            slot_stride: word(H_SLOT_STRIDE),
            readers: word(H_READERS),
            total_size: word(H_TOTAL_SIZE),
            kind: word(H_KIND),
        };
        // A header of this layout that describes itself: what the file's size is against it
        // (`echo more >> FILE` grows a channel by a few bytes, which `truncate` takes back).
        let described = (len >= 512
            && head.len() == HEAD_BYTES
            && fields.version == VERSION
            && fields.kind == KIND_SNAPSHOT)
            .then(|| Layout::from_header(&fields, Some(len)).err())
            .flatten();
        Error::Corrupt {
            name,
            what: match described {
                Some(what) => what,
                None if len < 512 => format!("file is only {len} bytes"),
                None => {
                    format!("file is {len} bytes, which no channel's size is (not a multiple of 8)")
                }
            },
            value_only: false,
        }
    } else {
        Error::WrongMagic {
            name,
            found: magic,
            file_len: len,
        }
    }
}

/// Whether the file of metadata `meta` (taken from the open file) is still the one `path`
/// names (not followed if it is a link, for a shared-memory name, as it was opened).
pub(crate) fn still_named(meta: &std::fs::Metadata, location: &Location, path: &Path) -> bool {
    let now = match location {
        Location::Shm(_) => std::fs::symlink_metadata(path),
        _ => std::fs::metadata(path),
    };
    now.is_ok_and(|now| same_file(&now, meta))
}

/// A new file at `path` for the channel named `location` (`O_EXCL`, mode 0600, never through a
/// link), or the error that says why not, in terms of what to do (naming the path as `shown`).
fn create_new_file(location: &Location, path: &Path, shown: &Path, name: &str) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(os::NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists if path.is_dir() => directory(name),
            io::ErrorKind::IsADirectory => directory(name),
            io::ErrorKind::AlreadyExists => taken(name, path),
            io::ErrorKind::NotFound if !location.is_persistent() => Error::Io {
                op: "creating",
                path: path.to_owned(),
                cause: missing_shm_dir(e),
            },
            // A name with a '/' is a file path: say which directory is missing, and why a
            // directory is involved at all. (One that exists but takes no files, such as
            // /proc, says so in the OS's words below.)
            io::ErrorKind::NotFound if !dir_of(path).exists() => missing_dir(path, e),
            // No room for the file itself, before any block is asked for: the file system
            // has no inode left (a tmpfs's `nr_inodes`), whatever its free space.
            _ if e.raw_os_error() == Some(libc::ENOSPC) => {
                let text = format!(
                    "{e}: the file system has no room for another file, whatever its free space \
                     (no free inodes? `df -i {}`); remove files there, or give it more inodes",
                    crate::error::shell_quoted(dir_of(shown))
                );
                Error::Io {
                    op: "creating",
                    path: path.to_owned(),
                    cause: explained(e, text),
                }
            }
            _ => io_error(name, path, "creating", e),
        })
}

/// An exclusive `flock` on a channel file, taken to look at it or remove it, and given back
/// explicitly when this drops, not by closing the file. `flock` locks belong to the open file
/// description, and a process forked meanwhile (another thread of this process spawning a
/// child, a prefork server's worker) holds a copy of the descriptor: a lock left to the close
/// lives on in that copy until the child's `exec` or exit, and meanwhile every removal takes
/// the channel for in use and every open waits for it, then fails ([`lock_shared_by`] counts
/// on mmf's own exclusive locks lasting an instant). An unlock through any descriptor of the
/// description releases it in the copies too.
pub(crate) struct Exclusive<'a>(&'a File);

impl Exclusive<'_> {
    /// The lock on `file`, if no other open file description holds a lock on it now
    /// (`Ok(None)` if one does).
    pub(crate) fn try_take(file: &File) -> io::Result<Option<Exclusive<'_>>> {
        match file.try_lock() {
            Ok(()) => Ok(Some(Exclusive(file))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

impl Drop for Exclusive<'_> {
    fn drop(&mut self) {
        // A failure leaves the lock to the close, as before.
        let _ = self.0.unlock();
    }
}

/// Takes a shared `flock` on the channel file, waiting for an exclusive one to go until
/// `deadline` (`None`: for ever), and until at least `grace` ([`LOCK_GRACE`]) after `start`
/// (when the operation began, which may have waited for other files' locks before): mmf's own
/// exclusive locks
/// (`mmf prune`, `list` and `doctor` asking whether a file is in use, `open_or_create` clearing
/// a dead creator's file) last an instant, while anyone who may read the file may hold one for
/// as long as they like, which would otherwise hang every open. A lock met as that bound nears,
/// or past it (the process stalled before it tried), is given `grace` from when it was met:
/// one of mmf's instants does not fail an operation that happened to meet it then. With
/// `churned` (an open, which goes on to whatever file the name holds next), never past the
/// bound by more than that, so that a peer renaming locked files over the name costs an open
/// its bound once, not a grace a file.
fn lock_shared_by(
    file: &File,
    start: Instant,
    deadline: Option<Instant>,
    churned: bool,
    grace: Duration,
) -> io::Result<()> {
    let bound = deadline.map(|d| d.max(start + grace));
    let mut met: Option<(Instant, Option<Instant>)> = None;
    loop {
        match file.try_lock_shared() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
            Err(std::fs::TryLockError::WouldBlock) => {
                let (since, until) = *met.get_or_insert_with(|| {
                    let now = Instant::now();
                    let given = now + grace;
                    let until =
                        bound.map(|b| b.max(if churned { given.min(b + grace) } else { given }));
                    (now, until)
                });
                if until.is_none_or(|u| Instant::now() < u) {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                // Met once the operation's time was spent (on a creator's slow channel, on
                // files renamed over the name), it was given no time of its own: saying that
                // it was held "this long" after 0 ms misled (a full run under strace, eight
                // threads restarting one channel).
                if since.elapsed() < grace {
                    return Err(met_too_late(since.duration_since(start)));
                }
                return Err(held_too_long(since.elapsed()));
            }
        }
    }
}

/// The error of an open that waited `waited` for another process's exclusive `flock` to go.
pub(crate) fn held_too_long(waited: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::WouldBlock,
        format!(
            "another process holds an exclusive lock on it (flock), and mmf waited {} ms for it \
             to go; mmf takes one only for an instant (`mmf prune`, `list`, `doctor`, `recover`), \
             so whoever holds it this long is another program, or one of those stopped or \
             starved while it held it: `fuser` or `lsof` shows who has the file open",
            waited.as_millis()
        ),
    )
}

/// The error of an operation that met another process's exclusive `flock` only once its own
/// time to wait, `spent` from its start, had run out.
fn met_too_late(spent: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::WouldBlock,
        format!(
            "another process holds an exclusive lock on it (flock), met {} ms into the \
             operation, when its time to wait had run out (spent on the channel's creation or \
             on files replaced under the name); mmf's own such locks last an instant: retry, \
             or give it longer (`Options::init_timeout`); if it keeps failing, `fuser` or \
             `lsof` shows who has the file open",
            spent.as_millis()
        ),
    )
}

/// The least time an open or a creation waits for an exclusive `flock` to go, whatever its
/// `init_timeout`: longer than any of mmf's own.
const LOCK_GRACE: Duration = Duration::from_millis(50);

/// Which file [`remove_if`] may remove.
#[derive(Clone, Copy)]
pub(crate) enum Expect<'a> {
    /// The channel under the name ([`Channel::remove`]).
    Any,
    /// Only the file of this metadata (device and inode), which the caller found under the name
    /// and checked no further: still refused where it holds no channel.
    Found(&'a std::fs::Metadata),
    /// Only a handle's own file, of this metadata: removed whatever was written over its
    /// start, as it is the handle's own (the device and inode, which the handle's open file
    /// keeps from being reused), not a file that a typo named.
    Own(&'a std::fs::Metadata),
}

/// [`Channel::remove`]; with a file to expect ([`Expect::Found`], [`Expect::Own`]), only if
/// the name leads to that file (device and inode) when it is opened for the removal: not one
/// made anew under the name since, nor one renamed over the name before the unlink
/// ([`unlink_same`]): `Ok(false)` then. With [`Expect::Any`], a file path is removed only if it
/// is the file checked to be a channel (else [`Error::Io`]).
pub(crate) fn remove_if(location: &Location, expect: Expect<'_>) -> Result<bool> {
    let Some(path) = location.path() else {
        return Ok(false);
    };
    let (expect, own) = match expect {
        Expect::Any => (None, false),
        Expect::Found(meta) => (Some(meta), false),
        Expect::Own(meta) => (Some(meta), true),
    };
    let name = location.to_string();
    // A file path's directory (or an `MMF_SHM_DIR`) reached through a handle ([`pin`]), and
    // errors naming the path as given.
    match &pin(location, &path, Pin::Removal)? {
        Some(pinned) => remove_checked(location, &pinned.through, &name, expect, own)
            .map_err(|e| pinned.shown(e)),
        None => {
            judge_unpinned(location, &path, "a removal")?;
            remove_checked(location, &path, &name, expect, own)
        }
    }
}

/// [`remove_if`] once the name's path is known (through a [`Pinned`] handle where it is a file
/// path).
fn remove_checked(
    location: &Location,
    path: &Path,
    name: &str,
    expect: Option<&std::fs::Metadata>,
    own: bool,
) -> Result<bool> {
    // The file under the name now, looked at as `unlink_same` looks (not through a link under
    // the shared-memory directory), is `expect`'s.
    let is_expected = |expect: &std::fs::Metadata| {
        match location {
            Location::Shm(_) => std::fs::symlink_metadata(path),
            _ => std::fs::metadata(path),
        }
        .is_ok_and(|now| same_file(&now, expect))
    };
    // A removal by name waits for a creation under way, as an open would; one of a file the
    // caller found (`mmf prune`'s, under its own exclusive lock, which a look would take for
    // a creator's) or of a handle's own does not.
    let wait = expect.is_none().then(|| Options::new().init_timeout);
    let checked = match check_replaceable_made(location, path, name, wait) {
        Ok(checked) => checked,
        // A handle's own file is removed whatever another program wrote over its start
        // (`Expect::Own`).
        Err(Error::WrongMagic { .. } | Error::NotAChannel { .. })
            if own && expect.is_some_and(is_expected) =>
        {
            None
        }
        Err(e) => return Err(e),
    };
    let held = open_retiring(location, path);
    if let Some(expect) = expect {
        // Told by the file opened where it opens (the name may be another's by the time a
        // look at the name is made), else, where this process may not open it (its mode
        // changed since), by a look at the name; `unlink_same` makes sure of it again.
        let ours = match held.as_ref().map(File::metadata) {
            Some(Ok(m)) => same_file(&m, expect),
            _ => is_expected(expect),
        };
        if !ours {
            return Ok(false);
        }
    }
    // Only the file that was checked (else the one opened to be marked): a file put under the
    // name since (renamed over it: `create_or_replace`, `mmf new --force`) is left alone.
    let target = checked
        .or_else(|| expect.cloned())
        .or_else(|| held.as_ref().and_then(|f| f.metadata().ok()));
    // Without a file told of (a link under the shared-memory directory, which no open
    // follows, or a file this process may not open), the one a look finds now: by identity
    // still, so that a channel made under the name after that look is left alone.
    let looked = || match location {
        Location::Shm(_) => std::fs::symlink_metadata(path),
        _ => std::fs::metadata(path),
    };
    let removed = match &target {
        Some(target) => unlink_same(location, path, target),
        None => looked().and_then(|now| unlink_same(location, path, &now)),
    }
    .map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::not_found(location),
        io::ErrorKind::IsADirectory => directory(name),
        _ => io_error(name, path, "removing", e),
    })?;
    if !removed {
        if expect.is_some() {
            return Ok(false);
        }
        return Err(io_error(
            name,
            path,
            "removing",
            io::Error::other("another file was put under the name while it was checked"),
        ));
    }
    // Its followers learn that the name is gone now, not at their next look.
    if let Some(held) = &held {
        mark_retired(held);
    }
    Ok(true)
}

/// Removes the name `path` of `location` if it still leads to the file of `target` (device and
/// inode; through a link for a file path, as it was opened): `Ok(true)` if it did, `Ok(false)`
/// if another file is under the name, which is left there untouched; `NotFound` if nothing is.
/// A look and then an unlink would remove a channel renamed over the name between the two (a
/// review made `mmf prune` do that to a `new --force`'s channel, delaying its unlink 600 ms).
/// So, once a look found `target` there, the name is renamed aside (a `.mmf-new-` name of this
/// process's own in the same directory, which a plain rename takes as atomically), whatever it
/// leads to at that instant, and the file moved is unlinked if it is `target`, else put back
/// under the name, never over a file put there meanwhile ([`move_noreplace`]: one rename
/// where the system has one that refuses a taken name, Linux's and macOS's, else a hard link
/// and an unlink). Where not even a plain rename is allowed (a policy that refuses it), the
/// look and the unlink remain.
/// Should a third file take the name while another is aside (three processes at one name within
/// microseconds), or this process be killed in those microseconds, the one aside keeps its
/// `.mmf-new-` name, which `mmf prune` removes once no process holds it (in the shared-memory
/// directory; beside a file path, the next replacement there).
pub(crate) fn unlink_same(
    location: &Location,
    path: &Path,
    target: &std::fs::Metadata,
) -> io::Result<bool> {
    let now = match location {
        Location::Shm(_) => std::fs::symlink_metadata(path),
        _ => std::fs::metadata(path),
    }?;
    // Another file under the name already: not touched at all (it may be another process's
    // live channel, which a rename aside would take off its name for an instant).
    if !same_file(&now, target) {
        return Ok(false);
    }
    let aside = path.with_file_name(format!("{REPLACEMENT_PREFIX}{:016x}", incarnation()));
    match rename_noreplace(path, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(e),
        // No such rename here (a kernel before Linux 3.15, a seccomp filter that refuses
        // `renameat2`, a file system without the flag: NFS, 9p), or one that a policy refuses:
        // `aside` is this process's own name, which nothing else takes.
        Err(_) => match std::fs::rename(path, &aside) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(e),
            // A rename a policy refuses where an unlink may pass: the look above, then the
            // unlink, whose own error is the caller's.
            Err(_) => return std::fs::remove_file(path).map(|()| true),
        },
    }
    let moved = match location {
        Location::Shm(_) => std::fs::symlink_metadata(&aside),
        _ => std::fs::metadata(&aside),
    };
    if moved.is_ok_and(|m| same_file(&m, target)) {
        return match std::fs::remove_file(&aside) {
            Ok(()) => Ok(true),
            Err(e) => {
                // A directory, say: back under its name, as it was.
                put_back(&aside, path);
                Err(e)
            }
        };
    }
    put_back(&aside, path);
    Ok(false)
}

/// Puts the file renamed aside to `aside` back under `path` ([`unlink_same`]), never over a
/// file put there meanwhile, which keeps it aside (as any other failure does); where the system
/// has neither a rename that refuses nor hard links, with a plain rename if the name is still
/// free just before it (a file put there in between is replaced: microseconds, on such file
/// systems alone).
fn put_back(aside: &Path, path: &Path) {
    let free =
        || std::fs::symlink_metadata(path).is_err_and(|e| e.kind() == io::ErrorKind::NotFound);
    if move_noreplace(aside, path).is_err_and(|e| e.kind() == io::ErrorKind::Unsupported) && free()
    {
        let _ = std::fs::rename(aside, path);
    }
}

/// Moves the file under `from`, a temporary name of this process's own (a `.mmf-new-` name),
/// to `to` unless `to` exists (`AlreadyExists`). One rename where the system has one that
/// refuses a taken name ([`os::rename_noreplace`]); where it has none (a kernel before Linux
/// 3.15, a seccomp filter that refuses `renameat2`, a file system without the flag: NFS, 9p),
/// a hard link under `to`, which the kernel refuses if the name is taken, then `from`
/// unlinked: for that moment the file has both names, and a process killed in it leaves the
/// `.mmf-new-` one (a name only: the file keeps `to`), which the next replacement in that
/// directory removes once no process holds the file (`mmf prune` too, in the shared-memory
/// directory). A plain rename there replaced a file put under `to` meanwhile (a
/// user's file, a channel another process was creating), which every later check had been
/// made to refuse. `Unsupported` where hard links are refused too (a file system without
/// them).
fn move_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    match rename_noreplace(from, to) {
        // No such rename, or one a seccomp filter refuses (`EPERM`).
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::Unsupported | io::ErrorKind::PermissionDenied
            ) => {}
        renamed => return renamed,
    }
    link_noreplace(from, to)
}

#[cfg(test)]
thread_local! {
    /// Tests: this thread's [`rename_noreplace`] answers `Unsupported`, as where the system
    /// has no such rename, so that the fallbacks run here too.
    static NO_RENAME_NOREPLACE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[cfg(test)]
thread_local! {
    /// Tests: this thread's creations do not look at the file system's kind, so that the check
    /// of the size made runs on hugetlbfs too.
    static KIND_UNJUDGED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// [`os::huge_pages_only`]; in tests, `false` where [`KIND_UNJUDGED`] says so.
fn huge_pages_only(dir: &Path) -> bool {
    #[cfg(test)]
    if KIND_UNJUDGED.get() {
        return false;
    }
    os::huge_pages_only(dir)
}

/// [`os::rename_noreplace`]; in tests, `Unsupported` where [`NO_RENAME_NOREPLACE`] says so.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(test)]
    if NO_RENAME_NOREPLACE.get() {
        return Err(io::ErrorKind::Unsupported.into());
    }
    os::rename_noreplace(from, to)
}

/// [`move_noreplace`] where no rename refuses a taken name: a hard link under `to` (refused if
/// the name is taken: `AlreadyExists`), then `from` unlinked; `Unsupported` where the file
/// system refuses hard links.
fn link_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    // `linkat` without `AT_SYMLINK_FOLLOW`: a link under `from` is linked itself, as a rename
    // would move it.
    let linked = std::fs::hard_link(from, to);
    // A link made though the call said `EEXIST` (NFS: a retransmitted `LINK` whose first
    // reply was lost) is taken as made: `to` is then the file under `from`.
    let made = |e: &io::Error| {
        e.kind() == io::ErrorKind::AlreadyExists
            && std::fs::symlink_metadata(from)
                .and_then(|f| Ok(same_file(&f, &std::fs::symlink_metadata(to)?)))
                .unwrap_or(false)
    };
    match linked {
        Err(e) if !made(&e) => match e.raw_os_error() {
            // No hard links on this file system, or refused by a policy (a seccomp filter).
            Some(libc::EPERM | libc::EOPNOTSUPP | libc::ENOSYS) => {
                Err(io::ErrorKind::Unsupported.into())
            }
            _ => Err(e),
        },
        _ => {
            // Best effort: a name left here is removed as a killed replacement's is.
            let _ = std::fs::remove_file(from);
            Ok(())
        }
    }
}

/// The file under `path`, opened before its name is removed or replaced, to be marked retired
/// after that ([`mark_retired`]): writable where allowed (else read-only, which still tells which
/// file it is and holds its lock, but cannot mark it); `None` if it cannot be opened at all.
fn open_retiring(location: &Location, path: &Path) -> Option<File> {
    open_existing(location, path, true)
        .or_else(|_| open_existing(location, path, false))
        .ok()
}

/// Marks the channel in `file` retired (the header's `retired` word, FORMAT.md §8) and wakes
/// every thread asleep on its `retired` or `latest` word, so that followers of the name it no
/// longer has look at the name at once (`Follower`) instead of within 100 ms. Called right after
/// the name was removed or another channel renamed over it, with the file opened before that.
///
/// Best effort, and nothing here trusts the file: only a file that no name leads to any more
/// is marked (a link count of 0: not the target of a symbolic link that was removed, nor a file
/// with another hard link, nor one put under the name between the open and the unlink, all
/// still live), and only one whose header is one of this layout's snapshot channels, not
/// marked yet; a file not writable by this process is not marked (its followers look within
/// 100 ms as before). The word is written with `pwrite`, not through a mapping, so a file that
/// a holder shrank meanwhile is extended by the write (harmless: no name leads to it), never a
/// `SIGBUS`; the mapping made for the wake is only handed to the kernel as the futex's address,
/// which it checks itself (`EFAULT` past the file's end).
pub(crate) fn mark_retired(file: &File) {
    use std::os::unix::fs::{FileExt, MetadataExt};
    if !file.metadata().is_ok_and(|m| m.nlink() == 0) {
        return;
    }
    let mut header = [0u8; H_PINS * WORD];
    if file.read_exact_at(&mut header, 0).is_err() {
        return;
    }
    let word = |i: usize| {
        let mut b = [0u8; WORD];
        b.copy_from_slice(&header[i * WORD..(i + 1) * WORD]);
        u64::from_le_bytes(b)
    };
    if word(H_MAGIC) != MAGIC
        || word(H_VERSION) != VERSION
        || word(H_KIND) != KIND_SNAPSHOT
        || word(H_RETIRED) != 0
    {
        return;
    }
    let pid = u64::from(std::process::id()).max(1);
    let at = (H_RETIRED * WORD) as u64;
    if !matches!(file.write_at(&pid.to_le_bytes(), at), Ok(WORD)) {
        return;
    }
    let Ok(map) = memmap2::MmapOptions::new()
        .len(H_PINS * WORD)
        .map_raw_read_only(file)
    else {
        return;
    };
    let region = Region::from_map(map, false);
    // Followers sleep on `retired` too (`Snapshot::wait_for_change`); a program that does not
    // read `retired` sleeps on `latest` alone.
    os::wake_all(region.word(H_RETIRED));
    os::wake_all(region.word(H_LATEST));
}

/// Opens the existing file that a channel's `path` leads to, read-only or read-write,
/// close-on-exec, and for a shared-memory name never through a symbolic link planted under it
/// (a file path the user gave may be a link on purpose).
///
/// What is not a regular file is never opened for reading or writing: opening a device can act
/// on it (a tape rewinds, a watchdog arms, a terminal is taken), and opening a FIFO for reading
/// lets a writer blocked on it go on. Where the system allows (Linux with `/proc`), the path is
/// resolved once, without opening what it leads to (`O_PATH`); what that is gets looked at, and
/// a regular file is then opened through the handle (`/proc/self/fd`), so that a link swapped in
/// between cannot lead the open elsewhere. For anything else the handle itself is returned,
/// good for `metadata()` alone: a read, write or map of it fails with `EBADF`, and the callers
/// that use what they opened check it with [`regular_file`] (or `is_file`) first. Elsewhere
/// (another system, or Linux without `/proc`) the path is opened as it is, non-blocking: a
/// caller's look with [`not_special`] before it can be got past by a link swapped in between.
///
/// `O_NONBLOCK` (which regular files ignore) because anyone may plant a FIFO under a name in
/// `/dev/shm`: opening one would block until a writer came, and `mmf list` with it. `O_NOCTTY`
/// so that a terminal opened after all is not made this process's own.
pub(crate) fn open_existing(location: &Location, path: &Path, write: bool) -> io::Result<File> {
    let nofollow = match location {
        Location::Shm(_) => os::NOFOLLOW,
        _ => 0,
    };
    open_path(path, write, nofollow)
}

/// [`open_existing`] with its own `nofollow` (0 or [`os::NOFOLLOW`]), for a path that is not a
/// channel's location (yet).
pub(crate) fn open_path(path: &Path, write: bool, nofollow: i32) -> io::Result<File> {
    let options = |flags| {
        let mut oo = OpenOptions::new();
        oo.read(true)
            .write(write)
            .custom_flags(flags | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY);
        oo
    };
    if let Some(handle) = os::open_path_only(path, nofollow) {
        let handle = handle?;
        let kind = handle.metadata()?.file_type();
        if kind.is_symlink() {
            // What `open` with `O_NOFOLLOW` says of a link, which `O_PATH` would hold instead.
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
        if !kind.is_file() {
            return Ok(handle);
        }
        if let Some(file) = os::reopen(&handle, &options(0)) {
            return file;
        }
    }
    options(nofollow).open(path)
}

/// [`regular_file`]'s refusal of what the name leads to, looked at before it is opened: opening
/// a device can act on it (a tape rewinds, a watchdog arms, a terminal is taken), and a socket
/// fails with "No such device or address". Where the look fails, the open that follows says
/// why. What the opened file is gets checked again once it is open. A file path through a
/// directory that someone else may write can have a link swapped in between this look and the
/// open (a review opened `/dev/zero` so in 13 of 300 tries): [`open_existing`] closes that
/// where it can resolve the path once (Linux); a shared-memory name is never opened through a
/// link.
fn not_special(location: &Location, path: &Path, name: &str) -> Result<()> {
    // A shared-memory name is never opened through a symbolic link (`O_NOFOLLOW`).
    let meta = match location {
        Location::Shm(_) => std::fs::symlink_metadata(path),
        _ => std::fs::metadata(path),
    };
    match meta {
        Ok(meta) if !meta.file_type().is_symlink() => regular_file(&meta, name),
        _ => Ok(()),
    }
}

/// `Ok` for a regular file; [`Error::IsADirectory`] or [`Error::NotAFile`] for anything else.
pub(crate) fn regular_file(meta: &std::fs::Metadata, name: &str) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    let kind = if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        return Err(directory(name));
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_socket() {
        "socket"
    } else if t.is_block_device() || t.is_char_device() {
        "device"
    } else {
        "special file"
    };
    Err(Error::NotAFile {
        name: name.to_owned(),
        kind,
    })
}

/// Why a channel cannot be created at `path`, which exists: [`Error::AlreadyExists`] for a
/// channel; [`Error::NotInitialized`] for what may be one being created, or one whose creator
/// died before it wrote the header (empty, or its first word still 0), as `open` says of it;
/// and for a file that plainly is not one, what it is ([`Error::WrongMagic`],
/// [`Error::NotAFile`]). "Open it, or remove it" would help in neither of the last two cases:
/// both refuse such a file. A symbolic link stays `AlreadyExists`: creating never follows one,
/// opening does.
fn taken(name: &str, path: &Path) -> Error {
    let exists = || Error::AlreadyExists {
        name: name.to_owned(),
    };
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return exists();
    };
    if meta.file_type().is_symlink() {
        return exists();
    }
    if let Err(not_a_file) = regular_file(&meta, name) {
        return not_a_file;
    }
    let mut head = Vec::with_capacity(HEAD_BYTES);
    let read = open_path(path, false, os::NOFOLLOW)
        .and_then(|f| f.take(HEAD_BYTES as u64).read_to_end(&mut head));
    if read.is_err() {
        return exists();
    }
    if head.get(..8) == Some(&MAGIC.to_le_bytes()[..]) {
        return exists();
    }
    // As `open` says it (a file that grew or shrank since is shown with the bytes read).
    let len = if head.len() < 8 {
        head.len() as u64
    } else {
        meta.len().max(8)
    };
    small_image_error(&head, len, name)
}

/// The start of the temporary name under which [`Options::create_or_replace`] makes a channel.
pub(crate) const REPLACEMENT_PREFIX: &str = ".mmf-new-";

/// Whether the channel at `location` may be removed or replaced: a file path must hold a channel
/// (never delete a file that is not one because of a typo); a shared-memory name is mmf's own.
/// `NotFound` when there is nothing.
/// What may be removed or replaced under `path`: for a file path, `Ok(Some(metadata))` of the
/// file checked (a link's target, as the path was followed); `Ok(None)` for a shared-memory
/// name, which is mmf's own whatever it holds.
fn check_replaceable(
    location: &Location,
    path: &Path,
    name: &str,
) -> Result<Option<std::fs::Metadata>> {
    let name = name.to_owned();
    if let Location::File(_) = location {
        // Never delete a file that is not a channel because of a typo.
        not_special(location, path, &name)?;
        let f = open_existing(location, path, false).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::not_found(location),
            io::ErrorKind::IsADirectory => directory(&name),
            _ => io_error(&name, path, "opening", e),
        })?;
        let meta = f
            .metadata()
            .map_err(|e| io_error(&name, path, "inspecting", e))?;
        regular_file(&meta, &name)?;
        let checked = meta.clone();
        let mut head = Vec::with_capacity(8);
        f.take(8)
            .read_to_end(&mut head)
            .map_err(|e| io_error(&name, path, "reading", e))?;
        let not_a_channel = |what: String| {
            Err(Error::NotAChannel {
                name: name.clone(),
                what,
            })
        };
        match <[u8; 8]>::try_from(head.as_slice()).map(u64::from_le_bytes) {
            Ok(MAGIC) => {}
            Ok(0) => return not_a_channel("its first 8 bytes are zero".into()),
            Ok(found) => {
                return Err(Error::WrongMagic {
                    name,
                    found,
                    // 8 bytes were read: a file shrunk since is still shown with them.
                    file_len: meta.len().max(8),
                });
            }
            Err(_) if head.is_empty() => return not_a_channel("the file is empty".into()),
            Err(_) => return not_a_channel(format!("the file is only {} bytes", head.len())),
        }
        return Ok(Some(checked));
    } else if let Err(e) = std::fs::symlink_metadata(path) {
        return Err(match e.kind() {
            io::ErrorKind::NotFound => Error::not_found(location),
            _ => io_error(&name, path, "inspecting", e),
        });
    }
    Ok(None)
}

/// [`check_replaceable`], once a channel another process is creating under a file path is made:
/// what is there while a creator allocates (an empty file, or zeros where the magic goes, which
/// is written last; held by the creator, with a shared `flock`) is waited on for up to
/// `wait` (at most 5 s; `None`: not waited on, [`check_replaceable`] alone), as
/// [`Options::open`] waits for it, then judged. A `--force` or a
/// removal racing a `new` of the path refused it as "not an mmf channel", advising to delete
/// the file a live creator was making (a chaos test's: 65 of 100 such races on ext4, 10-15 % on
/// tmpfs). A shared-memory name is mmf's own and needs no look ([`check_replaceable`]).
/// Still under way once `wait` is over: [`Error::BeingCreated`].
fn check_replaceable_made(
    location: &Location,
    path: &Path,
    name: &str,
    wait: Option<Duration>,
) -> Result<Option<std::fs::Metadata>> {
    let Some(wait) = wait else {
        return check_replaceable(location, path, name);
    };
    let until = Instant::now() + wait.min(Duration::from_secs(5));
    let mut looked_again = false;
    loop {
        match check_replaceable(location, path, name) {
            // Held, not merely young: a file just written empty by hand (`touch`) is no
            // creation, and a creator holds its file from the instant after it made it.
            Err(Error::NotAChannel { .. })
                if crate::host::creation_under_way(location, Duration::ZERO) =>
            {
                if Instant::now() >= until {
                    return Err(Error::BeingCreated {
                        name: name.to_owned(),
                    });
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            // No creation under way at the second look: perhaps one that wrote its magic
            // between the two (1 in 60 races did), which one more look finds made, or one
            // between its file's creation and its lock (microseconds), which a millisecond
            // later holds it.
            Err(Error::NotAChannel { .. }) if !looked_again => {
                looked_again = true;
                std::thread::sleep(Duration::from_millis(1));
            }
            other => return other,
        }
    }
}

/// Whether a replacement may take over `old`'s mode, group and (as root) owner: where `old` lies
/// in a directory that only root and `old`'s owner can write, or is the caller's own file, no
/// other name leads to it, and neither its group nor others may write it. In a directory anyone
/// may write (`/dev/shm`, `/tmp`), another user can plant a file under a name before its
/// service makes it, and root's `--force` would hand them the new channel (theirs, with their
/// mode); there the replacement gets the caller's defaults instead. That includes a hard link
/// another user made there to a file of the caller's, which `fs.protected_hardlinks` allows to
/// a file its maker may read and write: to a world-writable one, it handed its mode 0666 to the
/// caller's new channel, and still did once the file's other name was removed (two security
/// reviews). A file others may write says nothing about who put it under the name, so its mode
/// is not lent there: a channel meant to be shared so is made again with its mode given.
fn inheritable(old: &std::fs::Metadata, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let dir_is_guarded = std::fs::metadata(dir_of(path))
        .is_ok_and(|d| d.mode() & 0o022 == 0 && (d.uid() == 0 || d.uid() == old.uid()));
    dir_is_guarded || (old.uid() == os::euid() && old.nlink() == 1 && old.mode() & 0o022 == 0)
}

/// Refuses `walk` (a file path, or the directory of one) if resolving it meets a symbolic link
/// that the kernel's `fs.protected_symlinks` rule would not follow, whatever that setting says
/// (it is off on some systems), on any component: a link in a sticky directory that others may
/// write to (`/tmp`), made by neither this user nor the directory's owner. Judged once, before
/// the operation: where the system allows, [`pin`] judges the directory's part again as it
/// resolves it into a handle, which the operation then works through, so that a peer swapping
/// a directory of its own for such a link in between (with `renameat2`) steers nothing (it
/// did: a second review). Every link met is judged, the final
/// component's, a directory's on the way, and each one a link leads to: as root, `mmf new
/// /tmp/x/job.mmf --force` through another user's link there (or through a link of root's to
/// such a link, or through their link to a directory) replaced a channel in a directory only
/// root may enter (two reviews). `what` names the operation, for the message; `path` is the
/// channel's, `name` as given.
fn unprotected_link(name: &str, path: &Path, walk: &Path, what: &str) -> Result<()> {
    match first_unprotected_link(walk) {
        Some(link) => Err(refused_link(name, path, &link, what)),
        None => Ok(()),
    }
}

/// [`unprotected_link`]'s rule for the shared-memory directory that a name's `path` lies in:
/// `MMF_SHM_DIR` may name a path through another user's link in a sticky directory (`/tmp`),
/// which the kernel's rule, judging the last component only, lets through. A security review's
/// root then created a channel, and `mmf prune` removed channels, in a directory only root may
/// enter, where that user's link led. Creations, replacements and removals are refused; opens
/// are not (as of a file path's).
fn shm_dir_link(name: &str, path: &Path, what: &str) -> Result<()> {
    match first_unprotected_link(dir_of(path)) {
        Some(link) => Err(shm_link_refused(name, path, &link, what)),
        None => Ok(()),
    }
}

/// The error for `link`, met on the way to the shared-memory directory of `path`.
fn shm_link_refused(name: &str, path: &Path, link: &Path, what: &str) -> Error {
    link_refused(
        name,
        path,
        link,
        what,
        "set MMF_SHM_DIR to the directory's own path if that is the one meant",
    )
}

/// Where [`pin`] could not hold `path`'s directory (no `O_PATH` or `/proc`; `/dev/shm`, which
/// needs none), the rule judged once, by path, before `what`: [`unprotected_link`] for a file
/// path's directory, [`shm_dir_link`] for the shared-memory directory.
fn judge_unpinned(location: &Location, path: &Path, what: &str) -> Result<()> {
    let name = location.to_string();
    match location {
        Location::File(_) => unprotected_link(&name, path, dir_of(path), what),
        _ => shm_dir_link(&name, path, what),
    }
}

/// The error for `link`, met on `path` and refused by the rule of [`unprotected_link`].
fn refused_link(name: &str, path: &Path, link: &Path, what: &str) -> Error {
    link_refused(
        name,
        path,
        link,
        what,
        "give the channel's own path if that is the one meant",
    )
}

/// [`refused_link`], with what to do instead (`advice`).
fn link_refused(name: &str, path: &Path, link: &Path, what: &str, advice: &str) -> Error {
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::symlink_metadata(link).map_or(0, |m| m.uid());
    Error::PermissionDenied {
        name: name.to_owned(),
        path: path.to_owned(),
        // All there is to do: no advice about the file's owner and mode after it (the link,
        // not the file, is what refuses).
        cause: crate::error::explained_whole(
            io::ErrorKind::PermissionDenied.into(),
            format!(
                "the path goes through {}, a symbolic link of user {owner}'s in a sticky \
                 directory others may write to, which {what} does not follow (the kernel's \
                 fs.protected_symlinks rule, applied here to every link on the way, not only \
                 the last): it could lead anywhere that user chose; {advice}",
                link.display()
            ),
        ),
    }
}

/// `path` from the root: as it is if absolute, else joined to the working directory (an
/// empty one is the working directory itself); `None` where that cannot be had.
pub(crate) fn from_root(path: &Path) -> Option<PathBuf> {
    if path.is_absolute() {
        Some(path.to_owned())
    } else {
        Some(std::env::current_dir().ok()?.join(path))
    }
}

/// The first symbolic link met in resolving `path` that [`unprotected_link`] refuses, if any.
/// Links that loop (more than 40, the kernel's limit) end the walk with none: the OS then
/// reports the loop itself. (Stricter than the kernel, which judges only the last component's
/// link: a destructive operation run as root must not be steered into another directory by
/// a directory link either, found by a review.)
pub(crate) fn first_unprotected_link(path: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    use std::path::Component;
    let start = from_root(path)?;
    let mut todo: std::collections::VecDeque<std::ffi::OsString> = start
        .components()
        .map(|c| c.as_os_str().to_owned())
        .collect();
    let mut at = PathBuf::from("/");
    let mut links = 0;
    while let Some(part) = todo.pop_front() {
        match Path::new(&part).components().next() {
            Some(Component::RootDir | Component::Prefix(_)) => at = PathBuf::from("/"),
            None | Some(Component::CurDir) => {}
            Some(Component::ParentDir) => {
                at.pop();
            }
            Some(Component::Normal(part)) => {
                let next = at.join(part);
                let Ok(meta) = std::fs::symlink_metadata(&next) else {
                    // Nothing there (yet): no link on the rest of the way.
                    return None;
                };
                if !meta.is_symlink() {
                    at = next;
                    continue;
                }
                let followable = meta.uid() == os::euid()
                    || std::fs::metadata(&at)
                        .is_ok_and(|d| d.mode() & 0o1002 != 0o1002 || d.uid() == meta.uid());
                links += 1;
                if !followable {
                    return Some(next);
                }
                if links > 40 {
                    return None;
                }
                let Ok(target) = std::fs::read_link(&next) else {
                    return None;
                };
                for c in target.components().rev() {
                    todo.push_front(c.as_os_str().to_owned());
                }
            }
        }
    }
    None
}

/// A file path's directory, resolved once into a handle, and the path that names the file
/// through that handle (`/proc/self/fd/N/NAME`): a create, rename or unlink by that path
/// happens in that directory, whatever is renamed or swapped on the way to it afterwards.
///
/// [`unprotected_link`] judges the links on a path once, and the operation then resolves the
/// path again: a peer that swapped a directory of its own for a link in between (`renameat2`
/// with `RENAME_EXCHANGE`, in a loop) got root's `--force` through after 28 tries (stop 48's
/// second review). Resolved here component by component, each link judged as it is met and
/// followed from the directory handle it was found in, the directory reached is the one
/// judged.
pub(crate) struct Pinned {
    /// The directory (`O_PATH`), held for as long as the path through it is used.
    dir: File,
    /// `/proc/self/fd/N/NAME`.
    pub(crate) through: PathBuf,
    /// The path as given, for messages.
    shown: PathBuf,
}

impl Pinned {
    /// `e` with the path through the handle said as the path given (errors name the path the
    /// user knows, not `/proc/self/fd/N/...`).
    pub(crate) fn shown(&self, e: Error) -> Error {
        let said = |p: PathBuf| match self.through.parent().map(|dir| p.strip_prefix(dir)) {
            Some(Ok(rest)) if rest.as_os_str().is_empty() => dir_of(&self.shown).to_owned(),
            Some(Ok(rest)) => dir_of(&self.shown).join(rest),
            _ => p,
        };
        // A path in an explanation's text (`chattr -i PATH`), as the path and its directory
        // are said, quoted as they were written there.
        let reword = |cause| {
            use crate::error::shell_quoted as quoted;
            let dir = self.through.parent().unwrap_or(&self.through);
            crate::error::reworded(cause, |text| {
                let text = replace_whole(text, &quoted(&self.through), &quoted(&self.shown));
                replace_whole(&text, &quoted(dir), &quoted(dir_of(&self.shown)))
            })
        };
        match e {
            Error::Io { op, path, cause } => Error::Io {
                op,
                path: said(path),
                cause: reword(cause),
            },
            Error::PermissionDenied { name, path, cause } => Error::PermissionDenied {
                name,
                path: said(path),
                cause: reword(cause),
            },
            Error::NoSpace {
                name,
                bytes,
                dir,
                available,
            } => Error::NoSpace {
                name,
                bytes,
                dir: said(dir),
                available,
            },
            e => e,
        }
    }
}

/// `e` (`ENOENT`) creating a file at `path` whose directory does not exist: which one, and why
/// a directory is involved at all.
fn missing_dir(path: &Path, e: io::Error) -> Error {
    Error::Io {
        op: "creating",
        path: path.to_owned(),
        cause: explained(
            e,
            format!(
                "the directory {} does not exist (a name with a '/' is a file path; create the \
                 directory first, or use a shared-memory name without '/')",
                dir_of(path).display()
            ),
        ),
    }
}

/// What a [`Pinned`] path is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pin {
    /// `create` (and `open_or_create`'s creation).
    Creation,
    /// `create_or_replace`.
    Replacement,
    /// `remove_if`.
    Removal,
}

/// `path` (a file path of `location`, or a shared-memory name's in a directory `MMF_SHM_DIR`
/// chose) with its directory resolved into a [`Pinned`] handle, every link on the way judged
/// as [`unprotected_link`] judges, for `op`.
/// `Ok(None)` where the system cannot (no `O_PATH`, no `/proc`, a path without a file name),
/// and for a shared-memory name in `/dev/shm`, or in a directory that is not there: the caller
/// judges the path once instead ([`judge_unpinned`]). A file path's directory that is not
/// there is [`Error::NotFound`] for a removal; otherwise the error is what creating or removing
/// the file there would give.
pub(crate) fn pin(location: &Location, path: &Path, op: Pin) -> Result<Option<Pinned>> {
    let (what, verb) = match op {
        Pin::Creation => ("a creation", "creating"),
        Pin::Replacement => ("a replacement", "creating"),
        Pin::Removal => ("a removal", "removing"),
    };
    // `/dev/shm` is root's, and a name there is never followed through a link: nothing to pin.
    // A directory `MMF_SHM_DIR` chose may lie where others write, as a file path's may.
    let shm = matches!(location, Location::Shm(_));
    if shm && !crate::name::shm_dir_chosen() {
        return Ok(None);
    }
    let Some(file_name) = path.file_name().filter(|_| names_a_file(path)) else {
        return Ok(None);
    };
    let name = &location.to_string();
    match resolve_judged(dir_of(path)) {
        None => Ok(None),
        Some(Ok(Err(link))) if shm => Err(shm_link_refused(name, path, &link, what)),
        // A missing shared-memory directory is said as every operation there says it; one
        // that cannot be held for want of a descriptor (`EMFILE`, `ENFILE`) is judged by path
        // once, as before shared-memory names were pinned (a review's `ulimit -n 4; mmf rm`).
        Some(Err(e))
            if shm
                && (e.kind() == io::ErrorKind::NotFound
                    || matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))) =>
        {
            Ok(None)
        }
        Some(Ok(Ok(dir))) => {
            let through = fd_path(&dir).join(file_name);
            Ok(Some(Pinned {
                dir,
                through,
                shown: path.to_owned(),
            }))
        }
        Some(Ok(Err(link))) => Err(refused_link(name, path, &link, what)),
        // A directory that is not there: nothing to remove, as a removal that looks says; no
        // directory to make the replacement in, as its creation there says.
        Some(Err(e)) if e.kind() == io::ErrorKind::NotFound => Err(match op {
            Pin::Removal => Error::not_found(location),
            Pin::Creation | Pin::Replacement => missing_dir(path, e),
        }),
        Some(Err(e)) => Err(io_error(name, path, verb, e)),
    }
}

/// `/proc/self/fd/N` of `handle`: the file it refers to, as a path.
fn fd_path(handle: &File) -> PathBuf {
    use std::os::fd::AsRawFd;
    PathBuf::from(format!("/proc/self/fd/{}", handle.as_raw_fd()))
}

/// The directory `dir` leads to, opened (`O_PATH`) one component at a time from `/` (or the
/// working directory), each symbolic link met judged by the rule of [`first_unprotected_link`]
/// and followed from the directory it is in: `Err(link)` (as a path, for the message) for the
/// first one refused. `None` where the system has no `O_PATH` or `/proc` is not mounted.
fn resolve_judged(dir: &Path) -> Option<io::Result<std::result::Result<File, PathBuf>>> {
    let root = match os::open_path_only(Path::new("/"), 0)? {
        Ok(root) => root,
        Err(e) => return Some(Err(e)),
    };
    if std::fs::symlink_metadata(fd_path(&root)).is_err() {
        return None;
    }
    let walked = if dir.is_absolute() {
        walk_judged(root, PathBuf::from("/"), dir)
    } else {
        std::env::current_dir()
            .and_then(|cwd| walk_judged(open_handle(Path::new("."), 0)?, cwd, dir))
    };
    Some(walked.map(|w| w.map(|(at, _)| at)))
}

/// `O_PATH` open of `p` (with `flags`), on a system known to have it.
fn open_handle(p: &Path, flags: i32) -> io::Result<File> {
    os::open_path_only(p, flags).unwrap_or_else(|| Err(io::ErrorKind::Unsupported.into()))
}

/// Whether a link (`link`, its own status) in a directory (`dir`, its status) may be followed:
/// the rule of [`first_unprotected_link`].
fn followable(link: &std::fs::Metadata, dir: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    link.uid() == os::euid() || dir.mode() & 0o1002 != 0o1002 || dir.uid() == link.uid()
}

/// The directory `dir` leads to from the directory `at` (shown as `shown`, for messages), as
/// [`resolve_judged`] resolves it: with the directory reached and how it is shown, or
/// `Err(link)` for the first link refused.
fn walk_judged(
    mut at: File,
    mut shown: PathBuf,
    dir: &Path,
) -> io::Result<std::result::Result<(File, PathBuf), PathBuf>> {
    use std::path::Component;
    let mut todo: std::collections::VecDeque<std::ffi::OsString> =
        dir.components().map(|c| c.as_os_str().to_owned()).collect();
    let mut links = 0;
    while let Some(part) = todo.pop_front() {
        match Path::new(&part).components().next() {
            Some(Component::RootDir | Component::Prefix(_)) => {
                at = open_handle(Path::new("/"), 0)?;
                shown = PathBuf::from("/");
            }
            None | Some(Component::CurDir) => {}
            Some(Component::ParentDir) => {
                at = open_handle(&fd_path(&at).join(".."), 0)?;
                shown.pop();
            }
            Some(Component::Normal(part)) => {
                let entry = fd_path(&at).join(part);
                let next = open_handle(&entry, os::NOFOLLOW)?;
                let meta = next.metadata()?;
                if meta.is_dir() {
                    at = next;
                    shown.push(part);
                    continue;
                }
                if !meta.is_symlink() {
                    return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
                }
                if !followable(&meta, &at.metadata()?) {
                    return Ok(Err(shown.join(part)));
                }
                links += 1;
                if links > 40 {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                for c in link_target(&entry, &meta)?.components().rev() {
                    todo.push_front(c.as_os_str().to_owned());
                }
            }
        }
    }
    // Said as the kernel names the directory reached (`..` met after a link is not the
    // lexical parent: a review saw messages name another directory), else as walked.
    let shown = std::fs::read_link(fd_path(&at)).unwrap_or(shown);
    Ok(Ok((at, shown)))
}

/// The target of the link at `entry` whose status is `meta` (the same inode read after it),
/// not of one put under the name since.
fn link_target(entry: &Path, meta: &std::fs::Metadata) -> io::Result<PathBuf> {
    let target = std::fs::read_link(entry)?;
    if !std::fs::symlink_metadata(entry).is_ok_and(|m| same_file(&m, meta)) {
        return Err(io::Error::other(
            "a link on the path changed while it was resolved; retry",
        ));
    }
    Ok(target)
}

/// What the name `pinned` leads to, through its links: each judged as it is met (the rule of
/// [`unprotected_link`]) against the directory it is in, and followed from that directory's
/// handle, so that the file reached is in a directory judged (a review swapped another user's
/// channel under the name with their link to a root-only channel, and got root's `--force`
/// to follow the link that the judgement had not met). `path` is the path given.
fn follow_judged(pinned: &Pinned, location: &Location, path: &Path) -> Result<Pinned> {
    let name = location.to_string();
    let failed = |e: io::Error| io_error(&name, path, "replacing", e);
    let mut at = pinned.dir.try_clone().map_err(failed)?;
    let mut shown = dir_of(&pinned.shown).to_owned();
    let mut file = pinned.through.file_name().unwrap_or_default().to_owned();
    for _ in 0..=40 {
        let entry = fd_path(&at).join(&file);
        let meta = match std::fs::symlink_metadata(&entry) {
            Ok(meta) if meta.is_symlink() => meta,
            _ => {
                return Ok(Pinned {
                    dir: at,
                    through: entry,
                    shown: shown.join(&file),
                })
            }
        };
        if !followable(&meta, &at.metadata().map_err(failed)?) {
            return Err(refused_link(
                &name,
                path,
                &shown.join(&file),
                "a replacement",
            ));
        }
        let target = link_target(&entry, &meta).map_err(failed)?;
        let Some(target_file) = target.file_name().filter(|_| names_a_file(&target)) else {
            return Err(directory(&name));
        };
        let (from, from_shown) = if target.is_absolute() {
            (
                open_handle(Path::new("/"), 0).map_err(failed)?,
                PathBuf::from("/"),
            )
        } else {
            (at, shown)
        };
        match walk_judged(from, from_shown, dir_of(&target)).map_err(failed)? {
            Ok((dir, dir_shown)) => (at, shown) = (dir, dir_shown),
            Err(link) => return Err(refused_link(&name, path, &link, "a replacement")),
        }
        file = target_file.to_owned();
    }
    Err(failed(io::Error::from_raw_os_error(libc::ELOOP)))
}

/// Whether `path`'s last component names an entry (not `.` or `..`, which `Path::file_name`
/// and [`dir_of`] would read past: `x.mmf/.` is no file `x.mmf`).
fn names_a_file(path: &Path) -> bool {
    let bytes = path.as_os_str().as_encoded_bytes();
    !(bytes.ends_with(b"/.") || bytes.ends_with(b"/..") || bytes == b"." || bytes == b"..")
        && path.file_name().is_some()
}

/// Whether `a` and `b` describe the same file (device and inode number).
pub(crate) fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

/// The error for a channel path that names a directory (named without trailing slashes, so
/// that the suggested file path in the message reads `dir/state.mmf`, not `dir//state.mmf`).
/// [`Options::exclusive_writer`] with [`Options::read_only`].
fn exclusive_read_only() -> Error {
    Error::InvalidOptions(
        "exclusive_writer claims the right to publish, which a read_only handle cannot use; \
         set one or the other"
            .into(),
    )
}

fn directory(name: &str) -> Error {
    Error::IsADirectory { name: name.into() }
}

pub(crate) fn check_platform() -> Result<()> {
    if cfg!(unix) {
        Ok(())
    } else {
        Err(Error::Unsupported)
    }
}

/// Whether the file at `path`, which this process may not open, may be a channel another user is
/// still creating: a channel whose mode lets group or others write keeps its creation mode (0600
/// less the umask) until its header is complete (`Options::mode`; so does any mode set by an
/// earlier mmf build, or by another implementation that sets it last), so a reader of another
/// user's channel is refused while it is being made, as when the writing service restarts with
/// remove and create. Told by the file: another user's, with no bit for group or others, and either
/// still empty (being allocated: waited on for the whole `init_timeout`, as an empty file of one's
/// own is) or born within `init_timeout` held between one and ten seconds. Birth time only: where
/// the file system keeps none (a tmpfs before Linux 5.18, a kernel without `statx`), only an
/// empty file counts, since the status-change time, which every
/// `touch` moves, would make a busy private channel look new for ever. [`Options::open`] waits on
/// it as on a channel not initialised yet, up to `init_timeout`, then refuses it: a private channel
/// of another user born within that window is refused after the wait, an older one at once.
pub(crate) fn being_made(path: &Path, init_timeout: Duration) -> bool {
    std::fs::metadata(path).is_ok_and(|meta| being_made_meta(&meta, init_timeout))
}

/// [`being_made`], of the file of metadata `meta`.
pub(crate) fn being_made_meta(meta: &std::fs::Metadata, init_timeout: Duration) -> bool {
    let window = init_timeout.clamp(Duration::from_secs(1), Duration::from_secs(10));
    let born = meta.created().ok().and_then(age);
    let young = meta.len() == 0 || born.is_some_and(|age| age <= window);
    private_to_another(meta) && young
}

/// Whether the file of `meta` is another user's with no bit for group or others: what a
/// channel made with a mode that lets others write is until its header is complete.
pub(crate) fn private_to_another(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    meta.uid() != os::euid() && meta.mode() & 0o077 == 0
}

/// How long ago the file of `meta` last changed status (created, allocated, chmodded, written
/// with `write` or touched; on a tmpfs not written through a mapping, while a disk file system
/// moves it when it writes mapped pages back), at least, if that can be told.
pub(crate) fn unchanged_for(meta: &std::fs::Metadata) -> Option<Duration> {
    use std::os::unix::fs::MetadataExt;
    age(UNIX_EPOCH
        + Duration::new(
            u64::try_from(meta.ctime()).ok()?,
            u32::try_from(meta.ctime_nsec()).ok()?,
        ))
}

/// How long ago `t`, a file's time, was at least. A time in whole seconds (no nanoseconds: a file
/// system that keeps no finer ones, such as ext2) may stand for any moment of that second, so a
/// second is taken off: right after the second turns, such a file reads a second old.
fn age(t: SystemTime) -> Option<Duration> {
    let whole = t
        .duration_since(UNIX_EPOCH)
        .is_ok_and(|d| d.subsec_nanos() == 0);
    let age = SystemTime::now().duration_since(t).ok()?;
    Some(if whole {
        age.saturating_sub(Duration::from_secs(1))
    } else {
        age
    })
}

/// `text` with each `from` in it that is not the start of a longer number (`/proc/self/fd/5`
/// in `/proc/self/fd/57/NAME`, another pinned directory's path: the diff review's) made `to`.
fn replace_whole(text: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(from) {
        let after = &rest[at + from.len()..];
        out.push_str(&rest[..at]);
        if after.starts_with(|c: char| c.is_ascii_digit()) {
            out.push_str(from);
        } else {
            out.push_str(to);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// `NotFound` creating a shared-memory channel: its directory is missing. Say which, and
/// whether `MMF_SHM_DIR` chose it.
fn missing_shm_dir(e: io::Error) -> io::Error {
    use crate::name::shm_dir_advice;
    let dir = os::shm_dir();
    // A directory that is there and takes no files (/proc, /sys) says ENOENT too.
    if dir.is_dir() {
        return explained(
            e,
            format!(
                "the shared-memory directory {} takes no files (a virtual file system such as \
                 /proc?); {}",
                dir.display(),
                shm_dir_advice("point MMF_SHM_DIR at a directory for channels")
            ),
        );
    }
    let why = shm_dir_advice(
        "MMF_SHM_DIR names it; create it or point MMF_SHM_DIR at a directory that exists",
    );
    explained(
        e,
        format!(
            "the shared-memory directory {} does not exist ({why})",
            dir.display()
        ),
    )
}

/// Why a channel cannot live on a file system that rounds its files' sizes up (hugetlbfs).
const UNKEPT_SIZE: &str = "this file system rounds a file's size up (hugetlbfs: to whole huge \
     pages), and a channel's file must keep the size its header gives; make it in /dev/shm or \
     on a disk's file system";

fn io_error(name: &str, path: &Path, op: &'static str, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::PermissionDenied {
        Error::PermissionDenied {
            name: name.to_owned(),
            path: path.to_owned(),
            cause: why_refused(path, e),
        }
    } else if e.raw_os_error() == Some(libc::ELOOP) {
        Error::Io {
            op,
            path: path.to_owned(),
            cause: explained(
                e,
                if path.parent() == Some(os::shm_dir().as_path()) {
                    "it is a symbolic link, which a shared-memory name is never opened through \
                     (something other than mmf put it there); `Channel::remove` (`mmf remove \
                     NAME`) deletes the link, not what it leads to"
                } else {
                    "its symbolic links loop"
                },
            ),
        }
    } else if e.raw_os_error() == Some(libc::ENXIO) {
        // A socket (or a device nothing serves) under the name: what it is, as a FIFO found
        // after the open is said, not "No such device or address".
        match std::fs::metadata(path).map(|meta| regular_file(&meta, name)) {
            Ok(Err(not_a_file)) => not_a_file,
            _ => Error::Io {
                op,
                path: path.to_owned(),
                cause: e,
            },
        }
    } else if e.raw_os_error() == Some(libc::ENOTDIR) {
        Error::Io {
            op,
            path: path.to_owned(),
            cause: not_a_directory(path, e),
        }
    } else if e.raw_os_error() == Some(libc::EMFILE) {
        Error::Io {
            op,
            path: path.to_owned(),
            cause: explained(
                e,
                "Too many open files: this process has as many open as its limit allows \
                 (`ulimit -n`); raise the limit, or close files it keeps open",
            ),
        }
    } else if e.raw_os_error() == Some(libc::EROFS) {
        Error::Io {
            op,
            path: path.to_owned(),
            cause: explained(
                e,
                "Read-only file system: its file system is mounted read-only, where a channel \
                 can be read (opened read-only: `Options::read_only`, `mmf read`) but not \
                 created or published to; remount it read-write for that",
            ),
        }
    } else if op == "mapping" && e.raw_os_error() == Some(libc::ENOMEM) {
        // Each handle is a mapping, and a process with tens of thousands of channels open
        // reaches the system's limit on mappings, which the OS says as memory short (a probe
        // with the limit lowered got the address-space advice, which did not apply).
        let text = match os::mappings() {
            Some((mappings, limit)) if mappings + 16 >= limit => format!(
                "Cannot allocate memory: this process has {mappings} mappings, and the system \
                 allows a process {limit} (`vm.max_map_count`; every channel handle is one); \
                 raise it (`sysctl vm.max_map_count=...`), or drop handles it keeps"
            ),
            _ => "Cannot allocate memory: this process may not map the channel's whole file (an \
                  address-space limit, `ulimit -v`, below its size, or too little memory)"
                .to_owned(),
        };
        Error::Io {
            op,
            path: path.to_owned(),
            cause: explained(e, text),
        }
    } else {
        Error::Io {
            op,
            path: path.to_owned(),
            cause: e,
        }
    }
}

/// `e` (an `ENOTDIR`), saying which file on the way to `path` (or `path` itself, a directory
/// to list) is not a directory: the OS says only "Not a directory" (an operator's review had
/// `mmf new /tmp/report/x` with a file at `/tmp/report`), and where that file is the
/// shared-memory directory, what to do.
fn not_a_directory(path: &Path, e: io::Error) -> io::Error {
    let Some(file) = path
        .ancestors()
        .find(|dir| std::fs::metadata(dir).is_ok_and(|m| !m.is_dir()))
    else {
        return e;
    };
    let shm = os::shm_dir();
    let text = if file == shm && (path == shm || path.parent() == Some(shm.as_path())) {
        format!(
            "Not a directory: the shared-memory directory {} is a file; {}",
            file.display(),
            crate::name::shm_dir_advice("point MMF_SHM_DIR at a directory for channels")
        )
    } else {
        format!(
            "Not a directory: {} is a file, not a directory, so nothing can be under it",
            file.display()
        )
    };
    explained(e, text)
}

/// `e` (an `EPERM`), telling why where `path`'s directory is sticky (mode `+t`, as `/dev/shm`
/// and `/tmp` are) and the file is another user's: there only its owner (or root) may remove
/// or replace it, whatever the directory's write bits say.
///
/// Where the file (or one on the way to it) is immutable or append-only (`chattr +i`, `+a`),
/// which refuses root too, that is said instead, with how to clear it: its owner and mode are
/// not what refuses (an ops review found root told to check them).
fn why_refused(path: &Path, e: io::Error) -> io::Error {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if e.raw_os_error() != Some(libc::EPERM) {
        return e;
    }
    // The file itself, or its directory (an immutable directory refuses new names and
    // removals in it).
    for (what, at) in [("the file", path), ("its directory", dir_of(path))] {
        if let Some(attr) = os::unchangeable(at) {
            let (flag, refuses) = match (attr, what) {
                ("immutable", "the file") => ("i", "writes, removal and replacement"),
                ("immutable", _) => ("i", "new files, removals and renames in it"),
                (_, "the file") => ("a", "all writes but appending, and removal"),
                _ => ("a", "removals and renames in it"),
            };
            let text = format!(
                "{e}: {what} is {attr} (`chattr +{flag}`, as `lsattr -d {at}` shows), which \
                 refuses {refuses} to every user, root included; `chattr -{flag} {at}` (as \
                 root) clears it",
                at = crate::error::shell_quoted(at),
            );
            return crate::error::explained_whole(e, text);
        }
    }
    let dir_sticky =
        std::fs::metadata(dir_of(path)).is_ok_and(|m| m.permissions().mode() & 0o1000 != 0);
    let owner = std::fs::symlink_metadata(path)
        .ok()
        .map(|m| m.uid())
        .filter(|&uid| uid != os::euid());
    match owner {
        Some(uid) if dir_sticky => {
            let text = format!(
                "{e}: its directory is sticky (mode +t, as /dev/shm and /tmp are), where only the \
                 file's owner (uid {uid}) or root may remove or replace it"
            );
            explained(e, text)
        }
        _ => e,
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A random 64-bit id, from the standard library's randomly keyed hasher (no extra dependency).
fn incarnation() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now_ns());
    h.write_u32(std::process::id());
    h.finish() | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read that the fast path left because a writer overtook its first copy reports that
    /// copy among its retries, the inline one as the slot one (`Meta::retries`: how many times
    /// the read started over); one the fast path did not try, none. The inline one was not
    /// counted.
    #[test]
    fn a_first_copy_lost_on_the_fast_path_is_a_retry() {
        for header_only in [true, false] {
            let ch = Options::new()
                .capacity(64)
                .header_only(header_only)
                .anonymous()
                .unwrap();
            ch.publish_raw(Tag::BYTES, b"small").unwrap();
            let mut buf = Vec::new();
            for (fast, retries) in [
                (Miss::Elsewhere, 0),
                (Miss::InlineOvertaken, 1),
                (Miss::SlotFailed, 1),
            ] {
                let t = Timeouts::default();
                let meta = ch
                    .read_general(&mut buf, ch.pin_entry(), 0, 0, fast, &t)
                    .unwrap();
                assert_eq!(
                    (meta.retries, buf.as_slice()),
                    (retries, &b"small"[..]),
                    "{fast:?}, header only: {header_only}"
                );
            }
        }
    }

    /// An exclusive lock met once the operation's time to wait is spent fails at once, and is
    /// said so; one met in time is waited for its grace, and said with the time waited (it
    /// said "waited 0 ms ... whoever holds it this long is another program" of the first).
    #[test]
    fn a_lock_met_too_late_is_said_so() {
        let path = std::env::temp_dir().join(format!("mmf-met-late-{}", std::process::id()));
        let holder = File::create(&path).unwrap();
        holder.lock().unwrap();
        let file = File::open(&path).unwrap();
        let start = Instant::now() - Duration::from_secs(1);
        let late = lock_shared_by(
            &file,
            start,
            Some(start + Duration::from_millis(100)),
            true,
            LOCK_GRACE,
        )
        .unwrap_err();
        // The number of milliseconds after `before` in `text`.
        let ms = |text: &str, before: &str| -> u128 {
            let rest =
                &text[text.find(before).unwrap_or_else(|| panic!("{text}")) + before.len()..];
            rest.split(' ').next().unwrap().parse().unwrap()
        };
        let text = late.to_string();
        assert!(text.contains("when its time to wait had run out"), "{text}");
        assert!(ms(&text, "met ") >= 1000, "{text}");
        let now = Instant::now();
        let held = lock_shared_by(&file, now, Some(now), true, LOCK_GRACE).unwrap_err();
        let text = held.to_string();
        assert!(ms(&text, "and mmf waited ") >= 50, "{text}");
        assert_eq!(held.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(late.kind(), io::ErrorKind::WouldBlock);
        // Free once no process another test is spawning holds a copy of the holder's
        // descriptor (`testing::once_released`); each try is a single one (the deadline passed).
        drop(holder);
        let free = crate::testing::once_released(|| {
            lock_shared_by(&file, start, Some(start), true, LOCK_GRACE).ok()
        });
        assert!(free.is_some());
        std::fs::remove_file(&path).unwrap();
    }

    /// A pinned directory's path in an explanation is said as the user's, but not where it is
    /// the start of another's (`/proc/self/fd/5` in `/proc/self/fd/57/t.mmf`).
    #[test]
    fn a_path_is_replaced_only_whole() {
        let text =
            "`chattr -i /proc/self/fd/57/t.mmf`, `lsattr -d /proc/self/fd/5` and /proc/self/fd/5/";
        assert_eq!(
            replace_whole(text, "/proc/self/fd/5", "/srv/run"),
            "`chattr -i /proc/self/fd/57/t.mmf`, `lsattr -d /srv/run` and /srv/run/"
        );
        assert_eq!(replace_whole("", "a", "b"), "");
        assert_eq!(replace_whole("a1 a", "a", "b"), "a1 b");
    }

    /// The OS's refusals that a limit of this process's makes say which limit, and what to
    /// change: its message alone ("Too many open files", "Cannot allocate memory") named none.
    #[test]
    fn refusals_by_a_limit_name_it() {
        let path = Path::new("/tmp/x.mmf");
        let said =
            |op, errno| io_error("x", path, op, io::Error::from_raw_os_error(errno)).to_string();
        assert!(said("opening", libc::EMFILE).contains("(`ulimit -n`); raise the limit"));
        // The OS's error stays behind mmf's words, errno and all, for a program to match.
        let errno = |op, errno| {
            io_error("x", path, op, io::Error::from_raw_os_error(errno))
                .os_error()
                .and_then(io::Error::raw_os_error)
        };
        assert_eq!(errno("opening", libc::EMFILE), Some(libc::EMFILE));
        assert_eq!(errno("mapping", libc::ENOMEM), Some(libc::ENOMEM));
        assert_eq!(errno("opening", libc::ELOOP), Some(libc::ELOOP));
        assert!(said("mapping", libc::ENOMEM).contains("an address-space limit, `ulimit -v`"));
        // ENOMEM elsewhere is said as the OS says it.
        assert!(!said("opening", libc::ENOMEM).contains("ulimit"));
    }

    /// A header that does not fit the size read before the map, in a file whose size has
    /// changed since, is a channel still being allocated (retried: `NotInitialized`), not one
    /// truncated; one whose size stayed what was read is the damage it says. (The race an
    /// operator's review found, made deterministic: a stale size handed in.)
    #[test]
    fn a_size_that_changed_since_it_was_read_is_a_channel_being_made() {
        let path = std::env::temp_dir().join(format!("mmf-grown-{}.mmf", std::process::id()));
        drop(
            Options::new()
                .capacity(4096)
                .create(Location::file(&path))
                .unwrap(),
        );
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let full = file.metadata().unwrap().len();
        let stale = full - 4096;
        let read = map_checked(&file, stale, "grown", &path, false);
        assert!(
            matches!(read, Err(Error::NotInitialized { .. })),
            "{:?}",
            read.err()
        );
        assert!(map_checked(&file, full, "grown", &path, false).is_ok());
        file.set_len(stale).unwrap();
        let read = map_checked(&file, stale, "grown", &path, false);
        assert!(
            matches!(read, Err(Error::Corrupt { .. })),
            "{:?}",
            read.err()
        );
        std::fs::remove_file(&path).unwrap();
    }

    /// A file time in whole seconds may stand for any moment of its second: its age is taken
    /// as a second less (a file system like ext2 made a channel being created look a second
    /// old right after the second turned); a finer one as it is.
    #[test]
    fn a_file_time_in_whole_seconds_is_a_second_younger() {
        let now = SystemTime::now();
        let whole =
            UNIX_EPOCH + Duration::from_secs(now.duration_since(UNIX_EPOCH).unwrap().as_secs());
        let fine = whole - Duration::from_millis(300);
        // Made up to a second before this second began: less than a second old, at least.
        assert!(age(whole - Duration::from_secs(1)).unwrap() < Duration::from_secs(1));
        assert_eq!(age(whole).unwrap(), Duration::ZERO);
        assert!(age(fine).unwrap() >= Duration::from_millis(300));
        assert_eq!(age(now + Duration::from_secs(5)), None, "in the future");
    }
    use crate::layout::{split_latest, NO_SLOT, PIN_SLOT, PIN_WANT_SLOTS};

    /// A writer made with `header_only(false)` keeps every value in a slot; another handle on
    /// the same channel may still publish in the header only.
    #[test]
    fn header_only_off_keeps_small_values_in_slots() {
        let name = format!("unit-header-only-{}", std::process::id());
        let slots = Options::new()
            .capacity(64)
            .header_only(false)
            .create(Location::shm(&name).unwrap())
            .unwrap();
        let other = Channel::open(&name).unwrap();
        let snap = slots.snapshot();
        let slot_of_latest = || split_latest(snap.region.word(H_LATEST).load(Relaxed)).1;
        for i in 0..3 * snap.layout.slots {
            slots
                .publish_raw(Tag::BYTES, format!("slot {i}").as_bytes())
                .unwrap();
            assert!(slot_of_latest() < snap.layout.slots, "publish {i}");
            assert_eq!(other.read_raw().unwrap().1, format!("slot {i}").as_bytes());
        }
        other.publish_raw(Tag::BYTES, b"header").unwrap();
        assert_eq!(slot_of_latest(), NO_SLOT);
        assert_eq!(slots.read_raw().unwrap().1, b"header");
        drop((slots, other));
        Channel::remove(&name).unwrap();
    }

    /// A handle takes its pin off after `PIN_KEPT_READS` reads in a row that needed none, so
    /// that writers go back to publishing small values in the header only.
    #[test]
    fn a_pin_is_taken_off_after_enough_reads_without_one() {
        let ch = Channel::anonymous(64).unwrap();
        let snap = ch.snapshot();
        let slot_of_latest = || split_latest(snap.region.word(H_LATEST).load(Relaxed)).1;
        ch.publish_raw(Tag::BYTES, b"one").unwrap();
        assert_eq!(slot_of_latest(), NO_SLOT);
        // As after a read that needed a retry: one pinned read to go.
        ch.eager_reads.0.store(1, Relaxed);
        assert_eq!(ch.read_raw().unwrap().1, b"one");
        let e = ch.pin_entry().unwrap();
        let pin = snap.region.word(snap.layout.pin(e, PIN_SLOT));
        assert_eq!(
            pin.load(Relaxed),
            PIN_WANT_SLOTS,
            "nothing to pin: wants slots"
        );
        ch.publish_raw(Tag::BYTES, b"two").unwrap();
        let slot = slot_of_latest();
        assert!(slot < snap.layout.slots, "a reader wants slots");
        for i in 0..PIN_KEPT_READS {
            assert_eq!(pin.load(Relaxed), PIN_WANT_SLOTS, "read {i}");
            assert_eq!(ch.read_raw().unwrap().1, b"two");
        }
        assert_eq!(pin.load(Relaxed), 0, "taken off");
        ch.publish_raw(Tag::BYTES, b"three").unwrap();
        assert_eq!(slot_of_latest(), NO_SLOT);
        assert_eq!(ch.read_raw().unwrap().1, b"three");
    }

    /// The move that a replacement and a put-back make where no rename refuses a taken name
    /// (the kernel's `renameat2` refused, a file system without `RENAME_NOREPLACE`): a free
    /// name is taken and the temporary one goes; a taken one is left as it is, and so is the
    /// file that was to move; `put_back` likewise.
    /// (`names_are_taken_and_left_as_carefully_without_renameat2` runs the channel's tests
    /// with `renameat2` refused.)
    #[test]
    fn link_noreplace_takes_only_a_free_name() {
        let dir = std::env::temp_dir().join(format!("mmf-link-noreplace-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let (from, to) = (dir.join(".mmf-new-0"), dir.join("x.mmf"));
        std::fs::write(&from, b"new").unwrap();
        std::fs::write(&to, b"taken").unwrap();
        let err = link_noreplace(&from, &to).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&to).unwrap(), b"taken");
        assert_eq!(std::fs::read(&from).unwrap(), b"new");
        std::fs::remove_file(&to).unwrap();
        link_noreplace(&from, &to).unwrap();
        assert_eq!(std::fs::read(&to).unwrap(), b"new");
        assert!(
            std::fs::symlink_metadata(&from).is_err(),
            "the temporary name goes"
        );
        let err = link_noreplace(&from, &dir.join("y.mmf")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        // And through `move_noreplace`, with whichever way this system has.
        std::fs::write(&from, b"newer").unwrap();
        let err = move_noreplace(&from, &to).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&to).unwrap(), b"new");
        // `put_back` with no rename that refuses: back under a free name, never over a file.
        NO_RENAME_NOREPLACE.set(true);
        let aside = dir.join(".mmf-new-1");
        std::fs::write(&aside, b"aside").unwrap();
        put_back(&aside, &to);
        assert_eq!(std::fs::read(&to).unwrap(), b"new");
        assert_eq!(std::fs::read(&aside).unwrap(), b"aside", "kept aside");
        std::fs::remove_file(&to).unwrap();
        put_back(&aside, &to);
        assert_eq!(std::fs::read(&to).unwrap(), b"aside");
        assert!(std::fs::symlink_metadata(&aside).is_err());
        NO_RENAME_NOREPLACE.set(false);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The size of a channel's file is looked at once it is mapped, so that a file system
    /// that rounds it up is refused by whatever kind it is: on hugetlbfs with its kind not
    /// looked at (which refuses it first), a 7,296 byte channel's file is 2 MiB there, and the
    /// creation is refused with the sizes, its file removed and its huge page given back.
    #[test]
    fn a_file_system_that_rounds_sizes_up_is_refused_by_the_size_made() {
        let free = || -> u64 {
            let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
            let line = info.lines().find(|l| l.starts_with("HugePages_Free:"));
            line.and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
                .unwrap_or(0)
        };
        let dir = std::env::temp_dir().join(format!("mmf-rounds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pool = std::fs::read_to_string("/proc/sys/vm/nr_hugepages").unwrap_or_default();
        // 2 MiB huge pages only: two of 1 GiB (aarch64 with 64 KiB pages) are not taken for a
        // test, and the sizes below are 2 MiB's.
        let two_mib = std::fs::read_to_string("/proc/meminfo").is_ok_and(|info| {
            info.lines()
                .any(|l| l.split_whitespace().eq(["Hugepagesize:", "2048", "kB"]))
        });
        let mounted = two_mib
            && os::euid() == 0
            && std::process::Command::new("mount")
                .args(["-t", "hugetlbfs", "none"])
                .arg(&dir)
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        let grown = mounted
            && pool.trim().parse::<u64>().is_ok_and(|n| {
                std::fs::write("/proc/sys/vm/nr_hugepages", (n + 2).to_string()).is_ok()
            });
        // The pool and the mount are given back however the test ends.
        struct Undo<'a>(&'a Path, Option<&'a str>, bool);
        impl Drop for Undo<'_> {
            fn drop(&mut self) {
                if let Some(pool) = self.1 {
                    let _ = std::fs::write("/proc/sys/vm/nr_hugepages", pool.trim());
                }
                if self.2 {
                    // Lazily: the refused mapping stays until this process ends, since
                    // hugetlbfs refuses a `munmap` of a length that is not whole huge pages
                    // (memmap2's drop asks for the channel's 7,296 bytes), and keeps the mount
                    // busy.
                    let _ = std::process::Command::new("umount")
                        .args(["-l"])
                        .arg(self.0)
                        .status();
                }
                let _ = std::fs::remove_dir(self.0);
            }
        }
        let _undo = Undo(&dir, grown.then_some(pool.as_str()), mounted);
        if grown && free() > 0 {
            let before = free();
            KIND_UNJUDGED.set(true);
            let made = Options::new()
                .capacity(1024)
                .create(Location::file(dir.join("x.mmf")));
            KIND_UNJUDGED.set(false);
            let text = made.map(drop).unwrap_err().to_string();
            assert!(text.contains("made 2097152 bytes, not 7296"), "{text}");
            assert_eq!(
                std::fs::read_dir(&dir).unwrap().count(),
                0,
                "the file is removed"
            );
            assert_eq!(free(), before, "its huge page is given back");
        } else {
            crate::testing::skipped("no hugetlbfs with a free huge page here (needs root)");
        }
    }

    /// A removal by name removes only the file it was told of: another file renamed over the
    /// name stays there (and nothing is left under a `.mmf-new-` name), the file told of goes,
    /// and a directory told of is put back where it was, with the error; with and without a
    /// rename that refuses a taken name (then: renamed aside plainly, put back with a link).
    #[test]
    fn unlink_same_removes_only_the_file_it_was_told_of() {
        for without in [false, true] {
            NO_RENAME_NOREPLACE.set(without);
            unlink_same_removes_only_the_file_it_was_told_of_once();
        }
        NO_RENAME_NOREPLACE.set(false);
    }

    fn unlink_same_removes_only_the_file_it_was_told_of_once() {
        use std::os::unix::fs::MetadataExt;
        let dir = std::env::temp_dir().join(format!("mmf-unlink-same-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let location = Location::file(dir.join("x.mmf"));
        let path = location.path().unwrap();
        std::fs::write(&path, b"judged").unwrap();
        let judged = std::fs::metadata(&path).unwrap();
        std::fs::write(dir.join("new"), b"renamed over").unwrap();
        std::fs::rename(dir.join("new"), &path).unwrap();
        let before = std::fs::metadata(&path).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(!unlink_same(&location, &path, &judged).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"renamed over");
        // Not even renamed aside and back (a rename sets the status-change time): another
        // process's live channel never leaves its name.
        let after = std::fs::metadata(&path).unwrap();
        assert_eq!(
            (before.ctime(), before.ctime_nsec()),
            (after.ctime(), after.ctime_nsec())
        );
        let names = |dir: &Path| -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        assert_eq!(names(&dir), ["x.mmf"]);
        let now = std::fs::metadata(&path).unwrap();
        assert!(unlink_same(&location, &path, &now).unwrap());
        assert!(names(&dir).is_empty());
        std::fs::create_dir(&path).unwrap();
        let folder = std::fs::metadata(&path).unwrap();
        assert!(unlink_same(&location, &path, &folder).is_err());
        assert!(path.is_dir());
        assert_eq!(names(&dir), ["x.mmf"]);
        let err = unlink_same(&location, &dir.join("gone"), &now).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
