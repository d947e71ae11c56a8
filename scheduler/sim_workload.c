/*
 * scheduler/sim_workload.c - the built-in workloads of `kiln bench scheduler`
 * and their offline lower bound.
 *
 * A workload is a fleet (speeds, slots, failures), the three job topics and a
 * list of arrival streams; it is generated once from a seed with splitmix64
 * and then handed unchanged to every policy, so all of them see the same
 * arrivals, sizes and worker speeds. Jobs hash to partitions by their (random)
 * job id, as the producer keys messages, so partitions of a topic receive the
 * same number of jobs on average; what differs between them is the work.
 *
 * The job counts are written for 8 workers; with another fleet size they are
 * scaled by its capacity so that the load stays the same.
 *
 * Reference fleet: 8 workers x 4 slots, speed 1.0 (an A100-class GPU doing
 * 120 audio-s/s of transcription, 1500 characters/s of speech, 40 image
 * steps/s), 32/8/8 partitions (the broker.partitions.* defaults), model loads
 * of 8/4/20 s. Every job's true cost carries a lognormal jitter (sigma 0.1)
 * that no scheduler sees.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/sim_int.h"

#define M KILN_SCHED_MODALITIES

/*
 * n jobs of modality mod arriving uniformly in [t0, t1], units uniform in
 * [lo, hi]. A burst is not part of the traffic an operator tunes on.
 */
typedef struct kiln_sim_stream_s {
    int mod;
    double t0, t1;
    double n;
    double lo, hi;
    int burst;
} kiln_sim_stream_t;

#define KILN_SIM_MAX_STREAMS 12

typedef struct kiln_sim_spec_s {
    const char *name;
    const char *desc;
    int fleet;          /* 0: 8 x speed 1; 1: heterogeneous */
    int fail_worker;    /* -1: none */
    double fail_at;
    kiln_sim_stream_t streams[KILN_SIM_MAX_STREAMS];
} kiln_sim_spec_t;

/* T: transcribe (audio s), S: speak (characters), I: image (steps) */
#define T_ KILN_SCHED_MOD_TRANSCRIBE
#define S_ KILN_SCHED_MOD_SPEAK
#define I_ KILN_SCHED_MOD_IMAGE

/*
 * The steady mix: 60/15/25 % of the work in transcribe/speak/image, arriving
 * at 95 % of the fleet's capacity for 30 min, on top of 5 min of backlog.
 */
#define KILN_SIM_STEADY_STREAMS                                                            \
    {T_, 0, 0, 5760, 15, 45, 0}, {S_, 0, 0, 1080, 200, 800, 0}, {I_, 0, 0, 533, 30, 60, 0},  \
        {T_, 0, 1800, 32832, 15, 45, 0}, {S_, 0, 1800, 6156, 200, 800, 0},                  \
        {I_, 0, 1800, 3040, 30, 60, 0}

static const kiln_sim_spec_t kiln_sim_specs[] = {
    {"steady",
     "60/15/25% transcribe/speak/image work at 95% of capacity for 30 min over 5 min of backlog",
     0, -1, 0, {KILN_SIM_STEADY_STREAMS}},
    {"skewed-bursty",
     "80/5/15% mix at 60% of capacity, plus bursts: 160 podcasts (10-60 min) at 2 min, "
     "3000 image jobs at 10 min, 6000 speak jobs at 16 min, 8000 short files at 21 min",
     0, -1, 0,
     {{T_, 0, 1800, 27648, 15, 45, 0}, {S_, 0, 1800, 1296, 200, 800, 0},
      {I_, 0, 1800, 1152, 30, 60, 0},
      {T_, 120, 180, 160, 600, 3600, 1}, {I_, 600, 720, 3000, 30, 60, 1},
      {S_, 1000, 1060, 6000, 200, 800, 1}, {T_, 1300, 1360, 8000, 15, 45, 1}}},
    {"long-tail",
     "transcribe only: 8000 30 s files queued, 25920 more over 15 min (90% of capacity), "
     "and six 2 h files arriving in the first 400 s (head-of-line blocking)",
     0, -1, 0,
     {{T_, 0, 0, 8000, 15, 45, 0}, {T_, 0, 900, 25920, 15, 45, 0}, {T_, 0, 400, 6, 7200, 7200, 1}}},
    {"worker-failure",
     "the steady mix; worker 3 dies at t=600 s (noticed after the heartbeat timeout)",
     0, 3, 600, {KILN_SIM_STEADY_STREAMS}},
    {"hetero",
     "the steady mix on L4 (0.35x), A100 (1x) and H100 (2x) GPUs in turn (3/3/2 of 8) at 95% "
     "of their capacity",
     1, -1, 0,
     {{T_, 0, 0, 5796, 15, 45, 0}, {S_, 0, 0, 1087, 200, 800, 0}, {I_, 0, 0, 536, 30, 60, 0},
      {T_, 0, 1800, 33037, 15, 45, 0}, {S_, 0, 1800, 6194, 200, 800, 0},
      {I_, 0, 1800, 3059, 30, 60, 0}}},
};
#define KILN_SIM_N_SPECS ((int)(sizeof(kiln_sim_specs) / sizeof(kiln_sim_specs[0])))

