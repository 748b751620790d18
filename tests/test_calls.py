"""Calls service through HTTP: list, filters, keyset pages, details, CSV export (streamed and async)."""
import csv
import datetime as dt
import io
import time

import pytest

from gateway_app.db import Session
from gateway_app.models import Company, Customer
from gateway_app.services import calls_queries
from tests.conftest import insert_appointment, insert_call, user_with_role
from tests.support.queries import counted_queries
from tests.support.reads import BOTH, get, ids

UTC = dt.timezone.utc
BASE = dt.datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def add_customer(company_id, name="Jane Roe", phone=None, email=None):
    customer = Customer(company_id=company_id, name=name, phone=phone, email=email)
    Session.add(customer)
    Session.commit()
    return customer


@BOTH
def test_list_is_newest_first_without_transcripts(tenant):
    company_id = tenant.company["id"]
    customer = add_customer(company_id)
    older = insert_call(company_id, BASE - dt.timedelta(hours=1), transcript="agent: hello",
                        analysis={"intent": "booking"}, summary="Asked for prices")
    newer = insert_call(company_id, BASE, customer_id=customer.id, summary="Booked a cut")

    body = get(tenant, "/api/v1/calls").get_json()

    assert [item["id"] for item in body["data"]] == [newer.id, older.id]
    assert body["next_cursor"] is None
    first = body["data"][0]
    assert "transcript" not in first and "analysis" not in first
    assert first["customer"] == {"id": customer.id, "name": "Jane Roe"}
    assert first["started_at"] == "2026-03-10T12:00:00+00:00"
    assert body["data"][1]["customer"] is None


@BOTH
def test_pages_continue_across_ties_on_started_at(tenant):
    company_id = tenant.company["id"]
    tied = [insert_call(company_id, BASE).id for _ in range(5)]
    earlier = insert_call(company_id, BASE - dt.timedelta(seconds=1)).id

    first = get(tenant, "/api/v1/calls", limit=2).get_json()
    second = get(tenant, "/api/v1/calls", limit=2, cursor=first["next_cursor"]).get_json()
    third = get(tenant, "/api/v1/calls", limit=2, cursor=second["next_cursor"]).get_json()

    served = [item["id"] for page in (first, second, third) for item in page["data"]]
    assert served == sorted(tied, reverse=True) + [earlier]
    assert third["next_cursor"] is None  # exactly `limit` rows left: no further page


def test_exactly_limit_rows_has_no_next_page(tenant):
    company_id = tenant.company["id"]
    for minute in range(3):
        insert_call(company_id, BASE + dt.timedelta(minutes=minute))
    body = get(tenant, "/api/v1/calls", limit=3).get_json()
    assert len(body["data"]) == 3 and body["next_cursor"] is None
    body = get(tenant, "/api/v1/calls", limit=2).get_json()
    assert len(body["data"]) == 2 and body["next_cursor"] is not None


@BOTH
def test_filters(tenant):
    company_id = tenant.company["id"]
    customer = add_customer(company_id)
    booked = insert_call(company_id, BASE, outcome="booked", sentiment="positive",
                         customer_id=customer.id, summary="Caller BOOKED a 50% off haircut")
    missed = insert_call(company_id, BASE - dt.timedelta(days=1), status="missed",
                         direction="outbound", summary="No answer, n/a")
    old = insert_call(company_id, BASE - dt.timedelta(days=40), sentiment="negative",
                      summary="Complained about a 50_ fee")

    assert ids(get(tenant, "/api/v1/calls", direction="outbound")) == [missed.id]
    assert ids(get(tenant, "/api/v1/calls", status="answered")) == [booked.id, old.id]
    assert ids(get(tenant, "/api/v1/calls", sentiment="negative")) == [old.id]
    assert ids(get(tenant, "/api/v1/calls", outcome="booked")) == [booked.id]
    assert ids(get(tenant, "/api/v1/calls", customer_id=customer.id)) == [booked.id]
    assert ids(get(tenant, "/api/v1/calls", q="booked")) == [booked.id]  # case-insensitive
    assert ids(get(tenant, "/api/v1/calls", q="50%")) == [booked.id]     # % is literal, not a wildcard
    assert ids(get(tenant, "/api/v1/calls", q="50_")) == [old.id]        # so is _
    assert ids(get(tenant, "/api/v1/calls", q="n/a")) == [missed.id]     # and the pattern's escape character
    assert ids(get(tenant, "/api/v1/calls", **{"from": "2026-03-01"})) == [booked.id, missed.id]
    assert ids(get(tenant, "/api/v1/calls", **{"from": "2026-01-01", "to": "2026-03-09"})) == [missed.id, old.id]
    assert ids(get(tenant, "/api/v1/calls", status="answered", sentiment="positive", q="haircut")) == [booked.id]


