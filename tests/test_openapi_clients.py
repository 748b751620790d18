"""Clients generated from the live /openapi.json, as a portal team would make them, run a
portal script against a real gateway (gunicorn on loopback): openapi-python-client, and
openapi-typescript with openapi-fetch (compiled with tsc --strict, run with node).

Each script (tests/clients/) uses only the generated types: log in, list with a filter
following the cursor, create and update a customer, book, read the calendar; then 401,
403, 404, 409, 422, 429 and 304, reading detail, request_id and the problems' extension
members through the types.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.support.live_gateway import LiveGateway
from tests.support.node_tools import NODE_DIR, node_tool
from tests.support.servers import ROOT

pytestmark = [pytest.mark.gunicorn, pytest.mark.timeout(600)]
CLIENTS = Path(ROOT) / "tests" / "clients"


@pytest.fixture(scope="module")
def gateway():
    with LiveGateway() as served:
        yield served


@pytest.fixture
def document(gateway, tmp_path):
    path = tmp_path / "openapi.json"
    path.write_bytes(requests.get(gateway.url + "/openapi.json", timeout=10).content)
    return path


def portal_env(gateway):
    email, password = gateway.new_owner()
    return dict(os.environ, GATEWAY_URL=gateway.url, PORTAL_EMAIL=email, PORTAL_PASSWORD=password)


def run(command, **kwargs):
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)
    assert done.returncode == 0, f"{command[:3]}: {done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done


def test_a_python_client_generated_from_the_document_runs_the_portal_script(gateway, document, tmp_path):
    generator = Path(sys.executable).with_name("openapi-python-client")
    generated = run([str(generator), "generate", "--path", str(document), "--meta", "none",
                     "--output-path", str(tmp_path / "gateway_client"),
                     "--config", str(CLIENTS / "openapi-python-client.yaml")])
    assert "Warning" not in generated.stdout + generated.stderr, generated.stdout + generated.stderr
    script = run([sys.executable, str(CLIENTS / "portal.py")], cwd=tmp_path,
                 env={**portal_env(gateway), "PYTHONPATH": str(tmp_path)})
    assert script.stdout.strip().endswith("portal: ok"), script.stdout
    assert "Traceback" not in gateway.log_tail(100000)


def test_a_typescript_client_generated_from_the_document_compiles_strict_and_runs(gateway, document, tmp_path):
    openapi_typescript, tsc = node_tool("openapi-typescript"), node_tool("tsc")
    shutil.copy(CLIENTS / "portal.mts", tmp_path / "portal.mts")
    shutil.copy(CLIENTS / "tsconfig.json", tmp_path / "tsconfig.json")
    (tmp_path / "node_modules").symlink_to(NODE_DIR / "node_modules")
    run([openapi_typescript, str(document), "--output", str(tmp_path / "gateway.d.ts")], cwd=tmp_path)
    run([tsc, "--project", str(tmp_path / "tsconfig.json")], cwd=tmp_path)   # strict: see tsconfig.json
    script = run(["node", str(tmp_path / "build" / "portal.mjs")], cwd=tmp_path, env=portal_env(gateway))
    assert script.stdout.strip().endswith("portal: ok"), script.stdout
    assert "Traceback" not in gateway.log_tail(100000)
