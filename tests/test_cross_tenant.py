"""The cross-tenant walk: every /api/v1 route with a path parameter, every method.

Company B's owner, using B's credentials (bearer token, session, write API key) on company
A's resource ids, must get 404
and change nothing; A's owner on the same request must not get 404 (the control that
proves the id and route are real). New routes are covered automatically: the walk
reads app.url_map, and a route whose parameter has no factory below fails the test
with instructions.
"""
import datetime as dt
import itertools
import re
import uuid

import pytest
from sqlalchemy import select

from gateway_app.db import Session, utcnow
from gateway_app.identity.api_keys import GeneratedKey
from gateway_app.identity.permissions import USER_ONLY_PERMISSIONS
from gateway_app.models import ApiKey, Appointment, Call, Customer, CustomerAttachment, StoredFile, User
from tests.conftest import PASSWORD, sign_up

PARAMETER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
IGNORED_METHODS = {"HEAD", "OPTIONS"}


# -- company A's resources, created directly through the models -----------------------------
def make_member(company_id):
    return User(company_id=company_id, email=f"member-{uuid.uuid4().hex[:10]}@example.com",
                name="Member of A", role="member", status="active")


def make_api_key(company_id):
    generated = GeneratedKey()
    return ApiKey(company_id=company_id, name="A's key", prefix=generated.prefix,
                  key_hash=generated.key_hash, scopes=["read", "write"])


_customer_numbers = itertools.count(100)


def make_customer(company_id):
    # phones and e-mails are unique per company, and the test makes several of A's customers
    unique = next(_customer_numbers)
    return Customer(company_id=company_id, name="Customer of A", phone=f"+1555{unique:07d}",
                    email=f"customer.of.a.{unique}@example.com")


def make_call(company_id):
    return Call(company_id=company_id, direction="inbound", status="answered",
                from_number="+15555550100", to_number="+15555550199",
                started_at=utcnow() - dt.timedelta(minutes=5), ended_at=utcnow(), duration_seconds=300,
                retell_call_id=f"call_{uuid.uuid4().hex[:12]}", summary="A's call",
                # a recording the row says is stored (its file is not: the owner gets 410)
                recording_path=f"recordings/{company_id}/{uuid.uuid4().hex}.wav",
                recording_content_type="audio/wav", recording_size=1)


def make_appointment(company_id):
    starts = utcnow() + dt.timedelta(days=1)
    return Appointment(company_id=company_id, title="A's appointment", starts_at=starts,
                       ends_at=starts + dt.timedelta(minutes=30), status="confirmed")


def make_export(company_id):
    return StoredFile(company_id=company_id, kind="calls_export", status="ready",
                      path=f"calls-export-{uuid.uuid4().hex}.csv")


def make_attachment(company_id, customer):
    """An attachment of the customer the route names before it (its file is not stored)."""
    return CustomerAttachment(company_id=company_id, customer_id=customer.id, filename="a.pdf",
                              content_type="application/pdf", size_bytes=1,
                              path=f"attachments/{company_id}/{customer.id}/{uuid.uuid4().hex}")


# The URL segment right before a path parameter names the collection the id belongs to.
FACTORIES = {
    "members": make_member,
    "api-keys": make_api_key,
    "customers": make_customer,
    "calls": make_call,
    "appointments": make_appointment,
    "exports": make_export,
}
# collections whose rows belong to the row of the parameter before them in the path
NESTED_FACTORIES = {
    "attachments": make_attachment,
}

# Writes whose schema must be satisfied for the request to reach the tenant lookup.
# Paths are written with every parameter as <id>.
SAMPLE_BODIES = {
    ("PATCH", "/api/v1/team/members/<id>"): {"role": "viewer"},
    ("PATCH", "/api/v1/customers/<id>"): {"name": "Mallory"},
    ("PATCH", "/api/v1/appointments/<id>/status"): {"status": "cancelled"},
}


def parameterised_routes(app):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") and rule.arguments:
            for method in sorted(rule.methods - IGNORED_METHODS):
                yield rule, method


def collection_of(rule, argument):
    parameter = next(m for m in PARAMETER.finditer(rule.rule) if m.group(1) == argument)
    return rule.rule[:parameter.start()].rstrip("/").rsplit("/", 1)[-1]


