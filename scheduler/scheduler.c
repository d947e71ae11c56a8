/*
 * scheduler/scheduler.c - the scheduler daemon (kiln/scheduler.h).
 *
 * Every scheduler.interval_ms: first, outside any transaction, the low and
 * high watermark of every job partition from the broker (skipped for the
 * round when it does not answer); then, in one transaction:
 *  1. make sure every partition of every job topic has an assignments row;
 *  2. snapshot the partitions: backlog in work units and jobs, oldest age,
 *     top priority and earliest deadline (from the open jobs rows, which every
 *     kiln producer writes before producing), owner and how long it has owned
 *     it. Messages without a row (high watermark - committed offset - open
 *     rows) and rows without work units are estimated at the partition's,
 *     else the modality's, mean work units per job; the arrival rate is an
 *     EWMA of watermark growth (new rows when the broker is unreachable)
 *     between rounds: kiln_sched_estimate(), docs/scheduler.md;
 *  3. snapshot the workers: liveness (status 'up' and a heartbeat younger
 *     than scheduler.worker_timeout_ms, where after our own gap - failed
 *     rounds, e.g. a Postgres outage - every heartbeat counts as no older
 *     than our first round back), slots, the modality each serves, measured
 *     throughput per modality (the EWMA each worker publishes in its
 *     heartbeat stats); each topic is planned over the live workers that
 *     serve its modality only (kiln_sched_modality_fleet);
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
#include <librdkafka/rdkafka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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
        *m_live, *m_orphans, *m_part_jobs, *m_rate;
    char *port_file;
    /* inputs kept between rounds (kiln_sched_estimate) */
    rd_kafka_t *rk;                          /* watermark queries; NULL: not (yet) connected */
    double kafka_retry_at;                   /* monotonic: next try to connect */
    kiln_sched_est_t *est[KILN_N_MODALITIES]; /* per partition */
    int n_est[KILN_N_MODALITIES];
    double mod_upj[KILN_N_MODALITIES];       /* remembered mean work units per job */
    int64_t *hw[KILN_N_MODALITIES], *lw[KILN_N_MODALITIES]; /* this round's watermarks, -1 */
    double round_dt;                         /* seconds since the previous successful round */
    char last_round[64];                     /* Postgres now() of the previous successful round */
    /* liveness: no verdict on evidence gathered while we could not reach Postgres */
    double last_ok;                          /* monotonic time of the last successful round */
    int failed;                              /* a round failed since the last success */
    char reachable_since[64];                /* Postgres now() of the first round after a gap */
};

static double kiln_scheduler_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

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
                                    "Queued jobs: open job rows, plus messages without a row (high watermark - committed).", "modality");
    ks->m_units = kiln_metrics_gauge(r, "kiln_scheduler_backlog_work_units",
                                     "Queued work units: declared by the jobs, estimated for jobs without (docs/scheduler.md).", "modality");
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
    ks->m_rate = kiln_metrics_gauge(r, "kiln_scheduler_arrival_rate_work_units",
                                    "Measured arrival rate (EWMA), work units per second.",
                                    "modality");
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
    ks->sp.rate_tau_s = kiln_conf_get_int(conf, "scheduler.rate_tau_ms") / 1000.0;
    for (int m = 0; m < KILN_SCHED_MODALITIES; m++)
        ks->sp.default_job_units[m] = (double)kiln_conf_get_int(conf, "scheduler.default_job_units");
    strcpy(ks->reachable_since, "-infinity");
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

/* Every worker that ever heartbeated, with liveness and throughput. A
 * worker is dead when its status is not 'up' or when it has been silent for
 * scheduler.worker_timeout_ms while we could reach Postgres: its heartbeat
 * counts as no older than ks->reachable_since, the first round after our own
 * gap (failed rounds, or none for longer than the timeout), since heartbeats
 * could not be written while Postgres was unreachable for us either. */
