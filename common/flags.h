/*
 * flags: the typed runtime flags registry.
 *
 * Every behaviour switch of hotplate (the optimizations the bottleneck labs turn
 * off, and the payment simulator's knobs) is one line of HP_FLAG_LIST. The list
 * generates the enum of ids, the table of definitions and the parsing. Values
 * are read per request with a relaxed atomic load, so a flag changed at runtime
 * takes effect on the next request on every thread without locks.
 *
 * Flags are set at startup with `--flag name=value` or HOTPLATE_FLAGS
 * ("name=value,name=value"); the command line wins over the environment.
 */
#ifndef HP_FLAGS_H
#define HP_FLAGS_H

#include <stddef.h>

typedef enum { HP_FLAG_ENUM, HP_FLAG_INT } hp_flag_type_t;

/*
 * X(name, type, default, choices or range, doc)
 * For HP_FLAG_ENUM the choices are '|'-separated and the value is the index of
 * the choice; for HP_FLAG_INT the range is "min..max".
 */
#define HP_FLAG_LIST(X)                                                                                                            \
    X(menu_cache, HP_FLAG_ENUM, "redis", "redis|off", "cache-aside for GET /restaurants/{id}/menu in Redis, or none")              \
    X(orders_user_id_index, HP_FLAG_ENUM, "on", "on|off",                                                                          \
      "the index on orders(user_id, created_at DESC), created or dropped CONCURRENTLY when set")                                   \
    X(order_history, HP_FLAG_ENUM, "batched", "batched|n_plus_one",                                                                \
      "order history in 3 set-based statements per page, or 1 + 2N one-row statements")                                            \
    X(order_total, HP_FLAG_ENUM, "once", "once|naive", "compute each cart value once, or recompute per line (quadratic)")          \
    X(checkout_txn, HP_FLAG_ENUM, "short", "short|long",                                                                           \
      "authorize payment before a short transaction, or hold the transaction and stock locks across the payment call")             \
    X(db_pool, HP_FLAG_ENUM, "sized", "sized|small", "transaction connections per thread: all of --db-pool, or only one")          \
    X(leak, HP_FLAG_ENUM, "off", "off|on", "the recently-viewed list evicts its oldest entries, or never evicts (a leak)")         \
    X(payment_latency_ms, HP_FLAG_INT, "40", "0..60000", "mean latency of the payment gateway simulator, in milliseconds")         \
    X(payment_failure_pct, HP_FLAG_INT, "0", "0..100", "share of payment authorizations the simulator declines, in percent")       \
    X(slow_request_ms, HP_FLAG_INT, "100", "1..600000", "requests at least this slow go to the slow-request ring")

typedef enum {
#define HP__FLAG_ID(name, type, def, choices, doc) HP_FLAG_##name,
    HP_FLAG_LIST(HP__FLAG_ID)
#undef HP__FLAG_ID
        HP_FLAG__COUNT
} hp_flag_id_t;

/* The enum choices, named so that call sites read well. */
enum { HP_MENU_CACHE_REDIS = 0, HP_MENU_CACHE_OFF = 1 };
enum { HP_ORDER_TOTAL_ONCE = 0, HP_ORDER_TOTAL_NAIVE = 1 };
enum { HP_INDEX_ON = 0, HP_INDEX_OFF = 1 };
enum { HP_ORDER_HISTORY_BATCHED = 0, HP_ORDER_HISTORY_N_PLUS_ONE = 1 };
enum { HP_CHECKOUT_TXN_SHORT = 0, HP_CHECKOUT_TXN_LONG = 1 };
enum { HP_DB_POOL_SIZED = 0, HP_DB_POOL_SMALL = 1 };
enum { HP_LEAK_OFF = 0, HP_LEAK_ON = 1 };

typedef struct st_hp_flag_def_t {
    const char *name;
    hp_flag_type_t type;
    const char *def;
    const char *choices;
    const char *doc;
} hp_flag_def_t;

/** Resets every flag to its default. Call once at startup, before threads start. */
void hp_flags_init(void);

/** @return the current value (the choice index for enum flags) */
int hp_flag_get(hp_flag_id_t id);

/**
 * Sets one flag from text.
 * @return 0, or -1 with a message in err for an unknown name or a bad value
 */
int hp_flag_set(const char *name, size_t name_len, const char *value, size_t value_len, char *err, size_t errlen);

/**
 * Checks a flag assignment without applying it.
 * @return the flag's id with its parsed value in *value, or -1 with a message in err
 */
int hp_flag_check(const char *name, size_t name_len, const char *value, size_t value_len, int *parsed, char *err, size_t errlen);

/** Applies a value that hp_flag_check() returned. */
void hp_flag_store(hp_flag_id_t id, int parsed);

/**
 * Parses "name=value" (one --flag argument) or a comma-separated list of them
 * (HOTPLATE_FLAGS) and sets each.
 * @return 0, or -1 with a message in err
 */
int hp_flags_parse_list(const char *list, char *err, size_t errlen);

/** @return 1 when the flag was set by hp_flags_parse_list() (--flag or HOTPLATE_FLAGS) since hp_flags_init() */
int hp_flag_explicit(hp_flag_id_t id);

/** @return the definition of a flag */
const hp_flag_def_t *hp_flag_def(hp_flag_id_t id);

/**
 * Writes the current value as text ("redis", "40") into buf.
 * @return buf
 */
const char *hp_flag_value_str(hp_flag_id_t id, char *buf, size_t buflen);

#endif
