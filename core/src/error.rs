//! The error type of every fallible operation in `mmf-core`.

use std::path::PathBuf;

/// What went wrong, and (in its `Display`) what to do about it.
///
/// Every variant is a condition a caller can meet in practice: bad input, a missing or existing
/// channel, a full `/dev/shm`, or a mapping that another process corrupted. None of them leaves a
/// channel changed: an operation that fails publishes nothing.
///
/// The variants that carry an I/O error ([`Io`](Error::Io),
/// [`PermissionDenied`](Error::PermissionDenied) and [`ProcessWatch`](Error::ProcessWatch) the
/// OS's, [`Encode`](Error::Encode) the fill closure's) or an allocator's refusal
/// ([`OutOfMemory`](Error::OutOfMemory)) put its text in their own message, so that `{}` alone
/// says what failed, why and what to do, and keep it in their `cause` field, not as
/// [`source`](std::error::Error::source): a reporter that prints every cause after the message
/// (anyhow's `{:#}` and `{:?}`, tracing) would show the same text twice. Match the field, or
/// take it with [`os_error`](Error::os_error), to tell the OS's errors apart (its
/// [`kind`](std::io::Error::kind) or [`raw_os_error`](std::io::Error::raw_os_error), say:
/// `os_error` gives the OS's own error also where the message tells it in mmf's words).
///
/// The enum and each of its variants with named fields are `#[non_exhaustive]`: match a
/// variant's fields with `..`, so that a field added later breaks no caller. mmf makes these errors; a
/// layer above that needs one makes it with a constructor ([`Error::too_large`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A channel name that the OS cannot hold or that would escape the shared-memory directory.
    #[error("invalid channel name {name:?}: {reason}; use 1 to {max} bytes of UTF-8 (ASCII characters are one byte each) other than '/', NUL, control characters and U+FFFD", max = crate::name::MAX_NAME_LEN)]
    #[non_exhaustive]
    InvalidName {
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A channel path that names a directory.
    #[error("{}", is_a_directory(name))]
    #[non_exhaustive]
    IsADirectory {
        /// The path as given.
        name: String,
    },
    /// A channel name or path that names something other than a regular file (a FIFO, a
    /// socket, a device): no channel, and opening it as one could block.
    #[error("'{name}' is a {kind}, not a regular file, so it is not an mmf channel; check the name or path")]
    #[non_exhaustive]
    NotAFile {
        /// The channel's name or path.
        name: String,
        /// What it is instead ("FIFO", "socket", ...).
        kind: &'static str,
    },
    /// `create` found a channel under the name already (or a symbolic link; a file that may be
    /// one being created is [`NotInitialized`](Error::NotInitialized), one that plainly is not
    /// a channel [`WrongMagic`](Error::WrongMagic) or [`NotAFile`](Error::NotAFile)).
    #[error("a channel named '{name}' already exists; open it, or remove it first (a service that makes its channel anew each start: `Options::create_or_replace`; one that takes it as it is: `Options::open_or_create`)")]
    #[non_exhaustive]
    AlreadyExists {
        /// The channel's name or path.
        name: String,
    },
    /// `open` or `remove` found nothing under the name, or a
    /// [`Follower::open`](crate::Follower::open) waited for a channel to appear there until its
    /// deadline.
    #[error("{}", not_found(name, *waited, missing_dir.as_deref(), *file_here))]
    #[non_exhaustive]
    NotFound {
        /// The channel's name or path.
        name: String,
        /// How long a [`Follower::open`](crate::Follower::open) waited for the name before it
        /// gave up; `None` where nothing was waited for (one look, as `open` makes).
        waited: Option<std::time::Duration>,
        /// The directory the channel would be in, where it did not exist either when it was
        /// looked for, which the message names: a file path's (a typo in the path, or a
        /// shared-memory name written with a '/'), or the shared-memory directory (one that
        /// `MMF_SHM_DIR` names and nobody made yet, or another process's setting); `None`
        /// otherwise.
        missing_dir: Option<PathBuf>,
        /// For a shared-memory name, whether a channel's file of that name is in the current
        /// directory, which the message points at: a name without '/' is never a file path
        /// (`./NAME` names the file).
        file_here: bool,
    },
    /// A value larger than the channel's capacity; nothing was published.
    #[error("value of {len} bytes does not fit the capacity of channel '{name}', {capacity} bytes; nothing was published (create a larger channel)")]
    #[non_exhaustive]
    TooLarge {
        /// The channel's name or path.
        name: String,
        /// Length of the refused value. From
        /// [`Channel::publish_with`](crate::Channel::publish_with): the bytes its closure had
        /// written, or tried to, when it stopped (at least the capacity plus one).
        len: usize,
        /// The channel's capacity.
        capacity: usize,
    },
    /// The closure that was filling a value failed (e.g. a serializer error); nothing was
    /// published.
    #[error("could not encode the value for channel '{name}': {cause}; nothing was published")]
    #[non_exhaustive]
    Encode {
        /// The channel's name or path.
        name: String,
        /// The closure's error.
        cause: std::io::Error,
    },
    /// A publish tagged [`Tag::EMPTY`](crate::Tag::EMPTY): tag 0 marks a channel that has no
    /// value yet (generation 0) and is never published; nothing was published.
    #[error("tag 0 (Tag::EMPTY) means \"no value yet\" and cannot be published; nothing was published (tag raw bytes Tag::BYTES, or use an application tag, 256 and up)")]
    EmptyTag,
    /// A publish tagged 5 to 255, which mmf keeps for codecs of its own to come: a reader of a
    /// later mmf would take such a value for one of them. Nothing was published.
    #[error("tag {tag} is kept for mmf's own codecs (5 to 255); nothing was published (use an application tag, 256 and up, or Tag::BYTES)")]
    #[non_exhaustive]
    ReservedTag {
        /// The tag given.
        tag: u16,
    },
    /// A capacity or reader count outside what the layout supports.
    #[error("invalid channel options: {0}")]
    InvalidOptions(String),
    /// The file exists but does not start with the mmf magic number.
    #[error("'{name}' is not an mmf channel ({}); check the name or path", first_bytes(*found, *file_len))]
    #[non_exhaustive]
    WrongMagic {
        /// The channel's name or path.
        name: String,
        /// The first 8 bytes found, in file order from the lowest byte (padded with zeros past
        /// the end of a shorter file).
        found: u64,
        /// The file's length in bytes, so that a file shorter than 8 bytes is not shown with
        /// the padding.
        file_len: u64,
    },
    /// `remove` or `create_or_replace` was given a file path whose file does not start with
    /// the mmf magic number, and not even with another: empty, shorter than 8 bytes, or
    /// zero-filled at the start. That is any other file, or a channel whose creator died before
    /// it wrote the header; either way mmf neither deletes nor replaces it.
    #[error("'{name}' is not an mmf channel ({what}); mmf removes and replaces only its own channels, so it was left as it is (if it is what is left of a channel whose creation never finished, delete the file itself)")]
    #[non_exhaustive]
    NotAChannel {
        /// The path as given.
        name: String,
        /// What the file holds instead.
        what: String,
    },
    /// The channel was written by a layout version this build does not read.
    ///
    /// After an upgrade to a build of a new layout, every channel an older build made is so:
    /// `open`, `open_or_create` and a [`Follower`](crate::Follower) refuse it, and nothing
    /// replaces or removes it on its own (a program of the older build may still use it). A
    /// service that owns its channel replaces it with one of this layout, losing its value:
    ///
    /// ```
    /// use mmf::{channel::Error, Options};
    /// use std::os::unix::fs::FileExt;
    /// # let dir = std::env::temp_dir().join(format!("mmf-doc-layout-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("state.mmf");
    /// let path = path.to_str().unwrap(); // with a '/': a file channel
    /// // A channel as a build of layout 6 left it (FORMAT.md §4: the version is word 1).
    /// drop(Options::new().capacity(64).create(path)?);
    /// std::fs::OpenOptions::new().write(true).open(path)?.write_all_at(&6u64.to_le_bytes(), 8)?;
    ///
    /// let ch = match Options::new().capacity(64).open_or_create(path) {
    ///     // An older build's (a version of 0 is a damaged header, not a layout).
    ///     Err(Error::UnsupportedVersion { found, supported, .. }) if (1..supported).contains(&found) => {
    ///         Options::new().capacity(64).create_or_replace(path)?
    ///     }
    ///     other => other?,
    /// };
    /// ch.publish_raw(mmf::Tag::TEXT, b"fresh")?;
    /// assert_eq!(ch.read_raw()?.1, b"fresh");
    /// # drop(ch);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[error("channel '{name}' has layout version {found}, this build reads version {supported}; {}", version_advice(*found, *supported))]
    #[non_exhaustive]
    UnsupportedVersion {
        /// The channel's name or path.
        name: String,
        /// Version in the header.
        found: u64,
        /// Version this build reads and writes.
        supported: u64,
    },
    /// The channel is of a kind this build does not read: a newer mmf made it (a stream
    /// channel, say, beside the latest-value channels that are kind 1). The channel is not
    /// damaged: the mmf that made it reads it.
    #[error("channel '{name}' is of kind {found}, which this build does not read (it reads kind {supported}, latest-value channels); the mmf that made it reads it, so use that one")]
    #[non_exhaustive]
    UnsupportedKind {
        /// The channel's name or path.
        name: String,
        /// Kind in the header.
        found: u64,
        /// The kind this build reads and writes.
        supported: u64,
    },
    /// The creator has not finished initialising the header (or died before it could): the
    /// file under the name is empty or starts with zeros. `open` says so once its
    /// [`init_timeout`](crate::Options::init_timeout) has passed, `create` at once (the name is
    /// taken either way).
    #[error("channel '{name}' is not initialised yet: its creator may still be starting, or died while creating it; retry, and if it stays so, remove it (a file path: delete the file, if it is what is left of a channel and not another program's file that starts with zeros)")]
    #[non_exhaustive]
    NotInitialized {
        /// The channel's name or path.
        name: String,
    },
    /// [`Follower::open`](crate::Follower::open)'s timeout passed while the channel under the name
    /// was still being created: its file is there, empty or just allocated, not initialised,
    /// and a process holds it open as its creator does (a channel of many GiB takes seconds to
    /// allocate). Waiting longer finds it made, unless the process holding it is not making
    /// it. Also what [`Channel::remove`](crate::Channel::remove) and
    /// [`Options::create_or_replace`](crate::Options::create_or_replace) of a file path say of
    /// a channel still being created there once they waited for it (250 ms, or the options'
    /// `init_timeout`): nothing was removed or replaced.
    #[error("channel '{name}' is still being created: a process holds its file, which is not initialised yet (a large channel takes about a second a GiB to allocate); wait longer, and if it stays so, see which process holds it (`fuser -v FILE`)")]
    #[non_exhaustive]
    BeingCreated {
        /// The channel's name or path.
        name: String,
    },
    /// The mapping holds values no correct writer produces. Where only the current value is
    /// damaged (what a read or [`Channel::verify`](crate::Channel::verify) finds past the
    /// geometry: a machine crash before a file channel was written back, or another program's
    /// writes into `latest`, a descriptor or a frame), `value_only` is set and
    /// `what` ends by saying that a publish, or [`Channel::recover`](crate::Channel::recover),
    /// mends it; anything else needs the channel removed and created again.
    #[error(
        "channel '{name}' is corrupt: {what}{}",
        if *value_only { "" } else { "; remove and recreate it" }
    )]
    #[non_exhaustive]
    Corrupt {
        /// The channel's name or path.
        name: String,
        /// What was found to be wrong, and, where only the current value is damaged, what
        /// mends it.
        what: String,
        /// The damage is to the current value alone: it lies in what the next publish
        /// rewrites (`latest`, a descriptor and inline buffer, the frame and payload `latest`
        /// names), so that publish mends it (and `recover` may); the geometry and the rest of
        /// the file are sound. `false`: only removing the channel and creating it again mends
        /// it.
        /// [`mended_by_publish`](Error::mended_by_publish) asks this.
        value_only: bool,
    },
    /// An access to this handle's mapping faulted, and the process's `SIGBUS` handler
    /// ([`crate::truncation::install`]) caught it: the channel's file was truncated (shrunk)
    /// while mapped, or, where it was not (`shrunk` is false), the file system could not supply
    /// a page of it. What the access read or wrote was not the channel's; the handle stays
    /// unusable.
    #[error(
        "channel '{name}' {}",
        if *shrunk {
            "was truncated while mapped (another process shrank its file); drop this handle and open the channel again (re-create it if that says it is damaged)"
        } else {
            "could not be accessed: a page of its file faulted though the file was as long as the mapping at the first look after it: the file system could not supply the page (no room for it in a file that copies on write, on btrfs: one an older mmf made, or one that shares pages with a reflink copy or a snapshot; or for a page punched out of the file; or an I/O error), or another process shrank the file and wrote it again (`cp` over it does); make room on the file system, then drop this handle and open the channel again"
        }
    )]
    #[non_exhaustive]
    Truncated {
        /// The channel's name or path.
        name: String,
        /// Whether the file was shorter than the mapping when the handle first reported the
        /// fault (or its size could not be told); the handle says the same from then on.
        /// `false`: as long as the mapping, so the fault was most likely the file system's: no
        /// room for a page of a file that copies on write (on btrfs: one made by an mmf that
        /// did not turn copy-on-write off, or one sharing pages with a reflink copy or a
        /// snapshot), or for a page another process punched out of the file, or a read or write
        /// error of the device; or another process shrank the file and wrote it again before
        /// that look (`cp` over a channel file does).
        shrunk: bool,
    },
    /// A bounded wait ran out: another writer held the lock, or a reader kept losing races.
    #[error("channel '{name}' stayed busy for {} ms ({what}); retry later", waited.as_millis())]
    #[non_exhaustive]
    Contended {
        /// The channel's name or path.
        name: String,
        /// What was waited for.
        what: String,
        /// How long it waited.
        waited: std::time::Duration,
    },
    /// A publish from inside a [`Channel::publish_with`](crate::Channel::publish_with) closure
    /// to the channel that closure is filling, whose writer lock this thread holds until the
    /// closure returns; nothing was published.
    #[error("channel '{name}': a publish from inside a publish_with closure on the same channel would wait for its own writer lock; publish once the closure has returned")]
    #[non_exhaustive]
    Reentrant {
        /// The channel's name or path.
        name: String,
    },
    /// Another handle claimed the channel's writer role
    /// ([`Options::exclusive_writer`](crate::Options::exclusive_writer),
    /// [`Channel::claim_writer`](crate::Channel::claim_writer)) and may still be running: its
    /// values alone are
    /// published there. Nothing was published or claimed; the current value stays. The claim
    /// goes when that handle is dropped or its process ends, however it ends.
    #[error("channel '{name}' has an exclusive writer, pid {pid}, and only it may publish there; nothing was published: stop that writer (or let it close the channel) first, or publish to another channel")]
    #[non_exhaustive]
    WriterClaimed {
        /// The channel's name or path.
        name: String,
        /// The exclusive writer's pid, as its own PID namespace numbers it.
        pid: u32,
    },
    /// The value is larger than this process could allocate a buffer for: a read (or
    /// [`Channel::recover`](crate::Channel::recover)) could not reserve its `len` bytes. Nothing
    /// was changed; the caller's buffer is left empty. Only a channel whose capacity exceeds the
    /// memory at hand gets here (its file may be sparse), and the value stays readable where
    /// there is more.
    #[error("channel '{name}': its value is {len} bytes, and this process could not allocate a buffer that large ({cause}); read it where more memory is free, or have its writers publish smaller values")]
    #[non_exhaustive]
    OutOfMemory {
        /// The channel's name or path.
        name: String,
        /// The value's length, as the mapping states it (at most the channel's capacity).
        len: u64,
        /// The allocator's refusal.
        cause: std::collections::TryReserveError,
    },
    /// A write through a handle that was opened read-only.
    #[error("channel '{name}' was opened read-only; open it read-write to publish")]
    #[non_exhaustive]
    ReadOnly {
        /// The channel's name or path.
        name: String,
    },
    /// The file system (typically `/dev/shm`) has no room for the channel.
    #[error("no space for channel '{name}' in {dir}: it needs {bytes} bytes ((readers + 2) x its size, and a header), the file system has {} free; free space there, give it a smaller size or fewer readers, or {}", available.map_or("not that much".to_owned(), |a| format!("{a} bytes")), enlarge(dir, *bytes, *available))]
    #[non_exhaustive]
    NoSpace {
        /// The channel's name or path.
        name: String,
        /// Bytes the mapping needs.
        bytes: u64,
        /// Directory that ran out of space.
        dir: PathBuf,
        /// Bytes this process could still allocate in that file system when the creation
        /// failed (for root, counting the blocks the file system reserves for root), if the
        /// file system told.
        available: Option<u64>,
    },
    /// The channel's memory does not fit this process's memory cgroup: a file in memory (tmpfs,
    /// such as `/dev/shm`) is charged to the cgroup of the process that creates it, and past its
    /// limit (a container's `--memory`) the kernel kills a process of the cgroup instead of
    /// failing the allocation: refused before it, by an estimate of the room left
    /// ([`host::memory_limit`](crate::host::memory_limit)), or, where the allocation failed
    /// all the same (`ENOMEM`: the kernel could not make room while allocating), after it.
    /// Nothing is left allocated, and no file under the name.
    #[error(
        "no memory for channel '{name}': it needs {bytes} bytes ((readers + 2) x its size, and a \
         header) of shared memory, which count against this process's memory cgroup, and {} ({}); \
         give it a smaller size or fewer readers, or raise the limit (a container's --memory)",
        memory_left(*room, *bytes, *limit),
        cgroup.display()
    )]
    #[non_exhaustive]
    MemoryLimit {
        /// The channel's name or path.
        name: String,
        /// Bytes the mapping needs.
        bytes: u64,
        // (`room` may be more than `bytes` where the kernel could not make room for the pages
        // all the same, `ENOMEM` from the allocation: pressure the estimate did not see.)
        /// About how many bytes the cgroup could still take: its limit less what is charged to
        /// it and cannot be reclaimed
        /// ([`host::MemoryLimit::room`](crate::host::MemoryLimit::room)).
        room: u64,
        /// The limit, in bytes: the tightest of the cgroup's and its ancestors'.
        limit: u64,
        /// The directory of the cgroup whose limit it is (under `/sys/fs/cgroup`).
        cgroup: PathBuf,
    },
    /// The channel's file would be larger than this process may make a file
    /// (`RLIMIT_FSIZE`, `ulimit -f`): refused before anything is allocated, where the
    /// allocation would have ended the process with `SIGXFSZ`. No file is left under the name.
    #[error(
        "channel '{name}' needs a file of {bytes} bytes ((readers + 2) x its size, and a header), \
         beyond this process's file size limit of {limit} bytes (`ulimit -f`); give it a smaller \
         size or fewer readers, or raise the limit"
    )]
    #[non_exhaustive]
    FileSizeLimit {
        /// The channel's name or path.
        name: String,
        /// Bytes the mapping needs.
        bytes: u64,
        /// The limit, in bytes.
        limit: u64,
    },
    /// The OS refused access (file mode, or another user's channel).
    #[error("permission denied for channel '{name}': {cause}{advice}", advice = mode_advice(cause, path))]
    #[non_exhaustive]
    PermissionDenied {
        /// The channel's name or path.
        name: String,
        /// The file behind it.
        path: PathBuf,
        /// The OS error (in a sticky directory, said with who may remove the file:
        /// [`Error::os_error`] gives the OS's own).
        cause: std::io::Error,
    },
    /// A wait for a channel to be created ([`Follower::open`](crate::Follower::open)) that a
    /// [`Stop`](crate::Stop) ended first: nothing was opened.
    #[error("stopped waiting for channel '{name}' to be created ({reason}); nothing was opened")]
    #[non_exhaustive]
    Stopped {
        /// The channel's name or path.
        name: String,
        /// Why the `Stop` was turned.
        reason: crate::StopReason,
    },
    /// A [`Stop`](crate::Stop) could not watch a process for its exit
    /// ([`Stop::stop_on_exit`](crate::Stop::stop_on_exit)): the thread that watches it could not
    /// be started (too many threads or open files), or this platform cannot watch processes.
    #[error(
        "cannot watch process {pid} for its exit: {cause}; raise the limit that was hit \
         (open files: `ulimit -n`; threads) or wait for that process another way"
    )]
    #[non_exhaustive]
    ProcessWatch {
        /// The process to watch.
        pid: u32,
        /// The OS error.
        cause: std::io::Error,
    },
    /// A pid that names no process, given to [`Stop::stop_on_exit`](crate::Stop::stop_on_exit)
    /// (0, or beyond `i32::MAX`).
    #[error("pid {pid} names no process; give the pid of the process whose exit stops the wait")]
    #[non_exhaustive]
    InvalidPid {
        /// The pid given.
        pid: u32,
    },
    /// Shared memory is not supported by this build on this platform.
    #[error("named channels are not supported on this platform yet")]
    Unsupported,
    /// Any other OS error, with the operation and file it concerned.
    #[error("{op} '{}': {cause}", path.display())]
    #[non_exhaustive]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The OS error; where mmf says in its message what it means for a channel ("Too many
        /// open files: ... raise the limit"), [`Error::os_error`] gives the OS's own, errno and
        /// all.
        cause: std::io::Error,
    },
}

