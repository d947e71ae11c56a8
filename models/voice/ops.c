/*
 * models/voice/ops.c - the operations VITS needs beyond kernels/: dilated
 * "same" convolutions, depthwise convolutions, transposed convolutions,
 * leaky ReLU, relative-position attention and the inverse rational-quadratic
 * spline. Time-major ([T, C]), fp32. The dense products go through the
 * kernels' CPU backend (kiln_kernels_get(KILN_BACKEND_CPU)->matmul, threaded
 * on the kernels' pool) or OpenBLAS directly, except where a direct
 * AVX-512 loop is faster (no im2col, no packing; x86-64 CPUs with AVX-512F
 * only): the 32- and 64-channel convolutions of the decoder that have no
 * Winograd form (kiln_vconv_direct_ok_()), and the Winograd form's
 * products (kiln_vdirect_gemm_(); the form itself: winograd.c, which
 * kiln_vconv1d_ex_() hands a conv to once it has one); the rest is plain C, split
 * over the pool (kiln_parallel_for) by blocks of rows, with row loops
 * written so that GCC vectorises them (no branches, restrict, no
 * reordered sums: the results are the scalar loops' bits).
 */
/* the row loops below are written for the vectoriser (max, no branches) */
#pragma GCC optimize("tree-vectorize")

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/kernels.h"
#include "models/voice/voice_int.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define KILN_VDIRECT 1 /* the direct AVX-512 path of kiln_vconv1d_() is built */
#endif

/* at most this many output rows per task of the convolutions: bounds each
 * thread's im2col scratch (rows * C * K floats) whatever T; larger blocks
 * amortise the sgemm's packing of the weights (768 measured best of
 * 256-1536 on the joe-medium decoder) */
#define KILN_VCONV_ROWS 768

/* Rows per task for T rows: at least two tasks per pool thread, 64 to KILN_VCONV_ROWS. */
static int kiln_vconv_rows_(int T) {
    int th = kiln_kernels_threads(), r = (T + 2 * th - 1) / (2 * th);
    return r < 64 ? 64 : r > KILN_VCONV_ROWS ? KILN_VCONV_ROWS : r;
}

typedef struct kiln_vconv_job_s {
    float *out;
    const float *inp, *res, *res2; /* res2 (kiln_vconv1d_ex_()) may alias out */
    const kiln_vconv_t *cv;
    int T, dil, stride, pad, Tout;
    int rows; /* input rows per task (kiln_vconv_rows_()) */
    float slope, scale;
} kiln_vconv_job_t;

/*
 * dst = act(x), n values: the leaky ReLU written as max(x, slope * x)
 * (the same for 0 <= slope <= 1) so that the loop has no branch and GCC
 * vectorises it (this file is built with tree-vectorize).
 */
static void kiln_vact_row_(float *restrict dst, const float *restrict x, size_t n, float slope) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i], w = v * slope;
        dst[i] = v > w ? v : w;
    }
}

/* dst += a, n values (dst and a distinct) */
static void kiln_vacc_row_(float *restrict dst, const float *restrict a, size_t n) {
    for (size_t i = 0; i < n; i++)
        dst[i] += a[i];
}

/*
 * im2col of nt rows: w[r, k * C + c] = a[(r + k * dil) * C + c]. The rows
 * are short (C = 32 .. 256 floats in the decoder), so for C a multiple of 16
 * the copy goes in constant 64-byte pieces the compiler inlines, not a
 * memcpy() call per tap (which cost as much as the copy itself).
 */
static void kiln_vim2col_(float *restrict w, const float *restrict a, int nt, int C, int K,
                          int dil) {
    size_t ck = (size_t)C * K;
    for (int r = 0; r < nt; r++)
        for (int k = 0; k < K; k++) {
            float *dst = w + (size_t)r * ck + (size_t)k * C;
            const float *src = a + (size_t)(r + k * dil) * C;
            if (C % 16)
                memcpy(dst, src, (size_t)C * sizeof(float));
            else
                for (int c = 0; c < C; c += 16)
                    memcpy(dst + c, src + c, 16 * sizeof(float));
        }
}

