"""What a plan costs on a real board: latency, energy and card wear, from a board profile.

    info = plan_info(image)                               # host/inspect.py
    info = extend_plan(info, "stm32f746", image=image)    # adds latency_ms, energy_mj, lifetime_years_at_1_per_min
    plot(info, "plan.png")                                # per-layer SRAM, bytes moved, modelled time

A profile is data, `host/boards/NAME.json` (or any path to such a file): every figure is an object
{"value", "unit", "source", "estimate"}, so each number says where it comes from and whether it is an
estimate. The equations and their assumptions are in docs/cost.md. Per op, in short:

    compute = (MACs run x cycles/MAC + outputs x cycles/output) / clock
    crypto  = ((bytes read + written) x (AES + SHA-256 cycles/byte) + tile bytes x CRC cycles/byte) / clock
    io      = blocks x 512 / bandwidth + commands x latency             (reads and writes apart)
    serial  = compute + crypto + io
    overlap = max(compute + crypto, io) + min(compute + crypto, io) / tiles      (double buffering)
    in-core = MACs once (no recomputed halo rows) at the same cycles, no IO, no crypto
    floor   = in-core + crypto of io_min (every weight, input and output byte decrypted and checked once)

The floor is the best any plan of this image format could do on the board: crypto runs on the core, so
even with no recomputed rows, no extra traffic and the card fully hidden, it adds to compute.

The card commands and blocks come from replaying the image's schedule (cost_io.image_io) when the
image is given, else from an estimate built on plan_info's per-op bytes (cost_io.estimate_io).
"""

import glob
import io
import json
import os

from . import cost_io
from .errors import HostError

BOARDS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "boards")
_MIN_PER_YEAR = 365.25 * 24 * 60
_WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")

# unit -> (dimension, factor to the SI unit the model computes in)
_UNITS = {
    "B": ("B", 1), "KiB": ("B", 1024), "MiB": ("B", 1 << 20), "GiB": ("B", 1 << 30), "MB": ("B", 1e6), "GB": ("B", 1e9),
    "Hz": ("Hz", 1), "MHz": ("Hz", 1e6), "W": ("W", 1), "mW": ("W", 1e-3), "uW": ("W", 1e-6),
    "s": ("s", 1), "ms": ("s", 1e-3), "us": ("s", 1e-6), "B/s": ("B/s", 1), "kB/s": ("B/s", 1e3), "MB/s": ("B/s", 1e6),
    "J/B": ("J/B", 1), "nJ/B": ("J/B", 1e-9), "cycles": ("cycles", 1), "cycles/B": ("cycles/B", 1), "x": ("x", 1),
}
# every numeric field a profile must have, with its dimension
FIELDS = {
    "mcu.sram": "B", "mcu.clock": "Hz", "mcu.active_power": "W", "mcu.idle_power": "W",
    "kernels.cycles_per_mac": "cycles", "kernels.cycles_per_mac_depthwise": "cycles",
    "kernels.cycles_per_output": "cycles", "kernels.cycles_per_element": "cycles",
    "crypto.aes_cycles_per_byte": "cycles/B", "crypto.sha256_cycles_per_byte": "cycles/B",
    "crypto.crc32_cycles_per_byte": "cycles/B",
    "storage.read_bandwidth": "B/s", "storage.write_bandwidth": "B/s", "storage.read_latency": "s",
    "storage.write_latency": "s", "storage.erase_block": "B", "storage.endurance": "cycles", "storage.capacity": "B",
    "storage.write_amplification": "x", "storage.active_power": "W", "storage.idle_power": "W",
    "storage.energy_per_byte_read": "J/B", "storage.energy_per_byte_written": "J/B",
}


def boards():
    """Names of the bundled profiles."""
    return sorted(os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(BOARDS_DIR, "*.json")))


