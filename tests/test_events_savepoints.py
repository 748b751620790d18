"""Domain events and SAVEPOINTs: a rolled-back savepoint drops only the events emitted in it
(webhooks/customers.py inserts a customer in a savepoint inside the event's transaction)."""
import pytest

from gateway_app import events
from gateway_app.db import Session


@pytest.mark.parametrize("database_url", ["sqlite", "mysql"], indirect=True)
def test_a_rolled_back_savepoint_keeps_the_enclosing_transactions_events(app, tenant):
    heard = []
    events.subscribe(app, heard.append)
    company_id = tenant.company["id"]
    events.emit(Session, "calls.created", company_id, call_id=1)
    savepoint = Session.begin_nested()
    events.emit(Session, "customers.updated", company_id, customer_id=2)
    savepoint.rollback()
    with Session.begin_nested():
        events.emit(Session, "customers.updated", company_id, customer_id=3)
    Session.commit()
    assert [(e.name, dict(e.data)) for e in heard] == [
        ("calls.created", {"call_id": 1}), ("customers.updated", {"customer_id": 3})]

    heard.clear()
    events.emit(Session, "calls.created", company_id, call_id=4)
    with Session.begin_nested():
        events.emit(Session, "customers.updated", company_id, customer_id=5)
    Session.rollback()  # the whole transaction: nothing is heard
    Session.commit()
    assert heard == []
