//! Blocking waits across processes: woken by a writer in another process, timeouts honoured,
//! no lost wake-up over thousands of rounds, no waiter stuck when the writer is killed, and the
//! waiter count repaired when a waiter is killed.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mmf::prelude::*;
use serde_json::json;

#[test]
fn child() {
    let Some((role, name)) = child_role() else {
        return;
    };
    match role.as_str() {
        "ponger" => ponger(&name),
        "any-ponger" => any_ponger(&name),
        // As `nobody`: an open of another user's private channel, just made, with no limit on
        // how long to wait for a channel being created.
        "nobody-opens-private" => {
            become_nobody();
            let t = Instant::now();
            let opened = Options::new()
                .init_timeout(Duration::MAX)
                .read_only(true)
                .open(Location::shm(&name).unwrap());
            print_stats(&json!({
                "denied": matches!(opened, Err(mmf::channel::Error::PermissionDenied { .. })),
                "secs": t.elapsed().as_secs_f64(),
            }));
        }
        "slow-creator" => slow_creator(&name),
        // As `nobody`: a follower of another user's channel, which is being created slowly
        // (once this process has said, by a file of its own, that it is about to look).
        "nobody-follows-slow" => {
            become_nobody();
            std::fs::write(format!("/dev/shm/{name}-ready"), b"").unwrap();
            let t = Instant::now();
            let got = mmf::Follower::open(Location::shm(&name).unwrap(), Duration::from_secs(20))
                .map_err(|e| e.to_string())
                .and_then(|f| f.channel().read_string().map_err(|e| e.to_string()));
            print_stats(&json!({
                "value": format!("{got:?}"),
                "ms": t.elapsed().as_millis() as u64,
            }));
        }
        "spammer" => {
            // Until killed by its test; ended after two minutes where a failed test left it.
            let ch = Channel::open(&name).unwrap();
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(120) {
                ch.publish_raw(Tag::BYTES, &[1; 64]).unwrap();
            }
        }
        "sleeper" => {
            let ch = Channel::open(&name).unwrap();
            print_stats(&json!({ "ready": true }));
            let _ = ch.wait_for_change(ch.generation(), Duration::from_secs(60));
        }
        // A writing service's life: created 300 ms after the test says go (the channel
        // NAME-go appears: the test is about to wait), one value; then, after 300 ms more,
        // removed and created again (a restart) with another value.
        "two-lives" => {
            let t = Instant::now();
            while Channel::open(format!("{name}-go")).is_err() {
                assert!(t.elapsed() < Duration::from_secs(20), "no go");
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(Duration::from_millis(300));
            let first = Channel::create(&name, 64).unwrap();
            first.publish_str("first life").unwrap();
            std::thread::sleep(Duration::from_millis(300));
            drop(first);
            Channel::remove(&name).unwrap();
            std::thread::sleep(Duration::from_millis(100));
            Channel::create(&name, 64)
                .unwrap()
                .publish_str("second life")
                .unwrap();
        }
        // With MMF_SHM_DIR naming a directory not made, in a working directory holding a
        // channel file under the name: what opening and following the name say.
        "missing-shm-dir" => {
            // A time to wait, where the directory is missing (it is not waited for); none
            // where it is there (the channel would be).
            let there = std::path::Path::new(&std::env::var_os("MMF_SHM_DIR").unwrap()).exists();
            let wait = if there {
                Duration::ZERO
            } else {
                Duration::from_secs(20)
            };
            let t = Instant::now();
            let followed = mmf::Follower::open(&name, wait).map(|_| ());
            let followed_ms = t.elapsed().as_millis() as u64;
            let opened = Channel::open(&name).map(|_| ());
            let described = |r: &mmf::channel::Result<()>| match r {
                Err(
                    e @ mmf::channel::Error::NotFound {
                        missing_dir,
                        file_here,
                        ..
                    },
                ) => json!({
                    "missing_dir": missing_dir.as_ref().map(|d| d.display().to_string()),
                    "file_here": file_here,
                    "said": e.to_string(),
                }),
                other => json!({ "other": format!("{other:?}") }),
            };
            print_stats(&json!({
                "followed": described(&followed),
                "followed_ms": followed_ms,
                "opened": described(&opened),
            }));
        }
        other => panic!("unknown role {other}"),
    }
}

/// A reader service follows a writing service by its channel's name: waits for the channel to
/// be created by another process, reads its value, and follows it when the writer restarts
/// (removed, created again), where a handle alone would wait on the old memory for ever.
#[test]
fn a_follower_follows_a_writer_across_creation_and_restart() {
    let name = unique("follow");
    let location = Location::shm(&name).unwrap();
    let writer = spawn_child("two-lives", &[("MMF_NAME", name.clone())]);
    // The child counts its 300 ms from here, not from its own start: a test slow to get here
    // must not find the channel made already (it would not have appeared).
    let go = Channel::create(format!("{name}-go"), 64).unwrap();
    let mut f = mmf::Follower::open(&location, Duration::from_secs(10)).unwrap();
    assert!(f.appeared(), "it did not exist yet");
    drop(go);
    Channel::remove(format!("{name}-go")).unwrap();
    let first = match f.channel().generation() {
        0 => f.wait(0, Duration::from_secs(10)).unwrap(),
        g => Some(mmf::Change::Newer(g)),
    };
    assert_eq!(first, Some(mmf::Change::Newer(1)));
    assert_eq!(f.channel().read_string().unwrap(), "first life");
    // The restart: removed (a wait meanwhile keeps waiting), then created again.
    assert_eq!(
        f.wait(1, Duration::from_secs(10)).unwrap(),
        Some(mmf::Change::Replaced)
    );
    let value = match f.channel().generation() {
        0 => {
            f.wait(0, Duration::from_secs(10)).unwrap();
            f.channel().read_string().unwrap()
        }
        _ => f.channel().read_string().unwrap(),
    };
    assert_eq!(value, "second life");
    assert!(writer.wait_with_output().unwrap().status.success());
    // Nothing newer: the timeout.
    let t = Instant::now();
    assert_eq!(f.wait(1, Duration::from_millis(250)).unwrap(), None);
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    Channel::remove(&name).unwrap();
}

/// A consumer's loop with `FollowerExt::read_after`: every value of a writer in another process,
/// across its restart (the new channel's first value is generation 1, and `since` follows), and
/// nothing more at the end.
#[test]
fn a_consumer_loop_reads_each_value_across_a_writers_restart() {
    let name = unique("read-after");
    let location = Location::shm(&name).unwrap();
    let writer = spawn_child("two-lives", &[("MMF_NAME", name.clone())]);
    let go = Channel::create(format!("{name}-go"), 64).unwrap();
    let mut f = mmf::Follower::open(&location, Duration::from_secs(10)).unwrap();
    drop(go);
    Channel::remove(format!("{name}-go")).unwrap();
    let mut seen = 0;
    let mut got = Vec::new();
    while got.len() < 2 {
        let (meta, value) = f
            .read_after::<String>(&mut seen, Duration::from_secs(10))
            .unwrap()
            .expect("a value within 10 s");
        assert_eq!(seen, meta.generation);
        got.push((meta.generation, value, f.channel().incarnation()));
    }
    assert_eq!(got[0].0, 1);
    assert_eq!(got[0].1, "first life");
    assert_eq!(got[1].0, 1);
    assert_eq!(got[1].1, "second life");
    assert_ne!(got[0].2, got[1].2, "another channel, another incarnation");
    assert!(writer.wait_with_output().unwrap().status.success());
    let t = Instant::now();
    assert!(f
        .read_after::<String>(&mut seen, Duration::from_millis(200))
        .unwrap()
        .is_none());
    assert!(t.elapsed() >= Duration::from_millis(200));
    assert_eq!(seen, 1);
    Channel::remove(&name).unwrap();
}

/// A writer that crash-loops (its channel made anew over and over, a value in each) cannot
/// keep a consumer's call long past its timeout, and the consumer moves to the new channels.
/// (What bounds it is the name being looked at no more often than every 100 ms, and the call
/// taking the new channel's value, or none, once out of time; the test cannot tell which of
/// the two did it.)
#[test]
fn a_crash_looping_writer_keeps_no_call_past_its_timeout() {
    let name = unique("crash-loop");
    let location = Location::shm(&name).unwrap();
    Channel::create(&name, 64)
        .unwrap()
        .publish_str("first")
        .unwrap();
    let mut f = mmf::Follower::open(&location, Duration::ZERO).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut options = mmf::Options::new();
            options.capacity(64);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let ch = options.create_or_replace(&location).unwrap();
                ch.publish_str("again").unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let mut seen = 0;
        let mut buf = Vec::new();
        let mut replaced = 0;
        for _ in 0..10 {
            let incarnation = f.channel().incarnation();
            let t = Instant::now();
            let got = f.read_after_into(&mut seen, &mut buf, Duration::from_millis(150));
            let took = t.elapsed();
            assert!(took < Duration::from_millis(1500), "{took:?}: {got:?}");
            replaced += usize::from(f.channel().incarnation() != incarnation);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(replaced > 0, "the follower never saw the name made anew");
    });
    Channel::remove(&name).unwrap();
}

