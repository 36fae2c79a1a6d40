/*
 * doctor_window: what happened between the doctor's two snapshots (the
 * window), the working state the rules (doctor.c) and the rendering
 * (doctor_render.c) share. Internal to the doctor; pure.
 */
#ifndef HP_DOCTOR_WINDOW_H
#define HP_DOCTOR_WINDOW_H

#include "profiling/doctor.h"

/* One route's activity in the window: requests, their total time, time per stage, answers per status class. */
typedef struct st_hp_doctor_route_win_t {
    double n, t_ns, stage[HP_STAGE__COUNT], cls[HP_PROBE_STATUS_CLASSES];
} hp_doctor_route_win_t;

typedef struct st_hp_doctor_stmt_win_t {
    double n, errors, rows, t_ns;
    int owned; /* its time belongs to a stage other than db (see doctor_window.c) */
    int taken; /* already explained by a finding */
} hp_doctor_stmt_win_t;

/* The evaluation's working state: the window, then the findings the rules write. */
typedef struct st_hp_doctor_ctx_t {
    const hp_doctor_snapshot_t *a, *b;
    double seconds;
    hp_doctor_route_win_t route[HP_DOCTOR_MAX_ROUTES];
    hp_doctor_stmt_win_t stmt[HP_DOCTOR_MAX_STMTS];
    double stmt_total_ns, requests;
    hp_doctor_finding_t *out;
    size_t n, max;
} hp_doctor_ctx_t;

/**
 * Fills c's window from c->a and c->b, two snapshots of one server (so their
 * routes and statements come from the same tables, in the same order).
 */
void hp_doctor_window(hp_doctor_ctx_t *c);

/** @return after - before, or 0 when a counter went backwards (a restart between the snapshots) */
static inline double hp_doctor_d(uint64_t after, uint64_t before)
{
    return after > before ? (double)(after - before) : 0;
}

/**
 * Fits a least-squares line to the points from..to-1 of (t, v): its slope
 * and the slope's standard error. @return 0, or -1 with too few points
 */
int hp_doctor_fit(const double *t, const double *v, size_t from, size_t to, double *slope, double *se);

/**
 * The rules on PostgreSQL's health (doctor_health.c): c->b's health reading,
 * and the window's sequential scans that no plan of ours explains.
 */
void hp_doctor_health_rules(hp_doctor_ctx_t *c);

/** @return the next of c's findings, zeroed but for its kind, or NULL when c->out is full */
hp_doctor_finding_t *hp_doctor_finding_add(hp_doctor_ctx_t *c, hp_doctor_kind_t kind);

/** Appends one line of evidence to f, cut to its field; beyond HP_DOCTOR_MAX_EVIDENCE lines it is dropped. */
__attribute__((format(printf, 2, 3))) void hp_doctor_evidence(hp_doctor_finding_t *f, const char *fmt, ...);

/** @return whether the kind is one of PostgreSQL's health, judged on the database rather than a route's time */
static inline int hp_doctor_kind_is_health(hp_doctor_kind_t k)
{
    return k >= HP_DOCTOR_pg_long_running;
}

static inline double hp_doctor_ms(double ns)
{
    return ns / 1e6;
}

#endif
