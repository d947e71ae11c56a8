/*
 * models/whisper/whisper.c - the Whisper model on the kernels of
 * include/kiln/kernels.h: encoder, decoder with KV caches, greedy decoding,
 * beam search and temperature sampling with Whisper's logit rules, and
 * long-form transcription in 30 s windows.
 *
 * Shapes (see kernels.h for the letters): a 30 s window is mel [M, 3000];
 * the encoder turns it into [Ta, C] (Ta = n_audio_ctx = 1500). Each window
 * being decoded owns a cross-attention slot, its keys and values computed
 * once: K^T [L, C, Ta] and V [L, Ta, C]. Each hypothesis (greedy: 1; beam:
 * beam_size; sampling: best_of) owns a self-attention slot, K^T [L, C, tmax]
 * and V [L, tmax, C]; a step appends one column of K^T and one row of V.
 *
 * Decoding follows faster-whisper 1.2.1 (generate_segments,
 * generate_with_fallback) on CTranslate2 4.x (WhisperReplica::generate,
 * GreedySearch, BeamSearch), which is the reference of tests/golden/:
 *   prompt  [sot_prev, previous text (<= 223 tokens)] + [sot] (+ [lang,
 *           transcribe] for multilingual models); no_speech_prob is the
 *           softmax of the logits at sot;
 *   filters suppress blank/EOT at the first step, the suppress list, and
 *           the timestamp rules (pairs, monotonic, the first token is a
 *           timestamp <= 1 s, timestamps win when their total probability
 *           beats every text token);
 *   search  greedy; beam (2*beam candidates a step, finished hypotheses
 *           replaced by the next candidates, stop after round(beam *
 *           patience) finished, best by score / len^length_penalty);
 *           sampling at temperature T (best_of independent samples);
 *   fallback a window whose text's gzip compression ratio is above 2.4 or
 *           whose avg log-prob is below -1 is decoded again at the next
 *           temperature (not when it is silence: no_speech_prob > 0.6 and
 *           log-prob below -1); when all fail, the best avg log-prob among
 *           those under the ratio threshold wins;
 *   window  skipped when no_speech_prob > 0.6 and avg log-prob <= -1, and
 *           (kiln's additions) when no_speech_prob > p->no_speech_skip (0.9)
 *           or every sample is 0: Whisper itself says "you" on silence;
 *   seek    to the last complete timestamp pair, or past the window.
 *
 * Batching: up to max_batch windows decode together, from different
 * inputs (one window per input at a time, since the next window's start
 * and prompt depend on this one). A window that finishes frees its slot,
 * and the next window of any input is encoded into it before the next
 * step (continuous batching); every step runs all live hypotheses of all
 * windows as one set of rows through the decoder.
 *
 * Memory: the big buffers live in a workspace that the model keeps for the
 * next call (a free list under a mutex, so concurrent calls each get their
 * own); they grow to the largest batch seen and are freed with the model.
 */
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kiln/kernels.h"
#include "kiln/log.h"
#include "models/whisper/whisper_int.h"

#define KILN_W_FRAMES 3000 /* mel frames per 30 s window */
#define KILN_W_TIME_PREC 0.02
#define KILN_W_FRAME_S 0.01
#define KILN_W_KMAX 16     /* beam_size and best_of limit */
#define KILN_W_PACKED_ROWS 32 /* decoder rows up to which packed weights are used */

kiln_whisper_params_t kiln_whisper_default_params(void) {
    kiln_whisper_params_t p = {
        .n_threads = 0,
        .max_batch = 8,
        .beam_size = 5,
        .patience = 1.0f,
        .length_penalty = 1.0f,
        .best_of = 5,
        .temperatures = {0.0f, 0.2f, 0.4f, 0.6f, 0.8f, 1.0f},
        .n_temperatures = 6,
        .compression_ratio_threshold = 2.4f,
        .logprob_threshold = -1.0f,
        .no_speech_threshold = 0.6f,
        .condition_on_previous_text = 1,
        .prompt_reset_on_temperature = 0.5f,
        .seed = 0,
        .language = NULL,
        .timestamps = 1,
        .suppress_blank = 1,
        .max_initial_timestamp_index = 50,
        .max_new_tokens = 0,
        .no_speech_skip = 0.9f,
    };
    return p;
}

kiln_whisper_params_t kiln_whisper_greedy_params(void) {
    kiln_whisper_params_t p = kiln_whisper_default_params();
    p.beam_size = 1;
    p.n_temperatures = 1;
    p.temperatures[0] = 0.0f;
    p.condition_on_previous_text = 0;
    return p;
}

/* ---- profile (KILN_WHISPER_PROFILE=1: phase times on stderr) ------------- */

