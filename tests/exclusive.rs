//! The exclusive writer (`Options::exclusive_writer`, `Channel::claim_writer`) across real
//! processes: a claim refuses every other writer's publishes and claims while its holder lives,
//! goes with its holder however it ends, refuses a replacement that would orphan it, and a claim
//! left in the header by the dead, or by a hostile peer, is cleared or freed.
//!
//! Linux only: within one process, handles have tokens of their own only where the kernel's
//! open-file-description locks judge them (elsewhere a process's handles share one, and its
//! claim), and the planted words follow Linux's tokens.
#![cfg(target_os = "linux")]

mod common;

use std::io::BufRead;
use std::os::unix::fs::FileExt;
use std::process::Child;

use common::*;
use mmf::channel::host;
use mmf::channel::Error;
use mmf::prelude::*;
use mmf::OwnerState;

#[test]
fn child() {
    let Some((role, name)) = child_role() else {
        return;
    };
    match role.as_str() {
        "exclusive-holder" => {
            let ch = Options::new()
                .exclusive_writer(true)
                .open(name.as_str())
                .unwrap();
            ch.publish_raw(Tag::TEXT, b"held").unwrap();
            println!("READY");
            std::io::Write::flush(&mut std::io::stdout()).unwrap();
            // Killed by the test.
            std::thread::sleep(std::time::Duration::from_secs(120));
        }
        "racing-replacer" => {
            let go = std::env::var("MMF_GO").unwrap();
            while !std::path::Path::new(&go).exists() {
                std::thread::sleep(std::time::Duration::from_micros(100));
            }
            let made = Options::new()
                .capacity(64)
                .exclusive_writer(true)
                .create_or_replace(name.as_str());
            match &made {
                Ok(ch) => println!("OK {}", ch.is_current().unwrap()),
                Err(e) => println!("ERR {e}"),
            }
            std::io::Write::flush(&mut std::io::stdout()).unwrap();
            // Held while the other looks.
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        other => panic!("unknown role {other}"),
    }
}

/// A child process holding the exclusive claim on `name`, once it has published "held".
fn holder(name: &str) -> Child {
    let mut child = spawn_child("exclusive-holder", &[("MMF_NAME", name.to_owned())]);
    let out = child.stdout.take().unwrap();
    let ready = std::io::BufReader::new(out)
        .lines()
        .map_while(Result::ok)
        .any(|l| l == "READY");
    assert!(ready, "the holder never claimed the channel");
    child
}

fn kill(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Writes `value` over the header word at byte `offset` of channel `name`'s file, as a peer
/// writing into the mapping would.
fn poke(name: &str, offset: u64, value: u64) {
    let path = Location::parse(name).unwrap().path().unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&value.to_le_bytes(), offset).unwrap();
}

fn peek(name: &str, offset: u64) -> u64 {
    let path = Location::parse(name).unwrap().path().unwrap();
    let mut b = [0u8; 8];
    std::fs::File::open(path)
        .unwrap()
        .read_exact_at(&mut b, offset)
        .unwrap();
    u64::from_le_bytes(b)
}

/// FORMAT.md §4: the words this file plants and looks at.
const LATEST: u64 = 128;
const LOCK: u64 = 448;
const WRITTEN: u64 = 464;
const CLAIM: u64 = 488;

fn claimed_by(r: Result<u64, Error>) -> u32 {
    match r {
        Err(Error::WriterClaimed { pid, .. }) => pid,
        other => panic!("expected WriterClaimed, got {other:?}"),
    }
}

#[test]
fn a_claim_refuses_other_processes_until_its_holder_is_killed() {
    let name = unique("excl-kill");
    let ch = Options::new().capacity(64).create(&name).unwrap();
    let child = holder(&name);
    let pid = child.id();

    assert_eq!(claimed_by(ch.publish_raw(Tag::TEXT, b"mine")), pid);
    assert_eq!(
        claimed_by(ch.publish_with(Tag::BYTES, |w| w.put(b"filled"))),
        pid
    );
    assert!(matches!(ch.claim_writer(), Err(Error::WriterClaimed { pid: p, .. }) if p == pid));
    // Nothing was published: the holder's value and generation stay.
    let (meta, value) = ch.read_raw().unwrap();
    assert_eq!((meta.generation, value.as_slice()), (1, &b"held"[..]));
    let claim = ch.info().exclusive_writer.expect("the claim is shown");
    assert_eq!((claim.pid, claim.state), (pid, OwnerState::Alive));
    // A second instance of the holder fails at its start.
    assert!(matches!(
        Options::new().exclusive_writer(true).open(&name),
        Err(Error::WriterClaimed { pid: p, .. }) if p == pid
    ));

    kill(child);
    // Its kernel lock went with it: the claim is seen dead, cleared by the next publish.
    assert_eq!(
        ch.info().exclusive_writer.map(|c| c.state),
        Some(OwnerState::Dead)
    );
    assert_eq!(ch.publish_raw(Tag::TEXT, b"mine").unwrap(), 2);
    assert_eq!(ch.info().exclusive_writer, None);
    assert_eq!(peek(&name, CLAIM), 0);
    ch.claim_writer().unwrap();
    assert_eq!(
        ch.info().exclusive_writer.map(|c| c.pid),
        Some(std::process::id())
    );
    drop(ch);
    assert_eq!(
        peek(&name, CLAIM),
        0,
        "a dropped handle gives its claim back"
    );
    Channel::remove(&name).unwrap();
}

#[test]
fn in_one_process_a_claim_holds_off_the_other_handles_until_it_is_dropped() {
    let name = unique("excl-drop");
    let a = Options::new()
        .capacity(64)
        .exclusive_writer(true)
        .create(&name)
        .unwrap();
    let b = Channel::open(&name).unwrap();
    assert_eq!(
        claimed_by(b.publish_raw(Tag::TEXT, b"b")),
        std::process::id()
    );
    assert!(matches!(
        Options::new().exclusive_writer(true).open(&name),
        Err(Error::WriterClaimed { .. })
    ));
    a.claim_writer().unwrap(); // again: a no-op
    assert_eq!(a.publish_raw(Tag::TEXT, b"a").unwrap(), 1);
    assert_eq!(b.read_raw().unwrap().1, b"a");
    assert!(matches!(
        Options::new()
            .exclusive_writer(true)
            .read_only(true)
            .open(&name),
        Err(Error::InvalidOptions(_))
    ));
    let reader = Options::new().read_only(true).open(&name).unwrap();
    assert!(matches!(reader.claim_writer(), Err(Error::ReadOnly { .. })));

    drop(a);
    assert_eq!(b.publish_raw(Tag::TEXT, b"b").unwrap(), 2);
    assert_eq!(b.info().exclusive_writer, None);
    Channel::remove(&name).unwrap();
}

#[test]
fn a_replacement_that_would_orphan_a_live_exclusive_writer_is_refused() {
    // A file channel in a directory of its own, where a replacement's temporary file would be
    // made: in /dev/shm, another test's replacement of a channel of the same size was taken
    // for one (a workspace run).
    let dir = std::env::temp_dir().join(unique("excl-replace"));
    std::fs::create_dir(&dir).unwrap();
    let name = dir.join("c.mmf").to_str().unwrap().to_owned();
    let old = Options::new().capacity(64).create(&name).unwrap();
    let child = holder(&name);
    let pid = child.id();
    let exclusive = || {
        Options::new()
            .capacity(128)
            .exclusive_writer(true)
            .create_or_replace(&name)
    };
    assert!(matches!(exclusive(), Err(Error::WriterClaimed { pid: p, .. }) if p == pid));
    // Nothing replaced: the name leads to the holder's channel, which goes on.
    let now = Channel::open(&name).unwrap();
    assert_eq!(now.incarnation(), old.incarnation());
    assert!(old.is_current().unwrap());
    assert_eq!(now.read_raw().unwrap().1, b"held");
    let left = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".mmf-new-"))
        .filter(|e| {
            e.metadata()
                .is_ok_and(|m| m.len() as usize == now.info().size_bytes as usize)
        })
        .count();
    assert_eq!(left, 0, "no temporary file made for a refused replacement");

    kill(child);
    let new = exclusive().unwrap();
    assert_ne!(new.incarnation(), old.incarnation());
    assert!(!old.is_current().unwrap());
    assert_eq!(
        new.info().exclusive_writer.map(|c| c.pid),
        Some(std::process::id())
    );
    drop(new);
    Channel::remove(&name).unwrap();
    std::fs::remove_dir(&dir).unwrap();
}

