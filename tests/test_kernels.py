"""Kernels and their Prepare math against TensorFlow Lite's reference kernels, bit for bit.

Each case converts a tiny single-op Keras model to int8 TFLite, runs it with the BUILTIN_REF interpreter,
rebuilds the op's parameters with tiler/quant.py from the model's tensors, runs the C kernels and the numpy
reference on the same input, and demands TFLite's exact output bytes, also when the output is computed in
row bands and channel groups (the tiler's tiles) in any order."""

import numpy as np
import pytest

from tileswap.host import kernels_ref, native
from tileswap.tiler import quant

from _kernel_cases import (assert_same, isolate, model, op_named, random_inputs, run_add, run_fc, run_isolated,
                           run_ksplit, run_mean, run_requant, run_softmax, run_spatial)
from _kernel_models import (add_model, conv_model, designed_model, dwconv_model, fc_model, mbqm_np, mbqm_single_np,
                            mean_model, pool_model, softmax_concat_model, softmax_model, solve_row)

IMPLS = {"c": native.Kernels(), "ref": kernels_ref.Kernels()}
impls = pytest.mark.parametrize("impl", sorted(IMPLS))


def check_op(builder, case, name, kern, run, *, seeds=(0, 1), full_range=False, **kw):
    m = model(builder, *case)
    for seed in seeds:
        op = op_named(m.run(random_inputs(m, seed, full_range=full_range)), name)
        assert_same(run(kern, op, **kw), op.outputs[0].data, f"{name} {case} seed {seed}")
    return op


CONV_CASES = [  # h, w, c, filters, kernel, strides, padding, dilation, activation[, positive input]
    (6, 5, 3, 7, 1, 1, "same", 1, None),
    (9, 9, 5, 6, 3, 1, "same", 1, "relu"),
    (10, 9, 4, 5, 5, 1, "valid", 1, None),
    (9, 8, 3, 4, (3, 1), 2, "same", 1, "relu6"),
    (9, 9, 3, 8, 3, 2, "valid", 1, None),
    (8, 8, 2, 3, 4, 2, "same", 1, None),           # even kernel: padding split unevenly
    (9, 9, 3, 4, 3, 1, "same", 2, None),
    (7, 7, 3, 5, 3, 1, "same", 1, "relu", True),   # input zero point -128
]
DW_CASES = [  # h, w, c, depth multiplier, kernel, strides, padding, dilation, activation
    (9, 9, 5, 1, 3, 1, "same", 1, "relu6"),
    (9, 8, 3, 2, 3, 2, "same", 1, None),
    (10, 10, 4, 2, 5, 1, "valid", 1, "relu"),
    (9, 9, 3, 1, 3, 1, "valid", 2, None),
]
POOL_CASES = [  # kind, h, w, c, window, strides, padding
    ("max", 9, 9, 5, 3, 2, "same"),
    ("avg", 9, 9, 5, 3, 2, "same"),
    ("avg", 7, 7, 3, 2, 2, "same"),
    ("avg", 6, 5, 4, 3, 1, "same"),
    ("max", 8, 7, 3, 2, 2, "valid"),
]


KSPLIT_CASES = [  # h, w, c, filters, 1x1, activation[, positive input]; then (chunk, output group)
    ((7, 7, 24, 10, 1, 1, "same", 1, "relu6"), (8, 4)),
    ((5, 6, 12, 7, 1, 1, "valid", 1, None), (3, 7)),
    ((4, 4, 30, 9, 1, 1, "same", 1, "relu", True), (10, 2)),   # input zero point -128
    ((3, 5, 6, 5, 1, 1, "same", 1, None), (6, 5)),              # one chunk: first and last at once
]


@impls
@pytest.mark.parametrize("over", [False, True], ids=["out", "over-acc"])
@pytest.mark.parametrize("case, split", KSPLIT_CASES, ids=str)
def test_conv_ksplit(impl, case, split, over):
    """A 1x1 convolution summed over its input in channel chunks (conv_acc_s8), requantized once
    (acc_out_s8), into its own buffer or over the int32 sums it reads (device/ops.py puts a chunked or
    one-group output band there): TFLite's exact output bytes."""
    check_op(conv_model, case, "CONV_2D", IMPLS[impl], run_ksplit, chunk=split[0], group=split[1], over=over)


@impls
@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv(impl, case):
    check_op(conv_model, case, "CONV_2D", IMPLS[impl], run_spatial)


