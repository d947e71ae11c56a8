/*
 * tests/0400-metrics.c - the metrics registry and its HTTP server
 * (kiln/metrics.h): the rendered text is parsed back line by line (names,
 * escaped label values, numbers), histogram buckets are cumulative and end
 * in +Inf = _count, concurrent updates are not lost, and the server answers
 * GET /metrics, /healthz, 404 and 405 on a free loopback port.
 */
#include <curl/curl.h>
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/metrics.h"
#include "tests/test.h"

/* ---- a small parser of the text format: enough to check what we write ---- */

typedef struct {
    char name[128];
    int n_labels;
    char ln[10][64];
    char lv[10][256];
    double value;
} sample_t;

typedef struct {
    sample_t s[512];
    int n;
    char help[16][2][256]; /* name, unescaped text */
    int n_help;
    char type[16][2][64];
    int n_type;
} parsed_t;

/* Unescapes a label value (\\, \", \n) up to the closing quote.
 * @returns the position after the quote, or NULL when malformed. */
static const char *parse_quoted(const char *p, char *out, size_t size) {
    size_t k = 0;
    for (; *p && *p != '"'; p++) {
        char c = *p;
        if (c == '\n')
            return NULL; /* a raw newline inside a value is a format error */
        if (c == '\\') {
            p++;
            if (*p == 'n')
                c = '\n';
            else if (*p == '\\' || *p == '"')
                c = *p;
            else
                return NULL;
        }
        if (k + 1 < size)
            out[k++] = c;
    }
    out[k] = '\0';
    return *p == '"' ? p + 1 : NULL;
}

static void unescape_help(const char *in, char *out, size_t size) {
    size_t k = 0;
    for (const char *p = in; *p && k + 1 < size; p++) {
        if (*p == '\\' && p[1] == 'n')
            out[k++] = '\n', p++;
        else if (*p == '\\' && p[1] == '\\')
            out[k++] = '\\', p++;
        else
            out[k++] = *p;
    }
    out[k] = '\0';
}

/* @returns 0, or the 1-based number of the first line that does not parse. */
static int parse_text(const char *text, parsed_t *pt) {
    memset(pt, 0, sizeof(*pt));
    int line = 0;
    const char *p = text;
    while (*p) {
        line++;
        const char *eol = strchr(p, '\n');
        if (!eol)
            return line; /* every line ends in \n */
        char buf[2048];
        size_t len = (size_t)(eol - p);
        if (len >= sizeof(buf))
            return line;
        memcpy(buf, p, len);
        buf[len] = '\0';
        p = eol + 1;
        if (!strncmp(buf, "# HELP ", 7) && pt->n_help < 16) {
            char *sp = strchr(buf + 7, ' ');
            if (!sp)
                return line;
            *sp = '\0';
            snprintf(pt->help[pt->n_help][0], 256, "%s", buf + 7);
            unescape_help(sp + 1, pt->help[pt->n_help][1], 256);
            pt->n_help++;
            continue;
        }
        if (!strncmp(buf, "# TYPE ", 7) && pt->n_type < 16) {
            if (sscanf(buf + 7, "%127s %63s", pt->type[pt->n_type][0], pt->type[pt->n_type][1]) != 2)
                return line;
            pt->n_type++;
            continue;
        }
        if (buf[0] == '#')
            continue;
        if (pt->n == 512)
            return line;
        sample_t *s = &pt->s[pt->n];
        memset(s, 0, sizeof(*s));
        const char *q = buf;
        size_t nl = strcspn(q, "{ ");
        if (!nl || nl >= sizeof(s->name))
            return line;
        memcpy(s->name, q, nl);
        q += nl;
        if (*q == '{') {
            q++;
            while (*q != '}') {
                if (s->n_labels == 10)
                    return line;
                size_t ll = strcspn(q, "=");
                if (!ll || ll >= 64 || q[ll] != '=' || q[ll + 1] != '"')
                    return line;
                memcpy(s->ln[s->n_labels], q, ll);
                q = parse_quoted(q + ll + 2, s->lv[s->n_labels], 256);
                if (!q)
                    return line;
                s->n_labels++;
                if (*q == ',')
                    q++;
                else if (*q != '}')
                    return line;
            }
            q++;
        }
        if (*q != ' ')
            return line;
        q++;
        char *end;
        if (!strcmp(q, "+Inf"))
            s->value = INFINITY;
        else if (!strcmp(q, "-Inf"))
            s->value = -INFINITY;
        else {
            s->value = strtod(q, &end);
            if (end == q || *end)
                return line;
        }
        pt->n++;
    }
    return 0;
}

