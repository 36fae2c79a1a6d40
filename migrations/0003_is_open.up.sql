-- hp_is_open: whether a restaurant with these hours (minutes after midnight UTC)
-- is open at the given time. close_minute < open_minute means the restaurant
-- closes after midnight; 0..1440 means always open.
CREATE FUNCTION hp_is_open(open_minute smallint, close_minute smallint, at timestamptz)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN open_minute < close_minute THEN m >= open_minute AND m < close_minute
        ELSE m >= open_minute OR m < close_minute
    END
    FROM (SELECT (extract(hour FROM at AT TIME ZONE 'UTC') * 60 + extract(minute FROM at AT TIME ZONE 'UTC'))::int AS m) AS t
$$;
