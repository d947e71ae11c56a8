/*
 * lib/store.c - the backend-independent half of kiln/store.h.
 *
 * Here live the key rules (kiln_store_key_check, kiln_store_result_key),
 * the parsing of the root URI (conf "store.url"), the dispatch to the
 * file:// backend (lib/store_file.c) and the s3:// backend
 * (lib/store_s3.c), and a SHA-256 used for S3 payload signing and for
 * artifact checksums.
 *
 * Every public entry point checks the key before a backend sees it, so the
 * backends can assume a relative, normalised, valid UTF-8 key without
 * control characters.
 */
#include "kiln/store.h"

#include "kiln/log.h"
#include "lib/store_int.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ keys */

/*
 * kiln_store_utf8_len_ - length of the UTF-8 sequence at \p s (at most \p n
 * bytes available), or 0 when it is not valid UTF-8 (overlong forms,
 * surrogates and code points above U+10FFFF are invalid).
 */
static size_t kiln_store_utf8_len_(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len;
    uint32_t cp, min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2, cp = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, cp = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/*
 * kiln_store_segment_ok_ - checks one path segment of \p n bytes: not empty,
 * not "." or "..", no '/', '\\', control character or invalid UTF-8.
 */
static int kiln_store_segment_ok_(const char *seg, size_t n) {
    if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
        return 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)seg[i];
        if (c < 0x20 || c == 0x7f || c == '/' || c == '\\')
            return 0;
        size_t l = kiln_store_utf8_len_((const unsigned char *)seg + i, n - i);
        if (!l)
            return 0;
        i += l;
    }
    return 1;
}

int kiln_store_path_ok(const char *path, size_t n) {
    const char *seg = path;
    for (;;) {
        const char *slash = memchr(seg, '/', n - (size_t)(seg - path));
        size_t len = slash ? (size_t)(slash - seg) : n - (size_t)(seg - path);
        if (!kiln_store_segment_ok_(seg, len))
            return 0;
        if (!slash)
            return 1;
        seg = slash + 1;
    }
}

kiln_err_t kiln_store_key_check(const char *key) {
    if (!key)
        return KILN_ERR_BAD_KEY;
    size_t n = strnlen(key, KILN_STORE_KEY_MAX + 1);
    if (n == 0 || n > KILN_STORE_KEY_MAX || !kiln_store_path_ok(key, n))
        return KILN_ERR_BAD_KEY;
    return KILN_OK;
}

kiln_err_t kiln_store_result_key(char *out, size_t out_size, const char *tenant,
                                 const char *job_id, const char *name) {
    const char *parts[3] = {tenant, job_id, name};
    if (out && out_size)
        out[0] = '\0';
    for (int i = 0; i < 3; i++)
        if (!parts[i] || !kiln_store_segment_ok_(parts[i], strlen(parts[i])))
            return KILN_ERR_BAD_KEY;
    if (!out)
        return KILN_ERR__INVALID_ARG;
    int n = snprintf(out, out_size, "results/%s/%s/%s", tenant, job_id, name);
    if (n < 0 || (size_t)n >= out_size || kiln_store_key_check(out) != KILN_OK) {
        if (out_size)
            out[0] = '\0';
        return KILN_ERR_BAD_KEY;
    }
    return KILN_OK;
}

/* ------------------------------------------------------------------ helpers */

int kiln_store_buf_reserve(char **buf, size_t *cap, size_t need) {
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 4096;
    while (ncap < need)
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    char *nb = realloc(*buf, ncap);
    if (!nb)
        return -1;
    *buf = nb;
    *cap = ncap;
    return 0;
}

/* Writes the "bad key" message for \p key into \p errstr. */
static kiln_err_t kiln_store_bad_key_(const char *what, const char *key, char *errstr,
                                      size_t errstr_size) {
    if (errstr && errstr_size)
        snprintf(errstr, errstr_size, "invalid %s \"%.200s\": %s", what, key ? key : "(null)",
                 "not a relative path of safe segments (no \"..\", \".\", empty segment, "
                 "leading '/', backslash or control character, valid UTF-8, at most 1024 "
                 "bytes)");
    return KILN_ERR_BAD_KEY;
}

/* ------------------------------------------------------------------ open */

