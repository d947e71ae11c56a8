/*
 * tests/0153-whisper_hf_large.c - Hugging Face checkpoints of large-v3's
 * shape, generated here (random weights, no download):
 *
 *  1. real widths (d_model 1280, 20 heads, 128 mel bins, vocabulary 51866,
 *     1500 audio / 448 text positions) with one encoder and one decoder
 *     layer, bfloat16 weights (about 240 MB): loads, and transcribes a few
 *     seconds of noise with language detection (a multilingual model's
 *     prompt) and a short decode;
 *  2. the full large-v3 header (32 + 32 layers, 1.55 G parameters) over a
 *     sparse file: a wrong shape in the very last tensor and a file one
 *     byte short both fail with the file and tensor named, before any
 *     weight memory is allocated (so every earlier tensor was checked).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kiln/whisper.h"
#include "tests/test.h"
#include "tests/whisper_test_util.h"

#define D 1280
#define NH 20
#define NM 128
#define TA 1500
#define TT 448
#define NV 51866

static kiln_wt_tensor_t L[2048];
static int nL;

static void add(const char *name, float scale, float offset, int rank, int64_t a, int64_t b,
                int64_t c) {
    kiln_wt_tensor_t *t = &L[nL++];
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->rank = rank;
    t->shape[0] = a;
    t->shape[1] = b;
    t->shape[2] = c;
    t->scale = scale;
    t->offset = offset;
}

/* transformers' tensor list for n_enc + n_dec layers */
static void build(int n_enc, int n_dec) {
    char n[160];
    nL = 0;
    add("model.encoder.conv1.weight", 0.05f, 0, 3, D, NM, 3);
    add("model.encoder.conv1.bias", 0.02f, 0, 1, D, 0, 0);
    add("model.encoder.conv2.weight", 0.02f, 0, 3, D, D, 3);
    add("model.encoder.conv2.bias", 0.02f, 0, 1, D, 0, 0);
    add("model.encoder.embed_positions.weight", 0.5f, 0, 2, TA, D, 0);
    add("model.encoder.layer_norm.weight", 0.05f, 1, 1, D, 0, 0);
    add("model.encoder.layer_norm.bias", 0.02f, 0, 1, D, 0, 0);
    add("model.decoder.embed_tokens.weight", 0.05f, 0, 2, NV, D, 0);
    add("model.decoder.embed_positions.weight", 0.05f, 0, 2, TT, D, 0);
    add("model.decoder.layer_norm.weight", 0.05f, 1, 1, D, 0, 0);
    add("model.decoder.layer_norm.bias", 0.02f, 0, 1, D, 0, 0);
    for (int side = 0; side < 2; side++) {
        const char *s = side ? "decoder" : "encoder";
        for (int l = 0; l < (side ? n_dec : n_enc); l++) {
            const char *att[2] = {"self_attn", "encoder_attn"};
            for (int a = 0; a < 1 + side; a++) {
                snprintf(n, sizeof(n), "model.%s.layers.%d.%s_layer_norm.weight", s, l, att[a]);
                add(n, 0.05f, 1, 1, D, 0, 0);
                snprintf(n, sizeof(n), "model.%s.layers.%d.%s_layer_norm.bias", s, l, att[a]);
                add(n, 0.02f, 0, 1, D, 0, 0);
                const char *pr[4] = {"q_proj", "k_proj", "v_proj", "out_proj"};
                for (int k = 0; k < 4; k++) {
                    snprintf(n, sizeof(n), "model.%s.layers.%d.%s.%s.weight", s, l, att[a], pr[k]);
                    add(n, 0.03f, 0, 2, D, D, 0);
                    if (k == 1)
                        continue; /* no key bias */
                    snprintf(n, sizeof(n), "model.%s.layers.%d.%s.%s.bias", s, l, att[a], pr[k]);
                    add(n, 0.02f, 0, 1, D, 0, 0);
                }
            }
            snprintf(n, sizeof(n), "model.%s.layers.%d.final_layer_norm.weight", s, l);
            add(n, 0.05f, 1, 1, D, 0, 0);
            snprintf(n, sizeof(n), "model.%s.layers.%d.final_layer_norm.bias", s, l);
            add(n, 0.02f, 0, 1, D, 0, 0);
            snprintf(n, sizeof(n), "model.%s.layers.%d.fc1.weight", s, l);
            add(n, 0.03f, 0, 2, 4 * D, D, 0);
            snprintf(n, sizeof(n), "model.%s.layers.%d.fc1.bias", s, l);
            add(n, 0.02f, 0, 1, 4 * D, 0, 0);
            snprintf(n, sizeof(n), "model.%s.layers.%d.fc2.weight", s, l);
            add(n, 0.015f, 0, 2, D, 4 * D, 0);
            snprintf(n, sizeof(n), "model.%s.layers.%d.fc2.bias", s, l);
            add(n, 0.02f, 0, 1, D, 0, 0);
        }
    }
}

