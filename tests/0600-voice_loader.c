/*
 * tests/0600-voice_loader.c - the voice loader refuses broken files with a
 * message that says what is wrong, and never reads past the mapping:
 *
 *   - a model.safetensors cut short (the header promises more data);
 *   - a tensor whose shape does not match the config's hyper-parameters
 *     (enc_p.emb.weight relabelled [192, 256]: same size, wrong shape);
 *   - a config.json without the "model" section (an unconverted Piper
 *     .onnx.json), and a missing directory;
 *   - the real files load.
 *
 * Works on copies in a temporary directory. Needs the voice (make voices;
 * KILN_VOICE overrides the path); skips (77) without it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kiln/voice.h"
#include "tests/test.h"

static char *slurp_(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len);
    if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return buf;
}

static int spit_(const char *dir, const char *name, const char *buf, size_t n) {
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(buf, 1, n, f);
    return fclose(f) || w != n ? -1 : 0;
}

int main(void) {
    const char *vp = getenv("KILN_VOICE") ? getenv("KILN_VOICE")
                                          : "var/models/voices/en_US-joe-medium";
    char path[512], err[512], tmpl[] = "/tmp/kiln-voice-XXXXXX";
    snprintf(path, sizeof(path), "%s/model.safetensors", vp);
    if (access(path, R_OK))
        TEST_SKIP("voice %s not fetched (make voices)", vp);
    size_t nst = 0, ncf = 0;
    char *st = slurp_(path, &nst);
    snprintf(path, sizeof(path), "%s/config.json", vp);
    char *cf = slurp_(path, &ncf);
    char *dir = mkdtemp(tmpl);
    SUB_TEST("setup");
    TEST_ASSERT(st && cf && dir, "could not read the voice or make a temp dir");
    TEST_ASSERT(!spit_(dir, "config.json", cf, ncf), "write config");
    SUB_TEST_PASS();

    SUB_TEST("the real files load");
    TEST_ASSERT(!spit_(dir, "model.safetensors", st, nst), "write");
    kiln_voice_t *v = kiln_voice_load(dir, err, sizeof(err));
    TEST_CHECK(v != NULL, "%s", err);
    kiln_voice_destroy(v);
    snprintf(path, sizeof(path), "%s/config.json", dir);
    v = kiln_voice_load(path, err, sizeof(err));
    TEST_CHECK(v != NULL, "by config path: %s", err);
    kiln_voice_destroy(v);
    SUB_TEST_PASS();

    SUB_TEST("a truncated model.safetensors is refused");
    size_t cuts[3] = {nst - 1, nst / 2, 100};
    for (int i = 0; i < 3; i++) {
        TEST_ASSERT(!spit_(dir, "model.safetensors", st, cuts[i]), "write");
        err[0] = 0;
        v = kiln_voice_load(dir, err, sizeof(err));
        TEST_CHECK(v == NULL, "loaded a file cut at %zu bytes", cuts[i]);
        TEST_CHECK(strstr(err, "model.safetensors") != NULL, "message names no file: %s", err);
        printf("# cut at %zu: %s\n", cuts[i], err);
        kiln_voice_destroy(v);
    }
    SUB_TEST_PASS();

    SUB_TEST("a tensor of the wrong shape is refused");
    char *bad = malloc(nst);
    TEST_ASSERT(bad != NULL, "oom");
    memcpy(bad, st, nst);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | (unsigned char)st[i];
    char *hdr = bad + 8, *key = memmem(hdr, hlen, "\"enc_p.emb.weight\"", 18);
    TEST_ASSERT(key != NULL, "no enc_p.emb.weight in the header");
    char *shape = memmem(key, hlen - (size_t)(key - hdr), "[256,192]", 9);
    TEST_ASSERT(shape != NULL, "no [256,192] after the key");
    memcpy(shape, "[192,256]", 9);
    TEST_ASSERT(!spit_(dir, "model.safetensors", bad, nst), "write");
    v = kiln_voice_load(dir, err, sizeof(err));
    TEST_CHECK(v == NULL, "loaded a mismatched tensor");
    TEST_CHECK(strstr(err, "enc_p.emb.weight") && strstr(err, "[192, 256]"),
               "message does not name the tensor and its shape: %s", err);
    printf("# %s\n", err);
    kiln_voice_destroy(v);
    free(bad);
    SUB_TEST_PASS();

    SUB_TEST("an unconverted config and a missing voice are refused");
    TEST_ASSERT(!spit_(dir, "model.safetensors", st, nst), "write");
    const char *piper_json = "{\"audio\":{\"sample_rate\":22050},\"num_symbols\":256}";
    TEST_ASSERT(!spit_(dir, "config.json", piper_json, strlen(piper_json)), "write");
    v = kiln_voice_load(dir, err, sizeof(err));
    TEST_CHECK(v == NULL && strstr(err, "convert"), "unconverted config: %s", err);
    kiln_voice_destroy(v);
    v = kiln_voice_load("/nonexistent/voice", err, sizeof(err));
    TEST_CHECK(v == NULL && strstr(err, "/nonexistent/voice"), "missing dir: %s", err);
    SUB_TEST_PASS();

    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/config.json", dir);
    unlink(path);
    rmdir(dir);
    free(st);
    free(cf);
    return TEST_DONE();
}
