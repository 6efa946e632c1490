"""The model zoo: the networks embedded-vision users ask for, built here with random weights, no downloads.

    from tileswap.tiler import zoo
    tflite = zoo.build("mobilenet_v2")              # full-integer int8 .tflite bytes (deterministic)
    zoo.info("resnet50")["macs"]                    # 3857973248, counted from the Keras model
    model = zoo.keras_model("squeezenet", input_size=64)   # the Keras model itself (batch 1), not converted

The zoo exists to exercise the tiler at real sizes (ResNet-50's largest layers hold over 2 MB of weights each),
not to classify anything: weights are random, so outputs mean nothing, but shapes, op mix, weight bytes and
MACs are the real architectures'. Three builders wrap `keras.applications` (`weights=None`, and
`classifier_activation=None`: an untrained softmax calibrates to scales so tiny that TFLite aborts); the
others follow their reference descriptions in Keras layers only.

Random weights are made to behave like trained ones, so that every activation range the converter
calibrates is meaningful: kernels are He-normal, batch-norm gammas and betas are spread per channel, and the
batch-norm moving statistics are set from the representative images themselves (one forward pass in training
mode with momentum 0), so every normalized activation has zero mean and unit variance on that data instead
of vanishing or exploding with depth. The converter then folds each batch norm into its convolution.

Everything comes from `seed` through numpy's generator, not from Keras initializers, so the bytes do not
depend on which models were built before or on Keras' own random streams.
"""
import warnings

import numpy as np

from . import TilerError
from . import keras_import

ZOO = {}           # name -> builder(*, input_size=None) -> keras.Model with a batch-1 input
DEFAULT_SIZE = {}  # name -> the architecture's native input height = width
MIN_SIZE = 64      # below it the last feature maps shrink to 1x1 and the converter squeezes them to vectors
SAMPLES = 8        # representative images per conversion: enough to calibrate, cheap for ResNet-50


def _model(size):
    def register(builder):
        ZOO[builder.__name__] = builder
        DEFAULT_SIZE[builder.__name__] = size
        return builder
    return register


def _input(name, input_size):
    keras = keras_import.import_keras()
    size = DEFAULT_SIZE[name] if input_size is None else input_size
    if size < MIN_SIZE:
        raise TilerError("%s: input size %d is too small; at least %d" % (name, size, MIN_SIZE))
    return keras, keras.layers, keras.Input((size, size, 3), batch_size=1, name="input")


# ---- the models ---------------------------------------------------------------------------------
@_model(224)
def mobilenet_v1(*, input_size=None):
    """MobileNet v1 1.0 (keras.applications): 13 depthwise-separable blocks, ReLU6."""
    keras, _, x = _input("mobilenet_v1", input_size)
    return keras.applications.MobileNet(input_tensor=x, weights=None, classifier_activation=None)


@_model(224)
def mobilenet_v2(*, input_size=None):
    """MobileNet v2 1.0 (keras.applications): inverted residuals with linear bottlenecks, ReLU6, ADD."""
    keras, _, x = _input("mobilenet_v2", input_size)
    return keras.applications.MobileNetV2(input_tensor=x, weights=None, classifier_activation=None)


@_model(224)
def resnet50(*, input_size=None):
    """ResNet-50 v1 (keras.applications): bottleneck blocks with residual ADDs, 7x7 stem, max pooling."""
    keras, _, x = _input("resnet50", input_size)
    return keras.applications.ResNet50(input_tensor=x, weights=None, classifier_activation=None)


@_model(224)
def squeezenet(*, input_size=None):
    """SqueezeNet 1.1: fire modules (1x1 squeeze, 1x1 and 3x3 expands joined by CONCATENATION), no batch norm.

    Pooling is 'valid' (floor); the reference's ceil mode gives the same shapes at 224."""
    keras, L, x = _input("squeezenet", input_size)
    inp = x
    x = L.Conv2D(64, 3, strides=2, activation="relu", name="conv1")(x)
    x = L.MaxPooling2D(3, strides=2, name="pool1")(x)
    # (fire number, squeeze channels, expand channels per branch, max pool after it)
    fires = ((2, 16, 64, False), (3, 16, 64, True), (4, 32, 128, False), (5, 32, 128, True), (6, 48, 192, False),
             (7, 48, 192, False), (8, 64, 256, False), (9, 64, 256, False))
    for i, squeeze, expand, pool in fires:
        s = L.Conv2D(squeeze, 1, activation="relu", name="fire%d_squeeze" % i)(x)
        e1 = L.Conv2D(expand, 1, activation="relu", name="fire%d_expand1x1" % i)(s)
        e3 = L.Conv2D(expand, 3, padding="same", activation="relu", name="fire%d_expand3x3" % i)(s)
        x = L.Concatenate(name="fire%d_concat" % i)([e1, e3])
        if pool:
            x = L.MaxPooling2D(3, strides=2, name="pool%d" % i)(x)
    x = L.Conv2D(1000, 1, activation="relu", name="conv10")(x)
    x = L.GlobalAveragePooling2D(name="pool10")(x)
    return keras.Model(inp, x, name="squeezenet")


