"""GET /restaurants (sorting, filters, keyset pagination) and GET /restaurants/{id}.

Expected results are computed from PostgreSQL. open_now depends on the clock,
so a comparison is retried when the minute changes while it runs.
"""

from urllib.parse import quote

import pytest

from hplib.client import assert_error, assert_status, describe, walk_pages
from hplib.oracle import hhmm, is_open, minute_now

ROWS_SQL = """
SELECT r.id, r.name, c.name AS city, r.cuisine, r.rating, r.open_minute, r.close_minute, r.lat, r.lon
  FROM restaurants r JOIN cities c ON c.id = r.city_id
 ORDER BY r.rating DESC, r.id DESC
"""

FIELDS = {"id", "name", "city", "cuisine", "rating", "open_now", "opens", "closes", "lat", "lon"}


def expected(db, m, city=None, cuisine=None, open_now=None):
    rows = db.all(ROWS_SQL)
    out = []
    for r in rows:
        if city is not None and r["city"] != city:
            continue
        if cuisine is not None and r["cuisine"] != cuisine:
            continue
        if open_now is not None:
            if is_open(r["open_minute"], r["close_minute"], m) != open_now:
                continue
        out.append(r)
    return out


def check_object(obj, row, m):
    assert set(obj) >= FIELDS, "restaurant object lacks %s: %s" % (FIELDS - set(obj), obj)
    assert obj["id"] == row["id"]
    assert obj["name"] == row["name"]
    assert obj["city"] == row["city"]
    assert obj["cuisine"] == row["cuisine"]
    assert isinstance(obj["rating"], (int, float)) and abs(obj["rating"] - float(row["rating"])) < 1e-9, (obj, row)
    assert obj["opens"] == hhmm(row["open_minute"]), (obj, row)
    if row["close_minute"] == 1440:
        assert obj["closes"] in ("24:00", "00:00"), (obj, row)
    else:
        assert obj["closes"] == hhmm(row["close_minute"]), (obj, row)
    assert abs(obj["lat"] - row["lat"]) < 1e-6 and abs(obj["lon"] - row["lon"]) < 1e-6, (obj, row)
    assert obj["open_now"] is is_open(row["open_minute"], row["close_minute"], m), (obj, row, m)


def stable_minute(db, fn, tries=3):
    """Runs fn(m) until the minute did not change while it ran."""
    for _ in range(tries):
        m1 = minute_now(db)
        res = fn(m1)
        if minute_now(db) == m1:
            return res
    pytest.fail("the clock kept crossing minute boundaries")


def test_default_listing(client, db):
    def run(m):
        r = client.get("/restaurants")
        b = assert_status(r, 200)
        assert set(b) == {"restaurants", "next_cursor"}, describe(r)
        exp = expected(db, m)
        assert [o["id"] for o in b["restaurants"]] == [e["id"] for e in exp[:20]], describe(r)
        for o, e in zip(b["restaurants"], exp):
            check_object(o, e, m)
        if len(exp) > 20:
            assert b["next_cursor"] is not None, describe(r)
        elif len(exp) < 20:
            assert b["next_cursor"] is None, describe(r)
        elif b["next_cursor"] is not None:
            # A full last page may carry a cursor (the doc does not forbid
            # it), but that cursor must lead to an empty, final page.
            nxt = assert_status(client.get("/restaurants?cursor=" + quote(b["next_cursor"], safe="")), 200)
            assert nxt == {"restaurants": [], "next_cursor": None}, nxt

    stable_minute(db, run)


def filter_cases(db):
    city = db.val("SELECT c.name FROM restaurants r JOIN cities c ON c.id = r.city_id GROUP BY c.name ORDER BY count(*) DESC, c.name LIMIT 1")
    cuisine = db.val("SELECT cuisine FROM restaurants GROUP BY cuisine ORDER BY count(*) DESC, cuisine LIMIT 1")
    pair = db.one(
        """SELECT c.name AS city, r.cuisine FROM restaurants r JOIN cities c ON c.id = r.city_id
            GROUP BY c.name, r.cuisine ORDER BY count(*) DESC, c.name, r.cuisine LIMIT 1"""
    )
    return [
        {},
        {"city": city},
        {"cuisine": cuisine},
        {"city": pair["city"], "cuisine": pair["cuisine"]},
        {"open_now": True},
        {"open_now": False},
        {"city": city, "open_now": True},
    ]


