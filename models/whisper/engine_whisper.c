/*
 * models/whisper/engine_whisper.c - the "whisper" engine: the Whisper model
 * of kiln/whisper.h behind the kiln_engine_ops_t contract (kiln/engine.h),
 * used by the worker and by `kiln transcribe`.
 *
 * load()      reads the model from worker.model (a CTranslate2 directory or
 *             a ggml file; empty: var/models/whisper-tiny.en), the batch size
 *             from worker.max_batch, and from the environment the CPU thread
 *             count (KILN_WHISPER_THREADS, default: every CPU) and the
 *             decoding preset (KILN_WHISPER_PRESET: "default", faster-whisper's
 *             defaults with beam 5 and fallback, or "greedy", the golden
 *             files' settings).
 * run_batch() transcribes all requests of the batch together; requests that
 *             ask for different languages or beam sizes run as separate
 *             groups (a request's beam_size 0 takes the engine's). A request
 *             that fails gets its own error; the batch fails only when
 *             memory runs out.
 * kiln_whisper_engine_params() lets `kiln transcribe` change the decoding
 * parameters after load().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/engine.h"
#include "kiln/log.h"
#include "kiln/whisper.h"

#define KILN_WHISPER_DEFAULT_MODEL "var/models/whisper-tiny.en"

typedef struct kiln_whisper_engine_s {
    kiln_whisper_model_t *model;
    kiln_whisper_params_t params;
} kiln_whisper_engine_t;

static void *kiln_whisper_engine_load(const kiln_conf_t *conf, char *errstr,
                                      size_t errstr_size) {
    const char *path = kiln_conf_get(conf, "worker.model");
    if (!path || !*path)
        path = KILN_WHISPER_DEFAULT_MODEL;
    kiln_whisper_engine_t *we = calloc(1, sizeof(*we));
    if (!we) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    const char *preset = getenv("KILN_WHISPER_PRESET");
    we->params = preset && !strcmp(preset, "greedy") ? kiln_whisper_greedy_params()
                                                     : kiln_whisper_default_params();
    long long mb = kiln_conf_get_int(conf, "worker.max_batch");
    if (mb > 0)
        we->params.max_batch = (int)(mb > 256 ? 256 : mb);
    const char *th = getenv("KILN_WHISPER_THREADS");
    if (th && atoi(th) > 0)
        we->params.n_threads = atoi(th);
    we->model = kiln_whisper_model_load(path, errstr, errstr_size);
    if (!we->model) {
        free(we);
        return NULL;
    }
    const char *be = kiln_conf_get(conf, "whisper.backend");
    if (be && *be && strcmp(be, "cpu") &&
        kiln_whisper_model_set_backend(we->model, be, kiln_conf_get(conf, "whisper.precision"),
                                       errstr, errstr_size) != KILN_OK) {
        kiln_whisper_model_destroy(we->model);
        free(we);
        return NULL;
    }
    const kiln_whisper_hparams_t *hp = kiln_whisper_model_hparams(we->model);
    KILN_LOG_INFO("whisper engine: %s (%s, %d+%d layers, width %d, %d mels), max batch %d, "
                  "backend %s", path, kiln_whisper_model_format(we->model), hp->n_audio_layer,
                  hp->n_text_layer, hp->n_audio_state, hp->n_mels, we->params.max_batch,
                  kiln_whisper_model_backend(we->model));
    return we;
}

/* Moves a whisper result into the engine's transcript type. */
kiln_whisper_params_t *kiln_whisper_engine_params(void *state) {
    return state ? &((kiln_whisper_engine_t *)state)->params : NULL;
}

