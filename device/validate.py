"""Load-time checks of an image's tensor and op tables, so the tile loop can trust them.

The MACs prove who wrote the tables, not that they are sane: an image from a buggy tool or a malicious
key holder must still fail here, with an ImageError naming the record, and never deep in the tile loop.
"""

from . import ImageError
from . import format as F
from . import opdefs as D

# Parameters and inputs each op kind takes.
_P_LEN = {
    D.OP_CONV: D.P_SPATIAL_LEN, D.OP_DWCONV: D.P_SPATIAL_LEN, D.OP_MAXPOOL: D.P_SPATIAL_LEN,
    D.OP_AVGPOOL: D.P_SPATIAL_LEN, D.OP_FC: D.PF_LEN, D.OP_ADD: D.PA_LEN, D.OP_MEAN: D.PM_LEN,
    D.OP_PAD: D.PP_LEN, D.OP_CONCAT: 0, D.OP_SOFTMAX: D.PS_LEN, D.OP_REQUANT: D.PR_LEN,
    D.OP_LEAKY_RELU: D.PL_LEN,
}
_MAX_ELEMS = 1 << 28


def check_tables(img):
    h = img.h
    budget = h["sram_budget"]
    T = img.tensors
    n = len(T)
    for i, t in enumerate(T):
        kind, _, base, th, tw, tc, aoff, sblk, slot, _ = t
        if kind > F.T_CHAIN or base >= n or th < 1 or tw < 1 or tc < 1 or th * tw * tc > _MAX_ELEMS:
            raise ImageError("tensor %d: malformed record (kind %d, base %d, shape %dx%dx%d)" % (i, kind, base, th, tw, tc))
        b = T[base]
        if b[2] != base or b[0] != kind or b[3] * b[4] * b[5] != th * tw * tc:
            raise ImageError("tensor %d: its storage tensor %d does not match it" % (i, base))
        if base != i:
            continue
        if kind == F.T_ARENA and aoff + th * tw * tc > budget:
            raise ImageError("tensor %d: bytes %d..%d are outside the %d-byte arena" % (i, aoff, aoff + th * tw * tc, budget))
        if kind == F.T_CHAIN and aoff >= budget:
            raise ImageError("tensor %d: its band buffer is outside the arena" % i)
        if kind in (F.T_SPILL, F.T_INPUT, F.T_OUTPUT):
            if slot != F.slot_blocks(tw * tc) or sblk + th * slot > h["spill_blocks"]:
                raise ImageError("tensor %d: its rows do not fit the spill region" % i)
    for i in range(len(img.op_offs)):
        op = img.op(i)
        want = _P_LEN.get(op.kind)
        if want is None or (want and len(op.p) != want) or (op.kind == D.OP_CONCAT and len(op.p)):
            raise ImageError("op #%d: unknown kind %d or %d parameters" % (i, op.kind, len(op.p)))
        nin = len(op.ins)
        if (op.kind == D.OP_ADD and nin != 2) or (op.kind == D.OP_CONCAT and not 1 <= nin <= 4) or \
                (op.kind not in (D.OP_ADD, D.OP_CONCAT) and nin != 1):
            raise ImageError("op #%d: %d inputs" % (i, nin))
        if not (1 <= op.band_rows and 1 <= op.n_bands and 1 <= op.group and 1 <= op.n_groups):
            raise ImageError("op #%d: bands %dx%d, groups %dx%d" % (i, op.n_bands, op.band_rows, op.n_groups, op.group))
        if op.first_tile != F.NO_BUF and op.first_tile + op.n_groups > h["n_tiles"]:
            raise ImageError("op #%d: tiles %d..%d do not exist" % (i, op.first_tile, op.first_tile + op.n_groups))
        if (op.first_tile != F.NO_BUF) != (op.kind in (D.OP_CONV, D.OP_DWCONV, D.OP_FC)):
            raise ImageError("op #%d: weights where there are none, or none where there must be" % i)
        for b in op.bufs:
            if b != F.NO_BUF and b >= budget:
                raise ImageError("op #%d: a scratch buffer at %d is outside the %d-byte arena" % (i, b, budget))
        if want == D.P_SPATIAL_LEN:
            p = op.p
            if min(p[D.P_KH], p[D.P_KW], p[D.P_SH], p[D.P_SW], p[D.P_DH], p[D.P_DW], p[D.P_DM]) < 1:
                raise ImageError("op #%d: window, stride or dilation below 1" % i)
