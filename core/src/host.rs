//! Facts about this host that decide whether shared memory works well on it: where channels
//! live, how much room there is, whether a channel is in use, and which channels are stale.
//! Used by `mmf list`, `mmf prune` and `mmf doctor`, and by the CLI's signal handling
//! ([`signal_ignored`]).
//!
//! "In use" comes from advisory locks: every open handle holds a shared `flock` on its channel's
//! file for as long as it lives (the kernel drops it when the process dies, however it dies), so
//! a channel whose file can be locked exclusively has no live handle in any process, whichever
//! user owns it. No `/proc` scanning, no privilege needed.
//!
//! What is here follows the needs of those commands: a service may use it, but a minor version
//! may change it (README, "Versions and stability").

use std::path::PathBuf;

use crate::channel::LockOwner;
use crate::error::{Error, Result};
use crate::name::{Location, ToLocation};
use crate::os;

/// The directory of shared-memory channels (`$MMF_SHM_DIR`, else `/dev/shm`).
pub fn shm_dir() -> PathBuf {
    os::shm_dir()
}

/// The size of a file system, in bytes: what [`space`] tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Space {
    /// Its whole size.
    pub total: u64,
    /// What an unprivileged process may still allocate there.
    pub available: u64,
    /// Whether the file system keeps its files in memory (tmpfs, ramfs, as `/dev/shm`, and
    /// `/tmp` on many systems): a channel there is gone at reboot, a file path included.
    /// `None` where that cannot be told (systems other than Linux).
    pub in_memory: Option<bool>,
}

/// The size of the file system that holds `dir`, what is free there (`statvfs`), and whether
/// it keeps its files in memory.
///
/// ```
/// let space = mmf::channel::host::space(std::env::temp_dir())?;
/// assert!(space.available <= space.total);
/// # Ok::<(), mmf::channel::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::Io`] if `dir` cannot be inspected (missing, not a directory, no permission).
pub fn space(dir: impl AsRef<std::path::Path>) -> Result<Space> {
    let dir = dir.as_ref();
    os::space(dir)
        .map(|(total, available)| Space {
            total,
            available,
            in_memory: os::in_memory_known(dir),
        })
        .map_err(|e| Error::Io {
            op: "inspecting",
            path: dir.to_owned(),
            cause: e,
        })
}

/// The memory cgroup limit that channels in a directory count against: what [`memory_limit`]
/// tells.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryLimit {
    /// The tightest limit of this process's memory cgroup and its ancestors, in bytes.
    pub limit: u64,
    /// About what a new file in memory may still take under it before the kernel kills: the
    /// limit less what is charged now and cannot be reclaimed. The kernel reclaims the file
    /// cache before it kills, and under cgroup v2 its own caches too (`slab_reclaimable`:
    /// dentries, inodes), so they count as free (a tmpfs's files keep their dentries, some 200
    /// bytes each, which that figure counts all the same); cgroup v1 does not tell the
    /// kernel's caches from its memory that stays, so there all of the kernel's memory counts
    /// as held (a cgroup full of directory cache may be refused a channel that would fit).
    /// Swap counts for nothing: whether the kernel would swap pages out to make room depends
    /// on each cgroup's settings and on how the pages are used, so a channel that would fit
    /// only by swapping is refused.
    pub room: u64,
    /// The directory of the cgroup whose limit it is (under `/sys/fs/cgroup`).
    pub cgroup: PathBuf,
}

/// The memory cgroup limit that a channel made in `dir` by this process would count against:
/// `Some` where `dir` is a file system held in memory (tmpfs, such as `/dev/shm`) and this
/// process's cgroup, or one of its ancestors, has a memory limit (a container's `--memory`).
/// [`Options::create`](crate::Options::create) refuses a channel that would not fit
/// ([`Error::MemoryLimit`]), since past the limit the kernel kills a process of the cgroup
/// instead of failing the allocation.
pub fn memory_limit(dir: impl AsRef<std::path::Path>) -> Option<MemoryLimit> {
    let dir = dir.as_ref();
    if !os::in_memory(dir) {
        return None;
    }
    os::memory_limit().map(|m| MemoryLimit {
        limit: m.limit,
        room: m.room,
        cgroup: m.cgroup,
    })
}

