/*
 * tests/0501-sched_sim.c - the scheduler simulator is deterministic and sane.
 *
 * Same seed: identical workloads, identical runs (every completion hashed)
 * and a byte-identical `kiln bench scheduler --json` output; another seed:
 * different arrivals. Every policy completes every job (a policy that never
 * re-assigned a dead worker's partitions would not), never beats the lower
 * bound, and keeps its GPU busy fraction in (0, 1]. The JSON line carries the
 * fields the issue asks for. Small scales: a few seconds in all.
 */
#include "kiln/sched.h"
#include "tests/test.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

static int same_result(const kiln_sim_result_t *a, const kiln_sim_result_t *b) {
    return a->drain_s == b->drain_s && a->p50_s == b->p50_s && a->p95_s == b->p95_s &&
           a->busy == b->busy && a->swaps == b->swaps && a->moves == b->moves &&
           a->rebalances == b->rebalances && a->redone == b->redone &&
           a->trace_hash == b->trace_hash;
}

static void test_runs_deterministic(void) {
    SUB_TEST("same seed, same runs; another seed, other arrivals");
    for (int i = 0; i < kiln_sim_workload_count(); i++) {
        const char *name = kiln_sim_workload_name(i);
        kiln_sim_workload_t *a = kiln_sim_workload_new(name, 7, 0.1);
        kiln_sim_workload_t *b = kiln_sim_workload_new(name, 7, 0.1);
        kiln_sim_workload_t *c = kiln_sim_workload_new(name, 8, 0.1);
        TEST_ASSERT(a && b && c, "could not generate %s", name);
        TEST_CHECK(kiln_sim_workload_jobs(a) == kiln_sim_workload_jobs(b), "%s job counts", name);
        for (int p = 0; p < KILN_SIM_POLICIES; p++) {
            kiln_sim_result_t ra, rb, rc;
            TEST_CHECK(kiln_sim_run(a, (kiln_sim_policy_t)p, NULL, &ra) == KILN_OK, "%s/%s", name,
                       kiln_sim_policy_name((kiln_sim_policy_t)p));
            TEST_CHECK(kiln_sim_run(b, (kiln_sim_policy_t)p, NULL, &rb) == KILN_OK, "run b");
            TEST_CHECK(kiln_sim_run(c, (kiln_sim_policy_t)p, NULL, &rc) == KILN_OK, "run c");
            TEST_CHECK(same_result(&ra, &rb), "%s/%s: two runs differ (drain %.3f vs %.3f)", name,
                       kiln_sim_policy_name((kiln_sim_policy_t)p), ra.drain_s, rb.drain_s);
            TEST_CHECK(ra.trace_hash != rc.trace_hash, "%s/%s: seeds 7 and 8 gave the same trace",
                       name, kiln_sim_policy_name((kiln_sim_policy_t)p));
        }
        kiln_sim_workload_destroy(a);
        kiln_sim_workload_destroy(b);
        kiln_sim_workload_destroy(c);
    }
    SUB_TEST_PASS();
}

static void test_sane(void) {
    SUB_TEST("every job completes, no policy beats the lower bound, busy in (0, 1]");
    for (int i = 0; i < kiln_sim_workload_count(); i++) {
        const char *name = kiln_sim_workload_name(i);
        kiln_sim_workload_t *wl = kiln_sim_workload_new(name, 3, 0.2);
        TEST_ASSERT(wl, "could not generate %s", name);
        kiln_sim_bound_t lb;
        kiln_sim_lower_bound(wl, &lb);
        TEST_CHECK(lb.drain_s > 0 && lb.drain_s >= lb.capacity_s && lb.drain_s >= lb.job_s &&
                       lb.drain_s >= lb.partition_s,
                   "%s: bound %.1f (%.1f %.1f %.1f)", name, lb.drain_s, lb.capacity_s, lb.job_s,
                   lb.partition_s);
        for (int p = 0; p < KILN_SIM_POLICIES; p++) {
            kiln_sim_result_t r;
            const char *pn = kiln_sim_policy_name((kiln_sim_policy_t)p);
            TEST_CHECK(kiln_sim_run(wl, (kiln_sim_policy_t)p, NULL, &r) == KILN_OK,
                       "%s/%s did not complete every job", name, pn);
            TEST_CHECK(r.drain_s >= lb.drain_s - 1e-6, "%s/%s drained in %.2f s < bound %.2f s",
                       name, pn, r.drain_s, lb.drain_s);
            TEST_CHECK(r.busy > 0 && r.busy <= 1.0 + 1e-9, "%s/%s busy %.4f", name, pn, r.busy);
            TEST_CHECK(r.p50_s <= r.p95_s && r.p95_s <= r.drain_s, "%s/%s p50 %.1f p95 %.1f", name,
                       pn, r.p50_s, r.p95_s);
            if (!strcmp(name, "worker-failure"))
                TEST_CHECK(r.moves > 0, "%s/%s never moved a partition", name, pn);
        }
        kiln_sim_workload_destroy(wl);
    }
    SUB_TEST_PASS();
}

