/*
 * models/voice/winograd.c - the Winograd (Toom-Cook) form of the voice's
 * "same" convolutions on the CPU: kiln_vconv1d_() takes it for a conv once
 * kiln_vwino_prepare_() has given it transformed weights.
 *
 * A conv y[t] = sum_k w[k] x[t + (k - h) * d] (h = (K - 1) / 2, dilation d)
 * is, on each residue class t = t0 + rho + j * d, a plain correlation, so
 * F(m, K) computes m outputs y[t0 + j * d] (j < m) from the n = m + K - 1
 * inputs x_i = x[t0 + (i - h) * d] (i < n) with n products per channel pair
 * instead of m * K:
 *
 *     y = AT [ (G w) . (BT x) ]
 *
 * from n evaluation points p_0 .. p_{n-2} and infinity (degree-(m-1) and
 * degree-(K-1) polynomials multiplied by evaluation and interpolation):
 * AT = E_m^T ([m, n]), G = E_K ([n, K]), BT = V^-T ([n, n]) where
 * E_q[i][j] = p_i^j (the infinity row: the leading coefficient) and V = E_n
 * (the correlation is the transpose of the linear convolution s = V^-1
 * [(E_K w) . (E_m x)]). The matrices are built in double precision once
 * per (m, K); the weights are transformed in double at prepare time:
 * U_p[c][o] = sum_k G[p][k] w[o][k][c].
 *
 * Per task (a block of about 512 output rows on the kernels' pool): each
 * tile's n input rows are activated on load (leaky ReLU fused; read in
 * place, or gathered with zero rows at the ends), transformed into row
 * `tile` of the n matrices V_p [tiles, C]; each V_p is multiplied by U_p
 * ([C, OC]: kiln_vdirect_gemm_()'s AVX-512 loop up to 384 channels,
 * sgemm otherwise) into M_p; each tile's m output rows are written as
 * scale * (res + res2 + bias + sum_p AT[j][p] M_p) in the same pass
 * (kiln_vconv1d_ex_(): the decoder's residuals and its mean of resblocks).
 *
 * Sizes (kiln_vwino_m_()): F(6, 3), F(4, 5) (n = 8, points 0, +-1, +-2,
 * +-1/2) and F(4, 7) (n = 10, adding +-3). On joe-medium's shapes, one
 * thread, they make the convolutions 1.4 to 2.8x faster than the faster of
 * im2col + sgemm and the direct loop (bench/voice_convs.c; the least gain
 * on the 32-channel stage, where the transforms weigh most); they differ
 * from the plain path by about 1e-6 (n = 8) and 3e-5 (n = 10) of the
 * output's range (tests/0607), and the voice's audio stays at 82+ dB SNR against
 * Piper (tests/0601). On AVX-512F CPUs the transforms of those three sizes
 * are unrolled with their matrices as compile-time constants (the tables
 * below, checked bit for bit against the construction); elsewhere, plain C.
 */
#pragma GCC optimize("tree-vectorize")

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/kernels.h"
#include "models/voice/voice_int.h"

#define KILN_VWINO_MAXN 12
#define KILN_VWINO_MAXK 9

/* the finite evaluation points, in the order they are taken */
static const double kiln_vwino_pts_[KILN_VWINO_MAXN - 1] = {
    0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 3.0, -3.0, 1.0 / 3.0, -1.0 / 3.0};

/*
 * Tile sizes by kernel size, measured on joe-medium's shapes (one thread):
 * K 3: F(6, 3) (n 8; F(4, 3) and F(8, 3) no faster), K 5: F(4, 5) (n 8;
 * F(2, 5) slower, F(6, 5) about the same), K 7: F(4, 7) (n 10; 1.4x
 * faster than F(2, 7), F(6, 7) slower).
 */
int kiln_vwino_m_(int K) {
    return K == 3 ? 6 : K == 5 || K == 7 ? 4 : 0;
}

