/*
 * lib/metrics.c - the metrics registry of kiln/metrics.h: families, series,
 * the Prometheus text rendering, and the NVML (GPU) collector.
 *
 * Layout: a registry is a list of families in registration order, guarded by
 * one recursive mutex. A family keeps its series (children) in insertion
 * order on a list and in a small chained hash table keyed by the label
 * values, so an update costs one hash lookup whatever the number of
 * partitions. Histograms keep per-bucket (non-cumulative) counts and make
 * them cumulative when rendering. The HTTP side is in lib/metrics_http.c.
 */
#include "kiln/metrics.h"

#include <ctype.h>
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/log.h"

typedef struct kiln_mchild_s {
    char *lv[KILN_METRICS_MAX_LABELS];
    uint64_t hash;
    double value;            /* counter / gauge */
    double sum;              /* histogram */
    unsigned long long *bk;  /* histogram: n_bounds + 1 non-cumulative counts */
    struct kiln_mchild_s *next;      /* insertion order */
    struct kiln_mchild_s *hnext;     /* hash chain */
} kiln_mchild_t;

struct kiln_metric_s {
    kiln_metrics_t *reg;
    char *name, *help;
    kiln_metric_type_t type;
    int n_labels;
    char *ln[KILN_METRICS_MAX_LABELS];
    double *bounds;
    int n_bounds;
    kiln_mchild_t *first, *last;
    kiln_mchild_t **ht;
    size_t ht_size, n_children;
    struct kiln_metric_s *next;
};

#define KILN_METRICS_MAX_COLLECTORS 8

struct kiln_metrics_s {
    pthread_mutex_t mu;
    kiln_metric_t *first, *last;
    struct {
        void (*cb)(kiln_metrics_t *, void *);
        void *opaque;
    } coll[KILN_METRICS_MAX_COLLECTORS];
    int n_coll;
    pthread_mutex_t coll_mu; /* serialises collectors (two scrapes at once) */
    void *http;              /* lib/metrics_http.c */
};

/* lib/metrics_http.c */
void kiln_metrics_server_stop(kiln_metrics_t *reg);

static void *kiln_m_alloc(size_t n) {
    void *p = calloc(1, n);
    if (!p)
        abort();
    return p;
}

static char *kiln_m_strdup(const char *s) {
    char *p = strdup(s ? s : "");
    if (!p)
        abort();
    return p;
}

/* ------------------------------------------------------------------ registry */

kiln_metrics_t *kiln_metrics_new(void) {
    kiln_metrics_t *reg = kiln_m_alloc(sizeof(*reg));
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&reg->mu, &a);
    pthread_mutexattr_destroy(&a);
    pthread_mutex_init(&reg->coll_mu, NULL);
    return reg;
}

static void kiln_mchild_free(kiln_metric_t *m, kiln_mchild_t *c) {
    for (int i = 0; i < m->n_labels; i++)
        free(c->lv[i]);
    free(c->bk);
    free(c);
}

static void kiln_metric_free(kiln_metric_t *m) {
    kiln_mchild_t *c = m->first;
    while (c) {
        kiln_mchild_t *n = c->next;
        kiln_mchild_free(m, c);
        c = n;
    }
    for (int i = 0; i < m->n_labels; i++)
        free(m->ln[i]);
    free(m->ht);
    free(m->bounds);
    free(m->name);
    free(m->help);
    free(m);
}

void kiln_metrics_destroy(kiln_metrics_t *reg) {
    if (!reg)
        return;
    kiln_metrics_server_stop(reg);
    kiln_metric_t *m = reg->first;
    while (m) {
        kiln_metric_t *n = m->next;
        kiln_metric_free(m);
        m = n;
    }
    pthread_mutex_destroy(&reg->mu);
    pthread_mutex_destroy(&reg->coll_mu);
    free(reg);
}

void kiln_metrics_lock(kiln_metrics_t *reg) { pthread_mutex_lock(&reg->mu); }
void kiln_metrics_unlock(kiln_metrics_t *reg) { pthread_mutex_unlock(&reg->mu); }

/* For lib/metrics_http.c: where the registry keeps its server. */
void **kiln_metrics_http_slot_(kiln_metrics_t *reg) { return &reg->http; }

