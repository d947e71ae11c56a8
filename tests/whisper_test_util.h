/*
 * tests/whisper_test_util.h - helpers shared by the Whisper tests.
 *
 * For the tests that run the real tiny.en model against golden files (0150,
 * 0152, 0154): where the model and the dev speech set are, the golden token
 * file's parser, decoding a chosen subset of dev files, and the token /
 * score comparisons.
 *
 * For the tests that write checkpoints of random weights (0151, 0153): the
 * seeded random numbers, float -> bfloat16, and a Hugging Face directory's
 * model.safetensors header and config.json.
 *
 * Header-only (every function is static inline): the Makefile builds each
 * tests/NNNN-name.c alone, so a test includes this after "tests/test.h" and
 * needs nothing else. TEST_CHECK inside these helpers reports against the
 * calling test's current sub-test.
 */
#ifndef KILN_WHISPER_TEST_UTIL_H
#define KILN_WHISPER_TEST_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kiln/audio.h"
#include "kiln/whisper.h"
#include "tests/test.h"

#define KILN_WT_MODEL_DIR "var/models/whisper-tiny.en"
#define KILN_WT_MAX 64 /* golden lines / files per test */

/* One line of a golden token file (tests/golden/make_whisper_golden.py). */
typedef struct {
    char file[128];
    int tokens[1024];
    int n;
    float seg_lp[64], seg_nsp[64]; /* per segment: avg_logprob, no_speech_prob */
    float seg_temp[64];            /* --defaults file: temperature of each segment */
    int n_seg;
} kiln_wt_golden_t;

/* The dev speech set: $KILN_SPEECH_DEV or ../shared/data/speech/dev. */
static inline const char *kiln_wt_dev_dir(void) {
    const char *d = getenv("KILN_SPEECH_DEV");
    return d ? d : "../shared/data/speech/dev";
}

/* Skips the test (77) without the tiny.en model or the dev set. */
static inline void kiln_wt_need_model_and_dev(void) {
    struct stat st;
    if (stat(KILN_WT_MODEL_DIR "/model.bin", &st) != 0)
        TEST_SKIP("%s absent (run models/whisper/fetch.sh)", KILN_WT_MODEL_DIR);
    if (stat(kiln_wt_dev_dir(), &st) != 0)
        TEST_SKIP("speech set %s absent", kiln_wt_dev_dir());
}

/*
 * Reads up to max lines of a golden token file into g:
 *   file \t duration \t tokens \t text \t "lp/nsp[/temp]" per segment
 * @returns the number of lines read, -1 when the file cannot be opened.
 */
static inline int kiln_wt_load_golden(const char *path, kiln_wt_golden_t *g, int max) {
    FILE *fp = fopen(path, "r");
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
            char *s1 = strchr(t, '/'), *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
            g[n].seg_lp[g[n].n_seg] = strtof(t, NULL);
            g[n].seg_temp[g[n].n_seg] = s2 ? strtof(s2 + 1, NULL) : 0.0f;
            g[n].seg_nsp[g[n].n_seg++] = s1 ? strtof(s1 + 1, NULL) : 0.0f;
        }
        n++;
    }
    fclose(fp);
    return n;
}

/* Decodes dev file \p name to 16 kHz mono into *au. @returns 0, or -1 after
 * printing why as a comment line. */
static inline int kiln_wt_decode(const char *name, kiln_audio_t *au) {
    char path[1024], err[512];
    const char *dev = kiln_wt_dev_dir();
    memset(au, 0, sizeof(*au));
    if (strlen(dev) + strlen(name) + 2 > sizeof(path))
        return -1;
    snprintf(path, sizeof(path), "%s/%s", dev, name);
    if (kiln_audio_decode_file(path, 16000, 0, au, err, sizeof(err)) != KILN_OK) {
        printf("# %s: %s\n", name, err);
        return -1;
    }
    return 0;
}

/* Decoded dev files and their golden lines (kiln_wt_decode_set). */
typedef struct {
    int n;
    const float *pcm[KILN_WT_MAX];
    size_t ns[KILN_WT_MAX];
    kiln_audio_t au[KILN_WT_MAX];
    kiln_wt_golden_t *want[KILN_WT_MAX];
} kiln_wt_set_t;

/*
 * Decodes into ds the dev files of the golden list g[0..ng): the nq names of
 * quick, or every golden file when KILN_WHISPER_GOLDEN_ALL is set.
 * @returns ds->n, how many decoded; kiln_wt_set_free() frees the audio.
 */
