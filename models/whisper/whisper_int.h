/*
 * models/whisper/whisper_int.h - internals shared by the Whisper loaders,
 * the front end and the model (not a public header).
 *
 * Both loaders (ct2.c, ggml.c) map the file, index its tensors into a
 * kiln_wtab_t (name, dtype, shape, pointer into the mapping), then copy
 * every tensor the model needs into fp32 buffers of the canonical layout
 * below (CTranslate2's: fused QKV for self-attention, fused KV for
 * cross-attention), checking name, dtype and shape on the way.
 */
#ifndef KILN_WHISPER_INT_H
#define KILN_WHISPER_INT_H

#include <stddef.h>
#include <stdint.h>

#include "kiln/kernels.h"
#include "kiln/whisper.h"

/* dtypes of indexed tensors */
typedef enum { KILN_DT_F32, KILN_DT_F16, KILN_DT_BF16, KILN_DT_I8, KILN_DT_I16, KILN_DT_I32,
               KILN_DT_OTHER } kiln_dtype_t;

typedef struct kiln_wtensor_s {
    char *name;
    kiln_dtype_t dtype;
    int rank;
    int64_t shape[4];        /* outermost first (row-major) */
    const void *data;        /* into the mapping */
    size_t nbytes;
} kiln_wtensor_t;

typedef struct kiln_wtab_s {
    const char *path;        /* for messages */
    kiln_wtensor_t *t;
    int n, cap;
} kiln_wtab_t;

typedef struct kiln_wenc_layer_s {
    float *ln1_g, *ln1_b, *w_qkv, *b_qkv, *w_o, *b_o;
    float *ln2_g, *ln2_b, *w_fc1, *b_fc1, *w_fc2, *b_fc2;
} kiln_wenc_layer_t;

typedef struct kiln_wdec_layer_s {
    float *ln1_g, *ln1_b, *w_qkv, *b_qkv, *w_o, *b_o;      /* self-attention */
    float *lnx_g, *lnx_b, *wx_q, *bx_q, *wx_kv, *bx_kv, *wx_o, *bx_o; /* cross */
    float *ln2_g, *ln2_b, *w_fc1, *b_fc1, *w_fc2, *b_fc2;
    /* the same linear weights packed for decoder steps (kiln_pack16_cpu) */
    float *p_qkv, *p_o, *px_q, *px_o, *p_fc1, *p_fc2;
} kiln_wdec_layer_t;

typedef struct kiln_wvocab_s {
    int n;
    char **tok;              /* raw bytes of each token, NUL-terminated */
    int eot, sot, translate, transcribe, sot_lm, sot_prev, no_speech, no_timestamps,
        timestamp_begin, lang_begin, n_langs;
    int *suppress;           /* suppressed at every step */
    int n_suppress;
    int suppress_begin[4];   /* suppressed at the first step (blank, EOT) */
    int n_suppress_begin;
} kiln_wvocab_t;

struct kiln_whisper_model_s {
    kiln_whisper_hparams_t hp;
    char format[8];
    char path[512];
    float *conv1_w, *conv1_b, *conv2_w, *conv2_b, *enc_pos, *enc_ln_g, *enc_ln_b;
    kiln_wenc_layer_t *enc;
    float *tok_emb, *dec_pos, *dec_ln_g, *dec_ln_b;
    kiln_wdec_layer_t *dec;
    float *mel_filters;      /* [n_mels, 201] */
    float *tok_emb_p;        /* tok_emb packed: the output projection of a step */
    struct kiln_wcache_s *cache; /* reusable per-call workspaces (whisper.c) */
    kiln_wvocab_t vocab;
    /* every fp32 buffer above, freed together */
    void **bufs;
    size_t *buf_n;           /* floats of each bufs[i] */
    int n_bufs, cap_bufs;
    int n_bufs_dense;        /* bufs[0, n_bufs_dense): what the loaders took; the
                              * packed copies of kiln_whisper_prepare_ follow */
    /* the backend (kiln_whisper_model_set_backend): kk NULL is the CPU table
     * of kiln_kernels_get(KILN_BACKEND_CPU) at each call; wd is the model
     * whose weight pointers the ops get: m itself on a host-memory backend,
     * else a mirror holding the backend's copies (dense layout only: no
     * packed weights), with dev_bufs its allocations */
    const kiln_kernels_t *kk;
    char precision[8]; /* the matmul precision set_backend named ("": the backend's) */
    struct kiln_whisper_model_s *wd;
    void **dev_bufs;
    int n_dev_bufs;
};

