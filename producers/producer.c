/*
 * producers/producer.c - libkiln's producer (kiln/producer.h).
 *
 * Order of effects for one job: object upload -> jobs row (queued) ->
 * produce. A crash between any two leaves at worst a queued row whose message
 * never went out; `kiln requeue` re-produces it.
 */
#include "kiln/producer.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kiln/audio.h"
#include "kiln/job.h"
#include "kiln/kafka.h"
#include "kiln/log.h"
#include "kiln/pg.h"
#include "kiln/store.h"

#define KILN_MAX_PARTS 4096
#define KILN_MSG_OVERHEAD 120 /* record + header bytes per message in the log, estimated */

typedef struct {
    long long unconsumed_bytes; /* estimate since the last refresh */
    double refreshed_at;
} kiln_part_state_t;

struct kiln_producer_s {
    kiln_conf_t *conf;
    PGconn *pg;
    rd_kafka_t *rk;
    kiln_store_t *store;
    int embedded;
    long long cap_bytes;
    long failed;
    kiln_part_state_t *parts[KILN_N_MODALITIES];
};

static double kiln_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

kiln_submit_params_t kiln_submit_default_params(void) {
    kiln_submit_params_t sp = {.id = NULL, .tenant = "default", .modality = "transcribe",
                               .priority = 0, .deadline = NULL, .params_json = NULL,
                               .work_units = -1, .backpressure = 1};
    return sp;
}

static void kiln_producer_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    kiln_producer_t *kp = opaque;
    if (m->err) {
        kp->failed++;
        KILN_LOG_ERROR("could not deliver job message to %s [%d]: %s (the job stays queued; "
                       "`kiln requeue` re-produces it)",
                       rd_kafka_topic_name(m->rkt), m->partition, rd_kafka_err2str(m->err));
    }
}

kiln_producer_t *kiln_producer_new(const kiln_conf_t *conf, char *errstr, size_t errstr_size) {
    kiln_producer_t *kp = calloc(1, sizeof(*kp));
    if (!kp) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    kp->conf = kiln_conf_dup(conf);
    char bs[1024];
    if (kiln_kafka_bootstrap(conf, bs, sizeof(bs), &kp->embedded, errstr, errstr_size))
        goto fail;
    kp->cap_bytes = kiln_conf_get_int(conf, "broker.partition_cap_bytes");
    kp->pg = kiln_pg_connect(conf, "kiln-producer", errstr, errstr_size);
    if (!kp->pg)
        goto fail;
    kp->store = kiln_store_new(conf, errstr, errstr_size);
    if (!kp->store)
        goto fail;
    rd_kafka_conf_t *rc = kiln_kafka_conf(conf, errstr, errstr_size);
    if (!rc)
        goto fail;
    rd_kafka_conf_set_dr_msg_cb(rc, kiln_producer_dr_cb);
    rd_kafka_conf_set_opaque(rc, kp);
    if (!*kiln_conf_get(conf, "kafka.enable.idempotence"))
        rd_kafka_conf_set(rc, "enable.idempotence", "true", errstr, errstr_size);
    if (!*kiln_conf_get(conf, "kafka.linger.ms"))
        rd_kafka_conf_set(rc, "linger.ms", "5", errstr, errstr_size);
    kp->rk = rd_kafka_new(RD_KAFKA_PRODUCER, rc, errstr, errstr_size);
    if (!kp->rk) {
        rd_kafka_conf_destroy(rc);
        goto fail;
    }
    for (int i = 0; i < KILN_N_MODALITIES; i++) {
        int np = kiln_kafka_partitions(conf, kiln_modalities[i]);
        kp->parts[i] = calloc(np, sizeof(kiln_part_state_t));
        for (int p = 0; p < np; p++)
            kp->parts[i][p].refreshed_at = -1e9;
    }
    return kp;
fail:
    kiln_producer_destroy(kp);
    return NULL;
}

/* FNV-1a of the job id: the partition a job goes to (stable, documented). */
static int kiln_partition_for(const char *id, int n) {
    unsigned h = 2166136261u;
    for (const char *c = id; *c; c++)
        h = (h ^ (unsigned char)*c) * 16777619u;
    return (int)(h % (unsigned)n);
}

