"""Forcing the interleaving of two simultaneous writes of one customer, deterministically."""
from sqlalchemy import insert

from gateway_app.models import Customer


def commit_customer_elsewhere(app, company_id, **columns):
    """Insert and commit a customer on another connection of the app's engine, as a
    concurrent request would; returns its id."""
    with app.extensions["gateway_engine"].begin() as other_connection:
        inserted = other_connection.execute(insert(Customer.__table__).values(
            company_id=company_id, **columns))
    return inserted.inserted_primary_key[0]


def lookup_that_loses_the_race(monkeypatch, module, name, app, company_id, **columns):
    """Replace ``module.name`` (one of our own lookups) so that its first call finds nothing
    because, as it runs, another connection commits a customer with ``columns``; later
    calls are the real lookup. Returns a list that holds the winner's id once it exists."""
    real_lookup = getattr(module, name)
    winner = []

    def lookup(*args, **kwargs):
        if winner:
            return real_lookup(*args, **kwargs)
        winner.append(commit_customer_elsewhere(app, company_id, name="Concurrent", **columns))
        return None

    monkeypatch.setattr(module, name, lookup)
    return winner