static inline int kiln_wt_decode_set(kiln_wt_set_t *ds, kiln_wt_golden_t *g, int ng,
                                     const char *const *quick, int nq) {
    int all = getenv("KILN_WHISPER_GOLDEN_ALL") != NULL;
    ds->n = 0;
    for (int q = 0; q < (all ? ng : nq) && ds->n < KILN_WT_MAX; q++) {
        const char *name = all ? g[q].file : quick[q];
        kiln_wt_golden_t *gg = NULL;
        for (int i = 0; i < ng; i++)
            if (!strcmp(g[i].file, name))
                gg = &g[i];
        if (!gg || kiln_wt_decode(name, &ds->au[ds->n]))
            continue;
        ds->pcm[ds->n] = ds->au[ds->n].pcm;
        ds->ns[ds->n] = ds->au[ds->n].n_samples;
        ds->want[ds->n++] = gg;
    }
    return ds->n;
}

static inline void kiln_wt_set_free(kiln_wt_set_t *ds) {
    for (int i = 0; i < ds->n; i++)
        kiln_audio_free(&ds->au[i]);
    ds->n = 0;
}

/* Checks that each result's tokens equal its golden line's, printing both
 * where they differ. */
static inline void kiln_wt_check_tokens(const kiln_whisper_result_t *res,
                                        kiln_wt_golden_t *const *want, int n) {
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
}

/* Checks each segment's avg_logprob and no_speech_prob against the golden
 * line's within 1e-3 (the scores behind Whisper's thresholds). */
static inline void kiln_wt_check_scores(const kiln_whisper_result_t *res,
                                        kiln_wt_golden_t *const *want, int n) {
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
}

/* ---- checkpoint writers -------------------------------------------------- */

/* xorshift64 step: a uniform value in [-1, 1) (the same sequence for a seed). */
static inline float kiln_wt_rand(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (float)((double)(*s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* float -> bfloat16 (truncating) */
static inline uint16_t kiln_wt_f2bf(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    return (uint16_t)(b >> 16);
}

/* One tensor of a generated checkpoint. */
typedef struct {
    char name[128];
    int rank;
    int64_t shape[3];
    const float *v;          /* its values, or NULL when made while writing */
    float scale, offset;     /* range of values made while writing */
} kiln_wt_tensor_t;

static inline size_t kiln_wt_numel(const kiln_wt_tensor_t *t) {
    size_t n = 1;
    for (int d = 0; d < t->rank; d++)
        n *= (size_t)t->shape[d];
    return n;
}

/*
 * Writes the start of a model.safetensors file to fp: the u64 header length
 * and the JSON header (padded to 8 bytes) for tensors t[0..n) of 2-byte
 * dtype ("F16", "BF16"), stored in that order. Dimension bad_d of tensor
 * bad_i (-1: none) is written as bad_dim, its data size left as its real
 * shape's. @returns the size of the data that must follow, in bytes.
 */
static inline size_t kiln_wt_safetensors_header(FILE *fp, const kiln_wt_tensor_t *t, int n,
                                                const char *dtype, int bad_i, int bad_d,
                                                int64_t bad_dim) {
    char *hdr = NULL;
    size_t hl = 0, off = 0;
    FILE *ms = open_memstream(&hdr, &hl);
    fprintf(ms, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < n; i++) {
        fprintf(ms, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t[i].name, dtype);
        for (int d = 0; d < t[i].rank; d++)
            fprintf(ms, "%s%lld", d ? "," : "",
                    (long long)(i == bad_i && d == bad_d ? bad_dim : t[i].shape[d]));
        size_t nb = 2 * kiln_wt_numel(&t[i]);
        fprintf(ms, "],\"data_offsets\":[%zu,%zu]}", off, off + nb);
        off += nb;
    }
    fprintf(ms, "}");
    fflush(ms);
    fprintf(ms, "%*s", (int)((8 - hl % 8) % 8), ""); /* the data starts 8-aligned */
    fclose(ms);
    uint64_t h64 = hl;
    fwrite(&h64, 8, 1, fp);
    fwrite(hdr, 1, hl, fp);
    free(hdr);
    return off;
}

/* Writes dir/config.json of a transformers Whisper model (ffn width 4 * d_model). */
static inline void kiln_wt_hf_config(const char *dir, int d_model, int n_enc, int n_dec,
                                     int n_head, int n_mels, int n_audio_ctx, int n_text_ctx,
                                     int n_vocab) {
    char path[512];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    FILE *fp = fopen(path, "w");
    if (!fp)
        return;
    fprintf(fp, "{\"model_type\":\"whisper\",\"d_model\":%d,\"encoder_layers\":%d,"
                "\"decoder_layers\":%d,\"encoder_attention_heads\":%d,"
                "\"decoder_attention_heads\":%d,\"encoder_ffn_dim\":%d,\"decoder_ffn_dim\":%d,"
                "\"num_mel_bins\":%d,\"max_source_positions\":%d,\"max_target_positions\":%d,"
                "\"vocab_size\":%d}\n", d_model, n_enc, n_dec, n_head, n_head, 4 * d_model,
            4 * d_model, n_mels, n_audio_ctx, n_text_ctx, n_vocab);
    fclose(fp);
}

#endif
