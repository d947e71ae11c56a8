/*
 * scheduler/policy.c - the scheduler's policy core: snapshot in, assignment
 * out. Pure computation: no I/O, no clock, no global state (see
 * include/kiln/sched.h for the contract, docs/scheduler.md for the why).
 *
 * Model. A worker w drains the partitions assigned to it in
 *   T_w = max(sum_p load_p / tput_w[m_p],  max_p job_p / (tput_w[m_p] / slots_w))
 *         + sum of swap_cost[m] over modalities it must serve but has not loaded
 *         + (serving several modalities) work / model_slice_s * their swap costs
 * seconds: its slots share the partitions' work, but one job runs on one slot
 * (a 2 h file is a floor no placement can beat). load_p is the backlog plus
 * the measured arrival rate times lookahead_s. The expected drain time of an
 * assignment is the makespan max_w T_w; a partition with a deadline adds
 * deadline_weight * (1 + priority) * max(0, T_w - deadline) to it.
 *
 * Algorithm, every call:
 *  1. resolve throughputs (measured, else relative speed x fleet mean, else
 *     the default) and expected loads;
 *  2. A0 = the current assignment with dead owners' partitions re-placed
 *     greedily (these moves are never optional). If A0's makespan is within
 *     `hysteresis` of a lower bound (longest partition; LP fluid bound) and
 *     no deadline is late, keep A0: no candidate could pass step 4;
 *  3. two candidates. Repair: steepest descent from A0 over single moves and
 *     pairwise swaps that lower the objective. Reshuffle: a fresh LPT
 *     (partitions by expected seconds of work, each to the worker where it
 *     would finish first), then the same descent, also taking moves that only
 *     even out the other workers (lower sum of T_w^2). Partitions younger than
 *     min_dwell_s with their owner are pinned unless their deadline is at
 *     risk;
 *  4. hysteresis: a candidate replaces A0 only if it cuts the makespan by more
 *     than `hysteresis` (or cuts the deadline penalty) AND the gain exceeds
 *     move_cost_s times the most handoffs any one worker takes part in; the
 *     reshuffle must also beat the repair by the hysteresis margin;
 *  5. idle partitions (no load) stay with their owner when it serves or holds
 *     that modality, else go to the least loaded worker that does.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/sched.h"

#define M KILN_SCHED_MODALITIES

static const char *const kiln_sched_mod_names[M] = {"transcribe", "speak", "image"};

const char *kiln_sched_modality_name(int modality) {
    return modality >= 0 && modality < M ? kiln_sched_mod_names[modality] : "?";
}

int kiln_sched_modality_parse(const char *name) {
    for (int m = 0; name && m < M; m++)
        if (!strcmp(name, kiln_sched_mod_names[m]))
            return m;
    return -1;
}

kiln_sched_params_t kiln_sched_default_params(void) {
    kiln_sched_params_t sp;
    memset(&sp, 0, sizeof(sp));
    for (int m = 0; m < M; m++) {
        sp.swap_cost_s[m] = 10.0;
        sp.default_throughput[m] = 1.0;
    }
    sp.hysteresis = 0.10;
    sp.move_cost_s = 2.0;
    sp.min_dwell_s = 30.0;
    sp.deadline_weight = 4.0;
    sp.lookahead_s = 60.0;
    sp.model_slice_s = 120.0;
    sp.target_drain_s = 300.0;
    sp.max_iterations = 100;
    sp.rate_tau_s = 30.0;
    for (int m = 0; m < M; m++)
        sp.default_job_units[m] = 30.0;
    return sp;
}

int kiln_sched_modality_fleet(const kiln_sched_worker_t *in, int n, int modality,
                              kiln_sched_worker_t *out) {
    if (n < 0 || (n > 0 && (!in || !out)) || modality < 0 || modality >= M)
        return -1;
    int live = 0;
    for (int i = 0; i < n; i++) {
        out[i] = in[i];
        if (!out[i].resident[modality])
            out[i].alive = 0;
        live += out[i].alive != 0;
    }
    return live;
}

double kiln_sched_units_per_job(const kiln_sched_params_t *params, int modality,
                                const kiln_sched_est_t *est, const kiln_sched_obs_t *obs,
                                double modality_mean) {
    if (obs && obs->rows_known > 0 && obs->units_known > 0)
        return obs->units_known / (double)obs->rows_known;
    if (est && est->units_per_job > 0)
        return est->units_per_job;
    if (modality_mean > 0)
        return modality_mean;
    double d = params && modality >= 0 && modality < M ? params->default_job_units[modality] : 0;
    return d > 0 ? d : 1.0;
}

void kiln_sched_estimate(const kiln_sched_params_t *params, kiln_sched_est_t *est,
                         const kiln_sched_obs_t *obs, double modality_mean, double dt,
                         kiln_sched_partition_t *part) {
    kiln_sched_params_t defp;
    if (!est || !obs || !part)
        return;
    if (!params) {
        defp = kiln_sched_default_params();
        params = &defp;
    }
    /* remember the partition's mean job size (open rows and new rows) */
    int64_t kn = obs->rows_known + obs->arrived_rows_known;
    double ku = obs->units_known + obs->arrived_units_known;
    if (kn > 0 && ku > 0)
        est->units_per_job = est->units_per_job > 0
                                 ? 0.7 * est->units_per_job + 0.3 * (ku / (double)kn)
                                 : ku / (double)kn;
    double upj = kiln_sched_units_per_job(params, part->modality, est, obs, modality_mean);
    int64_t rows = obs->rows > 0 ? obs->rows : 0;
    int64_t known = obs->rows_known > 0 ? (obs->rows_known < rows ? obs->rows_known : rows) : 0;
    int64_t lag = rows;
    if (obs->high_watermark >= 0) {
        int64_t c = obs->committed > 0 ? obs->committed : 0;
        lag = obs->high_watermark > c ? obs->high_watermark - c : 0;
    }
    int64_t no_row = lag > rows ? lag - rows : 0;
    double unknown = (double)(rows - known) + (double)no_row;
    part->backlog_units = (obs->units_known > 0 ? obs->units_known : 0) + unknown * upj;
    part->queued_jobs = rows + no_row;
    part->max_job_units = obs->max_units_known > 0 ? obs->max_units_known : 0;
    if (unknown > 0 && upj > part->max_job_units)
        part->max_job_units = upj;
    /* arrivals since the previous round */
    double arrived = -1;
    int64_t new_rows = obs->arrived_rows > 0 ? obs->arrived_rows : 0;
    int64_t new_known = obs->arrived_rows_known > 0 ? obs->arrived_rows_known : 0;
    if (new_known > new_rows)
        new_known = new_rows;
    double new_units = obs->arrived_units_known > 0 ? obs->arrived_units_known : 0;
    if (obs->high_watermark >= 0) {
        if (est->have_hw && obs->high_watermark >= est->last_hw) {
            int64_t msgs = obs->high_watermark - est->last_hw;
            arrived = new_units + (double)(msgs > new_known ? msgs - new_known : 0) * upj;
        }
        est->last_hw = obs->high_watermark;
        est->have_hw = 1;
    } else { /* rows only; the next watermark primes again (no double count) */
        arrived = new_units + (double)(new_rows - new_known) * upj;
        est->have_hw = 0;
    }
    if (arrived >= 0 && dt > 0) {
        double inst = arrived / dt;
        double tau = params->rate_tau_s > 0 ? params->rate_tau_s : 30.0;
        est->rate_units_s =
            est->samples ? est->rate_units_s + (1.0 - exp(-dt / tau)) * (inst - est->rate_units_s)
                         : inst;
        est->samples++;
    }
    part->rate_units_s = est->rate_units_s;
}