#ifdef KILN_VDIRECT
/*
 * The direct path of kiln_vconv1d_() for OC = 16 * NV output channels:
 * R output rows at a time held in R * NV AVX-512 registers (initialised
 * from o, which already holds res + bias), each tap and input channel one
 * broadcast of the activated input times NV weight vectors of wt
 * ([K, C, OC]). For the narrow stages (OC 32 and 64) this beats im2col +
 * sgemm, which copies K input rows per output row and packs both operands
 * (OC 128 measured no better than sgemm on joe-medium, so it stays there).
 */
#define KILN_VDIRECT_TARGET __attribute__((target("avx512f"), always_inline)) static inline
KILN_VDIRECT_TARGET void kiln_vdirect_blk_(float *o, const float *a, const float *wt, int C,
                                           int K, int dil, int zero, int OC, const int NV,
                                           const int R) {
    __m512 acc[8][4]; /* R <= 8, NV <= 4 */
    _Pragma("GCC unroll 8") for (int i = 0; i < R; i++)
        _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++)
            acc[i][v] = zero ? _mm512_setzero_ps() : _mm512_loadu_ps(o + (size_t)i * OC + 16 * v);
    for (int k = 0; k < K; k++) {
        const float *ak = a + (size_t)k * dil * C;
        const float *wk = wt + (size_t)k * C * OC;
        for (int c = 0; c < C; c++) {
            __m512 w[4];
            _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++)
                w[v] = _mm512_loadu_ps(wk + (size_t)c * OC + 16 * v);
            _Pragma("GCC unroll 8") for (int i = 0; i < R; i++) {
                __m512 b = _mm512_set1_ps(ak[(size_t)i * C + c]);
                _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++)
                    acc[i][v] = _mm512_fmadd_ps(b, w[v], acc[i][v]);
            }
        }
    }
    _Pragma("GCC unroll 8") for (int i = 0; i < R; i++)
        _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++)
            _mm512_storeu_ps(o + (size_t)i * OC + 16 * v, acc[i][v]);
}

/*
 * nt rows of o (+)= ... for 16 * NV of the OC output channels (o and wt
 * point at the first; rows of both are OC floats apart): blocks of R rows,
 * then single rows.
 */
#define KILN_VDIRECT_FN(NAME, NV, R)                                                          \
    __attribute__((target("avx512f"))) static void NAME(float *o, const float *a,             \
                                                        const float *wt, int nt, int C, int K, \
                                                        int dil, int zero, int OC) {          \
        int r = 0;                                                                            \
        for (; r + R <= nt; r += R)                                                           \
            kiln_vdirect_blk_(o + (size_t)r * OC, a + (size_t)r * C, wt, C, K, dil, zero, OC, \
                              NV, R);                                                         \
        for (; r < nt; r++)                                                                   \
            kiln_vdirect_blk_(o + (size_t)r * OC, a + (size_t)r * C, wt, C, K, dil, zero, OC, \
                              NV, 1);                                                         \
    }
KILN_VDIRECT_FN(kiln_vdirect_2_, 2, 8)
KILN_VDIRECT_FN(kiln_vdirect_4_, 4, 6)
#endif

#ifdef KILN_VDIRECT
/*
 * e^x on 16 lanes: x = n ln2 + r (|r| <= ln2 / 2, ln2 in two parts), e^r
 * by Cephes' degree-7 polynomial, times 2^n (scalef); x clamped to
 * [-87.3, 88.7]. Relative error about 1 ulp.
 */
__attribute__((target("avx512f"), always_inline)) static inline __m512 kiln_vexp16_(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.7f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

/* the gate on AVX-512F, C a multiple of 16: tanh(a) = 1 - 2 / (e^2a + 1) */
__attribute__((target("avx512f"))) static void kiln_vgate16_(float *o, const float *a,
                                                              const float *b, int C) {
    const __m512 one = _mm512_set1_ps(1.0f), two = _mm512_set1_ps(2.0f);
    for (int c = 0; c < C; c += 16) {
        __m512 ea = kiln_vexp16_(_mm512_mul_ps(two, _mm512_loadu_ps(a + c)));
        __m512 th = _mm512_sub_ps(one, _mm512_div_ps(two, _mm512_add_ps(ea, one)));
        __m512 eb = kiln_vexp16_(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_loadu_ps(b + c)));
        _mm512_storeu_ps(o + c, _mm512_div_ps(th, _mm512_add_ps(eb, one)));
    }
}
#endif

