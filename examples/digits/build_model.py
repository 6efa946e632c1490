"""Train the bundled example: a tiny CNN on scikit-learn's 8x8 digits, converted to a full-int8 .tflite.

    .venv/bin/python examples/digits/build_model.py        # writes digits_int8.tflite and digits_test.npz

The dataset ships inside scikit-learn (no download). Seeds, split and op determinism are fixed, so a rerun on
the same software gives the same model. Outputs, next to this file:
- digits_int8.tflite: int8 input (1, 8, 8, 1), int8 output (1, 10) softmax scores;
- digits_test.npz: the test split; `x` float32 (N, 8, 8, 1) in [0, 1], `x_int8` the same quantized exactly as
  TFLite's QUANTIZE op does with the model's input scale and zero point, `y` int64 labels.

The network is small (about 3k parameters) but touches most of what tileswap runs: CONV_2D (3x3 'same',
1x1, 3x3 stride 2), DEPTHWISE_CONV_2D with fused RELU6, a residual ADD, MAX_POOL_2D and AVERAGE_POOL_2D
joined by CONCATENATION, RESHAPE (Flatten), FULLY_CONNECTED and SOFTMAX.
"""
import os
import sys
import warnings

import numpy as np

from tileswap.tiler.keras_import import captured_stderr, convert_keras, import_keras

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 0
EPOCHS = 40
TFLITE_PATH = os.path.join(HERE, "digits_int8.tflite")
TEST_PATH = os.path.join(HERE, "digits_test.npz")


def load_digits_split():
    """(x_train, y_train, x_test, y_test): x float32 (N, 8, 8, 1) in [0, 1], y int64; fixed stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., np.newaxis]  # pixel values are 0..16
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    return x_train, y_train, x_test, y_test


def build(keras, batch_size):
    """The network; batch_size None for training, 1 for conversion (a fixed batch avoids SHAPE ops)."""
    L = keras.layers
    inp = keras.Input((8, 8, 1), batch_size=batch_size, name="image")
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="conv3x3")(inp)  # (8, 8, 8)
    d = L.DepthwiseConv2D(3, padding="same", activation="relu6", name="dw3x3")(x)  # (8, 8, 8)
    x = L.Add(name="residual")([x, d])
    x = L.Concatenate(name="pools")([  # (4, 4, 16)
        L.MaxPooling2D(2, name="maxpool")(x),
        L.AveragePooling2D(2, name="avgpool")(x)])
    x = L.Conv2D(16, 1, activation="relu", name="conv1x1")(x)  # (4, 4, 16)
    x = L.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="conv_s2")(x)  # (2, 2, 16)
    x = L.Flatten(name="flatten")(x)  # (64,)
    x = L.Dense(10, name="logits")(x)
    out = L.Softmax(name="softmax")(x)
    return keras.Model(inp, out, name="digits")


def quantize_like_tflite(x, scale, zero_point):
    """int8 values of float `x`, as TFLite's reference QUANTIZE computes them.

    TFLite: zero_point + TfLiteRound(val / scale), float32 division, round half away from zero, clamped to
    int8. The rounding is done in float64, where |q| + 0.5 is exact for any float32 q.
    """
    q = (np.asarray(x, np.float32) / np.float32(scale)).astype(np.float64)
    rounded = np.sign(q) * np.floor(np.abs(q) + 0.5)
    return np.clip(rounded + zero_point, -128, 127).astype(np.int8)


def tflite_accuracy(tf, tflite, x_int8, y):
    """Top-1 accuracy of the int8 model on int8 inputs, with TFLite's reference kernels."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        interp = tf.lite.Interpreter(
            model_content=tflite,
            experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]["index"]
    out = interp.get_output_details()[0]["index"]
    hits = 0
    for sample, label in zip(x_int8, y):
        interp.set_tensor(inp, sample[np.newaxis])
        interp.invoke()
        hits += int(np.argmax(interp.get_tensor(out)[0]) == label)
    return hits / len(y)


def input_quantization(tf, tflite):
    """(scale, zero_point) of the model's input tensor."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        detail = tf.lite.Interpreter(model_content=tflite).get_input_details()[0]
    if detail["dtype"] != np.int8:
        raise SystemExit(f"expected an int8 model input, got {detail['dtype']}")
    scale, zero_point = detail["quantization"]
    return float(scale), int(zero_point)


def print_unexpected(log):
    """Pass on what TensorFlow wrote to stderr during training, less one known, harmless line.

    Keras' tf.data pipeline sets an attribute this TensorFlow build's MapDataset does not declare; TF logs
    that at ERROR level ("NodeDef mentions attribute use_unbounded_threadpool") and carries on.
    """
    for line in "".join(log).splitlines():
        if line.strip() and "use_unbounded_threadpool" not in line:
            print(line, file=sys.stderr)


def write_atomically(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def main():
    keras = import_keras()
    import tensorflow as tf

    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    x_train, y_train, x_test, y_test = load_digits_split()

    trainer = build(keras, None)
    trainer.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                    metrics=["accuracy"])
    log = []
    with captured_stderr(log):
        trainer.fit(x_train, y_train, batch_size=32, epochs=EPOCHS, shuffle=True, verbose=0)
        float_acc = trainer.evaluate(x_test, y_test, verbose=0)[1]
    print_unexpected(log)

    model = build(keras, 1)
    model.set_weights(trainer.get_weights())
    tflite = convert_keras(model, x_train, int8_io=True)
    scale, zero_point = input_quantization(tf, tflite)
    x_test_int8 = quantize_like_tflite(x_test, scale, zero_point)
    int8_acc = tflite_accuracy(tf, tflite, x_test_int8, y_test)

    write_atomically(TFLITE_PATH, tflite)
    tmp = TEST_PATH + ".tmp.npz"
    np.savez_compressed(tmp, x=x_test, x_int8=x_test_int8, y=y_test)
    os.replace(tmp, TEST_PATH)

    print(f"parameters: {model.count_params()}, tflite: {len(tflite)} bytes, "
          f"input scale {scale:.6g} zero point {zero_point}")
    print(f"test accuracy on {len(y_test)} digits: float Keras {float_acc:.4f}, int8 TFLite {int8_acc:.4f}")
    print(f"wrote {os.path.relpath(TFLITE_PATH)} and {os.path.relpath(TEST_PATH)}")


if __name__ == "__main__":
    main()
