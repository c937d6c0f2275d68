//! Waiting on a channel by its name, for `read --wait` and `watch`: a channel that does not exist
//! yet is waited for, and one that is removed and created again is followed to the new channel
//! (its handle alone would keep waiting on the old memory, which no writer can reach any more).

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use mmf::{Channel, Location, Options};

use crate::exit::{Coded, INTERRUPTED, TIMEOUT};
use crate::interrupt;

/// How often a wait wakes up to check for an interrupt and for a replaced channel.
const SLICE: Duration = Duration::from_millis(100);

/// A channel open for waiting, and the name it was opened by.
pub struct Followed {
    location: Location,
    channel: Channel,
    /// Whether `open` had to wait for the channel to be created.
    created_meanwhile: bool,
}

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
    /// Opens the channel at `location`. If there is none yet, says so once on stderr and waits
    /// for it until `deadline` (`None`: for ever), ending with exit code 8 if it passes first.
    /// What cannot appear by waiting is reported at once: a path whose directory is missing, and
    /// a channel that is there but not initialised (see [`absent`]).
    pub fn open(location: Location, deadline: Option<Instant>) -> anyhow::Result<Followed> {
        interrupt::install();
        let mut created_meanwhile = false;
        loop {
            match try_open(&location) {
                Ok(channel) => {
                    return Ok(Followed {
                        location,
                        channel,
                        created_meanwhile,
                    })
                }
                Err(e) if !absent(&e) || !can_appear(&location) => return Err(e),
                Err(_) if created_meanwhile => {}
                Err(_) => {
                    // A typo would otherwise wait in silence.
                    let _ =
                        writeln!(
                        std::io::stderr(),
                        "mmf: no channel named '{location}' yet; waiting for it to be created{}",
                        if deadline.is_some() { "" } else { " (--timeout bounds the wait)" }
                    );
                    created_meanwhile = true;
                }
            }
            if interrupt::requested() {
                return Err(Coded(INTERRUPTED, String::new()).into());
            }
            match left(deadline) {
                Some(left) => std::thread::sleep(left.min(SLICE)),
                None => {
                    return Err(Coded(
                        TIMEOUT,
                        format!("no channel named '{location}' appeared within the timeout"),
                    )
                    .into())
                }
            }
        }
    }

    /// Whether the channel did not exist yet when [`open`](Followed::open) was called: then
    /// every value it holds is new to the caller.
    pub fn created_meanwhile(&self) -> bool {
        self.created_meanwhile
    }

    /// The channel the name leads to (as of the last wait).
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Waits until the channel's generation moves past `since` or the name leads to another
    /// channel. The deadline passing is exit code 8 with the message `timed_out` builds, an
    /// interrupt (Ctrl-C, SIGTERM) exit code 130.
    pub fn wait(
        &mut self,
        since: u64,
        deadline: Option<Instant>,
        timed_out: impl FnOnce() -> String,
    ) -> anyhow::Result<Waited> {
        interrupt::install();
        loop {
            if interrupt::requested() {
                return Err(Coded(INTERRUPTED, String::new()).into());
            }
            let Some(left) = left(deadline) else {
                // A deadline that passed (`--timeout 0s` included) still sees a value that is
                // there already: "returns at once if the current value is newer".
                if self.channel.generation() > since {
                    return Ok(Waited::Changed);
                }
                return Err(Coded(TIMEOUT, timed_out()).into());
            };
            if self
                .channel
                .wait_for_change(since, left.min(SLICE))
                .is_some()
            {
                return Ok(Waited::Changed);
            }
            if output_gone() {
                // `mmf watch T | head -n 3`: head has exited, so nothing printed from now on
                // can be read. End as a write would have (quietly, exit 0) instead of at the
                // next value, which on an idle channel may never come.
                return Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe).into());
            }
            if !self.channel.is_current()? {
                match try_open(&self.location) {
                    Ok(channel) => {
                        self.channel = channel;
                        return Ok(Waited::Replaced);
                    }
                    // Removed and not (yet) created again: keep waiting, and looking.
                    Err(e) if absent(&e) => {}
                    Err(e) => return Err(e),
                }
            } else {
                // Truncated or resized under the mapping, or its header overwritten: an error
                // now, rather than waiting for ever on memory no writer reaches (a read past a
                // truncated file's end is caught too, see `mmf::truncation`).
                self.channel.verify()?;
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

/// Whether a channel could be created at `location`: not under a path into a missing directory.
fn can_appear(location: &Location) -> bool {
    location
        .path()
        .as_deref()
        .and_then(Path::parent)
        .is_none_or(|dir| dir.as_os_str().is_empty() || dir.is_dir())
}

/// Whether an open failed only because the channel is not there (yet). A channel that is there
/// but not initialised is not waited for: `Options::open` already gave its creator 250 ms, and
/// one that stays so was left by a creator that died.
fn absent(e: &anyhow::Error) -> bool {
    e.chain().any(|e| {
        matches!(
            e.downcast_ref::<mmf::core::Error>(),
            Some(mmf::core::Error::NotFound { .. })
        )
    })
}

/// Opens read-write if allowed (a pin entry lets a waiter sleep on the futex), else read-only
/// (which waits by polling).
fn try_open(location: &Location) -> anyhow::Result<Channel> {
    match Options::new().open(location) {
        Err(mmf::core::Error::PermissionDenied { .. }) => {
            Ok(Options::new().read_only(true).open(location)?)
        }
        other => Ok(other?),
    }
}
