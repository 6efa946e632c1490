"""Kernel calls that steer the fast C kernels (ts_conv.c, ts_dwconv.c, ts_fc.c) through every path and its
edges: random geometry, plus named shapes at each path's limits (the host's and Cortex-M's TS_COL_MAX, the
channel group TS_CONV_GC, depthwise blocks and leftovers, windows entirely in the padding, FC groups of
fewer than four, multipliers and shifts outside what TFLite's Prepare makes). Each case is a function of a
Kernels object (the docs/kernels.md API) returning the output bytes, or None if the kernel refused; the
output buffer starts as random bytes, so a write outside the tile shows. Used by test_kernels_fast.py
(fast against naive against numpy) and _cortexm_vectors.py (the same calls on the emulated Cortex-M4)."""

import numpy as np

from tileswap.tiler import quant


def _payload(rng, taps, g, *, odd_requant=False, extreme=False):
    """A weight payload of g channels with `taps` int8 weights per channel; with odd_requant some channels
    have multipliers or shifts outside TFLite's range (the fast requantizer's fallback); with extreme, shifts
    at both ends of [-31, 1], multipliers at both ends of [2**30, 2**31) and 0, biases near +-2**30."""
    mult = rng.integers(1 << 30, 1 << 31, g)
    shift = rng.integers(-14, 3, g)
    bias = rng.integers(-99999, 99999, g)
    if extreme:   # "down": right shifts only (Cortex-M's one-multiply requantization covers all channels)
        shift = np.resize([-31, -30, -2, -1, -16, -5] if extreme == "down" else [-31, -30, -2, -1, 0, 1, -16], g)
        mult = np.resize([1 << 30, (1 << 31) - 1, 0, 1518500250], g)
        bias = np.resize([(1 << 30) - 7, -(1 << 30), 5, -(1 << 29)], g)
    if odd_requant and g > 2:
        mult[0], shift[1], mult[2] = -(1 << 31), -40, 0      # shifts above 31 are undefined (ts_mbqm)
    return quant.pack_weights_payload(rng.integers(-128, 128, g * taps, dtype=np.int8), bias, mult, shift)


def _call(method, size, rng, *args):
    start = bytes(rng.integers(0, 256, size, dtype=np.uint8))

    def run(k):
        out = bytearray(start)
        try:
            getattr(k, method)(*args[:1], out, *args[1:])
        except ValueError:
            return None
        return bytes(out)
    return run


def conv_case(rng, *, in_w, in_c, out_w, g, kh, kw, sh=1, sw=1, dh=1, dw=1, pad_l=0, in_h, y0, oh, out_c=None,
              off=3, odd_requant=False, fused=None, extreme=False):
    out_c = out_c or g
    p = quant.conv_params(in_w=in_w, in_c=in_c, out_w=out_w, out_c=out_c, kh=kh, kw=kw, sh=sh, sw=sw, dh=dh, dw=dw,
                          pad_l=pad_l, in_zp=int(rng.integers(-128, 128)), out_zp=int(rng.integers(-128, 128)),
                          out_scale=1.0)
    lo = int(rng.integers(-128, 40)) if fused is None else fused[0]
    p[13], p[14] = lo, (int(rng.integers(lo, 128)) if fused is None else fused[1])
    inp = rng.integers(-128, 128, off + in_h * in_w * in_c + 2, dtype=np.int8).tobytes()
    pay = _payload(rng, kh * kw * in_c, g, odd_requant=odd_requant, extreme=extreme)
    return _call("conv_s8", off + oh * out_w * out_c + 2, rng, p, off, inp, off, in_h, y0, oh, pay, g)


