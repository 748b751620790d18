"""The benchmark's WSGI app: the gateway plus a bare Flask app in the same gunicorn process.

    /bench/limited       an authenticated GET through the whole pipeline (all five layers
                         apply: ip, burst, user, company, endpoint "dashboard")
    /bare/bench/bare     the same JSON from a plain Flask view, no pipeline
"""
from gevent import monkey

monkey.patch_all()

from flask import Flask, jsonify  # noqa: E402
from werkzeug.middleware.dispatcher import DispatcherMiddleware  # noqa: E402

from gateway_app import create_app  # noqa: E402
from gateway_app.pipeline.declarations import gateway_policy  # noqa: E402

PAYLOAD = {"calls_today": 42, "bookings_today": 7, "answer_rate": 0.93,
           "recent": [{"id": n, "status": "completed", "duration_s": 60 + n} for n in range(5)]}

gateway = create_app()


@gateway_policy(service="dashboard", permission=None)
def limited():
    return jsonify(PAYLOAD)


gateway.add_url_rule("/bench/limited", view_func=limited)

bare = Flask("bare")
bare.add_url_rule("/bench/bare", "bare", lambda: jsonify(PAYLOAD))

app = DispatcherMiddleware(gateway, {"/bare": bare})
