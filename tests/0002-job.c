/*
 * tests/0002-job.c - job message validation (kiln/job.h, lib/job.c) and the
 * error enum's text (kiln/err.h, lib/err.c).
 *
 * kiln_job_parse: valid messages (uri, inline_b64, text; unknown fields kept;
 * params.language; priority and tenant defaults) and every rejection with
 * its code and reason: empty, not JSON, trailing data, not an object, bad id
 * (missing, not a string, bad characters, too long), bad tenant, missing /
 * unknown modality, bad priority, bad deadline, input missing / two / none /
 * not strings, transcribe with text, inline over the limit, message over
 * max_message_bytes, nesting over max_json_depth (brackets inside strings do
 * not count), duplicate keys, bad params. For each rejection it also checks
 * that job->id is filled exactly when the id could be read. Then
 * kiln_job_new_id (UUIDv4 form, distinct) and kiln_err2str / kiln_err2name /
 * kiln_err_is_retriable. Pure computation; well under a second.
 */
#include "kiln/err.h"
#include "kiln/job.h"
#include "tests/test.h"

#include <ctype.h>

/* Messages used below, all valid apart from what each test changes. */
#define SPEAK_OK "{\"id\":\"j1\",\"tenant\":\"acme\",\"modality\":\"speak\",\"input\":{\"text\":\"hello\"}}"

/*
 * Parses \p msg (strlen bytes) and checks the result code, that errstr
 * contains \p reason (when not NULL) and that job->id reads \p id afterwards.
 * @returns 1 if all held.
 */
static int expect_(const char *file, int line, const char *msg, size_t len,
                   const kiln_job_limits_t *lim, kiln_err_t want, const char *reason,
                   const char *id) {
    kiln_job_t job;
    char errstr[512] = "";
    kiln_err_t err = kiln_job_parse(msg, len, lim, &job, errstr, sizeof(errstr));
    int ok = 1;
    if (err != want) {
        printf("# %s:%d: %.200s\n#   gave %s (%s), expected %s\n", file, line, msg, kiln_err2name(err),
               err ? errstr : "no error", kiln_err2name(want));
        ok = 0;
    } else if (want != KILN_OK && reason && !strstr(errstr, reason)) {
        printf("# %s:%d: %.200s\n#   reason \"%s\" lacks \"%s\"\n", file, line, msg, errstr, reason);
        ok = 0;
    }
    if (id && strcmp(job.id, id)) {
        printf("# %s:%d: %.200s\n#   job->id \"%s\", expected \"%s\"\n", file, line, msg, job.id, id);
        ok = 0;
    }
    kiln_job_clear(&job);
    return ok;
}

#define EXPECT(msg, want, reason, id)                                                              \
    do {                                                                                         \
        kiln_job_limits_t lim_ = kiln_job_default_limits();                                      \
        const char *m_ = (msg);                                                                  \
        TEST_CHECK(expect_(__FILE__, __LINE__, m_, strlen(m_), &lim_, want, reason, id),         \
                   "see the lines above");                                                       \
    } while (0)

#define EXPECT_LIM(msg, lim, want, reason, id)                                                     \
    do {                                                                                         \
        const char *m_ = (msg);                                                                  \
        TEST_CHECK(expect_(__FILE__, __LINE__, m_, strlen(m_), &(lim), want, reason, id),        \
                   "see the lines above");                                                       \
    } while (0)

/* ---- valid messages ----------------------------------------------------------- */

