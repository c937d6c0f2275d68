//! Following a channel by its name: [`Follower`].
//!
//! A [`Channel`] handle is bound to the channel's memory, not to its name. When the writing
//! service restarts and creates its channel anew (`remove` then `create`, or
//! [`create_or_replace`](crate::Options::create_or_replace)), a handle opened before keeps
//! reading and waiting on the old memory, which no writer reaches any more, and the new
//! channel's generations start again from 1. A `Follower` holds a handle for a name and moves
//! it to the new channel when the name leads elsewhere; it also waits for a channel that does
//! not exist yet.
//!
//! With the `async` feature, [`Follower::open_async`] and [`Follower::changed`] are the same
//! waits as futures.

use std::time::{Duration, Instant};

use crate::channel::{Channel, Options};
use crate::error::{Error, Result};
use crate::name::{Location, ToLocation};
use crate::stop::Until;

/// How often a wait looks whether the name still leads to the followed channel.
pub(crate) const LOOK_EVERY: Duration = Duration::from_millis(100);

/// A channel followed by its name: waited for until it exists, and followed to a new channel
/// when it is removed and created again under the same name.
///
/// ```
/// use std::time::Duration;
/// use mmf::{Change, Channel, Follower, Tag};
///
/// # let name = format!("follow-doc-{}", std::process::id());
/// let writer = Channel::create(&name, 64)?;
/// writer.publish_raw(Tag::TEXT, b"first life")?;
/// let mut follower = Follower::open(&name, Duration::from_secs(1))?;
/// let seen = follower.channel().generation();
///
/// // The writing service restarts: its channel goes, and a wait says so ...
/// drop(writer);
/// Channel::remove(&name)?;
/// assert_eq!(follower.wait(seen, Duration::from_millis(10))?, None);
/// assert!(follower.is_gone());
/// // ... and a new channel comes under the same name.
/// let writer = Channel::create(&name, 64)?;
/// writer.publish_raw(Tag::TEXT, b"second life")?;
///
/// // A plain handle would wait on the old memory for ever; the follower moves.
/// assert_eq!(follower.wait(seen, Duration::from_secs(5))?, Some(Change::Replaced));
/// assert_eq!(follower.channel().read_raw()?.1, b"second life");
/// assert!(!follower.is_gone());
/// # Channel::remove(&name)?;
/// # Ok::<(), mmf::channel::Error>(())
/// ```
pub struct Follower {
    location: Location,
    /// What each open of a channel under the name is made with ([`Options::follow`]).
    options: Options,
    channel: Channel,
    appeared: bool,
    /// When a wait last looked whether the name still leads to `channel`.
    looked: Instant,
    /// What that look found: the name leads nowhere (removed, not created again yet).
    gone: bool,
    /// Since when looks have found no file under the name: for its first
    /// [`MISSING_FAST_FOR`], the name is looked at every 10 ms, so that a writer that removes
    /// its channel and creates it again (a restart) is followed at once.
    missing_since: Option<Instant>,
    /// The followed channel's `retired` word as the last look read it. Once it reads otherwise
    /// (an mmf process removed the name, or renamed another channel over it, and woke the
    /// channel's sleepers), a wait returns to look at the name at once. Read before the look,
    /// so that a retirement during the look is looked at again, and a stray value that a peer
    /// wrote costs one look, not a loop.
    mark: u64,
    /// How many looks at the name it made (tests count them).
    #[cfg(test)]
    looks: usize,
    /// A new channel under the name that a look found still being created: kept here, not in
    /// a wait or a future, so that waits with short timeouts, and a future dropped and made
    /// again (a `select!` loop), still judge one whose creator died (or is slow) 250 ms after
    /// the first look found it, not 250 ms after each.
    creating: Option<Creating>,
    /// No wait of [`read_after_into`](Follower::read_after_into) before then: it returned an
    /// error of the channel or the name, which a loop that logs and goes on must not get
    /// again at once.
    pause_until: Option<Instant>,
    /// The generation whose value the last call of `read_after_into` refused (damaged, or never
    /// copied whole): not given out, and waited past (see [`Refused`]).
    refused: Refused,
    /// The refused generation last given to [`wait_past`](Follower::wait_past), as judged when
    /// it was first given.
    given_refused: Refused,
}

/// The name, the channel it leads to, and what the last look found; not the bookkeeping of
/// waits (times of looks, a creation being waited for).
impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("location", &self.location)
            .field("channel", &self.channel)
            .field("appeared", &self.appeared)
            .field("gone", &self.gone)
            .finish_non_exhaustive()
    }
}

/// What [`Follower::wait`] saw. Non-exhaustive: a `match` on it needs a `_` arm, for what
/// later followers may tell (of a stream channel, say).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Change {
    /// The followed channel's generation moved past the one waited on; the new generation.
    Newer(u64),
    /// The name now leads to another channel, which [`Follower::channel`] is from now on. Its
    /// generations are not comparable with the old one's: every value it holds is new, and it
    /// may hold none yet (its writer creates it, then publishes): wait on from generation 0.
    Replaced,
}

impl Follower {
    /// Opens the channel at `location` (a [`Location`], a name or a path: [`ToLocation`]),
    /// waiting until `until` is over for it to be created (a timeout, a deadline, a
    /// [`Stop`](crate::Stop): [`Until`]). Opens
    /// read-write where allowed and read-only otherwise; looks for it every 100 ms. Its waits
    /// sleep on a futex while its handle holds a reader-pin entry, and poll otherwise, waking
    /// up to a thousand times a second while nothing changes: a read-only handle, or one of
    /// more handles than the channel has entries for ([`Options::readers`]; see
    /// [`is_pinned`](crate::Channel::is_pinned) of [`channel`](Follower::channel)).
    ///
    /// A channel that is there but not initialised yet is given 250 ms to finish
    /// ([`Options::init_timeout`]'s default), even past a sooner deadline (not past a stop),
    /// counted from the first look that found a channel being made under the name: new files
    /// put there one after another get no 250 ms each. After that, one still being made is
    /// waited for as a missing one is: its file empty (being allocated: about a second a GiB on
    /// a tmpfs), or found empty before, or a header of zeros only (allocated, not written yet),
    /// and held open by a process, as its creator holds it
    /// ([`host::in_use`](crate::host::in_use)). One in shared memory that no process holds was
    /// left half-made by a creator that died: it is waited past as a missing name is, for the
    /// channel that replaces it ([`Options::open_or_create`] of the restarted writer clears
    /// such a file, as [`Options::create_or_replace`], `mmf new --force` and `mmf remove` do),
    /// and is [`Error::NotInitialized`] when `until`'s deadline passes. Given up on: such a
    /// file at a file path (nothing replaces one by itself, and it may be a user's file that
    /// starts with zeros), one that every look finds held for 200 ms and not what a creator at
    /// work leaves (a live channel whose magic another process zeroed; the instant another
    /// process's open holds a dead creator's file does not count), and another user's channel
    /// that may still have its creation mode (see [`Options::init_timeout`]).
    ///
    /// Not told apart: a process that holds an empty file under the name (or one whose first
    /// 512 bytes are zeros, such as a preallocated data file) and never makes it a channel is
    /// waited for as a creator is, until `until` is over (or for as long as it holds it, where
    /// there is none: `open_async` (feature `async`), and a later
    /// [`wait`](Follower::wait)). Given up on: a creator stopped half-way
    /// through writing its header for 250 ms (`SIGSTOP`), and another user's creator whose
    /// `chmod` comes more than a second after the file was born when no look found the file
    /// empty (a small channel's creator held up after allocating). That `chmod` is the last
    /// step only for a mode that lets group or others write: mmf sets one that lets them read
    /// alone before it allocates ([`Options::mode`]), and such a file is judged as one's own.
    /// Whether another user's file still in its creation mode is held is asked of
    /// `/proc/locks`, which does not list the locks of processes in another PID namespace (a
    /// container sharing `/dev/shm`): such a creator is given the 250 ms only.
    ///
    /// # Errors
    ///
    /// Without waiting for the rest of `until`, what waiting cannot change:
    /// - [`Error::InvalidName`]: a name that cannot be;
    /// - [`Error::NotFound`]: a location where no channel can appear
    ///   ([`Location::can_appear`]);
    /// - [`Error::NotInitialized`]: a channel not initialised that is given up on, as said
    ///   above (at a file path, or held and not what a creator at work leaves);
    /// - [`Error::PermissionDenied`]: a channel this process may not even read (another user's
    ///   that may still have its creation mode once the wait for it is over);
    /// - [`Error::WrongMagic`], [`Error::NotAFile`], [`Error::IsADirectory`],
    ///   [`Error::UnsupportedVersion`], [`Error::UnsupportedKind`], [`Error::Corrupt`],
    ///   [`Error::Io`]: as for [`Channel::open`].
    ///
    /// When `until` is over:
    /// - [`Error::NotFound`]: its deadline passed with no channel under the name (with how
    ///   long it waited, where it looked more than once);
    /// - [`Error::NotInitialized`]: its deadline passed with a shared-memory channel left
    ///   half-made by a creator that died under the name;
    /// - [`Error::BeingCreated`]: its deadline, and the 250 ms, passed with a channel still
    ///   being made there;
    /// - [`Error::Stopped`]: one of its [`Stop`](crate::Stop)s was turned.
    ///
    /// ```
    /// use mmf::{Channel, Follower, Tag};
    /// use std::time::Duration;
    /// # let name = format!("follower-open-doc-{}", std::process::id());
    /// # let name2 = name.clone();
    /// // The worker may start after this reader: the open waits up to 5 s for the name.
    /// let worker = std::thread::spawn(move || -> mmf::channel::Result<()> {
    ///     std::thread::sleep(Duration::from_millis(50));
    ///     Channel::create(&name2, 64)?.publish_raw(Tag::TEXT, b"done")?;
    ///     Ok(())
    /// });
    /// let follower = Follower::open(&name, Duration::from_secs(5))?;
    /// worker.join().unwrap()?;
    /// assert_eq!(follower.channel().read_raw()?.1, b"done");
    /// # Channel::remove(&name)?;
    /// # Ok::<(), mmf::channel::Error>(())
    /// ```
    pub fn open(location: impl ToLocation, until: impl Into<Until>) -> Result<Follower> {
        Options::new().follow(location, until)
    }