static uint64_t rs = 0x2545F4914F6CDD1Dull;

/*
 * Writes dir/{model.safetensors (BF16), config.json, vocab.json,
 * added_tokens.json}. sparse: no data written, the file is extended to its
 * full size (reads give zeros); bad_last: the last tensor's header shape is
 * wrong; short_by: the file ends that many bytes early.
 */
static void write_model(const char *dir, int n_enc, int n_dec, int sparse, int bad_last,
                        long short_by) {
    char path[512];
    mkdir(dir, 0755);
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    FILE *fp = fopen(path, "wb");
    size_t off = kiln_wt_safetensors_header(fp, L, nL, "BF16", bad_last ? nL - 1 : -1, 0,
                                            L[nL - 1].shape[0] + 1);
    if (sparse) {
        fflush(fp);
        if (ftruncate(fileno(fp), (off_t)((size_t)ftell(fp) + off - (size_t)short_by)) != 0)
            printf("# ftruncate failed\n");
    } else {
        uint16_t *buf = malloc(sizeof(uint16_t) * 65536);
        for (int i = 0; i < nL; i++) {
            size_t n = kiln_wt_numel(&L[i]);
            for (size_t k = 0; k < n;) {
                size_t m = n - k < 65536 ? n - k : 65536;
                for (size_t j = 0; j < m; j++)
                    buf[j] = kiln_wt_f2bf(L[i].offset + L[i].scale * kiln_wt_rand(&rs));
                fwrite(buf, 2, m, fp);
                k += m;
            }
        }
        free(buf);
    }
    fclose(fp);
    kiln_wt_hf_config(dir, D, n_enc, n_dec, NH, NM, TA, TT, NV);
    /* large-v3 vocabulary layout: 50257 text tokens (eot last), then specials */
    static const char *langs[] = {
        "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar",
        "sv", "it", "id", "hi", "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu",
        "ta", "no", "th", "ur", "hr", "bg", "lt", "la", "mi", "ml", "cy", "sk", "te", "fa",
        "lv", "bn", "sr", "az", "sl", "kn", "et", "mk", "br", "eu", "is", "hy", "ne", "mn",
        "bs", "kk", "sq", "sw", "gl", "mr", "pa", "si", "km", "sn", "yo", "so", "af", "oc",
        "ka", "be", "tg", "sd", "gu", "am", "yi", "lo", "uz", "fo", "ht", "ps", "tk", "nn",
        "mt", "sa", "lb", "my", "bo", "tl", "mg", "as", "tt", "haw", "ln", "ha", "ba", "jw",
        "su", "yue"};
    snprintf(path, sizeof(path), "%s/vocab.json", dir);
    fp = fopen(path, "w");
    fprintf(fp, "{");
    for (int id = 0; id < 50257; id++)
        fprintf(fp, "%s\"w%d\":%d", id ? "," : "", id, id);
    fprintf(fp, "}\n");
    fclose(fp);
    snprintf(path, sizeof(path), "%s/added_tokens.json", dir);
    fp = fopen(path, "w");
    int id = 50257;
    fprintf(fp, "{\"<|endoftext|>\":%d,\"<|startoftranscript|>\":%d", id, id + 1);
    id += 2;
    for (size_t k = 0; k < sizeof(langs) / sizeof(langs[0]); k++)
        fprintf(fp, ",\"<|%s|>\":%d", langs[k], id++);
    fprintf(fp, ",\"<|translate|>\":%d,\"<|transcribe|>\":%d,\"<|startoflm|>\":%d,"
                "\"<|startofprev|>\":%d,\"<|nospeech|>\":%d,\"<|notimestamps|>\":%d}\n",
            id, id + 1, id + 2, id + 3, id + 4, id + 5);
    fclose(fp);
}

