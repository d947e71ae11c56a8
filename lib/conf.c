/*
 * lib/conf.c - implementation of kiln/conf.h over the table in conf_props.c.
 *
 * Values are kept as strings (validated on set); pass-through keys (kafka.*,
 * pg.*) are kept in insertion order in a small list.
 */
#include "kiln/conf.h"

#include "kiln/log.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

extern const kiln_prop_t kiln_conf_table[];
extern const unsigned kiln_conf_table_n;

typedef struct kiln_kv_s {
    char *key;
    char *val;
} kiln_kv_t;

struct kiln_conf_s {
    char **vals;        /* one per table row */
    kiln_kv_t *pass;    /* pass-through pairs, full key with prefix */
    int n_pass, cap_pass;
};

static char *kiln_xstrdup(const char *s) {
    char *d = strdup(s ? s : "");
    if (!d)
        abort();
    return d;
}

const kiln_prop_t *kiln_conf_props(size_t *n) {
    if (n)
        *n = kiln_conf_table_n;
    return kiln_conf_table;
}

static int kiln_conf_find(const char *name) {
    for (unsigned i = 0; i < kiln_conf_table_n; i++)
        if (!strchr(kiln_conf_table[i].name, '*') && !strcmp(kiln_conf_table[i].name, name))
            return (int)i;
    return -1;
}

static int kiln_conf_is_passthrough(const char *name) {
    return (!strncmp(name, "kafka.", 6) && name[6]) || (!strncmp(name, "pg.", 3) && name[3]);
}

static int kiln_conf_is_secret_key(const char *name) {
    int i = kiln_conf_find(name);
    if (i >= 0)
        return (kiln_conf_table[i].scope & KILN_SCOPE_SECRET) != 0;
    return strstr(name, "password") || strstr(name, "secret") || strstr(name, "sasl.") ||
           strstr(name, "key.pem") || strstr(name, "private");
}

kiln_conf_t *kiln_conf_new(void) {
    kiln_conf_t *conf = calloc(1, sizeof(*conf));
    if (!conf)
        abort();
    conf->vals = calloc(kiln_conf_table_n, sizeof(char *));
    if (!conf->vals)
        abort();
    for (unsigned i = 0; i < kiln_conf_table_n; i++)
        conf->vals[i] = kiln_xstrdup(kiln_conf_table[i].def);
    return conf;
}

void kiln_conf_destroy(kiln_conf_t *conf) {
    if (!conf)
        return;
    for (unsigned i = 0; i < kiln_conf_table_n; i++)
        free(conf->vals[i]);
    free(conf->vals);
    for (int i = 0; i < conf->n_pass; i++) {
        free(conf->pass[i].key);
        free(conf->pass[i].val);
    }
    free(conf->pass);
    free(conf);
}

kiln_conf_t *kiln_conf_dup(const kiln_conf_t *src) {
    kiln_conf_t *conf = kiln_conf_new();
    for (unsigned i = 0; i < kiln_conf_table_n; i++) {
        free(conf->vals[i]);
        conf->vals[i] = kiln_xstrdup(src->vals[i]);
    }
    /* values are copied verbatim: an "@file:" value was already expanded */
    conf->cap_pass = conf->n_pass = src->n_pass;
    conf->pass = calloc(src->n_pass ? src->n_pass : 1, sizeof(*conf->pass));
    if (!conf->pass)
        abort();
    for (int i = 0; i < src->n_pass; i++) {
        conf->pass[i].key = kiln_xstrdup(src->pass[i].key);
        conf->pass[i].val = kiln_xstrdup(src->pass[i].val);
    }
    return conf;
}

/* Reads the first line of the file behind an "@file:" value. */
static char *kiln_conf_read_file_value(const char *path, char *errstr, size_t sz) {
    FILE *fp = fopen(path, "r");
    if (!fp) {
        snprintf(errstr, sz, "could not open \"%s\": %s", path, strerror(errno));
        return NULL;
    }
    char buf[4096];
    if (!fgets(buf, sizeof(buf), fp))
        buf[0] = '\0';
    fclose(fp);
    buf[strcspn(buf, "\r\n")] = '\0';
    return kiln_xstrdup(buf);
}

