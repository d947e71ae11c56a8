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
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kiln/audio.h"
#include "kiln/whisper.h"
#include "tests/test.h"

#define MODEL_DIR "var/models/whisper-tiny.en"
#define GOLDEN "tests/golden/whisper-tiny.en-dev.tsv"

static char *read_file(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(fp);
    if (buf) {
        buf[n] = '\0';
        *len = (size_t)n;
    }
    return buf;
}

typedef struct {
    char file[128];
    int tokens[1024];
    int n;
    float seg_lp[64], seg_nsp[64]; /* per segment: avg_logprob, no_speech_prob */
    int n_seg;
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
        strtok(NULL, "\t"); /* text */
        char *lps = strtok(NULL, "\t\n");
        if (!f || !toks)
            continue;
        snprintf(g[n].file, sizeof(g[n].file), "%s", f);
        g[n].n = 0;
        g[n].n_seg = 0;
        char *save = NULL;
        for (char *t = strtok_r(toks, " ", &save); t && g[n].n < 1024; t = strtok_r(NULL, " ", &save))
            g[n].tokens[g[n].n++] = atoi(t);
        for (char *t = lps ? strtok_r(lps, " ", &save) : NULL; t && g[n].n_seg < 64;
             t = strtok_r(NULL, " ", &save)) {
            g[n].seg_lp[g[n].n_seg] = strtof(t, NULL);
            g[n].seg_nsp[g[n].n_seg++] = strchr(t, '/') ? strtof(strchr(t, '/') + 1, NULL) : 0;
        }
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

    SUB_TEST("load tiny.en (CTranslate2)");
    kiln_whisper_model_t *m = kiln_whisper_model_load(MODEL_DIR, err, sizeof(err));
    TEST_ASSERT(m != NULL, "%s", err);
    const kiln_whisper_hparams_t *hp = kiln_whisper_model_hparams(m);
    TEST_CHECK(hp->n_vocab == 51864 && hp->n_audio_layer == 4 && hp->n_text_state == 384 &&
                   hp->n_mels == 80, "hparams %d %d %d %d", hp->n_vocab, hp->n_audio_layer,
               hp->n_text_state, hp->n_mels);
    SUB_TEST_PASS();

    static golden_t g[64];
    int ng = load_golden(g, 64);
    SUB_TEST("golden file");
    TEST_ASSERT(ng > 0, "could not read %s", GOLDEN);
    SUB_TEST_PASS();

    /* quick subset: short LJ files, one FLAC, one Opus, and the long-form file */
    const char *quick[] = {"LJ001-0002.flac", "LJ001-0033.wav", "fleurs-en-000.ogg",
                           "longform-dev-01.wav"};
    int all = getenv("KILN_WHISPER_GOLDEN_ALL") != NULL;
    int nq = all ? ng : (int)(sizeof(quick) / sizeof(quick[0]));

    kiln_whisper_params_t p = kiln_whisper_greedy_params();
    p.max_batch = 8;
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
        if (!gg)
            continue;
        char path[1024];
        size_t len;
        if (strlen(dev) + strlen(name) + 2 > sizeof(path))
            continue;
        strcpy(path, dev);
        strcat(path, "/");
        strcat(path, name);
        char *bytes = read_file(path, &len);
        if (!bytes)
            continue;
        memset(&au[n], 0, sizeof(au[n]));
        kiln_err_t e = kiln_audio_decode(bytes, len, 16000, 0, &au[n], err, sizeof(err));
        free(bytes);
        if (e != KILN_OK) {
            printf("# %s: %s\n", name, err);
            continue;
        }
        pcm[n] = au[n].pcm;
        ns[n] = au[n].n_samples;
        want[n] = gg;
        n++;
    }
    SUB_TEST("decode dev audio");
    TEST_ASSERT(n > 0, "no dev file could be decoded");
    SUB_TEST_PASS();

    /* all files in one batched call: windows of different files share batches */
    kiln_whisper_result_t res[64];
    memset(res, 0, sizeof(res));
    SUB_TEST("greedy tokens equal faster-whisper's (batched)");
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

    /* the scores behind the thresholds: avg log-prob and no-speech probability */
    SUB_TEST("segments' avg_logprob and no_speech_prob equal faster-whisper's (1e-3)");
    for (int i = 0; i < n; i++) {
        if (res[i].err != KILN_OK || !want[i]->n_seg)
            continue;
        TEST_CHECK(res[i].n_segments == want[i]->n_seg, "%s: %d segments, golden %d",
                   want[i]->file, res[i].n_segments, want[i]->n_seg);
        for (int s = 0; s < res[i].n_segments && s < want[i]->n_seg; s++) {
            double dl = res[i].segments[s].avg_logprob - want[i]->seg_lp[s];
            double dn = res[i].segments[s].no_speech_prob - want[i]->seg_nsp[s];
            TEST_CHECK(dl < 1e-3 && dl > -1e-3 && dn < 1e-3 && dn > -1e-3,
                       "%s segment %d: avg_logprob %.6f (golden %.6f), no_speech_prob %.6f "
                       "(golden %.6f)", want[i]->file, s, res[i].segments[s].avg_logprob,
                       want[i]->seg_lp[s], res[i].segments[s].no_speech_prob,
                       want[i]->seg_nsp[s]);
        }
    }
    SUB_TEST_PASS();

    SUB_TEST("long-form file has several windows and ordered segments");
    for (int i = 0; i < n; i++) {
        if (strcmp(want[i]->file, "longform-dev-01.wav"))
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
    kiln_whisper_transcribe(m, &p1, &pcm[0], &ns[0], 1, &one);
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

    for (int i = 0; i < n; i++) {
        kiln_whisper_result_clear(&res[i]);
        kiln_audio_free(&au[i]);
    }
    kiln_whisper_model_destroy(m);
    return TEST_DONE();
}
