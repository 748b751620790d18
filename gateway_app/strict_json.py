"""The one JSON decoder for what clients and providers send (I-JSON, RFC 7493).

Python's json module accepts more than interoperable JSON, and what it accepts then fails
deeper down, as a 500: a lone surrogate (``"\\ud800"``) cannot be encoded for the database
or the response, ``NaN``/``Infinity`` and ``1e400`` (infinity) are not JSON numbers, an
integer of thousands of digits overflows every column and timestamp conversion, and a
body nested a few thousand levels deep exhausts the recursion limit, in the decoder or
in the schema that walks it. Every request body is decoded here, and each of these is
refused as malformed, with the reason, before any schema sees the document.
"""
import json
import math
import re

# I-JSON: integers exactly representable by an IEEE 754 double
MAX_SAFE_INTEGER = 2 ** 53 - 1
# far deeper than any document the API takes (the deepest, a webhook, nests 4 levels)
MAX_DEPTH = 32
SURROGATE = re.compile("[\ud800-\udfff]")


class MalformedJSON(ValueError):
    """``reason`` says what is wrong, for the client."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def _integer(text):
    # the digit count first: int() of a 100,000-digit string is itself slow (and limited)
    if len(text.lstrip("-")) > 16 or abs(int(text)) > MAX_SAFE_INTEGER:
        raise MalformedJSON(f"The integer {text[:20]}{'...' if len(text) > 20 else ''} is outside "
                            f"the interoperable range of ±{MAX_SAFE_INTEGER} (RFC 7493).")
    return int(text)


def _number(text):
    value = float(text)
    if not math.isfinite(value):
        raise MalformedJSON(f"The number {text[:20]}{'...' if len(text) > 20 else ''} is too large.")
    return value


def _constant(name):
    raise MalformedJSON(f"{name} is not a JSON value.")


def loads(raw):
    """The document in ``raw`` (bytes, UTF-8), or MalformedJSON saying why it is not one."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw
    except UnicodeDecodeError as exc:
        raise MalformedJSON(f"The body is not valid UTF-8 (byte {exc.start}).") from None
    try:
        document = json.loads(text, parse_int=_integer, parse_float=_number,
                              parse_constant=_constant)
    except MalformedJSON:
        raise
    except RecursionError:
        raise MalformedJSON(f"The document nests deeper than {MAX_DEPTH} levels.") from None
    except ValueError as exc:  # json.JSONDecodeError, and int()'s digit limit
        raise MalformedJSON(f"The body is not valid JSON: {exc}.") from None
    check_shape(document)
    return document


def check_shape(document):
    """Depth and strings (keys too), walked without recursion."""
    pending = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            if SURROGATE.search(value):
                raise MalformedJSON("A string holds a lone UTF-16 surrogate (\\ud800-\\udfff), "
                                    "which is not a character.")
        elif isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                raise MalformedJSON(f"The document nests deeper than {MAX_DEPTH} levels.")
            if isinstance(value, dict):
                pending.extend((key, depth) for key in value)
                pending.extend((item, depth + 1) for item in value.values())
            else:
                pending.extend((item, depth + 1) for item in value)
