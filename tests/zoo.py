"""The model zoo, for tests: tiny random-weight Keras models, one edge case each, converted to full-int8 TFLite.

    from zoo import ZOO, CLAIMS, model, sample_input
    tflite = model("conv_stride2_same_even")       # bytes, cached under tests/.zoo_cache/
    x = sample_input(tflite, seed=1)               # int8 (or float32) input spanning the whole range

`ZOO` maps a case name to its builder (a function returning .tflite bytes, slow: it converts); `CLAIMS` maps
it to the builtin ops the converted model must contain, as a sorted list (`tests/test_zoo_models.py` checks
them). Every builder seeds Keras and numpy itself and clears Keras' session first, so layer names, weights
and therefore the bytes do not depend on which cases ran before. Weights are random (no training): kernels
are He-scaled normal, biases uniform, so activations are neither all zero nor all saturated. The
representative set is uniform in [-1, 1] unless a case says otherwise.

Converter behaviour the cases rely on (TF 2.21), worth knowing when adding one:
- ZeroPadding2D(1) + a 3x3 stride-1 'valid' conv or depthwise is folded into a 'same' one; any other
  padding (unequal, wider, before a stride-2 conv or before a pool) stays a PAD op (`pad_asym_conv`,
  `pad_maxpool`).
- Concatenated branches normally get the concatenation's scale pushed back into their producers (even the
  model input), so no QUANTIZE appears (`concat_rescaled`); a requantizing QUANTIZE appears only when one
  tensor feeds two concatenations with different ranges (`concat_requantize`).
- Conv2D(use_bias=False) still gets a zero int32 bias tensor; Dense(use_bias=False) gets none (input -1).
- ReLU/ReLU6 after Conv2D, DepthwiseConv2D, Dense, Add and even MaxPooling2D are fused (no separate RELU
  op; `maxpool_relu`). CONCATENATION stores axis -1, not 3.
"""
import hashlib
import inspect
import os
import warnings
import zlib

import numpy as np

from tileswap.tiler import keras_import

CACHE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".zoo_cache")
ZOO = {}
CLAIMS = {}
# (case, budget) where the plan runs by channel groups: chunked spills read by K-split 1x1 convolutions,
# a convolution split into a MEAN, kept group tiles, a K-split op writing chunks or one group over its
# int32 sums (test_pipeline.py checks
# each plan uses its mode; test_micropython.py runs them on MicroPython)
GROUP_WISE = [("expand_dw_project", 4096), ("conv_mean_by_groups", 2944), ("inverted_residual", 3736),
              ("ksplit_chunked_out", 24000), ("ksplit_one_group", 10000)]
HWC = (9, 11, 3)  # odd, non-square, few channels: every edge of the tiling shows up


def case(*ops):
    """Register a builder under its function name, claiming the builtin ops its model contains."""
    def register(builder):
        ZOO[builder.__name__] = builder
        CLAIMS[builder.__name__] = sorted(ops)
        return builder
    return register


# ---- shared helpers (their source is part of every cache key) ----

def _start(name, shape=HWC):
    """(keras.layers, input tensor) with Keras reset and seeded for case `name`."""
    keras = keras_import.import_keras()
    keras.backend.clear_session()  # resets layer-name counters: names end up in the flatbuffer
    keras.utils.set_random_seed(_seed(name))
    return keras.layers, keras.Input(shape, batch_size=1, name="input")