int main(void) {
    char dir[] = "/tmp/kiln-0153-XXXXXX", sub[128], err[512];
    TEST_ASSERT(mkdtemp(dir) != NULL, "mkdtemp");

    SUB_TEST("large-v3 widths (1+1 layers, bf16, 128 mels, 51866 tokens) load and run");
    {
        build(1, 1);
        snprintf(sub, sizeof(sub), "%s/lv3-2layers", dir);
        write_model(sub, 1, 1, 0, 0, 0);
        kiln_whisper_model_t *m = kiln_whisper_model_load(sub, err, sizeof(err));
        TEST_ASSERT(m != NULL, "%s", err);
        const kiln_whisper_hparams_t *hp = kiln_whisper_model_hparams(m);
        TEST_CHECK(hp->n_mels == 128 && hp->n_vocab == NV && hp->n_audio_state == D &&
                       hp->n_audio_head == NH && hp->n_text_ctx == TT &&
                       hp->n_audio_ctx == TA && hp->n_audio_layer == 1,
                   "hparams %d %d %d", hp->n_mels, hp->n_vocab, hp->n_audio_state);
        TEST_CHECK(!strcmp(kiln_whisper_token_text(m, 50259), "<|en|>") &&
                       !strcmp(kiln_whisper_token_text(m, 50358), "<|yue|>") &&
                       !strcmp(kiln_whisper_token_text(m, 50365), "<|0.00|>"),
                   "specials: %s %s %s", kiln_whisper_token_text(m, 50259),
                   kiln_whisper_token_text(m, 50358), kiln_whisper_token_text(m, 50365));
        size_t N = 3 * 16000;
        float *pcm = malloc(N * sizeof(float));
        for (size_t i = 0; i < N; i++)
            pcm[i] = 0.1f * kiln_wt_rand(&rs);
        kiln_whisper_params_t p = kiln_whisper_greedy_params();
        p.max_new_tokens = 6;
        p.no_speech_skip = 2.0f;
        p.no_speech_threshold = 2.0f;
        const float *pc[1] = {pcm};
        size_t ns[1] = {N};
        kiln_whisper_result_t r;
        memset(&r, 0, sizeof(r));
        kiln_err_t e = kiln_whisper_transcribe(m, &p, pc, ns, 1, &r);
        TEST_CHECK(e == KILN_OK && r.err == KILN_OK, "transcribe: %s", e ? kiln_err2str(e) : r.error);
        TEST_CHECK(r.n_windows == 1 && r.language[0], "windows %d, language \"%s\"",
                   r.n_windows, r.language);
        printf("# random large-v3-wide model: language %s, %d tokens\n", r.language,
               r.n_tokens);
        kiln_whisper_result_clear(&r);
        free(pcm);
        kiln_whisper_model_destroy(m);
    }
    SUB_TEST_PASS();

    SUB_TEST("full large-v3 header (32+32 layers): every tensor checked before allocation");
    {
        build(32, 32);
        snprintf(sub, sizeof(sub), "%s/lv3-full-badlast", dir);
        write_model(sub, 32, 32, 1, 1, 0);
        kiln_whisper_model_t *m = kiln_whisper_model_load(sub, err, sizeof(err));
        TEST_CHECK(m == NULL, "loaded");
        kiln_whisper_model_destroy(m);
        TEST_CHECK(strstr(err, "model.safetensors") &&
                       strstr(err, "\"model.decoder.layers.31.fc2.bias\" has shape [1281], "
                                   "expected [1280]"), "%s", err);
        printf("# %s\n", err);
        snprintf(sub, sizeof(sub), "%s/lv3-full-short", dir);
        write_model(sub, 32, 32, 1, 0, 1);
        m = kiln_whisper_model_load(sub, err, sizeof(err));
        TEST_CHECK(m == NULL, "loaded");
        kiln_whisper_model_destroy(m);
        TEST_CHECK(strstr(err, "model.safetensors") && strstr(err, "truncated in tensor") &&
                       strstr(err, "model.decoder.layers.31.fc2.bias"), "%s", err);
        printf("# %s\n", err);
    }
    SUB_TEST_PASS();

    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", dir);
    return TEST_DONE();
}
