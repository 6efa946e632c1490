"""The model zoo (tests/zoo.py) builds what each case claims, and together covers every op tileswap runs."""
import collections
import warnings

import numpy as np
import pytest

import zoo

SUPPORTED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN",
             "PAD", "RESHAPE", "CONCATENATION", "SOFTMAX", "QUANTIZE", "DEQUANTIZE"}


def run_ref(tflite, x):
    """All tensors of one inference with TFLite's reference kernels: {tensor index: array}."""
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        interp = tf.lite.Interpreter(
            model_content=tflite, experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF,
            experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    outputs = {int(o) for op in interp._get_ops_details() for o in op["outputs"]}
    return {i: interp.get_tensor(i) for i in sorted(outputs)}, interp.get_output_details()[0]["index"]


def op_outputs(tflite):
    """Index of each op's (first) output tensor, in execution order."""
    return [int(op["outputs"][0]) for op in zoo._interpreter(tflite)._get_ops_details()]


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
    seen = collections.Counter(op for name in zoo.ZOO for op in zoo.CLAIMS[name])
    assert SUPPORTED <= set(seen), SUPPORTED - set(seen)


def test_concat_requantize_has_int8_quantize_before_concat():
    details = zoo.op_details(zoo.model("concat_requantize"))
    names = [d[0] for d in details]
    assert "QUANTIZE" in names and "CONCATENATION" in names, names
    # QUANTIZE int8 -> int8 feeding a CONCATENATION (not a float edge: the model's input is int8).
    assert zoo.sample_input(zoo.model("concat_requantize")).dtype == np.int8
    assert names.index("QUANTIZE") < max(i for i, n in enumerate(names) if n == "CONCATENATION")


def test_pad_case_keeps_pad():
    assert zoo.ops_in(zoo.model("pad_asym_conv")) == ["PAD", "CONV_2D"]


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
    ("conv_relu", "CONV_2D", "RELU"), ("conv_relu6", "CONV_2D", "RELU6"), ("dw_relu6", "DEPTHWISE_CONV_2D", "RELU6"),
    ("add_scales", "ADD", "RELU"), ("dense_chain", "FULLY_CONNECTED", "RELU")])
def test_activation_is_fused(name, op, act):
    from tensorflow.lite.python import schema_py_generated as schema

    acts = {v: k for k, v in vars(schema.ActivationFunctionType).items() if not k.startswith("_")}
    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(zoo.model(name), 0))
    fused = [acts[o.builtinOptions.fusedActivationFunction] for o, n in zip(m.subgraphs[0].operators,
             zoo.ops_in(zoo.model(name))) if n == op]
    assert act in fused, fused
    assert "RELU" not in zoo.ops_in(zoo.model(name)) and "RELU6" not in zoo.ops_in(zoo.model(name))


def test_zero_point_limits():
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        interp = tf.lite.Interpreter(model_content=zoo.model("zero_point_limits"))
    assert interp.get_input_details()[0]["quantization"][1] == 127
    assert interp.get_output_details()[0]["quantization"][1] == -128


def test_builders_are_deterministic():
    # Same seed, fresh Keras session -> the same flatbuffer, whatever ran before.
    assert zoo.model("add_scales", cache=False) == zoo.model("add_scales", cache=False)
