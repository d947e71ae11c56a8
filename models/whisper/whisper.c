/*
 * models/whisper/whisper.c - the Whisper model on the kernels of
 * include/kiln/kernels.h: encoder, decoder with KV caches, greedy decoding
 * with Whisper's logit rules, and long-form transcription in 30 s windows.
 *
 * Shapes (see kernels.h for the letters): a 30 s window is mel [M, 3000];
 * the encoder turns B windows into [B, Ta, Ca] (Ta = n_audio_ctx = 1500);
 * the decoder steps S sequences at once, each with its own self-attention
 * cache [L, Tmax, 2Ct] and cross-attention K/V [L, Ta, 2Ct], computed once
 * per window.
 *
 * Decoding follows openai/whisper's DecodingTask and faster-whisper's
 * generate_segments() with beam 1, temperature 0 and no conditioning on
 * previous text:
 *   prompt  [sot] (+ [lang, transcribe] for multilingual models);
 *   filters suppress blank/EOT at the first step, the suppress list, and
 *           the timestamp rules (pairs, monotonic, the first token is a
 *           timestamp <= 1 s, timestamps win when their total probability
 *           beats every text token);
 *   window  skipped when no_speech_prob > 0.6 and avg log-prob <= -1, and
 *           (kiln's additions) when no_speech_prob > p->no_speech_skip (0.9)
 *           or every sample is 0: Whisper itself says "you" on silence;
 *   seek    to the last complete timestamp pair, or past the window.
 * All windows of a batch are encoded together, and the decoder steps every
 * sequence that is still running; finished sequences leave the batch.
 *
 * Memory: buffers are allocated per call (sized by the batch) and freed
 * before returning; the model itself is read-only.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/kernels.h"
#include "kiln/log.h"
#include "models/whisper/whisper_int.h"

#define KILN_W_FRAMES 3000 /* mel frames per 30 s window */
#define KILN_W_TIME_PREC 0.02
#define KILN_W_FRAME_S 0.01

kiln_whisper_params_t kiln_whisper_default_params(void) {
    kiln_whisper_params_t p = {
        .n_threads = 0,
        .max_batch = 8,
        .beam_size = 1,
        .language = NULL,
        .timestamps = 1,
        .suppress_blank = 1,
        .max_initial_timestamp_index = 50,
        .no_speech_threshold = 0.6f,
        .logprob_threshold = -1.0f,
        .max_new_tokens = 0,
        .no_speech_skip = 0.9f,
    };
    return p;
}

/* ---- encoder ------------------------------------------------------------ */