@impls
@pytest.mark.parametrize("case", DW_CASES, ids=str)
def test_dwconv(impl, case):
    check_op(dwconv_model, case, "DEPTHWISE_CONV_2D", IMPLS[impl], run_spatial)


@impls
@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_pool(impl, case):
    check_op(pool_model, case, "MAX_POOL_2D" if case[0] == "max" else "AVERAGE_POOL_2D", IMPLS[impl], run_spatial)


TILED = [(conv_model, CONV_CASES[1], "CONV_2D", 4), (conv_model, CONV_CASES[3], "CONV_2D", 3),
         (conv_model, CONV_CASES[6], "CONV_2D", 3), (dwconv_model, DW_CASES[1], "DEPTHWISE_CONV_2D", 2),
         (dwconv_model, DW_CASES[2], "DEPTHWISE_CONV_2D", 4), (pool_model, POOL_CASES[1], "AVERAGE_POOL_2D", 2),
         (pool_model, POOL_CASES[0], "MAX_POOL_2D", 3)]


@impls
@pytest.mark.parametrize("builder,case,name,group", TILED, ids=lambda v: str(v) if isinstance(v, tuple) else None)
def test_tiling_invariance(impl, builder, case, name, group):
    """Row bands (with clipped input bands and y0) and channel groups, in shuffled order, give exactly the
    bytes of one whole-tensor tile, which are TFLite's."""
    kern = IMPLS[impl]
    m = model(builder, *case)
    op = op_named(m.run(random_inputs(m, 3)), name)
    whole = run_spatial(kern, op)
    assert_same(whole, op.outputs[0].data, f"{name} one tile")
    for bands in ([1], [2], [3, 1], [2, 3]):
        assert_same(run_spatial(kern, op, bands=bands, group=group, seed=len(bands)), op.outputs[0].data,
                    f"{name} bands {bands} groups of {group}")


@impls
def test_conv_saturates(impl):
    """Inputs far outside the calibrated range drive the output to both int8 limits, or to RELU6's bounds
    (6.0 quantized by TFLite's float32 rule)."""
    op = check_op(conv_model, CONV_CASES[2], "CONV_2D", IMPLS[impl], run_spatial, full_range=True)
    assert op.outputs[0].data.min() == -128 and op.outputs[0].data.max() == 127
    op = check_op(conv_model, CONV_CASES[3], "CONV_2D", IMPLS[impl], run_spatial, full_range=True)
    y = op.outputs[0]
    assert op.fused == "RELU6" and (y.data.min(), y.data.max()) == quant.activation_range("RELU6", y.scale, y.zp)


@impls
@pytest.mark.parametrize("case,group", [(((13,), 7, "relu"), None), (((3, 9), 5, None), 2),
                                        (((16,), 6, None, False), 4)], ids=str)
def test_fc(impl, case, group):
    check_op(fc_model, case, "FULLY_CONNECTED", IMPLS[impl], run_fc, group=group, seeds=range(4))


@impls
@pytest.mark.parametrize("case", [(24, 1.0, 5.0, True), (17, 3.0, 0.2, False)], ids=str)
def test_add(impl, case):
    op = check_op(add_model, case, "ADD", IMPLS[impl], run_add, seeds=(0, 1, 2))
    assert op.inputs[0].scale != op.inputs[1].scale


@impls
@pytest.mark.parametrize("case", [(32, 4, 3.0), (32, 4, 0.05), (64, 4, 0.005, 0.1)], ids=str)
def test_quantize(impl, case):
    """QUANTIZE int8 -> int8 in front of a CONCATENATION: scaling down (shift < 0, ~1) and up (shift > 0)."""
    check_op(softmax_concat_model, case, "QUANTIZE", IMPLS[impl], run_requant, seeds=range(4))
    check_op(softmax_concat_model, case, "QUANTIZE", IMPLS[impl], run_requant, seeds=(5,), full_range=True)


@impls
@pytest.mark.parametrize("case", [(5, 6, 7, False), (7, 7, 3, True), (4, 4, 5, False, True), (12, 11, 3, False)],
                         ids=str)
def test_mean(impl, case):
    check_op(mean_model, case, "MEAN", IMPLS[impl], run_mean, seeds=(0, 1, 2))


@impls
@pytest.mark.parametrize("case", [((10,), 3.0), ((5,), 20.0), ((3, 7), 1.0), ((64,), 0.3)], ids=str)
def test_softmax(impl, case):
    check_op(softmax_model, case, "SOFTMAX", IMPLS[impl], run_softmax, seeds=range(5))
    check_op(softmax_model, case, "SOFTMAX", IMPLS[impl], run_softmax, seeds=(7,), full_range=True)