/* The inputs of one planning call, resolved once. */
typedef struct kiln_plan_s {
    const kiln_sched_params_t *sp;
    const kiln_sched_partition_t *parts;
    const kiln_sched_worker_t *ws;
    int np, nw;
    double *load;   /* [np] expected load, work units (backlog + rate * lookahead) */
    double *jobu;   /* [np] largest job, work units */
    double *tput;   /* [nw*M] resolved throughput, > 0 */
    int *slots;     /* [nw] */
    int *live;      /* [nlive] indices of live workers */
    int nlive;
    int *pin;       /* [np] 1: must stay with its owner */
    int *dl;        /* [ndl] loaded partitions with a finite deadline */
    int ndl;
    int *order;     /* [np] loaded partitions, largest expected work first */
    int nord;
    double mtput[KILN_SCHED_MODALITIES]; /* mean resolved throughput of live workers */
} kiln_plan_t;

/* One assignment of the loaded partitions and its per-worker sums. */
typedef struct kiln_asg_s {
    int *a;         /* [np] worker or -1 */
    double *work;   /* [nw] sum load / tput, seconds */
    double *f1;     /* [nw] longest single job on one slot, seconds ... */
    int *f1p;       /* [nw] ... its partition ... */
    double *f2;     /* [nw] ... and the second longest (for O(1) removal) */
    int *cnt;       /* [nw*M] loaded partitions per modality */
    double *T;      /* [nw] expected drain, seconds */
} kiln_asg_t;

/* Scores of an assignment: J = makespan + deadline_weight * penalty; S breaks ties. */
typedef struct kiln_score_s {
    double mk, pen, J, S;
} kiln_score_t;

/* The three largest T_w of the live workers and sum of T_w^2, for O(1) move scoring. */
typedef struct kiln_top_s {
    double t[3];
    int w[3];
    double S;
} kiln_top_t;

static int kiln_plan_mod_(const kiln_plan_t *pl, int p) {
    return pl->parts[p].modality;
}

static double kiln_plan_job_s_(const kiln_plan_t *pl, int p, int w) {
    return pl->jobu[p] * pl->slots[w] / pl->tput[w * M + kiln_plan_mod_(pl, p)];
}

