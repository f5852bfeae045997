# Two commands set everything up on a fresh machine (Python and pip only):
#   make demo   run the example nightly DAG end to end on the local backend
#   make test   run the test suite
# And to watch it in the Airflow UI:
#   make airflow   airflow standalone for the example DAGs (isolated AIRFLOW_HOME); Ctrl-C stops it
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_HOME := $(CURDIR)/.airflow-home
DEMO_DATE ?= 2026-11-27
UI_HOME := $(CURDIR)/.airflow-ui
# 0: 8080 when free, any free port otherwise
AIRFLOW_PORT ?= 0
AIRFLOW_ENV := AIRFLOW_HOME=$(DEMO_HOME) AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags \
	AIRFLOW__CORE__LOAD_EXAMPLES=False

.PHONY: install demo airflow browser prometheus screenshots test test-fast test-lowest test-k8s test-engines engines cluster cluster-down test-cluster bench bench-quick bench-placement bench-placement-kueue lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || ($(PYTHON) -m pip install --quiet virtualenv && $(PYTHON) -m virtualenv $(VENV))

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip --version >/dev/null 2>&1 || $(BIN)/python -m ensurepip --upgrade
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/python -m uv pip install --quiet -p $(BIN)/python -e ".[test]"
	$(BIN)/python scripts/install_helm.py
	touch $@

install: $(STAMP)

demo: install
	rm -rf $(DEMO_HOME) && mkdir -p $(DEMO_HOME)
	$(AIRFLOW_ENV) $(BIN)/airflow db migrate > $(DEMO_HOME)/db-migrate.log 2>&1
	@echo "Running the nightly DAG for $(DEMO_DATE) with 'airflow dags test' (log: $(DEMO_HOME)/dag-test.log)"
	@$(AIRFLOW_ENV) $(BIN)/airflow dags test nightly_circuit_cutting $(DEMO_DATE) > $(DEMO_HOME)/dag-test.log 2>&1 \
		|| (tail -n 60 $(DEMO_HOME)/dag-test.log; exit 1)
	@$(AIRFLOW_ENV) $(BIN)/python scripts/show_results.py $(DEMO_HOME)/hybrid-quantum/nightly-results

airflow: install
	$(BIN)/python scripts/airflow_standalone.py --home $(UI_HOME) --port $(AIRFLOW_PORT)

# Debian's chromium for the browser test (idempotent; needs root to install, as CI is)
browser:
	bash scripts/install_browser.sh

# Debian's prometheus for the end-to-end metrics test (idempotent; root to install, as CI is)
prometheus:
	bash scripts/install_prometheus.sh

# Run the browser test and keep its screenshots for docs/monitoring.md
screenshots: install browser
	HYBRID_SCREENSHOTS_DIR=$(CURDIR)/docs/images $(BIN)/python -m pytest -q tests/test_browser.py

test: install browser prometheus test-lowest
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

# The lower-bound job: every direct dependency at the lowest release pyproject.toml allows
# (uv --resolution lowest-direct), on the oldest Python it declares, in a venv of its own that
# is rebuilt only when pyproject.toml or the constraints change. It runs the fast suite (minus
# the Helm chart's tests: Helm renders them, no Python dependency) and the example DAG.
LOWEST_PYTHON ?= 3.11
LOWEST_VENV := .venv-lowest
LOWEST_BIN := $(LOWEST_VENV)/bin
LOWEST_STAMP := $(LOWEST_VENV)/.installed
LOWEST_CONSTRAINTS := tests/constraints-lowest.txt
LOWEST_HOME := $(CURDIR)/.airflow-home-lowest
LOWEST_AIRFLOW_ENV := $(subst $(DEMO_HOME),$(LOWEST_HOME),$(AIRFLOW_ENV))

$(LOWEST_STAMP): pyproject.toml $(LOWEST_CONSTRAINTS) | $(STAMP)
	rm -rf $(LOWEST_VENV)
	$(BIN)/python -m uv venv --quiet -p $(LOWEST_PYTHON) $(LOWEST_VENV)
	$(BIN)/python -m uv pip install --quiet -p $(LOWEST_BIN)/python --resolution lowest-direct \
		-c $(LOWEST_CONSTRAINTS) -e ".[test]"
	ln -sf $(CURDIR)/$(BIN)/helm $(LOWEST_BIN)/helm
	touch $@

