/*
 * workers/worker.c - the worker daemon loop: heartbeats, assignment from
 * Postgres (LISTEN kiln_assign + periodic re-read), manual partition
 * assignment with offsets from Postgres, micro-batching (max_batch /
 * max_queue_delay_us / memory budget), broker loss detection, drain on stop.
 * Batch processing and the exactly-once commit live in workers/batch.c
 * (speak steps: workers/batch_speak.c). The worker's modality is its engine's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

#include "kiln/kafka.h"
#include "kiln/log.h"
#include "kiln/pg.h"
#include "workers/worker_int.h"

double kiln_worker_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

void kiln_worker_heartbeat(kiln_worker_t *kw, const char *status) {
    char host[256] = "", pid[16], slots[16], stats[512], errstr[256], mods[32];
    gethostname(host, sizeof(host) - 1);
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    snprintf(slots, sizeof(slots), "%lld", kiln_conf_get_int(kw->conf, "worker.slots"));
    snprintf(stats, sizeof(stats),
             "{\"jobs_done\":%lld,\"jobs_dead\":%lld,\"jobs_skipped\":%lld,\"batches\":%lld,"
             "\"fenced\":%lld,\"retries\":%lld,\"lost_messages\":%lld,\"busy_s\":%.3f,"
             "\"partitions\":%d,\"throughput\":{\"%s\":%.3f}}",
             kw->stats.jobs_done, kw->stats.jobs_dead, kw->stats.jobs_skipped, kw->stats.batches,
             kw->stats.fenced, kw->stats.retries, kw->stats.lost_messages, kw->stats.busy_s,
             kw->n_own, kw->modality, kw->stats.throughput);
    snprintf(mods, sizeof(mods), "{%s}", kw->modality);
    const char *p[9] = {kw->id, host, pid, kiln_conf_get(kw->conf, "worker.gpu"), slots,
                        kiln_engine_name(kw->engine), status, stats, mods};
    kiln_pg_check(kw->pg);
    PGresult *r = kiln_pg_execp(
        kw->pg,
        "INSERT INTO workers (id, host, pid, gpu, slots, engine, modalities, status, stats, heartbeat)"
        " VALUES ($1, $2, $3::int, $4, $5::int, $6, $9::text[], $7, $8::jsonb, now())"
        " ON CONFLICT (id) DO UPDATE SET host = $2, pid = $3::int, gpu = $4, slots = $5::int,"
        "  modalities = $9::text[],"
        "  started_at = CASE WHEN workers.pid IS DISTINCT FROM $3::int OR workers.host <> $2"
        "   THEN now() ELSE workers.started_at END,"
        "  engine = $6, status = $7, stats = $8::jsonb, heartbeat = now()",
        9, p, errstr, sizeof(errstr));
    if (!r)
        KILN_LOG_WARN("could not write heartbeat: %s", errstr);
    PQclear(r);
    kw->last_hb = kiln_worker_now();
}

int kiln_worker_find_own(kiln_worker_t *kw, const char *topic, int partition) {
    for (int i = 0; i < kw->n_own; i++)
        if (kw->own[i].partition == partition && !strcmp(kw->own[i].topic, topic))
            return i;
    return -1;
}

/* (Re)creates the consumer and producer against the current bootstrap. */
static int kiln_worker_connect_kafka(kiln_worker_t *kw, char *errstr, size_t errstr_size) {
    if (kw->consumer) {
        rd_kafka_consumer_close(kw->consumer);
        rd_kafka_destroy(kw->consumer);
        kw->consumer = NULL;
    }
    if (kw->producer) {
        rd_kafka_flush(kw->producer, 5000);
        rd_kafka_destroy(kw->producer);
        kw->producer = NULL;
    }
    if (kiln_kafka_bootstrap(kw->conf, kw->bootstrap, sizeof(kw->bootstrap), &kw->embedded,
                             errstr, errstr_size))
        return -1;
    kw->consumer = kiln_kafka_consumer_new(kw->conf, kw->id, errstr, errstr_size);
    if (!kw->consumer)
        return -1;
    kw->producer = kiln_kafka_producer_new(kw->conf, errstr, errstr_size);
    if (!kw->producer)
        return -1;
    kw->n_own = 0; /* forces a fresh rd_kafka_assign */
    return 0;
}