@pytest.mark.parametrize("limit", [1, 3, 100])
def test_walk_all_pages(client, db, world, limit):
    """Every filter combination, walked page by page: each matching restaurant
    exactly once, in rating-desc, id-desc order, and nothing else."""
    for f in filter_cases(db):
        params = {k: (("true" if v else "false") if isinstance(v, bool) else v) for k, v in f.items()}

        def run(m):
            got, pages = walk_pages(client, "/restaurants", params, "restaurants", limit)
            exp = expected(db, m, f.get("city"), f.get("cuisine"), f.get("open_now"))
            got_ids = [o["id"] for o in got]
            assert len(got_ids) == len(set(got_ids)), "restaurant repeated across pages %s: %s" % (f, got_ids)
            assert got_ids == [e["id"] for e in exp], "filter %s limit %d" % (f, limit)
            by_id = {e["id"]: e for e in exp}
            for o in got:
                if o["id"] in by_id:
                    check_object(o, by_id[o["id"]], m)
            assert pages <= len(got) // limit + 1, "too many pages %s: %d for %d rows" % (f, pages, len(got))

        stable_minute(db, run)


def test_filter_unknown_city_is_empty_or_400(client):
    # The doc is silent; an empty list or 400 bad_param are both reasonable.
    r = client.get("/restaurants?city=Atlantis-e2e")
    if r.status_code == 200:
        assert r.json() == {"restaurants": [], "next_cursor": None}, describe(r)
    else:
        assert_error(r, 400, "bad_param")


def test_detail_matches_listing(client, db):
    def run(m):
        listing = assert_status(client.get("/restaurants?limit=100"), 200)["restaurants"]
        rows = {e["id"]: e for e in expected(db, m)}
        for o in listing[:8]:
            r = client.get("/restaurants/%d" % o["id"])
            d = assert_status(r, 200)
            assert d == o, "detail differs from listing object\n%s\nlisting: %s" % (describe(r), o)
            check_object(d, rows[o["id"]], m)

    stable_minute(db, run)


def test_detail_unknown_404(client, db):
    big = db.val("SELECT max(id) FROM restaurants") + 1000
    assert_error(client.get("/restaurants/%d" % big), 404, "not_found")
    assert_error(client.get("/restaurants/%d/menu" % big), 404, "not_found")


@pytest.mark.parametrize("bad", ["0", "-1", "9223372036854775808", "18446744073709551617", "abc", "1e3", "12abc", "1.0", "%20", "0x10"])
def test_detail_bad_id_400(client, bad):
    assert_error(client.get("/restaurants/" + bad), 400, "bad_param")
    assert_error(client.get("/restaurants/" + bad + "/menu"), 400, "bad_param")


def test_detail_max_int64_id(client):
    # 2^63-1 is a positive 64-bit integer beyond 2^53: 404 or 400, never a 5xx.
    assert_error(client.get("/restaurants/9223372036854775807"), {400, 404}, {"bad_param", "not_found"})


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=101",
        "limit=-1",
        "limit=abc",
        "limit=1e3",
        "limit=",
        "limit=99999999999999999999",
        "open_now=yes",
        "open_now=1",
        "open_now=",
    ],
)
def test_bad_params_400(client, query):
    assert_error(client.get("/restaurants?" + query), 400, "bad_param")


def test_limit_bounds_ok(client):
    b = assert_status(client.get("/restaurants?limit=1"), 200)
    assert len(b["restaurants"]) == 1
    assert_status(client.get("/restaurants?limit=100"), 200)


@pytest.mark.parametrize("cursor", ["garbage", "AAAA", "%00%01", "x" * 500, "eyJpZCI6MX0", "-1", "null"])
def test_bad_cursor_400(client, cursor):
    assert_error(client.get("/restaurants?limit=2&cursor=" + cursor), 400, "bad_cursor")


def test_tampered_cursor_400(client):
    """A cursor is opaque and only this server's own are accepted, so changing
    any character of a real cursor must give 400 bad_cursor."""
    b = assert_status(client.get("/restaurants?limit=2"), 200)
    cur = b["next_cursor"]
    assert cur, "need at least 3 restaurants"
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    bad = []
    for pos in sorted({0, len(cur) // 2, len(cur) - 1}):
        ch = cur[pos]
        rep = alphabet[(alphabet.find(ch) + 7) % len(alphabet)] if ch in alphabet else "A"
        t = cur[:pos] + rep + cur[pos + 1 :]
        r = client.get("/restaurants?limit=2&cursor=" + quote(t, safe=""))
        if r.status_code != 400:
            bad.append(describe(r))
        else:
            assert_error(r, 400, "bad_cursor")
    assert not bad, "tampered cursors were accepted:\n" + "\n".join(bad)
