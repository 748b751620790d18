"""What every service blueprint shares: tenant-scoped lookups and cursor pagination."""
import base64
import binascii
import datetime as dt
import json
import re

from flask import g
from flask_smorest import abort
from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import and_, or_, select

from gateway_app import strict_json
from gateway_app.db import Session
from gateway_app.services.timeranges import within_calendar

MAX_PAGE = 100
DEFAULT_PAGE = 25
# a cursor this module made is under 100 characters
MAX_CURSOR_LENGTH = 512
MAX_ROW_ID = 2 ** 63 - 1   # a BIGINT; ids are never larger, so a larger key is not one of ours
# an id a client names (query or body): a larger one would reach SQL, where SQLite cannot bind it
ROW_ID = validate.Range(min=1, max=MAX_ROW_ID)
FEED_KEY = re.compile(r"[a-z_]{1,32}:[1-9][0-9]{0,17}")   # ids of up to 18 digits: under 2**63


def current_principal():
    """Who is calling, as the authentication stage resolved it: the one place a view reads it."""
    return g.gateway.principal


def client_address():
    """The caller's address as the pipeline resolved it (TRUSTED_PROXY_HOPS applied)."""
    return g.gateway.client_ip


def current_company_id():
    """The caller's company: always from the credential, never from the request."""
    return current_principal().company_id


def get_owned_or_404(model, object_id):
    """A row of the caller's company; another company's row is indistinguishable from none."""
    row = Session.scalar(select(model).where(model.id == object_id,
                                             model.company_id == current_company_id()))
    if row is None:
        abort(404, message=f"No {model.__name__.lower()} with id {object_id}.")
    return row


class CursorField(fields.String):
    """An opaque cursor: base64 of [the sort instant, the key] of the last row served; the
    key is the row's id, or "kind:id" in a feed merged from several tables.

    Anything else a client sends (not base64, not JSON, another shape, a key of another
    type or beyond a 64-bit id, an instant outside the accepted calendar) is a 422 on
    ``cursor`` here, before it can reach a comparison in SQL or date arithmetic.
    """

    default_error_messages = {"invalid_cursor": "Not a valid cursor."}

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if len(text) > MAX_CURSOR_LENGTH:
            raise self.make_error("invalid_cursor")
        try:
            decoded = strict_json.loads(base64.urlsafe_b64decode(text.encode() + b"==="))
        except (ValueError, binascii.Error):  # MalformedJSON and UnicodeError are ValueErrors
            raise self.make_error("invalid_cursor") from None
        if not isinstance(decoded, list) or len(decoded) != 2:
            raise self.make_error("invalid_cursor")
        at, key = decoded
        if not (isinstance(key, int) and not isinstance(key, bool) and 1 <= key <= MAX_ROW_ID
                or isinstance(key, str) and FEED_KEY.fullmatch(key)):
            raise self.make_error("invalid_cursor")
        return [self.instant(at), key]

    def instant(self, value):
        if not isinstance(value, str):
            raise self.make_error("invalid_cursor")
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            raise self.make_error("invalid_cursor") from None
        try:
            within_calendar(parsed)
        except ValidationError:
            raise self.make_error("invalid_cursor") from None
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)).astimezone(dt.timezone.utc)


class PageArgs(Schema):
    limit = fields.Integer(load_default=DEFAULT_PAGE, validate=validate.Range(min=1, max=MAX_PAGE))
    cursor = CursorField(load_default=None)


def encode_cursor(sort_value, row_id):
    raw = json.dumps([sort_value, row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def page_newest_first(query, sort_column, id_column, args, serialise_sort=None):
    """Keyset pagination, newest first, stable under inserts: ``{data, next_cursor}``.

    ``query`` is a select() already scoped to the company and filtered; the cursor holds
    (sort value, id) of the last row so the next page starts strictly after it.
    """
    serialise_sort = serialise_sort or (lambda value: value.isoformat() if hasattr(value, "isoformat") else value)
    cursor = args.get("cursor")
    if cursor is not None:
        sort_value, last_id = row_position(cursor)
        # the plain bound lets the (company, sort) index seek; the OR alone makes it scan
        query = query.where(sort_column <= sort_value,
                            or_(sort_column < sort_value,
                                and_(sort_column == sort_value, id_column < last_id)))
    limit = args["limit"]
    rows = Session.scalars(query.order_by(sort_column.desc(), id_column.desc()).limit(limit + 1)).all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(serialise_sort(getattr(last, sort_column.key)), last.id)
    return {"data": rows, "next_cursor": next_cursor}


def page_fetched_newest_first(fetch, sort_column, id_column, args, item=None):
    """``{data, next_cursor}`` of the rows ``fetch(after, limit)`` returns (dicts): up to
    limit + 1 rows newest first, strictly after ``after`` ((sort value, id) of the cursor) if given.
    ``data`` holds each row as a dict, passed through ``item`` if given."""
    cursor = args.get("cursor")
    after = row_position(cursor) if cursor is not None else None
    limit = args["limit"]
    rows = fetch(after, limit)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        value = last[sort_column.key]
        next_cursor = encode_cursor(value.isoformat() if hasattr(value, "isoformat") else value,
                                    last[id_column.key])
    return {"data": [item(row) for row in rows] if item else rows, "next_cursor": next_cursor}


def row_position(cursor):
    """(instant, row id) of a decoded cursor (CursorField) of a list of rows; a feed's
    cursor ("kind:id") handed to a list of rows is a 422 on ``cursor``."""
    at, key = cursor
    if not isinstance(key, int):
        abort(422, errors={"cursor": ["Not a valid cursor."]})
    return at, key


def page_schema(item_schema, name):
    """``{data: [item], next_cursor}`` as a named schema for the OpenAPI document."""
    return type(name, (Schema,), {
        "data": fields.List(fields.Nested(item_schema)),
        "next_cursor": fields.String(allow_none=True),
    })
