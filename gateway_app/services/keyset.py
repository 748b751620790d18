"""Keyset pages of Core statements, newest first, built once per shape.

A list's statement depends on which filters a request gives, not on their values: it is
built once per shape with every value a bound parameter (the company, the filters, the
position after the cursor, the page size), so a request binds values to a statement
whose SQL and cache key are already made. Building the select and its cache key per
request cost about as much as running the page query on SQLite.
"""
from sqlalchemy import and_, bindparam, or_

from ..db import read_connection, row_dicts_of

AFTER_SORT, AFTER_ID, LIMIT = "after_sort", "after_id", "page_limit"


def newest_first(statement, sort_column, id_column, after):
    """``statement`` ordered newest first, continuing strictly after the bound position
    when ``after`` (the plain bound lets the (company, sort) index seek; the OR alone
    makes it scan), LIMIT bound."""
    if after:
        sort_value, last_id = bindparam(AFTER_SORT, type_=sort_column.type), bindparam(AFTER_ID)
        statement = statement.where(sort_column <= sort_value,
                                    or_(sort_column < sort_value,
                                        and_(sort_column == sort_value, id_column < last_id)))
    return statement.order_by(sort_column.desc(), id_column.desc()).limit(bindparam(LIMIT))


def page_rows(statement, params, after, limit):
    """The rows of one page plus one (which says whether another page follows), as dicts."""
    params = dict(params)
    params[LIMIT] = limit + 1
    if after is not None:
        params[AFTER_SORT], params[AFTER_ID] = after
    with read_connection() as connection:
        return row_dicts_of(connection, statement, params)
