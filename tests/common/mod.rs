//! Helpers for tests that run real child processes: the test binary re-executes itself with
//! `MMF_CHILD=<role>` and runs only the `child` test, which dispatches on the role.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};

/// Starts this test binary as a child playing `role`, with extra environment.
pub fn spawn_child(role: &str, env: &[(&str, String)]) -> Child {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", "child", "--nocapture", "--test-threads=1", "-q"])
        .env("MMF_CHILD", role)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        c.env(k, v);
    }
    c.spawn().unwrap()
}

/// In a child process, its role and channel name (`MMF_CHILD`, `MMF_NAME`); `None` in a normal
/// test run, where the `child` test then does nothing.
pub fn child_role() -> Option<(String, String)> {
    let role = std::env::var("MMF_CHILD").ok()?;
    Some((
        role,
        std::env::var("MMF_NAME").expect("MMF_NAME is set for children"),
    ))
}

/// How long a child may take to finish once its test waits for it ([`finish_within`]):
/// children end within seconds of being told to (a soak's sleeps before it asks).
pub const CHILD_SECS: u64 = 120;

/// Waits for a child, asserts it succeeded, and returns the JSON it printed after `STATS `;
/// fails where it has not finished within [`CHILD_SECS`].
pub fn child_stats(child: Child) -> serde_json::Value {
    let out = finish_within(child, CHILD_SECS, "child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {:?}\n{stdout}",
        out.status
    );
    stats_in(&stdout)
}

/// `child`'s exit and what it printed on the streams that were piped, once it has exited and
/// they are closed. Where either takes over `secs`, kills it (and its process group, where it
/// leads one: `process_group(0)`, as a tracer and its tracees need) and fails, naming `what`
/// and with the output so far: a child that hangs fails its test rather than the whole run
/// (stop 70's CI run was ended by its 90-minute limit in a test that hung).
pub fn finish_within(mut child: Child, secs: u64, what: &str) -> std::process::Output {
    use std::io::Read;
    use std::sync::{mpsc, Arc, Mutex};
    use std::time::{Duration, Instant};
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let (done, closed) = mpsc::channel();
    let streams: [Option<Box<dyn Read + Send>>; 2] = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ];
    let piped = streams.iter().flatten().count();
    let bufs = streams.map(|stream| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        if let Some(mut stream) = stream {
            let (to, done) = (Arc::clone(&buf), done.clone());
            std::thread::spawn(move || {
                let mut chunk = [0; 4096];
                loop {
                    match stream.read(&mut chunk) {
                        Ok(0) => break,
                        Ok(n) => to.lock().unwrap().extend_from_slice(&chunk[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
                let _ = done.send(());
            });
        }
        buf
    });
    let taken = |i: usize| std::mem::take(&mut *bufs[i].lock().unwrap());
    let fail = |child: &mut Child, why: String| -> ! {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "{what} (pid {}): {why}; killed. Its output so far:\n{}\n{}",
            child.id(),
            String::from_utf8_lossy(&taken(0)),
            String::from_utf8_lossy(&taken(1)),
        );
    };
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            fail(&mut child, format!("still running after {secs} s"));
        }
        let early = started.elapsed() < Duration::from_millis(100);
        std::thread::sleep(Duration::from_millis(if early { 1 } else { 10 }));
    };
    for _ in 0..piped {
        let left = deadline.saturating_duration_since(Instant::now());
        if closed
            .recv_timeout(left.max(Duration::from_secs(5)))
            .is_err()
        {
            fail(
                &mut child,
                format!("exited ({status}), but its output was still open at the deadline"),
            );
        }
    }
    std::process::Output {
        status,
        stdout: taken(0),
        stderr: taken(1),
    }
}

/// The line `print_stats` printed in a child's standard output, parsed.
pub fn stats_in(stdout: &str) -> serde_json::Value {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("STATS "))
        .unwrap_or_else(|| panic!("no STATS in {stdout}"));
    serde_json::from_str(line).unwrap()
}

