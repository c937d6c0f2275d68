//! The channel's contract, run over every backing (private memory, shared memory, file), plus
//! every error path of naming, opening and corrupt mappings.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use mmf_core::{Channel, Error, Location, Options, Origin, OwnerState, ShmName, Tag};

/// What `f` answers once it answers `Some`, asked every 5 ms for at most 10 s (else `None`).
///
/// For a test that has just closed a lock's last holder (a handle, a file) and asks whether the
/// lock is free, the channel unused: a `flock` and an OFD lock belong to the open file
/// description, and a process that another test of this binary is spawning at that moment
/// holds a copy of every descriptor until its `exec` closes them (close-on-exec). Natively
/// that lasts microseconds; under qemu-user, whose spawn is slow, CI once found a lock still
/// held right after its holder was closed (e2b8f17). The test's assertion stays: on what `f`
/// answers within the bound.
fn once_released<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(x) = f() {
            return Some(x);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits ([`once_released`]) until no process holds `location` open: for a test that has just
/// closed its handles and asserts that a removal keeps the channel for another reason (its age,
/// a live writer, a finished start), which a handle living on in a forked child would answer
/// in its place.
fn released(location: &Location) {
    let unused = || matches!(mmf_core::host::in_use(location), Ok(false));
    assert!(
        once_released(|| unused().then_some(())).is_some(),
        "{location} still in use"
    );
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A unique location of each kind; removed again when dropped.
struct Scratch {
    location: Location,
}

/// With `MMF_TEST_FORKING_NEIGHBOUR` set (CI sets it for one more run of this binary), a thread
/// started with the first `Scratch` forks a child after another, each holding copies of every
/// descriptor of this process for 20 ms, until the tests end: what a test that spawns a process
/// does to the others for microseconds natively and for far longer under qemu-user. A test
/// that looks at a lock right after closing its holder, without `once_released`, fails within a
/// run or two so (`an_unjudgeable_lock_is_freed_once_no_process_has_the_channel_open` failed in
/// all six runs before it waited, `orphaned_pins_and_waiters_are_freed_and_live_holders_kept`
/// in one), and passes without it.
fn forking_neighbour() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    if std::env::var_os("MMF_TEST_FORKING_NEIGHBOUR").is_none() {
        return;
    }
    STARTED.call_once(|| {
        std::thread::spawn(|| loop {
            if let Err(e) = fork_and_reap(20_000) {
                // Not a silent end: the run would pass with no neighbour.
                eprintln!("forking neighbour: {e}");
                std::process::abort();
            }
        });
    });
}

/// Forks a child that holds copies of this process's descriptors for `us` microseconds and
/// exits, and reaps it.
fn fork_and_reap(us: u32) -> std::io::Result<()> {
    // SAFETY: the child calls only async-signal-safe functions (`usleep`, `_exit`) before it
    // exits, as a child of a threaded process must; the parent reaps it.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            libc::usleep(us);
            libc::_exit(0);
        }
        if pid < 0 {
            return Err(std::io::Error::last_os_error());
        }
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
    Ok(())
}

/// Whether this is the child that runs `test` alone; if not, runs it so (and returns `false`
/// once it passed): this binary's test `test` in a child with `var` set and a shared-memory
/// directory of its own (`MMF_SHM_DIR`), which must succeed and print `LOOKED`. For a test
/// that looks at a channel again and again while it forks ([`look_while_forking`]): here its
/// forks would copy the handles of other tests, whose listings would open its channel (and
/// the other way round).
fn alone(test: &str, var: &str) -> bool {
    if std::env::var_os(var).is_some() {
        return true;
    }
    let dir = fresh_dir(var);
    let shm_dir = format!("MMF_SHM_DIR={}", dir.display());
    let (status, stdout, stderr) = run_child(&["env", &shm_dir], test, var);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        status.success() && stdout.contains("LOOKED"),
        "{status:?}: {stdout}{stderr}"
    );
    false
}

/// Asks `look` again and again for 1.5 s while another thread forks one child after another,
/// each living 50 ms, as a service spawning helpers or a prefork server does; fails the test
/// at the first look that finds something wrong (`Some`). How many children were forked.
fn look_while_forking(mut look: impl FnMut() -> Option<String>) -> u32 {
    use std::sync::atomic::AtomicBool;
    // Ends the forker however the scope's body ends (a panic in it would otherwise leave the
    // scope waiting for the forker for ever).
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let stop = AtomicBool::new(false);
    std::thread::scope(|sc| {
        let forker = sc.spawn(|| {
            let mut forks = 0u32;
            while !stop.load(Ordering::Relaxed) && fork_and_reap(50_000).is_ok() {
                forks += 1;
            }
            forks
        });
        let stopping = Stop(&stop);
        let t = Instant::now();
        let (mut looks, mut wrong) = (0u32, None);
        while wrong.is_none() && t.elapsed() < Duration::from_millis(1500) {
            looks += 1;
            wrong = look().map(|w| format!("look {looks}: {w}"));
        }
        drop(stopping);
        let forks = forker.join().unwrap();
        assert_eq!(wrong, None, "after {forks} forks");
        assert!(forks >= 5, "only {forks} forks in {looks} looks");
        forks
    })
}

impl Scratch {
    fn new(kind: &str) -> Scratch {
        forking_neighbour();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        // The pid alone recurs across runs (a container's pids are small and repeat), and a
        // run that was killed leaves its files: the start time of this run tells them apart.
        let unique = format!("mmf-test-{}-{}-{n}", std::process::id(), run_stamp());
        let location = match kind {
            "shm" => Location::shm(&unique).unwrap(),
            "file" => Location::file(std::env::temp_dir().join(format!("{unique}.mmf"))),
            _ => Location::Anonymous,
        };
        Scratch { location }
    }

    fn name(&self) -> String {
        self.location.to_string()
    }

    fn path(&self) -> PathBuf {
        self.location.path().unwrap()
    }

    fn create(&self, capacity: usize) -> Channel {
        Options::new()
            .capacity(capacity)
            .create(&self.location)
            .unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Not `Channel::remove`: tests damage files until they are no channels at all.
        if let Some(path) = self.location.path() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Microseconds into the hour at which this test binary started naming channels.
/// A new, empty directory of this run's own in the temporary directory (the caller removes it).
fn fresh_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "mmf-test-{what}-{}-{}",
        std::process::id(),
        run_stamp()
    ));
    std::fs::create_dir(&dir).unwrap();
    dir
}

fn run_stamp() -> u64 {
    static STAMP: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *STAMP.get_or_init(|| {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH);
        now.map_or(0, |d| (d.as_micros() % 3_600_000_000) as u64)
    })
}

const BACKINGS: [&str; 3] = ["heap", "shm", "file"];

/// Runs `test` once per backing with a fresh channel of `capacity` bytes.
fn each_backing(capacity: usize, test: impl Fn(&str, &Channel)) {
    for kind in BACKINGS {
        let s = Scratch::new(kind);
        let ch = s.create(capacity);
        test(kind, &ch);
    }
}

#[test]
fn a_new_channel_is_empty() {
    each_backing(64, |kind, ch| {
        assert_eq!(ch.generation(), 0, "{kind}");
        let (meta, bytes) = ch.read_raw().unwrap();
        assert!(meta.is_unpublished(), "{kind}");
        assert_eq!((meta.tag, bytes.len()), (Tag::EMPTY, 0), "{kind}");
    });
}

#[test]
fn publish_then_read_round_trips_with_generations() {
    each_backing(100, |kind, ch| {
        let mut buf = Vec::new();
        for (i, len) in [0usize, 1, 7, 8, 9, 63, 64, 65, 100]
            .into_iter()
            .enumerate()
        {
            let value: Vec<u8> = (0..len).map(|b| (b * 31 + i) as u8).collect();
            let g = ch.publish_raw(Tag(300 + i as u16), &value).unwrap();
            assert_eq!(g, i as u64 + 1, "{kind}");
            let meta = ch.read_into(&mut buf).unwrap();
            assert_eq!(buf, value, "{kind} len {len}");
            assert_eq!(
                (meta.generation, meta.tag, meta.len),
                (g, Tag(300 + i as u16), len),
                "{kind}"
            );
            assert_eq!(ch.generation(), g, "{kind}");
        }
    });
}

#[test]
fn a_shorter_value_never_shows_the_tail_of_a_longer_one() {
    // The seed module's bug: writing "Hi" over "Hello World!" read back "Hillo World!".
    each_backing(64, |kind, ch| {
        for _ in 0..10 {
            ch.publish_raw(Tag::TEXT, b"Hello World!").unwrap();
            ch.publish_raw(Tag::TEXT, b"Hi").unwrap();
            assert_eq!(ch.read_raw().unwrap().1, b"Hi", "{kind}");
        }
    });
}

#[test]
fn too_large_is_refused_and_the_previous_value_stays() {
    each_backing(16, |kind, ch| {
        ch.publish_raw(Tag::TEXT, b"keep me").unwrap();
        let err = ch.publish_raw(Tag::TEXT, &[b'x'; 17]).unwrap_err();
        assert!(
            matches!(
                err,
                Error::TooLarge {
                    len: 17,
                    capacity: 16,
                    ref name,
                    ..
                } if *name == ch.location().to_string()
            ),
            "{kind}: {err}"
        );
        assert!(err.to_string().contains("nothing was published"), "{err}");
        // With several channels, which one refused it.
        let named = format!("channel '{}'", ch.location());
        assert!(err.to_string().contains(&named), "{err}");
        // The same through the streaming writer, which only finds out halfway.
        let err = ch
            .publish_with(Tag::TEXT, |w| {
                w.put(b"0123456789")?;
                w.put(b"0123456789")
            })
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::TooLarge {
                    len: 20,
                    capacity: 16,
                    ref name,
                    ..
                } if *name == ch.location().to_string()
            ),
            "{kind}: {err}"
        );
        // A fill closure that fails publishes nothing either.
        let err = ch
            .publish_with(Tag::TEXT, |w| {
                w.put(b"partial")?;
                Err(std::io::Error::other("serializer gave up"))
            })
            .unwrap_err();
        assert!(matches!(err, Error::Encode { .. }), "{kind}: {err}");
        let (meta, bytes) = ch.read_raw().unwrap();
        assert_eq!(
            (meta.generation, &bytes[..]),
            (1, &b"keep me"[..]),
            "{kind}"
        );
        // And the channel still works afterwards, over every slot.
        for i in 0..20u8 {
            ch.publish_raw(Tag::BYTES, &[i; 16]).unwrap();
            assert_eq!(ch.read_raw().unwrap().1, [i; 16], "{kind}");
        }
    });
}

