//! A channel's file truncated under live mappings, for real: with `mmf::truncation::install`
//! every access past the new end becomes `Error::Truncated`, and every other `SIGBUS` still ends
//! the process as before. The faults are real (another process shrinks the file; the kernel
//! raises the signal), and the cases that must die run in child processes.

mod common;

use std::future::Future;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use common::*;
use mmf::channel::Error as CoreError;
use mmf::prelude::*;
use mmf::truncation;

const SIGBUS: i32 = 7;

#[test]
fn child() {
    let Some((role, path)) = child_role() else {
        return;
    };
    let path = std::path::PathBuf::from(path);
    match role.as_str() {
        // Shrinks the file at `path` to `MMF_LEN` bytes: the "other process" of these tests.
        "shrink" => {
            let len = std::env::var("MMF_LEN").unwrap().parse().unwrap();
            set_len(&path, len);
        }
        // Reads a channel whose file is already truncated, without the handler: the default.
        "read-unguarded" => {
            let ch = open_file(&path);
            shrink(&path, 0);
            let _ = ch.read_raw();
            print_stats(&serde_json::json!({ "survived": true }));
        }
        // With the handler, touches a mapping of its own (not a channel) past its file's end.
        "foreign-mapping" => {
            truncation::install().unwrap();
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .unwrap();
            // SAFETY: nothing else maps or changes the file while the mapping lives, except the
            // shrink below, whose point is that the one read after it faults and ends the
            // process (the test checks that it does) before the bytes can be used.
            let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
            file.set_len(0).unwrap();
            let byte = std::hint::black_box(&map[..])[100];
            print_stats(&serde_json::json!({ "survived": true, "byte": byte }));
        }
        // With the handler, receives SIGBUS sent by a process, not raised by a fault. Before
        // ours, the disposition is Rust's own handler, which (mmf or not) swallows the first
        // such signal and restores the default action, so the second one ends the process; or,
        // with `MMF_LEN` = "default", the default action itself, and then the first one does.
        "killed" => {
            if std::env::var("MMF_LEN").is_ok_and(|v| v == "default") {
                // SAFETY: `signal` takes no pointers; SIG_DFL is the default action, set before
                // any handler of this process runs.
                unsafe { libc::signal(libc::SIGBUS, libc::SIG_DFL) };
            }
            truncation::install().unwrap();
            let ch = open_file(&path);
            ch.read_raw().unwrap();
            for _ in 0..2 {
                std::process::Command::new("kill")
                    .args(["-BUS", &std::process::id().to_string()])
                    .status()
                    .unwrap();
                std::thread::sleep(Duration::from_secs(1));
                println!("survived one");
            }
            print_stats(&serde_json::json!({ "survived": true }));
        }
        // With the handler, survives one `kill -BUS` (Rust's handler swallows the first) and
        // still turns the next truncation into an error.
        "killed-then-truncated" => {
            truncation::install().unwrap();
            let ch = open_file(&path);
            ch.read_raw().unwrap();
            std::process::Command::new("kill")
                .args(["-BUS", &std::process::id().to_string()])
                .status()
                .unwrap();
            std::thread::sleep(Duration::from_millis(500));
            assert!(
                truncation::is_installed(),
                "the handler is gone after kill -BUS"
            );
            set_len(&path, 0);
            assert!(is_truncated(ch.read_raw()));
            print_stats(&serde_json::json!({ "survived": true }));
        }
        // SIGBUS ignored before `install`: a `kill -BUS` stays ignored.
        "ignored" => {
            // SAFETY: `signal` takes no pointers; SIG_IGN before any handler of ours runs.
            unsafe { libc::signal(libc::SIGBUS, libc::SIG_IGN) };
            truncation::install().unwrap();
            std::process::Command::new("kill")
                .args(["-BUS", &std::process::id().to_string()])
                .status()
                .unwrap();
            std::thread::sleep(Duration::from_millis(500));
            print_stats(&serde_json::json!({ "survived": true }));
        }
        other => panic!("unknown role {other}"),
    }
}

