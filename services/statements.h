/*
 * statements: every SQL statement hotplate runs, each with a name and its
 * attributes.
 *
 * The list is the named-statement layer: each entry is prepared on every
 * connection when it connects (under its name, so pg_stat_statements and
 * EXPLAIN can be mapped back to it), and handlers refer to statements only by
 * id. There is no other way to send SQL from a request, which is why EXPLAIN
 * and per-statement stats can cover everything.
 *
 * X(name, kind, route, sample, sql):
 *   kind    HP_STMT_READ (reads only: EXPLAIN needs no transaction, and a
 *           cache could serve it), HP_STMT_WRITE, or HP_STMT_CONTROL (BEGIN,
 *           COMMIT, ROLLBACK)
 *   route   the route whose time it mostly is (HP_API_<id>, services/routes.h),
 *           or HP_API_NONE when several share it (auth, the cart's reads)
 *   sample  arguments for EXPLAIN and the doctor: SQL expressions, one per
 *           parameter, evaluated in EXPLAIN's own transaction, that pick rows
 *           of a seeded database (the customer with the most orders, the
 *           largest menu), so a plan shows the statement's real work; write
 *           statements get arguments that succeed, since the transaction is
 *           rolled back. HP_NO_ARGS for a statement without parameters.
 *           tests/unit/test_pg_parse.c checks there is one per parameter.
 *   sql     sent in text format; bytea parameters as "\\x<hex>".
 *
 * main.c hands the table to the runtime (runtime/db.h), where the admin
 * endpoints and the doctor read these attributes; profiling never includes
 * this file.
 */
#ifndef HP_STATEMENTS_H
#define HP_STATEMENTS_H

#include "runtime/db.h"
#include "services/routes.h"

/* The SQLSTATE of hp_stock_check (migrations/0004_stock_check): an order_place whose stock ran short. */
#define HP_SQLSTATE_OUT_OF_STOCK "HP409"

#define HP__TOP_CUSTOMER "(SELECT user_id FROM orders GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1)"
#define HP__FIRST_ITEM_RESTAURANT "(SELECT restaurant_id FROM menu_items ORDER BY id LIMIT 1)"

#define HP__RESTAURANT_COLUMNS "r.id, r.name, c.name, r.cuisine, (r.rating * 10)::int, r.open_minute, r.close_minute, r.lat, r.lon"

/*
 * A menu item as the API shows it, the columns of a row that row_to_json turns into the item's object: the item's row is
 * `mi`, and its modifiers are an array by id. The menu documents are built with row_to_json and array_to_json, which print
 * compact JSON: json_build_object and json_agg put spaces around every colon and after every comma, which were 13.5% of the
 * largest seeded menu's bytes (7,786 against 6,731), sent again on every cached read. pgbench ran the compact menu_get
 * faster, not slower (docs/BENCHMARKS.md, "Menus in compact JSON").
 */
#define HP__MENU_ITEM_COLUMNS                                                                                                      \
    "mi.id, mi.name, mi.description, mi.price_cents, mi.available, mi.stock, "                                                     \
    "coalesce((SELECT array_to_json(array_agg(mo ORDER BY mo.id)) FROM (SELECT m.id, m.name, m.price_delta_cents "                 \
    "FROM item_modifiers m WHERE m.item_id = mi.id) mo), '[]'::json) AS modifiers"

#define HP__ORDER_COLUMNS                                                                                                          \
    "o.id, o.user_id, o.restaurant_id, o.status, o.subtotal_cents, o.discount_cents, o.tax_cents, o.delivery_fee_cents, "          \
    "o.service_fee_cents, o.small_order_fee_cents, o.tip_cents, o.total_cents, "                                                   \
    "(extract(epoch FROM o.created_at) * 1000000)::bigint"

/*
 * The order's rows, inserted by one statement: the order (ON CONFLICT on its idempotency key: no row when the key already has
 * its order), its items, its payment and its first event. order_insert (checkout_txn=long) and order_place (the default) both
 * start with it; $1..$17 are hp_checkout_insert_values' parameters.
 */
