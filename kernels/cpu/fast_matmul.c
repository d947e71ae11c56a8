/*
 * kernels/cpu/fast_matmul.c - the dense layers of the fast CPU backend:
 * matmul (OpenBLAS sgemm, split over the pool), matmul_packed (a decoder
 * step's few rows against packed weights, plain C on vec.h) and conv1d
 * (im2col + matmul). Contracts as in include/kiln/kernels.h.
 *
 * matmul splits the rows of the output when there are many (the encoder:
 * 1500 rows a window), else its columns (each thread multiplies every row
 * by a slice of the weight). Each share is one single-threaded sgemm; the
 * bias is written first and sgemm adds to it (beta = 1).
 *
 * matmul_packed is for few rows: a panel of 16 output rows (C * 64 bytes,
 * kernels/cpu/matmul_packed.c) is loaded once per group of up to 8 input
 * rows, each weight vector feeding 8 multiply-adds; the weights stream
 * from memory once per call, which is what bounds a decoder step.
 */
#include <cblas.h>
#include <string.h>

#include "kernels/cpu/vec.h"
#include "kiln/kernels.h"

/* ---- matmul (sgemm) ----------------------------------------------------- */

typedef struct {
    float *out;
    const float *inp, *w, *bias;
    int N, C, OC, chunk, by_rows;
} kiln_mm_ctx_t;

static void kiln_mm_task_(void *vctx, int t, int thread) {
    kiln_mm_ctx_t *c = vctx;
    (void)thread;
    if (c->by_rows) {
        int n0 = t * c->chunk, n1 = n0 + c->chunk < c->N ? n0 + c->chunk : c->N;
        float *o = c->out + (size_t)n0 * c->OC;
        if (c->bias)
            for (int n = n0; n < n1; n++)
                memcpy(o + (size_t)(n - n0) * c->OC, c->bias, sizeof(float) * c->OC);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n1 - n0, c->OC, c->C, 1.0f,
                    c->inp + (size_t)n0 * c->C, c->C, c->w, c->C, c->bias ? 1.0f : 0.0f, o,
                    c->OC);
    } else {
        int j0 = t * c->chunk, j1 = j0 + c->chunk < c->OC ? j0 + c->chunk : c->OC;
        if (c->bias)
            for (int n = 0; n < c->N; n++)
                memcpy(c->out + (size_t)n * c->OC + j0, c->bias + j0, sizeof(float) * (j1 - j0));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, c->N, j1 - j0, c->C, 1.0f, c->inp,
                    c->C, c->w + (size_t)j0 * c->C, c->C, c->bias ? 1.0f : 0.0f, c->out + j0,
                    c->OC);
    }
}

void kiln_matmul_fast(float *out, const float *inp, const float *weight, const float *bias,
                      int N, int C, int OC) {
    if (N <= 0 || OC <= 0)
        return;
    const int nt = kiln_kernels_threads();
    kiln_mm_ctx_t c = {out, inp, weight, bias, N, C, OC, N, 1};
    int n_tasks = 1;
    if ((double)N * C * OC >= 262144.0 && nt > 1) {
        if (N >= 32 * nt) {
            c.chunk = (N + nt - 1) / nt;
            n_tasks = (N + c.chunk - 1) / c.chunk;
        } else {
            c.by_rows = 0;
            c.chunk = ((OC + nt - 1) / nt + 15) / 16 * 16;
            n_tasks = (OC + c.chunk - 1) / c.chunk;
        }
    }
    kiln_parallel_for(n_tasks, kiln_mm_task_, &c);
}

/* ---- matmul_packed ------------------------------------------------------ */

/*
 * out[r, 16p .. 16p+15] for rows r < NB of x: one packed panel P times NB
 * rows, NB accumulators of 16 lanes. NB is a constant at every call site,
 * so the loops over r unroll.
 */
KILN_VINL void kiln_mp_block_(float *out, int OC, const float *x, int C, const float *P,
                              const float *bias, int p, const int NB) {
    kiln_vf acc[8];
    for (int r = 0; r < NB; r++)
        acc[r] = kiln_v_set1(0.0f);
    for (int c = 0; c < C; c++) {
        kiln_vf w = kiln_v_load(P + (size_t)c * KILN_VL);
        for (int r = 0; r < NB; r++)
            acc[r] += x[(size_t)r * C + c] * w;
    }
    const int o0 = p * KILN_VL, cnt = OC - o0 < KILN_VL ? OC - o0 : KILN_VL;
    kiln_vf bv = bias ? kiln_v_load_part(bias + o0, cnt, 0.0f) : kiln_v_set1(0.0f);
    for (int r = 0; r < NB; r++) {
        if (cnt == KILN_VL)
            kiln_v_store(out + (size_t)r * OC + o0, acc[r] + bv);
        else
            kiln_v_store_part(out + (size_t)r * OC + o0, acc[r] + bv, cnt);
    }
}

