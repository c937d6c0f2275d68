//! Real processes sharing real mappings: a writer publishing back-to-back while two readers
//! verify every snapshot they take (the torn-read test), and the seed's two-process scenario.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mmf::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Entry point of every child process (does nothing in a normal test run).
#[test]
fn child() {
    let Some((role, name)) = child_role() else {
        return;
    };
    match role.as_str() {
        "writer" => publish_until_stopped(&name, 256),
        "reader" => reader(&name),
        "reader-any" => reader_any(&name),
        "seed-b" => seed_b(&name),
        "panicking-worker" => panicking_worker(&name),
        "remover" => {
            Channel::remove(&name).unwrap();
        }
        "replacer" => {
            Options::new()
                .capacity(64)
                .create_or_replace(&name)
                .unwrap();
        }
        other => panic!("unknown role {other}"),
    }
}

fn env_u64(key: &str) -> u64 {
    std::env::var(key).unwrap().parse().unwrap()
}

/// Takes `MMF_SNAPSHOTS` snapshots, verifying each, and goes on (for up to 10 s) until it has
/// seen at least two generations: on a loaded 2-core machine the writer can be descheduled for
/// the few milliseconds that a burst of fast reads of one small value takes. Reports counts.
fn reader(name: &str) {
    let ch = Channel::open(name).unwrap();
    let want = env_u64("MMF_SNAPSHOTS");
    let mut buf = Vec::new();
    let (mut torn, mut retries, mut distinct, mut last_gen) = (0u64, 0u64, 0u64, 0u64);
    let started = Instant::now();
    let mut taken = 0u64;
    while taken < want || (distinct < 2 && started.elapsed() < Duration::from_secs(10)) {
        taken += 1;
        let meta = ch.read_into(&mut buf).unwrap();
        retries += u64::from(meta.retries);
        assert!(meta.generation >= last_gen, "generation went backwards");
        if meta.generation == 0 {
            continue;
        }
        match check_value(&buf) {
            // The writer cycles through 256 values: generation g carries value (g - 1) % 256.
            Some(seq) if seq == (meta.generation - 1) % 256 => {
                if meta.generation != last_gen {
                    distinct += 1;
                }
            }
            _ => torn += 1,
        }
        last_gen = meta.generation;
    }
    print_stats(&json!({
        "snapshots": taken, "torn": torn, "retries": retries, "distinct": distinct,
        "pinned": ch.is_pinned(), "seconds": started.elapsed().as_secs_f64(),
    }));
}

