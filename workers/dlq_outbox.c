/*
 * workers/dlq_outbox.c - exactly-once dead letters through a transactional
 * outbox (table dlq_outbox, schema/006_dlq_outbox.sql).
 *
 * The protocol:
 *  1. stage: the batch transaction (fence held FOR SHARE) locks the bad jobs'
 *     rows FOR UPDATE and, for each one still open, inserts a dlq_outbox row
 *     (message, key, headers with kiln-error*, owner = this worker's id, host
 *     and pid, owned_at = now), then marks the jobs dead and commits the
 *     offsets. A job turns dead once, so it gets one outbox row: a retry of
 *     the transaction, a redelivery or a later owner of the partition finds
 *     the job terminal and stages nothing.
 *  2. send: after COMMIT the owner produces its rows with the header
 *     kiln-outbox-id = id (idempotent producer: librdkafka's own retries do
 *     not duplicate), awaits every delivery report, then deletes the
 *     delivered rows. If the DELETE fails (Postgres away) it is retried from
 *     memory: the message is known delivered and is never produced again.
 *  3. relay: a row is produced again only by its owner after a takeover:
 *     UPDATE ... SET owner = me, owned_at = now() on rows (FOR UPDATE SKIP
 *     LOCKED) that are mine and not in flight, or whose owner process is gone
 *     (the workers row shows another pid or host, or status 'stopped') and
 *     owned_at is older than a short grace, or whose owned_at is older than
 *     worker.dlq_orphan_after_ms. Then, holding the dlq_outbox_scan rows FOR
 *     UPDATE, it reads every DLQ partition from its stored scan position to
 *     the high watermark, deletes the rows whose kiln-outbox-id it saw,
 *     advances the positions in the same transaction and sends only the
 *     claimed rows it did not see.
 *
 * Why no dead letter is produced twice: a row's message can only be in the
 * log if some owner produced it. Every owner produces within a bounded time
 * of claiming the row (both the first owner, right after COMMIT, and a relay
 * owner produce within dlq_orphan_after_ms / 4 of owned_at or leave the row
 * to a later relay round), and this producer's
 * message.timeout.ms is dlq_orphan_after_ms / 2, so every produce by an
 * earlier owner is delivered or failed before a takeover on age is allowed;
 * a takeover on a gone process needs only the grace (its queue died with
 * it). So when the new owner reads the high watermark after its takeover,
 * every copy an earlier owner produced is below it, at or after the scan
 * position (below the position, rows of messages seen were deleted in the
 * same transaction that advanced it): the scan sees the copy if there is one.
 * Why none is lost: the row commits with the dead job; it is deleted only
 * after a delivery report or after its message was seen in the log.
 * Remaining windows: a produce request already on the wire when its process
 * is killed and that the broker appends later than the grace (2 s), and a
 * broker that loses acknowledged messages.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kiln/kafka.h"
#include "kiln/log.h"
#include "kiln/pg.h"
#include "workers/worker_int.h"

#define KILN_OBX_GRACE_MS 2000     /* gone owner: its last produce has landed */
#define KILN_OBX_TAKE_LIMIT 64     /* rows per relay round */
#define KILN_OBX_SCAN_TIMEOUT_MS 10000

enum { KILN_OBX_PENDING, KILN_OBX_DELIVERED, KILN_OBX_FAILED };

/* One outbox row as produced: the strings are what the row stores (key:
 * "" for NULL or "k" + hex; payload: hex; headers: the JSON array). */
typedef struct kiln_obx_msg_s {
    long long id;
    char *job_id, *key, *payload, *headers;
    int status;
} kiln_obx_msg_t;

typedef struct kiln_obx_list_s {
    kiln_obx_msg_t *v;
    int n, cap;
} kiln_obx_list_t;

struct kiln_dlq_outbox_s {
    rd_kafka_t *producer, *scanner;
    char bootstrap[1024]; /* what the handles connect to (kw->bootstrap may change) */
    char host[256], pid[16];
    kiln_obx_list_t staged;  /* inserted by the current batch transaction */
    double staged_at;        /* when (kiln_worker_now): owned_at is about then */
    long long *undeleted;    /* delivered, DELETE still to do */
    int n_undeleted, cap_undeleted;
    double last_relay;
    long long orphan_after_ms, relay_interval_ms;
};