static double kiln_plan_work_s_(const kiln_plan_t *pl, int p, int w) {
    return pl->load[p] / pl->tput[w * M + kiln_plan_mod_(pl, p)];
}

/*
 * T_w from a worker's sums: work (or the longest job), one load per modality
 * it must serve but has not loaded, and, when it serves several modalities,
 * a load of each of them per model_slice_s of work (the worker time-slices
 * between models while more than one has jobs waiting: every cycle loads
 * each model once).
 */
static double kiln_plan_time_(const kiln_plan_t *pl, int w, double work, double fl,
                              const int *cnt) {
    double t = work > fl ? work : fl, sw = 0;
    int k = 0;
    for (int m = 0; m < M; m++) {
        if (cnt[m] == 0)
            continue;
        k++;
        sw += pl->sp->swap_cost_s[m];
        if (!pl->ws[w].resident[m])
            t += pl->sp->swap_cost_s[m];
    }
    if (k == 0)
        return 0;
    if (k > 1 && pl->sp->model_slice_s > 0)
        t += work / pl->sp->model_slice_s * sw;
    return t;
}

/* T_w if partition rm (on w, or -1) left it and partition add (or -1) joined. */
static double kiln_asg_eval_(const kiln_plan_t *pl, const kiln_asg_t *as, int w, int rm,
                             int add) {
    double work = as->work[w], fl = as->f1[w];
    int cnt[M];
    memcpy(cnt, &as->cnt[w * M], sizeof(cnt));
    if (rm >= 0) {
        work -= kiln_plan_work_s_(pl, rm, w);
        cnt[kiln_plan_mod_(pl, rm)]--;
        if (rm == as->f1p[w])
            fl = as->f2[w];
    }
    if (add >= 0) {
        double js = kiln_plan_job_s_(pl, add, w);
        work += kiln_plan_work_s_(pl, add, w);
        cnt[kiln_plan_mod_(pl, add)]++;
        if (js > fl)
            fl = js;
    }
    return kiln_plan_time_(pl, w, work > 0 ? work : 0, fl, cnt);
}

static void kiln_asg_floor_add_(kiln_asg_t *as, int w, int p, double js) {
    if (js > as->f1[w]) {
        as->f2[w] = as->f1[w];
        as->f1[w] = js;
        as->f1p[w] = p;
    } else if (js > as->f2[w]) {
        as->f2[w] = js;
    }
}

static void kiln_asg_add_(const kiln_plan_t *pl, kiln_asg_t *as, int p, int w) {
    as->a[p] = w;
    as->work[w] += kiln_plan_work_s_(pl, p, w);
    as->cnt[w * M + kiln_plan_mod_(pl, p)]++;
    kiln_asg_floor_add_(as, w, p, kiln_plan_job_s_(pl, p, w));
    as->T[w] = kiln_asg_eval_(pl, as, w, -1, -1);
}

static void kiln_asg_remove_(const kiln_plan_t *pl, kiln_asg_t *as, int p) {
    int w = as->a[p], n = 0;
    as->a[p] = -1;
    as->cnt[w * M + kiln_plan_mod_(pl, p)]--;
    for (int m = 0; m < M; m++)
        n += as->cnt[w * M + m];
    if (n == 0) { /* no float residue on an emptied worker */
        as->work[w] = as->f1[w] = as->f2[w] = 0;
        as->f1p[w] = -1;
    } else {
        as->work[w] -= kiln_plan_work_s_(pl, p, w);
        if (as->work[w] < 0)
            as->work[w] = 0;
        if (p == as->f1p[w] || kiln_plan_job_s_(pl, p, w) >= as->f2[w]) {
            as->f1[w] = as->f2[w] = 0;
            as->f1p[w] = -1;
            for (int i = 0; i < pl->nord; i++)
                if (as->a[pl->order[i]] == w)
                    kiln_asg_floor_add_(as, w, pl->order[i], kiln_plan_job_s_(pl, pl->order[i], w));
        }
    }
    as->T[w] = kiln_asg_eval_(pl, as, w, -1, -1);
}

static void kiln_asg_move_(const kiln_plan_t *pl, kiln_asg_t *as, int p, int w) {
    if (as->a[p] >= 0)
        kiln_asg_remove_(pl, as, p);
    kiln_asg_add_(pl, as, p, w);
}

/* Deadline penalty of partition p if its worker drains in t seconds. */
static double kiln_plan_late_(const kiln_plan_t *pl, int p, double t) {
    const kiln_sched_partition_t *pp = &pl->parts[p];
    double late = t - pp->deadline_s;
    return late > 0 ? (1.0 + (pp->max_priority > 0 ? pp->max_priority : 0)) * late : 0;
}

