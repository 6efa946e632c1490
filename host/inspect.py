"""`tileswap plan`: what an image will do, read from the image itself (no model needed)."""

from ..device import DeviceError
from ..device import format as F
from ..device import opdefs as D
from ..device.image import Image
from ..device.storage import BytesBlockDevice, Card
from .emulator import header
from .errors import HostError

_WHERE = {F.T_ARENA: "sram", F.T_SPILL: "card", F.T_INPUT: "card (input)", F.T_OUTPUT: "card (output)",
          F.T_CHAIN: "fused (bands)"}
# How an op runs (docs/format.md, op flags): the plan view's last column.
_MODES = ((F.OPF_SPLIT_OUT, "groups into the next op"), (F.OPF_SPLIT_IN, "by the previous op's groups"),
          (F.OPF_WRES, "keeps its group tiles"), (F.OPF_KSPLIT, "K-split over input chunks"))


def plan_info(image, key=None):
    """JSON-ready summary of the plan stored in `image`. With a key, the header and tables are
    authenticated first; without one they are only CRC-checked."""
    h = header(image, whole=False)
    dev = BytesBlockDevice(bytes(image) + bytes(max(0, h["total_blocks"] * F.BLOCK - len(image))))
    block = memoryview(bytearray(F.BLOCK))
    try:
        img = Image(Card(dev), key, block, verify=key is not None)
    except DeviceError as e:
        raise HostError(str(e)) from None
    weight = 0
    for i in range(h["n_tiles"]):
        weight += img.tile_record(i, block)[1]
    ops = []
    tiles = 0
    for i, op in enumerate(img.ops):
        t = img.tensors[op.out]
        peak, rd, wr, macs = op.planned
        n = op.n_bands * op.n_groups
        if op.flags & F.OPF_KSPLIT:           # a tile per output group and input chunk
            tin = img.tensors[op.ins[0]]
            n *= tin[5] // tin[6]
        tiles += n
        base = img.tensors[t[2]]
        where = _WHERE[base[0]] + (" (chunks of %d)" % base[6] if base[1] & F.TF_CHUNKED else "")
        mode = [name for flag, name in _MODES if op.flags & flag]
        if op.flags & F.OPF_KSPLIT and op.bufs[5] == op.bufs[6]:
            mode.append("output over its sums")
        ops.append(dict(index=i, op=D.OP_NAMES.get(op.kind, str(op.kind)), out_shape=[t[3], t[4], t[5]],
                        output_in=where, band_rows=op.band_rows, bands=op.n_bands,
                        group=op.group, groups=op.n_groups, tiles=n, peak_sram=peak, io_read_bytes=rd,
                        io_write_bytes=wr, macs=macs, mode=", ".join(mode)))
    rd, wr = sum(o["io_read_bytes"] for o in ops), sum(o["io_write_bytes"] for o in ops)
    return dict(
        format_version=h["version"], image_version=h["image_version"], image_id=bytes(h["image_id"]).hex(),
        authenticated=key is not None,
        sram_budget=h["sram_budget"], peak_sram=max([F.STAGING] + [o["peak_sram"] for o in ops]),
        min_sram=h["min_sram"], weight_bytes=weight, io_read_bytes=rd, io_write_bytes=wr,
        io_min_bytes=h["io_min"], spill_bytes=h["spill_bytes"],
        io_amplification=round((rd + wr) / h["io_min"], 4) if h["io_min"] else None,
        macs=sum(o["macs"] for o in ops), tiles=tiles,
        tile_records=h["n_tiles"], image_bytes=len(image), card_bytes=h["total_blocks"] * F.BLOCK,
        spill_region_bytes=h["spill_blocks"] * F.BLOCK, input_float=bool(h["in_float"]), output_float=bool(h["out_float"]),
        ops=ops)
