"""The floor the endpoint benches measure against: a bare Flask view answering, from
memory, the body a gateway endpoint answered.

``GET /bare``: the file BENCH_BODY with BENCH_CONTENT_TYPE (bench_endpoint_hit.py).
``GET /bare/<name>``: each file of the directory BENCH_BODY_DIR, application/json
(bench_endpoints.py: one body per endpoint measured, one server for all).
"""
import os

from flask import Flask, Response, abort

BODY = b""
if os.environ.get("BENCH_BODY"):
    with open(os.environ["BENCH_BODY"], "rb") as _handle:
        BODY = _handle.read()
CONTENT_TYPE = os.environ.get("BENCH_CONTENT_TYPE", "application/json")
BODIES = {}
if os.environ.get("BENCH_BODY_DIR"):
    for _name in os.listdir(os.environ["BENCH_BODY_DIR"]):
        with open(os.path.join(os.environ["BENCH_BODY_DIR"], _name), "rb") as _handle:
            BODIES[_name] = _handle.read()

app = Flask(__name__)


@app.get("/bare")
def bare():
    return Response(BODY, content_type=CONTENT_TYPE)


@app.get("/bare/<name>")
def bare_named(name):
    if name not in BODIES:
        abort(404)
    return Response(BODIES[name], content_type="application/json")
