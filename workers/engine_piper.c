/*
 * workers/engine_piper.c - the "piper" engine: speak jobs through Piper
 * (VITS) voices in C (models/voice, kiln/voice.h).
 *
 * Voices live under speak.voices_dir, one directory per voice name (what
 * `make voices` installs). speak.default_voice is loaded at start (a worker
 * without its voice does not start); others are loaded on first use and
 * kept. A request naming a voice that is not there fails alone
 * (KILN_ERR_BAD_JOB, "unknown voice").
 *
 * One batch: every job's text is phonemised (sentences), then ALL sentences
 * of ALL jobs of the batch go through kiln_voice_synth_ids() together, per
 * voice, longest first (similar lengths share a padded model call), in
 * chunks of at most speak.batch_max_ids phoneme ids (memory stays bounded
 * whatever the batch). Each job's sentences are then joined as
 * kiln_voice_speak_text() does (peak-normalised per sentence, followed by
 * speak.sentence_silence_ms), and its timings written as JSON and WebVTT.
 *
 * "Cannot be phonemised" (KILN_ERR_BAD_INPUT, per job) means: the text holds
 * a control character (C0 other than tab, LF, CR; DEL; C1), is not valid
 * UTF-8, or espeak-ng turns it into no phoneme of the voice's map (e.g. only
 * punctuation or symbols the voice has no phonemes for).
 *
 * Synthesis noise is seeded per sentence by its position in the model call
 * (kiln_voice_synth_ids), so a job's audio can differ slightly from one
 * batch composition to another; durations and text do not.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kiln/engine.h"
#include "kiln/job.h"
#include "kiln/log.h"
#include "kiln/voice.h"

#define KILN_PIPER_MAX_VOICES 32

typedef struct {
    char name[65];
    kiln_voice_t *v;
} kiln_piper_voice_t;

typedef struct {
    char voices_dir[PATH_MAX];
    char default_voice[65];
    char backend[16], precision[16]; /* speak.backend, speak.precision */
    long long max_ids;
    kiln_voice_params_t params;
    kiln_piper_voice_t voices[KILN_PIPER_MAX_VOICES];
    int n_voices;
} kiln_piper_t;

/* One sentence of one job on its way through the model. */
typedef struct {
    int job;     /* request index */
    int sent;    /* sentence index in the job's text */
    int voice;   /* index into kiln_piper_t.voices */
    int n_ids;   /* its length */
} kiln_piper_sent_t;

/* Longest sentence first (qsort), so that each model call pads little. */
static int kiln_piper_sent_cmp(const void *a, const void *b) {
    const kiln_piper_sent_t *x = a, *y = b;
    return y->n_ids != x->n_ids ? y->n_ids - x->n_ids
                                : x->job != y->job ? x->job - y->job : x->sent - y->sent;
}

/* Per request: its phonemised text and the raw audio of each sentence. */
typedef struct {
    int voice;
    kiln_voice_text_t tx;
    kiln_voice_audio_t *sa; /* tx.n entries */
} kiln_piper_job_t;

/* The voice called \p name, loaded on first use. @returns its index, or -1
 * with errstr and *err (KILN_ERR_BAD_JOB: not installed; KILN_ERR_MODEL:
 * installed but unloadable; KILN_ERR__NOMEM: too many voices). */
static int kiln_piper_voice(kiln_piper_t *pp, const char *name, kiln_err_t *err, char *errstr,
                            size_t errstr_size) {
    for (int i = 0; i < pp->n_voices; i++)
        if (!strcmp(pp->voices[i].name, name))
            return i;
    char path[PATH_MAX + 80];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s/config.json", pp->voices_dir, name);
    if (!kiln_voice_name_valid(name) || stat(path, &st) || !S_ISREG(st.st_mode)) {
        *err = KILN_ERR_BAD_JOB;
        snprintf(errstr, errstr_size, "unknown voice \"%.64s\" (not installed in %.200s)", name,
                 pp->voices_dir);
        return -1;
    }
    if (pp->n_voices == KILN_PIPER_MAX_VOICES) {
        *err = KILN_ERR__NOMEM;
        snprintf(errstr, errstr_size, "could not load voice \"%s\": %d voices already loaded",
                 name, KILN_PIPER_MAX_VOICES);
        return -1;
    }
    snprintf(path, sizeof(path), "%s/%s", pp->voices_dir, name);
    char e2[256];
    kiln_voice_t *v = kiln_voice_load(path, e2, sizeof(e2));
    if (!v) {
        *err = KILN_ERR_MODEL;
        snprintf(errstr, errstr_size, "could not load voice \"%s\": %s", name, e2);
        return -1;
    }
    if (kiln_voice_set_backend(v, pp->backend, pp->precision, e2, sizeof(e2)) != KILN_OK) {
        kiln_voice_destroy(v);
        *err = KILN_ERR_MODEL;
        snprintf(errstr, errstr_size, "could not load voice \"%s\": %s", name, e2);
        return -1;
    }
    kiln_piper_voice_t *pv = &pp->voices[pp->n_voices];
    snprintf(pv->name, sizeof(pv->name), "%s", name);
    pv->v = v;
    KILN_LOG_INFO("voice %s loaded from %s (%d Hz, backend %s)", name, path,
                  kiln_voice_sample_rate(v), kiln_voice_backend(v));
    return pp->n_voices++;
}

