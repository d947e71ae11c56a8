/*
 * kiln/sched.h - the queue-depth scheduler's policy core and its simulator.
 *
 * Two parts, both pure computation (no I/O, no clocks, no global state):
 *
 *  1. The policy. kiln_sched_plan() takes a snapshot of the partitions
 *     (backlog in work units, oldest age, priority, deadline, current owner)
 *     and of the workers (slots, liveness, measured throughput per modality,
 *     resident models) and returns a new assignment partition -> worker that
 *     minimises the expected time to drain the backlog, counting model swaps,
 *     with hysteresis against the current assignment so that it does not
 *     flap. kiln_sched_desired_workers() gives the autoscaling signal.
 *     The daemon (scheduler/scheduler.c) builds the snapshot from Postgres and
 *     Kafka, calls kiln_sched_plan() every scheduler.interval_ms and writes the
 *     result as the next assignment epoch. The algorithm is in
 *     docs/scheduler.md.
 *
 *  2. The simulator behind `kiln bench scheduler`: a deterministic
 *     discrete-event simulation of jobs arriving into partitions and workers
 *     consuming them, used to compare the policy with static round-robin,
 *     a KEDA-style rule and an offline lower bound. Same seed, same output.
 *
 * Units: work units are whatever the modality counts (audio seconds,
 * characters, image steps); throughputs are work units per second for the
 * whole worker (all slots busy); times are seconds.
 *
 * Threading: every function here is reentrant; nothing is shared.
 *
 * Usage (policy):
 *   kiln_sched_params_t sp = kiln_sched_default_params();
 *   int assign[n_parts];
 *   kiln_sched_stats_t st;
 *   if (kiln_sched_plan(&sp, parts, n_parts, workers, n_workers, assign, &st) == KILN_OK)
 *       ... assign[i] is the index into workers[] of partition i's owner, or -1
 */
#ifndef KILN_SCHED_H
#define KILN_SCHED_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "kiln/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The modalities, one Kafka job topic each. */
typedef enum kiln_sched_modality_e {
    KILN_SCHED_MOD_TRANSCRIBE = 0,
    KILN_SCHED_MOD_SPEAK = 1,
    KILN_SCHED_MOD_IMAGE = 2,
} kiln_sched_modality_t;
#define KILN_SCHED_MODALITIES 3

/** @returns "transcribe", "speak" or "image"; "?" when out of range. */
const char *kiln_sched_modality_name(int modality);
/** @returns the modality named \p name, or -1 when unknown. */
int kiln_sched_modality_parse(const char *name);

/** A deadline_s value meaning "no deadline". */
#define KILN_SCHED_NO_DEADLINE HUGE_VAL

/**
 * One partition as the scheduler sees it. Only what a real scheduler can
 * know: header-declared work units of queued jobs, measured arrival rate,
 * ages, and the current assignment (owner, owned_for_s).
 */
typedef struct kiln_sched_partition_s {
    int modality;          /* kiln_sched_modality_t */
    int32_t partition;     /* partition id in the modality's topic (informative) */
    double backlog_units;  /* work units queued or in flight (not yet committed) */
    int64_t queued_jobs;   /* jobs behind the committed offset */
    double max_job_units;  /* largest queued job; 0: use backlog/queued_jobs */
    double oldest_age_s;   /* age of the oldest uncommitted job */
    double rate_units_s;   /* measured arrival rate (EWMA); 0 if unknown */
    int max_priority;      /* highest priority queued (negative counts as 0) */
    double deadline_s;     /* earliest deadline, seconds from now (negative: already
                              late); KILN_SCHED_NO_DEADLINE when none */
    int owner;             /* current owner: index into the worker array, -1 none */
    double owned_for_s;    /* seconds since owner got this partition (dwell) */
} kiln_sched_partition_t;

/** One worker as the scheduler sees it. */
typedef struct kiln_sched_worker_s {
    const char *id;        /* optional, informative */
    int slots;             /* concurrent batches (>= 1; 0 is read as 1) */
    int alive;             /* 0 once heartbeats stopped for worker_timeout_ms */
    double throughput[KILN_SCHED_MODALITIES]; /* measured EWMA, work units/s for the
                                                 whole worker; 0 = not measured yet */
    int resident[KILN_SCHED_MODALITIES];      /* 1 if that modality's model is loaded */
    int gpu_class;         /* informative (e.g. an index into a GPU table) */
} kiln_sched_worker_t;

