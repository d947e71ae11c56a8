/*
 * scheduler/sim.c - the discrete-event simulation behind `kiln bench
 * scheduler`: one workload, one policy, one deterministic run.
 *
 * What is simulated (the same for every policy):
 *  - jobs arrive into partitions at their generated times;
 *  - a worker has `slots` lanes and one resident model. It starts, on a free
 *    lane, the oldest runnable job of the resident modality among the
 *    partitions it owns; a partition's jobs start in offset order and at
 *    most `window` past its oldest unfinished job (in-order commits: a 2 h
 *    file at the head stalls the partition once the window is used up);
 *  - a job takes work_s * slots / speed seconds on one lane;
 *  - a worker loads another model (swap_s, all lanes idle) when its resident
 *    modality has nothing runnable, or when another modality's oldest
 *    runnable job has waited starve_s and the resident model has been in use
 *    for starve_s (it then drains its lanes first): time slices, no ping-pong;
 *  - a partition that changes owner is handed off: the old owner finishes
 *    what it has in flight, then after handoff_s the new owner starts;
 *  - a worker that dies loses its in-flight jobs (they run again) and keeps
 *    its partitions until the policy notices, hb_timeout_s later.
 *
 * The policies:
 *  - kiln: every tick_s, kiln_sched_plan() on a snapshot of what a real
 *    scheduler sees (backlog from headers, measured EWMA throughput, owners);
 *  - static: partition i -> worker i mod N; a dead worker's partitions go
 *    round-robin to the live ones once it is noticed;
 *  - keda: one deployment per modality, a ScaledObject with a Kafka trigger
 *    and the documented defaults (keda.sh/docs: ScaledObject spec, Apache
 *    Kafka scaler; Kubernetes HPA): every keda_hpa_sync_s (HPA sync period,
 *    15 s) the HPA sets replicas = ceil(lag_messages / lagThreshold),
 *    lagThreshold = keda_target_s / mean job time of that modality's steady
 *    traffic (bursts excluded: an operator's tuning), capped at the partition
 *    count (allowIdleConsumers: false), skipped within the HPA's 10 %
 *    tolerance, scale-up at most max(+100 %, +4 pods) per sync, scale-down
 *    to the highest recommendation of the last keda_stabilize_s (300 s).
 *    KEDA itself polls every keda_poll_s (pollingInterval, 30 s): it
 *    activates a deployment at 0 replicas once lag > 0
 *    (activationLagThreshold 0) and scales it to zero after keda_cooldown_s
 *    (cooldownPeriod, 300 s) without lag (minReplicaCount 0). Pods go to
 *    free GPUs in index order and are ready after keda_pod_start_s plus the
 *    model load; the consumer group spreads a topic's partitions in ranges
 *    over the ready pods. A pod that is scaled down finishes its in-flight
 *    jobs.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/sim_int.h"

#define M KILN_SCHED_MODALITIES

enum { KILN_SIM_PENDING = 0, KILN_SIM_RUNNING, KILN_SIM_DONE };
enum { KILN_EV_DONE = 1, KILN_EV_SWAP, KILN_EV_TICK, KILN_EV_FAIL, KILN_EV_NOTICE,
       KILN_EV_WAKE, KILN_EV_POD_READY, KILN_EV_KEDA_POLL };

typedef struct kiln_sim_ev_s {
    double t;
    uint64_t seq;
    int type;
    int a;
    uint32_t b;
} kiln_sim_ev_t;

typedef struct kiln_sim_jst_s {
    uint8_t state;
    int worker;
    uint32_t attempt;
    double t_start, t_done;
} kiln_sim_jst_t;

typedef struct kiln_sim_part_s {
    int *jobs;           /* job indices in offset (arrival) order */
    int nj, arrived, head;
    int inflight, inflight_on;
    int owner;
    int draining;        /* 1: waiting for the old owner's in-flight jobs */
    double ready_at;     /* the owner may start jobs from this time */
    double owned_since;
    double backlog, max_units, arr_units, rate;
    int queued, max_dirty;
} kiln_sim_part_t;

typedef struct kiln_sim_wst_s {
    int alive, noticed_dead;
    int busy;
    int resident;        /* modality loaded, -1 none */
    int swapping;        /* loading swap_to until the SWAP event */
    int swap_to;
    int drain_to;        /* committed to swap to this once the lanes drain, -1 none */
    double resident_since;
    double tput[M];      /* measured EWMA, work units/s for the whole worker */
    double busy_s;       /* lane-seconds spent running jobs */
    double prov_from;    /* provisioned since (-1: not provisioned) */
    double prov_s;
    /* keda */
    int pod;             /* modality of its pod, -1 none */
    int pod_ready;
    int terminating;     /* pod scaled down, finishing in-flight */
    uint32_t pod_gen;    /* pods started on this GPU: stale ready events are ignored */
    double pod_since;
} kiln_sim_wst_t;

