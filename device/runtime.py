"""The device runtime (Eval): stream tiles from the card, verify, decrypt, run kernels, spill.

    rt = Runtime(bdev, key, kernels)     # verifies the image; kernels: C binding, viper or reference
    rt.set_input(data)                   # int8 input rows -> card (encrypted under a fresh nonce)
    rt.infer()                           # every op, band by band, channel group by channel group
    rt.read_output(out)                  # int8 output rows <- card (verified, decrypted)

Buffers: the arena (exactly the SRAM budget, placed by the tiler) plus one 512-byte block for tables and
counters. Card reads and writes are whole blocks: full blocks go straight between the card and the
arena, a row's or tile's partial last block goes through the staging blocks at arena offset 0.
"""

import binascii

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from . import CardError, DeviceError, ImageError, IntegrityError
from . import crypto as C
from .arena import STAGING
from .ops import run_chain, run_op
from .schedule import cover, fresh

# Header fields (indices into format.HDR_FIELDS)
_H_ERASE_BLOCK = const(7)
_H_PAYLOAD_BLOCK = const(10)
_H_SPILL_BLOCK = const(12)
_H_SPILL_BLOCKS = const(13)
# Copies of format.py / opdefs.py (private consts take no RAM in a .mpy; tests check they agree)
_BLOCK = const(512)
_OPF_CHAIN = const(1)
_STAGING = const(1024)
_TAG_LEN = const(32)
_TILE_SIZE = const(64)
_T_ARENA = const(0)
_T_CHAIN = const(4)
_T_INPUT = const(2)
_T_OUTPUT = const(3)
_TF_CHUNKED = const(1)


_WEIGHTS = const(-2)         # arena claim owners (copies of arena.py's)
_INPUT_ROW = const(-5)
_REREADS = const(5)  # reads of data that failed its CRC or tag before it counts as bad, not transient


def _urandom(n):
    import os
    return os.urandom(n)