/* Object o has string field str and number field num. */
static void check_fields(json_t *o, const char *str, const char *num) {
    TEST_CHECK(json_is_string(json_object_get(o, str)), "field \"%s\" is not a string", str);
    TEST_CHECK(json_is_number(json_object_get(o, num)), "field \"%s\" is not a number", num);
}

static char *bench_text(void) {
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    kiln_sim_bench_opts_t o = kiln_sim_bench_default_opts();
    o.reps = 2;
    o.scale = 0.05;
    o.json = 1;
    o.machine = "test";
    o.date = "2000-01-01";
    kiln_err_t err = kiln_sim_bench(&o, fp);
    fclose(fp);
    if (err) {
        free(buf);
        return NULL;
    }
    return buf;
}

static void test_bench_output(void) {
    SUB_TEST("bench output is byte-identical and its JSON line has the issue's fields");
    char *a = bench_text(), *b = bench_text();
    TEST_ASSERT(a && b, "kiln_sim_bench failed");
    TEST_CHECK(!strcmp(a, b), "two runs printed different text");
    TEST_CHECK(strstr(a, "summary") && strstr(a, "lower bound"), "table missing");
    size_t n = strlen(a);
    while (n > 0 && a[n - 1] == '\n')
        a[--n] = 0;
    const char *last = strrchr(a, '\n');
    last = last ? last + 1 : a;
    json_error_t jerr;
    json_t *root = json_loads(last, 0, &jerr);
    TEST_ASSERT(root, "last line is not JSON: %s", jerr.text);
    TEST_CHECK(!strcmp(json_string_value(json_object_get(root, "bench")), "scheduler"), "bench");
    TEST_CHECK(!strcmp(json_string_value(json_object_get(root, "date")), "2000-01-01"), "date");
    TEST_CHECK(json_is_object(json_object_get(root, "params")), "params");
    check_fields(root, "machine", "ratio");
    json_t *wls = json_object_get(root, "workloads");
    TEST_CHECK(json_array_size(wls) == (size_t)kiln_sim_workload_count(), "%zu workloads",
               json_array_size(wls));
    size_t i, k;
    json_t *w, *r;
    json_array_foreach(wls, i, w) {
        check_fields(w, "name", "ratio_vs_keda");
        check_fields(w, "description", "ratio_vs_static");
        check_fields(w, "name", "ratio_vs_lower_bound");
        json_t *res = json_object_get(w, "results");
        TEST_CHECK(json_array_size(res) == KILN_SIM_POLICIES + 1, "%zu results",
                   json_array_size(res));
        json_array_foreach(res, k, r) check_fields(r, "policy", "drain_s");
    }
    TEST_CHECK(json_array_size(json_object_get(root, "scaling")) >= 3, "scaling sizes");
    /* the keda baseline runs at KEDA's and the HPA's documented defaults */
    json_t *sim = json_object_get(json_object_get(root, "params"), "sim");
    static const struct { const char *k; double v; } kd[] = {
        {"keda_poll_s", 30}, {"keda_hpa_sync_s", 15}, {"keda_cooldown_s", 300},
        {"keda_stabilize_s", 300}, {"keda_tolerance", 0.1}, {"keda_min_replicas", 0}};
    for (size_t i = 0; i < sizeof(kd) / sizeof(kd[0]); i++)
        TEST_CHECK(fabs(json_number_value(json_object_get(sim, kd[i].k)) - kd[i].v) < 1e-9,
                   "%s = %g (documented default %g)", kd[i].k,
                   json_number_value(json_object_get(sim, kd[i].k)), kd[i].v);
    json_decref(root);
    free(a);
    free(b);
    SUB_TEST_PASS();
}

static void test_args(void) {
    SUB_TEST("unknown workloads and bad arguments are refused");
    kiln_sim_result_t r;
    TEST_CHECK(kiln_sim_workload_new("nope", 1, 1) == NULL, "unknown workload");
    TEST_CHECK(kiln_sim_workload_new("steady", 1, 0) == NULL, "scale 0");
    TEST_CHECK(kiln_sim_workload_new_fleet("steady", 1, 1, 1000) == NULL, "1000 workers");
    TEST_CHECK(kiln_sim_run(NULL, KILN_SIM_POLICY_KILN, NULL, &r) == KILN_ERR__INVALID_ARG, "NULL");
    kiln_sim_workload_destroy(NULL);
    kiln_sim_bench_opts_t o = kiln_sim_bench_default_opts();
    o.only = "nope";
    FILE *fp = fopen("/dev/null", "w");
    TEST_CHECK(kiln_sim_bench(&o, fp) == KILN_ERR__NOT_FOUND, "unknown --workload");
    o.only = NULL;
    o.reps = 0;
    TEST_CHECK(kiln_sim_bench(&o, fp) == KILN_ERR__INVALID_ARG, "reps 0");
    fclose(fp);
    TEST_CHECK(!strcmp(kiln_sim_policy_name(KILN_SIM_POLICY_KEDA), "keda"), "names");
    SUB_TEST_PASS();
}

int main(void) {
    test_runs_deterministic();
    test_sane();
    test_bench_output();
    test_args();
    return TEST_DONE();
}
