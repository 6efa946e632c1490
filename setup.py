# The C tile kernels are built as a cffi extension (tileswap.host._tskernels); everything else is in pyproject.toml.
from setuptools import setup

setup(cffi_modules=["native/build_cffi.py:ffibuilder"])
