# flagstage: staged feature rollouts on Kubernetes.
# `make help` lists the targets. Everything installs into .venv; nothing is installed by hand.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed-stamp
EXAMPLE ?= manifests/examples/six-week-rollout.yaml
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets and what they do
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[dev,operator,app]'
	# The source roots go on sys.path directly, so packages added later import without a
	# reinstall (the editable finder only maps the packages that existed when it was built).
	printf '%s\n' $(CURDIR)/src $(CURDIR)/operator $(CURDIR)/app \
		> $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/flagstage-src.pth
	touch $@

.PHONY: install
install: $(STAMP) ## Create .venv and install flagstage with every extra

# The demo: the insights API on seeded data in var/, watching var/features, where a stage of
# the example rollout is published the way the kubelet projects a ConfigMap. RUN_STAGE=live
# follows the rollout's schedule; the default has several features on.
RUN_STAGE ?= week-4
RUN_HOST ?= 127.0.0.1
RUN_PORT ?= 8000
FEATURES_DIR ?= var/features

.PHONY: run
run: $(STAMP) ## Seed var/ once, publish RUN_STAGE (week-4) of the example rollout, serve on :8000
	$(VENV)/bin/flagstage-app demo --rollout $(EXAMPLE) --stage $(RUN_STAGE) \
		--features-dir $(FEATURES_DIR) --host $(RUN_HOST) --port $(RUN_PORT)

.PHONY: run-stage
run-stage: $(STAMP) ## Flip the running demo's toggles live: make run-stage STAGE=week-5
	@test -n "$(STAGE)" || { echo "name the stage: make run-stage STAGE=week-5" >&2; exit 2; }
	$(VENV)/bin/flagstage-app features --rollout $(EXAMPLE) --stage $(STAGE) \
		--features-dir $(FEATURES_DIR)

# The whole system on this machine: a real API server, the operator, `flagstage sync` and the
# app, with the example rollout's six stages DEMO_STAGE_SECONDS (30) long each. DEMO_SECONDS=N
# stops after N seconds of watching; DEMO_PORT moves the app off 8000. Logs go to var/demo/.
.PHONY: demo
demo: $(STAMP) controlplane ## Run API server, operator, sync and app; watch a rollout walk its stages
	$(PY) scripts/demo.py

# The chart and the kustomize base carry copies of the CRD (Helm and kustomize read no file
# outside their own directory); tests/delivery fails while a copy differs.
CRD_FILE := crds/featurerollouts.flagstage.io.yaml

.PHONY: crds
crds: $(STAMP) ## Regenerate the CRD from the models and copy it into the chart and kustomize base
	$(PY) -m flagstage_operator.crd
	cp $(CRD_FILE) charts/flagstage/crds/
	cp $(CRD_FILE) manifests/base/

.PHONY: controlplane
controlplane: ## Build or verify kube-apiserver, etcd, kubectl and helm for the kube tests (cached)
	bash tests/controlplane/build.sh

# The app tests run on SQLite and on this server; outside CI they skip PostgreSQL without it.
PG_URL_FILE := var/postgres-url

.PHONY: postgres
postgres: ## Start the local PostgreSQL cluster and create the test role and database
	@mkdir -p $(dir $(PG_URL_FILE))
	@scripts/postgres.sh > $(PG_URL_FILE) || { [ "$$CI" != true ] && : > $(PG_URL_FILE) \
		&& echo "PostgreSQL unavailable: its app tests will be skipped" >&2; }
	@echo "PostgreSQL for the tests: $$(cat $(PG_URL_FILE))"

.PHONY: test
test: $(STAMP) controlplane postgres ## Run the whole test suite
	FLAGSTAGE_TEST_POSTGRES_URL="$${FLAGSTAGE_TEST_POSTGRES_URL:-$$(cat $(PG_URL_FILE))}" \
		$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: lint
lint: $(STAMP) ## Check formatting, lint rules and types (ruff, mypy)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

.PHONY: fmt
fmt: $(STAMP) ## Format the code and fix what ruff can fix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The revenue benchmark writes 100,000 accounts x 24 months to PostgreSQL (when `make postgres`
# has run) and SQLite first; BENCH_REVENUE_ARGS="--accounts 10000" scales it down.
BENCH_REVENUE_ARGS ?=

.PHONY: bench
bench: $(STAMP) ## Run the benchmarks under bench/ and print their figures
	$(PY) bench/bench_evaluation.py
	$(PY) bench/bench_toggle_swap.py
	$(PY) bench/bench_semantic.py
	$(PY) bench/bench_revenue.py $(BENCH_REVENUE_ARGS)

# tests/reliability runs in `make test` with small budgets; FLAGSTAGE_SOAK=1 raises hypothesis
# example counts, config swaps and loop rounds (about 20 to 40 minutes on two cores).
SOAK_TIMEOUT_SECONDS ?= 3600

.PHONY: soak
soak: $(STAMP) controlplane ## Run tests/reliability with large budgets (FLAGSTAGE_SOAK=1)
	FLAGSTAGE_SOAK=1 $(PY) -m pytest tests/reliability -s --timeout=$(SOAK_TIMEOUT_SECONDS) \
		$(PYTEST_ARGS)

.PHONY: fuzz
fuzz: $(STAMP) controlplane ## Fuzz core, webhook, operator and API server with bad rollouts
	FLAGSTAGE_SOAK=1 $(PY) -m pytest tests/reliability/test_bad_rollouts_offline.py \
		tests/reliability/test_bad_rollouts_on_apiserver.py -s \
		--timeout=$(SOAK_TIMEOUT_SECONDS) $(PYTEST_ARGS)

# Starts its own kube-apiserver and etcd (as the kube tests do) and the operator; a few minutes.
.PHONY: bench-operator
bench-operator: $(STAMP) controlplane ## Time apply-to-ConfigMap and 1,000 rollouts at once, with peak RSS
	$(PY) bench/bench_operator.py

# Uses wrk when installed (apt-get install wrk), else a Python load generator; loopback only.
BENCH_LOAD_ARGS ?=

.PHONY: bench-load
bench-load: $(STAMP) ## Load the app during 1,000 config swaps and dataset refreshes (wrk)
	$(PY) bench/bench_load.py $(BENCH_LOAD_ARGS)

# pip-audit asks the PyPI JSON API (or OSV with AUDIT_ARGS="-s osv") about every installed
# package; --strict fails when a package could not be checked, so "nothing found" means it.
AUDIT_ARGS ?=

.PHONY: audit
audit: $(STAMP) ## Audit the installed dependencies for known vulnerabilities (pip-audit, network)
	$(VENV)/bin/pip-audit --strict --progress-spinner off $(AUDIT_ARGS)

.PHONY: clean
clean: ## Remove the virtualenv and caches (keeps the control-plane binary cache)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
