"""The tests' pricing and opening-hours oracle: what the server must answer,
computed from the database and the rules as the schema and
services/order_total.h state them, independently of the server's code.

check_breakdown() checks a quote or an order line by line and fee by fee;
is_open() and closed_window() are the schema's opening hours in minutes after
midnight UTC, by the database's clock (minute_now()).
"""

import math

BREAKDOWN = [
    "subtotal_cents",
    "discount_cents",
    "tax_cents",
    "delivery_fee_cents",
    "service_fee_cents",
    "small_order_fee_cents",
    "tip_cents",
    "total_cents",
]


def haversine_m(lat1, lon1, lat2, lon2):
    """Great-circle distance in metres."""
    r = 6371000.0
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


def expected_lines(db, body):
    """The cart's lines as the database prices them: unit price with modifiers, never below 0."""
    out = []
    for line in body["items"]:
        item = db.one("SELECT name, price_cents, category FROM menu_items WHERE id = %s", (line["item_id"],))
        mids = line.get("modifier_ids", [])
        delta = 0
        for mid in mids:
            delta += db.val("SELECT price_delta_cents FROM item_modifiers WHERE id = %s", (mid,))
        unit = max(0, item["price_cents"] + delta)
        out.append(
            {
                "item_id": line["item_id"],
                "name": item["name"],
                "quantity": line["quantity"],
                "unit_price_cents": unit,
                "line_total_cents": unit * line["quantity"],
                "modifier_ids": mids,
                "category": item["category"],
            }
        )
    return out


def best_discount(db, rid, lines):
    """The best single active promotion, as services/order_total.h describes it."""
    best = 0
    for p in db.all("SELECT kind, value, min_subtotal_cents, category FROM promotions WHERE restaurant_id = %s AND active", (rid,)):
        eligible = sum(l["line_total_cents"] for l in lines if p["category"] is None or l["category"] == p["category"])
        if eligible == 0 or eligible < p["min_subtotal_cents"]:
            continue
        d = eligible * p["value"] / 10000.0 if p["kind"] == "percent" else p["value"]
        best = max(best, min(d, eligible))
    return best


def check_breakdown(db, body, q, user_id, rid):
    """Checks a quote (or an order) against the cart and the database."""
    for k in BREAKDOWN:
        assert isinstance(q.get(k), int) and q[k] >= 0, "%s missing or not a non-negative integer: %s" % (k, q)
    exp = expected_lines(db, body)
    key = "lines" if "lines" in q else "items"
    got = q[key]
    assert len(got) == len(exp), q
    for g, e in zip(got, exp):
        for k in ("item_id", "name", "quantity", "unit_price_cents", "line_total_cents"):
            assert g[k] == e[k], "line %s: %s got %r, expected %r" % (e["item_id"], k, g[k], e[k])
        assert sorted(g.get("modifier_ids") or []) == sorted(e["modifier_ids"]), (g, e)
    assert q["subtotal_cents"] == sum(e["line_total_cents"] for e in exp)
    assert q["discount_cents"] <= q["subtotal_cents"]
    assert q["tip_cents"] == body.get("tip_cents", 0)
    assert q["total_cents"] == (
        q["subtotal_cents"]
        - q["discount_cents"]
        + q["tax_cents"]
        + q["delivery_fee_cents"]
        + q["service_fee_cents"]
        + q["small_order_fee_cents"]
        + q["tip_cents"]
    ), "total is not subtotal - discount + tax + fees + tip: %s" % q
    # Tax: the restaurant city's rate on (subtotal - discount), rounded half up
    # (services/order_total.h; docs/API.md is silent on the formula).
    rate = db.val("SELECT c.tax_rate_bp FROM restaurants r JOIN cities c ON c.id = r.city_id WHERE r.id = %s", (rid,))
    base = q["subtotal_cents"] - q["discount_cents"]
    assert q["tax_cents"] == (base * rate + 5000) // 10000, "tax %d on %d at %d bp" % (q["tax_cents"], base, rate)
    # Discount: the best eligible promotion (rounding may differ by a cent).
    assert abs(q["discount_cents"] - best_discount(db, rid, exp)) <= 1, "discount %d, best promotion gives %.2f" % (
        q["discount_cents"],
        best_discount(db, rid, exp),
    )
    return exp


def minute_now(db):
    """The current minute after midnight UTC, by the database's clock."""
    return int(db.val("SELECT (extract(hour FROM now() AT TIME ZONE 'UTC') * 60 + extract(minute FROM now() AT TIME ZONE 'UTC'))::int"))


def is_open(open_minute, close_minute, m):
    """Opening hours as the schema defines them (migrations/0003_is_open):
    minutes after midnight UTC, close < open meaning the restaurant closes
    after midnight, and equal minutes meaning open around the clock."""
    if open_minute < close_minute:
        return open_minute <= m < close_minute
    return m >= open_minute or m < close_minute


def hhmm(minutes):
    return "%02d:%02d" % (minutes // 60, minutes % 60)


def closed_window(m):
    """(open_minute, close_minute) for a two-hour opening that starts two hours
    from minute `m`, so the restaurant is closed at `m` (and for the next two
    hours). Both values respect the schema's ranges."""
    o = (m + 120) % 1440
    c = (m + 240) % 1440
    if c == 0:
        c = 1440
    assert not is_open(o, c, m)
    return o, c
