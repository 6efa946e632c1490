"""Load-time checks of an image: header, key, header and metadata MACs (`load`, the body of
Image.__init__), then the tensor and op tables (`check_tables`), so the tile loop can trust them. Only
needed while an image is opened: a runtime on MicroPython drops this module afterwards (`forget`).

The MACs prove who wrote the tables, not that they are sane: an image from a buggy tool or a malicious
key holder must still fail here, with an ImageError naming the record, and never deep in the tile loop.
"""

import binascii
import gc
import struct
import sys
from array import array

from . import CardError, ImageError, IntegrityError, KeyMismatch
from . import crypto as C
from .arena import STAGING, Arena
from .counters import Counters
from .image import Image
from .storage import Card

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

# Header fields (indices into format.HDR_FIELDS)
_H_SRAM_BUDGET = const(6)
_H_SPILL_BLOCKS = const(13)
_H_N_TILES = const(19)
_H_VERSION = const(1)
_H_HEADER_LEN = const(2)
_H_IMAGE_ID = const(4)
_H_ERASE_BLOCK = const(7)
_H_META_BLOCK = const(8)
_H_META_LEN = const(9)
_H_PAYLOAD_BLOCK = const(10)
_H_PAYLOAD_BLOCKS = const(11)
_H_SPILL_BLOCK = const(12)
_H_COUNTER_BLOCK = const(14)
_H_COUNTER_BLOCKS = const(15)
_H_TOTAL_BLOCKS = const(16)
_H_N_TENSORS = const(17)
_H_N_OPS = const(18)
_H_META_CRC = const(20)
_H_IMAGE_VERSION = const(31)
_STAGING = const(1024)
_LOADS = const(8)    # loads of the header and tables (a few KB: at a high bit-flip rate, often hit)
_BUDGET_AT = const(4 + 2 + 2 + 4 + 16 + 32)   # sram_budget's offset in the header (format.HDR_FMT)
_MAX_ARENA = const(1 << 24)
# Copies of format.py / opdefs.py (private consts take no RAM in a .mpy; tests check they agree)
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
_TILE_FMT = const('<IIII')
_TILE_SIZE = const(64)
_T_FMT = const('<BBHIIIIIIi')
_T_SIZE = const(32)
_VERSION = const(1)
_BLOCK = const(512)
_TAG_LEN = const(32)
_OP_ADD = const(4)
_OP_AVGPOOL = const(6)
_OP_CONCAT = const(9)
_OP_CONV = const(1)
_OP_DWCONV = const(2)
_OP_FC = const(3)
_OP_LEAKY_RELU = const(12)
_OP_MAXPOOL = const(5)
_OP_MEAN = const(7)
_OP_PAD = const(8)
_OP_REQUANT = const(11)
_OP_SOFTMAX = const(10)
_PA_LEN = const(12)
_PF_LEN = const(6)
_PL_LEN = const(6)
_PM_LEN = const(6)
_PP_LEN = const(2)
_PR_LEN = const(4)
_PS_LEN = const(5)
_P_DH = const(8)
_P_DM = const(15)
_P_DW = const(9)
_P_KH = const(4)
_P_KW = const(5)
_P_OUT_C = const(3)
_P_SH = const(6)
_P_SPATIAL_LEN = const(16)
_P_SW = const(7)
_NO_BUF = const(4294967295)
_T_ARENA = const(0)
_T_CHAIN = const(4)
_T_INPUT = const(2)
_T_OUTPUT = const(3)
_T_SPILL = const(1)
_TF_CHUNKED = const(1)
_OPF_KSPLIT = const(16)
_OPF_CHAIN = const(1)
_OPF_WRES = const(8)
_PF_OUT_C = const(1)
_OPF_ALL = const(31)          # every flag format.py defines


# Parameters and inputs each op kind takes.
_P_LEN = const((            # indexed by op kind (1 CONV .. 12 LEAKY_RELU); -1: no such kind
    -1, _P_SPATIAL_LEN, _P_SPATIAL_LEN, _PF_LEN, _PA_LEN, _P_SPATIAL_LEN, _P_SPATIAL_LEN, _PM_LEN, _PP_LEN, 0,
    _PS_LEN, _PR_LEN, _PL_LEN,
))
_MAX_ELEMS = const(1 << 28)


