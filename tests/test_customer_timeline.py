"""A customer's timeline through HTTP: its calls and appointments merged newest first,
paged by a cursor across kinds and tied instants, and only the company's own customer's."""
import datetime as dt

import pytest

from blueprints.common import encode_cursor
from gateway_app.db import Session
from gateway_app.models import Customer
from tests.conftest import insert_appointment, insert_call
from tests.support.queries import counted_queries
from tests.support.reads import BOTH, get

UTC = dt.timezone.utc
BASE = dt.datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def new_customer(company_id, name="Jane"):
    customer = Customer(company_id=company_id, name=name)
    Session.add(customer)
    Session.commit()
    return customer.id


def timeline(tenant, customer_id, limit, cursor=None):
    """Every item of the timeline, page after page of ``limit``."""
    items = []
    while True:
        params = {"limit": limit} if cursor is None else {"limit": limit, "cursor": cursor}
        response = get(tenant, f"/api/v1/customers/{customer_id}/timeline", **params)
        assert response.status_code == 200
        items += response.get_json()["data"]
        cursor = response.get_json()["next_cursor"]
        if cursor is None:
            return items


@pytest.fixture
def tied_timeline(tenant, tenant_factory):
    """Three calls and three appointments of the customer at one instant, one of each
    before it; another customer's and another company's rows at the same instants.
    Returns the customer's id and its (type, id, at) newest first (ties: kind, then id)."""
    company_id = tenant.company["id"]
    customer = new_customer(company_id)
    someone_else = new_customer(company_id, "John")
    other_id = tenant_factory().company["id"]
    strangers = new_customer(other_id, "Not yours")
    expected = []
    for instant in (BASE, BASE - dt.timedelta(days=1)):
        for _ in range(3 if instant == BASE else 1):
            expected.append(("call", insert_call(company_id, instant, customer_id=customer).id, instant))
            expected.append(("appointment", insert_appointment(company_id, instant, customer_id=customer).id,
                             instant))
            insert_call(company_id, instant, customer_id=someone_else)
            insert_appointment(company_id, instant, customer_id=someone_else)
            insert_call(other_id, instant, customer_id=strangers)
            insert_appointment(other_id, instant, customer_id=strangers)
    expected.sort(key=lambda entry: (entry[2], entry[0], entry[1]), reverse=True)
    return customer, [(kind, row_id, instant.isoformat()) for kind, row_id, instant in expected]


@BOTH
@pytest.mark.parametrize("limit", [1, 2, 5, 100])
def test_timeline_pages_across_kinds_and_ties_in_order(tenant, tied_timeline, limit):
    customer, expected = tied_timeline
    items = timeline(tenant, customer, limit)
    assert [(item["type"], item["id"], item["at"]) for item in items] == expected


@BOTH
def test_timeline_items_show_their_kind_only(app, tenant, tied_timeline):
    customer, _ = tied_timeline
    with counted_queries(app) as statements:
        items = get(tenant, f"/api/v1/customers/{customer}/timeline").get_json()["data"]
    assert len(statements) <= 3   # principal, the customer, the page
    call = next(item for item in items if item["type"] == "call")
    assert call["appointment"] is None and call["call"] == {
        "direction": "inbound", "status": "answered", "outcome": None, "sentiment": None,
        "duration_seconds": 60, "summary": None}
    appointment = next(item for item in items if item["type"] == "appointment")
    assert appointment["call"] is None and appointment["appointment"] == {
        "title": "Appointment", "status": "confirmed", "starts_at": "2026-03-10T12:00:00+00:00",
        "ends_at": "2026-03-10T12:30:00+00:00"}


@BOTH
def test_timeline_continues_after_a_cursor_at_a_tied_instant(tenant, tied_timeline):
    customer, expected = tied_timeline
    tied = BASE.isoformat()
    for kind, row_id in (("call", 10 ** 17), ("appointment", 1), ("booking", 5), ("zzz", 5)):
        items = timeline(tenant, customer, 2, encode_cursor(tied, f"{kind}:{row_id}"))
        assert [(item["type"], item["id"], item["at"]) for item in items] == [
            entry for entry in expected if (entry[2], entry[0], entry[1]) < (tied, kind, row_id)]


def test_timeline_of_a_customer_without_any_is_an_empty_page(tenant):
    customer = new_customer(tenant.company["id"])
    response = get(tenant, f"/api/v1/customers/{customer}/timeline")
    assert response.status_code == 200
    assert response.get_json() == {"data": [], "next_cursor": None}


def test_timeline_of_another_companys_customer_is_not_found(tenant, tenant_factory):
    other_id = tenant_factory().company["id"]
    stranger = new_customer(other_id)
    insert_call(other_id, BASE, customer_id=stranger)
    for customer in (stranger, 10 ** 12):
        response = get(tenant, f"/api/v1/customers/{customer}/timeline")
        assert response.status_code == 404
        assert response.headers["Content-Type"] == "application/problem+json"


def test_timeline_refuses_a_list_cursor(tenant):
    customer = new_customer(tenant.company["id"])
    response = get(tenant, f"/api/v1/customers/{customer}/timeline", cursor=encode_cursor(BASE.isoformat(), 5))
    assert response.status_code == 422 and "cursor" in response.get_json()["errors"]