/** Policy parameters; get them from kiln_sched_default_params() and adjust. */
typedef struct kiln_sched_params_s {
    double swap_cost_s[KILN_SCHED_MODALITIES]; /* time to load a modality's model */
    double hysteresis;      /* move only if expected drain improves by more than this
                               fraction (0.10 = 10 %) ... */
    double move_cost_s;     /* ... and by more than this many seconds per moved
                               partition (handoff: finish in flight, commit, refetch) */
    double min_dwell_s;     /* a partition stays this long with its owner unless the
                               owner dies or its deadline is at risk */
    double deadline_weight; /* seconds of makespan one second of deadline overshoot is
                               worth (times 1 + priority) */
    double lookahead_s;     /* expected load = backlog + rate * lookahead */
    double model_slice_s;   /* a worker serving several modalities switches models
                               about once per this much work (its time slice) */
    double default_throughput[KILN_SCHED_MODALITIES]; /* used before anything is
                                                         measured for a modality */
    double target_drain_s;  /* kiln_sched_desired_workers(): drain within this */
    int max_iterations;     /* local-search bound */
    double rate_tau_s;      /* kiln_sched_estimate(): time constant of the arrival-rate
                               EWMA (weight 1 - exp(-dt / tau) per round) */
    double default_job_units[KILN_SCHED_MODALITIES]; /* kiln_sched_estimate(): work units
                               assumed per job when no job of the partition or modality
                               has declared any */
} kiln_sched_params_t;

/** @returns the defaults documented in docs/scheduler.md. */
kiln_sched_params_t kiln_sched_default_params(void);

/** What kiln_sched_plan() decided, for logs and metrics. */
typedef struct kiln_sched_stats_s {
    double drain_current_s; /* expected drain (makespan) keeping the current owners
                               (dead workers' partitions re-placed) */
    double drain_planned_s; /* expected drain of the returned assignment */
    double penalty_current; /* deadline penalty of the two (seconds, weighted) */
    double penalty_planned;
    int moved;              /* partitions whose owner changed (incl. orphans) */
    int orphans;            /* partitions whose owner was dead or missing */
    int held_by_hysteresis; /* 1 if a better plan was rejected as not worth it */
    int live_workers;
} kiln_sched_stats_t;

/**
 * kiln_sched_plan - computes the next assignment.
 *
 * \p parts[0..n_parts-1] with their current owners, \p workers[0..n_workers-1].
 * On KILN_OK, \p assign[i] is the worker index for partition i, or -1 when
 * no worker is alive; every partition is assigned exactly once when one is.
 * Dead workers get nothing. \p stats is optional (NULL).
 *
 * @returns KILN_OK, KILN_ERR__INVALID_ARG (NULL arrays, negative counts, a
 *          modality out of range) or KILN_ERR__NOMEM.
 * @locality any thread; allocates scratch memory and frees it before returning.
 */
kiln_err_t kiln_sched_plan(const kiln_sched_params_t *params,
                           const kiln_sched_partition_t *parts, int n_parts,
                           const kiln_sched_worker_t *workers, int n_workers, int *assign,
                           kiln_sched_stats_t *stats);

/**
 * kiln_sched_desired_workers - the autoscaling signal: how many workers each
 * modality needs to drain its expected load (backlog + rate * target) within
 * params->target_drain_s, at the mean measured throughput per worker of that
 * modality. Never more than the modality's partition count (a partition is
 * consumed by one worker at a time), at least 1 when there is any backlog.
 *
 * @returns KILN_OK or KILN_ERR__INVALID_ARG; \p desired has KILN_SCHED_MODALITIES
 *          entries.
 */
kiln_err_t kiln_sched_desired_workers(const kiln_sched_params_t *params,
                                      const kiln_sched_partition_t *parts, int n_parts,
                                      const kiln_sched_worker_t *workers, int n_workers,
                                      int *desired);

/**
 * kiln_sched_modality_fleet - copies \p in[0..n-1] to \p out with alive = 0
 * for every worker that does not serve \p modality (resident[modality] == 0:
 * it did not list the modality in its heartbeat), so that kiln_sched_plan()
 * and kiln_sched_desired_workers() on \p out place partitions on, and size
 * by, that modality's workers only. The daemon plans each topic this way.
 * @returns the number of live workers in \p out, or -1 on bad arguments.
 */