kiln_err_t kiln_whisper_encode(const kiln_whisper_model_t *m, const float *mel, int B,
                               float *out) {
    const kiln_kernels_t *kk = kiln_kernels_get(KILN_BACKEND_CPU);
    const kiln_whisper_hparams_t *hp = &m->hp;
    const int M = hp->n_mels, T0 = KILN_W_FRAMES, Ta = hp->n_audio_ctx, Ca = hp->n_audio_state;
    const int H = hp->n_audio_head, D = Ca / H;
    const size_t N = (size_t)B * Ta;
    if (T0 / 2 != Ta)
        return KILN_ERR__UNSUPPORTED;
    size_t col_n = (size_t)T0 * (Ca > M ? Ca : M) * 3;
    float *xin = malloc(sizeof(float) * (size_t)T0 * M);
    float *h1 = malloc(sizeof(float) * (size_t)T0 * Ca);
    float *col = malloc(sizeof(float) * col_n);
    float *h = malloc(sizeof(float) * N * Ca);
    float *qkv = malloc(sizeof(float) * N * 3 * Ca);
    float *att = malloc(sizeof(float) * N * Ca);
    float *f = malloc(sizeof(float) * N * 4 * Ca);
    float *scr = malloc(sizeof(float) * (size_t)Ta * Ta);
    kiln_err_t err = KILN_ERR__NOMEM;
    if (!xin || !h1 || !col || !h || !qkv || !att || !f || !scr)
        goto done;

    /* conv stem: [3000, M] -> conv(k3,s1)+GELU -> [3000, Ca] -> conv(k3,s2)+GELU -> [Ta, Ca] */
    for (int b = 0; b < B; b++) {
        const float *mb = mel + (size_t)b * M * T0;
        float *xb = out + (size_t)b * Ta * Ca;
        for (int t = 0; t < T0; t++)
            for (int c = 0; c < M; c++)
                xin[(size_t)t * M + c] = mb[(size_t)c * T0 + t];
        kk->conv1d(h1, xin, m->conv1_w, m->conv1_b, T0, M, Ca, 3, 1, 1, col);
        kk->gelu(h1, h1, (size_t)T0 * Ca);
        kk->conv1d(xb, h1, m->conv2_w, m->conv2_b, T0, Ca, Ca, 3, 2, 1, col);
        kk->gelu(xb, xb, (size_t)Ta * Ca);
        kk->add(xb, xb, m->enc_pos, (size_t)Ta * Ca);
    }
    /* pre-LN transformer blocks */
    for (int l = 0; l < hp->n_audio_layer; l++) {
        const kiln_wenc_layer_t *L = &m->enc[l];
        kk->layernorm(h, out, L->ln1_g, L->ln1_b, (int)N, Ca, 1e-5f);
        kk->matmul(qkv, h, L->w_qkv, L->b_qkv, (int)N, Ca, 3 * Ca);
        for (int b = 0; b < B; b++) {
            const float *q = qkv + (size_t)b * Ta * 3 * Ca;
            kk->attention(att + (size_t)b * Ta * Ca, Ca, q, 3 * Ca, q + Ca, 3 * Ca, q + 2 * Ca,
                          3 * Ca, Ta, Ta, H, D, 0, scr);
        }
        kk->matmul(h, att, L->w_o, L->b_o, (int)N, Ca, Ca);
        kk->add(out, out, h, N * Ca);
        kk->layernorm(h, out, L->ln2_g, L->ln2_b, (int)N, Ca, 1e-5f);
        kk->matmul(f, h, L->w_fc1, L->b_fc1, (int)N, Ca, 4 * Ca);
        kk->gelu(f, f, N * 4 * Ca);
        kk->matmul(h, f, L->w_fc2, L->b_fc2, (int)N, 4 * Ca, Ca);
        kk->add(out, out, h, N * Ca);
    }
    kk->layernorm(out, out, m->enc_ln_g, m->enc_ln_b, (int)N, Ca, 1e-5f);
    err = KILN_OK;
done:
    free(xin);
    free(h1);
    free(col);
    free(h);
    free(qkv);
    free(att);
    free(f);
    free(scr);
    return err;
}

/* ---- decoder ------------------------------------------------------------ */

/* One sequence being decoded (one 30 s window of one request). */
typedef struct kiln_wseq_s {
    int req;
    float *kv;               /* [L, tmax, 2Ct] self-attention K|V */
    float *xkv;              /* [L, Ta, 2Ct] cross-attention K|V */
    int n_kv;                /* positions in the cache */
    int *tokens;             /* sampled tokens (EOT excluded) */
    int n_tokens;
    int next;                /* token to feed at the next step */
    double sum_logprob;
    float no_speech_prob;
    int done;
    int lang;                /* language token, or -1 */
} kiln_wseq_t;

typedef struct kiln_wdec_s {
    const kiln_whisper_model_t *m;
    const kiln_kernels_t *kk;
    int tmax;                /* cache rows per sequence */
    /* step buffers for up to S rows */
    float *x, *h, *qkv, *att, *f, *scr, *logits;
} kiln_wdec_t;

/*
 * Runs one decoder step for the nA sequences act[]: feeds act[a]->next at
 * position act[a]->n_kv, appends to their caches, writes logits [nA, V].
 */
