//! `Channel::changed(since).await`: resolved by writers in other processes, many channels awaited
//! from one thread with a single helper thread per process, cancellation unregisters.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use common::*;
use mmf::prelude::*;
use serde_json::json;

/// Wakes by unparking the thread that polls (a minimal executor, no runtime dependency).
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

fn waker() -> Waker {
    Arc::new(Unpark(std::thread::current())).into()
}

/// Polls `f` until it is ready or `timeout` passes.
fn block_on<F: Future>(f: F, timeout: Duration) -> Option<F::Output> {
    let waker = waker();
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    let deadline = Instant::now() + timeout;
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return Some(v);
        }
        let left = deadline.checked_duration_since(Instant::now())?;
        std::thread::park_timeout(left);
    }
}

#[test]
fn child() {
    let Some((role, name)) = child_role() else {
        return;
    };
    match role.as_str() {
        "nobody-follows" => {
            become_nobody();
            let location = Location::shm(&name).unwrap();
            let mut f = block_on(
                mmf::Follower::open_async(&location),
                Duration::from_secs(10),
            )
            .expect("opened")
            .unwrap();
            // Told to the parent by a file of its own: it may now restart its channel.
            std::fs::write(format!("/dev/shm/{name}-ready"), b"").unwrap();
            let first = block_on(f.changed(1), Duration::from_secs(10))
                .map(|r| r.map_err(|e| e.to_string()));
            let value = f.channel().read_string().map_err(|e| e.to_string());
            // The same through the blocking wait.
            let second = f
                .wait(1, Duration::from_secs(10))
                .map_err(|e| e.to_string());
            let again = f.channel().read_string().map_err(|e| e.to_string());
            print_stats(&json!({
                "first": format!("{first:?}"), "value": format!("{value:?}"),
                "second": format!("{second:?}"), "again": format!("{again:?}"),
            }));
        }
        // As `nobody`: another user's private channel, made over a second ago and touched
        // all the time, is refused at once, as before the wait for channels being made.
        "nobody-opens-touched" => {
            become_nobody();
            let location = Location::shm(&name).unwrap();
            let (got, _) = block_on_timed(
                mmf::Follower::open_async(&location),
                Duration::from_secs(10),
            );
            let t = Instant::now();
            let blocking = mmf::Follower::open(&location, Duration::from_secs(10));
            print_stats(&json!({
                "async": format!("{:?}", got.map(|r| r.map(drop).map_err(|e| matches!(e, mmf::channel::Error::PermissionDenied { .. })))),
                "blocking_denied": matches!(blocking, Err(mmf::channel::Error::PermissionDenied { .. })),
                "blocking_ms": t.elapsed().as_millis() as u64,
            }));
        }
        "slow-creator" => slow_creator(&name),
        // Publishes a config, a text that is not one, and another config, each once the
        // consumer has said (on NAME-ack) that it has the one before.
        "typed-publisher" => {
            let ch = Channel::open(&name).unwrap();
            let ack = Channel::open(format!("{name}-ack")).unwrap();
            for i in 0..3u64 {
                let t = Instant::now();
                while ack.generation() < i {
                    assert!(t.elapsed() < Duration::from_secs(20), "no ack");
                    std::thread::sleep(Duration::from_millis(1));
                }
                match i {
                    0 => ch.publish(&json!({"threads": 8})),
                    1 => ch.publish_str("not a config"),
                    _ => ch.publish(&json!({"threads": 9})),
                }
                .unwrap();
            }
        }
        "create-later" => {
            std::thread::sleep(Duration::from_millis(300));
            Channel::create(&name, 64)
                .unwrap()
                .publish_str("created late")
                .unwrap();
        }
        "restart-later" => {
            // A writing service that restarts: its channel removed, then created anew.
            std::thread::sleep(Duration::from_millis(100));
            let old = Channel::open(&name).unwrap();
            old.publish_str("old life").unwrap();
            drop(old);
            std::thread::sleep(Duration::from_millis(100));
            Channel::remove(&name).unwrap();
            std::thread::sleep(Duration::from_millis(300));
            Channel::create(&name, 64)
                .unwrap()
                .publish_str("new life")
                .unwrap();
        }
        "publish-later" => {
            let ch = Channel::open(&name).unwrap();
            std::thread::sleep(Duration::from_millis(100));
            ch.publish_str("from another process").unwrap();
        }
        "many" => many_channels_one_thread(&name),
        "abuse" => abuse_the_notifier(&name),
        "stop-future" => stop_future(),
        "notifier-sleeps" => notifier_wake_ups(),
        "fork" => changed_in_a_forked_child(),
        "fork-drop" => a_forked_child_drops_what_it_inherited(&name),
        "fork-inherited" => an_inherited_future_after_the_parent_left(&name),
        "pid-reuse" => a_descendant_gets_the_pid_of_the_notifiers_process(),
        "spawn-fails" => a_notifier_that_could_not_start(),
        "spawn-fails-racing" => racing_polls_when_no_notifier_can_start(),
        "flat-out" => publish_flat_out(&name),
        "wait-300ms" => {
            let ch = Channel::create(&name, 64).unwrap();
            let got = std::thread::scope(|s| {
                s.spawn(|| {
                    std::thread::sleep(Duration::from_millis(300));
                    ch.publish_str("late").unwrap();
                });
                block_on(ch.changed(0), Duration::from_secs(10))
            });
            Channel::remove(&name).unwrap();
            print_stats(&json!({ "resolved": got }));
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn a_writer_in_another_process_resolves_the_future() {
    let name = unique("async-xp");
    let ch = Channel::create(&name, 64).unwrap();
    let child = spawn_child("publish-later", &[("MMF_NAME", name.clone())]);
    let t = Instant::now();
    let g = block_on(ch.changed(0), Duration::from_secs(10)).expect("resolved");
    assert_eq!(g, 1);
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(ch.read_string().unwrap(), "from another process");
    assert!(child.wait_with_output().unwrap().status.success());
    assert_eq!(ch.info().waiters, 0);
    Channel::remove(&name).unwrap();
}

/// What a `select!` loop whose other arm fires every 30 ms gets: the future `$make` makes,
/// dropped after 30 ms and made again, until one is ready (`None`: not within 5 s). A macro, as
/// the future may borrow what the loop uses again.
macro_rules! made_anew_every_30ms {
    ($make:expr) => {{
        let t = Instant::now();
        loop {
            if let Some(got) = block_on($make, Duration::from_millis(30)) {
                break Some(got);
            }
            if t.elapsed() > Duration::from_secs(5) {
                break None;
            }
        }
    }};
}

/// Polls `f` until it is ready or `timeout` passes, and says how long the longest poll took.
fn block_on_timed<F: Future>(f: F, timeout: Duration) -> (Option<F::Output>, Duration) {
    let mut longest = Duration::ZERO;
    let mut f = std::pin::pin!(f);
    let got = block_on(
        std::future::poll_fn(|cx| {
            let t = Instant::now();
            let polled = f.as_mut().poll(cx);
            longest = longest.max(t.elapsed());
            polled
        }),
        timeout,
    );
    (got, longest)
}

/// A new shared-memory channel named after `what`: its name, location, the creator's handle and
/// a follower of the name.
fn followed(what: &str) -> (String, Location, Channel, mmf::Follower) {
    let name = unique(what);
    let location = Location::shm(&name).unwrap();
    let creator = Channel::create(&name, 64).unwrap();
    let follower = mmf::Follower::open(&location, Duration::ZERO).unwrap();
    (name, location, creator, follower)
}

/// `Follower::changed`, awaited across a writer's restart in another process: the value it
/// published to its old channel, then the removal (the future keeps waiting), then the new
/// channel under the name, which the follower holds when the future resolves.
#[test]
fn a_follower_future_follows_a_writer_in_another_process_across_its_restart() {
    let (name, _, creator, mut f) = followed("async-follow");
    drop(creator);
    let child = spawn_child("restart-later", &[("MMF_NAME", name.clone())]);
    let (got, _) = block_on_timed(f.changed(0), Duration::from_secs(10));
    assert_eq!(got.expect("resolved").unwrap(), mmf::Change::Newer(1));
    assert_eq!(f.channel().read_string().unwrap(), "old life");
    let (got, longest) = block_on_timed(f.changed(1), Duration::from_secs(10));
    assert_eq!(got.expect("resolved").unwrap(), mmf::Change::Replaced);
    assert!(longest < Duration::from_millis(200), "{longest:?}");
    // The new channel's value may come after the follower found the channel.
    if f.channel().generation() == 0 {
        let (got, _) = block_on_timed(f.changed(0), Duration::from_secs(10));
        assert_eq!(got.expect("resolved").unwrap(), mmf::Change::Newer(1));
    }
    assert_eq!(f.channel().read_string().unwrap(), "new life");
    assert!(child.wait_with_output().unwrap().status.success());
    assert_eq!(f.channel().info().waiters, 0);
    Channel::remove(&name).unwrap();
}

/// `Follower::open_async`: a reader that starts before its writer awaits the channel's creation
/// by another process, looking every 100 ms without a timer of the executor's and without
/// blocking its thread; what cannot appear is an error at once, as `Follower::open` says.
#[test]
fn a_follower_is_opened_asynchronously_when_another_process_creates_the_channel() {
    let name = unique("async-appear");
    let location = Location::shm(&name).unwrap();
    let child = spawn_child("create-later", &[("MMF_NAME", name.clone())]);
    let t = Instant::now();
    let (got, longest) = block_on_timed(
        mmf::Follower::open_async(&location),
        Duration::from_secs(10),
    );
    let mut f = got.expect("resolved").unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    assert!(longest < Duration::from_millis(100), "{longest:?}");
    assert!(f.appeared(), "it did not exist yet");
    if f.channel().generation() == 0 {
        let (got, _) = block_on_timed(f.changed(0), Duration::from_secs(10));
        assert_eq!(got.expect("resolved").unwrap(), mmf::Change::Newer(1));
    }
    assert_eq!(f.channel().read_string().unwrap(), "created late");
    assert!(child.wait_with_output().unwrap().status.success());
    // There already: at once, and not "appeared".
    let (got, _) = block_on_timed(mmf::Follower::open_async(&location), Duration::from_secs(1));
    assert!(!got.expect("resolved").unwrap().appeared());
    // With options: its channel opened with them.
    let (got, _) = block_on_timed(
        Options::new().read_only(true).follow_async(&location),
        Duration::from_secs(1),
    );
    assert!(got.expect("resolved").unwrap().channel().is_read_only());
    Channel::remove(&name).unwrap();
    // Where no channel can appear (a path through a file): the error at once. In a directory
    // not made yet: waited for, as a missing name is.
    let file = std::env::temp_dir().join(unique("a-file"));
    std::fs::write(&file, b"not a directory").unwrap();
    let nowhere = Location::file(file.join("x.mmf"));
    let (got, _) = block_on_timed(mmf::Follower::open_async(&nowhere), Duration::from_secs(1));
    assert!(
        matches!(&got, Some(Err(mmf::channel::Error::Io { cause, .. }))
            if cause.kind() == std::io::ErrorKind::NotADirectory),
        "{got:?}"
    );
    std::fs::remove_file(&file).unwrap();
    let later = Location::file(file.join("not-made-yet/x.mmf"));
    let (got, _) = block_on_timed(
        mmf::Follower::open_async(&later),
        Duration::from_millis(300),
    );
    assert!(got.is_none(), "{got:?}");
    // A creator that died before its channel was ready (its file empty, held by no process):
    // waited past, as `open` waits past it, for the channel of the writer's restart; also by a
    // future made anew every 30 ms (a `select!` loop). No poll blocks meanwhile.
    let path = location.path().unwrap();
    std::fs::File::create(&path).unwrap();
    let (got, longest) = block_on_timed(
        mmf::Follower::open_async(&location),
        Duration::from_millis(600),
    );
    assert!(got.is_none(), "{got:?}");
    assert!(longest < Duration::from_millis(100), "{longest:?}");
    let restart = restart_writer(&location, Duration::ZERO, "restarted");
    let got = made_anew_every_30ms!(mmf::Follower::open_async(&location));
    let f = got.expect("resolved").unwrap();
    let writer = restart.join().unwrap();
    assert_eq!(f.channel().incarnation(), writer.incarnation());
    drop(writer);
    Channel::remove(&name).unwrap();
    // A file held steadily, not what a creator at work leaves (the rest of a header there, its
    // first word zeroed): the error, also to a future made anew every 30 ms, which keeps no
    // count across looks (a review found such a loop waiting for ever on it).
    {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::create_new(&path).unwrap();
        file.write_all_at(&[0xa5; 4096], 0).unwrap();
        file.write_all_at(&[0; 8], 0).unwrap();
        file.lock_shared().unwrap();
        let got = made_anew_every_30ms!(mmf::Follower::open_async(&location));
        assert!(
            matches!(got, Some(Err(mmf::channel::Error::NotInitialized { .. }))),
            "{got:?}"
        );
    }
    std::fs::remove_file(&path).unwrap();
}

/// A writer that restarts with remove and create, and a mode for its readers (0644), is followed
/// by a reader that runs as another user: here the new channel keeps its creation mode, 0600,
/// until its header is complete (as mmf's creators did before they set a read-only mode first,
/// and still do for a mode that lets others write), and a review found that reader refused
/// there ("permission denied") and its follower ended; it is now waited on as a channel being
/// created.
#[test]
fn a_reader_of_another_user_follows_a_restart_through_the_creation_mode() {
    if !root_or_skip() || !shm_birth_times_or_skip() {
        return;
    }
    let name = unique("async-nobody");
    let location = Location::shm(&name).unwrap();
    let path = location.path().unwrap();
    let ready = std::path::PathBuf::from(format!("/dev/shm/{name}-ready"));
    let create = |value: &str| {
        let ch = Options::new()
            .capacity(64)
            .mode(0o644)
            .create(&location)
            .unwrap();
        ch.publish_str(value).unwrap();
    };
    create("first life");
    let child = spawn_child("nobody-follows", &[("MMF_NAME", name.clone())]);
    let t = Instant::now();
    while !ready.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the child never got ready"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Two restarts, each with its 0600 window held open for 150 ms (a channel of some hundred
    // MiB allocates for about that long), once for the async wait, once for the blocking one.
    for life in ["second life", "third life"] {
        std::thread::sleep(Duration::from_millis(200));
        Channel::remove(&name).unwrap();
        let ch = Options::new()
            .capacity(64)
            .mode(0o600)
            .create(&location)
            .unwrap();
        ch.publish_str(life).unwrap();
        std::thread::sleep(Duration::from_millis(150));
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    let stats = child_stats(child);
    assert_eq!(stats["first"], "Some(Ok(Replaced))", "{stats}");
    assert_eq!(stats["value"], "Ok(\"second life\")", "{stats}");
    assert_eq!(stats["second"], "Ok(Some(Replaced))", "{stats}");
    assert_eq!(stats["again"], "Ok(\"third life\")", "{stats}");
    Channel::remove(&name).unwrap();
    std::fs::remove_file(&ready).unwrap();
}

/// The wait for another user's channel that may still have its creation mode must not hold up a
/// reader of a private channel: one made over a second ago is refused at once, even while its
/// writer touches it all the time (a review found `open_async` pending for as long as `mmf out`
/// kept writing it, by its status-change time; its birth time decides now).
#[test]
fn another_users_private_channel_is_refused_at_once_however_busy() {
    if !root_or_skip() {
        return;
    }
    let name = unique("async-private");
    let ch = Options::new()
        .capacity(64)
        .mode(0o600)
        .create(Location::shm(&name).unwrap())
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    let stop = std::sync::atomic::AtomicBool::new(false);
    let stats = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                ch.publish_str("busy").unwrap();
                ch.touch().unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let stats = child_stats(spawn_child(
            "nobody-opens-touched",
            &[("MMF_NAME", name.clone())],
        ));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        stats
    });
    assert_eq!(stats["async"], "Some(Err(true))", "{stats}");
    assert_eq!(stats["blocking_denied"], true, "{stats}");
    assert!(stats["blocking_ms"].as_u64().unwrap() < 200, "{stats}");
    Channel::remove(&name).unwrap();
}

/// A channel replaced under its name, with no value published to either: only the follower
/// future's own look at the name (every 100 ms, the notifier wakes it for that) can resolve it.
/// A dropped follower future is no longer counted as a waiter.
#[test]
fn a_follower_future_looks_at_the_name_with_no_publish_to_wake_it() {
    let (name, location, old, mut f) = followed("async-follow-look");
    assert!(block_on(f.changed(0), Duration::from_millis(50)).is_none());
    assert_eq!(old.info().waiters, 0, "the cancelled future is not counted");
    let (flag, waker) = Flag::new();
    let mut changed = f.changed(0);
    poll_pending(&mut changed, &waker);
    assert_eq!(old.info().waiters, 1, "{:?}", old.info());
    let new = Options::new()
        .capacity(64)
        .create_or_replace(&location)
        .unwrap();
    assert!(flag.raised_within(Duration::from_secs(2)), "not woken");
    let mut cx = Context::from_waker(&waker);
    let got = Pin::new(&mut changed).poll(&mut cx);
    assert!(
        matches!(got, Poll::Ready(Ok(mmf::Change::Replaced))),
        "{got:?}"
    );
    drop(changed);
    assert_eq!(old.info().waiters, 0, "off the old channel");
    assert_eq!(new.info().waiters, 0);
    assert_eq!(
        f.channel().incarnation(),
        new.incarnation(),
        "it holds the new channel"
    );
    Channel::remove(&name).unwrap();
}

/// A name that leads to a channel its creator left half-made (it died before the channel was
/// initialised): the future looks again every 10 ms for 250 ms, as `Follower::wait` waits, then
/// every 100 ms, the follower saying meanwhile that the name leads nowhere (`is_gone`), until
/// the writer's restart replaces the file; no poll blocks the executor's thread meanwhile.
#[test]
fn a_follower_future_waits_past_a_channel_its_creator_left_without_blocking() {
    let (name, location, old, mut f) = followed("async-follow-init");
    Channel::remove(&name).unwrap();
    // What a creator that died at once leaves: a file of the name, empty.
    let path = location.path().unwrap();
    std::fs::File::create(&path).unwrap();
    let (got, longest) = block_on_timed(f.changed(0), Duration::from_millis(600));
    assert!(got.is_none(), "{got:?}");
    assert!(longest < Duration::from_millis(100), "{longest:?}");
    assert!(f.is_gone());
    assert_eq!(old.info().waiters, 0, "the dropped future's registration");
    // Under a `select!` loop whose other arm fires every 30 ms (each future dropped before it
    // resolves), the restart is taken up all the same.
    let restart = restart_writer(&location, Duration::ZERO, "restarted");
    let got = made_anew_every_30ms!(f.changed(0));
    assert_eq!(got.expect("resolved").unwrap(), mmf::Change::Replaced);
    let writer = restart.join().unwrap();
    assert_eq!(f.channel().incarnation(), writer.incarnation());
    assert_eq!(old.info().waiters, 0);
    drop(writer);
    Channel::remove(&name).unwrap();
}

fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Runs in its own process, so that the thread count is not disturbed by other tests.
fn many_channels_one_thread(prefix: &str) {
    const N: usize = 40;
    let channels: Vec<Channel> = (0..N)
        .map(|i| Channel::create(format!("{prefix}-{i}"), 64).unwrap())
        .collect();
    let before = threads();
    let waker = waker();
    let mut cx = Context::from_waker(&waker);
    let mut futures: Vec<Option<Pin<Box<dyn Future<Output = u64> + '_>>>> = channels
        .iter()
        .map(|c| Some(Box::pin(c.changed(0)) as Pin<Box<dyn Future<Output = u64>>>))
        .collect();
    for f in futures.iter_mut().flatten() {
        assert!(f.as_mut().poll(&mut cx).is_pending());
    }
    let during = threads();
    // Another process publishes to every channel, in reverse order, one at a time.
    let writer = std::thread::spawn({
        let prefix = prefix.to_owned();
        move || {
            for i in (0..N).rev() {
                let ch = Channel::open(format!("{prefix}-{i}")).unwrap();
                std::thread::sleep(Duration::from_millis(2));
                ch.publish_raw(Tag::BYTES, &[i as u8]).unwrap();
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut done = 0;
    while done < N && Instant::now() < deadline {
        for f in futures.iter_mut() {
            if let Some(fut) = f {
                if let Poll::Ready(g) = fut.as_mut().poll(&mut cx) {
                    assert_eq!(g, 1);
                    *f = None;
                    done += 1;
                }
            }
        }
        std::thread::park_timeout(Duration::from_millis(100));
    }
    writer.join().unwrap();
    let waiters: u64 = channels.iter().map(|c| c.info().waiters).sum();
    for i in 0..N {
        Channel::remove(format!("{prefix}-{i}")).unwrap();
    }
    print_stats(&json!({ "done": done, "before": before, "during": during, "waiters": waiters }));
}

#[test]
fn many_channels_are_awaited_with_one_helper_thread() {
    let stats = child_stats(spawn_child("many", &[("MMF_NAME", unique("many"))]));
    assert_eq!(stats["done"], 40, "every future resolved: {stats}");
    let (before, during) = (
        stats["before"].as_u64().unwrap(),
        stats["during"].as_u64().unwrap(),
    );
    assert!(
        during <= before + 1,
        "one notifier thread for 40 pending channels: {stats}"
    );
    assert_eq!(
        stats["waiters"], 0,
        "resolved futures unregistered: {stats}"
    );
}

#[test]
fn a_dropped_future_unregisters() {
    let name = unique("async-drop");
    let ch = Channel::create(&name, 64).unwrap();
    assert_eq!(block_on(ch.changed(0), Duration::from_millis(50)), None);
    assert_eq!(
        ch.info().waiters,
        0,
        "the cancelled future is no longer counted"
    );
    ch.publish_str("x").unwrap();
    assert_eq!(
        block_on(ch.changed(0), Duration::from_secs(1)),
        Some(1),
        "ready at once"
    );
    Channel::remove(&name).unwrap();
}

/// A stream's `recv()` dropped while pending (a `select!` branch that lost) takes the stream's
/// wait off: a stream kept but not polled again made every publish pay a wake-up call for it
/// (206-250 ns a publish against 14 ns, a resource audit's measurement). One that resolved
/// leaves nothing counted either, and the stream goes on with the next value.
#[test]
fn a_dropped_recv_takes_the_streams_wait_off() {
    let name = unique("async-recv-drop");
    let ch = Channel::create(&name, 64).unwrap();
    let mut values = mmf::Follower::open(&name, Duration::from_secs(5))
        .unwrap()
        .values(0);
    for _ in 0..3 {
        let mut recv = Box::pin(values.recv());
        poll_pending(&mut recv, &waker());
        assert_eq!(ch.info().waiters, 1, "waiting while polled");
        drop(recv);
        assert_eq!(ch.info().waiters, 0, "the dropped recv's wait is taken off");
    }
    ch.publish_str("next").unwrap();
    let (meta, bytes) = block_on(values.recv(), Duration::from_secs(5))
        .expect("the value")
        .unwrap();
    assert_eq!((meta.generation, &bytes[..]), (1, &b"next"[..]));
    assert_eq!(
        block_on(values.recv(), Duration::from_millis(30)).map(|_| ()),
        None
    );
    assert_eq!(ch.info().waiters, 0);
    drop(values);
    Channel::remove(&name).unwrap();
}

#[test]
fn read_only_handles_are_polled() {
    with_read_only_handle(
        "async-ro",
        |w| {
            w.publish_str("seen").unwrap();
        },
        |r| assert_eq!(block_on(r.changed(0), Duration::from_secs(5)), Some(1)),
    );
}

/// A waker that runs `on_wake` when woken (an inline executor's, say).
struct OnWake(Box<dyn Fn() + Send + Sync>);

impl Wake for OnWake {
    fn wake(self: Arc<Self>) {
        (self.0)();
    }
}

/// Polls `f` once with `waker`, expecting it to be pending.
fn poll_pending<F: Future + Unpin>(f: &mut F, waker: &Waker) {
    let mut cx = Context::from_waker(waker);
    assert!(Pin::new(f).poll(&mut cx).is_pending());
}

/// A waker that raises a flag: tells "woken" from "polled again" (which a `park`-based
/// executor cannot, as anything may unpark its thread).
struct Flag(Arc<std::sync::atomic::AtomicBool>);

impl Flag {
    fn new() -> (Flag, Waker) {
        let raised = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let waker = Arc::new(OnWake({
            let raised = raised.clone();
            Box::new(move || raised.store(true, std::sync::atomic::Ordering::SeqCst))
        }))
        .into();
        (Flag(raised), waker)
    }

    /// Whether the waker was woken within `timeout` (looked at every 5 ms).
    fn raised_within(&self, timeout: Duration) -> bool {
        let t = Instant::now();
        while !self.0.load(std::sync::atomic::Ordering::SeqCst) && t.elapsed() < timeout {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Child role: what safe code may do to the process-wide notifier, each followed by a check
/// that the notifier still works; prints `STATS` only if it survived all of it.
fn abuse_the_notifier(prefix: &str) {
    let writer = Channel::create(format!("{prefix}-w"), 64).unwrap();
    // 1. A registered future leaked with `mem::forget`, then its channel dropped: the mapping
    //    goes while the notifier still had its address, and the waiter count stayed up.
    let leaked = Channel::open(format!("{prefix}-w")).unwrap();
    let mut f = leaked.changed(0);
    poll_pending(&mut f, &waker());
    assert_eq!(writer.info().waiters, 1);
    std::mem::forget(f);
    drop(leaked);
    assert_eq!(
        writer.info().waiters,
        0,
        "the closed handle's count went with it"
    );
    // Unrelated mappings may now take the old address; the notifier must not touch it.
    let fillers: Vec<Channel> = (0..8).map(|_| Channel::anonymous(64).unwrap()).collect();
    writer.publish_str("one").unwrap();
    assert_eq!(block_on(writer.changed(0), Duration::from_secs(5)), Some(1));

    // 2. A waker that drops a pending future of its own when woken: the drop unregisters, which
    //    takes the notifier's lock, so the notifier must not hold it while waking.
    let other: &'static Channel = Box::leak(Box::new(Channel::anonymous(64).unwrap()));
    let slot: Arc<std::sync::Mutex<Option<mmf::channel::Changed<'static>>>> = Arc::default();
    let woken = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let w: Waker = Arc::new(OnWake({
        let (slot, woken) = (slot.clone(), woken.clone());
        Box::new(move || {
            drop(slot.lock().unwrap().take());
            woken.store(true, std::sync::atomic::Ordering::SeqCst);
        })
    }))
    .into();
    let mut first = other.changed(0);
    poll_pending(&mut first, &w);
    let mut second = other.changed(0);
    poll_pending(&mut second, &waker());
    *slot.lock().unwrap() = Some(second);
    other.publish_raw(Tag::TEXT, b"two").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !woken.load(std::sync::atomic::Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the waker never ran");
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(first);
    writer.publish_str("three").unwrap();
    assert_eq!(
        block_on(writer.changed(1), Duration::from_secs(5)),
        Some(2),
        "the notifier is not deadlocked"
    );

    // 3. A waker that panics must not stop the notifier thread. (Its panic message is
    //    expected: kept off stderr, any other panic's is not.)
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&"a buggy executor") {
            hook(info);
        }
    }));
    let panicky: Waker = Arc::new(OnWake(Box::new(|| panic!("a buggy executor")))).into();
    let mut doomed = writer.changed(2);
    poll_pending(&mut doomed, &panicky);
    writer.publish_str("four").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    drop(doomed);
    writer.publish_str("five").unwrap();
    assert_eq!(
        block_on(writer.changed(3), Duration::from_secs(5)),
        Some(4),
        "the notifier survived a panicking waker"
    );
    drop(fillers);
    Channel::remove(format!("{prefix}-w")).unwrap();
    print_stats(&json!({"survived": true}));
}

/// Leaking a registered future, a waker that drops another future, and a panicking waker, all
/// in safe code: the notifier thread must neither touch unmapped memory, nor deadlock, nor die
/// (each did before; the first killed the process with SIGSEGV). Run in a child process, with a
/// watchdog, so that a failure is reported rather than taking the test binary down or hanging.
#[test]
fn the_notifier_survives_leaks_reentrant_and_panicking_wakers() {
    let mut child = spawn_child("abuse", &[("MMF_NAME", unique("abuse"))]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the child hung (a deadlocked notifier)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = child_stats(child);
    assert_eq!(stats["survived"], true);
}

/// Runs this binary's child `role` (channel `name`) under strace, with `futex_waitv` refused with
/// `errno`: its standard output and strace's log of the calls; `None` (said) where strace is
/// not there or may not trace.
fn child_without_futex_waitv(role: &str, name: &str, errno: &str) -> Option<(String, String)> {
    use std::os::unix::process::CommandExt;
    let log = std::env::temp_dir().join(format!("mmf-strace-{role}-{}.log", std::process::id()));
    // In a process group of its own, so that a child that hangs (what these runs make sure of
    // is that it does not, where futex_waitv is refused) is killed with its tracer.
    let out = std::process::Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=futex_waitv", "-e"])
        .arg(format!("inject=futex_waitv:error={errno}"))
        .arg("-o")
        .arg(&log)
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1", "-q"])
        .env("MMF_CHILD", role)
        .env("MMF_NAME", name)
        .process_group(0)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map(|child| finish_within(child, CHILD_SECS, &format!("{role} under strace")));
    let traced = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    let Some(out) = out
        .ok()
        .filter(|o| o.status.success() || !traced.is_empty())
    else {
        skipped("strace is not available or may not trace here");
        return None;
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "child failed: {stdout}");
    Some((stdout, traced))
}

/// Where `futex_waitv` fails for good (a seccomp filter answering `EPERM`, as Docker's and
/// systemd's do for calls they do not know), the notifier thread must fall back to polling
/// every millisecond, not call it again at once: it did, some 45,000 times a second, a core
/// for as long as the process lived. `strace` injects the error; the count of calls it logs
/// tells a poll from a spin.
#[test]
fn a_refused_futex_waitv_makes_the_notifier_poll_not_spin() {
    let Some((stdout, traced)) = child_without_futex_waitv("wait-300ms", &unique("eperm"), "EPERM")
    else {
        return;
    };
    assert!(
        stdout.contains(r#"STATS {"resolved":1}"#),
        "the future resolved by polling: {stdout}"
    );
    let calls = traced
        .lines()
        .filter(|l| l.contains("futex_waitv("))
        .count();
    // Polling makes at most one call a millisecond: ~300 in ~300 ms. A spin makes as many as
    // strace lets it (each traced call stops the process): ~2,000 here, tens of thousands
    // untraced.
    assert!(
        calls < 600,
        "{calls} futex_waitv calls in ~300 ms: the notifier spins"
    );
}

/// Voluntary context switches of this process's `mmf-notify` thread so far: how often it slept
/// and woke.
fn notifier_switches() -> u64 {
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let path = task.unwrap().path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim() == "mmf-notify" {
            let status = std::fs::read_to_string(path.join("status")).unwrap();
            return status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
        }
    }
    panic!("no mmf-notify thread");
}

/// Child role: how often the notifier wakes in a second with 200 futures pending on one
/// channel, and with none.
fn notifier_wake_ups() {
    let ch = Channel::anonymous(64).unwrap();
    let second = |what: &str| {
        std::thread::sleep(Duration::from_millis(200));
        let before = notifier_switches();
        std::thread::sleep(Duration::from_secs(1));
        (what.to_owned(), notifier_switches() - before)
    };
    let waker = waker();
    let mut futures: Vec<_> = (0..200).map(|_| Box::pin(ch.changed(0))).collect();
    for f in &mut futures {
        poll_pending(f, &waker);
    }
    let busy = second("busy");
    drop(futures);
    let idle = second("idle");
    // A follower future, which the notifier wakes every 100 ms to look at the name, polled
    // again each time it is woken, as an executor would.
    let name = unique("notifier-follow");
    let _named = Channel::create(&name, 64).unwrap();
    let location = Location::shm(&name).unwrap();
    let mut follower = mmf::Follower::open(&location, Duration::ZERO).unwrap();
    /// `f` polled again whenever woken while `second` counts: the count, and how many polls.
    fn counted_while_polled<F: Future + Unpin>(
        what: &str,
        mut f: F,
        waker: &Waker,
        second: &(dyn Fn(&str) -> (String, u64) + Sync),
    ) -> ((String, u64), u64) {
        let mut cx = Context::from_waker(waker);
        let mut polls = 0;
        let counted = std::thread::scope(|s| {
            let counting = s.spawn(|| second(what));
            while !counting.is_finished() {
                assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
                polls += 1;
                std::thread::park_timeout(Duration::from_millis(500));
            }
            counting.join().unwrap()
        });
        (counted, polls)
    }
    let (following, polls) =
        counted_while_polled("following", follower.changed(0), &waker, &second);
    Channel::remove(&name).unwrap();
    // A follower being opened on a name nobody creates: woken every 100 ms to look again.
    let (opened, opening_polls) = counted_while_polled(
        "opening",
        mmf::Follower::open_async(&location),
        &waker,
        &second,
    );
    let after = second("after");
    print_stats(&json!({
        busy.0: busy.1, idle.0: idle.1, following.0: following.1, "polls": polls,
        opened.0: opened.1, "opening_polls": opening_polls, after.0: after.1
    }));
}

/// Many futures on one channel are one futex word to the notifier, not one each: past 127 of
/// them it used to poll every millisecond (5-19 % of a core with 128 to 50,000 futures). With
/// none pending it sleeps until one comes, instead of waking ten times a second.
#[test]
fn the_notifier_sleeps_with_many_futures_on_one_channel_and_with_none() {
    if !has_futex_waitv() {
        // Then it looks every millisecond while a channel is pending, as the notify module's
        // docs say; the tests below run that case on every kernel, by injecting the refusal.
        skipped("no futex_waitv here (Linux before 5.16, a seccomp filter, an emulator): nothing to test");
        return;
    }
    let stats = child_stats(spawn_child("notifier-sleeps", &[("MMF_NAME", "-".into())]));
    // The bars below are switches of the notifier in a second: a sleeping one makes 9-19 on an
    // idle machine, 30-80 with another job on both cores (it waits for the lock the preempted
    // polling thread holds); one that polls makes about 1,000.
    // Pending futures: one look every `MAX_SLEEP` (100 ms), about 10 in the second.
    assert!(stats["busy"].as_u64().unwrap() < 150, "{stats}");
    assert!(stats["idle"].as_u64().unwrap() <= 1, "{stats}");
    // A pending follower future: woken for its look at the name every 100 ms, about 12 times
    // in the 1.2 s it was polled, and the notifier about as often.
    let polls = stats["polls"].as_u64().unwrap();
    assert!((5..50).contains(&polls), "{stats}");
    assert!(stats["following"].as_u64().unwrap() < 150, "{stats}");
    // A pending `open_async` likewise; dropped, it leaves the notifier asleep again.
    let polls = stats["opening_polls"].as_u64().unwrap();
    assert!((5..50).contains(&polls), "{stats}");
    assert!(stats["opening"].as_u64().unwrap() < 150, "{stats}");
    assert!(stats["after"].as_u64().unwrap() <= 1, "{stats}");
}

/// Where `futex_waitv` is refused (before Linux 5.16, a seccomp filter; and always outside
/// Linux) the notifier polls pending channels every millisecond; with none pending it must
/// still sleep until a future comes, and with only a time to wake (a follower being opened)
/// until that time. It polled every millisecond for the rest of the process's life, once a
/// single future had been awaited: ~1,000 wake-ups a second with nothing to do.
#[test]
fn without_futex_waitv_the_notifier_sleeps_with_nothing_pending() {
    let Some(stats) = stats_without_futex_waitv("notifier-sleeps") else {
        return;
    };
    // 200 futures pending: polled, hundreds of looks in the second.
    assert!(stats["busy"].as_u64().unwrap() > 100, "{stats}");
    // None pending, before and after the follower's: asleep.
    assert!(stats["idle"].as_u64().unwrap() <= 1, "{stats}");
    assert!(stats["after"].as_u64().unwrap() <= 1, "{stats}");
    // A follower being opened: woken for its looks at the name, every 100 ms, not polled.
    // Traced, each system call stops the thread twice more: ~9 switches a look (~120 in the
    // second), where polling makes thousands (as `busy` does).
    let (opening, busy) = (stats["opening"].as_u64(), stats["busy"].as_u64());
    assert!(opening.unwrap() * 10 < busy.unwrap(), "{stats}");
}

/// Child role: a pending `Stop::stopped()` future (the process's only one), the notifier's
/// wake-ups while it waits, and whether `stop()` wakes it (the waker runs).
fn stop_future() {
    let stop = Stop::new();
    let mut stopped = Box::pin(stop.stopped());
    let (flag, w) = Flag::new();
    poll_pending(&mut stopped, &w);
    std::thread::sleep(Duration::from_millis(200));
    let before = notifier_switches();
    std::thread::sleep(Duration::from_secs(1));
    let idle = notifier_switches() - before;
    let early = flag.raised_within(Duration::ZERO);
    stop.stop();
    let woken = flag.raised_within(Duration::from_secs(10));
    let resolved = block_on(stopped, Duration::ZERO);
    print_stats(&json!({
        "idle": idle, "early": early, "woken": woken,
        "resolved": format!("{resolved:?}"),
    }));
}

/// Whether this kernel answers `futex_waitv`: never outside Linux.
#[cfg(not(target_os = "linux"))]
fn has_futex_waitv() -> bool {
    false
}

/// Whether this kernel answers `futex_waitv` (Linux 5.16+, no seccomp filter refusing it): a
/// call with no entries is refused as invalid (`EINVAL`) where it exists.
#[cfg(target_os = "linux")]
fn has_futex_waitv() -> bool {
    // SAFETY: no entries and no timeout: the kernel reads no memory of ours.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex_waitv,
            std::ptr::null::<u8>(),
            0u32,
            0u32,
            std::ptr::null::<u8>(),
            libc::CLOCK_MONOTONIC,
        )
    };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL)
}

/// Without `futex_waitv` (Linux before 5.16, a seccomp filter) the notifier sleeps on its
/// control word alone while only a `Stop::stopped()` is pending, and the stop, which bumps
/// that word, wakes it: it polled every millisecond for as long as the stop was awaited
/// (some 1,000 wake-ups a second, 4,290 in the traced second of a run, for a shutdown switch
/// a service awaits for its whole life).
#[test]
fn without_futex_waitv_a_pending_stop_sleeps_until_it_is_turned() {
    if let Some(stats) = stats_without_futex_waitv("stop-future") {
        stop_future_slept_until_stopped(&stats);
    }
}

/// What child role `role` printed, run with every `futex_waitv` refused (`ENOSYS`, as before
/// Linux 5.16) by strace, which must have injected the refusal; `None` where strace cannot
/// (it said SKIPPED).
fn stats_without_futex_waitv(role: &str) -> Option<serde_json::Value> {
    let (stdout, traced) = child_without_futex_waitv(role, "-", "ENOSYS")?;
    assert!(
        traced.contains("ENOSYS"),
        "the refusal was injected: {traced:.500}"
    );
    Some(stats_in(&stdout))
}

/// The `stop-future` role's figures as they must be: the notifier asleep while the stop was
/// pending, the task woken by `stop()` and not before, the future resolved to `Called`.
fn stop_future_slept_until_stopped(stats: &serde_json::Value) {
    assert!(stats["idle"].as_u64().unwrap() <= 1, "{stats}");
    assert_eq!(stats["early"], false, "{stats}");
    assert_eq!(stats["woken"], true, "{stats}");
    assert_eq!(stats["resolved"], "Some(Called)", "{stats}");
}

/// `Stop::stopped()`: its `stop()` wakes the task (the notifier sleeps on the stop's word: it
/// does not look every so often, and with nothing else pending sleeps until woken), a worker's
/// exit does too, a stop made before resolves at once, and a dropped one is forgotten.
#[test]
fn a_stop_wakes_the_future_that_awaits_it() {
    let stats = child_stats(spawn_child("stop-future", &[("MMF_NAME", "-".into())]));
    stop_future_slept_until_stopped(&stats);

    // Turned before: ready at once, as often as it is asked.
    let stop = Stop::new();
    stop.stop();
    assert_eq!(
        block_on(stop.stopped(), Duration::ZERO),
        Some(mmf::StopReason::Called)
    );
    // By a worker's exit; the future owns a clone, so it outlives the handle it came from.
    let mut worker = std::process::Command::new("sleep")
        .arg("0.1")
        .spawn()
        .unwrap();
    let exited = Stop::on_exit_of(&worker).unwrap().stopped();
    assert_eq!(
        block_on(exited, Duration::from_secs(10)),
        Some(mmf::StopReason::Exited(worker.id()))
    );
    worker.wait().unwrap();
    // A pending one dropped, then the stop: nothing is woken, nothing breaks; a new one
    // resolves.
    let stop = Stop::new();
    let (flag, w) = Flag::new();
    let mut dropped = Box::pin(stop.stopped());
    poll_pending(&mut dropped, &w);
    drop(dropped);
    stop.stop();
    assert!(!flag.raised_within(Duration::from_millis(50)));
    assert_eq!(
        block_on(stop.stopped(), Duration::ZERO),
        Some(mmf::StopReason::Called)
    );
}

/// A peer that moves the generation by a multiple of 2^24 and keeps the slot leaves the futex
/// word (the low half of `latest`) as it was: the future must still see the change, as a
/// blocking wait does, instead of waiting for the next real publish.
#[test]
fn a_future_sees_a_change_that_leaves_the_futex_word_as_it_was() {
    use std::os::unix::fs::FileExt;
    let name = unique("async-jump");
    let ch = Channel::create(&name, 64).unwrap();
    ch.publish_str("one").unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(ch.location().path().unwrap())
        .unwrap();
    let (woken, w) = Flag::new();
    let mut f = Box::pin(ch.changed(1));
    poll_pending(&mut f, &w);
    // FORMAT.md: `latest` is header word 16 (byte 128), the generation in its high 56 bits.
    let mut latest = [0; 8];
    file.read_exact_at(&mut latest, 128).unwrap();
    let jumped = u64::from_le_bytes(latest) + (1 << 32);
    file.write_all_at(&jumped.to_le_bytes(), 128).unwrap();
    assert!(
        woken.raised_within(Duration::from_secs(5)),
        "never woken: the notifier compared the low 32 bits only"
    );
    let mut cx = Context::from_waker(&w);
    assert_eq!(f.as_mut().poll(&mut cx), Poll::Ready(1 + (1 << 24)));
    drop(f);
    Channel::remove(&name).unwrap();
}

/// Child role: starts the notifier, forks, and awaits a publish in the forked child, which has
/// the notifier's memory but not its thread. With `MMF_INHERITED` set, a future is pending when
/// it forks, and the forked child drops it (`dropped`) or polls it again (`polled`) after it
/// registered its own. Prints whether the forked child's future was woken.
fn changed_in_a_forked_child() {
    let ch = Channel::anonymous(64).unwrap();
    let inherited_mode = std::env::var("MMF_INHERITED").ok();
    let noop: Waker = Arc::new(OnWake(Box::new(|| {}))).into();
    let mut inherited = Box::pin(ch.changed(0));
    // Either way the first registration of the process (which starts the notifier): the one
    // inherited, or one that comes and goes before the fork.
    if inherited_mode.is_some() {
        poll_pending(&mut inherited, &noop);
    } else {
        assert_eq!(block_on(ch.changed(0), Duration::from_millis(20)), None);
    }
    // SAFETY: the forked child only creates and awaits a channel, and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // Woken, not merely polled again: a flag the waker sets, looked at by a sleep loop.
        let mine = Channel::anonymous(64).unwrap();
        let (woken, w) = Flag::new();
        let mut f = Box::pin(mine.changed(0));
        poll_pending(&mut f, &w);
        match inherited_mode.as_deref() {
            Some("dropped") => drop(inherited),
            Some("polled") => poll_pending(&mut inherited, &noop),
            _ => {}
        }
        mine.publish_str("x").unwrap();
        let mut cx = Context::from_waker(&w);
        let resolved = woken.raised_within(Duration::from_secs(2))
            && f.as_mut().poll(&mut cx) == Poll::Ready(1);
        // SAFETY: ends the forked child without running the parent's exit handlers twice.
        unsafe { libc::_exit(if resolved { 0 } else { 3 }) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above; `status` is a valid out-pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    let resolved = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    drop(inherited);
    print_stats(&json!({ "resolved": resolved }));
}

/// Child role: a future pending when the process forks, polled again in the forked child after
/// the parent dropped its own copy (and with it its count as a waiter). Prints how long after
/// the parent's publish the child's waker ran (`delay_ms`, the child's exit code: at most 250,
/// 251 if never within 2 s).
fn an_inherited_future_after_the_parent_left(name: &str) {
    let micros = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros()
    };
    let ch = Channel::create(name, 64).unwrap();
    let (woken, w) = Flag::new();
    let mut inherited = Box::pin(ch.changed(0));
    poll_pending(&mut inherited, &w);
    // SAFETY: the forked child only polls, reads and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        poll_pending(&mut inherited, &w);
        let code = if woken.raised_within(Duration::from_secs(2)) {
            let sent: u128 = ch.read_string().unwrap().parse().unwrap();
            (micros().saturating_sub(sent) / 1000).min(250) as i32
        } else {
            251
        };
        // SAFETY: ends the forked child without running the parent's exit handlers twice.
        unsafe { libc::_exit(code) };
    }
    drop(inherited);
    // Halfway between two of the notifier's re-checks (every 100 ms from its start, right
    // after the fork), where a wake-up that does not come costs most.
    std::thread::sleep(Duration::from_millis(250));
    ch.publish_str(&micros().to_string()).unwrap();
    let mut status = 0;
    // SAFETY: waits for the child forked above; `status` is a valid out-pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status), "{status}");
    Channel::remove(name).unwrap();
    print_stats(&json!({ "delay_ms": libc::WEXITSTATUS(status) }));
}

/// A future a forked child inherited pending, polled there after its parent dropped its own
/// copy (and its count as a waiter with it), is woken by a publish at once. It slept until the
/// notifier's 100 ms re-check (0-100 ms late, 50 on average), counted as a waiter by the
/// parent alone (found by a review of the async API). The median of five rounds, so that a
/// moment of a loaded machine does not decide.
#[test]
fn an_inherited_future_is_woken_at_once_after_the_parent_left() {
    let mut delays: Vec<u64> = (0..5)
        .map(|i| {
            let name = unique(&format!("inherited-{i}"));
            let stats = child_stats(spawn_child("fork-inherited", &[("MMF_NAME", name)]));
            stats["delay_ms"].as_u64().unwrap()
        })
        .collect();
    delays.sort_unstable();
    assert!(delays[4] <= 250, "a future never woken: {delays:?} ms");
    assert!(delays[2] < 25, "woken late: {delays:?} ms");
}

/// A process forked after it used `changed` gets a notifier of its own on its first wait.
/// A future the forked child inherited, dropped or polled there, must not take the place of the
/// child's own registration (ids were per notifier, and the child's counted from 1 again).
#[test]
fn a_forked_child_can_await_changes() {
    for inherited in [None, Some("dropped"), Some("polled")] {
        let mut env = vec![("MMF_NAME", "-".to_owned())];
        env.extend(inherited.map(|m| ("MMF_INHERITED", m.to_owned())));
        let stats = child_stats(spawn_child("fork", &env));
        assert_eq!(stats["resolved"], true, "inherited {inherited:?}: {stats}");
    }
}

/// The child role below where there are no PID namespaces: skipped.
#[cfg(not(target_os = "linux"))]
fn a_descendant_gets_the_pid_of_the_notifiers_process() {
    print_stats(&json!({ "skipped": "no PID namespaces on this system" }));
}

/// Child role, in a PID namespace of its own (so that bringing a pid back disturbs no other
/// process): process A starts the notifier, forks B and exits; once the namespace's init has
/// reaped A, B forks until a child of its, C, gets A's pid back (`/proc/sys/kernel/ns_last_pid`,
/// which root may write). C has the memory of A's notifier and A's pid, but not its thread, and
/// awaits a publish. C prints whether its future was woken; where the pid cannot be brought
/// back, `skipped` and why. Every process shares this one's standard output, which the test
/// reads to its end; a forked process leaves with `_exit`, never by unwinding into the harness.
#[cfg(target_os = "linux")]
fn a_descendant_gets_the_pid_of_the_notifiers_process() {
    // SAFETY: `unshare` changes only the PID namespace of this process's later children.
    if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
        let why = std::io::Error::last_os_error();
        print_stats(&json!({ "skipped": format!("no PID namespace of our own: {why}") }));
        return;
    }
    // SAFETY: the forked child is the namespace's init: it only forks, reaps and `_exit`s.
    let init = unsafe { libc::fork() };
    assert!(init >= 0, "fork failed");
    if init == 0 {
        // SAFETY: A starts the notifier, forks B and leaves with `_exit` (`process_a`).
        let a = unsafe { libc::fork() };
        if a == 0 {
            process_a();
        }
        // Reap A, then B and C, whom the namespace gives to its init when their parents end,
        // until none is left (an init that ended would kill them).
        let mut status = 0;
        // SAFETY: `waitpid` on any child with a valid out-pointer.
        while unsafe { libc::waitpid(-1, &mut status, 0) } > 0 {}
        exit(0);
    }
    let mut status = 0;
    // SAFETY: waits for the namespace's init forked above; `status` is a valid out-pointer.
    assert_eq!(unsafe { libc::waitpid(init, &mut status, 0) }, init);
}

/// Ends a forked process without running the test harness's exit handlers.
#[cfg(target_os = "linux")]
fn exit(code: i32) -> ! {
    // SAFETY: `_exit` ends the process at once; nothing of this process is used after it.
    unsafe { libc::_exit(code) }
}

/// Says why the case was not exercised (or what failed), and ends the forked process.
#[cfg(target_os = "linux")]
fn leave_saying(key: &str, why: &str) -> ! {
    print_stats(&json!({ key: why }));
    exit(0)
}

/// A: starts the notifier, forks B, ends.
#[cfg(target_os = "linux")]
fn process_a() -> ! {
    let Ok(ch) = Channel::anonymous(64) else {
        leave_saying("failed", "A could not make a channel");
    };
    if block_on(ch.changed(0), Duration::from_millis(20)).is_some() {
        leave_saying("failed", "A's future resolved with nothing published");
    }
    let a_pid = std::process::id();
    // SAFETY: B is single-threaded from here on: it only forks, waits and writes a file.
    let b = unsafe { libc::fork() };
    if b != 0 {
        exit(0);
    }
    // B: waits until A is reaped (`kill` then fails), so that its pid is free.
    let t = Instant::now();
    // SAFETY: signal 0 only asks whether the pid exists.
    while unsafe { libc::kill(a_pid as libc::pid_t, 0) } == 0 {
        if t.elapsed() > Duration::from_secs(10) {
            leave_saying("failed", "A was never reaped");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    for _ in 0..50 {
        let last = (a_pid - 1).to_string();
        if let Err(e) = std::fs::write("/proc/sys/kernel/ns_last_pid", last) {
            leave_saying("skipped", &format!("/proc/sys/kernel/ns_last_pid: {e}"));
        }
        // SAFETY: C awaits a change on a channel of its own, prints, and leaves with `_exit`.
        let c = unsafe { libc::fork() };
        if c < 0 {
            leave_saying("failed", "B could not fork");
        }
        if c == 0 {
            process_c(a_pid);
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above; `status` is a valid out-pointer.
        unsafe { libc::waitpid(c, &mut status, 0) };
        if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 2) {
            exit(0);
        }
    }
    leave_saying("skipped", "no child got the pid back in 50 forks");
}

/// C, if it got `a_pid` (else it ends with 2, and B tries again): awaits a publish of its own
/// and prints whether the future was woken.
#[cfg(target_os = "linux")]
fn process_c(a_pid: u32) -> ! {
    if std::process::id() != a_pid {
        exit(2);
    }
    let Ok(mine) = Channel::anonymous(64) else {
        leave_saying("failed", "C could not make a channel");
    };
    let (woken, w) = Flag::new();
    let mut f = Box::pin(mine.changed(0));
    let mut cx = Context::from_waker(&w);
    if f.as_mut().poll(&mut cx).is_ready() {
        leave_saying("failed", "C's future resolved with nothing published");
    }
    if mine.publish_str("x").is_err() {
        leave_saying("failed", "C could not publish");
    }
    let resolved =
        woken.raised_within(Duration::from_secs(2)) && f.as_mut().poll(&mut cx) == Poll::Ready(1);
    print_stats(&json!({ "resolved": resolved, "pid": a_pid }));
    exit(0)
}

/// A process whose pid an ancestor that started the notifier had (the ancestor died, and the pid
/// came back to a descendant) took that ancestor's notifier for its own, as a notifier was told
/// by its pid alone: it registered its futures with a notifier whose thread it did not have, and
/// they were never woken. A notifier is now also told by the count of forks behind the process.
#[test]
fn a_process_with_a_dead_ancestors_pid_starts_a_notifier_of_its_own() {
    let stats = child_stats(spawn_child("pid-reuse", &[("MMF_NAME", "-".to_owned())]));
    if let Some(why) = stats["skipped"].as_str() {
        skipped(why);
        return;
    }
    assert_eq!(stats["resolved"], true, "{stats}");
    // In the namespace's numbering: init is 1 and A, its first child, 2.
    assert_eq!(stats["pid"], 2, "{stats}");
}

/// Child role: a handle that pinned an entry and a future counted as a waiter through it,
/// inherited by a forked child that drops both and exits. Prints what the parent's entry and
/// the waiter count are then.
fn a_forked_child_drops_what_it_inherited(name: &str) {
    let ch = Channel::create(name, 64).unwrap();
    ch.publish_str("x").unwrap();
    ch.read_raw().unwrap(); // claims pin entry 0
    let noop: Waker = Arc::new(OnWake(Box::new(|| {}))).into();
    let mut f = Box::pin(ch.changed(1));
    poll_pending(&mut f, &noop);
    // FORMAT.md §5: entry 0's owner word is at byte 512.
    let path = ch.location().path().unwrap();
    let owner = || {
        use std::os::unix::fs::FileExt;
        let mut word = [0u8; 8];
        let file = std::fs::File::open(&path).unwrap();
        file.read_exact_at(&mut word, 512).unwrap();
        u64::from_le_bytes(word)
    };
    let before = (owner(), ch.info().waiters);
    // SAFETY: the forked child only drops what it inherited, and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        drop(f);
        drop(ch);
        // SAFETY: ends the forked child without running the parent's exit handlers twice.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above; `status` is a valid out-pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    let after = (owner(), ch.info().waiters);
    drop(f);
    drop(ch);
    Channel::remove(name).unwrap();
    // A handle that had not read when it was forked: the child's read claims an entry (under
    // the parent's token), which the child's drop gives back.
    let ch = Channel::create(name, 64).unwrap();
    ch.publish_str("x").unwrap();
    // SAFETY: the forked child only reads, drops the handle (which takes no lock of the
    // notifier thread left behind: that is the parent's, and unused in a child) and leaves with
    // `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        ch.read_raw().unwrap();
        let claimed = owner() != 0;
        drop(ch);
        // SAFETY: ends the forked child without running the parent's exit handlers twice.
        unsafe { libc::_exit(if claimed { 0 } else { 3 }) };
    }
    // SAFETY: waits for the child forked above; `status` is a valid out-pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child claimed nothing"
    );
    let child_claimed_left = owner();
    drop(ch);
    Channel::remove(name).unwrap();
    print_stats(&json!({
        "owner_before": before.0, "waiters_before": before.1,
        "owner_after": after.0, "waiters_after": after.1,
        "child_claimed_left": child_claimed_left,
    }));
}

/// A forked child that dropped a handle and a pending `changed` future it inherited gave the
/// parent's pin entry away (the token is the same in both) and took the parent's wait off the
/// count, so a publish woke the parent only at its 100 ms re-check. A handle and a future now
/// undo only what their own process did, and a child still gives back an entry it claimed.
#[test]
fn a_forked_child_dropping_inherited_handles_leaves_the_parent_its_entry_and_its_count() {
    let name = unique("forkdrop");
    let stats = child_stats(spawn_child("fork-drop", &[("MMF_NAME", name)]));
    assert_ne!(stats["owner_before"], 0, "{stats}");
    assert_eq!(stats["owner_after"], stats["owner_before"], "{stats}");
    assert_eq!(stats["waiters_before"], 1, "{stats}");
    assert_eq!(stats["waiters_after"], 1, "{stats}");
    assert_eq!(
        stats["child_claimed_left"], 0,
        "an entry the child claimed: {stats}"
    );
}

/// Keeps the expected panics of polls that cannot start the notifier's thread off stderr (any
/// other panic's message still shows).
fn expect_notifier_spawn_panics() {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info
            .to_string()
            .contains("could not start the mmf-notify thread")
        {
            hook(info);
        }
    }));
}

