/*
 * workers/batch.c - process and commit one batch (the exactly-once path).
 *
 *  1. parse + validate each message (bad -> DLQ);
 *  2. claim: one statement marks the live jobs running and counts attempts;
 *     jobs that already have a terminal row are skipped (their offsets
 *     still advance) - this is what makes redelivery and requeue harmless;
 *  3. fetch input (retrying transient store errors within the retry
 *     budget), decode audio, run the engine on the whole batch;
 *  4. write artifacts under deterministic keys (results/<tenant>/<id>/...);
 *  5+6. ONE transaction: fence check per partition (FOR SHARE); dead
 *     letters staged in the dlq_outbox table (workers/dlq_outbox.c); dead
 *     job rows, result rows (ON CONFLICT DO NOTHING), job status, next
 *     offset per partition. After COMMIT the staged dead letters are
 *     produced and their rows deleted: the DLQ is exactly-once
 *     (docs/chaos.md);
 *  7. after commit: completion events to <prefix>.events.
 * Speak workers run steps 3 and 4 and their speech rows in workers/batch_speak.c.
 * Postgres or store outages in steps 4-6 are retried with capped backoff
 * until they succeed or the worker is stopped (then nothing is committed and
 * the messages are consumed again).
 */
#include <jansson.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/kafka.h"
#include "kiln/log.h"
#include "kiln/pg.h"
#include "workers/worker_int.h"

/* ---- small helpers ---- */

static void kiln_sbuf_add(kiln_sbuf_t *sb, const char *s, size_t n) {
    if (sb->len + n + 1 > sb->cap) {
        sb->cap = (sb->len + n + 1) * 2;
        sb->buf = realloc(sb->buf, sb->cap);
        if (!sb->buf)
            abort();
    }
    memcpy(sb->buf + sb->len, s, n);
    sb->len += n;
    sb->buf[sb->len] = '\0';
}

/* Appends one element to a Postgres text[] literal being built in \p sb. */
void kiln_pg_array_add(kiln_sbuf_t *sb, const char *v) {
    kiln_sbuf_add(sb, sb->len ? ",\"" : "{\"", 2);
    for (const char *c = v; *c; c++) {
        if (*c == '"' || *c == '\\')
            kiln_sbuf_add(sb, "\\", 1);
        kiln_sbuf_add(sb, c, 1);
    }
    kiln_sbuf_add(sb, "\"", 1);
}

static const char *kiln_pg_array_end(kiln_sbuf_t *sb) {
    if (!sb->len)
        kiln_sbuf_add(sb, "{", 1);
    kiln_sbuf_add(sb, "}", 1);
    return sb->buf;
}

