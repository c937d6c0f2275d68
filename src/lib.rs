//! # mmf: named shared-memory channels
//!
//! One `use` line for the whole library: [`Channel`] and its [`Options`] from `mmf-core`.
//!
//! ```
//! use mmf::{Channel, Tag};
//! let ch = Channel::anonymous(64)?;
//! ch.publish(Tag::TEXT, b"Hello World!")?;
//! assert_eq!(ch.read()?.1, b"Hello World!");
//! # Ok::<(), mmf::Error>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use mmf_core::*;