/// Sets the soft limit on this user's processes and threads (`RLIMIT_NPROC`), within the hard one.
fn set_nproc(n: libc::rlim_t) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid out-pointer, then a valid limit.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NPROC, &mut r), 0);
        r.rlim_cur = n.min(r.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NPROC, &r), 0);
    }
}

/// Child role: the notifier's thread cannot be started (no thread left under `RLIMIT_NPROC`,
/// which binds root only once it is another user), then can. Prints whether the first poll
/// failed, and whether a later future was woken.
fn a_notifier_that_could_not_start() {
    let ch = Channel::anonymous(64).unwrap();
    // SAFETY: plain system calls on this (child) process's own ids.
    if unsafe { libc::geteuid() } == 0 {
        // SAFETY: as above; this child process becomes `nobody` for the rest of its life.
        unsafe {
            assert_eq!(libc::setgid(65534), 0);
            assert_eq!(libc::setuid(65534), 0);
        }
    }
    expect_notifier_spawn_panics();
    set_nproc(1);
    let (woken, w) = Flag::new();
    let first = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut f = Box::pin(ch.changed(0));
        let _ = f.as_mut().poll(&mut Context::from_waker(&w));
    }));
    set_nproc(libc::RLIM_INFINITY);
    let mut f = Box::pin(ch.changed(0));
    poll_pending(&mut f, &w);
    ch.publish_str("x").unwrap();
    let woken = woken.raised_within(Duration::from_secs(3));
    print_stats(&json!({ "first_failed": first.is_err(), "woken": woken }));
}

