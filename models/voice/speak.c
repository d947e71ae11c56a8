/*
 * models/voice/speak.c - text in, one stream of audio out: phonemise
 * (models/voice/frontend.c, espeak-ng), synthesise every sentence in one
 * batch (kiln_voice_synth_ids(), models/voice/vits.c), normalise each
 * sentence as Piper does and join them with the requested silence.
 * Apart from vits.c so that a program that synthesises phoneme ids (the
 * GPU benchmark) links no espeak-ng.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/voice/voice_int.h"

kiln_err_t kiln_voice_speak_text(kiln_voice_t *v, const kiln_voice_text_t *tx,
                                 const kiln_voice_params_t *p, kiln_voice_audio_t *out,
                                 char *errstr, size_t errstr_size) {
    kiln_voice_params_t dp = kiln_voice_default_params();
    kiln_err_t err;
    if (!p)
        p = &dp;
    memset(out, 0, sizeof(*out));
    int B = tx->n;
    const int **ids = malloc((size_t)B * sizeof(*ids));
    int *n = malloc((size_t)B * sizeof(*n));
    kiln_voice_audio_t *a = calloc((size_t)B, sizeof(*a));
    err = KILN_ERR__NOMEM;
    if (!ids || !n || !a)
        goto out;
    for (int b = 0; b < B; b++) {
        ids[b] = tx->s[b].ids;
        n[b] = tx->s[b].n_ids;
    }
    err = kiln_voice_synth_ids(v, ids, n, B, p, a, errstr, errstr_size);
    if (err)
        goto out;
    size_t sil = p->sentence_silence > 0 ? (size_t)(p->sentence_silence * v->sample_rate) : 0;
    size_t total = 0;
    int total_ids = 0;
    for (int b = 0; b < B; b++) {
        total += a[b].n_samples + sil;
        total_ids += a[b].n_ids;
    }
    err = KILN_ERR__NOMEM;
    out->pcm = calloc(total ? total : 1, sizeof(float));
    out->durations = malloc((size_t)total_ids * sizeof(int));
    out->sent_start = malloc((size_t)(B + 1) * sizeof(size_t));
    if (!out->pcm || !out->durations || !out->sent_start) {
        kiln_voice_audio_clear(out);
        goto out;
    }
    size_t off = 0;
    int k = 0;
    for (int b = 0; b < B; b++) {
        float peak = 0.0f, gain = 1.0f;
        for (size_t i = 0; i < a[b].n_samples; i++)
            peak = fabsf(a[b].pcm[i]) > peak ? fabsf(a[b].pcm[i]) : peak;
        if (p->normalize)
            gain = peak < 1e-8f ? 0.0f : 1.0f / peak;
        out->sent_start[b] = off;
        for (size_t i = 0; i < a[b].n_samples; i++) {
            float s = a[b].pcm[i] * gain;
            out->pcm[off + i] = s > 1.0f ? 1.0f : s < -1.0f ? -1.0f : s;
        }
        off += a[b].n_samples + sil;
        memcpy(out->durations + k, a[b].durations, (size_t)a[b].n_ids * sizeof(int));
        k += a[b].n_ids;
    }
    out->sent_start[B] = off;
    out->n_samples = total;
    out->n_ids = total_ids;
    out->n_sent = B;
    err = KILN_OK;
out:
    if (a)
        for (int b = 0; b < B; b++)
            kiln_voice_audio_clear(&a[b]);
    free(a);
    free(ids);
    free(n);
    return err;
}

kiln_err_t kiln_voice_speak(kiln_voice_t *v, const char *text, const kiln_voice_params_t *p,
                            kiln_voice_audio_t *out, char *errstr, size_t errstr_size) {
    kiln_voice_text_t tx;
    memset(out, 0, sizeof(*out));
    kiln_err_t err = kiln_voice_phonemize(v, text, &tx, errstr, errstr_size);
    if (err)
        return err;
    err = kiln_voice_speak_text(v, &tx, p, out, errstr, errstr_size);
    kiln_voice_text_clear(&tx);
    return err;
}
