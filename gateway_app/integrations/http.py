"""What every provider client shares: a pooled session, timeouts, safe retries, the breaker.

Each provider gets ONE ``requests.Session`` per process (connection pooling through
``HTTPAdapter``). urllib3's ``Retry`` retries connection failures (the request never
left) for every method, and read errors / 502-504 only for the methods the provider
declares safe to repeat: idempotent verbs, or POSTs that always carry the provider's
idempotency key. Every call runs through the provider's circuit breaker; a timeout, a
connection failure or a 5xx counts as a failure, a 4xx does not.
"""
import contextlib
import logging

import pybreaker
import requests
from flask import current_app, g, has_request_context
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from ..breakers import breaker_for

log = logging.getLogger("gateway.integrations")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class ProviderError(Exception):
    def __init__(self, service, message):
        super().__init__(message)
        self.service = service


class NotConfigured(ProviderError):
    """No API key for this provider: its features answer 503, never crash."""

    counts_as_failure = False

    def __init__(self, service):
        super().__init__(service, f"The {service} integration is not configured "
                                  f"({service.upper()}_API_KEY is unset).")


class ProviderFault(ProviderError):
    """Timeout, refused connection or 5xx: the provider is unhealthy (a breaker failure)."""

    def __init__(self, service, message, status=None):
        super().__init__(service, message)
        self.status = status


class ProviderRejected(ProviderError):
    """A 4xx: the provider is up and refused this request; not a breaker failure."""

    counts_as_failure = False

    def __init__(self, service, status, body):
        super().__init__(service, f"{service} answered {status}: {str(body)[:300]}")
        self.status = status
        self.body = body


class UpstreamUnavailable(Exception):
    """The upstream cannot serve now (breaker open or the call failed).

    Views let it propagate: the circuit-breaker stage answers with the stale cached
    copy (GET) or a 503 naming ``service`` with ``Retry-After``.
    """

    def __init__(self, service, retry_after, reason, breaker_open=False):
        super().__init__(f"{service} unavailable: {reason}")
        self.service = service
        self.retry_after = max(1, int(retry_after or 1))
        self.reason = reason
        self.breaker_open = breaker_open


class ProviderClient:
    """Base class: subclasses set ``service`` and ``retry_methods`` and add endpoint methods."""

    service = "provider"
    retry_methods = SAFE_METHODS

    def __init__(self, base_url, api_key, breaker, timeouts):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.breaker = breaker
        self.timeout = (timeouts["connect_timeout"], timeouts["read_timeout"])
        self.session = build_session(self.retry_methods, timeouts)
        self.session.headers.update(self.default_headers())

    @property
    def configured(self):
        return bool(self.api_key)

    def default_headers(self):
        return {"Authorization": f"Bearer {self.api_key}", "Accept": "application/json",
                "User-Agent": "voice-gateway/0.1"}

    def request(self, method, path, timeout=None, **kwargs):
        """Send through the breaker; return the ``requests.Response`` of a 2xx/3xx.

        ``timeout`` (seconds) shortens the read timeout for a caller that must answer soon.
        """
        return self.request_url(method, self.base_url + path, timeout, **kwargs)

    def request_url(self, method, url, timeout=None, **kwargs):
        """``request`` to an absolute URL (a file the provider hosts elsewhere)."""
        if not self.configured:
            raise NotConfigured(self.service)
        headers = dict(kwargs.pop("headers", None) or {})
        request_id = current_request_id()
        if request_id:
            headers.setdefault("X-Request-ID", request_id)
        try:
            return self.breaker.call(self._send, method, url,
                                     headers=headers, timeout=self.timeouts(timeout), **kwargs)
        except pybreaker.CircuitBreakerError as exc:
            raise UpstreamUnavailable(self.service, self.breaker.retry_after(),
                                      f"circuit open ({exc})", breaker_open=True) from None
        except ProviderFault as exc:
            raise UpstreamUnavailable(self.service, self.breaker.retry_after() or 1,
                                      str(exc)) from exc

    def timeouts(self, read_timeout=None):
        if read_timeout is None:
            return self.timeout
        connect, read = self.timeout
        return (min(connect, read_timeout), min(read, read_timeout))

    def _send(self, method, url, **kwargs):
        try:
            response = self.session.request(method, url, **kwargs)
        except requests.Timeout as exc:
            raise ProviderFault(self.service, f"{self.service} timed out: {exc}") from exc
        except requests.RequestException as exc:  # refused, reset, DNS, retries exhausted
            raise ProviderFault(self.service, f"{self.service} unreachable: {type(exc).__name__}") from exc
        if response.status_code >= 500:
            raise ProviderFault(self.service, f"{self.service} answered {response.status_code}",
                                status=response.status_code)
        if response.status_code >= 400:
            raise ProviderRejected(self.service, response.status_code, parse_body(response))
        return response


def parse_body(response):
    try:
        return response.json()
    except ValueError:
        return response.text


def build_session(retry_methods, timeouts):
    retries = Retry(total=timeouts["retries"], connect=timeouts["retries"],
                    read=timeouts["retries"], status=timeouts["retries"],
                    status_forcelist=(502, 503, 504), allowed_methods=retry_methods,
                    backoff_factor=timeouts["retry_backoff"], respect_retry_after_header=False,
                    raise_on_status=False)
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=timeouts["pool_size"],
                          max_retries=retries)
    session = requests.Session()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def current_request_id():
    """The inbound request's id, forwarded upstream (docs/contract.md section 8)."""
    if has_request_context():
        ctx = g.get("gateway")
        return ctx.request_id if ctx else None
    return None


def timeouts_for(app, service):
    section = app.extensions["gateway"].policy["integrations"]
    return {**section["defaults"], **section["providers"].get(service, {})}


def client_for(client_class, app=None):
    """The process-wide client of ``client_class`` for this app (one pooled session each)."""
    app = app or current_app
    clients = app.extensions["gateway"].components.setdefault("integration_clients", {})
    client = clients.get(client_class.service)
    if client is None:
        upper = client_class.service.upper()
        client = clients[client_class.service] = client_class(
            app.config[f"{upper}_BASE_URL"], app.config.get(f"{upper}_API_KEY"),
            breaker_for(client_class.service, app), timeouts_for(app, client_class.service))
    return client


NOT_CONFIGURED_RETRY = 300.0   # seconds: an operator may add the key; the message waits meanwhile
TRANSIENT_REJECTIONS = (408, 409, 425, 429)


@contextlib.contextmanager
def outbox_delivery():
    """Translate provider outcomes into the outbox's: retry later, or give up for good."""
    from ..outbox import PermanentFailure, RetryLater
    try:
        yield
    except UpstreamUnavailable as exc:
        # breaker open: come back when the next probe may run; a failed call: normal backoff
        raise RetryLater(str(exc), delay=exc.retry_after if exc.breaker_open else None) from exc
    except NotConfigured as exc:
        raise RetryLater(str(exc), delay=NOT_CONFIGURED_RETRY) from exc
    except ProviderRejected as exc:
        if exc.status in TRANSIENT_REJECTIONS:
            raise RetryLater(str(exc)) from exc
        raise PermanentFailure(str(exc)) from exc
