/*
 * models/voice/vits.c - the VITS forward pass of a Piper voice, CPU
 * reference, in the order of Piper's ONNX export (infer with scales
 * [noise_scale, length_scale, noise_w]):
 *
 *   text encoder   x = emb(ids) * sqrt(C); n_layers of (relative-position
 *                  self-attention, LayerNorm, conv FFN with ReLU, LayerNorm);
 *                  m_p | logs_p = proj(x)
 *   durations      stochastic duration predictor in reverse: z = noise * noise_w
 *                  through Flip / ConvFlow (rational-quadratic splines
 *                  conditioned on the encoder through a DDS conv stack) and an
 *                  ElementwiseAffine; frames = ceil(exp(z0) * length_scale)
 *   expansion      frame t takes the stats of the id it falls in
 *                  z_p = m_p + noise * exp(logs_p) * noise_scale
 *   flow           residual coupling layers (WaveNet, mean only) in reverse
 *   decoder        HiFi-GAN: conv_pre, (leaky ReLU, transposed conv, mean of
 *                  the multi-receptive-field resblocks) per stage, conv_post, tanh
 *
 * Shapes are time-major: T ids, F frames, C channels. A batch of B
 * sequences is B passes with no padding at all, one per pool thread at a
 * time (kiln_vbatch_task_()). On a device backend (kiln_voice_set_backend())
 * the whole batch runs as one ragged batch of kernel ops instead
 * (models/voice/vits_dev.c). Text in, joined audio out: models/voice/speak.c.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/kernels.h"
#include "models/voice/voice_int.h"

kiln_voice_params_t kiln_voice_default_params(void) {
    kiln_voice_params_t p = {.noise_scale = -1.0f, .length_scale = -1.0f, .noise_w = -1.0f,
                             .speaker = 0, .seed = 1, .normalize = 1, .sentence_silence = 0.0f};
    return p;
}

/* ---- noise: xoshiro256** seeded by splitmix64, Box-Muller */