def smmlar_case(rng, *, in_w, in_c, out_w, g, kh, kw, in_h, y0, oh, pad_l=0, fused=None, sat=False, over=False,
                out_c=None):
    """A convolution for Cortex-M's fused SMMLAR requantization (ts_conv.c: fused_ok) at its limits: shifts
    -1 and -21, multipliers 0, 2**30 (every other output a rounding tie), 2**31 - 1; biases at +-(2**30 - 1 -
    K * 128 * 255), with `sat` all inputs at x - in_zp = 255 and weights -128 or 127 so that accumulators
    reach +-(2**30 - 1). `over`: one channel just past a limit (bias + 1, or shift -22), so the tile takes the
    separate requantization."""
    out_c = out_c or g
    taps = kh * kw * in_c
    lim = (1 << 30) - 1 - taps * 128 * 255
    in_zp = -128 if sat else int(rng.integers(-128, 128))
    p = quant.conv_params(in_w=in_w, in_c=in_c, out_w=out_w, out_c=out_c, kh=kh, kw=kw, pad_l=pad_l, in_zp=in_zp,
                          out_zp=int(rng.integers(-128, 128)), out_scale=1.0)
    lo = int(rng.integers(-128, 40)) if fused is None else fused[0]
    p[13], p[14] = lo, (int(rng.integers(lo, 128)) if fused is None else fused[1])
    off = 1
    if sat:
        inp = np.full(off + in_h * in_w * in_c + 2, 127, np.int8).tobytes()
        wts = np.repeat(np.resize(np.array([-128, 127, -128, 127, 5], np.int8), g), taps)
        bias = np.resize([-lim, lim, lim, -lim, 0], g)
    else:
        inp = rng.integers(-128, 128, off + in_h * in_w * in_c + 2, dtype=np.int8).tobytes()
        wts = rng.integers(-128, 128, g * taps, dtype=np.int8)
        bias = np.resize([lim, -lim, 5, -3, 12345, -99999], g)
    shift = np.resize([-1, -21, -2, -13, -1, -8, -5], g)
    mult = np.resize([1 << 30, (1 << 31) - 1, 0, 1518500250, 1 << 30, (1 << 30) + 1, 1 << 30], g)
    if over:
        if over == "shift":
            shift[-1] = -22
        else:
            bias[-1] = lim + 1
    pay = quant.pack_weights_payload(wts, bias, mult, shift)
    return _call("conv_s8", off + oh * out_w * out_c + 2, rng, p, off, inp, off, in_h, y0, oh, pay, g)


def requant_sweep_case(rng, fused, *, g=63, zp=0):
    """A 1x1 convolution whose accumulators are set by hand (weights (w, 0, 0, 0), 256 pixels x0 = -128 ..
    127, in_zp 0: acc = bias + w * x0; output zero point zp) around the rounding ties of every right shift 1 .. 21 (multiplier
    2**30: SRDHM halves exactly) on both sides of zero, plus other multipliers; for the fused SMMLAR
    requantization on Cortex-M (ts_conv.c: fused_ok), with the clamp `fused`."""
    p = quant.conv_params(in_w=16, in_c=4, out_w=16, out_c=g + 1, kh=1, kw=1, pad_l=0, in_zp=0,
                          out_zp=zp, out_scale=1.0)
    p[13], p[14] = fused
    inp = np.repeat(np.arange(-128, 128, dtype=np.int8), 4).tobytes()
    wts = np.zeros((g, 4), np.int8)
    bias, mult, shift = np.zeros(g, np.int64), np.zeros(g, np.int64), np.zeros(g, np.int64)
    for k in range(g):
        rs = 1 + k % 21
        q = int(rng.integers(-40, 40))
        wts[k, 0] = (1, -1, 1, 3)[k % 4]
        shift[k] = -rs
        mult[k] = (1 << 30) if k % 3 else int(rng.integers(1 << 30, 1 << 31))
        bias[k] = 2 * (q * (1 << rs) + (1 << (rs - 1)))     # h = bias / 2 + ... sits on a tie at x0 = 0
    pay = quant.pack_weights_payload(wts, bias, mult, shift)
    return _call("conv_s8", 256 * (g + 1) + 1, rng, p, 0, inp, 0, 16, 0, 16, pay, g)


def dwconv_case(rng, *, in_w, in_c, out_w, kh, kw, c0=0, g=None, dm=1, sh=1, sw=1, dh=1, dw=1, pad_l=0, in_h, y0,
                oh, off=2, odd_requant=False, extreme=False):
    g = g or in_c * dm - c0
    p = quant.dwconv_params(in_w=in_w, in_c=in_c, out_w=out_w, kh=kh, kw=kw, sh=sh, sw=sw, dh=dh, dw=dw, pad_l=pad_l,
                            in_zp=int(rng.integers(-128, 128)), out_zp=int(rng.integers(-128, 128)), out_scale=1.0,
                            dm=dm)
    lo = int(rng.integers(-128, 40))
    p[13], p[14] = lo, int(rng.integers(lo, 128))
    inp = rng.integers(-128, 128, off + in_h * in_w * in_c + 1, dtype=np.int8).tobytes()
    pay = _payload(rng, kh * kw, g, odd_requant=odd_requant, extreme=extreme)
    return _call("dwconv_s8", off + oh * out_w * in_c * dm + 1, rng, p, off, inp, off, in_h, y0, oh, pay, c0, g)


