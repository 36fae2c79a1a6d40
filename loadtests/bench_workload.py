"""Workloads of make bench and make lab: request files built from the seeded
database and its tokens.

A request file holds records "<length>\\n<bytes>", each a whole HTTP/1.1
request. loadtests/replay.lua (wrk, closed loop) and loadtests/openloop (open
loop) replay the same file, so both kinds of run send the same requests. Where
a request needs a unique value (the Idempotency-Key of POST /orders) it carries
the 16-character marker SEQ_____________, which both tools replace with a
unique number.

Every choice is drawn from random.Random(seed), so a workload is reproducible
for one seeded database. What the seed provides (which restaurants are open,
which items track stock, how long each customer's history is) is read with
psql; nothing is hard-coded.
"""

import json
import random
import urllib.parse

from bench_proc import BenchError, psql, psql_rows
from hplib import tokens

SEQ_MARKER = "SEQ_____________"
ZIPF_S = 1.1


def read_tokens(path):
    """{kind: [(user id, token)]} from the seed's tokens file (hplib.tokens), which must have customers."""
    try:
        out = tokens.read_tokens(path)
    except ValueError as e:
        raise BenchError(str(e)) from e
    if not out.get("customer"):
        raise BenchError(f"no customer tokens in {path}")
    return out


def http_request(method, path, token=None, body=None, idempotency=False):
    """The bytes of one HTTP/1.1 keep-alive request to 127.0.0.1."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if idempotency:
        lines.append(f"Idempotency-Key: bench-{SEQ_MARKER}")
    data = b""
    if body is not None:
        data = json.dumps(body, separators=(",", ":")).encode()
        lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(data)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


def write_requests(path, requests):
    with open(path, "wb") as f:
        for r in requests:
            f.write(f"{len(r)}\n".encode())
            f.write(r)
    return path


class Zipf:
    """Draws from items with P(rank k) proportional to 1 / k^s (rank 1 = items[0])."""

    def __init__(self, items, s, rng):
        if not items:
            raise BenchError("Zipf over an empty list")
        self.items, self.rng = list(items), rng
        acc, self.cum = 0.0, []
        for k in range(1, len(self.items) + 1):
            acc += 1 / k ** s
            self.cum.append(acc)

    def draw(self):
        return self.rng.choices(self.items, cum_weights=self.cum)[0]


class Data:
    """What the workloads need from the seeded database, read once."""

    def __init__(self, env, tokens_path):
        self.env = env
        self.tokens = read_tokens(tokens_path)
        self.customers = self.tokens["customer"]
        self.restaurants = [int(r[0]) for r in psql_rows(env, "SELECT id FROM restaurants ORDER BY id")]
        self.cities = [r[0] for r in psql_rows(env, "SELECT name FROM cities ORDER BY id")]
        # Restaurants open now and for the next two hours, with available items
        # whose stock is not tracked: checkouts there succeed for the whole run.
        rows = psql_rows(env, """
            SELECT r.id, array_to_string(array_agg(i.id ORDER BY i.id), ',') FROM restaurants r
            JOIN menu_items i ON i.restaurant_id = r.id AND i.available AND i.stock IS NULL
            WHERE hp_is_open(r.open_minute, r.close_minute, now())
              AND hp_is_open(r.open_minute, r.close_minute, now() + interval '2 hours')
            GROUP BY r.id ORDER BY r.id""")
        # Empty at some hours of a small seed: the loads that need it say so (need_open).
        self.open_items = {int(r[0]): [int(x) for x in r[1].split(",")] for r in rows}
        # Each menu item's modifiers (a pizza's toppings), for carts that carry them.
        rows = psql_rows(env, "SELECT item_id, array_to_string(array_agg(id ORDER BY id), ',') FROM item_modifiers GROUP BY item_id")
        self.modifiers = {int(r[0]): [int(x) for x in r[1].split(",")] for r in rows}
        ids = ",".join(str(uid) for uid, _ in self.customers)
        rows = psql_rows(env, f"SELECT user_id, max(id), count(*) FROM orders WHERE user_id IN ({ids}) GROUP BY user_id")
        self.last_order = {int(r[0]): int(r[1]) for r in rows}
        self.history_len = {int(r[0]): int(r[2]) for r in rows}

    def need_open(self):
        if not self.open_items:
            raise BenchError("no restaurant is open for the next two hours with available, untracked items")
        return self.open_items

    def restock(self, restaurant_ids, stock=1000000):
        """Gives the tracked items of these restaurants a stock that a run cannot exhaust,
        so checkout errors measure contention, not sold-out items."""
        psql(self.env, "UPDATE menu_items SET stock = %d WHERE stock IS NOT NULL AND available AND restaurant_id IN (%s)"
             % (stock, ",".join(str(r) for r in restaurant_ids)))

    def tracked_items(self, how_many_restaurants):
        """The open restaurants with the most available stock-tracked items: {restaurant: [item ids]}."""
        rows = psql_rows(self.env, """
            SELECT r.id, array_to_string(array_agg(i.id ORDER BY i.id), ',') FROM restaurants r
            JOIN menu_items i ON i.restaurant_id = r.id AND i.available AND i.stock IS NOT NULL
            WHERE hp_is_open(r.open_minute, r.close_minute, now())
              AND hp_is_open(r.open_minute, r.close_minute, now() + interval '2 hours')
            GROUP BY r.id ORDER BY count(*) DESC, r.id LIMIT %d""" % how_many_restaurants)
        if not rows:
            raise BenchError("no open restaurant has available stock-tracked items")
        return {int(r[0]): [int(x) for x in r[1].split(",")] for r in rows}


def menu_zipf(data, n, seed, with_auth=False):
    """GET /restaurants/{id}/menu, restaurants by Zipf popularity (s = 1.1); with
    with_auth, each request carries a customer's token (round robin)."""
    rng = random.Random(seed)
    z = Zipf(data.restaurants, ZIPF_S, rng)
    out = []
    for i in range(n):
        token = data.customers[i % len(data.customers)][1] if with_auth else None
        out.append(http_request("GET", f"/restaurants/{z.draw()}/menu", token=token))
    return out


