/*
 * scheduler/sim_bench.c - `kiln bench scheduler`: every built-in workload
 * under every policy, over `reps` seeds, printed as a readable table and
 * (with --json) one JSON object on the last line.
 *
 * Reported per workload and policy: drain time (last completion), p50/p95
 * job latency, GPU busy fraction, model loads and partition moves, each the
 * median over the seeds; the ratios are medians of the per-seed ratios:
 *   ratio_vs_static = static drain / kiln drain   (> 1: kiln drains sooner)
 *   ratio_vs_keda   = keda drain / kiln drain
 *   ratio_vs_lower_bound = kiln drain / lower bound (>= 1; goal <= 1.10)
 * and the headline "ratio" = best baseline's drain / kiln's drain on the
 * skewed-bursty workload (goal >= 1.5).
 *
 * Everything printed is a function of the options alone (simulated time, no
 * wall clock), except the "machine" and "date" fields of the JSON line;
 * SOURCE_DATE_EPOCH pins the date.
 */
#include <jansson.h>
#include <stddef.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "scheduler/sim_int.h"

#define KILN_SIM_MAX_REPS 64
#define KILN_SIM_HEADLINE "skewed-bursty"

kiln_sim_bench_opts_t kiln_sim_bench_default_opts(void) {
    kiln_sim_bench_opts_t o;
    memset(&o, 0, sizeof(o));
    o.seed = 1;
    o.reps = 5;
    o.scale = 1.0;
    return o;
}

/* Per-workload numbers over the seeds. */
typedef struct kiln_sim_agg_s {
    kiln_sim_result_t r[KILN_SIM_POLICIES][KILN_SIM_MAX_REPS];
    kiln_sim_bound_t lb[KILN_SIM_MAX_REPS];
    double vs_static[KILN_SIM_MAX_REPS], vs_keda[KILN_SIM_MAX_REPS];
    double vs_best[KILN_SIM_MAX_REPS], vs_lb[KILN_SIM_MAX_REPS];
    int jobs;
} kiln_sim_agg_t;

static int kiln_dcmp_(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n-1] (mean of the middle two for even n). */
static double kiln_median_(const double *v, int n) {
    double tmp[KILN_SIM_MAX_REPS];
    memcpy(tmp, v, sizeof(double) * n);
    qsort(tmp, n, sizeof(double), kiln_dcmp_);
    return n % 2 ? tmp[n / 2] : 0.5 * (tmp[n / 2 - 1] + tmp[n / 2]);
}

/* Median over seeds of one field of policy pol's results. */
static double kiln_agg_med_(const kiln_sim_agg_t *ag, int pol, int reps, size_t off, int is_int) {
    double v[KILN_SIM_MAX_REPS];
    for (int i = 0; i < reps; i++) {
        const char *base = (const char *)&ag->r[pol][i];
        if (is_int)
            v[i] = *(const int *)(base + off);
        else
            v[i] = *(const double *)(base + off);
    }
    return kiln_median_(v, reps);
}

#define MED(ag, pol, reps, field, is_int)                                                    \
    kiln_agg_med_(ag, pol, reps, offsetof(kiln_sim_result_t, field), is_int)

static double kiln_round_(double x, double q) {
    return round(x / q) * q;
}

