"""A vision projector (mmproj) GGUF: llama.cpp's converter writes it from a multimodal checkpoint's vision tower,
and it is checked by loading it beside the exported text model through llama.cpp's multimodal library (mtmd).

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
    """The check itself (in the child): llama.cpp's mtmd opens the projector over the text model and reads images."""
    from llama_cpp import mtmd_cpp

    with open_llama(text_model, n_ctx=256) as llm:
        params: Any = mtmd_cpp.mtmd_context_params_default()
        params.use_gpu = False
        context = mtmd_cpp.mtmd_init_from_file(str(projector).encode(), llm._model.model, params)
        vision = bool(context) and bool(mtmd_cpp.mtmd_support_vision(context))
        if context:
            mtmd_cpp.mtmd_free(context)
    detail = (f"llama.cpp reads images with it over {text_model.name}" if vision
              else f"llama.cpp's mtmd could not open it over {text_model.name}")
    check = Check("vision", vision, detail, {"text_model": text_model.name},
                  "" if vision else "the base checkpoint's vision tower may be one this llama.cpp does not know; the text GGUF works on its own")
    return Verification(str(projector), PROJECTOR_TYPE, projector.stat().st_size, [check])


if __name__ == "__main__":
    child_main(lambda: check_projector(Path(sys.argv[1]), Path(sys.argv[2])).to_dict())