static void kiln_wdec_step_(kiln_wdec_t *d, kiln_wseq_t **act, int nA) {
    const kiln_whisper_model_t *m = d->m;
    const kiln_kernels_t *kk = d->kk;
    const kiln_whisper_hparams_t *hp = &m->hp;
    const int Ct = hp->n_text_state, H = hp->n_text_head, D = Ct / H, Ta = hp->n_audio_ctx;
    const size_t kv_layer = (size_t)d->tmax * 2 * Ct, xkv_layer = (size_t)Ta * 2 * Ct;
    for (int a = 0; a < nA; a++) {
        const float *e = m->tok_emb + (size_t)act[a]->next * Ct;
        const float *p = m->dec_pos + (size_t)act[a]->n_kv * Ct;
        kk->add(d->x + (size_t)a * Ct, e, p, Ct);
    }
    for (int l = 0; l < hp->n_text_layer; l++) {
        const kiln_wdec_layer_t *L = &m->dec[l];
        /* causal self-attention over the cache */
        kk->layernorm(d->h, d->x, L->ln1_g, L->ln1_b, nA, Ct, 1e-5f);
        kk->matmul(d->qkv, d->h, L->w_qkv, L->b_qkv, nA, Ct, 3 * Ct);
        for (int a = 0; a < nA; a++) {
            kiln_wseq_t *s = act[a];
            float *row = d->qkv + (size_t)a * 3 * Ct;
            float *cache = s->kv + l * kv_layer;
            memcpy(cache + (size_t)s->n_kv * 2 * Ct, row + Ct, sizeof(float) * 2 * Ct);
            kk->attention(d->att + (size_t)a * Ct, Ct, row, 3 * Ct, cache, 2 * Ct, cache + Ct,
                          2 * Ct, 1, s->n_kv + 1, H, D, 0, d->scr);
        }
        kk->matmul(d->h, d->att, L->w_o, L->b_o, nA, Ct, Ct);
        kk->add(d->x, d->x, d->h, (size_t)nA * Ct);
        /* cross-attention to the window's encoder output */
        kk->layernorm(d->h, d->x, L->lnx_g, L->lnx_b, nA, Ct, 1e-5f);
        kk->matmul(d->qkv, d->h, L->wx_q, L->bx_q, nA, Ct, Ct);
        for (int a = 0; a < nA; a++) {
            const float *xkv = act[a]->xkv + l * xkv_layer;
            kk->attention(d->att + (size_t)a * Ct, Ct, d->qkv + (size_t)a * Ct, Ct, xkv, 2 * Ct,
                          xkv + Ct, 2 * Ct, 1, Ta, H, D, 0, d->scr);
        }
        kk->matmul(d->h, d->att, L->wx_o, L->bx_o, nA, Ct, Ct);
        kk->add(d->x, d->x, d->h, (size_t)nA * Ct);
        /* MLP */
        kk->layernorm(d->h, d->x, L->ln2_g, L->ln2_b, nA, Ct, 1e-5f);
        kk->matmul(d->f, d->h, L->w_fc1, L->b_fc1, nA, Ct, 4 * Ct);
        kk->gelu(d->f, d->f, (size_t)nA * 4 * Ct);
        kk->matmul(d->h, d->f, L->w_fc2, L->b_fc2, nA, 4 * Ct, Ct);
        kk->add(d->x, d->x, d->h, (size_t)nA * Ct);
    }
    for (int a = 0; a < nA; a++)
        act[a]->n_kv++;
    kk->layernorm(d->x, d->x, m->dec_ln_g, m->dec_ln_b, nA, Ct, 1e-5f);
    kk->matmul(d->logits, d->x, m->tok_emb, NULL, nA, Ct, hp->n_vocab);
}

/* log(sum(exp(x))) over n values; -inf when all are -inf. */
static double kiln_w_logsumexp_(const float *x, int n) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++)
        if (x[i] > mx)
            mx = x[i];
    if (mx == -INFINITY)
        return -INFINITY;
    double s = 0.0;
    for (int i = 0; i < n; i++)
        s += exp((double)x[i] - mx);
    return mx + log(s);
}

/*
 * Applies Whisper's logit filters to one sequence's logits (in place):
 * SuppressBlank, SuppressTokens, ApplyTimestampRules (openai/whisper
 * decoding.py; CTranslate2 implements the same).
 */
static void kiln_w_filter_(const kiln_whisper_model_t *m, const kiln_whisper_params_t *p,
                           const kiln_wseq_t *s, float *lg) {
    const kiln_wvocab_t *v = &m->vocab;
    const int V = m->hp.n_vocab, tb = v->timestamp_begin, n = s->n_tokens;
    const int *tok = s->tokens;
    if (p->suppress_blank && n == 0)
        for (int i = 0; i < v->n_suppress_begin; i++)
            lg[v->suppress_begin[i]] = -INFINITY;
    for (int i = 0; i < v->n_suppress; i++)
        lg[v->suppress[i]] = -INFINITY;
    if (!p->timestamps) {
        return;
    }
    lg[v->no_timestamps] = -INFINITY;
    int last_ts = n >= 1 && tok[n - 1] >= tb;
    int pen_ts = n < 2 || tok[n - 2] >= tb;
    if (last_ts) {
        if (pen_ts)
            for (int i = tb; i < V; i++)
                lg[i] = -INFINITY;
        else
            for (int i = 0; i < v->eot; i++)
                lg[i] = -INFINITY;
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
    }
    /* if the timestamps' total probability beats every text token, sample a timestamp */
    double lse = kiln_w_logsumexp_(lg, V);
    double ts_lp = kiln_w_logsumexp_(lg + tb, V - tb) - lse;
    float max_text = -INFINITY;
    for (int i = 0; i < tb; i++)
        if (lg[i] > max_text)
            max_text = lg[i];
    if (ts_lp > (double)max_text - lse)
        for (int i = 0; i < tb; i++)
            lg[i] = -INFINITY;
}

