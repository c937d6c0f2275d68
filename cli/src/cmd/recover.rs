//! `mmf recover NAME`: free what processes that are gone left held in a channel nobody has open
//! (a writer lock no publish can take over), and publish again the newest earlier value still
//! whole when the current one is damaged (or a small value's own copy from the header, when its
//! frame alone is).

use anyhow::Context;
use mmf::channel::host::{self, Orphans};
use mmf::{Location, Options, OwnerState};

use crate::args::RecoverArgs;

pub fn run(a: RecoverArgs) -> anyhow::Result<()> {
    let location = Location::parse_os(&a.name)?;
    // First, before this command holds a handle of its own: what handles that are gone left
    // held (a writer lock whose holder cannot be judged dead, which no publish would ever take
    // over), freed only while no process has the channel open.
    let freed = host::free_orphans(&location)?;
    // Said at once: the file has changed, whatever fails next (a review's recover of a value it
    // could not bring back said nothing of the lock it had freed).
    if let Some(o) = &freed {
        super::print_bytes(freed_lines(&location, o).as_bytes())?;
    }
    let ch = Options::new().open(&location)?;
    // A writer lock left held ends the command with an error, once the value is looked at:
    // every publish times out while it stays, so a script's `mmf recover T && mmf out T ...`
    // must not go on as if the channel were mended (it exited 0 here, saying so on standard
    // error only). Not where the holder publishes meanwhile: that is a live writer, whose lock
    // comes and goes.
    let held = match &freed {
        Some(o) => o
            .lock_kept
            .filter(|l| held_through_a_look(&ch, l.pid))
            .map(|l| kept_by_a_running_process(&location, l.pid)),
        None => still_held(&ch, &location),
    };
    if let Some(why) = held {
        // Publishing an earlier value again would wait for that lock, and fail when the lock
        // timeout passes, with a message that hides why (a review's finding): the value is
        // looked at, not mended.
        return match (ch.read_raw(), ch.info().damage) {
            (Ok((meta, _)), None) => {
                super::print_bytes(reads_whole(&location, meta.generation).as_bytes())?;
                Err(anyhow::anyhow!(why))
            }
            // A small value whose frame alone is damaged reads (from the header), and is
            // published again from there: not while the lock is held (a review's finding: it
            // was said to need no recovery).
            (Ok(_), Some(damage)) => Err(anyhow::anyhow!(
                "{why}; its current value reads, but {damage}: it is mended only once the lock \
                 is freed"
            )),
            (Err(e), _) => Err(anyhow::anyhow!(
                "{why}; its current value does not read ({e}), and an earlier one is published \
                 again only once the lock is freed"
            )),
        };
    }
    let line = match ch.recover()? {
        Some(r) => {
            // A repair after a machine crash, of a file channel: on the disk before it is said
            // (a crash soon after would otherwise bring the damage back).
            if let Location::File(_) = location {
                ch.flush().with_context(|| {
                    format!(
                        "generation {} of '{location}' is the recovered value, but writing it \
                         back to the disk failed",
                        r.meta.generation
                    )
                })?;
            }
            format!(
                "recovered '{location}': the value of generation {} ({}, {} B) is generation {} \
                 now\n",
                r.from, r.meta.tag, r.meta.len, r.meta.generation
            )
        }
        // Nothing to mend, or `latest` moved while recover looked (another writer published,
        // or a peer keeps writing it): "whole" only where a read says so (a hostile-mapping
        // review got "is whole" of a value every read refused, under a peer flipping `latest`).
        None => match ch.read_raw() {
            Ok((meta, _)) => reads_whole(&location, meta.generation),
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "'{location}' changed while recover looked at it, and its current value \
                         does not read; retry `{}` once no other process writes to it",
                        crate::exit::command("recover", super::typed(&location), "")
                    )
                })
            }
        },
    };
    super::print_bytes(line.as_bytes())
}

/// The line of a channel whose current value, of `generation`, a read took whole.
fn reads_whole(location: &Location, generation: u64) -> String {
    match generation {
        0 => format!("'{location}' needs no recovery: nothing was published to it yet\n"),
        g => format!(
            "'{location}' needs no recovery: its current value (generation {g}) reads whole\n"
        ),
    }
}

