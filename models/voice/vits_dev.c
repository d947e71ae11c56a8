/*
 * models/voice/vits_dev.c - the flow and the HiFi-GAN decoder of a VITS
 * voice on a device backend (CUDA, or "ref" to run this path on the host),
 * over a ragged batch: every sequence's frames back to back, no padding.
 *
 * Only the kernels' table ops run here (include/kiln/kernels.h), so the
 * same code is the CUDA path and, on the "ref" table, a host path that the
 * tests compare with the CPU engine of models/voice/vits.c:
 *   dilated "same" convolution  = im2col (leaky ReLU fused, zeros past each
 *                                 sequence's ends) + matmul, in row blocks
 *                                 so the im2col scratch stays bounded
 *   transposed convolution      = act (leaky) + matmul with the weight laid
 *                                 [K * OC, C] + col2im (gather form)
 *   WaveNet layer               = convolution + gate + 1x1 matmuls
 *   resblock mean, residuals    = add, axpby
 * The flow's Flip layers move no data: the coupling halves live in two
 * buffers, and a flip is a swap of which one is x0 plus weights uploaded
 * with their columns (pre) or rows (post) reversed, an odd number of flips
 * being folded into conv_pre's input channels.
 *
 * The text encoder, the duration predictor and the expansion z_p = m_p +
 * noise * exp(logs_p) stay on the CPU (vits.c; a few percent of the work):
 * z is uploaded once per batch, the audio downloaded once.
 *
 * Memory: a batch is cut into sub-batches of at most max_samples output
 * samples (kiln_voice_params_t.device_batch_samples; a longer sequence runs
 * alone); the workspace (about 5 * 32 + 2 * 2 * 32 floats per output sample
 * for joe-medium, plus a fixed im2col block) is kept between calls and
 * grows only. Calls on a device table are serialised (kiln_kernels_lock()).
 */
#include <stdlib.h>
#include <string.h>

#include "kiln/kernels.h"
#include "kiln/log.h"
#include "models/voice/voice_int.h"

/* floats of the im2col block (64 MB): rows per block = this / (K * C) */
#define KILN_VDEV_COL_FLOATS ((size_t)16 << 20)

typedef struct kiln_vdw_s {
    float *w, *b; /* the backend's memory; b may be NULL */
} kiln_vdw_t;

enum {
    KILN_VW_Z, KILN_VW_LO, KILN_VW_HI, KILN_VW_H, KILN_VW_SKIP, KILN_VW_G, KILN_VW_TMP,
    KILN_VW_XIN, KILN_VW_M, KILN_VW_X, KILN_VW_U, KILN_VW_A, KILN_VW_C, KILN_VW_ACC,
    KILN_VW_Y, KILN_VW_COL, KILN_VW_PCM, KILN_VW_OFF, KILN_VW__COUNT
};

struct kiln_vdev_s {
    const kiln_kernels_t *kk;
    void **bufs; /* the weights' allocations */
    int n_bufs, cap_bufs;
    kiln_vdw_t conv_pre, conv_post, ups[KILN_VOICE_MAX_UPS];
    kiln_vdw_t res[KILN_VOICE_MAX_UPS * KILN_VOICE_MAX_RES][KILN_VOICE_MAX_DIL];
    kiln_vdw_t fpre[KILN_VOICE_MAX_FLOWS], fpost[KILN_VOICE_MAX_FLOWS];
    kiln_vdw_t fin[KILN_VOICE_MAX_FLOWS][KILN_VOICE_MAX_WN];
    kiln_vdw_t frs[KILN_VOICE_MAX_FLOWS][KILN_VOICE_MAX_WN];
    void *ws[KILN_VW__COUNT]; /* workspace, grown on demand */
    size_t ws_bytes[KILN_VW__COUNT];
};

void kiln_vdev_free_(kiln_vdev_t *d) {
    if (!d)
        return;
    for (int i = 0; i < d->n_bufs; i++)
        d->kk->free(d->bufs[i]);
    for (int i = 0; i < KILN_VW__COUNT; i++)
        d->kk->free(d->ws[i]);
    free(d->bufs);
    free(d);
}

