/*
 * kernels/cpu/power_spectrum.c - |rfft(x)|^2 of windowed frames with FFTW
 * (the reference; the CUDA backend uses cuFFT): frames [T, n_fft] ->
 * power [T, n_fft/2 + 1]. Whisper's front end (models/whisper/mel.c) frames
 * and windows the signal (n_fft 400, hop 160, Hann) and calls the same FFT.
 */
#include <fftw3.h>
#include <pthread.h>
#include <string.h>

#include "kiln/kernels.h"

/* FFTW's planner is not thread-safe; execution with new arrays is. */
static pthread_mutex_t kiln_ps_plan_lock_ = PTHREAD_MUTEX_INITIALIZER;

void kiln_power_spectrum_cpu(float *power, const float *frames, int T, int n_fft) {
    const int F = n_fft / 2 + 1;
    float *in = fftwf_malloc(sizeof(float) * n_fft);
    fftwf_complex *spec = fftwf_malloc(sizeof(fftwf_complex) * F);
    fftwf_plan plan = NULL;
    if (in && spec) {
        pthread_mutex_lock(&kiln_ps_plan_lock_);
        plan = fftwf_plan_dft_r2c_1d(n_fft, in, spec, FFTW_ESTIMATE);
        pthread_mutex_unlock(&kiln_ps_plan_lock_);
    }
    if (!plan) {
        kiln_kernels_set_error_();
    } else {
        for (int t = 0; t < T; t++) {
            memcpy(in, frames + (size_t)t * n_fft, sizeof(float) * n_fft);
            fftwf_execute_dft_r2c(plan, in, spec);
            float *p = power + (size_t)t * F;
            for (int f = 0; f < F; f++)
                p[f] = spec[f][0] * spec[f][0] + spec[f][1] * spec[f][1];
        }
        pthread_mutex_lock(&kiln_ps_plan_lock_);
        fftwf_destroy_plan(plan);
        pthread_mutex_unlock(&kiln_ps_plan_lock_);
    }
    fftwf_free(in);
    fftwf_free(spec);
}
