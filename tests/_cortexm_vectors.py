"""Test vectors for the kernels on the emulated Cortex-M4 (test_cortexm.py): every operator, recorded on the
host by tileswap.host.cortexm.Recorder (each call's buffers, and the output the host C kernels produce).

- TFLite-anchored: the single-op models of test_kernels.py (convolutions, K-split 1x1 convolutions,
  depthwise, pools, FC, ADD, QUANTIZE, MEAN, SOFTMAX, LEAKY_RELU) run tile by tile; each recorded output
  is checked here against the BUILTIN_REF interpreter's, so the emulated core must reproduce TFLite's
  bytes.
- exhaustive: QUANTIZE and LEAKY_RELU on all 256 inputs, ADD on all 65536 input pairs.
- the fast kernels' paths and edges (_kernel_fast_cases.py), fast and naive kernels both, including
  filters longer than Cortex-M's TS_COL_MAX and refusals.
- Cortex-M's short-filter path (ts_conv.c: conv_short, filters of at most 64 values with requantization
  constants that fused_ok accepts): every group count 1 .. 16 (each entry point of the unrolled inner
  product), staged and direct gathers, padding, odd pixels and channels, channel groups, each clamp kind,
  biases and shifts at the limits, and channels just past them (the fallback).
"""

import functools

import numpy as np

from tileswap.host import cortexm
from tileswap.tiler import quant

from _kernel_cases import (assert_same, isolate, model, op_named, random_inputs, requantized, run_add, run_fc,
                           run_isolated, run_ksplit, run_mean, run_requant, run_softmax, run_spatial)
from _kernel_fast_cases import edge_cases, random_cases
from _kernel_models import (add_model, conv_model, dwconv_model, fc_model, leaky_model, mean_model, pool_model,
                            softmax_concat_model, softmax_model)
from test_kernels import CONV_CASES, DW_CASES, KSPLIT_CASES, POOL_CASES

_POOL = {"max": "MAX_POOL_2D", "avg": "AVERAGE_POOL_2D"}


def _tflite_records(rec):
    def check(builder, case, name, run, **kw):
        m = model(builder, *case)
        op = op_named(m.run(random_inputs(m, 0)), name)
        assert_same(run(rec, op, **kw), op.outputs[0].data, f"{name} {case} (recorded)")
    for case in CONV_CASES:
        check(conv_model, case, "CONV_2D", run_spatial)
        check(conv_model, case, "CONV_2D", run_spatial, bands=[2, 1], group=3)
    for case, (chunk, group) in KSPLIT_CASES:       # 1x1 convolutions summed chunk by chunk (K-split)
        check(conv_model, case, "CONV_2D", run_ksplit, chunk=chunk, group=group)
    for case in DW_CASES:
        check(dwconv_model, case, "DEPTHWISE_CONV_2D", run_spatial)
        check(dwconv_model, case, "DEPTHWISE_CONV_2D", run_spatial, bands=[3], group=2 * case[3])
    for case in POOL_CASES:
        check(pool_model, case, _POOL[case[0]], run_spatial, bands=[2], group=2)
    for case, group in [(((13,), 7, "relu"), None), (((3, 9), 5, None), 2), (((16,), 6, None, False), 4)]:
        check(fc_model, case, "FULLY_CONNECTED", run_fc, group=group)
    for case in [(24, 1.0, 5.0, True), (17, 3.0, 0.2, False)]:
        check(add_model, case, "ADD", run_add)
    for case in [(32, 4, 3.0), (64, 4, 0.005, 0.1)]:
        check(softmax_concat_model, case, "QUANTIZE", run_requant)
    for case in [(5, 6, 7, False), (7, 7, 3, True), (12, 11, 3, False)]:
        check(mean_model, case, "MEAN", run_mean)
    for case in [((10,), 3.0), ((3, 7), 1.0), ((64,), 0.3)]:
        check(softmax_model, case, "SOFTMAX", run_softmax)


