/*
 * tests/0604-voice_batch.c - a batch of sentences gives the audio of each
 * sentence alone, whatever the schedule.
 *
 * kiln_voice_synth_ids() runs a batch one sequence per pool thread (each
 * sequence's ops inline), and a lone sequence with its ops spread over the
 * pool; sequence b's noise comes from seed + b * 0x9e3779b9. So:
 *   - a batch of 5 sentences (2 pool threads, stochastic mode: noise_scale
 *     and noise_w the voice's) = each sentence alone with its seed, on 2
 *     threads and on 1: identical durations, and the samples equal to
 *     float rounding (max difference 1e-4; the sgemm blocks differ with
 *     the thread count; in practice they are bit-identical);
 *   - an empty sequence or an id outside the vocabulary fails the call
 *     with KILN_ERR__INVALID_ARG and leaves no audio.
 *
 * Needs the voice (make voices, or KILN_VOICE); skips (77) without it.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kiln/kernels.h"
#include "kiln/voice.h"
#include "tests/test.h"
#include "tests/voice_test_util.h"

#define NS VOICE_TEST_SENTENCES

/* @returns max |x[i] - ref[i]| over n samples */
static double max_diff_(const float *x, const float *ref, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fabs((double)x[i] - ref[i]) > m ? fabs((double)x[i] - ref[i]) : m;
    return m;
}

/* Sentence b alone, its batch seed, on \p threads threads; compared with \p a. */
static void check_alone_(kiln_voice_t *v, const kiln_voice_text_t *tx, int b,
                         const kiln_voice_audio_t *a, int threads) {
    char err[256];
    kiln_voice_params_t p = kiln_voice_default_params();
    kiln_voice_audio_t one = {0};
    const int *ids = tx->s[b].ids;
    p.seed += (uint64_t)b * 0x9e3779b9ull;
    kiln_kernels_set_threads(threads);
    kiln_err_t e = kiln_voice_synth_ids(v, &ids, &tx->s[b].n_ids, 1, &p, &one, err, sizeof(err));
    TEST_ASSERT(e == KILN_OK, "sentence %d alone: %s", b, err);
    TEST_CHECK(one.n_samples == a->n_samples, "sentence %d: %zu samples alone, %zu in the batch",
               b, one.n_samples, a->n_samples);
    TEST_CHECK(!memcmp(one.durations, a->durations, (size_t)a->n_ids * sizeof(int)),
               "sentence %d: durations differ between batch and alone (%d threads)", b, threads);
    size_t n = one.n_samples < a->n_samples ? one.n_samples : a->n_samples;
    double md = max_diff_(one.pcm, a->pcm, n);
    TEST_CHECK(md <= 1e-4, "sentence %d: samples differ by up to %g alone (%d threads) vs batch",
               b, md, threads);
    printf("# sentence %d: %zu samples, max difference alone (%d threads) vs batch %g\n", b, n,
           threads, md);
    kiln_voice_audio_clear(&one);
}

int main(void) {
    char err[512];
    kiln_voice_text_t tx;
    kiln_voice_t *v = voice_test_load_text(&tx);

    SUB_TEST("a batch on 2 threads = each sentence alone (2 threads, 1 thread)");
    const int *ids[NS];
    int n_ids[NS];
    for (int b = 0; b < NS; b++) {
        ids[b] = tx.s[b].ids;
        n_ids[b] = tx.s[b].n_ids;
    }
    kiln_voice_params_t p = kiln_voice_default_params();
    kiln_voice_audio_t a[NS];
    kiln_kernels_set_threads(2);
    TEST_ASSERT(kiln_voice_synth_ids(v, ids, n_ids, NS, &p, a, err, sizeof(err)) == KILN_OK, "%s",
                err);
    for (int b = 0; b < NS; b++) {
        TEST_CHECK(a[b].n_samples > 0 && a[b].n_ids == n_ids[b], "sentence %d: no audio", b);
        double e = 0;
        for (size_t i = 0; i < a[b].n_samples; i++)
            e += (double)a[b].pcm[i] * a[b].pcm[i];
        TEST_CHECK(e > 1e-3, "sentence %d is silent", b);
    }
    for (int b = 0; b < NS; b++) {
        check_alone_(v, &tx, b, &a[b], 2);
        check_alone_(v, &tx, b, &a[b], 1);
    }
    SUB_TEST_PASS();

    SUB_TEST("an empty sequence or a bad id fails the batch, no audio left");
    kiln_voice_audio_t bad[NS];
    int n_bad[NS];
    memcpy(n_bad, n_ids, sizeof(n_bad));
    n_bad[3] = 0;
    kiln_kernels_set_threads(2);
    TEST_CHECK(kiln_voice_synth_ids(v, ids, n_bad, NS, &p, bad, err, sizeof(err)) ==
                   KILN_ERR__INVALID_ARG,
               "empty sequence accepted");
    TEST_CHECK(strstr(err, "empty") != NULL, "message: %s", err);
    int wrong[3] = {1, 9999, 2}, n3 = 3;
    const int *wp = wrong;
    TEST_CHECK(kiln_voice_synth_ids(v, &wp, &n3, 1, &p, bad, err, sizeof(err)) ==
                   KILN_ERR__INVALID_ARG,
               "id 9999 accepted");
    TEST_CHECK(strstr(err, "outside the vocabulary") != NULL, "message: %s", err);
    SUB_TEST_PASS();

    for (int b = 0; b < NS; b++)
        kiln_voice_audio_clear(&a[b]);
    kiln_voice_text_clear(&tx);
    kiln_voice_destroy(v);
    return TEST_DONE();
}
