/*
 * cmd/cli.h - what every `kiln` subcommand shares: the common options
 * (--conf FILE, --set key=value, --help), configuration loading and the
 * documented exit codes.
 */
#ifndef KILN_CLI_H
#define KILN_CLI_H

#include <getopt.h>
#include <signal.h>

#include "kiln/conf.h"

/* Exit codes of every subcommand (documented in `kiln --help`). */
#define KILN_EXIT_OK 0
#define KILN_EXIT_FAIL 1      /* an operation failed (message on stderr) */
#define KILN_EXIT_USAGE 2     /* bad command line or configuration */
#define KILN_EXIT_JOBS 3      /* submit --wait: some jobs ended dead/failed */
#define KILN_EXIT_TIMEOUT 4   /* a wait timed out */

#define KILN_CLI_MAX_SETS 128

typedef struct kiln_cli_s {
    kiln_conf_t *conf;
    const char *conf_file;
    char *sets[KILN_CLI_MAX_SETS];
    int n_sets;
} kiln_cli_t;

/* getopt_long entries for the common options; end your own table with these */
#define KILN_CLI_LONGOPTS                                                                  \
    {"conf", required_argument, 0, 'c'}, {"set", required_argument, 0, 'S'},               \
        {"help", no_argument, 0, 'h'}, { 0, 0, 0, 0 }

/** Handles 'c' and 'S'. @returns 1 if \p opt was a common option. */
int kiln_cli_common_opt(kiln_cli_t *cli, int opt, const char *arg);

/**
 * Loads the configuration (see kiln_conf_load_all), applies log.level and
 * names the log component. Prints the error and @returns -1 on failure.
 */
int kiln_cli_load(kiln_cli_t *cli, const char *component);

void kiln_cli_free(kiln_cli_t *cli);

/** The common options' help text. */
void kiln_cli_common_help(FILE *fp);

/** Installs SIGTERM/SIGINT handlers that clear *run (a sig_atomic_t flag). */
void kiln_cli_on_signals(volatile sig_atomic_t *run);

/** @returns the absolute path of the running kiln binary (static buffer). */
const char *kiln_cli_self(void);

/* subcommands */
int kiln_cmd_up(int argc, char **argv);
int kiln_cmd_down(int argc, char **argv);
int kiln_cmd_status(int argc, char **argv);
int kiln_cmd_broker(int argc, char **argv);
int kiln_cmd_migrate(int argc, char **argv);
int kiln_cmd_worker(int argc, char **argv);
int kiln_cmd_scheduler(int argc, char **argv);
int kiln_cmd_submit(int argc, char **argv);
int kiln_cmd_requeue(int argc, char **argv);
int kiln_cmd_dlq(int argc, char **argv);
int kiln_cmd_bench(int argc, char **argv);
int kiln_cmd_conf(int argc, char **argv);
int kiln_cmd_transcribe(int argc, char **argv);
int kiln_cmd_speak(int argc, char **argv);

#endif
