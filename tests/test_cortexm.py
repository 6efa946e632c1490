"""The C kernels cross-compiled for Cortex-M4 (arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -O2) and run on QEMU's
mps2-an386 machine with semihosting: every operator's test vectors (_cortexm_vectors.py) must come out bit
for bit, with the DSP extension's fast paths, with the plain C fallback (-DTS_NO_DSP), and as ARMv6-M code. Skipped, with the
reason shown, where the ARM toolchain or QEMU is missing (`.ci/run` installs them)."""

import subprocess

import numpy as np
import pytest

from tileswap.host import cortexm
from tileswap.tiler import quant

pytestmark = pytest.mark.skipif(bool(cortexm.missing_tools()),
                                reason="ARM toolchain missing: %s (apt-get install --no-install-recommends "
                                       "gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)"
                                       % ", ".join(cortexm.missing_tools()))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cortexm"))


@pytest.fixture(scope="module")
def elfs(workdir):
    return {"dsp": cortexm.build(workdir, dsp=True), "plain": cortexm.build(workdir, dsp=False),
            "cortex-m0plus": cortexm.build(workdir, cpu="cortex-m0plus")}


@pytest.fixture(scope="module")
def vectors():
    from _cortexm_vectors import vectors
    return vectors()


@pytest.mark.parametrize("build", ["dsp", "plain", "cortex-m0plus"])
def test_cortexm_bit_exact(build, elfs, vectors, workdir):
    """DSP paths, the plain C on the same core, and ARMv6-M code (Cortex-M0+, e.g. RP2040: no SMLAL, no
    Thumb-2), which the emulated Cortex-M4 runs as well."""
    records, anchored = vectors
    ops = {r["op"] for r in records}
    assert {cortexm.OP_CONV, cortexm.OP_DWCONV, cortexm.OP_FC, cortexm.OP_ADD, cortexm.OP_MAXPOOL, cortexm.OP_AVGPOOL,
            cortexm.OP_MEAN_ACC, cortexm.OP_MEAN_OUT, cortexm.OP_SOFTMAX, cortexm.OP_REQUANT,
            cortexm.OP_LEAKY_RELU, cortexm.OP_CONV_ACC, cortexm.OP_ACC_OUT} <= ops, "every operator has vectors"
    assert {cortexm.OP_REF + cortexm.OP_CONV, cortexm.OP_REF + cortexm.OP_DWCONV, cortexm.OP_REF + cortexm.OP_FC} <= ops
    assert anchored > 100 and any(r["status"] for r in records)
    failures = cortexm.check(elfs[build], records, workdir)
    assert failures == [], "%d of %d vectors differ on the Cortex-M4 (%s):\n%s" % (
        len(failures), len(records), build, "\n".join(failures[:10]))


def test_cortexm_dsp_build_uses_the_dsp_extension(elfs):
    dis = {b: subprocess.run(["arm-none-eabi-objdump", "-d", elfs[b].replace("harness.elf", "libtskernels.a")],
                             capture_output=True, text=True).stdout for b in ("dsp", "plain")}
    assert "smlad" in dis["dsp"] and "sxtb16" in dis["dsp"]
    assert "smlad" not in dis["plain"]
    assert cortexm.text_size(elfs["dsp"]) < 20000


def test_cortexm_instruction_count(elfs, workdir):
    """A 1x1 convolution of 128 channels (K = 128): within the budget of docs/native.md with the DSP path,
    and the DSP path well ahead of the plain C."""
    rng = np.random.default_rng(0)
    p = quant.conv_params(in_w=4, in_c=128, out_w=4, out_c=64, kh=1, kw=1, pad_l=0, in_zp=-3, out_zp=5,
                          out_scale=1.0)
    pay = quant.pack_weights_payload(rng.integers(-127, 128, (64, 128), dtype=np.int8), rng.integers(-999, 999, 64),
                                     rng.integers(1 << 30, 1 << 31, 64), rng.integers(-10, 0, 64))
    rec = cortexm.Recorder(naive_too=False)
    rec.conv_s8(p, bytearray(4 * 4 * 64), 0, rng.integers(-128, 128, 4 * 4 * 128, dtype=np.int8).tobytes(), 0, 4, 0,
                4, pay, 64)
    (r,) = rec.records
    per_mac = {b: cortexm.count_instructions(elfs[b], r, workdir) / r["macs"] for b in ("dsp", "plain")}
    assert per_mac["dsp"] < 1.3 and per_mac["plain"] > 1.5 * per_mac["dsp"], per_mac


def test_cortexm_short_filters_instruction_count(elfs, workdir):
    """MobileNetV2's 1x1 convolutions of 16 and 32 input channels and its 3x3 stem (3 channels, K = 27) take
    the short-filter path of the DSP build (ts_conv.c: conv_short): under 1.5 instructions per MAC at the
    reduced sizes `tileswap bench` measures (docs/native.md)."""
    rng = np.random.default_rng(0)
    for shape in [("1x1", 16, 64, 4, 1, "RELU6"), ("1x1", 32, 16, 4, 1, "NONE"), ("3x3", 3, 32, 8, 2, "RELU6")]:
        r = cortexm._layer_record(*shape, rng)
        per_mac = cortexm.count_instructions(elfs["dsp"], r, workdir) / r["macs"]
        assert per_mac < 1.5, (shape, per_mac)