static double kiln_w_now_(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- workspaces --------------------------------------------------------- */

typedef struct kiln_wbuf_s {
    void *p;
    size_t cap;
    int dev;                 /* 1: the backend's memory (kk->alloc) */
} kiln_wbuf_t;

/* @returns b's memory grown to at least \p bytes (contents not kept), NULL on OOM. */
static void *kiln_wbuf_(kiln_wbuf_t *b, size_t bytes) {
    if (b->cap < bytes) {
        free(b->p);
        b->p = NULL;
        b->cap = 0;
        size_t want = bytes + bytes / 8 + 64;
        if (posix_memalign(&b->p, 64, want)) {
            b->p = NULL;
            return NULL;
        }
        b->cap = want;
    }
    return b->p;
}

/*
 * Buffers KILN_WB_XIN .. KILN_WB_DPTR are the ops' operands, in the
 * backend's memory (kiln_wdbuf_); on a host-memory backend DMEL, DLOGITS,
 * DIDX and DPTR are not allocated: the host buffers serve directly.
 */
enum {
    /* encoder, one window */
    KILN_WB_XIN, KILN_WB_H1, KILN_WB_COL, KILN_WB_ENC, KILN_WB_H, KILN_WB_QKV, KILN_WB_ATT,
    KILN_WB_F,
    /* decoding session */
    KILN_WB_XK, KILN_WB_XV, KILN_WB_SK, KILN_WB_SV, KILN_WB_MEL,
    KILN_WB_DX, KILN_WB_DH, KILN_WB_DQ, KILN_WB_DA, KILN_WB_DF, KILN_WB_LX, KILN_WB_ASCR,
    KILN_WB_DMEL, KILN_WB_DLOGITS, KILN_WB_DIDX, KILN_WB_DPTR,
    /* host only */
    KILN_WB_LOGITS, KILN_WB_ROWS, KILN_WB_PTRS, KILN_WB_JOBS, KILN_WB_TOKS, KILN_WB_PLOGITS,
    KILN_WB__COUNT
};

typedef struct kiln_wws_s {
    struct kiln_wws_s *next;
    const kiln_kernels_t *kk; /* the backend whose memory the operands are */
    kiln_wbuf_t b[KILN_WB__COUNT];
} kiln_wws_t;

/* @returns operand buffer i of ws grown to at least \p bytes in the backend's memory. */
static void *kiln_wdbuf_(kiln_wws_t *ws, int i, size_t bytes) {
    const kiln_kernels_t *kk = ws->kk;
    kiln_wbuf_t *b = &ws->b[i];
    if (kk->host_memory)
        return kiln_wbuf_(b, bytes);
    if (b->cap < bytes) {
        kk->free(b->p);
        b->p = NULL;
        b->cap = 0;
        size_t want = bytes + bytes / 8 + 64;
        if (!(b->p = kk->alloc(want)))
            return NULL;
        b->cap = want;
        b->dev = 1;
    }
    return b->p;
}

typedef struct kiln_wcache_s {
    pthread_mutex_t mu;
    kiln_wws_t *free;
} kiln_wcache_t;

/* @returns a workspace of backend kk (reused when one is free), NULL on OOM. */
static kiln_wws_t *kiln_ws_get_(const kiln_whisper_model_t *m, const kiln_kernels_t *kk) {
    kiln_wws_t *ws = NULL;
    pthread_mutex_lock(&m->cache->mu);
    for (kiln_wws_t **pp = &m->cache->free; *pp; pp = &(*pp)->next)
        if ((*pp)->kk == kk) {
            ws = *pp;
            *pp = ws->next;
            break;
        }
    pthread_mutex_unlock(&m->cache->mu);
    if (!ws && (ws = calloc(1, sizeof(*ws))))
        ws->kk = kk;
    return ws;
}

/* Frees a workspace's buffers, each to the memory it came from. */
static void kiln_ws_free_(kiln_wws_t *ws) {
    for (int i = 0; i < KILN_WB__COUNT; i++) {
        if (ws->b[i].dev)
            ws->kk->free(ws->b[i].p);
        else
            free(ws->b[i].p);
    }
    free(ws);
}

static void kiln_ws_put_(const kiln_whisper_model_t *m, kiln_wws_t *ws) {
    if (!ws)
        return;
    pthread_mutex_lock(&m->cache->mu);
    ws->next = m->cache->free;
    m->cache->free = ws;
    pthread_mutex_unlock(&m->cache->mu);
}

void kiln_whisper_cache_free_(kiln_whisper_model_t *m) {
    if (!m->cache)
        return;
    while (m->cache->free) {
        kiln_wws_t *ws = m->cache->free;
        m->cache->free = ws->next;
        kiln_ws_free_(ws);
    }
    pthread_mutex_destroy(&m->cache->mu);
    free(m->cache);
    m->cache = NULL;
}

int kiln_whisper_prepare_(kiln_whisper_model_t *m, char *errstr, size_t errstr_size) {
    const kiln_whisper_hparams_t *hp = &m->hp;
    const int C = hp->n_text_state;
    m->n_bufs_dense = m->n_bufs;
    m->cache = calloc(1, sizeof(*m->cache));
    if (!m->cache)
        goto oom;
    pthread_mutex_init(&m->cache->mu, NULL);
#define PACK(dst, w, OC, IC)                                                             \
    do {                                                                                 \
        if (!((dst) = kiln_whisper_take_(m, kiln_packed_size((OC), (IC)))))              \
            goto oom;                                                                    \
        kiln_pack16_cpu((dst), (w), (OC), (IC));                                         \
    } while (0)
    for (int l = 0; l < hp->n_text_layer; l++) {
        kiln_wdec_layer_t *L = &m->dec[l];
        PACK(L->p_qkv, L->w_qkv, 3 * C, C);
        PACK(L->p_o, L->w_o, C, C);
        PACK(L->px_q, L->wx_q, C, C);
        PACK(L->px_o, L->wx_o, C, C);
        PACK(L->p_fc1, L->w_fc1, 4 * C, C);
        PACK(L->p_fc2, L->w_fc2, C, 4 * C);
    }
    PACK(m->tok_emb_p, m->tok_emb, hp->n_vocab, C);
#undef PACK
    return 0;
oom:
    snprintf(errstr, errstr_size, "could not load \"%s\": out of memory", m->path);
    return -1;
}

/* ---- backend: the one dispatch point ------------------------------------ */

/*
 * Takes the device lock of kk and sets the model's matmul precision on it:
 * the backend's mode is process-wide, so each model sets its own for its
 * calls (the voice does the same). kiln_kernels_unlock() ends it.
 */
static void kiln_w_dev_begin_(const kiln_whisper_model_t *m, const kiln_kernels_t *kk) {
    kiln_kernels_lock(kk);
    if (kk->set_precision && m->precision[0])
        kk->set_precision(m->precision);
}

/* @returns the model's kernel table (the CPU's unless set_backend chose another). */
static const kiln_kernels_t *kiln_w_kk_(const kiln_whisper_model_t *m) {
    return m->kk ? m->kk : kiln_kernels_get(KILN_BACKEND_CPU);
}

/* @returns the model whose weight pointers the ops take (see whisper_int.h). */
static const kiln_whisper_model_t *kiln_w_wd_(const kiln_whisper_model_t *m) {
    return m->wd ? m->wd : m;
}

void kiln_whisper_backend_free_(kiln_whisper_model_t *m) {
    if (m->wd && m->wd != m) {
        for (int i = 0; i < m->n_dev_bufs; i++)
            m->kk->free(m->dev_bufs[i]);
        free(m->wd->enc);
        free(m->wd->dec);
        free(m->wd);
    }
    free(m->dev_bufs);
    m->dev_bufs = NULL;
    m->n_dev_bufs = 0;
    m->wd = NULL;
    m->kk = NULL;
}

/* a host weight buffer and its copy in the backend's memory */
typedef struct kiln_wdmap_s {
    const float *host;
    size_t n;
    float *dev;
} kiln_wdmap_t;

static int kiln_wdmap_cmp_(const void *a, const void *b) {
    const float *x = ((const kiln_wdmap_t *)a)->host, *y = ((const kiln_wdmap_t *)b)->host;
    return x < y ? -1 : x > y;
}

/* @returns the backend's address of host weight pointer p (NULL for NULL or unknown). */
static float *kiln_wdmap_find_(const kiln_wdmap_t *map, int n, const float *p) {
    int lo = 0, hi = n - 1;
    while (p && lo <= hi) {
        int mid = (lo + hi) / 2;
        if (p < map[mid].host)
            hi = mid - 1;
        else if (p >= map[mid].host + (map[mid].n ? map[mid].n : 1))
            lo = mid + 1;
        else
            return map[mid].dev + (p - map[mid].host);
    }
    return NULL;
}

kiln_err_t kiln_whisper_model_set_backend(kiln_whisper_model_t *m, const char *backend,
                                          const char *precision, char *errstr,
                                          size_t errstr_size) {
    kiln_backend_t be;
    const kiln_kernels_t *kk;
    int prc = kiln_kernels_pick(backend, precision, &kk, &be, errstr, errstr_size);
    if (prc)
        return prc == -2 ? KILN_ERR__UNSUPPORTED : KILN_ERR__INVALID_ARG;
    if (precision && *precision) /* set again at each call (kiln_w_dev_begin_()) */
        snprintf(m->precision, sizeof(m->precision), "%s", precision);
    if (kk == kiln_w_kk_(m) && (m->wd || kk->host_memory))
        return KILN_OK; /* already there: only the precision changed */
    kiln_whisper_cache_free_(m); /* workspaces of the old backend */
    kiln_whisper_backend_free_(m);
    m->cache = calloc(1, sizeof(*m->cache));
    if (!m->cache)
        goto oom;
    pthread_mutex_init(&m->cache->mu, NULL);
    if (kk->host_memory) { /* the host buffers are the backend's */
        m->kk = be == KILN_BACKEND_CPU ? NULL : kk;
        return KILN_OK;
    }
    /* copy every dense weight buffer once; the mirror's pointers point there */
    const int n = m->n_bufs_dense;
    kiln_wdmap_t *map = calloc((size_t)(n ? n : 1), sizeof(*map));
    kiln_whisper_model_t *wd = calloc(1, sizeof(*wd));
    m->dev_bufs = calloc((size_t)(n ? n : 1), sizeof(void *));
    if (!map || !wd || !m->dev_bufs) {
        free(map);
        free(wd);
        goto oom;
    }
    m->kk = kk;
    size_t bytes = 0;
    for (int i = 0; i < n; i++) {
        map[i].host = m->bufs[i];
        map[i].n = m->buf_n[i];
        if (!(map[i].dev = kk->alloc(sizeof(float) * (map[i].n ? map[i].n : 1)))) {
            snprintf(errstr, errstr_size,
                     "could not copy \"%s\" to backend \"%s\": out of device memory after "
                     "%.1f MB", m->path, kk->name, bytes / 1e6);
            free(map);
            free(wd);
            kiln_whisper_backend_free_(m);
            return KILN_ERR__NOMEM;
        }
        m->dev_bufs[m->n_dev_bufs++] = map[i].dev;
        kk->upload(map[i].dev, map[i].host, sizeof(float) * map[i].n);
        bytes += sizeof(float) * map[i].n;
    }
    qsort(map, (size_t)n, sizeof(*map), kiln_wdmap_cmp_);
    *wd = *m;
    wd->enc = calloc((size_t)(m->hp.n_audio_layer ? m->hp.n_audio_layer : 1), sizeof(*wd->enc));
    wd->dec = calloc((size_t)(m->hp.n_text_layer ? m->hp.n_text_layer : 1), sizeof(*wd->dec));
    m->wd = wd; /* freed with the buffers from here on */
    if (!wd->enc || !wd->dec) {
        free(map);
        kiln_whisper_backend_free_(m);
        goto oom;
    }
    int mapped = 1; /* every weight lies in a copied buffer */
#define MAP(f) mapped &= (wd->f = kiln_wdmap_find_(map, n, m->f)) != NULL
    MAP(conv1_w), MAP(conv1_b), MAP(conv2_w), MAP(conv2_b), MAP(enc_pos), MAP(enc_ln_g);
    MAP(enc_ln_b), MAP(tok_emb), MAP(dec_pos), MAP(dec_ln_g), MAP(dec_ln_b), MAP(mel_filters);
    wd->tok_emb_p = NULL;
    for (int l = 0; l < m->hp.n_audio_layer; l++) {
        MAP(enc[l].ln1_g), MAP(enc[l].ln1_b), MAP(enc[l].w_qkv), MAP(enc[l].b_qkv);
        MAP(enc[l].w_o), MAP(enc[l].b_o), MAP(enc[l].ln2_g), MAP(enc[l].ln2_b);
        MAP(enc[l].w_fc1), MAP(enc[l].b_fc1), MAP(enc[l].w_fc2), MAP(enc[l].b_fc2);
    }
    for (int l = 0; l < m->hp.n_text_layer; l++) {
        MAP(dec[l].ln1_g), MAP(dec[l].ln1_b), MAP(dec[l].w_qkv), MAP(dec[l].b_qkv);
        MAP(dec[l].w_o), MAP(dec[l].b_o), MAP(dec[l].lnx_g), MAP(dec[l].lnx_b);
        MAP(dec[l].wx_q), MAP(dec[l].bx_q), MAP(dec[l].wx_kv), MAP(dec[l].bx_kv);
        MAP(dec[l].wx_o), MAP(dec[l].bx_o), MAP(dec[l].ln2_g), MAP(dec[l].ln2_b);
        MAP(dec[l].w_fc1), MAP(dec[l].b_fc1), MAP(dec[l].w_fc2), MAP(dec[l].b_fc2);
        wd->dec[l].p_qkv = wd->dec[l].p_o = wd->dec[l].px_q = wd->dec[l].px_o = NULL;
        wd->dec[l].p_fc1 = wd->dec[l].p_fc2 = NULL;
    }
#undef MAP
    free(map);
    kk->sync();
    if (!mapped) {
        kiln_whisper_backend_free_(m);
        snprintf(errstr, errstr_size, "could not copy \"%s\" to backend \"%s\": a weight is "
                 "outside the model's buffers", m->path, kk->name);
        return KILN_ERR__FAIL;
    }
    if (kiln_kernels_take_error()) {
        kiln_whisper_backend_free_(m);
        snprintf(errstr, errstr_size, "could not copy \"%s\" to backend \"%s\"", m->path,
                 kk->name);
        return KILN_ERR__NOMEM;
    }
    KILN_LOG_INFO("whisper: %s on %s (%s): %.1f MB of weights copied", m->path, kk->name,
                  precision && *precision && kk->set_precision ? precision : "fp32",
                  bytes / 1e6);
    return KILN_OK;
oom:
    snprintf(errstr, errstr_size, "could not use backend \"%s\": out of memory", kk->name);
    return KILN_ERR__NOMEM;
}

const char *kiln_whisper_model_backend(const kiln_whisper_model_t *m) {
    return kiln_w_kk_(m)->name;
}

/* ---- encoder ------------------------------------------------------------ */

/*
 * Encodes one window mel [M, 3000] into out [Ta, Ca]; mel, out and the
 * workspace are in the backend's memory (ws->kk), the weights are m's
 * backend copy (kiln_w_wd_).
 */
static kiln_err_t kiln_w_encode1_(const kiln_whisper_model_t *m, kiln_wws_t *ws,
                                  const float *mel, float *out) {
    const kiln_kernels_t *kk = ws->kk;
    const kiln_whisper_hparams_t *hp = &m->hp;
    const int M = hp->n_mels, T0 = KILN_W_FRAMES, Ta = hp->n_audio_ctx, Ca = hp->n_audio_state;
    const int H = hp->n_audio_head, D = Ca / H;
    size_t col_n = (size_t)T0 * M * 3 > (size_t)Ta * Ca * 3 ? (size_t)T0 * M * 3
                                                            : (size_t)Ta * Ca * 3;
    if (col_n < (size_t)Ta * Ta) /* the attention's scores (reference and CUDA) */
        col_n = (size_t)Ta * Ta;
    float *xin = kiln_wdbuf_(ws, KILN_WB_XIN, sizeof(float) * T0 * M);
    float *h1 = kiln_wdbuf_(ws, KILN_WB_H1, sizeof(float) * T0 * Ca);
    float *col = kiln_wdbuf_(ws, KILN_WB_COL, sizeof(float) * col_n);
    float *h = kiln_wdbuf_(ws, KILN_WB_H, sizeof(float) * Ta * Ca);
    float *qkv = kiln_wdbuf_(ws, KILN_WB_QKV, sizeof(float) * Ta * 3 * Ca);
    float *att = kiln_wdbuf_(ws, KILN_WB_ATT, sizeof(float) * Ta * Ca);
    float *f = kiln_wdbuf_(ws, KILN_WB_F, sizeof(float) * Ta * 4 * Ca);
    if (!xin || !h1 || !col || !h || !qkv || !att || !f)
        return KILN_ERR__NOMEM;
    const kiln_whisper_model_t *w = kiln_w_wd_(m);
    /* conv stem: [3000, M] -> conv(k3,s1)+GELU -> [3000, Ca] -> conv(k3,s2)+GELU -> [Ta, Ca] */
    kk->transpose(xin, mel, M, T0);
    kk->conv1d(h1, xin, w->conv1_w, w->conv1_b, T0, M, Ca, 3, 1, 1, col);
    kk->gelu(h1, h1, (size_t)T0 * Ca);
    kk->conv1d(out, h1, w->conv2_w, w->conv2_b, T0, Ca, Ca, 3, 2, 1, col);
    kk->gelu(out, out, (size_t)Ta * Ca);
    kk->add(out, out, w->enc_pos, (size_t)Ta * Ca);
    /* pre-LN transformer blocks */
    for (int l = 0; l < hp->n_audio_layer; l++) {
        const kiln_wenc_layer_t *L = &w->enc[l];
        kk->layernorm(h, out, L->ln1_g, L->ln1_b, Ta, Ca, 1e-5f);
        kk->matmul(qkv, h, L->w_qkv, L->b_qkv, Ta, Ca, 3 * Ca);
        kk->attention(att, Ca, qkv, 3 * Ca, qkv + Ca, 3 * Ca, qkv + 2 * Ca, 3 * Ca, Ta, Ta, H, D,
                      0, col);
        kk->matmul(h, att, L->w_o, L->b_o, Ta, Ca, Ca);
        kk->add(out, out, h, (size_t)Ta * Ca);
        kk->layernorm(h, out, L->ln2_g, L->ln2_b, Ta, Ca, 1e-5f);
        kk->matmul(f, h, L->w_fc1, L->b_fc1, Ta, Ca, 4 * Ca);
        kk->gelu(f, f, (size_t)Ta * 4 * Ca);
        kk->matmul(h, f, L->w_fc2, L->b_fc2, Ta, 4 * Ca, Ca);
        kk->add(out, out, h, (size_t)Ta * Ca);
    }
    kk->layernorm(out, out, w->enc_ln_g, w->enc_ln_b, Ta, Ca, 1e-5f);
    return kiln_kernels_take_error() ? KILN_ERR__NOMEM : KILN_OK;
}

kiln_err_t kiln_whisper_encode(const kiln_whisper_model_t *m, const float *mel, int B,
                               float *out) {
    const kiln_whisper_hparams_t *hp = &m->hp;
    if (KILN_W_FRAMES / 2 != hp->n_audio_ctx)
        return KILN_ERR__UNSUPPORTED;
    const kiln_kernels_t *kk = kiln_w_kk_(m);
    kiln_wws_t *ws = kiln_ws_get_(m, kk);
    if (!ws)
        return KILN_ERR__NOMEM;
    const size_t n_mel = (size_t)hp->n_mels * KILN_W_FRAMES;
    const size_t n_out = (size_t)hp->n_audio_ctx * hp->n_audio_state;
    kiln_err_t err = KILN_OK;
    kiln_w_dev_begin_(m, kk);
    for (int b = 0; b < B && err == KILN_OK; b++) {
        if (kk->host_memory) { /* the caller's buffers are the backend's */
            err = kiln_w_encode1_(m, ws, mel + b * n_mel, out + b * n_out);
            continue;
        }
        float *dmel = kiln_wdbuf_(ws, KILN_WB_DMEL, sizeof(float) * n_mel);
        float *denc = kiln_wdbuf_(ws, KILN_WB_ENC, sizeof(float) * n_out);
        if (!dmel || !denc) {
            err = KILN_ERR__NOMEM;
            break;
        }
        kk->upload(dmel, mel + b * n_mel, sizeof(float) * n_mel);
        if ((err = kiln_w_encode1_(m, ws, dmel, denc)) == KILN_OK)
            kk->download(out + b * n_out, denc, sizeof(float) * n_out);
        if (kiln_kernels_take_error())
            err = KILN_ERR__NOMEM;
    }
    kiln_kernels_unlock(kk);
    kiln_ws_put_(m, ws);
    return err;
}

/* ---- decoder ------------------------------------------------------------ */

/* One query row of a decoder forward pass. */
typedef struct kiln_wrow_s {
    int slot;                /* self-attention cache slot */
    int xslot;               /* cross-attention slot (the window) */
    int token, pos;          /* input token, its position (cache column) */
    int lrow;                /* row of the logits output, or -1 */
} kiln_wrow_t;

/*
 * The decoder's state. Every float buffer but logits is in the backend's
 * memory. A forward pass describes its rows in two host arrays, uploaded
 * once per pass (on a host-memory backend the ops read them in place):
 *   idx  int [5 * R]: tok[R], pos[R], tk_self[R] (pos + 1), tk_cross[R]
 *        (Ta), lidx[R] (the row of each logits row);
 *   ptr  float * [4 * L * R]: for layer l, at 4 * l * R: the self K^T and V
 *        caches of each row, then the cross K^T and V of its window.
 */
typedef struct kiln_wdec_s {
    const kiln_whisper_model_t *m;
    const kiln_whisper_model_t *w; /* weights in the backend's memory */
    const kiln_kernels_t *kk;
    int tmax;                /* self cache columns per slot */
    int R;                   /* rows a pass may hold (idx / ptr capacity) */
    float *sk, *sv;          /* self caches: slot s, layer l at (s*L + l) * C * tmax */
    float *xk, *xv;          /* cross K^T / V: slot w, layer l at (w*L + l) * C * Ta */
    float *x, *h, *q, *a, *f, *lx; /* row buffers */
    float *dlogits;          /* [nL, V] in the backend's memory */
    float *logits;           /* [nL, V] on the host (== dlogits on a host-memory backend) */
    float *ascr;             /* attention scratch (reference kernels) */
    int *h_idx, *idx;        /* the pass's ints: host, backend */
    float **h_ptr, **ptr;    /* the pass's cache pointers: host, backend */
} kiln_wdec_t;

/* A dense layer over N rows: packed weights for a few rows (CPU), a GEMM for many. */
static void kiln_w_linear_(const kiln_wdec_t *d, float *out, const float *in, const float *w,
                           const float *wp, const float *b, int N, int C, int OC) {
    if (N <= KILN_W_PACKED_ROWS && wp && d->kk->matmul_packed)
        d->kk->matmul_packed(out, in, wp, b, N, C, OC);
    else
        d->kk->matmul(out, in, w, b, N, C, OC);
}

/*
 * Runs the decoder on nR rows: appends each row's key and value to its
 * slot at its position, and writes the logits of rows with lrow >= 0 to
 * d->logits [lrow, V]. Rows of one window must be consecutive (they share
 * the reads of the window's keys).
 */
static void kiln_w_forward_(kiln_wdec_t *d, const kiln_wrow_t *rows, int nR, int nL) {
    const kiln_whisper_model_t *m = d->m, *w = d->w;
    const kiln_kernels_t *kk = d->kk;
    const kiln_whisper_hparams_t *hp = &m->hp;
    const int C = hp->n_text_state, H = hp->n_text_head, D = C / H, Ta = hp->n_audio_ctx;
    const int L = hp->n_text_layer, tmax = d->tmax, R = d->R;
    const size_t sl = (size_t)C * tmax, xl = (size_t)C * Ta;
    /* describe the rows: tokens, positions, key counts, logits rows, caches */
    int *tok = d->h_idx, *pos = tok + R, *tks = pos + R, *tkx = tks + R, *lidx = tkx + R;
    for (int r = 0; r < nR; r++) {
        tok[r] = rows[r].token;
        pos[r] = rows[r].pos;
        tks[r] = rows[r].pos + 1;
        tkx[r] = Ta;
        if (rows[r].lrow >= 0)
            lidx[rows[r].lrow] = r;
        for (int l = 0; l < L; l++) {
            float **p = d->h_ptr + (size_t)4 * l * R;
            p[r] = d->sk + ((size_t)rows[r].slot * L + l) * sl;
            p[R + r] = d->sv + ((size_t)rows[r].slot * L + l) * sl;
            p[2 * R + r] = d->xk + ((size_t)rows[r].xslot * L + l) * xl;
            p[3 * R + r] = d->xv + ((size_t)rows[r].xslot * L + l) * xl;
        }
    }
    if (d->idx != d->h_idx) {
        kk->upload(d->idx, d->h_idx, sizeof(int) * 5 * R);
        kk->upload(d->ptr, d->h_ptr, sizeof(float *) * 4 * L * R);
    }
    const int *dtok = d->idx, *dpos = dtok + R, *dtks = dpos + R, *dtkx = dtks + R;
    const int *dlidx = dtkx + R;
    kk->embed(d->x, w->tok_emb, w->dec_pos, dtok, dpos, nR, C);
    for (int l = 0; l < L; l++) {
        const kiln_wdec_layer_t *Ly = &w->dec[l];
        float *const *p = d->ptr + (size_t)4 * l * R;
        /* causal self-attention over the slots (a row sees positions <= its own) */
        kk->layernorm(d->h, d->x, Ly->ln1_g, Ly->ln1_b, nR, C, 1e-5f);
        kiln_w_linear_(d, d->q, d->h, Ly->w_qkv, Ly->p_qkv, Ly->b_qkv, nR, C, 3 * C);
        kk->kv_append(p, tmax, p + R, C, d->q + C, d->q + 2 * C, 3 * C, dpos, nR, C);
        kk->attention_kv(d->a, C, d->q, 3 * C, (const float *const *)p, tmax,
                         (const float *const *)(p + R), C, dtks, nR, H, D, d->ascr);
        kiln_w_linear_(d, d->h, d->a, Ly->w_o, Ly->p_o, Ly->b_o, nR, C, C);
        kk->add(d->x, d->x, d->h, (size_t)nR * C);
        /* cross-attention to the window */
        kk->layernorm(d->h, d->x, Ly->lnx_g, Ly->lnx_b, nR, C, 1e-5f);
        kiln_w_linear_(d, d->q, d->h, Ly->wx_q, Ly->px_q, Ly->bx_q, nR, C, C);
        kk->attention_kv(d->a, C, d->q, C, (const float *const *)(p + 2 * R), Ta,
                         (const float *const *)(p + 3 * R), C, dtkx, nR, H, D, d->ascr);
        kiln_w_linear_(d, d->h, d->a, Ly->wx_o, Ly->px_o, Ly->bx_o, nR, C, C);
        kk->add(d->x, d->x, d->h, (size_t)nR * C);
        /* MLP */
        kk->layernorm(d->h, d->x, Ly->ln2_g, Ly->ln2_b, nR, C, 1e-5f);
        kiln_w_linear_(d, d->f, d->h, Ly->w_fc1, Ly->p_fc1, Ly->b_fc1, nR, C, 4 * C);
        kk->gelu(d->f, d->f, (size_t)nR * 4 * C);
        kiln_w_linear_(d, d->h, d->f, Ly->w_fc2, Ly->p_fc2, Ly->b_fc2, nR, 4 * C, C);
        kk->add(d->x, d->x, d->h, (size_t)nR * C);
    }
    if (nL <= 0)
        return;
    /* the final layer norm and the output projection (tied embedding) of the logits rows */
    kk->gather_rows(d->lx, d->x, dlidx, nL, C);
    kk->layernorm(d->lx, d->lx, w->dec_ln_g, w->dec_ln_b, nL, C, 1e-5f);
    if (w->tok_emb_p && kk->matmul_packed) /* the CPU: packed at any row count */
        kk->matmul_packed(d->dlogits, d->lx, w->tok_emb_p, NULL, nL, C, hp->n_vocab);
    else
        kk->matmul(d->dlogits, d->lx, w->tok_emb, NULL, nL, C, hp->n_vocab);
    if (d->dlogits != d->logits)
        kk->download(d->logits, d->dlogits, sizeof(float) * nL * hp->n_vocab);
}

/* Computes the cross-attention keys (transposed) and values of one window. */
static void kiln_w_cross_(const kiln_wdec_t *d, const float *enc, int xslot) {
    const kiln_whisper_model_t *m = d->m;
    const kiln_whisper_hparams_t *hp = &m->hp;
    const int C = hp->n_text_state, Ta = hp->n_audio_ctx, L = hp->n_text_layer;
    for (int l = 0; l < L; l++) {
        const kiln_wdec_layer_t *Ly = &d->w->dec[l];
        float *kt = d->xk + ((size_t)xslot * L + l) * C * Ta;
        float *v = d->xv + ((size_t)xslot * L + l) * C * Ta;
        /* K^T [C, Ta] = Wk [C, C] . enc^T, plus the key bias on each row */
        d->kk->matmul(kt, Ly->wx_kv, enc, NULL, C, C, Ta);
        d->kk->add_rowbias(kt, Ly->bx_kv, C, Ta);
        d->kk->matmul(v, enc, Ly->wx_kv + (size_t)C * C, Ly->bx_kv + C, Ta, C, C);
    }
}

/* ---- logits ------------------------------------------------------------- */

/*
 * Applies Whisper's logit filters to one hypothesis' logits (in place):
 * SuppressBlank, SuppressTokens, ApplyTimestampRules (CTranslate2's
 * whisper.cc; openai/whisper decoding.py does the same). tok[0..n-1] are
 * the tokens sampled so far. Sets *lse to the log-sum-exp of the filtered
 * row and *best to its first argmax.
 */
static void kiln_w_filter_(const kiln_whisper_model_t *m, const kiln_whisper_params_t *p,
                           const int *tok, int n, float *lg, double *lse, int *best) {
    const kiln_wvocab_t *v = &m->vocab;
    const int V = m->hp.n_vocab, tb = v->timestamp_begin;
    if (p->suppress_blank && n == 0)
        for (int i = 0; i < v->n_suppress_begin; i++)
            lg[v->suppress_begin[i]] = -INFINITY;
    for (int i = 0; i < v->n_suppress; i++)
        lg[v->suppress[i]] = -INFINITY;
    if (p->suppress_eot)
        lg[v->eot] = -INFINITY;
    kiln_row_stats_t st;
    if (p->timestamps) {
        lg[v->no_timestamps] = -INFINITY;
        int last_ts = n >= 1 && tok[n - 1] >= tb;
        int pen_ts = n < 2 || tok[n - 2] >= tb;
        int check = 1;
        if (last_ts) {
            if (pen_ts) {
                for (int i = tb; i < V; i++)
                    lg[i] = -INFINITY;
                check = 0;
            } else {
                for (int i = 0; i < v->eot; i++)
                    lg[i] = -INFINITY;
            }
        }
        int last_t = -1;
        for (int i = n - 1; i >= 0; i--)
            if (tok[i] >= tb) {
                last_t = tok[i];
                break;
            }
        if (last_t >= 0) {
            int upto = (last_ts && !pen_ts) ? last_t : last_t + 1;
            for (int i = tb; i < upto && i < V; i++)
                lg[i] = -INFINITY;
        }
        if (n == 0) {
            for (int i = 0; i < tb; i++)
                lg[i] = -INFINITY;
            if (p->max_initial_timestamp_index >= 0)
                for (int i = tb + p->max_initial_timestamp_index + 1; i < V; i++)
                    lg[i] = -INFINITY;
            check = 0;
        }
        kiln_row_stats(lg, V, tb, &st);
        /* the sums are relative to the larger of the two maxima, gm */
        const double gm = st.max[0] > st.max[1] ? st.max[0] : st.max[1];
        /* the timestamps' total probability beats every text token: sample a timestamp */
        if (check && st.sum[1] > 0.0) {
            double lse_all = gm + log(st.sum[0] + st.sum[1]);
            double ts_lp = gm + log(st.sum[1]) - lse_all;
            if (ts_lp > (double)st.max[0] - lse_all) {
                for (int i = 0; i < tb; i++)
                    lg[i] = -INFINITY;
                st.max[0] = -INFINITY;
                st.argmax[0] = -1;
                st.sum[0] = 0.0;
            }
        }
        double sum = st.sum[0] + st.sum[1];
        *lse = sum > 0.0 ? gm + log(sum) : -INFINITY;
    } else {
        kiln_row_stats(lg, V, tb, &st);
        const double gm = st.max[0] > st.max[1] ? st.max[0] : st.max[1];
        double sum = st.sum[0] + st.sum[1];
        *lse = sum > 0.0 ? gm + log(sum) : -INFINITY;
    }
    *best = st.max[1] > st.max[0] ? st.argmax[1] : st.argmax[0];
    if (*best < 0)
        *best = v->eot;
}

/* log-softmax of x[id] given the row's log-sum-exp */
static double kiln_w_lp_(const float *lg, int id, double lse) { return (double)lg[id] - lse; }

/* ---- results ------------------------------------------------------------ */

void kiln_whisper_result_clear(kiln_whisper_result_t *r) {
    if (!r)
        return;
    for (int i = 0; i < r->n_segments; i++) {
        free(r->segments[i].text);
        free(r->segments[i].tokens);
    }
    free(r->segments);
    free(r->tokens);
    free(r->text);
    memset(r, 0, sizeof(*r));
}

/* Concatenates the bytes of the text tokens (< EOT) of tok[0..n-1]. */
static char *kiln_w_detok_(const kiln_whisper_model_t *m, const int *tok, int n) {
    size_t len = 0;
    for (int i = 0; i < n; i++)
        if (tok[i] < m->vocab.eot)
            len += strlen(m->vocab.tok[tok[i]]);
    char *s = malloc(len + 1), *w = s;
    if (!s)
        return NULL;
    for (int i = 0; i < n; i++)
        if (tok[i] < m->vocab.eot) {
            size_t l = strlen(m->vocab.tok[tok[i]]);
            memcpy(w, m->vocab.tok[tok[i]], l);
            w += l;
        }
    *w = '\0';
    return s;
}

static int kiln_w_add_segment_(const kiln_whisper_model_t *m, kiln_whisper_result_t *r,
                               double start, double end, const int *tok, int n, float avg_lp,
                               float nsp, float temp, float cr) {
    char *text = kiln_w_detok_(m, tok, n);
    if (!text)
        return -1;
    const char *t = text;
    while (*t == ' ')
        t++;
    if (start == end || !*t) { /* faster-whisper drops these */
        free(text);
        return 0;
    }
    kiln_whisper_segment_t *segs = realloc(r->segments, sizeof(*segs) * (r->n_segments + 1));
    if (segs)
        r->segments = segs;
    int *all = realloc(r->tokens, sizeof(int) * (r->n_tokens + n + 1));
    if (all)
        r->tokens = all;
    kiln_whisper_segment_t *sg = segs ? &segs[r->n_segments] : NULL;
    if (!segs || !all || !(sg->tokens = malloc(sizeof(int) * (n + 1)))) {
        free(text);
        return -1;
    }
    sg->start = start;
    sg->end = end;
    sg->text = text;
    memcpy(sg->tokens, tok, sizeof(int) * n);
    sg->n_tokens = n;
    sg->avg_logprob = avg_lp;
    sg->no_speech_prob = nsp;
    sg->temperature = temp;
    sg->compression_ratio = cr;
    memcpy(r->tokens + r->n_tokens, tok, sizeof(int) * n);
    r->n_tokens += n;
    r->n_segments++;
    return 0;
}

/* ---- gzip compression ratio (zlib, loaded at run time) ------------------ */

typedef int (*kiln_zcompress2_fn)(unsigned char *, unsigned long *, const unsigned char *,
                                  unsigned long, int);
typedef unsigned long (*kiln_zbound_fn)(unsigned long);
static kiln_zcompress2_fn kiln_z_compress2_;
static kiln_zbound_fn kiln_z_bound_;
static pthread_once_t kiln_z_once_ = PTHREAD_ONCE_INIT;

static void kiln_z_load_(void) {
    void *h = dlopen("libz.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        h = dlopen("libz.so", RTLD_NOW | RTLD_LOCAL);
    if (h) {
        *(void **)&kiln_z_compress2_ = dlsym(h, "compress2");
        *(void **)&kiln_z_bound_ = dlsym(h, "compressBound");
    }
    if (!kiln_z_compress2_ || !kiln_z_bound_) {
        kiln_z_compress2_ = NULL;
        KILN_LOG_WARN("whisper: zlib not found; the compression-ratio fallback is off");
    }
}

/*
 * faster-whisper's get_compression_ratio(): len(text) / len(zlib.compress(text))
 * of the UTF-8 text with surrounding white space stripped. zlib comes from
 * libz.so.1 through dlopen (no link-time dependency). @returns 0 when zlib
 * is missing or the text is empty.
 */
static float kiln_w_compression_ratio_(const char *text) {
    pthread_once(&kiln_z_once_, kiln_z_load_);
    while (*text == ' ' || *text == '\t' || *text == '\n' || *text == '\r')
        text++;
    size_t n = strlen(text);
    while (n > 0 && (text[n - 1] == ' ' || text[n - 1] == '\t' || text[n - 1] == '\n' ||
                     text[n - 1] == '\r'))
        n--;
    if (!kiln_z_compress2_ || n == 0)
        return 0.0f;
    unsigned long cap = kiln_z_bound_(n);
    unsigned char *buf = malloc(cap);
    if (!buf)
        return 0.0f;
    unsigned long out = cap;
    int rc = kiln_z_compress2_(buf, &out, (const unsigned char *)text, n, -1);
    free(buf);
    return rc == 0 && out > 0 ? (float)n / (float)out : 0.0f;
}

/* ---- decoding jobs (one window each) ------------------------------------- */

enum { KILN_W_GREEDY, KILN_W_BEAM, KILN_W_SAMPLE };

typedef struct kiln_whyp_s {
    int *tok;                /* tokens sampled (no EOT) */
    int n;
    double score;            /* cumulative log-prob (EOT included once finished) */
    int done;                /* sampling: finished */
    int slot;                /* self-cache slot */
} kiln_whyp_t;

/* token storage regions of a job, in units of tok_stride ints */
#define KILN_W_R_HYP 0
#define KILN_W_R_FIN (KILN_W_KMAX)
#define KILN_W_R_TMP (3 * KILN_W_KMAX + 1)
#define KILN_W_R_BEST (4 * KILN_W_KMAX + 1)
#define KILN_W_R__COUNT (4 * KILN_W_KMAX + 3)

typedef struct kiln_wjob_s {
    int active, req, seek, size, xslot, slot0;
    /* prompt */
    int *prompt;
    int n_prompt, n_fed, sot_pos, need_lang, lrow_sot, lrow_last, prefilling, in_pass;
    float *plogits;          /* raw logits of the last prompt row (for retries) */
    float no_speech_prob;
    /* current attempt */
    int ti, mode, K, step, max_new, n_fin, top_done, lrow0;
    float temp;
    kiln_whyp_t hyp[KILN_W_KMAX], fin[2 * KILN_W_KMAX + 1];
    int *tokbuf;
    uint64_t rng;
    /* best results over attempts: [0] of all, [1] of those under the ratio */
    int *best_tok[2];
    int best_n[2], have[2];
    float best_lp[2], best_cr[2];
    /* the result */
    float res_temp;
} kiln_wjob_t;

typedef struct kiln_wreq_s {
    const float *pcm;
    size_t n_samples;
    float *mel;              /* [M, F] */
    int n_frames, content, seek;
    int active, busy;
    int lang;                /* language token (multilingual), -1: not yet known */
    int reset_since;         /* the prompt: result tokens [reset_since, n_tokens) */
} kiln_wreq_t;

typedef struct kiln_wsess_s {
    const kiln_whisper_model_t *m;
    const kiln_whisper_params_t *p;
    kiln_wws_t *ws;
    kiln_wdec_t d;
    kiln_wreq_t *rq;
    kiln_whisper_result_t *out;
    int n;
    kiln_wjob_t *jobs;
    int n_jobs, K, tok_stride, multi, max_prompt, rows_cap, next_req;
    kiln_wrow_t *rows;
    float *mel, *enc, *row;  /* one window's mel (host), encoder output (backend); one
                              * logits row (host) */
    float *dmel;             /* the window's mel in the backend's memory (== mel on a
                              * host-memory backend) */
    int tmp_slot0;           /* K scratch slots for beam reordering */
    double t_enc, t_cross, t_fwd, t_search; /* profile */
    long n_win, n_pass, n_rows;
} kiln_wsess_t;

static uint64_t kiln_w_rand_(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Copies self-cache columns [0, n) of slot src into slot dst. */
static void kiln_w_copy_slot_(const kiln_wsess_t *S, int dst, int src, int n) {
    const kiln_whisper_hparams_t *hp = &S->m->hp;
    const int C = hp->n_text_state, L = hp->n_text_layer, tmax = S->d.tmax;
    const size_t sl = (size_t)C * tmax;
    if (dst == src || n <= 0)
        return;
    for (int l = 0; l < L; l++) {
        const float *ks = S->d.sk + ((size_t)src * L + l) * sl;
        float *kd = S->d.sk + ((size_t)dst * L + l) * sl;
        S->d.kk->copy2d(kd, tmax, ks, tmax, C, n); /* K^T: n columns of C rows */
        S->d.kk->copy2d(S->d.sv + ((size_t)dst * L + l) * sl, C,
                        S->d.sv + ((size_t)src * L + l) * sl, C, n, C);
    }
}

/* Starts attempt ti of job j (its prompt is in slot0; plogits hold its logits). */
static void kiln_w_attempt_(kiln_wsess_t *S, kiln_wjob_t *j, int ti) {
    const kiln_whisper_params_t *p = S->p;
    j->ti = ti;
    j->temp = p->n_temperatures > 0 ? p->temperatures[ti] : 0.0f;
    if (j->temp > 0.0f) {
        j->mode = KILN_W_SAMPLE;
        j->K = p->best_of > 1 ? p->best_of : 1;
    } else if (p->beam_size > 1) {
        j->mode = KILN_W_BEAM;
        j->K = p->beam_size;
    } else {
        j->mode = KILN_W_GREEDY;
        j->K = 1;
    }
    if (j->K > S->K)
        j->K = S->K;
    j->step = 0;
    j->n_fin = 0;
    j->top_done = 0;
    for (int k = 0; k < KILN_W_KMAX; k++) {
        j->hyp[k].tok = j->tokbuf + (size_t)(KILN_W_R_HYP + k) * S->tok_stride;
        j->hyp[k].n = 0;
        j->hyp[k].score = 0.0;
        j->hyp[k].done = 0;
        j->hyp[k].slot = j->slot0 + (k < S->K ? k : 0);
    }
    for (int k = 0; k < 2 * KILN_W_KMAX + 1; k++)
        j->fin[k].tok = j->tokbuf + (size_t)(KILN_W_R_FIN + k) * S->tok_stride;
    j->rng = p->seed ^ (0xA0761D6478BD642Full * (uint64_t)(j->req + 1)) ^
             ((uint64_t)j->seek << 20) ^ (uint64_t)ti;
}

/* The best hypothesis of an attempt. */
typedef struct kiln_wpick_s {
    const int *tok;
    int n;
    float avg_lp;
} kiln_wpick_t;

/* Best of nh hypotheses by score / len^length_penalty (CTranslate2's finalize). */
static kiln_wpick_t kiln_w_best_(const kiln_wsess_t *S, const kiln_whyp_t *h, int nh) {
    const double lp = S->p->length_penalty;
    int best = 0;
    double bs = -INFINITY;
    for (int i = 0; i < nh; i++) {
        double len = h[i].n > 0 ? (double)h[i].n : 1.0;
        double s = h[i].score / pow(len, lp);
        if (i == 0 || s > bs) {
            best = i;
            bs = s;
        }
    }
    /* faster-whisper: cum = score * len^lp (the raw sum), avg = cum / (len + 1) */
    kiln_wpick_t pk = {h[best].tok, h[best].n, (float)(h[best].score / (h[best].n + 1))};
    return pk;
}

/*
 * Records an attempt's result (faster-whisper generate_with_fallback()).
 * @returns 1 when the window must be decoded again at the next temperature;
 * else best_tok[0] holds the result.
 */
static int kiln_w_judge_(kiln_wsess_t *S, kiln_wjob_t *j, kiln_wpick_t pk) {
    const kiln_whisper_params_t *p = S->p;
    char *text = kiln_w_detok_(S->m, pk.tok, pk.n);
    float cr = text ? kiln_w_compression_ratio_(text) : 0.0f;
    free(text);
    int fallback = 0, under = 1;
    if (p->compression_ratio_threshold > 0.0f && cr > p->compression_ratio_threshold) {
        fallback = 1; /* too repetitive */
        under = 0;
    }
    if (pk.avg_lp < p->logprob_threshold)
        fallback = 1; /* too unlikely */
    if (j->no_speech_prob > p->no_speech_threshold && pk.avg_lp < p->logprob_threshold)
        fallback = 0; /* silence */
    for (int w = 0; w < 2; w++) {
        if (w == 1 && !under)
            continue;
        if (!j->have[w] || pk.avg_lp > j->best_lp[w]) {
            memcpy(j->best_tok[w], pk.tok, sizeof(int) * pk.n);
            j->best_n[w] = pk.n;
            j->best_lp[w] = pk.avg_lp;
            j->best_cr[w] = cr;
            j->have[w] = 1;
        }
    }
    if (!fallback) {
        if (j->best_tok[0] != pk.tok)
            memcpy(j->best_tok[0], pk.tok, sizeof(int) * pk.n);
        j->best_n[0] = pk.n;
        j->best_lp[0] = pk.avg_lp;
        j->best_cr[0] = cr;
        j->res_temp = j->temp;
        return 0;
    }
    if (j->ti + 1 < p->n_temperatures)
        return 1;
    /* every attempt failed: the best avg log-prob of those under the ratio
     * threshold (else of all), reported with the last temperature */
    if (j->have[1]) {
        memcpy(j->best_tok[0], j->best_tok[1], sizeof(int) * j->best_n[1]);
        j->best_n[0] = j->best_n[1];
        j->best_lp[0] = j->best_lp[1];
        j->best_cr[0] = j->best_cr[1];
    }
    j->res_temp = j->temp;
    return 0;
}

typedef struct kiln_wcand_s {
    double score;
    int beam, token;
} kiln_wcand_t;

/* Inserts c into the descending list top[0..*n) of at most k entries. */
static void kiln_w_topk_push_(kiln_wcand_t *top, int *n, int k, kiln_wcand_t c) {
    if (*n == k && !(c.score > top[k - 1].score))
        return;
    int i = *n < k ? (*n)++ : k - 1;
    while (i > 0 && top[i - 1].score < c.score) {
        top[i] = top[i - 1];
        i--;
    }
    top[i] = c;
}

/* Greedy step. @returns 1 when the attempt finished (pick in *pk). */
static int kiln_w_step_greedy_(kiln_wsess_t *S, kiln_wjob_t *j, float *lg, kiln_wpick_t *pk) {
    const int eot = S->m->vocab.eot;
    kiln_whyp_t *h = &j->hyp[0];
    double lse;
    int t;
    kiln_w_filter_(S->m, S->p, h->tok, h->n, lg, &lse, &t);
    h->score += kiln_w_lp_(lg, t, lse);
    if (t != eot)
        h->tok[h->n++] = t;
    if (t == eot || j->step++ == j->max_new - 1) {
        pk->tok = h->tok;
        pk->n = h->n;
        pk->avg_lp = (float)(h->score / (h->n + 1));
        return 1;
    }
    return 0;
}

/*
 * Sampling step (temperature > 0, best_of hypotheses, each finishing on its
 * own). lg has one row per live hypothesis, or at step 0 the prompt's row
 * that every hypothesis samples from. Tokens are drawn from softmax(lg / T)
 * after the filters; scores add log-softmax(lg) (untempered), as Whisper.
 */
static int kiln_w_step_sample_(kiln_wsess_t *S, kiln_wjob_t *j, float *lg, kiln_wpick_t *pk) {
    const int V = S->m->hp.n_vocab, eot = S->m->vocab.eot;
    const int last = j->step == j->max_new - 1;
    int r = 0, live = 0;
    double lse0 = 0.0;
    for (int k = 0; k < j->K; k++) {
        kiln_whyp_t *h = &j->hyp[k];
        if (h->done)
            continue;
        float *row = lg + (size_t)(j->step == 0 ? 0 : r++) * V;
        double lse;
        int t;
        if (j->step == 0 && k > 0) {
            lse = lse0; /* the shared row is filtered already */
        } else {
            kiln_w_filter_(S->m, S->p, h->tok, h->n, row, &lse, &t);
            lse0 = lse;
        }
        float mx = -INFINITY;
        for (int i = 0; i < V; i++)
            mx = row[i] > mx ? row[i] : mx;
        double z = 0.0;
        for (int i = 0; i < V; i++)
            if (row[i] > -INFINITY)
                z += exp(((double)row[i] - mx) / j->temp);
        double u = (double)(kiln_w_rand_(&j->rng) >> 11) / 9007199254740992.0 * z, acc = 0.0;
        t = -1;
        for (int i = 0; i < V; i++) {
            if (row[i] == -INFINITY)
                continue;
            t = i;
            acc += exp(((double)row[i] - mx) / j->temp);
            if (acc > u)
                break;
        }
        if (t < 0)
            t = eot;
        h->score += kiln_w_lp_(row, t, lse);
        if (t != eot)
            h->tok[h->n++] = t;
        if (t == eot || last)
            h->done = 1;
        else
            live++;
    }
    if (j->step == 0) /* every hypothesis continues from the prompt's cache */
        for (int k = 1; k < j->K; k++)
            kiln_w_copy_slot_(S, j->hyp[k].slot, j->hyp[0].slot, j->n_prompt);
    j->step++;
    if (live == 0) {
        *pk = kiln_w_best_(S, j->hyp, j->K);
        return 1;
    }
    return 0;
}

/*
 * Beam step, CTranslate2's BeamSearch::search: the 2K best continuations
 * over all beams (cumulative log-prob); of the first K, one that is EOT (or
 * any at the last step) becomes a finished hypothesis and its place goes to
 * the next non-EOT candidate of the second K; the search ends when
 * round(K * patience) hypotheses are finished (with length_penalty 0: when
 * the best beam finished). lg has one row per beam, or at step 0 the
 * prompt's row.
 */
static int kiln_w_step_beam_(kiln_wsess_t *S, kiln_wjob_t *j, float *lg, kiln_wpick_t *pk) {
    const int V = S->m->hp.n_vocab, eot = S->m->vocab.eot, K = j->K, NC = 2 * K;
    const int last = j->step == j->max_new - 1, rows = j->step == 0 ? 1 : K;
    kiln_wcand_t top[2 * KILN_W_KMAX];
    int ntop = 0;
    for (int b = 0; b < rows; b++) {
        kiln_whyp_t *h = &j->hyp[b];
        float *row = lg + (size_t)b * V;
        double lse;
        int t;
        kiln_w_filter_(S->m, S->p, h->tok, h->n, row, &lse, &t);
        if (lse == -INFINITY)
            continue;
        kiln_wcand_t rt[2 * KILN_W_KMAX];
        int nr = 0;
        float thr = -INFINITY;
        for (int i = 0; i < V; i++) {
            if (!(row[i] > thr))
                continue;
            kiln_wcand_t c = {(double)row[i], b, i};
            kiln_w_topk_push_(rt, &nr, NC, c);
            if (nr == NC)
                thr = (float)rt[NC - 1].score;
        }
        for (int i = 0; i < nr; i++) {
            rt[i].score = rt[i].score - lse + (j->step == 0 ? 0.0 : h->score);
            kiln_w_topk_push_(top, &ntop, NC, rt[i]);
        }
    }
    int origin[KILN_W_KMAX], ntok[KILN_W_KMAX], second = K, nk = K < ntop ? K : ntop;
    double nscore[KILN_W_KMAX];
    for (int k = 0; k < nk; k++) {
        int next = k;
        if (top[k].token == eot || last) {
            const kiln_whyp_t *o = &j->hyp[top[k].beam];
            if (k == 0)
                j->top_done = 1;
            if (j->n_fin < 2 * KILN_W_KMAX + 1) {
                kiln_whyp_t *f = &j->fin[j->n_fin++];
                memcpy(f->tok, o->tok, sizeof(int) * o->n);
                f->n = o->n;
                if (top[k].token != eot)
                    f->tok[f->n++] = top[k].token;
                f->score = top[k].score;
            }
            for (int c = second; c < ntop; c++)
                if (top[c].token != eot) {
                    next = c;
                    second = c + 1;
                    break;
                }
        }
        origin[k] = top[next].beam;
        ntok[k] = top[next].token;
        nscore[k] = top[next].score;
    }
    j->step++;
    int finished = last || nk < K;
    if (!finished) {
        int max_cand = (int)lroundf((float)K * S->p->patience);
        if (S->p->length_penalty == 0.0f)
            finished = j->top_done && j->n_fin >= 1;
        else
            finished = j->n_fin >= (max_cand > 0 ? max_cand : 1);
    }
    if (finished) {
        if (j->n_fin > 0) {
            *pk = kiln_w_best_(S, j->fin, j->n_fin);
        } else { /* no candidate at all (every token suppressed) */
            pk->tok = j->hyp[0].tok;
            pk->n = j->hyp[0].n;
            pk->avg_lp = (float)(j->hyp[0].score / (j->hyp[0].n + 1));
        }
        return 1;
    }
    /* beam k continues beam origin[k]: its tokens, and its cache columns */
    const int n_old = j->hyp[0].n, cols = j->n_prompt + n_old;
    int *tmp = j->tokbuf + (size_t)KILN_W_R_TMP * S->tok_stride;
    if (rows == 1) {
        for (int k = 1; k < K; k++)
            kiln_w_copy_slot_(S, j->hyp[k].slot, j->hyp[0].slot, cols);
    } else {
        int saved[KILN_W_KMAX];
        for (int b = 0; b < K; b++)
            saved[b] = -1;
        for (int k = 0; k < K; k++) { /* sources that get overwritten: save first */
            int o = origin[k];
            if (o != k && saved[o] < 0 && origin[o] != o) {
                saved[o] = S->tmp_slot0 + o;
                kiln_w_copy_slot_(S, saved[o], j->hyp[o].slot, cols);
            }
        }
        for (int k = 0; k < K; k++)
            if (origin[k] != k)
                kiln_w_copy_slot_(S, j->hyp[k].slot,
                                  saved[origin[k]] >= 0 ? saved[origin[k]]
                                                        : j->hyp[origin[k]].slot,
                                  cols);
    }
    for (int k = 0; k < K; k++)
        memcpy(tmp + (size_t)k * S->tok_stride, j->hyp[origin[k]].tok, sizeof(int) * n_old);
    for (int k = 0; k < K; k++) {
        kiln_whyp_t *h = &j->hyp[k];
        memcpy(h->tok, tmp + (size_t)k * S->tok_stride, sizeof(int) * n_old);
        h->n = n_old;
        h->tok[h->n++] = ntok[k];
        h->score = nscore[k];
    }
    return 0;
}

static int kiln_w_step_(kiln_wsess_t *S, kiln_wjob_t *j, float *lg, kiln_wpick_t *pk) {
    switch (j->mode) {
    case KILN_W_GREEDY: return kiln_w_step_greedy_(S, j, lg, pk);
    case KILN_W_SAMPLE: return kiln_w_step_sample_(S, j, lg, pk);
    default: return kiln_w_step_beam_(S, j, lg, pk);
    }
}

/*
 * Splits one window's tokens into segments at timestamp pairs and returns
 * the new seek (faster-whisper _split_segments_by_timestamps()), or -1 when
 * memory runs out.
 */
static int kiln_w_split_(const kiln_whisper_model_t *m, kiln_whisper_result_t *r,
                         const int *tok, int n, int seek, int segment_size, float avg_lp,
                         float nsp, float temp, float cr) {
    const int tb = m->vocab.timestamp_begin;
    const double offset = seek * KILN_W_FRAME_S;
    int single_end = n >= 2 && tok[n - 2] < tb && tok[n - 1] >= tb;
    int n_consec = 0, last_slice = 0, rc = 0;
    for (int i = 1; i < n; i++)
        if (tok[i] >= tb && tok[i - 1] >= tb)
            n_consec++;
    if (n_consec > 0) {
        for (int i = 1; i <= n; i++) {
            int cut = (i < n && tok[i] >= tb && tok[i - 1] >= tb) || (i == n && single_end);
            if (!cut)
                continue;
            const int *st = tok + last_slice;
            int len = i - last_slice;
            rc |= kiln_w_add_segment_(m, r, offset + (st[0] - tb) * KILN_W_TIME_PREC,
                                      offset + (st[len - 1] - tb) * KILN_W_TIME_PREC, st, len,
                                      avg_lp, nsp, temp, cr);
            last_slice = i;
        }
        if (single_end)
            seek += segment_size;
        else
            seek += (tok[last_slice - 1] - tb) * 2;
    } else {
        double duration = segment_size * KILN_W_FRAME_S;
        int last_t = -1;
        for (int i = 0; i < n; i++)
            if (tok[i] >= tb)
                last_t = tok[i];
        if (last_t >= 0 && last_t != tb)
            duration = (last_t - tb) * KILN_W_TIME_PREC;
        rc |= kiln_w_add_segment_(m, r, offset, offset + duration, tok, n, avg_lp, nsp, temp,
                                  cr);
        seek += segment_size;
    }
    return rc ? -1 : seek;
}

/* ---- transcription ------------------------------------------------------ */

/* @returns 1 when the next window of q is digital silence (every sample 0). */
static int kiln_w_silent_(const kiln_wreq_t *q) {
    size_t a = (size_t)q->seek * 160, b = a + (size_t)KILN_W_FRAMES * 160;
    if (b > q->n_samples)
        b = q->n_samples;
    for (size_t i = a; i < b; i++)
        if (q->pcm[i] != 0.0f)
            return 0;
    return 1;
}

static int kiln_w_lang_token_(const kiln_whisper_model_t *m, const char *code) {
    char want[32];
    snprintf(want, sizeof(want), "<|%s|>", code);
    for (int i = 0; i < m->vocab.n_langs; i++)
        if (!strcmp(m->vocab.tok[m->vocab.lang_begin + i], want))
            return m->vocab.lang_begin + i;
    return -1;
}

static void kiln_w_fail_(kiln_whisper_result_t *r, kiln_err_t err, const char *msg) {
    r->err = err;
    snprintf(r->error, sizeof(r->error), "%s", msg);
}

/* Joins the segment texts (leading blanks of the whole text trimmed). */
static int kiln_w_join_(kiln_whisper_result_t *r) {
    size_t len = 0;
    for (int i = 0; i < r->n_segments; i++)
        len += strlen(r->segments[i].text);
    char *s = malloc(len + 1), *w = s;
    if (!s)
        return -1;
    for (int i = 0; i < r->n_segments; i++) {
        size_t l = strlen(r->segments[i].text);
        memcpy(w, r->segments[i].text, l);
        w += l;
    }
    *w = '\0';
    char *t = s;
    while (*t == ' ')
        t++;
    memmove(s, t, strlen(t) + 1);
    len = strlen(s);
    while (len > 0 && s[len - 1] == ' ')
        s[--len] = '\0';
    r->text = s;
    return 0;
}

/* Builds the prompt of job j from its request's state (faster-whisper get_prompt()). */
static void kiln_w_prompt_(kiln_wsess_t *S, kiln_wjob_t *j) {
    const kiln_wvocab_t *v = &S->m->vocab;
    kiln_wreq_t *q = &S->rq[j->req];
    kiln_whisper_result_t *r = &S->out[j->req];
    int n = 0;
    if (S->p->condition_on_previous_text && r->n_tokens > q->reset_since) {
        int from = q->reset_since, cnt = r->n_tokens - from;
        int keep = S->m->hp.n_text_ctx / 2 - 1;
        if (cnt > keep) {
            from += cnt - keep;
            cnt = keep;
        }
        j->prompt[n++] = v->sot_prev;
        memcpy(j->prompt + n, r->tokens + from, sizeof(int) * cnt);
        n += cnt;
    }
    j->sot_pos = n;
    j->prompt[n++] = v->sot;
    j->need_lang = 0;
    if (S->multi) {
        if (q->lang >= 0) {
            j->prompt[n++] = q->lang;
            j->prompt[n++] = v->transcribe;
        } else {
            j->need_lang = 1; /* detected from the sot logits, then appended */
        }
    }
    j->n_prompt = n;
    j->n_fed = 0;
    j->ti = -1;
    j->no_speech_prob = 0.0f;
}

/* Starts the next window of some request in job slot j. @returns 1 if one started. */
static int kiln_w_start_job_(kiln_wsess_t *S, kiln_wjob_t *j, kiln_err_t *err) {
    const int M = S->m->hp.n_mels;
    for (int k = 0; k < S->n; k++) {
        int i = (S->next_req + k) % S->n;
        kiln_wreq_t *q = &S->rq[i];
        if (!q->active || q->busy || S->out[i].err != KILN_OK)
            continue;
        while (q->active && kiln_w_silent_(q)) {
            S->out[i].n_windows++;
            q->seek += KILN_W_FRAMES;
            q->active = q->seek < q->content;
        }
        if (!q->active)
            continue;
        S->next_req = (i + 1) % S->n;
        j->active = 1;
        j->req = i;
        j->seek = q->seek;
        j->size = q->content - q->seek < KILN_W_FRAMES ? q->content - q->seek : KILN_W_FRAMES;
        j->have[0] = j->have[1] = 0;
        q->busy = 1;
        for (int c = 0; c < M; c++) {
            memcpy(S->mel + (size_t)c * KILN_W_FRAMES, q->mel + (size_t)c * q->n_frames + q->seek,
                   sizeof(float) * j->size);
            memset(S->mel + (size_t)c * KILN_W_FRAMES + j->size, 0,
                   sizeof(float) * (KILN_W_FRAMES - j->size));
        }
        double t0 = kiln_w_now_();
        if (S->dmel != S->mel)
            S->d.kk->upload(S->dmel, S->mel, sizeof(float) * M * KILN_W_FRAMES);
        if ((*err = kiln_w_encode1_(S->m, S->ws, S->dmel, S->enc)) != KILN_OK)
            return 0;
        double t1 = kiln_w_now_();
        kiln_w_cross_(&S->d, S->enc, j->xslot);
        S->t_enc += t1 - t0;
        S->t_cross += kiln_w_now_() - t1;
        S->n_win++;
        kiln_w_prompt_(S, j);
        return 1;
    }
    return 0;
}

/* Applies a window's final result to its request; frees the job. */
static void kiln_w_finish_job_(kiln_wsess_t *S, kiln_wjob_t *j) {
    const kiln_whisper_params_t *p = S->p;
    kiln_wreq_t *q = &S->rq[j->req];
    kiln_whisper_result_t *r = &S->out[j->req];
    const float nsp = j->no_speech_prob, lp = j->best_lp[0];
    r->n_windows++;
    if (S->multi && !r->language[0] && q->lang >= 0) {
        const char *lt = S->m->vocab.tok[q->lang];
        snprintf(r->language, sizeof(r->language), "%.*s", (int)strlen(lt) - 4, lt + 2);
    }
    if ((nsp > p->no_speech_threshold && lp <= p->logprob_threshold) || nsp > p->no_speech_skip) {
        q->seek += j->size; /* silence: skip the window */
    } else {
        int ns = kiln_w_split_(S->m, r, j->best_tok[0], j->best_n[0], q->seek, j->size, lp, nsp,
                               j->res_temp, j->best_cr[0]);
        if (ns < 0) {
            kiln_w_fail_(r, KILN_ERR__NOMEM, "out of memory");
            q->active = 0;
        } else {
            q->seek = ns > q->seek ? ns : q->seek + j->size;
        }
        if (!p->condition_on_previous_text || j->res_temp > p->prompt_reset_on_temperature)
            q->reset_since = r->n_tokens;
    }
    q->busy = 0;
    if (q->seek >= q->content)
        q->active = 0;
    j->active = 0;
}

/*
 * Runs attempts of job j from its prompt's logits (copied from plogits)
 * until one needs a forward pass or the window is decided.
 */
static void kiln_w_begin_attempts_(kiln_wsess_t *S, kiln_wjob_t *j, int ti) {
    const int V = S->m->hp.n_vocab;
    for (;;) {
        kiln_w_attempt_(S, j, ti);
        memcpy(S->row, j->plogits, sizeof(float) * V);
        kiln_wpick_t pk;
        if (!kiln_w_step_(S, j, S->row, &pk))
            return; /* continues with the next forward pass */
        if (!kiln_w_judge_(S, j, pk)) {
            kiln_w_finish_job_(S, j);
            return;
        }
        ti++;
    }
}

/* Processes job j's rows of a forward pass. */
static void kiln_w_after_forward_(kiln_wsess_t *S, kiln_wjob_t *j) {
    const kiln_whisper_model_t *m = S->m;
    const int V = m->hp.n_vocab;
    if (j->prefilling) {
        j->prefilling = 0;
        if (j->lrow_sot >= 0) { /* no-speech probability (and the language) from sot */
            const float *lg = S->d.logits + (size_t)j->lrow_sot * V;
            kiln_row_stats_t st;
            kiln_row_stats(lg, V, V, &st);
            double lse = st.max[0] + log(st.sum[0]);
            j->no_speech_prob = (float)exp(lg[m->vocab.no_speech] - lse);
            if (j->need_lang) {
                int best = m->vocab.lang_begin;
                for (int i = 1; i < m->vocab.n_langs; i++)
                    if (lg[m->vocab.lang_begin + i] > lg[best])
                        best = m->vocab.lang_begin + i;
                S->rq[j->req].lang = best;
                j->prompt[j->n_prompt++] = best;
                j->prompt[j->n_prompt++] = m->vocab.transcribe;
                j->need_lang = 0;
                return; /* the language and task tokens go in the next pass */
            }
        }
        if (j->n_fed < j->n_prompt)
            return;
        memcpy(j->plogits, S->d.logits + (size_t)j->lrow_last * V, sizeof(float) * V);
        int mx = S->p->max_new_tokens > 0 ? S->p->max_new_tokens : m->hp.n_text_ctx / 2;
        int room = m->hp.n_text_ctx - j->n_prompt + 1;
        j->max_new = mx < room ? mx : room;
        if (j->max_new > S->tok_stride - 2)
            j->max_new = S->tok_stride - 2;
        kiln_w_begin_attempts_(S, j, 0);
        return;
    }
    kiln_wpick_t pk;
    if (!kiln_w_step_(S, j, S->d.logits + (size_t)j->lrow0 * V, &pk))
        return;
    if (!kiln_w_judge_(S, j, pk)) {
        kiln_w_finish_job_(S, j);
        return;
    }
    kiln_w_begin_attempts_(S, j, j->ti + 1);
}

/* Adds job j's rows for the next forward pass; @returns 0 when they do not fit. */
static int kiln_w_add_rows_(kiln_wsess_t *S, kiln_wjob_t *j, int *nR, int *nL) {
    kiln_wrow_t *rows = S->rows;
    if (j->n_fed < j->n_prompt) {
        int cnt = j->n_prompt - j->n_fed;
        if (*nR > 0 && *nR + cnt > S->rows_cap)
            return 0;
        j->prefilling = 1;
        j->lrow_sot = j->lrow_last = -1;
        for (int t = j->n_fed; t < j->n_prompt; t++) {
            kiln_wrow_t *rw = &rows[(*nR)++];
            rw->slot = j->slot0;
            rw->xslot = j->xslot;
            rw->token = j->prompt[t];
            rw->pos = t;
            rw->lrow = -1;
            if (t == j->sot_pos)
                rw->lrow = j->lrow_sot = (*nL)++;
            if (t == j->n_prompt - 1 && !j->need_lang) {
                if (rw->lrow < 0)
                    rw->lrow = (*nL)++;
                j->lrow_last = rw->lrow;
            }
        }
        j->n_fed = j->n_prompt;
        return 1;
    }
    j->lrow0 = *nL;
    for (int k = 0; k < j->K; k++) {
        kiln_whyp_t *h = &j->hyp[k];
        if (h->done)
            continue;
        kiln_wrow_t *rw = &rows[(*nR)++];
        rw->slot = h->slot;
        rw->xslot = j->xslot;
        rw->token = h->tok[h->n - 1];
        rw->pos = j->n_prompt + h->n - 1;
        rw->lrow = (*nL)++;
    }
    return 1;
}

/* Sizes every session buffer; @returns KILN_OK or KILN_ERR__NOMEM. */
static kiln_err_t kiln_w_session_alloc_(kiln_wsess_t *S) {
    const kiln_whisper_hparams_t *hp = &S->m->hp;
    const kiln_whisper_params_t *p = S->p;
    kiln_wws_t *ws = S->ws;
    const int C = hp->n_text_state, Ta = hp->n_audio_ctx, L = hp->n_text_layer, V = hp->n_vocab;
    int K = p->beam_size > 1 ? p->beam_size : 1;
    if (p->n_temperatures > 1 && p->best_of > K)
        for (int i = 0; i < p->n_temperatures; i++)
            if (p->temperatures[i] > 0.0f)
                K = p->best_of;
    S->K = K > KILN_W_KMAX ? KILN_W_KMAX : K;
    S->multi = V >= 51865;
    S->max_prompt = (p->condition_on_previous_text ? hp->n_text_ctx / 2 : 0) + 1 +
                    (S->multi ? 2 : 0);
    int max_new = p->max_new_tokens > 0 ? p->max_new_tokens : hp->n_text_ctx / 2;
    S->d.tmax = S->max_prompt + max_new;
    if (S->d.tmax > hp->n_text_ctx)
        S->d.tmax = hp->n_text_ctx;
    S->tok_stride = max_new + 2;
    const int J = S->n_jobs, slots = (J + 1) * S->K;
    /* a pass holds prefill rows up to rows_cap (counting the decode rows added
     * before them) plus the decode rows added after: at most J * K more. Only
     * sot and last prompt rows and decode rows have logits. */
    S->rows_cap = J * S->K + 256;
    if (S->rows_cap < S->max_prompt)
        S->rows_cap = S->max_prompt;
    const size_t R = (size_t)S->rows_cap + (size_t)J * S->K;
    const size_t RL = (size_t)J * S->K + 2 * (size_t)J;
    const size_t Tk = (size_t)(Ta > S->d.tmax ? Ta : S->d.tmax);
    const int host = ws->kk->host_memory;
    const size_t idx_bytes = sizeof(int) * 5 * R, ptr_bytes = sizeof(float *) * 4 * L * R;
    S->d.R = (int)R;
    S->d.xk = kiln_wdbuf_(ws, KILN_WB_XK, sizeof(float) * J * L * C * Ta);
    S->d.xv = kiln_wdbuf_(ws, KILN_WB_XV, sizeof(float) * J * L * C * Ta);
    S->d.sk = kiln_wdbuf_(ws, KILN_WB_SK, sizeof(float) * slots * L * C * S->d.tmax);
    S->d.sv = kiln_wdbuf_(ws, KILN_WB_SV, sizeof(float) * slots * L * C * S->d.tmax);
    S->mel = kiln_wbuf_(&ws->b[KILN_WB_MEL], sizeof(float) * hp->n_mels * KILN_W_FRAMES);
    S->dmel = host ? S->mel
                   : kiln_wdbuf_(ws, KILN_WB_DMEL, sizeof(float) * hp->n_mels * KILN_W_FRAMES);
    S->enc = kiln_wdbuf_(ws, KILN_WB_ENC, sizeof(float) * Ta * hp->n_audio_state);
    S->d.x = kiln_wdbuf_(ws, KILN_WB_DX, sizeof(float) * R * C);
    S->d.h = kiln_wdbuf_(ws, KILN_WB_DH, sizeof(float) * R * C);
    S->d.q = kiln_wdbuf_(ws, KILN_WB_DQ, sizeof(float) * R * 3 * C);
    S->d.a = kiln_wdbuf_(ws, KILN_WB_DA, sizeof(float) * R * C);
    S->d.f = kiln_wdbuf_(ws, KILN_WB_DF, sizeof(float) * R * 4 * C);
    S->d.lx = kiln_wdbuf_(ws, KILN_WB_LX, sizeof(float) * RL * C);
    S->d.logits = kiln_wbuf_(&ws->b[KILN_WB_LOGITS], sizeof(float) * RL * V);
    S->d.dlogits = host ? S->d.logits : kiln_wdbuf_(ws, KILN_WB_DLOGITS, sizeof(float) * RL * V);
    S->d.ascr = kiln_wdbuf_(ws, KILN_WB_ASCR, sizeof(float) * R * Tk);
    S->rows = kiln_wbuf_(&ws->b[KILN_WB_ROWS], sizeof(kiln_wrow_t) * R);
    char *ptrs = kiln_wbuf_(&ws->b[KILN_WB_PTRS], ptr_bytes + idx_bytes);
    S->d.h_ptr = (float **)ptrs;
    S->d.h_idx = ptrs ? (int *)(ptrs + ptr_bytes) : NULL;
    S->d.ptr = host ? S->d.h_ptr : kiln_wdbuf_(ws, KILN_WB_DPTR, ptr_bytes);
    S->d.idx = host ? S->d.h_idx : kiln_wdbuf_(ws, KILN_WB_DIDX, idx_bytes);
    S->jobs = kiln_wbuf_(&ws->b[KILN_WB_JOBS], sizeof(kiln_wjob_t) * J);
    int *toks = kiln_wbuf_(&ws->b[KILN_WB_TOKS],
                           sizeof(int) * J * ((size_t)KILN_W_R__COUNT * S->tok_stride +
                                              (size_t)S->max_prompt + 8));
    float *pl = kiln_wbuf_(&ws->b[KILN_WB_PLOGITS], sizeof(float) * ((size_t)J + 1) * V);
    if (!S->d.xk || !S->d.xv || !S->d.sk || !S->d.sv || !S->mel || !S->dmel || !S->enc ||
        !S->d.x || !S->d.h || !S->d.q || !S->d.a || !S->d.f || !S->d.lx || !S->d.logits ||
        !S->d.dlogits || !S->d.ascr || !S->rows || !ptrs || !S->d.ptr || !S->d.idx ||
        !S->jobs || !toks || !pl)
        return KILN_ERR__NOMEM;
    S->row = pl + (size_t)J * V;
    S->tmp_slot0 = J * S->K;
    memset(S->jobs, 0, sizeof(kiln_wjob_t) * J);
    for (int ji = 0; ji < J; ji++) {
        kiln_wjob_t *j = &S->jobs[ji];
        j->xslot = ji;
        j->slot0 = ji * S->K;
        j->tokbuf = toks + (size_t)ji * ((size_t)KILN_W_R__COUNT * S->tok_stride +
                                         (size_t)S->max_prompt + 8);
        j->best_tok[0] = j->tokbuf + (size_t)KILN_W_R_BEST * S->tok_stride;
        j->best_tok[1] = j->tokbuf + (size_t)(KILN_W_R_BEST + 1) * S->tok_stride;
        j->prompt = j->tokbuf + (size_t)KILN_W_R__COUNT * S->tok_stride;
        j->plogits = pl + (size_t)ji * V;
    }
    return KILN_OK;
}

/* Decodes every window of every request (continuous batching). */
static kiln_err_t kiln_w_session_(kiln_wsess_t *S) {
    kiln_err_t err = kiln_w_session_alloc_(S);
    if (err)
        return err;
    for (;;) {
        /* free slots take the next windows */
        for (int ji = 0; ji < S->n_jobs; ji++) {
            kiln_wjob_t *j = &S->jobs[ji];
            if (j->active)
                continue;
            if (!kiln_w_start_job_(S, j, &err)) {
                if (err)
                    return err;
                break;
            }
        }
        int nR = 0, nL = 0;
        for (int ji = 0; ji < S->n_jobs; ji++) {
            kiln_wjob_t *j = &S->jobs[ji];
            j->in_pass = j->active && kiln_w_add_rows_(S, j, &nR, &nL);
        }
        if (nR == 0)
            break;
        double t0 = kiln_w_now_();
        kiln_w_forward_(&S->d, S->rows, nR, nL);
        if (kiln_kernels_take_error())
            return KILN_ERR__NOMEM;
        double t1 = kiln_w_now_();
        for (int ji = 0; ji < S->n_jobs; ji++)
            if (S->jobs[ji].in_pass)
                kiln_w_after_forward_(S, &S->jobs[ji]);
        S->t_fwd += t1 - t0;
        S->t_search += kiln_w_now_() - t1;
        S->n_pass++;
        S->n_rows += nR;
    }
    return KILN_OK;
}

kiln_err_t kiln_whisper_transcribe(const kiln_whisper_model_t *m,
                                   const kiln_whisper_params_t *p, const float *const *pcm,
                                   const size_t *n_samples, int n, kiln_whisper_result_t *out) {
    const kiln_whisper_hparams_t *hp = &m->hp;
    kiln_err_t err = KILN_OK;
    if (KILN_W_FRAMES / 2 != hp->n_audio_ctx)
        return KILN_ERR__UNSUPPORTED;
    if (p->n_threads > 0)
        kiln_kernels_set_threads(p->n_threads);
    kiln_wsess_t S = {.m = m, .p = p, .out = out, .n = n};
    S.n_jobs = p->max_batch > 0 ? p->max_batch : 1;
    if (S.n_jobs > n)
        S.n_jobs = n > 0 ? n : 1;
    S.d.m = m;
    S.d.w = kiln_w_wd_(m);
    S.d.kk = kiln_w_kk_(m);
    S.rq = calloc((size_t)(n > 0 ? n : 1), sizeof(*S.rq));
    S.ws = kiln_ws_get_(m, S.d.kk);
    if (!S.rq || !S.ws) {
        err = KILN_ERR__NOMEM;
        goto done;
    }
    int forced = -1;
    if (hp->n_vocab >= 51865 && p->language && *p->language)
        forced = kiln_w_lang_token_(m, p->language);
    for (int i = 0; i < n; i++) {
        kiln_whisper_result_t *r = &out[i];
        r->duration_s = n_samples[i] / 16000.0;
        snprintf(r->language, sizeof(r->language), "%s",
                 hp->n_vocab >= 51865 ? (p->language ? p->language : "") : "en");
        S.rq[i].lang = forced;
        if (!pcm[i] || n_samples[i] == 0) {
            kiln_w_fail_(r, KILN_ERR_BAD_INPUT, "empty audio");
            continue;
        }
        if (kiln_whisper_log_mel(m, pcm[i], n_samples[i], &S.rq[i].mel, &S.rq[i].n_frames)) {
            kiln_w_fail_(r, KILN_ERR__NOMEM, "out of memory");
            continue;
        }
        S.rq[i].pcm = pcm[i];
        S.rq[i].n_samples = n_samples[i];
        S.rq[i].content = S.rq[i].n_frames - 1;
        S.rq[i].active = S.rq[i].content > 0;
    }
    double t0 = kiln_w_now_();
    kiln_w_dev_begin_(m, S.d.kk);
    err = kiln_w_session_(&S);
    kiln_kernels_unlock(S.d.kk);
    if (getenv("KILN_WHISPER_PROFILE"))
        fprintf(stderr,
                "whisper profile: %.3f s total; %ld windows: encoder %.3f s, cross K/V %.3f s; "
                "%ld decoder passes (%ld rows): forward %.3f s, search %.3f s\n",
                kiln_w_now_() - t0, S.n_win, S.t_enc, S.t_cross, S.n_pass, S.n_rows, S.t_fwd,
                S.t_search);
    if (err != KILN_OK)
        goto done;
    for (int i = 0; i < n; i++)
        if (out[i].err == KILN_OK && kiln_w_join_(&out[i]))
            kiln_w_fail_(&out[i], KILN_ERR__NOMEM, "out of memory");
done:
    if (S.rq)
        for (int i = 0; i < n; i++)
            free(S.rq[i].mel);
    free(S.rq);
    kiln_ws_put_(m, S.ws);
    return err;
}
