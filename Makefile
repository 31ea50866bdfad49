# quoter — two commands matter: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_SECONDS ?= 60

.PHONY: install test lint typecheck unit demo bench clean fuzz soak audit

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	# The official SDK declares Python>=3.13 but its generated models import on 3.11;
	# it is used only by the conformance tests.
	$(BIN)/python -m pip install -q --no-deps --ignore-requires-python 'kalshi-python-sync>=3.34'
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

# Long fuzz profile: QUOTER_FUZZ_EXAMPLES inputs per target (default 21,000: 100,000+ in all).
fuzz: $(STAMP)
	QUOTER_FUZZ_PROFILE=long $(BIN)/pytest -p no:cacheprovider tests/fuzz

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
