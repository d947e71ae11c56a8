/*
 * models/voice/vits_dev.c - a VITS voice on a device backend (CUDA, or
 * "ref" to run this path on the host): the whole model over a ragged
 * batch, every sequence's rows back to back, no padding, no mask.
 *
 * Only the kernels' table ops run here (include/kiln/kernels.h), so the
 * same code is the CUDA path and, on the "ref" table, a host path that the
 * tests compare with the CPU engine of models/voice/vits.c:
 *   text encoder       gather_rows (embedding) + axpby (scale); per layer
 *                      matmul (fused qkv), rel_attention, matmul, add,
 *                      layernorm, conv FFN, layernorm; matmul (stats)
 *   duration predictor matmul, DDS stacks (dwconv, layernorm, gelu, matmul),
 *                      ConvFlows (matmul, DDS, matmul, spline_inv); the
 *                      Flip layers swap which buffer is x0
 *   expansion          expand: frame n takes the stats of its id, plus the
 *                      noise (generated on the host, per sequence, in the
 *                      CPU engine's order, so the same seed gives the same
 *                      audio on every backend)
 *   flow               WaveNet couplings: im2col + matmul, gate, matmuls;
 *                      the Flips move no data (weights uploaded with their
 *                      columns or rows reversed instead)
 *   decoder            im2col + matmul convolutions (leaky ReLU fused),
 *                      transposed convolutions as act + matmul + col2im,
 *                      resblock means with add / axpby, tanh
 * Between the duration predictor and the expansion the host turns the
 * predictor's output (one float per id, downloaded) into frame counts;
 * the audio is downloaded at the end. The text side runs in fp32 whatever
 * the precision (durations are rounded up from it, and it is cheap); the
 * flow and decoder use the voice's precision.
 *
 * Memory: the text side runs on the whole batch at once (the caller bounds
 * its ids: speak.batch_max_ids); the flow and decoder run in sub-batches
 * of at most max_samples output samples (a longer sequence runs alone),
 * about 5 * 32 + 2 * 2 * 32 floats per output sample for joe-medium plus a
 * fixed im2col block. The workspace is kept between calls and grows only.
 * Calls on a device table are serialised (kiln_kernels_lock()).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/kernels.h"
#include "kiln/log.h"
#include "models/voice/voice_int.h"

/* floats of the im2col block (64 MB): rows per block = this / (K * C) */
#define KILN_VDEV_COL_FLOATS ((size_t)16 << 20)

typedef struct kiln_vdw_s {
    float *w, *b; /* the backend's memory; b may be NULL (for a LayerNorm: gamma, beta) */
} kiln_vdw_t;

typedef struct kiln_vddds_s {
    kiln_vdw_t sep[KILN_VOICE_MAX_DDS], pw[KILN_VOICE_MAX_DDS];
    kiln_vdw_t n1[KILN_VOICE_MAX_DDS], n2[KILN_VOICE_MAX_DDS];
} kiln_vddds_t;

typedef struct kiln_vdenc_s {
    kiln_vdw_t qkv, o, n1, n2, ffn1, ffn2;
    float *rel_k, *rel_v;
} kiln_vdenc_t;

enum {
    /* text side: ids and whole batch */
    KILN_VW_IDS, KILN_VW_IDOFF, KILN_VW_EX, KILN_VW_QKV, KILN_VW_ATT, KILN_VW_EY, KILN_VW_EH,
    KILN_VW_STATS, KILN_VW_DG, KILN_VW_DH, KILN_VW_DY, KILN_VW_DY2, KILN_VW_PR, KILN_VW_C0,
    KILN_VW_C1,
    /* frames and samples: one sub-batch */
    KILN_VW_IDX, KILN_VW_NOISE, KILN_VW_Z, KILN_VW_LO, KILN_VW_HI, KILN_VW_H, KILN_VW_SKIP,
    KILN_VW_G, KILN_VW_TMP, KILN_VW_XIN, KILN_VW_M, KILN_VW_X, KILN_VW_U, KILN_VW_A, KILN_VW_C,
    KILN_VW_ACC, KILN_VW_Y, KILN_VW_COL, KILN_VW_PCM, KILN_VW_OFF, KILN_VW__COUNT
};