int kiln_sched_modality_fleet(const kiln_sched_worker_t *in, int n, int modality,
                              kiln_sched_worker_t *out);

/* ------------------------------------------------------------------------
 * Input estimates (scheduler/policy.c): the daemon's per-partition bookkeeping
 * between rounds, kept pure so that it can be tested without a stack.
 * ------------------------------------------------------------------------ */

/** What the daemon observed of one partition in one round. */
typedef struct kiln_sched_obs_s {
    int64_t high_watermark;     /* Kafka's high watermark (next offset to be written);
                                   -1: unknown (broker not reachable this round) */
    int64_t committed;          /* next offset to consume (Postgres offsets, at least the
                                   low watermark); -1: unknown (read as 0) */
    int64_t rows;               /* open job rows (queued or running) in Postgres */
    int64_t rows_known;         /* ... of which carry work units */
    double units_known;         /* ... their work units, summed */
    double max_units_known;     /* ... the largest */
    int64_t arrived_rows;       /* job rows enqueued since the previous round */
    int64_t arrived_rows_known; /* ... of which carry work units */
    double arrived_units_known; /* ... their work units, summed */
} kiln_sched_obs_t;

/** What the daemon remembers of one partition between rounds. Zero it to start. */
typedef struct kiln_sched_est_s {
    int64_t last_hw;      /* high watermark at the previous round (valid if have_hw) */
    int have_hw;
    double units_per_job; /* EWMA of the work units of the partition's known jobs; 0: none */
    double rate_units_s;  /* EWMA of arriving work units per second */
    int samples;          /* rate samples taken */
} kiln_sched_est_t;

/**
 * kiln_sched_units_per_job - the work units assumed for a job that declares
 * none (a foreign producer without the kiln-work-units header, or a message
 * without a Postgres row): the mean of the partition's open known jobs, else
 * the partition's remembered mean (\p est, may be NULL), else \p modality_mean
 * (> 0: the mean of the modality's known jobs), else
 * params->default_job_units[modality].
 */
double kiln_sched_units_per_job(const kiln_sched_params_t *params, int modality,
                                const kiln_sched_est_t *est, const kiln_sched_obs_t *obs,
                                double modality_mean);

/**
 * kiln_sched_estimate - folds one round's observation \p obs of a partition,
 * \p dt seconds after the previous one, into \p est and fills the partition's
 * backlog_units, queued_jobs, max_job_units and rate_units_s in \p part
 * (part->modality must be set; other fields are left alone).
 *
 *   lag      = high_watermark - committed (open rows when the watermark is unknown)
 *   unknown  = open rows without units + max(0, lag - open rows)
 *   backlog  = known units + unknown * kiln_sched_units_per_job()
 *   arrivals = known units of new rows + max(0, watermark growth - new rows)
 *              * units_per_job (new rows only when the watermark is unknown)
 *   rate     = EWMA of arrivals / dt, weight 1 - exp(-dt / rate_tau_s)
 *
 * The first round (no previous watermark, also after a round without one),
 * a watermark that went backwards (topic recreated) or dt <= 0 take no rate
 * sample.
 */
void kiln_sched_estimate(const kiln_sched_params_t *params, kiln_sched_est_t *est,
                         const kiln_sched_obs_t *obs, double modality_mean, double dt,
                         kiln_sched_partition_t *part);

/* ------------------------------------------------------------------------
 * Simulator (scheduler/sim*.c)
 * ------------------------------------------------------------------------ */

/** The policies the simulator compares. */
typedef enum kiln_sim_policy_e {
    KILN_SIM_POLICY_KILN = 0,   /* kiln_sched_plan() every tick */
    KILN_SIM_POLICY_STATIC = 1, /* round-robin of partitions over workers */
    KILN_SIM_POLICY_KEDA = 2,   /* replicas per modality = ceil(lag / threshold) */
} kiln_sim_policy_t;
#define KILN_SIM_POLICIES 3

/** @returns "kiln", "static" or "keda". */
const char *kiln_sim_policy_name(kiln_sim_policy_t pol);

/** A generated workload: fleet, topics, the arrivals, failures. Opaque. */
typedef struct kiln_sim_workload_s kiln_sim_workload_t;

/** @returns the number of built-in workloads; their names via kiln_sim_workload_name(). */
int kiln_sim_workload_count(void);
/** @returns built-in workload \p i's name ("steady", "skewed-bursty", ...) or NULL. */
const char *kiln_sim_workload_name(int i);

