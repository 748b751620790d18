"""Outbox delivery to Cal.com and SendGrid: synchronous confirmation, delivery after an
outage (through the breaker), no double booking, and a real `gateway worker` restart."""
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import responses
from sqlalchemy import select

from gateway_app import outbox
from gateway_app.bookings import submit_booking
from gateway_app.breakers import breaker_for
from gateway_app.db import Session, utcnow
from gateway_app.models import Appointment, Company, Customer, OutboxMessage
from gateway_app.notifications import queue_email
from gateway_app.policy import load_policy
from tests.conftest import PROVIDER_KEYS, TEST_NOW, build_app, sign_up
from tests.support.servers import ROOT, free_port

CAL = "https://api.cal.com/v2"
SENDGRID = "https://api.sendgrid.com/v3/mail/send"
START = TEST_NOW + dt.timedelta(days=1, hours=3)   # a Tuesday, 15:00 UTC
CAL_TIME = "%Y-%m-%dT%H:%M:%S.000Z"


def cal_booking(uid="bk_1", reference=None):
    return {"id": 91, "uid": uid, "status": "accepted", "start": START.strftime(CAL_TIME),
            "end": (START + dt.timedelta(minutes=30)).strftime(CAL_TIME), "eventTypeId": 77,
            "metadata": {"gateway_reference": reference} if reference else {}}


@pytest.fixture
def quick_app(database_url, redis_url, redis_client):
    """Integrations configured; Cal.com's breaker reopens for probes after 1 s."""
    policy = load_policy()
    policy["circuit_breaker"]["services"]["calcom"] = {"reset_timeout": 1}
    app = build_app(database_url, redis_url, GATEWAY_POLICY=policy, **PROVIDER_KEYS)
    with app.app_context():
        yield app
    Session.remove()
    app.extensions["gateway_engine"].dispose()


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def make_appointment(event_type_id="77"):
    company = Company(name="Dental Co", calcom_event_type_id=event_type_id)
    Session.add(company)
    Session.flush()
    customer = Customer(company_id=company.id, name="Ada Lovelace", email="ada@example.com",
                        phone="+14155550100")
    Session.add(customer)
    Session.flush()
    appointment = Appointment(company_id=company.id, customer_id=customer.id, title="Cleaning",
                              starts_at=START, ends_at=START + dt.timedelta(minutes=30))
    Session.add(appointment)
    Session.flush()
    return appointment


def messages(kind):
    return Session.scalars(select(OutboxMessage).where(OutboxMessage.kind == kind)
                           .order_by(OutboxMessage.id)).all()


def later(seconds=3600):
    return utcnow() + dt.timedelta(seconds=seconds)


def test_booking_is_confirmed_synchronously_when_calcom_answers(quick_app, mocked):
    mocked.post(f"{CAL}/bookings", status=201, json={"status": "success", "data": cal_booking("bk_sync")})
    appointment = make_appointment()
    assert submit_booking(Session, appointment) == 201
    Session.commit()
    assert appointment.status == "confirmed" and appointment.calcom_booking_uid == "bk_sync"
    [booking] = messages("calcom.booking")
    assert booking.status == "done" and booking.provider_message_id == "bk_sync"
    sent = json.loads(mocked.calls[0].request.body)
    assert sent["eventTypeId"] == 77 and sent["start"] == START.strftime(CAL_TIME)
    assert sent["attendee"] == {"name": "Ada Lovelace", "email": "ada@example.com",
                                "phoneNumber": "+14155550100", "timeZone": "UTC"}
    assert sent["metadata"]["gateway_reference"] == f"gw-appointment-{appointment.id}"
    [email] = messages("sendgrid.email")
    assert email.status == "pending" and email.payload["to"] == ["ada@example.com"]
    assert email.payload["category"] == "booking_confirmation"


@pytest.mark.parametrize("database_url", ["sqlite", "mysql"], indirect=True)
def test_booking_waits_through_an_outage_and_is_delivered_after_it(quick_app, mocked):
    mocked.post(f"{CAL}/bookings", status=503, json={"status": "error"})
    appointment = make_appointment()
    assert submit_booking(Session, appointment) == 202
    assert appointment.status == "pending"
    [message] = messages("calcom.booking")
    assert message.status == "pending" and message.attempts == 1

    hours = iter(range(1, 100))                  # each pass runs an hour later: all retries are due
    for _ in range(4):                           # the outage continues: 5 failures open the breaker
        assert outbox.deliver_due(now=later(3600 * next(hours))) == {"pending": 1}
    assert breaker_for("calcom").current_state == "open"
    posts_while_closed = len(mocked.calls)
    now = later(3600 * next(hours))
    assert outbox.deliver_due(now=now) == {"pending": 1}
    Session.refresh(message)
    assert len(mocked.calls) == posts_while_closed    # open: Cal.com is not called
    assert "circuit open" in message.last_error
    assert 0 < (message.next_attempt_at - now).total_seconds() <= 1.5   # delay = time to the next probe

    # Cal.com recovers; the probe first checks the booking was not made by a failed attempt
    mocked.replace(responses.POST, f"{CAL}/bookings", status=201,
                   json={"status": "success", "data": cal_booking("bk_after")})
    mocked.get(f"{CAL}/bookings", json={"status": "success", "data": []})
    time.sleep(1.05)
    assert outbox.deliver_due(now=later(3600 * next(hours))) == {"done": 1}
    Session.refresh(appointment)
    assert appointment.status == "confirmed" and appointment.calcom_booking_uid == "bk_after"
    assert breaker_for("calcom").current_state == "closed"


