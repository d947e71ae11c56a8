/*
 * kernels/cpu/gelu.c - exact GELU (the erf form, PyTorch nn.GELU() default,
 * which Whisper uses): y = x * 0.5 * (1 + erf(x / sqrt(2))).
 */
#include <math.h>

#include "kiln/kernels.h"

void kiln_gelu_cpu(float *out, const float *inp, size_t n) {
    const float inv_sqrt2 = 0.70710678118654752f;
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + erff(x * inv_sqrt2));
    }
}
