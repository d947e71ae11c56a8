/*
 * lib/err.c - text for kiln_err_t codes.
 */
#include "kiln/err.h"

static const struct {
    kiln_err_t err;
    const char *name;
    const char *desc;
} kiln_err_descs[] = {
    {KILN_ERR__FAIL, "_FAIL", "internal failure"},
    {KILN_ERR__NOMEM, "_NOMEM", "out of memory"},
    {KILN_ERR__INVALID_ARG, "_INVALID_ARG", "invalid argument"},
    {KILN_ERR__QUEUE_FULL, "_QUEUE_FULL", "queue full"},
    {KILN_ERR__TIMED_OUT, "_TIMED_OUT", "timed out"},
    {KILN_ERR__FENCED, "_FENCED", "assignment epoch is stale"},
    {KILN_ERR__NOT_FOUND, "_NOT_FOUND", "not found"},
    {KILN_ERR__UNSUPPORTED, "_UNSUPPORTED", "not supported"},
    {KILN_ERR__STOPPED, "_STOPPED", "stopped"},
    {KILN_OK, "OK", "success"},
    {KILN_ERR_IO, "IO", "I/O error"},
    {KILN_ERR_CONF, "CONF", "invalid configuration"},
    {KILN_ERR_PG, "PG", "database error"},
    {KILN_ERR_KAFKA, "KAFKA", "broker error"},
    {KILN_ERR_STORE, "STORE", "object store error"},
    {KILN_ERR_BAD_JOB, "BAD_JOB", "invalid job message"},
    {KILN_ERR_BAD_INPUT, "BAD_INPUT", "invalid input data"},
    {KILN_ERR_TOO_LARGE, "TOO_LARGE", "input over the configured limit"},
    {KILN_ERR_BAD_KEY, "BAD_KEY", "object key rejected"},
    {KILN_ERR_MODEL, "MODEL", "invalid model file"},
    {KILN_ERR_ENGINE, "ENGINE", "engine failure"},
};

#define KILN_N_ERRS (sizeof(kiln_err_descs) / sizeof(kiln_err_descs[0]))

const char *kiln_err2str(kiln_err_t err) {
    for (unsigned i = 0; i < KILN_N_ERRS; i++)
        if (kiln_err_descs[i].err == err)
            return kiln_err_descs[i].desc;
    return "unknown error";
}

const char *kiln_err2name(kiln_err_t err) {
    for (unsigned i = 0; i < KILN_N_ERRS; i++)
        if (kiln_err_descs[i].err == err)
            return kiln_err_descs[i].name;
    return "UNKNOWN";
}

int kiln_err_is_retriable(kiln_err_t err) {
    switch (err) {
    case KILN_ERR_IO:
    case KILN_ERR_PG:
    case KILN_ERR_KAFKA:
    case KILN_ERR_STORE:
    case KILN_ERR__QUEUE_FULL:
    case KILN_ERR__TIMED_OUT:
        return 1;
    default:
        return 0;
    }
}
