/*
 * cmd/bench.h - helpers shared by the `kiln bench` commands (cmd/bench.c).
 *
 * A benchmark that compares kiln with a reference implementation runs the
 * reference as a child process speaking lines on a pipe
 * (kiln_bench_child_start/_stop), finds its script under bench/
 * (kiln_bench_script) and writes its JSON result under bench/results/
 * (kiln_bench_save), with the timing helpers kiln_bench_clock and
 * kiln_bench_median.
 */
#ifndef KILN_CMD_BENCH_H
#define KILN_CMD_BENCH_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

/** A reference process: write commands to in, read its lines from out. */
typedef struct kiln_bench_child_s {
    pid_t pid;
    FILE *in, *out;
    char log[96];   /* its stderr, removed by kiln_bench_child_stop() */
} kiln_bench_child_t;

/**
 * Starts argv[0] (a path) with \p argv, its stdin and stdout on pipes and
 * its stderr in /tmp/kiln-bench-<tag>.<pid>.log. Ignores SIGPIPE in this
 * process from then on, so that writing to a child that died fails with
 * EPIPE instead of killing the bench.
 * @returns 0, -1 when the pipes or the process could not be made.
 */
int kiln_bench_child_start(kiln_bench_child_t *c, char *const argv[], const char *tag);

/**
 * kiln_bench_child_start() with \p env ("NAME=VALUE" strings, NULL-terminated;
 * NULL for none) added to the child's environment.
 */
int kiln_bench_child_start_env(kiln_bench_child_t *c, char *const argv[], const char *tag,
                               char *const env[]);

/** Sends "quit", closes the pipes, waits for the process, removes its log; zeroes \p c. */
void kiln_bench_child_stop(kiln_bench_child_t *c);

/**
 * Finds bench/<name> under the working directory or the kiln binary's
 * repository (<exe dir>/../bench). @returns \p buf holding the path, or NULL.
 */
const char *kiln_bench_script(const char *name, char *buf, size_t size);

/**
 * Writes \p json and a newline to \p out, or when \p out is NULL to
 * bench/results/<bench>-<date>-<hostname>.json; says where on stderr (or
 * why not).
 */
void kiln_bench_save(const char *bench, const char *json, const char *out);

/**
 * kiln_bench_save() with the file name's \p date and \p host given (so that
 * they match the JSON's); NULL for today's local date / gethostname().
 */
void kiln_bench_save_as(const char *bench, const char *json, const char *out,
                        const char *date, const char *host);

/** @returns clock \p id (CLOCK_MONOTONIC, CLOCK_PROCESS_CPUTIME_ID, ...) in seconds. */
double kiln_bench_clock(clockid_t id);

#define KILN_BENCH_MEDIAN_MAX 64

/** @returns the median of the first \p n (at most KILN_BENCH_MEDIAN_MAX) of \p v; 0 when n <= 0. */
double kiln_bench_median(const double *v, int n);

#endif
