/*
 * tests/0311-store_s3_client.c - the s3:// store against a live endpoint.
 *
 * Driven by tests/0312-store_s3.sh, which starts the servers and passes
 * them in the environment; run on its own (by tests/run.sh) it skips.
 *
 *   0311-store_s3_client moto      KILN_TEST_S3_ENDPOINT, _BUCKET, _MANIFEST,
 *                                  _DEAD_ENDPOINT: round trips (5 MB, keys with
 *                                  spaces and unicode), boto3-written objects,
 *                                  NOT_FOUND, TOO_LARGE, get_uri, prefixes,
 *                                  traversal, missing bucket, dead endpoint.
 *                                  Writes "<sha256>\t<key>" lines to _MANIFEST
 *                                  for the script to check through boto3.
 *   0311-store_s3_client auth      moto with IAM auth on: valid key works,
 *                                  wrong secret / unknown key give the S3 error.
 *   0311-store_s3_client sigcheck  tests/s3/sigv4_check.py: every signature and
 *                                  path encoding verified, 503 retries, chunked
 *                                  bodies over max_bytes.
 * Credentials: KILN_TEST_S3_ACCESS_KEY / KILN_TEST_S3_SECRET_KEY.
 */
#include "kiln/conf.h"
#include "kiln/store.h"
#include "tests/test.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *endpoint, *bucket, *access_key, *secret_key;
static FILE *manifest;

static kiln_store_t *open_s3(const char *url, const char *ep, const char *ak, const char *sk,
                             char *errstr, size_t errstr_size) {
    kiln_conf_t *conf = kiln_conf_new();
    kiln_store_t *st = NULL;
    if (kiln_conf_set(conf, "store.url", url, errstr, errstr_size) == KILN_CONF_OK &&
        kiln_conf_set(conf, "s3.endpoint", ep, errstr, errstr_size) == KILN_CONF_OK &&
        kiln_conf_set(conf, "s3.access_key", ak, errstr, errstr_size) == KILN_CONF_OK &&
        kiln_conf_set(conf, "s3.secret_key", sk, errstr, errstr_size) == KILN_CONF_OK &&
        kiln_conf_set(conf, "s3.timeout_ms", "20000", errstr, errstr_size) == KILN_CONF_OK)
        st = kiln_store_new(conf, errstr, errstr_size);
    kiln_conf_destroy(conf);
    return st;
}

/* The bytes tests/s3/s3_helper.py put-pattern writes. */
static char *pattern(size_t n) {
    char *p = malloc(n ? n : 1);
    for (size_t i = 0; p && i < n; i++)
        p[i] = (char)(i % 251);
    return p;
}

/* Puts \p data at \p key, reads it back, compares, records it in the manifest
 * under \p full_key (the key as boto3 sees it). @returns 1 when all is well. */
static int roundtrip(kiln_store_t *st, const char *key, const char *full_key, const void *data,
                     size_t len) {
    char errstr[1024];
    kiln_err_t err = kiln_store_put(st, key, data, len, errstr, sizeof(errstr));
    TEST_CHECK(err == KILN_OK, "put \"%s\": %s", key, errstr);
    if (err)
        return 0;
    void *back = NULL;
    size_t blen = 0;
    err = kiln_store_get(st, key, len + 1, &back, &blen, errstr, sizeof(errstr));
    TEST_CHECK(err == KILN_OK, "get \"%s\": %s", key, errstr);
    int ok = !err && blen == len && !memcmp(back, data, len) && ((char *)back)[len] == '\0';
    TEST_CHECK(err || ok, "\"%s\": read back %zu bytes, wrote %zu, or content differs", key,
               blen, len);
    free(back);
    if (manifest) {
        char sha[65];
        kiln_store_sha256_hex(data, len, sha);
        fprintf(manifest, "%s\t%s\n", sha, full_key ? full_key : key);
    }
    return ok;
}

static const char *odd_keys[] = {
    "plain.txt",
    "with space/and more spaces.txt",
    "ünïcödé/日本語 キー.wav",
    "emoji/\xf0\x9f\x8e\xa7 x.flac",
    "tilde~/under_score-dash.x",
    "sym/a=b&c;d,e@f$g'(h)!*:i.bin",
    "pct/100% sure?#frag",
};
#define N_ODD (sizeof(odd_keys) / sizeof(odd_keys[0]))