def _seed(name):
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def _finish(name, inp, out, *, gains=None, rep=None, int8_io=True):
    """Randomize the weights (layer name -> extra gain in `gains`), convert, return .tflite bytes."""
    keras = keras_import.import_keras()
    net = keras.Model(inp, out, name=name)
    rng = np.random.default_rng(_seed(name))
    for layer in net.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        new = []
        for w in weights:
            if w.ndim == 1:  # bias
                new.append(rng.uniform(-0.3, 0.3, w.shape))
            else:  # depthwise kernels (kh, kw, c, m) mix kh*kw inputs; others all but the last axis
                fan_in = np.prod(w.shape[:2] if "depthwise" in layer.__class__.__name__.lower() else w.shape[:-1])
                new.append(rng.normal(0.0, np.sqrt(2.0 / fan_in), w.shape) * (gains or {}).get(layer.name, 1.0))
        layer.set_weights([x.astype(np.float32) for x in new])
    if rep is None:
        rep = rng.uniform(-1.0, 1.0, (16, *inp.shape[1:]))
    return keras_import.convert_keras(net, rep.astype(np.float32), int8_io=int8_io)


# ---- CONV_2D ----

@case("CONV_2D")
def conv_1x1():
    """CONV_2D 1x1 'valid': no halo rows, pure channel mixing (3 -> 5)."""
    L, x = _start("conv_1x1")
    return _finish("conv_1x1", x, L.Conv2D(5, 1)(x))


@case("CONV_2D")
def conv_3x3_same():
    """CONV_2D 3x3 'same': one halo row each side, implicit zero-point padding; 3 -> 7 channels."""
    L, x = _start("conv_3x3_same")
    return _finish("conv_3x3_same", x, L.Conv2D(7, 3, padding="same")(x))


@case("CONV_2D")
def conv_3x3_valid():
    """CONV_2D 3x3 'valid': output smaller than input (7x9), no padding."""
    L, x = _start("conv_3x3_valid")
    return _finish("conv_3x3_valid", x, L.Conv2D(5, 3)(x))


@case("CONV_2D")
def conv_5x5_same():
    """CONV_2D 5x5 'same': two halo rows each side."""
    L, x = _start("conv_5x5_same")
    return _finish("conv_5x5_same", x, L.Conv2D(3, 5, padding="same")(x))


@case("CONV_2D")
def conv_3x1_same():
    """CONV_2D non-square 3x1 'same': halo rows but no halo columns."""
    L, x = _start("conv_3x1_same")
    return _finish("conv_3x1_same", x, L.Conv2D(5, (3, 1), padding="same")(x))


@case("CONV_2D")
def conv_1x5_valid():
    """CONV_2D non-square 1x5 'valid': no halo rows, width shrinks 11 -> 7."""
    L, x = _start("conv_1x5_valid")
    return _finish("conv_1x5_valid", x, L.Conv2D(5, (1, 5))(x))


@case("CONV_2D")
def conv_stride2_same_odd():
    """CONV_2D 3x3 stride 2 'same' on odd 9x11: symmetric padding, output 5x6."""
    L, x = _start("conv_stride2_same_odd")
    return _finish("conv_stride2_same_odd", x, L.Conv2D(5, 3, strides=2, padding="same")(x))


@case("CONV_2D")
def conv_stride2_same_even():
    """CONV_2D 3x3 stride 2 'same' on even 10x12: TF pads 0 above/left and 1 below/right."""
    L, x = _start("conv_stride2_same_even", (10, 12, 3))
    return _finish("conv_stride2_same_even", x, L.Conv2D(5, 3, strides=2, padding="same")(x))


@case("CONV_2D")
def conv_stride2_valid():
    """CONV_2D 3x3 stride 2 'valid': the last input row/column is never read (9x11 -> 4x5)."""
    L, x = _start("conv_stride2_valid")
    return _finish("conv_stride2_valid", x, L.Conv2D(4, 3, strides=2)(x))


@case("CONV_2D")
def conv_dilation2_same():
    """CONV_2D 3x3 dilation 2 'same': a 5x5 footprint with holes, two halo rows each side."""
    L, x = _start("conv_dilation2_same")
    return _finish("conv_dilation2_same", x, L.Conv2D(5, 3, dilation_rate=2, padding="same")(x))


@case("CONV_2D")
def conv_dilation2_valid():
    """CONV_2D 3x3 dilation 2 'valid': 9x11 -> 5x7."""
    L, x = _start("conv_dilation2_valid")
    return _finish("conv_dilation2_valid", x, L.Conv2D(3, 3, dilation_rate=2)(x))


