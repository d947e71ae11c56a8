/*
 * cmd/bench_scheduler.c - `kiln bench scheduler [--json] [--seed N]`: the
 * deterministic discrete-event simulation that compares the kiln scheduling
 * policy with static round-robin, a KEDA-style rule and an offline lower
 * bound (scheduler/sim*.c; the model is described in docs/scheduler.md).
 *
 * Same options, same output (the JSON line's machine and date aside; set
 * SOURCE_DATE_EPOCH to pin the date). Exit: 0, 1 on failure, 2 on usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/err.h"
#include "kiln/sched.h"

int kiln_cmd_bench_scheduler(int argc, char **argv);

static void kiln_bench_scheduler_usage_(FILE *fp) {
    kiln_sim_bench_opts_t d = kiln_sim_bench_default_opts();
    fprintf(fp,
            "usage: kiln bench scheduler [--json] [--seed N] [--reps N] [--scale X] "
            "[--workload NAME]\n\n"
            "Simulates job arrivals, GPU workers and partition assignment (simulated time,\n"
            "deterministic) and compares kiln's scheduler with static round-robin, a\n"
            "KEDA-style rule (replicas = lag / threshold per modality) and a lower bound.\n\n"
            "  --json           also print one JSON object as the last line\n"
            "  --seed N         first seed (default %llu); same seed, same output\n"
            "  --reps N         seeds N..N+reps-1, medians reported (default %d)\n"
            "  --scale X        stretch every workload: jobs and time x X (default %.1f)\n"
            "  --workload NAME  run one workload:",
            (unsigned long long)d.seed, d.reps, d.scale);
    for (int i = 0; i < kiln_sim_workload_count(); i++)
        fprintf(fp, " %s", kiln_sim_workload_name(i));
    fprintf(fp, "\n  -h, --help       this text\n");
}

/* Parses a number in [lo, hi]; @returns 0 or -1 with a message. */
static int kiln_bench_scheduler_num_(const char *opt, const char *arg, double lo, double hi,
                                     double *out) {
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (errno || end == arg || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "kiln bench scheduler: invalid value \"%s\" for %s (expected %g..%g)\n",
                arg, opt, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int kiln_cmd_bench_scheduler(int argc, char **argv) {
    static const struct option longopts[] = {
        {"json", no_argument, 0, 'j'},         {"seed", required_argument, 0, 's'},
        {"reps", required_argument, 0, 'r'},   {"scale", required_argument, 0, 'x'},
        {"workload", required_argument, 0, 'w'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    kiln_sim_bench_opts_t o = kiln_sim_bench_default_opts();
    double v;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'j':
            o.json = 1;
            break;
        case 's':
            if (kiln_bench_scheduler_num_("--seed", optarg, 0, 9007199254740992.0, &v))
                return 2;
            o.seed = (uint64_t)v;
            break;
        case 'r':
            if (kiln_bench_scheduler_num_("--reps", optarg, 1, 64, &v))
                return 2;
            o.reps = (int)v;
            break;
        case 'x':
            if (kiln_bench_scheduler_num_("--scale", optarg, 0.001, 100, &v))
                return 2;
            o.scale = v;
            break;
        case 'w':
            o.only = optarg;
            break;
        case 'h':
            kiln_bench_scheduler_usage_(stdout);
            return 0;
        default:
            kiln_bench_scheduler_usage_(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kiln bench scheduler: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    kiln_err_t err = kiln_sim_bench(&o, stdout);
    if (err == KILN_ERR__NOT_FOUND) {
        fprintf(stderr, "kiln bench scheduler: unknown workload \"%s\"\n", o.only ? o.only : "");
        return 2;
    }
    if (err) {
        fprintf(stderr, "kiln bench scheduler: could not run the simulation: %s\n",
                kiln_err2str(err));
        return 1;
    }
    return 0;
}