static kiln_err_t kiln_sim_bench_workload_(const char *name, const kiln_sim_bench_opts_t *o,
                                           double scale, int workers, kiln_sim_agg_t *ag) {
    for (int i = 0; i < o->reps; i++) {
        kiln_sim_workload_t *wl =
            kiln_sim_workload_new_fleet(name, o->seed + (uint64_t)i, scale, workers);
        if (!wl)
            return KILN_ERR__NOMEM;
        ag->jobs = kiln_sim_workload_jobs(wl);
        kiln_sim_lower_bound(wl, &ag->lb[i]);
        for (int p = 0; p < KILN_SIM_POLICIES; p++) {
            kiln_err_t err = kiln_sim_run(wl, (kiln_sim_policy_t)p, NULL, &ag->r[p][i]);
            if (err) {
                kiln_sim_workload_destroy(wl);
                return err;
            }
        }
        kiln_sim_workload_destroy(wl);
        double k = ag->r[KILN_SIM_POLICY_KILN][i].drain_s;
        double st = ag->r[KILN_SIM_POLICY_STATIC][i].drain_s;
        double ke = ag->r[KILN_SIM_POLICY_KEDA][i].drain_s;
        ag->vs_static[i] = st / k;
        ag->vs_keda[i] = ke / k;
        ag->vs_best[i] = (st < ke ? st : ke) / k;
        ag->vs_lb[i] = k / ag->lb[i].drain_s;
    }
    return KILN_OK;
}

static void kiln_sim_print_workload_(FILE *fp, const char *name, const char *desc,
                                     const kiln_sim_agg_t *ag, int reps) {
    fprintf(fp, "\n%s: %s (%d jobs)\n", name, desc, ag->jobs);
    fprintf(fp, "  %-12s %9s %9s %9s %6s %6s %6s %6s\n", "policy", "drain s", "p50 s", "p95 s",
            "busy", "loads", "moves", "redone");
    for (int p = 0; p < KILN_SIM_POLICIES; p++)
        fprintf(fp, "  %-12s %9.1f %9.1f %9.1f %5.1f%% %6.0f %6.0f %6.0f\n",
                kiln_sim_policy_name((kiln_sim_policy_t)p), MED(ag, p, reps, drain_s, 0),
                MED(ag, p, reps, p50_s, 0), MED(ag, p, reps, p95_s, 0),
                100.0 * MED(ag, p, reps, busy, 0), MED(ag, p, reps, swaps, 1),
                MED(ag, p, reps, moves, 1), MED(ag, p, reps, redone, 1));
    double lb[KILN_SIM_MAX_REPS];
    for (int i = 0; i < reps; i++)
        lb[i] = ag->lb[i].drain_s;
    fprintf(fp, "  %-12s %9.1f  (binding term: %s)\n", "lower bound", kiln_median_(lb, reps),
            ag->lb[0].binding);
    fprintf(fp, "  kiln drains %.2fx faster than static, %.2fx faster than keda, "
                "at %.3fx the lower bound\n",
            kiln_median_(ag->vs_static, reps), kiln_median_(ag->vs_keda, reps),
            kiln_median_(ag->vs_lb, reps));
}

static json_t *kiln_sim_json_workload_(const char *name, const char *desc,
                                       const kiln_sim_agg_t *ag, int reps) {
    json_t *res = json_array();
    for (int p = 0; p < KILN_SIM_POLICIES; p++)
        json_array_append_new(
            res, json_pack("{s:s, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "policy",
                           kiln_sim_policy_name((kiln_sim_policy_t)p), "drain_s",
                           kiln_round_(MED(ag, p, reps, drain_s, 0), 0.01), "p50_s",
                           kiln_round_(MED(ag, p, reps, p50_s, 0), 0.01), "p95_s",
                           kiln_round_(MED(ag, p, reps, p95_s, 0), 0.01), "busy",
                           kiln_round_(MED(ag, p, reps, busy, 0), 0.0001), "model_loads",
                           MED(ag, p, reps, swaps, 1), "moves", MED(ag, p, reps, moves, 1),
                           "redone", MED(ag, p, reps, redone, 1)));
    double lb[KILN_SIM_MAX_REPS], cap[KILN_SIM_MAX_REPS], job[KILN_SIM_MAX_REPS],
        part[KILN_SIM_MAX_REPS];
    for (int i = 0; i < reps; i++) {
        lb[i] = ag->lb[i].drain_s;
        cap[i] = ag->lb[i].capacity_s;
        job[i] = ag->lb[i].job_s;
        part[i] = ag->lb[i].partition_s;
    }
    json_array_append_new(
        res, json_pack("{s:s, s:f, s:s, s:f, s:f, s:f}", "policy", "lower_bound", "drain_s",
                       kiln_round_(kiln_median_(lb, reps), 0.01), "binding", ag->lb[0].binding,
                       "capacity_s", kiln_round_(kiln_median_(cap, reps), 0.01), "job_s",
                       kiln_round_(kiln_median_(job, reps), 0.01), "partition_s",
                       kiln_round_(kiln_median_(part, reps), 0.01)));
    return json_pack("{s:s, s:s, s:i, s:o, s:f, s:f, s:f}", "name", name, "description", desc,
                     "jobs", ag->jobs, "results", res, "ratio_vs_keda",
                     kiln_round_(kiln_median_(ag->vs_keda, reps), 0.001), "ratio_vs_static",
                     kiln_round_(kiln_median_(ag->vs_static, reps), 0.001),
                     "ratio_vs_lower_bound", kiln_round_(kiln_median_(ag->vs_lb, reps), 0.001));
}

