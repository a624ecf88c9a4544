# mediamon — `make help` lists the targets. Every target installs what it needs first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install browser lock lint typecheck test test-fast demo run stop bench bench-smoke clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# pip 23.2 mis-resolves lxml[html_clean]: upgrade it first.
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP) ## create .venv with the pinned versions and mediamon (editable)

# The mail and page tests look through headless Debian chromium; the chart's Chinese labels
# need a CJK font. Installed once by apt (root, or sudo), found on later runs.
APT_INSTALL := $(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get
browser: ## install headless chromium and the Noto CJK fonts (Debian packages) if missing
	@if ! command -v chromium >/dev/null || ! fc-list 2>/dev/null | grep -qi 'Noto Sans CJK'; then \
		$(APT_INSTALL) update && $(APT_INSTALL) install -y --no-install-recommends chromium fonts-noto-cjk; \
	fi

lock: ## re-resolve the dependencies and rewrite requirements.lock
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock && .venv-lock/bin/pip install -q -U pip
	.venv-lock/bin/pip install -q -e '.[airflow,dev]'
	{ sed -n '1,3p' requirements.lock; .venv-lock/bin/pip freeze --exclude-editable; } > requirements.lock.new
	mv requirements.lock.new requirements.lock && rm -rf .venv-lock

lint: install ## ruff check and format check
	$(BIN)/ruff check src dags tests bench
	$(BIN)/ruff format --check src dags tests bench

typecheck: install ## mypy (strict) on the package
	$(BIN)/mypy

test: install browser ## lint, typecheck and the whole test suite (real PostgreSQL, Airflow, HTTP, SMTP, chromium)
	$(MAKE) --no-print-directory lint typecheck
	$(BIN)/pytest -q

demo: install ## ingest the bundled sample site and the seed through Airflow, offline, and print the counts
	$(BIN)/mediamon demo

run: install ## start Airflow (api-server on 127.0.0.1:8080, scheduler, dag-processor, triggerer)
	$(BIN)/mediamon run

stop: install ## stop the embedded PostgreSQL
	$(BIN)/mediamon db stop

bench: install ## benchmarks: throughput, extraction quality, load, DAG parse time
	$(BIN)/python -m bench.run

bench-smoke: install ## a seconds-long run of every benchmark (CI)
	$(BIN)/python -m bench.run --smoke

clean: ## remove the virtualenv and var/ (stops the embedded database first)
	-$(BIN)/mediamon db stop
	rm -rf $(VENV) var
