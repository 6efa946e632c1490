"""The model zoo (tests/zoo.py) builds what each case claims, and together covers every op tileswap runs."""

import numpy as np
import pytest

import zoo

SUPPORTED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN",
             "PAD", "RESHAPE", "CONCATENATION", "SOFTMAX", "QUANTIZE", "DEQUANTIZE", "LEAKY_RELU"}


def run_ref(tflite, x):
    """One inference with TFLite's reference kernels: ({op output tensor index: array}, output index)."""
    import tensorflow as tf

    interp = zoo.interpreter(tflite, experimental_preserve_all_tensors=True,
                             experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    return {i: interp.get_tensor(i) for i in op_outputs(tflite)}, interp.get_output_details()[0]["index"]


def op_outputs(tflite):
    """Index of each op's (first) output tensor, in execution order."""
    return [int(op["outputs"][0]) for op in zoo.interpreter(tflite)._get_ops_details()]


@pytest.mark.parametrize("name", sorted(zoo.ZOO))
def test_case_has_claimed_ops_and_live_output(name):
    tflite = zoo.model(name)
    got = zoo.ops_in(tflite)
    assert sorted(got) == zoo.CLAIMS[name], (name, got)
    assert set(got) <= SUPPORTED, set(got) - SUPPORTED
    # Random weights must still give a non-constant output, or the case tests nothing.
    tensors, out = run_ref(tflite, zoo.sample_input(tflite, seed=1))
    assert len(np.unique(tensors[out])) > 1, (name, tensors[out])


def test_zoo_covers_every_supported_op():
    seen = {op for name in zoo.ZOO for op in zoo.ops_in(zoo.model(name))}
    assert seen == SUPPORTED, (SUPPORTED - seen, seen - SUPPORTED)


def test_concat_requantize_has_int8_quantize_into_concat():
    interp = zoo.interpreter(zoo.model("concat_requantize"))
    dtypes = {t["index"]: t["dtype"] for t in interp.get_tensor_details()}
    ops = interp._get_ops_details()
    concat_inputs = {int(i) for op in ops if op["op_name"] == "CONCATENATION" for i in op["inputs"]}
    requants = [op for op in ops if op["op_name"] == "QUANTIZE"]
    assert requants, [op["op_name"] for op in ops]
    for op in requants:  # int8 -> int8, feeding a CONCATENATION: a requantize, not a float edge
        (src,), (dst,) = op["inputs"], op["outputs"]
        assert dtypes[int(src)] == np.int8 and dtypes[int(dst)] == np.int8
        assert int(dst) in concat_inputs


def test_pad_cases_keep_pad():
    assert zoo.ops_in(zoo.model("pad_asym_conv")) == ["PAD", "CONV_2D"]
    assert zoo.ops_in(zoo.model("pad_maxpool")) == ["PAD", "MAX_POOL_2D"]


def test_float_edges_are_quantize_and_dequantize():
    tflite = zoo.model("float_edges")
    ops = zoo.ops_in(tflite)
    assert ops[0] == "QUANTIZE" and ops[-1] == "DEQUANTIZE", ops
    assert zoo.sample_input(tflite).dtype == np.float32


@pytest.mark.parametrize("name", ["dw_mult2_same", "dw_mult2_valid_stride2"])
def test_depth_multiplier_doubles_channels(name):
    (op, inputs, outputs), = zoo.op_details(zoo.model(name))
    assert op == "DEPTHWISE_CONV_2D"
    assert outputs[0][-1] == 2 * inputs[0][-1], (inputs, outputs)


def test_dense_flatten_reshapes_whole_map():
    (_, r_in, r_out), (_, fc_in, fc_out) = zoo.op_details(zoo.model("dense_flatten"))
    assert r_in[0] == (1, 9, 11, 3) and r_out[0] == (1, 297) and fc_out[0] == (1, 10), (r_in, r_out, fc_out)


def test_saturation_clips_intermediates():
    tflite = zoo.model("saturation")
    tensors, _ = run_ref(tflite, zoo.sample_input(tflite, seed=1))
    ops = {name: out for name, out in zip(zoo.ops_in(tflite), op_outputs(tflite))}  # last op of each kind
    conv = tensors[op_outputs(tflite)[0]]
    clipped = np.mean((conv == -128) | (conv == 127))
    assert 0.15 < clipped < 0.9, clipped
    add = tensors[ops["ADD"]]
    assert add.min() == -128 and add.max() == 127, (add.min(), add.max())


@pytest.mark.parametrize("name, op, act", [
    ("conv_relu", "CONV_2D", "RELU"), ("conv_relu6", "CONV_2D", "RELU6"),
    ("dw_relu6", "DEPTHWISE_CONV_2D", "RELU6"), ("add_scales", "ADD", "RELU"),
    ("dense_chain", "FULLY_CONNECTED", "RELU"), ("maxpool_relu", "MAX_POOL_2D", "RELU")])
def test_activation_is_fused(name, op, act):
    from tensorflow.lite.python import schema_py_generated as schema

    tflite = zoo.model(name)
    names = {v: k for k, v in vars(schema.ActivationFunctionType).items() if not k.startswith("_")}
    graph = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(tflite, 0)).subgraphs[0]
    ops = zoo.ops_in(tflite)
    fused = [names[o.builtinOptions.fusedActivationFunction] for o, n in zip(graph.operators, ops) if n == op]
    assert act in fused, fused
    assert "RELU" not in ops and "RELU6" not in ops, ops


def test_zero_point_limits():
    interp = zoo.interpreter(zoo.model("zero_point_limits"))
    assert interp.get_input_details()[0]["quantization"][1] == 127
    assert interp.get_output_details()[0]["quantization"][1] == -128


def test_builders_are_deterministic():
    # Same seed, fresh Keras session -> the same flatbuffer, whatever ran before.
    assert zoo.model("add_scales", cache=False) == zoo.model("add_scales", cache=False)
