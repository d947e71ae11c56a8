/*
 * kernels/cpu/fast_attention.c - attention in the fast CPU backend.
 *
 * attention (one sequence, Tq x Tk; the encoder): one task per head and
 * block of 64 query rows, so that the block's scores (64 x Tk floats, a
 * thread's own scratch) stay in L2 between the two sgemms:
 *     S = Q_blk K_h^T * scale    (sgemm)   [64, Tk]
 *     S = softmax(S) (causal mask first)
 *     O_blk = S V_h              (sgemm)   [64, D]
 *
 * attention_kv (single query rows, a decoder step): rows that share their
 * keys (same kt, v, Tk: the beams of one window) are grouped, at most 32
 * rows a group, and one task handles one group and one head:
 *     s[r, j]  = sum_e q[r, e] * scale * K^T[e, j]   (rows of K^T streamed once)
 *     p[r]     = softmax(s[r])
 *     out[r]   = sum_j p[r, j] * V[j]                 (D/16 accumulators)
 * Each key feature row of K^T is read once per group, which is what bounds
 * the step (the window's keys come from memory). Head sizes that are not a
 * multiple of 16 go through the reference.
 */
#include <cblas.h>
#include <math.h>

#include "kernels/cpu/vec.h"
#include "kiln/kernels.h"

#define KILN_ATT_RB 64 /* query rows per encoder attention task */
#define KILN_ATT_GROUP 32 /* rows per decoder attention task */

KILN_VEC_FN static void kiln_att_softmax_rows_(float *s, int R, int Tk, int ld) {
    for (int r = 0; r < R; r++)
        kiln_v_softmax_row(s + (size_t)r * ld, s + (size_t)r * ld, Tk);
}

/* ---- attention (one sequence) ------------------------------------------ */

typedef struct {
    float *out;
    const float *q, *k, *v;
    int ldo, ldq, ldk, ldv, Tq, Tk, H, D, causal, nblk;
    float scale;
} kiln_att_ctx_t;

static void kiln_att_task_(void *vctx, int t, int thread) {
    const kiln_att_ctx_t *c = vctx;
    (void)thread;
    const int h = t / c->nblk, r0 = (t % c->nblk) * KILN_ATT_RB;
    const int R = c->Tq - r0 < KILN_ATT_RB ? c->Tq - r0 : KILN_ATT_RB, D = c->D, Tk = c->Tk;
    float *s = kiln_scratch(0, (size_t)R * Tk);
    if (!s) {
        kiln_kernels_set_error_();
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, Tk, D, c->scale,
                c->q + (size_t)r0 * c->ldq + h * D, c->ldq, c->k + h * D, c->ldk, 0.0f, s, Tk);
    if (c->causal)
        for (int i = 0; i < R; i++)
            for (int j = Tk - c->Tq + r0 + i + 1; j < Tk; j++)
                s[(size_t)i * Tk + j] = -INFINITY;
    kiln_att_softmax_rows_(s, R, Tk, Tk);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, D, Tk, 1.0f, s, Tk,
                c->v + h * D, c->ldv, 0.0f, c->out + (size_t)r0 * c->ldo + h * D, c->ldo);
}

void kiln_attention_fast(float *out, int ldo, const float *q, int ldq, const float *k, int ldk,
                         const float *v, int ldv, int Tq, int Tk, int H, int D, int causal,
                         float *scratch) {
    (void)scratch;
    if (Tq <= 0 || Tk <= 0)
        return;
    kiln_att_ctx_t c = {out, q, k, v, ldo, ldq, ldk, ldv, Tq, Tk, H, D, causal,
                        (Tq + KILN_ATT_RB - 1) / KILN_ATT_RB, 1.0f / sqrtf((float)D)};
    kiln_parallel_for(H * c.nblk, kiln_att_task_, &c);
}

/* ---- attention_kv (decoder step) --------------------------------------- */

/*
 * Rows r0 .. r0+R-1 (sharing kt, v, T) and head h; s is [R, ld] scratch.
 */