static int kiln_modality_index(const char *m) {
    for (int i = 0; i < KILN_N_MODALITIES; i++)
        if (!strcmp(m, kiln_modalities[i]))
            return i;
    return -1;
}

/* Refreshes the unconsumed-bytes estimate of one partition: (high watermark -
 * committed offset in Postgres) * average message size. */
static int kiln_producer_refresh(kiln_producer_t *kp, const char *topic, int part,
                                 kiln_part_state_t *ps, size_t msg_size) {
    int64_t lo = 0, hi = 0;
    rd_kafka_resp_err_t err = kiln_kafka_watermarks(kp->rk, topic, part, &lo, &hi, 5000);
    if (err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION || err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        hi = 0;
    else if (err)
        return -1;
    char ps_[16], errstr[256];
    snprintf(ps_, sizeof(ps_), "%d", part);
    const char *p[2] = {topic, ps_};
    PGresult *r = kiln_pg_execp(kp->pg,
                                "SELECT next_offset FROM offsets WHERE topic = $1 AND kpartition = $2::int",
                                2, p, errstr, sizeof(errstr));
    if (!r) { /* Postgres restarted? reconnect; the caller retries */
        KILN_LOG_WARN("could not read offsets: %s", errstr);
        kiln_pg_check(kp->pg);
        return -1;
    }
    long long committed = PQntuples(r) ? atoll(PQgetvalue(r, 0, 0)) : 0;
    PQclear(r);
    if (committed < lo)
        committed = lo;
    long long backlog = hi > committed ? hi - committed : 0;
    ps->unconsumed_bytes = backlog * (long long)(msg_size + KILN_MSG_OVERHEAD);
    ps->refreshed_at = kiln_now_s();
    return 0;
}

static kiln_err_t kiln_producer_wait_room(kiln_producer_t *kp, const char *topic, int part,
                                          kiln_part_state_t *ps, size_t msg_size, char *errstr,
                                          size_t errstr_size) {
    long long need = (long long)(msg_size + KILN_MSG_OVERHEAD);
    if (!kp->embedded || kp->cap_bytes <= 0)
        return KILN_OK;
    if (ps->unconsumed_bytes + need <= kp->cap_bytes / 2 && kiln_now_s() - ps->refreshed_at < 2)
        goto ok;
    double deadline = kiln_now_s() + kiln_conf_get_int(kp->conf, "producer.backpressure_timeout_ms") / 1000.0;
    int warned = 0;
    for (;;) {
        rd_kafka_flush(kp->rk, 1000); /* the estimate must see what we produced */
        if (kiln_producer_refresh(kp, topic, part, ps, msg_size) == 0 &&
            ps->unconsumed_bytes + need <= kp->cap_bytes)
            break;
        if (kiln_now_s() > deadline) {
            snprintf(errstr, errstr_size,
                     "partition %s [%d] is full (%lld unconsumed bytes, cap %lld): no room "
                     "within producer.backpressure_timeout_ms",
                     topic, part, ps->unconsumed_bytes, kp->cap_bytes);
            return KILN_ERR__QUEUE_FULL;
        }
        if (!warned++)
            KILN_LOG_INFO("partition %s [%d] near the embedded broker's cap: waiting for workers",
                          topic, part);
        usleep(200000);
    }
ok:
    ps->unconsumed_bytes += need;
    return KILN_OK;
}

static kiln_err_t kiln_producer_produce(kiln_producer_t *kp, const char *topic, int part,
                                        const char *id, const char *msg, size_t len,
                                        const char *tenant, double work_units,
                                        long long input_bytes, char *errstr, size_t errstr_size) {
    char wu[32], ib[32];
    snprintf(wu, sizeof(wu), "%.3f", work_units);
    snprintf(ib, sizeof(ib), "%lld", input_bytes);
    for (int attempt = 0;; attempt++) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            kp->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(part),
            RD_KAFKA_V_KEY(id, strlen(id)), RD_KAFKA_V_VALUE((void *)msg, len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADER("kiln-work-units", wu, -1),
            RD_KAFKA_V_HEADER("kiln-tenant", tenant, -1), RD_KAFKA_V_HEADER("kiln-input-bytes", ib, -1),
            RD_KAFKA_V_END);
        if (!err)
            break;
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && attempt < 600) {
            rd_kafka_poll(kp->rk, 100); /* local queue full: serve delivery reports, retry */
            continue;
        }
        snprintf(errstr, errstr_size, "could not produce job %s: %s", id, rd_kafka_err2str(err));
        return err == RD_KAFKA_RESP_ERR__QUEUE_FULL ? KILN_ERR__QUEUE_FULL : KILN_ERR_KAFKA;
    }
    rd_kafka_poll(kp->rk, 0);
    return KILN_OK;
}

