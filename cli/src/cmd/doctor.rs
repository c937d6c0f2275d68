//! `mmf doctor`: what commonly breaks shared memory on this host.

use std::path::Path;

use mmf::channel::host;
use serde_json::json;

use crate::args::DoctorArgs;
use crate::exit::{Coded, ERROR};
use crate::size::format_size;

/// One finding.
struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

pub fn run(a: DoctorArgs) -> anyhow::Result<()> {
    let dir = host::shm_dir();
    let chosen = std::env::var_os("MMF_SHM_DIR").is_some_and(|d| !d.is_empty());
    let mut checks = vec![];
    match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {
            use std::os::unix::fs::PermissionsExt;
            let mode = m.permissions().mode() & 0o7777;
            let sticky_world = mode & 0o1777 == 0o1777;
            // A directory of one's own (MMF_SHM_DIR: this user's, writable by no one else) needs
            // no sticky bit: nobody else creates or deletes there. A shared one must be 1777.
            let own = chosen
                && mode & 0o022 == 0
                && mmf::channel::host::is_own(mmf::Location::File(dir.clone()));
            // Reached through another user's link in a sticky directory: `new`, `--force`,
            // `remove` and `prune` refuse it, and it leads wherever that user chose (a
            // security review's doctor called such a directory "of its own, fine").
            let link = mmf::channel::host::unfollowed_link(&dir);
            // A directory or link of another user's on the way (not a link in a sticky
            // directory, which the rule above refuses): followed, as any program follows it,
            // and it leads wherever that user chooses (a security review's nested case).
            let foreign = chosen
                .then(|| mmf::channel::host::foreign_component(&dir))
                .flatten();
            let advice = match (&link, &foreign, sticky_world, own) {
                (Some(link), _, _, _) => format!(
                    "; but MMF_SHM_DIR goes through {}, another user's symbolic link in a \
                     sticky directory others may write to: it leads where that user chose, and \
                     `new`, `remove` and `prune` refuse it; set MMF_SHM_DIR to the directory's \
                     own path",
                    link.display()
                ),
                (None, Some((at, uid)), _, _) => format!(
                    "; but MMF_SHM_DIR goes through {}, user {uid}'s: it leads wherever that \
                     user chooses; give MMF_SHM_DIR a path that only you (or root) control",
                    at.display()
                ),
                (None, None, true, _) => String::new(),
                (None, None, false, true) => " (MMF_SHM_DIR: a directory of its own, fine)".to_owned(),
                (None, None, false, false) if chosen => "; a directory others write to should be 1777 (world-writable, sticky) like /dev/shm, or one user can delete another's channels; point MMF_SHM_DIR at a directory of your own, or chmod 1777 it".to_owned(),
                (None, None, false, false) => "; /dev/shm should be 1777 (world-writable, sticky) or users cannot create channels safely".to_owned(),
            };
            checks.push(Check {
                name: "shm-dir",
                ok: (sticky_world || own) && link.is_none() && foreign.is_none(),
                detail: format!("{} has mode {mode:04o}{advice}", dir.display()),
            });
            // Whether this user can make a file there at all, as `new` must: the mode bits do
            // not tell (root passes them, a read-only mount or /proc refuses root too).
            // A name nobody can guess ahead (another user could make a file under a name of
            // pid alone, in /dev/shm anyone may write, and the probe would fail): the clock's
            // nanoseconds beside the pid, tried again if taken all the same.
            let made = (0..4)
                .map(|_| {
                    let nanos = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.subsec_nanos());
                    let probe = dir.join(format!(
                        ".mmf-doctor-probe-{}-{nanos:09}",
                        std::process::id()
                    ));
                    let made = std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&probe);
                    if made.is_ok() {
                        let _ = std::fs::remove_file(&probe);
                    }
                    made
                })
                .find(|made| {
                    !matches!(made, Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists)
                })
                .unwrap_or_else(|| Err(std::io::ErrorKind::AlreadyExists.into()));
            checks.push(Check {
                name: "shm-writable",
                ok: made.is_ok(),
                detail: match made {
                    Ok(_) => format!("this user can create files in {}", dir.display()),
                    Err(e) => format!(
                        "this user cannot create files in {} ({e}), so `mmf new` fails there; {}",
                        dir.display(),
                        if chosen {
                            "point MMF_SHM_DIR at a directory this user may write"
                        } else {
                            "mount a writable tmpfs there, or set MMF_SHM_DIR to a directory for \
                             channels"
                        }
                    ),
                },
            });
        }
        Ok(_) => checks.push(Check {
            name: "shm-dir",
            ok: false,
            detail: format!("{} is not a directory", dir.display()),
        }),
        Err(e) => checks.push(Check {
            name: "shm-dir",
            ok: false,
            detail: format!(
                "{}: {e}; {}",
                dir.display(),
                if chosen {
                    "MMF_SHM_DIR names it: create it, or point MMF_SHM_DIR at a directory that exists"
                } else {
                    "mount a tmpfs there or set MMF_SHM_DIR to a directory for channels"
                }
            ),
        }),
    }
    // Whether the directory keeps its files in memory, where that can be told.
    let mut in_memory = None;
    if let Ok(host::Space {
        total,
        available: avail,
        in_memory: held,
        ..
    }) = host::space(&dir)
    {
        in_memory = held;
        let small = total < 256 << 20;
        checks.push(Check {
            name: "shm-space",
            ok: !small,
            detail: format!(
                "{} total, {} free{}",
                format_size(total),
                format_size(avail),
                if small {
                    "; small (containers default to 64 MiB): channels larger than the free space fail at creation; raise it (docker --shm-size, or mount -o remount,size=1G /dev/shm)"
                } else {
                    ""
                }
            ),
        });
    }
    // Not a failure: containers have limits. Said, as a channel past it is refused; and where
    // none applies, said too, so that a reader of the report need not wonder whether it was
    // looked for (a review's).
    let limit = match (host::memory_limit(&dir), in_memory) {
        (Some(memory), _) => Some(format!(
            "channels here count against this process's memory cgroup ({}): a limit of {}, \
             about {} left; a channel larger than that is refused at creation (raise the \
             container's --memory for more)",
            memory.cgroup.display(),
            format_size(memory.limit),
            format_size(memory.room)
        )),
        // (`memory_limit` says nothing of a limit it cannot read: a cgroup outside the mount
        // this process sees, no cgroup file system. Said as found, not as none: the diff
        // review's.)
        (None, Some(true)) => Some(
            "no memory cgroup limit found for this process (none set, or none it can read): \
             the channels here are held in memory, bounded by shm-space"
                .to_owned(),
        ),
        (None, Some(false)) => Some(format!(
            "{} is on a disk, not in memory: channels there take disk space (shm-space), and \
             no memory limit applies to them",
            dir.display()
        )),
        // (Where it cannot be told: not Linux.)
        (None, None) => None,
    };
    if let Some(detail) = limit {
        checks.push(Check {
            name: "shm-memory-limit",
            ok: true,
            detail,
        });
    }
    let remove_ipc = remove_ipc(Path::new("/"));
    // logind removes the IPC objects of regular users only: uids above SYS_UID_MAX (999 by
    // default), so root and system users are not affected.
    let uid = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").map(|m| m.uid()).ok()
    };
    let system_user = uid.is_some_and(|u| u < 1000);
    checks.push(Check {
        name: "systemd-removeipc",
        ok: remove_ipc != Some(true) || system_user,
        detail: match remove_ipc {
            Some(true) if system_user => format!(
                "systemd-logind has RemoveIPC=yes, which spares system users: this one (uid {}) keeps its channels at logout; a regular user's would be deleted when their last session ends",
                uid.unwrap_or_default()
            ),
            Some(true) => "systemd-logind has RemoveIPC=yes (its default): when a login user's last session ends, their /dev/shm files (channels) are deleted; run services as system users or set RemoveIPC=no in /etc/systemd/logind.conf".into(),
            Some(false) => "systemd-logind has RemoveIPC=no: channels survive logouts".into(),
            None => "no systemd-logind running: channels are not removed at logout".into(),
        },
    });
    match mmf::list() {
        Ok(listings) => {
            // What `mmf prune` would remove (`prunable`). An abandoned channel of this user's
            // touched more recently (every channel used only from the command line is abandoned
            // between commands) is counted apart, not offered to prune; another user's is theirs.
            let stale: Vec<String> = listings
                .iter()
                .filter(|l| super::prunable(l))
                .map(|l| super::shown(&l.name))
                .collect();
            let recent: Vec<_> = listings
                .iter()
                .filter(|l| {
                    super::abandoned(l) && super::untouched_for(&l.name) < super::PRUNE_AFTER
                })
                .collect();
            // Another user's channel (mode 0600 by default) is not readable here, and that is
            // as it should be on a multi-user host: counted, not a warning.
            let (private, broken): (Vec<_>, Vec<_>) = listings
                .iter()
                .filter(|l| l.info.is_err())
                .partition(|l| matches!(l.info, Err(mmf::channel::Error::PermissionDenied { .. })));
            // Not initialised: being created this instant, or left by a `new` killed before its
            // channel was ready, which prune removes; not "unreadable" (a review found that
            // said of them).
            let (unready, broken): (Vec<_>, Vec<_>) = broken
                .into_iter()
                .partition(|l| matches!(l.info, Err(mmf::channel::Error::NotInitialized { .. })));
            // One a process holds is being created now (its creator holds it from the start),
            // and so may be one made within the minute (a creator locks it right after making
            // it; prune waits as long): said, not a warning (a review's `--strict` failed
            // during a normal `new`).
            let (making, unready): (Vec<_>, Vec<_>) = unready.into_iter().partition(|l| {
                l.in_use == Some(true)
                    || super::untouched_for(&l.name) < std::time::Duration::from_secs(60)
            });
            let broken: Vec<String> = broken.iter().map(|l| super::shown(&l.name)).collect();
            let unready: Vec<String> = unready.iter().map(|l| super::shown(&l.name)).collect();
            let making: Vec<String> = making.iter().map(|l| super::shown(&l.name)).collect();
            // A writer lock held by an owner that cannot be judged (of another PID namespace,
            // without a liveness lock, or behind another lock on the file) stays held if that
            // owner has exited: every publish then times out.
            let stuck: Vec<String> = listings
                .iter()
                .filter_map(|l| {
                    let lock = l.info.as_ref().ok()?.writer_lock?;
                    match lock.state {
                        mmf::OwnerState::Unknown(why) => Some(format!(
                            "{} (pid {}: {why})",
                            super::shown(&l.name),
                            lock.pid
                        )),
                        _ => None,
                    }
                })
                .collect();
            let locks = Check {
                name: "writer-locks",
                ok: stuck.is_empty(),
                detail: if stuck.is_empty() {
                    "no channel's writer lock is held by an owner whose liveness cannot be told"
                        .into()
                } else {
                    format!(
                        "held by owners that may be alive: {}; if they have exited, publishes time out until `mmf recover NAME` frees the lock, which it does once no process has the channel open",
                        stuck.join(", ")
                    )
                },
            };
            // What a `new --force` killed half-way left under a temporary name: memory that
            // nothing else lists.
            let unfinished = host::abandoned_replacements(super::PRUNE_AFTER).unwrap_or_default();
            checks.push(Check {
                name: "channels",
                ok: broken.is_empty() && unready.is_empty() && unfinished.is_empty(),
                detail: format!(
                    "{}, {} stale{}{}{}{}{}{}{}",
                    counted(listings.len(), "channel"),
                    stale.len(),
                    if stale.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " ({}: nobody maps them, their creator and last writer are gone, untouched for an hour; `mmf prune` removes them)",
                            stale.join(", ")
                        )
                    },
                    if recent.is_empty() {
                        String::new()
                    } else {
                        // "more" than the stale ones, where there are any ("2 channels, 0
                        // stale, 2 more unmapped" read as four, a review found).
                        format!(
                            ", {} {}unmapped but touched within the hour (used from the command line, or recently abandoned; prune keeps them)",
                            recent.len(),
                            if stale.is_empty() { "" } else { "more " }
                        )
                    },
                    if private.is_empty() {
                        String::new()
                    } else {
                        format!(", {} of other users (not readable by this one)", private.len())
                    },
                    if broken.is_empty() {
                        String::new()
                    } else {
                        format!(", unreadable: {} (see `mmf list`)", broken.join(", "))
                    },
                    if unready.is_empty() {
                        String::new()
                    } else {
                        format!(
                            ", not initialised: {} (held by no process: left by a `new` that was killed before the channel was ready; `mmf prune` removes those untouched for an hour)",
                            unready.join(", ")
                        )
                    },
                    if making.is_empty() {
                        String::new()
                    } else {
                        format!(", being created: {}", making.join(", "))
                    },
                    if unfinished.is_empty() {
                        String::new()
                    } else {
                        format!(
                            ", {} (.mmf-new-* files of a `new --force` that was killed; `mmf prune` removes them)",
                            counted(unfinished.len(), "unfinished replacement")
                        )
                    },
                ),
            });
            checks.push(locks);
        }
        Err(e) => checks.push(Check {
            name: "channels",
            ok: false,
            detail: e.to_string(),
        }),
    }
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let (major, minor) = kernel_version(&kernel);
    checks.push(Check {
        name: "kernel",
        ok: (major, minor) >= (5, 16),
        detail: format!(
            "Linux {kernel}{}",
            if (major, minor) >= (5, 16) {
                ": futex waits and futex_waitv (async) available"
            } else {
                ": before 5.16, async waits poll every millisecond"
            }
        ),
    });
    if a.json {
        let items: Vec<_> = checks
            .iter()
            .map(|c| json!({ "check": c.name, "ok": c.ok, "detail": c.detail }))
            .collect();
        super::print_json(&serde_json::Value::Array(items), false)?;
    } else {
        let mut out = String::new();
        for c in &checks {
            out.push_str(&format!(
                "{:<4}  {:<18} {}\n",
                if c.ok { "ok" } else { "warn" },
                c.name,
                c.detail
            ));
        }
        super::print_bytes(out.as_bytes())?;
    }
    let warned: Vec<_> = checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
    if a.strict && !warned.is_empty() {
        return Err(Coded(ERROR, format!("checks that warn: {}", warned.join(", "))).into());
    }
    Ok(())
}