/* p^j, with the infinity point (index n - 1) giving the leading coefficient */
static double kiln_vwino_e_(int i, int j, int n, int q) {
    if (i == n - 1)
        return j == q - 1 ? 1.0 : 0.0;
    return pow(kiln_vwino_pts_[i], j);
}

/* inverse of the n x n matrix a (Gauss-Jordan, partial pivoting) into inv */
static int kiln_vwino_invert_(double *a, double *inv, int n) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            inv[i * n + j] = i == j;
    for (int c = 0; c < n; c++) {
        int piv = c;
        for (int r = c + 1; r < n; r++)
            if (fabs(a[r * n + c]) > fabs(a[piv * n + c]))
                piv = r;
        if (fabs(a[piv * n + c]) < 1e-12)
            return -1;
        for (int j = 0; j < n; j++) {
            double t = a[c * n + j];
            a[c * n + j] = a[piv * n + j];
            a[piv * n + j] = t;
            t = inv[c * n + j];
            inv[c * n + j] = inv[piv * n + j];
            inv[piv * n + j] = t;
        }
        double d = a[c * n + c];
        for (int j = 0; j < n; j++) {
            a[c * n + j] /= d;
            inv[c * n + j] /= d;
        }
        for (int r = 0; r < n; r++) {
            if (r == c || a[r * n + c] == 0.0)
                continue;
            double f = a[r * n + c];
            for (int j = 0; j < n; j++) {
                a[r * n + j] -= f * a[c * n + j];
                inv[r * n + j] -= f * inv[c * n + j];
            }
        }
    }
    return 0;
}

int kiln_vwino_matrices_(int m, int K, float *at, float *bt, double *g) {
    int n = m + K - 1;
    if (m < 1 || K < 1 || K > KILN_VWINO_MAXK || n > KILN_VWINO_MAXN)
        return -1;
    double v[KILN_VWINO_MAXN * KILN_VWINO_MAXN], vi[KILN_VWINO_MAXN * KILN_VWINO_MAXN];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            v[i * n + j] = kiln_vwino_e_(i, j, n, n);
    if (kiln_vwino_invert_(v, vi, n))
        return -1;
    for (int j = 0; j < m; j++)
        for (int i = 0; i < n; i++)
            at[j * n + i] = (float)kiln_vwino_e_(i, j, n, m);
    for (int p = 0; p < n; p++)
        for (int i = 0; i < n; i++) {
            double x = vi[i * n + p];
            bt[p * n + i] = fabs(x) < 1e-12 ? 0.0f : (float)x; /* exact zeros: skipped */
        }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < K; k++)
            g[i * K + k] = kiln_vwino_e_(i, k, n, K);
    return 0;
}

int kiln_vwino_prepare_(kiln_voice_t *v, kiln_vconv_t *cv, int m) {
    int K = cv->k, C = cv->ic, OC = cv->oc, n = m + K - 1;
    if (cv->wu || !cv->w || m < 1 || K < 3 || K % 2 == 0 || C % 16 || OC % 16)
        return -1;
    float at[KILN_VWINO_MAXN * KILN_VWINO_MAXN], bt[KILN_VWINO_MAXN * KILN_VWINO_MAXN];
    double g[KILN_VWINO_MAXN * KILN_VWINO_MAXK];
    if (kiln_vwino_matrices_(m, K, at, bt, g))
        return -1;
    /* U [n, C, OC], then AT [m, n] and BT [n, n] behind it */
    float *u = kiln_voice_take_(v, (size_t)n * C * OC + (size_t)m * n + (size_t)n * n);
    if (!u)
        return -1;
    for (int p = 0; p < n; p++)
        for (int o = 0; o < OC; o++)
            for (int c = 0; c < C; c++) {
                double s = 0;
                for (int k = 0; k < K; k++)
                    s += g[p * K + k] * cv->w[((size_t)o * K + k) * C + c];
                u[((size_t)p * C + c) * OC + o] = (float)s;
            }
    float *dst = u + (size_t)n * C * OC;
    memcpy(dst, at, (size_t)m * n * sizeof(float));
    memcpy(dst + (size_t)m * n, bt, (size_t)n * n * sizeof(float));
    cv->wm = m;
    cv->wu = u;
    return 0;
}

