/*
 * tests/0502-sched_beats_baselines.c - regression guard for the scheduling
 * policy: on every built-in workload of `kiln bench scheduler` (full size,
 * seeds 1 and 2), kiln's drain time is no worse than static round-robin's
 * and the KEDA-style rule's, and within 10 % of the offline lower bound.
 * A change to scheduler/policy.c that loses to a baseline fails here.
 * About 4 s.
 *
 * The 1.5x goal on skewed-bursty is printed, not asserted: the
 * simulation shows it is out of reach there (see docs/scheduler.md), and a
 * test that must fail is no guard. What is asserted is that kiln stays at
 * least 1.10x faster than the best baseline on it.
 */
#include "kiln/sched.h"
#include "tests/test.h"

#include <string.h>

int main(void) {
    SUB_TEST("kiln drains no later than static and keda, within 10% of the bound");
    for (uint64_t seed = 1; seed <= 2; seed++) {
        for (int i = 0; i < kiln_sim_workload_count(); i++) {
            const char *name = kiln_sim_workload_name(i);
            kiln_sim_workload_t *wl = kiln_sim_workload_new(name, seed, 1.0);
            TEST_ASSERT(wl, "could not generate %s", name);
            kiln_sim_result_t r[KILN_SIM_POLICIES];
            kiln_sim_bound_t lb;
            kiln_sim_lower_bound(wl, &lb);
            for (int p = 0; p < KILN_SIM_POLICIES; p++)
                TEST_ASSERT(kiln_sim_run(wl, (kiln_sim_policy_t)p, NULL, &r[p]) == KILN_OK,
                            "%s: %s failed", name, kiln_sim_policy_name((kiln_sim_policy_t)p));
            double k = r[KILN_SIM_POLICY_KILN].drain_s, s = r[KILN_SIM_POLICY_STATIC].drain_s,
                   e = r[KILN_SIM_POLICY_KEDA].drain_s;
            printf("# seed %llu %-15s kiln %7.1f s  static %7.1f s (%.2fx)  keda %7.1f s "
                   "(%.2fx)  bound %7.1f s (%.3fx)\n",
                   (unsigned long long)seed, name, k, s, s / k, e, e / k, lb.drain_s,
                   k / lb.drain_s);
            TEST_CHECK(k <= s, "seed %llu %s: kiln %.1f s > static %.1f s",
                       (unsigned long long)seed, name, k, s);
            TEST_CHECK(k <= e, "seed %llu %s: kiln %.1f s > keda %.1f s",
                       (unsigned long long)seed, name, k, e);
            TEST_CHECK(k <= 1.10 * lb.drain_s, "seed %llu %s: kiln %.1f s > 1.10 x bound %.1f s",
                       (unsigned long long)seed, name, k, lb.drain_s);
            if (!strcmp(name, "skewed-bursty")) {
                double best = s < e ? s : e;
                printf("# seed %llu skewed-bursty: best baseline / kiln = %.2fx "
                       "(issue goal 1.5x)\n",
                       (unsigned long long)seed, best / k);
                TEST_CHECK(best / k >= 1.10, "seed %llu skewed-bursty: only %.2fx faster",
                           (unsigned long long)seed, best / k);
            }
            kiln_sim_workload_destroy(wl);
        }
    }
    SUB_TEST_PASS();
    return TEST_DONE();
}
