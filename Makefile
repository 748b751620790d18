# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: run test test-redis-topologies install migrate seed clean browser node-tools

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
test: install browser node-tools
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# The rate-limit, cache, session and breaker tests again, on a local 3-master Redis Cluster
# and on a Sentinel set (master, replica, 3 sentinels) each test process starts from
# Debian's redis-server and redis-sentinel (tests/support/redis_topologies.py).
TOPOLOGY_TESTS ?= tests/test_rate_limit.py tests/test_cache.py tests/test_cache_invalidation.py \
	tests/test_auth.py tests/test_auth_cache.py tests/test_breaker.py tests/test_login_throttle.py \
	tests/test_scale_out.py
test-redis-topologies: install
	GATEWAY_TEST_REDIS=cluster $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup $(TOPOLOGY_TESTS)
	GATEWAY_TEST_REDIS=sentinel $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup $(TOPOLOGY_TESTS)

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

# The OpenAPI tests' npm tools (Redocly's linter, openapi-typescript, openapi-fetch,
# TypeScript), as tests/clients/package-lock.json pins them, into var/node (not
# committed). Without npm those tests skip saying so, or fail under CI=1.
NODE_TOOLS := var/node/node_modules/.package-lock.json
node-tools: $(NODE_TOOLS)
$(NODE_TOOLS): tests/clients/package.json tests/clients/package-lock.json
	@if command -v npm >/dev/null; then \
	  mkdir -p var/node && cp tests/clients/package.json tests/clients/package-lock.json var/node/ && \
	  npm ci --prefix var/node --no-audit --no-fund --loglevel=error >/dev/null && touch $@; \
	else \
	  echo "npm absent: the OpenAPI lint and TypeScript client tests will skip"; \
	fi

clean:
	rm -rf $(VENV) var *.egg-info
