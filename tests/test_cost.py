"""The board cost model: profiles with sources, card IO counted as the runtime issues it, the equations,
wear of the spill region on the emulated card, and the outputs (JSON fields, chart, report page)."""

import io
import json
import os

import numpy as np
import pytest

from tileswap.host import cost, cost_io
from tileswap.host.cli import main
from tileswap.host.emulator import Emulator, header
from tileswap.host.errors import HostError
from tileswap.host.inspect import plan_info
from tileswap.tiler.compile import compile_model

from zoo import model

KEY = bytes(32)
BOARDS = ("stm32f746", "esp32", "rp2040", "nrf52840")


@pytest.fixture(scope="module")
def digits_img(digits):
    return compile_model(digits, sram=2048, key=KEY)[0]


def _run(img, n, *, seed=0, hook=None):
    """n inferences on the emulated card; hook(card) before the first. Returns the emulator (closed)."""
    emu = Emulator(img, KEY)
    try:
        if hook:
            hook(emu.rt.card)
        x = np.random.default_rng(seed).integers(-128, 128, emu.rt.input_size(), dtype=np.int8)
        for _ in range(n):
            emu.run(x)
    finally:
        emu.close()
    return emu


# ---- profiles -------------------------------------------------------------------------------
def test_every_profile_figure_has_a_unit_source_and_estimate_flag():
    assert set(BOARDS) <= set(cost.boards())
    for name in cost.boards():
        b = cost.load_board(name)
        assert b["name"] == name and b["title"]
        for key, value, unit, est, source in cost.figures(b):
            assert value >= 0 and unit and len(source) > 15, (name, key)
            # a figure whose source calls itself an estimate or a derivation must be flagged as one
            if source.lower().startswith(("estimate", "derived", "upper bound", "assumed")):
                assert est, (name, key, source)
        assert b["si"]["mcu.clock"] >= 1e6 and b["si"]["storage.read_bandwidth"] > 1e4


def test_unknown_board_lists_the_known_ones():
    with pytest.raises(HostError) as e:
        cost.load_board("z80")
    for name in BOARDS:
        assert name in str(e.value)


def test_a_profile_without_sources_or_with_wrong_units_is_refused(tmp_path):
    good = json.load(open(os.path.join(cost.BOARDS_DIR, "stm32f746.json")))
    for field, patch, word in (("clock", {"unit": "MB/s"}, "unit"), ("clock", {"source": ""}, "source"),
                               ("sram", {"estimate": "no"}, "estimate")):
        b = json.loads(json.dumps(good))
        b["mcu"][field].update(patch)
        p = tmp_path / "bad.json"
        p.write_text(json.dumps(b))
        with pytest.raises(HostError) as e:
            cost.load_board(str(p))
        assert "mcu." + field in str(e.value) and word in str(e.value)
    p.write_text(json.dumps(good))
    assert cost.load_board(str(p))["si"]["mcu.clock"] == 216e6        # a profile file by path works


# ---- card IO as the runtime issues it -------------------------------------------------------------
@pytest.mark.parametrize("case", [("digits", 2048), ("digits", 65536), ("saturation", 1536), ("add_scales", 1536),
                                  ("dense_flatten", 4096)])
def test_image_io_equals_what_the_emulated_card_sees(case, digits):
    """Commands, blocks and MACs of one inference, replayed from the image vs counted on the card
    (fused chains included: saturation and add_scales fuse at 1536 B)."""
    name, sram = case
    img = compile_model(digits if name == "digits" else model(name), sram=sram, key=KEY)[0]
    emu = Emulator(img, KEY)
    try:
        card, seen = emu.rt.card, dict(r=0, w=0)
        read, write = card.read, card.write

        def count(kind, fn):
            def f(block, mv):
                seen[kind] += 1
                return fn(block, mv)
            return f
        x = np.zeros(emu.rt.input_size(), np.int8)
        emu.rt.set_input(x.tobytes())
        card.read, card.write = count("r", read), count("w", write)

        def snap():
            return dict(read_cmds=seen["r"], read_blocks=card.blocks_read, write_cmds=seen["w"],
                        write_blocks=card.blocks_written)
        s0, m0 = snap(), emu.rt.stats["macs"]
        emu.rt.infer()
        s1, macs = snap(), emu.rt.stats["macs"] - m0
        emu.rt.counters.save()                                  # what the save ending infer() costs
        s2 = snap()
        got = dict((k, s1[k] - s0[k] - (s2[k] - s1[k])) for k in s0)
    finally:
        emu.close()
    ops = cost_io.image_io(img)
    want = dict((k, sum(o[k] for o in ops)) for k in got)
    assert got == want, (got, want)
    assert macs == sum(o["macs_run"] for o in ops) >= sum(o["macs_once"] for o in ops)
    est = cost_io.estimate_io(plan_info(img)["ops"])
    assert [e["write_blocks"] for e in est] == [o["write_blocks"] for o in ops]   # writes are exact


