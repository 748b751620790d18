"""A remote service instance for the tests, served by real gunicorn on loopback:
``gunicorn -c conf/gunicorn.conf.py tests.support.echo_upstream:app``.

``/health`` answers ok; any other path echoes what the instance received (method, path,
raw query, headers, body) as a JSON object, with headers of its own for the gateway to
keep or transform. ``/__control/fail`` and ``/__control/ok`` make every other answer a
503 (or not), so a test can take the instance down without stopping it. With more than
one worker, the switch is per worker: the tests run it with one.
"""
import json

FAILING = {"now": False}
TEXT_PATH = "/api/v1/analytics/echo/text"     # answers text/plain holding JSON
ARRAY_PATH = "/api/v1/analytics/echo/array"   # answers a JSON array


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path in ("/__control/fail", "/__control/ok"):
        FAILING["now"] = path.endswith("fail")
        return answer(start_response, "200 OK", b"switched", "text/plain")
    if FAILING["now"]:
        return answer(start_response, "503 Service Unavailable", b"down", "text/plain")
    if path == "/health":
        return answer(start_response, "200 OK", b"ok", "text/plain")
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    echoed = {"served_by": "upstream", "method": environ["REQUEST_METHOD"], "path": path,
              "query": environ.get("QUERY_STRING", ""), "headers": received_headers(environ),
              "body": body.decode("utf-8", "replace"), "kept": "yes"}
    if path.endswith(TEXT_PATH.rsplit("/", 1)[1]):
        return answer(start_response, "200 OK", json.dumps(echoed).encode(), "text/plain")
    if path.endswith(ARRAY_PATH.rsplit("/", 1)[1]):
        return answer(start_response, "200 OK", json.dumps([echoed]).encode(), "application/json")
    return answer(start_response, "200 OK", json.dumps(echoed).encode(), "application/json")


def received_headers(environ):
    headers = {key[5:].replace("_", "-").title(): value for key, value in environ.items()
               if key.startswith("HTTP_")}
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").title()] = environ[key]
    return headers


def answer(start_response, status, body, content_type):
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))),
                            ("ETag", '"upstream-etag"'), ("X-Echo-Server", "upstream"),
                            ("X-Upstream-Old", "old-value")])
    return [body]
