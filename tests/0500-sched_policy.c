/*
 * tests/0500-sched_policy.c - properties of kiln_sched_plan() and
 * kiln_sched_desired_workers() on hand-made snapshots (no I/O, < 1 s).
 *
 * Every partition assigned exactly once (or -1 with no live worker), dead
 * workers get nothing, a faster worker gets more work, resident models
 * attract their modality, hysteresis ignores small changes but acts on big
 * ones, the dwell time pins young placements, a deadline at risk moves to
 * spare capacity (and the same move without the deadline is held back),
 * the longest-job floor, the autoscaling signal, and argument checks.
 */
#include "kiln/sched.h"
#include "tests/test.h"

#include <math.h>
#include <string.h>

#define T_ KILN_SCHED_MOD_TRANSCRIBE
#define S_ KILN_SCHED_MOD_SPEAK
#define I_ KILN_SCHED_MOD_IMAGE

static kiln_sched_partition_t part(int mod, int id, double backlog, int owner) {
    kiln_sched_partition_t p;
    memset(&p, 0, sizeof(p));
    p.modality = mod;
    p.partition = id;
    p.backlog_units = backlog;
    p.queued_jobs = backlog > 0 ? (int64_t)(backlog / 30.0) + 1 : 0;
    p.max_job_units = backlog > 0 ? (backlog < 30 ? backlog : 30) : 0;
    p.deadline_s = KILN_SCHED_NO_DEADLINE;
    p.owner = owner;
    p.owned_for_s = 1e6;
    return p;
}

static kiln_sched_worker_t worker(double tput, int resident_mod) {
    kiln_sched_worker_t w;
    memset(&w, 0, sizeof(w));
    w.slots = 4;
    w.alive = 1;
    for (int m = 0; m < KILN_SCHED_MODALITIES; m++) {
        w.throughput[m] = tput;
        w.resident[m] = m == resident_mod;
    }
    return w;
}

/* Work (seconds) assigned to worker w under `assign`. */
static double load_of(const kiln_sched_partition_t *ps, int np, const int *assign,
                      const kiln_sched_worker_t *ws, int w) {
    double s = 0;
    for (int p = 0; p < np; p++)
        if (assign[p] == w)
            s += ps[p].backlog_units / ws[w].throughput[ps[p].modality];
    return s;
}

static kiln_sched_params_t params(void) {
    kiln_sched_params_t sp = kiln_sched_default_params();
    sp.lookahead_s = 0; /* snapshots here carry no rates */
    return sp;
}

static void test_all_assigned(void) {
    SUB_TEST("every partition is assigned exactly once, to a live worker");
    kiln_sched_params_t sp = params();
    kiln_sched_partition_t ps[40];
    kiln_sched_worker_t ws[5];
    int assign[40];
    for (int p = 0; p < 40; p++)
        ps[p] = part(p % 3, p, (p % 4 == 0) ? 0 : 100.0 * (1 + p % 7), -1);
    for (int w = 0; w < 5; w++)
        ws[w] = worker(10.0 + w, w % 3);
    ws[2].alive = 0;
    kiln_sched_stats_t st;
    TEST_CHECK(kiln_sched_plan(&sp, ps, 40, ws, 5, assign, &st) == KILN_OK, "plan failed");
    for (int p = 0; p < 40; p++) {
        TEST_CHECK(assign[p] >= 0 && assign[p] < 5, "partition %d -> %d", p, assign[p]);
        TEST_CHECK(assign[p] != 2, "partition %d went to the dead worker", p);
    }
    TEST_CHECK(st.live_workers == 4, "live %d", st.live_workers);
    TEST_CHECK(st.orphans == 40, "orphans %d", st.orphans);

    for (int w = 0; w < 5; w++)
        ws[w].alive = 0;
    TEST_CHECK(kiln_sched_plan(&sp, ps, 40, ws, 5, assign, &st) == KILN_OK, "plan failed");
    for (int p = 0; p < 40; p++)
        TEST_CHECK(assign[p] == -1, "partition %d -> %d with nobody alive", p, assign[p]);
    TEST_CHECK(kiln_sched_plan(&sp, ps, 40, NULL, 0, assign, NULL) == KILN_OK, "no workers");
    TEST_CHECK(assign[0] == -1, "partition 0 -> %d with no workers", assign[0]);
    SUB_TEST_PASS();
}

