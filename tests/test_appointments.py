"""Appointments through HTTP: calendar, booking, business hours, overlaps, idempotency, lifecycle."""
import datetime as dt
import itertools
import threading

import pytest
from sqlalchemy import func, select

from gateway_app import events
from gateway_app.db import Session
from gateway_app.models import Appointment, AuditLog, Call, Company, Customer, OutboxMessage
from tests.conftest import TEST_NOW, add_member
from tests.support.queries import counted_queries

BOTH_DATABASES = pytest.mark.parametrize("database_url", ["sqlite", "mysql"], indirect=True)
UTC = dt.timezone.utc


_phone_suffixes = itertools.count(100)


def make_customer(company_id, name="Ada Lovelace"):
    # phones are unique per company
    customer = Customer(company_id=company_id, name=name, phone=f"+1555{next(_phone_suffixes):07d}")
    Session.add(customer)
    Session.commit()
    return customer.id


def make_call(company_id):
    call = Call(company_id=company_id, direction="inbound", status="answered",
                started_at=dt.datetime(2030, 1, 7, 9, tzinfo=UTC), duration_seconds=120)
    Session.add(call)
    Session.commit()
    return call.id


def set_company(company_id, **values):
    company = Session.get(Company, company_id)
    for name, value in values.items():
        setattr(company, name, value)
    Session.commit()


def make_appointment(company_id, customer_id, starts_at, minutes=30, status="pending", title="Visit"):
    row = Appointment(company_id=company_id, customer_id=customer_id, title=title, starts_at=starts_at,
                      ends_at=starts_at + dt.timedelta(minutes=minutes), status=status, timezone="UTC")
    Session.add(row)
    Session.commit()
    return row.id


def booking(customer_id, starts_at="2030-01-07T10:00:00+00:00", **extra):
    body = {"customer_id": customer_id, "starts_at": starts_at, "title": "Consultation"}
    if "ends_at" not in extra:
        body["duration_minutes"] = 30
    body.update(extra)
    return body


def errors_of(response):
    assert response.headers["Content-Type"].startswith("application/problem+json")
    return response.get_json().get("errors", {})


@pytest.fixture
def customer_id(tenant):
    return make_customer(tenant.company["id"])


# --- booking -------------------------------------------------------------------------

@BOTH_DATABASES
def test_booking_is_stored_pending_and_handed_to_calcom_through_the_outbox(tenant, customer_id):
    response = tenant.post("/api/v1/appointments", json=booking(customer_id, notes="first visit"))
    assert response.status_code == 202  # what submit_booking answers while Cal.com is asynchronous
    body = response.get_json()
    assert body["status"] == "pending" and body["customer_id"] == customer_id
    assert body["starts_at"] == "2030-01-07T10:00:00+00:00" and body["duration_minutes"] == 30
    assert body["notes"] == "first visit"

    outbox = Session.scalars(select(OutboxMessage)).all()
    assert [(m.kind, m.payload, m.company_id) for m in outbox] == [
        ("calcom.booking", {"appointment_id": body["id"]}, tenant.company["id"])]
    audit = Session.scalars(select(AuditLog).where(AuditLog.action == "appointment.booked")).all()
    assert [a.target_id for a in audit] == [str(body["id"])]

    fetched = tenant.get(f"/api/v1/appointments/{body['id']}")
    assert fetched.status_code == 200
    assert fetched.get_json()["title"] == "Consultation"


def test_booking_emits_appointments_updated_after_commit(app, tenant, customer_id):
    heard = []
    events.subscribe(app, heard.append)
    response = tenant.post("/api/v1/appointments", json=booking(customer_id))
    assert response.status_code == 202
    assert [(e.name, e.company_id) for e in heard] == [("appointments.updated", tenant.company["id"])]


