//! Single-process micro-benchmarks (criterion): `cargo bench -p mmf-bench`.
//!
//! - `publish_raw` and `read_into` by payload size, on an anonymous channel, and `publish_raw`
//!   that wakes a thread asleep in `wait_for_change`;
//! - the atomic word copies mmf moves payloads with (`atomic_store_bytes` / `atomic_load_bytes`)
//!   against a plain `copy_from_slice` (memcpy), by size;
//! - MessagePack (rmp-serde, structs as maps, as mmf stores them) against serde_json, encoding
//!   and decoding a realistic object, and `ChannelExt::publish` / `read` of the same object;
//! - the JSON transcoding that `mmf out --json` and `mmf read --json` do
//!   (`json_to_msgpack`, `msgpack_to_json`), checks and all, against a bare
//!   `serde_json::Value` round trip through rmp-serde (one parse, no checks), on the object
//!   above and on a hundred of them;
//! - how long a follower asleep on a channel takes to see its writer's restart;
//! - how long a `Stop` takes to end a wait: turned by another thread (against the wake of a
//!   publish), and turned by a worker process's exit (against `waitpid` of the same worker, and
//!   against the 10 ms `try_wait` loop it replaced).
//!
//! Short measurement windows (the machine is shared and small); criterion reports the spread.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mmf_codec::ChannelExt;
use mmf_core::__bench::{atomic_load_bytes, atomic_store_bytes};
use mmf_core::{Change, Channel, Follower, Location, Options, Stop, Tag, Until};
use serde::{Deserialize, Serialize};

const SIZES: [usize; 4] = [64, 4096, 64 * 1024, 1 << 20];
const COPY_SIZES: [usize; 6] = [64, 512, 4096, 16 * 1024, 64 * 1024, 1 << 20];

fn label(len: usize) -> String {
    if len >= 1 << 20 {
        format!("{}MiB", len >> 20)
    } else if len >= 1024 {
        format!("{}KiB", len >> 10)
    } else {
        format!("{len}B")
    }
}

fn channel_ops(c: &mut Criterion) {
    let mut g = c.benchmark_group("publish_raw");
    for len in SIZES {
        let ch = Channel::anonymous(len).expect("channel");
        let payload = vec![0x5au8; len];
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(BenchmarkId::from_parameter(label(len)), |b| {
            b.iter(|| {
                ch.publish_raw(Tag::BYTES, black_box(&payload))
                    .expect("publish")
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("read_into");
    for len in SIZES {
        let ch = Channel::anonymous(len).expect("channel");
        ch.publish_raw(Tag::BYTES, &vec![0x5au8; len])
            .expect("publish");
        let mut buf = Vec::with_capacity(len);
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(BenchmarkId::from_parameter(label(len)), |b| {
            b.iter(|| ch.read_into(black_box(&mut buf)).expect("read"))
        });
    }
    g.finish();

    // A publish that wakes a thread asleep in `wait_for_change`: the writer's `FUTEX_WAKE` of a
    // sleeping waiter, the cost a writer pays per value while a consumer blocks. Each sample
    // waits until the waiter has taken the last value and is back in its wait (its count in
    // `waiters` goes up only then: the count of its last wait comes off before it takes the
    // value), gives it 50 us to fall asleep, then times the publish alone. With nobody waiting, the check costs one load and a branch (mmf-bench's
    // section "Publish cost with nobody waiting").
    let mut g = c.benchmark_group("publish_raw_waking");
    for len in [64, 4096] {
        let ch = Channel::anonymous(len).expect("channel");
        let payload = vec![0x5au8; len];
        let stop = AtomicBool::new(false);
        // The generation the waiter last waited past.
        let taken = AtomicU64::new(ch.generation());
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut seen = ch.generation();
                while !stop.load(Ordering::Relaxed) {
                    taken.store(seen, Ordering::SeqCst);
                    if let Some(now) = ch.wait_for_change(seen, Duration::from_millis(100)) {
                        seen = now;
                    }
                }
            });
            g.throughput(Throughput::Bytes(len as u64));
            g.bench_function(BenchmarkId::from_parameter(label(len)), |b| {
                b.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        let last = ch.generation();
                        while taken.load(Ordering::SeqCst) != last || ch.info().waiters == 0 {
                            std::hint::spin_loop();
                        }
                        let settle = Instant::now();
                        while settle.elapsed() < Duration::from_micros(50) {
                            std::hint::spin_loop();
                        }
                        let start = Instant::now();
                        ch.publish_raw(Tag::BYTES, black_box(&payload))
                            .expect("publish");
                        spent += start.elapsed();
                    }
                    spent
                })
            });
            stop.store(true, Ordering::Relaxed);
        });
    }
    g.finish();
}

