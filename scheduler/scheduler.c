/*
 * scheduler/scheduler.c - the scheduler daemon (kiln/scheduler.h).
 *
 * Every scheduler.interval_ms, in one transaction:
 *  1. make sure every partition of every job topic has an assignments row;
 *  2. snapshot the partitions: backlog in work units and jobs, oldest age,
 *     top priority and earliest deadline (from the open jobs rows, which every
 *     kiln producer writes before producing), owner and how long it has owned it;
 *  3. snapshot the workers: liveness (status 'up' and a heartbeat younger
 *     than scheduler.worker_timeout_ms), slots, measured throughput per
 *     modality (the EWMA each worker publishes in its heartbeat stats);
 *  4. plan: scheduler.policy "kiln" calls kiln_sched_plan() (scheduler/policy.c:
 *     minimise expected drain time, count model swaps, hysteresis, dwell time,
 *     deadlines); "static" keeps a balanced, sticky round-robin;
 *  5. write each owner change as epoch + 1 (fencing the old owner's commits),
 *     NOTIFY kiln_assign, and record desired workers per modality
 *     (kiln_sched_desired_workers) in scheduler_status.
 * The same figures are served on GET /metrics (scheduler.metrics_port, 0: a
 * free port written to <stack.dir>/run/scheduler.metrics; docs/monitoring.md).
 */
#include "kiln/scheduler.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kiln/kafka.h"
#include "kiln/log.h"
#include "kiln/metrics.h"
#include "kiln/pg.h"
#include "kiln/sched.h"

struct kiln_scheduler_s {
    kiln_conf_t *conf;
    PGconn *pg;
    int use_policy;
    kiln_sched_params_t sp;
    long long rebalances;
    kiln_metrics_t *mreg;
    kiln_metric_t *m_desired, *m_rebalances, *m_moved, *m_errors, *m_jobs, *m_units, *m_age,
        *m_live, *m_orphans, *m_part_jobs;
    char *port_file;
};

/* Registers the scheduler's metrics and starts its /metrics server.
 * @returns 0, or -1 with errstr. */
static int kiln_scheduler_metrics_init(kiln_scheduler_t *ks, char *errstr, size_t errstr_size) {
    kiln_metrics_t *r = ks->mreg = kiln_metrics_new();
    kiln_metric_set(kiln_metrics_gauge(r, "kiln_scheduler_up", "1 while the scheduler runs.", NULL),
                    NULL, 1);
    ks->m_desired = kiln_metrics_gauge(
        r, "kiln_scheduler_desired_workers",
        "Workers each modality needs to drain its backlog within scheduler.target_drain_ms "
        "(the autoscaling signal).",
        "modality");
    ks->m_rebalances = kiln_metrics_counter(r, "kiln_scheduler_rebalances_total",
                                            "Planning rounds that moved at least one partition.",
                                            NULL);
    ks->m_moved = kiln_metrics_counter(r, "kiln_scheduler_moved_partitions_total",
                                       "Partitions given to a new owner (epoch + 1).", NULL);
    ks->m_errors = kiln_metrics_counter(r, "kiln_scheduler_tick_errors_total",
                                        "Planning rounds that failed (rolled back).", NULL);
    ks->m_jobs = kiln_metrics_gauge(r, "kiln_scheduler_queued_jobs",
                                    "Open jobs (queued or running) in Postgres.", "modality");
    ks->m_units = kiln_metrics_gauge(r, "kiln_scheduler_backlog_work_units",
                                     "Work units of the open jobs in Postgres.", "modality");
    ks->m_age = kiln_metrics_gauge(r, "kiln_scheduler_oldest_job_age_seconds",
                                   "Age of the oldest open job.", "modality");
    ks->m_live = kiln_metrics_gauge(r, "kiln_scheduler_live_workers",
                                    "Workers of this modality with a fresh heartbeat.", "modality");
    ks->m_orphans = kiln_metrics_gauge(r, "kiln_scheduler_unowned_partitions",
                                       "Partitions without a live owner after planning.",
                                       "modality");
    ks->m_part_jobs = kiln_metrics_gauge(r, "kiln_scheduler_partition_queued_jobs",
                                         "Open jobs per partition, owned or not.",
                                         "modality,partition");
    return kiln_metrics_serve_conf(r, ks->conf, "scheduler", "scheduler", &ks->port_file, errstr,
                                   errstr_size);
}

