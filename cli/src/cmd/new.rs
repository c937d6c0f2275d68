//! `mmf new NAME --size SIZE`: create a channel.

use std::os::unix::fs::PermissionsExt;

use mmf::{Channel, Location, Options};

use crate::args::NewArgs;
use crate::exit;

pub fn run(a: NewArgs) -> anyhow::Result<()> {
    let location = Location::parse_os(&a.name)?;
    // Ctrl-C, SIGTERM, SIGHUP (or another of `interrupt`'s signals) while a large channel is
    // allocated: killed by the signal's default action, `new` left an empty file that refused
    // every verb until deleted by hand (a review). With the handlers the creation finishes,
    // and the channel is then removed again (`made`): the command was cancelled, and the name
    // holds what it held before. Not for --force, whose rename has replaced the old channel by
    // then: killed in the middle, it keeps the old one (leaving its `.mmf-new-*` file, which
    // the next --force there or `mmf prune` removes).
    if !a.force {
        crate::interrupt::install();
    }
    let mut o = Options::new();
    // Armed so that a cancelled creation (`made`) removes its own channel by identity: only
    // the file it made, and only while the name still leads to it. Disarmed (`Channel::keep`)
    // once the creation stands.
    o.remove_on_drop(!a.force);
    o.capacity(a.size).checksum(a.checksum);
    // Without --readers or --mode, the library's defaults (4; 0600 less the umask).
    if let Some(readers) = a.readers {
        o.readers(readers);
    }
    if let Some(mode) = a.mode {
        o.mode(mode);
    }
    // What was under the name before, if anything.
    let before = location
        .path()
        .and_then(|p| std::fs::symlink_metadata(p).ok());
    let existing = if a.force {
        // Another process holds it (a handle, a wait): that one keeps the old channel.
        let held = mmf::channel::host::in_use(&location).unwrap_or(false);
        o.create_or_replace(&location).map(|ch| {
            written_back(&ch, &location);
            if a.mode.is_none() {
                note_what_was_not_kept(before.as_ref(), &ch);
            }
            if held {
                note_in_use(&ch);
            }
            None
        })
    } else if a.exist_ok {
        match o.open_or_create_with_origin(&location) {
            // A channel there that this user may not open read-write (another user's, mode
            // 0644; a read-only file system): the name is taken (exit 6), as plain `new` says
            // it, not exit 1 with "permission denied" (a review's finding).
            Err(ref e)
                if before.is_some()
                    && (matches!(e, mmf::channel::Error::PermissionDenied { .. })
                        || e.os_error().map(std::io::Error::kind)
                            == Some(std::io::ErrorKind::ReadOnlyFilesystem)) =>
            {
                return Err(name_taken(&location))
            }
            r => r.map(|(ch, origin)| {
                if origin == mmf::Origin::Created {
                    made(ch, &location);
                    return None;
                }
                Some(ch)
            }),
        }
    } else {
        match o.create(&location) {
            Err(
                mmf::channel::Error::AlreadyExists { .. }
                | mmf::channel::Error::NotInitialized { .. }
                | mmf::channel::Error::WrongMagic { .. }
                | mmf::channel::Error::NotAFile { .. },
            ) => return Err(name_taken(&location)),
            r => r.map(|ch| {
                made(ch, &location);
                None
            }),
        }
    }
    .map_err(|e| {
        let no_room = matches!(
            e,
            mmf::channel::Error::NoSpace { .. } | mmf::channel::Error::MemoryLimit { .. }
        );
        // (With nothing under the name before, there was no old channel to keep.)
        let what = if a.force && no_room && before.is_some() {
            // The replacement is made whole before the old channel goes: both take room.
            format!(
                "cannot replace channel '{location}': the old channel and its value are kept, \
                 and the new one needs room of its own beside them (`{}` then `{}` needs less)",
                exit::command("remove", &a.name, ""),
                exit::command("new", &a.name, "--size SIZE")
            )
        } else if a.exist_ok {
            format!("cannot create or open channel '{location}'")
        } else {
            format!("cannot create channel '{location}'")
        };
        anyhow::Error::new(e).context(what)
    })?;
    let Some(existing) = existing else {
        note_mode_refuses_owner(&location, a.mode.is_some());
        return Ok(());
    };
    // `--exist-ok` keeps a channel as it is. One that cannot do what the script asked for (too
    // small for the values it is about to publish, too few reader entries, no checksums, other
    // permission bits) would only fail or surprise later, so say it now and leave it untouched.
    let info = existing.info();
    let shortfalls = shortfalls(&info, &location, &a);
    if shortfalls.is_empty() && a.mode.is_none() {
        note_not_yours(&info, &location);
    }
    note_through_their_link(&location);
    if !shortfalls.is_empty() {
        return Err(exit::Coded(
            exit::EXISTS,
            format!(
                "channel '{location}' exists with {}; --force replaces it",
                shortfalls.join(", ")
            ),
        )
        .into());
    }
    Ok(())
}

