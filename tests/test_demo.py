"""The demo data obeys the API's own rules: settings the API accepts back as they are, no
two appointments holding one slot, bookings inside business hours, contacts as stored."""
import collections
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from gateway_app.db import Session
from gateway_app.demo import COMPANIES, seed_demo
from gateway_app.models import Appointment, Company, Customer
from gateway_app.services import appointments_rules as rules
from gateway_app.services.contacts import normalise_phone
from tests.conftest import TEST_NOW

COMPANY = "/api/v1/settings/company"


@pytest.fixture
def demo(app):
    credentials = seed_demo(calls_per_company=400, largest_company_calls=2500)
    assert [row["tier"] for row in credentials] == list(COMPANIES)
    return credentials


def owner(client, row):
    token = client.post("/api/v1/auth/token", json={"email": row["email"], "password": row["password"]})
    assert token.status_code == 200, token.get_json()
    return {"Authorization": f"Bearer {token.get_json()['access_token']}"}


def test_demo_settings_pass_the_apis_validation_as_they_are(client, demo):
    for row in demo:
        headers = owner(client, row)
        settings = client.get(COMPANY, headers=headers).get_json()
        links = settings["integrations"]
        # either linked with ids of the providers' shapes, or not linked at all: never half-made
        assert all(links.values()) or not any(links.values()), links
        body = {name: settings[name] for name in ("name", "timezone", "business_hours", "integrations")}
        answer = client.patch(COMPANY, json=body, headers=headers)
        assert answer.status_code == 200, (row["tier"], answer.get_json())
        assert answer.get_json() == settings


def test_no_two_demo_appointments_hold_one_slot(demo):
    blocking = Session.scalars(select(Appointment).where(
        Appointment.status.in_(rules.BLOCKING_STATUSES))).all()
    assert len(blocking) > 400
    for appointment in blocking:
        clash = Session.scalar(rules.overlapping(appointment.company_id, appointment.starts_at,
                                                 appointment.ends_at, exclude_id=appointment.id))
        assert clash is None, (appointment.id, clash)


def test_demo_appointments_are_inside_business_hours_and_lived_when_they_say(demo):
    companies = {company.id: company for company in Session.scalars(select(Company))}
    appointments = Session.scalars(select(Appointment)).all()
    statuses = collections.Counter(appointment.status for appointment in appointments)
    assert statuses["confirmed"] and statuses["completed"] and statuses["cancelled"]
    for appointment in appointments:
        company = companies[appointment.company_id]
        assert rules.within_business_hours(appointment.starts_at, appointment.ends_at,
                                           ZoneInfo(company.timezone), company.business_hours), appointment.id
        if appointment.status in ("completed", "no_show"):
            assert appointment.starts_at <= TEST_NOW, appointment.id
        if appointment.status in ("pending", "confirmed"):
            assert appointment.starts_at > TEST_NOW, appointment.id


def test_demo_customers_are_stored_as_the_api_stores_them(demo):
    seen_phones, seen_emails = set(), set()
    for customer in Session.scalars(select(Customer)):
        assert normalise_phone(customer.phone) == customer.phone
        assert (customer.company_id, customer.phone) not in seen_phones
        seen_phones.add((customer.company_id, customer.phone))
        if customer.email:
            assert customer.email == customer.email.strip().lower()
            assert (customer.company_id, customer.email) not in seen_emails
            seen_emails.add((customer.company_id, customer.email))


def test_each_provider_account_links_one_demo_company(demo):
    for column in (Company.retell_agent_id, Company.calcom_event_type_id, Company.stripe_customer_id):
        values = Session.scalars(select(column)).all()
        assert len(set(values)) == len(values) == len(COMPANIES)
