/*
 * cmd/bench_pipeline.c - `kiln bench pipeline [--jobs N] [--reps R] [--json]`.
 *
 * The null engine over N jobs on a private embedded stack, against a raw
 * baseline on the same messages: a bare librdkafka consumer plus libpq COPY
 * of the same rows. Per repetition: N fresh jobs are produced (recorded in
 * Postgres first, as always), then both sides consume exactly those
 * messages, alternating which goes first. Both run in this process with the
 * same thread count (kiln's worker is one thread; the raw loop is one
 * thread). Reported: median rate of each, the ratio kiln/raw, and kiln's
 * per-job added latency (claim -> commit, from the rows' timestamps: it
 * includes input fetch, audio decode, artifact write and the transaction).
 */
#include <jansson.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <math.h>
#include <pthread.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cli.h"
#include "kiln/kafka.h"
#include "kiln/log.h"
#include "kiln/pg.h"
#include "kiln/producer.h"
#include "kiln/worker.h"

static double kiln_bp_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int kiln_bp_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double kiln_bp_median(double *v, int n) {
    qsort(v, n, sizeof(double), kiln_bp_cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The raw baseline: consume exactly [from, to) of every partition, COPY one
 * row per message into bench_raw. @returns seconds, or -1. */
static double kiln_bp_raw(const kiln_conf_t *conf, PGconn *pg, const char *topic, int np,
                          const long long *from, const long long *to, long long n) {
    char errstr[512];
    rd_kafka_t *rk = kiln_kafka_consumer_new(conf, "bench-raw", errstr, sizeof(errstr));
    if (!rk)
        return -1;
    rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(np);
    for (int p = 0; p < np; p++)
        if (to[p] > from[p])
            rd_kafka_topic_partition_list_add(tl, topic, p)->offset = from[p];
    double t0 = kiln_bp_now();
    rd_kafka_assign(rk, tl);
    rd_kafka_topic_partition_list_destroy(tl);
    PGresult *r = PQexec(pg, "COPY bench_raw (job_id, tenant, kpartition, koffset, payload_bytes) FROM STDIN");
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        PQclear(r);
        rd_kafka_destroy(rk);
        return -1;
    }
    PQclear(r);
    long long got = 0;
    while (got < n) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 1000);
        if (!m)
            continue;
        if (!m->err && m->offset < to[m->partition]) {
            /* the same minimal work a consumer must do: parse, extract, write */
            json_t *j = json_loadb(m->payload, m->len, 0, NULL);
            const char *id = json_string_value(json_object_get(j, "id"));
            const char *tenant = json_string_value(json_object_get(j, "tenant"));
            char line[512];
            int len = snprintf(line, sizeof(line), "%s\t%s\t%d\t%lld\t%zu\n", id ? id : "",
                               tenant ? tenant : "", m->partition, (long long)m->offset, m->len);
            PQputCopyData(pg, line, len);
            json_decref(j);
            got++;
        }
        rd_kafka_message_destroy(m);
    }
    PQputCopyEnd(pg, NULL);
    r = PQgetResult(pg);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    double el = kiln_bp_now() - t0;
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return ok ? el : -1;
}

typedef struct {
    kiln_worker_t *kw;
    volatile sig_atomic_t run;
} kiln_bp_worker_t;

static void *kiln_bp_worker_main(void *arg) {
    kiln_bp_worker_t *bw = arg;
    kiln_worker_run(bw->kw, &bw->run);
    return NULL;
}

/* kiln: an in-process worker owning every partition drains the N jobs.
 * @returns seconds from its start until all N rows are done, or -1. */
static double kiln_bp_kiln(const kiln_conf_t *conf, PGconn *pg, long long n_done_target) {
    char errstr[512];
    kiln_bp_worker_t bw = {.run = 1};
    bw.kw = kiln_worker_new(conf, errstr, sizeof(errstr));
    if (!bw.kw) {
        fprintf(stderr, "kiln bench pipeline: %s\n", errstr);
        return -1;
    }
    pthread_t th;
    double t0 = kiln_bp_now();
    pthread_create(&th, NULL, kiln_bp_worker_main, &bw);
    double el = -1;
    for (;;) {
        PGresult *r = PQexec(pg, "SELECT count(*) FROM jobs WHERE status = 'done'");
        long long done = PQresultStatus(r) == PGRES_TUPLES_OK ? atoll(PQgetvalue(r, 0, 0)) : -1;
        PQclear(r);
        if (done >= n_done_target) {
            el = kiln_bp_now() - t0;
            break;
        }
        if (kiln_bp_now() - t0 > 600)
            break;
        usleep(5000);
    }
    bw.run = 0;
    pthread_join(th, NULL);
    kiln_worker_destroy(bw.kw);
    return el;
}

