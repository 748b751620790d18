"""Development email: without a SendGrid key (outside production) emails go to a local sink
listed by GET /gateway/admin/dev-mail and printed in the log, so every email flow can be
finished locally; outbox log lines carry the message id, kind and reason."""
import datetime as dt
import json
import logging

import pytest
import responses

from gateway_app import outbox
from gateway_app.db import Session
from gateway_app.logs import ExtraFieldsFormatter
from gateway_app.models import Company, Customer, OutboxMessage
from gateway_app.notifications import queue_email
from tests.conftest import PASSWORD, TEST_NOW, build_app, sign_up

ADMIN = {"Authorization": "Bearer admin-token-for-tests"}
DEV_MAIL = "/gateway/admin/dev-mail"
CAL = "https://api.cal.com/v2"
START = TEST_NOW + dt.timedelta(days=1, hours=3)   # a Tuesday, 15:00 UTC


@pytest.fixture
def make_app(database_url, redis_url, redis_client, built_apps):
    return lambda **config: built_apps(build_app(database_url, redis_url, **config))


def kept_lines(caplog):
    return [record for record in caplog.records if record.name == "gateway.dev_mail"]


def test_an_invitation_can_be_accepted_from_the_sink(client, tenant, caplog):
    with caplog.at_level(logging.INFO, logger="gateway.dev_mail"):
        invited = tenant.post("/api/v1/team/members", json={"email": "new.hire@example.com",
                                                            "name": "New Hire", "role": "member"})
    assert invited.status_code == 201
    listing = client.get(DEV_MAIL, headers=ADMIN)
    assert listing.status_code == 200
    body = listing.get_json()
    assert body["sink_enabled"] is True and body["next_cursor"] is None
    [mail] = body["data"]
    assert mail["to"] == ["new.hire@example.com"] and mail["category"] == "team_invite"
    assert mail["company_id"] == tenant.company["id"] and mail["message_id"] == f"dev-mail-{mail['id']}"
    token = mail["text"].rsplit(" ", 1)[-1]
    # the log has the whole email, token included, with the message's id and kind
    [line] = kept_lines(caplog)
    assert line.outbox_id == mail["id"] and line.kind == "sendgrid.email" and token in line.text
    rendered = ExtraFieldsFormatter().format(line)
    assert token in rendered and f'"outbox_id":{mail["id"]}' in rendered
    # ... and the flow finishes locally: accept, log in
    accepted = client.post("/api/v1/auth/accept-invite", json={"token": token, "password": PASSWORD})
    assert accepted.status_code == 200, accepted.get_json()
    assert client.post("/api/v1/auth/token", json={"email": "new.hire@example.com",
                                                   "password": PASSWORD}).status_code == 200
    # delivered: no worker will pick it up, and it counts as done
    message = Session.get(OutboxMessage, mail["id"])
    assert message.status == "done" and outbox.claim_due() == []


def test_the_sink_lists_newest_first_in_pages(client, tenant):
    for n in range(3):
        assert tenant.post("/api/v1/team/members", json={"email": f"p{n}@example.com", "name": f"P{n}",
                                                         "role": "viewer"}).status_code == 201
    first = client.get(f"{DEV_MAIL}?limit=2", headers=ADMIN).get_json()
    assert [m["to"] for m in first["data"]] == [["p2@example.com"], ["p1@example.com"]]
    rest = client.get(f"{DEV_MAIL}?limit=2&cursor={first['next_cursor']}", headers=ADMIN).get_json()
    assert [m["to"] for m in rest["data"]] == [["p0@example.com"]] and rest["next_cursor"] is None


def test_the_sink_is_for_operators_only(client, tenant):
    assert client.get(DEV_MAIL).status_code == 401
    denied = tenant.get(DEV_MAIL)
    assert denied.status_code in (401, 403) and denied.mimetype == "application/problem+json"


@pytest.mark.parametrize("config", [{"SENDGRID_API_KEY": "SG.test"}, {"ENV_PRODUCTION": True}],
                         ids=["sendgrid-configured", "production"])
def test_no_sink_with_a_sendgrid_key_or_in_production(make_app, config):
    app = make_app(**config)
    with app.app_context():
        client = app.test_client()
        tenant = sign_up(client)
        assert tenant.post("/api/v1/team/members", json={"email": "x@example.com", "name": "X",
                                                         "role": "member"}).status_code == 201
        [message] = Session.query(OutboxMessage).all()
        assert message.status == "pending" and message.delivery_status is None   # for the worker
        body = client.get(DEV_MAIL, headers=ADMIN).get_json()
        assert body == {"data": [], "next_cursor": None, "sink_enabled": False}


def test_a_booking_confirmation_goes_to_the_sink(make_app):
    app = make_app(CALCOM_API_KEY="cal_live_test")
    with app.app_context(), responses.RequestsMock() as mocked:
        mocked.post(f"{CAL}/bookings", status=201, json={"status": "success", "data": {
            "id": 91, "uid": "bk_dev", "status": "accepted", "eventTypeId": 77,
            "start": START.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "end": (START + dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S.000Z")}})
        tenant = sign_up(app.test_client())
        company = Session.get(Company, tenant.company["id"])
        company.calcom_event_type_id = "77"
        customer = Customer(company_id=company.id, name="Ada Lovelace", email="ada@example.com")
        Session.add(customer)
        Session.commit()
        booked = tenant.post("/api/v1/appointments", json={
            "customer_id": customer.id, "starts_at": START.isoformat(), "duration_minutes": 30,
            "title": "Cleaning"})
        assert booked.status_code == 201, booked.get_json()
        [mail] = app.test_client().get(DEV_MAIL, headers=ADMIN).get_json()["data"]
        assert mail["to"] == ["ada@example.com"] and mail["category"] == "booking_confirmation"
        assert "Cleaning" in mail["subject"]


def test_outbox_log_lines_carry_id_kind_and_reason(app, tenant, caplog):
    message = outbox.enqueue(Session, "test.kind", {"n": 1}, company_id=tenant.company["id"])
    Session.commit()

    def refuses(_message):
        raise RuntimeError("provider said no: 418")

    def gives_up(_message):
        raise outbox.PermanentFailure("mailbox does not exist")

    with caplog.at_level(logging.INFO, logger="gateway.outbox"):
        outbox.claim(message.id)
        assert outbox.deliver_one(message.id, handler=refuses) == "pending"
        Session.get(OutboxMessage, message.id).next_attempt_at = TEST_NOW - dt.timedelta(days=1)
        Session.commit()
        outbox.claim(message.id)
        assert outbox.deliver_one(message.id, handler=gives_up) == "dead"
    retry, dead = [r for r in caplog.records if r.name == "gateway.outbox"]
    for record, reason in ((retry, "provider said no: 418"), (dead, "mailbox does not exist")):
        line = ExtraFieldsFormatter().format(record)
        fields = json.loads(line[line.index("{"):])
        assert fields["outbox_id"] == message.id and fields["kind"] == "test.kind"
        assert fields["reason"] == reason


def test_log_lines_without_extra_fields_are_unchanged():
    record = logging.LogRecord("gateway.access", logging.INFO, __file__, 1, '{"status":200}', (), None)
    assert ExtraFieldsFormatter().format(record) == '{"status":200}'


def test_queue_email_outside_a_request_uses_the_sink_too(app, tenant):
    message = queue_email(Session, tenant.company["id"], "bob@example.com", "Welcome", "Hello Bob",
                          category="welcome")
    Session.commit()
    assert message.status == "done" and message.delivery_status == "dev_mail"
