-- wrk script for a plain GET (the cached menu route in loadtests/overhead.py):
-- no per-request Lua, so wrk sends its pre-built request as fast as it can,
-- and one machine-readable line at the end that overhead.py parses instead of
-- wrk's human-readable summary.
--
--   wrk -t1 -c32 -d5s -s loadtests/report.lua http://127.0.0.1:PORT/restaurants/1/menu
--
-- errors.status counts responses with a status of 400 or more; wrk counts the
-- other failures (connect, read, write, timeout) separately, and overhead.py
-- refuses a run with any of them.

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format("HPBENCH requests=%d duration_us=%d status_errors=%d socket_errors=%d\n",
        summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout))
end