/* ---- encoding of bytes into the row ---- */

static char *kiln_obx_hex(const char *prefix, const void *p, size_t len) {
    static const char dig[] = "0123456789abcdef";
    size_t pl = strlen(prefix);
    char *s = malloc(pl + 2 * len + 1);
    if (!s)
        abort();
    memcpy(s, prefix, pl);
    for (size_t i = 0; i < len; i++) {
        s[pl + 2 * i] = dig[((const unsigned char *)p)[i] >> 4];
        s[pl + 2 * i + 1] = dig[((const unsigned char *)p)[i] & 15];
    }
    s[pl + 2 * len] = '\0';
    return s;
}

static int kiln_obx_nibble(int c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes \p hex into a new buffer (*out, *len); @returns 0 or -1. */
static int kiln_obx_unhex(const char *hex, void **out, size_t *len) {
    size_t n = strlen(hex) / 2;
    unsigned char *o = malloc(n + 1);
    if (!o)
        abort();
    for (size_t i = 0; i < n; i++) {
        int a = kiln_obx_nibble(hex[2 * i]), b = kiln_obx_nibble(hex[2 * i + 1]);
        if (a < 0 || b < 0) {
            free(o);
            return -1;
        }
        o[i] = (unsigned char)(a << 4 | b);
    }
    *out = o;
    *len = n;
    return 0;
}

/* Sets o[text_key] to the bytes as a JSON string when they are UTF-8
 * without NUL (jsonb refuses \u0000), else o[hex_key] to their hex. */
static void kiln_obx_json_bytes(json_t *o, const char *text_key, const char *hex_key,
                                const void *p, size_t len) {
    json_t *s = memchr(p, 0, len) ? NULL : json_stringn(p, len);
    if (s) {
        json_object_set_new(o, text_key, s);
        return;
    }
    char *h = kiln_obx_hex("", p, len);
    json_object_set_new(o, hex_key, json_string(h));
    free(h);
}

/* The row's headers: the job message's own, then the worker's reason. */
static char *kiln_obx_headers_json(const kiln_wjob_t *j) {
    json_t *a = json_array();
    rd_kafka_headers_t *in = NULL;
    if (!rd_kafka_message_headers(j->msg, &in) && in) {
        const char *name;
        const void *val;
        size_t size;
        for (size_t i = 0; !rd_kafka_header_get_all(in, i, &name, &val, &size); i++) {
            json_t *h = json_object();
            kiln_obx_json_bytes(h, "n", "nx", name, strlen(name));
            if (val)
                kiln_obx_json_bytes(h, "v", "x", val, size);
            else
                json_object_set_new(h, "v", json_null());
            json_array_append_new(a, h);
        }
    }
    char attempts[16];
    snprintf(attempts, sizeof(attempts), "%d", j->attempts);
    const char *add[4][2] = {{"kiln-error", kiln_err2name(j->err)},
                             {"kiln-error-detail", j->errstr},
                             {"kiln-attempts", attempts},
                             {"kiln-job-id", j->job.id}};
    for (int k = 0; k < 4; k++) {
        json_t *h = json_object();
        json_object_set_new(h, "n", json_string(add[k][0]));
        kiln_obx_json_bytes(h, "v", "x", add[k][1], strlen(add[k][1]));
        json_array_append_new(a, h);
    }
    char *s = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    if (!s)
        abort();
    return s;
}

/* The Kafka headers of a row, plus kiln-outbox-id; NULL if the JSON is bad. */
static rd_kafka_headers_t *kiln_obx_headers(const kiln_obx_msg_t *m) {
    json_error_t jerr;
    json_t *a = json_loads(m->headers, 0, &jerr);
    if (!json_is_array(a)) {
        json_decref(a);
        return NULL;
    }
    rd_kafka_headers_t *h = rd_kafka_headers_new(json_array_size(a) + 1);
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e) {
        const char *name = json_string_value(json_object_get(e, "n"));
        void *nb = NULL, *vb = NULL;
        size_t nl = 0, vl = 0;
        if (!name && !kiln_obx_unhex(json_string_value(json_object_get(e, "nx")) ?: "", &nb, &nl))
            name = nb; /* a name with NUL bytes ends at the first one */
        json_t *v = json_object_get(e, "v"), *x = json_object_get(e, "x");
        if (name && json_is_string(v))
            rd_kafka_header_add(h, name, -1, json_string_value(v),
                                (ssize_t)json_string_length(v));
        else if (name && json_is_string(x) && !kiln_obx_unhex(json_string_value(x), &vb, &vl))
            rd_kafka_header_add(h, name, -1, vb, (ssize_t)vl);
        else if (name)
            rd_kafka_header_add(h, name, -1, NULL, 0);
        free(nb);
        free(vb);
    }
    json_decref(a);
    char id[32];
    snprintf(id, sizeof(id), "%lld", m->id);
    rd_kafka_header_add(h, "kiln-outbox-id", -1, id, -1);
    return h;
}

