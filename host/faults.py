"""A fault-injecting SD card: MicroPython's block-device protocol around another block device.

    card = FaultyBlockDevice(FileBlockDevice("card.img"), "read-error=0.01,power-loss=random:5000", seed=1)
    rt = Runtime(card, key, kernels)          # ... raises PowerLoss at the chosen block write
    rt = Runtime(FileBlockDevice("card.img"), key, kernels)    # "reboot": a new runtime on the same card

A spec is a comma-separated list of `name=value` (`parse_spec` explains a bad one):

| name          | value            | what the card does                                                     |
|---------------|------------------|------------------------------------------------------------------------|
| read-error    | P (0..1)         | a readblocks call fails with EIO, transiently (the data is fine)        |
| write-error   | P                | a writeblocks call fails with EIO before writing anything               |
| bitflip       | P                | every bit read is flipped with probability P (the card keeps it right)  |
| bad-block     | N or N-M         | those blocks fail every read and write with EIO (repeatable)            |
| short-write   | P                | a write stores only a prefix of its bytes, then reports EIO             |
| torn-write    | P                | a write stores only a prefix and reports success (silent corruption)    |
| power-loss    | at:N, random:N, block:B[:K], counter[:K], spill[:K] | one power loss (below)  |
| seed          | integer          | the random seed (overrides the `seed` argument)                         |

Power loss happens during the N-th block written through this device (`at:N`; `random:N` picks N
uniformly in 1..N from the seed), or during the K-th write that touches card block B, the counter
region or the spill region (the regions come from the image header in block 0 of the card). The
blocks of that write before the failing one are stored, the failing block is torn (a random prefix
of it is new, the rest keeps its old bytes or reads as erased 0xFF), then `PowerLoss` is raised and
the device stays dead: every later call raises `PowerLoss` too.

A "prefix" of a short or torn write is byte-granular and shorter than the write. `injected` counts
every fault injected, by name; `events` keeps the first `max_events` of them as (name, block, detail).
"""

import errno
import math
import random

from ..device import format as F
from .errors import HostError

_BLOCK = F.BLOCK

RATES = ("read-error", "write-error", "bitflip", "short-write", "torn-write")
NAMES = RATES + ("bad-block", "power-loss", "seed")
REGIONS = ("counter", "spill")


class FaultSpecError(HostError):
    """A --faults spec that cannot be parsed; the message names the part at fault and shows an example."""

    exit_code = 2


class PowerLoss(BaseException):
    """Power failed during a write (injected). Not an OSError and not an Exception: nothing on a real
    device runs after power loss, so no retry loop or error handler of the runtime may catch it."""

    def __init__(self, block, write_index):
        BaseException.__init__(self, "power lost while writing card block %d (block write #%d)" % (block, write_index)
                               if block is not None else "the card lost power earlier: reboot (a new runtime on it)")
        self.block = block
        self.write_index = write_index


class Spec:
    """A parsed fault spec: rates (name -> probability), bad blocks (a set), power loss, seed."""

    def __init__(self):
        self.rates = dict((n, 0.0) for n in RATES)
        self.bad_blocks = set()
        self.power_loss = None        # ("at", N) | ("random", N) | ("block", B, K) | (region, K)
        self.seed = None
        self.text = ""

    def __repr__(self):
        return "Spec(%r)" % self.text


def _fail(part, why, example):
    raise FaultSpecError("bad fault spec %r: %s (example: %s)" % (part, why, example))


def _int(text, part, example, lo=0):
    try:
        v = int(text, 0)
    except ValueError:
        v = None
    if v is None or v < lo:
        _fail(part, "%r is not an integer >= %d" % (text, lo), example)
    return v


