/*
 * models/voice/ops.c - the operations VITS needs beyond kernels/: dilated
 * "same" convolutions, depthwise convolutions, transposed convolutions,
 * leaky ReLU, relative-position attention and the inverse rational-quadratic
 * spline. Time-major ([T, C]), fp32. The dense products go through the
 * kernels' CPU backend (kiln_kernels_get(KILN_BACKEND_CPU)->matmul, threaded
 * on the kernels' pool); the rest is plain C.
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/kernels.h"
#include "models/voice/voice_int.h"

/* output rows per task of the convolutions: bounds each thread's im2col
 * scratch (rows * C * K floats) whatever T */
#define KILN_VCONV_ROWS 256

typedef struct kiln_vconv_job_s {
    float *out;
    const float *inp, *res;
    const kiln_vconv_t *cv;
    int T, dil, stride, pad, Tout;
    float slope;
} kiln_vconv_job_t;

static inline float kiln_vact_(float x, float slope) { return x < 0.0f ? slope * x : x; }

/* Rows [t0, t1) of out = res + bias + conv(act(inp)): im2col then one sgemm. */
static void kiln_vconv1d_task_(void *vctx, int task, int thread) {
    const kiln_vconv_job_t *j = vctx;
    const kiln_vconv_t *cv = j->cv;
    int C = cv->ic, K = cv->k, OC = cv->oc, T = j->T, dil = j->dil;
    int pad = dil * (K - 1) / 2;
    int t0 = task * KILN_VCONV_ROWS, nt = T - t0 < KILN_VCONV_ROWS ? T - t0 : KILN_VCONV_ROWS;
    size_t ck = (size_t)C * K;
    (void)thread;
    float *o = j->out + (size_t)t0 * OC;
    for (int r = 0; r < nt; r++) {
        float *orow = o + (size_t)r * OC;
        const float *rr = j->res ? j->res + (size_t)(t0 + r) * OC : NULL;
        for (int c = 0; c < OC; c++)
            orow[c] = (cv->b ? cv->b[c] : 0.0f) + (rr ? rr[c] : 0.0f);
    }
    const float *col;
    if (K == 1 && j->slope == 1.0f) {
        col = j->inp + (size_t)t0 * C;
    } else {
        float *w = kiln_scratch(0, (size_t)nt * ck);
        if (!w) {
            kiln_kernels_set_error_();
            return;
        }
        /* weights are k-major ([OC, K, C]), so each tap is one contiguous row copy */
        for (int r = 0; r < nt; r++) {
            float *row = w + (size_t)r * ck;
            for (int k = 0; k < K; k++) {
                int ti = t0 + r + k * dil - pad;
                float *dst = row + (size_t)k * C;
                if (ti < 0 || ti >= T) {
                    memset(dst, 0, (size_t)C * sizeof(float));
                    continue;
                }
                const float *x = j->inp + (size_t)ti * C;
                if (j->slope == 1.0f)
                    memcpy(dst, x, (size_t)C * sizeof(float));
                else
                    for (int c = 0; c < C; c++)
                        dst[c] = kiln_vact_(x[c], j->slope);
            }
        }
        col = w;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nt, OC, (int)ck, 1.0f, col, (int)ck,
                cv->w, (int)ck, 1.0f, o, OC);
}

void kiln_vconv1d_(float *out, const float *inp, const kiln_vconv_t *cv, int T, int dil,
                   float slope, const float *res) {
    kiln_vconv_job_t j = {.out = out, .inp = inp, .res = res, .cv = cv, .T = T, .dil = dil,
                          .slope = slope};
    kiln_parallel_for((T + KILN_VCONV_ROWS - 1) / KILN_VCONV_ROWS, kiln_vconv1d_task_, &j);
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
    int o0 = task * KILN_VCONV_ROWS * s;
    int o1 = o0 + KILN_VCONV_ROWS * s < j->Tout ? o0 + KILN_VCONV_ROWS * s : j->Tout;
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
    for (size_t i = 0; i < (size_t)nt * C; i++)
        x[i] = kiln_vact_(j->inp[(size_t)t0 * C + i], j->slope);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nt, K * OC, C, 1.0f, x, C, cv->w, C,
                0.0f, y, K * OC);
    for (int t = t0; t <= t1; t++) {
        const float *yr = y + (size_t)(t - t0) * K * OC;
        for (int k = 0; k < K; k++) {
            int o = t * s + k - p;
            if (o < o0 || o >= o1)
                continue;
            float *orow = j->out + (size_t)o * OC;
            const float *src = yr + (size_t)k * OC;
            for (int oc = 0; oc < OC; oc++)
                orow[oc] += src[oc];
        }
    }
}

void kiln_vconv_transpose_(float *out, const float *inp, const kiln_vconv_t *cv, int T,
                           int stride, int pad, float slope) {
    kiln_vconv_job_t j = {.out = out, .inp = inp, .cv = cv, .T = T, .stride = stride,
                          .pad = pad, .slope = slope};
    j.Tout = (T - 1) * stride - 2 * pad + cv->k;
    int rows = KILN_VCONV_ROWS * stride;
    kiln_parallel_for((j.Tout + rows - 1) / rows, kiln_vconvt_task_, &j);
}

void kiln_vleaky_(float *out, const float *x, size_t n, float slope) {
    for (size_t i = 0; i < n; i++)
        out[i] = x[i] < 0.0f ? slope * x[i] : x[i];
}

/*
 * VITS MultiHeadAttention (heads_share, window W) for one sequence without
 * padding:
 *   s[i][j] = (q_i / sqrt(D)) . (k_j + rel_k[j - i + W] if |j - i| <= W)
 *   p = softmax_j(s)
 *   out_i = sum_j p[i][j] (v_j + rel_v[j - i + W] if |j - i| <= W)
 */
