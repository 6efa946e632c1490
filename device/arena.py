"""The tile arena: one buffer of exactly the SRAM budget, and a checker that records the real peak.

The tiler placed every buffer (Prepare); the arena refuses any claim that would leave the budget or
overlap a live claim, and remembers the highest byte ever claimed. Memory is owned by the arena; claims
are (offset, size) views handed to kernels as (buffer, offset) pairs. Owners are small integers (a
tensor id, 1000 + tensor id for an input band, or a negative role) so claiming allocates nothing.
"""

from . import ArenaError


STAGING = -1     # claim owners: tensor ids are >= 0, scratch roles are negative
WEIGHTS = -2
OUT_BAND = -3
ACC = -4
INPUT_ROW = -5
_ROLE = {STAGING: "the staging blocks", WEIGHTS: "the weight tile", OUT_BAND: "the output band", ACC: "the MEAN accumulator",
         INPUT_ROW: "the input row"}


def owner_name(o):
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
