"""Counters persisted on the card in two alternating one-block records (power-loss safe).

Each record carries a sequence number and a CRC32. A save goes to the slot not holding the newest valid
record, so a write torn by power loss damages only that slot and the previous record survives: at most
the interrupted update is lost. The inference counter, which makes spill nonces unique, is saved before
an inference starts.
"""

import binascii
import struct

from . import format as F

FIELDS = ("inferences", "bytes_read", "bytes_written", "blocks_read", "blocks_written", "macs", "tiles", "retries")


class Counters:
    def __init__(self, card, first_block, block, urandom):
        """Load the newest valid record from the card (or start fresh with a new random card salt)."""
        self.card = card
        self.first = first_block
        self._blk = block
        self.v = dict((f, 0) for f in FIELDS)
        self.seq = 0
        self.slot = 1
        self.card_salt = None
        best = None
        for s in (0, 1):
            card.read(first_block + s, block)
            size = struct.calcsize(F.CTR_FMT)
            if bytes(block[0:4]) != F.CTR_MAGIC:
                continue
            crc = struct.unpack_from("<I", block, size)[0]
            if binascii.crc32(block[:size]) & 0xFFFFFFFF != crc:
                continue
            rec = F.unpack_named(F.CTR_FMT, F.CTR_FIELDS, block)
            if best is None or rec["seq"] > best[1]["seq"]:
                best = (s, rec)
        if best is None:
            self.card_salt = urandom(8)
        else:
            self.slot, rec = best
            self.seq = rec["seq"]
            self.card_salt = bytes(rec["card_salt"])
            for f in FIELDS:
                self.v[f] = rec[f]

    def save(self):
        self.seq += 1
        self.slot ^= 1
        rec = dict(self.v)
        rec.update(magic=F.CTR_MAGIC, seq=self.seq, card_salt=self.card_salt)
        b = self._blk
        for i in range(len(b)):
            b[i] = 0
        raw = F.pack_named(F.CTR_FMT, F.CTR_FIELDS, rec)
        b[:len(raw)] = raw
        struct.pack_into("<I", b, len(raw), binascii.crc32(raw) & 0xFFFFFFFF)
        self.card.write(self.first + self.slot, b)
        self.card.sync()
