/*
 * kernels/cpu/matmul_packed.c - a dense layer whose weight is packed in
 * panels of 16 output rows (the reference; see include/kiln/kernels.h).
 *
 * Packed layout of weight[OC, C]: panel p holds output rows 16p .. 16p+15,
 * feature-major: wp[(p * C + c) * 16 + i] = weight[16p + i, c], zero past
 * OC. A decoder step multiplies a handful of rows by every weight; in this
 * layout one 16-float load serves 16 outputs, and a panel (C * 64 bytes)
 * stays in cache while every row uses it.
 */
#include "kiln/kernels.h"

size_t kiln_packed_size(int OC, int C) { return (size_t)((OC + 15) / 16) * 16 * C; }

void kiln_pack16_cpu(float *dst, const float *weight, int OC, int C) {
    for (int p = 0; p < (OC + 15) / 16; p++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < 16; i++) {
                int o = p * 16 + i;
                dst[((size_t)p * C + c) * 16 + i] = o < OC ? weight[(size_t)o * C + c] : 0.0f;
            }
}

void kiln_matmul_packed_cpu(float *out, const float *inp, const float *wp, const float *bias,
                            int N, int C, int OC) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            const float *w = wp + (size_t)(o / 16) * C * 16 + o % 16;
            float acc = 0.0f;
            for (int c = 0; c < C; c++)
                acc += inp[(size_t)n * C + c] * w[(size_t)c * 16];
            out[(size_t)n * OC + o] = acc + (bias ? bias[o] : 0.0f);
        }
}