static void kiln_asg_top_(const kiln_plan_t *pl, const kiln_asg_t *as, kiln_top_t *top) {
    for (int k = 0; k < 3; k++)
        top->t[k] = -1, top->w[k] = -1;
    top->S = 0;
    for (int i = 0; i < pl->nlive; i++) {
        int w = pl->live[i];
        double t = as->T[w];
        top->S += t * t;
        for (int k = 0; k < 3; k++) {
            if (t > top->t[k]) {
                for (int j = 2; j > k; j--)
                    top->t[j] = top->t[j - 1], top->w[j] = top->w[j - 1];
                top->t[k] = t, top->w[k] = w;
                break;
            }
        }
    }
}

static kiln_score_t kiln_score_make_(const kiln_plan_t *pl, double mk, double S, double pen) {
    kiln_score_t sc = {mk, pen, mk + pl->sp->deadline_weight * pen, S};
    return sc;
}

static kiln_score_t kiln_asg_score_(const kiln_plan_t *pl, const kiln_asg_t *as) {
    kiln_top_t top;
    double pen = 0;
    kiln_asg_top_(pl, as, &top);
    for (int i = 0; i < pl->ndl; i++)
        if (as->a[pl->dl[i]] >= 0)
            pen += kiln_plan_late_(pl, pl->dl[i], as->T[as->a[pl->dl[i]]]);
    return kiln_score_make_(pl, top.t[0] > 0 ? top.t[0] : 0, top.S, pen);
}

/*
 * Score after moving p to worker `to` and, when q >= 0 (q is on `to`), q to
 * p's worker; O(1) plus the deadline list, nothing is changed.
 */
static kiln_score_t kiln_asg_score_move_(const kiln_plan_t *pl, const kiln_asg_t *as,
                                         const kiln_top_t *top, int p, int to, int q) {
    int from = as->a[p];
    double ta = kiln_asg_eval_(pl, as, from, p, q), tb = kiln_asg_eval_(pl, as, to, q, p);
    double mk = ta > tb ? ta : tb, pen = 0;
    for (int k = 0; k < 3; k++)
        if (top->w[k] >= 0 && top->w[k] != from && top->w[k] != to) {
            if (top->t[k] > mk)
                mk = top->t[k];
            break;
        }
    double S = top->S - as->T[from] * as->T[from] - as->T[to] * as->T[to] + ta * ta + tb * tb;
    for (int i = 0; i < pl->ndl; i++) {
        int r = pl->dl[i], w = r == p ? to : r == q ? from : as->a[r];
        if (w >= 0)
            pen += kiln_plan_late_(pl, r, w == from ? ta : w == to ? tb : as->T[w]);
    }
    return kiln_score_make_(pl, mk, S, pen);
}

/*
 * 1 if score a is strictly better than b: objective first, then (balance)
 * the sum of squares, which spreads the non-bottleneck workers evenly.
 */
static int kiln_score_better_(kiln_score_t a, kiln_score_t b, int balance) {
    double ej = 1e-9 * (b.J > 1 ? b.J : 1), es = 1e-9 * (b.S > 1 ? b.S : 1);
    if (a.J < b.J - ej)
        return 1;
    return balance && a.J <= b.J + ej && a.S < b.S - es;
}

static void kiln_asg_free_(kiln_asg_t *as) {
    free(as->a);
    free(as->work);
    free(as->f1);
    free(as->f1p);
    free(as->f2);
    free(as->cnt);
    free(as->T);
    memset(as, 0, sizeof(*as));
}

static int kiln_asg_init_(const kiln_plan_t *pl, kiln_asg_t *as) {
    size_t n1 = pl->np ? pl->np : 1, w1 = pl->nw ? pl->nw : 1;
    as->a = malloc(sizeof(int) * n1);
    as->work = calloc(w1, sizeof(double));
    as->f1 = calloc(w1, sizeof(double));
    as->f1p = malloc(sizeof(int) * w1);
    as->f2 = calloc(w1, sizeof(double));
    as->cnt = calloc(w1 * M, sizeof(int));
    as->T = calloc(w1, sizeof(double));
    if (!as->a || !as->work || !as->f1 || !as->f1p || !as->f2 || !as->cnt || !as->T) {
        kiln_asg_free_(as);
        return -1;
    }
    for (int p = 0; p < pl->np; p++)
        as->a[p] = -1;
    for (int w = 0; w < pl->nw; w++)
        as->f1p[w] = -1;
    return 0;
}

static int kiln_asg_copy_(const kiln_plan_t *pl, kiln_asg_t *dst, const kiln_asg_t *src) {
    if (kiln_asg_init_(pl, dst))
        return -1;
    memcpy(dst->a, src->a, sizeof(int) * pl->np);
    memcpy(dst->work, src->work, sizeof(double) * pl->nw);
    memcpy(dst->f1, src->f1, sizeof(double) * pl->nw);
    memcpy(dst->f1p, src->f1p, sizeof(int) * pl->nw);
    memcpy(dst->f2, src->f2, sizeof(double) * pl->nw);
    memcpy(dst->cnt, src->cnt, sizeof(int) * pl->nw * M);
    memcpy(dst->T, src->T, sizeof(double) * pl->nw);
    return 0;
}

