/*
 * cmd/main.c - the one `kiln` binary: subcommand dispatch and top-level help.
 */
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cli.h"

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} kiln_subcmd_t;

static const kiln_subcmd_t kiln_subcmds[] = {
    {"up", kiln_cmd_up, "start the embedded stack (Postgres, broker, store, scheduler, workers)"},
    {"down", kiln_cmd_down, "stop the embedded stack"},
    {"status", kiln_cmd_status, "show the stack, queues, jobs and workers"},
    {"broker", kiln_cmd_broker, "run the embedded broker (librdkafka mock cluster)"},
    {"migrate", kiln_cmd_migrate, "apply the Postgres schema migrations"},
    {"worker", kiln_cmd_worker, "run a worker daemon (consume, batch, run, store)"},
    {"scheduler", kiln_cmd_scheduler, "run the scheduler (assigns partitions to workers)"},
    {"submit", kiln_cmd_submit, "submit files or URIs as jobs"},
    {"transcribe", kiln_cmd_transcribe, "transcribe audio files locally with Whisper (no broker)"},
    {"speak", kiln_cmd_speak, "synthesise speech from text locally with a Piper voice (no broker)"},
    {"dlq", kiln_cmd_dlq, "list or replay dead-lettered jobs"},
    {"requeue", kiln_cmd_requeue, "re-produce jobs that have no terminal row"},
    {"bench", kiln_cmd_bench, "benchmarks (pipeline, ...)"},
    {"conf", kiln_cmd_conf, "print the configuration or its reference"},
};
#define KILN_N_SUBCMDS (sizeof(kiln_subcmds) / sizeof(kiln_subcmds[0]))

static void kiln_usage(FILE *fp) {
    fprintf(fp, "usage: kiln COMMAND [OPTIONS]\n\nkiln is a batch inference pipeline: jobs on "
                "Kafka, batched GPU workers, results in Postgres and an object store.\n\nCommands:\n");
    for (unsigned i = 0; i < KILN_N_SUBCMDS; i++)
        fprintf(fp, "  %-10s %s\n", kiln_subcmds[i].name, kiln_subcmds[i].summary);
    fprintf(fp, "\nRun `kiln COMMAND --help` for a command's options.\n\n"
                "Exit codes: 0 success, 1 failure, 2 usage or configuration error,\n"
                "            3 submit --wait: some jobs ended dead, 4 timed out.\n");
}

int main(int argc, char **argv) {
    /* keep freed blocks of up to 32 MiB in malloc's heaps instead of
     * returning them to the kernel: the engines allocate and free their
     * per-batch activations (MBs each) on every call, and fresh mappings
     * cost a page fault per 4 KiB (7% of speech synthesis, measured) */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        kiln_usage(stdout);
        return argc < 2 ? KILN_EXIT_USAGE : KILN_EXIT_OK;
    }
    for (unsigned i = 0; i < KILN_N_SUBCMDS; i++)
        if (!strcmp(argv[1], kiln_subcmds[i].name))
            return kiln_subcmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "kiln: unknown command \"%s\"\n\n", argv[1]);
    kiln_usage(stderr);
    return KILN_EXIT_USAGE;
}