static void kiln_sha256_hex(const void *data, size_t len, char out[65]) {
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256(data, len, d);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void kiln_wjob_fail(kiln_wjob_t *j, kiln_err_t err, const char *fmt, const char *detail) {
    j->err = err;
    snprintf(j->errstr, sizeof(j->errstr), fmt, detail);
}

double kiln_wjob_units(const kiln_wjob_t *j) {
    return j->sp.sample_rate ? (double)j->sp.characters : j->tr.duration_s;
}

/* ---- 1+2: parse and claim ---- */

static void kiln_batch_parse(kiln_worker_t *kw, kiln_wjob_t *jobs, int n) {
    long long max_headers = kiln_conf_get_int(kw->conf, "job.max_headers");
    for (int i = 0; i < n; i++) {
        kiln_wjob_t *j = &jobs[i];
        char errstr[512];
        kiln_err_t err = kiln_job_parse(j->msg->payload, j->msg->len, &kw->limits, &j->job, errstr,
                                        sizeof(errstr));
        rd_kafka_headers_t *hdrs = NULL;
        if (!err && !rd_kafka_message_headers(j->msg, &hdrs) && hdrs &&
            (long long)rd_kafka_header_cnt(hdrs) > max_headers) {
            err = KILN_ERR_BAD_JOB; /* each header is copied into the dead letter and its row */
            snprintf(errstr, sizeof(errstr), "message has %zu headers, more than job.max_headers (%lld)",
                     rd_kafka_header_cnt(hdrs), max_headers);
        }
        if (!err && strcmp(j->job.modality, kw->modality)) {
            err = KILN_ERR_BAD_JOB;
            snprintf(errstr, sizeof(errstr), "modality \"%s\" does not belong on topic %s",
                     j->job.modality, kw->topic);
        }
        if (err) {
            j->err = err;
            snprintf(j->errstr, sizeof(j->errstr), "%s", errstr);
            if (!j->job.id[0]) { /* no usable id: key the dead row by position */
                snprintf(j->job.id, sizeof(j->job.id), "invalid:%s:%d:%lld", kw->topic,
                         j->msg->partition, (long long)j->msg->offset);
            }
        }
    }
}

/* Marks jobs running (inserting rows for jobs produced without kiln) and
 * reads back attempts; jobs with a terminal row are skipped. */
static kiln_err_t kiln_batch_claim(kiln_worker_t *kw, kiln_wjob_t *jobs, int n) {
    kiln_sbuf_t ids = {0}, tenants = {0}, msgs = {0}, parts = {0};
    /* the same job may be in the log more than once (requeue, a producer
     * retrying an id): only its first copy in the batch is claimed; the
     * others just advance the offset */
    int *dup = calloc(n + 1, sizeof(int));
    for (int i = 0; i < n; i++)
        for (int k = 0; k < i && !dup[i]; k++)
            dup[i] = !strcmp(jobs[i].job.id, jobs[k].job.id);
    for (int i = 0; i < n; i++) {
        char ps[16];
        if (dup[i])
            continue;
        snprintf(ps, sizeof(ps), "%d", jobs[i].msg->partition);
        kiln_pg_array_add(&ids, jobs[i].job.id);
        kiln_pg_array_add(&tenants, jobs[i].job.tenant);
        /* the message may not be valid UTF-8 text: store it only when it parsed */
        kiln_pg_array_add(&msgs, jobs[i].err ? "" : (const char *)jobs[i].job.id);
        kiln_pg_array_add(&parts, ps);
    }
    const char *p[6] = {kiln_pg_array_end(&ids), kiln_pg_array_end(&tenants),
                        kiln_pg_array_end(&parts), kw->id, kw->topic, kw->modality};
    char errstr[512];
    PGresult *r = kiln_pg_execp(
        kw->pg,
        "INSERT INTO jobs AS j (id, tenant, modality, status, attempts, topic, kpartition, worker, started_at)"
        " SELECT id, tenant, $6, 'running', 1, $5, part, $4, now()"
        "   FROM unnest($1::text[], $2::text[], $3::int[]) AS u(id, tenant, part)"
        " ON CONFLICT (id) DO UPDATE SET status = 'running', attempts = j.attempts + 1,"
        "   worker = $4, started_at = coalesce(j.started_at, now())"
        "   WHERE j.status IN ('queued', 'running')"
        " RETURNING id, attempts, extract(epoch FROM clock_timestamp() - j.enqueued_at)",
        6, p, errstr, sizeof(errstr));
    free(ids.buf);
    free(tenants.buf);
    free(msgs.buf);
    free(parts.buf);
    if (!r) {
        KILN_LOG_WARN("could not claim batch: %s", errstr);
        free(dup);
        return KILN_ERR_PG;
    }
    for (int i = 0; i < n; i++)
        jobs[i].skip = 1;
    for (int k = 0; k < PQntuples(r); k++) {
        const char *id = PQgetvalue(r, k, 0);
        for (int i = 0; i < n; i++)
            if (!dup[i] && !strcmp(jobs[i].job.id, id)) {
                jobs[i].skip = 0;
                jobs[i].attempts = atoi(PQgetvalue(r, k, 1));
                jobs[i].queue_s = atof(PQgetvalue(r, k, 2));
            }
    }
    PQclear(r);
    free(dup);
    for (int i = 0; i < n; i++) {
        kiln_wjob_t *j = &jobs[i];
        if (j->skip)
            kw->stats.jobs_skipped++;
        else if (!j->err && j->attempts > kw->retry_budget + 1) {
            char d[64];
            snprintf(d, sizeof(d), "%d", j->attempts - 1);
            kiln_wjob_fail(j, KILN_ERR_ENGINE,
                           "retry budget exhausted: %s earlier attempts did not finish", d);
        }
    }
    return KILN_OK;
}

/* ---- 3: input, decode, engine ---- */

static int kiln_b64_val(int c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

static int kiln_b64_decode(const char *in, void **out, size_t *out_len) {
    size_t n = strlen(in);
    unsigned char *o = malloc(n / 4 * 3 + 4);
    if (!o)
        return -1;
    size_t j = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == '=' || in[i] == '\n' || in[i] == '\r')
            continue;
        int v = kiln_b64_val((unsigned char)in[i]);
        if (v < 0) {
            free(o);
            return -1;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[j++] = (unsigned char)(acc >> bits);
        }
    }
    *out = o;
    *out_len = j;
    return 0;
}

