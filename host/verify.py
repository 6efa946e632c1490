"""`tileswap verify`: every intermediate tensor of the emulated device against TFLite's reference kernels.

For each random input, TFLite (BUILTIN_REF, all tensors preserved) and the emulator run the same
int8 input; every activation tensor tileswap computes (op outputs, RESHAPE views, the model input and
output, and the float edges) is compared byte for byte. TFLite Micro's final output is compared too.
"""

import hashlib

import numpy as np

from ..tiler.lower import lower
from ..tiler.tflite_import import load_tflite
from .emulator import Emulator, header
from .errors import HostError
from .oracle import Micro, Reference


def random_input(h, shape, rng):
    """Random input covering the whole int8 range (so saturation is exercised)."""
    q = rng.integers(-128, 128, size=shape, dtype=np.int64)
    if h["in_float"]:
        return (np.float32(h["in_scale"]) * (q - h["in_zp"]).astype(np.float32)).astype(np.float32)
    return q.astype(np.int8)


def _first_mismatch(got, want):
    bad = np.flatnonzero(got.reshape(-1) != want.reshape(-1))
    i = int(bad[0])
    return dict(index=np.unravel_index(i, want.shape) if want.ndim else (), got=got.reshape(-1)[i].item(),
                want=want.reshape(-1)[i].item(), count=int(bad.size))


def verify(model_bytes, image, key, *, inputs=5, seed=0, kernel="c", tflm=True, progress=None, card=None):
    """Compare; returns a JSON-ready dict (bit_exact true only if every tensor of every input matched)."""
    h = header(image)
    if hashlib.sha256(model_bytes).digest() != bytes(h["model_sha256"]):
        raise HostError("the image was not compiled from this model (model hashes differ)")
    L = lower(load_tflite(model_bytes))
    ref = Reference(model_bytes)
    micro = Micro(model_bytes) if tflm else None
    by_base = {}
    for t in L.tensors:
        by_base.setdefault(t.base, []).append(t)
    captured = {}

    def on_tensor(tid):
        for t in by_base.get(tid, ()):
            captured[t.id] = emu.rt.read_tensor(t.id)

    bands = {}            # fused-chain tensor id -> [(row0, row1, bytes)]: they only ever exist as bands

    def on_rows(tid, lo, hi, off, rb, g0):
        """A band of a fused tensor: rows lo..hi, all channels (g0 < 0) or the group from channel g0."""
        bands.setdefault(tid, []).append((lo, hi, g0, rb, bytes(emu.rt.mv[off:off + (hi - lo) * rb])))

    emu = Emulator(image, key, kernel=kernel, on_tensor=on_tensor, card=card)
    emu.rt.on_rows = on_rows
    rng = np.random.default_rng(seed)
    compared = 0
    oracles_disagree = 0  # inputs where TFLite Micro's output differs from TFLite's reference kernels
    unused_rows = 0       # rows of fused tensors no later op needs, so never computed
    missing = set()
    mismatches = []
    tflm_ok = None
    try:
        for n in range(inputs):
            x = random_input(h, tuple(ref.inp["shape"]), rng)
            want_out = ref.run(x)
            captured.clear()
            bands.clear()
            y = emu.run(x)
            for t in by_base.get(L.tensors[L.input].base, ()):   # written by set_input, before any op
                captured[t.id] = emu.rt.read_tensor(t.id)
            for tid, parts in bands.items():
                t = L.tensors[tid]
                full = ref.tensor(t.tfl).reshape(t.h, t.w, t.c)
                seen = set()
                for lo, hi, g0, rb, data in parts:      # recomputed halo rows are compared every time
                    gw = rb // t.w
                    want = full[lo:hi] if g0 < 0 else full[lo:hi, :, g0:g0 + gw]
                    g = np.frombuffer(data, dtype=np.int8).reshape(hi - lo, t.w, -1)[:, :, :want.shape[2]]
                    seen.update(range(lo, hi))
                    if not np.array_equal(g, want):
                        m = _first_mismatch(g, want)
                        m["index"] = (m["index"][0] + lo,) + tuple(m["index"][1:])
                        mismatches.append(dict(input=n, tensor=t.name + " (fused band)", tflite_index=t.tfl, **m))
                compared += 1
                unused_rows += t.h - len(seen)
            for t in L.tensors:
                got = captured.get(t.id)
                if got is None:
                    if t.id not in bands and t.id != L.output:
                        missing.add(t.name)
                    continue
                want = ref.tensor(t.tfl)
                g = np.frombuffer(got, dtype=np.int8).reshape(want.shape)
                compared += 1
                if not np.array_equal(g, want):
                    mismatches.append(dict(input=n, tensor=t.name, tflite_index=t.tfl, **_first_mismatch(g, want)))
            y = np.asarray(y).reshape(want_out.shape)
            compared += 1
            if not np.array_equal(y, want_out):
                mismatches.append(dict(input=n, tensor="model output", tflite_index=ref.out["index"],
                                       **_first_mismatch(y, want_out)))
            if micro is not None:
                # The two oracles can disagree (TFLite Micro's kernels are not TFLite's reference
                # kernels): count it, and hold us only to TFLM where TFLM agrees with the reference.
                m = np.asarray(micro.run(x)).reshape(want_out.shape)
                ok = bool(np.array_equal(m, y))
                if not np.array_equal(m, want_out):
                    oracles_disagree += 1
                    ok = True
                tflm_ok = ok if tflm_ok is None else (tflm_ok and ok)
            if progress:
                progress(n + 1, inputs)
    finally:
        emu.close()
    if missing:           # every activation must have been compared: anything else is a harness bug
        mismatches.append(dict(input=-1, tensor="not compared: " + ", ".join(sorted(missing)), tflite_index=-1,
                               index=(), got=None, want=None, count=0))
    return dict(inputs=inputs, tensors_compared=compared, mismatches=len(mismatches),
                first_mismatches=mismatches[:5], bit_exact=not mismatches, fused_rows_never_needed=unused_rows,
                tflm_output_bit_exact=tflm_ok, tflm_differs_from_reference=oracles_disagree)