typedef struct kiln_sim_s {
    const kiln_sim_workload_t *wl;
    kiln_sim_policy_t pol;
    kiln_sched_params_t sp;
    double now;
    kiln_sim_ev_t *heap;
    int nheap, capheap;
    uint64_t seq;
    kiln_sim_jst_t *js;
    kiln_sim_part_t *parts;
    kiln_sim_wst_t ws[KILN_SIM_MAX_WORKERS];
    int next_arrival, done;
    kiln_sim_result_t res;
    /* keda */
    double *keda_hist;   /* [n_polls * M] desired replicas per poll */
    double *keda_hist_t;
    int keda_nhist, keda_caphist;
    int keda_target[M];
    double keda_active_t[M]; /* last KEDA poll that saw lag (0 at start) */
    /* kiln scratch */
    kiln_sched_partition_t *snap_p;
    kiln_sched_worker_t snap_w[KILN_SIM_MAX_WORKERS];
    int *assign;
    int nomem;           /* an allocation failed: the run is abandoned */
    double last_done;    /* time of the latest completion */
} kiln_sim_t;

/* ---- event heap (time, then insertion order: deterministic) */

static int kiln_ev_less_(const kiln_sim_ev_t *x, const kiln_sim_ev_t *y) {
    return x->t < y->t || (x->t == y->t && x->seq < y->seq);
}

static int kiln_sim_push_(kiln_sim_t *s, double t, int type, int a, uint32_t b) {
    if (s->nheap == s->capheap) {
        int nc = s->capheap ? s->capheap * 2 : 1024;
        kiln_sim_ev_t *nh = realloc(s->heap, sizeof(*nh) * nc);
        if (!nh)
            return -1;
        s->heap = nh, s->capheap = nc;
    }
    kiln_sim_ev_t ev = {t, s->seq++, type, a, b};
    int i = s->nheap++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!kiln_ev_less_(&ev, &s->heap[p]))
            break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = ev;
    return 0;
}

static kiln_sim_ev_t kiln_sim_pop_(kiln_sim_t *s) {
    kiln_sim_ev_t top = s->heap[0], last = s->heap[--s->nheap];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= s->nheap)
            break;
        if (c + 1 < s->nheap && kiln_ev_less_(&s->heap[c + 1], &s->heap[c]))
            c++;
        if (!kiln_ev_less_(&s->heap[c], &last))
            break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (s->nheap > 0)
        s->heap[i] = last;
    return top;
}

/* ---- workers */

static void kiln_sim_at_(kiln_sim_t *s, double t, int type, int a, uint32_t b) {
    if (kiln_sim_push_(s, t, type, a, b))
        s->nomem = 1;
}

static double kiln_sim_dur_(const kiln_sim_t *s, int j, int w) {
    const kiln_sim_workload_t *wl = s->wl;
    return wl->jobs[j].work_s * wl->slots[w] / wl->speed[w];
}

/* 1 if worker w may run jobs now (alive, and for keda a ready, live pod). */
static int kiln_sim_can_run_(const kiln_sim_t *s, int w) {
    const kiln_sim_wst_t *ws = &s->ws[w];
    if (!ws->alive || ws->swapping)
        return 0;
    if (s->pol == KILN_SIM_POLICY_KEDA && (!ws->pod_ready || ws->terminating))
        return 0;
    return 1;
}

static void kiln_sim_start_swap_(kiln_sim_t *s, int w, int m) {
    kiln_sim_wst_t *ws = &s->ws[w];
    ws->swapping = 1;
    ws->swap_to = m;
    ws->drain_to = -1;
    ws->resident = -1;
    s->res.swaps++;
    kiln_sim_at_(s, s->now + s->wl->swap_s[m], KILN_EV_SWAP, w, 0);
}

/* The next job partition p could start, or -1. */
static int kiln_sim_runnable_(const kiln_sim_t *s, const kiln_sim_part_t *pp) {
    int lim = pp->head + s->wl->window;
    if (lim > pp->arrived)
        lim = pp->arrived;
    for (int k = pp->head; k < lim; k++)
        if (s->js[pp->jobs[k]].state == KILN_SIM_PENDING)
            return pp->jobs[k];
    return -1;
}

