/*
 * kernels/cpu/fast_rowops.c - the row-wise and element-wise ops of the fast
 * CPU backend: layernorm, softmax, GELU, add. Same contracts as the
 * references in kernels/cpu/<op>.c; rows (or ranges of values) are split
 * over the pool, and each row is processed 16 lanes at a time (vec.h).
 *
 * Differences from the reference, all at float rounding level: layernorm
 * sums in float lanes instead of double; softmax and GELU use the
 * polynomial exp and erf of vec.h.
 */
#include <math.h>

#include "kernels/cpu/vec.h"
#include "kiln/kernels.h"

#define KILN_EW_CHUNK 16384 /* values per task of the element-wise ops */
#define KILN_ROW_WORK 16384 /* values per task of the row ops (at least one row) */

/* ---- layernorm ---------------------------------------------------------- */

typedef struct {
    float *out;
    const float *inp, *w, *b;
    int N, C, rows;
    float eps;
} kiln_ln_ctx_t;

KILN_VEC_FN static void kiln_ln_rows_(float *out, const float *inp, const float *w,
                                      const float *b, int n0, int n1, int C, float eps) {
    const int Cv = C & ~(KILN_VL - 1);
    for (int n = n0; n < n1; n++) {
        const float *x = inp + (size_t)n * C;
        float *y = out + (size_t)n * C;
        kiln_vf acc = kiln_v_set1(0.0f);
        int i = 0;
        for (; i < Cv; i += KILN_VL)
            acc += kiln_v_load(x + i);
        float sum = kiln_v_hsum(acc);
        for (; i < C; i++)
            sum += x[i];
        const float mean = sum / C;
        acc = kiln_v_set1(0.0f);
        for (i = 0; i < Cv; i += KILN_VL) {
            kiln_vf d = kiln_v_load(x + i) - mean;
            acc += d * d;
        }
        float var = kiln_v_hsum(acc);
        for (; i < C; i++)
            var += (x[i] - mean) * (x[i] - mean);
        const float rstd = 1.0f / sqrtf(var / C + eps);
        for (i = 0; i < Cv; i += KILN_VL) {
            kiln_vf v = (kiln_v_load(x + i) - mean) * rstd * kiln_v_load(w + i);
            if (b)
                v += kiln_v_load(b + i);
            kiln_v_store(y + i, v);
        }
        for (; i < C; i++)
            y[i] = (x[i] - mean) * rstd * w[i] + (b ? b[i] : 0.0f);
    }
}

static void kiln_ln_task_(void *vctx, int t, int thread) {
    kiln_ln_ctx_t *c = vctx;
    (void)thread;
    int n0 = t * c->rows, n1 = n0 + c->rows < c->N ? n0 + c->rows : c->N;
    kiln_ln_rows_(c->out, c->inp, c->w, c->b, n0, n1, c->C, c->eps);
}

void kiln_layernorm_fast(float *out, const float *inp, const float *weight, const float *bias,
                         int N, int C, float eps) {
    if (N <= 0)
        return;
    int rows = KILN_ROW_WORK / (C > 0 ? C : 1);
    rows = rows < 1 ? 1 : rows;
    kiln_ln_ctx_t c = {out, inp, weight, bias, N, C, rows, eps};
    kiln_parallel_for((N + rows - 1) / rows, kiln_ln_task_, &c);
}

/* ---- softmax ------------------------------------------------------------ */

typedef struct {
    float *out;
    const float *inp;
    int N, C, rows;
} kiln_sm_ctx_t;

static void kiln_sm_task_(void *vctx, int t, int thread) {
    kiln_sm_ctx_t *c = vctx;
    (void)thread;
    int n0 = t * c->rows, n1 = n0 + c->rows < c->N ? n0 + c->rows : c->N;
    for (int n = n0; n < n1; n++)
        kiln_v_softmax_row(c->out + (size_t)n * c->C, c->inp + (size_t)n * c->C, c->C);
}

void kiln_softmax_fast(float *out, const float *inp, int N, int C) {
    if (N <= 0)
        return;
    int rows = KILN_ROW_WORK / (C > 0 ? C : 1);
    rows = rows < 1 ? 1 : rows;
    kiln_sm_ctx_t c = {out, inp, N, C, rows};
    kiln_parallel_for((N + rows - 1) / rows, kiln_sm_task_, &c);
}

/* ---- GELU and add ------------------------------------------------------- */

