"""Analytics through HTTP, on SQLite and MariaDB alike: the numbers must be identical."""
import datetime as dt

import pytest

from gateway_app.db import Session
from gateway_app.models import Appointment, Call, Company, Customer
from tests.conftest import TEST_NOW, add_member
from tests.support.queries import counted_queries

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "mysql"], indirect=True)
UTC = dt.timezone.utc


def at(text):
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def add_calls(company_id, *specs):
    """Each spec: started_at (UTC text), then optional status, duration, outcome, sentiment."""
    for spec in specs:
        started, status, duration, outcome, sentiment = (list(spec) + [None] * 5)[:5] if isinstance(spec, tuple) \
            else (spec, None, None, None, None)
        Session.add(Call(company_id=company_id, direction="inbound", status=status or "answered",
                         started_at=at(started), duration_seconds=duration or 0, outcome=outcome,
                         sentiment=sentiment))
    Session.commit()


def add_bookings(company_id, *specs):
    """Each spec: created_at (UTC text) and status."""
    customer = Customer(company_id=company_id, name="Ada")
    Session.add(customer)
    Session.flush()
    for created, status in specs:
        Session.add(Appointment(company_id=company_id, customer_id=customer.id, title="Visit",
                                starts_at=at("2031-01-01T10:00:00"), ends_at=at("2031-01-01T10:30:00"),
                                status=status, created_at=at(created)))
    Session.commit()


def set_timezone(company_id, name):
    Session.get(Company, company_id).timezone = name
    Session.commit()


def fetch(tenant, url):
    """A fresh answer: these tests write rows directly, which emits no invalidation event."""
    response = tenant.get(url, headers={"Cache-Control": "no-cache"})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def column(report, name):
    return [(p["period_start"], p[name]) for p in report["periods"]]


def test_daily_report_buckets_by_local_day_in_the_company_timezone(tenant):
    company_id = tenant.company["id"]
    set_timezone(company_id, "America/New_York")  # UTC-5 in January
    add_calls(company_id, "2030-01-10T04:59:59", "2030-01-10T05:00:00", "2030-01-11T04:59:59",
              "2030-01-11T05:00:00", ("2030-01-11T06:00:00", "missed"), "2030-01-12T05:00:00")
    add_bookings(company_id, ("2030-01-10T12:00:00", "pending"), ("2030-01-10T13:00:00", "cancelled"))
    report = fetch(tenant, "/api/v1/analytics/reports?from=2030-01-09&to=2030-01-11&granularity=day")
    assert report["timezone"] == "America/New_York" and report["granularity"] == "day"
    assert column(report, "calls") == [("2030-01-09", 1), ("2030-01-10", 2), ("2030-01-11", 2)]
    assert column(report, "answered_calls") == [("2030-01-09", 1), ("2030-01-10", 2), ("2030-01-11", 1)]
    assert column(report, "bookings") == [("2030-01-09", 0), ("2030-01-10", 2), ("2030-01-11", 0)]
    assert column(report, "cancelled_bookings")[1] == ("2030-01-10", 1)
    assert report["periods"][2]["answer_rate"] == 0.5
    assert report["totals"]["calls"] == 5 and report["totals"]["bookings"] == 2

    in_utc = fetch(tenant, "/api/v1/analytics/reports?from=2030-01-10&to=2030-01-10&tz=UTC")
    assert column(in_utc, "calls") == [("2030-01-10", 2)]


def test_days_across_daylight_saving_changes_are_whole_local_days(tenant):
    company_id = tenant.company["id"]
    set_timezone(company_id, "Europe/Berlin")
    add_calls(company_id,
              "2030-03-30T22:59:00", "2030-03-30T23:00:00", "2030-03-31T21:59:00", "2030-03-31T22:00:00",
              # 27 October has 25 hours: 00:00 CEST is 22:00 UTC the day before, 24:00 CET is 23:00 UTC
              "2030-10-26T21:59:00", "2030-10-26T22:00:00", "2030-10-27T22:59:00", "2030-10-27T23:00:00")
    spring = fetch(tenant, "/api/v1/analytics/reports?from=2030-03-30&to=2030-04-01")
    assert column(spring, "calls") == [("2030-03-30", 1), ("2030-03-31", 2), ("2030-04-01", 1)]
    autumn = fetch(tenant, "/api/v1/analytics/reports?from=2030-10-26&to=2030-10-28")
    assert column(autumn, "calls") == [("2030-10-26", 1), ("2030-10-27", 2), ("2030-10-28", 1)]


