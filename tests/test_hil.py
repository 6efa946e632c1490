"""Hardware in the loop against the real MicroPython interpreter on a pseudo-terminal (host/hil.py Board):
bit-exact with the emulator, through 1% of bytes dropped or corrupted, across a device killed in the
middle of an upload, and a device that never crashes on malformed frames."""

import binascii
import json
import os
import random
import re
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

from tileswap.device import protocol as P
from tileswap.host.emulator import Emulator
from tileswap.host.errors import HostError
from tileswap.host.hil import Board, Client, DeviceRefused, Faults, measure_throughput
from tileswap.host.micropython import bundle
from tileswap.tiler.compile import compile_model

from conftest import DIGITS

X = np.load(os.path.join(os.path.dirname(DIGITS), "digits_test.npz"))["x_int8"]
HEAP = 256 * 1024
KEYS = ("bytes_read", "bytes_written", "blocks_read", "blocks_written", "macs", "tiles")


@pytest.fixture(scope="module")
def image(digits, key):
    return compile_model(digits, sram=4096, key=key)[0]


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    """The real x64 bundle, viper kernels included: what `tileswap deploy` copies to a board."""
    return bundle("x64", str(tmp_path_factory.mktemp("bundle")))


@pytest.fixture(scope="module")
def emu(image, key):
    e = Emulator(image, key)
    yield e
    e.close()


def board(runtime, key, tmp_path, **kw):
    b = Board(heap=HEAP, log=str(tmp_path / "board.log"), **kw)
    b.install(runtime, key=key)
    b.start()
    b.wait_boot(1)
    return b


def check_bit_exact(c, emu, n, first=0):
    for i in range(first, first + n):
        y, info = c.infer(X[i].tobytes())
        want = emu.run(X[i])
        got = np.frombuffer(y, dtype=np.int8)
        assert (got == want).all(), "input %d: first mismatch at %d" % (i, int(np.argmax(got != want)))
        assert {k: info[k] for k in KEYS} == {k: emu.counters()[k] for k in KEYS}


# ---- framing, in CPython ------------------------------------------------------------------------
class Pipe:
    def __init__(self, data=b""):
        self.data = bytearray(data)

    def rd(self, buf, a, b, ms):
        k = min(b - a, len(self.data))
        buf[a:a + k] = self.data[:k]
        del self.data[:k]
        return k


def test_frames_resync_and_reject():
    out = bytearray()
    tx = P.Port(None, out.extend)
    tx.tx[P.HDR:P.HDR + 5] = b"hello"
    tx.put(P.T_HELLO, 7, 5)
    good = bytes(out)
    fake = bytes([P.SOF]) + b"\x01\x02\x03"            # a start byte in the noise, then no header
    rx = P.Port(Pipe(b"noise" + fake + good).rd, None)
    assert rx.recv(0, 0) == P.R_FRAME and (rx.typ, rx.seq, bytes(rx.rxv[P.HDR:P.HDR + rx.n])) == (1, 7, b"hello")
    assert rx.skipped == 5 + len(fake)
    bad = bytearray(good)
    bad[P.HDR + 1] ^= 0x10
    for data, want in ((bytes(bad), P.R_BAD_CRC), (good[:-3], P.R_SHORT), (b"\x00" * 9, P.R_GARBAGE), (b"", P.R_IDLE)):
        rx = P.Port(Pipe(data).rd, None)
        assert rx.recv(0, 0) == want
    small = P.Port(Pipe(good).rd, None, payload=4)
    assert small.recv(0, 0) == P.R_TOO_LONG and small.seq == 7


