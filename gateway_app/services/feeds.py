"""Time-ordered feeds merged from several tables (a customer's timeline, the activity feed).

A feed is one statement: each source's next page, in (instant, id) order on its own
(company, instant) index, under UNION ALL, ordered and limited again. Each branch selects
the columns the answer shows of its rows, the other sources' columns as typed NULLs, so
the page comes with its rows: one query whatever its length and kinds.

The statement is built once per feed (its sources) and whether a cursor continues it,
with every value a bound parameter (the company, the position, the page size), as the
lists' are (keyset.py). Rows come as dicts (``db.union_row_dicts_of``), instants as the
ISO text the answer shows (``db.IsoInstant``).
"""
from dataclasses import dataclass
from functools import lru_cache

from flask_smorest import abort
from sqlalchemy import bindparam, literal, null, or_, select, type_coerce, union_all

from ..db import IsoInstant, read_connection, union_row_dicts_of

AFTER_AT, LIMIT = "feed_after_at", "feed_limit"
# the largest id a BIGINT holds: every row at the cursor's instant of a kind ordered
# before the cursor's is still to come
LAST_ID = 2 ** 63 - 1


# eq=False: a source is itself (hashed and compared by identity), the key the feed's
# statement is kept under; its clauses' == makes SQL, not a truth value
@dataclass(frozen=True, eq=False)
class FeedSource:
    """One table's entries: ``where`` (clauses on bound parameters, the same for each
    request) selects them, ``at`` (a UTC instant column, indexed after the company)
    orders them, ``shown`` ((key, column) pairs) is what the answer shows of a row.
    Sources of one feed sharing a key must give it the same type."""
    kind: str
    id: object
    at: object
    where: tuple
    shown: tuple

    def after_id_param(self):
        return f"feed_after_{self.kind}_id"


def _shown_columns(sources):
    """{key: the column type of its first source}, in the sources' order."""
    columns = {}
    for source in sources:
        for key, column in source.shown:
            columns.setdefault(key, column.type)
    return columns


def _branch(source, columns, after):
    """The source's next page of entries (limit bound), newest first on its own index.

    Past the cursor (at, kind, id): what is older than its instant, and at that instant
    the rows whose id is at most the bound after_id_param gives (see ``page_feed``)."""
    own = dict(source.shown)
    selected = [literal(source.kind).label("kind"), source.id.label("id"),
                type_coerce(source.at, IsoInstant()).label("at")]
    selected += [own[key].label(key) if key in own else type_coerce(null(), kind).label(key)
                 for key, kind in columns.items()]
    query = select(*selected).where(*source.where)
    if after:
        at = bindparam(AFTER_AT, type_=source.at.type)
        query = query.where(source.at <= at,
                            or_(source.at < at, source.id <= bindparam(source.after_id_param())))
    return select(query.order_by(source.at.desc(), source.id.desc())
                  .limit(bindparam(LIMIT)).subquery())


@lru_cache(maxsize=16)
def _feed_statement(sources, after):
    columns = _shown_columns(sources)
    feed = union_all(*(_branch(source, columns, after) for source in sources)).subquery("feed")
    return (select(*feed.c).order_by(feed.c.at.desc(), feed.c.kind.desc(), feed.c.id.desc())
            .limit(bindparam(LIMIT)))


def page_feed(sources, params, args, encode_cursor):
    """``{data: [entry], next_cursor}``, newest first, ties ordered by kind, then id; an
    entry is a dict of kind, id, at (ISO text) and the ``shown`` keys of its source.

    ``sources``: a tuple of FeedSource; ``params``: the values of their bound parameters."""
    position = decode_position(args["cursor"]) if args.get("cursor") is not None else None
    limit = args["limit"]
    params = {**params, LIMIT: limit + 1}
    if position is not None:
        at, kind, row_id = position
        params[AFTER_AT] = at
        for source in sources:
            # the ids of the rows at the cursor's instant still to come (kinds are
            # lower-case words, which Python orders as the ORDER BY does)
            params[source.after_id_param()] = (LAST_ID if source.kind < kind else
                                               row_id - 1 if source.kind == kind else 0)
    with read_connection() as connection:
        entries = union_row_dicts_of(connection, _feed_statement(sources, position is not None), params)
    next_cursor = None
    if len(entries) > limit:
        entries = entries[:limit]
        last = entries[-1]
        next_cursor = encode_cursor(last["at"], f"{last['kind']}:{last['id']}")
    return {"data": entries, "next_cursor": next_cursor}


def decode_position(cursor):
    """A feed cursor, as the page arguments decoded it, is [aware instant, "kind:id"];
    a list's [instant, id] here is a 422 on ``cursor``."""
    at, key = cursor
    kind, _, row_id = key.partition(":") if isinstance(key, str) else ("", "", "")
    if not kind or not row_id.isdigit():
        abort(422, errors={"cursor": ["Not a valid cursor."]})
    return at, kind, int(row_id)