/// A name that a writer keeps removing and making anew, each file held (a shared `flock`, as a
/// creator holds it) and left empty for a moment (as a creator allocating leaves it): a
/// follower's open and its waits look again, and never end with `NotInitialized`. A review
/// found both did, now and then, when the file an open refused was removed before the look
/// that judged it, and the next one was found being made too: the first one's error stood.
#[test]
fn a_name_made_anew_again_and_again_is_waited_for_not_refused() {
    use std::os::unix::io::AsRawFd;
    let name = unique("made-anew");
    let location = Location::shm(&name).unwrap();
    let path = location.path().unwrap();
    let mut follower = {
        let ch = Channel::create(&name, 64).unwrap();
        ch.publish_str("first").unwrap();
        mmf::Follower::open(&location, Duration::ZERO).unwrap()
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    let refused = |what: &str, e: &mmf::channel::Error| {
        assert!(
            !matches!(e, mmf::channel::Error::NotInitialized { .. }),
            "{what}: {e}"
        );
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut turn = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::remove_file(&path);
                let Ok(file) = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                else {
                    continue;
                };
                // SAFETY: flock on a descriptor this closure owns, alive across the call.
                unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH) };
                turn += 1;
                std::thread::sleep(Duration::from_micros(turn % 4 * 100));
            }
        });
        // The remover stops however this thread ends (a failed assertion included), so that
        // the scope can end.
        struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let _stop = StopOnDrop(&stop);
        let t = Instant::now();
        let (mut opens, mut waits) = (0, 0);
        while t.elapsed() < Duration::from_secs(2) {
            if let Err(e) = mmf::Follower::open(&location, Duration::from_millis(30)) {
                refused("open", &e);
            }
            opens += 1;
            if let Err(e) = follower.wait(u64::MAX, Duration::from_millis(20)) {
                refused("wait", &e);
            }
            waits += 1;
        }
        eprintln!("{opens} opens and {waits} waits, none refused");
    });
    let _ = std::fs::remove_file(&path);
}

/// A consumer that restarts resumes from its saved (incarnation, generation): in the same
/// channel it goes on past the saved generation; in a channel the writer made anew meanwhile,
/// whose generation 3 is below the saved 5, from 0, taking every value of it.
#[test]
fn a_consumer_resumes_from_its_saved_incarnation_and_generation() {
    let name = unique("resume");
    let location = Location::shm(&name).unwrap();
    let resume = |saved: (u64, u64)| {
        let mut f = mmf::Follower::open(&location, Duration::ZERO).unwrap();
        let since = if f.channel().incarnation() == saved.0 {
            saved.1
        } else {
            0
        };
        let mut seen = since;
        // The channel holds its newest value only: one read gives what is new, if anything.
        let got = f
            .read_after::<String>(&mut seen, Duration::ZERO)
            .unwrap()
            .map(|(meta, v)| (meta.generation, v));
        (since, got, (f.channel().incarnation(), seen))
    };
    let old = Channel::create(&name, 64).unwrap();
    for i in 1..=5 {
        old.publish_str(&format!("old {i}")).unwrap();
    }
    let (_, _, saved) = resume((0, 0));
    assert_eq!(saved, (old.incarnation(), 5));
    old.publish_str("old 6").unwrap();
    let (since, got, saved) = resume(saved);
    assert_eq!((since, got), (5, Some((6, "old 6".to_owned()))));
    // The writer restarts and publishes three values while the consumer is down.
    drop(old);
    Channel::remove(&name).unwrap();
    let new = Channel::create(&name, 64).unwrap();
    for i in 1..=3 {
        new.publish_str(&format!("new {i}")).unwrap();
    }
    let (since, got, saved) = resume(saved);
    assert_eq!((since, got), (0, Some((3, "new 3".to_owned()))));
    assert_eq!(saved, (new.incarnation(), 3));
    // Taken from the saved generation alone (6, of the old channel), nothing would be new.
    let mut f = mmf::Follower::open(&location, Duration::ZERO).unwrap();
    let mut stale = 6;
    assert!(f
        .read_after::<String>(&mut stale, Duration::ZERO)
        .unwrap()
        .is_none());
    Channel::remove(&name).unwrap();
}

/// The case a hand-written loop over `wait` gets wrong: the name leads to a new channel, which
/// holds no value yet when the call's timeout passes. `since` is 0 from then on, so that the
/// new channel's first values (generations the old one passed long ago) are not skipped.
#[test]
fn a_restart_without_a_value_yet_starts_the_count_again() {
    let name = unique("read-after-restart");
    let location = Location::shm(&name).unwrap();
    let old = Channel::create(&name, 64).unwrap();
    for i in 0..5 {
        old.publish_str(&format!("old {i}")).unwrap();
    }
    let mut f = mmf::Follower::open(&location, Duration::ZERO).unwrap();
    let mut seen = 0;
    let mut buf = Vec::new();
    let meta = f
        .read_after_into(&mut seen, &mut buf, Duration::ZERO)
        .unwrap()
        .unwrap();
    assert_eq!((meta.generation, seen, &buf[..]), (5, 5, &b"old 4"[..]));
    drop(old);
    Channel::remove(&name).unwrap();
    let new = Channel::create(&name, 64).unwrap();
    assert!(f
        .read_after_into(&mut seen, &mut buf, Duration::from_millis(300))
        .unwrap()
        .is_none());
    assert_eq!(seen, 0, "the new channel's values are all new");
    new.publish_str("new 1").unwrap();
    let meta = f
        .read_after_into(&mut seen, &mut buf, Duration::from_secs(5))
        .unwrap()
        .unwrap();
    assert_eq!((meta.generation, &buf[..]), (1, &b"new 1"[..]));
    Channel::remove(&name).unwrap();
}

