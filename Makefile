# Taehwa: `make run` starts the platform with demo data; `make test` runs lint, types and tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TAEHWA := $(VENV)/bin/taehwa
TAEHWA_PORT ?= 8000
export TAEHWA_PORT
# Debian packages the tests need (installed when run as root): mosquitto for the MQTT connector tests, chromium
# for the web UI tests with a Korean font for their screenshots (each skipped without it), and postgresql for the
# second pass of the metadata tests against PostgreSQL (tests/pg.py starts a throw-away server on loopback).
DEB_PACKAGES ?= mosquitto chromium fonts-nanum postgresql
# The tests that touch the metadata database, run again against PostgreSQL when it is installed: every service's,
# and the scale-out ones where several processes share one database (writers by tenant, reader nodes).
PG_TESTS ?= tests/test_api.py tests/test_cli.py tests/test_fuzz.py tests/test_identity.py tests/test_isolation.py \
	tests/test_lab_service.py tests/test_live.py tests/test_live_alerts.py tests/test_query.py tests/test_sharing.py \
	tests/test_store.py tests/test_twin_api.py tests/test_twin_cli.py tests/test_twin_model.py \
	tests/test_twin_service.py tests/test_academy.py tests/test_migrations.py tests/test_object_storage.py \
	tests/test_crash.py tests/test_layout.py tests/test_city.py tests/test_analytics_events.py tests/test_sqlport.py
# ... less those whose subject is not the database: the sandbox's limits, Ray's fan-out, the object store's faults
PG_SKIP ?= not sandbox_stops and not pool_and_ray and not on_s3 and not bounded_cache and not storage_down

.PHONY: run test lint typecheck pytest bench deps-deb clean

# The packages are installed by uv (pinned below; the same versions as pip's, in a fraction of the time: 88 s
# against 563 s measured from nothing on a loaded machine), or by pip where uv cannot be had. Compiled to bytecode at
# install, as pip does: where PYTHONDONTWRITEBYTECODE is set, imports would otherwise compile every module each time.
# BYTECODE: Taehwa's own modules (an editable install) are compiled before `run` and the tests for the same reason:
# every process that opens the platform (a command, a test worker, the sandbox) saves 0.76 s of CPU, measured.
UV_VERSION ?= 0.9.9
UV := $(VENV)/bin/uv
INSTALL = VIRTUAL_ENV=$(abspath $(VENV)) $(UV) pip install --python $(PY) --compile-bytecode

$(VENV)/.run-installed: pyproject.toml
	@echo "== Taehwa: setting up $(VENV) (first time: a minute or two; nothing is downloaded at run time)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet uv==$(UV_VERSION) || true
	@echo "== installing Taehwa and its pinned dependencies (pyproject.toml)"
	$(INSTALL) -e . || $(PY) -m pip install --progress-bar on -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet uv==$(UV_VERSION) || true
	$(INSTALL) --quiet -e '.[test]' || $(PY) -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.run-installed

run: $(VENV)/.run-installed
	$(PY) -m compileall -q -j 0 taehwa >/dev/null  # see BYTECODE
	@echo "== loading the demo plant into ./taehwa-data (first time: one to two minutes on two cores; later: at once)"
	$(TAEHWA) demo load
	@echo "== starting the platform (Ctrl-C stops it)"
	$(TAEHWA) serve --demo

deps-deb:
	@if [ -n "$(DEB_PACKAGES)" ] && [ "$$(id -u)" = "0" ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_PACKAGES); \
	fi

lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check taehwa tests bench docs
	$(VENV)/bin/ruff format --check taehwa tests bench

typecheck: $(VENV)/.test-installed
	$(VENV)/bin/mypy taehwa tests bench

# two test processes on two cores: each library's thread pool (OpenMP in LightGBM and scikit-learn, OpenBLAS) keeps to
# one thread, since pools sized to every core in each of two processes spin against each other
pytest: export OMP_NUM_THREADS = 1
pytest: $(VENV)/.test-installed
	$(PY) -m compileall -q -j 0 taehwa tests bench >/dev/null  # see BYTECODE
	$(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=25
	@if ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then \
		echo "again against PostgreSQL: the tests of the metadata database"; \
		TAEHWA_TEST_DATABASE=postgresql $(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder -p no:cacheprovider $(PG_TESTS) \
			-k "$(PG_SKIP)"; \
	else \
		echo "PostgreSQL is not installed: the PostgreSQL pass is skipped (make test as root installs it)"; \
	fi

# the type check (about 90 s of one core from a fresh clone) runs beside the tests rather than before them; make test
# fails if either fails
test: deps-deb lint
	$(MAKE) --no-print-directory -j2 typecheck pytest

bench: $(VENV)/.test-installed  # bench/web.py drives chromium through Playwright (a test extra)
	$(PY) bench/historian.py --quick
	$(PY) bench/twin.py --quick
	$(PY) bench/lab.py --quick
	$(PY) bench/connectors.py --quick
	$(PY) bench/live.py --quick
	$(PY) bench/web.py --quick
	$(PY) bench/scale.py --quick
	$(PY) bench/storage.py --quick

clean:
	rm -rf $(VENV) taehwa-data test-output .mypy_cache .ruff_cache .pytest_cache