/* ---- state ---- */

static void kiln_obx_msg_free(kiln_obx_msg_t *m) {
    free(m->job_id);
    free(m->key);
    free(m->payload);
    free(m->headers);
}

static void kiln_obx_list_clear(kiln_obx_list_t *l) {
    for (int i = 0; i < l->n; i++)
        kiln_obx_msg_free(&l->v[i]);
    l->n = 0;
}

static kiln_obx_msg_t *kiln_obx_list_add(kiln_obx_list_t *l) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->v = realloc(l->v, l->cap * sizeof(*l->v));
        if (!l->v)
            abort();
    }
    kiln_obx_msg_t *m = &l->v[l->n++];
    memset(m, 0, sizeof(*m));
    return m;
}

static void kiln_obx_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    int *status = m->_private;
    if (!status)
        return;
    if (m->err)
        KILN_LOG_WARN("could not deliver a dead letter to %s [%d]: %s (%s)",
                      rd_kafka_topic_name(m->rkt), m->partition, rd_kafka_err2str(m->err),
                      rd_kafka_message_status(m) == RD_KAFKA_MSG_STATUS_NOT_PERSISTED
                          ? "not persisted"
                          : "possibly persisted: the relay scans for it");
    *status = m->err ? KILN_OBX_FAILED : KILN_OBX_DELIVERED;
}

static void kiln_obx_close_kafka(struct kiln_dlq_outbox_s *ob) {
    if (ob->producer) {
        rd_kafka_flush(ob->producer, 10000);
        rd_kafka_destroy(ob->producer);
        ob->producer = NULL;
    }
    if (ob->scanner) {
        rd_kafka_consumer_close(ob->scanner);
        rd_kafka_destroy(ob->scanner);
        ob->scanner = NULL;
    }
}

/* The state, created on first use; the Kafka handles follow kw->bootstrap
 * (the worker reconnects when the embedded broker moved). */
static struct kiln_dlq_outbox_s *kiln_obx_get(kiln_worker_t *kw) {
    struct kiln_dlq_outbox_s *ob = kw->outbox;
    if (!ob) {
        ob = kw->outbox = calloc(1, sizeof(*ob));
        if (!ob)
            abort();
        gethostname(ob->host, sizeof(ob->host) - 1);
        snprintf(ob->pid, sizeof(ob->pid), "%d", (int)getpid());
        ob->orphan_after_ms = kiln_conf_get_int(kw->conf, "worker.dlq_orphan_after_ms");
        ob->relay_interval_ms = kiln_conf_get_int(kw->conf, "worker.dlq_relay_interval_ms");
        ob->last_relay = -1e9;
    }
    if (ob->producer && strcmp(ob->bootstrap, kw->bootstrap))
        kiln_obx_close_kafka(ob);
    if (!ob->producer) {
        char errstr[512], timeout[32];
        rd_kafka_conf_t *rc = kiln_kafka_conf(kw->conf, errstr, sizeof(errstr));
        snprintf(timeout, sizeof(timeout), "%lld", ob->orphan_after_ms / 2);
        if (rc && (rd_kafka_conf_set(rc, "enable.idempotence", "true", errstr, sizeof(errstr)) ||
                   rd_kafka_conf_set(rc, "message.timeout.ms", timeout, errstr, sizeof(errstr)) ||
                   rd_kafka_conf_set(rc, "linger.ms", "0", errstr, sizeof(errstr)))) {
            rd_kafka_conf_destroy(rc);
            rc = NULL;
        }
        if (rc) {
            rd_kafka_conf_set_dr_msg_cb(rc, kiln_obx_dr_cb);
            ob->producer = rd_kafka_new(RD_KAFKA_PRODUCER, rc, errstr, sizeof(errstr));
            if (!ob->producer)
                rd_kafka_conf_destroy(rc);
        }
        if (!ob->producer)
            KILN_LOG_ERROR("could not create the dead-letter producer: %s", errstr);
        snprintf(ob->bootstrap, sizeof(ob->bootstrap), "%s", kw->bootstrap);
    }
    return ob;
}

