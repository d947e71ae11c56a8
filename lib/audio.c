/*
 * lib/audio.c - decode audio bytes into mono float PCM at a target rate.
 *
 * Contract (see include/kiln/audio.h):
 *   - Input is read by libsndfile, from memory through its virtual I/O
 *     (kiln_audio_decode) or from an open file descriptor
 *     (kiln_audio_decode_file). Every container/codec that libsndfile reads
 *     works: wav (PCM 8/16/24/32, float, double), flac, ogg vorbis, ogg opus,
 *     aiff, w64, caf, mp3 (libsndfile >= 1.1), ...
 *   - Frames are read in chunks of KILN_AUDIO_CHUNK, down-mixed to mono by
 *     averaging the channels, cleaned (NaN/Inf -> 0, clamped to [-1, 1]) and
 *     streamed through a libsoxr resampler (SOXR_HQ) to target_rate. When the
 *     source rate already equals target_rate the samples are copied as is.
 *   - Limits are checked twice: against the header (frames / rate) before any
 *     sample is decoded, and against the frames actually read, so a header
 *     that lies or an unknown length cannot get past max_seconds. Memory grows
 *     with the audio actually decoded, never with what a header claims.
 *   - Levels (rms_dbfs, peak_dbfs) are measured on the output samples;
 *     digital silence reports KILN_AUDIO_SILENCE_DBFS (-120).
 *
 * Thread safety: every call works on its own handles and buffers, so calls
 * may run concurrently. The only shared state is libsndfile's global "last
 * error" used for the message when an open fails; at worst a concurrent
 * failure gives the wrong reason text, never a wrong result.
 */
#include "kiln/audio.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sndfile.h>
#include <soxr.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kiln/log.h"

#define KILN_AUDIO_CHUNK 4096 /* frames per sf_readf_float() call */
#define KILN_AUDIO_MIN_RATE 1000 /* Hz; anything lower is a broken header */
#define KILN_AUDIO_MAX_RATE 768000 /* Hz */
#define KILN_AUDIO_MAX_SAMPLES ((size_t)INT32_MAX) /* hard cap on output samples */
#define KILN_AUDIO_PREALLOC_MAX ((size_t)1 << 22) /* samples reserved up front, at most */

/* ------------------------------------------------------------------------ */
/* helpers                                                                  */