static void sub_odd_keys(kiln_store_t *st) {
    SUB_TEST("put/get keys with spaces, unicode and reserved characters");
    for (size_t i = 0; i < N_ODD; i++) {
        char body[256];
        int n = snprintf(body, sizeof(body), "content of %s\n", odd_keys[i]);
        roundtrip(st, odd_keys[i], NULL, body, (size_t)n);
    }
    SUB_TEST_PASS();
}

static void sub_bad_keys(kiln_store_t *st) {
    SUB_TEST("traversal and unsafe keys are rejected before any request");
    const char *bad[] = {"../x", "a/../../x", "/etc/passwd", "a//b", "a\nb", "a\x01" "b",
                         "a\\b", ".", ""};
    char errstr[512];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        void *d;
        size_t l;
        kiln_err_t e1 = kiln_store_put(st, bad[i], "x", 1, errstr, sizeof(errstr));
        kiln_err_t e2 = kiln_store_get(st, bad[i], 0, &d, &l, errstr, sizeof(errstr));
        kiln_err_t e3 = kiln_store_delete(st, bad[i], errstr, sizeof(errstr));
        TEST_CHECK(e1 == KILN_ERR_BAD_KEY && e2 == KILN_ERR_BAD_KEY && e3 == KILN_ERR_BAD_KEY,
                   "#%zu: %s %s %s", i, kiln_err2name(e1), kiln_err2name(e2),
                   kiln_err2name(e3));
        TEST_CHECK(kiln_store_exists(st, bad[i]) == -1, "#%zu exists", i);
    }
    SUB_TEST_PASS();
}

