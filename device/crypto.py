"""Keys, nonces and tags of the tile image (AES-256-CTR, encrypt-then-MAC with HMAC-SHA256).

Every image gets its own keys, derived from the user's 32-byte master key and the image's random id,
so two images compiled under one key never share a keystream and a tile copied from another image
fails its MAC:

    k_enc   = HMAC(master, "tileswap/enc"   + image_id)     tiles
    k_mac   = HMAC(master, "tileswap/mac"   + image_id)     tiles, spills, header, metadata
    k_spill = HMAC(master, "tileswap/spill" + image_id + salt)   spilled feature maps (salt: new every boot)

CTR counter blocks (16 bytes, big-endian block counter in the last 4 bytes):

    tile  i:                     b"T" 0 0 0 | i (u32) | 0 (u32)       | block counter (u32)
    spill tensor t, inference n: b"S" t (u24) | n (u32) | row (u32)    | block counter (u32)

The inference counter n is persisted on the card before an inference starts, so a spill nonce never
repeats (see docs/security.md). MicroPython has AES-ECB only (`cryptolib.aes(key, 1)`): CTR is the ECB
encryption of successive counter blocks XORed into the data. The host may pass a faster `ctr_xor`.
"""

import hashlib
import struct

try:
    import cryptolib
except ImportError:  # CPython: the host passes its own ctr_xor
    cryptolib = None

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

_IPAD = const(b'6666666666666666666666666666666666666666666666666666666666666666')
_OPAD = const(b'\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\')


_pads = {}      # key -> (key ^ ipad, key ^ opad): a runtime uses a couple of keys for thousands of tags


class Hmac:
    """Incremental HMAC-SHA256 (RFC 2104); MicroPython has hashlib.sha256 but no hmac module."""

    def __init__(self, key, *parts):
        pads = _pads.get(key)
        if pads is None:
            if len(_pads) >= 8:        # bounded: tools that try many keys must not grow it
                _pads.clear()
            k = key + bytes(64 - len(key))
            pads = (bytes(a ^ b for a, b in zip(k, _IPAD)), bytes(a ^ b for a, b in zip(k, _OPAD)))
            _pads[bytes(key)] = pads
        ipad, self._okey = pads
        self._inner = hashlib.sha256(ipad)
        for p in parts:
            self._inner.update(p)

    def update(self, p):
        self._inner.update(p)

    def digest(self):
        outer = hashlib.sha256(self._okey)
        outer.update(self._inner.digest())
        return outer.digest()


def hmac_sha256(key, *parts):
    """HMAC-SHA256 over the concatenation of parts; key at most 64 bytes."""
    return Hmac(key, *parts).digest()


def derive(key, *parts):
    """A key from the master key: HMAC(key, label + parts)."""
    return Hmac(key, *parts).digest()


def key_check(master, image_id):
    """8 bytes stored in the header: tells a wrong key from a tampered header."""
    return derive(master, b"tileswap/kcv", image_id)[:8]


def tile_iv(index):
    return b"T\0\0\0" + struct.pack(">II", index, 0) + bytes(4)


def spill_iv(t, n, row):
    """Tensor t, inference n."""
    return struct.pack(">I", (0x53 << 24) | (t & 0xFFFFFF)) + struct.pack(">II", n & 0xFFFFFFFF, row) + bytes(4)


def tile_tag(k_mac, index, data):
    return hmac_sha256(k_mac, b"T", struct.pack("<II", index, len(data)), data)


def spill_tag(k_mac, card_salt, t, n, row, data):
    """Tensor t, inference n. Binds the boot's salt too: a row encrypted under another boot's k_spill is
    refused, not misread."""
    return Hmac(k_mac, b"S", card_salt, struct.pack("<III", t, n, row), data).digest()


def eq(a, b):
    """Constant-time comparison of two tags."""
    if len(a) != len(b):
        return False
    d = 0
    for x, y in zip(a, b):
        d |= x ^ y
    return d == 0


class EcbCtr:
    """AES-256-CTR from MicroPython's AES-ECB; buffers allocated once, reused for every call."""

    CHUNK = 256

    def __init__(self):
        self._ctr = bytearray(self.CHUNK)
        self._ks = bytearray(self.CHUNK)

    def xor(self, key, iv, buf, n):
        """XOR n bytes of buf (a writable memoryview) with the keystream of (key, iv), in place."""
        aes = cryptolib.aes(key, 1)
        ctr = self._ctr
        ks = self._ks
        blk = 0
        pos = 0
        head = iv[:12]
        while pos < n:
            m = min(self.CHUNK, n - pos)
            nblk = (m + 15) // 16
            for j in range(nblk):
                ctr[j * 16:j * 16 + 12] = head
                struct.pack_into(">I", ctr, j * 16 + 12, blk + j)
            aes.encrypt(ctr, ks)
            _xor_into(buf, pos, ks, m)
            blk += nblk
            pos += m


def _xor_into(buf, pos, k, m):
    for i in range(m):
        buf[pos + i] ^= k[i]


try:  # MicroPython: the XOR in viper (native pointer code), one of the hot loops of the runtime
    import micropython

    @micropython.viper
    def _xor_into(buf, pos: int, k, m: int):     # same name: a second name would be one more qstr
        b = ptr8(buf)
        kp = ptr8(k)
        for i in range(m):
            b[pos + i] = b[pos + i] ^ kp[i]
except (ImportError, AttributeError, SyntaxError, NameError):
    pass
