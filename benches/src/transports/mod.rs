//! The transports of the latency benchmark, one file per family.

pub mod floor;
#[cfg(feature = "iceoryx2")]
pub mod iox;
pub mod mmf;
#[cfg(feature = "seed-peers")]
pub mod seed;
pub mod stream;
