"""The viper kernels (device/kernels_viper.py) bit for bit against the C kernels (themselves checked against
TFLite in test_kernels.py), on the real MicroPython interpreter and on an emulated 32-bit word.

Cases are random shapes and parameters for every method plus named edge cases (padding above and left,
stride and dilation 2, depth multiplier 2 and 3, odd channels, channel groups at c0 > 0, payloads at odd
offsets, saturating and wrapping accumulators, zero points at -128/127, tiny, huge, negative and
power-of-two multipliers, left shifts, partial pool windows, MEAN over several bands, SOFTMAX with its
diff_min cut-off, channel counts across the 64-word flush, arguments both must refuse). The host writes
them as JSON lines, ONE `micropython -X heapsize=256K` process runs them all (tests/_viper_runner.py),
and every output buffer must equal the C's byte for byte (the first mismatch is named); the same run
shows that no call but SOFTMAX allocates. The unix port has 64-bit words, so the cases also go through
tests/_viper_word32.py (viper's int semantics on a 32-bit word, in CPython), and mpy-cross must compile
the module for 32-bit targets with 31-bit small ints.
"""

import json
import os
import shutil
import subprocess
import sys
from array import array

import numpy as np
import pytest

from tileswap.device import opdefs as d
from tileswap.host import native
from tileswap.tiler import quant

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, "tests", "_viper_runner.py")
I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1