def test_booking_with_ends_at_and_naive_times_in_the_company_timezone(tenant, customer_id):
    set_company(tenant.company["id"], timezone="America/New_York")
    response = tenant.post("/api/v1/appointments", json=booking(
        customer_id, starts_at="2030-07-01T09:00:00", ends_at="2030-07-01T09:45:00"))
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert body["starts_at"] == "2030-07-01T09:00:00-04:00"
    assert body["timezone"] == "America/New_York" and body["duration_minutes"] == 45
    stored = Session.get(Appointment, body["id"])
    assert stored.starts_at == dt.datetime(2030, 7, 1, 13, tzinfo=UTC)


@pytest.mark.parametrize("body, field", [
    ({"starts_at": "2030-01-07T10:00:00Z", "duration_minutes": 30, "title": "x"}, "customer_id"),
    ({"customer_id": "7", "starts_at": "2030-01-07T10:00:00Z", "duration_minutes": 30, "title": "x"}, "customer_id"),
    ({"customer_id": 1, "starts_at": "tomorrow", "duration_minutes": 30, "title": "x"}, "starts_at"),
    ({"customer_id": 1, "starts_at": "2030-01-07T10:00:00Z", "title": "x"}, "ends_at"),
    ({"customer_id": 1, "starts_at": "2030-01-07T10:00:00Z", "duration_minutes": 30,
      "ends_at": "2030-01-07T11:00:00Z", "title": "x"}, "ends_at"),
    ({"customer_id": 1, "starts_at": "2030-01-07T10:00:00Z", "ends_at": "2030-01-07T09:00:00Z",
      "title": "x"}, "ends_at"),
    ({"customer_id": 1, "starts_at": "2030-01-07T10:00:00Z", "ends_at": "2030-01-09T10:00:00Z",
      "title": "x"}, "ends_at"),
    ({"customer_id": 1, "starts_at": "2030-01-07T10:00:00Z", "duration_minutes": 0, "title": "x"},
     "duration_minutes"),
    ({"customer_id": 1, "starts_at": "2030-01-07T10:00:00Z", "duration_minutes": 30, "title": ""}, "title"),
    ({"customer_id": 1, "starts_at": "2020-01-07T10:00:00Z", "duration_minutes": 30, "title": "x"}, "starts_at"),
])
def test_invalid_bookings_are_422_naming_the_field(tenant, customer_id, body, field):
    response = tenant.post("/api/v1/appointments", json=body)
    assert response.status_code == 422
    assert field in errors_of(response)
    assert Session.scalar(select(func.count(Appointment.id))) == 0


def test_booking_needs_a_customer_and_call_of_the_same_company(tenant, tenant_factory, customer_id):
    other = tenant_factory()
    foreign_customer = make_customer(other.company["id"], "Somebody else's")
    foreign_call = make_call(other.company["id"])
    own_call = make_call(tenant.company["id"])

    response = tenant.post("/api/v1/appointments", json=booking(foreign_customer))
    assert response.status_code == 422 and "customer_id" in errors_of(response)
    response = tenant.post("/api/v1/appointments", json=booking(999999))
    assert response.status_code == 422 and "customer_id" in errors_of(response)
    response = tenant.post("/api/v1/appointments", json=booking(customer_id, call_id=foreign_call))
    assert response.status_code == 422 and "call_id" in errors_of(response)

    response = tenant.post("/api/v1/appointments", json=booking(customer_id, call_id=own_call))
    assert response.status_code == 202 and response.get_json()["call_id"] == own_call
    assert Session.scalar(select(func.count(OutboxMessage.id))) == 1


# --- business hours ------------------------------------------------------------------

