/*
 * auth: bearer-token authentication for the API routes.
 *
 * Tokens are 64 hex characters; only their SHA-256 is stored (users.token_hash)
 * and the lookup is by hash, so the server never holds a table of secrets. The
 * hash lookup is one named statement (auth_token) on the pipelined read
 * connection.
 */
#ifndef HP_AUTH_H
#define HP_AUTH_H

#include "runtime/http.h"

/* Which principals may call a route. */
enum { HP_AUTH_CUSTOMER = 1, HP_AUTH_OWNER = 2, HP_AUTH_ANY = 3 };

/**
 * Authenticates r and, when its role is in `roles`, fills r->principal and
 * calls next(r). Otherwise answers 401 (no or unknown token) or 403 (a role
 * the route does not serve).
 */
void hp_auth(hp_req_t *r, int roles, void (*next)(hp_req_t *r));

#endif