def restaurant_gets(data, n, seed):
    """GET /restaurants/{id}, restaurants by Zipf popularity (s = 1.1): the
    API's primary-key read, measured against pgbench's bare lookup."""
    rng = random.Random(seed)
    z = Zipf(data.restaurants, ZIPF_S, rng)
    return [http_request("GET", f"/restaurants/{z.draw()}") for _ in range(n)]


def history(data, n, seed, limit=10):
    """GET /users/{id}/orders for customers drawn uniformly among those with a
    history; the seed gives history lengths a heavy tail, so some pages come
    from very long histories."""
    rng = random.Random(seed)
    customers = [(uid, tok) for uid, tok in data.customers if data.history_len.get(uid, 0) > 0]
    if not customers:
        raise BenchError("no customer with a token has an order history")
    out = []
    for _ in range(n):
        uid, tok = rng.choice(customers)
        out.append(http_request("GET", f"/users/{uid}/orders?limit={limit}", token=tok))
    return out


def large_quotes(data, n, seed, min_lines=150, max_lines=200):
    """POST /cart/quote with catering-sized carts (min_lines..max_lines lines, the
    API's maximum being 200) at open restaurants, lines drawn from the menu with
    repeats, each with its item's modifiers (at most 10), as a group order has."""
    rng = random.Random(seed)
    restaurants = sorted(data.need_open(), key=lambda r: (-len(data.open_items[r]), r))[:20]
    out = []
    for i in range(n):
        rid = rng.choice(restaurants)
        items = data.open_items[rid]
        lines = []
        for _ in range(rng.randint(min_lines, max_lines)):
            iid = rng.choice(items)
            line = {"item_id": iid, "quantity": rng.randint(1, 3)}
            if data.modifiers.get(iid):
                line["modifier_ids"] = data.modifiers[iid][:10]
            lines.append(line)
        tok = data.customers[i % len(data.customers)][1]
        out.append(http_request("POST", "/cart/quote", token=tok, body={"restaurant_id": rid, "items": lines}))
    return out


def orders(data, n, seed, items_by_restaurant, max_lines=3):
    """POST /orders with an Idempotency-Key each, at the given restaurants (chosen
    uniformly), 1..max_lines lines of quantity 1, customers round robin."""
    if not items_by_restaurant:
        raise BenchError("no open restaurant to order from")
    rng = random.Random(seed)
    restaurants = sorted(items_by_restaurant)
    out = []
    for i in range(n):
        rid = rng.choice(restaurants)
        items = items_by_restaurant[rid]
        lines = [{"item_id": iid, "quantity": 1} for iid in rng.sample(items, min(len(items), rng.randint(1, max_lines)))]
        tok = data.customers[i % len(data.customers)][1]
        out.append(http_request("POST", "/orders", token=tok, body={"restaurant_id": rid, "items": lines}, idempotency=True))
    return out


DEFAULT_MIX = {"browse": 1, "menu": 2, "quote": 1, "order": 1, "history": 1, "order_get": 1}


def parse_mix(text):
    """"browse=1,menu=2,..." -> {step: repetitions per journey}; unknown steps are an error."""
    mix = dict(DEFAULT_MIX)
    if text:
        for part in text.split(","):
            name, _, value = part.partition("=")
            if name not in DEFAULT_MIX or not value.isdigit():
                raise BenchError(f"--mix: expected STEP=N with STEP one of {', '.join(DEFAULT_MIX)}, got {part!r}")
            mix[name] = int(value)
    if not any(mix.values()):
        raise BenchError("--mix: every step is 0")
    return mix


def journeys(data, n, seed, mix=None):
    """The customer journey, repeated until n requests: browse the restaurants of
    a city, open a menu (Zipf), quote a cart, place the order, read the order
    history, check an order. Each step runs mix[step] times per journey. The
    order checked is the customer's latest seeded order (a replayed file cannot
    know the id the server will give the new one)."""
    mix = mix or DEFAULT_MIX
    rng = random.Random(seed)
    open_ids = sorted(data.need_open())
    z = Zipf(open_ids, ZIPF_S, rng)
    with_history = [(uid, tok) for uid, tok in data.customers if uid in data.last_order]
    out = []
    while len(out) < n:
        uid, tok = rng.choice(with_history or data.customers)
        rid = z.draw()
        items = data.open_items[rid]
        lines = [{"item_id": iid, "quantity": rng.randint(1, 2)} for iid in rng.sample(items, min(len(items), rng.randint(1, 4)))]
        cart = {"restaurant_id": rid, "items": lines}
        steps = {
            "browse": lambda: http_request("GET", "/restaurants?city=" + urllib.parse.quote(rng.choice(data.cities)) + "&limit=20"),
            "menu": lambda: http_request("GET", f"/restaurants/{rid}/menu"),
            "quote": lambda: http_request("POST", "/cart/quote", token=tok, body=cart),
            "order": lambda: http_request("POST", "/orders", token=tok, body=cart, idempotency=True),
            "history": lambda: http_request("GET", f"/users/{uid}/orders?limit=10", token=tok),
            "order_get": lambda: http_request("GET", f"/orders/{data.last_order[uid]}", token=tok) if uid in data.last_order else None,
        }
        for name in DEFAULT_MIX:
            for _ in range(mix.get(name, 0)):
                r = steps[name]()
                if r is not None:
                    out.append(r)
    return out[:n]