def test_weekly_and_monthly_reports_cover_whole_calendar_periods(tenant):
    company_id = tenant.company["id"]
    set_timezone(company_id, "America/New_York")
    add_calls(company_id, "2030-01-07T05:00:00", "2030-01-14T04:59:00", "2030-01-14T05:00:00",
              "2030-02-01T04:59:00", "2030-02-01T05:00:00", "2030-03-31T12:00:00", "2030-04-01T12:00:00")
    weekly = fetch(tenant, "/api/v1/analytics/reports?from=2030-01-09&to=2030-01-20&granularity=week")
    assert [(p["period_start"], p["period_end"], p["calls"]) for p in weekly["periods"]] == [
        ("2030-01-07", "2030-01-13", 2), ("2030-01-14", "2030-01-20", 1)]  # weeks start on Monday
    monthly = fetch(tenant, "/api/v1/analytics/reports?from=2030-01-15&to=2030-03-10&granularity=month")
    assert [(p["period_start"], p["period_end"], p["calls"]) for p in monthly["periods"]] == [
        ("2030-01-01", "2030-01-31", 4), ("2030-02-01", "2030-02-28", 1), ("2030-03-01", "2030-03-31", 1)]


def test_kpis(tenant, tenant_factory):
    company_id = tenant.company["id"]
    add_calls(company_id,
              ("2030-05-01T10:00:00", "answered", 60, "booked", "positive"),
              ("2030-05-01T11:00:00", "answered", 120, "inquiry", "positive"),
              ("2030-05-02T10:00:00", "answered", 180, None, "negative"),
              ("2030-05-03T10:00:00", "answered", 240, None, None),
              ("2030-05-03T11:00:00", "missed", 0, None, "neutral"),
              ("2030-05-04T11:00:00", "voicemail", 30, None, None),
              ("2030-06-01T10:00:00", "answered", 999, "booked", "positive"))  # outside the range
    add_bookings(company_id, ("2030-05-01T10:05:00", "confirmed"), ("2030-05-02T09:00:00", "cancelled"),
                 ("2030-04-30T23:59:59", "confirmed"))
    other = tenant_factory()
    add_calls(other.company["id"], ("2030-05-01T10:00:00", "missed", 0, None, "negative"))

    kpis = fetch(tenant, "/api/v1/analytics/kpis?from=2030-05-01&to=2030-05-31&tz=UTC")
    assert (kpis["from"], kpis["to"], kpis["timezone"]) == ("2030-05-01", "2030-05-31", "UTC")
    assert kpis["calls"] == 6 and kpis["answered_calls"] == 4
    assert kpis["answer_rate"] == 0.6667
    assert kpis["average_handle_time_seconds"] == 150.0
    assert kpis["booking_conversion"] == 0.25
    assert kpis["bookings"] == 2 and kpis["cancelled_bookings"] == 1
    assert kpis["sentiment"] == {
        "positive": {"count": 2, "share": 0.5}, "neutral": {"count": 1, "share": 0.25},
        "negative": {"count": 1, "share": 0.25}, "unknown": {"count": 2, "share": None}}


def test_kpis_of_an_empty_range_are_not_zero_rates(tenant):
    kpis = fetch(tenant, "/api/v1/analytics/kpis?from=2030-05-01&to=2030-05-31")
    assert kpis["calls"] == 0
    assert kpis["answer_rate"] is None and kpis["average_handle_time_seconds"] is None
    assert kpis["booking_conversion"] is None


