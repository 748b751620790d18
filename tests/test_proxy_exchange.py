"""The exchange with an instance as discovery/upstream.py speaks it: interim answers
before a chunked one, a HEAD's answer ending with its head, a body running to the end of
the connection, a malformed answer, a kept connection the instance closed. The instance
is a socket server of the test's own, writing each answer byte for byte and keeping its
connections open as HTTP/1.1 lets it."""
import time

import pytest

from tests.support.raw_instances import LoopbackServer
from tests.test_proxy_http import register, stop_monitor, upstream_outcomes

NO_CACHE = {"Cache-Control": "no-cache"}
HEALTH = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


class ScriptedInstance(LoopbackServer):
    """Answers each request with ``script(method, path, connection, number)``: the bytes to
    write (then the connection is kept, unless the answer says ``Connection: close``), a
    tuple (bytes, "close") to close it after them, or None to close it without an answer. ``connection`` counts the
    connections that carried a request other than the health check (from 1), ``number``
    the requests on this one (from 1). ``seen`` holds (connection, method, path, head)."""

    threaded = True

    def __init__(self, script):
        self.script = script
        self.seen = []
        self.connections = 0
        super().__init__()

    def handle(self, connection):
        with connection:
            buffered, number, counted = b"", 0, None
            while True:
                while b"\r\n\r\n" not in buffered:
                    block = connection.recv(65536)
                    if not block:
                        return
                    buffered += block
                head, _, buffered = buffered.partition(b"\r\n\r\n")
                method, path, _ = head.split(b" ", 2)
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
                               if line.lower().startswith(b"content-length:")), 0)
                while len(buffered) < length:
                    buffered += connection.recv(65536)
                buffered = buffered[length:]
                if path == b"/health":
                    connection.sendall(HEALTH)
                    return
                if counted is None:
                    self.connections += 1
                    counted = self.connections
                number += 1
                self.seen.append((counted, method.decode(), path.decode(), head))
                answer = self.script(method.decode(), path.decode(), counted, number)
                if answer is None:
                    return
                answer, close = answer if isinstance(answer, tuple) else (answer, None)
                connection.sendall(answer)
                if close or b"connection: close" in answer.lower():
                    return



@pytest.fixture
def instance_of(app, client):
    made = []

    def make(script):
        instance = ScriptedInstance(script)
        made.append(instance)
        register(client, instance.url)
        return instance
    yield make
    stop_monitor(app)
    for instance in made:
        instance.close()