static void kiln_sim_start_job_(kiln_sim_t *s, int j, int w) {
    kiln_sim_jst_t *st = &s->js[j];
    kiln_sim_part_t *pp = &s->parts[s->wl->jobs[j].part];
    st->state = KILN_SIM_RUNNING;
    st->worker = w;
    st->attempt++;
    st->t_start = s->now;
    pp->inflight++;
    pp->inflight_on = w;
    s->ws[w].busy++;
    kiln_sim_at_(s, s->now + kiln_sim_dur_(s, j, w), KILN_EV_DONE, j, st->attempt);
}

/*
 * Fills worker w's free lanes (see the file comment for the rules): oldest
 * runnable job of the resident modality first; swap when that modality has
 * nothing runnable and the lanes are empty, or when another one starves.
 */
static void kiln_sim_dispatch_(kiln_sim_t *s, int w) {
    kiln_sim_wst_t *ws = &s->ws[w];
    const kiln_sim_workload_t *wl = s->wl;
    while (kiln_sim_can_run_(s, w)) {
        if (ws->drain_to >= 0) {
            if (ws->busy == 0)
                kiln_sim_start_swap_(s, w, ws->drain_to);
            return;
        }
        if (ws->busy >= wl->slots[w])
            return;
        int best[M] = {-1, -1, -1};
        for (int p = 0; p < wl->np; p++) {
            kiln_sim_part_t *pp = &s->parts[p];
            if (pp->owner != w || pp->draining || pp->ready_at > s->now)
                continue;
            int j = kiln_sim_runnable_(s, pp);
            if (j < 0)
                continue;
            int m = wl->jobs[j].mod;
            if (best[m] < 0 || wl->jobs[j].t_arr < wl->jobs[best[m]].t_arr)
                best[m] = j;
        }
        int other = -1; /* oldest runnable job outside the resident modality */
        for (int m = 0; m < M; m++)
            if (m != ws->resident && best[m] >= 0 &&
                (other < 0 || wl->jobs[best[m]].t_arr < wl->jobs[other].t_arr))
                other = best[m];
        int r = ws->resident;
        if (r >= 0 && best[r] >= 0) {
            if (other >= 0 && s->now - wl->jobs[other].t_arr >= wl->starve_s &&
                s->now - ws->resident_since >= wl->starve_s) {
                ws->drain_to = wl->jobs[other].mod;
                continue;
            }
            kiln_sim_start_job_(s, best[r], w);
            continue;
        }
        if (other >= 0 && ws->busy == 0)
            kiln_sim_start_swap_(s, w, wl->jobs[other].mod);
        return;
    }
}

static void kiln_sim_keda_reconcile_(kiln_sim_t *s);

/* ---- partitions */

/* Gives partition p to worker w (-1: nobody), with a handoff. */
static void kiln_sim_move_(kiln_sim_t *s, int p, int w) {
    kiln_sim_part_t *pp = &s->parts[p];
    if (pp->owner == w)
        return;
    pp->owner = w;
    pp->owned_since = s->now;
    s->res.moves++;
    if (pp->inflight > 0 && pp->inflight_on != w) {
        pp->draining = 1;
        pp->ready_at = HUGE_VAL;
    } else {
        pp->draining = 0;
        pp->ready_at = s->now + s->wl->handoff_s;
        if (w >= 0)
            kiln_sim_at_(s, pp->ready_at, KILN_EV_WAKE, w, 0);
    }
}