static void kiln_piper_destroy(void *state) {
    kiln_piper_t *pp = state;
    if (!pp)
        return;
    for (int i = 0; i < pp->n_voices; i++)
        kiln_voice_destroy(pp->voices[i].v);
    free(pp);
}

static void *kiln_piper_load(const kiln_conf_t *conf, char *errstr, size_t errstr_size) {
    kiln_piper_t *pp = calloc(1, sizeof(*pp));
    if (!pp) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    snprintf(pp->voices_dir, sizeof(pp->voices_dir), "%s", kiln_conf_get(conf, "speak.voices_dir"));
    snprintf(pp->default_voice, sizeof(pp->default_voice), "%s",
             kiln_conf_get(conf, "speak.default_voice"));
    pp->max_ids = kiln_conf_get_int(conf, "speak.batch_max_ids");
    pp->params = kiln_voice_default_params();
    pp->params.sentence_silence = (float)kiln_conf_get_int(conf, "speak.sentence_silence_ms") / 1000.0f;
    pp->params.device_batch_samples = (size_t)kiln_conf_get_int(conf, "speak.device_batch_samples");
    snprintf(pp->backend, sizeof(pp->backend), "%s", kiln_conf_get(conf, "speak.backend"));
    snprintf(pp->precision, sizeof(pp->precision), "%s", kiln_conf_get(conf, "speak.precision"));
    kiln_err_t err;
    char e2[384];
    if (kiln_piper_voice(pp, pp->default_voice, &err, e2, sizeof(e2)) < 0) {
        snprintf(errstr, errstr_size, "speak.default_voice: %s%s", e2,
                 err == KILN_ERR_BAD_JOB ? "; run `make voices` or set speak.voices_dir" : "");
        kiln_piper_destroy(pp);
        return NULL;
    }
    return pp;
}

/* The first control character of \p text (see the file comment), as the
 * code point and its 0-based character index. @returns 1 if there is one. */
