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
    long long outbox_id;    /* its dlq_outbox row, staged in the batch transaction (0: none) */
    int attempts;
    double queue_s;         /* enqueued_at -> claim, on the database clock (metrics) */
    kiln_err_t err;         /* non-OK: goes to the DLQ */
    char errstr[512];
    void *input;
    size_t input_len;
    kiln_audio_t audio;
    kiln_transcript_t tr;
    kiln_speech_t sp;          /* speak jobs: the engine's result (at the voice's rate) */
    int speech_rate;           /* speak jobs: rate and length of the stored audio */
    double speech_s;
    char *text;                /* speak jobs: text fetched from input.uri (malloc'ed) */
    int n_artifacts;           /* transcript.json, and .srt/.vtt when segments exist;
                                  speak: speech.<format>, timings.json, speech.vtt */
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
    struct kiln_dlq_outbox_s *outbox; /* dlq_outbox.c: created on first use */
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

/* batch.c: helpers shared with batch_speak.c */
typedef struct {
    char *buf;
    size_t len, cap;
} kiln_sbuf_t;
/* Appends one element to a Postgres text[] literal being built in \p sb. */
void kiln_pg_array_add(kiln_sbuf_t *sb, const char *v);
/* One statement of the batch transaction: $1..$na the arrays (consumed),
 * then the scalars; skipped when the first array is empty. @returns 0/-1. */
int kiln_tx_exec(PGconn *pg, const char *sql, kiln_sbuf_t *arrays, int na,
                 const char *const *scalars, int ns, char *errstr, size_t errstr_size);
/* Reads a job's input (inline_b64 or input.uri, retrying store outages)
 * into j->input; a bad input sets j->err. @returns KILN_OK or KILN_ERR__STOPPED. */
kiln_err_t kiln_batch_fetch(kiln_worker_t *kw, kiln_wjob_t *j);
/* Stores \p len bytes as result artifact \p kind (results/<tenant>/<id>/<kind>)
 * and records it in j->artifacts. @returns KILN_OK or KILN_ERR__STOPPED. */
kiln_err_t kiln_batch_put_bytes(kiln_worker_t *kw, kiln_wjob_t *j, const char *kind,
                                const void *data, size_t len);
/* After an engine call on \p m jobs started at \p t0: the inference metrics. */
void kiln_batch_engine_metrics(kiln_worker_t *kw, int m, double t0);
/* The outcome of one job of an engine call: the whole batch failed
 * (\p batch_err) or the job did (\p err, \p error) -> j->err. @returns 1 if it
 * succeeded (the caller keeps the engine's output). */
int kiln_batch_engine_result(kiln_wjob_t *j, kiln_err_t batch_err, kiln_err_t err,
                             const char *error);
/* Work units of a finished job: audio seconds (transcribe), characters (speak). */
double kiln_wjob_units(const kiln_wjob_t *j);

/* batch_speak.c: steps 3 (text, engine), 4 (audio, timings) and the speech
 * rows of step 6 for speak workers. */
int kiln_worker_is_speak(const kiln_worker_t *kw);
kiln_err_t kiln_batch_speak_run(kiln_worker_t *kw, kiln_wjob_t *jobs, int n);
kiln_err_t kiln_batch_speak_artifacts(kiln_worker_t *kw, kiln_wjob_t *jobs, int n);
int kiln_batch_speak_rows(kiln_worker_t *kw, kiln_wjob_t *jobs, int n, kiln_sbuf_t *a,
                          char *errstr, size_t errstr_size);

/* batch.c: processes and commits jobs[0..n-1]; returns KILN_OK, or
 * KILN_ERR__STOPPED when shutdown interrupted a retry loop (nothing
 * committed: the messages will be consumed again). */
kiln_err_t kiln_worker_process_batch(kiln_worker_t *kw, kiln_wjob_t *jobs, int n);

/* dlq_outbox.c: exactly-once dead letters through the dlq_outbox table
 * (schema/006_dlq_outbox.sql; the argument is in the file's header comment
 * and docs/chaos.md).
 *
 * stage: inside the batch transaction, after the fence and before the jobs
 * turn dead: inserts one outbox row per bad job of jobs[0..n-1] whose row is
 * still open (locked FOR UPDATE), owned by this process; remembers them (and
 * forgets what an earlier, rolled-back try staged). @returns 0, or -1 with
 * errstr (the caller rolls back).
 *
 * send: after COMMIT: produces the staged rows (header kiln-outbox-id),
 * awaits every delivery report, then deletes the delivered rows, retrying
 * the DELETE from memory while Postgres is away: a delivered row is never
 * produced again. Rows whose delivery failed are left to the relay.
 * @returns KILN_OK, or KILN_ERR__STOPPED when shutdown interrupted the
 * DELETE retries (the relay of the next start finds the messages).
 *
 * relay: at most every worker.dlq_relay_interval_ms (called at the start of
 * each batch and when the worker is idle; it rate-limits itself): takes over
 * orphaned rows (FOR UPDATE SKIP LOCKED), scans the DLQ topic from the
 * stored scan position for their kiln-outbox-id and sends only the absent
 * ones. Never call it while a send is in flight (single worker thread).
 *
 * destroy: frees the state and its Kafka handles; NULL-safe.
 * @locality the worker thread */
int kiln_dlq_outbox_stage(kiln_worker_t *kw, kiln_wjob_t *jobs, int n, char *errstr,
                          size_t errstr_size);
kiln_err_t kiln_dlq_outbox_send(kiln_worker_t *kw);
void kiln_dlq_outbox_relay(kiln_worker_t *kw);
void kiln_dlq_outbox_destroy(kiln_worker_t *kw);

#endif
