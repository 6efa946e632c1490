"""Keras -> full-integer int8 .tflite, through TensorFlow's own converter.

The canonical input of the tiler is an int8 `.tflite`; a Keras model is turned into one here so that the
quantization (scales, zero points, fused activations) is TFLite's own and the rest of tileswap can be
bit-exact with TFLite's reference kernels. Host only.

    import numpy as np, keras
    from tileswap.tiler.keras_import import convert_keras

    model = keras.Sequential([keras.Input((8, 8, 1), batch_size=1), keras.layers.Conv2D(4, 3)])
    tflite = convert_keras(model, np.random.rand(32, 8, 8, 1).astype(np.float32))

TensorFlow is imported lazily, inside `convert_keras`: importing it takes seconds and most CLI commands never
convert anything.

Build models with `keras.Input(shape, batch_size=1)`: with an unknown batch the converter emits
SHAPE/STRIDED_SLICE/PACK ops around Flatten and friends, which tileswap does not run.
"""
import contextlib
import os
import tempfile
import warnings

import numpy as np

# How much of the converter's captured stderr to quote when conversion fails.
_LOG_TAIL_CHARS = 4000


@contextlib.contextmanager
def captured_stderr(sink):
    """Send the process's C-level stderr (fd 2) to a temporary file; append what was written to `sink`.

    TensorFlow's C++ side writes banners and progress lines ("oneDNN custom operations are on",
    "fully_quantize: 0, ...") straight to fd 2, where neither `warnings` nor `logging` can reach them, and
    TF_CPP_MIN_LOG_LEVEL no longer silences the ones written before absl's logging is initialised. The
    text is kept so that a failure can quote it: noise is dropped, errors are not. Not thread-safe
    (fd 2 is process-wide); conversion is not something to run concurrently anyway. Public for scripts
    that want the same treatment around other TensorFlow calls (examples/digits wraps training in it).
    """
    _flush_stdio()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            _flush_stdio()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            sink.append(tmp.read().decode("utf-8", "replace"))


def _flush_stdio():
    """Flush Python's and C's stdio buffers, so text written before a redirect lands where it was meant to."""
    import ctypes
    import sys

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).fflush(None)


def _import_tf(log):
    """Import TensorFlow quietly (its import-time C++ banner goes to `log`) and quieten its Python loggers."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # only takes effect before the first import
    try:
        with captured_stderr(log):
            import tensorflow as tf
    except BaseException:
        import sys

        sys.stderr.write("".join(log))  # the banner was noise, but a failed import's output is not
        raise
    tf.get_logger().setLevel("ERROR")
    with contextlib.suppress(ImportError):
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    return tf


def import_keras():
    """Import and return `keras` (TensorFlow backend) without TensorFlow's C++ import-time banner.

    For scripts and tests that build models: `keras = import_keras()` instead of `import keras`.
    """
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # the converter needs TF-backed models
    log = []
    _import_tf(log)
    import keras

    return keras


def _tail(log):
    text = "".join(log).strip()
    if not text:
        return ""
    if len(text) > _LOG_TAIL_CHARS:
        text = "..." + text[-_LOG_TAIL_CHARS:]
    return "\nconverter output:\n" + text


def convert_keras(model, representative, *, int8_io=True):
    """Convert a Keras model to a full-integer int8 TFLite flatbuffer and return its bytes.

    model: a built `keras.Model` with one input (ideally `keras.Input(shape, batch_size=1)`).
    representative: ndarray of float samples with a leading sample axis, shape (N, *input_shape[1:]);
        each sample is fed to the calibrator as a batch of one. It sets every activation range, so it
        should look like real inputs: values outside it saturate at -128/127.
    int8_io: True gives int8 input and output tensors (the model starts and ends with int8 ops);
        False keeps float32 edges, so the model starts with QUANTIZE and ends with DEQUANTIZE.

    Every op is int8 (TFLITE_BUILTINS_INT8): a model with an op that has no int8 kernel fails here.
    Raises ValueError when the inputs do not fit the model or the converter fails; the error quotes the
    converter's own log. Deterministic: the same model and data give the same bytes.
    """
    rep = np.asarray(representative, dtype=np.float32)
    inputs = list(model.inputs)
    if len(inputs) != 1:
        raise ValueError(f"convert_keras supports models with one input, this one has {len(inputs)}")
    in_shape = tuple(inputs[0].shape)  # (batch, ...) with batch 1 or None
    if rep.ndim != len(in_shape) or rep.shape[1:] != in_shape[1:] or rep.shape[0] == 0:
        raise ValueError(
            f"representative data has shape {rep.shape}, expected (N, {', '.join(map(str, in_shape[1:]))})"
            " with N >= 1 samples")
    if in_shape[0] not in (None, 1):
        raise ValueError(f"model input batch size is {in_shape[0]}; use keras.Input(..., batch_size=1)")
    if not np.all(np.isfinite(rep)):
        raise ValueError("representative data contains NaN or infinity")

    log = []
    tf = _import_tf(log)

    def samples():
        for sample in rep:
            yield [sample[np.newaxis]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = samples
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if int8_io:
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    else:
        converter.inference_input_type = tf.float32
        converter.inference_output_type = tf.float32

    try:
        # Keras prints the exported SavedModel's signature to stdout and the converter warns about input
        # statistics it does not need (the representative data sets them); both are noise here.
        with warnings.catch_warnings(), contextlib.redirect_stdout(_StringSink(log)), captured_stderr(log):
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
            tflite = converter.convert()
    except Exception as e:  # the converter raises ConverterError, RuntimeError, ValueError, ...
        raise ValueError(f"TFLite int8 conversion failed: {type(e).__name__}: {e}{_tail(log)}") from e
    if not isinstance(tflite, (bytes, bytearray)) or not tflite:
        raise ValueError(f"TFLite int8 conversion returned no model{_tail(log)}")
    return bytes(tflite)


class _StringSink:
    """A write-only text stream that appends to a list (for `contextlib.redirect_stdout`)."""

    def __init__(self, log):
        self._log = log

    def write(self, text):
        self._log.append(text)
        return len(text)

    def flush(self):
        pass
