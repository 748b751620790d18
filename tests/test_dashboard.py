"""Dashboard service through HTTP: overview, KPI tiles against the previous period, activity feed.

"Now" is fixed at Wednesday 2026-03-11 15:00 UTC, 11:00 in New York (EDT, UTC-4 since
8 March), the company's timezone: its day started at 04:00 UTC, its week on Monday
9 March at 04:00 UTC, and the previous week on Monday 2 March at 05:00 UTC (EST).
"""
import datetime as dt

import pytest

from gateway_app.db import Session
from blueprints.common import encode_cursor
from gateway_app.models import AuditLog, Company, Customer
from tests.conftest import insert_appointment, insert_call, user_with_role
from tests.support.queries import counted_queries
from tests.support.reads import BOTH, get

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 3, 11, 15, 0, tzinfo=UTC)


def at(day, hour, month=3):
    return dt.datetime(2026, month, day, hour, 0, tzinfo=UTC)


@pytest.fixture
def fixed_now(app, monkeypatch):
    monkeypatch.setitem(app.config, "CLOCK", lambda: NOW)
    return NOW


@pytest.fixture
def new_york(tenant):
    Session.get(Company, tenant.company["id"]).timezone = "America/New_York"
    Session.commit()
    return tenant


@pytest.fixture
def week_of_calls(new_york, tenant_factory):
    """Calls and bookings around the company's day and week boundaries (see the module doc)."""
    company_id = new_york.company["id"]
    today_answered = insert_call(company_id, at(11, 14), duration_seconds=90)
    insert_call(company_id, at(11, 5), status="missed", duration_seconds=0)      # 01:00 local
    insert_call(company_id, at(11, 3), duration_seconds=30)                      # yesterday, local
    monday = insert_call(company_id, at(9, 5), duration_seconds=60)              # this week
    insert_call(company_id, at(9, 3))                                            # Sunday, local
    insert_call(company_id, at(3, 12), duration_seconds=100)                     # previous week...
    insert_call(company_id, at(3, 13), status="missed")
    insert_call(company_id, at(6, 12))                                           # ...after its stretch
    insert_call(tenant_factory().company["id"], at(11, 14))                      # another company
    insert_appointment(company_id, at(12, 15), call_id=today_answered.id, created_at=at(11, 10),
                       title="From today's call")
    insert_appointment(company_id, at(13, 15), call_id=monday.id, created_at=at(10, 10),
                       status="pending", title="From Monday's call")
    insert_appointment(company_id, at(14, 15), created_at=at(11, 9), status="cancelled")
    insert_appointment(company_id, at(1, 15), call_id=monday.id, created_at=at(3, 9))
    for created in (at(10, 12), at(3, 12), at(2, 12, month=2)):
        Session.add(Customer(company_id=company_id, name="Customer", created_at=created, updated_at=created))
    Session.commit()
    return new_york


@BOTH
def test_overview_counts_today_and_this_week_in_the_company_timezone(week_of_calls, fixed_now):
    body = get(week_of_calls, "/api/v1/dashboard/overview").get_json()

    assert body["timezone"] == "America/New_York"
    assert body["today_start"] == "2026-03-11T04:00:00+00:00"
    assert body["week_start"] == "2026-03-09T04:00:00+00:00"
    assert body["calls"] == {"today": {"total": 2, "answered": 1, "missed": 1},
                             "this_week": {"total": 4, "answered": 3, "missed": 1}}
    assert body["appointments_booked_from_calls"] == {"today": 1, "this_week": 2}
    upcoming = body["upcoming_appointments"]
    assert upcoming["count"] == 2
    assert [a["title"] for a in upcoming["next"]] == ["From today's call", "From Monday's call"]
    assert body["conversion_rate"] == pytest.approx(2 / 3, abs=1e-4)


def test_overview_of_an_empty_company_is_zeros(tenant, fixed_now):
    body = get(tenant, "/api/v1/dashboard/overview").get_json()
    assert body["calls"]["today"] == {"total": 0, "answered": 0, "missed": 0}
    assert body["upcoming_appointments"] == {"count": 0, "next": []}
    assert body["conversion_rate"] == 0.0


def tiles_of(response):
    assert response.status_code == 200, response.get_json()
    return {tile["key"]: tile for tile in response.get_json()["tiles"]}


