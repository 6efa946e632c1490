"""Kernels and their Prepare math against TensorFlow Lite's reference kernels, bit for bit.

Each case converts a tiny single-op Keras model to int8 TFLite, runs it with the BUILTIN_REF interpreter,
rebuilds the op's parameters with tiler/quant.py from the model's tensors, runs the C kernels and the numpy
reference on the same input, and demands TFLite's exact output bytes, also when the output is computed in
row bands and channel groups (the tiler's tiles) in any order."""

import numpy as np
import pytest

from tileswap.host import kernels_ref, native
from tileswap.tiler import quant

from _kernel_cases import (PAD, add_model, assert_same, band_rows, conv_model, dwconv_model, fc_designed_model,
                           fc_model, in_band, mbqm_np, mean_model, model, solve_row, op_named, pool_model, random_inputs, softmax_concat_model,
                           softmax_model, with_guard)

IMPLS = {"c": native.Kernels(), "ref": kernels_ref.Kernels()}
impls = pytest.mark.parametrize("impl", sorted(IMPLS))


def run_spatial(kern, op, *, bands=None, group=None, seed=0):
    """Run a spatial op tile by tile (row bands x channel groups, shuffled); returns the output bytes."""
    rng = np.random.default_rng(seed)
    x, y, o = op.inputs[0], op.outputs[0], op.options
    _, H, W, C = x.shape
    _, OH, OW, OC = y.shape
    if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        w, b = op.inputs[1], op.inputs[2]
        kh, kw, dh, dw = w.shape[1], w.shape[2], o.dilationHFactor, o.dilationWFactor
        bias = b.data if b is not None else np.zeros(OC, np.int32)
        mult, shift = (np.resize(a, OC) for a in quant.per_channel_requant(x.scale, w.scales, y.scale))
    else:
        kh, kw, dh, dw = o.filterHeight, o.filterWidth, 1, 1
    assert quant.padding(in_size=H, k=kh, stride=o.strideH, dilation=dh, mode=PAD[o.padding])[0] == OH
    pad_t = quant.padding(in_size=H, k=kh, stride=o.strideH, dilation=dh, mode=PAD[o.padding])[1]
    ow, pad_l = quant.padding(in_size=W, k=kw, stride=o.strideW, dilation=dw, mode=PAD[o.padding])
    assert ow == OW
    geom = dict(in_w=W, in_c=C, out_w=OW, kh=kh, kw=kw, sh=o.strideH, sw=o.strideW, pad_l=pad_l)
    if op.name == "CONV_2D":
        p = quant.conv_params(out_c=OC, dh=dh, dw=dw, in_zp=x.zp, out_zp=y.zp, out_scale=y.scale,
                              fused=op.fused, **geom)
    elif op.name == "DEPTHWISE_CONV_2D":
        p = quant.dwconv_params(dh=dh, dw=dw, in_zp=x.zp, out_zp=y.zp, out_scale=y.scale, fused=op.fused,
                                dm=o.depthMultiplier, **geom)
    else:
        assert (x.scale, x.zp) == (y.scale, y.zp)
        p = quant.pool_params(zp=y.zp, out_scale=y.scale, fused=op.fused, **geom)
    step = group or OC
    tiles = [(r0, r1, c0, min(step, OC - c0)) for r0, r1 in band_rows(OH, bands or [OH])
             for c0 in range(0, OC, step)]
    rng.shuffle(tiles)
    out = bytearray(OH * OW * OC)
    xs = x.data.reshape(H, W, C)
    for r0, r1, c0, g in tiles:
        b0, b1, y0 = in_band(r0, r1, sh=o.strideH, dh=dh, kh=kh, pad_t=pad_t, in_h=H)
        band, off = with_guard(xs[b0:b1].tobytes(), rng)
        args = (p, out, (r0 * OW) * OC + c0, band, off, b1 - b0, y0, r1 - r0)
        if op.name == "CONV_2D":
            pay = quant.pack_weights_payload(w.data[c0:c0 + g], bias[c0:c0 + g], mult[c0:c0 + g], shift[c0:c0 + g])
            kern.conv_s8(*args, pay, g)
        elif op.name == "DEPTHWISE_CONV_2D":
            pay = quant.pack_weights_payload(w.data[0, :, :, c0:c0 + g], bias[c0:c0 + g], mult[c0:c0 + g],
                                             shift[c0:c0 + g])
            kern.dwconv_s8(*args, pay, c0, g)
        else:
            getattr(kern, "maxpool_s8" if op.name == "MAX_POOL_2D" else "avgpool_s8")(*args, c0, g)
    return out


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


