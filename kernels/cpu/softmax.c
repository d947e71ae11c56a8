/*
 * kernels/cpu/softmax.c - numerically stable row-wise softmax of inp[N, C].
 *
 * Subtracts the row maximum before exponentiating. A row that is entirely
 * -INFINITY (fully masked) comes out as zeros rather than NaN.
 */
#include <math.h>

#include "kiln/kernels.h"

void kiln_softmax_cpu(float *out, const float *inp, int N, int C) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *y = out + (size_t)n * C;
        float maxv = -INFINITY;
        for (int i = 0; i < C; i++)
            if (x[i] > maxv)
                maxv = x[i];
        if (maxv == -INFINITY) {
            for (int i = 0; i < C; i++)
                y[i] = 0.0f;
            continue;
        }
        double sum = 0.0;
        for (int i = 0; i < C; i++) {
            y[i] = expf(x[i] - maxv);
            sum += y[i];
        }
        float inv = (float)(1.0 / sum);
        for (int i = 0; i < C; i++)
            y[i] *= inv;
    }
}
