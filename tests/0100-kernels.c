/*
 * tests/0100-kernels.c - every CPU op, in both CPU tables (the reference
 * "ref" and the fast, threaded "cpu"), against a naive loop written here,
 * on random seeded input, by NMSE (max 1e-10 unless noted: the ops are
 * fp32, the loops double); the fast table against the reference at model
 * sizes; the vector exp/erf; the row statistics; the thread pool; and the
 * dispatch table. The ragged-batch ops are checked by what they are for:
 * im2col + matmul and matmul + col2im over sequences of unequal lengths
 * must equal a naive (transposed) convolution of each sequence alone, and
 * a wrong offset must be caught; act/gate/axpby against closed forms.
 */
#include <pthread.h>
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

static char name_buf_[128];
/* "<what> [<backend>]" for SUB_TEST (valid until the next call) */
static const char *nm(const char *what, const kiln_kernels_t *kk) {
    snprintf(name_buf_, sizeof(name_buf_), "%s [%s]", what, kk->name);
    return name_buf_;
}

static void test_ops(const kiln_kernels_t *kk);
static void test_ragged(const kiln_kernels_t *kk);
static void test_fast(void);

int main(void) {
    const kiln_kernels_t *kk = kiln_kernels_get(KILN_BACKEND_CPU);

    SUB_TEST("dispatch: cpu and ref tables complete; cuda only when registered");
    TEST_ASSERT(kk != NULL, "no cpu table");
    for (int op = 0; op < KILN_OP__COUNT; op++)
        TEST_CHECK(kiln_kernel_supported(KILN_BACKEND_CPU, (kiln_op_t)op) &&
                       kiln_kernel_supported(KILN_BACKEND_REF, (kiln_op_t)op), "op %d", op);
    TEST_CHECK(!strcmp(kiln_backend_name(KILN_BACKEND_CPU), "cpu") &&
                   !strcmp(kiln_backend_name(KILN_BACKEND_REF), "ref"), "name");
    /* a CUDA build on a GPU machine registers the cuda table at start-up */
    const kiln_kernels_t *cu = kiln_kernels_get(KILN_BACKEND_CUDA);
    TEST_CHECK(cu ? !strcmp(cu->name, "cuda")
                  : !kiln_kernel_supported(KILN_BACKEND_CUDA, KILN_OP_MATMUL), "cuda table");
    TEST_CHECK(kiln_kernels_get((kiln_backend_t)7) == NULL, "bad backend");
    SUB_TEST_PASS();

    test_ops(kiln_kernels_get(KILN_BACKEND_REF));
    test_ops(kiln_kernels_get(KILN_BACKEND_CPU));
    test_ragged(kiln_kernels_get(KILN_BACKEND_REF));
    test_ragged(kiln_kernels_get(KILN_BACKEND_CPU));
    test_fast();
    return TEST_DONE();
}