static const char *label(const sample_t *s, const char *name) {
    for (int i = 0; i < s->n_labels; i++)
        if (!strcmp(s->ln[i], name))
            return s->lv[i];
    return NULL;
}

/* The first sample named \p name whose label \p ln (optional) is \p lv. */
static const sample_t *find(const parsed_t *pt, const char *name, const char *ln, const char *lv) {
    for (int i = 0; i < pt->n; i++)
        if (!strcmp(pt->s[i].name, name) && (!ln || (label(&pt->s[i], ln) && !strcmp(label(&pt->s[i], ln), lv))))
            return &pt->s[i];
    return NULL;
}

/* ---- threads ---- */

typedef struct {
    kiln_metric_t *c, *h;
    int id;
} thr_arg_t;

static void *hammer(void *opaque) {
    thr_arg_t *a = opaque;
    char part[16];
    snprintf(part, sizeof(part), "%d", a->id % 2);
    for (int i = 0; i < 50000; i++) {
        kiln_metric_add(a->c, KILN_LABELS(part), 1);
        kiln_metric_observe(a->h, NULL, (double)(i % 8));
    }
    return NULL;
}

/* ---- HTTP ---- */

typedef struct {
    char *buf;
    size_t len;
} body_t;

static size_t body_write(char *ptr, size_t size, size_t n, void *opaque) {
    body_t *b = opaque;
    char *nb = realloc(b->buf, b->len + size * n + 1);
    if (!nb)
        return 0;
    memcpy(nb + b->len, ptr, size * n);
    b->buf = nb;
    b->len += size * n;
    b->buf[b->len] = '\0';
    return size * n;
}

/* @returns the HTTP status (0: could not connect); body and content type out. */
static long http(const char *method, int port, const char *path, body_t *body, char *ctype,
                 size_t ctype_size) {
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (!strcmp(method, "POST"))
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "some=body");
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        char *ct = NULL;
        curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
        if (ctype)
            snprintf(ctype, ctype_size, "%s", ct ? ct : "");
    }
    curl_easy_cleanup(c);
    return status;
}