def test_a_timed_out_booking_is_found_not_posted_again(quick_app, mocked):
    mocked.post(f"{CAL}/bookings", body=requests.ReadTimeout("Cal.com took too long"))
    appointment = make_appointment()
    assert submit_booking(Session, appointment) == 202
    reference = f"gw-appointment-{appointment.id}"
    # the timed-out POST did create the booking at Cal.com
    mocked.get(f"{CAL}/bookings", json={"status": "success", "data": [cal_booking("bk_made", reference)]})
    assert outbox.deliver_due(now=later()) == {"done": 1}
    Session.refresh(appointment)
    assert appointment.calcom_booking_uid == "bk_made"
    posts = [call for call in mocked.calls if call.request.method == "POST"]
    assert len(posts) == 1


def test_open_breaker_skips_the_synchronous_attempt(quick_app, mocked):
    breaker_for("calcom").open()
    appointment = make_appointment()
    assert submit_booking(Session, appointment) == 202
    [message] = messages("calcom.booking")
    assert message.attempts == 0 and len(mocked.calls) == 0


def test_booking_without_an_event_type_is_dead_not_retried(quick_app, mocked):
    appointment = make_appointment(event_type_id=None)
    assert submit_booking(Session, appointment) == 202
    [message] = messages("calcom.booking")
    assert message.status == "dead" and "event type" in message.last_error
    assert len(mocked.calls) == 0


def test_email_is_sent_with_its_message_id_stored(quick_app, mocked):
    mocked.post(SENDGRID, status=202, body="", headers={"X-Message-Id": "sg-abc-123"})
    company = Company(name="Mail Co")
    Session.add(company)
    Session.flush()
    queue_email(Session, company.id, "bob@example.com", "Welcome", "Hello Bob", category="welcome",
                html="<p>Hello Bob</p>")
    Session.commit()
    assert outbox.deliver_due() == {"done": 1}
    [email] = messages("sendgrid.email")
    assert email.provider_message_id == "sg-abc-123"
    body = json.loads(mocked.calls[0].request.body)
    assert body["custom_args"] == {"outbox_id": str(email.id)}
    assert mocked.calls[0].request.headers["Authorization"] == "Bearer SG.test"


def test_email_refused_by_sendgrid_is_dead(quick_app, mocked):
    mocked.post(SENDGRID, status=400, json={"errors": [{"message": "Invalid email", "field": "to"}]})
    company = Company(name="Mail Co")
    Session.add(company)
    Session.flush()
    queue_email(Session, company.id, "not-an-address", "Hi", "Hi", category="welcome")
    Session.commit()
    assert outbox.deliver_due() == {"dead": 1}
    assert "400" in messages("sendgrid.email")[0].last_error


