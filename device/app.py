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
    # The kernels' code is loaded after the image is open: the arena and tables take the clean heap
    # first, and the load-time code (image checks) is already freed when the kernels arrive.
    rt = Runtime(bdev, key, None, **kw)
    rt.k = kernels()
    return rt


def unix_run(card, key, inp, out, count):
    """Run `count` inferences: inputs back to back in the file `inp`, outputs back to back to `out`; `key`
    is the path of the key file. (Short names: every distinct name is a qstr, kept in the heap.)"""
    import binascii
    import json
    from .storage import FileBlockDevice
    with open(key, "rb") as f:
        key = binascii.unhexlify(f.read().strip())
    rt = open_runtime(FileBlockDevice(card), key)
    del key
    keys = ("bytes_read", "bytes_written", "macs", "tiles")
    names = keys + ("blocks_read", "blocks_written")
    s0 = [0] * 6
    s1 = [0] * 6
    h_in, rb_in = rt.input_rows()
    h_out, rb_out = rt.output_rows()
    row_in = bytearray(rb_in)        # rows stream through: the input and output never sit in RAM whole
    row_out = bytearray(rb_out)
    with open(inp, "rb") as fi, open(out, "wb") as fo:
        for _ in range(count):
            rt.begin_input()
            for r in range(h_in):
                if fi.readinto(row_in) != rb_in:
                    raise ValueError("input file too short")
                rt.write_input_row(r, row_in)
            for s in (s0, s1):
                if s is s1:
                    rt.infer()
                for i in range(4):
                    s[i] = rt.stats[keys[i]]
                s[4] = rt.card.blocks_read
                s[5] = rt.card.blocks_written
            for r in range(h_out):
                rt.read_output_row(r, row_out)
                fo.write(row_out)
            gc.collect()
            # One line per inference, nothing kept: the heap measured here is the runtime's alone.
            print(json.dumps({"counters": dict(zip(names, [b - a for a, b in zip(s0, s1)])),
                              "heap_after_collect": gc.mem_alloc()}))
    print(json.dumps({"peak_sram": rt.arena.peak, "sram_budget": rt.arena.size, "heap_free": gc.mem_free()}))