    /// [`open`](Follower::open) of a location already read, each open made with `options`.
    fn open_parsed(location: &Location, until: &Until, options: &Options) -> Result<Follower> {
        let start = Instant::now();
        let mut appeared = false;
        let mut creating = None;
        // The first look that found a channel being made, whichever file it was: files put
        // under the name one after another (each young when found) do not hold the call past
        // its deadline for longer than one would.
        let mut being_made_since = None;
        loop {
            let now = Instant::now();
            // Read before the look: a channel created before a stop (by a creator whose exit
            // turned it) is still found, by this look or the one after the stop.
            let stopped = until.stop_reason().map(|reason| Error::Stopped {
                name: location.to_string(),
                reason,
            });
            let pause = match try_open(location, options) {
                Ok(channel) => return Ok(Follower::holding(location, options, channel, appeared)),
                Err(e @ Error::NotFound { .. }) => {
                    if !location.can_appear() {
                        return Err(e);
                    }
                    // A stop ends the wait with what says so, not with the timeout's error.
                    if let Some(stopped) = stopped {
                        return Err(stopped);
                    }
                    if until.deadline_passed() {
                        // Said to have waited where it looked more than once.
                        return Err(match e {
                            Error::NotFound {
                                name,
                                missing_dir,
                                file_here,
                                ..
                            } if appeared => Error::NotFound {
                                name,
                                waited: Some(start.elapsed()),
                                missing_dir,
                                file_here,
                            },
                            e => e,
                        });
                    }
                    creating = None;
                    LOOK_EVERY
                }
                // Another program's exclusive `flock` on the channel's file (mmf's own holders
                // keep one for an instant): looked at again until the deadline, where the
                // open gave up after its 50 ms of grace whatever the timeout (a chaos test's
                // `read --wait --timeout 2s`). The channel was there: it did not appear.
                Err(e) if e.is_locked_out() => {
                    if let Some(stopped) = stopped {
                        return Err(stopped);
                    }
                    if until.deadline_passed() {
                        // Said with the whole wait, not the last open's grace.
                        return Err(match e {
                            Error::Io { op, path, .. } => Error::Io {
                                op,
                                path,
                                cause: crate::channel::held_too_long(start.elapsed()),
                            },
                            e => e,
                        });
                    }
                    until.sleep(INIT_LOOK_EVERY);
                    continue;
                }
                // A channel being created when we look is one that appeared, as a missing one
                // is.
                Err(e) => match judge(&e, location, &mut creating, now, false) {
                    // Given its 250 ms past a shorter timeout, as `Options::open` waits; not
                    // past a stop.
                    Some(_) if stopped.is_some() => {
                        return Err(stopped.unwrap_or(e));
                    }
                    // A creator died before it finished the channel: waited past, as a
                    // missing name is, for the channel that replaces it (at the deadline, its
                    // error below, which says how to clear it).
                    Some(Creation::Abandoned) if !until.deadline_passed() => {
                        // No creation under way: a channel found being made later gets its
                        // 250 ms past the deadline, as after a missing name.
                        being_made_since = None;
                        LOOK_EVERY
                    }
                    Some(judged @ (Creation::Young | Creation::Slow)) => {
                        let since = *being_made_since.get_or_insert(now);
                        // Past the deadline: a slow creation, or files found young for 250 ms.
                        if until.deadline_passed()
                            && (judged == Creation::Slow || now - since >= INIT_WAIT)
                        {
                            return Err(Error::BeingCreated {
                                name: location.to_string(),
                            });
                        }
                        if judged == Creation::Young {
                            Duration::from_millis(1)
                        } else {
                            LOOK_EVERY
                        }
                    }
                    // Removed since the open: looked at again, as a missing name is.
                    Some(Creation::Gone) => INIT_LOOK_EVERY,
                    Some(Creation::Abandoned) | None => match open_again(e, location, options) {
                        // Removed since the look: looked at again, as a missing name is.
                        Err(Error::NotFound { .. }) => INIT_LOOK_EVERY,
                        opened => {
                            return opened.map(|ch| Follower::holding(location, options, ch, true))
                        }
                    },
                },
            };
            appeared = true;
            if until.deadline_passed() && !until.stopped() {
                std::thread::sleep(pause); // a young channel's 1 ms, past the deadline
            } else {
                // At once when a stop comes: the next turn looks once more, and ends.
                until.sleep(pause);
            }
        }
    }

    /// Whether the channel did not exist yet when [`open`](Follower::open) was called (or the
    /// `open_async` future first polled, feature `async`): then every value it holds is new to
    /// the caller.
    ///
    /// Only the call or future that waited knows it. A follower opened by an `open_async`
    /// future made anew on every turn of a `select!` loop comes from the turn that found the
    /// channel there at once, and says `false` though the caller waited for it: a consumer that
    /// then starts from the generation already there skips the first value. Pin the future
    /// once, outside the loop, and poll that one in every turn; or start from 0
    /// (`values(0)`, feature `async`), which gives the value already there too.
    pub fn appeared(&self) -> bool {
        self.appeared
    }

    /// The channel the name leads to, as of the last wait.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// The name followed.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Whether the last look of a [`wait`](Follower::wait) found the name leading nowhere: the
    /// channel was removed and no channel has been created under the name since (the wait goes on,
    /// for one that is), or one is still being created there, 250 ms after the wait first found it
    /// so, or a shared-memory channel was left there half-made by a creator that died (the wait
    /// goes on, for the channel that replaces it). A caller may say so: a wait on a removed name
    /// looks like a wait on an idle channel.
    pub fn is_gone(&self) -> bool {
        self.gone
    }

    /// Waits until the followed channel's generation moves past `since` ([`Change::Newer`]) or the
    /// name leads to another channel ([`Change::Replaced`]: the follower now holds that one);
    /// `None` if `until` is over first (a timeout, a deadline, a [`Stop`](crate::Stop): [`Until`]).
    /// A value already newer than `since` returns at once.
    ///
    /// While it waits, and while values keep coming, it looks at least every 100 ms whether
    /// the name still leads to the channel (a name removed and not created again is waited on,
    /// looked at every 10 ms for its first second, and values still published to the channel
    /// it held are returned meanwhile), and whether
    /// the channel is still whole: one truncated, or whose header was overwritten, under the
    /// mapping is an error ([`Channel::verify`]'s), not a wait for ever on memory no writer
    /// reaches. A damaged current value (a crash's, which `verify` also reports) is waited past:
    /// the next publish replaces it. A new channel found being created is looked at every
    /// 10 ms and given 250 ms to finish; after that, one still being made (as
    /// [`open`](Follower::open) tells it) is looked at every 100 ms, for as long as it is, and
    /// [`is_gone`](Follower::is_gone) meanwhile. That is counted from the first look that
    /// found it so, across waits: one wait may return `None` meanwhile. A writer
    /// that goes on publishing to the old channel after a new one took its name (a service's
    /// old instance still stopping) does not keep the follower there: the new channel is
    /// [`Change::Replaced`] within 100 ms (a value the old channel got meanwhile may be
    /// skipped: the name's latest value is the new channel's).
    ///
    /// Where an mmf process removed the name or replaced the channel
    /// ([`Channel::remove`], [`Options::create_or_replace`], `mmf remove`, `mmf new --force`),
    /// the wait looks at once, not at its next look: that process marks the old channel retired
    /// (a word of its header) and wakes its sleepers. A writer that restarts with
    /// `create_or_replace` is [`Change::Replaced`] within microseconds (the wait sleeps on the
    /// mark's word too, where the kernel has `futex_waitv`, Linux 5.16 and later; without it a
    /// mark that comes right before the sleep is seen within 100 ms), and one that removes its
    /// channel and creates it again within 10 ms of the creation. (A name removed by other means, `rm`, is seen at the next look.)
    ///
    /// # Errors
    ///
    /// - [`Error::Truncated`], [`Error::Corrupt`]: the followed channel was truncated, or its
    ///   header overwritten, under the mapping, as said above;
    /// - a new channel under the name that cannot be opened: [`open`](Follower::open)'s errors
    ///   of what waiting cannot change, such as [`Error::WrongMagic`] for a file that is no
    ///   channel, or [`Error::NotInitialized`] for one given up on as `open` gives it up (a
    ///   shared-memory channel left half-made by a creator that died is waited past, as a
    ///   removed name is: [`is_gone`](Follower::is_gone));
    /// - [`Error::PermissionDenied`], [`Error::Io`]: the file under the name, or the followed
    ///   channel's own, could not be inspected (`stat`, `fstat`).
    pub fn wait(&mut self, since: u64, until: impl Into<Until>) -> Result<Option<Change>> {
        self.wait_until(since, &until.into())
    }

    /// [`wait`](Follower::wait), bounded by `until`.
    fn wait_until(&mut self, since: u64, until: &Until) -> Result<Option<Change>> {
        loop {
            let every = self.look_every();
            // `None` early too when the channel was marked retired: then look at once.
            let newer =
                self.channel
                    .wait_unless_retired(since, &until.within(every), Some(self.mark));
            if newer.is_none() || self.looked.elapsed() >= every {
                if let Some(channel) = self.look(Instant::now())? {
                    self.channel = channel;
                    return Ok(Some(Change::Replaced));
                }
            }
            if let Some(g) = newer {
                return Ok(Some(Change::Newer(g)));
            }
            if until.is_over() {
                // One more look at the generation: a value published before a stop that came
                // after the wait above is returned.
                let g = self.channel.generation();
                return Ok((g > since).then_some(Change::Newer(g)));
            }
        }
    }