#[test]
fn publish_with_streams_odd_sized_writes() {
    each_backing(1000, |kind, ch| {
        let mut expected = Vec::new();
        ch.publish_with(Tag::BYTES, |w| {
            for i in 0..40u8 {
                let piece: Vec<u8> = (0..(i % 13)).map(|k| k ^ i).collect();
                expected.extend_from_slice(&piece);
                w.put(&piece)?;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(ch.read_raw().unwrap().1, expected, "{kind}");
    });
}

/// A publish from inside a `publish_with` closure to the channel it fills (through the same
/// handle, or through another handle on that channel) would wait for the writer lock its own
/// thread holds, until the lock timeout: it is refused at once, and the outer publish goes on.
/// A publish to another channel from inside one is an ordinary publish.
#[test]
fn a_publish_from_inside_publish_with_on_the_same_channel_is_refused_at_once() {
    for kind in BACKINGS {
        let s = Scratch::new(kind);
        let ch = Options::new()
            .capacity(64)
            // Without the check, each inner publish would come back `Contended` after this.
            .lock_timeout(Duration::from_secs(2))
            .create(&s.location)
            .unwrap();
        let again = (kind != "heap").then(|| Options::new().open(&s.location).unwrap());
        let other = Channel::anonymous(64).unwrap();
        ch.publish_raw(Tag::TEXT, b"before").unwrap();
        let outer = ch.publish_with(Tag::TEXT, |w| {
            let inner = ch.publish_raw(Tag::TEXT, b"inner");
            assert!(
                matches!(inner, Err(Error::Reentrant { .. })),
                "{kind}: {inner:?}"
            );
            let inner = ch.publish_with(Tag::TEXT, |w| w.put(b"inner"));
            assert!(
                matches!(inner, Err(Error::Reentrant { .. })),
                "{kind}: {inner:?}"
            );
            let said = inner.unwrap_err().to_string();
            assert!(said.contains("once the closure has returned"), "{said}");
            if let Some(again) = &again {
                let inner = again.publish_raw(Tag::TEXT, b"inner");
                assert!(
                    matches!(inner, Err(Error::Reentrant { .. })),
                    "{kind}: {inner:?}"
                );
            }
            // Another channel, with a closure of its own that publishes to a third.
            other
                .publish_with(Tag::TEXT, |w| {
                    assert_eq!(
                        Channel::anonymous(8)
                            .unwrap()
                            .publish_raw(Tag::TEXT, b"x")
                            .unwrap(),
                        1
                    );
                    w.put(b"other")
                })
                .map_err(std::io::Error::other)?;
            w.put(b"outer")
        });
        assert_eq!(outer.unwrap(), 2, "{kind}");
        assert_eq!(ch.read_raw().unwrap().1, b"outer", "{kind}");
        assert_eq!(other.read_raw().unwrap().1, b"other", "{kind}");
        // Once the closure has returned the same publishes go through, from this thread and
        // from another.
        ch.publish_raw(Tag::TEXT, b"after").unwrap();
        std::thread::scope(|t| {
            t.spawn(|| ch.publish_raw(Tag::TEXT, b"thread").unwrap());
        });
        assert_eq!(ch.generation(), 4, "{kind}");
    }
    // However deep closures nest (each publishing to the next channel), the innermost publish
    // to its own channel is told at once.
    fn nest(chans: &[Channel]) -> std::io::Result<()> {
        let Some((first, rest)) = chans.split_first() else {
            return Ok(());
        };
        first
            .publish_with(Tag::TEXT, |w| {
                if rest.is_empty() {
                    let inner = first.publish_raw(Tag::TEXT, b"inner");
                    assert!(matches!(inner, Err(Error::Reentrant { .. })), "{inner:?}");
                }
                nest(rest)?;
                w.put(b"nested")
            })
            .map(drop)
            .map_err(std::io::Error::other)
    }
    let chans: Vec<Channel> = (0..8)
        .map(|_| {
            Options::new()
                .capacity(64)
                .lock_timeout(Duration::from_secs(2))
                .anonymous()
                .unwrap()
        })
        .collect();
    nest(&chans).unwrap();
    assert!(chans.iter().all(|c| c.generation() == 1));
}

#[test]
fn threads_never_see_torn_values() {
    // In-process stress over every backing: one writer, three readers (more than the default
    // pins would matter only with >4), every value self-checking.
    each_backing(4096, |kind, ch| {
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let readers: Vec<_> = (0..3)
                .map(|_| {
                    s.spawn(|| {
                        let mut buf = Vec::new();
                        let mut n = 0u64;
                        while !done.load(Ordering::Relaxed) || n == 0 {
                            let meta = ch.read_into(&mut buf).unwrap();
                            if meta.generation > 0 {
                                let fill = meta.generation as u8;
                                assert_eq!(buf.len(), 64 + (meta.generation as usize * 97) % 4000);
                                assert!(
                                    buf.iter().all(|&b| b == fill),
                                    "{kind}: torn at {}",
                                    meta.generation
                                );
                            }
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            for g in 1..=3000u64 {
                let len = 64 + (g as usize * 97) % 4000;
                ch.publish_raw(Tag::BYTES, &vec![g as u8; len]).unwrap();
            }
            done.store(true, Ordering::Relaxed);
            for r in readers {
                assert!(r.join().unwrap() > 0);
            }
        });
    });
}

#[test]
fn readers_with_and_without_a_pin_keep_up_with_small_values_published_back_to_back() {
    // Small values stay in the header only until a reader asks for slots: a pinned reader asks,
    // a read-only one cannot and relies on validation alone. Both complete every read (none may
    // time out) and never see a mix of two values.
    for kind in ["shm", "file"] {
        let s = Scratch::new(kind);
        let writer = s.create(128);
        let pinned = Options::new().open(&s.location).unwrap();
        let read_only = Options::new().read_only(true).open(&s.location).unwrap();
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|sc| {
            let w = sc.spawn(|| {
                let mut g = 0u64;
                while !done.load(Ordering::Relaxed) {
                    g += 1;
                    let len = 1 + (g as usize * 7) % 128;
                    writer.publish_raw(Tag::BYTES, &vec![g as u8; len]).unwrap();
                }
                g
            });
            // Each reader reads until the writer has published another 10,000 values meanwhile
            // (and at least 2,000 times): the writer may be descheduled for a while on a busy
            // machine, so the count of publishes, not of reads, says the reads overlapped them.
            let mut buf = Vec::new();
            for (who, r) in [("pinned", &pinned), ("read-only", &read_only)] {
                let (start, since) = (r.generation(), std::time::Instant::now());
                let mut reads = 0u64;
                while reads < 2000 || r.generation() < start + 10_000 {
                    let meta = r.read_into(&mut buf).unwrap();
                    let g = meta.generation;
                    if g > 0 {
                        assert_eq!(buf.len(), 1 + (g as usize * 7) % 128, "{kind} {who}");
                        assert!(
                            buf.iter().all(|&b| b == g as u8),
                            "{kind} {who}: torn at {g}"
                        );
                    }
                    reads += 1;
                    assert!(
                        since.elapsed().as_secs() < 60,
                        "{kind} {who}: the writer stalled"
                    );
                }
            }
            done.store(true, Ordering::Relaxed);
            w.join().unwrap();
        });
    }
}

#[test]
fn a_second_handle_sees_the_same_channel() {
    for kind in ["shm", "file"] {
        let s = Scratch::new(kind);
        let a = s.create(64);
        a.publish_raw(Tag::TEXT, b"from a").unwrap();
        let b = Channel::open(s.name()).unwrap();
        assert_eq!(b.read_raw().unwrap().1, b"from a");
        b.publish_raw(Tag::TEXT, b"from b").unwrap();
        assert_eq!(a.read_raw().unwrap().1, b"from b");
        assert_eq!(a.incarnation(), b.incarnation());
        assert!(a.is_pinned() && b.is_pinned());
        // Info counts the entries that open handles hold, and frees a dropped handle's.
        assert_eq!(a.info().pins_in_use, 2);
        drop(b);
        assert_eq!(a.info().pins_in_use, 1);
    }
}

#[test]
fn info_describes_the_header_and_current_value() {
    for kind in BACKINGS {
        let s = Scratch::new(kind);
        let ch = Options::new()
            .capacity(1000)
            .readers(3)
            .checksum(true)
            .create(&s.location)
            .unwrap();
        ch.publish_raw(Tag::JSON, b"{\"a\":1}").unwrap();
        let info = ch.info();
        assert_eq!(info.capacity, 1000);
        assert_eq!((info.readers, info.slots), (3, 5));
        assert_eq!((info.generation, info.tag, info.len), (1, Tag::JSON, 7));
        assert_eq!(info.creator_pid, std::process::id());
        assert_eq!(info.creator_state, OwnerState::Alive);
        assert_eq!(info.last_writer_state, Some(OwnerState::Alive));
        assert_eq!(info.last_writer_pid, Some(std::process::id()));
        assert!(info.checksum);
        assert_eq!(info.size_bytes, (512 + 3 * 64 + 5 * (64 + 1024)) as u64);
        if kind != "heap" {
            assert_eq!(std::fs::metadata(s.path()).unwrap().len(), info.size_bytes);
        }
        assert_eq!(ch.read_raw().unwrap().1, b"{\"a\":1}");
    }
}

/// A file path whose directory is missing too (a typo, or a shared-memory name written with a
/// '/') says so, for every call that looks for a channel, and for a follower's wait; a missing
/// file in a directory that exists does not. (Found by a library user's review: a follower of
/// `/nonexistent/x.mmf` waited out its timeout saying only that no channel appeared.)
#[test]
fn a_missing_file_paths_missing_directory_is_named() {
    let dir = std::env::temp_dir().join(format!("mmf-no-such-dir-{}", std::process::id()));
    let path = dir.join("x.mmf");
    let name = path.to_str().unwrap();
    let missing = |e: Error| match &e {
        Error::NotFound { missing_dir, .. } => {
            assert_eq!(missing_dir.as_deref(), Some(dir.as_path()), "{e}");
            let text = e.to_string();
            let said = format!("its directory {} does not exist either", dir.display());
            assert!(text.contains(&said), "{text}");
            text
        }
        _ => panic!("not NotFound: {e}"),
    };
    missing(Channel::open(name).unwrap_err());
    missing(Options::new().read_only(true).open(name).unwrap_err());
    missing(Channel::remove(name).unwrap_err());
    missing(mmf_core::host::in_use(name).unwrap_err());
    let waited = missing(mmf_core::Follower::open(name, Duration::from_millis(150)).unwrap_err());
    assert!(waited.contains("it was waited for"), "{waited}");
    // The directory there, the file not: the message as before.
    std::fs::create_dir(&dir).unwrap();
    let err = Channel::open(name).unwrap_err();
    std::fs::remove_dir(&dir).unwrap();
    assert!(
        matches!(
            err,
            Error::NotFound {
                missing_dir: None,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().ends_with(
            "check the name, or create the channel first (`Follower::open` with a time to wait \
             opens it once it appears)"
        ),
        "{err}"
    );
}

/// A file path that gets a user's file while `create_or_replace` makes the new channel (a large
/// one's allocation takes milliseconds to seconds) keeps that file: the replacement is refused
/// and nothing is left under the temporary name, whether the path was free when checked or held
/// the channel being replaced. A review had `mmf new --force` of 600 MiB overwrite such a file
/// 4 times of 4. A thread puts the file there as soon as it sees the temporary file. On a
/// loaded machine it may see it only once the replacement is done, or not at all (a full run
/// with `renameat2` refused saw the replacement succeed, an idle thread's move coming after
/// it; under three busy loops the thread saw no temporary file in 10 s): each such round is
/// judged by what it shows (the user's file, put last, is what the name holds) and tried
/// again, up to 10 rounds, until one puts the file there in time. Rounds that never saw a
/// temporary file prove nothing: where none did, the test fails (a replacement that made its
/// file under another name would pass unseen otherwise).
#[test]
fn a_users_file_put_at_the_path_during_a_replacement_is_kept() {
    use std::sync::atomic::AtomicBool;
    let dir = std::env::temp_dir().join(format!("mmf-replace-race-{}", std::process::id()));
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        // Where allocating is slow (pages zeroed), and the window wide.
        std::path::Path::new("/dev/shm").join(dir.file_name().unwrap())
    } else {
        dir
    };
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    // Removed however the test ends (a failed one left its 64 MiB in /dev/shm).
    struct Gone<'a>(&'a std::path::Path);
    impl Drop for Gone<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(self.0);
        }
    }
    let _gone = Gone(&dir);
    let path = dir.join("x.mmf");
    for held_a_channel in [false, true] {
        let (mut refused, mut seen) = (0, 0);
        for round in 0..10 {
            let _ = std::fs::remove_file(&path);
            if held_a_channel {
                drop(Channel::create(path.to_str().unwrap(), 64).unwrap());
            }
            let done = AtomicBool::new(false);
            let (replaced, moved) = std::thread::scope(|s| {
                let user = s.spawn(|| {
                    while !done.load(Ordering::SeqCst) {
                        let making = std::fs::read_dir(&dir)
                            .unwrap()
                            .flatten()
                            .any(|e| e.file_name().to_string_lossy().starts_with(".mmf-new-"));
                        if making {
                            // Written aside, then renamed over the name: a user's editor does so.
                            std::fs::write(dir.join("precious.tmp"), b"precious user data")
                                .unwrap();
                            std::fs::rename(dir.join("precious.tmp"), &path).unwrap();
                            return true;
                        }
                    }
                    false
                });
                let replaced = Options::new()
                    .capacity(64 << 20)
                    .readers(0)
                    .create_or_replace(path.to_str().unwrap());
                done.store(true, Ordering::SeqCst);
                (replaced, user.join().unwrap())
            });
            let now = std::fs::read(&path).unwrap();
            let what = format!(
                "held {held_a_channel}, round {round}: the path holds {:?}",
                String::from_utf8_lossy(&now[..now.len().min(32)])
            );
            match replaced {
                Err(err) => {
                    assert!(
                        err.to_string()
                            .contains("another file was put under the name"),
                        "{err}"
                    );
                    assert!(moved, "{what}");
                    refused += 1;
                    seen += 1;
                }
                // Replaced before the user's file came (put last, it is what the name holds),
                // or before the thread looked at all.
                Ok(ch) => {
                    if moved {
                        assert!(!ch.is_current().unwrap(), "{what}");
                        seen += 1;
                    } else {
                        assert!(ch.is_current().unwrap(), "{what}");
                        continue;
                    }
                }
            }
            assert_eq!(now, b"precious user data", "{what}");
            let left: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .flatten()
                .map(|e| e.file_name())
                .collect();
            assert_eq!(left, [std::ffi::OsString::from("x.mmf")], "{what}");
            if refused > 0 {
                break;
            }
        }
        assert!(
            seen > 0,
            "held {held_a_channel}: no round saw a temporary file (`.mmf-new-`)"
        );
        if refused == 0 {
            skipped(&format!(
                "held {held_a_channel}: in 10 rounds no user's file came while the channel was \
                 made, only after it (a loaded machine)"
            ));
        }
    }
}

/// What a replacement of a file path finds changed under the name once its channel is made,
/// other than a user's file: another channel (a concurrent replacement that renamed first, or a
/// `create` of a name that was free) is replaced as the one checked would have been, and a name
/// whose channel was removed meanwhile is taken. A review found both refused as "another file
/// was put under the name": of two services replacing their channel at once, one failed
/// almost every time.
#[test]
fn a_replacement_takes_a_name_another_channel_took_or_left_meanwhile() {
    let dir = std::path::Path::new(if std::path::Path::new("/dev/shm").is_dir() {
        "/dev/shm"
    } else {
        "/tmp"
    })
    .join(format!("mmf-replace-peer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("x.mmf");
    let path = path.to_str().unwrap();
    // (a channel there first, what the peer does while the replacement is made)
    type Peer = fn(&str);
    let cases: [(bool, Peer); 3] = [
        (true, |p| {
            Options::new().capacity(64).create_or_replace(p).unwrap();
        }),
        (true, |p| Channel::remove(p).unwrap()),
        (false, |p| drop(Channel::create(p, 64).unwrap())),
    ];
    for (i, (held, peer)) in cases.into_iter().enumerate() {
        let _ = std::fs::remove_file(path);
        if held {
            drop(Channel::create(path, 64).unwrap());
        }
        let replaced = std::thread::scope(|s| {
            let dir = &dir;
            s.spawn(move || {
                let t = std::time::Instant::now();
                let ours = |e: &std::fs::DirEntry| {
                    e.file_name().to_string_lossy().starts_with(".mmf-new-")
                };
                while t.elapsed() < Duration::from_secs(10) {
                    if std::fs::read_dir(dir).unwrap().flatten().any(|e| ours(&e)) {
                        peer(path);
                        return;
                    }
                }
                panic!("no temporary file seen");
            });
            Options::new()
                .capacity(128 << 20)
                .readers(0)
                .create_or_replace(path)
        });
        let ch = replaced.unwrap_or_else(|e| panic!("case {i}: {e}"));
        // Two replacements at once: both succeed, and the name holds whichever renamed last.
        let now = Channel::open(path).unwrap().capacity();
        if i == 0 && now == 64 {
            assert!(!ch.is_current().unwrap());
        } else {
            assert!(ch.is_current().unwrap(), "case {i}");
            assert_eq!(now, 128 << 20, "case {i}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A replacement that finds, at its rename, a channel another process is still creating under
/// the name (a file of zeros that process holds) waits for it as `open` would (250 ms), then
/// says so, replacing nothing: it said "another file was put under the name" (the diff review).
#[test]
fn a_replacement_waits_for_a_channel_being_created_under_the_name() {
    // Where allocating is slow (pages zeroed), and the window wide.
    let dir = std::path::Path::new(if std::path::Path::new("/dev/shm").is_dir() {
        "/dev/shm"
    } else {
        "/tmp"
    })
    .join(format!("mmf-replace-made-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("x.mmf");
    let err = std::thread::scope(|s| {
        let dir = &dir;
        let path = &path;
        let made = s.spawn(move || {
            let t = std::time::Instant::now();
            while t.elapsed() < Duration::from_secs(10) {
                let making = std::fs::read_dir(dir)
                    .unwrap()
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with(".mmf-new-"));
                if making {
                    // A creator's file: allocated, its header not written yet, held.
                    let held = std::fs::File::create(dir.join("made.tmp")).unwrap();
                    held.set_len(4096).unwrap();
                    held.lock_shared().unwrap();
                    std::fs::rename(dir.join("made.tmp"), path).unwrap();
                    return held;
                }
            }
            panic!("no temporary file seen");
        });
        let replaced = Options::new()
            .capacity(128 << 20)
            .readers(0)
            .create_or_replace(path.to_str().unwrap());
        drop(made.join().unwrap());
        replaced.expect_err("replaced a channel being created")
    });
    // As a creation found under way at the first look is said (CLI exit 6, not 1).
    assert!(matches!(err, Error::BeingCreated { .. }), "{err}");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 4096);
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    assert_eq!(left.len(), 1, "the temporary file is removed");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// This binary's tests whose names contain one of `filters` (not the caller's), run again in a
/// child with `strace` refusing every call of `syscall` with `errno` (or the calls its
/// `:when=` part picks, strace's syntax: `EINTR:when=1+2`, every other call): they must pass,
/// and the refusal must have been made. False (said SKIPPED) where `strace` cannot trace here (absent,
/// or this binary traced already), or in such a child. The CLI's tests have their own (`cli/tests/cli.rs`
/// `rerun_with_refused`, which reruns one test by name): keep the two in step; a test crate
/// cannot share a file with another's and still build from what `cargo package` ships.
fn rerun_with_refused(syscall: &str, errno: &str, filters: &[&str]) -> bool {
    if std::env::var_os("MMF_REFUSED_RERUN").is_some() {
        return false; // the child itself: no rerun within a rerun
    }
    // strace's `error=EINTR:when=1+2`: `when` keeps its colon.
    let (errno, when) = errno.split_at(errno.find(':').unwrap_or(errno.len()));
    let log = std::env::temp_dir().join(format!(
        "mmf-refused-{syscall}-{errno}-{}.log",
        std::process::id()
    ));
    if !traceable() {
        return false;
    }
    // A shared-memory and a temporary directory of the child's own: the tests it runs look for
    // files left in theirs (`.mmf-new-` names), which tests of other reruns running at once,
    // slowed by the tracing, would otherwise leave there for seconds (a full run saw one).
    let own = |base: PathBuf| {
        let dir = base.join(format!(
            "mmf-rerun-{syscall}-{errno}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    };
    let (shm, tmp) = (own(mmf_core::host::shm_dir()), own(std::env::temp_dir()));
    let out = std::process::Command::new("strace")
        // (`--seccomp-bpf`: only the refused call stops the tracees.)
        .args(["-f", "--seccomp-bpf", "-qq", "-e"])
        .arg(format!("trace={syscall}"))
        .arg("-e")
        .arg(format!("inject={syscall}:error={errno}{when}"))
        .arg("-o")
        .arg(&log)
        .arg(std::env::current_exe().unwrap())
        .args(filters)
        // (A test with a child of its own, which tracing only slows.)
        .args(["--skip", "signals_keep_arriving", "-q", "--test-threads=2"])
        .env("MMF_SHM_DIR", &shm)
        .env("TMPDIR", &tmp)
        .env("MMF_REFUSED_RERUN", "1")
        .env_remove("MMF_SKIPPED_LOG")
        .env_remove("MMF_TEST_FORKING_NEIGHBOUR")
        .output();
    let traced = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_dir_all(&shm);
    let _ = std::fs::remove_dir_all(&tmp);
    let out = out.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "with {syscall} refused ({errno}{when}): {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The refusals were made, and tests ran (the filters matched some).
    assert!(
        traced.contains(&format!("= -1 {errno}")),
        "{errno} injected: {traced:.500}"
    );
    let ran: usize = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|l| l.split(' ').next()?.parse::<usize>().ok())
        .sum();
    assert!(ran >= 5, "{stdout}");
    true
}

/// Whether strace may trace here at all (present, allowed, this process not traced already),
/// said SKIPPED where not: where it may, a child that fails is the test's failure, whenever it
/// fails.
fn traceable() -> bool {
    let traceable = std::process::Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "true"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !traceable {
        skipped("strace is not available or may not trace here");
    }
    traceable
}

/// Where there is no rename that refuses a taken name (a kernel before Linux 3.15, a seccomp
/// filter that refuses `renameat2`, and file systems without `RENAME_NOREPLACE`: NFS, 9p, which
/// answer `EINVAL`), the tests of this file whose names say they replace, remove, or concern a
/// creator hold still.
/// There a replacement's rename over a path found free was a plain rename, which replaced a
/// user's file put there meanwhile and a channel another process was creating (the first two
/// tests above failed so); it is a hard link now, which the kernel refuses on a taken name.
#[test]
fn names_are_taken_and_left_as_carefully_without_renameat2() {
    for errno in ["ENOSYS", "EINVAL", "EPERM"] {
        // Every test whose name says it takes, replaces or removes one (not this one).
        if !rerun_with_refused("renameat2", errno, &["replac", "remov", "creator"]) {
            return;
        }
    }
}

/// Where a seccomp filter refuses `fallocate` (`EPERM`, or `ENOSYS` as for a call it does not
/// know), channels are made all the same, as on a file system without it: every creation
/// failed there ("allocating: Function not implemented").
#[test]
fn channels_are_made_where_fallocate_is_refused() {
    for errno in ["ENOSYS", "EPERM"] {
        // Every test makes channels: those whose names say so are enough.
        if !rerun_with_refused("fallocate", errno, &["creat"]) {
            return;
        }
    }
}

/// Where a signal interrupts `fallocate` (`EINTR`: a tmpfs gives up an allocation when a signal
/// with a handler is pending, before Linux 6.11), channels are made all the
/// same, and whole: every creation failed there ("allocating: Interrupted system call"), in any
/// process with a handler (SIGCHLD, a profiler's SIGPROF). Every other call is interrupted, so
/// that a creation that retried only whole sizes would also be tested against parts.
#[test]
fn channels_are_made_where_signals_interrupt_fallocate() {
    rerun_with_refused("fallocate", "EINTR:when=1+2", &["creat"]);
}

/// A channel's file in `/dev/shm` is created with as many blocks as pages (a publish into a
/// page without one raises `SIGBUS` when the tmpfs is full; a part of the allocation skipped
/// would leave a hole), also where its allocation was made in parts: the reruns above interrupt
/// or refuse `fallocate` around this test.
#[test]
fn a_created_channel_has_a_block_behind_every_page() {
    use std::os::unix::fs::MetadataExt;
    let s = Scratch::new("shm");
    // A file of 9 MiB: parts of 4, 2 and 1 MiB where calls are interrupted (halved each time).
    let ch = Options::new()
        .capacity(3 << 20)
        .readers(1)
        .create(&s.location)
        .unwrap();
    let meta = std::fs::metadata(s.path()).unwrap();
    assert!(meta.len() >= 6 << 20, "{}", meta.len());
    assert!(
        meta.blocks() * 512 >= meta.len(),
        "{} bytes, {} blocks of 512",
        meta.len(),
        meta.blocks()
    );
    drop(ch);
}

/// A process whose thread creating a channel is sent signals, to a handler, all through the
/// creation (a periodic timer's, a profiler's) gets its channel, and its wait ends on time: on a
/// kernel whose tmpfs gives up an allocation when a signal is pending (before Linux 6.11),
/// creation failed there with "allocating: Interrupted system call", and a retry of the whole
/// size could lose every race. On a later kernel (this machine's) it cannot fail for that
/// reason: `channels_are_made_where_signals_interrupt_fallocate` tests the retries there. Run in
/// a child, whose handler cannot interrupt the calls of other tests.
#[test]
fn a_channel_is_created_while_signals_keep_arriving() {
    static HANDLED: AtomicUsize = AtomicUsize::new(0);
    extern "C" fn handler(_: libc::c_int) {
        HANDLED.fetch_add(1, Ordering::Relaxed);
    }
    if std::env::var_os("MMF_SIGNALLED_CHILD").is_none() {
        child_says(
            "a_channel_is_created_while_signals_keep_arriving",
            "MMF_SIGNALLED_CHILD",
            "CREATED",
        );
        return;
    }
    // SAFETY: a handler that only adds to an atomic, installed without SA_RESTART (a call it
    // interrupts returns EINTR, the worst case); `sa` is fully initialised by zeroing (an empty
    // mask) and the fields set.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as *const () as usize;
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
    }
    // SAFETY: `pthread_self` has no preconditions.
    let creator = unsafe { libc::pthread_self() };
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                // SAFETY: `creator` is this scope's creating thread, alive until `done`.
                unsafe { libc::pthread_kill(creator, libc::SIGUSR1) };
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        // The sender stops however the checks end (a failed one panics, and the scope would
        // wait for the sender for ever).
        let checks = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // Signals arrive before the creation starts (a loaded machine may run the sender
            // late).
            let t = std::time::Instant::now();
            while HANDLED.load(Ordering::Relaxed) == 0 && t.elapsed() < Duration::from_secs(20) {
                std::thread::yield_now();
            }
            let s = Scratch::new("shm");
            let made = Options::new()
                .capacity(64 << 20)
                .readers(0)
                .create(&s.location);
            let ch = made.unwrap();
            ch.publish_raw(Tag::TEXT, b"made").unwrap();
            // A wait the signals keep waking ends at its deadline all the same (one that
            // started its timeout anew at each would not end: `run_child`'s deadline).
            assert_eq!(ch.wait_for_change(1, Duration::from_millis(100)), None);
        }));
        done.store(true, Ordering::Relaxed);
        if let Err(panic) = checks {
            std::panic::resume_unwind(panic);
        }
        assert!(HANDLED.load(Ordering::Relaxed) > 1, "no signal arrived");
        println!("CREATED");
    });
}

/// An `EINTR` that keeps coming when the allocation's signals are blocked is no signal's (a
/// FUSE server's, strace's): creation ends with that error, after a bounded number of calls,
/// where it retried a MiB for ever (a review's finding). strace interrupts every `fallocate`.
#[test]
fn an_allocation_interrupted_at_every_call_ends_with_an_error() {
    if std::env::var_os("MMF_EINTR_CHILD").is_some() {
        let s = Scratch::new("shm");
        let made = Options::new()
            .capacity(3 << 20)
            .readers(1)
            .create(&s.location);
        println!("ENDED {}", made.map(drop).unwrap_err());
        assert!(!s.path().exists(), "the file is removed");
        return;
    }
    if !traceable() {
        return;
    }
    let log = std::env::temp_dir().join(format!("mmf-eintr-{}.log", std::process::id()));
    let log_arg = log.to_str().unwrap();
    let (status, stdout, stderr) = run_child(
        &[
            "strace",
            "-f",
            "--seccomp-bpf",
            "-qq",
            "-e",
            "trace=fallocate",
            "-e",
            "inject=fallocate:error=EINTR",
            "-o",
            log_arg,
        ],
        "an_allocation_interrupted_at_every_call_ends_with_an_error",
        "MMF_EINTR_CHILD",
    );
    let calls = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .count();
    let _ = std::fs::remove_file(&log);
    assert!(
        status.success() && stdout.contains("ENDED allocating") && stdout.contains("Interrupted"),
        "{status:?}: {stdout}{stderr}"
    );
    // A GiB at most a call, halved to a MiB, then once more with signals blocked: 1 + 3 + 1.
    assert!((2..=8).contains(&calls), "{calls} calls of fallocate");
}

/// [`run_child`] without a wrapper, which must succeed and print `said`: its stdout.
fn child_says(test: &str, var: &str, said: &str) -> String {
    let (status, stdout, stderr) = run_child(&[], test, var);
    assert!(
        status.success() && stdout.contains(said),
        "{status:?}: {stdout}{stderr}"
    );
    stdout
}

/// Runs this binary's test `test` in a child (after the `wrapper` command and its arguments,
/// if any) with `var` set, as the tests that need a process of their own do; its exit status,
/// stdout and stderr. A child still running after 60 s is killed and the test fails: a child
/// that hangs (a wait that never ends, an allocation retried for ever) fails, not hangs, the run.
fn run_child(
    wrapper: &[&str],
    test: &str,
    var: &str,
) -> (std::process::ExitStatus, String, String) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut cmd = std::process::Command::new(program);
            cmd.args(args).arg(exe);
            cmd
        }
        None => std::process::Command::new(exe),
    };
    let mut child = cmd
        .args(["--exact", test, "--nocapture", "-q"])
        .env(var, "1")
        .env_remove("MMF_TEST_FORKING_NEIGHBOUR")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{test} still ran after 60 s: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A process at the system's limit on mappings (`vm.max_map_count`: each channel handle is one,
/// and a service with tens of thousands of channels open reaches it) is told so, and what to
/// raise: the OS says "Cannot allocate memory", which mmf explained as an address-space limit
/// or memory short. Run in a child, which takes every mapping it may.
#[test]
fn a_process_out_of_mappings_is_told_which_limit() {
    if std::env::var_os("MMF_MAPPINGS_CHILD").is_some() {
        let s = Scratch::new("shm");
        let ch = s.create(64);
        // Room on the heap for what the error's text needs, taken before the mappings are.
        drop(Vec::<u8>::with_capacity(64 << 10));
        let limit: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let mut held = Vec::with_capacity(limit + 1);
        // Pages of alternating protection, which the kernel cannot merge into one mapping.
        while held.len() < held.capacity() {
            let prot = [libc::PROT_READ, libc::PROT_NONE][held.len() % 2];
            let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
            // SAFETY: a new anonymous mapping, at an address the kernel picks; nothing else.
            let page = unsafe { libc::mmap(std::ptr::null_mut(), 4096, prot, flags, -1, 0) };
            if page == libc::MAP_FAILED {
                break;
            }
            held.push(page);
        }
        let err = Options::new()
            .read_only(true)
            .open(&s.location)
            .map(drop)
            .unwrap_err();
        // The handle open before still publishes and reads.
        ch.publish_raw(Tag::TEXT, b"still").unwrap();
        let still = ch.read_raw().unwrap().1 == b"still";
        for page in held {
            // SAFETY: each page is a mapping made above, not used since.
            unsafe { libc::munmap(page, 4096) };
        }
        assert!(still);
        println!("REFUSED {err}");
        drop(ch);
        return;
    }
    // Where the limit is raised far (1,048,576 on recent distributions took 5 s to fill; some
    // set more), a million mappings and more are not made for a test.
    let limit = std::fs::read_to_string("/proc/sys/vm/max_map_count").unwrap_or_default();
    if limit.trim().parse::<u64>().is_ok_and(|l| l > 1 << 18) {
        skipped(&format!(
            "vm.max_map_count is {}: too many mappings to make",
            limit.trim()
        ));
        return;
    }
    let stdout = child_says(
        "a_process_out_of_mappings_is_told_which_limit",
        "MMF_MAPPINGS_CHILD",
        "REFUSED mapping",
    );
    assert!(
        stdout.contains("(`vm.max_map_count`; every channel handle is one)"),
        "{stdout}"
    );
}

#[test]
fn create_is_exclusive_open_needs_an_existing_channel() {
    for kind in ["shm", "file"] {
        let s = Scratch::new(kind);
        let err = Channel::open(s.name()).unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
        assert!(
            err.to_string().contains(&s.name()),
            "message names the channel: {err}"
        );
        let _a = s.create(64);
        let err = Options::new().create(&s.location).unwrap_err();
        assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
        Channel::remove(s.name()).unwrap();
        let err = Channel::remove(s.name()).unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
        // Something else under the name: not "a channel already exists; open it, or remove it"
        // (both would refuse it), but what it is. An empty file, or one whose first word is
        // still 0, may be a channel being created, or one whose creator died: `NotInitialized`,
        // as `open` says of it (whose advice, to delete the file if it stays so, fits both).
        std::fs::write(s.path(), "hello world\n").unwrap();
        let err = Options::new().create(&s.location).unwrap_err();
        assert!(matches!(err, Error::WrongMagic { .. }), "{err}");
        assert!(err.to_string().contains("\"hello wo\""), "{err}");
        for maybe_a_channel in [&b""[..], &[0; 4096]] {
            std::fs::write(s.path(), maybe_a_channel).unwrap();
            let err = Options::new().create(&s.location).unwrap_err();
            assert!(matches!(err, Error::NotInitialized { .. }), "{err}");
            let err = Options::new()
                .init_timeout(Duration::from_millis(5))
                .open_or_create(&s.location)
                .unwrap_err();
            assert!(matches!(err, Error::NotInitialized { .. }), "{err}");
        }
        // A short file says what it holds, even the start of the magic (a creator makes the
        // whole file at once), to a create and an open alike. All 7 bytes the magic has before
        // its NUL were once read as the whole magic (a review found it: "corrupt", where
        // FORMAT.md §9 says "wrong magic").
        for (short, shown) in [
            ("hi\n", "68 69 0a"),
            ("MMF", "\"MMF\" (4d 4d 46)"),
            ("MMFCHAN", "\"MMFCHAN\" (4d 4d 46 43 48 41 4e)"),
        ] {
            std::fs::write(s.path(), short).unwrap();
            let create = Options::new().create(&s.location).unwrap_err();
            let open = Options::new().open(&s.location).unwrap_err();
            for err in [create, open] {
                assert!(
                    matches!(err, Error::WrongMagic { file_len, .. } if file_len == short.len() as u64)
                        && err
                            .to_string()
                            .contains(&format!("the file is only {} bytes: {shown}", short.len())),
                    "{err}"
                );
            }
        }
        std::fs::remove_file(s.path()).unwrap();
        let made = std::process::Command::new("mkfifo").arg(s.path()).status();
        assert!(made.is_ok_and(|st| st.success()), "mkfifo");
        let err = Options::new().create(&s.location).unwrap_err();
        assert!(matches!(err, Error::NotAFile { kind: "FIFO", .. }), "{err}");
        std::fs::remove_file(s.path()).unwrap();
    }
}

#[test]
fn open_or_create_and_create_or_replace() {
    let s = Scratch::new("shm");
    let a = Options::new()
        .capacity(32)
        .open_or_create(&s.location)
        .unwrap();
    a.publish_raw(Tag::TEXT, b"one").unwrap();
    let b = Options::new()
        .capacity(9999)
        .open_or_create(&s.location)
        .unwrap();
    assert_eq!(
        (b.capacity(), b.read_raw().unwrap().1),
        (32, b"one".to_vec()),
        "opened, not recreated"
    );
    let c = Options::new()
        .capacity(64)
        .create_or_replace(&s.location)
        .unwrap();
    assert_ne!(
        c.incarnation(),
        a.incarnation(),
        "a new incarnation under the same name"
    );
    assert_eq!((c.capacity(), c.generation()), (64, 0));
    // The old handle still works on its own (now unlinked) memory.
    assert_eq!(a.read_raw().unwrap().1, b"one");
    // The new channel is named like the old, and an opener finds it there.
    assert_eq!(c.location(), &s.location);
    assert_eq!(
        Channel::open(s.name()).unwrap().incarnation(),
        c.incarnation()
    );
    // A replacement that cannot be made leaves the channel there as it was (it was removed
    // first), and no temporary file behind.
    c.publish_raw(Tag::TEXT, b"kept").unwrap();
    let before: Vec<_> = std::fs::read_dir(s.path().parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    for bad in [
        Options::new().capacity(0).clone(),
        Options::new().readers(100).clone(),
    ] {
        let err = bad.create_or_replace(&s.location).unwrap_err();
        assert!(matches!(err, Error::InvalidOptions(_)), "{err}");
        let now = Channel::open(s.name()).unwrap();
        assert_eq!(
            (now.incarnation(), now.read_raw().unwrap().1),
            (c.incarnation(), b"kept".to_vec())
        );
    }
    // The directory is shared with the other tests, whose replacements in flight have such
    // files for an instant: one that stays is a leak.
    let dir = s.path().parent().unwrap().to_owned();
    let temporaries = || -> Vec<_> {
        std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| n.to_string_lossy().starts_with(".mmf-new-"))
            .filter(|n| !before.contains(n))
            .collect()
    };
    let t = std::time::Instant::now();
    while !temporaries().is_empty() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(temporaries(), Vec::<std::ffi::OsString>::new());
}

#[test]
fn a_replacement_removes_what_killed_replacements_left_beside_it() {
    // Channels in files of their own directory, as a user keeps them.
    let dir = std::env::temp_dir().join(format!("mmf-test-left-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    let location = Location::file(dir.join("app.mmf"));
    let old = SystemTime::now() - Duration::from_secs(3600);
    let plant = |name: &str, modified: SystemTime| {
        let f = std::fs::File::create(dir.join(name)).unwrap();
        f.set_len(8192).unwrap();
        f.set_modified(modified).unwrap();
        f
    };
    // What a killed `create_or_replace` leaves: its temporary file, unlocked, an hour old.
    drop(plant(".mmf-new-00000000deadbeef", old));
    // Kept: one being made right now (its maker holds a shared lock), one just made, a
    // user's file that only looks alike.
    let making = plant(".mmf-new-00000000cafef00d", old);
    making.lock_shared().unwrap();
    drop(plant(".mmf-new-0000000000c0ffee", SystemTime::now()));
    drop(plant(".mmf-new-notes", old));
    // A user's file with such a name but other contents, and (as root) another user's file.
    let text = plant(".mmf-new-0123456789abcdef", old);
    std::os::unix::fs::FileExt::write_all_at(&text, b"my notes", 0).unwrap();
    text.set_modified(old).unwrap();
    let theirs = plant(".mmf-new-00000000000000aa", old);
    // SAFETY: plain system call.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        std::os::unix::fs::fchown(&theirs, Some(65534), Some(65534)).unwrap();
    }
    let mut kept = vec![
        ".mmf-new-00000000cafef00d",
        ".mmf-new-0000000000c0ffee",
        ".mmf-new-notes",
        ".mmf-new-0123456789abcdef",
    ];
    if root {
        kept.push(".mmf-new-00000000000000aa");
    }
    let mut abandoned = vec![dir.join(".mmf-new-00000000deadbeef")];
    if !root {
        abandoned.insert(0, dir.join(".mmf-new-00000000000000aa"));
    }
    assert_eq!(
        mmf_core::host::abandoned_replacements_in(&dir, Duration::ZERO).unwrap(),
        abandoned
    );
    Options::new()
        .capacity(64)
        .create_or_replace(&location)
        .unwrap()
        .publish_raw(Tag::TEXT, b"new")
        .unwrap();
    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    let mut expected: Vec<String> = kept.iter().map(|k| k.to_string()).collect();
    drop((text, theirs));
    expected.push("app.mmf".into());
    expected.sort();
    assert_eq!(left, expected);
    drop(making);
    std::fs::remove_dir_all(&dir).unwrap();
    // The directory of a bare relative path (`ch.mmf`, whose parent is "") is the current one.
    assert!(
        mmf_core::host::abandoned_replacements_in(std::path::Path::new(""), Duration::ZERO).is_ok()
    );
}

#[test]
fn openers_racing_a_creator_never_see_a_half_made_channel() {
    for _ in 0..30 {
        let s = Scratch::new("shm");
        std::thread::scope(|scope| {
            let openers: Vec<_> = (0..2)
                .map(|_| {
                    scope.spawn(|| {
                        // Bounded: a creator that fails leaves them nothing to find, and the
                        // test must fail then, not wait for ever.
                        let t = std::time::Instant::now();
                        loop {
                            match Options::new()
                                .init_timeout(Duration::ZERO)
                                .open(&s.location)
                            {
                                Ok(ch) => break ch.capacity(),
                                Err(Error::NotFound { .. } | Error::NotInitialized { .. }) => {
                                    assert!(t.elapsed() < Duration::from_secs(20), "no channel");
                                    std::hint::spin_loop()
                                }
                                Err(other) => panic!("an opener saw a half-made channel: {other}"),
                            }
                        }
                    })
                })
                .collect();
            let _ch = Options::new().capacity(4096).create(&s.location).unwrap();
            for o in openers {
                assert_eq!(o.join().unwrap(), 4096);
            }
        });
    }
}

#[test]
fn invalid_names_are_refused_before_touching_the_os() {
    for bad in ["", "a/b", "x\0y", "..", &"n".repeat(300), "bad\u{fffd}"] {
        // A '/' makes it a path; "a/b" is then a file in a missing directory.
        match Channel::create(bad, 8) {
            Err(Error::InvalidName { .. }) => {}
            Err(Error::Io { .. }) if bad.contains('/') => {}
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    let err = Channel::open("").unwrap_err();
    assert!(err.to_string().contains("invalid channel name"), "{err}");
    // Nor can they be built as `Location::Shm` directly: a `ShmName` is checked when made.
    for bad in ["", "a/b", "x\0y", "..", &"n".repeat(300), "bad\u{fffd}"] {
        assert!(
            matches!(ShmName::new(bad), Err(Error::InvalidName { .. })),
            "{bad:?}"
        );
    }
    let dir = Location::shm("probe").unwrap().path().unwrap();
    assert!(!dir.with_file_name("mmf.").exists());
}

/// A name validated once as a `ShmName` is taken by every call that takes a location, as the
/// text it was made from is; the host queries take a directory as any path-like value.
#[test]
fn a_validated_name_and_path_like_values_are_taken_as_they_are() {
    let s = Scratch::new("shm");
    let name = ShmName::new(s.name()).unwrap();
    let ch = Channel::create(&name, 16).unwrap();
    ch.publish_raw(Tag::BYTES, b"by name").unwrap();
    let (_, read) = Channel::open(name.clone()).unwrap().read_raw().unwrap();
    assert_eq!(read, b"by name");
    assert_eq!(ch.location(), &Location::Shm(name));
    let dir = s.path().parent().unwrap().to_str().unwrap().to_owned();
    let space = mmf_core::host::space(&dir).unwrap();
    assert!(
        space.total >= space.available && space.total > 0,
        "{space:?}"
    );
    assert!(mmf_core::host::abandoned_replacements_in(dir, Duration::ZERO).is_ok());
}

#[test]
fn bad_options_are_refused() {
    let s = Scratch::new("shm");
    for (cap, readers) in [
        (0, 1),
        (mmf_core::MAX_CAPACITY + 1, 1),
        (8, mmf_core::MAX_READERS + 1),
    ] {
        let err = Options::new()
            .capacity(cap)
            .readers(readers)
            .create(&s.location)
            .unwrap_err();
        assert!(matches!(err, Error::InvalidOptions(_)), "{err}");
    }
    assert!(!s.path().exists(), "nothing was created");
}

#[test]
fn permissions_default_to_owner_only() {
    let s = Scratch::new("shm");
    let _a = s.create(8);
    let mode = std::fs::metadata(s.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let t = Scratch::new("file");
    let _b = Options::new().mode(0o640).create(&t.location).unwrap();
    let mode = std::fs::metadata(t.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    // Bits beyond read and write would not be kept exactly (the kernel clears set-user-ID when
    // another user than root allocates the file, after its mode is set): refused, and nothing
    // made.
    let u = Scratch::new("shm");
    for mode in [0o4755, 0o2750, 0o1644] {
        let err = Options::new().mode(mode).create(&u.location).unwrap_err();
        assert!(matches!(err, Error::InvalidOptions(_)), "{err}");
        assert!(
            err.to_string().contains("beyond the permission bits"),
            "{err}"
        );
        assert!(!u.path().exists());
    }
}

#[test]
fn a_symlink_planted_under_a_name_is_never_followed() {
    let s = Scratch::new("shm");
    let target = std::env::temp_dir().join(format!("mmf-victim-{}", std::process::id()));
    std::fs::write(&target, b"precious").unwrap();
    std::os::unix::fs::symlink(&target, s.path()).unwrap();
    assert!(Options::new().create(&s.location).is_err());
    assert!(Options::new().open(&s.location).is_err());
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    std::fs::remove_file(&target).unwrap();
}

#[test]
fn read_only_handles_read_but_cannot_publish() {
    let s = Scratch::new("file");
    let w = s.create(32);
    w.publish_raw(Tag::TEXT, b"hello").unwrap();
    let r = Options::new().read_only(true).open(&s.location).unwrap();
    assert!(r.is_read_only() && !r.is_pinned());
    assert_eq!(r.read_raw().unwrap().1, b"hello");
    let err = r.publish_raw(Tag::TEXT, b"no").unwrap_err();
    assert!(matches!(err, Error::ReadOnly { .. }), "{err}");
    // Unpinned reads keep up with a writer too.
    for i in 0..100u8 {
        w.publish_raw(Tag::BYTES, &[i; 32]).unwrap();
        assert_eq!(r.read_raw().unwrap().1, [i; 32]);
    }
}

#[test]
fn a_removed_channel_is_listed_no_more() {
    let s = Scratch::new("shm");
    let name = match &s.location {
        Location::Shm(n) => n.to_string(),
        _ => unreachable!(),
    };
    let ch = s.create(128);
    ch.publish_raw(Tag::TEXT, b"x").unwrap();
    let listed = mmf_core::list().unwrap();
    let me = listed.iter().find(|l| l.name == name).expect("listed");
    let info = me.info.as_ref().unwrap();
    assert_eq!((info.capacity, info.generation), (128, 1));
    Channel::remove(s.name()).unwrap();
    assert!(mmf_core::list().unwrap().iter().all(|l| l.name != name));
}

// --- Corrupt and foreign mappings -------------------------------------------------------------

/// Creates a file channel, lets `damage` edit its bytes, and returns what opening it gives.
fn open_damaged(damage: impl FnOnce(&mut Vec<u8>)) -> Result<Channel, Error> {
    open_damaged_as(true, damage)
}

/// Pin entry 0's `pinned` word (docs/FORMAT.md §5), for a channel with the default 4 readers.
const PIN0: usize = 512 + 8;

/// The word at `offset` of the file at `path` (which may be mapped).
fn peek(path: &std::path::Path, offset: usize) -> u64 {
    use std::os::unix::fs::FileExt;
    let mut word = [0u8; 8];
    let f = std::fs::File::open(path).unwrap();
    f.read_exact_at(&mut word, offset as u64).unwrap();
    u64::from_le_bytes(word)
}

/// Stores `v` at `offset` of the file at `path`, which may be mapped (no truncation on the way).
fn poke(path: &std::path::Path, offset: usize, v: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&v.to_le_bytes(), offset as u64).unwrap();
}

/// A 64-byte test channel holding the value "fine" (generation 1), damaged by `damage`, then
/// opened. With `in_slot`, a reader wanted slots when "fine" was published (pin entry 0's
/// `pinned` word set), so the value is in slot 1 and the inline buffer; else it is in the header
/// only (`latest` names no slot).
fn open_damaged_as(in_slot: bool, damage: impl FnOnce(&mut Vec<u8>)) -> Result<Channel, Error> {
    let s = Scratch::new("file");
    let ch = s.create(64);
    if in_slot {
        poke(&s.path(), PIN0, u64::MAX);
    }
    ch.publish_raw(Tag::TEXT, b"fine").unwrap();
    drop(ch);
    let mut bytes = std::fs::read(s.path()).unwrap();
    let latest = u64::from_le_bytes(bytes[LATEST..LATEST + 8].try_into().unwrap());
    assert_eq!(
        latest & 0xff,
        if in_slot { 1 } else { 0xff },
        "where the value went"
    );
    put_u64(&mut bytes, PIN0, 0);
    damage(&mut bytes);
    std::fs::write(s.path(), &bytes).unwrap();
    let mut o = Options::new();
    o.init_timeout(Duration::from_millis(20))
        .read_timeout(Duration::from_millis(50));
    o.open(&s.location)
}

/// This process's PID-namespace tag as docs/FORMAT.md §5 defines it: the inode of
/// `/proc/self/ns/pid` modulo 2^26 - 2, plus 1; 0 without that file.
fn namespace_tag() -> u64 {
    use std::os::unix::fs::MetadataExt;
    const M: u64 = (1 << 26) - 2;
    std::fs::metadata("/proc/self/ns/pid").map_or(0, |m| m.ino() % M + 1)
}

/// The `n`-th pid (from 0) down from the largest a token holds (2^22 - 1) that no process has
/// now (`kill(pid, 0)` fails with `ESRCH`): Linux may hand out pids that high.
fn free_pid(n: usize) -> u32 {
    // SAFETY: signal 0 sends nothing; `kill` only checks that the pid exists.
    let exists = |p: u32| unsafe { libc::kill(p as libc::pid_t, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH);
    (1..1u32 << 22)
        .rev()
        .filter(|&p| !exists(p))
        .nth(n)
        .unwrap()
}

/// A token judged by pid (no kernel lock, bit 63 clear, start time unknown) of a process of
/// this PID namespace with this pid.
fn token_here(pid: u32) -> u64 {
    u64::from(pid) | namespace_tag() << 22
}

/// The same pid's token in another PID namespace, whose liveness a process here cannot check.
fn token_elsewhere(pid: u32) -> u64 {
    u64::from(pid) | (namespace_tag() % ((1 << 26) - 2) + 1) << 22
}

/// Bit 63 of a token: its process holds a lock on the token's byte of the channel file.
const KERNEL_HELD: u64 = 1 << 63;

/// Takes a shared open-file-description lock on byte `offset` of the file at `path`, as the
/// process of a kernel-held token does; held while the returned file stays open. (Linux's
/// open-file-description locks: elsewhere no token is kernel-held.)
#[cfg(target_os = "linux")]
fn hold_byte(path: &std::path::Path, offset: u64) -> std::fs::File {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).unwrap();
    let mut fl = libc::flock {
        l_type: libc::F_RDLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: offset as libc::off_t,
        l_len: 1,
        l_pid: 0,
    };
    // SAFETY: a valid descriptor and a `flock` that outlives the call.
    let rc = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_SETLK, &mut fl) };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    f
}

fn put_u64(bytes: &mut [u8], offset: usize, v: u64) {
    bytes[offset..offset + 8].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn a_file_that_is_not_a_channel_is_wrong_magic_and_is_not_removed() {
    let path = std::env::temp_dir().join(format!("mmf-not-a-channel-{}", std::process::id()));
    std::fs::write(&path, vec![7u8; 4096]).unwrap();
    let name = path.to_str().unwrap();
    let err = Channel::open(name).unwrap_err();
    assert!(matches!(err, Error::WrongMagic { .. }), "{err}");
    let err = Channel::remove(name).unwrap_err();
    assert!(matches!(err, Error::WrongMagic { .. }), "{err}");
    assert!(path.exists());
    // A file shorter than 8 bytes is shown with its own bytes, not the zeros past its end.
    std::fs::write(&path, b"tiny").unwrap();
    let err = Channel::open(name).unwrap_err();
    assert!(
        matches!(err, Error::WrongMagic { file_len: 4, .. })
            && err
                .to_string()
                .contains("(the file is only 4 bytes: \"tiny\" (74 69 6e 79))"),
        "{err}"
    );
    std::fs::write(&path, b"hi\n").unwrap();
    let err = Channel::open(name).unwrap_err();
    assert!(
        err.to_string()
            .contains("(the file is only 3 bytes: 68 69 0a); check"),
        "{err}"
    );
    // A text file is shown as the text it starts with (it was a hex number only), and bytes in
    // the order they are in the file (they were a little-endian word's hex, read backwards).
    std::fs::write(&path, b"my important notes\n".repeat(100)).unwrap();
    let err = Channel::open(name).unwrap_err();
    assert!(
        err.to_string()
            .contains("(it starts with \"my impor\" (6d 79 20 69 6d 70 6f 72))"),
        "{err}"
    );
    std::fs::write(&path, b"junk\n\0\0\0 and more").unwrap();
    let err = Channel::open(name).unwrap_err();
    assert!(
        err.to_string()
            .contains("(it starts with bytes 6a 75 6e 6b 0a 00 00 00)"),
        "{err}"
    );
    std::fs::remove_file(&path).unwrap();
}

/// `remove` of a path deletes a channel and nothing else: not an empty file, not one of a few
/// bytes, not a zero-filled image (all three once went, as "unfinished channels").
#[test]
fn remove_of_a_path_deletes_only_files_that_start_with_the_magic() {
    let dir = std::env::temp_dir().join(format!("mmf-remove-only-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("keep", Vec::new(), "empty"),
        ("todo", b"TODO\n".to_vec(), "only 5 bytes"),
        ("disk.img", vec![0u8; 1 << 20], "first 8 bytes are zero"),
        (
            "zeros-then-text",
            [&[0u8; 8][..], b"notes"].concat(),
            "first 8 bytes are zero",
        ),
    ];
    for (file, contents, what) in &cases {
        let path = dir.join(file);
        std::fs::write(&path, contents).unwrap();
        let err = Channel::remove(path.to_str().unwrap()).unwrap_err();
        assert!(matches!(err, Error::NotAChannel { .. }), "{file}: {err}");
        assert!(err.to_string().contains(what), "{file}: {err}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            *contents,
            "{file} was changed"
        );
    }
    // A channel at a path is removed, and then is gone.
    let channel = dir.join("real.mmf");
    let name = channel.to_str().unwrap();
    Channel::create(name, 64)
        .unwrap()
        .publish_raw(Tag::TEXT, b"x")
        .unwrap();
    Channel::remove(name).unwrap();
    assert!(!channel.exists());
    assert!(matches!(Channel::remove(name), Err(Error::NotFound { .. })));
    // `create_or_replace` does not delete a file that is not a channel either.
    let path = dir.join("todo");
    let err = Options::new()
        .capacity(64)
        .create_or_replace(Location::File(path.clone()))
        .unwrap_err();
    assert!(matches!(err, Error::NotAChannel { .. }), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"TODO\n");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `is_current` tells a handle whose name now leads elsewhere: removed, created again, or
/// replaced by a byte-for-byte copy (the same incarnation in another file).
#[test]
fn is_current_sees_removal_re_creation_and_replacement_by_a_copy() {
    let dir = std::env::temp_dir().join(format!("mmf-is-current-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c.mmf");
    let name = path.to_str().unwrap();
    let old = Channel::create(name, 64).unwrap();
    let reader = Channel::open(name).unwrap();
    assert!(old.is_current().unwrap() && reader.is_current().unwrap());
    Channel::remove(name).unwrap();
    assert!(!old.is_current().unwrap() && !reader.is_current().unwrap());
    let again = Channel::create(name, 64).unwrap();
    assert!(again.is_current().unwrap() && !old.is_current().unwrap());
    drop(again);
    Channel::remove(name).unwrap();
    let new = Channel::create(name, 64).unwrap();
    let copy = dir.join("copy.mmf");
    std::fs::copy(&path, &copy).unwrap();
    std::fs::rename(&copy, &path).unwrap();
    assert!(
        !new.is_current().unwrap(),
        "a copy is another channel's memory"
    );
    assert!(Channel::open(name).unwrap().is_current().unwrap());
    assert!(Channel::anonymous(64).unwrap().is_current().unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `touch` is what tells `mmf prune` a channel is in use when no handle stays open: publishing
/// alone leaves a shared-memory file's modification time where it was.
#[test]
fn touch_sets_the_time_that_prune_reads_and_a_publish_does_not() {
    use std::time::{Duration, SystemTime};
    let s = Scratch::new("shm");
    let ch = s.create(64);
    let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
    let f = std::fs::File::options().write(true).open(s.path()).unwrap();
    f.set_modified(two_hours_ago).unwrap();
    let touched = || mmf_core::host::last_touched(&s.location).unwrap();
    assert_eq!(touched(), two_hours_ago);
    for i in 0..10u8 {
        ch.publish_raw(Tag::BYTES, &[i; 64]).unwrap();
    }
    if s.path().starts_with("/dev/shm") {
        // tmpfs: writes through the mapping leave the time alone (a disk file system may not).
        assert_eq!(touched(), two_hours_ago, "a publish made a system call?");
    }
    ch.touch().unwrap();
    let age = SystemTime::now()
        .duration_since(touched())
        .unwrap_or_default();
    assert!(age < Duration::from_secs(60), "touched {age:?} ago");
    Channel::anonymous(64).unwrap().touch().unwrap();
}

#[test]
fn wrong_magic_version_or_geometry_is_refused_at_open() {
    let err = open_damaged(|b| b[0] ^= 0xff).unwrap_err();
    assert!(matches!(err, Error::WrongMagic { .. }), "{err}");
    let err = open_damaged(|b| put_u64(b, 8, 99)).unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedVersion { found: 99, .. }),
        "{err}"
    );
    for (offset, what) in [
        (16, "header size"),
        (24, "capacity"),
        (32, "slot count"),
        (40, "slot stride"),
        (48, "readers"),
        (56, "total size"),
    ] {
        let err = open_damaged(|b| put_u64(b, offset, u64::MAX - 3)).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{what}: {err}");
    }
    // Another kind is a channel this build does not read (a newer mmf's), not damage.
    let err = open_damaged(|b| put_u64(b, 96, 2)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnsupportedKind {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_truncated_or_grown_file_is_refused_at_open() {
    let err = open_damaged(|b| b.truncate(b.len() - 64)).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("truncated"), "{err}");
    let err = open_damaged(|b| b.truncate(100)).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    let err = open_damaged(|b| b.extend_from_slice(&[0; 64])).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    // A grown file still holds the channel: say how to get it back.
    assert!(err.to_string().contains("it was grown"), "{err}");
    assert!(err.to_string().contains("`truncate -s "), "{err}");
    // A few bytes more (`echo more >> FILE`) is no size a channel has; it used to be called
    // "only N bytes", then "not a multiple of 8" with no way back: the header still says the
    // size, and `truncate` gives the channel back, as for a multiple of 8.
    let mut grown = Vec::new();
    let err = open_damaged(|b| {
        b.extend_from_slice(b"more\n");
        grown = b.clone();
    })
    .unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    let want = format!("`truncate -s {}`", grown.len() - 5);
    assert!(
        err.to_string().contains("it was grown") && err.to_string().contains(&want),
        "{err}"
    );
    grown.truncate(grown.len() - 5);
    let (_, value) = Options::new()
        .open_image(&grown)
        .unwrap()
        .read_raw()
        .unwrap();
    assert_eq!(value, b"fine");
    // A header that says no such thing (another version) still says the size is no channel's.
    let err = open_damaged(|b| {
        put_u64(b, 8, 5);
        b.push(0);
    })
    .unwrap_err();
    assert!(
        err.to_string().contains("which no channel's size is"),
        "{err}"
    );
}

#[test]
fn an_uninitialised_channel_is_reported_as_such() {
    let err = open_damaged(|b| b.clear()).unwrap_err();
    assert!(matches!(err, Error::NotInitialized { .. }), "{err}");
    let err = open_damaged(|b| put_u64(b, 0, 0)).unwrap_err();
    assert!(matches!(err, Error::NotInitialized { .. }), "{err}");
}

/// Offsets for a 64-byte channel with the default 4 readers (see docs/FORMAT.md).
const LATEST: usize = 128;
const SLOT0: usize = 512 + 4 * 64;
/// Inline buffer 1's descriptor: the generation it holds, then length and tag.
const INLINE1: usize = 152;

/// Opens the test channel (value "fine", generation 1) damaged by `f`, with generation 1's inline
/// copy disowned, so that reads must go to the slot.
fn open_damaged_slot(f: impl FnOnce(&mut Vec<u8>)) -> Result<Channel, Error> {
    open_damaged(|b| {
        put_u64(b, INLINE1, 0);
        f(b)
    })
}

#[test]
fn a_damaged_inline_copy_is_ignored_for_the_slot() {
    // The slot is authoritative; an inline descriptor that makes no sense sends reads there.
    for (offset, v) in [
        (INLINE1 + 8, 129 | 2 << 32), // length beyond the inline capacity
        (INLINE1 + 8, 4 | 1 << 50),   // tag beyond 16 bits
        (INLINE1, 77),                // another generation
    ] {
        let ch = open_damaged(|b| put_u64(b, offset, v)).unwrap();
        assert_eq!(ch.read_raw().unwrap().1, b"fine", "{offset} {v:#x}");
    }
    // Damage the slot too and the read reports the slot's corruption.
    let ch = open_damaged(|b| {
        put_u64(b, INLINE1 + 8, 1 << 31);
        put_u64(b, SLOT0 + 128 + 16, 1 << 40);
    })
    .unwrap();
    assert!(matches!(ch.read_raw().unwrap_err(), Error::Corrupt { .. }));
}

#[test]
fn a_damaged_header_only_value_is_corrupt_not_a_panic() {
    // Undamaged, the value is read from the header.
    let ch = open_damaged_as(false, |_| {}).unwrap();
    assert_eq!(ch.read_raw().unwrap().1, b"fine");
    assert_eq!((ch.info().len, ch.info().tag), (4, Tag::TEXT));
    // With no slot behind it, a descriptor that makes no sense is corruption.
    for (offset, v) in [
        (INLINE1 + 8, 129 | 2 << 32), // length beyond the inline capacity
        (INLINE1 + 8, 4 | 1 << 50),   // tag beyond 16 bits
        (INLINE1, 77),                // another generation
    ] {
        let ch = open_damaged_as(false, |b| put_u64(b, offset, v)).unwrap();
        let err = ch.read_raw().unwrap_err();
        assert!(
            matches!(err, Error::Corrupt { .. }) && err.to_string().contains("no slot"),
            "{offset} {v:#x}: {err}"
        );
    }
    // A channel with checksums keeps every value in a slot, where its CRC is: a header-only
    // value there is corrupt whatever its length, an empty one included, and `info` does not
    // report it either.
    for len in [4, 0] {
        let ch = open_damaged_as(false, |b| {
            put_u64(b, 88, 1); // FLAG_CHECKSUM
            put_u64(b, INLINE1 + 8, len | 2 << 32);
        })
        .unwrap();
        let err = ch.read_raw().unwrap_err();
        assert!(
            matches!(err, Error::Corrupt { .. }) && err.to_string().contains("checksums"),
            "len {len}: {err}"
        );
        assert_eq!((ch.info().len, ch.info().tag), (0, Tag::EMPTY), "len {len}");
    }
    // And a writer still publishes over the damage, into the header again.
    let ch = open_damaged_as(false, |b| put_u64(b, INLINE1, 77)).unwrap();
    ch.publish_raw(Tag::TEXT, b"repaired").unwrap();
    assert_eq!(ch.read_raw().unwrap().1, b"repaired");
}

#[test]
fn corrupt_frames_are_errors_on_read_not_panics() {
    // The value "fine" went to slot 1 (generation 1); break its frame in several ways.
    let stride = 64 + 64;
    let frame = SLOT0 + stride;
    let ch = open_damaged_slot(|b| put_u64(b, frame + 16, 1 << 40)).unwrap();
    let err = ch.read_raw().unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "length: {err}");
    let ch = open_damaged_slot(|b| put_u64(b, frame + 24, 1 << 20)).unwrap();
    assert!(
        matches!(ch.read_raw().unwrap_err(), Error::Corrupt { .. }),
        "tag"
    );
    let ch = open_damaged_slot(|b| put_u64(b, LATEST, (1 << 8) | 200)).unwrap();
    assert!(
        matches!(ch.read_raw().unwrap_err(), Error::Corrupt { .. }),
        "slot index"
    );
    // A complete frame of another generation in the slot latest names: no writer leaves that
    // (none writes the slot latest names), so it is damage, said at once. It used to be
    // retried for the whole read timeout, then reported as Contended.
    let ch = open_damaged_slot(|b| put_u64(b, frame + 8, 77)).unwrap();
    let t = std::time::Instant::now();
    match ch.read_raw() {
        Err(Error::Corrupt { what, .. }) => assert!(what.contains("holds generation 77"), "{what}"),
        other => panic!("{other:?}"),
    }
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    // A stamp stuck odd proves nothing under the memory model (a writer's odd stamp is not
    // ordered with its view of latest; loom found a reader that would have called a live
    // channel corrupt): bounded retries, then Contended.
    let ch = open_damaged_slot(|b| put_u64(b, frame, 3)).unwrap();
    assert!(
        matches!(ch.read_raw().unwrap_err(), Error::Contended { .. }),
        "odd stamp"
    );
    // And a writer still publishes over the damage.
    let ch = open_damaged_slot(|b| put_u64(b, frame + 16, 1 << 40)).unwrap();
    ch.publish_raw(Tag::TEXT, b"repaired").unwrap();
    assert_eq!(ch.read_raw().unwrap().1, b"repaired");
}

/// Every damage a read finds is in what a publish rewrites (`latest`, a descriptor, the frame and
/// payload `latest` names): the read says so (`value_only`, so followers wait past it and the CLI
/// advises `recover` or a publish, not re-creating the channel), `verify` agrees, and a publish
/// mends it. Reads used to call a frame's impossible length or tag, or a `latest` naming a slot
/// that does not exist, damage that only re-creating the channel mends, while `verify` called
/// the same image's damage the value's alone.
#[test]
fn damage_a_read_finds_is_the_values_alone_and_a_publish_mends_it() {
    let frame = SLOT0 + 64 + 64;
    for (what, offset, v) in [
        ("length", frame + 16, 1 << 40),
        ("tag", frame + 24, 1 << 20),
        ("slot index", LATEST, (1 << 8) | 200),
        ("generation", frame + 8, 77),
    ] {
        let ch = open_damaged_slot(|b| put_u64(b, offset, v)).unwrap();
        let read = ch.read_raw().unwrap_err();
        assert!(
            matches!(
                read,
                Error::Corrupt {
                    value_only: true,
                    ..
                }
            ) && read.mended_by_publish(),
            "{what}: {read}"
        );
        assert!(!read.to_string().contains("recreate"), "{what}: {read}");
        let verify = ch.verify().unwrap_err();
        assert!(verify.mended_by_publish(), "{what}: {verify}");
        ch.publish_raw(Tag::TEXT, b"mended").unwrap();
        assert_eq!(ch.read_raw().unwrap().1, b"mended", "{what}");
        ch.verify().unwrap();
    }
    // A header-only value whose descriptor makes no sense, the same.
    let ch = open_damaged_as(false, |b| put_u64(b, INLINE1 + 8, 129 | 2 << 32)).unwrap();
    let read = ch.read_raw().unwrap_err();
    assert!(read.mended_by_publish(), "{read}");
    ch.publish_raw(Tag::TEXT, b"mended").unwrap();
    assert_eq!(ch.read_raw().unwrap().1, b"mended");
}

#[test]
fn garbage_pins_do_not_stop_writers() {
    let ch = open_damaged(|b| {
        for e in 0..4 {
            // Owners: garbage, then pids that cannot exist here and elsewhere.
            let owner = [
                u64::MAX,
                token_elsewhere(free_pid(0)),
                token_here(free_pid(0)),
                0,
            ][e];
            put_u64(b, 512 + e * 64, owner);
            put_u64(b, 512 + e * 64 + 8, 1 + e as u64 % 3); // pins on slots
        }
    })
    .unwrap();
    assert!(!ch.is_pinned(), "no pin before the first read");
    assert_eq!(ch.read_raw().unwrap().1, b"fine");
    assert!(ch.is_pinned(), "the free entry is claimed");
    for i in 0..20u8 {
        ch.publish_raw(Tag::BYTES, &[i; 64]).unwrap();
        assert_eq!(ch.read_raw().unwrap().1, [i; 64]);
    }
}

/// A reader that died with its entry asking for slots (or pinning one) must not keep small
/// values out of the header for good: the next handle to claim an entry clears dead owners'
/// entries, even when it finds a free one first.
#[test]
fn a_dead_readers_wish_for_slots_is_cleared_by_the_next_reader() {
    let s = Scratch::new("file");
    let in_header = || peek(&s.path(), 128) & 0xff == 0xff;
    let w = Options::new().capacity(64).create(&s.location).unwrap();
    w.publish_raw(Tag::BYTES, b"a").unwrap();
    assert!(in_header(), "header-only while nobody pins");
    // Entry 3: an owner that cannot be alive, asking for slots; entry 2: pinning slot 1.
    poke(&s.path(), 512 + 3 * 64, token_here(free_pid(0)));
    poke(&s.path(), 512 + 3 * 64 + 8, u64::MAX);
    poke(&s.path(), 512 + 2 * 64, token_here(free_pid(1)));
    poke(&s.path(), 512 + 2 * 64 + 8, 2);
    w.publish_raw(Tag::BYTES, b"b").unwrap();
    assert!(!in_header(), "a wish is honoured");
    let r = Options::new().open(&s.location).unwrap();
    assert_eq!(r.read_raw().unwrap().1, b"b");
    assert!(r.is_pinned());
    for i in 0..100u8 {
        w.publish_raw(Tag::BYTES, &[i]).unwrap();
    }
    assert!(in_header(), "the dead entries were cleared");
    assert_eq!(r.read_raw().unwrap().1, [99]);
    // The cleared entries are free again: three more handles get one each.
    let more: Vec<Channel> = (0..3)
        .map(|_| Options::new().open(&s.location).unwrap())
        .collect();
    for h in &more {
        h.read_raw().unwrap();
        assert!(h.is_pinned());
    }
}

#[test]
fn a_checksum_mismatch_is_corrupt() {
    let s = Scratch::new("file");
    let ch = Options::new()
        .capacity(64)
        .checksum(true)
        .create(&s.location)
        .unwrap();
    ch.publish_raw(Tag::TEXT, b"checked").unwrap();
    assert_eq!(ch.read_raw().unwrap().1, b"checked");
    drop(ch);
    let mut bytes = std::fs::read(s.path()).unwrap();
    let payload = SLOT0 + 128 + 64;
    bytes[payload] ^= 1;
    std::fs::write(s.path(), &bytes).unwrap();
    let err = Channel::open(s.name()).unwrap().read_raw().unwrap_err();
    assert!(
        matches!(err, Error::Corrupt { .. }) && err.to_string().contains("checksum"),
        "{err}"
    );
}

#[test]
fn a_failed_publish_after_a_lock_recovery_still_leaves_the_next_writer_in_step() {
    // A writer died holding the lock after storing `latest` (generation 1) but before the
    // writers' copy of it (offset 464, left at 0 here). The recovering writer's publish fails;
    // the next one, which takes the lock normally, must still publish generation 2.
    let ch = open_damaged(|b| {
        put_u64(b, 448, token_here(free_pid(7))); // lock: a pid that cannot exist
        put_u64(b, 464, 0); // written: behind latest
    })
    .unwrap();
    assert_eq!(ch.generation(), 1);
    let too_large = ch.publish_with(Tag::BYTES, |w| w.write_all(&[0; 65]));
    assert!(
        matches!(too_large, Err(Error::TooLarge { .. })),
        "{too_large:?}"
    );
    assert_eq!(ch.generation(), 1, "a failed publish publishes nothing");
    assert_eq!(ch.publish_raw(Tag::TEXT, b"next").unwrap(), 2);
    let (meta, value) = ch.read_raw().unwrap();
    assert_eq!((meta.generation, value), (2, b"next".to_vec()));
}

#[test]
fn a_dead_writers_lock_is_recovered() {
    let ch = open_damaged(|b| put_u64(b, 448, token_here(free_pid(7)))).unwrap();
    ch.publish_raw(Tag::TEXT, b"after recovery").unwrap();
    assert_eq!(ch.read_raw().unwrap().1, b"after recovery");
    assert_eq!(ch.info().writer_recoveries, 1);
}

/// A stray write that lowered `latest` (here: zeroed it) under a dead writer's lock. No writer
/// leaves `written`, the writers' count, ahead of `latest` (it stores `latest` first), so the
/// takeover goes on past `written` (at 2, of the zeroed `latest`'s parity already): the next
/// publish is generation 3. It went on from the lowered `latest`, and published a second
/// generation 1, which a reader that had seen 2 never takes for new. Freeing the lock
/// (`host::free_orphans`, `mmf recover`) resynchronises `written` so too, and the damage stays
/// for `recover` to mend: it found "nothing published yet" instead.
#[test]
fn a_takeover_goes_on_from_the_writers_count_where_a_stray_write_lowered_latest() {
    use mmf_core::host::free_orphans;
    const WRITTEN: usize = 464;
    let damaged = || {
        let s = Scratch::new("file");
        let ch = s.create(64);
        ch.publish_raw(Tag::TEXT, b"one").unwrap();
        ch.publish_raw(Tag::TEXT, b"two").unwrap();
        drop(ch);
        assert_eq!(peek(&s.path(), WRITTEN) >> 8, 2);
        poke(&s.path(), LATEST, 0);
        poke(&s.path(), 448, token_here(free_pid(7)));
        s
    };

    // The publish that takes the lock over.
    let s = damaged();
    let ch = Options::new().open(&s.location).unwrap();
    assert_eq!(ch.publish_raw(Tag::TEXT, b"three").unwrap(), 3);
    let (meta, value) = ch.read_raw().unwrap();
    assert_eq!((meta.generation, &value[..]), (3, &b"three"[..]));
    assert_eq!(ch.info().writer_recoveries, 1);

    // The lock freed with no handle open, then `recover`.
    let s = damaged();
    let freed = once_released(|| free_orphans(&s.location).unwrap()).expect("no handle is open");
    assert!(freed.lock.is_some(), "{freed:?}");
    assert_eq!(
        peek(&s.path(), WRITTEN) >> 8,
        2,
        "the writers' count is kept"
    );
    let ch = Options::new().open(&s.location).unwrap();
    assert!(ch.info().damage.is_some(), "the damage stays visible");
    let r = ch
        .recover()
        .unwrap()
        .expect("the newest whole value comes back");
    assert_eq!((r.from, r.meta.generation), (2, 3));
    let (meta, value) = ch.read_raw().unwrap();
    assert_eq!((meta.generation, &value[..]), (3, &b"two"[..]));
}

/// `latest` set back by a stray write to the value before, which still reads whole, under a
/// dead writer's lock, with `written` at the newer one: the takeover keeps off what `latest`
/// names while a reader copies it. A first version of the rule above went on from `written` as
/// it was, rewrote the slot `latest` names, and a read in the middle of that publish returned
/// generation 1 with 2,000 bytes of the new value in it (a review's reproducer, this test). The
/// next generation is `written`'s raised to `latest`'s parity, plus one: 4.
#[test]
fn a_takeover_over_a_lowered_latest_keeps_off_what_readers_copy() {
    use std::io::Write;
    const N: usize = 4000;
    let s = Scratch::new("file");
    let ch = s.create(4096);
    ch.publish_raw(Tag::TEXT, &[b'A'; N]).unwrap();
    let latest_1 = peek(&s.path(), LATEST);
    ch.publish_raw(Tag::TEXT, &[b'B'; N]).unwrap();
    drop(ch);
    poke(&s.path(), LATEST, latest_1);
    poke(&s.path(), 448, token_here(free_pid(7)));

    let reader = Options::new().open(&s.location).unwrap();
    let (meta, value) = reader.read_raw().unwrap();
    assert_eq!((meta.generation, value), (1, vec![b'A'; N]), "still whole");
    let writer = Options::new().open(&s.location).unwrap();
    let mut during = None;
    let g = writer
        .publish_with(Tag::TEXT, |w| {
            w.write_all(&[b'C'; N / 2])?;
            during = Some(reader.read_raw().unwrap());
            w.write_all(&[b'C'; N / 2])
        })
        .unwrap();
    let (meta, value) = during.unwrap();
    assert_eq!(
        (
            meta.generation,
            value.iter().filter(|&&b| b == b'C').count()
        ),
        (1, 0),
        "a read during the takeover's publish"
    );
    assert_eq!(g, 4);
    let (meta, value) = reader.read_raw().unwrap();
    assert_eq!((meta.generation, value), (4, vec![b'C'; N]));
}

/// A small number written over the writer lock (a pid, say, with none of a token's other
/// fields) is a token that names no PID namespace: a stray write, or a live handle that could
/// take no kernel lock and sees no `/proc` of its own, which nothing tells apart. It is waited
/// for, never taken over (a first version took it over, and a diff review's live writer of
/// that kind lost its lock: readers accepted 125,652 torn values), and the message says what
/// it may be, and who has the channel open, not "another PID namespace" (a hostile-mapping
/// review's shell pid was said so). Nothing is published; the value is kept.
#[test]
fn a_token_of_no_pid_namespace_over_the_lock_is_said_and_waited_for() {
    let s = Scratch::new("file");
    s.create(64).publish_raw(Tag::TEXT, b"kept").unwrap();
    poke(&s.path(), 448, u64::from(std::process::id()));
    let ch = Options::new()
        .lock_timeout(Duration::from_millis(30))
        .open(&s.location)
        .unwrap();
    let Err(Error::Contended { what, .. }) = ch.publish_raw(Tag::TEXT, b"lost") else {
        panic!("published over a lock that may be held");
    };
    assert!(
        what.contains("names no PID namespace")
            && what.contains("a stray write over the lock word")
            && what.contains("fuser -v ")
            && !what.contains("another PID namespace"),
        "{what}"
    );
    assert_eq!(ch.read_raw().unwrap().1, b"kept");
    assert_eq!(ch.info().writer_recoveries, 0);
}

/// The stuck lock of the test above, freed: not while any handle is open (nothing is touched
/// then), and once none is, as a takeover frees a dead writer's. `written` is set from `latest`
/// on the way (here a writer that stored `latest` and died before `written`), so the next
/// publish is the next generation, not a second generation 1.
#[test]
fn an_unjudgeable_lock_is_freed_once_no_process_has_the_channel_open() {
    use mmf_core::host::free_orphans;
    const WRITTEN: usize = 464;
    let s = Scratch::new("file");
    s.create(64).publish_raw(Tag::TEXT, b"kept").unwrap();
    let latest = peek(&s.path(), LATEST);
    assert_eq!(latest >> 8, 1);
    poke(&s.path(), WRITTEN, 0);
    poke(&s.path(), 448, u64::from(std::process::id()));
    let ch = Options::new()
        .lock_timeout(Duration::from_millis(30))
        .open(&s.location)
        .unwrap();
    assert_eq!(free_orphans(&s.location).unwrap(), None, "a handle is open");
    assert_eq!(peek(&s.path(), 448), u64::from(std::process::id()));
    assert!(matches!(
        ch.publish_raw(Tag::TEXT, b"lost"),
        Err(Error::Contended { .. })
    ));
    drop(ch);

    let freed = once_released(|| free_orphans(&s.location).unwrap()).expect("no handle is open");
    let lock = freed.lock.expect("the lock was freed");
    assert_eq!(lock.pid, std::process::id());
    assert!(matches!(lock.state, OwnerState::Unknown(_)), "{lock:?}");
    assert_eq!(freed.lock_kept, None);
    assert!(!freed.is_empty());
    assert_eq!(peek(&s.path(), 448), 0);
    assert_eq!(peek(&s.path(), WRITTEN), latest);

    let ch = Options::new().open(&s.location).unwrap();
    assert_eq!(ch.read_raw().unwrap().1, b"kept", "the value stays");
    assert_eq!(ch.info().writer_recoveries, 1);
    assert_eq!(ch.publish_raw(Tag::TEXT, b"next").unwrap(), 2);
    let (meta, value) = ch.read_raw().unwrap();
    assert_eq!((meta.generation, &value[..]), (2, &b"next"[..]));
    drop(ch);
    // Nothing left to free.
    let freed = once_released(|| free_orphans(&s.location).unwrap()).expect("no handle is open");
    assert!(freed.is_empty(), "{freed:?}");
}

/// Pin entries and waiter counts of holders that cannot be judged are freed with the lock, and
/// what stray writes left in entries nobody owns; those of holders judged alive (a kernel-held
/// token whose byte a process holds, though it holds no handle) are left, the lock included,
/// and the waiters those entries count stay.
#[test]
#[cfg(target_os = "linux")]
fn orphaned_pins_and_waiters_are_freed_and_live_holders_kept() {
    use mmf_core::host::free_orphans;
    let s = Scratch::new("file");
    s.create(64).publish_raw(Tag::TEXT, b"kept").unwrap();
    let path = s.path();
    let alive = free_pid(5) as u64 | 0x1234_5678 << 22 | 1 << 62 | KERNEL_HELD;
    let _held = hold_byte(&path, alive & !KERNEL_HELD);
    // Entry 0: a stray owner, pinning slot 1, counting 2 waiters; entry 1: a live owner
    // counting 1; the header: those 3 and 5 more.
    set_entry_words(&path, 0, [4242, 1, 2]);
    set_entry_words(&path, 1, [alive, u64::MAX, 1]);
    // Entry 2: nobody's, with a stray pin and a stray count of 4.
    set_entry_words(&path, 2, [0, 3, 4]);
    poke(&path, WAITERS, 12);
    poke(&path, 448, alive);

    let freed = once_released(|| free_orphans(&s.location).unwrap()).expect("no handle is open");
    assert_eq!(freed.lock, None);
    let kept = freed.lock_kept.expect("a live holder's lock is kept");
    assert_eq!(
        (kept.pid, kept.state),
        (free_pid(5), OwnerState::Alive),
        "{kept:?}"
    );
    assert_eq!((freed.pins, freed.pins_kept, freed.waiters), (1, 1, 11));
    assert_eq!(entry_words(&path, 0), [0, 0, 0], "entry 0 free");
    assert_eq!(entry_words(&path, 1), [alive, u64::MAX, 1], "entry 1 kept");
    assert_eq!(entry_words(&path, 2), [0, 0, 0], "entry 2 cleared");
    assert_eq!(peek(&path, WAITERS), 1);
    assert_eq!(peek(&path, 448), alive);
}

/// A writer whose wake-up call woke nobody takes off the counts of entries whose owner died
/// waiting, and of entries nobody owns, and keeps a live owner's: a writer that never reads
/// (whose handle claims no entry) paid a wake-up call for nobody on every publish, for as long
/// as it ran.
#[test]
#[cfg(target_os = "linux")]
fn a_writer_takes_dead_waiters_off_the_count_and_keeps_live_ones() {
    let s = Scratch::new("file");
    let ch = s.create(64);
    let path = s.path();
    let alive = free_pid(5) as u64 | 0x1234_5678 << 22 | 1 << 62 | KERNEL_HELD;
    let dead = free_pid(6) as u64 | 0x1234_5679 << 22 | 1 << 62 | KERNEL_HELD;
    let _held = hold_byte(&path, alive & !KERNEL_HELD);
    // Entry 0: a dead owner pinning slot 1 and counting 2 waiters; entry 1: a live owner
    // counting 1; entry 2: nobody's, counting 4; the header: all 7.
    set_entry_words(&path, 0, [dead, 1, 2]);
    set_entry_words(&path, 1, [alive, 0, 1]);
    set_entry_words(&path, 2, [0, 0, 4]);
    poke(&path, WAITERS, 7);
    ch.publish_raw(Tag::TEXT, b"nobody sleeps").unwrap();
    assert_eq!(
        entry_words(&path, 0),
        [0, 0, 0],
        "the dead owner's entry free"
    );
    assert_eq!(
        entry_words(&path, 1),
        [alive, 0, 1],
        "the live owner's entry kept"
    );
    assert_eq!(entry_words(&path, 2), [0, 0, 0], "nobody's count cleared");
    assert_eq!(peek(&path, WAITERS), 1, "the live waiter still counted");
    assert!(!ch.is_pinned(), "mended by the publish, not by a claim");
    assert_eq!(ch.read_raw().unwrap().1, b"nobody sleeps");
}

/// The writer's reap reads owners and counts a peer may have written anything into: tokens at
/// the edges of their range (a lock byte past any file size, byte 0, pid 0, pid 1 of no PID
/// namespace) and counts at `u64::MAX`. Publishing goes on and values read back; the dead
/// owners' and nobody's counts go, the one whose owner cannot be judged (pid 1, no namespace:
/// taken as alive) stays, and the header's count does not wrap.
#[test]
#[cfg(target_os = "linux")]
fn a_writers_reap_takes_whatever_a_peer_wrote_into_the_entries() {
    let s = Scratch::new("file");
    let ch = Options::new()
        .capacity(64)
        .readers(5)
        .create(&s.location)
        .unwrap();
    // Reads through a read-only handle, which claims no entry (a claim clears dead entries too).
    let reader = Options::new().read_only(true).open(&s.location).unwrap();
    let path = s.path();
    let owners = [u64::MAX, KERNEL_HELD, 1, 0, 1 << 62];
    for (e, owner) in owners.iter().enumerate() {
        set_entry_words(&path, e, [*owner, u64::MAX, u64::MAX]);
    }
    poke(&path, WAITERS, u64::MAX);
    for i in 0..3u8 {
        ch.publish_raw(Tag::BYTES, &[i; 8]).unwrap();
        assert_eq!(reader.read_raw().unwrap().1, [i; 8]);
        // Past the reap's 100 ms between looks.
        std::thread::sleep(Duration::from_millis(120));
    }
    let entries: Vec<[u64; 3]> = (0..owners.len()).map(|e| entry_words(&path, e)).collect();
    let free = [0, 0, 0];
    assert_eq!(
        entries,
        [free, free, [1, u64::MAX, u64::MAX], free, free],
        "owner, pinned and waiting of each entry"
    );
    assert!(!ch.is_pinned());
    assert_eq!(peek(&path, WAITERS), 0, "lowered, saturating, not wrapped");
}

/// A channel holding "kept" and what keeps its lock owner alive, if anything.
struct Locked {
    scratch: Scratch,
    // (Elsewhere than on Linux no test keeps a file lock here.)
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    held: Option<std::fs::File>,
}

/// Creates a channel holding "kept", lets `hold` take whatever keeps `owner` alive (given the
/// file's path), stores `owner` in the writer lock, and publishes through a handle that waits
/// 30 ms for the lock: that must fail with `Contended` and leave "kept". Returns the channel,
/// the handle and the error.
fn publish_while_locked_by(
    owner: u64,
    hold: impl FnOnce(&std::path::Path) -> Option<std::fs::File>,
) -> (Locked, Channel, Error) {
    let scratch = Scratch::new("file");
    scratch.create(64).publish_raw(Tag::TEXT, b"kept").unwrap();
    let held = hold(&scratch.path());
    poke(&scratch.path(), 448, owner);
    let ch = Options::new()
        .lock_timeout(Duration::from_millis(30))
        .open(&scratch.location)
        .unwrap();
    let err = ch.publish_raw(Tag::TEXT, b"lost").unwrap_err();
    assert!(matches!(err, Error::Contended { .. }), "{err}");
    assert_eq!(ch.read_raw().unwrap().1, b"kept");
    (Locked { scratch, held }, ch, err)
}

/// Another thread of the same handle holds the lock: its own lock test cannot see its own
/// kernel lock, so the handle must know its token rather than judge it (it would say "dead").
#[test]
fn a_lock_held_by_another_thread_of_the_handle_is_named_as_such() {
    let s = Scratch::new("file");
    s.create(64);
    let ch = Options::new()
        .lock_timeout(Duration::from_millis(30))
        .open(&s.location)
        .unwrap();
    let (held, release) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
    std::thread::scope(|t| {
        t.spawn(|| {
            ch.publish_with(Tag::TEXT, |w| {
                held.wait();
                release.wait();
                w.write_all(b"first")
            })
            .unwrap()
        });
        held.wait();
        let err = ch.publish_raw(Tag::TEXT, b"second");
        let lock = ch.info().writer_lock;
        release.wait(); // before any assertion, so that a failure cannot hang the test
        let err = err.unwrap_err();
        assert!(
            err.to_string()
                .contains("held under this handle's own identity (pid"),
            "{err}"
        );
        let lock = lock.unwrap();
        assert_eq!(lock.state, OwnerState::Alive);
        assert_eq!(lock.pid, std::process::id());
    });
    assert_eq!(ch.read_raw().unwrap().1, b"first");
    assert_eq!(ch.info().writer_recoveries, 0);
}

/// A new reader that finds no free entry takes over the first dead one, and clears every other
/// dead entry that still pins or asks for slots (they would keep values out of the header).
#[test]
fn a_reader_taking_a_dead_entry_clears_the_other_dead_ones() {
    let s = Scratch::new("file");
    let in_header = || peek(&s.path(), 128) & 0xff == 0xff;
    let w = Options::new().capacity(64).create(&s.location).unwrap();
    for e in 0..4 {
        poke(&s.path(), 512 + e * 64, token_here(free_pid(e)));
        poke(&s.path(), 512 + e * 64 + 8, u64::MAX);
    }
    w.publish_raw(Tag::BYTES, b"a").unwrap();
    assert!(!in_header(), "the dead entries' wishes are honoured");
    let r = Options::new().open(&s.location).unwrap();
    assert_eq!(r.read_raw().unwrap().1, b"a");
    drop(r); // released: no entry pins or asks for slots any more
    for i in 0..100u8 {
        w.publish_raw(Tag::BYTES, &[i]).unwrap();
    }
    assert!(
        in_header(),
        "all four dead entries were cleared, not just the one taken"
    );
}

/// A lock whose owner is of another PID namespace (docs/FORMAT.md §5) is never recovered from
/// here, even when its pid does not exist here: the publish times out, says why, and the value
/// stays. `tests/reliability.rs` does the same with a real process in a new namespace.
#[test]
fn a_lock_held_from_another_pid_namespace_is_not_taken() {
    let (s, ch, err) = publish_while_locked_by(token_elsewhere(free_pid(7)), |_| None);
    let s = s.scratch;
    assert!(err.to_string().contains("another PID namespace"), "{err}");
    assert_eq!(ch.info().writer_recoveries, 0);
    let lock = ch.info().writer_lock.unwrap();
    assert_eq!(lock.pid, free_pid(7));
    assert!(matches!(lock.state, OwnerState::Unknown(why) if why.contains("PID namespace")));
    // Its own namespace's view: the same pid there is dead, so the lock is recovered.
    poke(&s.path(), 448, token_here(free_pid(7)));
    ch.publish_raw(Tag::TEXT, b"recovered").unwrap();
    assert_eq!(ch.info().writer_recoveries, 1);
}

/// A kernel-held token (bit 63) is judged by the lock on its byte of the file, whatever its pid
/// and namespace say: alive while any open file description holds it, dead once none does.
#[test]
#[cfg(target_os = "linux")]
fn a_kernel_held_lock_lives_exactly_as_long_as_its_file_lock() {
    // Another namespace and a pid that does not exist: by pid this could not be judged at all.
    let token = free_pid(3) as u64 | 0x5a5a_5a5a << 22 | 1 << 62 | KERNEL_HELD;
    let (s, ch, err) =
        publish_while_locked_by(token, |path| Some(hold_byte(path, token & !KERNEL_HELD)));
    // Alive by its lock, but no process of that pid here has the channel open: said so.
    assert!(
        err.to_string().contains(&format!(
            "held by a live handle whose token names pid {}, but no process",
            free_pid(3)
        )),
        "{err}"
    );
    let lock = || {
        let owner = ch.info().writer_lock.expect("held");
        assert_eq!(owner.pid, free_pid(3));
        owner.state
    };
    // `info` says so too: held, so not dead, but its pid is no holder here (it said `Alive`).
    assert!(
        matches!(lock(), OwnerState::Unknown(why) if why.contains("not by a process of its pid")),
        "{:?}",
        lock()
    );
    // The holder's process exits: the kernel drops its lock, once no open file description
    // holds it (`once_released`).
    drop(s.held);
    let _ = once_released(|| (lock() == OwnerState::Dead).then_some(()));
    assert_eq!(lock(), OwnerState::Dead);
    ch.publish_raw(Tag::TEXT, b"recovered").unwrap();
    assert_eq!(ch.read_raw().unwrap().1, b"recovered");
    assert_eq!(ch.info().writer_recoveries, 1);
    assert_eq!(ch.info().writer_lock, None, "released after the publish");
}

#[test]
fn a_panicking_fill_releases_the_lock_and_keeps_the_value() {
    let ch = Channel::anonymous(32).unwrap();
    ch.publish_raw(Tag::TEXT, b"before").unwrap();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = ch.publish_with(Tag::TEXT, |w| {
            w.put(b"half")?;
            panic!("serializer bug");
        });
    }));
    assert!(panicked.is_err());
    assert_eq!(ch.read_raw().unwrap().1, b"before");
    ch.publish_raw(Tag::TEXT, b"after").unwrap();
    assert_eq!(ch.read_raw().unwrap().1, b"after");
}

#[test]
fn handles_that_only_write_take_no_pin() {
    let s = Scratch::new("shm");
    let ch = Options::new()
        .capacity(8)
        .readers(1)
        .create(&s.location)
        .unwrap();
    let writers: Vec<Channel> = (0..3).map(|_| Channel::open(s.name()).unwrap()).collect();
    for w in &writers {
        w.publish_raw(Tag::BYTES, b"x").unwrap();
        assert!(!w.is_pinned());
    }
    ch.read_raw().unwrap();
    assert!(ch.is_pinned(), "the one entry is still free for a reader");
}

#[test]
fn a_live_lock_holder_makes_publish_contended_not_hung() {
    let s = Scratch::new("file");
    let ch = s.create(16);
    drop(ch);
    let mut bytes = std::fs::read(s.path()).unwrap();
    // A token judged by pid (FORMAT.md §5) with our own pid, namespace and start time: alive,
    // so it must not be stolen.
    let me = std::process::id();
    put_u64(
        &mut bytes,
        448,
        token_here(me) | (proc_start(me) & 0x7fff) << 48,
    );
    std::fs::write(s.path(), &bytes).unwrap();
    let ch = Options::new()
        .lock_timeout(Duration::from_millis(30))
        .open(&s.location)
        .unwrap();
    let err = ch.publish_raw(Tag::TEXT, b"x").unwrap_err();
    assert!(matches!(err, Error::Contended { .. }), "{err}");
    assert!(
        err.to_string().contains(&me.to_string()),
        "names the holder: {err}"
    );
}

fn proc_start(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    rest.split_whitespace()
        .nth(19)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        & 0xffff_ffff
}

/// Every length around the inline capacity, through every publish route: the slot (for every
/// value while a reader wants slots, and for streamed or larger values always) and the inline
/// buffer (values of up to 120 bytes) hold the value byte for byte, zero-padded to a whole word,
/// a small value given as a slice while nobody wants slots is in the header only (`latest` names
/// slot 0xff), every publish stamps its inline buffer with its generation, whether the value is
/// inline or not, and a read returns the value. Checked in the file itself, at the offsets
/// docs/FORMAT.md gives for a 200-byte channel with 4 readers.
#[test]
fn small_values_land_in_the_slot_and_the_inline_buffer_alike() {
    const HEADER: usize = 512 + 4 * 64;
    const STRIDE: usize = 64 + 256;
    let s = Scratch::new("file");
    let ch = s.create(200);
    let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let mut out = Vec::new();
    for wanted in [false, true] {
        // Pin entry 0's `pinned` word: a reader that wants slots, or nobody.
        poke(&s.path(), PIN0, if wanted { u64::MAX } else { 0 });
        for len in 0..=200usize {
            let value: Vec<u8> = (0..len).map(|i| (i * 13 + len + 1) as u8).collect();
            for streamed in [false, true] {
                let gen = if streamed {
                    ch.publish_with(Tag::BYTES, |w| w.write_all(&value))
                } else {
                    ch.publish_raw(Tag::BYTES, &value)
                }
                .unwrap();
                let file = std::fs::read(s.path()).unwrap();
                let latest = u64_at(&file, LATEST);
                assert_eq!(latest >> 8, gen);
                let padded = len.div_ceil(8) * 8;
                let mut want = value.clone();
                want.resize(padded, 0);
                let header_only = !wanted && !streamed && len <= 120;
                let slot = (latest & 0xff) as usize;
                if header_only {
                    assert_eq!(slot, 0xff, "header only, len {len}");
                } else {
                    assert!(slot < 6, "slot {slot}, len {len}, wanted {wanted}");
                    let payload = HEADER + slot * STRIDE + 64;
                    assert_eq!(
                        &file[payload..payload + padded],
                        &want[..],
                        "slot, len {len}"
                    );
                }
                let b = (gen % 2) as usize;
                assert_eq!(u64_at(&file, 136 + 16 * b), gen, "descriptor, len {len}");
                assert_eq!(u64_at(&file, 144 + 16 * b), len as u64 | 1 << 32);
                assert_eq!(u64_at(&file, 312 + 128 * b), gen, "stamp, len {len}");
                if len <= 120 {
                    let data = 192 + 128 * b;
                    assert_eq!(&file[data..data + padded], &want[..], "inline, len {len}");
                }
                // Read after the file was checked: a reader's pin is a store of its own.
                let meta = ch.read_into(&mut out).unwrap();
                assert_eq!((meta.generation, &out), (gen, &value), "len {len}");
            }
        }
    }
}

/// A hostile peer's view of a channel file: its own read-write mapping, whose words it stores to
/// as it likes while honest handles work.
struct Peer {
    map: memmap2::MmapMut,
}

impl Peer {
    fn new(path: &std::path::Path) -> Peer {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        // SAFETY: the mapping is only accessed through atomics (below), like mmf's own; the file
        // stays the same size for the test's duration.
        let map = unsafe { memmap2::MmapMut::map_mut(&file) }.unwrap();
        Peer { map }
    }

    /// The word at byte `offset` (8-aligned, inside the file).
    fn word(&self, offset: usize) -> &std::sync::atomic::AtomicU64 {
        assert!(offset.is_multiple_of(8) && offset + 8 <= self.map.len());
        // SAFETY: in bounds and aligned (checked above; the mapping is page-aligned); shared
        // memory is only ever accessed atomically, and the reference lives no longer than `self`.
        unsafe {
            &*self
                .map
                .as_ptr()
                .add(offset)
                .cast::<std::sync::atomic::AtomicU64>()
        }
    }
}

/// A peer that keeps storing fresh dead owners into the lock word: each one is judged dead, and
/// the compare-and-swap that would take it over fails because the word has changed again. The
/// publish must still give up at its lock timeout (it used to go round without looking at the
/// clock, for hundreds of milliseconds, as long as the peer kept up).
#[test]
fn a_lock_word_rewritten_without_end_cannot_hold_a_publish_past_its_timeout() {
    let s = Scratch::new("file");
    s.create(64).publish_raw(Tag::TEXT, b"kept").unwrap();
    let ch = Options::new()
        .lock_timeout(Duration::from_millis(1))
        .open(&s.location)
        .unwrap();
    let peer = Peer::new(&s.path());
    // The bound is the timeout plus preemptions of this busy test on a loaded two-core machine;
    // before the fix, one publish in a few hundred took 75-700 ms. A preemption that long
    // happens on a busy machine too, but not in three rounds running: the bug did, every round.
    let mut worsts = Vec::new();
    for _round in 0..3 {
        let worst = worst_publish_under_a_rewritten_lock(&ch, &peer);
        if worst < Duration::from_millis(200) {
            return;
        }
        worsts.push(worst);
    }
    panic!("a publish took {worsts:?} in three rounds");
}

/// The longest of 500 publishes on `ch` while a thread rewrites its lock word through `peer`
/// without end.
fn worst_publish_under_a_rewritten_lock(ch: &Channel, peer: &Peer) -> Duration {
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            // Two kinds of dead owner, each made fresh: kernel-held tokens on bytes nobody locks
            // (dead after one F_OFD_GETLK), and this process's pid with start times it never had
            // (dead after reading /proc, a wide window for the word to change again).
            let lock = peer.word(448);
            let kernel = KERNEL_HELD | 1 << 62 | 12_345;
            let here = token_here(std::process::id());
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i = i.wrapping_add(1);
                lock.store(kernel | (i & 0xff_ffff) << 22, Ordering::Relaxed);
                lock.store(here | ((i & 0x3fff) | 0x4000) << 48, Ordering::Relaxed);
            }
        });
        std::thread::sleep(Duration::from_millis(20));
        let mut worst = Duration::ZERO;
        for _ in 0..500 {
            let started = std::time::Instant::now();
            match ch.publish_raw(Tag::TEXT, b"x") {
                Ok(_) | Err(Error::Contended { .. }) => {}
                Err(e) => panic!("{e}"),
            }
            worst = worst.max(started.elapsed());
        }
        stop.store(true, Ordering::Relaxed);
        worst
    })
}

/// The header's `waiters` word and pin entry `e`'s words (docs/FORMAT.md §4, §5).
const WAITERS: usize = 480;
fn pin_word(e: usize, word: usize) -> usize {
    512 + 64 * e + 8 * word
}

/// Pin entry `e`'s `owner`, `pinned` and `waiting` words, in the file at `path` (on Linux, as
/// the tests that plant kernel-held tokens).
#[cfg(target_os = "linux")]
fn entry_words(path: &std::path::Path, e: usize) -> [u64; 3] {
    [0, 1, 2].map(|w| peek(path, pin_word(e, w)))
}

/// Writes pin entry `e`'s `owner`, `pinned` and `waiting` words into the file at `path`.
#[cfg(target_os = "linux")]
fn set_entry_words(path: &std::path::Path, e: usize, words: [u64; 3]) {
    for (w, v) in words.into_iter().enumerate() {
        poke(path, pin_word(e, w), v);
    }
}

/// Waits on `s`'s channel for the value that a second handle publishes 100 ms in, with the
/// header's `waiters` word set by a peer to `before` ahead of the wait and to `during` 50 ms into
/// it; returns how long the wait took.
fn wait_with_forged_waiters(s: &Scratch, before: Option<u64>, during: Option<u64>) -> Duration {
    let writer = s.create(64);
    let waiter = Channel::open(s.name()).unwrap();
    let peer = Peer::new(&s.path());
    let forge = |v: Option<u64>| {
        if let Some(v) = v {
            peer.word(WAITERS).store(v, Ordering::SeqCst);
        }
    };
    forge(before);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(50));
            forge(during);
            std::thread::sleep(Duration::from_millis(50));
            writer.publish_raw(Tag::TEXT, b"new").unwrap();
        });
        let started = std::time::Instant::now();
        let got = waiter.wait_for_change(0, Duration::from_secs(5));
        assert_eq!(got, Some(1), "the value came");
        started.elapsed()
    })
}

