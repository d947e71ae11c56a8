/*
 * workers/engine.c - the engine registry and the kiln_engine_t wrapper.
 *
 * To add an engine: define a `const kiln_engine_ops_t kiln_engine_<name>_ops`
 * in its own file and add it to kiln_engines[] below.
 */
#include "kiln/engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const kiln_engine_ops_t kiln_engine_null_ops;
extern const kiln_engine_ops_t kiln_engine_whisper_ops;
extern const kiln_engine_ops_t kiln_engine_pace_ops;
extern const kiln_engine_ops_t kiln_engine_piper_ops;

static const kiln_engine_ops_t *const kiln_engines[] = {
    &kiln_engine_null_ops,
    &kiln_engine_whisper_ops,
    &kiln_engine_pace_ops,
    &kiln_engine_piper_ops,
};
#define KILN_N_ENGINES (sizeof(kiln_engines) / sizeof(kiln_engines[0]))

struct kiln_engine_s {
    const kiln_engine_ops_t *ops;
    void *state;
};

kiln_engine_t *kiln_engine_new(const char *name, const kiln_conf_t *conf, char *errstr,
                               size_t errstr_size) {
    for (unsigned i = 0; i < KILN_N_ENGINES; i++) {
        if (strcmp(kiln_engines[i]->name, name))
            continue;
        void *state = kiln_engines[i]->load(conf, errstr, errstr_size);
        if (!state)
            return NULL;
        kiln_engine_t *eng = calloc(1, sizeof(*eng));
        if (!eng) {
            kiln_engines[i]->destroy(state);
            snprintf(errstr, errstr_size, "out of memory");
            return NULL;
        }
        eng->ops = kiln_engines[i];
        eng->state = state;
        return eng;
    }
    char list[256];
    kiln_engine_list(list, sizeof(list));
    snprintf(errstr, errstr_size, "unknown engine \"%s\" (known: %s)", name, list);
    return NULL;
}

kiln_err_t kiln_engine_run_batch(kiln_engine_t *eng, const kiln_asr_request_t *reqs, int n,
                                 kiln_transcript_t *out) {
    if (!eng->ops->run_batch)
        return KILN_ERR__UNSUPPORTED;
    return eng->ops->run_batch(eng->state, reqs, n, out);
}

kiln_err_t kiln_engine_run_speak_batch(kiln_engine_t *eng, const kiln_speak_request_t *reqs,
                                       int n, kiln_speech_t *out) {
    if (!eng->ops->run_speak_batch)
        return KILN_ERR__UNSUPPORTED;
    return eng->ops->run_speak_batch(eng->state, reqs, n, out);
}

const char *kiln_engine_name(const kiln_engine_t *eng) { return eng->ops->name; }

const char *kiln_engine_modality(const kiln_engine_t *eng) {
    return eng->ops->modality ? eng->ops->modality : "transcribe";
}

void kiln_engine_destroy(kiln_engine_t *eng) {
    if (!eng)
        return;
    eng->ops->destroy(eng->state);
    free(eng);
}

void kiln_engine_list(char *out, size_t out_size) {
    size_t j = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < KILN_N_ENGINES && j < out_size; i++)
        j += snprintf(out + j, out_size - j, "%s%s", i ? ", " : "", kiln_engines[i]->name);
}

void kiln_transcript_clear(kiln_transcript_t *t) {
    if (!t)
        return;
    free(t->text);
    for (int i = 0; i < t->n_segments; i++)
        free(t->segments[i].text);
    free(t->segments);
    free(t->info_json);
    memset(t, 0, sizeof(*t));
}

void kiln_speech_clear(kiln_speech_t *s) {
    if (!s)
        return;
    free(s->pcm);
    free(s->timings_json);
    free(s->vtt);
    free(s->info_json);
    memset(s, 0, sizeof(*s));
}