int kiln_metrics_add_collector(kiln_metrics_t *reg, void (*cb)(kiln_metrics_t *, void *),
                               void *opaque) {
    pthread_mutex_lock(&reg->coll_mu);
    int r = -1;
    if (reg->n_coll < KILN_METRICS_MAX_COLLECTORS) {
        reg->coll[reg->n_coll].cb = cb;
        reg->coll[reg->n_coll].opaque = opaque;
        reg->n_coll++;
        r = 0;
    }
    pthread_mutex_unlock(&reg->coll_mu);
    return r;
}

/* ------------------------------------------------------------------ names */

/* Metric names: [a-zA-Z_:][a-zA-Z0-9_:]*; label names: [a-zA-Z_][a-zA-Z0-9_]*,
 * not starting with "__" (reserved by Prometheus). */
static int kiln_m_name_ok(const char *s, int is_label) {
    if (!s || !*s)
        return 0;
    if (is_label && s[0] == '_' && s[1] == '_')
        return 0;
    for (const char *c = s; *c; c++) {
        int ok = isalpha((unsigned char)*c) || *c == '_' || (!is_label && *c == ':') ||
                 (c != s && isdigit((unsigned char)*c));
        if (!ok || (unsigned char)*c >= 0x80)
            return 0;
    }
    return 1;
}

/* Splits "a,b" into names; @returns the count, or -1 when invalid. */
static int kiln_m_split_labels(const char *labels, char names[][64]) {
    int n = 0;
    if (!labels || !*labels)
        return 0;
    const char *p = labels;
    for (;;) {
        size_t len = strcspn(p, ",");
        while (len && *p == ' ')
            p++, len--;
        while (len && p[len - 1] == ' ')
            len--;
        if (n == KILN_METRICS_MAX_LABELS || len == 0 || len >= 64)
            return -1;
        memcpy(names[n], p, len);
        names[n][len] = '\0';
        if (!kiln_m_name_ok(names[n], 1))
            return -1;
        for (int i = 0; i < n; i++)
            if (!strcmp(names[i], names[n]))
                return -1;
        n++;
        p += strcspn(p, ",");
        if (!*p)
            break;
        p++;
    }
    return n;
}

static kiln_mchild_t *kiln_mchild_get(kiln_metric_t *m, const char *const *lv, int create);

static kiln_metric_t *kiln_metrics_register(kiln_metrics_t *reg, kiln_metric_type_t type,
                                            const char *name, const char *help,
                                            const char *labels, const double *bounds,
                                            int n_bounds) {
    char ln[KILN_METRICS_MAX_LABELS][64];
    int n = kiln_m_split_labels(labels, ln);
    if (!kiln_m_name_ok(name, 0) || n < 0) {
        KILN_LOG_ERROR("metric \"%s\": invalid metric or label name", name ? name : "");
        return NULL;
    }
    if (type == KILN_METRIC_HISTOGRAM) {
        if (n_bounds < 0 || n_bounds > KILN_METRICS_MAX_BUCKETS || (n_bounds && !bounds))
            return NULL;
        for (int i = 0; i < n; i++)
            if (!strcmp(ln[i], "le"))
                return NULL;
        for (int i = 0; i < n_bounds; i++)
            if (isnan(bounds[i]) || (i && bounds[i] <= bounds[i - 1]))
                return NULL;
        if (n_bounds && isinf(bounds[n_bounds - 1]) && bounds[n_bounds - 1] > 0)
            n_bounds--; /* +Inf is implicit */
    }
    pthread_mutex_lock(&reg->mu);
    for (kiln_metric_t *m = reg->first; m; m = m->next) {
        if (strcmp(m->name, name))
            continue;
        int same = m->type == type && m->n_labels == n;
        for (int i = 0; same && i < n; i++)
            same = !strcmp(m->ln[i], ln[i]);
        if (same && type == KILN_METRIC_HISTOGRAM) {
            same = m->n_bounds == n_bounds;
            for (int i = 0; same && i < n_bounds; i++)
                same = m->bounds[i] == bounds[i];
        }
        pthread_mutex_unlock(&reg->mu);
        if (!same)
            KILN_LOG_ERROR("metric \"%s\" registered twice with different types or labels", name);
        return same ? m : NULL;
    }
    kiln_metric_t *m = kiln_m_alloc(sizeof(*m));
    m->reg = reg;
    m->name = kiln_m_strdup(name);
    m->help = kiln_m_strdup(help);
    m->type = type;
    m->n_labels = n;
    for (int i = 0; i < n; i++)
        m->ln[i] = kiln_m_strdup(ln[i]);
    if (type == KILN_METRIC_HISTOGRAM) {
        m->n_bounds = n_bounds;
        m->bounds = kiln_m_alloc(sizeof(double) * (n_bounds ? n_bounds : 1));
        if (n_bounds)
            memcpy(m->bounds, bounds, sizeof(double) * n_bounds);
    }
    m->ht_size = 16;
    m->ht = kiln_m_alloc(sizeof(*m->ht) * m->ht_size);
    if (!n)
        kiln_mchild_get(m, NULL, 1); /* the one series exists from the start */
    if (reg->last)
        reg->last->next = m;
    else
        reg->first = m;
    reg->last = m;
    pthread_mutex_unlock(&reg->mu);
    return m;
}