/// `RemoveIPC` as systemd-logind will apply it on the system whose root is `root`: `None` where
/// systemd does not run (no `/run/systemd/system`, as `sd_booted` tells: a container, a host
/// with another init; a review found the warning there) or logind is not installed, else the
/// last setting in its configuration (default yes). As systemd reads it: the main file (the
/// first of `/etc`, `/run`, `/usr/local/lib`, `/usr/lib`), then the drop-ins of all four
/// `logind.conf.d` directories in the order of their file names, whatever their directory (a
/// name in an earlier directory of that list hides the same name in a later one).
fn remove_ipc(root: &Path) -> Option<bool> {
    let under = |p: &str| root.join(p.trim_start_matches('/'));
    let logind = [
        "/lib/systemd/systemd-logind",
        "/usr/lib/systemd/systemd-logind",
    ];
    if !under("/run/systemd/system").is_dir() || !logind.iter().any(|p| under(p).exists()) {
        return None;
    }
    let dirs = ["/etc", "/run", "/usr/local/lib", "/usr/lib"];
    let mut files: Vec<std::path::PathBuf> = dirs
        .iter()
        .map(|d| under(&format!("{d}/systemd/logind.conf")))
        .find(|p| p.is_file())
        .into_iter()
        .collect();
    // File name -> path, the first directory's that has it.
    let mut drop_ins = std::collections::BTreeMap::new();
    for d in dirs {
        let Ok(entries) = std::fs::read_dir(under(&format!("{d}/systemd/logind.conf.d"))) else {
            continue;
        };
        for path in entries.flatten().map(|e| e.path()) {
            if let (Some(name), true) = (
                path.file_name().map(std::ffi::OsStr::to_os_string),
                path.extension().is_some_and(|x| x == "conf"),
            ) {
                drop_ins.entry(name).or_insert(path);
            }
        }
    }
    files.extend(drop_ins.into_values());
    let mut value = true;
    for f in files {
        value = remove_ipc_in(&std::fs::read_to_string(f).unwrap_or_default(), value);
    }
    Some(value)
}

