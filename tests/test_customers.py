"""Customers service through HTTP: create with duplicate detection, search, profile, update, timeline."""
import datetime as dt

import pytest
from sqlalchemy import select

from gateway_app import events
from gateway_app.db import Session
from gateway_app.models import AuditLog
from tests.conftest import TEST_NOW, insert_appointment, insert_call, user_with_role
from tests.support.queries import counted_queries
from tests.support.races import lookup_that_loses_the_race
from tests.support.reads import BOTH, get, ids

UTC = dt.timezone.utc
BASE = dt.datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def create(tenant, query_string=None, **body):
    return tenant.post("/api/v1/customers", json=body, query_string=query_string or {})


@pytest.fixture
def heard(app):
    """Domain events delivered (after commit) during the test."""
    received = []
    events.subscribe(app, received.append)
    return received


@BOTH
def test_create_answers_201_with_normalised_contacts_audit_and_event(tenant, heard):
    response = create(tenant, name="  Jane Roe ", phone="(555) 123-4567", email="Jane.Roe@Example.COM",
                      notes="Prefers mornings")

    assert response.status_code == 201
    body = response.get_json()
    assert isinstance(body["id"], int)
    assert (body["name"], body["phone"], body["email"]) == ("Jane Roe", "+15551234567", "jane.roe@example.com")
    assert [(e.name, e.company_id, dict(e.data)) for e in heard] == [
        ("customers.updated", tenant.company["id"], {"customer_id": body["id"]})]
    entry = Session.scalars(select(AuditLog).where(AuditLog.action == "customer.created")).one()
    assert (entry.target_type, entry.target_id, entry.company_id) == ("customer", str(body["id"]),
                                                                      tenant.company["id"])
    assert get(tenant, f"/api/v1/customers/{body['id']}").get_json()["phone"] == "+15551234567"


def test_region_reads_numbers_without_a_country_code(tenant):
    london = create(tenant, {"region": "GB"}, name="London", phone="020 7946 0958")
    assert london.status_code == 201 and london.get_json()["phone"] == "+442079460958"
    bad_region = create(tenant, {"region": "XX"}, name="Nowhere", phone="020 7946 0958")
    assert bad_region.status_code == 422 and "region" in bad_region.get_json()["errors"]


@BOTH
def test_duplicate_phone_or_email_is_409_naming_the_existing_customer(tenant, tenant_factory, heard):
    existing = create(tenant, name="Jane", phone="+1 555 123 4567", email="jane@example.com").get_json()

    same_phone = create(tenant, name="Other Jane", phone="555.123.4567")
    same_email = create(tenant, name="Jane again", email="JANE@example.com")

    for response, field in ((same_phone, "phone"), (same_email, "email")):
        assert response.status_code == 409
        assert response.mimetype == "application/problem+json"
        problem = response.get_json()
        assert problem["existing_customer_id"] == existing["id"]
        assert problem["field"] == field
    assert len(heard) == 1  # the refused creations emitted nothing
    # another company may have a customer with the same number
    assert create(tenant_factory(), name="Jane", phone="+15551234567").status_code == 201


@pytest.mark.parametrize("body, field", [
    ({"name": "Jane", "phone": "12"}, "phone"),
    ({"name": "Jane", "phone": "call me maybe"}, "phone"),
    ({"name": "Jane", "email": "not-an-email"}, "email"),
    ({"phone": "+15551234567"}, "name"),
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "Jane", "favourite_colour": "blue"}, "favourite_colour"),
])
def test_bad_customer_is_422_naming_the_field(tenant, body, field):
    response = tenant.post("/api/v1/customers", json=body)
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["errors"]