static int kiln_piper_control_char(const char *text, unsigned *cp_out, long long *at) {
    long long idx = 0;
    const unsigned char *c = (const unsigned char *)text;
    while (*c) {
        unsigned cp = *c;
        if (cp == 0xc2 && c[1] >= 0x80 && c[1] <= 0x9f) /* C1 in UTF-8 */
            cp = c[1];
        if ((cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || cp == 0x7f ||
            (cp >= 0x80 && cp <= 0x9f && *c == 0xc2)) {
            *cp_out = cp;
            *at = idx;
            return 1;
        }
        c++;
        while ((*c & 0xc0) == 0x80)
            c++;
        idx++;
    }
    return 0;
}

/* Phoneme ids that are real phonemes: a sentence is BOS, PAD, (id, PAD)*, EOS. */
static long long kiln_piper_phonemes(const kiln_voice_text_t *tx) {
    long long n = 0;
    for (int s = 0; s < tx->n; s++)
        n += tx->s[s].n_ids > 3 ? (tx->s[s].n_ids - 3) / 2 : 0;
    return n;
}

/* Front end of one request: voice, control characters, phonemes. */
static void kiln_piper_prepare(kiln_piper_t *pp, const kiln_speak_request_t *rq,
                               kiln_piper_job_t *pj, kiln_speech_t *o) {
    const char *name = rq->voice && *rq->voice ? rq->voice : pp->default_voice;
    snprintf(o->voice, sizeof(o->voice), "%s", name);
    o->characters = kiln_utf8_chars(rq->text);
    pj->voice = kiln_piper_voice(pp, name, &o->err, o->error, sizeof(o->error));
    if (pj->voice < 0)
        return;
    unsigned cp;
    long long at;
    if (kiln_piper_control_char(rq->text, &cp, &at)) {
        o->err = KILN_ERR_BAD_INPUT;
        snprintf(o->error, sizeof(o->error),
                 "text cannot be phonemised: control character U+%04X at character %lld", cp, at);
        return;
    }
    char e2[256];
    kiln_err_t err = kiln_voice_phonemize(pp->voices[pj->voice].v, rq->text, &pj->tx, e2, sizeof(e2));
    if (err) {
        o->err = err == KILN_ERR_BAD_INPUT ? KILN_ERR_BAD_INPUT : KILN_ERR_ENGINE;
        snprintf(o->error, sizeof(o->error), "text cannot be phonemised: %s", e2);
        return;
    }
    if (kiln_piper_phonemes(&pj->tx) == 0) {
        kiln_voice_text_clear(&pj->tx);
        o->err = KILN_ERR_BAD_INPUT;
        snprintf(o->error, sizeof(o->error),
                 "text cannot be phonemised: espeak-ng gave no phoneme of voice \"%s\"", name);
        return;
    }
    pj->sa = calloc((size_t)pj->tx.n, sizeof(*pj->sa));
    if (!pj->sa) {
        kiln_voice_text_clear(&pj->tx);
        o->err = KILN_ERR__NOMEM;
        snprintf(o->error, sizeof(o->error), "out of memory");
    }
}

/* Runs sentences all[0..n) (one voice) through the model in chunks of at
 * most pp->max_ids ids; each sentence's audio lands in its job's sa[].
 * @returns KILN_OK or the model's error (errstr). */
static kiln_err_t kiln_piper_synth(kiln_piper_t *pp, kiln_piper_job_t *pjs,
                                   const kiln_piper_sent_t *all, int n, int *calls, char *errstr,
                                   size_t errstr_size) {
    const int **ids = malloc((size_t)(n + 1) * sizeof(*ids));
    int *n_ids = malloc((size_t)(n + 1) * sizeof(int));
    kiln_voice_audio_t *a = calloc((size_t)n + 1, sizeof(*a));
    kiln_err_t err = KILN_OK;
    if (!ids || !n_ids || !a) {
        err = KILN_ERR__NOMEM;
        snprintf(errstr, errstr_size, "out of memory");
    }
    for (int i = 0; i < n && !err;) {
        long long sum = 0;
        int b = 0;
        while (i + b < n) {
            const kiln_voice_sentence_t *s = &pjs[all[i + b].job].tx.s[all[i + b].sent];
            if (b && sum + s->n_ids > pp->max_ids)
                break;
            ids[b] = s->ids;
            n_ids[b] = s->n_ids;
            sum += s->n_ids;
            b++;
        }
        err = kiln_voice_synth_ids(pp->voices[all[i].voice].v, ids, n_ids, b, &pp->params, a,
                                   errstr, errstr_size);
        if (err)
            break;
        (*calls)++;
        for (int k = 0; k < b; k++)
            pjs[all[i + k].job].sa[all[i + k].sent] = a[k]; /* moves the buffers */
        i += b;
    }
    free(ids);
    free(n_ids);
    free(a);
    return err;
}

/* Joins a job's sentences as kiln_voice_speak_text() does and writes its
 * timings. @returns KILN_OK or KILN_ERR__NOMEM. */
static kiln_err_t kiln_piper_finish(kiln_piper_t *pp, kiln_piper_job_t *pj, kiln_speech_t *o) {
    const kiln_voice_t *v = pp->voices[pj->voice].v;
    int B = pj->tx.n, rate = kiln_voice_sample_rate(v);
    size_t sil = pp->params.sentence_silence > 0 ? (size_t)(pp->params.sentence_silence * rate) : 0;
    size_t total = 0;
    int total_ids = 0;
    for (int b = 0; b < B; b++) {
        total += pj->sa[b].n_samples + sil;
        total_ids += pj->sa[b].n_ids;
    }
    kiln_voice_audio_t j = {0};
    j.pcm = calloc(total ? total : 1, sizeof(float));
    j.durations = malloc((size_t)(total_ids ? total_ids : 1) * sizeof(int));
    j.sent_start = malloc((size_t)(B + 1) * sizeof(size_t));
    if (!j.pcm || !j.durations || !j.sent_start) {
        kiln_voice_audio_clear(&j);
        return KILN_ERR__NOMEM;
    }
    size_t off = 0;
    int k = 0;
    for (int b = 0; b < B; b++) {
        const kiln_voice_audio_t *a = &pj->sa[b];
        float peak = 0.0f, gain = 1.0f;
        for (size_t i = 0; i < a->n_samples; i++)
            peak = a->pcm[i] > peak ? a->pcm[i] : -a->pcm[i] > peak ? -a->pcm[i] : peak;
        if (pp->params.normalize)
            gain = peak < 1e-8f ? 0.0f : 1.0f / peak;
        j.sent_start[b] = off;
        for (size_t i = 0; i < a->n_samples; i++) {
            float s = a->pcm[i] * gain;
            j.pcm[off + i] = s > 1.0f ? 1.0f : s < -1.0f ? -1.0f : s;
        }
        off += a->n_samples + sil;
        memcpy(j.durations + k, a->durations, (size_t)a->n_ids * sizeof(int));
        k += a->n_ids;
    }
    j.sent_start[B] = off;
    j.n_samples = total;
    j.n_ids = total_ids;
    j.n_sent = B;
    kiln_err_t err = KILN_OK;
    for (int vtt = 0; vtt < 2 && !err; vtt++) {
        char *buf = NULL;
        size_t len = 0;
        FILE *fp = open_memstream(&buf, &len);
        int rc = fp ? kiln_voice_write_timings(v, &pj->tx, &j, vtt, fp) : -1;
        if (fp && fclose(fp))
            rc = -1;
        if (rc) {
            free(buf);
            err = KILN_ERR__NOMEM;
        } else if (vtt)
            o->vtt = buf;
        else
            o->timings_json = buf;
    }
    if (err) {
        kiln_voice_audio_clear(&j);
        return err;
    }
    o->pcm = j.pcm;
    o->n_samples = j.n_samples;
    o->sample_rate = rate;
    o->n_sentences = B;
    o->duration_s = (double)j.n_samples / rate;
    j.pcm = NULL;
    kiln_voice_audio_clear(&j);
    char info[256];
    snprintf(info, sizeof(info),
             "{\"engine\":\"piper\",\"model_ran\":true,\"voice\":\"%s\",\"sentences\":%d,"
             "\"phonemes\":%lld,\"unknown_phonemes\":%d}",
             o->voice, B, kiln_piper_phonemes(&pj->tx), pj->tx.n_unknown);
    o->info_json = strdup(info);
    return o->info_json ? KILN_OK : KILN_ERR__NOMEM;
}

static kiln_err_t kiln_piper_run_speak_batch(void *state, const kiln_speak_request_t *reqs, int n,
                                             kiln_speech_t *out) {
    kiln_piper_t *pp = state;
    kiln_piper_job_t *pjs = calloc((size_t)n + 1, sizeof(*pjs));
    if (!pjs)
        return KILN_ERR__NOMEM;
    int n_sent = 0;
    for (int i = 0; i < n; i++) {
        kiln_piper_prepare(pp, &reqs[i], &pjs[i], &out[i]);
        if (!out[i].err)
            n_sent += pjs[i].tx.n;
    }
    kiln_piper_sent_t *all = calloc((size_t)n_sent + 1, sizeof(*all));
    kiln_err_t err = all ? KILN_OK : KILN_ERR__NOMEM;
    char errstr[256] = "";
    int calls = 0;
    /* every sentence of every job, one voice at a time */
    for (int v = 0; v < pp->n_voices && !err; v++) {
        int m = 0;
        for (int i = 0; i < n; i++)
            for (int s = 0; !out[i].err && pjs[i].voice == v && s < pjs[i].tx.n; s++)
                all[m++] = (kiln_piper_sent_t){
                    .job = i, .sent = s, .voice = v, .n_ids = pjs[i].tx.s[s].n_ids};
        qsort(all, (size_t)m, sizeof(*all), kiln_piper_sent_cmp);
        if (m)
            err = kiln_piper_synth(pp, pjs, all, m, &calls, errstr, sizeof(errstr));
    }
    if (err)
        KILN_LOG_ERROR("piper: the batch failed: %s", errstr);
    else
        KILN_LOG_DEBUG("piper: %d job(s), %d sentence(s), %d model call(s)", n, n_sent, calls);
    for (int i = 0; i < n && !err; i++)
        if (!out[i].err && kiln_piper_finish(pp, &pjs[i], &out[i])) {
            out[i].err = KILN_ERR__NOMEM;
            snprintf(out[i].error, sizeof(out[i].error), "out of memory");
        }
    for (int i = 0; i < n; i++) {
        for (int s = 0; pjs[i].sa && s < pjs[i].tx.n; s++)
            kiln_voice_audio_clear(&pjs[i].sa[s]);
        free(pjs[i].sa);
        kiln_voice_text_clear(&pjs[i].tx);
    }
    free(pjs);
    free(all);
    return err;
}

const kiln_engine_ops_t kiln_engine_piper_ops = {
    .name = "piper",
    .description = "speak: Piper (VITS) voices from speak.voices_dir, all sentences of a batch "
                   "in one padded batch",
    .modality = "speak",
    .load = kiln_piper_load,
    .run_speak_batch = kiln_piper_run_speak_batch,
    .destroy = kiln_piper_destroy,
};
