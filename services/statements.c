/*
 * statements: the named-statement table handed to the db layer (see statements.h).
 */
#include "services/statements.h"
#include "runtime/db.h"

const hp_db_stmt_def_t hp_statements[HP_STMT__COUNT] = {
#define HP__STMT_DEF(name, kind, route, sample, sql) {#name, kind, route, sample, sql},
    HP_STMT_LIST(HP__STMT_DEF)
#undef HP__STMT_DEF
};
