/*
 * kiln/worker.h - the worker daemon: consume assigned partitions, batch, run
 * the engine, store artifacts, commit results + offsets exactly once.
 *
 * A worker serves one modality, its engine's (worker.engine: whisper, null,
 * pace -> transcribe; piper -> speak): it consumes <prefix>.<modality>.jobs,
 * dead-letters to <prefix>.<modality>.dlq and heartbeats that modality (the
 * scheduler gives it only that topic's partitions).
 *
 * Contract (see ARCHITECTURE.md "Contracts"):
 *  - partitions come only from the assignments table (rd_kafka_assign, no
 *    consumer group); the start offset of each is read from Postgres;
 *  - artifacts are written under deterministic keys, then ONE transaction
 *    per batch writes result rows (idempotent), job status and the next
 *    offset of every partition in the batch, after checking FOR SHARE that
 *    the partition's (worker, epoch) still belongs to this worker;
 *  - bad jobs go to <prefix>.<modality>.dlq with kiln-error headers and a
 *    dead job row; transient failures are retried, never skipped;
 *  - a stored offset below the log start is reported (log, broker_losses
 *    row, counter), never skipped silently;
 *  - SIGTERM: the in-flight batch finishes and commits, then exit.
 */
#ifndef KILN_WORKER_H
#define KILN_WORKER_H

#include <signal.h>
#include <stddef.h>

#include "kiln/conf.h"
#include "kiln/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_worker_s kiln_worker_t;

/** Connects everything and loads the engine. NULL with errstr on failure. */
kiln_worker_t *kiln_worker_new(const kiln_conf_t *conf, char *errstr, size_t errstr_size);

/** Runs until *run becomes 0 (then drains). @returns KILN_OK or the fatal error. */
kiln_err_t kiln_worker_run(kiln_worker_t *kw, volatile sig_atomic_t *run);

/** Frees \p kw; NULL is fine. */
void kiln_worker_destroy(kiln_worker_t *kw);

#ifdef __cplusplus
}
#endif
#endif
