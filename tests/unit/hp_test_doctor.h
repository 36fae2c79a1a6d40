/*
 * The fixture the doctor's unit tests share: test_doctor.c (the rules on a
 * window of counters) and test_pg_health.c (the rules on a reading of
 * PostgreSQL's health) both build two snapshots, run the whole evaluation
 * and look at its findings. Header-only, like hp_test.h, and included after
 * <cmocka.h>.
 */
#ifndef HP_TEST_DOCTOR_H
#define HP_TEST_DOCTOR_H

#include <stdlib.h>
#include <string.h>

#include "profiling/doctor.h"
#include "profiling/pg_health.h"

/* The window's two snapshots, the limits a health reading is read with, and what the evaluation found. */
typedef struct st_hp_test_doctor_t {
    hp_doctor_snapshot_t a, b;
    hp_pg_health_limits_t lim;
    hp_doctor_finding_t f[HP_DOCTOR_MAX_FINDINGS];
    size_t n;
} hp_test_doctor_t;

/* The teardown of a fixture its setup calloc'ed. */
static inline int hp_test_doctor_teardown(void **state)
{
    free(*state);
    return 0;
}

/* Evaluates the window from fx->a to fx->b into fx->f. */
static inline void hp_test_doctor_evaluate(hp_test_doctor_t *fx)
{
    fx->n = hp_doctor_evaluate(&fx->a, &fx->b, fx->f, HP_DOCTOR_MAX_FINDINGS);
}

/* @return whether a line of f's evidence contains text */
static inline int hp_test_doctor_says(const hp_doctor_finding_t *f, const char *text)
{
    for (size_t i = 0; i != f->num_evidence; ++i)
        if (strstr(f->evidence[i], text) != NULL)
            return 1;
    return 0;
}

#endif
