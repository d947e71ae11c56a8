/*
 * cmd/bench.c - `kiln bench NAME`: dispatch to the benchmarks.
 */
#include <stdio.h>
#include <string.h>

#include "cmd/cli.h"

int kiln_cmd_bench_pipeline(int argc, char **argv);
int kiln_cmd_bench_scheduler(int argc, char **argv);
int kiln_cmd_bench_asr(int argc, char **argv);
int kiln_cmd_bench_wer(int argc, char **argv);

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} kiln_bench_t;

static const kiln_bench_t kiln_benches[] = {
    {"pipeline", kiln_cmd_bench_pipeline,
     "null engine over N jobs on the embedded stack vs a raw librdkafka + COPY loop"},
    {"scheduler", kiln_cmd_bench_scheduler,
     "simulated fleet: kiln's scheduler vs static round-robin, KEDA-style rule, lower bound"},
    {"asr", kiln_cmd_bench_asr,
     "Whisper on CPU: kiln vs faster-whisper (same model, audio, threads), WER, batch scaling"},
    {"wer", kiln_cmd_bench_wer, "WER of kiln (and faster-whisper) on DIR/transcripts.tsv"},
};
#define KILN_N_BENCHES (sizeof(kiln_benches) / sizeof(kiln_benches[0]))

int kiln_cmd_bench(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        printf("usage: kiln bench NAME [OPTIONS]   (kiln bench NAME --help for options)\n\n");
        for (unsigned i = 0; i < KILN_N_BENCHES; i++)
            printf("  %-10s %s\n", kiln_benches[i].name, kiln_benches[i].summary);
        printf("\nEvery benchmark prints a table; --json prints one JSON object as the last line.\n");
        return argc < 2 ? KILN_EXIT_USAGE : KILN_EXIT_OK;
    }
    for (unsigned i = 0; i < KILN_N_BENCHES; i++)
        if (!strcmp(argv[1], kiln_benches[i].name))
            return kiln_benches[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "kiln bench: unknown benchmark \"%s\"\n", argv[1]);
    return KILN_EXIT_USAGE;
}
