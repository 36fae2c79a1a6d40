/*
 * flags: the typed runtime flags registry.
 *
 * Every behaviour switch of hotplate (the optimizations the bottleneck labs turn
 * off, and the payment simulator's knobs) is one line of HP_FLAG_ENUM_LIST or
 * HP_FLAG_INT_LIST. The lists generate the enum of ids, the constants of the
 * choices, the table of definitions and the parsing. Values
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
 * The choice flags: X(name, default, doc), each with its choices in
 * HP_FLAG_CHOICES_<name>(C), one C(name, value) per choice, in the order of
 * their values. Each choice becomes a constant HP_<name>_<value> (the index
 * the flag holds), so call sites read hp_flag_get(HP_FLAG_menu_cache) ==
 * HP_menu_cache_redis and no code compares a flag's text.
 */
#define HP_FLAG_ENUM_LIST(X)                                                                                                       \
    X(menu_cache, local, "cache-aside for GET /restaurants/{id}/menu in Redis with per-thread copies, in Redis only, or none")     \
    X(orders_user_id_index, on, "the index on orders(user_id, created_at DESC), created or dropped CONCURRENTLY when set")         \
    X(order_history, batched, "order history in 3 set-based statements per page, or 1 + 2N one-row statements")                    \
    X(order_total, once, "compute each cart value once, or recompute per line (quadratic)")                                        \
    X(checkout_txn, short,                                                                                                         \
      "authorize payment before a short transaction, or hold the transaction and stock locks across the payment call")             \
    X(db_pool, sized, "transaction connections per thread: all of --db-pool, or only one")                                         \
    X(leak, off, "the recently-viewed list evicts its oldest entries, or never evicts (a leak)")                                   \
    X(request_log, on, "a JSON log line per request, or none (events are still logged): what make lab's log row compares")         \
    X(replica_reads, off,                                                                                                          \
      "uncached menu and order-history reads on the primary, or on the standby of --pg-replica-url (read-your-writes kept)")

#define HP_FLAG_CHOICES_menu_cache(C) C(menu_cache, local) C(menu_cache, redis) C(menu_cache, off)
#define HP_FLAG_CHOICES_orders_user_id_index(C) C(orders_user_id_index, on) C(orders_user_id_index, off)
#define HP_FLAG_CHOICES_order_history(C) C(order_history, batched) C(order_history, n_plus_one)
#define HP_FLAG_CHOICES_order_total(C) C(order_total, once) C(order_total, naive)
#define HP_FLAG_CHOICES_checkout_txn(C) C(checkout_txn, short) C(checkout_txn, long)
#define HP_FLAG_CHOICES_db_pool(C) C(db_pool, sized) C(db_pool, small)
#define HP_FLAG_CHOICES_leak(C) C(leak, off) C(leak, on)
#define HP_FLAG_CHOICES_request_log(C) C(request_log, on) C(request_log, off)
#define HP_FLAG_CHOICES_replica_reads(C) C(replica_reads, off) C(replica_reads, on)

/* The integer flags: X(name, default, min, max, doc). */
#define HP_FLAG_INT_LIST(X)                                                                                                        \
    X(payment_latency_ms, 40, 0, 60000, "mean latency of the payment gateway simulator, in milliseconds")                          \
    X(payment_failure_pct, 0, 0, 100, "share of payment authorizations the simulator declines, in percent")                        \
    X(slow_request_ms, 100, 1, 600000, "requests at least this slow go to the slow-request ring")                                  \
    X(profile_every_s, 0, 0, 86400, "continuous profiling: a CPU profile and a heap window kept every N seconds; 0 is off")

typedef enum {
#define HP__FLAG_ENUM_ID(name, def, doc) HP_FLAG_##name,
#define HP__FLAG_INT_ID(name, def, min, max, doc) HP_FLAG_##name,
    HP_FLAG_ENUM_LIST(HP__FLAG_ENUM_ID) HP_FLAG_INT_LIST(HP__FLAG_INT_ID)
#undef HP__FLAG_ENUM_ID
#undef HP__FLAG_INT_ID
        HP_FLAG__COUNT
} hp_flag_id_t;

/* The choices' constants: enum { HP_menu_cache_local, HP_menu_cache_redis, HP_menu_cache_off }; and so on. */
#define HP__FLAG_CHOICE_ID(flag, value) HP_##flag##_##value,
#define HP__FLAG_CHOICE_ENUM(name, def, doc) enum { HP_FLAG_CHOICES_##name(HP__FLAG_CHOICE_ID) };
HP_FLAG_ENUM_LIST(HP__FLAG_CHOICE_ENUM)
#undef HP__FLAG_CHOICE_ENUM
#undef HP__FLAG_CHOICE_ID

#define HP_FLAG_MAX_CHOICES 8

typedef struct st_hp_flag_def_t {
    const char *name;
    hp_flag_type_t type;
    const char *def;     /* the default, as text */
    const char *choices; /* "redis|off" for a choice flag, "min..max" for an integer one: for people and JSON */
    const char *doc;
    const char *values[HP_FLAG_MAX_CHOICES + 1]; /* a choice flag's choices, by value, NULL-terminated */
    long min, max;                               /* an integer flag's range */
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

/** Applies a value that hp_flag_check() returned, and tells the observer. */
void hp_flag_store(hp_flag_id_t id, int parsed);

/**
 * Stores a value without telling the observer: for a value that describes the
 * world as it already is (the index thread reporting what the database has),
 * which nothing must act on.
 */
void hp_flag_store_quietly(hp_flag_id_t id, int parsed);

/**
 * Installs the one observer of flag changes (main.c wires what must act when a
 * flag changes, such as the index a flag builds): called on the thread that
 * stored the value, after the store. Call once at startup; NULL for none.
 */
void hp_flag_set_observer(void (*observer)(hp_flag_id_t id));

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
