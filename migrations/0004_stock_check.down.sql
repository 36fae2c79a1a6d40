DROP FUNCTION IF EXISTS hp_stock_check(bigint, integer);