static void test_ops(const kiln_kernels_t *kk) {

    SUB_TEST(nm("matmul (with and without bias)", kk));
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

    SUB_TEST(nm("layernorm", kk));
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

    SUB_TEST(nm("gelu (erf) and add", kk));
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

    SUB_TEST(nm("softmax (incl. a fully masked row)", kk));
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

    SUB_TEST(nm("attention: full and causal, strided fused QKV", kk));
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

    SUB_TEST(nm("conv1d: stride 1 and 2, zero padding", kk));
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

    SUB_TEST(nm("logmel: mel projection + log10 floor", kk));
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

    SUB_TEST(nm("attention_kv: rows with own and shared keys, odd lengths", kk));
    {
        /* S rows; rows 1-3 share keys (a window's beams), row 4 has 5 keys */
        const int S = 6, H = 3, D = 64, C = H * D, ldkt = 40, Tmax = 37;
        const int Tk[6] = {37, 20, 20, 20, 5, 1};
        float *q = rnd((size_t)S * C), *kts[6], *vs[6];
        for (int s = 0; s < S; s++) {
            kts[s] = (s == 2 || s == 3) ? kts[1] : rnd((size_t)C * ldkt);
            vs[s] = (s == 2 || s == 3) ? vs[1] : rnd((size_t)Tmax * C);
        }
        float *o = malloc(sizeof(float) * S * C), *r = malloc(sizeof(float) * S * C);
        float *scr = malloc(sizeof(float) * S * Tmax);
        kk->attention_kv(o, C, q, C, (const float *const *)kts, ldkt, (const float *const *)vs,
                         C, Tk, S, H, D, scr);
        double sc[64], pr[64];
        for (int s = 0; s < S; s++)
            for (int h = 0; h < H; h++) {
                for (int j = 0; j < Tk[s]; j++) {
                    double acc = 0;
                    for (int e = 0; e < D; e++)
                        acc += (double)q[s * C + h * D + e] * kts[s][(h * D + e) * ldkt + j];
                    sc[j] = acc / sqrt((double)D);
                }
                naive_softmax(pr, sc, Tk[s]);
                for (int d = 0; d < D; d++) {
                    double acc = 0;
                    for (int j = 0; j < Tk[s]; j++)
                        acc += pr[j] * vs[s][j * C + h * D + d];
                    r[s * C + h * D + d] = (float)acc;
                }
            }
        check("attention_kv", o, r, (size_t)S * C, TOL);
        for (int s = 0; s < S; s++)
            if (s != 2 && s != 3) {
                free(kts[s]);
                free(vs[s]);
            }
        free(q); free(o); free(r); free(scr);
    }
    SUB_TEST_PASS();

    SUB_TEST(nm("matmul_packed: 1 to 13 rows, OC not a multiple of 16", kk));
    {
        const int C = 48, OC = 37;
        float *w = rnd((size_t)OC * C), *b = rnd(OC), *x = rnd(13 * C);
        float *wp = malloc(sizeof(float) * kiln_packed_size(OC, C));
        float *o = malloc(sizeof(float) * 13 * OC), *r = malloc(sizeof(float) * 13 * OC);
        TEST_CHECK(kiln_packed_size(OC, C) == (size_t)48 * C, "packed size");
        kiln_pack16_cpu(wp, w, OC, C);
        const int Ns[4] = {1, 3, 8, 13};
        for (int i = 0; i < 4; i++) {
            kk->matmul_packed(o, x, wp, i % 2 ? b : NULL, Ns[i], C, OC);
            naive_matmul(r, x, w, i % 2 ? b : NULL, Ns[i], C, OC);
            check("matmul_packed", o, r, (size_t)Ns[i] * OC, TOL);
        }
        free(w); free(b); free(x); free(wp); free(o); free(r);
    }
    SUB_TEST_PASS();

    SUB_TEST(nm("data movement: embed, kv_append, gather_rows, add_rowbias, copy2d, "
                "transpose (exact)", kk));
    {
        const int V = 11, P = 9, C = 21, N = 5, tmax = 13;
        float *te = rnd((size_t)V * C), *pe = rnd((size_t)P * C), *o = rnd((size_t)N * C);
        const int tok[5] = {3, 0, 10, 3, 7}, pos[5] = {0, 8, 4, 4, 2};
        kk->embed(o, te, pe, tok, pos, N, C);
        int bad = 0;
        for (int r = 0; r < N; r++)
            for (int c = 0; c < C; c++)
                bad += o[r * C + c] != te[tok[r] * C + c] + pe[pos[r] * C + c];
        TEST_CHECK(bad == 0, "embed: %d values differ", bad);
        /* rows 0 and 1 append to one cache (columns 3 and 5), row 2 to another */
        const int ldx = 3 * C, apos[3] = {3, 5, 0};
        float *kv = rnd((size_t)3 * ldx), *kt0 = rnd((size_t)C * tmax), *v0 = rnd((size_t)tmax * C);
        float *kt1 = rnd((size_t)C * tmax), *v1 = rnd((size_t)tmax * C);
        float *kt0r = malloc(sizeof(float) * C * tmax), *v0r = malloc(sizeof(float) * tmax * C);
        memcpy(kt0r, kt0, sizeof(float) * C * tmax);
        memcpy(v0r, v0, sizeof(float) * tmax * C);
        for (int r = 0; r < 2; r++)
            for (int c = 0; c < C; c++) {
                kt0r[c * tmax + apos[r]] = kv[r * ldx + C + c];
                v0r[apos[r] * C + c] = kv[r * ldx + 2 * C + c];
            }
        float *kts[3] = {kt0, kt0, kt1}, *vs[3] = {v0, v0, v1};
        kk->kv_append(kts, tmax, vs, C, kv + C, kv + 2 * C, ldx, apos, 3, C);
        TEST_CHECK(!memcmp(kt0, kt0r, sizeof(float) * C * tmax) &&
                       !memcmp(v0, v0r, sizeof(float) * tmax * C), "kv_append: shared cache");
        bad = 0;
        for (int c = 0; c < C; c++)
            bad += kt1[c * tmax] != kv[2 * ldx + C + c] || v1[c] != kv[2 * ldx + 2 * C + c];
        TEST_CHECK(bad == 0, "kv_append: second cache, %d values differ", bad);
        const int idx[3] = {4, 0, 2};
        float *g = malloc(sizeof(float) * 3 * C);
        kk->gather_rows(g, o, idx, 3, C);
        bad = 0;
        for (int i = 0; i < 3; i++)
            bad += memcmp(g + i * C, o + idx[i] * C, sizeof(float) * C) != 0;
        TEST_CHECK(bad == 0, "gather_rows: %d rows differ", bad);
        float *x = rnd((size_t)C * tmax), *x0 = malloc(sizeof(float) * C * tmax), *b = rnd(C);
        memcpy(x0, x, sizeof(float) * C * tmax);
        kk->add_rowbias(x, b, C, tmax);
        bad = 0;
        for (int n = 0; n < C; n++)
            for (int t = 0; t < tmax; t++)
                bad += x[n * tmax + t] != x0[n * tmax + t] + b[n];
        TEST_CHECK(bad == 0, "add_rowbias: %d values differ", bad);
        /* copy2d: 4 rows of 6 floats, strides 13 and 21; the gaps stay */
        float *d2 = rnd((size_t)4 * 13), *d20 = malloc(sizeof(float) * 4 * 13);
        memcpy(d20, d2, sizeof(float) * 4 * 13);
        kk->copy2d(d2, 13, x, 21, 4, 6);
        bad = 0;
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 13; j++)
                bad += d2[i * 13 + j] != (j < 6 ? x[i * 21 + j] : d20[i * 13 + j]);
        TEST_CHECK(bad == 0, "copy2d: %d values differ", bad);
        kk->copy2d(d2, 6, x, 6, 4, 6);
        TEST_CHECK(!memcmp(d2, x, sizeof(float) * 24), "copy2d: contiguous");
        float *tr = malloc(sizeof(float) * C * tmax);
        kk->transpose(tr, x, C, tmax);
        bad = 0;
        for (int r = 0; r < C; r++)
            for (int c = 0; c < tmax; c++)
                bad += tr[c * C + r] != x[r * tmax + c];
        TEST_CHECK(bad == 0, "transpose: %d values differ", bad);
        free(te); free(pe); free(o); free(kv); free(kt0); free(v0); free(kt1); free(v1);
        free(kt0r); free(v0r); free(g); free(x); free(x0); free(b); free(d2); free(d20);
        free(tr);
    }
    SUB_TEST_PASS();
}

