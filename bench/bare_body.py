"""The floor bench_endpoint_hit.py measures against: a bare Flask view answering, from
memory, the body a gateway endpoint answered (BENCH_BODY: its file; BENCH_CONTENT_TYPE)."""
import os

from flask import Flask, Response

with open(os.environ["BENCH_BODY"], "rb") as _handle:
    BODY = _handle.read()
CONTENT_TYPE = os.environ.get("BENCH_CONTENT_TYPE", "application/json")

app = Flask(__name__)


@app.get("/bare")
def bare():
    return Response(BODY, content_type=CONTENT_TYPE)
