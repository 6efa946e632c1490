"""The emulator: the device runtime in-process over a file-backed SD card, with the C kernels.

    emu = Emulator.open("model.tsi", key, card="card.img")
    y = emu.run(x_int8)            # one inference; emu.counters() has what it cost

The card file is the image followed by the reserved spill and counter regions. An existing card that
holds the same image is reused (its persisted counters carry on); one holding another image is refused.
"""

import os
import tempfile

import numpy as np

from ..device import DeviceError
from ..device import format as F
from ..device.runtime import Runtime
from ..device.storage import FileBlockDevice
from ..tiler.image import ctr_xor
from .errors import HostError


def host_ctr(key, iv, mv, n):
    """AES-256-CTR in place, the tiler's ctr_xor: same keystream as device.crypto.EcbCtr."""
    mv[:n] = ctr_xor(key, iv, mv[:n])


def kernels(name="c"):
    if name == "c":
        from .native import Kernels
    elif name == "ref":
        from .kernels_ref import Kernels
    else:
        raise HostError("unknown kernels %r (choose c or ref)" % name)
    return Kernels()


def header(image, *, whole=True):
    """The image's header; with whole, also refuse an image file shorter than its header says."""
    if len(image) < F.BLOCK or image[:4] != F.MAGIC:
        raise HostError("not a tileswap image (expected a .tsi written by `tileswap compile`)")
    h = F.unpack_named(F.HDR_FMT, F.HDR_FIELDS, image)
    want = (h["payload_block"] + h["payload_blocks"]) * F.BLOCK
    if whole and len(image) < want:
        raise HostError("the image is truncated: %d bytes, the header says %d (copy it again)" % (len(image), want))
    return h


def prepare_card(image, path):
    """Make `path` a card holding `image` (created if missing, checked if present)."""
    h = header(image)
    size = h["total_blocks"] * F.BLOCK
    if os.path.exists(path):
        with open(path, "rb") as f:
            head = f.read(F.BLOCK)
        if len(head) == F.BLOCK and head[:4] == F.MAGIC and head[12:28] == image[12:28]:
            if os.path.getsize(path) < size:
                raise HostError("card %s is smaller than the image needs (%d bytes)" % (path, size))
            with open(path, "r+b") as f:      # refresh the image area; spill and counters stay
                f.write(image)
            return
        what = "another tile image" if head[:4] == F.MAGIC else "data that is not a tile image"
        raise HostError("card %s holds %s; give another --sd path, or delete the file to start a fresh card"
                        % (path, what))
    tmp = path + ".tmp%d" % os.getpid()
    with open(tmp, "wb") as f:
        f.write(image)
        f.truncate(size)
    os.replace(tmp, path)


class Emulator:
    def __init__(self, image, key, *, card=None, kernel="c", on_tensor=None, faults=None, fault_seed=0, nv=None):
        """faults: a fault spec (host/faults.py) for the emulated card; nv: the device's off-card store
        (rollback protection), a dict."""
        self.image = image
        self._tmpdir = None
        if card is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="tileswap-card-")
            card = os.path.join(self._tmpdir.name, "card.img")
        prepare_card(image, card)
        self.card_path = card
        self.bdev = FileBlockDevice(card)
        dev = self.bdev
        if faults:
            from .faults import FaultyBlockDevice
            dev = FaultyBlockDevice(dev, faults, seed=fault_seed)
        self.rt = Runtime(dev, key, kernels(kernel), ctr=host_ctr, on_tensor=on_tensor, nv=nv)
        self.h = self.rt.img.h

    @classmethod
    def open(cls, path, key, **kw):
        with open(path, "rb") as f:
            return cls(f.read(), key, **kw)

    def quantize_input(self, x):
        """float32 -> int8 exactly as TFLite's QUANTIZE (round half away from zero, in float32)."""
        s = np.float32(self.h["in_scale"])
        v = np.asarray(x, dtype=np.float32) / s
        q = np.where(v >= 0, np.floor(v + np.float32(0.5)), np.ceil(v - np.float32(0.5))) + self.h["in_zp"]
        return np.clip(q, -128, 127).astype(np.int8)

    def dequantize_output(self, y):
        """int8 -> float32 exactly as TFLite's DEQUANTIZE (scale * (q - zp) in double, then float)."""
        return (float(self.h["out_scale"]) * (y.astype(np.float64) - self.h["out_zp"])).astype(np.float32)

    def run(self, x):
        """One inference on one input (no batch axis, or batch 1). Returns int8 or float32 per the model."""
        x = np.asarray(x)
        if x.dtype != np.int8:
            if self.h["in_float"] or x.dtype.kind == "f":
                x = self.quantize_input(x)
            else:
                raise HostError("input dtype %s; the model takes int8 (or float32 to be quantized)" % x.dtype)
        rt = self.rt
        if x.size != rt.input_size():
            raise HostError("input has %d elements; the model takes %d" % (x.size, rt.input_size()))
        rt.set_input(np.ascontiguousarray(x).tobytes())
        snap = lambda: (rt.card.blocks_read, rt.card.blocks_written, dict(rt.stats))
        before = snap()
        rt.infer()
        self._last = (before, snap())
        out = bytearray(rt.output_size())
        rt.read_output(out)
        y = np.frombuffer(bytes(out), dtype=np.int8)
        return self.dequantize_output(y) if self.h["out_float"] else y

    def counters(self):
        """What the last inference cost on the device: from after the input was written to the card
        until before the host read the output back (the counter record update included)."""
        (b0, w0, s0), (b1, w1, s1) = self._last
        c = dict((k, s1[k] - s0[k]) for k in s1)
        c["blocks_read"] = b1 - b0
        c["blocks_written"] = w1 - w0
        return c

    def close(self):
        self.bdev.close()
        if self._tmpdir:
            self._tmpdir.cleanup()
