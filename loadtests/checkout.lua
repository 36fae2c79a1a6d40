-- wrk script for POST /orders (the checkout route in loadtests/overhead.py).
--
--   wrk -t1 -c32 -d5s -s loadtests/checkout.lua http://127.0.0.1:PORT \
--       -- KEY_PREFIX RESTAURANT_ID ITEM_ID TOKENS_FILE [CUSTOMERS]
--
-- Every request is a new order: its Idempotency-Key is KEY_PREFIX, the wrk
-- thread's number and a counter, so no request is answered as a replay (which
-- would skip the payment and the transaction this benchmark is meant to
-- measure). overhead.py draws a fresh random KEY_PREFIX for every run, so
-- runs never collide with each other's keys either.
--
-- The orders rotate over the first CUSTOMERS customers (default 64) of
-- TOKENS_FILE (`hotplate seed --tokens`: kind<TAB>user id<TAB>token), so the
-- load is not one user's. The body is one line of one item, which the caller
-- picks available, with untracked stock (stock NULL), at a restaurant that is
-- open for the whole benchmark: every request is then a 201.

local prefix, body
local tokens = {}
local counter = 0
local thread_seq = 0

function setup(thread)
    thread_seq = thread_seq + 1
    thread:set("thread_no", thread_seq)
end

function init(args)
    prefix = args[1]
    local restaurant_id, item_id, path = tonumber(args[2]), tonumber(args[3]), args[4]
    local limit = tonumber(args[5] or "64")
    if not (prefix and restaurant_id and item_id and path) then
        error("usage: -- KEY_PREFIX RESTAURANT_ID ITEM_ID TOKENS_FILE [CUSTOMERS]")
    end
    body = string.format('{"restaurant_id":%d,"items":[{"item_id":%d,"quantity":1}]}', restaurant_id, item_id)
    local f = assert(io.open(path, "r"))
    for line in f:lines() do
        local kind, _, token = line:match("^(%w+)\t(%d+)\t(%x+)$")
        if kind == "customer" and #tokens < limit then
            tokens[#tokens + 1] = "Bearer " .. token
        end
    end
    f:close()
    if #tokens == 0 then
        error("no customer tokens in " .. path)
    end
    prefix = prefix .. "-" .. tostring(thread_no or 1) .. "-"
end

function request()
    counter = counter + 1
    return wrk.format("POST", "/orders", {
        ["Authorization"] = tokens[counter % #tokens + 1],
        ["Idempotency-Key"] = prefix .. counter,
        ["Content-Type"] = "application/json",
    }, body)
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format("HPBENCH requests=%d duration_us=%d status_errors=%d socket_errors=%d\n",
        summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout))
end
