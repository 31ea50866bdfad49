# quoter — two commands matter: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_SECONDS ?= 60

.PHONY: install test lint typecheck unit demo bench clean lock fuzz browser samples soak audit

# requirements.lock pins every third-party package (regenerate with `make lock`); pip uses it
# as a constraints file, so an install is reproducible and pyproject.toml keeps lower bounds.
$(STAMP): pyproject.toml requirements.lock Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[dev]'
	# The official SDK declares Python>=3.13 but its generated models import on 3.11;
	# it is used only by the conformance tests.
	$(BIN)/python -m pip install -q --no-deps --ignore-requires-python -c requirements.lock \
		'kalshi-python-sync>=3.34'
	# The conformance suite's other clients (tests/conformance/). The official async SDK and
	# kalshi-sdk declare Python>=3.13 / >=3.12 but import on 3.11: installed like the sync
	# SDK, their runtime deps in the dev extra. kyro installs normally.
	$(BIN)/python -m pip install -q --no-deps --ignore-requires-python \
		'kalshi-python-async>=3.34' 'kalshi-sdk>=22.4'
	$(BIN)/python -m pip install -q -c requirements.lock 'kyro>=0.1.2'
	# Older checkouts installed the test suite's fixture pricer (my_pricer) here; it is test-only.
	-$(BIN)/python -m pip uninstall -q -y thirdparty-pricer 2>/dev/null
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check quoter strategies backtests tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

# The test suite also needs the `ray` extra (a sweep on a local Ray instance) and a headless
# Chromium (the backtest report rendered in a browser); `make demo` needs neither.
unit: $(STAMP) $(VENV)/.ray-installed browser
	$(BIN)/pytest

$(VENV)/.ray-installed: $(STAMP)
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[dev,ray]'
	touch $@

# Debian's chromium, installed once when missing (apt-get, as root: CI and these machines).
# Without it the browser test fails and says how to install it; it never skips.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq --no-install-recommends chromium; } \
	    || echo "could not install chromium: the report test will fail and say so"; \
	  else echo "chromium not found: apt-get install chromium (the report test needs it)"; fi; }

# Regenerate the sample recordings in backtests/data/ (deterministic: seeded simulator worlds).
samples: $(STAMP)
	$(BIN)/python -m backtests.samples backtests/data

test: lint typecheck unit

demo: $(STAMP)
	$(BIN)/quoter demo --seconds $(DEMO_SECONDS)

# Long fuzz profile: QUOTER_FUZZ_EXAMPLES inputs per target (default 21,000: 100,000+ in all).
fuzz: $(STAMP)
	QUOTER_FUZZ_PROFILE=long $(BIN)/pytest -p no:cacheprovider tests/fuzz

# Long chaos soak (tests/chaos): SOAK_SECONDS of load and faults (default 1,500), kill -9
# restarts, a simulator restart; prints the figures table (also written to SOAK_REPORT).
SOAK_SECONDS ?= 1500
SOAK_SEED ?= 7
soak: $(STAMP)
	$(BIN)/python tests/chaos/long_soak.py --seconds $(SOAK_SECONDS) --seed $(SOAK_SEED) \
		$(if $(SOAK_REPORT),--report $(SOAK_REPORT),)

# Known vulnerabilities in every package requirements.lock pins (AUDIT_SERVICE=pypi, PyPI's
# JSON API, or osv, api.osv.dev). Needs network, so it is an operator tool and not part of
# `make test`. Exits non-zero on a finding, and (--strict) when any pin could not be looked up:
# an audit that checked nothing must not say "no known vulnerabilities". The lock is fully
# pinned, so nothing is resolved or installed to audit it (--no-deps).
AUDIT_SERVICE ?= pypi
$(VENV)/.audit-installed: $(STAMP)
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[audit]'
	touch $@

audit: $(VENV)/.audit-installed
	$(BIN)/pip-audit --strict --no-deps --disable-pip --progress-spinner off \
		--vulnerability-service $(AUDIT_SERVICE) -r requirements.lock

# The optional `bench` extra (orjson, pyinstrument, NautilusTrader) brings same-run baselines;
# without it those baselines are reported as not installed and the suite still runs. B9-ray
# needs the `ray` extra (the same one `make test` installs).
$(VENV)/.bench-installed: $(STAMP) $(VENV)/.ray-installed
	$(BIN)/python -m pip install -q -e '.[bench]' || echo "bench extra not installed: its baselines are skipped"
	touch $@

bench: $(VENV)/.bench-installed
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Re-resolve the newest allowed versions in a scratch venv and pin them (review the diff).
lock:
	rm -rf .lock-venv
	$(PY) -m venv .lock-venv
	.lock-venv/bin/python -m pip install -q --upgrade pip
	.lock-venv/bin/python -m pip install -q -e '.[dev,ray]'
	.lock-venv/bin/python -m pip install -q --no-deps --ignore-requires-python \
		'kalshi-python-sync>=3.34' 'kalshi-python-async>=3.34' 'kalshi-sdk>=22.4'
	.lock-venv/bin/python -m pip install -q 'kyro>=0.1.2'
	{ echo "# pip constraints: every third-party package make install takes (make lock)"; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^-e '; } \
		> requirements.lock
	rm -rf .lock-venv
