"""HF checkpoint → GGUF: convert (pure Python, `gguf` package), quantize (libllama), verify."""