void kiln_vrel_attention_(float *out, const float *qkv, const float *rel_k, const float *rel_v,
                          int T, int H, int D, int W) {
    int C = H * D, ld = 3 * C;
    float scale = 1.0f / sqrtf((float)D);
    float *s = malloc((size_t)T * sizeof(float));
    float *q = malloc((size_t)D * sizeof(float));
    if (!s || !q) {
        free(s);
        free(q);
        kiln_kernels_set_error_();
        return;
    }
    for (int h = 0; h < H; h++) {
        for (int i = 0; i < T; i++) {
            const float *qi = qkv + (size_t)i * ld + h * D;
            for (int d = 0; d < D; d++)
                q[d] = qi[d] * scale;
            float mx = -INFINITY;
            for (int j = 0; j < T; j++) {
                const float *kj = qkv + (size_t)j * ld + C + h * D;
                float acc = 0.0f;
                for (int d = 0; d < D; d++)
                    acc += q[d] * kj[d];
                int r = j - i;
                if (r >= -W && r <= W) {
                    const float *ek = rel_k + (size_t)(r + W) * D;
                    float a2 = 0.0f;
                    for (int d = 0; d < D; d++)
                        a2 += q[d] * ek[d];
                    acc += a2;
                }
                s[j] = acc;
                if (acc > mx)
                    mx = acc;
            }
            float sum = 0.0f;
            for (int j = 0; j < T; j++) {
                s[j] = expf(s[j] - mx);
                sum += s[j];
            }
            float inv = 1.0f / sum;
            float *o = out + (size_t)i * C + h * D;
            for (int d = 0; d < D; d++)
                o[d] = 0.0f;
            for (int j = 0; j < T; j++) {
                float p = s[j] * inv;
                const float *vj = qkv + (size_t)j * ld + 2 * C + h * D;
                for (int d = 0; d < D; d++)
                    o[d] += p * vj[d];
                int r = j - i;
                if (r >= -W && r <= W) {
                    const float *ev = rel_v + (size_t)(r + W) * D;
                    for (int d = 0; d < D; d++)
                        o[d] += p * ev[d];
                }
            }
        }
    }
    free(s);
    free(q);
}

/*
 * The inverse of nflows' unconstrained_rational_quadratic_spline (linear
 * tails outside [-B, B], min bin width/height/derivative 1e-3), evaluated
 * as the Piper export does in fp32.
 */
#define KILN_VRQ_MAX_BINS 32
float kiln_vrq_spline_inverse_(float x, const float *uw, const float *uh, const float *ud,
                               int bins, float B) {
    const float min_w = 1e-3f, min_h = 1e-3f, min_d = 1e-3f;
    if (x < -B || x > B || bins > KILN_VRQ_MAX_BINS)
        return x;
    float cw[KILN_VRQ_MAX_BINS + 1], ch[KILN_VRQ_MAX_BINS + 1];
    float w[KILN_VRQ_MAX_BINS], h[KILN_VRQ_MAX_BINS], der[KILN_VRQ_MAX_BINS + 1];
    /* softmax of the widths and heights, floored, cumulated on [-B, B] */
    const float *u[2] = {uw, uh};
    float *cum[2] = {cw, ch}, *sz[2] = {w, h}, mins[2] = {min_w, min_h};
    for (int a = 0; a < 2; a++) {
        float mx = -INFINITY, sum = 0.0f, p[KILN_VRQ_MAX_BINS];
        for (int i = 0; i < bins; i++)
            mx = u[a][i] > mx ? u[a][i] : mx;
        for (int i = 0; i < bins; i++) {
            p[i] = expf(u[a][i] - mx);
            sum += p[i];
        }
        float acc = 0.0f;
        cum[a][0] = -B;
        for (int i = 0; i < bins; i++) {
            acc += mins[a] + (1.0f - mins[a] * bins) * (p[i] / sum);
            cum[a][i + 1] = 2.0f * B * acc - B;
        }
        cum[a][bins] = B;
        for (int i = 0; i < bins; i++)
            sz[a][i] = cum[a][i + 1] - cum[a][i];
    }
    /* derivatives: the boundary ones are fixed to 1 (softplus(c) + min_d = 1) */
    float cst = logf(expf(1.0f - min_d) - 1.0f);
    for (int i = 0; i <= bins; i++) {
        float v = (i == 0 || i == bins) ? cst : ud[i - 1];
        float sp = v > 20.0f ? v : log1pf(expf(v));
        der[i] = min_d + sp;
    }
    /* bin: searchsorted over the cumulated heights (last edge + 1e-6) */
    int idx = -1;
    for (int i = 0; i <= bins; i++) {
        float edge = ch[i] + (i == bins ? 1e-6f : 0.0f);
        idx += x >= edge;
    }
    if (idx < 0)
        idx = 0;
    if (idx > bins - 1)
        idx = bins - 1;
    float in_cw = cw[idx], in_w = w[idx], in_ch = ch[idx], in_h = h[idx];
    float delta = in_h / in_w, d0 = der[idx], d1 = der[idx + 1];
    float y = x - in_ch;
    float a = y * (d0 + d1 - 2.0f * delta) + in_h * (delta - d0);
    float b = in_h * d0 - y * (d0 + d1 - 2.0f * delta);
    float c = -delta * y;
    float disc = b * b - 4.0f * a * c;
    float root = (2.0f * c) / (-b - sqrtf(disc));
    return root * in_w + in_cw;
}