/// Whether `path` is a regular file that starts with mmf's magic: a channel's file, which a
/// name without '/' does not reach (any other file of the name is a program's own).
fn channel_file(path: &str) -> bool {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // A regular file by its name first, and opened without blocking: a FIFO of the name (or one
    // put there between the two) would hold an open for reading until a writer came.
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return false;
    }
    let mut magic = [0u8; 8];
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .and_then(|mut f| match f.metadata()?.is_file() {
            true => f.read_exact(&mut magic),
            false => Err(std::io::ErrorKind::InvalidInput.into()),
        })
        .is_ok_and(|()| u64::from_le_bytes(magic) == crate::layout::MAGIC)
}

/// The message of [`Error::NotFound`]: what a wait for the name adds (it was waited for, and
/// how long), so that a timeout is not taken for a typo, and a file path's missing directory.
fn not_found(
    name: &str,
    waited: Option<std::time::Duration>,
    missing_dir: Option<&std::path::Path>,
    file_here: bool,
) -> String {
    let found = match waited {
        None => format!("no channel named '{name}'"),
        Some(waited) => format!(
            "no channel named '{name}' appeared in the {} it was waited for",
            span(waited)
        ),
    };
    match (missing_dir, waited) {
        // A shared-memory name (no '/'): its directory, which mmf never makes.
        (Some(dir), _) if !name.contains('/') => format!(
            "{found}: the shared-memory directory {} does not exist either ({})",
            dir.display(),
            crate::name::shm_dir_advice(
                "MMF_SHM_DIR names it: create it, or set MMF_SHM_DIR as the process that \
                 creates the channel has it"
            )
        ),
        (Some(dir), _) => format!(
            "{found}: its directory {} does not exist either (a name with a '/' is a file \
             path); check the path, or create the directory, then the channel",
            dir.display()
        ),
        // (A reader started before its writer is the usual case: how to wait for it, which a
        // library review found unsaid.)
        (None, None) if file_here => format!(
            "{found} in shared memory; a name without '/' is a shared-memory channel, so for \
             the file here say './{name}'"
        ),
        (None, None) => format!(
            "{found}; check the name, or create the channel first (`Follower::open` with a time \
             to wait opens it once it appears)"
        ),
        (None, Some(_)) => format!(
            "{found}; check the name, and that the process that creates the channel has started"
        ),
    }
}