# The op alone (see `isolate`), fed inputs chosen to cover every case or to separate TFLite's arithmetic from
# plausible other readings of its source; each such reading must be contradicted at least once.

@impls
@pytest.mark.parametrize("case", [(32, 4, 3.0), (32, 4, 0.05), (64, 4, 0.005, 0.1)], ids=str)
def test_quantize_all_inputs(impl, case):
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    want, (ind,), outd = run_isolated(isolate(model(softmax_concat_model, *case).tflite, "QUANTIZE"), [x])
    (si, zi), (so, zo) = ind["quantization"], outd["quantization"]
    p = quant.requant_params(in_scale=si, in_zp=zi, out_scale=so, out_zp=zo)
    out = bytearray(256)
    IMPLS[impl].requant_s8(p, out, 0, x.tobytes(), 0, 256)
    assert_same(out, want, f"QUANTIZE {case}, every int8 input")


@impls
@pytest.mark.parametrize("case", [(24, 1.0, 5.0, True), (17, 3.0, 0.2, False)], ids=str)
def test_add_all_input_pairs(impl, case):
    m = model(add_model, *case)
    fused = op_named(m.run(random_inputs(m, 0)), "ADD").fused
    a = np.repeat(np.arange(-128, 128), 256).astype(np.int8)[None]
    b = np.tile(np.arange(-128, 128), 256).astype(np.int8)[None]
    want, (da, db), do = run_isolated(isolate(m.tflite, "ADD"), [a, b])
    p = quant.add_params(in1_scale=da["quantization"][0], in1_zp=da["quantization"][1],
                         in2_scale=db["quantization"][0], in2_zp=db["quantization"][1],
                         out_scale=do["quantization"][0], out_zp=do["quantization"][1], fused=fused)
    out = bytearray(a.size)
    IMPLS[impl].add_s8(p, out, 0, a.tobytes(), 0, b.tobytes(), 0, a.size)
    assert_same(out, want, f"ADD {case}, every pair of int8 inputs")


@impls
@pytest.mark.parametrize("case", [(5, 6, 7, False), (7, 7, 3, True), (4, 4, 5, False, True), (12, 11, 3, False)],
                         ids=str)
def test_mean_all_sums(impl, case):
    """One channel per possible sum of the H*W window: every accumulator MEAN can see. Requantizing with a
    single rounding instead of TFLite's double rounding must be caught."""
    h, w = case[0], case[1]
    n = h * w
    sums = np.arange(-128 * n, 127 * n + 1)
    cols = np.floor_divide(sums, n) + (np.arange(n)[:, None] < sums - np.floor_divide(sums, n) * n)
    x = cols.T.reshape(-1, h, w).transpose(1, 2, 0)[None].astype(np.int8)      # (1, h, w, channels)
    want, (ind,), outd = run_isolated(isolate(model(mean_model, *case).tflite, "MEAN"), [x])
    (si, zi), (so, zo) = ind["quantization"], outd["quantization"]
    p = quant.mean_params(c=sums.size, count=n, in_scale=si, in_zp=zi, out_scale=so, out_zp=zo)
    acc, out = bytearray(4 * sums.size), bytearray(sums.size)
    IMPLS[impl].mean_acc_s8(acc, x.tobytes(), 0, n, sums.size)
    IMPLS[impl].mean_out_s8(p, out, 0, acc)
    assert_same(out, want, f"MEAN {case}, every window sum")
    single = np.clip(mbqm_single_np(sums - zi * n, p[4], p[5]) + zo, -128, 127)
    assert (single != want.reshape(-1)).any() or case[:2] == (4, 4)


