//! One module per verb; `run` dispatches.

mod completions;
mod doctor;
mod info;
mod list;
mod new;
mod out;
mod prune;
mod read;
mod recover;
mod remove;
mod watch;

use std::io::Write;

use anyhow::Context;

use crate::args::{Cli, Command};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::New(a) => new::run(a),
        Command::Info(a) => info::run(a),
        Command::Out(a) => out::run(a),
        Command::Read(a) => read::run(a),
        Command::Watch(a) => watch::run(a),
        Command::List(a) => list::run(a),
        Command::Remove(a) => remove::run(a),
        Command::Completions(a) => completions::run(a),
        Command::Prune(a) => prune::run(a),
        Command::Doctor(a) => doctor::run(a),
        Command::Recover(a) => recover::run(a),
    }
}

/// Standard output that waits for room where the program that shares it left it non-blocking
/// (`O_NONBLOCK` is the open file's, set for all its users: a Node.js parent sets it on the
/// pipes it makes): a write then fails with `EAGAIN` once the pipe is full, and `mmf read` of
/// a large value ended with exit 1 after 64 KiB, as `watch` did at its reader's first lag (a
/// review's finding). `out` waits so for its standard input.
struct Stdout(std::io::StdoutLock<'static>);

impl Stdout {
    fn lock() -> Stdout {
        Stdout(std::io::stdout().lock())
    }

    /// Waits until standard output can be written (or fails): see `ready_for`.
    fn wait() -> bool {
        ready_for(&std::io::stdout(), rustix::event::PollFlags::OUT)
    }
}

/// Waits until `fd` is ready for `flags` (`IN`: readable, or at its end; `OUT`: writable), or
/// fails; `false` where poll(2) says it cannot wait on it (an error other than a signal's, or
/// `POLLNVAL`), so that an I/O call which keeps saying `EAGAIN` is not tried for ever at full
/// speed.
fn ready_for(fd: &impl std::os::fd::AsFd, flags: rustix::event::PollFlags) -> bool {
    use rustix::event::{poll, PollFd, PollFlags};
    let mut fds = [PollFd::new(fd, flags)];
    match poll(&mut fds, None) {
        Err(rustix::io::Errno::INTR) => true,
        Err(_) => false,
        Ok(_) => !fds[0].revents().contains(PollFlags::NVAL),
    }
}

impl Write for Stdout {
    // A write that fails has written nothing (`Write::write`'s contract, kept by the buffered
    // writer inside the lock), so it is tried again as it was.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        loop {
            match self.0.write(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Self::wait() => {}
                done => return done,
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        loop {
            match self.0.flush() {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Self::wait() => {}
                done => return done,
            }
        }
    }
}

/// Writes `bytes` to standard output and flushes (a closed pipe surfaces as `BrokenPipe`).
fn print_bytes(bytes: &[u8]) -> anyhow::Result<()> {
    crate::interrupt::writing(|| {
        let mut out = Stdout::lock();
        out.write_all(bytes)?;
        out.flush()
    })
    .context(WRITING_STDOUT)
}

/// The context of a failed write of our output (a full disk, `> /dev/full`): the OS error
/// alone ("No space left on device") does not say which file.
const WRITING_STDOUT: &str = "writing standard output";

/// Prints a JSON value on one line, or indented.
fn print_json(v: &serde_json::Value, pretty: bool) -> anyhow::Result<()> {
    let mut text = if pretty {
        serde_json::to_string_pretty(v)?
    } else {
        serde_json::to_string(v)?
    };
    text.push('\n');
    print_bytes(text.as_bytes())
}

/// A file name from the shared-memory directory, as it may be printed: quoted and escaped if it
/// holds a control character, a line or paragraph separator, or an invisible or bidirectional
/// formatting character, or starts or ends with a space or starts with `"`. Anyone can create a
/// file there; its name must not break a table or a line, drive the terminal, or disguise
/// itself as another name. Every other name is printed as it is, `"` and `\` within it too, so
/// that a script can give it back to mmf (`mmf prune --dry-run | while read -r n; ...`).
pub(super) fn shown(name: &str) -> String {
    // Whatever Rust's debug escaping of a character would escape (controls, separators,
    // invisible and bidirectional formatting characters, combining marks) but `'`, `"` and
    // `\`; a quoted form starts with `"`, which no name printed as it is does.
    let plain = |c: char| matches!(c, '\'' | '"' | '\\') || c.escape_debug().count() == 1;
    // A space at either end would vanish in a table column or at the end of a line.
    let padded = name.starts_with(' ') || name.ends_with(' ');
    // An empty name (a file `mmf.` alone) as `""`: a blank would look like no name at all.
    if name.chars().all(plain) && !padded && !name.starts_with('"') && !name.is_empty() {
        name.to_owned()
    } else {
        format!("{name:?}")
    }
}

/// How long `mmf prune` leaves a stale channel alone by default (its `--older-than`): `list` and
/// `doctor` call a channel stale only past it, as prune would.
pub(super) const PRUNE_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// Whether the shared-memory channel of listing `l` is abandoned and this user's (root:
/// anyone's): readable, no live handle in any process, creator and last writer gone
/// ([`Listing::is_stale`](mmf::Listing::is_stale)). What `mmf prune` removes once it is old
/// enough; another user's channel is theirs to prune.
pub(super) fn abandoned(l: &mmf::Listing) -> bool {
    l.is_stale() && is_own_shm(&l.name)
}

/// Whether a layout version `found` that this build does not read is another mmf's layout
/// (older or newer), not a damaged word: layout versions count up from 1, one a layout
/// change, so 0 and anything past 65535 no mmf makes (as the library's message says).
pub(super) fn other_layout(found: u64) -> bool {
    (1..=u64::from(u16::MAX)).contains(&found)
}

/// Whether the shared-memory channel `name` is this user's (so that `remove` and
/// `new --force` of it may work from the sticky /dev/shm).
pub(super) fn is_own_shm(name: &str) -> bool {
    mmf::Location::shm(name).is_ok_and(|loc| mmf::channel::host::is_own(&loc))
}

/// Whether `mmf prune` (with its default `--older-than`) would remove it: [`abandoned`] and
/// untouched for [`PRUNE_AFTER`]. `list` and `doctor` call exactly these stale.
pub(super) fn prunable(l: &mmf::Listing) -> bool {
    abandoned(l) && untouched_for(&l.name) >= PRUNE_AFTER
}

/// Whether listing `l` is a file that a `new` killed before its channel was ready left, which
/// `mmf prune` (with its default `--older-than`) would remove: not initialised, this user's,
/// held by no process, unchanged for [`PRUNE_AFTER`] ([`host::is_unfinished`]).
///
/// [`host::is_unfinished`]: mmf::channel::host::is_unfinished
pub(super) fn unfinished(l: &mmf::Listing) -> bool {
    matches!(l.info, Err(mmf::channel::Error::NotInitialized { .. }))
        && mmf::Location::shm(&l.name)
            .is_ok_and(|loc| mmf::channel::host::is_unfinished(&loc, PRUNE_AFTER))
}

/// How long ago the shared-memory channel `name` was created, or last written with `mmf out` or
/// read with `mmf read` (zero if that cannot be told).
pub(super) fn untouched_for(name: &str) -> std::time::Duration {
    mmf::Location::shm(name)
        .ok()
        .and_then(|loc| mmf::channel::host::last_touched(&loc).ok())
        .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
        .unwrap_or_default()
}

/// For a wait's timeout message: the followed channel's current value, if it is damaged, which
/// no wait reports (a `latest` a stray write zeroed, or moved back, reads as "nothing newer",
/// though a read of it fails: a review's `read --wait` and `watch` said only "no value came").
pub(super) fn damaged(ch: &mmf::Channel) -> Option<String> {
    let location = ch.location();
    // Not of a channel no longer under the name (removed while the wait went on): its repair
    // commands would name nothing, or another channel.
    if !ch.is_current().unwrap_or(false) {
        return None;
    }
    ch.info().damage.map(|what| {
        format!(
            " (its current value is damaged: {what}; here: `{}`, or `{}`)",
            crate::exit::command("recover", typed(location), ""),
            crate::exit::out_command(typed(location))
        )
    })
}

/// Whether `path` is a shared-memory channel's file: `mmf.NAME` in the shared-memory directory
/// (`MMF_SHM_DIR`, else `/dev/shm`), however the path reaches it. Judged by where it leads: a
/// link there to a file on disk is that file, whose times a read leaves alone (the diff
/// review's finding).
pub(crate) fn is_shm_file(path: &std::path::Path) -> bool {
    let Ok(real) = path.canonicalize() else {
        return false;
    };
    let named = real
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(mmf::channel::SHM_PREFIX));
    named
        && real.parent().map(std::path::Path::to_path_buf)
            == mmf::channel::host::shm_dir().canonicalize().ok()
}

