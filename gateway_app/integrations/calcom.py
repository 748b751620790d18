"""Cal.com API v2: bearer key, a ``cal-api-version`` header per endpoint, ``{status, data}`` bodies.

Cal.com has no idempotency keys, so a booking carries our own reference in its
metadata and ``find_booking`` looks for it before anything is posted again.
"""
import datetime as dt

from .http import SAFE_METHODS, ProviderClient

API_VERSIONS = {
    "bookings.create": "2026-02-25",
    "bookings.cancel": "2026-02-25",
    "bookings.list": "2026-05-01",
    "slots": "2024-09-04",
    "event_types": "2024-06-14",
}


class CalcomClient(ProviderClient):
    service = "calcom"
    retry_methods = SAFE_METHODS          # POST /bookings has no idempotency key: never retried

    def call(self, method, path, endpoint, **kwargs):
        headers = {"cal-api-version": API_VERSIONS[endpoint]}
        response = self.request(method, path, headers=headers, **kwargs)
        return response.json().get("data")

    def create_booking(self, event_type_id, start, attendee, metadata, timeout=None):
        """``start`` is an aware datetime; ``attendee`` {name, email, timeZone, phoneNumber?}."""
        body = {"start": iso_utc(start), "eventTypeId": int(event_type_id),
                "attendee": attendee, "metadata": metadata}
        return self.call("POST", "/bookings", "bookings.create", json=body, timeout=timeout)

    def find_booking(self, event_type_id, start, end, reference):
        """The booking whose metadata carries ``reference`` (our outbox reference), or None."""
        params = {"eventTypeId": str(event_type_id), "afterStart": iso_utc(start),
                  "beforeEnd": iso_utc(end), "take": 100}
        for booking in self.call("GET", "/bookings", "bookings.list", params=params) or []:
            if (booking.get("metadata") or {}).get("gateway_reference") == reference:
                return booking
        return None

    def cancel_booking(self, uid, reason):
        return self.call("POST", f"/bookings/{uid}/cancel", "bookings.cancel",
                         json={"cancellationReason": reason})

    def slots(self, event_type_id, start, end, time_zone="UTC"):
        params = {"eventTypeId": str(event_type_id), "start": iso_utc(start),
                  "end": iso_utc(end), "timeZone": time_zone}
        return self.call("GET", "/slots", "slots", params=params)


def iso_utc(moment):
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
