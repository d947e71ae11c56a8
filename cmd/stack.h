/*
 * cmd/stack.h - the embedded stack's process management, shared by
 * `kiln up`, `kiln down` and `kiln status` (cmd/up.c, cmd/status.c).
 */
#ifndef KILN_STACK_H
#define KILN_STACK_H

#include <sys/types.h>

#include "kiln/conf.h"

/** @returns the pid in <stack.dir>/run/<name>.pid if that process is alive, else 0. */
pid_t kiln_stack_pid(const kiln_conf_t *conf, const char *name);

/** Path of the Postgres data directory recorded in stack.conf (or the default). */
char *kiln_stack_pgdata(const kiln_conf_t *conf);

/** Runs argv (as the postgres user when root), waits. @returns exit status or -1. */
int kiln_stack_run_pg(char *const argv[], int quiet);

/** Directory of the PostgreSQL server binaries (static buffer). */
const char *kiln_stack_pg_bindir(void);

#endif