static void kiln_audio_seterr_(char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void kiln_audio_seterr_(char *errstr, size_t errstr_size, const char *fmt, ...) {
    va_list ap;
    if (!errstr || !errstr_size)
        return;
    va_start(ap, fmt);
    vsnprintf(errstr, errstr_size, fmt, ap);
    va_end(ap);
}

static int kiln_audio_rate_ok_(int rate) {
    return rate >= KILN_AUDIO_MIN_RATE && rate <= KILN_AUDIO_MAX_RATE;
}

/* ------------------------------------------------------------------------ */
/* libsndfile virtual I/O over a memory buffer                              */

typedef struct kiln_audio_vio_s {
    const unsigned char *data;
    sf_count_t len;
    sf_count_t pos;
} kiln_audio_vio_t;

static sf_count_t kiln_audio_vio_filelen_(void *user) {
    return ((kiln_audio_vio_t *)user)->len;
}

static sf_count_t kiln_audio_vio_seek_(sf_count_t offset, int whence, void *user) {
    kiln_audio_vio_t *vio = user;
    sf_count_t base;

    switch (whence) {
    case SEEK_SET: base = 0; break;
    case SEEK_CUR: base = vio->pos; break;
    case SEEK_END: base = vio->len; break;
    default: return -1;
    }
    /* Positions past the end are allowed (reads there return 0), as with
     * fseek(); negative ones and overflow are not. */
    if ((offset < 0 && base < -offset) || (offset > 0 && base > INT64_MAX - offset))
        return -1;
    vio->pos = base + offset;
    return vio->pos;
}

static sf_count_t kiln_audio_vio_read_(void *ptr, sf_count_t count, void *user) {
    kiln_audio_vio_t *vio = user;

    if (count <= 0 || vio->pos >= vio->len)
        return 0;
    if (count > vio->len - vio->pos)
        count = vio->len - vio->pos;
    memcpy(ptr, vio->data + vio->pos, (size_t)count);
    vio->pos += count;
    return count;
}

static sf_count_t kiln_audio_vio_write_(const void *ptr, sf_count_t count, void *user) {
    (void)ptr;
    (void)count;
    (void)user;
    return 0; /* read-only */
}

static sf_count_t kiln_audio_vio_tell_(void *user) {
    return ((kiln_audio_vio_t *)user)->pos;
}

/* ------------------------------------------------------------------------ */
/* format names                                                             */

/*
 * Short names of libsndfile's major formats and subtypes, the ones sox and
 * python-soundfile users know ("FLAC", "PCM_16"). Majors live in
 * SF_FORMAT_TYPEMASK and subtypes in SF_FORMAT_SUBMASK, so the ids never
 * collide and one table serves both. (The MPEG ids need libsndfile >= 1.1;
 * bookworm has 1.2.0.)
 */
static const struct {
    int id;
    const char *name;
} kiln_audio_format_names_[] = {
    /* major formats */
    {SF_FORMAT_WAV, "WAV"}, {SF_FORMAT_AIFF, "AIFF"}, {SF_FORMAT_AU, "AU"},
    {SF_FORMAT_RAW, "RAW"}, {SF_FORMAT_PAF, "PAF"}, {SF_FORMAT_SVX, "SVX"},
    {SF_FORMAT_NIST, "NIST"}, {SF_FORMAT_VOC, "VOC"}, {SF_FORMAT_IRCAM, "IRCAM"},
    {SF_FORMAT_W64, "W64"}, {SF_FORMAT_MAT4, "MAT4"}, {SF_FORMAT_MAT5, "MAT5"},
    {SF_FORMAT_PVF, "PVF"}, {SF_FORMAT_XI, "XI"}, {SF_FORMAT_HTK, "HTK"},
    {SF_FORMAT_SDS, "SDS"}, {SF_FORMAT_AVR, "AVR"}, {SF_FORMAT_WAVEX, "WAVEX"},
    {SF_FORMAT_SD2, "SD2"}, {SF_FORMAT_FLAC, "FLAC"}, {SF_FORMAT_CAF, "CAF"},
    {SF_FORMAT_WVE, "WVE"}, {SF_FORMAT_OGG, "OGG"}, {SF_FORMAT_MPC2K, "MPC2K"},
    {SF_FORMAT_RF64, "RF64"}, {SF_FORMAT_MPEG, "MPEG"},
    /* subtypes */
    {SF_FORMAT_PCM_S8, "PCM_S8"}, {SF_FORMAT_PCM_16, "PCM_16"}, {SF_FORMAT_PCM_24, "PCM_24"},
    {SF_FORMAT_PCM_32, "PCM_32"}, {SF_FORMAT_PCM_U8, "PCM_U8"}, {SF_FORMAT_FLOAT, "FLOAT"},
    {SF_FORMAT_DOUBLE, "DOUBLE"}, {SF_FORMAT_ULAW, "ULAW"}, {SF_FORMAT_ALAW, "ALAW"},
    {SF_FORMAT_IMA_ADPCM, "IMA_ADPCM"}, {SF_FORMAT_MS_ADPCM, "MS_ADPCM"},
    {SF_FORMAT_GSM610, "GSM610"}, {SF_FORMAT_VOX_ADPCM, "VOX_ADPCM"},
    {SF_FORMAT_G721_32, "G721_32"}, {SF_FORMAT_G723_24, "G723_24"},
    {SF_FORMAT_G723_40, "G723_40"}, {SF_FORMAT_DWVW_12, "DWVW_12"},
    {SF_FORMAT_DWVW_16, "DWVW_16"}, {SF_FORMAT_DWVW_24, "DWVW_24"},
    {SF_FORMAT_DWVW_N, "DWVW_N"}, {SF_FORMAT_DPCM_8, "DPCM_8"}, {SF_FORMAT_DPCM_16, "DPCM_16"},
    {SF_FORMAT_VORBIS, "VORBIS"}, {SF_FORMAT_OPUS, "OPUS"}, {SF_FORMAT_ALAC_16, "ALAC_16"},
    {SF_FORMAT_ALAC_20, "ALAC_20"}, {SF_FORMAT_ALAC_24, "ALAC_24"},
    {SF_FORMAT_ALAC_32, "ALAC_32"}, {SF_FORMAT_MPEG_LAYER_I, "MPEG_LAYER_I"},
    {SF_FORMAT_MPEG_LAYER_II, "MPEG_LAYER_II"}, {SF_FORMAT_MPEG_LAYER_III, "MPEG_LAYER_III"},
};

/*
 * kiln_audio_format_part_
 *     Short name of one part (major or subtype) of a libsndfile format.
 *
 * Ids missing from the table fall back to the first word of the name that
 * SFC_GET_FORMAT_INFO gives, or "0x<hex>".
 */
static void kiln_audio_format_part_(int id, char *buf, size_t size) {
    SF_FORMAT_INFO fi;
    size_t i;

    for (i = 0; i < sizeof(kiln_audio_format_names_) / sizeof(kiln_audio_format_names_[0]); i++)
        if (kiln_audio_format_names_[i].id == id) {
            snprintf(buf, size, "%s", kiln_audio_format_names_[i].name);
            return;
        }
    memset(&fi, 0, sizeof(fi));
    fi.format = id;
    if (sf_command(NULL, SFC_GET_FORMAT_INFO, &fi, sizeof(fi)) == 0 && fi.name)
        snprintf(buf, size, "%.*s", (int)strcspn(fi.name, " ("), fi.name);
    else
        snprintf(buf, size, "0x%x", (unsigned)id);
}

/* Fills \p buf with "<major>/<subtype>", e.g. "FLAC/PCM_16", "OGG/OPUS". */
static void kiln_audio_format_name_(int format, char *buf, size_t size) {
    char major[24], sub[24];

    kiln_audio_format_part_(format & SF_FORMAT_TYPEMASK, major, sizeof(major));
    kiln_audio_format_part_(format & SF_FORMAT_SUBMASK, sub, sizeof(sub));
    snprintf(buf, size, "%s/%s", major, sub);
}

/* ------------------------------------------------------------------------ */
/* output accumulation and resampling                                      */

typedef struct kiln_audio_out_s {
    float *buf;
    size_t n;
    size_t cap;
} kiln_audio_out_t;

/*
 * Makes room for \p extra more samples. Returns KILN_ERR_TOO_LARGE past
 * KILN_AUDIO_MAX_SAMPLES, KILN_ERR__NOMEM when realloc fails (and says so in
 * \p errstr).
 */
static kiln_err_t kiln_audio_out_reserve_(kiln_audio_out_t *ob, size_t extra, char *errstr,
                                          size_t errstr_size) {
    size_t want, cap;
    float *nb;

    if (extra > KILN_AUDIO_MAX_SAMPLES - ob->n) {
        kiln_audio_seterr_(errstr, errstr_size, "audio is too long: over %zu samples",
                           KILN_AUDIO_MAX_SAMPLES);
        return KILN_ERR_TOO_LARGE;
    }
    want = ob->n + extra;
    if (want <= ob->cap)
        return KILN_OK;
    cap = ob->cap ? ob->cap : 4096;
    while (cap < want)
        cap = cap > KILN_AUDIO_MAX_SAMPLES / 2 ? KILN_AUDIO_MAX_SAMPLES : cap * 2;
    nb = realloc(ob->buf, cap * sizeof(float));
    if (!nb) {
        kiln_audio_seterr_(errstr, errstr_size, "could not decode audio: out of memory");
        return KILN_ERR__NOMEM;
    }
    ob->buf = nb;
    ob->cap = cap;
    return KILN_OK;
}

/*
 * kiln_audio_out_push_
 *     Appends \p n mono samples to \p ob, through \p soxr when it is set.
 *
 * With soxr set and \p in NULL, flushes the resampler (end of input): the
 * remaining output is drained until soxr produces no more.
 */
static kiln_err_t kiln_audio_out_push_(kiln_audio_out_t *ob, soxr_t soxr, double ratio,
                                       const float *in, size_t n, char *errstr,
                                       size_t errstr_size) {
    size_t off = 0, room, idone, odone;
    soxr_error_t serr;
    kiln_err_t err;

    if (!soxr) {
        if ((err = kiln_audio_out_reserve_(ob, n, errstr, errstr_size)) != KILN_OK)
            return err;
        memcpy(ob->buf + ob->n, in, n * sizeof(float));
        ob->n += n;
        return KILN_OK;
    }
    for (;;) {
        room = (size_t)((double)(n - off) * ratio) + 1024;
        if ((err = kiln_audio_out_reserve_(ob, room, errstr, errstr_size)) != KILN_OK)
            return err;
        idone = odone = 0;
        serr = soxr_process(soxr, in ? in + off : NULL, in ? n - off : 0, &idone, ob->buf + ob->n,
                            room, &odone);
        if (serr) {
            kiln_audio_seterr_(errstr, errstr_size, "could not resample audio: %s", serr);
            return KILN_ERR__FAIL;
        }
        off += idone;
        ob->n += odone;
        if (!in) {
            if (odone == 0)
                return KILN_OK;
        } else if (off >= n) {
            return KILN_OK;
        } else if (idone == 0 && odone == 0) {
            kiln_audio_seterr_(errstr, errstr_size, "could not resample audio: resampler stalled");
            return KILN_ERR__FAIL;
        }
    }
}

/* Mean-square to dBFS, with digital silence at KILN_AUDIO_SILENCE_DBFS. */
static double kiln_audio_dbfs_(double amplitude) {
    double db;

    if (!(amplitude > 0.0))
        return KILN_AUDIO_SILENCE_DBFS;
    db = 20.0 * log10(amplitude);
    return db < KILN_AUDIO_SILENCE_DBFS ? KILN_AUDIO_SILENCE_DBFS : db;
}

/* ------------------------------------------------------------------------ */
/* the decoder proper                                                       */

/*
 * kiln_audio_decode_sf_
 *     Decodes the opened \p sf (described by \p info) into \p out.
 *
 * Does not close \p sf. On failure \p out is untouched (the caller zeroed it)
 * and \p errstr says why.
 */
static kiln_err_t kiln_audio_decode_sf_(SNDFILE *sf, const SF_INFO *info, int target_rate,
                                        double max_seconds, kiln_audio_t *out, char *errstr,
                                        size_t errstr_size) {
    kiln_audio_out_t ob = {NULL, 0, 0};
    soxr_t soxr = NULL;
    soxr_error_t serr = NULL;
    soxr_io_spec_t io_spec;
    soxr_quality_spec_t q_spec;
    float *ibuf = NULL, *mbuf = NULL;
    const int ch = info->channels, rate = info->samplerate;
    const int frames_known = info->frames > 0 && info->frames < SF_COUNT_MAX;
    const double ratio = (double)target_rate / (double)(rate > 0 ? rate : 1);
    sf_count_t got, total_in = 0;
    double sumsq = 0.0, peak = 0.0, s;
    kiln_err_t err = KILN_OK;
    size_t i;
    int c;

    if (ch < 1 || (size_t)ch > SIZE_MAX / sizeof(float) / KILN_AUDIO_CHUNK) {
        kiln_audio_seterr_(errstr, errstr_size, "could not decode audio: invalid channel count %d",
                           ch);
        return KILN_ERR_BAD_INPUT;
    }
    if (!kiln_audio_rate_ok_(rate)) {
        kiln_audio_seterr_(errstr, errstr_size,
                           "could not decode audio: unsupported sample rate %d Hz", rate);
        return KILN_ERR_BAD_INPUT;
    }
    if (info->frames == 0) {
        kiln_audio_seterr_(errstr, errstr_size, "audio is empty");
        return KILN_ERR_BAD_INPUT;
    }
    if (frames_known && info->frames > INT64_MAX / ch) {
        kiln_audio_seterr_(errstr, errstr_size,
                           "could not decode audio: header claims %lld frames of %d channels",
                           (long long)info->frames, ch);
        return KILN_ERR_BAD_INPUT;
    }
    if (frames_known && max_seconds > 0 && (double)info->frames / rate > max_seconds) {
        kiln_audio_seterr_(errstr, errstr_size,
                           "audio is too long: %.2f s exceeds the limit of %.2f s",
                           (double)info->frames / rate, max_seconds);
        return KILN_ERR_TOO_LARGE;
    }

    ibuf = malloc((size_t)KILN_AUDIO_CHUNK * (size_t)ch * sizeof(float));
    mbuf = malloc((size_t)KILN_AUDIO_CHUNK * sizeof(float));
    if (!ibuf || !mbuf) {
        kiln_audio_seterr_(errstr, errstr_size, "could not decode audio: out of memory");
        err = KILN_ERR__NOMEM;
        goto fail;
    }
    if (rate != target_rate) {
        io_spec = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
        q_spec = soxr_quality_spec(SOXR_HQ, 0);
        soxr = soxr_create(rate, target_rate, 1, &serr, &io_spec, &q_spec, NULL);
        if (!soxr || serr) {
            kiln_audio_seterr_(errstr, errstr_size, "could not create resampler %d -> %d Hz: %s",
                               rate, target_rate, serr ? serr : "unknown error");
            err = KILN_ERR__FAIL;
            goto fail;
        }
    }
    /* Reserve what the header promises (bounded), so typical inputs need no
     * realloc; anything beyond grows geometrically. */
    if (frames_known) {
        double est = (double)info->frames * ratio + 1024.0;
        size_t want = est > (double)KILN_AUDIO_PREALLOC_MAX ? KILN_AUDIO_PREALLOC_MAX : (size_t)est;
        if ((err = kiln_audio_out_reserve_(&ob, want, errstr, errstr_size)) != KILN_OK)
            goto fail;
    }

    while ((got = sf_readf_float(sf, ibuf, KILN_AUDIO_CHUNK)) > 0) {
        total_in += got;
        if (max_seconds > 0 && (double)total_in / rate > max_seconds) {
            kiln_audio_seterr_(errstr, errstr_size,
                               "audio is too long: more than the limit of %.2f s", max_seconds);
            err = KILN_ERR_TOO_LARGE;
            goto fail;
        }
        for (i = 0; i < (size_t)got; i++) {
            const float *f = ibuf + i * (size_t)ch;
            s = 0.0;
            for (c = 0; c < ch; c++)
                s += f[c];
            s /= ch;
            if (!isfinite(s))
                s = 0.0;
            mbuf[i] = (float)(s > 1.0 ? 1.0 : s < -1.0 ? -1.0 : s);
        }
        if ((err = kiln_audio_out_push_(&ob, soxr, ratio, mbuf, (size_t)got, errstr,
                                        errstr_size)) != KILN_OK)
            goto fail;
    }
    if (sf_error(sf) != SF_ERR_NO_ERROR)
        KILN_LOG_DEBUG("audio: decoding stopped after %lld frames: %s", (long long)total_in,
                       sf_strerror(sf));
    if (total_in == 0) {
        kiln_audio_seterr_(errstr, errstr_size, "audio is empty");
        err = KILN_ERR_BAD_INPUT;
        goto fail;
    }
    if (soxr &&
        (err = kiln_audio_out_push_(&ob, soxr, ratio, NULL, 0, errstr, errstr_size)) != KILN_OK)
        goto fail;
    if (ob.n == 0) {
        kiln_audio_seterr_(errstr, errstr_size, "audio is empty");
        err = KILN_ERR_BAD_INPUT;
        goto fail;
    }

    /* The resampler may ring a little past full scale; keep [-1, 1]. */
    for (i = 0; i < ob.n; i++) {
        s = ob.buf[i];
        if (s > 1.0 || s < -1.0)
            ob.buf[i] = s > 0 ? 1.0f : -1.0f;
        s = ob.buf[i];
        sumsq += s * s;
        if (fabs(s) > peak)
            peak = fabs(s);
    }

    out->pcm = ob.buf;
    out->n_samples = ob.n;
    out->sample_rate = target_rate;
    out->src_rate = rate;
    out->src_channels = ch;
    out->duration_s = (double)ob.n / target_rate;
    out->rms_dbfs = kiln_audio_dbfs_(sqrt(sumsq / (double)ob.n));
    out->peak_dbfs = kiln_audio_dbfs_(peak);
    kiln_audio_format_name_(info->format, out->format, sizeof(out->format));
    soxr_delete(soxr);
    free(ibuf);
    free(mbuf);
    return KILN_OK;

fail:
    soxr_delete(soxr);
    free(ob.buf);
    free(ibuf);
    free(mbuf);
    return err;
}

/* Validates the arguments every decode entry point shares; zeroes \p out. */
static kiln_err_t kiln_audio_check_args_(int target_rate, double max_seconds, kiln_audio_t *out,
                                         char *errstr, size_t errstr_size) {
    if (errstr && errstr_size)
        errstr[0] = '\0';
    if (!out) {
        kiln_audio_seterr_(errstr, errstr_size, "no output given");
        return KILN_ERR__INVALID_ARG;
    }
    memset(out, 0, sizeof(*out));
    if (!kiln_audio_rate_ok_(target_rate)) {
        kiln_audio_seterr_(errstr, errstr_size, "invalid target sample rate %d Hz", target_rate);
        return KILN_ERR__INVALID_ARG;
    }
    if (!(max_seconds >= 0.0)) {
        kiln_audio_seterr_(errstr, errstr_size, "invalid max_seconds %g", max_seconds);
        return KILN_ERR__INVALID_ARG;
    }
    return KILN_OK;
}

/* ------------------------------------------------------------------------ */
/* public API                                                               */

kiln_err_t kiln_audio_decode(const void *data, size_t len, int target_rate, double max_seconds,
                             kiln_audio_t *out, char *errstr, size_t errstr_size) {
    SF_VIRTUAL_IO vio_cb = {kiln_audio_vio_filelen_, kiln_audio_vio_seek_, kiln_audio_vio_read_,
                            kiln_audio_vio_write_, kiln_audio_vio_tell_};
    kiln_audio_vio_t vio;
    SF_INFO info;
    SNDFILE *sf;
    kiln_err_t err;

    if ((err = kiln_audio_check_args_(target_rate, max_seconds, out, errstr, errstr_size)))
        return err;
    if (len == 0) {
        kiln_audio_seterr_(errstr, errstr_size, "audio is empty");
        return KILN_ERR_BAD_INPUT;
    }
    if (!data || len > (size_t)INT64_MAX) {
        kiln_audio_seterr_(errstr, errstr_size, "invalid audio buffer");
        return KILN_ERR__INVALID_ARG;
    }
    vio.data = data;
    vio.len = (sf_count_t)len;
    vio.pos = 0;
    memset(&info, 0, sizeof(info));
    sf = sf_open_virtual(&vio_cb, SFM_READ, &info, &vio);
    if (!sf) {
        kiln_audio_seterr_(errstr, errstr_size, "could not decode audio: %s", sf_strerror(NULL));
        return KILN_ERR_BAD_INPUT;
    }
    err = kiln_audio_decode_sf_(sf, &info, target_rate, max_seconds, out, errstr, errstr_size);
    sf_close(sf);
    return err;
}

/*
 * Opens \p path read-only and hands it to libsndfile. Errors: KILN_ERR_IO
 * when the file cannot be opened, KILN_ERR_BAD_INPUT when libsndfile cannot
 * read it.
 */
static kiln_err_t kiln_audio_open_path_(const char *path, SF_INFO *info, SNDFILE **sfp,
                                        char *errstr, size_t errstr_size) {
    int fd;

    *sfp = NULL;
    if (!path) {
        kiln_audio_seterr_(errstr, errstr_size, "no path given");
        return KILN_ERR__INVALID_ARG;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        kiln_audio_seterr_(errstr, errstr_size, "could not open \"%s\": %s", path, strerror(errno));
        return KILN_ERR_IO;
    }
    memset(info, 0, sizeof(*info));
    *sfp = sf_open_fd(fd, SFM_READ, info, 1 /* close fd on sf_close */);
    if (!*sfp) {
        kiln_audio_seterr_(errstr, errstr_size, "could not decode audio file \"%s\": %s", path,
                           sf_strerror(NULL));
        /* no close(fd) here: with close_desc = 1 libsndfile has already closed
         * it on failure, and closing again could close another thread's
         * descriptor (seen: librdkafka's broker socket) */
        return KILN_ERR_BAD_INPUT;
    }
    return KILN_OK;
}

kiln_err_t kiln_audio_decode_file(const char *path, int target_rate, double max_seconds,
                                  kiln_audio_t *out, char *errstr, size_t errstr_size) {
    SF_INFO info;
    SNDFILE *sf;
    kiln_err_t err;

    if ((err = kiln_audio_check_args_(target_rate, max_seconds, out, errstr, errstr_size)))
        return err;
    if ((err = kiln_audio_open_path_(path, &info, &sf, errstr, errstr_size)))
        return err;
    err = kiln_audio_decode_sf_(sf, &info, target_rate, max_seconds, out, errstr, errstr_size);
    sf_close(sf);
    return err;
}

kiln_err_t kiln_audio_probe_file(const char *path, double *duration_s, int *rate, int *channels,
                                 char *errstr, size_t errstr_size) {
    SF_INFO info;
    SNDFILE *sf;
    kiln_err_t err;

    if (errstr && errstr_size)
        errstr[0] = '\0';
    if ((err = kiln_audio_open_path_(path, &info, &sf, errstr, errstr_size)))
        return err;
    sf_close(sf);
    if (info.channels < 1 || !kiln_audio_rate_ok_(info.samplerate)) {
        kiln_audio_seterr_(
            errstr, errstr_size,
            "could not decode audio file \"%s\": invalid header (%d Hz, %d channels)", path,
            info.samplerate, info.channels);
        return KILN_ERR_BAD_INPUT;
    }
    if (info.frames <= 0) {
        kiln_audio_seterr_(errstr, errstr_size, "audio file \"%s\" is empty", path);
        return KILN_ERR_BAD_INPUT;
    }
    if (duration_s)
        *duration_s = info.frames < SF_COUNT_MAX ? (double)info.frames / info.samplerate : -1.0;
    if (rate)
        *rate = info.samplerate;
    if (channels)
        *channels = info.channels;
    return KILN_OK;
}

void kiln_audio_free(kiln_audio_t *a) {
    if (!a)
        return;
    free(a->pcm);
    a->pcm = NULL;
    a->n_samples = 0;
}