/*
 * Greedy placement of loaded partition p: the live worker where it would
 * finish first (its T after adding p, plus p's own deadline penalty), ties
 * to the current owner, then to the lower index.
 */
static void kiln_asg_place_greedy_(const kiln_plan_t *pl, kiln_asg_t *as, int p) {
    int best = -1;
    double best_key = 0;
    for (int i = 0; i < pl->nlive; i++) {
        int w = pl->live[i];
        double t = kiln_asg_eval_(pl, as, w, -1, p);
        double key = t + pl->sp->deadline_weight * kiln_plan_late_(pl, p, t);
        double eps = 1e-9 * (best_key > 1 ? best_key : 1);
        int tie_owner = key <= best_key + eps && w == pl->parts[p].owner;
        if (best < 0 || key < best_key - eps || tie_owner) {
            best = w;
            best_key = key;
        }
    }
    kiln_asg_add_(pl, as, p, best);
}

/*
 * Steepest-descent local search over single moves and pairwise swaps of the
 * unpinned loaded partitions. Moves start from the three most loaded workers,
 * swaps from a bottleneck worker (the ones that can lower the makespan), so
 * an iteration costs O(P * W / W * 3 + P) rather than O(P * W).
 */
static void kiln_asg_local_search_(const kiln_plan_t *pl, kiln_asg_t *as, int balance) {
    for (int it = 0; it < pl->sp->max_iterations; it++) {
        kiln_top_t top;
        kiln_asg_top_(pl, as, &top);
        kiln_score_t cur = kiln_asg_score_(pl, as), best = cur;
        int bp = -1, bw = -1, bq = -1;
        for (int i = 0; i < pl->nord; i++) {
            int p = pl->order[i], from = as->a[p];
            /* moves out of the three most loaded workers (and, with deadlines,
             * of any worker: a late partition may sit on a light one) */
            if (pl->pin[p] || (pl->ndl == 0 && from != top.w[0] && from != top.w[1] &&
                               from != top.w[2]))
                continue;
            for (int j = 0; j < pl->nlive; j++) {
                int w = pl->live[j];
                if (w == from)
                    continue;
                kiln_score_t sc = kiln_asg_score_move_(pl, as, &top, p, w, -1);
                if (kiln_score_better_(sc, best, balance)) {
                    best = sc;
                    bp = p, bw = w, bq = -1;
                }
            }
        }
        for (int i = 0; i < pl->nord; i++) {
            int p = pl->order[i], wp = as->a[p];
            if (pl->pin[p] || as->T[wp] < cur.mk - 1e-9 * (cur.mk > 1 ? cur.mk : 1))
                continue;
            for (int k = 0; k < pl->nord; k++) {
                int q = pl->order[k], wq = as->a[q];
                if (pl->pin[q] || wq == wp)
                    continue;
                kiln_score_t sc = kiln_asg_score_move_(pl, as, &top, p, wq, q);
                if (kiln_score_better_(sc, best, balance)) {
                    best = sc;
                    bp = p, bw = wq, bq = q;
                }
            }
        }
        if (bp < 0)
            return;
        int from = as->a[bp];
        kiln_asg_move_(pl, as, bp, bw);
        if (bq >= 0)
            kiln_asg_move_(pl, as, bq, from);
    }
}

/*
 * A lower bound on the makespan of any assignment (swap costs left out): the
 * longest single partition on its best worker, and the fluid bound from LP
 * duality with prices 1/mean throughput: sum_p load_p / mtput[m_p] over
 * sum_w max_m tput_w[m] / mtput[m]. Exact when speeds are proportional.
 */
static double kiln_plan_bound_(const kiln_plan_t *pl) {
    double num = 0, den = 0, lb = 0;
    for (int i = 0; i < pl->nord; i++) {
        int p = pl->order[i], m = kiln_plan_mod_(pl, p);
        double alone = HUGE_VAL;
        num += pl->load[p] / pl->mtput[m];
        for (int k = 0; k < pl->nlive; k++) {
            int w = pl->live[k];
            double t = kiln_plan_work_s_(pl, p, w), js = kiln_plan_job_s_(pl, p, w);
            if (js > t)
                t = js;
            if (t < alone)
                alone = t;
        }
        if (alone > lb)
            lb = alone;
    }
    for (int k = 0; k < pl->nlive; k++) {
        double mx = 0;
        for (int m = 0; m < M; m++)
            if (pl->tput[pl->live[k] * M + m] / pl->mtput[m] > mx)
                mx = pl->tput[pl->live[k] * M + m] / pl->mtput[m];
        den += mx;
    }
    if (den > 0 && num / den > lb)
        lb = num / den;
    return lb;
}

/*
 * Loaded partitions whose owner in `as` differs from `base`; *serial gets the
 * most moves any one worker takes part in (handoffs on different workers
 * overlap, those on one worker delay it one after the other).
 */
