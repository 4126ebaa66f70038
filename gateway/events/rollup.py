"""Hourly counts beside the access log, kept exact by the writer: the dashboard's figures.

Counting ten million rows for every dashboard view would take seconds; these two small tables
answer "how many per hour" and "which sites most" in milliseconds. :func:`add_batch` runs in
the writer's transaction (and in a journal replay's), so a count and the rows it counts are
committed together or not at all. Retention deletes whole hours with their events
(:func:`purge_before`); a student's erasure leaves them, as they name no one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

# Positions in store.EVENT_COLUMNS and store.COUNT_COLUMNS (the writer's tuples).
_TIME, _HOST, _ACTION, _CATEGORY, _NOISE = 0, 3, 4, 6, 20
_MINUTE, _COUNT_HOST, _COUNT, _COUNT_CATEGORY = 0, 2, 3, 4
_BLOCK = "block"


def hour_of(epoch: float) -> int:
    return int(epoch // 3600) * 3600


def count_batch(events: Sequence[Sequence[Any]], counts: Sequence[Sequence[Any]],
                ) -> tuple[Counter[tuple[int, str, str, str]], Counter[tuple[int, str, str]]]:
    """(per hour/action/category/noise, per hour/site/category for real blocked attempts)."""
    hours: Counter[tuple[int, str, str, str]] = Counter()
    sites: Counter[tuple[int, str, str]] = Counter()
    for e in events:
        hour = hour_of(e[_TIME])
        category = e[_CATEGORY] or ""
        noise = e[_NOISE] or ""
        hours[(hour, e[_ACTION], category, noise)] += 1
        if e[_ACTION] == _BLOCK and not noise:
            sites[(hour, e[_HOST], category)] += 1
    for c in counts:  # allowed requests folded into per-minute counts
        hours[(hour_of(c[_MINUTE]), "allow", c[_COUNT_CATEGORY] or "", "")] += c[_COUNT]
    return hours, sites


class RollupStatements:
    """The two upserts for one database (``?`` for SQLite, ``%s`` for psycopg)."""

    def __init__(self, dialect_name: str) -> None:
        m = "?" if dialect_name == "sqlite" else "%s"
        self.hours = (
            f"INSERT INTO access_hours (hour, action, category, noise, count) VALUES "
            f"({m}, {m}, {m}, {m}, {m}) ON CONFLICT (hour, action, category, noise) "
            f"DO UPDATE SET count = access_hours.count + excluded.count")
        self.sites = (
            f"INSERT INTO blocked_site_hours (hour, host, category, count) VALUES "
            f"({m}, {m}, {m}, {m}) ON CONFLICT (hour, host, category) "
            f"DO UPDATE SET count = blocked_site_hours.count + excluded.count")


def add_batch(conn: Connection, statements: RollupStatements, stamp: Any,
              events: Sequence[Sequence[Any]], counts: Sequence[Sequence[Any]]) -> None:
    """Add a batch's counts inside the caller's transaction; ``stamp`` turns an epoch hour
    into the database's time form (``SqlDialect.timestamp``)."""
    hours, sites = count_batch(events, counts)
    if hours:  # sorted: two writers upserting the same keys take their locks in one order
        conn.exec_driver_sql(statements.hours, [
            (stamp(h), action, category, noise, n)
            for (h, action, category, noise), n in sorted(hours.items())])
    if sites:
        conn.exec_driver_sql(statements.sites, [
            (stamp(h), host, category, n) for (h, host, category), n in sorted(sites.items())])


BACKFILL_SQLITE = """
INSERT INTO access_hours (hour, action, category, noise, count)
SELECT hour, action, category, noise, SUM(n) FROM (
  SELECT strftime('%Y-%m-%d %H:00:00.000000', time) AS hour, action,
         COALESCE(category, '') AS category, COALESCE(noise, '') AS noise, COUNT(*) AS n
  FROM access_events GROUP BY 1, 2, 3, 4
  UNION ALL
  SELECT strftime('%Y-%m-%d %H:00:00.000000', minute), 'allow', COALESCE(category, ''), '',
         SUM(count) FROM allowed_counts GROUP BY 1, 2, 3, 4) AS parts
GROUP BY hour, action, category, noise;
INSERT INTO blocked_site_hours (hour, host, category, count)
SELECT strftime('%Y-%m-%d %H:00:00.000000', time), host, COALESCE(category, ''), COUNT(*)
FROM access_events WHERE action = 'block' AND noise IS NULL GROUP BY 1, 2, 3
"""

BACKFILL_POSTGRESQL = BACKFILL_SQLITE.replace(
    "strftime('%Y-%m-%d %H:00:00.000000', time)", "date_trunc('hour', time)").replace(
    "strftime('%Y-%m-%d %H:00:00.000000', minute)", "date_trunc('hour', minute)")


def backfill(conn: Connection) -> None:
    """Count the rows already stored (the migration that adds the tables runs this)."""
    sql = BACKFILL_SQLITE if conn.dialect.name == "sqlite" else BACKFILL_POSTGRESQL
    for statement in sql.split(";"):
        if statement.strip():
            conn.exec_driver_sql(statement)