kiln_scheduler_t *kiln_scheduler_new(const kiln_conf_t *conf, char *errstr, size_t errstr_size) {
    const char *policy = kiln_conf_get(conf, "scheduler.policy");
    if (strcmp(policy, "kiln") && strcmp(policy, "static")) {
        snprintf(errstr, errstr_size, "unknown scheduler.policy \"%s\" (kiln or static)", policy);
        return NULL;
    }
    kiln_scheduler_t *ks = calloc(1, sizeof(*ks));
    if (!ks)
        return NULL;
    ks->conf = kiln_conf_dup(conf);
    ks->use_policy = !strcmp(policy, "kiln");
    ks->sp = kiln_sched_default_params();
    ks->sp.hysteresis = kiln_conf_get_int(conf, "scheduler.hysteresis_pct") / 100.0;
    ks->sp.min_dwell_s = kiln_conf_get_int(conf, "scheduler.min_dwell_ms") / 1000.0;
    ks->sp.move_cost_s = kiln_conf_get_int(conf, "scheduler.move_cost_ms") / 1000.0;
    ks->sp.target_drain_s = kiln_conf_get_int(conf, "scheduler.target_drain_ms") / 1000.0;
    for (int m = 0; m < KILN_SCHED_MODALITIES; m++) {
        ks->sp.default_throughput[m] = (double)kiln_conf_get_int(conf, "scheduler.default_throughput");
        ks->sp.swap_cost_s[m] = 0; /* workers keep one engine loaded per modality */
    }
    ks->sp.model_slice_s = 0;
    ks->pg = kiln_pg_connect(conf, "kiln-scheduler", errstr, errstr_size);
    if (!ks->pg || kiln_scheduler_metrics_init(ks, errstr, errstr_size)) {
        kiln_scheduler_destroy(ks);
        return NULL;
    }
    return ks;
}

typedef struct {
    char **ids;
    kiln_sched_worker_t *w;
    int n;
} kiln_fleet_t;

static void kiln_fleet_free(kiln_fleet_t *f) {
    for (int i = 0; i < f->n; i++)
        free(f->ids[i]);
    free(f->ids);
    free(f->w);
    memset(f, 0, sizeof(*f));
}

/* Every worker that ever heartbeated, with liveness and throughput. */
static int kiln_scheduler_fleet(kiln_scheduler_t *ks, kiln_fleet_t *f, char *errstr, size_t sz) {
    char tmo[32];
    snprintf(tmo, sizeof(tmo), "%lld", kiln_conf_get_int(ks->conf, "scheduler.worker_timeout_ms"));
    const char *p[1] = {tmo};
    PGresult *r = kiln_pg_execp(
        ks->pg,
        "SELECT id, (status = 'up' AND heartbeat > now() - ($1::bigint * interval '1 millisecond')),"
        " slots, coalesce((stats->'throughput'->>'transcribe')::float8, 0),"
        " coalesce((stats->'throughput'->>'speak')::float8, 0),"
        " coalesce((stats->'throughput'->>'image')::float8, 0), modalities::text"
        " FROM workers ORDER BY id",
        1, p, errstr, sz);
    if (!r)
        return -1;
    f->n = PQntuples(r);
    f->ids = calloc(f->n + 1, sizeof(char *));
    f->w = calloc(f->n + 1, sizeof(kiln_sched_worker_t));
    for (int i = 0; i < f->n; i++) {
        f->ids[i] = strdup(PQgetvalue(r, i, 0));
        f->w[i].id = f->ids[i];
        f->w[i].alive = PQgetvalue(r, i, 1)[0] == 't';
        f->w[i].slots = atoi(PQgetvalue(r, i, 2));
        const char *mods = PQgetvalue(r, i, 6);
        for (int m = 0; m < KILN_SCHED_MODALITIES; m++) {
            f->w[i].throughput[m] = atof(PQgetvalue(r, i, 3 + m));
            f->w[i].resident[m] = strstr(mods, kiln_sched_modality_name(m)) != NULL;
        }
    }
    PQclear(r);
    return 0;
}

/* Balanced, sticky placement of the partitions selected by \p mask (all when
 * NULL): each keeps its current owner while that owner is alive and under
 * its fair share; the others go to the live worker with the fewest. The
 * fair share counts the selected partitions only. */