    /// Waits for a value newer than generation `since` under the followed name, copies it into
    /// `buf` (reused: no allocation once it is large enough), sets `since` to its generation and
    /// returns its [`Meta`](crate::Meta); `None` if `until` is over first (a timeout:
    /// `Duration::ZERO` only looks, `Duration::MAX` has no limit; a deadline; a
    /// [`Stop`](crate::Stop): [`Until`]). A consumer's loop over every newest value, across the
    /// writer's restarts: [`Channel::read_after_into`] for a followed name, as `values` is for
    /// async code (feature `async`). The `until` bounds the wait; a value found newer is then
    /// copied, which writers that keep overtaking the copy can draw out to
    /// [`Options::read_timeout`] (1 s by default).
    ///
    /// `since` is the loop's own count, and this keeps it: a value newer than it comes at once.
    /// When the name leads to a new channel ([`Change::Replaced`]), `since` is set to 0 (every
    /// value of the new channel is new, from generation 1), also when `until` is then over
    /// before its first value. Tell values apart across restarts by the channel's
    /// [`incarnation`](Channel::incarnation) and the generation. A caller that also calls
    /// [`wait`](Follower::wait) on the follower keeps the count itself: after its
    /// `Change::Replaced`, `since` must be 0.
    ///
    /// A consumer that keeps its place across its own restarts saves both, the incarnation of
    /// `follower.channel()` right after a value and that value's generation, and starts again
    /// from the generation only in the same channel: `let mut since = if
    /// follower.channel().incarnation() == saved_incarnation { saved_generation } else { 0 };`
    /// (a generation of another channel means nothing in this one; compared with it, that
    /// channel's first values would look old). `mmf read --after GEN --incarnation INC` does
    /// the same.
    ///
    /// # Errors
    ///
    /// Every error leaves the follower usable, and a loop logs it and goes on (none says that
    /// the loop should stop; the name may be made anew at any time):
    /// - a value a read finds damaged ([`Error::mended_by_publish`]), or one that writers kept
    ///   overtaking or a crash left half written ([`Error::Contended`], after
    ///   [`Options::read_timeout`]): `since` stays as it was, the follower keeps the refused
    ///   generation, and the next call waits for another value past `since`: the publish that
    ///   replaces it. That generation may be nobody's (another process's stray write of the
    ///   header's count, far ahead of the writer's own): the writer's next value, below it, is
    ///   still new;
    /// - an error of the channel or the name ([`wait`](Follower::wait)'s: truncated or
    ///   overwritten under the mapping, a new channel under the name that cannot be opened):
    ///   the next call first waits out 100 ms (within its `until`), so that a loop that logs
    ///   errors does not spin, then looks again, and takes up a channel made anew.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mmf::{Channel, Follower, Tag};
    ///
    /// # let name = format!("follow-read-after-doc-{}", std::process::id());
    /// let writer = Channel::create(&name, 64)?;
    /// writer.publish_raw(Tag::TEXT, b"first")?;
    /// let mut follower = Follower::open(&name, Duration::from_secs(5))?;
    ///
    /// let (mut seen, mut buf) = (0, Vec::new());
    /// let meta = follower.read_after_into(&mut seen, &mut buf, Duration::from_secs(5))?;
    /// assert_eq!((meta.map(|m| m.generation), seen, &buf[..]), (Some(1), 1, &b"first"[..]));
    /// // Nothing newer yet.
    /// assert!(follower.read_after_into(&mut seen, &mut buf, Duration::ZERO)?.is_none());
    ///
    /// // The writer restarts: its new channel's values come, from generation 1.
    /// drop(writer);
    /// Channel::remove(&name)?;
    /// let writer = Channel::create(&name, 64)?;
    /// writer.publish_raw(Tag::TEXT, b"second life")?;
    /// let meta = follower.read_after_into(&mut seen, &mut buf, Duration::from_secs(5))?;
    /// assert_eq!((meta.map(|m| m.generation), &buf[..]), (Some(1), &b"second life"[..]));
    /// # Channel::remove(&name)?;
    /// # Ok::<(), mmf::channel::Error>(())
    /// ```
    pub fn read_after_into(
        &mut self,
        since: &mut u64,
        buf: &mut Vec<u8>,
        until: impl Into<Until>,
    ) -> Result<Option<crate::Meta>> {
        let until = until.into();
        if let Some(at) = self.pause_until.take() {
            until.sleep(at.saturating_duration_since(Instant::now()));
            // The wait is over before the pause's end (its deadline, or a stop): no look at a
            // name that just failed, which a loop that goes on after a stop would make a spin.
            if Instant::now() < at {
                self.pause_until = Some(at);
                return Ok(None);
            }
        }
        loop {
            let newer = match self.wait_past_until(*since, self.refused, &until) {
                Ok(None) => return Ok(None),
                // Another channel: every value it holds is new (it may hold none yet).
                Ok(Some(Change::Replaced)) => {
                    *since = 0;
                    self.refused = Refused::default();
                    if !until.is_over() {
                        continue;
                    }
                    // Out of time: the new channel's value if it has one, without another
                    // look at the name (a name replaced again and again would keep this
                    // call going past its timeout).
                    match self.channel.generation() {
                        0 => return Ok(None),
                        g => g,
                    }
                }
                Ok(Some(Change::Newer(g))) => {
                    self.refused.woke(g);
                    g
                }
                Err(e) => {
                    self.pause_until = Some(Instant::now() + LOOK_EVERY);
                    return Err(e);
                }
            };
            let mut read = self.channel.read_into(buf);
            if matches!(&read, Err(e) if self.refused.read_again(e, newer, &self.channel)) {
                read = self.channel.read_into(buf);
            }
            match read {
                Ok(meta) if meta.generation > *since => {
                    *since = meta.generation;
                    self.refused = Refused::default();
                    return Ok(Some(meta));
                }
                // A peer moved `latest` back between the wait and the read: wait again.
                Ok(_) if !until.is_over() => {}
                Ok(_) => return Ok(None),
                // The value alone is damaged, or could not be copied whole: the next publish
                // mends it. Any other error (the channel truncated under the read) is the
                // channel's, looked at again after a pause.
                Err(e) => {
                    self.refused = Refused::at(newer, &self.channel);
                    if pauses_after(&e) {
                        self.pause_until = Some(Instant::now() + LOOK_EVERY);
                    }
                    return Err(e);
                }
            }
        }
    }

    /// [`wait`](Follower::wait) for a generation past `since` other than `refused`: the one of
    /// a value the caller's read refused (damaged, or never copied whole), which the next
    /// publish replaces. `refused` may be nobody's generation (another process's stray write
    /// of the header's count, far ahead of the writer's own): the writer's next value, below
    /// it, is new all the same, found within 10 ms (no wait past `refused` wakes for it), while
    /// the name is looked at every 100 ms as `wait` does. A stray write of the writer's next
    /// generation is told by the writer's own count (the header's `written`) below `refused`
    /// when it is first given: the wait returns `refused` itself, once, when the writer's count
    /// reaches it (the writer published that generation); a value read whole then is new,
    /// though its generation is the refused one. The count is read when the generation is
    /// first given, or told with [`refuse`](Follower::refuse) right after the read that
    /// failed (better: a publish between the two is then not taken for the stray write's).
    /// With `refused` `None`, `wait`.
    /// [`read_after_into`](Follower::read_after_into) keeps the refused generation itself;
    /// this is for a loop of the caller's own (the `mmf` command's `watch` and `read`), which
    /// gives the same `refused` to each wait until it reads a value.
    ///
    /// # Errors
    ///
    /// As [`wait`](Follower::wait).
    pub fn wait_past(
        &mut self,
        since: u64,
        refused: Option<u64>,
        until: impl Into<Until>,
    ) -> Result<Option<Change>> {
        // Judged against the writer's count when first given (see `Refused`): a loop gives
        // the same generation to wait after wait.
        let past = self.given(refused);
        let waited = self.wait_past_until(since, past, &until.into());
        // Kept through a wait given no refused generation: the one between a `refuse` that
        // asked for a second read and that read.
        match &waited {
            Ok(Some(Change::Replaced)) => self.given_refused = Refused::default(),
            _ if refused.is_none() => {}
            Ok(Some(Change::Newer(g))) => {
                let mut past = past;
                past.woke(*g);
                self.given_refused = past;
            }
            _ => self.given_refused = past,
        }
        waited
    }

    /// Tells the follower that the caller's read of the value of `generation` failed (damaged,
    /// or not copied whole), for the [`wait_past`](Follower::wait_past) calls that follow with
    /// it as `refused`: judged now against the writers' own count, before the caller says so
    /// anywhere (a write to a blocked pipe in between let a publish of that generation be
    /// taken for the stray write's, and skipped). Returns `true` the first time a generation
    /// is refused if the writers' count has reached it already: the writer may have published
    /// it after the read (over a stray write of `latest` that took its number first), so read
    /// once more before saying the value is damaged; `false` once it was judged, and where
    /// the count is below it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mmf::{Channel, Follower, Tag};
    /// # let name = format!("doc-refuse-{}", std::process::id());
    /// let ch = Channel::create(&name, 64)?;
    /// ch.publish_raw(Tag::TEXT, b"one")?;
    /// let mut f = Follower::open(&name, Duration::ZERO)?;
    /// // (Say a read of generation 1 failed.) The writers' count is at 1: read again once.
    /// assert!(f.refuse(1));
    /// assert!(!f.refuse(1), "judged already");
    /// # Channel::remove(&name)?;
    /// # Ok::<(), mmf::channel::Error>(())
    /// ```
    pub fn refuse(&mut self, generation: u64) -> bool {
        if self.given_refused.gen == Some(generation) {
            return false;
        }
        self.given_refused = Refused::at(generation, &self.channel);
        !self.given_refused.ahead
    }

    /// The channel's generation now, if [`wait_past`](Follower::wait_past) with `since` and
    /// `refused` would return it at once (a value worth a read): past `since`, and not the
    /// refused one, unless the writers' count reached that since it was refused ahead of it.
    /// For a loop's last look, where its deadline has passed or its producer has exited.
    pub fn newer_than(&self, since: u64, refused: Option<u64>) -> Option<u64> {
        if refused.is_none() {
            let current = self.channel.generation();
            return (current > since).then_some(current);
        }
        self.given(refused).next(&self.channel, since)
    }

    /// The refusal of `refused` as a caller's loop gives it: as judged when first given (or
    /// told with `refuse`), else judged now.
    fn given(&self, refused: Option<u64>) -> Refused {
        match refused {
            Some(g) if self.given_refused.gen == Some(g) => self.given_refused,
            Some(g) => Refused::at(g, &self.channel),
            None => Refused::default(),
        }
    }

    /// [`wait_past`](Follower::wait_past), bounded by `until`.
    fn wait_past_until(
        &mut self,
        since: u64,
        refused: Refused,
        until: &Until,
    ) -> Result<Option<Change>> {
        if refused.gen.is_none() {
            return self.wait_until(since, until);
        }
        let from = refused.wait_from(since);
        loop {
            if let Some(g) = refused.next(&self.channel, since) {
                return Ok(Some(Change::Newer(g)));
            }
            let slice = until.within(REFUSED_LOOK_EVERY);
            // Between the name's looks, the channel alone: a stat of the name every 10 ms
            // would cost a consumer of a damaged channel whose writer is gone for nothing.
            let waited = if self.looked.elapsed() < self.look_every()
                && self.channel.retired_mark() == self.mark
            {
                Ok(self
                    .channel
                    .wait_unless_retired(from, &slice, Some(self.mark))
                    .map(Change::Newer))
            } else {
                self.wait_until(from, &slice)
            };
            match waited {
                Ok(None) if !until.is_over() => {}
                // One more look, as `wait_until` takes.
                Ok(None) => {
                    let g = refused.next(&self.channel, since);
                    return Ok(g.map(Change::Newer));
                }
                waited => return waited,
            }
        }
    }

    /// How often a wait looks at the name: every 100 ms; every 10 ms while a new channel under
    /// it is being created (for its first 250 ms: a slow creation is looked at every 100 ms),
    /// and while the name leads nowhere, for its first second.
    fn look_every(&self) -> Duration {
        match self.creating {
            Some(Creating { aged: false, .. }) => INIT_LOOK_EVERY,
            _ if self
                .missing_since
                .is_some_and(|t| t.elapsed() < MISSING_FAST_FOR) =>
            {
                INIT_LOOK_EVERY
            }
            _ => scheduled_look(),
        }
    }

    /// The look of a wait: whether the name still leads to the followed channel, and whether
    /// that channel is still whole. `Some`: the new channel the name leads to, for the caller to
    /// take (an async wait takes its registration off the old one first).
    fn look(&mut self, now: Instant) -> Result<Option<Channel>> {
        #[cfg(test)]
        {
            self.looks += 1;
        }
        self.looked = now;
        self.gone = false;
        self.mark = self.channel.retired_mark();
        let missing_since = self.missing_since.take();
        if self.channel.is_current()? {
            self.creating = None;
            self.channel.verify_mapping()?;
            return Ok(None);
        }
        match try_open(&self.location, &self.options) {
            Ok(channel) => {
                self.creating = None;
                // 0, not what it holds: one retired since the open is looked at again at once.
                self.mark = 0;
                Ok(Some(channel))
            }
            // Removed and not (yet) created again: keep waiting, and looking.
            Err(Error::NotFound { .. }) => {
                self.gone = true;
                self.creating = None;
                self.missing_since = Some(missing_since.unwrap_or(now));
                Ok(None)
            }
            // Being created, or left half-made by a creator that died (waited past, for the
            // channel that replaces it): look again.
            Err(e) => match judge(&e, &self.location, &mut self.creating, now, false) {
                Some(Creation::Young) => Ok(None),
                Some(Creation::Slow | Creation::Abandoned) => {
                    self.gone = true;
                    Ok(None)
                }
                // Removed since the open: as a missing name, at the next look.
                Some(Creation::Gone) => {
                    self.gone = true;
                    self.missing_since = Some(missing_since.unwrap_or(now));
                    Ok(None)
                }
                None => match open_again(e, &self.location, &self.options) {
                    // Removed since the look: as a missing name, at the next look.
                    Err(Error::NotFound { .. }) => {
                        self.gone = true;
                        self.missing_since = Some(missing_since.unwrap_or(now));
                        Ok(None)
                    }
                    opened => opened.map(Some),
                },
            },
        }
    }

