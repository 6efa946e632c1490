"""Execution of the schedule: one op band by band, or a fused chain of ops band by band.

A band computes output rows [r0, r1) of one op: input rows come from the arena (resident), the card
(spilled, via Runtime._fetch) or the previous op's chain buffer; the weights are one verified tile per
channel group (read once when the op has one group, once per band otherwise); the output goes straight
into a resident tensor, into the op's chain buffer, or into a band buffer spilled row by row.

A chain (ops flagged OPF_CHAIN, ended by the first op without it) runs band by band of its last op:
for each band the rows every earlier op must produce are derived backwards with the same band
arithmetic the tiler used, then the ops run forwards. The intermediate tensors exist only as those
bands (halo rows are recomputed, never spilled), so a large early feature map costs no card I/O.
"""

from .schedule import in_rows

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

# Copies of format.py / opdefs.py (private consts take no RAM in a .mpy; tests check they agree)
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
_PF_N = const(0)
_PF_OUT_C = const(1)
_PP_PAD_L = const(1)
_PP_ZP = const(0)
_P_KH = const(4)
_P_KW = const(5)
_P_SH = const(6)
_NO_BUF = const(4294967295)
_OPF_SPLIT_IN = const(4)
_OPF_SPLIT_OUT = const(2)
_OPF_WRES = const(8)
_OPF_KSPLIT = const(16)
_T_ARENA = const(0)
_T_CHAIN = const(4)
_T_SPILL = const(1)
_TF_CHUNKED = const(1)


_OUT_BAND = const(-3)        # arena claim owners (copies of arena.py's)
_ACC = const(-4)
_WEIGHTS = const(-2)
_KEPT = const(-100)          # - op index: a chain member's kept group tiles
_SPATIAL = const((_OP_CONV, _OP_DWCONV, _OP_MAXPOOL, _OP_AVGPOOL))


class _State:
    """Per-op values fixed for all its bands."""

    def __init__(self, rt, i, op):
        T = rt.T
        self.i = i
        self.op = op
        self.out = out = T[op.out]
        self.orb = out[4] * out[5]
        self.cout = op.p[_PF_OUT_C] if op.kind == _OP_FC else out[5]
        self.weighted = op.first_tile != _NO_BUF
        self.wts = None
        self.wl = None          # a chain member's kept group tiles (OPF_WRES, run_chain)
        self.band = -1          # a split convolution's band whose input rows are fetched (offs, rows)
        self.offs = self.rows = None
        for tid in op.ins:
            _claim_resident(rt, tid)
        _claim_resident(rt, op.out)
        if op.kind == _OP_MEAN:
            off = rt.arena.claim(_ACC, op.bufs[6], 4 * self.cout)
            for j in range(off, off + 4 * self.cout):
                rt.mv[j] = 0
            self.acc = rt.mv[off:off + 4 * self.cout]
        if op.kind == _OP_PAD:
            self.fill = op.p[_PP_ZP] & 0xFF      # written in place: no row-sized fill buffer

    def height(self, rt):
        """Rows the op's bands run over."""
        op = self.op
        if op.kind == _OP_MEAN:
            return rt.T[op.ins[0]][3]
        return 1 if op.kind == _OP_FC else self.out[3]


def _claim_resident(rt, tid):
    t = rt.T[tid]
    base = rt.T[t[2]]
    if base[0] == _T_ARENA:
        rt.arena.claim(t[2], base[6], base[3] * base[4] * base[5])
    elif base[0] == _T_CHAIN:
        rt.arena.claim(t[2], base[6], 1)      # the chain buffer's extent is checked when it is written


def run_op(rt, i, op):
    st = _State(rt, i, op)
    if op.flags & _OPF_KSPLIT:
        run_ksplit(rt, st)
        return
    H = st.height(rt)
    R = op.band_rows
    for band in range(op.n_bands):
        r0 = band * R
        run_band(rt, st, r0, min(H, r0 + R), band == op.n_bands - 1)