def load_board(name):
    """A bundled profile by name, or a profile file by path. Adds "si": field -> value in SI units."""
    path = name if name.endswith(".json") else os.path.join(BOARDS_DIR, name + ".json")
    if not os.path.isfile(path):
        raise HostError("unknown board %r; known boards: %s (or give a profile file NAME.json, see docs/cost.md)"
                        % (name, ", ".join(boards())))
    try:
        with open(path) as f:
            b = json.load(f)
    except (OSError, ValueError) as e:
        raise HostError("cannot read board profile %s: %s" % (path, e)) from None
    si = {}
    for key, dim in FIELDS.items():
        sec, fld = key.split(".")
        x = b.get(sec, {}).get(fld) if isinstance(b.get(sec), dict) else None
        if not isinstance(x, dict) or not isinstance(x.get("value"), (int, float)) or x["value"] < 0:
            raise HostError("board profile %s: %s must be an object with a numeric value" % (path, key))
        if _UNITS.get(x.get("unit"), (None,))[0] != dim:
            raise HostError("board profile %s: %s has unit %r; use one of %s" % (
                path, key, x.get("unit"), ", ".join(u for u, (d, _) in _UNITS.items() if d == dim)))
        if not x.get("source") or not isinstance(x.get("estimate"), bool):
            raise HostError("board profile %s: %s needs a source and estimate: true/false" % (path, key))
        si[key] = x["value"] * _UNITS[x["unit"]][1]
    if b.get("storage", {}).get("wear_levelling") not in ("card", "none"):
        raise HostError("board profile %s: storage.wear_levelling must be \"card\" or \"none\"" % path)
    b.setdefault("name", os.path.splitext(os.path.basename(path))[0])
    b["si"] = si
    return b


def figures(board):
    """[(field, value, unit, estimate, source)] of a profile, for reports."""
    out = []
    for key in FIELDS:
        sec, fld = key.split(".")
        x = board[sec][fld]
        out.append((key, x["value"], x["unit"], x["estimate"], x["source"]))
    return out


def _io_time(v, c):
    return (c["read_blocks"] * 512 / v["storage.read_bandwidth"] + c["read_cmds"] * v["storage.read_latency"]
            + c["write_blocks"] * 512 / v["storage.write_bandwidth"] + c["write_cmds"] * v["storage.write_latency"])


def _io_energy(v, c):
    busy = c["read_cmds"] * v["storage.read_latency"] + c["write_cmds"] * v["storage.write_latency"]
    return (c["read_blocks"] * 512 * v["storage.energy_per_byte_read"]
            + c["write_blocks"] * 512 * v["storage.energy_per_byte_written"] + busy * v["storage.active_power"])


