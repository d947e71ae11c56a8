/*
 * tests/0110-kernels_cuda.c - every op of the CUDA backend against the CPU
 * reference ("ref" table), on random seeded input, by NMSE.
 *
 * Skips (exit 77) when no CUDA table is registered: a CPU-only build, or a
 * CUDA build on a machine without a GPU. It uses only the dispatch table
 * (kiln_kernels_get(KILN_BACKEND_CUDA) and the table's alloc / upload /
 * download), so it compiles and links in every build.
 *
 * Tolerances (NMSE = sum (gpu - ref)^2 / sum ref^2):
 *   1e-10  every op in fp32: the GPU computes the same float32 formulas
 *          (expf/erff/log10f within 2 ulp, FFT and GEMM sums in another
 *          order); measured values are ~1e-14;
 *   1e-5   matmul/conv1d with "tf32" or "fp16" inputs (10-11 mantissa bits:
 *          relative error per product ~5e-4, NMSE ~1e-7);
 *   1e-4   with "bf16" inputs (8 bits: ~4e-3 per product, NMSE ~1e-5).
 *   0      the data movement ops (embed, kv_append, gather_rows, add_rowbias,
 *          copy2d, transpose): exact; and the ragged-batch ops im2col,
 *          col2im, act (leaky) and axpby: the CPU's float operations in its
 *          order, no FMA, so exact too;
 *   1e-10  and max abs diff <= 1e-6: act (tanh) and gate (tanhf/expf);
 *   1e-10  the VITS text ops: rel_attention (another summation order, an
 *          online softmax over key chunks), dwconv and spline_inv (also max
 *          abs diff <= 1e-5 and 1e-4: FMA contraction); expand 1e-12.
 * Each output buffer has 64 sentinel floats before and after it that must
 * come back untouched (overflow check). On a mismatch the first values are
 * printed. The shapes cover several blocks and ragged edges (the kernels
 * have one block size each; the sizes make every tile and mask path run).
 * KILN_CUDA_TIMING=1 also prints the time per call of each op (synchronised
 * wall time, 20 calls after a warm-up; no L2 flush: indicative only).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kiln/kernels.h"
#include "tests/test.h"

#define GUARD 64
#define SENTINEL 12345.678f

static const kiln_kernels_t *G, *R;
static int timing;

static uint64_t rs = 0x5EEDull;
static float frand(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (float)((double)(rs >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}
static float *rnd(size_t n, float scale) {
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        p[i] = scale * frand();
    return p;
}

/* Device copy of n host floats. */
static float *up(const float *h, size_t n) {
    float *d = G->alloc(n * sizeof(float));
    TEST_ASSERT(d != NULL, "device alloc of %zu floats", n);
    G->upload(d, h, n * sizeof(float));
    return d;
}

/* Output buffer of n floats with sentinels; returns the inner pointer. */
static float *out_buf(size_t n) {
    float *h = malloc((n + 2 * GUARD) * sizeof(float));
    for (size_t i = 0; i < n + 2 * GUARD; i++)
        h[i] = SENTINEL;
    float *d = up(h, n + 2 * GUARD);
    free(h);
    return d + GUARD;
}

/* Downloads n floats of an out_buf, checks its sentinels, frees it. */
static float *down(float *d, size_t n, const char *what) {
    float *h = malloc((n + 2 * GUARD) * sizeof(float));
    G->sync();
    G->download(h, d - GUARD, (n + 2 * GUARD) * sizeof(float));
    for (int i = 0; i < GUARD; i++)
        TEST_CHECK(h[i] == SENTINEL && h[GUARD + n + i] == SENTINEL,
                   "%s: sentinel %d overwritten (%g / %g)", what, i, h[i], h[GUARD + n + i]);
    G->free(d - GUARD);
    float *r = malloc(n * sizeof(float));
    memcpy(r, h + GUARD, n * sizeof(float));
    free(h);
    TEST_CHECK(kiln_kernels_take_error() == 0, "%s: a CUDA call failed", what);
    return r;
}

static void cmp(const char *what, const float *got, const float *ref, size_t n, double tol) {
    double e = kiln_nmse(got, ref, n);
    TEST_CHECK(e <= tol, "%s: nmse %.3g > %.3g", what, e, tol);
    if (e > tol) {
        int shown = 0;
        for (size_t i = 0; i < n && shown < 5; i++)
            if (fabsf(got[i] - ref[i]) > 1e-4f * (1.0f + fabsf(ref[i]))) {
                printf("#   [%zu] gpu %.7g ref %.7g\n", i, got[i], ref[i]);
                shown++;
            }
    }
    printf("# %-40s nmse %.3g (tol %.0e)\n", what, e, tol);
}

