"""Views of a costed plan: the per-layer chart (PNG) and the per-layer text table.

The chart shows SRAM, bytes moved and (with a board) modelled time per op. It is drawn with
matplotlib's Agg canvas directly (no pyplot, no global backend switch), so it works without a display
and leaves the caller's matplotlib state alone; `cost.plot` writes it to a file atomically.
"""

from .errors import HostError

_SHORT = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "dw", "FULLY_CONNECTED": "fc", "ADD": "add",
          "MAX_POOL_2D": "maxpool", "AVERAGE_POOL_2D": "avgpool", "MEAN": "mean", "PAD": "pad",
          "CONCATENATION": "concat", "SOFTMAX": "softmax", "QUANTIZE": "requant"}


def _title(info):
    t = "budget %s, peak SRAM %s, %s read + %s written per inference" % (
        _kib(info["sram_budget"]), _kib(info["peak_sram"]), _mb(info["io_read_bytes"]), _mb(info["io_write_bytes"]))
    if "latency_ms" not in info:
        return t
    return "%s\n%s: %.0f ms per inference (%.2fx in-core, %.0f ms without overlap), %.1f mJ, card life %s at 1/min" % (
        t, info["board_title"], info["latency_ms"], info["slowdown"] or 0, info["latency_serial_ms"],
        info["energy_mj"], years(info["lifetime_years_at_1_per_min"]))


def _kib(n):
    return "%.1f KiB" % (n / 1024)


def _mb(n):
    return "%.2f MB" % (n / 1e6)


def years(y):
    if y == float("inf"):
        return "unlimited"
    return "%.1f years" % y if y >= 1 else "%.0f days" % (y * 365.25)


def render(info, out):
    """Draw the chart of `info` (plan_info, optionally extended by cost.extend_plan) into the binary
    file object `out` as PNG."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise HostError("--plot needs matplotlib (pip install matplotlib)") from None
    ops = info["ops"]
    x = list(range(len(ops)))
    timed = "latency_ms" in info
    fig = Figure(figsize=(max(8.0, 3 + 0.16 * len(ops)), 9.5 if timed else 6.5), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(3 if timed else 2, 1, sharex=True)
    ax = axes[0]
    ax.bar(x, [o["peak_sram"] / 1024 for o in ops], color="#4c72b0", label="peak SRAM of the op")
    ax.axhline(info["sram_budget"] / 1024, color="#c44e52", ls="--", lw=1, label="budget")
    ax.set_ylabel("SRAM (KiB)")
    _legend(ax)
    ax = axes[1]
    rd = [o["io_read_bytes"] / 1e3 for o in ops]
    ax.bar(x, rd, color="#55a868", label="read")
    ax.bar(x, [o["io_write_bytes"] / 1e3 for o in ops], bottom=rd, color="#dd8452", label="written")
    ax.set_ylabel("card bytes (kB)")
    _legend(ax)
    if timed:
        ax = axes[2]
        comp = [o["compute_ms"] for o in ops]
        sec = [o["crypto_ms"] for o in ops]
        ax.bar(x, comp, color="#4c72b0", label="compute")
        ax.bar(x, sec, bottom=comp, color="#8172b3", label="crypto (AES, HMAC, CRC)")
        ax.bar(x, [o["io_ms"] for o in ops], bottom=[a + b for a, b in zip(comp, sec)], color="#dd8452",
               label="card IO (transfer + command latency)")
        ax.plot(x, [o["latency_ms"] for o in ops], "k_", ms=9, mew=2, label="modelled, IO overlapped")
        ax.plot(x, [o["latency_in_core_ms"] for o in ops], "_", color="#c44e52", ms=9, mew=2, label="in-core")
        ax.set_ylabel("time (ms)")
        _legend(ax)
    step = max(1, len(ops) // 60)
    axes[-1].set_xticks(x[::step])
    axes[-1].set_xticklabels(["%d %s" % (i, _SHORT.get(ops[i]["op"], ops[i]["op"])) for i in x[::step]],
                             rotation=90, fontsize=7)
    axes[-1].set_xlabel("op")
    fig.suptitle(_title(info), fontsize=9)
    fig.tight_layout()
    fig.savefig(out, format="png")


def _legend(ax):
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=7, frameon=False)


def summary(info):
    """Lines summarising a costed plan (after cost.extend_plan)."""
    w = info["wear"]
    lines = ["board %s: %s" % (info["board"], info["board_title"]),
             "per inference: %.0f ms with IO overlapped, %.0f ms without, %.0f ms in-core: slowdown %.2fx (%.2fx "
             "without overlap)" % (info["latency_ms"], info["latency_serial_ms"], info["latency_in_core_ms"],
                                   info["slowdown"] or 0, info["slowdown_serial"] or 0),
             "time: compute %.0f ms, crypto %.0f ms, card IO %.0f ms (%s card commands)" % (
                 info["compute_ms"], info["crypto_ms"], info["io_ms"], info["io_counts"]),
             "energy: %.1f mJ per inference (compute %.1f, IO %.1f; in-core %.1f); %.2f mW average at 1/min" % (
                 info["energy_mj"], info["energy_compute_mj"], info["energy_io_mj"], info["energy_in_core_mj"],
                 info["average_power_mw_at_1_per_min"]),
             "wear: %d B written per inference over %d erase blocks of %d B (mean %d B, max %d B each); card life "
             "%s at 1/min (%s)" % (w["bytes_written_per_inference"], w["erase_blocks_written"], w["erase_block_bytes"],
                                   w["bytes_per_erase_block_per_inference_mean"],
                                   w["bytes_per_erase_block_per_inference_max"], years(w["lifetime_years_at_1_per_min"]),
                                   "the card's wear levelling over its capacity" if w["wear_levelling"] == "card"
                                   else "raw flash, hottest block: the %s" % w["hottest_block"])]
    if "slowdown_floor" in info:
        lines.insert(2, "floor: %.2fx is the least any plan can reach here: decrypting and authenticating io_min once "
                        "takes %.0f ms of core time beside the %.0f ms in-core compute; this plan also recomputes %.2fx "
                        "the MACs" % (info["slowdown_floor"], info["crypto_floor_ms"], info["latency_in_core_ms"],
                                      info["recompute_factor"]))
    lines += ["warning: " + x for x in info["warnings"]]
    return lines


def table(info):
    """The per-layer text table of a costed plan, with its summary above."""
    head = "%3s %-18s %-14s %7s %7s %9s %9s %9s %9s %9s %9s" % (
        "#", "op", "output", "rd cmd", "wr cmd", "compute", "crypto", "card IO", "latency", "in-core", "energy")
    rows = ["%3d %-18s %-14s %7d %7d %9.1f %9.1f %9.1f %9.1f %9.1f %9.2f" % (
        o["index"], o["op"], "x".join(map(str, o["out_shape"])), o["read_cmds"], o["write_cmds"], o["compute_ms"],
        o["crypto_ms"], o["io_ms"], o["latency_ms"], o["latency_in_core_ms"], o["energy_mj"]) for o in info["ops"]]
    return "\n".join(summary(info) + ["(times in ms, energy in mJ)", head] + rows)