int main(void) {
    static parsed_t pt;
    curl_global_init(CURL_GLOBAL_DEFAULT);

    SUB_TEST("registration checks names, labels and bounds");
    kiln_metrics_t *reg = kiln_metrics_new();
    static const double b3[] = {1, 2.5, 5};
    static const double bad[] = {1, 1, 2};
    TEST_CHECK(kiln_metrics_counter(reg, "1abc", "x", NULL) == NULL, "name starting with a digit");
    TEST_CHECK(kiln_metrics_counter(reg, "a-b", "x", NULL) == NULL, "name with '-'");
    TEST_CHECK(kiln_metrics_gauge(reg, "ok_name", "x", "__reserved") == NULL, "label __*");
    TEST_CHECK(kiln_metrics_gauge(reg, "ok_name", "x", "a,a") == NULL, "duplicate label");
    TEST_CHECK(kiln_metrics_gauge(reg, "ok_name", "x", "a,,b") == NULL, "empty label");
    TEST_CHECK(kiln_metrics_histogram(reg, "h_bad", "x", NULL, bad, 3) == NULL, "bounds not increasing");
    TEST_CHECK(kiln_metrics_histogram(reg, "h_le", "x", "le", b3, 3) == NULL, "le is reserved");
    kiln_metric_t *c = kiln_metrics_counter(reg, "kiln_test_total", "A counter.\nSecond line \\ backslash.",
                                            "topic, partition");
    TEST_CHECK(c != NULL, "counter with labels");
    TEST_CHECK(kiln_metrics_counter(reg, "kiln_test_total", "again", "topic,partition") == c,
               "same family returned on re-registration");
    TEST_CHECK(kiln_metrics_gauge(reg, "kiln_test_total", "x", "topic,partition") == NULL,
               "type clash refused");
    TEST_CHECK(kiln_metrics_counter(reg, "kiln_test_total", "x", "topic") == NULL,
               "label clash refused");
    SUB_TEST_PASS();

    SUB_TEST("render parses back: types, help, escaped label values, numbers");
    kiln_metric_t *g = kiln_metrics_gauge(reg, "kiln_test_gauge", "A gauge.", NULL);
    kiln_metric_t *g2 = kiln_metrics_gauge(reg, "kiln:test_colon", "Colons are allowed.", "v");
    kiln_metric_t *h = kiln_metrics_histogram(reg, "kiln_test_seconds", "A histogram.", "model", b3, 3);
    TEST_ASSERT(g && g2 && h, "families registered");
    const char *evil = "quote\" backslash\\ newline\n end";
    kiln_metric_add(c, KILN_LABELS("kiln.transcribe.jobs", "3"), 2);
    kiln_metric_add(c, KILN_LABELS("kiln.transcribe.jobs", "3"), 3);
    kiln_metric_add(c, KILN_LABELS("kiln.transcribe.jobs", "3"), -7); /* ignored */
    kiln_metric_add(c, KILN_LABELS(evil, "ünï"), 1);
    kiln_metric_set(g, NULL, 0.1);
    kiln_metric_set(g2, KILN_LABELS("big"), 1e20);
    kiln_metric_set(g2, KILN_LABELS("inf"), INFINITY);
    kiln_metric_set(g2, KILN_LABELS("neg"), -2.5);
    kiln_metric_set(g2, KILN_LABELS("int"), 123456789012.0);
    double obs[] = {0.5, 1, 1.0001, 2.5, 3, 5, 7, 100};
    for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++)
        kiln_metric_observe(h, KILN_LABELS("whisper"), obs[i]);
    size_t len = 0;
    char *text = kiln_metrics_render(reg, &len);
    TEST_ASSERT(text && len == strlen(text), "render returned text");
    int bad_line = parse_text(text, &pt);
    TEST_CHECK(bad_line == 0, "line %d does not parse:\n%s", bad_line, text);
    const sample_t *s = find(&pt, "kiln_test_total", "partition", "3");
    TEST_CHECK(s && s->value == 5, "counter value 5 (negative add ignored)");
    TEST_CHECK(s && !strcmp(label(s, "topic"), "kiln.transcribe.jobs"), "label topic");
    s = find(&pt, "kiln_test_total", "partition", "ünï");
    TEST_CHECK(s && !strcmp(label(s, "topic"), evil), "escaped label value reads back exactly");
    TEST_CHECK(strstr(text, "topic=\"quote\\\" backslash\\\\ newline\\n end\"") != NULL,
               "escapes as the format spells them");
    s = find(&pt, "kiln_test_gauge", NULL, NULL);
    TEST_CHECK(s && s->value == 0.1 && strstr(text, "kiln_test_gauge 0.1\n"), "0.1 printed as 0.1");
    s = find(&pt, "kiln:test_colon", "v", "big");
    TEST_CHECK(s && s->value == 1e20, "1e20");
    s = find(&pt, "kiln:test_colon", "v", "inf");
    TEST_CHECK(s && isinf(s->value) && strstr(text, "v=\"inf\"} +Inf\n"), "+Inf");
    s = find(&pt, "kiln:test_colon", "v", "neg");
    TEST_CHECK(s && s->value == -2.5, "-2.5");
    TEST_CHECK(strstr(text, "kiln:test_colon{v=\"int\"} 123456789012\n") != NULL, "integers print without exponent");
    int types_ok = 0, help_ok = 0;
    for (int i = 0; i < pt.n_type; i++) {
        types_ok += !strcmp(pt.type[i][0], "kiln_test_total") && !strcmp(pt.type[i][1], "counter");
        types_ok += !strcmp(pt.type[i][0], "kiln_test_gauge") && !strcmp(pt.type[i][1], "gauge");
        types_ok += !strcmp(pt.type[i][0], "kiln_test_seconds") && !strcmp(pt.type[i][1], "histogram");
    }
    for (int i = 0; i < pt.n_help; i++)
        help_ok += !strcmp(pt.help[i][0], "kiln_test_total") &&
                   !strcmp(pt.help[i][1], "A counter.\nSecond line \\ backslash.");
    TEST_CHECK(types_ok == 3, "TYPE lines (%d of 3)", types_ok);
    TEST_CHECK(help_ok == 1, "HELP escaped and read back");
    /* no series line before its family's TYPE line */
    const char *tline = strstr(text, "# TYPE kiln_test_seconds histogram\n");
    const char *first = strstr(text, "kiln_test_seconds_bucket");
    TEST_CHECK(tline && first && tline < first, "TYPE precedes samples");
    SUB_TEST_PASS();

    SUB_TEST("histogram buckets are cumulative, +Inf equals _count, _sum adds up");
    double want_le[] = {1, 2.5, 5, INFINITY};
    double want_cum[] = {2, 4, 6, 8}; /* 0.5,1 | 1.0001,2.5 | 3,5 | 7,100 */
    int nb = 0;
    double prev = -1;
    for (int i = 0; i < pt.n; i++) {
        s = &pt.s[i];
        if (strcmp(s->name, "kiln_test_seconds_bucket"))
            continue;
        TEST_CHECK(!strcmp(label(s, "model"), "whisper"), "model label kept on buckets");
        const char *le = label(s, "le");
        TEST_CHECK(le != NULL, "le label");
        if (!le || nb >= 4)
            continue;
        double lev = !strcmp(le, "+Inf") ? INFINITY : strtod(le, NULL);
        TEST_CHECK(lev == want_le[nb], "bucket %d le=%s", nb, le);
        TEST_CHECK(s->value == want_cum[nb], "bucket le=%s holds %g, want %g", le, s->value, want_cum[nb]);
        TEST_CHECK(s->value >= prev, "cumulative");
        prev = s->value;
        nb++;
    }
    TEST_CHECK(nb == 4, "4 buckets (3 bounds + Inf), got %d", nb);
    TEST_CHECK(strstr(text, "kiln_test_seconds_bucket{model=\"whisper\",le=\"2.5\"} 4\n") != NULL,
               "le formatting 2.5");
    s = find(&pt, "kiln_test_seconds_count", NULL, NULL);
    TEST_CHECK(s && s->value == 8, "_count 8");
    s = find(&pt, "kiln_test_seconds_sum", NULL, NULL);
    TEST_CHECK(s && fabs(s->value - 120.0001) < 1e-9, "_sum %g", s ? s->value : -1);
    TEST_CHECK(kiln_metric_get(h, KILN_LABELS("whisper")) == 8, "get on a histogram = count");
    TEST_CHECK(isnan(kiln_metric_get(h, KILN_LABELS("nope"))), "get on a missing series = NaN");
    free(text);
    SUB_TEST_PASS();

    SUB_TEST("remove and clear drop series; unlabelled series stays at 0");
    kiln_metric_remove(c, KILN_LABELS(evil, "ünï"));
    TEST_CHECK(isnan(kiln_metric_get(c, KILN_LABELS(evil, "ünï"))), "removed");
    TEST_CHECK(kiln_metric_get(c, KILN_LABELS("kiln.transcribe.jobs", "3")) == 5, "other kept");
    for (int i = 0; i < 200; i++) { /* grows the hash table, then empties it */
        char ps[16];
        snprintf(ps, sizeof(ps), "%d", i);
        kiln_metric_set(g2, KILN_LABELS(ps), i);
    }
    TEST_CHECK(kiln_metric_get(g2, KILN_LABELS("199")) == 199, "200 series after rehash");
    TEST_CHECK(kiln_metric_get(g2, KILN_LABELS("big")) == 1e20, "old series found after rehash");
    kiln_metric_clear(g2);
    kiln_metric_clear(g);
    text = kiln_metrics_render(reg, NULL);
    TEST_CHECK(!strstr(text, "kiln:test_colon{"), "cleared family has no series");
    TEST_CHECK(strstr(text, "# TYPE kiln:test_colon gauge\n") != NULL, "but keeps its TYPE");
    TEST_CHECK(strstr(text, "kiln_test_gauge 0\n") != NULL, "unlabelled series reset to 0");
    free(text);
    kiln_metric_set(g2, KILN_LABELS("again"), 1);
    TEST_CHECK(kiln_metric_get(g2, KILN_LABELS("again")) == 1, "usable after clear");
    SUB_TEST_PASS();

    SUB_TEST("concurrent updates from 4 threads are all counted");
    kiln_metrics_t *r2 = kiln_metrics_new();
    kiln_metric_t *tc = kiln_metrics_counter(r2, "kiln_thr_total", "x", "p");
    kiln_metric_t *th = kiln_metrics_histogram(r2, "kiln_thr_h", "x", NULL, b3, 3);
    pthread_t t[4];
    thr_arg_t args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thr_arg_t){tc, th, i};
        pthread_create(&t[i], NULL, hammer, &args[i]);
    }
    for (int k = 0; k < 20; k++) /* render while they run */
        free(kiln_metrics_render(r2, NULL));
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    TEST_CHECK(kiln_metric_get(tc, KILN_LABELS("0")) == 100000, "p=0: %g", kiln_metric_get(tc, KILN_LABELS("0")));
    TEST_CHECK(kiln_metric_get(tc, KILN_LABELS("1")) == 100000, "p=1");
    TEST_CHECK(kiln_metric_get(th, NULL) == 200000, "histogram count");
    kiln_metrics_destroy(r2);
    SUB_TEST_PASS();

    SUB_TEST("GPU gauges: NVML when present, gpu=\"none\" 0 otherwise");
    /* tests/0430 points KILN_NVML_LIBRARY at a stub NVML with 2 GPUs */
    int stub = getenv("KILN_TEST_NVML_STUB") != NULL;
    void *nvml = stub ? NULL : dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    int ngpu = kiln_metrics_gpu_register(reg);
    text = kiln_metrics_render(reg, NULL);
    TEST_CHECK(parse_text(text, &pt) == 0, "parses");
    if (stub) {
        TEST_CHECK(ngpu == 2, "2 GPUs from the stub, got %d", ngpu);
        s = find(&pt, "kiln_gpu_utilization", "gpu", "0");
        TEST_CHECK(s && s->value == 0.42, "gpu 0 at 42%%");
        s = find(&pt, "kiln_gpu_utilization", "gpu", "1");
        TEST_CHECK(s && s->value == 0.07, "gpu 1 at 7%%");
        s = find(&pt, "kiln_gpu_memory_total_bytes", "gpu", "1");
        TEST_CHECK(s && s->value == 80.0 * (1 << 30), "80 GiB");
        s = find(&pt, "kiln_gpu_memory_used_bytes", "gpu", "1");
        double used1 = s ? s->value : -1;
        TEST_CHECK(!find(&pt, "kiln_gpu_utilization", "gpu", "none"), "no gpu=none with GPUs");
        free(text);
        text = kiln_metrics_render(reg, NULL); /* NVML is sampled again at each render */
        TEST_CHECK(parse_text(text, &pt) == 0, "parses");
        s = find(&pt, "kiln_gpu_memory_used_bytes", "gpu", "1");
        TEST_CHECK(s && used1 > 0 && s->value > used1, "memory sampled again: %g then %g", used1,
                   s ? s->value : -1);
    } else if (!nvml || ngpu == 0) {
        s = find(&pt, "kiln_gpu_utilization", "gpu", "none");
        TEST_CHECK(s && s->value == 0, "kiln_gpu_utilization{gpu=\"none\"} 0");
        s = find(&pt, "kiln_gpu_memory_used_bytes", "gpu", "none");
        TEST_CHECK(s && s->value == 0, "kiln_gpu_memory_used_bytes{gpu=\"none\"} 0");
    } else {
        s = find(&pt, "kiln_gpu_utilization", "gpu", "0");
        TEST_CHECK(s && s->value >= 0 && s->value <= 1, "utilisation of GPU 0 in 0..1");
        s = find(&pt, "kiln_gpu_memory_total_bytes", "gpu", "0");
        TEST_CHECK(s && s->value > (1 << 30), "GPU 0 has over 1 GiB");
        TEST_CHECK(!find(&pt, "kiln_gpu_utilization", "gpu", "none"), "no gpu=none with a GPU");
        printf("# %d GPU(s) through NVML\n", ngpu);
    }
    free(text);
    if (nvml)
        dlclose(nvml);
    SUB_TEST_PASS();

    SUB_TEST("HTTP: /metrics, /healthz, 404, 405 on a free loopback port");
    char errstr[256] = "";
    int port = kiln_metrics_server_start(reg, "127.0.0.1", 0, errstr, sizeof(errstr));
    TEST_ASSERT(port > 0, "server started: %s", errstr);
    TEST_CHECK(kiln_metrics_server_port(reg) == port, "port reported");
    body_t b = {0};
    char ctype[256] = "";
    long st = http("GET", port, "/metrics", &b, ctype, sizeof(ctype));
    TEST_CHECK(st == 200, "GET /metrics: %ld", st);
    TEST_CHECK(!strcmp(ctype, "text/plain; version=0.0.4; charset=utf-8"), "content type %s", ctype);
    TEST_CHECK(b.buf && parse_text(b.buf, &pt) == 0, "body parses");
    s = find(&pt, "kiln_test_total", "partition", "3");
    TEST_CHECK(s && s->value == 5, "served value");
    free(b.buf);
    b = (body_t){0};
    kiln_metric_add(c, KILN_LABELS("kiln.transcribe.jobs", "3"), 1);
    st = http("GET", port, "/metrics", &b, NULL, 0);
    TEST_CHECK(st == 200 && b.buf && strstr(b.buf, "kiln_test_total{topic=\"kiln.transcribe.jobs\",partition=\"3\"} 6\n"),
               "a new value is served on the next scrape");
    free(b.buf);
    b = (body_t){0};
    st = http("GET", port, "/healthz", &b, NULL, 0);
    TEST_CHECK(st == 200 && b.buf && !strcmp(b.buf, "ok\n"), "GET /healthz: %ld", st);
    free(b.buf);
    b = (body_t){0};
    st = http("GET", port, "/nope", &b, NULL, 0);
    TEST_CHECK(st == 404, "GET /nope: %ld", st);
    free(b.buf);
    b = (body_t){0};
    st = http("POST", port, "/metrics", &b, NULL, 0);
    TEST_CHECK(st == 405, "POST /metrics: %ld", st);
    free(b.buf);
    b = (body_t){0};
    SUB_TEST_PASS();

    SUB_TEST("HTTP: port in use is an error; a second start is refused; stop closes");
    kiln_metrics_t *r3 = kiln_metrics_new();
    errstr[0] = '\0';
    TEST_CHECK(kiln_metrics_server_start(r3, "127.0.0.1", port, errstr, sizeof(errstr)) == -1,
               "same port twice");
    TEST_CHECK(strstr(errstr, "could not listen") != NULL, "errstr: %s", errstr);
    TEST_CHECK(kiln_metrics_server_start(reg, "127.0.0.1", 0, errstr, sizeof(errstr)) == -1,
               "second server for one registry");
    TEST_CHECK(kiln_metrics_server_start(r3, "no.such.host.invalid", 0, errstr, sizeof(errstr)) == -1,
               "unresolvable address");
    int p6 = kiln_metrics_server_start(r3, "::1", 0, errstr, sizeof(errstr));
    if (p6 > 0) { /* IPv6 loopback, where the machine has it */
        char url[64];
        snprintf(url, sizeof(url), "http://[::1]:%d/healthz", p6);
        CURL *cu = curl_easy_init();
        curl_easy_setopt(cu, CURLOPT_URL, url);
        curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, body_write);
        curl_easy_setopt(cu, CURLOPT_WRITEDATA, &b);
        TEST_CHECK(curl_easy_perform(cu) == CURLE_OK && b.buf && !strcmp(b.buf, "ok\n"), "IPv6 /healthz");
        curl_easy_cleanup(cu);
        free(b.buf);
        b = (body_t){0};
    }
    kiln_metrics_destroy(r3); /* stops its server */
    kiln_metrics_server_stop(reg);
    TEST_CHECK(kiln_metrics_server_port(reg) == 0, "no port after stop");
    st = http("GET", port, "/healthz", &b, NULL, 0);
    TEST_CHECK(st == 0, "nothing answers after stop (%ld)", st);
    free(b.buf);
    b = (body_t){0};
    port = kiln_metrics_server_start(reg, NULL, 0, errstr, sizeof(errstr));
    TEST_CHECK(port > 0, "restart on the default address: %s", errstr);
    st = http("GET", port, "/healthz", &b, NULL, 0);
    TEST_CHECK(st == 200, "answers again");
    free(b.buf);
    kiln_metrics_destroy(reg); /* with the server running */
    kiln_metrics_destroy(NULL);
    SUB_TEST_PASS();

    curl_global_cleanup();
    printf("%d passed, %d failed\n", test_n_passed_, test_n_failed_);
    return TEST_DONE();
}
