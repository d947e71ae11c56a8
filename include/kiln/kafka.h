/*
 * kiln/kafka.h - broker plumbing shared by producers, workers and the
 * scheduler: bootstrap resolution, librdkafka configuration from the
 * property table (kafka.* pass-through), topic names.
 *
 * The code is broker-agnostic: the embedded mock cluster and Apache Kafka are
 * reached the same way; only the bootstrap address differs.
 */
#ifndef KILN_KAFKA_H
#define KILN_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "kiln/conf.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KILN_N_MODALITIES 3
extern const char *const kiln_modalities[KILN_N_MODALITIES]; /* transcribe, speak, image */

/** @returns 1 if \p m is a known modality. */
int kiln_modality_valid(const char *m);

/**
 * Resolves the bootstrap servers: broker.bootstrap, else the first line of
 * broker.addr_file (default <stack.dir>/broker.addr).
 * @returns 0, or -1 with errstr. *embedded is set to 1 when the address came
 * from the embedded broker's file (enables the partition-cap backpressure).
 */
int kiln_kafka_bootstrap(const kiln_conf_t *conf, char *out, size_t out_size, int *embedded,
                         char *errstr, size_t errstr_size);

/** Builds a librdkafka configuration (bootstrap + kafka.* keys). NULL on error. */
rd_kafka_conf_t *kiln_kafka_conf(const kiln_conf_t *conf, char *errstr, size_t errstr_size);

/** Creates a producer (idempotent, acks=all). Failed deliveries are logged and
 *  counted (kiln_kafka_delivery_failures). NULL with errstr on error. */
rd_kafka_t *kiln_kafka_producer_new(const kiln_conf_t *conf, char *errstr, size_t errstr_size);

/**
 * Creates a consumer for manual assignment (rd_kafka_assign): no group
 * subscription, no offset commits to the broker, auto.offset.reset=error
 * so that a stored offset outside the log is reported, never skipped.
 */
rd_kafka_t *kiln_kafka_consumer_new(const kiln_conf_t *conf, const char *client_id,
                                    char *errstr, size_t errstr_size);

/** Messages from kiln_kafka_producer_new() producers that failed delivery, process-wide. */
long kiln_kafka_delivery_failures(void);

/** "<prefix>.<modality>.<kind>" (kind: "jobs" or "dlq") into \p out. */
void kiln_kafka_topic(const kiln_conf_t *conf, const char *modality, const char *kind,
                      char *out, size_t out_size);
/** "<prefix>.events" into \p out. */
void kiln_kafka_events_topic(const kiln_conf_t *conf, char *out, size_t out_size);
/** Configured partition count of \p modality's job topic. */
int kiln_kafka_partitions(const kiln_conf_t *conf, const char *modality);

/**
 * Low and high watermarks of \p topic [\p partition] from the broker; each of
 * its two requests gives up after \p timeout_ms, even when the broker is down: use this, never
 * rd_kafka_query_watermark_offsets(), which librdkafka < 2.3 lets hang for
 * as long as the broker is unreachable (librdkafka#2588). It sends the same
 * ListOffsets request (timestamps OFFSET_BEGINNING / OFFSET_END) through
 * rd_kafka_offsets_for_times(), whose timeout is enforced.
 * @returns RD_KAFKA_RESP_ERR_NO_ERROR, or the error (e.g. _TIMED_OUT).
 */
rd_kafka_resp_err_t kiln_kafka_watermarks(rd_kafka_t *rk, const char *topic, int32_t partition,
                                          int64_t *lo, int64_t *hi, int timeout_ms);

/** @returns the value of header \p name as a NUL-terminated copy in \p out, or NULL. */
const char *kiln_kafka_header(const rd_kafka_message_t *m, const char *name, char *out,
                              size_t out_size);

#ifdef __cplusplus
}
#endif
#endif