@BOTH
def test_search_by_name_phone_and_email(tenant, tenant_factory):
    jane = create(tenant, name="Jane Roe", phone="+15551234567", email="jane@roe.example").get_json()
    john = create(tenant, name="John Smith", phone="+15559876543", email="js@percent.example").get_json()
    create(tenant_factory(), name="Jane Elsewhere", phone="+15551234567")

    assert ids(get(tenant, "/api/v1/customers", q="jane")) == [jane["id"]]
    assert ids(get(tenant, "/api/v1/customers", q="SMITH")) == [john["id"]]
    assert ids(get(tenant, "/api/v1/customers", q="hN sMi")) == [john["id"]]   # any letter case, either side
    assert ids(get(tenant, "/api/v1/customers", q="(555) 123-4567")) == [jane["id"]]
    assert ids(get(tenant, "/api/v1/customers", q="9876")) == [john["id"]]
    assert ids(get(tenant, "/api/v1/customers", q="jane@roe")) == [jane["id"]]
    assert ids(get(tenant, "/api/v1/customers", q="%")) == []
    assert ids(get(tenant, "/api/v1/customers", q="j_ne")) == []          # _ is literal, not a wildcard
    assert ids(get(tenant, "/api/v1/customers", q="/")) == []             # nor the pattern's escape character
    assert ids(get(tenant, "/api/v1/customers")) == [john["id"], jane["id"]]


@BOTH
def test_search_ignores_the_case_of_letters_in_the_query_and_in_the_stored_text(tenant):
    upper = create(tenant, name="MARIA GONZALEZ", email="MG@EXAMPLE.COM").get_json()
    mixed = create(tenant, name="Zoë McKenzie", email="zoe@Mixed.Example").get_json()

    assert ids(get(tenant, "/api/v1/customers", q="gonzalez")) == [upper["id"]]
    assert ids(get(tenant, "/api/v1/customers", q="mg@example")) == [upper["id"]]
    assert ids(get(tenant, "/api/v1/customers", q="mcKENZIE")) == [mixed["id"]]
    assert ids(get(tenant, "/api/v1/customers", q="@MIXED.example")) == [mixed["id"]]
    assert ids(get(tenant, "/api/v1/customers", q="zoë")) == [mixed["id"]]   # beyond ASCII, as stored


@BOTH
def test_search_pages_and_validates(tenant):
    made = [create(tenant, name=f"Customer {n}").get_json()["id"] for n in range(3)]
    first = get(tenant, "/api/v1/customers", limit=2).get_json()
    second = get(tenant, "/api/v1/customers", limit=2, cursor=first["next_cursor"]).get_json()
    assert [c["id"] for c in first["data"] + second["data"]] == sorted(made, reverse=True)
    assert second["next_cursor"] is None
    for params, field in (({"limit": 500}, "limit"), ({"q": "x" * 201}, "q"), ({"region": "ZZ"}, "region")):
        response = get(tenant, "/api/v1/customers", **params)
        assert response.status_code == 422 and field in response.get_json()["errors"]


def test_profile_has_call_and_appointment_figures(tenant, tenant_factory):
    company_id = tenant.company["id"]
    customer = create(tenant, name="Jane").get_json()
    insert_call(company_id, BASE, customer_id=customer["id"], duration_seconds=120)
    insert_call(company_id, BASE - dt.timedelta(days=1), customer_id=customer["id"], duration_seconds=30)
    insert_call(company_id, BASE + dt.timedelta(days=1))  # someone else's call
    soon = TEST_NOW + dt.timedelta(days=3)
    insert_appointment(company_id, soon, customer_id=customer["id"])
    insert_appointment(company_id, soon - dt.timedelta(days=1), customer_id=customer["id"], status="cancelled")
    insert_appointment(company_id, BASE - dt.timedelta(days=30), customer_id=customer["id"])

    profile = get(tenant, f"/api/v1/customers/{customer['id']}").get_json()

    assert profile["calls_count"] == 2
    assert profile["total_call_seconds"] == 150
    assert profile["last_call_at"] == "2026-03-10T12:00:00+00:00"
    assert profile["appointments_count"] == 3
    assert profile["next_appointment_at"] == soon.isoformat()
    assert get(tenant_factory(), f"/api/v1/customers/{customer['id']}").status_code == 404
    assert get(tenant, "/api/v1/customers/999999").status_code == 404