def tool(name):
    """A tool of the `.[device]` extra: next to this Python first (the venv), then on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), name)
    path = here if os.path.exists(here) else shutil.which(name)
    if not path:
        pytest.fail(f"`{name}` not found next to {sys.executable} or on PATH: it is a declared dependency, "
                    f"install it with `pip install -e '.[device]'` (or `make venv`)")
    return path


# ---- case construction ----------------------------------------------------------------------------------

class Case:
    """One case: buffers (kind, bytes) and calls whose args are ints or buffer references."""

    def __init__(self, name):
        self.name, self.bufs, self.calls, self.outs = name, [], [], []

    def buf(self, kind, data, *, out=False):
        self.bufs.append((kind, bytes(data)))
        if out:
            self.outs.append(len(self.bufs) - 1)
        return ["B", len(self.bufs) - 1]

    def view(self, ref, start, end):
        return ["V", ref[1], start, end]

    def call(self, method, *args):
        self.calls.append((method, list(args)))

    def json(self):
        return json.dumps({"name": self.name, "bufs": [[k, b.hex()] for k, b in self.bufs],
                           "calls": [[m, a] for m, a in self.calls], "outs": self.outs})

    def run_c(self):
        """The C kernels on fresh copies of the buffers: (error text or None, [out bytes])."""
        return self.run(native.Kernels())

    def run(self, kern):
        """Any in-process implementation of the contract on fresh copies of the buffers."""
        bufs = [array("i", b) if k == "i" else (memoryview(bytearray(b)) if k == "m" else bytearray(b))
                for k, b in self.bufs]

        def arg(a):
            if isinstance(a, int):
                return a
            return bufs[a[1]] if a[0] == "B" else memoryview(bufs[a[1]])[a[2]:a[3]]

        try:
            for m, args in self.calls:
                getattr(kern, m)(*[arg(a) for a in args])
        except ValueError as e:
            return str(e), [bytes(bufs[i]) for i in self.outs]
        return None, [bytes(bufs[i]) for i in self.outs]


def i8(rng, n):
    return rng.integers(-128, 128, size=n, dtype=np.int8).tobytes()


def zp(rng):
    return int(rng.choice([-128, 127, 0, int(rng.integers(-128, 128))]))


def act(rng):
    lo, hi = sorted(int(v) for v in rng.integers(-128, 128, size=2))
    return [(-128, 127), (lo, hi), (-128, 127)][int(rng.integers(3))]


def requant(rng, mode, g):
    """Per-channel (mult, shift) of a mode: 'typical' (what Prepare makes), 'small' (tiny multipliers,
    big right shifts), 'left' (multipliers > 1), 'ties' (rounding ties), 'wild' (any int32 multiplier,
    any shift in [-31, 31])."""
    if mode in ("typical", "wrap"):
        return rng.integers(1 << 30, 1 << 31, size=g), rng.integers(-12, 1, size=g)
    if mode == "small":
        return rng.integers(0, 1 << 12, size=g), rng.integers(-31, -20, size=g)
    if mode == "left":
        return rng.integers(1 << 30, 1 << 31, size=g), rng.integers(1, 6, size=g)
    if mode == "ties":                                  # powers of two: many products end in exactly 1/2
        return (1 << rng.integers(14, 31, size=g)).astype(np.int64), rng.integers(-6, 1, size=g)
    mult = rng.integers(I32_MIN, I32_MAX + 1, size=g, dtype=np.int64)
    mult[rng.random(g) < 0.1] = I32_MIN
    mult[rng.random(g) < 0.1] = 0
    return mult, rng.integers(-31, 32, size=g)


def bias(rng, mode, g):
    if mode == "wild":
        return rng.integers(I32_MIN, I32_MAX + 1, size=g, dtype=np.int64)
    if mode == "wrap":                                  # the int32 accumulator wraps, as in C
        return np.where(rng.random(g) < 0.5, I32_MAX - rng.integers(0, 300, size=g),
                        I32_MIN + rng.integers(0, 300, size=g))
    return rng.integers(-5000, 5000, size=g)


def payload(rng, filt, b, mult, shift, *, at):
    """A weight payload at byte offset `at` of an arena-like buffer: (arena bytes, start, end)."""
    body = bytes(filt) + bytes((-len(filt)) % 4)
    body += b"".join(np.asarray(a, dtype="<i8").astype("<i4").tobytes() for a in (b, mult, shift))
    junk = i8(rng, at)
    return junk + body + i8(rng, 3), at, at + len(body)


def pvec(n, slots):
    v = [0] * n
    for k, x in slots.items():
        v[k] = int(x)
    return np.asarray(v, dtype="<i4").tobytes()


def spatial_case(rng, name, op, *, mode="typical", g_hint=None, dm=None, big=False):
    pool = op in ("maxpool_s8", "avgpool_s8")
    in_w = int(rng.integers(1, 12 if big else 8))
    in_c = int(rng.choice([1, 2, 3, 5, 7, 8, 13, 16]))
    dm = dm or (int(rng.choice([1, 1, 2, 3])) if op == "dwconv_s8" else 1)
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    dh, dw = (1, 1) if pool else (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    pad_l = int(rng.integers(0, 3))
    out_w = int(rng.integers(1, 7))
    in_h, oh = int(rng.integers(1, 7)), int(rng.integers(1, 5))
    y0 = int(rng.integers(-2, in_h))
    if op == "conv_s8":
        out_c = int(rng.integers(1, 80 if big else 20))
        g = g_hint or int(rng.integers(1, out_c + 1))
        out_c = max(out_c, g)
        c0 = int(rng.integers(0, out_c - g + 1))
    else:
        total = in_c * dm
        g = g_hint or dm * int(rng.integers(1, in_c + 1))
        if g > total:
            in_c = -(-g // dm)
            total = in_c * dm
        c0 = dm * int(rng.integers(0, (total - g) // dm + 1))
        out_c = total
    p = {d.P_IN_W: in_w, d.P_IN_C: in_c, d.P_OUT_W: out_w, d.P_OUT_C: out_c, d.P_KH: kh, d.P_KW: kw,
         d.P_SH: sh, d.P_SW: sw, d.P_DH: dh, d.P_DW: dw, d.P_PAD_L: pad_l, d.P_IN_ZP: zp(rng),
         d.P_OUT_ZP: zp(rng), d.P_DM: dm}
    p[d.P_ACT_MIN], p[d.P_ACT_MAX] = act(rng)
    c = Case(name)
    pr = c.buf("i", pvec(d.P_SPATIAL_LEN, p))
    band = i8(rng, in_h * in_w * in_c)
    in_off = int(rng.integers(0, 9))
    out_len = oh * out_w * out_c
    shared = rng.random() < 0.3                        # band and output in one arena, as on the device
    if shared:
        arena = c.buf("m", i8(rng, in_off) + band + i8(rng, out_len + 5), out=True)
        inp, out, out_off = arena, arena, in_off + len(band) + c0
    else:
        inp = c.buf("b", i8(rng, in_off) + band + i8(rng, 4))
        out = c.buf("b", i8(rng, out_len + 3), out=True)
        out_off = c0
    if pool:
        c.call(op, pr, out, out_off, inp, in_off, in_h, y0, oh, c0, g)
        return c
    nf = g * kh * kw * in_c if op == "conv_s8" else kh * kw * g
    mult, shift = requant(rng, mode, g)
    data, s, e = payload(rng, i8(rng, nf), bias(rng, mode, g), mult, shift, at=int(rng.integers(0, 7)))
    wts = c.view(c.buf("b", data), s, e)
    if op == "conv_s8":
        c.call(op, pr, out, out_off, inp, in_off, in_h, y0, oh, wts, g)
    else:
        c.call(op, pr, out, out_off, inp, in_off, in_h, y0, oh, wts, c0, g)
    return c


def fc_case(rng, name, mode="typical"):
    rows, n = int(rng.integers(1, 4)), int(rng.integers(1, 160))
    out_c = int(rng.integers(1, 90))
    g = int(rng.integers(1, out_c + 1))
    p = {d.PF_N: n, d.PF_OUT_C: out_c, d.PF_IN_ZP: zp(rng), d.PF_OUT_ZP: zp(rng)}
    p[d.PF_ACT_MIN], p[d.PF_ACT_MAX] = act(rng)
    c = Case(name)
    pr = c.buf("i", pvec(d.PF_LEN, p))
    inp = c.buf("b", i8(rng, rows * n + 2))
    out = c.buf("b", i8(rng, rows * out_c + 2), out=True)
    mult, shift = requant(rng, mode, g)
    data, s, e = payload(rng, i8(rng, g * n), bias(rng, mode, g), mult, shift, at=int(rng.integers(0, 5)))
    c.call("fc_s8", pr, out, 1, inp, 2, rows, c.view(c.buf("b", data), s, e), g)
    return c


def add_case(rng, name, wild=False):
    n = int(rng.integers(0, 300))
    z1, z2, zo = zp(rng), zp(rng), zp(rng)
    if wild:
        m = rng.integers(0, 1 << 31, size=3)
        s = rng.integers(-31, 1, size=3)
        lo, hi = act(rng)
        v = pvec(d.PA_LEN, {d.PA_IN1_ZP: z1, d.PA_IN2_ZP: z2, d.PA_OUT_ZP: zo, d.PA_LEFT_SHIFT: 20,
                            d.PA_M1: m[0], d.PA_S1: s[0], d.PA_M2: m[1], d.PA_S2: s[1], d.PA_MO: m[2],
                            d.PA_SO: s[2], d.PA_ACT_MIN: lo, d.PA_ACT_MAX: hi})
    else:
        sc = 10.0 ** rng.uniform(-3, 0, size=3)
        v = quant.add_params(in1_scale=sc[0], in1_zp=z1, in2_scale=sc[1], in2_zp=z2, out_scale=sc[2],
                             out_zp=zo, fused=str(rng.choice(["NONE", "RELU", "RELU6"]))).tobytes()
    c = Case(name)
    pr = c.buf("i", v)
    arena = c.buf("m", i8(rng, 3 * n + 9), out=True)
    c.call("add_s8", pr, arena, 2 * n + 5, arena, 1, arena, n + 3, n)
    return c


def requant_case(rng, name, shift=None):
    n = int(rng.integers(0, 200))
    mult, shift = requant(rng, str(rng.choice(["typical", "small", "left", "ties", "wild"])), 1) \
        if shift is None else ([int(rng.integers(1 << 30, 1 << 31))], [shift])
    c = Case(name)
    pr = c.buf("i", pvec(d.PR_LEN, {d.PR_IN_ZP: zp(rng), d.PR_OUT_ZP: zp(rng), d.PR_MULT: mult[0],
                                     d.PR_SHIFT: shift[0]}))
    inp = c.buf("b", i8(rng, n + 1))
    out = c.buf("b", i8(rng, n + 2), out=True)
    c.call("requant_s8", pr, out, 2, inp, 1, n)
    return c


def mean_case(rng, name, wild=False):
    ch = int(rng.choice([1, 3, 17, 64, 65, 150]))
    bands = [int(rng.integers(0, 20)) for _ in range(int(rng.integers(1, 5)))]
    count = max(1, sum(bands))
    z_in, z_out = zp(rng), zp(rng)
    if wild:
        m, s = requant(rng, "wild", 1)
        v = pvec(d.PM_LEN, {d.PM_C: ch, d.PM_COUNT: count, d.PM_IN_ZP: z_in, d.PM_OUT_ZP: z_out,
                            d.PM_MULT: m[0], d.PM_SHIFT: s[0]})
        acc0 = rng.integers(I32_MIN, I32_MAX + 1, size=ch, dtype=np.int64).astype("<i4").tobytes()
    else:
        v = quant.mean_params(c=ch, count=count, in_scale=10 ** rng.uniform(-2, 0), in_zp=z_in,
                              out_scale=10 ** rng.uniform(-2, 0), out_zp=z_out).tobytes()
        acc0 = bytes(4 * ch)
    c = Case(name)
    pr = c.buf("i", v)
    acc = c.buf("b", acc0, out=True)
    out = c.buf("b", i8(rng, ch + 1), out=True)
    for npix in bands:
        inp = c.buf("b", i8(rng, npix * ch + 3))
        c.call("mean_acc_s8", acc, inp, 3, npix, ch)
    c.call("mean_out_s8", pr, out, 1, acc)
    return c


def ksplit_case(rng, name, mode="typical", over=False):
    """A K-split 1x1 convolution: conv_acc_s8 over 1-3 input chunks (the accumulator starts as junk,
    which the first chunk must overwrite), then acc_out_s8 - with `over`, over the sums it reads (out_c
    = q, as device/ops.py requantizes a chunked or one-group output band)."""
    npix, q = int(rng.integers(1, 30)), int(rng.integers(1, 90))
    ch = int(rng.choice([1, 3, 8, 17, 40]))
    out_c = q + int(rng.integers(0, 5))
    if over:
        out_c = q
    p = {d.P_IN_W: npix, d.P_IN_C: ch, d.P_OUT_W: npix, d.P_OUT_C: out_c, d.P_KH: 1, d.P_KW: 1, d.P_SH: 1,
         d.P_SW: 1, d.P_DH: 1, d.P_DW: 1, d.P_IN_ZP: zp(rng), d.P_OUT_ZP: zp(rng), d.P_DM: 1}
    p[d.P_ACT_MIN], p[d.P_ACT_MAX] = act(rng)
    c = Case(name)
    pr = c.buf("i", pvec(d.P_SPATIAL_LEN, p))
    acc = c.buf("b", i8(rng, 4 * npix * q), out=True)
    out = c.buf("b", i8(rng, npix * out_c + 3), out=True)
    for u in range(int(rng.integers(1, 4))):
        inp = c.buf("b", i8(rng, npix * ch + 2))
        w = c.buf("b", i8(rng, q * ch + 1))
        c.call("conv_acc_s8", pr, acc, inp, 2, npix, c.view(w, 1, 1 + q * ch), q, ch, 1 if u == 0 else 0)
    mult, shift = requant(rng, mode, q)
    data, s, e = payload(rng, i8(rng, q * ch), bias(rng, mode, q), mult, shift, at=int(rng.integers(0, 5)))
    c.call("acc_out_s8", pr, acc if over else out, 0 if over else 1, acc, npix, c.view(c.buf("b", data), s, e), q, ch)
    return c


def softmax_case(rng, name, *, n=None, scale=None):
    n = n or int(rng.integers(1, 40))
    rows = int(rng.integers(1, 4))
    v = quant.softmax_params(n=n, in_scale=scale or 10 ** rng.uniform(-2.5, 0),
                             beta=float(rng.choice([1.0, 0.5, 2.0])))
    c = Case(name)
    pr = c.buf("i", v.tobytes())
    x = rng.integers(-128, 128, size=rows * n, dtype=np.int8)
    if rng.random() < 0.3:
        x[: n // 2] = x[0]                              # ties for the maximum
    inp = c.buf("b", b"\0" + x.tobytes())
    out = c.buf("b", i8(rng, rows * n), out=True)
    c.call("softmax_s8", pr, out, 0, inp, 1, rows)
    return c


def all_cases():
    rng = np.random.default_rng(20240607)
    cases = []
    for op in ("conv_s8", "dwconv_s8"):
        for i in range(44):
            mode = ["typical", "ties", "small", "left", "wild"][i % 5]
            cases.append(spatial_case(rng, f"{op}#{i}:{mode}", op, mode=mode, big=i % 7 == 0))
        cases.append(spatial_case(rng, f"{op}:group>64", op, g_hint=2 * 3 * 23, dm=2 if op != "conv_s8" else None,
                                  big=True))
    for op in ("conv_s8", "dwconv_s8"):
        cases.append(spatial_case(rng, f"{op}:accumulator wraps", op, mode="wrap", big=True))
    cases.append(fc_case(rng, "fc_s8:accumulator wraps", "wrap"))
    cases.append(spatial_case(rng, "dwconv_s8:dm2", "dwconv_s8", dm=2))
    cases.append(spatial_case(rng, "dwconv_s8:dm3,wild", "dwconv_s8", dm=3, mode="wild"))
    for op in ("maxpool_s8", "avgpool_s8"):
        i = 0
        while i < 30:
            c = spatial_case(rng, f"{op}#{i}", op, big=i % 5 == 0)
            if c.run_c()[0] is None:                    # skip windows wholly in the padding...
                cases.append(c)
                i += 1
    while True:                                         # ...but keep one to see both refuse it
        c = spatial_case(rng, "avgpool_s8:window in padding", "avgpool_s8")
        if c.run_c()[0] is not None:
            cases.append(c)
            break
    for i in range(24):
        cases.append(fc_case(rng, f"fc_s8#{i}", ["typical", "small", "left", "ties", "wild"][i % 5]))
    for i in range(16):
        cases.append(add_case(rng, f"add_s8#{i}", wild=i % 3 == 2))
    for i in range(30):
        cases.append(requant_case(rng, f"requant_s8#{i}"))
    cases.append(requant_case(rng, "requant_s8:shift -40 (quotient 0)", shift=-40))
    c = spatial_case(rng, "dwconv_s8:c0 not a multiple of dm (refused)", "dwconv_s8", dm=2)
    c.calls[0][1][-2] += 1
    cases.append(c)
    for i in range(10):
        cases.append(mean_case(rng, f"mean#{i}", wild=i % 3 == 2))
    for i in range(15):
        cases.append(ksplit_case(rng, f"ksplit#{i}", ["typical", "small", "left", "ties", "wild", "wrap"][i % 6]))
    for i in range(12):
        cases.append(softmax_case(rng, f"softmax#{i}"))
    cases.append(softmax_case(rng, "softmax:diff_min cut", scale=0.5))
    cases.append(softmax_case(rng, "softmax:1001 classes", n=1001, scale=0.1))
    for i in range(4):
        cases.append(ksplit_case(rng, f"ksplit over its sums#{i}", ["typical", "wrap"][i % 2], over=True))
    return cases


def first_diff(got, want):
    j = next(k for k in range(len(want)) if got[k] != want[k])
    n = sum(x != y for x, y in zip(got, want))
    return f"differs first at byte {j}: got {np.int8(got[j])}, want {np.int8(want[j])} ({n} of {len(want)} differ)"


# ---- the test ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def results(tmp_path_factory):
    cases = all_cases()
    tmp = tmp_path_factory.mktemp("viper")
    src, dst = tmp / "cases.jsonl", tmp / "out.jsonl"
    src.write_text("".join(c.json() + "\n" for c in cases))
    mp = tool("micropython")
    r = subprocess.run([mp, "-X", "heapsize=256K", RUNNER, ROOT, str(src), str(dst)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"micropython failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    got = [json.loads(line) for line in dst.read_text().splitlines()]
    assert [g["name"] for g in got] == [c.name for c in cases]
    return cases, got


def test_bit_exact_against_c(results):
    cases, got = results
    kinds = set()
    for case, g in zip(cases, got):
        err, want = case.run_c()
        kinds.add(case.calls[-1][0])
        assert (g["err"] is None) == (err is None), f"{case.name}: viper error {g['err']!r}, C error {err!r}"
        for i, (h, w) in enumerate(zip(g["outs"], want)):
            b = bytes.fromhex(h)
            assert b == w, f"{case.name}: output buffer {i} " + first_diff(b, w)
    assert kinds == {"conv_s8", "dwconv_s8", "maxpool_s8", "avgpool_s8", "fc_s8", "add_s8", "requant_s8",
                     "mean_out_s8", "acc_out_s8", "softmax_s8"}


def test_no_heap_allocation(results):
    """Only SOFTMAX (plain Python ints) may allocate; error paths allocate their exception."""
    cases, got = results
    bad = [(c.name, g["alloc"]) for c, g in zip(cases, got)
           if g["alloc"] and g["err"] is None and c.calls[-1][0] != "softmax_s8"]
    assert not bad, f"heap allocations in kernel calls: {bad[:5]}"


def test_32bit_word_emulation():
    """The same cases through tests/_viper_word32.py (viper's int semantics on a 32-bit word, emulated in
    CPython): the kernels must still match the C, and `_rq` may overflow its word only where TFLite's
    int32 `x << left_shift` wraps on purpose (the `<< ls` line)."""
    import _viper_word32 as w32
    kern = w32.load().Kernels()
    w32.WRAPS.clear()
    for case in all_cases():
        err, want = case.run_c()
        got_err, got = case.run(kern)
        assert (got_err is None) == (err is None), f"{case.name}: 32-bit error {got_err!r}, C error {err!r}"
        for i, (b, w) in enumerate(zip(got, want)):
            assert b == w, f"{case.name}: 32-bit output buffer {i} " + first_diff(b, w)
    with open(w32._SRC) as f:
        src = f.read().splitlines()
    bad = [(fn, line, src[line - 1].strip()) for fn, line in w32.WRAPS if fn == "_rq" and "<< ls" not in src[line - 1]]
    assert not bad, f"unplanned 32-bit overflow in _rq: {bad}"
    assert any(fn == "_rq" for fn, _ in w32.WRAPS), "no case exercised the wrapping left shift"


def test_slot_constants_match_opdefs():
    """kernels_viper.py copies the p slots it indexes inside viper; they must be opdefs' values."""
    import re
    with open(os.path.join(ROOT, "device", "kernels_viper.py")) as f:
        slots = re.findall(r"^_(P[A-Z]?_\w+) = const\((\d+)\)", f.read(), re.M)
    assert len(slots) > 40
    wrong = [(n, int(v), getattr(d, n, None)) for n, v in slots if getattr(d, n, None) != int(v)]
    assert not wrong, f"(name, kernels_viper, opdefs): {wrong}"


@pytest.mark.parametrize("arch", ["armv6m", "armv7m", "armv7emsp", "xtensa", "xtensawin", "rv32imc", "x86"])
def test_compiles_for_32bit_boards(arch, tmp_path):
    """mpy-cross with 31-bit small ints refuses viper code that would only work with 64-bit words (a
    literal of 2**30 or more is an object there, and viper cannot mix it with an int)."""
    r = subprocess.run([tool("mpy-cross"), f"-march={arch}", "-msmall-int-bits=31", "-o",
                        str(tmp_path / "k.mpy"), os.path.join(ROOT, "device", "kernels_viper.py")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