static void kiln_sim_job_done_(kiln_sim_t *s, int j, uint32_t attempt) {
    kiln_sim_jst_t *st = &s->js[j];
    const kiln_sim_job_t *job = &s->wl->jobs[j];
    if (st->state != KILN_SIM_RUNNING || st->attempt != attempt)
        return; /* its worker died meanwhile */
    int w = st->worker;
    kiln_sim_wst_t *ws = &s->ws[w];
    kiln_sim_part_t *pp = &s->parts[job->part];
    double dur = s->now - st->t_start;
    st->state = KILN_SIM_DONE;
    st->t_done = s->now;
    s->last_done = s->now;
    s->done++;
    ws->busy--;
    ws->busy_s += dur;
    double sample = job->units / dur * s->wl->slots[w];
    ws->tput[job->mod] = ws->tput[job->mod] > 0 ? 0.8 * ws->tput[job->mod] + 0.2 * sample : sample;
    pp->inflight--;
    pp->backlog -= job->units;
    pp->queued--;
    if (job->units >= pp->max_units)
        pp->max_dirty = 1;
    while (pp->head < pp->arrived && s->js[pp->jobs[pp->head]].state == KILN_SIM_DONE)
        pp->head++;
    uint64_t h = s->res.trace_hash, v[3];
    v[0] = (uint64_t)j;
    v[1] = (uint64_t)w;
    memcpy(&v[2], &s->now, sizeof(double));
    for (int i = 0; i < 3; i++) {
        h ^= v[i];
        h *= 0x100000001B3ULL;
    }
    s->res.trace_hash = h;
    if (pp->inflight == 0 && pp->draining) {
        pp->draining = 0;
        pp->ready_at = s->now + s->wl->handoff_s;
        if (pp->owner >= 0)
            kiln_sim_at_(s, pp->ready_at, KILN_EV_WAKE, pp->owner, 0);
    }
    if (s->pol == KILN_SIM_POLICY_KEDA && ws->terminating && ws->busy == 0) {
        ws->terminating = 0;
        ws->pod = -1;
        ws->prov_s += s->now - ws->prov_from;
        ws->prov_from = -1;
        kiln_sim_keda_reconcile_(s); /* a pending pod can have this GPU now */
    }
    kiln_sim_dispatch_(s, w);
}

static void kiln_sim_arrive_(kiln_sim_t *s, int j) {
    const kiln_sim_job_t *job = &s->wl->jobs[j];
    kiln_sim_part_t *pp = &s->parts[job->part];
    pp->arrived++;
    pp->backlog += job->units;
    pp->queued++;
    pp->arr_units += job->units;
    if (job->units > pp->max_units)
        pp->max_units = job->units;
    if (pp->owner >= 0)
        kiln_sim_dispatch_(s, pp->owner);
}

static void kiln_sim_fail_(kiln_sim_t *s, int w) {
    kiln_sim_wst_t *ws = &s->ws[w];
    ws->alive = 0;
    ws->swapping = 0;
    ws->busy = 0;
    for (int j = 0; j < s->wl->nj; j++) {
        kiln_sim_jst_t *st = &s->js[j];
        if (st->state != KILN_SIM_RUNNING || st->worker != w)
            continue;
        kiln_sim_part_t *pp = &s->parts[s->wl->jobs[j].part];
        st->state = KILN_SIM_PENDING;
        ws->busy_s += s->now - st->t_start;
        s->res.redone++;
        pp->inflight--;
        if (pp->inflight == 0 && pp->draining) {
            pp->draining = 0;
            pp->ready_at = s->now + s->wl->handoff_s;
            if (pp->owner >= 0)
                kiln_sim_at_(s, pp->ready_at, KILN_EV_WAKE, pp->owner, 0);
        }
    }
    if (ws->prov_from >= 0) {
        ws->prov_s += s->now - ws->prov_from;
        ws->prov_from = -1;
    }
}

/* ---- policies */

static void kiln_sim_dispatch_all_(kiln_sim_t *s) {
    for (int w = 0; w < s->wl->nw; w++)
        kiln_sim_dispatch_(s, w);
}

/* Static: a noticed-dead worker's partitions go round-robin over live ones. */
static void kiln_sim_static_repair_(kiln_sim_t *s) {
    int live[KILN_SIM_MAX_WORKERS], nl = 0, k = 0;
    for (int w = 0; w < s->wl->nw; w++)
        if (!s->ws[w].noticed_dead)
            live[nl++] = w;
    for (int p = 0; p < s->wl->np && nl > 0; p++) {
        int o = s->parts[p].owner;
        if (o < 0 || s->ws[o].noticed_dead)
            kiln_sim_move_(s, p, live[k++ % nl]);
    }
}

