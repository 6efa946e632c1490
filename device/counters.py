"""Counters persisted on the card in two alternating one-block records (power-loss safe).

Each record carries a sequence number and a CRC32. A save goes to the slot not holding the newest valid
record, so a write torn by power loss damages only that slot and the previous record survives: at most
the interrupted update is lost. A save is read back before it counts, so a card that silently drops or
tears a write is caught at once (and the write retried) instead of leaving one good record behind
while the next save overwrites it. A slot that fails its CRC on load is read again first: a bit flipped
on the bus must not roll the counters back.

The inference counter is the spill nonce; it is saved before an inference starts. The card salt, which
keys the spilled feature maps together with the image, is drawn afresh at every load (every boot): a
rolled-back, forged or damaged counter record can then never bring back a (key, nonce) pair already
used (docs/security.md). The salt is written into the record with the next save, which happens before
anything is encrypted under it.
"""

import binascii
import struct

from . import CardError

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

# Copies of format.py / opdefs.py (private consts take no RAM in a .mpy; tests check they agree)
_CTR_FMT = const('<4sIQQQQQQQQ8s')
_CTR_MAGIC = const(b'TSCR')


FIELDS = ("inferences", "bytes_read", "bytes_written", "blocks_read", "blocks_written", "macs", "tiles", "retries")
_REREADS = const(3)
_SIZE = const(80)               # struct.calcsize(_CTR_FMT)


def _parse(block):
    """The record in a 512-byte block as a tuple (format.CTR_FIELDS order), or None if it is not a valid
    record (magic, CRC)."""
    if bytes(block[0:4]) != _CTR_MAGIC:
        return None
    crc = struct.unpack_from("<I", block, _SIZE)[0]
    if binascii.crc32(block[:_SIZE]) & 0xFFFFFFFF != crc:
        return None
    return struct.unpack_from(_CTR_FMT, block)


def parse_record(block):
    """The record in a 512-byte block as a dict (host tools), or None if it is not a valid record."""
    from . import format as F
    rec = _parse(block)
    return None if rec is None else dict(zip(F.CTR_FIELDS, rec))


class Counters:
    def __init__(self, card, first, block, urandom):
        """Load the newest valid record from the card (or start fresh); draw this boot's card salt."""
        self.card = card
        self.first = first
        self._blk = block
        self.v = dict((f, 0) for f in FIELDS)
        self.seq = 0
        self.slot = 1
        self.card_salt = bytes(urandom(8))
        best = None
        failed = 0
        for s in (0, 1):
            rec = None
            for _ in range(_REREADS):
                try:
                    card.read(first + s, block)
                except CardError:
                    failed += 1
                    break
                rec = _parse(block)
                if rec is not None or not any(block):
                    break                    # valid, or never written (all zeros): nothing to re-read
            if rec is not None and (best is None or rec[1] > best[1][1]):
                best = (s, rec)
        if failed == 2:
            raise CardError("neither counter record (card blocks %d and %d) can be read: the card is failing there"
                            % (first, first + 1))
        if best is not None:
            self.slot, rec = best
            self.seq = rec[1]
            for i in range(len(FIELDS)):
                self.v[FIELDS[i]] = rec[2 + i]

    def save(self):
        """Write the counters to the other slot, then read them back; a bad write is retried, then refused."""
        self.seq += 1
        self.slot ^= 1
        v = self.v
        raw = struct.pack(_CTR_FMT, _CTR_MAGIC, self.seq, v["inferences"], v["bytes_read"], v["bytes_written"],
                          v["blocks_read"], v["blocks_written"], v["macs"], v["tiles"], v["retries"], self.card_salt)
        crc = binascii.crc32(raw) & 0xFFFFFFFF
        b = self._blk
        blk = self.first + self.slot
        for _ in range(_REREADS):
            for i in range(len(b)):
                b[i] = 0
            b[:len(raw)] = raw
            struct.pack_into("<I", b, len(raw), crc)
            try:
                self.card.write(blk, b)
                self.card.sync()
                self.card.read(blk, b)
            except CardError as e:
                raise CardError("saving the counter record: %s" % e)
            if bytes(b[:len(raw)]) == raw and struct.unpack_from("<I", b, len(raw))[0] == crc:
                return
            self.card.retries += 1
        raise CardError("the counter record at card block %d does not read back what was written (%d attempts): "
                        "the card is failing there" % (blk, _REREADS))