@BOTH
def test_patch_updates_audits_and_emits(tenant, tenant_factory, heard):
    jane = create(tenant, name="Jane", phone="+15551234567", email="jane@example.com").get_json()
    other = create(tenant, name="Other", phone="+15550000001").get_json()
    heard.clear()

    response = tenant.patch(f"/api/v1/customers/{jane['id']}", json={
        "phone": "555-222-3333", "email": None, "notes": "VIP"})

    assert response.status_code == 200
    body = response.get_json()
    assert (body["phone"], body["email"], body["notes"], body["name"]) == ("+15552223333", None, "VIP", "Jane")
    assert [e.name for e in heard] == ["customers.updated"]
    entry = Session.scalars(select(AuditLog).where(AuditLog.action == "customer.updated")).one()
    assert entry.details == {"fields": ["email", "notes", "phone"]}

    clash = tenant.patch(f"/api/v1/customers/{jane['id']}", json={"phone": "+1 555 000 0001"})
    assert clash.status_code == 409 and clash.get_json()["existing_customer_id"] == other["id"]
    keeps_own = tenant.patch(f"/api/v1/customers/{jane['id']}", json={"phone": "+15552223333"})
    assert keeps_own.status_code == 200

    assert tenant.patch(f"/api/v1/customers/{jane['id']}", json={"name": None}).status_code == 422
    bad_phone = tenant.patch(f"/api/v1/customers/{jane['id']}", json={"phone": "0"})
    assert bad_phone.status_code == 422 and "phone" in bad_phone.get_json()["errors"]
    assert tenant_factory().patch(f"/api/v1/customers/{jane['id']}", json={"notes": "x"}).status_code == 404


def test_viewers_read_but_cannot_write(tenant):
    customer = create(tenant, name="Jane").get_json()
    viewer = user_with_role(tenant, "viewer")
    assert get(viewer, f"/api/v1/customers/{customer['id']}").status_code == 200
    assert create(viewer, name="Nope").status_code == 403
    assert viewer.patch(f"/api/v1/customers/{customer['id']}", json={"notes": "x"}).status_code == 403
    member = user_with_role(tenant, "member")
    assert create(member, name="Member-made").status_code == 201


@BOTH
def test_timeline_merges_calls_and_appointments_newest_first(app, tenant, tenant_factory):
    company_id = tenant.company["id"]
    customer = create(tenant, name="Jane").get_json()["id"]
    someone_else = create(tenant, name="John").get_json()["id"]
    first_call = insert_call(company_id, BASE - dt.timedelta(days=2), customer_id=customer)
    booking = insert_call(company_id, BASE, customer_id=customer)
    same_time = insert_appointment(company_id, BASE, customer_id=customer, call_id=booking.id)
    upcoming = insert_appointment(company_id, BASE + dt.timedelta(days=5), customer_id=customer)
    insert_call(company_id, BASE, customer_id=someone_else)
    insert_appointment(company_id, BASE, customer_id=None)

    with counted_queries(app) as statements:
        first = get(tenant, f"/api/v1/customers/{customer}/timeline", limit=2)
    second = get(tenant, f"/api/v1/customers/{customer}/timeline", limit=2,
                 cursor=first.get_json()["next_cursor"])

    items = first.get_json()["data"] + second.get_json()["data"]
    assert [(i["type"], i["id"]) for i in items] == [
        ("appointment", upcoming.id), ("call", booking.id),      # tie at BASE: by kind, then id
        ("appointment", same_time.id), ("call", first_call.id)]
    assert second.get_json()["next_cursor"] is None
    assert items[0]["appointment"]["title"] == "Appointment" and items[0]["call"] is None
    assert items[1]["call"]["status"] == "answered" and items[1]["at"] == "2026-03-10T12:00:00+00:00"
    assert len(statements) <= 5  # principal, customer, feed page, calls, appointments
    assert get(tenant_factory(), f"/api/v1/customers/{customer}/timeline").status_code == 404
    bad = get(tenant, f"/api/v1/customers/{customer}/timeline", cursor="WyJ4IiwieSJd")
    assert bad.status_code == 422 and "cursor" in bad.get_json()["errors"]



