/*
 * kernels/cpu/attention.c - multi-head scaled dot-product attention of one
 * sequence, with an optional causal mask (see include/kiln/kernels.h).
 *
 * Per head h, with Q_h = q[:, h*D : h*D+D] (and K_h, V_h alike):
 *   S   = Q_h K_h^T / sqrt(D)          [Tq, Tk]   (cblas_sgemm)
 *   S   = -inf where key > Tk - Tq + t  (causal only)
 *   P   = softmax(S) row-wise
 *   O_h = P V_h                         [Tq, D]    (cblas_sgemm)
 * The strides ldq/ldk/ldv/ldo let the caller pass slices of a fused QKV
 * buffer (or a KV cache) without copying.
 */
#include <cblas.h>
#include <math.h>

#include "kiln/kernels.h"

void kiln_attention_cpu(float *out, int ldo, const float *q, int ldq, const float *k, int ldk,
                        const float *v, int ldv, int Tq, int Tk, int H, int D, int causal,
                        float *scratch) {
    const float scale = 1.0f / sqrtf((float)D);
    float *s = scratch; /* [Tq, Tk] */
    for (int h = 0; h < H; h++) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Tq, Tk, D, scale, q + h * D, ldq,
                    k + h * D, ldk, 0.0f, s, Tk);
        if (causal) {
            for (int t = 0; t < Tq; t++) {
                int last = Tk - Tq + t; /* last key this query may see */
                for (int j = last + 1; j < Tk; j++)
                    s[(size_t)t * Tk + j] = -INFINITY;
            }
        }
        kiln_softmax_cpu(s, s, Tq, Tk);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Tq, D, Tk, 1.0f, s, Tk,
                    v + h * D, ldv, 0.0f, out + h * D, ldo);
    }
}
