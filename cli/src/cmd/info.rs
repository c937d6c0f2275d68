//! `mmf info NAME`: the header and the current value's metadata.

use mmf::channel::Error;
use mmf::{Location, LockOwner, Options, OwnerState};
use serde_json::json;

use crate::args::InfoArgs;
use crate::size::format_size;
use crate::time::rfc3339;

/// The largest value `info` reads to check its checksum: a read copies the whole value, so a
/// larger one would take `info` seconds and as much memory (`mmf read` checks any size).
const CHECK_UP_TO: usize = 64 << 20;

pub fn run(a: InfoArgs) -> anyhow::Result<()> {
    let location = Location::parse_os(&a.name)?;
    // Read-only: read permission is enough to inspect a channel.
    let channel = Options::new().read_only(true).open(&location)?;
    let mut info = channel.info();
    // Whether this look read the value and so checked its checksum (see `record`).
    let mut checked = false;
    if info.checksum && info.damage.is_none() && info.generation > 0 {
        // The header shows nothing of a payload that no longer matches its checksum: only a
        // read checks it, and a read copies the value. A value that reads whole, one that
        // writers replaced meanwhile (whose damage would not be the one described here), or a
        // read that writers kept overtaking leaves the header's account as it is. (A larger
        // value published in between is copied all the same: at most the channel's capacity.)
        if info.len <= CHECK_UP_TO {
            match channel.read_into(&mut Vec::new()) {
                Ok(meta) => checked = meta.generation == info.generation,
                Err(Error::Corrupt { what, .. }) if channel.generation() == info.generation => {
                    info.damage = Some(what);
                    checked = true;
                }
                Err(_) => {}
            }
        }
    }
    let (kind, path) = kind_and_path(&info);
    if a.json {
        return super::print_json(&record(&location.to_string(), &info, checked), false);
    }
    // A name or path with a newline or a control character in it, quoted, as `list` shows it:
    // printed raw it broke the record's lines (a review).
    let name = super::shown(&location.to_string());
    let path = super::shown(&path.to_string());
    let kind = match kind {
        // A file in memory (a tmpfs /tmp) is gone at reboot like shared memory.
        "file" if in_memory(&info) == Some(true) => {
            format!("file, in memory: gone at reboot ({path})")
        }
        "file" => format!("file, persisted ({path})"),
        _ => format!("shared memory ({path})"),
    };
    let value = if let Some(why) = &info.damage {
        format!("unknown: {why}")
    } else if info.generation == 0 {
        "none yet".to_owned()
    } else {
        format!("{}, {}", info.tag, format_size(info.len as u64))
    };
    let writer = match (info.last_writer_pid, info.last_writer_state) {
        (Some(p), Some(state)) => format!("pid {p} ({})", process_state(state)),
        (Some(p), None) => format!("pid {p}"),
        (None, _) => "none yet".to_owned(),
    };
    let alive = process_state(info.creator_state);
    let entries = if info.readers == 1 {
        "entry"
    } else {
        "entries"
    };
    let pins = match (info.readers, info.pins_in_use) {
        (0, _) => "no reader-pin entries: readers read by validation alone".to_owned(),
        (all, held) if held >= all => {
            format!("{all} reader-pin {entries}, all in use: a further reader's waits poll")
        }
        (all, held) => format!("{all} reader-pin {entries}, {held} in use"),
    };
    let text = format!(
        "name:        {name}\n\
         kind:        {kind}\n\
         capacity:    {}\n\
         size:        {}\n\
         slots:       {} ({pins})\n\
         generation:  {}\n\
         value:       {value}\n\
         last writer: {writer}\n\
         created:     {} by pid {} ({alive})\n\
         incarnation: {:016x}\n\
         checksum:    {}\n\
         recoveries:  {}\n\
         writer lock: {}\n\
         exclusive:   {}\n\
         waiting:     {}\n\
         file:        {}\n",
        format_size(info.capacity as u64),
        format_size(info.size_bytes),
        info.slots,
        info.generation,
        rfc3339(info.created),
        info.creator_pid,
        info.incarnation,
        match (info.checksum, checksum_checked(&info, checked)) {
            (true, Some(false)) => {
                "crc32 on every value (the current one not checked here: over 64 MiB, or \
                 replaced while info read it)"
            }
            (true, _) => "crc32 on every value",
            (false, _) => "off",
        },
        info.writer_recoveries,
        lock_line(info.writer_lock, &location),
        claim_line(info.exclusive_writer, &location),
        info.waiters,
        file_line(info.file),
    );
    super::print_bytes(text.as_bytes())
}

