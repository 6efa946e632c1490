"""Helpers for test_kernels.py: Keras models (from _kernel_models.py) converted to full-integer int8 TFLite
(cached per process) and run with TFLite's reference kernels, the oracle; single ops cut out of them; and
runners that rebuild an op's parameters with tiler/quant.py and run it with tileswap's kernels."""

import array
import functools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.lite.python import schema_py_generated as schema  # noqa: E402

from tileswap.device import opdefs as d  # noqa: E402
from tileswap.tiler import quant  # noqa: E402

ACT = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}
PAD = {0: "SAME", 1: "VALID"}
_OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def convert(model, calib, *, n=48, seed=0, per_channel_dense=True):
    """Full-integer int8 TFLite bytes of a Keras model whose inputs are named in0, in1, ... `calib` is one
    (shape, scale, offset) per input: the representative data is offset + scale * N(0, 1) (offset > 3*scale
    gives an input zero point of -128). Keyed by name, because the converter may reorder inputs."""
    rng = np.random.default_rng(seed)

    def rep():
        for _ in range(n):
            yield {f"in{i}": (off + sc * rng.standard_normal(shape)).astype(np.float32)
                   for i, (shape, sc, off) in enumerate(calib)}

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    if not per_channel_dense:
        conv._experimental_disable_per_channel_quantization_for_dense_layers = True
    return conv.convert()


class Tensor:
    """One tensor of a run: int8/int32 data plus quantization (scale, zero point; per-channel scales)."""

    def __init__(self, detail, data):
        qp = detail["quantization_parameters"]
        self.data = data
        self.shape = tuple(int(s) for s in detail["shape"])
        self.scales = np.asarray(qp["scales"], dtype=np.float32)
        self.scale = float(self.scales[0]) if self.scales.size else 0.0
        self.zp = int(qp["zero_points"][0]) if len(qp["zero_points"]) else 0


class Op:
    """One operator of a model run by the BUILTIN_REF interpreter with every tensor preserved."""

    def __init__(self, name, options, inputs, outputs):
        self.name, self.options, self.inputs, self.outputs = name, options, inputs, outputs

    @property
    def fused(self):
        return ACT[getattr(self.options, "fusedActivationFunction", 0)]


