"""How a view declares what the pipeline must do for it.

Blueprints hold HTTP concerns only; limits, caching, permissions and upstream
dependencies are declared here and enforced by the stages, never inside a view.
"""

POLICY_KEYS = {
    "public",        # no credential required (signup, login, health)
    "admin",         # operator API: needs the GATEWAY_ADMIN_TOKEN bearer, nothing else
    "permission",    # e.g. "calls:read"; checked by the authorization stage
    "cache",         # caching namespace, e.g. "calls"
    "cache_per_user",  # the response depends on the user, not only the company
    "resource",      # resource-layer limit name, e.g. "call_exports"
    "upstream",      # provider this view depends on, e.g. "stripe" (circuit breaker fallback)
    "service",       # business service the view belongs to, when not its blueprint's name
    "exempt_limits",  # not subject to the user-facing rate limits (signed webhooks, probes)
    "upload",        # takes a file upload of this kind of the policy's files section, e.g. "attachments"
}


# a view's marker: it takes query parameters nobody declared (blueprints/parsing.py)
ANY_QUERY = "gateway_any_query"

ADMIN = {"admin": True, "exempt_limits": True}


def gateway_policy(**declared):
    unknown = set(declared) - POLICY_KEYS
    if unknown:
        raise TypeError(f"unknown gateway policy keys: {sorted(unknown)}")

    def decorate(view):
        merged = dict(getattr(view, "gateway_policy", {}))
        merged.update(declared)
        view.gateway_policy = merged
        return view
    return decorate