@case("CONV_2D", "CONV_2D")
def conv_odd_channels():
    """Two CONV_2D with odd channel counts 7 -> 5 -> 3 (no multiple of 4 anywhere)."""
    L, x = _start("conv_odd_channels", (9, 11, 7))
    return _finish("conv_odd_channels", x, L.Conv2D(3, 3, padding="same")(L.Conv2D(5, 1)(x)))


@case("CONV_2D")
def conv_single_channel():
    """CONV_2D from a one-channel image (grayscale), 3x3 'same'."""
    L, x = _start("conv_single_channel", (9, 11, 1))
    return _finish("conv_single_channel", x, L.Conv2D(4, 3, padding="same")(x))


@case("CONV_2D")
def conv_relu():
    """CONV_2D with fused RELU: the output zero point is -128 and the clamp starts there."""
    L, x = _start("conv_relu")
    return _finish("conv_relu", x, L.Conv2D(5, 3, padding="same", activation="relu")(x))


@case("CONV_2D")
def conv_relu6():
    """CONV_2D followed by a ReLU(6) layer, fused into RELU6; gain 4 so many outputs reach 6 (the output
    scale is then exactly 6/255, zero point -128: the clamp meets the calibrated range at 127)."""
    L, x = _start("conv_relu6")
    conv = L.Conv2D(5, 3, padding="same", name="conv")
    return _finish("conv_relu6", x, L.ReLU(6.0)(conv(x)), gains={"conv": 4.0})


@case("CONV_2D")
def conv_no_bias():
    """CONV_2D with use_bias=False (the converter still stores an all-zero int32 bias)."""
    L, x = _start("conv_no_bias")
    return _finish("conv_no_bias", x, L.Conv2D(5, 3, padding="same", use_bias=False)(x))


# ---- DEPTHWISE_CONV_2D ----

@case("DEPTHWISE_CONV_2D")
def dw_3x3_same():
    """DEPTHWISE_CONV_2D 3x3 'same', depth multiplier 1."""
    L, x = _start("dw_3x3_same")
    return _finish("dw_3x3_same", x, L.DepthwiseConv2D(3, padding="same")(x))


@case("DEPTHWISE_CONV_2D")
def dw_3x3_valid():
    """DEPTHWISE_CONV_2D 3x3 'valid', depth multiplier 1."""
    L, x = _start("dw_3x3_valid")
    return _finish("dw_3x3_valid", x, L.DepthwiseConv2D(3)(x))


@case("DEPTHWISE_CONV_2D")
def dw_5x5_same():
    """DEPTHWISE_CONV_2D 5x5 'same': two halo rows each side."""
    L, x = _start("dw_5x5_same")
    return _finish("dw_5x5_same", x, L.DepthwiseConv2D(5, padding="same")(x))


@case("DEPTHWISE_CONV_2D")
def dw_5x5_valid_stride2():
    """DEPTHWISE_CONV_2D 5x5 stride 2 'valid' (9x11 -> 3x4)."""
    L, x = _start("dw_5x5_valid_stride2")
    return _finish("dw_5x5_valid_stride2", x, L.DepthwiseConv2D(5, strides=2)(x))


@case("DEPTHWISE_CONV_2D")
def dw_stride2_same():
    """DEPTHWISE_CONV_2D 3x3 stride 2 'same' on even 10x12 (padding only below/right)."""
    L, x = _start("dw_stride2_same", (10, 12, 5))
    return _finish("dw_stride2_same", x, L.DepthwiseConv2D(3, strides=2, padding="same")(x))


@case("DEPTHWISE_CONV_2D")
def dw_mult2_same():
    """DEPTHWISE_CONV_2D depth multiplier 2, 3x3 'same': 3 input -> 6 output channels (c reads c // 2)."""
    L, x = _start("dw_mult2_same")
    return _finish("dw_mult2_same", x, L.DepthwiseConv2D(3, depth_multiplier=2, padding="same")(x))


