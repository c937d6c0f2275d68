//! Exit codes (documented in `mmf --help`, the README and docs/CLI.md) and error messages.

use mmf::channel::Error as CoreError;
use mmf::Error as CodecError;
use std::ffi::OsStr;

/// Any error not listed below.
pub const ERROR: u8 = 1;
/// Bad flags or arguments (clap also exits with 2), or an invalid channel name.
pub const USAGE: u8 = 2;
/// No channel under that name.
pub const NOT_FOUND: u8 = 3;
/// The value does not fit the channel.
pub const TOO_LARGE: u8 = 4;
/// Invalid input: JSON, MessagePack or UTF-8 that does not parse, or a value of another format.
pub const INVALID_INPUT: u8 = 5;
/// `new` found a channel under the name already.
pub const EXISTS: u8 = 6;
/// The channel holds no value yet.
pub const EMPTY: u8 = 7;
/// A bounded wait ran out.
pub const TIMEOUT: u8 = 8;
/// The process named by `--pid` exited before what was waited for came.
pub const EXITED: u8 = 9;
/// Another writer claimed the channel's writer role (`out --exclusive`, or a program's
/// `exclusive_writer`): nothing was published.
pub const CLAIMED: u8 = 10;
/// A signal ended a wait (Ctrl-C, SIGTERM, SIGHUP, or another of `interrupt`'s): the process
/// then ends by that signal itself (`interrupt::end_by_signal`), so this code is not seen
/// outside; it keeps the wait's error quiet (no message).
pub const INTERRUPTED: u8 = 130;

fn core_error(err: &anyhow::Error) -> Option<&CoreError> {
    err.chain().find_map(|e| {
        e.downcast_ref::<CoreError>()
            .or_else(|| match e.downcast_ref::<CodecError>() {
                Some(CodecError::Channel(c)) => Some(c),
                _ => None,
            })
    })
}

/// What the command line says of a missing channel `name`; `value_len` is the size of the value
/// `out` was given (0 when there is none), which the advice to create the channel makes room
/// for (it said `--size 1KiB` whatever the value).
pub fn not_found(name: impl AsRef<OsStr>, value_len: usize) -> String {
    let typed = name.as_ref();
    let slash = typed.as_encoded_bytes().contains(&b'/');
    let name = &*typed.to_string_lossy();
    let shm_dir = mmf::channel::host::shm_dir();
    // `mmf read state.mmf` beside a file state.mmf: a name without '/' is shared memory. (Not
    // where the file here is a channel's own, `mmf.NAME` in the shared-memory directory: that
    // channel is NAME, said below.)
    let here = std::path::Path::new(typed);
    let file = !slash && here.is_file() && !crate::cmd::is_shm_file(here);
    if !slash && !shm_dir.is_dir() {
        // `mmf new` would fail too: say what is missing.
        format!(
            "no channel named '{name}': the shared-memory directory {} does not exist \
             ({})",
            shm_dir.display(),
            if std::env::var_os("MMF_SHM_DIR").is_some_and(|d| !d.is_empty()) {
                "MMF_SHM_DIR names it; create it or point MMF_SHM_DIR at a directory \
                 that exists"
            } else {
                "mount a tmpfs there or set MMF_SHM_DIR to a directory for channels"
            }
        )
    } else if let Some(dir) = missing_dir(typed) {
        // `mmf new` would fail too: the directory first.
        format!(
            "no channel named '{name}': the directory {} does not exist; create it (mkdir -p {}), \
             then the channel with `{}`",
            dir.display(),
            shell_word(&dir),
            command("new", typed, &format!("--size {}", size_for(value_len)))
        )
    } else if file {
        format!(
            "no channel named '{name}' in shared memory; a name without '/' is a \
             shared-memory channel, so for the file here say {}",
            shell_word(format!("./{name}"))
        )
    } else {
        let near = if slash {
            String::new()
        } else {
            near_names(name, &shm_dir, false)
                .map_or(String::new(), |n| format!(" (did you mean {n}?)"))
        };
        // The directory looked in, for a shared-memory name: a shell, cron job or service
        // without the writer's `MMF_SHM_DIR` looks elsewhere (a migrating user's review).
        let place = shm_place(typed);
        format!(
            "no channel named '{name}'{place}{near}; check the name (another process may have \
             removed the channel), or create it with `{}`",
            command("new", typed, &format!("--size {}", size_for(value_len)))
        )
    }
}

