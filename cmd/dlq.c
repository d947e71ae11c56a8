/*
 * cmd/dlq.c - `kiln dlq list` and `kiln dlq replay`: inspect the dead-letter
 * topics and send dead jobs back to their job topic.
 *
 * A worker dead-letters a job by producing the original message, with the
 * producer's headers plus kiln-error, kiln-error-detail, kiln-attempts,
 * kiln-job-id and kiln-outbox-id, to <prefix>.<modality>.dlq, through the
 * dlq_outbox table committed with the 'dead' row (workers/dlq_outbox.c:
 * each dead job reaches the DLQ once).
 * Both actions read each DLQ partition from its beginning up to the end
 * watermark taken when the command starts (messages dead-lettered meanwhile
 * wait for the next run).
 *
 * replay, for each selected message, in this order:
 *  1. resets the job row: UPDATE jobs SET status = 'queued' ... WHERE id = $1
 *     AND status = 'dead' (and error = --reason when given). A row that is not
 *     dead (already replayed, done, or never recorded) is skipped, so a replay
 *     never duplicates a job and running it twice is harmless;
 *  2. only then produces the original message (payload, key and the
 *     producer's headers, without the kiln-error* ones) to
 *     <prefix>.<modality>.jobs, on the partition recorded in the row;
 *  3. if the broker does not acknowledge it, puts the row back to 'dead' with
 *     its old reason.
 * Messages whose id could not be read (dead rows keyed "invalid:<topic>:
 * <partition>:<offset>") cannot be replayed: they are reported, not sent.
 */
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd/cli.h"
#include "kiln/kafka.h"
#include "kiln/log.h"
#include "kiln/pg.h"

#define KILN_DLQ_MAX_IDS 1024
#define KILN_DLQ_IDLE_S 30 /* give up when a partition yields nothing for this long */

/* ---- a set of job ids (open addressing), so that a run replays each job once ---- */

typedef struct {
    char **slot;
    size_t cap, n;
} kiln_idset_t;

static size_t kiln_idset_hash(const char *s) {
    size_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* @returns 1 if \p id was added, 0 if it was already there. */
static int kiln_idset_add(kiln_idset_t *set, const char *id) {
    if ((set->n + 1) * 2 > set->cap) {
        kiln_idset_t big = {calloc(set->cap ? set->cap * 2 : 64, sizeof(char *)),
                            set->cap ? set->cap * 2 : 64, 0};
        if (!big.slot)
            abort();
        for (size_t i = 0; i < set->cap; i++)
            if (set->slot[i]) {
                size_t k = kiln_idset_hash(set->slot[i]) & (big.cap - 1);
                while (big.slot[k])
                    k = (k + 1) & (big.cap - 1);
                big.slot[k] = set->slot[i];
                big.n++;
            }
        free(set->slot);
        *set = big;
    }
    size_t k = kiln_idset_hash(id) & (set->cap - 1);
    for (; set->slot[k]; k = (k + 1) & (set->cap - 1))
        if (!strcmp(set->slot[k], id))
            return 0;
    set->slot[k] = strdup(id);
    set->n++;
    return 1;
}

static void kiln_idset_free(kiln_idset_t *set) {
    for (size_t i = 0; i < set->cap; i++)
        free(set->slot[i]);
    free(set->slot);
}

/* ---- one run ---- */

typedef struct {
    kiln_conf_t *conf;
    int replay, dry_run;
    const char *reason;            /* --reason, or NULL */
    const char *ids[KILN_DLQ_MAX_IDS]; /* --id / positional ids */
    int n_ids;
    PGconn *pg;
    rd_kafka_t *consumer, *producer; /* producer: replay without --dry-run only */
    kiln_idset_t seen;
    long selected, replayed, skipped, unusable, failed;
} kiln_dlq_t;

/* What a replayed message needs if the broker refuses it: enough to put the
 * row back. Owned by the delivery report callback. */
typedef struct {
    char *id, *error, *detail, *attempts;
} kiln_dlq_sent_t;

static void kiln_dlq_sent_free(kiln_dlq_sent_t *s) {
    free(s->id);
    free(s->error);
    free(s->detail);
    free(s->attempts);
    free(s);
}

/* Delivery report (runs from rd_kafka_poll/flush on this thread): a job the
 * broker did not take goes back to 'dead' with its old reason. */
static void kiln_dlq_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    kiln_dlq_t *d = opaque;
    kiln_dlq_sent_t *s = m->_private;
    if (m->err) {
        char errstr[512];
        const char *p[4] = {s->id, s->error, s->detail, s->attempts};
        PGresult *r = kiln_pg_execp(
            d->pg,
            "UPDATE jobs SET status = 'dead', error = $2, error_detail = $3, finished_at = now(),"
            " attempts = coalesce(nullif($4, '')::int, attempts)"
            " WHERE id = $1 AND status = 'queued'",
            4, p, errstr, sizeof(errstr));
        fprintf(stderr, "kiln dlq: could not produce job %s: %s; %s\n", s->id,
                rd_kafka_err2str(m->err), r ? "its row is dead again" : errstr);
        PQclear(r);
        d->failed++;
        d->replayed--;
    }
    kiln_dlq_sent_free(s);
}

