# `make demo` and `make test` set up a fresh machine: each installs into .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: install demo test test-all clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[dev,voices,check]'
	touch $@

demo: install
	$(VENV)/bin/bifsmn-tf demo

# Two workers, one per core; a test file stays on one worker (the notebooks run in order).
XDIST := -n 2 --dist loadfile

test: install
	$(PY) -m pytest -m "not slow" $(XDIST) $(PYTEST_ARGS)

test-all: install
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