def test_date_range_uses_the_company_timezone(tenant):
    company_id = tenant.company["id"]
    Session.get(Company, company_id).timezone = "America/New_York"
    Session.commit()
    # 2026-03-02 03:00 UTC is still 1 March (22:00) in New York
    late_evening = insert_call(company_id, dt.datetime(2026, 3, 2, 3, 0, tzinfo=UTC))
    next_morning = insert_call(company_id, dt.datetime(2026, 3, 2, 14, 0, tzinfo=UTC))

    assert ids(get(tenant, "/api/v1/calls", **{"from": "2026-03-01", "to": "2026-03-01"})) == [late_evening.id]
    assert ids(get(tenant, "/api/v1/calls", **{"from": "2026-03-02"})) == [next_morning.id]
    # an explicit offset is taken as given
    assert ids(get(tenant, "/api/v1/calls", **{"from": "2026-03-02T10:00:00+00:00"})) == [next_morning.id]


@pytest.mark.parametrize("params, field", [
    ({"from": "yesterday"}, "from"),
    ({"to": "2026-02-30"}, "to"),
    ({"from": "2025-01-01", "to": "2026-03-01"}, "to"),   # over a year
    ({"from": "2026-03-02", "to": "2026-03-01"}, "to"),   # backwards
    ({"direction": "sideways"}, "direction"),
    ({"status": "lost"}, "status"),
    ({"sentiment": "ecstatic"}, "sentiment"),
    ({"outcome": "sold"}, "outcome"),
    ({"customer_id": "abc"}, "customer_id"),
    ({"limit": "101"}, "limit"),
    ({"limit": "0"}, "limit"),
    ({"cursor": "not-a-cursor"}, "cursor"),
    ({"cursor": "WyJub3QgYSBkYXRlIiwxXQ"}, "cursor"),       # ["not a date",1]
])
def test_bad_input_is_422_naming_the_field(tenant, params, field):
    response = get(tenant, "/api/v1/calls", **params)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert field in response.get_json()["errors"]


@BOTH
def test_details_include_transcript_analysis_and_bookings(tenant):
    company_id = tenant.company["id"]
    call = insert_call(company_id, BASE, transcript="agent: hello\nuser: a haircut please",
                       analysis={"intent": "booking", "score": 0.9}, outcome="booked")
    appointment = insert_appointment(company_id, BASE + dt.timedelta(days=2), call_id=call.id,
                                     title="Haircut")

    body = get(tenant, f"/api/v1/calls/{call.id}").get_json()

    assert body["transcript"].startswith("agent: hello")
    assert body["analysis"] == {"intent": "booking", "score": 0.9}
    assert [a["id"] for a in body["appointments"]] == [appointment.id]
    assert body["appointments"][0]["title"] == "Haircut"


