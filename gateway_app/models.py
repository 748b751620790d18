"""The data model. Every business row belongs to one company (tenant)."""
from sqlalchemy import (JSON, BigInteger, ForeignKey, Index, Integer, String, Text,
                        UniqueConstraint)
from sqlalchemy.dialects.mysql import MEDIUMTEXT
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .db import Base, IdType, UTCDateTime, utcnow

TIERS = ("free", "pro", "enterprise", "unlimited")
ROLES = ("owner", "admin", "member", "viewer")
CALL_DIRECTIONS = ("inbound", "outbound")
CALL_STATUSES = ("ongoing", "answered", "missed", "voicemail", "failed")
CALL_OUTCOMES = ("booked", "inquiry", "callback", "not_interested", "transferred", "other")
SENTIMENTS = ("positive", "neutral", "negative")
APPOINTMENT_STATUSES = ("pending", "confirmed", "cancelled", "completed", "no_show")
OUTBOX_STATUSES = ("pending", "done", "dead")


class TimestampMixin:
    created_at: Mapped[object] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class Company(TimestampMixin, Base):
    __tablename__ = "companies"
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    tier: Mapped[str] = mapped_column(String(20), default="free", nullable=False)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", nullable=False)
    # {"mon": [["09:00", "17:00"]], ...}
    business_hours: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)
    # {"retell_agent_id": ..., "calcom_event_type_id": ..., "stripe_customer_id": ...}
    integrations: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)
    # provider account ids copied out of `integrations` so webhooks find their company by index
    retell_agent_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    calcom_event_type_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    plan_minutes: Mapped[int] = mapped_column(Integer, default=500, nullable=False)
    # when the Stripe event that last set `tier` was created: Stripe does not order deliveries,
    # so a subscription event created before it is stale and must not reset the tier
    tier_set_at: Mapped[object | None] = mapped_column(UTCDateTime)


class User(TimestampMixin, Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"),
                                            nullable=False, index=True)
    email: Mapped[str] = mapped_column(String(254), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    role: Mapped[str] = mapped_column(String(20), nullable=False)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(20), default="active", nullable=False)
    # bumped on password change / role change: tokens carry it and older ones stop working
    credential_version: Mapped[int] = mapped_column(Integer, default=1, nullable=False)
    invite_token_hash: Mapped[str | None] = mapped_column(String(128))
    last_login_at: Mapped[object | None] = mapped_column(UTCDateTime)
    company: Mapped[Company] = relationship(lazy="joined")


class ApiKey(TimestampMixin, Base):
    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"),
                                            nullable=False, index=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    prefix: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    key_hash: Mapped[str] = mapped_column(String(128), nullable=False)
    scopes: Mapped[list] = mapped_column(JSON, nullable=False)
    revoked_at: Mapped[object | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[object | None] = mapped_column(UTCDateTime)


class RefreshToken(TimestampMixin, Base):
    __tablename__ = "refresh_tokens"
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    jti: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    family: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         nullable=False, index=True)
    expires_at: Mapped[object] = mapped_column(UTCDateTime, nullable=False)
    used_at: Mapped[object | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[object | None] = mapped_column(UTCDateTime)


class Customer(TimestampMixin, Base):
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"),
                                            nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    phone: Mapped[str | None] = mapped_column(String(20))  # E.164
    email: Mapped[str | None] = mapped_column(String(254))
    notes: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[object] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow,
                                               nullable=False)
    __table_args__ = (
        Index("ix_customers_company_name", "company_id", "name"),
        # one customer per phone and per (lower-cased) e-mail in a company, so a create racing
        # a webhook's find-or-create fails instead of duplicating; NULLs never collide
        UniqueConstraint("company_id", "phone", name="uq_customers_company_phone"),
        UniqueConstraint("company_id", "email", name="uq_customers_company_email"),
        Index("ix_customers_company_created", "company_id", "created_at"),
    )


# The customers list's order (newest first, walked forwards: MariaDB tests a condition in
# an index only on a forward walk), then what a search tests (name, e-mail and phone),
# tested in the index: a customer's row is read only when it matches. Declared here,
# after the class, as SQLAlchemy declares an index with a descending column.
CUSTOMERS_NEWEST_FIRST = Index("ix_customers_company_updated_text", Customer.company_id,
                               Customer.updated_at.desc(), Customer.id.desc(),
                               Customer.name, Customer.email, Customer.phone)