/// A value a read finds damaged (a checksum that does not match, as a stray write leaves it) is
/// an error, `since` moves past it, and the loop is not given it again: the next call waits for
/// the publish that mends it. A stray write of `latest` far ahead of the writer's count does
/// not hold the loop there.
#[test]
fn a_damaged_value_is_said_once_and_the_loop_goes_on() {
    use std::os::unix::fs::FileExt;
    let name = unique("read-after-damaged");
    let location = Location::shm(&name).unwrap();
    let ch = checksummed(&location);
    let mut f = mmf::Follower::open(&location, Duration::ZERO).unwrap();
    ch.publish_raw(Tag::TEXT, SLOT_VALUE).unwrap();
    let (file, at) = find_in_file(&location.path().unwrap(), SLOT_VALUE);
    file.write_at(&[SLOT_VALUE[0] ^ 1], at).unwrap();
    let (mut seen, mut buf) = (0, Vec::new());
    let err = f
        .read_after_into(&mut seen, &mut buf, Duration::from_secs(5))
        .unwrap_err();
    assert!(err.mended_by_publish(), "{err}");
    assert_eq!(seen, 0, "the count is the last value given out");
    let t = Instant::now();
    assert!(f
        .read_after_into(&mut seen, &mut buf, Duration::from_millis(100))
        .unwrap()
        .is_none());
    assert!(t.elapsed() >= Duration::from_millis(100));
    ch.publish_str("mended").unwrap();
    let meta = f
        .read_after_into(&mut seen, &mut buf, Duration::from_secs(5))
        .unwrap()
        .unwrap();
    assert_eq!((meta.generation, &buf[..]), (2, &b"mended"[..]));

    // A stray write of `latest` (docs/FORMAT.md §4: byte 128), far ahead of the writer's count:
    // its value is refused, then the writer's next publish, below the stray generation, is
    // read (a review found the loop's count moved to the stray generation, and every value
    // after it waited for in vain).
    file.write_at(&((1_000_000u64 << 8) | 0xff).to_le_bytes(), 128)
        .unwrap();
    assert!(f
        .read_after_into(&mut seen, &mut buf, Duration::from_secs(5))
        .is_err());
    assert_eq!(seen, 2);
    ch.publish_str("after the stray write").unwrap();
    let meta = f
        .read_after_into(&mut seen, &mut buf, Duration::from_secs(5))
        .unwrap()
        .expect("the writer's next value");
    assert_eq!(
        (meta.generation, seen, &buf[..]),
        (3, 3, &b"after the stray write"[..])
    );
    ch.publish_str("and the next").unwrap();
    let meta = f
        .read_after_into(&mut seen, &mut buf, Duration::from_secs(5))
        .unwrap()
        .unwrap();
    assert_eq!((meta.generation, &buf[..]), (4, &b"and the next"[..]));
    // One behind the loop's count (a review's first fix gave old values out again there, and
    // the CLI's watch spun): nothing new, then the writer's next value.
    file.write_at(&((2u64 << 8) | 0xff).to_le_bytes(), 128)
        .unwrap();
    assert!(f
        .read_after_into(&mut seen, &mut buf, Duration::from_millis(200))
        .unwrap()
        .is_none());
    ch.publish_str("fifth").unwrap();
    let meta = f
        .read_after_into(&mut seen, &mut buf, Duration::from_secs(5))
        .unwrap()
        .unwrap();
    assert_eq!((meta.generation, &buf[..]), (5, &b"fifth"[..]));
    // Equal to the writer's next generation: refused, and the writer's publish of it, which
    // leaves `latest` as the stray write left it, is a value all the same (it was skipped:
    // the loop waited for a seventh).
    file.write_at(&((6u64 << 8) | 0xff).to_le_bytes(), 128)
        .unwrap();
    assert!(f
        .read_after_into(&mut seen, &mut buf, Duration::from_secs(5))
        .is_err());
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(50));
            ch.publish_str("sixth").unwrap();
        });
        let meta = f
            .read_after_into(&mut seen, &mut buf, Duration::from_secs(5))
            .unwrap()
            .expect("the writer's sixth value");
        assert_eq!((meta.generation, &buf[..]), (6, &b"sixth"[..]));
    });
    Channel::remove(&name).unwrap();
}

/// A follower looked at the name only when a wait ran out: a writer that went on publishing to
/// the old channel after a new one had taken its name (a service's old instance still
/// stopping) kept it on the old channel for as long as it published. It looks at least every
/// 100 ms while values come too.
#[test]
fn a_follower_moves_to_a_replacement_while_the_old_channel_is_still_published() {
    let name = unique("replaced-busy");
    let location = Location::shm(&name).unwrap();
    let old = Channel::create(&name, 64).unwrap();
    old.publish_str("old").unwrap();
    let mut f = mmf::Follower::open(&location, Duration::from_secs(10)).unwrap();
    let new = Options::new()
        .capacity(64)
        .create_or_replace(&location)
        .unwrap();
    new.publish_str("new").unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (newer, replaced) = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                old.publish_str("old").unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        let (mut seen, mut newer) = (1, 0);
        let t = Instant::now();
        let replaced = loop {
            match f.wait(seen, Duration::from_secs(5)).unwrap() {
                Some(mmf::Change::Newer(g)) => (seen, newer) = (g, newer + 1),
                Some(mmf::Change::Replaced) => break true,
                Some(other) => panic!("a change this test does not know: {other:?}"),
                None => break false,
            }
            if t.elapsed() > Duration::from_secs(10) {
                break false;
            }
        };
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (newer, replaced)
    });
    assert!(replaced, "still on the old channel after {newer} values");
    assert_eq!(f.channel().read_string().unwrap(), "new");
    Channel::remove(&name).unwrap();
}

/// What cannot appear by waiting is an error at once: a file path through a file; a name that
/// stays missing is `NotFound` once the timeout passes.
#[test]
fn a_follower_does_not_wait_for_what_cannot_appear() {
    let t = Instant::now();
    let file = std::env::temp_dir().join(unique("a-file"));
    std::fs::write(&file, b"not a directory").unwrap();
    let through_a_file = Location::file(file.join("x.mmf"));
    let got = mmf::Follower::open(&through_a_file, Duration::from_secs(20));
    assert!(
        matches!(&got, Err(mmf::channel::Error::Io { cause, .. })
            if cause.kind() == std::io::ErrorKind::NotADirectory),
        "{got:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    std::fs::remove_file(&file).unwrap();
    // An anonymous channel no other process can create.
    assert!(matches!(
        mmf::Follower::open(&Location::Anonymous, Duration::from_secs(20)),
        Err(mmf::channel::Error::NotFound { waited: None, .. })
    ));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let t = Instant::now();
    let never = Location::shm(&unique("never")).unwrap();
    let got = mmf::Follower::open(&never, Duration::from_millis(200));
    let elapsed = t.elapsed();
    assert!(
        (Duration::from_millis(200)..Duration::from_secs(5)).contains(&elapsed),
        "{elapsed:?}"
    );
    // It says that it waited, and how long, so that a timeout is not taken for a typo.
    let Err(
        e @ mmf::channel::Error::NotFound {
            waited: Some(waited),
            ..
        },
    ) = got
    else {
        panic!("{got:?}")
    };
    assert!(
        (Duration::from_millis(200)..=elapsed).contains(&waited),
        "{waited:?} {elapsed:?}"
    );
    let msg = e.to_string();
    // In milliseconds below a second, in seconds (tenths) from one on a slow machine.
    let said = if waited < Duration::from_secs(1) {
        format!("{} ms", waited.as_millis())
    } else {
        format!("{}", waited.as_millis() / 1000)
    };
    assert!(
        msg.contains(&format!("appeared in the {said}")) && msg.contains(" it was waited for"),
        "{msg}"
    );
    // One look waits for nothing, and says the plain thing.
    let msg = mmf::Follower::open(&never, Duration::ZERO)
        .unwrap_err()
        .to_string();
    assert!(
        msg.ends_with(
            "; check the name, or create the channel first (`Follower::open` with a time to \
             wait opens it once it appears)"
        ),
        "{msg}"
    );
}

/// A shared-memory directory that `MMF_SHM_DIR` names and that does not exist is said at once,
/// by `Channel::open` and by a `Follower::open` with a time to wait: mmf never makes it, so a
/// mistyped one would be waited for in silence. The message names the directory, where it
/// advised the very `Follower::open` that had just failed (a Rust user's review). A channel
/// file of the name in the working directory is pointed at (a name without '/' is never a
/// file path); another file is not.
#[test]
fn a_missing_shm_dir_is_said_at_once_and_named() {
    let top = std::env::temp_dir().join(unique("no-shm-dir"));
    let missing = top.join("shm");
    let here = top.join("here");
    std::fs::create_dir_all(&here).unwrap();
    let name = "state.mmf";
    let run = |cwd: &std::path::Path| {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap());
        child
            .args(["--exact", "child", "--nocapture", "--test-threads=1", "-q"])
            .env("MMF_CHILD", "missing-shm-dir")
            .env("MMF_NAME", name)
            .env("MMF_SHM_DIR", &missing)
            .current_dir(cwd)
            .stdout(std::process::Stdio::piped());
        child_stats(child.spawn().unwrap())
    };
    // A channel's file here, under the name: a file channel made at `./state.mmf`.
    Channel::create(Location::file(here.join(name)), 64).unwrap();
    let stats = run(&here);
    assert!(stats["followed_ms"].as_u64().unwrap() < 5_000, "{stats}");
    for call in ["followed", "opened"] {
        let r = &stats[call];
        assert_eq!(
            r["missing_dir"],
            json!(missing.display().to_string()),
            "{stats}"
        );
        let said = r["said"].as_str().unwrap();
        assert!(
            said.contains(&format!(
                "the shared-memory directory {} does not exist either (MMF_SHM_DIR names it",
                missing.display()
            )) && !said.contains("Follower::open"),
            "{said}"
        );
        assert_eq!(r["file_here"], json!(true), "{stats}");
    }
    // Another file of the name is no channel: not pointed at.
    let plain = top.join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    std::fs::write(plain.join(name), b"a user's file").unwrap();
    std::fs::create_dir_all(&missing).unwrap();
    let stats = run(&plain);
    assert_eq!(stats["opened"]["file_here"], json!(false), "{stats}");
    assert_eq!(stats["opened"]["missing_dir"], json!(null), "{stats}");
    std::fs::remove_file(plain.join(name)).unwrap();
    // Nor a FIFO of the name, which is not opened: an open of it for reading waited for a
    // writer, for ever (the diff review's).
    let made = std::process::Command::new("mkfifo")
        .arg(plain.join(name))
        .status()
        .is_ok_and(|s| s.success());
    if made {
        let stats = run(&plain);
        assert_eq!(stats["opened"]["file_here"], json!(false), "{stats}");
        std::fs::remove_file(plain.join(name)).unwrap();
    } else {
        skipped("the FIFO case: no mkfifo");
    }
    // With the channel file here and the directory there, the message points at the file.
    let stats = run(&here);
    let said = stats["opened"]["said"].as_str().unwrap();
    assert!(
        said.ends_with(
            "in shared memory; a name without '/' is a shared-memory channel, so for the file \
             here say './state.mmf'"
        ),
        "{said}"
    );
    std::fs::remove_dir_all(&top).unwrap();
}

