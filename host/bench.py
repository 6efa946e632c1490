"""`tileswap bench`: every speed and memory figure of docs/benchmarks.md, measured side by side in one run.

Sections (each a function returning JSON-ready rows; `bench()` runs the chosen ones and writes
docs/benchmarks.md, generated and never hand-edited, plus the raw figures as JSON):
- zoo:     each zoo model at each budget: compile time, peak SRAM, tiles, io_amplification, bit-exactness
           (every intermediate tensor vs TFLite's reference kernels, the output vs TFLite Micro), and
           TFLite Micro's arena for the same model;
- latency: one MobileNetV2 inference: the emulator (out of core, CRC + MAC + AES on) vs TFLite Micro,
           TFLite's reference kernels and TFLite's default CPU path (XNNPACK);
- heap:    the smallest MicroPython heap (`-X heapsize`) each example runs in, found by bisection;
- viper:   MACs/s of the viper kernels on MicroPython beside the C kernels;
- hil:     PUT_IMAGE throughput over a pseudo-terminal beside the raw pty throughput;
- cortexm: executed instructions per MAC of the C kernels on QEMU's Cortex-M4 (DSP and plain C) and the
           kernel library's .text size.
"""

import hashlib
import json
import os
import platform
import statistics
import time

import numpy as np

from .errors import HostError

SECTIONS = ("zoo", "latency", "heap", "viper", "hil", "cortexm")
BUDGETS = (16 * 1024, 32 * 1024, 64 * 1024, 128 * 1024, 256 * 1024)
KEY = bytes(range(32))          # benchmark images only; never a user's key
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = os.path.join(ROOT, "examples", "digits", "digits_int8.tflite")


def zoo_model(name, cache_dir, progress=None):
    """The zoo model's .tflite bytes, built once and cached by the zoo source's hash."""
    from ..tiler import zoo
    with open(zoo.__file__, "rb") as f:
        tag = hashlib.sha256(f.read()).hexdigest()[:12]
    path = os.path.join(cache_dir, "%s-%s.tflite" % (name, tag))
    if not os.path.exists(path):
        os.makedirs(cache_dir, exist_ok=True)
        data = zoo.build(name, progress=progress)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    with open(path, "rb") as f:
        return f.read()


def tflm_arena(model):
    from .oracle import Micro
    return Micro(model, arena_size=256 << 20).arena_bytes()


def zoo_rows(models, budgets, cache_dir, log):
    from ..tiler import TilerError
    from ..tiler.compile import compile_model, load_tflite, lower
    from ..tiler.plan import smallest_budget
    from .inspect import plan_info
    from .verify import verify
    rows = []
    for name in models:
        log("building %s" % name)
        if name == "digits":
            with open(DIGITS, "rb") as f:
                model = f.read()
        else:
            model = zoo_model(name, cache_dir)
        arena = tflm_arena(model)
        t = time.perf_counter()
        try:
            smallest = smallest_budget(lower(load_tflite(model)))
        except TilerError:                 # an operator the tiler does not support: every row says so below
            smallest = None
        log("  smallest budget %s (bisection, %.0f s)" % (smallest, time.perf_counter() - t))
        for b in budgets:
            log("  %s at %d bytes" % (name, b))
            row = dict(model=name, budget=b, tflm_arena=arena)
            t = time.perf_counter()
            try:
                image, plan = compile_model(model, sram=b, key=KEY)
            except TilerError as e:
                row.update(compiled=False, error=str(e))
                rows.append(row)
                continue
            row["compile_s"] = round(time.perf_counter() - t, 2)
            info = plan_info(image, KEY)
            for k in ("peak_sram", "min_sram", "tiles", "io_read_bytes", "io_write_bytes", "io_min_bytes",
                      "spill_bytes", "io_amplification", "macs"):
                row[k] = info[k]
            res = verify(model, image, KEY, inputs=1, seed=b)
            row.update(compiled=True, bit_exact=res["bit_exact"], tensors_compared=res["tensors_compared"],
                       tflm_output_bit_exact=res["tflm_output_bit_exact"],
                       tflm_differs_from_reference=res.get("tflm_differs_from_reference"))
            rows.append(row)
        # The bisection works to 256 bytes and plans one pass per step; a budget compiled above can be lower
        known = [r["budget"] for r in rows if r["model"] == name and r.get("compiled")]
        for r in rows:
            if r["model"] == name:
                r["smallest_budget"] = min([smallest] + known) if smallest is not None else None
    return rows


