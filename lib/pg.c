/*
 * lib/pg.c - implementation of kiln/pg.h.
 */
#include "kiln/pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/log.h"
#include "lib/migrations.h"

typedef struct {
    const char *keys[64];
    const char *vals[64];
    int n;
} kiln_pg_params_t;

static int kiln_pg_collect(const char *key, const char *value, void *opaque) {
    kiln_pg_params_t *pp = opaque;
    if (pp->n < 62) {
        pp->keys[pp->n] = key;
        pp->vals[pp->n] = value;
        pp->n++;
    }
    return 0;
}

PGconn *kiln_pg_connect(const kiln_conf_t *conf, const char *app, char *errstr,
                        size_t errstr_size) {
    kiln_pg_params_t pp = {.n = 0};
    kiln_conf_foreach_passthrough(conf, "pg.", kiln_pg_collect, &pp);
    int has_app = 0, has_timeout = 0;
    for (int i = 0; i < pp.n; i++) {
        has_app |= !strcmp(pp.keys[i], "application_name");
        has_timeout |= !strcmp(pp.keys[i], "connect_timeout");
    }
    if (!has_app) {
        pp.keys[pp.n] = "application_name";
        pp.vals[pp.n++] = app;
    }
    if (!has_timeout) {
        pp.keys[pp.n] = "connect_timeout";
        pp.vals[pp.n++] = "10";
    }
    pp.keys[pp.n] = NULL;
    pp.vals[pp.n] = NULL;
    PGconn *pg = PQconnectdbParams(pp.keys, pp.vals, 0);
    if (!pg || PQstatus(pg) != CONNECTION_OK) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", pg ? PQerrorMessage(pg) : "out of memory");
        msg[strcspn(msg, "\n")] = '\0';
        snprintf(errstr, errstr_size, "could not connect to Postgres: %s", msg);
        PQfinish(pg);
        return NULL;
    }
    PQsetNoticeProcessor(pg, NULL, NULL);
    return pg;
}

static void kiln_pg_err(PGconn *pg, PGresult *res, char *errstr, size_t errstr_size) {
    const char *m = res ? PQresultErrorMessage(res) : PQerrorMessage(pg);
    snprintf(errstr, errstr_size, "%s", (m && *m) ? m : "unknown database error");
    errstr[strcspn(errstr, "\n")] = '\0';
}

int kiln_pg_exec(PGconn *pg, const char *sql, char *errstr, size_t errstr_size) {
    PGresult *res = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        kiln_pg_err(pg, res, errstr, errstr_size);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    return 0;
}

PGresult *kiln_pg_execp(PGconn *pg, const char *sql, int n, const char *const *params,
                        char *errstr, size_t errstr_size) {
    PGresult *res = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        kiln_pg_err(pg, res, errstr, errstr_size);
        PQclear(res);
        return NULL;
    }
    return res;
}

int kiln_pg_migrate(PGconn *pg, char *errstr, size_t errstr_size) {
    if (kiln_pg_exec(pg,
                     "CREATE TABLE IF NOT EXISTS schema_migrations ("
                     " version int PRIMARY KEY, name text NOT NULL,"
                     " applied_at timestamptz NOT NULL DEFAULT now())",
                     errstr, errstr_size))
        return -1;
    if (kiln_pg_exec(pg, "SELECT pg_advisory_lock(4242001)", errstr, errstr_size))
        return -1;
    int applied = 0;
    for (int i = 0; i < kiln_n_migrations; i++) {
        const kiln_migration_t *m = &kiln_migrations[i];
        char ver[16];
        snprintf(ver, sizeof(ver), "%d", m->version);
        const char *p[2] = {ver, m->name};
        PGresult *r = kiln_pg_execp(pg, "SELECT 1 FROM schema_migrations WHERE version = $1::int",
                                    1, p, errstr, errstr_size);
        if (!r)
            goto fail;
        int done = PQntuples(r) > 0;
        PQclear(r);
        if (done)
            continue;
        if (kiln_pg_exec(pg, "BEGIN", errstr, errstr_size))
            goto fail;
        if (kiln_pg_exec(pg, m->sql, errstr, errstr_size)) {
            char e2[512];
            snprintf(e2, sizeof(e2), "migration %s failed: %s", m->name, errstr);
            snprintf(errstr, errstr_size, "%s", e2);
            kiln_pg_exec(pg, "ROLLBACK", e2, sizeof(e2));
            goto fail;
        }
        r = kiln_pg_execp(pg, "INSERT INTO schema_migrations (version, name) VALUES ($1::int, $2)",
                          2, p, errstr, errstr_size);
        if (!r) {
            char e2[64];
            kiln_pg_exec(pg, "ROLLBACK", e2, sizeof(e2));
            goto fail;
        }
        PQclear(r);
        if (kiln_pg_exec(pg, "COMMIT", errstr, errstr_size))
            goto fail;
        KILN_LOG_INFO("applied migration %s", m->name);
        applied++;
    }
    kiln_pg_exec(pg, "SELECT pg_advisory_unlock(4242001)", errstr, errstr_size);
    return applied;
fail: {
    char e2[64];
    kiln_pg_exec(pg, "SELECT pg_advisory_unlock(4242001)", e2, sizeof(e2));
    return -1;
}
}

int kiln_pg_check(PGconn *pg) {
    if (PQstatus(pg) == CONNECTION_OK)
        return 0;
    PQreset(pg);
    return 1;
}
