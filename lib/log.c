/*
 * lib/log.c - implementation of kiln/log.h.
 */
#include "kiln/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static kiln_log_cb_t kiln_log_cb;
static void *kiln_log_opaque;
static kiln_log_level_t kiln_log_level = KILN_LOG_LVL_INFO;
static char kiln_log_component[64] = "kiln";
static pthread_mutex_t kiln_log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *kiln_log_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void kiln_log_set(kiln_log_cb_t cb, void *opaque) {
    kiln_log_cb = cb;
    kiln_log_opaque = opaque;
}

void kiln_log_set_level(kiln_log_level_t lvl) { kiln_log_level = lvl; }

int kiln_log_level_parse(const char *s) {
    static const char *names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, names[i]))
            return i;
    return -1;
}

void kiln_log_set_component(const char *component) {
    snprintf(kiln_log_component, sizeof(kiln_log_component), "%s", component);
}

void kiln_log(kiln_log_level_t lvl, const char *fmt, ...) {
    if (lvl > kiln_log_level)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (kiln_log_cb) {
        kiln_log_cb(lvl, kiln_log_component, msg, kiln_log_opaque);
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char tbuf[32];
    strftime(tbuf, sizeof(tbuf), "%Y-%m-%dT%H:%M:%S", &tm);
    pthread_mutex_lock(&kiln_log_lock);
    fprintf(stderr, "%s.%03ldZ %s %s: %s\n", tbuf, ts.tv_nsec / 1000000,
            kiln_log_names[lvl], kiln_log_component, msg);
    pthread_mutex_unlock(&kiln_log_lock);
}