KILN_VEC_FN static void kiln_mp_panels_(float *out, const float *inp, const float *wp,
                                        const float *bias, int N, int C, int OC, int p0,
                                        int p1) {
    for (int p = p0; p < p1; p++) {
        const float *P = wp + (size_t)p * C * KILN_VL;
        int n = 0;
        for (; n + 8 <= N; n += 8)
            kiln_mp_block_(out + (size_t)n * OC, OC, inp + (size_t)n * C, C, P, bias, p, 8);
        float *o = out + (size_t)n * OC;
        const float *x = inp + (size_t)n * C;
        switch (N - n) {
        case 7: kiln_mp_block_(o, OC, x, C, P, bias, p, 7); break;
        case 6: kiln_mp_block_(o, OC, x, C, P, bias, p, 6); break;
        case 5: kiln_mp_block_(o, OC, x, C, P, bias, p, 5); break;
        case 4: kiln_mp_block_(o, OC, x, C, P, bias, p, 4); break;
        case 3: kiln_mp_block_(o, OC, x, C, P, bias, p, 3); break;
        case 2: kiln_mp_block_(o, OC, x, C, P, bias, p, 2); break;
        case 1: kiln_mp_block_(o, OC, x, C, P, bias, p, 1); break;
        default: break;
        }
    }
}

typedef struct {
    float *out;
    const float *inp, *wp, *bias;
    int N, C, OC, per, np;
} kiln_mp_ctx_t;

static void kiln_mp_task_(void *vctx, int t, int thread) {
    kiln_mp_ctx_t *c = vctx;
    (void)thread;
    int p0 = t * c->per, p1 = p0 + c->per < c->np ? p0 + c->per : c->np;
    kiln_mp_panels_(c->out, c->inp, c->wp, c->bias, c->N, c->C, c->OC, p0, p1);
}

void kiln_matmul_packed_fast(float *out, const float *inp, const float *wp, const float *bias,
                             int N, int C, int OC) {
    if (N <= 0 || OC <= 0)
        return;
    const int np = (OC + KILN_VL - 1) / KILN_VL, nt = kiln_kernels_threads();
    /* a few tasks per thread for balance, none smaller than ~64k multiply-adds */
    int n_tasks = nt * 4;
    long per_panel = (long)N * C * KILN_VL;
    long max_tasks = per_panel * np / 65536;
    if (n_tasks > max_tasks)
        n_tasks = (int)(max_tasks > 0 ? max_tasks : 1);
    if (n_tasks > np)
        n_tasks = np;
    kiln_mp_ctx_t c = {out, inp, wp, bias, N, C, OC, (np + n_tasks - 1) / n_tasks, np};
    kiln_parallel_for((np + c.per - 1) / c.per, kiln_mp_task_, &c);
}

/* ---- conv1d ------------------------------------------------------------- */

typedef struct {
    float *col;
    const float *inp;
    int Tin, C, K, stride, pad, Tout, rows;
} kiln_im2col_ctx_t;

static void kiln_im2col_task_(void *vctx, int task, int thread) {
    kiln_im2col_ctx_t *c = vctx;
    (void)thread;
    int t0 = task * c->rows, t1 = t0 + c->rows < c->Tout ? t0 + c->rows : c->Tout;
    const int C = c->C, K = c->K;
    for (int t = t0; t < t1; t++) {
        float *row = c->col + (size_t)t * C * K;
        for (int k = 0; k < K; k++) {
            int ti = t * c->stride + k - c->pad;
            const float *x = ti >= 0 && ti < c->Tin ? c->inp + (size_t)ti * C : NULL;
            for (int ch = 0; ch < C; ch++)
                row[ch * K + k] = x ? x[ch] : 0.0f;
        }
    }
}

void kiln_conv1d_fast(float *out, const float *inp, const float *weight, const float *bias,
                      int Tin, int C, int OC, int K, int stride, int pad, float *scratch) {
    int Tout = (Tin + 2 * pad - K) / stride + 1;
    if (Tout <= 0)
        return;
    kiln_im2col_ctx_t c = {scratch, inp, Tin, C, K, stride, pad, Tout, 64};
    kiln_parallel_for((Tout + c.rows - 1) / c.rows, kiln_im2col_task_, &c);
    kiln_matmul_fast(out, scratch, weight, bias, Tout, C * K, OC);
}
