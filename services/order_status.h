/*
 * order_status: the order status machine, as pure functions.
 *
 * An order moves placed -> accepted -> preparing -> ready -> picked_up ->
 * delivered, and may be cancelled while it is placed or accepted. The
 * restaurant's owner may make every transition of the machine; the customer may
 * only cancel. POST /orders/{id}/events asks hp_status_transition_allowed and
 * answers 409 invalid_transition when it says no. The names are the values of
 * the orders.status column and of the API's "status" field.
 */
#ifndef HP_ORDER_STATUS_H
#define HP_ORDER_STATUS_H

#include <stddef.h>

typedef enum {
    HP_ST_PLACED,
    HP_ST_ACCEPTED,
    HP_ST_PREPARING,
    HP_ST_READY,
    HP_ST_PICKED_UP,
    HP_ST_DELIVERED,
    HP_ST_CANCELLED,
    HP_ST__COUNT
} hp_order_status_t;

/* Who asks for a transition: the customer who placed the order, or the owner of its restaurant. */
typedef enum { HP_ACTOR_CUSTOMER, HP_ACTOR_OWNER } hp_actor_t;

/**
 * Parses a status name. Only the exact lowercase names are accepted.
 * @param s the name; need not be NUL-terminated, may be NULL when len is 0
 * @param len its length in bytes
 * @param out receives the status on success, untouched otherwise
 * @return 0, or -1 when s is not a status name
 */
int hp_status_parse(const char *s, size_t len, hp_order_status_t *out);

/**
 * @return the status name ("picked_up"), a static string; NULL for a value
 * outside the enum
 */
const char *hp_status_name(hp_order_status_t status);

/**
 * Says whether an actor may move an order from one status to another. A status
 * never transitions to itself, and delivered and cancelled are final.
 * @return 1 when allowed, 0 otherwise (also for values outside the enums)
 */
int hp_status_transition_allowed(hp_order_status_t from, hp_order_status_t to, hp_actor_t actor);

#endif