@BOTH
def test_details_list_the_bookings_in_time_order_and_none_as_empty(app, tenant, database_url):
    company_id = tenant.company["id"]
    call = insert_call(company_id, BASE)
    later = insert_appointment(company_id, BASE + dt.timedelta(days=3), call_id=call.id,
                               title="Follow-up \"café\"", status="pending")
    tied = [insert_appointment(company_id, BASE + dt.timedelta(days=1, microseconds=250), call_id=call.id,
                               title=f"Tied {n}") for n in range(2)]
    insert_appointment(company_id, BASE + dt.timedelta(days=2))   # booked by no call
    without = insert_call(company_id, BASE - dt.timedelta(hours=1))
    get(tenant, f"/api/v1/calls/{without.id}")   # warms the principal cache: the counts are the view's

    with counted_queries(app) as statements:
        body = get(tenant, f"/api/v1/calls/{call.id}").get_json()
    with counted_queries(app) as statements_without:
        empty = get(tenant, f"/api/v1/calls/{without.id}").get_json()
    with counted_queries(app) as statements_missing:
        missing = get(tenant, "/api/v1/calls/999999")

    assert body["appointments"] == [
        {"id": tied[0].id, "title": "Tied 0", "starts_at": "2026-03-11T12:00:00.000250+00:00", "status": "confirmed"},
        {"id": tied[1].id, "title": "Tied 1", "starts_at": "2026-03-11T12:00:00.000250+00:00", "status": "confirmed"},
        {"id": later.id, "title": "Follow-up \"café\"", "starts_at": "2026-03-13T12:00:00+00:00",
         "status": "pending"},
    ] if database_url.startswith("sqlite") else [
        # MariaDB keeps whole seconds (DATETIME)
        {"id": tied[0].id, "title": "Tied 0", "starts_at": "2026-03-11T12:00:00+00:00", "status": "confirmed"},
        {"id": tied[1].id, "title": "Tied 1", "starts_at": "2026-03-11T12:00:00+00:00", "status": "confirmed"},
        {"id": later.id, "title": "Follow-up \"café\"", "starts_at": "2026-03-13T12:00:00+00:00",
         "status": "pending"},
    ]
    assert empty["appointments"] == []
    assert missing.status_code == 404
    # MariaDB lists the bookings in the call's own statement; SQLite reads them in a second
    expected = 1 if database_url.startswith("mysql") else 2
    assert len(statements) == len(statements_without) == expected
    assert len(statements_missing) == 1


@BOTH
def test_another_companys_calls_are_not_found(tenant, tenant_factory):
    other = tenant_factory()
    theirs = insert_call(other.company["id"], BASE, summary="their call")
    mine = insert_call(tenant.company["id"], BASE)

    assert get(tenant, f"/api/v1/calls/{theirs.id}").status_code == 404
    assert get(tenant, "/api/v1/calls/999999").status_code == 404
    assert ids(get(tenant, "/api/v1/calls")) == [mine.id]
    assert ids(get(tenant, "/api/v1/calls", customer_id=1, q="their")) == []


def test_list_costs_the_same_queries_for_3_or_30_calls(app, tenant):
    company_id = tenant.company["id"]
    customers = [add_customer(company_id, name=f"Customer {n}") for n in range(30)]

    def queries_for_page():
        with counted_queries(app) as statements:
            response = get(tenant, "/api/v1/calls", limit=100)
        assert response.status_code == 200
        return len(statements), len(response.get_json()["data"])

    for n in range(3):
        insert_call(company_id, BASE + dt.timedelta(minutes=n), customer_id=customers[n].id)
    queries_for_page()  # warms the principal cache, so both counts measure the view alone
    few = queries_for_page()
    for n in range(3, 30):
        insert_call(company_id, BASE + dt.timedelta(minutes=n), customer_id=customers[n].id)
    many = queries_for_page()

    assert few[1] == 3 and many[1] == 30
    assert few[0] == many[0] <= 2  # the company's timezone, one page query


def read_csv(response):
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