static int kiln_scheduler_fleet(kiln_scheduler_t *ks, kiln_fleet_t *f, char *errstr, size_t sz) {
    char tmo[32];
    snprintf(tmo, sizeof(tmo), "%lld", kiln_conf_get_int(ks->conf, "scheduler.worker_timeout_ms"));
    const char *p[2] = {tmo, ks->reachable_since};
    PGresult *r = kiln_pg_execp(
        ks->pg,
        "SELECT id, (status = 'up' AND greatest(heartbeat, $2::timestamptz)"
        "   > now() - ($1::bigint * interval '1 millisecond')),"
        " slots, coalesce((stats->'throughput'->>'transcribe')::float8, 0),"
        " coalesce((stats->'throughput'->>'speak')::float8, 0),"
        " coalesce((stats->'throughput'->>'image')::float8, 0), modalities::text"
        " FROM workers ORDER BY id",
        2, p, errstr, sz);
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

/* Reads the low and high watermark of every partition of modality \p m's
 * job topic into ks->lw[m] / ks->hw[m] (-1 where unknown). Runs before the
 * planning transaction; gives up for the round at the first broker error (a
 * round must not wait on an unreachable broker once per partition). */
static void kiln_scheduler_watermarks(kiln_scheduler_t *ks, int m, int np, int *kafka_ok) {
    if (np > ks->n_est[m]) {
        kiln_sched_est_t *e = realloc(ks->est[m], np * sizeof(*e));
        int64_t *h = realloc(ks->hw[m], np * sizeof(*h));
        if (h)
            ks->hw[m] = h;
        int64_t *l = h ? realloc(ks->lw[m], np * sizeof(*l)) : NULL;
        if (l)
            ks->lw[m] = l;
        if (!e || !h || !l) {
            if (e)
                ks->est[m] = e;
            return;
        }
        memset(e + ks->n_est[m], 0, (np - ks->n_est[m]) * sizeof(*e));
        ks->est[m] = e;
        ks->n_est[m] = np;
    }
    char topic[256];
    kiln_kafka_topic(ks->conf, kiln_modalities[m], "jobs", topic, sizeof(topic));
    for (int k = 0; k < np; k++) {
        int64_t lo = -1, hi = -1;
        if (*kafka_ok && ks->rk) {
            rd_kafka_resp_err_t err = kiln_kafka_watermarks(ks->rk, topic, k, &lo, &hi, 1000);
            if (err) {
                KILN_LOG_DEBUG("could not read the watermarks of %s [%d]: %s", topic, k,
                               rd_kafka_err2str(err));
                *kafka_ok = 0;
                lo = hi = -1;
            }
        }
        ks->lw[m][k] = lo;
        ks->hw[m][k] = hi;
    }
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
    /* partitions: owner, committed offset, the open job rows (work units of
     * those that declare them) and the rows enqueued since the last round */
    const char *p4[4] = {topic, np_s, modality, ks->last_round[0] ? ks->last_round : "infinity"};
    r = kiln_pg_execp(
        ks->pg,
        "SELECT a.kpartition, coalesce(a.worker, ''),"
        " EXTRACT(EPOCH FROM now() - a.assigned_at),"
        " coalesce(b.units, 0), coalesce(b.jobs, 0), coalesce(b.max_units, 0),"
        " coalesce(b.age, 0), coalesce(b.prio, 0),"
        " coalesce(b.deadline_in, 'Infinity'::float8),"
        " coalesce(b.known, 0), coalesce(o.next_offset, -1),"
        " coalesce(c.jobs, 0), coalesce(c.known, 0), coalesce(c.units, 0)"
        " FROM assignments a LEFT JOIN ("
        "   SELECT kpartition, sum(coalesce(work_units, 0)) AS units, count(*) AS jobs,"
        "     count(work_units) AS known, max(coalesce(work_units, 0)) AS max_units,"
        "     EXTRACT(EPOCH FROM now() - min(enqueued_at)) AS age, max(priority) AS prio,"
        "     EXTRACT(EPOCH FROM min(deadline) - now()) AS deadline_in"
        "   FROM jobs WHERE status IN ('queued', 'running') AND topic = $1 AND modality = $3"
        "   GROUP BY kpartition) b USING (kpartition)"
        " LEFT JOIN offsets o ON o.topic = a.topic AND o.kpartition = a.kpartition"
        " LEFT JOIN ("
        "   SELECT kpartition, count(*) AS jobs, count(work_units) AS known,"
        "     sum(coalesce(work_units, 0)) AS units"
        "   FROM jobs WHERE enqueued_at > $4::timestamptz AND topic = $1 AND modality = $3"
        "   GROUP BY kpartition) c ON c.kpartition = a.kpartition"
        " WHERE a.topic = $1 AND a.kpartition < $2::int ORDER BY a.kpartition FOR UPDATE OF a",
        4, p4, errstr, errstr_size);
    if (!r)
        return -1;
    int n = PQntuples(r);
    kiln_sched_partition_t *parts = calloc(n + 1, sizeof(*parts));
    int *assign = calloc(n + 1, sizeof(int));
    /* only workers of this modality take part */
    kiln_sched_worker_t *ws = calloc(f->n + 1, sizeof(*ws));
    kiln_sched_modality_fleet(f->w, f->n, m, ws);
    /* the modality's mean work units per known job (for jobs without any) */
    double mu = 0, mn = 0;
    for (int k = 0; k < n; k++) {
        mu += atof(PQgetvalue(r, k, 3)) + atof(PQgetvalue(r, k, 13));
        mn += atof(PQgetvalue(r, k, 9)) + atof(PQgetvalue(r, k, 12));
    }
    if (mn > 0 && mu > 0)
        ks->mod_upj[m] = ks->mod_upj[m] > 0 ? 0.7 * ks->mod_upj[m] + 0.3 * (mu / mn) : mu / mn;
    double rate = 0;
    for (int k = 0; k < n; k++) {
        kiln_sched_partition_t *pt = &parts[k];
        pt->modality = m;
        pt->partition = atoi(PQgetvalue(r, k, 0));
        pt->owner = -1;
        for (int i = 0; i < f->n; i++)
            if (!strcmp(f->ids[i], PQgetvalue(r, k, 1)))
                pt->owner = i;
        pt->owned_for_s = atof(PQgetvalue(r, k, 2));
        pt->oldest_age_s = atof(PQgetvalue(r, k, 6));
        pt->max_priority = atoi(PQgetvalue(r, k, 7));
        const char *dl = PQgetvalue(r, k, 8);
        pt->deadline_s = !strcmp(dl, "Infinity") ? KILN_SCHED_NO_DEADLINE : atof(dl);
        kiln_sched_obs_t ob = {
            .high_watermark = -1,
            .committed = atoll(PQgetvalue(r, k, 10)),
            .rows = atoll(PQgetvalue(r, k, 4)),
            .rows_known = atoll(PQgetvalue(r, k, 9)),
            .units_known = atof(PQgetvalue(r, k, 3)),
            .max_units_known = atof(PQgetvalue(r, k, 5)),
            .arrived_rows = atoll(PQgetvalue(r, k, 11)),
            .arrived_rows_known = atoll(PQgetvalue(r, k, 12)),
            .arrived_units_known = atof(PQgetvalue(r, k, 13)),
        };
        int kp = pt->partition;
        if (kp >= 0 && kp < ks->n_est[m]) {
            ob.high_watermark = ks->hw[m][kp];
            if (ob.committed < ks->lw[m][kp]) /* nothing consumed yet, or retention */
                ob.committed = ks->lw[m][kp];
            kiln_sched_estimate(&ks->sp, &ks->est[m][kp], &ob, ks->mod_upj[m], ks->round_dt, pt);
        } else { /* no bookkeeping (out of memory): the rows as they are */
            kiln_sched_est_t e0 = {0};
            kiln_sched_estimate(&ks->sp, &e0, &ob, ks->mod_upj[m], 0, pt);
        }
        rate += pt->rate_units_s;
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
        kiln_metric_set(ks->m_rate, KILN_LABELS(modality), rate);
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

/* Broker side of the inputs, outside the transaction: connects when needed
 * (at most every 10 s) and reads every job topic's watermarks. */
static void kiln_scheduler_kafka(kiln_scheduler_t *ks, double now) {
    if (!ks->rk && now >= ks->kafka_retry_at) {
        char e[256];
        ks->rk = kiln_kafka_consumer_new(ks->conf, "kiln-scheduler", e, sizeof(e));
        if (!ks->rk) {
            KILN_LOG_DEBUG("no watermarks this round: %s", e);
            ks->kafka_retry_at = now + 10;
        }
    }
    int ok = ks->rk != NULL;
    for (int m = 0; m < KILN_N_MODALITIES; m++)
        kiln_scheduler_watermarks(ks, m, kiln_kafka_partitions(ks->conf, kiln_modalities[m]), &ok);
    if (!ok && ks->rk) { /* reconnect later: the broker may have moved (embedded: new port) */
        rd_kafka_destroy(ks->rk);
        ks->rk = NULL;
        ks->kafka_retry_at = now + 10;
    }
}

/* A planning round on the far side of a gap (the first, one after failed
 * rounds, or none for longer than the worker timeout): heartbeats may be
 * stale because Postgres was unreachable, so every worker gets the timeout
 * again from now (kiln_scheduler_fleet). */
static int kiln_scheduler_after_gap(kiln_scheduler_t *ks, double now, char *errstr, size_t sz) {
    double tmo = kiln_conf_get_int(ks->conf, "scheduler.worker_timeout_ms") / 1000.0;
    if (!(ks->failed || ks->last_ok == 0 || now - ks->last_ok > tmo))
        return 0;
    PGresult *r = kiln_pg_execp(ks->pg, "SELECT now()::text", 0, NULL, errstr, sz);
    if (!r)
        return -1;
    snprintf(ks->reachable_since, sizeof(ks->reachable_since), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    if (ks->last_ok > 0)
        KILN_LOG_INFO("first planning round after a gap of %.1f s: workers get %.1f s to "
                      "heartbeat before they are declared dead",
                      now - ks->last_ok, tmo);
    return 0;
}

int kiln_scheduler_tick(kiln_scheduler_t *ks, char *errstr, size_t errstr_size) {
    double now = kiln_scheduler_now();
    if (kiln_pg_check(ks->pg) && PQstatus(ks->pg) != CONNECTION_OK) {
        snprintf(errstr, errstr_size, "could not reach Postgres");
        ks->failed = 1;
        return -1;
    }
    kiln_scheduler_kafka(ks, now);
    ks->round_dt = ks->last_ok > 0 ? now - ks->last_ok : 0;
    kiln_fleet_t fleet = {0};
    char round_ts[64] = "";
    if (kiln_pg_exec(ks->pg, "BEGIN", errstr, errstr_size)) {
        ks->failed = 1;
        return -1;
    }
    if (kiln_scheduler_after_gap(ks, now, errstr, errstr_size))
        goto fail;
    {
        PGresult *tr = kiln_pg_execp(ks->pg, "SELECT now()::text", 0, NULL, errstr, errstr_size);
        if (!tr)
            goto fail;
        snprintf(round_ts, sizeof(round_ts), "%s", PQgetvalue(tr, 0, 0));
        PQclear(tr);
    }
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
        ks->failed = 1;
        return -1;
    }
    kiln_fleet_free(&fleet);
    ks->last_ok = now;
    ks->failed = 0;
    snprintf(ks->last_round, sizeof(ks->last_round), "%s", round_ts);
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
    ks->failed = 1;
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
    if (ks->rk)
        rd_kafka_destroy(ks->rk);
    for (int m = 0; m < KILN_N_MODALITIES; m++) {
        free(ks->est[m]);
        free(ks->hw[m]);
        free(ks->lw[m]);
    }
    kiln_conf_destroy(ks->conf);
    free(ks);
}