/// Whether any process holds a handle to the channel at `location` right now.
///
/// # Errors
///
/// - [`Error::InvalidName`]: a name that cannot be;
/// - [`Error::NotFound`]: nothing under the name;
/// - [`Error::NotAFile`], [`Error::IsADirectory`]: something other than a regular file there;
/// - [`Error::Io`]: the file could not be opened (one this user may not read included: an
///   `Io`, not [`Error::PermissionDenied`]), inspected or locked.
pub fn in_use(location: impl ToLocation) -> Result<bool> {
    let location = &*location.to_location()?;
    let Some(path) = location.path() else {
        return Ok(true);
    };
    // Not blocking on a FIFO planted under the name, nor following a symlink there.
    let file =
        crate::channel::open_existing(location, &path, false).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::not_found(location),
            _ => Error::Io {
                op: "opening",
                path: path.clone(),
                cause: e,
            },
        })?;
    let meta = file.metadata().map_err(|e| Error::Io {
        op: "inspecting",
        path: path.clone(),
        cause: e,
    })?;
    crate::channel::regular_file(&meta, &location.to_string())?;
    let held = crate::channel::Exclusive::try_take(&file).map_err(|e| Error::Io {
        op: "locking",
        path,
        cause: e,
    })?;
    Ok(held.is_none()) // a lock taken is given back at once
}

/// What [`free_orphans`] freed in a channel that no process had open, and what it left.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Orphans {
    /// The writer lock, freed: the pid its holder's token names, and how that holder was
    /// judged: [`OwnerState::Dead`](crate::OwnerState::Dead), or [`OwnerState::Unknown`](crate::OwnerState::Unknown) with why (a token of another
    /// PID namespace, or of none: a stray write over the lock word).
    pub lock: Option<LockOwner>,
    /// The writer lock, left: its holder was judged [`OwnerState::Alive`](crate::OwnerState::Alive) (a lock held on its
    /// liveness byte, or its pid running with its start time) while it holds no handle: a
    /// program that uses the channel without the shared `flock` every handle holds
    /// (docs/FORMAT.md §8), or a pid since given to another process where start times cannot
    /// be compared.
    pub lock_kept: Option<LockOwner>,
    /// Reader-pin entries freed (their holders' pins and waiting counts with them).
    pub pins: usize,
    /// Reader-pin entries left to holders judged alive, as [`lock_kept`](Self::lock_kept).
    pub pins_kept: usize,
    /// The claim of an exclusive writer
    /// ([`Options::exclusive_writer`](crate::Options::exclusive_writer)), freed: its holder was
    /// judged as for [`lock`](Self::lock). Such a claim, which nobody
    /// can judge dead, refuses every other writer's publishes for as long as it stands.
    pub exclusive_writer: Option<LockOwner>,
    /// The claim of an exclusive writer, left to a holder judged alive, as
    /// [`lock_kept`](Self::lock_kept).
    pub exclusive_writer_kept: Option<LockOwner>,
    /// By how much the header's count of blocked waiters was lowered: waiters that no handle
    /// counts any more cost every publish a wake-up call.
    pub waiters: u64,
}

impl Orphans {
    /// Whether nothing was freed.
    pub fn is_empty(&self) -> bool {
        self.lock.is_none()
            && self.exclusive_writer.is_none()
            && self.pins == 0
            && self.waiters == 0
    }
}

