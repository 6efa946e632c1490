"""LEAKY_RELU (issue 8): the kernels and tiler/quant.py's leaky_relu_params against TFLite's BUILTIN_REF
interpreter on every int8 input, for alphas and scales a converter picks and for ones it never would
(negative alpha, alpha > 1, identity multipliers > 1, zero points at the limits), and cases chosen so that
plausible other readings of TFLite's Prepare and Eval give other bytes."""

import numpy as np
import pytest

from tileswap.host import kernels_ref, native
from tileswap.tiler import quant

from _kernel_cases import assert_same, isolate, model, requantized, run_isolated
from _kernel_models import leaky_model, mbqm_single_np

IMPLS = {"c": native.Kernels(), "ref": kernels_ref.Kernels()}
X = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)

# (alpha, (in_scale, in_zp), (out_scale, out_zp)); the last four were found by search: there a float64
# multiplier (in_scale * alpha / out_scale in double) would quantize differently and change some output.
CASES = [
    (0.2, (0.05, -3), (0.04, 10)), (-0.5, (0.05, 7), (0.03, -20)), (1.7, (0.02, 0), (0.05, 5)),
    (0.0, (0.1, -128), (0.1, -128)), (0.01, (0.5, 100), (0.01, -100)), (3.0, (0.001, 0), (0.1, 0)),
    (-2.5, (0.3, 1), (0.2, 2)), (1.0, (0.07, 127), (0.07, -128)),
    (2.803273916244507, (0.10527358949184418, 72), (0.34128448367118835, 2)),
    (-0.6916636824607849, (0.1784674972295761, -92), (0.2946130037307739, -119)),
    (0.43162572383880615, (0.15319807827472687, -124), (0.26449692249298096, 95)),
    (-1.5140154361724854, (0.496908575296402, -99), (0.3385531008243561, 26)),
]


def _oracle(alpha, in_q, out_q):
    base = isolate(model(leaky_model, 16, 0.2, 2.0).tflite, "LEAKY_RELU")
    want, (ind,), outd = run_isolated(requantized(base, in_q=in_q, out_q=out_q, alpha=alpha), [X])
    (si, zi), (so, zo) = ind["quantization"], outd["quantization"]
    return want.reshape(-1), dict(in_scale=si, in_zp=zi, out_scale=so, out_zp=zo, alpha=np.float32(alpha))


@pytest.mark.parametrize("impl", sorted(IMPLS))
def test_leaky_relu_converted_model(impl):
    """The converter's own LEAKY_RELU (Keras LeakyReLU), every int8 input, at an output offset."""
    m = model(leaky_model, 16, 0.2, 2.0)
    want, (ind,), outd = run_isolated(isolate(m.tflite, "LEAKY_RELU"), [X])
    alpha = m.fb.subgraphs[0].operators[0].builtinOptions.alpha
    p = quant.leaky_relu_params(in_scale=ind["quantization"][0], in_zp=ind["quantization"][1],
                                out_scale=outd["quantization"][0], out_zp=outd["quantization"][1], alpha=alpha)
    out = bytearray(259)
    IMPLS[impl].leaky_relu_s8(p, out, 3, bytes(2) + X.tobytes(), 2, 256)
    assert out[:3] == bytes(3)
    assert_same(out[3:], want, "LEAKY_RELU (converted)")


@pytest.mark.parametrize("case", CASES, ids=str)
def test_leaky_relu_all_inputs(case):
    want, q = _oracle(*case)
    p = quant.leaky_relu_params(**q)
    for impl, k in IMPLS.items():
        out = bytearray(256)
        k.leaky_relu_s8(p, out, 0, X.tobytes(), 0, 256)
        assert_same(out, want, f"LEAKY_RELU {case} ({impl})")


def _predict(p, rounding):
    d = X.astype(np.int64).reshape(-1) - p[0]
    mult = np.where(d >= 0, p[2], p[4])
    shift = np.where(d >= 0, p[3], p[5])
    if rounding == "single":
        v = [int(mbqm_single_np(x, m, s)) for x, m, s in zip(d, mult, shift)]
    else:
        v = [kernels_ref.mbqm(int(x), int(m), int(s)) for x, m, s in zip(d, mult, shift)]
    return np.clip(np.array(v) + p[1], -128, 127)


def test_leaky_relu_readings_contradicted():
    """TFLite forms the multipliers in float32 and requantizes with double rounding: a float64 multiplier
    and single rounding each give other bytes on some of the cases, and TFLite sides with ours."""
    wrong = {"float64 multipliers": 0, "single rounding": 0}
    for case in CASES:
        want, q = _oracle(*case)
        p = list(quant.leaky_relu_params(**q))
        assert (_predict(p, "double") == want).all()
        m64 = quant._quantize_multiplier_signed(float(q["in_scale"]) * float(q["alpha"]) / float(q["out_scale"]))
        i64 = quant.quantize_multiplier(float(q["in_scale"]) / float(q["out_scale"]))
        wrong["float64 multipliers"] += (_predict(p[:2] + list(i64) + list(m64), "double") != want).any()
        wrong["single rounding"] += (_predict(p, "single") != want).any()
    assert all(wrong.values()), wrong


def test_leaky_relu_params_layout():
    p = quant.leaky_relu_params(in_scale=0.5, in_zp=3, out_scale=0.25, out_zp=-4, alpha=-0.5)
    assert list(p) == [3, -4, 1 << 30, 2, -(1 << 30), 1]      # identity 2.0 = 0.5 * 2**2; alpha -1.0 = -0.5 * 2**1
    assert quant._quantize_multiplier_signed(-1.0 + 2.0 ** -40) == (-(1 << 31), 0)   # rounds to INT32_MIN, kept
