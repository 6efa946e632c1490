"""Read and verify a tile image on the card: header, key, metadata, then tiles on demand.

Everything is checked at load time (magic, version, sizes, key, header and metadata MACs) so the tile
loop can trust the tables; each tile is checked again (CRC, then MAC) when it is read.
"""

import binascii
import struct

from . import CardError, ImageError, IntegrityError, KeyMismatch
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
_HDR_FMT = '<4sHHI16s32sIIIIIIIIIIIIIIIfifiBBHIIII'
_HDR_KCV = const(156)
_HDR_MAC = const(196)
_HDR_META_MAC = const(164)
_MAGIC = b'TSWP'
_MAX_P = const(64)
_N_BUFS = const(7)
_OP_FMT = '<BBBBHHHHHHHHHHIIIIQ'
_OP_SIZE = const(48)
_TAG_LEN = const(32)
_TILE_FMT = '<IIII'
_TILE_SIZE = const(64)
_T_FMT = '<BBHIIIIIIi'
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
        self.card = card
        card.read(0, block)
        h = block
        if bytes(h[0:4]) != _MAGIC:
            raise ImageError("not a tileswap image (magic %r, expected %r): pass a .tsi made by `tileswap compile`"
                             % (bytes(h[0:4]), _MAGIC))
        hd = struct.unpack_from(_HDR_FMT, h)
        if hd[_H_VERSION] != _VERSION:
            raise ImageError("image format version %d is not supported (this runtime reads version %d): "
                             "recompile the model with this tileswap" % (hd[_H_VERSION], _VERSION))
        if hd[_H_HEADER_LEN] != _BLOCK or hd[_H_META_BLOCK] != 1:
            raise ImageError("malformed header (header_len %d, meta_block %d)" % (hd[_H_HEADER_LEN], hd[_H_META_BLOCK]))
        self.hd = hd                # the header as a tuple (format.HDR_FIELDS order); .h names it
        mblocks = (hd[_H_META_LEN] + _BLOCK - 1) // _BLOCK
        per = hd[_H_ERASE_BLOCK] // _BLOCK
        if (hd[_H_PAYLOAD_BLOCK] < 1 + mblocks or hd[_H_SPILL_BLOCK] < hd[_H_PAYLOAD_BLOCK] + hd[_H_PAYLOAD_BLOCKS]
                or per < 1 or hd[_H_SPILL_BLOCK] % per or hd[_H_SPILL_BLOCKS] % per
                or hd[_H_COUNTER_BLOCK] != hd[_H_SPILL_BLOCK] + hd[_H_SPILL_BLOCKS]
                or hd[_H_TOTAL_BLOCKS] != hd[_H_COUNTER_BLOCK] + hd[_H_COUNTER_BLOCKS] or hd[_H_COUNTER_BLOCKS] < 2
                or hd[_H_N_TILES] * _TILE_SIZE > hd[_H_META_LEN]):
            raise ImageError("malformed header: region sizes are inconsistent")
        if hd[_H_TOTAL_BLOCKS] > card.nblocks:
            raise CardError("the card has %d blocks but the image needs %d: the image is truncated or the card is "
                            "too small" % (card.nblocks, hd[_H_TOTAL_BLOCKS]))
        self.image_id = bytes(hd[_H_IMAGE_ID])
        self.verified = verify
        if not verify:
            self.k_mac = None
            self._load_meta(block, None)
            return
        if master_key is None:
            raise KeyMismatch("the image is encrypted: a key is needed (--key KEYFILE or TILESWAP_KEY)")
        if not C.eq(C.key_check(master_key, self.image_id), bytes(h[_HDR_KCV:_HDR_KCV + 8])):
            raise KeyMismatch("wrong key: this image was compiled with another key")
        self.k_enc = C.derive(master_key, b"tileswap/enc", self.image_id)
        self.k_mac = C.derive(master_key, b"tileswap/mac", self.image_id)
        self._master = master_key
        if not C.eq(C.hmac_sha256(self.k_mac, b"H", bytes(h[:_HDR_MAC])), bytes(h[_HDR_MAC:_HDR_END])):
            raise IntegrityError("the image header failed its MAC: it was modified after compiling")
        meta_mac = bytes(h[_HDR_META_MAC:_HDR_MAC])
        self._load_meta(block, meta_mac)

    @property
    def h(self):
        """The header as a dict of format.HDR_FIELDS (host tools; the runtime indexes .hd)."""
        from . import format as F
        return dict(zip(F.HDR_FIELDS, self.hd))

    def spill_key(self, card_salt):
        return C.derive(self._master, b"tileswap/spill", self.image_id, card_salt)

    def _load_meta(self, block, meta_mac):
        hd = self.hd
        n = hd[_H_META_LEN]
        nt = hd[_H_N_TENSORS]
        self.tiles_off = n - hd[_H_N_TILES] * _TILE_SIZE
        t_end = nt * _T_SIZE
        most = t_end + hd[_H_N_OPS] * (_OP_SIZE + 4 * _N_BUFS + 4 * _MAX_P) + _BLOCK
        if nt > 0xFFFF or hd[_H_N_OPS] > 0xFFFF or not 0 <= self.tiles_off <= most:
            raise ImageError("malformed header: %d tensors, %d ops and %d tiles do not fit %d bytes of tables"
                             % (nt, hd[_H_N_OPS], hd[_H_N_TILES], n))
        if t_end > self.tiles_off:
            raise ImageError("malformed tables: %d tensor records do not fit" % nt)
        # Only the op records stay in memory as bytes (parsed one op at a time when it runs); the tensor
        # records are parsed as they stream past (32 bytes each, 16 to a block); tiles are read on demand.
        self._ops = head = bytearray(self.tiles_off - t_end)
        self.tensors = T = []
        mac = C.Hmac(self.k_mac or b"", b"M")
        crc = 0
        pos = 0
        blk = hd[_H_META_BLOCK]
        while pos < n:
            self.card.read(blk, block)
            m = min(_BLOCK, n - pos)
            chunk = block[:m]
            crc = binascii.crc32(chunk, crc)
            mac.update(chunk)
            for o in range(0, min(m, t_end - pos), _T_SIZE):
                T.append(struct.unpack_from(_T_FMT, chunk, o))
            a = max(pos, t_end)
            b = min(pos + m, self.tiles_off)
            if a < b:
                head[a - t_end:b - t_end] = chunk[a - pos:b - pos]
            pos += m
            blk += 1
        if crc & 0xFFFFFFFF != hd[_H_META_CRC]:
            raise IntegrityError("the image's op and tile tables failed their CRC (card error or damaged file)")
        if meta_mac is not None and not C.eq(mac.digest(), meta_mac):
            raise IntegrityError("the image's op and tile tables failed their MAC: they were modified")
        self.op_offs = offs = array("I", range(hd[_H_N_OPS]))
        off = 0
        for i in range(hd[_H_N_OPS]):
            if off + _OP_SIZE + 4 * _N_BUFS > len(head):
                raise ImageError("malformed tables: op #%d runs past the op table" % i)
            offs[i] = off
            k = head[off + 2]
            if head[off + 1] > 4 or k > _MAX_P or off + _OP_SIZE + 4 * _N_BUFS + 4 * k > len(head):
                raise ImageError("malformed tables: op #%d has %d inputs and %d parameters" % (i, head[off + 1], k))
            op = self.op(i)
            off += _OP_SIZE + 4 * _N_BUFS + 4 * k
            if op.out >= nt or any(t >= nt for t in op.ins):
                raise ImageError("op #%d refers to a tensor that does not exist" % i)
        from .validate import check_tables
        check_tables(self)

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