class CustomerAttachment(TimestampMixin, Base):
    """A file a user attached to a customer (a contract, a photo); its bytes are in the file store."""
    __tablename__ = "customer_attachments"
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"),
                                            nullable=False)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"),
                                             nullable=False)
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    filename: Mapped[str] = mapped_column(String(255), nullable=False)   # sanitised
    content_type: Mapped[str] = mapped_column(String(100), nullable=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    path: Mapped[str] = mapped_column(String(500), nullable=False)      # the file store's key
    __table_args__ = (
        Index("ix_customer_attachments_company_customer", "company_id", "customer_id", "id"),
    )


class Call(TimestampMixin, Base):
    __tablename__ = "calls"
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"),
                                            nullable=False)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    retell_call_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    direction: Mapped[str] = mapped_column(String(10), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    from_number: Mapped[str | None] = mapped_column(String(20))
    to_number: Mapped[str | None] = mapped_column(String(20))
    started_at: Mapped[object] = mapped_column(UTCDateTime, nullable=False)
    ended_at: Mapped[object | None] = mapped_column(UTCDateTime)
    duration_seconds: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    outcome: Mapped[str | None] = mapped_column(String(20))
    sentiment: Mapped[str | None] = mapped_column(String(10))
    summary: Mapped[str | None] = mapped_column(Text)
    # MariaDB's TEXT holds 64 KB; a long call's transcript needs MEDIUMTEXT
    transcript: Mapped[str | None] = mapped_column(Text().with_variant(MEDIUMTEXT(), "mysql"))
    analysis: Mapped[dict | None] = mapped_column(JSON)
    # the call's recording, copied from Retell into the file store (services/recordings.py)
    recording_path: Mapped[str | None] = mapped_column(String(500))
    recording_content_type: Mapped[str | None] = mapped_column(String(100))
    recording_size: Mapped[int | None] = mapped_column(BigInteger)
    __table_args__ = (
        # status last (after the id, for the lists' order): the dashboard overview counts
        # a week's calls by status from the index alone
        Index("ix_calls_company_started_status", "company_id", "started_at", "id", "status"),
        Index("ix_calls_company_status_started", "company_id", "status", "started_at"),
        Index("ix_calls_company_customer_started", "company_id", "customer_id", "started_at"),
    )
    # loaded explicitly (joinedload) by the call lists, never one query per row
    customer: Mapped["Customer | None"] = relationship(lazy="select")


class Appointment(TimestampMixin, Base):
    __tablename__ = "appointments"
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"),
                                            nullable=False)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    starts_at: Mapped[object] = mapped_column(UTCDateTime, nullable=False)
    ends_at: Mapped[object] = mapped_column(UTCDateTime, nullable=False)
    status: Mapped[str] = mapped_column(String(20), default="pending", nullable=False)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", nullable=False)
    notes: Mapped[str | None] = mapped_column(Text)
    calcom_booking_uid: Mapped[str | None] = mapped_column(String(100), unique=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    # what the keyed request asked for and what it was answered, so a retry gets the same
    idempotency_fingerprint: Mapped[str | None] = mapped_column(String(64))
    booking_status_code: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[object] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow,
                                               nullable=False)
    __table_args__ = (
        # status and call_id last (after the id, for the calendar's and the activity feed's
        # order): the overview counts upcoming appointments by status and a week's
        # bookings by call from the indexes alone
        Index("ix_appointments_company_starts_status", "company_id", "starts_at", "id", "status"),
        Index("ix_appointments_company_customer", "company_id", "customer_id", "starts_at"),
        Index("ix_appointments_company_created_call", "company_id", "created_at", "id", "call_id"),
        # a call's appointments (its detail), in time order: without it SQLite walked all the
        # company's appointments by start, for the ORDER BY
        Index("ix_appointments_company_call", "company_id", "call_id", "starts_at"),
        UniqueConstraint("company_id", "idempotency_key", name="uq_appointments_idempotency"),
    )


