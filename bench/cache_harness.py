"""What bench/bench_cache.py serves and how it loads it.

``gateway_app()`` is the real gateway plus benchmark routes (gunicorn factory);
``bare_app()`` is a bare Flask app answering the same JSON; ``hammer()`` is a small
keep-alive HTTP/1.1 load generator on gevent (the machine has no wrk/ab).
"""
import collections
import re
import socket
import time

from flask import Blueprint, Flask, jsonify


# a typical first page of the calls list
PAYLOAD = {
    "data": [{"id": 1000 + n, "status": "ended", "direction": "inbound",
              "from_number": "+14155550100", "to_number": "+14155550199",
              "duration_seconds": 60 + n, "sentiment": "positive",
              "summary": "Caller booked a cleaning for next Tuesday at 10am.",
              "started_at": "2026-11-26T06:00:00+00:00"} for n in range(25)],
    "next_cursor": None,
}
ROUTES = {
    # path: (cache namespace, public, rate limited)
    "/bench/l1": ("settings", False, False),       # tier l1 (300 s: outlives the run)
    "/bench/l2": ("customers", False, False),      # tier l2
    "/bench/uncached": (None, False, False),
    "/bench/public/l1": ("settings", True, False),
    "/bench/public/uncached": (None, True, False),
    "/bench/db/l1": ("settings", False, False),
    "/bench/db/uncached": (None, False, False),
    # the same through the rate-limiting stage (service "calls"): the full pipeline
    "/bench/limited/l1": ("settings", False, True),
    "/bench/limited/uncached": (None, False, True),
}


def calls_page():
    """The same page built the way a service would: 25 newest calls of the company."""
    from flask import g
    from sqlalchemy import select

    from gateway_app.db import Session
    from gateway_app.models import Call

    rows = Session.scalars(select(Call).where(Call.company_id == g.gateway.principal.company_id)
                           .order_by(Call.started_at.desc(), Call.id.desc()).limit(25)).all()
    return {"data": [{"id": row.id, "status": row.status, "direction": row.direction,
                      "from_number": row.from_number, "to_number": row.to_number,
                      "duration_seconds": row.duration_seconds, "sentiment": row.sentiment,
                      "summary": row.summary, "started_at": row.started_at.isoformat()}
                     for row in rows], "next_cursor": None}


def seed_calls(database_url, company_id, count=25):
    import datetime as dt

    import sqlalchemy
    from sqlalchemy.orm import Session as OrmSession

    from gateway_app.models import Call

    engine = sqlalchemy.create_engine(database_url)
    started = dt.datetime(2026, 11, 26, 6, 0, tzinfo=dt.timezone.utc)
    with OrmSession(engine) as session:
        session.add_all([Call(company_id=company_id, direction="inbound", status="ended",
                              from_number="+14155550100", to_number="+14155550199",
                              started_at=started - dt.timedelta(minutes=n), duration_seconds=60 + n,
                              sentiment="positive",
                              summary="Caller booked a cleaning for next Tuesday at 10am.")
                         for n in range(count)])
        session.commit()
    engine.dispose()


def gateway_app():
    from gateway_app import create_app
    from gateway_app.pipeline.declarations import gateway_policy

    app = create_app()
    blp = Blueprint("bench", __name__)
    for path, (namespace, public, limited) in ROUTES.items():
        declared = {"service": "calls", "exempt_limits": not limited, "public": public}
        if namespace:
            declared["cache"] = namespace

        def view(from_database=path.startswith("/bench/db/")):
            return jsonify(calls_page() if from_database else PAYLOAD)
        blp.add_url_rule(path, path.strip("/").replace("/", "_"), gateway_policy(**declared)(view))
    app.register_blueprint(blp)
    return app


def bare_app():
    app = Flask("bare")

    @app.get("/bench/bare")
    def bare():
        return jsonify(PAYLOAD)
    return app


CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")


def _connection_loop(port, request, deadline, statuses):
    sock = socket.create_connection(("127.0.0.1", port))
    buffer = b""
    try:
        while time.perf_counter() < deadline:
            sock.sendall(request)
            while b"\r\n\r\n" not in buffer:
                buffer += sock.recv(65536)
            head, _, rest = buffer.partition(b"\r\n\r\n")
            length = int(CONTENT_LENGTH.search(head).group(1))
            while len(rest) < length:
                rest += sock.recv(65536)
            buffer = rest[length:]
            statuses[head[9:12].decode()] += 1
    finally:
        sock.close()


def hammer(port, path, headers, seconds, connections):
    """Requests per second over ``connections`` keep-alive connections for ``seconds``."""
    import gevent
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1"] + [f"{k}: {v}" for k, v in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    statuses = collections.Counter()
    started = time.perf_counter()
    deadline = started + seconds
    gevent.joinall([gevent.spawn(_connection_loop, port, request, deadline, statuses)
                    for _ in range(connections)], raise_error=True)
    elapsed = time.perf_counter() - started
    return sum(statuses.values()) / elapsed, dict(statuses)