static json_t *kiln_sim_json_params_(const kiln_sim_bench_opts_t *o) {
    kiln_sim_workload_t *wl = kiln_sim_workload_new(kiln_sim_workload_name(0), o->seed, 0.01);
    kiln_sched_params_t sp = kiln_sched_default_params();
    json_t *j = json_pack("{s:I, s:i, s:f, s:s, s:f, s:f, s:f, s:f, s:f, s:f, s:s}", "seed",
                          (json_int_t)o->seed, "reps", o->reps, "scale", o->scale, "aggregate",
                          "median over seeds seed..seed+reps-1", "hysteresis", sp.hysteresis,
                          "move_cost_s", sp.move_cost_s, "min_dwell_s", sp.min_dwell_s,
                          "deadline_weight", sp.deadline_weight, "lookahead_s", sp.lookahead_s,
                          "model_slice_s", sp.model_slice_s, "swap_cost_s",
                          "model_load_s of the workload");
    if (wl) {
        json_object_set_new(
            j, "sim",
            json_pack("{s:i, s:i, s:[i,i,i], s:[f,f,f], s:[f,f,f], s:f, s:f, s:f, s:f, s:i, "
                      "s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:i}",
                      "workers", wl->nw, "slots", wl->slots[0], "partitions", wl->nparts_mod[0],
                      wl->nparts_mod[1], wl->nparts_mod[2], "base_throughput", wl->base_tput[0],
                      wl->base_tput[1], wl->base_tput[2], "model_load_s", wl->swap_s[0],
                      wl->swap_s[1], wl->swap_s[2], "tick_s", wl->tick_s, "heartbeat_timeout_s",
                      wl->hb_timeout_s, "handoff_s", wl->handoff_s, "starve_s", wl->starve_s,
                      "window", wl->window, "keda_poll_s", wl->keda_poll_s, "keda_hpa_sync_s",
                      wl->keda_hpa_sync_s, "keda_cooldown_s", wl->keda_cooldown_s,
                      "keda_tolerance", wl->keda_tolerance, "keda_pod_start_s",
                      wl->keda_pod_start_s, "keda_stabilize_s", wl->keda_stabilize_s,
                      "keda_target_s", wl->keda_target_s, "keda_min_replicas",
                      wl->keda_min_replicas));
        kiln_sim_workload_destroy(wl);
    }
    return j;
}

/*
 * How the headline comparison grows with the size of the work: the
 * skewed-bursty workload stretched (backlog x scale at the same load) and on
 * smaller and larger fleets (same load per GPU).
 */