/// A notifier whose thread could not be started (no threads left) is not kept: it would hold
/// registrations nobody wakes, for the rest of the process. The next future starts it again.
#[test]
fn a_notifier_that_could_not_start_is_started_again() {
    let stats = child_stats(spawn_child("spawn-fails", &[("MMF_NAME", "-".into())]));
    if stats["first_failed"] == false {
        skipped("the thread limit did not stop the notifier's thread here");
        return;
    }
    assert_eq!(stats["woken"], true, "{stats}");
}

/// Child role, with `RUST_MIN_STACK` too large for any thread that does not set its own stack
/// size (the notifier's): two threads poll futures at once. Prints how many polls returned
/// `Pending`, which would mean a registration in a notifier that has no thread.
fn racing_polls_when_no_notifier_can_start() {
    expect_notifier_spawn_panics();
    let ch: &'static Channel = Box::leak(Box::new(Channel::anonymous(64).unwrap()));
    let pollers: Vec<_> = (0..2)
        .map(|_| {
            std::thread::Builder::new()
                .stack_size(256 << 10)
                .spawn(move || {
                    let noop: Waker = Arc::new(OnWake(Box::new(|| {}))).into();
                    let mut pending = 0;
                    for _ in 0..2000 {
                        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            let mut f = Box::pin(ch.changed(0));
                            let p = f.as_mut().poll(&mut Context::from_waker(&noop));
                            // A pending future stays registered: leak it, as a stuck task is.
                            std::mem::forget(f);
                            p
                        }));
                        if matches!(polled, Ok(Poll::Pending)) {
                            pending += 1;
                        }
                    }
                    pending
                })
                .unwrap()
        })
        .collect();
    let pending: u32 = pollers.into_iter().map(|t| t.join().unwrap()).sum();
    print_stats(&json!({ "pending": pending }));
}