static void test_valid(void) {
    kiln_job_limits_t lim = kiln_job_default_limits();
    kiln_job_t job;
    char errstr[512] = "";

    SUB_TEST("default limits");
    TEST_CHECK(lim.max_message_bytes == 1 << 20, "max_message_bytes %zu", lim.max_message_bytes);
    TEST_CHECK(lim.max_json_depth == 32, "max_json_depth %d", lim.max_json_depth);
    TEST_CHECK(lim.max_inline_bytes == 65536, "max_inline_bytes %zu", lim.max_inline_bytes);
    SUB_TEST_PASS();

    SUB_TEST("valid: transcribe by uri, every field, unknown fields kept");
    const char *m1 = "{\"id\":\"2b1c8d9e-2f7a-4c7e-9a51-0d2b9c1e7f10\",\"tenant\":\"acme_co-1\","
                     "\"modality\":\"transcribe\",\"input\":{\"uri\":\"s3://kiln-inputs/acme/a.flac\"},"
                     "\"params\":{\"language\":\"en\",\"formats\":[\"json\",\"srt\"]},\"priority\":-7,"
                     "\"deadline\":\"2030-01-02T03:04:05Z\",\"callback_url\":null,"
                     "\"x_future\":{\"nested\":[1,2,3]}}";
    kiln_err_t err = kiln_job_parse(m1, strlen(m1), &lim, &job, errstr, sizeof(errstr));
    TEST_ASSERT(err == KILN_OK, "rejected: %s", errstr);
    TEST_CHECK(!strcmp(job.id, "2b1c8d9e-2f7a-4c7e-9a51-0d2b9c1e7f10"), "id %s", job.id);
    TEST_CHECK(!strcmp(job.tenant, "acme_co-1"), "tenant %s", job.tenant);
    TEST_CHECK(!strcmp(job.modality, "transcribe"), "modality %s", job.modality);
    TEST_CHECK(job.priority == -7, "priority %d", job.priority);
    TEST_CHECK(job.input_uri && !strcmp(job.input_uri, "s3://kiln-inputs/acme/a.flac"), "uri %s",
               job.input_uri ? job.input_uri : "(null)");
    TEST_CHECK(!job.inline_b64 && !job.text, "other inputs set");
    TEST_CHECK(job.language && !strcmp(job.language, "en"), "language %s", job.language ? job.language : "(null)");
    TEST_CHECK(job.deadline && !strcmp(job.deadline, "2030-01-02T03:04:05Z"), "deadline %s",
               job.deadline ? job.deadline : "(null)");
    TEST_CHECK(job.params && json_is_array(json_object_get(job.params, "formats")), "params.formats lost");
    json_t *xf = json_object_get(job.root, "x_future");
    TEST_CHECK(xf && json_is_array(json_object_get(xf, "nested")) &&
                   json_array_size(json_object_get(xf, "nested")) == 3,
               "unknown field x_future not kept");
    TEST_CHECK(json_object_get(job.root, "callback_url") != NULL, "callback_url not kept");
    kiln_job_clear(&job);
    TEST_CHECK(job.root == NULL && job.id[0] == '\0', "kiln_job_clear left state");
    kiln_job_clear(&job); /* twice is fine */
    kiln_job_clear(NULL);
    SUB_TEST_PASS();

    SUB_TEST("valid: inline_b64, defaults for tenant, priority, params");
    const char *m2 = "{\"id\":\"in.1\",\"modality\":\"transcribe\",\"input\":{\"inline_b64\":\"UklGRiQAAABXQVZF\"}}";
    err = kiln_job_parse(m2, strlen(m2), &lim, &job, errstr, sizeof(errstr));
    TEST_ASSERT(err == KILN_OK, "rejected: %s", errstr);
    TEST_CHECK(job.inline_b64 && !strcmp(job.inline_b64, "UklGRiQAAABXQVZF"), "inline_b64 %s",
               job.inline_b64 ? job.inline_b64 : "(null)");
    TEST_CHECK(!job.input_uri && !job.text, "other inputs set");
    TEST_CHECK(!strcmp(job.tenant, "default"), "tenant %s", job.tenant);
    TEST_CHECK(job.priority == 0, "priority %d", job.priority);
    TEST_CHECK(!job.params && !job.language && !job.deadline, "params/language/deadline set");
    kiln_job_clear(&job);
    SUB_TEST_PASS();

    SUB_TEST("valid: speak with text, image with uri, nulls as absent");
    err = kiln_job_parse(SPEAK_OK, strlen(SPEAK_OK), &lim, &job, errstr, sizeof(errstr));
    TEST_ASSERT(err == KILN_OK, "rejected: %s", errstr);
    TEST_CHECK(!strcmp(job.modality, "speak"), "modality %s", job.modality);
    TEST_CHECK(job.text && !strcmp(job.text, "hello"), "text %s", job.text ? job.text : "(null)");
    kiln_job_clear(&job);
    EXPECT("{\"id\":\"i1\",\"modality\":\"image\",\"input\":{\"uri\":\"file:///x.png\"}}", KILN_OK, NULL, "i1");
    /* null tenant, priority, params and a null input field count as absent */
    const char *m3 = "{\"id\":\"n1\",\"tenant\":null,\"priority\":null,\"params\":null,\"modality\":\"speak\","
                     "\"input\":{\"uri\":null,\"text\":\"hi\"}}";
    err = kiln_job_parse(m3, strlen(m3), &lim, &job, errstr, sizeof(errstr));
    TEST_CHECK(err == KILN_OK, "rejected: %s", errstr);
    TEST_CHECK(!strcmp(job.tenant, "default") && job.priority == 0 && !job.params && !job.input_uri,
               "nulls not treated as absent");
    kiln_job_clear(&job);
    /* params without language */
    const char *m4 = "{\"id\":\"p1\",\"modality\":\"speak\",\"input\":{\"text\":\"hi\"},\"params\":{\"voice\":\"x\"}}";
    err = kiln_job_parse(m4, strlen(m4), &lim, &job, errstr, sizeof(errstr));
    TEST_CHECK(err == KILN_OK, "rejected: %s", errstr);
    TEST_CHECK(job.params && !job.language, "params %p language %s", (void *)job.params,
               job.language ? job.language : "(null)");
    kiln_job_clear(&job);
    SUB_TEST_PASS();

    SUB_TEST("valid: id and priority boundaries, whitespace around the object");
    char id128[KILN_JOB_ID_MAX + 1], msg[600];
    for (int i = 0; i < KILN_JOB_ID_MAX; i++)
        id128[i] = "Az09._:-"[i % 8];
    id128[KILN_JOB_ID_MAX] = '\0';
    snprintf(msg, sizeof(msg), "{\"id\":\"%s\",\"modality\":\"speak\",\"input\":{\"text\":\"x\"}}", id128);
    EXPECT(msg, KILN_OK, NULL, id128);
    char tenant64[KILN_TENANT_MAX + 1];
    memset(tenant64, 't', KILN_TENANT_MAX);
    tenant64[KILN_TENANT_MAX] = '\0';
    snprintf(msg, sizeof(msg), "{\"id\":\"t\",\"tenant\":\"%s\",\"modality\":\"speak\",\"input\":{\"text\":\"x\"}}",
             tenant64);
    EXPECT(msg, KILN_OK, NULL, "t");
    EXPECT("{\"id\":\"p\",\"priority\":1000,\"modality\":\"speak\",\"input\":{\"text\":\"x\"}}", KILN_OK, NULL, "p");
    EXPECT("{\"id\":\"p\",\"priority\":-1000,\"modality\":\"speak\",\"input\":{\"text\":\"x\"}}", KILN_OK, NULL, "p");
    EXPECT("  \n" SPEAK_OK "\n\t ", KILN_OK, NULL, "j1");
    SUB_TEST_PASS();
}