#[test]
fn claims_left_by_the_dead_are_cleared_and_one_nobody_can_judge_is_freed_by_recover() {
    let name = unique("excl-planted");
    let ch = Options::new().capacity(64).create(&name).unwrap();
    ch.publish_raw(Tag::TEXT, b"first").unwrap();
    // FORMAT.md §5: a kernel-held token (bits 63 and 62, pid 4242) whose liveness lock nobody
    // holds, as a holder SIGKILLed leaves it: dead, cleared by the next publish.
    poke(&name, CLAIM, 1 << 63 | 1 << 62 | 0x1234 << 22 | 4242);
    assert_eq!(
        ch.info().exclusive_writer.map(|c| (c.pid, c.state)),
        Some((4242, OwnerState::Dead))
    );
    assert_eq!(ch.publish_raw(Tag::TEXT, b"second").unwrap(), 2);
    assert_eq!(peek(&name, CLAIM), 0);

    // A token judged by pid, of another PID namespace (tag 12345): nobody can tell whether it
    // lives, so it holds off every publish, keeping the value; `recover` frees it once no
    // process has the channel open.
    poke(&name, CLAIM, 12345 << 22 | 4242);
    assert_eq!(claimed_by(ch.publish_raw(Tag::TEXT, b"third")), 4242);
    assert_eq!(ch.read_raw().unwrap().1, b"second");
    assert_eq!(host::free_orphans(&name).unwrap(), None, "open here");
    drop(ch);
    // Another test of this binary starting a child holds every descriptor of this process
    // until the child's `exec` closes them: "in use" for an instant.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let freed = loop {
        match host::free_orphans(&name).unwrap() {
            Some(freed) => break freed,
            None if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5))
            }
            None => panic!("the channel stayed in use"),
        }
    };
    let claim = freed.exclusive_writer.expect("the claim was freed");
    assert_eq!(claim.pid, 4242);
    assert!(matches!(claim.state, OwnerState::Unknown(_)));
    assert!(!freed.is_empty());
    let ch = Channel::open(&name).unwrap();
    assert_eq!(ch.publish_raw(Tag::TEXT, b"third").unwrap(), 3);
    Channel::remove(&name).unwrap();
}

