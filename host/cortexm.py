"""The C kernels on an emulated Cortex-M4: cross-build, bit-exact test vectors, executed-instruction counts.

    from tileswap.host import cortexm
    if not cortexm.missing_tools():
        elf = cortexm.build(workdir, dsp=True)                 # native/ + native/cortexm/ -> ELF
        rec = cortexm.Recorder()                               # the Kernels API, recording every call
        rec.conv_s8(p, out, 0, inp, 0, in_h, y0, oh, wts, g)   # runs the host C kernel, keeps a test vector
        failures = cortexm.check(elf, rec.records, workdir)    # [] when QEMU reproduces every output byte
        figures = cortexm.cortexm_figures()                    # instructions per MAC, .text size

The ELF runs on QEMU's `mps2-an386` machine (Cortex-M4) with semihosting: the harness (native/cortexm/
harness.c) reads the vector file from the host's working directory and prints one line per mismatch.
Instruction counts come from QEMU's execution log restricted to the kernel library's address range
(`-singlestep -d exec,nochain -dfilter`), which the linker script keeps contiguous.
"""

import os
import re
import shutil
import struct
import subprocess
import tempfile

import numpy as np

from ..device import opdefs as d
from .errors import HostError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NATIVE = os.path.join(ROOT, "native")
CORTEXM = os.path.join(NATIVE, "cortexm")
TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-ar", "arm-none-eabi-size", "arm-none-eabi-nm", "qemu-system-arm")
# -fno-tree-loop-distribute-patterns: copy loops stay loops instead of calls to newlib's memcpy, so the
# library needs nothing from libc and every instruction it runs is inside its own address range.
CFLAGS = ("-mcpu=cortex-m4", "-mthumb", "-O2", "-std=c99", "-Wall", "-Wextra", "-Wshadow", "-Werror",
          "-ffunction-sections", "-fno-tree-loop-distribute-patterns")
QEMU = ("qemu-system-arm", "-M", "mps2-an386", "-nographic", "-icount", "shift=0")

OP_CONV, OP_DWCONV, OP_FC, OP_ADD, OP_MAXPOOL, OP_AVGPOOL = 1, 2, 3, 4, 5, 6
OP_MEAN_ACC, OP_MEAN_OUT, OP_SOFTMAX, OP_REQUANT, OP_LEAKY_RELU, OP_REF = 7, 8, 10, 11, 12, 100
OP_CONV_ACC, OP_ACC_OUT = 13, 14
CAP = 1 << 19   # the harness's buffer for each blob (native/cortexm/harness.c)


def missing_tools():
    """Names of the cross tools that are not on PATH (Debian: gcc-arm-none-eabi, libnewlib-arm-none-eabi,
    qemu-system-arm)."""
    return [t for t in TOOLS if shutil.which(t) is None]


def _run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode:
        raise HostError("%s failed:\n%s%s" % (" ".join(cmd[:3]), r.stdout, r.stderr))
    return r.stdout


def kernel_sources():
    return sorted(os.path.join(NATIVE, f) for f in os.listdir(NATIVE) if f.startswith("ts_") and f.endswith(".c"))


def build(out_dir, *, dsp=True, cpu="cortex-m4"):
    """Cross-compile the kernel library (libtskernels.a) and the harness ELF into out_dir/dsp or
    out_dir/nodsp (`-DTS_NO_DSP`: the plain C path on the same core), or out_dir/<cpu> for another core
    (e.g. cortex-m0plus: ARMv6-M code, which the emulated Cortex-M4 runs too). Returns the ELF's path."""
    if missing_tools():
        raise HostError("ARM toolchain missing: %s (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi "
                        "qemu-system-arm)" % ", ".join(missing_tools()))
    out = os.path.join(out_dir, ("dsp" if dsp else "nodsp") if cpu == "cortex-m4" else cpu)
    os.makedirs(out, exist_ok=True)
    flags = ["-mcpu=" + cpu] + list(CFLAGS[1:]) + ["-I", NATIVE] + ([] if dsp else ["-DTS_NO_DSP"])
    objs = []
    for src in kernel_sources():
        obj = os.path.join(out, os.path.basename(src)[:-2] + ".o")
        _run(["arm-none-eabi-gcc", *flags, "-c", src, "-o", obj])
        objs.append(obj)
    lib = os.path.join(out, "libtskernels.a")
    if os.path.exists(lib):
        os.remove(lib)
    _run(["arm-none-eabi-ar", "rcs", lib, *objs])
    names = lambda opt: {w for w in _run(["arm-none-eabi-nm", opt, lib]).split() if not w.endswith(":")}  # noqa: E731
    undefined = names("-u") - {"U"} - names("--defined-only")
    if undefined and cpu == "cortex-m4":    # ARMv6-M needs libgcc's division and memcpy: fine, not counted
        raise HostError("the kernel library calls outside itself: %s" % ", ".join(sorted(undefined)))
    elf = os.path.join(out, "harness.elf")
    _run(["arm-none-eabi-gcc", *flags, "--specs=rdimon.specs", "-T", os.path.join(CORTEXM, "link.ld"),
          os.path.join(CORTEXM, "startup.c"), os.path.join(CORTEXM, "harness.c"), lib, "-o", elf])
    return elf