/// Frees what handles that are gone left held in the channel at `location`, when no process
/// has it open: `Ok(None)` (nothing changed) while any process holds a handle to it.
///
/// A writer that dies holding the writer lock is recovered by the next publish, once its death
/// can be told (docs/FORMAT.md §5). When it cannot (a token of another PID namespace, of a
/// file system without open-file-description locks, or a stray write of a small number over
/// the lock word), publishes wait for it and fail with [`Error::Contended`] after their lock
/// timeout, for as long as the channel exists. This frees such a lock, reader-pin entries so
/// held, and the count of blocked waiters, under an exclusive `flock` on the file: every handle
/// holds a shared one for as long as it lives, in any namespace, so while this holds it no
/// handle is open (an open waits for it, for an instant) and none of the holders can be
/// publishing or reading. Holders judged alive all the same are left, and said
/// ([`Orphans::lock_kept`]). The value and its generation stay as they were; the lock is freed
/// as a writer takes over a dead one's (counted in [`Info::writer_recoveries`]).
///
/// `mmf recover` calls this first.
///
/// ```
/// # let name = format!("orphans-doc-{}", std::process::id());
/// use mmf::channel::host;
/// let ch = mmf::Channel::create(&name, 64)?;
/// assert_eq!(host::free_orphans(&name)?, None); // open here: nothing is touched
/// drop(ch);
/// let freed = host::free_orphans(&name)?.expect("no handle is open");
/// assert!(freed.is_empty()); // a handle that closes leaves nothing held
/// # mmf::Channel::remove(&name)?;
/// # Ok::<(), mmf::channel::Error>(())
/// ```
///
/// # Errors
///
/// - [`Error::InvalidName`], [`Error::NotFound`], [`Error::NotAFile`],
///   [`Error::IsADirectory`]: as for [`Options::open`];
/// - [`Error::PermissionDenied`]: the file cannot be opened for writing by this user;
/// - [`Error::WrongMagic`], [`Error::NotAChannel`], [`Error::UnsupportedVersion`],
///   [`Error::Corrupt`], [`Error::NotInitialized`]: what the header says, as for
///   [`Options::open`];
/// - [`Error::Io`]: the file could not be opened, inspected, locked or mapped.
///
/// [`Info::writer_recoveries`]: crate::Info::writer_recoveries
/// [`Options::open`]: crate::Options::open
pub fn free_orphans(location: impl ToLocation) -> Result<Option<Orphans>> {
    crate::channel::free_orphans(&*location.to_location()?)
}

/// Removes the channel at `location` if no process holds a handle to it and it was last
/// created or touched ([`last_touched`]) at least `idle_for` ago, deciding and removing under
/// one exclusive `flock`, so that no handle can be opened in between: `Ok(true)` if it was
/// removed, `Ok(false)` if it is in use or newer (or the name now holds another file, which is
/// left alone). [`in_use`] followed by a removal would remove a channel that a process opened
/// between the two (an open that was waiting for the lock meanwhile finds the name gone, as
/// [`Options::open`](crate::Options::open) checks after locking). The age is decided under the
/// lock too: a channel made under the name since the caller judged the old one stale (`mmf new
/// --force`, whose process has exited) is new, and kept. [`remove_stale`] also asks the header
/// whether its creator or last writer still runs.
///
/// # Errors
///
/// Those of [`in_use`] (an [`Error::Io`] also where the file's time cannot be read), and of
/// [`Channel::remove`](crate::Channel::remove) for the removal itself: a file path that holds no
/// channel is [`Error::WrongMagic`] or [`Error::NotAChannel`], and another user's file in a
/// directory such as `/dev/shm`, whose sticky bit lets only its owner remove it,
/// [`Error::PermissionDenied`].
pub fn remove_unused(location: impl ToLocation, idle_for: std::time::Duration) -> Result<bool> {
    remove_if(&*location.to_location()?, idle_for, Unless::Used)
}

/// [`remove_unused`] of a file that a creator left unfinished ([`is_unfinished`]), keeping it
/// also unless it is still so when looked at under the lock: empty, or its first word (where
/// the magic goes last) zero. A channel made under the name since the caller judged the old
/// file (the dead creator's file cleared, a new channel created, its handle closed) is kept,
/// however young `idle_for` allows (`mmf prune --older-than 0` must not remove such a channel
/// as "never finished").
///
/// # Errors
///
/// As [`remove_unused`], and [`Error::Io`] if the file's start cannot be read.
pub fn remove_unfinished(location: impl ToLocation, idle_for: std::time::Duration) -> Result<bool> {
    remove_if(&*location.to_location()?, idle_for, Unless::Finished)
}