def _tensor_records(img):
    import struct
    from tileswap.device import format as F
    h = header(img)
    return [struct.unpack_from(F.T_FMT, img, F.BLOCK + i * F.T_SIZE) for i in range(h["n_tensors"])]


def test_every_spill_slot_is_written_once_per_inference(digits):
    """The wear model's input: the spill region's blocks written per inference (input and counters aside)."""
    img = compile_model(digits, sram=1536, key=KEY)[0]
    h, n, writes = header(img), 5, []

    def hook(card):
        wb = card.bdev.writeblocks
        card.bdev.writeblocks = lambda b, buf, off=0: (writes.append((b, len(buf) // 512)), wb(b, buf, off))[1]
    _run(img, n, hook=hook)
    s0, s1 = h["spill_block"], h["spill_block"] + h["spill_blocks"]
    spill = sum(max(0, min(b + k, s1) - max(b, s0)) for b, k in writes)
    ctr = sum(k for b, k in writes if b >= s1)
    # The blocks in use: one slot per row of every tensor on the card (the ring is rounded up to whole
    # erase blocks, so some of it is idle in any one inference).
    used = sum(t[3] * t[8] for i, t in enumerate(_tensor_records(img)) if t[0] != 0 and t[0] != 4 and t[2] == i)
    assert spill == n * used and ctr == n * cost_io.COUNTER_SAVES


# ---- the equations ------------------------------------------------------------------------------
def _synthetic(**storage):
    b = cost.load_board("stm32f746")
    si = dict(b["si"])
    si.update({"mcu.clock": 1e6, "mcu.active_power": 1.0, "kernels.cycles_per_mac": 2, "kernels.cycles_per_output": 0,
               "crypto.aes_cycles_per_byte": 1, "crypto.sha256_cycles_per_byte": 1, "crypto.crc32_cycles_per_byte": 0,
               "storage.read_bandwidth": 512e3, "storage.write_bandwidth": 512e3, "storage.read_latency": 0.001,
               "storage.write_latency": 0.002, "storage.energy_per_byte_read": 0, "storage.energy_per_byte_written": 0,
               "storage.active_power": 0})
    si.update(storage)
    b["si"] = si
    return b


def test_equations_on_a_hand_computed_op():
    op = dict(index=0, op="CONV_2D", out_shape=[1, 1, 1], output_in="card", band_rows=1, bands=1, group=1, groups=1,
              tiles=4, peak_sram=100, io_read_bytes=250_000, io_write_bytes=0, macs=1_000_000,
              read_cmds=1000, read_blocks=1000, write_cmds=0, write_blocks=0, tile_bytes=0,
              macs_run=1_000_000, macs_once=500_000)
    info = dict(ops=[op], sram_budget=4096, card_bytes=1 << 20, image_bytes=1 << 19, spill_region_bytes=0,
                spill_bytes=0)
    cost.extend_plan(info, _synthetic())
    assert op["compute_ms"] == pytest.approx(2000)                 # 1e6 MACs x 2 cycles / 1 MHz
    assert op["crypto_ms"] == pytest.approx(500)                   # 250 kB x 2 cycles/B
    assert op["io_ms"] == pytest.approx(1000 + 1000)               # 512 kB at 512 kB/s + 1000 x 1 ms
    assert op["latency_serial_ms"] == pytest.approx(4500)
    assert op["latency_ms"] == pytest.approx(2500 + 2000 / 4)      # max + min / tiles
    assert op["latency_in_core_ms"] == pytest.approx(1000)         # MACs once, no IO, no crypto
    fixed = 2 * (1 + 1 + 2 + 1)                                    # counter saves: 2 x (r + w transfer + latency) ms
    assert info["latency_ms"] == pytest.approx(3000 + fixed)
    assert info["slowdown"] == pytest.approx((3000 + fixed) / 1000)
    assert info["energy_mj"] == pytest.approx(info["latency_ms"])   # 1 W, card energy zero
    assert info["energy_compute_mj"] == pytest.approx(2000)
    assert info["energy_io_mj"] == pytest.approx(info["energy_mj"] - 2000)


def test_slowdown_floor_is_crypto_of_io_min_beside_in_core_compute():
    op = dict(index=0, op="CONV_2D", out_shape=[1, 1, 1], output_in="card", band_rows=1, bands=1, group=1, groups=1,
              tiles=4, peak_sram=100, io_read_bytes=250_000, io_write_bytes=0, macs=1_000_000,
              read_cmds=1000, read_blocks=1000, write_cmds=0, write_blocks=0, tile_bytes=0,
              macs_run=1_000_000, macs_once=500_000)
    info = dict(ops=[op], sram_budget=4096, card_bytes=1 << 20, image_bytes=1 << 19, spill_region_bytes=0,
                spill_bytes=0, io_min_bytes=100_000, weight_bytes=90_000)
    cost.extend_plan(info, _synthetic())
    assert info["crypto_floor_ms"] == pytest.approx(200)            # 100 kB x 2 cycles/B at 1 MHz (CRC free here)
    assert info["slowdown_floor"] == pytest.approx((1000 + 200) / 1000)
    assert info["recompute_factor"] == pytest.approx(2000 / 1000)
    assert info["slowdown"] >= info["slowdown_floor"]


def test_wear_per_erase_block_and_lifetime():
    info = dict(image_bytes=3 * 4096, spill_region_bytes=8 * 4096 + 1024, card_bytes=(11 * 4096 + 1024) + 1024)
    nor = cost.load_board("nrf52840")            # 4 KiB sectors, 100,000 cycles, no wear levelling
    w = cost.wear(info, nor)
    assert w["bytes_written_per_inference"] == 8 * 4096 + 1024 + 2 * 512
    assert w["erase_blocks_written"] == 9 and w["bytes_per_erase_block_per_inference_max"] == 4096
    assert w["erase_cycles_per_inference_hottest_block"] == 3 and w["hottest_block"] == "counter record"
    assert w["lifetime_years_at_1_per_min"] == pytest.approx(100000 / 3 / 525960)
    sd = cost.load_board("stm32f746")            # the card levels wear over its capacity
    w = cost.wear(info, sd)
    v = sd["si"]
    assert w["lifetime_years_at_1_per_min"] == pytest.approx(
        v["storage.endurance"] * v["storage.capacity"] / (v["storage.write_amplification"] * (8 * 4096 + 2048)) / 525960)


# ---- a real plan end to end -----------------------------------------------------------------
def test_extend_plan_on_every_board_is_consistent(digits_img):
    for name in BOARDS:
        info = cost.extend_plan(plan_info(digits_img), name, image=digits_img)
        json.dumps(info)
        assert info["io_counts"] == "exact" and info["board"] == name
        assert 0 < info["latency_in_core_ms"] <= info["latency_ms"] <= info["latency_serial_ms"]
        assert info["slowdown"] == pytest.approx(info["latency_ms"] / info["latency_in_core_ms"])
        assert 1 < info["slowdown_floor"] <= info["slowdown"] and info["recompute_factor"] >= 1
        assert info["energy_mj"] == pytest.approx(info["energy_compute_mj"] + info["energy_io_mj"])
        assert info["lifetime_years_at_1_per_min"] > 0
        assert cost.lifetime_years(info, 2) == pytest.approx(info["lifetime_years_at_1_per_min"] / 2)
        for o in info["ops"]:
            cpu = o["compute_ms"] + o["crypto_ms"]
            assert max(cpu, o["io_ms"]) <= o["latency_ms"] + 1e-9 <= o["latency_serial_ms"] + 2e-9
        assert sum(o["latency_ms"] for o in info["ops"]) < info["latency_ms"]     # + the counter saves
    # without the image the card commands are estimated, and it says so
    info = cost.extend_plan(plan_info(digits_img), "stm32f746")
    assert info["io_counts"] == "estimated" and any("estimated" in w for w in info["warnings"])


def test_warnings_for_a_plan_the_board_cannot_hold(digits):
    img = compile_model(digits, sram=300 * 1024, key=KEY)[0]
    info = cost.extend_plan(plan_info(img), "nrf52840", image=img)      # 256 KiB of SRAM
    assert any("SRAM" in w for w in info["warnings"])


# ---- spill rotation: the wear property ------------------------------------------------------
class SpreadTooWide(AssertionError):
    """The wear property fails."""


@pytest.mark.parametrize("sram,erase_block", [(2048, 4096), (1536, 8192)])
def test_spill_wear_spread(digits, sram, erase_block):
    """No erase block of the spill ring gets more than one write per inference above the mean, over many
    inferences (the ring turns by an erase block per inference): Card.erase_writes, the runtime's count.
    The counter records live in an erase block of their own, outside the ring."""
    img = compile_model(digits, sram=sram, key=KEY, erase_block=erase_block)[0]
    h, n, before = header(img), 40, {}
    emu = _run(img, n, hook=lambda card: before.update(card.erase_writes))
    per = erase_block // 512
    assert h["spill_block"] % per == 0 and h["counter_block"] % per == 0
    assert h["counter_block"] >= h["spill_block"] + h["spill_blocks"]
    ebs = range(h["spill_block"] // per, (h["spill_block"] + h["spill_blocks"]) // per)
    w = [emu.rt.card.erase_writes.get(e, 0) - before.get(e, 0) for e in ebs]
    assert len(w) >= 3 and sum(w) >= n * len(w), w          # the scratch area spans several erase blocks
    if max(w) - sum(w) / len(w) > n:
        raise SpreadTooWide("writes per erase block over %d inferences: %s" % (n, w))


# ---- outputs -----------------------------------------------------------------------------------
def test_plan_board_json_and_plot_from_the_command_line(digits_img, tmp_path, capsys):
    p = tmp_path / "d.tsi"
    p.write_bytes(digits_img)
    assert main(["plan", str(p), "--board", "stm32f746", "--json", "--plot", str(tmp_path / "c.png")]) == 0
    info = json.loads(capsys.readouterr().out)
    for k in ("latency_ms", "latency_in_core_ms", "slowdown", "energy_mj", "energy_compute_mj", "energy_io_mj",
              "lifetime_years_at_1_per_min"):
        assert isinstance(info[k], float) and info[k] > 0, k
    _assert_chart(tmp_path / "c.png", timed=True)
    assert main(["plan", str(p), "--board", "no-such-board"]) == 1
    assert "known boards: esp32, nrf52840, rp2040, stm32f746" in capsys.readouterr().err


def _assert_chart(path, timed):
    """A real PNG whose panels hold bars in the chart's colours (SRAM blue, bytes green/orange)."""
    from matplotlib.image import imread
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    px = (imread(io.BytesIO(data))[:, :, :3] * 255).round().astype(int)
    h = px.shape[0]

    def share(rgb, rows):
        return np.mean(np.all(np.abs(px[rows] - rgb) <= 2, axis=-1))
    blue, green, orange = (0x4c, 0x72, 0xb0), (0x55, 0xa8, 0x68), (0xdd, 0x84, 0x52)
    assert share(blue, slice(0, h // 3)) > 0.01                  # SRAM bars, top panel
    assert share(green, slice(h // 3, 2 * h // 3)) > 0.001         # bytes-read bars, middle panel
    if timed:                                                    # compute and card-IO bars, bottom panel
        assert share(blue, slice(2 * h // 3, h)) > 1e-4 and share(orange, slice(2 * h // 3, h)) > 1e-3


def test_plot_without_a_board_and_atomic_failure(digits_img, tmp_path):
    info = plan_info(digits_img)
    cost.plot(info, str(tmp_path / "p.png"))
    _assert_chart(tmp_path / "p.png", timed=False)
    with pytest.raises(HostError):
        cost.plot(info, str(tmp_path / "missing" / "p.png"))
    assert os.listdir(tmp_path) == ["p.png"]


def test_report_markdown_and_html(digits_img, tmp_path, capsys):
    p = tmp_path / "d.tsi"
    p.write_bytes(digits_img)
    assert main(["report", str(p), "-o", str(tmp_path / "r.md"), "--board", "stm32f746", "--board", "rp2040",
                 "--rate", "0.5"]) == 0
    md = (tmp_path / "r.md").read_text()
    assert "## Boards compared" in md and "| stm32f746 |" in md and "DS10916" in md
    for b in ("stm32f746", "rp2040"):
        assert "(r.%s.png)" % b in md
        _assert_chart(tmp_path / ("r.%s.png" % b), timed=True)
    assert main(["report", str(p), "-o", str(tmp_path / "r.html"), "--board", "nrf52840"]) == 0
    page = (tmp_path / "r.html").read_text()
    assert page.count("data:image/png;base64,") == 1 and "<table>" in page and "MX25R6435F" in page
    assert main(["report", str(p), "-o", str(tmp_path / "x.md"), "--rate", "0"]) == 1
    assert not (tmp_path / "x.md").exists()