    /// A follower of `location` holding `channel`, just looked at.
    fn holding(
        location: &Location,
        options: &Options,
        channel: Channel,
        appeared: bool,
    ) -> Follower {
        Follower {
            location: location.clone(),
            options: options.clone(),
            appeared,
            looked: Instant::now(),
            gone: false,
            missing_since: None,
            // As a look that takes up a new channel sets it (see `look`).
            mark: 0,
            #[cfg(test)]
            looks: 0,
            channel,
            creating: None,
            pause_until: None,
            refused: Refused::default(),
            given_refused: Refused::default(),
        }
    }
}

impl Options {
    /// [`Follower::open`] with these options for every open of a channel under the name, the
    /// first and those after a writer's restart: a follower that must react within
    /// microseconds spins before it sleeps ([`wait_spin`](Options::wait_spin)), one that must
    /// leave the channel's reader-pin entries to others reads without one
    /// ([`read_only`](Options::read_only)), and [`read_timeout`](Options::read_timeout) and
    /// [`lock_timeout`](Options::lock_timeout) and [`header_only`](Options::header_only) hold
    /// for its channel's reads and publishes. What only a creation takes (capacity, readers,
    /// mode, checksums, `remove_on_drop`) is not used, and neither is `init_timeout`: a channel
    /// found being created is waited for as [`Follower::open`] says. Without `read_only`, a
    /// channel this process may only read is opened read-only, as by [`Follower::open`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use mmf::{Channel, Options, Tag};
    /// # let name = format!("follow-doc-{}", std::process::id());
    /// let writer = Channel::create(&name, 64)?;
    /// writer.publish_raw(Tag::TEXT, b"first")?;
    /// let mut follower = Options::new()
    ///     .read_only(true)
    ///     .wait_spin(Duration::from_micros(50))
    ///     .follow(&name, Duration::from_secs(1))?;
    /// assert!(follower.channel().is_read_only());
    /// # Channel::remove(&name)?;
    /// # Ok::<(), mmf::channel::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`Follower::open`].
    pub fn follow(&self, location: impl ToLocation, until: impl Into<Until>) -> Result<Follower> {
        Follower::open_parsed(&*location.to_location()?, &until.into(), self)
    }

    /// [`Follower::open_async`] with these options, as [`follow`](Options::follow) takes them
    /// (feature `async`).
    ///
    /// # Panics
    ///
    /// A poll panics where this process cannot start mmf's notifier thread (no threads left),
    /// as [`Channel::changed`](crate::Channel::changed) says; a later poll tries again.
    #[cfg(feature = "async")]
    pub fn follow_async(&self, location: impl ToLocation) -> OpenFollower {
        let (location, invalid) = match location.to_location() {
            Ok(location) => (location.into_owned(), None),
            Err(e) => (Location::Anonymous, Some(e)),
        };
        OpenFollower {
            location,
            options: self.clone(),
            invalid,
            next_look: None,
            appeared: false,
            creating: None,
            timer: crate::notify::Timer::default(),
        }
    }
}

/// The error `e` of an open that [`judge`] let stand, after one more open where it is one that
/// a creator finishing meanwhile clears (its header written, its `chmod` made, between the
/// refused open and the judgement, which then found the file whole, or not held any more): that
/// open's channel if it succeeds, [`Error::NotFound`] if the name was removed meanwhile (a dead
/// creator's file, by the writer's restart: the callers look again, as for any missing name),
/// else `e`.
fn open_again(e: Error, location: &Location, options: &Options) -> Result<Channel> {
    match e {
        Error::NotInitialized { .. } | Error::PermissionDenied { .. } => {
            try_open(location, options).map_err(|again| match again {
                // Removed meanwhile (a dead creator's file, by the writer's restart): the
                // caller waits for a channel under the name, as for any missing name.
                Error::NotFound { .. } => again,
                _ => e,
            })
        }
        e => Err(e),
    }
}

/// Whether a follower's loop looks again only after a pause (100 ms) when a read of the current
/// value failed with `e`: an error of the channel (truncated under the read), not one of the
/// value alone (damaged, or never copied whole), which the next publish mends.
fn pauses_after(e: &Error) -> bool {
    !(e.mended_by_publish() || matches!(e, Error::Contended { .. }))
}

/// The generation of the value a follower's loop refused last (a read found it damaged, or
/// could not copy it whole), if any: the loop's own count (`since`, the generation of the last
/// value given out) stays as it was, and a wait looks for a value past `since` other than the
/// refused one, which is there now. A value read whole is new when its generation is past
/// `since`, the refused one too: it was never given out.
///
/// A refused generation may be nobody's: another process's stray write of `latest`. One far
/// ahead of the writer's own count (a writer counts from its word `written`) is brought back
/// below by the writer's next publish: counting past it instead would wait for ever for the
/// writer to get there. One equal to the writer's next generation is not: the writer's publish
/// of that generation leaves `latest` as the stray write left it. Such a refusal is told by
/// `written` below the refused generation, and the writer's count reaching it wakes the wait
/// once (it was skipped).
#[derive(Debug, Clone, Copy, Default)]
struct Refused {
    /// The refused generation.
    gen: Option<u64>,
    /// Whether `latest` ran ahead of the writer's count (`written`) when it was refused, and no
    /// wait has woken for the writer's count reaching it yet.
    ahead: bool,
}

impl Refused {
    /// Refusal of the value of generation `gen` of `channel`, whose count is read now.
    fn at(gen: u64, channel: &Channel) -> Refused {
        Refused {
            gen: Some(gen),
            ahead: channel.written_generation() < gen,
        }
    }

    /// The channel's generation now, if a value was refused and the value now is worth a read
    /// to a loop whose count is `since`: past it, and not the refused one, unless the writer's
    /// count reached that since it was refused ahead of it. `None` otherwise: the wait then
    /// finds a new value itself, and looks at the name meanwhile.
    fn next(self, channel: &Channel, since: u64) -> Option<u64> {
        let gen = self.gen?;
        let current = channel.generation();
        let worth = current != gen || (self.ahead && channel.written_generation() >= gen);
        (current > since && worth).then_some(current)
    }

    /// Whether a read of generation `newer` that failed with `e` is tried once more before
    /// it is refused: damage refused for the first time with the writers' count at it
    /// already, where the writer may have published that generation after the read, over a
    /// stray write of `latest` that took its number first.
    fn read_again(self, e: &Error, newer: u64, channel: &Channel) -> bool {
        e.mended_by_publish() && self.gen != Some(newer) && channel.written_generation() >= newer
    }

    /// After a wait woke for generation `g`: a wake for the refused generation itself (the
    /// writer's count reached it) is given once; a read that refuses it again does not wake
    /// the next wait at once.
    fn woke(&mut self, g: u64) {
        if self.gen == Some(g) {
            self.ahead = false;
        }
    }

    /// The generation to wait past: `since`, or the refused one where that is above it (the
    /// refused value is there now, and no wait past `since` would sleep).
    fn wait_from(self, since: u64) -> u64 {
        self.gen.map_or(since, |r| r.max(since))
    }
}

/// Opens read-write if allowed (by the file's mode, and by its file system: a read-only mount
/// refuses writers whatever the mode), else read-only; a channel being created is waited for
/// up to `init`.
fn try_open(location: &Location, options: &Options) -> Result<Channel> {
    // The follower waits for a channel being made by looks of its own (`judge`), not inside
    // an open.
    let mut options = options.clone();
    options.init_timeout(Duration::ZERO);
    match options.open(location) {
        Err(Error::PermissionDenied { .. }) if !options.is_read_only() => {
            options.read_only(true).open(location)
        }
        Err(ref e)
            if e.os_error().and_then(std::io::Error::raw_os_error) == Some(libc::EROFS)
                && !options.is_read_only() =>
        {
            options.read_only(true).open(location)
        }
        other => other,
    }
}

/// How long a channel found being created is given to finish, even past a shorter timeout (it
/// is most likely about to be ready): `Options`' default `init_timeout`.
const INIT_WAIT: Duration = Duration::from_millis(250);

/// How soon a wait past a refused generation looks at the channel's generation again (a new
/// value below the refused one wakes no wait).
const REFUSED_LOOK_EVERY: Duration = Duration::from_millis(10);

/// How soon a wait that found a new channel being created looks again.
const INIT_LOOK_EVERY: Duration = Duration::from_millis(10);

/// How often a wait looks at the name when nothing hastens it: [`LOOK_EVERY`]. A test thread may
/// set it longer, so that only the `retired` mark can make its follower look in time.
fn scheduled_look() -> Duration {
    #[cfg(test)]
    if let Some(every) = tests::SCHEDULED_LOOK.get() {
        return every;
    }
    LOOK_EVERY
}

/// How long after a look first found the name leading nowhere the name is looked at every
/// [`INIT_LOOK_EVERY`] instead of every [`LOOK_EVERY`]: a writer's restart (remove, then create)
/// takes milliseconds, a stat of the name some microseconds.
const MISSING_FAST_FOR: Duration = Duration::from_secs(1);

/// A channel under the name that a look found being created: which file, and since when.
#[derive(Debug, Clone, Copy)]
struct Creating {
    /// The file's device and inode: another file under the name is another creation.
    file: (u64, u64),
    /// When a look first found this file being created.
    since: Instant,
    /// Whether a look found it empty (its blocks not allocated yet): a creator's file.
    was_empty: bool,
    /// Whether the last look found it past its [`INIT_WAIT`] ([`Creation::Slow`] or
    /// [`Creation::Abandoned`]): looked at every 100 ms from then on, not every 10 ms.
    aged: bool,
    /// Since when every look found it held and not what a creator at work leaves (see
    /// [`judge`]); `None` once a look finds it otherwise.
    held_since: Option<Instant>,
}

/// How long looks must find a file not initialised, held, and not what a creator at work
/// leaves, with no look between finding it otherwise, before a follower gives it up: another
/// process's open holds a dead creator's file for an instant (a follower's look; a restarting
/// writer's retries, every millisecond for 250 ms), and a process descheduled in that instant
/// holds it for milliseconds, so one look, or asks a few milliseconds apart, prove nothing.
const HELD_FOR: Duration = Duration::from_millis(200);

/// For a future that keeps no count across looks (`open_async`, made anew on every turn of a
/// `select!` loop, judges by the file): when its look asks again whether such a file is held,
/// after the first ask. (So such a poll may sleep 2 ms, for such a file only.) A holder
/// descheduled over those 2 ms still makes that future give the file up.
const HELD_ASKED_AGAIN: [Duration; 2] = [Duration::from_millis(1), Duration::from_millis(2)];

/// What a channel found being created is taken for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Creation {
    /// Found so less than [`INIT_WAIT`] ago: most likely about to be ready.
    Young,
    /// Found so longer ago, and still what a creator at work leaves (see [`judge`]), held
    /// open by a process: its creator, still at work.
    Slow,
    /// Not initialised, in shared memory, found so longer ago, and held by no process (or not
    /// steadily, see [`HELD_FOR`]): its creator died. Waited past as a removed name
    /// is, for the channel that replaces it ([`Options::open_or_create`] clears such a file,
    /// as `create_or_replace` and `mmf remove` do), not an error that ends a follower.
    Abandoned,
    /// No file under the name any more: the one the open refused was removed since (a dead
    /// creator's file by the writer's restart, or a writer that removes and creates its
    /// channel in a loop). Whatever the open said of that file, the name is looked at again,
    /// as a missing one is: the next file there may be another one being made, which the
    /// refused open's error says nothing of.
    Gone,
}