/// ` in DIR` for a shared-memory channel's `name` (no '/'; the directory it is looked for in,
/// which the environment sets: `MMF_SHM_DIR`), else nothing.
pub fn shm_place(name: impl AsRef<OsStr>) -> String {
    match name.as_ref().as_encoded_bytes().contains(&b'/') {
        true => String::new(),
        false => format!(" in {}", mmf::channel::host::shm_dir().display()),
    }
}

/// ` (did you mean 'NAME'?)` for a shared-memory `location` whose name is near a channel's
/// ([`near_names`]), else nothing.
pub fn near_hint(location: &mmf::Location) -> String {
    let mmf::Location::Shm(name) = location else {
        return String::new();
    };
    near_names(name.as_str(), &mmf::channel::host::shm_dir(), true)
        .map_or(String::new(), |n| format!(" (did you mean {n}?)"))
}

/// Whether `a` and `b` differ in their digits alone (`run42.result`, `run43.result`): names a
/// harness numbers, where one not made yet is what a wait is for, not a typo.
fn numbered_alike(a: &str, b: &str) -> bool {
    a.chars()
        .filter(|c| !c.is_ascii_digit())
        .eq(b.chars().filter(|c| !c.is_ascii_digit()))
}

/// The shared-memory channels in `dir` whose names are near `name` (a letter or two apart, or
/// another case), quoted and joined with "or"; `None` if there is none. Names only, from the
/// directory: nothing is opened. `waiting`: for a name a wait is for, which a name numbered
/// alike is not near ([`numbered_alike`]: the wait is for the next of a series).
fn near_names(name: &str, dir: &std::path::Path, waiting: bool) -> Option<String> {
    let mut near: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| {
            let file = e.ok()?.file_name().into_string().ok()?;
            let other = file.strip_prefix(mmf::channel::SHM_PREFIX)?;
            let most = (name.chars().count() / 4).clamp(1, 2);
            // (`mmf.NAME`, the name as `ls /dev/shm` shows it, is NAME. Lengths apart by more
            // than `4 * most` are never near: no table to fill for them.)
            let close = other.eq_ignore_ascii_case(name)
                || name.strip_prefix(mmf::channel::SHM_PREFIX) == Some(other)
                || (other.len().abs_diff(name.len()) <= 4 * most
                    && edit_distance(other, name) <= most);
            let series = waiting && numbered_alike(other, name);
            (close && other != name && !series).then(|| format!("'{other}'"))
        })
        .collect();
    near.sort();
    near.truncate(3);
    (!near.is_empty()).then(|| near.join(" or "))
}

