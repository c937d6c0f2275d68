//! Waiting on a channel by its name, for `read --wait` and `watch`: [`mmf::Follower`] (which
//! waits for a channel to be created, and follows one removed and created again), with what a
//! command adds: a note that it waits, interrupts, a reader of its output that has gone, and
//! exit codes.

use std::time::{Duration, Instant};

use mmf::{Change, Channel, Follower, Location, Stop, Until};

use crate::exit::{Coded, EXITED, INTERRUPTED, TIMEOUT};
use crate::interrupt;

/// How often a wait wakes up to check for an interrupt and for a reader that has gone.
const SLICE: Duration = Duration::from_millis(100);

/// A channel open for waiting, and the name it was opened by.
pub struct Followed {
    follower: Follower,
    /// Whether `open` had to wait for the channel to be created.
    created_meanwhile: bool,
    /// What stderr was last told of a name that no longer leads to the channel (removed, or
    /// holding one not initialised): said once each time it changes, until a new channel.
    gone_said: Option<Gone>,
    /// The process whose exit ends the wait (`--pid`), and the switch its exit turns (seen at
    /// once: a pidfd, watched by a thread of mmf's).
    pid: Option<(u32, Stop)>,
    /// The deadline (or `None` for `--pid`'s exit) past which [`wait`](Followed::wait) last
    /// gave a look at a value already there, and how many it gave ([`LOOKS_PAST_END`]).
    looks_past: (Option<Instant>, u32),
}

/// How many times [`Followed::wait`] returns a value that is there once its deadline has passed
/// (or `--pid`'s process has exited): the last look the timeout allows, and one more read
/// where a refusal asks for it. Unbounded, a peer that moved `latest` to a value nobody could
/// read once per read kept `read --wait --timeout 2s` reading for as long as it went on (13 s
/// at 97% CPU in a liveness review). Each read keeps the library's read timeout (1 s): one
/// bounded by `--timeout` instead (10 ms for `--timeout 0s`) missed a large value that a
/// reader without a pin copies under a busy writer (the diff review: 5 of 15 reads).
const LOOKS_PAST_END: u32 = 2;

/// What a wait found under a name that no longer leads to the followed channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gone {
    /// No file: removed, not created again yet.
    Removed,
    /// A file not initialised: being created, or left by a creator that died.
    Unfinished,
}

/// What a wait's timeout adds where the channel was removed meanwhile.
const GONE_REMOVED: &str = "; the channel was removed meanwhile, and not created again";
/// What a wait's timeout adds where the channel was replaced by one not initialised.
const GONE_UNFINISHED: &str =
    "; the channel was replaced meanwhile by one not initialised yet, which never became ready";

/// Why a wait returned.
#[derive(Debug, PartialEq, Eq)]
pub enum Waited {
    /// The generation moved past the one waited on.
    Changed,
    /// The name now leads to another channel, which [`Followed::channel`] is from now on. Its
    /// generations are not comparable with the old one's: every value it holds is new.
    Replaced,
}