/// Removes the file channel at `path` and makes it anew (64 bytes), holding the text "anew":
/// a writer's restart, as a follower sees it.
fn made_anew(path: &std::path::Path) -> Channel {
    std::fs::remove_file(path).unwrap();
    let anew = Options::new()
        .capacity(64)
        .create(Location::File(path.to_owned()))
        .unwrap();
    anew.publish_str("anew").unwrap();
    anew
}

fn shrink(path: &std::path::Path, len: u64) {
    let status = spawn_child(
        "shrink",
        &[
            ("MMF_NAME", path.display().to_string()),
            ("MMF_LEN", len.to_string()),
        ],
    )
    .wait()
    .unwrap();
    assert!(status.success(), "shrinking {}: {status:?}", path.display());
}

fn open_file(path: impl AsRef<std::path::Path>) -> Channel {
    Options::new()
        .open(Location::File(path.as_ref().to_owned()))
        .unwrap()
}

/// A file channel in a fresh temporary path, removed on drop.
struct FileChannel {
    path: std::path::PathBuf,
    ch: Channel,
}

impl FileChannel {
    fn new(what: &str, capacity: usize) -> FileChannel {
        let path = std::env::temp_dir().join(unique(what));
        let _ = std::fs::remove_file(&path);
        let ch = Options::new()
            .capacity(capacity)
            .create(Location::File(path.clone()))
            .unwrap();
        FileChannel { path, ch }
    }
}

