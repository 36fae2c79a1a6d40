-- seed.sql: the deterministic demo and load-test data set of hotplate.
--
-- `hotplate seed` runs this file inside one transaction, step by step (a
-- step starts at a line "-- @step NAME"), after setting three
-- transaction-local settings:
--   hotplate.scale   row-count multiplier; 1.0 is 20 cities, 2,000 restaurants,
--                    ~60,000 menu items, 100,000 customers, 1,000,000 orders and
--                    ~3,000,000 order lines. Small scales keep at least 3 cities,
--                    5 restaurants, 50 customers and 100 orders.
--   hotplate.seed    a non-negative integer
--   hotplate.anchor  the "now" of the history ('' or unset: now, to the hour)
-- The same three values always give the same rows (the random token hashes of
-- users aside). It also runs by hand:
--   PGOPTIONS='-c hotplate.scale=0.01 -c hotplate.seed=42' psql -1 -f migrations/seed.sql
--
-- How it stays deterministic: there is no random() here. Every random choice
-- is pg_temp.hp_u(key, stream), a hash of the row's key, a per-choice stream
-- number and the seed (hashint8extended), so a value does not depend on the
-- order in which rows happen to be produced, and ids are computed, not drawn
-- from sequences.
--
-- How it stays fast (scale 1.0 in about 35 s on two cores): rows are
-- generated set-based with INSERT ... SELECT; every foreign key, primary key,
-- unique constraint and other index of the data tables is dropped after the
-- TRUNCATE and recreated from its own catalog definition at the end, so the
-- load pays neither per-row foreign-key triggers nor per-row index inserts,
-- and the database ends with exactly the constraints and indexes it had
-- before (whatever migrations were applied). All of it is one transaction,
-- so a failure rolls every drop back. Temporary tables hold the
-- intermediate results; they are not WAL-logged and vanish at COMMIT.

-- @step prepare
SET LOCAL TimeZone = 'UTC';
SET LOCAL synchronous_commit = off;
SET LOCAL statement_timeout = 0;
SET LOCAL work_mem = '256MB';
SET LOCAL maintenance_work_mem = '512MB';
-- generate_series() is estimated at 1000 rows per call, which makes the
-- plans look expensive enough for JIT compilation; compiling costs more than
-- it saves on these short expressions, so it is off.
SET LOCAL jit = off;
-- Only takes effect before the session's first temporary table, which is
-- why this file runs on a fresh connection.
SET LOCAL temp_buffers = '256MB';

CREATE TEMP TABLE hp_p ON COMMIT DROP AS
SELECT s.scale, s.seed, s.anchor,
       least(40, greatest(3, round(20 * s.scale)))::int AS n_city,
       greatest(5, round(2000 * s.scale))::int AS n_rest,
       greatest(50, round(100000 * s.scale))::int AS n_cust,
       greatest(100, round(1000000 * s.scale))::bigint AS n_ord,
       -- The newest orders are still in progress: the last hour and a half.
       greatest(10, round(1000000 * s.scale / 5000))::bigint AS n_recent,
       -- History starts at a UTC midnight 364 days before the day on which the
       -- in-progress window starts, and runs up to that window.
       date_trunc('day', s.anchor - interval '90 minutes') - interval '364 days' AS base,
       -- The anchor in whole seconds after base; order times are kept in
       -- such seconds until the end, which is cheaper than timestamp math.
       floor(extract(epoch FROM s.anchor - (date_trunc('day', s.anchor - interval '90 minutes') - interval '364 days')))::bigint
           AS anchor_s
FROM (SELECT current_setting('hotplate.scale')::double precision AS scale,
             current_setting('hotplate.seed')::bigint AS seed,
             coalesce(nullif(current_setting('hotplate.anchor', true), '')::timestamptz,
                      date_trunc('hour', now())) AS anchor) s;
-- Customer rank r becomes user 1 + (r * cust_mult) mod n_cust: a bijection
-- because cust_mult is coprime with n_cust, and one that scatters
-- neighbouring ranks because cust_mult is near n_cust times the golden ratio.
ALTER TABLE hp_p ADD COLUMN cust_mult bigint;
UPDATE hp_p SET cust_mult = (SELECT min(k) FROM generate_series(round(n_cust * 0.6180339887)::int, n_cust) k
                             WHERE gcd(k, n_cust) = 1);
-- Temporary tables have no statistics until analysed, and without them the
-- planner guesses hundreds of rows for this one and picks nested loops over
-- millions; so every temporary table below is analysed right after it is made.
ANALYZE hp_p;

DO $$
BEGIN
    IF (SELECT NOT (scale > 0 AND scale <= 100) OR seed NOT BETWEEN 0 AND 2147483647 FROM hp_p) THEN
        RAISE EXCEPTION 'hotplate.scale must be in (0, 100] and hotplate.seed in [0, 2147483647]';
    END IF;
END
$$;

-- The random source. hp_h is a 64-bit hash of (key, stream, seed); hp_u maps
-- it to [0, 1) with 53 bits; hp_i to an integer in [lo, hi]. The seed is
-- baked in as a literal so that the SQL functions are IMMUTABLE and get
-- inlined: a plain expression per row, no function-call overhead. The hash
-- seed is seed * 1000 + stream, so stream numbers must stay below 1000; each
-- random choice below has its own stream, so choices are independent.
DO $$
DECLARE
    s bigint := (SELECT seed FROM hp_p) * 1000;
BEGIN
    EXECUTE format('CREATE FUNCTION pg_temp.hp_h(k bigint, stream integer) RETURNS bigint'
                   ' LANGUAGE sql IMMUTABLE PARALLEL SAFE'
                   ' AS ''SELECT hashint8extended(k, %s::bigint + stream)''', s);
END
$$;
CREATE FUNCTION pg_temp.hp_u(k bigint, stream integer) RETURNS double precision
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS 'SELECT (pg_temp.hp_h(k, stream) & 9007199254740991)::double precision / 9007199254740992.0';
CREATE FUNCTION pg_temp.hp_i(k bigint, stream integer, lo integer, hi integer) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS 'SELECT lo + floor(pg_temp.hp_u(k, stream) * (hi - lo + 1))::integer';

-- @step truncate
TRUNCATE order_events, payments, order_items, orders, promotions, item_modifiers, menu_items, restaurants, users, cities
    RESTART IDENTITY CASCADE;

