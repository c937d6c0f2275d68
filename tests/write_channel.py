#!/usr/bin/env python3
"""A writer of mmf snapshot channels (layout version 7), written from docs/FORMAT.md alone (§11
for the publish, §5 for the lock's tokens, §4 for the process word): what tests/format.rs runs
to show that the document is complete for a writer too, beside mmf's own.

    python3 write_channel.py NAME [VALUE] [--bytes | --text | --msgpack | --json | --tag N]
                             [--stdin] [--no-header-only] [--lock-timeout SECS]
                             [--repeat N] [--pattern-sizes A,B,...] [--who W]
                             [--print-generation] [--hold STAGE:SECS]

NAME follows FORMAT.md §1 (a '/' makes it a path, else $MMF_SHM_DIR or /dev/shm, mmf.NAME).
The value is VALUE (the argument's UTF-8), or standard input with --stdin or without VALUE.
Tags (§7): --bytes 1 (the default), --text 2, --msgpack 3 (the input is MessagePack already),
--json (transcoded to MessagePack and stored as tag 3, as mmf does, §7.1), --tag N any tag
(1-4, 256-65535). Exit codes as mmf's: 4 too large, 8 the lock is held, 10 another writer
claimed the channel (§11 step 1), 1 anything else.

--repeat N publishes N self-checking values of --pattern-sizes bytes in turn (make_pattern()):
W, 8 hex digits of a counter, one byte repeated, and the hex CRC-32 of all that.

--hold STAGE:SECS sleeps at a point of the publish with the lock held (a killed writer's test):
locked, stamped, inline (the header-only path), begun, payload-half, framed, ended, latest
(after latest, before written).

Atomicity (§2): every word is loaded and stored as one aligned 64-bit access by a few bytes of
x86-64 machine code called through ctypes (mov, xchg, lock cmpxchg, lock xadd, mfence), so no
access is torn, and the lock's compare-and-swap is a real one. Release and Acquire need no
instruction on x86-64, and the interpreter does not reorder the calls; §11 step 7's SeqCst
fence is an mfence. Elsewhere libatomic through ctypes (untested).

As it opens, the writer looks for generations a machine crash lost (§12) and goes on past them.
"""

import ctypes
import errno
import fcntl
import json
import mmap
import os
import random
import struct
import sys
import time
import zlib

# ---------------------------------------------------------------- constants (FORMAT.md §3, §4)
MAGIC = struct.unpack("<Q", b"MMFCHAN\0")[0]
VERSION = 7
KIND_SNAPSHOT = 1
NO_SLOT = 0xFF
INLINE_MAX = 120
FLAG_CHECKSUM = 1
GEN_MAX = (1 << 56) - 1

H_MAGIC, H_VERSION, H_HEADER_SIZE, H_CAPACITY = 0, 8, 16, 24
H_SLOT_COUNT, H_SLOT_STRIDE, H_READERS, H_TOTAL_SIZE = 32, 40, 48, 56
H_INCARNATION, H_CREATED, H_CREATOR, H_FLAGS, H_KIND, H_RETIRED = 64, 72, 80, 88, 96, 104
H_LATEST = 128
H_INLINE_GEN = (136, 152)
H_INLINE_META = (144, 160)
H_INLINE_DATA = (192, 320)
H_INLINE_STAMP = (312, 440)
H_LOCK, H_RECOVERIES, H_WRITTEN, H_LAST_WRITER, H_WAITERS = 448, 456, 464, 472, 480
H_WRITER_CLAIM = 488

PIN_BASE = 512
F_SEQ, F_GEN, F_LEN, F_TAG, F_CRC, F_PAYLOAD = 0, 8, 16, 24, 32, 64

TAG_BYTES, TAG_TEXT, TAG_MSGPACK, TAG_JSON = 1, 2, 3, 4

ROTATION_L1_BYTES = 8192      # §11 step 2 "mmf's choice"
ROTATION_L2_BYTES = 262144

LOCK_TIMEOUT = 5.0


class ChannelError(Exception):
    pass


class TooLarge(ChannelError):
    pass


class Contended(ChannelError):
    pass


class Claimed(ChannelError):
    pass


