/*
 * cmd/cli.c - shared subcommand plumbing (cmd/cli.h).
 */
#include "cmd/cli.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kiln/log.h"

int kiln_cli_common_opt(kiln_cli_t *cli, int opt, const char *arg) {
    if (opt == 'c') {
        cli->conf_file = arg;
        return 1;
    }
    if (opt == 'S') {
        if (cli->n_sets < KILN_CLI_MAX_SETS)
            cli->sets[cli->n_sets++] = (char *)arg;
        return 1;
    }
    return 0;
}

int kiln_cli_load(kiln_cli_t *cli, const char *component) {
    char errstr[512];
    cli->conf = kiln_conf_new();
    if (kiln_conf_load_all(cli->conf, cli->conf_file, cli->sets, cli->n_sets, errstr,
                           sizeof(errstr))) {
        fprintf(stderr, "kiln: %s\n", errstr);
        kiln_cli_free(cli);
        return -1;
    }
    kiln_log_set_level((kiln_log_level_t)kiln_log_level_parse(kiln_conf_get(cli->conf, "log.level")));
    kiln_log_set_component(component);
    return 0;
}

void kiln_cli_free(kiln_cli_t *cli) {
    kiln_conf_destroy(cli->conf);
    cli->conf = NULL;
}

void kiln_cli_common_help(FILE *fp) {
    fprintf(fp, "Common options:\n"
                "  -c, --conf FILE       configuration file (default ./kiln.conf if present)\n"
                "  -S, --set KEY=VALUE   set a configuration property (repeatable)\n"
                "  -h, --help            this help\n");
}

static volatile sig_atomic_t *kiln_cli_run_flag;
static void kiln_cli_sig(int sig) {
    (void)sig;
    if (kiln_cli_run_flag)
        *kiln_cli_run_flag = 0;
}

void kiln_cli_on_signals(volatile sig_atomic_t *run) {
    kiln_cli_run_flag = run;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = kiln_cli_sig;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

const char *kiln_cli_self(void) {
    static char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
    path[n > 0 ? n : 0] = '\0';
    return path;
}
