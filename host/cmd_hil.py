"""`tileswap hil`, `tileswap deploy`, `tileswap board`: hardware in the loop over a serial link.

    tileswap board --heap 256K --card card.img                 # an emulated board; prints its port
    tileswap deploy --port PORT --image model.tsi --key my.key # runtime + key (raw REPL), image (PUT_IMAGE)
    tileswap hil model.tsi --port PORT --input x.npy --json    # upload if needed, infer, outputs + counters
    tileswap hil --port PORT --stats

PORT is a device path (/dev/ttyACM0, /dev/pts/N) or any pyserial URL (socket://host:port, rfc2217://...).
The handlers are thin: the work is in host/hil.py.
"""

import json
import sys
import time
import types

import numpy as np

from .errors import HostError


def _load_input(path):
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise HostError("cannot read input %s: %s (expected a .npy array)" % (path, e)) from None


def _input_rows(x, path, h, n):
    """The input array -> int8 rows of n bytes (float inputs quantized exactly as the emulator does)."""
    from .emulator import Emulator
    if x.size % n or x.size == 0:
        raise HostError("input %s has shape %s (%d elements); the model takes %d per inference"
                        % (path, x.shape, x.size, n))
    if x.dtype != np.int8:
        if x.dtype.kind != "f":
            raise HostError("input dtype %s; the model takes int8 (or float32 to be quantized)" % x.dtype)
        x = Emulator.quantize_input(types.SimpleNamespace(h=h), x)
    return x.reshape((x.size // n, n)), x.size > n


def _progress(done, total):
    if sys.stderr.isatty():
        sys.stderr.write("\rupload %d/%d bytes" % (done, total) + ("\n" if done >= total else ""))
        sys.stderr.flush()


def cmd_hil(a):
    from .cli import read_file, write_atomic
    from .emulator import Emulator, header
    from .hil import Client
    if not (a.image or a.stats or a.reset_counters or a.repl):
        raise HostError("nothing to do: give IMAGE.tsi (and --input IN.npy to run it), --stats or --repl")
    if a.input and not a.image:
        raise HostError("--input needs the image it runs on: tileswap hil IMAGE.tsi --port PORT --input IN.npy")
    x = _load_input(a.input) if a.input else None        # a bad input fails before any upload
    res = dict(port=a.port)
    with Client.open(a.port, timeout=a.timeout) as c:
        dev = c.connect()
        res["board"] = dict(protocol="%d.%d" % (dev["major"], dev["minor"]),
                            micropython="%d.%d.%d" % (dev["mp_major"], dev["mp_minor"], dev["mp_micro"]),
                            heap_free=dev["heap_free"], heap_total=dev["heap_total"], card_blocks=dev["card_blocks"])
        if a.image:
            image = read_file(a.image, "image")
            h = header(image)
            up = c.put_image(image, progress=_progress)
            res["upload"] = up
            if up["state"] != "ready":
                raise HostError("the board cannot run %s: %s" % (a.image, up["message"]))
            res["board"]["sram_budget"] = c.dev["sram_budget"]
        if a.input:
            rows, batch = _input_rows(x, a.input, h, c.dev["input_size"])
            ys, counters = [], []
            for row in rows:
                y, info = c.infer(row.tobytes(), timeout=a.infer_timeout)
                ys.append(np.frombuffer(y, dtype=np.int8))
                counters.append(info)
            y = np.stack(ys) if batch else ys[0]
            if h["out_float"]:
                y = Emulator.dequantize_output(types.SimpleNamespace(h=h), y)
            res.update(inferences=len(ys), output_shape=list(y.shape), output_dtype=str(y.dtype), counters=counters)
            if a.output:
                import io
                buf = io.BytesIO()
                np.save(buf, y)
                write_atomic(a.output, buf.getvalue())
            elif a.json:
                res["output"] = y.tolist()
        if a.reset_counters:
            c.reset_counters()
        if a.stats:
            res["stats"] = c.stats()
        if a.repl:
            c.exit_server()
        res["link"] = c.link
    if a.json:
        print(json.dumps(res, default=lambda o: o.hex() if isinstance(o, bytes) else str(o)))
        return
    b = res["board"]
    print("board on %s: MicroPython %s, protocol %s, heap %d of %d bytes free, card %d blocks"
          % (a.port, b["micropython"], b["protocol"], b["heap_free"], b["heap_total"], b["card_blocks"]))
    if "upload" in res:
        up = res["upload"]
        print("image %s: %s" % (a.image, up["message"] if up["skipped"] else "uploaded %d bytes in %.2f s (from block "
                                "%s), verified on the board" % (up["bytes_sent"], up["seconds"], up["resumed_at"][-1])))
    if "counters" in res:
        cs = res["counters"]
        print("%d inference(s) on the board, output %s %s%s; %d ms on the board each (last); peak SRAM %d of %d"
              % (res["inferences"], "x".join(map(str, res["output_shape"])), res["output_dtype"],
                 " -> " + a.output if a.output else "", cs[-1]["ms"], cs[-1]["peak_sram"], b["sram_budget"]))
        keys = ("bytes_read", "bytes_written", "blocks_read", "blocks_written", "macs", "tiles", "retries")
        print("counters (last inference): " + ", ".join("%s %d" % (k, cs[-1][k]) for k in keys))
        if not a.output:
            print(y)
    if "stats" in res:
        print("board counters%s: " % (" (after the reset)" if a.reset_counters else "")
              + ", ".join("%s %d" % kv for kv in res["stats"].items()))
    elif a.reset_counters:
        print("counters reset (the inference count is the spill nonce: it never goes back)")
    if a.repl:
        print("the board's server stopped: %s is at the MicroPython REPL until the board resets" % a.port)
    ln = res["link"]
    print("link: %d requests, %d resent (%d NAKs, %d damaged, %d timeouts)"
          % (ln["requests"], ln["resends"], ln["naks"], ln["damaged"], ln["timeouts"]))


def cmd_deploy(a):
    from .cli import read_file
    from .hil import deploy
    from .keys import load_key
    key = load_key(a.key) if a.key else None
    image = read_file(a.image, "image") if a.image else None
    up = deploy(a.port, image=image, key=key, arch=a.arch, timeout=a.timeout,
                say=(lambda m: None) if a.json else print)
    if a.json:
        print(json.dumps(dict(port=a.port, key_written=key is not None, upload=up)))
    elif up is not None:
        print("image %s: %s" % (a.image, up["message"] if up["skipped"] else "%d bytes uploaded in %.2f s; %s"
                                % (up["bytes_sent"], up["seconds"], up["message"])))
    if up is not None and up["state"] != "ready":
        raise HostError("the board holds %s but cannot run it: %s" % (a.image, up["message"]))


def cmd_board(a):
    import signal
    from .hil import Board
    b = Board(heap=a.heap, flash=a.flash, card=a.card, card_size=a.card_size, faults=a.faults or None, log=a.log)

    def _term(*_):
        raise KeyboardInterrupt
    for sig in (signal.SIGTERM, signal.SIGINT):      # SIGINT too: a shell starts `board &` with it ignored
        signal.signal(sig, _term)
    try:
        port = b.start()
        print("tileswap board: MicroPython (unix port) with a %d-byte heap on %s" % (a.heap, port))
        print("  flash %s%s\n  card  %s\n  try: tileswap deploy --port %s --image MODEL.tsi --key KEYFILE"
              % (b.flash, "" if a.flash else " (temporary)", b.card, port))
        if a.faults:
            print("  the link drops or corrupts %.2g%% of the bytes" % (100 * a.faults))
        print("Ctrl-C stops it.")
        sys.stdout.flush()
        boots = b.boots
        while True:
            time.sleep(0.2)
            if b.boots != boots:
                boots = b.boots
                sys.stderr.write("tileswap board: reset (boot %d)\n" % boots)
    except KeyboardInterrupt:
        pass
    finally:
        b.stop()


def _port(p):
    p.add_argument("--port", required=True, metavar="PORT", help="serial device (/dev/ttyACM0, the path `tileswap "
                   "board` prints) or a pyserial URL")
    p.add_argument("--timeout", type=float, default=5.0, metavar="S",
                   help="seconds to wait for the board's first answer (default 5)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def args_hil(p):
    p.add_argument("image", nargs="?", metavar="IMAGE.tsi", help="the image to run: uploaded (resumably) unless the "
                   "board's card already holds it")
    _port(p)
    p.add_argument("--input", metavar="IN.npy", help="input array: one inference, or N along the first axis (int8, "
                   "or float32 to quantize)")
    p.add_argument("--output", metavar="OUT.npy", help="write the output array here (atomically)")
    p.add_argument("--stats", action="store_true", help="print the board's counters (card, link, heap)")
    p.add_argument("--reset-counters", action="store_true", help="zero the board's counters (not the inference count)")
    p.add_argument("--repl", action="store_true", help="stop the board's server: the REPL is back (mpremote, a "
                   "terminal) until the board resets and main.py starts the server again")
    p.add_argument("--infer-timeout", type=float, default=600.0, metavar="S",
                   help="seconds one inference may take on the board (default 600)")


def args_deploy(p):
    from .micropython import ARCHS
    _port(p)
    p.add_argument("--image", metavar="IMAGE.tsi", help="also upload this image to the board's card")
    p.add_argument("--key", metavar="KEYFILE", help="write this key to the board's flash (tileswap.key); it crosses "
                   "the link once, in the clear. Without it no key is sent (not even $TILESWAP_KEY)")
    p.add_argument("--arch", choices=ARCHS, help="mpy-cross target (default: asked from the board)")


def args_board(p):
    from .cli import parse_size
    p.add_argument("--heap", type=parse_size, default=256 * 1024, metavar="SIZE",
                   help="MicroPython heap, like a board's RAM (default 256K)")
    p.add_argument("--card", metavar="CARD.img", help="the SD card file (created if missing; default: temporary)")
    p.add_argument("--card-size", type=parse_size, default=64 << 20, metavar="SIZE",
                   help="size of a new card (default 64M; sparse)")
    p.add_argument("--flash", metavar="DIR", help="the board's flash filesystem (default: a fresh temporary folder)")
    p.add_argument("--faults", type=float, default=0.0, metavar="RATE",
                   help="drop or corrupt this fraction of the link's bytes, like a noisy cable (e.g. 0.01)")
    p.add_argument("--log", metavar="FILE", help="append the interpreter's stderr here")


COMMANDS = {
    "hil": (cmd_hil, args_hil,
            "run an image on a board over a serial link (hardware in the loop), or read its counters"),
    "deploy": (cmd_deploy, args_deploy, "install the runtime (and key, and image) on a MicroPython board"),
    "board": (cmd_board, args_board, "emulate a MicroPython board on a pseudo-terminal for hil and deploy"),
}