def extend_plan(info, board, *, image=None):
    """Add the modelled costs of `info` (plan_info's dict) on `board` (a name, path or loaded profile):
    top-level totals, `wear`, `warnings`, and per op times, energies and card commands. Returns info."""
    b = board if isinstance(board, dict) else load_board(board)
    v = b["si"]
    if image is not None:
        counts, how = cost_io.image_io(image), "exact"
    elif info["ops"] and all(k in info["ops"][0] for k in cost_io.FIELDS):
        counts, how = [dict((k, o[k]) for k in cost_io.FIELDS) for o in info["ops"]], "exact"
    else:
        counts, how = cost_io.estimate_io(info["ops"]), "estimated"
    f, p_act = v["mcu.clock"], v["mcu.active_power"]
    sec_per_byte = (v["crypto.aes_cycles_per_byte"] + v["crypto.sha256_cycles_per_byte"]) / f
    tot = dict.fromkeys(("compute", "crypto", "io", "overlap", "serial", "in_core", "e_card", "e_compute"), 0.0)
    for o, c in zip(info["ops"], counts):
        h, w, ch = o["out_shape"]
        cpm = v["kernels.cycles_per_mac_depthwise" if o["op"] == "DEPTHWISE_CONV_2D" else "kernels.cycles_per_mac"]
        per_out = h * w * ch * v["kernels.cycles_per_output" if o["op"] in _WEIGHTED else "kernels.cycles_per_element"]
        t_comp = (c["macs_run"] * cpm + per_out) / f
        t_in = (c["macs_once"] * cpm + per_out) / f
        t_sec = ((o["io_read_bytes"] + o["io_write_bytes"]) * sec_per_byte
                 + c["tile_bytes"] * v["crypto.crc32_cycles_per_byte"] / f)
        t_io = _io_time(v, c)
        cpu = t_comp + t_sec
        t_ov = max(cpu, t_io) + min(cpu, t_io) / max(1, o["tiles"])
        e_card = _io_energy(v, c)
        o.update(dict((k, c[k]) for k in ("read_cmds", "read_blocks", "write_cmds", "write_blocks")))
        o.update(latency_ms=1e3 * t_ov, latency_serial_ms=1e3 * (cpu + t_io), latency_in_core_ms=1e3 * t_in,
                 compute_ms=1e3 * t_comp, crypto_ms=1e3 * t_sec, io_ms=1e3 * t_io,
                 energy_mj=1e3 * (p_act * t_ov + e_card), energy_compute_mj=1e3 * p_act * t_comp)
        o["energy_io_mj"] = o["energy_mj"] - o["energy_compute_mj"]
        for k, x in (("compute", t_comp), ("crypto", t_sec), ("io", t_io), ("overlap", t_ov),
                     ("serial", cpu + t_io), ("in_core", t_in), ("e_card", e_card), ("e_compute", p_act * t_comp)):
            tot[k] += x
    saves = dict(read_cmds=cost_io.COUNTER_SAVES, read_blocks=cost_io.COUNTER_SAVES,
                 write_cmds=cost_io.COUNTER_SAVES, write_blocks=cost_io.COUNTER_SAVES)
    fixed, e_fixed = _io_time(v, saves), _io_energy(v, saves)   # counter record: written, read back
    latency = tot["overlap"] + fixed
    energy = p_act * latency + tot["e_card"] + e_fixed
    idle = v["mcu.idle_power"] + v["storage.idle_power"]
    info.update(
        board=b["name"], board_title=b.get("title", b["name"]), io_counts=how,
        latency_ms=1e3 * latency, latency_serial_ms=1e3 * (tot["serial"] + fixed), latency_in_core_ms=1e3 * tot["in_core"],
        slowdown=latency / tot["in_core"] if tot["in_core"] else None,
        slowdown_serial=(tot["serial"] + fixed) / tot["in_core"] if tot["in_core"] else None,
        compute_ms=1e3 * tot["compute"], crypto_ms=1e3 * tot["crypto"], io_ms=1e3 * (tot["io"] + fixed),
        energy_mj=1e3 * energy, energy_compute_mj=1e3 * tot["e_compute"], energy_io_mj=1e3 * (energy - tot["e_compute"]),
        energy_in_core_mj=1e3 * p_act * tot["in_core"],
        idle_power_mw=1e3 * idle,
        profile_estimates=[k for k, _, _, est, _ in figures(b) if est])
    if "io_min_bytes" in info and tot["in_core"]:
        floor = (info["io_min_bytes"] * sec_per_byte
                 + info.get("weight_bytes", 0) * v["crypto.crc32_cycles_per_byte"] / f)
        info.update(crypto_floor_ms=1e3 * floor, slowdown_floor=(tot["in_core"] + floor) / tot["in_core"],
                    recompute_factor=tot["compute"] / tot["in_core"])
    info["wear"] = wear(info, b)
    info["lifetime_years_at_1_per_min"] = info["wear"]["lifetime_years_at_1_per_min"]
    info["average_power_mw_at_1_per_min"] = average_power_mw(info, 1.0)
    info["warnings"] = _warnings(info, v)
    return info


def average_power_mw(info, rate):
    """Average power at `rate` inferences per minute: each inference's energy, idle power in between
    (back to back when an inference takes longer than the period)."""
    period, lat = 60.0 / rate, info["latency_ms"] / 1e3
    return (info["energy_mj"] + info["idle_power_mw"] * max(0.0, period - lat)) / max(period, lat)


