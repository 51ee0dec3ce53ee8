# The two commands: `make run` (set up and start the daemon) and `make test` (set up and pass the tests).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# Debian packages the integration tests drive as real peers (net-snmp, Mosquitto, Prometheus, Alertmanager,
# PostgreSQL: the tests start their own server from its binaries, tests/support/postgres.py; util-linux
# logger, openssl s_client and rsyslog send syslog; nats-server: a 3-node JetStream cluster for the
# cluster mode, tests/support/nats.py), and the browser the web console's tests run in (chromium with
# its chromedriver).
APT_PACKAGES := mosquitto snmp snmpd prometheus prometheus-alertmanager postgresql \
  bsdutils openssl rsyslog rsyslog-gnutls chromium chromium-driver nats-server
PYTEST_ARGS ?=

.PHONY: run test lint fmt bench system-deps venv clean

run: $(STAMP)
	$(VENV)/bin/correlator run

test: $(STAMP) system-deps
	@echo "running the tests (they start their own Mosquitto, snmpd, Prometheus, Alertmanager, PostgreSQL)"
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

fmt: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The unpaced ingest runs use wrk (a C load generator) so that the client does not take the
# daemon's CPU; without it bench/ingest.py falls back to a Python client and says so.
bench: $(STAMP)
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null; } || echo "wrk missing: apt-get install -y wrk"
	$(PY) bench/ingest.py

venv: $(STAMP)

$(STAMP): pyproject.toml
	@echo "setting up $(VENV): installing correlator and its Python dependencies (about 30 s the first time)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Installs the Debian packages the tests need when they are missing and we run as root;
# otherwise prints the command to run (the tests that need a missing tool skip and say why).
system-deps:
	@echo "checking the Debian packages the tests use: $(APT_PACKAGES)"
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages with apt-get (a few minutes):$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null) \
	      || { echo "apt-get install failed:$$missing"; exit 1; }; \
	  else \
	    echo "missing Debian packages:$$missing -- run: sudo apt-get install -y$$missing"; \
	  fi; \
	fi

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
