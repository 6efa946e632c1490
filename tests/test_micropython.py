"""The device runtime on the real MicroPython interpreter (unix port, x64 bundle, viper kernels).

Outputs must equal the CPython emulator's (themselves verified bit-exact against TFLite in
test_pipeline.py) for the digits model and every case of the operator zoo, at a tight and a roomy
budget; and the heap must not grow over 20 inferences (no allocation that survives the tile loop).
"""

import numpy as np
import pytest

from tileswap.host.emulator import Emulator
from tileswap.host.micropython import run_micropython
from tileswap.tiler.compile import compile_model

from zoo import GROUP_WISE, ZOO, model, sample_input

HEAP = 256 * 1024


def _inputs(emu, tfl, n, seed):
    xs = []
    for i in range(n):
        x = np.asarray(sample_input(tfl, seed=seed + i))
        xs.append(emu.quantize_input(x) if x.dtype != np.int8 else x.astype(np.int8))
    return xs


def _same_as_emulator(tfl, sram, key, n=2, seed=0):
    image, _ = compile_model(tfl, sram=sram, key=key)
    emu = Emulator(image, key)
    try:
        xs = _inputs(emu, tfl, n, seed)
        want = [emu.run(x).tobytes() if emu.h["out_float"] == 0 else None for x in xs]
        raw = []
        for x in xs:        # the int8 output, before any host-side dequantization
            emu.rt.set_input(x.tobytes())
            emu.rt.infer()
            out = bytearray(emu.rt.output_size())
            emu.rt.read_output(out)
            raw.append(bytes(out))
    finally:
        emu.close()
    got, rep = run_micropython(image, key, [x.tobytes() for x in xs], heap=HEAP)
    for i, (g, w) in enumerate(zip(got, raw)):
        if g != w:
            a, b = np.frombuffer(g, np.int8), np.frombuffer(w, np.int8)
            j = int(np.flatnonzero(a != b)[0])
            raise AssertionError("input %d: first mismatch at %d: micropython %d, emulator %d" % (i, j, a[j], b[j]))
    assert rep["peak_sram"] <= sram
    return rep


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_on_micropython_equals_emulator(name, key):
    from tileswap.tiler.compile import compile_model as cm
    tfl = model(name)
    lo = cm(tfl, sram=1 << 20, key=key)[1].min_sram
    _same_as_emulator(tfl, lo, key)
    _same_as_emulator(tfl, 16 * 1024, key, n=1, seed=5)


@pytest.mark.parametrize("name, sram", GROUP_WISE)
def test_group_wise_execution_on_micropython(name, sram, key):
    """K-split sums over channel-chunked spills, a convolution split into a MEAN, resident split
    weights (tests/test_pipeline.py checks each plan uses them): MicroPython equals the emulator."""
    _same_as_emulator(model(name), sram, key)


def test_digits_on_micropython(digits, key):
    for sram in (1536, 4096):
        _same_as_emulator(digits, sram, key, n=3)


def test_no_heap_growth_over_20_inferences(digits, key):
    """gc.mem_alloc() after gc.collect() is the same after every inference once the first has run."""
    image, _ = compile_model(digits, sram=2048, key=key)
    xs = [np.random.default_rng(i).integers(-128, 128, 64).astype(np.int8).tobytes() for i in range(20)]
    _, rep = run_micropython(image, key, xs, heap=HEAP)
    heap = rep["heap_after_collect"]
    assert len(heap) == 20
    assert max(heap[1:]) <= heap[1], heap


def test_private_copies_of_format_and_opdefs_agree():
    """Device modules keep private copies of format.py / opdefs.py constants (a private const takes no RAM
    in a .mpy, and the run path then never loads those modules): each copy must equal the original."""
    import importlib
    import os
    import re

    from tileswap.device import counters
    from tileswap.device import format as F
    from tileswap.device import opdefs as D
    checked = 0
    for m in ("image", "runtime", "ops", "schedule", "validate", "counters", "kernels_viper", "arena", "storage",
              "crypto", "app"):
        path = "device/%s.py" % m
        src = open(os.path.join(os.path.dirname(os.path.dirname(__file__)), path)).read()
        for name, value in re.findall(r"^_([A-Z][A-Z0-9_]*) = (.+)$", src, re.M):
            for ref in (F, D):
                if hasattr(ref, name):
                    if m == "kernels_viper":       # MicroPython-only module: compare the literal
                        got = eval(value.replace("const", ""))
                    else:
                        got = getattr(importlib.import_module("tileswap.device." + m), "_" + name)
                    assert got == getattr(ref, name), (m, name)
                    checked += 1
            if name.startswith("H_"):           # header field indices
                field = name[2:].lower()
                got = getattr(importlib.import_module("tileswap.device." + m), "_" + name)
                assert F.HDR_FIELDS[got] == field, (m, name)
                checked += 1
    assert checked > 100
    assert counters.FIELDS == F.CTR_FIELDS[2:10]     # Counters.save packs them in this order
    from tileswap.device import arena, ops, runtime
    assert (ops._OUT_BAND, ops._ACC, ops._WEIGHTS, ops._KEPT) == (arena._OUT_BAND, arena._ACC, arena._WEIGHTS,
                                                                  arena._KEPT)
    assert (runtime._WEIGHTS, runtime._INPUT_ROW) == (arena._WEIGHTS, arena._INPUT_ROW)
    assert len({arena.STAGING, arena._WEIGHTS, arena._OUT_BAND, arena._ACC, arena._INPUT_ROW}) == 5


def test_digits_runs_in_a_small_heap(digits, key):
    """The heap the runtime needs stays small (docs/boards.md, 'Heap needed'): digits at a 4 KiB arena runs
    in an 88 KiB heap (79 KiB is the measured minimum; a given size can fail by fragmentation where a
    smaller one passes: 84 KiB did once the K-split and chunk code was in) and the open-time code is
    freed."""
    image, _ = compile_model(digits, sram=4096, key=key)
    x = np.random.default_rng(3).integers(-128, 128, 64).astype(np.int8).tobytes()
    _, rep = run_micropython(image, key, [x, x], heap=88 * 1024)
    assert rep["heap_after_collect"][-1] < 64 * 1024, rep["heap_after_collect"]
