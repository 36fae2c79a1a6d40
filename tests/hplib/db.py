"""The test suites' PostgreSQL helper and the checkout snapshot.

DB is a thin psycopg2 connection whose every statement runs under a
statement_timeout, so a lock the server holds fails a test instead of
hanging it. checkout_snapshot() is what a rejected checkout must leave
untouched, compared before and after.
"""

import psycopg2
import psycopg2.extras


class DB:
    """A psycopg2 connection (autocommit unless told otherwise) with a statement timeout."""

    def __init__(self, url, autocommit=True, statement_timeout_ms=15000, application_name="hotplate-e2e"):
        self.conn = psycopg2.connect(
            url,
            connect_timeout=5,
            application_name=application_name,
            options="-c statement_timeout=%d" % statement_timeout_ms,
        )
        self.conn.autocommit = autocommit

    def all(self, sql, args=None):
        with self.conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as c:
            c.execute(sql, args)
            return [dict(r) for r in c.fetchall()]

    def one(self, sql, args=None):
        rows = self.all(sql, args)
        assert len(rows) == 1, "expected one row from %s %s, got %d" % (sql, args, len(rows))
        return rows[0]

    def val(self, sql, args=None):
        with self.conn.cursor() as c:
            c.execute(sql, args)
            row = c.fetchone()
            return None if row is None else row[0]

    def exec(self, sql, args=None):
        with self.conn.cursor() as c:
            c.execute(sql, args)
            return c.rowcount

    def close(self):
        try:
            self.conn.close()
        except Exception:
            pass


SNAPSHOT_SQL = """
SELECT (SELECT count(*) FROM orders) AS orders,
       (SELECT count(*) FROM order_items) AS order_items,
       (SELECT count(*) FROM payments) AS payments,
       (SELECT count(*) FROM order_events) AS order_events,
       (SELECT max(id) FROM orders) AS max_order_id,
       (SELECT md5(coalesce(string_agg(id::text || ':' || coalesce(stock::text, '-'), ',' ORDER BY id), ''))
          FROM menu_items) AS stock_digest
"""


def checkout_snapshot(db):
    """What a rejected checkout must leave untouched: row counts of orders,
    order_items, payments and order_events, and every item's stock."""
    return db.one(SNAPSHOT_SQL)