/* ---- ragged batches: im2col/col2im + matmul against naive convolutions -- */

static float leaky(float x, float s) { return x < 0.0f ? s * x : x; }

/* off[0..B] of back-to-back sequences of lengths len[0..B-1] */
static void offsets(int *off, const int *len, int B) {
    off[0] = 0;
    for (int b = 0; b < B; b++)
        off[b + 1] = off[b] + len[b];
}

/*
 * A dilated "same" conv1d (padding dil * (K - 1) / 2, zeros past the ends,
 * leaky ReLU of slope on the input, no bias) of ONE sequence x [T, C] with
 * weight [OC, K, C], in double: the per-sequence truth the ragged batch
 * must reproduce.
 */
static void naive_conv_same(float *out, const float *x, const float *w, int T, int C, int OC,
                            int K, int dil, float slope) {
    int pad = dil * (K - 1) / 2;
    for (int t = 0; t < T; t++)
        for (int oc = 0; oc < OC; oc++) {
            double acc = 0;
            for (int k = 0; k < K; k++) {
                int ti = t + k * dil - pad;
                if (ti < 0 || ti >= T)
                    continue;
                for (int c = 0; c < C; c++)
                    acc += (double)w[(oc * K + k) * C + c] * leaky(x[ti * C + c], slope);
            }
            out[t * OC + oc] = (float)acc;
        }
}

