#!/usr/bin/env python3
"""Independent decoder of an mmf channel, written only from docs/FORMAT.md.

    python3 tests/decode_channel.py NAME|PATH

Opens the channel file PATH read-only (a NAME without '/' is the shared-memory channel
$MMF_SHM_DIR/mmf.NAME, /dev/shm/mmf.NAME by default, as FORMAT.md section 1 says), validates its
header (section 9), reads the current value with the unpinned read protocol (section 10.1), and,
when the header's inline area holds that value too (section 10.0), reads it from there as well
and requires the two to agree. A header-only value (latest names slot 0xff) is read from the
inline area alone. Prints one JSON line:

    {"generation": G, "tag": T, "len": N, "payload_hex": "...", "inline": true|false,
     "header_only": true|false, "value": V}

"value" is the payload decoded by its tag (section 7): text (tag 2) as a string, JSON text
(tag 4) parsed under section 7.1's rules (a key twice, NaN, 1e400, an integer outside i64/u64,
half a surrogate pair or 128 levels of nesting refused; -0 is the float -0.0), MessagePack
(tag 3) decoded with the standard library alone and rendered as section 7.1 says mmf renders
it as JSON (binary as {"$bin": base64}, extensions as {"$ext": {"type": t, "data": base64}},
NaN and the infinities as strings, a key that is not a string as its compact JSON text). It is
absent for other tags; where the payload does not decode, "value_error" says why instead.

Exit status: 0 on success, 1 (with a message on stderr) if the file is not a valid channel, is
corrupt, or no consistent value could be read; 2 on a usage error.

As a test oracle of mmf's writer it is stricter than a reader needs to be, in three places
where FORMAT.md lets a reader be lenient: it requires the descriptor of the latest generation
and the header's inline copy to agree with the slot (section 4.1 lets a reader take either copy
without comparing them, and section 9 step 9 calls a descriptor that disagrees with a whole
frame no damage to a read), and it checks a frame's CRC where bit 32 of its crc word is set even
on a channel without checksums (section 6 allows either). It reads layout versions 3 to 6 too,
which mmf itself refuses (section 15 says what changed), and reports a channel that is not
initialised yet at once instead of retrying (section 9 step 4).

Python has no atomic loads and no fences. Every 8-byte field is read with struct.unpack_from on the
mmap, which hands struct a pointer straight into the mapping (no intermediate copy); on a
little-endian host CPython's struct module swaps its native unpacker in for "<Q", which is a
memcpy of 8 bytes, and for an 8-byte-aligned address that compiles to a single 64-bit load, so a
field is not torn in practice. The language guarantees none of this, which is why the decoder
relies on the seqlock validation (stamp re-read, generation check) to reject inconsistent copies.
On x86-64 loads are not reordered with each other, so the program order of the loads below gives
the Acquire ordering the protocol asks for; on weakly ordered CPUs (AArch64) this decoder is
best-effort.
"""

import base64
import fcntl
import json
import math
import mmap
import os
import struct
import sys
import zlib

# --- constants from FORMAT.md ------------------------------------------------------------------

MAGIC = struct.unpack("<Q", b"MMFCHAN\0")[0]
# Versions 3 to 5 differ only in what the lock and pin-owner tokens mean (§5), which a reader
# that neither locks nor pins never looks at; version 6 gave each inline buffer a stamp (its last
# word, so 120 bytes of value instead of 128); version 7 changed what writers do, not what a
# reader reads. This decoder reads all five.
VERSIONS = (3, 4, 5, 6, 7)
NO_SLOT = 0xFF
KIND_SNAPSHOT = 1
MAX_CAPACITY = 1 << 40
MAX_READERS = 62
LINE = 64
MIN_FILE = 512  # eight header lines

