"""What /ready checks, owned by the gateway so that no part of it registers into a blueprint.

create_app fills an app's registry (the database, Redis, each integration); the ops
blueprint runs it and shapes the answer. A check is a callable returning a detail
string and raising when its dependency is down.
"""
from sqlalchemy import text

from .db import Session


class ReadinessChecks:
    def __init__(self):
        self.checks = {}             # name -> check, reported in registration order
        self.informational = set()   # reported, but their failure leaves the gateway ready

    def add(self, name, check, informational=False):
        self.checks[name] = check
        if informational:
            self.informational.add(name)

    def run(self):
        """``(details by name, names of the failed checks that make the gateway unready)``."""
        details, failed = {}, []
        for name, check in self.checks.items():
            try:
                details[name] = check()
            except Exception as exc:  # any failure of a dependency means not ready
                details[name] = f"failed: {type(exc).__name__}"
                if name not in self.informational:
                    failed.append(name)
        if failed:
            Session.rollback()   # a failed database check leaves its transaction unusable
        return details, failed


def check_database():
    Session.execute(text("SELECT 1"))
    return "ok"


def redis_check(client):
    def check_redis():
        if client is None:
            return "not configured (in-process stores)"
        client.ping()
        return "ok"
    return check_redis
