# mediamon — `make help` lists the targets. Every target installs what it needs first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# apt needs root: sudo unless we are root already (containers, CI)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.DEFAULT_GOAL := help
.PHONY: help install browser lock lint typecheck test test-fast demo run stop bench bench-smoke bench-scale bench-hostile celery-smoke clean superset-zip superset-check bench-page bench-bi

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# pip 23.2 mis-resolves lxml[html_clean]: upgrade it first.
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP) ## create .venv with the pinned versions and mediamon (editable)

browser: ## Debian's chromium and CJK fonts, for the tests that look at pages and mail charts (apt, once)
	@command -v chromium >/dev/null && dpkg -s fonts-noto-cjk >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update && \
	  $(SUDO) apt-get install -y --no-install-recommends chromium fonts-noto-cjk; }

lock: ## re-resolve the dependencies and rewrite requirements.lock
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock && .venv-lock/bin/pip install -q -U pip
	.venv-lock/bin/pip install -q -e '.[airflow,celery,dev]'
	{ sed -n '1,3p' requirements.lock; .venv-lock/bin/pip freeze --exclude-editable; } > requirements.lock.new
	mv requirements.lock.new requirements.lock && rm -rf .venv-lock

lint: install ## ruff check and format check
	$(BIN)/ruff check src dags plugins tests bench
	$(BIN)/ruff format --check src dags plugins tests bench

typecheck: install ## mypy (strict) on the package
	$(BIN)/mypy

test: install browser ## lint, typecheck and the whole test suite (real PostgreSQL, Airflow, HTTP, SMTP, Chromium), with coverage
	$(MAKE) --no-print-directory lint typecheck
	$(BIN)/pytest -q --cov=mediamon --cov=mediamon_airflow --cov-report=term:skip-covered

test-fast: install browser ## the unit tests only (tests/unit: no database, no Airflow), under a minute
	$(BIN)/pytest -q -m unit tests/unit

demo: install ## ingest the bundled sample site and the seed through Airflow, offline, and print the counts
	$(BIN)/mediamon demo

run: install ## start Airflow (api-server on 127.0.0.1:8080, scheduler, dag-processor, triggerer)
	$(BIN)/mediamon run

stop: install ## stop every service `make run` started (Airflow) and the embedded PostgreSQL
	$(BIN)/mediamon stop

bench: install ## benchmarks: throughput, extraction quality and instructions, load, DAG parse time
	$(BIN)/python -m bench.run

bench-page: install ## the mediamon page's queries on a million articles (about 4 minutes)
	$(BIN)/python -m bench.bi_page

bench-bi: install ## every bi view and function on 2 million articles, 1,000 sources, 50 topics (about half an hour)
	$(BIN)/python -m bench.bi_scale

superset-zip: install ## build var/superset/mediamon_dashboard.zip from src/mediamon/bi/superset/ (import it in Superset)
	$(BIN)/python -m mediamon.bi.superset_export src/mediamon/bi/superset var/superset/mediamon_dashboard.zip

superset-check: install browser ## import the dashboard into a real Superset 6.1 (its own virtualenv in var/, made once), ask every chart for its data on the demo data and draw the dashboard in chromium
	$(BIN)/python -m mediamon.devtools.superset_check

bench-smoke: install ## a seconds-long run of every benchmark (CI)
	$(BIN)/python -m bench.run --smoke

celery-smoke: install ## Airflow on two Celery workers (Redis, PostgreSQL) and the compose file's services, natively (CI, ~3 min)
	$(BIN)/pytest -q -m deployment tests/deployment

bench-scale: install ## one ingest cycle at 10/100/1,000 sources through a real scheduler (~30 min)
	$(BIN)/python -m bench.scale

bench-hostile: install ## one cycle of 200 sites, a quarter of them slow or hostile, beside the healthy farm (~10 min)
	$(BIN)/python -m bench.hostile_scale

clean: ## remove the virtualenv and var/ (stops the embedded database first)
	-$(BIN)/mediamon db stop
	rm -rf $(VENV) var
