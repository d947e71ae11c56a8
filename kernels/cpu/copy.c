/*
 * kernels/cpu/copy.c - the data movement of a decoder step as kernel ops
 * (see include/kiln/kernels.h): token embedding plus position, KV-cache
 * appends, row gathers, a bias on the rows of a transposed product, strided
 * copies and a transpose. A model that calls these instead of touching its
 * buffers on the host runs unchanged on a backend whose memory is a GPU's
 * (kernels/cuda/copy.cu has the same ops).
 *
 * Both CPU tables ("ref" and "cpu") use these: every op moves a few rows
 * (or one 80 x 3000 mel window), is bound by memory, and did the same work
 * inline in models/whisper/whisper.c before; the arithmetic (one float add
 * for embed and add_rowbias) is the same, so the model's output is bit for
 * bit what it was.
 */
#include <string.h>

#include "kiln/kernels.h"

void kiln_embed_cpu(float *out, const float *tok_emb, const float *pos_emb, const int *tok,
                    const int *pos, int N, int C) {
    for (int r = 0; r < N; r++) {
        const float *e = tok_emb + (size_t)tok[r] * C;
        const float *p = pos_emb + (size_t)pos[r] * C;
        float *x = out + (size_t)r * C;
        for (int c = 0; c < C; c++)
            x[c] = e[c] + p[c];
    }
}

void kiln_kv_append_cpu(float *const *kt, int ldkt, float *const *v, int ldv, const float *k,
                        const float *val, int ldx, const int *pos, int N, int C) {
    for (int r = 0; r < N; r++) {
        const float *kr = k + (size_t)r * ldx;
        float *col = kt[r] + pos[r];
        for (int c = 0; c < C; c++)
            col[(size_t)c * ldkt] = kr[c];
        memcpy(v[r] + (size_t)pos[r] * ldv, val + (size_t)r * ldx, sizeof(float) * C);
    }
}

void kiln_gather_rows_cpu(float *out, const float *inp, const int *idx, int N, int C) {
    for (int i = 0; i < N; i++)
        memcpy(out + (size_t)i * C, inp + (size_t)idx[i] * C, sizeof(float) * C);
}

void kiln_add_rowbias_cpu(float *x, const float *bias, int N, int T) {
    for (int n = 0; n < N; n++) {
        float b = bias[n], *row = x + (size_t)n * T;
        for (int t = 0; t < T; t++)
            row[t] += b;
    }
}

void kiln_copy2d_cpu(float *dst, size_t ldd, const float *src, size_t lds, int rows, int cols) {
    if (ldd == lds && ldd == (size_t)cols) {
        memcpy(dst, src, sizeof(float) * (size_t)rows * cols);
        return;
    }
    for (int i = 0; i < rows; i++)
        memcpy(dst + (size_t)i * ldd, src + (size_t)i * lds, sizeof(float) * cols);
}

void kiln_transpose_cpu(float *out, const float *inp, int R, int C) {
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++)
            out[(size_t)c * R + r] = inp[(size_t)r * C + c];
}