def committed_behind_the_duplicate_check(monkeypatch, app, company_id, **contacts):
    """The request's duplicate check finds nothing while another connection commits a
    customer with ``contacts``: two simultaneous writes of one phone or e-mail."""
    import gateway_app.services.customers as service
    return lookup_that_loses_the_race(monkeypatch, service, "find_duplicate", app, company_id,
                                      **contacts)

@BOTH
@pytest.mark.parametrize("field, contacts", [("phone", {"phone": "+15551234567"}),
                                             ("email", {"email": "jane@example.com"})])
def test_a_create_losing_the_race_for_a_phone_or_email_is_409_not_500(
        app, tenant, heard, monkeypatch, field, contacts):
    winner = committed_behind_the_duplicate_check(monkeypatch, app, tenant.company["id"], **contacts)

    response = create(tenant, name="Jane", phone="(555) 123-4567", email="Jane@Example.com")

    assert response.status_code == 409, response.get_json()
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert (problem["field"], problem["existing_customer_id"]) == (field, winner[0])
    assert heard == []  # the refused creation's event was rolled back with it
    assert not Session.scalars(select(AuditLog).where(AuditLog.action == "customer.created")).all()
    assert ids(get(tenant, "/api/v1/customers")) == [winner[0]]


@BOTH
def test_an_update_losing_the_race_for_a_phone_is_409_and_changes_nothing(
        app, tenant, heard, monkeypatch):
    jane = create(tenant, name="Jane", phone="+15550000001", notes="old").get_json()
    heard.clear()
    winner = committed_behind_the_duplicate_check(monkeypatch, app, tenant.company["id"],
                                                  phone="+15552223333")

    response = tenant.patch(f"/api/v1/customers/{jane['id']}",
                            json={"phone": "555-222-3333", "notes": "new"})

    assert response.status_code == 409, response.get_json()
    assert (response.get_json()["field"], response.get_json()["existing_customer_id"]) == (
        "phone", winner[0])
    assert heard == []
    kept = get(tenant, f"/api/v1/customers/{jane['id']}").get_json()
    assert (kept["phone"], kept["notes"]) == ("+15550000001", "old")


@BOTH
def test_null_phones_and_emails_never_collide(tenant):
    for name in ("No contact 1", "No contact 2"):
        assert create(tenant, name=name, phone=None, email=None).status_code == 201
    assert len(ids(get(tenant, "/api/v1/customers"))) == 2


@BOTH
def test_a_phone_and_an_email_are_checked_in_one_statement_the_phone_named_first(app, tenant, heard):
    by_email = create(tenant, name="Email", email="jane@example.com").get_json()["id"]
    by_phone = create(tenant, name="Phone", phone="+15551234567").get_json()["id"]
    heard.clear()

    both = create(tenant, name="Jane", phone="(555) 123-4567", email="Jane@Example.com")
    with counted_queries(app) as statements:
        email_only = create(tenant, name="Jane", phone="+15559876543", email="jane@example.com")
        new = create(tenant, name="New", phone="+15550001111", email="new@example.com")
    changed = tenant.patch(f"/api/v1/customers/{by_email}", json={"phone": "+15551234567"})
    kept = tenant.patch(f"/api/v1/customers/{by_phone}",
                        json={"phone": "+15551234567", "email": "phone@example.com", "notes": "n"})

    assert (both.status_code, both.get_json()["field"], both.get_json()["existing_customer_id"]) == (
        409, "phone", by_phone)
    assert len([s for s in statements if "FROM customers" in s]) == 2, statements  # one per create
    assert (email_only.status_code, email_only.get_json()["field"],
            email_only.get_json()["existing_customer_id"]) == (409, "email", by_email)
    assert (changed.status_code, changed.get_json()["existing_customer_id"]) == (409, by_phone)
    assert kept.status_code == 200 and kept.get_json()["email"] == "phone@example.com"
    assert new.status_code == 201
    assert [e.name for e in heard] == ["customers.updated", "customers.updated"]


