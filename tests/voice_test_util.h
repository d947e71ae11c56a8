/*
 * tests/voice_test_util.h - helpers shared by the voice tests (0601, 0604,
 * 0606): where the real voice is (KILN_VOICE, else
 * var/models/voices/en_US-joe-medium; the test skips with 77 when it is not
 * fetched), and the five-sentence text that 0604 and 0606 synthesise.
 *
 * Header-only (static inline), included after "tests/test.h", like
 * tests/whisper_test_util.h.
 */
#ifndef KILN_VOICE_TEST_UTIL_H
#define KILN_VOICE_TEST_UTIL_H

#include <stdlib.h>
#include <unistd.h>

#include "kiln/voice.h"
#include "tests/test.h"

/* five sentences, of 3 to 9 words */
#define VOICE_TEST_TEXT                                                                      \
    "Hello, world! How are you today? The quick brown fox jumps over the lazy dog. Why? It " \
    "was the best of times."
#define VOICE_TEST_SENTENCES 5

/* @returns the voice's path; skips the test (exit 77) when it is not there. */
static inline const char *voice_test_path(void) {
    const char *vp = getenv("KILN_VOICE") ? getenv("KILN_VOICE")
                                          : "var/models/voices/en_US-joe-medium";
    if (access(vp, R_OK))
        TEST_SKIP("voice %s not fetched (make voices)", vp);
    return vp;
}

/* Loads the voice and phonemises VOICE_TEST_TEXT into *tx (asserting 5 sentences). */
static inline kiln_voice_t *voice_test_load_text(kiln_voice_text_t *tx) {
    char err[512];
    kiln_voice_t *v = kiln_voice_load(voice_test_path(), err, sizeof(err));
    TEST_ASSERT(v != NULL, "%s", err);
    TEST_ASSERT(kiln_voice_phonemize(v, VOICE_TEST_TEXT, tx, err, sizeof(err)) == KILN_OK, "%s",
                err);
    TEST_ASSERT(tx->n == VOICE_TEST_SENTENCES, "%d sentences, expected %d", tx->n,
                VOICE_TEST_SENTENCES);
    return v;
}

#endif