#define HP__ORDER_INSERT_ARGS                                                                                                      \
    "(SELECT min(id) FROM users WHERE role = 'customer')", HP__FIRST_ITEM_RESTAURANT, "1000", "0", "80", "299", "150", "0", "0",   \
        "1529", "'hp-explain-' || gen_random_uuid()", "ARRAY[(SELECT min(id) FROM menu_items)]", "'{1}'", "'{1000}'",              \
        "'{\"{}\"}'", "'{1000}'", "'hp-explain'"
#define HP__ORDER_INSERT_CTES                                                                                                      \
    "WITH o AS (INSERT INTO orders (user_id, restaurant_id, subtotal_cents, discount_cents, tax_cents, delivery_fee_cents, "       \
    "service_fee_cents, small_order_fee_cents, tip_cents, total_cents, idempotency_key) "                                          \
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "                                                                       \
    "ON CONFLICT (user_id, idempotency_key) DO NOTHING RETURNING id, created_at), "                                                \
    "i AS (INSERT INTO order_items (order_id, item_id, name, quantity, unit_price_cents, modifier_ids, line_total_cents) "         \
    "SELECT o.id, l.item_id, mi.name, l.qty, l.unit, l.mods::bigint[], l.total FROM o, "                                           \
    "unnest($12::bigint[], $13::int[], $14::int[], $15::text[], $16::int[]) WITH ORDINALITY AS l(item_id, qty, unit, mods, "       \
    "total, n) JOIN menu_items mi ON mi.id = l.item_id ORDER BY l.n), "                                                            \
    "p AS (INSERT INTO payments (order_id, authorization_id, amount_cents, status) "                                               \
    "SELECT o.id, $17, $10, 'authorized' FROM o), "                                                                                \
    "e AS (INSERT INTO order_events (order_id, status, actor_id) SELECT o.id, 'placed', $1 FROM o)"