kiln_err_t kiln_batch_fetch(kiln_worker_t *kw, kiln_wjob_t *j) {
    if (j->job.inline_b64) {
        if (kiln_b64_decode(j->job.inline_b64, &j->input, &j->input_len)) {
            kiln_wjob_fail(j, KILN_ERR_BAD_JOB, "%s", "input.inline_b64 is not valid base64");
        }
        return KILN_OK;
    }
    for (int attempt = 0;; attempt++) {
        char errstr[512];
        kiln_err_t err = kiln_store_get_uri(kw->store, j->job.input_uri, (size_t)kw->max_input_bytes,
                                            &j->input, &j->input_len, errstr, sizeof(errstr));
        if (!err)
            return KILN_OK;
        if (!kiln_err_is_retriable(err)) {
            j->err = err == KILN_ERR__NOT_FOUND ? KILN_ERR_BAD_INPUT : err;
            snprintf(j->errstr, sizeof(j->errstr), "could not read input \"%.300s\": %s",
                     j->job.input_uri, errstr);
            return KILN_OK;
        }
        if (attempt >= kw->retry_budget) {
            j->err = err;
            snprintf(j->errstr, sizeof(j->errstr), "could not read input after %d attempts: %s",
                     attempt + 1, errstr);
            return KILN_OK;
        }
        kw->stats.retries++;
        long long ms = kw->backoff_ms << (attempt < 7 ? attempt : 7);
        KILN_LOG_WARN("job %s: could not read input (%s); retrying in %lld ms", j->job.id, errstr, ms);
        if (!kiln_worker_backoff(kw, ms > 10000 ? 10000 : ms))
            return KILN_ERR__STOPPED;
    }
}

void kiln_batch_engine_metrics(kiln_worker_t *kw, int m, double t0) {
    if (!m)
        return;
    const char *const *ml = KILN_LABELS(kw->m.model);
    kiln_metric_add(kw->m.exec_count, ml, 1);
    kiln_metric_add(kw->m.inf_count, ml, m);
    kiln_metric_add(kw->m.compute_us, ml, (kiln_worker_now() - t0) * 1e6 * m);
}

int kiln_batch_engine_result(kiln_wjob_t *j, kiln_err_t batch_err, kiln_err_t err,
                             const char *error) {
    if (batch_err)
        kiln_wjob_fail(j, KILN_ERR_ENGINE, "engine failed on the batch: %s", kiln_err2str(batch_err));
    else if (err) {
        j->err = err;
        snprintf(j->errstr, sizeof(j->errstr), "%s", error);
    }
    return !j->err;
}

static kiln_err_t kiln_batch_run(kiln_worker_t *kw, kiln_wjob_t *jobs, int n) {
    kiln_asr_request_t *reqs = calloc(n, sizeof(*reqs));
    kiln_transcript_t *outs = calloc(n, sizeof(*outs));
    int *map = calloc(n, sizeof(int));
    if (!reqs || !outs || !map)
        abort();
    int m = 0;
    for (int i = 0; i < n; i++) {
        kiln_wjob_t *j = &jobs[i];
        if (j->skip || j->err)
            continue;
        kiln_err_t err = kiln_batch_fetch(kw, j);
        if (err == KILN_ERR__STOPPED) {
            free(reqs);
            free(outs);
            free(map);
            return err;
        }
        if (j->err)
            continue;
        char errstr[512];
        err = kiln_audio_decode(j->input, j->input_len, 16000, kw->max_audio_s, &j->audio, errstr,
                                sizeof(errstr));
        free(j->input);
        j->input = NULL;
        if (err) {
            j->err = err;
            snprintf(j->errstr, sizeof(j->errstr), "%s", errstr);
            continue;
        }
        reqs[m].job_id = j->job.id;
        reqs[m].pcm = j->audio.pcm;
        reqs[m].n_samples = j->audio.n_samples;
        reqs[m].rms_dbfs = j->audio.rms_dbfs;
        reqs[m].peak_dbfs = j->audio.peak_dbfs;
        reqs[m].language = j->job.language;
        map[m++] = i;
    }
    double t0 = kiln_worker_now();
    kiln_err_t err = m ? kiln_engine_run_batch(kw->engine, reqs, m, outs) : KILN_OK;
    kiln_batch_engine_metrics(kw, m, t0);
    for (int k = 0; k < m; k++) {
        kiln_wjob_t *j = &jobs[map[k]];
        if (kiln_batch_engine_result(j, err, outs[k].err, outs[k].error))
            j->tr = outs[k];
        else
            kiln_transcript_clear(&outs[k]);
        kiln_audio_free(&j->audio);
    }
    free(reqs);
    free(outs);
    free(map);
    return KILN_OK;
}

/* ---- 4: artifacts ---- */

