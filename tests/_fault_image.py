"""For tests: editing tile images the way an attacker (or a damaged card) would.

An attacker without the key can change any byte and recompute any CRC (CRC32 is linear: `forge_crc`
fixes four bytes so a changed block keeps its old CRC), but cannot compute a MAC. `remac` is what only
a key holder can do (a buggy tiler, or a malicious one with the key): it makes edited tables authentic.
"""

import binascii
import struct

from tileswap.device import crypto as C
from tileswap.device import format as F


def header(image):
    return F.unpack_named(F.HDR_FMT, F.HDR_FIELDS, image)


def tile_records(image):
    """[(record position in the image, offset in image, length, crc)] for every tile."""
    h = header(image)
    first = F.BLOCK + h["meta_len"] - h["n_tiles"] * F.TILE_SIZE
    out = []
    for i in range(h["n_tiles"]):
        pos = first + i * F.TILE_SIZE
        off, length, crc, _ = struct.unpack_from(F.TILE_FMT, image, pos)
        out.append((pos, h["payload_block"] * F.BLOCK + off, length, crc))
    return out


def crc32(data):
    return binascii.crc32(bytes(data)) & 0xFFFFFFFF


def forge_crc(data, pos, target):
    """Change data[pos:pos+4] (a bytearray, in place) so that crc32(data) == target.

    CRC32 is affine over GF(2): flipping a set of bits changes the CRC by the XOR of what each bit
    alone changes it by. Solve for the 32 bits of the window with Gaussian elimination."""
    base = crc32(data)
    cols = []
    for b in range(32):
        d = bytearray(data)
        d[pos + b // 8] ^= 1 << (b % 8)
        cols.append(crc32(d) ^ base)
    want = base ^ target
    rows = list(range(32))                 # bit b of the window -> its column, with a record of combos
    basis = []                             # (pivot bit, vector, combination of window bits)
    for b in rows:
        v, comb = cols[b], 1 << b
        for pivot, bv, bc in basis:
            if v >> pivot & 1:
                v ^= bv
                comb ^= bc
        if v:
            basis.append((v.bit_length() - 1, v, comb))
    comb = 0
    for pivot, bv, bc in sorted(basis, reverse=True):
        if want >> pivot & 1:
            want ^= bv
            comb ^= bc
    assert want == 0, "CRC window not invertible"
    for b in range(32):
        if comb >> b & 1:
            data[pos + b // 8] ^= 1 << (b % 8)
    assert crc32(data) == target
    return data


def keep_meta_crc(image):
    """Forge the last 4 bytes of the tables (reserved bytes of the last tile record) so the tables keep
    the CRC the (authenticated) header records: the edit gets past the header MAC and the CRC, and only
    the tables' MAC is left to refuse it."""
    img = bytearray(image)
    h = header(img)
    meta = bytearray(img[F.BLOCK:F.BLOCK + h["meta_len"]])
    img[F.BLOCK:F.BLOCK + h["meta_len"]] = forge_crc(meta, len(meta) - 4, h["meta_crc"])
    return img


def fix_meta_crc(image):
    """Recompute the tables' CRC in the header (what an attacker can do; the MACs stay stale)."""
    img = bytearray(image)
    h = header(img)
    h["meta_crc"] = crc32(img[F.BLOCK:F.BLOCK + h["meta_len"]])
    img[:F.HDR_SIZE] = F.pack_named(F.HDR_FMT, F.HDR_FIELDS, h)
    return img


def remac(image, key):
    """Make header and tables authentic again under `key` (only a key holder can do this)."""
    img = fix_meta_crc(image)
    h = header(img)
    k_mac = C.derive(key, b"tileswap/mac", bytes(h["image_id"]))
    meta = bytes(img[F.BLOCK:F.BLOCK + h["meta_len"]])
    img[F.HDR_META_MAC:F.HDR_MAC] = C.hmac_sha256(k_mac, b"M", meta)
    img[F.HDR_MAC:F.HDR_END] = C.hmac_sha256(k_mac, b"H", bytes(img[:F.HDR_MAC]))
    return img


def set_header(image, key=None, **fields):
    """Change header fields; with `key`, re-authenticate (else the header MAC is stale)."""
    img = bytearray(image)
    h = header(img)
    h.update(fields)
    img[:F.HDR_SIZE] = F.pack_named(F.HDR_FMT, F.HDR_FIELDS, h)
    return remac(img, key) if key is not None else img