@case("DEPTHWISE_CONV_2D")
def dw_mult2_valid_stride2():
    """DEPTHWISE_CONV_2D depth multiplier 2, 3x3 stride 2 'valid', odd 5 channels -> 10."""
    L, x = _start("dw_mult2_valid_stride2", (9, 11, 5))
    return _finish("dw_mult2_valid_stride2", x, L.DepthwiseConv2D(3, strides=2, depth_multiplier=2)(x))


@case("CONV_2D", "CONV_2D", "DEPTHWISE_CONV_2D")
def dw_mult_in_chain():
    """1x1 conv -> 5x5 depthwise with depth multiplier 6 -> 1x1 conv: at tight budgets the depthwise is a
    fused-chain member whose weights are cut into channel groups, which must hold whole input channels."""
    L, x = _start("dw_mult_in_chain", (12, 12, 8))
    y = L.Conv2D(8, 1, activation="relu")(x)
    y = L.DepthwiseConv2D(5, depth_multiplier=6, padding="same")(y)
    return _finish("dw_mult_in_chain", x, L.Conv2D(8, 1)(y))


@case("DEPTHWISE_CONV_2D")
def dw_relu6():
    """DEPTHWISE_CONV_2D with fused RELU6 (MobileNet's block)."""
    L, x = _start("dw_relu6")
    dw = L.DepthwiseConv2D(3, padding="same", activation="relu6", name="dw")
    return _finish("dw_relu6", x, dw(x), gains={"dw": 4.0})


# ---- FULLY_CONNECTED, RESHAPE ----

@case("RESHAPE", "FULLY_CONNECTED")
def dense_flatten():
    """Flatten (RESHAPE) of a whole 9x11x3 map (297 features, HWC order) into FULLY_CONNECTED(10)."""
    L, x = _start("dense_flatten")
    return _finish("dense_flatten", x, L.Dense(10)(L.Flatten()(x)))


@case("FULLY_CONNECTED", "FULLY_CONNECTED")
def dense_chain():
    """FULLY_CONNECTED with fused RELU, then one without bias (its bias input is -1) on a 1-D input."""
    L, x = _start("dense_chain", (24,))
    return _finish("dense_chain", x, L.Dense(5, use_bias=False)(L.Dense(16, activation="relu")(x)))


# ---- ADD ----

@case("CONV_2D", "CONV_2D", "ADD")
def add_scales():
    """ADD of two branches whose scales differ ~30x, with a ReLU fused into the ADD."""
    L, x = _start("add_scales")
    a = L.Conv2D(4, 1, name="small")(x)
    b = L.Conv2D(4, 1, name="big")(x)
    return _finish("add_scales", x, L.ReLU()(L.Add()([a, b])), gains={"big": 30.0})


@case("CONV_2D", "ADD")
def add_residual():
    """ADD of the model input and a conv of it (residual): one operand is the graph input itself."""
    L, x = _start("add_residual")
    return _finish("add_residual", x, L.Add()([x, L.Conv2D(3, 3, padding="same")(x)]))


# ---- CONCATENATION, QUANTIZE (int8 -> int8) ----

@case("CONV_2D", "CONV_2D", "CONCATENATION")
def concat_rescaled():
    """CONCATENATION of the input and branches with ~50x different ranges: the converter gives every
    producer (even the input) the output's scale, so no requantize op appears and the small branch is coarse."""
    L, x = _start("concat_rescaled")
    parts = [x, L.Conv2D(2, 1, name="small")(x), L.Conv2D(5, 1, name="big")(x)]
    return _finish("concat_rescaled", x, L.Concatenate()(parts), gains={"big": 50.0})