/// While no notifier thread can be started, no poll may leave a future registered: a notifier
/// was once installed before its thread was spawned, and another thread's future registered in
/// it then, never to be woken (6,338 of 40,000 polls in a review).
#[test]
fn no_future_waits_in_a_notifier_without_a_thread() {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap());
    child
        .args(["--exact", "child", "--nocapture", "--test-threads=1", "-q"])
        .env("MMF_CHILD", "spawn-fails-racing")
        .env("MMF_NAME", "-")
        .env("RUST_MIN_STACK", (1u64 << 50).to_string())
        .stdout(std::process::Stdio::piped());
    let stats = child_stats(child.spawn().unwrap());
    assert_eq!(stats["pending"], 0, "{stats}");
}

/// A creator that takes longer than 250 ms (a channel of many GiB) is waited for as long as it
/// holds the file, by `open_async` (also made anew every 30 ms, judged by the file) and by
/// `changed` across a restart, with no poll blocking the executor's thread. They used to end
/// 250 ms into the creation.
#[test]
fn follower_futures_wait_for_a_slow_creator_while_it_runs() {
    let name = unique("async-slow");
    let location = Location::shm(&name).unwrap();
    let child = spawn_slow_creator(&name, "first", 1000);
    let (got, longest) = block_on_timed(
        mmf::Follower::open_async(&location),
        Duration::from_secs(20),
    );
    let mut f = got.expect("resolved").unwrap();
    assert!(longest < Duration::from_millis(200), "{longest:?}");
    made_slowly(&f, "first", child, true);

    let seen = f.channel().generation();
    Channel::remove(&name).unwrap();
    let child = spawn_slow_creator(&name, "second", 1000);
    let found = Instant::now();
    let (got, longest) = block_on_timed(f.changed(seen), Duration::from_secs(20));
    assert_eq!(got.expect("resolved").unwrap(), mmf::Change::Replaced);
    assert!(found.elapsed() >= Duration::from_millis(500), "{found:?}");
    assert!(longest < Duration::from_millis(200), "{longest:?}");
    made_slowly(&f, "second", child, false);

    drop(f);
    Channel::remove(&name).unwrap();
    let child = spawn_slow_creator(&name, "third", 1000);
    let got = made_anew_every_30ms!(mmf::Follower::open_async(&location));
    made_slowly(&got.expect("resolved").unwrap(), "third", child, false);
    Channel::remove(&name).unwrap();
}

