/*
 * doctor_window: the differences of two snapshots, and the two helpers both
 * rule files write findings with (see doctor_window.h).
 */
#include "profiling/doctor_window.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void hp_doctor_window(hp_doctor_ctx_t *c)
{
    const hp_doctor_snapshot_t *a = c->a, *b = c->b;
    static const hp_doctor_route_t zero_route;
    c->seconds = b->at_s - a->at_s;
    for (size_t i = 0; i != b->num_routes; ++i) {
        const hp_doctor_route_t *ra = i < a->num_routes ? &a->routes[i] : &zero_route, *rb = &b->routes[i];
        hp_doctor_route_win_t *w = &c->route[i];
        w->n = hp_doctor_d(rb->count, ra->count);
        w->t_ns = hp_doctor_d(rb->latency_ns, ra->latency_ns);
        for (size_t s = 0; s != HP_STAGE__COUNT; ++s)
            w->stage[s] = hp_doctor_d(rb->stage_ns[s], ra->stage_ns[s]);
        for (size_t k = 0; k != HP_PROBE_STATUS_CLASSES; ++k)
            w->cls[k] = hp_doctor_d(rb->by_class[k], ra->by_class[k]);
        c->requests += w->n;
    }
    for (size_t i = 0; i != b->num_stmts; ++i) {
        const hp_doctor_stmt_t *sb = &b->stmts[i], *sa = i < a->num_stmts ? &a->stmts[i] : NULL;
        hp_doctor_stmt_win_t *w = &c->stmt[i];
        w->n = hp_doctor_d(sb->count, sa != NULL ? sa->count : 0);
        w->errors = hp_doctor_d(sb->errors, sa != NULL ? sa->errors : 0);
        w->rows = hp_doctor_d(sb->rows, sa != NULL ? sa->rows : 0);
        w->t_ns = hp_doctor_d(sb->time_ns, sa != NULL ? sa->time_ns : 0);
        c->stmt_total_ns += w->t_ns;
    }
    /*
     * Statements that are a stage of their own: both their execution count
     * and their time match that stage's, summed over the routes that have it
     * (one execution per request of those routes). Only auth sends statements
     * outside the db stage (hp_db_query_staged); the on-loop stages and the
     * other waits never do.
     */
    static const hp_stage_t staged[] = {HP_STAGE_auth};
    for (size_t k = 0; k != sizeof(staged) / sizeof(staged[0]); ++k) {
        double stage = 0, requests = 0;
        for (size_t i = 0; i != b->num_routes; ++i)
            if (c->route[i].stage[staged[k]] > 0)
                stage += c->route[i].stage[staged[k]], requests += c->route[i].n;
        if (stage <= 0)
            continue;
        for (size_t i = 0; i != b->num_stmts; ++i)
            if (c->stmt[i].n > 0 && fabs(c->stmt[i].t_ns - stage) <= hp_doctor_threshold(HP_DOCTOR_TH_stage_match)->value * stage &&
                fabs(c->stmt[i].n - requests) <= hp_doctor_threshold(HP_DOCTOR_TH_stage_match)->value * requests)
                c->stmt[i].owned = 1;
    }
}

/* Least-squares slope of v over t (points from..to-1), with its standard error. @return 0, or -1 with too few points */
int hp_doctor_fit(const double *t, const double *v, size_t from, size_t to, double *slope, double *se)
{
    if (to <= from || to - from < 4)
        return -1;
    double n = (double)(to - from), mt = 0, mv = 0, sxx = 0, sxy = 0, rss = 0;
    for (size_t i = from; i != to; ++i)
        mt += t[i], mv += v[i];
    mt /= n, mv /= n;
    for (size_t i = from; i != to; ++i)
        sxx += (t[i] - mt) * (t[i] - mt), sxy += (t[i] - mt) * (v[i] - mv);
    if (sxx <= 0)
        return -1;
    *slope = sxy / sxx;
    double lag = 0, prev = 0;
    for (size_t i = from; i != to; ++i) {
        double r = v[i] - mv - *slope * (t[i] - mt);
        rss += r * r;
        if (i != from)
            lag += r * prev;
        prev = r;
    }
    *se = sqrt(rss / (n - 2) / sxx);
    /*
     * The textbook error assumes independent residuals. Heap readings a tenth
     * of a second apart are not: the allocator's caches fill and flush, and
     * requests in flight come and go over several readings, so the heap
     * wanders, and a wander over 8 s fits a line as well as a leak does. With
     * lag-1 autocorrelation rho of the residuals, the error grows by
     * sqrt((1 + rho) / (1 - rho)) (the AR(1) correction of the effective
     * sample size); a real leak stays many errors above zero after it.
     */
    /* Capped below 1, where the correction has no bound. */
    double rho = rss > 0 ? fmin(lag / rss, 0.95) : 0;
    if (rho > 0)
        *se *= sqrt((1 + rho) / (1 - rho));
    return 0;
}

hp_doctor_finding_t *hp_doctor_finding_add(hp_doctor_ctx_t *c, hp_doctor_kind_t kind)
{
    if (c->n == c->max)
        return NULL;
    hp_doctor_finding_t *f = &c->out[c->n++];
    memset(f, 0, sizeof(*f));
    f->kind = kind;
    return f;
}

void hp_doctor_evidence(hp_doctor_finding_t *f, const char *fmt, ...)
{
    if (f->num_evidence == HP_DOCTOR_MAX_EVIDENCE)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->evidence[f->num_evidence++], sizeof(f->evidence[0]), fmt, ap);
    va_end(ap);
}