/* @returns a copy of host[0, n) in the backend's memory (owned by d), NULL on OOM. */
static float *kiln_vdev_put_(kiln_vdev_t *d, const float *host, size_t n) {
    if (d->n_bufs == d->cap_bufs) {
        int cap = d->cap_bufs ? 2 * d->cap_bufs : 64;
        void **nb = realloc(d->bufs, (size_t)cap * sizeof(*nb));
        if (!nb)
            return NULL;
        d->bufs = nb;
        d->cap_bufs = cap;
    }
    float *p = d->kk->alloc(n * sizeof(float));
    if (!p)
        return NULL;
    d->kk->upload(p, host, n * sizeof(float));
    d->bufs[d->n_bufs++] = p;
    return p;
}

/*
 * Uploads conv cv (weight as laid out in the voice, n = oc * ic * k) with
 * an optional change of order: rev_in reverses the last axis's channels
 * in every (oc, k) row (ic channels; a Flip folded into the input), rev_out
 * reverses the output rows and the bias (a Flip folded into the output).
 * @returns 0, -1 on OOM.
 */
static int kiln_vdev_conv_(kiln_vdev_t *d, kiln_vdw_t *dst, const kiln_vconv_t *cv, int rev_in,
                           int rev_out) {
    size_t row = (size_t)cv->ic, n = (size_t)cv->oc * cv->ic * cv->k;
    const float *w = cv->w, *b = cv->b;
    float *tw = NULL, *tb = NULL;
    if (rev_in || rev_out) {
        tw = malloc(n * sizeof(float));
        tb = b ? malloc((size_t)cv->oc * sizeof(float)) : NULL;
        if (!tw || (b && !tb)) {
            free(tw);
            free(tb);
            return -1;
        }
        size_t rows = n / row, per_oc = rows / (size_t)cv->oc; /* k rows of ic per output */
        for (size_t r = 0; r < rows; r++) {
            size_t oc = r / per_oc, k = r % per_oc;
            size_t src = rev_out ? ((size_t)(cv->oc - 1 - (int)oc) * per_oc + k) : r;
            for (size_t c = 0; c < row; c++)
                tw[r * row + c] = w[src * row + (rev_in ? row - 1 - c : c)];
        }
        for (int o = 0; b && o < cv->oc; o++)
            tb[o] = b[rev_out ? cv->oc - 1 - o : o];
        w = tw;
        b = b ? tb : NULL;
    }
    dst->w = kiln_vdev_put_(d, w, n);
    dst->b = b ? kiln_vdev_put_(d, b, (size_t)cv->oc) : NULL;
    free(tw);
    free(tb);
    return !dst->w || (b && !dst->b) ? -1 : 0;
}

/* Copies the flow's and the decoder's weights to kk's memory. @returns NULL on OOM. */
static kiln_vdev_t *kiln_vdev_new_(const kiln_voice_t *v, const kiln_kernels_t *kk) {
    const kiln_vhparams_t *hp = &v->hp;
    kiln_vdev_t *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->kk = kk;
    int bad = 0;
    for (int f = 0; f < hp->n_flows && !bad; f++) {
        int odd = (hp->n_flows - f) & 1; /* flips applied when flow f runs (reverse order) */
        const kiln_vcoupling_t *cp = &v->flow[f];
        bad |= kiln_vdev_conv_(d, &d->fpre[f], &cp->pre, odd, 0);
        bad |= kiln_vdev_conv_(d, &d->fpost[f], &cp->post, 0, odd);
        for (int i = 0; i < hp->wn_layers && !bad; i++) {
            bad |= kiln_vdev_conv_(d, &d->fin[f][i], &cp->in[i], 0, 0);
            bad |= kiln_vdev_conv_(d, &d->frs[f][i], &cp->rs[i], 0, 0);
        }
    }
    bad = bad || kiln_vdev_conv_(d, &d->conv_pre, &v->conv_pre, hp->n_flows & 1, 0) ||
          kiln_vdev_conv_(d, &d->conv_post, &v->conv_post, 0, 0);
    for (int s = 0; s < hp->n_ups && !bad; s++) {
        bad |= kiln_vdev_conv_(d, &d->ups[s], &v->ups[s], 0, 0);
        for (int j = 0; j < hp->n_res; j++)
            for (int k = 0; k < hp->n_dil && !bad; k++)
                bad |= kiln_vdev_conv_(d, &d->res[s * hp->n_res + j][k],
                                       &v->res[s * hp->n_res + j][k], 0, 0);
    }
    if (bad) {
        kiln_vdev_free_(d);
        return NULL;
    }
    return d;
}

