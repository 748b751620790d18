"""Answers of read-only views built from rows, described by their marshmallow schemas.

The views' ``@blp.response`` schemas stay what the OpenAPI document shows; a view on a
hot read path hands its rows (Core row mappings, dicts or objects) to a ``Serializer``
made once from the same schema, which turns each row into the dict the schema's
``dump`` would give, with one plain function per field instead of marshmallow's
per-field machinery; ``json_response`` then encodes it into exactly the bytes Flask's
``jsonify`` would send (so bodies, Content-Length and the caches' ETags do not change).

A field type the serializer does not know (Function, Method, Raw, a custom field) is
dumped by the field itself, so the serializer never drifts from the schema: it can only
be slower.

A list whose query selects exactly what its schema sends (ints, text, instants as their
ISO text: ``db.iso_instant``) needs no serializer at all: ``check_rows_dump_as_is`` proves
it once, from the columns' types, and the rows' dicts are then the answer's items.
"""
import datetime as dt

import orjson
from flask import current_app
from flask.json.provider import DefaultJSONProvider
from marshmallow import fields, missing
from marshmallow.utils import ensure_text_type
from sqlalchemy import Enum, Integer, String

from ..db import IsoInstant

# fields whose dumped values orjson writes as Python's json module does (str, int, None)
_ORJSON_SAFE = (fields.Integer, fields.String, fields.DateTime, fields.Date, fields.Boolean)


def _as(kind):
    def convert(value):
        return value if value.__class__ is kind else kind(value)
    return convert


def _converter(field):
    """A function turning an attribute's non-None value into the dumped value, or None
    when only the field itself can dump it."""
    kind = type(field)
    if kind is fields.String:
        return lambda value: value if value.__class__ is str else ensure_text_type(value)
    if kind is fields.Integer and not field.as_string:
        return _as(int)
    if kind is fields.DateTime and field.format in (None, "iso", "iso8601"):
        return dt.datetime.isoformat
    if kind is fields.Date and field.format in (None, "iso", "iso8601"):
        return dt.date.isoformat
    if kind is fields.Nested and not field.many and not field.schema.many:
        return Serializer(field.schema).one
    if (kind is fields.List and type(field.inner) is fields.Nested and not field.inner.many
            and not field.inner.schema.many):
        return Serializer(field.inner.schema).many
    return None


def _orjson_safe(field):
    if isinstance(field, fields.Nested):
        return not Serializer(field.schema).exact_only
    if isinstance(field, fields.List):
        return _orjson_safe(field.inner)
    return type(field) in _ORJSON_SAFE


# the class of a value a field dumps as it is (a str to a String field, an int to an
# Integer field): kept without a call, which is most of a row's fields. A DateTime
# field's str is an instant a query already read as its ISO text (db.IsoInstant): what
# the field makes of the datetime.
_KEPT_AS_IS = {fields.String: str, fields.Integer: int, fields.DateTime: str}


class _NeverKept:
    pass


class Serializer:
    """``schema.dump`` for rows (mappings or objects); as with marshmallow, an attribute a
    row lacks gives no key. ``exact_only``: an answer holding its output must be encoded
    by Flask (see ``json_response``)."""

    def __init__(self, schema):
        schema = schema() if isinstance(schema, type) else schema
        self.schema = schema
        self.converted = []   # (key, attribute, class kept as it is, converter)
        self.dumped = []      # (key, name, field): dumped by the field itself
        self.exact_only = False
        for name, field in schema.dump_fields.items():
            convert = _converter(field)
            self.exact_only = self.exact_only or not _orjson_safe(field)
            key = field.data_key or name
            # defaults and dotted paths: the field's own lookup
            if convert is None or field.dump_default is not missing or "." in (field.attribute or ""):
                self.dumped.append((key, name, field))
            else:
                self.converted.append((key, field.attribute or name,
                                       _KEPT_AS_IS.get(type(field), _NeverKept), convert))

    def one(self, row):
        get = row.get if type(row) is dict or hasattr(row, "keys") else _Attributes(row).get
        out = {}
        for key, attribute, kept, convert in self.converted:
            value = get(attribute, missing)
            if value is None or value.__class__ is kept:
                out[key] = value
            elif value is not missing:   # as marshmallow: an absent attribute is no key
                out[key] = convert(value)
        for key, name, field in self.dumped:
            value = field.serialize(name, row)
            if value is not missing:
                out[key] = value
        return out

    def many(self, rows):
        return [self.one(row) for row in rows]


