/*
 * workers/worker_int.h - the worker's internal state, shared by
 * workers/worker.c (loop, assignment, broker) and workers/batch.c
 * (process and commit one batch).
 */
#ifndef KILN_WORKER_INT_H
#define KILN_WORKER_INT_H

#include <librdkafka/rdkafka.h>
#include <libpq-fe.h>

#include "kiln/audio.h"
#include "kiln/engine.h"
#include "kiln/job.h"
#include "kiln/metrics.h"
#include "kiln/store.h"
#include "kiln/worker.h"

#define KILN_MAX_OWN 4096

typedef struct kiln_own_s {
    char topic[256];
    int partition;
    long long epoch;
    long long next_offset; /* what we will commit next (or did) */
} kiln_own_t;

typedef struct kiln_wjob_s {
    rd_kafka_message_t *msg;
    kiln_job_t job;
    int own_idx;            /* index into kw->own */
    int skip;               /* already terminal elsewhere: just advance */
    int dlq_queued;         /* dead letter handed to the producer: a retry waits for it */
    int attempts;
    double queue_s;         /* enqueued_at -> claim, on the database clock (metrics) */
    kiln_err_t err;         /* non-OK: goes to the DLQ */
    char errstr[512];
    void *input;
    size_t input_len;
    kiln_audio_t audio;
    kiln_transcript_t tr;
    int n_artifacts;           /* transcript.json, and .srt/.vtt when segments exist */
    struct {
        const char *kind;
        char uri[1024];
        long long bytes;
        char sha[65];
    } artifacts[3];
} kiln_wjob_t;

typedef struct kiln_wstats_s {
    long long jobs_done, jobs_dead, jobs_skipped, batches, fenced, retries, lost_messages;
    double busy_s;
    double throughput; /* EWMA of work units (audio seconds) per second of batch time */
} kiln_wstats_t;

/* Prometheus metrics (docs/monitoring.md): updated on the worker thread,
 * served by the registry's own HTTP thread. */
#define KILN_WM_PARTS 1024 /* partitions with their own work-unit estimate */
typedef struct kiln_wmetrics_s {
    kiln_metrics_t *reg;
    kiln_metric_t *up, *exec_count, *inf_count, *queue_us, *compute_us, *batch_size,
        *batch_seconds, *latency, *jobs, *dlq, *retries, *lost, *fenced, *busy, *work_units,
        *resident, *lag, *committed, *depth, *backlog_wu, *partitions;
    char model[160];  /* model label: engine[:model file] */
    char *port_file;  /* <stack.dir>/run/worker-<id>.metrics, removed on exit */
    double last_sample;
    double wu_mean[KILN_WM_PARTS + 1]; /* EWMA of kiln-work-units per message; [KILN_WM_PARTS]: all */
    int wu_seen[KILN_WM_PARTS + 1];
} kiln_wmetrics_t;

struct kiln_worker_s {
    kiln_conf_t *conf;
    char id[128];
    char modality[16];
    char topic[256], dlq_topic[256], events_topic[256];
    PGconn *pg;        /* results, heartbeats */
    PGconn *lpg;       /* LISTEN kiln_assign */
    rd_kafka_t *consumer, *producer;
    char bootstrap[1024];
    int embedded;
    kiln_store_t *store;
    kiln_engine_t *engine;
    kiln_own_t own[KILN_MAX_OWN];
    int n_own;
    int max_batch;
    long long max_delay_us, budget_bytes, max_input_bytes;
    int retry_budget;
    long long backoff_ms;
    double max_audio_s;
    kiln_job_limits_t limits;
    kiln_wstats_t stats;
    volatile sig_atomic_t *run;
    double last_hb;
    kiln_wmetrics_t m;
};

/* worker.c */
double kiln_worker_now(void);
void kiln_worker_heartbeat(kiln_worker_t *kw, const char *status);
int kiln_worker_find_own(kiln_worker_t *kw, const char *topic, int partition);
/* Sleeps \p ms while heartbeating; returns 0 if asked to stop meanwhile. */
int kiln_worker_backoff(kiln_worker_t *kw, long long ms);

/* worker.c: metrics. sample: consumer lag, queue depth and backlog per owned
 * partition (at most every 2 s; call it often); stats: mirror kw->stats. */
void kiln_worker_metrics_sample(kiln_worker_t *kw);
void kiln_worker_metrics_stats(kiln_worker_t *kw);

/* batch.c: processes and commits jobs[0..n-1]; returns KILN_OK, or
 * KILN_ERR__STOPPED when shutdown interrupted a retry loop (nothing
 * committed: the messages will be consumed again). */
kiln_err_t kiln_worker_process_batch(kiln_worker_t *kw, kiln_wjob_t *jobs, int n);

#endif
