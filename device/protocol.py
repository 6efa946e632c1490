"""The hardware-in-the-loop link protocol, version 1 (spec: docs/protocol.md): frames, commands and the
layouts of their payloads. Runs on MicroPython and CPython: the device server (device/server.py) and
the host client (host/hil.py) share every constant and layout here.

    port = Port(rd, wr)                      # rd(buf, a, b, ms) -> n: up to b-a bytes into buf[a:b]
    n = port.put(T_HELLO, seq, 0)            # payload already at port.tx[HDR:HDR + 0]; sends the frame
    if port.recv(idle_ms, gap_ms) == R_FRAME:
        port.typ, port.seq, port.n           # the payload is port.rxv[HDR:HDR + port.n]

A frame is `SOF type seq:u16 len:u16 hcrc:u16 | payload (len bytes) | crc:u32`, little-endian. hcrc
(low 16 bits of the CRC-32 of type..len) lets a receiver trust the length before it waits for that many
bytes, so a corrupted length costs a resync, not a stall; crc covers type..payload. Frames never exceed
HDR + MAX_PAYLOAD + TRL bytes, the buffer each side allocates once.
"""

import binascii
import struct

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

VERSION_MAJOR = const(1)             # a peer with another major version is refused at HELLO
VERSION_MINOR = const(0)

SOF = const(0xA5)                    # not a control character: a REPL never treats it as a command
HDR = const(8)
TRL = const(4)
MAX_DATA = const(1024)               # image, input and output bytes in one frame (two card blocks)
MAX_PAYLOAD = const(1032)            # MAX_DATA plus the largest command header
MAX_FRAME = const(1044)              # HDR + MAX_PAYLOAD + TRL: the receive buffer of either side
SEQ_UNKNOWN = const(0xFFFF)          # a NAK for bytes whose header was lost; hosts never use this seq

# Requests (host -> device). A response has the request's type | RESP and the request's seq.
T_HELLO = const(0x01)
T_PUT_BEGIN = const(0x02)
T_PUT_CHECK = const(0x03)
T_PUT_DATA = const(0x04)
T_PUT_END = const(0x05)
T_INPUT = const(0x06)
T_INFER = const(0x07)
T_OUTPUT = const(0x08)
T_STATS = const(0x09)
T_RESET_COUNTERS = const(0x0A)
T_EXIT = const(0x0B)
RESP = const(0x80)
# Device -> host, outside the request/response pairs.
T_NAK = const(0x70)                  # the link lost or damaged a frame: send it again
T_WAIT = const(0x71)                 # a long command started: extend the timeout, do not resend
T_ERR = const(0x72)                  # the command failed (not a link error): code, then a message
NAMES = {T_HELLO: "HELLO", T_PUT_BEGIN: "PUT_BEGIN", T_PUT_CHECK: "PUT_CHECK", T_PUT_DATA: "PUT_DATA",
         T_PUT_END: "PUT_END", T_INPUT: "INPUT", T_INFER: "INFER", T_OUTPUT: "OUTPUT", T_STATS: "STATS",
         T_RESET_COUNTERS: "RESET_COUNTERS", T_EXIT: "EXIT"}

# Port.recv results
R_FRAME = const(0)
R_IDLE = const(1)                    # nothing arrived within the idle timeout
R_GARBAGE = const(2)                 # bytes that were not a frame, then silence (port.skipped of them)
R_BAD_CRC = const(3)                 # a good header, a damaged payload (port.seq is known)
R_SHORT = const(4)                   # a good header, then silence before the frame ended
R_TOO_LONG = const(5)                # a good header announcing more than this side can buffer
NAK_REASONS = {R_GARBAGE: "garbage", R_BAD_CRC: "bad CRC", R_SHORT: "truncated frame", R_TOO_LONG: "frame too long"}

# T_ERR codes
E_UNKNOWN = const(1)                 # unknown request type
E_ARGS = const(2)                    # malformed payload or out-of-range argument
E_STATE = const(3)                   # not now: no image, no upload in progress, no input, ...
E_DEVICE = const(4)                  # the runtime refused (integrity, card, key, arena) or failed
E_MEMORY = const(5)                  # the board's heap is too small
E_VERSION = const(6)                 # the host speaks another major version
E_CHECK = const(7)                   # the uploaded image differs from what was sent

# Image states (HELLO, PUT_END)
S_NONE = const(0)                    # no image on the card (or an upload is incomplete)
S_NO_KEY = const(1)                  # an image, but the board has no key file
S_INVALID = const(2)                 # an image the runtime refused (wrong key, tampered, too big)
S_READY = const(3)                   # verified: INFER can run
S_UPLOADING = const(4)               # a PUT is in progress
STATE_NAMES = ("none", "no key", "invalid", "ready", "uploading")

# Payload layouts: requests, then responses ("_RSP"); names for the host's dicts.
HELLO_REQ = "<BBH"                   # major, minor, the host's max payload
HELLO_RSP = "<BBHBBBBIIIIIIIB16s"    # ... then the image state message (UTF-8, rest of the payload)
HELLO_FIELDS = ("major", "minor", "max_payload", "format_version", "mp_major", "mp_minor", "mp_micro",
                "heap_free", "heap_total", "sram_budget", "input_size", "output_size", "card_blocks",
                "image_blocks", "image_state", "image_id")