# ---------------------------------------------------------------- atomics (§2)
class _Atomics:
    """64-bit atomic primitives on raw addresses."""

    def __init__(self):
        import platform
        m = platform.machine().lower()
        if m in ("x86_64", "amd64"):
            self._init_x86()
        else:
            self._init_libatomic()

    def _init_x86(self):
        code = {
            # u64 load(p): mov rax,[rdi]; ret
            "load": bytes.fromhex("488b07c3"),
            # void store(p, v): mov [rdi],rsi; ret
            "store": bytes.fromhex("488937c3"),
            # u64 xchg(p, v): xchg [rdi],rsi; mov rax,rsi; ret     (SeqCst store)
            "xchg": bytes.fromhex("48873748 89f0c3".replace(" ", "")),
            # u64 cas(p, exp, new) -> old: mov rax,rsi; lock cmpxchg [rdi],rdx; ret
            "cas": bytes.fromhex("4889f0f0480fb117c3"),
            # u64 fetch_add(p, v) -> old: lock xadd [rdi],rsi; mov rax,rsi; ret
            "fadd": bytes.fromhex("f0480fc13748 89f0c3".replace(" ", "")),
            # void fence(): mfence; ret
            "fence": bytes.fromhex("0faef0c3"),
            # void copy_words(dst, src, n): word-at-a-time 8-byte loads/stores
            #   test rdx,rdx; jz done; L: mov rax,[rsi]; mov [rdi],rax; add rsi,8; add rdi,8;
            #   dec rdx; jnz L; done: ret
            "copy": bytes.fromhex("4885d27413488b06488907" "4883c6084883c70848ffca75edc3"),
        }
        blob = b""
        offs = {}
        for k, c in code.items():
            offs[k] = len(blob)
            blob += c + b"\xcc" * ((-len(c)) % 16)
        self._mem = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        self._mem.write(blob)
        base = ctypes.addressof(ctypes.c_char.from_buffer(self._mem))
        u64, vp = ctypes.c_uint64, ctypes.c_void_p
        mk = lambda k, res, *args: ctypes.CFUNCTYPE(res, *args)(base + offs[k])
        self.load = mk("load", u64, u64)
        self.store = mk("store", None, u64, u64)
        self.xchg = mk("xchg", u64, u64, u64)
        self.cas = mk("cas", u64, u64, u64, u64)
        self.fetch_add = mk("fadd", u64, u64, u64)
        self.fence_seqcst = mk("fence", None)
        self.copy_words = mk("copy", None, u64, u64, u64)

    def _init_libatomic(self):  # untested fallback (AArch64 etc.)
        la = ctypes.CDLL("libatomic.so.1")
        u64 = ctypes.c_uint64
        SEQ = 5
        la.__atomic_load_8.restype = u64
        la.__atomic_load_8.argtypes = [u64, ctypes.c_int]
        la.__atomic_store_8.argtypes = [u64, u64, ctypes.c_int]
        la.__atomic_exchange_8.restype = u64
        la.__atomic_exchange_8.argtypes = [u64, u64, ctypes.c_int]
        la.__atomic_fetch_add_8.restype = u64
        la.__atomic_fetch_add_8.argtypes = [u64, u64, ctypes.c_int]
        la.__atomic_compare_exchange_8.restype = ctypes.c_bool
        la.__atomic_compare_exchange_8.argtypes = [u64, ctypes.POINTER(u64), u64, ctypes.c_int, ctypes.c_int]
        scratch = u64(0)
        self.load = lambda p: la.__atomic_load_8(p, SEQ)
        self.store = lambda p, v: la.__atomic_store_8(p, v, SEQ)
        self.xchg = lambda p, v: la.__atomic_exchange_8(p, v, SEQ)
        self.fetch_add = lambda p, v: la.__atomic_fetch_add_8(p, v, SEQ)

        def cas(p, exp, new):
            e = u64(exp)
            la.__atomic_compare_exchange_8(p, ctypes.byref(e), new, SEQ, SEQ)
            return e.value
        self.cas = cas
        self.fence_seqcst = lambda: la.__atomic_fetch_add_8(ctypes.addressof(scratch), 0, SEQ)

        def copy_words(dst, src, n):
            for i in range(n):
                la.__atomic_store_8(dst + 8 * i, ctypes.c_uint64.from_address(src + 8 * i).value, 0)
        self.copy_words = copy_words


A = _Atomics()
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
SYS_futex = 202 if os.uname().machine == "x86_64" else 98
FUTEX_WAKE = 1  # shared: no FUTEX_PRIVATE_FLAG