/* Kiln: build the snapshot a real scheduler would have and apply the plan. */
static void kiln_sim_kiln_tick_(kiln_sim_t *s) {
    const kiln_sim_workload_t *wl = s->wl;
    for (int p = 0; p < wl->np; p++) {
        kiln_sim_part_t *pp = &s->parts[p];
        kiln_sched_partition_t *sn = &s->snap_p[p];
        if (pp->max_dirty) {
            pp->max_units = 0;
            for (int k = pp->head; k < pp->arrived; k++)
                if (s->js[pp->jobs[k]].state != KILN_SIM_DONE &&
                    wl->jobs[pp->jobs[k]].units > pp->max_units)
                    pp->max_units = wl->jobs[pp->jobs[k]].units;
            pp->max_dirty = 0;
        }
        memset(sn, 0, sizeof(*sn));
        sn->modality = kiln_sim_part_mod(wl, p);
        sn->partition = kiln_sim_part_id(wl, p);
        sn->backlog_units = pp->queued > 0 ? pp->backlog : 0;
        sn->queued_jobs = pp->queued;
        sn->max_job_units = pp->queued > 0 ? pp->max_units : 0;
        sn->oldest_age_s = pp->head < pp->arrived ? s->now - wl->jobs[pp->jobs[pp->head]].t_arr : 0;
        sn->rate_units_s = pp->rate;
        sn->deadline_s = KILN_SCHED_NO_DEADLINE;
        sn->owner = pp->owner;
        sn->owned_for_s = s->now - pp->owned_since;
    }
    for (int w = 0; w < wl->nw; w++) {
        kiln_sched_worker_t *sw = &s->snap_w[w];
        const kiln_sim_wst_t *ws = &s->ws[w];
        memset(sw, 0, sizeof(*sw));
        sw->slots = wl->slots[w];
        sw->alive = !ws->noticed_dead;
        sw->gpu_class = wl->gpu_class[w];
        for (int m = 0; m < M; m++) {
            sw->throughput[m] = ws->tput[m];
            sw->resident[m] = ws->resident == m || (ws->swapping && ws->swap_to == m) ||
                              ws->drain_to == m;
        }
    }
    kiln_sched_stats_t st;
    if (kiln_sched_plan(&s->sp, s->snap_p, wl->np, s->snap_w, wl->nw, s->assign, &st) != KILN_OK)
        return;
    int changed = 0;
    for (int p = 0; p < wl->np; p++)
        if (s->assign[p] != s->parts[p].owner) {
            kiln_sim_move_(s, p, s->assign[p]);
            changed = 1;
        }
    s->res.rebalances += changed;
}

/* KEDA: the consumer group of modality m spreads its partitions in ranges. */
static void kiln_sim_keda_group_(kiln_sim_t *s, int m) {
    const kiln_sim_workload_t *wl = s->wl;
    int mem[KILN_SIM_MAX_WORKERS], n = 0, first = 0;
    for (int w = 0; w < wl->nw; w++)
        if (s->ws[w].pod == m && s->ws[w].pod_ready && !s->ws[w].terminating &&
            !s->ws[w].noticed_dead)
            mem[n++] = w;
    for (int k = 0; k < m; k++)
        first += wl->nparts_mod[k];
    int P = wl->nparts_mod[m];
    for (int i = 0, idx = 0; i < n; i++) {
        int take = P / n + (i < P % n);
        for (int k = 0; k < take; k++, idx++)
            kiln_sim_move_(s, first + idx, mem[i]);
    }
    if (n == 0)
        for (int k = 0; k < P; k++)
            kiln_sim_move_(s, first + k, -1);
}

/* KEDA: scale down over target, then start pending pods on free GPUs. */
static void kiln_sim_keda_reconcile_(kiln_sim_t *s) {
    const kiln_sim_workload_t *wl = s->wl;
    int cur[M] = {0, 0, 0};
    for (int w = 0; w < wl->nw; w++)
        if (s->ws[w].pod >= 0 && !s->ws[w].terminating && !s->ws[w].noticed_dead)
            cur[s->ws[w].pod]++;
    for (int m = 0; m < M; m++) {
        int changed = 0;
        while (cur[m] > s->keda_target[m]) { /* newest pod of m goes first */
            int victim = -1;
            for (int w = 0; w < wl->nw; w++)
                if (s->ws[w].pod == m && !s->ws[w].terminating && !s->ws[w].noticed_dead &&
                    (victim < 0 || s->ws[w].pod_since >= s->ws[victim].pod_since))
                    victim = w;
            kiln_sim_wst_t *v = &s->ws[victim];
            v->terminating = 1;
            cur[m]--;
            changed = 1;
            if (v->busy == 0 || !v->alive) {
                v->terminating = 0;
                v->pod = -1;
                if (v->prov_from >= 0)
                    v->prov_s += s->now - v->prov_from;
                v->prov_from = -1;
            }
        }
        if (changed)
            kiln_sim_keda_group_(s, m);
    }
    for (;;) {
        int free_w = -1, pick = -1;
        for (int w = 0; w < wl->nw && free_w < 0; w++)
            if (s->ws[w].alive && s->ws[w].pod < 0)
                free_w = w;
        for (int m = 0; m < M; m++)
            if (cur[m] < s->keda_target[m] &&
                (pick < 0 || s->keda_target[m] - cur[m] > s->keda_target[pick] - cur[pick]))
                pick = m;
        if (free_w < 0 || pick < 0)
            break;
        kiln_sim_wst_t *ws = &s->ws[free_w];
        ws->pod = pick;
        ws->pod_ready = 0;
        ws->pod_since = s->now;
        ws->prov_from = s->now;
        ws->resident = -1;
        cur[pick]++;
        s->res.swaps++;
        ws->pod_gen++;
        kiln_sim_at_(s, s->now + wl->keda_pod_start_s + wl->swap_s[pick], KILN_EV_POD_READY,
                     free_w, ws->pod_gen);
    }
}