/// Whether an open's error `e` at `location` is a channel still being created, or left
/// half-made by a creator that died, and if so what it is taken for ([`Creation::Gone`] where
/// the name leads to no file any more, whatever `e`); `None`: the error stands as it is. `creating` keeps which file looks found so, and since when, across looks. That
/// age is counted from the first look, or with `by_file` by the file's status-change time (for
/// a future made anew on every turn of a `select!` loop, which keeps no count).
///
/// Being created: a file not initialised yet, or another user's that may still have its
/// creation mode ([`being_made`](crate::channel::being_made)), or that a look found empty
/// before and that still has that mode (its blocks allocated since, its `chmod` not made yet:
/// `being_made` no longer counts a file that is whole and over a second old).
///
/// Past [`INIT_WAIT`], one is still being made while a process holds it open ([`held_open`])
/// and it is what a creator at work leaves: still empty (being allocated), or found empty
/// before, or a header of zeros only (allocated, not written yet), or another user's file in
/// its creation mode born within `being_made`'s window. One in shared memory, not initialised,
/// that no process holds was left by a creator that died: [`Creation::Abandoned`], looked at
/// again as long as the caller waits (a creator that took its lock late holds it, and finishes
/// it). Any other is `None`, its error standing: one at a file path, one held steadily
/// ([`HELD_FOR`], [`HELD_ASKED_AGAIN`]; a live channel whose magic another process zeroed
/// keeps the rest of its header, and its writer holds it), another user's file that kept its
/// creation mode past that window.
fn judge(
    e: &Error,
    location: &Location,
    creating: &mut Option<Creating>,
    now: Instant,
    by_file: bool,
) -> Option<Creation> {
    use std::os::unix::fs::MetadataExt;
    let meta = match location.path().map(std::fs::metadata) {
        Some(Ok(meta)) => meta,
        Some(Err(gone)) if gone.kind() == std::io::ErrorKind::NotFound => {
            *creating = None;
            return Some(Creation::Gone);
        }
        _ => {
            *creating = None;
            return None;
        }
    };
    let file = (meta.dev(), meta.ino());
    let seen = creating.filter(|c| c.file == file);
    let refused = matches!(e, Error::PermissionDenied { .. });
    let being = match e {
        Error::NotInitialized { .. } => true,
        Error::PermissionDenied { .. } => {
            crate::channel::being_made_meta(&meta, INIT_WAIT)
                || (seen.is_some_and(|c| c.was_empty) && crate::channel::private_to_another(&meta))
        }
        _ => false,
    };
    if !being {
        *creating = None;
        return None;
    }
    let c = creating.insert(seen.unwrap_or(Creating {
        file,
        since: now,
        was_empty: false,
        aged: false,
        held_since: None,
    }));
    c.was_empty |= meta.len() == 0;
    let first_seen = now.duration_since(c.since);
    let found_for = if by_file {
        crate::channel::unchanged_for(&meta).unwrap_or(first_seen)
    } else {
        first_seen
    };
    let judged = if found_for < INIT_WAIT {
        Creation::Young
    } else {
        let held = held_open(location, &meta);
        if held
            && (c.was_empty
                || (refused && crate::channel::being_made_meta(&meta, INIT_WAIT))
                || (!refused && zero_header(location)))
        {
            c.held_since = None;
            Creation::Slow
        } else if refused || !matches!(location, Location::Shm(_)) {
            // Another user's file that kept its creation mode (not told from a channel private
            // to its owner), or a file path, which nothing replaces by itself (it may be a
            // user's file that starts with zeros): the error stands.
            *creating = None;
            return None;
        } else if !held {
            c.held_since = None;
            Creation::Abandoned
        } else {
            // Held, and not what a creator at work leaves: a live channel whose magic another
            // process zeroed, or an instant's lock of another process's open (a follower's look,
            // a restarting writer's retries) on a dead creator's file. Given up on once held
            // for HELD_FOR by every look; by a future that keeps no count, once held at asks
            // 2 ms apart, of this same file.
            let since = *c.held_since.get_or_insert(now);
            if now.duration_since(since) >= HELD_FOR
                || (by_file && held_when_asked_again(location, &meta))
            {
                *creating = None;
                return None;
            }
            Creation::Abandoned
        }
    };
    c.aged = judged != Creation::Young;
    Some(judged)
}

/// Whether the name `location` still leads to the file of `meta`, held by a process, each time
/// it is asked again at [`HELD_ASKED_AGAIN`] (sleeping between the asks).
fn held_when_asked_again(location: &Location, meta: &std::fs::Metadata) -> bool {
    let Some(path) = location.path() else {
        return false;
    };
    let start = Instant::now();
    HELD_ASKED_AGAIN.iter().all(|&at| {
        std::thread::sleep(at.saturating_sub(start.elapsed()));
        crate::channel::still_named(meta, location, &path) && held_open(location, meta)
    })
}

/// Whether the file at `location` starts with a channel header's worth of zeros (512 bytes, or
/// all of a shorter file): allocated by a creator that has not written the header yet.
fn zero_header(location: &Location) -> bool {
    use std::io::Read;
    let Some(path) = location.path() else {
        return false;
    };
    let mut head = [0u8; 512];
    let mut got = 0;
    let Ok(mut file) = crate::channel::open_existing(location, &path, false) else {
        return false;
    };
    // No channel being made: a FIFO or device (which reads nothing, or zeros, where the
    // system has no `O_PATH` to keep it unopened).
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return false;
    }
    while got < head.len() {
        match file.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    head[..got].iter().all(|&b| b == 0)
}

/// Whether a process holds the file at `location` (of metadata `meta`) open as a channel's
/// handle or creator does, with a shared `flock` (a creator takes it before it allocates the
/// file's blocks, which for a channel of many GiB takes seconds):
/// [`host::in_use`](crate::host::in_use), and where this process may not open the file
/// (another user's, still in its creation mode), the kernel's table of locks. A follower's
/// own open holds one for an instant, which at worst makes a creator that died look alive for
/// one look more.
fn held_open(location: &Location, meta: &std::fs::Metadata) -> bool {
    match crate::host::in_use(location) {
        Ok(used) => used,
        Err(Error::Io { cause, .. }) if cause.kind() == std::io::ErrorKind::PermissionDenied => {
            crate::os::flock_held(meta).unwrap_or(false)
        }
        Err(_) => false,
    }
}

#[cfg(feature = "async")]
impl Follower {
    /// A future that resolves as [`open`](Follower::open) returns, without its timeout: the
    /// follower once a channel is at `location` (waited for until it is created), or the error
    /// `open` gives at once (an invalid name, a name where no channel can appear, something
    /// there that is not a channel, no permission). Feature `async`.
    ///
    /// It looks every 100 ms, woken for that by the process's notifier thread (see the
    /// [`notify`](crate::notify) module), with no timer of the executor's; a channel found
    /// being created is looked at every 10 ms, without blocking the executor's thread, for
    /// 250 ms; after that, one still being made (as [`open`](Follower::open) tells it: a
    /// creator still allocating a channel of many MiB holds its empty file) every 100 ms, for
    /// as long as it is; a shared-memory one that its creator left half-made when it died (no
    /// process holds it) every 100 ms too, for the channel that replaces it. Any other ends the
    /// future, as `open` gives it up: [`Error::NotInitialized`] (at a file path, or held and
    /// not what a creator at work leaves), or [`Error::PermissionDenied`] for another user's
    /// channel that kept its creation mode.
    /// Those 250 ms are judged by the file's status-change time (a second more where the
    /// file system keeps whole seconds), so a future made anew on every turn of a `select!`
    /// loop ends with the error too; but [`appeared`](Follower::appeared) is then `false`,
    /// since the future that opens the follower did not see it wait: pin the future outside
    /// such a loop.
    /// Race it against the executor's timer for a timeout. It owns what it needs (`'static`,
    /// `Send`): it can be spawned.
    ///
    /// # Panics
    ///
    /// A poll panics where this process cannot start mmf's notifier thread (no threads left),
    /// as [`Channel::changed`](crate::Channel::changed) says; a later poll tries again.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mmf::{Channel, Follower, Location, Tag};
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
    ///
    /// # let name = format!("open-async-doc-{}", std::process::id());
    /// let location = Location::parse(&name)?;
    /// // The writing service starts after its reader.
    /// let writer = std::thread::spawn({
    ///     let name = name.clone();
    ///     move || {
    ///         std::thread::sleep(Duration::from_millis(50));
    ///         Channel::create(&name, 64)?.publish_raw(Tag::TEXT, b"hello")
    ///     }
    /// });
    /// // or `Follower::open_async(&location).await` in async code
    /// let follower = block_on(Follower::open_async(&location))?;
    /// // An invalid name is the future's output.
    /// assert!(block_on(Follower::open_async("a\tb")).is_err());
    /// assert!(follower.appeared());
    /// writer.join().unwrap()?;
    /// # Channel::remove(&name)?;
    /// # Ok::<(), mmf::channel::Error>(())
    /// ```
    pub fn open_async(location: impl ToLocation) -> OpenFollower {
        Options::new().follow_async(location)
    }

    /// A future that resolves as [`wait`](Follower::wait) returns, without its timeout:
    /// [`Change::Newer`] once the followed channel's generation moves past `since`,
    /// [`Change::Replaced`] once the name leads to another channel (which the follower then
    /// holds), or the error `wait` would give (a channel truncated or overwritten under the
    /// mapping, a new channel under the name that cannot be opened). Feature `async`.
    ///
    /// It waits as [`Channel::changed`] does (see the [`notify`](crate::notify) module), and
    /// looks at the name every 100 ms as `wait` does: the process's notifier thread wakes it
    /// for that, with no timer of the executor's. A new channel found being created is looked at
    /// again every 10 ms, as `wait` looks at it (for 250 ms from the first look that found it
    /// so, counted by the follower across futures, and after that for as long as a process
    /// holds it open), never blocking the executor's thread. Race it
    /// against the executor's timer for a timeout. Dropping it (a cancelled `select!` arm)
    /// leaves the follower as the last completed look left it.
    ///
    /// A `Follower` needs a channel to exist: [`Follower::open_async`] waits for one to be
    /// created.
    ///
    /// # Panics
    ///
    /// A poll panics where this process cannot start mmf's notifier thread (no threads left),
    /// as [`Channel::changed`](crate::Channel::changed) says; a later poll tries again.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mmf::{Change, Channel, Follower, Tag};
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
    ///
    /// # let name = format!("follow-async-doc-{}", std::process::id());
    /// let writer = Channel::create(&name, 64)?;
    /// let mut follower = Follower::open(&name, Duration::ZERO)?;
    ///
    /// // The writing service restarts under the same name while the follower awaits.
    /// std::thread::scope(|s| {
    ///     s.spawn(|| {
    ///         drop(writer);
    ///         Channel::remove(&name)?;
    ///         std::thread::sleep(Duration::from_millis(50));
    ///         Channel::create(&name, 64)?.publish_raw(Tag::TEXT, b"second life")
    ///     });
    ///     // A consumer's loop: go on from the generation the read returned (it may be newer
    ///     // than the one `Newer` names), and from 0 in a new channel, which may hold no value
    ///     // yet when the follower finds it.
    ///     let mut seen = 0;
    ///     let value = loop {
    ///         match block_on(follower.changed(seen))? { // `follower.changed(seen).await`
    ///             Change::Replaced => {
    ///                 seen = 0;
    ///                 continue;
    ///             }
    ///             // `Newer`, and what a later `Change` (non-exhaustive) may tell: read on.
    ///             _ => {}
    ///         }
    ///         let (meta, bytes) = follower.channel().read_raw()?;
    ///         seen = meta.generation;
    ///         break bytes;
    ///     };
    ///     assert_eq!(value, b"second life");
    ///     Ok::<(), mmf::channel::Error>(())
    /// })?;
    /// # Channel::remove(&name)?;
    /// # Ok::<(), mmf::channel::Error>(())
    /// ```
    ///
    /// A channel whose file another process truncates under the mapping kills the process with
    /// `SIGBUS`, awaited or not, unless [`truncation::install`](crate::truncation::install) was
    /// called; with it, the future resolves and the read after it is
    /// [`Error::Truncated`] (a file cut to less than its header may be [`Error::Corrupt`]
    /// instead).
    pub fn changed(&mut self, since: u64) -> FollowerChanged<'_> {
        FollowerChanged {
            follower: self,
            since,
            waiting: crate::notify::Waiting::default(),
        }
    }
}