# ---------------------------------------------------------------- process words and tokens (§4, §5)
def _ns_inode():
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


def _start_comparable():
    """§4: start times are usable only if /proc is our namespace's and we are in the initial time ns."""
    try:
        with open("/proc/self/status") as f:
            nspid = [l for l in f if l.startswith("NSpid:")]
    except OSError:
        return False
    if not nspid or len(nspid[0].split()[1:]) != 1:
        return False
    try:
        if os.stat("/proc/self/ns/time").st_ino != 0xEFFFFFFA:
            return False
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return True


def _start_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    rest = s[s.rindex(")") + 2:].split()
    return int(rest[22 - 3])  # field 22; rest starts at field 3


def _fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def process_word(pid=None):
    pid = pid or os.getpid()
    ino = _ns_inode()
    ns = (ino % 65535) + 1 if ino is not None else 0
    start = 0
    if _start_comparable():
        try:
            start = (_start_ticks(pid) % 65535) + 1
        except OSError:
            start = 0
    try:
        with open("/proc/sys/kernel/random/boot_id", "rb") as f:
            boot = (_fnv1a64(f.read().strip()) % 1023) + 1
    except OSError:
        boot = 0
    return (pid & 0x3FFFFF) | (ns << 22) | (start << 38) | (boot << 54)


def _flock_struct(l_type, start, length=1):
    # struct flock on Linux x86-64/AArch64: short l_type, short l_whence, off_t l_start,
    # off_t l_len, pid_t l_pid (+ padding) = 32 bytes
    return struct.pack("hhqqi4x", l_type, os.SEEK_SET, start, length, 0)


def token_dead(fd, t, my_token):
    """§5 'Whether a token t is dead'."""
    if t == my_token:
        return False
    if t >> 63:
        off = t & ((1 << 63) - 1)
        try:
            r = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, _flock_struct(fcntl.F_WRLCK, off))
        except OSError:
            return False
        l_type, _wh, l_start, l_len, _pid = struct.unpack("hhqqi4x", r)
        if l_type == fcntl.F_UNLCK:
            return True
        return False  # exact byte → alive; wider → unknowable → alive
    pid = t & 0x3FFFFF
    if pid == 0:
        return True
    ino = _ns_inode()
    n = (ino % ((1 << 26) - 2)) + 1 if ino is not None else 0
    ns_tag = (t >> 22) & ((1 << 26) - 1)
    if n == 0 or ns_tag == 0 or ns_tag != n:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    except OSError:
        return True
    start = (t >> 48) & 0x7FFF
    if start and _start_comparable():
        try:
            mine = _start_ticks(pid) & 0x7FFF
        except FileNotFoundError:
            # Exited since the kill() above, or hidden (/proc mounted hidepid=2 shows another
            # user's processes as absent): dead only if kill() says so now.
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            except OSError:
                pass
            return False
        except OSError:
            return False  # cannot be read (/proc mounted hidepid=1): unknown, so alive
        if mine != start:
            return True
    return False


# ---------------------------------------------------------------- opening (§1, §8, §9)
def channel_path(name):
    if "/" in name:
        return name
    if not name or len(name.encode()) > 251 or name in (".", "..") or "\0" in name \
            or "\ufffd" in name or any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in name):
        raise ChannelError("invalid channel name %r" % name)
    d = os.environ.get("MMF_SHM_DIR") or "/dev/shm"
    return os.path.join(d, "mmf." + name)