/// [`remove_unused`], keeping also a channel whose header, read under the lock, names a creator or
/// a last writer that is still running (the other two conditions of
/// [`Listing::is_stale`](crate::Listing::is_stale)): what `mmf prune` does. A process that opened
/// the channel, published and closed it between the caller's listing and this call, and still runs,
/// keeps it. (For a file whose creator died before finishing it, [`remove_unused`]: a pid it wrote
/// may be another process's by now.)
///
/// # Errors
///
/// As [`remove_unused`], and [`Error::Io`] if the header cannot be read.
pub fn remove_stale(location: impl ToLocation, idle_for: std::time::Duration) -> Result<bool> {
    remove_if(&*location.to_location()?, idle_for, Unless::Alive)
}

/// What else keeps a file that [`remove_if`] finds unused and idle long enough.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unless {
    /// Nothing else ([`remove_unused`]).
    Used,
    /// Its creator or last writer still running ([`remove_stale`]).
    Alive,
    /// A start that is not all zeros: a channel finished ([`remove_unfinished`]).
    Finished,
}

fn remove_if(location: &Location, idle_for: std::time::Duration, unless: Unless) -> Result<bool> {
    let Some(path) = location.path() else {
        return Ok(false);
    };
    let io = |op: &'static str, e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => Error::not_found(location),
        _ => Error::Io {
            op,
            path: path.clone(),
            cause: e,
        },
    };
    let file =
        crate::channel::open_existing(location, &path, false).map_err(|e| io("opening", e))?;
    let meta = file.metadata().map_err(|e| io("inspecting", e))?;
    crate::channel::regular_file(&meta, &location.to_string())?;
    // Held to the end, and given back explicitly (`Exclusive`) whatever the verdict.
    let Some(_held) = crate::channel::Exclusive::try_take(&file).map_err(|e| io("locking", e))?
    else {
        return Ok(false);
    };
    // Still the file this name holds (not replaced by a rename meanwhile).
    if !crate::channel::still_named(&meta, location, &path) {
        return Ok(false);
    }
    // Its age from the locked file itself (a touch after the listing counts).
    let touched = file
        .metadata()
        .and_then(|m| m.modified())
        .map_err(|e| io("inspecting", e))?;
    let idle = std::time::SystemTime::now()
        .duration_since(touched)
        .unwrap_or_default();
    if idle < idle_for {
        return Ok(false);
    }
    if unless == Unless::Finished && !starts_with_zeros(&file).map_err(|e| io("reading", e))? {
        return Ok(false);
    }
    if unless == Unless::Alive {
        // No handle can write the header while the exclusive lock is held (every handle holds
        // a shared one, a mapping too, however long ago its descriptor was closed), so these
        // words are the last ones written.
        let [creator, last_writer] = header_words(&file).map_err(|e| io("reading", e))?;
        // A process of another PID namespace (Unknown) does not keep a file nobody has open.
        if os::judge_process_word(creator) == os::OwnerState::Alive
            || os::judge_process_word(last_writer) == os::OwnerState::Alive
        {
            return Ok(false);
        }
    }
    // Only this file: one renamed over the name meanwhile is left there (`Ok(false)`).
    // The file found, not a handle's own: still refused where it holds no channel.
    crate::channel::remove_if(location, crate::channel::Expect::Found(&meta))
}

