# The two commands: `make demo` (the main job) and `make test`. Both install on first use.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install demo test test-unit lint typecheck bench schemas up down status lock clean

install:
	@scripts/install.sh

# `make demo WITH_LABEL_STUDIO=1`: also Label Studio and the annotation service (installed on first
# use), and an analyst's annotation round trip at the end (docs/annotation.md).
# `make demo PROFILE=cluster`: on the cluster profile (three brokers, PostgreSQL, an MLflow server,
# Redis, two instances of each service that scales out, drift as active and standby; PostgreSQL and
# Redis installed on first use).
# (Without PROFILE, the profile is MLOPS_PROFILE's, or the running stack's, as for `mlops demo`.)
demo: install
ifeq ($(PROFILE),cluster)
	@scripts/install-test-tools.sh --cluster
endif
ifdef WITH_LABEL_STUDIO
	@scripts/install-label-studio.sh
	@$(VENV)/bin/mlops demo --with-label-studio $(if $(PROFILE),--profile $(PROFILE))
else
	@$(VENV)/bin/mlops demo $(if $(PROFILE),--profile $(PROFILE))
endif

test: install
	@scripts/install-test-tools.sh
	@scripts/run-tests.sh

test-unit: install
	@$(PY) -m pytest tests/unit -q

lint: install
	@$(VENV)/bin/ruff check .
	@$(PY) -m mypy

schemas: install
	@$(PY) -m contracts.export docs/events
	@$(PY) -m infra.asyncapi docs/asyncapi.json
	@$(PY) -m infra.openapi docs/openapi

bench: install
	@scripts/install-bench-tools.sh
	@$(PY) -m bench.broker_throughput
	@$(PY) -m bench.ingest_throughput
	@$(PY) -m bench.audit_throughput
	@$(PY) -m bench.training_latency
	@$(PY) -m bench.offline_append
	@$(PY) -m bench.serving_latency
	@$(PY) -m bench.explain_latency
	@$(PY) -m bench.drift_detection
	@$(PY) -m bench.replay
	@$(PY) -m bench.feast_import
	@$(PY) -m bench.readiness_probe

up: install
	@$(VENV)/bin/mlops up

down:
	@$(VENV)/bin/mlops down

status:
	@$(VENV)/bin/mlops status

lock:
	@python3.11 -m venv /tmp/mlops-lock-venv && /tmp/mlops-lock-venv/bin/pip install -q -r requirements/requirements.in \
	  && /tmp/mlops-lock-venv/bin/pip freeze --exclude-editable > requirements/lock.txt

clean:
	rm -rf $(VENV) .local .pytest_cache