class Writer:
    def __init__(self, name, header_only=True):
        self.path = channel_path(name)
        flags = os.O_RDWR | os.O_CLOEXEC
        if "/" not in name:
            flags |= os.O_NOFOLLOW
        for _ in range(100):
            self.fd = os.open(self.path, flags)
            # §8 "Advisory lock": hold a shared flock while we use the channel, then (§9 step 1)
            # make sure the name still leads to the file: a prune or replacement may have
            # removed it, or renamed another file over it, while we opened it.
            fcntl.flock(self.fd, fcntl.LOCK_SH)
            try:
                there = os.lstat(self.path) if flags & os.O_NOFOLLOW else os.stat(self.path)
            except FileNotFoundError:
                there = None
            mine = os.fstat(self.fd)
            if there is not None and (there.st_dev, there.st_ino) == (mine.st_dev, mine.st_ino):
                break
            os.close(self.fd)
        else:
            raise ChannelError("the name kept leading to another file while it was opened")
        size = os.fstat(self.fd).st_size
        if size < 512 or size % 8:
            raise ChannelError("not a channel / not initialised (size %d)" % size)
        self.mm = mmap.mmap(self.fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.base = ctypes.addressof(ctypes.c_char.from_buffer(self.mm))
        ld = self.ld
        if ld(H_MAGIC) != MAGIC:  # (Acquire: program order on x86-64)
            raise ChannelError("not initialised or wrong magic")
        if ld(H_VERSION) != VERSION:
            raise ChannelError("unsupported version %d" % ld(H_VERSION))
        if ld(H_KIND) != KIND_SNAPSHOT:
            raise ChannelError("unsupported kind")
        C, R = ld(H_CAPACITY), ld(H_READERS)
        if not (1 <= C <= 1 << 40) or R > 62:
            raise ChannelError("corrupt geometry")
        hs = 512 + 64 * R
        stride = 64 + (C + 63) // 64 * 64
        slots = R + 2
        total = hs + slots * stride
        if (ld(H_HEADER_SIZE), ld(H_SLOT_COUNT), ld(H_SLOT_STRIDE), ld(H_TOTAL_SIZE)) != (hs, slots, stride, total) \
                or size != total:
            raise ChannelError("corrupt geometry")
        self.capacity, self.readers, self.header_size = C, R, hs
        self.slot_stride, self.slot_count = stride, slots
        self.checksums = bool(ld(H_FLAGS) & FLAG_CHECKSUM)
        self.inline_max = min(INLINE_MAX, C)
        self.header_only = header_only
        budget = ROTATION_L1_BYTES if stride <= ROTATION_L1_BYTES else ROTATION_L2_BYTES
        self.rotation = max(2, min(budget // stride, slots))
        # §5: a kernel-held token with its liveness lock (OFD read lock on byte t & (2^63-1))
        self.token = (1 << 63) | (1 << 62) | (random.getrandbits(40) << 22) | (os.getpid() & 0x3FFFFF)
        off = self.token & ((1 << 63) - 1)
        fcntl.fcntl(self.fd, fcntl.F_OFD_SETLK, _flock_struct(fcntl.F_RDLCK, off))
        self.pword = process_word()
        self.hold = {}
        self._go_past_lost_generations()

    # raw word access
    def ld(self, off):
        return A.load(self.base + off)

    def st(self, off, v):
        A.store(self.base + off, v)

    def slot(self, s):
        return self.header_size + s * self.slot_stride

    def _maybe_hold(self, stage):
        secs = self.hold.get(stage)
        if secs:
            sys.stderr.write("holding at %s for %ss (pid %d)\n" % (stage, secs, os.getpid()))
            sys.stderr.flush()
            time.sleep(secs)

    # §11 step 1
    def _lock(self, timeout):
        p = self.base + H_LOCK
        t0 = time.monotonic()
        rounds = 0
        last_check = 0.0
        while True:
            old = A.cas(p, 0, self.token)
            if old == 0:
                return False
            rounds += 1
            now = time.monotonic()
            if rounds > 32 and now - last_check >= 0.001 and old != self.token:
                last_check = now
                if token_dead(self.fd, old, self.token):
                    if A.cas(p, old, self.token) == old:
                        A.fetch_add(self.base + H_RECOVERIES, 1)
                        return True
                    continue
            waited = now - t0
            if waited > timeout:
                raise Contended("writer lock held by token %#x" % old)
            if rounds < 16:
                pass  # spin
            elif waited < 200e-6:
                os.sched_yield()
            else:
                time.sleep(min(waited / 8, 0.001))

    # §11 step 2, after a takeover: `written` from `latest`, or past it where `latest` was lowered
    # (the writers' count taken as `gw`, by default the one in the header); one store
    def _resync_written(self, gw=None):
        w = self.ld(H_LATEST)  # Acquire (x86-64: plain load)
        gl = w >> 8
        if gw is None:
            gw = self.ld(H_WRITTEN) >> 8
        past = gw + ((gw ^ gl) & 1)
        if gw > gl and past <= GEN_MAX:
            # latest was lowered: past the writers' count, keeping off latest's slot and the
            # inline buffer of its generation's parity
            w = (past << 8) | (w & 0xFF)
        self.st(H_WRITTEN, w)
        return w

    # §12 "After a machine crash": the newest generation a slot's closed frame names past
    # `latest` (not 0) and `written`, by at most 2^32 and below 2^56 - 2; None if none does
    def _lost_generation(self):
        gl = self.ld(H_LATEST) >> 8
        known = max(gl, self.ld(H_WRITTEN) >> 8)
        if gl == 0:
            return None
        lost = None
        for s in range(self.slot_count):
            f = self.slot(s)
            if self.ld(f + F_SEQ) % 2:
                continue  # being written, or left so by a writer that died
            g, n, tag = self.ld(f + F_GEN), self.ld(f + F_LEN), self.ld(f + F_TAG)
            if known < g <= known + (1 << 32) and g < GEN_MAX - 1 and n <= self.capacity \
                    and tag <= 0xFFFF:
                lost = g if lost is None else max(lost, g)
        return lost

    # §12: a handle that may publish moves `written` past them as it opens, under the lock and
    # only if the lock is free (an open does not wait; a held lock keeps the takeover's rule)
    def _go_past_lost_generations(self):
        if self._lost_generation() is None:
            return
        if A.cas(self.base + H_LOCK, 0, self.token) != 0:
            return
        try:
            g = self._lost_generation()  # again, under the lock
            if g is not None:
                # `written` = g, then step 2's rule, in one store: an exception between two
                # stores would release the lock over a count without the parity rule
                self._resync_written(g)
        finally:
            self.st(H_LOCK, 0)  # Release

    def _choose_slot(self, cur, busy):
        # mmf's choice (§11 step 2): the `rotation` lowest slots that are not pinned (cur counted
        # among them), the first free one after cur, wrapping.
        pinned = busy - ({cur} if cur < self.slot_count else set())
        cands = [s for s in range(self.slot_count) if s not in pinned or s == cur][: self.rotation]
        cands_set = set(cands)
        start = cur + 1 if cur < self.slot_count else 0
        for i in range(self.slot_count):
            s = (start + i) % self.slot_count
            if s in cands_set and s not in busy:
                return s
        for s in range(self.slot_count):  # any free slot is correct
            if s not in busy:
                return s
        return None

    def publish(self, value, tag, lock_timeout=LOCK_TIMEOUT):
        value = bytes(value)
        n = len(value)
        if not (1 <= tag <= 65535) or 5 <= tag <= 255:
            raise ChannelError("tag %d refused (tag 0 and 5..255 are not publishable, §7)" % tag)
        if n > self.capacity:
            raise TooLarge("value of %d bytes exceeds capacity %d" % (n, self.capacity))
        padded = value + b"\0" * ((-n) % 8)
        buf = ctypes.create_string_buffer(padded, len(padded))
        src, nwords = ctypes.addressof(buf), len(padded) // 8
        base = self.base

        took_over = self._lock(lock_timeout)
        try:
            self._maybe_hold("locked")
            # step 2
            if took_over:
                w = self._resync_written()
            else:
                w = self.ld(H_WRITTEN)
            # step 1, the claim: another handle's, unless dead, refuses the publish (after the
            # resynchronisation above, which a takeover owes the next writer); a dead one's goes
            claim = self.ld(H_WRITER_CLAIM)
            if claim and claim != self.token:
                if not token_dead(self.fd, claim, self.token):
                    raise Claimed("exclusive writer: token %#x, pid %d" % (claim, claim & 0x3FFFFF))
                self.st(H_WRITER_CLAIM, 0)
            gen, cur = w >> 8, w & 0xFF
            if gen >= GEN_MAX:
                raise ChannelError("corrupt: generation limit reached")
            g = gen + 1
            b = g & 1
            if not self.checksums:
                self.st(H_INLINE_STAMP[b], g)  # stamp, before the Release fence of 2a/3
            self._maybe_hold("stamped")
            busy = set()
            if cur < self.slot_count:
                busy.add(cur)
            any_pinned = False
            for e in range(self.readers):
                p = self.ld(PIN_BASE + 64 * e + 8)  # SeqCst load (x86-64: plain mov after the locked CAS)
                if p:
                    any_pinned = True
                if 1 <= p <= self.slot_count:
                    busy.add(p - 1)
            inline = n <= self.inline_max and not self.checksums
            if self.header_only and not any_pinned and inline:
                # step 2a (fence(Release): compiler-only on x86-64)
                A.copy_words(base + H_INLINE_DATA[b], src, nwords)
                self._maybe_hold("inline")
                self.st(H_INLINE_GEN[b], g)
                self.st(H_INLINE_META[b], n | tag << 32 if n < 1 << 32 else (1 << 64) - 1)
                slot = NO_SLOT
            else:
                slot = self._choose_slot(cur, busy)
                if slot is None:
                    raise ChannelError("corrupt: no free slot")
                f = self.slot(slot)
                # step 3
                s0 = self.ld(f + F_SEQ)
                odd = s0 + 1 if s0 % 2 == 0 else s0 + 2
                self.st(f + F_SEQ, odd)
                self._maybe_hold("begun")
                # step 4
                if "payload-half" in self.hold:
                    half = nwords // 2
                    A.copy_words(base + f + F_PAYLOAD, src, half)
                    self._maybe_hold("payload-half")
                    A.copy_words(base + f + F_PAYLOAD + 8 * half, src + 8 * half, nwords - half)
                else:
                    A.copy_words(base + f + F_PAYLOAD, src, nwords)
                # step 5
                self.st(f + F_GEN, g)
                self.st(f + F_LEN, n)
                self.st(f + F_TAG, tag)
                self.st(f + F_CRC, (1 << 32) | zlib.crc32(value) if self.checksums else 0)
                self._maybe_hold("framed")
                # step 6
                self.st(f + F_SEQ, odd + 1)  # Release
                self._maybe_hold("ended")
                # step 6a
                if inline:
                    A.copy_words(base + H_INLINE_DATA[b], src, nwords)
                self.st(H_INLINE_GEN[b], g)
                self.st(H_INLINE_META[b], n | tag << 32 if n < 1 << 32 else (1 << 64) - 1)
            # step 7
            latest = g << 8 | slot
            self.st(H_LATEST, latest)  # Release
            self._maybe_hold("latest")
            self.st(H_WRITTEN, latest)
            A.fence_seqcst()
            # step 9
            self.st(H_LAST_WRITER, self.pword)
            # step 8
            if self.ld(H_WAITERS):
                _libc.syscall(SYS_futex, ctypes.c_void_p(base + H_LATEST), FUTEX_WAKE,
                              0x7FFFFFFF, None, None, 0)
            return g
        finally:
            # step 10
            self.st(H_LOCK, 0)  # Release

    def close(self):
        self.mm.close()
        os.close(self.fd)


# ---------------------------------------------------------------- a small MessagePack encoder (§7.1)
def msgpack_encode(v):
    out = bytearray()

    def enc(x):
        if x is None:
            out.append(0xC0)
        elif x is True:
            out.append(0xC3)
        elif x is False:
            out.append(0xC2)
        elif isinstance(x, int):
            if 0 <= x < 128:
                out.append(x)
            elif -32 <= x < 0:
                out.append(x & 0xFF)
            elif x >= 0:
                for lim, mk, fmt in ((1 << 8, 0xCC, ">B"), (1 << 16, 0xCD, ">H"), (1 << 32, 0xCE, ">I"), (1 << 64, 0xCF, ">Q")):
                    if x < lim:
                        out.append(mk); out.extend(struct.pack(fmt, x)); break
                else:
                    raise ValueError("integer out of range")
            else:
                for lim, mk, fmt in ((1 << 7, 0xD0, ">b"), (1 << 15, 0xD1, ">h"), (1 << 31, 0xD2, ">i"), (1 << 63, 0xD3, ">q")):
                    if -x <= lim:
                        out.append(mk); out.extend(struct.pack(fmt, x)); break
                else:
                    raise ValueError("integer out of range")
        elif isinstance(x, float):
            out.append(0xCB); out.extend(struct.pack(">d", x))
        elif isinstance(x, str):
            b = x.encode()
            if len(b) < 32:
                out.append(0xA0 | len(b))
            elif len(b) < 256:
                out.extend((0xD9, len(b)))
            elif len(b) < 65536:
                out.append(0xDA); out.extend(struct.pack(">H", len(b)))
            else:
                out.append(0xDB); out.extend(struct.pack(">I", len(b)))
            out.extend(b)
        elif isinstance(x, (bytes, bytearray)):
            if len(x) < 256:
                out.extend((0xC4, len(x)))
            elif len(x) < 65536:
                out.append(0xC5); out.extend(struct.pack(">H", len(x)))
            else:
                out.append(0xC6); out.extend(struct.pack(">I", len(x)))
            out.extend(x)
        elif isinstance(x, (list, tuple)):
            n = len(x)
            if n < 16:
                out.append(0x90 | n)
            elif n < 65536:
                out.append(0xDC); out.extend(struct.pack(">H", n))
            else:
                out.append(0xDD); out.extend(struct.pack(">I", n))
            for i in x:
                enc(i)
        elif isinstance(x, dict):
            n = len(x)
            if n < 16:
                out.append(0x80 | n)
            elif n < 65536:
                out.append(0xDE); out.extend(struct.pack(">H", n))
            else:
                out.append(0xDF); out.extend(struct.pack(">I", n))
            for k, val in x.items():
                enc(k); enc(val)
        else:
            raise TypeError("cannot encode %r" % type(x))
    enc(v)
    return bytes(out)


# ---------------------------------------------------------------- self-checking pattern values
def make_pattern(counter, size, who=b"P"):
    """size bytes: who + 8-hex counter + a fill byte repeated, last 8 bytes = hex CRC-32 of the rest."""
    if size < 17:
        raise ValueError("pattern size must be >= 17")
    head = who + b"%08x" % (counter & 0xFFFFFFFF)
    fill = bytes([0x41 + counter % 26]) * (size - 8 - len(head))
    body = head + fill
    return body + b"%08x" % zlib.crc32(body)


def check_pattern(v):
    if len(v) < 17:
        return False
    body, crc = v[:-8], v[-8:]
    return b"%08x" % zlib.crc32(body) == crc and len(set(body[9:])) <= 1


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name")
    ap.add_argument("value", nargs="?")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--bytes", action="store_true")
    g.add_argument("--text", action="store_true")
    g.add_argument("--msgpack", action="store_true")
    g.add_argument("--json", action="store_true")
    g.add_argument("--tag", type=int)
    ap.add_argument("--stdin", action="store_true")
    ap.add_argument("--no-header-only", action="store_true")
    ap.add_argument("--lock-timeout", type=float, default=LOCK_TIMEOUT)
    ap.add_argument("--repeat", type=int, default=0)
    ap.add_argument("--pattern-sizes", default="")
    ap.add_argument("--who", default="P")
    ap.add_argument("--print-generation", action="store_true")
    ap.add_argument("--hold", action="append", default=[])
    a = ap.parse_args(argv)

    try:
        w = Writer(a.name, header_only=not a.no_header_only)
    except (OSError, ChannelError) as e:
        print("write_channel: %s" % e, file=sys.stderr)
        return 3 if isinstance(e, FileNotFoundError) else 1
    for h in a.hold:
        stage, secs = h.split(":")
        w.hold[stage] = float(secs)

    if a.repeat:
        sizes = [int(x) for x in a.pattern_sizes.split(",") if x] or [64]
        t0 = time.monotonic()
        for i in range(a.repeat):
            size = sizes[i % len(sizes)]
            w.publish(make_pattern(i, size, a.who.encode()), TAG_TEXT, a.lock_timeout)
        dt = time.monotonic() - t0
        print("published %d values in %.2fs" % (a.repeat, dt), file=sys.stderr)
        return 0

    raw = sys.stdin.buffer.read() if (a.stdin or a.value is None) else a.value.encode()
    if a.text:
        tag = TAG_TEXT
        raw.decode("utf-8")
    elif a.msgpack:
        tag = TAG_MSGPACK
    elif a.json:
        tag, raw = TAG_MSGPACK, msgpack_encode(json.loads(raw))
    elif a.tag is not None:
        tag = a.tag
    else:
        tag = TAG_BYTES
    try:
        gen = w.publish(raw, tag, a.lock_timeout)
    except TooLarge as e:
        print("write_channel: %s" % e, file=sys.stderr)
        return 4
    except Contended as e:
        print("write_channel: %s" % e, file=sys.stderr)
        return 8
    except Claimed as e:
        print("write_channel: %s" % e, file=sys.stderr)
        return 10
    except ChannelError as e:
        print("write_channel: %s" % e, file=sys.stderr)
        return 1
    if a.print_generation:
        print(gen)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