static int phase_moto(void) {
    char errstr[1024], url[256], uri[2048];
    const char *mpath = getenv("KILN_TEST_S3_MANIFEST");
    const char *dead = getenv("KILN_TEST_S3_DEAD_ENDPOINT");
    manifest = mpath ? fopen(mpath, "w") : NULL;
    TEST_ASSERT(manifest, "KILN_TEST_S3_MANIFEST not writable");
    snprintf(url, sizeof(url), "s3://%s", bucket);
    kiln_store_t *st = open_s3(url, endpoint, access_key, secret_key, errstr, sizeof(errstr));
    TEST_ASSERT(st, "kiln_store_new: %s", errstr);

    SUB_TEST("root URI");
    TEST_CHECK(!strcmp(kiln_store_root(st), url), "root %s", kiln_store_root(st));
    SUB_TEST_PASS();

    sub_odd_keys(st);

    SUB_TEST("5 MB object round trip");
    size_t big_len = 5 * 1024 * 1024 + 123;
    char *big = malloc(big_len);
    TEST_ASSERT(big, "malloc");
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < big_len; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        big[i] = (char)x;
    }
    roundtrip(st, "big/five MB.bin", NULL, big, big_len);
    SUB_TEST_PASS();

    SUB_TEST("max_bytes under the object size gives TOO_LARGE");
    {
        void *d = (void *)1;
        size_t l = 7;
        kiln_err_t err = kiln_store_get(st, "big/five MB.bin", 1024 * 1024, &d, &l, errstr,
                                        sizeof(errstr));
        TEST_CHECK(err == KILN_ERR_TOO_LARGE, "got %s: %s", kiln_err2name(err), errstr);
        TEST_CHECK(d == NULL && l == 0, "outputs not cleared");
        TEST_CHECK(strstr(errstr, "larger than the limit of 1048576 bytes"), "errstr %s", errstr);
        /* the handle stays usable after an aborted transfer */
        err = kiln_store_get(st, "plain.txt", 100, &d, &l, errstr, sizeof(errstr));
        TEST_CHECK(err == KILN_OK && l == strlen("content of plain.txt\n"), "after abort: %s",
                   errstr);
        if (!err)
            free(d);
    }
    SUB_TEST_PASS();
    free(big);

    SUB_TEST("objects written by boto3 read through kiln");
    {
        void *d;
        size_t l;
        char *want = pattern(70000);
        kiln_err_t err = kiln_store_get(st, "from-boto3/ünï space.bin", 0, &d, &l, errstr,
                                        sizeof(errstr));
        TEST_CHECK(err == KILN_OK, "get: %s", errstr);
        TEST_CHECK(err || (l == 70000 && !memcmp(d, want, l)), "content differs (%zu bytes)", l);
        if (!err)
            free(d);
        free(want);
    }
    SUB_TEST_PASS();

    SUB_TEST("exists, delete and NOT_FOUND");
    {
        void *d;
        size_t l;
        TEST_CHECK(kiln_store_put(st, "del/me now.txt", "x", 1, errstr, sizeof(errstr)) == 0,
                   "put: %s", errstr);
        TEST_CHECK(kiln_store_exists(st, "del/me now.txt") == 1, "exists != 1");
        TEST_CHECK(kiln_store_exists(st, "del/not here") == 0, "missing exists != 0");
        kiln_err_t err = kiln_store_get(st, "del/not here", 0, &d, &l, errstr, sizeof(errstr));
        TEST_CHECK(err == KILN_ERR__NOT_FOUND, "get missing: %s %s", kiln_err2name(err), errstr);
        TEST_CHECK(strstr(errstr, "NoSuchKey"), "errstr %s", errstr);
        TEST_CHECK(!kiln_store_delete(st, "del/me now.txt", errstr, sizeof(errstr)),
                   "delete: %s", errstr);
        TEST_CHECK(kiln_store_exists(st, "del/me now.txt") == 0, "exists after delete");
        TEST_CHECK(!kiln_store_delete(st, "del/me now.txt", errstr, sizeof(errstr)),
                   "delete again: %s", errstr);
        fprintf(manifest, "absent\tdel/me now.txt\n");
    }
    SUB_TEST_PASS();

    SUB_TEST("get_uri reads URIs of this bucket only");
    {
        void *d;
        size_t l;
        kiln_store_uri(st, "with space/and more spaces.txt", uri, sizeof(uri));
        char want[512];
        snprintf(want, sizeof(want), "s3://%s/with space/and more spaces.txt", bucket);
        TEST_CHECK(!strcmp(uri, want), "uri %s", uri);
        kiln_err_t err = kiln_store_get_uri(st, uri, 0, &d, &l, errstr, sizeof(errstr));
        TEST_CHECK(err == KILN_OK && l == strlen("content of with space/and more spaces.txt\n"),
                   "get_uri: %s", errstr);
        if (!err)
            free(d);
        char bad[6][512];
        snprintf(bad[0], sizeof(bad[0]), "s3://%s-other/plain.txt", bucket);
        snprintf(bad[1], sizeof(bad[1]), "s3://other/plain.txt");
        snprintf(bad[2], sizeof(bad[2]), "s3://%s/../x/plain.txt", bucket);
        snprintf(bad[3], sizeof(bad[3]), "s3://%s", bucket);
        snprintf(bad[4], sizeof(bad[4]), "file:///etc/passwd");
        snprintf(bad[5], sizeof(bad[5]), "%s/%s/plain.txt", endpoint, bucket);
        for (int i = 0; i < 6; i++) {
            err = kiln_store_get_uri(st, bad[i], 0, &d, &l, errstr, sizeof(errstr));
            TEST_CHECK(err == KILN_ERR_BAD_KEY, "%s: %s", bad[i], kiln_err2name(err));
        }
    }
    SUB_TEST_PASS();

    sub_bad_keys(st);

    SUB_TEST("a store with a prefix keeps its objects below it");
    {
        char purl[300];
        snprintf(purl, sizeof(purl), "s3://%s/tenant pre/sub/", bucket);
        kiln_store_t *ps = open_s3(purl, endpoint, access_key, secret_key, errstr,
                                   sizeof(errstr));
        TEST_ASSERT(ps, "open %s: %s", purl, errstr);
        snprintf(purl, sizeof(purl), "s3://%s/tenant pre/sub", bucket);
        TEST_CHECK(!strcmp(kiln_store_root(ps), purl), "root %s", kiln_store_root(ps));
        roundtrip(ps, "k ü.txt", "tenant pre/sub/k ü.txt", "prefixed", 8);
        void *d;
        size_t l;
        kiln_store_uri(ps, "k ü.txt", uri, sizeof(uri));
        kiln_err_t err = kiln_store_get_uri(ps, uri, 0, &d, &l, errstr, sizeof(errstr));
        TEST_CHECK(err == KILN_OK && l == 8, "get_uri in prefix: %s", errstr);
        if (!err)
            free(d);
        snprintf(uri, sizeof(uri), "s3://%s/plain.txt", bucket);
        err = kiln_store_get_uri(ps, uri, 0, &d, &l, errstr, sizeof(errstr));
        TEST_CHECK(err == KILN_ERR_BAD_KEY, "outside prefix: %s", kiln_err2name(err));
        snprintf(uri, sizeof(uri), "s3://%s/tenant pre/subway/x", bucket);
        err = kiln_store_get_uri(ps, uri, 0, &d, &l, errstr, sizeof(errstr));
        TEST_CHECK(err == KILN_ERR_BAD_KEY, "sibling prefix: %s", kiln_err2name(err));
        kiln_store_destroy(ps);
    }
    SUB_TEST_PASS();

    SUB_TEST("a missing bucket is a store error with the S3 code, not NOT_FOUND");
    {
        kiln_store_t *ms = open_s3("s3://kiln-no-such-bucket", endpoint, access_key, secret_key,
                                   errstr, sizeof(errstr));
        TEST_ASSERT(ms, "open: %s", errstr);
        kiln_err_t err = kiln_store_put(ms, "x", "x", 1, errstr, sizeof(errstr));
        TEST_CHECK(err == KILN_ERR_STORE, "put: %s", kiln_err2name(err));
        TEST_CHECK(strstr(errstr, "could not write object \"s3://kiln-no-such-bucket/x\": "
                                  "NoSuchBucket") && strstr(errstr, "(HTTP 404)"),
                   "errstr: %s", errstr);
        void *d;
        size_t l;
        err = kiln_store_get(ms, "x", 0, &d, &l, errstr, sizeof(errstr));
        TEST_CHECK(err == KILN_ERR_STORE && strstr(errstr, "NoSuchBucket"), "get: %s %s",
                   kiln_err2name(err), errstr);
        TEST_CHECK(kiln_err_is_retriable(err), "store errors are retriable");
        kiln_store_destroy(ms);
    }
    SUB_TEST_PASS();

    if (dead) {
        SUB_TEST("an unreachable endpoint gives a retriable store error");
        kiln_store_t *ds = open_s3(url, dead, access_key, secret_key, errstr, sizeof(errstr));
        TEST_ASSERT(ds, "open: %s", errstr);
        kiln_err_t err = kiln_store_put(ds, "x", "x", 1, errstr, sizeof(errstr));
        TEST_CHECK(err == KILN_ERR_STORE && kiln_err_is_retriable(err), "put: %s",
                   kiln_err2name(err));
        TEST_CHECK(!strncmp(errstr, "could not write object", 22), "errstr: %s", errstr);
        TEST_CHECK(kiln_store_exists(ds, "x") == -1, "exists on dead endpoint");
        kiln_store_destroy(ds);
        SUB_TEST_PASS();
    }
    kiln_store_destroy(st);
    fclose(manifest);
    return TEST_DONE();
}

