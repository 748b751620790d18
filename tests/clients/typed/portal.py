"""A portal team's script, written against the client openapi-python-client generates from
the gateway's /openapi.json (package voice_agent_api_gateway_client, importable from
PYTHONPATH), and nothing else: no hand-written request, no raw JSON; `mypy --strict` checks
that it reads every field through the generated models' types.

It logs in, lists calls with a filter following the cursor, creates and updates a customer,
books an appointment, reads the calendar, then provokes 401, 403, 404, 409, 422, 429 and 304
and checks that each error comes back as the problem model the document promises, with
``detail``, ``request_id`` and its extension members. Every mismatch is printed; the exit
status is 1 if there was any (tests/test_generated_clients.py runs it).

    python portal.py BASE_URL --email E --password P --viewer-email E --viewer-password P
                     --tag T --book 2029-12-03T10:00:00 [--forwarded-for ADDRESS]
"""
import argparse
import datetime as dt
import sys
from typing import Any, Protocol, TypeVar, runtime_checkable

from voice_agent_api_gateway_client import AuthenticatedClient, Client
from voice_agent_api_gateway_client.api.appointments import create_appointment, list_appointments
from voice_agent_api_gateway_client.api.auth import create_token
from voice_agent_api_gateway_client.api.billing import get_usage
from voice_agent_api_gateway_client.api.calls import list_calls
from voice_agent_api_gateway_client.api.customers import create_customer, get_customer, update_customer
from voice_agent_api_gateway_client.models import (AppointmentOut, BookingIn, CalendarOut, CallPage,
                                                   ConflictProblem, Credentials, CustomerIn, CustomerOut,
                                                   CustomerPatchIn, ListCallsStatus, PermissionProblem,
                                                   PermissionProblemPermission, RateLimitProblem,
                                                   RateLimitProblemLayer, TokenOut, ValidationProblem)
from voice_agent_api_gateway_client.types import UNSET, Response, Unset

# a page of the calls list: small enough that the demo company's answered calls take several
PAGE = 50
# billing's endpoint quota for the free tier is 20 an hour (conf/gateway.yaml): the 429 comes
# well before this many requests
RATE_LIMIT_ATTEMPTS = 40
# a customer id no company has (ids are 64-bit)
MISSING_ID = 2**62


@runtime_checkable
class ProblemFields(Protocol):
    """What every problem model of the generated client has."""

    @property
    def status(self) -> int: ...

    @property
    def detail(self) -> str: ...

    @property
    def request_id(self) -> str | None: ...


P = TypeVar("P", bound=ProblemFields)


class Mismatches:
    def __init__(self) -> None:
        self.found: list[str] = []

    def check(self, condition: object, what: str) -> bool:
        if not condition:
            self.found.append(what)
            print(f"MISMATCH: {what}", file=sys.stderr)
        return bool(condition)

    def problem(self, response: Response[Any], model: type[P], status: int, what: str) -> P | None:
        """The response is ``status``, parsed as ``model``, with detail and request_id (the
        X-Request-ID it was answered with); the parsed problem, or None."""
        parsed = response.parsed
        if not isinstance(parsed, model):
            self.check(False, f"{what}: expected {status} as {model.__name__}, got {int(response.status_code)} "
                              f"as {type(parsed).__name__}: {response.content[:300]!r}")
            return None
        self.problem_fields(response, parsed, status, what)
        return parsed

    def plain_problem(self, response: Response[Any], status: int, what: str) -> None:
        """As problem(), for a status without extension members: whichever problem model the
        document gives it."""
        parsed = response.parsed
        if isinstance(parsed, ProblemFields):
            self.problem_fields(response, parsed, status, what)
        else:
            self.check(False, f"{what}: expected {status} as a problem, got {int(response.status_code)} "
                              f"as {type(parsed).__name__}: {response.content[:300]!r}")

    def problem_fields(self, response: Response[Any], parsed: ProblemFields, status: int, what: str) -> None:
        self.check(response.status_code == status, f"{what}: HTTP {int(response.status_code)}, expected {status}")
        self.check(parsed.status == status, f"{what}: problem status {parsed.status}")
        self.check(parsed.detail, f"{what}: no detail")
        self.check(parsed.request_id is not None and parsed.request_id == response.headers.get("X-Request-ID"),
                   f"{what}: request_id {parsed.request_id!r} is not the X-Request-ID "
                   f"{response.headers.get('X-Request-ID')!r}")