/// A channel `new` made (without --force, so its handle removes it when dropped): written back
/// to the disk (`written_back`), then, if a signal came meanwhile (see `run`), removed again by
/// its drop, which removes only this handle's own file and only while the name leads to it
/// (the diff review of a first version, which removed whatever channel was under the name by
/// then: another process's `new --force` in between); not if a value was published into it
/// already, which another process found and used. Otherwise kept (`Channel::keep`).
fn made(mut ch: Channel, location: &Location) {
    written_back(&ch, location);
    if !crate::interrupt::requested() || ch.generation() != 0 {
        ch.keep();
    }
    let _ = ch.close();
}

/// A channel just made at a file path, written back to the disk with its directory entry: "a
/// NAME with / survives reboots" held only once the kernel wrote it back in its own time (a
/// review: a machine crash in the half minute after `new` left a file of zeros that every verb
/// refused). A refusal is a note: the channel is made, and its next `out --sync` tries again.
fn written_back(ch: &Channel, location: &Location) {
    if let Location::File(_) = location {
        if let Err(e) = ch.flush() {
            crate::exit::note(format_args!(
                "note: channel '{location}' is made, but writing it back to the disk failed \
                 ({e}); a machine crash before the kernel writes it back would lose it"
            ));
        }
    }
}

/// After a creation: a mode without the owner's read and write bits, from the umask (`umask
/// 0277`) or a `--mode` (`0400`, `0444`: `explicit`), made a channel its own creator cannot
/// publish to, found only at the first `mmf out`, which fails with "permission denied" (the
/// CLI review found `--mode 0400` said nothing). Root is refused by no mode.
fn note_mode_refuses_owner(location: &Location, explicit: bool) {
    use std::os::unix::fs::MetadataExt;
    if rustix::process::geteuid().is_root() {
        return;
    }
    let Some(meta) = location.path().and_then(|p| std::fs::metadata(p).ok()) else {
        return;
    };
    let mode = meta.mode() & 0o777;
    if mode & 0o600 != 0o600 {
        crate::exit::note(format_args!(
            "note: channel '{location}' has mode {mode:04o} ({}), which does not let its owner \
             read and write it: its owner cannot publish to it; `{}` makes one that does",
            if explicit {
                "--mode"
            } else {
                "0600 less the umask"
            },
            exit::command(
                "new",
                super::typed(location),
                &format!("--size SIZE --mode {:04o} --force", mode | 0o600)
            )
        ));
    }
}

/// After `--force` replaced a channel that a process held: that process keeps the old
/// channel's memory, so a writer's values no longer reach the name, without a word to anyone
/// (a driver restarted while its worker runs, two harnesses using the same names).
fn note_in_use(ch: &Channel) {
    crate::exit::note(format_args!(
        "note: the replaced '{}' was in use: a process holding it keeps the old channel, \
         so what a writer publishes there no longer reaches the name until it opens the name \
         again (`read --wait`, `watch` and a library Follower move to the new channel at once, \
         `out --lines` at its next line)",
        ch.location()
    ));
}