/// How long a follower asleep in `Follower::wait` takes to see its writer's restart: from the
/// start of the writer's `create_or_replace` (or of its `remove`, then `create`) until the
/// follower's wait returns `Change::Replaced`, the creation of the new channel included.
fn restarts(c: &mut Criterion) {
    let mut g = c.benchmark_group("follow_restart");
    g.sample_size(10);
    for how in ["create_or_replace", "remove_then_create"] {
        let name = format!("mmf-micro-restart-{}", std::process::id());
        let location = Location::parse(&name).expect("name");
        let _ = Channel::remove(&name);
        let mut writer = Some(Channel::create(&name, 64).expect("channel"));
        let mut follower = Follower::open(&location, Duration::ZERO).expect("follower");
        let (to_follower, go) = std::sync::mpsc::channel::<()>();
        let (to_writer, seen) = std::sync::mpsc::channel::<Instant>();
        std::thread::scope(|s| {
            s.spawn(move || {
                while go.recv().is_ok() {
                    let change = follower.wait(u64::MAX >> 8, Duration::from_secs(10));
                    assert_eq!(change.expect("wait"), Some(Change::Replaced));
                    to_writer.send(Instant::now()).expect("send");
                }
            });
            g.bench_function(how, |b| {
                b.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        to_follower.send(()).expect("send");
                        // The follower asleep on the channel (counted as a waiter), and then
                        // some, so that the restart finds it asleep.
                        let held = writer.as_ref().expect("writer");
                        while held.info().waiters == 0 {
                            std::thread::yield_now();
                        }
                        std::thread::sleep(Duration::from_millis(1));
                        let start = Instant::now();
                        writer = Some(if how == "create_or_replace" {
                            Options::new()
                                .capacity(64)
                                .create_or_replace(&location)
                                .expect("replace")
                        } else {
                            drop(writer.take());
                            Channel::remove(&name).expect("remove");
                            Channel::create(&name, 64).expect("create")
                        });
                        spent += seen.recv().expect("follower").duration_since(start);
                    }
                    spent
                })
            });
            drop(to_follower);
        });
        drop(writer);
        let _ = Channel::remove(&name);
    }
    g.finish();
}

