-- The hotplate schema: cities, users, restaurants, menus, promotions, orders and payments.
-- Money is always integer cents; tax rates are basis points (1/100 of a percent);
-- opening hours are minutes after midnight UTC, and close < open means the restaurant
-- closes after midnight.

CREATE TABLE cities (
    id          integer PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    tax_rate_bp integer NOT NULL CHECK (tax_rate_bp BETWEEN 0 AND 5000),
    lat         double precision NOT NULL,
    lon         double precision NOT NULL
);

CREATE TABLE users (
    id         bigserial PRIMARY KEY,
    role       text NOT NULL CHECK (role IN ('customer', 'owner')),
    name       text NOT NULL,
    email      text NOT NULL UNIQUE,
    city_id    integer NOT NULL REFERENCES cities (id),
    lat        double precision NOT NULL,
    lon        double precision NOT NULL,
    -- SHA-256 of the bearer token; the token itself is never stored.
    token_hash bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE restaurants (
    id           bigserial PRIMARY KEY,
    owner_id     bigint NOT NULL REFERENCES users (id),
    name         text NOT NULL,
    city_id      integer NOT NULL REFERENCES cities (id),
    cuisine      text NOT NULL,
    rating       numeric(2, 1) NOT NULL CHECK (rating BETWEEN 0 AND 5),
    open_minute  smallint NOT NULL CHECK (open_minute BETWEEN 0 AND 1439),
    close_minute smallint NOT NULL CHECK (close_minute BETWEEN 1 AND 1440),
    lat          double precision NOT NULL,
    lon          double precision NOT NULL,
    -- Bumped by every menu change; the menu cache refuses to store a menu older than the newest version a writer committed.
    menu_version bigint NOT NULL DEFAULT 1
);
-- Listing order is rating DESC, id DESC (keyset pagination), filtered by city.
CREATE INDEX restaurants_city_rating_idx ON restaurants (city_id, rating DESC, id DESC);
CREATE INDEX restaurants_owner_idx ON restaurants (owner_id);

CREATE TABLE menu_items (
    id            bigserial PRIMARY KEY,
    restaurant_id bigint NOT NULL REFERENCES restaurants (id),
    category      text NOT NULL,
    name          text NOT NULL,
    description   text NOT NULL DEFAULT '',
    price_cents   integer NOT NULL CHECK (price_cents >= 0),
    available     boolean NOT NULL DEFAULT true,
    -- NULL means the kitchen does not track stock for this item.
    stock         integer CHECK (stock >= 0),
    position      integer NOT NULL DEFAULT 0
);
CREATE INDEX menu_items_restaurant_idx ON menu_items (restaurant_id, category, position);

CREATE TABLE item_modifiers (
    id                bigserial PRIMARY KEY,
    item_id           bigint NOT NULL REFERENCES menu_items (id),
    name              text NOT NULL,
    price_delta_cents integer NOT NULL
);
CREATE INDEX item_modifiers_item_idx ON item_modifiers (item_id);

CREATE TABLE promotions (
    id                 bigserial PRIMARY KEY,
    restaurant_id      bigint NOT NULL REFERENCES restaurants (id),
    kind               text NOT NULL CHECK (kind IN ('percent', 'fixed')),
    -- Basis points for 'percent', cents for 'fixed'.
    value              integer NOT NULL CHECK (value > 0),
    min_subtotal_cents integer NOT NULL DEFAULT 0,
    -- When set, the promotion applies to lines of this menu category only.
    category           text,
    active             boolean NOT NULL DEFAULT true
);
CREATE INDEX promotions_restaurant_idx ON promotions (restaurant_id) WHERE active;

CREATE TABLE orders (
    id                    bigserial PRIMARY KEY,
    user_id               bigint NOT NULL REFERENCES users (id),
    restaurant_id         bigint NOT NULL REFERENCES restaurants (id),
    status                text NOT NULL DEFAULT 'placed'
                          CHECK (status IN ('placed', 'accepted', 'preparing', 'ready', 'picked_up', 'delivered', 'cancelled')),
    subtotal_cents        integer NOT NULL,
    discount_cents        integer NOT NULL,
    tax_cents             integer NOT NULL,
    delivery_fee_cents    integer NOT NULL,
    service_fee_cents     integer NOT NULL,
    small_order_fee_cents integer NOT NULL,
    tip_cents             integer NOT NULL,
    total_cents           integer NOT NULL,
    -- NULL for seeded history; always set by POST /orders.
    idempotency_key       text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    -- idempotency_key leads, so this index cannot stand in for one on user_id:
    -- the orders_user_id_index lab drops that index and order history must then
    -- really scan the table (ON CONFLICT (user_id, idempotency_key) still infers it).
    UNIQUE (idempotency_key, user_id)
);
CREATE INDEX orders_restaurant_idx ON orders (restaurant_id);
-- The index on orders (user_id, created_at) lives in migration 0002 on its own,
-- because the orders_user_id_index bottleneck toggle drops and recreates it.

CREATE TABLE order_items (
    id               bigserial PRIMARY KEY,
    order_id         bigint NOT NULL REFERENCES orders (id),
    item_id          bigint NOT NULL REFERENCES menu_items (id),
    name             text NOT NULL,
    quantity         integer NOT NULL CHECK (quantity > 0),
    -- Item price plus the price deltas of its modifiers, per unit.
    unit_price_cents integer NOT NULL,
    modifier_ids     bigint[] NOT NULL DEFAULT '{}',
    line_total_cents integer NOT NULL
);
CREATE INDEX order_items_order_idx ON order_items (order_id);

CREATE TABLE payments (
    id               bigserial PRIMARY KEY,
    order_id         bigint NOT NULL UNIQUE REFERENCES orders (id),
    authorization_id text NOT NULL,
    amount_cents     integer NOT NULL,
    status           text NOT NULL CHECK (status IN ('authorized', 'captured', 'voided', 'refunded')),
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE order_events (
    id       bigserial PRIMARY KEY,
    order_id bigint NOT NULL REFERENCES orders (id),
    status   text NOT NULL,
    actor_id bigint NOT NULL REFERENCES users (id),
    at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_events_order_idx ON order_events (order_id);