/// After `--force` (without `--mode`) replaced another user's channel: the library keeps the
/// old owner and mode only where nobody else could have planted the file (see
/// `Options::mode`), so say when it did not, or the service that used it is locked out
/// without a word.
fn note_what_was_not_kept(before: Option<&std::fs::Metadata>, ch: &Channel) {
    use std::os::unix::fs::MetadataExt;
    let (Some(before), Some(path)) = (before.filter(|m| m.is_file()), ch.location().path()) else {
        return;
    };
    let Ok(now) = std::fs::metadata(&path) else {
        return;
    };
    // (Kept, the mode gains read and write for the owner, which a channel needs.)
    if now.uid() == before.uid() && now.mode() & 0o777 == before.mode() & 0o777 | 0o600 {
        return;
    }
    // A file of the caller's own under more than one name: a hard link someone else may have
    // made there, to lend its mode to the new channel.
    let links = if before.nlink() > 1 {
        format!(", a file {} names led to,", before.nlink())
    } else {
        String::new()
    };
    crate::exit::note(format_args!(
        "note: the replaced '{}'{links} was owned by uid {} (mode {:04o}); the new channel is \
         yours (uid {}, mode {:04o}), since in a directory others may write the old file could \
         have been planted: `chown` it, or pass --mode, if its users need it",
        ch.location(),
        before.uid(),
        before.mode() & 0o777,
        now.uid(),
        now.mode() & 0o777
    ));
}