kiln_metric_t *kiln_metrics_counter(kiln_metrics_t *reg, const char *name, const char *help,
                                    const char *labels) {
    return kiln_metrics_register(reg, KILN_METRIC_COUNTER, name, help, labels, NULL, 0);
}

kiln_metric_t *kiln_metrics_gauge(kiln_metrics_t *reg, const char *name, const char *help,
                                  const char *labels) {
    return kiln_metrics_register(reg, KILN_METRIC_GAUGE, name, help, labels, NULL, 0);
}

kiln_metric_t *kiln_metrics_histogram(kiln_metrics_t *reg, const char *name, const char *help,
                                      const char *labels, const double *bounds, int n_bounds) {
    return kiln_metrics_register(reg, KILN_METRIC_HISTOGRAM, name, help, labels, bounds,
                                 n_bounds);
}

/* ------------------------------------------------------------------ series */

/* FNV-1a over the label values, each followed by a 0xff separator (a byte
 * that never occurs in UTF-8) so ("ab","c") and ("a","bc") differ. */
static uint64_t kiln_m_hash(int n, const char *const *lv) {
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < n; i++) {
        for (const unsigned char *c = (const unsigned char *)(lv[i] ? lv[i] : ""); *c; c++)
            h = (h ^ *c) * 1099511628211ULL;
        h = (h ^ 0xff) * 1099511628211ULL;
    }
    return h;
}

static int kiln_mchild_match(const kiln_metric_t *m, const kiln_mchild_t *c, uint64_t h,
                             const char *const *lv) {
    if (c->hash != h)
        return 0;
    for (int i = 0; i < m->n_labels; i++)
        if (strcmp(c->lv[i], lv[i] ? lv[i] : ""))
            return 0;
    return 1;
}

static void kiln_metric_rehash(kiln_metric_t *m) {
    size_t size = m->ht_size * 4;
    kiln_mchild_t **ht = kiln_m_alloc(sizeof(*ht) * size);
    for (kiln_mchild_t *c = m->first; c; c = c->next) {
        size_t b = c->hash & (size - 1);
        c->hnext = ht[b];
        ht[b] = c;
    }
    free(m->ht);
    m->ht = ht;
    m->ht_size = size;
}

/* Finds (or creates) the series \p lv. Caller holds the registry lock. */
static kiln_mchild_t *kiln_mchild_get(kiln_metric_t *m, const char *const *lv, int create) {
    if (m->n_labels && !lv)
        return NULL;
    uint64_t h = kiln_m_hash(m->n_labels, lv);
    for (kiln_mchild_t *c = m->ht[h & (m->ht_size - 1)]; c; c = c->hnext)
        if (kiln_mchild_match(m, c, h, lv))
            return c;
    if (!create)
        return NULL;
    kiln_mchild_t *c = kiln_m_alloc(sizeof(*c));
    for (int i = 0; i < m->n_labels; i++)
        c->lv[i] = kiln_m_strdup(lv[i]);
    c->hash = h;
    if (m->type == KILN_METRIC_HISTOGRAM)
        c->bk = kiln_m_alloc(sizeof(*c->bk) * (m->n_bounds + 1));
    if (m->last)
        m->last->next = c;
    else
        m->first = c;
    m->last = c;
    if (++m->n_children > m->ht_size)
        kiln_metric_rehash(m);
    else {
        size_t b = h & (m->ht_size - 1);
        c->hnext = m->ht[b];
        m->ht[b] = c;
    }
    return c;
}

void kiln_metric_add(kiln_metric_t *m, const char *const *lv, double v) {
    if (!m || m->type == KILN_METRIC_HISTOGRAM || (m->type == KILN_METRIC_COUNTER && !(v >= 0)))
        return;
    pthread_mutex_lock(&m->reg->mu);
    kiln_mchild_t *c = kiln_mchild_get(m, lv, 1);
    if (c)
        c->value += v;
    pthread_mutex_unlock(&m->reg->mu);
}