/*
 * ConvTranspose1d of ONE sequence x [T, C], weight wt [C, OC, K] (PyTorch's
 * layout), bias [OC], in the scatter form: out[t * stride + k - pad, oc] +=
 * x[t, c] * wt[c, oc, k], for the L = (T - 1) * stride - 2 * pad + K
 * output rows; in double.
 */
static void naive_conv_transposed(float *out, const float *x, const float *wt, const float *bias,
                                  int T, int C, int OC, int K, int stride, int pad) {
    int L = (T - 1) * stride - 2 * pad + K;
    double *acc = calloc((size_t)L * OC, sizeof(double));
    for (int t = 0; t < T; t++)
        for (int k = 0; k < K; k++) {
            int o = t * stride + k - pad;
            if (o < 0 || o >= L)
                continue;
            for (int oc = 0; oc < OC; oc++)
                for (int c = 0; c < C; c++)
                    acc[o * OC + oc] += (double)x[t * C + c] * wt[(c * OC + oc) * K + k];
        }
    for (int i = 0; i < L * OC; i++)
        out[i] = (float)(acc[i] + bias[i % OC]);
    free(acc);
}

/*
 * im2col + matmul over a ragged batch of B = 3 sequences of lengths 5, 1,
 * 9 against the naive conv of each sequence alone. @returns the NMSE of
 * rows [r0, r0 + nr) (im2col'd as one chunk). \p off_used is the offsets
 * the op is given (the truth always uses the real lengths): a wrong one
 * must give a large error.
 */
static double ragged_conv_err(const kiln_kernels_t *kk, const int *off_used, int r0, int nr,
                              int K, int dil, float slope) {
    const int len[3] = {5, 1, 9}, B = 3, C = 6, OC = 5;
    int off[4];
    offsets(off, len, B);
    const int N = off[B];
    float *x = rnd((size_t)N * C), *w = rnd((size_t)OC * K * C);
    float *truth = malloc(sizeof(float) * N * OC), *col = malloc(sizeof(float) * nr * K * C);
    float *o = malloc(sizeof(float) * nr * OC);
    for (int b = 0; b < B; b++) /* each sequence alone, from its own rows */
        naive_conv_same(truth + off[b] * OC, x + off[b] * C, w, len[b], C, OC, K, dil, slope);
    kk->im2col(col, x, off_used, B, r0, nr, C, K, dil, slope);
    kk->matmul(o, col, w, NULL, nr, K * C, OC);
    double e = kiln_nmse(o, truth + r0 * OC, (size_t)nr * OC);
    free(x); free(w); free(truth); free(col); free(o);
    return e;
}

/*
 * matmul with the weight re-laid [K * OC, C] (w2[k * OC + oc, c] =
 * wt[c, oc, k]) + col2im over lengths 5, 1, 9, against the naive
 * transposed conv of each sequence alone. @returns the NMSE; \p in_used
 * is the input offsets col2im is given (as above).
 */