def fc_case(rng, *, n, g, rows=1, out_c=None, off=1, odd_shift=False):
    out_c = out_c or g
    p = quant.fc_params(n=n, out_c=out_c, in_zp=int(rng.integers(-128, 128)), out_zp=int(rng.integers(-128, 128)),
                        out_scale=1.0)
    lo = int(rng.integers(-128, 40))
    p[4], p[5] = lo, int(rng.integers(lo, 128))
    inp = rng.integers(-128, 128, off + rows * n + 3, dtype=np.int8).tobytes()
    shift = rng.integers(-14, 1, g)
    if odd_shift:
        shift[-1] = 31                       # beyond the single-rounding multiply: refused
    pay = quant.pack_weights_payload(rng.integers(-128, 128, g * n, dtype=np.int8), rng.integers(-99999, 99999, g),
                                     rng.integers(1 << 30, 1 << 31, g), shift)
    return _call("fc_s8", off + (rows - 1) * out_c + g + 2, rng, p, off, inp, off, rows, pay, g)


def random_cases(seed, count):
    """`count` random conv / depthwise / FC calls (small enough for the numpy reference)."""
    rng = np.random.default_rng(seed)
    r = lambda lo, hi: int(rng.integers(lo, hi + 1))  # noqa: E731
    cases = []
    for i in range(count):
        kind = ("conv", "dw", "fc")[i % 3]
        if kind == "fc":
            cases.append((f"fc {i}", fc_case(rng, n=r(1, 70), g=r(1, 13), rows=r(1, 3))))
            continue
        in_w, in_h, out_w, oh = r(1, 8), r(1, 6), r(1, 6), r(1, 4)
        kh, kw, sh, sw, dh, dw = r(1, 4), r(1, 4), r(1, 3), r(1, 3), r(1, 2), r(1, 2)
        geom = dict(in_w=in_w, out_w=out_w, kh=kh, kw=kw, sh=sh, sw=sw, dh=dh, dw=dw, pad_l=r(0, 2), in_h=in_h,
                    y0=r(-3, 2), oh=oh, odd_requant=i % 7 == 0)
        if kind == "conv":
            in_c = int(rng.choice([1, 2, 3, 4, 5, 8, 12, 16, 17]))
            g = r(1, 9)
            cases.append((f"conv {i}", conv_case(rng, in_c=in_c, g=g, out_c=g + r(0, 3), **geom)))
        else:
            dm = r(1, 2) if i % 5 == 0 else 1
            in_c = r(1, 21)
            c0 = r(0, in_c - 1) * dm if i % 4 == 0 else 0
            cases.append((f"dw {i}", dwconv_case(rng, in_c=in_c, dm=dm, c0=c0, g=in_c * dm - c0, **geom)))
    return cases