def run_ksplit(rt, st):
    """A 1x1 convolution whose input is stored in channel chunks (OPF_KSPLIT): per band and output
    group, int32 sums over the input chunk by chunk - each chunk's card units read row by row into the
    one-row input buffer, with its weight tile - then requantized with the bias, multipliers and shifts
    the group's last tile carries. The input is read once per group, the weights once per band. An
    output band placed at the accumulator's offset is requantized over it (each int8 lands on int32
    sums already consumed): only where a group's band is written before the next group's sums start,
    one output group or a chunked output (device/validate.py)."""
    T = rt.T
    k = rt.k
    mv = rt.mv
    op = st.op
    p = op.p
    bufs = op.bufs
    tid = op.ins[0]
    t = T[tid]
    ch = t[6]
    n = t[5] // ch
    ub = t[4] * ch
    out = st.out
    orb = st.orb
    cout = st.cout
    W = out[4]
    H = out[3]
    R = op.band_rows
    q = op.group
    stats = rt.stats
    chunked = _chunked(T, out, q)           # output written group by group, in channel chunks of q
    over = bufs[5] == bufs[6]               # the output band over the accumulator
    nq = cout // q
    rt.arena.claim(1000 + tid, bufs[0], ub)
    for band in range(op.n_bands):
        r0 = band * R
        r1 = min(H, r0 + R)
        npix = (r1 - r0) * W
        a = rt.arena.claim(_ACC, bufs[6], 4 * npix * q)
        if out[0] == _T_ARENA:
            o_off = out[6] + r0 * orb
        elif over:
            o_off = a
        else:
            o_off = rt.arena.claim(_OUT_BAND, bufs[5], npix * q if chunked else (r1 - r0) * orb)
        for q0 in range(0, cout, q):
            g = min(q, cout - q0)
            t0 = op.first_tile + q0 // q * n
            acc = mv[a:a + 4 * npix * g]
            for u in range(n):
                wts = rt._load_tile(t0 + u, bufs[4], st.i)
                for r in range(r0, r1):
                    rt._read_row(tid, r * n + u, mv, bufs[0], ub)
                    e = 4 * (r - r0) * W * g
                    k.conv_acc_s8(p, acc[e:e + 4 * W * g], mv, bufs[0], W, wts, g, ch, u == 0)
                stats["macs"] += npix * g * ch
                stats["tiles"] += 1
            if chunked:                       # p's out_c is q: the band buffer holds this group
                k.acc_out_s8(p, mv, o_off, acc, npix, wts, g, ch)
                for r in range(r0, r1):
                    rt._write_row(op.out, r * nq + q0 // q, mv, o_off + (r - r0) * W * q, W * q)
                continue
            k.acc_out_s8(p, mv, o_off + q0, acc, npix, wts, g, ch)
        if out[0] != _T_ARENA and not chunked:
            for r in range(r0, r1):
                rt._write_row(op.out, r, mv, o_off + (r - r0) * orb)
    rt.arena.release(1000 + tid)


def _chunked(T, out, group):
    """1 if output tensor `out` is stored in channel chunks, which must be the op's groups; else 0."""
    b = T[out[2]]
    if not b[1] & _TF_CHUNKED:
        return 0
    if b[6] != group:
        raise ValueError("tensor %d is stored in chunks of %d channels; op writes groups of %d" % (out[2], b[6], group))
    return 1


def run_chain(rt, members):
    """members: [(op index, op)] of one fused chain, in order."""
    sts = [_State(rt, i, op) for i, op in members]
    for st in sts:
        if st.weighted and st.op.flags & _OPF_WRES:     # every group's tile, kept for the whole chain
            st.wl = []
            off = st.op.bufs[4]
            for t in range(st.op.n_groups):
                w = rt._load_tile(st.op.first_tile + t, off, st.i)
                st.wl.append(w)
                off += (len(w) + 7) // 8 * 8
            rt.arena.release(_WEIGHTS)      # the tiles stay claimed, as one region of this member
            rt.arena.claim(_KEPT - st.i, st.op.bufs[4], off - st.op.bufs[4])
        elif st.weighted:
            st.wts = rt._load_tile(st.op.first_tile, st.op.bufs[4], st.i)
    last = sts[-1]
    H = last.height(rt)
    R = last.op.band_rows
    n = len(sts)
    lo = [0] * n
    hi = [0] * n
    for band in range(last.op.n_bands):
        lo[n - 1] = band * R
        hi[n - 1] = min(H, lo[n - 1] + R)
        for j in range(n - 1, 0, -1):
            op = sts[j].op
            prev = sts[j - 1].op.out
            for m in range(len(op.ins)):
                if op.ins[m] == prev:
                    lo[j - 1], hi[j - 1] = in_rows(op.kind, op.p, op.pad_t, rt.T[prev][3], lo[j], hi[j])
        lastb = band == last.op.n_bands - 1
        j = 0
        while j < n:
            st = sts[j]
            if st.op.flags & _OPF_SPLIT_OUT:       # a convolution feeding a depthwise, group by group
                dst = sts[j + 1]
                for g0 in range(0, st.cout, st.op.group):
                    if hi[j] > lo[j]:
                        run_band(rt, st, lo[j], hi[j], lastb, g0)
                    if hi[j + 1] > lo[j + 1]:
                        run_band(rt, dst, lo[j + 1], hi[j + 1], lastb, g0)
                    if rt.on_rows is not None and hi[j] > lo[j]:
                        rt.on_rows(st.op.out, lo[j], hi[j], st.out[6], st.out[4] * st.op.group, g0)
                if j + 1 < n - 1 and rt.on_rows is not None and hi[j + 1] > lo[j + 1]:
                    rt.on_rows(dst.op.out, lo[j + 1], hi[j + 1], dst.out[6], dst.orb, -1)
                j += 2
                continue
            if hi[j] > lo[j]:
                run_band(rt, st, lo[j], hi[j], lastb)
                if j < n - 1 and rt.on_rows is not None:
                    rt.on_rows(st.op.out, lo[j], hi[j], st.out[6], st.orb, -1)
            j += 1


def run_band(rt, st, r0, r1, last_band, only=-1):
    """Output rows [r0, r1) of one op; `only` >= 0: just the channel group starting there (split pairs)."""
    T = rt.T
    k = rt.k
    mv = rt.mv
    op = st.op
    kind = op.kind
    p = op.p
    bufs = op.bufs
    out = st.out
    orb = st.orb
    cout = st.cout
    narrow = op.flags & _OPF_SPLIT_OUT
    if narrow and only > 0 and st.band == r0:
        offs = st.offs        # a later group of a split band: its input rows are in the band buffers already
        rows = st.rows
    else:
        offs = []
        rows = []
        for j in range(len(op.ins)):
            tid = op.ins[j]
            a, b = in_rows(kind, p, op.pad_t, T[tid][3], r0, r1)
            if op.flags & _OPF_SPLIT_IN:      # the producer's buffer holds one group: rows of w * group bytes
                t = T[tid]
                offs.append(t[6] + (a - rt.chain_start[tid]) * t[4] * op.group)
            else:
                offs.append(rt._fetch(tid, a, b, bufs[j]))
            rows.append((a, b))
        if narrow:
            st.offs = offs
            st.rows = rows
            st.band = r0
    where = out[0]
    chunked = 0
    if kind == _OP_MEAN:
        o_off = out[6] if where == _T_ARENA else bufs[5]
    elif where == _T_ARENA:
        o_off = out[6] + r0 * orb
    elif where == _T_CHAIN:
        o_off = out[6]
        rt.chain_start[op.out] = r0
        rt.arena.claim(op.out, o_off, (r1 - r0) * (out[4] * op.group if narrow else orb))
    elif _chunked(T, out, op.group):   # one group of a split depthwise: written unit by unit below
        if only < 0 or kind != _OP_DWCONV:
            raise ValueError("tensor %d is stored in channel chunks: only a split depthwise writes it" % out[2])
        o_off = rt.arena.claim(_OUT_BAND, bufs[5], (r1 - r0) * out[4] * op.group)
        chunked = 1
    else:
        o_off = rt.arena.claim(_OUT_BAND, bufs[5], (r1 - r0) * orb if kind != _OP_FC else out[3] * orb)
    stats = rt.stats
    if kind in _SPATIAL:
        a, b = rows[0]
        y0 = r0 * p[_P_SH] - op.pad_t - a
        oh = r1 - r0
        if st.weighted:
            cin = T[op.ins[0]][5]
            for g0 in range(0, cout, op.group):
                if only >= 0 and g0 != only:
                    continue
                g = min(op.group, cout - g0)
                if op.flags & _OPF_WRES and st.wl is not None:
                    st.wts = st.wl[g0 // op.group]
                elif st.wts is None or op.n_groups > 1:
                    st.wts = rt._load_tile(op.first_tile + g0 // op.group, bufs[4], st.i)
                if kind == _OP_CONV:
                    k.conv_s8(p, mv, o_off + (0 if narrow else g0), mv, offs[0], b - a, y0, oh, st.wts, g)
                    stats["macs"] += oh * out[4] * g * p[_P_KH] * p[_P_KW] * cin
                elif op.flags & _OPF_SPLIT_IN:    # input channel k of the narrow buffer is channel g0 + k
                    k.dwconv_s8(p, mv, o_off + (0 if chunked else g0), mv, offs[0], b - a, y0, oh, st.wts, 0, g)
                    stats["macs"] += oh * out[4] * g * p[_P_KH] * p[_P_KW]
                else:
                    k.dwconv_s8(p, mv, o_off + g0, mv, offs[0], b - a, y0, oh, st.wts, g0, g)
                    stats["macs"] += oh * out[4] * g * p[_P_KH] * p[_P_KW]
                stats["tiles"] += 1
        else:
            if kind == _OP_MAXPOOL:
                k.maxpool_s8(p, mv, o_off, mv, offs[0], b - a, y0, oh, 0, cout)
            else:
                k.avgpool_s8(p, mv, o_off, mv, offs[0], b - a, y0, oh, 0, cout)
            stats["tiles"] += 1
    elif kind == _OP_FC:
        tin = T[op.ins[0]]
        nrows = tin[3] * tin[4] * tin[5] // p[_PF_N]
        for g0 in range(0, cout, op.group):
            g = min(op.group, cout - g0)
            if st.wts is None or op.n_groups > 1:
                st.wts = rt._load_tile(op.first_tile + g0 // op.group, bufs[4], st.i)
            k.fc_s8(p, mv, o_off + g0, mv, offs[0], nrows, st.wts, g)
            stats["macs"] += nrows * p[_PF_N] * g
            stats["tiles"] += 1
    else:
        n = (r1 - r0) * orb
        if kind == _OP_ADD:
            k.add_s8(p, mv, o_off, mv, offs[0], mv, offs[1], n)
        elif kind == _OP_REQUANT:
            k.requant_s8(p, mv, o_off, mv, offs[0], n)
        elif kind == _OP_LEAKY_RELU:
            k.leaky_relu_s8(p, mv, o_off, mv, offs[0], n)
        elif kind == _OP_SOFTMAX:
            k.softmax_s8(p, mv, o_off, mv, offs[0], (r1 - r0) * out[4])
        elif kind == _OP_MEAN:
            tin = T[op.ins[0]]
            a, b = rows[0]
            if only >= 0:      # one channel group of a split convolution: its slice of the sums
                if cout % op.group:
                    raise ValueError("a MEAN's channel groups must divide its %d channels" % cout)
                k.mean_acc_s8(st.acc[4 * only:4 * (only + op.group)], mv, offs[0], (b - a) * tin[4], op.group)
            else:
                k.mean_acc_s8(st.acc, mv, offs[0], (b - a) * tin[4], tin[5])
        elif kind == _OP_CONCAT:
            _concat(rt, op, o_off, offs, (r1 - r0) * out[4], cout)
        elif kind == _OP_PAD:
            _pad(rt, op, o_off, offs[0], rows[0], r0, r1, st.fill)
        else:
            raise ValueError("op kind %d" % kind)
        stats["tiles"] += 1
    if chunked:                          # the group's units of every band row
        n = cout // op.group
        ub = out[4] * op.group
        for r in range(r0, r1):
            rt._write_row(op.out, r * n + only // op.group, mv, o_off + (r - r0) * ub, ub)
        _release(rt, op)
        return
    if only >= 0 and only + op.group < cout:
        # A split op's rows are complete (and spilled) only after its last group; a split convolution
        # keeps its input band claimed for the next group, which reads it again from SRAM.
        if not narrow:
            _release(rt, op)
        return
    if kind == _OP_MEAN and last_band:
        k.mean_out_s8(p, mv, o_off, st.acc)
    if where != _T_ARENA and where != _T_CHAIN:
        if kind == _OP_MEAN:
            if last_band:
                rt._write_row(op.out, 0, mv, o_off)
        elif kind == _OP_FC:
            for r in range(out[3]):
                rt._write_row(op.out, r, mv, o_off + r * orb)
        else:
            for r in range(r0, r1):
                rt._write_row(op.out, r, mv, o_off + (r - r0) * orb)
    _release(rt, op)


def _release(rt, op):
    for j in range(len(op.ins)):
        rt.arena.release(1000 + op.ins[j])


def _concat(rt, op, o_off, offs, npix, cout):
    mv = rt.mv
    c0 = 0
    for j in range(len(op.ins)):
        c = rt.T[op.ins[j]][5]
        src = offs[j]
        dst = o_off + c0
        for x in range(npix):
            mv[dst + x * cout:dst + x * cout + c] = mv[src + x * c:src + x * c + c]
        c0 += c


def _pad(rt, op, o_off, in_off, rows, r0, r1, fill):
    mv = rt.mv
    tin = rt.T[op.ins[0]]
    out = rt.T[op.out]
    irb = tin[4] * tin[5]
    orb = out[4] * out[5]
    left = op.p[_PP_PAD_L] * out[5]
    a, b = rows
    for y in range(r0, r1):
        d = o_off + (y - r0) * orb
        iy = y - op.pad_t
        if a <= iy < b:
            _fill(mv, d, left, fill)
            s = in_off + (iy - a) * irb
            mv[d + left:d + left + irb] = mv[s:s + irb]
            _fill(mv, d + left + irb, orb - left - irb, fill)
        else:
            _fill(mv, d, orb, fill)


def _fill(mv, d, n, v):
    """mv[d:d+n] = v, by doubling copies inside the arena (log2(n) slice copies, no n-byte buffer)."""
    if n <= 0:
        return
    mv[d] = v
    k = 1
    while k < n:
        m = k if k < n - k else n - k
        mv[d + k:d + k + m] = mv[d:d + m]
        k += m