static kiln_err_t kiln_sim_bench_scaling_(const kiln_sim_bench_opts_t *o, FILE *fp,
                                          json_t *out) {
    static const struct {
        double scale;
        int workers;
    } sizes[] = {{0.5, 8}, {1, 8}, {2, 8}, {1, 6}, {1, 12}};
    kiln_sim_agg_t *ag = calloc(1, sizeof(*ag));
    if (!ag)
        return KILN_ERR__NOMEM;
    fprintf(fp, "\nscaling (%s): %-5s %7s %7s %9s %9s %9s %9s %8s %8s %8s\n", KILN_SIM_HEADLINE,
            "scale", "workers", "jobs", "kiln s", "static s", "keda s", "bound s", "vs stat",
            "vs keda", "vs bound");
    for (unsigned k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        double scale = sizes[k].scale * o->scale;
        kiln_err_t err =
            kiln_sim_bench_workload_(KILN_SIM_HEADLINE, o, scale, sizes[k].workers, ag);
        if (err) {
            free(ag);
            return err;
        }
        double lb[KILN_SIM_MAX_REPS];
        for (int r = 0; r < o->reps; r++)
            lb[r] = ag->lb[r].drain_s;
        double kd = MED(ag, KILN_SIM_POLICY_KILN, o->reps, drain_s, 0);
        double sd = MED(ag, KILN_SIM_POLICY_STATIC, o->reps, drain_s, 0);
        double ked = MED(ag, KILN_SIM_POLICY_KEDA, o->reps, drain_s, 0);
        double vs = kiln_median_(ag->vs_static, o->reps), vk = kiln_median_(ag->vs_keda, o->reps);
        double vl = kiln_median_(ag->vs_lb, o->reps), lbm = kiln_median_(lb, o->reps);
        fprintf(fp, "%27.2f %7d %7d %9.1f %9.1f %9.1f %9.1f %7.2fx %7.2fx %7.3fx\n", scale,
                sizes[k].workers, ag->jobs, kd, sd, ked, lbm, vs, vk, vl);
        json_array_append_new(
            out, json_pack("{s:f, s:i, s:i, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "scale", scale,
                           "workers", sizes[k].workers, "jobs", ag->jobs, "kiln_s",
                           kiln_round_(kd, 0.01), "static_s", kiln_round_(sd, 0.01), "keda_s",
                           kiln_round_(ked, 0.01), "lower_bound_s", kiln_round_(lbm, 0.01),
                           "ratio_vs_static", kiln_round_(vs, 0.001), "ratio_vs_keda",
                           kiln_round_(vk, 0.001), "ratio_vs_lower_bound", kiln_round_(vl, 0.001)));
    }
    free(ag);
    return KILN_OK;
}

static void kiln_sim_machine_(char *out, size_t n) {
    struct utsname u;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (uname(&u) == 0)
        snprintf(out, n, "%s %s, %ld cpus (simulated fleet)", u.sysname, u.machine, cpus);
    else
        snprintf(out, n, "unknown, %ld cpus (simulated fleet)", cpus);
}

static void kiln_sim_date_(char *out, size_t n) {
    const char *sde = getenv("SOURCE_DATE_EPOCH");
    time_t t = sde && *sde ? (time_t)strtoll(sde, NULL, 10) : time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%d", &tm);
}

