/*
 * scheduler/sim_int.h - internals shared by the simulator's files
 * (sim_workload.c generates workloads and the lower bound, sim.c runs the
 * discrete-event simulation, sim_bench.c prints `kiln bench scheduler`).
 * Not installed; the public side is include/kiln/sched.h.
 */
#ifndef KILN_SIM_INT_H
#define KILN_SIM_INT_H

#include <stdint.h>

#include "kiln/sched.h"

#define KILN_SIM_MAX_WORKERS 64

/* One job. Arrays of these are sorted by arrival time. */
typedef struct kiln_sim_job_s {
    double t_arr;  /* arrival, seconds */
    double units;  /* work units declared in its header */
    double work_s; /* true cost: seconds on a speed-1 worker using all slots
                      (units / base_tput * per-job jitter); durations derive from it */
    int mod;       /* modality */
    int part;      /* global partition index (hash of the job id) */
} kiln_sim_job_t;

struct kiln_sim_workload_s {
    char name[32];
    char desc[256];
    uint64_t seed;

    /* fleet */
    int nw;
    double speed[KILN_SIM_MAX_WORKERS];  /* throughput multiplier (same for all modalities) */
    int slots[KILN_SIM_MAX_WORKERS];
    int gpu_class[KILN_SIM_MAX_WORKERS]; /* index into the workload's GPU names */
    const char *gpu_names[4];
    double fail_at[KILN_SIM_MAX_WORKERS]; /* time the worker dies (HUGE_VAL: never) */

    /* topics: partitions are numbered transcribe 0.., then speak, then image */
    int nparts_mod[KILN_SCHED_MODALITIES];
    int np;
    double base_tput[KILN_SCHED_MODALITIES]; /* work units/s of a speed-1 worker */
    double swap_s[KILN_SCHED_MODALITIES];    /* model load time */

    kiln_sim_job_t *jobs;
    int nj;

    /* mechanics, the same for every policy */
    double tick_s;       /* rebalance interval (kiln) / liveness check (all) */
    double hb_timeout_s; /* heartbeat timeout before a dead worker is noticed */
    double handoff_s;    /* partition handoff: commit, fence, refetch */
    double starve_s;     /* a worker swaps models once another modality waited this long */
    int window;          /* jobs a worker may run past a partition's committed offset */

    /* KEDA-style baseline (documented defaults, docs/scheduler.md) */
    double keda_poll_s;        /* KEDA pollingInterval (activation, scale to zero): 30 s */
    double keda_hpa_sync_s;    /* HPA sync period (scaling 1 <-> N): 15 s */
    double keda_cooldown_s;    /* KEDA cooldownPeriod (to zero after no lag): 300 s */
    double keda_tolerance;     /* HPA tolerance: 0.1 */
    double keda_pod_start_s;   /* pod scheduling + container start (model load added) */
    double keda_stabilize_s;   /* HPA scale-down stabilization window: 300 s */
    double keda_target_s;      /* lagThreshold = target / mean job time */
    int keda_min_replicas;     /* minReplicaCount: 0 */
    double keda_mean_job_s[KILN_SCHED_MODALITIES]; /* operator's tuning: mean work_s of
                                                      the steady (non-burst) traffic */
};

/* Partition p's modality. */
static inline int kiln_sim_part_mod(const struct kiln_sim_workload_s *wl, int p) {
    int m = 0;
    while (m < KILN_SCHED_MODALITIES - 1 && p >= wl->nparts_mod[m])
        p -= wl->nparts_mod[m++];
    return m;
}

/* Index of partition p within its modality's topic. */
static inline int kiln_sim_part_id(const struct kiln_sim_workload_s *wl, int p) {
    int m = 0;
    while (m < KILN_SCHED_MODALITIES - 1 && p >= wl->nparts_mod[m])
        p -= wl->nparts_mod[m++];
    return p;
}

/* splitmix64: the simulator's only source of randomness. */
static inline uint64_t kiln_sim_rand(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static inline double kiln_sim_rand01(uint64_t *s) {
    return (double)(kiln_sim_rand(s) >> 11) * (1.0 / 9007199254740992.0);
}

#endif
