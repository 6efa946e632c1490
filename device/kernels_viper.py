"""The tile kernels in MicroPython `@micropython.viper`, for boards without the C module: the Python-level
API of docs/kernels.md (the methods and arguments of tileswap.host.native.Kernels), bit-exact with the C
kernels and so with TensorFlow Lite's reference kernels. MicroPython only.

    from .kernels_viper import Kernels
    k = Kernels()                       # its 512 bytes of scratch, allocated once
    k.conv_s8(p, mv, out_off, mv, in_off, in_h, y0, oh, wts, g)

Viper or not: every loop over pixels, taps, channels or elements is viper. Plain Python: the wrappers
(argument and bounds checks once per call, as host/native.py does, since viper writes through raw
pointers) and SOFTMAX, whose gemmlowp exp/reciprocal run on arbitrary-precision ints (see there). No call
but SOFTMAX allocates: accumulators go through the scratch words `_a`/`_b` (the C kernels' 64-word chunk).

Word size. A viper int is a machine word: 64 bits on this unix x64 port, 32 on Cortex-M, ESP32, RP2040,
where no 32x32->64 product exists and an int literal of 2**30 or more is a heap object. So:
  - every int32 in the arithmetic is handled as two 16-bit limbs `(v >> 16) & 0xFFFF`, `v & 0xFFFF`,
    which are the same whether a load sign-extended the word (32-bit) or zero-extended it (ptr32 on a
    64-bit port); int32 wrap-around (accumulators, TFLite's `x << left_shift`) comes from storing to a
    32-bit word or from the limbs, never from the machine word;
  - the requantizing multiply (`_rq`) works on 16-bit limbs whose every intermediate provably fits an
    int32 (or a uint32 for one product), so a 32-bit and a 64-bit word compute the same values;
  - no literal reaches 2**30, and none is a constant expression that folds to one (the compiler folds
    `(0x3FFFFFFF << 1) | 1` into a 2**31 object on a 32-bit target).
What was run: this file on the unix x64 port against the C kernels (tests/test_viper_kernels.py: random
and edge cases, no heap allocation), the same cases through an emulation of viper's int semantics on a
32-bit word in CPython (tests/_viper_word32.py: same results, and `_rq` overflows its word only at the
planned `<< ls`), and `mpy-cross -msmall-int-bits=31` for armv6m/armv7m/armv7emsp/xtensawin/rv32imc
(compiles, so every literal is an int). Not run: any 32-bit board, i.e. the 32-bit code generators.

Viper facts relied on: ptr8 loads are unsigned (an int8 is `(x ^ 128) - 128`); ptr8/ptr32 stores keep the
low 8/32 bits; `>>` is arithmetic on int, logical on uint; `//` floors (used per pixel, never per MAC);
calls between viper functions box their arguments, so only small ints and buffer objects cross them (an
int of 2**30 or more would allocate on a 32-bit board); the emitters keep a function's first three locals
-- its first parameters -- in registers, so the MAC loops' pointers come first in their signatures.
"""

import micropython
from array import array
from micropython import const


# Copies of format.py / opdefs.py (private consts take no RAM in a .mpy; tests check they agree)
_PA_LEN = const(12)
_PF_LEN = const(6)
_PL_LEN = const(6)
_PM_LEN = const(6)
_PR_LEN = const(4)
_PS_DIFF_MIN = const(3)
_PS_INPUT_LSHIFT = const(2)
_PS_INPUT_MULT = const(1)
_PS_LEN = const(5)
_PS_N = const(0)
_PS_OUT_ZP = const(4)
_P_SPATIAL_LEN = const(16)


_CH = const(64)           # int32 accumulators per flush (the scratch words), like the C kernels' chunk

# p slots as viper needs them: compile-time constants of this module (viper cannot index with another
# module's names). Copies of opdefs; tests/test_viper_kernels.py checks that they agree.
_P_IN_W = const(0)
_P_IN_C = const(1)
_P_OUT_W = const(2)
_P_OUT_C = const(3)
_P_KH = const(4)
_P_KW = const(5)
_P_SH = const(6)
_P_SW = const(7)
_P_DH = const(8)
_P_DW = const(9)
_P_PAD_L = const(10)
_P_IN_ZP = const(11)
_P_OUT_ZP = const(12)
_P_ACT_MIN = const(13)
_P_ACT_MAX = const(14)
_P_DM = const(15)
_PF_N = const(0)
_PF_OUT_C = const(1)
_PF_IN_ZP = const(2)
_PF_OUT_ZP = const(3)
_PF_ACT_MIN = const(4)
_PF_ACT_MAX = const(5)
_PA_IN1_ZP = const(0)
_PA_IN2_ZP = const(1)
_PA_OUT_ZP = const(2)
_PA_LEFT_SHIFT = const(3)
_PA_M1 = const(4)
_PA_S1 = const(5)
_PA_M2 = const(6)
_PA_S2 = const(7)
_PA_MO = const(8)
_PA_SO = const(9)
_PA_ACT_MIN = const(10)
_PA_ACT_MAX = const(11)
_PR_IN_ZP = const(0)
_PR_OUT_ZP = const(1)
_PR_MULT = const(2)
_PR_SHIFT = const(3)
_PM_C = const(0)
_PM_COUNT = const(1)
_PM_IN_ZP = const(2)
_PM_OUT_ZP = const(3)
_PM_MULT = const(4)
_PM_SHIFT = const(5)
_PL_IN_ZP = const(0)
_PL_OUT_ZP = const(1)
_PL_MULT_ID = const(2)
_PL_SHIFT_ID = const(3)
_PL_MULT_ALPHA = const(4)
_PL_SHIFT_ALPHA = const(5)


# ---- the one requantize -------------------------------------------------------------------------------

