/*
 * kiln/audio.h - audio decoding for the workers and the submit CLI.
 *
 * Input bytes in memory are decoded with libsndfile (virtual I/O: wav, flac,
 * ogg vorbis, ogg opus, and whatever else libsndfile reads), down-mixed to
 * mono and resampled with libsoxr to the target rate (16 kHz for Whisper).
 * The decoder also measures what the null engine reports: duration, RMS and
 * peak level in dBFS.
 *
 * Errors: KILN_ERR_BAD_INPUT (undecodable, empty, zero-length audio),
 * KILN_ERR_TOO_LARGE (longer than max_seconds). Never crashes on bad bytes.
 */
#ifndef KILN_AUDIO_H
#define KILN_AUDIO_H

#include <stddef.h>

#include "kiln/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/** rms_dbfs / peak_dbfs reported for digital silence. */
#define KILN_AUDIO_SILENCE_DBFS (-120.0)

typedef struct kiln_audio_s {
    float *pcm;           /* mono samples in [-1, 1] at sample_rate; malloc'ed */
    size_t n_samples;
    int sample_rate;      /* after resampling */
    int src_rate;         /* as found in the file */
    int src_channels;
    double duration_s;    /* n_samples / sample_rate */
    double rms_dbfs;      /* -inf (reported as -120) for digital silence */
    double peak_dbfs;
    char format[48];      /* "<major>/<subtype>": "FLAC/PCM_16", "OGG/OPUS", "WAV/PCM_16" */
} kiln_audio_t;

/**
 * Decodes \p len bytes at \p data into \p out, resampled to \p target_rate.
 * Audio longer than \p max_seconds (0: no limit) is rejected with
 * KILN_ERR_TOO_LARGE before it is fully decoded. \p target_rate must be in
 * 1000..768000 Hz (else KILN_ERR__INVALID_ARG); sources outside that range
 * are KILN_ERR_BAD_INPUT. On success \p out->pcm is malloc'ed: release it
 * with kiln_audio_free(). On failure \p out is left zeroed and \p errstr says why.
 */
kiln_err_t kiln_audio_decode(const void *data, size_t len, int target_rate, double max_seconds,
                             kiln_audio_t *out, char *errstr, size_t errstr_size);

/**
 * Like kiln_audio_decode(), but reads the file at \p path (streamed, never
 * loaded whole). KILN_ERR_IO when the file cannot be opened.
 */
kiln_err_t kiln_audio_decode_file(const char *path, int target_rate, double max_seconds,
                                  kiln_audio_t *out, char *errstr, size_t errstr_size);

/**
 * Reads only the header of the file at \p path: duration in seconds,
 * sample rate and channels (any may be NULL).
 * @returns KILN_OK; KILN_ERR_IO when the file cannot be opened;
 *          KILN_ERR_BAD_INPUT when it is not audio or has zero frames.
 */
kiln_err_t kiln_audio_probe_file(const char *path, double *duration_s, int *rate,
                                 int *channels, char *errstr, size_t errstr_size);

/** Frees the samples; \p a itself is not freed. NULL is fine. */
void kiln_audio_free(kiln_audio_t *a);

#ifdef __cplusplus
}
#endif
#endif
