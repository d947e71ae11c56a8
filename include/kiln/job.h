/*
 * kiln/job.h - the job message: parse + validate (workers), build (producers).
 *
 * schema/job.schema.json is the normative description. Unknown fields are
 * kept (forward compatibility). Validation failures return KILN_ERR_BAD_JOB
 * (or KILN_ERR_TOO_LARGE for size/depth limits) with a reason that goes into
 * the DLQ headers and the dead job row.
 *
 * Speak jobs: the text is input.text (or a UTF-8 file at input.uri, counted
 * by the worker once fetched); params.voice (a voice name), params.format
 * (wav, flac, ogg, opus, mp3) and params.sample_rate (8000..48000, a number
 * or a numeric string) are checked here. Empty text is KILN_ERR_BAD_JOB,
 * text over max_text_chars code points KILN_ERR_TOO_LARGE.
 */
#ifndef KILN_JOB_H
#define KILN_JOB_H

#include <jansson.h>
#include <stddef.h>

#include "kiln/err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KILN_JOB_ID_MAX 128
#define KILN_TENANT_MAX 64

typedef struct kiln_job_limits_s {
    size_t max_message_bytes;
    int max_json_depth;
    size_t max_inline_bytes;
    size_t max_text_chars;  /* speak: longest input.text in code points; 0: no limit */
} kiln_job_limits_t;

/** @returns the default limits (1 MiB message, depth 32, 64 KiB inline, text unlimited). */
kiln_job_limits_t kiln_job_default_limits(void);

typedef struct kiln_job_s {
    char id[KILN_JOB_ID_MAX + 1];
    char tenant[KILN_TENANT_MAX + 1];
    char modality[16];
    int priority;
    const char *input_uri;     /* points into root; NULL if not given */
    const char *inline_b64;    /* points into root; NULL if not given */
    const char *text;          /* points into root; NULL if not given */
    const char *language;      /* params.language or NULL */
    const char *deadline;      /* as given, or NULL */
    const char *voice;         /* speak: params.voice or NULL */
    const char *format;        /* speak: params.format or NULL */
    int sample_rate;           /* speak: params.sample_rate, 0 if not given */
    long long text_chars;      /* code points of input.text (0 without text) */
    json_t *params;            /* borrowed from root; may be NULL */
    json_t *root;              /* owned */
} kiln_job_t;

/**
 * Parses and validates \p len bytes. On success fills \p job (release with
 * kiln_job_clear). On failure job->id/tenant are filled when they could be
 * read (so the dead row can be keyed), and errstr says why.
 */
kiln_err_t kiln_job_parse(const void *buf, size_t len, const kiln_job_limits_t *lim,
                          kiln_job_t *job, char *errstr, size_t errstr_size);

void kiln_job_clear(kiln_job_t *job);

/** @returns 1 if \p id is 1..128 chars of [A-Za-z0-9._:-] */
int kiln_job_id_valid(const char *id);
/** @returns 1 if \p t is 1..64 chars of [A-Za-z0-9_-] */
int kiln_tenant_valid(const char *t);

/** @returns the number of code points of UTF-8 \p s (bytes 10xxxxxx are not counted). */
long long kiln_utf8_chars(const char *s);

/** @returns 1 if \p name is a valid voice name: 1..64 of [A-Za-z0-9._-], not starting with '.' */
int kiln_voice_name_valid(const char *name);

/** @returns 1 if \p fmt is a speak output format: wav, flac, ogg, opus or mp3. */
int kiln_speak_format_valid(const char *fmt);

/** Writes a new random UUIDv4 into \p out (37 bytes). */
void kiln_job_new_id(char out[37]);

#ifdef __cplusplus
}
#endif
#endif
