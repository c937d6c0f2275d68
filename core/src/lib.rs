//! `mmf-core`: named shared-memory channels that hold the latest value.
//!
//! A [`Channel`] lives in OS shared memory under a plain name (`/dev/shm/mmf.NAME` on Linux,
//! or in the directory the environment variable `MMF_SHM_DIR` names), in a regular file
//! (persisted), or in private memory. Writers [`publish_raw`](Channel::publish_raw)
//! byte strings tagged with a codec [`Tag`]; readers [`read_into`](Channel::read_into) a
//! consistent copy of the newest one together with its generation. A reader never sees half a
//! value, never blocks a writer, and keeps making progress under a writer that publishes
//! back-to-back.
//!
//! ```
//! use mmf::{Channel, Tag};
//! let ch = Channel::anonymous(1024)?;
//! assert_eq!(ch.generation(), 0);
//! ch.publish_raw(Tag::TEXT, b"Hello World!")?;
//! let mut buf = Vec::new();
//! let meta = ch.read_into(&mut buf)?;
//! assert_eq!((meta.generation, meta.tag, &buf[..]), (1, Tag::TEXT, &b"Hello World!"[..]));
//! # Ok::<(), mmf::channel::Error>(())
//! ```
//!
//! Most programs depend on the facade crate `mmf`, which re-exports everything here (and the
//! typed reads of `mmf-codec`): in its documentation, in your code and in the examples here
//! these items are `mmf::Channel`, `mmf::Follower`, `mmf::Stop` (or `use mmf::prelude::*;`),
//! and this crate's [`Error`] is `mmf::channel::Error` (`mmf::Error` is `mmf-codec`'s).
//!
//! # How it works
//!
//! The mapping starts with a header (magic, version, geometry, the `latest` word that packs the
//! generation with the slot holding it, beside it a description of that value and, for values of
//! up to 120 bytes, a copy of it; a writer-lock word and a table of reader pins), followed by
//! `readers + 2` slots, each a seqlocked frame (stamp, generation, length, tag, checksum,
//! payload). The writer fills a slot no reader has pinned and then flips `latest`; a reader
//! copies the latest value (from the header when it is small) and validates the copy, and pins
//! the slot when a writer overtook it. The protocol is in `snapshot.rs`, the stamp in
//! `seqlock.rs`, the byte layout in `layout.rs` and in `docs/FORMAT.md`.
//!
//! # Safety and trust
//!
//! Shared memory is input from other processes, possibly buggy or hostile: every length, slot
//! index and stamp read from it is checked before use, and a bad mapping gives an [`Error`], never
//! a panic or an out-of-bounds access. `unsafe` lives in `region.rs` (the code that touches
//! mapped memory, and only through atomics), `os/` (system calls and the `SIGBUS` handler) and,
//! with the `async` feature, `notify.rs` (its helper thread loads the `latest` words of the
//! channels it watches, kept mapped while registered, and calls `futex_waitv`). A
//! mapped file that another process *truncates* makes the kernel raise `SIGBUS` on any access
//! past its new end, which ends the process unless it opted in to [`truncation::install`]: then
//! the handle's next operation on the pages cut off fails with [`Error::Truncated`]. A cut inside
//! a page raises no fault, and the rest of that page reads as zeros: [`Channel::verify`] sees
//! that ([`Error::Corrupt`], with the file's new size), as a [`Follower`]'s look at the name
//! does; see [`truncation`]. mmf also
//! checks the size at open, and channels in `/dev/shm` are created 0600 so only their owner can
//! truncate them. That owner is whoever made the file: in a directory anyone may write, another
//! user may make a channel under a name before the service that means to, and an open of the
//! name then gets theirs ([`FileOwner`] in [`Info::file`] tells).
//!
//! Processes in different PID namespaces (containers sharing `/dev/shm`) can share a channel:
//! every read-write handle on a channel file holds a kernel lock (an open-file-description lock
//! on a byte of the file) that says its process is alive, so a writer that dies holding the
//! writer lock is recognised as dead, and a live one as alive, whatever namespaces the two are
//! in. Where that lock is not available, liveness falls back to pids, and an owner of another
//! PID namespace is then never taken for dead (docs/FORMAT.md §5, §14).

