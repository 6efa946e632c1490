"""Test vectors for the kernels on the emulated Cortex-M4 (test_cortexm.py): every operator, recorded on the
host by tileswap.host.cortexm.Recorder (each call's buffers, and the output the host C kernels produce).

- TFLite-anchored: the single-op models of test_kernels.py (convolutions, depthwise, pools, FC, ADD,
  QUANTIZE, MEAN, SOFTMAX, LEAKY_RELU) run tile by tile; each recorded output is checked here against the
  BUILTIN_REF interpreter's, so the emulated core must reproduce TFLite's bytes.
- exhaustive: QUANTIZE and LEAKY_RELU on all 256 inputs, ADD on all 65536 input pairs.
- the fast kernels' paths and edges (_kernel_fast_cases.py), fast and naive kernels both, including
  filters longer than Cortex-M's TS_COL_MAX and refusals.
"""

import functools

import numpy as np

from tileswap.host import cortexm
from tileswap.tiler import quant

from _kernel_cases import (assert_same, isolate, model, op_named, random_inputs, requantized, run_add, run_fc,
                           run_isolated, run_mean, run_requant, run_softmax, run_spatial)
from _kernel_fast_cases import edge_cases, random_cases
from _kernel_models import (add_model, conv_model, dwconv_model, fc_model, leaky_model, mean_model, pool_model,
                            softmax_concat_model, softmax_model)
from test_kernels import CONV_CASES, DW_CASES, POOL_CASES

_POOL = {"max": "MAX_POOL_2D", "avg": "AVERAGE_POOL_2D"}


def _tflite_records(rec):
    def check(builder, case, name, run, **kw):
        m = model(builder, *case)
        op = op_named(m.run(random_inputs(m, 0)), name)
        assert_same(run(rec, op, **kw), op.outputs[0].data, f"{name} {case} (recorded)")
    for case in CONV_CASES:
        check(conv_model, case, "CONV_2D", run_spatial)
        check(conv_model, case, "CONV_2D", run_spatial, bands=[2, 1], group=3)
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
    _refusals(rec)
    return rec.records, anchored
