"""The `tileswap` command: a thin table of commands over library functions.

Each command is (handler, argparse builder). Errors of every layer (HostError, TilerError, DeviceError)
are caught once in main() and printed as `tileswap: message` with a non-zero exit status.
"""

import argparse
import json
import os
import re
import sys
import time

import numpy as np

from ..device import DeviceError
from ..tiler import TilerError
from .errors import HostError

PROG = "tileswap"


def parse_size(text):
    """'65536', '64K', '64k', '64KiB', '1M', '1MiB' -> bytes."""
    m = re.fullmatch(r"\s*(\d+)\s*(|k|kib|kb|m|mib|mb)\s*", text.lower())
    if not m:
        raise argparse.ArgumentTypeError("%r is not a size (examples: 65536, 64K, 64KiB, 1M)" % text)
    return int(m.group(1)) * {"": 1, "k": 1024, "kib": 1024, "kb": 1024, "m": 1 << 20, "mib": 1 << 20, "mb": 1 << 20}[m.group(2)]


def write_atomic(path, data):
    """Write bytes to path through a temporary file and a rename: never a half-written output."""
    d = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(d, ".%s.tmp%d" % (os.path.basename(path), os.getpid()))
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise HostError("cannot write %s: %s" % (path, e.strerror)) from None


def read_file(path, what):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise HostError("cannot read %s %s: %s" % (what, path, e.strerror)) from None


def _progress(done, total, label):
    if sys.stderr.isatty():
        sys.stderr.write("\r%s %d/%d" % (label, done, total) + ("\n" if done == total else ""))
        sys.stderr.flush()


# ---- commands -------------------------------------------------------------------------------
def cmd_keygen(a):
    from .keys import keygen
    keygen(a.output, force=a.force)
    print("wrote a new key to %s (mode 0600); keep it off the card" % a.output)


def cmd_compile(a):
    from .keys import load_key
    from ..tiler.compile import compile_model
    from .inspect import plan_info
    model = read_file(a.model, "model")
    key = load_key(a.key)
    t0 = time.time()

    def progress(stage, done, total):
        if sys.stderr.isatty():
            sys.stderr.write("\r\033[Kcompile: %-8s %s  %.1f s" % (stage, "%d/%d" % (done, total) if total > 1 else "",
                                                                time.time() - t0))
            sys.stderr.flush()

    try:
        image, plan = compile_model(model, sram=a.sram, key=key, erase_block=a.erase_block,
                                    image_version=a.image_version, progress=progress)
    finally:
        if sys.stderr.isatty():
            sys.stderr.write("\r\033[K")
    info = plan_info(image)
    write_atomic(a.output, image)
    info["min_sram"] = plan.min_sram
    if a.json:
        print(json.dumps(info))
    else:
        print("wrote %s: %d ops, %d tiles (%d weight tiles), %d bytes; peak SRAM %d of %d (every op fits on its own "
              "from %d%s); per inference %d bytes read, %d written"
              % (a.output, len(info["ops"]), info["tiles"], info["tile_records"], info["image_bytes"],
                 info["peak_sram"], a.sram, plan.min_sram, "; fused chains run the others" if plan.min_sram > a.sram
                 else "", info["io_read_bytes"], info["io_write_bytes"]))


def cmd_plan(a):
    from .inspect import plan_info
    from .keys import load_key
    image = read_file(a.image, "image")
    info = plan_info(image, load_key(a.key, required=False))
    if a.board or a.plot:
        from . import cost
        if a.board:
            info = cost.extend_plan(info, a.board, image=image)
        if a.plot:
            cost.plot(info, a.plot)
    if a.json:
        print(json.dumps(info))
        return
    if a.board:
        print(cost.table(info))
        return
    print("image %s  budget %d  peak SRAM %d  weights %d B  per inference: read %d B, written %d B, %d tiles, "
          "%d MACs%s" % (a.image, info["sram_budget"], info["peak_sram"], info["weight_bytes"],
                         info["io_read_bytes"], info["io_write_bytes"], info["tiles"], info["macs"],
                         "" if info["authenticated"] else "  (not authenticated: pass --key to check)"))
    print("%3s %-18s %-16s %-22s %6s %6s %8s %10s %10s %12s  %s" % ("#", "op", "output", "output in", "bands",
                                                                   "groups", "peak", "read", "written", "MACs",
                                                                   "how"))
    for o in info["ops"]:
        print(("%3d %-18s %-16s %-22s %6d %6d %8d %10d %10d %12d  %s" % (
            o["index"], o["op"], "x".join(map(str, o["out_shape"])), o["output_in"], o["bands"], o["groups"],
            o["peak_sram"], o["io_read_bytes"], o["io_write_bytes"], o["macs"], o["mode"])).rstrip())