/// A file path into a directory that does not exist yet is waited for, as a missing name is: a
/// service makes its directory when it starts (`mkdir -p /run/app`), after a reader that
/// started first began to wait. A follower failed at once there before.
#[test]
fn a_follower_waits_for_a_directory_made_after_it_started() {
    let top = std::env::temp_dir().join(unique("later-dir"));
    let location = Location::file(top.join("run/app/state.mmf"));
    assert!(location.can_appear());
    let t = Instant::now();
    let got = mmf::Follower::open(&location, Duration::from_millis(300));
    assert!(
        matches!(got, Err(mmf::channel::Error::NotFound { .. })),
        "{got:?}"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    let service = std::thread::spawn({
        let top = top.clone();
        let location = location.clone();
        move || {
            std::thread::sleep(Duration::from_millis(300));
            std::fs::create_dir_all(top.join("run/app")).unwrap();
            let writer = Channel::create(&location, 64).unwrap();
            writer.publish_raw(mmf::Tag::TEXT, b"started").unwrap();
            writer
        }
    });
    let mut f = mmf::Follower::open(&location, Duration::from_secs(20)).unwrap();
    assert!(f.appeared());
    let writer = service.join().unwrap();
    if f.channel().generation() == 0 {
        f.wait(0, Duration::from_secs(10))
            .unwrap()
            .expect("published");
    }
    assert_eq!(f.channel().read_string().unwrap(), "started");
    drop((f, writer));
    std::fs::remove_dir_all(&top).unwrap();
}

/// A follower made with `Options::follow` opens every channel under the name with its options,
/// the one after a writer's restart too: read-only here, so it takes none of the channel's
/// reader-pin entries, which are left to the processes that need them.
#[test]
fn a_follower_opens_each_channel_with_its_options() {
    let name = unique("follow-options");
    let location = Location::shm(&name).unwrap();
    let writer = Channel::create(&location, 64).unwrap();
    writer.publish_raw(Tag::TEXT, b"first").unwrap();
    let mut f = Options::new()
        .read_only(true)
        .follow(&location, Duration::from_secs(1))
        .unwrap();
    assert!(f.channel().is_read_only());
    assert_eq!(f.channel().read_string().unwrap(), "first");
    assert!(!f.channel().is_pinned());
    drop(writer);
    Channel::remove(&location).unwrap();
    let restart = restart_writer(&location, Duration::from_millis(50), "restarted");
    let change = loop {
        match f.wait(1, Duration::from_secs(20)).unwrap() {
            Some(change) => break change,
            None => assert!(f.is_gone()),
        }
    };
    assert_eq!(change, mmf::Change::Replaced);
    let writer = restart.join().unwrap();
    assert_eq!(f.channel().incarnation(), writer.incarnation());
    assert!(f.channel().is_read_only(), "the restart's channel too");
    if f.channel().generation() == 0 {
        f.wait(0, Duration::from_secs(10))
            .unwrap()
            .expect("published");
    }
    assert_eq!(f.channel().read_string().unwrap(), "restarted");
    // Not read-only where the options do not say so.
    let f = mmf::Follower::open(&location, Duration::ZERO).unwrap();
    assert!(!f.channel().is_read_only());
    drop((f, writer));
    Channel::remove(&location).unwrap();
}

/// Answers every ping (generation g on `NAME-ping`) with a pong of generation g.
fn ponger(name: &str) {
    let ping = Channel::open(format!("{name}-ping")).unwrap();
    let pong = Channel::open(format!("{name}-pong")).unwrap();
    let rounds: u64 = std::env::var("MMF_ROUNDS").unwrap().parse().unwrap();
    let mut seen = 0;
    let mut timeouts = 0u64;
    while seen < rounds {
        match ping.wait_for_change(seen, Duration::from_secs(5)) {
            Some(g) => {
                seen = g;
                pong.publish_raw(Tag::BYTES, &g.to_le_bytes()).unwrap();
            }
            None => timeouts += 1,
        }
        // A test that failed sends nothing more: do not outlive it.
        assert!(timeouts < 3, "no ping for 15 s");
    }
    print_stats(&json!({ "timeouts": timeouts }));
}

/// Answers every ping, which comes on one of `NAME-ping0` .. `NAME-ping2`, with a pong of the
/// ping's number (1, 2, ...) on `NAME-pong`: one `wait_any` on the three pings a round.
fn any_ponger(name: &str) {
    let pings: Vec<Channel> = (0..3)
        .map(|k| Channel::open(format!("{name}-ping{k}")).unwrap())
        .collect();
    let pong = Channel::open(format!("{name}-pong")).unwrap();
    let rounds: u64 = std::env::var("MMF_ROUNDS").unwrap().parse().unwrap();
    let mut seen = [0u64; 3];
    let mut timeouts = 0u64;
    let mut answered = 0u64;
    while answered < rounds {
        let waits: Vec<(&Channel, u64)> = pings.iter().zip(seen).collect();
        match mmf::wait_any(&waits, Duration::from_secs(5)) {
            Some((k, g)) => {
                seen[k] = g;
                answered += 1;
                pong.publish_raw(Tag::BYTES, &answered.to_le_bytes())
                    .unwrap();
            }
            None => timeouts += 1,
        }
        assert!(timeouts < 3, "no ping for 15 s");
    }
    print_stats(&json!({ "timeouts": timeouts, "seen": seen }));
}

/// Returns once a wait on `ch` is registered in its header (a child's, started just before),
/// or fails the test after 20 s.
fn until_a_waiter(ch: &Channel) {
    let t = Instant::now();
    while ch.info().waiters == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the child never waited"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn pair(what: &str) -> (String, Channel, Channel) {
    let name = unique(what);
    let ping = Channel::create(format!("{name}-ping"), 64).unwrap();
    let pong = Channel::create(format!("{name}-pong"), 64).unwrap();
    (name, ping, pong)
}

fn cleanup(name: &str) {
    let _ = Channel::remove(format!("{name}-ping"));
    let _ = Channel::remove(format!("{name}-pong"));
    let _ = Channel::remove(name);
}

#[test]
fn no_lost_wake_up_over_many_rounds() {
    // Both sides block (no spinning). A lost wake-up does not show as a timeout: a sleeper
    // looks at `latest` again after at most 100 ms (`wait::MAX_SLEEP`), so it shows as a round
    // trip of about that long. A preempted process makes a few slow rounds on a busy machine;
    // writers that lost every wake-up made all of them slow (a review forced that: each round
    // took ~100 ms, and this test, which then counted only timeouts, passed).
    let rounds = 20_000u64;
    let slow_bound = rounds / 100;
    let mut slow = 0u64;
    let (name, ping, pong) = pair("rounds");
    let child = spawn_child(
        "ponger",
        &[
            ("MMF_NAME", name.clone()),
            ("MMF_ROUNDS", rounds.to_string()),
        ],
    );
    let started = Instant::now();
    let mut timeouts = 0;
    for g in 1..=rounds {
        let round = Instant::now();
        ping.publish_raw(Tag::BYTES, &g.to_le_bytes()).unwrap();
        loop {
            match pong.wait_for_change(g - 1, Duration::from_secs(5)) {
                Some(got) => {
                    assert_eq!(got, g);
                    break;
                }
                None => timeouts += 1,
            }
        }
        if round.elapsed() >= Duration::from_millis(50) {
            slow += 1;
            assert!(
                slow <= slow_bound,
                "{slow} of {g} round trips took 50 ms or more: wake-ups are lost"
            );
        }
    }
    let elapsed = started.elapsed();
    let stats = child_stats(child);
    cleanup(&name);
    eprintln!(
        "{rounds} blocking round trips in {elapsed:?} ({:?} each), {slow} of them 50 ms or more",
        elapsed / rounds as u32
    );
    assert_eq!(timeouts, 0, "a wake-up was lost");
    assert_eq!(stats["timeouts"], 0, "a wake-up was lost in the child");
    assert_eq!(pong.info().waiters, 0, "every waiter unregistered");
}

/// A service waits on several channels with one `wait_any`: a ping on any of three channels,
/// from another process, wakes it at once, round after round, and every one of them counts the
/// sleeper (or a writer of that channel would not wake it: a round would take the sleeper's
/// 100 ms re-check, as in `no_lost_wake_up_over_many_rounds`).
#[test]
fn wait_any_is_woken_by_a_writer_of_any_channel_in_another_process() {
    let rounds = 3_000u64;
    let slow_bound = rounds / 100;
    let name = unique("any");
    let pings: Vec<Channel> = (0..3)
        .map(|k| Channel::create(format!("{name}-ping{k}"), 64).unwrap())
        .collect();
    let pong = Channel::create(format!("{name}-pong"), 64).unwrap();
    let child = spawn_child(
        "any-ponger",
        &[
            ("MMF_NAME", name.clone()),
            ("MMF_ROUNDS", rounds.to_string()),
        ],
    );
    // Each ping channel counts the child's one sleep as its waiter.
    for ping in &pings {
        until_a_waiter(ping);
    }
    let mut slow = 0u64;
    let mut sent = [0u64; 3];
    for round in 1..=rounds {
        // Every channel in turn, the last one first: the index returned is not only the first.
        let k = (3 - round % 3) as usize % 3;
        let t = Instant::now();
        pings[k]
            .publish_raw(Tag::BYTES, &round.to_le_bytes())
            .unwrap();
        sent[k] += 1;
        assert_eq!(
            pong.wait_for_change(round - 1, Duration::from_secs(5)),
            Some(round),
            "round {round}: no pong"
        );
        if t.elapsed() >= Duration::from_millis(50) {
            slow += 1;
            assert!(
                slow <= slow_bound,
                "{slow} of {round} round trips took 50 ms or more: wake-ups are lost"
            );
        }
    }
    let stats = child_stats(child);
    assert_eq!(stats["timeouts"], 0, "a wake-up was lost in the child");
    assert_eq!(
        stats["seen"],
        json!(sent),
        "each ping seen on its own channel"
    );
    for ping in &pings {
        assert_eq!(
            ping.info().waiters,
            0,
            "every channel's waiter unregistered"
        );
    }
    for k in 0..3 {
        let _ = Channel::remove(format!("{name}-ping{k}"));
    }
    cleanup(&name);
}

/// `wait_any` ends at its timeout and at a `Stop`, unregistered from every channel; with nothing
/// to wait on it still waits out its bound; the first channel in the order given wins where
/// several moved; one channel given twice, or read-only handles (which poll), work too.
#[test]
fn wait_any_ends_at_its_bound_and_answers_in_order() {
    let name = unique("anybound");
    let a = Channel::create(format!("{name}-a"), 64).unwrap();
    let b = Channel::create(format!("{name}-b"), 64).unwrap();
    let unregistered = || {
        assert_eq!(a.info().waiters, 0);
        assert_eq!(b.info().waiters, 0);
    };
    for ms in [0u64, 30, 120] {
        let t = Instant::now();
        assert_eq!(
            mmf::wait_any(&[(&a, 0), (&b, 0)], Duration::from_millis(ms)),
            None
        );
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(ms), "{ms} ms: after {took:?}");
        assert!(
            took < Duration::from_millis(ms + 500),
            "{ms} ms: after {took:?}"
        );
        unregistered();
    }
    let t = Instant::now();
    assert_eq!(mmf::wait_any(&[], Duration::from_millis(50)), None);
    assert!(
        t.elapsed() >= Duration::from_millis(50),
        "nothing to wait on: still waits"
    );

    // A stop ends a sleep meant to last a minute.
    let stop = Stop::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            until_a_waiter(&b);
            stop.stop();
        });
        let t = Instant::now();
        let until = Until::timeout(Duration::from_secs(60)).or(&stop);
        assert_eq!(mmf::wait_any(&[(&a, 0), (&b, 0)], until), None);
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "stopped after {:?}",
            t.elapsed()
        );
    });
    unregistered();

    // Both moved: the first in the order given, whichever moved first.
    b.publish_raw(Tag::TEXT, b"b").unwrap();
    a.publish_raw(Tag::TEXT, b"a").unwrap();
    assert_eq!(
        mmf::wait_any(&[(&a, 0), (&b, 0)], Duration::ZERO),
        Some((0, 1))
    );
    assert_eq!(
        mmf::wait_any(&[(&b, 0), (&a, 0)], Duration::ZERO),
        Some((0, 1))
    );
    assert_eq!(
        mmf::wait_any(&[(&a, 1), (&b, 0)], Duration::ZERO),
        Some((1, 1))
    );

    // What `wait_any(waits)` returns when `to` is published to once `a` counts the waiter.
    let woken_by = |to: &Channel, waits: &[(&Channel, u64)]| {
        std::thread::scope(|s| {
            s.spawn(|| {
                until_a_waiter(&a);
                to.publish_raw(Tag::TEXT, b"next").unwrap();
            });
            mmf::wait_any(waits, Duration::from_secs(20))
        })
    };
    // One channel twice (two sinces): woken, and counted off as often as it was counted.
    assert_eq!(woken_by(&a, &[(&a, 1), (&a, 1)]), Some((0, 2)));
    unregistered();

    // A read-only handle polls: a publish there is seen beside a handle that sleeps.
    let reader = Options::new()
        .read_only(true)
        .open(Location::shm(&format!("{name}-b")).unwrap())
        .unwrap();
    assert_eq!(woken_by(&b, &[(&a, 2), (&reader, 1)]), Some((1, 2)));
    unregistered();
    drop(reader);
    let _ = Channel::remove(format!("{name}-a"));
    let _ = Channel::remove(format!("{name}-b"));
}

