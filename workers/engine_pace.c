/*
 * workers/engine_pace.c - the "pace" engine: like "null" (no model runs,
 * audio is decoded and measured) but it spends worker.pace_us_per_unit
 * microseconds of wall time per audio second, for the whole batch at once.
 *
 * It stands in for a model of known speed in tests and benchmarks of the
 * pipeline and the scheduler (fast and slow workers, crashes mid-batch).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kiln/engine.h"

typedef struct {
    long long us_per_unit;
} kiln_pace_t;

static void *kiln_pace_load(const kiln_conf_t *conf, char *errstr, size_t errstr_size) {
    kiln_pace_t *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    p->us_per_unit = kiln_conf_get_int(conf, "worker.pace_us_per_unit");
    return p;
}

static kiln_err_t kiln_pace_run_batch(void *state, const kiln_asr_request_t *reqs, int n,
                                      kiln_transcript_t *out) {
    kiln_pace_t *p = state;
    double units = 0;
    for (int i = 0; i < n; i++) {
        kiln_transcript_t *t = &out[i];
        double dur = reqs[i].n_samples / 16000.0;
        units += dur;
        t->duration_s = dur;
        t->text = strdup("");
        char info[160];
        snprintf(info, sizeof(info),
                 "{\"engine\":\"pace\",\"model_ran\":false,\"note\":\"no model ran: pace engine\","
                 "\"us_per_unit\":%lld}", p->us_per_unit);
        t->info_json = strdup(info);
        if (!t->text || !t->info_json)
            return KILN_ERR__NOMEM;
    }
    long long us = (long long)(units * p->us_per_unit);
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts))
        ;
    return KILN_OK;
}

static void kiln_pace_destroy(void *state) { free(state); }

const kiln_engine_ops_t kiln_engine_pace_ops = {
    .name = "pace",
    .description = "decodes and measures audio, then waits worker.pace_us_per_unit per audio second",
    .load = kiln_pace_load,
    .run_batch = kiln_pace_run_batch,
    .destroy = kiln_pace_destroy,
};