impl Followed {
    /// Opens the channel at `location`. If there is none yet, or one still being made, says so
    /// once on stderr and waits for it until `deadline` (`None`: for ever), ending with exit
    /// code 8 if it passes first, or 9 if process `pid` exits first (it will not create it
    /// then). A channel being created is waited for as long as its creator runs
    /// ([`Follower::open`]), and one in shared memory left half-made by a creator that died is
    /// waited past, for the channel that replaces it (saying so, and how to clear it); a file
    /// path's directory that does not exist yet is waited for with it (the note names it). What
    /// cannot appear by waiting is reported at once: a path through a file, a shared-memory
    /// directory that is missing, something there that is no channel, a file path that holds
    /// no channel header yet 250 ms after it was found.
    pub fn open(
        location: Location,
        deadline: Option<Instant>,
        pid: Option<u32>,
    ) -> anyhow::Result<Followed> {
        use mmf::channel::Error as E;
        interrupt::install();
        let exit = Stop::new();
        if let Some(pid) = pid {
            exit.stop_on_exit(pid)?;
        }
        let exited = || pid.is_some() && exit.is_stopped();
        let followed = |follower: Follower, created_meanwhile: bool| Followed {
            created_meanwhile: created_meanwhile || follower.appeared(),
            follower,
            gone_said: None,
            pid: pid.map(|p| (p, exit.clone())),
            looks_past: (None, 0),
        };
        // The first look does not wait: a missing channel is announced before the wait.
        let bound = bound(deadline, pid);
        let never_created = || {
            Coded(
                EXITED,
                format!(
                    "process {} (--pid) has exited (or never ran), and no channel named '{location}' was created",
                    pid.unwrap_or_default()
                ),
            )
        };
        // The --pid process exited, leaving the channel unfinished (it was its creator, most
        // likely): exit 9 too, the code a script waits for, with why.
        let left_unfinished = || {
            Coded(
                EXITED,
                format!(
                    "process {} (--pid) has exited (or never ran), and channel '{location}' was left unfinished \
                     (not initialised); {}",
                    pid.unwrap_or_default(),
                    crate::exit::clear_unfinished(crate::cmd::typed(&location))
                ),
            )
        };
        // Read before the look: a channel the process made before it exited is found by it.
        let exited_before = exited();
        let being_made = match Follower::open(&location, Duration::ZERO) {
            Ok(follower) => return Ok(followed(follower, false)),
            Err(e @ E::NotFound { .. }) if !location.can_appear() => return Err(e.into()),
            // The --pid process exited already: it will not create the channel now.
            Err(E::NotFound { .. }) if exited_before => return Err(never_created().into()),
            // A typo would otherwise wait in silence.
            Err(E::NotFound { .. }) => {
                match crate::exit::missing_dir(crate::cmd::typed(&location)) {
                    // A service that makes its directory when it starts, or a typo.
                    Some(dir) => crate::exit::note(format_args!(
                        "no channel named '{location}' yet, nor its directory {}; waiting for \
                         them to be created{bound}",
                        dir.display()
                    )),
                    // (A name a letter or two from a channel's is pointed at it, as `read`
                    // without a wait does: a harness author's typo waited out its timeout.)
                    None => crate::exit::note(format_args!(
                        "no channel named '{location}'{} yet{}; waiting for it to be \
                         created{bound}",
                        crate::exit::shm_place(crate::cmd::typed(&location)),
                        crate::exit::near_hint(&location)
                    )),
                }
                false
            }
            Err(E::BeingCreated { .. }) => {
                crate::exit::note(format_args!(
                    "channel '{location}' is being created by another process (a large one \
                     takes a while); waiting for it{bound}"
                ));
                true
            }
            // Another program's exclusive `flock` on the file (mmf's own keep one for an
            // instant): the wait below waits for it to go, to its deadline.
            Err(ref e) if e.is_locked_out() => {
                crate::exit::note(format_args!(
                    "channel '{location}' is locked by another program (an exclusive flock on \
                     its file); waiting for the lock to go{bound}"
                ));
                false
            }
            Err(E::NotInitialized { .. }) if exited_before => return Err(left_unfinished().into()),
            // Not initialised 250 ms after it was found, in shared memory: most likely left
            // by a creator that died, which its restart (`new --exist-ok`, a service's
            // `open_or_create`) replaces; the wait below waits past it, or gives it up soon
            // as `Follower::open` does (a file a process holds steadily). Said where no
            // process holds it now (or it was removed already): a brief lock of another
            // process's open does not make a leftover look like a live file.
            Err(E::NotInitialized { .. }) if matches!(location, Location::Shm(_)) => {
                if !mmf::channel::host::in_use(&location).unwrap_or(false) {
                    crate::exit::note(format_args!(
                        "channel '{location}' was left unfinished by a creator that died (not \
                         initialised; {}); waiting for it to be created again{bound}",
                        crate::exit::clear_unfinished(crate::cmd::typed(&location))
                    ));
                }
                false
            }
            Err(e) => return Err(e.into()),
        };
        // The --pid process exited: it will not create the channel now. One last look, as it
        // may have created it right before it exited; a channel still being made then is
        // another process's, which --pid does not wait for.
        let after_exit = || match Follower::open(&location, Duration::ZERO) {
            Ok(follower) => Ok(followed(follower, true)),
            Err(E::NotFound { .. }) => Err(never_created().into()),
            Err(E::NotInitialized { .. }) => Err(left_unfinished().into()),
            Err(E::BeingCreated { .. }) => Err(Coded(
                EXITED,
                format!(
                    "process {} (--pid) has exited (or never ran), and channel '{location}' is \
                     still being made by another process",
                    pid.unwrap_or_default()
                ),
            )
            .into()),
            Err(e) => Err(e.into()),
        };
        // One wait to the deadline or the --pid process's exit, on a thread of its own (so that
        // a channel being made is judged by one follower throughout), while this one looks at
        // interrupts every SLICE.
        let (tx, rx) = std::sync::mpsc::channel();
        let until = Until::from(deadline).or(&exit);
        std::thread::spawn({
            let location = location.clone();
            move || drop(tx.send(Follower::open(&location, until)))
        });
        loop {
            let opened = match rx.recv_timeout(SLICE) {
                Ok(opened) => opened,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if interrupt::requested() {
                        return Err(Coded(INTERRUPTED, String::new()).into());
                    }
                    if output_gone() {
                        // `mmf watch T | head` whose head has gone before T exists: nothing
                        // printed can be read, as in `wait` below.
                        return Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe).into());
                    }
                    continue;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    anyhow::bail!("the wait for channel '{location}' ended without an answer")
                }
            };
            return match opened {
                Ok(follower) => Ok(followed(follower, true)),
                // Ended by the exit, not the deadline.
                Err(
                    E::NotFound { .. }
                    | E::BeingCreated { .. }
                    | E::NotInitialized { .. }
                    | E::Stopped { .. },
                ) if exited() => after_exit(),
                Err(E::NotFound { .. }) => Err(Coded(
                    TIMEOUT,
                    match crate::exit::missing_dir(crate::cmd::typed(&location)) {
                        Some(dir) => format!(
                            "no channel named '{location}' appeared within the timeout, nor its \
                             directory {}",
                            dir.display()
                        ),
                        None => format!(
                            "no channel named '{location}' appeared{} within the timeout",
                            crate::exit::shm_place(crate::cmd::typed(&location))
                        ),
                    },
                )
                .into()),
                // Left unfinished by a creator that died, still, at the deadline (one held is
                // refused at once: not a timeout).
                Err(E::NotInitialized { .. }) if deadline.is_some_and(|d| Instant::now() >= d) => {
                    Err(Coded(
                        TIMEOUT,
                        format!(
                            "channel '{location}' was still left unfinished (not initialised) \
                             when the timeout passed; {}",
                            crate::exit::clear_unfinished(crate::cmd::typed(&location))
                        ),
                    )
                    .into())
                }
                Err(E::BeingCreated { .. }) => Err(Coded(
                    TIMEOUT,
                    format!(
                        "channel '{location}' was still being created when the timeout passed{}",
                        if being_made {
                            ""
                        } else {
                            " (a process holds its file, not initialised yet)"
                        }
                    ),
                )
                .into()),
                Err(e) => Err(e.into()),
            };
        }
    }

    /// Whether the channel did not exist yet when [`open`](Followed::open) was called: then
    /// every value it holds is new to the caller.
    pub fn created_meanwhile(&self) -> bool {
        self.created_meanwhile
    }

    /// The channel the name leads to (as of the last wait).
    /// Whether a look past the end of the wait (`key`: the deadline that passed, `None` for
    /// `--pid`'s exit) may still return a value that is there: [`LOOKS_PAST_END`] of them.
    fn look_past(&mut self, key: Option<Instant>) -> bool {
        if self.looks_past.0 != key {
            self.looks_past = (key, 0);
        }
        self.looks_past.1 += 1;
        self.looks_past.1 <= LOOKS_PAST_END
    }

    pub fn channel(&self) -> &Channel {
        self.follower.channel()
    }

    /// Tells the follower that the read of generation `g` failed ([`Follower::refuse`]), right
    /// after it, before anything is said of it: `true` where the value should be read once
    /// more first (the writer may have published that generation since).
    pub fn refuse(&mut self, g: u64) -> bool {
        self.follower.refuse(g)
    }

    /// Whether the last wait found the name leading nowhere ([`Follower::is_gone`]).
    pub fn is_gone(&self) -> bool {
        self.follower.is_gone()
    }

    /// Waits until the channel's generation moves past `since` or the name leads to another
    /// channel. The deadline passing is exit code 8 with the message `timed_out` builds, the
    /// exit of the `--pid` process (with nothing newer) exit code 9, an interrupt (Ctrl-C,
    /// SIGTERM, SIGHUP, and the others of `interrupt`) the code `INTERRUPTED`, on which `main`
    /// ends by the signal.
    ///
    /// Says on stderr, once each, that the channel was removed, or replaced by one not
    /// initialised (the wait goes on, for a channel created again under the name, or finished),
    /// and that a new one was found: a script that kept a
    /// generation number must know it no longer applies.
    ///
    /// `refused`: the generation of a value the caller's read refused (damaged), which is not
    /// new: the wait goes on past it, for another value past `since` ([`Follower::wait_past`]).
    pub fn wait(
        &mut self,
        since: u64,
        refused: Option<u64>,
        deadline: Option<Instant>,
        timed_out: impl FnOnce(&Channel) -> String,
    ) -> anyhow::Result<Waited> {
        interrupt::install();
        loop {
            if interrupt::requested() {
                return Err(Coded(INTERRUPTED, String::new()).into());
            }
            // Its exit looked at before the generation: a value it published and then exited
            // is still seen.
            if let Some(pid) = self
                .pid
                .as_ref()
                .filter(|(_, exit)| exit.is_stopped())
                .map(|(pid, _)| *pid)
            {
                if self.follower.newer_than(since, refused).is_some() && self.look_past(None) {
                    return Ok(Waited::Changed);
                }
                return Err(Coded(
                    EXITED,
                    format!(
                        "process {pid} (--pid) has exited (or never ran), and no value newer than generation \
                         {since} of '{}' came",
                        self.follower.location()
                    ),
                )
                .into());
            }
            let Some(left) = left(deadline) else {
                // A deadline that passed (`--timeout 0s` included) still sees a value that is
                // there already: "returns at once if the current value is newer".
                if self.follower.newer_than(since, refused).is_some() && self.look_past(deadline) {
                    return Ok(Waited::Changed);
                }
                // Said where the channel went meanwhile (a harness author's review: the timeout
                // alone read as a channel that was there and idle).
                let gone = match self.gone_said {
                    Some(Gone::Removed) => GONE_REMOVED,
                    Some(Gone::Unfinished) => GONE_UNFINISHED,
                    None => "",
                };
                let why = timed_out(self.channel()) + gone;
                return Err(Coded(TIMEOUT, why).into());
            };
            // A channel truncated or overwritten under the mapping is an error here, rather
            // than a wait for ever on memory no writer reaches (see `Follower::wait`).
            let slice = Until::timeout(left.min(SLICE));
            let slice = match &self.pid {
                Some((_, exit)) => slice.or(exit),
                None => slice,
            };
            match self.follower.wait_past(since, refused, slice)? {
                Some(Change::Replaced) => {
                    // Removed and created again, or renamed over (`new --force`), which the
                    // follower cannot tell apart: both said (a review found a `new --force`
                    // called a removal).
                    crate::exit::note(format_args!(
                        "'{}' is a new channel now (created again under the name, or put in its \
                         place by `new --force`; incarnation {:016x}); following it, and its \
                         generations start again from 1",
                        self.follower.location(),
                        self.channel().incarnation()
                    ));
                    self.gone_said = None;
                    return Ok(Waited::Replaced);
                }
                // A newer value; and what a later `Change` (non-exhaustive) may tell besides,
                // which the read that follows looks at.
                Some(_) => return Ok(Waited::Changed),
                // Removed and not created again (yet), or replaced by a channel not finished
                // (being made slowly, or left by a creator that died): the wait goes on, which
                // without a word looks like a wait on an idle channel.
                None if self.follower.is_gone() => {
                    let location = self.follower.location();
                    let gone = if location.path().is_some_and(|p| p.exists()) {
                        Gone::Unfinished
                    } else {
                        Gone::Removed
                    };
                    if self.gone_said != Some(gone) {
                        let bound = bound(deadline, self.pid.as_ref().map(|(p, _)| *p));
                        match gone {
                            Gone::Unfinished => crate::exit::note(format_args!(
                                "channel '{location}' was replaced by one not initialised yet \
                                 (being created, or left unfinished by a creator that died: if \
                                 no process is creating it, {}); waiting for it to be ready or \
                                 created again{bound}",
                                crate::exit::clear_unfinished(crate::cmd::typed(location))
                            )),
                            Gone::Removed => crate::exit::note(format_args!(
                                "channel '{location}' was removed; waiting for it to be created \
                                 again{bound}"
                            )),
                        }
                        self.gone_said = Some(gone);
                    }
                }
                None => {}
            }
            if output_gone() {
                // `mmf watch T | head -n 3`: head has exited, so nothing printed from now on
                // can be read. End as a write would have (quietly, exit 0) instead of at the
                // next value, which on an idle channel may never come.
                return Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe).into());
            }
        }
    }
}