#define HP_STMT_LIST(X)                                                                                                            \
    /* auth: the principal behind a token hash; owners come with their restaurant */                                               \
    X(auth_token, HP_STMT_READ, HP_API_NONE, HP_ARGS("(SELECT token_hash FROM users ORDER BY id LIMIT 1)"),                        \
      "SELECT u.id, u.role, u.lat, u.lon, (SELECT min(r.id) FROM restaurants r WHERE r.owner_id = u.id) "                          \
      "FROM users u WHERE u.token_hash = $1::bytea")                                                                               \
    /* restaurants */                                                                                                              \
    X(restaurant_list, HP_STMT_READ, HP_API_restaurant_list,                                                                       \
      HP_ARGS("(SELECT name FROM cities ORDER BY id LIMIT 1)", "NULL", "NULL", "NULL", "NULL", "21", "720"),                       \
      "SELECT " HP__RESTAURANT_COLUMNS " FROM restaurants r JOIN cities c ON c.id = r.city_id "                                    \
      "WHERE ($1::text IS NULL OR c.name = $1) AND ($2::text IS NULL OR r.cuisine = $2) "                                          \
      "AND ($3::boolean IS NULL OR (CASE WHEN r.open_minute < r.close_minute "                                                     \
      "THEN $7::int >= r.open_minute AND $7::int < r.close_minute "                                                                \
      "ELSE $7::int >= r.open_minute OR $7::int < r.close_minute END) = $3) "                                                      \
      "AND ($4::int IS NULL OR (r.rating, r.id) < ($4::numeric / 10, $5::bigint)) "                                                \
      "ORDER BY r.rating DESC, r.id DESC LIMIT $6::int")                                                                           \
    X(restaurant_get, HP_STMT_READ, HP_API_restaurant_get, HP_ARGS("(SELECT min(id) FROM restaurants)"),                           \
      "SELECT " HP__RESTAURANT_COLUMNS " FROM restaurants r JOIN cities c ON c.id = r.city_id WHERE r.id = $1")                    \
    /* menus: PostgreSQL renders the menu document (compact JSON), so the handler passes it through without parsing */             \
    X(menu_get, HP_STMT_READ, HP_API_menu_get,                                                                                     \
      HP_ARGS("(SELECT restaurant_id FROM menu_items GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1)"),                              \
      "SELECT r.menu_version, coalesce((SELECT array_to_json(array_agg(cat ORDER BY cat.name)) "                                   \
      "FROM (SELECT mi.category AS name, array_to_json(array_agg(it ORDER BY mi.position, mi.id)) AS items "                       \
      "FROM menu_items mi CROSS JOIN LATERAL (SELECT " HP__MENU_ITEM_COLUMNS ") it "                                               \
      "WHERE mi.restaurant_id = r.id GROUP BY mi.category) cat), '[]'::json) FROM restaurants r WHERE r.id = $1")                  \
    X(menu_item_patch, HP_STMT_WRITE, HP_API_menu_item_patch,                                                                      \
      HP_ARGS(HP__FIRST_ITEM_RESTAURANT, "(SELECT min(id) FROM menu_items)", "NULL", "NULL", "false", "NULL"),                     \
      "WITH u AS (UPDATE menu_items SET price_cents = coalesce($3::int, price_cents), "                                            \
      "available = coalesce($4::boolean, available), stock = CASE WHEN $5::boolean THEN $6::int ELSE stock END "                   \
      "WHERE id = $2 AND restaurant_id = $1 RETURNING *), "                                                                        \
      "v AS (UPDATE restaurants SET menu_version = menu_version + 1 WHERE id = $1 AND EXISTS (SELECT 1 FROM u) "                   \
      "RETURNING menu_version) "                                                                                                   \
      "SELECT row_to_json(it), (SELECT menu_version FROM v) FROM u mi CROSS JOIN LATERAL (SELECT " HP__MENU_ITEM_COLUMNS ") it")   \
    /* cart: the inputs of the order total, read in one pipeline */                                                                \
    X(cart_restaurant, HP_STMT_READ, HP_API_NONE, HP_ARGS("(SELECT min(id) FROM restaurants)"),                                    \
      "SELECT r.id, r.lat, r.lon, c.tax_rate_bp, r.open_minute, r.close_minute, r.name "                                           \
      "FROM restaurants r JOIN cities c ON c.id = r.city_id WHERE r.id = $1")                                                      \
    X(cart_items, HP_STMT_READ, HP_API_NONE,                                                                                       \
      HP_ARGS("(SELECT array_agg(id) FROM (SELECT id FROM menu_items ORDER BY id LIMIT 3) s)"),                                    \
      "SELECT id, restaurant_id, price_cents, available, stock, category, name FROM menu_items "                                   \
      "WHERE id = ANY($1::bigint[])")                                                                                              \
    X(cart_modifiers, HP_STMT_READ, HP_API_NONE,                                                                                   \
      HP_ARGS("(SELECT array_agg(DISTINCT item_id) FROM (SELECT item_id FROM item_modifiers ORDER BY id LIMIT 6) s)"),             \
      "SELECT id, item_id, price_delta_cents FROM item_modifiers WHERE item_id = ANY($1::bigint[])")                               \
    X(cart_promotions, HP_STMT_READ, HP_API_NONE,                                                                                  \
      HP_ARGS("(SELECT coalesce(min(restaurant_id), 1) FROM promotions WHERE active)"),                                            \
      "SELECT id, kind, value, min_subtotal_cents, category FROM promotions "                                                      \
      "WHERE restaurant_id = $1 AND active ORDER BY id")                                                                           \
    /* checkout */                                                                                                                 \
    X(order_by_idempotency_key, HP_STMT_READ, HP_API_order_create, HP_ARGS(HP__TOP_CUSTOMER, "'hp-explain'"),                      \
      "SELECT id FROM orders WHERE user_id = $1 AND idempotency_key = $2")                                                         \
    X(txn_begin, HP_STMT_CONTROL, HP_API_NONE, HP_NO_ARGS, "BEGIN")                                                                \
    X(txn_commit, HP_STMT_CONTROL, HP_API_NONE, HP_NO_ARGS, "COMMIT")                                                              \
    /* replica_reads: sent behind a checkout's COMMIT in its batch, the commit's WAL position for read-your-writes */              \
    X(commit_lsn, HP_STMT_READ, HP_API_NONE, HP_NO_ARGS, "SELECT pg_current_wal_lsn()::text")                                      \
    X(txn_rollback, HP_STMT_CONTROL, HP_API_NONE, HP_NO_ARGS, "ROLLBACK")                                                          \
    X(order_insert, HP_STMT_WRITE, HP_API_order_create, HP_ARGS(HP__ORDER_INSERT_ARGS), HP__ORDER_INSERT_CTES " SELECT id FROM o") \
    /*                                                                                                                             \
     * The default checkout's one statement: order_insert, then stock_decrement's locks and decrement ($18 item ids, $19           \
     * quantities), conditional on the insert having inserted (a key that already has its order takes no stock), then              \
     * hp_stock_check (migrations/0004), which raises HP409 when a stock row was short, so that the COMMIT sent behind it in the   \
     * same round trip rolls everything back. A row per inserted order, its id and created_at in microseconds (the checkout's      \
     * 201 is built from them and what the checkout wrote): none when the key already had one.                                     \
     */                                                                                                                            \
    X(order_place, HP_STMT_WRITE, HP_API_order_create, HP_ARGS(HP__ORDER_INSERT_ARGS, "'{}'", "'{}'"),                             \
      HP__ORDER_INSERT_CTES                                                                                                        \
      ", "                                                                                                                         \
      "d AS (SELECT * FROM unnest($18::bigint[], $19::int[]) AS d(id, qty) WHERE EXISTS (SELECT 1 FROM o)), "                      \
      "l AS (SELECT m.id FROM menu_items m JOIN d ON d.id = m.id ORDER BY m.id FOR NO KEY UPDATE OF m), "                          \
      "s AS (UPDATE menu_items m SET stock = m.stock - d.qty FROM d, l "                                                           \
      "WHERE m.id = d.id AND l.id = m.id AND m.stock IS NOT NULL AND m.stock >= d.qty RETURNING m.id) "                            \
      "SELECT o.id, (extract(epoch FROM o.created_at) * 1000000)::bigint, "                                                        \
      "hp_stock_check((SELECT count(*) FROM s), cardinality($18::bigint[])) FROM o")                                               \
    /*                                                                                                                             \
     * Locks the stock rows in id order first, so two carts never deadlock on each other. The lock is FOR NO KEY UPDATE, the       \
     * one an UPDATE takes: FOR UPDATE would conflict with the KEY SHARE locks that other checkouts' order_items foreign keys      \
     * hold on the same items, and two checkouts of one item would deadlock.                                                       \
     */                                                                                                                            \
    X(stock_decrement, HP_STMT_WRITE, HP_API_order_create,                                                                         \
      HP_ARGS("ARRAY[(SELECT coalesce(min(id) FILTER (WHERE stock IS NOT NULL), min(id)) FROM menu_items)]", "'{1}'"),             \
      "WITH d AS (SELECT * FROM unnest($1::bigint[], $2::int[]) AS d(id, qty)), "                                                  \
      "l AS (SELECT m.id FROM menu_items m JOIN d ON d.id = m.id ORDER BY m.id FOR NO KEY UPDATE OF m) "                           \
      "UPDATE menu_items m SET stock = m.stock - d.qty FROM d, l "                                                                 \
      "WHERE m.id = d.id AND l.id = m.id AND m.stock IS NOT NULL AND m.stock >= d.qty RETURNING m.id")                             \
    /* orders */                                                                                                                   \
    X(order_get, HP_STMT_READ, HP_API_NONE, HP_ARGS("(SELECT max(id) FROM orders)"),                                               \
      "SELECT " HP__ORDER_COLUMNS ", r.name, r.owner_id, p.authorization_id, p.amount_cents, p.status "                            \
      "FROM orders o JOIN restaurants r ON r.id = o.restaurant_id LEFT JOIN payments p ON p.order_id = o.id "                      \
      "WHERE o.id = $1")                                                                                                           \
    X(order_items_for, HP_STMT_READ, HP_API_order_history,                                                                         \
      HP_ARGS("(SELECT array_agg(id) FROM (SELECT id FROM orders ORDER BY id DESC LIMIT 20) s)"),                                  \
      "SELECT order_id, item_id, name, quantity, unit_price_cents, line_total_cents, modifier_ids::text "                          \
      "FROM order_items WHERE order_id = ANY($1::bigint[]) ORDER BY order_id, id")                                                 \
    X(order_history, HP_STMT_READ, HP_API_order_history, HP_ARGS(HP__TOP_CUSTOMER, "NULL", "NULL", "21"),                          \
      "SELECT " HP__ORDER_COLUMNS " FROM orders o WHERE o.user_id = $1 AND ($2::bigint IS NULL OR "                                \
      "(o.created_at, o.id) < ('epoch'::timestamptz + $2::bigint * interval '1 microsecond', $3::bigint)) "                        \
      "ORDER BY o.created_at DESC, o.id DESC LIMIT $4::int")                                                                       \
    X(restaurant_names, HP_STMT_READ, HP_API_order_history,                                                                        \
      HP_ARGS("(SELECT array_agg(id) FROM (SELECT id FROM restaurants ORDER BY id LIMIT 20) s)"),                                  \
      "SELECT id, name FROM restaurants WHERE id = ANY($1::bigint[])")                                                             \
    /* the order_history=n_plus_one bottleneck: what an ORM's lazy loading sends, one order or restaurant at a time */             \
    X(order_items_of, HP_STMT_READ, HP_API_order_history, HP_ARGS("(SELECT max(id) FROM orders)"),                                 \
      "SELECT order_id, item_id, name, quantity, unit_price_cents, line_total_cents, modifier_ids::text "                          \
      "FROM order_items WHERE order_id = $1 ORDER BY id")                                                                          \
    X(restaurant_name_of, HP_STMT_READ, HP_API_order_history, HP_ARGS("(SELECT min(id) FROM restaurants)"),                        \
      "SELECT id, name FROM restaurants WHERE id = $1")                                                                            \
    X(order_transition, HP_STMT_WRITE, HP_API_order_event,                                                                         \
      HP_ARGS("(SELECT max(id) FROM orders)", "'{placed,accepted,preparing,ready,picked_up}'", "'cancelled'",                      \
              "(SELECT user_id FROM orders ORDER BY id DESC LIMIT 1)"),                                                            \
      "WITH u AS (UPDATE orders SET status = $3, updated_at = now() WHERE id = $1 AND status = ANY($2::text[]) RETURNING id), "    \
      "e AS (INSERT INTO order_events (order_id, status, actor_id) SELECT id, $3, $4 FROM u), "                                    \
      "p AS (UPDATE payments SET status = CASE $3 WHEN 'cancelled' THEN 'voided' ELSE 'captured' END "                             \
      "WHERE order_id IN (SELECT id FROM u) AND $3 IN ('cancelled', 'delivered') AND status = 'authorized') "                      \
      "SELECT id FROM u")

typedef enum {
#define HP__STMT_ID(name, kind, route, sample, sql) HP_STMT_##name,
    HP_STMT_LIST(HP__STMT_ID)
#undef HP__STMT_ID
        HP_STMT__COUNT
} hp_stmt_id_t;

/* The table of every statement, in hp_stmt_id_t order (statements.c). */
extern const hp_db_stmt_def_t hp_statements[HP_STMT__COUNT];

#endif