# Header word offsets (bytes).
H_MAGIC = 0
H_VERSION = 8
H_HEADER_SIZE = 16
H_CAPACITY = 24
H_SLOT_COUNT = 32
H_SLOT_STRIDE = 40
H_READERS = 48
H_TOTAL_SIZE = 56
H_KIND = 96
H_FLAGS = 88
H_LATEST = 128
H_WRITTEN = 464  # the writers' copy of latest (section 4, line 7)
H_INLINE_DESC = 136  # buffer b: generation at 136 + 16 * b, length | tag << 32 after it
H_INLINE_DATA = 192  # buffer b: data at 192 + 128 * b
INLINE_CAPACITY = 120  # from version 6; 128 before it
H_INLINE_STAMP = 312  # buffer b's stamp at 312 + 128 * b (version 6)
FLAG_CHECKSUM = 1

# Frame word offsets (bytes, relative to the slot).
F_SEQ = 0
F_GEN = 8
F_LEN = 16
F_TAG = 24
F_CRC = 32
F_PAYLOAD = 64

CRC_PRESENT = 1 << 32
MAX_TAG = 0xFFFF

# Bound on read attempts (mmf itself bounds by time; any bound will do for a decoder).
MAX_ATTEMPTS = 100_000


class Invalid(Exception):
    """The file is not a valid channel, is corrupt, or no consistent value could be read."""


def u64(mm, off):
    """One aligned 8-byte little-endian field (see the module docstring on atomicity)."""
    return struct.unpack_from("<Q", mm, off)[0]


def roundup(n, to):
    return (n + to - 1) // to * to


def validate(mm, file_size):
    """Checks the header as FORMAT.md section 9 says; returns (capacity, slots, header, stride,
    version)."""
    magic = u64(mm, H_MAGIC)
    if magic == 0:
        raise Invalid("channel is not initialised yet (magic is 0; still being created?)")
    if magic != MAGIC:
        raise Invalid(f"not an mmf channel (magic {magic:#018x})")
    version = u64(mm, H_VERSION)
    if version not in VERSIONS:
        raise Invalid(f"unsupported layout version {version} (this decoder reads versions 3 to 7)")
    kind = u64(mm, H_KIND)
    if kind != KIND_SNAPSHOT:
        raise Invalid(f"channel kind {kind} is not a snapshot channel")
    capacity = u64(mm, H_CAPACITY)
    readers = u64(mm, H_READERS)
    if not 1 <= capacity <= MAX_CAPACITY:
        raise Invalid(f"corrupt header: capacity {capacity} is outside 1..{MAX_CAPACITY}")
    if readers > MAX_READERS:
        raise Invalid(f"corrupt header: {readers} readers (at most {MAX_READERS})")
    slots = readers + 2
    header_size = 8 * LINE + LINE * readers
    stride = LINE + roundup(capacity, LINE)
    total = header_size + slots * stride
    for name, off, want in (
        ("header size", H_HEADER_SIZE, header_size),
        ("slot count", H_SLOT_COUNT, slots),
        ("slot stride", H_SLOT_STRIDE, stride),
        ("total size", H_TOTAL_SIZE, total),
    ):
        found = u64(mm, off)
        if found != want:
            raise Invalid(f"corrupt header: {name} is {found}, expected {want}")
    if file_size != total:
        raise Invalid(
            f"corrupt: file is {file_size} bytes but the header describes {total} bytes"
        )
    return capacity, slots, header_size, stride, version


def read_unpinned(mm, capacity, slots, header_size, stride, version):
    """The unpinned read protocol of FORMAT.md section 10.1, with section 10.5's rule for
    generation 0."""
    for _ in range(MAX_ATTEMPTS):
        # 1. latest = generation << 8 | slot.
        latest = u64(mm, H_LATEST)
        if latest >> 8 != 0:
            got = attempt(mm, capacity, slots, header_size, stride, version, latest)
            if got is not None:
                return got
            continue
        # 10.5: an attempt at generation 0, whatever it finds, then the writers' count.
        try:
            got = attempt(mm, capacity, slots, header_size, stride, version, latest)
        except Invalid:
            got = None
        written = u64(mm, H_WRITTEN) >> 8
        if written == 0:
            return 0, 0, b""
        if u64(mm, H_LATEST) >> 8 == 0:
            raise Invalid(
                f"corrupt: latest names generation 0, but the writers' count is at {written}"
            )
    raise Invalid(
        f"no consistent value after {MAX_ATTEMPTS} attempts (a writer overtook every read, "
        "or the slot latest names is stuck mid-write)"
    )