/* ---- rejections ----------------------------------------------------------------- */

static void test_reject_structure(void) {
    kiln_job_limits_t lim = kiln_job_default_limits();
    SUB_TEST("reject: empty, not JSON, not an object");
    EXPECT("", KILN_ERR_BAD_JOB, "empty job message", "");
    EXPECT("hello", KILN_ERR_BAD_JOB, "invalid JSON", "");
    EXPECT("{\"id\":\"j1\",\"modality\":\"speak\"", KILN_ERR_BAD_JOB, "invalid JSON", "");
    EXPECT("{\"id\":\"j1\",}", KILN_ERR_BAD_JOB, "invalid JSON", "");
    EXPECT("[]", KILN_ERR_BAD_JOB, "not a JSON object", "");
    EXPECT("[{\"id\":\"j1\",\"modality\":\"speak\",\"input\":{\"text\":\"x\"}}]", KILN_ERR_BAD_JOB,
           "not a JSON object", "");
    /* a NUL inside the message is not JSON */
    static const char nul[] = "{\"id\":\"j1\"\0}";
    TEST_CHECK(expect_(__FILE__, __LINE__, nul, sizeof(nul) - 1, &lim, KILN_ERR_BAD_JOB, "invalid JSON", ""),
               "see the lines above");
    SUB_TEST_PASS();

    /*
     * A message is one JSON object. Data after it (a second object, or
     * garbage) must not be ignored: the body that was validated would not
     * be the body that was sent.
     */
    SUB_TEST("reject: data after the object");
    EXPECT(SPEAK_OK "garbage", KILN_ERR_BAD_JOB, "invalid JSON", NULL);
    EXPECT(SPEAK_OK "{\"id\":\"j2\",\"modality\":\"transcribe\",\"input\":{\"uri\":\"s3://b/k\"}}",
           KILN_ERR_BAD_JOB, "invalid JSON", NULL);
    SUB_TEST_PASS();

    SUB_TEST("reject: duplicate keys");
    EXPECT("{\"id\":\"a\",\"id\":\"b\",\"modality\":\"speak\",\"input\":{\"text\":\"x\"}}", KILN_ERR_BAD_JOB,
           "duplicate", "");
    EXPECT("{\"id\":\"a\",\"modality\":\"speak\",\"modality\":\"transcribe\",\"input\":{\"text\":\"x\"}}",
           KILN_ERR_BAD_JOB, "duplicate", "");
    EXPECT("{\"id\":\"a\",\"modality\":\"transcribe\",\"input\":{\"uri\":\"s3://b/1\",\"uri\":\"s3://b/2\"}}",
           KILN_ERR_BAD_JOB, "duplicate", "");
    SUB_TEST_PASS();
}

