"""Execution of one op of the schedule: bands of rows outside, channel groups inside.

Input bands come from the arena (resident) or the card (spilled, via Runtime._fetch); weights are one
verified tile per channel group, read once when the op has a single group and once per band otherwise;
outputs go straight into a resident tensor or into a band buffer that is spilled row by row.
"""

from . import format as F
from . import opdefs as D
from .arena import ACC, OUT_BAND
from .schedule import in_rows

_SPATIAL = (D.OP_CONV, D.OP_DWCONV, D.OP_MAXPOOL, D.OP_AVGPOOL)


def _claim_resident(rt, tid):
    t = rt.T[tid]
    base = rt.T[t[2]]
    if base[0] == F.T_ARENA:
        rt.arena.claim(t[2], base[6], base[3] * base[4] * base[5])


def run_op(rt, i, op):
    T = rt.T
    k = rt.k
    mv = rt.mv
    kind = op.kind
    p = op.p
    bufs = op.bufs
    out = T[op.out]
    out_res = out[0] == F.T_ARENA
    for tid in op.ins:
        _claim_resident(rt, tid)
    _claim_resident(rt, op.out)
    orb = out[4] * out[5]
    if kind == D.OP_FC:
        cout = p[D.PF_OUT_C]
    else:
        cout = out[5]
    weighted = op.first_tile != F.NO_BUF
    H = T[op.ins[0]][3] if kind == D.OP_MEAN else (1 if kind == D.OP_FC else out[3])
    R = op.band_rows
    wts = None
    if kind == D.OP_MEAN:
        acc_off = rt.arena.claim(ACC, bufs[6], 4 * cout)
        for j in range(acc_off, acc_off + 4 * cout):
            mv[j] = 0
        acc = mv[acc_off:acc_off + 4 * cout]
    if kind == D.OP_PAD:
        fill = bytes([p[D.PP_ZP] & 0xFF]) * orb
    for band in range(op.n_bands):
        r0 = band * R
        r1 = min(H, r0 + R)
        offs = []
        rows = []
        for j in range(len(op.ins)):
            tid = op.ins[j]
            a, b = in_rows(kind, p, op.pad_t, T[tid][3], r0, r1)
            offs.append(rt._fetch(tid, a, b, bufs[j]))
            rows.append((a, b))
        if kind == D.OP_MEAN:
            o_off = out[6] if out_res else bufs[5]
        elif out_res:
            o_off = out[6] + r0 * orb
        else:
            o_off = rt.arena.claim(OUT_BAND, bufs[5], (r1 - r0) * orb if kind != D.OP_FC else out[3] * orb)
        if kind in _SPATIAL:
            a, b = rows[0]
            y0 = r0 * p[D.P_SH] - op.pad_t - a
            oh = r1 - r0
            tin = T[op.ins[0]]
            if weighted:
                for g0 in range(0, cout, op.group):
                    g = min(op.group, cout - g0)
                    if wts is None or op.n_groups > 1:
                        wts = rt._load_tile(op.first_tile + g0 // op.group, bufs[4], i)
                    if kind == D.OP_CONV:
                        k.conv_s8(p, mv, o_off + g0, mv, offs[0], b - a, y0, oh, wts, g)
                        rt.stats["macs"] += oh * out[4] * g * p[D.P_KH] * p[D.P_KW] * tin[5]
                    else:
                        k.dwconv_s8(p, mv, o_off + g0, mv, offs[0], b - a, y0, oh, wts, g0, g)
                        rt.stats["macs"] += oh * out[4] * g * p[D.P_KH] * p[D.P_KW]
                    rt.stats["tiles"] += 1
            else:
                if kind == D.OP_MAXPOOL:
                    k.maxpool_s8(p, mv, o_off, mv, offs[0], b - a, y0, oh, 0, cout)
                else:
                    k.avgpool_s8(p, mv, o_off, mv, offs[0], b - a, y0, oh, 0, cout)
                rt.stats["tiles"] += 1
        elif kind == D.OP_FC:
            tin = T[op.ins[0]]
            nrows = tin[3] * tin[4] * tin[5] // p[D.PF_N]
            for g0 in range(0, cout, op.group):
                g = min(op.group, cout - g0)
                if wts is None or op.n_groups > 1:
                    wts = rt._load_tile(op.first_tile + g0 // op.group, bufs[4], i)
                k.fc_s8(p, mv, o_off + g0, mv, offs[0], nrows, wts, g)
                rt.stats["macs"] += nrows * p[D.PF_N] * g
                rt.stats["tiles"] += 1
        else:
            n = (r1 - r0) * orb
            if kind == D.OP_ADD:
                k.add_s8(p, mv, o_off, mv, offs[0], mv, offs[1], n)
            elif kind == D.OP_REQUANT:
                k.requant_s8(p, mv, o_off, mv, offs[0], n)
            elif kind == D.OP_SOFTMAX:
                k.softmax_s8(p, mv, o_off, mv, offs[0], (r1 - r0) * out[4])
            elif kind == D.OP_MEAN:
                tin = T[op.ins[0]]
                a, b = rows[0]
                k.mean_acc_s8(acc, mv, offs[0], (b - a) * tin[4], tin[5])
            elif kind == D.OP_CONCAT:
                _concat(rt, op, o_off, offs, (r1 - r0) * out[4], cout)
            elif kind == D.OP_PAD:
                _pad(rt, op, o_off, offs[0], rows[0], r0, r1, fill)
            else:
                raise ValueError("op kind %d" % kind)
            rt.stats["tiles"] += 1
        if kind == D.OP_MEAN and band == op.n_bands - 1:
            k.mean_out_s8(p, mv, o_off, acc)
        if not out_res:
            if kind == D.OP_MEAN:
                if band == op.n_bands - 1:
                    rt._write_row(op.out, 0, mv, o_off)
            elif kind == D.OP_FC:
                for r in range(out[3]):
                    rt._write_row(op.out, r, mv, o_off + r * orb)
            else:
                for r in range(r0, r1):
                    rt._write_row(op.out, r, mv, o_off + (r - r0) * orb)
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
    left = op.p[D.PP_PAD_L] * out[5]
    a, b = rows
    for y in range(r0, r1):
        d = o_off + (y - r0) * orb
        iy = y - op.pad_t
        if a <= iy < b:
            mv[d:d + left] = fill[:left]
            s = in_off + (iy - a) * irb
            mv[d + left:d + left + irb] = mv[s:s + irb]
            mv[d + left + irb:d + orb] = fill[:orb - left - irb]
        else:
            mv[d:d + orb] = fill