@BOTH_DATABASES
def test_business_hours_in_the_company_timezone(tenant, customer_id):
    set_company(tenant.company["id"], timezone="Europe/Berlin",
                business_hours={"mon": [["09:00", "12:00"], ["13:00", "17:00"]], "sat": [["10:00", "24:00"]]})

    def attempt(starts_at, minutes=30):
        return tenant.post("/api/v1/appointments", json=booking(customer_id, starts_at=starts_at,
                                                                duration_minutes=minutes))

    # Monday 2030-01-07, CET (UTC+1): 09:00 local is 08:00 UTC
    assert attempt("2030-01-07T08:00:00Z").status_code == 202
    assert attempt("2030-01-07T11:30:00+01:00").status_code == 202       # ends exactly at 12:00
    early = attempt("2030-01-07T08:30:00+01:00")
    assert early.status_code == 422 and "starts_at" in errors_of(early)
    assert attempt("2030-01-07T11:45:00+01:00").status_code == 422      # runs into the lunch break
    assert attempt("2030-01-08T10:00:00+01:00").status_code == 422      # Tuesday: not listed, closed
    # Monday 2030-07-01 is CEST (UTC+2): 09:00 local is 07:00 UTC, 08:00 local is 06:00 UTC
    assert attempt("2030-07-01T07:00:00Z").status_code == 202
    assert attempt("2030-07-01T06:00:00Z").status_code == 422
    # "24:00" closes at midnight: Saturday 23:30 for 30 minutes fits, 60 minutes does not
    assert attempt("2030-01-12T23:30:00+01:00").status_code == 202
    assert attempt("2030-01-12T22:30:00+01:00", 120).status_code == 422


def test_no_business_hours_means_always_open(tenant, customer_id):
    response = tenant.post("/api/v1/appointments", json=booking(customer_id, starts_at="2030-01-06T03:00:00Z"))
    assert response.status_code == 202


def test_malformed_business_hours_close_that_day_only(tenant, customer_id):
    set_company(tenant.company["id"], business_hours={"mon": [["9am", "5pm"]], "tue": [["09:00", "17:00"]]})
    monday = tenant.post("/api/v1/appointments", json=booking(customer_id, starts_at="2030-01-07T10:00:00Z"))
    assert monday.status_code == 422 and "starts_at" in errors_of(monday)
    tuesday = tenant.post("/api/v1/appointments", json=booking(customer_id, starts_at="2030-01-08T10:00:00Z"))
    assert tuesday.status_code == 202


def test_a_stored_unknown_timezone_falls_back_to_utc(tenant, customer_id):
    set_company(tenant.company["id"], timezone="Atlantis/Capital")
    calendar = tenant.get("/api/v1/appointments?from=2030-01-07&to=2030-01-07")
    assert calendar.status_code == 200 and calendar.get_json()["timezone"] == "UTC"
    booked = tenant.post("/api/v1/appointments", json=booking(customer_id))
    assert booked.status_code == 202 and booked.get_json()["timezone"] == "UTC"


# --- overlaps ------------------------------------------------------------------------

@BOTH_DATABASES
def test_overlapping_bookings_are_409_and_cancelled_ones_free_the_slot(tenant, customer_id):
    first = tenant.post("/api/v1/appointments", json=booking(customer_id, duration_minutes=60))
    assert first.status_code == 202
    clash = tenant.post("/api/v1/appointments", json=booking(customer_id, starts_at="2030-01-07T10:30:00Z"))
    assert clash.status_code == 409
    assert clash.get_json()["conflicting_appointment_id"] == first.get_json()["id"]
    inside = tenant.post("/api/v1/appointments", json=booking(customer_id, starts_at="2030-01-07T09:30:00Z",
                                                              duration_minutes=120))
    assert inside.status_code == 409
    adjacent = tenant.post("/api/v1/appointments", json=booking(customer_id, starts_at="2030-01-07T11:00:00Z"))
    assert adjacent.status_code == 202

    cancel = tenant.patch(f"/api/v1/appointments/{first.get_json()['id']}/status", json={"status": "cancelled"})
    assert cancel.status_code == 200
    again = tenant.post("/api/v1/appointments", json=booking(customer_id, starts_at="2030-01-07T10:30:00Z"))
    assert again.status_code == 202