static kiln_err_t kiln_whisper_engine_fill_(kiln_whisper_result_t *r,
                                            const kiln_asr_request_t *req, int beam,
                                            kiln_transcript_t *t) {
    t->err = r->err;
    t->duration_s = req->n_samples / 16000.0;
    t->model_ran = 1;
    snprintf(t->language, sizeof(t->language), "%s", r->language);
    if (r->err != KILN_OK) {
        snprintf(t->error, sizeof(t->error), "%s", r->error);
        return KILN_OK;
    }
    t->text = r->text;
    r->text = NULL;
    if (r->n_segments > 0) {
        t->segments = calloc((size_t)r->n_segments, sizeof(*t->segments));
        if (!t->segments)
            return KILN_ERR__NOMEM;
        for (int s = 0; s < r->n_segments; s++) {
            kiln_whisper_segment_t *ws = &r->segments[s];
            kiln_segment_t *sg = &t->segments[s];
            const char *txt = ws->text;
            while (*txt == ' ')
                txt++;
            /* the model may place the last timestamp past the end of the audio */
            double end = ws->end < t->duration_s ? ws->end : t->duration_s;
            double start = ws->start < end ? ws->start : end;
            sg->start_ms = (int64_t)(start * 1000.0 + 0.5);
            sg->end_ms = (int64_t)(end * 1000.0 + 0.5);
            sg->text = strdup(txt);
            sg->avg_logprob = ws->avg_logprob;
            sg->no_speech_prob = ws->no_speech_prob;
            if (!sg->text)
                return KILN_ERR__NOMEM;
            t->n_segments++;
        }
    }
    char info[256];
    snprintf(info, sizeof(info),
             "{\"engine\":\"whisper\",\"model_ran\":true,\"beam\":%d,\"windows\":%d,"
             "\"tokens\":%d}", beam, r->n_windows, r->n_tokens);
    t->info_json = strdup(info);
    return t->info_json ? KILN_OK : KILN_ERR__NOMEM;
}

static kiln_err_t kiln_whisper_engine_run(void *state, const kiln_asr_request_t *reqs, int n,
                                          kiln_transcript_t *out) {
    kiln_whisper_engine_t *we = state;
    const float **pcm = calloc((size_t)n, sizeof(*pcm));
    size_t *ns = calloc((size_t)n, sizeof(*ns));
    int *map = calloc((size_t)n, sizeof(*map));
    char *done = calloc((size_t)n, 1);
    kiln_whisper_result_t *res = calloc((size_t)n, sizeof(*res));
    kiln_err_t err = KILN_OK;
    if (!pcm || !ns || !map || !done || !res) {
        err = KILN_ERR__NOMEM;
        goto out;
    }
    /* one group per requested language (NULL and "" detect) and beam size */
    for (int first = 0; first < n; first++) {
        if (done[first])
            continue;
        const char *lang = reqs[first].language && *reqs[first].language
                               ? reqs[first].language : "";
        int beam = reqs[first].beam_size > 0 ? reqs[first].beam_size : we->params.beam_size;
        int k = 0;
        for (int i = first; i < n; i++) {
            const char *li = reqs[i].language && *reqs[i].language ? reqs[i].language : "";
            int bi = reqs[i].beam_size > 0 ? reqs[i].beam_size : we->params.beam_size;
            if (done[i] || strcmp(li, lang) || bi != beam)
                continue;
            done[i] = 1;
            pcm[k] = reqs[i].pcm;
            ns[k] = reqs[i].n_samples;
            map[k++] = i;
        }
        kiln_whisper_params_t p = we->params;
        p.language = *lang ? lang : NULL;
        p.beam_size = beam;
        memset(res, 0, sizeof(*res) * (size_t)n);
        err = kiln_whisper_transcribe(we->model, &p, pcm, ns, k, res);
        for (int j = 0; j < k && err == KILN_OK; j++)
            err = kiln_whisper_engine_fill_(&res[j], &reqs[map[j]], beam, &out[map[j]]);
        for (int j = 0; j < k; j++)
            kiln_whisper_result_clear(&res[j]);
        if (err != KILN_OK)
            break;
    }
out:
    free(pcm);
    free(ns);
    free(map);
    free(done);
    free(res);
    return err;
}

static void kiln_whisper_engine_destroy(void *state) {
    kiln_whisper_engine_t *we = state;
    if (!we)
        return;
    kiln_whisper_model_destroy(we->model);
    free(we);
}

const kiln_engine_ops_t kiln_engine_whisper_ops = {
    .name = "whisper",
    .description = "Whisper speech recognition (CTranslate2, ggml or HF weights; CPU)",
    .load = kiln_whisper_engine_load,
    .run_batch = kiln_whisper_engine_run,
    .destroy = kiln_whisper_engine_destroy,
};