static int kiln_conf_parse_bool(const char *v) {
    if (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes") || !strcasecmp(v, "on"))
        return 1;
    if (!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no") || !strcasecmp(v, "off"))
        return 0;
    return -1;
}

kiln_conf_res_t kiln_conf_set(kiln_conf_t *conf, const char *name, const char *value,
                              char *errstr, size_t sz) {
    char *owned = NULL;
    if (!value)
        value = "";
    if (!strncmp(value, "@file:", 6)) {
        owned = kiln_conf_read_file_value(value + 6, errstr, sz);
        if (!owned)
            return KILN_CONF_INVALID;
        value = owned;
    }
    if (kiln_conf_is_passthrough(name)) {
        for (int i = 0; i < conf->n_pass; i++)
            if (!strcmp(conf->pass[i].key, name)) {
                free(conf->pass[i].val);
                conf->pass[i].val = kiln_xstrdup(value);
                free(owned);
                return KILN_CONF_OK;
            }
        if (conf->n_pass == conf->cap_pass) {
            conf->cap_pass = conf->cap_pass ? conf->cap_pass * 2 : 8;
            conf->pass = realloc(conf->pass, conf->cap_pass * sizeof(*conf->pass));
            if (!conf->pass)
                abort();
        }
        conf->pass[conf->n_pass].key = kiln_xstrdup(name);
        conf->pass[conf->n_pass].val = kiln_xstrdup(value);
        conf->n_pass++;
        free(owned);
        return KILN_CONF_OK;
    }
    int i = kiln_conf_find(name);
    if (i < 0) {
        snprintf(errstr, sz, "unknown configuration property \"%s\"", name);
        free(owned);
        return KILN_CONF_UNKNOWN;
    }
    const kiln_prop_t *p = &kiln_conf_table[i];
    if (p->type == KILN_PROP_INT) {
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end) {
            snprintf(errstr, sz, "invalid value \"%s\" for \"%s\": expected an integer", value, name);
            free(owned);
            return KILN_CONF_INVALID;
        }
        if (v < p->min || v > p->max) {
            snprintf(errstr, sz, "value %lld for \"%s\" is out of range %lld..%lld", v, name,
                     p->min, p->max);
            free(owned);
            return KILN_CONF_INVALID;
        }
    } else if (p->type == KILN_PROP_BOOL && kiln_conf_parse_bool(value) < 0) {
        snprintf(errstr, sz, "invalid value \"%s\" for \"%s\": expected true or false", value, name);
        free(owned);
        return KILN_CONF_INVALID;
    }
    if (!strcmp(name, "log.level") && kiln_log_level_parse(value) < 0) {
        snprintf(errstr, sz, "invalid value \"%s\" for \"log.level\": expected error, warn, info or debug", value);
        free(owned);
        return KILN_CONF_INVALID;
    }
    free(conf->vals[i]);
    conf->vals[i] = kiln_xstrdup(value);
    free(owned);
    return KILN_CONF_OK;
}

kiln_conf_res_t kiln_conf_set_pair(kiln_conf_t *conf, const char *pair, char *errstr, size_t sz) {
    const char *eq = strchr(pair, '=');
    if (!eq || eq == pair) {
        snprintf(errstr, sz, "invalid setting \"%s\": expected key=value", pair);
        return KILN_CONF_INVALID;
    }
    char key[256];
    size_t kl = (size_t)(eq - pair);
    if (kl >= sizeof(key)) {
        snprintf(errstr, sz, "configuration key too long");
        return KILN_CONF_INVALID;
    }
    memcpy(key, pair, kl);
    key[kl] = '\0';
    return kiln_conf_set(conf, key, eq + 1, errstr, sz);
}

static char *kiln_trim(char *s) {
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

int kiln_conf_load_file(kiln_conf_t *conf, const char *path, int must_exist, char *errstr,
                        size_t sz) {
    FILE *fp = fopen(path, "r");
    if (!fp) {
        if (!must_exist && errno == ENOENT)
            return 0;
        snprintf(errstr, sz, "could not open \"%s\": %s", path, strerror(errno));
        return -1;
    }
    char line[4096];
    int lineno = 0;
    while (fgets(line, sizeof(line), fp)) {
        lineno++;
        char *s = kiln_trim(line);
        if (!*s || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(errstr, sz, "%s:%d: expected key = value", path, lineno);
            fclose(fp);
            return -1;
        }
        *eq = '\0';
        char *k = kiln_trim(s), *v = kiln_trim(eq + 1);
        char e2[512];
        if (kiln_conf_set(conf, k, v, e2, sizeof(e2)) != KILN_CONF_OK) {
            snprintf(errstr, sz, "%s:%d: %s", path, lineno, e2);
            fclose(fp);
            return -1;
        }
    }
    fclose(fp);
    return 0;
}

/* KILN_WORKER_MAX_BATCH <- worker.max_batch */
static void kiln_conf_env_name(const char *name, char *out, size_t sz) {
    size_t j = snprintf(out, sz, "KILN_");
    for (const char *c = name; *c && j + 1 < sz; c++)
        out[j++] = (*c == '.') ? '_' : (char)toupper((unsigned char)*c);
    out[j] = '\0';
}

int kiln_conf_load_env(kiln_conf_t *conf, char *errstr, size_t sz) {
    char env[256];
    for (unsigned i = 0; i < kiln_conf_table_n; i++) {
        if (strchr(kiln_conf_table[i].name, '*'))
            continue;
        kiln_conf_env_name(kiln_conf_table[i].name, env, sizeof(env));
        const char *v = getenv(env);
        if (v) {
            char e2[512];
            if (kiln_conf_set(conf, kiln_conf_table[i].name, v, e2, sizeof(e2)) != KILN_CONF_OK) {
                snprintf(errstr, sz, "environment %s: %s", env, e2);
                return -1;
            }
        }
    }
    /* common pass-through secrets */
    static const char *pass_env[][2] = {{"KILN_PG_PASSWORD", "pg.password"},
                                        {"KILN_KAFKA_SASL_PASSWORD", "kafka.sasl.password"},
                                        {"KILN_KAFKA_SASL_USERNAME", "kafka.sasl.username"}};
    for (unsigned i = 0; i < sizeof(pass_env) / sizeof(pass_env[0]); i++) {
        const char *v = getenv(pass_env[i][0]);
        if (v)
            kiln_conf_set(conf, pass_env[i][1], v, errstr, sz);
    }
    return 0;
}

int kiln_conf_load_all(kiln_conf_t *conf, const char *conf_file, char **sets, int n_sets,
                       char *errstr, size_t sz) {
    /* stack.dir may itself come from env or --set: resolve it first */
    const char *sd = getenv("KILN_STACK_DIR");
    if (sd)
        kiln_conf_set(conf, "stack.dir", sd, errstr, sz);
    for (int i = 0; i < n_sets; i++)
        if (!strncmp(sets[i], "stack.dir=", 10))
            kiln_conf_set_pair(conf, sets[i], errstr, sz);
    char *stackconf = kiln_conf_stack_path(conf, "stack.conf");
    int r = kiln_conf_load_file(conf, stackconf, 0, errstr, sz);
    free(stackconf);
    if (r)
        return -1;
    if (conf_file) {
        if (kiln_conf_load_file(conf, conf_file, 1, errstr, sz))
            return -1;
    } else if (kiln_conf_load_file(conf, "kiln.conf", 0, errstr, sz))
        return -1;
    if (kiln_conf_load_env(conf, errstr, sz))
        return -1;
    for (int i = 0; i < n_sets; i++)
        if (kiln_conf_set_pair(conf, sets[i], errstr, sz) != KILN_CONF_OK)
            return -1;
    return 0;
}

const char *kiln_conf_get(const kiln_conf_t *conf, const char *name) {
    if (kiln_conf_is_passthrough(name)) {
        for (int i = 0; i < conf->n_pass; i++)
            if (!strcmp(conf->pass[i].key, name))
                return conf->pass[i].val;
        return "";
    }
    int i = kiln_conf_find(name);
    return i < 0 ? "" : conf->vals[i];
}

long long kiln_conf_get_int(const kiln_conf_t *conf, const char *name) {
    return strtoll(kiln_conf_get(conf, name), NULL, 10);
}

int kiln_conf_get_bool(const kiln_conf_t *conf, const char *name) {
    return kiln_conf_parse_bool(kiln_conf_get(conf, name)) == 1;
}

int kiln_conf_foreach_passthrough(const kiln_conf_t *conf, const char *prefix,
                                  int (*cb)(const char *, const char *, void *), void *opaque) {
    size_t pl = strlen(prefix);
    for (int i = 0; i < conf->n_pass; i++)
        if (!strncmp(conf->pass[i].key, prefix, pl)) {
            int r = cb(conf->pass[i].key + pl, conf->pass[i].val, opaque);
            if (r)
                return r;
        }
    return 0;
}

void kiln_conf_dump(const kiln_conf_t *conf, FILE *fp) {
    for (unsigned i = 0; i < kiln_conf_table_n; i++) {
        if (strchr(kiln_conf_table[i].name, '*'))
            continue;
        int secret = (kiln_conf_table[i].scope & KILN_SCOPE_SECRET) && conf->vals[i][0];
        fprintf(fp, "%s = %s\n", kiln_conf_table[i].name, secret ? "********" : conf->vals[i]);
    }
    for (int i = 0; i < conf->n_pass; i++)
        fprintf(fp, "%s = %s\n", conf->pass[i].key,
                kiln_conf_is_secret_key(conf->pass[i].key) ? "********" : conf->pass[i].val);
}

static const char *kiln_prop_type_name(kiln_prop_type_t t) {
    return t == KILN_PROP_INT ? "int" : t == KILN_PROP_BOOL ? "bool" : "string";
}

void kiln_conf_help(FILE *fp, int scope_mask) {
    fprintf(fp, "Configuration (kiln.conf, KILN_<KEY> environment, or --set key=value):\n");
    for (unsigned i = 0; i < kiln_conf_table_n; i++) {
        const kiln_prop_t *p = &kiln_conf_table[i];
        if (!(p->scope & (scope_mask | KILN_SCOPE_ALL)))
            continue;
        fprintf(fp, "  %-32s %s (default \"%s\")\n      %s\n", p->name, kiln_prop_type_name(p->type),
                p->def, p->doc);
    }
}

void kiln_conf_markdown(FILE *fp) {
    fprintf(fp, "# kiln configuration reference\n\n"
                "Generated by `kiln conf --markdown` from the property table in "
                "lib/conf_props.c; do not edit by hand.\n\n"
                "Sources, later wins: defaults, `<stack.dir>/stack.conf` (written by `kiln up`), "
                "`kiln.conf` (or `--conf FILE`), `KILN_<KEY>` environment variables "
                "(`worker.max_batch` -> `KILN_WORKER_MAX_BATCH`), `--set key=value`. A value "
                "`@file:PATH` is read from PATH.\n\n"
                "| property | type | default | range | description |\n"
                "|---|---|---|---|---|\n");
    for (unsigned i = 0; i < kiln_conf_table_n; i++) {
        const kiln_prop_t *p = &kiln_conf_table[i];
        char range[64] = "";
        if (p->type == KILN_PROP_INT)
            snprintf(range, sizeof(range), "%lld..%lld", p->min, p->max);
        fprintf(fp, "| `%s` | %s | `%s` | %s | %s%s |\n", p->name, kiln_prop_type_name(p->type),
                p->def, range, p->doc, (p->scope & KILN_SCOPE_SECRET) ? " (secret: masked)" : "");
    }
}

char *kiln_conf_stack_path(const kiln_conf_t *conf, const char *rel) {
    const char *dir = kiln_conf_get(conf, "stack.dir");
    size_t n = strlen(dir) + strlen(rel) + 2;
    char *p = malloc(n);
    if (!p)
        abort();
    snprintf(p, n, "%s/%s", dir, rel);
    return p;
}