@micropython.viper
def _rq(acc_buf, n: int, e0: int, g: int, q_buf, qm: int, qs: int, step: int,
        out_buf, o0: int, ostride: int, zp: int, lo: int, hi: int, to_acc: int, single: int):
    """Requantize the n int32 words of acc_buf: TFLite's MultiplyByQuantizedMultiplier with double rounding
    (single=0: ts_mbqm) or, for FULLY_CONNECTED, its 64-bit single-rounding form (single=1: ts_mbqm_single).

    Element j is output e0 + j of a tile whose outputs are e = pixel * g + channel; its multiplier and
    shift are the little-endian int32s at byte qm + channel*step and qs + channel*step of q_buf (step 4:
    per channel, from a weight payload; step 0: per tensor, from p). to_acc=0: out_buf[o0 + pixel*ostride
    + channel] = clamp(result + zp, lo, hi) as int8; to_acc=1: the result replaces the word in acc_buf.

    Both forms need Q = floor((A*B + 2**(T-1) - neg) / 2**T) for A = |x| <= 2**31, B = |mult| <= 2**31,
    neg = (x*mult < 0), then +-Q: T = 31 gives gemmlowp's SaturatingRoundingDoublingHighMul (nudge, then
    truncation toward zero), T = 31 - shift gives (x*mult + 2**(T-1)) >> T (floor), T in [1, 62]. With no
    64-bit product, A and B are split in 16-bit limbs (ah, al), (bh, bl), ah, bh <= 2**15, and
        hh = ah*bh <= 2**30;  m1 = ah*bl < 2**31;  m2 = al*bh < 2**31;  ll = al*bl < 2**32 (uint)
    give A*B as limbs x0..x3 (each < 2**18 before carrying, x3 < 2**15 + 5 after); the nudge is added to
    one limb, carries move up, and Q's low 32 bits are two 16-bit limbs picked from x0..x3 by T. The
    largest value ever formed is ll < 2**32 (uint) and m1, m2 < 2**31 (int): nothing wraps on a 32-bit
    word. The one case where Q does not fit, A = B = 2**31 with T = 31, saturates first as in gemmlowp;
    with T < 31 the result keeps Q's low 32 bits, which is the C's (int32_t) narrowing.
    RoundingDivideByPOT by rs <= 31 uses mask = 2**rs - 1 built as ((2**(rs-1) - 1) << 1) | 1.
    """
    acc = ptr32(acc_buf)
    q = ptr8(q_buf)
    out = ptr8(out_buf)
    pix = e0 // g
    k = e0 - pix * g
    o = o0 + pix * ostride + k
    imax = 0x7FFF                                  # INT32_MAX, built at run time: the compiler
    imax = (imax << 16) | 0xFFFF                   # folds literal expressions into a 2**31 object
    bh = 0
    bl = 0
    bneg = 0
    ls = 0
    rs = 0
    mask = 0
    ci = 0
    cb = 0
    ti = 0
    tb = 0
    tm = 0
    j = 0
    while j < n:
        if step or j == 0:                         # this element's multiplier and shift
            t = qm + k * step
            bl = q[t] | (q[t + 1] << 8)
            bh = q[t + 2] | (q[t + 3] << 8)
            bneg = 0
            if bh >= 0x8000:                       # mult < 0: limbs of |mult| = 2**32 - mult
                bneg = 1
                bh = 0xFFFF - bh
                bl = 0x10000 - bl
                if bl == 0x10000:
                    bl = 0
                    bh += 1
            t = qs + k * step
            sh = ((q[t] | (q[t + 1] << 8)) ^ 0x8000) - 0x8000
            ls = 0
            rs = 0
            tt = 31
            if single:
                tt = 31 - sh
            elif sh > 0:
                ls = sh
            else:
                rs = -sh
            mask = 0
            if rs > 31:
                rs = 32                            # the quotient is 0, as in ts_rdbpot
            elif rs > 0:
                mask = (((1 << (rs - 1)) - 1) << 1) | 1
            ci = (tt - 1) >> 4                     # the nudge 2**(tt-1) is cb in limb ci
            cb = 1 << ((tt - 1) & 15)
            ti = tt >> 4                           # Q starts at bit tb of limb ti
            tb = tt & 15
            tm = (1 << tb) - 1
        v = acc[j]
        ah = (v >> 16) & 0xFFFF
        al = v & 0xFFFF
        if ls > 0:                                 # TFLite's int32 x << left_shift, wrapping
            v = (((((ah ^ 0x8000) - 0x8000) << 16) | al) << ls)
            ah = (v >> 16) & 0xFFFF
            al = v & 0xFFFF
        neg = bneg
        if ah >= 0x8000:                           # x < 0: limbs of |x|
            neg ^= 1
            ah = 0xFFFF - ah
            al = 0x10000 - al
            if al == 0x10000:
                al = 0
                ah += 1
        if ah == 0x8000 and bh == 0x8000 and not single:
            r = imax
        else:
            ll = uint(al) * uint(bl)
            m1 = ah * bl
            m2 = al * bh
            hh = ah * bh
            x0 = int(ll & 0xFFFF) - neg
            t = int(ll >> 16) + (m1 & 0xFFFF) + (m2 & 0xFFFF)
            x1 = t & 0xFFFF
            t = (t >> 16) + (m1 >> 16) + (m2 >> 16) + (hh & 0xFFFF)
            x2 = t & 0xFFFF
            x3 = (t >> 16) + (hh >> 16)
            if ci == 0:
                x0 += cb
            elif ci == 1:
                x1 += cb
            elif ci == 2:
                x2 += cb
            else:
                x3 += cb
            x1 += x0 >> 16                         # carry (or the borrow of x0 = -1)
            x0 &= 0xFFFF
            x2 += x1 >> 16
            x1 &= 0xFFFF
            x3 += x2 >> 16
            x2 &= 0xFFFF
            if ti == 0:
                y0 = x0
                y1 = x1
                y2 = x2
            elif ti == 1:
                y0 = x1
                y1 = x2
                y2 = x3
            elif ti == 2:
                y0 = x2
                y1 = x3
                y2 = 0
            else:
                y0 = x3
                y1 = 0
                y2 = 0
            q0 = (y0 >> tb) | ((y1 & tm) << (16 - tb))
            q1 = ((y1 >> tb) | ((y2 & tm) << (16 - tb))) & 0xFFFF
            if neg:                                # -Q modulo 2**32, still in limbs
                q0 = (q0 ^ 0xFFFF) + 1
                q1 = ((q1 ^ 0xFFFF) + (q0 >> 16)) & 0xFFFF
                q0 &= 0xFFFF
            r = (((q1 ^ 0x8000) - 0x8000) << 16) | q0
        if rs > 31:
            r = 0
        elif rs > 0:                               # RoundingDivideByPOT
            thr = mask >> 1
            if r < 0:
                thr += 1
            rem = r & mask
            r = r >> rs
            if rem > thr:
                r += 1
        if to_acc:
            acc[j] = r
        else:
            r += zp
            if r < lo:
                r = lo
            if r > hi:
                r = hi
            out[o] = r
        j += 1
        k += 1
        o += 1
        if k == g:
            k = 0
            o += ostride - g


