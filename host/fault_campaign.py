"""The fault campaign's building blocks: a compiled model on an emulated card, and trials of each fault
class (host/faults.py) that end in one of four outcomes.

    bench = Bench()                                     # the digits example, 1536-byte arena, random key
    row = rate_campaign(bench, "read-error=0.01", 200)  # {"trials": 200, "exact": 200, "refused": 0, ...}
    res = power_loss_trial(bench, bench.fresh_card(), "power-loss=random:80")

**exact**: the output equals the fault-free one; **refused**: a typed tileswap error, nothing output;
**wrong**: an output that differs (must never happen); **crash**: any other exception (must never
happen). Used by `tileswap reliability` (host/cmd_faults.py) and by the tests. The key is random (from
the seed) and stays in memory.
"""

import os
import random
import struct

from ..device import DeviceError
from ..device import format as F
from ..device.counters import FIELDS, parse_record
from ..device.runtime import Runtime
from ..device.storage import BytesBlockDevice
from .faults import FaultyBlockDevice, PowerLoss

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = os.path.join(ROOT, "examples", "digits", "digits_int8.tflite")
OUTCOMES = ("exact", "refused", "wrong", "crash")


class Bench:
    """A compiled model on a byte-array card, its fault-free outputs, and runtimes over such cards."""

    def __init__(self, model=None, *, sram=1536, key=None, inputs=8, seed=0, kernel="c"):
        from ..tiler.compile import compile_model
        from .emulator import host_ctr, kernels
        rng = random.Random(seed)
        if model is None:
            with open(DIGITS, "rb") as f:
                model = f.read()
        self.key = key or bytes(rng.getrandbits(8) for _ in range(32))
        self.image, _ = compile_model(model, sram=sram, key=self.key,
                                      image_id=bytes(rng.getrandbits(8) for _ in range(F.ID_LEN)))
        self.h = F.unpack_named(F.HDR_FMT, F.HDR_FIELDS, self.image)
        self.kernels = kernels(kernel)
        self.ctr = host_ctr
        card = self.fresh_card()
        dev = FaultyBlockDevice(card, "")            # counts block writes, injects nothing
        rt = self.runtime(dev)
        self.inputs = [bytes(rng.getrandbits(8) for _ in range(rt.input_size())) for _ in range(inputs)]
        w0 = dev.block_writes
        self.gold = [self.infer(rt, x) for x in self.inputs]
        self.writes_per_inference = (dev.block_writes - w0) // inputs

    def card_bytes(self, image=None):
        image = self.image if image is None else image
        return bytes(image) + bytes(max(0, self.h["total_blocks"] * F.BLOCK - len(image)))

    def fresh_card(self, image=None):
        return BytesBlockDevice(self.card_bytes(image))

    def runtime(self, bdev, **kw):
        kw.setdefault("ctr", self.ctr)
        return Runtime(bdev, self.key, self.kernels, **kw)

    @staticmethod
    def infer(rt, x):
        rt.set_input(x)
        rt.infer()
        out = bytearray(rt.output_size())
        rt.read_output(out)
        return bytes(out)


def _row(name, spec, note=""):
    r = dict(fault=name, spec=spec, trials=0, injected=0, note=note, errors={})
    r.update((o, 0) for o in OUTCOMES)
    return r


def _trial(row, fn):
    """Run fn() -> bool (output exact?) and count the outcome in row; returns the outcome."""
    try:
        out, detail = ("exact" if fn() else "wrong"), None
    except DeviceError as e:
        out, detail = "refused", "%s: %s" % (type(e).__name__, e)
    except Exception as e:        # noqa: BLE001 -- counted and reported, never hidden
        out, detail = "crash", "%s: %s" % (type(e).__name__, e)
    row["trials"] += 1
    row[out] += 1
    if detail:
        kind = detail.split(":")[0]
        row["errors"][kind] = row["errors"].get(kind, 0) + 1
        if out == "crash" and "first_crash" not in row:
            row["first_crash"] = detail[:200]
    row["last"] = detail
    return out


# ---- faults during inference ----------------------------------------------------------------------
def rate_campaign(bench, spec, n, *, seed=0, name=None, per_boot=10, note=""):
    """n inferences through a card with `spec` faults, rebooting every `per_boot` and after a refusal."""
    row = _row(name or spec, spec, note)
    dev = FaultyBlockDevice(bench.fresh_card(), spec, seed=seed)
    rt = [None]
    for i in range(n):
        k = i % len(bench.inputs)

        def once():
            if rt[0] is None or i % per_boot == 0:
                rt[0] = None
                rt[0] = bench.runtime(dev)
            return bench.infer(rt[0], bench.inputs[k]) == bench.gold[k]
        if _trial(row, once) != "exact":
            rt[0] = None
    row["injected"] = sum(dev.injected.values())
    return row