/// A peer's `waiters = u64::MAX` made the waiter's own increment wrap it to 0, so writers saw
/// nobody waiting and the waiter slept its whole timeout (5 s here); a peer (or the repair of a
/// dead waiter's entry) setting it to 0 under a sleeper did the same. The count now saturates,
/// and a sleeper looks at `latest` at least every 100 ms: a wrong count costs latency only.
#[test]
fn a_forged_waiter_count_costs_latency_not_the_wake_up() {
    for (what, before, during) in [
        ("u64::MAX before the wait", Some(u64::MAX), None),
        ("0 during the wait", None, Some(0)),
    ] {
        let s = Scratch::new("file");
        let took = wait_with_forged_waiters(&s, before, during);
        assert!(
            took < Duration::from_millis(1500),
            "{what}: woke after {took:?}"
        );
    }
}

/// A wait whose entry's count was taken while it slept (the entry released by the handle it
/// shares it with: a forked child waits through its parent's entry, and the parent may close
/// that handle; or the entry taken over) must not lower the header's `waiters` again when it
/// ends: whoever took the entry's count lowered the header by it. It did, taking off another
/// sleeper's count, and writers then skipped that sleeper's wake-up (it saw the value only at
/// its 100 ms re-check). Here the test itself takes the first wait's count, as a release would.
#[test]
fn a_wait_whose_entry_count_was_taken_leaves_the_other_sleepers_counted() {
    let s = Scratch::new("file");
    let writer = s.create(64);
    let (first, second) = (
        Channel::open(s.name()).unwrap(),
        Channel::open(s.name()).unwrap(),
    );
    let peer = Peer::new(&s.path());
    let until = |what: &str, done: &dyn Fn() -> bool| {
        let t = std::time::Instant::now();
        while !done() {
            assert!(t.elapsed() < Duration::from_secs(5), "{what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    std::thread::scope(|scope| {
        let first_wait = scope.spawn(|| first.wait_for_change(0, Duration::from_millis(400)));
        until("the first wait counted", &|| writer.info().waiters == 1);
        let e = (0..4)
            .find(|&e| peer.word(pin_word(e, 2)).load(Ordering::SeqCst) == 1)
            .expect("the entry that counts the first wait");
        let second_wait = scope.spawn(|| second.wait_for_change(0, Duration::from_secs(10)));
        until("the second wait counted", &|| writer.info().waiters == 2);
        // What releasing entry `e` does: its count to 0, the header lowered by it.
        peer.word(pin_word(e, 2)).store(0, Ordering::SeqCst);
        peer.word(WAITERS).fetch_sub(1, Ordering::SeqCst);
        assert_eq!(first_wait.join().unwrap(), None, "the first wait timed out");
        assert_eq!(
            writer.info().waiters,
            1,
            "the second wait is still counted, so a publish wakes it"
        );
        writer.publish_raw(Tag::TEXT, b"new").unwrap();
        assert_eq!(second_wait.join().unwrap(), Some(1));
    });
    assert_eq!(writer.info().waiters, 0);
}

/// A waiter killed between its two counts (the header's `waiters`, then its pin entry's) left
/// `waiters` one above what any entry counts, and so for good: the takeover of its entry had
/// nothing to subtract, and only an excess above 65536 was mended. Every publish then paid a
/// wake-up call for nobody. A writer whose wake-up calls wake nobody now lowers an excess that
/// stays put for a millisecond.
#[test]
fn a_waiter_killed_between_its_two_counts_is_mended_by_the_writers() {
    let s = Scratch::new("file");
    let ch = s.create(64);
    ch.publish_raw(Tag::TEXT, b"x").unwrap();
    let peer = Peer::new(&s.path());
    peer.word(WAITERS).store(1, Ordering::SeqCst);
    // The next handle's claim leaves so small an excess alone (a wait may be starting).
    Channel::open(s.name()).unwrap().read_raw().unwrap();
    assert_eq!(ch.info().waiters, 1);
    // Publishes a millisecond or more apart: the second one that looks mends it.
    let mut publishes = 0;
    while ch.info().waiters != 0 && publishes < 100 {
        ch.publish_raw(Tag::TEXT, b"y").unwrap();
        std::thread::sleep(Duration::from_millis(2));
        publishes += 1;
    }
    assert_eq!(
        ch.info().waiters,
        0,
        "still counted after {publishes} publishes"
    );
    assert!(publishes >= 2, "lowered before it stayed put");
    // A waiter that is counted in its entry stays counted, and is woken.
    let waiter = Channel::open(s.name()).unwrap();
    std::thread::scope(|sc| {
        let woke = sc.spawn(|| waiter.wait_for_change(publishes + 1, Duration::from_secs(30)));
        while ch.info().waiters != 1 {
            std::thread::sleep(Duration::from_millis(1));
        }
        ch.publish_raw(Tag::TEXT, b"z").unwrap();
        assert_eq!(woke.join().unwrap(), Some(publishes + 2));
    });
    assert_eq!(ch.info().waiters, 0);
}

/// A handle whose pin entry was taken over (its owner word is another token's, as after a
/// wrong "dead" verdict) leaves the entry alone when it is dropped: it used to zero the new
/// owner's pin and waiting count first, costing that owner its slot and its wake-ups.
#[test]
fn dropping_a_handle_leaves_a_pin_entry_it_no_longer_owns_alone() {
    let s = Scratch::new("file");
    let ch = s.create(64);
    ch.publish_raw(Tag::TEXT, b"x").unwrap();
    ch.read_raw().unwrap(); // claims entry 0
    let peer = Peer::new(&s.path());
    let mine = peer.word(pin_word(0, 0)).load(Ordering::SeqCst);
    assert_ne!(mine, 0, "the read claimed entry 0");
    let other = mine ^ 0xff_ffff; // another token of the same form
    peer.word(pin_word(0, 0)).store(other, Ordering::SeqCst);
    peer.word(pin_word(0, 1)).store(3, Ordering::SeqCst);
    peer.word(pin_word(0, 2)).store(1, Ordering::SeqCst);
    peer.word(WAITERS).store(1, Ordering::SeqCst);
    drop(ch);
    let words: Vec<u64> = (0..3)
        .map(|w| peer.word(pin_word(0, w)).load(Ordering::SeqCst))
        .collect();
    assert_eq!(words, [other, 3, 1], "owner, pinned slot, waiting");
    assert_eq!(peer.word(WAITERS).load(Ordering::SeqCst), 1);
}

/// RELIABILITY.md says: if `verify` reports a file truncated under the mapping, drop the handle.
/// Dropping a handle that had read (so holds a pin entry) stored into the missing page and
/// killed the process with SIGBUS. Run in a child process, which such a bug kills.
#[test]
fn a_handle_on_a_truncated_file_is_dropped_without_sigbus() {
    if let Ok(path) = std::env::var("MMF_TRUNCATE_CHILD") {
        let ch = Channel::open(&path).unwrap();
        ch.read_raw().unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        let err = ch.verify().unwrap_err();
        assert!(err.to_string().contains("stop using this handle"), "{err}");
        drop(ch);
        println!("DROPPED");
        return;
    }
    let s = Scratch::new("file");
    s.create(64).publish_raw(Tag::TEXT, b"x").unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_handle_on_a_truncated_file_is_dropped_without_sigbus",
            "--nocapture",
            "-q",
        ])
        .env("MMF_TRUNCATE_CHILD", s.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("DROPPED"),
        "{:?}: {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Anyone may plant a FIFO under a channel's name in `/dev/shm` (mode 1777), or pass a FIFO's
/// path: opening, listing, checking use of and removing it used to block in `open(2)` until a
/// writer came, hanging `mmf list` for every user. Each is now an error naming what it is.
#[test]
fn a_fifo_under_a_channel_name_is_an_error_not_a_hang() {
    let s = Scratch::new("shm");
    let file = Scratch::new("file");
    for p in [s.path(), file.path()] {
        let made = std::process::Command::new("mkfifo").arg(&p).status();
        if !made.is_ok_and(|st| st.success()) {
            skipped("mkfifo is not available");
            return;
        }
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let (shm, path) = (s.location.clone(), file.location.clone());
    std::thread::spawn(move || {
        let mut said = Vec::new();
        for loc in [&shm, &path] {
            said.push(Options::new().open(loc).map(|_| ()));
            said.push(Options::new().read_only(true).open(loc).map(|_| ()));
            said.push(mmf_core::host::in_use(loc).map(|_| ()));
        }
        said.push(Channel::remove(&path));
        let listed = mmf_core::list().unwrap();
        let shm_name = shm.to_string();
        let entry = listed.into_iter().find(|l| l.name == shm_name).unwrap();
        said.push(entry.info.map(|_| ()));
        tx.send(said).unwrap();
    });
    let said = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("opening a FIFO blocked");
    for r in said {
        let err = r.unwrap_err();
        assert!(matches!(err, Error::NotAFile { kind: "FIFO", .. }), "{err}");
        assert!(
            err.to_string().contains("is a FIFO, not a regular file"),
            "{err}"
        );
    }
    assert!(
        file.path().exists(),
        "remove left a FIFO that is no channel alone"
    );
}

/// A file path through a directory that someone else may write can have a link swapped in
/// between the look at what the path leads to and the open: opening a channel there must
/// never open the FIFO (or device) the link was swapped to. Opening a FIFO for reading lets a
/// writer blocked in its `open` go on, which is what this test watches for, while another
/// thread swaps the link between a channel and the FIFO as fast as it can.
#[cfg(target_os = "linux")]
#[test]
fn a_link_swapped_to_a_fifo_while_opening_never_opens_the_fifo() {
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    if !std::path::Path::new("/proc/self/fd").is_dir() {
        // Without /proc the open falls back to the path, which a swap can lead elsewhere
        // (`open_existing` says so): nothing here to test.
        skipped("/proc is not mounted");
        return;
    }
    let dir = fresh_dir("swap");
    let (real, pipe, link) = (dir.join("real.mmf"), dir.join("pipe"), dir.join("link"));
    drop(Channel::create(Location::file(&real), 64).unwrap());
    let made = std::process::Command::new("mkfifo").arg(&pipe).status();
    if !made.is_ok_and(|st| st.success()) {
        skipped("mkfifo is not available");
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    // Blocks until some process opens the FIFO for reading.
    let writer = std::thread::spawn({
        let (pipe, done) = (pipe.clone(), done.clone());
        move || {
            let opened = std::fs::OpenOptions::new().write(true).open(&pipe);
            (opened.is_ok(), done.load(Ordering::SeqCst))
        }
    });
    let swapper = std::thread::spawn({
        let (dir, real, pipe, done) = (dir.clone(), real.clone(), pipe.clone(), done.clone());
        move || {
            let mut swaps = 0u64;
            while !done.load(Ordering::SeqCst) {
                for target in [&real, &pipe] {
                    let tmp = dir.join("next");
                    std::os::unix::fs::symlink(target, &tmp).unwrap();
                    std::fs::rename(&tmp, dir.join("link")).unwrap();
                }
                swaps += 1;
            }
            swaps
        }
    });
    let (mut opened, mut refused) = (0, 0);
    let start = std::time::Instant::now();
    // 10,000 tries, and more until both outcomes were seen (a loaded machine may run the swapper
    // seldom), within a bound.
    for tries in 0.. {
        if tries >= 10_000
            && (opened > 0 && refused > 0 || start.elapsed() > Duration::from_secs(20))
        {
            break;
        }
        match Options::new().read_only(true).open(Location::file(&link)) {
            Ok(_) => opened += 1,
            Err(Error::NotAFile { kind: "FIFO", .. }) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    done.store(true, Ordering::SeqCst);
    let swaps = swapper.join().unwrap();
    // Lets the writer go on if nothing did, then sees whether something had.
    let release = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&pipe)
        .unwrap();
    let (writer_opened, after_done) = writer.join().unwrap();
    drop(release);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(writer_opened);
    assert!(
        after_done,
        "the FIFO was opened for reading while opening the channel ({opened} opened, {refused} \
         refused, {swaps} swaps)"
    );
    assert!(
        opened > 0 && refused > 0,
        "{opened} opened, {refused} refused"
    );
}

/// `open_or_create_with_origin` says whether it made the channel; on a path that is a symbolic link
/// to nothing (creating never goes through a link and finds the name taken, opening goes through
/// it and finds nothing) it names the link instead of going round for ever.
#[test]
fn open_or_create_tells_whether_it_created_and_names_a_dangling_link() {
    let s = Scratch::new("file");
    let (a, origin) = Options::new()
        .open_or_create_with_origin(&s.location)
        .unwrap();
    assert_eq!(origin, Origin::Created);
    let (b, origin) = Options::new()
        .open_or_create_with_origin(&s.location)
        .unwrap();
    assert_eq!(origin, Origin::Existing);
    assert_eq!(a.incarnation(), b.incarnation());
    let link = Scratch::new("file");
    std::os::unix::fs::symlink("/nonexistent/mmf-target", link.path()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let location = link.location.clone();
    std::thread::spawn(move || {
        let _ = tx.send(Options::new().open_or_create(&location).map(|_| ()));
    });
    let err = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("open_or_create went round for ever")
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("is a symbolic link to a file that does not exist"),
        "{err}"
    );
}

/// `read_only` is for opening: every way of creating refuses it, creates nothing, and says so,
/// instead of making a handle that says it is read-only and publishes all the same.
#[test]
fn creating_read_only_is_refused() {
    let s = Scratch::new("shm");
    let mut o = Options::new();
    o.capacity(64).read_only(true);
    for (how, result) in [
        ("create", o.create(&s.location).map(|_| ())),
        (
            "create_or_replace",
            o.create_or_replace(&s.location).map(|_| ()),
        ),
        ("open_or_create", o.open_or_create(&s.location).map(|_| ())),
        ("anonymous", o.anonymous().map(|_| ())),
    ] {
        let expected = match how {
            "open_or_create" => "a read_only handle cannot create one",
            _ => "read_only is for opening",
        };
        match result {
            Err(Error::InvalidOptions(m)) => assert!(m.contains(expected), "{how}: {m}"),
            other => panic!("{how}: {other:?}"),
        }
    }
    assert!(!s.path().exists());
    // Created without it, the channel opens read-only as before, by either call.
    let w = s.create(64);
    w.publish_raw(Tag::TEXT, b"hi").unwrap();
    let r = o.open(&s.location).unwrap();
    assert!(r.is_read_only());
    assert_eq!(r.read_raw().unwrap().1, b"hi");
    let (r, origin) = o.open_or_create_with_origin(&s.location).unwrap();
    assert!(r.is_read_only() && origin == Origin::Existing);
}

/// A `Debug` of a read's `Meta` says what the value is.
#[test]
fn tags_debug_as_their_names() {
    assert_eq!(format!("{:?}", Tag::MSGPACK), "Tag::MSGPACK");
    assert_eq!(format!("{:?}", Tag::EMPTY), "Tag::EMPTY");
    assert_eq!(format!("{:?}", Tag(300)), "Tag(300)");
    let ch = Channel::anonymous(64).unwrap();
    ch.publish_raw(Tag::TEXT, b"x").unwrap();
    let mut buf = Vec::new();
    assert!(format!("{:?}", ch.read_into(&mut buf).unwrap()).contains("tag: Tag::TEXT"));
    // Every public type is `Debug`, the writer handed to `publish_with` among them (the crates
    // warn of a missing implementation, which CI's clippy makes an error); what it prints:
    ch.publish_with(Tag::TEXT, |w| {
        w.put(b"abc")?;
        let shown = format!("{w:?}");
        assert!(
            shown.contains("len: 3") && shown.contains("capacity: 64"),
            "{shown}"
        );
        Ok(())
    })
    .unwrap();
}

/// `read_next_into` waits for a publish after the call; `read_after_into` for a generation
/// past the one given, which may have come already.
#[test]
fn read_after_into_reads_what_came_before_the_call() {
    let ch = Channel::anonymous(64).unwrap();
    let mut buf = Vec::new();
    ch.publish_raw(Tag::TEXT, b"one").unwrap();
    assert_eq!(
        ch.read_next_into(&mut buf, Duration::from_millis(20))
            .unwrap(),
        None,
        "'next' counts from the call"
    );
    let m = ch
        .read_after_into(0, &mut buf, Duration::from_millis(20))
        .unwrap()
        .unwrap();
    assert_eq!((m.generation, &buf[..]), (1, &b"one"[..]));
    assert_eq!(
        ch.read_after_into(1, &mut buf, Duration::from_millis(20))
            .unwrap(),
        None
    );
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(50));
            ch.publish_raw(Tag::TEXT, b"two").unwrap();
        });
        let m = ch
            .read_after_into(1, &mut buf, Duration::from_secs(10))
            .unwrap()
            .unwrap();
        assert_eq!((m.generation, &buf[..]), (2, &b"two"[..]));
    });
}