/// The creator's and the last writer's words (FORMAT.md §4) as the header of the channel file
/// `file` states them (0 for none, and for a file too short to hold the word).
fn header_words(mut file: &std::fs::File) -> std::io::Result<[u64; 2]> {
    use crate::layout::{H_CREATOR, H_LAST_WRITER};
    use std::io::{Read, Seek, SeekFrom};
    let mut word = |word: usize| -> std::io::Result<u64> {
        let mut bytes = [0u8; 8];
        file.seek(SeekFrom::Start((word * 8) as u64))?;
        match file.read_exact(&mut bytes) {
            Ok(()) => Ok(u64::from_le_bytes(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
            Err(e) => Err(e),
        }
    };
    Ok([word(H_CREATOR)?, word(H_LAST_WRITER)?])
}

/// When the channel at `location` was last created or touched ([`Channel::touch`], which the
/// CLI's `out` and `read` call): its file's modification time.
///
/// # Errors
///
/// [`Error::InvalidName`] for a name that cannot be, [`Error::NotFound`] if nothing is under
/// the name, [`Error::Io`] if it cannot be inspected.
///
/// [`Channel::touch`]: crate::Channel::touch
pub fn last_touched(location: impl ToLocation) -> Result<std::time::SystemTime> {
    let location = &*location.to_location()?;
    let Some(path) = location.path() else {
        return Ok(std::time::SystemTime::now());
    };
    std::fs::symlink_metadata(&path)
        .and_then(|m| m.modified())
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::not_found(location),
            _ => Error::Io {
                op: "inspecting",
                path,
                cause: e,
            },
        })
}

/// The names of the shared-memory channels on this host, sorted, without opening any: what
/// [`list`] lists, less the entries no name given to mmf could reach (a file someone else put
/// in the directory under a name [`validate_name`](crate::validate_name) refuses). Cheap, for
/// shell completion and scripts.
///
/// [`list`]: crate::list
///
/// ```
/// # let name = format!("names-doc-{}", std::process::id());
/// let _ch = mmf::Channel::create(&name, 64)?;
/// assert!(mmf::channel::host::channel_names()?.contains(&name));
/// # mmf::Channel::remove(&name)?;
/// # Ok::<(), mmf::channel::Error>(())
/// ```
///
/// # Errors
///
/// As [`list`]: [`Error::Unsupported`] on a platform without named channels, [`Error::Io`] if
/// the shared-memory directory cannot be read.
pub fn channel_names() -> Result<Vec<String>> {
    crate::channel::check_platform()?;
    let mut names: Vec<String> = crate::channel::shm_files(crate::name::SHM_PREFIX)?
        .into_iter()
        .filter(|(name, path)| {
            crate::channel::name_is_utf8(path) && crate::name::validate_name(name).is_ok()
        })
        .map(|(name, _)| name)
        .collect();
    names.sort();
    Ok(names)
}

/// Whether this process ignores `signal` (a number from `libc`, such as `SIGHUP`): its
/// disposition is "ignore". For a program that installs signal handlers at its start and must
/// leave a signal it was started with ignored as it was: `nohup mmf watch T &` outlives its
/// terminal's `SIGHUP`, and a shell without job control starts background jobs with `SIGINT`
/// ignored. Asked of the kernel with `sigaction` on every Unix; `false` where `signal` names
/// no signal.
///
/// ```
/// const SIGKILL: i32 = 9; // as on every Unix: it cannot be ignored
/// assert!(!mmf::channel::host::signal_ignored(SIGKILL));
/// assert!(!mmf::channel::host::signal_ignored(-1)); // no such signal
/// ```
pub fn signal_ignored(signal: i32) -> bool {
    os::signal_ignored(signal)
}

/// The first symbolic link on `path` that mmf does not follow to create, replace or remove a
/// channel: another user's link in a sticky directory others may write to (`/tmp`), the
/// kernel's `fs.protected_symlinks` rule applied to every link on the way, whatever that
/// setting says. `None` where there is none (or the path does not exist). For a check of
/// `MMF_SHM_DIR` ahead of time, as `mmf doctor` makes it: creations in a shared-memory
/// directory reached through such a link are refused.
///
/// ```
/// assert_eq!(mmf::channel::host::unfollowed_link("/"), None);
/// ```
pub fn unfollowed_link(path: impl AsRef<std::path::Path>) -> Option<PathBuf> {
    crate::channel::first_unprotected_link(path.as_ref())
}

