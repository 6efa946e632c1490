"""The tiler's one entry point: .tflite bytes -> tile image bytes (import, lower, plan, write)."""

from .image import build_image
from .lower import lower
from .plan import plan_model
from .tflite_import import load_tflite


def compile_model(model_bytes, *, sram, key, erase_block=65536, image_id=None, image_version=1):
    """Compile a full-integer int8 .tflite for an SRAM budget of `sram` bytes.

    Returns (image bytes, plan). Raises TilerError (unsupported operator, budget too small, ...).
    """
    graph = load_tflite(model_bytes)
    L = lower(graph)
    plan = plan_model(L, sram)
    image, _ = build_image(plan, master_key=key, model_bytes=model_bytes, erase_block=erase_block,
                           image_id=image_id, image_version=image_version)
    return image, plan