def run_fc(kern, op, group=None):
    x, w, b, y = op.inputs[0], op.inputs[1], op.inputs[2], op.outputs[0]
    OC, n = w.shape
    rows = x.data.size // n
    bias = b.data if b is not None else np.zeros(OC, np.int32)
    mult, shift = quant.fc_requant(x.scale, w.scales, y.scale, out_c=OC)
    p = quant.fc_params(n=n, out_c=OC, in_zp=x.zp, out_zp=y.zp, out_scale=y.scale, fused=op.fused)
    out = bytearray(rows * OC)
    inp, off = with_guard(x.data.tobytes(), np.random.default_rng(0))
    for c0 in range(0, OC, group or OC):
        g = min(group or OC, OC - c0)
        pay = quant.pack_weights_payload(w.data[c0:c0 + g], bias[c0:c0 + g], mult[c0:c0 + g], shift[c0:c0 + g])
        kern.fc_s8(p, out, c0, inp, off, rows, pay, g)
    return out


@impls
@pytest.mark.parametrize("case,group", [(((13,), 7, "relu"), None), (((3, 9), 5, None), 2),
                                        (((16,), 6, None, False), 4)], ids=str)
def test_fc(impl, case, group):
    check_op(fc_model, case, "FULLY_CONNECTED", IMPLS[impl], run_fc, group=group, seeds=range(4))


