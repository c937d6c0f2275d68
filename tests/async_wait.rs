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
        "publish-later" => {
            let ch = Channel::open(&name).unwrap();
            std::thread::sleep(Duration::from_millis(100));
            ch.publish_str("from another process").unwrap();
        }
        "many" => many_channels_one_thread(&name),
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
        .map(|i| Channel::create(&format!("{prefix}-{i}"), 64).unwrap())
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
                let ch = Channel::open(&format!("{prefix}-{i}")).unwrap();
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
        Channel::remove(&format!("{prefix}-{i}")).unwrap();
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