static int kiln_asg_moves_(const kiln_plan_t *pl, const kiln_asg_t *as, const kiln_asg_t *base,
                           int *serial) {
    int n = 0;
    *serial = 0;
    for (int k = 0; k < pl->nlive; k++) {
        int w = pl->live[k], c = 0;
        for (int i = 0; i < pl->nord; i++) {
            int p = pl->order[i];
            if (as->a[p] != base->a[p] && (as->a[p] == w || base->a[p] == w))
                c++;
        }
        if (c > *serial)
            *serial = c;
    }
    for (int i = 0; i < pl->nord; i++)
        n += as->a[pl->order[i]] != base->a[pl->order[i]];
    return n;
}

/* Resolves unmeasured throughputs: relative speed x fleet mean, else default. */
static void kiln_plan_resolve_tput_(kiln_plan_t *pl) {
    double mean[M];
    for (int m = 0; m < M; m++) {
        double s = 0;
        int n = 0;
        for (int w = 0; w < pl->nw; w++)
            if (pl->ws[w].throughput[m] > 0)
                s += pl->ws[w].throughput[m], n++;
        mean[m] = n ? s / n : 0;
    }
    for (int w = 0; w < pl->nw; w++) {
        double rs = 0;
        int rn = 0;
        for (int m = 0; m < M; m++)
            if (pl->ws[w].throughput[m] > 0 && mean[m] > 0)
                rs += pl->ws[w].throughput[m] / mean[m], rn++;
        double rel = rn ? rs / rn : 1.0;
        for (int m = 0; m < M; m++) {
            double t = pl->ws[w].throughput[m];
            if (!(t > 0))
                t = (mean[m] > 0 ? mean[m] : pl->sp->default_throughput[m]) * rel;
            if (!(t > 0))
                t = 1.0;
            pl->tput[w * M + m] = t;
        }
    }
}

/* Order: finite deadlines first (earliest first), then expected seconds of work. */
static int kiln_plan_cmp_(const kiln_plan_t *pl, int p, int q) {
    double dp = pl->parts[p].deadline_s, dq = pl->parts[q].deadline_s;
    int fp = isfinite(dp), fq = isfinite(dq);
    if (fp != fq)
        return fq - fp;
    if (fp && dp != dq)
        return dp < dq ? -1 : 1;
    double sp_ = pl->load[p] / pl->mtput[kiln_plan_mod_(pl, p)];
    double sq_ = pl->load[q] / pl->mtput[kiln_plan_mod_(pl, q)];
    if (sp_ != sq_)
        return sp_ > sq_ ? -1 : 1;
    return p - q;
}

/* Insertion sort: stable, reentrant, and the lists are short. */
static void kiln_plan_sort_(kiln_plan_t *pl) {
    for (int i = 1; i < pl->nord; i++) {
        int v = pl->order[i], j = i - 1;
        while (j >= 0 && kiln_plan_cmp_(pl, pl->order[j], v) > 0) {
            pl->order[j + 1] = pl->order[j];
            j--;
        }
        pl->order[j + 1] = v;
    }
}

/* Places idle partitions: stay with an owner that serves or holds the modality. */
static void kiln_plan_place_idle_(const kiln_plan_t *pl, const kiln_asg_t *as, int *assign) {
    for (int p = 0; p < pl->np; p++) {
        if (pl->load[p] > 0) {
            assign[p] = as->a[p];
            continue;
        }
        int m = kiln_plan_mod_(pl, p), own = pl->parts[p].owner;
        int own_ok = own >= 0 && own < pl->nw && pl->ws[own].alive;
        if (own_ok && (as->cnt[own * M + m] > 0 || pl->ws[own].resident[m])) {
            assign[p] = own;
            continue;
        }
        int best = -1;
        for (int pass = 0; pass < 2 && best < 0; pass++)
            for (int i = 0; i < pl->nlive; i++) {
                int w = pl->live[i];
                int ok = pass == 0 ? as->cnt[w * M + m] > 0 : pl->ws[w].resident[m];
                if (ok && (best < 0 || as->T[w] < as->T[best]))
                    best = w;
            }
        if (best < 0 && own_ok)
            best = own;
        for (int i = 0; best < 0 && i < pl->nlive; i++)
            if (best < 0 || as->T[pl->live[i]] < as->T[best])
                best = pl->live[i];
        assign[p] = best;
    }
}

static void kiln_plan_free_(kiln_plan_t *pl) {
    free(pl->load);
    free(pl->jobu);
    free(pl->tput);
    free(pl->slots);
    free(pl->live);
    free(pl->pin);
    free(pl->dl);
    free(pl->order);
}

