/*
 * kernels/cpu/logmel.c - mel projection + log10 of a power spectrogram.
 *
 * out[m, t] = log10(max(sum_f filters[m, f] * power[t, f], 1e-10)), i.e.
 * Whisper's `mel_filters @ magnitudes` followed by the clamp and log10.
 * The product is one sgemm: out[n_mels, T] = filters[n_mels, F] @ power[T, F]^T.
 */
#include <cblas.h>
#include <math.h>

#include "kiln/kernels.h"

void kiln_logmel_cpu(float *out, const float *frames_power, const float *filters, int T,
                     int n_freq, int n_mels) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_mels, T, n_freq, 1.0f, filters,
                n_freq, frames_power, n_freq, 0.0f, out, T);
    for (size_t i = 0; i < (size_t)n_mels * T; i++)
        out[i] = log10f(out[i] > 1e-10f ? out[i] : 1e-10f);
}