#[test]
fn a_timeout_is_honoured() {
    let ch = Channel::create(unique("timeout"), 64).unwrap();
    for ms in [0u64, 30, 120] {
        let t = Instant::now();
        assert_eq!(ch.wait_for_change(0, Duration::from_millis(ms)), None);
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(ms),
            "{ms} ms: returned after {took:?}"
        );
        assert!(
            took < Duration::from_millis(ms + 500),
            "{ms} ms: returned after {took:?}"
        );
    }
    ch.publish_raw(Tag::TEXT, b"x").unwrap();
    assert_eq!(
        ch.wait_for_change(0, Duration::ZERO),
        Some(1),
        "already moved: no wait"
    );
    Channel::remove(ch.location().to_string()).unwrap();
}

#[test]
fn a_writer_in_another_process_wakes_a_waiter() {
    let (name, ping, pong) = pair("wake");
    let child = spawn_child(
        "ponger",
        &[("MMF_NAME", name.clone()), ("MMF_ROUNDS", "1".into())],
    );
    // The clock starts once the child waits: a child slow to start on a loaded machine
    // counted against the wake's second when this slept 100 ms instead.
    until_a_waiter(&ping);
    let t = Instant::now();
    ping.publish_raw(Tag::BYTES, b"go").unwrap();
    assert_eq!(pong.wait_for_change(0, Duration::from_secs(5)), Some(1));
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "woken after {:?}",
        t.elapsed()
    );
    child_stats(child);
    cleanup(&name);
}

#[test]
fn a_killed_writer_leaves_no_waiter_stuck() {
    let name = unique("killed");
    let ch = Channel::create(&name, 64).unwrap();
    let mut writer = spawn_child("spammer", &[("MMF_NAME", name.clone())]);
    let t = Instant::now();
    while ch.generation() < 1000 {
        if t.elapsed() > Duration::from_secs(120) {
            let _ = writer.kill();
            panic!("the spammer published {} values in 120 s", ch.generation());
        }
        std::thread::yield_now();
    }
    writer.kill().unwrap();
    writer.wait().unwrap();
    let g = ch.generation();
    let t = Instant::now();
    assert_eq!(ch.wait_for_change(g, Duration::from_millis(200)), None);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "waited {:?}",
        t.elapsed()
    );
    // The last committed value is intact and a new writer (this process) publishes at once,
    // taking the lock over if the writer died holding it.
    assert_eq!(ch.read_raw().unwrap().1, [1; 64]);
    let t = Instant::now();
    ch.publish_raw(Tag::TEXT, b"after").unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "recovered in {:?}",
        t.elapsed()
    );
    assert_eq!(ch.read_raw().unwrap().1, b"after");
    Channel::remove(&name).unwrap();
}

