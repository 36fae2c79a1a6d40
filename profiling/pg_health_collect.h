/*
 * pg_health_collect: reads PostgreSQL's health (pg_health.h) on the admin
 * thread, for GET /debug/pg/health and for the doctor.
 *
 *   GET /debug/pg/health     sessions, connections, indexes, tables and the
 *                            buffer cache, each against the doctor's
 *                            thresholds, and the doctor's findings on them
 *
 * Five read-only queries of the statistics views and the catalog, one after
 * the other, on the admin thread's read connection (never blocking its loop),
 * each bounded by the connection's statement_timeout and lock_timeout
 * (runtime/db.c sets both on every connection). Only the last needs an
 * extension (pg_stat_statements, to name other applications' statements); a
 * query that fails leaves its part out, with a note.
 */
#ifndef HP_PG_HEALTH_COLLECT_H
#define HP_PG_HEALTH_COLLECT_H

#include <stddef.h>

#include "base/router.h"
#include "runtime/http.h"
#include "profiling/pg_health.h"

/** Called once the reading is complete; notes say what could not be read (request-pool strings). */
typedef void (*hp_pg_health_cb)(hp_req_t *r, void *ud, hp_pg_health_t *h, const char *const *notes, size_t num_notes);

/** Fills lim from the doctor's thresholds (HP_DOCTOR_THRESHOLDS). */
void hp_pg_health_limits(hp_pg_health_limits_t *lim);

/**
 * Reads the health into h (which the caller owns and must keep until cb),
 * then calls cb. Admin thread only; the request owns the job, so a departed
 * client ends it.
 */
void hp_pg_health_collect(hp_req_t *r, hp_pg_health_t *h, hp_pg_health_cb cb, void *ud);

/** The same for one part only (the doctor's start of window reads pg_stat_statements alone). */
void hp_pg_health_collect_part(hp_req_t *r, hp_pg_health_t *h, hp_pg_health_part_t part, hp_pg_health_cb cb, void *ud);

/* GET /debug/pg/health, for the admin route table. */
extern const hp_route_t hp_pg_health_routes[];
extern const size_t hp_pg_health_num_routes;

#endif
