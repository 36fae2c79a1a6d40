/*
 * payment: the payment gateway simulator (see payment.h).
 *
 * h2o 2.2.5 timeouts have one fixed duration per h2o_timeout_t, so the
 * simulator keeps a small table of them, one per latency in use. Latencies are
 * the flag's mean times one of eight jitter factors, so the table stays small
 * (each distinct mean adds at most eight entries; past the cap the nearest
 * existing duration is used).
 *
 * Ownership: hp_payment_auth_t is malloc'd per authorization and freed when its
 * latency timer fires, whether or not its request is still there.
 */
#include "services/payment.h"
#include "base/clock.h"
#include "base/flags.h"
#include "base/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/random.h>

#define HP_PAYMENT_MAX_TIMEOUTS 64

typedef struct st_hp_payment_t {
    hp_thread_t *thr;
    uint64_t rng;
    uint64_t seq;
    size_t num_timeouts;
    uint64_t timeout_ms[HP_PAYMENT_MAX_TIMEOUTS];
    h2o_timeout_t timeouts[HP_PAYMENT_MAX_TIMEOUTS];
} hp_payment_t;

/* This thread's simulator: only its own loop touches it, so it is thread-local rather than a field every thread carries. */
static _Thread_local hp_payment_t *hp__pay;

typedef struct st_hp_payment_auth_t {
    hp_op_t op;
    uint64_t start_ns;
    hp_payment_t *pay;
    hp_payment_cb cb;
    void *ud;
    int declined;
    int delivered;
    h2o_timeout_entry_t latency;  /* when the gateway answers */
    h2o_timeout_entry_t deadline; /* when the caller stops waiting */
    char auth_id[HP_PAYMENT_AUTH_ID_MAX];
} hp_payment_auth_t;

/* A right-skewed latency shape: most answers near the mean, a tail at 3x. Factors in percent. */
static const int hp__jitter_pct[8] = {50, 70, 85, 95, 105, 120, 170, 300};

static uint64_t hp__rand(hp_payment_t *pay)
{
    /* splitmix64: a per-thread generator, so no locks and no shared state. */
    uint64_t z = (pay->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static h2o_timeout_t *hp__timeout_for(hp_payment_t *pay, uint64_t ms)
{
    size_t best = 0;
    for (size_t i = 0; i != pay->num_timeouts; ++i) {
        if (pay->timeout_ms[i] == ms)
            return &pay->timeouts[i];
        uint64_t d = pay->timeout_ms[i] > ms ? pay->timeout_ms[i] - ms : ms - pay->timeout_ms[i];
        uint64_t bd = pay->timeout_ms[best] > ms ? pay->timeout_ms[best] - ms : ms - pay->timeout_ms[best];
        if (d < bd)
            best = i;
    }
    if (pay->num_timeouts == HP_PAYMENT_MAX_TIMEOUTS)
        return &pay->timeouts[best];
    size_t i = pay->num_timeouts++;
    pay->timeout_ms[i] = ms;
    h2o_timeout_init(pay->thr->loop, &pay->timeouts[i], ms);
    return &pay->timeouts[i];
}

int hp_payment_thread_init(hp_thread_t *thr)
{
    hp_payment_t *pay = calloc(1, sizeof(*pay));
    if (pay == NULL)
        return -1;
    pay->thr = thr;
    if (getrandom(&pay->rng, sizeof(pay->rng), GRND_NONBLOCK) != (ssize_t)sizeof(pay->rng))
        pay->rng = (uint64_t)thr->index + 1;
    hp__pay = pay;
    return 0;
}

void hp_payment_thread_dispose(hp_thread_t *thr)
{
    (void)thr;
    free(hp__pay);
    hp__pay = NULL;
}

void hp_payment_void(hp_thread_t *thr, const char *auth_id)
{
    (void)auth_id; /* the simulator holds no funds; a real gateway call would go here */
    hp_probe_count(thr, HP_COUNTER_pay_voided, 1);
}

/* Hands the outcome to the request, if it still waits; now as in hp_now_ns_once. */
static void hp__auth_deliver(hp_payment_auth_t *a, const char *err, uint64_t *now)
{
    hp_req_t *r = a->op.req;
    a->delivered = 1;
    hp_op_detach(&a->op);
    if (r != NULL)
        hp_probe_wait_end(&r->probe, HP_STAGE_payment, now);
    if (r != NULL)
        a->cb(r, a->ud, err == NULL ? a->auth_id : NULL, err);
}

static void hp__auth_on_latency(h2o_timeout_entry_t *entry)
{
    hp_payment_auth_t *a = H2O_STRUCT_FROM_MEMBER(hp_payment_auth_t, latency, entry);
    hp_payment_t *pay = a->pay;
    uint64_t now = 0, ns = hp_probe_clock_once(&now) - a->start_ns;
    hp_probe_observe(pay->thr, HP_HIST_payment_latency, ns, now);
    if (h2o_timeout_is_linked(&a->deadline))
        h2o_timeout_unlink(&a->deadline);
    if (a->declined) {
        hp_probe_count(pay->thr, HP_COUNTER_pay_declined, 1);
        if (!a->delivered)
            hp__auth_deliver(a, hp_err_payment_declined, &now);
    } else {
        hp_probe_count(pay->thr, HP_COUNTER_pay_authorized, 1);
        if (!a->delivered && a->op.req != NULL) {
            hp__auth_deliver(a, NULL, &now);
        } else {
            /* Nobody is waiting any more (timed out, or the client left): release the hold. */
            hp_op_detach(&a->op);
            hp_payment_void(pay->thr, a->auth_id);
        }
    }
    free(a);
}

static void hp__auth_on_deadline(h2o_timeout_entry_t *entry)
{
    hp_payment_auth_t *a = H2O_STRUCT_FROM_MEMBER(hp_payment_auth_t, deadline, entry);
    hp_probe_count(a->pay->thr, HP_COUNTER_pay_timed_out, 1);
    hp__auth_deliver(a, hp_err_payment_timeout, &(uint64_t){0});
}

void hp_payment_authorize(hp_req_t *r, int64_t amount_cents, hp_payment_cb cb, void *ud)
{
    hp_payment_t *pay = hp__pay;
    hp_payment_auth_t *a = calloc(1, sizeof(*a));
    if (a == NULL)
        abort();
    a->pay = pay;
    a->cb = cb;
    a->ud = ud;
    a->start_ns = hp_probe_timed_wait_begin(&r->probe, HP_STAGE_payment);
    hp_op_attach(r, &a->op);
    uint64_t rnd = hp__rand(pay);
    a->declined = (int)(rnd % 100) < hp_flag_get(HP_FLAG_payment_failure_pct);
    snprintf(a->auth_id, sizeof(a->auth_id), "auth_%d_%llu_%08llx", r->thr->index, (unsigned long long)++pay->seq,
             (unsigned long long)((rnd >> 32) & 0xffffffffu));
    (void)amount_cents;
    uint64_t mean = (uint64_t)hp_flag_get(HP_FLAG_payment_latency_ms);
    uint64_t ms = mean * (uint64_t)hp__jitter_pct[(rnd >> 8) % 8] / 100;
    a->latency.cb = hp__auth_on_latency;
    h2o_timeout_link(r->thr->loop, hp__timeout_for(pay, ms), &a->latency);
    a->deadline.cb = hp__auth_on_deadline;
    h2o_timeout_link(r->thr->loop, &r->thr->payment_timeout, &a->deadline);
}