def _median_time(fn, n=3):
    fn()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def latency_rows(cache_dir, log, budget=64 * 1024):
    import tensorflow as tf
    from ..tiler.compile import compile_model
    from .emulator import Emulator
    from .oracle import Micro, Reference
    log("latency: mobilenet_v2 at %d bytes" % budget)
    model = zoo_model("mobilenet_v2", cache_dir)
    image, _ = compile_model(model, sram=budget, key=KEY)
    x = np.random.default_rng(0).integers(-128, 128, (1, 224, 224, 3)).astype(np.int8)
    emu = Emulator(image, KEY)
    micro = Micro(model)
    ref = Reference(model)
    fast = tf.lite.Interpreter(model_content=model, num_threads=os.cpu_count())
    fast.allocate_tensors()
    fin = fast.get_input_details()[0]["index"]

    def run_fast():
        fast.set_tensor(fin, x)
        fast.invoke()

    rows = [dict(runtime="tileswap emulator (out of core, %d KiB, CRC+MAC+AES, C kernels)" % (budget // 1024),
                 seconds=_median_time(lambda: emu.run(x[0]))),
            dict(runtime="TFLite Micro (in core, arena %d bytes)" % micro.arena_bytes(),
                 seconds=_median_time(lambda: micro.run(x))),
            dict(runtime="TFLite reference kernels (BUILTIN_REF)", seconds=_median_time(lambda: ref.run(x))),
            dict(runtime="TFLite default CPU kernels (XNNPACK, %d threads)" % os.cpu_count(),
                 seconds=_median_time(run_fast, n=20))]
    # The same run with every kernel a no-op: what the device runtime's tile loop (Python, the code a
    # board runs), the card and the checks cost on their own, whatever the kernels.
    real = emu.rt.k
    emu.rt.k = _Idle(real)
    tiles = emu.counters()["tiles"]
    rows.insert(1, dict(runtime="the same emulator, kernels replaced by no-ops (its Python tile loop over %d tiles, "
                                "card IO, CRC+MAC+AES)" % tiles,
                        seconds=_median_time(lambda: emu.run(x[0])), floor=True))
    emu.rt.k = real
    emu.close()
    # What the image's integrity and secrecy cost on their own: CRC32 + HMAC-SHA256 + AES-256-CTR over the
    # bytes the plan moves, one call each through zlib / OpenSSL (hardware SHA and AES where the CPU has
    # them), no per-tile overhead. No out-of-core run of this plan can be faster; the second row is the
    # same for io_min (every weight, the input and the output once: any plan of this format).
    from .inspect import plan_info
    info = plan_info(image, KEY)
    for what, n in (("the %d bytes this plan moves" % (info["io_read_bytes"] + info["io_write_bytes"]),
                     info["io_read_bytes"] + info["io_write_bytes"]),
                    ("io_min, %d bytes (any plan)" % info["io_min_bytes"], info["io_min_bytes"])):
        rows.append(dict(runtime="floor: CRC32 + HMAC-SHA256 + AES-256-CTR alone over %s" % what,
                         seconds=_median_time(lambda data=bytes(n): _crypto_pass(data)), floor=True))
    return rows


class _Idle:
    """Kernels that compute nothing (outputs are garbage): for timing everything but the kernels."""

    def __init__(self, real):
        self._real = real

    def __getattr__(self, name):
        fn = getattr(self._real, name)
        return (lambda *a, **k: None) if name.endswith("_s8") and callable(fn) else fn


def _crypto_pass(data):
    import hashlib
    import hmac
    import zlib
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    zlib.crc32(data)
    hmac.new(KEY, data, hashlib.sha256).digest()
    Cipher(algorithms.AES(hashlib.sha256(KEY).digest()), modes.CTR(bytes(16))).encryptor().update(data)


def heap_rows(log, cache_dir):
    """Smallest -X heapsize (to 4 KiB) at which each example runs on MicroPython, found by bisection."""
    from ..tiler.compile import compile_model
    from .micropython import run_micropython
    with open(DIGITS, "rb") as f:
        digits = f.read()
    cases = [("digits", digits, 4096, 64), ("mobilenet_v2", zoo_model("mobilenet_v2", cache_dir), 32 * 1024, 224 * 224 * 3)]
    out = []
    for name, model, budget, nin in cases:
        image, _ = compile_model(model, sram=budget, key=KEY)
        x = np.random.default_rng(0).integers(-128, 128, nin).astype(np.int8).tobytes()
        lo, hi = 16, 1024
        seconds = heap = None
        while hi - lo > 4:
            mid = (lo + hi) // 2
            log("heap: %s (%d-byte arena) in %d KiB" % (name, budget, mid))
            try:
                t = time.perf_counter()
                _, rep = run_micropython(image, KEY, [x], heap=mid * 1024)
                seconds, heap = time.perf_counter() - t, rep["heap_after_collect"][-1]
                hi = mid
            except HostError:
                lo = mid
        out.append(dict(model=name, sram_budget=budget, min_heap_kib=hi, heap_in_use_after_collect=heap,
                        seconds_per_inference=round(seconds, 2) if seconds else None))
    return out


def bench(*, sections=SECTIONS, models=("digits", "mobilenet_v2"), budgets=BUDGETS, md_path, json_path,
          cache_dir, log=lambda s: None):
    # Sections not run now keep their figures from the last run (the JSON beside the report), so a long
    # section can be refreshed alone; every section records the date it was measured.
    res = {}
    if os.path.exists(json_path):
        with open(json_path) as f:
            res = json.load(f)
    res.update(machine=dict(python=platform.python_version(), processor=platform.processor() or platform.machine(),
                            cpus=os.cpu_count()), date=time.strftime("%Y-%m-%d"))
    if "zoo" in sections:
        res["zoo"] = zoo_rows(models, budgets, cache_dir, log)
    if "latency" in sections:
        res["latency"] = latency_rows(cache_dir, log)
    if "heap" in sections:
        res["heap"] = heap_rows(log, cache_dir)
    if "viper" in sections:
        from .bench_viper import viper_macs_per_s
        log("viper kernels on micropython")
        res["viper"] = viper_macs_per_s()
    if "hil" in sections:
        from .hil import measure_throughput
        log("hil throughput")
        res["hil"] = measure_throughput()
    if "cortexm" in sections:
        from .cortexm import cortexm_figures
        log("cortex-m4 instruction counts on qemu")
        res["cortexm"] = cortexm_figures(log=log)
    from .bench_report import markdown
    _write(json_path, json.dumps(res, indent=1, default=str))
    _write(md_path, markdown(res))
    return res


def _write(path, text):
    tmp = path + ".tmp%d" % os.getpid()
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