def attempt(mm, capacity, slots, header_size, stride, version, latest):
    """One attempt of section 10.1 at the value `latest` names: (generation, tag, payload),
    None to retry, or Invalid (corrupt)."""
    gen, slot = latest >> 8, latest & 0xFF
    # 2. Slot 0xff: the value is in the header only (section 10.0); any other slot out of
    # range is corruption, not a race.
    if slot == NO_SLOT:
        # Never on a channel with checksums: its values are always in slots (the header
        # has no room for their CRC), so one kept in the header only is corruption.
        if u64(mm, H_FLAGS) & FLAG_CHECKSUM:
            if u64(mm, H_LATEST) == latest:
                raise Invalid(
                    f"corrupt: latest names generation {gen} in no slot, "
                    "on a channel with checksums"
                )
            return None
        got = read_inline(mm, capacity, version, gen, latest)
        if got is None:
            return None
        tag, payload = got
        return gen, tag, payload
    if slot >= slots:
        raise Invalid(f"corrupt: latest names slot {slot} of {slots}")
    base = header_size + slot * stride
    # 3. Even stamp, or a write is in progress.
    s1 = u64(mm, base + F_SEQ)
    if s1 % 2 == 1:
        return None
    # 4. Frame fields.
    fgen = u64(mm, base + F_GEN)
    length = u64(mm, base + F_LEN)
    tag = u64(mm, base + F_TAG)
    crc = u64(mm, base + F_CRC)
    # 5. Never use an unchecked length; a bad but stable frame is corrupt.
    if length > capacity or tag > MAX_TAG:
        if u64(mm, base + F_SEQ) == s1 and fgen == gen:
            raise Invalid(
                f"corrupt: frame in slot {slot} claims {length} bytes "
                f"(capacity {capacity}) and tag {tag}"
            )
        return None
    # 6. Copy the payload (a slice of the mmap is a memcpy; tearing is caught by step 7).
    start = base + F_PAYLOAD
    payload = mm[start:start + length]
    # 7. Keep the copy only if no write touched the slot and it holds the generation latest named.
    if u64(mm, base + F_SEQ) != s1 or fgen != gen:
        return None
    # 8. Checksum, verified only on a copy that was stable.
    if crc & CRC_PRESENT and zlib.crc32(payload) != crc & 0xFFFFFFFF:
        raise Invalid(f"corrupt: checksum mismatch in slot {slot}, generation {gen}")
    # 9. Done.
    return gen, tag, payload


def read_inline(mm, capacity, version, gen, header_only=None):
    """The inline read of FORMAT.md section 10.0, for generation `gen`: (tag, payload), or None
    when the inline buffer does not hold that generation's value. `header_only`: the `latest`
    that named generation `gen` in no slot; a descriptor that does not describe the value while
    `latest` stays put is then corruption, not a reason to go to the slot."""
    latest = u64(mm, H_LATEST)
    if latest >> 8 != gen:
        return None

    def unusable(what):
        if header_only is not None and u64(mm, H_LATEST) == header_only:
            raise Invalid(f"corrupt: latest names generation {gen} in no slot, but {what}")
        return None

    # 2. Buffer gen % 2 must hold generation gen.
    b = gen % 2
    if u64(mm, H_INLINE_DESC + 16 * b) != gen:
        return unusable(f"descriptor {b} is not that generation's")
    # 3. Length and tag, checked before use.
    meta = u64(mm, H_INLINE_DESC + 16 * b + 8)
    length, tag = meta & 0xFFFFFFFF, meta >> 32
    inline_capacity = INLINE_CAPACITY if version >= 6 else 128
    if length > min(inline_capacity, capacity) or tag > MAX_TAG:
        return unusable(f"descriptor {b} says {length} bytes, tag {tag}")
    # 4. Copy.
    start = H_INLINE_DATA + 128 * b
    payload = mm[start:start + length]
    # 5. Keep it only if latest did not move or (version 6) the buffer's stamp still names gen.
    if u64(mm, H_LATEST) != latest and not (
        version >= 6 and u64(mm, H_INLINE_STAMP + 128 * b) == gen
    ):
        return None
    return tag, payload


