/*
 * cmd/bench_pipeline.c - `kiln bench pipeline` (placeholder until written).
 */
#include <stdio.h>

#include "cmd/cli.h"

int kiln_cmd_bench_pipeline(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "kiln bench pipeline: not built yet\n");
    return KILN_EXIT_FAIL;
}
