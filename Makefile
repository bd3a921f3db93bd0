# The two README commands are `make demo` and `make test`; both set up .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# CPU machines get the CPU torch wheel pinned first (no CUDA download); a machine with
# an NVIDIA driver lets pip pick the regular (CUDA) torch. Override with TORCH_SPEC=...
TORCH_SPEC ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo torch || echo torch==2.13.0)
SYSTEM_LIBS := libusb-1.0-0 libgomp1

.PHONY: setup system-libs demo test bench lint clean

setup: $(STAMP)

system-libs:
	@missing=""; for p in $(SYSTEM_LIBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing system libraries:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "warning: please install the system libraries:$$missing" >&2; fi; \
	fi

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory system-libs
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

demo: setup
	$(PY) -m atlas.demo

# One pytest worker per core (pytest-xdist), each with one thread: the suite is many
# small CPU-bound tests, which parallelise better across processes than within one.
test: setup
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n auto --dist worksteal tests

bench: setup
	for script in bench/*_bench.py; do $(PY) $$script || exit 1; done

lint: setup
	$(PY) -m ruff check atlas tests bench *.py
	$(PY) -m ruff format --check atlas tests bench *.py
	$(VENV)/bin/lint-imports  # the layer contract in pyproject.toml (docs/architecture.md)

clean:
	rm -rf $(VENV) data/demo
