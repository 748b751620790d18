"""CSV exports never hand a spreadsheet a formula: every text cell that could start one
(= + - @, a tab or carriage return, also after leading spaces) is written inert, whichever
column it is in and whoever wrote it (a provider's caller ID, a customer's name, a summary)."""
import csv
import io
import time

import pytest
from sqlalchemy import select

from gateway_app.db import Session
from gateway_app.models import Call
from tests.conftest import link_provider_accounts, sign_up
from tests.test_webhooks_retell import retell_event

# short enough to be stored whole as a caller ID (20 characters)
PAYLOADS = ["=HYPERLINK(\"x\")", "+1+cmd|' /C calc'!A0", "-2+3",
            "@SUM(1,2)", "\t=1+1", "\r=1+1", "   =1+1", " \t@SUM(A1)", "\uff1d1+1"]
HARMLESS = ["plain text", "1-2", "a=b", "O'Brien"]


def evaluated(cell):
    """What a spreadsheet would take for a formula (an independent reading of the rule)."""
    return cell[:1] in ("\t", "\r") or cell.lstrip()[:1] in ("=", "+", "-", "@", "\uff1d")


def rows_of(text):
    return list(csv.reader(io.StringIO(text)))


def export(client, headers, **params):
    response = client.get("/api/v1/calls/export", headers={**headers, "Cache-Control": "no-cache"},
                          query_string=params)
    assert response.status_code in (200, 202), response.get_json()
    if response.status_code == 200:
        return response.get_data(as_text=True)
    location = response.headers["Location"]
    for _ in range(100):
        done = client.get(location, headers=headers)
        if done.status_code != 202:
            assert done.status_code == 200, done.get_json()
            return done.get_data(as_text=True)
        time.sleep(0.05)
    raise AssertionError("export still pending")


@pytest.mark.parametrize("database_url", ["sqlite", "mysql"], indirect=True)
@pytest.mark.parametrize("asynchronous", [False, True])
def test_provider_and_user_text_is_inert_in_every_column(webhook_app, webhooks, asynchronous):
    client = webhook_app.test_client()
    owner = sign_up(client)
    link_provider_accounts(owner.company["id"], retell_agent_id="agent_csv")
    for n, payload in enumerate(PAYLOADS + HARMLESS):
        # a caller ID and a summary exactly as the provider sent them
        delivered = webhooks.retell(retell_event("call_analyzed", call_id=f"call_{n}", agent_id="agent_csv",
                                                 from_number=payload, to_number=payload,
                                                 call_analysis={"call_summary": payload}))
        assert delivered.status_code == 200, delivered.get_json()
    # a customer named by a user
    customer = owner.post("/api/v1/customers", json={"name": "=cmd|' /C notepad'!A0"})
    assert customer.status_code == 201, customer.get_json()
    call = Session.scalar(select(Call).where(Call.retell_call_id == "call_0"))
    call.customer_id = customer.get_json()["id"]
    Session.commit()

    rows = rows_of(export(client, owner.headers, **({"async": "true"} if asynchronous else {})))
    header, body = rows[0], rows[1:]
    assert len(body) == len(PAYLOADS) + len(HARMLESS)
    cells = [cell for row in body for cell in row]
    assert not [cell for cell in cells if evaluated(cell)]
    by_column = {name: [row[header.index(name)] for row in body]
                 for name in ("from_number", "to_number", "summary")}
    for column, values in by_column.items():
        for payload in PAYLOADS:
            assert "'" + payload in values, (column, payload)   # kept, readable, inert
        for text in HARMLESS:
            assert text in values, (column, text)              # untouched
    assert "'=cmd|' /C notepad'!A0" in [row[header.index("customer_name")] for row in body]
    # numbers and timestamps the gateway wrote stay as they are
    assert all(row[header.index("id")].isdigit() for row in body)
    assert all(row[header.index("started_at")][:4].isdigit() for row in body)
