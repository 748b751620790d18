"""Call recordings: a Retell call_ended / call_analyzed event's recording_url is copied into
the file store by the worker (through the Retell breaker and the outbox), then served by
GET /api/v1/calls/<id>/recording; on file:// and s3://."""
import datetime as dt

import pytest
import requests
import responses
from sqlalchemy import select

from gateway_app import outbox
from gateway_app.breakers import breaker_for
from gateway_app.db import Session, utcnow
from gateway_app.extensions import gateway_state
from gateway_app.files import open_store
from gateway_app.models import Call, OutboxMessage
from gateway_app.services.recordings import RECORDING_KIND
from tests.conftest import WEBHOOK_SECRETS, WebhookSender, build_app, link_provider_accounts, sign_up
from tests.support.servers import free_port
from tests.test_webhooks_retell import retell_event

RECORDING_URL = "https://dxc03zgurdly9.cloudfront.net/call_rec/recording.wav?Signature=abc"
AUDIO = b"RIFF" + bytes(range(256)) * 400


@pytest.fixture
def recording_app(database_url, redis_url, redis_client, file_storage, webhook_clock):
    app = build_app(database_url, redis_url, WEBHOOK_CLOCK=webhook_clock, **WEBHOOK_SECRETS, **file_storage)
    with app.app_context():
        yield app
    Session.remove()
    app.extensions["gateway_engine"].dispose()


@pytest.fixture
def webhooks(recording_app, webhook_clock):
    return WebhookSender(recording_app.test_client(), webhook_clock, None)


@pytest.fixture
def owner(recording_app):
    tenant = sign_up(recording_app.test_client())
    link_provider_accounts(tenant.company["id"], retell_agent_id="agent_rec")
    return tenant


@pytest.fixture
def retell_storage():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        yield mocked


def end_call(webhooks, event="call_ended", call_id="call_rec", url=RECORDING_URL):
    fields = {"recording_url": url} if url else {}
    delivered = webhooks.retell(retell_event(event, call_id=call_id, agent_id="agent_rec", **fields))
    assert delivered.status_code == 200, delivered.get_json()
    return Session.scalar(select(Call).where(Call.retell_call_id == call_id))


def queued():
    return Session.scalars(select(OutboxMessage).where(OutboxMessage.kind == RECORDING_KIND)
                           .order_by(OutboxMessage.id)).all()


def later(hours):
    return utcnow() + dt.timedelta(hours=hours)


def recording_of(owner, call):
    return owner.get(f"/api/v1/calls/{call.id}/recording")


def test_a_recording_is_404_until_the_worker_stores_it_then_streamed(recording_app, webhooks, owner,
                                                                    retell_storage):
    retell_storage.get(RECORDING_URL, body=AUDIO, content_type="audio/wav")
    call = end_call(webhooks)
    [message] = queued()
    assert message.payload == {"call_id": call.id, "url": RECORDING_URL}

    missing = recording_of(owner, call)
    assert missing.status_code == 404 and missing.mimetype == "application/problem+json"

    assert outbox.deliver_due() == {"done": 1}

    served = recording_of(owner, call)
    assert served.status_code == 200
    assert served.get_data() == AUDIO
    assert served.mimetype == "audio/wav"
    assert served.headers["Content-Disposition"].startswith(f'attachment; filename="call-{call.id}-recording.wav"')
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    # Retell's API key never goes to the storage host
    assert "Authorization" not in retell_storage.calls[0].request.headers
    Session.refresh(call)
    assert call.recording_size == len(AUDIO)
    assert gateway_state(recording_app).files.exists(call.recording_path)


def test_both_events_carry_the_url_and_the_recording_is_copied_once(webhooks, owner, retell_storage):
    retell_storage.get(RECORDING_URL, body=AUDIO, content_type="audio/wav")
    call = end_call(webhooks, "call_ended")
    end_call(webhooks, "call_analyzed")
    assert len(queued()) == 2

    assert outbox.deliver_due() == {"done": 2}

    assert len(retell_storage.calls) == 1
    assert recording_of(owner, call).get_data() == AUDIO
    # once stored, a later event queues nothing
    end_call(webhooks, "call_analyzed", url=RECORDING_URL + "&again=1")
    assert len(queued()) == 2


