"""For tests/test_viper_kernels.py and host/bench_viper.py: runs kernel calls on the MicroPython interpreter.

    micropython -X heapsize=256K tests/_viper_runner.py ROOT CASES OUT

ROOT is the repository root (so `device` imports as a package). CASES holds one JSON object per line:
  {"name": str, "bufs": [[kind, hex], ...], "calls": [[method, [arg, ...]], ...], "outs": [i, ...],
   "reps": int (optional, bench only)}
kind "b" is a bytearray, "m" a memoryview of one, "i" an array('i') (little-endian int32 bytes); an arg is
an int, ["B", i] (buffer i) or ["V", i, start, end] (memoryview(buffer i)[start:end]). OUT gets one line
per case: {"name", "err" (the ValueError's text or null), "outs": [hex of buffer i, ...], "alloc": bytes
allocated on the heap during the calls, "us": microseconds for all the calls}.
"""

import sys

sys.path.insert(0, sys.argv[1])

import gc  # noqa: E402
import json  # noqa: E402
import struct  # noqa: E402
import time  # noqa: E402
from array import array  # noqa: E402
from binascii import hexlify, unhexlify  # noqa: E402

from device.kernels_viper import Kernels  # noqa: E402


def buffer(kind, data):
    if kind == "i":
        return array("i", struct.unpack("<%di" % (len(data) // 4), data))
    b = bytearray(data)
    return memoryview(b) if kind == "m" else b


def arg(a, bufs):
    if isinstance(a, int):
        return a
    if a[0] == "B":
        return bufs[a[1]]
    return memoryview(bufs[a[1]])[a[2]:a[3]]


def call(f, a):
    # Fixed arity, not f(*a): a star call may allocate, and the test counts allocations.
    n = len(a)
    if n == 4:
        return f(a[0], a[1], a[2], a[3])
    if n == 5:
        return f(a[0], a[1], a[2], a[3], a[4])
    if n == 6:
        return f(a[0], a[1], a[2], a[3], a[4], a[5])
    if n == 8:
        return f(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7])
    if n == 9:
        return f(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8])
    if n == 10:
        return f(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9])
    if n == 11:
        return f(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10])
    raise TypeError("no kernel takes %d arguments" % n)


def run_case(k, case):
    bufs = [buffer(kind, unhexlify(h)) for kind, h in case["bufs"]]
    calls = [(getattr(k, m), [arg(a, bufs) for a in args]) for m, args in case["calls"]]
    reps = case.get("reps", 1)
    err = None
    gc.collect()
    m0 = gc.mem_alloc()
    t0 = time.ticks_us()
    try:
        for _ in range(reps):
            for f, a in calls:
                call(f, a)
    except ValueError as e:
        err = str(e)
    us = time.ticks_diff(time.ticks_us(), t0)
    alloc = gc.mem_alloc() - m0
    outs = [hexlify(bytes(bufs[i])).decode() for i in case["outs"]]
    return {"name": case["name"], "err": err, "outs": outs, "alloc": alloc, "us": us}


def main():
    k = Kernels()
    with open(sys.argv[2]) as src, open(sys.argv[3], "w") as dst:
        for line in src:
            if line.strip():
                dst.write(json.dumps(run_case(k, json.loads(line))))
                dst.write("\n")


main()