static kiln_err_t kiln_plan_init_(kiln_plan_t *pl, const kiln_sched_params_t *sp,
                                  const kiln_sched_partition_t *parts, int np,
                                  const kiln_sched_worker_t *ws, int nw) {
    memset(pl, 0, sizeof(*pl));
    pl->sp = sp, pl->parts = parts, pl->ws = ws, pl->np = np, pl->nw = nw;
    size_t n1 = np ? np : 1, w1 = nw ? nw : 1;
    pl->load = calloc(n1, sizeof(double));
    pl->jobu = calloc(n1, sizeof(double));
    pl->tput = calloc(w1 * M, sizeof(double));
    pl->slots = calloc(w1, sizeof(int));
    pl->live = calloc(w1, sizeof(int));
    pl->pin = calloc(n1, sizeof(int));
    pl->dl = calloc(n1, sizeof(int));
    pl->order = calloc(n1, sizeof(int));
    if (!pl->load || !pl->jobu || !pl->tput || !pl->slots || !pl->live || !pl->pin || !pl->dl ||
        !pl->order) {
        kiln_plan_free_(pl);
        return KILN_ERR__NOMEM;
    }
    for (int w = 0; w < nw; w++) {
        pl->slots[w] = ws[w].slots > 0 ? ws[w].slots : 1;
        if (ws[w].alive)
            pl->live[pl->nlive++] = w;
    }
    kiln_plan_resolve_tput_(pl);
    for (int m = 0; m < M; m++) {
        double s = 0;
        for (int i = 0; i < pl->nlive; i++)
            s += pl->tput[pl->live[i] * M + m];
        pl->mtput[m] = pl->nlive ? s / pl->nlive : 1.0;
    }
    for (int p = 0; p < np; p++) {
        const kiln_sched_partition_t *pp = &parts[p];
        double b = pp->backlog_units > 0 ? pp->backlog_units : 0;
        double r = pp->rate_units_s > 0 ? pp->rate_units_s : 0;
        pl->load[p] = b + r * (sp->lookahead_s > 0 ? sp->lookahead_s : 0);
        pl->jobu[p] = pp->max_job_units > 0   ? pp->max_job_units
                      : pp->queued_jobs > 0 ? b / (double)pp->queued_jobs
                                            : 0;
        if (pl->jobu[p] > b)
            pl->jobu[p] = b; /* a job larger than the backlog is already partly done */
        if (pl->load[p] > 0) {
            pl->order[pl->nord++] = p;
            if (isfinite(pp->deadline_s))
                pl->dl[pl->ndl++] = p;
        }
    }
    kiln_plan_sort_(pl);
    return KILN_OK;
}

kiln_err_t kiln_sched_plan(const kiln_sched_params_t *params,
                           const kiln_sched_partition_t *parts, int n_parts,
                           const kiln_sched_worker_t *workers, int n_workers, int *assign,
                           kiln_sched_stats_t *stats) {
    kiln_sched_params_t defp;
    if (n_parts < 0 || n_workers < 0 || (n_parts > 0 && (!parts || !assign)) ||
        (n_workers > 0 && !workers))
        return KILN_ERR__INVALID_ARG;
    for (int p = 0; p < n_parts; p++)
        if (parts[p].modality < 0 || parts[p].modality >= M)
            return KILN_ERR__INVALID_ARG;
    if (!params) {
        defp = kiln_sched_default_params();
        params = &defp;
    }
    kiln_sched_stats_t st;
    memset(&st, 0, sizeof(st));

    kiln_plan_t pl;
    kiln_err_t err = kiln_plan_init_(&pl, params, parts, n_parts, workers, n_workers);
    if (err)
        return err;
    st.live_workers = pl.nlive;
    for (int p = 0; p < n_parts; p++) {
        int own = parts[p].owner;
        if (own < 0 || own >= n_workers || !workers[own].alive)
            st.orphans++;
    }
    if (pl.nlive == 0) {
        for (int p = 0; p < n_parts; p++)
            assign[p] = -1;
        st.moved = 0;
        for (int p = 0; p < n_parts; p++)
            st.moved += parts[p].owner >= 0;
        if (stats)
            *stats = st;
        kiln_plan_free_(&pl);
        return KILN_OK;
    }

    kiln_asg_t a0, c1, c2;
    memset(&c1, 0, sizeof(c1));
    memset(&c2, 0, sizeof(c2));
    if (kiln_asg_init_(&pl, &a0)) {
        kiln_plan_free_(&pl);
        return KILN_ERR__NOMEM;
    }
    /* A0: keep live owners, then re-place orphans largest first */
    for (int i = 0; i < pl.nord; i++) {
        int p = pl.order[i], own = parts[p].owner;
        if (own >= 0 && own < n_workers && workers[own].alive)
            kiln_asg_add_(&pl, &a0, p, own);
    }
    for (int i = 0; i < pl.nord; i++)
        if (a0.a[pl.order[i]] < 0)
            kiln_asg_place_greedy_(&pl, &a0, pl.order[i]);
    kiln_score_t s0 = kiln_asg_score_(&pl, &a0);

    /* pins: young placements stay unless their deadline is at risk */
    for (int i = 0; i < pl.nord; i++) {
        int p = pl.order[i], own = parts[p].owner;
        int at_risk = isfinite(parts[p].deadline_s) && a0.T[a0.a[p]] > parts[p].deadline_s;
        pl.pin[p] = a0.a[p] == own && parts[p].owned_for_s < params->min_dwell_s && !at_risk;
    }

    /* no candidate can pass the hysteresis test: keep A0 without searching */
    const kiln_asg_t *best = &a0;
    if (s0.pen <= 0 && s0.mk * (1.0 - params->hysteresis) <= kiln_plan_bound_(&pl))
        goto place;

    /* candidate 1: local search from A0; candidate 2: fresh LPT + local search */
    if (kiln_asg_copy_(&pl, &c1, &a0) || kiln_asg_init_(&pl, &c2)) {
        err = KILN_ERR__NOMEM;
        goto done;
    }
    kiln_asg_local_search_(&pl, &c1, 0);
    for (int i = 0; i < pl.nord; i++)
        if (pl.pin[pl.order[i]])
            kiln_asg_add_(&pl, &c2, pl.order[i], parts[pl.order[i]].owner);
    for (int i = 0; i < pl.nord; i++)
        if (c2.a[pl.order[i]] < 0)
            kiln_asg_place_greedy_(&pl, &c2, pl.order[i]);
    kiln_asg_local_search_(&pl, &c2, 1);

    double best_cost = s0.J;
    const kiln_asg_t *cands[2] = {&c1, &c2};
    for (int k = 0; k < 2; k++) {
        kiln_score_t sc = kiln_asg_score_(&pl, cands[k]);
        int serial, moves = kiln_asg_moves_(&pl, cands[k], &a0, &serial);
        if (moves == 0)
            continue;
        double cost = serial * params->move_cost_s;
        int faster = sc.mk < s0.mk * (1.0 - params->hysteresis);
        int safer = sc.pen < s0.pen - 1e-9 && sc.mk <= s0.mk * (1.0 + params->hysteresis);
        int worth = s0.J - sc.J > cost;
        /* the reshuffle (candidate 2) must beat the local repair (candidate 1) by
         * the hysteresis margin too: fewer moves for the same drain */
        double bar = best == &a0 ? best_cost : best_cost * (1.0 - params->hysteresis);
        if ((faster || safer) && worth && sc.J + cost < bar) {
            best = cands[k];
            best_cost = sc.J + cost;
        } else if (kiln_score_better_(sc, s0, 0)) {
            st.held_by_hysteresis = best == &a0;
        }
    }
    if (best != &a0)
        st.held_by_hysteresis = 0;

place:
    kiln_plan_place_idle_(&pl, best, assign);
    kiln_score_t sb = kiln_asg_score_(&pl, best);
    st.drain_current_s = s0.mk;
    st.penalty_current = s0.pen;
    st.drain_planned_s = sb.mk;
    st.penalty_planned = sb.pen;
    for (int p = 0; p < n_parts; p++)
        st.moved += assign[p] != parts[p].owner;
    if (stats)
        *stats = st;
done:
    kiln_asg_free_(&a0);
    kiln_asg_free_(&c1);
    kiln_asg_free_(&c2);
    kiln_plan_free_(&pl);
    return err;
}