/// A name with a '/' in a directory that does not exist says so, and why a directory matters.
#[test]
fn a_file_path_in_a_missing_directory_says_which() {
    let dir = format!("mmf-no-such-dir-{}", std::process::id());
    let err = Channel::create(format!("{dir}/ch.mmf"), 64).unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "the directory {dir} does not exist (a name with a '/' is a file path"
        )),
        "{err}"
    );
    // The message is mmf's; the OS's error is still there for a program to match.
    let os = err.os_error().expect("an OS error");
    assert_eq!(
        (os.kind(), os.raw_os_error()),
        (std::io::ErrorKind::NotFound, Some(libc::ENOENT)),
        "{err}"
    );
}

/// Whoever may read a channel's file may hold an exclusive `flock` on it for as long as they
/// like; an open waits for it only as long as for a channel being created, then says so.
#[test]
fn an_exclusive_lock_held_by_someone_else_does_not_hang_an_open() {
    let s = Scratch::new("file");
    s.create(64).publish_raw(Tag::TEXT, b"kept").unwrap();
    let hostile = std::fs::File::open(s.path()).unwrap();
    // (Once the creator's handle, and its shared lock, are gone.)
    hostile.lock().unwrap();
    let t = std::time::Instant::now();
    let err = Options::new()
        .init_timeout(Duration::from_millis(100))
        .open(&s.location)
        .unwrap_err();
    let waited = t.elapsed();
    assert!(
        (Duration::from_millis(100)..Duration::from_secs(3)).contains(&waited),
        "{waited:?}"
    );
    // The message counts from when the lock was met: at least the 50 ms every open grants a
    // lock.
    let msg = err.to_string();
    let held: u64 = msg
        .split("and mmf waited ")
        .nth(1)
        .and_then(|rest| rest.split(" ms for it to go;").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{msg}"));
    assert!(held >= 50, "{msg}");
    // A lock held for an instant (as `mmf prune` takes one) is waited out, even by an open
    // that waits for no creator (init_timeout 0, as `list` and a follower's first look).
    std::thread::scope(|sc| {
        sc.spawn(|| {
            std::thread::sleep(Duration::from_millis(10));
            hostile.unlock().unwrap();
        });
        let r = Options::new()
            .init_timeout(Duration::ZERO)
            .open(&s.location)
            .unwrap();
        assert_eq!(r.read_raw().unwrap().1, b"kept");
    });
    // An init_timeout too long to add to the clock is no timeout, not a panic.
    let r = Options::new()
        .init_timeout(Duration::MAX)
        .open(&s.location)
        .unwrap();
    assert_eq!(r.read_raw().unwrap().1, b"kept");
    let other = Scratch::new("file");
    Options::new()
        .capacity(64)
        .init_timeout(Duration::MAX)
        .create(&other.location)
        .unwrap();
}

/// A machine crash can write back a file channel's header page and not the page of the slot
/// its `latest` names: after the restart `latest` names a generation the slot does not hold.
/// Readers used to copy the slot by the descriptor and return the older value under the newer
/// generation (and, with checksums, retry it for a second as "contended"). They now report the
/// damage, `info` and `verify` say what is wrong, and the next publish replaces the value. A
/// slot whose frame was written back and whose payload was not is only caught by checksums.
#[test]
fn a_file_restored_with_only_its_header_page_written_back_is_reported_not_misread() {
    // (publishes after the flush, checksums): with 2 slots the third value lands in the slot
    // after the header page, the fourth in the one whose frame shares the header's page.
    for (after_flush, checksum) in [(1, false), (1, true), (2, true)] {
        let s = Scratch::new("file");
        let ch = two_slot_channel(&s, checksum);
        let value = |b: u8| vec![b; 40_000];
        ch.publish_raw(Tag::BYTES, &value(b'A')).unwrap();
        ch.publish_raw(Tag::BYTES, &value(b'B')).unwrap();
        ch.flush().unwrap();
        let on_disk = std::fs::read(s.path()).unwrap();
        for b in [b'C', b'D'].into_iter().take(after_flush) {
            ch.publish_raw(Tag::BYTES, &value(b)).unwrap();
        }
        let in_memory = std::fs::read(s.path()).unwrap();
        drop(ch);
        // What the disk holds after the crash: the header's page new, every other page old.
        let mut restored = on_disk.clone();
        restored[..4096].copy_from_slice(&in_memory[..4096]);
        std::fs::write(s.path(), &restored).unwrap();

        let case = format!("{after_flush} after the flush, checksum {checksum}");
        let t = std::time::Instant::now();
        let r = Channel::open(s.name()).unwrap();
        let g = r.generation();
        assert_eq!(g, 2 + after_flush as u64, "{case}");
        match r.read_raw() {
            Err(Error::Corrupt { what, .. }) if after_flush == 1 => {
                assert!(what.contains("holds generation 1"), "{case}: {what}");
                assert!(what.contains("machine crash"), "{case}: {what}");
            }
            Err(Error::Corrupt { what, .. }) => {
                assert!(what.contains("checksum mismatch"), "{case}: {what}")
            }
            other => panic!(
                "{case}: {:?}",
                other.map(|(m, b)| (m, b.first().copied(), b.last().copied()))
            ),
        }
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{case}: {:?}",
            t.elapsed()
        );
        if after_flush == 1 {
            let info = r.info();
            assert!(info.damage.is_some(), "{case}: {info:?}");
            assert!(matches!(r.verify(), Err(Error::Corrupt { .. })), "{case}");
        }
        // Recovering publishes the newest earlier value that is whole again: B, flushed (its
        // frame shares the header's page, its payload was flushed), or, where D's frame took
        // that page over a payload the crash did not write back, A from the other slot.
        let w = Channel::open(s.name()).unwrap();
        let back = w.recover().unwrap().expect("recovered");
        let (from, byte) = if after_flush == 1 {
            (2, b'B')
        } else {
            (1, b'A')
        };
        assert_eq!((back.from, back.meta.generation), (from, g + 1), "{case}");
        for h in [&r, &w] {
            let (meta, bytes) = h.read_raw().unwrap();
            assert_eq!((meta.generation, meta.tag), (g + 1, Tag::BYTES), "{case}");
            assert!(bytes == value(byte), "{case}: not the recovered value");
        }
        assert!(
            w.recover().unwrap().is_none(),
            "{case}: nothing left to recover"
        );
        // A publish replaces any value, and every reader reads it.
        w.publish_raw(Tag::TEXT, b"after").unwrap();
        for h in [&r, &w] {
            let (meta, bytes) = h.read_raw().unwrap();
            assert_eq!(
                (meta.generation, &bytes[..]),
                (g + 2, &b"after"[..]),
                "{case}"
            );
        }
        assert_eq!(r.info().damage, None, "{case}");
        r.verify().unwrap();
    }
}