#[test]
fn a_killed_waiter_is_taken_off_the_count() {
    // With one reader entry the next reader must take the dead waiter's; with entries to spare
    // it takes a free one, and clears the dead waiter's on the way.
    for readers in [1, 4] {
        let name = unique("deadwaiter");
        let ch = Options::new()
            .capacity(64)
            .readers(readers)
            .create(Location::shm(&name).unwrap())
            .unwrap();
        let mut sleeper = spawn_child("sleeper", &[("MMF_NAME", name.clone())]);
        until_a_waiter(&ch);
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
        assert_eq!(ch.info().waiters, 1, "a dead waiter stays counted...");
        // ...until the next handle claims an entry.
        ch.read_raw().unwrap();
        assert!(ch.is_pinned());
        assert_eq!(
            ch.info().waiters,
            0,
            "...and is repaired when a reader claims an entry ({readers} entries)"
        );
        Channel::remove(&name).unwrap();
    }
}

/// A writer that never reads claims no entry, which would clear a killed waiter's count: its
/// publishes, whose wake-up calls then wake nobody, clear it (each paid such a call before, 15
/// times the cost of a publish, for as long as the writer ran).
#[test]
fn a_killed_waiter_is_taken_off_the_count_by_a_writer_that_never_reads() {
    let name = unique("deadwaiter-w");
    let ch = Channel::create(&name, 64).unwrap();
    let mut sleeper = spawn_child("sleeper", &[("MMF_NAME", name.clone())]);
    until_a_waiter(&ch);
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    assert_eq!(ch.info().waiters, 1, "a dead waiter stays counted...");
    let writer = Channel::open(&name).unwrap();
    writer.publish_raw(Tag::TEXT, b"to nobody").unwrap();
    assert_eq!(ch.info().waiters, 0, "...until a publish wakes nobody");
    assert!(!writer.is_pinned() && !ch.is_pinned());
    Channel::remove(&name).unwrap();
}

/// A replacement (`new --force`) or a removal of a file path while another process creates a
/// channel there waits for the channel to be made, as an open does, then replaces or removes
/// it; one still being made once the wait is over is `BeingCreated`, and left alone. Both
/// refused it as "not an mmf channel", advising to delete the file a live creator was making
/// (a chaos test: 65 of 100 races of `new` and `new --force` on ext4).
#[test]
fn a_file_path_being_created_is_waited_for_by_a_replacement_or_a_removal() {
    let dir = std::env::temp_dir().join(unique("made-at"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("job.mmf");
    let location = Location::file(&path);
    let creating = |value: &str, hold_ms: u64| {
        let _ = std::fs::remove_file(&path);
        spawn_slow_creator(path.to_str().unwrap(), value, hold_ms)
    };

    let creator = creating("first", 300);
    let ch = Options::new()
        .capacity(64)
        .init_timeout(Duration::from_secs(10))
        .create_or_replace(location.clone())
        .unwrap();
    assert!(creator.wait_with_output().unwrap().status.success());
    assert_eq!(ch.generation(), 0, "the replacement, not the channel made");
    drop(ch);

    let creator = creating("second", 50);
    Channel::remove(location.clone()).unwrap();
    assert!(creator.wait_with_output().unwrap().status.success());
    assert!(!path.exists(), "removed once made");

    let creator = creating("third", 2_000);
    let refused = Options::new()
        .capacity(64)
        .init_timeout(Duration::from_millis(100))
        .create_or_replace(location.clone())
        .unwrap_err();
    assert!(
        matches!(refused, mmf::channel::Error::BeingCreated { .. }),
        "{refused:?}"
    );
    assert!(creator.wait_with_output().unwrap().status.success());
    assert_eq!(
        Channel::open(location.clone())
            .unwrap()
            .read_string()
            .unwrap(),
        "third"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A follower's open (`read --wait`, `watch`) waits past another program's exclusive `flock` on
/// the channel's file until its own deadline, and then says so; it gave up after the open's 50
/// ms of grace, whatever its timeout (a chaos test's `read --wait --timeout 2s`).
#[test]
fn a_follower_waits_out_another_programs_lock_until_its_deadline() {
    let name = unique("locked");
    Channel::create(&name, 64)
        .unwrap()
        .publish_str("there")
        .unwrap();
    let path = Location::shm(&name).unwrap().path().unwrap();
    let held = std::fs::File::open(&path).unwrap();
    held.lock().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            held.unlock().unwrap();
        });
        let t = Instant::now();
        let f = mmf::Follower::open(&name, Duration::from_secs(20)).unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(250),
            "{:?}",
            t.elapsed()
        );
        assert!(!f.appeared(), "it was there all along");
        assert_eq!(f.channel().read_string().unwrap(), "there");
    });
    held.lock().unwrap();
    let t = Instant::now();
    let err = mmf::Follower::open(&name, Duration::from_millis(400)).unwrap_err();
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
    assert!(err.to_string().contains("exclusive lock"), "{err}");
    assert!(
        !err.to_string().contains("waited 50 ms"),
        "the whole wait said: {err}"
    );
    drop(held);
    Channel::remove(&name).unwrap();
}

/// A count above what the entries count (a peer wrote it) would make every publish pay a
/// wake-up for as long as the channel exists: the next handle to claim an entry mends a count
/// far above, writers a small one.
#[test]
fn a_waiter_count_a_peer_wrote_is_mended() {
    use std::os::unix::fs::FileExt;
    let name = unique("peercount");
    let ch = Channel::create(&name, 64).unwrap();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(ch.location().path().unwrap())
        .unwrap();
    // FORMAT.md: `waiters` is header word 60.
    for planted in [u64::MAX, 1 << 40] {
        file.write_all_at(&planted.to_le_bytes(), 480).unwrap();
        assert_eq!(ch.info().waiters, planted);
        let other = Channel::open(&name).unwrap();
        other.read_raw().unwrap();
        assert_eq!(ch.info().waiters, 0, "planted {planted:#x}");
    }
    // A count within reach of waits that are just starting is left as it is by a claim; the
    // writers, whose wake-up calls it costs, lower it once it has stayed put for a millisecond.
    file.write_all_at(&5u64.to_le_bytes(), 480).unwrap();
    Channel::open(&name).unwrap().read_raw().unwrap();
    assert_eq!(ch.info().waiters, 5);
    for _ in 0..100 {
        ch.publish_str("more").unwrap();
        std::thread::sleep(Duration::from_millis(2));
        if ch.info().waiters == 0 {
            break;
        }
    }
    assert_eq!(ch.info().waiters, 0);
    Channel::remove(&name).unwrap();
}

/// A wait whose timeout has passed before it would sleep (a zero one, say, in a polling loop)
/// does not count itself as a waiter: writers would make wake-up calls for nobody.
#[test]
fn a_wait_with_no_time_left_is_not_counted() {
    let ch = Channel::anonymous(64).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let counted = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                assert_eq!(ch.wait_for_change(ch.generation(), Duration::ZERO), None);
            }
        });
        let counted = (0..200_000).filter(|_| ch.info().waiters != 0).count();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        counted
    });
    assert_eq!(counted, 0, "seen counted in {counted} of 200000 looks");
}

/// A spin longer than the wait (`Duration::MAX` included) ends at the deadline; it used to
/// overflow `Instant` and panic.
#[test]
fn a_spin_never_outlasts_the_timeout() {
    let name = unique("longspin");
    let ch = Options::new()
        .capacity(64)
        .wait_spin(Duration::MAX)
        .create(Location::shm(&name).unwrap())
        .unwrap();
    let t = Instant::now();
    assert_eq!(ch.wait_for_change(0, Duration::from_millis(30)), None);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    Channel::remove(&name).unwrap();
}

