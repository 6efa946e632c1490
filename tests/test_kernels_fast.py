"""The fast C kernels (ts_conv_s8, ts_dwconv_s8, ts_fc_s8: blocked, vectorised, with 1x1 and depthwise 3x3
paths) against the naive C kernels (ts_*_s8_ref) and the numpy reference on every path and its edges, and
against TensorFlow Lite on single-op models shaped to reach the fast paths (more channels than one
channel group, odd counts, 1x1 and 3x3 filters). The same calls run on an emulated Cortex-M4 in
test_cortexm.py, and here through the same harness compiled for this machine without the cffi build's
AVX2 clones (so the x86-64 baseline code is tested too)."""

import numpy as np
import pytest

from tileswap.host import cortexm, kernels_ref, native

from _kernel_cases import assert_same, model, op_named, random_inputs, run_fc, run_spatial
from _kernel_fast_cases import edge_cases, random_cases
from _kernel_models import conv_model, dwconv_model, fc_model

FAST, NAIVE, NUMPY = native.Kernels(), native.Kernels(naive=True), kernels_ref.Kernels()


def _agree(name, run, *, numpy_too=True):
    fast, naive = run(FAST), run(NAIVE)
    assert fast == naive, f"{name}: fast and naive C kernels differ" + (
        "" if fast is None or naive is None else
        f" (first at byte {next(i for i, (a, b) in enumerate(zip(fast, naive)) if a != b)})")
    if numpy_too:
        assert run(NUMPY) == fast, f"{name}: C kernels and numpy reference differ"
    return fast is not None


def test_fast_kernels_random_geometry():
    ran = sum(_agree(name, run) for name, run in random_cases(2025, 240))
    assert ran >= 200, f"only {ran} of 240 random calls were accepted"


@pytest.mark.parametrize("case", edge_cases(), ids=lambda c: c[0])
def test_fast_kernels_edges(case):
    name, run, big = case
    accepted = _agree(name, run, numpy_too=not big)
    assert accepted == (name != "fc refused shift"), name


def test_naive_is_naive():
    assert NAIVE._conv is not FAST._conv and NAIVE._dwconv is not FAST._dwconv and NAIVE._fc is not FAST._fc


FAST_CONV = [  # h, w, c, filters, kernel, strides, padding, dilation, activation
    (5, 6, 70, 130, 1, 1, "same", 1, "relu6"),      # 1x1, two channel groups and a bit, odd pixel count
    (7, 7, 33, 64, 3, 1, "same", 1, None),          # 3x3, taps of 33 channels (staged)
    (8, 8, 32, 24, 3, 2, "same", 1, "relu"),        # 3x3 stride 2, taps of 32 channels (widened in place)
]
FAST_DW = [(9, 9, 40, 1, 3, 1, "same", 1, "relu6"), (10, 9, 19, 1, 3, 2, "same", 1, None)]


@pytest.mark.parametrize("case", FAST_CONV, ids=str)
def test_fast_conv_tflite(case):
    m = model(conv_model, *case)
    for seed in (0, 1):
        op = op_named(m.run(random_inputs(m, seed)), "CONV_2D")
        for kern in (FAST, NAIVE):
            assert_same(run_spatial(kern, op), op.outputs[0].data, f"CONV_2D {case}")
            assert_same(run_spatial(kern, op, bands=[2, 1], group=48, seed=seed), op.outputs[0].data,
                        f"CONV_2D {case} in tiles")


@pytest.mark.parametrize("case", FAST_DW, ids=str)
def test_fast_dwconv_tflite(case):
    m = model(dwconv_model, *case)
    op = op_named(m.run(random_inputs(m, 0)), "DEPTHWISE_CONV_2D")
    for kern in (FAST, NAIVE):
        assert_same(run_spatial(kern, op), op.outputs[0].data, f"DEPTHWISE_CONV_2D {case}")
        assert_same(run_spatial(kern, op, bands=[3], group=7), op.outputs[0].data, f"DEPTHWISE_CONV_2D {case} tiles")


def test_fast_fc_tflite():
    m = model(fc_model, (301,), 37, None)
    for seed in (0, 1, 2):
        op = op_named(m.run(random_inputs(m, seed, full_range=seed == 2)), "FULLY_CONNECTED")
        for kern in (FAST, NAIVE):
            assert_same(run_fc(kern, op, group=6), op.outputs[0].data, "FULLY_CONNECTED 301 -> 37")


@pytest.mark.parametrize("cflags", [("-O3",), ("-O0",)], ids=" ".join)
def test_vectors_on_a_host_build(cflags, tmp_path):
    """The Cortex-M test vectors (every operator; _cortexm_vectors.py) through native/cortexm/harness.c built
    with the host's C compiler: the baseline x86-64 code (the cffi module runs its AVX2 clone here) and
    unoptimised code (no vectorisation) give the same bytes."""
    from _cortexm_vectors import vectors
    records, _ = vectors()
    exe = cortexm.build_host(str(tmp_path), cflags=cflags)
    failures = cortexm.check(exe, records, str(tmp_path))
    assert failures == [], "\n".join(failures[:10])


def test_smmlar_requantization_identity():
    """Cortex-M's fused requantization (ts_conv.c: rq3, rq_pairs) computes TFLite's double-rounding
    MultiplyByQuantizedMultiplier plus the output zero point as floor((SMMLAR(2x, m) + c0 - [x < 0]) / 2**rs),
    c0 = 2**(rs-1) + zp * 2**rs, SMMLAR(a, m) = floor((a*m + 2**31) / 2**32), for |x| < 2**30, m >= 0 and
    rs in [1, 21]; and the accumulate never leaves int32. Checked here on edge values (accumulators at the
    bound, every rounding tie of small quotients, multipliers 0, 1, 2**30, 2**31 - 1) and random ones."""
    rng = np.random.default_rng(7)
    lim = (1 << 30) - 1
    mults = [0, 1, 2, 3, 1 << 29, 1 << 30, (1 << 30) + 1, 1518500250, (1 << 31) - 2, (1 << 31) - 1]
    mults += [int(v) for v in rng.integers(0, 1 << 31, 40)]
    for rs in range(1, 22):
        for zp in (-128, -1, 0, 5, 127):
            c0 = (1 << (rs - 1)) + zp * (1 << rs)
            xs = {0, 1, -1, 2, -2, lim, -lim, lim - 1, -lim + 1}
            xs |= {int(v) for v in rng.integers(-lim, lim + 1, 60)}
            xs |= {int(v) for v in rng.integers(-3000, 3000, 60)}
            xs |= {s * (2 * (q << rs) + (1 << rs) + d) for s in (1, -1) for q in range(4) for d in (-2, -1, 0, 1)}
            for m in mults:
                for x in xs:
                    t = c0 + (-1 if x < 0 else 0)
                    mm = (t << 32) + 2 * x * m + (1 << 31)
                    assert -(1 << 31) <= (mm >> 32) < (1 << 31), (x, m, rs, zp)
                    assert (mm >> 32) >> rs == kernels_ref.mbqm(x, m, -rs) + zp, (x, m, rs, zp)