# ---- spatial ops ---------------------------------------------------------------------------------------

@micropython.viper
def _taps(start: int, dil: int, k: int, size: int) -> int:
    """Valid taps [k0, k1) of a window whose tap 0 reads `start` (ts_tap_range), packed k0 | k1 << 16."""
    a = 0
    b = k
    if start < 0:
        a = (dil - 1 - start) // dil
    if start + (k - 1) * dil >= size:
        b = (size - 1 - start) // dil + 1
    if b < a or size - 1 - start < 0:
        b = a
    return a | (b << 16)


@micropython.viper
def _conv(w: ptr8, inp: ptr8, zb: int, p: ptr32, out, out_off: int, in_off: int, in_h: int, y0: int, oh: int,
          wts, g: int, acc_buf):
    # inp is [in_h][in_w][in_c] from in_off; filter [g][kh][kw][in_c]; accumulators flushed through _rq.
    in_w = p[_P_IN_W]
    in_c = p[_P_IN_C]
    out_w = p[_P_OUT_W]
    out_c = p[_P_OUT_C]
    kh = p[_P_KH]
    kw = p[_P_KW]
    sh = p[_P_SH]
    sw = p[_P_SW]
    dh = p[_P_DH]
    dw = p[_P_DW]
    pad_l = p[_P_PAD_L]
    zo = ((p[_P_OUT_ZP] & 0xFFFF) ^ 0x8000) - 0x8000
    lo = ((p[_P_ACT_MIN] & 0xFFFF) ^ 0x8000) - 0x8000
    hi = ((p[_P_ACT_MAX] & 0xFFFF) ^ 0x8000) - 0x8000
    acc = ptr32(acc_buf)
    tail = (g * kh * kw * in_c + 3) & ~3
    row_c = in_w * in_c
    j = 0                                          # accumulators filled
    e = 0                                          # output index (pixel * g + channel) of acc[0]
    for oy in range(oh):
        ty = y0 + oy * sh
        t = int(_taps(ty, dh, kh, in_h))
        ky0 = t & 0xFFFF
        ky1 = t >> 16
        for ox in range(out_w):
            tx = ox * sw - pad_l
            t = int(_taps(tx, dw, kw, in_w))
            kx0 = t & 0xFFFF
            kx1 = t >> 16
            run = (kx1 - kx0) * in_c               # dw == 1: the taps of a filter row are contiguous
            for k in range(g):
                b = tail + 4 * k                   # bias: little-endian int32, any alignment
                a = (((w[b + 3] ^ 128) - 128) << 24) | (w[b + 2] << 16) | (w[b + 1] << 8) | w[b]
                for ky in range(ky0, ky1):
                    xr = in_off + (ty + ky * dh) * row_c + tx * in_c
                    fr = ((k * kh + ky) * kw) * in_c
                    if dw == 1:
                        f = fr + kx0 * in_c
                        x = xr + kx0 * in_c
                        fe = f + run
                        while f < fe:
                            a += ((w[f] ^ 128) - 128) * ((inp[x] ^ 128) - zb)
                            f += 1
                            x += 1
                    else:
                        for kx in range(kx0, kx1):
                            f = fr + kx * in_c
                            x = xr + kx * dw * in_c
                            fe = f + in_c
                            while f < fe:
                                a += ((w[f] ^ 128) - 128) * ((inp[x] ^ 128) - zb)
                                f += 1
                                x += 1
                acc[j] = a                         # wraps to int32 like the C accumulator
                j += 1
                if j == _CH:
                    _rq(acc_buf, j, e, g, wts, tail + 4 * g, tail + 8 * g, 4, out, out_off, out_c, zo, lo, hi, 0, 0)
                    e += j
                    j = 0
    if j:
        _rq(acc_buf, j, e, g, wts, tail + 4 * g, tail + 8 * g, 4, out, out_off, out_c, zo, lo, hi, 0, 0)