/// The first component of `path`, as given (each prefix looked at itself, a link not
/// followed), that a user other than root and this process's own owns, with that user's ID: a
/// directory or link on the way that they may change at will, so that the path leads wherever
/// they choose. [`unfollowed_link`]'s rule refuses only their links in sticky directories; a
/// directory of theirs on the way is no link, and is followed as any program follows it. For a
/// check of `MMF_SHM_DIR` ahead of time, as `mmf doctor` makes it. `None` where there is none,
/// or the path cannot be looked at.
///
/// ```
/// assert_eq!(mmf::channel::host::foreign_component("/"), None);
/// ```
pub fn foreign_component(path: impl AsRef<std::path::Path>) -> Option<(PathBuf, u32)> {
    use std::os::unix::fs::MetadataExt;
    let path = crate::channel::from_root(path.as_ref())?;
    let me = os::euid();
    let mut at = PathBuf::new();
    for part in path.components() {
        at.push(part);
        let uid = std::fs::symlink_metadata(&at).ok()?.uid();
        if uid != 0 && uid != me {
            return Some((at, uid));
        }
    }
    None
}

/// Whether this process's user owns the channel's file (root: any file), so that removing it
/// from a sticky directory such as `/dev/shm` is allowed.
pub fn is_own(location: impl ToLocation) -> bool {
    let Ok(location) = location.to_location() else {
        return false;
    };
    let location = &*location;
    location
        .path()
        .and_then(|p| std::fs::symlink_metadata(p).ok())
        .is_some_and(|m| owned(&m))
}

/// Whether a file of metadata `m` is this process's user's (root: anyone's).
fn owned(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    let me = os::euid();
    me == 0 || m.uid() == me
}

/// Files left in the shared-memory directory by replacements that never finished
/// ([`Options::create_or_replace`] killed between making the new channel under its temporary
/// name, `.mmf-new-` and 16 hex digits, and renaming it into place) that this user owns (root:
/// any user): no process holds them, they were last changed at least `older_than` ago, and at
/// least a minute, and they hold what such a file can (nothing, zeros, or a channel header).
/// Nothing else lists them (they have no `mmf.` prefix), so `mmf prune` removes them and `mmf
/// doctor` counts them; `create_or_replace` itself removes those it finds in its own directory
/// ([`abandoned_replacements_in`]).
///
/// None where the directory (`MMF_SHM_DIR`'s) is reached through a link that creations and
/// removals there refuse ([`unfollowed_link`]): the files listed would be wherever that link's
/// owner chose (a security review's root `mmf prune` removed one in a directory only root may
/// enter, while it refused the channels there).
///
/// # Errors
///
/// [`Error::Io`] if the shared-memory directory cannot be read.
///
/// [`Options::create_or_replace`]: crate::Options::create_or_replace
pub fn abandoned_replacements(older_than: std::time::Duration) -> Result<Vec<PathBuf>> {
    let dir = os::shm_dir();
    if unfollowed_link(&dir).is_some() {
        return Ok(Vec::new());
    }
    abandoned(&dir, older_than, owned)
}

/// [`abandoned_replacements`] in `dir`, the directory of channels in files: the same files, but
/// only the user's own, root's included. Other users' files in a directory such as `/tmp` are
/// theirs to clear, whatever their names.
///
/// # Errors
///
/// [`Error::Io`] if `dir` cannot be read.
pub fn abandoned_replacements_in(
    dir: impl AsRef<std::path::Path>,
    older_than: std::time::Duration,
) -> Result<Vec<PathBuf>> {
    let dir = dir.as_ref();
    abandoned(dir, older_than, |m: &std::fs::Metadata| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == os::euid()
    })
}