def test_other_companies_appointments_do_not_block_a_slot(tenant, tenant_factory, customer_id):
    other = tenant_factory()
    make_appointment(other.company["id"], make_customer(other.company["id"]),
                     dt.datetime(2030, 1, 7, 10, tzinfo=UTC), minutes=60)
    assert tenant.post("/api/v1/appointments", json=booking(customer_id)).status_code == 202


# --- idempotency ---------------------------------------------------------------------

@BOTH_DATABASES
def test_a_retried_booking_returns_the_original(tenant, customer_id):
    headers = {"Idempotency-Key": "booking-42"}
    first = tenant.post("/api/v1/appointments", json=booking(customer_id), headers=headers)
    assert first.status_code == 202 and "Idempotent-Replayed" not in first.headers
    retry = tenant.post("/api/v1/appointments", json=booking(customer_id), headers=headers)
    assert retry.status_code == 202
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.get_json() == first.get_json()
    # the same booking spelled with ends_at instead of a duration is the same request
    spelled = tenant.post("/api/v1/appointments", headers=headers, json=booking(
        customer_id, starts_at="2030-01-07T11:00:00+01:00", ends_at="2030-01-07T10:30:00Z"))
    assert spelled.status_code == 202 and spelled.get_json()["id"] == first.get_json()["id"]

    changed = tenant.post("/api/v1/appointments", json=booking(customer_id, title="Another"), headers=headers)
    assert changed.status_code == 422
    assert "Idempotency-Key" in errors_of(changed)
    assert Session.scalar(select(func.count(Appointment.id))) == 1
    assert Session.scalar(select(func.count(OutboxMessage.id))) == 1


def test_idempotency_keys_belong_to_one_company(tenant, tenant_factory, customer_id):
    other = tenant_factory()
    other_customer = make_customer(other.company["id"])
    headers = {"Idempotency-Key": "shared-key"}
    mine = tenant.post("/api/v1/appointments", json=booking(customer_id), headers=headers)
    theirs = other.post("/api/v1/appointments", json=booking(other_customer), headers=headers)
    assert mine.status_code == theirs.status_code == 202
    assert mine.get_json()["id"] != theirs.get_json()["id"]


def test_an_invalid_idempotency_key_is_422(tenant, customer_id):
    response = tenant.post("/api/v1/appointments", json=booking(customer_id),
                           headers={"Idempotency-Key": "x" * 256})
    assert response.status_code == 422 and "Idempotency-Key" in errors_of(response)


def post_concurrently(app, token, bodies_and_headers):
    """Send the requests from one thread each, released together; returns the responses."""
    barrier = threading.Barrier(len(bodies_and_headers))
    results = [None] * len(bodies_and_headers)

    def send(index, body, headers):
        client = app.test_client()
        barrier.wait()
        response = client.post("/api/v1/appointments", json=body,
                               headers={"Authorization": f"Bearer {token}", **headers})
        results[index] = (response.status_code, response.get_json(), dict(response.headers))

    threads = [threading.Thread(target=send, args=(i, body, headers))
               for i, (body, headers) in enumerate(bodies_and_headers)]
    Session.rollback()  # the test thread holds no transaction while the others write
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@BOTH_DATABASES
def test_concurrent_retries_create_one_appointment(app, tenant, customer_id):
    results = post_concurrently(app, tenant.token,
                                [(booking(customer_id), {"Idempotency-Key": "race-1"})] * 6)
    assert all(status == 202 for status, _, _ in results), [(s, b.get("detail") or b["id"]) for s, b, _ in results]
    assert len({body["id"] for _, body, _ in results}) == 1
    assert sum(1 for _, _, headers in results if "Idempotent-Replayed" not in headers) == 1
    Session.rollback()
    assert Session.scalar(select(func.count(Appointment.id))) == 1
    assert Session.scalar(select(func.count(OutboxMessage.id))) == 1