/// `RemoveIPC` after the configuration file `text`, given `value` before it, read as systemd
/// reads it (systemd.syntax): lines that end with `\` go on in the next, `#` and `;` start a
/// comment line, only the `[Login]` section counts, blanks around `=` and the value do not,
/// and a value that is not a boolean (`no # comment`: there are no comments after a value) is
/// ignored, leaving the one before.
fn remove_ipc_in(text: &str, mut value: bool) -> bool {
    let mut section = String::new();
    let mut line = String::new();
    for part in text.lines() {
        if let Some(head) = part.strip_suffix('\\') {
            line.push_str(head);
            line.push(' ');
            continue;
        }
        line.push_str(part);
        let whole = std::mem::take(&mut line);
        let l = whole.trim();
        if l.is_empty() || l.starts_with(['#', ';']) {
            continue;
        }
        if let Some(name) = l.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let Some((key, v)) = l.split_once('=') else {
            continue;
        };
        if section == "Login" && key.trim() == "RemoveIPC" {
            match v.trim().to_ascii_lowercase().as_str() {
                "1" | "yes" | "y" | "true" | "t" | "on" => value = true,
                "0" | "no" | "n" | "false" | "f" | "off" => value = false,
                _ => {}
            }
        }
    }
    value
}

fn kernel_version(release: &str) -> (u32, u32) {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse().ok());
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// `n` and the noun, plural unless `n` is 1 ("1 channel", "2 channels").
fn counted(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    /// A root directory with `files` (path, contents) in it.
    fn root(tag: &str, files: &[(&str, &str)]) -> std::path::PathBuf {
        let root = std::env::temp_dir().join(format!("mmf-doctor-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (path, text) in files {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        root
    }

    const LOGIND: (&str, &str) = ("usr/lib/systemd/systemd-logind", "");
    const BOOTED: (&str, &str) = ("run/systemd/system/x", "");

    #[test]
    fn a_configuration_file_is_parsed_as_systemd_parses_it() {
        for (text, before, after) in [
            ("[Login]\nRemoveIPC=no\n", true, false),
            // Blanks around '=' are no part of key or value (it read yes for this).
            ("[Login]\nRemoveIPC = no\n", true, false),
            ("[Login]\nRemoveIPC=n\n", true, false),
            ("[Login]\nRemoveIPC=y\n", false, true),
            // Not a boolean: ignored, the value before stays (it read no).
            ("[Login]\nRemoveIPC=no # comment\n", true, true),
            ("[Login]\n# RemoveIPC=no\n; RemoveIPC=no\n", true, true),
            // Another section's key, or one outside every section, is not logind's.
            ("[Other]\nRemoveIPC=no\n", true, true),
            ("RemoveIPC=no\n", true, true),
            ("[Login]\nRemoveIPC=\\\nno\n", true, false),
            ("[Login]\nRemoveIPC=no\nRemoveIPC=yes\n", false, true),
        ] {
            assert_eq!(super::remove_ipc_in(text, before), after, "{text:?}");
        }
    }

    #[test]
    fn remove_ipc_is_read_as_systemd_reads_it() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<bool>);
        let cases: [Case; 6] = [
            // Installed, but systemd does not run (a container): nothing removes channels.
            ("not-booted", &[LOGIND], None),
            ("no-logind", &[BOOTED], None),
            ("default", &[LOGIND, BOOTED], Some(true)),
            (
                "main-file",
                &[
                    LOGIND,
                    BOOTED,
                    ("etc/systemd/logind.conf", "[Login]\nRemoveIPC=no\n"),
                ],
                Some(false),
            ),
            // Drop-ins in the order of their names across directories: 99-x in /usr/lib
            // comes after 10-y in /etc (read directory by directory, /etc's came last).
            (
                "order",
                &[
                    LOGIND,
                    BOOTED,
                    (
                        "usr/lib/systemd/logind.conf.d/99-x.conf",
                        "[Login]\nRemoveIPC=yes",
                    ),
                    (
                        "etc/systemd/logind.conf.d/10-y.conf",
                        "[Login]\nRemoveIPC=no",
                    ),
                ],
                Some(true),
            ),
            // The same name in /etc hides /usr/lib's.
            (
                "masked",
                &[
                    LOGIND,
                    BOOTED,
                    (
                        "usr/lib/systemd/logind.conf.d/50-a.conf",
                        "[Login]\nRemoveIPC=yes",
                    ),
                    (
                        "etc/systemd/logind.conf.d/50-a.conf",
                        "[Login]\nRemoveIPC=no",
                    ),
                ],
                Some(false),
            ),
        ];
        for (tag, files, expected) in cases {
            let root = root(tag, files);
            assert_eq!(super::remove_ipc(&root), expected, "{tag}");
            std::fs::remove_dir_all(&root).unwrap();
        }
    }
}