/// The future returned by [`Follower::changed`] (feature `async`).
#[cfg(feature = "async")]
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct FollowerChanged<'a> {
    follower: &'a mut Follower,
    since: u64,
    waiting: crate::notify::Waiting,
}

#[cfg(feature = "async")]
impl std::future::Future for FollowerChanged<'_> {
    type Output = Result<Change>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<Change>> {
        let this = self.get_mut();
        poll_change(this.follower, this.since, &mut this.waiting, cx)
    }
}

/// Polls for what [`Follower::changed`] resolves to, registered through `waiting`: what its
/// future and a [`ValueStream`] do.
#[cfg(feature = "async")]
fn poll_change(
    f: &mut Follower,
    since: u64,
    waiting: &mut crate::notify::Waiting,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<Result<Change>> {
    use std::task::Poll;
    let now = Instant::now();
    if now >= f.looked + f.look_every() || f.channel.tripped() || f.channel.retired_mark() != f.mark
    {
        match f.look(now) {
            Ok(None) => {}
            Ok(Some(channel)) => {
                // Off the old channel before it goes: the registration points into its memory.
                waiting.unregister(&f.channel);
                f.channel = channel;
                return Poll::Ready(Ok(Change::Replaced));
            }
            Err(e) => {
                waiting.unregister(&f.channel);
                return Poll::Ready(Err(e));
            }
        }
    }
    let wake_at = f.looked + f.look_every();
    waiting
        .poll(&f.channel, since, Some(wake_at), Some(f.mark), cx)
        .map(|g| Ok(Change::Newer(g)))
}

#[cfg(feature = "async")]
impl Drop for FollowerChanged<'_> {
    fn drop(&mut self) {
        self.waiting.unregister(&self.follower.channel);
    }
}

/// The future returned by [`Follower::open_async`] (feature `async`).
#[cfg(feature = "async")]
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct OpenFollower {
    location: Location,
    /// What each open is made with ([`Options::follow_async`]).
    options: Options,
    /// Why the argument of [`Follower::open_async`] names no channel: the future's output at
    /// its first poll.
    invalid: Option<Error>,
    /// When the next look is due (`None`: at once).
    next_look: Option<Instant>,
    /// Whether a look found no channel yet (or one being created).
    appeared: bool,
    /// A channel under the name that a look found still being created (its age is judged by
    /// the file's status-change time; this count only where that cannot be read).
    creating: Option<Creating>,
    timer: crate::notify::Timer,
}

#[cfg(feature = "async")]
impl std::future::Future for OpenFollower {
    type Output = Result<Follower>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<Follower>> {
        use std::task::Poll;
        let this = self.get_mut();
        if let Some(e) = this.invalid.take() {
            return Poll::Ready(Err(e));
        }
        loop {
            if let Some(at) = this.next_look {
                if this.timer.poll(at, cx).is_pending() {
                    return Poll::Pending;
                }
            }
            let now = Instant::now();
            match try_open(&this.location, &this.options) {
                Ok(channel) => {
                    return Poll::Ready(Ok(Follower::holding(
                        &this.location,
                        &this.options,
                        channel,
                        this.appeared,
                    )))
                }
                Err(e @ Error::NotFound { .. }) if !this.location.can_appear() => {
                    return Poll::Ready(Err(e))
                }
                Err(Error::NotFound { .. }) => {
                    this.appeared = true;
                    this.creating = None;
                    this.next_look = Some(now + LOOK_EVERY);
                }
                // Held by another program's exclusive `flock`: looked at again (as `open`
                // does until its deadline; a future's is its caller's).
                Err(e) if e.is_locked_out() => {
                    this.next_look = Some(now + INIT_LOOK_EVERY);
                }
                // Being created: look again, for as long as `open` would wait (judged by the
                // file, so that a future made anew gives up too).
                Err(e) => {
                    match judge(&e, &this.location, &mut this.creating, now, true) {
                        Some(Creation::Young) => {
                            this.appeared = true;
                            this.next_look = Some(now + INIT_LOOK_EVERY);
                        }
                        Some(Creation::Slow | Creation::Abandoned) => {
                            this.appeared = true;
                            this.next_look = Some(now + LOOK_EVERY);
                        }
                        // Removed since the open: looked at again, as a missing name is.
                        Some(Creation::Gone) => {
                            this.appeared = true;
                            this.next_look = Some(now + INIT_LOOK_EVERY);
                        }
                        None => match open_again(e, &this.location, &this.options) {
                            // Removed since the look: looked at again, as a missing name is.
                            Err(Error::NotFound { .. }) => {
                                this.appeared = true;
                                this.next_look = Some(now + INIT_LOOK_EVERY);
                            }
                            opened => {
                                return Poll::Ready(opened.map(|channel| {
                                    Follower::holding(&this.location, &this.options, channel, true)
                                }))
                            }
                        },
                    }
                }
            }
        }
    }
}

#[cfg(feature = "async")]
impl Follower {
    /// The values published under the followed name, as a stream (feature `async`): each value
    /// newer than generation `since` (0: every value, beginning with the current one, if there
    /// is one), with its [`Meta`](crate::Meta), as [`Channel::read_raw`] returns it. It follows
    /// the name as [`changed`](Follower::changed) does: after a writer's restart, the new
    /// channel's values come, their generations starting again from 1, so tell values apart by
    /// ([`ValueStream::incarnation`], generation), not by generation alone.
    ///
    /// A channel keeps its latest value only: a consumer slower than its writer gets the
    /// newest value each time, and a jump in the generations says how many it missed.
    ///
    /// The stream never ends. An error is an item, and the stream goes on after it: past a
    /// value a read finds damaged (a crash's) or cannot copy whole (writers kept overtaking the
    /// copy, or a crash left it half written, for [`Options::read_timeout`]), which the next
    /// publish mends; and past an error of the channel or the name (truncated or overwritten
    /// under the mapping, a new channel under the name that cannot be opened), looked at again
    /// 100 ms later, so that a consumer that logs errors and goes on does not spin, and takes
    /// up the values of a channel made anew under the name. `TryStreamExt::try_next` stops at
    /// the first error instead. A refused value's generation is not the stream's count (that
    /// stays the last value given out): it may be nobody's, another process's stray write of
    /// the header's count far ahead of the writer's own, and the writer's next value, below it,
    /// is still new.
    ///
    /// A name removed (a writer that exits with `remove_on_drop`, `mmf remove`) gives no item:
    /// the stream waits for a channel made again under it. A consumer that should end then
    /// looks at [`ValueStream::follower`]`().`[`is_gone`](Follower::is_gone) between items, or
    /// races the stream against a timer or a [`Stop::stopped`](crate::Stop::stopped) turned by
    /// the writer's exit.
    ///
    /// A poll never blocks the executor's thread for more than a read: a copy that writers keep
    /// overtaking is given up after 2 ms and tried again after a pause (woken by the process's
    /// notifier thread, with no timer of the executor's). A large value is copied inside the
    /// poll (about 0.1 s a GiB), and a look at a new channel under the name may wait up to
    /// 50 ms for an exclusive `flock` another process holds on its file (mmf's own last an
    /// instant). While it waits, the stream counts as a waiter of the channel,
    /// as [`Channel::changed`] does, until it is polled past the next value or dropped.
    ///
    /// [`ValueStream::recv`] awaits the next item without a dependency, and is cancel-safe (a
    /// `select!` arm dropped before it resolves loses no value); `ValueStream` is also a
    /// [`futures_core::Stream`], for `StreamExt` and `tokio_stream`. It owns what it needs
    /// (`'static`, `Send`): it can be moved into a spawned task.
    ///
    /// # Panics
    ///
    /// A poll panics where this process cannot start mmf's notifier thread (no threads left),
    /// as [`Channel::changed`](crate::Channel::changed) says; a later poll tries again.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mmf::{Channel, Follower, Tag};
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
    ///
    /// # let name = format!("values-doc-{}", std::process::id());
    /// let writer = Channel::create(&name, 64)?;
    /// writer.publish_raw(Tag::TEXT, b"first")?;
    /// let follower = Follower::open(&name, Duration::ZERO)?;
    /// let mut values = follower.values(0);
    ///
    /// // `values.recv().await` in async code, or `StreamExt::next`.
    /// let (meta, bytes) = block_on(values.recv())?;
    /// assert_eq!((meta.generation, &bytes[..]), (1, &b"first"[..]));
    /// std::thread::spawn(move || writer.publish_raw(Tag::TEXT, b"second"));
    /// let (meta, bytes) = block_on(values.recv())?;
    /// assert_eq!((meta.generation, &bytes[..]), (2, &b"second"[..]));
    /// assert_eq!(values.last_generation(), 2);
    /// # Channel::remove(&name)?;
    /// # Ok::<(), mmf::channel::Error>(())
    /// ```
    pub fn values(self, since: u64) -> ValueStream {
        ValueStream {
            follower: Some(self),
            since,
            waiting: crate::notify::Waiting::default(),
            timer: crate::notify::Timer::default(),
            pause_until: None,
            contended: None,
            refused: Refused::default(),
        }
    }
}

/// The stream of values returned by [`Follower::values`] (feature `async`).
#[cfg(feature = "async")]
#[must_use = "streams do nothing unless polled"]
#[derive(Debug)]
pub struct ValueStream {
    /// `None` only once [`into_follower`](ValueStream::into_follower) has taken it, as the
    /// stream ends (a field moved out of a type with a `Drop`).
    follower: Option<Follower>,
    /// The generation of the last value given out (or the one asked to start after).
    since: u64,
    waiting: crate::notify::Waiting,
    /// Wakes the stream at `pause_until`.
    timer: crate::notify::Timer,
    /// No look or read before then: after an error of the channel or the name, and between
    /// tries at a copy that writers keep overtaking.
    pause_until: Option<Instant>,
    /// Tries at the current value's copy that were overtaken: since when, how many, and when
    /// the last was.
    contended: Option<Contended>,
    /// The generation of the last value a read refused, waited past (see [`Refused`]).
    refused: Refused,
}

/// Tries at a value's copy that writers overtook, in a [`ValueStream`].
#[cfg(feature = "async")]
#[derive(Debug, Clone, Copy)]
struct Contended {
    since: Instant,
    tries: u32,
    /// When the pause after the last try ends: the next try is due then.
    due: Instant,
}