/// A channel of 64 KiB with no reader entries (so two slots) in `s`'s file: values of 40,000
/// bytes take a slot each, in turn.
fn two_slot_channel(s: &Scratch, checksum: bool) -> Channel {
    Options::new()
        .capacity(64 * 1024)
        .readers(0)
        .checksum(checksum)
        .create(&s.location)
        .unwrap()
}

/// Where in a channel file's `image` the payload of `len` bytes `byte` starts (its frame's
/// words are the 64 bytes before it, FORMAT.md §5).
fn payload_of(image: &[u8], byte: u8, len: usize) -> usize {
    image
        .windows(len)
        .position(|w| w.iter().all(|&b| b == byte))
        .expect("the value is in the file")
}

/// The bytes of a [`two_slot_channel`] (with or without `checksum`) in which values of 40,000
/// bytes `A`, `B` and `C` were published, its handle closed.
fn abc_image(s: &Scratch, checksum: bool) -> Vec<u8> {
    let ch = two_slot_channel(s, checksum);
    for b in [b'A', b'B', b'C'] {
        ch.publish_raw(Tag::BYTES, &vec![b; 40_000]).unwrap();
    }
    drop(ch);
    std::fs::read(s.path()).unwrap()
}

/// Marks the frame of the payload at `payload` in `image` as being written: its stamp, the
/// frame's first word, 64 bytes before the payload (FORMAT.md §5), made odd.
fn leave_open(image: &mut [u8], payload: usize) {
    let stamp = u64::from_le_bytes(image[payload - 64..payload - 56].try_into().unwrap());
    assert_eq!(stamp % 2, 0);
    image[payload - 64..payload - 56].copy_from_slice(&(stamp + 1).to_le_bytes());
}

