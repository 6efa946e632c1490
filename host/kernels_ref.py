"""Naive numpy reference of the tile kernels: the same API as tileswap.host.native.Kernels
(docs/kernels.md), written to be obviously correct rather than fast. Tests check C against this and both
against TensorFlow Lite's reference kernels; keep it boring.

Integer arithmetic follows TFLite's reference kernels literally: int64 / Python ints, gemmlowp's rounding.
"""

import numpy as np

from tileswap.device import opdefs as d

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def wrap32(x):
    """Two's complement int32 wrap-around of a Python int (what C does to an overflowing int32)."""
    return ((int(x) + (1 << 31)) % (1 << 32)) - (1 << 31)


def srdhm(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul: a * b / 2**31, nudged by 1/2 away from zero, then
    truncated toward zero; INT32_MIN * INT32_MIN saturates."""
    if a == INT32_MIN and b == INT32_MIN:
        return INT32_MAX
    v = a * b + ((1 << 30) if a * b >= 0 else 1 - (1 << 30))
    q = abs(v) >> 31
    return wrap32(q if v >= 0 else -q)


def rdbpot(x, e):
    """gemmlowp RoundingDivideByPOT: x / 2**e rounded to nearest, ties away from zero. e >= 32 gives 0, the
    exact answer for the x >= 0 that reach it (a softmax row whose exps sum to 2**28 or more, e.g. 512
    entries equal to the max: TFLite aborts on an assert there)."""
    if e >= 32:
        return 0
    mask = (1 << e) - 1
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if (x & mask) > threshold else 0)


def mbqm(x, mult, shift):
    """TFLite MultiplyByQuantizedMultiplier (double rounding)."""
    left, right = max(shift, 0), max(-shift, 0)
    return rdbpot(srdhm(wrap32(x << left), mult), right)


def mbqm_single(x, mult, shift):
    """TFLite's 64-bit MultiplyByQuantizedMultiplier, which FULLY_CONNECTED uses: one rounding,
    floor((x * mult + 2**(30 - shift)) / 2**(31 - shift)) (ties toward +infinity)."""
    total = 31 - shift
    return (x * mult + (1 << (total - 1))) >> total


def _sat_lshift(x, e):
    """gemmlowp SaturatingRoundingMultiplyByPOT<e> for e > 0: x * 2**e saturated to int32."""
    threshold = (1 << (31 - e)) - 1
    return INT32_MAX if x > threshold else INT32_MIN if x < -threshold else x << e


def _exp_on_negative_values(a):
    """gemmlowp exp_on_negative_values: a is fixed point with 5 integer bits (raw int32, a <= 0); the
    result has 0 integer bits. exp of a's last quarter-interval by a Taylor series around -1/8, then one
    multiplication by exp(-2**k) for each higher bit of -a."""
    quarter = 1 << 24
    r = wrap32((a & (quarter - 1)) - quarter)          # in [-1/4, 0)
    x = wrap32(_sat_lshift(r, 5) + (1 << 28))          # to 0 integer bits, plus 1/8
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    poly = rdbpot(wrap32(srdhm(wrap32(rdbpot(x4, 2) + x3), 715827883) + x2), 1)  # x4/24 + x3/6 + x2/2
    exp_m1_8 = 1895147668                              # exp(-1/8)
    result = wrap32(exp_m1_8 + srdhm(exp_m1_8, wrap32(x + poly)))
    remainder = wrap32(r - a)
    for bit, multiplier in enumerate((1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242)):
        if remainder & (1 << (24 + bit)):              # exp(-1/4), exp(-1/2), exp(-1), ... exp(-16)
            result = srdhm(result, multiplier)
    return INT32_MAX if a == 0 else result


def _reciprocal(total):
    """TFLite GetReciprocal(total, 12): (1 / total as 0-integer-bit fixed point, bits of total over one)."""
    headroom = 32 - (total & 0xFFFFFFFF).bit_length()
    shifted_minus_one = wrap32(((total & 0xFFFFFFFF) << headroom) - (1 << 31))
    # gemmlowp one_over_one_plus_x_for_x_in_0_1: Newton-Raphson with 2 integer bits.
    s = shifted_minus_one + INT32_MAX
    half_den = (s + 1) // 2 if s >= 0 else -((-s + 1) // 2)    # RoundingHalfSum, truncating
    x = wrap32(1515870810 + srdhm(half_den, -1010580540))    # 48/17 - 32/17 * half_den
    for _ in range(3):
        x = wrap32(x + _sat_lshift(srdhm(x, wrap32((1 << 29) - srdhm(half_den, x))), 2))
    return _sat_lshift(x, 1), 12 - headroom


def softmax_row(row, input_mult, input_lshift, diff_min):
    """TFLite reference_ops::Softmax for one int8 row -> int8 (scale 1/256, zero point -128)."""
    top = max(row)
    exps = [None if v - top < diff_min else
            _exp_on_negative_values(srdhm(wrap32((v - top) << input_lshift), input_mult)) for v in row]
    total = 0
    for e in exps:
        if e is not None:
            total = wrap32(total + rdbpot(e, 12))      # sum with 12 integer bits
    recip, over_one = _reciprocal(total)
    return [-128 if e is None else _clamp(rdbpot(srdhm(recip, e), over_one + 31 - 8) - 128, -128, 127)
            for e in exps]


def _p(p):
    return [int(v) for v in memoryview(p).cast("B").cast("i")]


def _i8(buf, off, n):
    return np.frombuffer(buf, dtype=np.int8, count=n, offset=off).astype(np.int64)


def _out(buf, off, need):
    """A writable int8 view of the caller's output, refusing a tile that would not fit."""
    o = np.frombuffer(buf, dtype=np.int8)
    if not o.flags.writeable or off < 0 or off + need > o.size:
        raise ValueError(f"output: {need} bytes at offset {off} do not fit a writable buffer of {o.size}")
    return o


def _spatial_need(p, oh, g):
    return ((oh - 1) * p[d.P_OUT_W] + p[d.P_OUT_W] - 1) * p[d.P_OUT_C] + g


def _payload(wts, n_filter, g):
    """Split a weight payload: int8 filter[n_filter], then (4-aligned) int32 bias, mult, shift [g]."""
    filt = _i8(wts, 0, n_filter)
    tail = np.frombuffer(wts, dtype="<i4", count=3 * g, offset=(n_filter + 3) & ~3).astype(np.int64)
    return filt, [int(v) for v in tail[:g]], [int(v) for v in tail[g:2 * g]], [int(v) for v in tail[2 * g:]]


def _taps(p, in_h, y0, oy, ox):
    """(ky, kx, iy, ix) of the valid window positions of output pixel (oy, ox): band convention."""
    for ky in range(p[d.P_KH]):
        iy = y0 + oy * p[d.P_SH] + ky * p[d.P_DH]
        for kx in range(p[d.P_KW]):
            ix = ox * p[d.P_SW] - p[d.P_PAD_L] + kx * p[d.P_DW]
            if 0 <= iy < in_h and 0 <= ix < p[d.P_IN_W]:
                yield ky, kx, iy, ix


def _clamp(v, lo, hi):
    return min(max(v, lo), hi)


class Kernels:
    """numpy reference kernels; see docs/kernels.md for the arguments."""

    def conv_s8(self, p, out, out_off, inp, in_off, in_h, y0, oh, wts, g):
        p = _p(p)
        in_w, in_c, out_w, out_c = p[d.P_IN_W], p[d.P_IN_C], p[d.P_OUT_W], p[d.P_OUT_C]
        kh, kw = p[d.P_KH], p[d.P_KW]
        x = _i8(inp, in_off, in_h * in_w * in_c).reshape(in_h, in_w, in_c) - p[d.P_IN_ZP]
        filt, bias, mult, shift = _payload(wts, g * kh * kw * in_c, g)
        filt = filt.reshape(g, kh, kw, in_c)
        o = _out(out, out_off, _spatial_need(p, oh, g))
        for oy in range(oh):
            for ox in range(out_w):
                acc = np.array(bias, dtype=np.int64)
                for ky, kx, iy, ix in _taps(p, in_h, y0, oy, ox):
                    acc += filt[:, ky, kx, :] @ x[iy, ix, :]
                for k in range(g):
                    v = mbqm(int(acc[k]), mult[k], shift[k]) + p[d.P_OUT_ZP]
                    o[out_off + (oy * out_w + ox) * out_c + k] = _clamp(v, p[d.P_ACT_MIN], p[d.P_ACT_MAX])

    def conv_acc_s8(self, p, acc, inp, in_off, npix, wts, q, ch, first):
        p = _p(p)
        x = _i8(inp, in_off, npix * ch).reshape(npix, ch) - p[d.P_IN_ZP]
        w = _i8(wts, 0, q * ch).reshape(q, ch)
        a = np.frombuffer(acc, dtype="<i4", count=npix * q)  # writable view of the caller's int32 sums
        s = (x @ w.T).reshape(-1)
        if not first:
            s = s + a.astype(np.int64)
        a[:] = ((s + (1 << 31)) % (1 << 32)) - (1 << 31)

    def acc_out_s8(self, p, out, out_off, acc, npix, wts, q, ch):
        p = _p(p)
        out_c = p[d.P_OUT_C]
        _, bias, mult, shift = _payload(wts, q * ch, q)
        a = np.frombuffer(acc, dtype="<i4", count=npix * q).astype(np.int64).reshape(npix, q)
        o = _out(out, out_off, max(0, (npix - 1) * out_c + q))
        for i in range(npix):
            for k in range(q):
                v = mbqm(int(a[i, k]) + bias[k], mult[k], shift[k]) + p[d.P_OUT_ZP]
                o[out_off + i * out_c + k] = _clamp(v, p[d.P_ACT_MIN], p[d.P_ACT_MAX])

    def dwconv_s8(self, p, out, out_off, inp, in_off, in_h, y0, oh, wts, c0, g):
        p = _p(p)
        in_w, in_c, out_w, out_c = p[d.P_IN_W], p[d.P_IN_C], p[d.P_OUT_W], p[d.P_OUT_C]
        kh, kw, dm = p[d.P_KH], p[d.P_KW], p[d.P_DM]
        if c0 % dm or g % dm or c0 + g > in_c * dm:
            raise ValueError("dwconv_s8: c0 and g must be multiples of the depth multiplier")
        x = _i8(inp, in_off, in_h * in_w * in_c).reshape(in_h, in_w, in_c) - p[d.P_IN_ZP]
        filt, bias, mult, shift = _payload(wts, kh * kw * g, g)
        filt = filt.reshape(kh, kw, g)
        src = [(c0 + k) // dm for k in range(g)]  # input channel of each output channel
        o = _out(out, out_off, _spatial_need(p, oh, g))
        for oy in range(oh):
            for ox in range(out_w):
                acc = np.array(bias, dtype=np.int64)
                for ky, kx, iy, ix in _taps(p, in_h, y0, oy, ox):
                    acc += filt[ky, kx, :] * x[iy, ix, src]
                for k in range(g):
                    v = mbqm(int(acc[k]), mult[k], shift[k]) + p[d.P_OUT_ZP]
                    o[out_off + (oy * out_w + ox) * out_c + k] = _clamp(v, p[d.P_ACT_MIN], p[d.P_ACT_MAX])

    def _pool(self, reduce, p, out, out_off, inp, in_off, in_h, y0, oh, c0, g):
        p = _p(p)
        in_w, in_c, out_w, out_c = p[d.P_IN_W], p[d.P_IN_C], p[d.P_OUT_W], p[d.P_OUT_C]
        if c0 < 0 or c0 + g > in_c:
            raise ValueError("pool: channels out of range")
        x = _i8(inp, in_off, in_h * in_w * in_c).reshape(in_h, in_w, in_c)
        o = _out(out, out_off, _spatial_need(p, oh, g))
        for oy in range(oh):
            for ox in range(out_w):
                window = [x[iy, ix, c0:c0 + g] for _, _, iy, ix in _taps(p, in_h, y0, oy, ox)]
                for k in range(g):
                    v = reduce([int(w[k]) for w in window])
                    o[out_off + (oy * out_w + ox) * out_c + k] = _clamp(v, p[d.P_ACT_MIN], p[d.P_ACT_MAX])

    def maxpool_s8(self, p, out, out_off, inp, in_off, in_h, y0, oh, c0, g):
        # A window entirely in padding gives int8's lowest value, as TFLite's loop does.
        self._pool(lambda values: max(values, default=-128), p, out, out_off, inp, in_off, in_h, y0, oh, c0, g)

    def avgpool_s8(self, p, out, out_off, inp, in_off, in_h, y0, oh, c0, g):
        def average(values):  # round half away from zero
            if not values:
                raise ValueError("avgpool_s8: a window lies entirely in the padding (TFLite refuses it)")
            s, n = sum(values), len(values)
            return (s + n // 2) // n if s > 0 else -((-s + n // 2) // n)
        self._pool(average, p, out, out_off, inp, in_off, in_h, y0, oh, c0, g)

    def fc_s8(self, p, out, out_off, inp, in_off, rows, wts, g):
        p = _p(p)
        n, out_c = p[d.PF_N], p[d.PF_OUT_C]
        x = _i8(inp, in_off, rows * n).reshape(rows, n) - p[d.PF_IN_ZP]
        filt, bias, mult, shift = _payload(wts, g * n, g)
        filt = filt.reshape(g, n)
        o = _out(out, out_off, max(0, (rows - 1) * out_c + g))
        for r in range(rows):
            acc = filt @ x[r] + np.array(bias, dtype=np.int64)
            for k in range(g):
                v = mbqm_single(int(acc[k]), mult[k], shift[k]) + p[d.PF_OUT_ZP]
                o[out_off + r * out_c + k] = _clamp(v, p[d.PF_ACT_MIN], p[d.PF_ACT_MAX])

    def add_s8(self, p, out, out_off, a, a_off, b, b_off, n):
        p = _p(p)
        xa, xb, o = _i8(a, a_off, n), _i8(b, b_off, n), _out(out, out_off, n)
        ls = p[d.PA_LEFT_SHIFT]
        for i in range(n):
            sa = mbqm((int(xa[i]) - p[d.PA_IN1_ZP]) << ls, p[d.PA_M1], p[d.PA_S1])
            sb = mbqm((int(xb[i]) - p[d.PA_IN2_ZP]) << ls, p[d.PA_M2], p[d.PA_S2])
            v = mbqm(sa + sb, p[d.PA_MO], p[d.PA_SO]) + p[d.PA_OUT_ZP]
            o[out_off + i] = _clamp(v, p[d.PA_ACT_MIN], p[d.PA_ACT_MAX])

    def requant_s8(self, p, out, out_off, inp, in_off, n):
        p = _p(p)
        x, o = _i8(inp, in_off, n), _out(out, out_off, n)
        for i in range(n):
            v = mbqm(int(x[i]) - p[d.PR_IN_ZP], p[d.PR_MULT], p[d.PR_SHIFT]) + p[d.PR_OUT_ZP]
            o[out_off + i] = _clamp(v, -128, 127)

    def leaky_relu_s8(self, p, out, out_off, inp, in_off, n):
        p = _p(p)
        x, o = _i8(inp, in_off, n), _out(out, out_off, n)
        for i in range(n):
            dx = int(x[i]) - p[d.PL_IN_ZP]
            if dx >= 0:
                v = mbqm(dx, p[d.PL_MULT_ID], p[d.PL_SHIFT_ID])
            else:
                v = mbqm(dx, p[d.PL_MULT_ALPHA], p[d.PL_SHIFT_ALPHA])
            o[out_off + i] = _clamp(v + p[d.PL_OUT_ZP], -128, 127)

    def mean_acc_s8(self, acc, inp, in_off, npix, c):
        s = np.frombuffer(acc, dtype="<i4", count=c)  # writable view of the caller's int32 sums
        total = _i8(inp, in_off, npix * c).reshape(npix, c).sum(axis=0)
        s[:] = [wrap32(int(a) + int(t)) for a, t in zip(s, total)]

    def mean_out_s8(self, p, out, out_off, acc):
        p = _p(p)
        c = p[d.PM_C]
        s, o = np.frombuffer(acc, dtype="<i4", count=c), _out(out, out_off, c)
        for k in range(c):
            diff = wrap32(int(s[k]) - p[d.PM_IN_ZP] * p[d.PM_COUNT])
            v = mbqm(diff, p[d.PM_MULT], p[d.PM_SHIFT]) + p[d.PM_OUT_ZP]
            o[out_off + k] = _clamp(v, -128, 127)

    def softmax_s8(self, p, out, out_off, inp, in_off, rows):
        p = _p(p)
        n = p[d.PS_N]
        x, o = _i8(inp, in_off, rows * n).reshape(rows, n), _out(out, out_off, rows * n)
        for r in range(rows):
            row = softmax_row([int(v) for v in x[r]], p[d.PS_INPUT_MULT], p[d.PS_INPUT_LSHIFT], p[d.PS_DIFF_MIN])
            o[out_off + r * n:out_off + (r + 1) * n] = row
