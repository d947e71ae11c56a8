/*
 * kernels/cpu/ragged.c - the reference of the ops a speech decoder runs on
 * a ragged batch (see include/kiln/kernels.h): im2col of a dilated "same"
 * convolution with its input activation fused, the gather form of a
 * transposed convolution's scatter, elementwise activations, WaveNet's
 * gated unit, a scaled sum, and for the text side of VITS: self-attention
 * with relative positions, a depthwise convolution, the inverse
 * rational-quadratic spline and the monotonic expansion. Sequences lie
 * back to back, time-major, and no op reads across a sequence's ends.
 *
 * With these and matmul, a model's convolutions are im2col + matmul (the
 * matrix product is the backend's GEMM: OpenBLAS here, cuBLAS on CUDA), so
 * one model code path runs on every backend (models/voice/vits_dev.c).
 * Both CPU tables use these functions; kernels/cuda/ragged.cu has the same
 * contracts and tests/0110-kernels_cuda.c checks it against them.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/kernels.h"

#define KILN_VRQ_MAX_BINS 32 /* bins of kiln_rq_spline_inverse() */

/* @returns the sequence whose rows [off[b], off[b+1]) hold row r (off[0] <= r < off[B]). */
static int kiln_ragged_seq_(const int *off, int B, int r) {
    int lo = 0, hi = B - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (off[mid] <= r)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

void kiln_im2col_cpu(float *out, const float *inp, const int *off, int B, int r0, int nr, int C,
                     int K, int dil, float slope) {
    int pad = dil * (K - 1) / 2;
    for (int i = 0; i < nr; i++) {
        int r = r0 + i, b = kiln_ragged_seq_(off, B, r);
        float *o = out + (size_t)i * K * C;
        for (int k = 0; k < K; k++, o += C) {
            int src = r + k * dil - pad;
            if (src < off[b] || src >= off[b + 1]) {
                memset(o, 0, (size_t)C * sizeof(float));
                continue;
            }
            const float *x = inp + (size_t)src * C;
            for (int c = 0; c < C; c++)
                o[c] = x[c] < 0.0f ? slope * x[c] : x[c];
        }
    }
}

void kiln_col2im_cpu(float *out, const float *y, const float *bias, const int *in_off,
                     const int *out_off, int B, int n_out, int OC, int K, int stride, int pad) {
    for (int o = 0; o < n_out; o++) {
        int b = kiln_ragged_seq_(out_off, B, o);
        int u = o - out_off[b], T = in_off[b + 1] - in_off[b];
        float *dst = out + (size_t)o * OC;
        for (int c = 0; c < OC; c++)
            dst[c] = bias ? bias[c] : 0.0f;
        for (int k = 0; k < K; k++) {
            int num = u + pad - k;
            if (num < 0 || num % stride)
                continue;
            int t = num / stride;
            if (t >= T)
                continue;
            const float *src = y + ((size_t)(in_off[b] + t) * K + k) * OC;
            for (int c = 0; c < OC; c++)
                dst[c] += src[c];
        }
    }
}

void kiln_act_cpu(float *out, const float *inp, size_t n, int kind, float param) {
    if (kind == KILN_ACT_TANH) {
        for (size_t i = 0; i < n; i++)
            out[i] = tanhf(inp[i]);
        return;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = inp[i] < 0.0f ? param * inp[i] : inp[i];
}

void kiln_gate_cpu(float *out, const float *inp, int N, int C) {
    for (int n = 0; n < N; n++) {
        const float *a = inp + (size_t)n * 2 * C, *g = a + C;
        float *o = out + (size_t)n * C;
        for (int c = 0; c < C; c++)
            o[c] = tanhf(a[c]) * (1.0f / (1.0f + expf(-g[c])));
    }
}

void kiln_axpby_cpu(float *out, float a, const float *x, float b, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++)
        out[i] = a * x[i] + b * y[i];
}

/*
 * Row i, head h: the scores are summed over d in order (one dot product per
 * key, then the relative key's), softmax in key order, and the output sums
 * p * v_j then p * rel_v per key in order, as models/voice/ops.c's
 * threaded CPU attention does, so the two give the same bits.
 */
void kiln_rel_attention_cpu(float *out, const float *qkv, const float *rel_k, const float *rel_v,
                            const int *off, int B, int N, int H, int D, int W) {
    int C = H * D, ld = 3 * C;
    float scale = 1.0f / sqrtf((float)D);
    (void)N;
    for (int b = 0; b < B; b++) {
        int o0 = off[b], T = off[b + 1] - off[b];
        const float *x = qkv + (size_t)o0 * ld;
        float *s = malloc(((size_t)T + (size_t)D) * sizeof(float));
        if (!s) {
            kiln_kernels_set_error_();
            return;
        }
        float *q = s + T;
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++) {
                for (int d = 0; d < D; d++)
                    q[d] = x[(size_t)i * ld + h * D + d] * scale;
                for (int j = 0; j < T; j++) {
                    const float *kj = x + (size_t)j * ld + C + h * D;
                    float a = 0.0f;
                    for (int d = 0; d < D; d++)
                        a += q[d] * kj[d];
                    s[j] = a;
                    if (j - i >= -W && j - i <= W) {
                        const float *ek = rel_k + (size_t)(j - i + W) * D;
                        float a2 = 0.0f;
                        for (int d = 0; d < D; d++)
                            a2 += q[d] * ek[d];
                        s[j] += a2;
                    }
                }
                float mx = -INFINITY, sum = 0.0f;
                for (int j = 0; j < T; j++)
                    mx = s[j] > mx ? s[j] : mx;
                for (int j = 0; j < T; j++) {
                    s[j] = expf(s[j] - mx);
                    sum += s[j];
                }
                float inv = 1.0f / sum;
                float *o = out + (size_t)(o0 + i) * C + h * D;
                memset(o, 0, (size_t)D * sizeof(float));
                for (int j = 0; j < T; j++) {
                    float p = s[j] * inv;
                    const float *vj = x + (size_t)j * ld + 2 * C + h * D;
                    for (int d = 0; d < D; d++)
                        o[d] += p * vj[d];
                    if (j - i >= -W && j - i <= W)
                        for (int d = 0; d < D; d++)
                            o[d] += p * rel_v[(size_t)(j - i + W) * D + d];
                }
            }
        free(s);
    }
}