def build_host(out_dir, *, cflags=("-O3",), name="harness-host"):
    """The same harness and kernels compiled for the machine running this (`cc`, e.g. the x86-64 baseline
    or `-mavx2`, without the cffi build's clones), to run the vectors natively. Returns the executable."""
    os.makedirs(out_dir, exist_ok=True)
    exe = os.path.join(out_dir, name)
    _run([os.environ.get("CC", "cc"), "-std=c99", "-Wall", "-Wextra", "-Werror", *cflags, "-I", NATIVE,
          *kernel_sources(), os.path.join(CORTEXM, "harness.c"), "-o", exe])
    return exe


def text_size(elf):
    """Bytes of code and read-only data of the kernel library beside `elf` (arm-none-eabi-size totals)."""
    lib = os.path.join(os.path.dirname(elf), "libtskernels.a")
    last = _run(["arm-none-eabi-size", "-t", lib]).strip().splitlines()[-1]
    return int(last.split()[0])


def _kernel_range(elf):
    syms = {}
    for line in _run(["arm-none-eabi-nm", elf]).splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] in ("__ts_text_start", "__ts_text_end"):
            syms[parts[2]] = int(parts[0], 16)
    return syms["__ts_text_start"], syms["__ts_text_end"]


# Test vectors --------------------------------------------------------------------------------------------

def _pad4(b):
    return bytes(b) + bytes(-len(b) % 4)


def pack_vectors(records):
    """The harness's vector file (format in native/cortexm/harness.c) from Recorder records."""
    out = [b"TSV1", struct.pack("<i", len(records))]
    for r in records:
        args = list(r["args"]) + [0] * (6 - len(r["args"]))
        p = bytes(memoryview(r["p"]).cast("B")) if r["p"] is not None else b""
        blobs = [p, r["inp"], r["in2"], r["before"], r["after"]]
        if any(len(b) > CAP for b in blobs):
            raise HostError("test vector %d: a buffer over %d bytes" % (r["id"], CAP))
        out.append(struct.pack("<16i", r["op"], r["status"], *args, len(p) // 4, len(r["inp"]), len(r["in2"]),
                               len(r["before"]), r["in_off"], r["in2_off"], r["out_off"], r["id"]))
        out.extend(_pad4(b) for b in blobs)
    return b"".join(out)