/// Waits until `ch` has had `n` values published, up to 120 s (then fails): its writers make
/// their values before they publish, which takes seconds under qemu-user.
fn until_published(ch: &Channel, n: u64) {
    let t0 = Instant::now();
    while ch.generation() < n {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "the writers published {} values in 120 s",
            ch.generation()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Runs one writer and two readers over a fresh channel of `capacity` bytes.
fn torn_read_run(what: &str, capacity: usize, pins: usize, snapshots_each: u64) -> (u64, u64, u64) {
    let name = unique(what);
    let ch = Options::new()
        .capacity(capacity)
        .readers(pins)
        .create(Location::shm(&name).unwrap())
        .unwrap();
    let stop = Channel::create(format!("{name}-stop"), 8).unwrap();
    let _stop = StopOnDrop(&stop);
    let env = |extra: Option<u64>| {
        let mut v = vec![("MMF_NAME", name.clone())];
        if let Some(n) = extra {
            v.push(("MMF_SNAPSHOTS", n.to_string()));
        }
        v
    };
    let writer = spawn_child("writer", &env(None));
    // Let the writer get going so that readers race it from their first read, and give their
    // 10 s to a writer that publishes. It makes its values first: 32 MiB of them at 256 KiB,
    // which took over 10 s under qemu-user on a Zen 3 host (a local CI run in stop 71): the
    // readers had given up and the stop was out before its first publish.
    until_published(&ch, 100);
    let readers: Vec<_> = (0..2)
        .map(|_| spawn_child("reader", &env(Some(snapshots_each))))
        .collect();
    let stats: Vec<_> = readers.into_iter().map(child_stats).collect();
    stop.publish_raw(Tag::BYTES, b"stop").unwrap();
    let published = child_stats(writer)["published"].as_u64().unwrap();
    Channel::remove(&name).unwrap();
    Channel::remove(format!("{name}-stop")).unwrap();
    let total: u64 = stats.iter().map(|s| s["snapshots"].as_u64().unwrap()).sum();
    let torn: u64 = stats.iter().map(|s| s["torn"].as_u64().unwrap()).sum();
    let retries: u64 = stats.iter().map(|s| s["retries"].as_u64().unwrap()).sum();
    eprintln!("{what}: {published} published, {total} snapshots verified, {torn} torn, {retries} retries, readers: {stats:?}");
    for s in &stats {
        assert_eq!(
            s["pinned"].as_bool().unwrap(),
            pins > 0,
            "readers hold pins if there are any"
        );
        assert!(
            s["distinct"].as_u64().unwrap() > 1,
            "readers saw the value change: {s}"
        );
    }
    (total, torn, published)
}

#[test]
fn a_million_snapshots_under_a_back_to_back_writer_none_torn() {
    let (total, torn, published) = torn_read_run("million", 4096, 4, 500_000);
    assert!(total >= 1_000_000);
    assert_eq!(torn, 0);
    assert!(published > 1000, "the writer kept publishing");
}

#[test]
fn small_values_through_the_header_under_a_back_to_back_writer_none_torn() {
    // Capacity 200: values of 12 to 200 bytes, most of them also inline in the header (up to 120
    // bytes), the rest in their slot only: both read paths, and the switches between them, under
    // a writer that rewrites the inline buffers and descriptors all the time.
    let (total, torn, _) = torn_read_run("small", 200, 4, 300_000);
    assert!(total >= 600_000);
    assert_eq!(torn, 0);
}

#[test]
fn large_values_under_a_back_to_back_writer_none_torn() {
    let (_, torn, _) = torn_read_run("large", 256 * 1024, 4, 3_000);
    assert_eq!(torn, 0);
}

#[test]
fn readers_without_pins_rely_on_validation_and_see_none_torn() {
    // No pin entries: two slots, so the writer keeps overwriting the slot a reader may be copying;
    // only the seqlock validation stands between the readers and torn values.
    let (total, torn, _) = torn_read_run("unpinned", 64 * 1024, 0, 20_000);
    // At least: a reader goes on past its count until it has seen two generations (a writer
    // descheduled on a loaded machine; a CI run saw 55,591 snapshots, 2 generations each).
    assert!(total >= 40_000, "{total}");
    assert_eq!(torn, 0);
}

#[test]
fn writers_in_several_processes_exclude_each_other() {
    // Three writer processes publish back-to-back at once while two readers verify: every
    // publish gets its own generation (none lost, none doubled) and no snapshot is torn.
    let name = unique("writers");
    let ch = Channel::create(&name, 2048).unwrap();
    let stop = Channel::create(format!("{name}-stop"), 8).unwrap();
    let _stop = StopOnDrop(&stop);
    let env = [("MMF_NAME", name.clone())];
    let writers: Vec<_> = (0..3).map(|_| spawn_child("writer", &env)).collect();
    until_published(&ch, 1000);
    let readers: Vec<_> = (0..2)
        .map(|_| {
            spawn_child(
                "reader-any",
                &[
                    ("MMF_NAME", name.clone()),
                    ("MMF_SNAPSHOTS", "100000".into()),
                ],
            )
        })
        .collect();
    let stats: Vec<_> = readers.into_iter().map(child_stats).collect();
    stop.publish_raw(Tag::BYTES, b"stop").unwrap();
    let published: u64 = writers
        .into_iter()
        .map(|w| child_stats(w)["published"].as_u64().unwrap())
        .sum();
    assert_eq!(
        ch.generation(),
        published,
        "one generation per publish, across writers"
    );
    for s in &stats {
        assert_eq!(s["torn"], 0, "{s}");
    }
    Channel::remove(&name).unwrap();
    Channel::remove(format!("{name}-stop")).unwrap();
}

/// Like `reader`, but only checks that each value is whole (several writers interleave).
fn reader_any(name: &str) {
    let ch = Channel::open(name).unwrap();
    let mut buf = Vec::new();
    let mut torn = 0u64;
    for _ in 0..env_u64("MMF_SNAPSHOTS") {
        let meta = ch.read_into(&mut buf).unwrap();
        if meta.generation > 0 && check_value(&buf).is_none() {
            torn += 1;
        }
    }
    print_stats(&json!({ "torn": torn }));
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct ProcessInfo {
    id: u32,
    process_name: String,
    handle_count: u32,
    has_exited: bool,
    modules: Vec<String>,
}

/// Process B of the seed: open, read, answer.
fn seed_b(name: &str) {
    let ch = Channel::open(name).unwrap();
    assert_eq!(ch.read_string().unwrap(), "Hello World!");
    ch.publish_str("Hello back!").unwrap();
    // The seed's second example: a process description as an object.
    let me = ProcessInfo {
        id: std::process::id(),
        process_name: "seed-b".into(),
        handle_count: 784,
        has_exited: false,
        modules: vec!["PowerShell_ISE.exe".into()],
    };
    let obj = Channel::open(format!("{name}-obj")).unwrap();
    obj.publish(&me).unwrap();
    print_stats(&json!({ "pid": me.id }));
}

#[test]
fn the_seed_scenario_across_two_processes() {
    let name = unique("seed");
    let a = Channel::create(&name, 1024).unwrap();
    let obj = Channel::create(format!("{name}-obj"), 4096).unwrap();
    a.publish_str("Hello World!").unwrap();
    let b = spawn_child("seed-b", &[("MMF_NAME", name.clone())]);
    let pid = child_stats(b)["pid"].as_u64().unwrap() as u32;
    assert_eq!(a.read_string().unwrap(), "Hello back!");
    let info: ProcessInfo = obj.read().unwrap();
    assert_eq!((info.id, info.process_name.as_str()), (pid, "seed-b"));
    let as_json: serde_json::Value = serde_json::from_str(&obj.read_json().unwrap()).unwrap();
    assert_eq!(as_json["handle_count"], 784);
    assert_eq!(a.info().last_writer_pid, Some(pid));
    Channel::remove(&name).unwrap();
    Channel::remove(format!("{name}-obj")).unwrap();
}

/// A worker whose results channel is removed when its handle drops: it publishes a partial
/// result, waits for the parent's acknowledgement, then panics. The unwinding drops the handle.
fn panicking_worker(name: &str) {
    let results = Options::new()
        .capacity(64)
        .remove_on_drop(true)
        .create(Location::parse(name).unwrap())
        .unwrap();
    results.publish_str("partial").unwrap();
    assert_eq!(results.wait_for_change(1, Duration::from_secs(20)), Some(2));
    panic!("the worker fails after its first result (on purpose)");
}

/// A harness's worker that panics leaves no channel behind (`Options::remove_on_drop`), and
/// the parent's follower, holding it, sees the name gone.
#[test]
fn a_channel_removed_on_drop_goes_with_a_worker_that_panics() {
    let name = unique("remove-on-drop");
    let mut worker = spawn_child("panicking-worker", &[("MMF_NAME", name.clone())]);
    let location = Location::parse(&name).unwrap();
    let mut follower = Follower::open(&location, Duration::from_secs(20)).unwrap();
    let (mut seen, mut buf) = (0, Vec::new());
    let meta = follower
        .read_after_into(&mut seen, &mut buf, Duration::from_secs(20))
        .unwrap();
    assert_eq!(
        (meta.map(|m| m.generation), &buf[..]),
        (Some(1), &b"partial"[..])
    );
    let acked = follower.channel().publish_str("ack").unwrap();
    assert!(!worker.wait().unwrap().success(), "the worker panicked");
    assert!(
        matches!(
            Channel::open(&name),
            Err(mmf::channel::Error::NotFound { .. })
        ),
        "the name went with the worker's handle"
    );
    assert!(!follower.channel().is_current().unwrap());
    assert_eq!(
        follower.wait(acked, Duration::from_millis(50)).unwrap(),
        None,
        "nothing newer, and no new channel"
    );
    assert!(follower.is_gone());
}

/// `Channel::close` removes what the handle's drop would, and says how that went: removed, left
/// (not made to be removed, or the name leads elsewhere since), or the OS's refusal, after which
/// the channel stays.
#[test]
fn close_says_whether_it_removed_the_channel() {
    let name = unique("close-says");
    let location = Location::parse(&name).unwrap();
    let mut options = Options::new();
    options.capacity(64).remove_on_drop(true);
    let gone = || {
        matches!(
            Channel::open(&name),
            Err(mmf::channel::Error::NotFound { .. })
        )
    };

    assert!(options.create(&location).unwrap().close().unwrap());
    assert!(gone());
    // An opener with the same options leaves it; so does a creating handle without them.
    let ch = options.create(&location).unwrap();
    assert!(!options.open(&location).unwrap().close().unwrap());
    assert!(!gone());
    // Removed by someone else first: nothing left for `close` to do.
    Channel::remove(&name).unwrap();
    assert!(!ch.close().unwrap());
    // Made anew under the name since: the new one stays.
    let first = options.create(&location).unwrap();
    let second = Options::new()
        .capacity(64)
        .create_or_replace(&location)
        .unwrap();
    assert!(!first.close().unwrap());
    assert!(!gone());
    assert!(!second.close().unwrap(), "made without remove_on_drop");
    Channel::remove(&name).unwrap();

    // A file path that now holds a file that is no channel: left, and no error.
    let path = std::env::temp_dir().join(format!("{}.mmf", unique("close-immutable")));
    let file = Location::file(&path);
    let ch = options.create(&file).unwrap();
    let notes = path.with_extension("txt");
    std::fs::write(&notes, "notes").unwrap();
    std::fs::rename(&notes, &path).unwrap();
    assert!(!ch.close().unwrap());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "notes");
    std::fs::remove_file(&path).unwrap();

    // Its own file, whose magic number another program overwrote: still its own, removed.
    let ch = options.create(&file).unwrap();
    std::os::unix::fs::FileExt::write_all_at(
        &std::fs::OpenOptions::new().write(true).open(&path).unwrap(),
        b"scribble",
        0,
    )
    .unwrap();
    assert!(matches!(
        Channel::remove(&file),
        Err(mmf::channel::Error::WrongMagic { .. })
    ));
    assert!(ch.close().unwrap(), "its own file is removed");
    assert!(!path.exists());

    // An immutable file refuses its removal, root's too.
    let ch = options.create(&file).unwrap();
    let fixed = std::process::Command::new("chattr")
        .arg("+i")
        .arg(&path)
        .status()
        .is_ok_and(|s| s.success());
    if !fixed {
        skipped("the refusal: chattr +i not supported here");
        drop(ch);
        assert!(!path.exists());
        return;
    }
    let err = ch.close().unwrap_err();
    let _ = std::process::Command::new("chattr")
        .arg("-i")
        .arg(&path)
        .status();
    assert!(
        matches!(err, mmf::channel::Error::PermissionDenied { .. }),
        "{err:?}"
    );
    assert!(path.exists(), "the channel stays");
    Channel::remove(&file).unwrap();
}

/// `keep` disarms a handle made to remove its channel: neither its drop nor its `close`
/// removes the channel then, and it says whether there was anything to disarm.
#[test]
fn keep_leaves_the_channel_to_outlast_its_maker() {
    let name = unique("keep-outlasts");
    let location = Location::parse(&name).unwrap();
    let mut options = Options::new();
    options.capacity(64).remove_on_drop(true);

    let mut ch = options.create(&location).unwrap();
    ch.publish_raw(Tag::TEXT, b"kept").unwrap();
    assert!(ch.keep(), "it was made to remove its channel");
    assert!(!ch.keep(), "once");
    drop(ch);
    assert_eq!(Channel::open(&name).unwrap().read_raw().unwrap().1, b"kept");

    // `close` after `keep` leaves it too; a handle with nothing to disarm says so.
    let mut opener = options.open(&location).unwrap();
    assert!(!opener.keep(), "an opener never removes the channel");
    Channel::remove(&name).unwrap();
    let mut ch = options.create(&location).unwrap();
    assert!(ch.keep());
    assert!(!ch.close().unwrap(), "nothing removed");
    assert!(Channel::open(&name).is_ok());
    Channel::remove(&name).unwrap();
}

/// The name goes only with the handle that made it, in the process that made it: not with a
/// replacement made since, nor with a handle that opened it with the same options, nor with a
/// forked child's copy of the handle.
#[test]
fn remove_on_drop_leaves_a_replacement_an_opener_and_a_forked_childs_copy_alone() {
    let name = unique("remove-on-drop-only-its-own");
    let location = Location::parse(&name).unwrap();
    let mut options = Options::new();
    options.capacity(64).remove_on_drop(true);
    // The name is there until `ch`, the creating handle, drops, and goes with it.
    let kept_until_dropped = |ch: Channel, why: &str| {
        assert!(Channel::open(&name).is_ok(), "{why}");
        drop(ch);
        assert!(matches!(
            Channel::open(&name),
            Err(mmf::channel::Error::NotFound { .. })
        ));
    };

    // A forked child that drops its copy (and exits) leaves the name.
    let ch = options.create(&location).unwrap();
    // SAFETY: the child only drops its copy of the handle and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        drop(ch);
        // SAFETY: ends the forked child without running the parent's exit handlers.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above; `status` is a valid out-pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    kept_until_dropped(ch, "the child's drop left the name");

    // Handles that open it with the same options, or find it there (`open_or_create`), leave
    // it: only the creating handle removes it.
    let ch = options.create(&location).unwrap();
    drop(options.open(&location).unwrap());
    drop(options.open_or_create(&location).unwrap());
    kept_until_dropped(ch, "an opener's drop left the name");

    // A channel made anew under the name since stays.
    let first = options.create(&location).unwrap();
    let second = Options::new()
        .capacity(64)
        .create_or_replace(&location)
        .unwrap();
    drop(first);
    let open = Channel::open(&name).unwrap();
    assert_eq!(open.incarnation(), second.incarnation());
    drop((open, second));
    Channel::remove(&name).unwrap();
}

/// A long-lived writer learns from one load per publish that another process removed or
/// replaced its channel (`retired_hint`), and confirms it with `is_current`; what the hint
/// misses (a plain unlink) and what makes it wrong (a stray write of the word) are as its docs
/// say.
#[test]
fn a_writer_learns_from_the_retired_hint_that_another_process_replaced_or_removed_its_channel() {
    let name = unique("retired-hint");
    let writer = Channel::create(&name, 64).unwrap();
    writer.publish_str("first").unwrap();
    assert!(!writer.retired_hint() && writer.is_current().unwrap());

    let replacer = spawn_child("replacer", &[("MMF_NAME", name.clone())]);
    assert!(replacer.wait_with_output().unwrap().status.success());
    assert!(writer.retired_hint() && !writer.is_current().unwrap());
    // Following the name: the value goes where readers of the name look.
    let writer = Channel::open(&name).unwrap();
    assert!(!writer.retired_hint());
    writer.publish_str("second").unwrap();
    assert_eq!(
        Channel::open(&name).unwrap().read_string().unwrap(),
        "second"
    );

    let remover = spawn_child("remover", &[("MMF_NAME", name.clone())]);
    assert!(remover.wait_with_output().unwrap().status.success());
    assert!(writer.retired_hint() && !writer.is_current().unwrap());

    // Missed: a name unlinked by another program leaves the word 0.
    let unlinked = Channel::create(&name, 64).unwrap();
    let path = unlinked.location().path().unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(!unlinked.retired_hint() && !unlinked.is_current().unwrap());

    // Wrong: a stray write of the word (word 13, FORMAT.md §2) sets it on a current channel.
    let current = Channel::create(&name, 64).unwrap();
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&7u64.to_le_bytes(), 13 * 8).unwrap();
    assert!(current.retired_hint() && current.is_current().unwrap());
    Channel::remove(&name).unwrap();
}
