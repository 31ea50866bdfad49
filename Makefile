# quoter — two commands matter: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_SECONDS ?= 60

.PHONY: install test lint typecheck unit demo bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	# The official SDK declares Python>=3.13 but its generated models import on 3.11;
	# it is used only by the conformance tests.
	$(BIN)/python -m pip install -q --no-deps --ignore-requires-python 'kalshi-python-sync>=3.34'
	# The conformance suite's other clients (tests/conformance/). The official async SDK and
	# kalshi-sdk declare Python>=3.13 / >=3.12 but import on 3.11: installed like the sync
	# SDK, their runtime deps in the dev extra. kyro installs normally.
	$(BIN)/python -m pip install -q --no-deps --ignore-requires-python \
		'kalshi-python-async>=3.34' 'kalshi-sdk>=22.4'
	$(BIN)/python -m pip install -q 'kyro>=0.1.2'
	$(BIN)/python -m pip install -q -e tests/thirdparty_pricer
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check quoter strategies backtests tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

test: lint typecheck unit

demo: $(STAMP)
	$(BIN)/quoter demo --seconds $(DEMO_SECONDS)

# The optional `bench` extra (orjson, pyinstrument, NautilusTrader) brings same-run baselines;
# without it those baselines are reported as not installed and the suite still runs.
$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[bench]' || echo "bench extra not installed: its baselines are skipped"
	touch $@

bench: $(VENV)/.bench-installed
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