/// Whether standard output is a pipe or socket whose reader has gone (poll(2) reports an
/// error or hang-up on it); a terminal or a file never is.
fn output_gone() -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let stdout = std::io::stdout();
    let mut fds = [PollFd::new(&stdout, PollFlags::empty())];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    poll(&mut fds, Some(&now))
        .is_ok_and(|n| n > 0 && fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP))
}

/// What a note that the command waits says bounds the wait: nothing where `--timeout` does,
/// the exit of the `--pid` process where it alone does, and how to bound it where nothing does.
fn bound(deadline: Option<Instant>, pid: Option<u32>) -> String {
    match (deadline, pid) {
        (Some(_), _) => String::new(),
        (None, Some(pid)) => format!(" (until process {pid} exits; --timeout bounds the wait too)"),
        (None, None) => " (--timeout bounds the wait)".to_owned(),
    }
}

/// The time left until `deadline`: `Some(Duration::MAX)` without one, `None` once it passed.
fn left(deadline: Option<Instant>) -> Option<Duration> {
    match deadline {
        None => Some(Duration::MAX),
        Some(d) => d
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero()),
    }
}

/// The deadline `timeout` from now (`None`: no timeout, or one too far away to represent).
pub fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

/// Whether a read's error `e` is of the value it reached alone, which a wait (`read --wait`,
/// `watch`) says and goes past, for the publish that replaces it, as `Follower` does: damage
/// ([`mended_by_publish`](mmf::channel::Error::mended_by_publish)), or no whole copy within the
/// read's time (`Contended`: a frame a crash left half written, on a channel with checksums;
/// or writers overtaking the read all along). A wait ended there with exit 8 after a second,
/// whatever its `--timeout`.
pub fn passed_by_wait(e: &mmf::channel::Error) -> bool {
    e.mended_by_publish() || matches!(e, mmf::channel::Error::Contended { .. })
}

