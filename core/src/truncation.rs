//! A channel truncated under a live mapping as an error, not a crash: an opt-in, process-wide
//! `SIGBUS` handler.
//!
//! When any process shrinks a channel's file (`ftruncate`, `truncate -s 0`, `: >
//! /dev/shm/mmf.NAME`), every process that has the channel mapped and then touches a page past
//! the new end receives `SIGBUS`, whose default action ends the process. The size check at open
//! and [`Channel::verify`](crate::Channel::verify) narrow that window; [`install`] closes it for
//! whole pages past the new end (see below for the rest):
//!
//! - a `SIGBUS` at an address inside one of this process's channel mappings is absorbed: the
//!   missing pages are replaced with private zero pages, and the handle's next read, publish or
//!   `verify` returns [`Error::Truncated`](crate::Error::Truncated) (drop the handle and open
//!   the channel again);
//! - any other `SIGBUS` (another mapping, an unaligned access, one sent with `kill`) goes to the
//!   handler that was installed before, or gets the default action, exactly as without mmf.
//!
//! It is opt-in because a signal disposition belongs to the whole process: a library must not
//! take it behind its user's back. The `mmf` command installs it at start. Install it once, early
//! (before other threads run is best, though any time works); installing it twice is harmless.
//! Only Linux has the handler; elsewhere [`install`] returns an `Unsupported` error. The costs: a
//! process-wide table of mapped ranges (written at open and drop, under a lock) and one load of
//! a process-local flag per read and publish, whether the handler is installed or not.
//!
//! What it does not do:
//! - functions that return no `Result` ([`Channel::generation`], [`Channel::info`],
//!   [`Channel::incarnation`]) report what the zero pages hold (generation 0), so a loop that
//!   only polls `generation` learns of the truncation at its next read or `verify`; waits
//!   ([`Channel::wait_for_change`], async `changed`) return as if a value had come, so that the
//!   read after them reports `Truncated`: within 100 ms, as they look again at least that
//!   often (nothing wakes them at the truncation itself, which faults only when memory is
//!   touched);
//! - a file cut *inside* a page (not at a page boundary) leaves the rest of that page mapped
//!   and reading as zeros, with no fault to catch: only [`Channel::verify`]'s size check sees
//!   that (a [`Follower`](crate::Follower) runs it at each look at the name), so long-running
//!   processes with plain handles should still call it now and then;
//! - a process-wide disposition can be changed by anyone: a library installed after mmf that
//!   takes `SIGBUS` for itself replaces this handler ([`is_installed`] then says false). A
//!   `kill -BUS` reaches the handler installed before mmf's (Rust's own swallows the first one
//!   and restores the default action); mmf's handler then stands in front of that default
//!   again, but a truncation caught in the microseconds in between ends the process.
//!
//! [`Channel::verify`]: crate::Channel::verify
//! [`Channel::generation`]: crate::Channel::generation
//! [`Channel::wait_for_change`]: crate::Channel::wait_for_change
//! [`Channel::info`]: crate::Channel::info
//! [`Channel::incarnation`]: crate::Channel::incarnation
//!
//! ```
//! use mmf::{truncation, Channel, Location, Options, Tag};
//! use mmf::channel::Error;
//! truncation::install()?;
//! let path = std::env::temp_dir().join(format!("truncation-doc-{}", std::process::id()));
//! let ch = Options::new().capacity(64 * 1024).create(&Location::File(path.clone()))?;
//! ch.publish_raw(Tag::BYTES, &[7; 60_000])?;
//! // Someone shrinks the file to its first page.
//! std::fs::OpenOptions::new().write(true).open(&path)?.set_len(4096)?;
//! // Without `install`, this read would have ended the process with SIGBUS.
//! assert!(matches!(ch.read_raw(), Err(Error::Truncated { .. })));
//! assert!(matches!(ch.verify(), Err(Error::Truncated { .. })));
//! drop(ch);
//! std::fs::remove_file(&path)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::os::sigbus;

/// Installs the `SIGBUS` handler for the whole process (see the [module docs](self)); the
/// first call does it, later ones return its outcome.
///
/// A child forked by another thread while this first call runs installs the handler in its
/// own first call, at once (signal dispositions are inherited: a handler already in place
/// stays the child's).
///
/// # Errors
///
/// `Unsupported` outside Linux; the OS error (`errno`) if `sigaction` fails.
pub fn install() -> std::io::Result<()> {
    sigbus::install()
}

/// Whether the handler is in place: [`install`] succeeded, and no one has replaced the
/// process's `SIGBUS` disposition since.
pub fn is_installed() -> bool {
    sigbus::installed()
}

/// How many faults on channel mappings the handler has absorbed in this process so far.
pub fn caught() -> usize {
    sigbus::trips()
}