def test_interim_answers_before_a_chunked_answer_keep_the_connection(instance_of, tenant):
    instance = instance_of(lambda method, path, connection, number: (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"))
    for _ in range(2):
        response = tenant.get("/api/v1/analytics/chunks", headers=NO_CACHE)
        assert response.status_code == 200 and response.data == b"hello world"
        assert "Link" not in response.headers and "Transfer-Encoding" not in response.headers
    assert instance.connections == 1 and len(instance.seen) == 2


def test_a_head_answer_ends_with_its_head(instance_of, tenant):
    def script(method, path, connection, number):
        if method == "HEAD":
            return b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5000\r\n\r\n"
        return b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nbody"
    instance = instance_of(script)
    head = tenant.client.head("/api/v1/analytics/file", headers={**tenant.headers, **NO_CACHE})
    assert head.status_code == 200 and head.data == b"" and head.headers["Content-Length"] == "5000"
    after = tenant.get("/api/v1/analytics/file", headers=NO_CACHE)
    assert after.status_code == 200 and after.data == b"body"
    # the GET went on the HEAD's connection: nothing of a body was waited for
    assert [(connection, method) for connection, method, _path, _head in instance.seen] == [(1, "HEAD"), (1, "GET")]


def test_bytes_after_a_whole_answer_leave_the_answer_and_close_the_connection(instance_of, tenant):
    instance = instance_of(lambda method, path, connection, number: (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
        b"not an answer\r\n\r\n"))
    for _ in range(2):
        response = tenant.get("/api/v1/analytics/extra", headers=NO_CACHE)
        assert response.status_code == 200 and response.data == b"ok"
    assert [connection for connection, *_ in instance.seen] == [1, 2]


def test_a_body_without_a_length_runs_to_the_end_of_the_connection(instance_of, tenant):
    instance = instance_of(lambda method, path, connection, number: (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + b"x" * 300000 + b"the end", "close"))
    for _ in range(2):
        response = tenant.get("/api/v1/analytics/unsized", headers=NO_CACHE)
        assert response.status_code == 200 and response.data == b"x" * 300000 + b"the end"
    assert instance.connections == 2   # such a connection is never used again


def test_a_kept_connection_the_instance_closed_is_replaced_once_for_a_request_without_a_body(
        instance_of, tenant):
    # each connection's first request is answered; a second one finds it closed
    instance = instance_of(lambda method, path, connection, number: (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok" if number == 1 else None))
    for _ in range(2):
        response = tenant.get("/api/v1/analytics/kept", headers=NO_CACHE)
        assert response.status_code == 200 and response.data == b"ok"
    assert [connection for connection, *_ in instance.seen] == [1, 1, 2]
    # a request whose body was sent is not sent again: the client gets the fallback
    refused = tenant.post("/api/v1/analytics/kept", json={"n": 1})
    assert refused.status_code == 503
    assert [connection for connection, *_ in instance.seen] == [1, 1, 2, 2]


def test_a_kept_connection_the_instance_closed_after_its_answer_is_not_used(instance_of, tenant):
    """The close is noticed before the next request is written, so even a request with a
    body (which is never sent twice) goes through, on a new connection."""
    instance = instance_of(lambda method, path, connection, number: (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok", "close"))
    assert tenant.get("/api/v1/analytics/closing", headers=NO_CACHE).data == b"ok"
    time.sleep(0.1)   # the instance's FIN arrives
    posted = tenant.post("/api/v1/analytics/closing", json={"n": 1})
    assert posted.status_code == 200 and posted.data == b"ok"
    assert [(connection, method) for connection, method, *_ in instance.seen] == [(1, "GET"), (2, "POST")]


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nX-Bad: a\rb\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n",
])
def test_a_malformed_answer_is_a_failure_of_the_instance(instance_of, tenant, client, answer):
    instance = instance_of(lambda method, path, connection, number: answer)
    response = tenant.get("/api/v1/analytics/malformed", headers=NO_CACHE)
    assert response.status_code == 503 and response.get_json()["service"] == "analytics"
    assert any('status="error"' in line for line in upstream_outcomes(client))
    assert len(instance.seen) == 1


def test_the_request_head_is_written_as_http_1_1(instance_of, tenant):
    instance = instance_of(lambda method, path, connection, number: (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"))
    assert tenant.post("/api/v1/analytics/sent?a=1&b=%20", json={"k": "v"}).status_code == 200
    head = instance.seen[0][3].decode("latin-1").split("\r\n")
    assert head[0] == "POST /api/v1/analytics/sent?a=1&b=%20 HTTP/1.1"
    assert head[1] == f"Host: {instance.url.removeprefix('http://')}"
    fields = dict(line.split(": ", 1) for line in head[1:])
    assert fields["Content-Length"] == "10" and fields["Content-Type"] == "application/json"
    assert "Authorization" not in fields and fields["Via"] == "1.1 gateway"


def test_the_instance_s_date_and_server_are_not_returned(instance_of, tenant):
    # the gateway's server writes its own on every answer: the instance's would be a second Date
    instance_of(lambda method, path, connection, number: (
        b"HTTP/1.1 200 OK\r\nDate: Mon, 07 Dec 2026 11:00:00 GMT\r\nServer: instance/1.0\r\n"
        b"Content-Type: text/plain\r\nX-Kept: yes\r\nContent-Length: 2\r\n\r\nok"))
    response = tenant.get("/api/v1/analytics/dated", headers=NO_CACHE)
    assert response.status_code == 200 and response.headers["X-Kept"] == "yes"
    assert "Date" not in response.headers and "Server" not in response.headers


def test_a_path_and_query_the_client_percent_encoded_reach_the_instance_encoded(instance_of, tenant, client):
    instance = instance_of(lambda method, path, connection, number: (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"))
    before = upstream_outcomes(client)
    for _ in range(3):   # a request the instance cannot be sent would count against it
        response = tenant.get("/api/v1/analytics/a%20b/%C3%A9t%C3%A9/50%25?q=%C3%A9+x&r=%20",
                              headers=NO_CACHE)
        assert response.status_code == 200 and response.data == b"ok"
    assert {path for _connection, _method, path, _head in instance.seen} == {
        "/api/v1/analytics/a%20b/%C3%A9t%C3%A9/50%25?q=%C3%A9+x&r=%20"}
    assert not [line for line in upstream_outcomes(client) if line not in before and 'status="error"' in line]