void kiln_metric_set(kiln_metric_t *m, const char *const *lv, double v) {
    if (!m || m->type == KILN_METRIC_HISTOGRAM)
        return;
    pthread_mutex_lock(&m->reg->mu);
    kiln_mchild_t *c = kiln_mchild_get(m, lv, 1);
    if (c)
        c->value = v;
    pthread_mutex_unlock(&m->reg->mu);
}

void kiln_metric_observe(kiln_metric_t *m, const char *const *lv, double v) {
    if (!m || m->type != KILN_METRIC_HISTOGRAM || isnan(v))
        return;
    pthread_mutex_lock(&m->reg->mu);
    kiln_mchild_t *c = kiln_mchild_get(m, lv, 1);
    if (c) {
        int b = 0;
        while (b < m->n_bounds && v > m->bounds[b]) /* bucket "le": v <= bound */
            b++;
        c->bk[b]++;
        c->sum += v;
    }
    pthread_mutex_unlock(&m->reg->mu);
}

double kiln_metric_get(kiln_metric_t *m, const char *const *lv) {
    if (!m)
        return NAN;
    pthread_mutex_lock(&m->reg->mu);
    kiln_mchild_t *c = kiln_mchild_get(m, lv, 0);
    double v = NAN;
    if (c && m->type == KILN_METRIC_HISTOGRAM) {
        unsigned long long n = 0;
        for (int b = 0; b <= m->n_bounds; b++)
            n += c->bk[b];
        v = (double)n;
    } else if (c)
        v = c->value;
    pthread_mutex_unlock(&m->reg->mu);
    return v;
}

void kiln_metric_remove(kiln_metric_t *m, const char *const *lv) {
    if (!m || !m->n_labels || !lv)
        return;
    pthread_mutex_lock(&m->reg->mu);
    uint64_t h = kiln_m_hash(m->n_labels, lv);
    kiln_mchild_t **pp = &m->ht[h & (m->ht_size - 1)];
    while (*pp && !kiln_mchild_match(m, *pp, h, lv))
        pp = &(*pp)->hnext;
    kiln_mchild_t *c = *pp;
    if (c) {
        *pp = c->hnext;
        kiln_mchild_t *prev = NULL;
        for (kiln_mchild_t *x = m->first; x != c; x = x->next)
            prev = x;
        if (prev)
            prev->next = c->next;
        else
            m->first = c->next;
        if (m->last == c)
            m->last = prev;
        m->n_children--;
        kiln_mchild_free(m, c);
    }
    pthread_mutex_unlock(&m->reg->mu);
}

void kiln_metric_clear(kiln_metric_t *m) {
    if (!m)
        return;
    pthread_mutex_lock(&m->reg->mu);
    if (!m->n_labels) {
        kiln_mchild_t *c = m->first;
        c->value = c->sum = 0;
        if (c->bk)
            memset(c->bk, 0, sizeof(*c->bk) * (m->n_bounds + 1));
    } else {
        kiln_mchild_t *c = m->first;
        while (c) {
            kiln_mchild_t *n = c->next;
            kiln_mchild_free(m, c);
            c = n;
        }
        m->first = m->last = NULL;
        m->n_children = 0;
        memset(m->ht, 0, sizeof(*m->ht) * m->ht_size);
    }
    pthread_mutex_unlock(&m->reg->mu);
}

/* ------------------------------------------------------------------ rendering */

typedef struct {
    char *buf;
    size_t len, cap;
} kiln_mbuf_t;

