//! Ctrl-C (SIGINT) and SIGTERM during a wait: set a flag, let the wait loop notice and return, so
//! that handles are dropped normally (releasing their reader-pin entries) and output stays whole.
//!
//! While output is being written ([`writing`]) the signals take their default action instead:
//! a write blocked on a full pipe whose reader stalls would otherwise never return to the loop
//! (the handlers restart the call), and a harness's `kill` could not end the watch. The cost: a
//! signal that lands during an ordinary write also ends the process at once (status 128 +
//! signal), possibly after part of a line.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
static WRITING: OnceLock<Arc<AtomicBool>> = OnceLock::new();

fn writing_flag() -> &'static Arc<AtomicBool> {
    WRITING.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Installs the handlers (once); later calls are free.
pub fn install() {
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // If registration fails the default action (exit) stays in place: still correct.
            let _ = signal_hook::flag::register(sig, Arc::clone(&flag));
            let _ =
                signal_hook::flag::register_conditional_default(sig, Arc::clone(writing_flag()));
        }
        flag
    });
}

/// Whether an interrupt arrived.
pub fn requested() -> bool {
    FLAG.get().is_some_and(|f| f.load(Ordering::Relaxed))
}

/// Runs `write` with the signals' default action in force (see the module docs).
pub fn writing<T>(write: impl FnOnce() -> T) -> T {
    let flag = writing_flag();
    flag.store(true, Ordering::SeqCst);
    let result = write();
    flag.store(false, Ordering::SeqCst);
    result
}