/// A span of time as a message says it: `250 ms`, `5 s`, `1.5 s`, `90 s`.
fn span(d: std::time::Duration) -> String {
    if d < std::time::Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        // Tenths of a second, rounded down, without a trailing `.0`.
        let tenths = d.as_millis() / 100;
        match tenths % 10 {
            0 => format!("{} s", tenths / 10),
            t => format!("{}.{t} s", tenths / 10),
        }
    }
}

/// The message of [`Error::IsADirectory`]: a path names a directory by mistake; a
/// shared-memory name (no '/') finds one that someone made in the shared-memory directory.
fn is_a_directory(name: &str) -> String {
    if name.ends_with('/') {
        // Whether or not there is one: `Location::parse` refuses such a path before any look.
        return format!(
            "'{name}' names a directory (it ends in '/'); a channel path names a file, such as \
             '{name}state.mmf'"
        );
    }
    // ("." and ".." are paths; no shared-memory name is either.)
    if name.contains('/') || name == "." || name == ".." {
        format!("'{name}' is a directory; a channel path names a file, such as '{name}/state.mmf'")
    } else {
        format!(
            "'{name}' is a directory in the shared-memory directory, not a channel (something \
             other than mmf made it there); if nothing in it is needed, removing it (`rm -r {}`) \
             frees the name",
            crate::os::shm_dir().join(format!("mmf.{name}")).display()
        )
    }
}