@case("CONV_2D", "CONV_2D", "CONV_2D", "CONCATENATION", "CONCATENATION", "QUANTIZE")
def concat_requantize():
    """Branch `a` joins a wide-range CONCATENATION and a narrow one; a tensor has one scale, so the
    converter inserts QUANTIZE int8 -> int8 to requantize it for one of them."""
    L, x = _start("concat_requantize")
    a = L.Conv2D(2, 1, name="a")(x)
    big = L.Conv2D(5, 1, name="big")(x)
    narrow = L.Conv2D(3, 1, name="mix")(L.Concatenate()([a, x]))
    return _finish("concat_requantize", x, L.Concatenate()([a, big, narrow]), gains={"big": 50.0})


# ---- MAX_POOL_2D, AVERAGE_POOL_2D ----

@case("MAX_POOL_2D")
def maxpool_2_valid():
    """MAX_POOL_2D 2x2 stride 2 'valid' on odd 9x11: the last row and column are dropped."""
    L, x = _start("maxpool_2_valid")
    return _finish("maxpool_2_valid", x, L.MaxPooling2D(2)(x))


@case("MAX_POOL_2D")
def maxpool_3_same_stride1():
    """MAX_POOL_2D 3x3 stride 1 'same': padding is excluded from the max."""
    L, x = _start("maxpool_3_same_stride1")
    return _finish("maxpool_3_same_stride1", x, L.MaxPooling2D(3, strides=1, padding="same")(x))


@case("MAX_POOL_2D")
def maxpool_3_same_stride2():
    """MAX_POOL_2D 3x3 stride 2 'same' on even 10x12 (window sticks out below/right only)."""
    L, x = _start("maxpool_3_same_stride2", (10, 12, 3))
    return _finish("maxpool_3_same_stride2", x, L.MaxPooling2D(3, strides=2, padding="same")(x))


@case("MAX_POOL_2D")
def maxpool_relu():
    """MAX_POOL_2D 2x2 with a following ReLU fused into it: pools clamp to the activation range too."""
    L, x = _start("maxpool_relu")
    return _finish("maxpool_relu", x, L.ReLU()(L.MaxPooling2D(2)(x)))


@case("PAD", "MAX_POOL_2D")
def pad_maxpool():
    """ZeroPadding2D(1) -> PAD, then MaxPooling2D 3x3 stride 1 'valid': unlike 'same' pooling, the padded
    border (the zero point, i.e. real 0.0) takes part in the max."""
    L, x = _start("pad_maxpool")
    return _finish("pad_maxpool", x, L.MaxPooling2D(3, strides=1)(L.ZeroPadding2D(1)(x)))


@case("AVERAGE_POOL_2D")
def avgpool_2_valid():
    """AVERAGE_POOL_2D 2x2 stride 2 'valid' on odd 9x11."""
    L, x = _start("avgpool_2_valid")
    return _finish("avgpool_2_valid", x, L.AveragePooling2D(2)(x))


@case("AVERAGE_POOL_2D")
def avgpool_2_same_stride2():
    """AVERAGE_POOL_2D 2x2 stride 2 'same' on odd 9x11: edge windows average 2 or 1 values, not 4."""
    L, x = _start("avgpool_2_same_stride2")
    return _finish("avgpool_2_same_stride2", x, L.AveragePooling2D(2, padding="same")(x))


@case("AVERAGE_POOL_2D")
def avgpool_3_same_stride1():
    """AVERAGE_POOL_2D 3x3 stride 1 'same': border counts 4 or 6, interior 9 (rounding of the divide)."""
    L, x = _start("avgpool_3_same_stride1")
    return _finish("avgpool_3_same_stride1", x, L.AveragePooling2D(3, strides=1, padding="same")(x))


@case("AVERAGE_POOL_2D")
def avgpool_3_valid_stride2():
    """AVERAGE_POOL_2D 3x3 stride 2 'valid' (9x11 -> 4x5)."""
    L, x = _start("avgpool_3_valid_stride2")
    return _finish("avgpool_3_valid_stride2", x, L.AveragePooling2D(3, strides=2)(x))


