/*
 * kiln/producer.h - libkiln: submit jobs to kiln from C.
 *
 * A producer uploads local input to the object store, records the job in
 * Postgres (status "queued") BEFORE producing it, then produces the JSON job
 * message to <prefix>.<modality>.jobs keyed by the job id, with the headers
 * kiln-work-units, kiln-tenant and kiln-input-bytes. Because every job is in
 * Postgres first, `kiln requeue` can re-produce anything the broker loses.
 *
 * Embedded broker only (address from broker.addr_file): before producing to a
 * partition the producer checks its unconsumed bytes and waits while they are
 * above broker.partition_cap_bytes (the mock broker silently drops the oldest
 * messages past ~5 MB); after producer.backpressure_timeout_ms it gives up
 * with KILN_ERR__QUEUE_FULL.
 *
 * Usage (see producers/examples/submit_example.c):
 *   kiln_producer_t *kp = kiln_producer_new(conf, errstr, sizeof(errstr));
 *   kiln_submit_params_t sp = kiln_submit_default_params();
 *   sp.tenant = "acme";
 *   kiln_producer_submit_file(kp, "a.flac", &sp, id, errstr, sizeof(errstr));
 *   kiln_producer_flush(kp, 10000);
 *   kiln_producer_destroy(kp);
 *
 * A producer is used by one thread at a time.
 */
#ifndef KILN_PRODUCER_H
#define KILN_PRODUCER_H

#include <stddef.h>

#include "kiln/conf.h"
#include "kiln/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_producer_s kiln_producer_t;

typedef struct kiln_submit_params_s {
    const char *id;          /* NULL: a random UUID */
    const char *tenant;      /* default "default" */
    const char *modality;    /* default "transcribe" */
    int priority;            /* -1000..1000, default 0 */
    const char *deadline;    /* RFC 3339 or NULL */
    const char *params_json; /* JSON object text for "params", or NULL */
    double work_units;       /* <0: measure (audio seconds) */
    int backpressure;        /* 1 (default): honour the embedded partition cap */
} kiln_submit_params_t;

/** @returns the defaults described above. */
kiln_submit_params_t kiln_submit_default_params(void);

/**
 * Creates a producer. \p conf is copied (the caller keeps ownership).
 * Connects to Postgres, the broker and the object store.
 * @returns NULL with the reason in \p errstr.
 */
kiln_producer_t *kiln_producer_new(const kiln_conf_t *conf, char *errstr, size_t errstr_size);

/**
 * Uploads the local file \p path to inputs/<tenant>/<id>/<name> and submits
 * it. The job id is written into \p id_out (>= 129 bytes).
 */
kiln_err_t kiln_producer_submit_file(kiln_producer_t *kp, const char *path,
                                     const kiln_submit_params_t *sp, char *id_out,
                                     char *errstr, size_t errstr_size);

/** Submits input already in the object store (\p uri: file:// or s3://). */
kiln_err_t kiln_producer_submit_uri(kiln_producer_t *kp, const char *uri,
                                    const kiln_submit_params_t *sp, char *id_out,
                                    char *errstr, size_t errstr_size);

/** Submits a job with \p text as its input (speak jobs). */
kiln_err_t kiln_producer_submit_text(kiln_producer_t *kp, const char *text,
                                     const kiln_submit_params_t *sp, char *id_out,
                                     char *errstr, size_t errstr_size);

/**
 * Re-produces every job in Postgres with status queued or running (no
 * terminal row) that was enqueued before now - \p older_than_ms.
 * Workers skip jobs that already reached a terminal row, so this is safe.
 * @returns the number re-produced, or -1 with errstr.
 */
long kiln_producer_requeue(kiln_producer_t *kp, long older_than_ms, char *errstr,
                           size_t errstr_size);

/**
 * Waits up to \p timeout_ms for every produced message to be acknowledged.
 * @returns KILN_OK, KILN_ERR__TIMED_OUT, or KILN_ERR_KAFKA if a delivery
 * failed (the job row stays "queued"; `kiln requeue` re-produces it).
 */
kiln_err_t kiln_producer_flush(kiln_producer_t *kp, int timeout_ms);

/** Number of messages whose delivery failed so far. */
long kiln_producer_failed_count(const kiln_producer_t *kp);

/** Flushes (10 s) and frees \p kp; NULL is fine. */
void kiln_producer_destroy(kiln_producer_t *kp);

#ifdef __cplusplus
}
#endif
#endif
