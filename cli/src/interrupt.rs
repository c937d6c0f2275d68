//! Ctrl-C (SIGINT), SIGTERM and SIGHUP during a wait (and SIGUSR1, SIGUSR2 and SIGALRM, whose
//! default action ends a process too: a harness author's review found a watch killed by one
//! leaving its count as a waiter for `mmf recover` to mend): note the signal, let the wait loop
//! notice
//! and return, so that handles are dropped normally (releasing their reader-pin entries and
//! their count as waiters) and output stays whole; then [`end_by_signal`] ends the process by
//! that signal, as it would have ended without the handler.
//!
//! Ending by the signal, not with `exit(130)`, is what lets a script's loop stop: a shell that
//! runs `while ...; do mmf read T --wait; done` in the foreground and gets Ctrl-C (both it and
//! mmf get the SIGINT) ends itself only if its child died of SIGINT; a child that exits 130 is
//! taken to have handled the interrupt, and the loop goes on to the next `mmf read --wait`.
//!
//! While output is being written ([`writing`]) the signals take their default action instead:
//! a write blocked on a full pipe whose reader stalls would otherwise never return to the loop
//! (the handlers restart the call), and a harness's `kill` could not end the watch. The cost: a
//! signal that lands during an ordinary write also ends the process at once, possibly after
//! part of a line.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// The signal that arrived (0: none yet).
static SIGNAL: OnceLock<Arc<AtomicUsize>> = OnceLock::new();
static WRITING: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// The signals a wait ends on: each one's default action ends the process. (SIGKILL cannot be
/// caught; SIGPIPE is ignored by every Rust program, a closed output being an error; SIGQUIT,
/// Ctrl-\, keeps its meaning: end now, with a core of where the process was.)
const SIGNALS: [i32; 6] = [
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGHUP,
    signal_hook::consts::SIGUSR1,
    signal_hook::consts::SIGUSR2,
    signal_hook::consts::SIGALRM,
];

fn writing_flag() -> &'static Arc<AtomicBool> {
    WRITING.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Installs the handlers (once); later calls are free. A signal this process was started with
/// ignored stays ignored: `nohup mmf watch T &` must outlive its terminal (SIGHUP), and a
/// background job of a shell without job control ignores SIGINT.
pub fn install() {
    SIGNAL.get_or_init(|| {
        let signal = Arc::new(AtomicUsize::new(0));
        let ignored = ignored_signals();
        for sig in SIGNALS
            .into_iter()
            .filter(|&s| ignored & (1 << (s - 1)) == 0)
        {
            // If registration fails the default action (exit) stays in place: still correct.
            let _ = signal_hook::flag::register_usize(sig, Arc::clone(&signal), sig as usize);
            let _ =
                signal_hook::flag::register_conditional_default(sig, Arc::clone(writing_flag()));
        }
        signal
    });
}

/// The mask of the `SIGNALS` ignored in this process (bit `s - 1` for signal `s`), asked of
/// the kernel with `sigaction` (it was read from `/proc/self/status`, which macOS and FreeBSD
/// do not have, a container may not mount, and qemu-user fills with its own handlers: there
/// `nohup mmf watch` died of the terminal's SIGHUP). Asked before any handler is installed,
/// so it is what the process was started with.
fn ignored_signals() -> u64 {
    SIGNALS
        .into_iter()
        .filter(|&s| mmf::channel::host::signal_ignored(s))
        .fold(0, |mask, s| mask | 1 << (s - 1))
}

/// The signal that arrived, if any.
fn arrived() -> Option<i32> {
    let sig = SIGNAL.get()?.load(Ordering::SeqCst);
    (sig != 0).then_some(sig as i32)
}

/// Whether an interrupt arrived.
pub fn requested() -> bool {
    arrived().is_some()
}

/// Ends the process by the signal that interrupted it (see the module docs), once everything
/// that must be released has been dropped. Returns only where no signal arrived (the handler
/// is set back to the default action and the signal raised; where that cannot be done,
/// signal-hook aborts, SIGABRT: the process still ends by a signal, and the loop stops).
pub fn end_by_signal() {
    let Some(sig) = arrived() else { return };
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // Resets the handler to the default action and raises the signal (unblocked).
    let _ = signal_hook::low_level::emulate_default_handler(sig);
}

/// Runs `write` with the signals' default action in force (see the module docs).
pub fn writing<T>(write: impl FnOnce() -> T) -> T {
    let flag = writing_flag();
    flag.store(true, Ordering::SeqCst);
    let result = write();
    flag.store(false, Ordering::SeqCst);
    result
}