/* Re-reads our partitions (and their epochs + offsets) from Postgres and
 * re-assigns the consumer when anything changed. @returns 0 or -1. */
static int kiln_worker_refresh_assignment(kiln_worker_t *kw, int force) {
    char errstr[512];
    const char *p[2] = {kw->id, kw->topic};
    PGresult *r = kiln_pg_execp(
        kw->pg,
        "SELECT a.kpartition, a.epoch, coalesce(o.next_offset, -1)"
        " FROM assignments a LEFT JOIN offsets o USING (topic, kpartition)"
        " WHERE a.worker = $1 AND a.topic = $2 ORDER BY a.kpartition",
        2, p, errstr, sizeof(errstr));
    if (!r) {
        KILN_LOG_WARN("could not read assignment: %s", errstr);
        kiln_pg_check(kw->pg);
        return -1;
    }
    int n = PQntuples(r) < KILN_MAX_OWN ? PQntuples(r) : KILN_MAX_OWN;
    int changed = force || n != kw->n_own;
    for (int i = 0; i < n && !changed; i++)
        changed = kw->own[i].partition != atoi(PQgetvalue(r, i, 0)) ||
                  kw->own[i].epoch != atoll(PQgetvalue(r, i, 1));
    if (!changed) {
        PQclear(r);
        return 0;
    }
    rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(n ? n : 1);
    for (int i = 0; i < n; i++) {
        kiln_own_t *o = &kw->own[i];
        snprintf(o->topic, sizeof(o->topic), "%s", kw->topic);
        o->partition = atoi(PQgetvalue(r, i, 0));
        o->epoch = atoll(PQgetvalue(r, i, 1));
        o->next_offset = atoll(PQgetvalue(r, i, 2));
        /* no stored offset: start at 0, never at "beginning": if the broker
         * already dropped the head of the log we must see OFFSET_OUT_OF_RANGE */
        rd_kafka_topic_partition_list_add(tl, o->topic, o->partition)->offset =
            o->next_offset >= 0 ? o->next_offset : 0;
    }
    kw->n_own = n;
    PQclear(r);
    rd_kafka_resp_err_t err = rd_kafka_assign(kw->consumer, tl);
    rd_kafka_topic_partition_list_destroy(tl);
    if (err) {
        KILN_LOG_ERROR("could not assign partitions: %s", rd_kafka_err2str(err));
        return -1;
    }
    KILN_LOG_INFO("assigned %d partition(s) of %s", n, kw->topic);
    return 0;
}

/* The stored offset of a partition is outside the broker's log. Below the
 * log start: messages were dropped by the broker (mock cluster retention) -
 * report them loudly and continue at the log start. Above the end: the
 * broker lost its log (restart) - continue at the log start. Either way the
 * jobs still have queued rows in Postgres and `kiln requeue` re-produces
 * them. */
