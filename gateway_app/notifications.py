"""Email goes out through the outbox (kind ``sendgrid.email``), never inline in a request;
in development without a SendGrid key, into the local sink (dev_mail.py)."""
from . import dev_mail
from .outbox import enqueue

EMAIL_KIND = "sendgrid.email"


def queue_email(session, company_id, to, subject, text, category, html=None):
    """Queue one email in the caller's transaction; the worker sends it through SendGrid."""
    payload = {"to": [to] if isinstance(to, str) else list(to), "subject": subject,
               "text": text, "category": category}
    if html:
        payload["html"] = html
    message = enqueue(session, EMAIL_KIND, payload, company_id=company_id)
    if dev_mail.sink_enabled():
        dev_mail.keep(session, message)
    return message
