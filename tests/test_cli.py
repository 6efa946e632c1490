"""The command line as a user meets it: outputs, exit codes, and bad input that loses nothing."""

import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from tileswap.device import format as F
from tileswap.host.cli import parse_size
from tileswap.host.emulator import Emulator
from tileswap.device import DeviceError, IntegrityError
from tileswap.tiler.compile import compile_model

from conftest import DIGITS


def ts(*args, env=None):
    r = subprocess.run([sys.executable, "-m", "tileswap.host.cli"] + [str(a) for a in args],
                       capture_output=True, text=True, env=env)
    return r.returncode, r.stdout, r.stderr


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    assert ts("keygen", "-o", d / "k")[0] == 0
    assert ts("compile", DIGITS, "-o", d / "d.tsi", "--sram", "1536", "--key", d / "k")[0] == 0
    x = np.load(os.path.join(os.path.dirname(DIGITS), "digits_test.npz"))["x_int8"]
    np.save(d / "x.npy", x[0])
    return d


def test_parse_size():
    assert parse_size("65536") == parse_size("64K") == parse_size("64KiB") == parse_size("64k") == 65536
    assert parse_size("1M") == 1 << 20
    with pytest.raises(Exception):
        parse_size("64 apples")


def test_help_explains_every_command():
    code, out, _ = ts("--help")
    assert code == 0
    for c in ("keygen", "compile", "plan", "run", "verify"):
        assert c in out
    code, out, _ = ts("compile", "--help")
    assert code == 0 and "--sram" in out and "64KiB" in out


def test_keygen_is_private_and_never_overwrites(work):
    assert stat.S_IMODE(os.stat(work / "k").st_mode) == 0o600
    before = (work / "k").read_bytes()
    code, _, err = ts("keygen", "-o", work / "k")
    assert code == 1 and "exists" in err and (work / "k").read_bytes() == before


def test_plan_json_fields(work):
    code, out, _ = ts("plan", work / "d.tsi", "--json", "--key", work / "k")
    assert code == 0
    info = json.loads(out)
    for k in ("sram_budget", "peak_sram", "weight_bytes", "io_read_bytes", "io_write_bytes", "tiles", "ops"):
        assert k in info
    assert info["peak_sram"] <= info["sram_budget"] == 1536 and info["authenticated"]


def test_run_json_and_output(work):
    code, out, err = ts("run", work / "d.tsi", "--input", work / "x.npy", "--output", work / "y.npy",
                        "--key", work / "k", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["output_shape"] == [10] and res["peak_sram"] <= 1536
    for k in ("bytes_read", "bytes_written", "blocks_read", "blocks_written", "macs", "tiles"):
        assert res["counters"][k] > 0
    assert np.load(work / "y.npy").shape == (10,)


def test_key_from_environment(work):
    env = dict(os.environ, TILESWAP_KEY=(work / "k").read_text().strip())
    code, out, err = ts("run", work / "d.tsi", "--input", work / "x.npy", "--json", env=env)
    assert code == 0, err
    assert (work / "k").read_text().strip() not in out + err


def test_wrong_and_missing_key_name_the_key_and_write_nothing(work, tmp_path):
    ts("keygen", "-o", tmp_path / "other")
    code, _, err = ts("run", work / "d.tsi", "--input", work / "x.npy", "--key", tmp_path / "other",
                      "--output", tmp_path / "y.npy")
    assert code == 1 and err.startswith("tileswap: wrong key") and "Traceback" not in err
    assert not (tmp_path / "y.npy").exists()
    env = dict(os.environ)
    env.pop("TILESWAP_KEY", None)
    code, _, err = ts("run", work / "d.tsi", "--input", work / "x.npy", "--output", tmp_path / "y.npy", env=env)
    assert code == 1 and "no key" in err and not (tmp_path / "y.npy").exists()


def test_unsupported_operator_exit_2_nothing_written(tmp_path, key):
    from tileswap.tiler.keras_import import convert_keras, import_keras
    keras = import_keras()
    inp = keras.Input((4, 4, 2), batch_size=1)
    m = keras.Model(inp, keras.layers.Activation("tanh")(keras.layers.Conv2D(2, 1)(inp)))
    (tmp_path / "tanh.tflite").write_bytes(convert_keras(m, np.random.default_rng(0).uniform(-1, 1, (8, 4, 4, 2))))
    (tmp_path / "k").write_text(key.hex())
    code, _, err = ts("compile", tmp_path / "tanh.tflite", "-o", tmp_path / "t.tsi", "--sram", "4K", "--key", tmp_path / "k")
    assert code == 2, err
    assert err.startswith("tileswap: unsupported operator TANH at op #1; supported: CONV_2D"), err
    assert not (tmp_path / "t.tsi").exists()


def test_budget_too_small_and_bad_files(work, tmp_path):
    code, _, err = ts("compile", DIGITS, "-o", tmp_path / "x.tsi", "--sram", "512", "--key", work / "k")
    assert code == 1 and "too small" in err and "--sram" in err and not (tmp_path / "x.tsi").exists()
    code, _, err = ts("run", DIGITS, "--input", work / "x.npy", "--key", work / "k")
    assert code == 1 and "not a tileswap image" in err
    code, _, err = ts("compile", work / "x.npy", "-o", tmp_path / "x.tsi", "--sram", "4K", "--key", work / "k")
    assert code == 1 and "not a TensorFlow Lite model" in err
    np.save(tmp_path / "bad.npy", np.zeros(7, np.int8))
    code, _, err = ts("run", work / "d.tsi", "--input", tmp_path / "bad.npy", "--key", work / "k")
    assert code == 1 and "takes 64" in err
    img = (work / "d.tsi").read_bytes()
    (tmp_path / "trunc.tsi").write_bytes(img[:len(img) // 2])
    code, _, err = ts("run", tmp_path / "trunc.tsi", "--input", work / "x.npy", "--key", work / "k")
    assert code == 1 and "tileswap:" in err and "Traceback" not in err


def test_every_tile_byte_change_is_refused_naming_the_tile(key, digits):
    """Flip bytes across every tile payload: each run fails with an error naming that tile."""
    image, _ = compile_model(digits, sram=1536, key=key)
    h = F.unpack_named(F.HDR_FMT, F.HDR_FIELDS, image)
    emu = Emulator(image, key)
    meta = bytes(image[F.BLOCK:F.BLOCK + h["meta_len"]])
    emu.close()
    tiles_off = h["meta_len"] - h["n_tiles"] * F.TILE_SIZE
    rng = np.random.default_rng(0)
    x = np.zeros((8, 8, 1), np.int8)
    for i in range(h["n_tiles"]):
        off, length = np.frombuffer(meta, "<u4", 2, tiles_off + i * F.TILE_SIZE)
        base = h["payload_block"] * F.BLOCK + int(off)
        for pos in {0, int(length) - 1, int(rng.integers(0, length))}:
            bad = bytearray(image)
            bad[base + pos] ^= 1 << int(rng.integers(0, 8))
            emu = Emulator(bytes(bad), key)
            with pytest.raises(IntegrityError, match=r"^tile %d \(" % i):
                emu.run(x)
            emu.close()


def test_tile_tables_and_header_are_authenticated(key, digits):
    image, _ = compile_model(digits, sram=1536, key=key)
    for pos in (F.BLOCK + 3, 40, 64):     # a tensor record, the model hash, the SRAM budget
        bad = bytearray(image)
        bad[pos] ^= 0x10
        with pytest.raises(DeviceError):
            Emulator(bytes(bad), key)
