# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: run test install migrate seed clean browser clients

$(BIN)/gateway: setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip >/dev/null
	$(BIN)/pip install -e '.[test]'
	touch $@

install: $(BIN)/gateway

migrate: install
	$(BIN)/gateway db upgrade

seed: migrate
	$(BIN)/gateway seed --demo

# Embedded default: SQLite file under var/, in-process stores, one gevent worker.
run: seed
	PORT=$(PORT) $(BIN)/gunicorn -c conf/gunicorn.conf.py wsgi:app

# Uses REDIS_URL / TEST_DATABASE_URL when set; otherwise the tests start a private
# redis-server on a free port and use the local MariaDB when it is reachable.
# TEST_WORKERS pytest-xdist processes share the tests (each its own Redis, or database
# number of REDIS_URL, its own MariaDB databases and ports); TEST_WORKERS=0 runs in this one.
# loadgroup: the gunicorn tests go to one worker (tests/conftest.py).
TEST_WORKERS ?= 2
test: install browser clients
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# The browser tests (tests/test_console_browser.py) drive Debian's chromium through its
# chromedriver. Installed with apt-get when absent and this runs as root (CI, containers);
# otherwise those tests skip saying so, or fail under CI=1.
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else \
	    echo "chromium/chromium-driver absent and not installable here (needs root and apt-get):" \
	         "the browser tests will skip"; \
	  fi; \
	fi

# The generated-client tests (tests/test_generated_clients.py) need node and the TypeScript
# tools pinned by tests/clients/ts/package-lock.json (openapi-typescript, openapi-fetch, tsc),
# installed into its node_modules/ (git-ignored) again whenever the lock file changes. node
# and npm come from apt-get when absent and this runs as root; otherwise those tests skip
# saying so, or fail under CI=1. openapi-python-client is in setup.py's test extra.
TS_TOOLS := tests/clients/ts
clients:
	@if ! command -v node >/dev/null || ! command -v npm >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null; \
	  else \
	    echo "node/npm absent and not installable here (needs root and apt-get):" \
	         "the TypeScript client tests will skip"; \
	  fi; \
	fi
	@if command -v npm >/dev/null && \
	    [ ! $(TS_TOOLS)/node_modules/.package-lock.json -nt $(TS_TOOLS)/package-lock.json ]; then \
	  npm ci --prefix $(TS_TOOLS) --no-audit --no-fund --loglevel=error; \
	fi

clean:
	rm -rf $(VENV) var *.egg-info $(TS_TOOLS)/node_modules