static int kiln_bp_sh(const char *fmt, const char *a, const char *b) {
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), fmt, a, b);
    return system(cmd);
}

static void kiln_bench_pipeline_help(void) {
    printf("usage: kiln bench pipeline [--jobs N] [--reps R] [--json] [OPTIONS]\n\n"
           "Starts a private embedded stack in a temporary directory, then R times: produces\n"
           "N jobs (0.5 s of audio each, one shared input), and drains exactly those messages\n"
           "with (a) kiln's worker and the null engine and (b) a raw librdkafka consumer +\n"
           "libpq COPY, alternating which goes first. Prints the median rate of each, their\n"
           "ratio and kiln's per-job added latency (p50/p99).\n\n"
           "  -n, --jobs N          jobs per repetition (default 2000)\n"
           "  -r, --reps R          repetitions (default 5)\n"
           "  -j, --json            also print one JSON object as the last line\n");
    kiln_cli_common_help(stdout);
}

int kiln_cmd_bench_pipeline(int argc, char **argv) {
    static struct option opts[] = {{"jobs", required_argument, 0, 'n'},
                                   {"reps", required_argument, 0, 'r'},
                                   {"json", no_argument, 0, 'j'}, KILN_CLI_LONGOPTS};
    kiln_cli_t cli = {0};
    int c, reps = 5, json = 0;
    long long n = 2000;
    while ((c = getopt_long(argc, argv, "c:S:hn:r:j", opts, NULL)) != -1) {
        if (kiln_cli_common_opt(&cli, c, optarg))
            continue;
        if (c == 'h') {
            kiln_bench_pipeline_help();
            return KILN_EXIT_OK;
        } else if (c == 'n')
            n = atoll(optarg);
        else if (c == 'r')
            reps = atoi(optarg);
        else if (c == 'j')
            json = 1;
        else
            return KILN_EXIT_USAGE;
    }
    if (n < 1 || reps < 1 || reps > 100) {
        fprintf(stderr, "kiln bench pipeline: --jobs must be >= 1 and --reps 1..100\n");
        return KILN_EXIT_USAGE;
    }
    char tmpl[] = "/tmp/kiln-bench.XXXXXX";
    char *dir = mkdtemp(tmpl);
    if (!dir) {
        perror("kiln bench pipeline: mkdtemp");
        return KILN_EXIT_FAIL;
    }
    chmod(dir, 0755);
    char stackdir[600], sets[800];
    snprintf(stackdir, sizeof(stackdir), "%s/stack", dir);
    snprintf(sets, sizeof(sets), "--set stack.dir=%s --set worker.engine=null --set worker.id=bench", stackdir);
    fprintf(stderr, "starting a private stack in %s ...\n", stackdir);
    if (kiln_bp_sh("'%s' up --workers 0 %s > /dev/null 2>&1", kiln_cli_self(), sets)) {
        fprintf(stderr, "kiln bench pipeline: could not start the stack (logs in %s/log)\n", stackdir);
        return KILN_EXIT_FAIL;
    }
    /* stop the stack's scheduler: this bench assigns every partition to its worker */
    char setdir[700];
    snprintf(setdir, sizeof(setdir), "stack.dir=%s", stackdir);
    cli.sets[cli.n_sets++] = setdir;
    cli.sets[cli.n_sets++] = "worker.engine=null";
    cli.sets[cli.n_sets++] = "worker.id=bench";
    if (kiln_cli_load(&cli, "bench")) {
        kiln_bp_sh("'%s' down --set stack.dir=%s > /dev/null 2>&1", kiln_cli_self(), stackdir);
        return KILN_EXIT_USAGE;
    }
    kiln_log_set_level(KILN_LOG_LVL_ERROR);
    char errstr[1024];
    int rc = KILN_EXIT_FAIL;
    PGconn *pg = kiln_pg_connect(cli.conf, "kiln-bench", errstr, sizeof(errstr));
    kiln_producer_t *kp = pg ? kiln_producer_new(cli.conf, errstr, sizeof(errstr)) : NULL;
    if (!kp) {
        fprintf(stderr, "kiln bench pipeline: %s\n", errstr);
        goto out;
    }
    {
        char sched_pid_path[700];
        snprintf(sched_pid_path, sizeof(sched_pid_path), "%s/run/scheduler.pid", stackdir);
        FILE *fp = fopen(sched_pid_path, "r");
        int pid = 0;
        if (fp && fscanf(fp, "%d", &pid) == 1 && pid > 0)
            kill(pid, SIGTERM);
        if (fp)
            fclose(fp);
    }
    kiln_pg_exec(pg,
                 "CREATE TABLE bench_raw (job_id text, tenant text, kpartition int, koffset bigint,"
                 " payload_bytes int)",
                 errstr, sizeof(errstr));
    char topic[256];
    kiln_kafka_topic(cli.conf, "transcribe", "jobs", topic, sizeof(topic));
    int np = kiln_kafka_partitions(cli.conf, "transcribe");
    /* every partition belongs to the bench worker */
    {
        char nps[16];
        snprintf(nps, sizeof(nps), "%d", np);
        const char *p[2] = {topic, nps};
        PGresult *r = kiln_pg_execp(pg,
                                    "INSERT INTO assignments (topic, kpartition, worker, epoch)"
                                    " SELECT $1, g, 'bench', 1 FROM generate_series(0, $2::int - 1) g"
                                    " ON CONFLICT (topic, kpartition) DO UPDATE SET worker = 'bench'",
                                    2, p, errstr, sizeof(errstr));
        PQclear(r);
    }
    /* one input, 0.5 s of 440 Hz at 16 kHz */
    char wav[700];
    snprintf(wav, sizeof(wav), "%s/tone.wav", dir);
    SF_INFO si = {.samplerate = 16000, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16};
    SNDFILE *sf = sf_open(wav, SFM_WRITE, &si);
    short pcm[8000];
    for (int i = 0; i < 8000; i++)
        pcm[i] = (short)(8000 * sin(2 * M_PI * 440 * i / 16000.0));
    sf_write_short(sf, pcm, 8000);
    sf_close(sf);
    kiln_submit_params_t sp = kiln_submit_default_params();
    char id[129], uri[1024];
    sp.id = "bench-seed";
    if (kiln_producer_submit_file(kp, wav, &sp, id, errstr, sizeof(errstr))) {
        fprintf(stderr, "kiln bench pipeline: %s\n", errstr);
        goto out;
    }
    sp.id = NULL;
    {
        PGresult *r = PQexec(pg, "SELECT input_uri FROM jobs WHERE id = 'bench-seed'");
        snprintf(uri, sizeof(uri), "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
    }
    rd_kafka_t *meta = kiln_kafka_producer_new(cli.conf, errstr, sizeof(errstr));
    long long *from = calloc(np, sizeof(long long)), *to = calloc(np, sizeof(long long));
    double *kiln_rates = calloc(reps, sizeof(double)), *raw_rates = calloc(reps, sizeof(double));
    long long target = 1; /* the seed job */
    fprintf(stderr, "%d repetitions of %lld jobs, alternating kiln / raw\n", reps, n);
    for (int rep = 0; rep < reps; rep++) {
        for (int p = 0; p < np; p++) {
            int64_t lo, hi;
            kiln_kafka_watermarks(meta, topic, p, &lo, &hi, 5000);
            from[p] = hi;
        }
        for (long long i = 0; i < n; i++)
            if (kiln_producer_submit_uri(kp, uri, &sp, id, errstr, sizeof(errstr))) {
                fprintf(stderr, "kiln bench pipeline: %s\n", errstr);
                goto out;
            }
        kiln_producer_flush(kp, 60000);
        for (int p = 0; p < np; p++) {
            int64_t lo, hi;
            kiln_kafka_watermarks(meta, topic, p, &lo, &hi, 5000);
            to[p] = hi;
        }
        target += n;
        double tk = 0, tr = 0;
        for (int side = 0; side < 2; side++) {
            int do_kiln = (side == 0) == (rep % 2 == 0);
            if (do_kiln)
                tk = kiln_bp_kiln(cli.conf, pg, target + (rep == 0 ? 0 : 0));
            else
                tr = kiln_bp_raw(cli.conf, pg, topic, np, from, to, n);
        }
        if (tk <= 0 || tr <= 0) {
            fprintf(stderr, "kiln bench pipeline: repetition %d failed\n", rep + 1);
            goto out;
        }
        kiln_rates[rep] = n / tk;
        raw_rates[rep] = n / tr;
        fprintf(stderr, "  rep %d: kiln %.0f jobs/s, raw %.0f jobs/s\n", rep + 1, kiln_rates[rep],
                raw_rates[rep]);
    }
    {
        double km = kiln_bp_median(kiln_rates, reps), rm = kiln_bp_median(raw_rates, reps);
        PGresult *r = PQexec(pg,
                             "SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY"
                             " EXTRACT(EPOCH FROM finished_at - started_at) * 1000),"
                             " count(*) FROM jobs WHERE status = 'done' AND id <> 'bench-seed'");
        double p50 = 0, p99 = 0;
        if (PQresultStatus(r) == PGRES_TUPLES_OK)
            sscanf(PQgetvalue(r, 0, 0), "{%lf,%lf}", &p50, &p99);
        long long dups_check = PQresultStatus(r) == PGRES_TUPLES_OK ? atoll(PQgetvalue(r, 0, 1)) : 0;
        PQclear(r);
        struct utsname un;
        uname(&un);
        char date[32];
        time_t now = time(NULL);
        strftime(date, sizeof(date), "%Y-%m-%d", gmtime(&now));
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("\nkiln bench pipeline: %lld jobs x %d reps, null engine, %d partitions, max_batch %lld\n",
               n, reps, np, kiln_conf_get_int(cli.conf, "worker.max_batch"));
        printf("  %-38s %12s\n", "", "jobs/s (median)");
        printf("  %-38s %12.0f\n", "kiln worker (decode+artifact+tx)", km);
        printf("  %-38s %12.0f\n", "raw librdkafka + COPY", rm);
        printf("  %-38s %12.2f   (goal >= 0.5)\n", "ratio kiln/raw", km / rm);
        printf("  kiln added latency per job: p50 %.1f ms, p99 %.1f ms (goal p99 <= 5 ms)\n", p50, p99);
        printf("  jobs done: %lld of %lld; peak RSS %ld MB\n", dups_check, n * reps, ru.ru_maxrss / 1024);
        if (json) {
            json_t *o = json_object();
            json_object_set_new(o, "bench", json_string("pipeline"));
            json_object_set_new(o, "machine", json_string(un.nodename));
            json_object_set_new(o, "date", json_string(date));
            json_t *params = json_object();
            json_object_set_new(params, "jobs", json_integer(n));
            json_object_set_new(params, "reps", json_integer(reps));
            json_object_set_new(params, "partitions", json_integer(np));
            json_object_set_new(params, "max_batch", json_integer(kiln_conf_get_int(cli.conf, "worker.max_batch")));
            json_object_set_new(params, "engine", json_string("null"));
            json_object_set_new(params, "cpu_threads", json_integer(1));
            json_object_set_new(o, "params", params);
            json_t *res = json_array();
            json_t *k = json_object(), *rw = json_object();
            json_object_set_new(k, "name", json_string("kiln"));
            json_object_set_new(k, "jobs_per_s", json_real(km));
            json_object_set_new(k, "p50_added_ms", json_real(p50));
            json_object_set_new(k, "p99_added_ms", json_real(p99));
            json_object_set_new(k, "jobs_done", json_integer(dups_check));
            json_object_set_new(rw, "name", json_string("raw_librdkafka_copy"));
            json_object_set_new(rw, "jobs_per_s", json_real(rm));
            json_array_append_new(res, k);
            json_array_append_new(res, rw);
            json_object_set_new(o, "results", res);
            json_object_set_new(o, "ratio", json_real(km / rm));
            json_object_set_new(o, "peak_rss_mb", json_integer(ru.ru_maxrss / 1024));
            char *s = json_dumps(o, JSON_COMPACT);
            printf("%s\n", s);
            free(s);
            json_decref(o);
        }
        rc = (dups_check == n * reps) ? KILN_EXIT_OK : KILN_EXIT_FAIL;
    }
    free(from);
    free(to);
    free(kiln_rates);
    free(raw_rates);
    rd_kafka_destroy(meta);
out:
    kiln_producer_destroy(kp);
    PQfinish(pg);
    kiln_bp_sh("'%s' down --set stack.dir=%s > /dev/null 2>&1", kiln_cli_self(), stackdir);
    kiln_bp_sh("rm -rf '%s'%s", dir, "");
    kiln_cli_free(&cli);
    return rc;
}
