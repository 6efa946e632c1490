"""The external oracles: TensorFlow Lite's reference kernels (every intermediate tensor) and TFLite Micro.

TensorFlow and tflite_micro are imported lazily: most commands never need them.
"""

import contextlib
import os
import re
import tempfile

import numpy as np

import warnings

# TensorFlow's start-up chatter (oneDNN notice, absl pre-init lines, the tf.lite.Interpreter deprecation
# notice) says nothing about the model; real errors still raise.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")


class Reference:
    """TFLite with BUILTIN_REF kernels and experimental_preserve_all_tensors, created once per model."""

    def __init__(self, model_bytes):
        import tensorflow as tf
        self.it = tf.lite.Interpreter(
            model_content=bytes(model_bytes),
            experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF,
            experimental_preserve_all_tensors=True)
        self.it.allocate_tensors()
        self.inp = self.it.get_input_details()[0]
        self.out = self.it.get_output_details()[0]

    def run(self, x):
        """Run one input; returns the output array."""
        self.it.set_tensor(self.inp["index"], np.asarray(x, dtype=self.inp["dtype"]).reshape(self.inp["shape"]))
        self.it.invoke()
        return self.it.get_tensor(self.out["index"])

    def tensor(self, index):
        return self.it.get_tensor(index)


@contextlib.contextmanager
def _capture_fd2():
    """Capture what C code writes to file descriptor 2 (TFLM prints its allocations there)."""
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        box = []
        try:
            yield box
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            box.append(tmp.read().decode(errors="replace"))


class Micro:
    """TFLite Micro's interpreter (its own kernels, its own arena)."""

    def __init__(self, model_bytes, *, arena_size=16 << 20):
        from tflite_micro.python.tflite_micro import runtime
        self.it = runtime.Interpreter.from_bytes(bytes(model_bytes), arena_size=arena_size)

    def run(self, x):
        self.it.set_input(np.asarray(x), 0)
        self.it.invoke()
        return self.it.get_output(0)

    def arena_bytes(self):
        """The arena TFLM really allocated ("Arena allocation total N bytes")."""
        with _capture_fd2() as box:
            self.it.print_allocations()
        m = re.search(r"Arena allocation total (\d+) bytes", box[0])
        return int(m.group(1)) if m else None