fn abandoned(
    dir: &std::path::Path,
    older_than: std::time::Duration,
    mine: impl Fn(&std::fs::Metadata) -> bool,
) -> Result<Vec<PathBuf>> {
    // A maker takes its lock right after creating the file: never judge one younger than this,
    // whatever `older_than` says, so that the moment in between cannot be mistaken for neglect.
    let older_than = older_than.max(std::time::Duration::from_secs(60));
    // The directory of a bare relative path (`ch.mmf`) is the current one.
    let dir = if dir.as_os_str().is_empty() {
        std::path::Path::new(".")
    } else {
        dir
    };
    let mut found = Vec::new();
    for (rest, path) in crate::channel::dir_files(dir, crate::channel::REPLACEMENT_PREFIX)? {
        // Exactly the names `create_or_replace` makes, not a user's `.mmf-new-notes`.
        if rest.len() != 16 || !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let location = Location::File(path.clone());
        let old = std::fs::symlink_metadata(&path)
            .ok()
            .filter(std::fs::Metadata::is_file)
            .filter(&mine)
            .and_then(|m| m.modified().ok())
            .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age >= older_than);
        // Its maker holds a shared lock on it from right after creating it until the rename.
        if old && starts_as_made(&path) && matches!(in_use(&location), Ok(false)) {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// Whether the shared-memory channel at `location` is one whose creator died before it was
/// ready (the file empty, or zeros where the header goes: what `mmf list` shows as "not
/// initialised"), this user's (root: anyone's), held by no process, and unchanged for
/// `older_than`, and at least a minute (a creator takes its lock right after creating the
/// file). Nothing can ever open such a file; `mmf prune` removes it. A creator killed after
/// reserving the channel's space leaves it all: gigabytes of `/dev/shm`, possibly.
pub fn is_unfinished(location: impl ToLocation, older_than: std::time::Duration) -> bool {
    let older_than = older_than.max(std::time::Duration::from_secs(60));
    let Ok(location) = location.to_location() else {
        return false;
    };
    let location = &*location;
    let Some(path) = location.path() else {
        return false;
    };
    let old = std::fs::symlink_metadata(&path)
        .ok()
        .filter(std::fs::Metadata::is_file)
        .filter(owned)
        .and_then(|m| m.modified().ok())
        .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age >= older_than);
    old && starts_unfinished(&path) && matches!(in_use(location), Ok(false))
}

/// What [`remove_left_unfinished`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leftover {
    /// Removed, or the name no longer holds the file looked at (another process removed or
    /// replaced it meanwhile): look again.
    Gone,
    /// Left as it is: held by a process, younger than asked, or no longer all zeros (perhaps
    /// another process's channel, made under the name since).
    Kept,
    /// Never removed so: another user's file, or a file path that nobody holds and that has
    /// not changed for the age asked.
    NotOurs,
}

/// Removes the shared-memory file under `location` if its creator died before the channel was
/// ready: empty, or its first word (where the magic goes last) zero, this user's (root:
/// anyone's), held by no process (a creator holds a shared `flock` on it from right after
/// creating it until it closes its handle, and so does every opener), and unchanged for
/// `min_age` at least. Decided under an exclusive lock on the file, and removed under it, as
/// [`remove_unused`] does. The lock is waited for a little (50 ms): another process removing
/// the same file holds it for an instant, a process using the file for as long as it does.
/// A file path is never removed: it may be anything a user keeps there (an image whose first
/// page is zeros, a channel file whose header a machine crash did not write back). It is
/// [`Kept`](Leftover::Kept) while a process holds it or it changed within `min_age` (a creation
/// under way, which the caller waits for as in shared memory: a review found a `new
/// --exist-ok` during a 0.3 s creation of a file channel told to delete the file), and
/// [`NotOurs`](Leftover::NotOurs) once neither.
pub(crate) fn remove_left_unfinished(
    location: &Location,
    min_age: std::time::Duration,
) -> Leftover {
    let Some(path) = location.path() else {
        return Leftover::NotOurs;
    };
    let file = match crate::channel::open_existing(location, &path, false) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Leftover::Gone,
        Err(_) => return Leftover::Kept,
    };
    let Ok(meta) = file.metadata() else {
        return Leftover::Kept;
    };
    let zeros = |file: &std::fs::File| starts_with_zeros(file).unwrap_or(false);
    if let Location::File(_) = location {
        return if held_or_young(&file, &meta, min_age) || !zeros(&file) {
            Leftover::Kept
        } else {
            Leftover::NotOurs
        };
    }
    // Judged before the lock as well: a channel made meanwhile (its magic, or young) is told
    // at once, without waiting for its creator's lock.
    let young = crate::channel::unchanged_for(&meta).is_none_or(|age| age < min_age);
    if !owned(&meta) {
        return Leftover::NotOurs;
    }
    if !meta.is_file() || young || !zeros(&file) {
        return Leftover::Kept;
    }
    let start = std::time::Instant::now();
    // Held to the end, and given back explicitly (`Exclusive`).
    let _held = loop {
        match crate::channel::Exclusive::try_take(&file) {
            Ok(Some(held)) => break held,
            Ok(None) if start.elapsed() < std::time::Duration::from_millis(50) => {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            _ => return Leftover::Kept,
        }
    };
    if !crate::channel::still_named(&meta, location, &path) {
        return Leftover::Gone;
    }
    // Read again from the start, under the lock.
    if std::io::Seek::rewind(&mut &file).is_err() || !zeros(&file) {
        return Leftover::Kept;
    }
    // Only this file: a channel renamed over the name meanwhile is left there (and the caller
    // looks again).
    match crate::channel::unlink_same(location, &path, &meta) {
        Ok(_) => Leftover::Gone,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Leftover::Gone,
        Err(_) => Leftover::NotOurs,
    }
}