/// The edit distance between `a` and `b`, by characters: insertions, deletions, substitutions
/// and swaps of two neighbours (`Tset` is one from `Test`), each one.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // d[i][j]: the distance between a[..i] and b[..j].
    let mut d = vec![vec![0; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + usize::from(a[i - 1] != b[j - 1]));
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// A round channel size that holds `len` bytes: 1KiB, else the power of two above it (`8KiB`,
/// `2MiB`, `1GiB`).
fn size_for(len: usize) -> String {
    let Some(bytes) = len.max(1024).checked_next_power_of_two() else {
        return "SIZE".into();
    };
    match bytes {
        b if b >= 1 << 30 => format!("{}GiB", b >> 30),
        b if b >= 1 << 20 => format!("{}MiB", b >> 20),
        b => format!("{}KiB", b >> 10),
    }
}

/// The exit code for an error.
pub fn code(err: &anyhow::Error) -> u8 {
    if let Some(c) = core_error(err) {
        return match c {
            CoreError::NotFound { .. } => NOT_FOUND,
            CoreError::TooLarge { .. } => TOO_LARGE,
            CoreError::AlreadyExists { .. } => EXISTS,
            // A `new --force` or a `remove` of a file path that another process is still
            // creating (`read` and `watch` say so with codes of their own).
            CoreError::BeingCreated { .. } => EXISTS,
            // A directory given as a channel's path is a mistake in the command; a FIFO, a
            // device or a directory under a shared-memory name is, like a regular file that is
            // no channel, something else in its place (exit 1).
            CoreError::InvalidName { .. } | CoreError::InvalidOptions(_) => USAGE,
            CoreError::IsADirectory { name, .. }
                if name.contains('/') || name == "." || name == ".." =>
            {
                USAGE
            }
            CoreError::Contended { .. } => TIMEOUT,
            CoreError::WriterClaimed { .. } => CLAIMED,
            _ => ERROR,
        };
    }
    for e in err.chain() {
        if let Some(c) = e.downcast_ref::<CodecError>() {
            return match c {
                CodecError::Empty { .. } => EMPTY,
                CodecError::WrongTag { .. }
                | CodecError::InvalidJson { .. }
                | CodecError::InvalidMsgpack(_)
                | CodecError::NotJson(_)
                | CodecError::Decode { .. }
                | CodecError::Encode(_) => INVALID_INPUT,
                _ => ERROR,
            };
        }
        if let Some(code) = e.downcast_ref::<Coded>() {
            return code.0;
        }
        if e.is::<NotUtf8>() {
            return INVALID_INPUT;
        }
    }
    ERROR
}

/// The line `mmf` prints for an error of `verb` on the channel `name` (when the verb takes one):
/// the context and the error, with what to do next in the command line's own terms. The
/// library's messages end with advice for any caller ("create the channel first"); where the
/// command line can say it exactly (`mmf new T --size 1KiB`), its line replaces that advice
/// instead of following it.
pub fn report(err: &anyhow::Error, verb: &str, name: Option<&OsStr>) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in err.chain() {
        let core = e
            .downcast_ref::<CoreError>()
            .or_else(|| match e.downcast_ref::<CodecError>() {
                Some(CodecError::Channel(c)) => Some(c),
                _ => None,
            });
        if let Some(line) = core.and_then(|c| cli_line(c, verb, name)) {
            parts.push(line);
            // The core error is the last cause these variants have.
            break;
        }
        let s = e.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    let mut line = in_cli_terms(parts.join(": "), name);
    if let Some(h) = hint(err, verb) {
        line = format!("{line} ({h})");
    }
    line
}

/// The library's messages name its API beside the command (`` `mmf recover` (`Channel::recover`)
/// ``), for any caller; a command line's user is told the command alone (an operator's review
/// found "`Options::read_only`" and "`Channel::remove`" in `mmf` errors).
fn in_cli_terms(line: String, name: Option<&OsStr>) -> String {
    let verb = |verb: &str| match name {
        Some(name) => format!("`{}`", command(verb, name, "")),
        None => format!("`mmf {verb} NAME`"),
    };
    let (remove, recover) = (verb("remove"), format!("({})", verb("recover")));
    [
        (" (`Channel::recover`)", ""),
        ("(`Channel::recover`, `mmf recover NAME`)", recover.as_str()),
        (" (`host::free_orphans` in Rust)", ""),
        ("`Channel::remove` (`mmf remove NAME`)", remove.as_str()),
        (
            "(opened read-only: `Options::read_only`, `mmf read`)",
            "(opened read-only, as `mmf read` and `mmf info` open it)",
        ),
    ]
    .iter()
    .fold(line, |line, (library, cli)| line.replace(library, cli))
}

/// The hints that follow a message rather than replace part of it.
fn hint(err: &anyhow::Error, verb: &str) -> Option<String> {
    let codec = |f: fn(&CodecError) -> bool| {
        err.chain()
            .any(|e| e.downcast_ref::<CodecError>().is_some_and(f))
    };
    if verb == "out" && err.chain().any(|e| e.is::<NotUtf8>()) {
        return Some("--bytes publishes it as raw bytes".into());
    }
    if verb == "out" && codec(|e| matches!(e, CodecError::InvalidJson { .. })) {
        return Some("without --json the input would be stored as text".into());
    }
    None
}

/// How to clear a channel a creator left unfinished: `mmf remove NAME clears it`, or for a file
/// path, delete the file (mmf removes only files that start with its magic, which a half-made
/// one does not), if it is what is left of a channel: a file that starts with zeros may be any
/// other program's (a disk image's first bytes are zeros), and a review had every verb advise
/// `rm` of an ext4 image given by mistake.
pub fn clear_unfinished(name: impl AsRef<OsStr>) -> String {
    let name = name.as_ref();
    if name.as_encoded_bytes().contains(&b'/') {
        format!(
            "delete the file if it is what is left of a channel (another program's file that \
             starts with zeros, a disk image say, reads so too): rm {}",
            shell_word(name)
        )
    } else {
        format!("`{}` clears it", command("remove", name, ""))
    }
}

/// `mmf new` finding a channel under the name, with the two flags that would take it.
pub fn already_exists(name: &str) -> String {
    format!(
        "a channel named '{name}' already exists (--force replaces it, --exist-ok opens it as \
         it is)"
    )
}

/// A core error as the command line says it, advice included; `None` to print the library's
/// own message.
fn cli_line(c: &CoreError, verb: &str, arg: Option<&OsStr>) -> Option<String> {
    // The name as typed where the library's (said lossily) is it, for commands that run as
    // printed: a file path that is not UTF-8 is quoted byte for byte.
    let named = |name: &str| -> std::ffi::OsString {
        match arg {
            Some(arg) if arg.to_string_lossy() == name => arg.to_os_string(),
            _ => name.into(),
        }
    };
    // `mmf rm 'run.*'`: a pattern, which only `prune` takes (a harness author's review).
    let pattern = |name: &str| match name.contains(['*', '?', '[']) && !name.contains('/') {
        true => {
            "; `mmf remove` takes names, not patterns: `mmf prune 'PATTERN'` removes the \
                 stale channels a pattern matches"
        }
        false => "",
    };
    // A missing shared-memory directory is said as such, as `read` says it (the second
    // review's: `remove` named the directory without saying it is missing).
    let shm_missing = |name: &str| !name.contains('/') && !mmf::channel::host::shm_dir().is_dir();
    Some(match (c, verb) {
        (CoreError::NotFound { name, .. }, "remove" | "remove-one-of-many")
            if shm_missing(name) =>
        {
            format!("{}; nothing was removed", not_found(named(name), 0))
        }
        (CoreError::NotFound { name, .. }, "remove") => format!(
            "no channel named '{name}'{}; nothing was removed (--force ignores names that do not \
             exist){}",
            shm_place(name),
            pattern(name)
        ),
        // One of several names: the others were (or will be) removed.
        (CoreError::NotFound { name, .. }, "remove-one-of-many") => format!(
            "no channel named '{name}'{} (--force ignores names that do not exist){}",
            shm_place(name),
            pattern(name)
        ),
        (CoreError::NotFound { name, .. }, _) => not_found(named(name), 0),
        (
            CoreError::Contended {
                name, what, waited, ..
            },
            "out",
        ) => {
            // A holder that cannot be judged: the library's way out in this command line's
            // words. (Still "retry later": such a holder may be a live writer mid-publish.)
            const FREES: &str = "`mmf recover` of the channel (`host::free_orphans` in Rust)";
            let recover = format!("`{}`", command("recover", named(name), ""));
            format!(
                "channel '{name}' stayed busy for {} ms ({}); nothing was published, and the \
                 channel keeps its value; retry later, or wait longer with --lock-timeout",
                waited.as_millis(),
                what.replace(FREES, &recover),
            )
        }
        (CoreError::TooLarge { len, capacity, .. }, "out") => format!(
            "value of {len} bytes does not fit the channel's capacity of {capacity} bytes; \
             nothing was published (`{}` makes a larger channel, dropping the current value)",
            command(
                "new",
                arg.unwrap_or(OsStr::new("NAME")),
                "--size SIZE --force"
            )
        ),
        // The library's advice in the command's own words (its options, not `Options`').
        (
            CoreError::NoSpace { .. }
            | CoreError::MemoryLimit { .. }
            | CoreError::FileSizeLimit { .. },
            _,
        ) => c.to_string().replace(
            "give it a smaller size or fewer readers",
            "give it a smaller --size or fewer --readers",
        ),
        (CoreError::AlreadyExists { name, .. }, "new") => already_exists(name),
        // A process holds it: a creation under way, most likely (a large channel takes about a
        // second a GiB to allocate), which the review found called dead, with advice to delete
        // the file its creator was still making.
        (CoreError::NotInitialized { name, .. }, _)
            if mmf::Location::parse_os(&named(name))
                .and_then(|location| mmf::channel::host::in_use(&location))
                .unwrap_or(false) =>
        {
            format!(
                "channel '{name}' is still being created: a process holds its file, which is not \
                 initialised yet (a large channel takes about a second a GiB to allocate); retry \
                 once it is made (`{}` waits for it)",
                command("read", named(name), "--wait")
            )
        }
        (CoreError::NotInitialized { name, .. }, _) => format!(
            "channel '{name}' is not initialised: its creator may still be starting, or died \
             while creating it; retry, and if it stays so, {}",
            clear_unfinished(named(name))
        ),
        // Only the current value damaged (a machine crash before the file was written back, a
        // checksum that does not match): `recover` or any publish mends it, and replacing the
        // channel would throw away every value it still holds. The library's own advice names
        // both, for any caller; after a `recover` that found nothing whole, only a publish.
        (CoreError::Corrupt { name, what, .. }, "recover") if c.mended_by_publish() => format!(
            "channel '{name}' is damaged: {what} (here: `{}`)",
            out_command(named(name))
        ),
        (CoreError::Corrupt { name, what, .. }, _) if c.mended_by_publish() => format!(
            "channel '{name}' is damaged: {what} (here: `{}`, or `{}`)",
            command("recover", named(name), ""),
            out_command(named(name))
        ),
        (CoreError::Corrupt { name, what, .. }, _) => format!(
            "channel '{name}' is corrupt: {what}; `{}` replaces it",
            command("new", named(name), "--size SIZE --force")
        ),
        (
            CoreError::Truncated {
                name,
                shrunk: false,
                ..
            },
            _,
        ) => format!(
            "channel '{name}' could not be accessed: a page of its file faulted though the file \
             was as long as the mapping at the first look after it: the file system could not \
             supply the page (no room for it in a file that copies on write, on btrfs: one an \
             older mmf made, or one that shares pages with a reflink copy or a snapshot; or for \
             a page punched out of the file; or an I/O error), or another process shrank the \
             file and wrote it again (`cp` over it does); make room on the file system that \
             holds it and run the command again"
        ),
        (CoreError::Truncated { name, .. }, _) => format!(
            "channel '{name}' was truncated while mapped (another process shrank its file); run \
             the command again, and if the channel is damaged, `{}` re-creates it",
            command("new", named(name), "--size SIZE --force")
        ),
        (CoreError::UnsupportedVersion { name, .. }, _) => format!(
            // The library's line says which mmf reads it (older or newer); the way out here.
            "{c}, and `{}` re-creates it in this layout, without its value",
            command("new", named(name), "--size SIZE --force")
        ),
        _ => return None,
    })
}

/// The command line `mmf VERB NAME FLAGS`, quoted for the shell; a name that starts with '-'
/// goes after `--`, where it cannot be taken for a flag (`mmf new --size 1KiB -- -y`).
pub fn command(verb: &str, name: impl AsRef<OsStr>, flags: &str) -> String {
    let name = shell_word(name);
    match (name.starts_with('-'), flags.is_empty()) {
        (true, true) => format!("mmf {verb} -- {name}"),
        (true, false) => format!("mmf {verb} {flags} -- {name}"),
        (false, true) => format!("mmf {verb} {name}"),
        (false, false) => format!("mmf {verb} {name} {flags}"),
    }
}

/// The command line that publishes a value to `name`, quoted for the shell: `mmf out NAME
/// VALUE`, or `mmf out -- -NAME VALUE` (after `--` both are positional, the name first).
pub fn out_command(name: impl AsRef<OsStr>) -> String {
    let name = shell_word(name);
    if name.starts_with('-') {
        format!("mmf out -- {name} VALUE")
    } else {
        format!("mmf out {name} VALUE")
    }
}

/// For a file path (`name` has a '/'), its directory if that does not exist.
pub fn missing_dir(name: impl AsRef<OsStr>) -> Option<std::path::PathBuf> {
    let name = name.as_ref();
    let dir = std::path::Path::new(name).parent()?;
    (name.as_encoded_bytes().contains(&b'/') && !dir.as_os_str().is_empty() && !dir.exists())
        .then(|| dir.to_owned())
}

/// `word` as one shell word: as it is if it needs no quoting, else in single quotes; a word
/// that is not UTF-8 (a file path's bytes) in bash's and zsh's `$'...'`, its other bytes
/// escaped as `\xHH`.
pub fn shell_word(word: impl AsRef<OsStr>) -> String {
    let word = word.as_ref();
    let Some(word) = word.to_str() else {
        let mut quoted = String::from("$'");
        for &b in word.as_encoded_bytes() {
            match b {
                b'\'' | b'\\' => {
                    quoted.push('\\');
                    quoted.push(b as char);
                }
                0x20..=0x7e => quoted.push(b as char),
                _ => quoted.push_str(&format!("\\x{b:02x}")),
            }
        }
        quoted.push('\'');
        return quoted;
    };
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Whether the error is a write to a closed pipe: an `io::Error` in the chain, or one that the
/// libraries keep in a field (their messages hold its text, so it is no `source`).
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        let io = e
            .downcast_ref::<std::io::Error>()
            .or_else(|| match e.downcast_ref::<CodecError>() {
                Some(CodecError::Write(io)) => Some(io),
                Some(CodecError::Channel(c)) => c.os_error(),
                _ => None,
            })
            .or_else(|| e.downcast_ref::<CoreError>().and_then(CoreError::os_error));
        io.is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// An error that carries its own exit code (for conditions the library has no error for).
#[derive(Debug)]
pub struct Coded(pub u8, pub String);

impl std::fmt::Display for Coded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

impl std::error::Error for Coded {}

/// Text, given or stored, that is not UTF-8 (exit code [`INVALID_INPUT`]).
#[derive(Debug)]
pub struct NotUtf8(pub std::str::Utf8Error);

impl std::fmt::Display for NotUtf8 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "value is not valid UTF-8: {}", self.0)
    }
}