/// The channel's argument as it was typed, `location` read back: a file path's bytes as they
/// are (not UTF-8, maybe), for commands in messages that run as printed.
pub(crate) fn typed(location: &mmf::Location) -> std::ffi::OsString {
    match location {
        mmf::Location::File(path) => path.clone().into_os_string(),
        other => other.to_string().into(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_that_could_disguise_themselves_are_quoted() {
        for plain in [
            "prod",
            "a b",
            "dé-jà_vu.1",
            "it's",
            "日本",
            r"a\b",
            r#"q"x"#,
            r#"x"""#,
        ] {
            assert_eq!(super::shown(plain), plain);
        }
        for (name, shown) in [
            ("evil\n\u{1b}[2J", r#""evil\n\u{1b}[2J""#),
            ("pro\u{2060}d", r#""pro\u{2060}d""#),
            ("abc\u{202e}txt", r#""abc\u{202e}txt""#),
            ("x\u{ad}y", r#""x\u{ad}y""#),
            ("\u{feff}bom", r#""\u{feff}bom""#),
            // A plain name shaped like another's quoted form is quoted in turn.
            (r#""pro\u{2060}d""#, r#""\"pro\\u{2060}d\"""#),
            // No name at all (a file `mmf.`): not a blank.
            ("", r#""""#),
        ] {
            assert_eq!(super::shown(name), shown);
        }
    }
}