# --- MessagePack (section 7.1), for the "value" field ------------------------------------------

MAX_DEPTH = 127  # containers nested deeper are refused, as mmf refuses them


class Unreadable(Exception):
    pass


def _b64(b):
    return base64.b64encode(b).decode()


class _Special(str):
    """NaN or an infinity, which section 7.1 renders as a string; as a map key, as that
    string's JSON text (`"\\"NaN\\""`), as any key that is not a string."""


def _float(x):
    if math.isnan(x):
        return _Special("NaN")
    if math.isinf(x):
        return _Special("Infinity" if x > 0 else "-Infinity")
    return x


def _float_text(x):
    """A float's shortest text as mmf writes it (for a map key, where the text is the key):
    Python's repr but for the exponent's form, which mmf writes without zeros before its digits
    (`1e-7`), and from 1e-5 to 1e-1 without one (`0.00001`)."""
    text = repr(x)
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    e = int(exponent)
    if e == -5:
        sign, digits = ("-", mantissa[1:]) if mantissa.startswith("-") else ("", mantissa)
        return sign + "0.0000" + digits.replace(".", "")
    return f"{mantissa}e{'+' if e > 0 else '-'}{abs(e)}"


def _key_text(k):
    """A decoded value as compact JSON text, as section 7.1 renders a map key that is not a
    string (a plain string within it as JSON, NaN and the infinities as their strings)."""
    if isinstance(k, _Special):
        return json.dumps(str(k))
    if isinstance(k, float):
        return _float_text(k)
    if isinstance(k, list):
        return "[" + ",".join(_key_text(v) for v in k) + "]"
    if isinstance(k, dict):
        return "{" + ",".join(_key_text(key) + ":" + _key_text(v) for key, v in k.items()) + "}"
    return json.dumps(k, ensure_ascii=False)