/* @returns workspace slot i grown to at least n floats (or ints), NULL on OOM. */
static float *kiln_vdev_ws_(kiln_vdev_t *d, int i, size_t n) {
    size_t bytes = (n ? n : 1) * sizeof(float);
    if (d->ws_bytes[i] < bytes) {
        d->kk->free(d->ws[i]);
        d->ws_bytes[i] = 0;
        d->ws[i] = d->kk->alloc(bytes);
        if (!d->ws[i])
            return NULL;
        d->ws_bytes[i] = bytes;
    }
    return d->ws[i];
}

/* A ragged batch being run: offsets per level, on the host and the device. */
typedef struct kiln_vdrun_s {
    kiln_vdev_t *d;
    const kiln_kernels_t *kk;
    int B;
    int *off;        /* host: (n_ups + 1) levels of B + 1 offsets */
    const int *doff; /* the same in the backend's memory */
    float *col;
    size_t col_floats;
} kiln_vdrun_t;

/*
 * out[N, OC] = conv(act(inp[N, C])) + bias, dilated "same" convolution of
 * width K over the sequences of level lv; rows in blocks of the im2col
 * scratch. A 1x1 convolution without activation is one matmul.
 */
static void kiln_vdconv_(const kiln_vdrun_t *r, int lv, float *out, const float *inp,
                         const kiln_vdw_t *w, int C, int OC, int K, int dil, float slope) {
    const kiln_kernels_t *kk = r->kk;
    const int *off = r->off + (size_t)lv * (r->B + 1), *doff = r->doff + (size_t)lv * (r->B + 1);
    int N = off[r->B];
    if (K == 1 && slope == 1.0f) {
        kk->matmul(out, inp, w->w, w->b, N, C, OC);
        return;
    }
    int rows = (int)(r->col_floats / ((size_t)K * C));
    for (int r0 = 0; r0 < N; r0 += rows) {
        int nr = N - r0 < rows ? N - r0 : rows;
        kk->im2col(r->col, inp, doff, r->B, r0, nr, C, K, dil, slope);
        kk->matmul(out + (size_t)r0 * OC, r->col, w->w, w->b, nr, K * C, OC);
    }
}