impl Drop for FileChannel {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn is_truncated<T: std::fmt::Debug>(r: Result<T, CoreError>) -> bool {
    matches!(r, Err(CoreError::Truncated { .. }))
}

fn is_truncated_codec<T: std::fmt::Debug>(r: mmf::Result<T>) -> bool {
    matches!(r, Err(mmf::Error::Channel(CoreError::Truncated { .. })))
}

#[test]
fn every_access_past_the_new_end_is_an_error_and_the_process_lives_on() {
    truncation::install().unwrap();
    assert!(truncation::is_installed());
    let caught_before = truncation::caught();
    let fc = FileChannel::new("trunc-all", 256 * 1024);
    let writer = &fc.ch;
    let big = vec![0xA5u8; 200_000];
    writer.publish_raw(Tag::BYTES, &big).unwrap();
    let reader = open_file(&fc.path);
    let read_only = Options::new()
        .read_only(true)
        .open(Location::File(fc.path.clone()))
        .unwrap();
    assert_eq!(reader.read_raw().unwrap().1, big);
    assert_eq!(read_only.read_raw().unwrap().1, big);

    // Another process keeps the header's page and drops the rest, slots included.
    shrink(&fc.path, 4096);
    for (what, ch) in [
        ("writer", writer),
        ("reader", &reader),
        ("read-only", &read_only),
    ] {
        assert!(is_truncated(ch.read_raw()), "{what}: read");
        // Once tripped, a handle stays so, even for a value that would fit the header.
        assert!(is_truncated(ch.read_raw()), "{what}: second read");
        assert!(is_truncated(ch.verify()), "{what}: verify");
        assert!(is_truncated_codec(ch.read_string()), "{what}: read_text");
        let _ = ch.generation();
        let _ = ch.info();
        // A wait returns at once, "changed", so that the read after it reports the truncation.
        assert_eq!(
            ch.wait_for_change(5, Duration::from_secs(30)),
            Some(6),
            "{what}: wait"
        );
    }
    assert!(is_truncated(writer.publish_raw(Tag::BYTES, &big)));
    assert!(is_truncated(reader.publish_raw(Tag::TEXT, b"small")));
    assert!(is_truncated_codec(writer.publish_str("small")));
    assert!(truncation::caught() > caught_before);
    // The message says what happened and what to do.
    let msg = reader.read_raw().unwrap_err().to_string();
    assert!(
        msg.contains("truncated while mapped") && msg.contains("open the channel again"),
        "{msg}"
    );
    // Dropping the handles is safe, and a new open of the shrunk file is refused.
    drop((reader, read_only));
    assert!(matches!(
        Options::new().open(Location::File(fc.path.clone())),
        Err(CoreError::Corrupt { .. })
    ));
}

#[test]
fn a_file_shrunk_to_nothing_under_a_small_value_is_an_error_too() {
    truncation::install().unwrap();
    let fc = FileChannel::new("trunc-zero", 1024);
    fc.ch.publish_str("Hello World!").unwrap();
    let reader = open_file(&fc.path);
    assert_eq!(reader.read_string().unwrap(), "Hello World!");
    shrink(&fc.path, 0);
    assert!(is_truncated_codec(reader.read_string()));
    assert!(is_truncated_codec(fc.ch.publish_str("again")));
    assert!(is_truncated(fc.ch.verify()));
}

#[test]
fn only_the_truncated_channel_trips_among_many() {
    truncation::install().unwrap();
    // More channels than one chunk of the registry holds (32), opened and dropped in turns so
    // that entries are reused.
    let mut channels: Vec<FileChannel> = (0..80)
        .map(|i| FileChannel::new(&format!("trunc-many-{i}"), 8192))
        .collect();
    for fc in channels.iter().step_by(3) {
        drop(open_file(&fc.path));
    }
    channels.truncate(70);
    let victim = 41;
    for (i, fc) in channels.iter().enumerate() {
        fc.ch.publish_raw(Tag::BYTES, &[i as u8; 6000]).unwrap();
    }
    shrink(&channels[victim].path, 0);
    for (i, fc) in channels.iter().enumerate() {
        let r = fc.ch.read_raw();
        if i == victim {
            assert!(is_truncated(r), "channel {i}");
        } else {
            assert_eq!(r.unwrap().1, vec![i as u8; 6000], "channel {i}");
            assert!(fc.ch.verify().is_ok(), "channel {i}");
        }
    }
}

#[test]
fn a_reader_in_a_loop_sees_the_truncation_as_an_error() {
    truncation::install().unwrap();
    let fc = FileChannel::new("trunc-loop", 64 * 1024);
    let reader = open_file(&fc.path);
    let path = fc.path.clone();
    std::thread::scope(|s| {
        // Publishes and reads 50,000-byte values until the error comes, while a child process
        // shrinks the file to one page after 20 ms.
        let worker = s.spawn(|| {
            let mut buf = Vec::new();
            let value = vec![3u8; 50_000];
            let start = Instant::now();
            loop {
                let published = fc.ch.publish_raw(Tag::BYTES, &value);
                let read = reader.read_into(&mut buf);
                match (published, read) {
                    (Ok(_), Ok(_)) => assert_eq!(buf, value),
                    (p, r) => {
                        assert!(
                            p.is_err_and(|e| matches!(e, CoreError::Truncated { .. }))
                                || r.is_err_and(|e| matches!(e, CoreError::Truncated { .. })),
                            "an error other than Truncated"
                        );
                        return;
                    }
                }
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "no error after 20 s"
                );
            }
        });
        std::thread::sleep(Duration::from_millis(20));
        shrink(&path, 4096);
        worker.join().unwrap();
    });
}

#[test]
fn without_the_handler_a_truncated_channel_still_ends_the_process() {
    let fc = FileChannel::new("trunc-unguarded", 64 * 1024);
    fc.ch.publish_raw(Tag::BYTES, &[1; 60_000]).unwrap();
    let out = spawn_child(
        "read-unguarded",
        &[("MMF_NAME", fc.path.display().to_string())],
    )
    .wait_with_output()
    .unwrap();
    assert_eq!(out.status.signal(), Some(SIGBUS), "{:?}", out.status);
}