void kiln_vgate_row_(float *o, const float *a, const float *b, int C) {
#ifdef KILN_VDIRECT
    if (C % 16 == 0 && __builtin_cpu_supports("avx512f")) {
        kiln_vgate16_(o, a, b, C);
        return;
    }
#endif
    for (int c = 0; c < C; c++)
        o[c] = tanhf(a[c]) * (1.0f / (1.0f + expf(-b[c])));
}

/*
 * The direct loop beats sgemm on the Winograd products up to 384 channels
 * either way (measured on joe-medium's shapes: at or under sgemm for C, OC
 * 32 .. 384; sgemm wins for the 768-channel FFN).
 */
#define KILN_VDIRECT_MAX_CH 384

int kiln_vdirect_gemm_ok_(int C, int OC) {
#ifdef KILN_VDIRECT
    return OC % 32 == 0 && OC <= KILN_VDIRECT_MAX_CH && C <= KILN_VDIRECT_MAX_CH &&
           __builtin_cpu_supports("avx512f");
#else
    (void)C, (void)OC;
    return 0;
#endif
}

int kiln_vdirect_gemm_(float *o, const float *a, const float *w, int nt, int C, int OC) {
#ifdef KILN_VDIRECT
    if (kiln_vdirect_gemm_ok_(C, OC)) {
        int cb = 0;
        for (; cb + 64 <= OC; cb += 64)
            kiln_vdirect_4_(o + cb, a, w + cb, nt, C, 1, 1, 1, OC);
        if (cb < OC)
            kiln_vdirect_2_(o + cb, a, w + cb, nt, C, 1, 1, 1, OC);
        return 1;
    }
#else
    (void)o, (void)a, (void)w, (void)nt, (void)C, (void)OC;
#endif
    return 0;
}

int kiln_vconv_direct_ok_(const kiln_vconv_t *cv) {
#ifdef KILN_VDIRECT
    return cv->k > 1 && (cv->oc == 32 || cv->oc == 64) && __builtin_cpu_supports("avx512f");
#else
    (void)cv;
    return 0;
#endif
}

void kiln_vconv_direct_layout_(const kiln_vconv_t *cv, float *wt) {
    int C = cv->ic, K = cv->k, OC = cv->oc;
    for (int oc = 0; oc < OC; oc++)
        for (int k = 0; k < K; k++)
            for (int c = 0; c < C; c++)
                wt[((size_t)k * C + c) * OC + oc] = cv->w[((size_t)oc * K + k) * C + c];
}

/* orow = res + res2 + bias (each optional; res or res2 may be orow itself), n values */
static void kiln_vinit_row_(float *orow, const float *res, const float *res2, const float *bias,
                            size_t n) {
    if (res2 == orow) { /* the one already in place first */
        res2 = res;
        res = orow;
    }
    if (!res)
        memset(orow, 0, n * sizeof(float));
    else if (res != orow)
        memcpy(orow, res, n * sizeof(float));
    if (res2)
        kiln_vacc_row_(orow, res2, n);
    if (bias)
        kiln_vacc_row_(orow, bias, n);
}

/*
 * Rows [t0, t0 + nt) of out = scale * (res + res2 + bias + conv(act(inp))):
 * the input rows they read are activated once (zero rows for the padding),
 * gathered into an im2col block by row copies, and multiplied in one sgemm
 * (or the direct loop).
 */