class FakeSendgrid(BaseHTTPRequestHandler):
    """A real HTTP server standing in for SendGrid, for the worker subprocess."""
    status = 503
    received = []

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        FakeSendgrid.received.append((self.path, self.headers.get("Authorization"),
                                      json.loads(self.rfile.read(length))))
        self.send_response(FakeSendgrid.status)
        if FakeSendgrid.status == 202:
            self.send_header("X-Message-Id", f"sg-worker-{len(FakeSendgrid.received)}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def run_worker_once(env):
    return subprocess.run([sys.executable, "-m", "gateway_app.cli", "worker", "--once"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


def test_gateway_worker_delivers_after_an_outage_and_a_restart(tmp_path, redis_url, redis_client):
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), FakeSendgrid)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    database = f"sqlite:///{tmp_path}/worker.db"
    # the web process that queues it has the worker's key (else the development sink keeps it)
    app = build_app(database, redis_url, SENDGRID_API_KEY="SG.worker")
    try:
        with app.app_context():
            company = Company(name="Worker Co")
            Session.add(company)
            Session.flush()
            queue_email(Session, company.id, "carol@example.com", "Reminder", "See you", category="reminder")
            Session.commit()
        env = {**os.environ, "PYTHONPATH": ROOT, "DATABASE_URL": database, "REDIS_URL": redis_url,
               "SECRET_KEY": "worker-test-secret", "SENDGRID_API_KEY": "SG.worker",
               "SENDGRID_BASE_URL": f"http://127.0.0.1:{port}", "GATEWAY_ACCESS_LOG": "0"}
        FakeSendgrid.status, FakeSendgrid.received = 503, []
        first = run_worker_once(env)
        assert first.returncode == 0, first.stderr
        with app.app_context():
            [email] = messages("sendgrid.email")
            assert email.status == "pending" and email.attempts == 1
            email.next_attempt_at = utcnow()        # its backoff has elapsed
            Session.commit()
        FakeSendgrid.status = 202
        second = run_worker_once(env)              # a new worker process: nothing in memory
        assert second.returncode == 0, second.stderr
        with app.app_context():
            Session.expire_all()
            [email] = messages("sendgrid.email")
            assert email.status == "done" and email.provider_message_id.startswith("sg-worker-")
        path, authorization, body = FakeSendgrid.received[-1]
        assert path == "/v3/mail/send" and authorization == "Bearer SG.worker"
        assert body["personalizations"] == [{"to": [{"email": "carol@example.com"}]}]
    finally:
        server.shutdown()
        app.extensions["gateway_engine"].dispose()


def book_through_http(app, key):
    tenant = sign_up(app.test_client())
    company = Session.get(Company, tenant.company["id"])
    company.calcom_event_type_id = "77"
    customer = Customer(company_id=company.id, name="Ada Lovelace", email="ada@example.com")
    Session.add(customer)
    Session.commit()
    body = {"customer_id": customer.id, "starts_at": START.isoformat(),
            "duration_minutes": 30, "title": "Cleaning"}
    return tenant, body, tenant.post("/api/v1/appointments", json=body,
                                     headers={"Idempotency-Key": key})


def test_booking_through_http_is_201_when_calcom_confirms_in_time(quick_app, mocked):
    mocked.post(f"{CAL}/bookings", status=201, json={"status": "success", "data": cal_booking("bk_http")})
    tenant, body, first = book_through_http(quick_app, "confirm-1")
    assert first.status_code == 201, first.get_json()
    assert first.get_json()["status"] == "confirmed"
    retried = tenant.post("/api/v1/appointments", json=body, headers={"Idempotency-Key": "confirm-1"})
    assert retried.status_code == 201 and retried.get_json()["id"] == first.get_json()["id"]
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert len([c for c in mocked.calls if c.request.method == "POST"]) == 1


def test_booking_through_http_is_202_while_calcom_fails(quick_app, mocked):
    mocked.post(f"{CAL}/bookings", status=503, json={"status": "error"})
    tenant, body, first = book_through_http(quick_app, "outage-1")
    assert first.status_code == 202, first.get_json()
    assert first.get_json()["status"] == "pending"
    [message] = messages("calcom.booking")
    assert message.status == "pending" and message.attempts == 1
    retried = tenant.post("/api/v1/appointments", json=body, headers={"Idempotency-Key": "outage-1"})
    assert retried.status_code == 202 and retried.get_json()["id"] == first.get_json()["id"]


def test_cancelling_a_confirmed_appointment_cancels_it_at_calcom(quick_app, mocked):
    mocked.post(f"{CAL}/bookings", status=201, json={"status": "success", "data": cal_booking("bk_gone")})
    mocked.post(f"{CAL}/bookings/bk_gone/cancel", status=200,
                json={"status": "success", "data": cal_booking("bk_gone")})
    tenant, _, booked = book_through_http(quick_app, "cancel-1")
    assert booked.status_code == 201
    cancelled = tenant.patch(f"/api/v1/appointments/{booked.get_json()['id']}/status",
                             json={"status": "cancelled"})
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    [message] = messages("calcom.cancellation")
    assert message.status == "pending"
    outbox.deliver_due(now=later())
    Session.refresh(message)
    assert message.status == "done" and message.provider_message_id == "bk_gone"
    [call] = [c for c in mocked.calls if c.request.url.endswith("/bookings/bk_gone/cancel")]
    assert json.loads(call.request.body)["cancellationReason"]
    assert call.request.headers["cal-api-version"]


def test_cancelling_before_calcom_booked_it_sends_nothing(quick_app, mocked):
    mocked.post(f"{CAL}/bookings", status=503, json={"status": "error"})
    tenant, _, booked = book_through_http(quick_app, "cancel-2")
    assert booked.status_code == 202
    tenant.patch(f"/api/v1/appointments/{booked.get_json()['id']}/status", json={"status": "cancelled"})
    calls_before = len(mocked.calls)
    assert outbox.deliver_due(now=later()) == {"done": 2}   # the booking and the cancellation
    assert len(mocked.calls) == calls_before                # neither reached Cal.com
