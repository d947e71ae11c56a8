/*
 * kiln/job.h - the job message: parse + validate (workers), build (producers).
 *
 * schema/job.schema.json is the normative description. Unknown fields are
 * kept (forward compatibility). Validation failures return KILN_ERR_BAD_JOB
 * (or KILN_ERR_TOO_LARGE for size/depth limits) with a reason that goes into
 * the DLQ headers and the dead job row.
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
} kiln_job_limits_t;

/** @returns the default limits (1 MiB message, depth 32, 64 KiB inline). */
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

/** Writes a new random UUIDv4 into \p out (37 bytes). */
void kiln_job_new_id(char out[37]);

#ifdef __cplusplus
}
#endif
#endif
