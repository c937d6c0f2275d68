//! What the in-process protocol tests share: the loom models (`loom_tests.rs`) and the thread
//! races over a real mapping (`race_tests.rs`). A channel without a name or a file, its
//! values, and a read that checks what it returns.

use crate::frame::Tag;
use crate::layout::Layout;
use crate::region::Region;
use crate::snapshot::{Miss, SlotWriter, Snapshot, Source, Timeouts};

/// A channel of `len` bytes and `readers` pin entries in an anonymous region (heap cells under
/// loom), named `name` in its errors. Its handle may (`header_only`) or may not publish small
/// values given as slices into the header alone: without it, such a value takes the slot route
/// even while nobody pins (each word into the slot and the inline buffer together). With
/// `checksum`, the inline area is unused and every read copies a slot.
pub(crate) fn snapshot(
    header_only: bool,
    readers: usize,
    checksum: bool,
    len: usize,
    name: &str,
) -> Snapshot {
    let layout = Layout::new(len, readers).unwrap();
    let region = Region::anonymous(layout.total_bytes).unwrap();
    let snap = Snapshot {
        region,
        layout,
        checksum,
        name: name.into(),
        header_only,
        liveness: crate::os::Liveness::default(),
        damaged: None,
        cold: Default::default(),
        process_rest: 0,
    };
    snap.init(u64::from(checksum), 1, 0, 0);
    snap
}

/// Publishes value `g` as `token`: as many copies of the byte `g as u8` as the channel holds,
/// so that a mix of two values is detectable.
pub(crate) fn publish(s: &Snapshot, token: u64, g: u64) {
    // Both ways in: the caller's slice (odd values) and a streaming closure (even ones), which
    // take different routes to the inline buffer.
    let value = vec![g as u8; s.layout.capacity];
    let source = if g % 2 == 1 {
        Source::Bytes(&value)
    } else {
        Source::Fill(|w: &mut SlotWriter<'_>| w.put(&value))
    };
    s.publish::<_, true>(token, Tag::BYTES, &Timeouts::default(), source)
        .unwrap();
}

/// How a checked read goes about it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Read {
    /// The way `Channel::read_into` reads: `read_inline` first, and the general read only if
    /// that fails (straight to the slot if the inline copy was overtaken, pinned at once if the
    /// slot copy of a value too large to be inline was).
    Fast,
    /// The general read alone, inline copy first.
    General,
    /// The general read, straight to the slot (as after an overtaken inline copy, or for a value
    /// too large to be inline): on a channel without checksums, a slot copy validated by `latest`.
    Slot,
}

/// One read, checked.
#[cfg(mmf_loom)]
pub(crate) fn check(s: &Snapshot, pin: Option<usize>, how: Read) {
    checked_read(s, pin, how).unwrap();
}

/// One read: its generation if it returned a value, which is checked whole, or its error.
pub(crate) fn checked_read(s: &Snapshot, pin: Option<usize>, how: Read) -> crate::Result<u64> {
    let mut buf = Vec::new();
    let first = match how {
        Read::Fast => s.read_inline(&mut buf),
        Read::General => Err(Miss::Elsewhere),
        Read::Slot => Err(Miss::InlineOvertaken),
    };
    let meta = match first {
        Ok(meta) => meta,
        Err(miss) => {
            let (inline, lost) = (miss != Miss::InlineOvertaken, miss == Miss::SlotFailed);
            s.read(|| pin, false, inline, lost, &mut buf, &Timeouts::default())?
                .0
        }
    };
    if meta.generation == 0 {
        assert!(buf.is_empty());
    } else {
        assert_eq!(buf.len(), s.layout.capacity);
        // The bytes are the value of the generation the read reports, every one of them.
        assert!(
            buf.iter().all(|&b| b == meta.generation as u8),
            "torn: {buf:?} {meta:?}"
        );
    }
    Ok(meta.generation)
}

/// Says on stderr that a test skipped a part this machine cannot run, and adds it to the file
/// `MMF_SKIPPED_LOG` names, as the integration tests' `skipped` does (`tests/common`): CI lists
/// every part its runs skipped, this crate's unit tests' among them.
#[cfg(not(mmf_loom))]
pub(crate) fn skipped(why: &str) {
    use std::io::Write;
    eprintln!("SKIPPED: {why}");
    let Some(log) = std::env::var_os("MMF_SKIPPED_LOG") else {
        return;
    };
    // libtest names each test's thread after it.
    let thread = std::thread::current();
    let line = format!("mmf_core {}: {why}\n", thread.name().unwrap_or("?"));
    // One write, with O_APPEND: the lines of tests running at once do not mix.
    let _ = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .and_then(|mut f| f.write_all(line.as_bytes()));
}

/// What `f` answers once it answers `Some`, asked every 5 ms for at most 10 s (else `None`).
///
/// For a test that has just closed a lock's last holder and asks whether the lock is free: a
/// `flock` and an OFD lock belong to the open file description, and a process that another
/// test of this binary is spawning (or has forked) at that moment holds a copy of every
/// descriptor until its `exec` closes them, or it exits. Natively that lasts microseconds;
/// under qemu-user, whose spawn is slow, CI once found a lock still held right after its holder
/// was closed (e2b8f17, an integration test with the same helper). The test's assertion stays:
/// on what `f` answers within the bound.
pub(crate) fn once_released<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(x) = f() {
            return Some(x);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
