"""Read a full-integer int8 `.tflite` into a small graph of numpy arrays.

The flatbuffer is parsed with the schema module TensorFlow ships (`tensorflow/lite/python/
schema_py_generated.py`), loaded straight from its file so that `tileswap compile` does not pay for
importing TensorFlow itself.

    graph = load_tflite(open("model.tflite", "rb").read())
    for op in graph.ops: print(op.index, op.name, op.inputs, op.outputs)
"""

import importlib.util
import os
import sys

import numpy as np

from . import TilerError

_DTYPES = {0: np.float32, 2: np.int32, 3: np.uint8, 4: np.int64, 7: np.int16, 9: np.int8}
_schema = None


def schema():
    """TensorFlow's generated flatbuffer schema module (tflite), loaded once without importing TF."""
    global _schema
    if _schema is None:
        spec = importlib.util.find_spec("tensorflow")
        if spec is None or not spec.submodule_search_locations:
            raise TilerError("TensorFlow is not installed; it provides the .tflite schema (pip install tensorflow-cpu)")
        path = os.path.join(spec.submodule_search_locations[0], "lite", "python", "schema_py_generated.py")
        mspec = importlib.util.spec_from_file_location("_tileswap_tflite_schema", path)
        mod = importlib.util.module_from_spec(mspec)
        sys.modules[mspec.name] = mod
        mspec.loader.exec_module(mod)
        _schema = mod
    return _schema


class Tensor:
    """One tensor of the model: shape, dtype, quantization and (for constants) its data."""

    def __init__(self, index, name, shape, dtype, scale, zero_point, quant_dim, data):
        self.index = index
        self.name = name
        self.shape = tuple(int(d) for d in shape)
        self.dtype = dtype
        self.scale = scale            # np.float32 array (1 entry per tensor, or per channel)
        self.zero_point = zero_point  # np.int64 array, same length
        self.quant_dim = quant_dim
        self.data = data              # ndarray for constants, None for activations

    @property
    def nbytes(self):
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    def q(self):
        """(scale, zero_point) of a per-tensor quantized tensor, as (float, int)."""
        if self.scale is None or len(self.scale) != 1:
            raise TilerError("tensor %r: expected per-tensor quantization" % self.name)
        return float(self.scale[0]), int(self.zero_point[0])


class Op:
    def __init__(self, index, name, inputs, outputs, options):
        self.index = index
        self.name = name          # builtin operator name, e.g. "CONV_2D"
        self.inputs = inputs      # tensor indices (-1 for an omitted optional input)
        self.outputs = outputs
        self.options = options    # the builtin options object of the schema (or None)


class Graph:
    def __init__(self, tensors, ops, inputs, outputs):
        self.tensors = tensors
        self.ops = ops
        self.inputs = inputs
        self.outputs = outputs


def _op_names(s):
    return {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}


def load_tflite(data):
    """Parse `.tflite` bytes into a Graph; TilerError if it is not a single-subgraph TFLite model."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise TilerError("not a TensorFlow Lite model (no 'TFL3' identifier); expected a .tflite flatbuffer")
    s = schema()
    try:
        model = s.ModelT.InitFromPackedBuf(bytearray(data), 0)
    except Exception as e:  # the generated parser raises anything on a damaged buffer
        raise TilerError("damaged .tflite flatbuffer: %s" % e) from None
    if not model.subgraphs or len(model.subgraphs) != 1:
        raise TilerError("expected one subgraph, found %d" % len(model.subgraphs or []))
    names = _op_names(s)
    codes = []
    for oc in model.operatorCodes or []:
        code = max(oc.builtinCode, oc.deprecatedBuiltinCode)
        codes.append(names.get(code, "CUSTOM(%s)" % oc.customCode if oc.customCode else "BUILTIN_%d" % code))
    sg = model.subgraphs[0]
    tensors = []
    for i, t in enumerate(sg.tensors or []):
        dtype = _DTYPES.get(t.type)
        if dtype is None:
            raise TilerError("tensor #%d %r has unsupported type %d" % (i, _name(t), t.type))
        shape = list(t.shape) if t.shape is not None else []
        q = t.quantization
        scale = zp = None
        qdim = 0
        if q is not None and q.scale is not None and len(q.scale):
            scale = np.asarray(q.scale, dtype=np.float32)
            zp = np.asarray(q.zeroPoint if q.zeroPoint is not None else [0] * len(scale), dtype=np.int64)
            qdim = q.quantizedDimension
        buf = model.buffers[t.buffer] if t.buffer < len(model.buffers) else None
        arr = None
        if buf is not None and buf.data is not None and len(buf.data):
            arr = np.frombuffer(np.asarray(buf.data, dtype=np.uint8).tobytes(), dtype=dtype).reshape(shape)
        elif buf is not None and buf.offset > 1:
            raw = bytes(data[buf.offset:buf.offset + buf.size])
            arr = np.frombuffer(raw, dtype=dtype).reshape(shape)
        tensors.append(Tensor(i, _name(t), shape, dtype, scale, zp, qdim, arr))
    ops = []
    for i, o in enumerate(sg.operators or []):
        ops.append(Op(i, codes[o.opcodeIndex], list(o.inputs), list(o.outputs), o.builtinOptions))
    return Graph(tensors, ops, list(sg.inputs), list(sg.outputs))


def _name(t):
    n = t.name
    return n.decode() if isinstance(n, bytes) else (n or "")
