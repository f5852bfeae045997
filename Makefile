# Two commands set everything up on a fresh machine (Python and pip only):
#   make demo   run the example nightly DAG end to end on the local backend
#   make test   run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_HOME := $(CURDIR)/.airflow-home
DEMO_DATE ?= 2026-11-27
AIRFLOW_ENV := AIRFLOW_HOME=$(DEMO_HOME) AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags \
	AIRFLOW__CORE__LOAD_EXAMPLES=False

.PHONY: install demo test test-fast test-k8s test-cluster bench bench-quick lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

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
	@$(AIRFLOW_ENV) $(BIN)/python scripts/show_results.py $(DEMO_HOME)/hybrid-quantum/nightly-results/$(DEMO_DATE).csv

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

test-k8s: install
	$(BIN)/python -m pytest -q tests/kubernetes

# Needs a real cluster: HYBRID_TEST_KUBECONFIG (and HYBRID_TEST_STORE_URI); see docs/kubernetes.md
test-cluster: install
	$(BIN)/python -m pytest -q -m cluster tests/cluster

# Our pipeline next to the addon's tutorial pipeline, same cases, one process (about 12 minutes)
bench: install
	$(BIN)/python -m benchmarks.run --json $(CURDIR)/.bench-results.json

bench-quick: install
	$(BIN)/python -m benchmarks.run --quick

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(DEMO_HOME) .hybrid-quantum .pytest_cache