@pytest.mark.parametrize("case", [((10,), 3.0), ((5,), 20.0), ((64,), 0.3)], ids=str)
def test_softmax_many_rows(case):
    """20000 rows through TFLite at once (C kernel on all, numpy reference on 400). The optimized kernel's
    float exp table would differ on a few of them: TFLite's reference path is gemmlowp fixed point."""
    (n,), scale = case
    m = model(softmax_model, *case)
    zp = m.input_details()[0]["quantization"][1]
    rng = np.random.default_rng(5)
    spread = rng.uniform(2, 80, (20000, 1))
    x = np.clip(np.rint(zp + spread * rng.standard_normal((20000, n))), -128, 127).astype(np.int8)
    want, (ind,), outd = run_isolated(isolate(m.tflite, "SOFTMAX"), [x])
    p = quant.softmax_params(n=n, in_scale=ind["quantization"][0], out_scale=outd["quantization"][0],
                             out_zp=outd["quantization"][1])
    for impl, rows in (("c", 20000), ("ref", 400)):
        out = bytearray(rows * n)
        IMPLS[impl].softmax_s8(p, out, 0, x.tobytes(), 0, rows)
        assert_same(out, want[:rows], f"SOFTMAX {case} ({impl})")
    if n == 10:  # the float table's rounding shows up only now and then
        table = np.exp(np.float32(-ind["quantization"][0]) * np.arange(256, dtype=np.float32)).astype(np.float32)
        e = table[x.max(axis=1, keepdims=True).astype(int) - x]
        total = np.zeros(len(x), np.float32)
        for j in range(n):
            total = total + e[:, j]
        alt = np.clip(np.rint(e * (np.float32(1) / (total * np.float32(1 / 256)))[:, None]) - 128, -128, 127)
        assert (alt != want).any()


_READ = {"fc": ("FULLY_CONNECTED", "single"), "conv": ("CONV_2D", "double"), "dw": ("DEPTHWISE_CONV_2D", "double")}


@pytest.mark.parametrize("kind,per_channel", [("fc", False), ("fc", True), ("conv", True), ("dw", True)])
def test_requant_rounding_and_multiplier(kind, per_channel):
    """Convolutions requantize with double rounding and FULLY_CONNECTED with single rounding, all with the
    multiplier double(in) * double(filter) / double(out). Accumulators where the other rounding or a
    float32 multiplier would give another output are found per channel, input rows solved for them, and
    TFLite must agree with the kernels (C and reference) and contradict every other reading."""
    name, rounding = _READ[kind]
    m = model(designed_model, kind, 24 if kind != "dw" else 8, 16, 3, per_channel)
    op = op_named(m.run(random_inputs(m, 0)), name)
    x, w, y, bias = op.inputs[0], op.inputs[1], op.outputs[0], op.inputs[2].data
    f32 = np.float32
    fs = np.resize(w.scales, 16)
    multipliers = {"ours": [quant.quantize_multiplier(x.scale * float(s) / y.scale) for s in fs],
                   "float32 product": [quant.quantize_multiplier(float(f32(x.scale) * s) / y.scale) for s in fs],
                   "float32 throughout": [quant.quantize_multiplier(float(f32(f32(x.scale) * s) / f32(y.scale)))
                                          for s in fs]}
    rnd = {"double": mbqm_np, "single": mbqm_single_np}
    readings = {(mk, rk) for mk in multipliers for rk in rnd} - {("ours", rounding)}
    acc = np.arange(-(1 << 18), 1 << 18)
    contradicted, distinct = set(), set()
    for c in range(16):
        def predict(mk, rk):
            return np.clip(rnd[rk](acc, *multipliers[mk][c]) + y.zp, -128, 127)
        ours = predict("ours", rounding)
        preds = {r: predict(*r) for r in readings}
        targets = set()
        for r, pr in preds.items():  # a couple of accumulators separating each reading from ours
            differ = np.flatnonzero(pr != ours)
            targets |= set(differ[::max(1, differ.size // 2)][:2].tolist())
            distinct |= {r} if differ.size else set()
        wc = w.data[c].reshape(-1) if kind != "dw" else w.data[0, :, :, c].reshape(-1)
        for i in sorted(targets):
            row = solve_row(wc, bias[c], acc[i], x.zp)
            if row is None:
                continue
            inp = np.full(x.shape, x.zp, np.int8)
            if kind == "dw":
                inp[0, :, :, c] = row.reshape(3, 3)
            else:
                inp.reshape(-1)[:] = row
            got_op = op_named(m.run([inp]), name)
            tfl = int(got_op.outputs[0].data.reshape(-1)[c])
            assert tfl == ours[i], f"{name} channel {c} accumulator {acc[i]}: TFLite {tfl}, predicted {ours[i]}"
            contradicted |= {r for r, pr in preds.items() if pr[i] != tfl}
            for impl in IMPLS:
                run = run_fc if kind == "fc" else run_spatial
                assert_same(run(IMPLS[impl], got_op), got_op.outputs[0].data, f"{name} solved row ({impl})")
    # A float32 multiplier can round to ours, or move no output in the accumulator range; the other
    # rounding always shows.
    assert {("ours", "double"), ("ours", "single")} - {("ours", rounding)} <= distinct
    assert contradicted == distinct, f"never separated: {distinct - contradicted}"