static void kiln_sim_keda_poll_(kiln_sim_t *s) {
    const kiln_sim_workload_t *wl = s->wl;
    if (s->keda_nhist == s->keda_caphist) {
        int nc = s->keda_caphist ? 2 * s->keda_caphist : 256;
        double *h = realloc(s->keda_hist, sizeof(double) * nc * M);
        double *ht = realloc(s->keda_hist_t, sizeof(double) * nc);
        if (h)
            s->keda_hist = h;
        if (ht)
            s->keda_hist_t = ht;
        if (!h || !ht) {
            s->nomem = 1;
            return;
        }
        s->keda_caphist = nc;
    }
    int lag[M] = {0, 0, 0};
    for (int p = 0; p < wl->np; p++)
        lag[kiln_sim_part_mod(wl, p)] += s->parts[p].queued;
    /* KEDA's own poll (pollingInterval) falls on every k-th HPA sync */
    int per = (int)floor(wl->keda_poll_s / wl->keda_hpa_sync_s + 0.5);
    int keda_poll = per <= 1 || (s->keda_nhist % per) == 0;
    double *row = &s->keda_hist[s->keda_nhist * M];
    s->keda_hist_t[s->keda_nhist++] = s->now;
    for (int m = 0; m < M; m++) {
        int cur = s->keda_target[m];
        if (keda_poll && lag[m] > 0)
            s->keda_active_t[m] = s->now;
        if (cur == 0) { /* KEDA: activation 0 -> 1 at its poll; the HPA is off */
            row[m] = 0;
            if (keda_poll && lag[m] > 0)
                s->keda_target[m] = wl->keda_min_replicas > 1 ? wl->keda_min_replicas : 1;
            continue;
        }
        if (keda_poll && wl->keda_min_replicas == 0 && lag[m] == 0 &&
            s->now - s->keda_active_t[m] >= wl->keda_cooldown_s) {
            row[m] = 0; /* KEDA: scale to zero after cooldownPeriod without lag */
            s->keda_target[m] = 0;
            continue;
        }
        /* HPA, AverageValue target: desired = ceil(lag / lagThreshold) */
        double threshold = wl->keda_target_s / wl->keda_mean_job_s[m];
        double d = ceil(lag[m] / threshold);
        if (fabs(lag[m] / (threshold * cur) - 1.0) <= wl->keda_tolerance)
            d = cur; /* within the HPA's tolerance: no change */
        int lo = wl->keda_min_replicas > 1 ? wl->keda_min_replicas : 1;
        if (d < lo)
            d = lo;
        if (d > wl->nparts_mod[m])
            d = wl->nparts_mod[m];
        row[m] = d;
        /* HPA behavior defaults: scale up at most max(2 x, +4) per sync;
         * scale down to the highest recommendation within the window */
        double up = 2.0 * cur > cur + 4.0 ? 2.0 * cur : cur + 4.0;
        double eff = d > up ? up : d;
        if (d < cur)
            for (int i = s->keda_nhist - 1; i >= 0; i--) {
                if (s->keda_hist_t[i] < s->now - wl->keda_stabilize_s)
                    break;
                if (s->keda_hist[i * M + m] > eff)
                    eff = s->keda_hist[i * M + m];
            }
        if (eff > cur && d < cur)
            eff = cur;
        s->keda_target[m] = (int)eff;
    }
    kiln_sim_keda_reconcile_(s);
}

/* ---- run */

static void kiln_sim_free_(kiln_sim_t *s) {
    if (s->parts)
        for (int p = 0; p < s->wl->np; p++)
            free(s->parts[p].jobs);
    free(s->parts);
    free(s->js);
    free(s->heap);
    free(s->keda_hist);
    free(s->keda_hist_t);
    free(s->snap_p);
    free(s->assign);
}