@BOTH
def test_an_email_only_duplicate_of_a_customer_without_a_phone_names_the_email(tenant):
    existing = create(tenant, name="No phone", email="nophone@example.com").get_json()["id"]
    again = create(tenant, name="No phone again", email="NoPhone@example.com")
    assert (again.status_code, again.get_json()["field"], again.get_json()["existing_customer_id"]) == (
        409, "email", existing)


def without_a_session(tenant):
    """As a request in production whose principal is cached: no session yet, so a write
    commits on a connection of its own (the test's app context otherwise keeps one)."""
    assert tenant.get("/api/v1/customers").status_code == 200   # the principal is cached now
    Session.remove()


def audit_actions(app):
    """What the audit log holds, committed (read on a connection of the test's own)."""
    with app.extensions["gateway_engine"].connect() as connection:
        return sorted(connection.execute(select(AuditLog.action, AuditLog.target_id)).all())


@BOTH
def test_writes_in_a_request_without_a_session_commit_on_their_own_connection(app, tenant, heard,
                                                                             monkeypatch):
    without_a_session(tenant)
    jane = create(tenant, name="Jane", phone="(555) 123-4567")
    assert jane.status_code == 201 and not Session.registry.has()   # no session was made
    jane = jane.get_json()
    assert [(e.name, dict(e.data)) for e in heard] == [("customers.updated", {"customer_id": jane["id"]})]

    refused = create(tenant, name="Jane again", phone="+15551234567")
    assert (refused.status_code, refused.get_json()["existing_customer_id"]) == (409, jane["id"])
    patched = tenant.patch(f"/api/v1/customers/{jane['id']}", json={"notes": "VIP"})
    assert patched.status_code == 200 and patched.get_json()["notes"] == "VIP"
    assert tenant.patch("/api/v1/customers/999999", json={"notes": "x"}).status_code == 404
    assert not Session.registry.has()
    assert len(heard) == 2   # the refused and the missing wrote nothing, said nothing

    winner = committed_behind_the_duplicate_check(monkeypatch, app, tenant.company["id"],
                                                  email="won@example.com")
    lost = tenant.patch(f"/api/v1/customers/{jane['id']}", json={"email": "won@example.com", "notes": "lost"})
    assert (lost.status_code, lost.get_json()["existing_customer_id"]) == (409, winner[0])
    assert len(heard) == 2
    assert audit_actions(app) == [("customer.created", str(jane["id"])), ("customer.updated", str(jane["id"]))]
    kept = get(tenant, f"/api/v1/customers/{jane['id']}").get_json()
    assert (kept["notes"], kept["email"]) == ("VIP", None)


def duplicate_check(statement):
    return "FROM customers" in statement and "customers.phone = " in statement


@BOTH
def test_a_patch_checks_for_duplicates_only_the_phone_or_email_it_changes(app, tenant):
    jane = create(tenant, name="Jane", phone="+15551234567", email="jane@example.com").get_json()
    other = create(tenant, name="Other", email="other@example.com").get_json()
    path = f"/api/v1/customers/{jane['id']}"

    with counted_queries(app) as statements:
        notes = tenant.patch(path, json={"notes": "VIP", "phone": "(555) 123-4567"})   # the same phone
    assert notes.status_code == 200 and notes.get_json()["notes"] == "VIP"
    assert not [s for s in statements if duplicate_check(s)], statements

    with counted_queries(app) as statements:
        clash = tenant.patch(path, json={"email": "Other@Example.com", "notes": "x"})
    assert (clash.status_code, clash.get_json()["field"], clash.get_json()["existing_customer_id"]) == (
        409, "email", other["id"])
    assert len([s for s in statements if duplicate_check(s)]) == 1, statements
    assert get(tenant, path).get_json()["notes"] == "VIP"
