"""RateLimit-Policy and RateLimit (draft-ietf-httpapi-ratelimit-headers-11), as structured fields.

    RateLimit-Policy: "ip";q=1000;w=3600, "burst";q=50;w=60, "user";q=500;w=3600
    RateLimit: "user";r=12;t=40

Every request answers both, so the costly parts are done once: a policy name is
serialised by http_sfv once (it is an sf-string and may need escaping), the integer
parameters are plain decimal (RFC 8941 section 4.1.4), and a RateLimit-Policy value,
fixed by the set of quotas, is built once per set (quotas.QuotaSet).
"""
import functools

import http_sfv


@functools.lru_cache(maxsize=1024)
def _name(name):
    return str(http_sfv.Item(name))


def policy_header(quotas):
    return ", ".join(f"{_name(quota.name)};q={int(quota.limit)};w={int(quota.window)}"
                     for quota in quotas)


def limit_header(quota, window):
    return f"{_name(quota.name)};r={int(window.remaining)};t={int(window.reset)}"
