/*
 * kernels/cpu/matmul.c - dense layer: out[N, OC] = inp[N, C] @ weight[OC, C]^T + bias.
 *
 * The reference leans on OpenBLAS cblas_sgemm for the product (the one
 * place the CPU path is not plain C) and adds the bias in a plain loop.
 * Shape letters: see include/kiln/kernels.h.
 */
#include <cblas.h>

#include "kiln/kernels.h"

void kiln_matmul_cpu(float *out, const float *inp, const float *weight, const float *bias,
                     int N, int C, int OC) {
    if (N <= 0 || OC <= 0)
        return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, weight, C,
                0.0f, out, OC);
    if (!bias)
        return;
    for (int n = 0; n < N; n++) {
        float *o = out + (size_t)n * OC;
        for (int j = 0; j < OC; j++)
            o[j] += bias[j];
    }
}