/// A free pin entry counts no waiter: a count left in one (by a peer, or a release cut short)
/// is taken off `waiters` when the entry is claimed, or writers would wake nobody for good.
#[test]
fn claiming_a_free_entry_drops_a_stale_waiter_count() {
    use std::os::unix::fs::FileExt;
    let name = unique("stalewait");
    let ch = Options::new()
        .capacity(64)
        .readers(1)
        .create(Location::shm(&name).unwrap())
        .unwrap();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(ch.location().path().unwrap())
        .unwrap();
    // FORMAT.md: `waiters` is header word 60; entry 0's `waiting` is at 512 + 16.
    file.write_all_at(&3u64.to_le_bytes(), 480).unwrap();
    file.write_all_at(&3u64.to_le_bytes(), 512 + 16).unwrap();
    assert_eq!(ch.info().waiters, 3);
    ch.read_raw().unwrap();
    assert!(ch.is_pinned());
    assert_eq!(ch.info().waiters, 0);
    Channel::remove(&name).unwrap();
}

#[test]
fn read_only_handles_wait_by_polling() {
    with_read_only_handle(
        "rowait",
        |w| {
            w.publish_raw(Tag::TEXT, b"hi").unwrap();
        },
        |r| {
            // After generation 0, not "the next": the publish may come before this call
            // on a loaded machine, and the next would then never come.
            let mut buf = Vec::new();
            let meta = r
                .read_after_into(0, &mut buf, Duration::from_secs(5))
                .unwrap()
                .unwrap();
            assert_eq!((meta.generation, &buf[..]), (1, &b"hi"[..]));
        },
    );
}

