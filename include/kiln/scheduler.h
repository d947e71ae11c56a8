/*
 * kiln/scheduler.h - the scheduler daemon: keeps one assignments row per
 * partition and moves partitions between live workers.
 *
 * Every scheduler.interval_ms it reads the live workers (status 'up' and a
 * heartbeat younger than scheduler.worker_timeout_ms; after a gap in its own
 * rounds, such as a Postgres outage, every worker gets the timeout again from
 * the first round back) and the backlog per partition (work units of the open
 * jobs, estimates for messages without any, arrival rate), and rebalances
 * each modality's topic over the live workers serving that modality:
 * scheduler.policy "kiln" by kiln_sched_plan() (docs/scheduler.md), "static"
 * by a balanced, sticky round-robin. Each owner change bumps the partition's
 * epoch (fencing the old owner's commits) and the change is announced with
 * NOTIFY kiln_assign.
 */
#ifndef KILN_SCHEDULER_H
#define KILN_SCHEDULER_H

#include <signal.h>
#include <stddef.h>

#include "kiln/conf.h"
#include "kiln/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_scheduler_s kiln_scheduler_t;

kiln_scheduler_t *kiln_scheduler_new(const kiln_conf_t *conf, char *errstr, size_t errstr_size);

/** One planning round. @returns the number of partitions moved, or -1. */
int kiln_scheduler_tick(kiln_scheduler_t *ks, char *errstr, size_t errstr_size);

/** Runs ticks until *run becomes 0. */
kiln_err_t kiln_scheduler_run(kiln_scheduler_t *ks, volatile sig_atomic_t *run);

void kiln_scheduler_destroy(kiln_scheduler_t *ks);

#ifdef __cplusplus
}
#endif
#endif