/// An OS error told in mmf's words: what it means for a channel and what to do, in place of
/// the OS's few words ("Too many open files"), which a `cause` shows in its message. The OS's
/// error stays inside, with its errno, for [`Error::os_error`].
#[derive(Debug)]
pub(crate) struct Explained {
    os: std::io::Error,
    text: String,
    /// Whether `text` says all there is to do, so that a message around it gives no advice of
    /// its own ([`Error::PermissionDenied`]'s about the owner and mode).
    whole: bool,
}

/// `os`, of the same kind, saying `text` when shown ([`Explained`]).
pub(crate) fn explained(os: std::io::Error, text: impl Into<String>) -> std::io::Error {
    explain(os, text.into(), false)
}

/// [`explained`], with `text` saying all there is to do.
pub(crate) fn explained_whole(os: std::io::Error, text: impl Into<String>) -> std::io::Error {
    explain(os, text.into(), true)
}

/// An [`Explained`] `os`, of its kind.
fn explain(os: std::io::Error, text: String, whole: bool) -> std::io::Error {
    let kind = os.kind();
    std::io::Error::new(kind, Explained { os, text, whole })
}

/// `cause` with its explanation's text passed through `reword`, where it is [`Explained`]
/// (a path in it said as the user gave it); any other error as it is.
pub(crate) fn reworded(cause: std::io::Error, reword: impl Fn(&str) -> String) -> std::io::Error {
    let Some(x) = cause.get_ref().and_then(|e| e.downcast_ref::<Explained>()) else {
        return cause;
    };
    let (text, whole) = (reword(&x.text), x.whole);
    let kind = cause.kind();
    match cause.into_inner().map(|e| e.downcast::<Explained>()) {
        Some(Ok(x)) => explain(x.os, text, whole),
        // (Checked above: not reached.)
        Some(Err(other)) => std::io::Error::new(kind, other),
        None => std::io::Error::from(kind),
    }
}

