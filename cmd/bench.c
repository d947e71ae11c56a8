/*
 * cmd/bench.c - `kiln bench NAME`: dispatch to the benchmarks, and the
 * helpers they share (cmd/bench.h).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cmd/bench.h"
#include "cmd/cli.h"

static int kiln_bench_exists_(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

int kiln_bench_child_start(kiln_bench_child_t *c, char *const argv[], const char *tag) {
    return kiln_bench_child_start_env(c, argv, tag, NULL);
}

int kiln_bench_child_start_env(kiln_bench_child_t *c, char *const argv[], const char *tag,
                               char *const env[]) {
    int to_child[2], from_child[2];
    memset(c, 0, sizeof(*c));
    if (pipe(to_child))
        return -1;
    if (pipe(from_child)) {
        close(to_child[0]);
        close(to_child[1]);
        return -1;
    }
    snprintf(c->log, sizeof(c->log), "/tmp/kiln-bench-%s.%d.log", tag, (int)getpid());
    /* a child that died must not kill the bench on the next write (EPIPE instead) */
    signal(SIGPIPE, SIG_IGN);
    fflush(NULL);
    c->pid = fork();
    if (c->pid == 0) {
        dup2(to_child[0], 0);
        dup2(from_child[1], 1);
        FILE *lf = fopen(c->log, "w");
        if (lf)
            dup2(fileno(lf), 2);
        signal(SIGPIPE, SIG_DFL);
        for (int i = 0; env && env[i]; i++)
            putenv(env[i]);
        close(to_child[1]);
        close(from_child[0]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(to_child[0]);
    close(from_child[1]);
    if (c->pid < 0) {
        close(to_child[1]);
        close(from_child[0]);
        c->pid = 0;
        return -1;
    }
    c->in = fdopen(to_child[1], "w");
    c->out = fdopen(from_child[0], "r");
    return c->in && c->out ? 0 : -1;
}

void kiln_bench_child_stop(kiln_bench_child_t *c) {
    if (c->in) {
        fprintf(c->in, "quit\n");
        fclose(c->in);
    }
    if (c->out)
        fclose(c->out);
    if (c->pid > 0)
        waitpid(c->pid, NULL, 0);
    if (c->log[0])
        unlink(c->log);
    memset(c, 0, sizeof(*c));
}

const char *kiln_bench_script(const char *name, char *buf, size_t size) {
    snprintf(buf, size, "bench/%s", name);
    if (kiln_bench_exists_(buf))
        return buf;
    char exe[1024];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    char *s = n > 0 ? (exe[n] = '\0', strrchr(exe, '/')) : NULL;
    if (s) {
        *s = '\0';
        snprintf(buf, size, "%s/../bench/%s", exe, name);
        if (kiln_bench_exists_(buf))
            return buf;
    }
    return NULL;
}

void kiln_bench_save(const char *bench, const char *json, const char *out) {
    kiln_bench_save_as(bench, json, out, NULL, NULL);
}

void kiln_bench_save_as(const char *bench, const char *json, const char *out,
                        const char *date, const char *host) {
    char path[1024], hostbuf[128] = "unknown", datebuf[32];
    if (!host) {
        gethostname(hostbuf, sizeof(hostbuf) - 1);
        host = hostbuf;
    }
    if (!date) {
        time_t now = time(NULL);
        strftime(datebuf, sizeof(datebuf), "%Y-%m-%d", localtime(&now));
        date = datebuf;
    }
    if (out)
        snprintf(path, sizeof(path), "%s", out);
    else
        snprintf(path, sizeof(path), "bench/results/%s-%s-%s.json", bench, date, host);
    FILE *fp = fopen(path, "w");
    if (fp && fprintf(fp, "%s\n", json) >= 0 && fclose(fp) == 0) {
        fprintf(stderr, "kiln bench %s: wrote %s\n", bench, path);
        return;
    }
    fprintf(stderr, "kiln bench %s: could not write \"%s\": %s\n", bench, path, strerror(errno));
    if (fp)
        fclose(fp);
}

double kiln_bench_clock(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int kiln_bench_cmp_(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double kiln_bench_median(const double *v, int n) {
    double tmp[KILN_BENCH_MEDIAN_MAX];
    if (n <= 0)
        return 0.0;
    if (n > KILN_BENCH_MEDIAN_MAX)
        n = KILN_BENCH_MEDIAN_MAX;
    memcpy(tmp, v, sizeof(double) * (size_t)n);
    qsort(tmp, (size_t)n, sizeof(double), kiln_bench_cmp_);
    return n % 2 ? tmp[n / 2] : 0.5 * (tmp[n / 2 - 1] + tmp[n / 2]);
}

int kiln_cmd_bench_pipeline(int argc, char **argv);
int kiln_cmd_bench_scheduler(int argc, char **argv);
int kiln_cmd_bench_asr(int argc, char **argv);
int kiln_cmd_bench_wer(int argc, char **argv);
int kiln_cmd_bench_tts(int argc, char **argv);

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} kiln_bench_t;

static const kiln_bench_t kiln_benches[] = {
    {"pipeline", kiln_cmd_bench_pipeline,
     "null engine over N jobs on the embedded stack vs a raw librdkafka + COPY loop"},
    {"scheduler", kiln_cmd_bench_scheduler,
     "simulated fleet: kiln's scheduler vs static round-robin, KEDA-style rule, lower bound"},
    {"asr", kiln_cmd_bench_asr,
     "Whisper on CPU: kiln vs faster-whisper (same model, audio, threads), WER, batch scaling"},
    {"wer", kiln_cmd_bench_wer, "WER of kiln (and faster-whisper) on DIR/transcripts.tsv"},
    {"tts", kiln_cmd_bench_tts,
     "Piper voice on CPU: kiln vs onnxruntime (same voice, text, threads), single and batched"},
};
#define KILN_N_BENCHES (sizeof(kiln_benches) / sizeof(kiln_benches[0]))

int kiln_cmd_bench(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        printf("usage: kiln bench NAME [OPTIONS]   (kiln bench NAME --help for options)\n\n");
        for (unsigned i = 0; i < KILN_N_BENCHES; i++)
            printf("  %-10s %s\n", kiln_benches[i].name, kiln_benches[i].summary);
        printf("\nEvery benchmark prints a table; --json prints one JSON object as the last line.\n");
        return argc < 2 ? KILN_EXIT_USAGE : KILN_EXIT_OK;
    }
    for (unsigned i = 0; i < KILN_N_BENCHES; i++)
        if (!strcmp(argv[1], kiln_benches[i].name))
            return kiln_benches[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "kiln bench: unknown benchmark \"%s\"\n", argv[1]);
    return KILN_EXIT_USAGE;
}