static void kiln_worker_offset_out_of_range(kiln_worker_t *kw, const char *topic, int part) {
    int oi = kiln_worker_find_own(kw, topic, part);
    if (oi < 0)
        return;
    int64_t lo = 0, hi = 0;
    rd_kafka_resp_err_t err = kiln_kafka_watermarks(kw->consumer, topic, part, &lo, &hi, 5000);
    if (err) {
        KILN_LOG_WARN("could not query watermarks of %s [%d]: %s", topic, part, rd_kafka_err2str(err));
        return;
    }
    kiln_own_t *o = &kw->own[oi];
    long long stored = o->next_offset < 0 ? 0 : o->next_offset;
    if (stored < lo) {
        kw->stats.lost_messages += lo - stored;
        KILN_LOG_ERROR("broker dropped %lld message(s) of %s [%d] before they were consumed "
                       "(offsets %lld..%lld); their jobs stay queued: run `kiln requeue`",
                       (long long)(lo - stored), topic, part, stored, (long long)lo - 1);
    } else
        KILN_LOG_WARN("stored offset %lld of %s [%d] is past the broker's log end %lld (broker "
                      "restarted?); continuing at %lld", stored, topic, part, (long long)hi, (long long)lo);
    char errstr[512], ps[16], from[32], to[32], eps[32];
    snprintf(ps, sizeof(ps), "%d", part);
    snprintf(from, sizeof(from), "%lld", stored);
    snprintf(to, sizeof(to), "%lld", (long long)lo);
    snprintf(eps, sizeof(eps), "%lld", o->epoch);
    const char *p[5] = {topic, ps, from, to, kw->id};
    PGresult *r = kiln_pg_execp(kw->pg,
                                "INSERT INTO broker_losses (topic, kpartition, from_offset, to_offset, worker)"
                                " VALUES ($1, $2::int, $3::bigint, $4::bigint, $5)",
                                5, p, errstr, sizeof(errstr));
    PQclear(r);
    /* move the stored offset to the log start, fenced like any commit */
    const char *q[5] = {topic, ps, to, kw->id, eps};
    r = kiln_pg_execp(kw->pg,
                      "INSERT INTO offsets (topic, kpartition, next_offset, updated_at)"
                      " SELECT $1, $2::int, $3::bigint, now() FROM assignments"
                      "  WHERE topic = $1 AND kpartition = $2::int AND worker = $4 AND epoch = $5::bigint"
                      " ON CONFLICT (topic, kpartition) DO UPDATE SET next_offset = EXCLUDED.next_offset,"
                      "  updated_at = now()",
                      5, q, errstr, sizeof(errstr));
    if (!r)
        KILN_LOG_WARN("could not move offset of %s [%d]: %s", topic, part, errstr);
    PQclear(r);
    kiln_worker_refresh_assignment(kw, 1);
}

static void kiln_worker_check_notify(kiln_worker_t *kw, int *changed) {
    if (!kw->lpg)
        return;
    if (!PQconsumeInput(kw->lpg)) {
        kiln_pg_check(kw->lpg);
        char errstr[256];
        kiln_pg_exec(kw->lpg, "LISTEN kiln_assign", errstr, sizeof(errstr));
        *changed = 1;
        return;
    }
    PGnotify *n;
    while ((n = PQnotifies(kw->lpg))) {
        *changed = 1;
        PQfreemem(n);
    }
}

/* Broker address changed (embedded broker restarted)? Reconnect. */
static void kiln_worker_check_broker(kiln_worker_t *kw) {
    if (!kw->embedded)
        return;
    char bs[1024], errstr[512];
    int emb;
    if (kiln_kafka_bootstrap(kw->conf, bs, sizeof(bs), &emb, errstr, sizeof(errstr)) ||
        !strcmp(bs, kw->bootstrap))
        return;
    KILN_LOG_WARN("broker address changed (%s -> %s): reconnecting", kw->bootstrap, bs);
    if (kiln_worker_connect_kafka(kw, errstr, sizeof(errstr)))
        KILN_LOG_ERROR("could not reconnect to the broker: %s", errstr);
    else
        kiln_worker_refresh_assignment(kw, 1);
}

int kiln_worker_backoff(kiln_worker_t *kw, long long ms) {
    double end = kiln_worker_now() + ms / 1000.0;
    while (*kw->run && kiln_worker_now() < end) {
        if (kiln_worker_now() - kw->last_hb > kiln_conf_get_int(kw->conf, "worker.heartbeat_ms") / 1000.0)
            kiln_worker_heartbeat(kw, "retrying");
        usleep(20000);
    }
    return *kw->run != 0;
}

/* ---- metrics (docs/monitoring.md) ---- */

#define KILN_WM_INTERVAL_S 2.0 /* lag sampling period */

/* Registers the worker's metric families, starts the /metrics server on
 * worker.metrics_addr (default 127.0.0.1) and worker.metrics_port (default 0:
 * any free port; -1: no server) and writes the bound port to
 * <stack.dir>/run/worker-<id>.metrics when that directory exists.
 * @returns 0, or -1 with errstr when the server could not start. */
