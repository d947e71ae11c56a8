/*
 * kernels/cpu/conv1d.c - 1-D convolution over time as im2col + one GEMM.
 *
 * inp is time-major [Tin, C]; weight is PyTorch's Conv1d layout [OC, C, K].
 * The im2col matrix col[Tout, C*K] holds, for output step t, the inputs
 * inp[t*stride + k - pad, c] at column c*K + k (zero outside the input), so
 * that out[Tout, OC] = col @ weight^T + bias is a plain dense layer.
 */
#include <string.h>

#include "kiln/kernels.h"

void kiln_conv1d_cpu(float *out, const float *inp, const float *weight, const float *bias,
                     int Tin, int C, int OC, int K, int stride, int pad, float *scratch) {
    int Tout = (Tin + 2 * pad - K) / stride + 1;
    float *col = scratch;
    for (int t = 0; t < Tout; t++) {
        float *row = col + (size_t)t * C * K;
        for (int k = 0; k < K; k++) {
            int ti = t * stride + k - pad;
            if (ti < 0 || ti >= Tin) {
                for (int c = 0; c < C; c++)
                    row[c * K + k] = 0.0f;
                continue;
            }
            const float *x = inp + (size_t)ti * C;
            for (int c = 0; c < C; c++)
                row[c * K + k] = x[c];
        }
    }
    kiln_matmul_cpu(out, col, weight, bias, Tout, C * K, OC);
}
