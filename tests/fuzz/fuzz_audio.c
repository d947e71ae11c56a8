/*
 * tests/fuzz/fuzz_audio.c - the audio decode entry point, kiln_audio_decode()
 * (lib/audio.c): libsndfile over virtual I/O on a memory buffer, down-mix,
 * libsoxr resampling to 16 kHz, as a worker runs it on every input.
 *
 * The limit is 10 s (workers default to 4 h; the code path is the same and
 * short inputs keep the fuzzer fast). On success the samples must be finite
 * and in [-1, 1], the duration within the limit, the levels consistent.
 */
#include <math.h>

#include "kiln/audio.h"
#include "tests/fuzz/fuzz.h"

#define KILN_FUZZ_AUDIO_MAX_S 10.0

static int kiln_fuzz_audio(const uint8_t *data, size_t size) {
    kiln_audio_t a;
    char err[512];
    err[0] = '\0';
    kiln_err_t rc = kiln_audio_decode(data, size, 16000, KILN_FUZZ_AUDIO_MAX_S, &a, err,
                                      sizeof(err));
    if (rc == KILN_OK) {
        KILN_FUZZ_CHECK(a.pcm && a.n_samples > 0);
        KILN_FUZZ_CHECK(a.sample_rate == 16000);
        KILN_FUZZ_CHECK(a.src_channels >= 1 && a.src_rate >= 1000 && a.src_rate <= 768000);
        /* the resampler may add a few ms of tail beyond the source's length */
        KILN_FUZZ_CHECK(a.duration_s <= KILN_FUZZ_AUDIO_MAX_S + 1.0);
        KILN_FUZZ_CHECK(a.peak_dbfs <= 0.0 + 1e-9 && a.rms_dbfs <= a.peak_dbfs + 1e-9);
        KILN_FUZZ_CHECK(a.format[0] != '\0');
        for (size_t i = 0; i < a.n_samples; i++)
            KILN_FUZZ_CHECK(isfinite(a.pcm[i]) && a.pcm[i] >= -1.0f && a.pcm[i] <= 1.0f);
    } else {
        KILN_FUZZ_CHECK(a.pcm == NULL && a.n_samples == 0);
        KILN_FUZZ_CHECK(rc == KILN_ERR_BAD_INPUT || rc == KILN_ERR_TOO_LARGE ||
                        rc == KILN_ERR__FAIL || rc == KILN_ERR__NOMEM);
        KILN_FUZZ_CHECK(err[0] != '\0');
    }
    kiln_audio_free(&a);
    return 0;
}

KILN_FUZZ_MAIN(kiln_fuzz_audio)