/// Prints the line `child_stats` looks for.
pub fn print_stats(v: &serde_json::Value) {
    println!("STATS {v}");
}

/// A channel name unique to this process and `what`. The pid alone recurs across runs (a
/// container's pids are small and repeat) and a killed run leaves its channels: the time the
/// process first asked for a name, in microseconds into the hour, tells them apart.
pub fn unique(what: &str) -> String {
    static STAMP: std::sync::OnceLock<u128> = std::sync::OnceLock::new();
    let stamp = STAMP.get_or_init(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        now.map_or(0, |d| d.as_micros() % 3_600_000_000)
    });
    format!("mmf-xp-{}-{stamp}-{what}", std::process::id())
}

/// A self-checking value of `len` bytes (len >= 12) for sequence number `seq`: CRC-32 of the
/// rest, then `seq`, then bytes derived from `seq`. A mix of two values fails the check.
pub fn make_value(seq: u64, len: usize, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&seq.to_le_bytes());
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(x as u8);
    }
    let crc = crc32fast::hash(&out[4..]);
    out[..4].copy_from_slice(&crc.to_le_bytes());
}

/// Publishes `variants` self-checking values (value `s` has sequence number `s` and a length
/// between 12 bytes and the capacity) in turn, back-to-back, until the channel `NAME-stop` moves;
/// generation `g` therefore carries value `(g - 1) % variants`. Prints the number published.
pub fn publish_until_stopped(name: &str, variants: u64) {
    use mmf::prelude::*;
    let ch = Channel::open(name).unwrap();
    let stop = Channel::open(format!("{name}-stop")).unwrap();
    let cap = ch.capacity();
    // Made up front, so that the writer spends its time publishing, not computing values.
    let values: Vec<Vec<u8>> = (0..variants)
        .map(|s| {
            let mut v = Vec::new();
            make_value(
                s,
                12 + (s.wrapping_mul(2_654_435_761) as usize) % (cap - 11),
                &mut v,
            );
            v
        })
        .collect();
    let mut published = 0u64;
    while stop.generation() == 0 {
        ch.publish_raw(Tag::BYTES, &values[(published % variants) as usize])
            .unwrap();
        published += 1;
    }
    print_stats(&serde_json::json!({ "published": published }));
}

/// Publishes to a stop channel (`NAME-stop`, which [`publish_until_stopped`] watches) when
/// dropped, so that the children are told to stop however their test ends: a failed assertion
/// before the stop left a writer publishing for ever, holding a core of a 2-core machine.
pub struct StopOnDrop<'a>(pub &'a mmf::Channel);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.publish_raw(mmf::prelude::Tag::BYTES, b"stop");
    }
}

/// The sequence number of a self-checking value, or `None` if it is torn or damaged.
pub fn check_value(bytes: &[u8]) -> Option<u64> {
    if bytes.len() < 12 {
        return None;
    }
    let crc = u32::from_le_bytes(bytes[..4].try_into().unwrap());
    (crc32fast::hash(&bytes[4..]) == crc)
        .then(|| u64::from_le_bytes(bytes[4..12].try_into().unwrap()))
}

/// A fresh shared-memory channel named after `what`, a writer handle and a read-only handle on
/// it; `publish` runs on another thread 50 ms after `wait` starts, and `wait` gets the read-only
/// handle (whose waits poll, since it cannot register as a waiter). The channel is removed after.
pub fn with_read_only_handle<T>(
    what: &str,
    publish: impl FnOnce(&mmf::prelude::Channel) + Send,
    wait: impl FnOnce(&mmf::prelude::Channel) -> T,
) -> T {
    use mmf::prelude::*;
    let name = unique(what);
    let w = Channel::create(&name, 64).unwrap();
    let r = Options::new()
        .read_only(true)
        .open(Location::shm(&name).unwrap())
        .unwrap();
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            publish(&w);
        });
        wait(&r)
    });
    Channel::remove(&name).unwrap();
    out
}

