/*
 * libFuzzer driver: pagination cursors (common/base/cursor.c), the ?cursor= of
 * GET /restaurants and GET /users/{id}/orders.
 *
 * Invariants: a cursor that decodes re-encodes to the same string (the codec
 * is a bijection on valid cursors), and any (kind, k1, k2) taken from the input
 * encodes to at most HP_CURSOR_MAX_LEN characters that decode back to the same
 * values, and never as the other kind.
 */
#include "base/cursor.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char buf[HP_CURSOR_BUF_SIZE];
    int64_t k1, k2;
    for (uint8_t kind = HP_CURSOR_KIND_RESTAURANTS; kind <= HP_CURSOR_KIND_ORDERS; ++kind) {
        if (hp_cursor_decode((const char *)data, size, kind, &k1, &k2) == 0) {
            size_t n = hp_cursor_encode(buf, sizeof(buf), kind, k1, k2);
            if (n != size || memcmp(buf, data, size) != 0)
                abort();
        }
    }
    /* The other direction: 17 bytes of input are a kind and two keys. */
    if (size >= 17) {
        uint8_t kind = (data[0] & 1) ? HP_CURSOR_KIND_ORDERS : HP_CURSOR_KIND_RESTAURANTS;
        int64_t a, b;
        memcpy(&a, data + 1, sizeof(a));
        memcpy(&b, data + 9, sizeof(b));
        size_t n = hp_cursor_encode(buf, sizeof(buf), kind, a, b);
        if (n == 0 || n > HP_CURSOR_MAX_LEN || buf[n] != '\0')
            abort();
        if (hp_cursor_decode(buf, n, kind, &k1, &k2) != 0 || k1 != a || k2 != b)
            abort();
        uint8_t other = kind == HP_CURSOR_KIND_ORDERS ? HP_CURSOR_KIND_RESTAURANTS : HP_CURSOR_KIND_ORDERS;
        if (hp_cursor_decode(buf, n, other, &k1, &k2) == 0)
            abort();
    }
    return 0;
}
