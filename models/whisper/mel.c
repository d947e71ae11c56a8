/*
 * models/whisper/mel.c - Whisper's log-mel front end on the CPU.
 *
 * Computed exactly as faster-whisper's FeatureExtractor (and, up to the
 * length of the trailing zero padding, openai/whisper's log_mel_spectrogram):
 *   1. append 160 zero samples; reflect-pad 200 samples on both sides
 *      (torch.stft(center=True));
 *   2. frames every 160 samples, 400-sample periodic Hann window, real FFT
 *      (FFTW), power |X|^2 of the 201 bins; the last frame is dropped, so
 *      n_frames = n_samples / 160 + 1;
 *   3. Slaney mel filters (80 or 128) and log10 with a 1e-10 floor
 *      (kernels' logmel op);
 *   4. clamp to (global max - 8), then (x + 4) / 4.
 * A 30 s window is then frames [seek, seek + 3000), zero-padded after the
 * content (models/whisper/whisper.c).
 */
#include <fftw3.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/kernels.h"
#include "models/whisper/whisper_int.h"

#define KILN_MEL_NFFT 400
#define KILN_MEL_HOP 160
#define KILN_MEL_NFREQ (KILN_MEL_NFFT / 2 + 1)
#define KILN_MEL_CHUNK 1000 /* frames per power/mel block */

/* FFTW's planner is not thread-safe; execution with new arrays is. */
static pthread_mutex_t kiln_mel_plan_lock_ = PTHREAD_MUTEX_INITIALIZER;

/* Sample i of the 160-zero-padded signal reflected 200 samples at both ends. */
static float kiln_mel_sample_(const float *pcm, size_t n, long long i) {
    long long L = (long long)n + KILN_MEL_HOP;
    i -= KILN_MEL_NFFT / 2;
    /* reflect (numpy mode "reflect": the edge sample is not repeated) */
    while (i < 0 || i >= L) {
        if (i < 0)
            i = -i;
        if (i >= L)
            i = 2 * (L - 1) - i;
        if (L == 1) {
            i = 0;
            break;
        }
    }
    return i < (long long)n ? pcm[i] : 0.0f;
}

kiln_err_t kiln_whisper_log_mel(const kiln_whisper_model_t *m, const float *pcm,
                                size_t n_samples, float **out, int *n_frames) {
    const int M = m->hp.n_mels;
    const size_t F = n_samples / KILN_MEL_HOP + 1;
    const kiln_kernels_t *kk = kiln_kernels_get(KILN_BACKEND_CPU);
    float *mel = malloc(sizeof(float) * (size_t)M * F);
    float *power = malloc(sizeof(float) * KILN_MEL_CHUNK * KILN_MEL_NFREQ);
    float *block = malloc(sizeof(float) * (size_t)M * KILN_MEL_CHUNK);
    float *in = fftwf_malloc(sizeof(float) * KILN_MEL_NFFT);
    fftwf_complex *spec = fftwf_malloc(sizeof(fftwf_complex) * KILN_MEL_NFREQ);
    float window[KILN_MEL_NFFT];
    fftwf_plan plan = NULL;
    *out = NULL;
    *n_frames = 0;
    if (!mel || !power || !block || !in || !spec)
        goto oom;
    pthread_mutex_lock(&kiln_mel_plan_lock_);
    plan = fftwf_plan_dft_r2c_1d(KILN_MEL_NFFT, in, spec, FFTW_ESTIMATE);
    pthread_mutex_unlock(&kiln_mel_plan_lock_);
    if (!plan)
        goto oom;
    for (int k = 0; k < KILN_MEL_NFFT; k++)
        window[k] = (float)(0.5 - 0.5 * cos(2.0 * M_PI * k / KILN_MEL_NFFT));

    for (size_t t0 = 0; t0 < F; t0 += KILN_MEL_CHUNK) {
        int Tc = (int)(F - t0 < KILN_MEL_CHUNK ? F - t0 : KILN_MEL_CHUNK);
        for (int t = 0; t < Tc; t++) {
            long long base = (long long)(t0 + t) * KILN_MEL_HOP;
            for (int k = 0; k < KILN_MEL_NFFT; k++)
                in[k] = window[k] * kiln_mel_sample_(pcm, n_samples, base + k);
            fftwf_execute_dft_r2c(plan, in, spec);
            float *p = power + (size_t)t * KILN_MEL_NFREQ;
            for (int f = 0; f < KILN_MEL_NFREQ; f++)
                p[f] = spec[f][0] * spec[f][0] + spec[f][1] * spec[f][1];
        }
        kk->logmel(block, power, m->mel_filters, Tc, KILN_MEL_NFREQ, M);
        for (int mm = 0; mm < M; mm++)
            memcpy(mel + (size_t)mm * F + t0, block + (size_t)mm * Tc, sizeof(float) * Tc);
    }
    float maxv = -INFINITY;
    for (size_t i = 0; i < (size_t)M * F; i++)
        if (mel[i] > maxv)
            maxv = mel[i];
    for (size_t i = 0; i < (size_t)M * F; i++) {
        float v = mel[i] > maxv - 8.0f ? mel[i] : maxv - 8.0f;
        mel[i] = (v + 4.0f) / 4.0f;
    }
    pthread_mutex_lock(&kiln_mel_plan_lock_);
    fftwf_destroy_plan(plan);
    pthread_mutex_unlock(&kiln_mel_plan_lock_);
    free(power);
    free(block);
    fftwf_free(in);
    fftwf_free(spec);
    *out = mel;
    *n_frames = (int)F;
    return KILN_OK;
oom:
    free(mel);
    free(power);
    free(block);
    fftwf_free(in);
    fftwf_free(spec);
    return KILN_ERR__NOMEM;
}