/// The file's owner and mode, and a warning where it is not the caller's: in `/dev/shm` any
/// user may make a channel under a name before the service that means to (a security review:
/// root's `new --exist-ok` and `open_or_create` kept such a channel without a word).
fn file_line(file: Option<mmf::FileOwner>) -> String {
    let Some(f) = file else {
        return "unknown (its status could not be read)".to_owned();
    };
    let mut line = format!(
        "owner uid {}, group gid {}, mode {:04o}",
        f.uid, f.gid, f.mode
    );
    if f.links > 1 {
        line.push_str(&format!(", {} names lead to it", f.links));
    }
    line.push_str(if f.yours {
        " (yours)"
    } else {
        " (not yours: its owner can write and truncate it, as can whoever its mode lets write)"
    });
    line
}

/// A channel's JSON record, as `info --json` prints it and `list --json` prints it for each
/// channel (with `in_use` and `stale` added): the same fields, under the same names. `damage`
/// is what the header shows, except that `info` also reads a checksummed value (up to
/// [`CHECK_UP_TO`]) to check it: `list` reads no values. `checksum_checked` says whether this
/// command did (`checked`); it is null where there is nothing to check (no checksums, no value,
/// or damage the header shows already).
pub(super) fn record(name: &str, info: &mmf::Info, checked: bool) -> serde_json::Value {
    let (kind, path) = kind_and_path(info);
    json!({
        "name": name,
        "kind": kind,
        "path": path,
        // Whether its file system keeps it in memory (gone at reboot); null if unknown.
        "in_memory": in_memory(info),
        "capacity": info.capacity,
        "size": info.size_bytes,
        "readers": info.readers,
        "pins_in_use": info.pins_in_use,
        "slots": info.slots,
        "generation": info.generation,
        // Unknown, not "empty", when the value is damaged: `damage` says why.
        "codec": info.damage.is_none().then(|| info.tag.to_string()),
        "tag": info.damage.is_none().then_some(info.tag.0),
        "len": info.damage.is_none().then_some(info.len),
        "damage": info.damage,
        "checksum_checked": checksum_checked(info, checked),
        "last_writer_pid": info.last_writer_pid,
        "creator_pid": info.creator_pid,
        // null: a process of another PID namespace, whose pid cannot be judged here.
        "creator_alive": alive_or_null(info.creator_state),
        "last_writer_alive": info.last_writer_state.and_then(alive_or_null),
        "created": rfc3339(info.created),
        // What `prune --older-than` judges a channel's age by (the file's modification time:
        // created, or last written or read by `mmf out` and `mmf read`); null if unreadable.
        "touched": mmf::channel::host::last_touched(&info.location).ok().map(rfc3339),
        "incarnation": format!("{:016x}", info.incarnation),
        "checksum": info.checksum,
        "writer_recoveries": info.writer_recoveries,
        "waiters": info.waiters,
        // The file's owner, group, mode (as an octal string) and names; null if none.
        "file": info.file.map(|f| json!({
            "uid": f.uid,
            "gid": f.gid,
            "mode": format!("{:04o}", f.mode),
            "links": f.links,
            "yours": f.yours,
        })),
        "writer_lock": info.writer_lock.map(owner_record),
        // The handle that claimed the writer role (`out --exclusive`), null if none.
        "exclusive_writer": info.exclusive_writer.map(owner_record),
    })
}

