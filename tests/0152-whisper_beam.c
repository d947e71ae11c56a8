/*
 * tests/0152-whisper_beam.c - kiln's beam search (beam 5) against golden
 * tokens from faster-whisper / CTranslate2 with beam_size=5 on the same
 * weights (tests/golden/whisper-tiny.en-dev-beam5.tsv, made by
 * tests/golden/make_whisper_golden.py --beam 5), plus the decoding options
 * around it: temperature fallback and conditioning on previous text run and
 * keep their contracts.
 *
 * Needs var/models/whisper-tiny.en and the dev speech set (skips, 77,
 * without them). KILN_WHISPER_GOLDEN_ALL=1 checks every file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/audio.h"
#include "kiln/whisper.h"
#include "tests/test.h"
#include "tests/whisper_test_util.h"

#define GOLDEN "tests/golden/whisper-tiny.en-dev-beam5.tsv"
#define GOLDEN_DEFAULTS "tests/golden/whisper-tiny.en-dev-defaults.tsv"

int main(void) {
    char err[512];
    kiln_wt_need_model_and_dev();

    SUB_TEST("load tiny.en and the beam-5 golden file");
    kiln_whisper_model_t *m = kiln_whisper_model_load(KILN_WT_MODEL_DIR, err, sizeof(err));
    TEST_ASSERT(m != NULL, "%s", err);
    static kiln_wt_golden_t g[KILN_WT_MAX];
    int ng = kiln_wt_load_golden(GOLDEN, g, KILN_WT_MAX);
    TEST_ASSERT(ng > 0, "could not read %s", GOLDEN);
    SUB_TEST_PASS();

    const char *quick[] = {"LJ001-0002.flac", "LJ001-0033.wav", "LJ001-0041.wav",
                           "fleurs-en-000.ogg", "fleurs-en-003.ogg"};
    int all = getenv("KILN_WHISPER_GOLDEN_ALL") != NULL;
    static kiln_wt_set_t ds;
    const int n = kiln_wt_decode_set(&ds, g, ng, quick, (int)(sizeof(quick) / sizeof(quick[0])));
    SUB_TEST("decode dev audio");
    TEST_ASSERT(n > 0, "no dev file could be decoded");
    SUB_TEST_PASS();

    kiln_whisper_params_t p = kiln_whisper_greedy_params();
    p.beam_size = 5;
    p.max_batch = 8;
    kiln_whisper_result_t res[KILN_WT_MAX];
    memset(res, 0, sizeof(res));
    SUB_TEST("beam-5 tokens equal faster-whisper's (batched)");
    kiln_err_t e = kiln_whisper_transcribe(m, &p, ds.pcm, ds.ns, n, res);
    TEST_CHECK(e == KILN_OK, "transcribe: %s", kiln_err2str(e));
    kiln_wt_check_tokens(res, ds.want, n);
    SUB_TEST_PASS();

    /* the scores behind the thresholds: avg log-prob and no-speech probability */
    SUB_TEST("segments' avg_logprob and no_speech_prob equal faster-whisper's (1e-3)");
    kiln_wt_check_scores(res, ds.want, n);
    SUB_TEST_PASS();

    SUB_TEST("beam at batch 1 gives the batch's tokens");
    {
        kiln_whisper_params_t p1 = p;
        p1.max_batch = 1;
        kiln_whisper_result_t one;
        memset(&one, 0, sizeof(one));
        kiln_whisper_transcribe(m, &p1, &ds.pcm[n - 1], &ds.ns[n - 1], 1, &one);
        TEST_CHECK(one.n_tokens == res[n - 1].n_tokens &&
                       !memcmp(one.tokens, res[n - 1].tokens, sizeof(int) * one.n_tokens),
                   "batch-1 differs: %s", one.text ? one.text : one.error);
        kiln_whisper_result_clear(&one);
    }
    SUB_TEST_PASS();

    /*
     * faster-whisper's defaults: beam 5, fallback, conditioning on the
     * previous windows' text. Where faster-whisper stayed at temperature 0
     * (every dev file at the time of writing) the tokens must be equal;
     * elsewhere sampling is random and only the fallback itself is checked.
     */
    SUB_TEST("faster-whisper defaults (conditioning, fallback): same tokens where T = 0");
    {
        static kiln_wt_golden_t gd[KILN_WT_MAX];
        int ngd = kiln_wt_load_golden(GOLDEN_DEFAULTS, gd, KILN_WT_MAX);
        TEST_ASSERT(ngd > 0, "could not read %s", GOLDEN_DEFAULTS);
        kiln_whisper_params_t pd = kiln_whisper_default_params();
        pd.max_batch = 8;
        /* quick: the two-window file, where conditioning changes the result */
        const float *dp[KILN_WT_MAX];
        size_t dn[KILN_WT_MAX];
        kiln_wt_golden_t *dg[KILN_WT_MAX];
        int k = 0;
        for (int i = 0; i < n; i++) {
            if (!all && strcmp(ds.want[i]->file, "LJ001-0033.wav"))
                continue;
            for (int j = 0; j < ngd; j++)
                if (!strcmp(gd[j].file, ds.want[i]->file)) {
                    dp[k] = ds.pcm[i];
                    dn[k] = ds.ns[i];
                    dg[k++] = &gd[j];
                }
        }
        kiln_whisper_result_t *r = calloc((size_t)(k ? k : 1), sizeof(*r));
        e = kiln_whisper_transcribe(m, &pd, dp, dn, k, r);
        TEST_CHECK(e == KILN_OK, "transcribe: %s", kiln_err2str(e));
        for (int i = 0; i < k; i++) {
            int t0 = 1;
            for (int s = 0; s < dg[i]->n_seg; s++)
                t0 &= dg[i]->seg_temp[s] == 0.0f;
            int fell_back = 0;
            for (int s = 0; s < r[i].n_segments; s++)
                fell_back |= r[i].segments[s].temperature > 0.0f;
            int same = r[i].n_tokens == dg[i]->n &&
                       !memcmp(r[i].tokens, dg[i]->tokens, sizeof(int) * dg[i]->n);
            printf("# defaults %s %s: %s\n", dg[i]->file,
                   !t0 ? "(faster-whisper fell back)" : same ? "same" : "DIFFERENT",
                   r[i].text ? r[i].text : r[i].error);
            if (t0) {
                TEST_CHECK(same && !fell_back, "%s: tokens differ (kiln fell back: %d)",
                           dg[i]->file, fell_back);
                for (int s = 0; same && s < r[i].n_segments && s < dg[i]->n_seg; s++) {
                    double dl = r[i].segments[s].avg_logprob - dg[i]->seg_lp[s];
                    TEST_CHECK(dl < 1e-3 && dl > -1e-3, "%s segment %d: avg_logprob %.6f, "
                               "golden %.6f", dg[i]->file, s, r[i].segments[s].avg_logprob,
                               dg[i]->seg_lp[s]);
                }
            } else {
                TEST_CHECK(fell_back, "%s: faster-whisper fell back, kiln did not",
                           dg[i]->file);
            }
            for (int s = 0; s < r[i].n_segments; s++)
                TEST_CHECK(r[i].segments[s].compression_ratio > 0.0f,
                           "compression ratio %f (zlib missing?)",
                           r[i].segments[s].compression_ratio);
            kiln_whisper_result_clear(&r[i]);
        }
        free(r);
    }
    SUB_TEST_PASS();

    /*
     * Forced fallback: with a log-prob threshold of 0 every attempt fails, so
     * the window goes through every temperature (sampling, best_of 5) and
     * faster-whisper's rule picks the best avg log-prob, reported with the
     * last temperature. Same seed, same result.
     */
    SUB_TEST("forced temperature fallback: all attempts, best kept, reproducible");
    {
        kiln_whisper_params_t pf = kiln_whisper_default_params();
        pf.logprob_threshold = 0.0f;
        pf.no_speech_threshold = 1.0f;
        pf.condition_on_previous_text = 0;
        kiln_whisper_params_t p0 = pf;
        p0.n_temperatures = 1;
        kiln_whisper_result_t a, b, z;
        memset(&a, 0, sizeof(a));
        memset(&b, 0, sizeof(b));
        memset(&z, 0, sizeof(z));
        kiln_whisper_transcribe(m, &p0, &ds.pcm[0], &ds.ns[0], 1, &z);
        kiln_whisper_transcribe(m, &pf, &ds.pcm[0], &ds.ns[0], 1, &a);
        kiln_whisper_transcribe(m, &pf, &ds.pcm[0], &ds.ns[0], 1, &b);
        TEST_CHECK(a.err == KILN_OK && a.n_segments > 0, "%s", a.text ? a.text : a.error);
        TEST_CHECK(z.n_segments > 0, "temperature-0 run gave nothing");
        if (a.n_segments > 0 && z.n_segments > 0) {
            TEST_CHECK(a.segments[0].temperature == 1.0f, "temperature %f",
                       a.segments[0].temperature);
            TEST_CHECK(a.segments[0].avg_logprob >= z.segments[0].avg_logprob - 1e-6f,
                       "kept %f, temperature 0 had %f", a.segments[0].avg_logprob,
                       z.segments[0].avg_logprob);
        }
        TEST_CHECK(a.n_tokens == b.n_tokens && a.text && b.text && !strcmp(a.text, b.text),
                   "not reproducible: \"%s\" vs \"%s\"", a.text ? a.text : "",
                   b.text ? b.text : "");
        printf("# forced fallback: \"%s\" (temperature 0: \"%s\")\n", a.text ? a.text : "",
               z.text ? z.text : "");
        kiln_whisper_result_clear(&a);
        kiln_whisper_result_clear(&b);
        kiln_whisper_result_clear(&z);
    }
    SUB_TEST_PASS();

    for (int i = 0; i < n; i++)
        kiln_whisper_result_clear(&res[i]);
    kiln_wt_set_free(&ds);
    kiln_whisper_model_destroy(m);
    return TEST_DONE();
}
