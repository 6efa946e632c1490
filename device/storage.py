"""Storage: MicroPython's block-device protocol over a file, and the counting card the runtime uses.

Any object with `readblocks(n, buf)`, `writeblocks(n, buf)` and `ioctl(op, arg)` works: a board's
`machine.SDCard`, micropython-lib's `sdcard.SDCard`, or `FileBlockDevice` here (an SD card emulated by
a file of 512-byte blocks, used by the emulator and by the unix port).

    bdev = FileBlockDevice("card.img")
    card = Card(bdev, erase_block=65536)
    card.read(0, memoryview(buf)[:512])
"""

from . import CardError

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_BLOCK = const(512)
_IOCTL_SYNC = const(3)
_IOCTL_BLK_COUNT = const(4)
_IOCTL_BLK_SIZE = const(5)
_RETRIES = const(3)


class FileBlockDevice:
    """A file as a block device of 512-byte blocks (MicroPython's block-device protocol)."""

    def __init__(self, path, *, create_blocks=0):
        if create_blocks:
            with open(path, "wb") as f:
                f.seek(create_blocks * _BLOCK - 1)
                f.write(b"\0")
        self._f = open(path, "r+b")
        self._f.seek(0, 2)
        self._nblocks = self._f.tell() // _BLOCK

    def readblocks(self, block, buf, offset=0):
        self._f.seek(block * _BLOCK + offset)
        n = self._f.readinto(buf)
        if n != len(buf):
            raise OSError(5, "read past the end of the card")

    def writeblocks(self, block, buf, offset=0):
        self._f.seek(block * _BLOCK + offset)
        self._f.write(buf)

    def ioctl(self, op, arg):
        if op == _IOCTL_BLK_COUNT:
            return self._nblocks
        if op == _IOCTL_BLK_SIZE:
            return _BLOCK
        if op == _IOCTL_SYNC:
            self._f.flush()
        return 0

    def close(self):
        self._f.close()


class Card:
    """Block I/O with bounded retries and counters: blocks read/written, writes per erase block."""

    def __init__(self, bdev, *, erase_block=65536):
        self.bdev = bdev
        self.nblocks = bdev.ioctl(_IOCTL_BLK_COUNT, 0)
        self.erase_block = erase_block
        self.blocks_read = 0
        self.blocks_written = 0
        self.retries = 0
        self.erase_writes = {}       # erase block index -> block writes into it

    def read(self, block, mv):
        n = len(mv) // _BLOCK
        if block < 0 or block + n > self.nblocks:
            raise CardError("read of blocks %d..%d is outside the card (%d blocks)" % (block, block + n - 1, self.nblocks))
        for _ in range(_RETRIES):
            try:
                self.bdev.readblocks(block, mv)
                break
            except OSError:
                self.retries += 1
        else:
            bad = self._one_by_one(block, mv, self.bdev.readblocks)
            if bad is not None:
                raise CardError("card read failed at block %d after %d attempts%s" % (bad, _RETRIES,
                                " (transfer of blocks %d..%d)" % (block, block + n - 1) if n > 1 else ""))
        self.blocks_read += n

    def write(self, block, mv):
        n = len(mv) // _BLOCK
        if block < 0 or block + n > self.nblocks:
            raise CardError("write of blocks %d..%d is outside the card (%d blocks)" % (block, block + n - 1, self.nblocks))
        for _ in range(_RETRIES):
            try:
                self.bdev.writeblocks(block, mv)
                break
            except OSError:
                self.retries += 1
        else:
            bad = self._one_by_one(block, mv, self.bdev.writeblocks)
            if bad is not None:
                raise CardError("card write failed at block %d after %d attempts%s" % (bad, _RETRIES,
                                " (transfer of blocks %d..%d)" % (block, block + n - 1) if n > 1 else ""))
        self.blocks_written += n
        per = self.erase_block // _BLOCK
        ew = self.erase_writes
        for b in range(block // per, (block + n - 1) // per + 1):
            ew[b] = ew.get(b, 0) + 1

    def _one_by_one(self, block, mv, io):
        """After a multi-block transfer failed every retry: move it one block at a time (some cards fail
        multi-block commands only). Returns None if that worked, else the first block that failed every
        retry on its own, so the error names the bad block rather than the start of the transfer."""
        n = len(mv) // _BLOCK
        if n < 2:
            return block
        for i in range(n):
            for _ in range(_RETRIES):
                try:
                    io(block + i, mv[i * _BLOCK:(i + 1) * _BLOCK])
                    break
                except OSError:
                    self.retries += 1
            else:
                return block + i
        return None

    def sync(self):
        self.bdev.ioctl(_IOCTL_SYNC, 0)


class BytesBlockDevice:
    """A bytearray as a block device (host tools and tests)."""

    def __init__(self, data):
        self.data = bytearray(data)

    def readblocks(self, block, buf, offset=0):
        start = block * _BLOCK + offset
        if start + len(buf) > len(self.data):
            raise OSError(5, "read past the end")
        buf[:] = self.data[start:start + len(buf)]

    def writeblocks(self, block, buf, offset=0):
        start = block * _BLOCK + offset
        self.data[start:start + len(buf)] = buf

    def ioctl(self, op, arg):
        if op == _IOCTL_BLK_COUNT:
            return len(self.data) // _BLOCK
        if op == _IOCTL_BLK_SIZE:
            return _BLOCK
        return 0