static void test_dead_worker(void) {
    SUB_TEST("a dead worker's partitions move to live workers, it gets nothing");
    kiln_sched_params_t sp = params();
    kiln_sched_partition_t ps[12];
    kiln_sched_worker_t ws[3] = {worker(10, T_), worker(10, T_), worker(10, T_)};
    int assign[12];
    for (int p = 0; p < 12; p++)
        ps[p] = part(T_, p, 300, p % 3);
    ws[1].alive = 0;
    kiln_sched_stats_t st;
    TEST_CHECK(kiln_sched_plan(&sp, ps, 12, ws, 3, assign, &st) == KILN_OK, "plan failed");
    int n[3] = {0, 0, 0};
    for (int p = 0; p < 12; p++) {
        TEST_CHECK(assign[p] != 1, "partition %d stays on the dead worker", p);
        if (assign[p] >= 0)
            n[assign[p]]++;
        if (p % 3 != 1)
            TEST_CHECK(assign[p] == p % 3, "live owner's partition %d moved to %d", p, assign[p]);
    }
    TEST_CHECK(n[0] == 6 && n[2] == 6, "split %d/%d", n[0], n[2]);
    TEST_CHECK(st.orphans == 4, "orphans %d", st.orphans);
    SUB_TEST_PASS();
}

static void test_fast_worker(void) {
    SUB_TEST("a 3x faster worker gets about 3x the work");
    kiln_sched_params_t sp = params();
    kiln_sched_partition_t ps[24];
    kiln_sched_worker_t ws[2] = {worker(10, T_), worker(30, T_)};
    int assign[24];
    for (int p = 0; p < 24; p++)
        ps[p] = part(T_, p, 100, -1);
    TEST_CHECK(kiln_sched_plan(&sp, ps, 24, ws, 2, assign, NULL) == KILN_OK, "plan failed");
    int n[2] = {0, 0};
    for (int p = 0; p < 24; p++)
        n[assign[p]]++;
    TEST_CHECK(n[1] == 18 && n[0] == 6, "slow %d, fast %d partitions (want 6/18)", n[0], n[1]);
    double t0 = load_of(ps, 24, assign, ws, 0), t1 = load_of(ps, 24, assign, ws, 1);
    TEST_CHECK(fabs(t0 - t1) < 1e-6, "drain %.1f s vs %.1f s", t0, t1);

    /* unmeasured throughput: relative speed from another modality carries over */
    ws[0].throughput[S_] = 0;
    ws[1].throughput[S_] = 0;
    for (int p = 0; p < 24; p++)
        ps[p].modality = S_;
    TEST_CHECK(kiln_sched_plan(&sp, ps, 24, ws, 2, assign, NULL) == KILN_OK, "plan failed");
    n[0] = n[1] = 0;
    for (int p = 0; p < 24; p++)
        n[assign[p]]++;
    TEST_CHECK(n[1] > n[0], "unmeasured modality: slow %d, fast %d", n[0], n[1]);
    SUB_TEST_PASS();
}

