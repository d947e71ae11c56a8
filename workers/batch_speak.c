/*
 * workers/batch_speak.c - the speak steps of a batch (workers/batch.c runs
 * parse, claim, the fenced commit and the events for every modality):
 *
 *  3. text: input.text, or the UTF-8 file at input.uri (fetched like audio,
 *     same retries); over speak.max_chars, empty or holding NUL bytes goes
 *     to the DLQ; then the whole batch through the engine's
 *     run_speak_batch (one padded batch of all sentences, engine_piper.c);
 *  4. artifacts under results/<tenant>/<id>/: speech.<format> (wav by
 *     default; flac, ogg (vorbis), opus, mp3 through libsndfile, resampled
 *     with libsoxr to params.sample_rate when asked; opus only at 8, 12,
 *     16, 24 or 48 kHz, else 48 kHz), timings.json (words and sentences)
 *     and speech.vtt;
 *  6. inside the batch transaction: one speech row per done job
 *     (ON CONFLICT DO NOTHING), next to its artifacts rows.
 */
#include <sndfile.h>
#include <soxr.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/log.h"
#include "workers/worker_int.h"

int kiln_worker_is_speak(const kiln_worker_t *kw) { return !strcmp(kw->modality, "speak"); }

/* ---- 3: text and engine ---- */

/* The text of one job into j->text (input.uri) or left at j->job.text;
 * sets j->err for a bad one. @returns KILN_OK or KILN_ERR__STOPPED. */
static kiln_err_t kiln_speak_text(kiln_worker_t *kw, kiln_wjob_t *j) {
    if (j->job.text)
        return KILN_OK; /* checked by kiln_job_parse (length, emptiness) */
    kiln_err_t err = kiln_batch_fetch(kw, j);
    if (err || j->err)
        return err;
    if (j->input_len == 0) {
        j->err = KILN_ERR_BAD_JOB;
        snprintf(j->errstr, sizeof(j->errstr), "the text input is empty: a speak job needs text");
    } else if (memchr(j->input, 0, j->input_len)) {
        j->err = KILN_ERR_BAD_INPUT;
        snprintf(j->errstr, sizeof(j->errstr), "text cannot be phonemised: it holds NUL bytes");
    } else if ((j->text = malloc(j->input_len + 1)) == NULL) {
        j->err = KILN_ERR__NOMEM;
        snprintf(j->errstr, sizeof(j->errstr), "out of memory");
    } else {
        memcpy(j->text, j->input, j->input_len);
        j->text[j->input_len] = '\0';
    }
    free(j->input);
    j->input = NULL;
    if (j->err)
        return KILN_OK;
    long long chars = kiln_utf8_chars(j->text);
    if (kw->limits.max_text_chars && (size_t)chars > kw->limits.max_text_chars) {
        j->err = KILN_ERR_TOO_LARGE;
        snprintf(j->errstr, sizeof(j->errstr), "text of %lld characters is over the limit of %zu",
                 chars, kw->limits.max_text_chars);
    }
    return KILN_OK;
}

kiln_err_t kiln_batch_speak_run(kiln_worker_t *kw, kiln_wjob_t *jobs, int n) {
    kiln_speak_request_t *reqs = calloc((size_t)n + 1, sizeof(*reqs));
    kiln_speech_t *outs = calloc((size_t)n + 1, sizeof(*outs));
    int *map = calloc((size_t)n + 1, sizeof(int));
    if (!reqs || !outs || !map)
        abort();
    int m = 0;
    kiln_err_t err = KILN_OK;
    for (int i = 0; i < n && !err; i++) {
        kiln_wjob_t *j = &jobs[i];
        if (j->skip || j->err)
            continue;
        if ((err = kiln_speak_text(kw, j)) != KILN_OK || j->err)
            continue;
        reqs[m].job_id = j->job.id;
        reqs[m].text = j->text ? j->text : j->job.text;
        reqs[m].voice = j->job.voice;
        map[m++] = i;
    }
    if (err == KILN_OK) {
        double t0 = kiln_worker_now();
        kiln_err_t eerr = m ? kiln_engine_run_speak_batch(kw->engine, reqs, m, outs) : KILN_OK;
        kiln_batch_engine_metrics(kw, m, t0);
        for (int k = 0; k < m; k++) {
            kiln_wjob_t *j = &jobs[map[k]];
            if (kiln_batch_engine_result(j, eerr, outs[k].err, outs[k].error))
                j->sp = outs[k];
            else
                kiln_speech_clear(&outs[k]);
        }
    }
    free(reqs);
    free(outs);
    free(map);
    return err;
}

/* ---- 4: audio and timings ---- */