static void test_reject_id_tenant(void) {
    SUB_TEST("reject: missing or invalid id");
    const char *reason = "field \"id\" is missing or invalid";
    EXPECT("{\"modality\":\"speak\",\"input\":{\"text\":\"x\"}}", KILN_ERR_BAD_JOB, reason, "");
    EXPECT("{\"id\":null,\"modality\":\"speak\",\"input\":{\"text\":\"x\"}}", KILN_ERR_BAD_JOB, reason, "");
    EXPECT("{\"id\":42,\"modality\":\"speak\",\"input\":{\"text\":\"x\"}}", KILN_ERR_BAD_JOB, reason, "");
    EXPECT("{\"id\":\"\",\"modality\":\"speak\",\"input\":{\"text\":\"x\"}}", KILN_ERR_BAD_JOB, reason, "");
    const char *bad_ids[] = {"a b", "a/b", "../etc", "a\\\\b", "caf\\u00e9", "a\\nb", "a;b", "a\\\"b", "x*"};
    char msg[700];
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
        snprintf(msg, sizeof(msg), "{\"id\":\"%s\",\"modality\":\"speak\",\"input\":{\"text\":\"x\"}}", bad_ids[i]);
        EXPECT(msg, KILN_ERR_BAD_JOB, reason, "");
    }
    char id129[KILN_JOB_ID_MAX + 2];
    memset(id129, 'a', KILN_JOB_ID_MAX + 1);
    id129[KILN_JOB_ID_MAX + 1] = '\0';
    snprintf(msg, sizeof(msg), "{\"id\":\"%s\",\"modality\":\"speak\",\"input\":{\"text\":\"x\"}}", id129);
    EXPECT(msg, KILN_ERR_BAD_JOB, reason, "");
    SUB_TEST_PASS();

    SUB_TEST("reject: invalid tenant (id still filled)");
    reason = "field \"tenant\" is invalid";
    const char *bad_tenants[] = {"\"\"", "\"ac me\"", "\"acme.co\"", "\"a:b\"", "\"../x\"", "7", "[\"acme\"]"};
    for (size_t i = 0; i < sizeof(bad_tenants) / sizeof(bad_tenants[0]); i++) {
        snprintf(msg, sizeof(msg), "{\"id\":\"j1\",\"tenant\":%s,\"modality\":\"speak\",\"input\":{\"text\":\"x\"}}",
                 bad_tenants[i]);
        EXPECT(msg, KILN_ERR_BAD_JOB, reason, "j1");
    }
    char t65[KILN_TENANT_MAX + 2];
    memset(t65, 't', KILN_TENANT_MAX + 1);
    t65[KILN_TENANT_MAX + 1] = '\0';
    snprintf(msg, sizeof(msg), "{\"id\":\"j1\",\"tenant\":\"%s\",\"modality\":\"speak\",\"input\":{\"text\":\"x\"}}", t65);
    EXPECT(msg, KILN_ERR_BAD_JOB, reason, "j1");
    SUB_TEST_PASS();

    SUB_TEST("id and tenant charset helpers");
    TEST_CHECK(kiln_job_id_valid("a") && kiln_job_id_valid("A.b_c:d-9"), "valid ids rejected");
    TEST_CHECK(!kiln_job_id_valid("") && !kiln_job_id_valid("a b") && !kiln_job_id_valid("a/b"),
               "invalid ids accepted");
    TEST_CHECK(kiln_tenant_valid("acme_co-1") && !kiln_tenant_valid("acme.co") && !kiln_tenant_valid(""),
               "tenant charset");
    SUB_TEST_PASS();
}

