/*
 * pprof_index: the rest of Go's net/http/pprof surface on the admin listener
 * (see pprof_index.h).
 *
 *   GET /debug/pprof/          an index of the profiles, with the commands to read them
 *   GET|POST /debug/pprof/symbol
 *        pprof's symbolizer protocol: GET answers "num_symbols: 1" (there is
 *        a table); a POST body (or the query string of a GET) of addresses
 *        joined by '+' answers one "0xADDR name" line per address it knows.
 *        `go tool pprof URL` posts here for a profile whose mappings lack
 *        function names (the gperftools format); the proto format needs it
 *        not.
 *
 * The symbol table is the process's own (symbolize.h), opened per request and
 * closed after it: a few milliseconds of reading /proc/self/maps and the
 * symbol tables of the files the addresses land in, bounded by the body's
 * HP_MAX_BODY, on the admin thread only.
 */
#include "profiling/pprof_index.h"
#include "base/router.h"
#include "runtime/http.h"
#include "profiling/symbolize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The most addresses one symbol request resolves; the rest are ignored, as unknown addresses are. */
#define HP_PPROF_SYMBOL_MAX 8192

static const char hp__pprof_index_html[] =
    "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>hotplate: /debug/pprof/</title>\n"
    "<style>body{font-family:sans-serif;max-width:60em;margin:2em}td{padding:.3em 1em .3em 0;vertical-align:top}"
    "code{background:#f3f3f3}</style></head><body>\n"
    "<h1>/debug/pprof/</h1>\n"
    "<p>Profiles of this server in pprof's format (gzipped profile.proto, symbolized by the server), "
    "as Go's net/http/pprof serves them. Each samples a window of <code>seconds</code> (default 10) "
    "and needs the admin token when one is configured.</p>\n<table>\n"
    "<tr><td><a href=\"profile?seconds=10\">profile</a></td><td>CPU: gperftools samples every thread "
    "(samples, cpu nanoseconds). <code>format=gperftools|folded|svg</code> for the profiler's own file, "
    "folded stacks or a <a href=\"profile?seconds=5&amp;format=svg\">flame graph</a>.</td></tr>\n"
    "<tr><td><a href=\"heap?seconds=10\">heap</a></td><td>Memory still in use at the end of the window, by "
    "allocation site (inuse_space first; alloc_* too), from jemalloc's sampling profiler.</td></tr>\n"
    "<tr><td><a href=\"allocs?seconds=10\">allocs</a></td><td>The same window, all allocations made in it first "
    "(alloc_space).</td></tr>\n"
    "<tr><td><a href=\"history\">history</a></td><td>Continuous profiling (the flag <code>profile_every_s</code>): the "
    "profiles kept, each downloadable; <code>?merge=cpu&amp;from=T&amp;to=T</code> merges a time range.</td></tr>\n"
    "<tr><td><a href=\"symbol\">symbol</a></td><td>pprof's symbolizer: POST addresses joined by "
    "<code>+</code>, get their function names.</td></tr>\n"
    "</table>\n<h2>Reading them</h2>\n<pre>\n"
    "go tool pprof -top http://127.0.0.1:8081/debug/pprof/profile?seconds=5\n"
    "go tool pprof -http=127.0.0.1:6060 http://127.0.0.1:8081/debug/pprof/heap?seconds=10\n"
    "curl -o cpu.pb.gz 'http://127.0.0.1:8081/debug/pprof/profile?seconds=5'\n"
    "</pre>\n<p>docs/PROFILING.md has the rest: the heap windows, the doctor and the flame graphs.</p>\n"
    "</body></html>\n";

/* GET /debug/pprof/ */
static void hp__pprof_index(hp_req_t *r)
{
    hp_add_header(r, "content-type", "text/html; charset=utf-8");
    hp_respond_raw(r, 200, h2o_iovec_init(hp__pprof_index_html, sizeof(hp__pprof_index_html) - 1));
}

/* A number as Go's strconv.ParseUint(s, 0, 64) reads one: 0x for hex, a leading 0 for octal, else decimal. @return 0, or -1 */
static int hp__pprof_parse_addr(const char *s, size_t len, uint64_t *out)
{
    char buf[32];
    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (buf[0] == '-' || buf[0] == '+')
        return -1;
    char *end = NULL;
    unsigned long long v = strtoull(buf, &end, 0);
    if (end != buf + len)
        return -1;
    *out = v;
    return 0;
}

/* GET|POST /debug/pprof/symbol */
static void hp__pprof_symbol(hp_req_t *r)
{
    h2o_iovec_t in = h2o_iovec_init(NULL, 0);
    if (h2o_memis(r->h2o->method.base, r->h2o->method.len, H2O_STRLIT("POST")))
        in = r->h2o->entity;
    else if (r->h2o->query_at != SIZE_MAX)
        in = h2o_iovec_init(r->h2o->path.base + r->h2o->query_at + 1, r->h2o->path.len - r->h2o->query_at - 1);
    hp_add_header(r, "content-type", "text/plain; charset=utf-8");
    if (in.len == 0) {
        hp_respond_raw(r, 200, h2o_iovec_init(H2O_STRLIT("num_symbols: 1\n")));
        return;
    }
    const char *err = NULL;
    hp_symtab_t *t = hp_symtab_open_self(&err);
    if (t == NULL) {
        hp_respond_error(r, HP_E_profile_failed, hp_pool_printf(r, "the symbol table could not be read: %s", err));
        return;
    }
    /* Each answer line is "0x" + 16 digits + ' ' + name + '\n'; names are cut at 256 bytes. */
    size_t cap = 64, len = 0, done = 0;
    for (size_t i = 0; i != in.len; ++i)
        cap += in.base[i] == '+' ? 280 : 0;
    cap += 280;
    char *out = h2o_mem_alloc_pool(&r->h2o->pool, cap);
    len += (size_t)snprintf(out, cap, "num_symbols: 1\n");
    const char *p = in.base, *end = in.base + in.len;
    while (p < end && done != HP_PPROF_SYMBOL_MAX) {
        const char *plus = memchr(p, '+', (size_t)(end - p));
        const char *word_end = plus != NULL ? plus : end;
        uint64_t addr;
        hp_sym_t sym;
        if (hp__pprof_parse_addr(p, (size_t)(word_end - p), &addr) == 0 && hp_symtab_lookup(t, addr, &sym) &&
            sym.function != NULL && cap - len > 280) {
            len += (size_t)snprintf(out + len, cap - len, "%#llx %.256s\n", (unsigned long long)addr, sym.function);
            ++done;
        }
        p = word_end + 1;
    }
    hp_symtab_close(t);
    hp_respond_raw(r, 200, h2o_iovec_init(out, len));
}

const hp_route_t hp_pprof_index_routes[] = {
    {"GET", "/debug/pprof/", hp__pprof_index, 0},
    {"GET", "/debug/pprof/symbol", hp__pprof_symbol, 0},
    {"POST", "/debug/pprof/symbol", hp__pprof_symbol, 0},
};
const size_t hp_pprof_index_num_routes = sizeof(hp_pprof_index_routes) / sizeof(hp_pprof_index_routes[0]);
