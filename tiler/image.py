"""Write a tile image (format v1, docs/format.md) from a plan. `build_image` returns bytes; no I/O.

Card layout in 512-byte blocks: header | metadata (tensors, ops, tiles) | payloads | spill region |
counter region. The image file holds the first three; the spill and counter regions are only reserved
(`total_blocks` in the header tells how large the card must be).
"""

import binascii
import hashlib
import os
import struct

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .quant import pack_weights_payload
from ..device import crypto as C
from ..device import format as F
from ..device import opdefs as D

COUNTER_BLOCKS = 2


_aes = {}       # key -> algorithms.AES: the key schedule is built once per key


def ctr_xor(key, iv, data):
    """AES-256-CTR (the host's fast path; the device builds the same keystream from AES-ECB)."""
    alg = _aes.get(key)
    if alg is None:
        if len(_aes) >= 8:
            _aes.clear()
        alg = _aes[bytes(key)] = algorithms.AES(bytes(key))
    enc = Cipher(alg, modes.CTR(bytes(iv))).encryptor()
    return enc.update(bytes(data)) + enc.finalize()


def pack_payload(op, c0, c1):
    """Weight tile for output channels [c0, c1), in the layout of quant.pack_weights_payload."""
    f = op.filt[c0:c1]
    if op.kind == D.OP_DWCONV:
        f = np.transpose(f, (1, 2, 0))           # [O,KH,KW] -> [KH,KW,g]
    return pack_weights_payload(f, op.bias[c0:c1], op.mult[c0:c1], op.shift[c0:c1])


def pack_ksplit(op, c0, c1, ch):
    """A K-split 1x1 convolution's tiles for output channels [c0, c1), one per input chunk of ch
    channels: filter [g][ch] padded to 4 bytes; the last also carries bias, mult and shift
    (tiler/plan.py ksplit_tiles)."""
    f = op.filt[c0:c1].reshape(c1 - c0, -1)
    n = f.shape[1] // ch
    out = []
    for u in range(n):
        part = f[:, u * ch:(u + 1) * ch]
        if u == n - 1:
            out.append(pack_weights_payload(part, op.bias[c0:c1], op.mult[c0:c1], op.shift[c0:c1]))
        else:
            b = np.ascontiguousarray(part, dtype=np.int8).tobytes()
            out.append(b + bytes(-len(b) % 4))
    return out


