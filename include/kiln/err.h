/*
 * kiln/err.h - the one error enum of kiln.
 *
 * KILN_OK is 0. Errors that come from outside (Postgres, Kafka, the object
 * store, the input) are positive; internal/local conditions are negative and
 * live in the reserved range KILN_ERR__BEGIN..KILN_ERR__END, in the manner of
 * librdkafka's rd_kafka_resp_err_t. kiln_err2str() never returns NULL.
 */
#ifndef KILN_ERR_H
#define KILN_ERR_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kiln_err_e {
    KILN_ERR__BEGIN = -200,
    KILN_ERR__FAIL = -199,        /* generic internal failure */
    KILN_ERR__NOMEM = -198,       /* out of memory */
    KILN_ERR__INVALID_ARG = -197, /* caller passed a bad argument */
    KILN_ERR__QUEUE_FULL = -196,  /* backpressure: retry later */
    KILN_ERR__TIMED_OUT = -195,
    KILN_ERR__FENCED = -194,      /* assignment epoch is stale */
    KILN_ERR__NOT_FOUND = -193,
    KILN_ERR__UNSUPPORTED = -192,
    KILN_ERR__STOPPED = -191,     /* shutdown requested */
    KILN_ERR__END = -100,

    KILN_OK = 0,
    KILN_ERR_IO = 1,              /* file or socket I/O */
    KILN_ERR_CONF = 2,            /* bad configuration */
    KILN_ERR_PG = 3,              /* Postgres error */
    KILN_ERR_KAFKA = 4,           /* broker error */
    KILN_ERR_STORE = 5,           /* object store error (retriable) */
    KILN_ERR_BAD_JOB = 6,         /* job message invalid: goes to the DLQ */
    KILN_ERR_BAD_INPUT = 7,       /* input undecodable / empty: DLQ */
    KILN_ERR_TOO_LARGE = 8,       /* input over a configured limit: DLQ */
    KILN_ERR_BAD_KEY = 9,         /* object key rejected (traversal etc.) */
    KILN_ERR_MODEL = 10,          /* model file invalid */
    KILN_ERR_ENGINE = 11,         /* engine failed on a batch */
} kiln_err_t;

/** @returns a static, human-readable description of \p err. */
const char *kiln_err2str(kiln_err_t err);

/** @returns the short symbolic name of \p err (e.g. "BAD_JOB"). */
const char *kiln_err2name(kiln_err_t err);

/** @returns 1 if a job that failed with \p err may succeed on retry. */
int kiln_err_is_retriable(kiln_err_t err);

#ifdef __cplusplus
}
#endif
#endif