static void kiln_vconv1d_task_(void *vctx, int task, int thread) {
    const kiln_vconv_job_t *j = vctx;
    const kiln_vconv_t *cv = j->cv;
    int C = cv->ic, K = cv->k, OC = cv->oc, T = j->T, dil = j->dil;
    int pad = dil * (K - 1) / 2;
    int t0 = task * j->rows, nt = T - t0 < j->rows ? T - t0 : j->rows;
    size_t ck = (size_t)C * K;
    (void)thread;
    float *o = j->out + (size_t)t0 * OC;
    for (int r = 0; r < nt; r++) {
        size_t off = (size_t)(t0 + r) * OC;
        kiln_vinit_row_(o + (size_t)r * OC, j->res ? j->res + off : NULL,
                        j->res2 ? j->res2 + off : NULL, cv->b, (size_t)OC);
    }
    const float *col;
    if (K == 1 && j->slope == 1.0f) {
        col = j->inp + (size_t)t0 * C;
    } else {
        /* activated input rows [t0 - pad, t0 + nt + pad) */
        int na = nt + 2 * pad;
        float *a = kiln_scratch(1, (size_t)na * C);
        float *w = K == 1 || cv->wt ? a : kiln_scratch(0, (size_t)nt * ck);
        if (!a || !w) {
            kiln_kernels_set_error_();
            return;
        }
        for (int r = 0; r < na; r++) {
            int ti = t0 - pad + r;
            float *dst = a + (size_t)r * C;
            if (ti < 0 || ti >= T)
                memset(dst, 0, (size_t)C * sizeof(float));
            else if (j->slope == 1.0f)
                memcpy(dst, j->inp + (size_t)ti * C, (size_t)C * sizeof(float));
            else
                kiln_vact_row_(dst, j->inp + (size_t)ti * C, (size_t)C, j->slope);
        }
        col = w;
#ifdef KILN_VDIRECT
        if (cv->wt) { /* direct path (kiln_vconv_direct_ok_()) */
            if (OC == 32)
                kiln_vdirect_2_(o, a, cv->wt, nt, C, K, dil, 0, OC);
            else
                kiln_vdirect_4_(o, a, cv->wt, nt, C, K, dil, 0, OC);
            col = NULL;
        }
#endif
        /* weights are k-major ([OC, K, C]), so each tap is one row copy */
        if (col && K > 1)
            kiln_vim2col_(w, a, nt, C, K, dil);
    }
    if (col)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nt, OC, (int)ck, 1.0f, col,
                    (int)ck, cv->w, (int)ck, 1.0f, o, OC);
    if (j->scale != 1.0f)
        for (size_t i = 0; i < (size_t)nt * OC; i++)
            o[i] *= j->scale;
}

void kiln_vconv1d_ex_(float *out, const float *inp, const kiln_vconv_t *cv, int T, int dil,
                      float slope, const float *res, const float *res2, float scale) {
    if (cv->wu) {
        kiln_vwino_conv1d_(out, inp, cv, T, dil, slope, res, res2, scale);
        return;
    }
    kiln_vconv_job_t j = {.out = out, .inp = inp, .res = res, .res2 = res2, .cv = cv, .T = T,
                          .dil = dil, .slope = slope, .scale = scale,
                          .rows = kiln_vconv_rows_(T)};
    kiln_parallel_for((T + j.rows - 1) / j.rows, kiln_vconv1d_task_, &j);
}

void kiln_vconv1d_(float *out, const float *inp, const kiln_vconv_t *cv, int T, int dil,
                   float slope, const float *res) {
    kiln_vconv1d_ex_(out, inp, cv, T, dil, slope, res, NULL, 1.0f);
}

void kiln_vkmajor_(kiln_vconv_t *cv, float *tmp) {
    int C = cv->ic, K = cv->k;
    for (int o = 0; o < cv->oc; o++) {
        float *w = cv->w + (size_t)o * C * K;
        for (int c = 0; c < C; c++)
            for (int k = 0; k < K; k++)
                tmp[(size_t)k * C + c] = w[(size_t)c * K + k];
        memcpy(w, tmp, (size_t)C * K * sizeof(float));
    }
}

