/*
 * dashboard: GET /debug/ on the admin listener serves one self-contained HTML
 * page (profiling/dashboard.html) that polls GET /debug/perf once a second and
 * draws it: rates and latency per route, stage breakdown, statements, pool,
 * cache, heap and RSS over time, slow requests, and the runtime flags, which
 * it can switch through POST /debug/flags with the admin token.
 *
 * The page is embedded in the binary at build time (CMakeLists.txt turns the
 * HTML into a byte array in the generated header dashboard_html.h), so the
 * server needs no file at run time and the page always matches the binary's
 * /debug/perf. Everything the page shows comes from the JSON endpoints; this
 * file only hands the page out.
 */
#include "profiling/dashboard.h"
#include "runtime/http.h"

#include "dashboard_html.h" /* generated: unsigned char hp__dashboard_html[], not NUL-terminated */

/*
 * The page inlines its CSS and JS and talks only to this listener, so the
 * policy forbids everything else: a page that holds the admin token must not
 * load, or send anything to, another origin, nor be framed by one.
 */
static const char hp__dashboard_csp[] = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                                        "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
                                        "frame-ancestors 'none'";

static void hp__dashboard(hp_req_t *r)
{
    hp_add_header(r, "content-type", "text/html; charset=utf-8");
    /* The page is part of the binary: a cached copy from an older build would misread a newer /debug/perf. */
    hp_add_header(r, "cache-control", "no-cache");
    hp_add_header(r, "content-security-policy", hp__dashboard_csp);
    hp_add_header(r, "x-content-type-options", "nosniff");
    hp_add_header(r, "referrer-policy", "no-referrer");
    hp_respond_raw(r, 200, h2o_iovec_init(hp__dashboard_html, sizeof(hp__dashboard_html)));
}

/* Both spellings serve the page; it requests absolute paths, so neither needs a redirect. */
const hp_route_t hp_dashboard_routes[] = {
    {"GET", "/debug/", hp__dashboard, 0},
    {"GET", "/debug", hp__dashboard, 0},
};
const size_t hp_dashboard_num_routes = sizeof(hp_dashboard_routes) / sizeof(hp_dashboard_routes[0]);