/// `Follower::values`, a stream of the values published under a name: a writer in another
/// process, then its restart (the new channel's values come, from generation 1); giving its
/// follower back takes its waiter count off.
#[test]
fn a_stream_of_values_follows_a_writer_in_another_process_across_its_restart() {
    let (name, _, creator, f) = followed("async-values");
    let old = f.channel().incarnation();
    drop(creator);
    let child = spawn_child("restart-later", &[("MMF_NAME", name.clone())]);
    let mut values = f.values(0);
    assert!(!futures_core::stream::FusedStream::is_terminated(&values));
    let (meta, bytes) = block_on(values.recv(), Duration::from_secs(10))
        .expect("resolved")
        .unwrap();
    assert_eq!((meta.generation, &bytes[..]), (1, &b"old life"[..]));
    let (meta, bytes) = block_on(values.recv(), Duration::from_secs(10))
        .expect("resolved")
        .unwrap();
    assert_eq!((meta.generation, &bytes[..]), (1, &b"new life"[..]));
    assert_ne!(values.incarnation(), old);
    assert_eq!(values.last_generation(), 1);
    assert!(child.wait_with_output().unwrap().status.success());
    // Pending on the new channel, counted as its waiter; dropped, not any more.
    let new = Channel::open(&name).unwrap();
    assert!(block_on(values.recv(), Duration::from_millis(50)).is_none());
    let polled = {
        let waker = waker();
        let mut cx = Context::from_waker(&waker);
        std::pin::pin!(values.recv()).poll(&mut cx).is_pending()
    };
    assert!(polled);
    // Given back, the follower follows the new channel, and the stream's wait is over.
    let f = values.into_follower();
    assert_eq!(new.info().waiters, 0);
    assert_eq!(f.channel().incarnation(), new.incarnation());
    new.publish_str("after").unwrap();
    let (meta, bytes) = block_on(f.values(1).recv(), Duration::from_secs(10))
        .expect("resolved")
        .unwrap();
    assert_eq!((meta.generation, &bytes[..]), (2, &b"after"[..]));
    Channel::remove(&name).unwrap();
}