def _dumps_as_is(field, column_type):
    """Whether ``field`` dumps every value of a column of this type as it is: ints to an
    Integer field, text to a String field, an IsoInstant's text to an ISO DateTime
    field (None, as any field dumps it, included)."""
    kind = type(field)
    if kind is fields.Integer:
        return not field.as_string and isinstance(column_type, Integer)
    if kind is fields.String:
        return isinstance(column_type, String) and not isinstance(column_type, Enum)
    if kind is fields.DateTime:
        return field.format in (None, "iso", "iso8601") and isinstance(column_type, IsoInstant)
    return False


def check_rows_dump_as_is(schema, columns, built=None, dropped=(), computed=None):
    """Raise TypeError unless ``schema.dump`` gives back, unchanged, the dict of a row of
    ``columns`` (Core columns or labels, by key) once the caller has dropped the keys
    ``dropped``, added the nested dicts ``built`` names ({key: {nested key: column}}) and
    the values ``computed`` names ({key: the SQL type of what the caller puts there:
    ``Integer()`` for an int, ``String()`` for text, ``IsoInstant()`` for an instant's ISO
    text}).

    Checked once, where a view and its query meet: the rows' dicts are then sent as the
    answer's items without a serializer (the query's types say what each value is).
    """
    sent = {column.key: column.type for column in columns if column.key not in dropped}
    for key, parts in (built or {}).items():
        sent[key] = {name: column.type for name, column in parts.items()}
    sent.update(computed or {})
    _check_dumps_as_is(schema() if isinstance(schema, type) else schema, sent)


def _check_dumps_as_is(schema, sent):
    """``sent``: {key: column type, or {nested key: column type} for a nested object}."""
    name_of = type(schema).__name__
    if set(sent) != set(schema.dump_fields):
        raise TypeError(f"{name_of} sends {sorted(schema.dump_fields)}, the rows {sorted(sent)}")
    for name, field in schema.dump_fields.items():
        if (field.data_key or name) != name or (field.attribute or name) != name or \
                field.dump_default is not missing:
            raise TypeError(f"{name_of}.{name} renames its value or has a default")
        if isinstance(sent[name], dict):
            if not (type(field) is fields.Nested and not field.many and not field.schema.many):
                raise TypeError(f"{name_of}.{name} is not one nested object")
            _check_dumps_as_is(field.schema, sent[name])
        elif not _dumps_as_is(field, sent[name]):
            raise TypeError(f"{name_of}.{name} does not dump a {sent[name]!r} as it is")


class _Attributes:
    """An object read by attribute name, as the serializer reads a mapping."""
    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def get(self, name, default):
        return getattr(self.obj, name, default)


def _flask_encodes_like_orjson(app):
    provider = app.json
    return (type(provider) is DefaultJSONProvider and provider.sort_keys and provider.ensure_ascii
            and provider.compact is not False and not (provider.compact is None and app.debug)
            and provider.mimetype == "application/json")


def json_response(data, exact_only=False, status=200):
    """The response ``jsonify(data)`` would make, byte for byte.

    orjson writes what Python's json module writes for ASCII text without DEL, for ints,
    booleans and None (keys sorted, compact): any other answer, or an app that encodes
    differently, is encoded by Flask itself.
    """
    app = current_app
    if not exact_only and _flask_encodes_like_orjson(app):
        try:
            body = orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)
        except (orjson.JSONEncodeError, TypeError):
            body = None
        if body is not None and body.isascii() and b"\x7f" not in body:
            response = app.response_class(body, mimetype="application/json")
            response.status_code = status
            return response
    response = app.json.response(data)
    response.status_code = status
    return response