class Recorder:
    """The Kernels API of docs/kernels.md: runs the host C kernels (`kernels`, default the fast ones) and
    keeps each call as a test vector: arguments, buffers, the output buffer before and after, and the
    status (1 where the C kernel refused the arguments). With `naive_too`, convolutions and FC are also
    recorded for the naive kernels (ts_*_s8_ref), expecting the same bytes."""

    def __init__(self, kernels=None, *, naive_too=True):
        from .native import Kernels
        self.k = kernels or Kernels()
        self.naive_too = naive_too
        self.records = []

    def _call(self, op, args, p, fn, out, out_off, inp, in_off, in2=b"", in2_off=0, macs=0):
        before = bytes(out)
        inp_b, in2_b = bytes(inp), bytes(in2)      # before the call: a kernel may write over its input
        try:
            fn()
            status = 0
        except ValueError as e:
            if "refused" not in str(e):
                raise
            status = 1
            out[:] = before
        rec = dict(op=op, status=status, args=args, p=p, inp=inp_b, in_off=in_off, in2=in2_b,
                   in2_off=in2_off, before=before, after=bytes(out), out_off=out_off, macs=macs)
        for o in ((op, op + OP_REF) if self.naive_too and op in (OP_CONV, OP_DWCONV, OP_FC) else (op,)):
            self.records.append(dict(rec, op=o, id=len(self.records)))
        return status

    def conv_s8(self, p, out, out_off, inp, in_off, in_h, y0, oh, wts, g):
        q = memoryview(p).cast("B").cast("i")
        macs = oh * q[d.P_OUT_W] * g * q[d.P_KH] * q[d.P_KW] * q[d.P_IN_C]
        self._call(OP_CONV, [y0, oh, g, in_h], p, lambda: self.k.conv_s8(p, out, out_off, inp, in_off, in_h, y0, oh,
                   wts, g), out, out_off, inp, in_off, wts, 0, macs)

    def dwconv_s8(self, p, out, out_off, inp, in_off, in_h, y0, oh, wts, c0, g):
        q = memoryview(p).cast("B").cast("i")
        macs = oh * q[d.P_OUT_W] * g * q[d.P_KH] * q[d.P_KW]
        self._call(OP_DWCONV, [y0, oh, c0, g, in_h], p, lambda: self.k.dwconv_s8(p, out, out_off, inp, in_off, in_h,
                   y0, oh, wts, c0, g), out, out_off, inp, in_off, wts, 0, macs)

    def maxpool_s8(self, p, out, out_off, inp, in_off, in_h, y0, oh, c0, g):
        self._call(OP_MAXPOOL, [y0, oh, c0, g, in_h], p, lambda: self.k.maxpool_s8(p, out, out_off, inp, in_off, in_h,
                   y0, oh, c0, g), out, out_off, inp, in_off)

    def avgpool_s8(self, p, out, out_off, inp, in_off, in_h, y0, oh, c0, g):
        self._call(OP_AVGPOOL, [y0, oh, c0, g, in_h], p, lambda: self.k.avgpool_s8(p, out, out_off, inp, in_off, in_h,
                   y0, oh, c0, g), out, out_off, inp, in_off)

    def fc_s8(self, p, out, out_off, inp, in_off, rows, wts, g):
        macs = rows * g * memoryview(p).cast("B").cast("i")[d.PF_N]
        self._call(OP_FC, [rows, g], p, lambda: self.k.fc_s8(p, out, out_off, inp, in_off, rows, wts, g), out, out_off,
                   inp, in_off, wts, 0, macs)

    def add_s8(self, p, out, out_off, a, a_off, b, b_off, n):
        self._call(OP_ADD, [n], p, lambda: self.k.add_s8(p, out, out_off, a, a_off, b, b_off, n), out, out_off,
                   a, a_off, b, b_off)

    def requant_s8(self, p, out, out_off, inp, in_off, n):
        self._call(OP_REQUANT, [n], p, lambda: self.k.requant_s8(p, out, out_off, inp, in_off, n), out, out_off,
                   inp, in_off)

    def leaky_relu_s8(self, p, out, out_off, inp, in_off, n):
        self._call(OP_LEAKY_RELU, [n], p, lambda: self.k.leaky_relu_s8(p, out, out_off, inp, in_off, n), out,
                   out_off, inp, in_off)

    def mean_acc_s8(self, acc, inp, in_off, npix, c):
        self._call(OP_MEAN_ACC, [npix, c], None, lambda: self.k.mean_acc_s8(acc, inp, in_off, npix, c), acc, 0,
                   inp, in_off)

    def mean_out_s8(self, p, out, out_off, acc):
        self._call(OP_MEAN_OUT, [], p, lambda: self.k.mean_out_s8(p, out, out_off, acc), out, out_off, b"", 0,
                   acc, 0)

    def conv_acc_s8(self, p, acc, inp, in_off, npix, wts, q, ch, first):
        self._call(OP_CONV_ACC, [npix, q, ch, 1 if first else 0], p,
                   lambda: self.k.conv_acc_s8(p, acc, inp, in_off, npix, wts, q, ch, first), acc, 0, inp, in_off,
                   wts, 0, npix * q * ch)

    def acc_out_s8(self, p, out, out_off, acc, npix, wts, q, ch):
        self._call(OP_ACC_OUT, [npix, q, ch], p, lambda: self.k.acc_out_s8(p, out, out_off, acc, npix, wts, q, ch),
                   out, out_off, acc, 0, wts, 0)

    def softmax_s8(self, p, out, out_off, inp, in_off, rows):
        self._call(OP_SOFTMAX, [rows], p, lambda: self.k.softmax_s8(p, out, out_off, inp, in_off, rows), out,
                   out_off, inp, in_off)


