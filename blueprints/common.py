"""What every service blueprint shares: tenant-scoped lookups and cursor pagination."""
import base64
import binascii
import json

from flask import g
from flask_smorest import abort
from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import and_, or_, select

from gateway_app.db import Session

MAX_PAGE = 100
DEFAULT_PAGE = 25


def current_principal():
    """Who is calling, as the authentication stage resolved it: the one place a view reads it."""
    return g.gateway.principal


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
    """An opaque cursor: base64 of the sort key of the last row served."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            decoded = json.loads(base64.urlsafe_b64decode(text.encode() + b"==="))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise ValidationError("Not a valid cursor.")
        if not isinstance(decoded, list) or len(decoded) != 2:
            raise ValidationError("Not a valid cursor.")
        return decoded


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
        sort_value, last_id = cursor
        sort_value = parse_sort_value(sort_column, sort_value)
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
    """``{data, next_cursor}`` of the rows ``fetch(after, limit)`` returns: up to limit + 1
    rows newest first, strictly after ``after`` ((sort value, id) of the cursor) if given."""
    cursor = args.get("cursor")
    after = None
    if cursor is not None:
        sort_value, last_id = cursor
        after = (parse_sort_value(sort_column, sort_value), last_id)
    limit = args["limit"]
    rows = fetch(after, limit)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]._mapping
        value = last[sort_column.key]
        next_cursor = encode_cursor(value.isoformat() if hasattr(value, "isoformat") else value,
                                    last[id_column.key])
    return {"data": [item(row) for row in rows] if item else [row._mapping for row in rows],
            "next_cursor": next_cursor}


def parse_sort_value(sort_column, value):
    import datetime as dt
    python_type = getattr(sort_column.type, "python_type", None)
    try:
        if python_type is dt.datetime or getattr(sort_column.type, "impl", None) is not None:
            parsed = dt.datetime.fromisoformat(value)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
    except (TypeError, ValueError):
        abort(422, errors={"cursor": ["Not a valid cursor."]})
    return value


def page_schema(item_schema, name):
    """``{data: [item], next_cursor}`` as a named schema for the OpenAPI document."""
    return type(name, (Schema,), {
        "data": fields.List(fields.Nested(item_schema)),
        "next_cursor": fields.String(allow_none=True),
    })