/// `create` finding the name taken (a channel, one being made, or something else), said as
/// what is there, looked at anew: the channel's `--force` / `--exist-ok` advice only for a
/// channel this user can open read-write; else what holds the name and how to clear it (exit
/// 6 where that is a channel, exit 1 where it is something else).
fn name_taken(location: &Location) -> anyhow::Error {
    use mmf::channel::Error as E;
    // The default init timeout, not none: a channel that another `new` is making this very
    // moment (several racing for one name) is given its 250 ms to finish, and told as the
    // channel it is, not as a half-made file to delete.
    let probe = Options::new().read_only(true).open(location);
    let name = exit::shell_word(super::typed(location));
    // This user's (root: anyone's): the only files it may remove from a sticky directory
    // such as /dev/shm, and the only ones `--exist-ok` replaces there.
    let own = mmf::channel::host::is_own(location);
    // Whether the file an open reaches (through a link: the link may be this user's, its
    // target another's) is this user's and its mode is what refuses its owner: not an
    // immutable file, say, which refuses root too, and root is never refused by a mode.
    let mode_refuses = |path: &std::path::Path| {
        use std::os::unix::fs::MetadataExt;
        let euid = rustix::process::geteuid();
        !euid.is_root()
            && std::fs::metadata(path)
                .is_ok_and(|m| m.uid() == euid.as_raw() && m.mode() & 0o600 != 0o600)
    };
    let clear = if location.is_persistent() {
        format!("delete the file (rm {name})")
    } else if !own {
        // Another user's, in a sticky directory such as /dev/shm: only its owner (or root)
        // may remove it.
        "its owner (or root) can remove it".to_owned()
    } else {
        // A shared-memory name is mmf's own: remove (and new --force) clear whatever is there.
        format!(
            "`{}` deletes it",
            exit::command("remove", super::typed(location), "")
        )
    };
    // This user's own file, whose mode does not let its owner read and write it.
    let chmod = |path: &std::path::Path| {
        format!(
            "a file of this user's whose mode does not let its owner read and write it; give \
             it back read and write (chmod u+rw {}) to use it, or {clear}",
            exit::shell_word(path)
        )
    };
    // Exit 6 ("exists") only where a channel holds the name; anything else in its place is
    // exit 1, as --force and --exist-ok say it: a script that takes 6 for "already there"
    // must not go on to publish into a plain file.
    let (code, taken) = match probe {
        // Readable, not writable (another user's, mode 0644): neither --force nor --exist-ok
        // (which opens it read-write, to publish) would do.
        Ok(_) => match Options::new().open(location) {
            Err(E::PermissionDenied { path, .. }) if mode_refuses(&path) => {
                (exit::EXISTS, chmod(&path))
            }
            Err(E::PermissionDenied { .. }) => (
                exit::EXISTS,
                "a channel this user may read but not write (another user's? an immutable \
                 file?); choose another name, or ask its owner"
                    .into(),
            ),
            Err(E::Io { ref cause, .. })
                if cause.kind() == std::io::ErrorKind::ReadOnlyFilesystem =>
            {
                (
                    exit::EXISTS,
                    "a channel on a read-only file system, where it can be neither written nor \
                     replaced; choose a channel elsewhere"
                        .into(),
                )
            }
            // A channel this user may use, with the --force / --exist-ok advice; also where
            // `create` found it still being made (the race of several `new`s for one name).
            _ => {
                return exit::Coded(
                    exit::EXISTS,
                    format!(
                        "cannot create channel '{location}': {}",
                        exit::already_exists(&location.to_string())
                    ),
                )
                .into()
            }
        },
        // A channel of another layout (an older mmf's, after an upgrade; or a newer one's): a
        // channel, as `new` on any other is (exit 6). It said "the name is taken by something
        // that cannot be opened as a channel", exit 1, with no advice (a review of the layout
        // 7 change). Only an older mmf's channel of this user's gets --force's advice: the
        // library's line tells a newer one's reader to use that mmf or upgrade, and --force
        // would throw its value away.
        Err(
            ref e @ E::UnsupportedVersion {
                found, supported, ..
            },
        ) if super::other_layout(found) => (
            exit::EXISTS,
            match own && found < supported {
                true => format!(
                    "a channel this mmf cannot open ({e}); --force replaces it with a channel \
                     of this layout, without its value, or {clear}"
                ),
                false => format!("a channel this mmf cannot open ({e})"),
            },
        ),
        // A version no mmf makes (0, or past 65535): a damaged header.
        Err(ref e @ E::UnsupportedVersion { .. }) => (
            exit::ERROR,
            format!("a file whose channel header is damaged ({e}); {clear}"),
        ),
        Err(ref e @ E::WrongMagic { .. }) => (
            exit::ERROR,
            format!(
                "a file that is not an mmf channel ({}); choose another name, or {clear}",
                e.file_start().unwrap_or_default()
            ),
        ),
        // Still being made after the probe's 250 ms (a large channel: its allocation takes
        // time), by a creator that holds it (a creator takes its lock before it allocates): a
        // channel, as the race of several `new`s for one name must be told.
        Err(E::NotInitialized { .. }) if mmf::channel::host::in_use(location).unwrap_or(false) => (
            exit::EXISTS,
            "a channel that another process is creating this moment; wait for it, then use \
                 it (--exist-ok), or replace it (--force)"
                .into(),
        ),
        Err(E::NotInitialized { .. }) => (
            exit::ERROR,
            format!(
                "a file without a channel header (empty, or its creator died while making it); \
                 if no process is creating it, {clear}{}",
                // (`--exist-ok` replaces a dead creator's file in shared memory only.)
                if location.is_persistent() || !own {
                    ""
                } else {
                    ", or the same `new` with --exist-ok replaces it"
                }
            ),
        ),
        Err(E::NotAFile { kind, .. }) => (
            exit::ERROR,
            format!("a {kind}, not an mmf channel; choose another name, or {clear}"),
        ),
        Err(E::PermissionDenied { path, .. }) if mode_refuses(&path) => {
            (exit::EXISTS, chmod(&path))
        }
        // Most likely another user's channel.
        Err(E::PermissionDenied { .. }) => (
            exit::EXISTS,
            "a channel or file this user may not open (another user's?); choose another name"
                .into(),
        ),
        // A path that is a link to nothing: creating (never through a link) finds it taken,
        // opening (through it) finds nothing.
        Err(E::NotFound { .. })
            if location
                .path()
                .and_then(|p| std::fs::symlink_metadata(p).ok())
                .is_some_and(|m| m.is_symlink()) =>
        {
            (
                exit::ERROR,
                format!(
                    "a symbolic link to a file that does not exist; delete the link (rm \
                     {name}), or --force replaces it with a channel"
                ),
            )
        }
        Err(other) => (
            exit::ERROR,
            format!("something that cannot be opened as a channel ({other})"),
        ),
    };
    exit::Coded(
        code,
        format!("cannot create channel '{location}': the name is taken by {taken}"),
    )
    .into()
}