void kiln_vdwconv_(float *out, const float *inp, const kiln_vconv_t *cv, int T, int dil) {
    int C = cv->oc, K = cv->k, pad = dil * (K - 1) / 2;
    for (int t = 0; t < T; t++) {
        float *o = out + (size_t)t * C;
        for (int c = 0; c < C; c++)
            o[c] = cv->b ? cv->b[c] : 0.0f;
        for (int k = 0; k < K; k++) {
            int ti = t + k * dil - pad;
            if (ti < 0 || ti >= T)
                continue;
            const float *x = inp + (size_t)ti * C;
            for (int c = 0; c < C; c++)
                o[c] += cv->w[c * K + k] * x[c];
        }
    }
}

void kiln_vrelayout_transpose_(float *dst, const float *w, int C, int OC, int K) {
    for (int c = 0; c < C; c++)
        for (int oc = 0; oc < OC; oc++)
            for (int k = 0; k < K; k++)
                dst[((size_t)k * OC + oc) * C + c] = w[((size_t)c * OC + oc) * K + k];
}

/*
 * Output rows [o0, o1) of the transposed conv, o = t * stride + k - pad:
 * the input rows that reach them (t0 .. t1) go through one product
 * Y[t, k * OC + oc] = sum_c act(inp[t, c]) * w[c, oc, k] (W' [K * OC, C]),
 * and only the rows this task owns are gathered, so tasks never write the
 * same row (a few input rows at block edges are multiplied twice).
 */
static void kiln_vconvt_task_(void *vctx, int task, int thread) {
    const kiln_vconv_job_t *j = vctx;
    const kiln_vconv_t *cv = j->cv;
    int C = cv->ic, OC = cv->oc, K = cv->k, s = j->stride, p = j->pad;
    int o0 = task * j->rows * s;
    int o1 = o0 + j->rows * s < j->Tout ? o0 + j->rows * s : j->Tout;
    int t0 = (o0 + p - K + 1) >= 0 ? (o0 + p - K + 1 + s - 1) / s : 0;
    int t1 = (o1 - 1 + p) / s;
    (void)thread;
    if (t1 > j->T - 1)
        t1 = j->T - 1;
    for (int o = o0; o < o1; o++)
        memcpy(j->out + (size_t)o * OC, cv->b, (size_t)OC * sizeof(float));
    int nt = t1 - t0 + 1;
    if (nt <= 0)
        return;
    float *x = kiln_scratch(0, (size_t)nt * C);
    float *y = kiln_scratch(1, (size_t)nt * K * OC);
    if (!x || !y) {
        kiln_kernels_set_error_();
        return;
    }
    kiln_vact_row_(x, j->inp + (size_t)t0 * C, (size_t)nt * C, j->slope);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nt, K * OC, C, 1.0f, x, C, cv->w, C,
                0.0f, y, K * OC);
    for (int t = t0; t <= t1; t++) {
        const float *yr = y + (size_t)(t - t0) * K * OC;
        for (int k = 0; k < K; k++) {
            int o = t * s + k - p;
            if (o < o0 || o >= o1)
                continue;
            kiln_vacc_row_(j->out + (size_t)o * OC, yr + (size_t)k * OC, (size_t)OC);
        }
    }
}

void kiln_vconv_transpose_(float *out, const float *inp, const kiln_vconv_t *cv, int T,
                           int stride, int pad, float slope) {
    kiln_vconv_job_t j = {.out = out, .inp = inp, .cv = cv, .T = T, .stride = stride,
                          .pad = pad, .slope = slope};
    j.Tout = (T - 1) * stride - 2 * pad + cv->k;
    j.rows = kiln_vconv_rows_(T);
    int rows = j.rows * stride;
    kiln_parallel_for((j.Tout + rows - 1) / rows, kiln_vconvt_task_, &j);
}

void kiln_vleaky_(float *out, const float *x, size_t n, float slope) {
    for (size_t i = 0; i < n; i++) /* may run in place: no restrict here */
        out[i] = x[i] < 0.0f ? slope * x[i] : x[i];
}

/*
 * VITS MultiHeadAttention (heads_share, window W) for one sequence without
 * padding:
 *   s[i][j] = (q_i / sqrt(D)) . (k_j + rel_k[j - i + W] if |j - i| <= W)
 *   p = softmax_j(s)
 *   out_i = sum_j p[i][j] (v_j + rel_v[j - i + W] if |j - i| <= W)
 */