/// [`ValueStream::recv`]'s future: the next item; dropped while pending (cancelled), it takes
/// the stream's wait off ([`ValueStream::cancel_wait`]). One that resolved leaves it, so that a
/// consumer's loop of `recv`s does not register again for each value.
#[cfg(feature = "async")]
struct Recv<'a> {
    stream: &'a mut ValueStream,
    /// Whether the last poll was pending.
    pending: bool,
}

#[cfg(feature = "async")]
impl std::future::Future for Recv<'_> {
    type Output = ValueItem;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<ValueItem> {
        let this = self.get_mut();
        let poll = this.stream.poll_value(cx);
        this.pending = poll.is_pending();
        poll
    }
}

#[cfg(feature = "async")]
impl Drop for Recv<'_> {
    fn drop(&mut self) {
        if self.pending {
            self.stream.cancel_wait();
        }
    }
}

/// An item of [`ValueStream`]: a value with its [`Meta`](crate::Meta), or an error.
#[cfg(feature = "async")]
type ValueItem = Result<(crate::Meta, Vec<u8>)>;

/// How long one try at a value's copy may take inside a poll before it is given up (and tried
/// again after a pause).
#[cfg(feature = "async")]
const READ_SLICE: Duration = Duration::from_millis(2);

#[cfg(feature = "async")]
impl ValueStream {
    /// The follower: the channel the name leads to now, and whether it is gone.
    pub fn follower(&self) -> &Follower {
        self.following()
    }

    /// The follower, there until [`into_follower`](Self::into_follower) ends the stream.
    fn following(&self) -> &Follower {
        self.follower
            .as_ref()
            .expect("taken only as the stream ends")
    }

    /// The follower back, for reads of its own or a stream made anew: [`Follower::values`]
    /// from [`last_generation`](Self::last_generation) goes on where this stream stopped. The
    /// stream's wait ends (the channel stops counting it as a waiter).
    ///
    /// ```
    /// # #[cfg(feature = "async")] {
    /// use std::time::Duration;
    /// use mmf::{Channel, Follower};
    ///
    /// # let name = format!("into-follower-doc-{}", std::process::id());
    /// let writer = Channel::create(&name, 64)?;
    /// let values = Follower::open(&name, Duration::ZERO)?.values(0);
    /// let since = values.last_generation();
    /// let follower = values.into_follower();
    /// assert_eq!(follower.channel().capacity(), writer.capacity());
    /// let values = follower.values(since);
    /// # drop(values);
    /// # Channel::remove(&name)?;
    /// # }
    /// # Ok::<(), mmf::channel::Error>(())
    /// ```
    pub fn into_follower(mut self) -> Follower {
        let follower = self.follower.take().expect("taken only here");
        self.waiting.unregister(&follower.channel);
        follower
    }

    /// The generation of the last value given out (or the `since` the stream started from);
    /// 0 after a writer's restart until the new channel's first value.
    pub fn last_generation(&self) -> u64 {
        self.since
    }

    /// The incarnation of the channel the stream follows now, which the next value comes from:
    /// with the generation, what tells values apart across restarts. After a writer's restart
    /// it is the new channel's from the look that found it, while
    /// [`last_generation`](Self::last_generation) is 0 until that channel's first value.
    pub fn incarnation(&self) -> u64 {
        self.following().channel.incarnation()
    }

    /// The next item: a value, or an error (the stream goes on after it). What
    /// `StreamExt::next` gives, with no dependency. Cancel-safe: dropped before it resolves,
    /// it has taken no value, and it takes the stream's wait off the channel, whose writers
    /// would otherwise pay a wake-up call on every publish for a stream nobody polls. (Through
    /// `StreamExt::next`, whose future this crate does not make, a stream stays counted until
    /// it is polled again or dropped.)
    ///
    /// Under a writer that publishes faster than the consumer takes values, the stream would
    /// always be ready, and a consumer's loop would never give its executor's thread back. So
    /// after 2 ms of items with no wait in between, one poll is pending and the task is woken
    /// from mmf's notifier thread: the executor runs its other tasks, its timers and its I/O
    /// first, and no value is lost (see [`Channel::changed`](crate::Channel::changed)).
    ///
    /// # Panics
    ///
    /// A poll panics where this process cannot start mmf's notifier thread (no threads left),
    /// as [`Channel::changed`](crate::Channel::changed) says; a later poll tries again.
    pub fn recv(&mut self) -> impl std::future::Future<Output = ValueItem> + '_ {
        Recv {
            stream: self,
            pending: false,
        }
    }

    /// Takes this stream's wait off its channel's waiter count and the notifier's list: a wait
    /// registered by a poll whose future was dropped (a `select!` branch that lost) kept every
    /// publish paying a wake-up call for the stream, and the notifier waking for it, until the
    /// stream was polled again or dropped. The next poll registers again.
    fn cancel_wait(&mut self) {
        if let Some(f) = &self.follower {
            self.waiting.unregister(&f.channel);
        }
    }

    /// The next item. A stream kept always ready by a writer that publishes faster than it is
    /// read yields to the executor now and then, as every wait does (`notify::Yield`).
    fn poll_value(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<ValueItem> {
        use std::task::Poll;
        loop {
            if let Some(at) = self.pause_until {
                if self.timer.poll(at, cx).is_pending() {
                    return Poll::Pending;
                }
                self.pause_until = None;
            }
            let changed = match self.refused.next(&self.following().channel, self.since) {
                Some(g) => Poll::Ready(Ok(Change::Newer(g))),
                // Past a refused generation, if any: a new value below it is found at the
                // look that wakes this poll every 100 ms (above).
                None => {
                    let from = self.refused.wait_from(self.since);
                    poll_change(
                        self.follower
                            .as_mut()
                            .expect("taken only as the stream ends"),
                        from,
                        &mut self.waiting,
                        cx,
                    )
                }
            };
            let newer = match changed {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(Change::Newer(g))) => {
                    self.refused.woke(g);
                    g
                }
                // Another channel: every value it holds is new (it may hold none yet).
                Poll::Ready(Ok(Change::Replaced)) => {
                    self.since = 0;
                    self.refused = Refused::default();
                    self.contended = None;
                    continue;
                }
                // Said, then looked at again at the next look, not at once.
                Poll::Ready(Err(e)) => {
                    self.contended = None;
                    self.pause_until = Some(Instant::now() + LOOK_EVERY);
                    return Poll::Ready(Err(e));
                }
            };
            // When this try began, if tries before it were overtaken (else no clock is read).
            let tried = self.contended.is_some().then(Instant::now);
            let mut read = self.following().channel.read_raw_within(READ_SLICE);
            let channel = &self.following().channel;
            if matches!(&read, Err(e) if self.refused.read_again(e, newer, channel)) {
                read = self.following().channel.read_raw_within(READ_SLICE);
            }
            return Poll::Ready(match read {
                // Another process moved `latest` back between the two loads: not a new value.
                Ok((meta, _)) if meta.generation <= self.since => continue,
                Ok((meta, bytes)) => {
                    self.contended = None;
                    self.since = meta.generation;
                    self.refused = Refused::default();
                    Ok((meta, bytes))
                }
                // Overtaken for the whole slice: try again after a pause (1 ms, doubling up to
                // 64 ms), for as long as a plain read would, then say so. Tries left off for a
                // while (a `recv` dropped, the stream polled again later) start again.
                Err(Error::Contended { .. })
                    if self.contended_for(tried) < self.following().channel.read_timeout() =>
                {
                    let now = Instant::now();
                    let c = self.contended.get_or_insert(Contended {
                        since: now,
                        tries: 0,
                        due: now,
                    });
                    let pause = Duration::from_millis(1 << c.tries.min(6));
                    c.tries = c.tries.saturating_add(1);
                    c.due = now + pause;
                    self.pause_until = Some(now + pause);
                    continue;
                }
                // The value alone is damaged, or could not be copied whole: the next publish
                // mends it, so wait for that. Any other error (the channel truncated under the
                // read) is looked at again at the next look, as one of a look is.
                Err(e) => {
                    // Tries that ran out of time say how long they all took (a read's timeout,
                    // 1 s by default), not the last one's slice (2 ms).
                    let e = match (e, self.contended.take()) {
                        (Error::Contended { name, what, .. }, Some(c)) => Error::Contended {
                            name,
                            what,
                            waited: c.since.elapsed(),
                        },
                        (e, _) => e,
                    };
                    self.refused = Refused::at(newer, &self.following().channel);
                    if pauses_after(&e) {
                        self.pause_until = Some(Instant::now() + LOOK_EVERY);
                    }
                    Err(e)
                }
            });
        }
    }

    /// How long tries at the current value's copy have been overtaken, up to now: counted
    /// again from zero unless this try (begun at `tried`, read when there were tries before)
    /// began within 100 ms of when it was due (the end of the pause after the last). Counted
    /// from the end of the last try instead, a busy machine's late wake-ups and long tries (the
    /// longest pause is 64 ms) started the count again and again, and the stream never said
    /// that the value could not be copied.
    fn contended_for(&mut self, tried: Option<Instant>) -> Duration {
        let now = Instant::now();
        match self.contended {
            Some(c) if tried.is_some_and(|t| t.saturating_duration_since(c.due) <= LOOK_EVERY) => {
                now.duration_since(c.since)
            }
            _ => {
                self.contended = None;
                Duration::ZERO
            }
        }
    }
}

#[cfg(feature = "async")]
impl futures_core::Stream for ValueStream {
    type Item = ValueItem;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.get_mut().poll_value(cx).map(Some)
    }
}

/// Never terminated: the stream never ends (an error is an item, and it goes on), so it may
/// be polled again at any time, as `futures::select!` does.
#[cfg(feature = "async")]
impl futures_core::stream::FusedStream for ValueStream {
    fn is_terminated(&self) -> bool {
        false
    }
}

#[cfg(feature = "async")]
impl Drop for ValueStream {
    fn drop(&mut self) {
        if let Some(follower) = &self.follower {
            self.waiting.unregister(&follower.channel);
        }
    }
}

#[cfg(all(test, not(mmf_loom)))]
mod tests {
    use std::cell::Cell;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::channel::mark_retired;
    use crate::frame::Tag;
    use crate::layout::H_RETIRED;

    /// Writes `value` into word `word` of the header of the channel at `location`, as another
    /// process could (through the file, as `mark_retired` does).
    fn poke(location: &Location, word: usize, value: u64) {
        use std::os::unix::fs::FileExt;
        let path = location.path().unwrap();
        let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        file.write_all_at(&value.to_le_bytes(), (word * 8) as u64)
            .unwrap();
    }

    thread_local! {
        /// This thread's followers' scheduled look, instead of [`LOOK_EVERY`].
        pub(super) static SCHEDULED_LOOK: Cell<Option<Duration>> = const { Cell::new(None) };
    }

    /// A channel named for this test and process, holding one value; removed again on drop.
    struct Named(String, Location);

    impl Named {
        fn new(test: &str) -> Named {
            let name = format!("follow-unit-{test}-{}", std::process::id());
            let location = Location::parse(&name).unwrap();
            let _ = Channel::remove(&name);
            Named(name, location)
        }
    }

    impl Drop for Named {
        fn drop(&mut self) {
            let _ = Channel::remove(&self.0);
        }
    }

    /// No look of the name comes by schedule for 15 s: what a follower sees within
    /// [`PROMPT`], it saw through the `retired` mark (or the fast looks after a removal).
    fn no_scheduled_looks() {
        SCHEDULED_LOOK.set(Some(Duration::from_secs(15)));
    }