struct kiln_vdev_s {
    const kiln_kernels_t *kk;
    char precision[8]; /* of the flow and decoder (fp32 unless set_backend said), set by
                        * each synthesis call: the backend's mode is process-wide */
    void **bufs;       /* the weights' allocations */
    int n_bufs, cap_bufs;
    /* text side */
    float *emb;
    kiln_vdenc_t enc[KILN_VOICE_MAX_LAYERS];
    kiln_vdw_t enc_proj, dp_pre, dp_proj;
    kiln_vddds_t dp_dds, dp_fdds[KILN_VOICE_MAX_FLOWS];
    kiln_vdw_t dp_fpre[KILN_VOICE_MAX_FLOWS], dp_fproj[KILN_VOICE_MAX_FLOWS];
    /* flow and decoder */
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

/* Uploads a LayerNorm of C channels (gamma in w, beta in b). @returns 0, -1 on OOM. */
static int kiln_vdev_ln_(kiln_vdev_t *d, kiln_vdw_t *dst, const kiln_vln_t *ln, int C) {
    dst->w = kiln_vdev_put_(d, ln->g, (size_t)C);
    dst->b = kiln_vdev_put_(d, ln->b, (size_t)C);
    return dst->w && dst->b ? 0 : -1;
}

static int kiln_vdev_dds_(kiln_vdev_t *d, kiln_vddds_t *dst, const kiln_vdds_t *dds, int C) {
    int bad = 0;
    for (int i = 0; i < dds->n && !bad; i++)
        bad = kiln_vdev_conv_(d, &dst->sep[i], &dds->sep[i], 0, 0) ||
              kiln_vdev_conv_(d, &dst->pw[i], &dds->pw[i], 0, 0) ||
              kiln_vdev_ln_(d, &dst->n1[i], &dds->n1[i], C) ||
              kiln_vdev_ln_(d, &dst->n2[i], &dds->n2[i], C);
    return bad ? -1 : 0;
}

/* Copies the text side's weights to d's backend. @returns 0, -1 on OOM. */
static int kiln_vdev_text_(const kiln_voice_t *v, kiln_vdev_t *d) {
    const kiln_vhparams_t *hp = &v->hp;
    int C = hp->hidden, D = C / hp->n_heads, FC = hp->dp_filter;
    size_t nrel = (size_t)(2 * hp->window + 1) * D;
    int bad = !(d->emb = kiln_vdev_put_(d, v->emb, (size_t)hp->n_vocab * C));
    for (int l = 0; l < hp->n_layers && !bad; l++) {
        const kiln_venc_layer_t *e = &v->enc[l];
        kiln_vdenc_t *de = &d->enc[l];
        bad = kiln_vdev_conv_(d, &de->qkv, &e->qkv, 0, 0) ||
              kiln_vdev_conv_(d, &de->o, &e->o, 0, 0) || kiln_vdev_ln_(d, &de->n1, &e->n1, C) ||
              kiln_vdev_ln_(d, &de->n2, &e->n2, C) ||
              kiln_vdev_conv_(d, &de->ffn1, &e->ffn1, 0, 0) ||
              kiln_vdev_conv_(d, &de->ffn2, &e->ffn2, 0, 0) ||
              !(de->rel_k = kiln_vdev_put_(d, e->rel_k, nrel)) ||
              !(de->rel_v = kiln_vdev_put_(d, e->rel_v, nrel));
    }
    bad = bad || kiln_vdev_conv_(d, &d->enc_proj, &v->enc_proj, 0, 0) ||
          kiln_vdev_conv_(d, &d->dp_pre, &v->dp_pre, 0, 0) ||
          kiln_vdev_conv_(d, &d->dp_proj, &v->dp_proj, 0, 0) ||
          kiln_vdev_dds_(d, &d->dp_dds, &v->dp_dds, FC);
    for (int f = 0; f < hp->dp_n_flows && !bad; f++)
        bad = kiln_vdev_conv_(d, &d->dp_fpre[f], &v->dp_flow[f].pre, 0, 0) ||
              kiln_vdev_conv_(d, &d->dp_fproj[f], &v->dp_flow[f].proj, 0, 0) ||
              kiln_vdev_dds_(d, &d->dp_fdds[f], &v->dp_flow[f].dds, FC);
    return bad ? -1 : 0;
}

/* Copies every weight to kk's memory. @returns NULL on OOM. */
static kiln_vdev_t *kiln_vdev_new_(const kiln_voice_t *v, const kiln_kernels_t *kk) {
    const kiln_vhparams_t *hp = &v->hp;
    kiln_vdev_t *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->kk = kk;
    int bad = kiln_vdev_text_(v, d);
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

/* One level of a ragged batch: B + 1 row offsets on the host and on the device. */
typedef struct kiln_vdlv_s {
    const int *off, *doff;
    int B;
} kiln_vdlv_t;

/* What a pass needs besides the voice: the device copy and the im2col block. */
typedef struct kiln_vdrun_s {
    kiln_vdev_t *d;
    const kiln_kernels_t *kk;
    float *col;
    size_t col_floats;
} kiln_vdrun_t;

/*
 * out[N, OC] = conv(act(inp[N, C])) + bias, dilated "same" convolution of
 * width K over the sequences of level lv; rows in blocks of the im2col
 * scratch. A 1x1 convolution without activation is one matmul.
 */
static void kiln_vdconv_(const kiln_vdrun_t *r, const kiln_vdlv_t *lv, float *out,
                         const float *inp, const kiln_vdw_t *w, int C, int OC, int K, int dil,
                         float slope) {
    const kiln_kernels_t *kk = r->kk;
    int N = lv->off[lv->B];
    if (K == 1 && slope == 1.0f) {
        kk->matmul(out, inp, w->w, w->b, N, C, OC);
        return;
    }
    int rows = (int)(r->col_floats / ((size_t)K * C));
    for (int r0 = 0; r0 < N; r0 += rows) {
        int nr = N - r0 < rows ? N - r0 : rows;
        kk->im2col(r->col, inp, lv->doff, lv->B, r0, nr, C, K, dil, slope);
        kk->matmul(out + (size_t)r0 * OC, r->col, w->w, w->b, nr, K * C, OC);
    }
}

/* x [N, C] (+= g), in place: the DDS stack of the duration predictor (vits.c's kiln_vdds_). */
static void kiln_vddds_(const kiln_vdrun_t *r, const kiln_vdlv_t *lv, const kiln_vddds_t *dd,
                        const kiln_vdds_t *dds, float *x, const float *g, int C, int K, float *y,
                        float *y2) {
    const kiln_kernels_t *kk = r->kk;
    int N = lv->off[lv->B];
    size_t n = (size_t)N * C;
    if (g)
        kk->add(x, x, g, n);
    int dil = 1;
    for (int i = 0; i < dds->n; i++, dil *= K) {
        kk->dwconv(y, x, dd->sep[i].w, dd->sep[i].b, lv->doff, lv->B, N, C, K, dil);
        kk->layernorm(y, y, dd->n1[i].w, dd->n1[i].b, N, C, 1e-5f);
        kk->gelu(y, y, n);
        kk->matmul(y2, y, dd->pw[i].w, dd->pw[i].b, N, C, C);
        kk->layernorm(y2, y2, dd->n2[i].w, dd->n2[i].b, N, C, 1e-5f);
        kk->gelu(y2, y2, n);
        kk->add(x, x, y2, n);
    }
}

/*
 * The text side on the ids of level lv (uploaded at d->ws[KILN_VW_IDS]):
 * stats [N, 2 * inter] stays at d->ws[KILN_VW_STATS]; the duration
 * predictor's output before its final affine (one float per id) is
 * downloaded into w_out. dp_noise is [2, N] on the host (the two noise
 * channels, one after the other, already times noise_w). @returns 0, -1 on OOM.
 */
static int kiln_vdtext_(const kiln_voice_t *v, const kiln_vdrun_t *r, const kiln_vdlv_t *lv,
                        const float *dp_noise, float *w_out) {
    const kiln_vhparams_t *hp = &v->hp;
    kiln_vdev_t *d = r->d;
    const kiln_kernels_t *kk = r->kk;
    int N = lv->off[lv->B], C = hp->hidden, FF = hp->filter, FC = hp->dp_filter;
    int bins = hp->dp_bins, NP = 3 * bins - 1;
    size_t nc = (size_t)N * C, nf = (size_t)N * FC;
    float *x = kiln_vdev_ws_(d, KILN_VW_EX, nc), *qkv = kiln_vdev_ws_(d, KILN_VW_QKV, 3 * nc);
    float *att = kiln_vdev_ws_(d, KILN_VW_ATT, nc), *y = kiln_vdev_ws_(d, KILN_VW_EY, nc);
    float *h = kiln_vdev_ws_(d, KILN_VW_EH, (size_t)N * (FF > FC ? FF : FC));
    float *stats = kiln_vdev_ws_(d, KILN_VW_STATS, (size_t)N * 2 * hp->inter);
    float *g = kiln_vdev_ws_(d, KILN_VW_DG, nf), *dy = kiln_vdev_ws_(d, KILN_VW_DY, nf);
    float *dy2 = kiln_vdev_ws_(d, KILN_VW_DY2, nf), *pr = kiln_vdev_ws_(d, KILN_VW_PR, (size_t)N * NP);
    float *c0 = kiln_vdev_ws_(d, KILN_VW_C0, (size_t)N), *c1 = kiln_vdev_ws_(d, KILN_VW_C1, (size_t)N);
    if (!x || !qkv || !att || !y || !h || !stats || !g || !dy || !dy2 || !pr || !c0 || !c1)
        return -1;
    /* encoder */
    kk->gather_rows(x, d->emb, (const int *)d->ws[KILN_VW_IDS], N, C);
    kk->axpby(x, sqrtf((float)C), x, 0.0f, x, nc);
    for (int l = 0; l < hp->n_layers; l++) {
        const kiln_vdenc_t *e = &d->enc[l];
        const kiln_venc_layer_t *he = &v->enc[l];
        kk->matmul(qkv, x, e->qkv.w, e->qkv.b, N, C, 3 * C);
        kk->rel_attention(att, qkv, e->rel_k, e->rel_v, lv->doff, lv->B, N, hp->n_heads,
                          C / hp->n_heads, hp->window);
        kk->matmul(y, att, e->o.w, e->o.b, N, C, C);
        kk->add(x, x, y, nc);
        kk->layernorm(x, x, e->n1.w, e->n1.b, N, C, 1e-5f);
        /* FFN: conv_2(relu(conv_1(x))) + x, the ReLU fused into conv_2's im2col */
        kiln_vdconv_(r, lv, h, x, &e->ffn1, C, FF, he->ffn1.k, 1, 1.0f);
        kiln_vdconv_(r, lv, y, h, &e->ffn2, FF, C, he->ffn2.k, 1, 0.0f);
        kk->add(y, y, x, nc);
        kk->layernorm(x, y, e->n2.w, e->n2.b, N, C, 1e-5f);
    }
    kk->matmul(stats, x, d->enc_proj.w, d->enc_proj.b, N, C, 2 * hp->inter);
    /* duration predictor in reverse: conditioning proj(DDS(pre(x))) */
    kk->matmul(h, x, d->dp_pre.w, d->dp_pre.b, N, C, FC);
    kiln_vddds_(r, lv, &d->dp_dds, &v->dp_dds, h, NULL, FC, hp->dp_kernel, dy, dy2);
    kk->matmul(g, h, d->dp_proj.w, d->dp_proj.b, N, FC, FC);
    kk->upload(c0, dp_noise, (size_t)N * sizeof(float));
    kk->upload(c1, dp_noise + N, (size_t)N * sizeof(float));
    for (int f = hp->dp_n_flows - 1; f >= 0; f--) {
        float *t = c0; /* Flip */
        c0 = c1;
        c1 = t;
        /* ConvFlow: x1 = spline^-1(x1; params(DDS(pre(x0)) + g)) */
        kk->matmul(h, c0, d->dp_fpre[f].w, d->dp_fpre[f].b, N, 1, FC);
        kiln_vddds_(r, lv, &d->dp_fdds[f], &v->dp_flow[f].dds, h, g, FC, hp->dp_kernel, dy, dy2);
        kk->matmul(pr, h, d->dp_fproj[f].w, d->dp_fproj[f].b, N, FC, NP);
        kk->spline_inv(c1, pr, NP, N, bins, hp->dp_tail_bound, 1.0f / sqrtf((float)FC));
    }
    kk->download(w_out, c1, (size_t)N * sizeof(float)); /* channel 0 after the last Flip */
    return 0;
}

/* The flow in reverse on z [N, inter] (level lv), in place. @returns 0, -1 on OOM. */
static int kiln_vdflow_(const kiln_voice_t *v, const kiln_vdrun_t *r, const kiln_vdlv_t *lv,
                        float *z) {
    const kiln_vhparams_t *hp = &v->hp;
    kiln_vdev_t *d = r->d;
    const kiln_kernels_t *kk = r->kk;
    int N = lv->off[lv->B], IC = hp->inter, half = IC / 2, C = hp->hidden;
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
            kiln_vdconv_(r, lv, xin, h, &d->fin[f][i], C, 2 * C, hp->flow_kernel, dil, 1.0f);
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

/*
 * The decoder: z [N0, inter] -> pcm [N_last]; lv[s] is the level of
 * stage s's input (lv[0]: frames), lv[n_ups] the samples. @returns 0, -1 on OOM.
 */
static int kiln_vddecode_(const kiln_voice_t *v, const kiln_vdrun_t *r, const kiln_vdlv_t *lv,
                          const float *z, float *pcm) {
    const kiln_vhparams_t *hp = &v->hp;
    kiln_vdev_t *d = r->d;
    const kiln_kernels_t *kk = r->kk;
    int B = lv[0].B;
    /* the largest activation and transposed-conv product over the stages */
    size_t act = (size_t)lv[0].off[B] * hp->ups_ch0, ny = 0;
    int ch = hp->ups_ch0;
    for (int s = 0; s < hp->n_ups; s++) {
        size_t nin = (size_t)lv[s].off[B], nout = (size_t)lv[s + 1].off[B];
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
    kiln_vdconv_(r, &lv[0], x, z, &d->conv_pre, hp->inter, ch, v->conv_pre.k, 1, 1.0f);
    for (int s = 0; s < hp->n_ups; s++) {
        const kiln_vconv_t *up = &v->ups[s];
        int oc = up->oc, K = up->k, st = hp->ups_rate[s], pad = (K - st) / 2;
        int nin = lv[s].off[B], nout = lv[s + 1].off[B];
        size_t n = (size_t)nout * oc;
        kk->act(u, x, (size_t)nin * ch, KILN_ACT_LEAKY, 0.1f);
        kk->matmul(y, u, d->ups[s].w, NULL, nin, ch, K * oc);
        kk->col2im(u, y, d->ups[s].b, lv[s].doff, lv[s + 1].doff, B, nout, oc, K, st, pad);
        /* mean of the resblocks; each is x = x + conv_d(leaky(x)) over its dilations */
        for (int j = 0; j < hp->n_res; j++) {
            const float *src = u;
            for (int k = 0; k < hp->n_dil; k++) {
                float *dst = (k % 2 == 0) ? a : c;
                const kiln_vconv_t *cv = &v->res[s * hp->n_res + j][k];
                kiln_vdconv_(r, &lv[s + 1], dst, src, &d->res[s * hp->n_res + j][k], oc, oc,
                             cv->k, hp->res_dil[j][k], 0.1f);
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
    kiln_vdconv_(r, &lv[hp->n_ups], pcm, x, &d->conv_post, ch, 1, v->conv_post.k, 1, 0.01f);
    kk->act(pcm, pcm, (size_t)lv[hp->n_ups].off[B], KILN_ACT_TANH, 0.0f);
    return 0;
}

/*
 * Expansion, flow and decoder of one sub-batch of B sequences: F[b]
 * frames each; frame f of the sub-batch takes id row idx[f] of the whole
 * batch's stats; noise [sum F, inter] on the host; zero[b] marks a
 * sequence whose durations were all 0 (its one frame is silence). pcm
 * (host) gets F[b] * hop samples per sequence, back to back.
 * @returns 0, -1 on OOM.
 */
static int kiln_vdev_sub_(const kiln_voice_t *v, const kiln_vdrun_t *r, const int *F,
                          const unsigned char *zero, int B, const int *idx, const float *noise,
                          float ns, float *pcm) {
    const kiln_vhparams_t *hp = &v->hp;
    kiln_vdev_t *d = r->d;
    const kiln_kernels_t *kk = r->kk;
    int L = hp->n_ups + 1, IC = hp->inter, rc = -1;
    int *off = malloc((size_t)L * (B + 1) * sizeof(int));
    kiln_vdlv_t lv[KILN_VOICE_MAX_UPS + 1];
    if (!off)
        return -1;
    for (int l = 0; l < L; l++) {
        int *o = off + (size_t)l * (B + 1);
        o[0] = 0;
        for (int b = 0; b < B; b++) {
            int T = l == 0 ? F[b] : lv[l - 1].off[b + 1] - lv[l - 1].off[b];
            if (l > 0) {
                int K = v->ups[l - 1].k, st = hp->ups_rate[l - 1], pad = (K - st) / 2;
                T = (T - 1) * st - 2 * pad + K;
            }
            o[b + 1] = o[b] + T;
        }
        lv[l].off = o;
        lv[l].B = B;
    }
    int N0 = off[B], NL = lv[L - 1].off[B];
    int *doff = (int *)kiln_vdev_ws_(d, KILN_VW_OFF, (size_t)L * (B + 1));
    int *didx = (int *)kiln_vdev_ws_(d, KILN_VW_IDX, (size_t)N0);
    float *dnoise = kiln_vdev_ws_(d, KILN_VW_NOISE, (size_t)N0 * IC);
    float *zd = kiln_vdev_ws_(d, KILN_VW_Z, (size_t)N0 * IC);
    float *pd = kiln_vdev_ws_(d, KILN_VW_PCM, (size_t)NL);
    if (!doff || !didx || !dnoise || !zd || !pd)
        goto out;
    for (int l = 0; l < L; l++)
        lv[l].doff = doff + (size_t)l * (B + 1);
    kk->upload(doff, off, (size_t)L * (B + 1) * sizeof(int));
    kk->upload(didx, idx, (size_t)N0 * sizeof(int));
    kk->upload(dnoise, noise, (size_t)N0 * IC * sizeof(float));
    kk->expand(zd, (const float *)d->ws[KILN_VW_STATS], didx, dnoise, N0, IC, ns);
    for (int b = 0; b < B; b++)
        if (zero[b]) /* as the CPU engine: one frame of zeros (noise is 0 there) */
            kk->upload(zd + (size_t)off[b] * IC, noise + (size_t)off[b] * IC,
                       (size_t)IC * sizeof(float));
    if (kiln_vdflow_(v, r, &lv[0], zd) || kiln_vddecode_(v, r, lv, zd, pd))
        goto out;
    kk->download(pcm, pd, (size_t)NL * sizeof(float));
    rc = 0;
out:
    free(off);
    return rc;
}

/* The host's part of one sequence: its noise generator and frames. */
typedef struct kiln_vdseq_s {
    kiln_vrng_t rng;
    int row0;       /* its first id row in the whole batch */
    int F;          /* frames */
    unsigned char zero; /* every duration was 0 */
} kiln_vdseq_t;

typedef struct kiln_vdnoise_job_s {
    const kiln_voice_t *v;
    kiln_vdseq_t *sq;
    const int *order;   /* sub-batch position -> sequence */
    const int *fpos;    /* sub-batch position -> first frame */
    kiln_voice_audio_t *out;
    int *idx;
    float *noise;
    int quiet; /* noise_scale 0: the noise is not drawn (the expansion is the last draw) */
} kiln_vdnoise_job_t;

/* Sequence order[i]'s frame ids and noise, in the CPU engine's order. */
static void kiln_vdnoise_task_(void *ctx, int i, int thread) {
    kiln_vdnoise_job_t *j = ctx;
    int b = j->order[i], IC = j->v->hp.inter, f = j->fpos[i];
    kiln_vdseq_t *q = &j->sq[b];
    (void)thread;
    if (q->zero) {
        j->idx[f] = q->row0;
        memset(j->noise + (size_t)f * IC, 0, (size_t)IC * sizeof(float));
        return;
    }
    for (int t = 0; t < j->out[b].n_ids; t++)
        for (int k = 0; k < j->out[b].durations[t]; k++, f++) {
            j->idx[f] = q->row0 + t;
            float *r = j->noise + (size_t)f * IC;
            if (j->quiet) /* noise_scale 0: m + noise * e * 0 is m whatever the noise */
                memset(r, 0, (size_t)IC * sizeof(float));
            else
                for (int c = 0; c < IC; c++)
                    r[c] = kiln_vrng_normal_(&q->rng);
        }
}

kiln_err_t kiln_vdev_synth_(kiln_voice_t *v, const int *const *ids, const int *n_ids, int B,
                            const int *order, float ns, float ls, float nw, uint64_t seed,
                            size_t max_samples, kiln_voice_audio_t *out) {
    kiln_vdev_t *d = v->dev;
    const kiln_kernels_t *kk = d->kk;
    const kiln_vhparams_t *hp = &v->hp;
    int hop = kiln_voice_hop_length(v), IC = hp->inter, N = 0;
    kiln_err_t err = KILN_ERR__NOMEM;
    for (int b = 0; b < B; b++)
        N += n_ids[b];
    kiln_vdseq_t *sq = calloc((size_t)B, sizeof(*sq));
    int *off = malloc(((size_t)B + 1) * sizeof(int)), *idsc = malloc((size_t)N * sizeof(int));
    float *dpn = malloc((size_t)N * 2 * sizeof(float)), *w = malloc((size_t)N * sizeof(float));
    int *idx = NULL, *fpos = malloc((size_t)B * sizeof(int));
    float *noise = NULL, *pcm = NULL;
    kiln_vdrun_t r = {.d = d, .kk = kk, .col_floats = KILN_VDEV_COL_FLOATS};
    kiln_kernels_lock(kk);
    if (!sq || !off || !idsc || !dpn || !w || !fpos)
        goto out;
    /* ids back to back, each sequence's duration noise from its own generator */
    off[0] = 0;
    for (int b = 0; b < B; b++) {
        off[b + 1] = off[b] + n_ids[b];
        sq[b].row0 = off[b];
        memcpy(idsc + off[b], ids[b], (size_t)n_ids[b] * sizeof(int));
        kiln_vrng_seed_(&sq[b].rng, seed + (uint64_t)b * 0x9e3779b9ull);
        for (int t = 0; t < n_ids[b]; t++) {
            dpn[off[b] + t] = kiln_vrng_normal_(&sq[b].rng) * nw; /* channel 0, then 1 */
            dpn[N + off[b] + t] = kiln_vrng_normal_(&sq[b].rng) * nw;
        }
    }
    int *dids = (int *)kiln_vdev_ws_(d, KILN_VW_IDS, (size_t)N);
    int *doff = (int *)kiln_vdev_ws_(d, KILN_VW_IDOFF, (size_t)B + 1);
    r.col = kiln_vdev_ws_(d, KILN_VW_COL, r.col_floats);
    if (!dids || !doff || !r.col)
        goto out;
    kk->upload(dids, idsc, (size_t)N * sizeof(int));
    kk->upload(doff, off, ((size_t)B + 1) * sizeof(int));
    kiln_vdlv_t lid = {.off = off, .doff = doff, .B = B};
    if (kk->set_precision)
        kk->set_precision("fp32"); /* the text side: durations are rounded up from it */
    if (kiln_vdtext_(v, &r, &lid, dpn, w))
        goto out;
    if (kk->set_precision && d->precision[0])
        kk->set_precision(d->precision);
    /* durations: ElementwiseAffine reversed, frames = ceil(exp(w) * length_scale) */
    for (int b = 0; b < B; b++) {
        int *dur = malloc((size_t)n_ids[b] * sizeof(int));
        if (!dur)
            goto out;
        out[b].durations = dur;
        out[b].n_ids = n_ids[b];
        long F = 0;
        for (int t = 0; t < n_ids[b]; t++) {
            float z0 = (w[off[b] + t] - v->dp_m[0]) * expf(-v->dp_logs[0]);
            dur[t] = (int)ceilf(expf(z0) * ls);
            if (dur[t] < 0)
                dur[t] = 0;
            F += dur[t];
        }
        sq[b].zero = F < 1;
        sq[b].F = F < 1 ? 1 : (int)F;
        out[b].n_samples = (size_t)sq[b].F * hop;
        if (!(out[b].pcm = malloc(out[b].n_samples * sizeof(float))))
            goto out;
    }
    /* expansion, flow and decoder in sub-batches of max_samples, longest first */
    for (int i0 = 0; i0 < B;) {
        size_t frames = (size_t)sq[order[i0]].F;
        int i1 = i0 + 1;
        while (i1 < B && (frames + (size_t)sq[order[i1]].F) * hop <= max_samples)
            frames += (size_t)sq[order[i1++]].F;
        int *F = malloc((size_t)(i1 - i0) * sizeof(int));
        unsigned char *zero = malloc((size_t)(i1 - i0));
        free(idx);
        free(noise);
        free(pcm);
        idx = malloc(frames * sizeof(int));
        noise = malloc(frames * IC * sizeof(float));
        pcm = malloc(frames * hop * sizeof(float));
        int bad = !F || !zero || !idx || !noise || !pcm;
        for (int i = i0, f = 0; i < i1 && !bad; i++) {
            F[i - i0] = sq[order[i]].F;
            zero[i - i0] = sq[order[i]].zero;
            fpos[i - i0] = f;
            f += sq[order[i]].F;
        }
        if (!bad) {
            kiln_vdnoise_job_t nj = {.v = v, .sq = sq, .order = order + i0, .fpos = fpos,
                                     .out = out, .idx = idx, .noise = noise,
                                     .quiet = ns == 0.0f};
            kiln_parallel_for(i1 - i0, kiln_vdnoise_task_, &nj);
            bad = kiln_vdev_sub_(v, &r, F, zero, i1 - i0, idx, noise, ns, pcm);
        }
        for (int i = i0; i < i1 && !bad; i++)
            memcpy(out[order[i]].pcm, pcm + (size_t)fpos[i - i0] * hop,
                   out[order[i]].n_samples * sizeof(float));
        free(F);
        free(zero);
        if (bad)
            goto out;
        i0 = i1;
    }
    err = KILN_OK;
out:
    if (kk->set_precision && d->precision[0])
        kk->set_precision(d->precision);
    kiln_kernels_unlock(kk);
    free(sq);
    free(off);
    free(idsc);
    free(dpn);
    free(w);
    free(idx);
    free(fpos);
    free(noise);
    free(pcm);
    return err;
}

kiln_err_t kiln_voice_set_backend(kiln_voice_t *v, const char *backend, const char *precision,
                                  char *errstr, size_t errstr_size) {
    kiln_backend_t be;
    const kiln_kernels_t *kk;
    int prc = kiln_kernels_pick(backend, precision, &kk, &be, errstr, errstr_size);
    if (prc)
        return prc == -2 ? KILN_ERR__UNSUPPORTED : KILN_ERR__INVALID_ARG;
    if (v->dev && v->dev->kk == kk) { /* already there: only the precision changes */
        if (precision && *precision)
            snprintf(v->dev->precision, sizeof(v->dev->precision), "%s", precision);
        return KILN_OK;
    }
    if (!precision || !*precision)
        precision = "fp32";
    kiln_vdev_free_(v->dev);
    v->dev = NULL;
    if (kk->host_memory) /* the CPU engine of vits.c */
        return KILN_OK;
    static const kiln_op_t need[] = {
        KILN_OP_MATMUL, KILN_OP_ADD,   KILN_OP_COPY2D, KILN_OP_IM2COL,        KILN_OP_COL2IM,
        KILN_OP_ACT,    KILN_OP_GATE,  KILN_OP_AXPBY,  KILN_OP_REL_ATTENTION, KILN_OP_DWCONV,
        KILN_OP_SPLINE_INV, KILN_OP_EXPAND, KILN_OP_LAYERNORM, KILN_OP_GELU, KILN_OP_GATHER_ROWS};
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
    if (v->dev)
        snprintf(v->dev->precision, sizeof(v->dev->precision), "%s", precision);
    if (!v->dev) {
        snprintf(errstr, errstr_size, "could not copy voice \"%s\" to backend \"%s\": out of "
                 "memory", v->path, kk->name);
        return KILN_ERR__NOMEM;
    }
    KILN_LOG_INFO("voice \"%s\" on backend \"%s\"", v->path, kk->name);
    return KILN_OK;
}

const char *kiln_voice_backend(const kiln_voice_t *v) {
    return v->dev ? v->dev->kk->name : "cpu";
}