int kiln_sim_workload_count(void) {
    return KILN_SIM_N_SPECS;
}

const char *kiln_sim_workload_name(int i) {
    return i >= 0 && i < KILN_SIM_N_SPECS ? kiln_sim_specs[i].name : NULL;
}

const char *kiln_sim_workload_describe(const kiln_sim_workload_t *wl) {
    return wl ? wl->desc : "";
}

int kiln_sim_workload_jobs(const kiln_sim_workload_t *wl) {
    return wl ? wl->nj : 0;
}

static int kiln_sim_job_cmp_(const void *a, const void *b) {
    const kiln_sim_job_t *x = a, *y = b;
    if (x->t_arr != y->t_arr)
        return x->t_arr < y->t_arr ? -1 : 1;
    /* ties (a queued backlog at t=0): keep generation order via the partition
     * and size, then the address order qsort cannot promise; make it total */
    if (x->part != y->part)
        return x->part - y->part;
    if (x->work_s != y->work_s)
        return x->work_s < y->work_s ? -1 : 1;
    return 0;
}

/* Standard normal via Box-Muller on the workload's generator. */
static double kiln_sim_gauss_(uint64_t *rs) {
    double u1 = kiln_sim_rand01(rs), u2 = kiln_sim_rand01(rs);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Fills the fleet; @returns its capacity (summed speed). */
static double kiln_sim_fleet_(kiln_sim_workload_t *wl, int kind, int nw) {
    static const double hetero[3] = {0.35, 1.0, 2.0};
    double cap = 0;
    wl->nw = nw;
    for (int w = 0; w < wl->nw; w++) {
        wl->slots[w] = 4;
        wl->speed[w] = kind == 1 ? hetero[w % 3] : 1.0;
        wl->gpu_class[w] = kind == 1 ? w % 3 : 1;
        wl->fail_at[w] = HUGE_VAL;
        cap += wl->speed[w];
    }
    wl->gpu_names[0] = "L4";
    wl->gpu_names[1] = "A100";
    wl->gpu_names[2] = "H100";
    return cap;
}

kiln_sim_workload_t *kiln_sim_workload_new(const char *name, uint64_t seed, double scale) {
    return kiln_sim_workload_new_fleet(name, seed, scale, 0);
}

kiln_sim_workload_t *kiln_sim_workload_new_fleet(const char *name, uint64_t seed, double scale,
                                                 int workers) {
    const kiln_sim_spec_t *spec = NULL;
    for (int i = 0; name && i < KILN_SIM_N_SPECS; i++)
        if (!strcmp(kiln_sim_specs[i].name, name))
            spec = &kiln_sim_specs[i];
    if (!spec || !(scale > 0) || workers < 0 || workers > KILN_SIM_MAX_WORKERS)
        return NULL;
    kiln_sim_workload_t *wl = calloc(1, sizeof(*wl));
    if (!wl)
        return NULL;
    snprintf(wl->name, sizeof(wl->name), "%s", spec->name);
    snprintf(wl->desc, sizeof(wl->desc), "%s", spec->desc);
    wl->seed = seed;
    double cap8 = kiln_sim_fleet_(wl, spec->fleet, 8);
    double load = kiln_sim_fleet_(wl, spec->fleet, workers ? workers : 8) / cap8;
    if (spec->fail_worker >= 0 && spec->fail_worker < wl->nw)
        wl->fail_at[spec->fail_worker] = spec->fail_at * scale;
    wl->nparts_mod[T_] = 32;
    wl->nparts_mod[S_] = 8;
    wl->nparts_mod[I_] = 8;
    wl->np = 48;
    wl->base_tput[T_] = 120.0;
    wl->base_tput[S_] = 1500.0;
    wl->base_tput[I_] = 40.0;
    wl->swap_s[T_] = 8.0;
    wl->swap_s[S_] = 4.0;
    wl->swap_s[I_] = 20.0;
    wl->tick_s = 5.0;
    wl->hb_timeout_s = 10.0;
    wl->handoff_s = 1.0;
    wl->starve_s = 120.0;
    wl->window = 16;
    /* KEDA and HPA defaults: keda.sh/docs/latest/reference/scaledobject-spec
     * (pollingInterval 30, cooldownPeriod 300, minReplicaCount 0), the Kafka
     * scaler (replicas capped at the partition count unless allowIdleConsumers),
     * Kubernetes HPA (sync period 15 s, tolerance 0.1, scale-down
     * stabilization 300 s, scale-up max(100 %, 4 pods) per 15 s). lagThreshold
     * (default 10 messages) is tuned to 120 s of steady work per replica. */
    wl->keda_poll_s = 30.0;
    wl->keda_hpa_sync_s = 15.0;
    wl->keda_cooldown_s = 300.0;
    wl->keda_tolerance = 0.1;
    wl->keda_pod_start_s = 20.0;
    wl->keda_stabilize_s = 300.0;
    wl->keda_target_s = 120.0;
    wl->keda_min_replicas = 0;

    int cap = 0;
    for (int k = 0; k < KILN_SIM_MAX_STREAMS && spec->streams[k].n > 0; k++)
        cap += (int)ceil(spec->streams[k].n * scale * load);
    wl->jobs = calloc(cap ? cap : 1, sizeof(kiln_sim_job_t));
    if (!wl->jobs) {
        free(wl);
        return NULL;
    }
    uint64_t rs = seed * 0x100000001B3ULL + 0x5eed;
    double sum[M] = {0, 0, 0};
    int cnt[M] = {0, 0, 0};
    for (int k = 0; k < KILN_SIM_MAX_STREAMS && spec->streams[k].n > 0; k++) {
        const kiln_sim_stream_t *st = &spec->streams[k];
        int n = (int)ceil(st->n * scale * load);
        for (int i = 0; i < n; i++) {
            kiln_sim_job_t *j = &wl->jobs[wl->nj++];
            uint64_t id = kiln_sim_rand(&rs); /* the job id; its hash picks the partition */
            j->mod = st->mod;
            j->t_arr = (st->t0 + (st->t1 - st->t0) * kiln_sim_rand01(&rs)) * scale;
            j->units = st->lo + (st->hi - st->lo) * kiln_sim_rand01(&rs);
            j->work_s = j->units / wl->base_tput[j->mod] * exp(0.1 * kiln_sim_gauss_(&rs));
            int first = 0;
            for (int m = 0; m < j->mod; m++)
                first += wl->nparts_mod[m];
            uint64_t h = id;
            j->part = first + (int)(kiln_sim_rand(&h) % (uint64_t)wl->nparts_mod[j->mod]);
            if (!st->burst) {
                sum[j->mod] += j->work_s;
                cnt[j->mod]++;
            }
        }
    }
    qsort(wl->jobs, wl->nj, sizeof(kiln_sim_job_t), kiln_sim_job_cmp_);
    for (int m = 0; m < M; m++)
        wl->keda_mean_job_s[m] = cnt[m] ? sum[m] / cnt[m] : 1.0;
    return wl;
}

void kiln_sim_workload_destroy(kiln_sim_workload_t *wl) {
    if (!wl)
        return;
    free(wl->jobs);
    free(wl);
}

/*
 * Earliest D >= t with integral_t^D capacity(u) du >= W, where capacity(u) is
 * the summed speed of the workers still alive at u.
 */
static double kiln_sim_finish_(const kiln_sim_workload_t *wl, double t, double W) {
    for (;;) {
        double cap = 0, next = HUGE_VAL;
        for (int w = 0; w < wl->nw; w++) {
            if (wl->fail_at[w] > t) {
                cap += wl->speed[w];
                if (wl->fail_at[w] < next)
                    next = wl->fail_at[w];
            }
        }
        if (cap <= 0)
            return HUGE_VAL;
        if (t + W / cap <= next)
            return t + W / cap;
        W -= cap * (next - t);
        t = next;
    }
}

void kiln_sim_lower_bound(const kiln_sim_workload_t *wl, kiln_sim_bound_t *out) {
    memset(out, 0, sizeof(*out));
    out->binding = "capacity";
    if (!wl || wl->nj == 0)
        return;
    double max_speed = 0, best_slot = 0; /* fastest worker; fastest single slot */
    for (int w = 0; w < wl->nw; w++) {
        if (wl->speed[w] > max_speed)
            max_speed = wl->speed[w];
        if (wl->speed[w] / wl->slots[w] > best_slot)
            best_slot = wl->speed[w] / wl->slots[w];
    }
    double *psum = calloc(wl->np, sizeof(double));
    if (!psum)
        return;
    double W = 0;
    for (int i = wl->nj - 1; i >= 0; i--) {
        const kiln_sim_job_t *j = &wl->jobs[i];
        W += j->work_s;
        psum[j->part] += j->work_s;
        double t = j->t_arr;
        if (i == 0 || wl->jobs[i - 1].t_arr != t) {
            double c = kiln_sim_finish_(wl, t, W);
            if (c > out->capacity_s)
                out->capacity_s = c;
        }
        double pj = t + psum[j->part] / max_speed;
        if (pj > out->partition_s)
            out->partition_s = pj;
        double jb = t + j->work_s / best_slot;
        if (jb > out->job_s)
            out->job_s = jb;
    }
    free(psum);
    out->drain_s = out->capacity_s;
    if (out->partition_s > out->drain_s)
        out->drain_s = out->partition_s, out->binding = "partition";
    if (out->job_s > out->drain_s)
        out->drain_s = out->job_s, out->binding = "job";
}