/// What [`Error::PermissionDenied`] advises after its cause: to check the owner and mode of
/// the file and of its directory, unless the cause said all there is to do (an immutable file,
/// whose mode is not what refuses).
fn mode_advice(cause: &std::io::Error, path: &std::path::Path) -> String {
    let whole = cause
        .get_ref()
        .and_then(|e| e.downcast_ref::<Explained>())
        .is_some_and(|x| x.whole);
    if whole {
        return String::new();
    }
    format!(
        "; check the owner and mode of the file and of its directory (`ls -ld {} {}`)",
        shell_quoted(path),
        shell_quoted(crate::name::dir_of(path))
    )
}

impl Explained {
    /// The OS's own error in `cause`: the one it explains, where it is an [`Explained`].
    fn os_of(cause: &std::io::Error) -> &std::io::Error {
        cause
            .get_ref()
            .and_then(|e| e.downcast_ref::<Explained>())
            .map_or(cause, |x| &x.os)
    }
}

impl std::fmt::Display for Explained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

// No `source()`: the text already says what the OS said, where it matters.
impl std::error::Error for Explained {}

/// The end of [`Channel::recover`](crate::Channel::recover)'s error when the current value is
/// damaged and no earlier one is whole.
pub(crate) const NOTHING_WHOLE: &str =
    "no earlier value is whole in any slot or in the header; publish a new one";