class Model:
    """A converted model: `run(inputs)` invokes it and returns the list of its operators as Op objects."""

    def __init__(self, tflite):
        self.tflite = tflite
        self.fb = schema.ModelT.InitFromPackedBuf(tflite, 0)
        self.interp = tf.lite.Interpreter(
            model_content=tflite, experimental_preserve_all_tensors=True,
            experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
        self.interp.allocate_tensors()
        self.details = {d["index"]: d for d in self.interp.get_tensor_details()}

    def input_details(self):
        """Input details in the Keras model's input order (in0, in1, ...; the converter may reorder them)."""
        return sorted(self.interp.get_input_details(), key=lambda d: d["name"])

    def run(self, inputs):
        for det, x in zip(self.input_details(), inputs):
            self.interp.set_tensor(det["index"], np.asarray(x, dtype=np.int8).reshape(det["shape"]))
        self.interp.invoke()
        ops = []
        for op in self.fb.subgraphs[0].operators:
            code = self.fb.operatorCodes[op.opcodeIndex]
            name = _OP_NAMES[max(code.builtinCode, code.deprecatedBuiltinCode)]
            ops.append(Op(name, op.builtinOptions, [self._tensor(i) for i in op.inputs],
                          [self._tensor(i) for i in op.outputs]))
        return ops

    def _tensor(self, index):
        if index < 0:
            return None
        return Tensor(self.details[index], self.interp.get_tensor(index))


@functools.lru_cache(maxsize=None)
def model(builder, *args):
    """Build (with fixed seeds), convert and load a model once per process; `builder(*args)` returns
    (keras_model, calib, convert_kwargs)."""
    import keras
    keras.utils.set_random_seed(1234)
    m, calib, kw = builder(*args)
    return Model(convert(m, calib, **kw))


def op_named(ops, name):
    found = [o for o in ops if o.name == name]
    assert len(found) == 1, [o.name for o in ops]
    return found[0]


def random_inputs(model_, seed, *, full_range=False):
    """int8 inputs: near each input's calibrated range (so outputs are spread out), or the full int8 range
    (far outside it, so outputs saturate)."""
    rng = np.random.default_rng(seed)
    out = []
    for det in model_.input_details():
        shape = tuple(det["shape"])
        if full_range:
            out.append(rng.integers(-128, 128, size=shape, dtype=np.int8))
        else:
            zp = det["quantization"][1]
            out.append(np.clip(np.rint(zp + 40 * rng.standard_normal(shape)), -128, 127).astype(np.int8))
    return out


def assert_same(got, want, what):
    """Bit-exact comparison; on failure name the first mismatching element (index in `want`'s shape)."""
    want = np.asarray(want, dtype=np.int8)
    got = np.frombuffer(bytes(got), dtype=np.int8)
    assert got.size == want.size, f"{what}: {got.size} bytes, expected {want.size}"
    bad = np.flatnonzero(got != want.reshape(-1))
    if bad.size:
        i = int(bad[0])
        raise AssertionError(f"{what}: {bad.size} of {want.size} differ; first at {np.unravel_index(i, want.shape)}"
                             f" (flat {i}): got {int(got[i])}, expected {int(want.reshape(-1)[i])}")


def band_rows(total, sizes):
    """Split range(total) into consecutive (start, stop) bands of the given sizes (cycled)."""
    bands, r, k = [], 0, 0
    while r < total:
        step = sizes[k % len(sizes)]
        bands.append((r, min(total, r + step)))
        r += step
        k += 1
    return bands


def in_band(r0, r1, *, sh, dh, kh, pad_t, in_h):
    """Input rows [b0, b1) that output rows [r0, r1) read (clipped to the tensor), and y0 (band convention:
    output row r0, filter row 0 reads band row y0)."""
    first = r0 * sh - pad_t
    b0 = min(max(0, first), in_h - 1)
    b1 = max(min(in_h, (r1 - 1) * sh - pad_t + (kh - 1) * dh + 1), b0 + 1)
    return b0, b1, first - b0


def with_guard(data, rng, before=5, after=3):
    """`data` inside a larger buffer of random bytes: (bytes, offset). A kernel that reads outside its
    slice gets garbage and the comparison fails."""
    return bytes(rng.integers(0, 256, before, dtype=np.uint8)) + bytes(data) + \
        bytes(rng.integers(0, 256, after, dtype=np.uint8)), before




def isolate(tflite, name):
    """A copy of a converted model reduced to its one `name` operator, whose non-constant inputs become the
    model's inputs: lets a test feed any int8 values straight into that op (and resize them)."""
    import flatbuffers
    fb = schema.ModelT.InitFromPackedBuf(tflite, 0)
    sg = fb.subgraphs[0]
    code = {i: _OP_NAMES[max(c.builtinCode, c.deprecatedBuiltinCode)] for i, c in enumerate(fb.operatorCodes)}
    (op,) = [o for o in sg.operators if code[o.opcodeIndex] == name]
    const = {i for i, t in enumerate(sg.tensors) if fb.buffers[t.buffer].data is not None}
    sg.operators, sg.outputs = [op], list(op.outputs)
    sg.inputs = [i for i in op.inputs if i >= 0 and i not in const]
    b = flatbuffers.Builder(1024)
    b.Finish(fb.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def requantized(tflite, *, in_q, out_q, alpha=None):
    """A copy of an `isolate`d one-op model with other (scale, zero point) on its input and output tensors, and
    for LEAKY_RELU another alpha: Prepare arithmetic can then be probed at values a converter never picks."""
    import flatbuffers
    fb = schema.ModelT.InitFromPackedBuf(tflite, 0)
    sg = fb.subgraphs[0]
    (op,) = sg.operators
    if alpha is not None:
        op.builtinOptions.alpha = float(alpha)
    for index, (scale, zp) in ((op.inputs[0], in_q), (op.outputs[0], out_q)):
        sg.tensors[index].quantization.scale = [float(scale)]
        sg.tensors[index].quantization.zeroPoint = [int(zp)]
    b = flatbuffers.Builder(1024)
    b.Finish(fb.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def run_isolated(tflite, inputs):
    """Run an `isolate`d model on int8 arrays of any shape; returns (output, input details, output detail)."""
    it = tf.lite.Interpreter(model_content=tflite,
                             experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
    dets = it.get_input_details()
    for d, x in zip(dets, inputs):
        it.resize_tensor_input(d["index"], x.shape)
    it.allocate_tensors()
    for d, x in zip(dets, inputs):
        it.set_tensor(d["index"], x)
    it.invoke()
    out = it.get_output_details()[0]
    return it.get_tensor(out["index"]), it.get_input_details(), out


# Runners: rebuild an op's parameters with tiler/quant.py from its TFLite tensors and run it with a
# tileswap Kernels object; they return the output bytes.

def run_ksplit(kern, op, *, chunk, group, over=False, seed=0):
    """A 1x1 CONV_2D as the K-split path runs it (device/ops.py run_ksplit): per output group, int32
    sums over the input chunk by chunk (conv_acc_s8, chunks in order), then acc_out_s8 - with `over`,
    into the accumulator itself (out_c = the group, as for a chunked output), copied out after."""
    rng = np.random.default_rng(seed)
    x, y = op.inputs[0], op.outputs[0]
    w, b = op.inputs[1], op.inputs[2]
    _, H, W, C = x.shape
    OC = y.shape[3]
    assert w.shape[1] == w.shape[2] == 1 and C % chunk == 0
    bias = b.data if b is not None else np.zeros(OC, np.int32)
    mult, shift = (np.resize(a, OC) for a in quant.per_channel_requant(x.scale, w.scales, y.scale))
    p = quant.conv_params(out_c=OC, dh=1, dw=1, in_zp=x.zp, out_zp=y.zp, out_scale=y.scale, fused=op.fused,
                          in_w=W, in_c=C, out_w=W, kh=1, kw=1, sh=1, sw=1, pad_l=0)
    npix = H * W
    xs = x.data.reshape(npix, C)
    filt = w.data.reshape(OC, C)
    out = bytearray(npix * OC)
    for c0 in range(0, OC, group):
        g = min(group, OC - c0)
        acc = bytearray(rng.integers(0, 256, 4 * npix * g + 4, dtype=np.uint8).tobytes())   # first= overwrites
        for u in range(C // chunk):
            part = filt[c0:c0 + g, u * chunk:(u + 1) * chunk]
            pay = np.ascontiguousarray(part).tobytes()
            band, off = with_guard(np.ascontiguousarray(xs[:, u * chunk:(u + 1) * chunk]).tobytes(), rng)
            kern.conv_acc_s8(p, memoryview(acc)[:4 * npix * g], band, off, npix, pay, g, chunk, u == 0)
        pay = quant.pack_weights_payload(part, bias[c0:c0 + g], mult[c0:c0 + g], shift[c0:c0 + g])
        if over:
            pg = array.array("i", p)
            pg[d.P_OUT_C] = g
            kern.acc_out_s8(pg, acc, 0, memoryview(acc)[:4 * npix * g], npix, pay, g, chunk)
            got = np.frombuffer(bytes(acc[:npix * g]), np.uint8).reshape(npix, g)
            o = np.frombuffer(out, np.uint8).reshape(npix, OC)
            o[:, c0:c0 + g] = got
            continue
        kern.acc_out_s8(p, out, c0, memoryview(acc)[:4 * npix * g], npix, pay, g, chunk)
    return bytes(out)


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


def run_add(kern, op, pieces=2):
    a, b, y = op.inputs[0], op.inputs[1], op.outputs[0]
    p = quant.add_params(in1_scale=a.scale, in1_zp=a.zp, in2_scale=b.scale, in2_zp=b.zp, out_scale=y.scale,
                         out_zp=y.zp, fused=op.fused)
    n = y.data.size
    out = bytearray(n)
    for i0, i1 in band_rows(n, [-(-n // pieces)]):
        kern.add_s8(p, out, i0, a.data.tobytes(), i0, b.data.tobytes(), i0, i1 - i0)
    return out


def run_requant(kern, op):
    x, y = op.inputs[0], op.outputs[0]
    p = quant.requant_params(in_scale=x.scale, in_zp=x.zp, out_scale=y.scale, out_zp=y.zp)
    out = bytearray(y.data.size)
    kern.requant_s8(p, out, 0, x.data.tobytes(), 0, y.data.size)
    return out


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


def run_softmax(kern, op):
    x, y = op.inputs[0], op.outputs[0]
    n = x.shape[-1]
    p = quant.softmax_params(n=n, in_scale=x.scale, beta=op.options.beta, out_scale=y.scale, out_zp=y.zp)
    out = bytearray(y.data.size)
    inp, off = with_guard(x.data.tobytes(), np.random.default_rng(1))
    kern.softmax_s8(p, out, 0, inp, off, x.data.size // n)
    return out
