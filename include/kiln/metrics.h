/*
 * kiln/metrics.h - a small thread-safe metrics registry rendered in the
 * Prometheus text exposition format (version 0.0.4), and an HTTP server
 * (libmicrohttpd) that serves it on GET /metrics.
 *
 * A registry holds metric families: counters, gauges and histograms with
 * fixed buckets, each with a fixed list of label names. A family has one
 * child (series) per distinct tuple of label values; children are created on
 * first use. Every kiln daemon owns one registry and serves it:
 *
 *   kiln_metrics_t *reg = kiln_metrics_new();
 *   kiln_metric_t *lag = kiln_metrics_gauge(reg, "kiln_consumer_lag",
 *                                           "Messages not yet committed.", "topic,partition");
 *   kiln_metric_set(lag, KILN_LABELS("kiln.transcribe.jobs", "3"), 42);
 *   int port = kiln_metrics_server_start(reg, "127.0.0.1", 0, errstr, sizeof(errstr));
 *   ...
 *   kiln_metrics_destroy(reg);            (stops the server too)
 *
 * Names and label names are checked against the Prometheus grammar when a
 * family is registered; label values may hold any bytes and are escaped on
 * output (backslash, double quote, newline).
 *
 * Threading: every function may be called from any thread. Updates take the
 * registry's (recursive) lock; kiln_metrics_lock()/unlock() group several
 * updates so that a concurrent scrape sees all of them or none.
 *
 * The metric names kiln's daemons export are listed in docs/monitoring.md.
 */
#ifndef KILN_METRICS_H
#define KILN_METRICS_H

#include <stddef.h>

#include "kiln/conf.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_metrics_s kiln_metrics_t; /* a registry */
typedef struct kiln_metric_s kiln_metric_t;   /* one metric family */

typedef enum {
    KILN_METRIC_COUNTER,
    KILN_METRIC_GAUGE,
    KILN_METRIC_HISTOGRAM,
} kiln_metric_type_t;

#define KILN_METRICS_MAX_LABELS 8
#define KILN_METRICS_MAX_BUCKETS 64

/* Label values for one call, in the order of the family's label names:
 * kiln_metric_set(m, KILN_LABELS("transcribe", "3"), v). C only (compound
 * literal); pass NULL for a family without labels. */
#define KILN_LABELS(...) ((const char *const[]){__VA_ARGS__})

/** @returns a new, empty registry. Never NULL (aborts when out of memory). */
kiln_metrics_t *kiln_metrics_new(void);

/** Stops the registry's HTTP server (if started) and frees the registry and
 *  every family in it; family pointers become invalid. NULL is fine. */
void kiln_metrics_destroy(kiln_metrics_t *reg);

/**
 * Registers a family. \p labels is a comma-separated list of label names
 * ("topic,partition"), or NULL / "" for none. A family without labels has its
 * one series from the start (value 0).
 *
 * Registering a name again returns the existing family when type and labels
 * match (so independent modules may share a family), NULL otherwise.
 *
 * @returns the family (owned by the registry), or NULL when a name is not
 *          valid Prometheus syntax, there are more than
 *          KILN_METRICS_MAX_LABELS labels, or the name clashes.
 */
kiln_metric_t *kiln_metrics_counter(kiln_metrics_t *reg, const char *name, const char *help,
                                    const char *labels);
kiln_metric_t *kiln_metrics_gauge(kiln_metrics_t *reg, const char *name, const char *help,
                                  const char *labels);

/**
 * Registers a histogram with the upper bounds \p bounds[0..n_bounds-1]
 * (strictly increasing; a +Inf bucket is always added). The label name "le"
 * is reserved.
 * @returns as kiln_metrics_counter(); NULL also for bad bounds.
 */
kiln_metric_t *kiln_metrics_histogram(kiln_metrics_t *reg, const char *name, const char *help,
                                      const char *labels, const double *bounds, int n_bounds);

/**
 * Adds \p v to the series \p lv of a counter or gauge (a negative \p v on a
 * counter is ignored: counters never go down). \p lv holds one value per
 * label name (NULL when the family has none); strings are copied.
 */
void kiln_metric_add(kiln_metric_t *m, const char *const *lv, double v);

