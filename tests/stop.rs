//! Waits that a `Stop` ends early: turned by another thread, or by the exit of another process
//! (a worker that ends without publishing), with real processes and real channels. The bounds
//! asserted on how long a wait took tell "ended by the stop" from "ran to its timeout" (30 s or
//! more), nothing finer.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mmf::prelude::*;

/// Far longer than any wait here may take: a wait that reaches it was not stopped.
const LONG: Duration = Duration::from_secs(60);
/// A wait ended by a stop returns well within this.
const PROMPT: Duration = Duration::from_secs(10);

#[test]
fn child() {
    let Some((role, name)) = child_role() else {
        return;
    };
    match role.as_str() {
        // A worker that fails before it publishes (the test is waiting by then).
        "exit-silently" => {
            std::thread::sleep(Duration::from_millis(100));
            std::process::exit(3);
        }
        // A worker that publishes its result, then exits.
        "publish-then-exit" => {
            Channel::open(&name)
                .unwrap()
                .publish_str("last words")
                .unwrap();
        }
        "fork-and-watch" => fork_and_watch(),
        other => panic!("unknown role {other}"),
    }
}

/// A process that watches a worker, then forks without exec (as some harnesses make workers):
/// the forked child drops the `Stop` it inherited and watches a process of its own, whose exit
/// it must see; the parent's watch must still work after that. Prints what each saw.
#[cfg(target_os = "linux")]
fn fork_and_watch() {
    let sleeper = |secs: &str| {
        std::process::Command::new("sleep")
            .arg(secs)
            .spawn()
            .unwrap()
    };
    let mut long = sleeper("30");
    let inherited = Stop::on_exit_of(&long).unwrap();
    let mut short = sleeper("0.2");
    let short_pid = short.id();
    // SAFETY: `fork` itself has no memory-safety preconditions. The child of this
    // multithreaded process then does more than async-signal-safe calls (it takes locks,
    // allocates, starts a thread): that it can, with whatever locks the fork copied, is what
    // this tests of mmf's exit watcher (whose state a child makes anew, never taking the
    // inherited lock); glibc's malloc is fork-safe. It leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // The parent's watcher thread is not here; this drop must leave it alone.
        drop(inherited);
        let stop = Stop::new();
        let watched = stop.stop_on_exit(short_pid).is_ok();
        Until::timeout(PROMPT).or(&stop).sleep(PROMPT);
        let seen = watched && stop.reason() == Some(StopReason::Exited(short_pid));
        // SAFETY: ends the forked child without running the parent's exit handlers twice.
        unsafe { libc::_exit(if seen { 0 } else { 3 }) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above; `status` is a valid out-pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    let child_saw_exit = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    short.wait().unwrap();
    let early = inherited.is_stopped();
    long.kill().unwrap();
    Until::timeout(PROMPT).or(&inherited).sleep(PROMPT);
    long.wait().unwrap();
    print_stats(&serde_json::json!({
        "child_saw_exit": child_saw_exit,
        "parent_stopped_early": early,
        "parent_saw_exit": inherited.reason() == Some(StopReason::Exited(long.id())),
    }));
}

#[cfg(not(target_os = "linux"))]
fn fork_and_watch() {}

/// A process forked without exec watches with a thread of its own; its parent's watches go on.
#[test]
#[cfg(target_os = "linux")]
fn a_forked_child_watches_exits_as_its_parent_does() {
    let stats = child_stats(spawn("fork-and-watch", "unused"));
    assert_eq!(stats["child_saw_exit"], true, "{stats}");
    assert_eq!(stats["parent_stopped_early"], false, "{stats}");
    assert_eq!(stats["parent_saw_exit"], true, "{stats}");
}

fn spawn(role: &str, name: &str) -> std::process::Child {
    spawn_child(role, &[("MMF_NAME", name.to_string())])
}

#[test]
fn a_wait_ends_when_the_worker_exits_without_a_value() {
    let name = unique("stop-exit");
    let results = Channel::create(&name, 256).unwrap();
    let mut follower = Follower::open(&name, Duration::ZERO).unwrap();
    type Wait<'a> = Box<dyn FnMut(&Stop) -> bool + 'a>;
    let waits: Vec<(&str, Wait)> = vec![
        (
            "Channel::wait_for_change",
            Box::new(|stop| {
                results
                    .wait_for_change(0, Until::timeout(LONG).or(stop))
                    .is_some()
            }),
        ),
        (
            "ChannelExt::read_after",
            Box::new(|stop| {
                results
                    .read_after::<String>(0, Until::timeout(LONG).or(stop))
                    .unwrap()
                    .is_some()
            }),
        ),
        (
            "FollowerExt::read_after",
            Box::new(move |stop| {
                let mut since = 0;
                follower
                    .read_after::<String>(&mut since, Until::timeout(LONG).or(stop))
                    .unwrap()
                    .is_some()
            }),
        ),
    ];
    for (what, mut wait) in waits {
        let mut worker = spawn("exit-silently", &name);
        let stop = Stop::new();
        stop.stop_on_exit(worker.id()).unwrap();
        let started = Instant::now();
        assert!(!wait(&stop), "{what}: no value was published");
        let took = started.elapsed();
        assert!(stop.is_stopped(), "{what}: ended by the exit");
        assert!(took < PROMPT, "{what}: took {took:?}");
        // The worker slept 100 ms before it exited: the wait waited for it.
        assert!(took >= Duration::from_millis(50), "{what}: took {took:?}");
        assert_eq!(worker.wait().unwrap().code(), Some(3));
    }
    Channel::remove(&name).unwrap();
}

/// A harness's wait, ended by whichever comes first: its worker's exit, or its own shutdown.
#[test]
fn a_wait_with_two_stops_ends_at_either() {
    let name = unique("stop-two");
    let results = Channel::create(&name, 256).unwrap();
    // The worker's exit first.
    let mut worker = spawn("exit-silently", &name);
    let exit = Stop::on_exit_of(&worker).unwrap();
    let shutdown = Stop::new();
    let until = Until::timeout(LONG).or(&exit).or(&shutdown);
    let started = Instant::now();
    assert_eq!(results.wait_for_change(0, &until), None);
    assert!(started.elapsed() < PROMPT);
    assert_eq!(until.stop_reason(), Some(StopReason::Exited(worker.id())));
    assert_eq!(shutdown.reason(), None);
    assert_eq!(worker.wait().unwrap().code(), Some(3));
    // The shutdown first, from another thread, while the worker runs on.
    let mut sleeper = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let exit = Stop::on_exit_of(&sleeper).unwrap();
    let shutdown = Stop::new();
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let mut follower = Follower::open(&name, Duration::ZERO).unwrap();
            let mut since = 0;
            let until = Until::timeout(LONG).or(&exit).or(&shutdown);
            follower.read_after::<String>(&mut since, &until).unwrap()
        });
        std::thread::sleep(Duration::from_millis(50));
        shutdown.stop();
        assert_eq!(waiter.join().unwrap(), None);
    });
    assert_eq!(exit.reason(), None);
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    Channel::remove(&name).unwrap();
}

