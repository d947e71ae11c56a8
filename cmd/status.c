/*
 * cmd/status.c - `kiln status`: processes, Postgres, broker, queues, jobs
 * and workers of a stack (embedded or remote).
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cli.h"
#include "cmd/stack.h"
#include "kiln/kafka.h"
#include "kiln/log.h"
#include "kiln/pg.h"

static void kiln_status_help(void) {
    printf("usage: kiln status [--watch SECONDS] [OPTIONS]\n\n"
           "Shows the embedded stack's processes, the broker, per-topic backlog (high\n"
           "watermark minus the offset committed in Postgres), jobs by status and the workers\n"
           "with their last heartbeat. Exit code 1 when Postgres or the broker is unreachable.\n\n"
           "  -W, --watch S         refresh every S seconds until interrupted\n");
    kiln_cli_common_help(stdout);
}

static void kiln_print_query(PGconn *pg, const char *title, const char *sql) {
    PGresult *r = PQexec(pg, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        printf("%s: (query failed: %s)\n", title, PQerrorMessage(pg));
        PQclear(r);
        return;
    }
    printf("%s\n", title);
    int nf = PQnfields(r);
    for (int f = 0; f < nf; f++)
        printf("  %-16s", PQfname(r, f));
    printf("\n");
    for (int i = 0; i < PQntuples(r); i++) {
        for (int f = 0; f < nf; f++)
            printf("  %-16s", PQgetvalue(r, i, f));
        printf("\n");
    }
    if (!PQntuples(r))
        printf("  (none)\n");
    PQclear(r);
}

static int kiln_status_once(const kiln_conf_t *conf) {
    int rc = 0;
    printf("stack.dir %s\n", kiln_conf_get(conf, "stack.dir"));
    const char *procs[] = {"broker", "scheduler"};
    for (int i = 0; i < 2; i++) {
        pid_t pid = kiln_stack_pid(conf, procs[i]);
        printf("  %-12s %s (pid %d)\n", procs[i], pid ? "running" : "not running", (int)pid);
    }
    char errstr[512], bs[1024];
    int embedded = 0;
    if (kiln_kafka_bootstrap(conf, bs, sizeof(bs), &embedded, errstr, sizeof(errstr))) {
        printf("  broker       %s\n", errstr);
        rc = 1;
    } else
        printf("  broker addr  %s%s\n", bs, embedded ? " (embedded mock cluster)" : "");
    PGconn *pg = kiln_pg_connect(conf, "kiln-status", errstr, sizeof(errstr));
    if (!pg) {
        printf("  postgres     %s\n", errstr);
        return 1;
    }
    printf("  postgres     %s:%s database %s\n", PQhost(pg), PQport(pg), PQdb(pg));
    /* backlog per topic: high watermark - committed offset */
    rd_kafka_t *rk = rc ? NULL : kiln_kafka_producer_new(conf, errstr, sizeof(errstr));
    for (int m = 0; rk && m < KILN_N_MODALITIES; m++) {
        char topic[256];
        kiln_kafka_topic(conf, kiln_modalities[m], "jobs", topic, sizeof(topic));
        int np = kiln_kafka_partitions(conf, kiln_modalities[m]);
        long long backlog = 0, hw = 0;
        int ok = 1;
        for (int p = 0; p < np; p++) {
            int64_t lo, hi;
            if (kiln_kafka_watermarks(rk, topic, p, &lo, &hi, 3000)) {
                ok = 0;
                break;
            }
            char ps[16];
            snprintf(ps, sizeof(ps), "%d", p);
            const char *q[2] = {topic, ps};
            PGresult *r = kiln_pg_execp(pg, "SELECT next_offset FROM offsets WHERE topic = $1 AND kpartition = $2::int",
                                        2, q, errstr, sizeof(errstr));
            long long off = r && PQntuples(r) ? atoll(PQgetvalue(r, 0, 0)) : 0;
            PQclear(r);
            hw += hi;
            backlog += hi > off ? hi - off : 0;
        }
        if (ok)
            printf("  %-26s %3d partitions  %8lld messages  backlog %lld\n", topic, np, hw, backlog);
        else
            printf("  %-26s (broker did not answer)\n", topic);
    }
    if (rk)
        rd_kafka_destroy(rk);
    kiln_print_query(pg, "jobs:",
                     "SELECT modality, status, count(*) AS jobs,"
                     " round(coalesce(sum(work_units), 0)::numeric / 3600, 4) AS work_hours"
                     " FROM jobs GROUP BY 1, 2 ORDER BY 1, 2");
    /* per modality: open backlog in work units, rate over the last minute, ETA */
    kiln_print_query(pg, "queues (work units = audio seconds for transcribe, characters for speak):",
                     "WITH open AS (SELECT modality, count(*) AS jobs, coalesce(sum(work_units), 0) AS units,"
                     "   max(EXTRACT(EPOCH FROM now() - enqueued_at)) AS oldest_s"
                     "   FROM jobs WHERE status IN ('queued', 'running') GROUP BY 1),"
                     " rate AS (SELECT modality, coalesce(sum(work_units), 0) / 60.0 AS units_s,"
                     "   count(*) / 60.0 AS jobs_s FROM jobs WHERE finished_at > now() - interval '60 s'"
                     "   GROUP BY 1)"
                     " SELECT m AS modality, coalesce(o.jobs, 0) AS backlog_jobs,"
                     " round(coalesce(o.units, 0)::numeric, 1) AS backlog_units,"
                     " round(coalesce(r.units_s, 0)::numeric, 2) AS rate_units_s,"
                     " round(coalesce(r.jobs_s, 0)::numeric, 2) AS rate_jobs_s,"
                     " CASE WHEN coalesce(o.units, 0) = 0 THEN '-' WHEN coalesce(r.units_s, 0) = 0 THEN '?'"
                     "   ELSE to_char(make_interval(secs => o.units / r.units_s), 'HH24:MI:SS') END AS eta,"
                     " coalesce(round(o.oldest_s::numeric, 1)::text, '-') AS oldest_s,"
                     " coalesce((SELECT desired->>m FROM scheduler_status), '-') AS desired_workers"
                     " FROM unnest(ARRAY['transcribe', 'speak', 'image']) m"
                     " LEFT JOIN open o ON o.modality = m LEFT JOIN rate r ON r.modality = m");
    kiln_print_query(pg, "workers:",
                     "SELECT w.id, w.status, w.engine AS model, array_to_string(w.modalities, ',')"
                     " AS modality, w.slots,"
                     " (SELECT count(*) FROM assignments a WHERE a.worker = w.id) AS partitions,"
                     " w.stats->>'jobs_done' AS done, w.stats->>'jobs_dead' AS dead,"
                     " CASE WHEN (w.stats->>'batches')::float8 > 0 THEN round(((w.stats->>'jobs_done')::numeric"
                     "   + (w.stats->>'jobs_dead')::numeric) / (w.stats->>'batches')::numeric, 1)::text"
                     "   ELSE '-' END AS avg_batch,"
                     " round(100 * coalesce((w.stats->>'busy_s')::numeric, 0) /"
                     "   greatest(EXTRACT(EPOCH FROM w.heartbeat - w.started_at)::numeric, 1), 1) AS busy_pct,"
                     " round(coalesce((w.stats->'throughput'->>(w.modalities[1]))::numeric, 0), 1) AS units_s,"
                     " round(EXTRACT(EPOCH FROM now() - w.heartbeat)::numeric, 1) AS heartbeat_age_s"
                     " FROM workers w ORDER BY w.id");
    PQfinish(pg);
    return rc;
}

int kiln_cmd_status(int argc, char **argv) {
    static struct option opts[] = {{"watch", required_argument, 0, 'W'}, KILN_CLI_LONGOPTS};
    kiln_cli_t cli = {0};
    int c, watch = 0;
    while ((c = getopt_long(argc, argv, "c:S:hW:", opts, NULL)) != -1) {
        if (kiln_cli_common_opt(&cli, c, optarg))
            continue;
        if (c == 'h') {
            kiln_status_help();
            return KILN_EXIT_OK;
        } else if (c == 'W')
            watch = atoi(optarg);
        else
            return KILN_EXIT_USAGE;
    }
    if (kiln_cli_load(&cli, "status"))
        return KILN_EXIT_USAGE;
    kiln_log_set_level(KILN_LOG_LVL_ERROR);
    int rc;
    for (;;) {
        if (watch)
            printf("\033[H\033[2J");
        rc = kiln_status_once(cli.conf);
        fflush(stdout);
        if (!watch)
            break;
        sleep((unsigned)watch);
    }
    kiln_cli_free(&cli);
    return rc ? KILN_EXIT_FAIL : KILN_EXIT_OK;
}
