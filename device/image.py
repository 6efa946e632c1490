"""Read and verify a tile image on the card: header, key, metadata, then tiles on demand.

Everything is checked at load time (magic, version, sizes, key, header and metadata MACs) so the tile
loop can trust the tables; each tile is checked again (CRC, then MAC) when it is read.
"""

import binascii
import struct

from . import CardError, ImageError, IntegrityError, KeyMismatch
from . import crypto as C
from . import format as F

try:
    from array import array
except ImportError:  # pragma: no cover
    array = None


class OpRec:
    """One op of the schedule, parsed once at load time."""

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
        if bytes(h[0:4]) != F.MAGIC:
            raise ImageError("not a tileswap image (magic %r, expected %r): pass a .tsi made by `tileswap compile`"
                             % (bytes(h[0:4]), F.MAGIC))
        hd = F.unpack_named(F.HDR_FMT, F.HDR_FIELDS, h)
        if hd["version"] != F.VERSION:
            raise ImageError("image format version %d is not supported (this runtime reads version %d): "
                             "recompile the model with this tileswap" % (hd["version"], F.VERSION))
        if hd["header_len"] != F.BLOCK or hd["meta_block"] != 1:
            raise ImageError("malformed header (header_len %d, meta_block %d)" % (hd["header_len"], hd["meta_block"]))
        self.h = hd
        mblocks = F.blocks_for(hd["meta_len"])
        per = hd["erase_block"] // F.BLOCK
        if (hd["payload_block"] < 1 + mblocks or hd["spill_block"] < hd["payload_block"] + hd["payload_blocks"]
                or per < 1 or hd["spill_block"] % per or hd["spill_blocks"] % per
                or hd["counter_block"] != hd["spill_block"] + hd["spill_blocks"]
                or hd["total_blocks"] != hd["counter_block"] + hd["counter_blocks"] or hd["counter_blocks"] < 2
                or hd["n_tiles"] * F.TILE_SIZE > hd["meta_len"]):
            raise ImageError("malformed header: region sizes are inconsistent")
        if hd["total_blocks"] > card.nblocks:
            raise CardError("the card has %d blocks but the image needs %d: the image is truncated or the card is "
                            "too small" % (card.nblocks, hd["total_blocks"]))
        self.image_id = bytes(hd["image_id"])
        self.verified = verify
        if not verify:
            self.k_mac = None
            self._load_meta(block, None)
            return
        if master_key is None:
            raise KeyMismatch("the image is encrypted: a key is needed (--key KEYFILE or TILESWAP_KEY)")
        if not C.eq(C.key_check(master_key, self.image_id), bytes(h[F.HDR_KCV:F.HDR_KCV + 8])):
            raise KeyMismatch("wrong key: this image was compiled with another key")
        self.k_enc = C.derive(master_key, b"tileswap/enc", self.image_id)
        self.k_mac = C.derive(master_key, b"tileswap/mac", self.image_id)
        self._master = master_key
        if not C.eq(C.hmac_sha256(self.k_mac, b"H", bytes(h[:F.HDR_MAC])), bytes(h[F.HDR_MAC:F.HDR_END])):
            raise IntegrityError("the image header failed its MAC: it was modified after compiling")
        meta_mac = bytes(h[F.HDR_META_MAC:F.HDR_MAC])
        self._load_meta(block, meta_mac)

    def spill_key(self, card_salt):
        return C.derive(self._master, b"tileswap/spill", self.image_id, card_salt)

    def _load_meta(self, block, meta_mac):
        hd = self.h
        n = hd["meta_len"]
        nt = hd["n_tensors"]
        self.tiles_off = n - hd["n_tiles"] * F.TILE_SIZE
        t_end = nt * F.T_SIZE
        most = t_end + hd["n_ops"] * (F.OP_SIZE + 4 * F.N_BUFS + 4 * F.MAX_P) + F.BLOCK
        if nt > 0xFFFF or hd["n_ops"] > 0xFFFF or not 0 <= self.tiles_off <= most:
            raise ImageError("malformed header: %d tensors, %d ops and %d tiles do not fit %d bytes of tables"
                             % (nt, hd["n_ops"], hd["n_tiles"], n))
        if t_end > self.tiles_off:
            raise ImageError("malformed tables: %d tensor records do not fit" % nt)
        # Only the op records stay in memory as bytes (parsed one op at a time when it runs); the tensor
        # records are parsed as they stream past (32 bytes each, 16 to a block); tiles are read on demand.
        self._ops = head = bytearray(self.tiles_off - t_end)
        self.tensors = T = []
        mac = C.Hmac(self.k_mac or b"", b"M")
        crc = 0
        pos = 0
        blk = hd["meta_block"]
        while pos < n:
            self.card.read(blk, block)
            m = min(F.BLOCK, n - pos)
            chunk = block[:m]
            crc = binascii.crc32(chunk, crc)
            mac.update(chunk)
            for o in range(0, min(m, t_end - pos), F.T_SIZE):
                T.append(struct.unpack_from(F.T_FMT, chunk, o))
            a = max(pos, t_end)
            b = min(pos + m, self.tiles_off)
            if a < b:
                head[a - t_end:b - t_end] = chunk[a - pos:b - pos]
            pos += m
            blk += 1
        if crc & 0xFFFFFFFF != hd["meta_crc"]:
            raise IntegrityError("the image's op and tile tables failed their CRC (card error or damaged file)")
        if meta_mac is not None and not C.eq(mac.digest(), meta_mac):
            raise IntegrityError("the image's op and tile tables failed their MAC: they were modified")
        self.op_offs = offs = array("I", range(hd["n_ops"]))
        off = 0
        for i in range(hd["n_ops"]):
            if off + F.OP_SIZE + 4 * F.N_BUFS > len(head):
                raise ImageError("malformed tables: op #%d runs past the op table" % i)
            offs[i] = off
            k = head[off + 2]
            if head[off + 1] > 4 or k > F.MAX_P or off + F.OP_SIZE + 4 * F.N_BUFS + 4 * k > len(head):
                raise ImageError("malformed tables: op #%d has %d inputs and %d parameters" % (i, head[off + 1], k))
            op = self.op(i)
            off += F.OP_SIZE + 4 * F.N_BUFS + 4 * k
            if op.out >= nt or any(t >= nt for t in op.ins):
                raise ImageError("op #%d refers to a tensor that does not exist" % i)
        from .validate import check_tables
        check_tables(self)

    def op(self, i):
        """Op i of the schedule, parsed from the (verified) op table; a new object each call."""
        head = self._ops
        off = self.op_offs[i]
        f = struct.unpack_from(F.OP_FMT, head, off)
        off += F.OP_SIZE
        bufs = struct.unpack_from("<%dI" % F.N_BUFS, head, off)
        return OpRec(f, bufs, array("i", struct.unpack_from("<%di" % f[2], head, off + 4 * F.N_BUFS)))

    @property
    def ops(self):
        """Every op as a list (host tools); the runtime parses one op at a time instead."""
        return [self.op(i) for i in range(len(self.op_offs))]

    def tile_record(self, index, block):
        """(offset, length, crc, tag) of tile `index`, read through `block` (one block read)."""
        if not 0 <= index < self.h["n_tiles"]:
            raise ImageError("tile %d does not exist (the image has %d)" % (index, self.h["n_tiles"]))
        pos = self.tiles_off + index * F.TILE_SIZE
        self.card.read(self.h["meta_block"] + pos // F.BLOCK, block)
        o = pos % F.BLOCK
        off, length, crc, _ = struct.unpack_from(F.TILE_FMT, block, o)
        if off % F.BLOCK or off + length > self.h["payload_blocks"] * F.BLOCK or length > self.h["sram_budget"]:
            raise IntegrityError("tile %d: its record points outside the payload region (card error or tampering)"
                                 % index)
        return off, length, crc, bytes(block[o + 16:o + 16 + F.TAG_LEN])
