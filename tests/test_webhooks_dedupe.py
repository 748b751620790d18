"""Exactly-once processing: the event row commits with its effect, or neither does."""
import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gateway_app.db import Session
from gateway_app.models import Call, WebhookEvent
from gateway_app.webhooks import retell
from gateway_app.webhooks.dedupe import ATTEMPTS, Ignored, RetryDelivery, process_once
from tests.conftest import sign_up
from tests.support.queries import count_rows

NOW = dt.datetime(2023, 11, 14, 22, 13, tzinfo=dt.timezone.utc)


@pytest.fixture
def company_id(webhook_app):
    return sign_up(webhook_app.test_client()).company["id"]


def new_call(company_id):
    return Call(company_id=company_id, retell_call_id="call_shared", direction="inbound",
                status="ongoing", started_at=NOW)


def commit_elsewhere(webhook_app, company_id):
    """A concurrent request's transaction, on its own connection."""
    with webhook_app.extensions["gateway_engine"].begin() as conn:
        conn.execute(Call.__table__.insert().values(
            company_id=company_id, retell_call_id="call_shared", direction="inbound",
            status="ongoing", started_at=NOW, duration_seconds=0, created_at=NOW))


@pytest.mark.parametrize("database_url", ["sqlite", "mysql"], indirect=True)
def test_a_conflict_on_the_effects_own_rows_is_retried_with_the_winner_visible(webhook_app, company_id):
    attempts = []

    def effect(session, record):
        record.company_id = company_id
        attempts.append(1)
        # the first attempt read before the other event committed its call: it misses it
        existing = None if len(attempts) == 1 else session.scalar(
            select(Call).where(Call.retell_call_id == "call_shared"))
        if existing is None:
            session.add(new_call(company_id))
            session.flush()
        else:
            existing.status = "answered"

    commit_elsewhere(webhook_app, company_id)
    assert process_once("retell", "call_shared:call_ended", "call_ended", effect) == "processed"
    assert len(attempts) == 2
    assert count_rows(Call) == 1 and count_rows(WebhookEvent) == 1
    assert Session.scalar(select(Call.status)) == "answered"


def test_the_same_event_again_is_a_duplicate_without_running_the_effect(webhook_app, company_id):
    runs = []

    def effect(session, record):
        runs.append(1)
        record.company_id = company_id

    assert process_once("stripe", "evt_1", "invoice.paid", effect) == "processed"
    assert process_once("stripe", "evt_1", "invoice.paid", effect) == "duplicate"
    assert process_once("sendgrid", "evt_1", "delivered", effect) == "processed"  # ids are per provider
    assert len(runs) == 2 and count_rows(WebhookEvent) == 2


def test_ignored_and_failed_effects_leave_no_trace(webhook_app, company_id):
    def ignored(session, record):
        session.add(new_call(company_id))
        raise Ignored("nothing to do")

    def broken(session, record):
        session.add(new_call(company_id))
        raise RuntimeError("bug")

    assert process_once("retell", "call_shared:call_started", "call_started", ignored) == "ignored"
    with pytest.raises(RuntimeError):
        process_once("retell", "call_shared:call_started", "call_started", broken)
    assert count_rows(Call) == 0 and count_rows(WebhookEvent) == 0
    # and the event can still be applied later
    assert process_once("retell", "call_shared:call_started", "call_started",
                        lambda s, r: s.add(new_call(company_id))) == "processed"


def test_endless_conflicts_answer_503_so_the_provider_delivers_again(webhooks, company_id, monkeypatch):
    from tests.conftest import link_provider_accounts
    link_provider_accounts(company_id, retell_agent_id="agent_busy")
    tries = []

    def always_conflicting(session, record, data, kind):
        tries.append(1)
        raise IntegrityError("INSERT INTO calls", {}, Exception("Duplicate entry"))

    monkeypatch.setattr(retell, "apply_call_event", always_conflicting)
    event = {"event": "call_started", "call": {"call_id": "call_busy", "agent_id": "agent_busy"}}
    response = webhooks.retell(event)
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert response.get_json()["provider"] == "retell"
    assert len(tries) == ATTEMPTS and count_rows(WebhookEvent) == 0
    with pytest.raises(RetryDelivery):
        process_once("retell", "x", "call_started", lambda s, r: always_conflicting(s, r, None, "call_started"))