/* libsndfile virtual I/O into a growing memory buffer. */
typedef struct {
    unsigned char *buf;
    sf_count_t len, cap, pos;
} kiln_memfile_t;

static sf_count_t kiln_mf_len(void *u) { return ((kiln_memfile_t *)u)->len; }

static sf_count_t kiln_mf_seek(sf_count_t off, int whence, void *u) {
    kiln_memfile_t *mf = u;
    sf_count_t p = whence == SEEK_SET ? off : whence == SEEK_CUR ? mf->pos + off : mf->len + off;
    if (p < 0)
        return -1;
    mf->pos = p;
    return p;
}

static sf_count_t kiln_mf_read(void *ptr, sf_count_t n, void *u) {
    kiln_memfile_t *mf = u;
    sf_count_t k = mf->pos >= mf->len ? 0 : (mf->len - mf->pos < n ? mf->len - mf->pos : n);
    memcpy(ptr, mf->buf + mf->pos, (size_t)k);
    mf->pos += k;
    return k;
}

static sf_count_t kiln_mf_write(const void *ptr, sf_count_t n, void *u) {
    kiln_memfile_t *mf = u;
    if (mf->pos + n > mf->cap) {
        sf_count_t cap = (mf->pos + n) * 2 + 4096;
        unsigned char *nb = realloc(mf->buf, (size_t)cap);
        if (!nb)
            return 0;
        mf->buf = nb;
        mf->cap = cap;
    }
    if (mf->pos > mf->len) /* a seek past the end leaves a hole of zeros */
        memset(mf->buf + mf->len, 0, (size_t)(mf->pos - mf->len));
    memcpy(mf->buf + mf->pos, ptr, (size_t)n);
    mf->pos += n;
    if (mf->pos > mf->len)
        mf->len = mf->pos;
    return n;
}

static sf_count_t kiln_mf_tell(void *u) { return ((kiln_memfile_t *)u)->pos; }