typedef struct kiln_vatt_job_s {
    float *out;
    const float *qkv, *rel_k, *rel_v;
    int T, H, D, W;
} kiln_vatt_job_t;

/* rows per task of the attention */
#define KILN_VATT_ROWS 16

/* Rows [i0, i0 + KILN_VATT_ROWS) of head h (task = block * H + h). */
/* y += a * x, n values (multiply then add, as the scalar loop: same bits) */
static void kiln_vaxpy_row_(float *restrict y, const float *restrict x, float a, size_t n) {
    for (size_t i = 0; i < n; i++)
        y[i] += a * x[i];
}

/*
 * Rows [i0, i0 + KILN_VATT_ROWS) of head h (task = block * H + h). The
 * scores of a row are summed over d for all keys at once from the head's
 * keys transposed ([D, T]), so the loops run along contiguous memory and
 * vectorise, while each score still adds its D products in order (the
 * same bits as a dot product per key; the durations depend on them).
 */
static void kiln_vatt_task_(void *vctx, int task, int thread) {
    const kiln_vatt_job_t *j = vctx;
    int T = j->T, H = j->H, D = j->D, W = j->W, C = H * D, ld = 3 * C;
    int h = task % H, i0 = task / H * KILN_VATT_ROWS;
    int i1 = i0 + KILN_VATT_ROWS < T ? i0 + KILN_VATT_ROWS : T;
    float scale = 1.0f / sqrtf((float)D);
    float *s = kiln_scratch(0, (size_t)T + (size_t)D + (size_t)D * T);
    (void)thread;
    if (!s) {
        kiln_kernels_set_error_();
        return;
    }
    float *q = s + T, *kt = q + D;
    for (int jj = 0; jj < T; jj++) {
        const float *kj = j->qkv + (size_t)jj * ld + C + h * D;
        for (int d = 0; d < D; d++)
            kt[(size_t)d * T + jj] = kj[d];
    }
    for (int i = i0; i < i1; i++) {
        const float *qi = j->qkv + (size_t)i * ld + h * D;
        for (int d = 0; d < D; d++)
            q[d] = qi[d] * scale;
        memset(s, 0, (size_t)T * sizeof(float));
        for (int d = 0; d < D; d++)
            kiln_vaxpy_row_(s, kt + (size_t)d * T, q[d], (size_t)T);
        int r0 = i - W < 0 ? 0 : i - W, r1 = i + W > T - 1 ? T - 1 : i + W;
        for (int jj = r0; jj <= r1; jj++) {
            const float *ek = j->rel_k + (size_t)(jj - i + W) * D;
            float a2 = 0.0f;
            for (int d = 0; d < D; d++)
                a2 += q[d] * ek[d];
            s[jj] += a2;
        }
        float mx = -INFINITY;
        for (int jj = 0; jj < T; jj++)
            mx = s[jj] > mx ? s[jj] : mx;
        float sum = 0.0f;
        for (int jj = 0; jj < T; jj++) {
            s[jj] = expf(s[jj] - mx);
            sum += s[jj];
        }
        float inv = 1.0f / sum;
        float *o = j->out + (size_t)i * C + h * D;
        memset(o, 0, (size_t)D * sizeof(float));
        for (int jj = 0; jj < T; jj++) {
            float p = s[jj] * inv;
            kiln_vaxpy_row_(o, j->qkv + (size_t)jj * ld + 2 * C + h * D, p, (size_t)D);
            if (jj - i >= -W && jj - i <= W)
                kiln_vaxpy_row_(o, j->rel_v + (size_t)(jj - i + W) * D, p, (size_t)D);
        }
    }
}

void kiln_vrel_attention_(float *out, const float *qkv, const float *rel_k, const float *rel_v,
                          int T, int H, int D, int W) {
    kiln_vatt_job_t j = {.out = out, .qkv = qkv, .rel_k = rel_k, .rel_v = rel_v, .T = T, .H = H,
                         .D = D, .W = W};
    kiln_parallel_for((T + KILN_VATT_ROWS - 1) / KILN_VATT_ROWS * H, kiln_vatt_task_, &j);
}