/**
 * kiln_sim_workload_new - generates built-in workload \p name from \p seed
 * (same name and seed, same jobs). \p scale stretches the workload: job
 * counts and arrival times are multiplied by it, so the load stays the same
 * and the backlog grows (1.0 = as documented). @returns NULL for an unknown name or out of memory.
 */
kiln_sim_workload_t *kiln_sim_workload_new(const char *name, uint64_t seed, double scale);
/**
 * kiln_sim_workload_new_fleet - the same with \p workers workers instead of
 * the workload's 8 (0: 8); job counts follow the fleet's capacity so that the
 * load stays the same. @returns NULL as above or when workers is out of range.
 */
kiln_sim_workload_t *kiln_sim_workload_new_fleet(const char *name, uint64_t seed, double scale,
                                                 int workers);
/** Frees \p wl; NULL is fine. */
void kiln_sim_workload_destroy(kiln_sim_workload_t *wl);
/** @returns the one-line description of \p wl. */
const char *kiln_sim_workload_describe(const kiln_sim_workload_t *wl);
/** @returns the number of jobs in \p wl. */
int kiln_sim_workload_jobs(const kiln_sim_workload_t *wl);

/** The outcome of one policy on one workload. */
typedef struct kiln_sim_result_s {
    kiln_sim_policy_t policy;
    double drain_s;         /* time the last job completed (t=0: start) */
    double p50_s, p95_s;    /* job latency, completion - arrival */
    double busy;            /* busy slot-seconds / provisioned slot-seconds */
    int swaps;              /* model loads */
    int moves;              /* partition ownership changes */
    int rebalances;         /* ticks that changed the assignment */
    int redone;             /* jobs run again after a worker died */
    uint64_t trace_hash;    /* hash of every completion (worker, time): determinism */
} kiln_sim_result_t;

/**
 * kiln_sim_run - simulates \p pol on \p wl. \p sp are the kiln policy's
 * parameters, ignored by the other policies (NULL: the defaults with the
 * workload's model load times and nominal throughputs, which an operator
 * would configure). Identical arguments give identical results, bit for bit.
 * @returns KILN_OK, KILN_ERR__INVALID_ARG or KILN_ERR__NOMEM.
 */
kiln_err_t kiln_sim_run(const kiln_sim_workload_t *wl, kiln_sim_policy_t pol,
                        const kiln_sched_params_t *sp, kiln_sim_result_t *out);

/** The offline lower bound on drain time and which of its terms binds. */
typedef struct kiln_sim_bound_s {
    double drain_s;         /* max of the three below */
    double capacity_s;      /* max over arrival times t: t + work arriving at or after t
                               / fleet capacity (failures counted) */
    double job_s;           /* max over jobs: arrival + its time on the fastest slot */
    double partition_s;     /* max over partitions and t: t + the partition's work
                               arriving at or after t / the fastest worker */
    const char *binding;    /* "capacity", "job" or "partition" */
} kiln_sim_bound_t;

/** Computes the lower bound of \p wl (valid for any policy in the model). */
void kiln_sim_lower_bound(const kiln_sim_workload_t *wl, kiln_sim_bound_t *out);

/** Options of kiln_sim_bench(). */
typedef struct kiln_sim_bench_opts_s {
    uint64_t seed;          /* first seed (default 1) */
    int reps;               /* seeds seed..seed+reps-1; medians reported (default 5) */
    double scale;           /* stretch: jobs and arrival times x scale (default 1) */
    const char *only;       /* run only this workload (NULL: all) */
    int json;               /* also print the one-line JSON object last */
    const char *machine;    /* "machine" field (NULL: uname) */
    const char *date;       /* "date" field (NULL: SOURCE_DATE_EPOCH or today, UTC) */
} kiln_sim_bench_opts_t;

/** @returns the defaults above. */
kiln_sim_bench_opts_t kiln_sim_bench_default_opts(void);

/**
 * kiln_sim_bench - runs every workload under every policy and prints the
 * readable table to \p fp, then (opts->json) one JSON object on one line.
 * This is `kiln bench scheduler`. @returns KILN_OK or an error.
 */
kiln_err_t kiln_sim_bench(const kiln_sim_bench_opts_t *opts, FILE *fp);

#ifdef __cplusplus
}
#endif
#endif