/// What [`host::free_orphans`] freed, a line each; and on standard error, a writer lock it left
/// to a holder judged alive.
fn freed_lines(location: &Location, o: &Orphans) -> String {
    let mut out = String::new();
    // A token of pid 0 is no process's: a stray write (a kernel-held one is judged by its lock
    // byte alone, whatever its pid bits say).
    let holder = |l: mmf::LockOwner| {
        let judged = match l.state {
            OwnerState::Dead => "which has exited".to_owned(),
            OwnerState::Unknown(why) => format!("which could not be judged ({why})"),
            _ => "which holds no handle".to_owned(),
        };
        match l.pid {
            0 => "a token that names no process".to_owned(),
            pid => format!("pid {pid}, {judged}"),
        }
    };
    if let Some(l) = o.lock {
        out += &format!(
            "freed the writer lock of '{location}', held by {}: no process had the channel \
             open\n",
            holder(l)
        );
    }
    if let Some(c) = o.exclusive_writer {
        out += &format!(
            "freed the exclusive writer's claim on '{location}', made by {}: no process had the \
             channel open\n",
            holder(c)
        );
    }
    if let Some(c) = o.exclusive_writer_kept {
        crate::exit::say(format_args!(
            "'{location}': its exclusive writer's claim, made by pid {}, is left to that running \
             process, although it has no handle of the channel open; others' publishes are \
             refused while it stands",
            c.pid
        ));
    }
    if o.pins > 0 {
        let entries = if o.pins == 1 { "entry" } else { "entries" };
        out += &format!(
            "freed {} reader-pin {entries} of '{location}', held by processes that no longer had \
             the channel open\n",
            o.pins
        );
    }
    if o.waiters > 0 {
        out += &format!(
            "lowered the count of blocked waiters of '{location}' by {}, which no open handle \
             counted\n",
            o.waiters
        );
    }
    if o.pins_kept > 0 {
        crate::exit::say(format_args!(
            "'{location}': {} reader-pin entr{} held by running processes that have no handle \
             of the channel open were left as they are",
            o.pins_kept,
            if o.pins_kept == 1 { "y is" } else { "ies are" }
        ));
    }
    out
}

/// Why [`host::free_orphans`] left the writer lock to `pid`, which the command ends with.
fn kept_by_a_running_process(location: &Location, pid: u32) -> String {
    format!(
        "'{location}': its writer lock is held by pid {pid}, which is running although it has \
         no handle of the channel open (a program that uses the channel without mmf's shared \
         flock on it, or another process given that pid): left held, so publishes time out; \
         once that process has stopped, run `{}` again",
        crate::exit::command("recover", super::typed(location), "")
    )
}

/// Whether the writer lock is held by `pid` still after 100 ms, with no value published
/// meanwhile: a live writer holds it only while it publishes, so a lock held across the look by
/// a holder that published nothing is one that every publish waits for, and times out.
fn held_through_a_look(ch: &mmf::Channel, pid: u32) -> bool {
    let generation = ch.generation();
    std::thread::sleep(std::time::Duration::from_millis(100));
    ch.generation() == generation && ch.info().writer_lock.is_some_and(|l| l.pid == pid)
}

/// With processes holding the channel open (so [`host::free_orphans`] freed nothing), whether
/// its writer lock stays held by a holder that cannot be judged ([`held_through_a_look`]), and
/// what to do: its publishes then time out until no process has the channel open and `mmf
/// recover` runs again.
fn still_held(ch: &mmf::Channel, location: &Location) -> Option<String> {
    let unknown = |ch: &mmf::Channel| match ch.info().writer_lock {
        Some(l) => match l.state {
            OwnerState::Unknown(why) => Some((l.pid, why)),
            _ => None,
        },
        None => None,
    };
    let (first, _) = unknown(ch)?;
    if !held_through_a_look(ch, first) {
        return None;
    }
    let (pid, why) = unknown(ch).filter(|&(pid, _)| pid == first)?;
    Some(format!(
        "'{location}': its writer lock is held by pid {pid}, which may be alive: {why}; it is \
         freed only while no process has the channel open, and processes have it open now \
         (`fuser -v` on its file names them): once none has, run `{}` again",
        crate::exit::command("recover", super::typed(location), "")
    ))
}
