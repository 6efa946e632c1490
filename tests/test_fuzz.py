"""Fuzzing: the image reader, the counter records, the fault-spec parser and the protocol frame parser
(device/protocol.py, Port.recv) get random and mutated input, and may only answer with the project's own
typed errors (the frame parser: with its R_* result codes, never an exception).

Derandomized, so `make test` is reproducible; `tileswap reliability` runs a longer seeded campaign
(fuzz rows of docs/reliability.md).
"""

import re
import struct

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import _fault_image as FI
from tileswap.device import DeviceError
from tileswap.device import format as F
from tileswap.device.counters import Counters
from tileswap.device.storage import BytesBlockDevice, Card
from tileswap.host import fault_campaign as CF
from tileswap.host.faults import FaultSpecError, parse_spec

FUZZ = settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
_B = []


def bench():
    if not _B:
        _B.append(CF.Bench(seed=21, inputs=2))
    return _B[0]


def _reader_only_typed_errors(data, key, verify=True):
    try:
        CF.read_image(data, key, verify=verify)
    except DeviceError:
        pass


HEADER_FIELDS = [f for f in F.HDR_FIELDS if f not in ("magic", "image_id", "model_sha256")]
EDGE = st.one_of(st.sampled_from([0, 1, 2, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF]), st.integers(0, 1 << 16))


def _set_field(image, field, value, key=None):
    fmt = re.findall(r"\d*[a-zA-Z?]", F.HDR_FMT[1:])[F.HDR_FIELDS.index(field)]
    if fmt in "fd":
        value = float(value)
    elif fmt in "BbHhIiQq":
        bits = struct.calcsize(fmt) * 8
        value = value % (1 << bits)
        if fmt.islower():
            value -= (1 << bits) * (value >= 1 << (bits - 1))
    return FI.set_header(image, key, **{field: value})


edits = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=8)
field_edits = st.lists(st.tuples(st.sampled_from(HEADER_FIELDS), EDGE), min_size=1, max_size=3)


def _apply(image, byte_edits, span):
    d = bytearray(image)
    for pos, v in byte_edits:
        d[pos % span] = v
    return bytes(d)


# ---- the image reader ----------------------------------------------------------------------------
@FUZZ
@given(head=st.binary(min_size=F.BLOCK, max_size=F.BLOCK), magic=st.booleans(), rest=st.booleans())
def test_random_header_blocks(head, magic, rest):
    b = bench()
    head = bytearray(head)
    if magic:
        head[:6] = F.MAGIC + struct.pack("<H", F.VERSION)
    data = bytes(head) + (b.card_bytes()[F.BLOCK:] if rest else b"")
    _reader_only_typed_errors(data, b.key)


@FUZZ
@given(byte_edits=edits, cut=st.one_of(st.none(), st.integers(0, 1 << 16)))
def test_mutated_images_are_refused_or_give_the_right_output(byte_edits, cut):
    """Mutations anywhere in header, tables or payloads, through the reader and a whole inference:
    a typed error, or (mutation in bytes nothing uses) the fault-free output, never another."""
    b = bench()
    data = _apply(b.image, byte_edits, len(b.image))
    if cut is not None:
        data = data[:cut % len(data)]
    _reader_only_typed_errors(data, b.key)
    try:
        rt = b.runtime(BytesBlockDevice(data + bytes(-len(data) % F.BLOCK)))
        out = b.infer(rt, b.inputs[0])
    except DeviceError:
        return
    assert out == b.gold[0]


@FUZZ
@given(fields=field_edits)
def test_header_fields_at_edge_values_with_the_key(fields):
    """Header fields set to edge values (the header MAC then fails, but structure is checked first)."""
    b = bench()
    img = b.image
    for name, v in fields:
        img = _set_field(img, name, v)
    _reader_only_typed_errors(b.card_bytes(img), b.key)


@FUZZ
@example(fields=[("n_tensors", 200)], byte_edits=[(0, 0)])
@given(fields=field_edits, byte_edits=edits)
def test_reader_without_a_key_only_typed_errors(fields, byte_edits):
    """`tileswap plan IMAGE` (no key) reads an unauthenticated header: it must still fail cleanly."""
    b = bench()
    img = b.image
    for name, v in fields:
        img = _set_field(img, name, v)
    h = FI.header(img)
    span = F.BLOCK + min(h["meta_len"], len(img) - F.BLOCK)
    img = FI.fix_meta_crc(_apply(img, [(F.BLOCK + p, v) for p, v in byte_edits], span))
    _reader_only_typed_errors(b.card_bytes(bytes(img)), None, verify=False)


@FUZZ
@example(byte_edits=[(0, 0)], fields=[("n_tensors", 200)])
@given(byte_edits=edits, fields=st.lists(st.tuples(st.sampled_from(["n_tensors", "n_ops", "n_tiles"]), EDGE),
                                          max_size=1))
