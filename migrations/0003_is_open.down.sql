DROP FUNCTION IF EXISTS hp_is_open(smallint, smallint, timestamptz);