def parse_spec(text):
    """'read-error=0.01,bitflip=1e-5,bad-block=120,power-loss=at:5000' -> Spec. Raises FaultSpecError."""
    spec = Spec()
    spec.text = text = (text or "").strip()
    if not text:
        return spec
    seen = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            _fail(text, "empty entry", "read-error=0.01,bitflip=1e-5")
        name, eq, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if name not in NAMES:
            _fail(part, "unknown fault %r (known: %s)" % (name, ", ".join(NAMES)), "bitflip=1e-5")
        if not eq or not value:
            _fail(part, "%s needs a value" % name, name + ("=120" if name == "bad-block" else "=at:5000"
                                                         if name == "power-loss" else "=0.01"))
        if name != "bad-block" and name in seen:
            _fail(part, "%s is given twice" % name, name + "=...")
        seen.add(name)
        if name in RATES:
            try:
                p = float(value)
            except ValueError:
                p = -1.0
            if not 0.0 <= p <= 1.0 or p != p:
                _fail(part, "%r is not a probability between 0 and 1" % value, name + "=0.01")
            spec.rates[name] = p
        elif name == "bad-block":
            a, dash, b = value.partition("-")
            lo = _int(a, part, "bad-block=120 or bad-block=120-127")
            hi = _int(b, part, "bad-block=120-127") if dash else lo
            if hi < lo or hi - lo > 1 << 20:
                _fail(part, "the range %d-%d is empty or too large" % (lo, hi), "bad-block=120-127")
            spec.bad_blocks.update(range(lo, hi + 1))
        elif name == "seed":
            spec.seed = _int(value, part, "seed=7")
        else:
            spec.power_loss = _parse_power_loss(value, part)
    return spec


def _parse_power_loss(value, part):
    ex = "power-loss=at:5000, power-loss=random:5000, power-loss=counter, power-loss=block:77:2"
    kind, _, rest = value.partition(":")
    args = rest.split(":") if rest else []
    if kind in ("at", "random"):
        if len(args) != 1:
            _fail(part, "%s takes one number, the block write (1-based)" % kind, ex)
        return (kind, _int(args[0], part, ex, lo=1))
    if kind == "block":
        if len(args) not in (1, 2):
            _fail(part, "block takes a card block and optionally which write to it (1-based)", ex)
        return ("block", _int(args[0], part, ex), _int(args[1], part, ex, lo=1) if len(args) == 2 else 1)
    if kind in REGIONS:
        if len(args) > 1:
            _fail(part, "%s takes at most one number, which write to the region (1-based)" % kind, ex)
        return (kind, _int(args[0], part, ex, lo=1) if args else 1)
    _fail(part, "unknown power-loss point %r (known: at, random, block, counter, spill)" % kind, ex)


def card_regions(bdev):
    """{'counter': (first, count), 'spill': (first, count)} from the image header in block 0 of `bdev`."""
    head = bytearray(_BLOCK)
    bdev.readblocks(0, head)
    if bytes(head[:4]) != F.MAGIC:
        raise FaultSpecError("power-loss at a region needs a card holding a tile image (block 0 is not a header)")
    h = F.unpack_named(F.HDR_FMT, F.HDR_FIELDS, head)
    return {"counter": (h["counter_block"], h["counter_blocks"]), "spill": (h["spill_block"], h["spill_blocks"])}


