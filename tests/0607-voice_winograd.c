/*
 * tests/0607-voice_winograd.c - the voice's CPU convolutions in Winograd
 * form (models/voice/winograd.c) against the plain path (im2col + sgemm,
 * or the direct loop) on random weights; no voice file needed.
 *
 *   - kiln_vwino_matrices_(): F(m, K) computes a correlation (in double,
 *     with BT's float roundings: within 1e-5) for every size the engine
 *     uses, and rejects sizes out of range; the AVX-512 transforms'
 *     constant tables are bit for bit its AT and BT;
 *   - kiln_vconv1d_ex_() with a conv's Winograd form equals the plain path
 *     within 1e-4 x max(1, max |y|) (measured: about 1e-6 for n = 8,
 *     2e-5 for n = 10) on the decoder's, flow's and encoder's shapes, odd
 *     lengths (1 row, shorter than a tile, not a multiple of one), every
 *     dilation, the leaky ReLU / ReLU / identity, a residual, a second
 *     residual aliasing the output and a scale; on AVX-512 (the constant
 *     tables) and on the plain C transforms both;
 *   - the plain path itself takes res2 and scale (against a naive loop);
 *   - kiln_vgate_row_() = tanh(a) sigmoid(b) within 1e-6 over [-30, 30].
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/kernels.h"
#include "models/voice/voice_int.h"
#include "tests/test.h"

static float rnd_(void) { return (float)rand() / (float)RAND_MAX - 0.5f; }

/* naive out = scale * (res + res2 + b + conv(act(x))), k-major w [OC, K, C] */
static void naive_(float *out, const float *x, const kiln_vconv_t *cv, int T, int d, float sl,
                   const float *res, const float *res2, float scale) {
    int C = cv->ic, OC = cv->oc, K = cv->k, h = (K - 1) / 2;
    for (int t = 0; t < T; t++)
        for (int o = 0; o < OC; o++) {
            double s = (res ? res[t * OC + o] : 0) + (res2 ? res2[t * OC + o] : 0) +
                       (cv->b ? cv->b[o] : 0);
            for (int k = 0; k < K; k++) {
                int ti = t + (k - h) * d;
                if (ti < 0 || ti >= T)
                    continue;
                for (int c = 0; c < C; c++) {
                    float v = x[ti * C + c];
                    v = v < 0 ? v * sl : v;
                    s += (double)cv->w[((size_t)o * K + k) * C + c] * v;
                }
            }
            out[t * OC + o] = (float)(scale * s);
        }
}

static double maxabs_(const float *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fabs(a[i]) > m ? fabs(a[i]) : m;
    return m;
}

static double maxdiff_(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fabs((double)a[i] - b[i]) > m ? fabs((double)a[i] - b[i]) : m;
    return m;
}

typedef struct shape_s {
    int C, OC, K, d;
} shape_t;