/* A copy of header \p name of \p m, or "" (the static empty string is never freed). */
static char *kiln_dlq_header(const rd_kafka_message_t *m, const char *name, char *buf,
                             size_t size) {
    return (char *)(kiln_kafka_header(m, name, buf, size) ? buf : "");
}

/* @returns 1 when the message with job id \p id and reason \p error passes the filters. */
static int kiln_dlq_selected(const kiln_dlq_t *d, const char *id, const char *error) {
    if (d->reason && strcmp(d->reason, error))
        return 0;
    if (!d->n_ids)
        return 1;
    for (int i = 0; i < d->n_ids; i++)
        if (!strcmp(d->ids[i], id))
            return 1;
    return 0;
}

/* `list`: one tab-separated line per message with the job's current status. */
static int kiln_dlq_list_one(kiln_dlq_t *d, const char *id, const char *error, const char *detail,
                             const char *attempts) {
    char errstr[512];
    const char *p[1] = {id};
    PGresult *r = kiln_pg_execp(d->pg, "SELECT status FROM jobs WHERE id = $1", 1, p, errstr,
                                sizeof(errstr));
    if (!r) {
        fprintf(stderr, "kiln dlq: %s\n", errstr);
        return -1;
    }
    printf("%s\t%s\t%s\t%s\t%s\n", id, error, detail, attempts,
           PQntuples(r) ? PQgetvalue(r, 0, 0) : "-");
    PQclear(r);
    return 0;
}

/* Copies the producer's headers of \p m, leaving out the ones the worker added. */
static rd_kafka_headers_t *kiln_dlq_orig_headers(const rd_kafka_message_t *m) {
    static const char *const added[] = {"kiln-error", "kiln-error-detail", "kiln-attempts",
                                        "kiln-job-id", "kiln-outbox-id"};
    rd_kafka_headers_t *in = NULL, *out = rd_kafka_headers_new(8);
    if (rd_kafka_message_headers(m, &in) || !in)
        return out;
    const char *name;
    const void *val;
    size_t size;
    for (size_t i = 0; !rd_kafka_header_get_all(in, i, &name, &val, &size); i++) {
        int skip = 0;
        for (size_t k = 0; k < sizeof(added) / sizeof(added[0]); k++)
            skip |= !strcmp(name, added[k]);
        if (!skip)
            rd_kafka_header_add(out, name, -1, val, (ssize_t)size);
    }
    return out;
}

/* `replay` of one message of \p modality's DLQ. @returns -1 on a Postgres or
 * broker error (the run stops), else 0. */
