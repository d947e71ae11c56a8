/*
 * kernels/cpu/layernorm.c - row-wise layer normalisation (PyTorch LayerNorm).
 *
 * For each row x of inp[N, C]: y = (x - mean) / sqrt(var + eps) * weight + bias,
 * var being the biased variance. Accumulates in double so that the reference
 * is at least as exact as anything it is compared with.
 */
#include <math.h>

#include "kiln/kernels.h"

void kiln_layernorm_cpu(float *out, const float *inp, const float *weight, const float *bias,
                        int N, int C, float eps) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *y = out + (size_t)n * C;
        double mean = 0.0, var = 0.0;
        for (int i = 0; i < C; i++)
            mean += x[i];
        mean /= C;
        for (int i = 0; i < C; i++) {
            double d = x[i] - mean;
            var += d * d;
        }
        var /= C;
        float rstd = (float)(1.0 / sqrt(var + eps));
        float m = (float)mean;
        for (int i = 0; i < C; i++)
            y[i] = (x[i] - m) * rstd * weight[i] + (bias ? bias[i] : 0.0f);
    }
}
