/*
 * lib/kafka.c - implementation of kiln/kafka.h.
 */
#include "kiln/kafka.h"

#include "kiln/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const kiln_modalities[KILN_N_MODALITIES] = {"transcribe", "speak", "image"};

int kiln_modality_valid(const char *m) {
    for (int i = 0; i < KILN_N_MODALITIES; i++)
        if (!strcmp(m, kiln_modalities[i]))
            return 1;
    return 0;
}

int kiln_kafka_bootstrap(const kiln_conf_t *conf, char *out, size_t out_size, int *embedded,
                         char *errstr, size_t errstr_size) {
    const char *bs = kiln_conf_get(conf, "broker.bootstrap");
    if (embedded)
        *embedded = 0;
    if (*bs) {
        snprintf(out, out_size, "%s", bs);
        return 0;
    }
    char *path = *kiln_conf_get(conf, "broker.addr_file")
                     ? strdup(kiln_conf_get(conf, "broker.addr_file"))
                     : kiln_conf_stack_path(conf, "broker.addr");
    FILE *fp = fopen(path, "r");
    if (!fp) {
        snprintf(errstr, errstr_size,
                 "could not open \"%s\": %s (is the stack up? run `kiln up`, or set broker.bootstrap)",
                 path, strerror(errno));
        free(path);
        return -1;
    }
    if (!fgets(out, (int)out_size, fp))
        out[0] = '\0';
    fclose(fp);
    out[strcspn(out, "\r\n")] = '\0';
    if (!*out) {
        snprintf(errstr, errstr_size, "broker address file \"%s\" is empty", path);
        free(path);
        return -1;
    }
    free(path);
    if (embedded)
        *embedded = 1;
    return 0;
}

typedef struct {
    rd_kafka_conf_t *rc;
    char *errstr;
    size_t errstr_size;
} kiln_kconf_ctx_t;

static int kiln_kafka_set_pass(const char *key, const char *value, void *opaque) {
    kiln_kconf_ctx_t *c = opaque;
    if (rd_kafka_conf_set(c->rc, key, value, c->errstr, c->errstr_size) != RD_KAFKA_CONF_OK)
        return -1;
    return 0;
}

rd_kafka_conf_t *kiln_kafka_conf(const kiln_conf_t *conf, char *errstr, size_t errstr_size) {
    char bs[1024];
    if (kiln_kafka_bootstrap(conf, bs, sizeof(bs), NULL, errstr, errstr_size))
        return NULL;
    rd_kafka_conf_t *rc = rd_kafka_conf_new();
    if (rd_kafka_conf_set(rc, "bootstrap.servers", bs, errstr, errstr_size) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(rc);
        return NULL;
    }
    kiln_kconf_ctx_t c = {rc, errstr, errstr_size};
    if (kiln_conf_foreach_passthrough(conf, "kafka.", kiln_kafka_set_pass, &c)) {
        rd_kafka_conf_destroy(rc);
        return NULL;
    }
    return rc;
}

static int kiln_kafka_set(rd_kafka_conf_t *rc, const char *k, const char *v, char *errstr,
                          size_t errstr_size) {
    return rd_kafka_conf_set(rc, k, v, errstr, errstr_size) == RD_KAFKA_CONF_OK ? 0 : -1;
}

static long kiln_kafka_dr_failures_;

long kiln_kafka_delivery_failures(void) { return __atomic_load_n(&kiln_kafka_dr_failures_, __ATOMIC_SEQ_CST); }

static void kiln_kafka_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    if (m->err) {
        __atomic_add_fetch(&kiln_kafka_dr_failures_, 1, __ATOMIC_SEQ_CST);
        KILN_LOG_WARN("could not deliver a message to %s [%d]: %s", rd_kafka_topic_name(m->rkt),
                      m->partition, rd_kafka_err2str(m->err));
    }
}

