//! A consumer that outlives its writer's restarts: process A follows a channel by its name and
//! reads every newest value; process B, the writer, creates the channel, publishes its progress,
//! then restarts (removes the channel and creates it again, as a service's new instance does)
//! and publishes more. A plain handle would stay on the first channel's memory; the follower
//! moves to the new one, and its loop counts generations from 1 again.
//!
//! ```text
//! cargo run --release --example follow_restarts
//! ```
//!
//! A starts B itself (the same executable with the argument `writer NAME`) before the channel
//! exists: the follower waits for it to be created.

use std::time::{Duration, Instant};

use mmf::prelude::*;
use serde::{Deserialize, Serialize};

/// What the writer publishes: which of its lives, which step, and whether it is done.
#[derive(Serialize, Deserialize, Debug)]
struct Progress {
    life: u32,
    step: u32,
    done: bool,
}

fn main() -> mmf::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("writer") {
        return writer(&args[2]);
    }
    consumer()
}

fn consumer() -> mmf::Result<()> {
    let name = format!("follow-demo-{}", std::process::id());
    println!("A: following '{name}' (not created yet); starting the writer");
    let exe = std::env::current_exe().expect("own path");
    let mut writer = std::process::Command::new(exe)
        .args(["writer", &name])
        .spawn()
        .expect("start the writer");

    let followed = follow(&name);
    let ok = writer.wait().expect("the writer exits").success();
    Channel::remove(&name).ok();
    let (read, done) = followed?;
    // The last value comes from the writer's second channel: a follower left on the first
    // would never see it.
    if !ok || !done {
        eprintln!("A: the writer failed, or its restarted channel's last value never came");
        std::process::exit(1);
    }
    println!("A: read {read} values across the writer's restart");
    Ok(())
}

/// A's loop: every newest value under `name` until the writer says it is done; how many, and
/// whether the last came.
fn follow(name: &str) -> mmf::Result<(u32, bool)> {
    let location = Location::parse(name)?;
    let mut follower = Follower::open(&location, Duration::from_secs(10))?;
    // The loop's count: the generation of the last value read. `read_after` keeps it, and sets
    // it to 0 when the name leads to a new channel (every value there is new).
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut read = 0;
    while Instant::now() < deadline {
        match follower.read_after::<Progress>(&mut seen, Duration::from_secs(2)) {
            Ok(Some((meta, progress))) => {
                read += 1;
                println!(
                    "A: generation {} of channel {:016x}: {progress:?}",
                    meta.generation,
                    follower.channel().incarnation()
                );
                if progress.done {
                    return Ok((read, true));
                }
            }
            Ok(None) => {
                eprintln!("A: nothing new for 2 s");
                break;
            }
            // A value that is not a Progress, or one a crash damaged, or the channel itself
            // (truncated, a new one that cannot be opened): said, and the loop goes on.
            Err(e) => eprintln!("A: {e}"),
        }
    }
    Ok((read, false))
}

fn writer(name: &str) -> mmf::Result<()> {
    for life in 1..=2 {
        // A service's restart: the new instance makes the channel anew under the same name.
        Channel::remove(name).ok();
        let ch = Channel::create(name, 256)?;
        println!("B: life {life}: created '{name}'");
        for step in 1..=3 {
            let done = life == 2 && step == 3;
            ch.publish(&Progress { life, step, done })?;
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // The consumer removes the channel once it has read the last value.
    Ok(())
}
