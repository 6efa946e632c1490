"""The MicroPython user C module `tskernels` (native/micropython/) cannot be built here (no MicroPython
source tree; docs/native.md), so what can be checked without it is checked: it binds every kernel the
device calls, with the arity device/kernels_viper.py has, its build files compile every C source the
host library does, and the binding compiles (gcc -fsyntax-only -Wall -Werror) against stand-ins for
MicroPython's headers (tests/_mp_stub: types and macros only, so a type error in a binding shows)."""

import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MOD = os.path.join(ROOT, "native", "micropython", "tskernels")


def _read(*parts):
    with open(os.path.join(ROOT, *parts)) as f:
        return f.read()


def _viper_methods():
    """name -> positional argument count (self included) of the viper Kernels' public methods."""
    src = _read("device", "kernels_viper.py")
    cls = src[src.index("class Kernels"):]
    return {m.group(1): len(m.group(2).split(",")) for m in re.finditer(r"\n    def ([a-z]\w*)\(([^)]*)\)", cls)}


def test_every_kernel_is_bound_with_its_arity():
    src = _read("native", "micropython", "tskernels", "modtskernels.c")
    table = src[src.index("kernels_locals_table[]"):]
    table = table[:table.index("};")]
    methods = _viper_methods()
    assert "conv_acc_s8" in methods and "acc_out_s8" in methods, sorted(methods)
    for name, n in methods.items():
        assert "MP_QSTR_%s)" % name in table, "tskernels does not bind %s" % name
        got = re.search(r"MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN\(k_%s_obj, (\d+), (\d+)," % name, src)
        assert got and int(got.group(1)) == int(got.group(2)) == n, (name, n, got and got.groups())


def test_build_files_compile_every_kernel_source():
    build = _read("native", "build_cffi.py")
    sources = re.findall(r'"(ts_\w+\.c)"', build[build.index("_SOURCES"):build.index("]", build.index("_SOURCES"))])
    assert "ts_acc.c" in sources, sources
    for f in ("micropython.mk", "micropython.cmake"):
        text = _read("native", "micropython", "tskernels", f)
        missing = [s for s in sources if s not in text]
        assert not missing, "%s does not compile %s" % (f, missing)


def test_binding_compiles_against_header_stand_ins():
    """(gcc builds the host kernels too: it is always there)"""
    r = subprocess.run(["gcc", "-fsyntax-only", "-std=c99", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter",
                        "-I", os.path.join(ROOT, "tests", "_mp_stub"), "-I", os.path.join(ROOT, "native"),
                        os.path.join(MOD, "modtskernels.c")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
