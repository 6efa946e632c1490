"""The board side of the HIL link: serve the protocol of device/protocol.py (spec: docs/protocol.md) on
the USB REPL's stdin/stdout or on a machine.UART. MicroPython.

    import tileswap_device.server as server
    server.main()                                   # main.py of a USB board: serves until EXIT
    server.main(uart=machine.UART(1, 115200))       # or on a UART

The card is `tileswap_card.bdev()` when the board has a `tileswap_card` module (a board support file;
the emulated board has one), else `machine.SDCard()`. The key is the hex file tileswap.key on the
board's own flash (put there by `tileswap deploy --key`); no frame ever carries it.

An upload (PUT_BEGIN, PUT_CHECK, PUT_DATA, PUT_END) writes straight to the card, block by block, header
block last: until PUT_END has checked the SHA-256 of the blocks on the card and the runtime has verified
the header, key, tables and every tile, no image is used. A device reset loses nothing but the block
being filled: PUT_CHECK compares the card's blocks with the image's block CRCs, so the host resumes at
the first block the card does not hold.

The input streams in and the output out row by row (Runtime.begin_input, write_input_row,
read_output_row): neither sits in RAM whole, so a model's input may be far larger than the heap. Each
input is used for one inference only, since its spill nonce must never be reused. The highest image
version run is kept on the board's flash (tileswap.nv, the runtime's off-card store): an older image
uploaded later is refused (rollback).

Buffers (the two frame buffers, two card blocks, one input and one output row) are allocated once (the
rows when an image is opened); the loop allocates a few small objects per frame, never per byte.
"""

import binascii
import gc
import hashlib
import json
import os
import struct
import sys
import time

from micropython import const

from . import DeviceError, KeyMismatch
from . import crypto as C
from . import format as F
from . import protocol as P
from .storage import Card

KEY_PATH = "tileswap.key"     # on the board's flash, beside main.py (relative: the flash is "/" on most
NV_PATH = "tileswap.nv"       # boards, "/flash" on a pyboard; a board boots with it as the current folder)
_GAP_MS = const(15)          # silence inside a frame that ends it (a lost byte costs this, then a NAK)
_BLOCK = const(512)
_CTL = const(128)            # payload room of NAK, WAIT and ERR frames (their own buffer: port.tx keeps
                             # the last response, resent as is when the host repeats a request)
_LINK = ("frames_rx", "frames_tx", "duplicates", "naks", "bad_crc", "short", "garbage_bytes", "errors",
         "put_blocks_written")
_CARD = ("inferences", "bytes_read", "bytes_written", "blocks_read", "blocks_written", "macs", "tiles", "retries")
_HELLO_N = struct.calcsize(P.HELLO_RSP)
_INFER_N = struct.calcsize(P.INFER_RSP)


class _Err(DeviceError):
    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code


class StreamLink:
    """Bytes over a stream: poll for the first byte, then read. `partial`: the stream's readinto returns
    what has arrived (a UART, a raw unix tty); otherwise one byte is read at a time (USB stdin blocks
    until the buffer is full)."""

    def __init__(self, rx, tx, partial):
        import select
        self.rx = rx
        self.tx = tx
        self.partial = partial
        self.poll = select.poll()
        self.poll.register(rx, select.POLLIN)
        self.hup = select.POLLHUP | select.POLLERR
        self.one = bytearray(1)

    def rd(self, buf, a, b, ms):
        for _, ev in self.poll.ipoll(ms):
            if ev & self.hup:
                raise OSError(5, "the serial link hung up")
            break
        else:
            return 0
        if self.partial:
            return self.rx.readinto(buf[a:b] if a or b < len(buf) else buf) or 0
        if not self.rx.readinto(self.one):
            return 0
        buf[a] = self.one[0]
        return 1

    def wr(self, mv):
        self.tx.write(mv)


def default_card():
    try:
        import tileswap_card
    except ImportError:
        import machine
        return machine.SDCard()
    return tileswap_card.bdev()


def _default_kernels():
    from .app import kernels
    return kernels()


