/*
 * libFuzzer driver: the read-your-writes cookie's parser
 * (common/runtime/replica.c), which reads a client's Cookie header, so
 * anything goes.
 *
 * Invariants: the parser never reads past the input; a position it finds
 * prints back (hp_replica_format_lsn) to text that parses to the same
 * position, both bare and as the only cookie of a header.
 */
#include "runtime/replica.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes, so that ASan sees any read past the end. */
    char *s = malloc(size ? size : 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    uint64_t lsn;
    if (hp_replica_cookie_lsn(s, size, &lsn) == 0) {
        char text[HP_REPLICA_LSN_TEXT], header[HP_REPLICA_LSN_TEXT + sizeof(HP_REPLICA_COOKIE)];
        uint64_t back;
        hp_replica_format_lsn(lsn, text);
        if (hp_replica_parse_lsn(text, strlen(text), &back) != 0 || back != lsn)
            abort();
        memcpy(header, HP_REPLICA_COOKIE "=", sizeof(HP_REPLICA_COOKIE));
        memcpy(header + sizeof(HP_REPLICA_COOKIE), text, strlen(text) + 1);
        if (hp_replica_cookie_lsn(header, strlen(header), &back) != 0 || back != lsn)
            abort();
    }
    free(s);
    return 0;
}