/// How a channel that was there already falls short of what `a` asks for, one phrase each.
fn shortfalls(info: &mmf::Info, location: &Location, a: &NewArgs) -> Vec<String> {
    let mut out = Vec::new();
    if info.capacity < a.size {
        out.push(format!(
            "a capacity of {} bytes, less than the {} asked for",
            info.capacity, a.size
        ));
    }
    // Only what the command line gave is compared, like --mode below.
    if let Some(readers) = a.readers.filter(|&r| info.readers < r) {
        out.push(format!(
            "{} reader entries, fewer than the {readers} asked for",
            info.readers
        ));
    }
    if a.checksum && !info.checksum {
        out.push("no checksums, which --checksum asks for".to_string());
    }
    // Only an explicit --mode is compared: without it the script said nothing about access.
    if let (Some(mode), Some(path)) = (a.mode, location.path()) {
        if let Ok(meta) = std::fs::metadata(&path) {
            let have = meta.permissions().mode() & 0o7777;
            if have != mode {
                out.push(format!("mode {have:04o}, not the {mode:04o} asked for"));
            }
        }
        // A mode's bits are the owner's, the group's and others': the same bits on another
        // user's file give that user what they give the owner (a security review's root kept
        // a channel another user had made 0600 under the name, and published into it).
        if let Some(f) = info.file.filter(|f| !f.yours) {
            out.push(format!("another user as its owner (uid {})", f.uid));
        }
    }
    out
}

/// `--exist-ok` kept a channel it reached through another user's link in a sticky directory,
/// which a creation there would not follow: opens follow it, as the kernel lets them (an
/// earlier review chose that `--exist-ok` keeps such a channel), so say where it led (a
/// security review's root kept a channel in a directory only root may enter, without a word).
fn note_through_their_link(location: &Location) {
    let Some(link) = location
        .path()
        .and_then(mmf::channel::host::unfollowed_link)
    else {
        return;
    };
    crate::exit::note(format_args!(
        "note: channel '{location}' was reached through {}, another user's symbolic link in a \
         sticky directory: it leads where that user chose, which `new` would not follow to make \
         a channel",
        link.display()
    ));
}

/// `--exist-ok` (without `--mode`) kept another user's channel: in a directory anyone may
/// write, that user may have made it before this command's service did, and can write and
/// truncate it. Said, not refused: without `--mode` the script said nothing about access, and
/// a channel shared between users is made so on purpose.
fn note_not_yours(info: &mmf::Info, location: &Location) {
    let Some(f) = info.file.filter(|f| !f.yours) else {
        return;
    };
    crate::exit::note(format_args!(
        "note: channel '{location}' exists and is another user's (uid {}, mode {:04o}): that \
         user can write and truncate it; `--mode MODE` refuses it (exit 6), `--force` makes \
         one of your own",
        f.uid, f.mode
    ));
}