def _exhaustive_records(rec):
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    for case in [(32, 4, 3.0), (64, 4, 0.005, 0.1)]:
        want, (ind,), outd = run_isolated(isolate(model(softmax_concat_model, *case).tflite, "QUANTIZE"), [x])
        p = quant.requant_params(in_scale=ind["quantization"][0], in_zp=ind["quantization"][1],
                                 out_scale=outd["quantization"][0], out_zp=outd["quantization"][1])
        out = bytearray(256)
        rec.requant_s8(p, out, 0, x.tobytes(), 0, 256)
        assert_same(out, want, f"QUANTIZE {case}")
    base = isolate(model(leaky_model, 16, 0.2, 2.0).tflite, "LEAKY_RELU")
    for alpha, in_q, out_q in [(0.2, (0.05, -3), (0.04, 10)), (-0.5, (0.05, 7), (0.03, -20)),
                               (1.7, (0.02, 0), (0.05, 5)), (3.0, (0.001, 0), (0.1, 0))]:
        want, (ind,), outd = run_isolated(requantized(base, in_q=in_q, out_q=out_q, alpha=alpha), [x])
        p = quant.leaky_relu_params(in_scale=ind["quantization"][0], in_zp=ind["quantization"][1],
                                    out_scale=outd["quantization"][0], out_zp=outd["quantization"][1],
                                    alpha=np.float32(alpha))
        out = bytearray(257)
        rec.leaky_relu_s8(p, out, 1, x.tobytes(), 0, 256)
        assert_same(out[1:], want, f"LEAKY_RELU {alpha}")
    m = model(add_model, 24, 1.0, 5.0, True)
    fused = op_named(m.run(random_inputs(m, 0)), "ADD").fused
    a = np.repeat(np.arange(-128, 128), 256).astype(np.int8)[None]
    b = np.tile(np.arange(-128, 128), 256).astype(np.int8)[None]
    want, (da, db), do = run_isolated(isolate(m.tflite, "ADD"), [a, b])
    p = quant.add_params(in1_scale=da["quantization"][0], in1_zp=da["quantization"][1],
                         in2_scale=db["quantization"][0], in2_zp=db["quantization"][1],
                         out_scale=do["quantization"][0], out_zp=do["quantization"][1], fused=fused)
    out = bytearray(a.size)
    rec.add_s8(p, out, 0, a.tobytes(), 0, b.tobytes(), 0, a.size)
    assert_same(out, want, "ADD, every pair")