class Server:
    def __init__(self, link, bdev, *, key_path=KEY_PATH, nv_path=NV_PATH, kernels=None, payload=P.MAX_PAYLOAD):
        self.port = P.Port(link.rd, link.wr, payload)
        self.ctl = bytearray(P.HDR + _CTL + P.TRL)
        self.bdev = bdev
        self.card = Card(bdev)
        self.blk = memoryview(bytearray(_BLOCK))      # the block being uploaded
        self.blk2 = memoryview(bytearray(_BLOCK))     # reads: checks, hashes, headers
        self.key_path = key_path
        self.nv_path = nv_path
        self.kernels = kernels or _default_kernels
        self.st = dict((k, 0) for k in _LINK)
        self.t0 = time.ticks_ms()
        self.last_seq = self.last_crc = -1
        self.tx_n = 0
        self.put_n = 0                                # blocks of the upload in progress (0: none)
        self.rt = None
        self._h = {P.T_HELLO: self._hello, P.T_PUT_BEGIN: self._put_begin, P.T_PUT_CHECK: self._put_check,
                   P.T_PUT_DATA: self._put_data, P.T_PUT_END: self._put_end, P.T_INPUT: self._input,
                   P.T_INFER: self._infer, P.T_OUTPUT: self._output, P.T_STATS: self._stats,
                   P.T_RESET_COUNTERS: self._reset, P.T_EXIT: self._exit}
        self._open()

    # ---- the image on the card ----------------------------------------------------------------
    def _state(self, s, msg):
        self.state = s
        self.msg = msg

    def _close(self):
        self.rt = self.row_in = self.row_out = None
        self.in_pos = -1                              # input bytes received (-1: no input started)
        self.out_row = -1                             # the output row held in row_out (-1: no output)
        gc.collect()

    def _open(self):
        """Open and verify the image on the card (header, key, tables, version); sets the image state."""
        self._close()
        self.card.read(0, self.blk2)
        self.image_id = bytes(self.blk2[12:28])
        if bytes(self.blk2[0:4]) != F.MAGIC:
            self.image_id = bytes(16)
            return self._state(P.S_NONE, "no image on the card (or an upload was interrupted): upload one")
        key = None
        try:
            with open(self.key_path, "rb") as f:
                key = binascii.unhexlify(f.read().strip())
        except (OSError, ValueError):
            pass
        if key is None:
            return self._state(P.S_NO_KEY, "the board has no key (%s): provision it with `tileswap deploy "
                               "--port PORT --key KEYFILE`" % self.key_path)
        nv = _load_nv(self.nv_path)
        seen = dict(nv)
        try:
            from .runtime import Runtime
            rt = Runtime(self.bdev, key, self.kernels(), nv=nv)
            self.rows_in, self.rows_out = rt.input_rows(), rt.output_rows()
            self.row_in = bytearray(self.rows_in[1])
            self.row_out = bytearray(self.rows_out[1])
            self.rt = rt
            self._state(P.S_READY, "ready")
        except KeyMismatch as e:
            self._state(P.S_INVALID, "%s (the board's key file %s)" % (e, self.key_path))
        except MemoryError as e:
            self._close()
            self._state(P.S_INVALID, "the image does not fit the board's heap (%s; %d bytes free after)"
                        % (e, gc.mem_free()))
        except Exception as e:      # DeviceError, ImportError (no kernels), anything: the server stays up
            self._close()
            self._state(P.S_INVALID, "the runtime refused the image: %s" % (
                e if isinstance(e, DeviceError) else "%s: %s" % (type(e).__name__, e)))
        if nv != seen:              # the highest version run: recorded before the image is used
            try:
                _save_nv(self.nv_path, nv)
            except OSError as e:
                self._close()
                self._state(P.S_INVALID, "cannot record the image version in %s: %s" % (self.nv_path, e))

    def _verify_tiles(self):
        """Every tile's CRC and MAC, read back from the card: an upload is checked before it is used."""
        img = self.rt.img
        h = img.h
        v = self.blk2
        for i in range(h["n_tiles"]):
            try:
                off, n, crc, tag = img.tile_record(i, v)
            except DeviceError as e:
                self._close()
                return self._state(P.S_INVALID, "tile %d: %s" % (i, e))
            mac = C.Hmac(img.k_mac, b"T", struct.pack("<II", i, n))
            c = 0
            b = h["payload_block"] + off // _BLOCK
            while n > 0:
                self.card.read(b, v)
                m = min(_BLOCK, n)
                c = binascii.crc32(v[:m], c)
                mac.update(v[:m])
                n -= m
                b += 1
            if c & 0xFFFFFFFF != crc or not C.eq(mac.digest(), tag):
                self._close()
                return self._state(P.S_INVALID, "tile %d failed its CRC or MAC on the card after the upload "
                                   "(card write error?): upload the image again" % i)

    # ---- the loop -------------------------------------------------------------------------------
    def serve(self):
        """Serve frames until EXIT. Ctrl-C is data here: no byte sequence stops the server (the image or
        an input can hold any), so a user gets the REPL back with EXIT (`tileswap hil --port PORT --repl`)."""
        port = self.port
        st = self.st
        self.running = True
        while self.running:
            r = port.recv(-1, _GAP_MS)
            st["garbage_bytes"] += port.skipped
            if r == P.R_FRAME:
                self._frame()
            elif r != P.R_IDLE:
                if r == P.R_TOO_LONG:        # skip the rest of it before answering
                    while port.rd(port.rxv, 0, len(port.rx), _GAP_MS):
                        pass
                if r == P.R_BAD_CRC:
                    st["bad_crc"] += 1
                elif r == P.R_SHORT:
                    st["short"] += 1
                st["naks"] += 1
                struct.pack_into(P.NAK_PAY, self.ctl, P.HDR, r, port.skipped)
                port.put(P.T_NAK, P.SEQ_UNKNOWN if r == P.R_GARBAGE else port.seq, 5, self.ctl)

    def _frame(self):
        port = self.port
        st = self.st
        st["frames_rx"] += 1
        typ, seq = port.typ, port.seq
        if seq == self.last_seq and port.crc == self.last_crc:   # our response was lost: the same again
            st["duplicates"] += 1
            port.wr(port.txv[:self.tx_n])
            st["frames_tx"] += 1
            return
        self.last_seq, self.last_crc, self.seq = seq, port.crc, seq
        h = self._h.get(typ)
        rtyp = typ | P.RESP
        try:
            if h is None:
                raise _Err(P.E_UNKNOWN, "unknown request type 0x%02x" % typ)
            n = h(port.rxv[P.HDR:P.HDR + port.n], port.n)
        except Exception as e:     # MemoryError, DeviceError, OSError, ...: answer, stay alive
            st["errors"] += 1
            rtyp = P.T_ERR
            code = getattr(e, "code", P.E_MEMORY if isinstance(e, MemoryError) else P.E_DEVICE)
            msg = str(e) if isinstance(e, DeviceError) else "%s: %s" % (type(e).__name__, e)
            self.port.tx[P.HDR] = code
            n = self._tail(1, msg)
        self.tx_n = port.put(rtyp, seq, n)
        st["frames_tx"] += 1
        if typ == P.T_EXIT and rtyp != P.T_ERR:
            self.running = False

    def _tail(self, at, text):
        """Put a message (truncated to fit) at payload offset `at`; returns the payload length."""
        m = text.encode()[:self.port.cap - at]
        self.port.tx[P.HDR + at:P.HDR + at + len(m)] = m
        return at + len(m)

    def _wait(self):
        self.port.put(P.T_WAIT, self.seq, 0, self.ctl)

    def _need(self, what, size, n):
        if n < size:
            raise _Err(P.E_ARGS, "%s needs at least %d payload bytes, got %d" % (what, size, n))

    def _need_rt(self):
        if self.rt is None:
            raise _Err(P.E_STATE, "no image to run: " + self.msg)

    def _need_put(self):
        if not self.put_n:
            raise _Err(P.E_STATE, "no upload in progress (PUT_BEGIN first; the board may have restarted)")

    # ---- commands: each returns the length of its response payload, written at port.tx[HDR:] ------
    def _hello(self, pay, n):
        self._need("HELLO", 4, n)
        major, minor, _ = struct.unpack_from(P.HELLO_REQ, pay)
        if major != P.VERSION_MAJOR:
            raise _Err(P.E_VERSION, "the board speaks protocol %d.%d, the host %d.%d: deploy this tileswap's "
                       "runtime (tileswap deploy)" % (P.VERSION_MAJOR, P.VERSION_MINOR, major, minor))
        gc.collect()
        v = sys.implementation.version
        h = self.rt.img.h if self.rt else None
        rt = self.rt
        struct.pack_into(P.HELLO_RSP, self.port.tx, P.HDR, P.VERSION_MAJOR, P.VERSION_MINOR, self.port.cap,
                         F.VERSION, v[0], v[1], v[2], gc.mem_free(), gc.mem_free() + gc.mem_alloc(),
                         h["sram_budget"] if h else 0, self._size(self.rows_in) if rt else 0,
                         self._size(self.rows_out) if rt else 0,
                         self.card.nblocks, h["total_blocks"] if h else 0, self.state, self.image_id)
        return self._tail(_HELLO_N, self.msg)

    def _put_begin(self, pay, n):
        self._need("PUT_BEGIN", 36, n)
        blocks, sha = struct.unpack_from(P.PUT_BEGIN_REQ, pay)
        if not 0 < blocks <= self.card.nblocks:
            raise _Err(P.E_ARGS, "the image has %d blocks; the card holds %d" % (blocks, self.card.nblocks))
        self._close()
        self.put_n, self.put_sha = blocks, bytes(sha)
        self.put_blk, self.put_fill = -1, 0
        self.put_wrote = self.zapped = False
        self._state(P.S_UPLOADING, "an upload of %d blocks is in progress" % blocks)
        return 0

    def _put_check(self, pay, n):
        self._need("PUT_CHECK", 4, n)
        self._need_put()
        first = struct.unpack_from(P.PUT_CHECK_REQ, pay)[0]
        k = (n - 4) // 4
        if first + k > self.put_n:
            raise _Err(P.E_ARGS, "PUT_CHECK of blocks %d..%d: the image has %d" % (first, first + k - 1, self.put_n))
        m = 0
        while m < k:
            self.card.read(first + m, self.blk2)
            if binascii.crc32(self.blk2) & 0xFFFFFFFF != struct.unpack_from("<I", pay, 4 + 4 * m)[0]:
                break
            m += 1
        struct.pack_into(P.PUT_CHECK_RSP, self.port.tx, P.HDR, m)
        return 4

    def _put_data(self, pay, n):
        self._need("PUT_DATA", 4, n)
        self._need_put()
        pos = struct.unpack_from(P.PUT_DATA_REQ, pay)[0]
        k = n - 4
        if pos + k > self.put_n * _BLOCK:
            raise _Err(P.E_ARGS, "PUT_DATA past the end of the image (%d + %d bytes)" % (pos, k))
        i = 4
        while i < n:
            blk, o = pos // _BLOCK, pos % _BLOCK
            if blk != self.put_blk or o != self.put_fill:
                if o:                        # not where this block stands: the host resends from nxt
                    break
                self.put_blk, self.put_fill = blk, 0
            m = min(_BLOCK - o, n - i)
            self.blk[o:o + m] = pay[i:i + m]
            self.put_fill += m
            i += m
            pos += m
            if self.put_fill == _BLOCK:
                self._write_block(blk)
                self.put_blk, self.put_fill = blk + 1, 0
        nxt = pos if i == n else (self.put_blk * _BLOCK + self.put_fill if self.put_blk >= 0 else pos - pos % _BLOCK)
        struct.pack_into(P.PUT_DATA_RSP, self.port.tx, P.HDR, nxt)
        return 4

    def _write_block(self, blk):
        if blk and not self.zapped:          # a half-written image must never look like an image
            self.card.read(0, self.blk2)
            if bytes(self.blk2[0:4]) == F.MAGIC:
                for j in range(_BLOCK):
                    self.blk2[j] = 0
                self.card.write(0, self.blk2)
                self.card.sync()
            self.zapped = True
        self.card.write(blk, self.blk)
        self.put_wrote = True
        self.st["put_blocks_written"] += 1

    def _put_end(self, pay, n):
        self._need("PUT_END", 1, n)
        self._need_put()
        self._wait()
        self.card.sync()
        h = hashlib.sha256()
        for b in range(self.put_n):
            self.card.read(b, self.blk2)
            h.update(self.blk2)
        self.put_n = 0
        if h.digest() != self.put_sha:
            self._open()
            raise _Err(P.E_CHECK, "the card does not hold the image that was sent (SHA-256 differs): upload it again")
        self.card.read(0, self.blk2)
        if self.put_wrote and bytes(self.blk2[0:4]) == F.MAGIC:   # a new image starts with fresh counters
            hd = F.unpack_named(F.HDR_FMT, F.HDR_FIELDS, self.blk2)
            for j in range(_BLOCK):
                self.blk2[j] = 0
            for b in range(hd["counter_block"], min(hd["counter_block"] + 2, self.card.nblocks)):
                self.card.write(b, self.blk2)
            self.card.sync()
        self._open()
        if self.rt is not None and pay[0]:
            self._verify_tiles()
        self.port.tx[P.HDR] = self.state
        return self._tail(1, self.msg)

    @staticmethod
    def _size(rows):
        return rows[0] * rows[1]

    def _input(self, pay, n):
        """Input bytes in order from 0; offset 0 starts a new inference (its nonce is saved first)."""
        self._need("INPUT", 4, n)
        self._need_rt()
        off = struct.unpack_from(P.INPUT_REQ, pay)[0]
        rb = self.rows_in[1]
        if off == 0:
            self.rt.begin_input()
            self.in_pos, self.in_crc, self.out_row = 0, 0, -1
        if off != self.in_pos:
            raise _Err(P.E_ARGS, "INPUT at byte %d: the board expects byte %d (an input goes in order, from 0)"
                       % (off, max(self.in_pos, 0)))
        if off + n - 4 > self._size(self.rows_in):
            raise _Err(P.E_ARGS, "INPUT past the end of the model's %d input bytes" % self._size(self.rows_in))
        self.in_crc = binascii.crc32(pay[4:n], self.in_crc)
        i = 4
        while i < n:
            r, o = divmod(self.in_pos, rb)
            m = min(rb - o, n - i)
            self.row_in[o:o + m] = pay[i:i + m]
            i += m
            self.in_pos += m
            if o + m == rb:
                self.rt.write_input_row(r, self.row_in)
        return 0

    def _infer(self, pay, n):
        self._need("INFER", 8, n)
        self._need_rt()
        ln, crc = struct.unpack_from(P.INFER_REQ, pay)
        if ln != self._size(self.rows_in):
            raise _Err(P.E_ARGS, "the model takes %d input bytes, not %d" % (self._size(self.rows_in), ln))
        if self.in_pos != ln or self.in_crc & 0xFFFFFFFF != crc:
            raise _Err(P.E_STATE, "no complete input on the board, or not the one announced (each input runs "
                       "once): send INPUT from byte 0")
        self.in_pos = -1
        self._wait()
        rt = self.rt
        c = rt.card
        s = rt.stats
        a = (s["bytes_read"], s["bytes_written"], c.blocks_read, c.blocks_written, s["macs"], s["tiles"], c.retries)
        t0 = time.ticks_ms()
        rt.infer()
        ms = time.ticks_diff(time.ticks_ms(), t0)
        b = (s["bytes_read"], s["bytes_written"], c.blocks_read, c.blocks_written, s["macs"], s["tiles"], c.retries)
        crc = 0
        for r in range(self.rows_out[0]):
            rt.read_output_row(r, self.row_out)
            crc = binascii.crc32(self.row_out, crc)
        self.out_row = self.rows_out[0] - 1
        gc.collect()
        struct.pack_into(P.INFER_RSP, self.port.tx, P.HDR, crc & 0xFFFFFFFF, ms,
                         b[0] - a[0], b[1] - a[1], b[2] - a[2], b[3] - a[3], b[4] - a[4], b[5] - a[5], b[6] - a[6],
                         rt.arena.peak, gc.mem_free())
        return _INFER_N

    def _output(self, pay, n):
        """Output bytes of the last inference, read back row by row (the row last read is kept)."""
        self._need("OUTPUT", 8, n)
        if self.rt is None or self.out_row < 0:
            raise _Err(P.E_STATE, "no output: run INFER first")
        off, k = struct.unpack_from(P.OUTPUT_REQ, pay)
        rb = self.rows_out[1]
        if k > self.port.cap or off + k > self._size(self.rows_out):
            raise _Err(P.E_ARGS, "OUTPUT of %d bytes at %d: the output has %d, a frame at most %d"
                       % (k, off, self._size(self.rows_out), self.port.cap))
        tx = self.port.tx
        j = 0
        while j < k:
            r, o = divmod(off + j, rb)
            if r != self.out_row:
                self.rt.read_output_row(r, self.row_out)
                self.out_row = r
            m = min(rb - o, k - j)
            tx[P.HDR + j:P.HDR + j + m] = self.row_out[o:o + m]
            j += m
        return k

    def _stats(self, pay, n):
        gc.collect()
        st = self.st
        rt = self.rt
        v = rt.counters.v if rt else {}
        ew = rt.card.erase_writes if rt else {}
        vals = [time.ticks_diff(time.ticks_ms(), self.t0), gc.mem_free()]
        for k in P.STATS_FIELDS[2:]:
            vals.append(st[k] if k in st else v.get(k, 0) if k in _CARD else max(ew.values()) if ew else 0)
        struct.pack_into(P.STATS_RSP, self.port.tx, P.HDR, *vals)
        return 8 * len(vals)

    def _reset(self, pay, n):
        """Zero the counters, except the inference count: it is the spill nonce and must never go back."""
        for k in self.st:
            self.st[k] = 0
        if self.rt:
            v = self.rt.counters.v
            for k in v:
                if k != "inferences":
                    v[k] = 0
            self.rt.counters.save()
            self.rt.card.erase_writes.clear()
        return 0

    def _exit(self, pay, n):
        return 0