def create_for_company_a(rule, company_id):
    """{argument: row} for every parameter of the route; fails with how to add a factory."""
    rows = {}
    parent = None
    for argument in sorted(rule.arguments, key=rule.rule.index):
        collection = collection_of(rule, argument)
        if collection in NESTED_FACTORIES:
            rows[argument] = parent = NESTED_FACTORIES[collection](company_id, parent)
            Session.add(parent)
            Session.flush()
            continue
        factory = FACTORIES.get(collection)
        if factory is None:
            pytest.fail(f"{rule.rule}: no factory for the path parameter '{argument}' "
                        f"(collection '{collection}'). Add FACTORIES['{collection}'] = a function "
                        f"(company_id) -> unsaved model row of that company, in tests/test_cross_tenant.py.")
        rows[argument] = parent = factory(company_id)
        Session.add(parent)
        Session.flush()
    Session.add_all(rows.values())
    Session.commit()
    return rows


def snapshot(rows):
    """The rows as stored now, read with fresh queries."""
    state = {}
    for argument, row in rows.items():
        table = type(row).__table__
        found = Session.execute(select(table).where(table.c.id == row.id)).first()
        state[argument] = tuple(found) if found else None
    return state


class Caller:
    """One of company B's credentials: bearer token, session (with CSRF) or write API key."""

    def __init__(self, app, tenant, kind):
        self.kind = kind
        self.client = app.test_client()
        self.headers = {}
        if kind == "token":
            self.headers = tenant.headers
        elif kind == "session":
            login = self.client.post("/api/v1/auth/login", json={"email": tenant.user["email"],
                                                                 "password": PASSWORD})
            self.headers = {"X-CSRF-Token": login.get_json()["csrf_token"]}
        else:
            created = tenant.post("/api/v1/settings/api-keys", json={"name": "walk", "scopes": ["write"]})
            self.headers = {"X-API-Key": created.get_json()["key"]}

    def may_use(self, app, rule):
        """API keys never get user-only permissions: such routes answer 403 whatever the id."""
        permission = app.view_functions[rule.endpoint].gateway_policy.get("permission")
        return self.kind != "api_key" or permission not in USER_ONLY_PERMISSIONS

    def request(self, method, path, body):
        return self.client.open(path, method=method, headers=self.headers,
                                json=body if method in ("POST", "PUT", "PATCH") else None)


def concrete_path(rule, rows):
    path = rule.rule
    for argument, row in rows.items():
        path = PARAMETER.sub(lambda m, a=argument, r=row: str(r.id) if m.group(1) == a else m.group(0), path)
    return path


@pytest.mark.parametrize("database_url", ["sqlite", "mysql"], indirect=True)
def test_company_b_cannot_see_or_change_company_a_resources(app):
    client = app.test_client()
    company_a, company_b = sign_up(client, name="Company A"), sign_up(client, name="Company B")
    owner_a = Caller(app, company_a, "token")
    walked = set()
    for kind in ("token", "session", "api_key"):
        caller = Caller(app, company_b, kind)
        for rule, method in parameterised_routes(app):
            if not caller.may_use(app, rule):
                continue
            rows = create_for_company_a(rule, company_a.company["id"])
            path, template = concrete_path(rule, rows), PARAMETER.sub("<id>", rule.rule)
            body = SAMPLE_BODIES.get((method, template), {})
            before = snapshot(rows)

            response = caller.request(method, path, body)
            assert response.status_code == 404, (
                f"{method} {template} with company B's {kind} answered {response.status_code} "
                f"{response.get_data(as_text=True)[:300]}; expected 404. If this is a 422, add a valid "
                f"body to SAMPLE_BODIES[({method!r}, {template!r})].")
            Session.remove()
            assert snapshot(rows) == before, f"{method} {template} with company B's {kind} changed A's data"

            control = owner_a.request(method, path, body)
            assert control.status_code != 404 and control.status_code < 500, (
                f"control: {method} {template} as company A answered {control.status_code}; the walk "
                f"only proves something if the owner reaches the resource")
            Session.remove()
            walked.add((kind, method, template))
    # this branch's routes; services merged later are walked automatically
    assert {("token", "PATCH", "/api/v1/team/members/<id>"), ("session", "DELETE", "/api/v1/team/members/<id>"),
            ("api_key", "PATCH", "/api/v1/customers/<id>"),
            ("token", "DELETE", "/api/v1/settings/api-keys/<id>")} <= walked


def test_every_factory_creates_a_row_of_the_given_company(app):
    company = sign_up(app.test_client())
    for collection, factory in FACTORIES.items():
        row = factory(company.company["id"])
        Session.add(row)
        Session.commit()
        assert Session.get(type(row), row.id).company_id == company.company["id"], collection


def test_a_route_without_a_factory_fails_the_walk_with_instructions():
    class Rule:
        rule = "/api/v1/widgets/<int:widget_id>"
        arguments = {"widget_id"}
    with pytest.raises(pytest.fail.Exception, match=r"Add FACTORIES\['widgets'\]"):
        create_for_company_a(Rule(), 1)
