/*
 * tests/fuzz/fuzz_s3.c - the S3 response handling of lib/store_s3.c: the
 * body callback that collects an error body (capped at 64 KiB), the XML
 * <Code>/<Message> extraction with entity decoding, and the mapping of the
 * answer to a kiln_err_t and a message (kiln_s3_result_).
 *
 * Those functions are static, so the target includes lib/store_s3.c itself
 * (its one global, kiln_store_s3_open, is then defined here and libkiln's
 * copy is never linked in).
 *
 * Input: byte 0 picks the HTTP status, byte 1 the transfer outcome
 * (curl result code, too-large and out-of-memory flags), byte 2 the chunk
 * size the body arrives in, byte 3 how many times the body repeats (to reach
 * the 64 KiB cap); the rest is the response body. The message must name the
 * object, stay NUL-terminated and hold no control character (it goes to
 * logs and to the DLQ headers).
 */
#include "lib/store_s3.c"

#include "tests/fuzz/fuzz.h"

static int kiln_fuzz_s3(const uint8_t *data, size_t size) {
    static const long statuses[] = {200, 204, 206, 301, 307, 400, 403, 404,
                                    409, 412, 416, 429, 500, 501, 503, 0};
    static const CURLcode rcs[] = {CURLE_OK, CURLE_OK, CURLE_OK, CURLE_OK, CURLE_OK,
                                   CURLE_COULDNT_CONNECT, CURLE_OPERATION_TIMEDOUT,
                                   CURLE_OUT_OF_MEMORY};
    static const char *methods[] = {"GET", "PUT", "HEAD", "DELETE"};
    static CURL *curl;
    if (size < 4)
        return 0;
    if (!curl && !(curl = curl_easy_init())) /* never performed: answers as non-2xx */
        return 0;
    kiln_store_s3_t s3 = {.bucket = "bucket", .prefix = "pre/fix", .curl = curl};
    kiln_store_t st = {.ops = &kiln_store_s3_ops, .root_uri = "s3://bucket/pre/fix",
                       .impl = &s3};
    kiln_s3_req_t rq = {.curl = curl, .method = methods[data[1] >> 6],
                        .max_bytes = 1 << 20};
    size_t chunk = data[2] ? data[2] : 4096, reps = 1 + data[3] % 64;
    const char *body = (const char *)data + 4;
    size_t blen = size - 4;
    for (size_t r = 0; r < reps && blen; r++)
        for (size_t off = 0; off < blen; off += chunk) {
            size_t n = blen - off < chunk ? blen - off : chunk;
            size_t got = kiln_s3_write_cb_((char *)body + off, 1, n, &rq);
            KILN_FUZZ_CHECK(got == n || rq.nomem);
        }
    KILN_FUZZ_CHECK(rq.len <= KILN_S3_ERRBODY_MAX);
    rq.status = statuses[data[0] % 16];
    rq.too_large = (data[1] & 0x08) != 0;
    rq.nomem = rq.nomem || (data[1] & 0x10);
    CURLcode rc = rcs[data[1] & 7];
    char err[1024];
    err[0] = '\0';
    kiln_err_t e = kiln_s3_result_(&st, "read", "results/acme/j1/transcript.json", rc, &rq, err,
                                   sizeof(err));
    KILN_FUZZ_CHECK(memchr(err, '\0', sizeof(err)));
    if (e == KILN_OK) {
        KILN_FUZZ_CHECK(rc == CURLE_OK && rq.status >= 200 && rq.status < 300);
    } else {
        KILN_FUZZ_CHECK(kiln_fuzz_printable(err));
        KILN_FUZZ_CHECK(strstr(err, "s3://bucket/pre/fix/results/acme/j1/transcript.json"));
        KILN_FUZZ_CHECK(e != KILN_ERR__NOT_FOUND || rq.status == 404);
    }
    /* the tag reader alone, on the raw body (not NUL-terminated by the caller) */
    char *z = malloc(blen + 1), code[128];
    if (z) {
        memcpy(z, body, blen);
        z[blen] = '\0';
        kiln_s3_xml_tag_(z, "Code", code, sizeof(code));
        KILN_FUZZ_CHECK(strlen(code) < sizeof(code) && kiln_fuzz_printable(code));
        free(z);
    }
    free(rq.buf);
    return 0;
}

KILN_FUZZ_MAIN(kiln_fuzz_s3)
