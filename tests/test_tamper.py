"""Someone else holds the card: corrupted and tampered images, tampered spills, keys and nonces.

The attacker can read and write every byte of the card and recompute any CRC, but has no key. Every
change to a byte the runtime uses must be refused before the changed data is used (decrypted or fed to
a kernel), and nothing may print key material.
"""

import os
import random
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import _fault_image as FI
from conftest import DIGITS
from tileswap.device import CardError, DeviceError, ImageError, IntegrityError, KeyMismatch
from tileswap.device import crypto as C
from tileswap.device import format as F
from tileswap.device import opdefs as D
from tileswap.host import fault_campaign as CF
from tileswap.device.runtime import Runtime
from tileswap.device.storage import BytesBlockDevice
from tileswap.host.emulator import Emulator
from tileswap.host.faults import FaultyBlockDevice, PowerLoss
from tileswap.tiler.compile import compile_model


@pytest.fixture(scope="module")
def bench(key, digits):
    return CF.Bench(digits, key=key, seed=3)


def _run(bench, image, ctr=None):
    """One inference on a fresh card holding `image`; returns the output (raises what the runtime raises)."""
    rt = bench.runtime(bench.fresh_card(image), **({"ctr": ctr} if ctr else {}))
    return bench.infer(rt, bench.inputs[0])


class TileSpy:
    """A ctr that records which tiles get decrypted, then decrypts."""

    def __init__(self, bench):
        self.bench = bench
        self.tiles = []

    def __call__(self, key, iv, mv, n):
        if bytes(iv[:1]) == b"T":
            self.tiles.append(int.from_bytes(bytes(iv[4:8]), "big"))
        self.bench.ctr(key, iv, mv, n)


# ---- corruption at rest --------------------------------------------------------------------------
def test_10000_single_bit_flips_are_all_detected_before_use(bench):
    """Each flip in a copy of the image, uniformly over every byte the runtime uses (header, tables,
    tile payloads); the runtime's own load and tile checks refuse it before the flipped part is used."""
    row = CF.at_rest_campaign(bench, 10000, seed=1)
    assert row["trials"] == row["refused"] == 10000, row
    assert row["wrong"] == row["crash"] == 0, row
    assert set(row["areas"]) == {"header", "tables", "tile"} and min(row["areas"].values()) > 100, row["areas"]


def test_flips_are_refused_by_a_full_inference_and_nothing_is_output(bench):
    """A sample through the real pipeline (set_input, infer, read_output): an error, never an output,
    and the flipped tile is never decrypted."""
    rng = random.Random(2)
    ranges = CF.used_ranges(bench.image)
    for _ in range(150):
        a, b, what = rng.choice(ranges)
        pos = rng.randrange(a, b)
        bad = bytearray(bench.image)
        bad[pos] ^= 1 << rng.randrange(8)
        spy = TileSpy(bench)
        with pytest.raises(DeviceError) as e:
            _run(bench, bad, spy)
        if what.startswith("tile"):
            i = int(what[5:])
            assert i not in spy.tiles and str(e.value).startswith("tile %d (" % i), (what, e.value)
        else:
            assert not spy.tiles, (what, e.value)


def test_bytes_outside_the_authenticated_ranges_are_never_used(bench):
    """Padding (after the header fields, after the tables, after each tile) is covered by no check and
    read by no kernel: randomising all of it at once changes nothing."""
    used = bytearray(len(bench.image))
    for a, b, _ in CF.used_ranges(bench.image):
        used[a:b] = b"\1" * (b - a)
    rng = random.Random(4)
    img = bytearray(bench.image)
    n = 0
    for i in range(len(img)):
        if not used[i]:
            img[i] = rng.randrange(256)
            n += 1
    assert n > 1000
    assert CF.verify_card(bench, img)[0] is None
    assert _run(bench, img) == bench.gold[0]