/// A claim (or a refused publish) that takes the writer lock over from a writer that died
/// between its stores of `latest` and `written` leaves `written` resynchronised, as a publish
/// after a takeover does: the next writer, taking a free lock, trusts it, and would otherwise
/// publish a generation readers have seen already.
#[test]
fn a_claim_or_a_refusal_after_a_lock_takeover_leaves_the_writers_count_right() {
    let name = unique("excl-resync");
    let a = Options::new().capacity(64).create(&name).unwrap();
    let b = Channel::open(&name).unwrap();
    for v in [&b"1"[..], b"2", b"3"] {
        a.publish_raw(Tag::TEXT, v).unwrap();
    }
    let dead = 1 << 63 | 1 << 62 | 0x4321 << 22 | 4242;
    let behind = |n| {
        let latest = peek(&name, LATEST);
        assert_eq!(latest >> 8, n);
        poke(&name, WRITTEN, latest - (1 << 8));
        poke(&name, LOCK, dead);
    };

    // The claim takes the lock over.
    behind(3);
    a.claim_writer().unwrap();
    assert_eq!(peek(&name, LOCK), 0);
    assert_eq!(a.publish_raw(Tag::TEXT, b"4").unwrap(), 4);

    // A publish refused by the claim takes it over too.
    behind(4);
    assert_eq!(
        claimed_by(b.publish_raw(Tag::TEXT, b"refused")),
        std::process::id()
    );
    assert_eq!(peek(&name, LOCK), 0);
    assert_eq!(a.publish_raw(Tag::TEXT, b"5").unwrap(), 5);
    assert_eq!(b.read_raw().unwrap().1, b"5");
    drop(a);
    Channel::remove(&name).unwrap();
}

/// Two processes started together both replace a name with `exclusive_writer`: one alone
/// succeeds, with the channel under the name; the other is told of its claim. Where each only
/// looked for a live claim before it replaced, both succeeded nearly every time, one left
/// publishing where no reader looks (a diff review: 197 of 200, with threads).
#[test]
fn of_two_exclusive_replacements_at_once_one_alone_succeeds() {
    let name = unique("excl-race");
    let go = std::env::temp_dir().join(format!("{name}.go"));
    for round in 0..20 {
        // Half the rounds over a channel, half over nothing.
        if round % 2 == 0 {
            drop(
                Options::new()
                    .capacity(64)
                    .create_or_replace(&name)
                    .unwrap(),
            );
        } else {
            let _ = Channel::remove(&name);
        }
        let _ = std::fs::remove_file(&go);
        let env = [
            ("MMF_NAME", name.clone()),
            ("MMF_GO", go.to_str().unwrap().to_owned()),
        ];
        let children = [
            spawn_child("racing-replacer", &env),
            spawn_child("racing-replacer", &env),
        ];
        std::fs::write(&go, b"").unwrap();
        let said: Vec<String> = children
            .into_iter()
            .map(|c| {
                let out = c.wait_with_output().unwrap();
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.lines()
                    .find(|l| l.starts_with("OK ") || l.starts_with("ERR "))
                    .unwrap_or_else(|| panic!("said nothing: {text}"))
                    .to_owned()
            })
            .collect();
        let won: Vec<&String> = said.iter().filter(|l| l.starts_with("OK ")).collect();
        assert_eq!(won.len(), 1, "round {round}: {said:?}");
        assert_eq!(won[0], "OK true", "round {round}: {said:?}");
        assert!(
            said.iter().any(|l| l.contains("has an exclusive writer")),
            "round {round}: {said:?}"
        );
    }
    let _ = std::fs::remove_file(&go);
    Channel::remove(&name).unwrap();
}

/// A service that holds its channel's claim replaces the channel (to grow it) with another
/// exclusive handle: its own claim does not refuse it.
#[test]
fn a_process_replaces_its_own_claimed_channel() {
    let name = unique("excl-grow");
    let old = Options::new()
        .capacity(64)
        .exclusive_writer(true)
        .create(&name)
        .unwrap();
    let new = Options::new()
        .capacity(4096)
        .exclusive_writer(true)
        .create_or_replace(&name)
        .unwrap();
    assert!(!old.is_current().unwrap());
    assert_eq!(new.capacity(), 4096);
    assert_eq!(
        claimed_by(Channel::open(&name).unwrap().publish_raw(Tag::TEXT, b"x")),
        std::process::id()
    );
    drop(new);
    Channel::remove(&name).unwrap();
}