def lifetime_years(info, rate):
    """Projected card lifetime at `rate` inferences per minute (wear is linear in the rate)."""
    return info["lifetime_years_at_1_per_min"] / rate


def wear(info, board):
    """Bytes written per inference per erase block, and the card's projected lifetime (docs/cost.md)."""
    v = board["si"]
    eb, endurance = int(v["storage.erase_block"]), v["storage.endurance"]
    region = info["spill_region_bytes"] if "spill_region_bytes" in info else info["spill_bytes"]
    s0, s1 = info["image_bytes"], info["image_bytes"] + region     # the spill region: each slot written once
    ctr = s1                                                       # per inference; the counter records follow
    written = region + cost_io.COUNTER_SAVES * 512
    per_eb = {}
    for e in range(s0 // eb, (s1 + eb - 1) // eb):
        per_eb[e] = min(s1, (e + 1) * eb) - max(s0, e * eb)
    ce = ctr // eb
    per_eb[ce] = per_eb.get(ce, 0) + cost_io.COUNTER_SAVES * 512
    # raw flash, no rotation: each spill erase block is rewritten once per inference (sequential rows
    # merged into one erase), the counter's block once per save (they are apart in time)
    hot = cost_io.COUNTER_SAVES + (1 if s1 > s0 and (s1 - 1) // eb == ce else 0)
    cycles = max(1 if s1 > s0 else 0, hot)
    per_min = endurance / cycles / _MIN_PER_YEAR if cycles else float("inf")
    levelled = endurance * v["storage.capacity"] / (v["storage.write_amplification"] * written) / _MIN_PER_YEAR
    free = max(0.0, v["storage.capacity"] - info["card_bytes"])
    rotated = endurance * (free + region) / (v["storage.write_amplification"] * written) / _MIN_PER_YEAR
    mode = board["storage"]["wear_levelling"]
    return dict(
        bytes_written_per_inference=written, erase_block_bytes=eb, erase_blocks_written=len(per_eb),
        bytes_per_erase_block_per_inference_mean=written / len(per_eb),
        bytes_per_erase_block_per_inference_max=max(per_eb.values()),
        erase_cycles_per_inference_hottest_block=cycles,
        hottest_block="counter record" if hot > 1 else "spill region",
        lifetime_years_unlevelled=per_min, lifetime_years_card_levelled=levelled,
        lifetime_years_rotated_over_free_space=rotated, wear_levelling=mode,
        lifetime_years_at_1_per_min=levelled if mode == "card" else per_min)


def _warnings(info, v):
    out = []
    if info["sram_budget"] > v["mcu.sram"]:
        out.append("the SRAM budget (%d B) exceeds the board's SRAM (%d B)" % (info["sram_budget"], v["mcu.sram"]))
    if info["card_bytes"] > v["storage.capacity"]:
        out.append("the card layout (%.1f MB: image, spill and counter regions) does not fit the storage (%.1f MB)"
                   % (info["card_bytes"] / 1e6, v["storage.capacity"] / 1e6))
    if info["latency_ms"] > 60e3:
        out.append("one inference takes %.0f s: one per minute cannot be sustained" % (info["latency_ms"] / 1e3))
    if info["io_counts"] == "estimated":
        out.append("card commands estimated from the plan's byte counts (input row sizes guessed); give the image "
                   "for exact counts")
    return out


def plot(info, path):
    """Write the per-layer chart (SRAM, bytes moved, modelled time) to `path` as a PNG, atomically."""
    from .cost_view import render
    from .cli import write_atomic
    buf = io.BytesIO()
    render(info, buf)
    write_atomic(path, buf.getvalue())


def table(info):
    """The per-layer text table (and summary lines) of a plan extended by extend_plan."""
    from .cost_view import table
    return table(info)
