# make demo   set up .venv and run the lab (twincorn lab --quick): lab-report/
# make hello  set up .venv and serve the two hello apps (Ctrl-C stops)
# make test   set up .venv and run the checks: ruff, mypy --strict, pytest
# make bench  the side-by-side benchmark against uvicorn and gunicorn (needs wrk)
# make bench-load  twincorn load beside Locust and wrk, per core (needs wrk)
# make bench-restarts  requests lost by restarts under keep-alive load, beside the peers
# make bench-slow  twincorn and its peers under slowhttptest's four attacks
# make bench-ws    WebSockets beside uvicorn, hypercorn and granian: echo, connects, idle memory
# make bench-tls   TLS beside uvicorn and granian: keep-alive requests/s, new connections/s (needs wrk)
# make fuzz   the long fuzz run of the HTTP/1.1 core (10 million inputs; docs/fuzzing.md)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_ARGS ?=

FUZZ_INPUTS ?= 10000000
FUZZ_SEED ?= 1

.PHONY: demo hello test lint typecheck pytest bench bench-load bench-restarts bench-slow bench-ws bench-tls fuzz clean

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

# atheris ships wheels for Linux x86-64; where it does not install, the long
# run goes on without its atheris phase (and says so).
$(VENV)/.fuzz: $(VENV)/.test
	$(BIN)/python -m pip install -q -e '.[test,fuzz]' || \
		echo "atheris did not install: make fuzz runs without its atheris phase"
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
	$(BIN)/python -m ruff check src tests bench examples fuzz

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

bench-ws: $(VENV)/.peers
	$(BIN)/python bench/websocket.py --markdown

bench-tls: $(VENV)/.peers
	@command -v wrk >/dev/null || { echo "installing wrk (Debian package)"; \
		apt-get update -qq && apt-get install -y -qq wrk; }
	$(BIN)/python bench/tls.py --rounds 3 --markdown

bench-load: $(VENV)/.bench
	@command -v wrk >/dev/null || { echo "installing wrk (Debian package)"; \
		apt-get update -qq && apt-get install -y -qq wrk; }
	$(BIN)/python bench/load.py

fuzz: $(VENV)/.fuzz
	$(BIN)/python -m fuzz.run --inputs $(FUZZ_INPUTS) --seed $(FUZZ_SEED) \
		--hypothesis 100000 --atheris 400000

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache src/*.egg-info