def test_receiving_noise_allocates_nothing_per_byte(runtime):
    """On MicroPython, byte by byte (a board's USB stdin): the heap use of Port.recv over noise does
    not grow with the number of bytes."""
    script = """
import sys, gc
sys.path.insert(0, %r)
from tileswap_device import protocol as P
for n in (1000, 8000):
    src = bytearray(b'noise \\x03\\x04\\xa5 ' * (n // 10))
    pos = [0]
    def rd(buf, a, b, ms):
        i = pos[0]
        if i >= len(src):
            return 0
        buf[a] = src[i]
        pos[0] = i + 1
        return 1
    port = P.Port(rd, None)
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    r = port.recv(0, 0)
    print(r, port.skipped, gc.mem_alloc() - before)
    gc.enable()
""" % os.path.dirname(runtime)
    from tileswap.host.micropython import _tool
    out = subprocess.run([_tool("micropython"), "-c", script], capture_output=True, text=True, timeout=60)
    (r1, s1, a1), (r2, s2, a2) = [tuple(map(int, line.split())) for line in out.stdout.split("\n") if line]
    assert r1 == r2 == P.R_GARBAGE and (s1, s2) == (1000, 8000) and max(a1, a2) < 200, out.stdout + out.stderr


# ---- over the pty --------------------------------------------------------------------------------
def test_inference_over_the_link_is_bit_exact(runtime, key, image, emu, tmp_path):
    with board(runtime, key, tmp_path) as b, Client.open(b.port) as c:
        dev = c.connect()
        assert (dev["major"], dev["state"], dev["mp_major"], dev["mp_minor"]) == (P.VERSION_MAJOR, "none", 1, 29)
        up = c.put_image(image)
        assert up["state"] == "ready" and up["bytes_sent"] == len(image), up
        assert c.dev["sram_budget"] == 4096 and c.dev["input_size"] == 64 and c.dev["output_size"] == 10
        check_bit_exact(c, emu, 5)
        with pytest.raises(DeviceRefused, match="each input runs once") as e:   # its spill nonce is spent
            c.request(P.T_INFER, struct.pack(P.INFER_REQ, 64, binascii.crc32(X[4].tobytes())))
        assert e.value.code == P.E_STATE
        assert c.put_image(image)["skipped"]            # already there: nothing sent
        s = c.stats()
        assert s["inferences"] == 5 and s["bytes_read"] > 0 and s["put_blocks_written"] == len(image) // 512
        c.reset_counters()
        s = c.stats()
        assert s["inferences"] == 5 and s["bytes_read"] == 0 and s["frames_rx"] == 1   # the nonce never goes back
        assert c.link["resends"] == 0


def test_an_older_image_uploaded_later_is_refused(runtime, key, digits, tmp_path):
    v1, v2 = (compile_model(digits, sram=4096, key=key, image_version=v)[0] for v in (1, 2))
    with board(runtime, key, tmp_path) as b, Client.open(b.port) as c:
        c.connect()
        assert c.put_image(v2)["state"] == "ready"
        up = c.put_image(v1)
        assert up["state"] == "invalid" and "older than version 2" in up["message"], up
        with pytest.raises(DeviceRefused, match="no image to run"):
            c.infer(X[0].tobytes())
        with open(os.path.join(b.flash, "tileswap.nv")) as f:         # the board's flash, off the card
            assert json.load(f) == {"image_version": 2}


def test_one_percent_of_bytes_dropped_or_corrupted(runtime, key, image, emu, tmp_path):
    faults = Faults(0.01, seed=2)
    with board(runtime, key, tmp_path, faults=faults) as b, Client.open(b.port) as c:
        c.connect()
        assert c.put_image(image)["state"] == "ready"
        check_bit_exact(c, emu, 3)
        s = c.stats()
        assert b.boots == 1
    assert faults.dropped > 20 and faults.corrupted > 20
    assert c.link["resends"] > 20 and s["naks"] > 0 and s["duplicates"] > 0, (c.link, s)