/// Sets the length of the file at `path` (shrinks or grows it), as another process would.
pub fn set_len(path: &std::path::Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
        .set_len(len)
        .unwrap_or_else(|e| panic!("resizing {}: {e}", path.display()));
}

/// The number in environment variable `key`, or `default`.
pub fn env_or(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Whether this process runs as root; if not, says on stdout that the test is skipped (it
/// needs root to run a process as another user).
pub fn root_or_skip() -> bool {
    // SAFETY: a plain system call.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        skipped("needs root, to run a process as another user");
    }
    root
}

/// Whether the shared-memory directory keeps files' birth times (a tmpfs does since Linux 5.18;
/// not where `statx` is missing or refused); if not, says the test is skipped: it tests the
/// wait for another user's private file born within `init_timeout`, which mmf can tell from a
/// finished private channel only by that time (elsewhere only an empty file counts as being
/// made, as `Options::init_timeout` says).
pub fn shm_birth_times_or_skip() -> bool {
    let probe = mmf::channel::host::shm_dir().join(unique("birth-probe"));
    let kept = std::fs::write(&probe, b"")
        .and_then(|()| std::fs::metadata(&probe)?.created())
        .is_ok();
    let _ = std::fs::remove_file(&probe);
    if !kept {
        skipped("the shared-memory directory keeps no birth times here (a tmpfs before Linux 5.18, no statx)");
    }
    kept
}

/// Makes this (child) process `nobody` (uid and gid 65534) for the rest of its life.
pub fn become_nobody() {
    // SAFETY: plain system calls on this process's own ids.
    unsafe {
        assert_eq!(libc::setgid(65534), 0);
        assert_eq!(libc::setuid(65534), 0);
    }
}

/// The bytes of a whole shared-memory channel holding the text `value`: what a creator has
/// written into its file once it is done (made under a name of its own, then removed).
pub fn channel_image(value: &str) -> Vec<u8> {
    use mmf::prelude::*;
    let name = unique(&format!("image-{}", std::process::id()));
    Channel::create(&name, 64)
        .unwrap()
        .publish_str(value)
        .unwrap();
    let image = std::fs::read(Location::shm(&name).unwrap().path().unwrap()).unwrap();
    Channel::remove(&name).unwrap();
    image
}

/// Creates a channel at `path` from `image` ([`channel_image`]) as slowly as a creator of a
/// channel of many GiB does (about a second a GiB on a tmpfs): the file made empty with mode
/// 0600 and held with a shared `flock`, as `create` holds it from the start, for `hold`; then
/// the image written, its first word (the magic) last, as `create` writes the header; then,
/// 150 ms later (a creator maps the file and writes its header meanwhile: a moment, drawn out
/// here past a follower's looks), `mode` set, as `create` sets one that lets others write once
/// the header is complete (and other creators may set any).
/// Returns when done, dropping the lock.
pub fn create_slowly(path: &std::path::Path, image: &[u8], hold: std::time::Duration, mode: u32) {
    use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
    file.lock_shared().unwrap();
    std::thread::sleep(hold);
    file.write_all_at(&image[8..], 8).unwrap();
    file.write_all_at(&image[..8], 0).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(150));
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .unwrap();
}

/// A child's part: creates the channel `name` (a shared-memory name, or a file path: as
/// `Location::parse` reads it), holding the text `$MMF_VALUE`, as [`create_slowly`] does, its
/// file there and held but empty for `$MMF_HOLD_MS` ms.
pub fn slow_creator(name: &str) {
    let value = std::env::var("MMF_VALUE").expect("MMF_VALUE is set");
    let hold = std::time::Duration::from_millis(env_or("MMF_HOLD_MS", 1000));
    let path = mmf::prelude::Location::parse(name).unwrap().path().unwrap();
    create_slowly(&path, &channel_image(&value), hold, 0o600);
}

