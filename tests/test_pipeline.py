"""End to end: compile -> encrypted image -> emulated device, bit-exact with TFLite on every tensor.

Every zoo model and the digits model are verified at the smallest budget they compile at (everything
spills) and at a generous one (everything resident); the arena's measured peak never exceeds the budget,
and the device's counters equal what the plan promised.
"""

import numpy as np
import pytest

from tileswap.host.emulator import Emulator
from tileswap.host.inspect import plan_info
from tileswap.host.verify import verify
from tileswap.tiler import TilerError
from tileswap.tiler.compile import compile_model

from zoo import GROUP_WISE, ZOO, model

BIG = 1 << 20


def min_budget(tfl, key):
    return compile_model(tfl, sram=BIG, key=key)[1].min_sram


def check(tfl, key, sram, inputs=2):
    image, plan = compile_model(tfl, sram=sram, key=key)
    assert plan.peak <= sram, (plan.peak, sram)
    res = verify(tfl, image, key, inputs=inputs, seed=sram)
    assert res["bit_exact"], res["first_mismatches"]
    assert res["tflm_output_bit_exact"], "TFLite Micro's output differs"
    assert res["tensors_compared"] >= inputs * (len(plan.ops) + 1)
    return image


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_bit_exact_tight_and_roomy(name, key):
    tfl = model(name)
    lo = min_budget(tfl, key)
    check(tfl, key, lo)
    check(tfl, key, 64 * 1024)


@pytest.mark.parametrize("sram", [None, 1536, 2048, 4096, 65536])
def test_digits_peak_and_counters(sram, digits, key):
    sram = sram or min_budget(digits, key)
    image = check(digits, key, sram, inputs=3)
    _counters_equal_plan(image, key, sram, runs=3, seed=1)


def test_budget_below_minimum_names_op_and_minimum(digits, key):
    lo = min_budget(digits, key)
    with pytest.raises(TilerError) as e:
        compile_model(digits, sram=lo - 1, key=key)
    msg = str(e.value)
    assert "op #" in msg and "--sram %d" % lo in msg, msg


def test_verify_catches_a_wrong_kernel(digits, key, monkeypatch):
    """The oracle comparison can fail: a kernel off by one in one output is reported, with its place."""
    from tileswap.host import native
    image, _ = compile_model(digits, sram=4096, key=key)
    real = native.Kernels.avgpool_s8

    def off_by_one(self, p, out, out_off, *a):
        real(self, p, out, out_off, *a)
        out[out_off] = (out[out_off] + 1) & 0xFF

    monkeypatch.setattr(native.Kernels, "avgpool_s8", off_by_one)
    res = verify(digits, image, key, inputs=1, tflm=False)
    assert not res["bit_exact"] and res["mismatches"] >= 1
    assert res["first_mismatches"][0]["count"] >= 1


def test_fused_chains_and_split_pairs_are_exercised(key):
    """The inverted-residual case at a tight budget really runs fused chains with channel-split pairs
    (so the zoo test above verifies them), and no tensor of the chains is spilled."""
    from tileswap.device import format as F
    tfl = model("inverted_residual")
    for sram in (2304, 8192):
        image, plan = compile_model(tfl, sram=sram, key=key)
        assert plan.chains, sram
        assert any(o.split == "out" for o in plan.ops), [o.split for o in plan.ops]
        assert plan.peak <= sram
        res = verify(tfl, image, key, inputs=2, seed=sram)
        assert res["bit_exact"], res["first_mismatches"]
        for c in plan.chains:
            for i in c[:-1]:
                assert plan.kind[plan.L.ops[i].out] == F.T_CHAIN
        _counters_equal_plan(image, key, sram)


@pytest.mark.parametrize("name, sram", GROUP_WISE)
def test_group_wise_execution_is_exercised(name, sram, key):
    """At these budgets the plans use the channel-group modes: a depthwise spilling its output in
    channel chunks and a 1x1 convolution summing them chunk by chunk (K-split), which may write its own
    output in chunks; a convolution split into a MEAN; split ops keeping all their group tiles (wres).
    Bit-exact, counters as planned."""
    tfl = model(name)
    image, plan = compile_model(tfl, sram=sram, key=key)
    want = {"expand_dw_project": lambda: plan.chunk and any(o.ksplit for o in plan.ops),
            "conv_mean_by_groups": lambda: any(o.split == "in" and o.op.kind == 7 for o in plan.ops),
            "inverted_residual": lambda: plan.chunk and any(o.wres for o in plan.ops),
            # a K-split op writing its output in chunks whose units take two card blocks
            "ksplit_chunked_out": lambda: any(o.ksplit and o.chunk and o.over and o.n_bands > 1 for o in plan.ops)
            and any(plan.L.tensors[b].w * c + 32 > 512 for b, c in plan.chunk.items()),
            # a K-split op with one output group, requantized over its sums, written in whole rows
            "ksplit_one_group": lambda: any(o.ksplit and o.over and o.n_groups == 1 and not o.chunk and o.n_bands > 1
                                            for o in plan.ops)}[name]
    assert want(), [(o.split, o.ksplit, o.wres) for o in plan.ops]
    # `tileswap plan` reads each op's mode from the image's flags and buffers
    modes = [o["mode"] for o in plan_info(image, key)["ops"]]
    assert modes == [_mode(o) for o in plan.ops], modes
    check(tfl, key, sram)
    _counters_equal_plan(image, key, sram)


