-- Order history reads orders by user, newest first. This index is kept in a
-- migration of its own because the orders_user_id_index toggle drops it to
-- reproduce the missing-index bottleneck.
CREATE INDEX IF NOT EXISTS orders_user_id_created_at_idx ON orders (user_id, created_at DESC);