static double ragged_convt_err(const kiln_kernels_t *kk, const int *in_used, int K, int stride,
                               int pad) {
    const int len[3] = {5, 1, 9}, B = 3, C = 6, OC = 5;
    int in_off[4], out_off[4], olen[3];
    offsets(in_off, len, B);
    for (int b = 0; b < B; b++)
        olen[b] = (len[b] - 1) * stride - 2 * pad + K;
    offsets(out_off, olen, B);
    const int N = in_off[B], n_out = out_off[B];
    float *x = rnd((size_t)N * C), *wt = rnd((size_t)C * OC * K), *bias = rnd(OC);
    float *w2 = malloc(sizeof(float) * K * OC * C), *y = malloc(sizeof(float) * N * K * OC);
    float *truth = malloc(sizeof(float) * n_out * OC), *o = malloc(sizeof(float) * n_out * OC);
    for (int k = 0; k < K; k++)
        for (int oc = 0; oc < OC; oc++)
            for (int c = 0; c < C; c++)
                w2[(k * OC + oc) * C + c] = wt[(c * OC + oc) * K + k];
    for (int b = 0; b < B; b++)
        naive_conv_transposed(truth + out_off[b] * OC, x + in_off[b] * C, wt, bias, len[b], C,
                              OC, K, stride, pad);
    kk->matmul(y, x, w2, NULL, N, C, K * OC);
    kk->col2im(o, y, bias, in_used, out_off, B, n_out, OC, K, stride, pad);
    double e = kiln_nmse(o, truth, (size_t)n_out * OC);
    free(x); free(wt); free(bias); free(w2); free(y); free(truth); free(o);
    return e;
}