@BOTH
def test_week_metrics_compare_with_the_same_stretch_of_last_week(week_of_calls, fixed_now):
    response = get(week_of_calls, "/api/v1/dashboard/metrics", period="week")
    body = response.get_json()
    tiles = tiles_of(response)

    assert body["current"] == {"from": "2026-03-09T04:00:00+00:00", "to": "2026-03-11T15:00:00+00:00"}
    assert body["previous"] == {"from": "2026-03-02T05:00:00+00:00", "to": "2026-03-04T16:00:00+00:00"}
    assert (tiles["calls"]["value"], tiles["calls"]["previous"]) == (4, 2)
    assert (tiles["calls"]["change"], tiles["calls"]["change_percent"]) == (2, 100.0)
    assert (tiles["answered_calls"]["value"], tiles["answered_calls"]["previous"]) == (3, 1)
    assert (tiles["missed_calls"]["value"], tiles["missed_calls"]["change_percent"]) == (1, 0.0)
    assert (tiles["answer_rate"]["value"], tiles["answer_rate"]["previous"]) == (0.75, 0.5)
    assert (tiles["avg_call_seconds"]["value"], tiles["avg_call_seconds"]["previous"]) == (60.0, 100.0)
    assert tiles["avg_call_seconds"]["change_percent"] == -40.0
    assert (tiles["bookings_from_calls"]["value"], tiles["bookings_from_calls"]["previous"]) == (2, 1)
    assert tiles["conversion_rate"]["value"] == pytest.approx(0.6667)
    assert tiles["conversion_rate"]["previous"] == 1.0
    assert (tiles["new_customers"]["value"], tiles["new_customers"]["previous"]) == (1, 1)


def test_day_and_month_periods(week_of_calls, fixed_now):
    day = tiles_of(get(week_of_calls, "/api/v1/dashboard/metrics", period="day"))
    assert (day["calls"]["value"], day["calls"]["previous"], day["calls"]["change_percent"]) == (2, 0, None)

    month = get(week_of_calls, "/api/v1/dashboard/metrics", period="month")
    assert month.get_json()["previous"]["from"] == "2026-02-01T05:00:00+00:00"
    tiles = tiles_of(month)
    assert (tiles["calls"]["value"], tiles["calls"]["previous"]) == (8, 0)
    assert (tiles["new_customers"]["value"], tiles["new_customers"]["previous"]) == (2, 1)

    default = get(week_of_calls, "/api/v1/dashboard/metrics").get_json()
    assert default["period"] == "day"
    for period in ("year", "", "DAY"):
        refused = get(week_of_calls, "/api/v1/dashboard/metrics", period=period)
        assert refused.status_code == 422 and "period" in refused.get_json()["errors"]


@BOTH
def test_activity_merges_calls_bookings_and_customer_changes(app, tenant, tenant_factory):
    company_id = tenant.company["id"]
    # the customer is created through the API, so its change is in the audit log (now)
    customer = tenant.post("/api/v1/customers", json={"name": "Jane"}).get_json()
    call = insert_call(company_id, at(11, 14), customer_id=customer["id"], summary="Booked")
    booking = insert_appointment(company_id, at(12, 15), call_id=call.id, created_at=at(11, 14))
    older_call = insert_call(company_id, at(10, 9))
    insert_call(tenant_factory().company["id"], at(11, 14))

    with counted_queries(app) as statements:
        first = get(tenant, "/api/v1/dashboard/activity", limit=2)
    second = get(tenant, "/api/v1/dashboard/activity", limit=2, cursor=first.get_json()["next_cursor"])

    items = first.get_json()["data"] + second.get_json()["data"]
    assert [(i["type"], i["id"]) for i in items][1:] == [
        ("call", call.id), ("booking", booking.id), ("call", older_call.id)]  # tie: by kind
    change = items[0]
    assert change["type"] == "customer"
    assert change["data"]["action"] == "customer.created"
    assert (change["data"]["customer_id"], change["data"]["customer_name"]) == (customer["id"], "Jane")
    assert items[1]["data"]["summary"] == "Booked"
    assert items[2]["data"]["call_id"] == call.id
    assert second.get_json()["next_cursor"] is None
    # principal, feed page, then one query per kind on the page and the customer names
    assert len(statements) <= 5


def test_activity_validates_its_page(tenant):
    for params, field in (({"limit": 101}, "limit"), ({"limit": -1}, "limit"), ({"cursor": "%%%"}, "cursor")):
        response = get(tenant, "/api/v1/dashboard/activity", **params)
        assert response.status_code == 422 and field in response.get_json()["errors"]


def test_every_role_reads_the_dashboard(tenant, fixed_now):
    viewer = user_with_role(tenant, "viewer")
    for path in ("/api/v1/dashboard/overview", "/api/v1/dashboard/metrics", "/api/v1/dashboard/activity"):
        assert get(viewer, path).status_code == 200
        assert tenant.client.get(path).status_code == 401


def insert_customer_change(company_id, created_at, target_id, fields=("name",), action="customer.updated"):
    """An audit log row of a customer change, as services.customers writes one."""
    change = AuditLog(company_id=company_id, action=action, target_type="customer", target_id=target_id,
                      details={"fields": list(fields)}, created_at=created_at)
    Session.add(change)
    Session.commit()
    return change