def test_trends_compare_each_period_with_the_one_before(tenant):
    company_id = tenant.company["id"]
    add_calls(company_id,
              ("2030-01-02T10:00:00", "answered", 60), ("2030-01-03T10:00:00", "missed"),  # week of Dec 31
              ("2030-01-07T10:00:00", "answered", 60), ("2030-01-08T10:00:00", "answered", 60),
              ("2030-01-13T23:59:59", "missed"))  # week of Jan 7; nothing in the week of Jan 14
    trend = fetch(tenant, "/api/v1/analytics/trends?from=2030-01-07&to=2030-01-20&granularity=week&tz=UTC")
    assert trend["metric"] == "calls"
    assert [(p["period_start"], p["value"], p["previous"], p["change"], p["change_percent"])
            for p in trend["points"]] == [("2030-01-07", 3, 2, 1, 50.0), ("2030-01-14", 0, 3, -3, -100.0)]
    assert all(isinstance(p["value"], int) for p in trend["points"])

    rate = fetch(tenant, "/api/v1/analytics/trends?from=2030-01-07&to=2030-01-20&granularity=week"
                         "&tz=UTC&metric=answer_rate")
    assert [(p["value"], p["previous"], p["change"], p["change_percent"]) for p in rate["points"]] == [
        (0.6667, 0.5, 0.1667, 33.3), (None, 0.6667, None, None)]


def test_default_range_is_the_last_30_days(tenant):
    report = fetch(tenant, "/api/v1/analytics/reports")
    today = TEST_NOW.date()   # the company's timezone is UTC
    assert report["to"] == today.isoformat()
    assert report["from"] == (today - dt.timedelta(days=29)).isoformat()
    assert len(report["periods"]) == 30


@pytest.mark.parametrize("endpoint", ["reports", "kpis", "trends"])
@pytest.mark.parametrize("query, field", [
    ("from=2030-13-01&to=2030-12-31", "from"),
    ("from=2030-01-01&to=2030-02-31", "to"),
    ("from=2030-01-01&to=2031-01-02", "to"),
    ("from=2030-03-01&to=2030-02-01", "to"),
    ("tz=Nowhere/Special", "tz"),
])
def test_bad_ranges_are_422_naming_the_field(tenant, endpoint, query, field):
    response = tenant.get(f"/api/v1/analytics/{endpoint}?{query}")
    assert response.status_code == 422
    assert field in response.get_json()["errors"]


@pytest.mark.parametrize("endpoint, query, field", [
    ("reports", "granularity=hour", "granularity"),
    ("trends", "granularity=year", "granularity"),
    ("trends", "metric=revenue", "metric"),
])
def test_unknown_granularity_or_metric_is_422(tenant, endpoint, query, field):
    response = tenant.get(f"/api/v1/analytics/{endpoint}?{query}")
    assert response.status_code == 422
    assert field in response.get_json()["errors"]


def test_a_leap_year_is_within_the_limit(tenant):
    report = fetch(tenant, "/api/v1/analytics/reports?from=2032-01-01&to=2032-12-31&granularity=month")
    assert len(report["periods"]) == 12


def test_queries_per_request_do_not_grow_with_rows_or_periods(app, tenant):
    company_id = tenant.company["id"]
    add_calls(company_id, "2030-01-01T10:00:00")
    fetch(tenant, "/api/v1/analytics/kpis?from=2030-01-01&to=2030-01-01&tz=UTC")  # warms the principal cache
    small = count_queries(app, tenant, "/api/v1/analytics/reports?from=2030-01-01&to=2030-01-01&tz=UTC")
    add_calls(company_id, *[f"2030-{month:02d}-{day:02d}T12:00:00" for month in range(1, 13) for day in (3, 17)])
    large = count_queries(app, tenant, "/api/v1/analytics/reports?from=2030-01-01&to=2030-12-31&tz=UTC")
    assert large[1]["totals"]["calls"] == 25 and small[1]["totals"]["calls"] == 1
    assert large[0] == small[0]
    kpis = count_queries(app, tenant, "/api/v1/analytics/kpis?from=2030-01-01&to=2030-12-31&tz=UTC")
    trends = count_queries(app, tenant, "/api/v1/analytics/trends?from=2030-01-01&to=2030-12-31&tz=UTC")
    assert kpis[0] == trends[0] == small[0]


def count_queries(app, tenant, url):
    with counted_queries(app) as statements:
        body = fetch(tenant, url)
    return len(statements), body


def test_every_role_reads_analytics_and_anonymous_does_not(tenant, client):
    viewer = add_member(tenant, "viewer")
    assert viewer.get("/api/v1/analytics/kpis").status_code == 200
    assert client.get("/api/v1/analytics/kpis").status_code == 401
