"""HF checkpoint → GGUF: convert (pure Python, `gguf` package), quantize (libllama), verify.

Importing the package is light (the type table, the report) and loads neither `gguf` nor numpy.
"""