typedef struct kiln_vwino_job_s {
    float *out;
    const float *inp, *res, *res2;
    const kiln_vconv_t *cv;
    int T, dil, blocks; /* blocks of m * dil output rows per task */
    float slope, scale;
} kiln_vwino_job_t;

/*
 * The input transform of one tile in plain C (any CPU), 16 channels at a
 * time: v[p * vs + c] = sum_i bt[p][i] act(a[i * as + c]), n points (the
 * zero entries of BT skipped); act(x) = max(x, sl * x), the leaky ReLU
 * (0 <= sl <= 1), or x for sl = 1.
 */
static void kiln_vwino_in_(float *restrict v, size_t vs, const float *restrict a, size_t as,
                           const float *restrict bt, int C, float sl, int n) {
    for (int c0 = 0; c0 < C; c0 += 16) {
        float x[KILN_VWINO_MAXN][16];
        for (int i = 0; i < n; i++)
            for (int l = 0; l < 16; l++) {
                float y = a[i * as + c0 + l], w = y * sl;
                x[i][l] = y > w ? y : w;
            }
        for (int p = 0; p < n; p++) {
            float acc[16] = {0};
            for (int i = 0; i < n; i++) {
                float b = bt[p * n + i];
                if (b != 0.0f)
                    for (int l = 0; l < 16; l++)
                        acc[l] += b * x[i][l];
            }
            for (int l = 0; l < 16; l++)
                v[p * vs + c0 + l] = acc[l];
        }
    }
}

/*
 * The output transform of one tile in plain C: o[jj * os + c] = sc * (res[jj * os + c]
 * + res2[jj * os + c] + bias[c] + sum_p at[jj][p] mm[p * ms + c]) for the
 * first mo of its outputs (res, res2, bias: 0 where NULL; res or res2 may
 * alias o).
 */
static void kiln_vwino_out_(float *o, size_t os, const float *res, const float *res2,
                            const float *restrict bias, float sc, const float *restrict mm,
                            size_t ms, const float *restrict at, int OC, int mo, int n) {
    for (int c0 = 0; c0 < OC; c0 += 16) {
        float x[KILN_VWINO_MAXN][16];
        for (int p = 0; p < n; p++)
            for (int l = 0; l < 16; l++)
                x[p][l] = mm[p * ms + c0 + l];
        for (int jj = 0; jj < mo; jj++) {
            float acc[16];
            for (int l = 0; l < 16; l++)
                acc[l] = (res ? res[jj * os + c0 + l] : 0.0f) +
                         (res2 ? res2[jj * os + c0 + l] : 0.0f) + (bias ? bias[c0 + l] : 0.0f);
            for (int p = 0; p < n; p++) {
                float b = at[jj * n + p];
                if (b != 0.0f)
                    for (int l = 0; l < 16; l++)
                        acc[l] += b * x[p][l];
            }
            for (int l = 0; l < 16; l++)
                o[jj * os + c0 + l] = sc * acc[l];
        }
    }
}

/*
 * kiln_vwino_matrices_()'s BT for n = 8 and 10, and AT for F(6, 3), F(4, 5)
 * and F(4, 7), as constants (generated in exact rational arithmetic and
 * rounded to float; tests/0607 checks them against kiln_vwino_matrices_()),
 * so that the unrolled AVX-512 transforms fold their zeros and
 * coefficients at compile time.
 */
