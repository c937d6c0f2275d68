//! Byte-stream peers: a pipe per direction, or one Unix domain stream socket pair. Each message
//! is written whole (`write_all`) and read whole (`read_exact`) into a reused buffer.
//!
//! The pipes are enlarged to hold a whole message where the kernel allows (`F_SETPIPE_SZ`, up to
//! `/proc/sys/fs/pipe-max-size`, 1 MiB by default): the best case for a pipe user. Blocking reads
//! have no timeout of their own; the parent's watchdog kills a stuck child, which ends the read.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::buf::Buf;
use crate::latency::{payload, seq_of, stamp, Side};
use crate::proc::{pass_fds, Resources};
use crate::sys;

/// One side of a pipe pair or a socket pair.
pub struct Stream {
    tx: File,
    rx: File,
    out: Buf,
    inb: Buf,
}

impl Stream {
    /// Two pipes: parent-to-child and child-to-parent.
    pub fn pipes(len: usize) -> Result<(Stream, Resources)> {
        let (a_rd, a_wr) = sys::pipe()?;
        let (b_rd, b_wr) = sys::pipe()?;
        for fd in [&a_wr, &b_wr] {
            sys::set_pipe_size(fd.as_raw_fd(), len);
        }
        let fds = pass_fds(&[&a_rd, &b_wr])?;
        let side = Stream::new(File::from(a_wr), File::from(b_rd), len);
        Ok((
            side,
            Resources {
                fds,
                child_fds: vec![a_rd, b_wr],
                ..Resources::default()
            },
        ))
    }

    /// A Unix domain stream socket pair.
    pub fn socket_pair(len: usize) -> Result<(Stream, Resources)> {
        let (mine, theirs) = UnixStream::pair()?;
        let theirs = OwnedFd::from(theirs);
        let fds = pass_fds(&[&theirs])?;
        let mine = OwnedFd::from(mine);
        let side = Stream::new(File::from(mine.try_clone()?), File::from(mine), len);
        Ok((
            side,
            Resources {
                fds,
                child_fds: vec![theirs],
                ..Resources::default()
            },
        ))
    }

    /// The child's side, from the inherited descriptors.
    pub fn child(len: usize, res: &Resources, socket: bool) -> Result<Stream> {
        let take = |fd: i32| -> Result<OwnedFd> {
            sys::close_on_exec(fd)?;
            // SAFETY: the parent passed us this descriptor number for our exclusive use, it is
            // open (inherited across exec: `close_on_exec` just succeeded on it), and nothing
            // else in this process owns it.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        };
        match (socket, res.fds.as_slice()) {
            (false, &[rd, wr]) => Ok(Stream::new(
                File::from(take(wr)?),
                File::from(take(rd)?),
                len,
            )),
            (true, &[s]) => {
                let s = take(s)?;
                Ok(Stream::new(File::from(s.try_clone()?), File::from(s), len))
            }
            _ => bail!("unexpected descriptors {:?}", res.fds),
        }
    }

    fn new(tx: File, rx: File, len: usize) -> Stream {
        Stream {
            tx,
            rx,
            out: payload(len),
            inb: Buf::zeroed(len),
        }
    }
}

impl Side for Stream {
    fn send(&mut self, seq: u64) -> Result<()> {
        stamp(self.out.as_mut_slice(), seq);
        self.tx.write_all(self.out.as_slice())?;
        Ok(())
    }

    fn recv(&mut self, _timeout: Duration) -> Result<u64> {
        self.rx.read_exact(self.inb.as_mut_slice())?;
        Ok(seq_of(self.inb.as_slice()))
    }
}
