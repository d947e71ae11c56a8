/*
 * models/whisper/mel.c - Whisper's log-mel front end, on the model's backend.
 *
 * Computed exactly as faster-whisper's FeatureExtractor (and, up to the
 * length of the trailing zero padding, openai/whisper's log_mel_spectrogram):
 *   1. append 160 zero samples; reflect-pad 200 samples on both sides
 *      (torch.stft(center=True));
 *   2. frames every 160 samples, 400-sample periodic Hann window (here, on
 *      the host), then the kernels' power_spectrum op: |rfft|^2 of the 201
 *      bins (FFTW on the CPU, cuFFT on CUDA); the last frame is dropped, so
 *      n_frames = n_samples / 160 + 1;
 *   3. Slaney mel filters (80 or 128) and log10 with a 1e-10 floor (the
 *      kernels' logmel op, with the model's copy of the filters);
 *   4. clamp to (global max - 8), then (x + 4) / 4 (host).
 * On a device backend (kiln_whisper_model_set_backend()) the windowed
 * frames are uploaded in blocks of KILN_MEL_CHUNK and each block's log-mel
 * downloaded, under the kernels' device lock. A 30 s window is then frames
 * [seek, seek + 3000), zero-padded after the content (models/whisper/whisper.c).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/kernels.h"
#include "models/whisper/whisper_int.h"

#define KILN_MEL_NFFT 400
#define KILN_MEL_HOP 160
#define KILN_MEL_NFREQ (KILN_MEL_NFFT / 2 + 1)
#define KILN_MEL_CHUNK 1000 /* frames per power/mel block */

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
    const kiln_kernels_t *kk = m->kk ? m->kk : kiln_kernels_get(KILN_BACKEND_CPU);
    const float *filters = m->wd ? m->wd->mel_filters : m->mel_filters;
    const int dev = !kk->host_memory;
    const size_t nfr = (size_t)KILN_MEL_CHUNK * KILN_MEL_NFFT;
    const size_t npw = (size_t)KILN_MEL_CHUNK * KILN_MEL_NFREQ, nbl = (size_t)M * KILN_MEL_CHUNK;
    float *mel = malloc(sizeof(float) * (size_t)M * F);
    float *frames = malloc(sizeof(float) * nfr), *block = malloc(sizeof(float) * nbl);
    float *power = dev ? NULL : malloc(sizeof(float) * npw);
    float *dframes = frames, *dpower = power, *dblock = block;
    float window[KILN_MEL_NFFT];
    kiln_err_t err = KILN_ERR__NOMEM;
    *out = NULL;
    *n_frames = 0;
    kiln_kernels_lock(kk);
    if (dev) {
        dframes = kk->alloc(sizeof(float) * nfr);
        dpower = kk->alloc(sizeof(float) * npw);
        dblock = kk->alloc(sizeof(float) * nbl);
    }
    if (!mel || !frames || !block || !dframes || !dpower || !dblock)
        goto out;
    for (int k = 0; k < KILN_MEL_NFFT; k++)
        window[k] = (float)(0.5 - 0.5 * cos(2.0 * M_PI * k / KILN_MEL_NFFT));
    for (size_t t0 = 0; t0 < F; t0 += KILN_MEL_CHUNK) {
        int Tc = (int)(F - t0 < KILN_MEL_CHUNK ? F - t0 : KILN_MEL_CHUNK);
        for (int t = 0; t < Tc; t++) {
            long long base = (long long)(t0 + t) * KILN_MEL_HOP;
            float *fr = frames + (size_t)t * KILN_MEL_NFFT;
            for (int k = 0; k < KILN_MEL_NFFT; k++)
                fr[k] = window[k] * kiln_mel_sample_(pcm, n_samples, base + k);
        }
        if (dev)
            kk->upload(dframes, frames, sizeof(float) * (size_t)Tc * KILN_MEL_NFFT);
        kk->power_spectrum(dpower, dframes, Tc, KILN_MEL_NFFT);
        kk->logmel(dblock, dpower, filters, Tc, KILN_MEL_NFREQ, M);
        if (dev)
            kk->download(block, dblock, sizeof(float) * (size_t)M * Tc);
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
    *out = mel;
    *n_frames = (int)F;
    mel = NULL;
    err = KILN_OK;
out:
    if (dev) {
        kk->free(dframes);
        kk->free(dpower);
        kk->free(dblock);
    }
    kiln_kernels_unlock(kk);
    free(mel);
    free(frames);
    free(power);
    free(block);
    return err;
}