/// Child role: publishes 64-byte values flat out until the name no longer leads to its channel.
fn publish_flat_out(name: &str) {
    let ch = Channel::open(name).unwrap();
    let start = Instant::now();
    for i in 0u64.. {
        ch.publish_raw(Tag::BYTES, &[i as u8; 64]).unwrap();
        if i % 4096 == 0 && (!ch.is_current().unwrap() || start.elapsed() > Duration::from_secs(60))
        {
            return;
        }
    }
}

/// A stream kept always ready by a writer that publishes faster than it is read yields to its
/// executor every 2 ms at most: pending once, with a newer value there (woken by mmf's
/// notifier thread: see the next test). It never did, so a
/// consumer's loop on a one-thread runtime kept every other task waiting for as long as the
/// writer ran.
#[test]
fn an_always_ready_stream_yields_to_the_executor() {
    // The writer must outrun the reader, on a core of its own: on one, they take turns, and
    // the stream is seldom ready twice in a row (a review's `taskset -c 0` run).
    if std::thread::available_parallelism().map_or(1, usize::from) < 2 {
        skipped("needs two CPUs");
        return;
    }
    let name = unique("async-values-flat-out");
    let location = Location::shm(&name).unwrap();
    let ch = Channel::create(&name, 64).unwrap();
    ch.publish_raw(Tag::BYTES, b"first").unwrap();
    let mut child = spawn_child("flat-out", &[("MMF_NAME", name.clone())]);
    let mut values = mmf::Follower::open(&location, Duration::ZERO)
        .unwrap()
        .values(0);
    // Wait for the writer's first publish.
    let t = Instant::now();
    while ch.generation() < 2 {
        if t.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("the writer did not publish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let (flag, waker) = Flag::new();
    let mut cx = Context::from_waker(&waker);
    let (mut yields, mut items, mut last) = (0u32, 0u32, 0);
    // When the current run of items with no pending poll began, and the longest run.
    let (mut run, mut longest): (Option<Instant>, Duration) = (None, Duration::ZERO);
    let start = Instant::now();
    // Beyond 20,000 items until a yield was seen (at most 200,000): with other tests on both
    // CPUs (CI), the writer may not outrun the reader for long at first, and a run of 20,000
    // then proved nothing either way.
    while (items < 20_000 || yields == 0)
        && items < 200_000
        && start.elapsed() < Duration::from_secs(30)
    {
        // One item: its future polled again after each pending poll, as an executor polls a
        // task (a future dropped while pending takes its wait off, and is woken by nobody).
        let mut recv = std::pin::pin!(values.recv());
        let item = loop {
            flag.0.store(false, std::sync::atomic::Ordering::SeqCst);
            // A newer value there before the poll: pending then is a yield, not a wait.
            let newer = ch.generation() > last;
            match recv.as_mut().poll(&mut cx) {
                Poll::Ready(item) => break item,
                Poll::Pending => {
                    yields += u32::from(newer);
                    run = None;
                    // Woken by the notifier thread (a yield), or by the writer's next publish.
                    let t = Instant::now();
                    while !flag.0.load(std::sync::atomic::Ordering::SeqCst)
                        && t.elapsed() < Duration::from_secs(1)
                    {
                        std::thread::yield_now();
                    }
                }
            }
        };
        let (meta, _) = item.unwrap();
        assert!(meta.generation > last, "no value twice");
        last = meta.generation;
        items += 1;
        let began = *run.get_or_insert_with(Instant::now);
        longest = longest.max(began.elapsed());
        // A consumer's work on each value (5 us), which the writer outruns.
        let t = Instant::now();
        while t.elapsed() < Duration::from_micros(5) {
            std::hint::spin_loop();
        }
    }
    Channel::remove(&name).unwrap();
    assert!(child.wait().unwrap().success());
    // 2 ms, and whatever one item took beyond them on a loaded machine. A stream that never
    // yields fails here whatever the load: its runs last seconds.
    assert!(
        longest < Duration::from_millis(50),
        "{longest:?} of items in a row with no yield"
    );
    // With both CPUs busy (the test at a lower priority than other work, or the scheduler
    // keeping the writer and the reader on one CPU), the writer may never outrun the reader:
    // then 30 s gave some 8,000 values, none newer at a poll, and no yield was called for.
    // Nothing to judge then; the floor of 20,000 values that used to fail here was the load's.
    // Nor where no run of ready items lasted the 2 ms after which the stream yields (3 ms
    // here: its clock may start a little after the test's): under qemu-user 200,000 values
    // came so, each run cut short by a wait, and the test failed on no yield called for.
    if yields == 0 && (items < 20_000 || longest < Duration::from_millis(3)) {
        skipped(&format!(
            "the writer never outran the reader for long ({items} values in {:?}, the \
             longest run of ready ones {longest:?}): both CPUs busy",
            start.elapsed()
        ));
        return;
    }
    assert!(
        yields > 0,
        "{yields} yields in {items} items (longest run {longest:?})"
    );
    // The stream yields once after a run of 64 items, not after each: whatever the load, a
    // stream that yields at every item fails here (the item floor caught it before).
    assert!(yields <= items / 16 + 1, "{yields} yields in {items} items");
}

/// A one-thread executor that runs its tasks as tokio's `current_thread` runtime does: a task
/// woken on the executor's own thread (by itself, as it runs) goes back on the local queue,
/// which runs before anything else; timers are looked at, and wakes from other threads taken,
/// only once no local task is ready. (Tokio looks at its timers every 61 local tasks too; this
/// one never does, which makes a starved timer plain.)
mod local_executor {
    use super::*;
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::rc::Rc;
    use std::sync::Mutex;

    /// Where a task's wake puts it.
    struct TaskWake {
        task: usize,
        owner: std::thread::ThreadId,
        thread: std::thread::Thread,
        local: Arc<Mutex<VecDeque<usize>>>,
        remote: Arc<Mutex<VecDeque<usize>>>,
    }

    impl Wake for TaskWake {
        fn wake(self: Arc<Self>) {
            if std::thread::current().id() == self.owner {
                self.local.lock().unwrap().push_back(self.task);
            } else {
                self.remote.lock().unwrap().push_back(self.task);
                self.thread.unpark();
            }
        }
    }

    /// The executor's timers: when each is due, and whom to wake.
    pub type Timers = Rc<RefCell<Vec<(Instant, Waker)>>>;

    /// Resolves at `due`, woken by the executor's timers.
    pub async fn sleep_until(timers: Timers, due: Instant) {
        std::future::poll_fn(|cx| {
            if Instant::now() >= due {
                return Poll::Ready(());
            }
            timers.borrow_mut().push((due, cx.waker().clone()));
            Poll::Pending
        })
        .await
    }

    /// Runs `tasks` to completion.
    pub fn run(timers: Timers, tasks: Vec<Pin<Box<dyn Future<Output = ()> + '_>>>) {
        let local = Arc::new(Mutex::new((0..tasks.len()).collect::<VecDeque<_>>()));
        let remote = Arc::new(Mutex::new(VecDeque::new()));
        let wakers: Vec<Waker> = (0..tasks.len())
            .map(|task| {
                Arc::new(TaskWake {
                    task,
                    owner: std::thread::current().id(),
                    thread: std::thread::current(),
                    local: local.clone(),
                    remote: remote.clone(),
                })
                .into()
            })
            .collect();
        let mut tasks: Vec<Option<_>> = tasks.into_iter().map(Some).collect();
        while tasks.iter().any(Option::is_some) {
            let next = local.lock().unwrap().pop_front();
            if let Some(t) = next {
                if let Some(f) = &mut tasks[t] {
                    if f.as_mut()
                        .poll(&mut Context::from_waker(&wakers[t]))
                        .is_ready()
                    {
                        tasks[t] = None;
                    }
                }
                continue;
            }
            // No local task ready: the timers, then what other threads woke.
            let now = Instant::now();
            let due: Vec<Waker> = {
                let mut timers = timers.borrow_mut();
                let (due, later) = timers.drain(..).partition(|(at, _)| *at <= now);
                *timers = later;
                due.into_iter().map(|(_, w)| w).collect()
            };
            due.into_iter().for_each(Waker::wake);
            let woken: Vec<usize> = remote.lock().unwrap().drain(..).collect();
            local.lock().unwrap().extend(woken);
            if local.lock().unwrap().is_empty() {
                let next_timer = timers.borrow().iter().map(|(at, _)| *at).min();
                let nap = next_timer.map_or(Duration::from_millis(1), |at| {
                    at.saturating_duration_since(now)
                });
                std::thread::park_timeout(nap.min(Duration::from_millis(1)));
            }
        }
    }
}

/// A consumer's loop on a one-thread executor, under a writer that publishes faster than it
/// reads, gives the thread back to the executor's timers every few milliseconds, waiting with
/// `Channel::changed`, `Follower::changed` or the value stream. Every wait was ready at once,
/// so the loop never did (`changed`), or woke itself onto the local queue (the stream): a
/// review measured a 1 ms ticker on tokio's `current_thread` held up 116-612 ms (`changed`)
/// and 108-785 ms (the stream), up to 4 s in a debug build.
#[test]
fn a_consumer_under_a_flat_out_writer_lets_the_executors_timers_run() {
    if std::thread::available_parallelism().map_or(1, usize::from) < 2 {
        skipped("needs two CPUs");
        return;
    }
    let name = unique("async-flat-out-timers");
    let location = Location::shm(&name).unwrap();
    // Removed when dropped, a failed assertion too.
    let ch = mmf::Options::new()
        .capacity(64)
        .remove_on_drop(true)
        .create(&location)
        .unwrap();
    ch.publish_raw(Tag::BYTES, b"first").unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let busy = |for_: Duration| {
        let t = Instant::now();
        while t.elapsed() < for_ {
            std::hint::spin_loop();
        }
    };
    /// Stops the writer however the scope ends (a failed assertion too, which would otherwise
    /// wait for it for ever).
    struct Stopping<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for Stopping<'_> {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                ch.publish_raw(Tag::BYTES, &i.to_le_bytes()).unwrap();
            }
        });
        let _stopping = Stopping(&stop);
        for kind in ["Channel::changed", "Follower::changed", "Follower::values"] {
            let timers = local_executor::Timers::default();
            let ticks_done = std::cell::Cell::new(false);
            let (mut values, mut follower) = (None, None);
            match kind {
                "Follower::values" => {
                    values = Some(
                        mmf::Follower::open(&location, Duration::ZERO)
                            .unwrap()
                            .values(0),
                    );
                }
                "Follower::changed" => {
                    follower = Some(mmf::Follower::open(&location, Duration::ZERO).unwrap());
                }
                _ => {}
            }
            let consumed = std::cell::Cell::new(0u64);
            let started = Instant::now();
            // Values, 200 us of work each, until the ticker is done (or 3 s), and then on until
            // 101 values came (at most 10 s in all): on a loaded machine each value can cost
            // a turn of the scheduler (6 ms), and the ticker's 500 ms saw 48 of them.
            let consumer = async {
                let mut seen = ch.generation();
                while (!ticks_done.get() && started.elapsed() < Duration::from_secs(3))
                    || (consumed.get() <= 100 && started.elapsed() < Duration::from_secs(10))
                {
                    if let Some(values) = &mut values {
                        values.recv().await.unwrap();
                    } else if let Some(follower) = &mut follower {
                        follower.changed(seen).await.unwrap();
                        seen = follower.channel().read_raw().unwrap().0.generation;
                    } else {
                        ch.changed(seen).await;
                        seen = ch.read_raw().unwrap().0.generation;
                    }
                    consumed.set(consumed.get() + 1);
                    busy(Duration::from_micros(200));
                }
            };
            // A tick every 5 ms, 100 of them: how late the latest was.
            let latest_late = std::cell::Cell::new(Duration::ZERO);
            let ticker = async {
                let first = Instant::now();
                for i in 1..=100u32 {
                    let due = first + Duration::from_millis(5) * i;
                    local_executor::sleep_until(timers.clone(), due).await;
                    latest_late.set(latest_late.get().max(due.elapsed()));
                }
                ticks_done.set(true);
            };
            // The ticker first, so that its first tick is due while the consumer runs.
            local_executor::run(timers.clone(), vec![Box::pin(ticker), Box::pin(consumer)]);
            println!(
                "{kind}: {} values in {:?}, ticks at most {:?} late",
                consumed.get(),
                started.elapsed(),
                latest_late.get()
            );
            assert!(consumed.get() > 100, "{kind}: {} values", consumed.get());
            // A consumer that starves the timers leaves a tick late by its 3 s; a loaded
            // machine by up to 83 ms (measured with both CPUs busy).
            assert!(
                latest_late.get() < Duration::from_millis(500),
                "{kind}: a 5 ms tick {:?} late",
                latest_late.get()
            );
        }
    });
}