/// Whether the file under `location` looks like a channel being created: empty or zeros where
/// the magic goes (written last), and held by a process (a creator holds a shared `flock` from
/// right after creating it) or changed within `min_age`. Nothing is removed.
pub(crate) fn creation_under_way(location: &Location, min_age: std::time::Duration) -> bool {
    let Some(path) = location.path() else {
        return false;
    };
    let Ok(file) = crate::channel::open_existing(location, &path, false) else {
        return false;
    };
    let Ok(meta) = file.metadata() else {
        return false;
    };
    meta.is_file()
        && starts_with_zeros(&file).unwrap_or(false)
        && held_or_young(&file, &meta, min_age)
}

/// Whether a process holds `file` (a shared `flock`, as a creator and every opener hold one),
/// or it changed within `min_age` (`meta` is its metadata): a file path's creation may be
/// under way ([`remove_left_unfinished`], [`creation_under_way`]).
fn held_or_young(
    file: &std::fs::File,
    meta: &std::fs::Metadata,
    min_age: std::time::Duration,
) -> bool {
    crate::channel::unchanged_for(meta).is_none_or(|age| age < min_age)
        || matches!(crate::channel::Exclusive::try_take(file), Ok(None))
}

/// Whether the file at `path` is empty or starts with a zero word (no magic yet).
/// Whether `file`, read from where its offset is, starts with nothing or zeros only (its first 8
/// bytes): a creator's file before the magic, written last, is there.
fn starts_with_zeros(mut file: &std::fs::File) -> std::io::Result<bool> {
    use std::io::Read;
    let mut head = Vec::with_capacity(8);
    (&mut file).take(8).read_to_end(&mut head)?;
    Ok(head.iter().all(|&b| b == 0))
}

fn starts_unfinished(path: &std::path::Path) -> bool {
    head(path).is_some_and(|h| h.is_empty() || h.iter().all(|&b| b == 0))
}

/// Whether the file starts as one `create_or_replace` makes does at every step: empty (just
/// created), zeros (its space reserved), or the channel magic (its header written).
fn starts_as_made(path: &std::path::Path) -> bool {
    head(path).is_some_and(|h| {
        h.is_empty() || h.iter().all(|&b| b == 0) || h == crate::layout::MAGIC.to_le_bytes()
    })
}

/// The first 8 bytes of the regular file at `path` (fewer if it is shorter), read without
/// following a link or blocking on a FIFO.
fn head(path: &std::path::Path) -> Option<Vec<u8>> {
    use std::io::Read;
    // Not through a symbolic link put there since the name was looked at, nor blocking on (or
    // opening at all) a FIFO or device.
    let file = crate::channel::open_path(path, false, os::NOFOLLOW).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut head = Vec::with_capacity(8);
    file.take(8).read_to_end(&mut head).ok()?;
    Some(head)
}