static void test_resident_model(void) {
    SUB_TEST("partitions go to the worker with their model loaded");
    kiln_sched_params_t sp = params();
    kiln_sched_partition_t ps[4] = {part(T_, 0, 200, -1), part(I_, 0, 200, -1),
                                    part(T_, 1, 200, -1), part(I_, 1, 200, -1)};
    kiln_sched_worker_t ws[2] = {worker(10, I_), worker(10, T_)};
    int assign[4];
    TEST_CHECK(kiln_sched_plan(&sp, ps, 4, ws, 2, assign, NULL) == KILN_OK, "plan failed");
    TEST_CHECK(assign[0] == 1 && assign[2] == 1, "transcribe -> %d, %d", assign[0], assign[2]);
    TEST_CHECK(assign[1] == 0 && assign[3] == 0, "image -> %d, %d", assign[1], assign[3]);

    /* an idle partition stays with an owner that holds its model */
    kiln_sched_partition_t idle[2] = {part(S_, 0, 0, 0), part(T_, 2, 0, 0)};
    kiln_sched_worker_t w2[2] = {worker(10, S_), worker(10, T_)};
    TEST_CHECK(kiln_sched_plan(&sp, idle, 2, w2, 2, assign, NULL) == KILN_OK, "plan failed");
    TEST_CHECK(assign[0] == 0, "idle speak partition moved to %d", assign[0]);
    TEST_CHECK(assign[1] == 1, "idle transcribe partition -> %d, want the transcribe worker",
               assign[1]);
    SUB_TEST_PASS();
}

/* Plans, then makes the result the current assignment (held for a long time). */
static void adopt(kiln_sched_partition_t *ps, int np, const int *assign) {
    for (int p = 0; p < np; p++) {
        if (assign[p] != ps[p].owner)
            ps[p].owned_for_s = 1e6;
        ps[p].owner = assign[p];
    }
}

static void test_hysteresis(void) {
    SUB_TEST("hysteresis: small backlog changes move nothing, big ones do");
    kiln_sched_params_t sp = params();
    kiln_sched_partition_t ps[32];
    kiln_sched_worker_t ws[4] = {worker(10, T_), worker(10, T_), worker(10, T_), worker(10, T_)};
    int assign[32];
    kiln_sched_stats_t st;
    for (int p = 0; p < 32; p++)
        ps[p] = part(T_, p, 100.0 + 37.0 * (p % 5), -1);
    TEST_CHECK(kiln_sched_plan(&sp, ps, 32, ws, 4, assign, NULL) == KILN_OK, "plan failed");
    adopt(ps, 32, assign);
    /* same snapshot again: a fixed point */
    TEST_CHECK(kiln_sched_plan(&sp, ps, 32, ws, 4, assign, &st) == KILN_OK, "plan failed");
    TEST_CHECK(st.moved == 0, "replanning the same snapshot moved %d", st.moved);
    /* +-3 % noise on every backlog, 20 rounds: nothing moves */
    uint64_t x = 12345;
    int total = 0;
    for (int round = 0; round < 20; round++) {
        for (int p = 0; p < 32; p++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            double f = 0.97 + 0.06 * (double)(x >> 11) / 9007199254740992.0;
            ps[p].backlog_units = (100.0 + 37.0 * (p % 5)) * f;
        }
        TEST_CHECK(kiln_sched_plan(&sp, ps, 32, ws, 4, assign, &st) == KILN_OK, "plan failed");
        total += st.moved;
        adopt(ps, 32, assign);
    }
    TEST_CHECK(total == 0, "noise moved %d partitions over 20 rounds", total);
    /* one worker's partitions get 4x the backlog: the plan rebalances */
    for (int p = 0; p < 32; p++)
        if (ps[p].owner == 0)
            ps[p].backlog_units *= 4;
    TEST_CHECK(kiln_sched_plan(&sp, ps, 32, ws, 4, assign, &st) == KILN_OK, "plan failed");
    TEST_CHECK(st.moved > 0, "a 4x imbalance moved nothing");
    TEST_CHECK(st.drain_planned_s < 0.8 * st.drain_current_s, "planned %.1f s vs current %.1f s",
               st.drain_planned_s, st.drain_current_s);
    SUB_TEST_PASS();
}

