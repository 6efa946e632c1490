"""The tile arena: one buffer of exactly the SRAM budget, and a checker that records the real peak.

The tiler placed every buffer (Prepare); the arena refuses any claim that would leave the budget or
overlap a live claim, and remembers the highest byte ever claimed. Memory is owned by the arena; claims
are (offset, size) views handed to kernels as (buffer, offset) pairs.
"""

from . import ArenaError


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
            raise ArenaError("%s needs arena bytes %d..%d but the budget is %d" % (owner, off, end, self.size))
        for o, (s, m) in self._live.items():
            if off < s + m and s < end and o != owner:
                raise ArenaError("%s (bytes %d..%d) overlaps live %s (bytes %d..%d)" % (owner, off, end, o, s, s + m))
        self._live[owner] = (off, n)
        if end > self.peak:
            self.peak = end
        return off

    def release(self, owner):
        self._live.pop(owner, None)

    def release_all(self, keep=()):
        for o in list(self._live):
            if o not in keep:
                del self._live[o]