def _short_case(rec, rng, *, in_w, in_c, out_w, g, kh, kw, in_h, y0, oh, sh=1, sw=1, dh=1, dw=1, pad_l=0,
                out_c=None, fused=(-128, 127), off=1, bad=None, bad_ch=-1, sat=0):
    """A convolution whose requantization constants meet fused_ok (ts_conv.c): shifts -21 .. -1 (both ends
    often), multipliers 0 .. 2**31 - 1 (2**30: rounding ties), biases up to +-lim = 2**30 - 1 - K * 128 * 255
    (both ends); with `bad` one channel (bad_ch) just outside ("shift": -22, "bias": lim + 1, "mult": -2**31,
    "up": shift 0), so the tile must leave the short-filter and fused paths. sat=+-1: every filter value -128
    and every x - in_zp = -+255, every bias +-lim (+-(lim + 1) with bad="bias"): accumulators at +-(2**30 - 1),
    or at +-2**30 past the limit, where the doubled accumulator of the short-filter path would wrap."""
    out_c = out_c or g
    k = kh * kw * in_c
    lim = (1 << 30) - 1 - k * 128 * 255
    in_zp = {0: int(rng.integers(-128, 128)), 1: 127, -1: -128}[sat]
    p = quant.conv_params(in_w=in_w, in_c=in_c, out_w=out_w, out_c=out_c, kh=kh, kw=kw, sh=sh, sw=sw, dh=dh, dw=dw,
                          pad_l=pad_l, in_zp=in_zp, out_zp=int(rng.integers(-128, 128)), out_scale=1.0)
    p[13], p[14] = fused
    bias = rng.integers(-lim, lim + 1, g)
    bias[::5], bias[1::5], bias[2::5] = lim, -lim, rng.integers(-999, 999, len(bias[2::5]))
    mult = rng.integers(0, 1 << 31, g)
    mult[::4], mult[1::7], mult[2::9] = 1 << 30, (1 << 31) - 1, 0
    shift = -rng.integers(1, 22, g)
    shift[::3], shift[1::6] = -21, -1
    if sat:
        bias[:] = sat * lim
    if bad:
        {"shift": shift, "bias": bias, "mult": mult, "up": shift}[bad][bad_ch] = {
            "shift": -22, "bias": (sat or 1) * (lim + 1), "mult": -(1 << 31), "up": 0}[bad]
        if bad == "mult":            # acc = 7, h = -7: a rounding tie, where [h < 0] and [x < 0] differ
            shift[bad_ch], bias[bad_ch] = -1, 7
    wts = np.full((g, k), -128, np.int8) if sat else rng.integers(-128, 128, (g, k), dtype=np.int8)
    if bad == "mult":
        wts[bad_ch] = 0
    pay = quant.pack_weights_payload(wts, bias, mult, shift)
    inp = rng.integers(-128, 128, off + in_h * in_w * in_c + 2, dtype=np.int8)
    if sat:
        inp[:] = -128 if sat > 0 else 127
    inp = inp.tobytes()
    out = bytearray(rng.integers(0, 256, off + oh * out_w * out_c + 2, dtype=np.uint8).tobytes())
    rec.conv_s8(p, out, off, inp, off, in_h, y0, oh, pay, g)


def _short_filter_records(rec):
    rng = np.random.default_rng(5)
    clamps = [(-128, 127), (-128, 0), (-128, 126), (-128, 60), (-20, 127), (-128, -1), (-50, 90), (-128, -100)]
    for ng in range(1, 17):      # 1x1 filters of 4 * ng channels (direct gather), each clamp kind in turn
        _short_case(rec, rng, in_w=5, in_c=4 * ng, out_w=5, g=2 * ng + 1, kh=1, kw=1, in_h=2, y0=0, oh=2,
                    fused=clamps[ng % len(clamps)], out_c=2 * ng + 3)
    for fused in clamps:         # the stem's shape: 3x3, 3 channels, stride 2, padded (staged gather)
        _short_case(rec, rng, in_w=9, in_c=3, out_w=5, g=16, kh=3, kw=3, sh=2, sw=2, pad_l=1, in_h=9, y0=-1, oh=5,
                    fused=fused)
    _short_case(rec, rng, in_w=6, in_c=3, out_w=3, g=32, kh=3, kw=3, sh=2, sw=2, pad_l=0, in_h=8, y0=0, oh=3,
                fused=(-128, 50))                                              # stem, bottom rows padding
    _short_case(rec, rng, in_w=7, in_c=7, out_w=7, g=9, kh=3, kw=3, pad_l=1, in_h=5, y0=-1, oh=4)  # K=63
    _short_case(rec, rng, in_w=6, in_c=16, out_w=5, g=6, kh=2, kw=2, in_h=3, y0=0, oh=2)           # K=64
    _short_case(rec, rng, in_w=7, in_c=2, out_w=5, g=5, kh=3, kw=3, dh=2, dw=2, pad_l=1, in_h=7, y0=-1, oh=3,
                fused=(-128, 100))                                             # dilated: tap by tap
    _short_case(rec, rng, in_w=4, in_c=1, out_w=4, g=3, kh=1, kw=1, in_h=1, y0=0, oh=1)            # K=1
    _short_case(rec, rng, in_w=5, in_c=5, out_w=5, g=4, kh=1, kw=1, in_h=1, y0=0, oh=1)            # 1x1, staged
    _short_case(rec, rng, in_w=3, in_c=8, out_w=5, g=8, kh=1, kw=1, pad_l=1, in_h=2, y0=-1, oh=4,
                fused=(-128, 30))                                              # 1x1 padded pixels
    _short_case(rec, rng, in_w=9, in_c=16, out_w=5, g=10, kh=1, kw=1, sh=2, sw=2, in_h=5, y0=0, oh=3)  # stride 2
    _short_case(rec, rng, in_w=2, in_c=12, out_w=2, g=7, kh=1, kw=1, in_h=2, y0=0, oh=2)           # 4 pixels
    _short_case(rec, rng, in_w=3, in_c=12, out_w=3, g=7, kh=1, kw=1, in_h=1, y0=0, oh=1)           # 3: fused
    _short_case(rec, rng, in_w=7, in_c=16, out_w=7, g=67, kh=1, kw=1, in_h=1, y0=0, oh=1, out_c=70)   # 2 groups
    _short_case(rec, rng, in_w=5, in_c=64, out_w=5, g=45, kh=1, kw=1, in_h=1, y0=0, oh=1,
                fused=(-128, 10))                                              # 3 groups, odd last channel
    _short_case(rec, rng, in_w=5, in_c=32, out_w=5, g=1, kh=1, kw=1, in_h=1, y0=0, oh=1)           # one channel
    for bad, ch in [("shift", -1), ("bias", 0), ("mult", 30), ("up", -1), ("bias", 21), ("shift", 44)]:
        _short_case(rec, rng, in_w=5, in_c=64, out_w=5, g=45, kh=1, kw=1, in_h=1, y0=0, oh=1, bad=bad, bad_ch=ch,
                    fused=(-128, 90))    # past a limit: in the first group, a later one, the odd last channel
    for sat in (1, -1):                  # accumulators at +-(2**30 - 1), and at +-2**30 (bias one past the limit)
        for fused, bad, ch in [((-128, 127), None, 0), ((-128, 20), None, 0), ((-128, 127), "bias", 3),
                               ((-128, 127), "bias", 40), ((-60, 127), "bias", -1)]:
            _short_case(rec, rng, in_w=5, in_c=24, out_w=5, g=41, kh=1, kw=1, in_h=1, y0=0, oh=1, sat=sat,
                        fused=fused, bad=bad, bad_ch=ch)


