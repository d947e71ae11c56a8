/*
 * kiln/voice.h - speech synthesis with Piper (VITS) voices, CPU reference.
 *
 * A kiln_voice_t holds one voice: its read-only weights (converted from the
 * Piper .onnx by models/voice/convert.py into model.safetensors +
 * config.json) and its front-end settings (espeak-ng voice, phoneme-id map,
 * inference scales, sample rate). It is loaded once and may be shared by
 * threads: every synthesis call allocates its own state.
 *
 * The pipeline is Piper's:
 *   text --espeak-ng (libespeak-ng)--> IPA per clause, sentences split at
 *   . ? ! --NFD, phoneme_id_map--> ids (BOS, PAD between phonemes, EOS)
 *   --text encoder (transformer, relative positions)--> m_p, logs_p
 *   --stochastic duration predictor (reverse flows; noise_w = 0: deterministic)
 *   --> frames per id --monotonic expansion--> z_p = m_p + noise * exp(logs_p)
 *   --flow (residual coupling, reverse)--> z --HiFi-GAN decoder--> audio.
 *
 *   char err[256];
 *   kiln_voice_t *v = kiln_voice_load("var/models/voices/en_US-joe-medium", err, sizeof(err));
 *   kiln_voice_params_t p = kiln_voice_default_params();
 *   kiln_voice_audio_t a = {0};
 *   if (kiln_voice_speak(v, "Hello, world!", &p, &a, err, sizeof(err)) == KILN_OK)
 *       write a.pcm[0 .. a.n_samples) at kiln_voice_sample_rate(v);
 *   kiln_voice_audio_clear(&a);
 *   kiln_voice_destroy(v);
 *
 * Threading: espeak-ng is not thread-safe; the front end serialises its
 * calls with a process-wide lock. The model runs its ops on the kernels'
 * CPU pool (kiln_kernels_set_threads()).
 */
#ifndef KILN_VOICE_H
#define KILN_VOICE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kiln/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_voice_s kiln_voice_t;

/** Synthesis parameters; start from kiln_voice_default_params(). */
typedef struct kiln_voice_params_s {
    float noise_scale;   /* < 0: the voice's (inference.noise_scale) */
    float length_scale;  /* < 0: the voice's; > 1 is slower speech */
    float noise_w;       /* < 0: the voice's; 0 makes durations deterministic */
    int speaker;         /* multi-speaker voices; ignored otherwise */
    uint64_t seed;       /* noise generator seed (same seed, same audio) */
    int normalize;       /* 1: scale each sentence to peak 1 as Piper does (default) */
    float sentence_silence; /* seconds of silence after each sentence (0) */
    /* device backend only (kiln_voice_set_backend()): output samples per
     * sub-batch of the flow and decoder, which bounds device memory to
     * about 200 bytes per sample (0: 4194304, 190 s of audio at 22050 Hz) */
    size_t device_batch_samples;
} kiln_voice_params_t;

/** @returns the defaults: the voice's scales, speaker 0, seed 1, normalize on. */
kiln_voice_params_t kiln_voice_default_params(void);

/**
 * Loads a voice from \p path: a directory holding config.json and
 * model.safetensors (what models/voice/fetch.sh installs), or the path of
 * its config.json. Every tensor's name and shape is checked against the
 * hyper-parameters of config.json.
 * @returns the voice, or NULL with a message in \p errstr.
 */
kiln_voice_t *kiln_voice_load(const char *path, char *errstr, size_t errstr_size);

/** Frees a voice; NULL does nothing. */
void kiln_voice_destroy(kiln_voice_t *v);

/**
 * Chooses where the model runs: "cpu" (the default: the threaded CPU
 * engine, one sequence per thread), "cuda", "auto" (cuda when a GPU is
 * visible, else cpu) or "ref" (the device code path on the host, over the
 * reference ops: for tests). A device backend gets a copy of the weights
 * (fp32, uploaded once, here) and runs each batch as one ragged batch of
 * kernel ops, text encoder to decoder (models/voice/vits_dev.c); the host
 * only turns the duration predictor's output into frame counts and draws
 * the noise, so the same seed gives the same durations and, to float
 * rounding, the same audio on every backend. \p precision: the matmul
 * mode of the flow and decoder (fp32, tf32, fp16, bf16; NULL: leave it);
 * the text side always runs fp32. Call it before synthesis, not while
 * another thread synthesises with \p v.
 * @returns KILN_OK, KILN_ERR__INVALID_ARG (bad name), KILN_ERR__UNSUPPORTED
 *          (backend not available), KILN_ERR__NOMEM.
 */
kiln_err_t kiln_voice_set_backend(kiln_voice_t *v, const char *backend, const char *precision,
                                  char *errstr, size_t errstr_size);

/** @returns the backend \p v runs on ("cpu", "cuda", "ref"). */
const char *kiln_voice_backend(const kiln_voice_t *v);

/** @returns the output sample rate (Hz). */
int kiln_voice_sample_rate(const kiln_voice_t *v);

/** @returns audio samples per duration frame (the decoder's hop, 256). */
int kiln_voice_hop_length(const kiln_voice_t *v);

/** @returns the espeak-ng voice name of the voice ("en-us"). */
const char *kiln_voice_espeak_voice(const kiln_voice_t *v);

/* ---- front end ---------------------------------------------------------- */