/* The flow in reverse on z [N, inter] (level 0), in place. @returns 0, -1 on OOM. */
static int kiln_vdflow_(const kiln_voice_t *v, kiln_vdrun_t *r, float *z) {
    const kiln_vhparams_t *hp = &v->hp;
    kiln_vdev_t *d = r->d;
    const kiln_kernels_t *kk = r->kk;
    int N = r->off[r->B], IC = hp->inter, half = IC / 2, C = hp->hidden;
    size_t nh = (size_t)N * half, nc = (size_t)N * C;
    float *lo = kiln_vdev_ws_(d, KILN_VW_LO, nh), *hi = kiln_vdev_ws_(d, KILN_VW_HI, nh);
    float *h = kiln_vdev_ws_(d, KILN_VW_H, nc), *skip = kiln_vdev_ws_(d, KILN_VW_SKIP, nc);
    float *g = kiln_vdev_ws_(d, KILN_VW_G, nc), *tmp = kiln_vdev_ws_(d, KILN_VW_TMP, nc);
    float *xin = kiln_vdev_ws_(d, KILN_VW_XIN, 2 * nc), *m = kiln_vdev_ws_(d, KILN_VW_M, nh);
    if (!lo || !hi || !h || !skip || !g || !tmp || !xin || !m)
        return -1;
    kk->copy2d(lo, (size_t)half, z, (size_t)IC, N, half);
    kk->copy2d(hi, (size_t)half, z + half, (size_t)IC, N, half);
    for (int f = hp->n_flows - 1; f >= 0; f--) {
        int odd = (hp->n_flows - f) & 1;
        float *x0 = odd ? hi : lo, *x1 = odd ? lo : hi;
        kk->matmul(h, x0, d->fpre[f].w, d->fpre[f].b, N, half, C);
        int dil = 1;
        for (int i = 0; i < hp->wn_layers; i++, dil *= hp->flow_dilation) {
            const kiln_vdw_t *rs = &d->frs[f][i];
            kiln_vdconv_(r, 0, xin, h, &d->fin[f][i], C, 2 * C, hp->flow_kernel, dil, 1.0f);
            kk->gate(g, xin, N, C);
            int last = i == hp->wn_layers - 1;
            if (!last) { /* rows 0..C-1 of the 1x1 conv: residual; C..2C-1: skip */
                kk->matmul(tmp, g, rs->w, rs->b, N, C, C);
                kk->add(h, h, tmp, nc);
            }
            kk->matmul(tmp, g, last ? rs->w : rs->w + (size_t)C * C,
                       last ? rs->b : rs->b ? rs->b + C : NULL, N, C, C);
            if (i == 0)
                kk->copy2d(skip, (size_t)C, tmp, (size_t)C, N, C);
            else
                kk->add(skip, skip, tmp, nc);
        }
        kk->matmul(m, skip, d->fpost[f].w, d->fpost[f].b, N, C, half);
        kk->axpby(x1, 1.0f, x1, -1.0f, m, nh);
    }
    kk->copy2d(z, (size_t)IC, lo, (size_t)half, N, half);
    kk->copy2d(z + half, (size_t)IC, hi, (size_t)half, N, half);
    return 0;
}

