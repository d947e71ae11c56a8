/*
 * kiln/whisper.h - the Whisper speech-recognition model, on the CPU
 * (kernels' "cpu" backend: threaded, vectorised; docs/whisper.md).
 *
 * A kiln_whisper_model_t holds the read-only weights, vocabulary and mel
 * filters; it is loaded once and may be shared by threads. Each call to
 * kiln_whisper_transcribe() takes its own workspace (big buffers kept by
 * the model for the next call, one per concurrent call), so calls on the
 * same model from different threads are safe.
 *
 * Formats read (hyperparameters come from the file, tiny .. large-v3,
 * 80 or 128 mel bins):
 *   - CTranslate2 directory (model.bin + vocabulary.txt [+ config.json]),
 *     float32 / float16 / bfloat16 / int8 weights, as used by faster-whisper;
 *   - whisper.cpp ggml-*.bin (f32 / f16 tensors);
 *   - Hugging Face directory (model.safetensors + config.json + vocab.json /
 *     added_tokens.json or tokenizer.json [+ generation_config.json]),
 *     F32 / F16 / BF16 tensors, or the model.safetensors file itself.
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
    int n_threads;           /* CPU threads (kernels' pool); 0: all CPUs online */
    int max_batch;           /* 30 s windows decoded at once (>= 1): a window that
                              * finishes is replaced at once by the next one */
    int beam_size;           /* 1: greedy; > 1: beam search (CTranslate2's, as
                              * faster-whisper runs it; default 5) */
    float patience;          /* beam: stop after round(beam_size * patience)
                              * finished hypotheses (1) */
    float length_penalty;    /* beam and sampling: rank hypotheses by
                              * sum log p / len^length_penalty (1) */
    int best_of;             /* hypotheses sampled at a temperature > 0 (5) */
    float temperatures[8];   /* fallback schedule: the window is decoded at
                              * temperatures[0] (0: beam/greedy), and again at
                              * the next one while it fails the thresholds */
    int n_temperatures;      /* entries used (1: no fallback); default 6:
                              * 0, 0.2, 0.4, 0.6, 0.8, 1.0 */
    float compression_ratio_threshold; /* fall back when the text's gzip ratio
                              * is above this (2.4; <= 0: off) */
    float logprob_threshold; /* fall back when the avg log-prob is below (-1.0);
                              * also the no-speech rule's log-prob (below) */
    float no_speech_threshold;   /* skip a window when no_speech_prob is above
                              * it and its avg log-prob is below logprob_threshold */
    int condition_on_previous_text; /* 1: the previous windows' tokens (up to
                              * 223) prompt the next window (default 1) */
    float prompt_reset_on_temperature; /* forget the prompt after a window
                              * decoded at a temperature above this (0.5) */
    unsigned long long seed; /* sampling RNG seed (per window: seed, file, seek) */
    const char *language;    /* NULL or "": detect on the first window (multilingual) */
    int timestamps;          /* 1: timestamp tokens and segment splitting */
    int suppress_blank;      /* 1: no blank / EOT as the first token */
    int max_initial_timestamp_index; /* first timestamp <= this * 20 ms (50 = 1 s) */
    int max_new_tokens;      /* per window; 0: n_text_ctx / 2 */
    int suppress_eot;        /* benchmarks: 1 never samples EOT, so that every window
                              * decodes max_new_tokens tokens (0) */
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
    float temperature;       /* of the decoding that produced it (fallback) */
    float compression_ratio; /* of its window's text (gzip) */
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
 * Loads a model from \p path: a CTranslate2 directory (or its model.bin), a
 * whisper.cpp ggml file, or a Hugging Face directory (or its
 * model.safetensors). Every tensor's name, dtype and shape is checked.
 * @returns the model, or NULL with a message naming the file (and tensor) in
 *          \p errstr.
 */
kiln_whisper_model_t *kiln_whisper_model_load(const char *path, char *errstr,
                                              size_t errstr_size);

/**
 * Chooses the backend every later call on \p m runs on: "cpu" (the
 * default: the fast CPU ops, or the reference ones under KILN_KERNELS=ref),
 * "ref", or "cuda" (a kiln built with make CUDA=1, on a machine with a GPU).
 * A device backend gets a copy of the weights (fp32; uploaded once, here)
 * and keeps every activation and cache on the device; logits come back to
 * the host for the search (a second call for the same backend only sets the
 * precision). \p precision (NULL: the backend's current mode)
 * sets the matrix products' input rounding: "fp32", "tf32", "fp16" or
 * "bf16" (fp32 accumulation; the CPU has fp32 only).
 * The backend's mode is process-wide (the CUDA table has one cuBLAS handle
 * and one stream, not for concurrent use), so the model sets its precision
 * again at the start of each call, under the process-wide lock that calls
 * on a device backend take: concurrent calls (worker slots) run one after
 * the other, and a voice on the same GPU keeps its own precision.
 * Not thread-safe: call it before the model is shared, or while no call
 * runs on it.
 * @returns KILN_OK; KILN_ERR__UNSUPPORTED with the reason in \p errstr when
 * the backend is not available (built without CUDA, no GPU visible);
 * KILN_ERR__INVALID_ARG for an unknown name or precision; KILN_ERR__NOMEM
 * when the weights do not fit (the model then stays on the CPU).
 */
kiln_err_t kiln_whisper_model_set_backend(kiln_whisper_model_t *m, const char *backend,
                                          const char *precision, char *errstr,
                                          size_t errstr_size);

/** @returns the name of the backend \p m runs on ("cpu", "cuda", "ref"). */
const char *kiln_whisper_model_backend(const kiln_whisper_model_t *m);

/** Frees the model. NULL is fine. */
void kiln_whisper_model_destroy(kiln_whisper_model_t *m);

/** @returns the model's hyperparameters (valid for the model's lifetime). */
const kiln_whisper_hparams_t *kiln_whisper_model_hparams(const kiln_whisper_model_t *m);

/** @returns "ct2", "ggml" or "hf". */
const char *kiln_whisper_model_format(const kiln_whisper_model_t *m);

/** @returns the text of token \p id (raw bytes, "" when out of range). */
const char *kiln_whisper_token_text(const kiln_whisper_model_t *m, int id);

/**
 * @returns the default decoding parameters: faster-whisper's transcribe()
 * defaults (beam 5, patience 1, length penalty 1, temperature fallback
 * 0 .. 1 by 0.2 with best_of 5, compression ratio 2.4, log-prob -1,
 * no-speech 0.6, conditioning on previous text, prompt reset above 0.5,
 * timestamps), plus kiln's no_speech_skip.
 */
kiln_whisper_params_t kiln_whisper_default_params(void);

/**
 * @returns the parameters of the golden files (tests/golden/): greedy, one
 * temperature (0, no fallback), no conditioning on previous text; the rest
 * as kiln_whisper_default_params().
 */
kiln_whisper_params_t kiln_whisper_greedy_params(void);

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

/**
 * @returns the decoding parameters of a "whisper" engine state (the value
 * load() of kiln_engine_whisper_ops returned), which the caller may change
 * between batches (`kiln transcribe` does); NULL for NULL.
 */
kiln_whisper_params_t *kiln_whisper_engine_params(void *engine_state);

#ifdef __cplusplus
}
#endif
#endif
