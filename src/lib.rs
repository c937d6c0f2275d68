//! # mmf: named shared-memory channels
//!
//! Two processes on one host share the latest value of something (a config, a result, a
//! status) through a named mapping in `/dev/shm` or a file. Writers publish atomically; readers
//! copy consistent snapshots and never see half a value, never block a writer.
//!
//! This facade re-exports the workspace's crates so that one `use` line is enough:
//!
//! ```
//! use mmf::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct Status { step: u64, loss: f64 }
//!
//! # let name = format!("facade-doc-{}", std::process::id());
//! let ch = Channel::create(&name, 4096)?;                  // process A
//! ch.publish(&Status { step: 10, loss: 0.25 })?;
//!
//! let other = Channel::open(&name)?;                       // process B
//! let s: Status = other.read()?;
//! assert_eq!(s, Status { step: 10, loss: 0.25 });
//! assert_eq!(other.read_json()?, r#"{"step":10,"loss":0.25}"#);
//! Channel::remove(&name)?;
//! # Ok::<(), mmf::Error>(())
//! ```
//!
//! - [`Channel`], [`Options`], [`Location`], [`list`]: the channel itself (`mmf-core`); what
//!   opens, creates or removes one takes a [`Location`], a name or a path ([`ToLocation`]).
//! - [`ChannelExt`]: typed publish/read of serde values, text, bytes and JSON (`mmf-codec`).
//! - [`Follower`], [`FollowerExt`]: a channel followed by its name, waited for until it is
//!   created and across the writer's restarts, and a consumer's loop over its values.
//! - [`Until`], [`Stop`]: what bounds a blocking wait, a timeout or a deadline, and a switch that
//!   ends it early: turned by another thread, a signal handler, or the exit of another process
//!   (a worker that ends without publishing its result).
//! - [`Error`]: the codec's error, which wraps the channel layer's ([`channel::Error`]): a
//!   function that returns [`mmf::Result`](Result) takes `?` on both kinds of calls. Not the
//!   other way round: one that returns [`channel::Result`] takes it on the untyped calls only
//!   (`Channel::open`, `publish_raw`), as a typed call's error need not be the channel's.
//!
//! ## Several channels at once
//!
//! A wait blocks on one channel. To take values from several as they come (a harness's
//! workers, each publishing to a channel of its own), follow each in a thread of its own and
//! gather what they read, or, in async code (feature `async`), select over their futures
//! (`Follower::changed`, `Follower::values`). One [`Stop`] ends every thread's wait:
//!
//! ```
//! use std::{sync::mpsc, thread, time::Duration};
//! use mmf::prelude::*;
//!
//! # let tag = std::process::id();
//! let names: Vec<String> = (0..3).map(|i| format!("several-doc-{tag}-worker-{i}")).collect();
//! let done = Stop::new();
//! let (tx, rx) = mpsc::channel();
//! let followers: Vec<_> = names
//!     .iter()
//!     .map(|name| {
//!         let (name, tx, done) = (name.clone(), tx.clone(), done.clone());
//!         thread::spawn(move || -> mmf::Result<()> {
//!             // Waits for the worker to create its channel, then for each value, until `done`.
//!             let mut follower = Follower::open(&name, Until::forever().or(&done))?;
//!             let mut since = 0;
//!             while let Some((_, step)) =
//!                 follower.read_after::<u64>(&mut since, Until::forever().or(&done))?
//!             {
//!                 let _ = tx.send((name.clone(), step));
//!             }
//!             Ok(())
//!         })
//!     })
//!     .collect();
//! // The workers (other processes, in a harness).
//! for (i, name) in names.iter().enumerate() {
//!     let worker = Channel::create(name, 64)?;
//!     worker.publish(&(10 * i as u64))?;
//! }
//! let mut seen: Vec<(String, u64)> = (0..3)
//!     .map(|_| rx.recv_timeout(Duration::from_secs(10)).expect("a value"))
//!     .collect();
//! seen.sort();
//! assert_eq!(seen[2], (names[2].clone(), 20));
//! done.stop();
//! for f in followers {
//!     // A wait that the stop ended is `None` (or, before the channel was found, `Stopped`).
//!     let _ = f.join().unwrap();
//! }
//! # for n in &names { Channel::remove(n)?; }
//! # Ok::<(), mmf::Error>(())
//! ```
//!
//! ## When the writer restarts
//!
//! A [`Channel`] handle is bound to the channel it opened, not to its name. A writer that
//! starts anew with [`Options::create_or_replace`] (or `mmf new NAME --force`), or removes the
//! channel, leaves a handle opened before reading the old channel's memory: its reads go on
//! returning the last value published there, `Ok`, and its waits time out. A consumer that
//! must outlive its writer's restarts follows the name with a [`Follower`], which opens what
//! the name leads to now; a long-lived handle can ask [`Channel::retired_hint`] (one load, set
//! by the mmf process that removed or replaced it) and [`Channel::is_current`] (a `stat` of
//! the name, which also sees a plain `rm`).
//!
//! A consumer that must end when its writer does has two signs of it. A writer that removes
//! its channel when it is done: the follower's [`is_gone`](Follower::is_gone), once a wait
//! bounded by a timeout returns `None` (the wait itself goes on, for a channel created again
//! under the name). A writer process that exits: a [`Stop`] turned by its exit
//! ([`Stop::stop_on_exit`] with its pid, as [`Info::last_writer_pid`] gives it, or
//! [`Stop::on_exit_of`] for a child), in the wait's [`Until`].
//!
//! ## Where channels live
//!
//! A name without '/' (`"status"`) is a shared-memory channel: the file `mmf.status` in
//! `/dev/shm` on Linux, or in the directory the environment variable `MMF_SHM_DIR` names where
//! it is set and not empty (a container's volume, a test's own directory). It is read at each
//! call, so every process that shares a channel needs the same setting. A name with '/'
//! (`"./state.mmf"`, `"/var/lib/app/x.mmf"`) is a file path, which survives a restart of the
//! machine. Either kind stays until it is removed ([`Channel::remove`], `mmf remove`, or
//! [`Options::remove_on_drop`]), whatever processes come and go: a shared-memory channel holds
//! about `(readers + 2) x` its capacity of memory meanwhile.
//!
//! ## Changing your types
//!
//! A typed publish writes a struct as a MessagePack map keyed by its fields' names (and an
//! enum's variant by its name), so the two sides of a channel need not change at once: a
//! reader ignores fields it does not know, and reads a field the writer does not send yet if
//! the field is an `Option` or has `#[serde(default)]`. Renaming or retyping a field, or a
//! variant the reader does not know, is an [`Error::Decode`] naming the value's generation,
//! which a reader's loop can say and go past.
//!
//! ```
//! use mmf::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct V1 { step: u64 }
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct V2 { step: u64, #[serde(default)] loss: f64, note: Option<String> }
//!
//! let ch = Channel::anonymous(256)?;
//! ch.publish(&V1 { step: 1 })?;                            // an older writer
//! assert_eq!(ch.read::<V2>()?, V2 { step: 1, loss: 0.0, note: None });
//! ch.publish(&V2 { step: 2, loss: 0.5, note: None })?;    // a newer writer
//! assert_eq!(ch.read::<V1>()?.step, 2);
//! #[derive(Deserialize, Debug)]
//! struct Renamed { epoch: u64 }
//! let err = ch.read::<Renamed>().unwrap_err();
//! assert_eq!(err.generation(), Some(2));
//! assert!(err.to_string().contains("missing field `epoch`"));
//! # Ok::<(), mmf::Error>(())
//! ```
//!
//! `use mmf::*;` brings nothing named like a crate of the standard library's: `core::` and
//! `std::` paths keep working beside it.

// docs.rs (`--cfg docsrs`, nightly) labels each item that a feature gates, `async` here.
#![cfg_attr(docsrs, feature(doc_cfg))]
// Not mmf-core's model checks' own flag, which no published build sets.
#![cfg_attr(docsrs, doc(auto_cfg(hide(mmf_loom))))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]
#![warn(clippy::missing_errors_doc)]

pub use mmf_codec::{decode, json, ChannelExt, Error, FollowerExt, Result};
pub use mmf_core::{
    list, validate_name, wait_any, Change, Channel, FileOwner, Follower, Info, Listing, Location,
    LockOwner, Meta, Options, Origin, OwnerState, Recovered, ShmName, SlotWriter, Stop, StopReason,
    Tag, ToLocation, Until,
};

pub use mmf_core::truncation;

// (No doc comment on these: one on a `pub use` of several items would replace each item's own
// summary on the crate's page.) A followed name's values as a stream of a serde type, and the
// futures of `Channel::changed`, `Follower::changed`, `Follower::open_async` and the stream of
// `Follower::values` (feature `async`).
#[cfg(feature = "async")]
pub use mmf_codec::{TypedValueStream, ValueStreamExt};
#[cfg(feature = "async")]
pub use mmf_core::{Changed, FollowerChanged, OpenFollower, Stopped, ValueStream};

/// The channel layer (`mmf-core`), with its own error type: what [`Channel::open`] and the
/// other untyped operations return.
///
/// ```
/// # let name = format!("facade-channel-doc-{}", std::process::id());
/// match mmf::Channel::open(&name) {
///     Err(mmf::channel::Error::NotFound { .. }) => {} // nobody created it yet
///     other => panic!("{other:?}"),
/// }
/// ```
pub mod channel {
    pub use mmf_core::*;
}

/// Everything a typical user needs: `use mmf::prelude::*;`.
pub mod prelude {
    #[cfg(feature = "async")]
    pub use crate::ValueStreamExt;
    pub use crate::{
        Change, Channel, ChannelExt, Follower, FollowerExt, Location, Meta, Options, Stop,
        StopReason, Tag, Until,
    };
}

/// The README's Rust example, compiled and run as a doctest so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
