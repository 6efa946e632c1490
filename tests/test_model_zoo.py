"""`tileswap zoo`: the real architectures' sizes, and one small build end to end (the big ones are too slow
for `make test`: see docs/zoo.md for their conversion times)."""

import json
import subprocess
import sys

import pytest

from tileswap.host.verify import verify
from tileswap.tiler import zoo
from tileswap.tiler.compile import compile_model
from tileswap.tiler.lower import SUPPORTED

# Published figures of each architecture (parameters as Keras counts them, batch norm included).
PARAMS = {"mobilenet_v1": 4_253_864, "mobilenet_v2": 3_538_984, "resnet50": 25_636_712, "squeezenet": 1_235_496,
          "tiny_yolov2": 15_867_885}
MACS_M = {"mobilenet_v1": 569, "mobilenet_v2": 301, "resnet50": 3858, "squeezenet": 349, "efficientnet_lite0": 385,
          "tiny_yolov2": 3486}


def ts(*args):
    r = subprocess.run([sys.executable, "-m", "tileswap.host.cli"] + [str(a) for a in args],
                       capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


@pytest.fixture(scope="module")
def listing():
    code, out, err = ts("zoo", "--list", "--json")
    assert code == 0, err
    return {row["name"]: row for row in json.loads(out)}


def test_list_has_every_model_with_real_sizes(listing):
    assert sorted(listing) == sorted(["mobilenet_v1", "mobilenet_v2", "squeezenet", "efficientnet_lite0",
                                      "tiny_yolov2", "resnet50"])
    for name, want in PARAMS.items():
        assert listing[name]["params"] == want, (name, listing[name]["params"])
    for name, want in MACS_M.items():
        assert round(listing[name]["macs"] / 1e6) == want, (name, listing[name]["macs"])
    assert listing["efficientnet_lite0"]["params"] == pytest.approx(4.7e6, rel=0.02)
    assert listing["tiny_yolov2"]["input_shape"] == [1, 416, 416, 3]
    assert listing["tiny_yolov2"]["output_shape"] == [1, 13, 13, 125]
    assert listing["resnet50"]["largest_layer_weights"] > 2 * 1024 * 1024  # int8 bytes: the point of the model


def test_efficientnet_lite0_has_no_squeeze_excite_and_relu6_only():
    model = zoo.keras_model("efficientnet_lite0")
    kinds = {type(layer).__name__ for layer in model.layers}
    assert "Multiply" not in kinds and "Activation" not in kinds, kinds  # no SE gate, no swish
    assert all(layer.max_value == 6.0 for layer in model.layers if type(layer).__name__ == "ReLU")
    assert sum(type(layer).__name__ == "Add" for layer in model.layers) == 9


def test_tiny_yolov2_is_the_darknet_reference():
    model = zoo.keras_model("tiny_yolov2")
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    assert [c.filters for c in convs] == [16, 32, 64, 128, 256, 512, 1024, 1024, 125]
    leaky = [layer for layer in model.layers if type(layer).__name__ == "LeakyReLU"]
    assert len(leaky) == 8 and all(abs(layer.negative_slope - 0.1) < 1e-6 for layer in leaky)


def test_unknown_name_lists_the_known_ones(tmp_path):
    code, _, err = ts("zoo", "alexnet", "-o", tmp_path / "a.tflite")
    assert code == 1 and "unknown zoo model 'alexnet'" in err and "mobilenet_v2" in err and "resnet50" in err, err
    assert not list(tmp_path.iterdir())


def test_small_squeezenet_end_to_end(tmp_path, key):
    """The CLI writes the model (progress on stderr), the same bytes as the library in another process,
    only supported ops, and tileswap runs it bit-exact with TFLite."""
    out = tmp_path / "sq.tflite"
    code, stdout, err = ts("zoo", "squeezenet", "--input-size", "64", "-o", out)
    assert code == 0, err
    assert "[3/4] convert" in err and "wrote" in stdout, (stdout, err)
    assert [p.name for p in tmp_path.iterdir()] == ["sq.tflite"]  # no temporary file left behind
    tflite = out.read_bytes()
    assert zoo.build("squeezenet", input_size=64) == tflite  # deterministic across processes
    assert zoo.build("squeezenet", input_size=64, seed=1) != tflite
    ops = zoo.op_counts(tflite)
    assert ops == {"CONV_2D": 26, "MAX_POOL_2D": 3, "CONCATENATION": 8, "MEAN": 1}, ops
    assert set(ops) <= set(SUPPORTED)
    image, _ = compile_model(tflite, sram=64 * 1024, key=key)
    res = verify(tflite, image, key, inputs=1, seed=0, kernel="c", tflm=False)
    assert res["bit_exact"], res["first_mismatches"]


def test_input_size_too_small_is_refused():
    from tileswap.tiler import TilerError

    with pytest.raises(TilerError, match="at least 64"):
        zoo.build("squeezenet", input_size=32)