@micropython.viper
def _dwconv(acc: ptr32, w: ptr8, inp: ptr8, p: ptr32, out, out_off: int, in_off: int, in_h: int, y0: int,
            oh: int, wts, c0: int, g: int, acc_buf):
    # filter [kh][kw][g]; output channel c0 + k reads input channel (c0 + k) // dm. Per pixel, channels in
    # chunks of at most _CH; several pixels share one flush when g is small.
    in_w = p[_P_IN_W]
    in_c = p[_P_IN_C]
    out_w = p[_P_OUT_W]
    out_c = p[_P_OUT_C]
    kh = p[_P_KH]
    kw = p[_P_KW]
    sh = p[_P_SH]
    sw = p[_P_SW]
    dh = p[_P_DH]
    dw = p[_P_DW]
    pad_l = p[_P_PAD_L]
    dm = p[_P_DM]
    zb = (((p[_P_IN_ZP] & 0xFFFF) ^ 0x8000) - 0x8000) + 128
    zo = ((p[_P_OUT_ZP] & 0xFFFF) ^ 0x8000) - 0x8000
    lo = ((p[_P_ACT_MIN] & 0xFFFF) ^ 0x8000) - 0x8000
    hi = ((p[_P_ACT_MAX] & 0xFFFF) ^ 0x8000) - 0x8000
    tail = (kh * kw * g + 3) & ~3
    row_c = in_w * in_c
    j = 0
    e = 0
    for oy in range(oh):
        ty = y0 + oy * sh
        t = int(_taps(ty, dh, kh, in_h))
        ky0 = t & 0xFFFF
        ky1 = t >> 16
        for ox in range(out_w):
            tx = ox * sw - pad_l
            t = int(_taps(tx, dw, kw, in_w))
            kx0 = t & 0xFFFF
            kx1 = t >> 16
            k0 = 0
            while k0 < g:
                kn = g - k0
                if kn > _CH:
                    kn = _CH
                if j + kn > _CH:
                    _rq(acc_buf, j, e, g, wts, tail + 4 * g, tail + 8 * g, 4, out, out_off, out_c, zo, lo, hi, 0, 0)
                    e += j
                    j = 0
                for k in range(kn):
                    b = tail + 4 * (k0 + k)
                    acc[j + k] = (((w[b + 3] ^ 128) - 128) << 24) | (w[b + 2] << 16) | (w[b + 1] << 8) | w[b]
                for ky in range(ky0, ky1):
                    xr = in_off + (ty + ky * dh) * row_c + tx * in_c
                    for kx in range(kx0, kx1):
                        f = (ky * kw + kx) * g + k0
                        fe = f + kn
                        i = j
                        if dm == 1:
                            x = xr + kx * dw * in_c + c0 + k0
                            while f < fe:
                                acc[i] += ((w[f] ^ 128) - 128) * ((inp[x] ^ 128) - zb)
                                f += 1
                                x += 1
                                i += 1
                        else:
                            x = xr + kx * dw * in_c + (c0 + k0) // dm
                            r = (c0 + k0) % dm                 # position within the input channel's dm
                            while f < fe:
                                acc[i] += ((w[f] ^ 128) - 128) * ((inp[x] ^ 128) - zb)
                                f += 1
                                i += 1
                                r += 1
                                if r == dm:
                                    r = 0
                                    x += 1
                j += kn
                k0 += kn
    if j:
        _rq(acc_buf, j, e, g, wts, tail + 4 * g, tail + 8 * g, 4, out, out_off, out_c, zo, lo, hi, 0, 0)