def bad_block_campaign(bench):
    """Each block of the card made permanently bad in turn; a refusal must name that block."""
    row = _row("permanent bad block, each card block in turn", "bad-block=B")
    named = 0
    for b in range(bench.h["total_blocks"]):
        dev = FaultyBlockDevice(bench.fresh_card(), "bad-block=%d" % b)
        if _trial(row, lambda: bench.infer(bench.runtime(dev), bench.inputs[0]) == bench.gold[0]) == "refused":
            named += ("block %d " % b) in row["last"] + " "
        row["injected"] += dev.injected["bad-block"] > 0
    row["named"] = named
    row["note"] = ("%d of %d refusals name the bad block; exact = a block this inference does not touch "
                   "(alignment gaps, the rest of the spill ring)" % (named, row["refused"]))
    return row


# ---- power loss -----------------------------------------------------------------------------------
def snapshot(rt):
    """(seq, counter values) the runtime holds in memory."""
    c = rt.counters
    return (c.seq, tuple(c.v[f] for f in FIELDS))


def persisted(card, h):
    """(seq, counter values) of the newest valid counter record on the card; (0, zeros) if none."""
    best = (0, tuple(0 for _ in FIELDS))
    blk = bytearray(F.BLOCK)
    for s in range(2):
        card.readblocks(h["counter_block"] + s, blk)
        rec = parse_record(blk)
        if rec is not None and rec["seq"] > best[0]:
            best = (rec["seq"], tuple(rec[f] for f in FIELDS))
    return best


def power_loss_trial(bench, card, spec, *, seed=0, inferences=3):
    """Boot and run up to `inferences` inferences on `card` through a device that loses power per `spec`;
    then reboot (a new runtime on the card, no faults) and run one more. Returns a dict: lost, where
    (the torn block), step (boot/set_input/infer/read_output), exact (the reboot's inference), ok_before
    (inferences completed before the loss were exact), counters_ok (the reboot loaded the last completed
    save or the interrupted one, nothing older and nothing else), loaded and allowed."""
    dev = FaultyBlockDevice(card, spec, seed=seed)
    res = dict(lost=False, where=None, step=None, ok_before=True)
    rt = None
    step = "boot"
    before = persisted(card, bench.h)
    try:
        rt = bench.runtime(dev)
        for j in range(inferences):
            k = (seed + j) % len(bench.inputs)
            step, before = "set_input", persisted(card, bench.h)
            rt.set_input(bench.inputs[k])
            step, before = "infer", persisted(card, bench.h)
            rt.infer()
            step = "read_output"
            out = bytearray(rt.output_size())
            rt.read_output(out)
            res["ok_before"] &= bytes(out) == bench.gold[k]
        allowed = [persisted(card, bench.h)]
    except PowerLoss as e:
        res.update(lost=True, where=e.block, step=step)
        interrupted = snapshot(rt) if rt is not None else (before[0] + 1, before[1])
        allowed = [before, interrupted]
    rt2 = bench.runtime(card)
    res["loaded"] = snapshot(rt2)
    res["allowed"] = allowed
    res["counters_ok"] = res["loaded"] in allowed
    k = seed % len(bench.inputs)
    res["exact"] = bench.infer(rt2, bench.inputs[k]) == bench.gold[k]
    return res


def power_loss_campaign(bench, n, *, seed=0, where="random"):
    """n power losses on one card (state carries over, as on a device): at random block writes, or at
    the K-th write into the counter or spill region."""
    spec_of = {"random": lambda i: "power-loss=random:%d" % (3 * bench.writes_per_inference),
               "counter": lambda i: "power-loss=counter:%d" % (1 + i % 6),
               "spill": lambda i: "power-loss=spill:%d" % (1 + i % max(1, bench.writes_per_inference - 6))}[where]
    name = {"random": "power loss at a random block write", "counter": "power loss during a counter update",
            "spill": "power loss during a spill write"}[where]
    row = _row(name, spec_of(0).rsplit(":", 1)[0] + ":K")
    card = bench.fresh_card()
    bad_counters = 0
    steps = {}
    for i in range(n):
        got = {}

        def once():
            got.update(power_loss_trial(bench, card, spec_of(i), seed=seed + i))
            return got["exact"] and got["ok_before"]
        _trial(row, once)
        if got:
            row["injected"] += got["lost"]
            bad_counters += not got["counters_ok"]
            steps[got["step"]] = steps.get(got["step"], 0) + 1
    row["counters_lost_more"] = bad_counters
    row["note"] = "after reboot: %d exact; counters lost more than the interrupted update: %d; lost during %s" % (
        row["exact"], bad_counters, ", ".join("%s %d" % kv for kv in sorted(steps.items()) if kv[0]))
    return row