# ---- tampering -----------------------------------------------------------------------------------
def test_ciphertext_changed_with_a_recomputed_crc_is_refused_by_the_mac(bench):
    for i, (_, off, length, crc) in enumerate(FI.tile_records(bench.image)):
        bad = bytearray(bench.image)
        bad[off + length // 2] ^= 0x40
        tile = bytearray(bad[off:off + length])
        FI.forge_crc(tile, 0 if length // 2 >= 4 else length - 4, crc)
        bad[off:off + length] = tile
        assert FI.crc32(bad[off:off + length]) == crc
        spy = TileSpy(bench)
        with pytest.raises(IntegrityError, match=r"^tile %d \(.*failed its MAC" % i):
            _run(bench, bad, spy)
        assert i not in spy.tiles


def test_a_tile_moved_to_another_index_is_refused(bench):
    recs = FI.tile_records(bench.image)
    by_len = {}
    for i, r in enumerate(recs):
        by_len.setdefault(r[2], []).append(i)
    i, j = next(v for v in by_len.values() if len(v) > 1)[:2]
    _, oi, n, crc_i = recs[i]
    _, oj, _, _ = recs[j]
    bad = bytearray(bench.image)
    bad[oi:oi + n] = bench.image[oj:oj + n]                  # tile j's ciphertext at index i
    with pytest.raises(IntegrityError, match=r"^tile %d \(.*CRC32" % i):
        _run(bench, bad)
    tile = bytearray(bad[oi:oi + n])
    bad[oi:oi + n] = FI.forge_crc(tile, n - 4, crc_i)        # ... with i's CRC forged
    with pytest.raises(IntegrityError, match=r"^tile %d \(.*failed its MAC" % i):
        _run(bench, bad)
    bad = bytearray(bench.image)                              # swap the two records instead
    pi, pj = recs[i][0], recs[j][0]
    bad[pi:pi + F.TILE_SIZE] = bench.image[pj:pj + F.TILE_SIZE]
    bad[pj:pj + F.TILE_SIZE] = bench.image[pi:pi + F.TILE_SIZE]
    with pytest.raises(IntegrityError, match="header failed its MAC"):    # a new tables CRC breaks it
        _run(bench, FI.fix_meta_crc(bad))
    with pytest.raises(IntegrityError, match="tables failed their MAC"):    # the old CRC forged
        _run(bench, FI.keep_meta_crc(bad))


def test_a_tile_copied_from_another_image_is_refused(bench, key, digits):
    other, _ = compile_model(digits, sram=1536, key=key)      # same model, same key, another image id
    assert FI.header(other)["image_id"] != bench.h["image_id"]
    mine, theirs = FI.tile_records(bench.image), FI.tile_records(other)
    assert [r[1:3] for r in mine] == [r[1:3] for r in theirs]     # the same layout
    for i in (0, len(mine) // 2, len(mine) - 1):
        _, off, n, crc = mine[i]
        bad = bytearray(bench.image)
        bad[off:off + n] = other[off:off + n]
        with pytest.raises(IntegrityError, match=r"^tile %d \(.*CRC32" % i):
            _run(bench, bad)
        bad[off:off + n] = FI.forge_crc(bytearray(other[off:off + n]), 0, crc)
        with pytest.raises(IntegrityError, match=r"^tile %d \(.*failed its MAC" % i):
            _run(bench, bad)
    bad = bytearray(bench.image)                              # everything but the header from the other
    bad[F.BLOCK:] = other[F.BLOCK:]
    with pytest.raises(IntegrityError, match="tables failed their CRC"):
        _run(bench, bad)
    with pytest.raises(IntegrityError, match="tables failed their MAC"):
        _run(bench, FI.keep_meta_crc(bad))


def test_tables_changed_with_a_recomputed_crc_are_refused_by_the_mac(bench):
    h = bench.h
    first_tile = F.BLOCK + h["meta_len"] - h["n_tiles"] * F.TILE_SIZE
    for pos in (F.BLOCK + 8, F.BLOCK + h["n_tensors"] * F.T_SIZE + 2,      # a tensor's h, an op's out tensor
                first_tile, first_tile + 4, first_tile + 8, first_tile + 20):  # a tile's offset, length, CRC, tag
        bad = bytearray(bench.image)
        bad[pos] ^= 0x01
        with pytest.raises(IntegrityError, match="tables failed their MAC"):
            _run(bench, FI.keep_meta_crc(bad))


def test_header_fields_changed_are_refused(bench):
    for field, value in (("sram_budget", bench.h["sram_budget"] + 512), ("model_sha256", bytes(32)),
                         ("in_zp", 3), ("out_scale", 1.0), ("n_ops", bench.h["n_ops"] - 1), ("flags", 0),
                         ("erase_block", 4096)):
        with pytest.raises(IntegrityError, match="^the image header failed its MAC"):
            _run(bench, FI.set_header(bench.image, **{field: value}))


@pytest.mark.parametrize("cut", [600, 2048, "payload", "mid", "last"])
def test_a_truncated_image_is_refused_on_the_device(bench, cut):
    img = bench.image
    n = {"payload": bench.h["payload_block"] * F.BLOCK, "mid": len(img) // 2, "last": len(img) - F.BLOCK}.get(cut, cut)
    card = BytesBlockDevice(img[:n] + bytes(-n % F.BLOCK))
    with pytest.raises(CardError, match="the image is truncated or the card is too small"):
        bench.runtime(card)


def test_a_truncated_image_file_is_refused_by_the_cli(tmp_path, key):
    (tmp_path / "k").write_text(key.hex())
    img, _ = compile_model(open(DIGITS, "rb").read(), sram=1536, key=key)
    np.save(tmp_path / "x.npy", np.zeros((8, 8, 1), np.int8))
    for n in (3000, len(img) // 2, len(img) - 100):
        (tmp_path / "t.tsi").write_bytes(img[:n])
        r = subprocess.run([sys.executable, "-m", "tileswap.host.cli", "run", str(tmp_path / "t.tsi"), "--input",
                            str(tmp_path / "x.npy"), "--key", str(tmp_path / "k")], capture_output=True, text=True)
        assert r.returncode == 1 and "truncated" in r.stderr, (n, r.stderr)


def test_a_rolled_back_image_is_refused(bench, key, digits):
    old, _ = compile_model(digits, sram=1536, key=key, image_version=1)
    new, _ = compile_model(digits, sram=1536, key=key, image_version=2)
    nv = {}
    rt = bench.runtime(bench.fresh_card(new), nv=nv)
    assert bench.infer(rt, bench.inputs[0]) == bench.gold[0]
    with pytest.raises(ImageError, match="rolled back"):
        bench.runtime(bench.fresh_card(old), nv=nv)
    bench.runtime(bench.fresh_card(new), nv=nv)               # the same version again is fine


def test_each_bad_key_or_header_gets_its_own_clear_error(bench, key):
    h = bench.h
    cases = {
        "wrong key": (lambda: Runtime(bench.fresh_card(), bytes(32), bench.kernels), KeyMismatch, "^wrong key"),
        "missing key": (lambda: Runtime(bench.fresh_card(), None, bench.kernels), KeyMismatch, "a key is needed"),
        "unknown version": (lambda: bench.runtime(bench.fresh_card(FI.set_header(bench.image, key, version=2))),
                            ImageError, "version 2 is not supported.*recompile"),
        "malformed header": (lambda: bench.runtime(bench.fresh_card(FI.set_header(
            bench.image, key, spill_block=h["spill_block"] + 1))), ImageError, "^malformed header"),
        "not an image": (lambda: bench.runtime(BytesBlockDevice(open(DIGITS, "rb").read()[:4096])),
                         ImageError, "^not a tileswap image"),
        "modified header": (lambda: bench.runtime(bench.fresh_card(FI.set_header(bench.image, in_zp=1))),
                            IntegrityError, "^the image header failed its MAC"),
        "truncated": (lambda: bench.runtime(BytesBlockDevice(bench.image[:2048])), CardError, "truncated"),
    }
    msgs = {}
    for name, (fn, cls, pattern) in cases.items():
        with pytest.raises(cls, match=pattern) as e:
            fn()
        msgs[name] = str(e.value)
        printed = key.hex() in msgs[name]
        assert not printed, name
    firsts = [m[:24] for m in msgs.values()]
    assert len(set(firsts)) == len(firsts), msgs


# ---- spilled feature maps ------------------------------------------------------------------------
class WriteLog(BytesBlockDevice):
    """A byte-array card that logs the first block of every write."""

    def __init__(self, data):
        BytesBlockDevice.__init__(self, data)
        self.log = []

    def writeblocks(self, block, buf, offset=0):
        self.log.append(block)
        BytesBlockDevice.writeblocks(self, block, buf, offset)


def _input_row0(bench, card, rt, x):
    """set_input(x); returns the card block where input row 0 was written (the first spill write)."""
    n = len(card.log)
    rt.set_input(x)
    s0, s1 = bench.h["spill_block"], bench.h["spill_block"] + bench.h["spill_blocks"]
    return next(b for b in card.log[n:] if s0 <= b < s1)


def test_a_spilled_row_changed_or_replayed_on_the_card_is_refused(bench):
    card = WriteLog(bench.card_bytes())
    rt = bench.runtime(card)
    tid = rt._io_tensor(F.T_INPUT)
    blk = _input_row0(bench, card, rt, bench.inputs[0]) * F.BLOCK
    card.data[blk + 3] ^= 0x80                              # change the ciphertext of input row 0
    with pytest.raises(IntegrityError, match=r"^tensor %d row 0 " % tid):
        rt.infer()
    rt = bench.runtime(card)          # a refused inference leaves the runtime unusable: see the xfail below
    blk = _input_row0(bench, card, rt, bench.inputs[1]) * F.BLOCK
    old = bytes(card.data[blk:blk + F.BLOCK])               # row 0 of inference n, with a valid tag
    assert bench.infer(rt, bench.inputs[1]) == bench.gold[1]
    blk = _input_row0(bench, card, rt, bench.inputs[2]) * F.BLOCK
    card.data[blk:blk + F.BLOCK] = old                      # replayed into inference n + 1
    with pytest.raises(IntegrityError, match=r"^tensor %d row 0 " % tid):
        rt.infer()
    rt = bench.runtime(card)
    region = slice(bench.h["spill_block"] * F.BLOCK, (bench.h["spill_block"] + bench.h["spill_blocks"]) * F.BLOCK)
    bench.infer(rt, bench.inputs[3])
    whole = bytes(card.data[region])                        # every spill of an inference
    rt.set_input(bench.inputs[3])
    card.data[region] = whole                               # the whole ring replayed
    with pytest.raises(IntegrityError):
        rt.infer()


def test_the_runtime_carries_on_after_a_refused_inference(bench):
    card = WriteLog(bench.card_bytes())
    rt = bench.runtime(card)
    card.data[_input_row0(bench, card, rt, bench.inputs[0]) * F.BLOCK] ^= 1
    with pytest.raises(IntegrityError):
        rt.infer()
    assert bench.infer(rt, bench.inputs[1]) == bench.gold[1]


class NonceSpy:
    """A ctr that records every spill encryption (key, iv): calls made from Runtime._write_row."""

    def __init__(self, bench):
        self.bench = bench
        self.enc = []

    def __call__(self, key, iv, mv, n):
        if bytes(iv[:1]) == b"S" and sys._getframe(1).f_code.co_name == "_write_row":
            self.enc.append((bytes(key), bytes(iv)))
        self.bench.ctr(key, iv, mv, n)


def test_rolled_back_counter_records_never_bring_back_a_spill_nonce(bench):
    card = bench.fresh_card()
    spy = NonceSpy(bench)
    rt = bench.runtime(card, ctr=spy)
    bench.infer(rt, bench.inputs[0])
    ctr = slice(bench.h["counter_block"] * F.BLOCK, (bench.h["counter_block"] + 2) * F.BLOCK)
    saved = bytes(card.data[ctr])
    for k in range(3):
        assert bench.infer(rt, bench.inputs[k]) == bench.gold[k]
    card.data[ctr] = saved                                  # the attacker restores the old counters
    rt = bench.runtime(card, ctr=spy)
    for k in range(3):
        assert bench.infer(rt, bench.inputs[k]) == bench.gold[k]
    assert len(spy.enc) > 50 and len(set(spy.enc)) == len(spy.enc)


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.just(("infer",)), st.just(("reboot",)), st.just(("rollback",)),
                          st.just(("wipe-counters",)),
                          st.tuples(st.just("power-loss"), st.integers(1, 120))), min_size=4, max_size=14))
def test_spill_nonces_never_repeat_across_inferences(actions):
    """Over many inferences, reboots, power losses at any block write, and counter records rolled back
    or wiped by an attacker: no (key, nonce) pair ever encrypts two different spills."""
    bench = _nonce_bench()
    card = bench.fresh_card()
    spy = NonceSpy(bench)
    rt = bench.runtime(card, ctr=spy)
    ctr = slice(bench.h["counter_block"] * F.BLOCK, (bench.h["counter_block"] + 2) * F.BLOCK)
    saved = bytes(card.data[ctr])
    done = 0
    for i, a in enumerate(actions):
        k = i % len(bench.inputs)
        if a[0] == "infer":
            assert bench.infer(rt, bench.inputs[k]) == bench.gold[k]
            done += 1
        elif a[0] == "reboot":
            saved = bytes(card.data[ctr])
            rt = bench.runtime(card, ctr=spy)
        elif a[0] == "rollback":
            card.data[ctr] = saved
            rt = bench.runtime(card, ctr=spy)
        elif a[0] == "wipe-counters":
            card.data[ctr] = bytes(2 * F.BLOCK)
            rt = bench.runtime(card, ctr=spy)
        else:
            dev = FaultyBlockDevice(card, "power-loss=at:%d" % a[1], seed=i)
            try:
                r = bench.runtime(dev, ctr=spy)
                for j in range(4):
                    bench.infer(r, bench.inputs[(k + j) % len(bench.inputs)])
            except PowerLoss:
                pass
            rt = bench.runtime(card, ctr=spy)
    assert len(set(spy.enc)) == len(spy.enc), "a spill nonce was used twice"
    assert done == 0 or spy.enc


_NB = []


def _nonce_bench():
    if not _NB:
        _NB.append(CF.Bench(seed=5, inputs=4))
    return _NB[0]


# ---- keys ----------------------------------------------------------------------------------------
def _ts(*args, env=None, umask=None):
    r = subprocess.run([sys.executable, "-m", "tileswap.host.cli"] + [str(a) for a in args], capture_output=True,
                       text=True, env=env, preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)
    return r.returncode, r.stdout + r.stderr


def test_keygen_writes_mode_0600_whatever_the_umask(tmp_path):
    code, out = _ts("keygen", "-o", tmp_path / "k", umask=0)
    assert code == 0 and oct(os.stat(tmp_path / "k").st_mode & 0o777) == "0o600"
    assert len((tmp_path / "k").read_text().strip()) == 64
    printed = (tmp_path / "k").read_text().strip() in out
    assert not printed, "keygen printed the key"


def _secrets(key, image):
    image_id = FI.header(image)["image_id"]
    out = {"master": key}
    for label in (b"tileswap/enc", b"tileswap/mac"):
        out[label.decode()] = C.derive(key, label, image_id)
    return out


def test_the_key_and_derived_keys_are_never_on_the_card(bench, key):
    card = bench.fresh_card()
    rt = bench.runtime(card)
    for x in bench.inputs[:3]:
        bench.infer(rt, x)
    secrets = _secrets(key, bench.image)
    secrets["spill"] = rt.k_spill
    leaked = [name for name, s in secrets.items() for form in (s, s.hex().encode(), s.hex().upper().encode())
              if form in card.data or form in bench.image]
    assert not leaked, leaked                 # names only: a failing test must not print the key either


def test_no_command_prints_key_material(tmp_path, key):
    """Every command, on success and on each failure, with the key from a file or the environment."""
    kf = tmp_path / "k"
    kf.write_text(key.hex() + "\n")
    img = tmp_path / "d.tsi"
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((8, 8, 1), np.int8))
    outs = []
    code, out = _ts("compile", DIGITS, "-o", img, "--sram", "1536", "--key", kf, "--json")
    assert code == 0, out
    outs.append(out)
    env = dict(os.environ, TILESWAP_KEY=key.hex())
    bad = bytearray(img.read_bytes())
    bad[-600] ^= 1
    (tmp_path / "bad.tsi").write_bytes(bad)
    other = tmp_path / "other"
    _ts("keygen", "-o", other)
    for args, kw in [
            (("compile", DIGITS, "-o", tmp_path / "e.tsi", "--sram", "1536", "--key", kf), {}),
            (("plan", img, "--key", kf), {}),
            (("plan", img, "--json"), {"env": env}),
            (("run", img, "--input", x, "--key", kf, "--json"), {}),
            (("run", img, "--input", x), {"env": env}),
            (("run", tmp_path / "bad.tsi", "--input", x, "--key", kf), {}),          # tampered
            (("run", img, "--input", x, "--key", other), {}),                       # wrong key
            (("run", img, "--input", DIGITS, "--key", kf), {}),                     # bad input
            (("compile", DIGITS, "-o", tmp_path / "f.tsi", "--sram", "64", "--key", kf), {}),   # budget
            (("run", img, "--input", x), {"env": dict(os.environ, TILESWAP_KEY=key.hex()[:-2] + "zz")}),
            (("plan", img, "--key", tmp_path / "nokey"), {}),
    ]:
        code, out = _ts(*args, **kw)
        assert "Traceback" not in out, (args, out.replace(key.hex(), "<key>"))
        outs.append(out)
    text = "\n".join(outs)
    secrets = _secrets(key, img.read_bytes())
    leaked = [name for name, s in secrets.items() for form in (s.hex(), s.hex().upper(), repr(s), s.hex()[:-2])
              if form in text]
    assert not leaked, leaked


def _op_records(img):
    """Image offsets of the op records (after the tensor records; each is OP_SIZE, the scratch offsets
    and its n_p parameters)."""
    h = FI.header(img)
    pos = F.BLOCK + h["n_tensors"] * F.T_SIZE
    offs = []
    for _ in range(h["n_ops"]):
        offs.append(pos)
        pos += F.OP_SIZE + 4 * F.N_BUFS + 4 * img[pos + 2]
    return offs


@pytest.mark.parametrize("flag", [F.OPF_WRES, F.OPF_KSPLIT, 32, 128])
def test_authentic_op_flags_the_runtime_cannot_run_are_refused(digits, key, flag):
    """Tables a key holder (a buggy tiler) made authentic but that flag what the device cannot run -
    kept group weights outside a fused chain, a K-split that is not a 1x1 convolution of a
    channel-chunked tensor, flags no format defines - are refused when the image opens."""
    image, plan = compile_model(digits, sram=65536, key=key)
    i = next(j for j, o in enumerate(plan.ops) if o.op.kind == 1 and not o.in_chain)   # a lone CONV_2D
    img = bytearray(image)
    img[_op_records(img)[i] + 3] |= flag
    with pytest.raises(DeviceError) as e:
        Emulator(bytes(FI.remac(img, key)), key).close()
    assert "op #%d" % i in str(e.value), str(e.value)


def test_authentic_chunk_flag_on_a_resident_tensor_is_refused(digits, key):
    image, plan = compile_model(digits, sram=65536, key=key)
    t = next(b for b, k in plan.kind.items() if k == F.T_ARENA)
    img = bytearray(image)
    img[F.BLOCK + t * F.T_SIZE + 1] |= F.TF_CHUNKED
    with pytest.raises(DeviceError) as e:
        Emulator(bytes(FI.remac(img, key)), key).close()
    assert "tensor %d" % t in str(e.value), str(e.value)


def test_authentic_chain_flag_on_the_last_op_is_refused(digits, key):
    """OPF_CHAIN on the last op chains it to nothing: refused when the image opens (else kept group tiles
    (OPF_WRES) of a lone op would never be loaded)."""
    image, plan = compile_model(digits, sram=65536, key=key)
    img = bytearray(image)
    last = len(plan.ops) - 1
    img[_op_records(img)[last] + 3] |= F.OPF_CHAIN | F.OPF_WRES
    with pytest.raises(ImageError) as e:
        Emulator(bytes(FI.remac(img, key)), key).close()
    assert "op #%d" % last in str(e.value), str(e.value)


def test_a_buffer_placed_over_kept_group_tiles_is_refused(key):
    """A chain member's kept group tiles (OPF_WRES) stay claimed in the arena as one region: an authentic
    table that puts another buffer over them fails with an ArenaError, not a silently wrong output."""
    import struct

    from zoo import model
    image, plan = compile_model(model("inverted_residual"), sram=3736, key=key)
    i = next(j for j, o in enumerate(plan.ops) if o.wres and o.n_groups > 1 and "out" in o.bufs)
    img = bytearray(image)
    rec = _op_records(img)[i] + F.OP_SIZE
    struct.pack_into("<I", img, rec + 4 * 5, plan.ops[i].bufs["w"][0])     # output band over kept tile 0
    emu = Emulator(bytes(FI.remac(img, key)), key)
    try:
        with pytest.raises(DeviceError) as e:
            emu.run(np.zeros(emu.rt.input_size(), np.int8))
    finally:
        emu.close()
    assert "kept weight tiles of op #%d" % i in str(e.value), str(e.value)


def test_an_output_band_over_the_sums_of_several_groups_is_refused(key):
    """A K-split op may requantize its output over its int32 accumulator only where each output group's
    band is written before the next group's sums start (one group, or a chunked output): an authentic
    table putting a multi-group, whole-row output band there is refused when the image opens."""
    import struct

    from zoo import model
    image, plan = compile_model(model("expand_dw_project"), sram=4096, key=key)
    i = next(j for j, o in enumerate(plan.ops) if o.ksplit and o.n_groups > 1 and not o.chunk and "out" in o.bufs)
    img = bytearray(image)
    rec = _op_records(img)[i] + F.OP_SIZE
    struct.pack_into("<I", img, rec + 4 * 5, plan.ops[i].bufs["acc"][0])    # output band over the sums
    with pytest.raises(ImageError) as e:
        Emulator(bytes(FI.remac(img, key)), key).close()
    assert "op #%d" % i in str(e.value) and "accumulator" in str(e.value), str(e.value)


def test_a_chunked_ksplit_output_of_another_width_is_refused(key):
    """A K-split op writing a chunked output requantizes each group into a band one group wide (its
    p[OUT_C]), over its sums: an authentic p giving the band another width - which would write past
    sums not yet read - is refused when the image opens."""
    import struct

    from zoo import model
    image, plan = compile_model(model("ksplit_chunked_out"), sram=24000, key=key)
    i = next(j for j, o in enumerate(plan.ops) if o.ksplit and o.chunk and o.over)
    img = bytearray(image)
    at = _op_records(img)[i] + F.OP_SIZE + 4 * F.N_BUFS + 4 * D.P_OUT_C
    assert struct.unpack_from("<i", img, at)[0] == plan.ops[i].group
    struct.pack_into("<i", img, at, 4 * plan.ops[i].group)
    with pytest.raises(ImageError) as e:
        Emulator(bytes(FI.remac(img, key)), key).close()
    assert "op #%d" % i in str(e.value), str(e.value)
