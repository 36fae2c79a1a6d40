"""GET /debug/pg/health and the doctor's PostgreSQL health rules
(profiling/pg_health*.c, profiling/doctor_health.c), on real conditions made
from outside the server, as an operator or another team would make them:

- a duplicate index, created with plain SQL: an index on orders (user_id),
  whose column leads the schema's orders (user_id, created_at DESC) index;
- an invalid index: a CREATE UNIQUE INDEX CONCURRENTLY that failed on a
  column with duplicates;
- a session of another application (application_name 'e2e-report') that
  reads a row, then sits idle in its open transaction;
- another application's export that reads order_items whole, over and over,
  while the doctor watches.

The route must list each of them with what PgHero and pg-extras show (pid,
application, state, durations, the query without its values; the index's
size, the index covering it and the DROP INDEX), and the doctor must report
each with the right kind, cause and fix. A database without any extension
still gets an answer, with a note for what it could not see; and
docs/DOCTOR.md's threshold table is the table the server carries.
"""
import itertools
import os
import subprocess
import threading
import time
import urllib.parse

import psycopg2
import pytest
import requests

HERE = os.path.dirname(os.path.abspath(__file__))
DUP = "e2e_dup_orders_user_id"
IDLE_APP = "e2e-report"
EXPORT_APP = "e2e-export"


