/*
 * workers/engine_null.c - the "null" engine: no model runs.
 *
 * It reports what the decoder really measured (duration, loudness) and says
 * plainly, in its text and its info JSON, that no model ran. It is kept for
 * overhead benchmarks (`kiln bench pipeline`) and pipeline tests.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/engine.h"

static int kiln_null_token;

static void *kiln_null_load(const kiln_conf_t *conf, char *errstr, size_t errstr_size) {
    (void)conf;
    (void)errstr;
    (void)errstr_size;
    return &kiln_null_token;
}

static kiln_err_t kiln_null_run_batch(void *state, const kiln_asr_request_t *reqs, int n,
                                      kiln_transcript_t *out) {
    (void)state;
    for (int i = 0; i < n; i++) {
        kiln_transcript_t *t = &out[i];
        double dur = reqs[i].n_samples / 16000.0;
        t->err = KILN_OK;
        t->duration_s = dur;
        t->model_ran = 0;
        t->text = strdup("");
        char info[256];
        snprintf(info, sizeof(info),
                 "{\"engine\":\"null\",\"model_ran\":false,\"note\":\"no model ran: null engine\","
                 "\"duration_s\":%.3f,\"rms_dbfs\":%.2f,\"peak_dbfs\":%.2f}",
                 dur, reqs[i].rms_dbfs, reqs[i].peak_dbfs);
        t->info_json = strdup(info);
        if (!t->text || !t->info_json)
            return KILN_ERR__NOMEM;
    }
    return KILN_OK;
}

static void kiln_null_destroy(void *state) { (void)state; }

const kiln_engine_ops_t kiln_engine_null_ops = {
    .name = "null",
    .description = "decodes and measures audio; runs no model",
    .load = kiln_null_load,
    .run_batch = kiln_null_run_batch,
    .destroy = kiln_null_destroy,
};