def msgpack_value(data):
    """One MessagePack document, exactly (nothing after it), as JSON-ready Python values."""
    pos = 0

    def take(n):
        nonlocal pos
        if n > len(data) - pos:
            raise Unreadable("a length beyond the payload's end")
        b = data[pos:pos + n]
        pos += n
        return b

    def unpack(fmt):
        return struct.unpack(fmt, take(struct.calcsize(fmt)))[0]

    def ext(t, n):
        return {"$ext": {"type": t, "data": _b64(take(n))}}

    def string(n):
        raw = take(n)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return {"$bin": _b64(raw)}

    def one(depth):
        m = take(1)[0]
        if m <= 0x7F:
            return m
        if m >= 0xE0:
            return m - 0x100
        if 0xA0 <= m <= 0xBF:
            return string(m & 0x1F)
        if 0x90 <= m <= 0x9F or m in (0xDC, 0xDD):
            n = m & 0x0F if m <= 0x9F else unpack(">H" if m == 0xDC else ">I")
            if depth >= MAX_DEPTH:
                raise Unreadable("nested more than 127 deep")
            return [one(depth + 1) for _ in range(n)]
        if 0x80 <= m <= 0x8F or m in (0xDE, 0xDF):
            n = m & 0x0F if m <= 0x8F else unpack(">H" if m == 0xDE else ">I")
            if depth >= MAX_DEPTH:
                raise Unreadable("nested more than 127 deep")
            out = {}
            for _ in range(n):
                k = one(depth + 1)
                if not isinstance(k, str) or isinstance(k, _Special):
                    k = _key_text(k)
                    if len(k.encode()) > 256:
                        cut = k.encode()[:253].decode("utf-8", "ignore")
                        k = cut + "\u2026"
                if k in out:
                    raise Unreadable(f"the key {k!r} twice in one map")
                out[k] = one(depth + 1)
            return out
        simple = {0xC0: None, 0xC2: False, 0xC3: True}
        if m in simple:
            return simple[m]
        sized = {0xC4: ">B", 0xC5: ">H", 0xC6: ">I"}
        if m in sized:
            return {"$bin": _b64(take(unpack(sized[m])))}
        if m in (0xD9, 0xDA, 0xDB):
            return string(unpack({0xD9: ">B", 0xDA: ">H", 0xDB: ">I"}[m]))
        ints = {0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q",
                0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q"}
        if m in ints:
            return unpack(ints[m])
        if m == 0xCA:
            return _float(unpack(">f"))
        if m == 0xCB:
            return _float(unpack(">d"))
        fixext = {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}
        if m in fixext:
            return ext(unpack(">b"), fixext[m])
        if m in (0xC7, 0xC8, 0xC9):
            n = unpack({0xC7: ">B", 0xC8: ">H", 0xC9: ">I"}[m])
            return ext(unpack(">b"), n)
        raise Unreadable(f"the reserved marker {m:#04x}")

    if not data:
        raise Unreadable("an empty payload")
    v = one(0)
    if pos != len(data):
        raise Unreadable(f"{len(data) - pos} bytes after the document")
    return v


def _json_depth(text):
    """The deepest nesting of arrays and objects in JSON text (brackets in strings not counted)."""
    depth = deepest = 0
    in_string = escaped = False
    for c in text:
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
    return deepest


def _no_half_surrogate(s):
    """`s`, if it holds no half of a surrogate pair (Python's json module takes a lone `\\ud800`;
    a whole pair it joins into one character)."""
    if any(0xD800 <= ord(c) <= 0xDFFF for c in s):
        raise Unreadable(f"half a surrogate pair in {s!r}")
    return s


def _strict_json(text):
    """JSON text as section 7.1 takes it, where Python's json module is laxer: no key twice in
    one object, no NaN or infinities (`NaN`, `1e400`), no integer outside i64/u64, no half
    surrogate pair, fewer than 128 levels of nesting; `-0` is the float -0.0."""
    if _json_depth(text) > MAX_DEPTH:
        raise Unreadable(f"JSON nested {MAX_DEPTH + 1} levels deep or more")

    def pairs(items):
        out = {}
        for k, v in items:
            if k in out:
                raise Unreadable(f"the key {k!r} twice in one object")
            out[k] = v
        return out

    def integer(text):
        if text == "-0":
            return -0.0
        n = int(text)
        if not -(1 << 63) <= n < 1 << 64:
            raise Unreadable(f"the integer {text} is outside i64 and u64")
        return n

    def strings(v):
        if isinstance(v, str):
            _no_half_surrogate(v)
        elif isinstance(v, list):
            for x in v:
                strings(x)
        elif isinstance(v, dict):
            for k, x in v.items():
                _no_half_surrogate(k)
                strings(x)
        return v

    def constant(name):
        raise Unreadable(f"{name} is no JSON number")

    def number(text):
        x = float(text)
        if math.isinf(x):
            raise Unreadable(f"the number {text} is beyond the range of f64")
        return x

    return strings(json.loads(text, object_pairs_hook=pairs, parse_constant=constant,
                              parse_float=number, parse_int=integer))


def value_of(tag, payload):
    """The "value" (or "value_error") fields of a payload of `tag`."""
    try:
        if tag == 2:
            return {"value": payload.decode("utf-8")}
        if tag == 3:
            return {"value": msgpack_value(payload)}
        if tag == 4:
            return {"value": _strict_json(payload.decode("utf-8"))}
    except (Unreadable, UnicodeDecodeError, ValueError, RecursionError) as e:
        return {"value_error": str(e)}
    return {}


def channel_path(arg):
    """Section 1: a name without '/' is the file mmf.NAME in the shared-memory directory."""
    if "/" in arg:
        return arg
    return os.path.join(os.environ.get("MMF_SHM_DIR") or "/dev/shm", "mmf." + arg)


def open_locked(path, in_shm):
    """Section 9 step 1: open the file (not through a link, `in_shm`: for a name in the
    shared-memory directory), hold the shared flock of section 8 while it is used, and make sure
    the name still leads to it (a prune or replacement may have removed it, or renamed another
    file over it, meanwhile); else open the name again."""
    for _ in range(100):
        flags = os.O_RDONLY | os.O_CLOEXEC | (os.O_NOFOLLOW if in_shm else 0)
        fd = os.open(path, flags)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            there = os.lstat(path) if in_shm else os.stat(path)
            mine = os.fstat(fd)
        except BaseException:
            os.close(fd)
            raise
        if (there.st_dev, there.st_ino) == (mine.st_dev, mine.st_ino):
            return os.fdopen(fd, "rb")
        os.close(fd)
    raise Invalid("the name kept leading to another file while it was opened")


def decode(path, in_shm):
    with open_locked(path, in_shm) as f:
        size = f.seek(0, 2)
        if size < MIN_FILE or size % 8 != 0:
            f.seek(0)
            head = f.read(8)
            if head == bytes(len(head)):
                raise Invalid(f"channel is not initialised yet ({size} bytes)")
            if head == b"MMFCHAN\0":
                raise Invalid(f"corrupt: file is only {size} bytes")
            raise Invalid(f"not an mmf channel (first bytes {head.hex()})")
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        geometry = validate(mm, size)
        gen, tag, payload = read_unpinned(mm, *geometry)
        header_only = u64(mm, H_LATEST) == (gen << 8 | NO_SLOT)
        inline = False
        # The descriptor of the latest generation, when there is one, must agree with the slot.
        desc = H_INLINE_DESC + 16 * (gen % 2)
        if u64(mm, desc) == gen and u64(mm, H_LATEST) >> 8 == gen:
            meta = u64(mm, desc + 8)
            # Compare only if nothing moved meanwhile (a live writer may be rewriting it).
            stable = u64(mm, desc) == gen and u64(mm, H_LATEST) >> 8 == gen
            # All ones describes a value of 4 GiB or more, which readers do not use (section 4.1).
            usable = meta != 0xFFFF_FFFF_FFFF_FFFF
            if stable and usable and (meta & 0xFFFFFFFF, meta >> 32) != (len(payload), tag):
                raise Invalid(f"descriptor {meta:#x} disagrees with the slot ({len(payload)}, {tag})")
        if u64(mm, H_FLAGS) & FLAG_CHECKSUM == 0:
            got = read_inline(mm, geometry[0], geometry[4], gen)
            if got is not None:
                if got != (tag, payload):
                    raise Invalid(f"inline value {got} differs from the slot's {(tag, payload)}")
                inline = True
    finally:
        mm.close()
    return {
        "generation": gen,
        "tag": tag,
        "len": len(payload),
        "payload_hex": payload.hex(),
        "inline": inline,
        "header_only": header_only,
        **value_of(tag, payload),
    }


def main(argv):
    if len(argv) != 2:
        print(f"usage: {argv[0]} NAME|PATH", file=sys.stderr)
        return 2
    try:
        result = decode(channel_path(argv[1]), "/" not in argv[1])
    except Invalid as e:
        print(f"{argv[1]}: {e}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:
        print(f"{argv[1]}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
