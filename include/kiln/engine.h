/*
 * kiln/engine.h - the small interface models plug into (load, run_batch,
 * destroy), used by the worker and by `kiln transcribe`.
 *
 * An engine is loaded once (read-only model) and then runs batches of
 * requests of ONE modality, which it declares (ops.modality; NULL means
 * "transcribe"); the worker serves that modality's topic:
 *   transcribe  run_batch: each request carries 16 kHz mono PCM; each output
 *               slot gets a transcript or a per-request error;
 *   speak       run_speak_batch: each request carries UTF-8 text; each output
 *               slot gets mono PCM, timings (JSON + WebVTT) or an error.
 * One bad input never fails the batch.
 *
 * Engines are registered in workers/engine.c's table by name:
 *   "null"    decodes and measures audio, runs no model (says so in its output)
 *   "piper"   speak: Piper (VITS) voices in C (models/voice, workers/engine_piper.c)
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

/** One speak job for run_speak_batch. */
typedef struct kiln_speak_request_s {
    const char *job_id;
    const char *text;      /* UTF-8, NUL-terminated */
    const char *voice;     /* NULL or "": the engine's default voice */
} kiln_speak_request_t;

/** What run_speak_batch makes of one request. Release with kiln_speech_clear(). */
typedef struct kiln_speech_s {
    kiln_err_t err;        /* per-request result; KILN_OK on success */
    char error[256];       /* reason when err != KILN_OK */
    char voice[64];        /* the voice that spoke */
    float *pcm;            /* mono samples in [-1, 1] at sample_rate (malloc'ed) */
    size_t n_samples;
    int sample_rate;
    long long characters;  /* code points of the text */
    int n_sentences;
    double duration_s;     /* n_samples / sample_rate */
    char *timings_json;    /* word and sentence timings (malloc'ed) */
    char *vtt;             /* WebVTT, one cue per sentence (malloc'ed) */
    char *info_json;       /* engine-specific JSON object text (may be NULL) */
} kiln_speech_t;

typedef struct kiln_engine_ops_s {
    const char *name;
    const char *description;
    const char *modality;  /* "transcribe" (also when NULL) or "speak" */
    /* loads the model; returns engine state or NULL with errstr */
    void *(*load)(const kiln_conf_t *conf, char *errstr, size_t errstr_size);
    /* transcribe: runs n requests; fills out[0..n-1]; returns non-OK only if
     * the whole batch failed */
    kiln_err_t (*run_batch)(void *state, const kiln_asr_request_t *reqs, int n,
                            kiln_transcript_t *out);
    /* speak: the same contract for text requests */
    kiln_err_t (*run_speak_batch)(void *state, const kiln_speak_request_t *reqs, int n,
                                  kiln_speech_t *out);
    void (*destroy)(void *state);
} kiln_engine_ops_t;

typedef struct kiln_engine_s kiln_engine_t;

/** Loads engine \p name. @returns NULL with errstr for an unknown name or a load failure. */
kiln_engine_t *kiln_engine_new(const char *name, const kiln_conf_t *conf, char *errstr,
                               size_t errstr_size);
/** Runs a batch; see kiln_engine_ops_t.run_batch. \p out must be zeroed by the caller. */
kiln_err_t kiln_engine_run_batch(kiln_engine_t *eng, const kiln_asr_request_t *reqs, int n,
                                 kiln_transcript_t *out);
/**
 * Runs a batch of speak requests; see kiln_engine_ops_t.run_speak_batch.
 * \p out must be zeroed by the caller. @returns KILN_ERR__UNSUPPORTED for an
 * engine of another modality.
 */
kiln_err_t kiln_engine_run_speak_batch(kiln_engine_t *eng, const kiln_speak_request_t *reqs,
                                       int n, kiln_speech_t *out);
const char *kiln_engine_name(const kiln_engine_t *eng);
/** @returns the modality the engine serves ("transcribe", "speak"). */
const char *kiln_engine_modality(const kiln_engine_t *eng);
void kiln_engine_destroy(kiln_engine_t *eng);
/** Lists the registered engines ("a, b, c") into \p out. */
void kiln_engine_list(char *out, size_t out_size);

/** Frees what a transcript owns and zeroes it. NULL is fine. */
void kiln_transcript_clear(kiln_transcript_t *t);

/** Frees what a speech result owns and zeroes it. NULL is fine. */
void kiln_speech_clear(kiln_speech_t *s);

#ifdef __cplusplus
}
#endif
#endif