def test_authentic_but_malformed_tables_only_typed_errors(byte_edits, fields):
    b = bench()
    img = b.image
    for name, v in fields:
        img = _set_field(img, name, v)
    h = FI.header(img)
    n = min(h["meta_len"], len(img) - F.BLOCK) - h["n_tiles"] * F.TILE_SIZE
    img = FI.remac(_apply(img, [(F.BLOCK + p % max(1, n), v) for p, v in byte_edits], len(img)), b.key)
    try:
        rt = b.runtime(BytesBlockDevice(b.card_bytes(bytes(img))))
        b.infer(rt, b.inputs[0])
    except DeviceError:
        pass


# ---- the counter records -------------------------------------------------------------------------
@FUZZ
@given(slots=st.tuples(st.binary(min_size=F.BLOCK, max_size=F.BLOCK), st.binary(min_size=F.BLOCK, max_size=F.BLOCK)),
       magic=st.tuples(st.booleans(), st.booleans()))
def test_random_counter_records_load_or_start_fresh(slots, magic):
    data = bytearray(F.BLOCK)
    for s, m in zip(slots, magic):
        s = bytearray(s)
        if m:
            s[:4] = F.CTR_MAGIC
        data += s
    c = Counters(Card(BytesBlockDevice(data)), 1, memoryview(bytearray(F.BLOCK)), lambda n: bytes(n))
    c.save()                                                  # and it can carry on
    assert c.seq >= 1


# ---- the fault spec ------------------------------------------------------------------------------
@FUZZ
@given(text=st.one_of(st.text(max_size=60), st.lists(st.tuples(
    st.sampled_from(["read-error", "bitflip", "bad-block", "power-loss", "seed", "torn-write", "x"]),
    st.sampled_from(["0.5", "1e-5", "2", "-1", "at:3", "random:0", "counter", "block:1:2", "3-1", "", "nan"])),
    max_size=4).map(lambda kv: ",".join("%s=%s" % p for p in kv))))
def test_fault_specs_parse_or_say_what_is_wrong(text):
    try:
        parse_spec(text)
    except FaultSpecError as e:
        assert "bad fault spec" in str(e)


# ---- the protocol frame parser ------------------------------------------------------------------
def _link(stream, chunks):
    """rd() over a byte stream, handing out at most chunks[i] bytes per call (cycled); 0 at the end."""
    pos = [0]
    calls = [0]

    def rd(buf, a, b, ms):
        k = min(b - a, chunks[calls[0] % len(chunks)], len(stream) - pos[0])
        calls[0] += 1
        buf[a:a + k] = stream[pos[0]:pos[0] + k]
        pos[0] += k
        return k
    return rd


def _receive_all(P, stream, chunks, cap):
    port = P.Port(_link(stream, chunks), lambda mv: None, payload=cap)
    codes = set(getattr(P, n) for n in dir(P) if n.startswith("R_"))
    got = []
    for _ in range(len(stream) + 2):          # every call consumes at least one byte or ends
        r = port.recv(0, 0)
        assert r in codes, r
        if r == P.R_IDLE:
            return got
        if r == P.R_FRAME:
            n = port.n
            assert n <= cap and port.crc == struct.unpack_from("<I", port.rx, P.HDR + n)[0]
            got.append((port.typ, port.seq, bytes(port.rx[P.HDR:P.HDR + n])))
    raise AssertionError("recv() did not reach the end of the stream")


frames_st = st.lists(st.tuples(st.integers(0, 255), st.integers(0, 0xFFFE), st.binary(max_size=300)), max_size=4)


@FUZZ
@given(frames=frames_st, garbage=st.lists(st.binary(max_size=40), min_size=5, max_size=5),
       flips=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 7)), max_size=4),
       chunks=st.lists(st.integers(1, 64), min_size=1, max_size=8), cap=st.sampled_from([64, 512, 1032]))
def test_protocol_frame_parser_survives_random_and_mutated_streams(frames, garbage, flips, chunks, cap):
    """Port.recv on garbage, valid frames and bit-flipped frames, delivered in arbitrary pieces: it only
    returns its R_* codes (never raises, never loops), an R_FRAME always passed its CRC, and with
    clean garbage (no SOF, no Ctrl-C) and no flips every frame that fits is recovered in order."""
    P = pytest.importorskip("tileswap.device.protocol")
    buf = bytearray(P.MAX_FRAME)
    sender = P.Port(None, None)
    stream = bytearray()
    for i, (typ, seq, pay) in enumerate(frames):
        stream += garbage[i]
        buf[P.HDR:P.HDR + len(pay)] = pay
        n = sender.frame(buf, typ, seq, len(pay))
        stream += buf[:n]
    stream += garbage[4]
    clean = bytes(stream)
    for pos, bit in flips:
        if stream:
            stream[pos % len(stream)] ^= 1 << bit
    got = _receive_all(P, bytes(stream), chunks, cap)
    quiet = not any(P.SOF in g or 3 in g for g in garbage)
    if quiet and bytes(stream) == clean:
        assert got == [f for f in frames if len(f[2]) <= cap]


@FUZZ
@given(stream=st.binary(max_size=4000), chunks=st.lists(st.integers(1, 600), min_size=1, max_size=8))
def test_protocol_frame_parser_survives_random_bytes(stream, chunks):
    P = pytest.importorskip("tileswap.device.protocol")
    _receive_all(P, stream, chunks, P.MAX_PAYLOAD)