KILN_VEC_FN static void kiln_gelu_range_(float *out, const float *inp, size_t a, size_t b) {
    size_t i = a;
    for (; i + KILN_VL <= b; i += KILN_VL)
        kiln_v_store(out + i, kiln_v_gelu(kiln_v_load(inp + i)));
    if (i < b) {
        int r = (int)(b - i);
        kiln_v_store_part(out + i, kiln_v_gelu(kiln_v_load_part(inp + i, r, 0.0f)), r);
    }
}

KILN_VEC_FN static void kiln_add_range_(float *out, const float *x, const float *y, size_t a,
                                        size_t b) {
    size_t i = a;
    for (; i + KILN_VL <= b; i += KILN_VL)
        kiln_v_store(out + i, kiln_v_load(x + i) + kiln_v_load(y + i));
    for (; i < b; i++)
        out[i] = x[i] + y[i];
}

typedef struct {
    float *out;
    const float *a, *b;
    size_t n;
} kiln_ew_ctx_t;

static void kiln_gelu_task_(void *vctx, int t, int thread) {
    kiln_ew_ctx_t *c = vctx;
    (void)thread;
    size_t a = (size_t)t * KILN_EW_CHUNK, b = a + KILN_EW_CHUNK < c->n ? a + KILN_EW_CHUNK : c->n;
    kiln_gelu_range_(c->out, c->a, a, b);
}

static void kiln_add_task_(void *vctx, int t, int thread) {
    kiln_ew_ctx_t *c = vctx;
    (void)thread;
    size_t a = (size_t)t * KILN_EW_CHUNK, b = a + KILN_EW_CHUNK < c->n ? a + KILN_EW_CHUNK : c->n;
    kiln_add_range_(c->out, c->a, c->b, a, b);
}

void kiln_gelu_fast(float *out, const float *inp, size_t n) {
    kiln_ew_ctx_t c = {out, inp, NULL, n};
    kiln_parallel_for((int)((n + KILN_EW_CHUNK - 1) / KILN_EW_CHUNK), kiln_gelu_task_, &c);
}

void kiln_add_fast(float *out, const float *a, const float *b, size_t n) {
    kiln_ew_ctx_t c = {out, a, b, n};
    kiln_parallel_for((int)((n + KILN_EW_CHUNK - 1) / KILN_EW_CHUNK), kiln_add_task_, &c);
}

/* ---- row statistics (decoder logits) ----------------------------------- */

/* max and first argmax of x[a, b) */
KILN_VINL void kiln_v_maxidx_(const float *x, int a, int b, float *mout, int *iout) {
    kiln_vf mv = kiln_v_set1(-INFINITY);
    kiln_vi iv = {0}, lane = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    int i = a;
    for (; i + KILN_VL <= b; i += KILN_VL) {
        kiln_vf v = kiln_v_load(x + i);
        kiln_vi gt = v > mv;
        mv = (kiln_vf)((gt & (kiln_vi)v) | (~gt & (kiln_vi)mv));
        iv = (gt & (lane + i)) | (~gt & iv);
    }
    float m = -INFINITY;
    int idx = -1;
    for (int l = 0; l < KILN_VL; l++)
        if (mv[l] > m || (mv[l] == m && mv[l] > -INFINITY && iv[l] < idx)) {
            m = mv[l];
            idx = iv[l];
        }
    for (; i < b; i++)
        if (x[i] > m) {
            m = x[i];
            idx = i;
        }
    *mout = m;
    *iout = idx;
}

/* sum of exp(x - m) over x[a, b) */
KILN_VINL double kiln_v_sumexp_(const float *x, int a, int b, float m) {
    kiln_vf acc = kiln_v_set1(0.0f);
    int i = a;
    for (; i + KILN_VL <= b; i += KILN_VL)
        acc += kiln_v_exp(kiln_v_load(x + i) - m);
    if (i < b)
        acc += kiln_v_exp(kiln_v_load_part(x + i, b - i, -INFINITY) - m);
    double s = 0.0;
    for (int l = 0; l < KILN_VL; l++)
        s += acc[l];
    return s;
}

KILN_VEC_FN void kiln_row_stats(const float *x, int n, int split, kiln_row_stats_t *st) {
    split = split < 0 ? 0 : split > n ? n : split;
    kiln_v_maxidx_(x, 0, split, &st->max[0], &st->argmax[0]);
    kiln_v_maxidx_(x, split, n, &st->max[1], &st->argmax[1]);
    float m = st->max[0] > st->max[1] ? st->max[0] : st->max[1];
    if (m == -INFINITY) {
        st->sum[0] = st->sum[1] = 0.0;
        return;
    }
    st->sum[0] = kiln_v_sumexp_(x, 0, split, m);
    st->sum[1] = kiln_v_sumexp_(x, split, n, m);
}