static int phase_auth(void) {
    char errstr[1024], url[256];
    snprintf(url, sizeof(url), "s3://%s", bucket);
    kiln_store_t *st = open_s3(url, endpoint, access_key, secret_key, errstr, sizeof(errstr));
    TEST_ASSERT(st, "kiln_store_new: %s", errstr);

    SUB_TEST("signed requests are accepted by a verifying server");
    {
        const char *keys[] = {"plain", "with space/x y.txt", "a~b_c-d.e/f"};
        for (int i = 0; i < 3; i++) {
            roundtrip(st, keys[i], NULL, "signed", 6);
            TEST_CHECK(kiln_store_exists(st, keys[i]) == 1, "exists %s", keys[i]);
            TEST_CHECK(!kiln_store_delete(st, keys[i], errstr, sizeof(errstr)), "delete: %s",
                       errstr);
        }
    }
    SUB_TEST_PASS();

    SUB_TEST("a wrong secret gives SignatureDoesNotMatch");
    {
        kiln_store_t *bs = open_s3(url, endpoint, access_key, "wrong-secret", errstr,
                                   sizeof(errstr));
        TEST_ASSERT(bs, "open: %s", errstr);
        kiln_err_t err = kiln_store_put(bs, "plain", "x", 1, errstr, sizeof(errstr));
        TEST_CHECK(err == KILN_ERR_STORE, "put: %s", kiln_err2name(err));
        TEST_CHECK(strstr(errstr, "SignatureDoesNotMatch: The request signature we calculated") &&
                       strstr(errstr, "(HTTP 403)"),
                   "errstr: %s", errstr);
        kiln_store_destroy(bs);
    }
    SUB_TEST_PASS();

    SUB_TEST("an unknown access key gives InvalidAccessKeyId");
    {
        kiln_store_t *bs = open_s3(url, endpoint, "AKIAKILNUNKNOWN00000", "whatever", errstr,
                                   sizeof(errstr));
        TEST_ASSERT(bs, "open: %s", errstr);
        void *d;
        size_t l;
        kiln_err_t err = kiln_store_get(bs, "plain", 0, &d, &l, errstr, sizeof(errstr));
        TEST_CHECK(err == KILN_ERR_STORE && strstr(errstr, "InvalidAccessKeyId"), "get: %s %s",
                   kiln_err2name(err), errstr);
        kiln_store_destroy(bs);
    }
    SUB_TEST_PASS();
    kiln_store_destroy(st);
    return TEST_DONE();
}