static int kiln_w_argmax_(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

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
                               float nsp) {
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
    int *all = realloc(r->tokens, sizeof(int) * (r->n_tokens + n + 1));
    if (segs)
        r->segments = segs;
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
    memcpy(r->tokens + r->n_tokens, tok, sizeof(int) * n);
    r->n_tokens += n;
    r->n_segments++;
    return 0;
}

/*
 * Splits one window's tokens into segments at timestamp pairs and returns
 * the new seek (faster-whisper _split_segments_by_timestamps()).
 */
static int kiln_w_split_(const kiln_whisper_model_t *m, kiln_whisper_result_t *r,
                         const kiln_wseq_t *s, int seek, int segment_size, float avg_lp) {
    const int tb = m->vocab.timestamp_begin, n = s->n_tokens;
    const int *tok = s->tokens;
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
                                      avg_lp, s->no_speech_prob);
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
        rc |= kiln_w_add_segment_(m, r, offset, offset + duration, tok, n, avg_lp,
                                  s->no_speech_prob);
        seek += segment_size;
    }
    return rc ? -1 : seek;
}

/* ---- transcription ------------------------------------------------------ */

typedef struct kiln_wreq_s {
    const float *pcm;
    size_t n_samples;
    float *mel;              /* [M, F] */
    int n_frames, content, seek;
    int active;
} kiln_wreq_t;

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