/// A channel found being created (its file there, its header not yet written) is one that
/// appeared: every value it will hold is new to the follower.
#[test]
#[cfg(target_os = "linux")]
fn a_channel_found_being_created_has_appeared() {
    let dir = std::env::temp_dir().join(format!("mmf-follow-made-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    let (made, target) = (dir.join("made.mmf"), dir.join("c.mmf"));
    Channel::create(made.to_str().unwrap(), 64)
        .unwrap()
        .publish_str("first")
        .unwrap();
    // The file is there, empty, as a creator leaves it before it writes the header.
    std::fs::File::create(&target).unwrap();
    let opened = OpenWatch::new(&target);
    let f = std::thread::scope(|s| {
        s.spawn(|| {
            // Made whole once the follower has opened it twice: its first look found it being
            // made and is over (it gives such a channel 250 ms, looking every millisecond). A
            // fixed pause raced a busy machine, and so did the first open alone: the file made
            // whole between that open and the header's read was found made at once.
            opened.wait_for_opens(2, Duration::from_secs(10));
            std::fs::write(&target, std::fs::read(&made).unwrap()).unwrap();
        });
        mmf::Follower::open(Location::file(&target), Duration::from_secs(10)).unwrap()
    });
    assert!(f.appeared());
    assert_eq!(f.channel().read_string().unwrap(), "first");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An inotify watch for the opening of one file.
#[cfg(target_os = "linux")]
struct OpenWatch(std::os::fd::OwnedFd);

#[cfg(target_os = "linux")]
impl OpenWatch {
    fn new(path: &std::path::Path) -> OpenWatch {
        use std::os::fd::FromRawFd;
        use std::os::unix::ffi::OsStrExt;
        // SAFETY: plain system call; the descriptor it returns is owned from here on.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
        assert!(fd >= 0, "{}", std::io::Error::last_os_error());
        // SAFETY: `fd` was just returned by inotify_init1 and nothing else owns it.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid descriptor and a NUL-terminated path that outlives the call.
        let wd = unsafe {
            use std::os::fd::AsRawFd;
            libc::inotify_add_watch(fd.as_raw_fd(), c_path.as_ptr(), libc::IN_OPEN)
        };
        assert!(wd >= 0, "{}", std::io::Error::last_os_error());
        OpenWatch(fd)
    }

    /// Blocks until the file has been opened `n` times (by anyone) or `timeout` passes.
    fn wait_for_opens(&self, n: usize, timeout: Duration) {
        use std::os::fd::AsRawFd;
        let deadline = Instant::now() + timeout;
        let mut seen = 0;
        let mut buf = [0u8; 4096];
        while seen < n {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut pfd = libc::pollfd {
                fd: self.0.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd, for the length given.
            let ready = unsafe { libc::poll(&mut pfd, 1, left.as_millis() as libc::c_int) };
            if ready <= 0 {
                return;
            }
            // SAFETY: a read into a buffer of the length given, on a valid descriptor.
            let got = unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if got <= 0 {
                return;
            }
            // An event on a watched file carries no name: its header alone.
            seen += got as usize / std::mem::size_of::<libc::inotify_event>();
        }
    }
}

/// Another user's file of mode 0600 just made may be a channel still being created (a mode that
/// lets others write is set once the header is complete), and an open waits on it as on one; but a
/// private channel stays 0600, and an open with no limit on that wait
/// (`init_timeout(Duration::MAX)`) must still be refused, once the file has not changed for ten
/// seconds.
#[test]
fn an_endless_open_of_another_users_private_channel_is_refused() {
    if !root_or_skip() || !shm_birth_times_or_skip() {
        return;
    }
    let name = unique("private");
    let ch = Options::new()
        .capacity(64)
        .mode(0o600)
        .create(Location::shm(&name).unwrap())
        .unwrap();
    ch.publish_str("mine").unwrap();
    let stats = child_stats(spawn_child(
        "nobody-opens-private",
        &[("MMF_NAME", name.clone())],
    ));
    assert_eq!(stats["denied"], true, "{stats}");
    let secs = stats["secs"].as_f64().unwrap();
    assert!((5.0..20.0).contains(&secs), "{stats}");
    Channel::remove(&name).unwrap();
}

/// A channel whose creation takes longer than 250 ms (one of many GiB, allocated at about a
/// second a GiB on a tmpfs) is waited for as long as its creator holds it open: by
/// `Follower::open`, and by waits across a restart, which say meanwhile that the name leads
/// nowhere yet. Both used to end 250 ms into the creation. (The same file once no process
/// holds it, its creator killed: `a_follower_waits_past_what_a_killed_creator_left`.)
#[test]
fn a_follower_waits_for_a_slow_creator_while_it_runs() {
    let name = unique("slow-creator");
    let location = Location::shm(&name).unwrap();
    let child = spawn_slow_creator(&name, "first", 1000);
    let mut f = mmf::Follower::open(&location, Duration::from_secs(20)).unwrap();
    made_slowly(&f, "first", child, true);

    // The writing service restarts: removed, and made again as slowly, under short waits.
    let seen = f.channel().generation();
    Channel::remove(&name).unwrap();
    let child = spawn_slow_creator(&name, "second", 1000);
    let found = Instant::now();
    let mut gone_while_made = false;
    let change = loop {
        assert!(found.elapsed() < Duration::from_secs(20), "no change");
        match f.wait(seen, Duration::from_millis(50)).unwrap() {
            // Past the first 250 ms, only a creation still under way makes the name lead
            // nowhere (its removal was looked at before the file came).
            None if found.elapsed() > Duration::from_millis(400) => gone_while_made |= f.is_gone(),
            None => {}
            Some(change) => break change,
        }
    };
    assert_eq!(change, mmf::Change::Replaced);
    assert!(found.elapsed() >= Duration::from_millis(500), "{found:?}");
    assert!(gone_while_made);
    made_slowly(&f, "second", child, false);
    drop(f);
    Channel::remove(&name).unwrap();
}

/// Leaves under `name` what a creator killed while it allocated leaves: its file, empty, held
/// by no process.
fn leave_killed_creator(name: &str) {
    let location = Location::shm(name).unwrap();
    let mut child = spawn_slow_creator(name, "never", 60_000);
    let t = Instant::now();
    while !mmf::channel::host::in_use(&location).unwrap() {
        assert!(t.elapsed() < Duration::from_secs(20), "never locked");
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A channel that its creator left half-made when it was killed (no process holds its file) is
/// waited past, as a missing name is, for the channel of the writer's restart: by
/// `Follower::open` (`NotInitialized` only when its deadline passes), and by waits of a
/// follower whose channel was replaced by such a file, which say meanwhile that the name leads
/// nowhere. Both used to end with `NotInitialized` 250 ms after they found the file, so a
/// watcher started, or running, while its writer was killed mid-restart never saw the restart.
#[test]
fn a_follower_waits_past_what_a_killed_creator_left() {
    let name = unique("killed-creator");
    let location = Location::shm(&name).unwrap();
    leave_killed_creator(&name);
    let t = Instant::now();
    let got = mmf::Follower::open(&location, Duration::from_millis(800));
    assert!(
        matches!(got, Err(mmf::channel::Error::NotInitialized { .. })),
        "{got:?}"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(800),
        "{:?}",
        t.elapsed()
    );
    let restart = restart_writer(&location, Duration::from_millis(300), "restarted");
    let mut f = mmf::Follower::open(&location, Duration::from_secs(20)).unwrap();
    assert!(f.appeared());
    let writer = restart.join().unwrap();
    assert_eq!(f.channel().incarnation(), writer.incarnation());
    if f.channel().generation() == 0 {
        f.wait(0, Duration::from_secs(10))
            .unwrap()
            .expect("published");
    }
    assert_eq!(f.channel().read_string().unwrap(), "restarted");

    // Replaced by what a killed creator left, while followed.
    let seen = f.channel().generation();
    drop(writer);
    Channel::remove(&name).unwrap();
    leave_killed_creator(&name);
    let found = Instant::now();
    let mut gone_while_left = false;
    while found.elapsed() < Duration::from_millis(1500) {
        assert_eq!(f.wait(seen, Duration::from_millis(50)).unwrap(), None);
        gone_while_left |= found.elapsed() > Duration::from_millis(400) && f.is_gone();
    }
    assert!(gone_while_left);
    let restart = restart_writer(&location, Duration::ZERO, "restarted again");
    let change = loop {
        assert!(found.elapsed() < Duration::from_secs(20), "no change");
        if let Some(change) = f.wait(seen, Duration::from_millis(50)).unwrap() {
            break change;
        }
    };
    assert_eq!(change, mmf::Change::Replaced);
    let writer = restart.join().unwrap();
    assert_eq!(f.channel().incarnation(), writer.incarnation());
    drop(writer);
    Channel::remove(&name).unwrap();
}

/// What a follower waits past is a dead creator's file in shared memory, which the writer's
/// restart replaces, and nothing else: a wait ended by a `Stop` says so; a file path that starts
/// with zeros (nothing replaces one by itself: it may be a user's file) is refused 250 ms after
/// it was found, as before; and a file that a process holds steadily, not what a creator at
/// work leaves (a live channel whose magic was zeroed), is given up on, while the instant's
/// lock of another process's open (here a restarting writer's retries, every millisecond for
/// 1.2 s) does not end the wait, as a review found a look that caught one did, nor a holder
/// descheduled for milliseconds.
#[test]
fn a_follower_waits_past_only_what_a_restart_replaces() {
    use std::os::unix::fs::FileExt;
    let name = unique("left-stop");
    let location = Location::shm(&name).unwrap();
    leave_killed_creator(&name);
    let stop = mmf::Stop::new();
    let stopper = std::thread::spawn({
        let stop = stop.clone();
        move || {
            std::thread::sleep(Duration::from_millis(600));
            stop.stop();
        }
    });
    let t = Instant::now();
    let got = mmf::Follower::open(&location, Until::timeout(Duration::from_secs(20)).or(&stop));
    assert!(
        matches!(got, Err(mmf::channel::Error::Stopped { .. })),
        "{got:?}"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(600),
        "{:?}",
        t.elapsed()
    );
    stopper.join().unwrap();
    std::fs::remove_file(location.path().unwrap()).unwrap();

    let path = std::env::temp_dir().join(format!("{}.bin", unique("left-file")));
    std::fs::write(&path, [0u8; 4096]).unwrap();
    let t = Instant::now();
    let got = mmf::Follower::open(Location::file(&path), Duration::from_secs(20));
    assert!(
        matches!(got, Err(mmf::channel::Error::NotInitialized { .. })),
        "{got:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    std::fs::remove_file(&path).unwrap();

    // Its first word zero, the rest of a header there: not what a creator at work leaves.
    let name = unique("left-held");
    let location = Location::shm(&name).unwrap();
    let path = location.path().unwrap();
    let file = std::fs::File::create_new(&path).unwrap();
    file.write_all_at(&[0xa5; 4096], 0).unwrap();
    file.write_all_at(&[0; 8], 0).unwrap();
    let follower = std::thread::spawn({
        let location = location.clone();
        move || {
            let got = mmf::Follower::open(&location, Duration::from_secs(20));
            (got.map(|_| ()), Instant::now())
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let mut opens = 0;
    while t.elapsed() < Duration::from_millis(1200) {
        let got = Options::new().init_timeout(Duration::ZERO).open(&location);
        assert!(
            matches!(got, Err(mmf::channel::Error::NotInitialized { .. })),
            "{got:?}"
        );
        opens += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(opens > 100, "{opens}");
    assert!(!follower.is_finished(), "an open's lock ended the wait");
    // A holder descheduled for milliseconds (here 30 ms of every 170, a period the looks'
    // 100 ms keep moving across, so that some look finds it held): a review found asks 2 ms
    // apart giving the file up; two looks 100 ms apart never both fall in one such hold.
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(2) {
        file.lock_shared().unwrap();
        std::thread::sleep(Duration::from_millis(30));
        file.unlock().unwrap();
        std::thread::sleep(Duration::from_millis(140));
    }
    assert!(!follower.is_finished(), "a lock of 30 ms ended the wait");
    file.lock_shared().unwrap();
    let held = Instant::now();
    let (got, ended) = follower.join().unwrap();
    assert!(
        matches!(got, Err(mmf::channel::Error::NotInitialized { .. })),
        "{got:?}"
    );
    let after = ended.duration_since(held);
    assert!(after < Duration::from_secs(5), "{after:?}");
    drop(file);
    std::fs::remove_file(&path).unwrap();
}

/// The same for a reader of another user's channel, refused while the channel keeps its
/// creation mode (0600; a creator that sets its mode last, as mmf does for a mode that lets
/// others write) and may not open the file to ask whether it is held: it asks the kernel's
/// table of locks, and waits.
#[test]
fn a_reader_of_another_user_waits_for_a_slow_creator_while_it_runs() {
    if !root_or_skip() {
        return;
    }
    let name = unique("slow-private");
    let child = spawn_child("nobody-follows-slow", &[("MMF_NAME", name.clone())]);
    let ready = std::path::PathBuf::from(format!("/dev/shm/{name}-ready"));
    let t = Instant::now();
    while !ready.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the child never got ready"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    std::fs::remove_file(&ready).unwrap();
    let path = Location::shm(&name).unwrap().path().unwrap();
    // Held empty for a second, then its header written, then (150 ms later, when `being_made`
    // no longer counts a file that is whole and over a second old) its mode set.
    create_slowly(
        &path,
        &channel_image("made slowly"),
        Duration::from_millis(1000),
        0o644,
    );
    let stats = child_stats(child);
    assert_eq!(stats["value"], r#"Ok("made slowly")"#, "{stats}");
    assert!(stats["ms"].as_u64().unwrap() >= 1000, "{stats}");
    Channel::remove(&name).unwrap();
}

/// What only looks like a channel being made is not waited for as one: a live channel whose
/// magic another process zeroed (whole, not changing, held by its writer) is `NotInitialized`
/// soon, as before the wait for slow creators; an empty file that a process holds and never
/// makes a channel is waited for as a creator is, and at the timeout is `BeingCreated`, not
/// "no channel".
#[test]
fn what_only_looks_like_a_creation_is_not_waited_on_for_ever() {
    use std::os::unix::fs::FileExt;
    let name = unique("zeroed-magic");
    let location = Location::shm(&name).unwrap();
    let writer = Channel::create(&name, 64).unwrap();
    writer.publish_str("live").unwrap();
    let path = location.path().unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .write_all_at(&[0; 8], 0)
        .unwrap();
    let t = Instant::now();
    let got = mmf::Follower::open(&location, Duration::from_secs(10));
    assert!(
        matches!(got, Err(mmf::channel::Error::NotInitialized { .. })),
        "{got:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    drop(writer);
    Channel::remove(&name).unwrap();

    let name = unique("held-empty");
    let location = Location::shm(&name).unwrap();
    let held = std::fs::File::create_new(location.path().unwrap()).unwrap();
    held.lock_shared().unwrap();
    let t = Instant::now();
    let got = mmf::Follower::open(&location, Duration::from_millis(600));
    assert!(
        matches!(got, Err(mmf::channel::Error::BeingCreated { .. })),
        "{got:?}"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(600),
        "{:?}",
        t.elapsed()
    );
    drop(held);
    std::fs::remove_file(location.path().unwrap()).unwrap();
}
