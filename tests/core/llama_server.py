"""`python -m tests.core.llama_server ARGS…`: llama-cpp-python's OpenAI-compatible server with the weight
buffers tuneforge uses on this CPU (its AMX buffers crash on q4/q8 weights; exporters/gguf/native.py)."""

from __future__ import annotations

import runpy

import llama_cpp.llama as llama_module

from tuneforge.exporters.gguf.native import extra_buffers_allowed

_default_params = llama_module.llama_cpp.llama_model_default_params


def _safe_params():
    params = _default_params()
    params.use_extra_bufts = extra_buffers_allowed()
    return params


llama_module.llama_cpp.llama_model_default_params = _safe_params
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
