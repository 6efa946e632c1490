"""The tiler's one entry point: .tflite bytes -> tile image bytes (import, lower, plan, write)."""

from .image import build_image
from .lower import lower
from .plan import plan_model
from .tflite_import import load_tflite


def compile_model(model_bytes, *, sram, key, erase_block=65536, image_id=None, image_version=1, progress=None):
    """Compile a full-integer int8 .tflite for an SRAM budget of `sram` bytes.

    progress(stage, done, total), if given, is called as the work advances (stages: "read", "lower",
    "plan", "encrypt"). Returns (image bytes, plan). Raises TilerError (unsupported operator, budget
    too small, ...).
    """
    say = progress or (lambda stage, done, total: None)
    say("read", 0, 1)
    graph = load_tflite(model_bytes)
    say("lower", 0, len(graph.ops))
    L = lower(graph)
    say("plan", 0, len(L.ops))
    plan = plan_model(L, sram, progress=lambda d, t: say("plan", d, t))
    image, _ = build_image(plan, master_key=key, model_bytes=model_bytes, erase_block=erase_block,
                           image_id=image_id, image_version=image_version,
                           progress=lambda d, t: say("encrypt", d, t))
    return image, plan
