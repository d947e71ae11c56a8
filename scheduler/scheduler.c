/*
 * scheduler/scheduler.c - the scheduler daemon (kiln/scheduler.h).
 *
 * Balanced, sticky assignment of each modality's partitions over the live
 * workers. Epochs are per partition: only a real owner change bumps one.
 */
#include "kiln/scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kiln/kafka.h"
#include "kiln/log.h"
#include "kiln/pg.h"

struct kiln_scheduler_s {
    kiln_conf_t *conf;
    PGconn *pg;
    long long rebalances;
};

kiln_scheduler_t *kiln_scheduler_new(const kiln_conf_t *conf, char *errstr, size_t errstr_size) {
    kiln_scheduler_t *ks = calloc(1, sizeof(*ks));
    if (!ks)
        return NULL;
    ks->conf = kiln_conf_dup(conf);
    ks->pg = kiln_pg_connect(conf, "kiln-scheduler", errstr, errstr_size);
    if (!ks->pg) {
        kiln_scheduler_destroy(ks);
        return NULL;
    }
    return ks;
}

/* Rebalances one modality's topic inside the caller's transaction. */
static int kiln_scheduler_topic(kiln_scheduler_t *ks, const char *modality, char *errstr,
                                size_t errstr_size) {
    char topic[256], np_s[16], tmo[32];
    kiln_kafka_topic(ks->conf, modality, "jobs", topic, sizeof(topic));
    int np = kiln_kafka_partitions(ks->conf, modality);
    snprintf(np_s, sizeof(np_s), "%d", np);
    snprintf(tmo, sizeof(tmo), "%lld", kiln_conf_get_int(ks->conf, "scheduler.worker_timeout_ms"));
    const char *p[2] = {topic, np_s};
    PGresult *r = kiln_pg_execp(ks->pg,
                                "INSERT INTO assignments (topic, kpartition)"
                                " SELECT $1, g FROM generate_series(0, $2::int - 1) g"
                                " ON CONFLICT DO NOTHING",
                                2, p, errstr, errstr_size);
    if (!r)
        return -1;
    PQclear(r);
    const char *q[2] = {modality, tmo};
    r = kiln_pg_execp(ks->pg,
                      "SELECT id FROM workers WHERE status = 'up' AND $1 = ANY (modalities)"
                      " AND heartbeat > now() - ($2::bigint * interval '1 millisecond') ORDER BY id",
                      2, q, errstr, errstr_size);
    if (!r)
        return -1;
    int nw = PQntuples(r);
    if (nw == 0) {
        PQclear(r);
        return 0; /* nobody to give partitions to: keep the rows as they are */
    }
    char **wid = calloc(nw, sizeof(char *));
    int *load = calloc(nw, sizeof(int));
    for (int i = 0; i < nw; i++)
        wid[i] = strdup(PQgetvalue(r, i, 0));
    PQclear(r);
    const char *t[1] = {topic};
    r = kiln_pg_execp(ks->pg,
                      "SELECT kpartition, coalesce(worker, '') FROM assignments WHERE topic = $1"
                      " AND kpartition < (SELECT count(*) FROM assignments WHERE topic = $1)"
                      " ORDER BY kpartition FOR UPDATE",
                      1, t, errstr, errstr_size);
    if (!r) {
        for (int i = 0; i < nw; i++)
            free(wid[i]);
        free(wid);
        free(load);
        return -1;
    }
    int n = PQntuples(r);
    int *owner = malloc(sizeof(int) * (n ? n : 1));
    int fair = (n + nw - 1) / nw;
    for (int k = 0; k < n; k++) {
        owner[k] = -1;
        const char *w = PQgetvalue(r, k, 1);
        for (int i = 0; i < nw; i++)
            if (!strcmp(wid[i], w) && load[i] < fair) {
                owner[k] = i;
                load[i]++;
            }
    }
    int moved = 0;
    for (int k = 0; k < n; k++) {
        if (owner[k] >= 0)
            continue;
        int best = 0;
        for (int i = 1; i < nw; i++)
            if (load[i] < load[best])
                best = i;
        load[best]++;
        const char *u[3] = {topic, PQgetvalue(r, k, 0), wid[best]};
        PGresult *ur = kiln_pg_execp(ks->pg,
                                     "UPDATE assignments SET worker = $3, epoch = epoch + 1,"
                                     " assigned_at = now() WHERE topic = $1 AND kpartition = $2::int",
                                     3, u, errstr, errstr_size);
        if (!ur) {
            moved = -1;
            break;
        }
        PQclear(ur);
        KILN_LOG_DEBUG("%s [%s] -> %s", topic, PQgetvalue(r, k, 0), wid[best]);
        moved++;
    }
    PQclear(r);
    for (int i = 0; i < nw; i++)
        free(wid[i]);
    free(wid);
    free(load);
    free(owner);
    return moved;
}

int kiln_scheduler_tick(kiln_scheduler_t *ks, char *errstr, size_t errstr_size) {
    if (kiln_pg_check(ks->pg) && PQstatus(ks->pg) != CONNECTION_OK) {
        snprintf(errstr, errstr_size, "could not reach Postgres");
        return -1;
    }
    if (kiln_pg_exec(ks->pg, "BEGIN", errstr, errstr_size))
        return -1;
    int total = 0;
    for (int i = 0; i < KILN_N_MODALITIES; i++) {
        int m = kiln_scheduler_topic(ks, kiln_modalities[i], errstr, errstr_size);
        if (m < 0) {
            char e2[64];
            kiln_pg_exec(ks->pg, "ROLLBACK", e2, sizeof(e2));
            return -1;
        }
        total += m;
    }
    if (total && kiln_pg_exec(ks->pg, "NOTIFY kiln_assign", errstr, errstr_size)) {
        char e2[64];
        kiln_pg_exec(ks->pg, "ROLLBACK", e2, sizeof(e2));
        return -1;
    }
    if (kiln_pg_exec(ks->pg, "COMMIT", errstr, errstr_size))
        return -1;
    if (total) {
        ks->rebalances++;
        KILN_LOG_INFO("moved %d partition(s)", total);
    }
    return total;
}

kiln_err_t kiln_scheduler_run(kiln_scheduler_t *ks, volatile sig_atomic_t *run) {
    long long interval = kiln_conf_get_int(ks->conf, "scheduler.interval_ms");
    KILN_LOG_INFO("scheduler up: interval %lld ms, worker timeout %lld ms", interval,
                  kiln_conf_get_int(ks->conf, "scheduler.worker_timeout_ms"));
    while (*run) {
        char errstr[512];
        if (kiln_scheduler_tick(ks, errstr, sizeof(errstr)) < 0)
            KILN_LOG_WARN("planning round failed: %s", errstr);
        for (long long t = 0; t < interval && *run; t += 20)
            usleep(20000);
    }
    return KILN_OK;
}

void kiln_scheduler_destroy(kiln_scheduler_t *ks) {
    if (!ks)
        return;
    PQfinish(ks->pg);
    kiln_conf_destroy(ks->conf);
    free(ks);
}