static int phase_sigcheck(void) {
    char errstr[1024], url[256];
    snprintf(url, sizeof(url), "s3://%s/pre fix", bucket);
    kiln_store_t *st = open_s3(url, endpoint, access_key, secret_key, errstr, sizeof(errstr));
    TEST_ASSERT(st, "kiln_store_new: %s", errstr);

    /* every request below is checked: canonical path, payload hash, signature */
    sub_odd_keys(st);

    SUB_TEST("exists and delete with odd keys pass signature checks");
    for (size_t i = 0; i < N_ODD; i++) {
        TEST_CHECK(kiln_store_exists(st, odd_keys[i]) == 1, "exists %s", odd_keys[i]);
        TEST_CHECK(!kiln_store_delete(st, odd_keys[i], errstr, sizeof(errstr)), "delete: %s",
                   errstr);
        TEST_CHECK(kiln_store_exists(st, odd_keys[i]) == 0, "exists after delete %s",
                   odd_keys[i]);
    }
    SUB_TEST_PASS();

    SUB_TEST("the checker rejects a wrong secret");
    {
        kiln_store_t *bs = open_s3(url, endpoint, access_key, "nope", errstr, sizeof(errstr));
        TEST_ASSERT(bs, "open: %s", errstr);
        kiln_err_t err = kiln_store_put(bs, "k", "x", 1, errstr, sizeof(errstr));
        TEST_CHECK(err == KILN_ERR_STORE && strstr(errstr, "SignatureDoesNotMatch"), "%s",
                   errstr);
        kiln_store_destroy(bs);
    }
    SUB_TEST_PASS();

    SUB_TEST("503 answers are retried, persistent ones reported");
    {
        roundtrip(st, "flaky/obj", NULL, "survived", 8);
        kiln_err_t err = kiln_store_put(st, "down/obj", "x", 1, errstr, sizeof(errstr));
        TEST_CHECK(err == KILN_ERR_STORE, "down: %s", kiln_err2name(err));
        TEST_CHECK(strstr(errstr, "SlowDown: Please reduce your request rate. (HTTP 503)"),
                   "errstr: %s", errstr);
    }
    SUB_TEST_PASS();

    SUB_TEST("a chunked body over max_bytes is aborted mid-stream");
    {
        void *d = (void *)1;
        size_t l = 1;
        kiln_err_t err = kiln_store_get(st, "chunked/2000000", 1000000, &d, &l, errstr,
                                        sizeof(errstr));
        TEST_CHECK(err == KILN_ERR_TOO_LARGE && !d && !l, "got %s: %s", kiln_err2name(err),
                   errstr);
        err = kiln_store_get(st, "chunked/2000000", 4000000, &d, &l, errstr, sizeof(errstr));
        TEST_CHECK(err == KILN_OK && l == 2000000, "got %s: %s (%zu bytes)", kiln_err2name(err),
                   errstr, l);
        TEST_CHECK(err || (((char *)d)[0] == 'c' && ((char *)d)[l - 1] == 'c' &&
                           ((char *)d)[l] == '\0'), "content");
        if (!err)
            free(d);
    }
    SUB_TEST_PASS();
    kiln_store_destroy(st);
    return TEST_DONE();
}

int main(int argc, char **argv) {
    endpoint = getenv("KILN_TEST_S3_ENDPOINT");
    bucket = getenv("KILN_TEST_S3_BUCKET");
    access_key = getenv("KILN_TEST_S3_ACCESS_KEY");
    secret_key = getenv("KILN_TEST_S3_SECRET_KEY");
    if (argc < 2 || !endpoint || !bucket)
        TEST_SKIP("run by tests/0312-store_s3.sh (needs KILN_TEST_S3_ENDPOINT, _BUCKET)");
    if (!access_key)
        access_key = "testing";
    if (!secret_key)
        secret_key = "testing";
    if (!strcmp(argv[1], "moto"))
        return phase_moto();
    if (!strcmp(argv[1], "auth"))
        return phase_auth();
    if (!strcmp(argv[1], "sigcheck"))
        return phase_sigcheck();
    fprintf(stderr, "unknown phase %s\n", argv[1]);
    return 2;
}
