"""A portal team's script, written against the client openapi-python-client generated from
the gateway's /openapi.json (package ``gateway_client``) and nothing else.

    GATEWAY_URL=... PORTAL_EMAIL=... PORTAL_PASSWORD=... python portal.py

Logs in, lists with a filter and follows the cursor, creates and updates a customer,
books, reads the calendar; then provokes 401, 403, 404, 409, 422, 429 and 304 and reads
each error's detail, request_id and extension members through the generated types.
Prints "portal: ok" when every step answered as documented.
"""
import datetime as dt
import os
import uuid

from gateway_client import AuthenticatedClient, Client
from gateway_client.api.appointments import create_appointment, list_appointments
from gateway_client.api.auth import create_token
from gateway_client.api.customers import create_customer, get_customer, list_customers, update_customer
from gateway_client.api.settings import create_api_key
from gateway_client.models import (ApiKeyCreate, ApiKeyCreateScopesItem, AppointmentOut, BookingIn,
                                   CalendarOut, ConflictProblem, Credentials, CustomerIn, CustomerOut,
                                   CustomerPage, CustomerPatchIn, PermissionProblem, Problem,
                                   RateLimitProblem, RateLimitProblemLayer, TokenOut, ValidationProblem)
from gateway_client.types import UNSET

URL = os.environ["GATEWAY_URL"]
EMAIL, PASSWORD = os.environ["PORTAL_EMAIL"], os.environ["PORTAL_PASSWORD"]


def expect(answer, kind):
    assert isinstance(answer, kind), f"expected {kind.__name__}, got {answer!r}"
    return answer


def problem(answer, kind, status):
    found = expect(answer, kind)
    assert found.status == status and found.detail and found.request_id, found
    return found


def main():
    anonymous = Client(base_url=URL)
    token = expect(create_token.sync(client=anonymous, body=Credentials(email=EMAIL, password=PASSWORD)),
                   TokenOut)
    owner = AuthenticatedClient(base_url=URL, token=token.access_token)

    # create customers, then list them with a filter, following the cursor
    tag = uuid.uuid4().hex[:6]
    created = [expect(create_customer.sync(client=owner, body=CustomerIn(
        name=f"Portal {tag} {n}", email=f"portal-{tag}-{n}@example.com", phone=UNSET)), CustomerOut)
        for n in range(3)]
    seen, cursor = [], UNSET
    while True:
        page = expect(list_customers.sync(client=owner, q=f"Portal {tag}", limit=2, cursor=cursor), CustomerPage)
        seen += [customer.id for customer in page.data]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(seen) == sorted(customer.id for customer in created), seen

    # update one (a merge patch: null clears the e-mail)
    updated = expect(update_customer.sync(customer_id=created[0].id, client=owner,
                                          body=CustomerPatchIn(name=f"Portal {tag} renamed", email=None)),
                     CustomerOut)
    assert updated.name.endswith("renamed") and updated.email is None

    # book, then read the calendar around it
    day = dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=7)
    starts = dt.datetime.combine(day, dt.time(10, 0), tzinfo=dt.timezone.utc)
    booked = expect(create_appointment.sync(client=owner, body=BookingIn(
        customer_id=created[0].id, starts_at=starts, title="First visit", duration_minutes=30)),
        AppointmentOut)
    calendar = expect(list_appointments.sync(client=owner, from_=day, to=day),
                      CalendarOut)
    assert [appointment.id for appointment in calendar.data] == [booked.id], calendar

    # 401: a token the gateway did not issue
    problem(list_customers.sync(client=AuthenticatedClient(base_url=URL, token="not-a-token")), Problem, 401)
    # 403: an API key of the read scope may not create; the problem names the permission
    key = create_api_key.sync(client=owner, body=ApiKeyCreate(name="portal reader",
                                                              scopes=[ApiKeyCreateScopesItem.READ]))
    reader = AuthenticatedClient(base_url=URL, token=key.key, prefix="", auth_header_name="X-API-Key")
    refused = problem(create_customer.sync(client=reader, body=CustomerIn(name="Nope")), PermissionProblem, 403)
    assert refused.permission == "customers:write", refused
    # 404
    problem(get_customer.sync(customer_id=9_000_000_000, client=owner), Problem, 404)
    # 409: the conflicting customer and the member
    conflict = problem(create_customer.sync(client=owner, body=CustomerIn(
        name="Twin", email=f"portal-{tag}-1@example.com")), ConflictProblem, 409)
    assert (conflict.field, conflict.existing_customer_id) == ("email", created[1].id), conflict
    # 422: member -> messages
    invalid = problem(create_customer.sync(client=owner, body=CustomerIn(name="", email="not-an-email")),
                      ValidationProblem, 422)
    assert set(invalid.errors.additional_properties) == {"name", "email"}, invalid.errors
    # 304: the ETag of a list, sent back
    first = list_customers.sync_detailed(client=owner, q=f"Portal {tag}")
    again = list_customers.sync_detailed(client=owner, q=f"Portal {tag}", if_none_match=first.headers["ETag"])
    assert (first.status_code, again.status_code, again.parsed) == (200, 304, None), again
    # 429: failed logins are throttled; the problem names the layer, limit and window
    wrong = Credentials(email=EMAIL, password="wrong " + PASSWORD)
    answers = [create_token.sync(client=anonymous, body=wrong) for _ in range(6)]
    assert all(isinstance(answer, Problem) and answer.status == 401 for answer in answers[:5]), answers
    throttled = problem(answers[5], RateLimitProblem, 429)
    assert throttled.layer == RateLimitProblemLayer.LOGIN and throttled.limit == 5 and throttled.window, throttled
    assert throttled.retry_after and throttled.retry_after > 0
    print("portal: ok")


if __name__ == "__main__":
    main()