# ---- the image at rest ----------------------------------------------------------------------------
def used_ranges(image):
    """Byte ranges of the image the runtime reads and authenticates: [(start, end, what)]."""
    h = F.unpack_named(F.HDR_FMT, F.HDR_FIELDS, image)
    out = [(0, F.HDR_END, "header"), (F.BLOCK, F.BLOCK + h["meta_len"], "tables")]
    tiles = F.BLOCK + h["meta_len"] - h["n_tiles"] * F.TILE_SIZE
    base = h["payload_block"] * F.BLOCK
    for i in range(h["n_tiles"]):
        off, length = struct.unpack_from("<II", image, tiles + i * F.TILE_SIZE)
        out.append((base + off, base + off + length, "tile %d" % i))
    return out


def verify_card(bench, image):
    """The runtime's own checks over a whole image, as before use: load (header, key, tables), then
    every tile (record, CRC with re-reads, MAC) through Runtime._load_tile with a decrypt spy.
    Returns (error or None, indices of the tiles that were decrypted)."""
    decrypted = []

    def spy(key, iv, mv, n):
        if bytes(iv[:1]) == b"T":
            decrypted.append(struct.unpack(">I", bytes(iv[4:8]))[0])
        bench.ctr(key, iv, mv, n)
    try:
        rt = bench.runtime(bench.fresh_card(image), ctr=spy)
        for i, op in enumerate(rt.img.ops):
            if op.first_tile != F.NO_BUF:
                for g in range(op.n_groups):
                    rt._load_tile(op.first_tile + g, op.bufs[4], i)
    except DeviceError as e:
        return e, decrypted
    return None, decrypted


def at_rest_campaign(bench, n, *, seed=0):
    """n single-bit flips, each in a copy of the image, uniformly over the bytes the runtime uses."""
    row = _row("single-bit flip in the image at rest", "1 bit of a copy", "every flip refused before the "
               "flipped tile or table was used (decrypt spy)")
    ranges = used_ranges(bench.image)
    total = sum(b - a for a, b, _ in ranges)
    rng = random.Random(seed)
    row["areas"] = {}
    for _ in range(n):
        pos = rng.randrange(total)
        for a, b, what in ranges:
            if pos < b - a:
                pos += a
                break
            pos -= b - a
        bad = bytearray(bench.image)
        bad[pos] ^= 1 << rng.randrange(8)
        area = what.split()[0]
        row["areas"][area] = row["areas"].get(area, 0) + 1
        row["injected"] += 1
        row["trials"] += 1
        try:
            err, dec = verify_card(bench, bad)
        except Exception as e:        # noqa: BLE001
            row["crash"] += 1
            row.setdefault("first_crash", "%s: %s" % (type(e).__name__, e))
            continue
        used = int(what[5:]) in dec if what.startswith("tile") else bool(dec)
        if err is None or used:
            row["wrong"] += 1         # not detected, or detected only after use
        else:
            row["refused"] += 1
            kind = type(err).__name__
            row["errors"][kind] = row["errors"].get(kind, 0) + 1
    return row


# ---- fuzzing --------------------------------------------------------------------------------------
def mutate(data, rng):
    """A random mutation of bytes: byte sets, bit flips, block copies, a truncation or extension."""
    d = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        kind = rng.randrange(6)
        p = rng.randrange(max(1, len(d)))
        if kind == 0 and d:
            d[p] = rng.randrange(256)
        elif kind == 1 and d:
            d[p] ^= 1 << rng.randrange(8)
        elif kind == 2 and len(d) >= F.HDR_SIZE:  # a 32-bit header field set to an edge value
            q = rng.randrange(0, F.HDR_SIZE - 3) & ~3
            edge = (0, 1, 0xFFFFFFFF, 0x7FFFFFFF, rng.getrandbits(32), rng.randrange(4096))
            d[q:q + 4] = struct.pack("<I", rng.choice(edge))
        elif kind == 3 and len(d) > F.BLOCK:
            a, b = rng.randrange(len(d) // F.BLOCK), rng.randrange(len(d) // F.BLOCK)
            d[b * F.BLOCK:(b + 1) * F.BLOCK] = d[a * F.BLOCK:(a + 1) * F.BLOCK]
        elif kind == 4:
            del d[rng.randrange(len(d) + 1):]
        else:
            d += bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 1024)))
    return bytes(d)