/* ---- tensor table (loader.c) */
int kiln_wtab_add(kiln_wtab_t *tab, const char *name, size_t name_len, kiln_dtype_t dt,
                  int rank, const int64_t *shape, const void *data, size_t nbytes);
const kiln_wtensor_t *kiln_wtab_find(const kiln_wtab_t *tab, const char *name);
void kiln_wtab_free(kiln_wtab_t *tab);
/* @returns a zeroed fp32 buffer of n values owned by the model, NULL on OOM. */
float *kiln_whisper_take_(kiln_whisper_model_t *m, size_t n);
/* Allocates every weight buffer of the canonical layout for m->hp, after
 * checking that m->hp asks for at most \p max_weights values (what the file
 * can hold): a header cannot make the loader allocate more than the file
 * could fill. @returns 0, or -1 with a message naming the file. */
int kiln_whisper_alloc_weights_(kiln_whisper_model_t *m, size_t max_weights, char *errstr,
                                size_t errstr_size);
/*
 * Copies tensor \p name into dst as fp32. Its shape, with dimensions of 1
 * dropped, must equal \p shape[0..rank-1] likewise squeezed. int8 tensors are
 * dequantised with the "<name>_scale" row scales (CTranslate2). With dst
 * NULL, only checks name, dtype, shape and size.
 * @returns 0, or -1 with a message naming the file and the tensor.
 */
int kiln_wtab_copy(const kiln_wtab_t *tab, const char *name, int rank, const int64_t *shape,
                   float *dst, char *errstr, size_t errstr_size);
/* Slaney mel filter bank as Whisper/librosa: out [n_mels, n_fft/2+1]. */
void kiln_whisper_mel_filters(float *out, int n_mels, int n_fft, int sr);
/* Fills the special-token ids from n_vocab (whisper.cpp's arithmetic). */
void kiln_whisper_vocab_specials(kiln_wvocab_t *v, int n_vocab);
/* Default suppress lists (openai's non-speech symbols) when the file has none. */
int kiln_whisper_vocab_default_suppress(kiln_wvocab_t *v);
void kiln_whisper_vocab_free(kiln_wvocab_t *v);

/* Packs the decoder weights and creates the workspace cache (after a loader). */
int kiln_whisper_prepare_(kiln_whisper_model_t *m, char *errstr, size_t errstr_size);
/* Frees the workspace cache (model destroy). */
void kiln_whisper_cache_free_(kiln_whisper_model_t *m);
/* Frees the backend's copy of the weights (model destroy; whisper.c). */
void kiln_whisper_backend_free_(kiln_whisper_model_t *m);

/*
 * A model of shape \p hp with random weights (seeded; the same seed gives
 * the same model): matrices uniform with variance 1/fan_in, layer-norm
 * gains near 1, small biases, a vocabulary of n_vocab made-up tokens with
 * Whisper's special-token layout. For tests and benchmarks of real shapes
 * (large-v3: 1.55 G weights) without a checkpoint file.
 * @returns the model (kiln_whisper_model_destroy), or NULL with a message.
 */
kiln_whisper_model_t *kiln_whisper_model_random_(const kiln_whisper_hparams_t *hp,
                                                 uint64_t seed, char *errstr,
                                                 size_t errstr_size);

/* ---- format loaders */
int kiln_whisper_load_ct2_(kiln_whisper_model_t *m, const char *dir, const char *bin,
                           char *errstr, size_t errstr_size);
int kiln_whisper_load_ggml_(kiln_whisper_model_t *m, const char *path, char *errstr,
                            size_t errstr_size);
int kiln_whisper_load_hf_(kiln_whisper_model_t *m, const char *dir, const char *file,
                          char *errstr, size_t errstr_size);
/* GPT-2 byte-level token text (vocabulary.txt, vocab.json) -> raw bytes, malloc'ed. */
char *kiln_whisper_bpe_bytes_(const char *s, size_t len);

/* mmap helper */
typedef struct kiln_wmap_s {
    const uint8_t *p;
    size_t size;
} kiln_wmap_t;
int kiln_wmap_open(kiln_wmap_t *mp, const char *path, char *errstr, size_t errstr_size);
void kiln_wmap_close(kiln_wmap_t *mp);
/* Indexes a mapped safetensors file into \p tab (names, dtypes, shapes, data
 * in bounds; with \p check_sizes, each tensor's byte size must also match its
 * shape and dtype). Errors name the file and the tensor. */
int kiln_wtab_index_safetensors(kiln_wtab_t *tab, const kiln_wmap_t *mp, int check_sizes,
                                char *errstr, size_t errstr_size);

float kiln_half_to_float(uint16_t h);

#endif