static uint64_t kiln_vsplitmix_(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void kiln_vrng_seed_(kiln_vrng_t *r, uint64_t seed) {
    for (int i = 0; i < 4; i++)
        r->s[i] = kiln_vsplitmix_(&seed);
    r->has_spare = 0;
}

static uint64_t kiln_vrng_next_(kiln_vrng_t *r) {
    uint64_t *s = r->s;
    uint64_t x = s[1] * 5;
    uint64_t res = ((x << 7) | (x >> 57)) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return res;
}

float kiln_vrng_normal_(kiln_vrng_t *r) {
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u1 = ((kiln_vrng_next_(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = (kiln_vrng_next_(r) >> 11) * (1.0 / 9007199254740992.0);
    double rad = sqrt(-2.0 * log(u1));
    r->spare = (float)(rad * sin(2.0 * M_PI * u2));
    r->has_spare = 1;
    return (float)(rad * cos(2.0 * M_PI * u2));
}

/* ---- blocks */

/* x[T, C] += g (optional); the DDS conv stack of the duration predictor, in place. */
static void kiln_vdds_(const kiln_vdds_t *d, float *x, const float *g, int T, int C, int K,
                       float *y, float *y2) {
    const kiln_kernels_t *kk = kiln_kernels_get(KILN_BACKEND_CPU);
    size_t n = (size_t)T * C;
    if (g)
        kk->add(x, x, g, n);
    int dil = 1;
    for (int i = 0; i < d->n; i++) {
        kiln_vdwconv_(y, x, &d->sep[i], T, dil);
        kk->layernorm(y, y, d->n1[i].g, d->n1[i].b, T, C, 1e-5f);
        kk->gelu(y, y, n);
        kk->matmul(y2, y, d->pw[i].w, d->pw[i].b, T, C, C);
        kk->layernorm(y2, y2, d->n2[i].g, d->n2[i].b, T, C, 1e-5f);
        kk->gelu(y2, y2, n);
        kk->add(x, x, y2, n);
        dil *= K;
    }
}

/* Text encoder: ids[T] -> x [T, C] (hidden) and stats [T, 2 * inter]. */
static int kiln_vencode_(const kiln_voice_t *v, const int *ids, int T, float *x, float *stats) {
    const kiln_kernels_t *kk = kiln_kernels_get(KILN_BACKEND_CPU);
    const kiln_vhparams_t *hp = &v->hp;
    int C = hp->hidden, F = hp->filter, D = C / hp->n_heads;
    float sc = sqrtf((float)C);
    float *qkv = malloc((size_t)T * 3 * C * sizeof(float));
    float *att = malloc((size_t)T * C * sizeof(float));
    float *y = malloc((size_t)T * C * sizeof(float));
    float *h = malloc((size_t)T * F * sizeof(float));
    int rc = -1;
    if (!qkv || !att || !y || !h)
        goto out;
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++)
            x[(size_t)t * C + c] = v->emb[(size_t)ids[t] * C + c] * sc;
    for (int l = 0; l < hp->n_layers; l++) {
        const kiln_venc_layer_t *e = &v->enc[l];
        kk->matmul(qkv, x, e->qkv.w, e->qkv.b, T, C, 3 * C);
        kiln_vrel_attention_(att, qkv, e->rel_k, e->rel_v, T, hp->n_heads, D, hp->window);
        kk->matmul(y, att, e->o.w, e->o.b, T, C, C);
        kk->add(x, x, y, (size_t)T * C);
        kk->layernorm(x, x, e->n1.g, e->n1.b, T, C, 1e-5f);
        /* FFN: conv_2(relu(conv_1(x))) + x, the ReLU fused into conv_2's input */
        kiln_vconv1d_(h, x, &e->ffn1, T, 1, 1.0f, NULL);
        kiln_vconv1d_(y, h, &e->ffn2, T, 1, 0.0f, x);
        kk->layernorm(x, y, e->n2.g, e->n2.b, T, C, 1e-5f);
    }
    kk->matmul(stats, x, v->enc_proj.w, v->enc_proj.b, T, C, 2 * hp->inter);
    rc = 0;
out:
    free(qkv);
    free(att);
    free(y);
    free(h);
    return rc;
}

/*
 * Stochastic duration predictor in reverse: encoder output x [T, C] ->
 * frames per id dur[T]. noise_w = 0 makes it deterministic.
 */
static int kiln_vdurations_(const kiln_voice_t *v, const float *x, int T, float noise_w,
                            float length_scale, kiln_vrng_t *rng, int *dur) {
    const kiln_kernels_t *kk = kiln_kernels_get(KILN_BACKEND_CPU);
    const kiln_vhparams_t *hp = &v->hp;
    int C = hp->hidden, FC = hp->dp_filter, bins = hp->dp_bins, NP = 3 * bins - 1;
    float *g = malloc((size_t)T * FC * sizeof(float));
    float *h = malloc((size_t)T * FC * sizeof(float));
    float *y = malloc((size_t)T * FC * sizeof(float));
    float *y2 = malloc((size_t)T * FC * sizeof(float));
    float *pr = malloc((size_t)T * NP * sizeof(float));
    float *z = malloc((size_t)T * 2 * sizeof(float));
    int rc = -1;
    if (!g || !h || !y || !y2 || !pr || !z)
        goto out;
    /* conditioning: proj(DDS(pre(x))) */
    kk->matmul(h, x, v->dp_pre.w, v->dp_pre.b, T, C, FC);
    kiln_vdds_(&v->dp_dds, h, NULL, T, FC, hp->dp_kernel, y, y2);
    kk->matmul(g, h, v->dp_proj.w, v->dp_proj.b, T, FC, FC);
    for (int t = 0; t < T; t++) {
        z[2 * t] = kiln_vrng_normal_(rng) * noise_w;
        z[2 * t + 1] = kiln_vrng_normal_(rng) * noise_w;
    }
    float inv_sqrt_fc = 1.0f / sqrtf((float)FC);
    for (int f = hp->dp_n_flows - 1; f >= 0; f--) {
        const kiln_vconvflow_t *cf = &v->dp_flow[f];
        for (int t = 0; t < T; t++) { /* Flip */
            float tmp = z[2 * t];
            z[2 * t] = z[2 * t + 1];
            z[2 * t + 1] = tmp;
        }
        /* ConvFlow: x1 = spline^-1(x1; params(DDS(pre(x0)) + g)) */
        for (int t = 0; t < T; t++)
            for (int c = 0; c < FC; c++)
                h[(size_t)t * FC + c] = cf->pre.w[c] * z[2 * t] + cf->pre.b[c];
        kiln_vdds_(&cf->dds, h, g, T, FC, hp->dp_kernel, y, y2);
        kk->matmul(pr, h, cf->proj.w, cf->proj.b, T, FC, NP);
        for (int t = 0; t < T; t++) {
            float *p = pr + (size_t)t * NP;
            for (int i = 0; i < 2 * bins; i++)
                p[i] *= inv_sqrt_fc;
            z[2 * t + 1] = kiln_rq_spline_inverse(z[2 * t + 1], p, p + bins, p + 2 * bins,
                                                 bins, hp->dp_tail_bound);
        }
    }
    for (int t = 0; t < T; t++) { /* Flip, then ElementwiseAffine reversed */
        float a = z[2 * t + 1], b = z[2 * t];
        z[2 * t] = (a - v->dp_m[0]) * expf(-v->dp_logs[0]);
        z[2 * t + 1] = (b - v->dp_m[1]) * expf(-v->dp_logs[1]);
    }
    for (int t = 0; t < T; t++) {
        float w = expf(z[2 * t]) * length_scale;
        dur[t] = (int)ceilf(w);
        if (dur[t] < 0)
            dur[t] = 0;
    }
    rc = 0;
out:
    free(g);
    free(h);
    free(y);
    free(y2);
    free(pr);
    free(z);
    return rc;
}

typedef struct kiln_vgate_job_s {
    float *out;
    const float *inp;
    int F, C;
} kiln_vgate_job_t;

#define KILN_VGATE_ROWS 64

static void kiln_vgate_task_(void *vctx, int task, int thread) {
    const kiln_vgate_job_t *j = vctx;
    int C = j->C, t1 = (task + 1) * KILN_VGATE_ROWS < j->F ? (task + 1) * KILN_VGATE_ROWS : j->F;
    (void)thread;
    for (int t = task * KILN_VGATE_ROWS; t < t1; t++) {
        const float *r = j->inp + (size_t)t * 2 * C;
        kiln_vgate_row_(j->out + (size_t)t * C, r, r + C, C);
    }
}

/* out[F, C] = tanh(a) * sigmoid(b) of inp[F, 2C] (a | b), on the pool. */
static void kiln_vgate_(float *out, const float *inp, int F, int C) {
    kiln_vgate_job_t j = {.out = out, .inp = inp, .F = F, .C = C};
    kiln_parallel_for((F + KILN_VGATE_ROWS - 1) / KILN_VGATE_ROWS, kiln_vgate_task_, &j);
}

/* Flow in reverse, z [F, inter] in place. */
static int kiln_vflow_reverse_(const kiln_voice_t *v, float *z, int F) {
    const kiln_kernels_t *kk = kiln_kernels_get(KILN_BACKEND_CPU);
    const kiln_vhparams_t *hp = &v->hp;
    int IC = hp->inter, half = IC / 2, C = hp->hidden;
    float *x0 = malloc((size_t)F * half * sizeof(float));
    float *h = malloc((size_t)F * C * sizeof(float));
    float *xin = malloc((size_t)F * 2 * C * sizeof(float));
    float *rs = malloc((size_t)F * 2 * C * sizeof(float));
    float *skip = malloc((size_t)F * C * sizeof(float));
    float *m = malloc((size_t)F * half * sizeof(float));
    int rc = -1;
    if (!x0 || !h || !xin || !rs || !skip || !m)
        goto out;
    for (int f = hp->n_flows - 1; f >= 0; f--) {
        const kiln_vcoupling_t *cp = &v->flow[f];
        for (int t = 0; t < F; t++) { /* Flip (channels reversed) */
            float *r = z + (size_t)t * IC;
            for (int a = 0, b = IC - 1; a < b; a++, b--) {
                float tmp = r[a];
                r[a] = r[b];
                r[b] = tmp;
            }
            memcpy(x0 + (size_t)t * half, r, (size_t)half * sizeof(float));
        }
        kk->matmul(h, x0, cp->pre.w, cp->pre.b, F, half, C);
        memset(skip, 0, (size_t)F * C * sizeof(float));
        int dil = 1;
        for (int i = 0; i < hp->wn_layers; i++, dil *= hp->flow_dilation) {
            kiln_vconv1d_(xin, h, &cp->in[i], F, dil, 1.0f, NULL);
            /* gated activation tanh(a) * sigmoid(b) into [F, C] rows for the 1x1 conv */
            kiln_vgate_(rs, xin, F, C);
            int last = i == hp->wn_layers - 1;
            kk->matmul(xin, rs, cp->rs[i].w, cp->rs[i].b, F, C, cp->rs[i].oc);
            for (int t = 0; t < F; t++) {
                const float *r = xin + (size_t)t * cp->rs[i].oc;
                float *hh = h + (size_t)t * C, *sk = skip + (size_t)t * C;
                if (!last) {
                    for (int c = 0; c < C; c++) {
                        hh[c] += r[c];
                        sk[c] += r[C + c];
                    }
                } else {
                    for (int c = 0; c < C; c++)
                        sk[c] += r[c];
                }
            }
        }
        kk->matmul(m, skip, cp->post.w, cp->post.b, F, C, half);
        for (int t = 0; t < F; t++) {
            float *x1 = z + (size_t)t * IC + half;
            const float *mm = m + (size_t)t * half;
            for (int c = 0; c < half; c++)
                x1[c] -= mm[c];
        }
    }
    rc = 0;
out:
    free(x0);
    free(h);
    free(xin);
    free(rs);
    free(skip);
    free(m);
    return rc;
}

/* HiFi-GAN decoder: z [F, inter] -> pcm [F * hop]. */
static int kiln_vdecode_(const kiln_voice_t *v, const float *z, int F, float *pcm) {
    const kiln_vhparams_t *hp = &v->hp;
    int T = F, ch = hp->ups_ch0;
    float *x = malloc((size_t)T * ch * sizeof(float));
    float *u = NULL, *acc = NULL, *a = NULL, *c = NULL;
    int rc = -1;
    if (!x)
        goto out;
    kiln_vconv1d_(x, z, &v->conv_pre, T, 1, 1.0f, NULL);
    for (int s = 0; s < hp->n_ups; s++) {
        const kiln_vconv_t *up = &v->ups[s];
        int oc = up->oc, K = up->k, st = hp->ups_rate[s];
        int pad = (K - st) / 2, T2 = (T - 1) * st - 2 * pad + K;
        size_t n = (size_t)T2 * oc;
        u = malloc(n * sizeof(float));
        acc = malloc(n * sizeof(float));
        a = malloc(n * sizeof(float));
        c = malloc(n * sizeof(float));
        if (!u || !acc || !a || !c)
            goto out;
        kiln_vconv_transpose_(u, x, up, T, st, pad, 0.1f);
        /* mean of the resblocks; each is x = x + conv_d(leaky(x)) over its
         * dilations (leaky ReLU and residual fused into the convolution);
         * the last conv of each adds its result into acc, and the last of
         * all scales the sum, in the same pass */
        float inv = 1.0f / (float)hp->n_res;
        for (int j = 0; j < hp->n_res; j++) {
            const float *src = u;
            for (int d = 0; d < hp->n_dil; d++) {
                const kiln_vconv_t *cv = &v->res[s * hp->n_res + j][d];
                int dl = hp->res_dil[j][d];
                if (d == hp->n_dil - 1) {
                    kiln_vconv1d_ex_(acc, src, cv, T2, dl, 0.1f, src, j ? acc : NULL,
                                     j == hp->n_res - 1 ? inv : 1.0f);
                    break;
                }
                float *dst = (d % 2 == 0) ? a : c;
                kiln_vconv1d_(dst, src, cv, T2, dl, 0.1f, src);
                src = dst;
            }
        }
        free(x);
        x = acc;
        acc = NULL;
        free(u);
        free(a);
        free(c);
        u = a = c = NULL;
        T = T2;
        ch = oc;
    }
    kiln_vconv1d_(pcm, x, &v->conv_post, T, 1, 0.01f, NULL);
    for (int t = 0; t < T; t++)
        pcm[t] = tanhf(pcm[t]);
    rc = 0;
out:
    free(x);
    free(u);
    free(acc);
    free(a);
    free(c);
    return rc;
}

int kiln_voice_durations_(kiln_voice_t *v, const int *ids, int T, float noise_w,
                          float length_scale, uint64_t seed, int *dur) {
    int C = v->hp.hidden;
    float *x = malloc((size_t)T * C * sizeof(float));
    float *stats = malloc((size_t)T * 2 * v->hp.inter * sizeof(float));
    kiln_vrng_t rng;
    kiln_vrng_seed_(&rng, seed);
    int rc = -1;
    if (x && stats && !kiln_vencode_(v, ids, T, x, stats))
        rc = kiln_vdurations_(v, x, T, noise_w, length_scale, &rng, dur);
    free(x);
    free(stats);
    return rc;
}

/* One sequence: ids -> out (raw model output and durations). */
static kiln_err_t kiln_vsynth_one_(kiln_voice_t *v, const int *ids, int T, float noise_scale,
                                   float length_scale, float noise_w, kiln_vrng_t *rng,
                                   kiln_voice_audio_t *out) {
    const kiln_vhparams_t *hp = &v->hp;
    int C = hp->hidden, IC = hp->inter, hop = kiln_voice_hop_length(v);
    kiln_err_t err = KILN_ERR__NOMEM;
    float *x = malloc((size_t)T * C * sizeof(float));
    float *stats = malloc((size_t)T * 2 * IC * sizeof(float));
    int *dur = malloc((size_t)T * sizeof(int));
    float *z = NULL, *pcm = NULL;
    if (!x || !stats || !dur)
        goto fail;
    if (kiln_vencode_(v, ids, T, x, stats) ||
        kiln_vdurations_(v, x, T, noise_w, length_scale, rng, dur))
        goto fail;
    long F = 0;
    for (int t = 0; t < T; t++)
        F += dur[t];
    if (F < 1)
        F = 1;
    z = malloc((size_t)F * IC * sizeof(float));
    pcm = malloc((size_t)F * hop * sizeof(float));
    if (!z || !pcm)
        goto fail;
    /* monotonic expansion: z_p = m_p + noise * exp(logs_p) * noise_scale */
    long f = 0;
    for (int t = 0; t < T; t++) {
        float *m = stats + (size_t)t * 2 * IC, *lg = m + IC;
        for (int c = 0; c < IC && dur[t] > 0; c++) /* exp(logs_p) once per id */
            lg[c] = expf(lg[c]);
        for (int k = 0; k < dur[t]; k++, f++) {
            float *r = z + (size_t)f * IC;
            for (int c = 0; c < IC; c++)
                r[c] = m[c] + kiln_vrng_normal_(rng) * lg[c] * noise_scale;
        }
    }
    if (f == 0) /* every duration 0: one silent frame, as the export's clamp */
        memset(z, 0, (size_t)IC * sizeof(float));
    if (kiln_vflow_reverse_(v, z, (int)F) || kiln_vdecode_(v, z, (int)F, pcm))
        goto fail; /* the ops' scratch failures: kiln_kernels_take_error() after the batch */
    free(x);
    free(stats);
    free(z);
    out->pcm = pcm;
    out->n_samples = (size_t)F * hop;
    out->durations = dur;
    out->n_ids = T;
    return KILN_OK;
fail:
    free(x);
    free(stats);
    free(dur);
    free(z);
    free(pcm);
    return err;
}

/*
 * A batch: with more than one pool thread, each sequence is one task of the
 * pool and runs on one thread (its ops inline: a nested kiln_parallel_for()
 * runs inline), which keeps every core busy without a barrier per op; one
 * sequence alone runs its ops on the whole pool. Each sequence's noise comes
 * from its own generator (seed + b * golden ratio), so the audio does not
 * depend on the schedule.
 */
typedef struct kiln_vbatch_s {
    kiln_voice_t *v;
    const int *const *ids;
    const int *n_ids;
    float ns, ls, nw;
    uint64_t seed;
    kiln_voice_audio_t *out;
    int *order;          /* sequences by decreasing length */
    _Atomic int err;     /* first failure, KILN_OK if none */
} kiln_vbatch_t;

/* qsort_r() order of sequence indices: longer first, then by index */
static int kiln_vbatch_cmp_(const void *a, const void *b, void *n_ids) {
    int x = *(const int *)a, y = *(const int *)b;
    int nx = ((const int *)n_ids)[x], ny = ((const int *)n_ids)[y];
    return nx != ny ? (nx < ny) - (nx > ny) : (x > y) - (x < y);
}

static void kiln_vbatch_task_(void *ctx, int task, int thread) {
    kiln_vbatch_t *j = ctx;
    int b = j->order[task];
    kiln_vrng_t rng;
    (void)thread;
    if (j->err)
        return;
    kiln_vrng_seed_(&rng, j->seed + (uint64_t)b * 0x9e3779b9ull);
    kiln_err_t err = kiln_vsynth_one_(j->v, j->ids[b], j->n_ids[b], j->ns, j->ls, j->nw, &rng,
                                      &j->out[b]);
    if (err) {
        int ok = KILN_OK;
        atomic_compare_exchange_strong(&j->err, &ok, (int)err);
    }
}

/*
 * The CPU form of one conv: its Winograd form where it takes one (and
 * \p wino), else, for the resblocks (\p res), the direct path's copy of
 * the weights where the CPU and the shape allow it; neither leaves it on
 * im2col + sgemm (also when the memory for a copy cannot be had).
 */
static void kiln_vprep_conv_(kiln_voice_t *v, kiln_vconv_t *cv, int wino, int res) {
    if (!cv->w || cv->wu || cv->wt)
        return;
    int m = kiln_vwino_m_(cv->k);
    if (wino && m > 0 && !kiln_vwino_prepare_(v, cv, m))
        return;
    if (!res || !kiln_vconv_direct_ok_(cv))
        return;
    float *wt = kiln_voice_take_(v, (size_t)cv->oc * cv->ic * cv->k);
    if (wt)
        kiln_vconv_direct_layout_(cv, wt);
    cv->wt = wt;
}

/*
 * Once per voice, before its first synthesis on the CPU: the convs' CPU
 * forms (kiln_vprep_conv_()). Serialised over all voices by one mutex.
 * KILN_VOICE_WINOGRAD=0 in the environment keeps the Winograd form off
 * (the direct and im2col paths only: for comparisons).
 */
static void kiln_vdirect_prepare_(kiln_voice_t *v) {
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    if (atomic_load_explicit(&v->direct_ready, memory_order_acquire))
        return;
    pthread_mutex_lock(&mu);
    if (!v->direct_ready) {
        const char *we = getenv("KILN_VOICE_WINOGRAD");
        int wino = !we || strcmp(we, "0");
        const kiln_vhparams_t *hp = &v->hp;
        for (int s = 0; s < hp->n_ups; s++)
            for (int j = 0; j < hp->n_res; j++)
                for (int d = 0; d < hp->n_dil; d++)
                    kiln_vprep_conv_(v, &v->res[s * hp->n_res + j][d], wino, 1);
        for (int f = 0; f < hp->n_flows; f++)
            for (int i = 0; i < hp->wn_layers; i++)
                kiln_vprep_conv_(v, &v->flow[f].in[i], wino, 0);
        for (int l = 0; l < hp->n_layers; l++) {
            kiln_vprep_conv_(v, &v->enc[l].ffn1, wino, 0);
            kiln_vprep_conv_(v, &v->enc[l].ffn2, wino, 0);
        }
        kiln_vprep_conv_(v, &v->conv_pre, wino, 0);
        atomic_store_explicit(&v->direct_ready, 1, memory_order_release);
    }
    pthread_mutex_unlock(&mu);
}

kiln_err_t kiln_voice_synth_ids(kiln_voice_t *v, const int *const *ids, const int *n_ids, int B,
                                const kiln_voice_params_t *p, kiln_voice_audio_t *out,
                                char *errstr, size_t errstr_size) {
    kiln_voice_params_t dp = kiln_voice_default_params();
    if (!p)
        p = &dp;
    float ns = p->noise_scale >= 0 ? p->noise_scale : v->noise_scale;
    float ls = p->length_scale > 0 ? p->length_scale : v->length_scale;
    float nw = p->noise_w >= 0 ? p->noise_w : v->noise_w;
    for (int b = 0; b < B; b++) {
        if (n_ids[b] <= 0) {
            snprintf(errstr, errstr_size, "sequence %d is empty", b);
            return KILN_ERR__INVALID_ARG;
        }
        for (int i = 0; i < n_ids[b]; i++)
            if (ids[b][i] < 0 || ids[b][i] >= v->hp.n_vocab) {
                snprintf(errstr, errstr_size, "phoneme id %d is outside the vocabulary (%d)",
                         ids[b][i], v->hp.n_vocab);
                return KILN_ERR__INVALID_ARG;
            }
    }
    kiln_vbatch_t job = {.v = v, .ids = ids, .n_ids = n_ids, .ns = ns, .ls = ls, .nw = nw,
                         .seed = p->seed, .out = out, .order = malloc((size_t)B * sizeof(int)),
                         .err = KILN_OK};
    if (!job.order) {
        snprintf(errstr, errstr_size, "could not synthesise: %s", kiln_err2str(KILN_ERR__NOMEM));
        return KILN_ERR__NOMEM;
    }
    for (int b = 0; b < B; b++) {
        job.order[b] = b;
        memset(&out[b], 0, sizeof(out[b]));
    }
    /* longest first, so that the last task to start is a short one */
    qsort_r(job.order, (size_t)B, sizeof(int), kiln_vbatch_cmp_, (void *)n_ids);
    if (!v->dev) /* the CPU engine's weight copies; the device path has its own */
        kiln_vdirect_prepare_(v);
    kiln_kernels_take_error();
    if (v->dev) /* the whole batch on the device backend (vits_dev.c) */
        job.err = kiln_vdev_synth_(v, ids, n_ids, B, job.order, ns, ls, nw, p->seed,
                                   p->device_batch_samples ? p->device_batch_samples
                                                           : (size_t)1 << 22,
                                   out);
    else if (B > 1 && kiln_kernels_threads() > 1)
        kiln_parallel_for(B, kiln_vbatch_task_, &job);
    else
        for (int b = 0; b < B; b++)
            kiln_vbatch_task_(&job, b, 0);
    kiln_err_t err = job.err;
    if (!err && kiln_kernels_take_error())
        err = KILN_ERR__NOMEM;
    free(job.order);
    if (err) {
        for (int b = 0; b < B; b++)
            kiln_voice_audio_clear(&out[b]);
        snprintf(errstr, errstr_size, "could not synthesise: %s", kiln_err2str(err));
        return err;
    }
    return KILN_OK;
}

void kiln_voice_audio_clear(kiln_voice_audio_t *a) {
    if (!a)
        return;
    free(a->pcm);
    free(a->durations);
    free(a->sent_start);
    memset(a, 0, sizeof(*a));
}
