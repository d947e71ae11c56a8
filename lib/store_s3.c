/*
 * lib/store_s3.c - the s3:// object store backend (AWS S3, MinIO, moto, ...).
 *
 * Requests go through libcurl: one easy handle per store (so keep-alive
 * connections are reused), path-style URLs <endpoint>/<bucket>/<prefix/key>
 * and SigV4 signing by libcurl (CURLOPT_AWS_SIGV4 "aws:amz:<region>:s3").
 * We send x-amz-content-sha256 ourselves: libcurl 7.88 does not, S3 requires
 * it, and libcurl then signs with our value. PUT bodies are hashed for real,
 * so the server rejects a body corrupted in transit even over plain http.
 *
 * Each key segment is percent-encoded (everything but A-Z a-z 0-9 - . _ ~),
 * which is also the SigV4 canonical URI for S3 (encoded once, not
 * normalised), so keys with spaces or non-ASCII characters sign correctly.
 *
 * Errors: 404 -> KILN_ERR__NOT_FOUND (except NoSuchBucket, a store error);
 * a GET body over max_bytes is aborted mid-stream -> KILN_ERR_TOO_LARGE;
 * anything else -> KILN_ERR_STORE, with the S3 <Code> and <Message> from the
 * XML error body in errstr. 5xx answers and failed connections are retried
 * twice (100 ms, 400 ms) before they are reported.
 *
 * Without credentials (s3.access_key / AWS_ACCESS_KEY_ID) requests are sent
 * unsigned, which only public buckets accept.
 */
#include "kiln/log.h"
#include "kiln/store.h"
#include "lib/store_int.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define KILN_S3_ERRBODY_MAX 65536
#define KILN_S3_ATTEMPTS 3
#define KILN_S3_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

typedef struct kiln_store_s3_s {
    char *bucket;
    char *prefix; /* "" or "a/b" */
    char *endpoint; /* "http(s)://host[:port][/path]", no trailing '/' */
    char *access_key, *secret_key, *session_token;
    char sigv4[128];
    long timeout_ms;
    CURL *curl;
    char errbuf[CURL_ERROR_SIZE];
} kiln_store_s3_t;

#define KILN_S3(st) ((kiln_store_s3_t *)(st)->impl)

/* One request and its response. */
typedef struct kiln_s3_req_s {
    CURL *curl;
    const char *method; /* PUT GET HEAD DELETE */
    const char *body;   /* PUT */
    size_t body_len, body_off;
    size_t max_bytes;   /* GET: largest body accepted */
    long status;
    char *buf;          /* GET body on 2xx, error body otherwise */
    size_t len, cap;
    int too_large, nomem;
} kiln_s3_req_t;

static pthread_once_t kiln_s3_once = PTHREAD_ONCE_INIT;
static CURLcode kiln_s3_global_rc;

