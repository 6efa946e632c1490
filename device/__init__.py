"""tileswap.device: the device runtime (Eval). Runs unchanged on MicroPython and CPython: relative
imports only, no numpy, buffers allocated once.

    from tileswap.device.storage import FileBlockDevice
    from tileswap.device.runtime import Runtime
    rt = Runtime(FileBlockDevice("card.img"), key, kernels)
    rt.set_input(data); rt.infer(); rt.read_output(out)
"""


class DeviceError(Exception):
    """Base of the device runtime's errors; the message names the tile, block or field at fault."""


class ImageError(DeviceError):
    """The image is malformed, truncated, of an unknown version, or not a tile image at all."""


class KeyMismatch(DeviceError):
    """The key given is not the one the image was compiled with (or no key was given)."""


class IntegrityError(DeviceError):
    """Data failed its CRC or MAC: a card error or tampering. Nothing computed from it is returned."""


class CardError(DeviceError):
    """The storage failed (after bounded retries) or is too small."""


class ArenaError(DeviceError):
    """A buffer would exceed the SRAM budget or overlap a live buffer."""