void kiln_dlq_outbox_destroy(kiln_worker_t *kw) {
    struct kiln_dlq_outbox_s *ob = kw ? kw->outbox : NULL;
    if (!ob)
        return;
    kiln_obx_close_kafka(ob);
    kiln_obx_list_clear(&ob->staged);
    free(ob->staged.v);
    free(ob->undeleted);
    free(ob);
    kw->outbox = NULL;
}

/* ---- 1: stage ---- */

int kiln_dlq_outbox_stage(kiln_worker_t *kw, kiln_wjob_t *jobs, int n, char *errstr,
                          size_t errstr_size) {
    struct kiln_dlq_outbox_s *ob = kiln_obx_get(kw);
    kiln_obx_list_clear(&ob->staged); /* an earlier try rolled back */
    ob->staged_at = kiln_worker_now();
    for (int i = 0; i < n; i++) {
        kiln_wjob_t *j = &jobs[i];
        j->outbox_id = 0;
        if (j->skip || !j->err)
            continue;
        kiln_obx_msg_t *m = kiln_obx_list_add(&ob->staged);
        m->job_id = strdup(j->job.id);
        m->key = j->msg->key ? kiln_obx_hex("k", j->msg->key, j->msg->key_len) : strdup("");
        m->payload = kiln_obx_hex("", j->msg->payload ? j->msg->payload : "", j->msg->len);
        m->headers = kiln_obx_headers_json(j);
        const char *p[9] = {j->job.id, j->job.tenant, kw->dlq_topic, m->key,
                            m->payload, m->headers, kw->id, ob->host, ob->pid};
        /* the job row exists (the claim inserted it): locked, and only
         * while it is still open does it get a dead letter */
        PGresult *r = kiln_pg_execp(
            kw->pg,
            "WITH open AS MATERIALIZED (SELECT id FROM jobs WHERE id = $1"
            "   AND status NOT IN ('done', 'dead') FOR UPDATE)"
            " INSERT INTO dlq_outbox (job_id, tenant, topic, key, payload, headers, worker,"
            "   worker_host, worker_pid)"
            " SELECT $1, $2, $3, CASE WHEN $4 = '' THEN NULL ELSE decode(substr($4, 2), 'hex') END,"
            "   decode($5, 'hex'), $6::jsonb, $7, $8, $9::int FROM open"
            " RETURNING id",
            9, p, errstr, errstr_size);
        if (!r)
            return -1;
        if (PQntuples(r) == 1) {
            m->id = j->outbox_id = atoll(PQgetvalue(r, 0, 0));
            KILN_LOG_INFO("job %s: dead letter %lld staged: %s: %s", j->job.id, m->id,
                          kiln_err2name(j->err), j->errstr);
        }
        PQclear(r);
        if (!m->id) { /* terminal meanwhile: no dead letter */
            kiln_obx_msg_free(m);
            ob->staged.n--;
        }
    }
    return 0;
}

/* ---- 2: send ---- */

static void kiln_obx_remember_delivered(struct kiln_dlq_outbox_s *ob, long long id) {
    if (ob->n_undeleted == ob->cap_undeleted) {
        ob->cap_undeleted = ob->cap_undeleted ? 2 * ob->cap_undeleted : 16;
        ob->undeleted = realloc(ob->undeleted, ob->cap_undeleted * sizeof(long long));
        if (!ob->undeleted)
            abort();
    }
    ob->undeleted[ob->n_undeleted++] = id;
}

/* A bigint[] literal of \p ids. */
static char *kiln_obx_id_array(const long long *ids, int n) {
    char *s = malloc(24 * (size_t)n + 3), *p = s;
    if (!s)
        abort();
    *p++ = '{';
    for (int i = 0; i < n; i++)
        p += sprintf(p, "%s%lld", i ? "," : "", ids[i]);
    strcpy(p, "}");
    return s;
}