/*
 * kiln_store_parse_s3_ - splits "bucket[/prefix]" (the part after "s3://")
 * and opens the S3 backend. The bucket must be a plain DNS-ish name; the
 * prefix, with trailing slashes removed, must be a valid key.
 */
static int kiln_store_parse_s3_(kiln_store_t *st, const kiln_conf_t *conf, const char *rest,
                                const char *url, char *errstr, size_t errstr_size) {
    size_t blen = strcspn(rest, "/");
    if (blen == 0 || blen > 63) {
        snprintf(errstr, errstr_size, "invalid store.url \"%s\": missing or overlong bucket name",
                 url);
        return -1;
    }
    for (size_t i = 0; i < blen; i++) {
        char c = rest[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_')) {
            snprintf(errstr, errstr_size, "invalid store.url \"%s\": bad character in bucket name",
                     url);
            return -1;
        }
    }
    char bucket[64];
    memcpy(bucket, rest, blen);
    bucket[blen] = '\0';
    const char *p = rest + blen;
    while (*p == '/')
        p++;
    char *prefix = strdup(p);
    if (!prefix) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    size_t plen = strlen(prefix);
    while (plen && prefix[plen - 1] == '/')
        prefix[--plen] = '\0';
    if (plen && kiln_store_key_check(prefix) != KILN_OK) {
        snprintf(errstr, errstr_size, "invalid store.url \"%s\": unsafe prefix", url);
        free(prefix);
        return -1;
    }
    int r = kiln_store_s3_open(st, conf, bucket, prefix, errstr, errstr_size);
    free(prefix);
    return r;
}

kiln_store_t *kiln_store_new(const kiln_conf_t *conf, char *errstr, size_t errstr_size) {
    char dummy[8];
    if (!errstr || !errstr_size)
        errstr = dummy, errstr_size = sizeof(dummy);
    errstr[0] = '\0';
    kiln_store_t *st = calloc(1, sizeof(*st));
    if (!st) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    const char *url = kiln_conf_get(conf, "store.url");
    int r;
    if (!url || !*url) {
        char *path = kiln_conf_stack_path(conf, "objects");
        r = kiln_store_file_open(st, path, errstr, errstr_size);
        free(path);
    } else if (!strncmp(url, "file://", 7)) {
        const char *path = url + 7;
        /* file://localhost/x is the same as file:///x (RFC 8089) */
        if (!strncmp(path, "localhost/", 10))
            path += 9;
        if (!*path) {
            snprintf(errstr, errstr_size, "invalid store.url \"%s\": missing path", url);
            r = -1;
        } else
            r = kiln_store_file_open(st, path, errstr, errstr_size);
    } else if (!strncmp(url, "s3://", 5)) {
        r = kiln_store_parse_s3_(st, conf, url + 5, url, errstr, errstr_size);
    } else if (!strstr(url, "://")) {
        r = kiln_store_file_open(st, url, errstr, errstr_size); /* a bare path */
    } else {
        snprintf(errstr, errstr_size,
                 "invalid store.url \"%s\": unsupported scheme (use file:// or s3://)", url);
        r = -1;
    }
    if (r) {
        kiln_store_destroy(st);
        return NULL;
    }
    KILN_LOG_DEBUG("object store at %s", st->root_uri);
    return st;
}

void kiln_store_destroy(kiln_store_t *st) {
    if (!st)
        return;
    if (st->ops && st->ops->destroy)
        st->ops->destroy(st);
    free(st->root_uri);
    free(st);
}

const char *kiln_store_root(const kiln_store_t *st) { return st->root_uri; }

void kiln_store_set_deferred_sync(kiln_store_t *st, int on) { st->deferred_sync = on; }

kiln_err_t kiln_store_sync(kiln_store_t *st, char *errstr, size_t errstr_size) {
    return st->ops->sync ? st->ops->sync(st, errstr, errstr_size) : KILN_OK;
}

/* ------------------------------------------------------------------ dispatch */

kiln_err_t kiln_store_put(kiln_store_t *st, const char *key, const void *data, size_t len,
                          char *errstr, size_t errstr_size) {
    if (kiln_store_key_check(key) != KILN_OK)
        return kiln_store_bad_key_("object key", key, errstr, errstr_size);
    if (!data && len) {
        snprintf(errstr, errstr_size, "could not write object \"%s\": no data", key);
        return KILN_ERR__INVALID_ARG;
    }
    return st->ops->put(st, key, data ? data : "", len, errstr, errstr_size);
}