PUT_BEGIN_REQ = "<I32s"              # image blocks, SHA-256 of the image
PUT_CHECK_REQ = "<I"                 # first block, then one CRC-32 (u32) per block
PUT_CHECK_RSP = "<I"                 # how many of those blocks the card already holds, from the first
PUT_DATA_REQ = "<I"                  # byte offset in the image, then the bytes
PUT_DATA_RSP = "<I"                  # the next byte offset the device expects
PUT_END_REQ = "<B"                   # 1: open and verify the image (key, MACs, every tile); 0: SHA only
PUT_END_RSP = "<B"                   # image state, then the state message
INPUT_REQ = "<I"                     # byte offset in the input, then the bytes
INFER_REQ = "<II"                    # input length, CRC-32 of the input
INFER_RSP = "<IIQQQQQQQII"
INFER_FIELDS = ("output_crc", "ms", "bytes_read", "bytes_written", "blocks_read", "blocks_written", "macs",
                "tiles", "retries", "peak_sram", "heap_free")
OUTPUT_REQ = "<II"                   # byte offset, count
STATS_FIELDS = ("uptime_ms", "heap_free", "frames_rx", "frames_tx", "duplicates", "naks", "bad_crc", "short",
                "garbage_bytes", "errors", "inferences", "bytes_read", "bytes_written", "blocks_read",
                "blocks_written", "macs", "tiles", "retries", "put_blocks_written", "max_erase_writes")
STATS_RSP = "<" + "Q" * len(STATS_FIELDS)
NAK_PAY = "<BI"                      # reason (an R_* code), bytes skipped
ERR_PAY = "<B"                       # code (an E_* value), then the message

_HVIEWS = const(8)                   # == HDR: one preallocated view per partial-header position


def unpack(fmt, names, buf, off=0):
    """Host side: a payload's fixed part as a dict."""
    return dict(zip(names, struct.unpack_from(fmt, buf, off)))


class Port:
    """Frames over a byte link. `rd(buf, a, b, ms)` reads up to b-a bytes into buf[a:b], waiting at
    most ms milliseconds (-1: forever) for the first one, and returns how many it read (0: timeout);
    `wr(mv)` writes them all. The receive and send buffers are allocated here, once."""

    def __init__(self, rd, wr, payload=MAX_PAYLOAD):
        if payload > MAX_PAYLOAD:
            payload = MAX_PAYLOAD
        self.cap = payload
        self.rx = bytearray(HDR + payload + TRL)
        self.rxv = memoryview(self.rx)
        self.tx = bytearray(HDR + payload + TRL)
        self.txv = memoryview(self.tx)
        self._hv = [self.rxv[i:HDR] for i in range(_HVIEWS)]
        self._hc = self.rxv[1:6]             # what hcrc covers
        self.rd = rd
        self.wr = wr
        self.typ = self.seq = self.n = self.crc = 0
        self.skipped = 0

    def frame(self, buf, typ, seq, n):
        """Complete the frame whose payload is at buf[HDR:HDR + n]; returns its length."""
        buf[0] = SOF
        struct.pack_into("<BHH", buf, 1, typ, seq, n)
        mv = memoryview(buf)
        struct.pack_into("<H", buf, 6, binascii.crc32(mv[1:6]) & 0xFFFF)
        struct.pack_into("<I", buf, HDR + n, binascii.crc32(mv[1:HDR + n]) & 0xFFFFFFFF)
        return HDR + n + TRL

    def put(self, typ, seq, n, buf=None):
        """Send a frame whose payload is already at (buf or self.tx)[HDR:HDR + n]."""
        buf = self.tx if buf is None else buf
        k = self.frame(buf, typ, seq, n)
        self.wr(memoryview(buf)[:k])
        return k

    def recv(self, idle_ms, gap_ms):
        """Receive one frame into self.rx; returns an R_* code. Bytes before a start-of-frame are
        skipped (counted in self.skipped); a bad header is rescanned from its second byte."""
        rx = self.rx
        self.skipped = 0
        have = 0
        while True:
            k = self.rd(self._hv[have], 0, HDR - have, gap_ms if (have or self.skipped) else idle_ms)
            if k == 0:
                if have or self.skipped:
                    self.skipped += have
                    return R_GARBAGE
                return R_IDLE
            k += have
            i = 0
            while i < k and rx[i] != SOF:      # hunt
                i += 1
            if not i and k == HDR and binascii.crc32(self._hc) & 0xFFFF != rx[6] | rx[7] << 8:
                i = 1                          # not a header after all: rescan from its second byte
            if i:                              # drop i bytes; a loop, not a slice: nothing allocated
                self.skipped += i
                for j in range(k - i):
                    rx[j] = rx[j + i]
                have = k - i
                continue
            have = k
            if have == HDR:
                break
        self.typ = rx[1]
        self.seq = rx[2] | rx[3] << 8
        n = rx[4] | rx[5] << 8
        self.n = n
        if n > self.cap:
            return R_TOO_LONG
        end = HDR + n + TRL
        got = HDR
        while got < end:
            k = self.rd(self.rxv, got, end, gap_ms)
            if k == 0:
                return R_SHORT
            got += k
        self.crc = binascii.crc32(self.rxv[1:HDR + n]) & 0xFFFFFFFF
        if self.crc != struct.unpack_from("<I", rx, HDR + n)[0]:
            return R_BAD_CRC
        return R_FRAME
