/*
 * libFuzzer driver: runtime flag values (common/base/flags.c), as they arrive from
 * --flag NAME=VALUE, HOTPLATE_FLAGS and POST /debug/flags.
 *
 * The input is NAME=VALUE. Invariants: hp_flag_check either returns a flag id
 * or -1 with an error message; a value it accepts, once stored, reads back
 * through hp_flag_value_str as a string that hp_flag_check parses to the same
 * value (what /debug/flags shows can be set again). The whole input is also
 * given to hp_flags_parse_list as a comma-separated list.
 */
#include "base/flags.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    const char *eq = memchr(in, '=', size);
    const char *value = eq != NULL ? eq + 1 : in + size;
    size_t name_len = eq != NULL ? (size_t)(eq - in) : size, value_len = (size_t)(in + size - value);
    char err[160], buf[64];
    int parsed = -1;

    memset(err, 0, sizeof(err));
    int id = hp_flag_check(in, name_len, value, value_len, &parsed, err, sizeof(err));
    if (id >= HP_FLAG__COUNT || id < -1)
        abort();
    if (id < 0) {
        if (err[0] == '\0')
            abort();
    } else {
        hp_flag_store((hp_flag_id_t)id, parsed);
        const char *shown = hp_flag_value_str((hp_flag_id_t)id, buf, sizeof(buf));
        const hp_flag_def_t *def = hp_flag_def((hp_flag_id_t)id);
        int again = -1;
        if (hp_flag_check(def->name, strlen(def->name), shown, strlen(shown), &again, err, sizeof(err)) != id || again != parsed)
            abort();
    }

    char *list = malloc(size + 1);
    memcpy(list, data, size);
    list[size] = '\0';
    err[0] = '\0';
    if (hp_flags_parse_list(list, err, sizeof(err)) != 0 && err[0] == '\0')
        abort();
    free(list);
    hp_flags_init();
    return 0;
}