KILN_VEC_FN static void kiln_attkv_group_(float *out, int ldo, const float *q, int ldq,
                                          const float *kt, int ldkt, const float *v, int ldv,
                                          int T, int R, int h, int D, float scale, float *s,
                                          int ld) {
    const int Tv = T & ~(KILN_VL - 1);
    for (int r = 0; r < R; r++)
        for (int j = 0; j < T; j++)
            s[(size_t)r * ld + j] = 0.0f;
    /* scores: one pass over the head's D rows of K^T */
    for (int e = 0; e < D; e++) {
        const float *kr = kt + (size_t)(h * D + e) * ldkt;
        for (int r = 0; r < R; r++) {
            const float qe = q[(size_t)r * ldq + h * D + e] * scale;
            float *sr = s + (size_t)r * ld;
            int j = 0;
            for (; j < Tv; j += KILN_VL)
                kiln_v_store(sr + j, kiln_v_load(sr + j) + qe * kiln_v_load(kr + j));
            for (; j < T; j++)
                sr[j] += qe * kr[j];
        }
    }
    for (int r = 0; r < R; r++) {
        float *p = s + (size_t)r * ld;
        kiln_v_softmax_row(p, p, T);
        /* out = p V, D/16 accumulators (D <= 128) */
        kiln_vf acc[8];
        const int nv = D / KILN_VL;
        for (int k = 0; k < nv; k++)
            acc[k] = kiln_v_set1(0.0f);
        const float *vh = v + h * D;
        for (int j = 0; j < T; j++) {
            const float pj = p[j];
            const float *vr = vh + (size_t)j * ldv;
            for (int k = 0; k < nv; k++)
                acc[k] += pj * kiln_v_load(vr + k * KILN_VL);
        }
        float *o = out + (size_t)r * ldo + h * D;
        for (int k = 0; k < nv; k++)
            kiln_v_store(o + k * KILN_VL, acc[k]);
    }
}

typedef struct {
    float *out;
    const float *q;
    const float *const *kt;
    const float *const *v;
    const int *Tk;
    const int *start;        /* [n_groups + 1] first row of each group */
    int ldo, ldq, ldkt, ldv, H, D;
    float scale;
} kiln_attkv_ctx_t;

static void kiln_attkv_task_(void *vctx, int t, int thread) {
    const kiln_attkv_ctx_t *c = vctx;
    (void)thread;
    const int g = t / c->H, h = t % c->H;
    const int r0 = c->start[g], R = c->start[g + 1] - r0, T = c->Tk[r0];
    const int ld = (T + KILN_VL - 1) & ~(KILN_VL - 1);
    float *s = kiln_scratch(0, (size_t)R * ld);
    if (!s) {
        kiln_kernels_set_error_();
        return;
    }
    kiln_attkv_group_(c->out + (size_t)r0 * c->ldo, c->ldo, c->q + (size_t)r0 * c->ldq, c->ldq,
                      c->kt[r0], c->ldkt, c->v[r0], c->ldv, T, R, h, c->D, c->scale, s, ld);
}

void kiln_attention_kv_fast(float *out, int ldo, const float *q, int ldq,
                            const float *const *kt, int ldkt, const float *const *v, int ldv,
                            const int *Tk, int S, int H, int D, float *scratch) {
    if (S <= 0)
        return;
    if (D % KILN_VL || D > 8 * KILN_VL) {
        kiln_attention_kv_cpu(out, ldo, q, ldq, kt, ldkt, v, ldv, Tk, S, H, D, scratch);
        return;
    }
    /* group starts: a new group where the keys change or the group is full */
    int *start = (int *)kiln_scratch(3, (size_t)S + 1);
    if (!start) {
        kiln_kernels_set_error_();
        return;
    }
    int ng = 0;
    for (int s = 0; s < S; s++)
        if (s == 0 || kt[s] != kt[s - 1] || v[s] != v[s - 1] || Tk[s] != Tk[s - 1] ||
            s - start[ng - 1] >= KILN_ATT_GROUP)
            start[ng++] = s;
    start[ng] = S;
    kiln_attkv_ctx_t c = {out, q, kt, v, Tk, start, ldo, ldq, ldkt, ldv, H, D,
                          1.0f / sqrtf((float)D)};
    kiln_parallel_for(ng * H, kiln_attkv_task_, &c);
}