def test_upload_resumes_after_the_device_is_killed(runtime, key, digits, emu, tmp_path):
    img2 = compile_model(digits, sram=4096, key=key)[0]      # another compile: another image id
    with board(runtime, key, tmp_path) as b:
        with Client.open(b.port, max_data=128) as c:   # killed, restarted by the board, resumed in the same call
            c.connect()
            cut = []

            def reset(pos, total):
                if pos >= 4096 and not cut:
                    cut.append(pos)
                    b.kill()
            up = c.put_image(emu.image, progress=reset)
            assert b.boots == 2 and up["state"] == "ready"
            assert up["resumed_at"][0] == 1 and up["resumed_at"][1] >= 4096 // 512 - 1, up
            check_bit_exact(c, emu, 1)
        with Client.open(b.port, max_data=128, retries=2, frame_timeout=0.3) as c:   # a power cut, a new session
            c.connect()

            def cut_power(pos, total):
                if pos >= 6144 and not b._hold:
                    b.kill(restart=False)
            with pytest.raises(HostError, match="failed after 3 attempts"):
                c.put_image(img2, progress=cut_power)
        b.start()
        b.wait_boot(3)
        with Client.open(b.port) as c:
            assert c.connect()["state"] == "none"          # a half-written image is never an image
            up = c.put_image(img2)
            assert up["state"] == "ready" and up["resumed_at"] == [12] and up["bytes_sent"] == len(img2) - 11 * 512, up
            e2 = Emulator(img2, key)
            check_bit_exact(c, e2, 2)
            e2.close()


def _frame(typ, seq, payload):
    p = P.Port(None, None)
    p.tx[P.HDR:P.HDR + len(payload)] = payload
    return bytes(p.txv[:p.frame(p.tx, typ, seq, len(payload))])


def _answers(c, data, quiet_ms=150):
    """Write raw bytes, collect every frame the board sends until it is quiet."""
    c.ser.write(data)
    got = []
    while True:
        r = c.port.recv(quiet_ms, 30)
        if r == P.R_IDLE:
            return got
        assert r == P.R_FRAME, "the board sent a damaged frame (%d)" % r
        got.append((c.port.typ, c.port.seq, bytes(c.port.rxv[P.HDR:P.HDR + c.port.n])))


def test_malformed_frames_never_crash_the_device(runtime, key, tmp_path):
    rng = random.Random(5)
    with board(runtime, key, tmp_path) as b, Client.open(b.port) as c:
        c.connect()
        hello = _frame(P.T_HELLO, 9, struct.pack(P.HELLO_REQ, 1, 0, 1032))
        naks = lambda got: [struct.unpack_from(P.NAK_PAY, g[2])[0] for g in got if g[0] == P.T_NAK]
        errs = lambda got: [g[2][0] for g in got if g[0] == P.T_ERR]
        assert P.R_GARBAGE in naks(_answers(c, b"hello board \x03\x04\x01 garbage"))
        bad = bytearray(hello)
        bad[-6] ^= 1
        assert naks(_answers(c, bytes(bad))) == [P.R_BAD_CRC]
        assert naks(_answers(c, hello[:11])) == [P.R_SHORT]
        long_hdr = bytearray(_frame(P.T_HELLO, 10, b""))[:P.HDR]
        struct.pack_into("<H", long_hdr, 4, 60000)
        struct.pack_into("<H", long_hdr, 6, binascii.crc32(bytes(long_hdr[1:6])) & 0xFFFF)
        assert naks(_answers(c, bytes(long_hdr) + bytes(300)))[0] == P.R_TOO_LONG
        cases = [(0x55, b""), (P.T_HELLO, struct.pack(P.HELLO_REQ, 9, 0, 64)), (P.T_HELLO, b"\x01"),
                 (P.T_PUT_DATA, struct.pack("<I", 0) + b"x"), (P.T_PUT_CHECK, b"\x00\x00\x00\x00"),
                 (P.T_PUT_BEGIN, struct.pack(P.PUT_BEGIN_REQ, 0, bytes(32))), (P.T_INFER, bytes(8)),
                 (P.T_INPUT, bytes(4)), (P.T_OUTPUT, bytes(8)), (P.T_PUT_END, b"\x01"), (P.T_INFER, b"")]
        want = [P.E_UNKNOWN, P.E_VERSION, P.E_ARGS, P.E_STATE, P.E_STATE, P.E_ARGS, P.E_STATE, P.E_STATE, P.E_STATE,
                P.E_STATE, P.E_ARGS]
        got = [errs(_answers(c, _frame(t, 100 + i, p))) for i, (t, p) in enumerate(cases)]
        assert got == [[w] for w in want], got
        for i in range(120):                 # random frames (valid CRC, random content) and random bytes
            typ = rng.choice([t for t in range(256) if t != P.T_EXIT])
            data = _frame(typ, 200 + i, bytes(rng.randrange(256) for _ in range(rng.randrange(40))))
            if i % 3 == 0:
                data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
            elif i % 3 == 1:
                data = data[:rng.randrange(len(data))] + bytes([rng.randrange(256)]) + data[rng.randrange(len(data)):]
            _answers(c, data, quiet_ms=25)
        assert c.connect()["major"] == P.VERSION_MAJOR
        assert c.stats()["errors"] > 10 and b.boots == 1 and b.proc.poll() is None


