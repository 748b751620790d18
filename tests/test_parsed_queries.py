"""The arguments of a query string a worker parsed recently are reused (blueprints/parsing.py
GatewayParser.parse): the same arguments, a copy each time; refusals and arguments holding
a mutable value (a cursor) are parsed every time."""
import pytest
from flask import Flask
from marshmallow import Schema, fields
from werkzeug.exceptions import UnprocessableEntity

from blueprints.common import PageArgs, encode_cursor
from blueprints.parsing import KEPT_QUERY_LENGTH, GatewayParser


class Counted(PageArgs):
    loads = 0

    def load(self, *args, **kwargs):
        type(self).loads += 1
        return super().load(*args, **kwargs)


@pytest.fixture
def parse():
    app = Flask("parsed-queries")
    parser = GatewayParser()

    def parse_query(schema, query):
        with app.test_request_context("/?" + query):
            return parser.parse(schema, location="query")
    return parse_query


def test_a_query_string_parsed_again_gives_a_copy_of_the_same_arguments(parse):
    schema, Counted.loads = Counted(), 0
    first = parse(schema, "limit=5")
    first["limit"] = 99                    # a view changing its arguments changes no one else's
    again = parse(schema, "limit=5")
    assert again == {"limit": 5, "cursor": None} and Counted.loads == 1
    assert parse(schema, "limit=6")["limit"] == 6 and Counted.loads == 2


def test_refusals_cursors_and_long_query_strings_are_parsed_every_time(parse):
    schema, Counted.loads = Counted(), 0
    for _ in range(2):
        with pytest.raises(UnprocessableEntity):
            parse(schema, "limit=0")
    cursor = encode_cursor("2029-10-01T12:00:00+00:00", 7)
    for _ in range(2):
        assert parse(schema, f"cursor={cursor}")["cursor"][1] == 7
    long_query = "limit=5&" + "cursor=" + "A" * KEPT_QUERY_LENGTH
    for _ in range(2):
        with pytest.raises(UnprocessableEntity):
            parse(schema, long_query)
    assert Counted.loads == 6


def test_each_schema_parses_its_own_arguments(parse):
    class Other(Schema):
        limit = fields.String(load_default="none")

    assert parse(Counted(), "limit=5") == {"limit": 5, "cursor": None}
    assert parse(Other(), "limit=5") == {"limit": "5"}