static void kiln_s3_global_init_(void) { kiln_s3_global_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

/* ------------------------------------------------------------------ curl callbacks */

static int kiln_s3_is_2xx_(kiln_s3_req_t *rq) {
    long code = 0;
    curl_easy_getinfo(rq->curl, CURLINFO_RESPONSE_CODE, &code);
    return code >= 200 && code < 300;
}

static size_t kiln_s3_write_cb_(char *p, size_t size, size_t nmemb, void *opaque) {
    kiln_s3_req_t *rq = opaque;
    size_t n = size * nmemb;
    if (kiln_s3_is_2xx_(rq)) {
        if (strcmp(rq->method, "GET"))
            return n; /* PUT/DELETE: nothing to keep */
        if (n > rq->max_bytes - rq->len) {
            rq->too_large = 1;
            return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
        }
    } else if (rq->len + n > KILN_S3_ERRBODY_MAX) {
        return n; /* keep the start of an oversized error body only */
    }
    if (kiln_store_buf_reserve(&rq->buf, &rq->cap, rq->len + n + 1)) {
        rq->nomem = 1;
        return 0;
    }
    memcpy(rq->buf + rq->len, p, n);
    rq->len += n;
    return n;
}

/* Rejects a too-large GET before its body arrives and sizes the buffer once. */
static size_t kiln_s3_header_cb_(char *p, size_t size, size_t nmemb, void *opaque) {
    kiln_s3_req_t *rq = opaque;
    size_t n = size * nmemb;
    static const char cl[] = "content-length:";
    if (strcmp(rq->method, "GET") || n <= sizeof(cl) - 1 || strncasecmp(p, cl, sizeof(cl) - 1) ||
        !kiln_s3_is_2xx_(rq))
        return n;
    char num[32];
    size_t m = n - (sizeof(cl) - 1) < sizeof(num) - 1 ? n - (sizeof(cl) - 1) : sizeof(num) - 1;
    memcpy(num, p + sizeof(cl) - 1, m);
    num[m] = '\0';
    char *end;
    errno = 0;
    unsigned long long v = strtoull(num, &end, 10);
    if (errno || end == num)
        return n;
    if (v > rq->max_bytes) {
        rq->too_large = 1;
        return 0;
    }
    if (kiln_store_buf_reserve(&rq->buf, &rq->cap, (size_t)v + 1))
        rq->nomem = 1;
    return rq->nomem ? 0 : n;
}

static size_t kiln_s3_read_cb_(char *p, size_t size, size_t nmemb, void *opaque) {
    kiln_s3_req_t *rq = opaque;
    size_t n = size * nmemb;
    if (n > rq->body_len - rq->body_off)
        n = rq->body_len - rq->body_off;
    memcpy(p, rq->body + rq->body_off, n);
    rq->body_off += n;
    return n;
}

static int kiln_s3_seek_cb_(void *opaque, curl_off_t off, int origin) {
    kiln_s3_req_t *rq = opaque;
    if (origin != SEEK_SET || off < 0 || (size_t)off > rq->body_len)
        return CURL_SEEKFUNC_CANTSEEK;
    rq->body_off = (size_t)off;
    return CURL_SEEKFUNC_OK;
}

/* ------------------------------------------------------------------ requests */

/* Appends the percent-encoded form of \p s (keeping '/') to \p out at *pos. */
static int kiln_s3_encode_(char *out, size_t out_size, size_t *pos, const char *s) {
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int keep = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                   (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' ||
                   *p == '~' || *p == '/';
        if (*pos + (keep ? 1 : 3) >= out_size)
            return -1;
        if (keep)
            out[(*pos)++] = (char)*p;
        else {
            out[(*pos)++] = '%';
            out[(*pos)++] = hex[*p >> 4];
            out[(*pos)++] = hex[*p & 15];
        }
    }
    out[*pos] = '\0';
    return 0;
}

/* Builds <endpoint>/<bucket>/<prefix/><key> with the key parts encoded. */
static int kiln_s3_url_(const kiln_store_s3_t *s3, const char *key, char *url, size_t size) {
    int n = snprintf(url, size, "%s/%s/", s3->endpoint, s3->bucket);
    if (n < 0 || (size_t)n >= size)
        return -1;
    size_t pos = (size_t)n;
    if (*s3->prefix && (kiln_s3_encode_(url, size, &pos, s3->prefix) ||
                        kiln_s3_encode_(url, size, &pos, "/")))
        return -1;
    return kiln_s3_encode_(url, size, &pos, key);
}

/* Appends \p line to *hdrs. @returns 1, or 0 when out of memory. */
static int kiln_s3_header_add_(struct curl_slist **hdrs, const char *line) {
    struct curl_slist *h = curl_slist_append(*hdrs, line);
    if (!h)
        return 0;
    *hdrs = h;
    return 1;
}

static int kiln_s3_retriable_(CURLcode rc, long status) {
    if (rc == CURLE_OK)
        return status >= 500 && status <= 599;
    return rc == CURLE_COULDNT_CONNECT || rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR ||
           rc == CURLE_GOT_NOTHING || rc == CURLE_PARTIAL_FILE ||
           rc == CURLE_COULDNT_RESOLVE_HOST;
}

/*
 * kiln_s3_perform_ - runs one request on the store's handle, retrying
 * 5xx answers and failed connections. @returns the last curl code; the
 * HTTP status is in rq->status and the body in rq->buf.
 */
static CURLcode kiln_s3_perform_(kiln_store_s3_t *s3, const char *key, kiln_s3_req_t *rq) {
    char url[8 * KILN_STORE_KEY_MAX]; /* prefix and key, 3 bytes per byte at worst */
    if (kiln_s3_url_(s3, key, url, sizeof(url)))
        return CURLE_URL_MALFORMAT;
    char sha[65] = KILN_S3_EMPTY_SHA256;
    if (rq->body && rq->body_len)
        kiln_store_sha256_hex(rq->body, rq->body_len, sha);
    char hdr_sha[96], hdr_tok[4096];
    snprintf(hdr_sha, sizeof(hdr_sha), "x-amz-content-sha256: %s", sha);
    struct curl_slist *hdrs = NULL;
    /* No "Expect:" override here: libcurl 7.88 would sign it (empty) without
     * sending it, so every signature would fail. PUTs keep the default
     * "Expect: 100-continue", which lets S3 refuse before the body is sent. */
    int ok = kiln_s3_header_add_(&hdrs, hdr_sha);
    if (ok && !strcmp(rq->method, "PUT"))
        ok = kiln_s3_header_add_(&hdrs, "Content-Type: application/octet-stream");
    if (ok && s3->session_token) {
        snprintf(hdr_tok, sizeof(hdr_tok), "x-amz-security-token: %s", s3->session_token);
        ok = kiln_s3_header_add_(&hdrs, hdr_tok);
    }
    if (!ok) {
        curl_slist_free_all(hdrs);
        return CURLE_OUT_OF_MEMORY;
    }

    CURLcode rc = CURLE_OK;
    CURL *c = s3->curl;
    for (int attempt = 0; attempt < KILN_S3_ATTEMPTS; attempt++) {
        if (attempt) {
            struct timespec ts = {0, 100000000L << (2 * (attempt - 1))};
            KILN_LOG_DEBUG("s3 %s %s: retrying after %s (HTTP %ld)", rq->method, key,
                           curl_easy_strerror(rc), rq->status);
            nanosleep(&ts, NULL);
        }
        rq->len = 0;
        rq->body_off = 0;
        rq->status = 0;
        rq->too_large = rq->nomem = 0;
        s3->errbuf[0] = '\0';

        curl_easy_reset(c); /* keeps the connection cache */
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, s3->errbuf);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_USERAGENT, "kiln/0.1 (libcurl)");
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, s3->timeout_ms);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                         s3->timeout_ms < 10000 ? s3->timeout_ms : 10000L);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, kiln_s3_write_cb_);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, rq);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, kiln_s3_header_cb_);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, rq);
        if (s3->access_key) {
            curl_easy_setopt(c, CURLOPT_AWS_SIGV4, s3->sigv4);
            curl_easy_setopt(c, CURLOPT_USERNAME, s3->access_key);
            curl_easy_setopt(c, CURLOPT_PASSWORD, s3->secret_key);
        }
        if (!strcmp(rq->method, "PUT")) {
            curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(c, CURLOPT_READFUNCTION, kiln_s3_read_cb_);
            curl_easy_setopt(c, CURLOPT_READDATA, rq);
            curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, kiln_s3_seek_cb_);
            curl_easy_setopt(c, CURLOPT_SEEKDATA, rq);
            curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)rq->body_len);
        } else if (!strcmp(rq->method, "HEAD")) {
            curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        } else if (!strcmp(rq->method, "DELETE")) {
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "DELETE");
        }
        rc = curl_easy_perform(c);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &rq->status);
        if (!kiln_s3_retriable_(rc, rq->status))
            break;
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
    return rc;
}