static char *kiln_transcript_json(kiln_worker_t *kw, const kiln_wjob_t *j) {
    json_t *o = json_object();
    json_object_set_new(o, "job_id", json_string(j->job.id));
    json_object_set_new(o, "tenant", json_string(j->job.tenant));
    json_object_set_new(o, "engine", json_string(kiln_engine_name(kw->engine)));
    json_object_set_new(o, "model_ran", json_boolean(j->tr.model_ran));
    json_object_set_new(o, "language", json_string(j->tr.language));
    json_object_set_new(o, "text", json_string(j->tr.text ? j->tr.text : ""));
    json_object_set_new(o, "duration_s", json_real(j->tr.duration_s));
    json_t *segs = json_array();
    for (int s = 0; s < j->tr.n_segments; s++) {
        json_t *sg = json_object();
        json_object_set_new(sg, "start", json_real(j->tr.segments[s].start_ms / 1000.0));
        json_object_set_new(sg, "end", json_real(j->tr.segments[s].end_ms / 1000.0));
        json_object_set_new(sg, "text", json_string(j->tr.segments[s].text));
        json_array_append_new(segs, sg);
    }
    json_object_set_new(o, "segments", segs);
    if (j->tr.info_json) {
        json_t *info = json_loads(j->tr.info_json, 0, NULL);
        if (info)
            json_object_set_new(o, "info", info);
    }
    char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return text;
}

/* Subtitles from the segments: SRT ("00:00:01,000") or WebVTT ("00:00:01.000"). */
static char *kiln_subtitles(const kiln_transcript_t *tr, int vtt) {
    kiln_sbuf_t sb = {0};
    if (vtt)
        kiln_sbuf_add(&sb, "WEBVTT\n\n", 8);
    for (int s = 0; s < tr->n_segments; s++) {
        char line[128];
        long long t[2] = {tr->segments[s].start_ms, tr->segments[s].end_ms};
        char ts[2][32];
        for (int k = 0; k < 2; k++)
            snprintf(ts[k], sizeof(ts[k]), "%02lld:%02lld:%02lld%c%03lld", t[k] / 3600000,
                     t[k] / 60000 % 60, t[k] / 1000 % 60, vtt ? '.' : ',', t[k] % 1000);
        int n = vtt ? snprintf(line, sizeof(line), "%s --> %s\n", ts[0], ts[1])
                    : snprintf(line, sizeof(line), "%d\n%s --> %s\n", s + 1, ts[0], ts[1]);
        kiln_sbuf_add(&sb, line, (size_t)n);
        const char *text = tr->segments[s].text ? tr->segments[s].text : "";
        while (*text == ' ')
            text++;
        kiln_sbuf_add(&sb, text, strlen(text));
        kiln_sbuf_add(&sb, "\n\n", 2);
    }
    if (!sb.buf)
        kiln_sbuf_add(&sb, "", 0);
    return sb.buf;
}

/* Writes one artifact, retrying store outages until it succeeds or the
 * worker stops. */
kiln_err_t kiln_batch_put_bytes(kiln_worker_t *kw, kiln_wjob_t *j, const char *kind,
                                const void *data, size_t len) {
    char key[512];
    if (kiln_store_result_key(key, sizeof(key), j->job.tenant, j->job.id, kind)) {
        kiln_wjob_fail(j, KILN_ERR_BAD_JOB, "%s", "job id or tenant cannot form a result key");
        return KILN_OK;
    }
    for (int attempt = 0;; attempt++) {
        char errstr[512];
        kiln_err_t err = kiln_store_put(kw->store, key, data, len, errstr, sizeof(errstr));
        if (!err)
            break;
        kw->stats.retries++;
        KILN_LOG_WARN("could not write %s: %s; retrying", key, errstr);
        long long ms = kw->backoff_ms << (attempt < 6 ? attempt : 6);
        if (!kiln_worker_backoff(kw, ms > 5000 ? 5000 : ms))
            return KILN_ERR__STOPPED;
    }
    int a = j->n_artifacts++;
    j->artifacts[a].kind = kind;
    kiln_store_uri(kw->store, key, j->artifacts[a].uri, sizeof(j->artifacts[a].uri));
    j->artifacts[a].bytes = (long long)len;
    kiln_sha256_hex(data, len, j->artifacts[a].sha);
    return KILN_OK;
}

static kiln_err_t kiln_batch_artifacts(kiln_worker_t *kw, kiln_wjob_t *jobs, int n) {
    for (int i = 0; i < n; i++) {
        kiln_wjob_t *j = &jobs[i];
        if (j->skip || j->err)
            continue;
        j->n_artifacts = 0;
        char *docs[3] = {kiln_transcript_json(kw, j), NULL, NULL};
        const char *kinds[3] = {"transcript.json", "transcript.srt", "transcript.vtt"};
        if (j->tr.n_segments) {
            docs[1] = kiln_subtitles(&j->tr, 0);
            docs[2] = kiln_subtitles(&j->tr, 1);
        }
        kiln_err_t err = docs[0] ? KILN_OK : KILN_ERR__NOMEM;
        for (int d = 0; d < 3 && !err && !j->err; d++)
            if (docs[d])
                err = kiln_batch_put_bytes(kw, j, kinds[d], docs[d], strlen(docs[d]));
        for (int d = 0; d < 3; d++)
            free(docs[d]);
        if (err)
            return err;
    }
    return KILN_OK;
}

