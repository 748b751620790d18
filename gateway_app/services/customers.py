"""Creating and changing customers: contacts normalised, one phone or e-mail per customer.

The customers blueprint calls ``create`` or ``update`` and turns InvalidContact or
DuplicateCustomer into its HTTP answer.
"""
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import bindparam, insert
from sqlalchemy import update as update_statement
from sqlalchemy.exc import IntegrityError

from gateway_app import events
from gateway_app.audit import audit_inserted
from gateway_app.db import read_connection, utcnow
from gateway_app.merge_patch import patched
from gateway_app.models import Customer
from gateway_app.services.contacts import InvalidPhoneNumber, normalise_email, normalise_phone
from gateway_app.services.customers_queries import CUSTOMERS, find_duplicate, owned_customer

CUSTOMERS_TABLE = Customer.__table__


class InvalidContact(Exception):
    def __init__(self, field, message):
        super().__init__(message)
        self.field = field
        self.message = message


class DuplicateCustomer(Exception):
    def __init__(self, field, existing_customer_id):
        super().__init__(f"Customer {existing_customer_id} already has this {field}.")
        self.field = field
        self.existing_customer_id = existing_customer_id


def contact_fields(data, region):
    """Phone as E.164 and e-mail lower-cased; a phone that does not parse is refused on ``phone``."""
    cleaned = dict(data)
    if cleaned.get("phone") is not None:
        try:
            cleaned["phone"] = normalise_phone(cleaned["phone"], region)
        except InvalidPhoneNumber as exc:
            raise InvalidContact("phone", str(exc)) from None
    if cleaned.get("email") is not None:
        cleaned["email"] = normalise_email(cleaned["email"])
    if "name" in cleaned:
        cleaned["name"] = cleaned["name"].strip()
        if not cleaned["name"]:
            raise InvalidContact("name", "Must not be blank.")
    return cleaned


def refuse_duplicate(company_id, data, exclude_id=None, connection=None):
    duplicate = find_duplicate(company_id, data.get("phone"), data.get("email"), exclude_id,
                               connection=connection)
    if duplicate is not None:
        raise DuplicateCustomer(*duplicate)


@contextmanager
def duplicate_race_refused(company_id, contacts, exclude_id=None):
    """A customer given the same phone or e-mail after ``refuse_duplicate`` looked (a
    concurrent request or webhook) makes the unique key refuse the write: that is the
    same DuplicateCustomer, naming the customer that won, looked for once the refused
    write has rolled back (its transaction could not see the winner). ``contacts``: the
    write's phone and e-mail, filled in by the block before it writes."""
    try:
        yield
    except IntegrityError:
        with read_connection() as connection:
            refuse_duplicate(company_id, contacts, exclude_id, connection=connection)
        raise  # not a duplicate customer: a genuine fault


def record_change(connection, unit, action, customer, user_id, **details):
    """Audit row (on ``connection``) and customers.updated event (of ``unit``, a session or
    a CoreWrite), both committed with the change."""
    audit_inserted(connection, action, "customer", customer["id"], **details)
    events.emit(unit, "customers.updated", customer["company_id"],
                user_id=user_id, customer_id=customer["id"])


# The writes are Core statements in a transaction of their own (events.core_write): the
# answer is the dict written, with no ORM instance to build, track and flush, and no
# session set up and torn down around them (the unit of work of a customer and its audit
# row, then the session alone, cost more than their SQL).
_INSERT = insert(CUSTOMERS_TABLE)
# what a merge patch may change
EDITABLE = ("name", "phone", "email", "notes")


@lru_cache(maxsize=32)
def _update_statement(names):
    return (update_statement(CUSTOMERS_TABLE)
            .where(CUSTOMERS.id == bindparam("customer_id"), CUSTOMERS.company_id == bindparam("owner_id"))
            .values({name: bindparam(name) for name in (*names, "updated_at")}))


def create(company_id, user_id, data, region):
    """A new customer of ``company_id`` (a dict of its columns); phones without a country
    code are read in ``region``."""
    data = contact_fields(data, region)
    with duplicate_race_refused(company_id, data), events.core_write() as write:
        refuse_duplicate(company_id, data, connection=write.connection)
        now = utcnow()
        customer = {"company_id": company_id, "name": data["name"], "phone": data.get("phone"),
                    "email": data.get("email"), "notes": data.get("notes"), "created_at": now,
                    "updated_at": now}
        customer["id"] = write.connection.execute(_INSERT, customer).inserted_primary_key[0]
        record_change(write.connection, write, "customer.created", customer, user_id, fields=sorted(data))
    return customer


def update(company_id, customer_id, user_id, patch, region):
    """The company's customer ``customer_id`` (a dict of its columns) with the merge patch
    ``patch`` applied (None clears a field), as written; None when the company has no
    such customer."""
    contacts = {}
    with duplicate_race_refused(company_id, contacts, exclude_id=customer_id), \
            events.core_write() as write:
        customer = owned_customer(company_id, customer_id, write.connection)
        if customer is None:
            return None
        data = contact_fields(patched({name: customer[name] for name in EDITABLE}, patch), region)
        changed = tuple(sorted(name for name, value in data.items() if customer[name] != value))
        if not changed:
            return customer
        values = {name: data[name] for name in changed}
        contacts.update(values)
        # only a phone or e-mail it changes can be another customer's: the unique keys
        # hold for the ones it keeps
        refuse_duplicate(company_id, values, exclude_id=customer_id, connection=write.connection)
        values["updated_at"] = utcnow()
        write.connection.execute(_update_statement(changed), {
            **values, "customer_id": customer_id, "owner_id": company_id})
        record_change(write.connection, write, "customer.updated", customer, user_id, fields=list(changed))
    return {**customer, **values}