/// How long a `Stop` takes to end a wait.
///
/// `stop_wait/stop` and `stop_wait/publish`: a thread asleep in `wait_for_change` (counted as a
/// waiter, then 1 ms more), ended by `Stop::stop` from this thread, or by a publish (the floor:
/// the same futex wake that every value costs); from the call to the waiter's return.
///
/// `worker_exit/*`: from spawning a worker process (`true`) to noticing its exit: through a
/// wait on a channel that a `Stop` given its pid ends (`stop_on_exit`), through `waitpid`
/// (`Child::wait`, the floor), and through a wait in 10 ms slices with `Child::try_wait`
/// between them (what a harness did before there was a `Stop`); `stop_on_exit_beside_100`
/// while 100 other workers are watched too.
fn stops(c: &mut Criterion) {
    let mut g = c.benchmark_group("stop_wait");
    let ch = Channel::anonymous(64).expect("channel");
    // `*_future`: the same through futures (feature `async`): a task that awaits whichever of
    // `ch.changed(since)` and `stop.stopped()` comes first (a service's loop), in a minimal
    // executor that parks its thread, so that the notifier thread's wake-up is in the figure.
    for how in ["stop", "publish", "stop_future", "publish_future"] {
        let (to_waiter, go) = std::sync::mpsc::channel::<Stop>();
        let (to_main, returned) = std::sync::mpsc::channel::<Instant>();
        std::thread::scope(|s| {
            let ch = &ch;
            s.spawn(move || {
                while let Ok(stop) = go.recv() {
                    let since = ch.generation();
                    if how.ends_with("_future") {
                        let (mut changed, mut stopped) = (ch.changed(since), stop.stopped());
                        block_on(std::future::poll_fn(|cx| {
                            use std::future::Future;
                            use std::pin::Pin;
                            if Pin::new(&mut changed).poll(cx).is_ready()
                                || Pin::new(&mut stopped).poll(cx).is_ready()
                            {
                                std::task::Poll::Ready(())
                            } else {
                                std::task::Poll::Pending
                            }
                        }));
                    } else {
                        let _ = ch.wait_for_change(
                            since,
                            Until::timeout(Duration::from_secs(10)).or(&stop),
                        );
                    }
                    to_main.send(Instant::now()).expect("send");
                }
            });
            g.bench_function(how, |b| {
                b.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        let stop = Stop::new();
                        to_waiter.send(stop.clone()).expect("send");
                        while ch.info().waiters == 0 {
                            std::thread::yield_now();
                        }
                        std::thread::sleep(Duration::from_millis(1));
                        let start = Instant::now();
                        if how.starts_with("stop") {
                            stop.stop();
                        } else {
                            ch.publish_raw(Tag::BYTES, b"next").expect("publish");
                        }
                        spent += returned.recv().expect("waiter").duration_since(start);
                    }
                    spent
                })
            });
            drop(to_waiter);
        });
    }
    g.finish();

    let mut g = c.benchmark_group("worker_exit");
    g.sample_size(10);
    let spawn = || std::process::Command::new("true").spawn().expect("spawn");
    g.bench_function("stop_on_exit", |b| {
        b.iter(|| {
            let mut worker = spawn();
            let stop = Stop::new();
            stop.stop_on_exit(worker.id()).expect("watch");
            let waited = ch.wait_for_change(
                u64::MAX >> 8,
                Until::timeout(Duration::from_secs(10)).or(&stop),
            );
            assert!(waited.is_none() && stop.is_stopped());
            worker.wait().expect("reap")
        })
    });
    // The same while the harness watches 100 other workers: one watcher thread polls them all.
    let mut others: Vec<_> = (0..100)
        .map(|_| {
            std::process::Command::new("sleep")
                .arg("600")
                .spawn()
                .expect("spawn")
        })
        .collect();
    let watching: Vec<Stop> = others
        .iter()
        .map(|w| Stop::on_exit_of(w).expect("watch"))
        .collect();
    g.bench_function("stop_on_exit_beside_100", |b| {
        b.iter(|| {
            let mut worker = spawn();
            let stop = Stop::on_exit_of(&worker).expect("watch");
            let waited = ch.wait_for_change(
                u64::MAX >> 8,
                Until::timeout(Duration::from_secs(10)).or(&stop),
            );
            assert!(waited.is_none() && stop.is_stopped());
            worker.wait().expect("reap")
        })
    });
    drop(watching);
    for w in &mut others {
        let _ = w.kill();
        let _ = w.wait();
    }
    g.bench_function("waitpid", |b| b.iter(|| spawn().wait().expect("reap")));
    g.bench_function("try_wait_every_10ms", |b| {
        b.iter(|| {
            let mut worker = spawn();
            loop {
                let _ = ch.wait_for_change(u64::MAX >> 8, Duration::from_millis(10));
                if let Some(status) = worker.try_wait().expect("try_wait") {
                    break status;
                }
            }
        })
    });
    g.finish();
}

/// Polls `f` on this thread until it is ready, parking between polls: the least executor.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::sync::Arc::new(Unpark(std::thread::current())).into();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// `len` bytes starting `skew` bytes after a page boundary, inside an owned buffer.
struct Placed {
    buf: Vec<u8>,
    at: usize,
    len: usize,
}

impl Placed {
    fn new(len: usize, skew: usize, fill: u8) -> Placed {
        let buf = vec![fill; len + 2 * 4096];
        let at = buf.as_ptr().align_offset(4096) + skew;
        Placed { buf, at, len }
    }

    fn get(&self) -> &[u8] {
        &self.buf[self.at..self.at + self.len]
    }

    fn get_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.at..self.at + self.len]
    }
}

/// `n` atomic words starting `skew_words` words after a page boundary.
struct Words {
    buf: Vec<AtomicU64>,
    at: usize,
    n: usize,
}

