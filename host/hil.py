"""Hardware in the loop: the host end of the link protocol (device/protocol.py, docs/protocol.md), the
deploy step, and a MicroPython board emulated on a pseudo-terminal.

    with Client.open("/dev/ttyACM0") as c:          # a device path or any pyserial URL
        c.connect()                                 # HELLO: versions, budget, free heap, image state
        c.put_image(image)                          # resumable; a no-op if the card already holds it
        y, counters = c.infer(x_int8_bytes)
    with Board(heap=128 * 1024) as b:               # the real `micropython` on a pty: b.port is its path
        ...

The client sends one request at a time and waits for its response (stop and wait). A request is resent,
unchanged, after a NAK, a damaged or truncated response, or silence; the device answers a repeated
request from its cache, so nothing runs twice. The data per frame halves after a retry and doubles
after a clean run, which keeps frames short enough to get through a noisy link.
"""

import binascii
import hashlib
import os
import random
import struct
import time

from ..device import format as F
from ..device import protocol as P
from .errors import HostError

_POLL_S = 0.01              # pyserial read timeout: the granularity of every wait below
_MIN_DATA = 32


class DeviceRefused(HostError):
    """The board answered a request with an ERR frame (not a link error: resending will not help)."""

    def __init__(self, code, msg):
        HostError.__init__(self, msg)
        self.code = code


def open_serial(port):
    import serial
    try:
        ser = serial.serial_for_url(port, baudrate=115200, timeout=_POLL_S)
    except (serial.SerialException, ValueError, OSError) as e:
        raise HostError("cannot open %s: %s" % (port, e)) from None
    try:
        ser.reset_input_buffer()
    except (serial.SerialException, OSError):
        pass
    return ser