// docs.rs (`--cfg docsrs`, nightly) labels each item that a feature gates, `async` here.
#![cfg_attr(docsrs, feature(doc_cfg))]
// Not the model checks' own flag, which no published build sets.
#![cfg_attr(docsrs, doc(auto_cfg(hide(mmf_loom))))]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]
#![warn(clippy::missing_errors_doc)]
#![cfg_attr(mmf_loom, allow(dead_code))]

// Said at once, not as some hundred errors about Unix file descriptors (a review's Windows
// check): a port starts in `os/unsupported.rs`.
#[cfg(not(unix))]
compile_error!("mmf-core builds on Unix only (Linux, FreeBSD, macOS); other systems need a port");

// Every word of a channel is an `AtomicU64`, and a read-only handle loads them from a
// `PROT_READ` mapping: the standard library allows `Relaxed` atomic loads of 8 bytes from
// read-only memory on the 64-bit architectures of its table only (4 bytes on 32-bit ones), and
// on a 32-bit x86 a 64-bit load may be a `lock cmpxchg8b`, a write that faults there (an
// unsafe-code audit's finding). x86-64 and AArch64 are in that table.
#[cfg(not(target_pointer_width = "64"))]
compile_error!(
    "mmf-core builds for 64-bit targets only: its 64-bit atomics on read-only mappings are \
     sound there alone"
);

// Under loom only the protocol is compiled: the handle maps real files, which loom cannot model.
#[cfg(not(mmf_loom))]
mod channel;
mod error;
#[cfg(unix)]
mod exit_watch;
#[cfg(not(mmf_loom))]
mod follow;
mod frame;
#[cfg(not(mmf_loom))]
pub mod host;
mod layout;
mod lock;
mod name;
#[cfg(all(feature = "async", not(mmf_loom)))]
pub mod notify;
mod os;
mod region;
mod seqlock;
mod snapshot;
mod stop;
mod sync;
#[cfg(not(mmf_loom))]
pub mod truncation;
#[cfg(not(mmf_loom))]
mod wait;

#[cfg(all(test, mmf_loom))]
mod loom_tests;
#[cfg(all(test, not(mmf_loom)))]
mod race_tests;
#[cfg(test)]
mod testing;

#[cfg(not(mmf_loom))]
pub use channel::{
    list, wait_any, Channel, FileOwner, Info, Listing, LockOwner, Options, Origin, Recovered,
};
pub use error::{Error, Result};
#[cfg(not(mmf_loom))]
pub use follow::{Change, Follower};
#[cfg(all(feature = "async", not(mmf_loom)))]
pub use follow::{FollowerChanged, OpenFollower, ValueStream};
pub use frame::{Meta, Tag};
pub use layout::{MAGIC, MAX_CAPACITY, MAX_READERS, VERSION};
pub use name::{validate_name, Location, ShmName, ToLocation, MAX_NAME_LEN, SHM_PREFIX};
#[cfg(all(feature = "async", not(mmf_loom)))]
pub use notify::{Changed, Stopped};
pub use os::OwnerState;
pub use snapshot::SlotWriter;
pub use stop::{Stop, StopReason, Until};

/// Internals exposed for the benchmarks only; not part of the API.
#[doc(hidden)]
pub mod __bench {
    #[cfg(feature = "bench-internals")]
    pub use crate::region::{atomic_load_bytes, atomic_store_bytes};

    /// [`Channel::publish_raw`](crate::Channel::publish_raw) compiled without the check for
    /// waiters that follows the store of `latest`: what a publish would cost if mmf had no
    /// notifications. It wakes nobody, so a thread blocked in `wait_for_change` misses the
    /// value: for measuring that check only (`mmf-bench`'s publish-cost section), hence behind
    /// the `bench-internals` feature.
    #[cfg(all(not(mmf_loom), feature = "bench-internals"))]
    #[inline]
    pub fn publish_raw_without_wake(
        ch: &crate::Channel,
        tag: crate::Tag,
        bytes: &[u8],
    ) -> crate::Result<u64> {
        ch.publish_raw_as::<false>(tag, bytes)
    }
}
