//! Handles copied into a child by `fork` while another thread of the parent is inside mmf: the
//! child must not wait for a thread that the fork did not copy.
//!
//! Linux only: the planted tokens follow Linux's PID namespaces and `/proc`.
#![cfg(target_os = "linux")]

mod common;

use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use mmf::prelude::*;

#[test]
fn child() {
    let Some((role, name)) = child_role() else {
        return;
    };
    match role.as_str() {
        "fork-in-first-open" => fork_in_first_open(&name),
        "fork-then-hold-lock" => fork_then_hold_lock(&name),
        other => panic!("unknown role {other}"),
    }
}

/// In a fresh process: a thread opens `name` for writing, the first writable open of the
/// process, and the process forks meanwhile (after `MMF_SPIN_US`); the child opens it too.
/// Prints whether the child's open hung (an alarm ended it).
fn fork_in_first_open(name: &str) {
    let spin: u64 = std::env::var("MMF_SPIN_US").unwrap().parse().unwrap();
    let opener = {
        let name = name.to_owned();
        std::thread::spawn(move || Channel::open(&name).is_ok())
    };
    let t = Instant::now();
    while t.elapsed() < Duration::from_micros(spin) {
        std::hint::spin_loop();
    }
    let status = in_a_forked_child(|| Channel::open(name).is_ok());
    assert!(opener.join().unwrap());
    let hung = libc::WIFSIGNALED(status);
    assert!(
        hung || libc::WEXITSTATUS(status) == 0,
        "the child's open failed"
    );
    print_stats(&serde_json::json!({ "hung": hung }));
}

/// Opens `name`, forks a child that only sleeps (it holds the handle's liveness lock through
/// the copied descriptor), then holds the writer lock in a publish until killed; prints
/// `HOLDING <child's pid>` once it holds it.
fn fork_then_hold_lock(name: &str) {
    let ch = Channel::open(name).unwrap();
    // SAFETY: the child only sleeps and leaves with `_exit`.
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork failed");
    if child == 0 {
        std::thread::sleep(Duration::from_secs(60));
        // SAFETY: ends the forked child without the parent's exit handlers.
        unsafe { libc::_exit(0) };
    }
    let _ = ch.publish_with(Tag::BYTES, |w| {
        println!("HOLDING {child}");
        std::io::Write::flush(&mut std::io::stdout())?;
        std::thread::sleep(Duration::from_secs(60));
        w.put(b"never")
    });
}