static void test_reject_fields(void) {
    SUB_TEST("reject: modality missing, not a string, unknown (id and tenant filled)");
    kiln_job_limits_t lim = kiln_job_default_limits();
    kiln_job_t job;
    char errstr[512] = "";
    const char *m = "{\"id\":\"j1\",\"tenant\":\"acme\",\"input\":{\"text\":\"x\"}}";
    kiln_err_t err = kiln_job_parse(m, strlen(m), &lim, &job, errstr, sizeof(errstr));
    TEST_CHECK(err == KILN_ERR_BAD_JOB, "gave %s", kiln_err2name(err));
    TEST_CHECK(strstr(errstr, "field \"modality\" is missing") != NULL, "errstr \"%s\"", errstr);
    TEST_CHECK(!strcmp(job.id, "j1") && !strcmp(job.tenant, "acme"), "id \"%s\" tenant \"%s\"", job.id, job.tenant);
    kiln_job_clear(&job);
    EXPECT("{\"id\":\"j1\",\"modality\":3,\"input\":{\"text\":\"x\"}}", KILN_ERR_BAD_JOB,
           "field \"modality\" is missing or not a string", "j1");
    EXPECT("{\"id\":\"j1\",\"modality\":\"video\",\"input\":{\"uri\":\"s3://b/k\"}}", KILN_ERR_BAD_JOB,
           "unknown modality \"video\"", "j1");
    EXPECT("{\"id\":\"j1\",\"modality\":\"\",\"input\":{\"uri\":\"s3://b/k\"}}", KILN_ERR_BAD_JOB,
           "unknown modality", "j1");
    EXPECT("{\"id\":\"j1\",\"modality\":\"Speak\",\"input\":{\"text\":\"x\"}}", KILN_ERR_BAD_JOB,
           "unknown modality", "j1");
    SUB_TEST_PASS();

    SUB_TEST("reject: priority not an integer or out of range");
    const char *reason = "field \"priority\" must be an integer in -1000..1000";
    const char *bad_prio[] = {"\"5\"", "1.5", "1001", "-1001", "true", "[1]", "1e3", "99999999999999999999"};
    char msg[300];
    for (size_t i = 0; i < sizeof(bad_prio) / sizeof(bad_prio[0]); i++) {
        snprintf(msg, sizeof(msg), "{\"id\":\"j1\",\"priority\":%s,\"modality\":\"speak\",\"input\":{\"text\":\"x\"}}",
                 bad_prio[i]);
        kiln_err_t want = KILN_ERR_BAD_JOB;
        EXPECT(msg, want, strcmp(bad_prio[i], "99999999999999999999") ? reason : NULL,
               strcmp(bad_prio[i], "99999999999999999999") ? "j1" : NULL);
    }
    SUB_TEST_PASS();

    SUB_TEST("reject: deadline not a string");
    EXPECT("{\"id\":\"j1\",\"deadline\":1700000000,\"modality\":\"speak\",\"input\":{\"text\":\"x\"}}",
           KILN_ERR_BAD_JOB, "field \"deadline\"", "j1");
    SUB_TEST_PASS();

    SUB_TEST("reject: input missing, not an object, none, two, not strings");
    EXPECT("{\"id\":\"j1\",\"modality\":\"speak\"}", KILN_ERR_BAD_JOB, "field \"input\" is missing or not an object",
           "j1");
    EXPECT("{\"id\":\"j1\",\"modality\":\"speak\",\"input\":\"hello\"}", KILN_ERR_BAD_JOB,
           "field \"input\" is missing or not an object", "j1");
    EXPECT("{\"id\":\"j1\",\"modality\":\"speak\",\"input\":null}", KILN_ERR_BAD_JOB,
           "field \"input\" is missing or not an object", "j1");
    reason = "field \"input\" must have exactly one of \"uri\", \"inline_b64\", \"text\"";
    EXPECT("{\"id\":\"j1\",\"modality\":\"speak\",\"input\":{}}", KILN_ERR_BAD_JOB, reason, "j1");
    EXPECT("{\"id\":\"j1\",\"modality\":\"speak\",\"input\":{\"path\":\"/x\"}}", KILN_ERR_BAD_JOB, reason, "j1");
    EXPECT("{\"id\":\"j1\",\"modality\":\"speak\",\"input\":{\"uri\":\"s3://b/k\",\"text\":\"x\"}}", KILN_ERR_BAD_JOB,
           reason, "j1");
    EXPECT("{\"id\":\"j1\",\"modality\":\"transcribe\",\"input\":{\"uri\":\"s3://b/k\",\"inline_b64\":\"AAAA\"}}",
           KILN_ERR_BAD_JOB, reason, "j1");
    EXPECT("{\"id\":\"j1\",\"modality\":\"speak\",\"input\":{\"uri\":\"s3://b/k\",\"inline_b64\":\"AAAA\","
           "\"text\":\"x\"}}",
           KILN_ERR_BAD_JOB, reason, "j1");
    EXPECT("{\"id\":\"j1\",\"modality\":\"transcribe\",\"input\":{\"uri\":5}}", KILN_ERR_BAD_JOB,
           "fields of \"input\" must be strings", "j1");
    EXPECT("{\"id\":\"j1\",\"modality\":\"speak\",\"input\":{\"text\":[\"x\"]}}", KILN_ERR_BAD_JOB,
           "fields of \"input\" must be strings", "j1");
    SUB_TEST_PASS();

    SUB_TEST("reject: transcribe with text");
    EXPECT("{\"id\":\"j1\",\"modality\":\"transcribe\",\"input\":{\"text\":\"hello\"}}", KILN_ERR_BAD_JOB,
           "a transcribe job needs audio", "j1");
    SUB_TEST_PASS();

    SUB_TEST("reject: params not an object, bad params.language");
    EXPECT("{\"id\":\"j1\",\"modality\":\"speak\",\"input\":{\"text\":\"x\"},\"params\":[1]}", KILN_ERR_BAD_JOB,
           "field \"params\" must be an object", "j1");
    EXPECT("{\"id\":\"j1\",\"modality\":\"speak\",\"input\":{\"text\":\"x\"},\"params\":{\"language\":7}}",
           KILN_ERR_BAD_JOB, "params.language", "j1");
    /* 15 characters is the limit */
    EXPECT("{\"id\":\"j1\",\"modality\":\"speak\",\"input\":{\"text\":\"x\"},\"params\":{\"language\":\"abcdefghijklmno\"}}",
           KILN_OK, NULL, "j1");
    EXPECT("{\"id\":\"j1\",\"modality\":\"speak\",\"input\":{\"text\":\"x\"},\"params\":{\"language\":\"abcdefghijklmnop\"}}",
           KILN_ERR_BAD_JOB, "params.language", "j1");
    SUB_TEST_PASS();
}

