"""Find or create the customer a provider event is about, within one company.

Phones and e-mails are unique per company (models.Customer), so a customer created by
a concurrent request between our lookup and our insert makes the insert fail; the insert
runs in a SAVEPOINT so that failure undoes only it, and the lookup then finds the winner's
row. The lookup after a conflict is a locking read: under MariaDB's REPEATABLE READ a plain
SELECT would still answer from the transaction's older snapshot, without the winner's row.
"""
import logging

import phonenumbers
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ..events import emit
from ..models import Customer

log = logging.getLogger("gateway.webhooks")


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


def _first(session, company_id, condition, latest=False):
    query = select(Customer).where(Customer.company_id == company_id, condition) \
        .order_by(Customer.id).limit(1)
    if latest:  # see the module docstring
        query = query.with_for_update(read=True).execution_options(populate_existing=True)
    return session.scalar(query)


def _conflict_saving(session, customer):
    """None once ``customer`` is saved, or the IntegrityError when its phone or e-mail was
    taken meanwhile (re-raised if the lookup still finds nobody: the whole event then runs
    again, see dedupe.process_once)."""
    try:
        with session.begin_nested():
            session.add(customer)
            session.flush()
    except IntegrityError as exc:
        log.info("customer of company %s created concurrently: %s", customer.company_id, exc.orig)
        return exc
    emit(session, "customers.updated", customer.company_id, customer_id=customer.id)
    return None


def by_phone(session, company_id, number):
    """``number`` must already be E.164 (see ``e164``)."""
    condition = Customer.phone == number
    found = _first(session, company_id, condition)
    if found is not None:
        return found
    customer = Customer(company_id=company_id, name=number, phone=number)
    conflict = _conflict_saving(session, customer)
    if conflict is None:
        return customer
    found = _first(session, company_id, condition, latest=True)
    if found is None:
        raise conflict
    return found


def by_email(session, company_id, email, name=None, phone=None):
    """The customer with this e-mail; else the one with this phone when it has no e-mail
    yet (a caller the voice agent already knows), which then gets the e-mail; else a new one.
    A phone another customer has stays with them."""
    email = email.strip().lower()
    for latest in (False, True):
        found = _first(session, company_id, func.lower(Customer.email) == email, latest)
        if found is not None:
            return found
        owner = _first(session, company_id, Customer.phone == phone, latest) if phone else None
        if owner is not None and owner.email is None:
            customer = owner
            customer.email = email[:254]
            if name and customer.name == phone:  # named after its number by by_phone
                customer.name = name[:200]
        else:
            customer = Customer(company_id=company_id, name=(name or email)[:200],
                                email=email[:254], phone=None if owner is not None else phone)
        conflict = _conflict_saving(session, customer)
        if conflict is None:
            return customer
    raise conflict