def check_tables(img):
    h = img.hd
    budget = h[_H_SRAM_BUDGET]
    T = img.tensors
    n = len(T)
    for i, t in enumerate(T):
        kind, flags, base, th, tw, tc, aoff, sblk, slot, _ = t
        if kind > _T_CHAIN or base >= n or th < 1 or tw < 1 or tc < 1 or th * tw * tc > _MAX_ELEMS:
            raise ImageError("tensor %d: malformed record (kind %d, base %d, shape %dx%dx%d)" % (i, kind, base, th, tw, tc))
        b = T[base]
        if b[2] != base or b[0] != kind or b[3] * b[4] * b[5] != th * tw * tc:
            raise ImageError("tensor %d: its storage tensor %d does not match it" % (i, base))
        if base != i:
            continue
        if kind == _T_ARENA and aoff + th * tw * tc > budget:
            raise ImageError("tensor %d: bytes %d..%d are outside the %d-byte arena" % (i, aoff, aoff + th * tw * tc, budget))
        if kind == _T_CHAIN and aoff >= budget:
            raise ImageError("tensor %d: its band buffer is outside the arena" % i)
        if flags & ~_TF_CHUNKED or (flags and kind != _T_SPILL):
            raise ImageError("tensor %d: flags %d on a tensor of kind %d" % (i, flags, kind))
        if kind in (_T_SPILL, _T_INPUT, _T_OUTPUT):
            unit, units = tw * tc, 1
            if flags:          # channel chunks: units that fit the two staging blocks, whole units per row
                if aoff < 1 or aoff >= tc or tc % aoff or tw * aoff + _TAG_LEN > 2 * _BLOCK:
                    raise ImageError("tensor %d: chunks of %d channels do not divide its %d channels into "
                                     "units of at most two blocks" % (i, aoff, tc))
                unit, units = tw * aoff, tc // aoff
            if slot != (unit + _TAG_LEN + _BLOCK - 1) // _BLOCK or sblk + th * units * slot > h[_H_SPILL_BLOCKS]:
                raise ImageError("tensor %d: its rows do not fit the spill region" % i)
    chained = 0              # the previous op's OPF_CHAIN: this op is a chain member
    for i in range(len(img.op_offs)):
        op = img.op(i)
        want = _P_LEN[op.kind] if op.kind < len(_P_LEN) else -1
        if want < 0 or (want and len(op.p) != want) or (op.kind == _OP_CONCAT and len(op.p)):
            raise ImageError("op #%d: unknown kind %d or %d parameters" % (i, op.kind, len(op.p)))
        if op.flags & ~_OPF_ALL or (op.flags & _OPF_WRES and not (chained or op.flags & _OPF_CHAIN)) or \
                (op.flags & _OPF_KSPLIT and (chained or op.flags & _OPF_CHAIN)):
            raise ImageError("op #%d: flags %d (kept weights outside a chain, or a K-split inside one)" % (i, op.flags))
        chained = op.flags & _OPF_CHAIN
        nin = len(op.ins)
        if (op.kind == _OP_ADD and nin != 2) or (op.kind == _OP_CONCAT and not 1 <= nin <= 4) or \
                (op.kind not in (_OP_ADD, _OP_CONCAT) and nin != 1):
            raise ImageError("op #%d: %d inputs" % (i, nin))
        if not (1 <= op.band_rows and 1 <= op.n_bands and 1 <= op.group and 1 <= op.n_groups):
            raise ImageError("op #%d: bands %dx%d, groups %dx%d" % (i, op.n_bands, op.band_rows, op.n_groups, op.group))
        nt = op.n_groups
        if op.flags & _OPF_KSPLIT:      # a 1x1 convolution over an input stored in channel chunks
            t = T[op.ins[0]] if nin == 1 and op.ins[0] < n else None
            p = op.p
            if (op.kind != _OP_CONV or t is None or t[2] != op.ins[0] or not t[1] & _TF_CHUNKED
                    or p[_P_KH] != 1 or p[_P_KW] != 1 or p[_P_SH] != 1 or p[_P_SW] != 1 or op.pad_t
                    or op.bufs[0] == _NO_BUF or op.bufs[6] == _NO_BUF):
                raise ImageError("op #%d: a K-split op that is not a 1x1 convolution of a chunked tensor" % i)
            nt *= t[5] // t[6]
            o = T[op.out]
            ck = T[o[2]][1] & _TF_CHUNKED       # chunks of its group, its band one group wide; over its
            if (ck and (o[2] != op.out or T[o[2]][6] != op.group or p[_P_OUT_C] != op.group)) or (
                    op.bufs[5] == op.bufs[6] and o[5] != op.group and not ck):     # sums: one group or chunked
                raise ImageError("op #%d: a K-split output band (chunked, or over the accumulator) is not one group"
                                 % i)
        if op.first_tile != _NO_BUF and op.first_tile + nt > h[_H_N_TILES]:
            raise ImageError("op #%d: tiles %d..%d do not exist" % (i, op.first_tile, op.first_tile + nt))
        cout = op.p[_PF_OUT_C] if op.kind == _OP_FC else T[op.out][5]
        if op.first_tile != _NO_BUF and op.n_groups != (cout + op.group - 1) // op.group:
            raise ImageError("op #%d: %d groups of %d do not cover its %d channels" % (i, op.n_groups, op.group, cout))
        if op.bufs[6] != _NO_BUF and op.bufs[6] & 3:
            raise ImageError("op #%d: its int32 accumulator at %d is not 4-byte aligned" % (i, op.bufs[6]))
        if (op.first_tile != _NO_BUF) != (op.kind in (_OP_CONV, _OP_DWCONV, _OP_FC)):
            raise ImageError("op #%d: weights where there are none, or none where there must be" % i)
        if chained and i == len(img.op_offs) - 1:
            raise ImageError("op #%d: chained to a next op that does not exist" % i)
        for b in op.bufs:
            if b != _NO_BUF and b >= budget:
                raise ImageError("op #%d: a scratch buffer at %d is outside the %d-byte arena" % (i, b, budget))
        if want == _P_SPATIAL_LEN:
            p = op.p
            if min(p[_P_KH], p[_P_KW], p[_P_SH], p[_P_SW], p[_P_DH], p[_P_DW], p[_P_DM]) < 1:
                raise ImageError("op #%d: window, stride or dilation below 1" % i)