def _refusals(rec):
    p = quant.conv_params(in_w=4, in_c=2, out_w=4, out_c=3, kh=3, kw=3, pad_l=1, in_zp=0, out_zp=0, out_scale=1.0)
    pay = quant.pack_weights_payload(np.zeros((4, 3, 3, 2), np.int8), None, [1 << 30] * 4, [0] * 4)
    rec.conv_s8(p, bytearray(52), 0, bytes(32), 0, 4, -1, 4, pay, 4)        # g > out_c
    pd = quant.dwconv_params(in_w=4, in_c=2, out_w=4, kh=3, kw=3, pad_l=1, in_zp=0, out_zp=0, out_scale=1.0, dm=2)
    pay = quant.pack_weights_payload(np.zeros((3, 3, 3), np.int8), None, [1 << 30] * 3, [0] * 3)
    rec.dwconv_s8(pd, bytearray(64), 0, bytes(32), 0, 4, -1, 4, pay, 0, 3)  # g not a multiple of dm
    ps = quant.softmax_params(n=4, in_scale=0.1)
    ps[4] = 0
    rec.softmax_s8(ps, bytearray(4), 0, bytes(4), 0, 1)                     # output zero point not -128
    assert [r["status"] for r in rec.records[-5:]] == [1] * 5


@functools.lru_cache(maxsize=None)
def vectors():
    """The records, and how many of them are anchored to TFLite's output (once per process)."""
    rec = cortexm.Recorder()
    _tflite_records(rec)
    _exhaustive_records(rec)
    anchored = len(rec.records)
    for _, run in random_cases(7, 300):
        run(rec)
    for _, run, _big in edge_cases():
        run(rec)
    _short_filter_records(rec)
    _refusals(rec)
    return rec.records, anchored