@BOTH
def test_export_streams_every_matching_call_in_batches(app, tenant, monkeypatch):
    company_id = tenant.company["id"]
    customer = add_customer(company_id, name="=HYPERLINK(\"evil\")")
    for n in range(7):  # ties on started_at across batch boundaries
        insert_call(company_id, BASE - dt.timedelta(hours=n // 3), customer_id=customer.id,
                    summary=f"call {n}", from_number="+15551234567")
    insert_call(company_id, BASE, direction="outbound", summary="outbound")
    insert_call(another_company_id(), BASE, direction="inbound")
    monkeypatch.setattr(calls_queries, "EXPORT_BATCH_SIZE", 2)

    with counted_queries(app) as statements:
        response = get(tenant, "/api/v1/calls/export", direction="inbound")
        assert response.is_streamed
        rows = read_csv(response)

    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith("attachment; filename=\"calls-")
    assert rows[0] == list(calls_queries.EXPORT_HEADER)
    body = rows[1:]
    assert len(body) == 7
    assert len({row[0] for row in body}) == 7
    started = [row[1] for row in body]
    assert started == sorted(started, reverse=True)
    assert all(row[3] == "inbound" for row in body)
    assert body[0][11] == "'=HYPERLINK(\"evil\")"  # formula made inert
    assert body[0][5] == "'+15551234567"           # a caller ID is provider text like any other
    batches = [s for s in statements if "FROM calls" in s and "LIMIT" in s.upper()]
    assert len(batches) == 4  # 2 + 2 + 2 + 1 rows


def another_company_id():
    company = Company(name="Elsewhere")
    Session.add(company)
    Session.commit()
    return company.id


def test_export_honours_the_date_range_and_validation(tenant):
    company_id = tenant.company["id"]
    inside = insert_call(company_id, BASE)
    insert_call(company_id, BASE - dt.timedelta(days=30))

    rows = read_csv(get(tenant, "/api/v1/calls/export", **{"from": "2026-03-10", "to": "2026-03-10"}))
    assert [row[0] for row in rows[1:]] == [str(inside.id)]

    empty = get(tenant, "/api/v1/calls/export", q="nothing like this")
    assert read_csv(empty) == [list(calls_queries.EXPORT_HEADER)]

    bad = get(tenant, "/api/v1/calls/export", **{"from": "2024-01-01", "to": "2026-01-01"})
    assert bad.status_code == 422 and "to" in bad.get_json()["errors"]


def test_export_needs_the_export_permission(tenant):
    insert_call(tenant.company["id"], BASE)
    viewer = user_with_role(tenant, "viewer")
    member = user_with_role(tenant, "member")

    assert get(viewer, "/api/v1/calls").status_code == 200
    refused = get(viewer, "/api/v1/calls/export")
    assert refused.status_code == 403
    assert refused.get_json()["permission"] == "calls:export"
    assert get(member, "/api/v1/calls/export").status_code == 200


@pytest.mark.gunicorn
def test_exports_under_gunicorn_gevent_workers(tmp_path, redis_url, redis_client):
    """Streamed and background exports in the real web process (2 gevent workers)."""
    import requests
    import sqlalchemy
    from sqlalchemy.orm import Session as OrmSession

    from gateway_app.migrate import upgrade
    from gateway_app.models import Call
    from tests.conftest import PASSWORD
    from tests.support.servers import Gunicorn

    database = f"sqlite:///{tmp_path}/served.db"
    upgrade(database)
    server = Gunicorn({"DATABASE_URL": database, "REDIS_URL": redis_url,
                       "FILE_STORAGE_URL": f"file://{tmp_path}/files",
                       "SECRET_KEY": "gunicorn-test-secret-0123456789abcdef"}, workers=2).start()
    try:
        http = requests.Session()
        signup = http.post(server.url + "/api/v1/auth/signup", json={
            "company_name": "Served", "name": "Owner", "email": "served@example.com",
            "password": PASSWORD}, timeout=10).json()
        token = http.post(server.url + "/api/v1/auth/token", json={
            "email": "served@example.com", "password": PASSWORD}, timeout=10).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        engine = sqlalchemy.create_engine(database)
        with OrmSession(engine) as session:
            session.add_all(Call(company_id=signup["company"]["id"], direction="inbound",
                                 status="answered", started_at=BASE - dt.timedelta(minutes=n))
                            for n in range(2500))  # more than two export batches
            session.commit()
        engine.dispose()

        streamed = http.get(server.url + "/api/v1/calls/export", stream=True, timeout=30)
        assert streamed.status_code == 200
        assert "Content-Length" not in streamed.headers  # sent as it is generated
        lines = list(csv.reader(line.decode() for line in streamed.iter_lines()))
        assert len(lines) == 2501 and lines[0] == list(calls_queries.EXPORT_HEADER)

        accepted = http.get(server.url + "/api/v1/calls/export", params={"async": "true"}, timeout=10)
        assert accepted.status_code == 202
        for _ in range(100):
            done = http.get(server.url + accepted.headers["Location"], timeout=10)
            if done.status_code != 202:
                break
            time.sleep(0.05)
        assert done.status_code == 200
        assert done.text.count("\n") == 2501
    finally:
        server.stop()