void kiln_dwconv_cpu(float *out, const float *inp, const float *w, const float *b,
                     const int *off, int B, int N, int C, int K, int dil) {
    int pad = dil * (K - 1) / 2;
    for (int r = 0; r < N; r++) {
        int q = kiln_ragged_seq_(off, B, r);
        float *o = out + (size_t)r * C;
        for (int c = 0; c < C; c++)
            o[c] = b ? b[c] : 0.0f;
        for (int k = 0; k < K; k++) {
            int src = r + k * dil - pad;
            if (src < off[q] || src >= off[q + 1])
                continue;
            const float *x = inp + (size_t)src * C;
            for (int c = 0; c < C; c++)
                o[c] += w[c * K + k] * x[c];
        }
    }
}

/*
 * The inverse of nflows' unconstrained_rational_quadratic_spline (linear
 * tails outside [-B, B], min bin width/height/derivative 1e-3), evaluated
 * as the Piper export does in fp32.
 */
float kiln_rq_spline_inverse(float x, const float *uw, const float *uh, const float *ud, int bins,
                             float B) {
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

void kiln_spline_inv_cpu(float *x, const float *p, int ldp, int N, int bins, float tail,
                         float scale) {
    float u[2 * KILN_VRQ_MAX_BINS];
    if (bins > KILN_VRQ_MAX_BINS)
        return;
    for (int n = 0; n < N; n++) {
        const float *pr = p + (size_t)n * ldp;
        for (int i = 0; i < 2 * bins; i++)
            u[i] = pr[i] * scale;
        x[n] = kiln_rq_spline_inverse(x[n], u, u + bins, pr + 2 * bins, bins, tail);
    }
}

void kiln_expand_cpu(float *out, const float *stats, const int *idx, const float *noise, int N,
                     int C, float scale) {
    for (int n = 0; n < N; n++) {
        const float *m = stats + (size_t)idx[n] * 2 * C, *lg = m + C;
        const float *z = noise + (size_t)n * C;
        float *o = out + (size_t)n * C;
        for (int c = 0; c < C; c++)
            o[c] = m[c] + z[c] * expf(lg[c]) * scale;
    }
}
