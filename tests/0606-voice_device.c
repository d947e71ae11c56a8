/*
 * tests/0606-voice_device.c - the device path of the voice (the whole
 * model as a ragged batch of kernel-table ops: encoder, duration
 * predictor, expansion, flow and decoder; models/voice/vits_dev.c) gives
 * the CPU engine's durations and audio.
 *
 * Without a GPU the path runs on the "ref" table (host memory, treated as
 * a device: weights copied, z uploaded, audio downloaded), which is the
 * code the CUDA backend runs. Checked, on 5 sentences of the real voice:
 *   - backend "ref" vs "cpu", same seed (stochastic mode): identical
 *     durations, and per-sentence SNR >= 60 dB (the two paths sum the
 *     same products in different orders: measured 93-113 dB here, and
 *     86.8 dB at worst with identical durations on all 51 sentences of
 *     tests/golden/voice_corpus.txt);
 *   - the ragged batch equals each sentence alone on "ref" (max difference
 *     <= 1e-5: a sequence never reads its neighbours; sgemm blocking may
 *     differ with the row count);
 *   - sub-batches (device_batch_samples = 1: every sentence alone) give the
 *     same audio as one batch;
 *   - deterministic mode (noise_scale = noise_w = 0; the device path then
 *     draws no expansion noise): ref = cpu, SNR >= 60 dB, same durations;
 *   - set_backend errors: an unknown backend or precision is
 *     KILN_ERR__INVALID_ARG; "cuda" in a build without a GPU is
 *     KILN_ERR__UNSUPPORTED with the reason; and the voice stays usable;
 *   - where the CUDA backend is registered (a CUDA=1 build on a machine with
 *     a GPU: make test-gpu) the same comparison runs on "cuda" in fp32
 *     (SNR >= 50 dB) and tf32 (SNR >= 30 dB: tf32 rounds the matmul inputs
 *     to 10 mantissa bits), allowing one sentence of five whose durations
 *     moved (cuBLAS sums in another order, and a frame count is a ceil();
 *     the text side is fp32 in both modes). ref must match exactly.
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

/* @returns the SNR of x against ref in dB (infinite when equal). */
static double snr_db_(const float *x, const float *ref, size_t n) {
    double s = 0, e = 0;
    for (size_t i = 0; i < n; i++) {
        s += (double)ref[i] * ref[i];
        e += ((double)x[i] - ref[i]) * ((double)x[i] - ref[i]);
    }
    return e == 0 ? INFINITY : 10.0 * log10(s / e);
}

static double max_diff_(const float *x, const float *ref, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fabs((double)x[i] - ref[i]) > m ? fabs((double)x[i] - ref[i]) : m;
    return m;
}

/* Synthesises the batch on v's current backend into a[NS]. */
static int deterministic; /* noise_scale = noise_w = 0 (Piper's parity settings) */

static void synth_(kiln_voice_t *v, const int *const *ids, const int *n_ids, int B,
                   size_t dev_samples, kiln_voice_audio_t *a) {
    char err[256];
    kiln_voice_params_t p = kiln_voice_default_params();
    p.device_batch_samples = dev_samples;
    if (deterministic)
        p.noise_scale = p.noise_w = 0.0f;
    kiln_err_t e = kiln_voice_synth_ids(v, ids, n_ids, B, &p, a, err, sizeof(err));
    TEST_ASSERT(e == KILN_OK, "synthesis on %s: %s", kiln_voice_backend(v), err);
}

/*
 * Compares the batch a with ref: durations equal and SNR >= min_db per
 * sentence; up to \p slack sentences may differ in their durations (a
 * frame count is ceil() of a float: another summation order can move one
 * by a frame), and those are reported, not compared sample by sample.
 */
static void compare_(const char *what, const kiln_voice_audio_t *a, const kiln_voice_audio_t *ref,
                     int B, double min_db, int slack) {
    int moved = 0;
    for (int b = 0; b < B; b++) {
        int same = a[b].n_ids == ref[b].n_ids &&
                   !memcmp(a[b].durations, ref[b].durations, (size_t)a[b].n_ids * sizeof(int));
        if (!same) {
            printf("# %s, sentence %d: durations differ (%zu vs %zu samples)\n", what, b,
                   a[b].n_samples, ref[b].n_samples);
            moved++;
            continue;
        }
        TEST_CHECK(a[b].n_samples == ref[b].n_samples, "%s, sentence %d: %zu samples, %zu expected",
                   what, b, a[b].n_samples, ref[b].n_samples);
        size_t n = a[b].n_samples < ref[b].n_samples ? a[b].n_samples : ref[b].n_samples;
        double db = snr_db_(a[b].pcm, ref[b].pcm, n);
        TEST_CHECK(db >= min_db, "%s, sentence %d: SNR %.1f dB < %.0f dB", what, b, db, min_db);
        printf("# %s, sentence %d: %zu samples, SNR %.1f dB, max difference %g\n", what, b, n, db,
               max_diff_(a[b].pcm, ref[b].pcm, n));
    }
    TEST_CHECK(moved <= slack, "%s: durations differ in %d sentences (at most %d allowed)", what,
               moved, slack);
}

