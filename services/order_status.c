/*
 * order_status: the order status machine (see order_status.h for the contract).
 *
 * The machine is written as a switch rather than a table of pairs so that the
 * compiler checks it covers every status, and so that adding a status without
 * deciding its successor is a -Wswitch error.
 */
#include "services/order_status.h"

#include <string.h>

const char *hp_status_name(hp_order_status_t status)
{
    switch (status) {
    case HP_ST_PLACED:
        return "placed";
    case HP_ST_ACCEPTED:
        return "accepted";
    case HP_ST_PREPARING:
        return "preparing";
    case HP_ST_READY:
        return "ready";
    case HP_ST_PICKED_UP:
        return "picked_up";
    case HP_ST_DELIVERED:
        return "delivered";
    case HP_ST_CANCELLED:
        return "cancelled";
    case HP_ST__COUNT:
        break;
    }
    return NULL;
}

int hp_status_parse(const char *s, size_t len, hp_order_status_t *out)
{
    if (s == NULL)
        return -1;
    for (int st = 0; st < HP_ST__COUNT; st++) {
        const char *name = hp_status_name((hp_order_status_t)st);
        /* Comparing lengths first keeps memcmp inside both buffers and rejects prefixes. */
        if (strlen(name) == len && memcmp(name, s, len) == 0) {
            *out = (hp_order_status_t)st;
            return 0;
        }
    }
    return -1;
}

/* Returns the next status on the happy path, or HP_ST__COUNT when there is none. */
static inline hp_order_status_t hp_status__next(hp_order_status_t from)
{
    switch (from) {
    case HP_ST_PLACED:
        return HP_ST_ACCEPTED;
    case HP_ST_ACCEPTED:
        return HP_ST_PREPARING;
    case HP_ST_PREPARING:
        return HP_ST_READY;
    case HP_ST_READY:
        return HP_ST_PICKED_UP;
    case HP_ST_PICKED_UP:
        return HP_ST_DELIVERED;
    case HP_ST_DELIVERED:
    case HP_ST_CANCELLED:
    case HP_ST__COUNT:
        break;
    }
    return HP_ST__COUNT;
}

/* Cancelling is possible until the kitchen starts preparing the order. */
static inline int hp_status__cancellable(hp_order_status_t from)
{
    return from == HP_ST_PLACED || from == HP_ST_ACCEPTED;
}

int hp_status_transition_allowed(hp_order_status_t from, hp_order_status_t to, hp_actor_t actor)
{
    /*
     * Enum values arrive from casts of stored integers too, so out-of-range
     * values are refused here instead of being trusted.
     */
    if ((unsigned)from >= HP_ST__COUNT || (unsigned)to >= HP_ST__COUNT)
        return 0;
    int cancel = to == HP_ST_CANCELLED && hp_status__cancellable(from);
    switch (actor) {
    case HP_ACTOR_OWNER:
        return cancel || hp_status__next(from) == to;
    case HP_ACTOR_CUSTOMER:
        return cancel;
    }
    return 0;
}
