/*
 * cmd/bench.h - helpers shared by the `kiln bench` commands (cmd/bench.c).
 *
 * A benchmark that compares kiln with a reference implementation runs the
 * reference as a child process speaking lines on a pipe
 * (kiln_bench_child_start/_stop), finds its script under bench/
 * (kiln_bench_script) and writes its JSON result under bench/results/
 * (kiln_bench_save).
 */
#ifndef KILN_CMD_BENCH_H
#define KILN_CMD_BENCH_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

/** A reference process: write commands to in, read its lines from out. */
typedef struct kiln_bench_child_s {
    pid_t pid;
    FILE *in, *out;
    char log[96];   /* its stderr, removed by kiln_bench_child_stop() */
} kiln_bench_child_t;

/**
 * Starts argv[0] (a path) with \p argv, its stdin and stdout on pipes and
 * its stderr in /tmp/kiln-bench-<tag>.<pid>.log.
 * @returns 0, -1 when the pipes or the process could not be made.
 */
int kiln_bench_child_start(kiln_bench_child_t *c, char *const argv[], const char *tag);

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

#endif