/* Records the job (queued) and produces it. \p input is the "input" object. */
static kiln_err_t kiln_producer_submit(kiln_producer_t *kp, const kiln_submit_params_t *sp,
                                       const char *id, json_t *input, const char *input_uri,
                                       double work_units, long long input_bytes,
                                       char *errstr, size_t errstr_size) {
    int mi = kiln_modality_index(sp->modality);
    json_t *msg = json_object();
    json_object_set_new(msg, "id", json_string(id));
    json_object_set_new(msg, "tenant", json_string(sp->tenant));
    json_object_set_new(msg, "modality", json_string(sp->modality));
    json_object_set_new(msg, "input", input);
    if (sp->params_json) {
        json_error_t jerr;
        json_t *params = json_loads(sp->params_json, 0, &jerr);
        if (!params || !json_is_object(params)) {
            snprintf(errstr, errstr_size, "invalid params JSON: %s", params ? "not an object" : jerr.text);
            json_decref(params);
            json_decref(msg);
            return KILN_ERR__INVALID_ARG;
        }
        json_object_set_new(msg, "params", params);
    }
    if (sp->priority)
        json_object_set_new(msg, "priority", json_integer(sp->priority));
    if (sp->deadline)
        json_object_set_new(msg, "deadline", json_string(sp->deadline));
    char *text = json_dumps(msg, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(msg);
    if (!text)
        return KILN_ERR__NOMEM;
    size_t len = strlen(text);

    char topic[256];
    kiln_kafka_topic(kp->conf, sp->modality, "jobs", topic, sizeof(topic));
    int np = kiln_kafka_partitions(kp->conf, sp->modality);
    int part = kiln_partition_for(id, np);
    char part_s[16], prio_s[16], wu_s[32];
    snprintf(part_s, sizeof(part_s), "%d", part);
    snprintf(prio_s, sizeof(prio_s), "%d", sp->priority);
    snprintf(wu_s, sizeof(wu_s), "%.3f", work_units);
    const char *p[10] = {id, sp->tenant, sp->modality, prio_s, wu_s, input_uri, text, topic, part_s,
                         sp->deadline};
    PGresult *r = NULL;
    for (int attempt = 0; attempt < 2 && !r; attempt++) {
        if (attempt) { /* the connection broke (Postgres restarted): reconnect once */
            if (!kiln_pg_check(kp->pg) || PQstatus(kp->pg) != CONNECTION_OK)
                break;
            KILN_LOG_WARN("reconnected to Postgres");
        }
        r = kiln_pg_execp(
        kp->pg,
        "INSERT INTO jobs (id, tenant, modality, status, priority, work_units, input_uri, message,"
        " topic, kpartition, deadline)"
        " VALUES ($1, $2, $3, 'queued', $4::int, $5::float8, $6, $7, $8, $9::int, $10::timestamptz)"
        " ON CONFLICT (id) DO UPDATE SET message = EXCLUDED.message"
        "   WHERE jobs.status IN ('queued', 'running')"
        " RETURNING status",
        10, p, errstr, errstr_size);
    }
    if (!r) {
        free(text);
        return KILN_ERR_PG;
    }
    int fresh = PQntuples(r) > 0;
    PQclear(r);
    if (!fresh) { /* the id already reached a terminal row: nothing to do */
        KILN_LOG_INFO("job %s already finished; not submitted again", id);
        free(text);
        return KILN_OK;
    }
    kiln_err_t err = KILN_OK;
    if (sp->backpressure)
        err = kiln_producer_wait_room(kp, topic, part, &kp->parts[mi][part], len, errstr, errstr_size);
    if (!err)
        err = kiln_producer_produce(kp, topic, part, id, text, len, sp->tenant, work_units,
                                    input_bytes, errstr, errstr_size);
    free(text);
    if (err == KILN_ERR__QUEUE_FULL) {
        /* never produced: forget the row so that the caller's retry is clean */
        char e2[256];
        const char *d[1] = {id};
        PQclear(kiln_pg_execp(kp->pg, "DELETE FROM jobs WHERE id = $1 AND status = 'queued'", 1, d,
                              e2, sizeof(e2)));
    }
    return err;
}

/* {"<key>": "<value>"}: the "input" object of a job message */
static json_t *kiln_producer_input(const char *key, const char *value) {
    json_t *input = json_object();
    json_object_set_new(input, key, json_string(value));
    return input;
}

static kiln_err_t kiln_producer_check(kiln_producer_t *kp, const kiln_submit_params_t *sp,
                                      char *id_out, char *errstr, size_t errstr_size) {
    (void)kp;
    if (!sp->tenant || !kiln_tenant_valid(sp->tenant)) {
        snprintf(errstr, errstr_size, "invalid tenant \"%s\" (1-64 characters of A-Z a-z 0-9 _ -)",
                 sp->tenant ? sp->tenant : "");
        return KILN_ERR__INVALID_ARG;
    }
    if (!sp->modality || !kiln_modality_valid(sp->modality)) {
        snprintf(errstr, errstr_size, "unknown modality \"%s\"", sp->modality ? sp->modality : "");
        return KILN_ERR__INVALID_ARG;
    }
    if (sp->id) {
        if (!kiln_job_id_valid(sp->id)) {
            snprintf(errstr, errstr_size, "invalid job id \"%s\"", sp->id);
            return KILN_ERR__INVALID_ARG;
        }
        snprintf(id_out, KILN_JOB_ID_MAX + 1, "%s", sp->id);
    } else
        kiln_job_new_id(id_out);
    return KILN_OK;
}

kiln_err_t kiln_producer_submit_file(kiln_producer_t *kp, const char *path,
                                     const kiln_submit_params_t *sp, char *id_out,
                                     char *errstr, size_t errstr_size) {
    kiln_err_t err = kiln_producer_check(kp, sp, id_out, errstr, errstr_size);
    if (err)
        return err;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(errstr, errstr_size, "could not open \"%s\": %s", path, strerror(errno));
        return KILN_ERR_IO;
    }
    struct stat st;
    if (fstat(fileno(fp), &st) || !S_ISREG(st.st_mode)) {
        snprintf(errstr, errstr_size, "could not read \"%s\": not a regular file", path);
        fclose(fp);
        return KILN_ERR_IO;
    }
    size_t size = (size_t)st.st_size;
    char *buf = malloc(size ? size : 1);
    if (!buf || fread(buf, 1, size, fp) != size) {
        snprintf(errstr, errstr_size, "could not read \"%s\": %s", path, strerror(errno));
        fclose(fp);
        free(buf);
        return KILN_ERR_IO;
    }
    fclose(fp);
    double wu = sp->work_units;
    if (wu < 0 && !strcmp(sp->modality, "transcribe")) {
        char e2[256];
        if (kiln_audio_probe_file(path, &wu, NULL, NULL, e2, sizeof(e2)) != KILN_OK)
            wu = 0; /* undecodable: the worker will say why and dead-letter it */
    }
    if (wu < 0)
        wu = (double)size;
    /* input key: inputs/<tenant>/<id>/<sanitised base name> */
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char name[128];
    size_t j = 0;
    for (const char *c = base; *c && j + 1 < sizeof(name); c++)
        name[j++] = (((unsigned char)*c >= 0x80) || (*c >= 'a' && *c <= 'z') ||
                     (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || strchr("._-", *c))
                        ? *c
                        : '_';
    name[j] = '\0';
    if (!j || !strcmp(name, ".") || !strcmp(name, ".."))
        snprintf(name, sizeof(name), "input");
    char key[512], uri[1024];
    snprintf(key, sizeof(key), "inputs/%s/%s/%s", sp->tenant, id_out, name);
    err = kiln_store_put(kp->store, key, buf, size, errstr, errstr_size);
    free(buf);
    if (err)
        return err;
    kiln_store_uri(kp->store, key, uri, sizeof(uri));
    return kiln_producer_submit(kp, sp, id_out, kiln_producer_input("uri", uri), uri, wu,
                                (long long)size, errstr, errstr_size);
}

kiln_err_t kiln_producer_submit_uri(kiln_producer_t *kp, const char *uri,
                                    const kiln_submit_params_t *sp, char *id_out,
                                    char *errstr, size_t errstr_size) {
    kiln_err_t err = kiln_producer_check(kp, sp, id_out, errstr, errstr_size);
    if (err)
        return err;
    return kiln_producer_submit(kp, sp, id_out, kiln_producer_input("uri", uri), uri,
                                sp->work_units < 0 ? 0 : sp->work_units, 0, errstr, errstr_size);
}

kiln_err_t kiln_producer_submit_text(kiln_producer_t *kp, const char *text,
                                     const kiln_submit_params_t *sp, char *id_out,
                                     char *errstr, size_t errstr_size) {
    kiln_err_t err = kiln_producer_check(kp, sp, id_out, errstr, errstr_size);
    if (err)
        return err;
    double wu = sp->work_units < 0 ? (double)strlen(text) : sp->work_units;
    return kiln_producer_submit(kp, sp, id_out, kiln_producer_input("text", text), NULL, wu, (long long)strlen(text), errstr,
                                errstr_size);
}

long kiln_producer_requeue(kiln_producer_t *kp, long older_than_ms, char *errstr,
                           size_t errstr_size) {
    char ms[32];
    snprintf(ms, sizeof(ms), "%ld", older_than_ms);
    const char *p[1] = {ms};
    PGresult *r = kiln_pg_execp(
        kp->pg,
        "SELECT id, tenant, modality, message, kpartition, coalesce(work_units, 0)"
        " FROM jobs WHERE status IN ('queued', 'running') AND message IS NOT NULL"
        "   AND enqueued_at < now() - ($1::bigint * interval '1 millisecond')"
        " ORDER BY enqueued_at",
        1, p, errstr, errstr_size);
    if (!r)
        return -1;
    long n = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *modality = PQgetvalue(r, i, 2);
        int mi = kiln_modality_index(modality);
        if (mi < 0)
            continue;
        char topic[256];
        kiln_kafka_topic(kp->conf, modality, "jobs", topic, sizeof(topic));
        int np = kiln_kafka_partitions(kp->conf, modality);
        int part = kiln_partition_for(PQgetvalue(r, i, 0), np);
        const char *msg = PQgetvalue(r, i, 3);
        size_t len = (size_t)PQgetlength(r, i, 3);
        kiln_err_t err = kiln_producer_wait_room(kp, topic, part, &kp->parts[mi][part], len,
                                                 errstr, errstr_size);
        if (!err)
            err = kiln_producer_produce(kp, topic, part, PQgetvalue(r, i, 0), msg, len,
                                        PQgetvalue(r, i, 1), atof(PQgetvalue(r, i, 5)), 0, errstr,
                                        errstr_size);
        if (err) {
            PQclear(r);
            return -1;
        }
        n++;
    }
    PQclear(r);
    return n;
}

kiln_err_t kiln_producer_flush(kiln_producer_t *kp, int timeout_ms) {
    long before = kp->failed;
    rd_kafka_resp_err_t err = rd_kafka_flush(kp->rk, timeout_ms);
    if (err == RD_KAFKA_RESP_ERR__TIMED_OUT)
        return KILN_ERR__TIMED_OUT;
    return kp->failed > before ? KILN_ERR_KAFKA : KILN_OK;
}

long kiln_producer_failed_count(const kiln_producer_t *kp) { return kp->failed; }

void kiln_producer_destroy(kiln_producer_t *kp) {
    if (!kp)
        return;
    if (kp->rk) {
        rd_kafka_flush(kp->rk, 10000);
        rd_kafka_destroy(kp->rk);
    }
    kiln_store_destroy(kp->store);
    PQfinish(kp->pg);
    for (int i = 0; i < KILN_N_MODALITIES; i++)
        free(kp->parts[i]);
    kiln_conf_destroy(kp->conf);
    free(kp);
}