@BOTH_DATABASES
def test_concurrent_bookings_of_one_slot_book_it_once(app, tenant, customer_id):
    results = post_concurrently(app, tenant.token,
                                [(booking(customer_id, title=f"Booking {i}"), {}) for i in range(5)])
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [202, 409, 409, 409, 409], [(s, b.get("detail") or b["id"]) for s, b, _ in results]
    Session.rollback()
    assert Session.scalar(select(func.count(Appointment.id))) == 1


# --- calendar ------------------------------------------------------------------------

@BOTH_DATABASES
def test_calendar_returns_the_range_in_the_requested_timezone(tenant, customer_id):
    company_id = tenant.company["id"]
    set_company(company_id, timezone="America/New_York")
    # 2030-03-10 is the US spring-forward day; local dates are New York dates
    before = make_appointment(company_id, customer_id, dt.datetime(2030, 3, 10, 4, 59, tzinfo=UTC))  # 3/9 23:59
    first = make_appointment(company_id, customer_id, dt.datetime(2030, 3, 10, 5, 0, tzinfo=UTC))    # 3/10 00:00
    last = make_appointment(company_id, customer_id, dt.datetime(2030, 3, 12, 3, 59, tzinfo=UTC))    # 3/11 23:59
    make_appointment(company_id, customer_id, dt.datetime(2030, 3, 12, 4, 0, tzinfo=UTC))            # 3/12 00:00

    response = tenant.get("/api/v1/appointments?from=2030-03-10&to=2030-03-11")
    assert response.status_code == 200
    body = response.get_json()
    assert body["timezone"] == "America/New_York"
    assert [item["id"] for item in body["data"]] == [first, last]
    assert body["data"][0]["starts_at"] == "2030-03-10T00:00:00-05:00"
    assert body["data"][1]["starts_at"] == "2030-03-11T23:59:00-04:00"
    assert body["next_cursor"] is None

    in_utc = tenant.get("/api/v1/appointments?from=2030-03-10&to=2030-03-10&tz=UTC").get_json()
    assert [item["id"] for item in in_utc["data"]] == [before, first]
    assert in_utc["data"][0]["starts_at"] == "2030-03-10T04:59:00+00:00"

    tokyo = tenant.get(f"/api/v1/appointments/{first}?tz=Asia/Tokyo").get_json()
    assert tokyo["starts_at"] == "2030-03-10T14:00:00+09:00" and tokyo["timezone"] == "Asia/Tokyo"


def test_calendar_filters_by_status_and_customer(tenant, customer_id):
    company_id = tenant.company["id"]
    other_customer = make_customer(company_id, "Grace Hopper")
    start = dt.datetime(2030, 1, 7, 9, tzinfo=UTC)
    pending = make_appointment(company_id, customer_id, start)
    confirmed = make_appointment(company_id, customer_id, start + dt.timedelta(hours=1), status="confirmed")
    graces = make_appointment(company_id, other_customer, start + dt.timedelta(hours=2))
    url = "/api/v1/appointments?from=2030-01-07&to=2030-01-07&tz=UTC"
    assert [a["id"] for a in tenant.get(url + "&status=confirmed").get_json()["data"]] == [confirmed]
    assert [a["id"] for a in tenant.get(url + "&status=pending").get_json()["data"]] == [pending, graces]
    assert [a["id"] for a in tenant.get(url + f"&customer_id={other_customer}").get_json()["data"]] == [graces]