static void test_dwell(void) {
    SUB_TEST("min dwell: a partition placed moments ago stays put");
    kiln_sched_params_t sp = params();
    kiln_sched_partition_t ps[8];
    kiln_sched_worker_t ws[2] = {worker(10, T_), worker(10, T_)};
    int assign[8];
    for (int p = 0; p < 8; p++) {
        ps[p] = part(T_, p, 500, 0); /* all on worker 0: 400 s vs 0 s */
        ps[p].owned_for_s = 1.0;
    }
    TEST_CHECK(kiln_sched_plan(&sp, ps, 8, ws, 2, assign, NULL) == KILN_OK, "plan failed");
    for (int p = 0; p < 8; p++)
        TEST_CHECK(assign[p] == 0, "partition %d moved within its dwell time", p);
    for (int p = 0; p < 8; p++)
        ps[p].owned_for_s = sp.min_dwell_s + 1;
    TEST_CHECK(kiln_sched_plan(&sp, ps, 8, ws, 2, assign, NULL) == KILN_OK, "plan failed");
    int n1 = 0;
    for (int p = 0; p < 8; p++)
        n1 += assign[p] == 1;
    TEST_CHECK(n1 == 4, "after the dwell time %d of 8 moved (want 4)", n1);
    SUB_TEST_PASS();
}

static void test_deadline(void) {
    SUB_TEST("a deadline at risk moves to spare capacity; without it the move is held");
    kiln_sched_params_t sp = params();
    /* worker 0: p0 (10 s, deadline 60 s) + p1 (400 s); worker 1: p2 (400 s); worker 2 idle */
    kiln_sched_partition_t ps[3] = {part(T_, 0, 100, 0), part(T_, 1, 4000, 0),
                                    part(T_, 2, 4000, 1)};
    kiln_sched_worker_t ws[3] = {worker(10, T_), worker(10, T_), worker(10, T_)};
    int assign[4];
    kiln_sched_stats_t st;
    /* p1 and p2 were just placed (pinned); p0 too, but its deadline is at risk */
    for (int p = 0; p < 3; p++)
        ps[p].owned_for_s = 1.0;
    ps[0].deadline_s = 60;
    TEST_CHECK(kiln_sched_plan(&sp, ps, 3, ws, 3, assign, &st) == KILN_OK, "plan failed");
    TEST_CHECK(assign[0] == 2, "deadline partition -> worker %d, want the idle worker 2",
               assign[0]);
    TEST_CHECK(assign[1] == 0 && assign[2] == 1, "pinned partitions moved: %d %d", assign[1],
               assign[2]);
    TEST_CHECK(st.penalty_planned < st.penalty_current, "penalty %.1f -> %.1f",
               st.penalty_current, st.penalty_planned);
    /* the same move buys 2.4 % of makespan without the deadline: held */
    ps[0].deadline_s = KILN_SCHED_NO_DEADLINE;
    for (int p = 0; p < 3; p++)
        ps[p].owned_for_s = 1e6;
    TEST_CHECK(kiln_sched_plan(&sp, ps, 3, ws, 3, assign, &st) == KILN_OK, "plan failed");
    TEST_CHECK(assign[0] == 0 && st.moved == 0, "no deadline: p0 -> %d, moved %d", assign[0],
               st.moved);
    /* a met deadline moves nothing either */
    ps[0].deadline_s = 3600;
    TEST_CHECK(kiln_sched_plan(&sp, ps, 3, ws, 3, assign, &st) == KILN_OK, "plan failed");
    TEST_CHECK(assign[0] == 0, "met deadline: p0 -> %d", assign[0]);
    /* two at-risk partitions, room for one on the idle worker and for the other
     * on worker 1 only a little late: the higher priority gets the idle worker */
    kiln_sched_partition_t q[4] = {part(T_, 0, 300, 0), part(T_, 1, 300, 0),
                                   part(T_, 2, 4000, 0), part(T_, 3, 150, 1)};
    q[0].deadline_s = q[1].deadline_s = 40;
    q[1].max_priority = 5;
    q[2].owned_for_s = q[3].owned_for_s = 1.0; /* pinned: only q0 and q1 can move */
    TEST_CHECK(kiln_sched_plan(&sp, q, 4, ws, 3, assign, &st) == KILN_OK, "plan failed");
    TEST_CHECK(assign[1] == 2, "priority 5 partition -> %d, want the idle worker 2", assign[1]);
    TEST_CHECK(assign[0] == 1, "priority 0 partition -> %d, want worker 1", assign[0]);
    SUB_TEST_PASS();
}

