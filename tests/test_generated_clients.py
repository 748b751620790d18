"""Clients generated from the live /openapi.json, as a portal team would make them: one with
openapi-python-client, one with openapi-typescript (types) called through openapi-fetch.

A short portal script in each language (tests/clients/typed/portal.py and portal.ts)
uses only what was generated, and must pass `mypy --strict` and `tsc --strict`: it logs in,
lists calls with a filter following the cursor, creates and updates a customer, books, reads
the calendar, then provokes 401, 403, 404, 409, 422, 429 and 304, checking each problem's
detail, request_id and extension members. The
TypeScript script reads the extension members after narrowing the error by its `status`,
which only a document whose problem types tell the statuses apart allows.

The gateway is gunicorn on loopback behind a trusted proxy (each script names its own client
address, so the two runs do not share the ip layer's burst), serving the demo data seeded at
the tests' fixed "now" with that "now". The generated code goes to a temporary directory, never
into the repository. The tools come from `make test` (the test extra of setup.py, and
`make node-tools` for the npm ones, tests/clients/package-lock.json); without them these
tests skip saying so, or fail under CI=1.
"""
import datetime as dt
import os
import shutil
import subprocess
import sys

import pytest

from gateway_app.demo import demo_email, demo_password
from gateway_app.migrate import upgrade
from tests.conftest import TEST_NOW, build_app
from tests.support.node_tools import NODE_DIR, node_tool
from tests.support.servers import Gunicorn, PrivateRedis

pytestmark = pytest.mark.gunicorn

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "clients", "typed")
VENV_BIN = os.path.dirname(sys.executable)
PYTHON_GENERATOR = os.path.join(VENV_BIN, "openapi-python-client")
TIER = "free"   # billing's endpoint quota is 20 an hour: the scripts' 429 comes in a few requests
# a Monday nine weeks after the tests' "now": past every demo appointment, inside business hours
BOOKING_DAY = (TEST_NOW.date() + dt.timedelta(weeks=9)).isoformat()
TOOL_TIMEOUT = 180
# the generator formats what it writes with ruff, which it installs beside itself
PYTHON_TOOLS_ENV = dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))


def need(tool_present, reason):
    if not tool_present:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def run(command, cwd=None, env=None, timeout=TOOL_TIMEOUT):
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (f"{' '.join(command)} exited {done.returncode}\n"
                                  f"--- stdout\n{done.stdout[-6000:]}\n--- stderr\n{done.stderr[-6000:]}")
    return done


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    """gunicorn serving the demo companies, seeded and served at TEST_NOW."""
    directory = tmp_path_factory.mktemp("clients-gateway")
    database = f"sqlite:///{directory}/served.db"
    upgrade(database)
    redis = PrivateRedis().start()
    app = build_app(database, redis.url)
    try:
        from gateway_app.demo import seed_demo
        with app.app_context():
            seed_demo(calls_per_company=300, largest_company_calls=300)
    finally:
        app.extensions["gateway_engine"].dispose()
    server = Gunicorn({"DATABASE_URL": database, "REDIS_URL": redis.url, "TRUSTED_PROXY_HOPS": "1",
                       "GATEWAY_ACCESS_LOG": "0", "TEST_CLOCK_NOW": TEST_NOW.isoformat(),
                       "SECRET_KEY": "gunicorn-test-secret-0123456789abcdef"},
                      workers=2, app_uri="tests.support.pinned_clock_app:served_app()")
    try:
        server.start()
        yield server
    finally:
        server.stop()
        redis.cleanup()


def portal_arguments(gateway, role, tag, booking_time, address):
    return [gateway.url, "--email", demo_email(TIER, role), "--password", demo_password(TIER),
            "--viewer-email", demo_email(TIER, "viewer"), "--viewer-password", demo_password(TIER),
            "--tag", str(tag), "--book", f"{BOOKING_DAY}T{booking_time}", "--forwarded-for", address]


@pytest.fixture(scope="module")
def python_client(gateway, tmp_path_factory):
    """The client openapi-python-client generates from the live document (the README's
    command); a warning, a part of the document it could not generate, fails it."""
    need(os.path.exists(PYTHON_GENERATOR),
         "openapi-python-client is not installed: pip install -e '.[test]' (make test does it)")
    client = tmp_path_factory.mktemp("python-client") / "client"
    run([PYTHON_GENERATOR, "generate", "--url", gateway.url + "/openapi.json",
         "--output-path", str(client), "--fail-on-warning"], env=PYTHON_TOOLS_ENV)
    return client


def test_python_portal_script_type_checks_under_mypy_strict(python_client, tmp_path):
    need(os.path.exists(os.path.join(VENV_BIN, "mypy")), "mypy is not installed: pip install -e '.[test]'")
    run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir", str(tmp_path),
         os.path.join(SCRIPTS, "portal.py")], env=dict(PYTHON_TOOLS_ENV, MYPYPATH=str(python_client)))


def test_python_portal_script_runs_against_the_live_gateway(gateway, python_client):
    script = run([sys.executable, os.path.join(SCRIPTS, "portal.py"),
                  *portal_arguments(gateway, "owner", 1001, "10:00:00", "198.51.100.21")],
                 env=dict(PYTHON_TOOLS_ENV, PYTHONPATH=str(python_client)))
    assert "every check passed" in script.stdout


@pytest.fixture(scope="module")
def typescript_project(gateway, tmp_path_factory):
    """The portal script beside the types generated from the live document, with the tools
    tests/clients/ts/package-lock.json pins."""
    need(shutil.which("node"), "node is not installed: apt-get install nodejs npm (.ci/run does it)")
    openapi_typescript = node_tool("openapi-typescript")
    project = tmp_path_factory.mktemp("ts-client")
    for name in ("portal.ts", "tsconfig.json"):
        shutil.copy(os.path.join(SCRIPTS, name), project / name)
    (project / "package.json").write_text('{"private": true, "type": "module"}\n')   # out/portal.js is ESM
    (project / "node_modules").symlink_to(NODE_DIR / "node_modules")
    run([openapi_typescript, gateway.url + "/openapi.json", "-o", str(project / "schema.d.ts")], cwd=project)
    return project


def test_typescript_portal_script_compiles_under_strict(typescript_project):
    run([node_tool("tsc"), "-p", "tsconfig.json", "--strict", "--noEmit"], cwd=typescript_project)


def test_typescript_portal_script_runs_against_the_live_gateway(gateway, typescript_project):
    # emitted without checking types (the test above does): types are erased at run time,
    # so this proves the behaviour whatever the types say
    run([node_tool("tsc"), "-p", "tsconfig.json", "--noCheck"], cwd=typescript_project)
    script = run(["node", str(typescript_project / "out" / "portal.js"),
                  *portal_arguments(gateway, "admin", 1002, "14:00:00", "198.51.100.22")],
                 cwd=typescript_project)
    assert "every check passed" in script.stdout