/// A writer killed in the middle of a publish after it forked without exec: its child holds
/// the liveness lock of the writer's token through the copied descriptor, so the lock cannot
/// be taken over, and `info` says that its pid may not be alive, where it said "alive"
/// (publishing) of a pid that had exited (a review; a publish's own message told the truth).
#[test]
fn info_does_not_call_a_dead_lock_holder_alive_for_its_forked_child() {
    use std::io::BufRead;
    let name = unique("fork-lock");
    let ch = Options::new().capacity(64).create(&name).unwrap();
    let mut holder = spawn_child("fork-then-hold-lock", &[("MMF_NAME", name.clone())]);
    let line = std::io::BufReader::new(holder.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("HOLDING "))
        .expect("the holder never held the lock");
    let grandchild: i32 = line["HOLDING ".len()..].parse().unwrap();
    let pid = holder.id();
    let lock = ch.info().writer_lock.expect("held");
    assert_eq!((lock.pid, lock.state), (pid, mmf::OwnerState::Alive));

    holder.kill().unwrap();
    holder.wait().unwrap();
    let lock = ch
        .info()
        .writer_lock
        .expect("still held: its child holds the liveness lock");
    assert_eq!(lock.pid, pid);
    match lock.state {
        mmf::OwnerState::Unknown(why) => assert!(why.contains("forked"), "{why}"),
        other => panic!("pid {pid} exited, and is said to be {other:?}"),
    }
    // Once the child has gone too, the lock is a dead writer's.
    // SAFETY: ends the grandchild the holder forked (not ours to wait for).
    assert_eq!(unsafe { libc::kill(grandchild, libc::SIGKILL) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while ch.info().writer_lock.map(|l| l.state) != Some(mmf::OwnerState::Dead) {
        assert!(Instant::now() < deadline, "the lock never read as dead");
        std::thread::sleep(Duration::from_millis(5));
    }
    ch.publish_raw(Tag::TEXT, b"taken over").unwrap();
    drop(ch);
    Channel::remove(&name).unwrap();
}

/// A process forked while another of its threads makes its first writable open: the child's
/// own open must not wait for that thread. Each round is a fresh process (the first open reads
/// the boot's id once per process). The boot's id was kept in a `OnceLock`: a review found 8 of
/// 400 such children hung.
#[test]
fn a_child_forked_during_the_first_open_opens() {
    let name = unique("fork-open");
    let ch = Options::new().capacity(64).create(&name).unwrap();
    let rounds = env_or("MMF_FORK_ROUNDS", 200);
    let mut hung = 0;
    for round in 0..rounds {
        let child = spawn_child(
            "fork-in-first-open",
            &[
                ("MMF_NAME", name.clone()),
                ("MMF_SPIN_US", (round % 100 * 4).to_string()),
            ],
        );
        hung += u64::from(child_stats(child)["hung"] == true);
    }
    print_stats(&serde_json::json!({ "rounds": rounds, "hung": hung }));
    assert_eq!(hung, 0, "children hung in their first open");
    drop(ch);
    Channel::remove(&name).unwrap();
}

/// Runs `work` in a child made by `fork`, which an alarm ends if it hangs for 2 s, and returns
/// the child's wait status: exit code 0 where `work` said `true`, 3 where it said `false`.
fn in_a_forked_child(work: impl FnOnce() -> bool) -> i32 {
    // SAFETY: the child runs `work` (mmf calls, as a program that forks makes them) and leaves
    // with `_exit` (the pattern of tests/stop.rs).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: arms an alarm in the child; the default action ends it.
        unsafe { libc::alarm(2) };
        let ok = work();
        // SAFETY: ends the forked child without the parent's exit handlers.
        unsafe { libc::_exit(if ok { 0 } else { 3 }) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above; `status` is a valid out-pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    status
}

/// FORMAT.md §5: a token judged by pid for this process, with its PID namespace and start
/// time, as a handle that could take no kernel lock stores it: alive, and judged so only
/// through `kill` and `/proc`.
fn own_pid_token() -> u64 {
    let ino = std::fs::metadata("/proc/self/ns/pid").unwrap().ino();
    let ns_tag = ino % ((1 << 26) - 2) + 1;
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    // Field 22 of the whole line is the 20th after the command's name.
    let start: u64 = after_comm.split(' ').nth(19).unwrap().parse().unwrap();
    (start & 0x7fff) << 48 | ns_tag << 22 | u64::from(std::process::id())
}

/// A thread of the parent makes a handle's first read, which claims its reader-pin entry, and
/// the parent forks meanwhile; the child reads through its copy of the handle. A claim is slow
/// here (every entry is held by a live owner that is judged through `/proc`), so many forks
/// land within one. The claim was a `OnceLock`, whose copy in the child said "being made" for
/// ever: children hung in their first read (a review, 5 in 2,500 with a shorter window).
#[test]
fn a_child_forked_while_a_thread_claims_a_pin_entry_reads() {
    let name = unique("fork-pin");
    let readers = 62;
    let ch = Options::new()
        .capacity(64)
        .readers(readers)
        .create(&name)
        .unwrap();
    ch.publish_raw(Tag::TEXT, b"value").unwrap();
    let path = Location::parse(&name).unwrap().path().unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let token = own_pid_token();
    for e in 0..readers as u64 {
        file.write_all_at(&token.to_le_bytes(), 512 + 64 * e)
            .unwrap();
    }
    let rounds: usize = 100;
    let mut hung = 0;
    let mut in_claim = 0;
    for round in 0..rounds {
        let h = Arc::new(Channel::open(&name).unwrap());
        let h2 = Arc::clone(&h);
        let reader = std::thread::spawn(move || h2.read_raw().map(|(_, v)| v));
        // Into the claim, most rounds: it takes far longer than a thread's start.
        let spin = Duration::from_micros(20 + 10 * (round as u64 % 20));
        let t = Instant::now();
        while t.elapsed() < spin {
            std::hint::spin_loop();
        }
        let claiming = !h.is_pinned() && !reader.is_finished();
        let status = in_a_forked_child(|| h.read_raw().is_ok_and(|(_, v)| v == b"value"));
        if libc::WIFSIGNALED(status) {
            hung += 1;
        } else {
            assert_eq!(libc::WEXITSTATUS(status), 0, "the child's read failed");
        }
        in_claim += usize::from(claiming);
        assert_eq!(reader.join().unwrap().unwrap(), b"value");
    }
    print_stats(
        &serde_json::json!({ "rounds": rounds, "forked_in_a_claim": in_claim, "hung": hung }),
    );
    assert_eq!(hung, 0, "children hung in their first read");
    assert!(
        in_claim > rounds / 4,
        "too few forks landed in a claim: {in_claim}"
    );
    drop(ch);
    Channel::remove(&name).unwrap();
}

// In this file, not beside the other tests of the claim: a fork copies every descriptor the
// test process holds, the other tests' channels too, whose `flock` then says "in use" for as
// long as the child lives (`tests/exclusive.rs`'s `free_orphans` test saw it).
/// A child made by `fork` that claims again through its copy of the claiming handle (a no-op:
/// the token is its parent's) and drops the copy leaves its parent's claim standing; it gave
/// the claim back, and other writers published while the parent held it (a diff review).
#[test]
fn a_forked_copy_of_the_claimant_does_not_give_its_claim_back() {
    let name = unique("excl-fork");
    let ch = Options::new()
        .capacity(64)
        .exclusive_writer(true)
        .create(&name)
        .unwrap();
    // SAFETY: the child claims, drops its copy and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok = ch.claim_writer().is_ok();
        drop(ch);
        // SAFETY: ends the forked child without the parent's exit handlers.
        unsafe { libc::_exit(if ok { 0 } else { 3 }) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above; `status` is a valid out-pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    let claim = Channel::open(&name).unwrap().info().exclusive_writer;
    assert_eq!(
        claim.map(|c| c.pid),
        Some(std::process::id()),
        "the parent's claim stands"
    );
    match Channel::open(&name).unwrap().publish_raw(Tag::TEXT, b"x") {
        Err(mmf::channel::Error::WriterClaimed { pid, .. }) => assert_eq!(pid, std::process::id()),
        other => panic!("{other:?}"),
    }
    drop(ch);
    Channel::remove(&name).unwrap();
}
