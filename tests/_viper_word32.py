"""For tests/test_viper_kernels.py: device/kernels_viper.py run by CPython with viper's integer semantics on a
32-bit word (Cortex-M, ESP32, RP2040), which no interpreter here has.

`load()` executes the module's source with stand-ins: every viper int is a `W` (two's complement 32 bits:
+ - * << wrap modulo 2**32, >> is arithmetic, // and % floor), a uint a `U` (unsigned 32 bits, >> logical),
ptr8/ptr32 index the buffer's bytes/little-endian words, and each `@micropython.viper` function converts
its arguments by their annotations (as viper does) and returns a plain int (the boxed word). Mixing W and U
without a cast raises, as viper's compiler would. Every time an operation's exact result does not fit its
word, `WRAPS` records (function, source line): the kernels must wrap only where their comments say so.

This checks the arithmetic argument, not MicroPython's code generator: that is exercised by the real
interpreter on x64 (64-bit words) in the same test.
"""

import collections
import os
import sys
import types

WRAPS = collections.Counter()
_SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "device", "kernels_viper.py")


def _note(lo, hi, v):
    if not lo <= v <= hi:
        f = sys._getframe(1)
        while f.f_code.co_filename != _SRC:
            f = f.f_back
        WRAPS[(f.f_code.co_name, f.f_lineno)] += 1


def _val(o, kind):
    if isinstance(o, (W, U)):
        if type(o) is not kind:
            raise TypeError(f"viper: can't mix {type(o).__name__} and {kind.__name__}")
        return o.v
    return o


class W:
    """A viper int on a 32-bit word."""
    __slots__ = ("v",)

    def __init__(self, v, *, note=False):
        if note:
            _note(-(1 << 31), (1 << 31) - 1, v)
        v &= 0xFFFFFFFF
        self.v = v - (1 << 32) if v & 0x80000000 else v

    def _op(self, o, f):
        return W(f(self.v, _val(o, W)), note=True)

    __add__ = lambda s, o: s._op(o, lambda a, b: a + b)
    __radd__ = __add__
    __sub__ = lambda s, o: s._op(o, lambda a, b: a - b)
    __rsub__ = lambda s, o: s._op(o, lambda a, b: b - a)
    __mul__ = lambda s, o: s._op(o, lambda a, b: a * b)
    __rmul__ = __mul__
    __and__ = lambda s, o: s._op(o, lambda a, b: a & b)
    __rand__ = __and__
    __or__ = lambda s, o: s._op(o, lambda a, b: a | b)
    __ror__ = __or__
    __xor__ = lambda s, o: s._op(o, lambda a, b: a ^ b)
    __rxor__ = __xor__
    __floordiv__ = lambda s, o: s._op(o, lambda a, b: a // b)
    __rfloordiv__ = lambda s, o: s._op(o, lambda a, b: b // a)
    __mod__ = lambda s, o: s._op(o, lambda a, b: a % b)
    __rmod__ = lambda s, o: s._op(o, lambda a, b: b % a)
    __neg__ = lambda s: W(-s.v, note=True)

    def __lshift__(self, o):
        n = _val(o, W)
        assert 0 <= n < 32, n                         # larger counts differ between CPUs
        return W(self.v << n, note=True)

    def __rlshift__(self, o):
        assert 0 <= self.v < 32, self.v
        return W(_val(o, W) << self.v, note=True)

    def __rshift__(self, o):
        n = _val(o, W)
        assert 0 <= n < 32, n
        return W(self.v >> n)

    def __rrshift__(self, o):
        assert 0 <= self.v < 32, self.v
        return W(_val(o, W) >> self.v)

    __lt__ = lambda s, o: s.v < _val(o, W)
    __le__ = lambda s, o: s.v <= _val(o, W)
    __gt__ = lambda s, o: s.v > _val(o, W)
    __ge__ = lambda s, o: s.v >= _val(o, W)
    __eq__ = lambda s, o: s.v == _val(o, W)
    __ne__ = lambda s, o: s.v != _val(o, W)
    __bool__ = lambda s: s.v != 0
    __index__ = lambda s: s.v
    __hash__ = None


class U:
    """A viper uint on a 32-bit word."""
    __slots__ = ("v",)

    def __init__(self, v, *, note=False):
        if note:
            _note(0, 0xFFFFFFFF, v)
        self.v = v & 0xFFFFFFFF

    def _op(self, o, f):
        return U(f(self.v, _val(o, U)), note=True)

    __add__ = lambda s, o: s._op(o, lambda a, b: a + b)
    __mul__ = lambda s, o: s._op(o, lambda a, b: a * b)
    __and__ = lambda s, o: s._op(o, lambda a, b: a & b)
    __rshift__ = lambda s, o: U(s.v >> _val(o, U))


def _word(v):
    return v if isinstance(v, W) else W(int(v.v) if isinstance(v, U) else int(v))


class _Ptr:
    def __init__(self, buf, size):
        self.m = memoryview(buf).cast("B")
        self.size = size

    def __getitem__(self, i):
        i = _word(i).v * self.size
        return W(int.from_bytes(self.m[i:i + self.size], "little", signed=self.size == 4))

    def __setitem__(self, i, v):
        i = _word(i).v * self.size
        self.m[i:i + self.size] = (_word(v).v & ((1 << (8 * self.size)) - 1)).to_bytes(self.size, "little")


def ptr8(buf):
    return _Ptr(buf, 1)


def ptr32(buf):
    return _Ptr(buf, 4)


def uint(v):
    return U(_word(v).v)


def _int(v):
    if isinstance(v, _Ptr):
        return W(0)                                   # an address: buffers here are aligned
    return _word(v)


def _viper(f):
    ann = f.__annotations__                        # the stand-ins themselves: int is _int in the module
    names = f.__code__.co_varnames[:f.__code__.co_argcount]

    def call(*args):
        conv = [ann[n](a) if n in ann else a for n, a in zip(names, args)]
        r = f(*conv)
        return None if r is None else _word(r).v

    call.__name__ = f.__name__
    return call


def load():
    """The kernels module as it would compute on a 32-bit word; its `Kernels` class is the contract."""
    mp = types.ModuleType("micropython")
    mp.viper = _viper
    mp.native = lambda f: f
    mp.const = lambda x: x
    saved = sys.modules.get("micropython")
    sys.modules["micropython"] = mp
    try:
        mod = types.ModuleType("tileswap.device._kernels_viper_w32")
        mod.__package__ = "tileswap.device"
        mod.__file__ = _SRC
        mod.__dict__.update(ptr8=ptr8, ptr32=ptr32, uint=uint, int=_int)
        with open(_SRC) as f:
            exec(compile(f.read(), _SRC, "exec"), mod.__dict__)
    finally:
        if saved is None:
            del sys.modules["micropython"]
        else:
            sys.modules["micropython"] = saved
    return mod