-- Remember how to recreate every foreign key (kind 3), primary key, unique
-- or exclusion constraint (kind 2) and other index (kind 1) of the data
-- tables, then drop them, foreign keys first as they depend on the keys.
-- Primary keys go too: building a btree from 3,000,000 rows takes a second,
-- maintaining it row by row (and WAL-logging every insert) takes several.
CREATE TEMP TABLE hp_ddl ON COMMIT DROP AS
WITH t(rel) AS (
    SELECT unnest(ARRAY['cities', 'users', 'restaurants', 'menu_items', 'item_modifiers', 'promotions', 'orders',
                        'order_items', 'payments', 'order_events']::regclass[])
)
SELECT CASE c.contype WHEN 'f' THEN 3 ELSE 2 END AS kind,
       format('ALTER TABLE %s DROP CONSTRAINT %I', c.conrelid::regclass, c.conname) AS drop_sql,
       format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname, pg_get_constraintdef(c.oid)) AS create_sql
FROM pg_constraint c JOIN t ON t.rel = c.conrelid
WHERE c.contype IN ('f', 'p', 'u', 'x')
UNION ALL
SELECT 1, format('DROP INDEX %s', i.indexrelid::regclass), pg_get_indexdef(i.indexrelid)
FROM pg_index i JOIN t ON t.rel = i.indrelid
WHERE NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid
                                               AND c.contype IN ('p', 'u', 'x'));

DO $$
DECLARE
    d record;
BEGIN
    FOR d IN SELECT drop_sql FROM hp_ddl ORDER BY kind DESC, drop_sql LOOP
        EXECUTE d.drop_sql;
    END LOOP;
END
$$;