kiln_err_t kiln_sched_desired_workers(const kiln_sched_params_t *params,
                                      const kiln_sched_partition_t *parts, int n_parts,
                                      const kiln_sched_worker_t *workers, int n_workers,
                                      int *desired) {
    kiln_sched_params_t defp;
    if (!desired || n_parts < 0 || n_workers < 0 || (n_parts > 0 && !parts) ||
        (n_workers > 0 && !workers))
        return KILN_ERR__INVALID_ARG;
    if (!params) {
        defp = kiln_sched_default_params();
        params = &defp;
    }
    kiln_plan_t pl;
    kiln_err_t err = kiln_plan_init_(&pl, params, parts, n_parts, workers, n_workers);
    if (err)
        return err;
    double target = params->target_drain_s > 0 ? params->target_drain_s : 1.0;
    for (int m = 0; m < M; m++) {
        double load = 0, backlog = 0, tsum = 0;
        int np = 0, nt = 0;
        for (int p = 0; p < n_parts; p++) {
            if (parts[p].modality != m)
                continue;
            np++;
            backlog += parts[p].backlog_units > 0 ? parts[p].backlog_units : 0;
            load += (parts[p].backlog_units > 0 ? parts[p].backlog_units : 0) +
                    (parts[p].rate_units_s > 0 ? parts[p].rate_units_s : 0) * target;
        }
        for (int i = 0; i < pl.nlive; i++)
            tsum += pl.tput[pl.live[i] * M + m], nt++;
        for (int w = 0; nt == 0 && w < n_workers; w++)
            tsum += pl.tput[w * M + m]; /* nobody alive: size by what we knew */
        if (nt == 0)
            nt = n_workers;
        double per = nt > 0 ? tsum / nt : params->default_throughput[m];
        if (!(per > 0))
            per = 1.0;
        double d = ceil(load / (per * target) - 1e-9);
        if (d > np)
            d = np;
        if (backlog > 0 && d < 1)
            d = 1;
        desired[m] = load > 0 ? (int)d : 0;
    }
    kiln_plan_free_(&pl);
    return KILN_OK;
}