/// Checks a follower that found the channel a [`spawn_slow_creator`] child made: the channel
/// appeared to it (with `first`: a follower whose open found it missing or being made), holds
/// `value`, and the creator exited cleanly.
pub fn made_slowly(f: &mmf::Follower, value: &str, creator: Child, first: bool) {
    use mmf::ChannelExt;
    if first {
        assert!(f.appeared());
    }
    assert_eq!(f.channel().read_string().unwrap(), value);
    assert!(finish_within(creator, CHILD_SECS, "slow creator")
        .status
        .success());
}

/// Starts a child that creates the channel `name` (a shared-memory name or a file path)
/// holding `value` as [`slow_creator`] does, and returns once its file is there (empty, held).
pub fn spawn_slow_creator(name: &str, value: &str, hold_ms: u64) -> Child {
    let child = spawn_child(
        "slow-creator",
        &[
            ("MMF_NAME", name.to_owned()),
            ("MMF_VALUE", value.to_owned()),
            ("MMF_HOLD_MS", hold_ms.to_string()),
        ],
    );
    let path = mmf::prelude::Location::parse(name).unwrap().path().unwrap();
    let t = std::time::Instant::now();
    while !path.exists() {
        assert!(t.elapsed() < std::time::Duration::from_secs(20), "no file");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    child
}

/// Restarts the writer of `location` as a service does, with `open_or_create` (which replaces
/// what a creator that died left once it has not changed for a second), `after` from now, on a
/// thread, and publishes `value`.
pub fn restart_writer(
    location: &mmf::prelude::Location,
    after: std::time::Duration,
    value: &'static str,
) -> std::thread::JoinHandle<mmf::prelude::Channel> {
    let location = location.clone();
    std::thread::spawn(move || {
        std::thread::sleep(after);
        let t = std::time::Instant::now();
        let writer = loop {
            match mmf::prelude::Options::new()
                .capacity(64)
                .open_or_create(&location)
            {
                Ok(writer) => break writer,
                // Left less than a second ago: not replaced yet.
                Err(mmf::channel::Error::NotInitialized { .. })
                    if t.elapsed() < std::time::Duration::from_secs(20) =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => panic!("restart: {e}"),
            }
        };
        mmf::ChannelExt::publish_str(&writer, value).unwrap();
        writer
    })
}

/// A value longer than one the header keeps: published, it goes to a slot (with its checksum,
/// where the channel keeps them), and the damage tests find it in the file by its bytes.
pub const SLOT_VALUE: &[u8] = b"a value of sixty bytes, damaged once it is published: 0123456";

/// A channel at `location` that keeps checksums, 64 bytes of capacity.
pub fn checksummed(location: &mmf::prelude::Location) -> mmf::prelude::Channel {
    mmf::prelude::Options::new()
        .capacity(64)
        .checksum(true)
        .create(location)
        .unwrap()
}

/// Where `value` (published last, so the only copy) lies in the file at `path`, and the file
/// open for writing, for a test to damage it as another process's stray write would.
pub fn find_in_file(path: &std::path::Path, value: &[u8]) -> (std::fs::File, u64) {
    let image = std::fs::read(path).unwrap();
    let at = image
        .windows(value.len())
        .position(|w| w == value)
        .expect("the value in the file");
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    (file, at as u64)
}

/// Says on standard error that (part of) the test calling it did not run on this machine, and
/// why; where `MMF_SKIPPED_LOG` names a file, appends a line there too (`BINARY TEST: WHY`),
/// which CI counts and lists. A test that skips passes, and its output is captured, so without
/// the log a machine that lacked a tool or a permission lost the test in silence (a standards
/// audit's finding: some 50 such places, uncounted).
pub fn skipped(why: &str) {
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