/* Builds a transcribe job with an inline payload of \p n base64 characters. */
static char *inline_msg(size_t n) {
    const char *head = "{\"id\":\"big\",\"modality\":\"transcribe\",\"input\":{\"inline_b64\":\"";
    const char *tail = "\"}}";
    size_t hl = strlen(head), tl = strlen(tail);
    char *m = malloc(hl + n + tl + 1);
    TEST_ASSERT(m != NULL, "malloc");
    memcpy(m, head, hl);
    memset(m + hl, 'A', n);
    memcpy(m + hl + n, tail, tl + 1);
    return m;
}

static void test_reject_limits(void) {
    SUB_TEST("limits: inline payload");
    kiln_job_limits_t lim = kiln_job_default_limits();
    lim.max_inline_bytes = 300; /* base64: 400 characters */
    char *m = inline_msg(400);
    EXPECT_LIM(m, lim, KILN_OK, NULL, "big");
    free(m);
    m = inline_msg(800);
    EXPECT_LIM(m, lim, KILN_ERR_TOO_LARGE, "inline payload is over the limit of 300 bytes", "big");
    free(m);
    /* the default 64 KiB: exactly its base64 passes, a few more bytes do not */
    m = inline_msg((65536 + 2) / 3 * 4);
    EXPECT(m, KILN_OK, NULL, "big");
    free(m);
    m = inline_msg((65536 + 2) / 3 * 4 + 8);
    EXPECT(m, KILN_ERR_TOO_LARGE, "inline payload is over the limit of 65536 bytes", "big");
    free(m);
    SUB_TEST_PASS();

    SUB_TEST("limits: max_message_bytes");
    lim = kiln_job_default_limits();
    lim.max_message_bytes = strlen(SPEAK_OK);
    EXPECT_LIM(SPEAK_OK, lim, KILN_OK, NULL, "j1");
    lim.max_message_bytes = strlen(SPEAK_OK) - 1;
    char reason[100];
    snprintf(reason, sizeof(reason), "job message of %zu bytes is over the limit of %zu", strlen(SPEAK_OK),
             strlen(SPEAK_OK) - 1);
    EXPECT_LIM(SPEAK_OK, lim, KILN_ERR_TOO_LARGE, reason, "");
    /* the default 1 MiB */
    m = inline_msg((1 << 20) + 10);
    EXPECT(m, KILN_ERR_TOO_LARGE, "over the limit of 1048576", "");
    free(m);
    SUB_TEST_PASS();

    SUB_TEST("limits: max_json_depth");
    lim = kiln_job_default_limits();
    lim.max_json_depth = 4;
    /* depth 3 and 4 (root, params, a, b's array) pass; 5 does not */
    EXPECT_LIM("{\"id\":\"d\",\"modality\":\"speak\",\"input\":{\"text\":\"x\"},\"params\":{\"a\":[1]}}", lim,
               KILN_OK, NULL, "d");
    EXPECT_LIM("{\"id\":\"d\",\"modality\":\"speak\",\"input\":{\"text\":\"x\"},\"params\":{\"a\":{\"b\":[1]}}}",
               lim, KILN_OK, NULL, "d");
    EXPECT_LIM("{\"id\":\"d\",\"modality\":\"speak\",\"input\":{\"text\":\"x\"},\"params\":{\"a\":{\"b\":[[1]]}}}",
               lim, KILN_ERR_TOO_LARGE, "job message nests 5 deep, over the limit of 4", "");
    /* brackets inside strings are text, not nesting */
    EXPECT_LIM("{\"id\":\"d\",\"modality\":\"speak\",\"input\":{\"text\":\"[[[[[[[[{{{{{{{{\"}}", lim, KILN_OK, NULL,
               "d");
    EXPECT_LIM("{\"id\":\"d\",\"modality\":\"speak\",\"input\":{\"text\":\"x\"},\"x\":\"]]]]{{{{[[[[\"}", lim,
               KILN_OK, NULL, "d");
    /* an escaped quote does not end the string ... */
    EXPECT_LIM("{\"id\":\"d\",\"modality\":\"speak\",\"input\":{\"text\":\"say \\\"[[[[[[[[\\\" now\"}}", lim,
               KILN_OK, NULL, "d");
    /* ... but an escaped backslash before the quote does */
    EXPECT_LIM("{\"id\":\"d\",\"modality\":\"speak\",\"input\":{\"text\":\"x\\\\\"},\"p\":[[[[1]]]]}", lim,
               KILN_ERR_TOO_LARGE, "nests 5 deep", "");
    /* the default limit of 32 */
    char deep[400];
    for (int d = 31; d <= 32; d++) {
        /* root object + d arrays */
        int n = snprintf(deep, sizeof(deep), "{\"id\":\"d\",\"modality\":\"speak\",\"input\":{\"text\":\"x\"},\"p\":");
        for (int i = 0; i < d; i++)
            deep[n++] = '[';
        for (int i = 0; i < d; i++)
            deep[n++] = ']';
        deep[n++] = '}';
        deep[n] = '\0';
        if (d == 31)
            EXPECT(deep, KILN_OK, NULL, "d");
        else
            EXPECT(deep, KILN_ERR_TOO_LARGE, "nests 33 deep, over the limit of 32", "");
    }
    SUB_TEST_PASS();
}