static void kiln_balance_sticky(const kiln_sched_worker_t *ws, int nw,
                                const kiln_sched_partition_t *parts, int n, int *assign,
                                const int *mask) {
    int nlive = 0, nsel = 0;
    for (int i = 0; i < nw; i++)
        nlive += ws[i].alive;
    for (int k = 0; k < n; k++)
        nsel += !mask || mask[k];
    if (!nlive || !nsel)
        return;
    int *load = calloc(nw + 1, sizeof(int));
    int fair = (nsel + nlive - 1) / nlive;
    for (int k = 0; k < n; k++) {
        if (mask && !mask[k])
            continue;
        int o = parts[k].owner;
        assign[k] = (o >= 0 && ws[o].alive && load[o] < fair) ? o : -1;
        if (assign[k] >= 0)
            load[o]++;
    }
    for (int k = 0; k < n; k++) {
        if ((mask && !mask[k]) || assign[k] >= 0)
            continue;
        int best = -1;
        for (int i = 0; i < nw; i++)
            if (ws[i].alive && (best < 0 || load[i] < load[best]))
                best = i;
        assign[k] = best;
        load[best]++;
    }
    free(load);
}

/* Rebalances one modality's topic inside the caller's transaction.
 * @returns partitions moved, or -1. */
static int kiln_scheduler_topic(kiln_scheduler_t *ks, int m, const kiln_fleet_t *f,
                                json_t *desired, json_t *plan, char *errstr, size_t errstr_size) {
    const char *modality = kiln_modalities[m];
    char topic[256], np_s[16];
    kiln_kafka_topic(ks->conf, modality, "jobs", topic, sizeof(topic));
    int np = kiln_kafka_partitions(ks->conf, modality);
    snprintf(np_s, sizeof(np_s), "%d", np);
    const char *p[3] = {topic, np_s, modality};
    PGresult *r = kiln_pg_execp(ks->pg,
                                "INSERT INTO assignments (topic, kpartition)"
                                " SELECT $1, g FROM generate_series(0, $2::int - 1) g"
                                " ON CONFLICT DO NOTHING",
                                2, p, errstr, errstr_size);
    if (!r)
        return -1;
    PQclear(r);
    /* partitions: owner + backlog from the open job rows */
    r = kiln_pg_execp(
        ks->pg,
        "SELECT a.kpartition, coalesce(a.worker, ''),"
        " EXTRACT(EPOCH FROM now() - a.assigned_at),"
        " coalesce(b.units, 0), coalesce(b.jobs, 0), coalesce(b.max_units, 0),"
        " coalesce(b.age, 0), coalesce(b.prio, 0),"
        " coalesce(b.deadline_in, 'Infinity'::float8)"
        " FROM assignments a LEFT JOIN ("
        "   SELECT kpartition, sum(coalesce(work_units, 0)) AS units, count(*) AS jobs,"
        "     max(coalesce(work_units, 0)) AS max_units,"
        "     EXTRACT(EPOCH FROM now() - min(enqueued_at)) AS age, max(priority) AS prio,"
        "     EXTRACT(EPOCH FROM min(deadline) - now()) AS deadline_in"
        "   FROM jobs WHERE status IN ('queued', 'running') AND topic = $1 AND modality = $3"
        "   GROUP BY kpartition) b USING (kpartition)"
        " WHERE a.topic = $1 AND a.kpartition < $2::int ORDER BY a.kpartition FOR UPDATE OF a",
        3, p, errstr, errstr_size);
    if (!r)
        return -1;
    int n = PQntuples(r);
    kiln_sched_partition_t *parts = calloc(n + 1, sizeof(*parts));
    int *assign = calloc(n + 1, sizeof(int));
    /* only workers of this modality take part */
    kiln_sched_worker_t *ws = calloc(f->n + 1, sizeof(*ws));
    for (int i = 0; i < f->n; i++) {
        ws[i] = f->w[i];
        if (!ws[i].resident[m])
            ws[i].alive = 0;
    }
    for (int k = 0; k < n; k++) {
        kiln_sched_partition_t *pt = &parts[k];
        pt->modality = m;
        pt->partition = atoi(PQgetvalue(r, k, 0));
        pt->owner = -1;
        for (int i = 0; i < f->n; i++)
            if (!strcmp(f->ids[i], PQgetvalue(r, k, 1)))
                pt->owner = i;
        pt->owned_for_s = atof(PQgetvalue(r, k, 2));
        pt->backlog_units = atof(PQgetvalue(r, k, 3));
        pt->queued_jobs = atoll(PQgetvalue(r, k, 4));
        pt->max_job_units = atof(PQgetvalue(r, k, 5));
        pt->oldest_age_s = atof(PQgetvalue(r, k, 6));
        pt->max_priority = atoi(PQgetvalue(r, k, 7));
        const char *dl = PQgetvalue(r, k, 8);
        pt->deadline_s = !strcmp(dl, "Infinity") ? KILN_SCHED_NO_DEADLINE : atof(dl);
    }
    int moved = 0, nlive = 0;
    for (int i = 0; i < f->n; i++)
        nlive += ws[i].alive;
    kiln_sched_stats_t st;
    memset(&st, 0, sizeof(st));
    if (nlive == 0) {
        for (int k = 0; k < n; k++)
            assign[k] = parts[k].owner; /* nobody to give partitions to */
    } else if (ks->use_policy) {
        if (kiln_sched_plan(&ks->sp, parts, n, ws, f->n, assign, &st) != KILN_OK)
            for (int k = 0; k < n; k++)
                assign[k] = parts[k].owner;
    } else
        kiln_balance_sticky(ws, f->n, parts, n, assign, NULL);
    if (nlive && ks->use_policy) {
        /* partitions with nothing queued cost nothing to move: spread them
         * evenly so that new work lands on every worker (a worker that just
         * joined gets its share at once) */
        int *idle = calloc(n + 1, sizeof(int));
        for (int k = 0; k < n; k++)
            idle[k] = parts[k].queued_jobs == 0 && parts[k].backlog_units <= 0;
        kiln_balance_sticky(ws, f->n, parts, n, assign, idle);
        free(idle);
    }
    int want[KILN_SCHED_MODALITIES] = {0};
    if (kiln_sched_desired_workers(&ks->sp, parts, n, ws, f->n, want) == KILN_OK) {
        json_object_set_new(desired, modality, json_integer(want[m]));
        kiln_metric_set(ks->m_desired, KILN_LABELS(modality), want[m]);
    }
    {
        double jobs = 0, units = 0, age = 0, orphans = 0;
        kiln_metrics_lock(ks->mreg);
        for (int k = 0; k < n; k++) {
            char ps[16];
            snprintf(ps, sizeof(ps), "%d", parts[k].partition);
            kiln_metric_set(ks->m_part_jobs, KILN_LABELS(modality, ps), (double)parts[k].queued_jobs);
            jobs += (double)parts[k].queued_jobs;
            units += parts[k].backlog_units;
            age = parts[k].oldest_age_s > age ? parts[k].oldest_age_s : age;
            orphans += assign[k] < 0 || !ws[assign[k]].alive;
        }
        kiln_metric_set(ks->m_jobs, KILN_LABELS(modality), jobs);
        kiln_metric_set(ks->m_units, KILN_LABELS(modality), units);
        kiln_metric_set(ks->m_age, KILN_LABELS(modality), age);
        kiln_metric_set(ks->m_live, KILN_LABELS(modality), nlive);
        kiln_metric_set(ks->m_orphans, KILN_LABELS(modality), orphans);
        kiln_metrics_unlock(ks->mreg);
    }
    for (int k = 0; k < n; k++) {
        if (assign[k] < 0 || assign[k] == parts[k].owner)
            continue;
        char ps[16];
        snprintf(ps, sizeof(ps), "%d", parts[k].partition);
        const char *u[3] = {topic, ps, f->ids[assign[k]]};
        PGresult *ur = kiln_pg_execp(ks->pg,
                                     "UPDATE assignments SET worker = $3, epoch = epoch + 1,"
                                     " assigned_at = now() WHERE topic = $1 AND kpartition = $2::int",
                                     3, u, errstr, errstr_size);
        if (!ur) {
            moved = -1;
            break;
        }
        PQclear(ur);
        KILN_LOG_DEBUG("%s [%d] -> %s", topic, parts[k].partition, f->ids[assign[k]]);
        moved++;
    }
    if (moved > 0 || st.held_by_hysteresis) {
        json_t *pl = json_object();
        json_object_set_new(pl, "drain_current_s", json_real(st.drain_current_s));
        json_object_set_new(pl, "drain_planned_s", json_real(st.drain_planned_s));
        json_object_set_new(pl, "moved", json_integer(moved));
        json_object_set_new(pl, "held_by_hysteresis", json_boolean(st.held_by_hysteresis));
        json_object_set_new(plan, modality, pl);
    }
    PQclear(r);
    free(parts);
    free(assign);
    free(ws);
    return moved;
}