test-lowest: $(LOWEST_STAMP)
	HYBRID_TEST_LOWEST_BOUNDS=1 $(LOWEST_BIN)/python -m pytest -q -m "not slow" \
		--ignore=tests/test_chart.py
	rm -rf $(LOWEST_HOME) && mkdir -p $(LOWEST_HOME)
	@echo "Running the nightly DAG at the lower bounds (log: $(LOWEST_HOME)/dag-test.log)"
	@$(LOWEST_AIRFLOW_ENV) $(LOWEST_BIN)/airflow db migrate > $(LOWEST_HOME)/db-migrate.log 2>&1 \
		|| (tail -n 30 $(LOWEST_HOME)/db-migrate.log; exit 1)
	@$(LOWEST_AIRFLOW_ENV) $(LOWEST_BIN)/airflow dags test nightly_circuit_cutting $(DEMO_DATE) \
		> $(LOWEST_HOME)/dag-test.log 2>&1 || (tail -n 60 $(LOWEST_HOME)/dag-test.log; exit 1)
	@$(LOWEST_AIRFLOW_ENV) $(LOWEST_BIN)/python scripts/show_results.py \
		$(LOWEST_HOME)/hybrid-quantum/nightly-results

test-k8s: install
	$(BIN)/python -m pytest -q tests/backends/kubernetes tests/controlplane

# The real control plane (kube-apiserver, controller-manager, scheduler, etcd, Kueue, Argo),
# built from the Go modules pinned in tests/controlplane/engines.py and cached in ~/.cache
engines: install
	$(BIN)/python tests/controlplane/cluster.py build

test-engines: install
	$(BIN)/python -m pytest -q tests/controlplane

# Start it on loopback in the background (KUBECONFIG=.cluster/kubeconfig); stop it again
cluster: install
	$(BIN)/python tests/controlplane/cluster.py up

cluster-down:
	@if [ -x $(BIN)/python ]; then $(BIN)/python tests/controlplane/cluster.py down; fi

# Needs a real cluster: HYBRID_TEST_KUBECONFIG (and HYBRID_TEST_STORE_URI); see docs/kubernetes.md
test-cluster: install
	$(BIN)/python -m pytest -q -m cluster tests/cluster

# Our pipeline next to the addon's tutorial pipeline, same cases, one process (about 12 minutes),
# then the wide circuits (2×16, 2×20, 3×14 qubits) against Aer's MPS simulator
bench: install
	$(BIN)/python -m benchmarks.run --json $(CURDIR)/.bench-results.json
	$(BIN)/python -m benchmarks.wide --json $(CURDIR)/.bench-wide-results.json
	$(BIN)/python -m benchmarks.whole_process

bench-quick: install
	$(BIN)/python -m benchmarks.run --quick
	$(BIN)/python -m benchmarks.wide --quick
	$(BIN)/python -m benchmarks.whole_process --quick

# Whole processes, imports included: the addon's pipeline, our CLI and the example DAG
bench-process: install
	$(BIN)/python -m benchmarks.whole_process

.PHONY: bench-wide bench-process
bench-wide: install
	$(BIN)/python -m benchmarks.wide --json $(CURDIR)/.bench-wide-results.json

# flavor="auto" against each fixed flavor, issue 12's scenarios on the local backend (about 8 minutes)
bench-placement: install
	$(BIN)/python -m benchmarks.placement --json $(CURDIR)/.bench-placement.json

# The same scenarios on the real engines (kube-apiserver, Kueue, Argo; built on first use)
bench-placement-kueue: install
	$(BIN)/python -m benchmarks.placement --backend kubernetes --repeat 1 \
		--json $(CURDIR)/.bench-placement-kueue.json

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

clean: cluster-down
	rm -rf $(DEMO_HOME) $(LOWEST_HOME) $(UI_HOME) .hybrid-quantum .pytest_cache .cluster .cluster-tests