/// A value a read finds damaged (here a checksum that does not match, as another process's
/// stray write leaves it) is an error item, and the stream goes on: the next publish mends it.
/// So is a value a crash left half written (its frame's stamp odd), which no copy of it ever
/// validates: said after the read timeout (1 s), as a plain read says it, with no poll spinning
/// on the executor's thread meanwhile (one did, for the whole second). A stray write of
/// `latest` far ahead of the writer's count does not hold the stream there.
#[test]
fn a_damaged_value_is_an_error_item_and_the_stream_goes_on() {
    use std::os::unix::fs::FileExt;
    let name = unique("async-values-damaged");
    let location = Location::shm(&name).unwrap();
    let ch = checksummed(&location);
    let mut values = mmf::Follower::open(&location, Duration::ZERO)
        .unwrap()
        .values(0);
    ch.publish_raw(Tag::TEXT, SLOT_VALUE).unwrap();
    let path = location.path().unwrap();
    let (file, at) = find_in_file(&path, SLOT_VALUE);
    file.write_at(&[SLOT_VALUE[0] ^ 1], at).unwrap();
    let err = block_on(values.recv(), Duration::from_secs(10))
        .expect("resolved")
        .unwrap_err();
    assert!(err.mended_by_publish(), "{err}");
    assert!(err.to_string().contains("checksum"), "{err}");
    ch.publish_raw(Tag::TEXT, b"mended").unwrap();
    let (meta, bytes) = block_on(values.recv(), Duration::from_secs(10))
        .expect("resolved")
        .unwrap();
    assert_eq!((meta.generation, &bytes[..]), (2, &b"mended"[..]));

    // Half written: the seqlock stamp of its slot's frame (64 bytes before its payload,
    // docs/FORMAT.md §6) left odd.
    ch.publish_raw(Tag::TEXT, SLOT_VALUE).unwrap();
    let (_, at) = find_in_file(&path, SLOT_VALUE);
    file.write_at(&3u64.to_le_bytes(), at - 64).unwrap();
    let t = Instant::now();
    let (got, longest) = block_on_timed(values.recv(), Duration::from_secs(10));
    let err = got.expect("resolved").unwrap_err();
    // It says how long all its tries took, not the last one's slice ("stayed busy for 2 ms",
    // which a review of the async API found).
    assert!(
        matches!(err, mmf::channel::Error::Contended { waited, .. }
            if waited >= Duration::from_millis(900)),
        "{err}"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    assert!(longest < Duration::from_millis(200), "{longest:?}");
    ch.publish_raw(Tag::TEXT, b"whole").unwrap();
    let (meta, bytes) = block_on(values.recv(), Duration::from_secs(10))
        .expect("resolved")
        .unwrap();
    assert_eq!((meta.generation, &bytes[..]), (4, &b"whole"[..]));

    // A stray write of `latest` (byte 128), far ahead of the writer's count: an error item,
    // then the writer's next publish, which brings the count back, comes (a review found the
    // stream's count left at the stray generation, and every value after it waited for in
    // vain).
    file.write_at(&((1_000_000u64 << 8) | 0xff).to_le_bytes(), 128)
        .unwrap();
    let got = block_on(values.recv(), Duration::from_secs(10)).expect("resolved");
    assert!(got.is_err(), "{got:?}");
    ch.publish_raw(Tag::TEXT, b"after the stray write").unwrap();
    let (meta, bytes) = block_on(values.recv(), Duration::from_secs(10))
        .expect("resolved")
        .unwrap();
    assert_eq!(
        (meta.generation, &bytes[..]),
        (5, &b"after the stray write"[..])
    );
    // Equal to the writer's next generation: an error item, and the writer's publish of it,
    // which leaves `latest` as the stray write left it, comes all the same (the stream waited
    // for a seventh).
    file.write_at(&((6u64 << 8) | 0xff).to_le_bytes(), 128)
        .unwrap();
    let got = block_on(values.recv(), Duration::from_secs(10)).expect("resolved");
    assert!(got.is_err(), "{got:?}");
    ch.publish_raw(Tag::TEXT, b"sixth").unwrap();
    let (meta, bytes) = block_on(values.recv(), Duration::from_secs(10))
        .expect("resolved")
        .unwrap();
    assert_eq!((meta.generation, &bytes[..]), (6, &b"sixth"[..]));
    drop(values);
    Channel::remove(&name).unwrap();
}

/// `ValueStreamExt::typed`: each value of another process decoded into a serde type; one that is
/// not (text where a config was expected) is an error item with its generation, and the stream
/// goes on.
#[test]
fn a_typed_stream_decodes_each_value_and_goes_on_past_one_that_does_not() {
    use mmf_codec::ValueStreamExt;
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Config {
        threads: u32,
    }
    let name = unique("async-typed");
    let ch = Channel::create(&name, 256).unwrap();
    let ack = Channel::create(format!("{name}-ack"), 64).unwrap();
    let mut configs = mmf::Follower::open(Location::shm(&name).unwrap(), Duration::ZERO)
        .unwrap()
        .values(0)
        .typed::<Config>();
    // A stream can be moved into a spawned task, and its `recv` awaited in one.
    fn spawnable<T: Send + Unpin + 'static>(_: &T) {}
    fn sendable<F: Future + Send>(_: &F) {}
    spawnable(&configs);
    sendable(&configs.recv());
    // Fused (it never ends), as `futures::select!` asks of a stream.
    fn fused<S: futures_core::stream::FusedStream>(s: &S) -> bool {
        !s.is_terminated()
    }
    assert!(fused(&configs));
    let child = spawn_child("typed-publisher", &[("MMF_NAME", name.clone())]);
    let mut got = Vec::new();
    for _ in 0..3 {
        let item = block_on(configs.recv(), Duration::from_secs(20)).expect("resolved");
        got.push(match item {
            Ok((meta, config)) => Ok((meta.generation, config.threads)),
            Err(e) => Err(e.generation()),
        });
        ack.publish_raw(Tag::BYTES, b"").unwrap();
    }
    assert_eq!(got, [Ok((1, 8)), Err(Some(2)), Ok((3, 9))]);
    // What the stream beneath says, passed through: the last value given out, and the channel.
    assert_eq!(configs.last_generation(), 3);
    assert_eq!(configs.incarnation(), ch.incarnation());
    assert!(child.wait_with_output().unwrap().status.success());
    drop((ch, configs));
    Channel::remove(&name).unwrap();
    Channel::remove(format!("{name}-ack")).unwrap();
}

/// The streams polled through `futures_core::Stream`, as `StreamExt::next` and `select!` poll
/// them, not through their own `recv`: the untyped stream, and the typed one over it, each
/// value given out once, a value that does not decode an error item, and the stream going on.
#[test]
fn the_streams_polled_as_streams_give_each_value() {
    use futures_core::Stream;
    use mmf_codec::ValueStreamExt;
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Config {
        threads: u32,
    }
    /// The stream's next item as `StreamExt::next` polls it, within `timeout`.
    fn next_within<S: Stream + Unpin>(s: &mut S, timeout: Duration) -> Option<Option<S::Item>> {
        block_on(
            std::future::poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)),
            timeout,
        )
    }
    fn next<S: Stream + Unpin>(s: &mut S) -> Option<Option<S::Item>> {
        next_within(s, Duration::from_secs(10))
    }
    let name = unique("async-stream-trait");
    let ch = Channel::create(&name, 256).unwrap();
    let follower = || mmf::Follower::open(Location::shm(&name).unwrap(), Duration::ZERO).unwrap();
    let mut values = follower().values(0);
    let mut configs = follower().values(0).typed::<Config>();

    ch.publish_json(r#"{"threads": 8}"#).unwrap();
    let (meta, bytes) = next(&mut values).expect("ready").expect("an item").unwrap();
    assert_eq!((meta.generation, meta.tag), (1, Tag::MSGPACK));
    assert_eq!(
        mmf::decode::<Config>(&ch, meta, &bytes).unwrap(),
        Config { threads: 8 }
    );
    let (meta, config) = next(&mut configs)
        .expect("ready")
        .expect("an item")
        .unwrap();
    assert_eq!((meta.generation, config), (1, Config { threads: 8 }));
    // Nothing newer: pending, not the same value again.
    assert!(next_within(&mut values, Duration::from_millis(30)).is_none());

    ch.publish_str("not a config").unwrap();
    let err = next(&mut configs)
        .expect("ready")
        .expect("an item")
        .unwrap_err();
    assert_eq!(err.generation(), Some(2));
    ch.publish_json(r#"{"threads": 9}"#).unwrap();
    let (meta, config) = next(&mut configs)
        .expect("ready")
        .expect("an item")
        .unwrap();
    assert_eq!((meta.generation, config), (3, Config { threads: 9 }));
    assert_eq!(configs.last_generation(), 3);
    assert_eq!(configs.incarnation(), ch.incarnation());
    let (meta, _) = next(&mut values).expect("ready").expect("an item").unwrap();
    assert_eq!(meta.generation, 3, "the newest, the ones between skipped");
    drop((values, configs, ch));
    Channel::remove(&name).unwrap();
}