def _ts(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "tileswap.host.cli"] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=timeout)


def test_hil_on_a_silent_port_fails_within_its_timeout(image, tmp_path):
    (tmp_path / "d.tsi").write_bytes(image)
    np.save(tmp_path / "x.npy", X[0])
    m, s = os.openpty()                                  # a port nobody answers on
    try:
        for port in (os.ttyname(s), "loop://"):          # loop:// echoes our own frames back: still no answer
            t0 = time.monotonic()
            r = _ts("hil", tmp_path / "d.tsi", "--port", port, "--input", tmp_path / "x.npy", "--timeout", "1.5")
            dt = time.monotonic() - t0
            assert r.returncode == 1 and "no answer from %s within 1.5 s" % port in r.stderr, r.stderr
            assert dt < 1.5 + 2.0, dt                       # + the interpreter's start
    finally:
        os.close(m)
        os.close(s)
    r = _ts("hil", "--port", tmp_path / "no-such-port", "--stats")
    assert r.returncode == 1 and r.stderr.startswith("tileswap: cannot open"), r.stderr


def test_board_deploy_hil_from_the_command_line(image, key, emu, tmp_path):
    (tmp_path / "d.tsi").write_bytes(image)
    (tmp_path / "k").write_text(key.hex())
    np.save(tmp_path / "x.npy", X[:3])
    brd = subprocess.Popen([sys.executable, "-m", "tileswap.host.cli", "board", "--card", tmp_path / "card.img",
                            "--flash", tmp_path / "flash"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = re.search(r"on (/dev/pts/\d+)", brd.stdout.readline()).group(1)
        r = _ts("deploy", "--port", port, "--image", tmp_path / "d.tsi", "--key", tmp_path / "k", "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["upload"]["state"] == "ready"
        assert sorted(os.listdir(tmp_path / "flash")) == ["main.py", "tileswap.key", "tileswap.nv", "tileswap_device"]
        r = _ts("hil", tmp_path / "d.tsi", "--port", port, "--input", tmp_path / "x.npy", "--json")
        assert r.returncode == 0, r.stderr
        res = json.loads(r.stdout)
        assert res["upload"]["skipped"] and res["output"] == [emu.run(x).tolist() for x in X[:3]]
        r = _ts("hil", "--port", port, "--stats", "--json")
        assert r.returncode == 0 and json.loads(r.stdout)["stats"]["inferences"] == 3, r.stderr
        r = _ts("deploy", "--port", port)                  # again, over a running server: nothing to copy
        assert r.returncode == 0 and re.search(r"0 of \d+ files copied", r.stdout), r.stdout + r.stderr
    finally:
        brd.send_signal(signal.SIGINT)
        assert brd.wait(10) == 0
    left = [p for p in os.listdir("/proc") if p.isdigit() and str(tmp_path / "flash") in _cmdline(p)]
    assert not left, "the board left its interpreter running"


def _cmdline(pid):
    try:
        with open("/proc/%s/cmdline" % pid, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def test_put_image_throughput_beside_the_raw_pty(capsys):
    t = measure_throughput(nbytes=256 * 1024, raw_bytes=4 << 20)
    with capsys.disabled():
        print("\nHIL over the emulated board's pty: PUT_IMAGE %.0f bytes/s (%d bytes in %.2f s), raw pty %.0f bytes/s"
              % (t["put_bytes_per_s"], t["put_bytes"], t["put_seconds"], t["raw_bytes_per_s"]))
    assert t["put_state"] == "none"          # a random blob: stored and SHA-checked, never an image
    assert t["link"]["resends"] == 0 and 0 < t["put_bytes_per_s"] < t["raw_bytes_per_s"]