def test_call_started_and_events_without_a_url_queue_nothing(webhooks, owner):
    end_call(webhooks, "call_started", call_id="call_a", url=RECORDING_URL)
    call = end_call(webhooks, "call_ended", call_id="call_b", url=None)
    end_call(webhooks, "call_ended", call_id="call_c", url="ftp://example.com/x.wav")
    assert queued() == []
    assert recording_of(owner, call).status_code == 404


def test_a_retell_outage_is_retried_through_the_breaker(webhooks, owner, retell_storage):
    retell_storage.get(RECORDING_URL, body=requests.ConnectionError("refused"))
    call = end_call(webhooks)
    hours = iter(range(1, 100))
    for _ in range(5):   # 5 failures open Retell's breaker
        assert outbox.deliver_due(now=later(next(hours))) == {"pending": 1}
    assert breaker_for("retell").current_state == "open"
    fetched = len(retell_storage.calls)
    assert outbox.deliver_due(now=later(next(hours))) == {"pending": 1}
    [message] = queued()
    assert len(retell_storage.calls) == fetched       # open: Retell's storage is not called
    assert "circuit open" in message.last_error
    assert recording_of(owner, call).status_code == 404

    breaker_for("retell").close()
    retell_storage.replace(responses.GET, RECORDING_URL, body=AUDIO, content_type="audio/wav")
    assert outbox.deliver_due(now=later(next(hours))) == {"done": 1}
    assert recording_of(owner, call).get_data() == AUDIO


def test_a_refused_or_oversized_recording_is_given_up(recording_app, webhooks, owner, retell_storage):
    retell_storage.get(RECORDING_URL, status=403, body="expired signature")
    refused = end_call(webhooks, call_id="call_refused")
    assert outbox.deliver_due() == {"dead": 1}

    recording_app.extensions["gateway"].policy["files"]["recordings"]["max_bytes"] = 1000
    big_url = RECORDING_URL.replace("recording.wav", "big.wav")
    retell_storage.get(big_url, body=AUDIO, content_type="audio/wav")
    big = end_call(webhooks, call_id="call_big", url=big_url)
    assert outbox.deliver_due() == {"dead": 1}

    for call in (refused, big):
        assert recording_of(owner, call).status_code == 404
    assert [key.key for key in gateway_state(recording_app).files.list("recordings/")] == []


def test_a_store_outage_during_the_copy_is_retried(recording_app, webhooks, owner, retell_storage):
    retell_storage.get(RECORDING_URL, body=AUDIO, content_type="audio/wav")
    call = end_call(webhooks)
    state = gateway_state(recording_app)
    working = state.files
    state.files = open_store("s3://bucket/prefix", {
        "endpoint_url": f"http://127.0.0.1:{free_port()}", "region": "us-east-1",
        "access_key_id": "k", "secret_access_key": "s", "connect_timeout": 0.3, "read_timeout": 0.3})
    assert outbox.deliver_due() == {"pending": 1}

    state.files = working
    assert outbox.deliver_due(now=later(1)) == {"done": 1}
    assert recording_of(owner, call).get_data() == AUDIO


def test_another_company_cannot_fetch_a_recording(recording_app, webhooks, owner, retell_storage):
    retell_storage.get(RECORDING_URL, body=AUDIO, content_type="audio/wav")
    call = end_call(webhooks)
    outbox.deliver_due()
    other = sign_up(recording_app.test_client())
    assert recording_of(other, call).status_code == 404
    assert recording_of(owner, call).status_code == 200


def test_a_stored_recording_the_store_lost_is_410(recording_app, webhooks, owner, retell_storage):
    retell_storage.get(RECORDING_URL, body=AUDIO, content_type="audio/wav")
    call = end_call(webhooks)
    outbox.deliver_due()
    Session.refresh(call)
    gateway_state(recording_app).files.delete(call.recording_path)

    gone = recording_of(owner, call)

    assert gone.status_code == 410 and gone.get_json()["call_id"] == call.id