/// For a caller whose function returns [`std::io::Result`] (an `io::Read` or `io::Write` of its
/// own, a callback of another library), as `serde_json::Error` converts: the error becomes an
/// [`io::Error`](std::io::Error) of the nearest [`ErrorKind`](std::io::ErrorKind) that holds
/// this one (its message, and `get_ref`/`into_inner` to have it back), the OS error's own kind
/// where one is behind it ([`Error::os_error`]).
///
/// ```
/// use std::io::ErrorKind;
/// fn open(name: &str) -> std::io::Result<mmf::Channel> {
///     Ok(mmf::Channel::open(name)?)
/// }
/// let e = open("io-error-doc-never-created").unwrap_err();
/// assert_eq!(e.kind(), ErrorKind::NotFound);
/// let inner = e.get_ref().and_then(|e| e.downcast_ref::<mmf::channel::Error>());
/// assert!(matches!(inner, Some(mmf::channel::Error::NotFound { .. })));
/// ```
impl From<Error> for std::io::Error {
    fn from(e: Error) -> std::io::Error {
        std::io::Error::new(e.io_kind(), e)
    }
}

impl Error {
    /// The [`ErrorKind`](std::io::ErrorKind) of the `io::Error` this one converts to.
    pub(crate) fn io_kind(&self) -> std::io::ErrorKind {
        use std::io::ErrorKind as K;
        // The OS's own kind, or for `Encode` the fill closure's.
        if let Some(os) = self.os_error() {
            return os.kind();
        }
        match self {
            Error::InvalidName { .. }
            | Error::InvalidOptions(_)
            | Error::InvalidPid { .. }
            | Error::EmptyTag
            | Error::ReservedTag { .. }
            | Error::TooLarge { .. } => K::InvalidInput,
            Error::IsADirectory { .. } => K::IsADirectory,
            Error::AlreadyExists { .. } => K::AlreadyExists,
            Error::NotFound { .. } => K::NotFound,
            Error::NotAFile { .. }
            | Error::WrongMagic { .. }
            | Error::NotAChannel { .. }
            | Error::UnsupportedVersion { .. }
            | Error::UnsupportedKind { .. }
            | Error::NotInitialized { .. }
            | Error::Corrupt { .. }
            | Error::Truncated { .. } => K::InvalidData,
            Error::BeingCreated { .. } | Error::Contended { .. } => K::TimedOut,
            Error::Reentrant { .. } | Error::WriterClaimed { .. } => K::ResourceBusy,
            Error::OutOfMemory { .. } | Error::MemoryLimit { .. } => K::OutOfMemory,
            Error::ReadOnly { .. } | Error::PermissionDenied { .. } => K::PermissionDenied,
            Error::NoSpace { .. } => K::StorageFull,
            Error::FileSizeLimit { .. } => K::FileTooLarge,
            // Not `Interrupted`, which std's `write_all`, `read_exact` and `io::copy` retry at
            // once: a stop, once turned, stays turned, and they would loop for ever.
            Error::Stopped { .. } => K::Other,
            Error::Unsupported => K::Unsupported,
            Error::Encode { .. } | Error::ProcessWatch { .. } | Error::Io { .. } => K::Other,
        }
    }
}

