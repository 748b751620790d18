"""Time-ordered feeds merged from several tables (a customer's timeline, the activity feed).

Each source contributes (kind, id, at) rows; one UNION ALL query orders and pages them
by keyset, then one query per kind loads the rows of the page: a page costs 1 + kinds
queries whatever its length.
"""
import datetime as dt
from dataclasses import dataclass

from flask_smorest import abort
from sqlalchemy import and_, or_, select, union_all

from ..db import Session
from .periods import UTC


@dataclass(frozen=True)
class FeedSource:
    kind: str
    query: object     # select(literal(kind).label("kind"), <id>.label("id"), <time>.label("at"))
    model: object     # the mapped class whose rows the page shows


@dataclass(frozen=True)
class FeedItem:
    kind: str
    at: dt.datetime
    row: object


def older_than(columns, position):
    """Entries strictly after ``position`` in (at, kind, id) descending order."""
    at, kind, row_id = position
    return and_(columns.at <= at, or_(columns.at < at,
                                      and_(columns.at == at, or_(columns.kind < kind,
                                                                 and_(columns.kind == kind,
                                                                      columns.id < row_id)))))


def newest_first(query, columns):
    return query.order_by(columns.at.desc(), columns.kind.desc(), columns.id.desc())


def source_page(source, position, size):
    """One source's next ``size`` entries: each branch sorts and limits on its own index,
    so the union below merges a few pages, never every row of every source."""
    entries = source.query.subquery()
    query = select(entries.c.kind, entries.c.id, entries.c.at)
    if position is not None:
        query = query.where(older_than(entries.c, position))
    return select(newest_first(query, entries.c).limit(size).subquery())


def page_feed(sources, args, encode_cursor):
    """``{data: [FeedItem], next_cursor}``, newest first; ties ordered by kind, then id."""
    position = decode_position(args["cursor"]) if args.get("cursor") is not None else None
    limit = args["limit"]
    feed = union_all(*(source_page(source, position, limit + 1) for source in sources)).subquery("feed")
    entries = Session.execute(newest_first(select(feed.c.kind, feed.c.id, feed.c.at), feed.c)
                              .limit(limit + 1)).all()
    next_cursor = None
    if len(entries) > limit:
        entries = entries[:limit]
        last = entries[-1]
        next_cursor = encode_cursor(as_utc(last.at).isoformat(), f"{last.kind}:{last.id}")
    rows = load_rows(sources, entries)
    data = [FeedItem(entry.kind, as_utc(entry.at), rows[(entry.kind, entry.id)])
            for entry in entries if (entry.kind, entry.id) in rows]
    return {"data": data, "next_cursor": next_cursor}


def load_rows(sources, entries):
    by_kind = {source.kind: source.model for source in sources}
    wanted = {}
    for entry in entries:
        wanted.setdefault(entry.kind, []).append(entry.id)
    rows = {}
    for kind, ids in wanted.items():
        model = by_kind[kind]
        for row in Session.scalars(select(model).where(model.id.in_(ids))):
            rows[(kind, row.id)] = row
    return rows


def decode_position(cursor):
    """A feed cursor, as the page arguments decoded it, is [aware instant, "kind:id"];
    a list's [instant, id] here is a 422 on ``cursor``."""
    at, key = cursor
    kind, _, row_id = key.partition(":") if isinstance(key, str) else ("", "", "")
    if not kind or not row_id.isdigit():
        abort(422, errors={"cursor": ["Not a valid cursor."]})
    return as_utc(at), kind, int(row_id)


def as_utc(value):
    """Union columns lose the UTC column type on some dialects: make every time aware UTC."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