/// A crash that wrote back a slot's page in the middle of a write into it (its stamp odd) and
/// the header's page after the commit leaves a frame no write will ever close. Reads cannot
/// tell it from a writer busy with it and time out as contended (saying what may help);
/// `recover` looks again under the writer lock, where nobody is busy, and brings back the
/// newest whole value. It used to pass the contended error on, and nothing could repair it.
#[test]
fn a_frame_a_crash_left_open_is_recovered() {
    let s = Scratch::new("file");
    let mut image = abc_image(&s, true);
    let payload = payload_of(&image, b'C', 40_000);
    leave_open(&mut image, payload);
    std::fs::write(s.path(), &image).unwrap();

    let w = Options::new()
        .read_timeout(Duration::from_millis(100))
        .open(&s.location)
        .unwrap();
    match w.read_raw() {
        Err(Error::Contended { what, .. }) => assert!(what.contains("mmf recover"), "{what}"),
        other => panic!("{:?}", other.map(|(m, _)| m)),
    }
    let damage = w.info().damage.expect("info says the value is unknown");
    assert!(
        damage.contains("generation 3 in slot") && damage.contains("marked as being written"),
        "{damage}"
    );
    assert!(damage.contains("mmf recover"), "{damage}");
    let back = w.recover().unwrap().expect("recovered");
    assert_eq!((back.from, back.meta.generation), (2, 4));
    let (meta, bytes) = w.read_raw().unwrap();
    assert_eq!(meta.generation, 4);
    assert!(bytes == vec![b'B'; 40_000], "not the recovered value");
    assert!(w.recover().unwrap().is_none(), "nothing left to recover");
}

/// A checksummed file channel of 4 KiB values, generations 1 to `last` published (each value
/// 4096 bytes of its generation's number) and flushed, and the file's bytes as flushed: the
/// disk's state for the crash images of the tests below.
fn flushed_at(s: &Scratch, last: u8) -> (Channel, Vec<u8>) {
    let ch = Options::new()
        .capacity(4096)
        .checksum(true)
        .create(&s.location)
        .unwrap();
    for g in 1..=last {
        ch.publish_raw(Tag::BYTES, &[g; 4096]).unwrap();
    }
    ch.flush().unwrap();
    (ch, std::fs::read(s.path()).unwrap())
}

/// A machine crash that wrote back only the first page of a checksummed file channel (its
/// header), two publishes after a flush: `latest` names generation 11 in the slot that still
/// holds the flushed generation 9, whole, its CRC matching. `recover` brings 9 back; a crash
/// audit found it skipping that slot whatever its CRC said, and giving up ("no earlier value is
/// whole") in 435 of 3,245 such images.
#[test]
fn recover_takes_a_whole_checksummed_value_from_the_slot_latest_names() {
    let s = Scratch::new("file");
    let (ch, flushed) = flushed_at(&s, 9);
    ch.publish_raw(Tag::BYTES, &[10; 4096]).unwrap();
    ch.publish_raw(Tag::BYTES, &[11; 4096]).unwrap();
    let now = std::fs::read(s.path()).unwrap();
    drop(ch);
    let mut disk = flushed;
    disk[..4096].copy_from_slice(&now[..4096]);
    std::fs::write(s.path(), &disk).unwrap();

    let w = Options::new().open(&s.location).unwrap();
    match w.read_raw() {
        Err(Error::Corrupt { what, .. }) => {
            assert!(
                what.contains("slot") && what.contains("generation 9"),
                "{what}"
            )
        }
        other => panic!("{:?}", other.map(|(m, _)| m)),
    }
    let back = w.recover().unwrap().expect("generation 9 is whole");
    assert_eq!(back.from, 9);
    assert_eq!(w.read_raw().unwrap().1, vec![9; 4096]);
    w.verify().unwrap();
}

/// Two machine crashes of a checksummed file channel. The first wrote back the slot pages of a
/// value published after a flush (generation 11) but not the header's page: after it the
/// channel reads the flushed generation 10. A writer that opens it then goes on past 11, so the
/// second crash, which wrote back the header's page of its next value but not that slot's
/// page, leaves damage that reads refuse. Publishing 11 again, in the slot the lost 11 was in
/// (the choice of slot follows the generations), let the second crash serve the lost value as
/// the new generation 11, its CRC matching (a crash audit's finding).
#[test]
fn a_writer_goes_on_past_the_generations_a_crash_lost() {
    let s = Scratch::new("file");
    let page = |to: &mut Vec<u8>, from: &[u8], p: usize| {
        to[p * 4096..(p + 1) * 4096].copy_from_slice(&from[p * 4096..(p + 1) * 4096])
    };
    let (ch, flushed) = flushed_at(&s, 10);
    ch.publish_raw(Tag::BYTES, &[11; 4096]).unwrap();
    let after11 = std::fs::read(s.path()).unwrap();
    drop(ch);
    let mut disk = flushed;
    page(&mut disk, &after11, 1);
    page(&mut disk, &after11, 2);
    std::fs::write(s.path(), &disk).unwrap();

    let w = Options::new().open(&s.location).unwrap();
    let (meta, value) = w.read_raw().unwrap();
    assert_eq!((meta.generation, value), (10, vec![10; 4096]));
    let gen = w.publish_raw(Tag::BYTES, &[0xee; 4096]).unwrap();
    assert!(gen > 11, "generation {gen} again, which the crash lost");
    let republished = std::fs::read(s.path()).unwrap();
    drop(w);
    let mut disk2 = disk;
    page(&mut disk2, &republished, 0);
    std::fs::write(s.path(), &disk2).unwrap();
    let r = Options::new().open(&s.location).unwrap();
    match r.read_raw() {
        Err(Error::Corrupt { .. }) => {}
        Ok((meta, value)) => panic!(
            "generation {} read as {:x?}..., not the value published as it",
            meta.generation,
            &value[..4]
        ),
        Err(e) => panic!("{e}"),
    }
}

/// Without a crash, generations go on by one: a `publish_with` whose closure failed left its
/// inline stamp ahead (it stamps before it fills), and a handle opened after it took that for
/// a generation a crash lost, so the next publish made generation 5 after 2 (a diff review).
/// Nor does a frame generation past the last ones move the count: a stray write of 2^56 + 40
/// there took `written` back to generation 40 (the same review).
#[test]
fn the_look_for_lost_generations_sees_no_failed_publish_nor_a_generation_past_the_last() {
    let s = Scratch::new("file");
    let ch = s.create(1024);
    ch.publish_raw(Tag::TEXT, b"one").unwrap();
    ch.publish_raw(Tag::TEXT, b"two").unwrap();
    let failed = ch.publish_with(Tag::TEXT, |_| Err(std::io::Error::other("no")));
    assert!(matches!(failed, Err(Error::Encode { .. })));
    let again = Channel::open(&s.location).unwrap();
    assert_eq!(again.publish_raw(Tag::TEXT, b"three").unwrap(), 3);
    drop((ch, again));

    let s = Scratch::new("file");
    let ch = Options::new()
        .capacity(64)
        .header_only(false)
        .create(&s.location)
        .unwrap();
    ch.publish_raw(Tag::TEXT, b"one").unwrap();
    drop(ch);
    // FORMAT.md §3-4: 4 readers, 6 slots of 128 bytes from byte 768; `written` at 464.
    // The writers' count near the last generation (`latest` stays at 1: a `written` ahead of
    // it is one a writer goes on from, FORMAT.md §11 step 2).
    let near_last = ((1u64 << 56) - 2) << 8 | 1;
    poke(&s.path(), 464, near_last);
    poke(&s.path(), 768 + 3 * 128 + 8, (1 << 56) + 40);
    drop(Channel::open(&s.location).unwrap());
    let f = std::fs::read(s.path()).unwrap();
    assert_eq!(
        u64::from_le_bytes(f[464..472].try_into().unwrap()),
        near_last,
        "the writers' count moved"
    );
}

/// A `latest` overwritten to generation 0 once values were published (no publish stores 0):
/// what it names shows the damage, and `recover` brings the newest value back from below the
/// writers' count (`written`), where it found nothing "earlier" than generation 0 (a review).
#[test]
fn a_latest_overwritten_to_generation_0_is_damage_that_recover_mends() {
    // Naming no slot (0xff), and zeroed: naming slot 0, whose frame still holds the new
    // channel's empty generation 0 (small values are kept in the header only), which read as
    // "no value yet" until reads asked the writers' count.
    for latest in [0xff, 0] {
        let s = Scratch::new("file");
        let ch = s.create(1024);
        for v in [&b"one"[..], b"two", b"three"] {
            ch.publish_raw(Tag::TEXT, v).unwrap();
        }
        poke(&s.path(), 128, latest);
        assert!(matches!(ch.read_raw(), Err(Error::Corrupt { .. })));
        let damage = ch.info().damage.expect("damage");
        assert!(damage.contains("latest names generation 0"), "{damage}");
        assert!(ch.verify().is_err());
        let back = ch.recover().unwrap().expect("recovered");
        assert_eq!((back.from, back.meta.generation), (3, 4));
        assert_eq!(ch.read_raw().unwrap().1, b"three");
    }
}

/// A `latest` overwritten to generation 0 over published values is that damage whatever slot
/// 0's frame holds, here a frame left marked as being written: the writers' count answers at
/// generation 0 before anything is looked at, in a look (`info`, `verify`) as in a read. The
/// look used to look first and keep what it found, and called this "a writer died in the
/// middle of writing it" (a frame left open), pointing at the wrong word.
#[test]
fn a_latest_overwritten_to_generation_0_is_named_so_over_a_frame_left_open() {
    let s = Scratch::new("file");
    let mut image = abc_image(&s, false);
    // Slot 0 is the one whose payload comes first in the file.
    let slot_0 = payload_of(&image, b'B', 40_000).min(payload_of(&image, b'C', 40_000));
    leave_open(&mut image, slot_0);
    image[128..136].copy_from_slice(&0u64.to_le_bytes()); // `latest`: generation 0, slot 0
    std::fs::write(s.path(), &image).unwrap();

    let ch = Options::new()
        .read_timeout(Duration::from_millis(100))
        .open(&s.location)
        .unwrap();
    match ch.read_raw() {
        Err(Error::Corrupt { what, .. }) => {
            assert!(what.contains("latest names generation 0"), "{what}")
        }
        other => panic!("{:?}", other.map(|(m, _)| m)),
    }
    let damage = ch.info().damage.expect("info says the value is damaged");
    assert!(damage.contains("latest names generation 0"), "{damage}");
    assert!(!damage.contains("marked as being written"), "{damage}");
    let err = ch.verify().unwrap_err().to_string();
    assert!(err.contains("latest names generation 0"), "{err}");
    // The advice once (the count's message carried it, and `verify` added it again).
    assert_eq!(err.matches("mmf recover").count(), 1, "{err}");
}

/// A stray write of `latest` on a new channel, nothing published yet, naming generation 0 in a
/// slot the channel does not have, or in no slot on a channel with checksums (which keeps no
/// value in the header only): "no value yet", as FORMAT.md §10.5 says of any attempt at
/// generation 0 while the writers' count is 0, and as `verify` and `info` said. Reads called it
/// corrupt (a format review). Once values were published, the same `latest` is damage.
#[test]
fn a_stray_latest_of_generation_0_on_a_new_channel_reads_as_no_value_yet() {
    for (checksum, latest) in [(false, 0xfe), (true, 0xfe), (true, 0xff)] {
        let s = Scratch::new("file");
        let ch = Options::new()
            .capacity(1000)
            .checksum(checksum)
            .create(&s.location)
            .unwrap();
        poke(&s.path(), 128, latest);
        let case = format!("checksum {checksum}, latest {latest:#x}");
        let reader = Channel::open(&s.location).unwrap();
        let (meta, value) = reader.read_raw().unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!((meta.generation, value.len()), (0, 0), "{case}");
        assert_eq!(reader.info().damage, None, "{case}");
        reader.verify().unwrap_or_else(|e| panic!("{case}: {e}"));

        ch.publish_raw(Tag::TEXT, b"one").unwrap();
        poke(&s.path(), 128, latest);
        let reader = Channel::open(&s.location).unwrap();
        assert!(
            matches!(reader.read_raw(), Err(Error::Corrupt { .. })),
            "{case}, after a publish"
        );
    }
}

/// A stray write of `latest` that leaves the newest value whole elsewhere (its slot bits
/// flipped to no slot or to another slot, its generation moved back below the writers' count):
/// `recover` brings that value back, not an older one. It brought back generation 4 of 5, or
/// 3, or, `latest` moved back, said no earlier value was whole (a hostile-mapping review).
#[test]
fn recover_after_a_stray_write_of_latest_brings_back_the_newest_whole_value() {
    let flip_to_no_slot = |latest: u64| latest ^ 1;
    let name_slot_0 = |latest: u64| latest & !0xff;
    let move_back = |latest: u64| (2 << 8) | (latest & 0xff);
    let mut recovered = 0;
    // Values of 7 bytes kept in the header only; of 508 bytes, in slots.
    for (readers, len) in [(4, 7), (2, 508)] {
        for (what, stray) in [
            ("flipped", &flip_to_no_slot as &dyn Fn(u64) -> u64),
            ("slot 0", &name_slot_0),
            ("moved back", &move_back),
        ] {
            let s = Scratch::new("file");
            let ch = Options::new()
                .capacity(1000)
                .readers(readers)
                .create(&s.location)
                .unwrap();
            for v in 1..=5u8 {
                ch.publish_raw(Tag::BYTES, &vec![v; len]).unwrap();
            }
            let latest = peek(&s.path(), 128);
            let damaged = stray(latest);
            poke(&s.path(), 128, damaged);
            // As a consumer opens it (the writer's own handle, with its reads' state, may take
            // the fast path that trusts `latest`: docs/FORMAT.md §14).
            let reader = Channel::open(&s.location).unwrap();
            match reader.read_raw() {
                // A small value read from its header copy (which `latest`'s generation still
                // names) whatever slot `latest` names: nothing to recover.
                Ok((_, value)) if (what, len) == ("slot 0", 7) => {
                    assert_eq!(value, vec![5; len]);
                    continue;
                }
                Err(Error::Corrupt { .. }) => {}
                other => panic!("{what}, {len} B, latest {latest:#x} -> {damaged:#x}: {other:?}"),
            }
            let back = ch
                .recover()
                .unwrap_or_else(|e| panic!("{what}, {len} B: {e}"))
                .unwrap_or_else(|| panic!("{what}, {len} B: nothing recovered"));
            assert_eq!(
                (back.from, back.meta.generation),
                (5, 6),
                "{what}, {len} B, latest {latest:#x} -> {damaged:#x}"
            );
            assert_eq!(ch.read_raw().unwrap().1, vec![5; len], "{what}, {len} B");
            recovered += 1;
        }
    }
    assert_eq!(recovered, 5);
}

