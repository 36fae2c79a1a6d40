"""Ceilings of make bench and make lab, measured in the same run as the routes:
the server's own GET /healthz (the HTTP ceiling) and pgbench running the SQL of
the route's named statements at the same concurrency (the database ceiling).

The pgbench scripts take their SQL from the server binary itself
(`hotplate describe --json`, read by hplib.describe: the `desc` argument), so
they run exactly what the server prepares; only the parameters differ
(pgbench variables and literals instead of $n).
"""

from bench_proc import psql_rows


def _one_line(sql):
    # pgbench reads one SQL command per line unless it ends with a semicolon; keep each statement on one line.
    return " ".join(sql.split())


def menu_script(env, desc):
    """pgbench: menu_get for restaurant ids by Zipf popularity (s = 1.1), as the HTTP menu load."""
    lo, hi = (int(x) for x in psql_rows(env, "SELECT min(id), max(id) FROM restaurants")[0])
    sql = _one_line(desc.sql("menu_get")).replace("$1", ":rid")
    return f"\\set rid {lo} + random_zipfian(1, {hi - lo + 1}, 1.1) - 1\n{sql};\n"


def pk_script(env):
    """pgbench: the bare primary-key lookup SELECT * FROM restaurants WHERE id = $1, ids by Zipf popularity as the
    HTTP load of GET /restaurants/{id} draws them: what PostgreSQL can do for a primary-key read at all, without the
    route's join and select list."""
    lo, hi = (int(x) for x in psql_rows(env, "SELECT min(id), max(id) FROM restaurants")[0])
    return f"\\set rid {lo} + random_zipfian(1, {hi - lo + 1}, 1.1) - 1\nSELECT * FROM restaurants WHERE id = :rid;\n"


def _checkout_values(env, data, max_pairs):
    """The parameters $1..$17 of the order statements (hp_checkout_insert_values' order), as pgbench expressions, for
    one line of quantity 1 of an item drawn per transaction from up to max_pairs open restaurants (one available item
    each, as the HTTP orders load draws them), for a customer of the seed, with a fresh idempotency key. Spreading the
    items matters: on a single item every transaction would queue on that row's lock, which the HTTP load does not
    do. @return (the pgbench \\set lines, {n: expression}, the item-id array expression)"""
    rids = sorted(data.need_open())[:max_pairs]
    iids = [data.open_items[r][0] for r in rids]
    prices = {int(r[0]): int(r[1]) for r in psql_rows(env, "SELECT id, price_cents FROM menu_items WHERE id IN (%s)"
                                                     % ",".join(map(str, iids)))}
    uids = [uid for uid, _ in data.customers[:max_pairs]]

    def pick(values, cast):
        return f"(ARRAY[{','.join(map(str, values))}]::{cast}[])[:i]"

    price = pick([prices[i] for i in iids], "int")
    values = {
        1: pick(uids, "bigint").replace(":i]", ":u]"), 2: pick(rids, "bigint"), 3: price, 4: "0", 5: f"({price} / 5)", 6: "399",
        7: "99", 8: f"(CASE WHEN {price} < 1000 THEN 150 ELSE 0 END)", 9: "0", 10: f"({price} + {price} / 5 + 399 + 99)",
        11: "('pgbench-' || :key)", 12: f"ARRAY[{pick(iids, 'bigint')}]", 13: "'{1}'::int[]", 14: f"ARRAY[{price}]",
        15: "'{\"{}\"}'::text[]", 16: f"ARRAY[{price}]", 17: "'auth_pgbench'",
    }
    sets = f"\\set i random(1, {len(iids)})\n\\set u random(1, {len(uids)})\n\\set key random(1, 1000000000000)\n"
    return sets, values, f"ARRAY[{pick(iids, 'bigint')}]"


def _bind(sql, values):
    for n in sorted(values, reverse=True):  # $17 before $1
        sql = sql.replace(f"${n}", values[n])
    return sql


def checkout_script(env, desc, data, max_pairs=64):
    """pgbench: the checkout transaction one statement at a time, as the server ran it
    before its transaction became one batch (BEGIN; order_insert; stock_decrement;
    COMMIT, the statements the server declares, each a round trip), on the lines of
    _checkout_values. Payment is not in it: the HTTP side runs with payment_latency_ms=0."""
    sets, values, items = _checkout_values(env, data, max_pairs)
    insert = _bind(_one_line(desc.sql("order_insert")), values)
    stock = _one_line(desc.sql("stock_decrement")).replace("$1", items).replace("$2", "'{1}'::int[]")
    return f"{sets}BEGIN;\n{insert};\n{stock};\nCOMMIT;\n"


def checkout_pipeline_script(env, desc, data, max_pairs=64):
    """pgbench: the checkout transaction as the server sends it now, BEGIN, order_place and COMMIT in one round trip
    (pgbench's \\startpipeline ... \\endpipeline, which needs its prepared protocol), on the lines of
    _checkout_values. The items of the seed's open restaurants that the load draws carry no stock, so order_place gets
    no stock-tracked items ($18 and $19 empty), as the server sends it for such a cart."""
    sets, values, _ = _checkout_values(env, data, max_pairs)
    values.update({18: "'{}'::bigint[]", 19: "'{}'::int[]"})
    place = _bind(_one_line(desc.sql("order_place")), values)
    return f"{sets}\\startpipeline\nBEGIN;\n{place};\nCOMMIT;\n\\endpipeline\n"