    /// Below the 15 s look and the 20 s waits below, far above the microseconds a mark and a
    /// wake take (100 ms at most, should the wake be lost): a bound no loaded machine misses,
    /// that a follower waiting for its scheduled look or its timeout cannot meet.
    const PROMPT: Duration = Duration::from_secs(10);

    /// A channel named for `test` holding "old" and a follower of it; `restart` runs in another
    /// thread 50 ms later (the follower asleep by then, which a mark does not need), `wait`
    /// here. Asserts that the wait saw [`Change::Replaced`] within [`PROMPT`], and that the old
    /// channel carries the mark, the restarting process's pid.
    fn follow_a_restart(
        test: &str,
        restart: impl FnOnce(&Named) + Send,
        wait: impl FnOnce(&mut Follower) -> Option<Change>,
    ) -> (Named, Follower) {
        no_scheduled_looks();
        let named = Named::new(test);
        let old = Channel::create(&named.0, 64).unwrap();
        old.publish_raw(Tag::TEXT, b"old").unwrap();
        let mut follower = Follower::open(&named.1, Duration::ZERO).unwrap();
        let start = Instant::now();
        let seen = std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                restart(&named);
            });
            wait(&mut follower)
        });
        assert_eq!(seen, Some(Change::Replaced));
        assert!(start.elapsed() < PROMPT, "{:?}", start.elapsed());
        assert_eq!(old.retired_mark(), u64::from(std::process::id()));
        (named, follower)
    }

    #[test]
    fn a_replacement_wakes_the_old_channels_followers_at_once() {
        let (_named, follower) = follow_a_restart(
            "replaced",
            |named| {
                let new = Options::new()
                    .capacity(64)
                    .create_or_replace(&named.1)
                    .unwrap();
                new.publish_raw(Tag::TEXT, b"new").unwrap();
            },
            |follower| follower.wait(1, Duration::from_secs(20)).unwrap(),
        );
        assert_eq!(follower.channel().retired_mark(), 0);
        assert_eq!(follower.channel().read_raw().unwrap().1, b"new");
    }

    #[test]
    fn a_removal_wakes_followers_and_the_channel_made_again_is_found() {
        let (_named, follower) = follow_a_restart(
            "restart",
            |named| {
                Channel::remove(&named.0).unwrap();
                // A restarting writer's pause between its old channel and its new one (well
                // within the second of fast looks after the follower found the name gone).
                std::thread::sleep(Duration::from_millis(20));
                Channel::create(&named.0, 64)
                    .unwrap()
                    .publish_raw(Tag::TEXT, b"again")
                    .unwrap();
            },
            |follower| follower.wait(1, Duration::from_secs(20)).unwrap(),
        );
        assert_eq!(follower.channel().read_raw().unwrap().1, b"again");
    }

    /// Runs `f` to its end on this thread, parked between polls.
    #[cfg(feature = "async")]
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        struct W(std::thread::Thread);
        impl std::task::Wake for W {
            fn wake(self: std::sync::Arc<Self>) {
                self.0.unpark()
            }
        }
        let waker = std::sync::Arc::new(W(std::thread::current())).into();
        let mut cx = std::task::Context::from_waker(&waker);
        let mut f = std::pin::pin!(f);
        loop {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::park()
        }
    }

    #[cfg(feature = "async")]
    #[test]
    fn an_async_follower_is_woken_by_a_replacement() {
        follow_a_restart(
            "async-replaced",
            |named| {
                Options::new()
                    .capacity(64)
                    .create_or_replace(&named.1)
                    .unwrap();
            },
            |follower| Some(block_on(follower.changed(1)).unwrap()),
        );
    }

    /// Rounds of [`replaced_waking_retired_alone`] in the two tests below, and how many of them
    /// may see the mark late: [`LATE`] or more after it was stored. A follower asleep on
    /// `latest` alone sleeps out its bound (`MAX_SLEEP`, 100 ms) in every round; asleep on
    /// `retired` too, it wakes within microseconds. A quarter of the rounds late leaves room
    /// for a loaded machine's stalls.
    const RETIRED_ROUNDS: usize = 40;
    const RETIRED_ROUNDS_LATE: usize = RETIRED_ROUNDS / 4;
    /// Half of `MAX_SLEEP`.
    const LATE: Duration = Duration::from_millis(50);

    /// Once a follower of `named` waits on `current` (the channel the name leads to, counted a
    /// waiter in its header), puts a new channel under the name by hand and marks `current`
    /// retired through its mapping, with a wake of the `retired` word alone. That is what
    /// reaches a follower whose look at the word came before the mark and whose sleep came
    /// after the wake that `mark_retired` makes of `latest`: only a sleep on the word itself,
    /// which the kernel compares before it sleeps and which the wake of `retired` ends, sees the
    /// mark at once. Returns the new channel's handle and when the mark was stored.
    fn replaced_waking_retired_alone(
        named: &Named,
        current: &Channel,
        round: usize,
    ) -> (Channel, Instant) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while current.info().waiters == 0 {
            assert!(Instant::now() < deadline, "the follower never waited");
            std::thread::sleep(Duration::from_micros(100));
        }
        // Asleep by now, most likely; if not, its look at the word finds the mark.
        std::thread::sleep(Duration::from_millis(2));
        let next = format!("{}-next-{round}", named.0);
        let new = Channel::create(&next, 64).unwrap();
        let from = Location::parse(&next).unwrap();
        std::fs::rename(from.path().unwrap(), named.1.path().unwrap()).unwrap();
        let word = current.retired_word();
        word.store(
            u64::from(std::process::id()),
            std::sync::atomic::Ordering::Release,
        );
        let marked = Instant::now();
        crate::os::wake_all(word);
        (new, marked)
    }

    /// Follows `test`'s channel through [`RETIRED_ROUNDS`] replacements, each seen through
    /// `wait` (which must say [`Change::Replaced`]), and asserts that fewer than
    /// [`RETIRED_ROUNDS_LATE`] of them were seen [`LATE`].
    fn follow_replacements_waking_retired_alone(
        test: &str,
        wait: impl Fn(&mut Follower) -> Option<Change>,
    ) {
        no_scheduled_looks();
        let named = Named::new(test);
        let mut current = Channel::create(&named.0, 64).unwrap();
        let mut follower = Follower::open(&named.1, Duration::ZERO).unwrap();
        // A follower that cannot sleep on a futex (a read-only handle; a system without
        // futexes) polls, and sees the mark within a millisecond anyway: this test is about the
        // sleep.
        assert!(!follower.channel().is_read_only());
        let mut late = Vec::new();
        for round in 0..RETIRED_ROUNDS {
            let (next, seen) = std::thread::scope(|s| {
                let next = s.spawn(|| replaced_waking_retired_alone(&named, &current, round));
                assert_eq!(wait(&mut follower), Some(Change::Replaced), "round {round}");
                let seen = Instant::now();
                (next.join().unwrap(), seen)
            });
            let (channel, marked) = next;
            current = channel;
            let after = seen.saturating_duration_since(marked);
            if after >= LATE {
                late.push(after);
            }
        }
        assert!(
            late.len() < RETIRED_ROUNDS_LATE,
            "{} of {RETIRED_ROUNDS} rounds saw the mark late: {late:?}",
            late.len()
        );
    }

    #[test]
    fn a_sleeping_follower_wakes_on_its_retired_word_alone() {
        // Without `futex_waitv` a blocking wait sleeps on `latest` alone, as documented, and
        // a wake of `retired` alone never reaches it (the notifier of async waits polls then).
        if crate::os::FUTEX && !crate::os::has_futex_waitv() {
            return;
        }
        follow_replacements_waking_retired_alone("retired-word", |f| {
            f.wait(1, Duration::from_secs(20)).unwrap()
        });
    }

    #[cfg(feature = "async")]
    #[test]
    fn an_async_follower_wakes_on_its_retired_word_alone() {
        follow_replacements_waking_retired_alone("retired-word-async", |f| {
            Some(block_on(f.changed(1)).unwrap())
        });
    }

    /// The mark is shared memory: a peer may write any value there while the name still leads
    /// to the channel. The follower looks once, takes the value as seen, and waits on.
    #[test]
    fn a_stray_mark_costs_one_look_and_no_early_returns_after_it() {
        no_scheduled_looks();
        let named = Named::new("stray");
        let ch = Channel::create(&named.0, 64).unwrap();
        ch.publish_raw(Tag::TEXT, b"v").unwrap();
        let mut follower = Follower::open(&named.1, Duration::ZERO).unwrap();
        // The first wait looks once: a follower takes a new channel's mark as 0 (see `look`).
        assert_eq!(follower.wait(1, Duration::ZERO).unwrap(), None);
        let looks = follower.looks;
        poke(&named.1, H_RETIRED, 0xdead);
        assert_eq!(follower.wait(1, Duration::from_millis(300)).unwrap(), None);
        // One look for the mark, one at the timeout (as every wait that times out looks): not
        // one alone (the mark unseen), not a look per turn of a loop.
        assert_eq!(follower.looks - looks, 2);
        assert_eq!(follower.mark, 0xdead);
        // And the same value does not end a wait early again.
        let start = Instant::now();
        let slice = Duration::from_millis(150);
        assert_eq!(
            follower
                .channel()
                .wait_unless_retired(1, &Until::from(slice), Some(follower.mark)),
            None
        );
        assert!(start.elapsed() >= slice, "{:?}", start.elapsed());
    }

    /// `mark_retired` writes only into one of this layout's snapshot channels, once, and only
    /// when no name leads to it any more.
    #[test]
    fn only_an_unnamed_channel_is_marked_and_only_once() {
        use std::os::unix::fs::FileExt;
        let dir = std::env::temp_dir().join(format!("mmf-mark-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let open_rw = |path: &std::path::Path| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .unwrap()
        };
        let read_word = |file: &std::fs::File, word: usize| {
            let mut b = [0u8; 8];
            file.read_exact_at(&mut b, (word * 8) as u64).unwrap();
            u64::from_le_bytes(b)
        };

        // Not a channel, and unlinked: left as it is.
        let other = dir.join("not-a-channel");
        let bytes: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 1) as u8).collect();
        std::fs::write(&other, &bytes).unwrap();
        let file = open_rw(&other);
        std::fs::remove_file(&other).unwrap();
        mark_retired(&file);
        let mut back = vec![0u8; bytes.len()];
        file.read_exact_at(&mut back, 0).unwrap();
        assert_eq!(back, bytes);

        // A channel that a removed symbolic link led to is still live under its own path: not
        // marked by the link's removal.
        let real = dir.join("real.mmf");
        let link = dir.join("link.mmf");
        let ch = Channel::create(real.to_str().unwrap(), 64).unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        Channel::remove(link.to_str().unwrap()).unwrap();
        assert!(real.exists() && !link.exists());
        assert_eq!(ch.retired_mark(), 0);
        // Nor while it has its name.
        let file = open_rw(&real);
        mark_retired(&file);
        assert_eq!(ch.retired_mark(), 0);

        // Unlinked: marked with the pid, and only once.
        std::fs::remove_file(&real).unwrap();
        file.write_all_at(&7u64.to_le_bytes(), (H_RETIRED * 8) as u64)
            .unwrap();
        mark_retired(&file);
        assert_eq!(
            read_word(&file, H_RETIRED),
            7,
            "a marked channel keeps its mark"
        );
        file.write_all_at(&0u64.to_le_bytes(), (H_RETIRED * 8) as u64)
            .unwrap();
        mark_retired(&file);
        assert_eq!(ch.retired_mark(), u64::from(std::process::id()));
        drop(ch);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
