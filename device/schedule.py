"""Band arithmetic shared by the tiler (which sizes buffers with it) and the runtime (which runs it).

One definition, so the planner's buffer sizes and the device's reads can never disagree.
"""


try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

# Copies of format.py / opdefs.py (private consts take no RAM in a .mpy; tests check they agree)
_OP_AVGPOOL = const(6)
_OP_CONV = const(1)
_OP_DWCONV = const(2)
_OP_FC = const(3)
_OP_MAXPOOL = const(5)
_OP_PAD = const(8)
_P_DH = const(8)
_P_KH = const(4)
_P_SH = const(6)



def in_rows(kind, p, pad_t, in_h, r0, r1):
    """Input view rows [a, b) that output band rows [r0, r1) of an op need (clipped to the input)."""
    if kind == _OP_CONV or kind == _OP_DWCONV or kind == _OP_MAXPOOL or kind == _OP_AVGPOOL:
        sh = p[_P_SH]
        a = r0 * sh - pad_t
        b = (r1 - 1) * sh - pad_t + (p[_P_KH] - 1) * p[_P_DH] + 1
    elif kind == _OP_PAD:
        a = r0 - pad_t
        b = r1 - pad_t
    elif kind == _OP_FC:
        a = 0
        b = in_h
    else:  # elementwise, concatenation, softmax; MEAN's bands run over its input rows
        a = r0
        b = r1
    if a < 0:
        a = 0
    if b > in_h:
        b = in_h
    if b < a:
        b = a
    return a, b


def cover(row_bytes, base_row_bytes, a, b):
    """Base rows [ra, rb) that hold view rows [a, b) (a RESHAPE view may have another row size)."""
    if b <= a:
        return 0, 0
    return (a * row_bytes) // base_row_bytes, -(-(b * row_bytes) // base_row_bytes)


def fresh(pa, pz, ra, rz):
    """First card row a band must fetch when its input buffer still holds rows [pa, pz) from the
    previous band of the same op: rows [ra, fresh) are kept (moved to the buffer start), rows
    [fresh, rz) are read. Bands only move down, so the rows kept are the previous band's tail."""
    if pa <= ra < pz:
        return pz if pz < rz else rz
    return ra