int main(void) {
    char err[512];
    kiln_voice_text_t tx;
    kiln_voice_t *v = voice_test_load_text(&tx);
    const int *ids[NS];
    int n_ids[NS];
    for (int b = 0; b < NS; b++) {
        ids[b] = tx.s[b].ids;
        n_ids[b] = tx.s[b].n_ids;
    }
    kiln_voice_audio_t cpu[NS], ref[NS], part[NS];

    SUB_TEST("backend ref (the device code path on the host) = the CPU engine");
    TEST_CHECK(!strcmp(kiln_voice_backend(v), "cpu"), "default backend %s", kiln_voice_backend(v));
    synth_(v, ids, n_ids, NS, 0, cpu);
    TEST_ASSERT(kiln_voice_set_backend(v, "ref", NULL, err, sizeof(err)) == KILN_OK, "%s", err);
    TEST_CHECK(!strcmp(kiln_voice_backend(v), "ref"), "backend %s", kiln_voice_backend(v));
    synth_(v, ids, n_ids, NS, 0, ref);
    compare_("ref vs cpu", ref, cpu, NS, 60.0, 0);
    SUB_TEST_PASS();

    SUB_TEST("a ragged batch = each sentence alone; sub-batches = one batch");
    for (int b = 0; b < NS; b++) {
        kiln_voice_audio_t one = {0};
        kiln_voice_params_t p = kiln_voice_default_params();
        p.seed += (uint64_t)b * 0x9e3779b9ull;
        TEST_ASSERT(kiln_voice_synth_ids(v, &ids[b], &n_ids[b], 1, &p, &one, err,
                                         sizeof(err)) == KILN_OK,
                    "%s", err);
        TEST_CHECK(one.n_samples == ref[b].n_samples, "sentence %d: %zu vs %zu samples", b,
                   one.n_samples, ref[b].n_samples);
        double md = max_diff_(one.pcm, ref[b].pcm, one.n_samples);
        TEST_CHECK(md <= 1e-5, "sentence %d alone differs from the batch by %g", b, md);
        printf("# sentence %d alone vs in the ragged batch: max difference %g\n", b, md);
        kiln_voice_audio_clear(&one);
    }
    synth_(v, ids, n_ids, NS, 1, part);
    for (int b = 0; b < NS; b++) {
        double md = max_diff_(part[b].pcm, ref[b].pcm, part[b].n_samples);
        TEST_CHECK(md <= 1e-5, "sentence %d: sub-batches differ from one batch by %g", b, md);
        kiln_voice_audio_clear(&part[b]);
    }
    SUB_TEST_PASS();

    SUB_TEST("deterministic mode (noise_scale = noise_w = 0, no noise drawn on ref) = cpu");
    deterministic = 1;
    TEST_ASSERT(kiln_voice_set_backend(v, "cpu", NULL, err, sizeof(err)) == KILN_OK, "%s", err);
    synth_(v, ids, n_ids, NS, 0, part);
    TEST_ASSERT(kiln_voice_set_backend(v, "ref", NULL, err, sizeof(err)) == KILN_OK, "%s", err);
    kiln_voice_audio_t det[NS];
    synth_(v, ids, n_ids, NS, 0, det);
    compare_("deterministic, ref vs cpu", det, part, NS, 60.0, 0);
    for (int b = 0; b < NS; b++) {
        kiln_voice_audio_clear(&part[b]);
        kiln_voice_audio_clear(&det[b]);
    }
    deterministic = 0;
    SUB_TEST_PASS();

    SUB_TEST("set_backend: bad names and a missing GPU are errors, the voice stays usable");
    TEST_CHECK(kiln_voice_set_backend(v, "tpu", NULL, err, sizeof(err)) == KILN_ERR__INVALID_ARG,
               "backend tpu accepted");
    TEST_CHECK(strstr(err, "tpu") != NULL, "message: %s", err);
    TEST_CHECK(kiln_voice_set_backend(v, "ref", "fp8", err, sizeof(err)) ==
                   KILN_ERR__INVALID_ARG,
               "precision fp8 accepted");
    if (!kiln_kernels_get(KILN_BACKEND_CUDA)) {
        TEST_CHECK(kiln_voice_set_backend(v, "cuda", NULL, err, sizeof(err)) ==
                       KILN_ERR__UNSUPPORTED,
                   "cuda without a GPU accepted");
        printf("# cuda: %s\n", err);
    }
    TEST_CHECK(!strcmp(kiln_voice_backend(v), "ref"), "backend is %s after the failures",
               kiln_voice_backend(v));
    TEST_ASSERT(kiln_voice_set_backend(v, "cpu", NULL, err, sizeof(err)) == KILN_OK, "%s", err);
    synth_(v, ids, n_ids, NS, 0, part);
    compare_("cpu again", part, cpu, NS, 200.0, 0);
    for (int b = 0; b < NS; b++)
        kiln_voice_audio_clear(&part[b]);
    SUB_TEST_PASS();

    if (kiln_kernels_get(KILN_BACKEND_CUDA)) { /* a CUDA build with a GPU (make test-gpu) */
        SUB_TEST("backend cuda = the CPU engine (fp32, tf32)");
        static const char *prec[] = {"fp32", "tf32"};
        static const double min_db[] = {50.0, 30.0};
        for (int i = 0; i < 2; i++) {
            TEST_ASSERT(kiln_voice_set_backend(v, "cuda", prec[i], err, sizeof(err)) == KILN_OK,
                        "%s", err);
            synth_(v, ids, n_ids, NS, 0, part);
            char what[32];
            snprintf(what, sizeof(what), "cuda %s vs cpu", prec[i]);
            compare_(what, part, cpu, NS, min_db[i], 1);
            for (int b = 0; b < NS; b++)
                kiln_voice_audio_clear(&part[b]);
        }
        SUB_TEST_PASS();
    }

    for (int b = 0; b < NS; b++) {
        kiln_voice_audio_clear(&cpu[b]);
        kiln_voice_audio_clear(&ref[b]);
    }
    kiln_voice_text_clear(&tx);
    kiln_voice_destroy(v);
    return TEST_DONE();
}