/// A read of a frame left open for good (a crash, or another process's stray write) waits its
/// timeout out mostly asleep: it spun and yielded for the whole timeout, a core's worth of CPU
/// on an idle machine (a liveness review measured 98-99%, for 1 s a read). The CPU this
/// thread used is at most half the read's time (the machine being busy only lowers it).
#[test]
fn a_read_of_a_frame_left_open_does_not_eat_a_core() {
    let s = Scratch::new("file");
    let ch = two_slot_channel(&s, true);
    ch.publish_raw(Tag::BYTES, &vec![b'C'; 40_000]).unwrap();
    drop(ch);
    let image = std::fs::read(s.path()).unwrap();
    let payload = payload_of(&image, b'C', 40_000);
    let stamp = u64::from_le_bytes(image[payload - 64..payload - 56].try_into().unwrap());
    poke(&s.path(), payload - 64, stamp + 1);
    let w = Options::new()
        .read_timeout(Duration::from_secs(1))
        .open(&s.location)
        .unwrap();
    // utime and stime of this thread, in clock ticks (proc(5): fields 14 and 15).
    let cpu_ticks = || -> u64 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    };
    let (cpu, wall) = (cpu_ticks(), std::time::Instant::now());
    assert!(matches!(w.read_raw(), Err(Error::Contended { .. })));
    let (cpu, wall) = (cpu_ticks() - cpu, wall.elapsed());
    assert!(wall >= Duration::from_secs(1), "{wall:?}");
    // Clock ticks are 10 ms where USER_HZ is 100 (Linux's, everywhere).
    let ticks = wall.as_millis() as u64 / 10;
    assert!(cpu * 2 <= ticks, "{cpu} ticks of CPU in {wall:?}");
}

/// A new channel whose slot-0 frame a stray write left marked as being written, or holding
/// another generation, still has nothing published: reads say so at once (they spun until their
/// timeout as contended, and advised a `recover` that found nothing), `info` and `verify` see no
/// damage, and the first publish goes on as usual. With checksums, where reads take slot 0's
/// frame (without, they go by the header's descriptor).
#[test]
fn a_stray_write_to_a_new_channels_frame_leaves_it_without_a_value() {
    let s = Scratch::new("file");
    let ch = Options::new()
        .capacity(64 * 1024)
        .readers(0)
        .checksum(true)
        .read_timeout(Duration::from_secs(30))
        .create(&s.location)
        .unwrap();
    // FORMAT.md: with no pin table, slot 0's frame follows the 512-byte header; its stamp is its
    // first word, its generation the second.
    for (offset, v) in [(512, 1), (512, 2), (520, 7)] {
        poke(&s.path(), offset, v);
        let started = std::time::Instant::now();
        let (meta, bytes) = ch.read_raw().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!((meta.generation, meta.tag, bytes.len()), (0, Tag::EMPTY, 0));
        assert_eq!(ch.info().damage, None);
        ch.verify().unwrap();
        assert!(ch.recover().unwrap().is_none());
    }
    // Without checksums, where reads take generation 0's descriptor and inline buffer (at
    // bytes 136 and 192, FORMAT.md §4.1): a stray descriptor of 5 bytes there read as a value
    // of generation 0 (the diff review).
    let plain = Scratch::new("file");
    let p = plain.create(64);
    poke(&plain.path(), 144, 5 | (1 << 32));
    poke(&plain.path(), 192, u64::from_le_bytes(*b"hello\0\0\0"));
    let (meta, bytes) = p.read_raw().unwrap();
    assert_eq!((meta.generation, meta.tag, bytes.len()), (0, Tag::EMPTY, 0));
    assert_eq!(p.info().len, 0);
    ch.publish_raw(Tag::TEXT, b"first").unwrap();
    assert_eq!(ch.read_raw().unwrap().1, b"first");
    // Once values were published a `latest` overwritten to name generation 0 in slot 0 is
    // damage again, not "no value": the writers' count (`written`, byte 464) is past 0.
    poke(&s.path(), 128, 0);
    assert!(ch.read_raw().is_err());
    assert!(ch.info().damage.is_some());
}

/// Without checksums, a frame left open is read all the same (by its descriptor and `latest`),
/// and `info` says what is wrong with it, not that writers kept publishing (it said "no settled
/// look in 1024 tries: writers kept publishing, or ..." for a channel nobody wrote to).
#[test]
fn a_frame_left_open_without_checksums_is_read_and_named_by_info() {
    let s = Scratch::new("file");
    let ch = two_slot_channel(&s, false);
    ch.publish_raw(Tag::BYTES, &vec![b'C'; 40_000]).unwrap();
    drop(ch);
    let mut image = std::fs::read(s.path()).unwrap();
    let payload = payload_of(&image, b'C', 40_000);
    let stamp = u64::from_le_bytes(image[payload - 64..payload - 56].try_into().unwrap());
    image[payload - 64..payload - 56].copy_from_slice(&(stamp + 1).to_le_bytes());
    std::fs::write(s.path(), &image).unwrap();

    let w = Channel::open(&s.location).unwrap();
    let (meta, bytes) = w.read_raw().unwrap();
    assert!(meta.generation == 1 && bytes == vec![b'C'; 40_000]);
    let damage = w.info().damage.expect("info says the value is unknown");
    assert!(
        damage.contains("generation 1 in slot") && damage.contains("marked as being written"),
        "{damage}"
    );
    assert!(damage.contains("reads take it"), "{damage}");
    // `verify` reports it too (it passed it, beside `info`'s report: a crash audit).
    match w.verify() {
        Err(Error::Corrupt {
            what, value_only, ..
        }) => {
            assert!(
                value_only && what.contains("marked as being written"),
                "{what}"
            )
        }
        other => panic!("{other:?}"),
    }
    w.publish_raw(Tag::BYTES, b"next").unwrap();
    assert_eq!(w.info().damage, None);
    w.verify().unwrap();
}

/// A channel of small values writes its slots only while a reader wants them, so when its
/// latest value is damaged its slots may hold nothing recent. The header's inline buffers hold
/// the last two small values, each stamped by the publish that last began writing it
/// (FORMAT.md §4.1): `recover` brings back the value before the damaged one from there, and
/// finds nothing whole once a publish cut short has re-stamped that buffer. It used to find
/// nothing in either case (there was no stamp to tell the two apart).
#[test]
fn recover_brings_a_small_value_back_from_the_header() {
    // (FORMAT.md §4: inline buffer 0's stamp is at byte 312.)
    // "one" and "two" in the header only, then a value too large to be inline, whose frame
    // is damaged: returns the channel's scratch directory, closed.
    let two_then_damaged = || {
        let s = Scratch::new("file");
        let ch = s.create(256);
        ch.publish_raw(Tag::TEXT, b"one").unwrap();
        ch.publish_raw(Tag::TEXT, b"two").unwrap();
        ch.publish_raw(Tag::BYTES, &[b'Z'; 200]).unwrap();
        drop(ch);
        damage_frame_generation(&s, b'Z', 200);
        s
    };
    let damaged = |s: &Scratch| {
        let w = Channel::open(s.name()).unwrap();
        assert!(matches!(w.read_raw(), Err(Error::Corrupt { .. })));
        w
    };

    let s = two_then_damaged();
    let w = damaged(&s);
    let back = w.recover().unwrap().expect("recovered");
    assert_eq!((back.from, back.meta.generation), (2, 4));
    let (meta, bytes) = w.read_raw().unwrap();
    assert_eq!(
        (meta.generation, meta.tag, &bytes[..]),
        (4, Tag::TEXT, &b"two"[..])
    );
    assert!(w.recover().unwrap().is_none(), "nothing left to recover");

    // The value before is one that a later mmf's codec wrote (tag 5, which this build's
    // publishes refuse): it is brought back with its tag. (Byte 144: buffer 0's descriptor.)
    let s = two_then_damaged();
    poke(&s.path(), 144, 3 | 5 << 32);
    let w = damaged(&s);
    assert_eq!(w.recover().unwrap().expect("recovered").meta.tag, Tag(5));
    assert_eq!(w.read_raw().unwrap().0.tag, Tag(5));

    // A publish of generation 4 began rewriting "two"'s buffer and was cut short: it stamped
    // the buffer first, so nothing is whole any more, whether it was killed right after the
    // stamp or after its data and descriptor too (a generation `latest` never named).
    for whole_descriptor in [false, true] {
        let s = two_then_damaged();
        poke(&s.path(), 312, 4);
        // Killed holding the lock (a kernel-held token whose liveness lock nobody holds): an
        // image of the file with the lock free is a copy or a crash's, whose generations a
        // writer goes on past (FORMAT.md §12), "new" among them.
        poke(&s.path(), 448, 1 << 63 | 1 << 62 | 0x1234 << 22 | 4242);
        if whole_descriptor {
            poke(&s.path(), 192, u64::from_le_bytes(*b"new\0\0\0\0\0"));
            poke(&s.path(), 136, 4);
            poke(&s.path(), 144, 3 | u64::from(Tag::TEXT.0) << 32);
        }
        let w = damaged(&s);
        match w.recover() {
            Err(Error::Corrupt { what, .. }) => {
                assert!(what.contains("no earlier value is whole"), "{what}")
            }
            other => panic!("{whole_descriptor}: {other:?}"),
        }
        w.publish_raw(Tag::TEXT, b"three").unwrap();
        assert_eq!(w.read_raw().unwrap().1, b"three");
    }
}

/// Two copies of one generation, as a writer killed after filling a slot and before storing
/// `latest` leaves them: a whole 200-byte frame in a slot, and the small value the next writer
/// published under that generation, which the descriptor describes. `recover` brings back the
/// published one. (A review of a rule that took the longer slot frame over such an inline
/// copy, meant for a descriptor a stray write had shrunk, found it bringing back the value
/// nobody published: the two cases leave the same bytes, and only the crash happens without
/// another process writing the header; FORMAT.md §14, "Readers trust descriptors".)
#[test]
fn recover_brings_back_the_published_copy_of_a_generation_a_killed_writer_filled_first() {
    use std::os::unix::fs::FileExt;
    let s = Scratch::new("file");
    let ch = s.create(1024);
    ch.publish_raw(Tag::TEXT, b"one").unwrap();
    ch.publish_raw(Tag::TEXT, b"two").unwrap();
    // `latest`, `written` and descriptor 1 (FORMAT.md §4, §4.1) before generation 3.
    let f = std::fs::File::open(s.path()).unwrap();
    let word = |at: u64| {
        let mut b = [0u8; 8];
        f.read_exact_at(&mut b, at).unwrap();
        u64::from_le_bytes(b)
    };
    let saved = [128usize, 464, 152, 160].map(|at| (at, word(at as u64)));
    // Generation 3's slot filled, then the writer "killed" before its descriptor and `latest`,
    // holding the lock (a kernel-held token, FORMAT.md §5, whose liveness lock nobody holds).
    ch.publish_raw(Tag::TEXT, &[b'A'; 200]).unwrap();
    drop(ch);
    for (at, v) in saved {
        poke(&s.path(), at, v);
    }
    poke(&s.path(), 448, 1 << 63 | 1 << 62 | 0x1234 << 22 | 4242);
    let w = Channel::open(&s.location).unwrap();
    assert_eq!(w.publish_raw(Tag::TEXT, b"small").unwrap(), 3);
    w.publish_raw(Tag::TEXT, b"four").unwrap();
    // Generation 4's descriptor damaged (buffer 0's generation, byte 136).
    poke(&s.path(), 136, 0);
    assert!(matches!(w.read_raw(), Err(Error::Corrupt { .. })));
    let back = w.recover().unwrap().expect("recovered");
    assert_eq!((back.from, back.meta.generation), (3, 5));
    assert_eq!(w.read_raw().unwrap().1, b"small");
}

/// A small value whose frame a crash damaged still reads whole from its copy in the header
/// (readers try it before the slot), while `verify` and `info().damage` report the frame.
/// `recover` used to say there was nothing to recover, so the report stayed until the next
/// publish; it now publishes that copy again, after which nothing reads as damaged, and so for
/// a frame left open. Not when the frame is whole and the descriptor (which the copy follows)
/// disagrees with it: the frame may be the right one, and `recover` leaves the value to the
/// next publish.
#[test]
fn recover_repairs_a_small_value_whose_frame_alone_is_damaged() {
    // "one", then 100 bytes streamed, so they go to a slot and, from there, to inline buffer 0.
    let published = || {
        let s = Scratch::new("file");
        let ch = s.create(256);
        ch.publish_raw(Tag::TEXT, b"one").unwrap();
        ch.publish_with(Tag::BYTES, |w| w.write_all(&[b'Y'; 100]))
            .unwrap();
        s
    };

    // The descriptor (FORMAT.md §4: `inline_meta[0]` at byte 144) says 20 bytes, the whole
    // frame 100: reads follow the descriptor, `verify` reports the mismatch, and `recover`
    // does not make the 20 bytes the value.
    let s = published();
    poke(&s.path(), 144, 20 | u64::from(Tag::BYTES.0) << 32);
    let w = Channel::open(s.name()).unwrap();
    assert!(matches!(w.verify(), Err(Error::Corrupt { .. })));
    assert!(w.recover().unwrap().is_none());
    assert_eq!(w.generation(), 2);

    // The frame is damaged.
    let s = published();
    damage_frame_generation(&s, b'Y', 100);

    let w = Channel::open(s.name()).unwrap();
    let (meta, bytes) = w.read_raw().unwrap();
    assert_eq!((meta.generation, &bytes[..]), (2, &[b'Y'; 100][..]));
    assert!(w.info().damage.is_some());
    assert!(matches!(w.verify(), Err(Error::Corrupt { .. })));
    let back = w.recover().unwrap().expect("recovered");
    assert_eq!((back.from, back.meta.generation), (2, 3));
    w.verify().unwrap();
    assert_eq!(w.info().damage, None);
    let (meta, bytes) = w.read_raw().unwrap();
    assert_eq!((meta.generation, &bytes[..]), (3, &[b'Y'; 100][..]));
    assert!(w.recover().unwrap().is_none(), "nothing left to recover");

    // The frame was left open (its stamp odd for good, as a crash can leave it; FORMAT.md
    // §5: the stamp is the frame's first word): reads take the header's copy, `info` cannot
    // settle, and `recover` tells the open frame from a write under way under the lock.
    let s = published();
    let mut image = std::fs::read(s.path()).unwrap();
    let payload = 768 + payload_of(&image[768..], b'Y', 100);
    let stamp = u64::from_le_bytes(image[payload - 64..payload - 56].try_into().unwrap());
    image[payload - 64..payload - 56].copy_from_slice(&(stamp | 1).to_le_bytes());
    std::fs::write(s.path(), &image).unwrap();
    let w = Channel::open(s.name()).unwrap();
    assert_eq!(w.read_raw().unwrap().1, [b'Y'; 100]);
    assert!(w.info().damage.is_some());
    let back = w.recover().unwrap().expect("recovered");
    assert_eq!((back.from, back.meta.generation), (2, 3));
    assert_eq!(w.info().damage, None);
    assert_eq!(w.read_raw().unwrap().1, [b'Y'; 100]);
    assert!(w.recover().unwrap().is_none(), "nothing left to recover");
}

/// `recover` decides a frame left open under the writer lock, where no writer can be busy with
/// one: a frame it saw open while another handle held the lock, and that was closed before it
/// got the lock (a writer's, after all), is no damage, and nothing is published again. Here the
/// "writer" is this test: it opens the frame by hand while a `publish_with` holds the lock, and
/// closes it again before that publish gives up.
#[test]
fn recover_publishes_nothing_for_a_frame_closed_before_it_got_the_lock() {
    use std::sync::mpsc;
    let s = Scratch::new("file");
    let ch = s.create(256);
    ch.publish_raw(Tag::TEXT, b"one").unwrap();
    // Streamed, so the 100 bytes go to a slot and, from there, to inline buffer 0.
    ch.publish_with(Tag::BYTES, |w| w.write_all(&[b'Y'; 100]))
        .unwrap();
    let image = std::fs::read(s.path()).unwrap();
    // FORMAT.md §5: the frame's stamp is its first word, 64 bytes before its payload.
    let at = 768 + payload_of(&image[768..], b'Y', 100) - 64;
    let stamp = u64::from_le_bytes(image[at..at + 8].try_into().unwrap());
    assert_eq!(stamp % 2, 0);

    let (locked, is_locked) = mpsc::channel();
    let (go, wait_go) = mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        ch.publish_with(Tag::BYTES, |_| {
            locked.send(()).unwrap();
            wait_go.recv().unwrap();
            Err(std::io::Error::other("held the lock, and gave up"))
        })
    });
    is_locked.recv().unwrap();
    poke(&s.path(), at, stamp | 1);
    let w = Channel::open(s.name()).unwrap();
    assert!(w.info().damage.is_some(), "the frame reads as open");
    let recovering = std::thread::spawn(move || w.recover());
    // Time for `recover` to look (a read and a settled look: microseconds) and reach the lock.
    // Had it not looked by then, it would find the frame closed and return `Ok(None)` early:
    // the test would pass without exercising its case (never fail), which 300 ms, some
    // thousand times the look, makes unlikely but cannot rule out on a machine that stalls
    // the thread that long. What the test can check: the recover has not returned.
    std::thread::sleep(Duration::from_millis(300));
    assert!(!recovering.is_finished(), "recover waits for the lock");
    poke(&s.path(), at, stamp);
    go.send(()).unwrap();
    assert!(matches!(holder.join().unwrap(), Err(Error::Encode { .. })));
    let recovered = recovering.join().unwrap();
    assert!(
        matches!(recovered, Ok(None)),
        "{:?}",
        recovered.map(|r| r.map(|r| r.meta))
    );
    let w = Channel::open(s.name()).unwrap();
    assert_eq!(w.generation(), 2, "nothing was published again");
    w.verify().unwrap();
    assert_eq!(w.read_raw().unwrap().1, [b'Y'; 100]);
}

/// Overwrites the generation in the slot frame of the `len`-byte value of bytes `byte` in
/// `s`'s channel (4 reader entries, so the slots start after a 768-byte header; FORMAT.md §5:
/// the frame's generation is its second word, 56 bytes before its payload).
fn damage_frame_generation(s: &Scratch, byte: u8, len: usize) {
    const HEADER: usize = 512 + 4 * 64;
    let mut image = std::fs::read(s.path()).unwrap();
    let payload = HEADER + payload_of(&image[HEADER..], byte, len);
    // Far past anything a machine crash leaves (2^32 ahead, FORMAT.md §12), so that writers do
    // not go on past it as past a value a crash lost.
    image[payload - 56..payload - 48].copy_from_slice(&(1u64 << 40).to_le_bytes());
    std::fs::write(s.path(), &image).unwrap();
}

/// A crash's damage to the current value is mended by the next publish: a follower (what `mmf
/// read --wait` and `mmf watch` wait with) waits past it for that publish, as a plain read's
/// error advises. It used to give up within 100 ms, `Corrupt`. What no publish mends, a file
/// cut short under the mapping, still ends the wait with an error.
#[test]
fn a_follower_waits_past_a_damaged_value_for_the_publish_that_replaces_it() {
    use mmf_core::{Change, Follower};
    let s = Scratch::new("file");
    let ch = s.create(1000);
    ch.publish_raw(Tag::BYTES, &[b'A'; 200]).unwrap();
    ch.publish_raw(Tag::BYTES, &[b'Z'; 200]).unwrap();
    drop(ch);
    damage_frame_generation(&s, b'Z', 200);
    let w = Channel::open(s.name()).unwrap();
    // The current value alone is damaged: a publish mends it, and both errors say so.
    for err in [w.verify().unwrap_err(), w.read_raw().unwrap_err()] {
        assert!(
            matches!(err, Error::Corrupt { .. }) && err.mended_by_publish(),
            "{err}"
        );
        assert!(!err.to_string().contains("remove and recreate"), "{err}");
    }
    let mut f = Follower::open(&s.location, Duration::from_secs(1)).unwrap();
    let since = f.channel().generation();
    // Nothing published: the wait runs to its timeout, looking more than once, no error.
    assert_eq!(f.wait(since, Duration::from_millis(350)).unwrap(), None);
    std::thread::scope(|t| {
        t.spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            w.publish_raw(Tag::TEXT, b"fixed").unwrap();
        });
        assert_eq!(
            f.wait(since, Duration::from_secs(30)).unwrap(),
            Some(Change::Newer(since + 1))
        );
    });
    assert_eq!(f.channel().read_raw().unwrap().1, b"fixed");
    f.channel().verify().unwrap();
    // Cut short under the mapping (to its first page, which stays mapped): an error at the
    // wait's next look.
    drop(w);
    std::fs::OpenOptions::new()
        .write(true)
        .open(s.path())
        .unwrap()
        .set_len(4096)
        .unwrap();
    let err = f.wait(since + 1, Duration::from_secs(30)).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(!err.mended_by_publish(), "{err}");
    assert!(err.to_string().contains("remove and recreate"), "{err}");
}

/// Sets the file at `path` modified an hour ago (as `mmf prune` judges age).
fn an_hour_old(path: &std::path::Path) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap()
}

/// mmf's own exclusive locks (a look at whether a channel is in use, a removal that keeps the
/// channel, the freeing of orphans) are given back explicitly, not by closing their
/// descriptor: a process forked meanwhile (a thread here forks a child after another, each
/// living 50 ms, as a service spawning helpers or a prefork server does) holds a copy of the
/// descriptor, in which a lock left to the close lived on, so the next look found the channel
/// in use, and every open waited for it and failed. Before they were (stop 70), this test
/// found the channel in use at its second or third look, in each of three runs; it looks
/// again and again for 1.5 s.
#[test]
fn mmfs_own_exclusive_locks_do_not_live_on_in_a_forked_child() {
    use mmf_core::host;
    if !alone(
        "mmfs_own_exclusive_locks_do_not_live_on_in_a_forked_child",
        "MMF_FORKING_LOOKS",
    ) {
        return;
    }
    let s = Scratch::new("shm");
    s.create(64).publish_raw(Tag::TEXT, b"kept").unwrap();
    let forks = look_while_forking(|| {
        let in_use = host::in_use(&s.location);
        let kept = host::remove_unused(&s.location, Duration::from_secs(3600));
        let freed = host::free_orphans(&s.location);
        (!matches!(
            (&in_use, &kept, &freed),
            (Ok(false), Ok(false), Ok(Some(_)))
        ))
        .then(|| format!("in use {in_use:?}, removed {kept:?}, freed {freed:?}"))
    });
    assert_eq!(
        Options::new()
            .lock_timeout(Duration::ZERO)
            .open(&s.location)
            .unwrap()
            .read_raw()
            .unwrap()
            .1,
        b"kept"
    );
    println!("LOOKED after {forks} forks");
}

/// The handle a listing opens to read a channel's header gives its shared `flock` back by hand,
/// as mmf's own exclusive locks are: left to the close, it lived on in a child forked
/// meanwhile and made the channel look in use to the next listing, and to this one. Before
/// stop 70 this found the channel in use in each run tried (at its 3rd and its 346th look).
#[test]
fn a_listing_does_not_find_a_channel_in_use_by_its_own_look() {
    if !alone(
        "a_listing_does_not_find_a_channel_in_use_by_its_own_look",
        "MMF_FORKING_LISTINGS",
    ) {
        return;
    }
    let s = Scratch::new("shm");
    s.create(64).publish_raw(Tag::TEXT, b"kept").unwrap();
    let forks = look_while_forking(|| {
        let listed = mmf_core::list().unwrap();
        let Some(ours) = listed.iter().find(|l| l.name == s.name()) else {
            return Some("not listed".into());
        };
        (ours.in_use != Some(false) || ours.info.is_err()).then(|| format!("{ours:?}"))
    });
    println!("LOOKED after {forks} forks");
}

/// `mmf prune` decides a channel is unused and removes it under one exclusive lock
/// (`host::remove_unused`); an open that was waiting for that lock then finds the name gone
/// instead of a handle on a file nobody else can reach. It used to check, unlock, then remove:
/// a process that opened in between kept using a removed channel.
#[test]
fn a_channel_is_removed_as_unused_only_under_its_lock() {
    use mmf_core::host;
    let s = Scratch::new("file");
    let ch = s.create(64);
    assert!(
        !host::remove_unused(&s.location, Duration::ZERO).unwrap(),
        "in use"
    );
    assert!(s.path().exists());
    drop(ch);
    // An open that waits for the exclusive lock while the name is removed.
    let locker = std::fs::File::open(s.path()).unwrap();
    locker.lock().unwrap();
    std::thread::scope(|sc| {
        let opener = sc.spawn(|| Channel::open(s.name()));
        std::thread::sleep(Duration::from_millis(30));
        std::fs::remove_file(s.path()).unwrap();
        locker.unlock().unwrap();
        match opener.join().unwrap() {
            Err(Error::NotFound { .. }) => {}
            other => panic!("{other:?}"),
        }
    });
    let ch = s.create(64);
    drop(ch);
    assert!(
        once_released(|| host::remove_unused(&s.location, Duration::ZERO)
            .unwrap()
            .then_some(()))
        .is_some(),
        "unused"
    );
    assert!(!s.path().exists());
    assert!(matches!(
        host::remove_unused(&s.location, Duration::ZERO),
        Err(Error::NotFound { .. })
    ));
    // Judged stale an hour old, then made anew under the name (`mmf new --force` meanwhile,
    // its process gone): the new channel is kept. It was removed, being unused too.
    let old = s.create(64);
    drop(old);
    let an_hour_old = || an_hour_old(&s.path());
    an_hour_old();
    drop(
        Options::new()
            .capacity(64)
            .create_or_replace(&s.location)
            .unwrap(),
    );
    let hour = Duration::from_secs(3600) - Duration::from_secs(60);
    released(&s.location);
    assert!(!host::remove_unused(&s.location, hour).unwrap(), "new");
    assert!(s.path().exists());
    an_hour_old();
    assert!(
        once_released(|| host::remove_unused(&s.location, hour)
            .unwrap()
            .then_some(()))
        .is_some(),
        "old and unused"
    );
}

