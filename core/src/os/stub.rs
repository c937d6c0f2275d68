//! Platforms without a port yet: anonymous channels work, named ones answer `Unsupported`.

use std::fs::File;
use std::io;
use std::path::PathBuf;

pub(crate) fn shm_dir() -> PathBuf {
    std::env::temp_dir()
}

pub(crate) const NOFOLLOW: i32 = 0;

pub(crate) fn allocate(file: &File, len: u64) -> io::Result<()> {
    file.set_len(len)
}

pub(crate) fn pid_exists(_pid: u32) -> bool {
    true
}

pub(crate) fn process_start_time(_pid: u32) -> Option<u64> {
    None
}