class Client:
    """The protocol over `ser` (a pyserial object, or anything with read(n), write(b) and a read timeout
    of about _POLL_S). timeout: seconds to wait for a first answer; frame_timeout: silence after which a
    request is resent; retries: resends per request."""

    def __init__(self, ser, *, name="the link", timeout=5.0, frame_timeout=1.0, retries=40, gap_ms=25,
                 max_data=P.MAX_DATA):
        self.ser = ser
        self.name = name
        self.timeout = timeout
        self.frame_timeout = frame_timeout
        self.retries = retries
        self.gap_ms = gap_ms
        self.port = P.Port(self._rd, ser.write)
        self.seq = random.randrange(0xFFFF)
        self.max_data = self.chunk = max_data
        self._clean = 0
        self._until = 0.0
        self.heard = False
        self.dev = None
        self.link = dict(requests=0, resends=0, naks=0, timeouts=0, damaged=0, bytes_sent=0)

    @classmethod
    def open(cls, port, **kw):
        return cls(open_serial(port), name=port, **kw)

    def close(self):
        self.ser.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _rd(self, buf, a, b, ms):
        end = time.monotonic() + ms / 1000.0
        while True:
            data = self.ser.read(b - a)
            if data:
                buf[a:a + len(data)] = data
                return len(data)
            if time.monotonic() >= end:
                return 0

    # ---- one request -------------------------------------------------------------------------------
    def request(self, typ, payload=b"", *, long_s=60.0, budget_s=None):
        """Send a request and return its response payload. Resends on NAK, damage or silence (at most
        self.retries times, and for at most budget_s seconds if given); a WAIT from the board extends the
        wait to long_s. Raises DeviceRefused for an ERR frame, HostError when the retries run out."""
        self.seq = (self.seq + 1) % 0xFFFF
        seq, n = self.seq, len(payload)
        if n > P.MAX_PAYLOAD:
            raise ValueError("payload of %d bytes" % n)
        self.port.tx[P.HDR:P.HDR + n] = payload
        frame = bytes(self.port.txv[:self.port.frame(self.port.tx, typ, seq, n)])
        t0 = time.monotonic()
        stop = None if budget_s is None else t0 + budget_s
        self.link["requests"] += 1
        self._until = 0.0                     # after a WAIT: the long deadline, for every resend too
        for attempt in range(self.retries + 1):
            if attempt:
                self.link["resends"] += 1
                self._clean = 0
                self.chunk = max(_MIN_DATA, self.chunk // 2)
            if stop is not None and time.monotonic() >= stop:
                break
            try:
                self.ser.write(frame)
                self.link["bytes_sent"] += len(frame)
                rsp = self._await(typ, seq, long_s, stop)
            except OSError as e:              # serial.SerialException too: the port went away
                raise HostError("the link to %s failed: %s" % (self.name, e)) from None
            if rsp is not None:
                self._clean += 1
                if self._clean >= 8 and self.chunk < self.max_data:
                    self.chunk, self._clean = min(self.max_data, self.chunk * 2), 0
                return rsp
        what = P.NAMES.get(typ, hex(typ))
        if not self.heard:
            raise HostError("no answer from %s within %.1f s: is the board connected and running the tileswap "
                            "server? (`tileswap deploy --port PORT` installs it; `tileswap board` emulates a "
                            "board)" % (self.name, budget_s or time.monotonic() - t0))
        raise HostError("%s to %s failed after %d attempts: the link is too noisy or the board stopped answering "
                        "(see `tileswap hil --port PORT --stats`)" % (what, self.name, attempt + 1))

    def _await(self, typ, seq, long_s, stop):
        """The response payload, or None to resend."""
        end = max(time.monotonic() + self.frame_timeout, self._until)
        port = self.port
        while True:
            now = time.monotonic()
            left = min(end, stop) - now if stop is not None else end - now
            if left <= 0:
                self.link["timeouts"] += 1
                return None
            r = port.recv(int(left * 1000) + 1, self.gap_ms)
            if r == P.R_IDLE:
                continue
            if r != P.R_FRAME:
                if not self.heard:            # a REPL's echo, a boot banner: no board server (yet)
                    continue
                self.link["damaged"] += 1
                return None
            if port.typ == P.T_NAK and port.seq in (seq, P.SEQ_UNKNOWN):
                self.heard = True
                self.link["naks"] += 1
                return None
            if port.seq != seq:
                continue                      # a late copy of an earlier response, or our own echo
            body = bytes(port.rxv[P.HDR:P.HDR + port.n])
            if port.typ == typ | P.RESP:
                self.heard = True
                return body
            if port.typ == P.T_WAIT:
                self.heard = True
                end = self._until = time.monotonic() + long_s
            elif port.typ == P.T_ERR:
                self.heard = True
                raise DeviceRefused(body[0] if body else 0, "the board refused %s: %s"
                                    % (P.NAMES.get(typ, hex(typ)), body[1:].decode("utf-8", "replace")))

    # ---- commands ---------------------------------------------------------------------------------
    def connect(self):
        """HELLO: returns the board's description (a dict, see protocol.HELLO_FIELDS, plus `message`)."""
        rsp = self.request(P.T_HELLO, struct.pack(P.HELLO_REQ, P.VERSION_MAJOR, P.VERSION_MINOR, P.MAX_PAYLOAD),
                           budget_s=self.timeout)
        n = struct.calcsize(P.HELLO_RSP)
        if len(rsp) < n:
            raise HostError("%s answered HELLO with %d bytes: not a tileswap board of this version"
                            % (self.name, len(rsp)))
        d = P.unpack(P.HELLO_RSP, P.HELLO_FIELDS, rsp)
        d["message"] = rsp[n:].decode("utf-8", "replace")
        d["state"] = P.STATE_NAMES[d["image_state"]] if d["image_state"] < len(P.STATE_NAMES) else "?"
        self.max_data = min(P.MAX_DATA, d["max_payload"] - 8)
        self.chunk = min(self.chunk, self.max_data)
        self.dev = d
        return d

    def put_image(self, image, *, verify=True, progress=None, force=False):
        """Upload a tile image (bytes, a multiple of 512) to the board's card, header block last.
        Resumes at the first block the card does not hold (PUT_CHECK), also when the board restarted in
        the middle; force: send every block. Returns a dict: state, message, bytes_sent, resumed_at
        (the first block sent, per session), seconds, skipped (the card already held it)."""
        if len(image) % 512 or not image:
            raise HostError("the image is %d bytes, not a whole number of 512-byte blocks: is it a .tsi?" % len(image))
        nb = len(image) // 512
        dev = self.dev or self.connect()
        if image[:4] == F.MAGIC:
            need = F.unpack_named(F.HDR_FMT, F.HDR_FIELDS, image)["total_blocks"]
            if need > dev["card_blocks"]:
                raise HostError("the image needs %d blocks of card (with its spill and counter regions); the board's "
                                "card has %d" % (need, dev["card_blocks"]))
        if not force and verify and dev["image_state"] == P.S_READY and bytes(dev["image_id"]) == image[12:28]:
            return dict(state="ready", message="the card already holds this image", bytes_sent=0, resumed_at=[],
                        seconds=0.0, skipped=True)
        crcs = [binascii.crc32(image[i * 512:(i + 1) * 512]) for i in range(nb)]
        t0 = time.monotonic()
        sent, resumed = 0, []
        for _ in range(4):                    # a restart of the board ends the session: begin again
            try:
                self.request(P.T_PUT_BEGIN, struct.pack(P.PUT_BEGIN_REQ, nb, hashlib.sha256(image).digest()))
                have, head = (1, False) if force else self._held(nb, crcs)
                resumed.append(have)
                sent += self._send(image, max(have, 1) * 512, len(image), progress)
                if not head:
                    sent += self._send(image, 0, 512, progress)
                rsp = self.request(P.T_PUT_END, struct.pack(P.PUT_END_REQ, 1 if verify else 0), long_s=600.0)
                break
            except DeviceRefused as e:
                if e.code != P.E_STATE:
                    raise
                self.connect()
        else:
            raise HostError("the upload to %s kept being interrupted (the board restarted 4 times)" % self.name)
        out = dict(state=P.STATE_NAMES[rsp[0]], message=rsp[1:].decode("utf-8", "replace"), bytes_sent=sent,
                   resumed_at=resumed, seconds=time.monotonic() - t0, skipped=False)
        self.connect()
        return out

    def _held(self, nb, crcs):
        """PUT_CHECK: (the first of blocks 1.. the card does not hold, whether it holds block 0)."""
        have = 1
        while have < nb:
            k = min(nb - have, self.chunk // 4)
            m = struct.unpack(P.PUT_CHECK_RSP, self.request(
                P.T_PUT_CHECK, struct.pack("<I%dI" % k, have, *crcs[have:have + k])))[0]
            have += m
            if m < k:
                break
        head = struct.unpack(P.PUT_CHECK_RSP, self.request(P.T_PUT_CHECK, struct.pack("<II", 0, crcs[0])))[0]
        return have, head == 1

    def _send(self, image, a, b, progress):
        """PUT_DATA of image[a:b], from wherever the device says it stands; returns the bytes sent."""
        pos, sent = a, 0
        while pos < b:
            k = min(self.chunk, b - pos)
            nxt = struct.unpack_from(P.PUT_DATA_RSP, self.request(
                P.T_PUT_DATA, struct.pack(P.PUT_DATA_REQ, pos) + image[pos:pos + k]))[0]
            sent += k
            pos = nxt if a <= nxt <= b else pos + k
            if progress:
                progress(pos if a else len(image), len(image))
        return sent

    def infer(self, x, *, timeout=600.0):
        """One inference: x (the model's int8 input bytes) -> (output bytes, the device's counters)."""
        x = bytes(x)
        pos = 0
        while pos < len(x):
            k = min(self.chunk, len(x) - pos)
            self.request(P.T_INPUT, struct.pack(P.INPUT_REQ, pos) + x[pos:pos + k])
            pos += k
        info = P.unpack(P.INFER_RSP, P.INFER_FIELDS, self.request(
            P.T_INFER, struct.pack(P.INFER_REQ, len(x), binascii.crc32(x)), long_s=timeout))
        n = self.dev["output_size"] if self.dev else 0
        out = bytearray()
        while len(out) < n:
            out += self.request(P.T_OUTPUT, struct.pack(P.OUTPUT_REQ, len(out), min(self.chunk, n - len(out))))
        if binascii.crc32(out) != info["output_crc"]:
            raise HostError("the output read back from %s does not match its CRC" % self.name)
        return bytes(out), info

    def stats(self):
        rsp = self.request(P.T_STATS)
        return P.unpack(P.STATS_RSP, P.STATS_FIELDS, rsp)

    def reset_counters(self):
        self.request(P.T_RESET_COUNTERS)

    def exit_server(self):
        """Stop the board's server: it returns to the REPL (deploy does this before it uses the raw REPL)."""
        self.request(P.T_EXIT)


# ---- deploy: the runtime through MicroPython's raw REPL (mpremote), the image through PUT_IMAGE -------
MAIN_PY = b"""# written by `tileswap deploy`: serve the tileswap HIL protocol on the USB serial link at boot
import tileswap_device.server
tileswap_device.server.main()
"""
KEY_FILE = "tileswap.key"
# sys.implementation._mpy >> 10: the board's native architecture, as mpy-cross names it
_MPY_ARCH = {1: "x86", 2: "x64", 4: "armv6m", 5: "armv7m", 7: "armv7emsp", 8: "armv7emdp", 9: "xtensa",
             10: "xtensawin", 11: "rv32imc"}
_HASHES = """import os, hashlib, binascii
try:
    os.mkdir('%s')
except OSError:
    pass
def _h(p):
    h = hashlib.sha256()
    with open(p, 'rb') as f:
        while True:
            b = f.read(512)
            if not b:
                break
            h.update(b)
    return binascii.hexlify(h.digest()).decode()
r = {}
for d, names in (('', ('main.py',)), ('%s/', None)):
    try:
        for n in names or os.listdir(d[:-1]):
            r[d + n] = _h(d + n)
    except OSError:
        pass
print(repr(r))
"""


def deploy(port, *, image=None, key=None, arch=None, timeout=10.0, say=lambda m: None):
    """Install the runtime on the board at `port` and make it serve the protocol at boot; then upload
    `image` if given. The runtime goes through MicroPython's raw REPL (mpremote): compiled for the
    board's architecture (asked from the board unless `arch`), only files that differ are copied, and
    /main.py starts the server. `key` (32 bytes) is written to the board's flash only when given: it
    crosses the link once, in the clear (docs/protocol.md). Returns the upload's result, or None."""
    from mpremote.transport import TransportError, TransportExecError
    from mpremote.transport_serial import SerialTransport
    import ast
    import tempfile
    from .micropython import PACKAGE, bundle
    try:                                    # a running server gives the link back to the REPL (EXIT is
        with Client.open(port, frame_timeout=0.3) as c:     # the same in every protocol version)
            c.request(P.T_EXIT, budget_s=1.0)
            say("stopped the tileswap server on %s" % port)
    except HostError:
        pass
    try:
        t = SerialTransport(port, baudrate=115200)
    except TransportError as e:
        raise HostError("cannot open %s: %s" % (port, e)) from None
    try:
        t.enter_raw_repl(soft_reset=False)
        t.exec("import sys")
        mpy = t.eval("sys.implementation._mpy")
        arch = arch or _MPY_ARCH.get((mpy >> 10) & 0xF)
        if not arch:
            raise HostError("the board's MicroPython has no native code emitter (_mpy %d): pass --arch" % mpy)
        have = ast.literal_eval(t.exec(_HASHES % (PACKAGE, PACKAGE)).decode().strip())
        with tempfile.TemporaryDirectory(prefix="tileswap-deploy-") as tmp:
            src = bundle(arch, tmp)
            files = {PACKAGE + "/" + f: open(os.path.join(src, f), "rb").read() for f in sorted(os.listdir(src))}
        files["main.py"] = MAIN_PY
        copied = 0
        for path, data in files.items():
            if have.get(path) != hashlib.sha256(data).hexdigest():
                t.fs_writefile(path, data, chunk_size=2048)
                copied += 1
        for path in have:
            if path not in files:
                t.fs_rmfile(path)
        if key is not None:
            t.fs_writefile(KEY_FILE, binascii.hexlify(key) + b"\n")
        say("runtime for %s on %s: %d of %d files copied%s" % (arch, port, copied, len(files),
                                                                "; key written to /" + KEY_FILE if key else ""))
        t.exit_raw_repl()
        t.serial.write(b"\x04")             # soft reset: the board boots into main.py, the server
    except TransportExecError as e:
        raise HostError("the board failed a deploy step: %s" % e.error_output.strip().splitlines()[-1]) from None
    except (TransportError, OSError) as e:
        raise HostError("cannot use the MicroPython REPL on %s: %s" % (port, e)) from None
    finally:
        try:
            t.close()
        except OSError:
            pass
    if image is None:
        return None
    with Client.open(port, timeout=timeout) as c:
        c.connect()
        return c.put_image(image)


# ---- the emulated board --------------------------------------------------------------------------------
FIRMWARE = """# The emulated board's firmware, for the unix port (`micropython -i firmware.py FLASH CARD`): what a
# board's own firmware provides (its SD card driver, its flash as the filesystem), then a board's boot:
# run /main.py, then the REPL. Soft reset (Ctrl-D at the REPL) ends the process; the Board restarts it.
import sys, os, vfs

class SDCard:   # the SD card: a host file of 512-byte blocks, MicroPython's block-device protocol
    def __init__(self, path):
        self.f = open(path, "r+b")
        self.f.seek(0, 2)
        self.n = self.f.tell() // 512
    def readblocks(self, n, buf, off=0):
        self.f.seek(n * 512 + off)
        if self.f.readinto(buf) != len(buf):
            raise OSError(5)
    def writeblocks(self, n, buf, off=0):
        self.f.seek(n * 512 + off)
        self.f.write(buf)
    def ioctl(self, op, arg):
        return self.n if op == 4 else 512 if op == 5 else 0

class _Support:   # `import tileswap_card`: how tileswap_device.server finds this board's card
    def __init__(self, card):
        self.card = card
    def bdev(self):
        return self.card

sys.modules["tileswap_card"] = _Support(SDCard(sys.argv[2]))
vfs.umount("/")
vfs.mount(vfs.VfsPosix(sys.argv[1]), "/")     # the board's flash: one host folder, nothing else
os.chdir("/")
sys.path[:] = ["", "/lib", ".frozen"]
del SDCard, _Support

def _boot():
    try:
        src = open("main.py").read()
    except OSError:
        return
    try:
        exec(src, {"__name__": "__main__"})
    except BaseException as e:    # like a board: the traceback on the REPL, then the REPL
        sys.print_exception(e)

_boot()
del _boot
"""


class Faults:
    """The fault-injecting shim: each byte is dropped with probability rate/2, else replaced by another
    value with probability rate/2 (seeded, so a failing run can be repeated)."""

    def __init__(self, rate, seed=1):
        self.rate = rate
        self.rng = random.Random(seed)
        self.dropped = self.corrupted = self.bytes = 0

    def apply(self, data):
        if not self.rate:
            return data
        out = bytearray()
        rnd = self.rng.random
        half = self.rate / 2
        for b in data:
            r = rnd()
            if r < half:
                self.dropped += 1
                continue
            if r < self.rate:
                b ^= self.rng.randrange(1, 256)
                self.corrupted += 1
            out.append(b)
        self.bytes += len(data)
        return bytes(out)


class Board:
    """A MicroPython board emulated by the real unix-port interpreter on a pseudo-terminal.

    The interpreter's stdin/stdout is the slave of one pty (raw mode); the user's end is the slave of
    a second pty, `port` (a path pyserial, mpremote or a terminal opens); a relay thread copies bytes
    between the two masters, through `faults` (a Faults, or a rate) when given, like a noisy cable.
    The board's flash is a folder (`flash`, the interpreter sees nothing else), its SD card a file
    (`card`). When the interpreter exits (soft reset, crash, kill()) it is started again, as a board
    reboots, unless kill(restart=False) or stop()."""

    def __init__(self, *, heap=256 * 1024, flash=None, card=None, card_size=64 << 20, faults=None, log=None):
        import tempfile
        self.heap = heap
        self._tmp = tempfile.TemporaryDirectory(prefix="tileswap-board-")
        self.flash = os.path.abspath(flash or os.path.join(self._tmp.name, "flash"))
        self.card = os.path.abspath(card or os.path.join(self._tmp.name, "card.img"))
        try:
            os.makedirs(self.flash, exist_ok=True)
            if not os.path.exists(self.card):
                with open(self.card, "wb") as f:
                    f.truncate(card_size)
        except OSError as e:
            self._tmp.cleanup()
            raise HostError("cannot make the board's flash or card: %s" % e) from None
        self.faults = Faults(faults) if isinstance(faults, (int, float)) else faults
        self.log = log
        self.boots = 0
        self.relayed = [0, 0]             # bytes host -> board, board -> host
        self.proc = None
        self.port = None
        self._hold = False
        self._stop = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def install(self, bundle_dir, *, key=None, main=True):
        """For tests and benchmarks: put a runtime bundle (and the key, and main.py) straight into the
        flash folder, as `tileswap deploy` would over the link."""
        import shutil
        from .micropython import PACKAGE
        dst = os.path.join(self.flash, PACKAGE)
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(bundle_dir, dst)
        if key is not None:
            with open(os.path.join(self.flash, KEY_FILE), "wb") as f:
                f.write(binascii.hexlify(key) + b"\n")
        mp = os.path.join(self.flash, "main.py")
        if main:
            with open(mp, "wb") as f:
                f.write(MAIN_PY)
        elif os.path.exists(mp):
            os.unlink(mp)

    def start(self):
        """Power on (or back on after kill(restart=False)); returns the port path."""
        import threading
        import tty
        self._hold = False
        if self._stop is not None:
            self._wake.set()
            return self.port
        from .micropython import _tool
        self._mp = _tool("micropython")
        self._fw = os.path.join(self._tmp.name, "firmware.py")
        with open(self._fw, "w") as f:
            f.write(FIRMWARE)
        self._md, self._sd = os.openpty()         # the interpreter's side
        self._mh, self._sh = os.openpty()         # the user's side: its slave is the port
        for fd in (self._sd, self._sh):
            tty.setraw(fd)
        for fd in (self._md, self._mh):
            os.set_blocking(fd, False)
        self.port = os.ttyname(self._sh)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._up = threading.Event()
        self._threads = [threading.Thread(target=f, daemon=True) for f in (self._relay, self._supervise)]
        for th in self._threads:
            th.start()
        self._up.wait(10)
        return self.port

    def wait_boot(self, n, timeout=10.0):
        """For tests: wait until the interpreter has been started n times."""
        end = time.monotonic() + timeout
        while self.boots < n or self.proc is None or self.proc.poll() is not None:
            if time.monotonic() > end:
                raise HostError("the emulated board did not boot")
            time.sleep(0.01)

    def kill(self, restart=True):
        """Kill the interpreter at once (a reset, or with restart=False a power cut until start())."""
        self._hold = not restart
        p = self.proc
        if p is not None and p.poll() is None:
            p.kill()

    def stop(self):
        if self._stop is None:
            return
        self._stop.set()
        self._wake.set()
        self.kill(restart=False)
        for th in self._threads:
            th.join(5)
        for fd in (self._md, self._sd, self._mh, self._sh):
            os.close(fd)
        self._stop = None
        self._tmp.cleanup()

    def _supervise(self):
        import subprocess
        err = open(self.log, "ab") if self.log else None       # default: this process's stderr
        try:
            while not self._stop.is_set():
                if self._hold:
                    self._wake.wait(0.1)
                    self._wake.clear()
                    continue
                self.proc = subprocess.Popen(
                    [self._mp, "-X", "heapsize=%d" % self.heap, "-i", self._fw, self.flash, self.card],
                    stdin=self._sd, stdout=self._sd, stderr=err, start_new_session=True)
                self.boots += 1
                self._up.set()
                if self._stop.is_set():           # stop() came while it was starting
                    self.proc.kill()
                self.proc.wait()
                time.sleep(0.02)
        finally:
            if err is not None:
                err.close()

    def _relay(self):
        import select
        a, b = self._mh, self._md
        q = {a: bytearray(), b: bytearray()}      # bytes waiting to be written to each master
        limit = 1 << 16
        while not self._stop.is_set():
            rl = [fd for fd in (a, b) if len(q[b if fd == a else a]) < limit]
            wl = [fd for fd in (a, b) if q[fd]]
            try:
                r, w, _ = select.select(rl, wl, [], 0.05)
            except (OSError, ValueError):
                return
            for fd in r:
                try:
                    data = os.read(fd, 1 << 16)
                except (BlockingIOError, OSError):
                    continue
                self.relayed[fd == b] += len(data)
                if self.faults is not None:
                    data = self.faults.apply(data)
                q[b if fd == a else a] += data
            for fd in w:
                try:
                    n = os.write(fd, q[fd])
                except (BlockingIOError, OSError):
                    n = 0
                del q[fd][:n]

    def raw_throughput(self, nbytes=1 << 20):
        """Bytes/s from the port into the interpreter with no protocol: a raw-REPL program reads nbytes
        from stdin (the board must be at its REPL, not serving)."""
        from mpremote.transport_serial import SerialTransport
        nbytes -= nbytes % 4096
        t = SerialTransport(self.port, baudrate=115200)
        try:
            t.enter_raw_repl(soft_reset=False)
            t.exec_raw_no_follow("import sys\nb = bytearray(4096)\nn = 0\nwhile n < %d:\n n += sys.stdin.buffer."
                                 "readinto(b)\nprint(n)" % nbytes)
            data = os.urandom(nbytes)
            t0 = time.monotonic()
            t.serial.write(data)
            out, err = t.follow(60)
            dt = time.monotonic() - t0
            if err or int(out) != nbytes:
                raise HostError("the raw throughput probe failed: %r %r" % (out, err))
            t.exit_raw_repl()
        finally:
            t.close()
        return nbytes / dt


def measure_throughput(*, nbytes=256 * 1024, raw_bytes=4 << 20, heap=256 * 1024, faults=None):
    """PUT_IMAGE throughput over the emulated board's pty, beside the raw throughput of the same pty
    (bytes/s): a random nbytes blob goes through PUT_BEGIN/CHECK/DATA/END (SHA-256 checked on the card,
    not opened as an image); raw_bytes go into a raw-REPL program that only reads them. `faults` (a
    rate) applies to the upload only. For `tileswap bench`."""
    import tempfile
    from .micropython import bundle
    with tempfile.TemporaryDirectory(prefix="tileswap-tput-") as tmp:
        src = bundle("x64", tmp)
        with Board(heap=heap) as b:
            b.install(src, main=False)
            b.wait_boot(1)
            raw = b.raw_throughput(raw_bytes)   # the raw REPL has no retries: measured without faults
            b.install(src, main=True)
            b.kill()                            # reboot into the server
            b.wait_boot(2)
            b.faults = Faults(faults) if faults else None
            blob = os.urandom(nbytes - nbytes % 512)
            with Client.open(b.port) as c:
                c.connect()
                t0 = time.monotonic()
                res = c.put_image(blob, verify=False, force=True)
                dt = time.monotonic() - t0
                link = dict(c.link)
    return dict(put_bytes=len(blob), put_seconds=dt, put_bytes_per_s=len(blob) / dt, raw_bytes=raw_bytes,
                raw_bytes_per_s=raw, frame_data=P.MAX_DATA, put_state=res["state"], link=link,
                faults=0.0 if faults is None else faults)
