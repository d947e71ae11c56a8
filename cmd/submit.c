/*
 * cmd/submit.c - `kiln submit` (through libkiln's producer) and `kiln requeue`.
 *
 * Speak jobs: `kiln submit --modality speak [--voice V] [--format F]
 * [--sample-rate HZ] --text "..." | --text-file F`; their work units are
 * the text's characters (code points).
 */
#include <errno.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cli.h"
#include "kiln/job.h"
#include "kiln/log.h"
#include "kiln/pg.h"
#include "kiln/producer.h"

static void kiln_submit_help(void) {
    printf("usage: kiln submit [OPTIONS] FILE|URI...\n\n"
           "Uploads each local FILE to the object store (inputs/<tenant>/<id>/...) and submits\n"
           "one job per FILE or URI (file:// or s3:// already in the store) to\n"
           "<prefix>.<modality>.jobs. Each job is recorded in Postgres before it is produced.\n"
           "Prints one job id per line.\n\n"
           "  -t, --tenant T        tenant (default \"default\")\n"
           "  -m, --modality M      transcribe (default), speak, image\n"
           "  -p, --priority N      -1000..1000 (default 0)\n"
           "  -P, --param K=V       job parameter, e.g. language=en (repeatable)\n"
           "      --id ID           job id (one input only; default: a random UUID)\n"
           "      --text TEXT       submit TEXT as the input (speak jobs; implies -m speak)\n"
           "      --text-file F     submit the UTF-8 text of file F (\"-\": standard input)\n"
           "      --voice V         speak: voice name (default speak.default_voice)\n"
           "      --format F        speak: wav (default), flac, ogg, opus, mp3\n"
           "      --sample-rate HZ  speak: resample the audio to HZ (8000..48000)\n"
           "      --no-backpressure do not wait for room in a full embedded partition\n"
           "  -w, --wait            show progress until every job is terminal, then the results\n"
           "                        (speak: the audio and timings URIs of each job)\n"
           "\nExit codes: 0 all submitted (and with --wait, all done), 1 a submission failed,\n"
           "2 usage, 3 some jobs ended dead, 4 --wait timed out (producer.wait_timeout_ms).\n\n");
    kiln_cli_common_help(stdout);
    kiln_conf_help(stdout, KILN_SCOPE_PRODUCER);
}

