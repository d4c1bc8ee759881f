# The README's two commands: `make dev` and `make test`. Everything else is a helper of those.
PYTHON ?= python3
VENV ?= .venv
PY = $(VENV)/bin/python
STAMP = $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)

.PHONY: dev test lint typecheck bench clean install redis-server

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	@rm -f $(VENV)/.installed-*
	@touch $@

-include helm/tools.mk
-include tools/asyncapi.mk

# The console's browser test drives Debian's Chromium (Playwright cannot download browsers here).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	apt-get update -qq && apt-get install -y -qq chromium

## make dev: venv + deps, local tansu broker, gateway on 127.0.0.1:8000 with config/dev.yaml
dev: $(STAMP)
	$(VENV)/bin/gateway dev --config config/dev.yaml

## make test: venv + deps (+ helm, asyncapi parser, redis-server, chromium), lint, types, the whole suite incl. real-broker tests
test: $(STAMP) $(HELM_TOOLS) $(ASYNCAPI_TOOLS) redis-server $(CHROMIUM)
	$(VENV)/bin/ruff check gateway routing tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# The state-store tests run a real redis-server (Debian's package), started by a fixture.
redis-server:
	@command -v redis-server >/dev/null || (apt-get update && apt-get install -y redis-server)

lint: $(STAMP)
	$(VENV)/bin/ruff check gateway routing tests benchmarks
	$(VENV)/bin/ruff format --check gateway routing tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

## make bench: every benchmark (ratios against same-run baselines), then the summary table
bench: $(STAMP)
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	@command -v perf >/dev/null || apt-get install -y -qq linux-perf || true  # optional: instructions/request
	$(PY) benchmarks/routing_bench.py
	-$(PY) benchmarks/transform_bench.py  # exits 1 when it misses its target
	-$(PY) benchmarks/delivery_bench.py  # exits 1 when it misses its target: report, go on
	$(PY) benchmarks/ingest_bench.py
	-$(PY) benchmarks/journal_bench.py  # journal on vs off; exits 1 below its 0.9 target
	@test ! -f benchmarks/report.py || $(PY) benchmarks/report.py

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
