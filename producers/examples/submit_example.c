/*
 * producers/examples/submit_example.c - submit audio files with libkiln.
 *
 * Build against an installed libkiln:
 *   cc submit_example.c $(pkg-config --cflags --libs kiln) -o submit_example
 * Run (uses the same configuration sources as the kiln CLI: stack.conf of
 * the embedded stack, kiln.conf, KILN_* environment):
 *   ./submit_example acme a.flac b.wav
 * Prints one job id per file. Exit 0 when every job was recorded and
 * acknowledged by the broker.
 */
#include <stdio.h>
#include <stdlib.h>

#include "kiln/conf.h"
#include "kiln/producer.h"

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s TENANT FILE...\n", argv[0]);
        return 2;
    }
    char errstr[512];
    /* 1. configuration: defaults + stack.conf + kiln.conf + KILN_* env */
    kiln_conf_t *conf = kiln_conf_new();
    if (kiln_conf_load_all(conf, NULL, NULL, 0, errstr, sizeof(errstr))) {
        fprintf(stderr, "%s\n", errstr);
        return 1;
    }
    /* 2. the producer connects to Postgres, the broker and the object store */
    kiln_producer_t *kp = kiln_producer_new(conf, errstr, sizeof(errstr));
    kiln_conf_destroy(conf); /* the producer keeps its own copy */
    if (!kp) {
        fprintf(stderr, "could not create producer: %s\n", errstr);
        return 1;
    }
    /* 3. one job per file: upload, record (queued), produce */
    kiln_submit_params_t sp = kiln_submit_default_params();
    sp.tenant = argv[1];
    int failed = 0;
    for (int i = 2; i < argc; i++) {
        char id[129];
        if (kiln_producer_submit_file(kp, argv[i], &sp, id, errstr, sizeof(errstr))) {
            fprintf(stderr, "%s: %s\n", argv[i], errstr);
            failed++;
            continue;
        }
        printf("%s\n", id);
    }
    /* 4. wait for the broker's acknowledgements before exiting */
    if (kiln_producer_flush(kp, 30000) != KILN_OK)
        failed++;
    kiln_producer_destroy(kp);
    return failed ? 1 : 0;
}
