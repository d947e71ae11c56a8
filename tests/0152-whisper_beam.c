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
#include <sys/stat.h>

#include "kiln/audio.h"
#include "kiln/whisper.h"
#include "tests/test.h"

#define MODEL_DIR "var/models/whisper-tiny.en"
#define GOLDEN "tests/golden/whisper-tiny.en-dev-beam5.tsv"

typedef struct {
    char file[128];
    int tokens[1024];
    int n;
} golden_t;

static int load_golden(golden_t *g, int max) {
    FILE *fp = fopen(GOLDEN, "r");
    char line[16384];
    int n = 0;
    if (!fp)
        return -1;
    while (n < max && fgets(line, sizeof(line), fp)) {
        char *f = strtok(line, "\t");
        strtok(NULL, "\t");
        char *toks = strtok(NULL, "\t");
        if (!f || !toks)
            continue;
        snprintf(g[n].file, sizeof(g[n].file), "%s", f);
        g[n].n = 0;
        for (char *t = strtok(toks, " "); t && g[n].n < 1024; t = strtok(NULL, " "))
            g[n].tokens[g[n].n++] = atoi(t);
        n++;
    }
    fclose(fp);
    return n;
}

int main(void) {
    struct stat st;
    const char *dev = getenv("KILN_SPEECH_DEV") ? getenv("KILN_SPEECH_DEV")
                                                 : "../shared/data/speech/dev";
    char err[512];
    if (stat(MODEL_DIR "/model.bin", &st) != 0)
        TEST_SKIP("%s absent (run models/whisper/fetch.sh)", MODEL_DIR);
    if (stat(dev, &st) != 0)
        TEST_SKIP("speech set %s absent", dev);

    SUB_TEST("load tiny.en and the beam-5 golden file");
    kiln_whisper_model_t *m = kiln_whisper_model_load(MODEL_DIR, err, sizeof(err));
    TEST_ASSERT(m != NULL, "%s", err);
    static golden_t g[64];
    int ng = load_golden(g, 64);
    TEST_ASSERT(ng > 0, "could not read %s", GOLDEN);
    SUB_TEST_PASS();

    const char *quick[] = {"LJ001-0002.flac", "LJ001-0033.wav", "LJ001-0041.wav",
                           "fleurs-en-000.ogg", "fleurs-en-003.ogg"};
    int all = getenv("KILN_WHISPER_GOLDEN_ALL") != NULL;
    int nq = all ? ng : (int)(sizeof(quick) / sizeof(quick[0]));
    const float *pcm[64];
    size_t ns[64];
    kiln_audio_t au[64];
    golden_t *want[64];
    int n = 0;
    for (int q = 0; q < nq; q++) {
        const char *name = all ? g[q].file : quick[q];
        golden_t *gg = NULL;
        for (int i = 0; i < ng; i++)
            if (!strcmp(g[i].file, name))
                gg = &g[i];
        char path[1024];
        if (!gg || strlen(dev) + strlen(name) + 2 > sizeof(path))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dev, name);
        memset(&au[n], 0, sizeof(au[n]));
        if (kiln_audio_decode_file(path, 16000, 0, &au[n], err, sizeof(err)) != KILN_OK) {
            printf("# %s: %s\n", name, err);
            continue;
        }
        pcm[n] = au[n].pcm;
        ns[n] = au[n].n_samples;
        want[n++] = gg;
    }
    SUB_TEST("decode dev audio");
    TEST_ASSERT(n > 0, "no dev file could be decoded");
    SUB_TEST_PASS();

    kiln_whisper_params_t p = kiln_whisper_greedy_params();
    p.beam_size = 5;
    p.max_batch = 8;
    kiln_whisper_result_t res[64];
    memset(res, 0, sizeof(res));
    SUB_TEST("beam-5 tokens equal faster-whisper's (batched)");
    kiln_err_t e = kiln_whisper_transcribe(m, &p, pcm, ns, n, res);
    TEST_CHECK(e == KILN_OK, "transcribe: %s", kiln_err2str(e));
    int n_equal = 0;
    for (int i = 0; i < n; i++) {
        int same = res[i].err == KILN_OK && res[i].n_tokens == want[i]->n &&
                   !memcmp(res[i].tokens, want[i]->tokens, sizeof(int) * want[i]->n);
        n_equal += same;
        printf("# %s %s: %s\n", want[i]->file, same ? "same" : "DIFFERENT",
               res[i].text ? res[i].text : res[i].error);
        if (!same) {
            printf("#   kiln  :");
            for (int k = 0; k < res[i].n_tokens; k++)
                printf(" %d", res[i].tokens[k]);
            printf("\n#   golden:");
            for (int k = 0; k < want[i]->n; k++)
                printf(" %d", want[i]->tokens[k]);
            printf("\n");
        }
    }
    TEST_CHECK(n_equal == n, "%d of %d files differ", n - n_equal, n);
    SUB_TEST_PASS();

    SUB_TEST("beam at batch 1 gives the batch's tokens");
    {
        kiln_whisper_params_t p1 = p;
        p1.max_batch = 1;
        kiln_whisper_result_t one;
        memset(&one, 0, sizeof(one));
        kiln_whisper_transcribe(m, &p1, &pcm[n - 1], &ns[n - 1], 1, &one);
        TEST_CHECK(one.n_tokens == res[n - 1].n_tokens &&
                       !memcmp(one.tokens, res[n - 1].tokens, sizeof(int) * one.n_tokens),
                   "batch-1 differs: %s", one.text ? one.text : one.error);
        kiln_whisper_result_clear(&one);
    }
    SUB_TEST_PASS();

    SUB_TEST("faster-whisper defaults (fallback, conditioning) run and segment in order");
    {
        kiln_whisper_params_t pd = kiln_whisper_default_params();
        kiln_whisper_result_t r[3];
        memset(r, 0, sizeof(r));
        int k = n < 3 ? n : 3;
        e = kiln_whisper_transcribe(m, &pd, pcm, ns, k, r);
        TEST_CHECK(e == KILN_OK, "transcribe: %s", kiln_err2str(e));
        for (int i = 0; i < k; i++) {
            TEST_CHECK(r[i].err == KILN_OK && r[i].text && r[i].text[0], "file %d: %s", i,
                       r[i].text ? r[i].text : r[i].error);
            for (int s = 0; s < r[i].n_segments; s++) {
                TEST_CHECK(r[i].segments[s].temperature >= 0.0f &&
                               r[i].segments[s].temperature <= 1.0f,
                           "temperature %f", r[i].segments[s].temperature);
                TEST_CHECK(r[i].segments[s].compression_ratio > 0.0f &&
                               r[i].segments[s].compression_ratio < 2.4f,
                           "compression ratio %f", r[i].segments[s].compression_ratio);
                if (s > 0)
                    TEST_CHECK(r[i].segments[s].start >= r[i].segments[s - 1].start,
                               "segment order");
            }
            printf("# defaults %s: %s\n", want[i]->file, r[i].text ? r[i].text : r[i].error);
            kiln_whisper_result_clear(&r[i]);
        }
    }
    SUB_TEST_PASS();

    for (int i = 0; i < n; i++) {
        kiln_whisper_result_clear(&res[i]);
        kiln_audio_free(&au[i]);
    }
    kiln_whisper_model_destroy(m);
    return TEST_DONE();
}