kiln_err_t kiln_sim_bench(const kiln_sim_bench_opts_t *opts, FILE *fp) {
    kiln_sim_bench_opts_t o = opts ? *opts : kiln_sim_bench_default_opts();
    if (o.reps < 1 || o.reps > KILN_SIM_MAX_REPS || !(o.scale > 0) || !fp)
        return KILN_ERR__INVALID_ARG;
    int nwl = kiln_sim_workload_count(), known = !o.only;
    for (int i = 0; i < nwl && !known; i++)
        known = !strcmp(o.only, kiln_sim_workload_name(i));
    if (!known)
        return KILN_ERR__NOT_FOUND;
    kiln_sim_agg_t *ag = calloc(nwl, sizeof(*ag));
    if (!ag)
        return KILN_ERR__NOMEM;
    kiln_err_t err = KILN_OK;
    json_t *wls = json_array();
    double headline = NAN;
    fprintf(fp, "kiln bench scheduler: seeds %llu..%llu (medians), scale %.2f, simulated time\n",
            (unsigned long long)o.seed, (unsigned long long)(o.seed + o.reps - 1), o.scale);
    fprintf(fp, "policies: kiln (kiln_sched_plan every tick), static round-robin, keda "
                "(replicas = lag/threshold per modality); lower bound = max(capacity, "
                "longest job, busiest partition)\n");
    for (int i = 0; i < nwl; i++) {
        const char *name = kiln_sim_workload_name(i);
        if (o.only && strcmp(o.only, name))
            continue;
        kiln_sim_workload_t *wl = kiln_sim_workload_new(name, o.seed, o.scale);
        if (!wl) {
            err = KILN_ERR__NOMEM;
            break;
        }
        char desc[256];
        snprintf(desc, sizeof(desc), "%s", kiln_sim_workload_describe(wl));
        kiln_sim_workload_destroy(wl);
        if ((err = kiln_sim_bench_workload_(name, &o, o.scale, 0, &ag[i])))
            break;
        kiln_sim_print_workload_(fp, name, desc, &ag[i], o.reps);
        json_array_append_new(wls, kiln_sim_json_workload_(name, desc, &ag[i], o.reps));
        if (!strcmp(name, KILN_SIM_HEADLINE))
            headline = kiln_median_(ag[i].vs_best, o.reps);
    }
    if (!err) {
        fprintf(fp, "\n%-15s %9s %9s %9s %9s %8s %8s %8s\n", "summary", "kiln s", "static s",
                "keda s", "bound s", "vs stat", "vs keda", "vs bound");
        for (int i = 0; i < nwl; i++) {
            const char *name = kiln_sim_workload_name(i);
            if (o.only && strcmp(o.only, name))
                continue;
            double lb[KILN_SIM_MAX_REPS];
            for (int r = 0; r < o.reps; r++)
                lb[r] = ag[i].lb[r].drain_s;
            fprintf(fp, "%-15s %9.1f %9.1f %9.1f %9.1f %7.2fx %7.2fx %7.3fx\n", name,
                    MED(&ag[i], KILN_SIM_POLICY_KILN, o.reps, drain_s, 0),
                    MED(&ag[i], KILN_SIM_POLICY_STATIC, o.reps, drain_s, 0),
                    MED(&ag[i], KILN_SIM_POLICY_KEDA, o.reps, drain_s, 0),
                    kiln_median_(lb, o.reps), kiln_median_(ag[i].vs_static, o.reps),
                    kiln_median_(ag[i].vs_keda, o.reps), kiln_median_(ag[i].vs_lb, o.reps));
        }
        if (!isnan(headline))
            fprintf(fp, "ratio (skewed-bursty, best baseline / kiln): %.2fx (goal >= 1.5x)\n",
                    headline);
    }
    json_t *scaling = json_array();
    if (!err && !isnan(headline))
        err = kiln_sim_bench_scaling_(&o, fp, scaling);
    if (!err && o.json) {
        char machine[160], date[32];
        if (o.machine)
            snprintf(machine, sizeof(machine), "%s", o.machine);
        else
            kiln_sim_machine_(machine, sizeof(machine));
        if (o.date)
            snprintf(date, sizeof(date), "%s", o.date);
        else
            kiln_sim_date_(date, sizeof(date));
        json_t *root = json_pack("{s:s, s:s, s:s, s:o, s:O, s:O}", "bench", "scheduler",
                                 "machine", machine, "date", date, "params",
                                 kiln_sim_json_params_(&o), "workloads", wls, "scaling", scaling);
        json_object_set_new(root, "ratio",
                            isnan(headline) ? json_null()
                                            : json_real(kiln_round_(headline, 0.001)));
        char *txt = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
        if (txt)
            fprintf(fp, "%s\n", txt);
        else
            err = KILN_ERR__NOMEM;
        free(txt);
        json_decref(root);
    }
    json_decref(wls);
    json_decref(scaling);
    free(ag);
    return err;
}