impl Error {
    /// The I/O error behind this one: the OS's own for [`Io`](Error::Io),
    /// [`PermissionDenied`](Error::PermissionDenied) and [`ProcessWatch`](Error::ProcessWatch)
    /// (with its `raw_os_error()`, say `EMFILE`, also where the message says in mmf's words what
    /// it means and what to do), the fill closure's for [`Encode`](Error::Encode); `None` for
    /// every other error.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("os-error-doc-{}", std::process::id()));
    /// let missing = dir.join("no-such-dir").join("ch.mmf");
    /// let err = mmf::Channel::create(missing.to_str().unwrap(), 64).unwrap_err();
    /// let os = err.os_error().expect("an OS error");
    /// assert_eq!(os.kind(), std::io::ErrorKind::NotFound);
    /// assert!(std::error::Error::source(&err).is_none(), "its text is in the message");
    /// ```
    pub fn os_error(&self) -> Option<&std::io::Error> {
        match self {
            Error::Io { cause, .. }
            | Error::PermissionDenied { cause, .. }
            | Error::Encode { cause, .. }
            | Error::ProcessWatch { cause, .. } => Some(Explained::os_of(cause)),
            _ => None,
        }
    }

    /// Whether an open was refused because another process held an exclusive `flock` on the
    /// channel's file for longer than the open waited ([`Error::Io`], `WouldBlock`): mmf's own
    /// holders (`mmf prune`, `recover`) keep one for an instant, so a caller with time left
    /// may try again, as a [`Follower`](crate::Follower) does until its deadline.
    pub fn is_locked_out(&self) -> bool {
        matches!(self, Error::Io { op: "locking", cause, .. }
            if cause.kind() == std::io::ErrorKind::WouldBlock)
    }

    /// [`Error::NotFound`] for `location`, found missing by one look: with its directory
    /// where that is missing too, and for a shared-memory name, whether a file of that name is
    /// here.
    pub(crate) fn not_found(location: &crate::Location) -> Error {
        let (missing_dir, file_here) = match location {
            crate::Location::File(path) => {
                let dir = crate::name::dir_of(path);
                ((!dir.exists()).then(|| dir.to_owned()), false)
            }
            crate::Location::Shm(name) => {
                let dir = crate::os::shm_dir();
                ((!dir.exists()).then_some(dir), channel_file(name.as_str()))
            }
            crate::Location::Anonymous => (None, false),
        };
        Error::NotFound {
            name: location.to_string(),
            waited: None,
            missing_dir,
            file_here,
        }
    }

    /// [`Error::TooLarge`]: what a publish of `len` bytes to the channel `name` of `capacity`
    /// bytes fails with, for a layer that encodes a value into a buffer of its own (as
    /// `mmf-codec` does) and finds it too large before it publishes.
    ///
    /// ```
    /// let e = mmf::channel::Error::too_large("results", 300, 256);
    /// assert!(e.to_string().starts_with("value of 300 bytes does not fit"), "{e}");
    /// ```
    pub fn too_large(name: impl Into<String>, len: usize, capacity: usize) -> Error {
        Error::TooLarge {
            name: name.into(),
            len,
            capacity,
        }
    }

    /// For [`WrongMagic`](Error::WrongMagic), how the file starts, as its message says it: "it
    /// starts with ..." or "the file is only N bytes: ...", its bytes in file order (as `xxd`
    /// shows them), and as text too where they are printable. `None` for every other error.
    pub fn file_start(&self) -> Option<String> {
        match self {
            Error::WrongMagic {
                found, file_len, ..
            } => Some(first_bytes(*found, *file_len)),
            _ => None,
        }
    }

    /// Whether this is damage to the channel's current value alone ([`Error::Corrupt`] from a
    /// read, from [`Channel::verify`](crate::Channel::verify), or from
    /// [`Channel::recover`](crate::Channel::recover) finding nothing whole), which
    /// the next publish mends, and `recover` may: the channel itself is sound, and a wait for
    /// the next value may go on. `false` for every other error, and for a corrupt header or
    /// file, which only re-creating the channel mends.
    ///
    /// ```
    /// use mmf::{Channel, Tag};
    /// let ch = Channel::anonymous(8)?;
    /// let e = ch.publish_raw(Tag::BYTES, b"nine byte").unwrap_err();
    /// assert!(!e.mended_by_publish(), "not damage: {e}");
    /// # Ok::<(), mmf::channel::Error>(())
    /// ```
    pub fn mended_by_publish(&self) -> bool {
        matches!(
            self,
            Error::Corrupt {
                value_only: true,
                ..
            }
        )
    }
}