class Runtime:
    def __init__(self, bdev, key, kernels, *, ctr=None, urandom=None, on_tensor=None, nv=None):
        """nv: a small dict-like store on the device but off the card (internal flash), remembering the
        highest image version run, so an older image put back on the card is refused (rollback)."""
        from . import validate         # the open-time code; freed again once open (MicroPython)
        validate.open_runtime(self, bdev, key, kernels, ctr, urandom or _urandom, on_tensor, nv)

    # ---- card I/O of rows and tiles -------------------------------------------------------------
    def _spill_io(self, write, logical, mv, base, r):
        """Read or write whole blocks at a logical ring position: the ring turns by one erase block per
        inference, so the same row lands on a different erase block each time (wear levelling)."""
        h = self.img.hd
        size = h[_H_SPILL_BLOCKS]
        per = h[_H_ERASE_BLOCK] // _BLOCK
        pos = (logical + self.n * per) % size
        n = len(mv) // _BLOCK
        first = min(n, size - pos)
        io = self.card.write if write else self.card.read
        try:
            io(h[_H_SPILL_BLOCK] + pos, mv[0:first * _BLOCK])
            if first < n:
                io(h[_H_SPILL_BLOCK], mv[first * _BLOCK:n * _BLOCK])
        except CardError as e:
            raise CardError("tensor %d row %d (spill ring): %s" % (base, r, e)) from None

    def _read_row(self, base, r, dst, off, rb=0):
        """Row r of a card-resident tensor into dst[off:], verified and decrypted (rb > 0: slot r of a
        channel-chunked tensor, rb bytes). A failed tag is re-read (a bit flipped on the bus is
        transient) before it is reported."""
        t = self.T[base]
        if not rb:
            rb = t[4] * t[5]
        blk = t[7] + r * t[8]      # logical block of row r in the spill ring
        st = self.mv
        staged = off == 0 and dst is st     # a chunk unit, read whole into the staging blocks
        nfull = 0 if staged else rb // _BLOCK
        tail = rb - nfull * _BLOCK
        nt = (tail + _TAG_LEN + _BLOCK - 1) // _BLOCK
        for _ in range(_REREADS):
            if nfull:
                self._spill_io(False, blk, dst[off:off + nfull * _BLOCK], base, r)
            self._spill_io(False, blk + nfull, st[0:nt * _BLOCK], base, r)
            if not staged:
                dst[off + nfull * _BLOCK:off + rb] = st[0:tail]
            data = dst[off:off + rb]
            if C.eq(C.spill_tag(self.img.k_mac, self.counters.card_salt, base, self.n, r, data), bytes(st[tail:tail + _TAG_LEN])):
                break
            self.card.retries += 1
        else:
            raise IntegrityError("tensor %d row %d (spill ring blocks %d..%d) failed its MAC %d times: card error, "
                                 "tampering, or a stale spill" % (base, r, blk, blk + nfull + nt - 1, _REREADS))
        self.ctr(self.k_spill, C.spill_iv(base, self.n, r), data, rb)
        self.stats["bytes_read"] += rb + _TAG_LEN

    def _write_row(self, base, r, src, off, rb=0):
        """Encrypt src[off:off+row] in place, tag it, write it to row r's slot on the card (rb > 0:
        slot r of a channel-chunked tensor, rb bytes)."""
        t = self.T[base]
        if not rb:
            rb = t[4] * t[5]
        blk = t[7] + r * t[8]      # logical block of row r in the spill ring
        data = src[off:off + rb]
        self.ctr(self.k_spill, C.spill_iv(base, self.n, r), data, rb)
        tag = C.spill_tag(self.img.k_mac, self.counters.card_salt, base, self.n, r, data)
        nfull = rb // _BLOCK
        tail = rb - nfull * _BLOCK
        if nfull:
            self._spill_io(True, blk, src[off:off + nfull * _BLOCK], base, r)
        st = self.mv
        nt = (tail + _TAG_LEN + _BLOCK - 1) // _BLOCK
        st[0:tail] = src[off + nfull * _BLOCK:off + rb]
        st[tail:tail + _TAG_LEN] = tag
        for i in range(tail + _TAG_LEN, nt * _BLOCK):
            st[i] = 0
        self._spill_io(True, blk + nfull, st[0:nt * _BLOCK], base, r)
        self.stats["bytes_written"] += rb + _TAG_LEN

    def _read_whole_row(self, base, r, dst, off):
        """Row r of a card tensor into dst[off:], all its channels. A channel-chunked tensor's units (chunk
        channels of every pixel, at most two blocks with its tag) are each read with one command into
        the staging blocks, verified and decrypted there, then copied pixel by pixel to their channels."""
        t = self.T[base]
        if not t[1] & _TF_CHUNKED:
            self._read_row(base, r, dst, off)
            return
        w = t[4]
        c = t[5]
        ch = t[6]
        n = c // ch
        rb = w * ch
        mv = self.mv
        for u in range(n):
            self._read_row(base, r * n + u, mv, 0, rb)
            s = 0
            d = off + u * ch
            for _ in range(w):
                dst[d:d + ch] = mv[s:s + ch]
                s += ch
                d += c

    def _load_tile(self, i, off, op_index):
        """Tile i into the arena at off: read, CRC (re-read on mismatch: transient), MAC, decrypt."""
        try:
            img = self.img
            mv = self.mv
            why = "failed its CRC32"
            for _ in range(_REREADS):
                try:                     # the record too: its offset, length and tag come off the card
                    toff, n, crc, tag = img.tile_record(i, self._blk)
                except IntegrityError:
                    self.card.retries += 1
                    continue
                if off + n > self.arena.size:
                    why = "has a record whose length does not fit its buffer"
                    self.card.retries += 1
                    continue
                self.arena.claim(_WEIGHTS, off, n)
                blk = img.hd[_H_PAYLOAD_BLOCK] + toff // _BLOCK
                nfull = n // _BLOCK
                tail = n - nfull * _BLOCK
                if nfull:
                    self.card.read(blk, mv[off:off + nfull * _BLOCK])
                if tail:
                    self.card.read(blk + nfull, mv[0:_BLOCK])
                    mv[off + nfull * _BLOCK:off + n] = mv[0:tail]
                data = mv[off:off + n]
                # A tampered tile fails every time; a bit flipped on the bus (in the data, or in the tag,
                # which the CRC does not cover) does not: read both again before refusing.
                if binascii.crc32(data) & 0xFFFFFFFF != crc:
                    why = "failed its CRC32"
                elif not C.eq(C.tile_tag(img.k_mac, i, data), tag):
                    why = "failed its MAC: modified, moved or from another image"
                else:
                    break
                self.card.retries += 1
            else:
                raise IntegrityError("tile %d (op #%d) %s (%d reads)" % (i, op_index, why, _REREADS))
            self.ctr(img.k_enc, C.tile_iv(i), data, n)
            self.stats["bytes_read"] += n + _TILE_SIZE
            return data
        except CardError as e:
            raise CardError("tile %d (op #%d): %s" % (i, op_index, e)) from None

    # ---- the model's input and output ---------------------------------------------------------
    def _io_tensor(self, kind):
        for i, t in enumerate(self.T):
            if t[0] == kind and t[2] == i:
                return i
        raise ImageError("the image has no model %s tensor" % ("input" if kind == _T_INPUT else "output"))

    def input_size(self):
        t = self.T[self._io_tensor(_T_INPUT)]
        return t[3] * t[4] * t[5]

    def output_size(self):
        t = self.T[self._io_tensor(_T_OUTPUT)]
        return t[3] * t[4] * t[5]

    def set_input(self, data):
        """Write the int8 input tensor (h*w*c bytes, NHWC) to the card; starts a new inference."""
        h, rb = self.begin_input()
        if len(data) != h * rb:
            raise DeviceError("input has %d bytes; the model takes %d (%d rows of %d)" % (len(data), h * rb, h, rb))
        src = memoryview(data)
        for r in range(h):
            self.write_input_row(r, src[r * rb:(r + 1) * rb])

    def begin_input(self):
        """Start a new inference whose input arrives row by row (a camera, a file): returns (rows, row
        bytes). The inference counter, the spill nonce, is saved on the card before anything is written."""
        self.arena.release_all(STAGING)  # whatever a refused inference left claimed
        c = self.counters
        c.v["inferences"] += 1
        c.save()
        self.n = c.v["inferences"]
        return self.input_rows()

    def write_input_row(self, r, row):
        """Input row r (row bytes of int8) to the card, through the arena (encrypted in place there)."""
        tid = self._io_tensor(_T_INPUT)
        rb = self.T[tid][4] * self.T[tid][5]
        off = self.arena.claim(_INPUT_ROW, _STAGING, rb)
        self.mv[off:off + rb] = row
        self._write_row(tid, r, self.mv, off)
        self.arena.release(_INPUT_ROW)

    def read_output(self, out):
        """Read the int8 output tensor into `out` (a bytearray of output_size() bytes)."""
        tid = self._io_tensor(_T_OUTPUT)
        t = self.T[tid]
        rb = t[4] * t[5]
        dst = memoryview(out)
        for r in range(t[3]):
            self._read_row(tid, r, dst, r * rb)
        return out

    def input_rows(self):
        """(rows, bytes per row) of the model input."""
        t = self.T[self._io_tensor(_T_INPUT)]
        return t[3], t[4] * t[5]

    def output_rows(self):
        """(rows, bytes per row) of the model output."""
        t = self.T[self._io_tensor(_T_OUTPUT)]
        return t[3], t[4] * t[5]

    def read_output_row(self, r, row):
        """Output row r of the last inference into `row` (a bytearray of the row's bytes)."""
        self._read_row(self._io_tensor(_T_OUTPUT), r, memoryview(row), 0)

    def read_tensor(self, tid):
        """For tests: the bytes of any tensor right after the op that produced it."""
        t = self.T[tid]
        base = self.T[t[2]]
        n = t[3] * t[4] * t[5]
        if base[0] == _T_ARENA:
            return bytes(self.mv[base[6]:base[6] + n])
        rb = base[4] * base[5]
        buf = bytearray(base[3] * rb)
        for r in range(base[3]):
            self._read_whole_row(t[2], r, memoryview(buf), r * rb)
        return bytes(buf[:n])

    # ---- inference ----------------------------------------------------------------------------
    def infer(self):
        if self.n is None:
            raise DeviceError("no input: call set_input() before infer()")
        c = self.card
        b0, w0, r0 = c.blocks_read, c.blocks_written, c.retries
        img = self.img
        n_ops = len(img.op_offs)
        self.held.clear()               # rows a refused inference left in band buffers are stale
        i = 0
        while i < n_ops:
            members = [(i, img.op(i))]       # ops are parsed as they run: the table stays as bytes
            while members[-1][1].flags & _OPF_CHAIN and i + len(members) < n_ops:
                j = i + len(members)
                members.append((j, img.op(j)))
            j = i + len(members) - 1
            try:
                if j == i:
                    run_op(self, i, members[0][1])
                else:
                    run_chain(self, members)
            except (ValueError, IndexError, KeyError) as e:
                # Kernels refuse arguments a valid image never produces: the tables are at fault.
                raise ImageError("op #%d: the image's tables do not match its tensors (%s)" % (i, e)) from None
            self.arena.release_all(STAGING)
            self.held.clear()
            if self.on_tensor is not None:
                self.on_tensor(members[-1][1].out)
            members = None
            i = j + 1
        v = self.counters.v
        for k in ("bytes_read", "bytes_written", "macs", "tiles"):
            v[k] += self.stats[k]
        v["blocks_read"] += c.blocks_read - b0
        v["blocks_written"] += c.blocks_written - w0
        v["retries"] += c.retries - r0
        self.counters.save()

    def _fetch(self, tid, a, b, buf):
        """Arena offset of view row a of input tid, reading card rows into scratch `buf` if spilled."""
        t = self.T[tid]
        base = self.T[t[2]]
        rbv = t[4] * t[5]
        if base[0] == _T_ARENA:
            return base[6] + a * rbv
        if base[0] == _T_CHAIN:
            return base[6] + (a - self.chain_start[t[2]]) * rbv
        rbb = base[4] * base[5]
        ra, rz = cover(rbv, rbb, a, b)
        self.arena.claim(1000 + tid, buf, (rz - ra) * rbb)
        f = ra
        h = self.held.get(buf)       # (tensor, rows) the previous band of this op left in the buffer
        if h is not None and h[0] == t[2]:
            f = fresh(h[1], h[2], ra, rz)
            d = (ra - h[1]) * rbb    # kept rows [ra, f) move to the buffer start, d bytes down,
            n = (f - ra) * rbb       # in steps that never overlap
            mv = self.mv
            i = 0
            while d and i < n:
                m = d if d < n - i else n - i
                mv[buf + i:buf + i + m] = mv[buf + d + i:buf + d + i + m]
                i += m
        for r in range(f, rz):
            self._read_whole_row(t[2], r, self.mv, buf + (r - ra) * rbb)
        self.held[buf] = (t[2], ra, rz)
        return buf + a * rbv - ra * rbb