# ---- MEAN, PAD, SOFTMAX ----

@case("MEAN")
def mean_global():
    """GlobalAveragePooling2D -> MEAN over H and W of 9x11x3 (99 values per channel), output (1, 3)."""
    L, x = _start("mean_global")
    return _finish("mean_global", x, L.GlobalAveragePooling2D()(x))


@case("CONV_2D", "CONV_2D", "DEPTHWISE_CONV_2D")
def expand_dw_project():
    """MobileNetV2's late block without the residual: 1x1 conv 24 -> 192, 3x3 depthwise, 1x1 conv
    192 -> 48 on a 7x7 map. At tight budgets the depthwise runs by channel groups and spills its output
    in channel chunks, which the projection sums chunk by chunk (K-split)."""
    L, x = _start("expand_dw_project", (7, 7, 24))
    y = L.Conv2D(192, 1, activation="relu6")(x)
    y = L.DepthwiseConv2D(3, padding="same", activation="relu6")(y)
    return _finish("expand_dw_project", x, L.Conv2D(48, 1)(y))


@case("CONV_2D", "CONV_2D", "CONV_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "ADD")
def ksplit_chunked_out():
    """expand_dw_project on a 14x14 map whose projection (384 -> 160) feeds two 1x1 convs (so it is fused with
    neither): at tight budgets the projection sums its channel-chunked input chunk by chunk (K-split) and
    writes its own output in channel chunks of two card blocks, which both readers rebuild pixel by pixel."""
    L, x = _start("ksplit_chunked_out", (14, 14, 32))
    y = L.Conv2D(384, 1, activation="relu6")(x)
    y = L.DepthwiseConv2D(3, padding="same", activation="relu6")(y)
    y = L.Conv2D(160, 1)(y)
    return _finish("ksplit_chunked_out", x, L.Add()([L.Conv2D(8, 1)(y), L.Conv2D(8, 1)(y)]))


@case("CONV_2D", "CONV_2D", "CONV_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "ADD")
def ksplit_one_group():
    """ksplit_chunked_out with MobileNetV2's 14x14 576 -> 96 shape scaled down (288 -> 40): the K-split
    projection takes all its output channels in one group and requantizes them over its int32 sums
    (device/ops.py run_ksplit), its spilled output in whole rows."""
    L, x = _start("ksplit_one_group", (14, 14, 24))
    y = L.Conv2D(288, 1, activation="relu6")(x)
    y = L.DepthwiseConv2D(3, padding="same", activation="relu6")(y)
    y = L.Conv2D(40, 1)(y)
    return _finish("ksplit_one_group", x, L.Add()([L.Conv2D(8, 1)(y), L.Conv2D(8, 1)(y)]))


@case("CONV_2D", "MEAN")
def conv_mean_by_groups():
    """1x1 CONV_2D widening 24 -> 160 channels, then a global MEAN (MobileNetV2's head): at tight
    budgets the two fuse and run by channel groups, the MEAN summing each group as it is produced."""
    L, x = _start("conv_mean_by_groups", (7, 7, 24))
    y = L.Conv2D(160, 1, activation="relu6")(x)
    return _finish("conv_mean_by_groups", x, L.GlobalAveragePooling2D()(y))


@case("MEAN", "CONV_2D")
def mean_keepdims_conv():
    """MEAN with keepdims (1x1x5 map) feeding a 1x1 CONV_2D, as in squeeze-and-excite."""
    L, x = _start("mean_keepdims_conv", (9, 11, 5))
    return _finish("mean_keepdims_conv", x, L.Conv2D(4, 1)(L.GlobalAveragePooling2D(keepdims=True)(x)))


@case("CONV_2D", "CONV_2D", "CONV_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "DEPTHWISE_CONV_2D", "ADD")
def inverted_residual():
    """Two MobileNetV2 blocks on 16x16x8: 1x1 expand x6 (RELU6) -> 3x3 depthwise (stride 2, then 1) ->
    1x1 project, the second with its residual ADD. At tight budgets the planner fuses them into
    row-band chains and splits expand+depthwise by channel groups (tiler/fuse.py)."""
    L, x = _start("inverted_residual", (16, 16, 8))
    e = L.Conv2D(48, 1, activation="relu6")(x)
    d = L.DepthwiseConv2D(3, strides=2, padding="same", activation="relu6")(e)
    y = L.Conv2D(12, 1)(d)
    e2 = L.Conv2D(72, 1, activation="relu6")(y)
    d2 = L.DepthwiseConv2D(3, padding="same", activation="relu6")(e2)
    return _finish("inverted_residual", x, L.Add()([y, L.Conv2D(12, 1)(d2)]))


@case("CONV_2D", "CONV_2D", "LEAKY_RELU", "LEAKY_RELU", "MAX_POOL_2D")
def leaky_relu_yolo():
    """Tiny-YOLO's unit: CONV_2D, LeakyReLU(0.1) (never fused: its own LEAKY_RELU op), 2x2 max pool."""
    L, x = _start("leaky_relu_yolo", (12, 12, 3))
    y = L.MaxPooling2D(2)(L.LeakyReLU(negative_slope=0.1)(L.Conv2D(8, 3, padding="same")(x)))
    return _finish("leaky_relu_yolo", x, L.LeakyReLU(negative_slope=0.1)(L.Conv2D(5, 3, padding="same")(y)))


@case("PAD", "CONV_2D")
def pad_asym_conv():
    """ZeroPadding2D(((1, 2), (2, 0))) -> PAD (fill = zero point), then a 3x3 'valid' CONV_2D.
    Equal padding would be folded into a 'same' conv; unequal padding keeps the PAD op."""
    L, x = _start("pad_asym_conv")
    return _finish("pad_asym_conv", x, L.Conv2D(4, 3)(L.ZeroPadding2D(((1, 2), (2, 0)))(x)))


@case("FULLY_CONNECTED", "SOFTMAX")
def softmax_dense():
    """SOFTMAX over 10 logits at the end of a classifier (output scale 1/256, zero point -128)."""
    L, x = _start("softmax_dense", (24,))
    return _finish("softmax_dense", x, L.Softmax()(L.Dense(10)(x)))


@case("CONV_2D", "SOFTMAX")
def softmax_channels():
    """SOFTMAX over the channel axis of a 9x11x5 feature map (99 independent rows)."""
    L, x = _start("softmax_channels")
    return _finish("softmax_channels", x, L.Softmax()(L.Conv2D(5, 1, name="conv")(x)), gains={"conv": 3.0})


# ---- edges and ranges ----

@case("QUANTIZE", "CONV_2D", "DEQUANTIZE")
def float_edges():
    """Float32 input and output (int8_io=False): QUANTIZE float -> int8 first, DEQUANTIZE last."""
    L, x = _start("float_edges")
    return _finish("float_edges", x, L.Conv2D(4, 3, padding="same", activation="relu")(x), int8_io=False)


@case("CONV_2D")
def zero_point_limits():
    """Input calibrated on [-1, 0] (zero point 127), fused RELU output (zero point -128)."""
    L, x = _start("zero_point_limits")
    rep = -np.random.default_rng(_seed("zero_point_limits")).uniform(0.0, 1.0, (16, *HWC))
    rep[0, 0, 0, 0] = 0.0
    return _finish("zero_point_limits", x, L.Conv2D(5, 3, padding="same", activation="relu")(x), rep=rep)


@case("CONV_2D", "CONV_2D", "ADD", "AVERAGE_POOL_2D")
def saturation():
    """Calibrated on small values (uniform in [-0.1, 0.1]) plus one sample with one pixel at +1 and one
    at -1 (in 2 of 8 channels), so the input scale spans [-1, 1] but the intermediate ranges only cover that
    pixel's worth: inputs across the whole int8 range clip ~45% of the first conv's outputs (no bias) and
    ~25% of the ADD's at -128/127."""
    shape = (9, 11, 8)
    L, x = _start("saturation", shape)
    rep = np.random.default_rng(_seed("saturation")).uniform(-0.1, 0.1, (16, *shape))
    rep[0, 4, 5, :2] = 1.0
    rep[1, 4, 5, :2] = -1.0
    a = L.Conv2D(4, 3, padding="same", use_bias=False)(x)
    b = L.Conv2D(4, 1, activation="relu")(a)
    return _finish("saturation", x, L.AveragePooling2D(2, strides=1)(L.Add()([a, b])), rep=rep)


# ---- access ----

def _cache_key(name):
    """Hash of everything the bytes depend on: the builder, the shared helpers, the converter wrapper and
    the TF/Keras versions."""
    keras = keras_import.import_keras()
    import tensorflow as tf

    parts = [inspect.getsource(ZOO[name])] + [inspect.getsource(f) for f in (_start, _seed, _finish)]
    parts += [inspect.getsource(keras_import), tf.__version__, keras.__version__, str(HWC)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def model(name, *, cache=True):
    """The case's .tflite bytes; converted once, then read from tests/.zoo_cache/ (keyed by source hash)."""
    if name not in ZOO:
        raise KeyError(f"no zoo case {name!r}; cases: {', '.join(ZOO)}")
    if not cache:
        return ZOO[name]()
    path = os.path.join(CACHE_DIR, f"{name}-{_cache_key(name)}.tflite")
    if os.path.exists(path):
        with open(path, "rb") as f:
            return f.read()
    tflite = ZOO[name]()
    os.makedirs(CACHE_DIR, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"  # atomic: parallel test workers may build the same case
    with open(tmp, "wb") as f:
        f.write(tflite)
    os.replace(tmp, path)
    return tflite


def build_zoo(*, cache=True):
    """{name: .tflite bytes} for every case."""
    return {name: model(name, cache=cache) for name in ZOO}


def interpreter(tflite, **kwargs):
    """A `tf.lite.Interpreter` for the model, without TF's deprecation warning (kwargs passed on)."""
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        return tf.lite.Interpreter(model_content=tflite, **kwargs)


def op_details(tflite):
    """[(op name, [input shapes], [output shapes])] in execution order; absent optional inputs are None."""
    interp = interpreter(tflite)
    shapes = {t["index"]: tuple(int(d) for d in t["shape"]) for t in interp.get_tensor_details()}
    return [(op["op_name"], [shapes.get(int(i)) for i in op["inputs"]], [shapes[int(o)] for o in op["outputs"]])
            for op in interp._get_ops_details()]


def ops_in(tflite):
    """Builtin operator names of the model, in execution order (e.g. ['CONV_2D', 'ADD'])."""
    return [name for name, _, _ in op_details(tflite)]


def sample_input(tflite, *, seed=0):
    """A random input for the model: int8 over the whole range (both -128 and 127 present), or for a
    float input, floats reaching 25% beyond what its QUANTIZE can represent (so it clamps)."""
    detail = interpreter(tflite).get_input_details()[0]
    shape = tuple(int(d) for d in detail["shape"])
    rng = np.random.default_rng(seed)
    if detail["dtype"] == np.int8:
        x = rng.integers(-128, 128, shape, dtype=np.int8)
        x.flat[0], x.flat[-1] = -128, 127
        return x
    interp = interpreter(tflite)
    first = interp._get_ops_details()[0]  # the QUANTIZE that takes the float input
    quant = {t["index"]: t["quantization"] for t in interp.get_tensor_details()}
    scale, zero_point = quant[int(first["outputs"][0])]
    lo, hi = (-128 - zero_point) * scale, (127 - zero_point) * scale
    pad = 0.25 * (hi - lo)
    return rng.uniform(lo - pad, hi + pad, shape).astype(np.float32)