def activity_pages(tenant, limit, cursor=None):
    """Every item of the feed, page after page of ``limit``, and the pages' count."""
    items, pages = [], 0
    while True:
        params = {"limit": limit} if cursor is None else {"limit": limit, "cursor": cursor}
        response = get(tenant, "/api/v1/dashboard/activity", **params)
        assert response.status_code == 200
        page = response.get_json()
        items += page["data"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            return items, pages


@pytest.fixture
def tied_activity(tenant, tenant_factory):
    """Calls, bookings and customer changes, three of each kind at one instant; another
    company's rows at the same instants. Returns (type, id, at) newest first, ties by
    kind then id, descending."""
    company_id = tenant.company["id"]
    other_id = tenant_factory().company["id"]
    jane = Customer(company_id=company_id, name="Jane")
    stranger = Customer(company_id=other_id, name="Not yours")
    Session.add_all([jane, stranger])
    Session.commit()
    expected = []
    for instant in (at(11, 14), at(10, 9)):
        for _ in range(3):
            expected.append(("call", insert_call(company_id, instant).id, instant))
            expected.append(("booking", insert_appointment(company_id, at(20, 9), created_at=instant).id, instant))
            expected.append(("customer", insert_customer_change(company_id, instant, str(jane.id)).id, instant))
            insert_call(other_id, instant)
            insert_appointment(other_id, at(20, 9), created_at=instant)
            insert_customer_change(other_id, instant, str(stranger.id))
    expected.append(("call", insert_call(company_id, at(9, 8)).id, at(9, 8)))
    expected.append(("customer", insert_customer_change(company_id, at(8, 8), str(stranger.id)).id, at(8, 8)))
    expected.append(("customer", insert_customer_change(company_id, at(7, 8), "not-an-id").id, at(7, 8)))
    expected.sort(key=lambda entry: (entry[2], entry[0], entry[1]), reverse=True)
    return {"expected": [(kind, row_id, instant.isoformat()) for kind, row_id, instant in expected],
            "jane": jane.id, "stranger": stranger.id}


@BOTH
@pytest.mark.parametrize("limit", [1, 2, 4, 100])
def test_activity_pages_across_kinds_and_ties_in_order(tenant, tied_activity, limit):
    items, pages = activity_pages(tenant, limit)
    assert [(item["type"], item["id"], item["at"]) for item in items] == tied_activity["expected"]
    assert pages == -(-len(items) // limit)   # the last page is full only when nothing follows


@BOTH
def test_activity_shows_each_kind_and_never_another_companys_customer(app, tenant, tied_activity):
    with counted_queries(app) as statements:
        items = get(tenant, "/api/v1/dashboard/activity", limit=100).get_json()["data"]
    assert len(statements) <= 3   # principal, the page, the customers' names
    changes = [item["data"] for item in items if item["type"] == "customer"]
    assert changes[0] == {"action": "customer.updated", "customer_id": tied_activity["jane"],
                          "customer_name": "Jane", "fields": ["name"], "user_id": None}
    # a change naming another company's customer (or no id) shows no name
    assert changes[-2]["customer_id"] == tied_activity["stranger"] and changes[-2]["customer_name"] is None
    assert changes[-1]["customer_id"] is None and changes[-1]["customer_name"] is None
    call = next(item for item in items if item["type"] == "call")
    assert call["data"] == {"direction": "inbound", "status": "answered", "outcome": None,
                            "customer_id": None, "summary": None}
    booking = next(item for item in items if item["type"] == "booking")
    assert booking["at"] == "2026-03-11T14:00:00+00:00"
    assert booking["data"] == {"title": "Appointment", "status": "confirmed",
                               "starts_at": "2026-03-20T09:00:00+00:00", "customer_id": None, "call_id": None}


@BOTH
def test_activity_continues_after_a_cursor_of_any_kind_at_a_tied_instant(tenant, tied_activity):
    expected = tied_activity["expected"]
    tied = at(11, 14).isoformat()
    for kind, row_id in (("call", 1), ("booking", 10 ** 17), ("a", 5), ("zzz", 5)):
        cursor = encode_cursor(tied, f"{kind}:{row_id}")
        items, _ = activity_pages(tenant, 3, cursor)
        after = [entry for entry in expected
                 if (entry[2], entry[0], entry[1]) < (tied, kind, row_id)]
        assert [(item["type"], item["id"], item["at"]) for item in items] == after


def test_activity_of_a_company_without_any_is_an_empty_page(tenant, tenant_factory):
    insert_call(tenant_factory().company["id"], at(11, 14))
    response = get(tenant, "/api/v1/dashboard/activity")
    assert response.status_code == 200
    assert response.get_json() == {"data": [], "next_cursor": None}


def test_activity_refuses_a_list_cursor(tenant):
    response = get(tenant, "/api/v1/dashboard/activity", cursor=encode_cursor(at(11, 14).isoformat(), 5))
    assert response.status_code == 422 and "cursor" in response.get_json()["errors"]
    assert response.headers["Content-Type"] == "application/problem+json"
