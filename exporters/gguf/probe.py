"""A tiny GGUF model for checking that llama.cpp runs on this machine, and the check itself.

`tuneforge doctor` writes a two-layer Llama with random weights and a byte vocabulary (no
model download, a few megabytes), quantizes it to the types exports use, and evaluates
a few tokens of each in a child process: a llama.cpp that crashes on this CPU's q8_0 or q4
kernels (the AMX trap, a build for another CPU) shows up as a failed check, not as a dead run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import gguf
import numpy as np

from .native import child_main, open_llama, run_child
from .writer import atomic_gguf_writer

PROBE_TYPES = ("q8_0", "q4_k_m")
"""The quantized types checked: llama.cpp's q8_0 and k-quant kernels are where CPU-specific code runs."""
WIDTH = 256
"""Hidden size; k-quants need rows that are multiples of 256."""
LAYERS = 2
PROBE_TOKENS = [1, 72, 101, 108, 108, 111]
WRITTEN_TYPES = {
    "f32": (gguf.LlamaFileType.ALL_F32, gguf.GGMLQuantizationType.F32),
    "q8_0": (gguf.LlamaFileType.MOSTLY_Q8_0, gguf.GGMLQuantizationType.Q8_0),
}
"""The file and tensor types the probe's matrices are written in; libllama quantizes the others from f32."""


def write_probe_model(path: Path, qtype: str = "f32") -> Path:
    """Write the tiny Llama to `path` (atomically), its matrices in `qtype` (f32 or q8_0), and return it."""
    file_type, tensor_type = WRITTEN_TYPES[qtype]
    rng = np.random.default_rng(0)
    tokens = ["<unk>", "<s>", "</s>", *(f"<0x{byte:02X}>" for byte in range(256))]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL, *([gguf.TokenType.BYTE] * 256)]
    vocab = len(tokens)

    def weight(*shape: int) -> np.ndarray:
        values = (rng.standard_normal(shape) * 0.02).astype(np.float32)
        return gguf.quants.quantize(values, tensor_type) if tensor_type != gguf.GGMLQuantizationType.F32 else values

    def add(writer: gguf.GGUFWriter, name: str, data: np.ndarray) -> None:
        writer.add_tensor(name, data, raw_dtype=tensor_type if data.dtype == np.uint8 else None)

    with atomic_gguf_writer(path, gguf.MODEL_ARCH.LLAMA) as writer:
        writer.add_name("tuneforge-probe")
        writer.add_context_length(128)
        writer.add_embedding_length(WIDTH)
        writer.add_block_count(LAYERS)
        writer.add_feed_forward_length(WIDTH * 2)
        writer.add_head_count(4)
        writer.add_head_count_kv(4)
        writer.add_rope_dimension_count(WIDTH // 4)
        writer.add_layer_norm_rms_eps(1e-5)
        writer.add_file_type(file_type)
        writer.add_tokenizer_model("llama")
        writer.add_token_list(tokens)
        writer.add_token_scores([0.0] * vocab)
        writer.add_token_types(types)
        writer.add_bos_token_id(1)
        writer.add_eos_token_id(2)
        writer.add_unk_token_id(0)
        add(writer, "token_embd.weight", weight(vocab, WIDTH))
        writer.add_tensor("output_norm.weight", np.ones(WIDTH, dtype=np.float32))
        add(writer, "output.weight", weight(vocab, WIDTH))
        for layer in range(LAYERS):
            prefix = f"blk.{layer}."
            writer.add_tensor(prefix + "attn_norm.weight", np.ones(WIDTH, dtype=np.float32))
            writer.add_tensor(prefix + "ffn_norm.weight", np.ones(WIDTH, dtype=np.float32))
            for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
                add(writer, prefix + name + ".weight", weight(WIDTH, WIDTH))
            add(writer, prefix + "ffn_gate.weight", weight(WIDTH * 2, WIDTH))
            add(writer, prefix + "ffn_up.weight", weight(WIDTH * 2, WIDTH))
            add(writer, prefix + "ffn_down.weight", weight(WIDTH, WIDTH * 2))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    return path


def write_probe_files(folder: Path) -> dict[str, Path]:
    """The probe model in each of PROBE_TYPES, written into `folder`: q8_0 by the GGUF writer (as
    exports write it), q4_k_m by libllama from the f32 file (as exports quantize)."""
    from .quantize import quantize

    source = write_probe_model(folder / "probe-f32.gguf")
    files = {"q8_0": write_probe_model(folder / "probe-q8_0.gguf", "q8_0")}
    files["q4_k_m"] = quantize(source, folder / "probe-q4_k_m.gguf", "q4_k_m")
    return {qtype: files[qtype] for qtype in PROBE_TYPES}


def evaluate(path: Path) -> dict[str, object]:
    """Load `path` in this process and evaluate PROBE_TOKENS; the logits' shape and whether they are finite."""
    with open_llama(path, n_ctx=64, logits_all=True, seed=0) as llm:
        llm.eval(PROBE_TOKENS)
        logits = np.array(llm.scores[: len(PROBE_TOKENS)], dtype=np.float32)
    return {"positions": int(logits.shape[0]), "vocab": int(logits.shape[1]), "finite": bool(np.isfinite(logits).all())}


def evaluate_in_child(path: Path) -> dict[str, object]:
    """`evaluate` in a child process; a LlamaCrashed when llama.cpp kills it."""
    return run_child(__name__, [str(path)], path, "evaluating it", timeout=120)


if __name__ == "__main__":
    child_main(lambda: evaluate(Path(sys.argv[1])))
