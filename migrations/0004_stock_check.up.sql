-- hp_stock_check: the last step of order_place (services/statements.h), the
-- checkout's one statement that inserts the order and takes its stock. It
-- compares the stock rows the statement decremented with the rows it had to,
-- and raises SQLSTATE HP409 when they differ (an item sold out since the cart
-- was priced), so that the COMMIT sent in the same round trip finds the
-- transaction aborted and rolls it back: nothing of the order is kept.
CREATE FUNCTION hp_stock_check(taken bigint, wanted integer) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF taken <> wanted THEN
        RAISE EXCEPTION 'an item does not have enough stock left (% of % lines)', taken, wanted USING ERRCODE = 'HP409';
    END IF;
    RETURN true;
END
$$;