/* Deletes the delivered rows; @returns 0, or -1 (they stay remembered). */
static int kiln_obx_delete_delivered(kiln_worker_t *kw, struct kiln_dlq_outbox_s *ob) {
    if (!ob->n_undeleted)
        return 0;
    char errstr[512];
    char *ids = kiln_obx_id_array(ob->undeleted, ob->n_undeleted);
    const char *p[1] = {ids};
    PGresult *r = kiln_pg_execp(kw->pg, "DELETE FROM dlq_outbox WHERE id = ANY ($1::bigint[])", 1,
                                p, errstr, sizeof(errstr));
    free(ids);
    if (!r) {
        KILN_LOG_WARN("could not delete %d delivered dead letter(s) from dlq_outbox: %s; "
                      "retrying (they are not produced again)",
                      ob->n_undeleted, errstr);
        return -1;
    }
    PQclear(r);
    ob->n_undeleted = 0;
    return 0;
}

/* Test hook (tests/0814-dlq_outbox.sh): sleeps, heartbeating, for the
 * milliseconds in environment variable \p name. */
static void kiln_obx_test_pause(kiln_worker_t *kw, const char *name, int n) {
    const char *ms = getenv(name);
    if (!ms || !*ms || !n)
        return;
    KILN_LOG_WARN("test hook %s: pausing %s ms with %d dead letter(s)", name, ms, n);
    kiln_worker_backoff(kw, atoll(ms));
}

/* Produces \p l's rows (header kiln-outbox-id), waits for every delivery
 * report, heartbeating, and remembers the delivered ids for deletion.
 * @returns the number delivered. */
