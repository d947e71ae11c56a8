/*
 * kernels/cpu/add.c - element-wise sum out = a + b (the residual connection).
 */
#include "kiln/kernels.h"

void kiln_add_cpu(float *out, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}
