"""What every section schema of conf/gateway.yaml shares (as Kong's schema typedefs).

A leaf module: the stages define their schemas with these and policy.py composes the
stages' schemas, so these cannot live in policy.py without an import cycle.
"""
import os
import re

from limits import parse as parse_rate
from marshmallow import ValidationError, fields, validate


class PolicyError(Exception):
    """The policy file is missing, unreadable or invalid; the message names the key."""


class RateString(fields.String):
    """A flask-limiter rate such as ``50/minute``."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            parse_rate(text)
        except ValueError:
            raise ValidationError(f"not a rate limit: {text!r} (expected e.g. '100/hour')")
        return text


class SecretString(fields.String):
    """A secret, or ``${NAME}``: the value of the environment variable NAME (so that the
    policy file, which is committed, need not hold it); an unset variable stops the start."""

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        named = re.fullmatch(r"\$\{([A-Z_][A-Z0-9_]*)\}", value)
        if named is None:
            return value
        if not os.environ.get(named.group(1)):
            raise ValidationError(f"the environment variable {named.group(1)} is not set")
        return os.environ[named.group(1)]


def strict(cls):
    """An unknown key is an error naming it: a misspelt setting must not be silently ignored."""
    cls.Meta = type("Meta", (), {"unknown": "raise"})
    return cls


positive = validate.Range(min=1)


def require_complete_defaults(entry_schema, data):
    """A section of ``defaults`` plus per-name overrides of ``entry_schema``: the defaults
    must set every field, so that an override may set only some."""
    missing = [name for name in entry_schema().fields if name not in data.get("defaults", {})]
    if missing:
        raise ValidationError({"defaults": {name: ["Missing data for required field."]
                                            for name in missing}})