def _qemu(elf, args, *, cwd, extra=(), timeout=600):
    if not elf.endswith(".elf"):     # a build_host executable runs natively
        cmd = [elf] + list(args)
    else:
        cmd = list(QEMU) + list(extra) + ["-semihosting-config", "enable=on,target=native," +
                                          ",".join("arg=" + a for a in ["harness"] + list(args)), "-kernel", elf]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise HostError("QEMU did not finish in %d s: %s" % (timeout, " ".join(cmd))) from None
    return r.returncode, r.stdout + r.stderr


def check(elf, records, workdir, *, timeout=600):
    """Run every record on QEMU (or natively, for a build_host executable); returns the harness's failure
    lines ([] when all are bit-exact)."""
    path = os.path.join(workdir, "vectors.bin")
    with open(path, "wb") as f:
        f.write(pack_vectors(records))
    rc, text = _qemu(elf, ["check", "vectors.bin"], cwd=workdir, timeout=timeout)
    m = re.search(r"cortexm: (\d+) records run, (\d+) failed", text)
    if not m or int(m.group(1)) != len(records):
        raise HostError("the harness did not finish (exit %d):\n%s" % (rc, text[-2000:]))
    return [line for line in text.splitlines() if line.startswith("FAIL")]


def count_instructions(elf, record, workdir):
    """Instructions the Cortex-M4 executes inside the kernel library for one record (which must pass)."""
    vec = os.path.join(workdir, "one.bin")
    log = os.path.join(workdir, "exec.log")
    with open(vec, "wb") as f:
        f.write(pack_vectors([record]))
    lo, hi = _kernel_range(elf)
    rc, text = _qemu(elf, ["one", "one.bin", "0"], cwd=workdir,
                     extra=["-singlestep", "-d", "exec,nochain", "-dfilter", "0x%x+0x%x" % (lo, hi - lo), "-D", log])
    try:
        if rc != 0 or "1 records run, 0 failed" not in text:
            raise HostError("instruction count run failed (exit %d):\n%s" % (rc, text[-2000:]))
        n = 0
        with open(log, "rb") as f:
            for line in f:
                n += line.startswith(b"Trace")
        return n
    finally:
        if os.path.exists(log):
            os.remove(log)


# Instruction counts for `tileswap bench` -----------------------------------------------------------------

# MobileNetV2-1.0-224 (Sandler et al. 2018, table 2): (expansion t, output channels c, repeats n, stride s).
_MNV2_BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1))


def mobilenet_v2_layers():
    """MobileNetV2-1.0-224's convolutions and its classifier: dicts of kind ('1x1', '3x3', 'dw', 'fc'), input
    channels c, output channels g, output size hw, stride, fused activation (RELU6 or NONE: the projections
    are linear), and MACs."""
    layers = [dict(kind="3x3", c=3, g=32, hw=112, stride=2, act="RELU6")]
    c, hw = 32, 112
    for t, out, n, s in _MNV2_BLOCKS:
        for i in range(n):
            stride = s if i == 0 else 1
            if t != 1:
                layers.append(dict(kind="1x1", c=c, g=c * t, hw=hw, stride=1, act="RELU6"))
            hw = hw // stride
            layers.append(dict(kind="dw", c=c * t, g=c * t, hw=hw, stride=stride, act="RELU6"))
            layers.append(dict(kind="1x1", c=c * t, g=out, hw=hw, stride=1, act="NONE"))
            c = out
    layers.append(dict(kind="1x1", c=c, g=1280, hw=hw, stride=1, act="RELU6"))
    layers.append(dict(kind="fc", c=1280, g=1000, hw=1, stride=1, act="NONE"))
    for layer in layers:
        taps = {"1x1": layer["c"], "3x3": 9 * layer["c"], "dw": 9, "fc": layer["c"]}[layer["kind"]]
        layer["macs"] = layer["hw"] ** 2 * layer["g"] * taps
    return layers


