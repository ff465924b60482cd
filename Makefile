# make demo   set up .venv and run the lab (twincorn lab --quick): lab-report/
# make hello  set up .venv and serve the two hello apps (Ctrl-C stops)
# make test   set up .venv and run the checks: ruff, mypy --strict, pytest
# make bench  the side-by-side benchmark against uvicorn and gunicorn (needs wrk)
# make bench-load  twincorn load beside Locust and wrk, per core (needs wrk)
# make bench-restarts  requests lost by restarts under keep-alive load, beside the peers
# make bench-slow  twincorn and its peers under slowhttptest's four attacks

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_ARGS ?=

.PHONY: demo hello test lint typecheck pytest bench bench-load bench-restarts bench-slow clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.base: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

$(VENV)/.peers: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test,peers]'
	touch $@

$(VENV)/.bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[bench]'
	touch $@

$(VENV)/.lab: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[lab]'
	touch $@

demo: $(VENV)/.lab
	$(BIN)/python -m twincorn lab --quick $(DEMO_ARGS)

hello: $(VENV)/.base
	$(BIN)/python examples/demo.py

test: lint typecheck pytest

lint: $(VENV)/.test
	$(BIN)/python -m ruff check src tests bench examples

typecheck: $(VENV)/.test
	$(BIN)/python -m mypy

pytest: $(VENV)/.test
	$(BIN)/python -m pytest

bench: $(VENV)/.peers
	@command -v wrk >/dev/null || { echo "installing wrk (Debian package)"; \
		apt-get update -qq && apt-get install -y -qq wrk; }
	$(BIN)/python bench/hello.py --markdown

bench-restarts: $(VENV)/.peers
	$(BIN)/python bench/restarts.py --markdown

bench-slow: $(VENV)/.peers
	@command -v slowhttptest >/dev/null || { echo "installing slowhttptest (Debian package)"; \
		apt-get update -qq && apt-get install -y -qq slowhttptest; }
	$(BIN)/python bench/slow_clients.py --markdown

bench-load: $(VENV)/.bench
	@command -v wrk >/dev/null || { echo "installing wrk (Debian package)"; \
		apt-get update -qq && apt-get install -y -qq wrk; }
	$(BIN)/python bench/load.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache src/*.egg-info
