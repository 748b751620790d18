"""The real app from the environment with "now" pinned for its business rules, served by
gunicorn as ``gunicorn -c conf/gunicorn.conf.py 'tests.support.pinned_clock_app:served_app()'``
(conf/gunicorn.conf.py has already monkey-patched for gevent). Production code never imports
this module.

A test that seeds the demo data at a fixed "now" (tests/conftest.py's TEST_NOW) serves it
with the same "now" (TEST_CLOCK_NOW, ISO 8601 with an offset), so that a booking it makes
lands where it planned it on whatever day the suite runs.
"""
import datetime as dt
import os


def served_app():
    from gateway_app import create_app
    now = dt.datetime.fromisoformat(os.environ["TEST_CLOCK_NOW"])
    if now.tzinfo is None:
        raise ValueError("TEST_CLOCK_NOW needs an offset")
    return create_app({"CLOCK": lambda: now})