static void test_ragged(const kiln_kernels_t *kk) {
    const int len[3] = {5, 1, 9};
    int off[4];
    offsets(off, len, 3);

    SUB_TEST(nm("ragged im2col + matmul = per-sequence dilated conv (lengths 5, 1, 9)", kk));
    {
        const int Ks[2] = {3, 7}, dils[2] = {1, 2};
        for (int ki = 0; ki < 2; ki++)
            for (int di = 0; di < 2; di++) {
                int K = Ks[ki], dil = dils[di];
                double e = ragged_conv_err(kk, off, 0, off[3], K, dil, 0.1f);
                TEST_CHECK(e <= TOL, "K %d dil %d: nmse %.3g", K, dil, e);
                /* a chunk of rows 3 .. 12, starting and ending inside sequences */
                e = ragged_conv_err(kk, off, 3, 10, K, dil, 0.1f);
                TEST_CHECK(e <= TOL, "K %d dil %d, rows 3+10: nmse %.3g", K, dil, e);
            }
        double e = ragged_conv_err(kk, off, 0, off[3], 3, 1, 1.0f);
        TEST_CHECK(e <= TOL, "slope 1 (identity): nmse %.3g", e);
        /* the check can fail: an offset off by one (lengths 6, 0, 9) is caught */
        const int bad[4] = {0, 6, 6, 15};
        e = ragged_conv_err(kk, bad, 0, off[3], 3, 1, 0.1f);
        TEST_CHECK(e > 1e-4, "wrong offsets not caught: nmse %.3g", e);
    }
    SUB_TEST_PASS();

    SUB_TEST(nm("ragged matmul + col2im = per-sequence transposed conv (s2 K4 p1, s8 K16 p4)",
                kk));
    {
        double e = ragged_convt_err(kk, off, 4, 2, 1);
        TEST_CHECK(e <= TOL, "s2 K4 p1: nmse %.3g", e);
        e = ragged_convt_err(kk, off, 16, 8, 4);
        TEST_CHECK(e <= TOL, "s8 K16 p4: nmse %.3g", e);
        e = ragged_convt_err(kk, off, 3, 1, 1); /* stride 1: taps overlap */
        TEST_CHECK(e <= TOL, "s1 K3 p1: nmse %.3g", e);
        const int bad[4] = {0, 6, 6, 15};
        e = ragged_convt_err(kk, bad, 4, 2, 1);
        TEST_CHECK(e > 1e-4, "wrong input offsets not caught: nmse %.3g", e);
    }
    SUB_TEST_PASS();

    SUB_TEST(nm("act, gate, axpby: closed forms", kk));
    {
        /* tanh(ln(3) / 2) = 1/2, sigmoid(ln 3) = 3/4, sigmoid(-ln 3) = 1/4 */
        const float h = 0.54930614433405f, l3 = 1.09861228866811f;
        float x[6] = {-2.0f, -0.5f, 0.0f, 0.5f, 3.0f, h}, o[6];
        const float lk[6] = {-0.4f, -0.1f, 0.0f, 0.5f, 3.0f, h};
        const float th[6] = {-0.96402758f, -0.46211716f, 0.0f, 0.46211716f, 0.99505475f, 0.5f};
        kk->act(o, x, 6, KILN_ACT_LEAKY, 0.2f);
        for (int i = 0; i < 6; i++)
            TEST_CHECK(fabsf(o[i] - lk[i]) <= 1e-7f, "leaky(%g) = %g, not %g", x[i], o[i], lk[i]);
        kk->act(o, x, 6, KILN_ACT_LEAKY, 1.0f);
        TEST_CHECK(!memcmp(o, x, sizeof(x)), "leaky slope 1 is not the identity");
        kk->act(x, x, 6, KILN_ACT_TANH, 0.0f); /* in place */
        for (int i = 0; i < 6; i++)
            TEST_CHECK(fabsf(x[i] - th[i]) <= 2e-7f, "tanh[%d] = %.8g, not %.8g", i, x[i], th[i]);
        /* two rows of [a | g], C = 3: out = tanh(a) * sigmoid(g) */
        const float gin[12] = {0.0f, h, 20.0f, 0.0f, l3, -l3, -h, 0.0f, 1.0f, 0.0f, 0.0f, 100.0f};
        const float gex[6] = {0.0f, 0.375f, 0.25f, -0.25f, 0.0f, 0.76159416f};
        float g[6];
        kk->gate(g, gin, 2, 3);
        for (int i = 0; i < 6; i++)
            TEST_CHECK(fabsf(g[i] - gex[i]) <= 2e-7f, "gate[%d] = %.8g, not %.8g", i, g[i], gex[i]);
        float a[3] = {1.0f, 2.0f, 0.5f}, b[3] = {1.0f, 0.0f, -1.0f}, r[3];
        kk->axpby(r, 2.0f, a, -3.0f, b, 3);
        TEST_CHECK(r[0] == -1.0f && r[1] == 4.0f && r[2] == 4.0f, "axpby %g %g %g", r[0], r[1],
                   r[2]);
        kk->axpby(a, 2.0f, a, -3.0f, b, 3); /* out == x */
        TEST_CHECK(!memcmp(a, r, sizeof(r)), "axpby in place %g %g %g", a[0], a[1], a[2]);
    }
    SUB_TEST_PASS();
}

/* ---- the fast backend at model sizes, its math, and the pool ------------- */

typedef struct {
    long *hits;
    int n;
} pool_ctx_t;

static void pool_leaf(void *vctx, int t, int thread) {
    pool_ctx_t *c = vctx;
    (void)thread;
    __atomic_fetch_add(&c->hits[t], 1, __ATOMIC_RELAXED);
}

static void pool_task(void *vctx, int t, int thread) {
    pool_ctx_t *c = vctx;
    __atomic_fetch_add(&c->hits[t], 1, __ATOMIC_RELAXED);
    TEST_CHECK(thread >= 0 && thread < kiln_kernels_threads(), "thread id %d", thread);
    if (t == 0) { /* nested: runs inline */
        long inner[3] = {0};
        pool_ctx_t ic = {inner, 3};
        kiln_parallel_for(3, pool_leaf, &ic);
        TEST_CHECK(inner[0] == 1 && inner[1] == 1 && inner[2] == 1, "nested");
    }
}