def read_image(data, key, verify=True):
    """The image reader on arbitrary bytes (zero-padded to whole blocks); returns the Image."""
    from ..device.image import Image
    from ..device.storage import Card
    data = bytes(data) + bytes(-len(data) % F.BLOCK)
    return Image(Card(BytesBlockDevice(data or bytes(F.BLOCK))), key, memoryview(bytearray(F.BLOCK)), verify=verify)


def fuzz_campaign(bench, n, *, seed=0, keyed=True):
    """n random or mutated images through the image reader (with the key, or without as `plan` does)."""
    row = _row("fuzzed image through the reader, %s" % ("with the key" if keyed else "without a key (plan)"),
               "random and mutated bytes")
    rng = random.Random(seed)
    card = bench.card_bytes()
    for i in range(n):
        if i % 8 == 0:
            head = bytearray(rng.getrandbits(8) for _ in range(F.BLOCK))
            head[:6] = F.MAGIC + struct.pack("<H", F.VERSION) if rng.random() < 0.8 else head[:6]
            data = bytes(head) + card[F.BLOCK:]
        else:
            data = mutate(card, rng)
        row["injected"] += 1
        _trial(row, lambda: read_image(data, bench.key if keyed else None, verify=keyed) is not None)
    row["note"] = ("exact = the reader accepted it: the mutation hit only tile payloads (checked when a tile is "
                   "read), padding, or bytes past the image")
    return row


def protocol_fuzz_campaign(n, *, seed=0):
    """n byte streams (valid frames, garbage, bit flips, random piece sizes) through the link protocol's
    frame parser (device/protocol.py Port.recv); exact = every intact frame recovered, in order."""
    from ..device import protocol as P
    row = _row("fuzzed link stream through the frame parser", "frames + garbage + flips",
               "refused = some frame damaged by a flip was dropped (NAK): what the protocol resends")
    rng = random.Random(seed)
    sender = P.Port(None, None)
    buf = bytearray(P.MAX_FRAME)
    for _ in range(n):
        stream, sent = bytearray(), []
        for _ in range(rng.randrange(4)):
            stream += bytes(rng.choice((0, 1, 0x41, 0xFF, 0x0D)) for _ in range(rng.randrange(20)))
            pay = bytes(rng.getrandbits(8) for _ in range(rng.randrange(P.MAX_PAYLOAD + 1)))
            buf[P.HDR:P.HDR + len(pay)] = pay
            k = sender.frame(buf, rng.randrange(256), rng.randrange(0xFFFF), len(pay))
            stream += buf[:k]
            sent.append(bytes(buf[:k]))
        flips = rng.randrange(3) if stream else 0
        for _ in range(flips):
            stream[rng.randrange(len(stream))] ^= 1 << rng.randrange(8)
        row["injected"] += 1
        chunks = [rng.randrange(1, 700) for _ in range(4)]
        pos, calls = [0], [0]

        def rd(b, a, z, ms):
            k = min(z - a, chunks[calls[0] % 4], len(stream) - pos[0])
            calls[0] += 1
            b[a:a + k] = stream[pos[0]:pos[0] + k]
            pos[0] += k
            return k

        def once():
            port = P.Port(rd, None)
            got = []
            for _ in range(len(stream) + 2):
                r = port.recv(0, 0)
                if r == P.R_IDLE:
                    break
                if r == P.R_FRAME:
                    got.append(bytes(port.rx[:P.HDR + port.n + P.TRL]))
            else:
                raise RuntimeError("recv() did not reach the end of the stream")
            if any(g not in sent for g in got):
                raise RuntimeError("recv() returned a frame that was never sent")
            if got != sent:
                if not flips:
                    raise RuntimeError("an intact frame was lost")
                raise FrameDropped()
            return True
        _trial(row, once)
    return row


class FrameDropped(DeviceError):
    """For the protocol row: a damaged frame was dropped, as the protocol intends (counted as refused)."""