def health(s):
    r = requests.get(s.admin_base + "/debug/pg/health", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def threshold(doc, name):
    return doc["thresholds"][name]


def _scratch_index(name, create):
    """A fixture's index `name`, made by create(cursor) and dropped after the test (and before, after a cut-short run)."""
    conn = psycopg2.connect(os.environ["HOTPLATE_PG_URL"])
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DROP INDEX IF EXISTS %s" % name)
        create(cur)
    yield name
    with conn.cursor() as cur:
        cur.execute("DROP INDEX IF EXISTS %s" % name)
    conn.close()


@pytest.fixture
def dup_index():
    yield from _scratch_index(DUP, lambda cur: cur.execute("CREATE INDEX %s ON orders (user_id)" % DUP))


@pytest.fixture
def invalid_index():
    """What a failed CREATE INDEX CONCURRENTLY leaves behind: a unique index on a column with duplicates, marked invalid.
    (Before idle_session: a concurrent build waits for every open transaction to end.)"""
    name = "e2e_invalid_orders_restaurant"

    def create(cur):
        with pytest.raises(psycopg2.errors.UniqueViolation):
            cur.execute("CREATE UNIQUE INDEX CONCURRENTLY %s ON orders (restaurant_id)" % name)

    yield from _scratch_index(name, create)


@pytest.fixture
def idle_session():
    """A foreign session idle in its transaction: it has read one order, with a value in its query text."""
    conn = psycopg2.connect(os.environ["HOTPLATE_PG_URL"], application_name=IDLE_APP)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM orders WHERE user_id = %s AND status <> %s", (7, "secret-status"))
        cur.fetchone()
    yield conn
    conn.rollback()
    conn.close()


def finding(report, kind):
    found = [f for f in report["findings"] if f["kind"] == kind]
    assert found, "no %s finding in %s" % (kind, [(f["kind"], f["summary"]) for f in report["findings"]])
    return found[0]


def test_health_names_a_duplicate_index_and_an_idle_session(start_server, dup_index, invalid_index, idle_session):
    s = start_server(name="pg-health", threads=1)
    pid = idle_session.get_backend_pid()
    doc = health(s)
    # The idle session counts once it has sat idle longer than pg_idle_txn_s.
    time.sleep(threshold(doc, "pg_idle_txn_s") + 1.5)
    doc = health(s)
    assert doc["notes"] == [], doc["notes"]

    [ses] = [x for x in doc["sessions"] if x["pid"] == pid]
    assert ses["application_name"] == IDLE_APP and ses["state"] == "idle in transaction", ses
    assert ses["idle_in_transaction_ms"] >= threshold(doc, "pg_idle_txn_s") * 1000 and ses["transaction_ms"] > 0, ses
    assert ses["client"] and ses["user"], ses
    # Its query, and never the values it was sent with.
    assert ses["query"] == "SELECT count(*) FROM orders WHERE user_id = ? AND status <> ?", ses

    [dup] = [x for x in doc["indexes"]["duplicate"] if x["index"] == DUP]
    assert dup["table"] == "orders" and dup["covered_by"] == "orders_user_id_created_at_idx", dup
    assert dup["bytes"] >= threshold(doc, "pg_index_min_bytes"), dup
    assert dup["drop_sql"] == "DROP INDEX CONCURRENTLY public.%s" % DUP, dup
    # The covering index is not proposed as unused at the same time, and no key or constraint index ever is.
    proposed = {x["index"] for x in doc["indexes"]["unused"]}
    assert "orders_user_id_created_at_idx" not in proposed and not any(i.endswith("_pkey") or i.endswith("_key") for i in proposed)

    [bad] = [x for x in doc["indexes"]["invalid"] if x["index"] == invalid_index]
    assert bad["drop_sql"] == "DROP INDEX CONCURRENTLY public.%s" % invalid_index, bad
    assert invalid_index not in proposed, proposed
    f = finding(doc, "pg_invalid_index")
    assert f["fix"]["sql"] == "DROP INDEX CONCURRENTLY public.%s" % invalid_index and "USING btree (restaurant_id)" in f["fix"]["text"], f

    conns = doc["connections"]
    assert conns["max_connections"] > 0 and 0 < conns["total"] <= conns["available"], conns
    apps = {a["application_name"]: a for a in conns["by_application"]}
    assert apps[IDLE_APP]["idle_in_transaction"] >= 1 and apps["hotplate"]["total"] >= 2, apps
    assert {"table_hit_ratio", "index_hit_ratio"} <= set(doc["cache"]), doc["cache"]
    assert any(t["table"] == "order_items" and t["large"] for t in doc["tables"]), doc["tables"]

    # The route's own findings, from the doctor's rules.
    f = finding(doc, "pg_idle_in_transaction")
    assert f["severity"] == "medium" and "pid %d (application_name '%s')" % (pid, IDLE_APP) in f["summary"], f
    assert f["fix"]["sql"] == "SELECT pg_terminate_backend(%d)" % pid, f["fix"]
    assert "idle_in_transaction_session_timeout" in f["fix"]["text"], f["fix"]
    f = finding(doc, "pg_duplicate_index")
    assert "public.%s is covered by orders_user_id_created_at_idx" % DUP in f["summary"], f
    assert f["fix"]["sql"] == "DROP INDEX CONCURRENTLY public.%s" % DUP, f["fix"]


def test_doctor_reports_health_and_foreign_scans(start_server, dup_index, idle_session):
    s = start_server(name="doctor-pg-health", threads=1)
    pid = idle_session.get_backend_pid()
    time.sleep(health(s)["thresholds"]["pg_idle_txn_s"] + 1.5)
    # Before the window, another statement names order_items and costs more than the whole export will: the doctor
    # reads pg_stat_statements at both ends of its window and names the statement that ran in it, not the costliest
    # since a reset (the seed's ANALYZE of every table would be one too).
    decoy = psycopg2.connect(os.environ["HOTPLATE_PG_URL"], application_name=EXPORT_APP)
    decoy.autocommit = True
    with decoy.cursor() as cur:
        cur.execute("SELECT pg_sleep(1.5), count(*) FROM order_items")
    decoy.close()
    # Another application exports order_items whole, over and over, through the doctor's window.
    stop = threading.Event()
    scans = []

    def export():
        conn = psycopg2.connect(os.environ["HOTPLATE_PG_URL"], application_name=EXPORT_APP)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SET max_parallel_workers_per_gather = 0")  # one scan per query, counted once
            while not stop.is_set():
                cur.execute("SELECT sum(quantity) FROM order_items")
                cur.fetchone()
                scans.append(1)
                time.sleep(0.05)
        conn.close()

    t = threading.Thread(target=export, daemon=True)
    t.start()
    try:
        time.sleep(0.5)
        r = requests.get(s.admin_base + "/debug/doctor", params={"seconds": 3}, timeout=60)
        # The Markdown report of a second window; docs/DOCTOR.md's example (HOTPLATE_DOCTOR_REPORTS, tests/e2e/doctor_doc.py).
        md = requests.get(s.admin_base + "/debug/doctor", params={"seconds": 3, "format": "md"}, timeout=60).text
    finally:
        stop.set()
        t.join(10)
    assert r.status_code == 200, r.text
    report = r.json()
    assert len(scans) >= 20, scans
    f = finding(report, "pg_idle_in_transaction")
    assert "pid %d (application_name '%s')" % (pid, IDLE_APP) in f["summary"] and f["impact_of"] == "database", f
    f = finding(report, "pg_duplicate_index")
    assert f["fix"]["sql"] == "DROP INDEX CONCURRENTLY public.%s" % DUP and f["confidence"] == "high", f
    f = finding(report, "pg_foreign_seq_scan")
    assert f["summary"].startswith("order_items ("), f
    assert any("ran 0 times in the window" in e for e in f["evidence"]), f["evidence"]
    assert any("'%s'" % EXPORT_APP in e for e in f["evidence"]), f["evidence"]
    assert "pg_stat_statements" in f["fix"]["text"], f["fix"]
    # pg_stat_statements names the export's statement; hotplate's own monitoring SQL is never taken for another's.
    assert any("the costliest statement in the window that is not hotplate's and names order_items: "
               "SELECT sum(quantity) FROM order_items (" in e and " calls in the window, " in e for e in f["evidence"]), f["evidence"]
    others = report["signals"]["pg_health"]["other_statements"]
    assert any(o["query"] == "SELECT sum(quantity) FROM order_items" for o in others), others
    assert not any(o["query"].startswith("/* hotplate */") for o in others), others
    assert report["signals"]["pg_health"]["indexes"]["duplicate"], report["signals"]["pg_health"]
    out = os.environ.get("HOTPLATE_DOCTOR_REPORTS")
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, s.name + ".md"), "w", encoding="utf-8") as f:
            f.write(md)
    assert "the database as a whole" in md and "DROP INDEX CONCURRENTLY public.%s;" % DUP in md, md


