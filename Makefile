# Two commands do all the set-up on a fresh machine:
#   make demo   -> creates .venv, installs lapseg (torch==2.13.0 first if torch is absent), runs the demo
#   make test   -> same venv plus the test extras, runs the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_PIN ?= torch==2.13.0

.PHONY: demo test lint bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH_PIN)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[test,tensorboard]"
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/lapseg demo --out runs/demo-$$(date +%Y%m%d-%H%M%S)

test: $(VENV)/.installed-test
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) benchmarks/bench_training.py
	$(PY) benchmarks/bench_tiled_inference.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
