/*
 * auth: bearer tokens to principals (see auth.h).
 */
#include "services/auth.h"
#include "runtime/db.h"
#include "base/hex.h"
#include "base/token.h"
#include "services/statements.h"

#include <stdlib.h>
#include <string.h>

typedef struct st_hp_auth_state_t {
    int roles;
    void (*next)(hp_req_t *r);
} hp_auth_state_t;

static void hp__auth_on_row(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_auth_state_t *st = ud;
    if (hp_db_failed(r, res, err))
        return;
    if (PQntuples(res) != 1) {
        PQclear(res);
        hp_respond_error(r, HP_E_unauthorized, "unknown token");
        return;
    }
    hp_principal_t *p = &r->principal;
    p->user_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    p->role = strcmp(PQgetvalue(res, 0, 1), "owner") == 0 ? HP_ROLE_OWNER : HP_ROLE_CUSTOMER;
    p->lat = strtod(PQgetvalue(res, 0, 2), NULL);
    p->lon = strtod(PQgetvalue(res, 0, 3), NULL);
    p->restaurant_id = PQgetisnull(res, 0, 4) ? 0 : strtoll(PQgetvalue(res, 0, 4), NULL, 10);
    PQclear(res);
    int bit = p->role == HP_ROLE_OWNER ? HP_AUTH_OWNER : HP_AUTH_CUSTOMER;
    if ((st->roles & bit) == 0) {
        hp_respond_error(r, HP_E_forbidden,
                         p->role == HP_ROLE_OWNER ? "this route is for customers" : "this route is for restaurant owners");
        return;
    }
    st->next(r);
}

void hp_auth(hp_req_t *r, int roles, void (*next)(hp_req_t *r))
{
    h2o_iovec_t hdr = hp_req_header(r, "authorization");
    const char *tok;
    size_t toklen;
    if (hdr.base == NULL || hp_token_parse_bearer(hdr.base, hdr.len, &tok, &toklen) != 0) {
        hp_add_header(r, "www-authenticate", "Bearer");
        hp_respond_error(r, HP_E_unauthorized, "a valid bearer token is required");
        return;
    }
    uint8_t hash[32];
    hp_token_hash(tok, toklen, hash);
    /* bytea in text format: "\x" followed by hex. */
    char *param = h2o_mem_alloc_pool(&r->h2o->pool, 2 + 64 + 1);
    param[0] = '\\', param[1] = 'x';
    hp_hex_bytes(param + 2, hash, sizeof(hash));
    param[66] = '\0';
    hp_auth_state_t *st = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*st));
    st->roles = roles;
    st->next = next;
    const char *values[] = {param};
    hp_db_query_staged(r, HP_STAGE_auth, HP_STMT_auth_token, values, 1, hp__auth_on_row, st);
}
