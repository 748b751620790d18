"""The per-request context every pipeline stage reads and writes (``g.gateway``)."""
import random
import re
import time
from dataclasses import dataclass, field
from functools import lru_cache


REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")


@dataclass(frozen=True)
class Principal:
    """Who is calling, resolved by the authentication stage from one credential."""
    kind: str                      # "api_key" | "token" | "session"
    company_id: int
    tier: str
    user_id: int | None = None
    role: str | None = None        # users only
    api_key_id: int | None = None
    scopes: tuple = ()             # API keys only: ("read",) or ("read", "write")
    credential_id: str | None = None  # token jti / session id / key prefix
    # the company's timezone name, read with the rest: the views that work in local time
    # (dashboard, calendar, date filters) need no statement of their own for it. A change
    # bumps the company's version, as a tier change does. None: not known (an entry
    # cached before it was kept), read the company's row.
    timezone: str | None = None

    def __hash__(self):
        # kept: principals key the request path's memos (quota sets, cache scopes), and
        # the generated hash would build a tuple of every field on each lookup
        found = self.__dict__.get("_hash")
        if found is None:
            found = hash((self.kind, self.company_id, self.tier, self.user_id, self.role,
                          self.api_key_id, self.scopes, self.credential_id))
            object.__setattr__(self, "_hash", found)
        return found

    @property
    def rate_key(self):
        """Identity for per-principal limits: the user, or the API key."""
        return f"key:{self.api_key_id}" if self.kind == "api_key" else f"user:{self.user_id}"


@dataclass(slots=True)
class RequestContext:
    request_id: str
    started: float = field(default_factory=time.perf_counter)
    service: str | None = None
    route_policy: dict = field(default_factory=dict)
    principal: Principal | None = None
    client_ip: str | None = None
    stage_names: tuple = ()        # the pipeline's stages, in order
    stage_marks: list = field(default_factory=list)   # pipeline.run_stages: see ``timings``
    stages_reached: int = 0          # how many stages' ``before`` ran
    short_circuited_by: str | None = None
    cache_status: str | None = None
    rate_limit_headers: tuple = ()   # (name, value) pairs the rate-limiting stage adds
    upstream: str | None = None
    cache_lookup: object = None    # the caching stage's decision, from before to after
    response_transform: object = None   # the transforms stage's, for its ``after``
    ahead: dict | None = None   # stage name -> (item, answer) of its call made ahead (pipeline/base.py)

    @property
    def company_id(self):
        return self.principal.company_id if self.principal else None

    @property
    def timings(self):
        """Seconds each stage's ``before`` took, by stage name, in pipeline order."""
        marks = self.stage_marks
        return {name: marks[i + 1] - marks[i] for i, name in enumerate(self.stage_names[:len(marks) - 1])}

    @property
    def elapsed(self):
        return time.perf_counter() - self.started


def accept_request_id(header_value):
    """Keep a well-formed client X-Request-ID; otherwise generate one."""
    if header_value and REQUEST_ID_PATTERN.match(header_value):
        return header_value
    # unique, not secret: random is reseeded in every forked worker, and much cheaper
    # than uuid4's read of the kernel's random source
    return f"{random.getrandbits(128):032x}"


def request_header(environ, name):
    """A request header read straight from the WSGI environ (None when absent).

    ``request.headers.get`` raises and catches a KeyError for every absent header, and
    most of the headers the pipeline looks for are absent from most requests.
    """
    return environ.get(environ_key(name))


@lru_cache(maxsize=256)   # the names are the code's own literals
def environ_key(header_name):
    return "HTTP_" + header_name.upper().replace("-", "_")


def client_ip_of(remote_addr, forwarded_for, trusted_hops):
    """The client address, believing X-Forwarded-For only across ``trusted_hops`` proxies.

    Each trusted proxy appends the address it received from, so the client is the
    entry ``trusted_hops`` from the right; anything further left is client-supplied
    and may be spoofed.
    """
    if trusted_hops <= 0 or not forwarded_for:
        return remote_addr
    hops = [part.strip() for part in forwarded_for.split(",") if part.strip()]
    if len(hops) < trusted_hops:
        return hops[0] if hops else remote_addr
    return hops[-trusted_hops]