#[test]
fn a_value_published_before_the_exit_is_still_read() {
    let name = unique("stop-last-words");
    let results = Channel::create(&name, 256).unwrap();
    let mut worker = spawn("publish-then-exit", &name);
    let stop = Stop::new();
    stop.stop_on_exit(worker.id()).unwrap();
    let started = Instant::now();
    while !stop.is_stopped() {
        assert!(started.elapsed() < PROMPT, "the worker's exit was not seen");
        std::thread::sleep(Duration::from_millis(1));
    }
    // Stopped, and the value is there: a stop cuts a wait short, it does not hide a value.
    let (meta, text) = results
        .read_after::<String>(0, Until::from(&stop))
        .unwrap()
        .expect("the value published before the exit");
    assert_eq!((meta.generation, text.as_str()), (1, "last words"));
    // Nothing newer: a stopped wait returns at once.
    let started = Instant::now();
    assert_eq!(
        results.wait_for_change(1, Until::timeout(LONG).or(&stop)),
        None
    );
    assert!(started.elapsed() < PROMPT);
    assert!(worker.wait().unwrap().success());
    Channel::remove(&name).unwrap();
}

#[test]
fn opening_a_follower_ends_when_the_would_be_creator_exits() {
    let name = unique("stop-never-created");
    let mut worker = spawn("exit-silently", &name);
    let stop = Stop::new();
    stop.stop_on_exit(worker.id()).unwrap();
    let started = Instant::now();
    let opened = Follower::open(&name, Until::timeout(LONG).or(&stop));
    let pid = worker.id();
    match opened {
        Err(e @ mmf::channel::Error::Stopped { .. }) => {
            assert!(
                matches!(e, mmf::channel::Error::Stopped { reason: StopReason::Exited(p), .. } if p == pid),
                "{e:?}"
            );
            let said = e.to_string();
            assert!(said.contains(&format!("process {pid} exited")), "{said}");
            assert!(said.contains(&name), "{said}");
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < PROMPT);
    assert!(stop.is_stopped());
    assert_eq!(worker.wait().unwrap().code(), Some(3));
}

/// Runs `wait` on another thread, stops it after 50 ms, and asserts that it returned after the
/// stop (not before: it waited) and soon after, with what a timeout gives (`false`).
fn stopped_by_hand(what: &str, wait: impl FnOnce(&Stop) -> bool + Send) {
    let stop = Stop::new();
    std::thread::scope(|s| {
        let waiter = s.spawn(|| (wait(&stop), Instant::now()));
        std::thread::sleep(Duration::from_millis(50));
        let stopped = Instant::now();
        stop.stop();
        let (got, returned) = waiter.join().unwrap();
        assert!(!got, "{what}: nothing to return");
        assert!(returned >= stopped, "{what}: returned before the stop");
        let took = returned - stopped;
        assert!(took < PROMPT, "{what}: took {took:?} after the stop");
    });
}

#[test]
fn a_stop_from_another_thread_ends_every_kind_of_wait() {
    let name = unique("stop-by-hand");
    let ch = Channel::create(&name, 64).unwrap();
    ch.publish_str("first").unwrap();
    let read_only = Options::new().read_only(true).open(&name).unwrap();
    let forever = |stop: &Stop| Until::from(stop);
    stopped_by_hand("futex wait", |stop| {
        ch.wait_for_change(1, forever(stop)).is_some()
    });
    stopped_by_hand("polling wait of a read-only handle", |stop| {
        read_only.wait_for_change(1, forever(stop)).is_some()
    });
    stopped_by_hand("read_next_into", |stop| {
        let mut buf = Vec::new();
        ch.read_next_into(&mut buf, forever(stop))
            .unwrap()
            .is_some()
    });
    stopped_by_hand("Channel::read_after_into", |stop| {
        let mut buf = Vec::new();
        ch.read_after_into(1, &mut buf, forever(stop))
            .unwrap()
            .is_some()
    });
    let mut follower = Follower::open(&name, Duration::ZERO).unwrap();
    stopped_by_hand("Follower::wait", |stop| {
        follower.wait(1, forever(stop)).unwrap().is_some()
    });
    stopped_by_hand("Follower::wait_past a refused value", |stop| {
        follower
            .wait_past(1, Some(1), forever(stop))
            .unwrap()
            .is_some()
    });
    stopped_by_hand("Follower::read_after_into", |stop| {
        let (mut since, mut buf) = (1, Vec::new());
        follower
            .read_after_into(&mut since, &mut buf, forever(stop))
            .unwrap()
            .is_some()
    });
    stopped_by_hand("Follower::open of a missing name", |stop| {
        Follower::open(format!("{name}-missing"), forever(stop)).is_ok()
    });
    // A stop turned before the wait: at once, but for a value already newer.
    let stop = Stop::new();
    stop.stop();
    assert_eq!(ch.wait_for_change(0, forever(&stop)), Some(1));
    assert_eq!(ch.wait_for_change(1, forever(&stop)), None);
    Channel::remove(&name).unwrap();
}

/// A sleeper re-checks its bound every 100 ms whatever wakes it (`wait.rs`'s `MAX_SLEEP`), so
/// a stop would end a wait within 100 ms even if nothing woke it: the stop's own wake is what
/// ends it at once. Told apart by the quickest of five tries (the machine is shared): a stop
/// 20 ms into the wait is seen 80 ms later at the re-check, well under 1 ms with the wake.
#[test]
fn a_stop_wakes_the_sleeper_rather_than_waiting_for_its_recheck() {
    let ch = Channel::anonymous(64).unwrap();
    let quickest = (0..5)
        .map(|_| {
            let stop = Stop::new();
            std::thread::scope(|s| {
                let waiter = s.spawn(|| {
                    let _ = ch.wait_for_change(0, Until::from(&stop));
                    Instant::now()
                });
                std::thread::sleep(Duration::from_millis(20));
                let stopped = Instant::now();
                stop.stop();
                waiter.join().unwrap().duration_since(stopped)
            })
        })
        .min()
        .unwrap();
    assert!(
        quickest < Duration::from_millis(40),
        "quickest {quickest:?}"
    );
}

#[test]
fn no_process_to_watch_is_said_or_stops_at_once() {
    let stop = Stop::new();
    let err = stop.stop_on_exit(0).unwrap_err();
    assert!(
        matches!(err, mmf::channel::Error::InvalidPid { pid: 0, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("pid 0"), "{err}");
    assert!(!stop.is_stopped());
    // Past the kernel's largest pid: no such process, so it has exited already.
    let pid_max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    stop.stop_on_exit(pid_max + 1).unwrap();
    assert_eq!(stop.reason(), Some(StopReason::Exited(pid_max + 1)));
}
