/*
 * kernels/cpu/attention_kv.c - attention of single query rows to their own
 * keys (a decoder step), the reference (see include/kiln/kernels.h).
 *
 * For row s and head h, with keys stored transposed (kt: feature-major)
 * and values row-major:
 *   score_j = sum_e q[h*D + e] * kt[(h*D + e) * ldkt + j] / sqrt(D),  j < Tk[s]
 *   p       = softmax(score)
 *   out_d   = sum_j p_j * v[j * ldv + h*D + d]
 */
#include <math.h>

#include "kiln/kernels.h"

void kiln_attention_kv_cpu(float *out, int ldo, const float *q, int ldq,
                           const float *const *kt, int ldkt, const float *const *v, int ldv,
                           const int *Tk, int S, int H, int D, float *scratch) {
    const float scale = 1.0f / sqrtf((float)D);
    for (int s = 0; s < S; s++) {
        const int T = Tk[s];
        float *p = scratch; /* [T] */
        for (int h = 0; h < H; h++) {
            const float *qh = q + (size_t)s * ldq + h * D;
            for (int j = 0; j < T; j++) {
                float acc = 0.0f;
                for (int e = 0; e < D; e++)
                    acc += qh[e] * kt[s][(size_t)(h * D + e) * ldkt + j];
                p[j] = acc * scale;
            }
            kiln_softmax_cpu(p, p, 1, T);
            float *o = out + (size_t)s * ldo + h * D;
            for (int d = 0; d < D; d++) {
                float acc = 0.0f;
                for (int j = 0; j < T; j++)
                    acc += p[j] * v[s][(size_t)j * ldv + h * D + d];
                o[d] = acc;
            }
        }
    }
}
