"""Read and verify a tile image on the card: header, key, metadata, then tiles on demand.

Everything is checked at load time (magic, version, sizes, key, header and metadata MACs) so the tile
loop can trust the tables; each tile is checked again (CRC, then MAC) when it is read. The load-time
code is in validate.py, which a runtime on MicroPython frees once the image is open.
"""

import struct

from . import ImageError, IntegrityError
from . import crypto as C

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

# Header fields (indices into format.HDR_FIELDS)
_H_VERSION = const(1)
_H_HEADER_LEN = const(2)
_H_IMAGE_ID = const(4)
_H_SRAM_BUDGET = const(6)
_H_ERASE_BLOCK = const(7)
_H_META_BLOCK = const(8)
_H_META_LEN = const(9)
_H_PAYLOAD_BLOCK = const(10)
_H_PAYLOAD_BLOCKS = const(11)
_H_SPILL_BLOCK = const(12)
_H_SPILL_BLOCKS = const(13)
_H_COUNTER_BLOCK = const(14)
_H_COUNTER_BLOCKS = const(15)
_H_TOTAL_BLOCKS = const(16)
_H_N_TENSORS = const(17)
_H_N_OPS = const(18)
_H_N_TILES = const(19)
_H_META_CRC = const(20)
# Copies of format.py / opdefs.py (private consts take no RAM in a .mpy; tests check they agree)
_BLOCK = const(512)
_HDR_END = const(228)
_HDR_FMT = const('<4sHHI16s32sIIIIIIIIIIIIIIIfifiBBHIIII')
_HDR_KCV = const(156)
_HDR_MAC = const(196)
_HDR_META_MAC = const(164)
_MAGIC = const(b'TSWP')
_MAX_P = const(64)
_N_BUFS = const(7)
_OP_FMT = const('<BBBBHHHHHHHHHHIIIIQ')
_OP_SIZE = const(48)
_TAG_LEN = const(32)
_TILE_FMT = const('<IIII')
_TILE_SIZE = const(64)
_T_FMT = const('<BBHIIIIIIi')
_T_SIZE = const(32)
_VERSION = const(1)


try:
    from array import array
except ImportError:  # pragma: no cover
    array = None


class OpRec:
    """One op of the schedule, parsed from the op table (Image.op)."""

    def __init__(self, f, bufs, p):
        self.kind = f[0]
        self.flags = f[3]
        self.ins = f[5:5 + f[1]]
        self.out = f[4]
        self.band_rows, self.n_bands, self.group, self.n_groups, self.pad_t, self.first_tile = f[9:15]
        self.bufs = bufs
        self.p = p
        self.planned = f[15:19]     # peak, io_read, io_write, macs (the planner's figures)


class Image:
    def __init__(self, card, master_key, block, verify=True):
        """Verify the image on `card`; `block` is a 512-byte scratch buffer (memoryview).

        verify=False (host tools that only list the plan) skips the key and MAC checks; such an
        Image cannot read tiles (it has no keys)."""
        from . import validate        # the load-time code: freed again after a runtime's load (validate.forget)
        validate.load(self, card, master_key, block, verify)

    @property
    def h(self):
        """The header as a dict of format.HDR_FIELDS (host tools; the runtime indexes .hd)."""
        from . import format as F
        return dict(zip(F.HDR_FIELDS, self.hd))

    def spill_key(self, card_salt):
        return C.derive(self._master, b"tileswap/spill", self.image_id, card_salt)

    def op(self, i):
        """Op i of the schedule, parsed from the (verified) op table; a new object each call."""
        head = self._ops
        off = self.op_offs[i]
        f = struct.unpack_from(_OP_FMT, head, off)
        off += _OP_SIZE
        bufs = struct.unpack_from("<%dI" % _N_BUFS, head, off)
        return OpRec(f, bufs, array("i", struct.unpack_from("<%di" % f[2], head, off + 4 * _N_BUFS)))

    @property
    def ops(self):
        """Every op as a list (host tools); the runtime parses one op at a time instead."""
        return [self.op(i) for i in range(len(self.op_offs))]

    def tile_record(self, index, block):
        """(offset, length, crc, tag) of tile `index`, read through `block` (one block read)."""
        if not 0 <= index < self.hd[_H_N_TILES]:
            raise ImageError("tile %d does not exist (the image has %d)" % (index, self.hd[_H_N_TILES]))
        pos = self.tiles_off + index * _TILE_SIZE
        self.card.read(self.hd[_H_META_BLOCK] + pos // _BLOCK, block)
        o = pos % _BLOCK
        off, length, crc, _ = struct.unpack_from(_TILE_FMT, block, o)
        if off % _BLOCK or off + length > self.hd[_H_PAYLOAD_BLOCKS] * _BLOCK or length > self.hd[_H_SRAM_BUDGET]:
            raise IntegrityError("tile %d: its record points outside the payload region (card error or tampering)"
                                 % index)
        return off, length, crc, bytes(block[o + 16:o + 16 + _TAG_LEN])
