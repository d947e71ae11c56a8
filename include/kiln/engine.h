/*
 * kiln/engine.h - the small interface models plug into (load, run_batch,
 * destroy), used by the worker and by `kiln transcribe`.
 *
 * An engine is loaded once (read-only model) and then runs batches of
 * requests. Each request carries 16 kHz mono PCM; each output slot gets a
 * transcript or a per-request error, so one bad input never fails the batch.
 *
 * Engines are registered in workers/engine.c's table by name:
 *   "null"    decodes and measures audio, runs no model (says so in its output)
 *   ...       further engines (e.g. "whisper") add a row there.
 *
 * A kiln_engine_t is used by one thread at a time.
 */
#ifndef KILN_ENGINE_H
#define KILN_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "kiln/conf.h"
#include "kiln/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_segment_s {
    int64_t start_ms, end_ms;
    char *text;            /* malloc'ed */
    float avg_logprob;
    float no_speech_prob;
} kiln_segment_t;

typedef struct kiln_transcript_s {
    kiln_err_t err;        /* per-request result; KILN_OK on success */
    char error[256];       /* reason when err != KILN_OK */
    char *text;            /* full text (malloc'ed; "" when nothing was said) */
    char language[16];     /* detected or requested language ("" if none) */
    double duration_s;     /* audio duration */
    kiln_segment_t *segments;
    int n_segments;
    int model_ran;         /* 0 for the null engine */
    char *info_json;       /* engine-specific JSON object text (may be NULL) */
} kiln_transcript_t;

typedef struct kiln_asr_request_s {
    const char *job_id;
    const float *pcm;      /* 16 kHz mono */
    size_t n_samples;
    double rms_dbfs, peak_dbfs; /* measured by the decoder */
    const char *language;  /* NULL or "" : detect */
    int beam_size;         /* 0: engine default */
    int word_timestamps;
} kiln_asr_request_t;

typedef struct kiln_engine_ops_s {
    const char *name;
    const char *description;
    /* loads the model; returns engine state or NULL with errstr */
    void *(*load)(const kiln_conf_t *conf, char *errstr, size_t errstr_size);
    /* runs n requests; fills out[0..n-1]; returns non-OK only if the whole batch failed */
    kiln_err_t (*run_batch)(void *state, const kiln_asr_request_t *reqs, int n,
                            kiln_transcript_t *out);
    void (*destroy)(void *state);
} kiln_engine_ops_t;

typedef struct kiln_engine_s kiln_engine_t;

/** Loads engine \p name. @returns NULL with errstr for an unknown name or a load failure. */
kiln_engine_t *kiln_engine_new(const char *name, const kiln_conf_t *conf, char *errstr,
                               size_t errstr_size);
/** Runs a batch; see kiln_engine_ops_t.run_batch. \p out must be zeroed by the caller. */
kiln_err_t kiln_engine_run_batch(kiln_engine_t *eng, const kiln_asr_request_t *reqs, int n,
                                 kiln_transcript_t *out);
const char *kiln_engine_name(const kiln_engine_t *eng);
void kiln_engine_destroy(kiln_engine_t *eng);
/** Lists the registered engines ("a, b, c") into \p out. */
void kiln_engine_list(char *out, size_t out_size);

/** Frees what a transcript owns and zeroes it. NULL is fine. */
void kiln_transcript_clear(kiln_transcript_t *t);

#ifdef __cplusplus
}
#endif
#endif
