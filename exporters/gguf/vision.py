"""A vision projector (mmproj) GGUF: llama.cpp's converter writes it from a multimodal checkpoint's vision tower,
and it is checked by reading an image with it beside the exported text model, through llama.cpp's multimodal
library (mtmd).

Fine-tuning trains the language model only, so the projector comes from the base checkpoint unchanged; with it
next to the text GGUF, llama.cpp (`llama-mtmd-cli`, `llama-server --mmproj`) still reads images.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ..report import Check, Verification
from .native import LlamaCrashed, child_main, open_llama, run_child

PROJECTOR_TYPE = "mmproj"
"""The report's type for a vision projector: not a model of its own (chat and eval leave it out)."""


def verify_projector_in_child(projector: Path, text_model: Path) -> Verification:
    """Load `projector` with `text_model` in a child process; a crash fails the file instead of the export."""
    try:
        found = run_child("tuneforge.exporters.gguf.vision", [str(projector), str(text_model)], projector,
                          "loading the vision projector")
    except LlamaCrashed as crash:
        found = {"error": crash.cause, "hint": crash.hint}
    if "error" in found:
        return Verification(str(projector), PROJECTOR_TYPE, projector.stat().st_size,
                            [Check("vision", False, found["error"], hint=found.get("hint", ""))])
    return Verification.from_dict(found)


def check_projector(projector: Path, text_model: Path) -> Verification:
    """The check itself (in the child): llama.cpp's mtmd opens the projector over the text model, encodes a small
    image with it and feeds the image's embeddings to the text model."""
    from llama_cpp import mtmd_cpp

    with open_llama(text_model, n_ctx=2048, n_batch=512) as llm:
        params: Any = mtmd_cpp.mtmd_context_params_default()
        params.use_gpu = False
        params.print_timings = False
        context = mtmd_cpp.mtmd_init_from_file(str(projector).encode(), llm._model.model, params)
        try:
            image_tokens = _read_an_image(mtmd_cpp, context, llm) if context and mtmd_cpp.mtmd_support_vision(context) else 0
        finally:
            if context:
                mtmd_cpp.mtmd_free(context)
    detail = (f"llama.cpp reads a {TEST_IMAGE_SIDE}×{TEST_IMAGE_SIDE} image with it over {text_model.name} ({image_tokens} tokens)"
              if image_tokens else f"llama.cpp's mtmd could not read an image with it over {text_model.name}")
    check = Check("vision", bool(image_tokens), detail, {"text_model": text_model.name, "image_tokens": image_tokens},
                  "" if image_tokens else "the base checkpoint's vision tower may be one this llama.cpp does not know; the text GGUF works on its own")
    return Verification(str(projector), PROJECTOR_TYPE, projector.stat().st_size, [check])


TEST_IMAGE_SIDE = 64
"""Pixels on each side of the image the check reads: large enough for several rows of patches, small enough to be quick."""


def _read_an_image(mtmd_cpp: Any, context: Any, llm: Any) -> int:
    """Tokenize a prompt around a colour-gradient image, encode the image and decode it all with the text model;
    the prompt's token count (image included), or 0 when mtmd refused a step."""
    import ctypes

    side = TEST_IMAGE_SIDE
    pixels = bytes(value for y in range(side) for x in range(side) for value in (x * 4, y * 4, 128))
    bitmap = mtmd_cpp.mtmd_bitmap_init(side, side, (ctypes.c_ubyte * len(pixels)).from_buffer_copy(pixels))
    prompt = b"Describe " + mtmd_cpp.mtmd_default_marker() + b" in one word."
    chunks = mtmd_cpp.mtmd_input_chunks_init()
    try:
        text = mtmd_cpp.mtmd_input_text(prompt, len(prompt), True, True)
        if mtmd_cpp.mtmd_tokenize(context, chunks, ctypes.byref(text), (ctypes.c_void_p * 1)(bitmap), 1) != 0:
            return 0
        position = ctypes.c_int(0)
        if mtmd_cpp.mtmd_helper_eval_chunks(context, llm._ctx.ctx, chunks, 0, 0, 512, True, ctypes.byref(position)) != 0:
            return 0
        return int(mtmd_cpp.mtmd_helper_get_n_tokens(chunks))
    finally:
        mtmd_cpp.mtmd_input_chunks_free(chunks)
        mtmd_cpp.mtmd_bitmap_free(bitmap)


if __name__ == "__main__":
    child_main(lambda: check_projector(Path(sys.argv[1]), Path(sys.argv[2])).to_dict())
