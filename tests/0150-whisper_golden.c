/*
 * tests/0150-whisper_golden.c - kiln's Whisper against golden tokens from an
 * independent implementation (faster-whisper / CTranslate2, greedy, same
 * weights; tests/golden/make_whisper_golden.py made the file), plus the
 * silence rules.
 *
 * Needs var/models/whisper-tiny.en (models/whisper/fetch.sh) and the dev
 * speech set (../shared/data/speech/dev, or KILN_SPEECH_DEV); skips (77)
 * without them. KILN_WHISPER_GOLDEN_ALL=1 checks every file of the golden
 * list instead of the quick subset.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/audio.h"
#include "kiln/whisper.h"
#include "tests/test.h"
#include "tests/whisper_test_util.h"

#define GOLDEN "tests/golden/whisper-tiny.en-dev.tsv"

int main(void) {
    char err[512];
    kiln_wt_need_model_and_dev();

    SUB_TEST("load tiny.en (CTranslate2)");
    kiln_whisper_model_t *m = kiln_whisper_model_load(KILN_WT_MODEL_DIR, err, sizeof(err));
    TEST_ASSERT(m != NULL, "%s", err);
    const kiln_whisper_hparams_t *hp = kiln_whisper_model_hparams(m);
    TEST_CHECK(hp->n_vocab == 51864 && hp->n_audio_layer == 4 && hp->n_text_state == 384 &&
                   hp->n_mels == 80, "hparams %d %d %d %d", hp->n_vocab, hp->n_audio_layer,
               hp->n_text_state, hp->n_mels);
    SUB_TEST_PASS();

    static kiln_wt_golden_t g[KILN_WT_MAX];
    int ng = kiln_wt_load_golden(GOLDEN, g, KILN_WT_MAX);
    SUB_TEST("golden file");
    TEST_ASSERT(ng > 0, "could not read %s", GOLDEN);
    SUB_TEST_PASS();

    /* quick subset: short LJ files, one FLAC, one Opus, and the long-form file */
    const char *quick[] = {"LJ001-0002.flac", "LJ001-0033.wav", "fleurs-en-000.ogg",
                           "longform-dev-01.wav"};
    kiln_whisper_params_t p = kiln_whisper_greedy_params();
    p.max_batch = 8;
    static kiln_wt_set_t ds;
    const int n = kiln_wt_decode_set(&ds, g, ng, quick, (int)(sizeof(quick) / sizeof(quick[0])));
    SUB_TEST("decode dev audio");
    TEST_ASSERT(n > 0, "no dev file could be decoded");
    SUB_TEST_PASS();

    /* all files in one batched call: windows of different files share batches */
    kiln_whisper_result_t res[KILN_WT_MAX];
    memset(res, 0, sizeof(res));
    SUB_TEST("greedy tokens equal faster-whisper's (batched)");
    kiln_err_t e = kiln_whisper_transcribe(m, &p, ds.pcm, ds.ns, n, res);
    TEST_CHECK(e == KILN_OK, "transcribe: %s", kiln_err2str(e));
    kiln_wt_check_tokens(res, ds.want, n);
    SUB_TEST_PASS();

    /* the scores behind the thresholds: avg log-prob and no-speech probability */
    SUB_TEST("segments' avg_logprob and no_speech_prob equal faster-whisper's (1e-3)");
    kiln_wt_check_scores(res, ds.want, n);
    SUB_TEST_PASS();

    SUB_TEST("long-form file has several windows and ordered segments");
    for (int i = 0; i < n; i++) {
        if (strcmp(ds.want[i]->file, "longform-dev-01.wav"))
            continue;
        TEST_CHECK(res[i].n_windows >= 7, "%d windows", res[i].n_windows);
        for (int s = 1; s < res[i].n_segments; s++)
            TEST_CHECK(res[i].segments[s].start >= res[i].segments[s - 1].start &&
                           res[i].segments[s].end >= res[i].segments[s].start,
                       "segment %d [%.2f, %.2f]", s, res[i].segments[s].start,
                       res[i].segments[s].end);
        TEST_CHECK(res[i].n_segments > 0 &&
                       res[i].segments[res[i].n_segments - 1].end > 150.0,
                   "last segment ends at %.2f", res[i].n_segments
                       ? res[i].segments[res[i].n_segments - 1].end : 0.0);
    }
    SUB_TEST_PASS();

    SUB_TEST("batch of 1 gives the same tokens as the batch");
    kiln_whisper_params_t p1 = p;
    p1.max_batch = 1;
    kiln_whisper_result_t one;
    memset(&one, 0, sizeof(one));
    kiln_whisper_transcribe(m, &p1, &ds.pcm[0], &ds.ns[0], 1, &one);
    TEST_CHECK(one.n_tokens == res[0].n_tokens &&
                   !memcmp(one.tokens, res[0].tokens, sizeof(int) * one.n_tokens),
               "batch-1 differs: %s", one.text ? one.text : one.error);
    kiln_whisper_result_clear(&one);
    SUB_TEST_PASS();

    SUB_TEST("30 s of digital silence, near-silence and low noise give empty transcripts");
    {
        size_t N = 30 * 16000;
        float *zero = calloc(N, sizeof(float)), *tiny = calloc(N, sizeof(float));
        float *noise = malloc(N * sizeof(float));
        uint64_t x = 88172645463325252ull;
        for (size_t i = 0; i < N; i++) { /* uniform noise at about -65 dBFS RMS */
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            noise[i] = 0.001f * (float)((double)(x >> 11) / 9007199254740992.0 * 2.0 - 1.0);
        }
        tiny[N / 2] = 1e-7f; /* not all zero: the model runs on it */
        const float *sp[3] = {zero, tiny, noise};
        size_t sn[3] = {N, N, N};
        const char *what[3] = {"digital silence", "near-silence", "low noise"};
        kiln_whisper_result_t sr[3];

        /* Whisper's own rules alone invent text here; kiln's no_speech_skip must not */
        kiln_whisper_params_t pz = p;
        pz.no_speech_skip = 2.0f;
        memset(sr, 0, sizeof(sr));
        kiln_whisper_transcribe(m, &pz, &sp[1], &sn[1], 1, &sr[0]);
        printf("# Whisper's rules alone on near-silence: \"%s\"\n",
               sr[0].text ? sr[0].text : sr[0].error);
        kiln_whisper_result_clear(&sr[0]);

        memset(sr, 0, sizeof(sr));
        kiln_whisper_transcribe(m, &p, sp, sn, 3, sr);
        for (int i = 0; i < 3; i++) {
            TEST_CHECK(sr[i].err == KILN_OK && sr[i].text && !sr[i].text[0] &&
                           sr[i].n_segments == 0, "%s gave \"%s\"", what[i],
                       sr[i].text ? sr[i].text : sr[i].error);
            kiln_whisper_result_clear(&sr[i]);
        }
        free(zero);
        free(tiny);
        free(noise);
    }
    SUB_TEST_PASS();

    for (int i = 0; i < n; i++)
        kiln_whisper_result_clear(&res[i]);
    kiln_wt_set_free(&ds);
    kiln_whisper_model_destroy(m);
    return TEST_DONE();
}
