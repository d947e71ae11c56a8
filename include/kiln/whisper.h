/*
 * kiln/whisper.h - the Whisper speech-recognition model (CPU reference).
 *
 * A kiln_whisper_model_t holds the read-only weights, vocabulary and mel
 * filters; it is loaded once and may be shared by threads. Each call to
 * kiln_whisper_transcribe() allocates its own decoding state, so calls on
 * the same model from different threads are safe.
 *
 * Formats read (hyperparameters come from the file, tiny .. large-v3,
 * 80 or 128 mel bins):
 *   - CTranslate2 directory (model.bin + vocabulary.txt [+ config.json]),
 *     float32 / float16 / bfloat16 / int8 weights, as used by faster-whisper;
 *   - whisper.cpp ggml-*.bin (f32 / f16 tensors).
 *
 *   char err[256];
 *   kiln_whisper_model_t *m = kiln_whisper_model_load("var/models/whisper-tiny.en",
 *                                                     err, sizeof(err));
 *   kiln_whisper_params_t p = kiln_whisper_default_params();
 *   const float *pcm[1] = {samples}; size_t n[1] = {n_samples};
 *   kiln_whisper_result_t res[1] = {{0}};
 *   kiln_whisper_transcribe(m, &p, pcm, n, 1, res);
 *   puts(res[0].text);
 *   kiln_whisper_result_clear(&res[0]);
 *   kiln_whisper_model_destroy(m);
 */
#ifndef KILN_WHISPER_H
#define KILN_WHISPER_H

#include <stddef.h>

#include "kiln/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_whisper_model_s kiln_whisper_model_t;

typedef struct kiln_whisper_hparams_s {
    int n_vocab;
    int n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer;
    int n_text_ctx, n_text_state, n_text_head, n_text_layer;
    int n_mels;
} kiln_whisper_hparams_t;

typedef struct kiln_whisper_params_s {
    int n_threads;           /* BLAS threads; 0: library default */
    int max_batch;           /* 30 s windows per encoder/decoder batch (>= 1) */
    int beam_size;           /* 1: greedy (the only mode implemented so far) */
    const char *language;    /* NULL or "": detect (multilingual models) */
    int timestamps;          /* 1: timestamp tokens and segment splitting */
    int suppress_blank;      /* 1: no blank / EOT as the first token */
    int max_initial_timestamp_index; /* first timestamp <= this * 20 ms (50 = 1 s) */
    float no_speech_threshold;   /* skip a window when no_speech_prob is above it ... */
    float logprob_threshold;     /* ... and its avg log-prob is below this */
    int max_new_tokens;      /* per window; 0: n_text_ctx / 2 */
    float no_speech_skip;    /* kiln's addition: skip a window whose no_speech_prob
                              * is above this whatever its log-prob (0.9; > 1: off).
                              * Whisper alone says "you" on 30 s of silence
                              * (no_speech_prob 0.95, avg log-prob -0.7); real
                              * speech of the dev set stays below 0.35. Windows of
                              * digital silence (all samples 0) are skipped unrun. */
} kiln_whisper_params_t;

typedef struct kiln_whisper_segment_s {
    double start, end;       /* seconds */
    char *text;              /* UTF-8, malloc'ed */
    int *tokens;             /* the window's tokens of this segment (timestamps included) */
    int n_tokens;
    float avg_logprob, no_speech_prob;
} kiln_whisper_segment_t;

typedef struct kiln_whisper_result_s {
    kiln_err_t err;          /* per input: KILN_OK or why it failed */
    char error[256];
    char *text;              /* all segments joined, leading space trimmed ("" if none) */
    kiln_whisper_segment_t *segments;
    int n_segments;
    int *tokens;             /* every segment's tokens, in order */
    int n_tokens;
    double duration_s;
    char language[8];
    int n_windows;           /* 30 s windows decoded */
} kiln_whisper_result_t;

/**
 * Loads a model from \p path: a CTranslate2 directory (or its model.bin) or a
 * whisper.cpp ggml file. Every tensor's name, dtype and shape is checked.
 * @returns the model, or NULL with a message naming the file (and tensor) in
 *          \p errstr.
 */
kiln_whisper_model_t *kiln_whisper_model_load(const char *path, char *errstr,
                                              size_t errstr_size);

/** Frees the model. NULL is fine. */
void kiln_whisper_model_destroy(kiln_whisper_model_t *m);

/** @returns the model's hyperparameters (valid for the model's lifetime). */
const kiln_whisper_hparams_t *kiln_whisper_model_hparams(const kiln_whisper_model_t *m);

/** @returns "ct2" or "ggml". */
const char *kiln_whisper_model_format(const kiln_whisper_model_t *m);

/** @returns the text of token \p id (raw bytes, "" when out of range). */
const char *kiln_whisper_token_text(const kiln_whisper_model_t *m, int id);

/** @returns the default decoding parameters (greedy, timestamps, thresholds as Whisper). */
kiln_whisper_params_t kiln_whisper_default_params(void);

/**
 * Transcribes \p n inputs (16 kHz mono float PCM) as one batch: the 30 s
 * windows of all inputs are encoded and decoded together, up to
 * p->max_batch at a time, each input seeking through its own audio.
 * Fills out[0..n-1] (zeroed by the caller); a failed input has err set and
 * does not fail the others.
 * @returns KILN_OK, or an error only when the whole batch failed (memory).
 */
kiln_err_t kiln_whisper_transcribe(const kiln_whisper_model_t *m,
                                   const kiln_whisper_params_t *p, const float *const *pcm,
                                   const size_t *n_samples, int n, kiln_whisper_result_t *out);

/** Frees what \p r owns and zeroes it. NULL is fine. */
void kiln_whisper_result_clear(kiln_whisper_result_t *r);

/**
 * Computes Whisper's log-mel spectrogram of \p pcm: out is [n_mels, n_frames]
 * (malloc'ed, caller frees) with n_frames = n_samples / 160 + 1, normalised
 * with the global max (max-8 clamp, (x+4)/4).
 * @returns KILN_OK or KILN_ERR__NOMEM.
 */
kiln_err_t kiln_whisper_log_mel(const kiln_whisper_model_t *m, const float *pcm,
                                size_t n_samples, float **out, int *n_frames);

/**
 * Runs the encoder on \p B mel windows mel[B, n_mels, 3000] into
 * out[B, n_audio_ctx, n_audio_state] (caller-allocated).
 */
kiln_err_t kiln_whisper_encode(const kiln_whisper_model_t *m, const float *mel, int B,
                               float *out);

#ifdef __cplusplus
}
#endif
#endif
