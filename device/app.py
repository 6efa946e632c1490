"""Entry points for MicroPython: a board's own program, and the unix port driven by the host.

On a board (see docs/boards.md):

    import tileswap_device.app as app
    rt = app.open_runtime(sdcard_blockdev, key)      # verifies the image on the card
    rt.set_input(frame); rt.infer(); rt.read_output(scores)

From the host (`tileswap run --runtime micropython`), `unix_run()` runs inferences on a card file and
reports results as one JSON line on stdout.
"""

import gc

from .runtime import Runtime


def kernels():
    """The fastest kernels this firmware has: the C module if built in, else viper."""
    try:
        import tskernels            # the C kernels as a MicroPython module (native/micropython/)
        return tskernels.Kernels()
    except ImportError:
        from .kernels_viper import Kernels
        return Kernels()


def open_runtime(bdev, key, **kw):
    return Runtime(bdev, key, kernels(), **kw)


def unix_run(card, key_path, in_path, out_path, count):
    """Run `count` inferences: inputs back to back in in_path, outputs back to back to out_path."""
    import binascii
    import json
    from .storage import FileBlockDevice
    with open(key_path, "rb") as f:
        key = binascii.unhexlify(f.read().strip())
    rt = open_runtime(FileBlockDevice(card), key)
    del key
    n_in, n_out = rt.input_size(), rt.output_size()
    inp = bytearray(n_in)
    out = bytearray(n_out)
    keys = ("bytes_read", "bytes_written", "macs", "tiles")
    per = []
    heap = []
    with open(in_path, "rb") as fi, open(out_path, "wb") as fo:
        for _ in range(count):
            if fi.readinto(inp) != n_in:
                raise ValueError("input file too short")
            rt.set_input(inp)
            c = rt.card
            s0 = [rt.stats[k] for k in keys] + [c.blocks_read, c.blocks_written]
            rt.infer()
            s1 = [rt.stats[k] for k in keys] + [c.blocks_read, c.blocks_written]
            rt.read_output(out)
            fo.write(out)
            per.append([b - a for a, b in zip(s0, s1)])
            gc.collect()
            heap.append(gc.mem_alloc())
    names = keys + ("blocks_read", "blocks_written")
    print(json.dumps({"counters": [dict(zip(names, v)) for v in per], "peak_sram": rt.arena.peak,
                      "sram_budget": rt.arena.size, "heap_after_collect": heap,
                      "heap_free": gc.mem_free()}))