/* The decoder: z [N0, inter] -> pcm [N_last] (level n_ups). @returns 0, -1 on OOM. */
static int kiln_vddecode_(const kiln_voice_t *v, kiln_vdrun_t *r, const float *z, float *pcm) {
    const kiln_vhparams_t *hp = &v->hp;
    kiln_vdev_t *d = r->d;
    const kiln_kernels_t *kk = r->kk;
    int B = r->B;
    /* the largest activation and transposed-conv product over the stages */
    size_t act = (size_t)r->off[B] * hp->ups_ch0, ny = 0;
    int ch = hp->ups_ch0;
    for (int s = 0; s < hp->n_ups; s++) {
        size_t nin = (size_t)r->off[(size_t)s * (B + 1) + B];
        size_t nout = (size_t)r->off[(size_t)(s + 1) * (B + 1) + B];
        size_t a1 = nin * ch, a2 = nout * v->ups[s].oc, y = nin * v->ups[s].k * v->ups[s].oc;
        act = a1 > act ? a1 : act;
        act = a2 > act ? a2 : act;
        ny = y > ny ? y : ny;
        ch = v->ups[s].oc;
    }
    float *x = kiln_vdev_ws_(d, KILN_VW_X, act), *u = kiln_vdev_ws_(d, KILN_VW_U, act);
    float *a = kiln_vdev_ws_(d, KILN_VW_A, act), *c = kiln_vdev_ws_(d, KILN_VW_C, act);
    float *acc = kiln_vdev_ws_(d, KILN_VW_ACC, act), *y = kiln_vdev_ws_(d, KILN_VW_Y, ny);
    if (!x || !u || !a || !c || !acc || !y)
        return -1;
    ch = hp->ups_ch0;
    kiln_vdconv_(r, 0, x, z, &d->conv_pre, hp->inter, ch, v->conv_pre.k, 1, 1.0f);
    for (int s = 0; s < hp->n_ups; s++) {
        const kiln_vconv_t *up = &v->ups[s];
        int oc = up->oc, K = up->k, st = hp->ups_rate[s], pad = (K - st) / 2;
        const int *off_in = r->off + (size_t)s * (B + 1);
        int nin = off_in[B], nout = off_in[B + 1 + B];
        size_t n = (size_t)nout * oc;
        kk->act(u, x, (size_t)nin * ch, KILN_ACT_LEAKY, 0.1f);
        kk->matmul(y, u, d->ups[s].w, NULL, nin, ch, K * oc);
        kk->col2im(u, y, d->ups[s].b, r->doff + (size_t)s * (B + 1),
                   r->doff + (size_t)(s + 1) * (B + 1), B, nout, oc, K, st, pad);
        /* mean of the resblocks; each is x = x + conv_d(leaky(x)) over its dilations */
        for (int j = 0; j < hp->n_res; j++) {
            const float *src = u;
            for (int k = 0; k < hp->n_dil; k++) {
                float *dst = (k % 2 == 0) ? a : c;
                const kiln_vconv_t *cv = &v->res[s * hp->n_res + j][k];
                kiln_vdconv_(r, s + 1, dst, src, &d->res[s * hp->n_res + j][k], oc, oc, cv->k,
                             hp->res_dil[j][k], 0.1f);
                kk->add(dst, dst, src, n);
                src = dst;
            }
            if (j == 0)
                kk->copy2d(acc, (size_t)oc, src, (size_t)oc, nout, oc);
            else
                kk->add(acc, acc, src, n);
        }
        kk->axpby(acc, 1.0f / (float)hp->n_res, acc, 0.0f, acc, n);
        float *t = x; /* acc is the next stage's input; x's buffer is free */
        x = acc;
        acc = t;
        ch = oc;
    }
    kiln_vdconv_(r, hp->n_ups, pcm, x, &d->conv_post, ch, 1, v->conv_post.k, 1, 0.01f);
    kk->act(pcm, pcm, (size_t)r->off[(size_t)hp->n_ups * (B + 1) + B], KILN_ACT_TANH, 0.0f);
    return 0;
}

/*
 * One sub-batch: z_b [F[b], inter] (host, back to back in z) -> pcm (host,
 * F[b] * hop samples each, back to back). @returns 0, -1 on OOM.
 */
static int kiln_vdev_run_(const kiln_voice_t *v, kiln_vdev_t *d, const float *z, const int *F,
                          int B, float *pcm) {
    const kiln_vhparams_t *hp = &v->hp;
    const kiln_kernels_t *kk = d->kk;
    int L = hp->n_ups + 1, rc = -1;
    int *off = malloc((size_t)L * (B + 1) * sizeof(int));
    if (!off)
        return -1;
    for (int lv = 0; lv < L; lv++) {
        int *o = off + (size_t)lv * (B + 1);
        o[0] = 0;
        for (int b = 0; b < B; b++) {
            int T = lv == 0 ? F[b] : off[(size_t)(lv - 1) * (B + 1) + b + 1] -
                                         off[(size_t)(lv - 1) * (B + 1) + b];
            if (lv > 0) {
                int K = v->ups[lv - 1].k, st = hp->ups_rate[lv - 1], pad = (K - st) / 2;
                T = (T - 1) * st - 2 * pad + K;
            }
            o[b + 1] = o[b] + T;
        }
    }
    int N0 = off[B], NL = off[(size_t)hp->n_ups * (B + 1) + B];
    kiln_vdrun_t r = {.d = d, .kk = kk, .B = B, .off = off};
    int *doff = (int *)kiln_vdev_ws_(d, KILN_VW_OFF, (size_t)L * (B + 1));
    float *zd = kiln_vdev_ws_(d, KILN_VW_Z, (size_t)N0 * hp->inter);
    float *pd = kiln_vdev_ws_(d, KILN_VW_PCM, (size_t)NL);
    r.col_floats = KILN_VDEV_COL_FLOATS;
    r.col = kiln_vdev_ws_(d, KILN_VW_COL, r.col_floats);
    if (!doff || !zd || !pd || !r.col)
        goto out;
    r.doff = doff;
    kk->upload(doff, off, (size_t)L * (B + 1) * sizeof(int));
    kk->upload(zd, z, (size_t)N0 * hp->inter * sizeof(float));
    if (kiln_vdflow_(v, &r, zd) || kiln_vddecode_(v, &r, zd, pd))
        goto out;
    kk->download(pcm, pd, (size_t)NL * sizeof(float));
    rc = 0;
out:
    free(off);
    return rc;
}

