"""The C tile kernels (native/, built by cffi as tileswap.host._tskernels) behind the Python-level API of
docs/kernels.md. The binding checks once that every byte a kernel will touch lies inside the buffers
given, turns them into pointers at the byte offsets, and lets C do the arithmetic.

    from tileswap.host.native import Kernels
    k = Kernels()
    k.conv_s8(p, out, 0, inp, 0, in_h, y0, oh, wts, g)   # out: bytearray, the rest any buffer

`Kernels(naive=True)` runs the naive C kernels (`ts_<op>_s8_ref`) for CONV_2D, DEPTHWISE_CONV_2D and
FULLY_CONNECTED instead of the fast ones: the same results, for tests and timing.
"""

from tileswap.device import opdefs as d
from tileswap.host._tskernels import ffi, lib


def _align4(n):
    return (n + 3) & ~3


class _Args:
    """Pointers for one call. Holds the cffi buffer objects so the memory stays pinned until the call."""

    def __init__(self):
        self._keep = []

    def buf(self, name, buf, off, need, *, ctype="int8_t", writable=False):
        size = memoryview(buf).nbytes
        if off < 0 or need < 0 or off + need > size:
            raise ValueError(f"{name}: {need} bytes at offset {off} do not fit a buffer of {size}")
        base = ffi.from_buffer("char[]", buf, require_writable=writable)
        self._keep.append(base)
        return ffi.cast(ctype + " *", base + off)

    def params(self, p, length):
        return self.buf("p", p, 0, 4 * length, ctype="int32_t")


def _check(status, op):
    if status != lib.TS_OK:
        raise ValueError(f"{op}: the kernel refused its arguments (status {status})")


def _p32(p):
    """Index any int32 buffer (array('i'), bytes of a p vector) as Python ints."""
    return memoryview(p).cast("B").cast("i")


def _spatial_out_need(p, oh, g):
    return ((oh - 1) * p[d.P_OUT_W] + p[d.P_OUT_W] - 1) * p[d.P_OUT_C] + g


