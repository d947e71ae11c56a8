/*
 * kiln/conf.h - configuration: one property table for every kiln process.
 *
 * In the manner of librdkafka's rd_kafka_conf_set(): every known property
 * sits in one table (name, type, default, range, doc) that also drives
 * `--help` and the generated CONFIGURATION.md. Two prefixes pass through
 * untouched: `kafka.X` becomes librdkafka property X, `pg.X` becomes libpq
 * keyword X.
 *
 * Sources, later wins: built-in defaults, <stack.dir>/stack.conf (written by
 * `kiln up`), a kiln.conf file, KILN_* environment variables (KILN_ + the
 * property name upper-cased with '.' -> '_'), then `--set key=value`.
 *
 * A value written "@file:PATH" is read from PATH (first line), so secrets can
 * live in files; values of properties marked secret are masked in dumps.
 *
 * A kiln_conf_t is not thread-safe while it is being changed; once set up it
 * may be read from any thread.
 */
#ifndef KILN_CONF_H
#define KILN_CONF_H

#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_conf_s kiln_conf_t;

typedef enum {
    KILN_CONF_UNKNOWN = -2, /* no such property */
    KILN_CONF_INVALID = -1, /* value rejected (type or range) */
    KILN_CONF_OK = 0,
} kiln_conf_res_t;

typedef enum { KILN_PROP_STR, KILN_PROP_INT, KILN_PROP_BOOL } kiln_prop_type_t;

/* Which commands a property matters to (bit set), for `--help`. */
#define KILN_SCOPE_ALL 0x01
#define KILN_SCOPE_WORKER 0x02
#define KILN_SCOPE_SCHED 0x04
#define KILN_SCOPE_PRODUCER 0x08
#define KILN_SCOPE_STACK 0x10
#define KILN_SCOPE_SECRET 0x100 /* masked in dumps, logs and status */

typedef struct kiln_prop_s {
    const char *name;
    kiln_prop_type_t type;
    const char *def;
    long long min, max; /* KILN_PROP_INT only */
    int scope;
    const char *doc;
} kiln_prop_t;

/** @returns a new configuration holding the defaults. Never NULL. */
kiln_conf_t *kiln_conf_new(void);
/** Frees \p conf; NULL is fine. */
void kiln_conf_destroy(kiln_conf_t *conf);
/** @returns a deep copy of \p conf. */
kiln_conf_t *kiln_conf_dup(const kiln_conf_t *conf);

/**
 * Sets property \p name to \p value.
 * @returns KILN_CONF_OK, or INVALID/UNKNOWN with a message in \p errstr.
 */
kiln_conf_res_t kiln_conf_set(kiln_conf_t *conf, const char *name,
                              const char *value, char *errstr, size_t errstr_size);

/** Sets "key=value"; @returns as kiln_conf_set(). */
kiln_conf_res_t kiln_conf_set_pair(kiln_conf_t *conf, const char *pair,
                                   char *errstr, size_t errstr_size);

/**
 * Reads "key = value" lines from \p path ('#' starts a comment).
 * @returns 0, or -1 with the file name and line in \p errstr. A missing file
 * is an error only when \p must_exist.
 */
int kiln_conf_load_file(kiln_conf_t *conf, const char *path, int must_exist,
                        char *errstr, size_t errstr_size);

/** Applies KILN_* environment variables. @returns 0 or -1 with \p errstr. */
int kiln_conf_load_env(kiln_conf_t *conf, char *errstr, size_t errstr_size);

/**
 * The standard loading sequence used by every command: defaults,
 * <stack.dir>/stack.conf, \p conf_file (or ./kiln.conf when it exists and
 * \p conf_file is NULL), environment, then the \p n_sets "key=value" pairs.
 * @returns 0, or -1 with \p errstr.
 */
int kiln_conf_load_all(kiln_conf_t *conf, const char *conf_file,
                       char **sets, int n_sets, char *errstr, size_t errstr_size);

/** @returns the value of \p name (never NULL for known names; "" if unset). */
const char *kiln_conf_get(const kiln_conf_t *conf, const char *name);
long long kiln_conf_get_int(const kiln_conf_t *conf, const char *name);
int kiln_conf_get_bool(const kiln_conf_t *conf, const char *name);

/** Calls \p cb for each pass-through pair with \p prefix ("kafka." or "pg."),
 *  the prefix stripped. Stops and returns the first non-zero result. */
int kiln_conf_foreach_passthrough(const kiln_conf_t *conf, const char *prefix,
                                  int (*cb)(const char *key, const char *value,
                                            void *opaque),
                                  void *opaque);

/** Writes every property as "key = value" (secrets masked) to \p fp. */
void kiln_conf_dump(const kiln_conf_t *conf, FILE *fp);

/** Prints the properties whose scope intersects \p scope_mask to \p fp. */
void kiln_conf_help(FILE *fp, int scope_mask);

/** Writes the full reference as Markdown (CONFIGURATION.md). */
void kiln_conf_markdown(FILE *fp);

/** @returns the property table and its size. */
const kiln_prop_t *kiln_conf_props(size_t *n);

/** @returns a path under the stack directory: <stack.dir>/<rel>, malloc'ed. */
char *kiln_conf_stack_path(const kiln_conf_t *conf, const char *rel);

#ifdef __cplusplus
}
#endif
#endif