def _layer_record(kind, c, g, hw, stride, act, rng):
    """One kernel call of a layer of this kind (square output hw x hw, 'same' padding, fused activation
    `act`: RELU6 clamps to a zero point of -128's [-128, ~max], NONE leaves [-128, 127]), recorded."""
    from ..tiler import quant
    rec = Recorder(naive_too=False)
    q = lambda *shape: rng.integers(-127, 128, shape, dtype=np.int8)  # noqa: E731
    req = lambda n: (rng.integers(-999, 999, n), rng.integers(1 << 30, 1 << 31, n), rng.integers(-10, 0, n))  # noqa
    if kind == "fc":
        p = quant.fc_params(n=c, out_c=g, in_zp=-3, out_zp=5, out_scale=1.0)
        rec.fc_s8(p, bytearray(g), 0, q(c).tobytes(), 0, 1, quant.pack_weights_payload(q(g, c), *req(g)), g)
        return rec.records[0]
    k = 1 if kind == "1x1" else 3
    pad = k // 2
    in_hw = (hw - 1) * stride + k - 2 * pad
    if kind == "dw":
        p = quant.dwconv_params(in_w=in_hw, in_c=c, out_w=hw, kh=3, kw=3, sh=stride, sw=stride, pad_l=pad, in_zp=-3,
                                out_zp=-128, out_scale=0.03, fused=act)
        rec.dwconv_s8(p, bytearray(hw * hw * c), 0, q(in_hw * in_hw * c).tobytes(), 0, in_hw, -pad, hw,
                      quant.pack_weights_payload(q(3, 3, c), *req(c)), 0, c)
    else:
        p = quant.conv_params(in_w=in_hw, in_c=c, out_w=hw, out_c=g, kh=k, kw=k, sh=stride, sw=stride, pad_l=pad,
                              in_zp=-3, out_zp=-128 if act == "RELU6" else 5, out_scale=0.03, fused=act)
        rec.conv_s8(p, bytearray(hw * hw * g), 0, q(in_hw * in_hw * c).tobytes(), 0, in_hw, -pad, hw,
                    quant.pack_weights_payload(q(g, k, k, c), *req(g)), g)
    return rec.records[0]


# Single layers of each kind reported beside the MobileNetV2 mix: (label, kind, c, g, output size, stride,
# fused activation).
BENCH_LAYERS = (
    ("1x1 conv 64 -> 64", "1x1", 64, 64, 4, 1, "NONE"),
    ("1x1 conv 128 -> 128", "1x1", 128, 128, 4, 1, "NONE"),
    ("1x1 conv 256 -> 64", "1x1", 256, 64, 4, 1, "NONE"),
    ("1x1 conv 64 -> 64, RELU6", "1x1", 64, 64, 4, 1, "RELU6"),
    ("3x3 conv 16 -> 32, RELU6", "3x3", 16, 32, 6, 1, "RELU6"),
    ("3x3 conv 32 -> 32, RELU6", "3x3", 32, 32, 6, 1, "RELU6"),
    ("3x3 conv 64 -> 64, RELU6", "3x3", 64, 64, 4, 1, "RELU6"),
    ("depthwise 3x3, 64 channels, RELU6", "dw", 64, 64, 8, 1, "RELU6"),
    ("fully connected 256 -> 64", "fc", 256, 64, 1, 1, "NONE"),
    ("fully connected 1280 -> 1000 (first 64)", "fc", 1280, 64, 1, 1, "NONE"),
)
_TYPES = {"1x1": "1x1 conv", "3x3": "3x3 conv", "dw": "depthwise 3x3", "fc": "fully connected"}


def _tool_version(cmd):
    return subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0].strip()


