"""Load-time checks of an image's tensor and op tables, so the tile loop can trust them.

The MACs prove who wrote the tables, not that they are sane: an image from a buggy tool or a malicious
key holder must still fail here, with an ImageError naming the record, and never deep in the tile loop.
"""

from . import ImageError

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

# Header fields (indices into format.HDR_FIELDS)
_H_SRAM_BUDGET = const(6)
_H_SPILL_BLOCKS = const(13)
_H_N_TILES = const(19)
# Copies of format.py / opdefs.py (private consts take no RAM in a .mpy; tests check they agree)
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
_P_SH = const(6)
_P_SPATIAL_LEN = const(16)
_P_SW = const(7)
_NO_BUF = const(4294967295)
_T_ARENA = const(0)
_T_CHAIN = const(4)
_T_INPUT = const(2)
_T_OUTPUT = const(3)
_T_SPILL = const(1)


# Parameters and inputs each op kind takes.
_P_LEN = {
    _OP_CONV: _P_SPATIAL_LEN, _OP_DWCONV: _P_SPATIAL_LEN, _OP_MAXPOOL: _P_SPATIAL_LEN,
    _OP_AVGPOOL: _P_SPATIAL_LEN, _OP_FC: _PF_LEN, _OP_ADD: _PA_LEN, _OP_MEAN: _PM_LEN,
    _OP_PAD: _PP_LEN, _OP_CONCAT: 0, _OP_SOFTMAX: _PS_LEN, _OP_REQUANT: _PR_LEN,
    _OP_LEAKY_RELU: _PL_LEN,
}
_MAX_ELEMS = 1 << 28


def check_tables(img):
    h = img.hd
    budget = h[_H_SRAM_BUDGET]
    T = img.tensors
    n = len(T)
    for i, t in enumerate(T):
        kind, _, base, th, tw, tc, aoff, sblk, slot, _ = t
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
        if kind in (_T_SPILL, _T_INPUT, _T_OUTPUT):
            if slot != (tw * tc + _TAG_LEN + _BLOCK - 1) // _BLOCK or sblk + th * slot > h[_H_SPILL_BLOCKS]:
                raise ImageError("tensor %d: its rows do not fit the spill region" % i)
    for i in range(len(img.op_offs)):
        op = img.op(i)
        want = _P_LEN.get(op.kind)
        if want is None or (want and len(op.p) != want) or (op.kind == _OP_CONCAT and len(op.p)):
            raise ImageError("op #%d: unknown kind %d or %d parameters" % (i, op.kind, len(op.p)))
        nin = len(op.ins)
        if (op.kind == _OP_ADD and nin != 2) or (op.kind == _OP_CONCAT and not 1 <= nin <= 4) or \
                (op.kind not in (_OP_ADD, _OP_CONCAT) and nin != 1):
            raise ImageError("op #%d: %d inputs" % (i, nin))
        if not (1 <= op.band_rows and 1 <= op.n_bands and 1 <= op.group and 1 <= op.n_groups):
            raise ImageError("op #%d: bands %dx%d, groups %dx%d" % (i, op.n_bands, op.band_rows, op.n_groups, op.group))
        if op.first_tile != _NO_BUF and op.first_tile + op.n_groups > h[_H_N_TILES]:
            raise ImageError("op #%d: tiles %d..%d do not exist" % (i, op.first_tile, op.first_tile + op.n_groups))
        if (op.first_tile != _NO_BUF) != (op.kind in (_OP_CONV, _OP_DWCONV, _OP_FC)):
            raise ImageError("op #%d: weights where there are none, or none where there must be" % i)
        for b in op.bufs:
            if b != _NO_BUF and b >= budget:
                raise ImageError("op #%d: a scratch buffer at %d is outside the %d-byte arena" % (i, b, budget))
        if want == _P_SPATIAL_LEN:
            p = op.p
            if min(p[_P_KH], p[_P_KW], p[_P_SH], p[_P_SW], p[_P_DH], p[_P_DW], p[_P_DM]) < 1:
                raise ImageError("op #%d: window, stride or dilation below 1" % i)