#[test]
fn with_the_handler_other_sigbus_faults_still_end_the_process() {
    let path = std::env::temp_dir().join(unique("trunc-foreign"));
    std::fs::write(&path, vec![1u8; 8192]).unwrap();
    let out = spawn_child(
        "foreign-mapping",
        &[("MMF_NAME", path.display().to_string())],
    )
    .wait_with_output()
    .unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(
        out.status.signal(),
        Some(SIGBUS),
        "a fault outside any channel must keep its default action: {:?}, {}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn with_the_handler_a_sigbus_sent_by_kill_gets_what_it_would_without() {
    let fc = FileChannel::new("trunc-killed", 1024);
    fc.ch.publish_str("x").unwrap();
    for (before, survivals) in [("rust", 1), ("default", 0)] {
        let out = spawn_child(
            "killed",
            &[
                ("MMF_NAME", fc.path.display().to_string()),
                ("MMF_LEN", before.to_owned()),
            ],
        )
        .wait_with_output()
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.signal(),
            Some(SIGBUS),
            "{before}: {:?}",
            out.status
        );
        assert_eq!(
            stdout.matches("survived one").count(),
            survivals,
            "{before}: {stdout}"
        );
    }
}

#[test]
fn after_a_kill_the_handler_is_still_there_and_ignored_stays_ignored() {
    let fc = FileChannel::new("trunc-kill-then", 64 * 1024);
    fc.ch.publish_raw(Tag::BYTES, &[5; 60_000]).unwrap();
    for role in ["killed-then-truncated", "ignored"] {
        let out = spawn_child(role, &[("MMF_NAME", fc.path.display().to_string())])
            .wait_with_output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("survived"),
            "{role}: {:?}\n{stdout}",
            out.status
        );
    }
}

#[test]
fn threads_sharing_a_handle_never_take_zeros_for_a_value() {
    truncation::install().unwrap();
    // Many short trials (the window is the handler's `mmap`, microseconds): a small value
    // (read from the header) cut to nothing, and a large one (from a slot) cut to the header's
    // page. The review's reproducer found ~90 zeroed or torn `Ok` reads per trial when the
    // mapping was marked only after its pages were replaced.
    let trials = env_or("MMF_TRUNCATION_TRIALS", 300);
    let (mut wrong, mut truncated) = (0u64, 0u64);
    for trial in 0..trials {
        let (len, cut) = if trial % 2 == 0 {
            (100, 0)
        } else {
            (50_000, 4096)
        };
        let fc = FileChannel::new(&format!("trunc-threads-{trial}"), 64 * 1024);
        let value = vec![9u8; len];
        fc.ch.publish_raw(Tag::BYTES, &value).unwrap();
        let reader = open_file(&fc.path);
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..3)
                .map(|_| {
                    s.spawn(|| {
                        let (mut buf, mut wrong) = (Vec::new(), 0u64);
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            match reader.read_into(&mut buf) {
                                Ok(meta) if meta.generation == 1 && buf == value => {}
                                Ok(_) => wrong += 1,
                                Err(CoreError::Truncated { .. }) => return (wrong, 1),
                                Err(e) => panic!("{e}"),
                            }
                        }
                        (wrong, 0)
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_micros(300));
            set_len(&fc.path, cut);
            std::thread::sleep(Duration::from_millis(5));
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            for w in workers {
                let (w, t) = w.join().unwrap();
                wrong += w;
                truncated += t;
            }
        });
    }
    assert_eq!(wrong, 0, "reads that returned zeros or a torn value as Ok");
    assert!(truncated > 0);
}