impl std::error::Error for NotUtf8 {}

/// `bytes` as text, or [`NotUtf8`].
pub fn utf8(bytes: &[u8]) -> Result<&str, NotUtf8> {
    std::str::from_utf8(bytes).map_err(NotUtf8)
}

/// Whether `--quiet` was given: [`note`] then prints nothing.
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Takes `--quiet` (once, from `main`).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, std::sync::atomic::Ordering::Relaxed);
}

/// Prints `mmf: ` and `what` on standard error, unless `--quiet`: what a command says about
/// waiting, following or replacing, which scripts may not want, and never an error.
pub fn note(what: std::fmt::Arguments) {
    if !QUIET.load(std::sync::atomic::Ordering::Relaxed) {
        say(what);
    }
}

/// Prints the line `mmf: ` `what` on standard error in one `write`, ignoring a failed one
/// (`eprintln!` panics there). Standard error is unbuffered: `writeln!` wrote the prefix, each
/// piece of the text and the newline apart, and the lines of processes that share a log
/// (`xargs -P`, jobs in the background) came out mixed up (a review's finding).
pub fn say(what: std::fmt::Arguments) {
    use std::io::Write;
    let line = format!("mmf: {what}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::{edit_distance, in_cli_terms, size_for};

    /// Each of the library's API names that its messages hold is put in command-line terms.
    #[test]
    fn library_api_names_are_said_as_commands() {
        let said = in_cli_terms(
            "`mmf recover` (`Channel::recover`) publishes it; it (`Channel::recover`, `mmf \
             recover NAME`) does; `mmf recover` of the channel (`host::free_orphans` in Rust); \
             `Channel::remove` (`mmf remove NAME`) deletes the link; can be read (opened \
             read-only: `Options::read_only`, `mmf read`)"
                .to_owned(),
            Some(std::ffi::OsStr::new("-odd")),
        );
        assert!(!said.contains("::"), "{said}");
        assert!(said.contains("`mmf remove -- -odd` deletes"), "{said}");
        assert!(said.contains("it (`mmf recover -- -odd`) does"), "{said}");
    }

    #[test]
    fn edit_distances() {
        for (a, b, d) in [
            ("Test", "Test", 0),
            ("Test", "Tset", 1),
            ("Test", "Tests", 1),
            ("Test", "test", 1),
            ("Test", "Best", 1),
            ("Test", "", 4),
            ("run42.result", "run24.result", 1),
            ("abc", "cba", 2),
        ] {
            assert_eq!(edit_distance(a, b), d, "{a} {b}");
            assert_eq!(edit_distance(b, a), d, "{b} {a}");
        }
    }

    #[test]
    fn a_suggested_size_holds_the_value() {
        let cases = [
            (0, "1KiB"),
            (1024, "1KiB"),
            (1025, "2KiB"),
            (5000, "8KiB"),
            (3 << 20, "4MiB"),
            (1 << 30, "1GiB"),
            ((3 << 30) + 1, "4GiB"),
            (usize::MAX, "SIZE"),
        ];
        for (len, size) in cases {
            assert_eq!(size_for(len), size, "{len}");
        }
    }
}