rd_kafka_t *kiln_kafka_producer_new(const kiln_conf_t *conf, char *errstr, size_t errstr_size) {
    rd_kafka_conf_t *rc = kiln_kafka_conf(conf, errstr, errstr_size);
    if (!rc)
        return NULL;
    rd_kafka_conf_set_dr_msg_cb(rc, kiln_kafka_dr_cb);
    /* defaults first; kafka.* pass-through already applied wins only if set
     * after, so apply defaults only when absent */
    if (!*kiln_conf_get(conf, "kafka.enable.idempotence"))
        kiln_kafka_set(rc, "enable.idempotence", "true", errstr, errstr_size);
    if (!*kiln_conf_get(conf, "kafka.linger.ms"))
        kiln_kafka_set(rc, "linger.ms", "5", errstr, errstr_size);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, rc, errstr, errstr_size);
    if (!rk)
        rd_kafka_conf_destroy(rc);
    return rk;
}

rd_kafka_t *kiln_kafka_consumer_new(const kiln_conf_t *conf, const char *client_id,
                                    char *errstr, size_t errstr_size) {
    rd_kafka_conf_t *rc = kiln_kafka_conf(conf, errstr, errstr_size);
    if (!rc)
        return NULL;
    if (kiln_kafka_set(rc, "group.id", "kiln-workers", errstr, errstr_size) ||
        kiln_kafka_set(rc, "enable.auto.commit", "false", errstr, errstr_size) ||
        kiln_kafka_set(rc, "enable.auto.offset.store", "false", errstr, errstr_size) ||
        kiln_kafka_set(rc, "auto.offset.reset", "error", errstr, errstr_size) ||
        kiln_kafka_set(rc, "client.id", client_id, errstr, errstr_size) ||
        kiln_kafka_set(rc, "enable.partition.eof", "false", errstr, errstr_size) ||
        /* bounded prefetch: the worker's memory budget covers the rest */
        (!*kiln_conf_get(conf, "kafka.queued.max.messages.kbytes") &&
         kiln_kafka_set(rc, "queued.max.messages.kbytes", "16384", errstr, errstr_size))) {
        rd_kafka_conf_destroy(rc);
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, rc, errstr, errstr_size);
    if (!rk) {
        rd_kafka_conf_destroy(rc);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

void kiln_kafka_topic(const kiln_conf_t *conf, const char *modality, const char *kind,
                      char *out, size_t out_size) {
    snprintf(out, out_size, "%s.%s.%s", kiln_conf_get(conf, "broker.topic_prefix"), modality, kind);
}

void kiln_kafka_events_topic(const kiln_conf_t *conf, char *out, size_t out_size) {
    snprintf(out, out_size, "%s.events", kiln_conf_get(conf, "broker.topic_prefix"));
}

int kiln_kafka_partitions(const kiln_conf_t *conf, const char *modality) {
    char key[64];
    snprintf(key, sizeof(key), "broker.partitions.%s", modality);
    return (int)kiln_conf_get_int(conf, key);
}

const char *kiln_kafka_header(const rd_kafka_message_t *m, const char *name, char *out,
                              size_t out_size) {
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR || !hdrs)
        return NULL;
    const void *val;
    size_t size;
    if (rd_kafka_header_get_last(hdrs, name, &val, &size) != RD_KAFKA_RESP_ERR_NO_ERROR || !val)
        return NULL;
    if (size >= out_size)
        size = out_size - 1;
    memcpy(out, val, size);
    out[size] = '\0';
    return out;
}

rd_kafka_resp_err_t kiln_kafka_watermarks(rd_kafka_t *rk, const char *topic, int32_t partition,
                                          int64_t *lo, int64_t *hi, int timeout_ms) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(2);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(rk, l, timeout_ms);
    if (!err)
        err = l->elems[0].err;
    if (!err) {
        *lo = l->elems[0].offset;
        l->elems[0].offset = RD_KAFKA_OFFSET_END;
        l->elems[0].err = RD_KAFKA_RESP_ERR_NO_ERROR;
        err = rd_kafka_offsets_for_times(rk, l, timeout_ms);
        if (!err)
            err = l->elems[0].err;
        if (!err)
            *hi = l->elems[0].offset;
    }
    rd_kafka_topic_partition_list_destroy(l);
    return err;
}