/* Decodes nW windows (encoded in enc [nW, Ta, Ca]) for the sequences seqs[]. */
static kiln_err_t kiln_w_decode_(const kiln_whisper_model_t *m, const kiln_whisper_params_t *p,
                                 const float *enc, kiln_wseq_t *seqs, int nW) {
    const kiln_whisper_hparams_t *hp = &m->hp;
    const kiln_wvocab_t *v = &m->vocab;
    const int Ct = hp->n_text_state, Ta = hp->n_audio_ctx, V = hp->n_vocab;
    const int multi = V >= 51865;
    int max_new = p->max_new_tokens > 0 ? p->max_new_tokens : hp->n_text_ctx / 2;
    kiln_wdec_t d = {.m = m, .kk = kiln_kernels_get(KILN_BACKEND_CPU)};
    d.tmax = (multi ? 3 : 1) + max_new + 1;
    if (d.tmax > hp->n_text_ctx)
        d.tmax = hp->n_text_ctx;
    if (max_new > d.tmax - (multi ? 3 : 1))
        max_new = d.tmax - (multi ? 3 : 1);
    kiln_err_t err = KILN_ERR__NOMEM;
    kiln_wseq_t **act = calloc((size_t)nW, sizeof(*act));
    int *lang_forced = calloc((size_t)nW, sizeof(int));
    d.x = malloc(sizeof(float) * nW * Ct);
    d.h = malloc(sizeof(float) * nW * Ct);
    d.qkv = malloc(sizeof(float) * nW * 3 * Ct);
    d.att = malloc(sizeof(float) * nW * Ct);
    d.f = malloc(sizeof(float) * nW * 4 * Ct);
    d.scr = malloc(sizeof(float) * (Ta > d.tmax ? Ta : d.tmax));
    d.logits = malloc(sizeof(float) * (size_t)nW * V);
    if (!act || !lang_forced || !d.x || !d.h || !d.qkv || !d.att || !d.f || !d.scr || !d.logits)
        goto done;
    for (int w = 0; w < nW; w++) {
        kiln_wseq_t *s = &seqs[w];
        s->kv = malloc(sizeof(float) * hp->n_text_layer * d.tmax * 2 * Ct);
        s->xkv = malloc(sizeof(float) * hp->n_text_layer * Ta * 2 * Ct);
        s->tokens = malloc(sizeof(int) * (max_new + 1));
        if (!s->kv || !s->xkv || !s->tokens)
            goto done;
        for (int l = 0; l < hp->n_text_layer; l++)
            d.kk->matmul(s->xkv + (size_t)l * Ta * 2 * Ct, enc + (size_t)w * Ta * Ct,
                         m->dec[l].wx_kv, m->dec[l].bx_kv, Ta, Ct, 2 * Ct);
        s->n_kv = 0;
        s->n_tokens = 0;
        s->done = 0;
        s->sum_logprob = 0.0;
        s->next = v->sot;
    }
    /* prompt: sot (no-speech probability from its logits), then, for
     * multilingual models, the language (given or detected) and the task */
    int n_prompt = multi ? 3 : 1;
    for (int step = 0; step < n_prompt; step++) {
        for (int w = 0; w < nW; w++)
            act[w] = &seqs[w];
        kiln_wdec_step_(&d, act, nW);
        for (int w = 0; w < nW; w++) {
            kiln_wseq_t *s = &seqs[w];
            float *lg = d.logits + (size_t)w * V;
            if (step == 0) {
                double lse = kiln_w_logsumexp_(lg, V);
                s->no_speech_prob = (float)exp(lg[v->no_speech] - lse);
                if (multi) {
                    int forced = p->language && *p->language
                                     ? kiln_w_lang_token_(m, p->language) : -1;
                    s->lang = forced >= 0
                                  ? forced
                                  : v->lang_begin + kiln_w_argmax_(lg + v->lang_begin, v->n_langs);
                    s->next = s->lang;
                }
            } else if (step == 1) {
                s->next = v->transcribe;
            }
        }
    }
    /* greedy sampling; the logits of the last prompt token are in d.logits */
    int nA = nW;
    for (int w = 0; w < nW; w++)
        act[w] = &seqs[w];
    for (int step = 0; step < max_new && nA > 0; step++) {
        int k = 0;
        for (int a = 0; a < nA; a++) {
            kiln_wseq_t *s = act[a];
            float *lg = d.logits + (size_t)a * V;
            kiln_w_filter_(m, p, s, lg);
            int t = kiln_w_argmax_(lg, V);
            s->sum_logprob += lg[t] - kiln_w_logsumexp_(lg, V);
            if (t == v->eot || step == max_new - 1) {
                if (t != v->eot)
                    s->tokens[s->n_tokens++] = t;
                s->done = 1;
                continue;
            }
            s->tokens[s->n_tokens++] = t;
            s->next = t;
            act[k++] = s;
        }
        nA = k;
        if (nA > 0)
            kiln_wdec_step_(&d, act, nA);
    }
    err = KILN_OK;
done:
    free(act);
    free(lang_forced);
    free(d.x);
    free(d.h);
    free(d.qkv);
    free(d.att);
    free(d.f);
    free(d.scr);
    free(d.logits);
    for (int w = 0; w < nW; w++) {
        free(seqs[w].kv);
        free(seqs[w].xkv);
        seqs[w].kv = seqs[w].xkv = NULL;
    }
    return err;
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

kiln_err_t kiln_whisper_transcribe(const kiln_whisper_model_t *m,
                                   const kiln_whisper_params_t *p, const float *const *pcm,
                                   const size_t *n_samples, int n, kiln_whisper_result_t *out) {
    const kiln_whisper_hparams_t *hp = &m->hp;
    const int M = hp->n_mels, Ta = hp->n_audio_ctx, Ca = hp->n_audio_state;
    int max_batch = p->max_batch > 0 ? p->max_batch : 1;
    kiln_err_t err = KILN_OK;
    if (p->n_threads > 0)
        kiln_kernels_set_threads(p->n_threads);
    kiln_wreq_t *rq = calloc((size_t)n, sizeof(*rq));
    int *idx = calloc((size_t)max_batch, sizeof(int));
    kiln_wseq_t *seqs = calloc((size_t)max_batch, sizeof(*seqs));
    float *mel = malloc(sizeof(float) * (size_t)max_batch * M * KILN_W_FRAMES);
    float *enc = malloc(sizeof(float) * (size_t)max_batch * Ta * Ca);
    if (!rq || !idx || !seqs || !mel || !enc) {
        err = KILN_ERR__NOMEM;
        goto done;
    }
    for (int i = 0; i < n; i++) {
        kiln_whisper_result_t *r = &out[i];
        r->duration_s = n_samples[i] / 16000.0;
        snprintf(r->language, sizeof(r->language), "%s",
                 hp->n_vocab >= 51865 ? (p->language ? p->language : "") : "en");
        if (!pcm[i] || n_samples[i] == 0) {
            kiln_w_fail_(r, KILN_ERR_BAD_INPUT, "empty audio");
            continue;
        }
        if (kiln_whisper_log_mel(m, pcm[i], n_samples[i], &rq[i].mel, &rq[i].n_frames)) {
            kiln_w_fail_(r, KILN_ERR__NOMEM, "out of memory");
            continue;
        }
        rq[i].pcm = pcm[i];
        rq[i].n_samples = n_samples[i];
        rq[i].content = rq[i].n_frames - 1;
        rq[i].active = rq[i].content > 0;
    }
    /* each round takes the next window of up to max_batch active requests */
    int next = 0;
    for (;;) {
        int nW = 0;
        for (int k = 0; k < n && nW < max_batch; k++) {
            int i = (next + k) % n;
            while (rq[i].active && out[i].err == KILN_OK && kiln_w_silent_(&rq[i])) {
                out[i].n_windows++;
                rq[i].seek += KILN_W_FRAMES;
                rq[i].active = rq[i].seek < rq[i].content;
            }
            if (rq[i].active && out[i].err == KILN_OK)
                idx[nW++] = i;
        }
        if (nW == 0)
            break;
        next = (idx[nW - 1] + 1) % n;
        for (int w = 0; w < nW; w++) {
            kiln_wreq_t *q = &rq[idx[w]];
            int size = q->content - q->seek < KILN_W_FRAMES ? q->content - q->seek : KILN_W_FRAMES;
            float *mw = mel + (size_t)w * M * KILN_W_FRAMES;
            for (int c = 0; c < M; c++) {
                memcpy(mw + (size_t)c * KILN_W_FRAMES, q->mel + (size_t)c * q->n_frames + q->seek,
                       sizeof(float) * size);
                memset(mw + (size_t)c * KILN_W_FRAMES + size, 0,
                       sizeof(float) * (KILN_W_FRAMES - size));
            }
            memset(&seqs[w], 0, sizeof(seqs[w]));
            seqs[w].req = idx[w];
        }
        if ((err = kiln_whisper_encode(m, mel, nW, enc)) ||
            (err = kiln_w_decode_(m, p, enc, seqs, nW)))
            goto done;
        for (int w = 0; w < nW; w++) {
            kiln_wseq_t *s = &seqs[w];
            kiln_wreq_t *q = &rq[s->req];
            kiln_whisper_result_t *r = &out[s->req];
            int size = q->content - q->seek < KILN_W_FRAMES ? q->content - q->seek : KILN_W_FRAMES;
            float avg_lp = (float)(s->sum_logprob / (s->n_tokens + 1));
            r->n_windows++;
            if (hp->n_vocab >= 51865 && !r->language[0] && s->lang >= 0) {
                const char *lt = m->vocab.tok[s->lang];
                snprintf(r->language, sizeof(r->language), "%.*s", (int)strlen(lt) - 4, lt + 2);
            }
            if ((s->no_speech_prob > p->no_speech_threshold && avg_lp <= p->logprob_threshold) ||
                s->no_speech_prob > p->no_speech_skip) {
                q->seek += size; /* silence: skip the window */
            } else {
                int ns = kiln_w_split_(m, r, s, q->seek, size, avg_lp);
                if (ns < 0) {
                    kiln_w_fail_(r, KILN_ERR__NOMEM, "out of memory");
                    q->active = 0;
                } else {
                    q->seek = ns > q->seek ? ns : q->seek + size;
                }
            }
            free(s->tokens);
            s->tokens = NULL;
            if (q->seek >= q->content)
                q->active = 0;
        }
    }
    for (int i = 0; i < n; i++)
        if (out[i].err == KILN_OK && kiln_w_join_(&out[i]))
            kiln_w_fail_(&out[i], KILN_ERR__NOMEM, "out of memory");
done:
    if (rq)
        for (int i = 0; i < n; i++)
            free(rq[i].mel);
    if (seqs)
        for (int w = 0; w < max_batch; w++)
            free(seqs[w].tokens);
    free(rq);
    free(idx);
    free(seqs);
    free(mel);
    free(enc);
    return err;
}
