"""Card commands and blocks per op, as the runtime issues them: the IO input of the cost model (cost.py).

The card moves whole 512-byte blocks, and every command pays a latency, so bytes alone (the plan's
io_read_bytes / io_write_bytes) are not enough. Two ways to count:

- `image_io(image)` runs the runtime's own schedule (device/ops.py: single ops and fused chains, bands
  outside, channel groups inside) over the image's tables with no-op kernels, counting what its card
  primitives would issue. Exact; the tests compare it with what the emulated card saw.
- `estimate_io(ops)` works from `plan_info`'s per-op figures alone, when only those are at hand: it takes
  every transfer as a whole row (or tile), so it is exact for output rows and weight tiles of plans
  without channel-chunked spills, K-split ops or kept group tiles, and approximate otherwise (a chunked
  row moves as several one- or two-block units) and for input rows (their size is taken from the
  previous op's output row, which holds for chains of single-input ops). `tileswap plan --board` with
  the image uses `image_io`.

A transfer of n bytes (a spilled row plus its 32-byte tag, or a weight tile) is one command for its full
blocks and one for its last, partial block (through the staging blocks); a tile load also reads its
64-byte record, one block.
"""

from ..device import DeviceError
from ..device import format as F
from ..device import opdefs as D
from ..device import ops as O
from ..device.arena import STAGING, Arena
from ..device.image import Image
from ..device.runtime import Runtime
from ..device.storage import BytesBlockDevice, Card
from .errors import HostError

FIELDS = ("read_cmds", "read_blocks", "write_cmds", "write_blocks", "tile_bytes", "macs_run", "macs_once")
COUNTER_SAVES = 2        # counter-record saves per inference (set_input, end of infer): 1 block written, read back
_WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def row_xfer(row_bytes):
    """(commands, blocks) to read or write one spilled row: its full blocks, then tail + tag."""
    full = row_bytes // F.BLOCK
    return (1 if full else 0) + 1, full + F.blocks_for(row_bytes - full * F.BLOCK + F.TAG_LEN)


def tile_xfer(n):
    """(commands, blocks) to load a weight tile of n bytes: its record block, full blocks, partial tail."""
    full, tail = divmod(n, F.BLOCK)
    return 1 + (1 if full else 0) + (1 if tail else 0), 1 + full + (1 if tail else 0)


class _DryRun:
    """Stands in for device.runtime.Runtime: the real schedule (device/ops.py) runs with no-op kernels,
    and the card I/O primitives only count the commands and blocks the runtime would issue."""

    _fetch = Runtime._fetch          # the runtime's own: resident, chain-buffer or card rows
    _read_whole_row = Runtime._read_whole_row    # ... rows, or the units of channel-chunked rows

    def __init__(self, img, tiles):
        self.img, self.T, self.tiles = img, img.tensors, tiles
        self.arena = Arena(img.h["sram_budget"])
        self.arena.claim(STAGING, 0, F.STAGING)
        self.mv = self.arena.mv
        self.k = _NoKernels()
        self.stats = dict.fromkeys(("bytes_read", "bytes_written", "macs", "tiles"), 0)
        self.chain_start = {}
        self.held = {}
        self.on_rows = None
        self.counts = [dict.fromkeys(FIELDS, 0) for _ in img.ops]
        self.cur = 0

    def _add(self, kind, xfer):
        c = self.counts[self.cur]
        c[kind + "_cmds"] += xfer[0]
        c[kind + "_blocks"] += xfer[1]

    def _read_row(self, base, r, dst, off, rb=0):
        if off == 0 and dst is self.mv:         # a chunk unit, one command into the staging blocks
            self._add("read", (1, F.blocks_for(rb + F.TAG_LEN)))
        else:
            self._add("read", row_xfer(rb or self.T[base][4] * self.T[base][5]))

    def _write_row(self, tid, r, src, off, rb=0):
        self._add("write", row_xfer(rb or self.T[tid][4] * self.T[tid][5]))

    def _load_tile(self, i, off, op_index):
        n = self.tiles[i]
        self._add("read", tile_xfer(n))
        self.counts[self.cur]["tile_bytes"] += n
        return self.mv[off:off]


class _NoKernels:
    def __getattr__(self, name):
        return lambda *args: None


