"""Exporters: a merged checkpoint (RUN_DIR/merged) to GGUF files that llama.cpp, Ollama and LM Studio run."""