static void kiln_mbuf_add(kiln_mbuf_t *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2 + 1024;
        b->buf = realloc(b->buf, b->cap);
        if (!b->buf)
            abort();
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

static void kiln_mbuf_puts(kiln_mbuf_t *b, const char *s) { kiln_mbuf_add(b, s, strlen(s)); }

/* Escapes \ and newline (HELP text), and " too in label values. */
static void kiln_mbuf_escaped(kiln_mbuf_t *b, const char *s, int quote) {
    for (const char *c = s; *c; c++) {
        if (*c == '\\')
            kiln_mbuf_add(b, "\\\\", 2);
        else if (*c == '\n')
            kiln_mbuf_add(b, "\\n", 2);
        else if (*c == '"' && quote)
            kiln_mbuf_add(b, "\\\"", 2);
        else
            kiln_mbuf_add(b, c, 1);
    }
}

/* The shortest of %.15g/%.17g that reads back exactly; +Inf, -Inf, NaN as
 * Prometheus spells them. */
static void kiln_m_fmt(char *out, size_t size, double v) {
    if (isnan(v))
        snprintf(out, size, "NaN");
    else if (isinf(v))
        snprintf(out, size, v > 0 ? "+Inf" : "-Inf");
    else {
        snprintf(out, size, "%.15g", v);
        if (strtod(out, NULL) != v)
            snprintf(out, size, "%.17g", v);
    }
}

/* name{l1="v1",...[,le="x"]} value\n */
static void kiln_m_line(kiln_mbuf_t *b, const kiln_metric_t *m, const char *suffix,
                        const kiln_mchild_t *c, const char *le, double v) {
    kiln_mbuf_puts(b, m->name);
    kiln_mbuf_puts(b, suffix);
    if (m->n_labels || le) {
        kiln_mbuf_add(b, "{", 1);
        for (int i = 0; i < m->n_labels; i++) {
            if (i)
                kiln_mbuf_add(b, ",", 1);
            kiln_mbuf_puts(b, m->ln[i]);
            kiln_mbuf_add(b, "=\"", 2);
            kiln_mbuf_escaped(b, c->lv[i], 1);
            kiln_mbuf_add(b, "\"", 1);
        }
        if (le) {
            kiln_mbuf_puts(b, m->n_labels ? ",le=\"" : "le=\"");
            kiln_mbuf_puts(b, le);
            kiln_mbuf_add(b, "\"", 1);
        }
        kiln_mbuf_add(b, "}", 1);
    }
    char num[64];
    kiln_m_fmt(num, sizeof(num), v);
    kiln_mbuf_add(b, " ", 1);
    kiln_mbuf_puts(b, num);
    kiln_mbuf_add(b, "\n", 1);
}

char *kiln_metrics_render(kiln_metrics_t *reg, size_t *len) {
    pthread_mutex_lock(&reg->coll_mu);
    for (int i = 0; i < reg->n_coll; i++)
        reg->coll[i].cb(reg, reg->coll[i].opaque);
    pthread_mutex_unlock(&reg->coll_mu);
    static const char *const types[] = {"counter", "gauge", "histogram"};
    kiln_mbuf_t b = {0};
    kiln_mbuf_add(&b, "", 0);
    pthread_mutex_lock(&reg->mu);
    for (kiln_metric_t *m = reg->first; m; m = m->next) {
        kiln_mbuf_puts(&b, "# HELP ");
        kiln_mbuf_puts(&b, m->name);
        kiln_mbuf_add(&b, " ", 1);
        kiln_mbuf_escaped(&b, m->help, 0);
        kiln_mbuf_puts(&b, "\n# TYPE ");
        kiln_mbuf_puts(&b, m->name);
        kiln_mbuf_add(&b, " ", 1);
        kiln_mbuf_puts(&b, types[m->type]);
        kiln_mbuf_add(&b, "\n", 1);
        for (kiln_mchild_t *c = m->first; c; c = c->next) {
            if (m->type != KILN_METRIC_HISTOGRAM) {
                kiln_m_line(&b, m, "", c, NULL, c->value);
                continue;
            }
            unsigned long long cum = 0;
            char le[64];
            for (int k = 0; k <= m->n_bounds; k++) {
                cum += c->bk[k];
                kiln_m_fmt(le, sizeof(le), k < m->n_bounds ? m->bounds[k] : INFINITY);
                kiln_m_line(&b, m, "_bucket", c, le, (double)cum);
            }
            kiln_m_line(&b, m, "_sum", c, NULL, c->sum);
            kiln_m_line(&b, m, "_count", c, NULL, (double)cum);
        }
    }
    pthread_mutex_unlock(&reg->mu);
    if (len)
        *len = b.len;
    return b.buf;
}

/* ------------------------------------------------------------------ GPU (NVML) */

/* The few NVML entry points we use, declared here so that kiln neither links
 * nor needs the NVML headers (types as in nvml.h). */
typedef int kiln_nvml_ret_t; /* NVML_SUCCESS = 0 */
typedef void *kiln_nvml_dev_t;
typedef struct {
    unsigned int gpu, memory; /* percent over the last sample period */
} kiln_nvml_util_t;
typedef struct {
    unsigned long long total, free, used;
} kiln_nvml_mem_t;

static struct {
    pthread_once_t once;
    int n; /* devices; 0 when NVML is absent */
    kiln_nvml_ret_t (*get_handle)(unsigned int, kiln_nvml_dev_t *);
    kiln_nvml_ret_t (*get_util)(kiln_nvml_dev_t, kiln_nvml_util_t *);
    kiln_nvml_ret_t (*get_mem)(kiln_nvml_dev_t, kiln_nvml_mem_t *);
} kiln_nvml = {.once = PTHREAD_ONCE_INIT};

/* Loads NVML once per process; on any failure kiln_nvml.n stays 0. The
 * library stays loaded (NVML must not be unloaded while in use). */
static void kiln_nvml_load(void) {
    const char *path = getenv("KILN_NVML_LIBRARY");
    if (path && !strcmp(path, "none"))
        return;
    void *h = dlopen(path && *path ? path : "libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return;
    kiln_nvml_ret_t (*init)(void) = (kiln_nvml_ret_t(*)(void))dlsym(h, "nvmlInit_v2");
    kiln_nvml_ret_t (*count)(unsigned int *) =
        (kiln_nvml_ret_t(*)(unsigned int *))dlsym(h, "nvmlDeviceGetCount_v2");
    *(void **)&kiln_nvml.get_handle = dlsym(h, "nvmlDeviceGetHandleByIndex_v2");
    *(void **)&kiln_nvml.get_util = dlsym(h, "nvmlDeviceGetUtilizationRates");
    *(void **)&kiln_nvml.get_mem = dlsym(h, "nvmlDeviceGetMemoryInfo");
    unsigned int n = 0;
    if (!init || !count || !kiln_nvml.get_handle || !kiln_nvml.get_util || !kiln_nvml.get_mem ||
        init() != 0 || count(&n) != 0) {
        KILN_LOG_WARN("could not initialise NVML from %s: GPU metrics report gpu=\"none\"",
                      path && *path ? path : "libnvidia-ml.so.1");
        return;
    }
    kiln_nvml.n = (int)n;
}

static void kiln_nvml_collect(kiln_metrics_t *reg, void *opaque) {
    (void)opaque;
    kiln_metric_t *util = kiln_metrics_gauge(reg, "kiln_gpu_utilization", NULL, "gpu");
    kiln_metric_t *used = kiln_metrics_gauge(reg, "kiln_gpu_memory_used_bytes", NULL, "gpu");
    kiln_metric_t *total = kiln_metrics_gauge(reg, "kiln_gpu_memory_total_bytes", NULL, "gpu");
    for (int i = 0; i < kiln_nvml.n; i++) {
        char idx[16];
        snprintf(idx, sizeof(idx), "%d", i);
        kiln_nvml_dev_t dev;
        if (kiln_nvml.get_handle((unsigned)i, &dev) != 0)
            continue;
        kiln_nvml_util_t u;
        if (kiln_nvml.get_util(dev, &u) == 0)
            kiln_metric_set(util, KILN_LABELS(idx), u.gpu / 100.0);
        kiln_nvml_mem_t mem;
        if (kiln_nvml.get_mem(dev, &mem) == 0) {
            kiln_metric_set(used, KILN_LABELS(idx), (double)mem.used);
            kiln_metric_set(total, KILN_LABELS(idx), (double)mem.total);
        }
    }
}

int kiln_metrics_gpu_register(kiln_metrics_t *reg) {
    pthread_once(&kiln_nvml.once, kiln_nvml_load);
    kiln_metric_t *util = kiln_metrics_gauge(
        reg, "kiln_gpu_utilization",
        "GPU utilisation, 0..1, over NVML's last sample period (gpu=\"none\": no GPU or no NVML).",
        "gpu");
    kiln_metric_t *used = kiln_metrics_gauge(reg, "kiln_gpu_memory_used_bytes",
                                             "GPU memory in use (all processes), in bytes.", "gpu");
    kiln_metric_t *total = kiln_metrics_gauge(reg, "kiln_gpu_memory_total_bytes",
                                              "GPU memory installed, in bytes.", "gpu");
    if (!util || !used || !total)
        return 0;
    if (!kiln_nvml.n) {
        kiln_metric_set(util, KILN_LABELS("none"), 0);
        kiln_metric_set(used, KILN_LABELS("none"), 0);
        kiln_metric_set(total, KILN_LABELS("none"), 0);
        return 0;
    }
    kiln_nvml_collect(reg, NULL);
    kiln_metrics_add_collector(reg, kiln_nvml_collect, NULL);
    return kiln_nvml.n;
}
