"""Helpers for test_kernels.py: tiny single-op Keras models converted to full-integer int8 TFLite (cached per
process), run with TFLite's reference kernels (the oracle), and the parameters tiler/quant.py derives from
the same tensors."""

import functools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.lite.python import schema_py_generated as schema  # noqa: E402

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


# Model builders: each returns (keras_model, calib, convert_kwargs); arguments are hashable for `model`.
def _keras():
    import keras
    return keras, keras.layers, keras.initializers.RandomNormal(stddev=0.3)


def conv_model(h, w, c, filters, k, strides, padding, dilation, act, positive=False):
    keras, L, bias = _keras()
    x = keras.Input((h, w, c), batch_size=1, name="in0")
    y = L.Conv2D(filters, k, strides=strides, padding=padding, dilation_rate=dilation, activation=act,
                 bias_initializer=bias)(x)
    return keras.Model(x, y), [((1, h, w, c), 1.0, 4.0 if positive else 0.0)], {}


def dwconv_model(h, w, c, dm, k, strides, padding, dilation, act):
    keras, L, bias = _keras()
    x = keras.Input((h, w, c), batch_size=1, name="in0")
    y = L.DepthwiseConv2D(k, strides=strides, padding=padding, depth_multiplier=dm, dilation_rate=dilation,
                          activation=act, bias_initializer=bias)(x)
    return keras.Model(x, y), [((1, h, w, c), 1.0, 0.0)], {}


def pool_model(kind, h, w, c, k, strides, padding):
    keras, L, _ = _keras()
    x = keras.Input((h, w, c), batch_size=1, name="in0")
    layer = L.MaxPooling2D if kind == "max" else L.AveragePooling2D
    return keras.Model(x, layer(k, strides=strides, padding=padding)(x)), [((1, h, w, c), 1.0, 0.0)], {}


def fc_model(shape, units, act, per_channel=True):
    keras, L, bias = _keras()
    x = keras.Input(shape, batch_size=1, name="in0")
    y = L.Dense(units, activation=act, bias_initializer=bias)(x)
    return keras.Model(x, y), [((1,) + shape, 1.0, 0.0)], {"per_channel_dense": per_channel}


def add_model(n, scale_a, scale_b, relu):
    keras, L, _ = _keras()
    a, b = keras.Input((n,), batch_size=1, name="in0"), keras.Input((n,), batch_size=1, name="in1")
    y = L.Add()([a, b])
    if relu:
        y = L.ReLU()(y)
    return keras.Model([a, b], y), [((1, n), scale_a, 0.0), ((1, n), scale_b, 0.0)], {}


def softmax_concat_model(n, m, other_scale, logit_scale=3.0):
    """SOFTMAX (output scale 1/256) concatenated with a tensor of another scale: the converter inserts
    QUANTIZE int8 -> int8 after the softmax (scaling up when the concatenation's range is the smaller)."""
    keras, L, _ = _keras()
    a, b = keras.Input((n,), batch_size=1, name="in0"), keras.Input((m,), batch_size=1, name="in1")
    y = L.Concatenate()([L.Softmax()(a), b])
    return keras.Model([a, b], y), [((1, n), logit_scale, 0.0), ((1, m), other_scale, 0.0)], {}


def mean_model(h, w, c, keepdims, positive=False):
    keras, L, _ = _keras()
    x = keras.Input((h, w, c), batch_size=1, name="in0")
    y = L.GlobalAveragePooling2D(keepdims=keepdims)(x)
    return keras.Model(x, y), [((1, h, w, c), 1.0, 4.0 if positive else 0.0)], {}


def softmax_model(shape, scale):
    keras, L, _ = _keras()
    x = keras.Input(shape, batch_size=1, name="in0")
    return keras.Model(x, L.Softmax()(x)), [((1,) + shape, scale, 0.0)], {}


def designed_model(kind, n, units, seed, per_channel=True):
    """One FULLY_CONNECTED ("fc", n inputs), 1x1 CONV_2D ("conv", n input channels) or 3x3 'valid'
    DEPTHWISE_CONV_2D ("dw", one output pixel, 9 taps) whose int8 weights are known integers (each
    channel's max 127, one weight 1), so input rows can be solved for to give chosen accumulators."""
    keras, L, bias = _keras()
    rng = np.random.default_rng(seed)
    steps = rng.uniform(0.002, 0.02, units) if per_channel else np.full(units, rng.uniform(0.002, 0.02))
    taps = 9 if kind == "dw" else n
    ints = rng.integers(-127, 128, (taps, units))
    ints[0], ints[1] = 127, 1
    kernel = ints * steps
    if kind == "fc":
        x, layer, shape = keras.Input((1, n), batch_size=1, name="in0"), L.Dense(units, bias_initializer=bias), (n, units)
    elif kind == "conv":
        x, shape = keras.Input((1, 1, n), batch_size=1, name="in0"), (1, 1, n, units)
        layer = L.Conv2D(units, 1, bias_initializer=bias)
    else:
        x, shape = keras.Input((3, 3, units), batch_size=1, name="in0"), (3, 3, units, 1)
        layer = L.DepthwiseConv2D(3, bias_initializer=bias)
    y = layer(x)
    layer.set_weights([kernel.reshape(shape).astype(np.float32), layer.get_weights()[1]])
    return keras.Model(x, y), [((1,) + tuple(x.shape[1:]), rng.uniform(0.5, 3.0), 0.0)], \
        {"per_channel_dense": per_channel}


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


def mbqm_single_np(x, mult, shift):
    """The single-rounding 64-bit MultiplyByQuantizedMultiplier over an int64 numpy array."""
    return (np.asarray(x, dtype=np.int64) * mult + (1 << (30 - shift))) >> (31 - shift)


def mbqm_np(x, mult, shift):
    """MultiplyByQuantizedMultiplier (double rounding) over an int64 numpy array (|x << shift| < 2**31)."""
    x = np.asarray(x, dtype=np.int64) << max(shift, 0)
    v = x * mult
    v = v + np.where(v >= 0, 1 << 30, 1 - (1 << 30))
    q = np.where(v >= 0, v >> 31, -((-v) >> 31))
    mask = (1 << max(-shift, 0)) - 1
    return (q >> max(-shift, 0)) + ((q & mask) > (mask >> 1) + (q < 0))


def solve_row(w, bias, target, zp):
    """An int8 row x with bias + sum w * (x - zp) == target, using the weight of magnitude 1 last."""
    lo, hi = -128 - zp, 127 - zp
    u, rest = np.zeros(len(w), np.int64), int(target) - int(bias)
    one = int(np.flatnonzero(np.abs(w) == 1)[0])
    for i in sorted(range(len(w)), key=lambda i: -abs(int(w[i]))):
        if i != one and w[i]:
            u[i] = min(hi, max(lo, int(rest / int(w[i]))))
            rest -= int(w[i]) * int(u[i])
    u[one] = rest * int(w[one])
    return (u + zp).astype(np.int8) if lo <= u[one] <= hi else None
