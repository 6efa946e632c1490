"""The C kernels against the numpy reference on random parameters, the Prepare math (tiler/quant.py) on
hand-checked values, and refusals of bad arguments. test_kernels.py holds the TFLite-oracle tests."""

import numpy as np
import pytest

from tileswap.host import kernels_ref, native
from tileswap.tiler import quant

IMPLS = {"c": native.Kernels(), "ref": kernels_ref.Kernels()}
impls = pytest.mark.parametrize("impl", sorted(IMPLS))


# C against the numpy reference over random geometry and parameters TFLite models rarely produce (negative y0,
# bands running out before the window does, odd groups, large shifts). Output buffers start as the same
# random bytes, so a write outside the tile shows up as a difference.

def _same_or_both_refuse(call, what):
    outs = []
    for impl in ("c", "ref"):
        try:
            outs.append(bytes(call(IMPLS[impl])))
        except ValueError:
            outs.append(ValueError)
    assert outs[0] == outs[1], f"{what}: C and reference disagree"
    return outs[0] is not ValueError


def test_c_matches_reference_on_random_geometry():
    rng = np.random.default_rng(2024)
    ran = 0
    for trial in range(300):
        r = lambda lo, hi: int(rng.integers(lo, hi + 1))  # noqa: E731
        kind = ("conv", "dw", "max", "avg")[trial % 4]
        dm = r(1, 3) if kind == "dw" else 1
        in_w, in_c, in_h, out_w, oh = r(1, 9), r(1, 7), r(1, 6), r(1, 6), r(1, 4)
        out_c = in_c * dm if kind != "conv" else r(1, 9)
        kh, kw, sh, sw = r(1, 4), r(1, 4), r(1, 3), r(1, 3)
        dh, dw = (r(1, 2), r(1, 2)) if kind in ("conv", "dw") else (1, 1)
        lo, pad_l, y0, off = r(-128, 127), r(0, 2), r(-3, 2), r(0, 3)
        if kind == "avg":  # TFLite refuses a window entirely in padding: keep every window on the band
            pad_l, y0 = r(0, kw - 1), r(1 - kh, 0)
            out_w, oh = r(1, (in_w - 1 + pad_l) // sw + 1), r(1, (in_h - 1 - y0) // sh + 1)
        p = quant.conv_params(in_w=in_w, in_c=in_c, out_w=out_w, out_c=out_c, kh=kh, kw=kw, sh=sh, sw=sw, dh=dh,
                              dw=dw, pad_l=pad_l, in_zp=r(-128, 127), out_zp=r(-128, 127), out_scale=1.0, dm=dm)
        p[13], p[14] = lo, r(lo, 127)
        g = r(1, out_c // dm) * dm
        c0 = r(0, (out_c - g) // dm) * dm
        inp = rng.integers(-128, 128, off + in_h * in_w * in_c + 2, dtype=np.int8).tobytes()
        start = bytes(rng.integers(0, 256, off + oh * out_w * out_c + 2, dtype=np.uint8))
        taps = g * kh * kw * (in_c if kind == "conv" else 1)
        pay = quant.pack_weights_payload(rng.integers(-127, 128, taps, dtype=np.int8), rng.integers(-9999, 9999, g),
                                         rng.integers(1 << 30, 1 << 31, g), rng.integers(-14, 3, g))

        def call(k):
            out = bytearray(start)
            if kind == "conv":
                k.conv_s8(p, out, off, inp, off, in_h, y0, oh, pay, g)
            elif kind == "dw":
                k.dwconv_s8(p, out, off, inp, off, in_h, y0, oh, pay, c0, g)
            else:
                getattr(k, kind + "pool_s8")(p, out, off, inp, off, in_h, y0, oh, c0, g)
            return out
        ran += _same_or_both_refuse(call, f"{kind} trial {trial}")
    assert ran == 300


def test_c_matches_reference_on_random_elementwise():
    rng = np.random.default_rng(7)
    for trial in range(40):
        n, rows = int(rng.integers(1, 40)), int(rng.integers(1, 4))
        x = rng.integers(-128, 128, n * rows + 3, dtype=np.int8).tobytes()
        y = rng.integers(-128, 128, n * rows + 3, dtype=np.int8).tobytes()
        s = lambda: float(np.float32(rng.uniform(0.001, 0.5)))  # noqa: E731
        zp = lambda: int(rng.integers(-128, 128))  # noqa: E731
        pa = quant.add_params(in1_scale=s(), in1_zp=zp(), in2_scale=s(), in2_zp=zp(), out_scale=s(), out_zp=zp(),
                              fused=("NONE", "RELU", "RELU6", "RELU_N1_TO_1")[trial % 4])
        pr = quant.requant_params(in_scale=s(), in_zp=zp(), out_scale=s(), out_zp=zp())
        pm = quant.mean_params(c=n, count=rows, in_scale=s(), in_zp=zp(), out_scale=s(), out_zp=zp())
        ps = quant.softmax_params(n=n, in_scale=s() * 20)
        pf = quant.fc_params(n=n, out_c=5, in_zp=zp(), out_zp=zp(), out_scale=s())
        pay = quant.pack_weights_payload(rng.integers(-127, 128, 3 * n, dtype=np.int8), rng.integers(-999, 999, 3),
                                         rng.integers(1 << 30, 1 << 31, 3), rng.integers(-14, 1, 3))

        def mean(k):
            acc, out = bytearray(4 * n), bytearray(n)
            k.mean_acc_s8(acc, x, 3, rows, n)
            k.mean_out_s8(pm, out, 0, acc)
            return out
        for what, call in [("add", lambda k: _fill(lambda o: k.add_s8(pa, o, 1, x, 2, y, 3, n), n + 1)),
                           ("requant", lambda k: _fill(lambda o: k.requant_s8(pr, o, 0, x, 3, n * rows), n * rows)),
                           ("softmax", lambda k: _fill(lambda o: k.softmax_s8(ps, o, 2, x, 1, rows), n * rows + 2)),
                           ("fc", lambda k: _fill(lambda o: k.fc_s8(pf, o, 1, x, 2, rows, pay, 3), rows * 5 + 1)),
                           ("mean", mean)]:
            assert _same_or_both_refuse(call, f"{what} trial {trial}")


def _fill(run, size):
    out = bytearray((np.arange(size) * 37 % 256).astype(np.uint8))
    run(out)
    return out


def test_quantize_multiplier_edges():
    assert quant.quantize_multiplier(0.0) == (0, 0)
    assert quant.quantize_multiplier(0.5) == (1 << 30, 0)
    assert quant.quantize_multiplier(1.0) == (1 << 30, 1)
    assert quant.quantize_multiplier(0.75) == (3 << 29, 0)
    # q * 2**31 rounds up to 2**31: halved, shift + 1.
    assert quant.quantize_multiplier(1.0 - 2.0 ** -40) == (1 << 30, 1)
    # Round half away from zero: q = 0.5 + 2**-32 gives 2**30 + 0.5 -> 2**30 + 1.
    assert quant.quantize_multiplier(0.5 + 2.0 ** -32) == ((1 << 30) + 1, 0)
    # Shifts below -31 flush to zero (frexp exponent -31 is still kept).
    assert quant.quantize_multiplier(2.0 ** -33) == (0, 0)
    assert quant.quantize_multiplier(2.0 ** -32) == (1 << 30, -31)
    with pytest.raises(ValueError):
        quant.quantize_multiplier(-1.0)


def test_activation_range():
    assert quant.activation_range("NONE", 0.1, 3) == (-128, 127)
    assert quant.activation_range("RELU", 0.1, -100) == (-100, 127)
    assert quant.activation_range("RELU6", 0.05, -128) == (-128, -8)       # 6 / 0.05 = 120
    assert quant.activation_range("RELU6", 0.01, 0) == (0, 127)             # 600 clamps
    assert quant.activation_range("RELU_N1_TO_1", 0.04, 10) == (-15, 35)
    # 2.5 / 1.0 in float32 is a tie: TfLiteRound goes away from zero.
    assert quant.activation_range("RELU6", 2.4, 0)[1] == 3 and quant.activation_range("RELU6", 4.0, 0)[1] == 2
    with pytest.raises(ValueError):
        quant.activation_range("TANH", 0.1, 0)


def test_mean_params_fold_count():
    m, s = quant.quantize_multiplier(0.3 / 0.2)
    p = quant.mean_params(c=4, count=49, in_scale=0.3, in_zp=1, out_scale=0.2, out_zp=-2)
    assert list(p) == [4, 49, 1, -2, (m << 5) // 49, s - 5]
    # A tiny multiplier limits the fold so the shift stays >= -31.
    m, s = quant.quantize_multiplier(2.0 ** -29)
    p = quant.mean_params(c=1, count=1 << 10, in_scale=2.0 ** -29, in_zp=0, out_scale=1.0, out_zp=0)
    assert (p[5], p[4]) == (-31, (m << (31 + s)) >> 10)


def test_softmax_params():
    p = quant.softmax_params(n=10, in_scale=0.08194657415151596)
    assert list(p) == [10, 1407831424, 23, -248, -128]                       # checked against the interpreter
    with pytest.raises(ValueError):
        quant.softmax_params(n=10, in_scale=0.1, out_zp=0)


def test_pack_weights_payload_layout():
    pay = quant.pack_weights_payload(np.arange(5, dtype=np.int8).reshape(1, 5), [7], [1 << 30], [-3])
    assert pay == bytes(range(5)) + bytes(3) + (7).to_bytes(4, "little") + (1 << 30).to_bytes(4, "little") \
        + (-3).to_bytes(4, "little", signed=True)


@impls
def test_bad_arguments_raise_value_error(impl):
    k = IMPLS[impl]
    p = quant.conv_params(in_w=4, in_c=2, out_w=4, out_c=3, kh=3, kw=3, pad_l=1, in_zp=0, out_zp=0, out_scale=1.0)
    pay = quant.pack_weights_payload(np.zeros((3, 3, 3, 2), np.int8), None, [1 << 30] * 3, [0] * 3)
    with pytest.raises(ValueError):  # the band is one row short for in_h = 4
        k.conv_s8(p, bytearray(48), 0, bytes(24), 0, 4, -1, 4, pay, 3)
    with pytest.raises(ValueError):  # the output is too small for 4 rows
        k.conv_s8(p, bytearray(40), 0, bytes(32), 0, 4, -1, 4, pay, 3)
    pd = quant.dwconv_params(in_w=4, in_c=2, out_w=4, kh=3, kw=3, pad_l=1, in_zp=0, out_zp=0, out_scale=1.0, dm=2)
    pay = quant.pack_weights_payload(np.zeros((3, 3, 3), np.int8), None, [1 << 30] * 3, [0] * 3)
    with pytest.raises(ValueError):  # 3 channels are not a multiple of the depth multiplier
        k.dwconv_s8(pd, bytearray(64), 0, bytes(32), 0, 4, -1, 4, pay, 0, 3)


@impls
def test_softmax_row_too_flat_for_tflite(impl):
    """600 entries at the row max sum to >= 2**28: TFLite aborts (an assert in RoundingDivideByPOT); the
    kernels define the result as -128 everywhere instead of shifting by 32 or more."""
    p = quant.softmax_params(n=600, in_scale=0.1)
    out = bytearray(600)
    IMPLS[impl].softmax_s8(p, out, 0, bytes(600), 0, 1)
    assert out == bytes([128]) * 600
