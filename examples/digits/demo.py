"""`make demo`: the whole pipeline on the bundled digits model, as a user would run it.

1. `tileswap keygen`, `tileswap compile --sram 4K`, `tileswap plan`, `tileswap verify` (the real CLI);
2. the 360-image test split through the emulated device (encrypted image on a file-backed SD card) and
   through TFLite's reference kernels: accuracy side by side, outputs compared bit for bit, counters.

Outputs go to out/demo/ (key, image, card). Run from the repository root: `make demo`.
"""

import os
import shlex
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(ROOT, "out", "demo")
MODEL = os.path.join(HERE, "digits_int8.tflite")
TEST = os.path.join(HERE, "digits_test.npz")
SRAM = "4K"
TILESWAP = [sys.executable, "-m", "tileswap.host.cli"]


def sh(*args):
    shown = "tileswap " + " ".join(shlex.quote(os.path.relpath(a, ROOT) if os.path.isabs(a) else a) for a in args)
    print("\n$ " + shown, flush=True)
    r = subprocess.run(TILESWAP + list(args), cwd=ROOT)
    if r.returncode:
        sys.exit("demo: `%s` failed with exit status %d" % (shown, r.returncode))


def main():
    from tileswap.host.emulator import Emulator
    from tileswap.host.keys import load_key
    from tileswap.host.oracle import Reference

    os.makedirs(OUT, exist_ok=True)
    key_path = os.path.join(OUT, "demo.key")
    image = os.path.join(OUT, "digits.tsi")
    card = os.path.join(OUT, "card.img")
    if not os.path.exists(key_path):
        sh("keygen", "-o", key_path)
    sh("compile", MODEL, "-o", image, "--sram", SRAM, "--key", key_path)
    sh("plan", image, "--key", key_path)
    sh("verify", MODEL, image, "--key", key_path, "--inputs", "3")

    data = np.load(TEST)
    x, y = data["x_int8"], data["y"]
    print("\nThe test split (%d images) on the emulated device and on TFLite's reference kernels:" % len(x))
    with open(MODEL, "rb") as f:
        ref = Reference(f.read())
    if os.path.exists(card):
        os.unlink(card)
    emu = Emulator.open(image, load_key(key_path), card=card)
    ours, theirs = [], []
    totals = {}
    t0 = time.time()
    for i in range(len(x)):
        ours.append(emu.run(x[i]))
        for k, v in emu.counters().items():
            totals[k] = totals.get(k, 0) + v
        theirs.append(ref.run(x[i][None]).reshape(-1))
    dt = time.time() - t0
    peak, budget = emu.rt.arena.peak, emu.h["sram_budget"]
    emu.close()
    ours, theirs = np.array(ours), np.array(theirs)
    acc_ours = float(np.mean(ours.argmax(1) == y))
    acc_tfl = float(np.mean(theirs.argmax(1) == y))
    same = int(np.sum(np.all(ours == theirs, axis=1)))
    n = len(x)
    print("  accuracy   tileswap (emulated, %s SRAM): %.4f    TFLite reference: %.4f" % (SRAM, acc_ours, acc_tfl))
    print("  bit-exact  %d of %d outputs identical to TFLite's%s" % (same, n, "" if same == n else "  <-- MISMATCH"))
    print("  SRAM       peak %d bytes of the %d-byte budget (measured by the arena)" % (peak, budget))
    print("  per inference: %s" % ", ".join("%s %d" % (k, v // n) for k, v in sorted(totals.items())))
    print("  %d inferences in %.1f s on the emulator" % (n, dt))
    if same != n or acc_ours != acc_tfl or peak > budget:
        sys.exit("demo: FAILED")


if __name__ == "__main__":
    main()