kiln_err_t kiln_store_get(kiln_store_t *st, const char *key, size_t max_bytes, void **data,
                          size_t *len, char *errstr, size_t errstr_size) {
    *data = NULL;
    *len = 0;
    if (kiln_store_key_check(key) != KILN_OK)
        return kiln_store_bad_key_("object key", key, errstr, errstr_size);
    if (max_bytes == 0 || max_bytes >= SIZE_MAX - 1)
        max_bytes = SIZE_MAX - 2; /* leave room for the terminating NUL */
    return st->ops->get(st, key, max_bytes, data, len, errstr, errstr_size);
}

kiln_err_t kiln_store_get_uri(kiln_store_t *st, const char *uri, size_t max_bytes,
                              void **data, size_t *len, char *errstr, size_t errstr_size) {
    char key[KILN_STORE_KEY_MAX + 1];
    *data = NULL;
    *len = 0;
    if (!uri) {
        snprintf(errstr, errstr_size, "missing object URI");
        return KILN_ERR_BAD_KEY;
    }
    kiln_err_t err = st->ops->uri_to_key(st, uri, key, sizeof(key), errstr, errstr_size);
    if (err)
        return err;
    if (kiln_store_key_check(key) != KILN_OK)
        return kiln_store_bad_key_("object URI", uri, errstr, errstr_size);
    return kiln_store_get(st, key, max_bytes, data, len, errstr, errstr_size);
}

int kiln_store_exists(kiln_store_t *st, const char *key) {
    char errstr[512] = "";
    if (kiln_store_key_check(key) != KILN_OK)
        return -1;
    int r = st->ops->exists(st, key, errstr, sizeof(errstr));
    if (r < 0)
        KILN_LOG_WARN("%s", errstr);
    return r;
}

kiln_err_t kiln_store_delete(kiln_store_t *st, const char *key, char *errstr,
                             size_t errstr_size) {
    if (kiln_store_key_check(key) != KILN_OK)
        return kiln_store_bad_key_("object key", key, errstr, errstr_size);
    return st->ops->del(st, key, errstr, errstr_size);
}

void kiln_store_uri(const kiln_store_t *st, const char *key, char *out, size_t out_size) {
    snprintf(out, out_size, "%s/%s", st->root_uri, key);
}

/* ------------------------------------------------------------------ SHA-256 */

/* FIPS 180-4, written for clarity; about 200 MB/s, enough for signing. */
static const uint32_t kiln_sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

#define KILN_ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void kiln_sha256_block_(uint32_t h[8], const unsigned char *p) {
    uint32_t w[64], a, b, c, d, e, f, g, hh;
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = KILN_ROR(w[i - 15], 7) ^ KILN_ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = KILN_ROR(w[i - 2], 17) ^ KILN_ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = hh + (KILN_ROR(e, 6) ^ KILN_ROR(e, 11) ^ KILN_ROR(e, 25)) +
                      ((e & f) ^ (~e & g)) + kiln_sha256_k[i] + w[i];
        uint32_t t2 = (KILN_ROR(a, 2) ^ KILN_ROR(a, 13) ^ KILN_ROR(a, 22)) +
                      ((a & b) ^ (a & c) ^ (b & c));
        hh = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
}

void kiln_store_sha256_hex(const void *data, size_t len, char out[65]) {
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    const unsigned char *p = data;
    size_t left = len;
    unsigned char tail[128] = {0};
    for (; left >= 64; left -= 64, p += 64)
        kiln_sha256_block_(h, p);
    if (left)
        memcpy(tail, p, left);
    tail[left] = 0x80;
    size_t tlen = left + 1 + 8 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++)
        tail[tlen - 1 - i] = (unsigned char)(bits >> (8 * i));
    for (size_t off = 0; off < tlen; off += 64)
        kiln_sha256_block_(h, tail + off);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        unsigned char byte = (unsigned char)(h[i / 4] >> (24 - 8 * (i % 4)));
        out[2 * i] = hex[byte >> 4];
        out[2 * i + 1] = hex[byte & 15];
    }
    out[64] = '\0';
}
