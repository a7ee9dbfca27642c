# The two quick-start commands: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
CORES ?= all

.PHONY: setup demo test lint

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

demo: setup
	$(VENV)/bin/snakemake --cores $(CORES)

test: setup
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/snakemake --lint
