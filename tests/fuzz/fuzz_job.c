/*
 * tests/fuzz/fuzz_job.c - the job message parser and validator,
 * kiln_job_parse() (lib/job.c), as a worker runs it on every Kafka message.
 *
 * Each input is parsed twice: with the default limits and with tight ones
 * (512 bytes, depth 3, 16 inline bytes), so that both the limit checks and
 * the field validation are reached. On success the job must keep every
 * promise of kiln/job.h: a valid id and tenant, a known modality, exactly
 * one non-empty input, a priority in range, a short language.
 */
#include <string.h>

#include "kiln/job.h"
#include "kiln/kafka.h"
#include "tests/fuzz/fuzz.h"

static void kiln_fuzz_job_check_(const uint8_t *data, size_t size, const kiln_job_limits_t *lim) {
    kiln_job_t job;
    char err[512];
    err[0] = '\0';
    kiln_err_t rc = kiln_job_parse(data, size, lim, &job, err, sizeof(err));
    KILN_FUZZ_CHECK(memchr(job.id, '\0', sizeof(job.id)));
    KILN_FUZZ_CHECK(memchr(job.tenant, '\0', sizeof(job.tenant)));
    KILN_FUZZ_CHECK(kiln_tenant_valid(job.tenant));  /* the dead row is keyed by it */
    KILN_FUZZ_CHECK(job.id[0] == '\0' || kiln_job_id_valid(job.id));
    if (rc == KILN_OK) {
        KILN_FUZZ_CHECK(size <= lim->max_message_bytes);
        KILN_FUZZ_CHECK(job.root && json_is_object(job.root));
        KILN_FUZZ_CHECK(kiln_job_id_valid(job.id));
        KILN_FUZZ_CHECK(kiln_modality_valid(job.modality));
        int n_in = !!job.input_uri + !!job.inline_b64 + !!job.text;
        KILN_FUZZ_CHECK(n_in == 1);
        KILN_FUZZ_CHECK(!job.input_uri || *job.input_uri);
        KILN_FUZZ_CHECK(!job.inline_b64 ||
                        strlen(job.inline_b64) <= (lim->max_inline_bytes + 2) / 3 * 4);
        KILN_FUZZ_CHECK(strcmp(job.modality, "transcribe") || !job.text);
        KILN_FUZZ_CHECK(job.priority >= -1000 && job.priority <= 1000);
        KILN_FUZZ_CHECK(!job.language || strlen(job.language) <= 15);
        KILN_FUZZ_CHECK(!job.params || json_is_object(job.params));
    } else {
        KILN_FUZZ_CHECK(rc == KILN_ERR_BAD_JOB || rc == KILN_ERR_TOO_LARGE);
        KILN_FUZZ_CHECK(err[0] != '\0');
    }
    kiln_job_clear(&job);
}

static int kiln_fuzz_job(const uint8_t *data, size_t size) {
    kiln_job_limits_t lim = kiln_job_default_limits();
    kiln_fuzz_job_check_(data, size, &lim);
    kiln_job_limits_t tight = {.max_message_bytes = 512, .max_json_depth = 3,
                               .max_inline_bytes = 16};
    kiln_fuzz_job_check_(data, size, &tight);
    return 0;
}

KILN_FUZZ_MAIN(kiln_fuzz_job)
