/*
 * cmd/daemons.c - `kiln worker`, `kiln scheduler`, `kiln migrate`, `kiln conf`.
 */
#include <stdio.h>
#include <string.h>

#include "cmd/cli.h"
#include "kiln/log.h"
#include "kiln/pg.h"
#include "kiln/scheduler.h"
#include "kiln/worker.h"

static volatile sig_atomic_t kiln_daemon_run = 1;

/* Parses only the common options; @returns -1 after --help, 0, or an exit code > 0. */
static int kiln_parse_common(int argc, char **argv, kiln_cli_t *cli, void (*help)(void)) {
    static struct option opts[] = {KILN_CLI_LONGOPTS};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:S:h", opts, NULL)) != -1) {
        if (kiln_cli_common_opt(cli, c, optarg))
            continue;
        if (c == 'h') {
            help();
            return -1;
        }
        return KILN_EXIT_USAGE;
    }
    if (optind < argc) {
        fprintf(stderr, "kiln %s: unexpected argument \"%s\"\n", argv[0], argv[optind]);
        return KILN_EXIT_USAGE;
    }
    return 0;
}

static void kiln_worker_help(void) {
    printf("usage: kiln worker [OPTIONS]\n\n"
           "Runs a worker: consumes the partitions the scheduler assigns to it, batches jobs,\n"
           "runs the engine, writes artifacts and commits results and offsets in one\n"
           "transaction. SIGTERM finishes the in-flight batch, commits, and exits 0.\n\n");
    kiln_cli_common_help(stdout);
    kiln_conf_help(stdout, KILN_SCOPE_WORKER);
}

int kiln_cmd_worker(int argc, char **argv) {
    kiln_cli_t cli = {0};
    int rc = kiln_parse_common(argc, argv, &cli, kiln_worker_help);
    if (rc)
        return rc < 0 ? KILN_EXIT_OK : rc;
    if (kiln_cli_load(&cli, "worker"))
        return KILN_EXIT_USAGE;
    char comp[160];
    snprintf(comp, sizeof(comp), "worker %s", kiln_conf_get(cli.conf, "worker.id"));
    kiln_log_set_component(comp);
    kiln_cli_on_signals(&kiln_daemon_run);
    char errstr[512];
    kiln_worker_t *kw = kiln_worker_new(cli.conf, errstr, sizeof(errstr));
    if (!kw) {
        KILN_LOG_ERROR("could not start: %s", errstr);
        kiln_cli_free(&cli);
        return KILN_EXIT_FAIL;
    }
    kiln_err_t err = kiln_worker_run(kw, &kiln_daemon_run);
    kiln_worker_destroy(kw);
    kiln_cli_free(&cli);
    return err ? KILN_EXIT_FAIL : KILN_EXIT_OK;
}

static void kiln_scheduler_help(void) {
    printf("usage: kiln scheduler [OPTIONS]\n\n"
           "Runs the scheduler: assigns job-topic partitions to live workers (assignments\n"
           "table, epoch per partition, NOTIFY kiln_assign) and moves them away from workers\n"
           "whose heartbeat is older than scheduler.worker_timeout_ms.\n\n");
    kiln_cli_common_help(stdout);
    kiln_conf_help(stdout, KILN_SCOPE_SCHED);
}

int kiln_cmd_scheduler(int argc, char **argv) {
    kiln_cli_t cli = {0};
    int rc = kiln_parse_common(argc, argv, &cli, kiln_scheduler_help);
    if (rc)
        return rc < 0 ? KILN_EXIT_OK : rc;
    if (kiln_cli_load(&cli, "scheduler"))
        return KILN_EXIT_USAGE;
    kiln_cli_on_signals(&kiln_daemon_run);
    char errstr[512];
    kiln_scheduler_t *ks = kiln_scheduler_new(cli.conf, errstr, sizeof(errstr));
    if (!ks) {
        KILN_LOG_ERROR("could not start: %s", errstr);
        kiln_cli_free(&cli);
        return KILN_EXIT_FAIL;
    }
    kiln_scheduler_run(ks, &kiln_daemon_run);
    kiln_scheduler_destroy(ks);
    kiln_cli_free(&cli);
    return KILN_EXIT_OK;
}

static void kiln_migrate_help(void) {
    printf("usage: kiln migrate [OPTIONS]\n\n"
           "Applies the numbered schema migrations (schema/NNN_*.sql, embedded in the binary)\n"
           "that the database does not have yet. Safe to run any number of times.\n\n");
    kiln_cli_common_help(stdout);
}

int kiln_cmd_migrate(int argc, char **argv) {
    kiln_cli_t cli = {0};
    int rc = kiln_parse_common(argc, argv, &cli, kiln_migrate_help);
    if (rc)
        return rc < 0 ? KILN_EXIT_OK : rc;
    if (kiln_cli_load(&cli, "migrate"))
        return KILN_EXIT_USAGE;
    char errstr[512];
    PGconn *pg = kiln_pg_connect(cli.conf, "kiln-migrate", errstr, sizeof(errstr));
    if (!pg) {
        fprintf(stderr, "kiln migrate: %s\n", errstr);
        kiln_cli_free(&cli);
        return KILN_EXIT_FAIL;
    }
    int n = kiln_pg_migrate(pg, errstr, sizeof(errstr));
    PQfinish(pg);
    kiln_cli_free(&cli);
    if (n < 0) {
        fprintf(stderr, "kiln migrate: %s\n", errstr);
        return KILN_EXIT_FAIL;
    }
    printf("applied %d migration(s); schema is current\n", n);
    return KILN_EXIT_OK;
}

static void kiln_conf_cmd_help(void) {
    printf("usage: kiln conf [--markdown | --reference] [OPTIONS]\n\n"
           "Prints the effective configuration (secrets masked), or with --markdown the\n"
           "reference of every property (CONFIGURATION.md), or with --reference the same as\n"
           "plain text.\n\n");
    kiln_cli_common_help(stdout);
}

int kiln_cmd_conf(int argc, char **argv) {
    static struct option opts[] = {{"markdown", no_argument, 0, 'm'},
                                   {"reference", no_argument, 0, 'r'}, KILN_CLI_LONGOPTS};
    kiln_cli_t cli = {0};
    int c, mode = 0;
    while ((c = getopt_long(argc, argv, "c:S:hmr", opts, NULL)) != -1) {
        if (kiln_cli_common_opt(&cli, c, optarg))
            continue;
        if (c == 'h') {
            kiln_conf_cmd_help();
            return KILN_EXIT_OK;
        } else if (c == 'm' || c == 'r')
            mode = c;
        else
            return KILN_EXIT_USAGE;
    }
    if (mode == 'm') {
        kiln_conf_markdown(stdout);
        return KILN_EXIT_OK;
    }
    if (mode == 'r') {
        kiln_conf_help(stdout, ~0);
        return KILN_EXIT_OK;
    }
    if (kiln_cli_load(&cli, "conf"))
        return KILN_EXIT_USAGE;
    kiln_conf_dump(cli.conf, stdout);
    kiln_cli_free(&cli);
    return KILN_EXIT_OK;
}
