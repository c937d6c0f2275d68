//! The platform layer's answers where no port exists yet (named channels: `Unsupported`). The
//! crate does not build outside Unix yet all the same: other modules use Unix file descriptors
//! (`lib.rs` says so at compile time); this is where a port starts.

use std::fs::File;
use std::io;
use std::path::PathBuf;

/// No signals to ask about here.
pub(crate) fn signal_ignored(_signal: i32) -> bool {
    false
}

/// No `fork` here: every process is the first of its line.
pub(crate) fn forks() -> u64 {
    0
}

pub(crate) fn shm_dir() -> PathBuf {
    std::env::temp_dir()
}

/// Without file identities, any two files' metadata "match" (named channels are unsupported).
pub(crate) fn same_file(_a: &std::fs::Metadata, _b: &std::fs::Metadata) -> bool {
    true
}

pub(crate) fn touch(file: &File) -> io::Result<()> {
    file.set_modified(std::time::SystemTime::now())
}

/// Nothing to write back where named channels are unsupported.
pub(crate) fn sync_file_system(_file: &File) -> io::Result<()> {
    Ok(())
}

pub(crate) const NOFOLLOW: i32 = 0;

pub(crate) fn rename_noreplace(_from: &std::path::Path, _to: &std::path::Path) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

pub(crate) fn allocate(file: &File, len: u64) -> io::Result<()> {
    file.set_len(len)
}

/// No users to tell apart: everything counts as this process's own.
pub(crate) fn euid() -> u32 {
    0
}

pub(crate) fn pid_exists(_pid: u32) -> bool {
    true
}

pub(crate) fn pid_holds_lock(_pid: u32, _file: &std::fs::File, _offset: u64) -> Option<bool> {
    None
}

pub(crate) fn path_of(_file: &std::fs::File) -> Option<std::path::PathBuf> {
    None
}

pub(crate) fn pid_stopped(_pid: u32) -> bool {
    false
}

pub(crate) fn flock_held(_meta: &std::fs::Metadata) -> io::Result<bool> {
    Err(io::ErrorKind::Unsupported.into())
}

pub(crate) fn process_start_time(_pid: u32) -> Option<u64> {
    None
}

pub(crate) fn pid_namespace() -> Option<u64> {
    None
}

pub(crate) fn lock_shared_byte(_file: &File, _offset: u64) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

pub(crate) fn byte_locked(_file: &File, _offset: u64) -> io::Result<super::ByteLock> {
    Err(io::ErrorKind::Unsupported.into())
}

pub(crate) const FUTEX: bool = false;

pub(crate) fn wait_while(
    _word: &std::sync::atomic::AtomicU64,
    _expected: u32,
    timeout: std::time::Duration,
) {
    std::thread::sleep(timeout.min(std::time::Duration::from_millis(1)));
}

pub(crate) fn wake_all(_word: &std::sync::atomic::AtomicU64) -> usize {
    1
}

pub(crate) fn wake_private(_word: &std::sync::atomic::AtomicU32) {}

pub(crate) fn wait_private(
    _word: &std::sync::atomic::AtomicU32,
    _expected: u32,
    timeout: std::time::Duration,
) {
    std::thread::sleep(timeout.min(std::time::Duration::from_millis(1)));
}

pub(crate) fn wait_while_unstopped(
    _word: &std::sync::atomic::AtomicU64,
    _expected: u32,
    _stops: &[&std::sync::atomic::AtomicU32],
    _timeout: std::time::Duration,
) -> bool {
    false
}

pub(crate) fn wait_while_any(
    _words: &[(&std::sync::atomic::AtomicU64, u32)],
    _stops: &[&std::sync::atomic::AtomicU32],
    _timeout: std::time::Duration,
) -> bool {
    false
}

pub(crate) fn wait_private_any(
    _words: &[&std::sync::atomic::AtomicU32],
    _timeout: std::time::Duration,
) -> bool {
    false
}

pub(crate) fn pid_exited(_pid: u32) -> bool {
    false
}

pub(crate) fn boot_tag() -> u64 {
    0
}

/// Which file systems keep their files in memory cannot be told here.
pub(crate) fn in_memory_known(_dir: &std::path::Path) -> Option<bool> {
    None
}

pub(crate) fn in_memory(_dir: &std::path::Path) -> bool {
    false
}

/// No count of mappings here.
pub(crate) fn mappings() -> Option<(u64, u64)> {
    None
}

/// No file system can be told here.
pub(crate) fn huge_pages_only(_dir: &std::path::Path) -> bool {
    false
}

/// No file attributes can be told here.
pub(crate) fn unchangeable(_path: &std::path::Path) -> Option<&'static str> {
    None
}

/// No memory cgroups here.
pub(crate) fn memory_limit() -> Option<super::MemoryLimit> {
    None
}

pub(crate) fn file_size_limit() -> Option<u64> {
    None
}

pub(crate) fn room(_dir: &std::path::Path) -> io::Result<Option<u64>> {
    Ok(None)
}

pub(crate) fn space(_dir: &std::path::Path) -> io::Result<(u64, u64)> {
    Err(io::ErrorKind::Unsupported.into())
}