/* Formats: name, artifact kind, libsndfile format. */
static const struct {
    const char *name, *kind;
    int sf;
} kiln_speak_formats[] = {
    {"wav", "speech.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16},
    {"flac", "speech.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16},
    {"ogg", "speech.ogg", SF_FORMAT_OGG | SF_FORMAT_VORBIS},
    {"opus", "speech.opus", SF_FORMAT_OGG | SF_FORMAT_OPUS},
    {"mp3", "speech.mp3", SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III},
};
#define KILN_N_SPEAK_FORMATS (int)(sizeof(kiln_speak_formats) / sizeof(kiln_speak_formats[0]))

/* Encodes j->sp's audio as format \p f at \p rate (resampled with soxr when
 * it differs from the voice's) into \p mf. On success j->speech_rate and
 * j->speech_s describe the encoded audio. @returns 0, or -1
 * with j->err: KILN_ERR_BAD_JOB for a format and rate libsndfile cannot
 * write together (mp3 at 9 kHz), KILN_ERR_ENGINE otherwise. */
static int kiln_speak_encode(kiln_wjob_t *j, int f, int rate, kiln_memfile_t *mf) {
    const kiln_speech_t *sp = &j->sp;
    float *pcm = sp->pcm, *res = NULL;
    size_t n = sp->n_samples;
    if (rate != sp->sample_rate) {
        size_t olen = (size_t)((double)n * rate / sp->sample_rate + 0.5), odone = 0;
        res = malloc((olen ? olen : 1) * sizeof(float));
        soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
        soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);
        soxr_error_t e = res ? soxr_oneshot(sp->sample_rate, rate, 1, pcm, n, NULL, res, olen,
                                            &odone, &io, &q, NULL)
                             : "out of memory";
        if (e) {
            j->err = KILN_ERR_ENGINE;
            snprintf(j->errstr, sizeof(j->errstr), "could not resample to %d Hz: %s", rate, e);
            free(res);
            return -1;
        }
        pcm = res;
        n = odone;
        /* the resampler overshoots peak-normalised audio a little; integer
         * formats would wrap (FLAC refuses the block) */
        for (size_t i = 0; i < n; i++)
            res[i] = res[i] > 1.0f ? 1.0f : res[i] < -1.0f ? -1.0f : res[i];
    }
    SF_VIRTUAL_IO vio = {kiln_mf_len, kiln_mf_seek, kiln_mf_read, kiln_mf_write, kiln_mf_tell};
    SF_INFO info = {.samplerate = rate, .channels = 1, .format = kiln_speak_formats[f].sf};
    SNDFILE *sf = sf_open_virtual(&vio, SFM_WRITE, &info, mf);
    int rc = -1;
    if (!sf) {
        j->err = KILN_ERR_BAD_JOB;
        snprintf(j->errstr, sizeof(j->errstr), "could not encode %s at %d Hz: %s",
                 kiln_speak_formats[f].name, rate, sf_strerror(NULL));
    } else {
        sf_command(sf, SFC_SET_CLIPPING, NULL, SF_TRUE);
        sf_count_t w = sf_writef_float(sf, pcm, (sf_count_t)n);
        int cr = sf_close(sf);
        if (w != (sf_count_t)n || cr) {
            j->err = KILN_ERR_ENGINE;
            snprintf(j->errstr, sizeof(j->errstr), "could not encode %s: %s",
                     kiln_speak_formats[f].name, cr ? sf_error_number(cr) : "short write");
        } else
            rc = 0;
    }
    free(res);
    if (!rc) {
        j->speech_rate = rate;
        j->speech_s = (double)n / rate;
    }
    return rc;
}

kiln_err_t kiln_batch_speak_artifacts(kiln_worker_t *kw, kiln_wjob_t *jobs, int n) {
    const char *def = kiln_conf_get(kw->conf, "speak.default_format");
    for (int i = 0; i < n; i++) {
        kiln_wjob_t *j = &jobs[i];
        if (j->skip || j->err)
            continue;
        j->n_artifacts = 0;
        const char *fmt = j->job.format ? j->job.format : def;
        int f = 0;
        while (f < KILN_N_SPEAK_FORMATS && strcmp(kiln_speak_formats[f].name, fmt))
            f++;
        if (f == KILN_N_SPEAK_FORMATS) { /* only speak.default_format can get here */
            j->err = KILN_ERR_CONF;
            snprintf(j->errstr, sizeof(j->errstr), "unknown audio format \"%.32s\"", fmt);
            continue;
        }
        int rate = j->job.sample_rate ? j->job.sample_rate : j->sp.sample_rate;
        if (f == 3 && rate != 8000 && rate != 12000 && rate != 16000 && rate != 24000)
            rate = 48000; /* what Opus can carry */
        kiln_memfile_t mf = {0};
        if (kiln_speak_encode(j, f, rate, &mf)) {
            free(mf.buf);
            continue;
        }
        kiln_err_t err = kiln_batch_put_bytes(kw, j, kiln_speak_formats[f].kind, mf.buf, (size_t)mf.len);
        free(mf.buf);
        if (!err && !j->err)
            err = kiln_batch_put_bytes(kw, j, "timings.json", j->sp.timings_json,
                                       strlen(j->sp.timings_json));
        if (!err && !j->err)
            err = kiln_batch_put_bytes(kw, j, "speech.vtt", j->sp.vtt, strlen(j->sp.vtt));
        if (err)
            return err;
    }
    return KILN_OK;
}

/* ---- 6: speech rows (inside the batch transaction) ---- */

int kiln_batch_speak_rows(kiln_worker_t *kw, kiln_wjob_t *jobs, int n, kiln_sbuf_t *a,
                          char *errstr, size_t errstr_size) {
    char num[64];
    for (int i = 0; i < n; i++) {
        kiln_wjob_t *j = &jobs[i];
        if (j->skip || j->err || j->n_artifacts < 2)
            continue;
        kiln_pg_array_add(&a[0], j->job.id);
        kiln_pg_array_add(&a[1], j->job.tenant);
        kiln_pg_array_add(&a[2], j->sp.voice);
        snprintf(num, sizeof(num), "%lld", j->sp.characters);
        kiln_pg_array_add(&a[3], num);
        snprintf(num, sizeof(num), "%.6f", j->speech_s);
        kiln_pg_array_add(&a[4], num);
        snprintf(num, sizeof(num), "%d", j->speech_rate);
        kiln_pg_array_add(&a[5], num);
        kiln_pg_array_add(&a[6], strchr(j->artifacts[0].kind, '.') + 1);
        kiln_pg_array_add(&a[7], j->artifacts[0].uri);
        kiln_pg_array_add(&a[8], j->artifacts[1].uri);
    }
    const char *engine = kiln_engine_name(kw->engine);
    return kiln_tx_exec(kw->pg,
                        "INSERT INTO speech (job_id, tenant, voice, characters, audio_seconds,"
                        " sample_rate, format, uri, timings_uri, engine)"
                        " SELECT id, tenant, voice, chars, secs, rate, fmt, uri, turi, $10"
                        " FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::float8[],"
                        "   $6::int[], $7::text[], $8::text[], $9::text[])"
                        "   AS u(id, tenant, voice, chars, secs, rate, fmt, uri, turi)"
                        " ON CONFLICT (job_id) DO NOTHING",
                        a, 9, &engine, 1, errstr, errstr_size);
}