def image_io(image):
    """Per op, a dict of FIELDS for one inference, from replaying the runtime's schedule: card commands
    and blocks, weight-tile bytes, MACs run (with the halo rows fused chains recompute) and MACs once
    (without them). The counter-record saves are not included (COUNTER_SAVES)."""
    from .emulator import header
    h = header(image)
    dev = BytesBlockDevice(bytes(image) + bytes(max(0, h["total_blocks"] * F.BLOCK - len(image))))
    block = memoryview(bytearray(F.BLOCK))
    try:
        img = Image(Card(dev), None, block, verify=False)
        rt = _DryRun(img, [img.tile_record(i, block)[1] for i in range(h["n_tiles"])])
        ops = img.ops
        run_band = O.run_band

        def counted(rt_, st, *args):              # attributes I/O and MACs to the op of each band
            rt.cur = st.i
            m = rt.stats["macs"]
            run_band(rt_, st, *args)
            rt.counts[st.i]["macs_run"] += rt.stats["macs"] - m
        run_ksplit = O.run_ksplit

        def counted_k(rt_, st):
            rt.cur = st.i
            m = rt.stats["macs"]
            run_ksplit(rt_, st)
            rt.counts[st.i]["macs_run"] += rt.stats["macs"] - m
        O.run_band = counted
        O.run_ksplit = counted_k
        try:
            i = 0
            while i < len(ops):                    # as Runtime.infer: single ops, or fused chains
                j = i
                while ops[j].flags & F.OPF_CHAIN and j + 1 < len(ops):
                    j += 1
                if j == i:
                    O.run_op(rt, i, ops[i])
                else:
                    O.run_chain(rt, [(k, ops[k]) for k in range(i, j + 1)])
                rt.arena.release_all(STAGING)
                rt.held.clear()
                i = j + 1
        finally:
            O.run_band = run_band
            O.run_ksplit = run_ksplit
    except (DeviceError, ValueError) as e:
        raise HostError("cannot replay the image's schedule: %s" % e) from None
    for op, c in zip(ops, rt.counts):
        c["macs_once"] = _macs_once(img.tensors, op)
    return rt.counts


def _macs_once(T, op):
    out, p = T[op.out], op.p
    if op.kind == D.OP_CONV:
        return out[3] * out[4] * out[5] * p[D.P_KH] * p[D.P_KW] * T[op.ins[0]][5]
    if op.kind == D.OP_DWCONV:
        return out[3] * out[4] * out[5] * p[D.P_KH] * p[D.P_KW]
    if op.kind == D.OP_FC:
        t = T[op.ins[0]]
        return t[3] * t[4] * t[5] * p[D.PF_OUT_C]
    return 0


def estimate_io(ops):
    """Per op, the same dict estimated from plan_info's per-op figures (see the module docstring)."""
    res = []
    prev_row = None
    for o in ops:
        h, w, ch = o["out_shape"]
        c = dict.fromkeys(FIELDS, 0)
        c["macs_run"] = c["macs_once"] = o["macs"]
        rb = w * ch
        if o["io_write_bytes"]:
            rows = o["io_write_bytes"] // (rb + F.TAG_LEN)
            cmds, blocks = row_xfer(rb)
            c["write_cmds"], c["write_blocks"] = rows * cmds, rows * blocks
        rd = o["io_read_bytes"]
        if o["op"] in _WEIGHTED and o["macs"]:
            per = o["macs"] // max(1, h * w * ch)          # filter bytes of one output channel
            passes = o["bands"] if o["groups"] > 1 else 1
            for i in range(o["groups"]):
                g = min(o["group"], ch - i * o["group"]) if ch > i * o["group"] else o["group"]
                n = (g * per + 3) // 4 * 4 + 12 * g
                cmds, blocks = tile_xfer(n)
                c["read_cmds"] += passes * cmds
                c["read_blocks"] += passes * blocks
                c["tile_bytes"] += passes * n
                rd -= passes * (n + F.TILE_SIZE)
        row = prev_row or rb
        if rd > 0:
            rows = -(-rd // (row + F.TAG_LEN))
            cmds, blocks = row_xfer(row)
            c["read_cmds"] += rows * cmds
            c["read_blocks"] += rows * blocks
        prev_row = rb
        res.append(c)
    return res
