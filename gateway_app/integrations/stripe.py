"""Stripe API v1: bearer key, form-encoded bodies, ``Idempotency-Key`` on every POST,
lists paginated with ``starting_after``."""
from .http import ProviderClient, SAFE_METHODS


def form_encode(data, prefix=None):
    """Stripe's bracket notation: {"payload": {"value": 3}} -> [("payload[value]", "3")]."""
    pairs = []
    for key, value in data.items():
        name = f"{prefix}[{key}]" if prefix else key
        if isinstance(value, dict):
            pairs.extend(form_encode(value, name))
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    pairs.extend(form_encode(item, f"{name}[{index}]"))
                else:
                    pairs.append((f"{name}[{index}]", str(item)))
        elif isinstance(value, bool):
            pairs.append((name, "true" if value else "false"))
        elif value is not None:
            pairs.append((name, str(value)))
    return pairs


class StripeClient(ProviderClient):
    service = "stripe"
    # every POST this client sends carries an Idempotency-Key, so all are safe to repeat
    retry_methods = SAFE_METHODS | {"POST"}

    def post(self, path, data, idempotency_key):
        if not idempotency_key:
            raise ValueError("Stripe POSTs need an idempotency key")
        return self.request("POST", path, data=form_encode(data),
                            headers={"Idempotency-Key": idempotency_key}).json()

    def list(self, path, params, limit=25, starting_after=None):
        """One page: ``{"object": "list", "data": [...], "has_more": bool}``."""
        query = dict(params, limit=limit)
        if starting_after:
            query["starting_after"] = starting_after
        return self.request("GET", path, params=form_encode(query)).json()

    def list_invoices(self, customer, limit=25, starting_after=None):
        return self.list("/invoices", {"customer": customer}, limit, starting_after)

    def list_payment_intents(self, customer, limit=25, starting_after=None):
        return self.list("/payment_intents", {"customer": customer}, limit, starting_after)

    def create_meter_event(self, event_name, customer, value, identifier, timestamp):
        """Report usage; Stripe drops a repeated ``identifier``, so re-sending is harmless."""
        return self.post("/billing/meter_events", {
            "event_name": event_name, "identifier": identifier, "timestamp": int(timestamp),
            "payload": {"stripe_customer_id": customer, "value": value},
        }, idempotency_key=identifier)