def test_clean_database_health_is_nothing_above_low(start_server):
    s = start_server(name="pg-health-clean", threads=1)
    doc = health(s)
    loud = [(f["kind"], f["severity"], f["summary"]) for f in doc["findings"] if f["severity"] != "low"]
    assert not loud, loud


def test_doctor_md_threshold_table_is_the_servers(start_server):
    """docs/DOCTOR.md's threshold table is the output of the command it names, from this server."""
    s = start_server(name="pg-health-doc", threads=1)
    ths = requests.get(s.admin_base + "/debug/doctor", params={"seconds": 1}, timeout=60).json()["thresholds"]

    def num(v):  # as jq prints a number
        return str(int(v)) if float(v).is_integer() else repr(v)

    want = ["| `%s` | %s %s | %s |" % (t["name"], num(t["value"]), t["unit"], t["doc"]) for t in ths]
    with open(os.path.join(HERE, "..", "..", "docs", "DOCTOR.md"), encoding="utf-8") as f:
        text = f.read()
    # The table under its header line, up to the first line that is not a row.
    lines = text.splitlines()
    start = lines.index("| name | value | what |") + 2
    have = list(itertools.takewhile(lambda line: line.startswith("| `"), lines[start:]))
    assert have == want, "\n".join(["docs/DOCTOR.md's threshold table differs from the server's:"] +
                                   [l for l in want if l not in have] + ["-- in the doc only:"] + [l for l in have if l not in want])


@pytest.fixture
def bare_database(env):
    """A database of its own, migrated, without any extension (no pg_stat_statements, no hypopg); dropped at the end."""
    name = "hp_e2e_noext"
    url = urllib.parse.urlsplit(env["pg_url"])
    bare_url = urllib.parse.urlunsplit(url._replace(path="/" + name))
    conn = psycopg2.connect(env["pg_url"])
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)
        cur.execute("CREATE DATABASE %s" % name)
    try:
        subprocess.run([env["bin"], "migrate", "--dir", os.environ["HOTPLATE_MIGRATIONS_DIR"]], check=True, capture_output=True,
                       env=dict(os.environ, HOTPLATE_PG_URL=bare_url), timeout=60)
        yield bare_url
    finally:
        with conn.cursor() as cur:
            cur.execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)
        conn.close()


def test_a_database_without_extensions_still_answers_with_a_note(start_server, bare_database):
    s = start_server(name="pg-health-noext", threads=1, env={"HOTPLATE_PG_URL": bare_database})
    doc = health(s)
    assert any("pg_stat_statements" in n and "not named" in n for n in doc["notes"]), doc["notes"]
    assert "other_statements" not in doc, doc.keys()
    assert {"sessions", "connections", "indexes", "tables", "cache"} <= set(doc), doc.keys()
    report = requests.get(s.admin_base + "/debug/doctor", params={"seconds": 1}, timeout=60).json()
    assert any("pg_stat_statements" in n for n in report["notes"]), report["notes"]
    assert "pg_health" in report["signals"], report["signals"].keys()
