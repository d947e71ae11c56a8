/*
 * kernels/cpu/ragged.c - the reference of the ops a speech decoder runs on
 * a ragged batch (see include/kiln/kernels.h): im2col of a dilated "same"
 * convolution with its input activation fused, the gather form of a
 * transposed convolution's scatter, elementwise activations, WaveNet's
 * gated unit, and a scaled sum. Sequences lie back to back, time-major,
 * and a convolution never reads across a sequence's ends.
 *
 * With these and matmul, a model's convolutions are im2col + matmul (the
 * matrix product is the backend's GEMM: OpenBLAS here, cuBLAS on CUDA), so
 * one model code path runs on every backend (models/voice/vits_dev.c).
 * Both CPU tables use these functions; kernels/cuda/ragged.cu has the same
 * contracts and tests/0110-kernels_cuda.c checks it against them.
 */
#include <math.h>
#include <string.h>

#include "kiln/kernels.h"

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