/** One sentence: phoneme ids ready for the model, and where its words are. */
typedef struct kiln_voice_sentence_s {
    int *ids;            /* BOS, PAD, (phoneme, PAD)*, EOS */
    int n_ids;
    char *phonemes;      /* the IPA of the sentence (UTF-8), for messages */
    char *text;          /* the source text of the sentence (UTF-8) */
    /* phoneme words (runs between spaces; punctuation belongs to the word
     * before it): word w spans ids [word_start[w], word_end[w]), and the
     * space after it up to word_start[w + 1] */
    int n_words;
    int *word_start;     /* n_words + 1 entries (the last one is n_ids - 1: EOS) */
    int *word_end;       /* n_words entries */
} kiln_voice_sentence_t;

typedef struct kiln_voice_text_s {
    kiln_voice_sentence_t *s;
    int n;
    int n_unknown;       /* phonemes not in the voice's map (skipped, as Piper does) */
} kiln_voice_text_t;

/*
 * The longest sentence kiln_voice_phonemize() makes, in phonemes (about
 * 20 s of speech; a sentence's time and memory in the model grow with its
 * length, the encoder's quadratically). Piper has no limit; the golden
 * corpus's longest sentence has 168.
 */
#define KILN_VOICE_MAX_SENTENCE_PHONEMES 400

/**
 * Phonemises \p text (UTF-8) as Piper does: espeak-ng clauses with their
 * terminators (. , : ; ? !) kept as phonemes, split into sentences, each
 * mapped to ids with the voice's phoneme_id_map. Raw phonemes may be given
 * in [[ double brackets ]]. Empty sentences are dropped. Unlike Piper, a
 * sentence that would pass KILN_VOICE_MAX_SENTENCE_PHONEMES ends at the
 * clause boundary before (a comma, ...), and a clause longer than that is
 * cut at a space.
 * @returns KILN_OK, KILN_ERR_BAD_INPUT (invalid UTF-8, nothing to say), or
 *          KILN_ERR__NOMEM; free \p out with kiln_voice_text_clear().
 */
kiln_err_t kiln_voice_phonemize(const kiln_voice_t *v, const char *text, kiln_voice_text_t *out,
                                char *errstr, size_t errstr_size);

/** Frees what kiln_voice_phonemize() allocated and zeroes \p t. */
void kiln_voice_text_clear(kiln_voice_text_t *t);

/* ---- model -------------------------------------------------------------- */

/** Audio of one or more sentences, and the durations behind it. */
typedef struct kiln_voice_audio_s {
    float *pcm;          /* n_samples mono samples in [-1, 1] */
    size_t n_samples;
    int *durations;      /* frames (hop_length samples) per id, n_ids entries */
    int n_ids;
    /* sentence boundaries in samples (kiln_voice_speak): sentence i is
     * [sent_start[i], sent_start[i+1]); n_sent + 1 entries */
    size_t *sent_start;
    int n_sent;
} kiln_voice_audio_t;

/**
 * Runs the model on B id sequences at once. On the CPU each sequence runs
 * unpadded, one per pool thread at a time (a lone sequence spreads its ops
 * over the pool); sequence b's noise comes from seed + b * 0x9e3779b9, so
 * its audio does not depend on the schedule or the thread count. out[b]
 * gets the raw model output for sequence b (no normalisation, no silence)
 * and its durations; on failure no out[b] holds anything.
 * @returns KILN_OK, KILN_ERR__INVALID_ARG (an id outside the vocabulary, an
 *          empty sequence), KILN_ERR__NOMEM.
 */
kiln_err_t kiln_voice_synth_ids(kiln_voice_t *v, const int *const *ids, const int *n_ids, int B,
                                const kiln_voice_params_t *p, kiln_voice_audio_t *out,
                                char *errstr, size_t errstr_size);

/**
 * Text to audio: phonemise, synthesise every sentence (in one batch), and
 * join them (normalised and followed by sentence_silence as requested).
 * out->durations holds the ids of all sentences in order.
 */
kiln_err_t kiln_voice_speak(kiln_voice_t *v, const char *text, const kiln_voice_params_t *p,
                            kiln_voice_audio_t *out, char *errstr, size_t errstr_size);

/**
 * kiln_voice_speak() on text already phonemised (kiln_voice_phonemize()):
 * all of \p tx's sentences in one batch, joined in order.
 */
kiln_err_t kiln_voice_speak_text(kiln_voice_t *v, const kiln_voice_text_t *tx,
                                 const kiln_voice_params_t *p, kiln_voice_audio_t *out,
                                 char *errstr, size_t errstr_size);

/**
 * Word and sentence timings of \p a (from kiln_voice_speak_text() on \p tx):
 * the frames of each id, in seconds. Writes JSON when \p vtt is 0:
 *   {"sample_rate":R,"duration":S,"sentences":[{"start","end","text",
 *    "phonemes","words":[{"start","end","phonemes"}]}]}
 * and WebVTT (one cue per sentence) otherwise.
 * @returns 0, -1 on a write error.
 */
int kiln_voice_write_timings(const kiln_voice_t *v, const kiln_voice_text_t *tx,
                             const kiln_voice_audio_t *a, int vtt, FILE *fp);

/** Frees the buffers of \p a and zeroes it. */
void kiln_voice_audio_clear(kiln_voice_audio_t *a);

#ifdef __cplusplus
}
#endif
#endif
