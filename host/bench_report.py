"""docs/benchmarks.md from the figures `tileswap bench` measured (generated; never edit by hand)."""


def _kib(n):
    return "%.1f KiB" % (n / 1024.0)


def _zoo(rows):
    out = ["## Models out of core (zoo)", "",
           "Every row is one compile and one `verify` in this run: every intermediate tensor against TFLite's "
           "reference kernels, the output against TFLite Micro. `io_amplification` = bytes moved / "
           "`io_min` (weights read once, input read once, output written once). `min_sram` is the smallest "
           "budget the model compiles at (bisection to 256 bytes, once per model, as the error for a too-small "
           "budget reports it, or a lower budget of the table if one compiled); `ops alone from` is the budget from which every op fits on its own (the image "
           "header's figure): below it, ops run only inside fused chains.", "",
           "| model | budget | compiled | peak SRAM | min_sram | ops alone from | TFLM arena | TFLM arena / our peak | tiles | io_amplification | spill bytes | compile | bit-exact (all tensors) | TFLM output equal |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        small = r.get("smallest_budget")
        small = "%d" % small if small else "-"
        if not r.get("compiled"):
            out.append("| %s | %s | no: %s | | %s | | %s | | | | | | | |" % (
                r["model"], _kib(r["budget"]), r["error"].split(";")[0], small, _kib(r["tflm_arena"])))
            continue
        out.append("| %s | %s | yes | %d | %s | %d | %d | %.1fx | %d | %.3f | %d | %.1f s | %s | %s |" % (
            r["model"], _kib(r["budget"]), r["peak_sram"], small, r["min_sram"], r["tflm_arena"],
            r["tflm_arena"] / float(r["peak_sram"]), r["tiles"], r["io_amplification"], r["spill_bytes"],
            r["compile_s"], "yes (%d)" % r["tensors_compared"] if r["bit_exact"] else "**NO**",
            "no: TFLM differs from TFLite's reference kernels, which tileswap equals"
            if r.get("tflm_differs_from_reference") else
            {True: "yes", False: "**NO**", None: "-"}[r["tflm_output_bit_exact"]]))
    out += ["", "*no: TFLM differs ...* means the two oracles disagree on that input: TFLite Micro's output differs "
            "from TFLite's reference kernels, and tileswap equals the reference on every tensor (host/verify.py holds "
            "tileswap to the reference there)."]
    return out


def _latency(rows):
    out = ["## Host latency, MobileNetV2-1.0-224 int8 (one inference, median)", "",
           "| runtime | seconds | vs tileswap |", "|---|---|---|"]
    base = rows[0]["seconds"]
    for r in rows:
        out.append("| %s | %.4f | %.2fx |" % (r["runtime"], r["seconds"], r["seconds"] / base))
    if any(r.get("floor") for r in rows):
        out += ["", "The no-op-kernel row and the *floor* rows bound what faster kernels could give: the first "
                "times the runtime without its kernels (the device's tile loop, in Python here as on a board, plus "
                "card IO and checks); the floors time the checks and decryption alone (one call each, no per-tile "
                "work), which no out-of-core run with CRC, MAC and AES on can beat for the bytes it moves."]
    return out


def _heap(rows):
    out = ["## MicroPython heap (unix port 1.29, x64 bundle, viper kernels)", "",
           "The x64 port's objects are twice a 32-bit board's size, and the `.mpy` modules are loaded into the "
           "heap (a board would freeze them into flash; that needs a firmware build, not possible here).", "",
           "| model | tile arena | smallest `-X heapsize` that runs (bisection, 4 KiB) | heap in use after gc.collect() | seconds per inference |",
           "|---|---|---|---|---|"]
    for r in rows:
        out.append("| %s | %d | %d KiB | %s | %s |" % (r["model"], r["sram_budget"], r["min_heap_kib"],
                                                     r["heap_in_use_after_collect"], r["seconds_per_inference"]))
    return out


def _generic(title, data):
    out = ["## " + title, ""]
    if isinstance(data, dict):
        data = [data]
    keys = []
    for r in data:
        for k in r:
            if k not in keys:
                keys.append(k)
    out.append("| " + " | ".join(keys) + " |")
    out.append("|" + "---|" * len(keys))
    for r in data:
        out.append("| " + " | ".join(str(r.get(k, "")) for k in keys) + " |")
    return out


def _cortexm(r):
    out = ["## Cortex-M4: executed instructions per MAC (QEMU mps2-an386, `-icount shift=0`)", "",
           "%s; %s. Kernel library `.text`: %d bytes with the DSP paths, %d without." % (
               r["target"], r["compiler"], r["text_bytes"]["dsp"], r["text_bytes"]["plain"]), "",
           "| layer | MACs | DSP path | plain C |", "|---|---|---|---|"]
    for x in r["layers"]:
        out.append("| %s | %d | %.3f | %.3f |" % (x["layer"], x["macs"], x["dsp"], x["plain"]))
    out += ["", "MobileNetV2's layers, weighted by their MACs:", "", "| layer type | layers | MACs | DSP path | plain C |",
            "|---|---|---|---|---|"]
    for k, x in r["mobilenet_v2"].items():
        out.append("| %s | %d | %d | %.3f | %.3f |" % (k, x["layers"], x["macs"], x["dsp"], x["plain"]))
    if r.get("mobilenet_v2_1x1"):
        out += ["", "MobileNetV2's 1x1 convolutions by shape (each measured at 4 x 4 output pixels and at most 64 "
                "output channels):", "", "| layer | layers | MACs | DSP path | plain C |", "|---|---|---|---|---|"]
        for x in r["mobilenet_v2_1x1"]:
            out.append("| %s | %d | %d | %.3f | %.3f |" % (x["layer"], x["layers"], x["macs"], x["dsp"], x["plain"]))
    return out


def _hil(rows):
    out = ["## Hardware in the loop over a pseudo-terminal", "",
           "| PUT_IMAGE bytes | PUT_IMAGE throughput | raw pty throughput (same path) | data per frame | link faults |",
           "|---|---|---|---|---|"]
    for r in (rows if isinstance(rows, list) else [rows]):
        out.append("| %d | %.2f MB/s | %.2f MB/s | %d | %s |" % (r["put_bytes"], r["put_bytes_per_s"] / 1e6,
                                                              r["raw_bytes_per_s"] / 1e6, r["frame_data"], r["faults"]))
    return out


def markdown(res):
    m = res["machine"]
    lines = ["# Benchmarks", "",
             "Generated by `tileswap bench` on %s (Python %s, %s, %d CPUs); raw figures in "
             "`docs/benchmarks.json`. Do not edit by hand: rerun the command." % (
                 res["date"], m["python"], m["processor"], m["cpus"]), ""]
    if "zoo" in res:
        lines += _zoo(res["zoo"]) + [""]
    if "latency" in res:
        lines += _latency(res["latency"]) + [""]
    if "heap" in res:
        lines += _heap(res["heap"]) + [""]
    if "viper" in res:
        lines += _generic("Viper kernels on MicroPython vs the C kernels (MACs per second)", res["viper"]) + [""]
    if "cortexm" in res:
        lines += _cortexm(res["cortexm"]) + [""]
    if "hil" in res:
        lines += _hil(res["hil"]) + [""]
    return "\n".join(lines) + "\n"