static void kiln_fmt_dur(double s, char *out, size_t sz) {
    if (s < 0 || s > 1e7) {
        snprintf(out, sz, "--:--");
        return;
    }
    int t = (int)(s + 0.5);
    if (t >= 3600)
        snprintf(out, sz, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(out, sz, "%d:%02d", t / 60, t % 60);
}

/* The whole of file \p path ("-": standard input) as a string; NULL with a
 * message on stderr when it cannot be read or holds a NUL byte. */
static char *kiln_submit_read_text(const char *path) {
    FILE *fp = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!fp) {
        fprintf(stderr, "kiln submit: could not open \"%s\": %s\n", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n = getdelim(&buf, &cap, '\0', fp); /* the whole file, unless it holds a NUL */
    int bad = ferror(fp), nul = n > 0 && buf[n - 1] == '\0';
    if (fp != stdin)
        fclose(fp);
    if (bad || nul) {
        fprintf(stderr, "kiln submit: could not read \"%s\": %s\n", path,
                bad ? "read error" : "it holds NUL bytes (not text)");
        free(buf);
        return NULL;
    }
    if (n <= 0) { /* empty file: an empty text (the worker says why it is dead) */
        free(buf);
        buf = strdup("");
    }
    return buf;
}

static double kiln_mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Polls Postgres until every job is terminal, drawing a progress bar on
 * stderr; then prints one line per job. @returns an exit code. */
static int kiln_submit_wait(const kiln_conf_t *conf, char **ids, int n) {
    char errstr[512];
    PGconn *pg = kiln_pg_connect(conf, "kiln-submit", errstr, sizeof(errstr));
    if (!pg) {
        fprintf(stderr, "kiln submit: %s\n", errstr);
        return KILN_EXIT_FAIL;
    }
    json_t *arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, json_string(ids[i]));
    char *ids_json = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    const char *p[1] = {ids_json};
    long long timeout_ms = kiln_conf_get_int(conf, "producer.wait_timeout_ms");
    double t0 = kiln_mono();
    int tty = isatty(2), rc = KILN_EXIT_OK, last_done = -1;
    double last_print = -100;
    for (;;) {
        PGresult *r = kiln_pg_execp(
            pg,
            "SELECT count(*) FILTER (WHERE j.status IN ('done', 'dead')),"
            " count(*) FILTER (WHERE j.status = 'dead'),"
            " coalesce(sum(j.work_units) FILTER (WHERE j.status IN ('done', 'dead')), 0),"
            " coalesce(sum(j.work_units), 0)"
            " FROM jobs j WHERE j.id IN (SELECT json_array_elements_text($1::json))",
            1, p, errstr, sizeof(errstr));
        if (!r) {
            fprintf(stderr, "\nkiln submit: %s\n", errstr);
            rc = KILN_EXIT_FAIL;
            break;
        }
        int done = atoi(PQgetvalue(r, 0, 0)), dead = atoi(PQgetvalue(r, 0, 1));
        double wd = atof(PQgetvalue(r, 0, 2)), wt = atof(PQgetvalue(r, 0, 3));
        PQclear(r);
        double el = kiln_mono() - t0;
        double frac = wt > 0 ? wd / wt : (n ? (double)done / n : 1);
        double eta = frac > 0.001 ? el * (1 - frac) / frac : -1;
        char eta_s[32], el_s[32], bar[41];
        kiln_fmt_dur(eta, eta_s, sizeof(eta_s));
        kiln_fmt_dur(el, el_s, sizeof(el_s));
        int fill = (int)(frac * 40);
        for (int i = 0; i < 40; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[40] = '\0';
        /* on a terminal: redraw in place; in a log: a line when something
         * finished, or every 10 s */
        if (tty || done != last_done || el - last_print >= 10) {
            fprintf(stderr, "%s[%s] %d/%d jobs  %.4f/%.4f h work  elapsed %s  ETA %s%s",
                    tty ? "\r" : "", bar, done, n, wd / 3600, wt / 3600, el_s,
                    done == n ? "0:00" : eta_s, tty ? "   " : "\n");
            last_done = done;
            last_print = el;
        }
        if (done == n) {
            rc = dead ? KILN_EXIT_JOBS : KILN_EXIT_OK;
            break;
        }
        if (timeout_ms && el * 1000 > timeout_ms) {
            fprintf(stderr, "\nkiln submit: gave up waiting after %lld ms\n", timeout_ms);
            rc = KILN_EXIT_TIMEOUT;
            break;
        }
        usleep(tty ? 250000 : 1000000);
    }
    if (tty)
        fprintf(stderr, "\n");
    PGresult *r = kiln_pg_execp(
        pg,
        "SELECT j.id, j.status,"
        " coalesce(to_char(coalesce(t.duration_s, s.audio_seconds), 'FM9999990.00'), '-'),"
        " CASE WHEN j.status = 'done' AND s.job_id IS NOT NULL THEN 'voice ' || s.voice || ', '"
        "   || s.characters || ' characters, ' || s.format || ' ' || s.sample_rate || ' Hz'"
        "  WHEN j.status = 'done' THEN CASE WHEN t.model_ran THEN left(t.text, 100)"
        "   ELSE '(no model ran: ' || t.engine || ' engine) rms ' ||"
        "        coalesce(t.info->>'rms_dbfs', '?') || ' dBFS' END"
        "  ELSE coalesce(j.error, '') || ': ' || coalesce(j.error_detail, '') END,"
        " coalesce(a.uri, s.uri, ''), coalesce(s.uri, ''), coalesce(s.timings_uri, '')"
        " FROM jobs j LEFT JOIN transcripts t ON t.job_id = j.id"
        " LEFT JOIN speech s ON s.job_id = j.id"
        " LEFT JOIN artifacts a ON a.job_id = j.id AND a.kind = 'transcript.json'"
        " WHERE j.id IN (SELECT json_array_elements_text($1::json)) ORDER BY j.enqueued_at, j.id",
        1, p, errstr, sizeof(errstr));
    if (r) {
        printf("%-36s  %-6s  %9s  %s\n", "job", "status", "audio s", "result");
        for (int i = 0; i < PQntuples(r); i++) {
            printf("%-36s  %-6s  %9s  %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                   PQgetvalue(r, i, 2), PQgetvalue(r, i, 3));
            if (PQgetvalue(r, i, 5)[0]) /* speak: where the results are */
                printf("%-36s  audio   %s\n%-36s  timings %s\n", "", PQgetvalue(r, i, 5), "",
                       PQgetvalue(r, i, 6));
        }
        if (PQntuples(r))
            printf("\nresults: Postgres tables jobs, transcripts, segments, speech, artifacts "
                   "(views v_transcripts, v_throughput, speech_results);\n"
                   "         objects under %s\n",
                   PQgetvalue(r, 0, 4)[0] ? PQgetvalue(r, 0, 4) : "results/<tenant>/<job id>/");
        PQclear(r);
    }
    free(ids_json);
    PQfinish(pg);
    return rc;
}

int kiln_cmd_submit(int argc, char **argv) {
    static struct option opts[] = {
        {"tenant", required_argument, 0, 't'},   {"modality", required_argument, 0, 'm'},
        {"priority", required_argument, 0, 'p'}, {"param", required_argument, 0, 'P'},
        {"id", required_argument, 0, 'I'},       {"text", required_argument, 0, 'T'},
        {"wait", no_argument, 0, 'w'},           {"no-backpressure", no_argument, 0, 'B'},
        {"text-file", required_argument, 0, 'F'}, {"voice", required_argument, 0, 'V'},
        {"format", required_argument, 0, 'f'},   {"sample-rate", required_argument, 0, 'r'},
        KILN_CLI_LONGOPTS};
    kiln_cli_t cli = {0};
    kiln_submit_params_t sp = kiln_submit_default_params();
    json_t *params = json_object();
    const char *text = NULL, *text_file = NULL;
    char *file_text = NULL;
    int c, wait = 0, modality_set = 0, speak_opt = 0;
    while ((c = getopt_long(argc, argv, "c:S:ht:m:p:P:w", opts, NULL)) != -1) {
        if (kiln_cli_common_opt(&cli, c, optarg))
            continue;
        switch (c) {
        case 'h':
            kiln_submit_help();
            json_decref(params);
            return KILN_EXIT_OK;
        case 't': sp.tenant = optarg; break;
        case 'm': sp.modality = optarg; modality_set = 1; break;
        case 'p': sp.priority = atoi(optarg); break;
        case 'I': sp.id = optarg; break;
        case 'T': text = optarg; speak_opt = 1; break;
        case 'F': text_file = optarg; speak_opt = 1; break;
        case 'V': json_object_set_new(params, "voice", json_string(optarg)); speak_opt = 1; break;
        case 'f': json_object_set_new(params, "format", json_string(optarg)); speak_opt = 1; break;
        case 'r':
            json_object_set_new(params, "sample_rate", json_integer(atoi(optarg)));
            speak_opt = 1;
            break;
        case 'w': wait = 1; break;
        case 'B': sp.backpressure = 0; break;
        case 'P': {
            const char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg) {
                fprintf(stderr, "kiln submit: --param takes KEY=VALUE, not \"%s\"\n", optarg);
                json_decref(params);
                return KILN_EXIT_USAGE;
            }
            char key[128];
            snprintf(key, sizeof(key), "%.*s", (int)(eq - optarg), optarg);
            json_object_set_new(params, key, json_string(eq + 1));
            break;
        }
        default:
            json_decref(params);
            return KILN_EXIT_USAGE;
        }
    }
    if (text && text_file) {
        fprintf(stderr, "kiln submit: give --text or --text-file, not both\n");
        json_decref(params);
        return KILN_EXIT_USAGE;
    }
    if (text_file) {
        file_text = kiln_submit_read_text(text_file);
        if (!file_text) {
            json_decref(params);
            return KILN_EXIT_USAGE;
        }
        text = file_text;
    }
    if (speak_opt && !modality_set)
        sp.modality = "speak";
    int n_in = argc - optind + (text ? 1 : 0);
    if (n_in < 1) {
        fprintf(stderr, "kiln submit: nothing to submit (give FILE, URI or --text; see --help)\n");
        json_decref(params);
        return KILN_EXIT_USAGE;
    }
    if (sp.id && n_in > 1) {
        fprintf(stderr, "kiln submit: --id works with one input only\n");
        json_decref(params);
        return KILN_EXIT_USAGE;
    }
    char *params_json = json_object_size(params) ? json_dumps(params, JSON_COMPACT) : NULL;
    json_decref(params);
    sp.params_json = params_json;
    if (kiln_cli_load(&cli, "submit")) {
        free(params_json);
        return KILN_EXIT_USAGE;
    }
    char errstr[1024];
    kiln_producer_t *kp = kiln_producer_new(cli.conf, errstr, sizeof(errstr));
    if (!kp) {
        fprintf(stderr, "kiln submit: %s\n", errstr);
        free(params_json);
        kiln_cli_free(&cli);
        return KILN_EXIT_FAIL;
    }
    char **ids = calloc(n_in, sizeof(char *));
    int n_ok = 0, failed = 0;
    for (int i = 0; i < n_in; i++) {
        char id[KILN_JOB_ID_MAX + 1];
        kiln_err_t err;
        const char *what = text && i == n_in - 1 ? (text_file ? text_file : "--text") : argv[optind + i];
        if (text && i == n_in - 1) {
            kiln_submit_params_t tsp = sp; /* work units of speak: characters */
            if (tsp.work_units < 0 && !strcmp(tsp.modality, "speak"))
                tsp.work_units = (double)kiln_utf8_chars(text);
            err = kiln_producer_submit_text(kp, text, &tsp, id, errstr, sizeof(errstr));
        }
        else if (strstr(what, "://"))
            err = kiln_producer_submit_uri(kp, what, &sp, id, errstr, sizeof(errstr));
        else
            err = kiln_producer_submit_file(kp, what, &sp, id, errstr, sizeof(errstr));
        if (err) {
            fprintf(stderr, "kiln submit: %s: %s\n", what, errstr);
            failed++;
            if (err == KILN_ERR__QUEUE_FULL) { /* the rest would wait and fail the same way */
                fprintf(stderr, "kiln submit: stopping: %d input(s) not submitted; retry when "
                                "workers have drained the queue\n", n_in - i - 1);
                break;
            }
            continue;
        }
        ids[n_ok++] = strdup(id);
        printf("%s\t%s\n", id, what);
        fflush(stdout);
    }
    kiln_err_t ferr = kiln_producer_flush(kp, 60000);
    if (ferr) {
        fprintf(stderr, "kiln submit: not every job message was acknowledged by the broker (%s); "
                        "the jobs are recorded as queued: run `kiln requeue`\n", kiln_err2str(ferr));
        failed++;
    }
    kiln_producer_destroy(kp);
    int rc = failed ? KILN_EXIT_FAIL : KILN_EXIT_OK;
    if (wait && n_ok) {
        int wrc = kiln_submit_wait(cli.conf, ids, n_ok);
        if (!rc)
            rc = wrc;
    }
    for (int i = 0; i < n_ok; i++)
        free(ids[i]);
    free(ids);
    free(params_json);
    free(file_text);
    kiln_cli_free(&cli);
    return rc;
}

static void kiln_requeue_help(void) {
    printf("usage: kiln requeue [--older-than MS] [OPTIONS]\n\n"
           "Re-produces every job that has no terminal row (status queued or running) and was\n"
           "enqueued more than MS milliseconds ago (default 0). Safe at any time: workers skip\n"
           "jobs that already finished. Use it after the embedded broker lost messages.\n\n");
    kiln_cli_common_help(stdout);
}

int kiln_cmd_requeue(int argc, char **argv) {
    static struct option opts[] = {{"older-than", required_argument, 0, 'o'}, KILN_CLI_LONGOPTS};
    kiln_cli_t cli = {0};
    long older = 0;
    int c;
    while ((c = getopt_long(argc, argv, "c:S:ho:", opts, NULL)) != -1) {
        if (kiln_cli_common_opt(&cli, c, optarg))
            continue;
        if (c == 'h') {
            kiln_requeue_help();
            return KILN_EXIT_OK;
        } else if (c == 'o')
            older = atol(optarg);
        else
            return KILN_EXIT_USAGE;
    }
    if (kiln_cli_load(&cli, "requeue"))
        return KILN_EXIT_USAGE;
    char errstr[1024];
    kiln_producer_t *kp = kiln_producer_new(cli.conf, errstr, sizeof(errstr));
    if (!kp) {
        fprintf(stderr, "kiln requeue: %s\n", errstr);
        kiln_cli_free(&cli);
        return KILN_EXIT_FAIL;
    }
    long n = kiln_producer_requeue(kp, older, errstr, sizeof(errstr));
    kiln_err_t ferr = kiln_producer_flush(kp, 60000);
    kiln_producer_destroy(kp);
    kiln_cli_free(&cli);
    if (n < 0 || ferr) {
        fprintf(stderr, "kiln requeue: %s\n", n < 0 ? errstr : kiln_err2str(ferr));
        return KILN_EXIT_FAIL;
    }
    printf("re-produced %ld job(s)\n", n);
    return KILN_EXIT_OK;
}
