"""Keras model builders for test_kernels.py (each returns (keras_model, calib, convert_kwargs); arguments are
hashable so `_kernel_cases.model` can cache the converted model) and helpers to aim accumulators."""

import numpy as np


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


def leaky_model(n, alpha, scale):
    keras, L, _ = _keras()
    x = keras.Input((n,), batch_size=1, name="in0")
    return keras.Model(x, L.LeakyReLU(negative_slope=alpha)(x)), [((1, n), scale, 0.0)], {}


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