int kiln_scheduler_tick(kiln_scheduler_t *ks, char *errstr, size_t errstr_size) {
    if (kiln_pg_check(ks->pg) && PQstatus(ks->pg) != CONNECTION_OK) {
        snprintf(errstr, errstr_size, "could not reach Postgres");
        return -1;
    }
    kiln_fleet_t fleet = {0};
    if (kiln_pg_exec(ks->pg, "BEGIN", errstr, errstr_size))
        return -1;
    if (kiln_scheduler_fleet(ks, &fleet, errstr, errstr_size))
        goto fail;
    json_t *desired = json_object(), *plan = json_object();
    int total = 0;
    for (int m = 0; m < KILN_N_MODALITIES; m++) {
        int moved = kiln_scheduler_topic(ks, m, &fleet, desired, plan, errstr, errstr_size);
        if (moved < 0) {
            json_decref(desired);
            json_decref(plan);
            goto fail;
        }
        total += moved;
    }
    char *dj = json_dumps(desired, JSON_COMPACT), *pj = json_dumps(plan, JSON_COMPACT);
    json_decref(desired);
    json_decref(plan);
    char moved_s[16], reb[16];
    snprintf(moved_s, sizeof(moved_s), "%d", total);
    snprintf(reb, sizeof(reb), "%d", total ? 1 : 0);
    const char *p[5] = {kiln_conf_get(ks->conf, "scheduler.policy"), dj, pj, moved_s, reb};
    PGresult *r = kiln_pg_execp(
        ks->pg,
        "INSERT INTO scheduler_status AS s (id, policy, desired, last_plan, moved_total, rebalances)"
        " VALUES (1, $1, $2::jsonb, $3::jsonb, $4::bigint, $5::bigint)"
        " ON CONFLICT (id) DO UPDATE SET policy = $1, desired = $2::jsonb, updated_at = now(),"
        "  last_plan = CASE WHEN $4::bigint > 0 THEN $3::jsonb ELSE s.last_plan END,"
        "  moved_total = s.moved_total + $4::bigint, rebalances = s.rebalances + $5::bigint",
        5, p, errstr, errstr_size);
    free(dj);
    free(pj);
    if (!r)
        goto fail;
    PQclear(r);
    if (total && kiln_pg_exec(ks->pg, "NOTIFY kiln_assign", errstr, errstr_size))
        goto fail;
    if (kiln_pg_exec(ks->pg, "COMMIT", errstr, errstr_size)) {
        kiln_fleet_free(&fleet);
        return -1;
    }
    kiln_fleet_free(&fleet);
    if (total) {
        ks->rebalances++;
        kiln_metric_add(ks->m_rebalances, NULL, 1);
        kiln_metric_add(ks->m_moved, NULL, total);
        KILN_LOG_INFO("moved %d partition(s)", total);
    }
    return total;
fail: {
    char e2[64];
    kiln_pg_exec(ks->pg, "ROLLBACK", e2, sizeof(e2));
    kiln_fleet_free(&fleet);
    return -1;
}
}

kiln_err_t kiln_scheduler_run(kiln_scheduler_t *ks, volatile sig_atomic_t *run) {
    long long interval = kiln_conf_get_int(ks->conf, "scheduler.interval_ms");
    KILN_LOG_INFO("scheduler up: policy %s, interval %lld ms, worker timeout %lld ms",
                  kiln_conf_get(ks->conf, "scheduler.policy"), interval,
                  kiln_conf_get_int(ks->conf, "scheduler.worker_timeout_ms"));
    while (*run) {
        char errstr[512];
        if (kiln_scheduler_tick(ks, errstr, sizeof(errstr)) < 0) {
            kiln_metric_add(ks->m_errors, NULL, 1);
            KILN_LOG_WARN("planning round failed: %s", errstr);
        }
        for (long long t = 0; t < interval && *run; t += 20)
            usleep(20000);
    }
    return KILN_OK;
}

void kiln_scheduler_destroy(kiln_scheduler_t *ks) {
    if (!ks)
        return;
    kiln_metrics_destroy(ks->mreg); /* stops the /metrics server first */
    if (ks->port_file) {
        unlink(ks->port_file);
        free(ks->port_file);
    }
    PQfinish(ks->pg);
    kiln_conf_destroy(ks->conf);
    free(ks);
}
