/*
 * describe: `hotplate describe [--json]`, the tables the server is built
 * from, as a person or a program reads them: the routes with their
 * attributes, the registered statements with theirs, the flags, the error
 * codes and the scalar stats with their metric names. The tests and the load
 * tests read SQL and metric names from here rather than parsing C headers.
 */
#ifndef HP_DESCRIBE_H
#define HP_DESCRIBE_H

#include <stddef.h>
#include <stdio.h>

#include "base/router.h"

/**
 * Writes the description to out: a JSON document with json set, else text.
 * The statements are the registered ones (runtime/db.h).
 * @return 0, or -1 when out of memory or the write failed
 */
int hp_describe(FILE *out, int json, const hp_route_t *api, size_t num_api, const hp_route_t *admin, size_t num_admin);

#endif
