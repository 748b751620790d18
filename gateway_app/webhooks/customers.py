"""Find or create the customer a provider event is about, within one company."""
import phonenumbers
from sqlalchemy import func, select

from ..events import emit
from ..models import Customer


def e164(raw_number):
    """The number in E.164, or None when it is not a valid international number."""
    if not raw_number:
        return None
    try:
        parsed = phonenumbers.parse(raw_number, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _created(session, company_id, customer):
    session.add(customer)
    session.flush()
    emit(session, "customers.updated", company_id, customer_id=customer.id)
    return customer


def by_phone(session, company_id, number):
    """``number`` must already be E.164 (see ``e164``)."""
    found = session.scalar(select(Customer).where(
        Customer.company_id == company_id, Customer.phone == number).order_by(Customer.id).limit(1))
    if found is not None:
        return found
    return _created(session, company_id, Customer(company_id=company_id, name=number, phone=number))


def by_email(session, company_id, email, name=None, phone=None):
    email = email.strip().lower()
    found = session.scalar(select(Customer).where(
        Customer.company_id == company_id, func.lower(Customer.email) == email)
        .order_by(Customer.id).limit(1))
    if found is not None:
        return found
    return _created(session, company_id, Customer(
        company_id=company_id, name=(name or email)[:200], email=email[:254], phone=phone))
