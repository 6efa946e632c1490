"""The tile image format, version 1: constants and record layouts (spec: docs/format.md).

The tiler writes these records; the device reads them. Everything is little-endian and block aligned
(512-byte blocks). Runs on MicroPython and CPython (only `struct`).
"""

import struct

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

MAGIC = b"TSWP"
VERSION = const(1)
BLOCK = const(512)
TAG_LEN = const(32)          # HMAC-SHA256 tag
ID_LEN = const(16)

# Header (block 0). Offsets are bytes within the header block.
HDR_FMT = "<4sHHI16s32sIIIIIIIIIIIIIIIfifiBBHIIII"
HDR_FIELDS = (
    "magic", "version", "header_len", "flags", "image_id", "model_sha256", "sram_budget", "erase_block",
    "meta_block", "meta_len", "payload_block", "payload_blocks", "spill_block", "spill_blocks",
    "counter_block", "counter_blocks", "total_blocks", "n_tensors", "n_ops", "n_tiles", "meta_crc",
    "in_scale", "in_zp", "out_scale", "out_zp", "in_float", "out_float", "reserved",
    "min_sram", "io_min", "spill_bytes",       # the planner's figures, for `tileswap plan`
    "image_version",                           # monotonic: a device refuses an older one (rollback)
)
MAX_P = const(64)                    # parameters per op, at most
HDR_SIZE = struct.calcsize(HDR_FMT)
HDR_KCV = HDR_SIZE                   # 8-byte key check value: HMAC(master, "tileswap/kcv" + id)[:8]
HDR_META_MAC = HDR_KCV + 8           # HMAC over the metadata bytes
HDR_MAC = HDR_META_MAC + TAG_LEN     # HMAC over header bytes [0, HDR_MAC)
HDR_END = HDR_MAC + TAG_LEN

FLAG_AUTH = const(1)                 # tiles and spills are AES-256-CTR encrypted and HMAC-SHA256 tagged

# Tensor records (metadata, fixed size). kind: where the tensor's bytes live.
T_ARENA = const(0)                   # resident in the SRAM arena at arena_off
T_SPILL = const(1)                   # spilled to the card's scratch region, one slot per row
T_INPUT = const(2)                   # the model input, written to the card by set_input()
T_OUTPUT = const(3)                  # the model output, read back from the card by read_output()
T_CHAIN = const(4)                   # inside a fused chain: only bands of it exist, in a buffer at arena_off
T_FMT = "<BBHIIIIIIi"                # kind, flags, base (alias of; own index if none), h, w, c,
T_SIZE = const(32)                   # arena_off, spill_blk (relative to spill region), slot_blocks, zp
TF_CHUNKED = const(1)                # flags: a T_SPILL stored in channel chunks: arena_off holds the
                                     # channels per unit; row r's unit u sits in slot r * (c / chunk) + u

# Op records: a fixed part, N_BUFS u32 scratch offsets, then n_p int32 parameters.
OP_FMT = "<BBBBHHHHHHHHHHIIIIQ"
OP_FIELDS = (
    "kind", "n_in", "n_p", "flags", "out", "in0", "in1", "in2", "in3", "band_rows", "n_bands", "group",
    "n_groups", "pad_t", "first_tile",
    "peak", "io_read", "io_write", "macs",     # the planner's figures, for `tileswap plan`
)
OP_SIZE = struct.calcsize(OP_FMT)
OPF_CHAIN = const(1)                 # flags: the next op consumes this op's output band by band (fused)
OPF_SPLIT_OUT = const(2)             # ... one channel group at a time: the output buffer holds one group
OPF_SPLIT_IN = const(4)              # this op consumes the previous op's groups as they are produced
OPF_KSPLIT = const(16)               # a 1x1 convolution summing its channel-chunked input chunk by chunk:
                                     # n_groups x (input chunks) tiles, group-major (device/ops.py)
OPF_WRES = const(8)                  # a chain member loading all its group tiles at chain start, kept
                                     # one after another (8-byte aligned) from its weight buffer
OPF_ALL = const(31)                  # every op flag above (validation refuses others)
BUF_NAMES = ("in0", "in1", "in2", "in3", "w", "out", "acc")
N_BUFS = const(7)
NO_BUF = const(0xFFFFFFFF)           # "no scratch buffer": the operand is read or written in place

# Tile records: payload location and integrity.
TILE_FMT = "<IIII"                   # offset (bytes, from the payload region), length, crc32, reserved
TILE_SIZE = const(64)                # ... then the 32-byte HMAC tag, then 16 reserved bytes (8 per block)
STAGING = const(1024)                # arena bytes for partial blocks (a row's tail plus its tag)

# Counter region: two alternating one-block records (power-loss safe: the newer valid one wins).
CTR_FMT = "<4sIQQQQQQQQ8s"
CTR_FIELDS = (
    "magic", "seq", "inferences", "bytes_read", "bytes_written", "blocks_read", "blocks_written", "macs",
    "tiles", "retries", "card_salt",
)
CTR_MAGIC = b"TSCR"


def unpack_named(fmt, fields, buf, off=0):
    return dict(zip(fields, struct.unpack_from(fmt, buf, off)))


def pack_named(fmt, fields, values):
    return struct.pack(fmt, *[values[f] for f in fields])


def blocks_for(nbytes):
    return (nbytes + BLOCK - 1) // BLOCK


def slot_blocks(row_bytes):
    """Card blocks one spilled row occupies: the row, its tag, padding to a block."""
    return (row_bytes + TAG_LEN + BLOCK - 1) // BLOCK
