-- wrk script of make bench and make lab (loadtests/bench.py): replays a request
-- file that loadtests/bench_workload.py wrote, the same file the open-loop
-- generator (loadtests/openloop) sends, so closed-loop and open-loop runs load
-- the server with the same requests.
--
--   wrk -t1 -c64 -d5s -s loadtests/replay.lua http://127.0.0.1:PORT -- FILE SEQ_BASE
--
-- The file holds records "<length>\n<bytes>", each a whole HTTP/1.1 request.
-- A request may carry the 16-character marker SEQ_____________ where a unique
-- number goes (an Idempotency-Key); it is replaced by SEQ_BASE + a counter,
-- zero-padded to 16 digits, so the length (and Content-Length) stays right.
-- Responses are counted by status class in response() and summed over the
-- threads in done(), which prints one machine-readable line. So are answers
-- marked idempotent-replayed: a POST /orders whose key an earlier run had
-- used, answered with that run's order instead of placing one. A run that
-- replays measures something else than checkouts, and the harness refuses it.

local threads = {}
local reqs = {}
local counter = 0
local base = 0
s4, s5, replayed = 0, 0, 0 -- globals: done() reads them with thread:get()
local MARKER = "SEQ_____________"

function setup(thread)
    threads[#threads + 1] = thread
    thread:set("thread_no", #threads)
end

function init(args)
    local path = args[1]
    base = tonumber(args[2] or "0") + (thread_no or 1) * 1000000000000
    if not path then
        error("usage: -- REQUEST_FILE [SEQ_BASE]")
    end
    local f = assert(io.open(path, "rb"))
    local data = f:read("*a")
    f:close()
    local pos = 1
    while pos <= #data do
        local nl = string.find(data, "\n", pos, true)
        local len = nl and tonumber(string.sub(data, pos, nl - 1))
        if not len then
            error("malformed request file " .. path)
        end
        local r = string.sub(data, nl + 1, nl + len)
        local at = string.find(r, MARKER, 1, true)
        reqs[#reqs + 1] = {r, at}
        pos = nl + len + 1
    end
    if #reqs == 0 then
        error("no requests in " .. path)
    end
end

function request()
    counter = counter + 1
    local r = reqs[(counter - 1) % #reqs + 1]
    if not r[2] then
        return r[1]
    end
    local seq = string.format("%016d", (base + counter) % 10000000000000000)
    return string.sub(r[1], 1, r[2] - 1) .. seq .. string.sub(r[1], r[2] + #MARKER)
end

function response(status, headers, body)
    if status >= 500 then
        s5 = s5 + 1
    elseif status >= 400 then
        s4 = s4 + 1
    end
    if headers["idempotent-replayed"] == "true" then
        replayed = replayed + 1
    end
end

function done(summary, latency, requests)
    local t4, t5, rp = 0, 0, 0
    for _, t in ipairs(threads) do
        t4 = t4 + (t:get("s4") or 0)
        t5 = t5 + (t:get("s5") or 0)
        rp = rp + (t:get("replayed") or 0)
    end
    local e = summary.errors
    io.write(string.format("HPREPLAY requests=%d duration_us=%d status_4xx=%d status_5xx=%d socket_errors=%d replayed=%d\n",
        summary.requests, summary.duration, t4, t5, e.connect + e.read + e.write + e.timeout, rp))
end
