//! A plain shared mapping for the reference transports (floor, futex, the naive seqlock) and the
//! harness's control words: a file in `/dev/shm` that the parent creates and a child maps by path.
//!
//! Memory that another process changes is only ever touched through atomics or raw pointers,
//! never through `&[u8]`/`&mut [u8]` (the same rule as mmf's own `region.rs`).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64};

/// Offset of the second of two hot words: 128 bytes apart, so that the adjacent-line prefetcher
/// does not pair them either.
pub const LINE: usize = 128;

/// A shared mapping, unlinked on drop by the process that created it.
pub struct SharedMap {
    map: memmap2::MmapRaw,
    path: PathBuf,
    owner: bool,
}

impl SharedMap {
    /// Creates (exclusively) and maps a zeroed file of `len` bytes (rounded up to a page).
    pub fn create(len: usize) -> io::Result<SharedMap> {
        let path = unique_path("map");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        let len = len.max(1).div_ceil(4096) * 4096;
        file.set_len(len as u64)?;
        let map = Self::map(&file, len);
        match map {
            Ok(map) => Ok(SharedMap {
                map,
                path,
                owner: true,
            }),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(e)
            }
        }
    }

    /// Maps a file another process created.
    pub fn open(path: &Path) -> io::Result<SharedMap> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = file.metadata()?.len() as usize;
        Ok(SharedMap {
            map: Self::map(&file, len)?,
            path: path.to_owned(),
            owner: false,
        })
    }

    fn map(file: &File, len: usize) -> io::Result<memmap2::MmapRaw> {
        memmap2::MmapOptions::new().len(len).map_raw(file)
    }

    /// Where the mapping lives (handed to the child).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The mapping's length in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// The 8-byte word at byte offset `off`, as an atomic.
    pub fn u64_at(&self, off: usize) -> &AtomicU64 {
        assert!(off % 8 == 0 && off + 8 <= self.len(), "word at {off}");
        // SAFETY: the word is inside the mapping (asserted) and 8-byte aligned (the mapping is
        // page-aligned and `off % 8 == 0`); the mapping lives as long as `&self`. `AtomicU64` has
        // the size and alignment of `u64`, and atomics may alias memory that other processes
        // change: every process touches these words only atomically.
        unsafe { &*self.map.as_mut_ptr().add(off).cast::<AtomicU64>() }
    }

    /// The 4-byte word at byte offset `off`, as an atomic (a futex word).
    pub fn u32_at(&self, off: usize) -> &AtomicU32 {
        assert!(off % 4 == 0 && off + 4 <= self.len(), "word at {off}");
        // SAFETY: as in `u64_at`, for a 4-byte aligned word inside the mapping.
        unsafe { &*self.map.as_mut_ptr().add(off).cast::<AtomicU32>() }
    }

    /// `n` words starting at byte offset `off`, as atomics (the naive seqlock's payload).
    pub fn words(&self, off: usize, n: usize) -> &[AtomicU64] {
        assert!(
            off % 8 == 0 && off + n * 8 <= self.len(),
            "{n} words at {off}"
        );
        // SAFETY: as in `u64_at`, for `n` consecutive aligned words inside the mapping.
        unsafe { std::slice::from_raw_parts(self.map.as_mut_ptr().add(off).cast::<AtomicU64>(), n) }
    }

    /// A raw pointer to `len` bytes at `off`, for copies whose exclusivity a protocol guarantees.
    pub fn bytes(&self, off: usize, len: usize) -> *mut u8 {
        assert!(off + len <= self.len(), "{len} bytes at {off}");
        // SAFETY: `off <= len()` (asserted), so the pointer stays inside the mapping.
        unsafe { self.map.as_mut_ptr().add(off) }
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        if self.owner {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The directory for the harness's own files: the one mmf puts its shared-memory channels in
/// (`MMF_SHM_DIR` where it is set, so that F and the peers' files share mmf's file system: a
/// review found F on tmpfs racing mmf on a disk), else `/dev/shm` where it exists (tmpfs), else
/// the temporary directory.
pub fn dir() -> PathBuf {
    if std::env::var_os("MMF_SHM_DIR").is_some_and(|d| !d.is_empty()) {
        return mmf_core::host::shm_dir();
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}

/// Prefix of every file the harness creates; the pid follows, so stale files can be recognised.
pub const PREFIX: &str = "mmf-bench.";

/// A fresh file name `mmf-bench.PID.N.WHAT` in [`dir`].
pub fn unique_path(what: &str) -> PathBuf {
    dir().join(format!(
        "{PREFIX}{}.{}.{what}",
        std::process::id(),
        next_id()
    ))
}

/// A process-wide counter for unique names.
pub fn next_id() -> u64 {
    use std::sync::atomic::Ordering;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Removes files that an earlier, killed run of the harness left in [`dir`] (its own files and
/// its mmf channels `mmf.bench-PID-N...`), if their process is gone. A channel only where it is
/// this user's and its header says that process made it: a user's own `bench-2024-q3` was
/// removed by every run, a mistyped command line's too (a review's finding).
pub fn remove_stale() {
    let Ok(entries) = std::fs::read_dir(dir()) else {
        return;
    };
    let gone = |pid: u32| !Path::new(&format!("/proc/{pid}")).exists();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let pid_of = |rest: &str| rest.split(['.', '-']).next()?.parse::<u32>().ok();
        if let Some(pid) = name.strip_prefix(PREFIX).and_then(pid_of) {
            if gone(pid) {
                let _ = std::fs::remove_file(e.path());
            }
            continue;
        }
        let Some(channel) = name.strip_prefix("mmf.") else {
            continue;
        };
        let Some(pid) = channel.strip_prefix("bench-").and_then(pid_of) else {
            continue;
        };
        let Ok(location) = mmf_core::Location::shm(channel) else {
            continue;
        };
        let made_by_it = mmf_core::Options::new()
            .read_only(true)
            .open(&location)
            .is_ok_and(|ch| ch.info().creator_pid == pid);
        if gone(pid) && made_by_it && mmf_core::host::is_own(&location) {
            let _ = mmf_core::Channel::remove(&location);
        }
    }
}