def edge_cases(seed=11):
    """Shapes at each fast path's limits; some too large for the numpy reference (`big`)."""
    rng = np.random.default_rng(seed)
    c = []
    # CONV_2D: the 1x1 path (pixel pairs across rows, an odd last pixel, odd channel counts, a channel group
    # boundary at 64), taps of 4k channels (widened in place) and of other counts (staged).
    c.append(("1x1 odd pixels and channels", conv_case(rng, in_w=5, in_c=24, out_w=5, g=67, kh=1, kw=1, in_h=3, y0=0,
                                                         oh=3, out_c=70), False))
    c.append(("1x1 stride 2, one pixel", conv_case(rng, in_w=3, in_c=7, out_w=1, g=3, kh=1, kw=1, sh=2, sw=2, in_h=1,
                                                     y0=0, oh=1), False))
    c.append(("1x1 padded pixels", conv_case(rng, in_w=3, in_c=8, out_w=5, g=4, kh=1, kw=1, pad_l=1, in_h=2, y0=-1,
                                               oh=4), False))
    c.append(("3x3 taps of 32 channels", conv_case(rng, in_w=7, in_c=32, out_w=7, g=33, kh=3, kw=3, pad_l=1, in_h=6,
                                                     y0=-1, oh=5), False))
    c.append(("3x3 taps of 3 channels, stride 2", conv_case(rng, in_w=9, in_c=3, out_w=5, g=16, kh=3, kw=3, sh=2,
                                                              sw=2, pad_l=1, in_h=9, y0=-1, oh=5), False))
    c.append(("5x3 dilated, 130 channels", conv_case(rng, in_w=8, in_c=6, out_w=4, g=130, kh=5, kw=3, dh=2, dw=2,
                                                       pad_l=2, in_h=8, y0=-2, oh=3, odd_requant=True), False))
    # Filters longer than TS_COL_MAX (256 on Cortex-M, 2048 on the host): gathered in pieces.
    c.append(("3x3 K=576 (> Cortex-M column)", conv_case(rng, in_w=4, in_c=64, out_w=4, g=9, kh=3, kw=3, pad_l=1,
                                                           in_h=4, y0=-1, oh=4), False))
    c.append(("3x3 K=333 staged in pieces", conv_case(rng, in_w=4, in_c=37, out_w=3, g=5, kh=3, kw=3, in_h=5, y0=0,
                                                        oh=3), False))
    c.append(("1x1 K=300 (> Cortex-M column)", conv_case(rng, in_w=3, in_c=300, out_w=3, g=70, kh=1, kw=1, in_h=1,
                                                           y0=0, oh=1), False))
    c.append(("3x3 K=2169 (> host column)", conv_case(rng, in_w=3, in_c=241, out_w=3, g=3, kh=3, kw=3, pad_l=1, in_h=3,
                                                        y0=-1, oh=3), True))
    c.append(("1x1 K=2100 (> host column)", conv_case(rng, in_w=2, in_c=2100, out_w=2, g=66, kh=1, kw=1, in_h=1,
                                                        y0=0, oh=1), True))
    c.append(("conv extreme requantization", conv_case(rng, in_w=5, in_c=40, out_w=5, g=28, kh=1, kw=1, in_h=3,
                                                         y0=0, oh=3, extreme=True), False))
    c.append(("conv extreme requantization, no activation", conv_case(rng, in_w=5, in_c=12, out_w=5, g=28, kh=3,
                                                                        kw=3, pad_l=1, in_h=3, y0=-1, oh=3,
                                                                        extreme=True, fused=(-128, 127)), False))
    for fused in ((-128, 127), (-128, 60), None):
        c.append((f"conv extreme right shifts {fused}", conv_case(rng, in_w=5, in_c=20, out_w=5, g=24, kh=1, kw=1,
                                                                   in_h=3, y0=0, oh=3, extreme="down", fused=fused),
                  False))
    c.append(("dw extreme right shifts", dwconv_case(rng, in_w=5, in_c=24, out_w=5, kh=3, kw=3, pad_l=1, in_h=5,
                                                       y0=-1, oh=5, extreme="down"), False))
    c.append(("conv full-range clamps", conv_case(rng, in_w=4, in_c=16, out_w=4, g=8, kh=1, kw=1, in_h=2, y0=0, oh=2,
                                                    fused=(-128, 127)), False))
    # Cortex-M's fused SMMLAR requantization (ts_conv.c: fused_ok): each clamp kind, odd channels and pixels,
    # filters not a multiple of 4 (the C loop), longer than the column, and just outside its limits.
    for fused in ((-128, 127), (-128, 20), (-50, 127), (-100, 90), None):
        for sat in (False, True):
            c.append((f"smmlar 1x1 {fused} sat={sat}", smmlar_case(rng, in_w=5, in_c=24, out_w=5, g=13, kh=1, kw=1,
                                                                   in_h=3, y0=0, oh=3, fused=fused, sat=sat,
                                                                   out_c=15), False))
    c.append(("smmlar 3x3 padded, 2 channels", smmlar_case(rng, in_w=5, in_c=8, out_w=5, g=2, kh=3, kw=3, pad_l=1,
                                                          in_h=5, y0=-1, oh=5), False))
    c.append(("smmlar 1 channel, 1 pixel", smmlar_case(rng, in_w=1, in_c=16, out_w=1, g=1, kh=1, kw=1, in_h=1, y0=0,
                                                      oh=1), False))
    c.append(("smmlar K=27 (C loop)", smmlar_case(rng, in_w=6, in_c=3, out_w=6, g=10, kh=3, kw=3, pad_l=1, in_h=6,
                                                 y0=-1, oh=3, sat=True), False))
    c.append(("smmlar 1x1 K=6 (C loop)", smmlar_case(rng, in_w=4, in_c=6, out_w=4, g=7, kh=1, kw=1, in_h=2, y0=0,
                                                    oh=2), False))
    c.append(("smmlar K=576 in pieces", smmlar_case(rng, in_w=4, in_c=64, out_w=4, g=71, kh=3, kw=3, pad_l=1, in_h=4,
                                                   y0=-1, oh=3, sat=True), False))
    c.append(("smmlar K=576 in pieces, random", smmlar_case(rng, in_w=4, in_c=64, out_w=4, g=9, kh=3, kw=3, pad_l=1,
                                                           in_h=4, y0=-1, oh=3, fused=(-128, 0)), False))
    for fused, zp in (((-128, 127), 0), ((-128, 3), 0), ((-7, 127), 0), ((-60, 50), 0), ((-128, 127), 50)):
        c.append((f"smmlar rounding ties {fused} zp {zp}", requant_sweep_case(rng, fused, zp=zp), False))
    for over in ("shift", "bias"):
        c.append((f"smmlar limit: {over}", smmlar_case(rng, in_w=4, in_c=16, out_w=4, g=6, kh=1, kw=1, in_h=2, y0=0,
                                                       oh=2, sat=True, over=over), False))
    # DEPTHWISE_CONV_2D: 3x3 windows (full and clipped), channels in blocks of 4 / 16 with leftovers, windows
    # entirely in the padding (no taps), a window of more taps than the fast kernel lists, dm > 1.
    c.append(("dw 3x3 19 channels", dwconv_case(rng, in_w=6, in_c=19, out_w=6, kh=3, kw=3, pad_l=1, in_h=6, y0=-1,
                                                  oh=6, odd_requant=True), False))
    c.append(("dw 3x3 stride 2, 70 channels", dwconv_case(rng, in_w=7, in_c=70, out_w=4, kh=3, kw=3, sh=2, sw=2,
                                                            pad_l=1, in_h=7, y0=-1, oh=4), False))
    c.append(("dw channel group of a tile", dwconv_case(rng, in_w=5, in_c=40, out_w=5, kh=3, kw=3, c0=12, g=21,
                                                          pad_l=1, in_h=4, y0=-1, oh=3), False))
    c.append(("dw windows in the padding", dwconv_case(rng, in_w=2, in_c=8, out_w=6, kh=2, kw=2, pad_l=3, in_h=2,
                                                         y0=-4, oh=4), False))
    c.append(("dw 5x5 (the largest listed window)", dwconv_case(rng, in_w=7, in_c=9, out_w=7, kh=5, kw=5, pad_l=2,
                                                                  in_h=7, y0=-2, oh=7), False))
    c.append(("dw 9x9 (reference)", dwconv_case(rng, in_w=9, in_c=5, out_w=3, kh=9, kw=9, pad_l=3, in_h=9, y0=-3,
                                                  oh=3), False))
    c.append(("dw multiplier 3 (reference)", dwconv_case(rng, in_w=4, in_c=3, out_w=4, kh=3, kw=3, dm=3, pad_l=1,
                                                           in_h=4, y0=-1, oh=4), False))
    # FULLY_CONNECTED: groups of 4 features and the last 1, 2 or 3; lengths not a multiple of 4; several rows.
    for g in (1, 2, 3, 4, 5, 6, 7, 37):
        c.append((f"fc {g} features", fc_case(rng, n=int(rng.integers(1, 90)), g=g, rows=1 + g % 3, out_c=g + 2),
                  False))
    c.append(("fc 1280 inputs", fc_case(rng, n=1280, g=10), False))
    c.append(("fc refused shift", fc_case(rng, n=8, g=3, odd_shift=True), False))
    return c
