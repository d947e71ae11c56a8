/*
 * kiln/scheduler.h - the scheduler daemon: keeps one assignments row per
 * partition and moves partitions between live workers.
 *
 * Every scheduler.interval_ms it reads the live workers (status 'up' and a
 * heartbeat younger than scheduler.worker_timeout_ms) and rebalances: a
 * partition keeps its owner while that owner is alive and not over its fair
 * share; orphans and overflow go to the least-loaded live workers. Each
 * owner change bumps the partition's epoch (fencing the old owner's
 * commits) and the change is announced with NOTIFY kiln_assign.
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