impl Words {
    fn new(n: usize, skew_words: usize, fill: u64) -> Words {
        // Up to 511 words to the next page boundary (a large allocation is mmap'd and starts 16
        // bytes into a page, so it needs 510), then the skew, then the `n` words.
        let buf: Vec<AtomicU64> = (0..n + 512 + skew_words)
            .map(|_| AtomicU64::new(fill))
            .collect();
        let at = buf.as_ptr().align_offset(4096) + skew_words;
        Words { buf, at, n }
    }

    fn get(&self) -> &[AtomicU64] {
        &self.buf[self.at..self.at + self.n]
    }
}

/// The atomic word copies against `copy_from_slice` (glibc memcpy). memcpy twice: both buffers
/// page-aligned, and the destination 16 bytes further into its page than the source, because on
/// this CPU (AMD Zen 3, FSRM) glibc's `rep movsb` path (4 KiB to 256 KiB) is ~20x slower when the
/// destination is 1-31 bytes ahead of the source modulo 4 KiB. The atomic words sit 64 bytes
/// into a page, as mmf's slot payloads sit at no page boundary.
fn copies(c: &mut Criterion) {
    let mut g = c.benchmark_group("copy_in");
    for len in COPY_SIZES {
        let src = Placed::new(len, 0, 0x5a);
        let words = Words::new(len.div_ceil(8), 8, 0);
        let mut aligned = Placed::new(len, 0, 0);
        let mut skewed = Placed::new(len, 16, 0);
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(BenchmarkId::new("atomic_store_bytes", label(len)), |b| {
            b.iter(|| atomic_store_bytes(black_box(words.get()), black_box(src.get())))
        });
        g.bench_function(BenchmarkId::new("memcpy_page_aligned", label(len)), |b| {
            b.iter(|| black_box(aligned.get_mut()).copy_from_slice(black_box(src.get())))
        });
        g.bench_function(BenchmarkId::new("memcpy_dst_plus_16", label(len)), |b| {
            b.iter(|| black_box(skewed.get_mut()).copy_from_slice(black_box(src.get())))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("copy_out");
    for len in COPY_SIZES {
        // The destination is a `Vec`, wherever the allocator puts it (as in `read_into`).
        let words = Words::new(len.div_ceil(8), 0, 0x5a5a);
        let src = Placed::new(len, 0, 0x5a);
        let mut out = Vec::with_capacity(len);
        let mut aligned = Placed::new(len, 0, 0);
        let mut skewed = Placed::new(len, 16, 0);
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(BenchmarkId::new("atomic_load_bytes", label(len)), |b| {
            b.iter(|| atomic_load_bytes(black_box(words.get()), len, black_box(&mut out)))
        });
        g.bench_function(BenchmarkId::new("memcpy_page_aligned", label(len)), |b| {
            b.iter(|| black_box(aligned.get_mut()).copy_from_slice(black_box(src.get())))
        });
        g.bench_function(BenchmarkId::new("memcpy_dst_plus_16", label(len)), |b| {
            b.iter(|| black_box(skewed.get_mut()).copy_from_slice(black_box(src.get())))
        });
    }
    g.finish();
}

/// A process description like the one the PowerShell seed passed between two shells.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Process {
    pid: u32,
    ppid: u32,
    name: String,
    exe: String,
    cmdline: Vec<String>,
    state: String,
    user: String,
    uid: u32,
    gid: u32,
    threads: u32,
    nice: i8,
    rss_kib: u64,
    vsz_kib: u64,
    cpu_percent: f64,
    started: String,
    responding: bool,
    children: Vec<ChildProcess>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ChildProcess {
    pid: u32,
    name: String,
    rss_kib: u64,
    cpu_percent: f64,
}

fn sample_process() -> Process {
    Process {
        pid: 48_213,
        ppid: 1_377,
        name: "pwsh".into(),
        exe: "/opt/microsoft/powershell/7/pwsh".into(),
        cmdline: vec![
            "pwsh".into(),
            "-NoLogo".into(),
            "-File".into(),
            "./bench.ps1".into(),
        ],
        state: "S (sleeping)".into(),
        user: "alice".into(),
        uid: 1000,
        gid: 1000,
        threads: 23,
        nice: 0,
        rss_kib: 187_412,
        vsz_kib: 3_415_876,
        cpu_percent: 3.75,
        started: "2024-05-17T09:41:27.512+02:00".into(),
        responding: true,
        children: (0..4)
            .map(|i| ChildProcess {
                pid: 48_300 + i,
                name: format!("worker-{i}"),
                rss_kib: 20_000 + u64::from(i) * 1_337,
                cpu_percent: 0.5 * f64::from(i),
            })
            .collect(),
    }
}

fn codecs(c: &mut Criterion) {
    let p = sample_process();
    let msgpack = rmp_serde::to_vec_named(&p).expect("msgpack");
    let json = serde_json::to_vec(&p).expect("json");
    let mut g = c.benchmark_group("codec");
    g.bench_function(format!("msgpack_encode_{}B", msgpack.len()), |b| {
        b.iter(|| rmp_serde::to_vec_named(black_box(&p)).expect("encode"))
    });
    g.bench_function(format!("json_encode_{}B", json.len()), |b| {
        b.iter(|| serde_json::to_vec(black_box(&p)).expect("encode"))
    });
    g.bench_function("msgpack_decode", |b| {
        b.iter(|| rmp_serde::from_slice::<Process>(black_box(&msgpack)).expect("decode"))
    });
    // What a typed read adds before decoding: the check of the document's structure and depth
    // (`mmf_codec::json::check_msgpack`, the walk `ChannelExt::read` runs first).
    g.bench_function("msgpack_check", |b| {
        b.iter(|| mmf_codec::json::check_msgpack(black_box(&msgpack)).expect("check"))
    });
    g.bench_function("json_decode", |b| {
        b.iter(|| serde_json::from_slice::<Process>(black_box(&json)).expect("decode"))
    });
    let ch = Channel::anonymous(4096).expect("channel");
    // The reads below have a value even when run alone (`--bench micro -- channel_read`).
    ch.publish(&p).expect("publish");
    g.bench_function("channel_publish", |b| {
        b.iter(|| ch.publish(black_box(&p)).expect("publish"))
    });
    let mut buf = Vec::new();
    g.bench_function("channel_read_with", |b| {
        b.iter(|| ch.read_with::<Process>(black_box(&mut buf)).expect("read"))
    });
    g.bench_function("channel_read", |b| {
        b.iter(|| ch.read::<Process>().expect("read"))
    });
    g.finish();
}

/// JSON text to MessagePack and back as mmf does it (`mmf_codec::json`: no key given twice, no
/// integer beyond 64 bits made a float, nesting bounded, each checked before anything is
/// written), against the bare round trip through `serde_json::Value` that checks none of it:
/// what those checks, and the passes over the text they take, cost.
fn transcoding(c: &mut Criterion) {
    let one = serde_json::to_string(&sample_process()).expect("json");
    let many = serde_json::to_string(&vec![sample_process(); 100]).expect("json");
    let mut g = c.benchmark_group("transcode");
    for (what, text) in [("one", &one), ("hundred", &many)] {
        let msgpack = mmf_codec::json::json_to_msgpack(text).expect("transcode");
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function(format!("json_to_msgpack_{what}_{}B", text.len()), |b| {
            b.iter(|| mmf_codec::json::json_to_msgpack(black_box(text)).expect("transcode"))
        });
        g.bench_function(format!("bare_json_to_msgpack_{what}"), |b| {
            b.iter(|| {
                let value: serde_json::Value =
                    serde_json::from_str(black_box(text)).expect("parse");
                rmp_serde::to_vec(&value).expect("encode")
            })
        });
        g.bench_function(format!("msgpack_to_json_{what}"), |b| {
            b.iter(|| mmf_codec::json::msgpack_to_json(black_box(&msgpack)).expect("transcode"))
        });
        g.bench_function(format!("bare_msgpack_to_json_{what}"), |b| {
            b.iter(|| {
                let value: serde_json::Value =
                    rmp_serde::from_slice(black_box(&msgpack)).expect("decode");
                serde_json::to_string(&value).expect("render")
            })
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(30)
}

criterion_group! {
    name = micro;
    config = config();
    targets = channel_ops, copies, codecs, transcoding, restarts, stops
}
criterion_main!(micro);