#[test]
fn a_tripped_writer_publishes_nothing_into_the_file() {
    truncation::install().unwrap();
    let fc = FileChannel::new("trunc-no-commit", 64 * 1024);
    let len = std::fs::metadata(&fc.path).unwrap().len();
    fc.ch.publish_raw(Tag::BYTES, &[1; 50_000]).unwrap();
    let before = fc.ch.generation();
    // The slots go, the header's page stays the file's.
    shrink(&fc.path, 4096);
    assert!(is_truncated(fc.ch.publish_raw(Tag::BYTES, &[2; 50_000])));
    assert!(is_truncated_codec(fc.ch.publish_str("small, header only")));
    assert!(is_truncated(fc.ch.publish_raw(Tag::BYTES, &[3; 50_000])));
    // Grown back to its size: the file's header still names the value from before.
    set_len(&fc.path, len);
    let again = open_file(&fc.path);
    assert_eq!(
        again.generation(),
        before,
        "a tripped publish reached the file"
    );
    // The header is whole; the value's slot came back as zeros, which `verify` and reads say.
    match again.verify() {
        Err(CoreError::Corrupt { what, .. }) => {
            assert!(what.contains("holds generation 0"), "{what}")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(again.read_raw(), Err(CoreError::Corrupt { .. })));
}

#[test]
fn waits_and_checksummed_reads_report_the_truncation_at_once() {
    truncation::install().unwrap();
    // `read_next_into` waits on the header: after a trip, Truncated, not a timeout.
    let fc = FileChannel::new("trunc-next", 1024);
    fc.ch.publish_str("x").unwrap();
    shrink(&fc.path, 0);
    let t = Instant::now();
    assert!(is_truncated(
        fc.ch
            .read_next_into(&mut Vec::new(), Duration::from_secs(30))
    ));
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    // Nor does a flush say that what the handle wrote reached the disk.
    assert!(is_truncated(fc.ch.flush()));
    // A checksummed channel's zeroed frame never validates: Truncated, not after the read
    // timeout.
    let path = std::env::temp_dir().join(unique("trunc-crc"));
    let ch = Options::new()
        .capacity(64 * 1024)
        .checksum(true)
        .read_timeout(Duration::from_secs(30))
        .create(Location::File(path.clone()))
        .unwrap();
    ch.publish_raw(Tag::BYTES, &[4; 50_000]).unwrap();
    shrink(&path, 4096);
    let t = Instant::now();
    assert!(is_truncated(ch.read_raw()));
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    drop(ch);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_pending_async_wait_is_woken_and_the_read_after_it_says_truncated() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Wake, Waker};
    /// Records a wake and unparks the polling thread: the test polls only when woken, as an
    /// executor does.
    struct Flag(AtomicBool, std::thread::Thread);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
            self.1.unpark();
        }
    }
    truncation::install().unwrap();
    // No value yet (`latest` is 0, which is also what the zero pages read, so only the mark
    // tells the notifier), and a value in place; cut to nothing either way.
    for (what, publish) in [("empty", false), ("with a value", true)] {
        let fc = FileChannel::new(&format!("trunc-async-{}", publish as u8), 1024);
        if publish {
            fc.ch.publish_str("x").unwrap();
        }
        let woken = Arc::new(Flag(AtomicBool::new(false), std::thread::current()));
        let waker: Waker = woken.clone().into();
        let mut cx = Context::from_waker(&waker);
        let mut fut = std::pin::pin!(fc.ch.changed(fc.ch.generation()));
        assert!(fut.as_mut().poll(&mut cx).is_pending(), "{what}");
        shrink(&fc.path, 0);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if woken.0.swap(false, Ordering::SeqCst) && fut.as_mut().poll(&mut cx).is_ready() {
                break;
            }
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("{what}: never woken after the truncation"));
            std::thread::park_timeout(left);
        }
        assert!(is_truncated_codec(fc.ch.read_string()), "{what}");
    }
}

