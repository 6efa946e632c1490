"""MobileNetV2-1.0-224 end to end in CI: built by `tileswap zoo` (random weights, int8), compiled for
32 KiB and 64 KiB arenas, every intermediate tensor bit-exact with TFLite's reference kernels (fused
bands included) and the output equal to TFLite Micro's, whose own arena is measured alongside."""

import numpy as np
import pytest

from tileswap.device import opdefs as D
from tileswap.host.emulator import Emulator

from tileswap.host.inspect import plan_info
from tileswap.host.oracle import Micro
from tileswap.host.verify import verify
from tileswap.tiler.compile import compile_model


@pytest.fixture(scope="module")
def mnv2():
    from tileswap.tiler import zoo
    return zoo.build("mobilenet_v2")


@pytest.mark.parametrize("sram", [32 * 1024, 64 * 1024])
def test_mobilenet_v2_bit_exact(mnv2, key, sram):
    image, plan = compile_model(mnv2, sram=sram, key=key)
    assert plan.peak <= sram
    res = verify(mnv2, image, key, inputs=1, seed=sram)
    assert res["bit_exact"], res["first_mismatches"]
    assert res["tflm_output_bit_exact"] is True      # where TFLM agrees with the reference (host/verify.py)
    assert res["tensors_compared"] >= 66
    info = plan_info(image, key)
    if sram == 32 * 1024:        # the target: at least 40x below TFLite Micro's own arena
        arena = Micro(mnv2).arena_bytes()
        assert arena > 1_600_000 and arena / info["peak_sram"] >= 40, (arena, info["peak_sram"])
    # The plan's figures are what the card sees (split pairs, grouped chain members, MEAN ending a chain).
    emu = Emulator(image, key)
    try:
        emu.run(np.random.default_rng(3).integers(-128, 128, size=emu.rt.input_size()).astype(np.int8))
        c = emu.counters()
    finally:
        emu.close()
    assert (c["bytes_read"], c["bytes_written"], c["tiles"]) == (info["io_read_bytes"], info["io_write_bytes"], info["tiles"])
    assert any(plan.L.ops[ch[-1]].kind == D.OP_MEAN for ch in plan.chains)      # conv 1x1 -> MEAN fused
    # ... by channel groups, and spilled depthwise outputs written group by group in channel chunks:
    # the paths above ran them (a plan without them would leave them untested here).
    assert any(o.split == "in" and o.op.kind == D.OP_MEAN for o in plan.ops)
    assert any(o.wres for o in plan.ops)
    if sram == 32 * 1024:    # (at 64 KiB nothing is chunked: the spilled expansions run in row bands)
        assert plan.chunk and any(o.ksplit and o.over for o in plan.ops)
    assert info["io_amplification"] <= {32 * 1024: 2.0, 64 * 1024: 1.55}[sram], info["io_amplification"]   # issue 8