def _load_nv(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _save_nv(path, nv):
    """Through a temporary file and a rename (a FAT volume refuses to rename over a file: remove first)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(nv, f)
    try:
        os.rename(tmp, path)
    except OSError:
        try:
            os.remove(path)
        except OSError:
            pass
        os.rename(tmp, path)


def _tty_raw():
    """The unix port on a terminal (the emulated board): raw mode, and reads that return what has
    arrived (VMIN = VTIME = 0; cc indices 6 and 5 on Linux). Returns the settings to restore.
    setraw() flushes pending input, so it is only called when the terminal is not raw already
    (ICANON or ECHO set): bytes the host sent while the board was booting are kept."""
    try:
        import termios
        old = termios.tcgetattr(0)
        if old[3] & 0o12:
            termios.setraw(0)
        a = termios.tcgetattr(0)
        a[6][6] = 0
        a[6][5] = 0
        termios.tcsetattr(0, termios.TCSANOW, a)
        return old
    except (ImportError, OSError, AttributeError):
        return None


def main(*, uart=None, bdev=None, key_path=KEY_PATH, kernels=None):
    """Serve the HIL protocol until EXIT, then return to the REPL."""
    import micropython
    old = None
    if uart is not None:
        link = StreamLink(uart, uart, True)
    else:
        old = _tty_raw()
        link = StreamLink(sys.stdin.buffer, sys.stdout.buffer, old is not None)
    srv = Server(link, default_card() if bdev is None else bdev, key_path=key_path, kernels=kernels)
    micropython.kbd_intr(-1)                 # Ctrl-C bytes are data on this link
    try:
        srv.serve()
    finally:
        micropython.kbd_intr(3)
        if old is not None:
            import termios
            termios.tcsetattr(0, termios.TCSANOW, old)
