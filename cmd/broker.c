/*
 * cmd/broker.c - `kiln broker`: the embedded broker, librdkafka's mock
 * cluster in its own process.
 *
 * It creates the job, DLQ and events topics with the configured partition
 * counts, writes its bootstrap address atomically to broker.addr_file
 * (default <stack.dir>/broker.addr) and serves until SIGTERM.
 *
 * Limits of the mock cluster (measured; see README): the log is in memory
 * only and about 5 MB per partition; older messages are dropped silently and
 * a restart loses everything queued. kiln designs around both (producer
 * backpressure, offsets and job rows in Postgres, `kiln requeue`).
 */
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cli.h"
#include "kiln/kafka.h"
#include "kiln/log.h"

static volatile sig_atomic_t kiln_broker_run = 1;

static void kiln_broker_help(void) {
    printf("usage: kiln broker [OPTIONS]\n\n"
           "Runs the embedded broker (librdkafka mock cluster) in the foreground, creates the\n"
           "topics and writes its bootstrap address to broker.addr_file. Stops on SIGTERM.\n\n"
           "  --brokers N           number of mock brokers (default 1)\n");
    kiln_cli_common_help(stdout);
    kiln_conf_help(stdout, KILN_SCOPE_STACK);
}

static int kiln_write_atomic(const char *path, const char *text) {
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
    FILE *fp = fopen(tmp, "w");
    if (!fp)
        return -1;
    fprintf(fp, "%s\n", text);
    if (fclose(fp))
        return -1;
    return rename(tmp, path);
}

int kiln_cmd_broker(int argc, char **argv) {
    static struct option opts[] = {{"brokers", required_argument, 0, 'b'}, KILN_CLI_LONGOPTS};
    kiln_cli_t cli = {0};
    int brokers = 1, c;
    while ((c = getopt_long(argc, argv, "c:S:hb:", opts, NULL)) != -1) {
        if (kiln_cli_common_opt(&cli, c, optarg))
            continue;
        if (c == 'h') {
            kiln_broker_help();
            return KILN_EXIT_OK;
        } else if (c == 'b')
            brokers = atoi(optarg);
        else
            return KILN_EXIT_USAGE;
    }
    if (brokers < 1 || brokers > 9) {
        fprintf(stderr, "kiln broker: --brokers must be 1..9\n");
        return KILN_EXIT_USAGE;
    }
    if (kiln_cli_load(&cli, "broker"))
        return KILN_EXIT_USAGE;
    char errstr[512];
    rd_kafka_conf_t *rc = rd_kafka_conf_new();
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, rc, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "kiln broker: could not create the client handle: %s\n", errstr);
        return KILN_EXIT_FAIL;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
    if (!mc) {
        fprintf(stderr, "kiln broker: could not create the mock cluster\n");
        rd_kafka_destroy(rk);
        return KILN_EXIT_FAIL;
    }
    char topic[256];
    for (int i = 0; i < KILN_N_MODALITIES; i++) {
        const char *m = kiln_modalities[i];
        kiln_kafka_topic(cli.conf, m, "jobs", topic, sizeof(topic));
        rd_kafka_mock_topic_create(mc, topic, kiln_kafka_partitions(cli.conf, m), 1);
        kiln_kafka_topic(cli.conf, m, "dlq", topic, sizeof(topic));
        rd_kafka_mock_topic_create(mc, topic, 1, 1);
    }
    kiln_kafka_events_topic(cli.conf, topic, sizeof(topic));
    rd_kafka_mock_topic_create(mc, topic, 4, 1);
    const char *bs = rd_kafka_mock_cluster_bootstraps(mc);
    char *path = *kiln_conf_get(cli.conf, "broker.addr_file")
                     ? strdup(kiln_conf_get(cli.conf, "broker.addr_file"))
                     : kiln_conf_stack_path(cli.conf, "broker.addr");
    if (kiln_write_atomic(path, bs)) {
        fprintf(stderr, "kiln broker: could not write \"%s\": %s\n", path, strerror(errno));
        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(rk);
        free(path);
        return KILN_EXIT_FAIL;
    }
    KILN_LOG_INFO("mock cluster up at %s (%d broker(s)); address in %s", bs, brokers, path);
    printf("%s\n", bs);
    fflush(stdout);
    kiln_cli_on_signals(&kiln_broker_run);
    while (kiln_broker_run)
        rd_kafka_poll(rk, 200);
    KILN_LOG_INFO("shutting down");
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    free(path);
    kiln_cli_free(&cli);
    return KILN_EXIT_OK;
}