/// A file path that holds no channel is refused by the removals of unused channels, as by
/// `Channel::remove`: a typo must not delete a file (a review found them deleting any file
/// once a handle's own file was let through whatever its magic).
#[test]
fn removals_of_unused_channels_never_delete_what_is_no_channel() {
    let dir = fresh_dir("unused-not-channels");
    for (file, contents) in [
        ("notes.txt", &b"some notes"[..]),
        ("empty", &b""[..]),
        ("zeros", &[0u8; 64][..]),
    ] {
        let path = dir.join(file);
        std::fs::write(&path, contents).unwrap();
        for stale in [false, true] {
            let removed = if stale {
                mmf_core::host::remove_stale(Location::file(&path), Duration::ZERO)
            } else {
                mmf_core::host::remove_unused(Location::file(&path), Duration::ZERO)
            };
            assert!(
                matches!(
                    removed,
                    Err(Error::WrongMagic { .. } | Error::NotAChannel { .. })
                ),
                "{file}: {removed:?}"
            );
            assert_eq!(std::fs::read(&path).unwrap(), contents, "{file} kept");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `mmf prune` judges a file unfinished (a dead creator's zeros) from a listing, then removes it
/// under its lock (`host::remove_unfinished`), which looks at its start again: a channel made
/// under the name in between (the zeros cleared, a channel created, its handle closed) is kept
/// however young `--older-than 0` lets it be, and the zeros themselves go. `remove_unused`, used
/// there before, removed the new channel, told as "never finished" (found by a review).
#[test]
fn a_channel_finished_under_an_unfinished_name_is_kept() {
    use mmf_core::host;
    let s = Scratch::new("shm");
    std::fs::write(s.path(), [0u8; 4096]).unwrap();
    assert!(
        host::remove_unfinished(&s.location, Duration::ZERO).unwrap(),
        "zeros removed"
    );
    assert!(!s.path().exists());
    drop(s.create(64));
    released(&s.location);
    assert!(
        !host::remove_unfinished(&s.location, Duration::ZERO).unwrap(),
        "a finished channel removed"
    );
    Channel::open(s.name()).unwrap();
    Channel::remove(s.name()).unwrap();
}

/// `mmf prune` judges a channel abandoned from a listing, then removes it under its lock
/// (`host::remove_stale`), which reads the header's creator and last writer again: a process
/// that opened the channel, published and closed it in between, and still runs, keeps it.
/// `remove_unused` asks only for no handle and the age.
#[test]
fn a_stale_channel_written_since_by_a_running_process_is_kept() {
    use mmf_core::host;
    use std::os::unix::fs::FileExt;
    let s = Scratch::new("shm");
    let ch = s.create(64);
    ch.publish_raw(Tag::TEXT, b"old").unwrap();
    drop(ch);
    // FORMAT.md §4: the creator's pid is word 10, the last writer's word 59; a pid that exited.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let forge = |word: u64, pid: u32| {
        let f = std::fs::File::options().write(true).open(s.path()).unwrap();
        f.write_all_at(&u64::from(pid).to_le_bytes(), word * 8)
            .unwrap();
    };
    let an_hour_old = || an_hour_old(&s.path());
    forge(10, dead);
    forge(59, dead);
    let listing = once_released(|| {
        let listed = mmf_core::list().unwrap();
        let listing = listed.into_iter().find(|l| l.name == s.name()).unwrap();
        (listing.in_use == Some(false)).then_some(listing)
    })
    .expect("no handle is open");
    let info = listing.info.as_ref().unwrap();
    assert_eq!(info.creator_state, OwnerState::Dead);
    assert_eq!(info.last_writer_pid, Some(dead));
    assert_eq!(listing.in_use, Some(false));
    assert!(listing.is_stale());
    // Judged stale; then this process, still running, publishes and closes.
    Channel::open(s.name())
        .unwrap()
        .publish_raw(Tag::TEXT, b"new")
        .unwrap();
    an_hour_old();
    let hour = Duration::from_secs(3600) - Duration::from_secs(60);
    released(&s.location);
    assert!(
        !host::remove_stale(&s.location, hour).unwrap(),
        "a live writer"
    );
    assert_eq!(
        Channel::open(s.name()).unwrap().read_raw().unwrap().1,
        b"new"
    );
    // The same with a live creator and no writer.
    forge(59, 0);
    forge(10, std::process::id());
    an_hour_old();
    released(&s.location);
    assert!(
        !host::remove_stale(&s.location, hour).unwrap(),
        "a live creator"
    );
    // Both gone: removed.
    forge(10, dead);
    an_hour_old();
    assert!(
        once_released(|| host::remove_stale(&s.location, hour).unwrap().then_some(())).is_some(),
        "abandoned"
    );
    assert!(!s.path().exists());
    // A file too short to hold the words (a creator killed right after making it), unused and
    // old, has neither: removed too.
    std::fs::write(s.path(), [0u8; 16]).unwrap();
    an_hour_old();
    assert!(host::remove_stale(&s.location, hour).unwrap(), "short");
    assert!(!s.path().exists());
}

/// `create_or_replace` (`mmf new --force`) replaces the channel a file path's link leads to,
/// not the link, and keeps the replaced channel's mode, and as root its owner: a review found
/// the link turned into a file (readers of the real path never saw the replacement) and root's
/// replacement of a service's channel left it root's, 0600, and the service locked out.
#[test]
fn a_replacement_keeps_the_link_the_mode_and_the_owner() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // In a directory of the test's own that nobody else may write (/tmp anyone may).
    let dir = fresh_dir("keep");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let real = Scratch {
        location: Location::file(dir.join("real.mmf")),
    };
    Options::new()
        .capacity(64)
        .mode(0o640)
        .create(&real.location)
        .unwrap();
    let link = Scratch {
        location: Location::file(dir.join("link.mmf")),
    };
    std::os::unix::fs::symlink(real.path(), link.path()).unwrap();
    // SAFETY: plain system call.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        std::os::unix::fs::chown(real.path(), Some(65534), Some(65534)).unwrap();
    }
    let ch = Options::new()
        .capacity(128)
        .create_or_replace(&link.location)
        .unwrap();
    assert!(std::fs::symlink_metadata(link.path()).unwrap().is_symlink());
    let meta = std::fs::metadata(real.path()).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o640);
    if root {
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
    }
    assert_eq!(Channel::open(real.name()).unwrap().capacity(), 128);
    assert!(ch.is_current().unwrap());
    let real_len = std::fs::metadata(real.path()).unwrap().len();
    // A mode that locks the owner out is kept with read and write for the owner added: the
    // replacement took mode 0040 as it was, and its creator could not open it. Under a
    // shared-memory name, as anyone.
    let shm = Scratch::new("shm");
    shm.create(64);
    std::fs::set_permissions(shm.path(), std::fs::Permissions::from_mode(0o040)).unwrap();
    Options::new()
        .capacity(64)
        .create_or_replace(&shm.location)
        .unwrap();
    assert_eq!(std::fs::metadata(shm.path()).unwrap().mode() & 0o777, 0o640);
    // A file path's channel is read first, to be sure it is one: root reads the file whatever
    // its mode, its owner cannot, and is refused (a mode to mend), the file kept.
    std::fs::set_permissions(real.path(), std::fs::Permissions::from_mode(0o040)).unwrap();
    let replaced = Options::new()
        .capacity(64)
        .create_or_replace(&real.location);
    if root {
        replaced.unwrap();
    } else {
        assert!(
            matches!(replaced, Err(Error::PermissionDenied { .. })),
            "{replaced:?}"
        );
        let kept = std::fs::metadata(real.path()).unwrap();
        assert_eq!((kept.mode() & 0o777, kept.len()), (0o040, real_len));
        std::fs::set_permissions(real.path(), std::fs::Permissions::from_mode(0o640)).unwrap();
    }
    assert_eq!(
        std::fs::metadata(real.path()).unwrap().mode() & 0o777,
        0o640
    );
    // An explicit mode still wins.
    Options::new()
        .capacity(64)
        .mode(0o600)
        .create_or_replace(&real.location)
        .unwrap();
    assert_eq!(
        std::fs::metadata(real.path()).unwrap().mode() & 0o777,
        0o600
    );
    drop((real, link));
    std::fs::remove_dir(&dir).unwrap();
}

/// Another user's file under a name in a directory anyone may write (`/dev/shm`) may have been
/// planted there before the service made its channel: root's `--force` must not hand the new
/// channel to its planter (owned by them, with their mode), as it did when every replacement
/// kept the old owner and mode. A review found it.
#[test]
fn a_replacement_of_a_planted_file_is_the_replacers_own() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // SAFETY: plain system call.
    if unsafe { libc::geteuid() } != 0 {
        skipped("needs root, to plant a file of another user's");
        return;
    }
    let s = Scratch::new("shm");
    // The case is a directory anyone may write (sticky, as /dev/shm); in one only its owner
    // may write (an MMF_SHM_DIR of 0755), a file there was put by that owner, whose choice of
    // owner and mode a replacement keeps.
    let dir = s.path().parent().unwrap().to_owned();
    if std::fs::metadata(&dir).unwrap().mode() & 0o002 == 0 {
        skipped(&format!(
            "{} is not a directory anyone may write",
            dir.display()
        ));
        return;
    }
    std::fs::write(s.path(), b"planted").unwrap();
    std::os::unix::fs::chown(s.path(), Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(s.path(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let ch = Options::new()
        .capacity(64)
        .create_or_replace(&s.location)
        .unwrap();
    let meta = std::fs::symlink_metadata(s.path()).unwrap();
    assert_eq!(
        (meta.uid(), meta.mode() & 0o077),
        (0, 0),
        "{:o}",
        meta.mode()
    );
    assert!(ch.is_current().unwrap());
}

/// `written`, the writers' copy of `latest` (docs/FORMAT.md §3): header word 58.
const WRITTEN: usize = 58 * 8;

/// A publish at generation 2^56 - 1 wrapped it to 0, "no value yet", below every generation a
/// reader had seen: a reader waiting for a newer one than it saw waited to its timeout, however
/// often writers published. Only a write from outside mmf gets the counter there, so the publish
/// is now refused as damage, on every path (header only, a slot, `publish_with`), and nothing
/// is lost: the value at the limit stays current.
#[test]
fn a_generation_at_its_limit_is_refused_not_wrapped_to_zero() {
    const MAX: u64 = u64::MAX >> 8;
    let text = |c: &Channel| {
        let mut buf = Vec::new();
        let meta = c.read_into(&mut buf).unwrap();
        (meta.generation, String::from_utf8(buf).unwrap())
    };
    for in_slot in [false, true] {
        let s = Scratch::new("file");
        let ch = s.create(256);
        ch.publish_raw(Tag::TEXT, b"before").unwrap();
        if in_slot {
            // A reader that wants slots (FORMAT.md §5): every value goes through a slot.
            poke(&s.path(), PIN0, u64::MAX);
        }
        // Another program sets the counter one short of its limit; the value it names is gone.
        for word in [LATEST, WRITTEN] {
            poke(&s.path(), word, (MAX - 1) << 8 | 0xff);
        }
        assert!(
            ch.read_into(&mut Vec::new()).is_err(),
            "in_slot {in_slot}: no value there"
        );
        // The last generation the counter holds is still a publish like any other.
        assert_eq!(ch.publish_raw(Tag::TEXT, b"at the limit").unwrap(), MAX);
        let waiter = Channel::open(s.name()).unwrap();
        assert_eq!(
            waiter.wait_for_change(MAX - 1, Duration::ZERO),
            Some(MAX),
            "in_slot {in_slot}"
        );
        for what in ["a small value", "a value in a slot", "publish_with"] {
            let err = match what {
                "a small value" => ch.publish_raw(Tag::TEXT, b"wrapped"),
                "a value in a slot" => ch.publish_raw(Tag::TEXT, &[b'b'; 200]),
                _ => ch.publish_with(Tag::TEXT, |w| w.put(b"streamed")),
            }
            .unwrap_err();
            let shown = err.to_string();
            assert!(
                matches!(
                    err,
                    Error::Corrupt {
                        value_only: false,
                        ..
                    }
                ) && shown.contains("2^56 - 1")
                    && shown.ends_with("remove and recreate it"),
                "in_slot {in_slot}, {what}: {shown}"
            );
            assert!(!err.mended_by_publish(), "{what}");
            // Nothing moved: the value at the limit is still the one every reader gets.
            assert_eq!(ch.generation(), MAX, "in_slot {in_slot}, {what}");
            assert_eq!(
                text(&waiter),
                (MAX, "at the limit".into()),
                "in_slot {in_slot}, {what}"
            );
            assert_eq!(
                waiter.wait_for_change(MAX, Duration::from_millis(20)),
                None,
                "in_slot {in_slot}, {what}: no generation after the last one"
            );
        }
        // The lock was released by each refusal: a repair of the counter lets writers go on.
        for word in [LATEST, WRITTEN] {
            poke(&s.path(), word, peek(&s.path(), word) & 0xff | 7 << 8);
        }
        assert_eq!(ch.publish_raw(Tag::TEXT, b"after the repair").unwrap(), 8);
        assert_eq!(text(&waiter), (8, "after the repair".into()));
    }
}

/// A pid that came back to a later process does not make the creator or the last writer
/// "running": the header word names the process's start time beside its pid (FORMAT.md §4), so
/// a process of that pid that started at another time is another process, in the same PID
/// namespace or in a later one that got the same namespace inode. Start times are counted from
/// boot, not by the wall clock: a channel "made an hour ago" by a process that started now (the
/// clock set forward meanwhile, here the header forged to say so) still has its creator
/// running; a word of an earlier boot names a process that is gone.
#[test]
fn a_pid_taken_by_a_later_process_is_not_the_creator_nor_the_last_writer() {
    const CREATOR: usize = 10 * 8;
    const CREATED_NS: usize = 9 * 8;
    const LAST_WRITER: usize = 59 * 8;
    const PID: u64 = (1 << 22) - 1;
    const BOOT: u64 = 0x3ff << 54;
    let s = Scratch::new("file");
    let ch = s.create(64);
    ch.publish_raw(Tag::TEXT, b"x").unwrap();
    let own = peek(&s.path(), CREATOR);
    assert_eq!(own & PID, u64::from(std::process::id()));
    assert_eq!(
        peek(&s.path(), LAST_WRITER),
        own,
        "the same process, the same word"
    );
    let field = |shift: u32, bits: u32| (own >> shift) & ((1 << bits) - 1);
    assert_ne!(field(22, 16), 0, "the creator's PID namespace is kept");
    assert_ne!(field(54, 10), 0, "the boot it ran in is kept");
    if field(38, 16) == 0 {
        skipped("start times cannot be compared here (no /proc of this namespace)");
        return;
    }
    // Two clock ticks at least after this process started.
    std::thread::sleep(Duration::from_millis(30));
    let mut later = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let info = || Channel::open(s.name()).unwrap().info();
    let as_later = u64::from(later.id()) | own & !PID;
    poke(&s.path(), CREATOR, as_later);
    poke(&s.path(), LAST_WRITER, as_later);
    let i = info();
    assert_eq!(
        (i.creator_pid, i.last_writer_pid),
        (later.id(), Some(later.id()))
    );
    assert_eq!(i.creator_state, OwnerState::Dead, "{i:?}");
    assert_eq!(i.last_writer_state, Some(OwnerState::Dead), "{i:?}");
    // Its own words, in a channel "made an hour ago": running.
    poke(&s.path(), CREATOR, own);
    poke(&s.path(), LAST_WRITER, own);
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let ns = an_hour_ago.duration_since(SystemTime::UNIX_EPOCH).unwrap();
    poke(&s.path(), CREATED_NS, ns.as_nanos() as u64);
    let i = info();
    assert_eq!(i.creator_state, OwnerState::Alive, "{i:?}");
    assert_eq!(i.last_writer_state, Some(OwnerState::Alive), "{i:?}");
    // Of another boot: gone.
    let other_boot = own & !BOOT | ((field(54, 10) % 1023) + 1) << 54;
    poke(&s.path(), CREATOR, other_boot);
    poke(&s.path(), LAST_WRITER, other_boot);
    let i = info();
    assert_eq!(i.creator_state, OwnerState::Dead, "{i:?}");
    assert_eq!(i.last_writer_state, Some(OwnerState::Dead), "{i:?}");
    // A process that exited, its parent not having reaped it yet (a harness's worker before
    // its `wait`): exited, as `Stop::on_exit_of` and `read --pid` take it, not running. The
    // word names it by pid alone (its start time not compared), so only the pid decides.
    const START: u64 = 0xffff << 38;
    let word = u64::from(later.id()) | own & !PID & !START;
    poke(&s.path(), CREATOR, word);
    poke(&s.path(), LAST_WRITER, word);
    assert_eq!(info().creator_state, OwnerState::Alive, "running");
    later.kill().unwrap();
    let zombie = format!("/proc/{}/stat", later.id());
    let t = std::time::Instant::now();
    while !std::fs::read_to_string(&zombie).is_ok_and(|s| s.contains(") Z ")) {
        assert!(t.elapsed() < Duration::from_secs(10), "never a zombie");
        std::thread::sleep(Duration::from_millis(1));
    }
    let i = info();
    assert_eq!(i.creator_state, OwnerState::Dead, "{i:?}");
    assert_eq!(i.last_writer_state, Some(OwnerState::Dead), "{i:?}");
    later.wait().unwrap();
}

/// A file that `open_or_create` keeps (young here; in a CI run, held by another thread's open
/// for longer than the lock is waited for) and that is removed before the open that follows
/// is looked at again and created anew: the open's NotFound was returned as the call's error,
/// which failed `open_or_create_replaces_only_what_a_dead_creator_left` once in CI.
#[test]
fn open_or_create_looks_again_where_a_kept_file_goes_before_its_open() {
    let left = Scratch::new("shm");
    std::fs::write(left.path(), b"").unwrap();
    let mut o = Options::new();
    o.capacity(64).init_timeout(Duration::from_millis(700));
    let made = std::thread::scope(|s| {
        let made = s.spawn(|| o.open_or_create_with_origin(left.name()));
        // The first open waits 700 ms for the file to become a channel, then the file is
        // kept (younger than a second), and a second open waits until 1.4 s: the file goes
        // in the middle of that one.
        std::thread::sleep(Duration::from_millis(1050));
        std::fs::remove_file(left.path()).unwrap();
        made.join().unwrap()
    });
    let (ch, origin) = made.unwrap();
    assert_eq!((origin, ch.capacity()), (Origin::Created, 64));
}

/// What a creator that died before its channel was ready leaves in shared memory (an empty
/// file, or one of zeros once it had reserved the space) is replaced by `open_or_create` once
/// nobody holds it and it has not changed for a second; a younger one is refused as before (its
/// creator may be about to lock it), and so is a file that is no channel (bytes that are not
/// zeros). A file path's is never replaced: it may be a user's file, or a channel file whose
/// header a machine crash did not write back (data after it).
#[test]
fn open_or_create_replaces_only_what_a_dead_creator_left() {
    let mut o = Options::new();
    o.capacity(64);
    let young = Scratch::new("shm");
    std::fs::write(young.path(), b"").unwrap();
    assert!(matches!(
        o.clone()
            .init_timeout(Duration::from_millis(10))
            .open_or_create(young.name()),
        Err(Error::NotInitialized { .. })
    ));
    let zeros = Scratch::new("shm");
    std::fs::write(zeros.path(), [0u8; 8192]).unwrap();
    let garbage = Scratch::new("shm");
    std::fs::write(garbage.path(), [7u8; 8192]).unwrap();
    let file = Scratch::new("file");
    let mut image = vec![0u8; 8192];
    image[4096..].fill(9);
    std::fs::write(file.path(), &image).unwrap();
    let leftovers: Vec<Scratch> = (0..3).map(|_| Scratch::new("shm")).collect();
    for left in &leftovers {
        std::fs::write(left.path(), b"").unwrap();
    }
    std::thread::sleep(Duration::from_millis(1100));
    for left in [&young, &zeros] {
        let (ch, origin) = o.open_or_create_with_origin(left.name()).unwrap();
        assert_eq!((origin, ch.capacity()), (Origin::Created, 64));
    }
    assert!(matches!(
        o.open_or_create(garbage.name()),
        Err(Error::WrongMagic { .. })
    ));
    assert_eq!(std::fs::read(garbage.path()).unwrap(), [7u8; 8192]);
    assert!(matches!(
        o.open_or_create(file.name()),
        Err(Error::NotInitialized { .. })
    ));
    assert_eq!(std::fs::read(file.path()).unwrap(), image);
    // Services restarted together, each replacing the same leftover: one removes it, and
    // every one ends up with the one channel made in its place (handles of their own: each
    // open file description is a process's as far as locks go).
    for left in &leftovers {
        let start = std::sync::Barrier::new(8);
        let incarnations: Vec<u64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        start.wait();
                        o.open_or_create(left.name()).map(|ch| ch.incarnation())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap().unwrap())
                .collect()
        });
        assert!(
            incarnations.iter().all(|&i| i == incarnations[0]),
            "{incarnations:?}"
        );
    }
}

/// Says on standard error that (part of) the test calling it did not run on this machine, and
/// why; where `MMF_SKIPPED_LOG` names a file, appends a line there too (`BINARY TEST: WHY`),
/// which CI counts and lists. A test that skips passes, and its output is captured, so without
/// the log a machine that lacked a tool or a permission lost the test in silence (a standards
/// audit's finding: some 50 such places, uncounted).
fn skipped(why: &str) {
    use std::io::Write;
    eprintln!("SKIPPED: {why}");
    let Some(log) = std::env::var_os("MMF_SKIPPED_LOG") else {
        return;
    };
    // The test binary without cargo's hash (`cli-0123abcd` is `cli`), and the test: libtest
    // names each test's thread after it.
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.file_name()?.to_string_lossy().into_owned()))
        .map(|n| n.rsplit_once('-').map_or(n.clone(), |(b, _)| b.to_owned()))
        .unwrap_or_default();
    let thread = std::thread::current();
    let line = format!("{binary} {}: {why}\n", thread.name().unwrap_or("?"));
    // One write, with O_APPEND: the lines of tests running at once do not mix.
    let _ = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .and_then(|mut f| f.write_all(line.as_bytes()));
}

/// Errors convert into `io::Error` by kind, holding the channel's error: a caller whose
/// function returns `io::Result` can `?` them and still tell what happened.
#[test]
fn errors_convert_into_io_errors_of_the_nearest_kind() {
    use std::io::ErrorKind as K;
    let kind = |e: Error| std::io::Error::from(e).kind();
    let s = Scratch::new("shm");
    assert_eq!(
        kind(Channel::open(s.location.clone()).unwrap_err()),
        K::NotFound
    );
    let ch = s.create(64);
    assert_eq!(
        kind(Options::new().capacity(64).create(&s.location).unwrap_err()),
        K::AlreadyExists
    );
    assert_eq!(
        kind(ch.publish_raw(Tag::BYTES, &[0; 65]).unwrap_err()),
        K::InvalidInput
    );
    assert_eq!(kind(Location::shm("a/b").unwrap_err()), K::InvalidInput);
    let io = std::io::Error::from(ch.publish_raw(Tag::BYTES, &[0; 65]).unwrap_err());
    assert!(matches!(
        io.get_ref().and_then(|e| e.downcast_ref::<Error>()),
        Some(Error::TooLarge { .. })
    ));
    assert!(
        io.to_string().starts_with("value of 65 bytes does not fit"),
        "{io}"
    );
    // A stop, not `Interrupted`: std's `write_all` and `read_exact` retry that at once, and a
    // turned stop stays turned (a review's `Write` looped for ever).
    let stop = mmf_core::Stop::new();
    stop.stop();
    let until = mmf_core::Until::forever().or(&stop);
    let stopped =
        mmf_core::Follower::open(Scratch::new("shm").location.clone(), until).unwrap_err();
    assert!(matches!(stopped, Error::Stopped { .. }), "{stopped:?}");
    assert_eq!(kind(stopped), K::Other);
    // A file that is not a channel.
    let f = Scratch::new("file");
    std::fs::write(f.path(), vec![7u8; 4096]).unwrap();
    assert_eq!(
        kind(Channel::open(f.location.clone()).unwrap_err()),
        K::InvalidData
    );
    // The OS's own kind behind an OS error: a directory where the file should be.
    let d = fresh_dir("io-kind");
    let in_a_file = Location::file(d.join("plain").join("ch.mmf"));
    std::fs::write(d.join("plain"), b"").unwrap();
    let e = Options::new().capacity(64).create(&in_a_file).unwrap_err();
    let os = e.os_error().map(std::io::Error::kind);
    assert_eq!(os, Some(K::NotADirectory), "{e:?}");
    assert_eq!(kind(e), K::NotADirectory);
    let _ = std::fs::remove_dir_all(&d);
}
