/*
 * errors: the error table (see errors.h).
 */
#include "base/errors.h"

#include <string.h>

#define HP__ERROR_STR(code, status, is_timeout, message) const char hp_err_##code[] = #code;
HP_ERROR_LIST(HP__ERROR_STR)
#undef HP__ERROR_STR

const hp_error_def_t hp_errors[HP_E__COUNT] = {
#define HP__ERROR_DEF(code, status, is_timeout, message) {hp_err_##code, status, is_timeout, message},
    HP_ERROR_LIST(HP__ERROR_DEF)
#undef HP__ERROR_DEF
};

int hp_error_of(const char *err)
{
    if (err == NULL)
        return -1;
    for (int i = 0; i != HP_E__COUNT; ++i)
        if (hp_errors[i].code == err)
            return i;
    for (int i = 0; i != HP_E__COUNT; ++i)
        if (strcmp(hp_errors[i].code, err) == 0)
            return i;
    return -1;
}