static void test_long_job(void) {
    SUB_TEST("a 2 h job is a floor: its partition goes to the fastest worker");
    kiln_sched_params_t sp = params();
    kiln_sched_partition_t ps[9];
    kiln_sched_worker_t ws[3] = {worker(120, T_), worker(240, T_), worker(120, T_)};
    int assign[9];
    for (int p = 0; p < 8; p++)
        ps[p] = part(T_, p, 3000, -1);
    ps[8] = part(T_, 8, 7200 + 300, -1);
    ps[8].max_job_units = 7200; /* 7200 / (240/4) = 120 s on the fast worker's slot */
    kiln_sched_stats_t st;
    TEST_CHECK(kiln_sched_plan(&sp, ps, 9, ws, 3, assign, &st) == KILN_OK, "plan failed");
    TEST_CHECK(assign[8] == 1, "the 2 h partition -> worker %d, want the fast one", assign[8]);
    /* the others fill the remaining lanes up to the floor, not beyond */
    double t1 = load_of(ps, 9, assign, ws, 1);
    TEST_CHECK(t1 <= 120 + 1e-6, "fast worker holds %.1f s of work, more than the floor", t1);
    TEST_CHECK(fabs(st.drain_planned_s - 120) < 1e-6, "planned drain %.2f s, want the 120 s floor",
               st.drain_planned_s);
    SUB_TEST_PASS();
}

static void test_desired(void) {
    SUB_TEST("desired workers: backlog / (throughput x target), capped at partitions");
    kiln_sched_params_t sp = params();
    sp.target_drain_s = 60;
    kiln_sched_partition_t ps[6] = {part(T_, 0, 1800, -1), part(T_, 1, 1800, -1),
                                    part(S_, 0, 5, -1),    part(I_, 0, 0, -1),
                                    part(I_, 1, 0, -1),    part(S_, 1, 1e6, -1)};
    kiln_sched_worker_t ws[2] = {worker(10, T_), worker(10, S_)};
    int d[KILN_SCHED_MODALITIES];
    ps[5].modality = I_; /* image: a huge backlog over 3 partitions */
    ps[3].backlog_units = 1;
    TEST_CHECK(kiln_sched_desired_workers(&sp, ps, 6, ws, 2, d) == KILN_OK, "failed");
    TEST_CHECK(d[T_] == 2, "transcribe %d: 3600 units at 10/s in 60 s needs 6, capped at 2", d[T_]);
    TEST_CHECK(d[S_] == 1, "speak %d: a tiny backlog still wants 1", d[S_]);
    TEST_CHECK(d[I_] == 3, "image %d, capped at its 3 partitions", d[I_]);
    kiln_sched_partition_t many[12];
    for (int p = 0; p < 12; p++)
        many[p] = part(T_, p, 300, -1);
    many[0].rate_units_s = 10; /* + 10/s x 60 s */
    TEST_CHECK(kiln_sched_desired_workers(&sp, many, 12, ws, 2, d) == KILN_OK, "failed");
    TEST_CHECK(d[T_] == 7, "transcribe %d: (3600 + 600) / (10 x 60) = 7", d[T_]);
    TEST_CHECK(d[S_] == 0 && d[I_] == 0, "empty modalities want %d, %d", d[S_], d[I_]);
    SUB_TEST_PASS();
}