int main(void) {
    srand(7);
    struct kiln_voice_s *v = calloc(1, sizeof(*v)); /* only its buffer list is used */
    TEST_ASSERT(v != NULL, "no memory");

    SUB_TEST("F(m, K) is an exact correlation (double), sizes out of range refused");
    {
        int sizes[][2] = {{6, 3}, {4, 5}, {4, 7}, {2, 3}, {4, 3}, {2, 7}};
        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
            int m = sizes[s][0], K = sizes[s][1], n = m + K - 1;
            float at[144], bt[144];
            double g[144], x[12], w[12], u[12], vv[12];
            TEST_ASSERT(kiln_vwino_matrices_(m, K, at, bt, g) == 0, "F(%d, %d) refused", m, K);
            for (int i = 0; i < n; i++)
                x[i] = rnd_();
            for (int k = 0; k < K; k++)
                w[k] = rnd_();
            for (int p = 0; p < n; p++) {
                u[p] = vv[p] = 0;
                for (int k = 0; k < K; k++)
                    u[p] += g[p * K + k] * w[k];
                for (int i = 0; i < n; i++)
                    vv[p] += (double)bt[p * n + i] * x[i];
            }
            double worst = 0;
            for (int j = 0; j < m; j++) {
                double y = 0, ref = 0;
                for (int p = 0; p < n; p++)
                    y += (double)at[j * n + p] * u[p] * vv[p];
                for (int k = 0; k < K; k++)
                    ref += w[k] * x[j + k];
                worst = fabs(y - ref) > worst ? fabs(y - ref) : worst;
            }
            /* bt holds float roundings of V^-T: 1e-6 relative at most */
            TEST_CHECK(worst < 1e-5, "F(%d, %d): off by %g", m, K, worst);
            printf("# F(%d, %d): max error %.2g\n", m, K, worst);
            const float *cat, *cbt;
            if (kiln_vwino_m_(K) == m) {
                TEST_ASSERT(!kiln_vwino_tables_(m, n, &cat, &cbt), "F(%d, %d): no tables", m, K);
                TEST_CHECK(!memcmp(cat, at, (size_t)m * n * sizeof(float)),
                           "F(%d, %d): the AT table differs from the construction", m, K);
                TEST_CHECK(!memcmp(cbt, bt, (size_t)n * n * sizeof(float)),
                           "F(%d, %d): the BT table differs from the construction", m, K);
            }
        }
        float at[144], bt[144];
        double g[144];
        TEST_CHECK(kiln_vwino_matrices_(4, 11, at, bt, g) != 0, "K = 11 accepted");
        TEST_CHECK(kiln_vwino_matrices_(0, 3, at, bt, g) != 0, "m = 0 accepted");
    }
    SUB_TEST_PASS();

    SUB_TEST("Winograd convs = the plain path (shapes, lengths, dilations, residuals)");
    {
        shape_t sh[] = {{32, 32, 3, 1},  {32, 32, 5, 2},   {32, 32, 7, 3},  {64, 64, 3, 2},
                        {64, 64, 5, 6},  {64, 64, 7, 12},  {128, 128, 3, 1}, {128, 128, 7, 3},
                        {192, 384, 5, 1}, {192, 256, 7, 1}, {192, 768, 3, 1}, {768, 192, 3, 1},
                        {48, 80, 5, 4}};
        int lens[] = {1, 5, 37, 301};
        float slopes[] = {0.1f, 0.0f, 1.0f};
        double worst = 0;
        for (int simd = 1; simd >= 0; simd--) {
            kiln_vwino_set_simd_(simd);
            for (size_t s = 0; s < sizeof(sh) / sizeof(sh[0]); s++) {
                kiln_vconv_t cv = {.oc = sh[s].OC, .ic = sh[s].C, .k = sh[s].K};
                size_t nw = (size_t)cv.oc * cv.ic * cv.k;
                cv.w = malloc(nw * sizeof(float));
                cv.b = malloc((size_t)cv.oc * sizeof(float));
                TEST_ASSERT(cv.w && cv.b, "no memory");
                float ws = 1.0f / sqrtf((float)(cv.ic * cv.k));
                for (size_t i = 0; i < nw; i++)
                    cv.w[i] = rnd_() * 2 * ws;
                for (int i = 0; i < cv.oc; i++)
                    cv.b[i] = rnd_();
                kiln_vconv_t wc = cv;
                TEST_ASSERT(kiln_vwino_prepare_(v, &wc, kiln_vwino_m_(cv.k)) == 0,
                            "C %d OC %d K %d: no Winograd form", cv.ic, cv.oc, cv.k);
                for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
                    int T = lens[li], d = sh[s].d;
                    float sl = slopes[(s + li) % 3];
                    size_t no = (size_t)T * cv.oc;
                    float *x = malloc((size_t)T * cv.ic * sizeof(float));
                    float *res = malloc(no * sizeof(float)), *acc = malloc(no * sizeof(float));
                    float *ref = malloc(no * sizeof(float)), *got = malloc(no * sizeof(float));
                    float *acc2 = malloc(no * sizeof(float));
                    TEST_ASSERT(x && res && acc && ref && got && acc2, "no memory");
                    for (size_t i = 0; i < (size_t)T * cv.ic; i++)
                        x[i] = rnd_() * 4;
                    for (size_t i = 0; i < no; i++) {
                        res[i] = rnd_();
                        acc[i] = acc2[i] = rnd_();
                    }
                    /* plain: out = res + conv; Winograd the same */
                    kiln_vconv1d_(ref, x, &cv, T, d, sl, cv.oc == cv.ic ? res : NULL);
                    kiln_vconv1d_(got, x, &wc, T, d, sl, cv.oc == cv.ic ? res : NULL);
                    double tol = 1e-4 * fmax(1.0, maxabs_(ref, no)), e = maxdiff_(got, ref, no);
                    TEST_CHECK(e <= tol, "simd %d C %d OC %d K %d d %d T %d slope %g: off by %g",
                               simd, cv.ic, cv.oc, cv.k, d, T, sl, e);
                    worst = e > worst ? e : worst;
                    /* acc = 0.5 * (res + acc + conv), acc aliased, both paths */
                    kiln_vconv1d_ex_(acc, x, &cv, T, d, sl, res, acc, 0.5f);
                    kiln_vconv1d_ex_(acc2, x, &wc, T, d, sl, res, acc2, 0.5f);
                    e = maxdiff_(acc2, acc, no);
                    tol = 1e-4 * fmax(1.0, maxabs_(acc, no));
                    TEST_CHECK(e <= tol, "simd %d C %d OC %d K %d d %d T %d: res2/scale off by %g",
                               simd, cv.ic, cv.oc, cv.k, d, T, e);
                    free(x), free(res), free(acc), free(ref), free(got), free(acc2);
                }
                free(cv.w);
                free(cv.b);
            }
        }
        kiln_vwino_set_simd_(1);
        printf("# worst difference Winograd vs plain: %.2g\n", worst);
    }
    SUB_TEST_PASS();

    SUB_TEST("the plain path's res2 and scale = a naive loop");
    {
        kiln_vconv_t cv = {.oc = 32, .ic = 32, .k = 5};
        int T = 50, d = 2;
        size_t nw = (size_t)cv.oc * cv.ic * cv.k, no = (size_t)T * cv.oc;
        float tmp[32 * 5];
        cv.w = malloc(nw * sizeof(float));
        cv.b = malloc((size_t)cv.oc * sizeof(float));
        float *x = malloc(no * sizeof(float)), *res = malloc(no * sizeof(float));
        float *acc = malloc(no * sizeof(float)), *ref = malloc(no * sizeof(float));
        TEST_ASSERT(cv.w && cv.b && x && res && acc && ref, "no memory");
        for (size_t i = 0; i < nw; i++)
            cv.w[i] = rnd_() * 0.1f;
        for (int i = 0; i < cv.oc; i++)
            cv.b[i] = rnd_();
        for (size_t i = 0; i < no; i++)
            x[i] = rnd_(), res[i] = rnd_(), acc[i] = rnd_();
        (void)tmp;
        naive_(ref, x, &cv, T, d, 0.1f, res, acc, 1.0f / 3.0f);
        kiln_vconv1d_ex_(acc, x, &cv, T, d, 0.1f, res, acc, 1.0f / 3.0f);
        double e = maxdiff_(acc, ref, no);
        TEST_CHECK(e < 1e-5, "im2col path off by %g", e);
        float *wt = malloc(nw * sizeof(float));
        TEST_ASSERT(wt != NULL, "no memory");
        if (kiln_vconv_direct_ok_(&cv)) {
            kiln_vconv_t dc = cv;
            kiln_vconv_direct_layout_(&cv, wt);
            dc.wt = wt;
            for (size_t i = 0; i < no; i++)
                acc[i] = res[i] * 0.5f;
            naive_(ref, x, &cv, T, d, 0.1f, res, acc, 2.0f);
            kiln_vconv1d_ex_(acc, x, &dc, T, d, 0.1f, res, acc, 2.0f);
            e = maxdiff_(acc, ref, no);
            TEST_CHECK(e < 1e-5, "direct path off by %g", e);
        }
        free(wt), free(cv.w), free(cv.b), free(x), free(res), free(acc), free(ref);
    }
    SUB_TEST_PASS();

    SUB_TEST("the gate = tanh(a) sigmoid(b) within 1e-6");
    {
        enum { N = 4096 };
        float *a = malloc(N * sizeof(float)), *b = malloc(N * sizeof(float));
        float *o = malloc(N * sizeof(float));
        TEST_ASSERT(a && b && o, "no memory");
        for (int i = 0; i < N; i++) {
            a[i] = -30.0f + 60.0f * (float)i / (N - 1);
            b[i] = 30.0f - 60.0f * (float)((i * 7919) % N) / (N - 1);
        }
        a[0] = 0.0f, a[1] = 1e-8f, a[2] = -1e-8f, b[3] = 200.0f, b[4] = -200.0f;
        kiln_vgate_row_(o, a, b, N);
        double worst = 0;
        for (int i = 0; i < N; i++) {
            double ref = tanh((double)a[i]) / (1.0 + exp(-(double)b[i]));
            worst = fabs(o[i] - ref) > worst ? fabs(o[i] - ref) : worst;
        }
        TEST_CHECK(worst <= 1e-6, "gate off by %g", worst);
        printf("# gate: max difference %.2g\n", worst);
        free(a), free(b), free(o);
    }
    SUB_TEST_PASS();

    for (int i = 0; i < v->n_bufs; i++)
        free(v->bufs[i]);
    free(v->bufs);
    free(v);
    return TEST_DONE();
}