static int kiln_sim_dbl_cmp_(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

const char *kiln_sim_policy_name(kiln_sim_policy_t pol) {
    switch (pol) {
    case KILN_SIM_POLICY_KILN: return "kiln";
    case KILN_SIM_POLICY_STATIC: return "static";
    case KILN_SIM_POLICY_KEDA: return "keda";
    }
    return "?";
}

static int kiln_sim_init_(kiln_sim_t *s, const kiln_sim_workload_t *wl) {
    s->js = calloc(wl->nj ? wl->nj : 1, sizeof(kiln_sim_jst_t));
    s->parts = calloc(wl->np, sizeof(kiln_sim_part_t));
    s->snap_p = calloc(wl->np, sizeof(kiln_sched_partition_t));
    s->assign = calloc(wl->np, sizeof(int));
    if (!s->js || !s->parts || !s->snap_p || !s->assign)
        return -1;
    for (int j = 0; j < wl->nj; j++)
        s->parts[wl->jobs[j].part].nj++;
    for (int p = 0; p < wl->np; p++) {
        s->parts[p].jobs = malloc(sizeof(int) * (s->parts[p].nj ? s->parts[p].nj : 1));
        if (!s->parts[p].jobs)
            return -1;
        s->parts[p].nj = 0;
        s->parts[p].owner = -1;
    }
    for (int j = 0; j < wl->nj; j++) {
        kiln_sim_part_t *pp = &s->parts[wl->jobs[j].part];
        pp->jobs[pp->nj++] = j;
    }
    for (int w = 0; w < wl->nw; w++) {
        kiln_sim_wst_t *ws = &s->ws[w];
        ws->alive = 1;
        ws->resident = -1;
        ws->drain_to = -1;
        ws->pod = -1;
        ws->prov_from = s->pol == KILN_SIM_POLICY_KEDA ? -1 : 0;
    }
    return 0;
}

kiln_err_t kiln_sim_run(const kiln_sim_workload_t *wl, kiln_sim_policy_t pol,
                        const kiln_sched_params_t *sp, kiln_sim_result_t *out) {
    if (!wl || !out || (int)pol < 0 || pol >= KILN_SIM_POLICIES || wl->nw > KILN_SIM_MAX_WORKERS)
        return KILN_ERR__INVALID_ARG;
    kiln_sim_t s;
    memset(&s, 0, sizeof(s));
    s.wl = wl;
    s.pol = pol;
    if (sp) {
        s.sp = *sp;
    } else { /* what an operator configures: model load times, nominal speeds */
        s.sp = kiln_sched_default_params();
        for (int m = 0; m < M; m++) {
            s.sp.swap_cost_s[m] = wl->swap_s[m];
            s.sp.default_throughput[m] = wl->base_tput[m];
        }
    }
    s.res.policy = pol;
    s.res.trace_hash = 0xcbf29ce484222325ULL;
    if (kiln_sim_init_(&s, wl)) {
        kiln_sim_free_(&s);
        return KILN_ERR__NOMEM;
    }

    /* t = 0: initial assignment, periodic events, failures */
    if (pol == KILN_SIM_POLICY_STATIC)
        for (int p = 0; p < wl->np; p++)
            kiln_sim_move_(&s, p, p % wl->nw);
    for (int w = 0; w < wl->nw; w++)
        if (isfinite(wl->fail_at[w])) {
            kiln_sim_at_(&s, wl->fail_at[w], KILN_EV_FAIL, w, 0);
            kiln_sim_at_(&s, wl->fail_at[w] + wl->hb_timeout_s, KILN_EV_NOTICE, w, 0);
        }
    kiln_sim_at_(&s, 0, KILN_EV_TICK, 0, 0);
    if (pol == KILN_SIM_POLICY_KEDA)
        kiln_sim_at_(&s, 0, KILN_EV_KEDA_POLL, 0, 0);

    while (s.done < wl->nj && !s.nomem) {
        int arrival = s.next_arrival < wl->nj &&
                      (s.nheap == 0 || wl->jobs[s.next_arrival].t_arr <= s.heap[0].t);
        if (arrival) {
            s.now = wl->jobs[s.next_arrival].t_arr;
            kiln_sim_arrive_(&s, s.next_arrival++);
            continue;
        }
        if (s.nheap == 0)
            break; /* nothing can happen any more: a stuck policy */
        kiln_sim_ev_t ev = kiln_sim_pop_(&s);
        s.now = ev.t;
        if (s.now > s.last_done + 1e6 && s.next_arrival >= wl->nj)
            break; /* a stuck policy: only periodic events are left */
        switch (ev.type) {
        case KILN_EV_DONE:
            kiln_sim_job_done_(&s, ev.a, ev.b);
            break;
        case KILN_EV_SWAP:
            if (s.ws[ev.a].alive && s.ws[ev.a].swapping) {
                s.ws[ev.a].swapping = 0;
                s.ws[ev.a].resident = s.ws[ev.a].swap_to;
                s.ws[ev.a].resident_since = s.now;
                kiln_sim_dispatch_(&s, ev.a);
            }
            break;
        case KILN_EV_WAKE:
            kiln_sim_dispatch_(&s, ev.a);
            break;
        case KILN_EV_FAIL:
            kiln_sim_fail_(&s, ev.a);
            break;
        case KILN_EV_NOTICE:
            s.ws[ev.a].noticed_dead = 1;
            if (pol == KILN_SIM_POLICY_STATIC)
                kiln_sim_static_repair_(&s);
            else if (pol == KILN_SIM_POLICY_KILN)
                kiln_sim_kiln_tick_(&s);
            else if (s.ws[ev.a].pod >= 0) {
                int m = s.ws[ev.a].pod;
                s.ws[ev.a].pod = -1;
                kiln_sim_keda_group_(&s, m);
                kiln_sim_keda_reconcile_(&s);
            }
            kiln_sim_dispatch_all_(&s);
            break;
        case KILN_EV_TICK:
            for (int p = 0; p < wl->np; p++) {
                kiln_sim_part_t *pp = &s.parts[p];
                double inst = pp->arr_units / wl->tick_s;
                pp->rate = s.now > 0 ? 0.8 * pp->rate + 0.2 * inst : 0;
                pp->arr_units = 0;
            }
            if (pol == KILN_SIM_POLICY_KILN) {
                kiln_sim_kiln_tick_(&s);
                kiln_sim_dispatch_all_(&s);
            }
            kiln_sim_at_(&s, s.now + wl->tick_s, KILN_EV_TICK, 0, 0);
            break;
        case KILN_EV_POD_READY: {
            kiln_sim_wst_t *ws = &s.ws[ev.a];
            if (!ws->alive || ws->pod < 0 || ws->terminating || ev.b != ws->pod_gen)
                break; /* that pod was scaled down before it was ready */
            ws->pod_ready = 1;
            ws->resident = ws->pod;
            ws->resident_since = s.now;
            kiln_sim_keda_group_(&s, ws->pod);
            kiln_sim_dispatch_all_(&s);
            break;
        }
        case KILN_EV_KEDA_POLL:
            kiln_sim_keda_poll_(&s);
            kiln_sim_dispatch_all_(&s);
            kiln_sim_at_(&s, s.now + wl->keda_hpa_sync_s, KILN_EV_KEDA_POLL, 0, 0);
            break;
        }
    }
    if (s.nomem) {
        kiln_sim_free_(&s);
        return KILN_ERR__NOMEM;
    }
    if (s.done < wl->nj) {
        kiln_sim_free_(&s);
        return KILN_ERR__FAIL;
    }

    /* results */
    kiln_sim_result_t *r = &s.res;
    double *lat = malloc(sizeof(double) * (wl->nj ? wl->nj : 1));
    if (!lat) {
        kiln_sim_free_(&s);
        return KILN_ERR__NOMEM;
    }
    for (int j = 0; j < wl->nj; j++) {
        lat[j] = s.js[j].t_done - wl->jobs[j].t_arr;
        if (s.js[j].t_done > r->drain_s)
            r->drain_s = s.js[j].t_done;
    }
    qsort(lat, wl->nj, sizeof(double), kiln_sim_dbl_cmp_);
    if (wl->nj > 0) {
        r->p50_s = lat[(int)(0.50 * (wl->nj - 1))];
        r->p95_s = lat[(int)(0.95 * (wl->nj - 1))];
    }
    free(lat);
    double busy = 0, prov = 0;
    for (int w = 0; w < wl->nw; w++) {
        kiln_sim_wst_t *ws = &s.ws[w];
        if (ws->prov_from >= 0)
            ws->prov_s += r->drain_s - ws->prov_from;
        busy += ws->busy_s;
        prov += ws->prov_s * wl->slots[w];
    }
    r->busy = prov > 0 ? busy / prov : 0;
    *out = *r;
    kiln_sim_free_(&s);
    return KILN_OK;
}
