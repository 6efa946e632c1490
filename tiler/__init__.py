"""tileswap.tiler: the host side. Imports a .tflite model, plans tiles under an SRAM budget and writes
the encrypted, authenticated tile image (the tiler is Prepare; the device is Eval)."""


class TilerError(Exception):
    """A problem with the model or the options given to the tiler; the message says what to do."""
