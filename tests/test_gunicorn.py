"""The real web process: gunicorn with 4 gevent workers and Redis."""
import concurrent.futures
import json
import re

import pytest
import requests

from gateway_app.migrate import upgrade
from tests.support.servers import Gunicorn

pytestmark = pytest.mark.gunicorn


@pytest.fixture
def served(tmp_path, redis_url, redis_client):
    database = f"sqlite:///{tmp_path}/served.db"
    upgrade(database)
    server = Gunicorn({"DATABASE_URL": database, "REDIS_URL": redis_url,
                       "SECRET_KEY": "gunicorn-test-secret-0123456789abcdef"}, workers=4).start()
    yield server
    server.stop()


def test_four_workers_serve_probes_and_aggregate_metrics(served):
    session = requests.Session()
    assert session.get(served.url + "/health", timeout=5).json() == {"status": "ok"}
    assert session.get(served.url + "/ready", timeout=5).status_code == 200
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda _: requests.get(served.url + "/health", timeout=5).status_code,
                                 range(200)))
    assert statuses == [200] * 200
    # the aggregate counts every worker's requests: 1 + 1 + 200 health/ready probes, each
    # written to the shared files as it is answered
    metrics = session.get(served.url + "/metrics", timeout=5).text
    counted = sum(float(v) for v in re.findall(
        r'gateway_requests_total\{method="GET",service="gateway",status="200"\} (\S+)', metrics))
    assert counted >= 202, metrics[:2000]
    assert not set(re.findall(r'pid="(\d+)"', metrics))  # aggregated, not per-pid series
    spec = session.get(served.url + "/openapi.json", timeout=5).json()
    assert spec["openapi"].startswith("3.")


def test_malformed_and_oversized_requests_get_contract_errors(served):
    bad = requests.post(served.url + "/api/v1/auth/token", data="{oops",
                        headers={"Content-Type": "application/json"}, timeout=5)
    assert bad.status_code == 400 and bad.headers["Content-Type"] == "application/problem+json"
    big = requests.post(served.url + "/api/v1/auth/token", data=b"x" * (2 * 1024 * 1024),
                        headers={"Content-Type": "application/json"}, timeout=10)
    assert big.status_code == 413


def chunks(total, size=65536):
    """A JSON body of about ``total`` bytes, sent chunked (no Content-Length)."""
    yield b'{"email": "a@example.com", "password": "'
    for _ in range(total // size):
        yield b"p" * size
    yield b'"}'


def test_a_chunked_body_over_the_limit_is_413_and_one_within_it_is_read_whole(served):
    over = requests.post(served.url + "/api/v1/auth/token", data=chunks(2 * 1024 * 1024),
                         headers={"Content-Type": "application/json"}, timeout=10)
    assert over.status_code == 413 and over.headers["Content-Type"] == "application/problem+json"
    assert "1048576 bytes" in over.json()["detail"]
    within = requests.post(served.url + "/api/v1/auth/token", data=chunks(512 * 1024),
                           headers={"Content-Type": "application/json"}, timeout=10)
    # read whole: the document is checked against the schema, not refused as cut-off JSON
    assert within.status_code == 422 and "password" in within.json()["errors"], within.text


def test_requests_gunicorn_refuses_are_answered_as_problems(served):
    import socket

    long_line = requests.get(served.url + "/" + "a" * 9000, timeout=5)
    big_header = requests.get(served.url + "/health", headers={"X-Big": "b" * 9000}, timeout=5)
    assert (long_line.status_code, big_header.status_code) == (414, 431)
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as raw:
        raw.sendall(b"NOT A REQUEST LINE\r\n\r\n")
        answer = raw.recv(65536).decode("latin-1")
    head, _, body = answer.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 400 ")
    for response_body, content_type in ((long_line.text, long_line.headers["Content-Type"]),
                                        (big_header.text, big_header.headers["Content-Type"]),
                                        (body, "application/problem+json")):
        assert content_type == "application/problem+json"
        problem = json.loads(response_body)
        assert {"type", "title", "status", "detail", "request_id"} <= set(problem)
    assert "Content-Type: application/problem+json" in head