static const float kiln_vwino_bt8_[64] = {
    1.0f, 0.0f, -5.25f, 0.0f, 5.25f, 0.0f, -1.0f, 0.0f,
    0.0f, -0.222222224f, -0.222222224f, 0.944444418f, 0.944444418f, -0.222222224f, -0.222222224f, 0.0f,
    0.0f, 0.222222224f, -0.222222224f, -0.944444418f, 0.944444418f, 0.222222224f, -0.222222224f, 0.0f,
    0.0f, 0.00555555569f, 0.00277777785f, -0.027777778f, -0.013888889f, 0.0222222228f, 0.0111111114f, 0.0f,
    0.0f, -0.00555555569f, 0.00277777785f, 0.027777778f, -0.013888889f, -0.0222222228f, 0.0111111114f, 0.0f,
    0.0f, 1.42222226f, 2.84444451f, -1.77777779f, -3.55555558f, 0.355555564f, 0.711111128f, 0.0f,
    0.0f, -1.42222226f, 2.84444451f, 1.77777779f, -3.55555558f, -0.355555564f, 0.711111128f, 0.0f,
    0.0f, -1.0f, 0.0f, 5.25f, 0.0f, -5.25f, 0.0f, 1.0f,
};
static const float kiln_vwino_bt10_[100] = {
    1.0f, 0.0f, -5.36111116f, 0.0f, 5.83333349f, 0.0f, -1.58333337f, 0.0f, 0.111111112f, 0.0f,
    0.0f, -0.25f, -0.25f, 1.09027779f, 1.09027779f, -0.368055552f, -0.368055552f, 0.027777778f, 0.027777778f, 0.0f,
    0.0f, 0.25f, -0.25f, -1.09027779f, 1.09027779f, 0.368055552f, -0.368055552f, -0.027777778f, 0.027777778f, 0.0f,
    0.0f, 0.00999999978f, 0.00499999989f, -0.0511111096f, -0.0255555548f, 0.0455555543f, 0.0227777772f, -0.00444444455f, -0.00222222228f, 0.0f,
    0.0f, -0.00999999978f, 0.00499999989f, 0.0511111096f, -0.0255555548f, -0.0455555543f, 0.0227777772f, 0.00444444455f, -0.00222222228f, 0.0f,
    0.0f, 1.46285713f, 2.92571425f, -1.99111116f, -3.98222232f, 0.568888903f, 1.13777781f, -0.040634919f, -0.0812698379f, 0.0f,
    0.0f, -1.46285713f, 2.92571425f, 1.99111116f, -3.98222232f, -0.568888903f, 1.13777781f, 0.040634919f, -0.0812698379f, 0.0f,
    0.0f, -0.000476190471f, -0.000158730152f, 0.00249999994f, 0.000833333354f, -0.00249999994f, -0.000833333354f, 0.000476190471f, 0.000158730152f, 0.0f,
    0.0f, 0.000476190471f, -0.000158730152f, -0.00249999994f, 0.000833333354f, 0.00249999994f, -0.000833333354f, -0.000476190471f, 0.000158730152f, 0.0f,
    0.0f, 9.0f, 0.0f, -48.25f, 0.0f, 52.5f, 0.0f, -14.25f, 0.0f, 1.0f,
};
static const float kiln_vwino_at6_8_[48] = {
    1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 0.0f,
    0.0f, 1.0f, -1.0f, 2.0f, -2.0f, 0.5f, -0.5f, 0.0f,
    0.0f, 1.0f, 1.0f, 4.0f, 4.0f, 0.25f, 0.25f, 0.0f,
    0.0f, 1.0f, -1.0f, 8.0f, -8.0f, 0.125f, -0.125f, 0.0f,
    0.0f, 1.0f, 1.0f, 16.0f, 16.0f, 0.0625f, 0.0625f, 0.0f,
    0.0f, 1.0f, -1.0f, 32.0f, -32.0f, 0.03125f, -0.03125f, 1.0f,
};
static const float kiln_vwino_at4_8_[32] = {
    1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 0.0f,
    0.0f, 1.0f, -1.0f, 2.0f, -2.0f, 0.5f, -0.5f, 0.0f,
    0.0f, 1.0f, 1.0f, 4.0f, 4.0f, 0.25f, 0.25f, 0.0f,
    0.0f, 1.0f, -1.0f, 8.0f, -8.0f, 0.125f, -0.125f, 1.0f,
};
static const float kiln_vwino_at4_10_[40] = {
    1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 0.0f,
    0.0f, 1.0f, -1.0f, 2.0f, -2.0f, 0.5f, -0.5f, 3.0f, -3.0f, 0.0f,
    0.0f, 1.0f, 1.0f, 4.0f, 4.0f, 0.25f, 0.25f, 9.0f, 9.0f, 0.0f,
    0.0f, 1.0f, -1.0f, 8.0f, -8.0f, 0.125f, -0.125f, 27.0f, -27.0f, 1.0f,
};