static void test_args(void) {
    SUB_TEST("argument checks and names");
    kiln_sched_partition_t p = part(T_, 0, 10, -1);
    kiln_sched_worker_t w = worker(1, T_);
    int a, d[KILN_SCHED_MODALITIES];
    TEST_CHECK(kiln_sched_plan(NULL, &p, 1, &w, 1, NULL, NULL) == KILN_ERR__INVALID_ARG, "NULL");
    TEST_CHECK(kiln_sched_plan(NULL, &p, -1, &w, 1, &a, NULL) == KILN_ERR__INVALID_ARG, "n<0");
    p.modality = 7;
    TEST_CHECK(kiln_sched_plan(NULL, &p, 1, &w, 1, &a, NULL) == KILN_ERR__INVALID_ARG, "mod");
    p.modality = T_;
    TEST_CHECK(kiln_sched_plan(NULL, &p, 1, &w, 1, &a, NULL) == KILN_OK && a == 0, "defaults");
    TEST_CHECK(kiln_sched_desired_workers(NULL, &p, 1, &w, 1, NULL) == KILN_ERR__INVALID_ARG,
               "desired NULL");
    TEST_CHECK(kiln_sched_desired_workers(NULL, &p, 1, &w, 1, d) == KILN_OK, "desired");
    TEST_CHECK(!strcmp(kiln_sched_modality_name(S_), "speak"), "name");
    TEST_CHECK(kiln_sched_modality_parse("image") == I_, "parse");
    TEST_CHECK(kiln_sched_modality_parse("video") == -1, "parse unknown");
    SUB_TEST_PASS();
}

static void test_modality_fleet(void) {
    SUB_TEST("each modality's partitions go to live workers serving it; desired per modality");
    /* w0, w1 transcribe; w2 speak (fast); w3 speak but dead; w4 image */
    kiln_sched_worker_t all[5] = {worker(100, T_), worker(100, T_), worker(300, S_),
                                  worker(300, S_), worker(100, I_)};
    all[3].alive = 0;
    kiln_sched_partition_t tp[4], sp_[4];
    for (int i = 0; i < 4; i++) {
        tp[i] = part(T_, i, 3000, -1);
        sp_[i] = part(S_, i, 3000, i % 2 ? 3 : -1); /* half owned by the dead speaker */
    }
    kiln_sched_params_t prm = params();
    kiln_sched_worker_t ws[5];
    int at[4], as[4], dt[KILN_SCHED_MODALITIES], ds[KILN_SCHED_MODALITIES];
    TEST_CHECK(kiln_sched_modality_fleet(all, 5, T_, ws) == 2, "%s", "");
    TEST_ASSERT(kiln_sched_plan(&prm, tp, 4, ws, 5, at, NULL) == KILN_OK, "%s", "");
    TEST_ASSERT(kiln_sched_desired_workers(&prm, tp, 4, ws, 5, dt) == KILN_OK, "%s", "");
    for (int i = 0; i < 4; i++)
        TEST_CHECK(at[i] == 0 || at[i] == 1, "transcribe partition %d on worker %d", i, at[i]);
    TEST_CHECK(kiln_sched_modality_fleet(all, 5, S_, ws) == 1, "%s", "");
    TEST_ASSERT(kiln_sched_plan(&prm, sp_, 4, ws, 5, as, NULL) == KILN_OK, "%s", "");
    TEST_ASSERT(kiln_sched_desired_workers(&prm, sp_, 4, ws, 5, ds) == KILN_OK, "%s", "");
    for (int i = 0; i < 4; i++)
        TEST_CHECK(as[i] == 2, "speak partition %d on worker %d (only w2 serves speak)", i, as[i]);
    /* 12000 units: transcribe workers drain 100/s -> 12000 / (100 x 300 s) = 0.4 -> 1;
     * the speak fleet 300/s likewise 1; image has nothing queued here */
    prm.target_drain_s = 20; /* 12000 / (100 x 20) = 6 -> capped at 4; 12000 / (300 x 20) = 2 */
    TEST_ASSERT(kiln_sched_modality_fleet(all, 5, T_, ws) == 2, "%s", "");
    TEST_ASSERT(kiln_sched_desired_workers(&prm, tp, 4, ws, 5, dt) == KILN_OK, "%s", "");
    TEST_ASSERT(kiln_sched_modality_fleet(all, 5, S_, ws) == 1, "%s", "");
    TEST_ASSERT(kiln_sched_desired_workers(&prm, sp_, 4, ws, 5, ds) == KILN_OK, "%s", "");
    TEST_CHECK(dt[T_] == 4, "desired transcribe %d (want 4, capped)", dt[T_]);
    TEST_CHECK(ds[S_] == 2, "desired speak %d (want 2)", ds[S_]);
    TEST_CHECK(ds[T_] == 0 && ds[I_] == 0 && dt[S_] == 0, "other modalities 0");
    /* nobody serves image: no owner */
    kiln_sched_partition_t ip = part(I_, 0, 100, -1);
    all[4].alive = 0;
    TEST_CHECK(kiln_sched_modality_fleet(all, 5, I_, ws) == 0, "%s", "");
    int ai = 7;
    TEST_ASSERT(kiln_sched_plan(&prm, &ip, 1, ws, 5, &ai, NULL) == KILN_OK, "%s", "");
    TEST_CHECK(ai == -1, "image partition on %d with no image worker", ai);
    TEST_CHECK(kiln_sched_modality_fleet(all, 5, 3, ws) == -1, "%s", "");
    SUB_TEST_PASS();
}