def run_add(kern, op, pieces=2):
    a, b, y = op.inputs[0], op.inputs[1], op.outputs[0]
    p = quant.add_params(in1_scale=a.scale, in1_zp=a.zp, in2_scale=b.scale, in2_zp=b.zp, out_scale=y.scale,
                         out_zp=y.zp, fused=op.fused)
    n = y.data.size
    out = bytearray(n)
    for i0, i1 in band_rows(n, [-(-n // pieces)]):
        kern.add_s8(p, out, i0, a.data.tobytes(), i0, b.data.tobytes(), i0, i1 - i0)
    return out


@impls
@pytest.mark.parametrize("case", [(24, 1.0, 5.0, True), (17, 3.0, 0.2, False)], ids=str)
def test_add(impl, case):
    op = check_op(add_model, case, "ADD", IMPLS[impl], run_add, seeds=(0, 1, 2))
    assert op.inputs[0].scale != op.inputs[1].scale


def run_requant(kern, op):
    x, y = op.inputs[0], op.outputs[0]
    p = quant.requant_params(in_scale=x.scale, in_zp=x.zp, out_scale=y.scale, out_zp=y.zp)
    out = bytearray(y.data.size)
    kern.requant_s8(p, out, 0, x.data.tobytes(), 0, y.data.size)
    return out


@impls
@pytest.mark.parametrize("case", [(32, 4, 3.0), (32, 4, 0.05), (64, 4, 0.005, 0.1)], ids=str)
def test_quantize(impl, case):
    """QUANTIZE int8 -> int8 in front of a CONCATENATION: scaling down (shift < 0, ~1) and up (shift > 0)."""
    check_op(softmax_concat_model, case, "QUANTIZE", IMPLS[impl], run_requant, seeds=range(4))
    check_op(softmax_concat_model, case, "QUANTIZE", IMPLS[impl], run_requant, seeds=(5,), full_range=True)


def run_mean(kern, op, band=2):
    x, y = op.inputs[0], op.outputs[0]
    _, H, W, C = x.shape
    p = quant.mean_params(c=C, count=H * W, in_scale=x.scale, in_zp=x.zp, out_scale=y.scale, out_zp=y.zp)
    acc = bytearray(4 * C)
    for r0, r1 in band_rows(H, [band]):
        data, off = with_guard(x.data[0, r0:r1].tobytes(), np.random.default_rng(r0))
        kern.mean_acc_s8(acc, data, off, (r1 - r0) * W, C)
    out = bytearray(C)
    kern.mean_out_s8(p, out, 0, acc)
    return out


@impls
@pytest.mark.parametrize("case", [(5, 6, 7, False), (7, 7, 3, True), (4, 4, 5, False, True), (12, 11, 3, False)],
                         ids=str)
def test_mean(impl, case):
    check_op(mean_model, case, "MEAN", IMPLS[impl], run_mean, seeds=(0, 1, 2))


def run_softmax(kern, op):
    x, y = op.inputs[0], op.outputs[0]
    n = x.shape[-1]
    p = quant.softmax_params(n=n, in_scale=x.scale, beta=op.options.beta, out_scale=y.scale, out_zp=y.zp)
    out = bytearray(y.data.size)
    inp, off = with_guard(x.data.tobytes(), np.random.default_rng(1))
    kern.softmax_s8(p, out, 0, inp, off, x.data.size // n)
    return out


@impls
@pytest.mark.parametrize("case", [((10,), 3.0), ((5,), 20.0), ((3, 7), 1.0), ((64,), 0.3)], ids=str)
def test_softmax(impl, case):
    check_op(softmax_model, case, "SOFTMAX", IMPLS[impl], run_softmax, seeds=range(5))
    check_op(softmax_model, case, "SOFTMAX", IMPLS[impl], run_softmax, seeds=(7,), full_range=True)


# Where a plausible other reading of TFLite's source gives different bytes, TFLite must side with ours.
# Candidates are screened with the C kernels (fast); the disagreeing ones are then run through TFLite.

def _pick(candidates, disagree, k):
    """k candidates, the disagreeing ones first; fails if there are none (the test would have no teeth)."""
    idx = np.flatnonzero(disagree)
    assert idx.size, "no candidate separates the two readings; enlarge the search"
    rest = np.flatnonzero(~disagree)[:max(0, k - idx.size)]
    return candidates[np.concatenate([idx[:k], rest])]


def test_softmax_is_fixed_point_not_float_table():
    """BUILTIN_REF int8 SOFTMAX is gemmlowp fixed point, not the float exp table of the optimized kernel."""
    m = model(softmax_model, (48, 10), 3.0)
    x = op_named(m.run(random_inputs(m, 0)), "SOFTMAX").inputs[0]
    rng = np.random.default_rng(5)
    cand = np.clip(np.rint(x.zp + 40 * rng.standard_normal((20000, 10))), -128, 127).astype(np.int8)
    p = quant.softmax_params(n=10, in_scale=x.scale)
    ours = bytearray(cand.size)
    IMPLS["c"].softmax_s8(p, ours, 0, cand.tobytes(), 0, len(cand))
    ours = np.frombuffer(ours, np.int8).reshape(cand.shape)
    table = np.exp(np.float32(-x.scale) * np.arange(256, dtype=np.float32)).astype(np.float32)
    e = table[cand.max(axis=1, keepdims=True).astype(int) - cand]
    total = np.zeros(len(cand), np.float32)
    for j in range(10):
        total = total + e[:, j]
    alt = np.clip(np.rint(e * (np.float32(1) / (total * np.float32(1 / 256)))[:, None]) - 128, -128, 127)
    rows = _pick(cand, (alt != ours).any(axis=1), 48)
    op = op_named(m.run([rows]), "SOFTMAX")
    assert_same(run_softmax(IMPLS["c"], op), op.outputs[0].data, "softmax on separating rows")
    assert_same(run_softmax(IMPLS["ref"], op), op.outputs[0].data, "softmax (ref) on separating rows")


@pytest.mark.parametrize("per_channel", [False, True])
def test_fc_multiplier_precision(per_channel):
    """FULLY_CONNECTED per-tensor: in_scale * filter_scale in float32 (GetQuantizedConvolutionMultipler);
    per-channel: in double, like CONV_2D. The two differ by a few units of the 31-bit multiplier, which
    changes the output only for rare accumulators: find them per channel and solve for input rows."""
    m = model(fc_designed_model, 24, 8, per_channel)
    op = op_named(m.run(random_inputs(m, 0)), "FULLY_CONNECTED")
    x, w, y = op.inputs[0], op.inputs[1], op.outputs[0]
    ours = quant.fc_requant(x.scale, w.scales, y.scale, out_c=8)
    if per_channel:
        alt = zip(*[quant.quantize_multiplier(float(np.float32(x.scale) * s) / y.scale) for s in w.scales])
    else:
        alt = zip(*[quant.quantize_multiplier(x.scale * float(w.scales[0]) / y.scale)] * 8)
    alt = [np.array(a) for a in alt]
    assert (ours[0] != alt[0]).any()
    bias = op.inputs[2].data
    acc = np.arange(-(1 << 18), 1 << 18)
    rows = []
    for c in range(8):
        a, b = (np.clip(mbqm_np(acc, int(mm[c]), int(ss[c])) + y.zp, -128, 127) for mm, ss in (ours, alt))
        for t in acc[a != b][:3]:
            r = solve_row(w.data[c], bias[c], t, x.zp)
            if r is not None:
                rows.append(r)
    assert rows, "no accumulator separates the two readings"
    for r in rows:
        op = op_named(m.run([r]), "FULLY_CONNECTED")
        assert_same(run_fc(IMPLS["c"], op), op.outputs[0].data, "fc on a separating row")


def test_mean_folds_count_into_multiplier():
    """int8 MEAN folds 1/count into the integer multiplier (QuantizedMeanOrSum), rather than requantizing
    the sum and then dividing with rounding (reference_integer_ops::Mean)."""
    m = model(mean_model, 5, 3, 64, False)
    x0 = op_named(m.run(random_inputs(m, 0)), "MEAN")
    x, y = x0.inputs[0], x0.outputs[0]
    rng = np.random.default_rng(4)
    cand = np.clip(np.rint(x.zp + 40 * rng.standard_normal((400, 5, 3, 64))), -128, 127).astype(np.int8)
    sums = cand.astype(np.int64).sum(axis=(1, 2)) - 15 * x.zp           # (400, 64)
    p = quant.mean_params(c=64, count=15, in_scale=x.scale, in_zp=x.zp, out_scale=y.scale, out_zp=y.zp)
    mult, shift = quant.quantize_multiplier(x.scale / y.scale)
    ours, alt = np.empty(sums.shape, int), np.empty(sums.shape, int)
    for (i, c), s in np.ndenumerate(sums):
        ours[i, c] = min(127, max(-128, kernels_ref.mbqm(int(s), p[4], p[5]) + y.zp))
        v = kernels_ref.mbqm(int(s), mult, shift)
        v = (v + 7) // 15 if v > 0 else -((-v + 7) // 15)
        alt[i, c] = min(127, max(-128, v + y.zp))
    differ = ours != alt
    assert differ.any(), "no candidate separates the two readings"
    pick = np.where(differ.any(axis=0), differ.argmax(axis=0), 0)       # per channel, a separating candidate
    inp = cand[pick, :, :, np.arange(64)].transpose(1, 2, 0)[None]
    op = op_named(m.run([inp]), "MEAN")
    assert_same(run_mean(IMPLS["c"], op), op.outputs[0].data, "mean on separating channels")
    assert (np.asarray(op.outputs[0].data).reshape(-1) != alt[pick, np.arange(64)]).any()