static int kiln_dlq_replay_one(kiln_dlq_t *d, const char *modality, const rd_kafka_message_t *m,
                               const char *id, const char *error, const char *detail,
                               const char *attempts) {
    char errstr[512];
    if (!*id || !strncmp(id, "invalid:", 8)) {
        printf("not replayable  %s [%d] offset %lld: %s: %s (no usable job id; fix the producer "
               "and submit it again)\n",
               rd_kafka_topic_name(m->rkt), m->partition, (long long)m->offset, error, detail);
        d->unusable++;
        return 0;
    }
    if (!kiln_idset_add(&d->seen, id))
        return 0; /* an older dead-lettering of a job this run already handled */
    const char *p[3] = {id, d->reason, NULL};
    PGresult *r;
    if (d->dry_run)
        r = kiln_pg_execp(d->pg,
                          "SELECT kpartition FROM jobs WHERE id = $1 AND status = 'dead'"
                          " AND ($2::text IS NULL OR error = $2)",
                          2, p, errstr, sizeof(errstr));
    else {
        /* the payload is the message as produced; keep it for `kiln requeue` if the row has
         * none (jobs produced without kiln). Parsed JSON, so valid UTF-8 text. */
        json_error_t jerr;
        json_t *js = json_loadb(m->payload, m->len, 0, &jerr);
        char *msg = js ? strndup(m->payload, m->len) : NULL;
        json_decref(js);
        p[2] = msg;
        r = kiln_pg_execp(d->pg,
                          "UPDATE jobs SET status = 'queued', error = NULL, error_detail = NULL,"
                          " attempts = 0, started_at = NULL, finished_at = NULL, worker = NULL,"
                          " message = coalesce(message, $3)"
                          " WHERE id = $1 AND status = 'dead' AND ($2::text IS NULL OR error = $2)"
                          " RETURNING kpartition",
                          3, p, errstr, sizeof(errstr));
        free(msg);
    }
    if (!r) {
        fprintf(stderr, "kiln dlq: %s\n", errstr);
        return -1;
    }
    if (!PQntuples(r)) {
        PQclear(r);
        const char *q[1] = {id};
        r = kiln_pg_execp(d->pg, "SELECT status, coalesce(error, '') FROM jobs WHERE id = $1", 1,
                          q, errstr, sizeof(errstr));
        if (!r) {
            fprintf(stderr, "kiln dlq: %s\n", errstr);
            return -1;
        }
        if (!PQntuples(r))
            printf("skipped         %s: no job row\n", id);
        else if (!strcmp(PQgetvalue(r, 0, 0), "dead") && d->reason)
            printf("skipped         %s: dead with %s now, not %s\n", id, PQgetvalue(r, 0, 1),
                   d->reason);
        else
            printf("skipped         %s: status is %s\n", id, PQgetvalue(r, 0, 0));
        PQclear(r);
        d->skipped++;
        return 0;
    }
    int np = kiln_kafka_partitions(d->conf, modality);
    int part = PQgetisnull(r, 0, 0) ? -1 : atoi(PQgetvalue(r, 0, 0));
    if (part < 0 || part >= np)
        part = RD_KAFKA_PARTITION_UA; /* the partitioner picks one from the key */
    PQclear(r);
    char topic[256];
    kiln_kafka_topic(d->conf, modality, "jobs", topic, sizeof(topic));
    d->replayed++;
    if (d->dry_run) {
        printf("would replay    %s -> %s (%s: %s)\n", id, topic, error, detail);
        return 0;
    }
    kiln_dlq_sent_t *s = calloc(1, sizeof(*s));
    s->id = strdup(id);
    s->error = strdup(error);
    s->detail = strdup(detail);
    s->attempts = strdup(attempts);
    rd_kafka_headers_t *h = kiln_dlq_orig_headers(m);
    rd_kafka_resp_err_t err;
    for (;;) {
        err = rd_kafka_producev(d->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(part),
                                RD_KAFKA_V_KEY(m->key, m->key_len),
                                RD_KAFKA_V_VALUE(m->payload, m->len),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
                                RD_KAFKA_V_OPAQUE(s), RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        rd_kafka_poll(d->producer, 100); /* local queue full: serve delivery reports, retry */
    }
    if (err) {
        rd_kafka_headers_destroy(h);
        rd_kafka_message_t fake = {.err = err, ._private = s};
        kiln_dlq_dr_cb(d->producer, &fake, d); /* puts the row back, frees s */
        return -1;
    }
    printf("replayed        %s -> %s (was %s: %s)\n", id, topic, error, detail);
    rd_kafka_poll(d->producer, 0);
    return 0;
}

/* Reads \p modality's DLQ from the beginning to the end watermarks taken now
 * and lists or replays each selected message. @returns 0, or -1 on error. */
static int kiln_dlq_topic(kiln_dlq_t *d, const char *modality, int explicit_topic) {
    char topic[256];
    kiln_kafka_topic(d->conf, modality, "dlq", topic, sizeof(topic));
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(d->consumer, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(d->consumer, 0, rkt, &md, 10000);
    rd_kafka_topic_destroy(rkt);
    if (err || md->topic_cnt != 1 || md->topics[0].err) {
        rd_kafka_resp_err_t e = err                ? err
                                : md->topic_cnt ? md->topics[0].err
                                                : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
        if (md)
            rd_kafka_metadata_destroy(md);
        if (!explicit_topic && (e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                                e == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC))
            return 0; /* that modality has no DLQ topic here */
        fprintf(stderr, "kiln dlq: could not read the metadata of %s: %s\n", topic,
                rd_kafka_err2str(e));
        return -1;
    }
    int np = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    /* end watermarks now: the snapshot this run covers */
    int64_t *end = calloc(np, sizeof(int64_t));
    rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(np);
    int open = 0;
    for (int p = 0; p < np; p++) {
        int64_t lo = 0, hi = 0;
        err = kiln_kafka_watermarks(d->consumer, topic, p, &lo, &hi, 10000);
        if (err) {
            fprintf(stderr, "kiln dlq: could not read the watermarks of %s [%d]: %s\n", topic, p,
                    rd_kafka_err2str(err));
            free(end);
            rd_kafka_topic_partition_list_destroy(tl);
            return -1;
        }
        end[p] = hi;
        if (hi > lo) {
            rd_kafka_topic_partition_list_add(tl, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
            open++;
        }
    }
    int rc = 0;
    if (open && (err = rd_kafka_assign(d->consumer, tl))) {
        fprintf(stderr, "kiln dlq: could not assign %s: %s\n", topic, rd_kafka_err2str(err));
        open = 0;
        rc = -1;
    }
    rd_kafka_topic_partition_list_destroy(tl);
    time_t last = time(NULL);
    while (open > 0 && rc == 0) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(d->consumer, 200);
        if (!m) {
            if (time(NULL) - last > KILN_DLQ_IDLE_S) {
                fprintf(stderr, "kiln dlq: %s: no message for %d s before the end watermark\n",
                        topic, KILN_DLQ_IDLE_S);
                rc = -1;
            }
            if (d->producer)
                rd_kafka_poll(d->producer, 0);
            continue;
        }
        last = time(NULL);
        if (m->err) {
            fprintf(stderr, "kiln dlq: could not read %s: %s\n", topic, rd_kafka_message_errstr(m));
            rc = -1;
        } else if (m->partition >= 0 && m->partition < np && end[m->partition] >= 0) {
            char idb[512], eb[128], db[2048], ab[32];
            char *id = kiln_dlq_header(m, "kiln-job-id", idb, sizeof(idb));
            if (!*id && m->key_len) {
                snprintf(idb, sizeof(idb), "%.*s", (int)m->key_len, (const char *)m->key);
                id = idb;
            }
            char *error = kiln_dlq_header(m, "kiln-error", eb, sizeof(eb));
            char *detail = kiln_dlq_header(m, "kiln-error-detail", db, sizeof(db));
            char *attempts = kiln_dlq_header(m, "kiln-attempts", ab, sizeof(ab));
            if (m->offset < end[m->partition] && kiln_dlq_selected(d, id, error)) {
                d->selected++;
                rc = d->replay ? kiln_dlq_replay_one(d, modality, m, id, error, detail, attempts)
                               : kiln_dlq_list_one(d, id, error, detail, attempts);
            }
            if (m->offset + 1 >= end[m->partition]) {
                end[m->partition] = -1;
                open--;
            }
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_assign(d->consumer, NULL);
    free(end);
    return rc;
}

/* A producer whose delivery reports put refused jobs back to 'dead'. */
static rd_kafka_t *kiln_dlq_producer_new(kiln_dlq_t *d, char *errstr, size_t errstr_size) {
    rd_kafka_conf_t *rc = kiln_kafka_conf(d->conf, errstr, errstr_size);
    if (!rc)
        return NULL;
    rd_kafka_conf_set_dr_msg_cb(rc, kiln_dlq_dr_cb);
    rd_kafka_conf_set_opaque(rc, d);
    if (!*kiln_conf_get(d->conf, "kafka.enable.idempotence") &&
        rd_kafka_conf_set(rc, "enable.idempotence", "true", errstr, errstr_size)) {
        rd_kafka_conf_destroy(rc);
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, rc, errstr, errstr_size);
    if (!rk)
        rd_kafka_conf_destroy(rc);
    return rk;
}

static void kiln_dlq_help(void) {
    printf("usage: kiln dlq list   [--topic MODALITY] [--id JOB]... [--reason ERR] [OPTIONS]\n"
           "       kiln dlq replay [--topic MODALITY] [--id JOB]... [--reason ERR] [--dry-run]\n\n"
           "Reads the dead-letter topics <prefix>.<modality>.dlq from the beginning to their\n"
           "current end.\n\n"
           "list    prints one tab-separated line per message: job id, error, detail, attempts,\n"
           "        and the job's status in Postgres now.\n"
           "replay  sends each selected dead job back to <prefix>.<modality>.jobs: first its\n"
           "        row goes from 'dead' to 'queued' (attempts 0, error cleared), then the\n"
           "        original message is produced. Jobs whose row is not 'dead' (done, already\n"
           "        replayed) are skipped, so replaying twice is harmless. Messages without a\n"
           "        usable job id (rows \"invalid:<topic>:<partition>:<offset>\") are reported\n"
           "        and not sent. Fix the cause first (e.g. raise worker.max_input_bytes and\n"
           "        restart the workers), or the jobs die again.\n\n"
           "  -t, --topic MODALITY  transcribe, speak or image (default: every DLQ topic there is)\n"
           "  -i, --id JOB          only this job id (repeatable; ids may also follow the options)\n"
           "  -r, --reason ERR      only jobs dead with this error (BAD_JOB, BAD_INPUT, TOO_LARGE,\n"
           "                        BAD_KEY, ENGINE, ...)\n"
           "  -n, --dry-run         replay: print what would be replayed, change nothing\n"
           "\nExit codes: 0 done (see the summary line), 1 Postgres or broker error,\n"
           "2 usage or configuration error.\n\n");
    kiln_cli_common_help(stdout);
}

int kiln_cmd_dlq(int argc, char **argv) {
    static struct option opts[] = {{"topic", required_argument, 0, 't'},
                                   {"id", required_argument, 0, 'i'},
                                   {"reason", required_argument, 0, 'r'},
                                   {"dry-run", no_argument, 0, 'n'},
                                   KILN_CLI_LONGOPTS};
    kiln_cli_t cli = {0};
    kiln_dlq_t d = {0};
    const char *action = NULL, *modality = NULL;
    if (argc > 1 && argv[1][0] != '-') {
        action = argv[1];
        argc--;
        argv++;
    }
    int c;
    while ((c = getopt_long(argc, argv, "c:S:ht:i:r:n", opts, NULL)) != -1) {
        if (kiln_cli_common_opt(&cli, c, optarg))
            continue;
        switch (c) {
        case 'h': kiln_dlq_help(); return KILN_EXIT_OK;
        case 't': modality = optarg; break;
        case 'r': d.reason = optarg; break;
        case 'n': d.dry_run = 1; break;
        case 'i':
            if (d.n_ids == KILN_DLQ_MAX_IDS) {
                fprintf(stderr, "kiln dlq: at most %d job ids\n", KILN_DLQ_MAX_IDS);
                return KILN_EXIT_USAGE;
            }
            d.ids[d.n_ids++] = optarg;
            break;
        default: return KILN_EXIT_USAGE;
        }
    }
    for (; optind < argc; optind++) {
        if (d.n_ids == KILN_DLQ_MAX_IDS) {
            fprintf(stderr, "kiln dlq: at most %d job ids\n", KILN_DLQ_MAX_IDS);
            return KILN_EXIT_USAGE;
        }
        d.ids[d.n_ids++] = argv[optind];
    }
    if (!action) {
        fprintf(stderr, "kiln dlq: missing action: list or replay (see --help)\n");
        return KILN_EXIT_USAGE;
    }
    if (strcmp(action, "list") && strcmp(action, "replay")) {
        fprintf(stderr, "kiln dlq: unknown action \"%s\": use list or replay\n", action);
        return KILN_EXIT_USAGE;
    }
    d.replay = !strcmp(action, "replay");
    if (d.dry_run && !d.replay) {
        fprintf(stderr, "kiln dlq: --dry-run goes with replay\n");
        return KILN_EXIT_USAGE;
    }
    if (modality && !kiln_modality_valid(modality)) {
        fprintf(stderr, "kiln dlq: unknown modality \"%s\" (transcribe, speak, image)\n", modality);
        return KILN_EXIT_USAGE;
    }
    if (kiln_cli_load(&cli, "dlq"))
        return KILN_EXIT_USAGE;
    d.conf = cli.conf;
    char errstr[1024];
    int rc = KILN_EXIT_FAIL;
    d.pg = kiln_pg_connect(d.conf, "kiln-dlq", errstr, sizeof(errstr));
    if (d.pg)
        d.consumer = kiln_kafka_consumer_new(d.conf, "kiln-dlq", errstr, sizeof(errstr));
    if (d.consumer && d.replay && !d.dry_run)
        d.producer = kiln_dlq_producer_new(&d, errstr, sizeof(errstr));
    if (!d.consumer || (d.replay && !d.dry_run && !d.producer)) {
        fprintf(stderr, "kiln dlq: %s\n", errstr);
        goto out;
    }
    if (!d.replay)
        printf("job\terror\tdetail\tattempts\tstatus\n");
    int err = 0;
    for (int i = 0; i < KILN_N_MODALITIES && !err; i++)
        if (!modality || !strcmp(modality, kiln_modalities[i]))
            err = kiln_dlq_topic(&d, kiln_modalities[i], modality != NULL);
    if (d.producer && rd_kafka_flush(d.producer, 60000)) {
        fprintf(stderr, "kiln dlq: the broker did not acknowledge every replayed job in 60 s; "
                        "their rows are queued: run `kiln requeue` once the broker is back\n");
        err = 1;
    }
    if (d.replay)
        printf("%s %ld job(s), skipped %ld (not dead), %ld not replayable (no job id)%s\n",
               d.dry_run ? "would replay" : "replayed", d.replayed, d.skipped, d.unusable,
               d.failed ? ", some refused by the broker (rows dead again)" : "");
    else
        fprintf(stderr, "%ld message(s)\n", d.selected);
    rc = err || d.failed ? KILN_EXIT_FAIL : KILN_EXIT_OK;
out:
    if (d.consumer) {
        rd_kafka_consumer_close(d.consumer);
        rd_kafka_destroy(d.consumer);
    }
    if (d.producer)
        rd_kafka_destroy(d.producer);
    PQfinish(d.pg);
    kiln_idset_free(&d.seen);
    kiln_cli_free(&cli);
    return rc;
}