@micropython.viper
def _pool(acc: ptr32, inp: ptr8, p: ptr32, out: ptr8, out_off: int, in_off: int, in_h: int, y0: int,
          oh: int, c0: int, g: int, avg: int) -> int:
    # MAX_POOL_2D (avg=0) or AVERAGE_POOL_2D (avg=1) over the valid window; acc holds a chunk of the
    # channels of one pixel. Returns 1 if an average's window lies entirely in the padding, as the C does.
    in_w = p[_P_IN_W]
    in_c = p[_P_IN_C]
    out_w = p[_P_OUT_W]
    out_c = p[_P_OUT_C]
    kh = p[_P_KH]
    kw = p[_P_KW]
    sh = p[_P_SH]
    sw = p[_P_SW]
    pad_l = p[_P_PAD_L]
    lo = ((p[_P_ACT_MIN] & 0xFFFF) ^ 0x8000) - 0x8000
    hi = ((p[_P_ACT_MAX] & 0xFFFF) ^ 0x8000) - 0x8000
    row_c = in_w * in_c
    for oy in range(oh):
        ty = y0 + oy * sh
        t = int(_taps(ty, 1, kh, in_h))
        ky0 = t & 0xFFFF
        ky1 = t >> 16
        for ox in range(out_w):
            tx = ox * sw - pad_l
            t = int(_taps(tx, 1, kw, in_w))
            kx0 = t & 0xFFFF
            kx1 = t >> 16
            n = (ky1 - ky0) * (kx1 - kx0)
            if n == 0 and avg:
                return 1                           # the C refuses it; a max is -128 (then clamped)
            o = out_off + (oy * out_w + ox) * out_c
            k0 = 0
            while k0 < g:
                kn = g - k0
                if kn > _CH:
                    kn = _CH
                for k in range(kn):
                    acc[k] = 0                     # both sum and max see x ^ 128 = x + 128
                for ky in range(ky0, ky1):
                    for kx in range(kx0, kx1):
                        x = in_off + (ty + ky) * row_c + (tx + kx) * in_c + c0 + k0
                        if avg:
                            for k in range(kn):
                                acc[k] += inp[x + k] ^ 128
                        else:
                            for k in range(kn):
                                v = inp[x + k] ^ 128
                                if v > acc[k]:
                                    acc[k] = v
                for k in range(kn):
                    v = acc[k]                     # sum or max of x ^ 128: never negative
                    if avg:                        # round half away from zero (truncating division)
                        v -= n << 7
                        if v > 0:
                            v = (v + (n >> 1)) // n
                        else:
                            v = -((-v + (n >> 1)) // n)
                    else:
                        v -= 128
                    if v < lo:
                        v = lo
                    if v > hi:
                        v = hi
                    out[o + k0 + k] = v
                k0 += kn
    return 0


# ---- other ops -----------------------------------------------------------------------------------------

@micropython.viper
def _fc(w: ptr8, inp: ptr8, zb: int, p: ptr32, out, out_off: int, in_off: int, rows: int, wts, g: int,
        acc_buf):
    # rows vectors of n int8 from in_off; filter [g][n]; output row r, feature k at out_off + r*out_c + k.
    # Requantized with the single-rounding multiply, as TFLite's reference FULLY_CONNECTED does.
    n = p[_PF_N]
    out_c = p[_PF_OUT_C]
    zo = ((p[_PF_OUT_ZP] & 0xFFFF) ^ 0x8000) - 0x8000
    lo = ((p[_PF_ACT_MIN] & 0xFFFF) ^ 0x8000) - 0x8000
    hi = ((p[_PF_ACT_MAX] & 0xFFFF) ^ 0x8000) - 0x8000
    acc = ptr32(acc_buf)
    tail = (g * n + 3) & ~3
    j = 0
    e = 0
    for r in range(rows):
        x0 = in_off + r * n
        for k in range(g):
            b = tail + 4 * k
            a = (((w[b + 3] ^ 128) - 128) << 24) | (w[b + 2] << 16) | (w[b + 1] << 8) | w[b]
            f = k * n
            fe = f + n
            x = x0
            while f < fe:
                a += ((w[f] ^ 128) - 128) * ((inp[x] ^ 128) - zb)
                f += 1
                x += 1
            acc[j] = a
            j += 1
            if j == _CH:
                _rq(acc_buf, j, e, g, wts, tail + 4 * g, tail + 8 * g, 4, out, out_off, out_c, zo, lo, hi, 0, 1)
                e += j
                j = 0
    if j:
        _rq(acc_buf, j, e, g, wts, tail + 4 * g, tail + 8 * g, 4, out, out_off, out_c, zo, lo, hi, 0, 1)


@micropython.viper
def _conv_acc(acc: ptr32, w: ptr8, inp: ptr8, zb: int, in_off: int, npix: int, q: int, ch: int,
              first: int) -> int:
    # acc[i*q + o] = (first ? 0 : acc[i*q + o]) + sum_k (x[i][k] - zp) * w[o][k] over one input chunk
    # of ch channels; the stored words wrap like TFLite's int32 sums (|sum| < 2**30 for ch < 2**15).
    if int(acc) & 3:
        return 1
    j = 0
    x0 = in_off
    for i in range(npix):
        for o in range(q):
            f = o * ch
            fe = f + ch
            x = x0
            a = 0
            while f < fe:
                a += ((w[f] ^ 128) - 128) * ((inp[x] ^ 128) - zb)
                f += 1
                x += 1
            if first:
                acc[j] = a
            else:
                acc[j] += a
            j += 1
        x0 += ch
    return 0


@micropython.viper
def _acc_bias(s: ptr32, acc: ptr32, w: ptr8, t: int, e0: int, m: int, q: int) -> int:
    # s[j] = acc[e0 + j] + bias[(e0 + j) % q], the little-endian int32 biases at w[t]; stored words wrap.
    if int(acc) & 3:
        return 1
    o = e0 % q
    for j in range(m):
        b = t + 4 * o
        s[j] = acc[e0 + j] + ((((w[b + 3] ^ 128) - 128) << 24) | (w[b + 2] << 16) | (w[b + 1] << 8) | w[b])
        o += 1
        if o == q:
            o = 0
    return 0


@micropython.viper
def _shifts_ok(w: ptr8, t: int, g: int, lo: int, hi: int) -> int:
    # 1 if the g little-endian int32 shifts from w[t] all lie in [lo, hi].
    for k in range(g):
        b = t + 4 * k
        s = (((w[b + 3] ^ 128) - 128) << 24) | (w[b + 2] << 16) | (w[b + 1] << 8) | w[b]
        if s < lo or s > hi:
            return 0
    return 1


@micropython.viper
def _add(p_buf, out, out_off: int, a_buf, a_off: int, b_buf, b_off: int, n: int, sa_buf, sb_buf):
    # TFLite's int8 ADD: each input (x - zp) << left_shift rescaled to the common scale, summed (wrapping
    # like int32), rescaled to the output; _CH elements at a time through the two scratch word buffers.
    p = ptr32(p_buf)
    a = ptr8(a_buf)
    b = ptr8(b_buf)
    sa = ptr32(sa_buf)
    sb = ptr32(sb_buf)
    za = ((p[_PA_IN1_ZP] & 0xFFFF) ^ 0x8000) - 0x8000
    zb = ((p[_PA_IN2_ZP] & 0xFFFF) ^ 0x8000) - 0x8000
    zo = ((p[_PA_OUT_ZP] & 0xFFFF) ^ 0x8000) - 0x8000
    ls = p[_PA_LEFT_SHIFT]
    lo = ((p[_PA_ACT_MIN] & 0xFFFF) ^ 0x8000) - 0x8000
    hi = ((p[_PA_ACT_MAX] & 0xFFFF) ^ 0x8000) - 0x8000
    i = 0
    while i < n:
        m = n - i
        if m > _CH:
            m = _CH
        for j in range(m):
            sa[j] = (((a[a_off + i + j] ^ 128) - 128) - za) << ls      # 9 bits << 23 at most: no wrap
            sb[j] = (((b[b_off + i + j] ^ 128) - 128) - zb) << ls
        _rq(sa_buf, m, 0, m, p_buf, 4 * _PA_M1, 4 * _PA_S1, 0, out, 0, 0, 0, 0, 0, 1, 0)
        _rq(sb_buf, m, 0, m, p_buf, 4 * _PA_M2, 4 * _PA_S2, 0, out, 0, 0, 0, 0, 0, 1, 0)
        for j in range(m):
            sa[j] = sa[j] + sb[j]                  # the stored word keeps the int32 sum
        _rq(sa_buf, m, 0, m, p_buf, 4 * _PA_MO, 4 * _PA_SO, 0, out, out_off + i, 0, zo, lo, hi, 0, 0)
        i += m


@micropython.viper
def _requant(p_buf, out, out_off: int, inp: ptr8, in_off: int, n: int, s_buf):
    # QUANTIZE int8 -> int8: clamp(MBQM(x - in_zp) + out_zp, -128, 127).
    p = ptr32(p_buf)
    s = ptr32(s_buf)
    zi = ((p[_PR_IN_ZP] & 0xFFFF) ^ 0x8000) - 0x8000
    zo = ((p[_PR_OUT_ZP] & 0xFFFF) ^ 0x8000) - 0x8000
    i = 0
    while i < n:
        m = n - i
        if m > _CH:
            m = _CH
        for j in range(m):
            s[j] = ((inp[in_off + i + j] ^ 128) - 128) - zi
        _rq(s_buf, m, 0, m, p_buf, 4 * _PR_MULT, 4 * _PR_SHIFT, 0, out, out_off + i, 0, zo, -128, 127, 0, 0)
        i += m


@micropython.viper
def _leaky(p_buf, out, out_off: int, inp: ptr8, in_off: int, n: int, s_buf):
    # LEAKY_RELU: d = x - in_zp; clamp(out_zp + MBQM(d, identity if d >= 0 else alpha), -128, 127).
    # The whole chunk goes through the identity multiplier, then each negative element again through
    # alpha (one _rq call per element: a fallback, not a fast path).
    p = ptr32(p_buf)
    s = ptr32(s_buf)
    zi = ((p[_PL_IN_ZP] & 0xFFFF) ^ 0x8000) - 0x8000
    zo = ((p[_PL_OUT_ZP] & 0xFFFF) ^ 0x8000) - 0x8000
    i = 0
    while i < n:
        m = n - i
        if m > _CH:
            m = _CH
        for j in range(m):
            s[j] = ((inp[in_off + i + j] ^ 128) - 128) - zi
        _rq(s_buf, m, 0, m, p_buf, 4 * _PL_MULT_ID, 4 * _PL_SHIFT_ID, 0, out, out_off + i, 0, zo, -128, 127, 0, 0)
        for j in range(m):
            d = ((inp[in_off + i + j] ^ 128) - 128) - zi
            if d < 0:
                s[0] = d
                _rq(s_buf, 1, 0, 1, p_buf, 4 * _PL_MULT_ALPHA, 4 * _PL_SHIFT_ALPHA, 0, out, out_off + i + j, 0,
                    zo, -128, 127, 0, 0)
        i += m


@micropython.viper
def _mean_acc(acc: ptr32, inp: ptr8, in_off: int, npix: int, c: int) -> int:
    # acc[k] += x over npix pixels of c channels; the stored words wrap like TFLite's int32 sums.
    if int(acc) & 3:
        return 1                                   # ptr32 needs an aligned word (Cortex-M0 faults)
    x = in_off
    for i in range(npix):
        for k in range(c):
            acc[k] += (inp[x] ^ 128) - 128
            x += 1
    return 0


@micropython.viper
def _mean_out(p_buf, out, out_off: int, acc: ptr32, s_buf) -> int:
    # out[k] = clamp(MBQM(acc[k] - in_zp*count) + out_zp): the difference is formed modulo 2**32 in a
    # stored word, which is TFLite's int64 difference narrowed to int32 (zp*count may wrap too: harmless).
    if int(acc) & 3:
        return 1
    p = ptr32(p_buf)
    s = ptr32(s_buf)
    c = p[_PM_C]
    zc = (((p[_PM_IN_ZP] & 0xFFFF) ^ 0x8000) - 0x8000) * p[_PM_COUNT]
    zo = ((p[_PM_OUT_ZP] & 0xFFFF) ^ 0x8000) - 0x8000
    k = 0
    while k < c:
        m = c - k
        if m > _CH:
            m = _CH
        for j in range(m):
            s[j] = acc[k + j] - zc
        _rq(s_buf, m, 0, m, p_buf, 4 * _PM_MULT, 4 * _PM_SHIFT, 0, out, out_off + k, 0, zo, -128, 127, 0, 0)
        k += m
    return 0


# ---- SOFTMAX: plain Python ints ------------------------------------------------------------------------
# gemmlowp's fixed point as in native/ts_softmax.c and host/kernels_ref.py. Not viper: it needs signed
# high multiplies of arbitrary operands and runs ~20 of them per element of (usually) one row, so
# arbitrary-precision ints (heap-allocated above 2**30 on a 32-bit board) are the simpler, safe choice.

def _w32(x):
    return ((x + 0x80000000) & 0xFFFFFFFF) - 0x80000000


def _srdhm(a, b):
    if a == -0x80000000 and b == -0x80000000:
        return 0x7FFFFFFF
    ab = a * b
    if ab >= 0:
        return (ab + 0x40000000) >> 31
    return -((0x40000000 - 1 - ab) >> 31)          # C's truncating division of ab + 1 - 2**30


def _rdbpot(x, e):
    if e >= 32:
        return 0
    mask = (1 << e) - 1
    return (x >> e) + (1 if (x & mask) > (mask >> 1) + (1 if x < 0 else 0) else 0)


def _sat_lshift(x, e):
    t = (1 << (31 - e)) - 1
    return 0x7FFFFFFF if x > t else (-0x80000000 if x < -t else x << e)


def _exp_neg_q5(a):
    r = _w32((a & 0xFFFFFF) - 0x1000000)          # a's last quarter interval, [-1/4, 0) in Q5
    x = _w32(_sat_lshift(r, 5) + (1 << 28))
    x2 = _srdhm(x, x)
    x3 = _srdhm(x2, x)
    x4 = _srdhm(x2, x2)
    t = _rdbpot(_w32(_srdhm(_w32(_rdbpot(x4, 2) + x3), 715827883) + x2), 1)
    res = _w32(1895147668 + _srdhm(1895147668, _w32(x + t)))
    rem = _w32(r - a)
    for i, m in enumerate((1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242)):
        if rem & (1 << (24 + i)):
            res = _srdhm(res, m)
    return 0x7FFFFFFF if a == 0 else res


def _reciprocal(a):               # a: the sum of exponentials
    u = a & 0xFFFFFFFF
    head = 32
    while u:                                       # MicroPython ints have no bit_length()
        u >>= 1
        head -= 1
    s = _w32(((a & 0xFFFFFFFF) << head) - 0x80000000) + 0x7FFFFFFF
    half = (s + 1) >> 1 if s >= 0 else -((1 - s) >> 1)
    x = _w32(1515870810 + _srdhm(half, -1010580540))
    for _ in range(3):
        x = _w32(x + _sat_lshift(_srdhm(x, _w32((1 << 29) - _srdhm(half, x))), 2))
    return _sat_lshift(x, 1), 12 - head


def _softmax(p, out, out_off, inp, in_off, rows):
    n, mult, ls, dmin = p[_PS_N], p[_PS_INPUT_MULT], p[_PS_INPUT_LSHIFT], p[_PS_DIFF_MIN]
    for r in range(rows):
        x0 = in_off + r * n
        top = -128
        for i in range(n):
            top = max(top, ((inp[x0 + i] ^ 128) - 128))
        total = 0
        for i in range(n):
            d = ((inp[x0 + i] ^ 128) - 128) - top
            if d >= dmin:
                total = _w32(total + _rdbpot(_exp_neg_q5(_srdhm(_w32(d << ls), mult)), 12))
        recip, over = _reciprocal(total)
        for i in range(n):
            d = ((inp[x0 + i] ^ 128) - 128) - top
            v = -128
            if d >= dmin:
                v = _rdbpot(_srdhm(recip, _exp_neg_q5(_srdhm(_w32(d << ls), mult))), over + 23) - 128
                v = min(max(v, -128), 127)
            out[out_off + r * n + i] = v & 0xFF


# ---- the contract --------------------------------------------------------------------------------------

def _fit(name, buf, off, need):
    if off < 0 or need < 0 or off + need > len(buf):
        raise ValueError("%s: %d bytes at offset %d do not fit a buffer of %d" % (name, need, off, len(buf)))


def _params(p, n):
    # An array('i'): the wrappers index it as ints and viper reads its words.
    if not isinstance(p, array) or len(p) < n:
        raise ValueError("p: an array('i') of at least %d slots expected" % n)


def _spatial(p, oh, in_h, g, c):  # c: the most channels the group may have
    """ts_spatial_check plus the channel range; returns the bytes the output needs."""
    _params(p, _P_SPATIAL_LEN)
    if (oh < 1 or in_h < 1 or p[_P_IN_W] < 1 or p[_P_IN_C] < 1 or p[_P_OUT_W] < 1 or p[_P_OUT_C] < 1
            or p[_P_KH] < 1 or p[_P_KW] < 1 or p[_P_SH] < 1 or p[_P_SW] < 1 or p[_P_DH] < 1
            or p[_P_DW] < 1 or p[_P_PAD_L] < 0 or p[_P_DM] < 1 or p[_P_ACT_MIN] < -128
            or p[_P_ACT_MAX] > 127 or p[_P_ACT_MIN] > p[_P_ACT_MAX] or g < 1 or g > c
            or g > p[_P_OUT_C]):
        raise ValueError("spatial kernel: invalid p, rows or channel group")
    return ((oh - 1) * p[_P_OUT_W] + p[_P_OUT_W] - 1) * p[_P_OUT_C] + g


class Kernels:
    """viper kernels; identical arguments and results to tileswap.host.native.Kernels (docs/kernels.md).
    `p` is an array('i') (4-byte aligned); buffers are bytearray/memoryview, offsets in bytes."""

    def __init__(self):
        self._a = bytearray(4 * _CH)       # accumulator words (one flush)
        self._b = bytearray(4 * _CH)       # ADD's second input

    def conv_s8(self, p, out, out_off, inp, in_off, in_h, y0, oh, wts, g):
        need = _spatial(p, oh, in_h, g, g)
        in_c = p[_P_IN_C]
        _fit("wts", wts, 0, ((g * p[_P_KH] * p[_P_KW] * in_c + 3) & ~3) + 12 * g)
        _fit("inp", inp, in_off, in_h * p[_P_IN_W] * in_c)
        _fit("out", out, out_off, need)
        _conv(wts, inp, p[_P_IN_ZP] + 128, p, out, out_off, in_off, in_h, y0, oh, wts, g, self._a)

    def dwconv_s8(self, p, out, out_off, inp, in_off, in_h, y0, oh, wts, c0, g):
        _params(p, _P_SPATIAL_LEN)
        dm = max(p[_P_DM], 1)                     # _spatial refuses dm < 1
        need = _spatial(p, oh, in_h, g, p[_P_IN_C] * dm - c0)
        if c0 < 0 or c0 % dm or g % dm:
            raise ValueError("dwconv_s8: c0 and g must be multiples of the depth multiplier")
        _fit("wts", wts, 0, ((g * p[_P_KH] * p[_P_KW] + 3) & ~3) + 12 * g)
        _fit("inp", inp, in_off, in_h * p[_P_IN_W] * p[_P_IN_C])
        _fit("out", out, out_off, need)
        _dwconv(self._a, wts, inp, p, out, out_off, in_off, in_h, y0, oh, wts, c0, g, self._a)

    def _pool(self, avg, p, out, out_off, inp, in_off, in_h, y0, oh, c0, g):
        need = _spatial(p, oh, in_h, g, p[_P_IN_C] - c0)
        if c0 < 0:
            raise ValueError("pool: channels out of range")
        _fit("inp", inp, in_off, in_h * p[_P_IN_W] * p[_P_IN_C])
        _fit("out", out, out_off, need)
        if _pool(self._a, inp, p, out, out_off, in_off, in_h, y0, oh, c0, g, avg):
            raise ValueError("avgpool_s8: a window lies entirely in the padding")

    def maxpool_s8(self, p, out, out_off, inp, in_off, in_h, y0, oh, c0, g):
        self._pool(0, p, out, out_off, inp, in_off, in_h, y0, oh, c0, g)

    def avgpool_s8(self, p, out, out_off, inp, in_off, in_h, y0, oh, c0, g):
        self._pool(1, p, out, out_off, inp, in_off, in_h, y0, oh, c0, g)

    def fc_s8(self, p, out, out_off, inp, in_off, rows, wts, g):
        _params(p, _PF_LEN)
        n = p[_PF_N]
        if (n < 1 or g < 1 or g > p[_PF_OUT_C] or rows < 0 or p[_PF_ACT_MIN] < -128
                or p[_PF_ACT_MAX] > 127 or p[_PF_ACT_MIN] > p[_PF_ACT_MAX]):
            raise ValueError("fc_s8: invalid p, rows or channel group")
        tail = (g * n + 3) & ~3
        _fit("wts", wts, 0, tail + 12 * g)
        if not _shifts_ok(wts, tail + 8 * g, g, -31, 30):
            raise ValueError("fc_s8: a shift outside [-31, 30]")
        _fit("inp", inp, in_off, rows * n)
        _fit("out", out, out_off, max(0, (rows - 1) * p[_PF_OUT_C] + g))
        _fc(wts, inp, p[_PF_IN_ZP] + 128, p, out, out_off, in_off, rows, wts, g, self._a)

    def conv_acc_s8(self, p, acc, inp, in_off, npix, wts, q, ch, first):
        _params(p, _P_SPATIAL_LEN)
        if npix < 0 or q < 1 or ch < 1 or ch >= 32768:
            raise ValueError("conv_acc_s8: invalid npix, q or ch")
        _fit("acc", acc, 0, 4 * npix * q)
        _fit("wts", wts, 0, q * ch)
        _fit("inp", inp, in_off, npix * ch)
        if _conv_acc(acc, wts, inp, p[_P_IN_ZP] + 128, in_off, npix, q, ch, 1 if first else 0):
            raise ValueError("acc must be 4-byte aligned")

    def acc_out_s8(self, p, out, out_off, acc, npix, wts, q, ch):
        _params(p, _P_SPATIAL_LEN)
        out_c = p[_P_OUT_C]
        if (npix < 0 or q < 1 or ch < 1 or q > out_c or p[_P_ACT_MIN] < -128 or p[_P_ACT_MAX] > 127
                or p[_P_ACT_MIN] > p[_P_ACT_MAX]):
            raise ValueError("acc_out_s8: invalid p, npix, q or ch")
        t = (q * ch + 3) & ~3
        _fit("wts", wts, 0, t + 12 * q)
        if not _shifts_ok(wts, t + 8 * q, q, -31, 30):
            raise ValueError("acc_out_s8: a shift outside [-31, 30]")
        _fit("acc", acc, 0, 4 * npix * q)
        _fit("out", out, out_off, max(0, (npix - 1) * out_c + q))
        zo = p[_P_OUT_ZP]
        e = 0
        n = npix * q
        while e < n:
            m = n - e
            if m > _CH:
                m = _CH
            if _acc_bias(self._a, acc, wts, t, e, m, q):
                raise ValueError("acc must be 4-byte aligned")
            _rq(self._a, m, e, q, wts, t + 4 * q, t + 8 * q, 4, out, out_off, out_c, zo, p[_P_ACT_MIN],
                p[_P_ACT_MAX], 0, 0)
            e += m

    def add_s8(self, p, out, out_off, a, a_off, b, b_off, n):
        _params(p, _PA_LEN)
        if (n < 0 or not 0 <= p[_PA_LEFT_SHIFT] <= 23 or p[_PA_S1] > 0 or p[_PA_S2] > 0
                or p[_PA_SO] > 0):
            raise ValueError("add_s8: invalid p or n")
        _fit("a", a, a_off, n)
        _fit("b", b, b_off, n)
        _fit("out", out, out_off, n)
        _add(p, out, out_off, a, a_off, b, b_off, n, self._a, self._b)

    def requant_s8(self, p, out, out_off, inp, in_off, n):
        _params(p, _PR_LEN)
        if n < 0 or p[_PR_SHIFT] > 31:
            raise ValueError("requant_s8: n < 0 or a shift above 31")
        _fit("inp", inp, in_off, n)
        _fit("out", out, out_off, n)
        _requant(p, out, out_off, inp, in_off, n, self._a)

    def leaky_relu_s8(self, p, out, out_off, inp, in_off, n):
        _params(p, _PL_LEN)
        if n < 0 or p[_PL_SHIFT_ID] > 31 or p[_PL_SHIFT_ALPHA] > 31:
            raise ValueError("leaky_relu_s8: n < 0 or a shift above 31")
        _fit("inp", inp, in_off, n)
        _fit("out", out, out_off, n)
        _leaky(p, out, out_off, inp, in_off, n, self._a)

    def mean_acc_s8(self, acc, inp, in_off, npix, c):
        if npix < 0 or c < 1:
            raise ValueError("mean_acc_s8: invalid npix or c")
        _fit("acc", acc, 0, 4 * c)
        _fit("inp", inp, in_off, npix * c)
        if _mean_acc(acc, inp, in_off, npix, c):
            raise ValueError("acc must be 4-byte aligned")

    def mean_out_s8(self, p, out, out_off, acc):
        _params(p, _PM_LEN)
        c = p[_PM_C]
        if c < 1 or p[_PM_COUNT] < 1 or not -31 <= p[_PM_SHIFT] <= 31:
            raise ValueError("mean_out_s8: invalid p")
        _fit("acc", acc, 0, 4 * c)
        _fit("out", out, out_off, c)
        if _mean_out(p, out, out_off, acc, self._a):
            raise ValueError("acc must be 4-byte aligned")

    def softmax_s8(self, p, out, out_off, inp, in_off, rows):
        _params(p, _PS_LEN)
        n = p[_PS_N]
        if rows < 0 or n < 1 or not 0 <= p[_PS_INPUT_LSHIFT] <= 31 or p[_PS_OUT_ZP] != -128:
            raise ValueError("softmax_s8: invalid p or rows")
        _fit("inp", inp, in_off, rows * n)
        _fit("out", out, out_off, rows * n)
        _softmax(p, out, out_off, inp, in_off, rows)