static kiln_sched_obs_t obs_rows(int64_t rows, int64_t known, double units) {
    kiln_sched_obs_t o;
    memset(&o, 0, sizeof(o));
    o.high_watermark = -1;
    o.committed = -1;
    o.rows = rows;
    o.rows_known = known;
    o.units_known = units;
    o.max_units_known = known ? units / known : 0;
    return o;
}

static void test_estimator(void) {
    SUB_TEST("backlog of jobs without work units, arrival rate from watermarks and rows");
    kiln_sched_params_t prm = kiln_sched_default_params();
    prm.default_job_units[T_] = 7;
    kiln_sched_est_t est;
    kiln_sched_partition_t pt;
    memset(&est, 0, sizeof(est));
    memset(&pt, 0, sizeof(pt));
    pt.modality = T_;
    /* 10 rows, 4 with 60 units each: the other 6 are estimated at 60 */
    kiln_sched_obs_t o = obs_rows(10, 4, 240);
    kiln_sched_estimate(&prm, &est, &o, 0, 0, &pt);
    TEST_CHECK(fabs(pt.backlog_units - 600) < 1e-9, "backlog %.1f (want 600)", pt.backlog_units);
    TEST_CHECK(pt.queued_jobs == 10 && fabs(pt.max_job_units - 60) < 1e-9, "%s", "");
    TEST_CHECK(pt.rate_units_s == 0 && est.samples == 0, "no rate sample without dt");
    /* messages without rows (foreign producer): lag 25, 10 rows -> 15 more at 60 */
    o.high_watermark = 125;
    o.committed = 100;
    kiln_sched_estimate(&prm, &est, &o, 0, 0, &pt);
    TEST_CHECK(fabs(pt.backlog_units - 1500) < 1e-9, "backlog %.1f (want 1500)", pt.backlog_units);
    TEST_CHECK(pt.queued_jobs == 25, "queued %lld (want 25)", (long long)pt.queued_jobs);
    /* no known job in the partition now: its remembered mean (60), else the
     * modality's mean, else the configured default */
    kiln_sched_obs_t o2 = obs_rows(0, 0, 0);
    o2.high_watermark = 135;
    o2.committed = 125;
    kiln_sched_estimate(&prm, &est, &o2, 500, 2.0, &pt);
    TEST_CHECK(fabs(pt.backlog_units - 600) < 1e-9, "remembered mean: %.1f (want 600)",
               pt.backlog_units);
    /* watermark grew by 10 messages in 2 s, no rows: 10 x 60 / 2 = 300 units/s (first sample) */
    TEST_CHECK(fabs(pt.rate_units_s - 300) < 1e-9, "rate %.2f (want 300)", pt.rate_units_s);
    kiln_sched_est_t fresh;
    memset(&fresh, 0, sizeof(fresh));
    kiln_sched_estimate(&prm, &fresh, &o2, 500, 2.0, &pt);
    TEST_CHECK(fabs(pt.backlog_units - 5000) < 1e-9, "modality mean: %.1f (want 5000)",
               pt.backlog_units);
    memset(&fresh, 0, sizeof(fresh));
    kiln_sched_estimate(&prm, &fresh, &o2, 0, 2.0, &pt);
    TEST_CHECK(fabs(pt.backlog_units - 70) < 1e-9, "default: %.1f (want 70)", pt.backlog_units);
    TEST_CHECK(fabs(kiln_sched_units_per_job(&prm, T_, NULL, NULL, 0) - 7) < 1e-9, "%s", "");
    /* EWMA: a steady 100 units/s converges, a stop decays with tau */
    memset(&est, 0, sizeof(est));
    prm.rate_tau_s = 10;
    kiln_sched_obs_t o3 = obs_rows(0, 0, 0);
    o3.arrived_rows = 10;
    o3.arrived_rows_known = 10;
    o3.arrived_units_known = 100; /* per 1 s round, no broker: rows only */
    for (int i = 0; i < 60; i++)
        kiln_sched_estimate(&prm, &est, &o3, 0, 1.0, &pt);
    TEST_CHECK(fabs(pt.rate_units_s - 100) < 1e-6, "steady rate %.3f (want 100)", pt.rate_units_s);
    o3.arrived_rows = o3.arrived_rows_known = 0;
    o3.arrived_units_known = 0;
    for (int i = 0; i < 10; i++)
        kiln_sched_estimate(&prm, &est, &o3, 0, 1.0, &pt);
    TEST_CHECK(fabs(pt.rate_units_s - 100 * exp(-1.0)) < 1e-6, "after one tau %.3f (want %.3f)",
               pt.rate_units_s, 100 * exp(-1.0));
    /* watermark + rows: 5 new rows with 50 units, 3 more foreign messages at the mean (10) */
    memset(&est, 0, sizeof(est));
    prm.rate_tau_s = 30;
    kiln_sched_obs_t o4 = obs_rows(0, 0, 0);
    o4.high_watermark = 1000;
    o4.committed = 1000;
    kiln_sched_estimate(&prm, &est, &o4, 0, 1.0, &pt);
    TEST_CHECK(est.samples == 0, "first watermark: no sample");
    o4.high_watermark = 1008;
    o4.arrived_rows = o4.arrived_rows_known = 5;
    o4.arrived_units_known = 50;
    kiln_sched_estimate(&prm, &est, &o4, 0, 4.0, &pt);
    TEST_CHECK(fabs(pt.rate_units_s - 80.0 / 4) < 1e-9, "rate %.3f (want 20)", pt.rate_units_s);
    o4.high_watermark = 5; /* topic recreated */
    kiln_sched_estimate(&prm, &est, &o4, 0, 4.0, &pt);
    TEST_CHECK(est.samples == 1 && est.last_hw == 5, "a watermark going back takes no sample");
    /* broker unreachable for a round: rows only, then the watermark primes again */
    kiln_sched_obs_t o5 = obs_rows(0, 0, 0);
    o5.arrived_rows = o5.arrived_rows_known = 2;
    o5.arrived_units_known = 20;
    kiln_sched_estimate(&prm, &est, &o5, 0, 4.0, &pt);
    TEST_CHECK(est.samples == 2 && !est.have_hw, "rows-only round sampled, watermark unprimed");
    o4.high_watermark = 500; /* far ahead: must not count the outage's messages twice */
    kiln_sched_estimate(&prm, &est, &o4, 0, 4.0, &pt);
    TEST_CHECK(est.samples == 2 && est.have_hw && est.last_hw == 500, "re-primed, no sample");
    SUB_TEST_PASS();
}

int main(void) {
    test_all_assigned();
    test_dead_worker();
    test_fast_worker();
    test_resident_model();
    test_hysteresis();
    test_dwell();
    test_deadline();
    test_long_job();
    test_desired();
    test_args();
    test_modality_fleet();
    test_estimator();
    return TEST_DONE();
}