/* Copies the text of <tag>...</tag> from \p xml into \p out, XML-unescaped. */
static void kiln_s3_xml_tag_(const char *xml, const char *tag, char *out, size_t out_size) {
    char open[64], close[64];
    out[0] = '\0';
    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    const char *s = xml ? strstr(xml, open) : NULL;
    const char *e = s ? strstr(s, close) : NULL;
    if (!e)
        return;
    static const struct { const char *ent; char c; } ents[] = {
        {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    size_t n = 0;
    for (s += strlen(open); s < e && n + 1 < out_size;) {
        char c = *s++;
        if (c == '&')
            for (size_t i = 0; i < sizeof(ents) / sizeof(ents[0]); i++)
                if (!strncmp(s - 1, ents[i].ent, strlen(ents[i].ent))) {
                    c = ents[i].c;
                    s += strlen(ents[i].ent) - 1;
                    break;
                }
        out[n++] = (unsigned char)c < 0x20 ? ' ' : c;
    }
    out[n] = '\0';
}

/*
 * kiln_s3_result_ - turns the outcome of a request into a kiln_err_t and,
 * on failure, "could not <verb> object "<uri>": <reason>" in errstr.
 */
static kiln_err_t kiln_s3_result_(kiln_store_t *st, const char *verb, const char *key,
                                  CURLcode rc, kiln_s3_req_t *rq, char *errstr,
                                  size_t errstr_size) {
    kiln_store_s3_t *s3 = KILN_S3(st);
    char uri[KILN_STORE_KEY_MAX + 512];
    kiln_store_uri(st, key, uri, sizeof(uri));
    if (rq->too_large) {
        snprintf(errstr, errstr_size, "object \"%s\" is larger than the limit of %zu bytes", uri,
                 rq->max_bytes);
        return KILN_ERR_TOO_LARGE;
    }
    if (rq->nomem || rc == CURLE_OUT_OF_MEMORY) {
        snprintf(errstr, errstr_size, "could not %s object \"%s\": out of memory", verb, uri);
        return KILN_ERR__NOMEM;
    }
    if (rc != CURLE_OK) {
        snprintf(errstr, errstr_size, "could not %s object \"%s\": %s", verb, uri,
                 s3->errbuf[0] ? s3->errbuf : curl_easy_strerror(rc));
        return KILN_ERR_STORE;
    }
    if (rq->status >= 200 && rq->status < 300)
        return KILN_OK;
    char code[128], msg[512];
    if (rq->buf)
        rq->buf[rq->len] = '\0';
    kiln_s3_xml_tag_(rq->len ? rq->buf : NULL, "Code", code, sizeof(code));
    kiln_s3_xml_tag_(rq->len ? rq->buf : NULL, "Message", msg, sizeof(msg));
    kiln_err_t err = KILN_ERR_STORE;
    if (rq->status == 404 && strcmp(code, "NoSuchBucket"))
        err = KILN_ERR__NOT_FOUND;
    if (code[0])
        snprintf(errstr, errstr_size, "could not %s object \"%s\": %s%s%s (HTTP %ld)", verb, uri,
                 code, msg[0] ? ": " : "", msg, rq->status);
    else
        snprintf(errstr, errstr_size, "could not %s object \"%s\": %s (HTTP %ld)", verb, uri,
                 rq->status == 404 ? "no such object" : "request failed", rq->status);
    return err;
}

/* ------------------------------------------------------------------ ops */

static kiln_err_t kiln_store_s3_put_(kiln_store_t *st, const char *key, const void *data,
                                     size_t len, char *errstr, size_t errstr_size) {
    kiln_s3_req_t rq = {.curl = KILN_S3(st)->curl, .method = "PUT", .body = data,
                        .body_len = len};
    CURLcode rc = kiln_s3_perform_(KILN_S3(st), key, &rq);
    kiln_err_t err = kiln_s3_result_(st, "write", key, rc, &rq, errstr, errstr_size);
    free(rq.buf);
    return err;
}

static kiln_err_t kiln_store_s3_get_(kiln_store_t *st, const char *key, size_t max_bytes,
                                     void **data, size_t *len, char *errstr,
                                     size_t errstr_size) {
    kiln_s3_req_t rq = {.curl = KILN_S3(st)->curl, .method = "GET", .max_bytes = max_bytes};
    CURLcode rc = kiln_s3_perform_(KILN_S3(st), key, &rq);
    kiln_err_t err = kiln_s3_result_(st, "read", key, rc, &rq, errstr, errstr_size);
    if (!err && kiln_store_buf_reserve(&rq.buf, &rq.cap, rq.len + 1)) {
        snprintf(errstr, errstr_size, "out of memory reading object \"%s\"", key);
        err = KILN_ERR__NOMEM;
    }
    if (err) {
        free(rq.buf);
        return err;
    }
    rq.buf[rq.len] = '\0';
    *data = rq.buf;
    *len = rq.len;
    return KILN_OK;
}

static int kiln_store_s3_exists_(kiln_store_t *st, const char *key, char *errstr,
                                 size_t errstr_size) {
    kiln_s3_req_t rq = {.curl = KILN_S3(st)->curl, .method = "HEAD"};
    CURLcode rc = kiln_s3_perform_(KILN_S3(st), key, &rq);
    kiln_err_t err = kiln_s3_result_(st, "stat", key, rc, &rq, errstr, errstr_size);
    free(rq.buf);
    return err == KILN_OK ? 1 : err == KILN_ERR__NOT_FOUND ? 0 : -1;
}

static kiln_err_t kiln_store_s3_del_(kiln_store_t *st, const char *key, char *errstr,
                                     size_t errstr_size) {
    kiln_s3_req_t rq = {.curl = KILN_S3(st)->curl, .method = "DELETE"};
    CURLcode rc = kiln_s3_perform_(KILN_S3(st), key, &rq);
    kiln_err_t err = kiln_s3_result_(st, "delete", key, rc, &rq, errstr, errstr_size);
    free(rq.buf);
    return err == KILN_ERR__NOT_FOUND ? KILN_OK : err;
}

/* "s3://<bucket>/<prefix>/<key>" -> key; anything else is outside. */
static kiln_err_t kiln_store_s3_uri_to_key_(kiln_store_t *st, const char *uri, char *key,
                                            size_t key_size, char *errstr,
                                            size_t errstr_size) {
    size_t rlen = strlen(st->root_uri);
    if (strncmp(uri, st->root_uri, rlen) || uri[rlen] != '/' ||
        strlen(uri + rlen + 1) >= key_size) {
        snprintf(errstr, errstr_size, "object URI \"%.300s\" is outside the store %s", uri,
                 st->root_uri);
        return KILN_ERR_BAD_KEY;
    }
    strcpy(key, uri + rlen + 1);
    return KILN_OK;
}

static void kiln_store_s3_destroy_(kiln_store_t *st) {
    kiln_store_s3_t *s3 = KILN_S3(st);
    if (!s3)
        return;
    if (s3->curl)
        curl_easy_cleanup(s3->curl);
    free(s3->bucket);
    free(s3->prefix);
    free(s3->endpoint);
    free(s3->access_key);
    if (s3->secret_key)
        explicit_bzero(s3->secret_key, strlen(s3->secret_key));
    free(s3->secret_key);
    free(s3->session_token);
    free(s3);
    st->impl = NULL;
}

static const kiln_store_ops_t kiln_store_s3_ops = {
    .put = kiln_store_s3_put_,
    .get = kiln_store_s3_get_,
    .exists = kiln_store_s3_exists_,
    .del = kiln_store_s3_del_,
    .uri_to_key = kiln_store_s3_uri_to_key_,
    .destroy = kiln_store_s3_destroy_,
};

/* @returns a malloc'ed copy of the conf value \p name, else of the environment
 * variable \p env, else NULL (also NULL when empty). */
static char *kiln_s3_setting_(const kiln_conf_t *conf, const char *name, const char *env) {
    const char *v = name ? kiln_conf_get(conf, name) : NULL;
    if ((!v || !*v) && env)
        v = getenv(env);
    return v && *v ? strdup(v) : NULL;
}

int kiln_store_s3_open(kiln_store_t *st, const kiln_conf_t *conf, const char *bucket,
                       const char *prefix, char *errstr, size_t errstr_size) {
    pthread_once(&kiln_s3_once, kiln_s3_global_init_);
    if (kiln_s3_global_rc != CURLE_OK) {
        snprintf(errstr, errstr_size, "could not initialise libcurl: %s",
                 curl_easy_strerror(kiln_s3_global_rc));
        return -1;
    }
    kiln_store_s3_t *s3 = calloc(1, sizeof(*s3));
    if (!s3) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    st->ops = &kiln_store_s3_ops;
    st->impl = s3; /* freed by kiln_store_destroy() from here on */

    const char *region = kiln_conf_get(conf, "s3.region");
    if (!region || !*region)
        region = "us-east-1";
    if (strlen(region) > 64 || strpbrk(region, ":/ \t")) {
        snprintf(errstr, errstr_size, "invalid s3.region \"%s\"", region);
        return -1;
    }
    snprintf(s3->sigv4, sizeof(s3->sigv4), "aws:amz:%s:s3", region);

    const char *ep = kiln_conf_get(conf, "s3.endpoint");
    char def_ep[128];
    if (!ep || !*ep) {
        snprintf(def_ep, sizeof(def_ep), "https://s3.%s.amazonaws.com", region);
        ep = def_ep;
    }
    if (strncmp(ep, "http://", 7) && strncmp(ep, "https://", 8)) {
        snprintf(errstr, errstr_size,
                 "invalid s3.endpoint \"%s\": must start with http:// or https://", ep);
        return -1;
    }
    s3->endpoint = strdup(ep);
    s3->bucket = strdup(bucket);
    s3->prefix = strdup(prefix);
    s3->access_key = kiln_s3_setting_(conf, "s3.access_key", "AWS_ACCESS_KEY_ID");
    s3->secret_key = kiln_s3_setting_(conf, "s3.secret_key", "AWS_SECRET_ACCESS_KEY");
    s3->session_token = kiln_s3_setting_(conf, NULL, "AWS_SESSION_TOKEN");
    s3->timeout_ms = (long)kiln_conf_get_int(conf, "s3.timeout_ms");
    if (s3->timeout_ms <= 0)
        s3->timeout_ms = 30000;
    size_t rlen = strlen(bucket) + strlen(prefix) + 8;
    st->root_uri = malloc(rlen);
    s3->curl = curl_easy_init();
    if (!s3->endpoint || !s3->bucket || !s3->prefix || !st->root_uri || !s3->curl) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    size_t elen = strlen(s3->endpoint);
    while (elen > 8 && s3->endpoint[elen - 1] == '/')
        s3->endpoint[--elen] = '\0';
    snprintf(st->root_uri, rlen, "s3://%s%s%s", bucket, *prefix ? "/" : "", prefix);
    if (s3->access_key && !s3->secret_key) {
        snprintf(errstr, errstr_size,
                 "s3.access_key is set but s3.secret_key (or AWS_SECRET_ACCESS_KEY) is not");
        return -1;
    }
    if (!s3->access_key)
        KILN_LOG_WARN("no S3 credentials (s3.access_key, AWS_ACCESS_KEY_ID): requests to %s "
                      "are sent unsigned",
                      s3->endpoint);
    return 0;
}
