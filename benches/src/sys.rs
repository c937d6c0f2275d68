//! Thin Linux calls the harness needs: CPU pinning, dying with the parent, futexes, `poll`.
//!
//! Every `unsafe` block of the harness that is not about a shared mapping lives here.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// A clock for stamping six points of one round trip (`breakdown.rs`): the time-stamp counter on
/// x86-64 (invariant and synchronised across CPUs on the processors the harness runs on; Linux
/// checks that before it uses the TSC as its clocksource), read after an `lfence`, so that every
/// earlier instruction, a load still waiting for its cache line included, has completed when the
/// stamp is taken: a segment then holds the misses of its own copies instead of passing them to
/// the next one. Elsewhere: nanoseconds since the first call. Each stamp costs a few ns, the same
/// for every transport.
#[inline(always)]
pub fn ticks() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `lfence` and `rdtsc` exist on every x86-64 processor (SSE2 is baseline), touch
        // no memory and have no preconditions.
        unsafe {
            core::arch::x86_64::_mm_lfence();
            core::arch::x86_64::_rdtsc()
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_nanos() as u64
    }
}

/// The CPUs this process may run on (its affinity mask), in ascending order.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: `cpu_set_t` is plain data for which all-zeroes is a valid (empty) set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable `cpu_set_t` of the size passed; pid 0 is this thread.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu < CPU_SETSIZE`, so `CPU_ISSET` stays inside `set`.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

/// Online CPUs (`sysconf(_SC_NPROCESSORS_ONLN)`), whatever this process's affinity.
pub fn online_cpus() -> usize {
    // SAFETY: `sysconf` has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(0)
}

/// Pins the calling thread (in a single-threaded process: the process) to one CPU.
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    // SAFETY: as in `allowed_cpus`, an all-zero `cpu_set_t` is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: `cpu < CPU_SETSIZE` (checked above), so the bit lies inside `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid `cpu_set_t` of the size passed; pid 0 is the calling thread.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes the kernel kill this process when its parent dies, and exits at once if the parent
/// (`parent`, its pid as seen before the exec) is already gone.
pub fn die_with_parent(parent: u32) {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and touches no memory of ours.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    // SAFETY: `getppid` has no preconditions.
    let ppid = unsafe { libc::getppid() };
    if ppid as u32 != parent {
        // The parent died between our fork and the prctl: the signal will never come.
        std::process::exit(3);
    }
}

/// Sends SIGKILL to a process.
pub fn kill(pid: u32) {
    // SAFETY: `kill` touches no memory of ours; a stale pid at worst gets ESRCH.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
}

/// `FUTEX_WAIT` (shared, not PRIVATE: the word lives in a mapping shared between processes):
/// sleeps while `*word == expected`, at most `timeout`. Returns on wake-up, value change,
/// timeout or signal alike; the caller re-checks the word.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: `word` is an aligned u32 that stays valid (borrowed) for the whole call, and `ts`
    // outlives it; FUTEX_WAIT only reads the word and the timespec.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
}

/// `FUTEX_WAKE` (shared): wakes up to `n` waiters on `word`.
pub fn futex_wake(word: &AtomicU32, n: i32) {
    // SAFETY: `word` is an aligned u32 valid for the call; FUTEX_WAKE does not access user memory
    // beyond using its address as a key.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            n,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
}

/// Waits until `fd` is readable (or hung up), at most `timeout`; `false` on timeout.
pub fn poll_readable(fd: RawFd, timeout: Duration) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    loop {
        // SAFETY: `p` is one valid `pollfd`, and we pass a count of 1.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        if r >= 0 {
            return Ok(r > 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Clears `FD_CLOEXEC` so that a child process inherits `fd`.
pub fn inheritable(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_SETFD on a descriptor we own takes an integer flag and touches no memory.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets `FD_CLOEXEC` (our end of a pipe must not leak into later children).
pub fn close_on_exec(fd: RawFd) -> io::Result<()> {
    // SAFETY: as in `inheritable`.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Asks for a pipe buffer of at least `bytes` (`F_SETPIPE_SZ`, capped by
/// `/proc/sys/fs/pipe-max-size`); returns the size in effect.
pub fn set_pipe_size(fd: RawFd, bytes: usize) -> usize {
    let want = bytes.clamp(4096, 1 << 20) as libc::c_int;
    // SAFETY: F_SETPIPE_SZ / F_GETPIPE_SZ take an integer and touch no memory.
    unsafe {
        libc::fcntl(fd, libc::F_SETPIPE_SZ, want);
        libc::fcntl(fd, libc::F_GETPIPE_SZ).max(0) as usize
    }
}

/// A pipe with both ends close-on-exec: `(read, write)`.
pub fn pipe() -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors `pipe2` writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `pipe2` succeeded, so both are fresh descriptors that nothing else owns.
    Ok(unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    })
}

/// The kernel's release string (`uname -r`).
pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}
