"""Throughput of the viper kernels (device/kernels_viper.py) on the real MicroPython interpreter, next to
the C kernels (host/native.py) on the same layers, in MACs per second.

    from tileswap.host.bench_viper import viper_macs_per_s
    rows = viper_macs_per_s()     # one dict per layer: MACs, viper and C MAC/s, their ratio, bit-exact

Both run here, on the host CPU (the unix port's x64 viper emitter against gcc -O2 C), so the ratio is the
figure to carry to a board, not the absolute rates. MACs are counted as the runtime counts them
(out pixels x channels x taps x input channels, padding taps included). Each layer is one tile: the whole
input as one band, all output channels in one group.
"""

import json
import os
import subprocess
import tempfile
import time
from array import array

import numpy as np

from .. import device
from ..device import opdefs as d
from .errors import HostError
from .micropython import _tool
from .native import Kernels as CKernels

# (name, op, height = width, input channels, filter size, output channels)
LAYERS = (
    ("CONV_2D 1x1, 16x16x64 -> 64", "conv_s8", 16, 64, 1, 64),
    ("CONV_2D 3x3, 16x16x32 -> 32, same", "conv_s8", 16, 32, 3, 32),
    ("DEPTHWISE_CONV_2D 3x3, 32x32x64, same", "dwconv_s8", 32, 64, 3, 64),
)

# Runs in MicroPython: the best of `tries` timings of each layer (the host may be busy), as one JSON line.
_SCRIPT = """
import sys, time, json
from array import array
from binascii import hexlify, unhexlify
sys.path.insert(0, %(root)r)
from device.kernels_viper import Kernels
k = Kernels()
res = []
for c in json.load(open(%(path)r)):
    p = array('i', c['p'])
    inp = bytearray(unhexlify(c['inp']))
    wts = bytearray(unhexlify(c['wts']))
    out = bytearray(c['out'])
    h = c['h']
    best = None
    for _ in range(%(tries)d):
        t0 = time.ticks_us()
        if c['op'] == 'conv_s8':
            k.conv_s8(p, out, 0, inp, 0, h, -c['pad'], h, wts, c['g'])
        else:
            k.dwconv_s8(p, out, 0, inp, 0, h, -c['pad'], h, wts, 0, c['g'])
        dt = time.ticks_diff(time.ticks_us(), t0)
        best = dt if best is None else min(best, dt)
    res.append([best, hexlify(out).decode()])
print(json.dumps(res))
"""


def _layer(rng, op, hw, c, k, oc):
    """p, input, weight payload and output size of one layer, 'same' padding, stride 1."""
    pad = (k - 1) // 2
    g = oc if op == "conv_s8" else c
    p = [0] * d.P_SPATIAL_LEN
    for slot, v in ((d.P_IN_W, hw), (d.P_IN_C, c), (d.P_OUT_W, hw), (d.P_OUT_C, g), (d.P_KH, k), (d.P_KW, k),
                    (d.P_SH, 1), (d.P_SW, 1), (d.P_DH, 1), (d.P_DW, 1), (d.P_PAD_L, pad), (d.P_IN_ZP, -3),
                    (d.P_OUT_ZP, 5), (d.P_ACT_MIN, -128), (d.P_ACT_MAX, 127), (d.P_DM, 1)):
        p[slot] = v
    nf = g * k * k * (c if op == "conv_s8" else 1)
    filt = rng.integers(-128, 128, size=nf, dtype=np.int8).tobytes() + bytes((-nf) % 4)
    tail = np.concatenate([rng.integers(-5000, 5000, size=g), rng.integers(1 << 30, 1 << 31, size=g),
                           rng.integers(-10, -5, size=g)]).astype("<i4").tobytes()
    inp = rng.integers(-128, 128, size=hw * hw * c, dtype=np.int8).tobytes()
    macs = hw * hw * g * k * k * (c if op == "conv_s8" else 1)
    return dict(op=op, p=p, inp=inp.hex(), wts=(filt + tail).hex(), out=hw * hw * g, h=hw, pad=pad, g=g), macs


def _c_rate(case, macs, tries):
    k = CKernels()
    p, inp, wts = array("i", case["p"]), bytes.fromhex(case["inp"]), bytes.fromhex(case["wts"])
    out = bytearray(case["out"])
    h, g, y0 = case["h"], case["g"], -case["pad"]
    best = None
    for _ in range(tries):
        t0 = time.perf_counter()
        if case["op"] == "conv_s8":
            k.conv_s8(p, out, 0, inp, 0, h, y0, h, wts, g)
        else:
            k.dwconv_s8(p, out, 0, inp, 0, h, y0, h, wts, 0, g)
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return macs / best, bytes(out)


def viper_macs_per_s(*, tries=15, heap=1024 * 1024, timeout=600):
    """One row per layer of LAYERS: {layer, MACs, viper MAC/s, C MAC/s, C / viper, bit-exact}; each rate
    is the best of `tries` runs of the layer (the least disturbed by other processes)."""
    rng = np.random.default_rng(0)
    cases, macs = zip(*(_layer(rng, *spec[1:]) for spec in LAYERS))
    root = os.path.dirname(os.path.dirname(os.path.abspath(device.__file__)))
    with tempfile.TemporaryDirectory(prefix="tileswap-viper-") as tmp:
        path = os.path.join(tmp, "layers.json")
        with open(path, "w") as f:
            json.dump(list(cases), f)
        try:
            r = subprocess.run([_tool("micropython"), "-X", "heapsize=%d" % heap, "-c",
                                _SCRIPT % dict(root=root, path=path, tries=tries)], capture_output=True, text=True,
                               timeout=timeout)
        except subprocess.TimeoutExpired:
            raise HostError("micropython did not finish the viper benchmark within %d s" % timeout) from None
    if r.returncode:
        raise HostError("the viper benchmark failed on micropython: %s" % (r.stderr.strip() or r.stdout.strip()))
    rows = []
    for (name, *_), case, n, (us, out_hex) in zip(LAYERS, cases, macs, json.loads(r.stdout)):
        v = n / (max(us, 1) * 1e-6)
        c, c_out = _c_rate(case, n, tries)
        rows.append({"layer": name, "MACs": n, "viper MAC/s": "%.3g" % v, "C MAC/s": "%.3g" % c,
                     "C / viper": "%.1f" % (c / v), "bit-exact": bytes.fromhex(out_hex) == c_out})
    return rows


if __name__ == "__main__":
    for row in viper_macs_per_s():
        print(row)
