"""Shared fixtures. Tests import the zoo (tests/zoo.py) and these helpers."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # tests/zoo.py, tests/_*.py
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = os.path.join(ROOT, "examples", "digits", "digits_int8.tflite")


@pytest.fixture(scope="session")
def key():
    return bytes(range(32))


@pytest.fixture(scope="session")
def digits():
    with open(DIGITS, "rb") as f:
        return f.read()