/* ---- ids and error text ----------------------------------------------------------- */

static int is_uuid_v4(const char *s) {
    if (strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i])) {
            return 0;
        }
    }
    return s[14] == '4' && strchr("89ab", s[19]) != NULL;
}

static void test_new_id(void) {
    SUB_TEST("kiln_job_new_id: UUIDv4, distinct, a valid job id");
    enum { N = 200 };
    static char ids[N][37];
    for (int i = 0; i < N; i++) {
        memset(ids[i], 'Z', sizeof(ids[i]));
        kiln_job_new_id(ids[i]);
        TEST_CHECK(ids[i][36] == '\0', "not terminated");
        TEST_CHECK(is_uuid_v4(ids[i]), "not a v4 UUID: %.36s", ids[i]);
        TEST_CHECK(kiln_job_id_valid(ids[i]), "not a valid job id: %s", ids[i]);
    }
    TEST_CHECK(strcmp(ids[0], ids[1]) != 0, "two calls gave %s", ids[0]);
    int dups = 0;
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            dups += !strcmp(ids[i], ids[j]);
    TEST_CHECK(dups == 0, "%d duplicate ids in %d", dups, N);
    SUB_TEST_PASS();
}

static void test_err(void) {
    SUB_TEST("kiln_err2str / kiln_err2name");
    TEST_CHECK(!strcmp(kiln_err2str(KILN_OK), "success"), "OK: %s", kiln_err2str(KILN_OK));
    TEST_CHECK(!strcmp(kiln_err2name(KILN_OK), "OK"), "OK name: %s", kiln_err2name(KILN_OK));
    TEST_CHECK(!strcmp(kiln_err2str(KILN_ERR_BAD_JOB), "invalid job message"), "BAD_JOB: %s",
               kiln_err2str(KILN_ERR_BAD_JOB));
    TEST_CHECK(!strcmp(kiln_err2name(KILN_ERR_BAD_JOB), "BAD_JOB"), "%s", kiln_err2name(KILN_ERR_BAD_JOB));
    TEST_CHECK(!strcmp(kiln_err2name(KILN_ERR_TOO_LARGE), "TOO_LARGE"), "%s", kiln_err2name(KILN_ERR_TOO_LARGE));
    TEST_CHECK(!strcmp(kiln_err2str(KILN_ERR__QUEUE_FULL), "queue full"), "%s", kiln_err2str(KILN_ERR__QUEUE_FULL));
    TEST_CHECK(!strcmp(kiln_err2name(KILN_ERR__QUEUE_FULL), "_QUEUE_FULL"), "%s",
               kiln_err2name(KILN_ERR__QUEUE_FULL));
    TEST_CHECK(!strcmp(kiln_err2name(KILN_ERR__TIMED_OUT), "_TIMED_OUT"), "%s", kiln_err2name(KILN_ERR__TIMED_OUT));
    TEST_CHECK(!strcmp(kiln_err2str(KILN_ERR__FENCED), "assignment epoch is stale"), "%s",
               kiln_err2str(KILN_ERR__FENCED));
    /* unknown codes, including the range markers */
    kiln_err_t unknown[] = {(kiln_err_t)12345, (kiln_err_t)-1, (kiln_err_t)12, KILN_ERR__BEGIN, KILN_ERR__END};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        TEST_CHECK(!strcmp(kiln_err2str(unknown[i]), "unknown error"), "%d: %s", (int)unknown[i],
                   kiln_err2str(unknown[i]));
        TEST_CHECK(!strcmp(kiln_err2name(unknown[i]), "UNKNOWN"), "%d: %s", (int)unknown[i],
                   kiln_err2name(unknown[i]));
    }
    /* every defined code has its own name and a description; local ones start with '_' */
    const char *names[40];
    int n = 0;
    for (int e = KILN_ERR__BEGIN + 1; e <= KILN_ERR_ENGINE; e++) {
        if (e > KILN_ERR__STOPPED && e < KILN_OK)
            continue;
        const char *nm = kiln_err2name((kiln_err_t)e), *ds = kiln_err2str((kiln_err_t)e);
        TEST_CHECK(strcmp(nm, "UNKNOWN") && strcmp(ds, "unknown error"), "code %d has no text", e);
        TEST_CHECK((e < 0) == (nm[0] == '_'), "code %d named %s", e, nm);
        for (int j = 0; j < n; j++)
            TEST_CHECK(strcmp(names[j], nm), "name %s used twice", nm);
        if (n < 40)
            names[n++] = nm;
    }
    SUB_TEST_PASS();

    SUB_TEST("kiln_err_is_retriable");
    kiln_err_t yes[] = {KILN_ERR_IO, KILN_ERR_PG, KILN_ERR_KAFKA, KILN_ERR_STORE, KILN_ERR__QUEUE_FULL,
                        KILN_ERR__TIMED_OUT};
    kiln_err_t no[] = {KILN_OK, KILN_ERR_BAD_JOB, KILN_ERR_BAD_INPUT, KILN_ERR_TOO_LARGE, KILN_ERR_BAD_KEY,
                       KILN_ERR_CONF, KILN_ERR_MODEL, KILN_ERR__FENCED, KILN_ERR__INVALID_ARG, (kiln_err_t)12345};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        TEST_CHECK(kiln_err_is_retriable(yes[i]) == 1, "%s not retriable", kiln_err2name(yes[i]));
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        TEST_CHECK(kiln_err_is_retriable(no[i]) == 0, "%s (%d) retriable", kiln_err2name(no[i]), (int)no[i]);
    SUB_TEST_PASS();
}

int main(void) {
    test_valid();
    test_reject_structure();
    test_reject_id_tenant();
    test_reject_fields();
    test_reject_limits();
    test_new_id();
    test_err();
    printf("%d passed, %d failed\n", test_n_passed_, test_n_failed_);
    return TEST_DONE();
}
