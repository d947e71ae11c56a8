/*
 * tests/0100-kernels.c - every CPU reference op (kernels/cpu) against a naive
 * loop written here, on random seeded input, by NMSE (max 1e-10 unless noted:
 * the ops are fp32, the loops double), plus the dispatch table.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/kernels.h"
#include "tests/test.h"

#define TOL 1e-10

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}
static float *rnd(size_t n) {
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        p[i] = frand();
    return p;
}

static void naive_matmul(float *out, const float *x, const float *w, const float *b, int N,
                         int C, int OC) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = b ? b[o] : 0.0;
            for (int c = 0; c < C; c++)
                s += (double)x[n * C + c] * w[o * C + c];
            out[n * OC + o] = (float)s;
        }
}

static void naive_softmax(double *out, const double *x, int C) {
    double mx = -INFINITY, s = 0;
    for (int i = 0; i < C; i++)
        mx = x[i] > mx ? x[i] : mx;
    for (int i = 0; i < C; i++)
        s += (out[i] = exp(x[i] - mx));
    for (int i = 0; i < C; i++)
        out[i] /= s;
}

static void check(const char *what, const float *got, const float *ref, size_t n, double tol) {
    double e = kiln_nmse(got, ref, n);
    TEST_CHECK(e <= tol, "%s: nmse %.3g > %.3g (got[0]=%g ref[0]=%g)", what, e, tol, got[0],
               ref[0]);
}

int main(void) {
    const kiln_kernels_t *kk = kiln_kernels_get(KILN_BACKEND_CPU);

    SUB_TEST("dispatch: cpu table complete, cuda absent in a cpu build");
    TEST_ASSERT(kk != NULL, "no cpu table");
    for (int op = 0; op < KILN_OP__COUNT; op++)
        TEST_CHECK(kiln_kernel_supported(KILN_BACKEND_CPU, (kiln_op_t)op), "op %d", op);
    TEST_CHECK(!strcmp(kiln_backend_name(KILN_BACKEND_CPU), "cpu"), "name");
    TEST_CHECK(kiln_kernels_get((kiln_backend_t)7) == NULL, "bad backend");
    SUB_TEST_PASS();

    SUB_TEST("matmul (with and without bias)");
    {
        int N = 37, C = 65, OC = 29;
        float *x = rnd(N * C), *w = rnd(OC * C), *b = rnd(OC);
        float *o = malloc(sizeof(float) * N * OC), *r = malloc(sizeof(float) * N * OC);
        kk->matmul(o, x, w, b, N, C, OC);
        naive_matmul(r, x, w, b, N, C, OC);
        check("bias", o, r, N * OC, TOL);
        kk->matmul(o, x, w, NULL, N, C, OC);
        naive_matmul(r, x, w, NULL, N, C, OC);
        check("no bias", o, r, N * OC, TOL);
        free(x); free(w); free(b); free(o); free(r);
    }
    SUB_TEST_PASS();

    SUB_TEST("layernorm");
    {
        int N = 13, C = 384;
        float *x = rnd(N * C), *g = rnd(C), *b = rnd(C), *o = malloc(sizeof(float) * N * C),
              *r = malloc(sizeof(float) * N * C);
        for (int i = 0; i < N * C; i++)
            x[i] = x[i] * 3 + 5; /* offset mean: catches one-pass variance */
        kk->layernorm(o, x, g, b, N, C, 1e-5f);
        for (int n = 0; n < N; n++) {
            double mu = 0, var = 0;
            for (int c = 0; c < C; c++)
                mu += x[n * C + c];
            mu /= C;
            for (int c = 0; c < C; c++)
                var += (x[n * C + c] - mu) * (x[n * C + c] - mu);
            var /= C;
            for (int c = 0; c < C; c++)
                r[n * C + c] = (float)((x[n * C + c] - mu) / sqrt(var + 1e-5) * g[c] + b[c]);
        }
        check("layernorm", o, r, N * C, TOL);
        free(x); free(g); free(b); free(o); free(r);
    }
    SUB_TEST_PASS();

    SUB_TEST("gelu (erf) and add");
    {
        size_t n = 10000;
        float *x = rnd(n), *y = rnd(n), *o = malloc(sizeof(float) * n), *r = malloc(sizeof(float) * n);
        for (size_t i = 0; i < n; i++)
            x[i] *= 6;
        kk->gelu(o, x, n);
        for (size_t i = 0; i < n; i++)
            r[i] = (float)(0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0))));
        check("gelu", o, r, n, TOL);
        TEST_CHECK(fabsf(o[0] - r[0]) < 1e-6f, "gelu[0] %g vs %g", o[0], r[0]);
        kk->add(o, x, y, n);
        for (size_t i = 0; i < n; i++)
            r[i] = x[i] + y[i];
        check("add", o, r, n, 0.0);
        free(x); free(y); free(o); free(r);
    }
    SUB_TEST_PASS();

    SUB_TEST("softmax (incl. a fully masked row)");
    {
        int N = 5, C = 1000;
        float *x = rnd(N * C), *o = malloc(sizeof(float) * N * C), *r = malloc(sizeof(float) * N * C);
        double xd[1000], od[1000];
        for (int i = 0; i < C; i++)
            x[4 * C + i] = -INFINITY;
        kk->softmax(o, x, N, C);
        for (int n = 0; n < 4; n++) {
            for (int i = 0; i < C; i++)
                xd[i] = x[n * C + i] * 10;
            for (int i = 0; i < C; i++)
                x[n * C + i] *= 10;
            naive_softmax(od, xd, C);
            for (int i = 0; i < C; i++)
                r[n * C + i] = (float)od[i];
        }
        kk->softmax(o, x, N, C);
        check("softmax", o, r, 4 * C, TOL);
        int zero = 1;
        for (int i = 0; i < C; i++)
            zero &= o[4 * C + i] == 0.0f;
        TEST_CHECK(zero, "masked row is not zeros");
        free(x); free(o); free(r);
    }
    SUB_TEST_PASS();

    SUB_TEST("attention: full and causal, strided fused QKV");
    for (int causal = 0; causal <= 1; causal++) {
        int Tq = 7, Tk = causal ? 7 : 23, H = 4, D = 16, C = H * D, ld = 3 * C;
        float *qkv = rnd((size_t)(Tq > Tk ? Tq : Tk) * ld);
        float *o = malloc(sizeof(float) * Tq * C), *r = malloc(sizeof(float) * Tq * C);
        float *scr = malloc(sizeof(float) * Tq * Tk);
        const float *q = qkv, *k = qkv + C, *v = qkv + 2 * C;
        kk->attention(o, C, q, ld, k, ld, v, ld, Tq, Tk, H, D, causal, scr);
        double s[64], p[64];
        for (int h = 0; h < H; h++)
            for (int t = 0; t < Tq; t++) {
                int last = causal ? Tk - Tq + t : Tk - 1;
                for (int j = 0; j <= last; j++) {
                    double acc = 0;
                    for (int d = 0; d < D; d++)
                        acc += (double)q[t * ld + h * D + d] * k[j * ld + h * D + d];
                    s[j] = acc / sqrt((double)D);
                }
                naive_softmax(p, s, last + 1);
                for (int d = 0; d < D; d++) {
                    double acc = 0;
                    for (int j = 0; j <= last; j++)
                        acc += p[j] * v[j * ld + h * D + d];
                    r[t * C + h * D + d] = (float)acc;
                }
            }
        check(causal ? "causal" : "full", o, r, Tq * C, TOL);
        free(qkv); free(o); free(r); free(scr);
    }
    SUB_TEST_PASS();

    SUB_TEST("conv1d: stride 1 and 2, zero padding");
    for (int stride = 1; stride <= 2; stride++) {
        int Tin = 50, C = 8, OC = 12, K = 3, pad = 1, Tout = (Tin + 2 * pad - K) / stride + 1;
        float *x = rnd(Tin * C), *w = rnd(OC * C * K), *b = rnd(OC);
        float *o = malloc(sizeof(float) * Tout * OC), *r = malloc(sizeof(float) * Tout * OC);
        float *scr = malloc(sizeof(float) * Tout * C * K);
        kk->conv1d(o, x, w, b, Tin, C, OC, K, stride, pad, scr);
        for (int t = 0; t < Tout; t++)
            for (int oc = 0; oc < OC; oc++) {
                double acc = b[oc];
                for (int c = 0; c < C; c++)
                    for (int k = 0; k < K; k++) {
                        int ti = t * stride + k - pad;
                        if (ti >= 0 && ti < Tin)
                            acc += (double)w[(oc * C + c) * K + k] * x[ti * C + c];
                    }
                r[t * OC + oc] = (float)acc;
            }
        check(stride == 1 ? "stride 1" : "stride 2", o, r, Tout * OC, TOL);
        free(x); free(w); free(b); free(o); free(r); free(scr);
    }
    SUB_TEST_PASS();

    SUB_TEST("logmel: mel projection + log10 floor");
    {
        int T = 31, F = 201, M = 80;
        float *pw = rnd(T * F), *fb = rnd(M * F), *o = malloc(sizeof(float) * M * T),
              *r = malloc(sizeof(float) * M * T);
        for (int i = 0; i < T * F; i++)
            pw[i] = pw[i] * pw[i];
        for (int i = 0; i < M * F; i++)
            fb[i] = fb[i] > 0.5f ? fb[i] : 0.0f;
        memset(fb, 0, sizeof(float) * F); /* mel 0 is empty: hits the 1e-10 floor */
        kk->logmel(o, pw, fb, T, F, M);
        for (int m = 0; m < M; m++)
            for (int t = 0; t < T; t++) {
                double s = 0;
                for (int f = 0; f < F; f++)
                    s += (double)fb[m * F + f] * pw[t * F + f];
                r[m * T + t] = (float)log10(s > 1e-10 ? s : 1e-10);
            }
        check("logmel", o, r, M * T, TOL);
        TEST_CHECK(fabsf(o[0] + 10.0f) < 1e-5f, "floor gives %g, not -10", o[0]);
        free(pw); free(fb); free(o); free(r);
    }
    SUB_TEST_PASS();

    SUB_TEST("nmse");
    {
        float a[3] = {1, 2, 3}, b[3] = {1, 2, 3}, c[3] = {0, 0, 0};
        TEST_CHECK(kiln_nmse(a, b, 3) == 0.0, "equal");
        TEST_CHECK(kiln_nmse(c, b, 3) == 1.0, "zero vs ref");
        TEST_CHECK(isinf(kiln_nmse(a, c, 3)), "ref zero");
    }
    SUB_TEST_PASS();
    return TEST_DONE();
}
