-- wrk script of the doctor tests' prefill (tests/e2e/test_doctor.py): each
-- wrk thread asks for its share of the menu views in turn over the given
-- paths, with the browser User-Agent of the journey load, then stops.
--
--   wrk -t2 -c8 -d60s -s tests/e2e/prefill.lua URL -- VIEWS_PER_THREAD UA PATH...
--
-- wrk has no request count of its own, so response() stops the thread once it
-- has seen its share (a few connections' worth more may still be answered,
-- which only fills the server's bounded lists further). done() prints one
-- line that the test parses: the answers and those that were not 200.

local threads = {}
local paths, ua, limit = {}, "", 0
local k, seen = 0, 0
answered, bad = 0, 0 -- globals: done() reads them with thread:get()

function setup(thread)
    threads[#threads + 1] = thread
end

function init(args)
    limit = tonumber(args[1])
    ua = args[2]
    for i = 3, #args do
        paths[#paths + 1] = args[i]
    end
end

function request()
    k = k + 1
    return wrk.format("GET", paths[k % #paths + 1], { ["User-Agent"] = ua })
end

function response(status, headers, body)
    answered = answered + 1
    if status ~= 200 then
        bad = bad + 1
    end
    if answered >= limit then
        wrk.thread:stop()
    end
end

function done(summary, latency, requests)
    local a, b = 0, 0
    for _, t in ipairs(threads) do
        a = a + t:get("answered")
        b = b + t:get("bad")
    end
    io.write(string.format("prefill: answered %d not_200 %d\n", a, b))
end