# EfficientNet-B0's stages: (repeats, kernel, stride, expand ratio, output channels).
_B0_STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
              (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))


@_model(224)
def efficientnet_lite0(*, input_size=None):
    """EfficientNet-Lite0: EfficientNet-B0's MBConv stages without squeeze-excite, ReLU6 instead of swish.

    As in the reference `efficientnet_lite_builder`: 'same' padding, residual ADD when a block keeps its
    shape, stem 32 and head 1280 channels."""
    keras, L, x = _input("efficientnet_lite0", input_size)
    inp = x

    def conv_bn(x, filters, kernel, name, *, stride=1, act=True, depthwise=False):
        if depthwise:
            x = L.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False, name=name)(x)
        else:
            x = L.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=name)(x)
        x = L.BatchNormalization(name=name + "_bn")(x)
        return L.ReLU(6.0, name=name + "_relu6")(x) if act else x

    x = conv_bn(x, 32, 3, "stem", stride=2)
    block = 0
    for repeats, kernel, stride, expand, out in _B0_STAGES:
        for r in range(repeats):
            name, inp_block, cin = "block%d" % block, x, x.shape[-1]
            if expand != 1:
                x = conv_bn(x, cin * expand, 1, name + "_expand")
            x = conv_bn(x, None, kernel, name + "_dw", stride=stride if r == 0 else 1, depthwise=True)
            x = conv_bn(x, out, 1, name + "_project", act=False)
            if r > 0:  # stride 1 and cin == out
                x = L.Add(name=name + "_add")([x, inp_block])
            block += 1
    x = conv_bn(x, 1280, 1, "head")
    x = L.GlobalAveragePooling2D(name="avg_pool")(x)
    x = L.Dense(1000, name="logits")(x)
    return keras.Model(inp, x, name="efficientnet_lite0")


@_model(416)
def tiny_yolov2(*, input_size=None):
    """Tiny YOLOv2 (darknet's tiny-yolo-voc.cfg): 9 convs (batch norm, LeakyReLU 0.1), 6 max pools, 13x13x125.

    Max pools are 'same', like darknet's (padding on the bottom and right); the last one has stride 1."""
    keras, L, x = _input("tiny_yolov2", input_size)
    inp = x
    for i, filters in enumerate((16, 32, 64, 128, 256, 512, 1024, 1024)):
        x = L.Conv2D(filters, 3, padding="same", use_bias=False, name="conv%d" % i)(x)
        x = L.BatchNormalization(name="conv%d_bn" % i)(x)
        x = L.LeakyReLU(0.1, name="conv%d_leaky" % i)(x)
        if i < 6:
            x = L.MaxPooling2D(2, strides=2 if i < 5 else 1, padding="same", name="pool%d" % i)(x)
    x = L.Conv2D(125, 1, name="conv8")(x)  # 5 anchors x (4 box + 1 objectness + 20 VOC classes)
    return keras.Model(inp, x, name="tiny_yolov2")


# ---- building, converting, describing ------------------------------------------------------------
def keras_model(name, *, input_size=None):
    """The Keras model `name` with Keras' initial weights (for its shape only); TilerError if unknown."""
    if name not in ZOO:
        raise TilerError("unknown zoo model %r; known: %s" % (name, ", ".join(ZOO)))
    keras = keras_import.import_keras()
    keras.backend.clear_session()  # resets layer-name counters: names end up in the flatbuffer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # keras.applications warns that no ImageNet weights fit other sizes
        return ZOO[name](input_size=input_size)


def representative(shape, *, n=SAMPLES, seed=0):
    """n deterministic random images (n, h, w, c) in [-1, 1]: smooth blobs at three scales plus fine noise,
    each stretched to the full range, closer to a blurred photo than to white noise."""
    h, w, c = shape
    rng = np.random.default_rng([seed, 1])
    x = 0.1 * rng.uniform(-1.0, 1.0, (n, h, w, c))
    for cells, weight in ((3, 0.5), (8, 0.25), (24, 0.15)):
        grid = rng.uniform(-1.0, 1.0, (n, cells, cells, c))
        rows = np.einsum("hi,nijc->nhjc", _lerp(h, cells), grid)  # two steps: one einsum is ~100x slower
        x += weight * np.einsum("nhjc,wj->nhwc", rows, _lerp(w, cells))
    lo = x.min(axis=(1, 2, 3), keepdims=True)
    hi = x.max(axis=(1, 2, 3), keepdims=True)
    return (2.0 * (x - lo) / (hi - lo) - 1.0).astype(np.float32)


def _lerp(size, cells):
    """(size, cells) matrix interpolating `cells` samples linearly across `size` pixels."""
    pos = np.linspace(0.0, cells - 1.0, size)
    return np.maximum(0.0, 1.0 - np.abs(pos[:, None] - np.arange(cells)[None, :]))