-- @step cities
-- Real cities, most popular first; a city's popularity (weight) decides its
-- share of restaurants and customers. The tax rates are plausible rates on
-- restaurant food, in basis points.
CREATE TEMP TABLE hp_city ON COMMIT DROP AS
SELECT v.id, v.name, v.lat, v.lon, v.tax_bp,
       coalesce(sum(power(v.id, -0.9)) OVER (ORDER BY v.id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
           / sum(power(v.id, -0.9)) OVER () AS cum_lo,
       sum(power(v.id, -0.9)) OVER (ORDER BY v.id) / sum(power(v.id, -0.9)) OVER () AS cum_hi
FROM (VALUES (1, 'London', 51.5074, -0.1278, 2000), (2, 'Paris', 48.8566, 2.3522, 1000),
             (3, 'Berlin', 52.5200, 13.4050, 1900), (4, 'Madrid', 40.4168, -3.7038, 1000),
             (5, 'Rome', 41.9028, 12.4964, 1000), (6, 'Lisbon', 38.7223, -9.1393, 1300),
             (7, 'Amsterdam', 52.3676, 4.9041, 900), (8, 'Barcelona', 41.3874, 2.1686, 1000),
             (9, 'Munich', 48.1351, 11.5820, 1900), (10, 'Milan', 45.4642, 9.1900, 1000),
             (11, 'Vienna', 48.2082, 16.3738, 1000), (12, 'Prague', 50.0755, 14.4378, 1200),
             (13, 'Warsaw', 52.2297, 21.0122, 800), (14, 'Dublin', 53.3498, -6.2603, 1350),
             (15, 'Brussels', 50.8503, 4.3517, 1200), (16, 'Copenhagen', 55.6761, 12.5683, 2500),
             (17, 'Stockholm', 59.3293, 18.0686, 1200), (18, 'Athens', 37.9838, 23.7275, 1300),
             (19, 'Budapest', 47.4979, 19.0402, 500), (20, 'Porto', 41.1579, -8.6291, 1300),
             (21, 'Hamburg', 53.5511, 9.9937, 1900), (22, 'Lyon', 45.7640, 4.8357, 1000),
             (23, 'Manchester', 53.4808, -2.2426, 2000), (24, 'Oslo', 59.9139, 10.7522, 2500),
             (25, 'Helsinki', 60.1699, 24.9384, 1400), (26, 'Zurich', 47.3769, 8.5417, 810),
             (27, 'Krakow', 50.0647, 19.9450, 800), (28, 'Valencia', 39.4699, -0.3763, 1000),
             (29, 'Seville', 37.3891, -5.9845, 1000), (30, 'Naples', 40.8518, 14.2681, 1000),
             (31, 'Marseille', 43.2965, 5.3698, 1000), (32, 'Edinburgh', 55.9533, -3.1883, 2000),
             (33, 'Bucharest', 44.4268, 26.1025, 900), (34, 'Sofia', 42.6977, 23.3219, 2000),
             (35, 'Zagreb', 45.8150, 15.9819, 1300), (36, 'Ljubljana', 46.0569, 14.5058, 950),
             (37, 'Tallinn', 59.4370, 24.7536, 2200), (38, 'Riga', 56.9496, 24.1052, 2100),
             (39, 'Vilnius', 54.6872, 25.2797, 2100), (40, 'Luxembourg', 49.6116, 6.1319, 1700))
     AS v(id, name, lat, lon, tax_bp)
WHERE v.id <= (SELECT n_city FROM hp_p);
ANALYZE hp_city;

INSERT INTO cities (id, name, tax_rate_bp, lat, lon)
SELECT id, name, tax_bp, lat, lon FROM hp_city ORDER BY id;

-- 4096 equal buckets of [0, 1) mapped to cities by weight: drawing a city is
-- then an equality join on floor(u * 4096) instead of a range search.
CREATE TEMP TABLE hp_cb ON COMMIT DROP AS
SELECT b, (SELECT c.id FROM hp_city c WHERE c.cum_lo <= (b + 0.5) / 4096 ORDER BY c.id DESC LIMIT 1) AS city_id
FROM generate_series(0, 4095) b;
ANALYZE hp_cb;

-- @step restaurants
-- One row per restaurant with everything later steps need: its menu's id
-- range (first_item, n_items), its number of menu categories and a
-- popularity key (rating plus noise) that ranks it within its city. The
-- first n_city restaurants take one city each, so every city has one.
CREATE TEMP TABLE hp_r ON COMMIT DROP AS
SELECT x.*, sum(x.n_items) OVER (ORDER BY x.id) - x.n_items + 1 AS first_item
FROM (
    SELECT g.id, p.n_cust + g.id AS owner_id, c.id AS city_id,
           cz.cuisine_idx,
           (ARRAY['italian', 'thai', 'indian', 'japanese', 'chinese', 'mexican', 'burgers', 'pizza', 'vietnamese',
                  'greek', 'lebanese', 'korean', 'vegan', 'french', 'turkish', 'portuguese'])[cz.cuisine_idx] AS cuisine,
           (ARRAY['Golden', 'Little', 'Blue', 'Royal', 'Lucky', 'Old Town', 'Happy', 'Green', 'Red', 'Urban', 'Sunny',
                  'Corner', 'Silver', 'Casa', 'Bella', 'Grand'])[pg_temp.hp_i(g.id, 102, 1, 16)] || ' ' ||
           (ARRAY['Trattoria', 'Osteria', 'Pasta Bar',  'Thai Kitchen', 'Bangkok Street', 'Thai House',
                  'Curry House', 'Tandoor', 'Spice Kitchen',  'Sushi Bar', 'Ramen Shop', 'Izakaya',
                  'Dumpling House', 'Wok', 'Noodle Bar',  'Taqueria', 'Cantina', 'Burrito Bar',
                  'Burger Joint', 'Grill', 'Diner',  'Pizzeria', 'Slice', 'Forno',
                  'Pho House', 'Banh Mi', 'Saigon Kitchen',  'Taverna', 'Souvlaki', 'Gyros',
                  'Mezze', 'Falafel', 'Grill House',  'BBQ', 'Kimchi House', 'Bibimbap Bar',
                  'Greens', 'Plant Kitchen', 'Bowl',  'Bistro', 'Brasserie', 'Creperie',
                  'Kebab House', 'Ocakbasi', 'Meze Grill',  'Tasca', 'Churrasqueira', 'Petiscos'])
               [(cz.cuisine_idx - 1) * 3 + pg_temp.hp_i(g.id, 103, 1, 3)] AS name,
           round((3.0 + 2.0 * sqrt(pg_temp.hp_u(g.id, 104)))::numeric, 1) AS rating,
           -- Hours: 60% 10:00-23:00 UTC, 15% other daytime hours, 12% round
           -- the clock, 13% open past midnight (close < open). The first
           -- restaurant of each city never closes, so that every order, even
           -- at 4 a.m. in a tiny data set, has an open restaurant to go to.
           CASE WHEN g.id <= p.n_city THEN 0
                WHEN h.u < 0.60 THEN 600
                WHEN h.u < 0.75 THEN (ARRAY[540, 660, 690, 720])[pg_temp.hp_i(g.id, 106, 1, 4)]
                WHEN h.u < 0.87 THEN 0
                ELSE (ARRAY[1020, 1080, 1140])[pg_temp.hp_i(g.id, 106, 1, 3)] END AS open_minute,
           CASE WHEN g.id <= p.n_city THEN 1440
                WHEN h.u < 0.60 THEN 1380
                WHEN h.u < 0.75 THEN (ARRAY[1290, 1320, 1350, 1410])[pg_temp.hp_i(g.id, 107, 1, 4)]
                WHEN h.u < 0.87 THEN 1440
                ELSE (ARRAY[60, 120, 180])[pg_temp.hp_i(g.id, 107, 1, 3)] END AS close_minute,
           c.lat + (pg_temp.hp_u(g.id, 108) + pg_temp.hp_u(g.id, 109) - 1) * 0.04 AS lat,
           c.lon + (pg_temp.hp_u(g.id, 110) + pg_temp.hp_u(g.id, 111) - 1) * 0.04 / cos(radians(c.lat)) AS lon,
           pg_temp.hp_i(g.id, 112, 20, 40) AS n_items,
           pg_temp.hp_i(g.id, 113, 4, 6) AS n_cat,
           pg_temp.hp_u(g.id, 114) AS promo_u
    FROM hp_p p
    CROSS JOIN generate_series(1, p.n_rest) g(id)
    CROSS JOIN LATERAL (SELECT pg_temp.hp_u(g.id, 105) AS u) h
    CROSS JOIN LATERAL (SELECT pg_temp.hp_i(g.id, 101, 1, 16) AS cuisine_idx) cz
    JOIN hp_cb cb ON cb.b = floor(pg_temp.hp_u(g.id, 100) * 4096)::int
    JOIN hp_city c ON c.id = CASE WHEN g.id <= p.n_city THEN g.id ELSE cb.city_id END
) x;

-- Popularity: better-rated places tend to get more orders.
ALTER TABLE hp_r ADD COLUMN pop double precision;
UPDATE hp_r SET pop = rating + 1.5 * pg_temp.hp_u(id, 115);
ANALYZE hp_r;

INSERT INTO restaurants (id, owner_id, name, city_id, cuisine, rating, open_minute, close_minute, lat, lon, menu_version)
SELECT id, owner_id, name, city_id, cuisine, rating, open_minute, close_minute, lat, lon, 1 FROM hp_r ORDER BY id;

-- @step users
-- Customers are users 1..n_cust and owners follow (owner of restaurant r is
-- user n_cust + r). Every user gets the SHA-256 of a random UUID as token
-- hash: unique, and no token string hashes to it, so nobody can log in as a
-- seeded user until `hotplate seed --tokens` gives them a real token.
INSERT INTO users (id, role, name, email, city_id, lat, lon, token_hash, created_at)
SELECT g.id, 'customer', n.first || ' ' || n.last,
       lower(n.first) || '.' || lower(n.last) || '.' || g.id || '@example.com',
       c.id,
       c.lat + (pg_temp.hp_u(g.id, 21) + pg_temp.hp_u(g.id, 22) - 1) * 0.07,
       c.lon + (pg_temp.hp_u(g.id, 23) + pg_temp.hp_u(g.id, 24) - 1) * 0.07 / cos(radians(c.lat)),
       sha256(uuid_send(gen_random_uuid())),
       p.base - make_interval(secs => floor(pg_temp.hp_u(g.id, 25) * 2 * 365 * 86400))
FROM hp_p p
CROSS JOIN generate_series(1, p.n_cust) g(id)
CROSS JOIN LATERAL (
    SELECT (ARRAY['Ana', 'Ben', 'Carla', 'David', 'Elena', 'Felix', 'Grace', 'Hugo', 'Ines', 'Jonas', 'Katarina', 'Leo',
                  'Maria', 'Nils', 'Olivia', 'Pedro', 'Quinn', 'Rosa', 'Sami', 'Tessa', 'Umar', 'Vera', 'Wim', 'Xenia',
                  'Yusuf', 'Zoe', 'Luca', 'Emma', 'Mateo', 'Sofia', 'Noah', 'Mila'])[pg_temp.hp_i(g.id, 26, 1, 32)] AS first,
           (ARRAY['Silva', 'Schmidt', 'Rossi', 'Dubois', 'Novak', 'Jensen', 'Kowalski', 'Garcia', 'Murphy', 'Papadopoulos',
                  'Horvat', 'Nielsen', 'Costa', 'Muller', 'Bianchi', 'Martin', 'Lindqvist', 'Ferreira', 'Weber', 'Romano',
                  'Moreau', 'Nowak', 'Svensson', 'Santos', 'Fischer', 'Ricci', 'Laurent', 'Kovacs', 'Berg', 'Almeida',
                  'Wagner', 'Conti'])[pg_temp.hp_i(g.id, 27, 1, 32)] AS last
) n
JOIN hp_cb cb ON cb.b = floor(pg_temp.hp_u(g.id, 20) * 4096)::int
JOIN hp_city c ON c.id = cb.city_id
ORDER BY g.id;

INSERT INTO users (id, role, name, email, city_id, lat, lon, token_hash, created_at)
SELECT r.owner_id, 'owner', r.name || ' (owner)', 'owner.' || r.id || '@restaurants.example.com', r.city_id, r.lat, r.lon,
       sha256(uuid_send(gen_random_uuid())),
       p.base - make_interval(secs => floor(pg_temp.hp_u(r.id, 28) * 3 * 365 * 86400))
FROM hp_r r CROSS JOIN hp_p p
ORDER BY r.owner_id;
ANALYZE users;

-- @step menus
-- Menus: categories in menu order, the first n_cat of a restaurant's list
-- are used; with 4 these are mains, starters, drinks and desserts. Each
-- category has its price range, 8 adjectives and 16 dishes; an item's name
-- index (r + 37 j) mod 128 is distinct for the up to 40 items of a menu, so
-- no menu lists the same name twice.
CREATE TEMP TABLE hp_cat ON COMMIT DROP AS
SELECT * FROM (VALUES
    (0, 'mains', 900, 3500,
     ARRAY['Classic', 'Spicy', 'House', 'Chef''s', 'Smoky', 'Garden', 'Royal', 'Street-Style'],
     ARRAY['Margherita Pizza', 'Pad Thai', 'Chicken Tikka Masala', 'Beef Burger', 'Ramen', 'Lasagne', 'Burrito',
           'Green Curry', 'Steak Frites', 'Pho', 'Souvlaki Plate', 'Bibimbap', 'Risotto', 'Fish and Chips',
           'Falafel Wrap', 'Teriyaki Bowl']),
    (1, 'starters', 400, 1400,
     ARRAY['Crispy', 'Classic', 'House', 'Spicy', 'Warm', 'Loaded', 'Mini', 'Golden'],
     ARRAY['Spring Rolls', 'Bruschetta', 'Garlic Bread', 'Hummus', 'Calamari', 'Gyoza', 'Nachos', 'Samosas',
           'Chicken Wings', 'Edamame', 'Soup of the Day', 'Tempura', 'Mozzarella Sticks', 'Dolmades', 'Crostini',
           'Satay Skewers']),
    (2, 'drinks', 150, 600,
     ARRAY['Fresh', 'Large', 'Small', 'Iced', 'Organic', 'House', 'Sugar-Free', 'Homemade'],
     ARRAY['Lemonade', 'Iced Tea', 'Cola', 'Sparkling Water', 'Orange Juice', 'Mango Lassi', 'Espresso', 'Craft Beer',
           'Ginger Ale', 'Kombucha', 'Still Water', 'Cappuccino', 'Smoothie', 'Bubble Tea', 'Horchata', 'Red Wine']),
    (3, 'desserts', 400, 1200,
     ARRAY['Classic', 'Homemade', 'Warm', 'Vegan', 'Mini', 'Double Chocolate', 'Salted Caramel', 'Seasonal'],
     ARRAY['Tiramisu', 'Cheesecake', 'Brownie', 'Panna Cotta', 'Ice Cream', 'Mochi', 'Churros', 'Baklava', 'Apple Pie',
           'Creme Brulee', 'Chocolate Mousse', 'Gelato', 'Pastel de Nata', 'Crepe', 'Lemon Tart',
           'Sticky Toffee Pudding']),
    (4, 'sides', 250, 900,
     ARRAY['Small', 'Large', 'Crispy', 'Classic', 'Herbed', 'Spiced', 'Buttered', 'House'],
     ARRAY['Fries', 'Rice', 'Coleslaw', 'Side Salad', 'Onion Rings', 'Naan', 'Sweet Potato Fries', 'Kimchi',
           'Corn on the Cob', 'Roast Potatoes', 'Pickles', 'Garlic Naan', 'Mashed Potatoes', 'Steamed Greens', 'Pita',
           'Seasoned Wedges']),
    (5, 'salads', 600, 1600,
     ARRAY['Classic', 'Large', 'Small', 'Vegan', 'Grilled Chicken', 'Superfood', 'House', 'Warm'],
     ARRAY['Caesar Salad', 'Greek Salad', 'Caprese', 'Quinoa Bowl', 'Nicoise Salad', 'Tabbouleh', 'Cobb Salad', 'Som Tam',
           'Waldorf Salad', 'Poke Bowl', 'Fattoush', 'Kale Salad', 'Burrata Salad', 'Asian Slaw', 'Chickpea Salad',
           'Tuna Salad'])
) v(idx, name, price_lo, price_hi, adjs, dishes);
ANALYZE hp_cat;

-- Modifiers an item can offer, with their price delta range in cents.
CREATE TEMP TABLE hp_mod ON COMMIT DROP AS
SELECT * FROM (VALUES
    (1, 'Extra cheese', 50, 150), (2, 'Large portion', 200, 400), (3, 'Extra spicy', 0, 0), (4, 'No onions', 0, 0),
    (5, 'Add bacon', 100, 250), (6, 'Gluten-free', 100, 200), (7, 'Extra sauce', 0, 50), (8, 'Small portion', -100, -50),
    (9, 'Add avocado', 150, 250), (10, 'Double shot', 50, 100), (11, 'Oat milk', 30, 60), (12, 'Add egg', 80, 150)
) v(idx, name, lo, hi);
ANALYZE hp_mod;

-- One row per menu item with its modifiers folded in (m_count of them, ids
-- m_first and m_first + 1), which is what the order lines look up.
CREATE TEMP TABLE hp_mi ON COMMIT DROP AS
SELECT y.*,
       sum(y.m_count) OVER (ORDER BY y.id) - y.m_count + 1 AS m_first,
       (row_number() OVER (PARTITION BY y.restaurant_id, y.cat_idx ORDER BY y.id) - 1)::int AS position
FROM (
    SELECT x.id, x.restaurant_id, x.cat_idx, cat.name AS category,
           cat.adjs[1 + x.name_idx % 8] || ' ' || cat.dishes[1 + x.name_idx / 8] AS name,
           (ARRAY['Made fresh to order.', 'A house favourite.', 'Serves one.', 'Contains nuts.', 'Vegetarian.',
                  'Hot and spicy.', 'Seasonal ingredients.', ''])[pg_temp.hp_i(x.id, 122, 1, 8)] AS description,
           cat.price_lo + 10 * floor(pg_temp.hp_u(x.id, 123) * ((cat.price_hi - cat.price_lo) / 10 + 1))::int AS price_cents,
           pg_temp.hp_u(x.id, 124) >= 0.05 AS available,
           CASE WHEN pg_temp.hp_u(x.id, 125) < 0.20 THEN pg_temp.hp_i(x.id, 126, 0, 200) END AS stock,
           x.m_count,
           m1.name AS m1_name,
           m1.lo + 10 * floor(pg_temp.hp_u(x.id, 129) * ((m1.hi - m1.lo) / 10 + 1))::int AS m1_delta,
           m2.name AS m2_name,
           m2.lo + 10 * floor(pg_temp.hp_u(x.id, 130) * ((m2.hi - m2.lo) / 10 + 1))::int AS m2_delta
    FROM (
        SELECT r.first_item + j AS id, r.id AS restaurant_id,
               least(r.n_cat - 1, floor(r.n_cat * power(pg_temp.hp_u(r.first_item + j, 120), 1.6)))::int AS cat_idx,
               (pg_temp.hp_i(r.id, 121, 0, 127) + 37 * j) % 128 AS name_idx,
               CASE WHEN pg_temp.hp_u(r.first_item + j, 127) < 0.6 THEN 0
                    WHEN pg_temp.hp_u(r.first_item + j, 127) < 0.9 THEN 1 ELSE 2 END AS m_count,
               pg_temp.hp_i(r.first_item + j, 128, 1, 12) AS m1_idx,
               pg_temp.hp_i(r.first_item + j, 131, 0, 10) AS m2_step
        FROM hp_r r CROSS JOIN LATERAL generate_series(0, r.n_items - 1) j
    ) x
    JOIN hp_cat cat ON cat.idx = x.cat_idx
    JOIN hp_mod m1 ON m1.idx = x.m1_idx
    -- A different modifier than the first: step 1..11 further round the list.
    JOIN hp_mod m2 ON m2.idx = 1 + (x.m1_idx + x.m2_step) % 12
) y;
ANALYZE hp_mi;

INSERT INTO menu_items (id, restaurant_id, category, name, description, price_cents, available, stock, position)
SELECT id, restaurant_id, category, name, description, price_cents, available, stock, position FROM hp_mi ORDER BY id;

INSERT INTO item_modifiers (id, item_id, name, price_delta_cents)
SELECT m_first, id, m1_name, m1_delta FROM hp_mi WHERE m_count >= 1
UNION ALL
SELECT m_first + 1, id, m2_name, m2_delta FROM hp_mi WHERE m_count = 2
ORDER BY 1;

-- @step promotions
-- 30% of restaurants run a promotion, a fifth of those a second one; 90% are
-- active and 30% apply to one menu category only.
INSERT INTO promotions (id, restaurant_id, kind, value, min_subtotal_cents, category, active)
SELECT row_number() OVER (ORDER BY r.id, k), r.id,
       CASE WHEN pg_temp.hp_u(r.id * 4 + k, 140) < 0.6 THEN 'percent' ELSE 'fixed' END,
       CASE WHEN pg_temp.hp_u(r.id * 4 + k, 140) < 0.6 THEN 500 + 250 * pg_temp.hp_i(r.id * 4 + k, 141, 0, 8)
            ELSE 200 + 50 * pg_temp.hp_i(r.id * 4 + k, 141, 0, 12) END,
       500 * pg_temp.hp_i(r.id * 4 + k, 142, 0, 6),
       CASE WHEN pg_temp.hp_u(r.id * 4 + k, 143) < 0.3
            THEN (SELECT name FROM hp_cat WHERE idx = pg_temp.hp_i(r.id * 4 + k, 144, 0, r.n_cat - 1)) END,
       pg_temp.hp_u(r.id * 4 + k, 145) < 0.9
FROM hp_r r
CROSS JOIN LATERAL generate_series(1, CASE WHEN r.promo_u >= 0.3 THEN 0
                                           WHEN pg_temp.hp_u(r.id, 146) < 0.2 THEN 2 ELSE 1 END) k
ORDER BY r.id, k;

-- The active promotions of each restaurant side by side (at most two), for
-- the discount of its orders.
CREATE TEMP TABLE hp_pr ON COMMIT DROP AS
SELECT restaurant_id,
       (array_agg(kind ORDER BY id))[1] AS k1, (array_agg(value ORDER BY id))[1] AS v1,
       (array_agg(min_subtotal_cents ORDER BY id))[1] AS min1, (array_agg(c.idx ORDER BY id))[1] AS c1,
       (array_agg(kind ORDER BY id))[2] AS k2, (array_agg(value ORDER BY id))[2] AS v2,
       (array_agg(min_subtotal_cents ORDER BY id))[2] AS min2, (array_agg(c.idx ORDER BY id))[2] AS c2
FROM promotions p LEFT JOIN hp_cat c ON c.name = p.category
WHERE p.active
GROUP BY restaurant_id;
ANALYZE hp_pr;

-- @step order_plan
-- Time of day: orders follow an hourly curve (UTC) with lunch and dinner
-- peaks. hp_tod splits the day's cumulative distribution into 4096 buckets,
-- each with the minute range it covers, so a uniform value maps to a minute
-- of the day by one equality join and a linear interpolation, monotonically.
CREATE TEMP TABLE hp_hour ON COMMIT DROP AS
SELECT h, w,
       coalesce(sum(w) OVER (ORDER BY h ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) / sum(w) OVER () AS cum_lo,
       sum(w) OVER (ORDER BY h) / sum(w) OVER () AS cum_hi
FROM unnest(ARRAY[1.0, 0.5, 0.2, 0.1, 0.1, 0.1, 0.2, 0.4, 0.6, 0.8, 1.5, 4, 7, 6, 3, 2, 2, 4, 8, 10, 8, 5, 3, 2]::float8[])
     WITH ORDINALITY AS t(w, o)
CROSS JOIN LATERAL (SELECT (t.o - 1)::int AS h) hh;
ANALYZE hp_hour;

CREATE TEMP TABLE hp_tod ON COMMIT DROP AS
SELECT b, lo.m AS m_lo, hi.m AS m_hi
FROM generate_series(0, 4095) b
CROSS JOIN LATERAL (SELECT 60 * h + 60 * (b / 4096.0 - cum_lo) / (cum_hi - cum_lo) AS m
                    FROM hp_hour WHERE cum_lo <= b / 4096.0 ORDER BY h DESC LIMIT 1) lo
CROSS JOIN LATERAL (SELECT least(1440, 60 * h + 60 * ((b + 1) / 4096.0 - cum_lo) / (cum_hi - cum_lo)) AS m
                    FROM hp_hour WHERE cum_lo < (b + 1) / 4096.0 ORDER BY h DESC LIMIT 1) hi;
ANALYZE hp_tod;

-- The length of the history in "days of orders": 364 whole days, plus the
-- part of the last day's distribution that lies before the in-progress
-- window (the value of the daily CDF at that time of day).
CREATE TEMP TABLE hp_span ON COMMIT DROP AS
SELECT 364 + h.cum_lo + (x.m - 60 * h.h) / 60 * (h.cum_hi - h.cum_lo) AS days
FROM (SELECT (p.anchor_s - 5400 - 364 * 86400) / 60.0 AS m FROM hp_p p) x
JOIN hp_hour h ON h.h = floor(x.m / 60);

-- For each city and UTC hour, its restaurants open for that whole hour,
-- ranked by popularity (hkey -1: all of the city's restaurants, the fallback
-- for hours when none is open). An order at hour h picks the rank from a
-- Zipf distribution, so orders go to open restaurants and a few get most.
CREATE TEMP TABLE hp_cr ON COMMIT DROP AS
SELECT r.city_id, hr.h AS hkey,
       (row_number() OVER (PARTITION BY r.city_id, hr.h ORDER BY r.pop DESC, r.id) - 1)::int AS rank,
       r.id AS restaurant_id
FROM hp_r r
JOIN generate_series(-1, 23) hr(h)
  ON hr.h = -1
  OR (r.open_minute < r.close_minute AND r.open_minute <= 60 * hr.h AND 60 * hr.h + 60 <= r.close_minute)
  OR (r.open_minute > r.close_minute AND (60 * hr.h >= r.open_minute OR 60 * hr.h + 60 <= r.close_minute));
ANALYZE hp_cr;

CREATE TEMP TABLE hp_ch ON COMMIT DROP AS
SELECT c.id AS city_id, hr.h AS hour,
       CASE WHEN n.cnt IS NULL THEN -1 ELSE hr.h END AS hkey,
       coalesce(n.cnt, a.cnt)::int AS n,
       -- (n + 1)^(1 - s) of the Zipf inverse CDF, once per row here. (The
       -- cast matters: power() of an integer picks the numeric variant,
       -- which is a hundred times slower.)
       power(coalesce(n.cnt, a.cnt)::double precision + 1, -0.1) AS pw
FROM hp_city c
CROSS JOIN generate_series(0, 23) hr(h)
LEFT JOIN (SELECT city_id, hkey, count(*) AS cnt FROM hp_cr GROUP BY 1, 2) n ON n.city_id = c.id AND n.hkey = hr.h
JOIN (SELECT city_id, count(*) AS cnt FROM hp_cr WHERE hkey = -1 GROUP BY 1) a ON a.city_id = c.id;
ANALYZE hp_ch;

-- The orders before their money columns, in two stages so that each join
-- is a plain equality. Ids follow time: history orders 1..n_ord - n_recent
-- spread over the days from base to the in-progress window, the last
-- n_recent over that window, the 90 minutes before the anchor. Customers
-- are drawn with a heavy tail: rank floor(n_cust * u^2) gives the top
-- customer about sqrt(1 / n_cust) of all orders (thousands at scale 1.0)
-- and the median customer a handful; a multiplicative permutation
-- (hp_p.cust_mult) scatters the ranks over the ids.
CREATE TEMP TABLE hp_o0 ON COMMIT DROP AS
SELECT t.id, t.user_id, t.recent, t.n_lines, t.first_line, t.base + make_interval(secs => t.ts) AS created_at,
       -- base is a UTC midnight, so the hour is a plain division.
       ((t.ts / 3600) % 24)::int AS hour,
       t.anchor_s - t.ts AS age_s
FROM (
    SELECT g.id, g.user_id, g.recent, g.n_lines, g.base, g.anchor_s,
           sum(g.n_lines) OVER (ORDER BY g.id) - g.n_lines + 1 AS first_line,
           -- Seconds after base.
           CASE WHEN g.recent
                THEN g.anchor_s - 5400 + floor((g.id - g.n_hist - 1 + pg_temp.hp_u(g.id, 200)) * 5400 / g.n_recent)::bigint
                ELSE least(g.anchor_s - 5401, g.day::bigint * 86400
                     + least(86399, floor(60 * (d.m_lo + (d.m_hi - d.m_lo) * (g.day_frac * 4096 - d.b))))::bigint) END AS ts
    FROM (
        SELECT f.*, floor(f.day_pos)::int AS day, f.day_pos - floor(f.day_pos) AS day_frac,
               CASE WHEN NOT f.recent THEN floor((f.day_pos - floor(f.day_pos)) * 4096)::int END AS b
        FROM (
            SELECT o AS id, p.base, p.anchor_s, p.n_recent, p.n_ord - p.n_recent AS n_hist,
                   o > p.n_ord - p.n_recent AS recent,
                   1 + (floor(p.n_cust * power(pg_temp.hp_u(o, 201), 2))::bigint * p.cust_mult) % p.n_cust AS user_id,
                   CASE WHEN l.u < 0.20 THEN 1 WHEN l.u < 0.45 THEN 2 WHEN l.u < 0.67 THEN 3
                        WHEN l.u < 0.82 THEN 4 WHEN l.u < 0.92 THEN 5 ELSE 6 END AS n_lines,
                   -- History: the position in days of orders since base.
                   (o - 1 + pg_temp.hp_u(o, 200)) * sp.days / (p.n_ord - p.n_recent) AS day_pos
            FROM hp_p p
            CROSS JOIN hp_span sp
            CROSS JOIN generate_series(1, p.n_ord) o
            CROSS JOIN LATERAL (SELECT pg_temp.hp_u(o, 202) AS u) l
        ) f
    ) g
    LEFT JOIN hp_tod d ON d.b = g.b
) t;
ANALYZE hp_o0;

CREATE TEMP TABLE hp_o ON COMMIT DROP AS
SELECT o.id, o.user_id, cr.restaurant_id, r.owner_id, o.created_at,
       CASE WHEN NOT o.recent THEN
                CASE WHEN pg_temp.hp_u(o.id, 203) < 0.06 THEN 'cancelled' ELSE 'delivered' END
            WHEN o.age_s < 600 THEN 'placed' WHEN o.age_s < 1200 THEN 'accepted' WHEN o.age_s < 2100 THEN 'preparing'
            WHEN o.age_s < 2700 THEN 'ready' ELSE 'picked_up' END AS status,
       o.created_at + CASE
           WHEN NOT o.recent AND pg_temp.hp_u(o.id, 203) < 0.06 THEN make_interval(secs => pg_temp.hp_i(o.id, 204, 60, 900))
           WHEN NOT o.recent THEN make_interval(secs => pg_temp.hp_i(o.id, 204, 1200, 4200))
           WHEN o.age_s < 600 THEN interval '0'
           ELSE make_interval(secs => o.age_s * 4 / 5) END AS updated_at,
       o.n_lines, o.first_line, r.first_item, r.n_items, c.tax_bp,
       -- The platform's default fee rules: 1.99 plus 0.50 per started km, at most 9.99.
       least(999, 199 + 50 * ceil(2 * 6371.0 * asin(sqrt(
           power(sin(radians(r.lat - u.lat) / 2), 2)
           + cos(radians(u.lat)) * cos(radians(r.lat)) * power(sin(radians(r.lon - u.lon) / 2), 2)))))::int AS delivery_fee,
       CASE WHEN tp.u < 0.45 THEN 0 WHEN tp.u < 0.65 THEN 5 WHEN tp.u < 0.85 THEN 10 WHEN tp.u < 0.95 THEN 15
            ELSE 20 END AS tip_pct
FROM hp_o0 o
CROSS JOIN LATERAL (SELECT pg_temp.hp_u(o.id, 206) AS u) tp
JOIN users u ON u.id = o.user_id
JOIN hp_ch ch ON ch.city_id = u.city_id AND ch.hour = o.hour
JOIN hp_cr cr ON cr.city_id = u.city_id AND cr.hkey = ch.hkey
             -- Zipf (s = 1.1) by the continuous inverse CDF, clamped to the last rank.
             AND cr.rank = least(ch.n - 1, floor(power(1 + pg_temp.hp_u(o.id, 205) * (ch.pw - 1), -10)) - 1)::int
JOIN hp_r r ON r.id = cr.restaurant_id
JOIN hp_city c ON c.id = r.city_id
-- In id order, so that the order lines generated from it are written in id
-- (time) order, as a real table would be.
ORDER BY o.id;

ANALYZE hp_o;

-- @step order_items
-- Each line picks an item of the order's restaurant, the first ones on the
-- menu more often, a quantity, and each of the item's modifiers with some
-- probability. The key of line l of order o is 8 o + l (at most 6 lines).
INSERT INTO order_items (id, order_id, item_id, name, quantity, unit_price_cents, modifier_ids, line_total_cents)
SELECT o.first_line + l - 1, o.id, mi.id, mi.name, q.quantity, q.unit, q.mods, q.unit * q.quantity
FROM hp_o o
CROSS JOIN LATERAL generate_series(1, o.n_lines) l
JOIN hp_mi mi ON mi.id = o.first_item + floor(o.n_items * power(pg_temp.hp_u(o.id * 8 + l, 210), 1.5))::int
CROSS JOIN LATERAL (
    SELECT CASE WHEN qu.u < 0.72 THEN 1 WHEN qu.u < 0.92 THEN 2 WHEN qu.u < 0.98 THEN 3 ELSE 4 END AS quantity,
           greatest(0, mi.price_cents + CASE WHEN m.use1 THEN mi.m1_delta ELSE 0 END
                                      + CASE WHEN m.use2 THEN mi.m2_delta ELSE 0 END) AS unit,
           CASE WHEN m.use1 AND m.use2 THEN ARRAY[mi.m_first, mi.m_first + 1]
                WHEN m.use1 THEN ARRAY[mi.m_first]
                WHEN m.use2 THEN ARRAY[mi.m_first + 1]
                ELSE '{}'::bigint[] END AS mods
    FROM (SELECT pg_temp.hp_u(o.id * 8 + l, 211) AS u) qu,
         (SELECT mi.m_count >= 1 AND pg_temp.hp_u(o.id * 8 + l, 212) < 0.35 AS use1,
                 mi.m_count = 2 AND pg_temp.hp_u(o.id * 8 + l, 213) < 0.20 AS use2) m
) q;
ANALYZE order_items;

-- @step orders
-- Money follows the platform's default rules: the best active promotion on
-- its eligible lines (percent floored, fixed capped at the eligible amount,
-- nothing under the minimum), tax on subtotal minus discount rounded half up,
-- a 5% service fee within 0.99..4.99, 1.50 below a 10.00 subtotal, and a tip
-- of 0..20% rounded to 10 cents. total is the sum of the parts. The ORDER BY
-- does not change any row (ids are computed) but lays the table out in id,
-- that is time, order like a real one, which the planner's choice of hash
-- join sides would not otherwise guarantee.
INSERT INTO orders (id, user_id, restaurant_id, status, subtotal_cents, discount_cents, tax_cents, delivery_fee_cents,
                    service_fee_cents, small_order_fee_cents, tip_cents, total_cents, idempotency_key, created_at, updated_at)
SELECT o.id, o.user_id, o.restaurant_id, o.status, a.sub, d.disc, f.tax, o.delivery_fee, f.service, f.small, f.tip,
       a.sub - d.disc + f.tax + o.delivery_fee + f.service + f.small + f.tip, NULL, o.created_at, o.updated_at
FROM hp_o o
JOIN (SELECT oi.order_id, sum(oi.line_total_cents)::int AS sub,
             ARRAY[coalesce(sum(oi.line_total_cents) FILTER (WHERE mi.cat_idx = 0), 0),
                   coalesce(sum(oi.line_total_cents) FILTER (WHERE mi.cat_idx = 1), 0),
                   coalesce(sum(oi.line_total_cents) FILTER (WHERE mi.cat_idx = 2), 0),
                   coalesce(sum(oi.line_total_cents) FILTER (WHERE mi.cat_idx = 3), 0),
                   coalesce(sum(oi.line_total_cents) FILTER (WHERE mi.cat_idx = 4), 0),
                   coalesce(sum(oi.line_total_cents) FILTER (WHERE mi.cat_idx = 5), 0)]::int[] AS by_cat
      FROM order_items oi JOIN hp_mi mi ON mi.id = oi.item_id
      GROUP BY oi.order_id) a ON a.order_id = o.id
LEFT JOIN hp_pr pr ON pr.restaurant_id = o.restaurant_id
CROSS JOIN LATERAL (
    SELECT CASE WHEN pr.c1 IS NULL THEN a.sub ELSE a.by_cat[pr.c1 + 1] END AS e1,
           CASE WHEN pr.c2 IS NULL THEN a.sub ELSE a.by_cat[pr.c2 + 1] END AS e2
) e
CROSS JOIN LATERAL (
    SELECT greatest(
        CASE WHEN pr.k1 IS NULL OR e.e1 = 0 OR e.e1 < pr.min1 THEN 0
             WHEN pr.k1 = 'percent' THEN e.e1 * pr.v1 / 10000 ELSE least(pr.v1, e.e1) END,
        CASE WHEN pr.k2 IS NULL OR e.e2 = 0 OR e.e2 < pr.min2 THEN 0
             WHEN pr.k2 = 'percent' THEN e.e2 * pr.v2 / 10000 ELSE least(pr.v2, e.e2) END) AS disc
) d
CROSS JOIN LATERAL (
    SELECT ((a.sub - d.disc)::bigint * o.tax_bp + 5000) / 10000 AS tax,
           least(499, greatest(99, (a.sub::bigint * 500 + 5000) / 10000)) AS service,
           CASE WHEN a.sub < 1000 THEN 150 ELSE 0 END AS small,
           (a.sub::bigint * o.tip_pct / 100 + 5) / 10 * 10 AS tip
) f
ORDER BY o.id;

-- @step payments
-- One payment per order, authorised at checkout: captured on delivery,
-- voided on cancellation, still authorised while the order is in progress.
INSERT INTO payments (id, order_id, authorization_id, amount_cents, status, created_at)
SELECT o.id, o.id, 'auth_' || lpad(to_hex(pg_temp.hp_h(o.id, 220)), 16, '0'), o.total_cents,
       CASE o.status WHEN 'delivered' THEN 'captured' WHEN 'cancelled' THEN 'voided' ELSE 'authorized' END,
       o.created_at
FROM orders o
ORDER BY o.id;

-- @step order_events
-- The status history of the last week's orders: every transition up to the
-- current status, placed and cancellations by the customer (a third of the
-- cancellations by the restaurant), the rest by the owner, spread evenly
-- between created_at and updated_at.
INSERT INTO order_events (id, order_id, status, actor_id, at)
SELECT row_number() OVER (ORDER BY e.order_id, e.step), e.order_id, e.status, e.actor_id, e.at
FROM (
    SELECT o.id AS order_id, st.step, st.status,
           CASE WHEN st.status = 'placed' OR (st.status = 'cancelled' AND pg_temp.hp_u(o.id, 230) < 0.67) THEN o.user_id
                ELSE o.owner_id END AS actor_id,
           CASE WHEN lst.last = 1 THEN o.created_at
                ELSE o.created_at + (o.updated_at - o.created_at) * (st.step - 1) / (lst.last - 1) END AS at
    FROM hp_o o
    CROSS JOIN LATERAL (
        SELECT CASE o.status WHEN 'cancelled' THEN 2
                   ELSE array_position(ARRAY['placed', 'accepted', 'preparing', 'ready', 'picked_up', 'delivered'],
                                       o.status) END AS last
    ) lst
    CROSS JOIN LATERAL (
        SELECT n AS step,
               CASE WHEN o.status = 'cancelled' AND n = 2 THEN 'cancelled'
                    ELSE (ARRAY['placed', 'accepted', 'preparing', 'ready', 'picked_up', 'delivered'])[n] END AS status
        FROM generate_series(1, lst.last) n
    ) st
    WHERE o.created_at >= (SELECT anchor - interval '7 days' FROM hp_p)
) e;

-- @step indexes
-- Recreate what the truncate step dropped: indexes, then primary keys and
-- unique constraints, then foreign keys (each validated by one join).
DO $$
DECLARE
    d record;
BEGIN
    FOR d IN SELECT create_sql FROM hp_ddl ORDER BY kind, create_sql LOOP
        EXECUTE d.create_sql;
    END LOOP;
END
$$;

-- @step finish
-- Sequences continue after the largest seeded id, so the server's inserts
-- (POST /orders and its lines, payments and events) never collide.
DO $$
DECLARE
    t text;
    m bigint;
BEGIN
    FOREACH t IN ARRAY ARRAY['users', 'restaurants', 'menu_items', 'item_modifiers', 'promotions', 'orders', 'order_items',
                             'payments', 'order_events'] LOOP
        EXECUTE format('SELECT max(id) FROM %I', t) INTO m;
        PERFORM setval(pg_get_serial_sequence(t, 'id'), coalesce(m, 0) + 1, false);
    END LOOP;
END
$$;

ANALYZE cities, users, restaurants, menu_items, item_modifiers, promotions, orders, order_items, payments, order_events;