/// The holder of the writer lock or of the writer role, as JSON: its pid, and whether it is
/// alive (with why, where that cannot be told).
fn owner_record(l: LockOwner) -> serde_json::Value {
    let (state, why) = match l.state {
        OwnerState::Alive => ("alive", None),
        OwnerState::Dead => ("dead", None),
        OwnerState::Unknown(why) => ("unknown", Some(why)),
        // Non-exhaustive: a state a later mmf_core tells.
        _ => ("unknown", None),
    };
    json!({ "pid": l.pid, "state": state, "why": why })
}

/// Whether this command checked the current value's checksum (`checked`: it read the value, as
/// `info` does up to [`CHECK_UP_TO`]); `None` where there is nothing to check: no checksums, no
/// value, or damage the header shows already.
fn checksum_checked(info: &mmf::Info, checked: bool) -> Option<bool> {
    let checkable = info.checksum && info.generation > 0;
    (checkable && (checked || info.damage.is_none())).then_some(checked)
}

/// "file" or "shm", and the path of the channel's file: absolute (a relative path as typed
/// means nothing to a program that reads the JSON in another directory), the name keeps how it
/// was typed.
/// Absolute, for a consumer in another working directory: a file channel's path, and a
/// shared-memory one's under a relative `MMF_SHM_DIR`.
fn kind_and_path(info: &mmf::Info) -> (&'static str, String) {
    let absolute =
        |p: std::path::PathBuf| std::path::absolute(&p).unwrap_or(p).display().to_string();
    match &info.location {
        Location::File(p) => ("file", absolute(p.clone())),
        other => ("shm", other.path().map(absolute).unwrap_or_default()),
    }
}

/// Whether the channel's file system keeps its files in memory (tmpfs), so that it is gone at
/// reboot; `None` where that cannot be told. The file's own directory, through any link to it
/// (a link on a disk to a file in `/dev/shm` is in memory).
fn in_memory(info: &mmf::Info) -> Option<bool> {
    let path = info.location.path()?;
    let path = std::fs::canonicalize(&path).unwrap_or(path);
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => std::path::Path::new("."),
    };
    mmf::channel::host::space(dir).ok()?.in_memory
}

/// Whether the creator or the last writer still runs, in words (`mmf info`, `mmf list`).
pub(super) fn process_state(state: OwnerState) -> &'static str {
    match state {
        OwnerState::Alive => "running",
        OwnerState::Dead => "exited",
        _ => "in another PID namespace",
    }
}

/// [`process_state`] for JSON: `null` where it cannot be told.
fn alive_or_null(state: OwnerState) -> Option<bool> {
    match state {
        OwnerState::Alive => Some(true),
        OwnerState::Dead => Some(false),
        _ => None,
    }
}

/// The `writer lock:` line: free, or who holds it and whether it is alive.
/// The `exclusive:` line: who holds the writer role (`out --exclusive`), if anyone.
fn claim_line(claim: Option<LockOwner>, location: &Location) -> String {
    let Some(c) = claim else {
        return "none (any writer may publish)".to_owned();
    };
    match c.state {
        OwnerState::Alive => format!("pid {} (running: only it may publish)", c.pid),
        OwnerState::Dead => format!(
            "pid {} (exited; the next publish or claim clears it)",
            c.pid
        ),
        OwnerState::Unknown(why) => format!(
            "pid {} (may be alive: {why}; others' publishes are refused; once no process has \
             the channel open, `{}` frees it)",
            c.pid,
            crate::exit::command("recover", super::typed(location), "")
        ),
        _ => format!("pid {}", c.pid),
    }
}

fn lock_line(lock: Option<LockOwner>, location: &Location) -> String {
    let Some(l) = lock else {
        return "free".to_owned();
    };
    match l.state {
        OwnerState::Alive => format!("held by pid {} (alive, publishing)", l.pid),
        OwnerState::Dead => format!(
            "held by pid {} (exited mid-publish; the next writer takes it over)",
            l.pid
        ),
        OwnerState::Unknown(why) => format!(
            "held by pid {} (may be alive: {why}; once no process has the channel open, `{}` \
             frees it)",
            l.pid,
            crate::exit::command("recover", super::typed(location), "")
        ),
        _ => format!("held by pid {}", l.pid),
    }
}