/**
 * Sets the series \p lv of a gauge to \p v. On a counter it mirrors a
 * monotonic total kept elsewhere (e.g. a stats struct); use it only that way.
 */
void kiln_metric_set(kiln_metric_t *m, const char *const *lv, double v);

/** Records one observation \p v in the series \p lv of a histogram. */
void kiln_metric_observe(kiln_metric_t *m, const char *const *lv, double v);

/**
 * @returns the value of series \p lv (for a histogram: its observation
 *          count), or NaN when the series does not exist.
 */
double kiln_metric_get(kiln_metric_t *m, const char *const *lv);

/** Removes the series \p lv (a partition this process no longer owns). */
void kiln_metric_remove(kiln_metric_t *m, const char *const *lv);

/** Removes every series of a labelled family (an unlabelled one is reset to 0). */
void kiln_metric_clear(kiln_metric_t *m);

/**
 * Takes / releases the registry lock (recursive) so that a group of updates,
 * e.g. kiln_metric_clear() followed by the new per-partition values, is seen
 * by a scrape all at once.
 */
void kiln_metrics_lock(kiln_metrics_t *reg);
void kiln_metrics_unlock(kiln_metrics_t *reg);

/**
 * Registers \p cb, called at the start of every render (every scrape) on the
 * rendering thread, before the registry lock is taken; it typically samples a
 * device and sets gauges. At most 8 collectors per registry.
 * @returns 0, or -1 when the table is full.
 */
int kiln_metrics_add_collector(kiln_metrics_t *reg, void (*cb)(kiln_metrics_t *reg, void *opaque),
                               void *opaque);

/**
 * Renders every family in registration order, in the Prometheus text format
 * (# HELP, # TYPE, one line per series; histograms as cumulative _bucket
 * series with "le", then _sum and _count).
 * @returns a malloc'ed NUL-terminated string (the caller frees it) and its
 *          length in *len (optional).
 */
char *kiln_metrics_render(kiln_metrics_t *reg, size_t *len);

/* ---- GPU ---- */

/**
 * Registers kiln_gpu_utilization{gpu} (0..1), kiln_gpu_memory_used_bytes{gpu}
 * and kiln_gpu_memory_total_bytes{gpu}, sampled through NVML at every scrape.
 * NVML is loaded with dlopen("libnvidia-ml.so.1") (kiln does not link it);
 * without it, or without GPUs, one series gpu="none" with value 0 is
 * exported. The environment variable KILN_NVML_LIBRARY overrides the library
 * path ("none" disables NVML).
 * @returns the number of GPUs found (0: gpu="none").
 */
int kiln_metrics_gpu_register(kiln_metrics_t *reg);

/* ---- HTTP ---- */

/**
 * Starts serving \p reg over HTTP on \p bind_addr (an IPv4 or IPv6 literal or
 * host name; NULL or "" means 127.0.0.1) and \p port (0: any free port), in a
 * thread of its own:
 *   GET /metrics   the rendered registry (text/plain; version=0.0.4)
 *   GET /healthz   "ok"
 * Other paths answer 404, other methods 405. One server per registry.
 * @returns the bound port, or -1 with a message in \p errstr (address in use,
 *          a server already running for \p reg, ...).
 */
int kiln_metrics_server_start(kiln_metrics_t *reg, const char *bind_addr, int port,
                              char *errstr, size_t errstr_size);

/**
 * Starts the server as configured for a daemon: <prefix>.metrics_port (-1:
 * off, 0: a free port) on <prefix>.metrics_addr, and writes the bound port to
 * <stack.dir>/run/<name>.metrics for the embedded stack's Prometheus targets.
 * @returns 0 (also when off), or -1 with errstr. *port_file gets the
 * malloc'ed path of the port file, or NULL when none was written.
 */
int kiln_metrics_serve_conf(kiln_metrics_t *reg, const kiln_conf_t *conf, const char *prefix,
                            const char *name, char **port_file, char *errstr,
                            size_t errstr_size);

/** Stops the server of \p reg (waits for its thread); a no-op when none runs. */
void kiln_metrics_server_stop(kiln_metrics_t *reg);

/** @returns the port \p reg is served on, or 0 when no server runs. */
int kiln_metrics_server_port(const kiln_metrics_t *reg);

#ifdef __cplusplus
}
#endif
#endif
