"""The tile arena: one buffer of exactly the SRAM budget, and a checker that records the real peak.

The tiler placed every buffer (Prepare); the arena refuses any claim that would leave the budget or
overlap a live claim, and remembers the highest byte ever claimed. Memory is owned by the arena; claims
are (offset, size) views handed to kernels as (buffer, offset) pairs. Owners are small integers (a
tensor id, 1000 + tensor id for an input band, or a negative role) so claiming allocates nothing.
"""

from . import ArenaError

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

# Claim owners: tensor ids are >= 0, scratch roles are negative. Only STAGING is public (host tools);
# ops.py and runtime.py keep private copies of the others (tests/test_micropython.py checks them).
STAGING = -1
_WEIGHTS = const(-2)
_OUT_BAND = const(-3)
_ACC = const(-4)
_INPUT_ROW = const(-5)
_KEPT = const(-100)          # - op index: the group tiles a fused-chain member keeps (device/ops.py)
_ROLE = {STAGING: "the staging blocks", _WEIGHTS: "the weight tile", _OUT_BAND: "the output band",
         _ACC: "the accumulator", _INPUT_ROW: "the input row"}


def owner_name(o):
    if o <= _KEPT:
        return "the kept weight tiles of op #%d" % (_KEPT - o)
    return _ROLE.get(o) or ("tensor %d" % o if o < 1000 else "the band of tensor %d" % (o - 1000))


class Arena:
    def __init__(self, size):
        self.size = size
        self.buf = bytearray(size)
        self.mv = memoryview(self.buf)
        self.peak = 0
        self._live = {}          # owner -> (offset, size)

    def claim(self, owner, off, n):
        end = off + n
        if off < 0 or end > self.size:
            raise ArenaError("%s needs arena bytes %d..%d but the budget is %d" % (owner_name(owner), off, end, self.size))
        for o, (s, m) in self._live.items():
            if off < s + m and s < end and o != owner:
                raise ArenaError("%s (bytes %d..%d) overlaps live %s (bytes %d..%d)"
                                 % (owner_name(owner), off, end, owner_name(o), s, s + m))
        self._live[owner] = (off, n)
        if end > self.peak:
            self.peak = end
        return off

    def release(self, owner):
        self._live.pop(owner, None)

    def release_all(self, keep):
        for o in list(self._live):
            if o != keep:
                del self._live[o]