int kiln_vwino_tables_(int m, int n, const float **at, const float **bt) {
    if (m == 6 && n == 8)
        *at = kiln_vwino_at6_8_;
    else if (m == 4 && n == 8)
        *at = kiln_vwino_at4_8_;
    else if (m == 4 && n == 10)
        *at = kiln_vwino_at4_10_;
    else
        return -1;
    *bt = n == 8 ? kiln_vwino_bt8_ : kiln_vwino_bt10_;
    return 0;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define KILN_VWINO_AVX512 __attribute__((target("avx512f"), always_inline)) static inline

/* kiln_vwino_in_() with the 16-channel pieces in AVX-512 registers (bt one of the tables) */
KILN_VWINO_AVX512 void kiln_vwino_in16_(float *restrict v, size_t vs, const float *restrict a,
                                        size_t as, const float *restrict bt, int C, float sl,
                                        const int n) {
    __m512 slv = _mm512_set1_ps(sl);
    for (int c0 = 0; c0 < C; c0 += 16) {
        __m512 x[KILN_VWINO_MAXN];
        _Pragma("GCC unroll 12") for (int i = 0; i < n; i++) {
            __m512 y = _mm512_loadu_ps(a + i * as + c0);
            x[i] = _mm512_max_ps(y, _mm512_mul_ps(y, slv));
        }
        _Pragma("GCC unroll 12") for (int p = 0; p < n; p++) {
            __m512 acc = _mm512_setzero_ps();
            _Pragma("GCC unroll 12") for (int i = 0; i < n; i++)
                if (bt[p * n + i] != 0.0f)
                    acc = _mm512_fmadd_ps(_mm512_set1_ps(bt[p * n + i]), x[i], acc);
            _mm512_storeu_ps(v + p * vs + c0, acc);
        }
    }
}

/* kiln_vwino_out_() likewise */
KILN_VWINO_AVX512 void kiln_vwino_out16_(float *o, size_t os, const float *res,
                                         const float *res2, const float *restrict bias, float sc,
                                         const float *restrict mm, size_t ms,
                                         const float *restrict at, int OC, int mo,
                                         const int n) {
    __m512 scv = _mm512_set1_ps(sc);
    for (int c0 = 0; c0 < OC; c0 += 16) {
        __m512 x[KILN_VWINO_MAXN];
        _Pragma("GCC unroll 12") for (int p = 0; p < n; p++)
            x[p] = _mm512_loadu_ps(mm + p * ms + c0);
        __m512 bv = bias ? _mm512_loadu_ps(bias + c0) : _mm512_setzero_ps();
        for (int jj = 0; jj < mo; jj++) {
            __m512 acc = res ? _mm512_add_ps(bv, _mm512_loadu_ps(res + jj * os + c0)) : bv;
            if (res2)
                acc = _mm512_add_ps(acc, _mm512_loadu_ps(res2 + jj * os + c0));
            _Pragma("GCC unroll 12") for (int p = 0; p < n; p++)
                if (at[jj * n + p] != 0.0f)
                    acc = _mm512_fmadd_ps(_mm512_set1_ps(at[jj * n + p]), x[p], acc);
            if (sc != 1.0f)
                acc = _mm512_mul_ps(acc, scv);
            _mm512_storeu_ps(o + jj * os + c0, acc);
        }
    }
}

/* one tile's transforms on AVX-512F, for the tables' sizes (unrolled, constants folded) */
__attribute__((target("avx512f"))) static void kiln_vwino_in_avx_(float *v, size_t vs,
                                                                  const float *a, size_t as,
                                                                  int C, float sl, int n) {
    if (n == 8)
        kiln_vwino_in16_(v, vs, a, as, kiln_vwino_bt8_, C, sl, 8);
    else
        kiln_vwino_in16_(v, vs, a, as, kiln_vwino_bt10_, C, sl, 10);
}

__attribute__((target("avx512f"))) static void
kiln_vwino_out_avx_(float *o, size_t os, const float *res, const float *res2, const float *bias,
                    float sc, const float *mm, size_t ms, int OC, int m, int mo, int n) {
    if (m == 6)
        kiln_vwino_out16_(o, os, res, res2, bias, sc, mm, ms, kiln_vwino_at6_8_, OC, mo, 8);
    else if (n == 8)
        kiln_vwino_out16_(o, os, res, res2, bias, sc, mm, ms, kiln_vwino_at4_8_, OC, mo, 8);
    else
        kiln_vwino_out16_(o, os, res, res2, bias, sc, mm, ms, kiln_vwino_at4_10_, OC, mo, 10);
}
#define KILN_VWINO_HAVE_AVX 1
#endif

static _Atomic int kiln_vwino_simd_ = 1;

void kiln_vwino_set_simd_(int on) { kiln_vwino_simd_ = on; }

/* whether F(m, K) has its AVX-512F transforms (the tables) on this CPU */
static int kiln_vwino_avx_(int m, int n) {
#ifdef KILN_VWINO_HAVE_AVX
    return kiln_vwino_simd_ && ((m == 6 && n == 8) || (m == 4 && (n == 8 || n == 10))) &&
           __builtin_cpu_supports("avx512f");
#else
    (void)m, (void)n;
    return 0;
#endif
}

/* the input transform of one tile: AVX-512F where the CPU has it */
static void kiln_vwino_in_tile_(int avx, float *v, size_t vs, const float *a, size_t as,
                                const float *bt, int C, float sl, int n) {
#ifdef KILN_VWINO_HAVE_AVX
    if (avx) {
        kiln_vwino_in_avx_(v, vs, a, as, C, sl, n);
        return;
    }
#endif
    (void)avx;
    kiln_vwino_in_(v, vs, a, as, bt, C, sl, n);
}

/* the output transform of one tile, likewise */
static void kiln_vwino_out_tile_(int avx, float *o, size_t os, const float *res,
                                 const float *res2, const float *bias, float sc, const float *mm,
                                 size_t ms, const float *at, int OC, int m, int mo, int n) {
#ifdef KILN_VWINO_HAVE_AVX
    if (avx) {
        kiln_vwino_out_avx_(o, os, res, res2, bias, sc, mm, ms, OC, m, mo, n);
        return;
    }
#endif
    (void)avx, (void)m;
    kiln_vwino_out_(o, os, res, res2, bias, sc, mm, ms, at, OC, mo, n);
}

/*
 * One task: the output rows [r0, r1) (blocks of span = m * d rows, tile
 * (b, rho) = the outputs r0 + b * span + rho + jj * d, jj < m). A tile's
 * inputs are read in place when they all lie inside [0, T), else gathered
 * with zero rows for the padding; the products of all its tiles go in one
 * call per point.
 */
static void kiln_vwino_task_(void *vctx, int task, int thread) {
    const kiln_vwino_job_t *j = vctx;
    const kiln_vconv_t *cv = j->cv;
    int C = cv->ic, OC = cv->oc, K = cv->k, m = cv->wm, n = m + K - 1, d = j->dil, T = j->T;
    int span = m * d, h = (K - 1) / 2, avx = kiln_vwino_avx_(m, n);
    int r0 = task * j->blocks * span;
    int r1 = r0 + j->blocks * span < T ? r0 + j->blocks * span : T;
    int nb = (r1 - r0 + span - 1) / span, ntile = nb * d;
    const float *at = cv->wu + (size_t)n * C * OC, *bt = at + (size_t)m * n;
    (void)thread;
    float *g = kiln_scratch(1, (size_t)n * C);
    float *vb = kiln_scratch(2, (size_t)n * ntile * C);
    float *mb = kiln_scratch(3, (size_t)n * ntile * OC);
    if (!g || !vb || !mb) {
        kiln_kernels_set_error_();
        return;
    }
    for (int b = 0; b < nb; b++)
        for (int rho = 0; rho < d; rho++) {
            int first = r0 + b * span + rho - h * d, last = first + (n - 1) * d;
            const float *src = j->inp + (size_t)first * C;
            size_t as = (size_t)d * C;
            if (first < 0 || last >= T) {
                for (int i = 0; i < n; i++) {
                    int ti = first + i * d;
                    if (ti < 0 || ti >= T)
                        memset(g + (size_t)i * C, 0, (size_t)C * sizeof(float));
                    else
                        memcpy(g + (size_t)i * C, j->inp + (size_t)ti * C,
                               (size_t)C * sizeof(float));
                }
                src = g;
                as = (size_t)C;
            }
            kiln_vwino_in_tile_(avx, vb + (size_t)(b * d + rho) * C, (size_t)ntile * C, src, as,
                                bt, C, j->slope, n);
        }
    /* M_p = V_p U_p */
    for (int p = 0; p < n; p++) {
        float *mp = mb + (size_t)p * ntile * OC;
        const float *vp = vb + (size_t)p * ntile * C, *up = cv->wu + (size_t)p * C * OC;
        if (!kiln_vdirect_gemm_(mp, vp, up, ntile, C, OC))
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ntile, OC, C, 1.0f, vp, C, up,
                        OC, 0.0f, mp, OC);
    }
    for (int b = 0; b < nb; b++)
        for (int rho = 0; rho < d; rho++) {
            int t = r0 + b * span + rho, mo = 0;
            while (mo < m && t + mo * d < r1)
                mo++;
            size_t off = (size_t)t * OC;
            kiln_vwino_out_tile_(avx, j->out + off, (size_t)d * OC, j->res ? j->res + off : NULL,
                                 j->res2 ? j->res2 + off : NULL, cv->b, j->scale,
                                 mb + (size_t)(b * d + rho) * OC, (size_t)ntile * OC, at, OC, m,
                                 mo, n);
        }
}

void kiln_vwino_conv1d_(float *out, const float *inp, const kiln_vconv_t *cv, int T, int dil,
                        float slope, const float *res, const float *res2, float scale) {
    int span = cv->wm * dil, th = kiln_kernels_threads();
    int total = (T + span - 1) / span;
    /* about 512 output rows per task (64 to 1024 measured the same), at
     * least two tasks per thread */
    int blocks = (512 + span - 1) / span, per = (total + 2 * th - 1) / (2 * th);
    if (per < blocks)
        blocks = per < 1 ? 1 : per;
    kiln_vwino_job_t j = {.out = out, .inp = inp, .res = res, .res2 = res2, .cv = cv, .T = T,
                          .dil = dil, .blocks = blocks, .slope = slope, .scale = scale};
    kiln_parallel_for((total + blocks - 1) / blocks, kiln_vwino_task_, &j);
}
