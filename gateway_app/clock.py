""""Now" for the business rules: a booking in the past, the calendar's and the dashboard's
today, analytics' last 30 days, this month's plan usage, a customer's next appointment.
Instants the gateway records (created_at, a token's expiry, the outbox) use the real clock.

``app.config["CLOCK"]`` answers an aware UTC datetime (``db.utcnow`` unless set), so a
test can fix the day a rule sees instead of depending on the day it runs.
"""
from flask import current_app

from .db import utcnow


def business_now():
    return current_app.config.get("CLOCK", utcnow)()