def randomize(model, images, *, seed=0):
    """Give `model` deterministic random weights that keep activations alive at every depth (module docstring)."""
    rng = np.random.default_rng([seed, 0])
    bns = []
    for layer in model.layers:
        new = []
        depthwise = type(layer).__name__ == "DepthwiseConv2D"
        for v in layer.weights:
            shape, kind = tuple(v.shape), v.name
            if kind == "kernel" and depthwise:  # (kh, kw, c, multiplier): each output sees kh*kw inputs
                w = rng.normal(0.0, np.sqrt(2.0 / (shape[0] * shape[1])), shape)
            elif kind == "kernel":            # (kh, kw, cin, cout) or (in, out): fan-in is all but the last
                w = rng.normal(0.0, np.sqrt(2.0 / np.prod(shape[:-1])), shape)
            elif kind == "gamma":
                w = rng.uniform(0.5, 1.5, shape)
            elif kind in ("beta", "bias"):
                w = rng.uniform(-0.2, 0.2, shape)
            elif kind in ("moving_mean", "moving_variance"):
                w = np.zeros(shape) if kind == "moving_mean" else np.ones(shape)  # set from the data below
            else:
                raise TilerError("zoo: no rule to randomize weight %r of layer %r" % (v.path, layer.name))
            new.append(w.astype(np.float32))
        if new:
            layer.set_weights(new)
        if hasattr(layer, "moving_mean"):
            bns.append((layer, layer.momentum))
            layer.momentum = 0.0
    if bns:
        # Dropout runs in training mode here too, unseeded; no dropout feeds a batch norm, so it changes nothing.
        with warnings.catch_warnings():  # keras.applications models take a list of one input; same thing
            warnings.filterwarnings("ignore", message="The structure of `inputs` doesn't match")
            model(images, training=True)  # moving statistics := this batch's statistics, layer by layer
        for layer, momentum in bns:
            layer.momentum = momentum


def build(name, *, seed=0, progress=None, input_size=None, samples=SAMPLES):
    """Build zoo model `name` and convert it to full-integer int8 TFLite (int8 input and output); its bytes.

    seed: weights and representative images; the same seed gives the same bytes.
    progress: optional callable(step, total, label), called as each stage starts (conversion is the long one).
    input_size: height = width of the input (default: the architecture's own), at least MIN_SIZE.
    Raises TilerError for an unknown name, a bad size or a failed conversion.
    """
    def stage(step, label):
        if progress is not None:
            progress(step, 4, label)

    stage(1, "import TensorFlow, build the Keras model")
    model = keras_model(name, input_size=input_size)
    images = representative(tuple(model.inputs[0].shape[1:]), n=samples, seed=seed)
    stage(2, "randomize weights, set batch-norm statistics from %d images" % samples)
    randomize(model, images, seed=seed)
    stage(3, "convert to full-integer int8 TFLite")
    try:
        tflite = keras_import.convert_keras(model, images, int8_io=True)
    except ValueError as e:
        raise TilerError("%s: %s" % (name, e)) from None
    stage(4, "done")
    return tflite


def info(name, *, input_size=None):
    """dict(params, macs, input_shape, output_shape, weights, largest_layer, largest_layer_weights) of `name`.

    params is Keras' count (batch-norm parameters included, as usually quoted); weights counts conv and dense
    kernel elements only (int8 bytes after conversion, where batch norms fold away); macs counts multiply-
    accumulates of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED layers for one inference.
    """
    model = keras_model(name, input_size=input_size)
    macs = weights = 0
    largest = ("", 0)
    for layer in model.layers:
        kind = type(layer).__name__
        if kind not in ("Conv2D", "DepthwiseConv2D", "Dense"):
            continue
        k = tuple(layer.kernel.shape)      # depthwise: (kh, kw, c, multiplier)
        out = tuple(layer.output.shape)    # (1, h, w, cout) or (1, units)
        positions = int(np.prod(out[1:-1], dtype=np.int64))
        n = int(np.prod(k, dtype=np.int64))
        # every kernel element is used once per output position (depthwise: per channel x multiplier)
        macs += positions * n
        weights += n
        if n > largest[1]:
            largest = (layer.name, n)
    return dict(params=int(model.count_params()), macs=int(macs), input_shape=list(model.inputs[0].shape),
                output_shape=list(model.outputs[0].shape), weights=int(weights), largest_layer=largest[0],
                largest_layer_weights=int(largest[1]))


def describe(name):
    """The first line of the builder's docstring."""
    return (ZOO[name].__doc__ or "").strip().splitlines()[0]


def op_counts(tflite):
    """{builtin op name: count} of a .tflite, in order of first appearance (reads the flatbuffer, no TF)."""
    from .tflite_import import schema

    s = schema()
    model = s.Model.GetRootAs(tflite, 0)
    names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    codes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        codes.append(names.get(code, "BUILTIN_%d" % code))
    counts = {}
    sg = model.Subgraphs(0)
    for i in range(sg.OperatorsLength()):
        op = codes[sg.Operators(i).OpcodeIndex()]
        counts[op] = counts.get(op, 0) + 1
    return counts