#[test]
fn a_wait_after_a_trip_returns_at_once_so_that_loops_read_and_stop() {
    truncation::install().unwrap();
    let fc = FileChannel::new("trunc-wait", 1024);
    fc.ch.publish_str("x").unwrap();
    let since = fc.ch.generation();
    shrink(&fc.path, 0);
    // A loop that waits and reads only on a change: it must end with the error, not spin on
    // `None` or sleep out its timeouts.
    let t = Instant::now();
    let err = loop {
        if let Some(g) = fc.ch.wait_for_change(since, Duration::from_secs(30)) {
            assert!(g > since);
            break fc.ch.read_string().unwrap_err();
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "waits keep timing out"
        );
    };
    assert!(
        matches!(err, mmf::Error::Channel(CoreError::Truncated { .. })),
        "{err}"
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}

#[test]
fn a_file_cut_inside_a_page_is_seen_by_verify() {
    truncation::install().unwrap();
    let fc = FileChannel::new("trunc-partial", 1000);
    fc.ch.publish_raw(Tag::BYTES, &[6; 500]).unwrap();
    let len = std::fs::metadata(&fc.path).unwrap().len();
    // Inside the last page: no fault, the rest of the page reads as zeros.
    shrink(&fc.path, len - 100);
    assert!(matches!(fc.ch.verify(), Err(CoreError::Corrupt { .. })));
}

/// A stream of a followed name's values whose channel is truncated under it: the truncation is
/// an error item, said again at the stream's next look (100 ms later: a consumer that logs it
/// and goes on does not spin), and once a channel is made anew under the name, its values come.
#[test]
fn a_stream_of_values_says_the_truncation_and_takes_up_a_channel_made_anew() {
    use mmf_codec::ValueStreamExt;
    truncation::install().unwrap();
    let fc = FileChannel::new("trunc-stream", 1024);
    fc.ch.publish_str("x").unwrap();
    let follower = mmf::Follower::open(Location::File(fc.path.clone()), Duration::ZERO).unwrap();
    let mut values = follower.values(fc.ch.generation()).typed::<String>();
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    assert!(std::pin::pin!(values.recv()).poll(&mut cx).is_pending());
    shrink(&fc.path, 0);
    let truncated = |got: &mmf::Result<(Meta, String)>| {
        matches!(got, Err(mmf::Error::Channel(CoreError::Truncated { .. })))
    };
    let got = block_on(values.recv());
    assert!(truncated(&got), "{got:?}");
    let t = Instant::now();
    let got = block_on(values.recv());
    assert!(truncated(&got), "{got:?}");
    assert!(
        t.elapsed() >= Duration::from_millis(90),
        "{:?}",
        t.elapsed()
    );
    // Made anew under the name: the stream goes on with it.
    let anew = made_anew(&fc.path);
    let (meta, value) = block_on(values.recv()).unwrap();
    assert_eq!((meta.generation, value.as_str()), (1, "anew"));
    assert_eq!(values.incarnation(), anew.incarnation());
}

/// The same for a consumer's blocking loop (`FollowerExt::read_after`): the truncation is an
/// error, said again by the next call only after 100 ms (a loop that logs it does not spin),
/// and a channel made anew under the name is taken up.
#[test]
fn a_consumer_loop_says_the_truncation_and_takes_up_a_channel_made_anew() {
    truncation::install().unwrap();
    let fc = FileChannel::new("trunc-read-after", 1024);
    fc.ch.publish_str("x").unwrap();
    let mut follower =
        mmf::Follower::open(Location::File(fc.path.clone()), Duration::ZERO).unwrap();
    let mut seen = fc.ch.generation();
    shrink(&fc.path, 0);
    let truncated = |got: &mmf::Result<Option<(Meta, String)>>| {
        matches!(got, Err(mmf::Error::Channel(CoreError::Truncated { .. })))
    };
    let got = follower.read_after::<String>(&mut seen, Duration::from_secs(5));
    assert!(truncated(&got), "{got:?}");
    // Within a shorter timeout than the pause: nothing, and no look.
    let t = Instant::now();
    let got = follower.read_after::<String>(&mut seen, Duration::from_millis(20));
    assert!(matches!(got, Ok(None)), "{got:?}");
    let got = follower.read_after::<String>(&mut seen, Duration::from_secs(5));
    assert!(truncated(&got), "{got:?}");
    assert!(
        t.elapsed() >= Duration::from_millis(90),
        "{:?}",
        t.elapsed()
    );
    let anew = made_anew(&fc.path);
    let (meta, value) = follower
        .read_after::<String>(&mut seen, Duration::from_secs(5))
        .unwrap()
        .expect("the new channel's value");
    assert_eq!((meta.generation, value.as_str(), seen), (1, "anew", 1));
    assert_eq!(follower.channel().incarnation(), anew.incarnation());
}

/// Polls `f` to completion on this thread (parking between polls), for at most 10 s.
fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::sync::Arc::new(Unpark(std::thread::current())).into();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        let left = deadline
            .checked_duration_since(Instant::now())
            .expect("resolved within 10 s");
        std::thread::park_timeout(left);
    }
}