int kiln_vdev_flow_decode_(kiln_voice_t *v, float *const *z, const int *F, int B,
                           size_t max_samples, float *const *pcm) {
    kiln_vdev_t *d = v->dev;
    int hop = kiln_voice_hop_length(v), IC = v->hp.inter, rc = 0;
    kiln_kernels_lock(d->kk);
    for (int b0 = 0; b0 < B && !rc;) {
        /* a sub-batch: as many sequences as fit max_samples, at least one */
        size_t frames = (size_t)F[b0];
        int b1 = b0 + 1;
        while (b1 < B && (frames + (size_t)F[b1]) * hop <= max_samples)
            frames += (size_t)F[b1++];
        float *zc = malloc(frames * IC * sizeof(float));
        float *pc = malloc(frames * hop * sizeof(float));
        rc = !zc || !pc ? -1 : 0;
        for (int b = b0, f = 0; b < b1 && !rc; f += F[b], b++)
            memcpy(zc + (size_t)f * IC, z[b], (size_t)F[b] * IC * sizeof(float));
        if (!rc)
            rc = kiln_vdev_run_(v, d, zc, F + b0, b1 - b0, pc);
        for (int b = b0, f = 0; b < b1 && !rc; f += F[b], b++)
            memcpy(pcm[b], pc + (size_t)f * hop, (size_t)F[b] * hop * sizeof(float));
        free(zc);
        free(pc);
        b0 = b1;
    }
    kiln_kernels_unlock(d->kk);
    return rc;
}

kiln_err_t kiln_voice_set_backend(kiln_voice_t *v, const char *backend, const char *precision,
                                  char *errstr, size_t errstr_size) {
    kiln_backend_t be;
    const kiln_kernels_t *kk;
    int prc = kiln_kernels_pick(backend, precision, &kk, &be, errstr, errstr_size);
    if (prc)
        return prc == -2 ? KILN_ERR__UNSUPPORTED : KILN_ERR__INVALID_ARG;
    if (v->dev && v->dev->kk == kk)
        return KILN_OK; /* already there: only the precision changed */
    kiln_vdev_free_(v->dev);
    v->dev = NULL;
    if (kk->host_memory) /* the CPU engine of vits.c */
        return KILN_OK;
    static const kiln_op_t need[] = {KILN_OP_MATMUL, KILN_OP_ADD, KILN_OP_COPY2D, KILN_OP_IM2COL,
                                     KILN_OP_COL2IM, KILN_OP_ACT, KILN_OP_GATE, KILN_OP_AXPBY};
    for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
        if (!kiln_kernel_supported(be, need[i])) {
            snprintf(errstr, errstr_size,
                     "could not use backend \"%s\" for voice \"%s\": it lacks op %d", kk->name,
                     v->path, (int)need[i]);
            return KILN_ERR__UNSUPPORTED;
        }
    kiln_kernels_lock(kk);
    v->dev = kiln_vdev_new_(v, kk);
    kiln_kernels_unlock(kk);
    if (!v->dev) {
        snprintf(errstr, errstr_size, "could not copy voice \"%s\" to backend \"%s\": out of "
                 "memory", v->path, backend);
        return KILN_ERR__NOMEM;
    }
    KILN_LOG_INFO("voice \"%s\": flow and decoder on backend \"%s\"", v->path, backend);
    return KILN_OK;
}

const char *kiln_voice_backend(const kiln_voice_t *v) {
    return v->dev ? v->dev->kk->name : "cpu";
}
