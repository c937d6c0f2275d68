//! The seed's two-process examples, with mmf: process A creates a channel and writes
//! "Hello World!"; process B opens it, reads, and answers "Hello back!", then publishes an object
//! describing itself on a second channel (the seed sent a process as JSON); A reads both.
//!
//! ```text
//! cargo run --release --example two_processes
//! ```
//!
//! A starts B itself (the same executable with the argument `b NAME`), so one command shows two
//! processes sharing values.

use std::time::{Duration, Instant};

use mmf::prelude::*;
use serde::{Deserialize, Serialize};

/// What B tells A about itself (the seed sent `Get-Process | ConvertTo-Json`).
#[derive(Serialize, Deserialize, Debug)]
struct ProcessInfo {
    id: u32,
    name: String,
    executable: String,
    started_unix_ms: u64,
}

fn main() -> mmf::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("b") {
        return process_b(&args[2]);
    }
    process_a()
}

fn process_a() -> mmf::Result<()> {
    let name = format!("demo-{}", std::process::id());
    let ch = Channel::create(&name, 1024)?;
    let procs = Channel::create(format!("{name}-process"), 4096)?;
    println!(
        "A (pid {}): created channels '{name}' and '{name}-process'",
        std::process::id()
    );
    let g = ch.publish_str("Hello World!")?;
    println!("A: published \"Hello World!\" as generation {g}; starting process B");

    let exe = std::env::current_exe().expect("own path");
    let mut b = std::process::Command::new(exe)
        .args(["b", &name])
        .spawn()
        .expect("start B");

    // Instead of the seed's "press ENTER", wait for B's answer and object to appear: each wait
    // sleeps until a writer in any process publishes (a futex in the channel's header), and
    // returns at once if the value is there already.
    let deadline = Instant::now() + Duration::from_secs(10);
    let left = || deadline.saturating_duration_since(Instant::now());
    let answered = ch.wait_for_change(g, left()).is_some();
    let described = procs.wait_for_change(0, left()).is_some();
    b.wait().expect("B exits");
    if !(answered && described) {
        eprintln!("A: B did not answer within 10 s");
        Channel::remove(&name)?;
        Channel::remove(format!("{name}-process"))?;
        std::process::exit(1);
    }
    println!(
        "A: read B's answer: {:?} (generation {})",
        ch.read_string()?,
        ch.generation()
    );
    let info: ProcessInfo = procs.read()?;
    println!("A: read B's object: {info:?}");
    println!("A: ... which a script sees as JSON: {}", procs.read_json()?);
    Channel::remove(&name)?;
    Channel::remove(format!("{name}-process"))?;
    println!("A: removed both channels");
    Ok(())
}

fn process_b(name: &str) -> mmf::Result<()> {
    let ch = Channel::open(name)?;
    println!(
        "B (pid {}): opened '{name}', read: {:?}",
        std::process::id(),
        ch.read_string()?
    );
    ch.publish_str("Hello back!")?;
    println!("B: answered \"Hello back!\"");
    let me = ProcessInfo {
        id: std::process::id(),
        name: "process-b".into(),
        executable: std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        started_unix_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    };
    Channel::open(format!("{name}-process"))?.publish(&me)?;
    println!("B: published an object describing itself, and exits");
    Ok(())
}