def cmd_run(a):
    from .emulator import Emulator
    from .keys import load_key
    key = load_key(a.key)
    try:
        x = np.load(a.input, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise HostError("cannot read input %s: %s (expected a .npy array)" % (a.input, e)) from None
    if a.runtime == "micropython":
        return _run_micropython(a, key, x)
    nv, nv_path = _device_store(a.sd)
    try:
        emu = Emulator.open(a.image, key, card=a.sd, kernel=a.kernels, faults=a.faults, fault_seed=a.fault_seed, nv=nv)
    except OSError as e:
        raise HostError("cannot open %s: %s" % (a.image, e.strerror)) from None
    try:
        n = emu.rt.input_size()
        if x.size % n or x.size == 0:
            raise HostError("input %s has shape %s (%d elements); the model takes %d per inference"
                            % (a.input, x.shape, x.size, n))
        batch = x.reshape((x.size // n, n))
        ys, totals = [], {}
        for i, row in enumerate(batch):
            ys.append(emu.run(row))
            for k, v in emu.counters().items():
                totals[k] = totals.get(k, 0) + v
            if len(batch) > 1:
                _progress(i + 1, len(batch), "inference")
        y = np.stack(ys) if x.size > n else ys[0]
        peak = emu.rt.arena.peak
        budget = emu.h["sram_budget"]
    finally:
        emu.close()
    if nv_path:
        write_atomic(nv_path, json.dumps(nv).encode())
    _report_run(a, y, len(batch), peak, budget, totals)


def _device_store(card):
    """The emulated device's off-card store (its internal flash): beside the card file, if one is kept."""
    if not card:
        return None, None
    path = card + ".device.json"
    try:
        with open(path) as f:
            return json.load(f), path
    except FileNotFoundError:
        return {}, path
    except (OSError, ValueError) as e:
        raise HostError("cannot read the device store %s: %s" % (path, e)) from None


def _report_run(a, y, n, peak, budget, totals, extra=None):
    if a.output:
        import io
        buf = io.BytesIO()
        np.save(buf, y)
        write_atomic(a.output, buf.getvalue())
    res = dict(inferences=n, output_shape=list(y.shape), output_dtype=str(y.dtype), peak_sram=peak,
               sram_budget=budget, counters=totals, runtime=a.runtime)
    res.update(extra or {})
    if a.json:
        if not a.output:
            res["output"] = y.tolist()
        print(json.dumps(res))
        return
    print("%d inference(s) on %s, output %s %s%s; peak SRAM %d of %d" % (
        n, a.runtime, "x".join(map(str, y.shape)), y.dtype, " -> " + a.output if a.output else "", peak, budget))
    print("counters: " + ", ".join("%s %d" % kv for kv in sorted(totals.items())))
    for k, v in (extra or {}).items():
        print("%s: %s" % (k.replace("_", " "), v))
    if not a.output:
        print(y)


def _run_micropython(a, key, x):
    from .emulator import Emulator, header
    from .micropython import run_micropython
    image = read_file(a.image, "image")
    h = header(image)
    emu = Emulator(image, key)            # verifies the image and key on the host first; gives shapes
    try:
        n = emu.rt.input_size()
        if x.size % n or x.size == 0:
            raise HostError("input %s has shape %s; the model takes %d elements per inference" % (a.input, x.shape, n))
        if x.dtype != np.int8 and x.dtype.kind != "f":
            raise HostError("input dtype %s; the model takes int8 (or float32 to be quantized)" % x.dtype)
        xs = [emu.quantize_input(r) if r.dtype != np.int8 else r for r in x.reshape((x.size // n, n))]
    finally:
        emu.close()
    outs, rep = run_micropython(image, key, [r.tobytes() for r in xs], card=a.sd, heap=a.heap)
    ys = [np.frombuffer(o, dtype=np.int8) for o in outs]
    if h["out_float"]:
        ys = [(float(h["out_scale"]) * (y.astype(np.float64) - h["out_zp"])).astype(np.float32) for y in ys]
    y = np.stack(ys) if len(ys) > 1 else ys[0]
    totals = {}
    for c in rep["counters"]:
        for k, v in c.items():
            totals[k] = totals.get(k, 0) + v
    _report_run(a, y, len(ys), rep["peak_sram"], rep["sram_budget"], totals,
                dict(heap_size=a.heap, heap_after_collect=rep["heap_after_collect"][-1]))


def cmd_bundle(a):
    from .micropython import bundle
    d = bundle(a.arch, a.output)
    print("wrote %s (device runtime as %s .mpy files): copy the folder to the board's filesystem" % (d, a.arch))


def cmd_verify(a):
    from .keys import load_key
    from .verify import verify
    key = load_key(a.key)
    res = verify(read_file(a.model, "model"), read_file(a.image, "image"), key, inputs=a.inputs, seed=a.seed,
                 kernel=a.kernels, tflm=not a.no_tflm, progress=lambda d, t: _progress(d, t, "input"))
    if a.json:
        print(json.dumps(res, default=str))
    else:
        print("%s: %d inputs, %d tensors compared, %d mismatches; TFLite Micro output %s" % (
            "BIT-EXACT" if res["bit_exact"] else "MISMATCH", res["inputs"], res["tensors_compared"],
            res["mismatches"], {True: "matches", False: "differs", None: "not compared"}[res["tflm_output_bit_exact"]]))
        if res.get("tflm_differs_from_reference"):
            print("  note: on %d input(s) TFLite Micro's own output differs from TFLite's reference kernels "
                  "(the two oracles disagree); tileswap is held to the reference there" % res["tflm_differs_from_reference"])
        for m in res["first_mismatches"]:
            print("  input %(input)d tensor %(tensor)r (TFLite #%(tflite_index)d): first at %(index)s got %(got)s "
                  "want %(want)s (%(count)d elements differ)" % m)
    if not res["bit_exact"] or res["tflm_output_bit_exact"] is False:
        return 1


# ---- argument parsers -------------------------------------------------------------------------
def _key(p):
    p.add_argument("--key", metavar="KEYFILE", help="master key file (default: $TILESWAP_KEY as 64 hex digits)")


def _json(p):
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def _kernels(p):
    p.add_argument("--kernels", choices=("c", "ref"), default="c",
                   help="tile kernels: the C library (default) or the numpy reference (slow, for debugging)")


def args_keygen(p):
    p.add_argument("-o", "--output", required=True, metavar="KEYFILE", help="where to write the key (mode 0600)")
    p.add_argument("--force", action="store_true", help="overwrite an existing key file")


def args_compile(p):
    p.add_argument("model", metavar="MODEL.tflite", help="full-integer int8 TensorFlow Lite model")
    p.add_argument("-o", "--output", required=True, metavar="IMAGE.tsi", help="tile image to write")
    p.add_argument("--sram", required=True, type=parse_size, metavar="SIZE",
                   help="SRAM budget for the tile arena: 65536, 64K or 64KiB")
    p.add_argument("--erase-block", type=parse_size, default=65536, metavar="SIZE",
                   help="the card's erase block, for wear counting (default 64K)")
    p.add_argument("--image-version", type=int, default=1, metavar="N",
                   help="monotonic version (default 1): a device that has run version N refuses older images")
    _key(p)
    _json(p)


def args_plan(p):
    p.add_argument("image", metavar="IMAGE.tsi")
    p.add_argument("--board", metavar="NAME", help="add modelled latency, energy and card lifetime for a board profile "
                   "(see docs/cost.md for the list)")
    p.add_argument("--plot", metavar="FILE.png", help="draw the per-layer chart (SRAM, bytes moved, modelled time)")
    _key(p)
    _json(p)


def args_run(p):
    p.add_argument("image", metavar="IMAGE.tsi")
    p.add_argument("--input", required=True, metavar="IN.npy",
                   help="input array: one inference, or N along the first axis (int8, or float32 to quantize)")
    p.add_argument("--output", metavar="OUT.npy", help="write the output array here (atomically)")
    p.add_argument("--sd", metavar="CARD.img",
                   help="emulated SD card file (created from the image if missing; default: a temporary card)")
    p.add_argument("--faults", metavar="SPEC", help="inject card faults, e.g. read-error=0.01,bitflip=1e-5,"
                   "bad-block=120,power-loss=at:5000 (docs/reliability.md)")
    p.add_argument("--fault-seed", type=int, default=0, metavar="N", help="random seed of --faults (default 0)")
    p.add_argument("--runtime", choices=("emulator", "micropython"), default="emulator",
                   help="emulator: the device runtime in this process with the C kernels (default); micropython: "
                   "the real MicroPython interpreter (unix port) with the viper kernels")
    p.add_argument("--heap", type=parse_size, default=256 * 1024, metavar="SIZE",
                   help="MicroPython heap for --runtime micropython, like a board's (default 256K)")
    _key(p)
    _kernels(p)
    _json(p)


def args_bundle(p):
    from .micropython import ARCHS
    p.add_argument("--arch", required=True, choices=ARCHS, help="mpy-cross target (x64 is what the tests run)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="folder to write tileswap_device/ into")


def args_verify(p):
    p.add_argument("model", metavar="MODEL.tflite")
    p.add_argument("image", metavar="IMAGE.tsi")
    p.add_argument("--inputs", type=int, default=5, metavar="N", help="random inputs to compare (default 5)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the inputs (default 0)")
    p.add_argument("--no-tflm", action="store_true", help="skip the TFLite Micro output comparison")
    _key(p)
    _kernels(p)
    _json(p)


COMMANDS = {
    "keygen": (cmd_keygen, args_keygen, "create a random master key file"),
    "compile": (cmd_compile, args_compile, "tile a .tflite model for an SRAM budget into an encrypted image"),
    "plan": (cmd_plan, args_plan, "show an image's plan: tiles, SRAM, bytes moved per op"),
    "run": (cmd_run, args_run, "run inferences on the emulated device (file-backed SD card)"),
    "verify": (cmd_verify, args_verify, "compare every intermediate tensor with TFLite's reference kernels"),
    "bundle": (cmd_bundle, args_bundle, "compile the device runtime to .mpy files for a MicroPython board"),
}


# Commands of other layers live in their own modules, each with a COMMANDS table of the same shape.
EXTRA = ("cmd_hil", "cmd_cost", "cmd_bench", "cmd_zoo", "cmd_faults")


def _all_commands():
    import importlib
    import importlib.util
    table = dict(COMMANDS)
    for name in EXTRA:
        if importlib.util.find_spec("." + name, __package__) is not None:
            table.update(importlib.import_module("." + name, __package__).COMMANDS)
    return table


def build_parser(table=None):
    p = argparse.ArgumentParser(
        prog=PROG, description="Out-of-core int8 inference for microcontrollers: tiles of weights and feature "
        "maps swapped between SRAM and an SD card, bit-exact with TensorFlow Lite.",
        epilog="Typical use: tileswap keygen -o key; tileswap compile model.tflite -o model.tsi --sram 64K --key key; "
        "tileswap verify model.tflite model.tsi --key key")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (_, build, help_) in (table or _all_commands()).items():
        build(sub.add_parser(name, help=help_, description=help_))
    return p


def main(argv=None):
    from .faults import PowerLoss
    table = _all_commands()
    a = build_parser(table).parse_args(argv)
    try:
        return table[a.command][0](a) or 0
    except (HostError, TilerError, DeviceError) as e:
        sys.stderr.write("%s: %s\n" % (PROG, e))
        return getattr(e, "exit_code", 1)
    except KeyboardInterrupt:
        sys.stderr.write("%s: interrupted\n" % PROG)
        return 130
    except BrokenPipeError:       # e.g. `tileswap plan x.tsi | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except PowerLoss as e:        # the fault-injecting card (run --faults) cut the emulated device's power
        sys.stderr.write("%s: power lost: %s (run again on the same --sd card to reboot)\n" % (PROG, e))
        return 3


if __name__ == "__main__":
    sys.exit(main())