static double now_(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
/* seconds per call of \p call (20 calls after a warm-up, synchronised) */
#define SECS(secs, call)                                                                 \
    do {                                                                                 \
        call;                                                                            \
        G->sync();                                                                       \
        double t0_ = now_();                                                             \
        for (int r_ = 0; r_ < 20; r_++)                                                  \
            call;                                                                        \
        G->sync();                                                                       \
        secs = (now_() - t0_) / 20;                                                      \
    } while (0)

#define TIME(what, call)                                                                 \
    do {                                                                                 \
        if (timing) {                                                                    \
            double s_;                                                                   \
            SECS(s_, call);                                                              \
            printf("# time %-36s %10.1f us\n", what, s_ * 1e6);                          \
        }                                                                                \
    } while (0)

static void test_matmul(const char *prec, double tol) {
    char name[96];
    snprintf(name, sizeof(name), "matmul %s (1500x384x1152, bias)", prec);
    SUB_TEST(name);
    TEST_CHECK(G->set_precision && G->set_precision(prec) == 0, "precision %s", prec);
    int N = 1500, C = 384, OC = 1152;
    float *x = rnd((size_t)N * C, 1), *w = rnd((size_t)OC * C, 0.1f), *b = rnd(OC, 1);
    float *r = malloc(sizeof(float) * N * OC);
    R->matmul(r, x, w, b, N, C, OC);
    float *dx = up(x, (size_t)N * C), *dw = up(w, (size_t)OC * C), *db = up(b, OC);
    float *dout = out_buf((size_t)N * OC);
    G->matmul(dout, dx, dw, db, N, C, OC);
    TIME(name, G->matmul(dout, dx, dw, db, N, C, OC));
    float *o = down(dout, (size_t)N * OC, name);
    cmp(name, o, r, (size_t)N * OC, tol);
    /* a decoder-step shape: 5 rows, no bias */
    R->matmul(r, x, w, NULL, 5, C, OC);
    dout = out_buf((size_t)5 * OC);
    G->matmul(dout, dx, dw, NULL, 5, C, OC);
    free(o);
    o = down(dout, (size_t)5 * OC, name);
    cmp("matmul 5 rows, no bias", o, r, (size_t)5 * OC, tol);
    G->free(dx);
    G->free(dw);
    G->free(db);
    free(x); free(w); free(b); free(r); free(o);
    G->set_precision("fp32");
    SUB_TEST_PASS();
}

/* Device copy of n host ints (or pointers: bytes). */
static void *up_bytes(const void *h, size_t bytes) {
    void *d = G->alloc(bytes);
    TEST_ASSERT(d != NULL, "device alloc of %zu bytes", bytes);
    G->upload(d, h, bytes);
    return d;
}

/*
 * The decoder step's data movement at large-v3 widths (C 1280, a 448-column
 * self cache, a 1500-column window): exact (NMSE 0), since the ops only
 * move floats (embed and add_rowbias add once, as the CPU does).
 */
static void test_copy_ops(void) {
    SUB_TEST("data movement: embed, kv_append, gather_rows, add_rowbias, copy2d, transpose");
    const int V = 51866, P = 448, C = 1280, N = 6, tmax = 448, Ta = 1500, M = 128, T0 = 3000;
    const int tok[6] = {50258, 0, 51865, 50258, 7, 220}, pos[6] = {0, 447, 4, 4, 2, 100};
    float *te = rnd((size_t)V * C, 1), *pe = rnd((size_t)P * C, 1);
    float *r = malloc(sizeof(float) * N * C), *o;
    R->embed(r, te, pe, tok, pos, N, C);
    float *dte = up(te, (size_t)V * C), *dpe = up(pe, (size_t)P * C), *d = out_buf((size_t)N * C);
    int *dtok = up_bytes(tok, sizeof(tok)), *dpos = up_bytes(pos, sizeof(pos));
    G->embed(d, dte, dpe, dtok, dpos, N, C);
    TIME("embed 6 rows x 1280", G->embed(d, dte, dpe, dtok, dpos, N, C));
    o = down(d, (size_t)N * C, "embed");
    cmp("embed 6 x 1280", o, r, (size_t)N * C, 0);
    free(o);
    /* gather rows 5, 0, 3 of the embedding output */
    const int idx[3] = {5, 0, 3};
    float *g = malloc(sizeof(float) * 3 * C);
    R->gather_rows(g, r, idx, 3, C);
    float *dr = up(r, (size_t)N * C);
    int *didx = up_bytes(idx, sizeof(idx));
    d = out_buf((size_t)3 * C);
    G->gather_rows(d, dr, didx, 3, C);
    o = down(d, (size_t)3 * C, "gather_rows");
    cmp("gather_rows 3 x 1280", o, g, (size_t)3 * C, 0);
    free(o);
    /* kv_append: rows 0 and 1 into cache A (columns 0 and 447), row 2 into B */
    const int ldx = 3 * C, apos[3] = {0, 447, 4};
    float *kv = rnd((size_t)3 * ldx, 1);
    size_t nk = (size_t)C * tmax;
    float *kA = rnd(nk, 1), *vA = rnd(nk, 1), *kB = rnd(nk, 1), *vB = rnd(nk, 1);
    float *dkA = up(kA, nk), *dvA = up(vA, nk), *dkB = up(kB, nk), *dvB = up(vB, nk);
    float *hk[3] = {kA, kA, kB}, *hv[3] = {vA, vA, vB};
    float *pk[3] = {dkA, dkA, dkB}, *pv[3] = {dvA, dvA, dvB};
    float **dpk = up_bytes(pk, sizeof(pk)), **dpv = up_bytes(pv, sizeof(pv));
    int *dapos = up_bytes(apos, sizeof(apos));
    float *dkv = up(kv, (size_t)3 * ldx);
    R->kv_append(hk, tmax, hv, C, kv + C, kv + 2 * C, ldx, apos, 3, C);
    G->kv_append(dpk, tmax, dpv, C, dkv + C, dkv + 2 * C, ldx, dapos, 3, C);
    TIME("kv_append 3 rows x 1280", G->kv_append(dpk, tmax, dpv, C, dkv + C, dkv + 2 * C, ldx,
                                                 dapos, 3, C));
    const float *host[4] = {kA, vA, kB, vB};
    float *dev[4] = {dkA, dvA, dkB, dvB};
    float *back = malloc(sizeof(float) * nk);
    for (int i = 0; i < 4; i++) {
        G->sync();
        G->download(back, dev[i], sizeof(float) * nk);
        cmp("kv_append caches", back, host[i], nk, 0);
    }
    /* add_rowbias on a cross K^T [C, Ta]; copy2d of 5 columns of it */
    float *x = rnd((size_t)C * Ta, 1), *b = rnd(C, 1);
    float *dx = up(x, (size_t)C * Ta), *db = up(b, C);
    R->add_rowbias(x, b, C, Ta);
    G->add_rowbias(dx, db, C, Ta);
    free(back);
    back = malloc(sizeof(float) * C * Ta);
    G->sync();
    G->download(back, dx, sizeof(float) * C * Ta);
    cmp("add_rowbias 1280 x 1500", back, x, (size_t)C * Ta, 0);
    float *c2 = malloc(sizeof(float) * C * tmax);
    memcpy(c2, kB, sizeof(float) * nk);
    R->copy2d(c2, tmax, back, Ta, C, 5);
    d = out_buf(nk);
    G->upload(d, kB, sizeof(float) * nk);
    G->copy2d(d, tmax, dx, Ta, C, 5);
    o = down(d, nk, "copy2d");
    cmp("copy2d 1280 rows x 5 columns", o, c2, nk, 0);
    free(o);
    TIME("add_rowbias 1280 x 1500", G->add_rowbias(dx, db, C, Ta)); /* after its checks */
    /* transpose of a mel window [M, 3000] -> [3000, M] */
    float *mel = rnd((size_t)M * T0, 1), *mt = malloc(sizeof(float) * M * T0);
    R->transpose(mt, mel, M, T0);
    float *dmel = up(mel, (size_t)M * T0);
    d = out_buf((size_t)M * T0);
    G->transpose(d, dmel, M, T0);
    TIME("transpose 128 x 3000", G->transpose(d, dmel, M, T0));
    o = down(d, (size_t)M * T0, "transpose");
    cmp("transpose 128 x 3000", o, mt, (size_t)M * T0, 0);
    free(o);
    G->free(dte); G->free(dpe); G->free(dtok); G->free(dpos); G->free(dr); G->free(didx);
    G->free(dkA); G->free(dvA); G->free(dkB); G->free(dvB); G->free(dpk); G->free(dpv);
    G->free(dapos); G->free(dkv); G->free(dx); G->free(db); G->free(dmel);
    free(te); free(pe); free(r); free(g); free(kv); free(kA); free(vA); free(kB); free(vB);
    free(back); free(x); free(b); free(c2); free(mel); free(mt);
    SUB_TEST_PASS();
}

/* @returns max |got - ref| over n values */
static double max_abs(const float *got, const float *ref, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fabs((double)got[i] - ref[i]) > m ? fabs((double)got[i] - ref[i]) : m;
    return m;
}

/* the transcendental ops (tanh, gate): NMSE and max abs diff (both written in the header) */
static void cmp_tr(const char *what, const float *got, const float *ref, size_t n) {
    cmp(what, got, ref, n, 1e-10);
    double m = max_abs(got, ref, n);
    TEST_CHECK(m <= 1e-6, "%s: max abs diff %.3g > 1e-6", what, m);
}

/* off[0..B] of back-to-back sequences of lengths len[0..B-1] (times mul) */
static void offsets(int *off, const int *len, int B, int mul) {
    off[0] = 0;
    for (int b = 0; b < B; b++)
        off[b + 1] = off[b] + len[b] * mul;
}

/*
 * The ragged-batch ops of the speech decoder (kernels/cuda/ragged.cu):
 * B = 3 sequences of unequal lengths with a length-1 one in the middle (its
 * taps all fall off its own ends), channel counts that take the float4
 * path (192, 64) and the scalar one (33, 7), a chunk of rows that starts
 * and ends inside sequences, dilations 1 and 3, K = 1, 3, 7, slopes 0.1 and
 * 1; col2im at the decoder's upsampling shapes (stride 8 / K 16 / pad 4 and
 * stride 2 / K 4 / pad 1), with and without bias. Tolerances: 0 (exact)
 * for im2col, col2im, the leaky ReLU and axpby (the same float operations
 * in the same order as the CPU, no FMA); NMSE <= 1e-10 and max abs diff
 * <= 1e-6 for tanh and the gate (tanhf/expf within 2 ulp of glibc's).
 */
static void test_ragged(void) {
    const int len[3] = {700, 1, 333}, B = 3;
    int off[4];
    offsets(off, len, B, 1);
    const int Nr = off[B];
    int *doff = up_bytes(off, sizeof(off));
    char name[128];

    SUB_TEST("ragged im2col: B=3 (700, 1, 333), K 1/3/7, dil 1/3, slope 0.1/1, exact");
    {
        const int Cs[2] = {192, 33}, Ks[3] = {1, 3, 7}, dils[2] = {1, 3};
        const float slopes[2] = {0.1f, 1.0f};
        for (int ci = 0; ci < 2; ci++) {
            int C = Cs[ci];
            float *x = rnd((size_t)Nr * C, 1), *dx = up(x, (size_t)Nr * C);
            float *r = malloc(sizeof(float) * Nr * 7 * C);
            for (int ki = 0; ki < 3; ki++)
                for (int di = 0; di < 2; di++)
                    for (int si = 0; si < 2; si++) {
                        int K = Ks[ki], dil = dils[di];
                        /* full batch, then rows 5 .. Nr-5 (a chunk) */
                        int r0 = si ? 5 : 0, nr = si ? Nr - 9 : Nr;
                        size_t n = (size_t)nr * K * C;
                        snprintf(name, sizeof(name), "im2col C%d K%d dil%d slope %g rows %d+%d",
                                 C, K, dil, slopes[si], r0, nr);
                        R->im2col(r, x, off, B, r0, nr, C, K, dil, slopes[si]);
                        float *d = out_buf(n);
                        G->im2col(d, dx, doff, B, r0, nr, C, K, dil, slopes[si]);
                        if (ki == 2 && di == 0 && si == 0)
                            TIME(name, G->im2col(d, dx, doff, B, r0, nr, C, K, dil, slopes[si]));
                        float *o = down(d, n, name);
                        cmp(name, o, r, n, 0);
                        free(o);
                    }
            G->free(dx);
            free(x); free(r);
        }
    }
    SUB_TEST_PASS();

    SUB_TEST("ragged col2im: s8 K16 p4 and s2 K4 p1, OC 64/7, bias and none, exact");
    {
        const int cfg[2][3] = {{8, 16, 4}, {2, 4, 1}}, OCs[2] = {64, 7};
        for (int gi = 0; gi < 2; gi++)
            for (int oi = 0; oi < 2; oi++) {
                int stride = cfg[gi][0], K = cfg[gi][1], pad = cfg[gi][2], OC = OCs[oi];
                int out_off[4];
                offsets(out_off, len, B, stride); /* (T - 1) * s - 2p + K = T * s here */
                int n_out = out_off[B];
                size_t ny = (size_t)Nr * K * OC, n = (size_t)n_out * OC;
                float *y = rnd(ny, 1), *bias = rnd(OC, 1), *r = malloc(sizeof(float) * n);
                float *dy = up(y, ny), *db = up(bias, OC);
                int *dout_off = up_bytes(out_off, sizeof(out_off));
                for (int wb = 0; wb <= 1; wb++) {
                    snprintf(name, sizeof(name), "col2im s%d K%d p%d OC%d%s", stride, K, pad, OC,
                             wb ? " bias" : "");
                    R->col2im(r, y, wb ? bias : NULL, off, out_off, B, n_out, OC, K, stride, pad);
                    float *d = out_buf(n);
                    G->col2im(d, dy, wb ? db : NULL, doff, dout_off, B, n_out, OC, K, stride,
                              pad);
                    if (oi == 0 && wb)
                        TIME(name, G->col2im(d, dy, db, doff, dout_off, B, n_out, OC, K, stride,
                                             pad));
                    float *o = down(d, n, name);
                    cmp(name, o, r, n, 0);
                    free(o);
                }
                G->free(dy); G->free(db); G->free(dout_off);
                free(y); free(bias); free(r);
            }
    }
    SUB_TEST_PASS();

    SUB_TEST("act (leaky 0.1/1, tanh; in place, unaligned), gate (C 192/33), axpby (aliased)");
    {
        const size_t n = 100003; /* odd: the float4 loop and its scalar tail */
        float *x = rnd(n, 4), *y = rnd(n, 4), *r = malloc(sizeof(float) * n), *o;
        float *dx = up(x, n), *dy = up(y, n), *d;
        const float params[2] = {0.1f, 1.0f};
        for (int pi = 0; pi < 2; pi++) {
            R->act(r, x, n, KILN_ACT_LEAKY, params[pi]);
            d = out_buf(n);
            G->act(d, dx, n, KILN_ACT_LEAKY, params[pi]);
            o = down(d, n, "act leaky");
            cmp(pi ? "act leaky 1" : "act leaky 0.1", o, r, n, 0);
            free(o);
        }
        R->act(r, x, n, KILN_ACT_TANH, 0);
        d = out_buf(n);
        G->act(d, dx, n, KILN_ACT_TANH, 0);
        TIME("act tanh 100003", G->act(d, dx, n, KILN_ACT_TANH, 0));
        o = down(d, n, "act tanh");
        cmp_tr("act tanh", o, r, n);
        free(o);
        /* in place, from an unaligned start (the scalar path) */
        d = out_buf(n);
        G->upload(d, x, n * sizeof(float));
        G->act(d + 1, d + 1, n - 1, KILN_ACT_LEAKY, 0.1f);
        R->act(r, x, n, KILN_ACT_LEAKY, 0.1f);
        r[0] = x[0];
        o = down(d, n, "act in place");
        cmp("act leaky in place, unaligned", o, r, n, 0);
        free(o);
        /* gate: [N, 2C] -> [N, C] */
        const int N = 777, Cs[2] = {192, 33};
        float *gx = rnd((size_t)N * 2 * 192, 4), *dgx = up(gx, (size_t)N * 2 * 192);
        for (int ci = 0; ci < 2; ci++) {
            int C = Cs[ci];
            float *g = malloc(sizeof(float) * N * C);
            R->gate(g, gx, N, C);
            d = out_buf((size_t)N * C);
            G->gate(d, dgx, N, C);
            if (ci == 0)
                TIME("gate 777 x 192", G->gate(d, dgx, N, C));
            o = down(d, (size_t)N * C, "gate");
            cmp_tr(ci ? "gate 777 x 33" : "gate 777 x 192", o, g, (size_t)N * C);
            free(o); free(g);
        }
        G->free(dgx);
        free(gx);
        /* axpby into a fresh buffer, then in place over x */
        R->axpby(r, 0.7f, x, -1.3f, y, n);
        d = out_buf(n);
        G->axpby(d, 0.7f, dx, -1.3f, dy, n);
        TIME("axpby 100003", G->axpby(d, 0.7f, dx, -1.3f, dy, n));
        o = down(d, n, "axpby");
        cmp("axpby", o, r, n, 0);
        free(o);
        d = out_buf(n);
        G->upload(d, x, n * sizeof(float));
        G->axpby(d, 0.7f, d, -1.3f, dy, n);
        o = down(d, n, "axpby in place");
        cmp("axpby out == x", o, r, n, 0);
        free(o);
        G->free(dx); G->free(dy);
        free(x); free(y); free(r);
    }
    SUB_TEST_PASS();
    G->free(doff);
}

/* n floats of a normal distribution of deviation \p sigma (Box-Muller on frand) */
static float *rnd_normal(size_t n, float sigma) {
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        double u = 0.5 * (frand() + 1.0) + 1e-12, v = 0.5 * (frand() + 1.0);
        p[i] = sigma * (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
    }
    return p;
}

/* rel_attention on one ragged batch: lengths len[0..B-1], H heads of D, window W */
static void check_rel_attention(const int *len, int B, int H, int D, int W, const char *name) {
    int *off = malloc(sizeof(int) * (B + 1));
    offsets(off, len, B, 1);
    const int N = off[B], C = H * D;
    size_t nq = (size_t)N * 3 * C, n = (size_t)N * C;
    /* scores of deviation ~3: a peaked softmax, so a wrong key or window shows */
    float *qkv = rnd(nq, 3), *ek = rnd((size_t)(2 * W + 1) * D, 3);
    float *ev = rnd((size_t)(2 * W + 1) * D, 3), *r = malloc(sizeof(float) * n);
    R->rel_attention(r, qkv, ek, ev, off, B, N, H, D, W);
    float *dq = up(qkv, nq), *dek = up(ek, (size_t)(2 * W + 1) * D);
    float *dev = up(ev, (size_t)(2 * W + 1) * D), *d = out_buf(n);
    int *doff = up_bytes(off, sizeof(int) * (B + 1));
    G->rel_attention(d, dq, dek, dev, doff, B, N, H, D, W);
    TIME(name, G->rel_attention(d, dq, dek, dev, doff, B, N, H, D, W));
    float *o = down(d, n, name);
    cmp(name, o, r, n, 1e-10);
    G->free(dq); G->free(dek); G->free(dev); G->free(doff);
    free(off); free(qkv); free(ek); free(ev); free(r); free(o);
}

/*
 * The text-side ops of a VITS voice (kernels/cuda/voice_text.cu) at the
 * joe voice's shapes (C 192 = 2 heads x 96, window 4, 10 spline bins).
 * Tolerances:
 *   rel_attention  NMSE <= 1e-10: expf within 2 ulp, dot products and the
 *                  softmax sums in another order (an online softmax over
 *                  chunks of KILN_RA_CHUNK = 4096 keys: the 4500-row
 *                  sequence takes two chunks; D 400 takes all four
 *                  accumulators of a thread, d = tid + 128 k). At 4500
 *                  keys the fp32 reference is itself 1.3e-11 from a double
 *                  evaluation (averaging cancels), and the kernel run on
 *                  the CPU (no FMA) 1.7e-11 from the reference;
 *   dwconv         max abs diff <= 1e-5: the GPU contracts a += w * x into
 *                  an FMA, the x86 reference rounds the product first;
 *   spline_inv     max abs diff <= 1e-4 and NMSE <= 1e-10 (expf/logf/
 *                  log1pf and FMAs; the bin search may pick the neighbour
 *                  at an edge, where the spline is continuous);
 *   expand         NMSE <= 1e-12 (expf within 2 ulp, one FMA).
 */
static void test_voice_text(void) {
    char name[128];

    SUB_TEST("rel_attention: B=3 (37, 1, 300), (4500, 5) two chunks, D 96 and 400, W 4");
    {
        const int l3[3] = {37, 1, 300}, l2[2] = {4500, 5}, l1[2] = {50, 3};
        check_rel_attention(l3, 3, 2, 96, 4, "rel_attention (37, 1, 300) H2 D96 W4");
        check_rel_attention(l2, 2, 2, 96, 4, "rel_attention (4500, 5) H2 D96 W4");
        check_rel_attention(l1, 2, 1, 400, 2, "rel_attention (50, 3) H1 D400 W2");
    }
    SUB_TEST_PASS();

    SUB_TEST("dwconv: B=3 (700, 1, 333), C 192/33, K 3, dil 1/3/9, bias and none");
    {
        const int len[3] = {700, 1, 333}, B = 3, Cs[2] = {192, 33}, dils[3] = {1, 3, 9}, K = 3;
        int off[4];
        offsets(off, len, B, 1);
        const int N = off[B];
        int *doff = up_bytes(off, sizeof(off));
        for (int ci = 0; ci < 2; ci++) {
            const int C = Cs[ci];
            size_t n = (size_t)N * C;
            float *x = rnd(n, 1), *w = rnd((size_t)C * K, 1), *b = rnd(C, 1);
            float *r = malloc(sizeof(float) * n);
            float *dx = up(x, n), *dw = up(w, (size_t)C * K), *db = up(b, C);
            for (int di = 0; di < 3; di++)
                for (int wb = 0; wb <= 1; wb++) {
                    snprintf(name, sizeof(name), "dwconv C%d K%d dil%d%s", C, K, dils[di],
                             wb ? " bias" : "");
                    R->dwconv(r, x, w, wb ? b : NULL, off, B, N, C, K, dils[di]);
                    float *d = out_buf(n);
                    G->dwconv(d, dx, dw, wb ? db : NULL, doff, B, N, C, K, dils[di]);
                    if (ci == 0 && di == 0 && wb)
                        TIME(name, G->dwconv(d, dx, dw, db, doff, B, N, C, K, dils[di]));
                    float *o = down(d, n, name);
                    cmp(name, o, r, n, 1e-10);
                    double m = max_abs(o, r, n);
                    TEST_CHECK(m <= 1e-5, "%s: max abs diff %.3g > 1e-5", name, m);
                    printf("# %-40s max abs diff %.3g\n", name, m);
                    free(o);
                }
            G->free(dx); G->free(dw); G->free(db);
            free(x); free(w); free(b); free(r);
        }
        G->free(doff);
    }
    SUB_TEST_PASS();

    SUB_TEST("spline_inv: 1000 rows, 10 bins, tail 5, x in [-6, 6] (tails: identity)");
    {
        const int N = 1000, bins = 10, ldp = 3 * bins - 1 + 2; /* 2 unused floats a row */
        const float tail = 5.0f, scale = 1.0f / sqrtf(192.0f);
        float *p = rnd_normal((size_t)N * ldp, 2.0f), *x = rnd(N, 6);
        float *r = malloc(sizeof(float) * N);
        int outside = 0;
        for (int i = 0; i < N; i++)
            outside += x[i] < -tail || x[i] > tail;
        memcpy(r, x, sizeof(float) * N);
        R->spline_inv(r, p, ldp, N, bins, tail, scale);
        float *dp = up(p, (size_t)N * ldp), *d = out_buf(N);
        G->upload(d, x, sizeof(float) * N);
        G->spline_inv(d, dp, ldp, N, bins, tail, scale);
        float *o = down(d, N, "spline_inv");
        cmp("spline_inv 1000 rows 10 bins", o, r, N, 1e-10);
        double m = max_abs(o, r, N);
        TEST_CHECK(m <= 1e-4, "spline_inv: max abs diff %.3g > 1e-4", m);
        int moved = 0;
        for (int i = 0; i < N; i++)
            moved += r[i] != x[i];
        TEST_CHECK(outside > 0 && moved > N / 2, "spline_inv: %d outside the tails, %d moved",
                   outside, moved);
        printf("# spline_inv max abs diff %.3g (%d of %d in the tails)\n", m, outside, N);
        d = out_buf(N);
        G->upload(d, x, sizeof(float) * N); /* in place: the calls go on from there */
        TIME("spline_inv 1000 rows 10 bins", G->spline_inv(d, dp, ldp, N, bins, tail, scale));
        G->free(d - GUARD);
        G->free(dp);
        free(p); free(x); free(r); free(o);
    }
    SUB_TEST_PASS();

    SUB_TEST("expand: 500 frames, C 192, 80 id rows, scale 0.667");
    {
        const int N = 500, C = 192, ids = 80;
        const float scale = 0.667f;
        float *stats = rnd((size_t)ids * 2 * C, 1), *z = rnd_normal((size_t)N * C, 1.0f);
        float *r = malloc(sizeof(float) * N * C);
        int *idx = malloc(sizeof(int) * N);
        for (int i = 0; i < N; i++)
            idx[i] = (int)((frand() + 1.0f) * 0.5f * ids) % ids;
        R->expand(r, stats, idx, z, N, C, scale);
        float *ds = up(stats, (size_t)ids * 2 * C), *dz = up(z, (size_t)N * C);
        int *didx = up_bytes(idx, sizeof(int) * N);
        float *d = out_buf((size_t)N * C);
        G->expand(d, ds, didx, dz, N, C, scale);
        TIME("expand 500 x 192", G->expand(d, ds, didx, dz, N, C, scale));
        float *o = down(d, (size_t)N * C, "expand");
        cmp("expand 500 x 192", o, r, (size_t)N * C, 1e-12);
        G->free(ds); G->free(dz); G->free(didx);
        free(stats); free(z); free(r); free(idx); free(o);
    }
    SUB_TEST_PASS();
}

/*
 * KILN_CUDA_TIMING=1 only: the ragged ops at a decoder's batch size (200
 * sequences, 100k rows; im2col C 192 K 7, col2im s8 K16 OC 96, act/gate/
 * axpby on 19.2M values), in GB/s of the bytes each must move at least
 * (every input read once, every output written once). Not compared with
 * the CPU (the shapes above are); only checks that no CUDA call failed.
 */
static void time_ragged_large(void) {
    SUB_TEST("ragged ops at 100k rows: timing");
    const int B = 200, C = 192, K = 7, OC = 96;
    int *off = malloc(sizeof(int) * (B + 1)), *oo = malloc(sizeof(int) * (B + 1));
    off[0] = oo[0] = 0;
    for (int b = 0; b < B; b++) {
        off[b + 1] = off[b] + 400 + (b * 37) % 200; /* 400 .. 599 rows */
        oo[b + 1] = oo[b] + 8 * (off[b + 1] - off[b]);
    }
    const int N = off[B];
    size_t nx = (size_t)N * C, ncol = nx * K, ny = (size_t)N * 16 * OC, no = (size_t)oo[B] * OC;
    int *doff = up_bytes(off, sizeof(int) * (B + 1)), *doo = up_bytes(oo, sizeof(int) * (B + 1));
    float *x = rnd(nx, 1), *dx = up(x, nx);
    float *dcol = G->alloc(ncol * 4), *dy = G->alloc(ny * 4), *dout = G->alloc(no * 4);
    float *dz = G->alloc(nx * 4);
    TEST_ASSERT(dcol && dy && dout && dz, "device memory for the timing shapes");
    G->upload(dy, x, nx * 4); /* any values: y's first nx floats, the rest as allocated */
    double s;
    SECS(s, G->im2col(dcol, dx, doff, B, 0, N, C, K, 1, 0.1f));
    printf("# time im2col %d rows C%d K%d   %8.1f us  %6.0f GB/s\n", N, C, K, s * 1e6,
           (nx + ncol) * 4 / s / 1e9);
    SECS(s, G->col2im(dout, dy, NULL, doff, doo, B, oo[B], OC, 16, 8, 4));
    printf("# time col2im %d -> %d rows OC%d s8 K16 %8.1f us  %6.0f GB/s\n", N, oo[B], OC,
           s * 1e6, (ny + no) * 4 / s / 1e9);
    SECS(s, G->act(dz, dx, nx, KILN_ACT_TANH, 0));
    printf("# time act tanh %zu              %8.1f us  %6.0f GB/s\n", nx, s * 1e6,
           2.0 * nx * 4 / s / 1e9);
    SECS(s, G->gate(dz, dx, N, C / 2));
    printf("# time gate %d x %d               %8.1f us  %6.0f GB/s\n", N, C / 2, s * 1e6,
           1.5 * nx * 4 / s / 1e9);
    SECS(s, G->axpby(dz, 0.5f, dx, 2.0f, dz, nx));
    printf("# time axpby %zu                 %8.1f us  %6.0f GB/s\n", nx, s * 1e6,
           3.0 * nx * 4 / s / 1e9);
    TEST_CHECK(kiln_kernels_take_error() == 0, "a CUDA call failed");
    G->free(doff); G->free(doo); G->free(dx); G->free(dcol); G->free(dy); G->free(dout);
    G->free(dz);
    free(off); free(oo); free(x);
    SUB_TEST_PASS();
}

int main(void) {
    G = kiln_kernels_get(KILN_BACKEND_CUDA);
    R = kiln_kernels_get(KILN_BACKEND_REF);
    if (!G)
        TEST_SKIP("no CUDA backend (CPU-only build, or no GPU visible)");
    timing = getenv("KILN_CUDA_TIMING") != NULL;

    SUB_TEST("cuda table: ops present, memory helpers");
    TEST_CHECK(!strcmp(kiln_backend_name(KILN_BACKEND_CUDA), "cuda"), "name");
    for (int op = 0; op < KILN_OP__COUNT; op++)
        if (op != KILN_OP_MATMUL_PACKED) /* a CPU layout, not on the GPU */
            TEST_CHECK(kiln_kernel_supported(KILN_BACKEND_CUDA, (kiln_op_t)op), "op %d", op);
    TEST_CHECK(G->alloc && G->free && G->upload && G->download && G->sync, "memory helpers");
    TEST_CHECK(G->set_precision && G->set_precision("fp64") == -1, "unknown precision");
    SUB_TEST_PASS();

    test_matmul("fp32", 1e-10);
    test_matmul("tf32", 1e-5);
    test_matmul("fp16", 1e-5);
    test_matmul("bf16", 1e-4);

    SUB_TEST("layernorm, gelu, softmax (masked row), add");
    {
        int N = 300, C = 1280;
        size_t n = (size_t)N * C;
        float *x = rnd(n, 3), *y = rnd(n, 1), *g = rnd(C, 1), *b = rnd(C, 1);
        for (int i = 0; i < C; i++)
            x[7 * C + i] = -INFINITY; /* a fully masked softmax row */
        float *r = malloc(sizeof(float) * n);
        float *dx = up(x, n), *dy = up(y, n), *dg = up(g, C), *db = up(b, C), *o;
        for (int i = 0; i < C; i++)
            x[7 * C + i] = 1.0f; /* layernorm, gelu and add see finite values */
        G->upload(dx, x, n * sizeof(float));
        float *d = out_buf(n);
        R->layernorm(r, x, g, b, N, C, 1e-5f);
        G->layernorm(d, dx, dg, db, N, C, 1e-5f);
        TIME("layernorm 300x1280", G->layernorm(d, dx, dg, db, N, C, 1e-5f));
        o = down(d, n, "layernorm");
        cmp("layernorm 300x1280", o, r, n, 1e-10);
        free(o);
        d = out_buf(n);
        R->gelu(r, x, n);
        G->gelu(d, dx, n);
        TIME("gelu 384000", G->gelu(d, dx, n));
        o = down(d, n, "gelu");
        cmp("gelu 384000", o, r, n, 1e-10);
        free(o);
        d = out_buf(n);
        R->add(r, x, y, n);
        G->add(d, dx, dy, n);
        o = down(d, n, "add");
        cmp("add 384000", o, r, n, 1e-10);
        free(o);
        for (int i = 0; i < C; i++)
            x[7 * C + i] = -INFINITY;
        G->upload(dx, x, n * sizeof(float));
        d = out_buf(n);
        R->softmax(r, x, N, C);
        G->softmax(d, dx, N, C);
        TIME("softmax 300x1280", G->softmax(d, dx, N, C));
        o = down(d, n, "softmax");
        cmp("softmax 300x1280", o, r, n, 1e-10);
        TEST_CHECK(o[7 * C] == 0.0f && o[8 * C - 1] == 0.0f, "masked row %g", o[7 * C]);
        free(o);
        G->free(dx); G->free(dy); G->free(dg); G->free(db);
        free(x); free(y); free(g); free(b); free(r);
    }
    SUB_TEST_PASS();

    SUB_TEST("attention: flash and cuBLAS paths, full and causal, strided QKV");
    {
        const int shapes[3][4] = {{1500, 1500, 20, 64}, {37, 37, 6, 64}, {5, 70, 4, 128}};
        for (int si = 0; si < 3; si++)
            for (int causal = 0; causal <= 1; causal++)
                for (int path = 0; path <= 1; path++) {
                    int Tq = shapes[si][0], Tk = shapes[si][1], H = shapes[si][2];
                    int D = shapes[si][3], C = H * D, ld = 3 * C;
                    if (si == 0 && path == 0 && causal)
                        continue; /* the big one: flash once is enough */
                    int T = Tq > Tk ? Tq : Tk;
                    float *qkv = rnd((size_t)T * ld, 1), *r = malloc(sizeof(float) * Tq * C);
                    float *scr = malloc(sizeof(float) * Tq * Tk);
                    R->attention(r, C, qkv, ld, qkv + C, ld, qkv + 2 * C, ld, Tq, Tk, H, D,
                                 causal, scr);
                    float *dq = up(qkv, (size_t)T * ld), *d = out_buf((size_t)Tq * C);
                    float *dscr = path ? G->alloc(sizeof(float) * Tq * Tk) : NULL;
                    G->attention(d, C, dq, ld, dq + C, ld, dq + 2 * C, ld, Tq, Tk, H, D, causal,
                                 dscr);
                    char name[96];
                    snprintf(name, sizeof(name), "attention %s %dx%d H%d D%d%s",
                             path ? "cublas" : "flash", Tq, Tk, H, D, causal ? " causal" : "");
                    TIME(name, G->attention(d, C, dq, ld, dq + C, ld, dq + 2 * C, ld, Tq, Tk, H,
                                            D, causal, dscr));
                    float *o = down(d, (size_t)Tq * C, name);
                    cmp(name, o, r, (size_t)Tq * C, 1e-10);
                    G->free(dq);
                    G->free(dscr);
                    free(qkv); free(r); free(scr); free(o);
                }
    }
    SUB_TEST_PASS();

    SUB_TEST("attention_kv: decoder rows, own and shared keys");
    {
        const int S = 7, H = 6, D = 64, C = H * D, ldkt = 1500;
        const int Tk[7] = {1500, 1500, 1500, 3, 17, 1, 1499};
        float *q = rnd((size_t)S * C, 1), *kt[7], *v[7];
        float *dkt[7], *dv[7];
        for (int s = 0; s < S; s++) {
            int share = s == 1 || s == 2; /* rows 0-2 share a window's keys */
            kt[s] = share ? kt[0] : rnd((size_t)C * ldkt, 1);
            v[s] = share ? v[0] : rnd((size_t)ldkt * C, 1);
            dkt[s] = share ? dkt[0] : up(kt[s], (size_t)C * ldkt);
            dv[s] = share ? dv[0] : up(v[s], (size_t)ldkt * C);
        }
        float *r = malloc(sizeof(float) * S * C), *scr = malloc(sizeof(float) * S * ldkt);
        R->attention_kv(r, C, q, C, (const float *const *)kt, ldkt, (const float *const *)v, C,
                        Tk, S, H, D, scr);
        float **pk = G->alloc(sizeof(float *) * S), **pv = G->alloc(sizeof(float *) * S);
        int *ptk = G->alloc(sizeof(int) * S);
        G->upload(pk, dkt, sizeof(float *) * S);
        G->upload(pv, dv, sizeof(float *) * S);
        G->upload(ptk, Tk, sizeof(int) * S);
        float *dq = up(q, (size_t)S * C), *d = out_buf((size_t)S * C);
        G->attention_kv(d, C, dq, C, (const float *const *)pk, ldkt, (const float *const *)pv, C,
                        ptk, S, H, D, NULL);
        TIME("attention_kv 7 rows x 1500 keys", G->attention_kv(d, C, dq, C,
             (const float *const *)pk, ldkt, (const float *const *)pv, C, ptk, S, H, D, NULL));
        float *o = down(d, (size_t)S * C, "attention_kv");
        cmp("attention_kv 7 rows", o, r, (size_t)S * C, 1e-10);
        for (int s = 0; s < S; s++)
            if (s != 1 && s != 2) {
                G->free(dkt[s]);
                G->free(dv[s]);
                free(kt[s]);
                free(v[s]);
            }
        G->free(pk); G->free(pv); G->free(ptk); G->free(dq);
        free(q); free(r); free(scr); free(o);
    }
    SUB_TEST_PASS();

    SUB_TEST("conv1d (Whisper's stem: k3 s1, k3 s2)");
    {
        for (int stride = 1; stride <= 2; stride++) {
            int Tin = stride == 1 ? 3000 : 3000, C = stride == 1 ? 80 : 384, OC = 384, K = 3;
            int Tout = (Tin + 2 - K) / stride + 1;
            float *x = rnd((size_t)Tin * C, 1), *w = rnd((size_t)OC * C * K, 0.1f),
                  *b = rnd(OC, 1), *r = malloc(sizeof(float) * Tout * OC),
                  *scr = malloc(sizeof(float) * Tout * C * K);
            R->conv1d(r, x, w, b, Tin, C, OC, K, stride, 1, scr);
            float *dx = up(x, (size_t)Tin * C), *dw = up(w, (size_t)OC * C * K), *db = up(b, OC);
            float *dscr = G->alloc(sizeof(float) * Tout * C * K), *d = out_buf((size_t)Tout * OC);
            G->conv1d(d, dx, dw, db, Tin, C, OC, K, stride, 1, dscr);
            float *o = down(d, (size_t)Tout * OC, "conv1d");
            cmp(stride == 1 ? "conv1d 3000x80 -> 384 k3 s1" : "conv1d 3000x384 -> 384 k3 s2", o,
                r, (size_t)Tout * OC, 1e-10);
            G->free(dx); G->free(dw); G->free(db); G->free(dscr);
            free(x); free(w); free(b); free(r); free(scr); free(o);
        }
    }
    SUB_TEST_PASS();

    SUB_TEST("power spectrum (cuFFT) and log-mel");
    {
        int T = 3001, NF = 400, F = 201, M = 128;
        float *fr = rnd((size_t)T * NF, 1), *pw = malloc(sizeof(float) * T * F);
        R->power_spectrum(pw, fr, T, NF);
        float *dfr = up(fr, (size_t)T * NF), *d = out_buf((size_t)T * F);
        G->power_spectrum(d, dfr, T, NF);
        TIME("power_spectrum 3001 x 400", G->power_spectrum(d, dfr, T, NF));
        float *o = down(d, (size_t)T * F, "power_spectrum");
        cmp("power_spectrum 3001 frames", o, pw, (size_t)T * F, 1e-10);
        float *fb = rnd((size_t)M * F, 1), *r = malloc(sizeof(float) * M * T);
        for (int i = 0; i < M * F; i++)
            fb[i] = fb[i] > 0.6f ? fb[i] : 0.0f;
        memset(fb, 0, sizeof(float) * F); /* mel 0 empty: the 1e-10 floor */
        R->logmel(r, pw, fb, T, F, M);
        float *dpw = up(pw, (size_t)T * F), *dfb = up(fb, (size_t)M * F);
        d = out_buf((size_t)M * T);
        G->logmel(d, dpw, dfb, T, F, M);
        free(o);
        o = down(d, (size_t)M * T, "logmel");
        cmp("logmel 128 x 3001", o, r, (size_t)M * T, 1e-10);
        TEST_CHECK(fabsf(o[0] + 10.0f) < 1e-5f, "floor %g", o[0]);
        G->free(dfr); G->free(dpw); G->free(dfb);
        free(fr); free(pw); free(fb); free(r); free(o);
    }
    SUB_TEST_PASS();

    test_copy_ops();
    test_ragged();
    test_voice_text();
    if (timing)
        time_ragged_large();
    return TEST_DONE();
}