/// A file's first 8 bytes (`word`, read as a little-endian u64) as a message shows them: in
/// file order, as `xxd` or `od` would (the word's hex would read them backwards), and as text
/// too where they are printable ASCII (a text file under the name); of a file of `file_len`
/// bytes under 8, only those.
fn first_bytes(word: u64, file_len: u64) -> String {
    let all = word.to_le_bytes();
    let bytes = &all[..file_len.min(8) as usize];
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let hex = hex.join(" ");
    let what = if bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        format!("{:?} ({hex})", String::from_utf8_lossy(bytes))
    } else if file_len < 8 {
        hex
    } else {
        format!("bytes {hex}")
    };
    if file_len < 8 {
        format!("the file is only {file_len} bytes: {what}")
    } else {
        format!("it starts with {what}")
    }
}

/// How to make room where a channel of `bytes` did not fit in `dir` (`available` free, if
/// known): a tmpfs can be enlarged, by at least what is missing, through its mount point; a
/// disk cannot. Only a file system known to be a tmpfs is told to remount (Linux's `mount -o
/// remount,size=`): one on a disk (`MMF_SHM_DIR` naming a directory there) was told so, naming
/// a directory that is no mount point (a migrating user's review), and elsewhere (FreeBSD,
/// macOS) the kind is not told, and the mount point climbed to could be `/` (the diff review's).
fn enlarge(dir: &std::path::Path, bytes: u64, available: Option<u64>) -> String {
    if crate::os::in_memory_known(dir) != Some(true) {
        return "put it on a file system with room".to_owned();
    }
    // What is missing, if the free space was told and is short of it; else (unknown, or enough
    // by the count but not after rounding to pages or a cgroup's limit) all of it.
    let short = match available {
        Some(free) if free < bytes => bytes - free,
        _ => bytes,
    };
    let mount = mount_point(dir);
    format!(
        "enlarge it by at least {short} bytes (as root: `mount -o remount,size=SIZE {}`, SIZE \
         its size now plus that; `df -B1 {}` shows its size)",
        mount.display(),
        mount.display()
    )
}

/// The mount point of the file system holding `dir`: its highest ancestor on the same device
/// (`dir` itself where that cannot be told).
fn mount_point(dir: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::MetadataExt;
    let Ok(mut at) = std::fs::canonicalize(dir) else {
        return dir.to_owned();
    };
    let Ok(dev) = std::fs::metadata(&at).map(|m| m.dev()) else {
        return at;
    };
    while let Some(parent) = at.parent() {
        if std::fs::metadata(parent).map(|m| m.dev()).ok() != Some(dev) {
            break;
        }
        at = parent.to_owned();
    }
    at
}

/// What [`Error::MemoryLimit`] says of a cgroup's room: what is left, or, where that looked
/// like enough and the allocation failed all the same (`ENOMEM`), so.
fn memory_left(room: u64, bytes: u64, limit: u64) -> String {
    if room < bytes {
        format!("that has about {room} bytes left of its limit of {limit}")
    } else {
        format!(
            "the kernel could not make room for its pages while allocating them (memory \
             pressure in the cgroup or on the machine), although about {room} bytes of its \
             limit of {limit} looked free"
        )
    }
}

/// `path` as one shell word, for a command a message suggests: as it is where it holds only
/// characters no shell treats specially, else in single quotes (a `'` inside as `'\''`).
pub(crate) fn shell_quoted(path: &std::path::Path) -> String {
    let s = path.to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./,:+@%=".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What to do about a channel of layout version `found`, where this build reads `supported`.
/// Layout versions count up from 1, one a layout change: a version of 0, or one that no mmf
/// could reach (above 65535), is a damaged word, which neither an older nor a newer mmf reads.
fn version_advice(found: u64, supported: u64) -> &'static str {
    if found == 0 || found > u64::from(u16::MAX) {
        "no mmf makes that version: the header is damaged, or another program wrote the file"
    } else if found > supported {
        "a newer mmf made it: read it with that one, or upgrade this one"
    } else {
        "an older mmf made it, which still reads it"
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    /// A missing shared-memory directory is said as such, not as a file path's; a file of the
    /// name here is pointed at (a Rust user's review: both were "check the name, or create the
    /// channel first (`Follower::open` ...)", where that call had just failed).
    #[test]
    fn a_missing_channel_says_what_else_is_missing() {
        let shm = |missing_dir: Option<&str>, file_here| {
            super::Error::NotFound {
                name: "svc".into(),
                waited: None,
                missing_dir: missing_dir.map(Into::into),
                file_here,
            }
            .to_string()
        };
        let said = shm(Some("/run/app/shm"), false);
        assert!(
            said.starts_with(
                "no channel named 'svc': the shared-memory directory /run/app/shm does not exist \
                 either ("
            ) && !said.contains("Follower::open"),
            "{said}"
        );
        let said = shm(None, true);
        assert!(
            said.contains(
                "a name without '/' is a shared-memory channel, so for the file here \
                 say './svc'"
            ),
            "{said}"
        );
        assert!(shm(None, false).contains("`Follower::open` with a time to wait"));
    }

    #[test]
    fn spans_read_as_a_message_says_them() {
        for (ms, said) in [
            (0, "0 ms"),
            (999, "999 ms"),
            (1000, "1 s"),
            (1099, "1 s"),
            (1550, "1.5 s"),
            (90_000, "90 s"),
        ] {
            assert_eq!(super::span(Duration::from_millis(ms)), said);
        }
    }
}
