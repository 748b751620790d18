"""RateLimit-Policy and RateLimit (draft-ietf-httpapi-ratelimit-headers-11), as structured fields.

    RateLimit-Policy: "ip";q=1000;w=3600, "burst";q=50;w=60, "user";q=500;w=3600
    RateLimit: "user";r=12;t=40
"""
import http_sfv


def _member(name, **params):
    item = http_sfv.Item(name)
    for key, value in params.items():
        item.params[key] = value
    return item


def policy_header(quotas):
    members = http_sfv.List()
    for quota in quotas:
        members.append(_member(quota.name, q=quota.limit, w=quota.window))
    return str(members)


def limit_header(quota, window):
    members = http_sfv.List()
    members.append(_member(quota.name, r=window.remaining, t=window.reset))
    return str(members)


def rate_limit_headers(decision):
    quota, window = decision.closest_to_exhaustion()
    return {"RateLimit-Policy": policy_header(decision.quotas),
            "RateLimit": limit_header(quota, window)}