static int kiln_obx_produce(kiln_worker_t *kw, struct kiln_dlq_outbox_s *ob, kiln_obx_list_t *l) {
    int queued = 0, delivered = 0;
    for (int i = 0; i < l->n; i++) {
        kiln_obx_msg_t *m = &l->v[i];
        void *key = NULL, *val = NULL;
        size_t key_len = 0, len = 0;
        rd_kafka_headers_t *h = kiln_obx_headers(m);
        m->status = KILN_OBX_FAILED;
        if (!ob->producer || !h || (m->key[0] && kiln_obx_unhex(m->key + 1, &key, &key_len)) ||
            kiln_obx_unhex(m->payload, &val, &len)) {
            KILN_LOG_ERROR("could not produce dead letter %lld of job %s: bad outbox row",
                           m->id, m->job_id);
            if (h)
                rd_kafka_headers_destroy(h);
            free(key);
            continue;
        }
        m->status = KILN_OBX_PENDING;
        rd_kafka_resp_err_t err;
        while ((err = rd_kafka_producev(ob->producer, RD_KAFKA_V_TOPIC(kw->dlq_topic),
                                        RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE(val, len),
                                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                        RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(&m->status),
                                        RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(ob->producer, 100);
        free(key);
        free(val);
        if (err) {
            rd_kafka_headers_destroy(h);
            m->status = KILN_OBX_FAILED;
            KILN_LOG_WARN("could not produce to %s: %s", kw->dlq_topic, rd_kafka_err2str(err));
            continue;
        }
        queued++;
        KILN_LOG_INFO("job %s -> %s (outbox %lld)", m->job_id, kw->dlq_topic, m->id);
    }
    /* every report comes within message.timeout.ms: wait for all of them,
     * even when asked to stop (an unresolved message must not be abandoned) */
    long long hb_ms = kiln_conf_get_int(kw->conf, "worker.heartbeat_ms");
    for (int pending = queued; pending;) {
        rd_kafka_poll(ob->producer, 50);
        if (kiln_worker_now() - kw->last_hb > hb_ms / 1000.0)
            kiln_worker_heartbeat(kw, "up");
        pending = 0;
        for (int i = 0; i < l->n; i++)
            pending += l->v[i].status == KILN_OBX_PENDING;
    }
    for (int i = 0; i < l->n; i++)
        if (l->v[i].status == KILN_OBX_DELIVERED) {
            kiln_obx_remember_delivered(ob, l->v[i].id);
            delivered++;
        }
    return delivered;
}

kiln_err_t kiln_dlq_outbox_send(kiln_worker_t *kw) {
    struct kiln_dlq_outbox_s *ob = kiln_obx_get(kw);
    if (!ob->staged.n)
        return KILN_OK;
    kiln_obx_test_pause(kw, "KILN_TEST_DLQ_PAUSE_AFTER_COMMIT_MS", ob->staged.n);
    /* like a relay owner, the first owner produces soon after owned_at or
     * not at all (a very slow transaction): the relay re-claims the rows */
    if (kiln_worker_now() - ob->staged_at > ob->orphan_after_ms / 4000.0) {
        KILN_LOG_WARN("%d dead letter(s) committed too long ago to be sent directly; the outbox "
                      "relay sends them", ob->staged.n);
        kiln_obx_list_clear(&ob->staged);
        return KILN_OK;
    }
    int delivered = kiln_obx_produce(kw, ob, &ob->staged);
    if (delivered < ob->staged.n)
        KILN_LOG_WARN("%d of %d dead letter(s) not delivered; the outbox relay will scan %s and "
                      "send them", ob->staged.n - delivered, ob->staged.n, kw->dlq_topic);
    kiln_obx_list_clear(&ob->staged);
    kiln_obx_test_pause(kw, "KILN_TEST_DLQ_PAUSE_AFTER_DELIVERY_MS", delivered);
    for (int attempt = 0; kiln_obx_delete_delivered(kw, ob); attempt++) {
        kw->stats.retries++;
        kiln_pg_check(kw->pg);
        if (!kiln_worker_backoff(kw, attempt < 5 ? 200 << attempt : 5000))
            return KILN_ERR__STOPPED;
    }
    return KILN_OK;
}

/* ---- 3: relay ---- */

/* Reads [position, high watermark) of every partition of the DLQ topic and
 * collects the kiln-outbox-id values seen into *seen. On success also
 * returns the new positions in *parts / *offs (n entries). @returns n, or
 * -1 with errstr. */
static int kiln_obx_scan(kiln_worker_t *kw, struct kiln_dlq_outbox_s *ob, const long long *from,
                         int n_from, long long **offs, long long **seen, int *n_seen,
                         char *errstr, size_t errstr_size) {
    if (!ob->scanner) {
        char cid[200];
        snprintf(cid, sizeof(cid), "%s-dlq-scan", kw->id);
        ob->scanner = kiln_kafka_consumer_new(kw->conf, cid, errstr, errstr_size);
        if (!ob->scanner)
            return -1;
    }
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(ob->scanner, kw->dlq_topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(ob->scanner, 0, rkt, &md, 5000);
    rd_kafka_topic_destroy(rkt);
    if (err || md->topic_cnt != 1 || md->topics[0].err) {
        snprintf(errstr, errstr_size, "could not read the partitions of %s: %s", kw->dlq_topic,
                 rd_kafka_err2str(err ? err : md->topic_cnt ? md->topics[0].err : err));
        if (md)
            rd_kafka_metadata_destroy(md);
        return -1;
    }
    int np = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    long long *hi = *offs = calloc(np + 1, sizeof(long long));
    int *left = calloc(np + 1, sizeof(int)), busy = 0, cap = 0;
    rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(np ? np : 1);
    for (int p = 0; p < np; p++) {
        int64_t lo = 0, h = 0;
        if ((err = kiln_kafka_watermarks(ob->scanner, kw->dlq_topic, p, &lo, &h, 5000))) {
            snprintf(errstr, errstr_size, "could not query watermarks of %s [%d]: %s",
                     kw->dlq_topic, p, rd_kafka_err2str(err));
            np = -1;
            goto out;
        }
        /* a position past the log end: the broker lost its log; rescan it */
        long long start = p < n_from && from[p] > lo && from[p] <= h ? from[p] : lo;
        hi[p] = h > start ? h : start;
        if (h > start) {
            rd_kafka_topic_partition_list_add(tl, kw->dlq_topic, p)->offset = start;
            left[p] = 1;
            busy++;
        }
    }
    if (busy && (err = rd_kafka_assign(ob->scanner, tl))) {
        snprintf(errstr, errstr_size, "could not assign %s: %s", kw->dlq_topic, rd_kafka_err2str(err));
        np = -1;
        goto out;
    }
    double deadline = kiln_worker_now() + KILN_OBX_SCAN_TIMEOUT_MS / 1000.0;
    while (busy && kiln_worker_now() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(ob->scanner, 200);
        if (!m)
            continue;
        if (!m->err && m->partition >= 0 && m->partition < np) {
            char id[32];
            if (kiln_kafka_header(m, "kiln-outbox-id", id, sizeof(id))) {
                if (*n_seen == cap) {
                    cap = cap ? 2 * cap : 64;
                    *seen = realloc(*seen, cap * sizeof(long long));
                    if (!*seen)
                        abort();
                }
                (*seen)[(*n_seen)++] = atoll(id);
            }
            if (left[m->partition] && m->offset + 1 >= hi[m->partition]) {
                left[m->partition] = 0;
                busy--;
            }
        } else if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            KILN_LOG_WARN("dlq scan: %s", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
    }
    if (busy) {
        snprintf(errstr, errstr_size, "could not read %s to its end within %d s", kw->dlq_topic,
                 KILN_OBX_SCAN_TIMEOUT_MS / 1000);
        np = -1;
    }
out:
    rd_kafka_assign(ob->scanner, NULL);
    rd_kafka_topic_partition_list_destroy(tl);
    free(left);
    return np;
}

/* Takes over the orphaned rows of our DLQ topic (see the header). */
static int kiln_obx_take(kiln_worker_t *kw, struct kiln_dlq_outbox_s *ob, kiln_obx_list_t *l) {
    char errstr[512], grace[32], orphan[32], limit[16];
    snprintf(grace, sizeof(grace), "%d", KILN_OBX_GRACE_MS);
    snprintf(orphan, sizeof(orphan), "%lld", ob->orphan_after_ms);
    snprintf(limit, sizeof(limit), "%d", KILN_OBX_TAKE_LIMIT);
    const char *p[7] = {kw->id, ob->host, ob->pid, kw->dlq_topic, grace, orphan, limit};
    PGresult *r = kiln_pg_execp(
        kw->pg,
        "UPDATE dlq_outbox o SET worker = $1, worker_host = $2, worker_pid = $3::int,"
        "  owned_at = clock_timestamp(), sends = o.sends + 1"
        " WHERE o.id IN (SELECT x.id FROM dlq_outbox x LEFT JOIN workers w ON w.id = x.worker"
        "   WHERE x.topic = $4 AND ("
        "     (x.worker = $1 AND x.worker_host = $2 AND x.worker_pid = $3::int)"
        "     OR (x.owned_at < clock_timestamp() - $5::int * interval '1 ms'"
        "         AND (w.id IS NULL OR w.pid IS DISTINCT FROM x.worker_pid"
        "              OR w.host IS DISTINCT FROM x.worker_host OR w.status = 'stopped'))"
        "     OR x.owned_at < clock_timestamp() - $6::bigint * interval '1 ms')"
        "   ORDER BY x.id LIMIT $7::int FOR UPDATE OF x SKIP LOCKED)"
        " RETURNING o.id, o.job_id, CASE WHEN o.key IS NULL THEN '' ELSE 'k' || encode(o.key, 'hex') END,"
        "  encode(coalesce(o.payload, ''), 'hex'), o.headers::text",
        7, p, errstr, sizeof(errstr));
    if (!r) {
        KILN_LOG_WARN("could not claim orphaned dead letters: %s", errstr);
        return -1;
    }
    for (int t = 0; t < PQntuples(r); t++) {
        kiln_obx_msg_t *m = kiln_obx_list_add(l);
        m->id = atoll(PQgetvalue(r, t, 0));
        m->job_id = strdup(PQgetvalue(r, t, 1));
        m->key = strdup(PQgetvalue(r, t, 2));
        m->payload = strdup(PQgetvalue(r, t, 3));
        m->headers = strdup(PQgetvalue(r, t, 4));
    }
    PQclear(r);
    return l->n;
}

/* Scans the DLQ for the claimed rows and, in one transaction, deletes the
 * rows seen and advances the scan positions. Removes the seen rows from
 * \p l. @returns 0 or -1. */
static int kiln_obx_scan_tx(kiln_worker_t *kw, struct kiln_dlq_outbox_s *ob, kiln_obx_list_t *l) {
    char errstr[512], np_s[16];
    long long *from = NULL, *offs = NULL, *seen = NULL;
    int n_seen = 0, n_from = 0, np = -1, ok = 0;
    PGresult *r = NULL;
    if (kiln_pg_exec(kw->pg, "BEGIN", errstr, sizeof(errstr)))
        goto out;
    /* the rows of dlq_outbox_scan serialize the relays of this topic */
    const char *p1[1] = {kw->dlq_topic};
    r = kiln_pg_execp(kw->pg,
                      "SELECT kpartition, next_offset FROM dlq_outbox_scan WHERE topic = $1"
                      " ORDER BY kpartition FOR UPDATE",
                      1, p1, errstr, sizeof(errstr));
    if (!r)
        goto out;
    for (int t = 0; t < PQntuples(r); t++)
        n_from = atoi(PQgetvalue(r, t, 0)) + 1 > n_from ? atoi(PQgetvalue(r, t, 0)) + 1 : n_from;
    from = calloc(n_from + 1, sizeof(long long));
    for (int t = 0; t < PQntuples(r); t++)
        from[atoi(PQgetvalue(r, t, 0))] = atoll(PQgetvalue(r, t, 1));
    PQclear(r);
    r = NULL;
    np = kiln_obx_scan(kw, ob, from, n_from, &offs, &seen, &n_seen, errstr, sizeof(errstr));
    if (np < 0)
        goto out;
    /* delete what the log already holds, advance the positions: together */
    char *ids = kiln_obx_id_array(seen, n_seen), *pos = kiln_obx_id_array(offs, np);
    snprintf(np_s, sizeof(np_s), "%d", np);
    const char *p2[4] = {kw->dlq_topic, ids, pos, np_s};
    r = kiln_pg_execp(kw->pg,
                      "WITH d AS (DELETE FROM dlq_outbox WHERE id = ANY ($2::bigint[]) RETURNING id)"
                      " INSERT INTO dlq_outbox_scan (topic, kpartition, next_offset, updated_at)"
                      " SELECT $1, p - 1, ($3::bigint[])[p], now()"
                      "   FROM generate_series(1, $4::int) AS p"
                      " ON CONFLICT (topic, kpartition) DO UPDATE"
                      " SET next_offset = EXCLUDED.next_offset, updated_at = now()",
                      4, p2, errstr, sizeof(errstr));
    free(ids);
    free(pos);
    if (!r || kiln_pg_exec(kw->pg, "COMMIT", errstr, sizeof(errstr)))
        goto out;
    ok = 1;
    int kept = 0;
    for (int i = 0; i < l->n; i++) {
        int in_log = 0;
        for (int k = 0; k < n_seen && !in_log; k++)
            in_log = seen[k] == l->v[i].id;
        if (in_log) {
            KILN_LOG_INFO("dead letter %lld of job %s is already in %s: not sent again",
                          l->v[i].id, l->v[i].job_id, kw->dlq_topic);
            kiln_obx_msg_free(&l->v[i]);
        } else
            l->v[kept++] = l->v[i];
    }
    l->n = kept;
out:
    if (!ok) {
        char e2[128];
        KILN_LOG_WARN("could not scan %s for orphaned dead letters: %s", kw->dlq_topic, errstr);
        kiln_pg_exec(kw->pg, "ROLLBACK", e2, sizeof(e2));
    }
    PQclear(r);
    free(from);
    free(offs);
    free(seen);
    return ok ? 0 : -1;
}

void kiln_dlq_outbox_relay(kiln_worker_t *kw) {
    struct kiln_dlq_outbox_s *ob = kiln_obx_get(kw);
    double now = kiln_worker_now();
    if (now - ob->last_relay < ob->relay_interval_ms / 1000.0)
        return;
    ob->last_relay = now;
    if (kiln_obx_delete_delivered(kw, ob)) /* delivered rows first: never taken over by us */
        return;
    kiln_obx_list_t l = {0};
    if (kiln_obx_take(kw, ob, &l) > 0 && !kiln_obx_scan_tx(kw, ob, &l) && l.n) {
        /* a relay owner must produce soon after its takeover (see the header) */
        if (kiln_worker_now() - now > ob->orphan_after_ms / 4000.0)
            KILN_LOG_WARN("outbox relay took too long; %d dead letter(s) wait for the next round", l.n);
        else {
            int delivered = kiln_obx_produce(kw, ob, &l);
            KILN_LOG_INFO("outbox relay: sent %d of %d orphaned dead letter(s) to %s", delivered,
                          l.n, kw->dlq_topic);
            kiln_obx_delete_delivered(kw, ob);
        }
    }
    kiln_obx_list_clear(&l);
    free(l.v);
}