def log_in(client: Client, email: str, password: str, mismatches: Mismatches) -> str | None:
    response = create_token.sync_detailed(client=client, body=Credentials(email=email, password=password))
    if not isinstance(response.parsed, TokenOut):
        mismatches.check(False, f"log in as {email}: {response.content[:300]!r}")
        return None
    return response.parsed.access_token


def answered_calls(portal: AuthenticatedClient, mismatches: Mismatches) -> tuple[list[int], int, str | None]:
    """Every answered call, page by page; the first page's ETag."""
    seen: list[int] = []
    pages, cursor, etag = 0, None, None
    while True:
        response = list_calls.sync_detailed(client=portal, status=ListCallsStatus.ANSWERED, limit=PAGE,
                                            cursor=UNSET if cursor is None else cursor)
        page = response.parsed
        if not isinstance(page, CallPage):
            mismatches.check(False, f"list calls page {pages + 1}: {response.content[:300]!r}")
            return seen, pages, etag
        pages += 1
        etag = etag or response.headers.get("ETag")
        mismatches.check(all(call.status == "answered" for call in page.data),
                         f"page {pages} holds a call that was not answered")
        seen.extend(call.id for call in page.data)
        if page.next_cursor is None:
            return seen, pages, etag
        cursor = page.next_cursor


