/*
 * kiln/log.h - leveled logging with a pluggable sink.
 *
 * KILN_LOG_ERROR/WARN/INFO/DEBUG format like printf. By default lines go to
 * stderr as "<iso time> <level> <component>: <message>". kiln_log_set()
 * redirects them (the callback may be called from any thread).
 */
#ifndef KILN_LOG_H
#define KILN_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { KILN_LOG_LVL_ERROR = 0, KILN_LOG_LVL_WARN, KILN_LOG_LVL_INFO,
               KILN_LOG_LVL_DEBUG } kiln_log_level_t;

typedef void (*kiln_log_cb_t)(kiln_log_level_t lvl, const char *component,
                              const char *msg, void *opaque);

/** Redirects log lines to \p cb (NULL restores stderr). */
void kiln_log_set(kiln_log_cb_t cb, void *opaque);
/** Lines above \p lvl are dropped. Default INFO. */
void kiln_log_set_level(kiln_log_level_t lvl);
/** Parses "error|warn|info|debug"; returns -1 when unknown. */
int kiln_log_level_parse(const char *s);
/** Sets the component name printed on each line (e.g. "worker w1"). */
void kiln_log_set_component(const char *component);

void kiln_log(kiln_log_level_t lvl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define KILN_LOG_ERROR(...) kiln_log(KILN_LOG_LVL_ERROR, __VA_ARGS__)
#define KILN_LOG_WARN(...) kiln_log(KILN_LOG_LVL_WARN, __VA_ARGS__)
#define KILN_LOG_INFO(...) kiln_log(KILN_LOG_LVL_INFO, __VA_ARGS__)
#define KILN_LOG_DEBUG(...) kiln_log(KILN_LOG_LVL_DEBUG, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