def cortexm_figures(workdir=None, *, log=lambda s: None):
    """Executed instructions per MAC on the emulated Cortex-M4, with the DSP path and with the plain C, and
    the kernel library's .text size (both builds), for `tileswap bench`:

      {"target", "compiler", "text_bytes": {"dsp", "plain"},
       "layers": [{"layer", "type", "macs", "dsp", "plain"}],            # BENCH_LAYERS
       "mobilenet_v2": {type: {"dsp", "plain", "macs", "layers"}},        # MAC-weighted over its layers
       "mobilenet_v2_1x1": [{"layer", "layers", "macs", "dsp", "plain"}],  # its 1x1 convolutions by shape
       "per_type": {type: {"dsp", "plain", "source"}}}                    # the headline figure per type

    MobileNetV2's layers are measured at a reduced size (at most 4 x 4 output pixels for 1x1 convolutions,
    8 x 8 for depthwise, at most 64 output channels: instructions per MAC hardly depend on either) and
    weighted by their real MACs. Needs the ARM toolchain and QEMU; takes about a minute."""
    if missing_tools():
        raise HostError("cortexm figures need %s" % ", ".join(missing_tools()))
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="tileswap-cortexm-")
        workdir = tmp.name
    try:
        elfs = {"dsp": build(workdir, dsp=True), "plain": build(workdir, dsp=False)}
        rng = np.random.default_rng(0)

        def measure(kind, c, g, hw, stride, act):
            r = _layer_record(kind, c, g, hw, stride, act, rng)
            return {b: count_instructions(e, r, workdir) / r["macs"] for b, e in elfs.items()}, r["macs"]

        layers = []
        for label, kind, c, g, hw, stride, act in BENCH_LAYERS:
            log("cortex-m4: %s" % label)
            per, macs = measure(kind, c, g, hw, stride, act)
            layers.append(dict(layer=label, type=_TYPES[kind], macs=macs, **{b: round(v, 3) for b, v in per.items()}))
        mix, seen, by_shape = {}, {}, {}
        for layer in mobilenet_v2_layers():
            kind = layer["kind"]
            shape = (kind, layer["c"], min(layer["g"], 64), min(layer["hw"], 4 if kind == "1x1" else 8),
                     layer["stride"], layer["act"])
            if kind == "fc":
                shape = ("fc", layer["c"], 64, 1, 1, "NONE")
            if shape not in seen:
                log("cortex-m4: MobileNetV2 %s %d -> %d" % (kind, layer["c"], layer["g"]))
                seen[shape] = measure(*shape)[0]
            name = "3x3 conv (stem)" if kind == "3x3" else _TYPES[kind]
            m = mix.setdefault(name, dict(dsp=0.0, plain=0.0, macs=0, layers=0))
            for b in ("dsp", "plain"):
                m[b] += seen[shape][b] * layer["macs"]
            m["macs"] += layer["macs"]
            m["layers"] += 1
            if kind == "1x1":
                row = by_shape.setdefault(shape, dict(layer="1x1 conv %d -> %d%s" % (
                    layer["c"], layer["g"], ", RELU6" if layer["act"] == "RELU6" else ""), layers=0, macs=0,
                    **{b: round(seen[shape][b], 3) for b in ("dsp", "plain")}))
                row["layers"] += 1
                row["macs"] += layer["macs"]
        total = dict(dsp=0.0, plain=0.0, macs=0, layers=0)
        for m in mix.values():
            for k in total:
                total[k] += m[k]
        mix["all layers"] = total
        for m in mix.values():
            for b in ("dsp", "plain"):
                m[b] = round(m[b] / m["macs"], 3)
        by_label = {row["layer"]: row for row in layers}
        per_type = {
            "1x1 conv": dict(mix["1x1 conv"], source="MobileNetV2's 1x1 convolutions, MAC-weighted"),
            "3x3 conv": dict(by_label["3x3 conv 32 -> 32, RELU6"], source="3x3 conv 32 -> 32, RELU6"),
            "depthwise 3x3": dict(mix["depthwise 3x3"], source="MobileNetV2's depthwise layers, MAC-weighted"),
            "fully connected": dict(by_label["fully connected 1280 -> 1000 (first 64)"],
                                    source="MobileNetV2's classifier, 1280 -> 64 of its 1000 features"),
        }
        per_type = {t: {k: v[k] for k in ("dsp", "plain", "source")} for t, v in per_type.items()}
        return dict(target="Cortex-M4, QEMU mps2-an386 (%s), -icount shift=0" % _tool_version(
                        ["qemu-system-arm", "--version"]),
                    compiler="%s, %s" % (_tool_version(["arm-none-eabi-gcc", "--version"]), " ".join(CFLAGS[:3])),
                    text_bytes={b: text_size(e) for b, e in elfs.items()},
                    layers=layers, mobilenet_v2=mix, mobilenet_v2_1x1=list(by_shape.values()), per_type=per_type)
    finally:
        if tmp is not None:
            tmp.cleanup()