def run(args: argparse.Namespace) -> list[str]:
    mismatches = Mismatches()
    headers = {"X-Forwarded-For": args.forwarded_for} if args.forwarded_for else {}
    anonymous = Client(base_url=args.base_url, headers=headers, raise_on_unexpected_status=True)

    token = log_in(anonymous, args.email, args.password, mismatches)
    if token is None:
        return mismatches.found
    portal = AuthenticatedClient(base_url=args.base_url, token=token, headers=headers,
                                 raise_on_unexpected_status=True)

    calls, pages, etag = answered_calls(portal, mismatches)
    mismatches.check(pages > 1, f"the answered calls took {pages} page(s): the cursor was never followed")
    mismatches.check(len(calls) == len(set(calls)), "a call came back on two pages")
    mismatches.check(etag, "the calls list has no ETag")

    phone = f"+1415555{args.tag % 10000:04d}"
    created = create_customer.sync_detailed(client=portal, body=CustomerIn(
        name=f"Portal Customer {args.tag}", phone=phone, email=f"portal-{args.tag}@example.com"))
    customer = created.parsed
    if not isinstance(customer, CustomerOut) or created.status_code != 201:
        mismatches.check(False, f"create a customer: HTTP {int(created.status_code)} {created.content[:300]!r}")
        return mismatches.found
    updated = update_customer.sync_detailed(customer.id, client=portal, body=CustomerPatchIn(notes="prefers mornings"))
    mismatches.check(isinstance(updated.parsed, CustomerOut) and updated.parsed.notes == "prefers mornings",
                     f"update the customer: {updated.content[:300]!r}")

    starts_at = dt.datetime.fromisoformat(args.book)
    booked = create_appointment.sync_detailed(client=portal, body=BookingIn(
        customer_id=customer.id, starts_at=starts_at, duration_minutes=30, title="Consultation"))
    appointment = booked.parsed
    if not isinstance(appointment, AppointmentOut) or booked.status_code not in (201, 202):
        mismatches.check(False, f"book: HTTP {int(booked.status_code)} {booked.content[:300]!r}")
        return mismatches.found
    mismatches.check(appointment.starts_at.replace(tzinfo=None) == starts_at,
                     f"booked at {appointment.starts_at}, asked for {starts_at} (the company's time)")

    calendar = list_appointments.sync_detailed(client=portal, from_=starts_at.date(), to=starts_at.date())
    if isinstance(calendar.parsed, CalendarOut):
        mismatches.check(appointment.id in [item.id for item in calendar.parsed.data],
                         "the booking is not in the calendar of its day")
    else:
        mismatches.check(False, f"read the calendar: {calendar.content[:300]!r}")

    # 401: a token the gateway never issued
    stranger = AuthenticatedClient(base_url=args.base_url, token="not-a-token", headers=headers)
    mismatches.plain_problem(list_calls.sync_detailed(client=stranger), 401, "401")

    # 403: a viewer may read customers, not create them
    viewer_token = log_in(anonymous, args.viewer_email, args.viewer_password, mismatches)
    if viewer_token is not None:
        viewer = AuthenticatedClient(base_url=args.base_url, token=viewer_token, headers=headers)
        refused = mismatches.problem(create_customer.sync_detailed(client=viewer, body=CustomerIn(name="Not Allowed")),
                                     PermissionProblem, 403, "403")
        if refused is not None:
            mismatches.check(refused.permission == PermissionProblemPermission.CUSTOMERSWRITE,
                             f"403: permission {refused.permission!r}, expected customers:write")

    mismatches.plain_problem(get_customer.sync_detailed(MISSING_ID, client=portal), 404, "404")

    # 409: the phone another customer has, and the slot another appointment holds
    duplicate = mismatches.problem(create_customer.sync_detailed(client=portal, body=CustomerIn(
        name="Someone Else", phone=phone)), ConflictProblem, 409, "409 customer")
    if duplicate is not None:
        mismatches.check(duplicate.existing_customer_id == customer.id,
                         f"409 customer: existing_customer_id {duplicate.existing_customer_id!r}, expected {customer.id}")
        mismatches.check(duplicate.field == "phone", f"409 customer: field {duplicate.field!r}, expected 'phone'")
    overlap = mismatches.problem(create_appointment.sync_detailed(client=portal, body=BookingIn(
        customer_id=customer.id, starts_at=starts_at, duration_minutes=30, title="Again")),
        ConflictProblem, 409, "409 booking")
    if overlap is not None:
        mismatches.check(overlap.conflicting_appointment_id == appointment.id,
                         f"409 booking: conflicting_appointment_id {overlap.conflicting_appointment_id!r}, "
                         f"expected {appointment.id}")
        mismatches.check(not isinstance(overlap.field, Unset) and overlap.field,
                         f"409 booking: field {overlap.field!r}, expected the member that conflicts")

    invalid = mismatches.problem(create_customer.sync_detailed(client=portal, body=CustomerIn(
        name="Bad Email", email="not-an-email")), ValidationProblem, 422, "422")
    if invalid is not None:
        messages = invalid.errors.additional_properties.get("email")
        mismatches.check(isinstance(messages, list) and messages and all(isinstance(m, str) for m in messages),
                         f"422: errors['email'] is {messages!r}, expected a list of messages")

    # 304: the first page of the list again, with its ETag
    unchanged = list_calls.sync_detailed(client=portal, status=ListCallsStatus.ANSWERED, limit=PAGE,
                                         if_none_match=UNSET if etag is None else etag)
    mismatches.check(unchanged.status_code == 304 and unchanged.parsed is None and not unchanged.content,
                     f"304: got {int(unchanged.status_code)} {unchanged.content[:200]!r}")
    mismatches.check(unchanged.headers.get("ETag") == etag, "304: not the same ETag")

    # 429: billing's endpoint quota
    for _ in range(RATE_LIMIT_ATTEMPTS):
        usage = get_usage.sync_detailed(client=portal)
        if usage.status_code != 200:
            break
    limited = mismatches.problem(usage, RateLimitProblem, 429, "429")
    if limited is not None:
        mismatches.check(limited.layer == RateLimitProblemLayer.ENDPOINT, f"429: layer {limited.layer!r}")
        mismatches.check(limited.limit > 0, f"429: limit {limited.limit!r}")
        for name, seconds in (("window", limited.window), ("retry_after", limited.retry_after)):
            mismatches.check(not isinstance(seconds, Unset) and seconds > 0, f"429: {name} {seconds!r}")
        mismatches.check(not isinstance(limited.policy, Unset) and limited.policy, f"429: policy {limited.policy!r}")
        mismatches.check(str(limited.retry_after) == usage.headers.get("Retry-After"),
                         f"429: retry_after {limited.retry_after!r}, Retry-After {usage.headers.get('Retry-After')!r}")
    return mismatches.found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base_url")
    for option in ("--email", "--password", "--viewer-email", "--viewer-password", "--book"):
        parser.add_argument(option, required=True)
    parser.add_argument("--tag", type=int, required=True, help="makes this run's customers unique")
    parser.add_argument("--forwarded-for", help="the client address a trusted proxy would name")
    found = run(parser.parse_args())
    print(f"{len(found)} mismatch(es)" if found else "portal script: every check passed")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
