# Two entry points that work on a fresh machine: `make study` and `make test`.
# The venv gets the torch pair that installs from this machine's disk; nothing pulls a second torch
# because pyproject's torch requirement is already satisfied when the package is installed.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH := torch==2.14.1 torchvision==0.29.1

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[test,ray,tensorboard]"
	$(PY) -c "import importlib.metadata as m; v = m.version('torch'); assert v.startswith('2.14.1'), v"
	touch $@

install: $(VENV)/.installed

study: $(VENV)/.installed   ## the quick study: sweep + report (runs/quick, reports/quick)
	$(PY) -m study.sweep sweeps/quick.yaml --report

paper: $(VENV)/.installed   ## the paper's figures at quick scale -> reports/paper/FIGURES.md
	$(PY) -m study.paper --scale quick

bench: $(VENV)/.installed   ## benchmarks -> benchmarks/RESULTS.md
	$(PY) -m benchmarks.run

test: $(VENV)/.installed    ## the test suite (CPU, a few minutes)
	$(PY) -m pytest

test-all: $(VENV)/.installed
	$(PY) -m pytest -m ""

.PHONY: install study paper bench test test-all
