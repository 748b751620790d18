"""The upstream bench_proxy.py puts behind each proxy: a bare Flask app on the same
gunicorn/gevent setup as the gateway, answering any path with a small JSON body (an
analytics KPI summary). It counts the client connections it sees (by remote port), so
the bench can tell whether a proxy reuses its upstream connections."""
import json

from flask import Flask, Response, request

BODY = json.dumps({"period": "week", "calls": 412, "answered": 398, "booked": 97,
                   "conversion": 0.2437, "avg_duration_seconds": 183.4,
                   "sentiment": {"positive": 0.71, "neutral": 0.22, "negative": 0.07}}).encode()

app = Flask(__name__)
peers = set()


@app.get("/health")
def health():
    return "ok"


@app.get("/_bench/connections")
def connections():
    """How many client connections were seen since the last call (and start counting anew)."""
    count = len(peers)
    peers.clear()
    return {"connections": count}


@app.route("/<path:_path>", methods=["GET", "POST"])
def answer(_path):
    peers.add((request.environ.get("REMOTE_ADDR"), request.environ.get("REMOTE_PORT")))
    return Response(BODY, content_type="application/json")
