/*
 * statements: the named-statement table handed to the db layer (see statements.h).
 */
#include "services/statements.h"
#include "common/db.h"

const hp_db_stmt_def_t hp_statements[] = {
#define HP__STMT_DEF(name, sql) {#name, sql},
    HP_STMT_LIST(HP__STMT_DEF)
#undef HP__STMT_DEF
};