class Kernels:
    """C kernels; identical arguments and results to tileswap.host.kernels_ref.Kernels."""

    def __init__(self, *, naive=False):
        self.naive = naive
        self._conv = lib.ts_conv_s8_ref if naive else lib.ts_conv_s8
        self._dwconv = lib.ts_dwconv_s8_ref if naive else lib.ts_dwconv_s8
        self._fc = lib.ts_fc_s8_ref if naive else lib.ts_fc_s8

    def conv_s8(self, p, out, out_off, inp, in_off, in_h, y0, oh, wts, g):
        a = _Args()
        p = _p32(p)
        pp = a.params(p, d.P_SPATIAL_LEN)
        nf = g * p[d.P_KH] * p[d.P_KW] * p[d.P_IN_C]
        w = a.buf("wts", wts, 0, _align4(nf) + 12 * g)
        i = a.buf("inp", inp, in_off, in_h * p[d.P_IN_W] * p[d.P_IN_C])
        o = a.buf("out", out, out_off, _spatial_out_need(p, oh, g), writable=True)
        _check(self._conv(pp, y0, oh, g, in_h, i, w, o), "conv_s8")

    def dwconv_s8(self, p, out, out_off, inp, in_off, in_h, y0, oh, wts, c0, g):
        a = _Args()
        p = _p32(p)
        pp = a.params(p, d.P_SPATIAL_LEN)
        w = a.buf("wts", wts, 0, _align4(g * p[d.P_KH] * p[d.P_KW]) + 12 * g)
        i = a.buf("inp", inp, in_off, in_h * p[d.P_IN_W] * p[d.P_IN_C])
        o = a.buf("out", out, out_off, _spatial_out_need(p, oh, g), writable=True)
        _check(self._dwconv(pp, y0, oh, c0, g, in_h, i, w, o), "dwconv_s8")

    def _pool(self, fn, name, p, out, out_off, inp, in_off, in_h, y0, oh, c0, g):
        a = _Args()
        p = _p32(p)
        pp = a.params(p, d.P_SPATIAL_LEN)
        i = a.buf("inp", inp, in_off, in_h * p[d.P_IN_W] * p[d.P_IN_C])
        o = a.buf("out", out, out_off, _spatial_out_need(p, oh, g), writable=True)
        _check(fn(pp, y0, oh, c0, g, in_h, i, o), name)

    def maxpool_s8(self, p, out, out_off, inp, in_off, in_h, y0, oh, c0, g):
        self._pool(lib.ts_maxpool_s8, "maxpool_s8", p, out, out_off, inp, in_off, in_h, y0, oh, c0, g)

    def avgpool_s8(self, p, out, out_off, inp, in_off, in_h, y0, oh, c0, g):
        self._pool(lib.ts_avgpool_s8, "avgpool_s8", p, out, out_off, inp, in_off, in_h, y0, oh, c0, g)

    def fc_s8(self, p, out, out_off, inp, in_off, rows, wts, g):
        a = _Args()
        p = _p32(p)
        pp = a.params(p, d.PF_LEN)
        n = p[d.PF_N]
        w = a.buf("wts", wts, 0, _align4(g * n) + 12 * g)
        i = a.buf("inp", inp, in_off, rows * n)
        o = a.buf("out", out, out_off, max(0, (rows - 1) * p[d.PF_OUT_C] + g), writable=True)
        _check(self._fc(pp, rows, g, i, w, o), "fc_s8")

    def add_s8(self, p, out, out_off, a_buf, a_off, b_buf, b_off, n):
        a = _Args()
        p = _p32(p)
        pp = a.params(p, d.PA_LEN)
        x = a.buf("a", a_buf, a_off, n)
        y = a.buf("b", b_buf, b_off, n)
        o = a.buf("out", out, out_off, n, writable=True)
        _check(lib.ts_add_s8(pp, n, x, y, o), "add_s8")

    def requant_s8(self, p, out, out_off, inp, in_off, n):
        a = _Args()
        p = _p32(p)
        pp = a.params(p, d.PR_LEN)
        i = a.buf("inp", inp, in_off, n)
        o = a.buf("out", out, out_off, n, writable=True)
        _check(lib.ts_requant_s8(pp, n, i, o), "requant_s8")

    def leaky_relu_s8(self, p, out, out_off, inp, in_off, n):
        a = _Args()
        p = _p32(p)
        pp = a.params(p, d.PL_LEN)
        i = a.buf("inp", inp, in_off, n)
        o = a.buf("out", out, out_off, n, writable=True)
        _check(lib.ts_leaky_relu_s8(pp, n, i, o), "leaky_relu_s8")

    def mean_acc_s8(self, acc, inp, in_off, npix, c):
        a = _Args()
        s = a.buf("acc", acc, 0, 4 * c, ctype="int32_t", writable=True)
        if int(ffi.cast("uintptr_t", s)) % 4:
            raise ValueError("acc must be 4-byte aligned")
        i = a.buf("inp", inp, in_off, npix * c)
        _check(lib.ts_mean_acc_s8(npix, c, i, s), "mean_acc_s8")

    def conv_acc_s8(self, p, acc, inp, in_off, npix, wts, q, ch, first):
        a = _Args()
        p = _p32(p)
        pp = a.params(p, d.P_SPATIAL_LEN)
        s = a.buf("acc", acc, 0, 4 * npix * q, ctype="int32_t", writable=True)
        if int(ffi.cast("uintptr_t", s)) % 4:
            raise ValueError("acc must be 4-byte aligned")
        i = a.buf("inp", inp, in_off, npix * ch)
        w = a.buf("wts", wts, 0, q * ch)
        _check(lib.ts_conv_acc_s8(pp, npix, q, ch, 1 if first else 0, i, w, s), "conv_acc_s8")

    def acc_out_s8(self, p, out, out_off, acc, npix, wts, q, ch):
        a = _Args()
        p = _p32(p)
        pp = a.params(p, d.P_SPATIAL_LEN)
        s = a.buf("acc", acc, 0, 4 * npix * q, ctype="int32_t")
        w = a.buf("wts", wts, 0, _align4(q * ch) + 12 * q)
        o = a.buf("out", out, out_off, max(0, (npix - 1) * p[d.P_OUT_C] + q), writable=True)
        _check(lib.ts_acc_out_s8(pp, npix, q, ch, s, w, o), "acc_out_s8")

    def mean_out_s8(self, p, out, out_off, acc):
        a = _Args()
        p = _p32(p)
        pp = a.params(p, d.PM_LEN)
        c = p[d.PM_C]
        s = a.buf("acc", acc, 0, 4 * c, ctype="int32_t")
        o = a.buf("out", out, out_off, c, writable=True)
        _check(lib.ts_mean_out_s8(pp, s, o), "mean_out_s8")

    def softmax_s8(self, p, out, out_off, inp, in_off, rows):
        a = _Args()
        p = _p32(p)
        pp = a.params(p, d.PS_LEN)
        n = p[d.PS_N]
        i = a.buf("inp", inp, in_off, rows * n)
        o = a.buf("out", out, out_off, rows * n, writable=True)
        _check(lib.ts_softmax_s8(pp, rows, i, o), "softmax_s8")
