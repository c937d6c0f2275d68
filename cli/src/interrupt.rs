//! Ctrl-C (SIGINT) and SIGTERM during a wait: set a flag, let the wait loop notice and return, so
//! that handles are dropped normally (releasing their reader-pin entries) and output stays whole.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Installs the handlers (once); later calls are free.
pub fn install() {
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // If registration fails the default action (exit) stays in place: still correct.
            let _ = signal_hook::flag::register(sig, Arc::clone(&flag));
        }
        flag
    });
}

/// Whether an interrupt arrived.
pub fn requested() -> bool {
    FLAG.get().is_some_and(|f| f.load(Ordering::Relaxed))
}

/// [`wait`] for the CLI verbs: `Ok` once the channel moved; a timeout becomes exit code 8 with
/// the message `timed_out` builds, an interrupt exit code 130 (printed without a message).
pub fn wait_or_exit(
    ch: &mmf::Channel,
    since: u64,
    timeout: Option<Duration>,
    timed_out: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    use crate::exit::{Coded, INTERRUPTED, TIMEOUT};
    match wait(ch, since, timeout) {
        Waited::Changed => Ok(()),
        Waited::TimedOut => Err(Coded(TIMEOUT, timed_out()).into()),
        Waited::Interrupted => Err(Coded(INTERRUPTED, String::new()).into()),
    }
}

/// How a wait ended.
enum Waited {
    /// The generation moved past `since`.
    Changed,
    /// The timeout passed.
    TimedOut,
    /// Ctrl-C or SIGTERM.
    Interrupted,
}

/// `Channel::wait_for_change` in slices of at most 100 ms, so that an interrupt is noticed
/// promptly.
fn wait(ch: &mmf::Channel, since: u64, timeout: Option<Duration>) -> Waited {
    install();
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        if requested() {
            return Waited::Interrupted;
        }
        let slice = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => left.min(Duration::from_millis(100)),
                _ => return Waited::TimedOut,
            },
            None => Duration::from_millis(100),
        };
        if ch.wait_for_change(since, slice).is_some() {
            return Waited::Changed;
        }
    }
}
