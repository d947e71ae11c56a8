/*
 * kiln/pg.h - Postgres helpers shared by every kiln process.
 *
 * Connections are built from the pass-through `pg.*` configuration keys
 * (libpq keywords). Every statement that carries user data goes through
 * PQexecParams (kiln_pg_execp); kiln_pg_exec is for fixed SQL only.
 */
#ifndef KILN_PG_H
#define KILN_PG_H

#include <libpq-fe.h>
#include <stddef.h>

#include "kiln/conf.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Connects with the pg.* keys of \p conf (application_name = \p app).
 * @returns the connection, or NULL with "could not connect to Postgres: ..."
 * in \p errstr.
 */
PGconn *kiln_pg_connect(const kiln_conf_t *conf, const char *app, char *errstr,
                        size_t errstr_size);

/** Runs fixed SQL (no parameters). @returns 0, or -1 with the error in errstr. */
int kiln_pg_exec(PGconn *pg, const char *sql, char *errstr, size_t errstr_size);

/**
 * Runs \p sql with \p n text parameters (NULL entries are SQL NULL).
 * @returns the result (caller PQclear()s) when its status is COMMAND_OK or
 * TUPLES_OK, else NULL with the error in \p errstr.
 */
PGresult *kiln_pg_execp(PGconn *pg, const char *sql, int n, const char *const *params,
                        char *errstr, size_t errstr_size);

/**
 * Applies the embedded migrations not yet applied (under an advisory lock,
 * so concurrent callers are safe). @returns the number applied, or -1.
 */
int kiln_pg_migrate(PGconn *pg, char *errstr, size_t errstr_size);

/** @returns 1 when the connection is bad (and was reset if possible). */
int kiln_pg_check(PGconn *pg);

#ifdef __cplusplus
}
#endif
#endif