def test_calendar_pagination_boundaries(tenant, customer_id):
    company_id = tenant.company["id"]
    start = dt.datetime(2030, 1, 7, 9, tzinfo=UTC)
    ids = [make_appointment(company_id, customer_id, start + dt.timedelta(hours=i // 2)) for i in range(5)]
    url = "/api/v1/appointments?from=2030-01-07&to=2030-01-08&tz=UTC"

    exact = tenant.get(url + "&limit=5").get_json()
    assert [a["id"] for a in exact["data"]] == ids and exact["next_cursor"] is None

    seen, cursor, pages = [], None, 0
    while True:
        response = tenant.get(url + "&limit=2" + (f"&cursor={cursor}" if cursor else ""))
        assert response.status_code == 200
        page = response.get_json()
        seen += [a["id"] for a in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids and pages == 3  # equal start times are ordered by id, none skipped

    assert tenant.get(url + "&limit=4").get_json()["next_cursor"] is not None
    for bad, field in (("&limit=101", "limit"), ("&limit=0", "limit"), ("&cursor=!!!", "cursor")):
        response = tenant.get(url + bad)
        assert response.status_code == 422 and field in errors_of(response)


def test_calendar_defaults_to_a_week_from_today(tenant, customer_id):
    now = TEST_NOW
    soon = make_appointment(tenant.company["id"], customer_id, now + dt.timedelta(days=2))
    make_appointment(tenant.company["id"], customer_id, now + dt.timedelta(days=9))
    body = tenant.get("/api/v1/appointments").get_json()
    assert body["from"] == now.date().isoformat()
    assert body["to"] == (now.date() + dt.timedelta(days=6)).isoformat()
    assert [a["id"] for a in body["data"]] == [soon]


@pytest.mark.parametrize("query, field", [
    ("from=2030-02-30&to=2030-03-01", "from"),
    ("from=2030-01-01&to=yesterday", "to"),
    ("from=2030-01-01&to=2031-01-02", "to"),
    ("from=2030-02-01&to=2030-01-01", "to"),
    ("from=2030-01-01&to=2030-01-02&tz=Mars/Olympus", "tz"),
    ("status=booked", "status"),
    ("customer_id=abc", "customer_id"),
])
def test_calendar_bad_input_is_422_naming_the_field(tenant, query, field):
    response = tenant.get(f"/api/v1/appointments?{query}")
    assert response.status_code == 422
    assert field in errors_of(response)


def test_a_full_year_is_accepted(tenant):
    assert tenant.get("/api/v1/appointments?from=2032-01-01&to=2032-12-31").status_code == 200


def test_calendar_queries_do_not_grow_with_the_rows(app, tenant, customer_id):
    company_id = tenant.company["id"]
    start = dt.datetime(2030, 1, 7, 9, tzinfo=UTC)
    make_appointment(company_id, customer_id, start)
    url = "/api/v1/appointments?from=2030-01-01&to=2030-01-31&limit=100"
    tenant.get(url, headers={"Cache-Control": "no-cache"})  # warms the principal cache
    one = count_queries(app, lambda: tenant.get(url, headers={"Cache-Control": "no-cache"}))
    for i in range(1, 40):
        make_appointment(company_id, customer_id, start + dt.timedelta(hours=i))
    other_url = url.replace("limit=100", "limit=99")
    many = count_queries(app, lambda: tenant.get(other_url, headers={"Cache-Control": "no-cache"}))
    assert one[1].get_json()["data"] and len(many[1].get_json()["data"]) == 40
    assert many[0] == one[0]


def count_queries(app, send):
    with counted_queries(app) as statements:
        response = send()
    assert response.status_code == 200, response.get_json()
    return len(statements), response


# --- tenant scoping and permissions ---------------------------------------------------

@BOTH_DATABASES
def test_another_companys_appointment_is_404(tenant, tenant_factory):
    other = tenant_factory()
    theirs = make_appointment(other.company["id"], make_customer(other.company["id"]),
                              dt.datetime(2030, 1, 7, 9, tzinfo=UTC))
    assert tenant.get(f"/api/v1/appointments/{theirs}").status_code == 404
    response = tenant.patch(f"/api/v1/appointments/{theirs}/status", json={"status": "confirmed"})
    assert response.status_code == 404
    assert Session.get(Appointment, theirs).status == "pending"
    calendar = tenant.get("/api/v1/appointments?from=2030-01-01&to=2030-01-31").get_json()
    assert calendar["data"] == []


def test_viewers_read_but_do_not_book(tenant, customer_id):
    viewer = add_member(tenant, "viewer")
    appointment = make_appointment(tenant.company["id"], customer_id, dt.datetime(2030, 1, 7, 9, tzinfo=UTC))
    assert viewer.get(f"/api/v1/appointments/{appointment}").status_code == 200
    assert viewer.post("/api/v1/appointments", json=booking(customer_id)).status_code == 403
    assert viewer.patch(f"/api/v1/appointments/{appointment}/status",
                        json={"status": "confirmed"}).status_code == 403
    member = add_member(tenant, "member")
    assert member.post("/api/v1/appointments", json=booking(customer_id)).status_code == 202


def test_anonymous_requests_are_401(client):
    assert client.get("/api/v1/appointments").status_code == 401


# --- status lifecycle ----------------------------------------------------------------

@BOTH_DATABASES
def test_allowed_status_transitions(app, tenant, customer_id):
    heard = []
    events.subscribe(app, heard.append)
    appointment = make_appointment(tenant.company["id"], customer_id, dt.datetime(2030, 1, 7, 9, tzinfo=UTC))
    url = f"/api/v1/appointments/{appointment}/status"
    confirmed = tenant.patch(url, json={"status": "confirmed"})
    assert confirmed.status_code == 200 and confirmed.get_json()["status"] == "confirmed"
    completed = tenant.patch(url, json={"status": "completed"})
    assert completed.status_code == 200 and completed.get_json()["status"] == "completed"
    assert [e.name for e in heard] == ["appointments.updated", "appointments.updated"]
    changes = Session.scalars(select(AuditLog).where(AuditLog.action == "appointment.status_changed")
                              .order_by(AuditLog.id)).all()
    assert [(a.details["from"], a.details["to"]) for a in changes] == [("pending", "confirmed"),
                                                                       ("confirmed", "completed")]

    refused = tenant.patch(url, json={"status": "cancelled"})
    assert refused.status_code == 409
    problem = refused.get_json()
    assert problem["current_status"] == "completed" and problem["requested_status"] == "cancelled"
    assert Session.get(Appointment, appointment).status == "completed"


@pytest.mark.parametrize("start, path, refused", [
    ("pending", [], "completed"),
    ("pending", [], "no_show"),
    ("pending", [], "pending"),
    ("pending", ["cancelled"], "confirmed"),
    ("confirmed", ["no_show"], "completed"),
    ("confirmed", [], "pending"),
])
def test_refused_status_transitions_are_409(tenant, customer_id, start, path, refused):
    appointment = make_appointment(tenant.company["id"], customer_id, dt.datetime(2030, 1, 7, 9, tzinfo=UTC),
                                   status=start)
    url = f"/api/v1/appointments/{appointment}/status"
    for status in path:
        assert tenant.patch(url, json={"status": status}).status_code == 200
    response = tenant.patch(url, json={"status": refused})
    assert response.status_code == 409
    assert response.get_json()["requested_status"] == refused
    assert response.get_json()["current_status"] == (path[-1] if path else start)


def test_unknown_status_is_422(tenant, customer_id):
    appointment = make_appointment(tenant.company["id"], customer_id, dt.datetime(2030, 1, 7, 9, tzinfo=UTC))
    response = tenant.patch(f"/api/v1/appointments/{appointment}/status", json={"status": "done"})
    assert response.status_code == 422 and "status" in errors_of(response)
    assert tenant.patch("/api/v1/appointments/999999/status", json={"status": "confirmed"}).status_code == 404


def test_appointments_are_in_the_openapi_document(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/appointments"])
    assert "patch" in paths["/api/v1/appointments/{appointment_id}/status"]