static int kiln_worker_metrics_init(kiln_worker_t *kw, char *errstr, size_t errstr_size) {
    static const double sizes[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
    static const double lat[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
                                 120, 300, 600, 1800, 3600, 7200, 21600};
    static const double bsec[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                  2.5, 5, 10, 30, 60, 120, 300};
    kiln_wmetrics_t *wm = &kw->m;
    kiln_metrics_t *r = wm->reg = kiln_metrics_new();
    const char *mf = kiln_conf_get(kw->conf, "worker.model");
    const char *base = strrchr(mf, '/');
    snprintf(wm->model, sizeof(wm->model), "%s%s%s", kiln_engine_name(kw->engine), *mf ? ":" : "",
             base ? base + 1 : mf);
    wm->up = kiln_metrics_gauge(r, "kiln_worker_up", "1 while the worker runs, 0 once it drains.",
                                NULL);
    kiln_metric_t *info = kiln_metrics_gauge(r, "kiln_worker_info",
                                             "Always 1; the labels describe this worker.",
                                             "worker_id,engine,gpu,modality");
    wm->resident = kiln_metrics_gauge(r, "kiln_model_resident",
                                      "1 for each model loaded in this worker.", "model,modality");
    wm->partitions = kiln_metrics_gauge(r, "kiln_assigned_partitions",
                                        "Partitions assigned to this worker.", "modality");
    wm->exec_count = kiln_metrics_counter(r, "kiln_inference_exec_count",
                                          "Engine executions (batches run through the model).",
                                          "model");
    wm->inf_count = kiln_metrics_counter(r, "kiln_inference_count",
                                         "Jobs run through the model (sum of batch sizes).", "model");
    wm->queue_us = kiln_metrics_counter(
        r, "kiln_inference_queue_duration_us",
        "Cumulative time jobs waited from enqueue to claim by a worker, in microseconds.", "model");
    wm->compute_us = kiln_metrics_counter(
        r, "kiln_inference_compute_duration_us",
        "Cumulative engine time per job (each job of a batch is charged the whole batch, as in "
        "Triton), in microseconds.",
        "model");
    wm->batch_size = kiln_metrics_histogram(r, "kiln_batch_size",
                                            "Messages per committed batch.", "modality", sizes,
                                            (int)(sizeof(sizes) / sizeof(sizes[0])));
    wm->batch_seconds = kiln_metrics_histogram(
        r, "kiln_batch_duration_seconds",
        "Time to process and commit one batch (claim, input, engine, artifacts, transaction).",
        "modality", bsec, (int)(sizeof(bsec) / sizeof(bsec[0])));
    wm->latency = kiln_metrics_histogram(r, "kiln_job_latency_seconds",
                                         "Job latency from enqueue to the commit of its result.",
                                         "modality", lat, (int)(sizeof(lat) / sizeof(lat[0])));
    wm->jobs = kiln_metrics_counter(r, "kiln_jobs_total",
                                    "Jobs committed, by outcome (done, dead, skipped: already "
                                    "terminal).",
                                    "modality,status");
    wm->dlq = kiln_metrics_counter(r, "kiln_dlq_total", "Jobs dead-lettered, by reason.",
                                   "modality,reason");
    wm->retries = kiln_metrics_counter(r, "kiln_retries_total",
                                       "Retries of transient failures (store, Postgres, broker).",
                                       NULL);
    wm->lost = kiln_metrics_counter(r, "kiln_messages_lost_total",
                                    "Messages the broker dropped before this worker read them.",
                                    NULL);
    wm->fenced = kiln_metrics_counter(r, "kiln_fenced_batches_total",
                                      "Batches not committed: the partition moved (stale epoch).",
                                      NULL);
    wm->busy = kiln_metrics_counter(r, "kiln_busy_seconds_total",
                                    "Seconds spent processing batches (rate = busy fraction).", NULL);
    wm->work_units = kiln_metrics_counter(r, "kiln_work_units_total",
                                          "Work units of done jobs (audio seconds for transcribe).",
                                          "modality");
    wm->lag = kiln_metrics_gauge(r, "kiln_consumer_lag",
                                 "High watermark minus the offset committed in Postgres, per "
                                 "owned partition.",
                                 "topic,partition");
    wm->committed = kiln_metrics_gauge(r, "kiln_consumer_committed_offset",
                                       "Next offset committed in Postgres, per owned partition.",
                                       "topic,partition");
    wm->depth = kiln_metrics_gauge(r, "kiln_queue_depth_messages",
                                   "Messages queued and not yet committed, per owned partition.",
                                   "modality,partition");
    wm->backlog_wu = kiln_metrics_gauge(
        r, "kiln_backlog_work_units",
        "Estimated work units queued per owned partition: queue depth x the moving mean of the "
        "kiln-work-units header of the partition's recent messages.",
        "modality,partition");
    kiln_metrics_gpu_register(r);
    kiln_metric_set(wm->up, NULL, 1);
    kiln_metric_set(info,
                    KILN_LABELS(kw->id, kiln_engine_name(kw->engine),
                                kiln_conf_get(kw->conf, "worker.gpu"), kw->modality),
                    1);
    kiln_metric_set(wm->resident, KILN_LABELS(wm->model, kw->modality), 1);
    kiln_metric_set(wm->partitions, KILN_LABELS(kw->modality), 0);

    char name[160];
    snprintf(name, sizeof(name), "worker-%s", kw->id);
    return kiln_metrics_serve_conf(r, kw->conf, "worker", name, &wm->port_file, errstr, errstr_size);
}

/* Notes the kiln-work-units header of a message taken into a batch (the
 * per-partition estimate behind kiln_backlog_work_units). */
static void kiln_worker_metrics_fetched(kiln_worker_t *kw, const rd_kafka_message_t *m) {
    char wu[32];
    if (!kiln_kafka_header(m, "kiln-work-units", wu, sizeof(wu)))
        return;
    double v = atof(wu);
    int idx[2] = {m->partition >= 0 && m->partition < KILN_WM_PARTS ? m->partition : -1,
                  KILN_WM_PARTS};
    for (int k = 0; k < 2; k++) {
        int i = idx[k];
        if (i < 0)
            continue;
        kw->m.wu_mean[i] = kw->m.wu_seen[i] ? 0.8 * kw->m.wu_mean[i] + 0.2 * v : v;
        kw->m.wu_seen[i] = 1;
    }
}

void kiln_worker_metrics_stats(kiln_worker_t *kw) {
    kiln_wmetrics_t *wm = &kw->m;
    kiln_metric_set(wm->retries, NULL, (double)kw->stats.retries);
    kiln_metric_set(wm->lost, NULL, (double)kw->stats.lost_messages);
    kiln_metric_set(wm->fenced, NULL, (double)kw->stats.fenced);
    kiln_metric_set(wm->busy, NULL, kw->stats.busy_s);
}

/* Lag of every owned partition: the high watermark (one ListOffsets round
 * trip for all partitions, librdkafka's cached value when the broker does not
 * answer within 1 s) minus the next offset committed in Postgres. */
void kiln_worker_metrics_sample(kiln_worker_t *kw) {
    kiln_wmetrics_t *wm = &kw->m;
    double now = kiln_worker_now();
    if (!wm->reg || !kw->consumer || now - wm->last_sample < KILN_WM_INTERVAL_S)
        return;
    wm->last_sample = now;
    int n = kw->n_own;
    rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(n ? n : 1);
    for (int i = 0; i < n; i++) /* OFFSET_END as a "timestamp" asks for the log end */
        rd_kafka_topic_partition_list_add(tl, kw->own[i].topic, kw->own[i].partition)->offset =
            RD_KAFKA_OFFSET_END;
    rd_kafka_resp_err_t err = n ? rd_kafka_offsets_for_times(kw->consumer, tl, 1000)
                                : RD_KAFKA_RESP_ERR_NO_ERROR;
    kiln_metrics_lock(wm->reg); /* a scrape sees the whole set or none of it */
    kiln_metric_clear(wm->lag);
    kiln_metric_clear(wm->committed);
    kiln_metric_clear(wm->depth);
    kiln_metric_clear(wm->backlog_wu);
    for (int i = 0; i < n; i++) {
        kiln_own_t *o = &kw->own[i];
        int64_t lo = -1, hi = -1;
        rd_kafka_topic_partition_t *e = &tl->elems[i];
        if (!err && !e->err && e->offset >= 0)
            hi = e->offset;
        else if (rd_kafka_get_watermark_offsets(kw->consumer, o->topic, o->partition, &lo, &hi) ||
                 hi < 0)
            continue; /* unknown: no series rather than a wrong one */
        long long committed = o->next_offset >= 0 ? o->next_offset : 0;
        double depth = hi > committed ? (double)(hi - committed) : 0;
        char ps[16];
        snprintf(ps, sizeof(ps), "%d", o->partition);
        int wi = o->partition < KILN_WM_PARTS && kw->m.wu_seen[o->partition] ? o->partition
                                                                              : KILN_WM_PARTS;
        kiln_metric_set(wm->lag, KILN_LABELS(o->topic, ps), depth);
        kiln_metric_set(wm->committed, KILN_LABELS(o->topic, ps), (double)committed);
        kiln_metric_set(wm->depth, KILN_LABELS(kw->modality, ps), depth);
        kiln_metric_set(wm->backlog_wu, KILN_LABELS(kw->modality, ps), depth * wm->wu_mean[wi]);
    }
    kiln_metric_set(wm->partitions, KILN_LABELS(kw->modality), n);
    kiln_worker_metrics_stats(kw);
    kiln_metrics_unlock(wm->reg);
    rd_kafka_topic_partition_list_destroy(tl);
}

kiln_worker_t *kiln_worker_new(const kiln_conf_t *conf, char *errstr, size_t errstr_size) {
    kiln_worker_t *kw = calloc(1, sizeof(*kw));
    if (!kw) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    kw->conf = kiln_conf_dup(conf);
    const char *id = kiln_conf_get(conf, "worker.id");
    if (*id)
        snprintf(kw->id, sizeof(kw->id), "%s", id);
    else {
        char host[100] = "";
        gethostname(host, sizeof(host) - 1);
        snprintf(kw->id, sizeof(kw->id), "%s-%d", host, (int)getpid());
    }
    kw->engine = kiln_engine_new(kiln_conf_get(conf, "worker.engine"), conf, errstr, errstr_size);
    if (!kw->engine)
        goto fail;
    /* the modality is the engine's; worker.modality may only confirm it */
    const char *mod = kiln_conf_get(conf, "worker.modality");
    if (*mod && strcmp(mod, kiln_engine_modality(kw->engine))) {
        snprintf(errstr, errstr_size, "worker.modality \"%s\" does not match engine %s, which serves %s",
                 mod, kiln_engine_name(kw->engine), kiln_engine_modality(kw->engine));
        goto fail;
    }
    snprintf(kw->modality, sizeof(kw->modality), "%s", kiln_engine_modality(kw->engine));
    kiln_kafka_topic(conf, kw->modality, "jobs", kw->topic, sizeof(kw->topic));
    kiln_kafka_topic(conf, kw->modality, "dlq", kw->dlq_topic, sizeof(kw->dlq_topic));
    kiln_kafka_events_topic(conf, kw->events_topic, sizeof(kw->events_topic));
    kw->max_batch = (int)kiln_conf_get_int(conf, "worker.max_batch");
    kw->max_delay_us = kiln_conf_get_int(conf, "worker.max_queue_delay_us");
    kw->budget_bytes = kiln_conf_get_int(conf, "worker.memory_budget_mb") << 20;
    kw->max_input_bytes = kiln_conf_get_int(conf, "worker.max_input_bytes");
    kw->retry_budget = (int)kiln_conf_get_int(conf, "worker.retry_budget");
    kw->backoff_ms = kiln_conf_get_int(conf, "worker.retry_backoff_ms");
    kw->max_audio_s = (double)kiln_conf_get_int(conf, "worker.max_audio_seconds");
    kw->limits.max_message_bytes = (size_t)kiln_conf_get_int(conf, "worker.max_message_bytes");
    kw->limits.max_json_depth = (int)kiln_conf_get_int(conf, "worker.max_json_depth");
    kw->limits.max_inline_bytes = (size_t)kiln_conf_get_int(conf, "worker.max_inline_bytes");
    if (kiln_worker_is_speak(kw))
        kw->limits.max_text_chars = (size_t)kiln_conf_get_int(conf, "speak.max_chars");
    kw->store = kiln_store_new(conf, errstr, errstr_size);
    if (!kw->store)
        goto fail;
    kiln_store_set_deferred_sync(kw->store, 1); /* one sync per batch, before the commit */
    kw->pg = kiln_pg_connect(conf, "kiln-worker", errstr, errstr_size);
    if (!kw->pg)
        goto fail;
    kw->lpg = kiln_pg_connect(conf, "kiln-worker-listen", errstr, errstr_size);
    if (!kw->lpg || kiln_pg_exec(kw->lpg, "LISTEN kiln_assign", errstr, errstr_size))
        goto fail;
    if (kiln_worker_connect_kafka(kw, errstr, errstr_size))
        goto fail;
    if (kiln_worker_metrics_init(kw, errstr, errstr_size))
        goto fail;
    return kw;
fail:
    kiln_worker_destroy(kw);
    return NULL;
}

/* Frees the messages and state of a batch. */
static void kiln_worker_batch_free(kiln_wjob_t *jobs, int n) {
    for (int i = 0; i < n; i++) {
        if (jobs[i].msg)
            rd_kafka_message_destroy(jobs[i].msg);
        kiln_job_clear(&jobs[i].job);
        free(jobs[i].input);
        kiln_audio_free(&jobs[i].audio);
        kiln_transcript_clear(&jobs[i].tr);
        kiln_speech_clear(&jobs[i].sp);
        free(jobs[i].text);
        memset(&jobs[i], 0, sizeof(jobs[i]));
    }
}

kiln_err_t kiln_worker_run(kiln_worker_t *kw, volatile sig_atomic_t *run) {
    kw->run = run;
    kiln_worker_heartbeat(kw, "up");
    kiln_worker_refresh_assignment(kw, 1);
    kiln_wjob_t *jobs = calloc(kw->max_batch, sizeof(kiln_wjob_t));
    if (!jobs)
        return KILN_ERR__NOMEM;
    long long hb_ms = kiln_conf_get_int(kw->conf, "worker.heartbeat_ms");
    double last_refresh = kiln_worker_now();
    KILN_LOG_INFO("worker %s up: engine %s (%s), max_batch %d, max_queue_delay_us %lld", kw->id,
                  kiln_engine_name(kw->engine), kw->modality, kw->max_batch, kw->max_delay_us);
    while (*run) {
        double now = kiln_worker_now();
        int changed = 0;
        kiln_worker_check_notify(kw, &changed);
        if (now - kw->last_hb > hb_ms / 1000.0) {
            kiln_worker_heartbeat(kw, "up");
            kiln_worker_check_broker(kw);
        }
        if (changed || now - last_refresh > 2.0) {
            kiln_worker_refresh_assignment(kw, 0);
            last_refresh = now;
        }
        kiln_worker_metrics_sample(kw);
        /* fill one batch */
        int n = 0;
        long long bytes = 0;
        double first_at = 0;
        while (n < kw->max_batch && *run) {
            int timeout_ms = 100;
            if (n) {
                double left = first_at + kw->max_delay_us / 1e6 - kiln_worker_now();
                if (left <= 0)
                    break;
                timeout_ms = (int)(left * 1000) + 1;
                /* a long max_queue_delay_us: wake up to keep the lag metrics
                 * and the heartbeat fresh (or the scheduler declares us dead) */
                kiln_worker_metrics_sample(kw);
                if (kiln_worker_now() - kw->last_hb > hb_ms / 1000.0)
                    kiln_worker_heartbeat(kw, "up");
                if (timeout_ms > 1000)
                    timeout_ms = 1000;
            }
            rd_kafka_message_t *m = rd_kafka_consumer_poll(kw->consumer, timeout_ms);
            if (!m) {
                if (!n) {
                    kiln_dlq_outbox_relay(kw); /* orphaned dead letters (rate-limited) */
                    break; /* idle: go round for heartbeats and notifications */
                }
                continue;
            }
            if (m->err) {
                const char *tn = m->rkt ? rd_kafka_topic_name(m->rkt) : "";
                if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
                    m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE)
                    kiln_worker_offset_out_of_range(kw, tn, m->partition);
                else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    KILN_LOG_WARN("consumer: %s [%d]: %s", tn, m->partition, rd_kafka_message_errstr(m));
                rd_kafka_message_destroy(m);
                continue;
            }
            int oi = kiln_worker_find_own(kw, rd_kafka_topic_name(m->rkt), m->partition);
            if (oi < 0) { /* stale message of a partition we no longer own */
                rd_kafka_message_destroy(m);
                continue;
            }
            if (!n)
                first_at = kiln_worker_now();
            jobs[n].msg = m;
            jobs[n].own_idx = oi;
            n++;
            kiln_worker_metrics_fetched(kw, m);
            char ib[32];
            bytes += (long long)m->len;
            if (kiln_kafka_header(m, "kiln-input-bytes", ib, sizeof(ib)))
                bytes += kiln_worker_is_speak(kw)
                             ? atoll(ib) * 8000 /* text: ~0.08 s of float audio per byte */
                             : atoll(ib) * 2 + 64000; /* input + decoded audio estimate */
            if (bytes >= kw->budget_bytes)
                break; /* memory budget: stop fetching until this batch is done */
        }
        if (!n)
            continue;
        double t0 = kiln_worker_now();
        kiln_err_t err = kiln_worker_process_batch(kw, jobs, n);
        double dt = kiln_worker_now() - t0;
        kw->stats.busy_s += dt;
        if (err == KILN_OK) { /* measured throughput for the scheduler */
            double units = 0;
            for (int i = 0; i < n; i++)
                if (!jobs[i].skip && !jobs[i].err)
                    units += kiln_wjob_units(&jobs[i]);
            if (units > 0 && dt > 0)
                kw->stats.throughput = kw->stats.throughput > 0
                                           ? 0.7 * kw->stats.throughput + 0.3 * (units / dt)
                                           : units / dt;
        }
        kiln_worker_batch_free(jobs, n);
        if (err == KILN_ERR__FENCED) /* lost a partition: re-read and re-seek */
            kiln_worker_refresh_assignment(kw, 1);
        else if (err == KILN_ERR__STOPPED)
            break;
    }
    KILN_LOG_INFO("draining: in-flight batch committed; leaving the fleet");
    kiln_worker_heartbeat(kw, "stopped");
    kiln_metric_set(kw->m.up, NULL, 0);
    kiln_worker_metrics_stats(kw);
    free(jobs);
    return KILN_OK;
}

void kiln_worker_destroy(kiln_worker_t *kw) {
    if (!kw)
        return;
    kiln_metrics_destroy(kw->m.reg); /* stops the /metrics server first */
    kiln_dlq_outbox_destroy(kw);
    if (kw->m.port_file) {
        unlink(kw->m.port_file);
        free(kw->m.port_file);
    }
    if (kw->consumer) {
        rd_kafka_consumer_close(kw->consumer);
        rd_kafka_destroy(kw->consumer);
    }
    if (kw->producer) {
        rd_kafka_flush(kw->producer, 10000);
        rd_kafka_destroy(kw->producer);
    }
    PQfinish(kw->pg);
    PQfinish(kw->lpg);
    kiln_store_destroy(kw->store);
    kiln_engine_destroy(kw->engine);
    kiln_conf_destroy(kw->conf);
    free(kw);
}