/* ---- 5: DLQ: workers/dlq_outbox.c (staged in 6, sent after COMMIT) ---- */

/* ---- 6: the transaction ---- */

/* Runs one statement of the batch transaction: parameters $1..$na are the
 * text[] literals built in \p arrays (consumed and reset), then the \p ns
 * scalars. Skipped (returns 0) when the first array is empty. */
int kiln_tx_exec(PGconn *pg, const char *sql, kiln_sbuf_t *arrays, int na,
                 const char *const *scalars, int ns, char *errstr, size_t errstr_size) {
    int empty = arrays[0].len == 0;
    const char *p[16] = {0};
    for (int i = 0; i < na; i++)
        p[i] = kiln_pg_array_end(&arrays[i]);
    for (int i = 0; i < ns; i++)
        p[na + i] = scalars[i];
    PGresult *r = empty ? NULL : kiln_pg_execp(pg, sql, na + ns, p, errstr, errstr_size);
    for (int i = 0; i < na; i++) {
        free(arrays[i].buf);
        memset(&arrays[i], 0, sizeof(arrays[i]));
    }
    if (empty)
        return 0;
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

/* Every statement takes whole columns as arrays (unnest), so a batch costs
 * the same seven round trips whatever its size. */
/* The partitions of a batch (indexes into kw->own) and the next offset of
 * each. @returns their number, or -1 for more than 256 (cannot happen). */
static int kiln_batch_partitions(kiln_worker_t *kw, kiln_wjob_t *jobs, int n, int owns[256],
                                 long long next[256]) {
    (void)kw;
    int n_owns = 0;
    for (int i = 0; i < n; i++) {
        int k;
        for (k = 0; k < n_owns && owns[k] != jobs[i].own_idx; k++)
            ;
        if (k == n_owns) {
            if (n_owns == 256)
                return -1;
            owns[n_owns] = jobs[i].own_idx;
            next[n_owns++] = jobs[i].msg->offset + 1;
        } else if (jobs[i].msg->offset + 1 > next[k])
            next[k] = jobs[i].msg->offset + 1;
    }
    return n_owns;
}

/* Is every partition of the batch still ours, at our epoch? \p lock is ""
 * or " FOR SHARE" (inside the commit transaction: holds off a concurrent
 * reassignment until we commit). @returns KILN_OK, KILN_ERR__FENCED or
 * KILN_ERR_PG. */
static kiln_err_t kiln_batch_fence(kiln_worker_t *kw, const int *owns, int n_owns,
                                   const char *lock, char *errstr, size_t errstr_size) {
    kiln_sbuf_t parts = {0};
    char num[32];
    for (int k = 0; k < n_owns; k++) {
        snprintf(num, sizeof(num), "%d", kw->own[owns[k]].partition);
        kiln_pg_array_add(&parts, num);
    }
    const char *sql = lock[0] ? "SELECT kpartition, coalesce(worker, ''), epoch FROM assignments"
                                " WHERE topic = $1 AND kpartition = ANY ($2::int[]) FOR SHARE"
                              : "SELECT kpartition, coalesce(worker, ''), epoch FROM assignments"
                                " WHERE topic = $1 AND kpartition = ANY ($2::int[])";
    const char *p[2] = {kw->topic, kiln_pg_array_end(&parts)};
    PGresult *r = kiln_pg_execp(kw->pg, sql, 2, p, errstr, errstr_size);
    free(parts.buf);
    if (!r)
        return KILN_ERR_PG;
    int ok = PQntuples(r) == n_owns;
    for (int t = 0; ok && t < PQntuples(r); t++) {
        int part = atoi(PQgetvalue(r, t, 0));
        for (int k = 0; k < n_owns; k++)
            if (kw->own[owns[k]].partition == part)
                ok = !strcmp(PQgetvalue(r, t, 1), kw->id) &&
                     atoll(PQgetvalue(r, t, 2)) == kw->own[owns[k]].epoch;
    }
    PQclear(r);
    if (!ok) {
        snprintf(errstr, errstr_size, "a partition of this batch is no longer ours at our epoch");
        return KILN_ERR__FENCED;
    }
    return KILN_OK;
}

static kiln_err_t kiln_batch_commit_tx(kiln_worker_t *kw, kiln_wjob_t *jobs, int n, char *errstr,
                                       size_t errstr_size) {
    PGconn *pg = kw->pg;
    int owns[256];
    long long next[256];
    int n_owns = kiln_batch_partitions(kw, jobs, n, owns, next);
    if (n_owns < 0)
        return KILN_ERR__FAIL;
    if (kiln_pg_exec(pg, "BEGIN", errstr, errstr_size))
        return KILN_ERR_PG;
    kiln_sbuf_t a[12]; /* batch_speak.c's speech rows take 9 */
    memset(a, 0, sizeof(a));
    char num[64];
    const char *topic_worker[3] = {kw->topic, kw->id, kiln_engine_name(kw->engine)};
    const char *worker_modality[2] = {kw->id, kw->modality};
    int speak = kiln_worker_is_speak(kw);
    /* 1. fence: every partition must still be ours, at our epoch */
    kiln_err_t ferr = kiln_batch_fence(kw, owns, n_owns, " FOR SHARE", errstr, errstr_size);
    if (ferr == KILN_ERR__FENCED) {
        char e2[64];
        kiln_pg_exec(pg, "ROLLBACK", e2, sizeof(e2));
        return ferr;
    }
    if (ferr)
        goto fail;
    /* dead letters: one dlq_outbox row per job turning dead, committed
     * with it; produced after COMMIT (workers/dlq_outbox.c). A batch whose
     * partition moved never stages any (the new owner dead-letters the job) */
    if (kiln_dlq_outbox_stage(kw, jobs, n, errstr, errstr_size))
        goto fail;
    /* 2. dead jobs (rows may not exist yet: jobs produced without kiln) */
    for (int i = 0; i < n; i++) {
        kiln_wjob_t *j = &jobs[i];
        if (j->skip || !j->err)
            continue;
        kiln_pg_array_add(&a[0], j->job.id);
        kiln_pg_array_add(&a[1], j->job.tenant);
        kiln_pg_array_add(&a[2], kiln_err2name(j->err));
        kiln_pg_array_add(&a[3], j->errstr);
    }
    if (kiln_tx_exec(pg,
                     "INSERT INTO jobs AS j (id, tenant, modality, status, error, error_detail,"
                     " worker, finished_at, attempts)"
                     " SELECT id, tenant, $6, 'dead', err, detail, $5, now(), 1"
                     " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])"
                     "   AS u(id, tenant, err, detail)"
                     " ON CONFLICT (id) DO UPDATE SET status = 'dead', error = EXCLUDED.error,"
                     "  error_detail = EXCLUDED.error_detail, worker = $5, finished_at = now()"
                     "  WHERE j.status NOT IN ('done', 'dead')",
                     a, 4, worker_modality, 2, errstr, errstr_size))
        goto fail;
    /* 3. transcripts (speak: speech), 4. segments, 5. artifacts (idempotent) */
    if (speak && kiln_batch_speak_rows(kw, jobs, n, a, errstr, errstr_size))
        goto fail;
    for (int i = 0; i < n; i++) {
        kiln_wjob_t *j = &jobs[i];
        if (j->skip || j->err || speak)
            continue;
        kiln_pg_array_add(&a[0], j->job.id);
        kiln_pg_array_add(&a[1], j->job.tenant);
        kiln_pg_array_add(&a[2], j->tr.language);
        kiln_pg_array_add(&a[3], j->tr.text ? j->tr.text : "");
        snprintf(num, sizeof(num), "%.3f", j->tr.duration_s);
        kiln_pg_array_add(&a[4], num);
        kiln_pg_array_add(&a[5], j->tr.model_ran ? "t" : "f");
        kiln_pg_array_add(&a[6], j->tr.info_json ? j->tr.info_json : "");
    }
    if (kiln_tx_exec(pg,
                     "INSERT INTO transcripts (job_id, tenant, language, text, duration_s, engine,"
                     " model_ran, info)"
                     " SELECT id, tenant, nullif(lang, ''), txt, dur, $8, ran, nullif(info, '')::jsonb"
                     " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[],"
                     "   $6::boolean[], $7::text[]) AS u(id, tenant, lang, txt, dur, ran, info)"
                     " ON CONFLICT (job_id) DO NOTHING",
                     a, 7, topic_worker + 2, 1, errstr, errstr_size))
        goto fail;
    for (int i = 0; i < n; i++) {
        kiln_wjob_t *j = &jobs[i];
        if (j->skip || j->err)
            continue;
        for (int s = 0; s < j->tr.n_segments; s++) {
            kiln_segment_t *sg = &j->tr.segments[s];
            kiln_pg_array_add(&a[0], j->job.id);
            snprintf(num, sizeof(num), "%d", s);
            kiln_pg_array_add(&a[1], num);
            snprintf(num, sizeof(num), "%lld", (long long)sg->start_ms);
            kiln_pg_array_add(&a[2], num);
            snprintf(num, sizeof(num), "%lld", (long long)sg->end_ms);
            kiln_pg_array_add(&a[3], num);
            kiln_pg_array_add(&a[4], sg->text ? sg->text : "");
            snprintf(num, sizeof(num), "%.4f", sg->avg_logprob);
            kiln_pg_array_add(&a[5], num);
            snprintf(num, sizeof(num), "%.4f", sg->no_speech_prob);
            kiln_pg_array_add(&a[6], num);
        }
    }
    if (kiln_tx_exec(pg,
                     "INSERT INTO segments (job_id, idx, start_ms, end_ms, text, avg_logprob,"
                     " no_speech_prob) SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[],"
                     " $4::bigint[], $5::text[], $6::real[], $7::real[]) ON CONFLICT DO NOTHING",
                     a, 7, NULL, 0, errstr, errstr_size))
        goto fail;
    for (int i = 0; i < n; i++) {
        kiln_wjob_t *j = &jobs[i];
        if (j->skip || j->err)
            continue;
        for (int k = 0; k < j->n_artifacts; k++) {
            kiln_pg_array_add(&a[0], j->job.id);
            kiln_pg_array_add(&a[1], j->artifacts[k].kind);
            kiln_pg_array_add(&a[2], j->artifacts[k].uri);
            snprintf(num, sizeof(num), "%lld", j->artifacts[k].bytes);
            kiln_pg_array_add(&a[3], num);
            kiln_pg_array_add(&a[4], j->artifacts[k].sha);
        }
    }
    if (kiln_tx_exec(pg,
                     "INSERT INTO artifacts (job_id, kind, uri, bytes, sha256) SELECT * FROM"
                     " unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[])"
                     " ON CONFLICT DO NOTHING",
                     a, 5, NULL, 0, errstr, errstr_size))
        goto fail;
    /* 6. job status */
    for (int i = 0; i < n; i++)
        if (!jobs[i].skip && !jobs[i].err)
            kiln_pg_array_add(&a[0], jobs[i].job.id);
    if (kiln_tx_exec(pg,
                     "UPDATE jobs SET status = 'done', finished_at = now(), worker = $2,"
                     " error = NULL, error_detail = NULL FROM unnest($1::text[]) AS u(id)"
                     " WHERE jobs.id = u.id AND jobs.status NOT IN ('done', 'dead')",
                     a, 1, topic_worker + 1, 1, errstr, errstr_size))
        goto fail;
    /* 7. the next offset of every partition in the batch */
    for (int k = 0; k < n_owns; k++) {
        snprintf(num, sizeof(num), "%d", kw->own[owns[k]].partition);
        kiln_pg_array_add(&a[0], num);
        snprintf(num, sizeof(num), "%lld", next[k]);
        kiln_pg_array_add(&a[1], num);
    }
    if (kiln_tx_exec(pg,
                     "INSERT INTO offsets (topic, kpartition, next_offset, updated_at)"
                     " SELECT $3, part, off, now() FROM unnest($1::int[], $2::bigint[]) AS u(part, off)"
                     " ON CONFLICT (topic, kpartition) DO UPDATE"
                     " SET next_offset = EXCLUDED.next_offset, updated_at = now()",
                     a, 2, topic_worker, 1, errstr, errstr_size))
        goto fail;
    if (kiln_pg_exec(pg, "COMMIT", errstr, errstr_size))
        return KILN_ERR_PG;
    for (int k = 0; k < n_owns; k++)
        kw->own[owns[k]].next_offset = next[k];
    return KILN_OK;
fail: {
    char e2[128];
    for (int i = 0; i < 12; i++)
        free(a[i].buf);
    kiln_pg_exec(pg, "ROLLBACK", e2, sizeof(e2));
    return KILN_ERR_PG;
}
}

/* ---- 7: events ---- */

static void kiln_batch_events(kiln_worker_t *kw, kiln_wjob_t *jobs, int n) {
    for (int i = 0; i < n; i++) {
        kiln_wjob_t *j = &jobs[i];
        if (j->skip)
            continue;
        json_t *e = json_object();
        json_object_set_new(e, "id", json_string(j->job.id));
        json_object_set_new(e, "tenant", json_string(j->job.tenant));
        json_object_set_new(e, "modality", json_string(kw->modality));
        json_object_set_new(e, "status", json_string(j->err ? "dead" : "done"));
        json_object_set_new(e, "worker", json_string(kw->id));
        if (j->err) {
            json_object_set_new(e, "error", json_string(kiln_err2name(j->err)));
            json_object_set_new(e, "error_detail", json_string(j->errstr));
        } else {
            json_object_set_new(e, "duration_s",
                                json_real(kiln_worker_is_speak(kw) ? j->speech_s
                                                                   : j->tr.duration_s));
            json_t *uris = json_array();
            for (int k = 0; k < j->n_artifacts; k++)
                json_array_append_new(uris, json_string(j->artifacts[k].uri));
            json_object_set_new(e, "result_uris", uris);
        }
        char *text = json_dumps(e, JSON_COMPACT);
        json_decref(e);
        if (!text)
            continue;
        rd_kafka_producev(kw->producer, RD_KAFKA_V_TOPIC(kw->events_topic),
                          RD_KAFKA_V_KEY(j->job.id, strlen(j->job.id)),
                          RD_KAFKA_V_VALUE(text, strlen(text)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
                          RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR_NO_ERROR
            ? (void)0
            : free(text);
    }
    rd_kafka_poll(kw->producer, 0);
}

/* Metrics of a committed batch (docs/monitoring.md). Job latency is the
 * database-clock wait until the claim plus this worker's time since then. */
static void kiln_batch_metrics(kiln_worker_t *kw, kiln_wjob_t *jobs, int n, double t_start,
                               double t_claim) {
    kiln_wmetrics_t *wm = &kw->m;
    double now = kiln_worker_now();
    const char *mod = kw->modality;
    kiln_metrics_lock(wm->reg);
    kiln_metric_observe(wm->batch_size, KILN_LABELS(mod), n);
    kiln_metric_observe(wm->batch_seconds, KILN_LABELS(mod), now - t_start);
    for (int i = 0; i < n; i++) {
        kiln_wjob_t *j = &jobs[i];
        if (j->skip) {
            kiln_metric_add(wm->jobs, KILN_LABELS(mod, "skipped"), 1);
            continue;
        }
        kiln_metric_observe(wm->latency, KILN_LABELS(mod), j->queue_s + (now - t_claim));
        kiln_metric_add(wm->queue_us, KILN_LABELS(wm->model), j->queue_s * 1e6);
        if (j->err) {
            kiln_metric_add(wm->jobs, KILN_LABELS(mod, "dead"), 1);
            kiln_metric_add(wm->dlq, KILN_LABELS(mod, kiln_err2name(j->err)), 1);
        } else {
            kiln_metric_add(wm->jobs, KILN_LABELS(mod, "done"), 1);
            kiln_metric_add(wm->work_units, KILN_LABELS(mod), kiln_wjob_units(j));
        }
    }
    kiln_worker_metrics_stats(kw);
    kiln_metrics_unlock(wm->reg);
}

kiln_err_t kiln_worker_process_batch(kiln_worker_t *kw, kiln_wjob_t *jobs, int n) {
    double t_start = kiln_worker_now();
    kiln_dlq_outbox_relay(kw); /* orphaned dead letters (rate-limited) */
    kiln_batch_parse(kw, jobs, n);
    kiln_err_t err;
    for (int attempt = 0; (err = kiln_batch_claim(kw, jobs, n)) != KILN_OK; attempt++) {
        kw->stats.retries++;
        kiln_pg_check(kw->pg);
        if (!kiln_worker_backoff(kw, attempt < 5 ? 200 << attempt : 5000))
            return KILN_ERR__STOPPED;
    }
    double t_claim = kiln_worker_now();
    int speak = kiln_worker_is_speak(kw);
    if ((err = speak ? kiln_batch_speak_run(kw, jobs, n) : kiln_batch_run(kw, jobs, n)) != KILN_OK)
        return err;
    err = speak ? kiln_batch_speak_artifacts(kw, jobs, n) : kiln_batch_artifacts(kw, jobs, n);
    if (err != KILN_OK)
        return err;
    /* artifacts durable before the transaction that references them */
    for (int attempt = 0;; attempt++) {
        char errstr[512];
        if (kiln_store_sync(kw->store, errstr, sizeof(errstr)) == KILN_OK)
            break;
        kw->stats.retries++;
        KILN_LOG_WARN("%s; retrying", errstr);
        if (!kiln_worker_backoff(kw, attempt < 5 ? 200 << attempt : 5000))
            return KILN_ERR__STOPPED;
    }
    for (int attempt = 0;; attempt++) {
        char errstr[512];
        err = kiln_batch_commit_tx(kw, jobs, n, errstr, sizeof(errstr));
        if (!err)
            break;
        if (err == KILN_ERR__FENCED) {
            kw->stats.fenced++;
            KILN_LOG_WARN("batch not committed: %s", errstr);
            return err;
        }
        kw->stats.retries++;
        KILN_LOG_WARN("could not commit batch: %s; retrying", errstr);
        kiln_pg_check(kw->pg);
        if (!kiln_worker_backoff(kw, attempt < 5 ? 200 << attempt : 5000))
            return KILN_ERR__STOPPED;
    }
    /* the committed dead letters; a stop while their rows' DELETE is
     * retried leaves them to the relay (it finds them in the DLQ) */
    kiln_dlq_outbox_send(kw);
    kw->stats.batches++;
    for (int i = 0; i < n; i++) {
        if (jobs[i].skip)
            continue;
        if (jobs[i].err)
            kw->stats.jobs_dead++;
        else
            kw->stats.jobs_done++;
    }
    kiln_batch_metrics(kw, jobs, n, t_start, t_claim);
    kiln_batch_events(kw, jobs, n);
    return KILN_OK;
}
