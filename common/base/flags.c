/*
 * flags: the typed runtime flags registry (see flags.h).
 */
#include "base/flags.h"
#include "base/decimal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * A choice flag's "redis|off" is built from its choices as "|redis|off" and
 * read from its second character; the values array from the same list.
 */
#define HP__CHOICE_BAR(flag, value) "|" #value
#define HP__CHOICE_STR(flag, value) #value,
static const hp_flag_def_t hp__flag_defs[HP_FLAG__COUNT] = {
#define HP__FLAG_ENUM_DEF(name, def, doc)                                                                                          \
    {#name, HP_FLAG_ENUM,                                                                                                          \
     #def,  ("" HP_FLAG_CHOICES_##name(HP__CHOICE_BAR)) + 1,                                                                       \
     doc,   {HP_FLAG_CHOICES_##name(HP__CHOICE_STR) NULL},                                                                         \
     0,     0},
#define HP__FLAG_INT_DEF(name, def, min, max, doc) {#name, HP_FLAG_INT, #def, #min ".." #max, doc, {NULL}, min, max},
    HP_FLAG_ENUM_LIST(HP__FLAG_ENUM_DEF) HP_FLAG_INT_LIST(HP__FLAG_INT_DEF)
#undef HP__FLAG_ENUM_DEF
#undef HP__FLAG_INT_DEF
};
#undef HP__CHOICE_BAR
#undef HP__CHOICE_STR

static void (*hp__flag_observer)(hp_flag_id_t id);

/* Written by the admin thread or at startup, read by every worker per request. */
static _Atomic int hp__flag_values[HP_FLAG__COUNT];
/* Set at startup only (before threads start): which flags the operator chose explicitly. */
static unsigned char hp__flag_explicit[HP_FLAG__COUNT];

const hp_flag_def_t *hp_flag_def(hp_flag_id_t id)
{
    return &hp__flag_defs[id];
}

int hp_flag_get(hp_flag_id_t id)
{
    return atomic_load_explicit(&hp__flag_values[id], memory_order_relaxed);
}

static int hp__flag_parse_value(const hp_flag_def_t *def, const char *value, size_t value_len, int *out)
{
    if (def->type == HP_FLAG_ENUM) {
        for (int i = 0; def->values[i] != NULL; ++i) {
            if (strlen(def->values[i]) == value_len && memcmp(def->values[i], value, value_len) == 0) {
                *out = i;
                return 0;
            }
        }
        return -1;
    }
    /* Integers: decimal digits only, within the definition's range. */
    int64_t v;
    if (value_len > 9 || hp_decimal(value, value_len, &v) != 0)
        return -1;
    if (v < def->min || v > def->max)
        return -1;
    *out = (int)v;
    return 0;
}

int hp_flag_check(const char *name, size_t name_len, const char *value, size_t value_len, int *parsed, char *err, size_t errlen)
{
    for (int id = 0; id != HP_FLAG__COUNT; ++id) {
        const hp_flag_def_t *def = &hp__flag_defs[id];
        if (strlen(def->name) != name_len || memcmp(def->name, name, name_len) != 0)
            continue;
        if (hp__flag_parse_value(def, value, value_len, parsed) != 0) {
            snprintf(err, errlen, "flag %s takes %s", def->name, def->choices);
            return -1;
        }
        return id;
    }
    snprintf(err, errlen, "unknown flag %.*s", (int)(name_len > 64 ? 64 : name_len), name);
    return -1;
}

void hp_flag_store(hp_flag_id_t id, int parsed)
{
    atomic_store_explicit(&hp__flag_values[id], parsed, memory_order_relaxed);
    if (hp__flag_observer != NULL)
        hp__flag_observer(id);
}

void hp_flag_store_quietly(hp_flag_id_t id, int parsed)
{
    atomic_store_explicit(&hp__flag_values[id], parsed, memory_order_relaxed);
}

void hp_flag_set_observer(void (*observer)(hp_flag_id_t id))
{
    hp__flag_observer = observer;
}

int hp_flag_set(const char *name, size_t name_len, const char *value, size_t value_len, char *err, size_t errlen)
{
    int v, id = hp_flag_check(name, name_len, value, value_len, &v, err, errlen);
    if (id < 0)
        return -1;
    hp_flag_store(id, v);
    return 0;
}

int hp_flag_explicit(hp_flag_id_t id)
{
    return hp__flag_explicit[id];
}

void hp_flags_init(void)
{
    char err[128];
    memset(hp__flag_explicit, 0, sizeof(hp__flag_explicit));
    for (int id = 0; id != HP_FLAG__COUNT; ++id) {
        const hp_flag_def_t *def = &hp__flag_defs[id];
        if (hp_flag_set(def->name, strlen(def->name), def->def, strlen(def->def), err, sizeof(err)) != 0)
            abort(); /* a default that does not parse is a bug in the flag lists */
    }
}

int hp_flags_parse_list(const char *list, char *err, size_t errlen)
{
    const char *p = list;
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len != 0) {
            const char *eq = memchr(p, '=', len);
            if (eq == NULL) {
                snprintf(err, errlen, "expected name=value, got %.*s", (int)(len > 64 ? 64 : len), p);
                return -1;
            }
            int v, id = hp_flag_check(p, (size_t)(eq - p), eq + 1, len - (size_t)(eq - p) - 1, &v, err, errlen);
            if (id < 0)
                return -1;
            hp_flag_store(id, v);
            hp__flag_explicit[id] = 1;
        }
        if (end == NULL)
            break;
        p = end + 1;
    }
    return 0;
}

const char *hp_flag_value_str(hp_flag_id_t id, char *buf, size_t buflen)
{
    const hp_flag_def_t *def = &hp__flag_defs[id];
    int v = hp_flag_get(id);
    if (def->type == HP_FLAG_INT) {
        snprintf(buf, buflen, "%d", v);
        return buf;
    }
    snprintf(buf, buflen, "%s", v >= 0 && v < HP_FLAG_MAX_CHOICES && def->values[v] != NULL ? def->values[v] : "?");
    return buf;
}