/// How many lines [`waiting_past`] says in a second at most.
const DAMAGE_LINES: u32 = 5;

/// Says on stderr that the value a wait of `verb` on channel `name` reached could not be read
/// (`e`, [`passed_by_wait`]), and that the wait goes on for the publish that replaces it.
///
/// At most [`DAMAGE_LINES`] such lines a second: a peer that stores damaged values as fast as
/// it can (each store an 8-byte write) flooded stderr with 866,895 lines, 385 MB, in 4 s of a
/// liveness review. The lines left out are counted in the next one said.
pub fn waiting_past(e: mmf::channel::Error, verb: &str, name: &std::ffi::OsStr) {
    /// The second now counted (from its first line), the lines said in it, and those left out.
    static SAID: std::sync::Mutex<Option<(Instant, u32, u64)>> = std::sync::Mutex::new(None);
    let mut said = SAID
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (second, lines, left_out) = said.get_or_insert((Instant::now(), 0, 0));
    if second.elapsed() >= Duration::from_secs(1) {
        (*second, *lines) = (Instant::now(), 0);
    }
    if *lines >= DAMAGE_LINES {
        *left_out += 1;
        return;
    }
    *lines += 1;
    let since = match std::mem::take(left_out) {
        0 => String::new(),
        n => format!(" (and {n} more like it since the last such line)"),
    };
    drop(said);
    let said = match e {
        // Its "retry later" is what the wait does.
        mmf::channel::Error::Contended {
            name, what, waited, ..
        } => format!(
            "channel '{name}' stayed busy for {} ms ({what})",
            waited.as_millis()
        ),
        e => crate::exit::report(&e.into(), verb, Some(name)),
    };
    // Said under --quiet too: a value lost to damage is not a note.
    crate::exit::say(format_args!("{said}{since}; waiting for the next value"));
}
