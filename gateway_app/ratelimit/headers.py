"""RateLimit-Policy and RateLimit (draft-ietf-httpapi-ratelimit-headers-11), as structured fields.

    RateLimit-Policy: "ip";q=1000;w=3600, "burst";q=50;w=60, "user";q=500;w=3600
    RateLimit: "user";r=12;t=40

Every request answers both, so the costly parts are done once: a policy name is
serialised by http_sfv once (it is an sf-string and may need escaping), the integer
parameters are plain decimal (RFC 8941 section 4.1.4), and a RateLimit-Policy value,
fixed by the set of quotas, is kept per set.
"""
import functools

import http_sfv


@functools.lru_cache(maxsize=1024)
def _name(name):
    return str(http_sfv.Item(name))


def _member(name, **params):
    """``"name";key=value...`` with integer values."""
    return _name(name) + "".join(f";{key}={int(value)}" for key, value in params.items())


@functools.lru_cache(maxsize=1024)
def _policy_value(entries):
    return ", ".join(_member(name, q=limit, w=window) for name, limit, window in entries)


def policy_header(quotas):
    return _policy_value(tuple((quota.name, quota.limit, quota.window) for quota in quotas))


def limit_header(quota, window):
    return _member(quota.name, r=window.remaining, t=window.reset)


def rate_limit_headers(decision):
    quota, window = decision.closest_to_exhaustion()
    return {"RateLimit-Policy": policy_header(decision.quotas),
            "RateLimit": limit_header(quota, window)}