def _mode(o):
    """What `tileswap plan` should say of OpPlan o (host/inspect.py)."""
    m = {"out": ["groups into the next op"], "in": ["by the previous op's groups"]}.get(o.split, [])
    m += ["keeps its group tiles"] if o.wres else []
    m += ["K-split over input chunks"] + (["output over its sums"] if o.over else []) if o.ksplit else []
    return ", ".join(m)


def test_smallest_budget_goes_below_ops_alone_through_fusion(key):
    """min_sram as the issue defines it (the smallest budget that compiles) is found by bisection; with
    fused chains it is below what the largest op needs on its own, and the model compiles and verifies
    there. The error for a too-small budget names the same figure."""
    from tileswap.tiler.compile import load_tflite, lower
    from tileswap.tiler.plan import smallest_budget
    tfl = model("inverted_residual")
    small = smallest_budget(lower(load_tflite(tfl)))
    alone = compile_model(tfl, sram=BIG, key=key)[1].min_sram
    assert small < alone, (small, alone)
    check(tfl, key, small, inputs=1)
    with pytest.raises(TilerError) as e:
        compile_model(tfl, sram=1100, key=key)
    assert "--sram %d" % small in str(e.value), str(e.value)


def test_grouped_depthwise_chain_member_keeps_whole_input_channels(key):
    """A depthwise with depth multiplier 6 inside a fused chain, its weights cut into channel groups
    (tight budgets): every group is a multiple of the multiplier, and every image runs bit-exact (groups
    cutting an input channel's outputs apart made the kernel refuse them)."""
    from tileswap.device import opdefs as D
    tfl = model("dw_mult_in_chain")
    grouped = 0
    for sram in range(4000, 5200, 64):
        image, plan = compile_model(tfl, sram=sram, key=key)
        for o in plan.ops:
            if o.op.kind == D.OP_DWCONV and o.in_chain and o.n_groups > 1:
                grouped += 1
                assert o.group % 6 == 0, (sram, o.group)
        res = verify(tfl, image, key, inputs=1, seed=sram, tflm=False)
        assert res["bit_exact"], (sram, res["first_mismatches"])
    assert grouped, "no budget exercised a grouped depthwise chain member"


def _counters_equal_plan(image, key, sram, runs=1, seed=2):
    """The device's counters equal the plan's figures on every one of `runs` inferences (split pairs
    re-fetch inputs per group, chains load every member's first tile when they start: the plan must
    count what the device does), and the arena's peak stays within the budget."""
    info = plan_info(image, key)
    emu = Emulator(image, key)
    try:
        rng = np.random.default_rng(seed)
        for _ in range(runs):
            emu.run(rng.integers(-128, 128, size=emu.rt.input_size()).astype(np.int8))
            c = emu.counters()
            assert emu.rt.arena.peak <= sram
            assert c["bytes_read"] == info["io_read_bytes"], (c, info["io_read_bytes"])
            assert c["bytes_written"] == info["io_write_bytes"], (c, info["io_write_bytes"])
            assert c["macs"] == info["macs"] and c["tiles"] == info["tiles"]
    finally:
        emu.close()


def test_io_accounting(digits, key):
    """io_min is the physical floor (each weighted op's payload as one tile with its record, the input's
    rows and the output's with their tags): with everything resident a plan moves exactly that."""
    image, plan = compile_model(digits, sram=65536, key=key)
    info = plan_info(image, key)
    assert info["spill_bytes"] == 0
    assert info["io_read_bytes"] + info["io_write_bytes"] == info["io_min_bytes"]
    assert info["io_amplification"] == 1.0
    image, plan = compile_model(digits, sram=min_budget(digits, key), key=key)
    info = plan_info(image, key)
    assert info["spill_bytes"] > 0 and info["io_amplification"] > 1.2