class Invoice(TimestampMixin, Base):
    """Mirror of a Stripe invoice, kept from webhooks for the billing fallback."""
    __tablename__ = "invoices"
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"),
                                            nullable=False)
    stripe_invoice_id: Mapped[str] = mapped_column(String(100), unique=True, nullable=False)
    number: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), default="usd", nullable=False)
    amount_due: Mapped[int] = mapped_column(Integer, default=0, nullable=False)  # minor units
    amount_paid: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    period_start: Mapped[object | None] = mapped_column(UTCDateTime)
    period_end: Mapped[object | None] = mapped_column(UTCDateTime)
    hosted_invoice_url: Mapped[str | None] = mapped_column(String(500))
    __table_args__ = (Index("ix_invoices_company_created", "company_id", "created_at"),)


class Payment(TimestampMixin, Base):
    __tablename__ = "payments"
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"),
                                            nullable=False)
    stripe_payment_id: Mapped[str] = mapped_column(String(100), unique=True, nullable=False)
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id", ondelete="SET NULL"))
    amount: Mapped[int] = mapped_column(Integer, nullable=False)  # minor units
    currency: Mapped[str] = mapped_column(String(3), default="usd", nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    __table_args__ = (Index("ix_payments_company_created", "company_id", "created_at"),)


class UsageRecord(TimestampMixin, Base):
    """Usage reported to Stripe as a meter event; `identifier` makes reporting idempotent."""
    __tablename__ = "usage_records"
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"),
                                            nullable=False)
    period_start: Mapped[object] = mapped_column(UTCDateTime, nullable=False)
    period_end: Mapped[object] = mapped_column(UTCDateTime, nullable=False)
    calls: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    minutes: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    identifier: Mapped[str] = mapped_column(String(100), unique=True, nullable=False)
    reported_at: Mapped[object | None] = mapped_column(UTCDateTime)
    __table_args__ = (Index("ix_usage_company_period", "company_id", "period_start"),)


class AuditLog(TimestampMixin, Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(100), nullable=False)
    target_type: Mapped[str | None] = mapped_column(String(50))
    target_id: Mapped[str | None] = mapped_column(String(100))
    details: Mapped[dict | None] = mapped_column(JSON)
    ip: Mapped[str | None] = mapped_column(String(45))
    request_id: Mapped[str | None] = mapped_column(String(64))
    __table_args__ = (Index("ix_audit_company_created", "company_id", "created_at"),)


class WebhookEvent(Base):
    """One row per provider event processed: the unique key makes processing exactly-once."""
    __tablename__ = "webhook_events"
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    provider: Mapped[str] = mapped_column(String(20), nullable=False)
    event_id: Mapped[str] = mapped_column(String(255), nullable=False)
    event_type: Mapped[str | None] = mapped_column(String(100))
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id", ondelete="SET NULL"))
    received_at: Mapped[object] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    __table_args__ = (UniqueConstraint("provider", "event_id", name="uq_webhook_provider_event"),)


class OutboxMessage(TimestampMixin, Base):
    """A write that must reach a provider, stored with the business change and delivered later."""
    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(50), nullable=False)  # e.g. calcom.booking, email
    payload: Mapped[dict] = mapped_column(JSON, nullable=False)
    status: Mapped[str] = mapped_column(String(10), default="pending", nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    next_attempt_at: Mapped[object] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    locked_until: Mapped[object | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    provider_message_id: Mapped[str | None] = mapped_column(String(255), index=True)
    delivery_status: Mapped[str | None] = mapped_column(String(30))
    completed_at: Mapped[object | None] = mapped_column(UTCDateTime)
    __table_args__ = (Index("ix_outbox_status_next", "status", "next_attempt_at"),)


class StoredFile(TimestampMixin, Base):
    """A generated file kept in the file store (asynchronous exports)."""
    __tablename__ = "stored_files"
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"),
                                            nullable=False, index=True)
    kind: Mapped[str] = mapped_column(String(50), nullable=False)
    path: Mapped[str] = mapped_column(String(500), nullable=False)
    status: Mapped[str] = mapped_column(String(20), default="pending", nullable=False)
    size_bytes: Mapped[int | None] = mapped_column(Integer)
    params: Mapped[dict | None] = mapped_column(JSON)