static void *pool_thread(void *arg) {
    (void)arg;
    for (int r = 0; r < 200; r++) {
        long hits[37] = {0};
        pool_ctx_t c = {hits, 37};
        kiln_parallel_for(37, pool_task, &c);
        for (int i = 0; i < 37; i++)
            if (hits[i] != 1)
                return (void *)1;
    }
    return NULL;
}

static void test_fast(void) {
    const kiln_kernels_t *ref = kiln_kernels_get(KILN_BACKEND_REF);
    const kiln_kernels_t *fast = kiln_kernels_get(KILN_BACKEND_CPU);

    SUB_TEST("fast vs ref at encoder/decoder sizes (NMSE <= 1e-10)");
    {
        int N = 300, C = 96, OC = 200;
        float *x = rnd((size_t)N * C), *w = rnd((size_t)OC * C), *b = rnd(OC);
        float *o = malloc(sizeof(float) * N * OC), *r = malloc(sizeof(float) * N * OC);
        fast->matmul(o, x, w, b, N, C, OC);
        ref->matmul(r, x, w, b, N, C, OC);
        check("matmul 300 rows", o, r, (size_t)N * OC, TOL);
        fast->matmul(o, x, w, b, 5, C, OC); /* few rows: split by columns */
        ref->matmul(r, x, w, b, 5, C, OC);
        check("matmul 5 rows", o, r, (size_t)5 * OC, TOL);
        free(x); free(w); free(b); free(o); free(r);
        /* attention with several row blocks and heads, causal and not */
        int T = 150, H = 4, D = 32, CC = H * D, ld = 3 * CC;
        float *qkv = rnd((size_t)T * ld), *oa = malloc(sizeof(float) * T * CC),
              *ra = malloc(sizeof(float) * T * CC), *scr = malloc(sizeof(float) * T * T);
        for (int causal = 0; causal <= 1; causal++) {
            fast->attention(oa, CC, qkv, ld, qkv + CC, ld, qkv + 2 * CC, ld, T, T, H, D, causal,
                            scr);
            ref->attention(ra, CC, qkv, ld, qkv + CC, ld, qkv + 2 * CC, ld, T, T, H, D, causal,
                           scr);
            check(causal ? "attention causal 150" : "attention 150", oa, ra, (size_t)T * CC,
                  TOL);
        }
        free(qkv); free(oa); free(ra); free(scr);
        size_t n = 100003;
        float *g = rnd(n), *go = malloc(sizeof(float) * n), *gr = malloc(sizeof(float) * n);
        for (size_t i = 0; i < n; i++)
            g[i] *= 6.0f;
        fast->gelu(go, g, n);
        ref->gelu(gr, g, n);
        check("gelu 100003", go, gr, n, TOL);
        fast->layernorm(go, g, g + 500, g + 1000, 200, 500, 1e-5f);
        ref->layernorm(gr, g, g + 500, g + 1000, 200, 500, 1e-5f);
        check("layernorm 200x500", go, gr, 200 * 500, TOL);
        fast->softmax(go, g, 20, 4999);
        ref->softmax(gr, g, 20, 4999);
        check("softmax 20x4999", go, gr, 20 * 4999, TOL);
        free(g); free(go); free(gr);
    }
    SUB_TEST_PASS();

    SUB_TEST("vector exp and erf against libm");
    {
        /* GELU over [-10, 10] (erf) and softmax of a ramp (exp), absolute error */
        int n = 20001;
        float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
        for (int i = 0; i < n; i++)
            x[i] = -10.0f + 20.0f * i / (n - 1);
        fast->gelu(y, x, (size_t)n);
        double worst = 0;
        for (int i = 0; i < n; i++) {
            double r = 0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0)));
            double e = fabs(y[i] - r) / (fabs(r) > 1 ? fabs(r) : 1);
            worst = e > worst ? e : worst;
        }
        TEST_CHECK(worst < 2e-6, "gelu error %g", worst);
        float row[300], in[300];
        for (int i = 0; i < 300; i++)
            in[i] = row[i] = -87.0f + 0.3f * i;
        row[7] = -INFINITY;
        fast->softmax(row, row, 1, 300);
        double z = 0, mx = in[299];
        for (int i = 0; i < 300; i++)
            z += i == 7 ? 0 : exp((double)in[i] - mx);
        worst = 0;
        for (int i = 0; i < 300; i++) {
            double r = i == 7 ? 0 : exp((double)in[i] - mx) / z;
            double e = fabs(row[i] - r) / (r > 1e-30 ? r : 1);
            worst = r > 1e-30 && e > worst ? e : worst;
        }
        /* x - max is rounded to float first (|x - max| ~ 90: half an ulp is 4e-6) */
        TEST_CHECK(row[7] == 0.0f && worst < 1e-5, "softmax rel error %g, masked %g", worst,
                   row[7]);
        free(x); free(y);
    }
    SUB_TEST_PASS();

    SUB_TEST("row statistics (max, first argmax, sums of exp per part)");
    {
        int n = 1003, split = 517;
        float *x = rnd(n);
        x[100] = 3.0f;
        x[300] = 3.0f; /* tie: the first wins */
        x[900] = 2.5f;
        x[5] = -INFINITY;
        kiln_row_stats_t st;
        kiln_row_stats(x, n, split, &st);
        double m = 3.0, s0 = 0, s1 = 0;
        for (int i = 0; i < n; i++)
            *(i < split ? &s0 : &s1) += x[i] == -INFINITY ? 0 : exp(x[i] - m);
        TEST_CHECK(st.max[0] == 3.0f && st.argmax[0] == 100, "part 0: %g at %d", st.max[0],
                   st.argmax[0]);
        TEST_CHECK(st.max[1] == 2.5f && st.argmax[1] == 900, "part 1: %g at %d", st.max[1],
                   st.argmax[1]);
        TEST_CHECK(fabs(st.sum[0] - s0) < 1e-5 * s0 && fabs(st.sum[1] - s1) < 1e-5 * s1,
                   "sums %g %g vs %g %g", st.sum[0], st.sum[1], s0, s1);
        for (int i = 0; i < split; i++)
            x[i] = -INFINITY;
        kiln_row_stats(x, n, split, &st);
        TEST_CHECK(st.argmax[0] == -1 && st.sum[0] == 0.0 && st.argmax[1] == 900, "masked part");
        free(x);
    }
    SUB_TEST_PASS();

    SUB_TEST("thread pool: every task once, nested inline, two callers, resizing");
    {
        for (int nt = 1; nt <= 3; nt++) {
            kiln_kernels_set_threads(nt);
            long hits[101] = {0};
            pool_ctx_t c = {hits, 101};
            kiln_parallel_for(101, pool_task, &c);
            for (int i = 0; i < 101; i++)
                TEST_CHECK(hits[i] == 1, "%d threads: task %d ran %ld times", nt, i, hits[i]);
            TEST_CHECK(kiln_kernels_threads() == nt, "threads %d", kiln_kernels_threads());
        }
        pthread_t th[2];
        void *rv[2] = {0};
        for (int i = 0; i < 2; i++)
            pthread_create(&th[i], NULL, pool_thread, NULL);
        for (int i = 0; i < 2; i++)
            pthread_join(th[i], &rv[i]);
        TEST_CHECK(!rv[0] && !rv[1], "concurrent callers lost tasks");
        float *s1 = kiln_scratch(0, 1000), *s2 = kiln_scratch(1, 10);
        TEST_CHECK(s1 && s2 && s1 != s2 && ((uintptr_t)s1 & 63) == 0, "scratch");
        TEST_CHECK(kiln_kernels_take_error() == 0, "error flag set");
    }
    SUB_TEST_PASS();
}
