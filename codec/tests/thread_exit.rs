//! Typed reads and publishes at a thread's exit, from another thread-local's `Drop`: the
//! thread's reusable buffer may be destroyed by then (thread-locals go in reverse order of
//! their first use), and taking it panicked inside a destructor, which aborts the process (a
//! review's finding). An abort takes this test binary down, so the test has one of its own.

use std::cell::RefCell;
use std::sync::Arc;

use mmf_codec::{Channel, ChannelExt};

/// At its drop, reads a value from its channel and publishes one, typed, and keeps what came
/// back for the thread that spawned this one to see.
struct AtExit {
    channel: Arc<Channel>,
    seen: std::sync::mpsc::Sender<(u64, u64)>,
}

impl Drop for AtExit {
    fn drop(&mut self) {
        let read = self.channel.read::<u64>().unwrap();
        let generation = self.channel.publish(&(read + 1)).unwrap();
        let _ = self.seen.send((read, generation));
    }
}

thread_local! {
    static GUARD: RefCell<Option<AtExit>> = const { RefCell::new(None) };
}

#[test]
fn typed_calls_from_a_thread_locals_drop_at_thread_exit_work() {
    let channel = Arc::new(Channel::anonymous(64).unwrap());
    channel.publish(&41u64).unwrap();
    let (seen, got) = std::sync::mpsc::channel();
    let ch = Arc::clone(&channel);
    std::thread::spawn(move || {
        // The guard's thread-local first, then the buffer's (by a typed read): the buffer's
        // goes first at the exit, before the guard's drop reads and publishes.
        GUARD.with(|g| {
            *g.borrow_mut() = Some(AtExit {
                channel: Arc::clone(&ch),
                seen,
            })
        });
        assert_eq!(ch.read::<u64>().unwrap(), 41);
    })
    .join()
    .unwrap();
    assert_eq!(got.recv().unwrap(), (41, 2));
    assert_eq!(channel.read::<u64>().unwrap(), 42);
}