def build_image(plan, *, master_key, model_bytes, erase_block=65536, image_id=None, image_version=1, progress=None):
    """Plan -> (image bytes, summary dict). `master_key` is 32 bytes and never enters the image."""
    if len(master_key) != 32:
        raise ValueError("the master key must be 32 bytes")
    L = plan.L
    image_id = image_id or os.urandom(F.ID_LEN)
    k_enc = C.derive(master_key, b"tileswap/enc", image_id)
    k_mac = C.derive(master_key, b"tileswap/mac", image_id)

    # Spill region: one slot per row for every base tensor that lives on the card, or per unit of a
    # channel-chunked row (a unit holds `chunk` channels of every pixel of the row).
    spill = {}
    nblk = 0
    for b in sorted(plan.kind):
        if plan.kind[b] in (F.T_SPILL, F.T_INPUT, F.T_OUTPUT):
            t = L.tensors[b]
            spill[b] = nblk
            ch = plan.chunk.get(b, t.c)
            nblk += t.h * (t.c // ch) * F.slot_blocks(t.w * ch)

    trec = bytearray()
    for t in L.tensors:
        base = L.tensors[t.base]
        kind = plan.kind[t.base]
        ch = plan.chunk.get(t.id, 0)      # (a view's record points at its chunked base)
        off = plan.chain_off[t.base] if kind == F.T_CHAIN else plan.arena_off.get(t.base, ch or F.NO_BUF)
        trec += struct.pack(F.T_FMT, kind, F.TF_CHUNKED if ch else 0, t.base, t.h, t.w, t.c, off,
                            spill.get(t.base, F.NO_BUF), F.slot_blocks(base.w * ch if ch else base.row_bytes), t.zp)

    payloads = []
    orec = bytearray()
    for opl in plan.ops:
        op = opl.op
        ins = list(op.ins) + [0xFFFF] * (4 - len(op.ins))
        pad_t = op.geom.get("pad_t", 0)
        flags = (F.OPF_CHAIN if opl.chained else 0) | {"out": F.OPF_SPLIT_OUT, "in": F.OPF_SPLIT_IN}.get(opl.split, 0)
        flags |= (F.OPF_WRES if opl.wres else 0) | (F.OPF_KSPLIT if opl.ksplit else 0)
        p = opl.p if opl.p is not None else op.p
        orec += struct.pack(F.OP_FMT, op.kind, len(op.ins), len(p), flags, op.out, *ins, opl.band_rows,
                            opl.n_bands, opl.group, opl.n_groups, pad_t, opl.first_tile,
                            opl.top + opl.scratch, opl.read, opl.written, opl.macs)
        orec += struct.pack("<%dI" % F.N_BUFS, *[opl.bufs.get(n, (F.NO_BUF, 0))[0] for n in F.BUF_NAMES])
        orec += struct.pack("<%di" % len(p), *p)
        if opl.first_tile != F.NO_BUF:
            cout = len(op.mult)
            for c0 in range(0, cout, opl.group):
                if opl.ksplit:
                    payloads += pack_ksplit(op, c0, min(cout, c0 + opl.group), opl.ksplit)
                else:
                    payloads.append(pack_payload(op, c0, min(cout, c0 + opl.group)))

    tiles = bytearray()
    body = bytearray()
    for i, pl in enumerate(payloads):
        if progress and i % 16 == 0:
            progress(i, len(payloads))
        ct = ctr_xor(k_enc, C.tile_iv(i), pl)
        off = len(body)
        body += ct + bytes((-len(ct)) % F.BLOCK)
        tiles += struct.pack(F.TILE_FMT, off, len(ct), binascii.crc32(ct) & 0xFFFFFFFF, 0)
        tiles += C.tile_tag(k_mac, i, ct) + bytes(F.TILE_SIZE - 16 - F.TAG_LEN)

    # The tile table starts on a block boundary so the device can read one record with one block read.
    head_meta = bytes(trec + orec)
    head_meta += bytes((-len(head_meta)) % F.BLOCK)
    meta = head_meta + bytes(tiles)
    meta_blocks = F.blocks_for(len(meta))
    payload_block = 1 + meta_blocks
    payload_blocks = len(body) // F.BLOCK
    # Spill ring and counter records each start on an erase-block boundary and fill whole erase blocks:
    # the runtime rotates the ring by one erase block per inference (wear levelling, docs/format.md),
    # and the twice-written counter records stay out of the erase blocks the ring cycles through.
    per = max(1, erase_block // F.BLOCK)
    spill_block = -(-(payload_block + payload_blocks) // per) * per
    nblk = max(per, -(-nblk // per) * per) if nblk else 0
    counter_block = spill_block + nblk
    hdr = dict(
        magic=F.MAGIC, version=F.VERSION, header_len=F.BLOCK, flags=F.FLAG_AUTH, image_id=image_id,
        model_sha256=hashlib.sha256(model_bytes).digest(), sram_budget=plan.budget, erase_block=erase_block,
        meta_block=1, meta_len=len(meta), payload_block=payload_block, payload_blocks=payload_blocks,
        spill_block=spill_block, spill_blocks=nblk, counter_block=counter_block, counter_blocks=COUNTER_BLOCKS,
        total_blocks=counter_block + COUNTER_BLOCKS, n_tensors=len(L.tensors), n_ops=len(plan.ops),
        n_tiles=len(payloads), meta_crc=binascii.crc32(meta) & 0xFFFFFFFF,
        in_scale=L.in_q[0], in_zp=L.in_q[1], out_scale=L.out_q[0], out_zp=L.out_q[1],
        in_float=int(L.in_float), out_float=int(L.out_float), reserved=0,
        min_sram=plan.min_sram, io_min=plan.io_min, spill_bytes=plan.spill_bytes, image_version=image_version,
    )
    head = bytearray(F.BLOCK)
    head[:F.HDR_SIZE] = F.pack_named(F.HDR_FMT, F.HDR_FIELDS, hdr)
    head[F.HDR_KCV:F.HDR_KCV + 8] = C.key_check(master_key, image_id)
    head[F.HDR_META_MAC:F.HDR_MAC] = C.hmac_sha256(k_mac, b"M", meta)
    head[F.HDR_MAC:F.HDR_END] = C.hmac_sha256(k_mac, b"H", bytes(head[:F.HDR_MAC]))
    image = bytes(head) + meta + bytes(meta_blocks * F.BLOCK - len(meta)) + bytes(body)
    summary = dict(image_bytes=len(image), tiles=len(payloads), spill_blocks=nblk,
                   weight_bytes=sum(len(p) for p in payloads), image_id=image_id.hex())
    return image, summary