def load(self, card, master_key, block, verify):
    """Image.__init__: verify the header, the key and the tables, then parse the tables into `self`."""
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
        _load_meta(self, block, None)
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
    _load_meta(self, block, meta_mac)


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
    check_tables(self)


def open_runtime(rt, bdev, key, kernels, ctr, urandom, on_tensor, nv):
    """Runtime.__init__: the arena first, then the image (verified, retried), the rollback check and the
    counters. Ends by freeing this module's code (MicroPython), which nothing needs once the image is open."""
    rt.card = Card(bdev)
    rt._blk = memoryview(bytearray(_BLOCK))
    # The arena is the one large block: take it from a clean heap, before the tables are parsed
    # (their many small objects would fragment it). Its size is checked again once authenticated.
    rt.card.read(0, rt._blk)
    budget = struct.unpack_from("<I", rt._blk, _BUDGET_AT)[0]
    if bytes(rt._blk[0:4]) == _MAGIC and _STAGING <= budget <= _MAX_ARENA:
        if sys.implementation.name == "micropython":
            gc.collect()             # a compact heap for the arena (a board's small heap); CPython: only time
        rt.arena = Arena(budget)
    else:
        rt.arena = None
    for _ in range(_LOADS):        # a bit flipped on the bus must not fail the load: read it all again
        try:
            img = Image(rt.card, key, rt._blk)
            break
        except (IntegrityError, KeyMismatch, ImageError) as e:
            err = e
            rt.card.retries += 1
    else:
        raise err
    rt.img = img
    h = img.hd
    if nv is not None:
        seen = nv.get("image_version", 0)
        if h[_H_IMAGE_VERSION] < seen:
            raise ImageError("image version %d is older than version %d already run on this device: rolled "
                             "back images are refused (compile it again with a higher --image-version)"
                             % (h[_H_IMAGE_VERSION], seen))
        nv["image_version"] = h[_H_IMAGE_VERSION]
    rt.card.erase_block = h[_H_ERASE_BLOCK]
    if not _STAGING <= h[_H_SRAM_BUDGET] <= _MAX_ARENA:
        raise ImageError("malformed header: an SRAM budget of %d bytes" % h[_H_SRAM_BUDGET])
    if rt.arena is None or rt.arena.size != h[_H_SRAM_BUDGET]:
        rt.arena = None
        if sys.implementation.name == "micropython":
            gc.collect()             # a compact heap for the arena (a board's small heap); CPython: only time
        rt.arena = Arena(h[_H_SRAM_BUDGET])
    rt.arena.claim(STAGING, 0, _STAGING)
    rt.mv = rt.arena.mv
    rt.k = kernels
    rt.ctr = ctr or C.EcbCtr().xor
    rt.counters = Counters(rt.card, h[_H_COUNTER_BLOCK], rt._blk, urandom)
    if rt.counters.seq == 0:
        rt.counters.save()
    rt.k_spill = img.spill_key(rt.counters.card_salt)
    rt.on_tensor = on_tensor     # for tests: called with each op's output tensor id
    rt.on_rows = None            # for tests: (tensor, row0, row1, arena offset, row bytes) per chain band
    rt.chain_start = {}          # chain tensor -> first row held in its buffer
    rt.held = {}                 # input band buffer -> (tensor, first row, end row) it holds (runtime._fetch)
    rt.n = None                  # nonce counter of the inference in progress
    rt.stats = dict((f, 0) for f in ("bytes_read", "bytes_written", "macs", "tiles"))
    rt.T = img.tensors
    forget()


def forget():
    """MicroPython: drop this module (load-time code only) so its code is freed once an image is open.
    CPython keeps it (host tools open images again and again)."""
    if sys.implementation.name != "micropython":
        return
    pkg = __name__[:__name__.rfind(".")]     # (str.rpartition is optional in MicroPython builds)
    sys.modules.pop(__name__, None)
    p = sys.modules.get(pkg)
    if p is not None and "validate" in dir(p):
        delattr(p, "validate")