class FaultyBlockDevice:
    """Block device wrapper that injects the faults of `spec` (a Spec or its text), reproducibly from `seed`."""

    def __init__(self, inner, spec, *, seed=0, max_events=1000):
        self.inner = inner
        self.spec = spec if isinstance(spec, Spec) else parse_spec(spec)
        s = self.spec
        self.rng = random.Random(s.seed if s.seed is not None else seed)
        self.injected = dict((n, 0) for n in RATES + ("bad-block", "power-loss"))
        self.events = []
        self.max_events = max_events
        self.reads = 0                 # readblocks calls
        self.block_writes = 0          # blocks written (or begun) through this device
        self.dead = False
        self._pl = None                # ("at", N) or (first_block, count, K): when power fails
        self._pl_hits = 0
        pl = s.power_loss
        if pl is not None:
            if pl[0] == "at":
                self._pl = ("at", pl[1])
            elif pl[0] == "random":
                self._pl = ("at", self.rng.randint(1, pl[1]))
            elif pl[0] == "block":
                self._pl = (pl[1], 1, pl[2])
            else:
                first, count = card_regions(inner)[pl[0]]
                self._pl = (first, count, pl[1])

    # ---- bookkeeping --------------------------------------------------------------------------
    def _event(self, name, block, detail=None):
        self.injected[name] += 1
        if len(self.events) < self.max_events:
            self.events.append((name, block, detail))

    def _alive(self):
        if self.dead:
            raise PowerLoss(None, self.block_writes)

    def _hit(self, name):
        p = self.spec.rates[name]
        return p > 0.0 and self.rng.random() < p

    def _bad(self, block, nblocks):
        bad = self.spec.bad_blocks
        if bad:
            for b in range(block, block + nblocks):
                if b in bad:
                    return b
        return None

    # ---- the block-device protocol --------------------------------------------------------------
    def readblocks(self, block, buf, offset=0):
        self._alive()
        self.reads += 1
        n = (offset + len(buf) + _BLOCK - 1) // _BLOCK
        b = self._bad(block, n)
        if b is not None:
            self._event("bad-block", b, "read")
            raise OSError(errno.EIO, "bad block %d" % b)
        if self._hit("read-error"):
            self._event("read-error", block)
            raise OSError(errno.EIO, "read error")
        if offset:
            self.inner.readblocks(block, buf, offset)
        else:
            self.inner.readblocks(block, buf)
        p = self.spec.rates["bitflip"]
        if p > 0.0:
            self._flip_bits(block, buf, offset, p)

    def _flip_bits(self, block, buf, offset, p):
        nbits = len(buf) * 8
        pos = -1
        rng = self.rng
        if p >= 1.0:
            gap = lambda: 0
        else:
            lq = math.log1p(-p)
            gap = lambda: int(math.log(1.0 - rng.random()) / lq)
        while True:
            pos += gap() + 1         # geometric gaps between flipped bits: one draw per flip, not per bit
            if pos >= nbits:
                return
            buf[pos >> 3] ^= 1 << (pos & 7)
            self._event("bitflip", block + (offset + (pos >> 3)) // _BLOCK, pos)

    def writeblocks(self, block, buf, offset=0):
        self._alive()
        data = bytes(buf)
        n = (offset + len(data) + _BLOCK - 1) // _BLOCK
        cut = self._power_cut(block, n, offset)
        if cut is not None:
            self._tear(block, data, offset, cut)
            self.dead = True
            self._event("power-loss", block + (offset + cut) // _BLOCK, cut)
            raise PowerLoss(block + (offset + cut) // _BLOCK, self.block_writes)
        self.block_writes += n
        b = self._bad(block, n)
        if b is not None:
            self._event("bad-block", b, "write")
            raise OSError(errno.EIO, "bad block %d" % b)
        if self._hit("write-error"):
            self._event("write-error", block)
            raise OSError(errno.EIO, "write error")
        if self._hit("short-write"):
            k = self.rng.randrange(len(data))
            self._store(block, data[:k], offset)
            self._event("short-write", block + (offset + k) // _BLOCK, k)
            raise OSError(errno.EIO, "short write")
        if self._hit("torn-write"):
            k = self.rng.randrange(len(data))
            self._tear(block, data, offset, k)
            self._event("torn-write", block + (offset + k) // _BLOCK, k)
            return
        self._store(block, data, offset)

    def _power_cut(self, block, n, offset):
        """Byte position in this write's data where power fails, or None."""
        pl = self._pl
        if pl is None:
            return None
        if pl[0] == "at":
            k = pl[1] - self.block_writes - 1            # the failing block, counted within this write
            if not 0 <= k < n:
                return None
        else:
            first, count, want = pl
            lo, hi = max(block, first), min(block + n, first + count)
            if lo >= hi:
                return None
            self._pl_hits += 1
            if self._pl_hits < want:
                return None
            k = self.rng.randrange(lo, hi) - block
        self._pl = None
        return max(0, k * _BLOCK + self.rng.randrange(_BLOCK) - offset)

    def _store(self, block, data, offset):
        if not data:
            return
        if offset:
            self.inner.writeblocks(block, data, offset)
        else:
            self.inner.writeblocks(block, data)

    def _tear(self, block, data, offset, cut):
        """Store data[:cut]; the block holding the first unwritten byte is torn: its new bytes before the
        cut are stored, the rest keeps its old contents or reads as erased (0xFF); later blocks are untouched."""
        cut = min(cut, len(data))
        end = offset + cut                         # byte position of the cut, from the start of `block`
        tb = end // _BLOCK
        if tb * _BLOCK > offset:
            self._store(block, data[:tb * _BLOCK - offset], offset)
        if end == offset + len(data) and end % _BLOCK == 0:
            return                                 # the whole write made it
        blk = bytearray(_BLOCK)
        self.inner.readblocks(block + tb, blk)
        if self.rng.random() < 0.5:
            blk[:] = b"\xff" * _BLOCK
        s = max(offset, tb * _BLOCK)
        blk[s - tb * _BLOCK:end - tb * _BLOCK] = data[s - offset:cut]
        self.inner.writeblocks(block + tb, blk)

    def ioctl(self, op, arg):
        self._alive()
        return self.inner.ioctl(op, arg)

    def close(self):
        if hasattr(self.inner, "close"):
            self.inner.close()
