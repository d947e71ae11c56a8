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
 *
 * Fault injection (docs/chaos.md): the serve loop polls a control file,
 * <stack.dir>/run/broker.ctl by default. A client writes commands into a
 * temporary file and renames it there; the broker renames it away (so a
 * command runs once), runs each line with the mock cluster's fault API
 * (brokers down/up, request errors, round-trip delay) and renames one reply
 * line per command into <control>.reply.
 */
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cli.h"
#include "kiln/kafka.h"
#include "kiln/log.h"

static volatile sig_atomic_t kiln_broker_run = 1;

static void kiln_broker_help(void) {
    printf("usage: kiln broker [OPTIONS]\n\n"
           "Runs the embedded broker (librdkafka mock cluster) in the foreground, creates the\n"
           "topics and writes its bootstrap address to broker.addr_file. Stops on SIGTERM.\n\n"
           "  --brokers N           number of mock brokers (default 1)\n"
           "  --control FILE        control file for fault injection (default\n"
           "                        <stack.dir>/run/broker.ctl; \"\" disables it)\n\n"
           "Fault injection (tests, docs/chaos.md): write commands, one per line, to a\n"
           "temporary file and rename it to the control file. Within 100 ms the broker runs\n"
           "them and renames one reply line per command (\"ok ...\" or \"error: ...\") into\n"
           "FILE.reply. BROKER is a broker id (1..N); without it a command hits every broker.\n"
           "  down [MS] [BROKER]    disconnect clients and refuse connections; with MS > 0\n"
           "                        come back up by itself after MS milliseconds\n"
           "  up [BROKER]           accept connections again\n"
           "  errors API N [ERR]    fail the next N requests of API (produce, fetch,\n"
           "                        listoffsets, metadata, offsetcommit, offsetfetch,\n"
           "                        findcoordinator, initproducerid or a number) with\n"
           "                        ERR: a Kafka error name or number (default\n"
           "                        NOT_LEADER_FOR_PARTITION;\n"
           "                        _TRANSPORT disconnects the client)\n"
           "  clear API             drop the request errors still pending for API\n"
           "  rtt MS [BROKER]       delay every response by MS milliseconds (0: none)\n"
           "  status                reply with the brokers that are down and the counts\n"
           "  Example: printf 'down 3000\\nerrors produce 5\\n' > ctl.tmp && mv ctl.tmp ctl\n\n");
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

/* ---- fault injection (the control file) ---- */

#define KILN_BROKER_MAX 9

/* What the control file changed, and when downed brokers come back. */
typedef struct kiln_broker_ctl_s {
    rd_kafka_mock_cluster_t *mc;
    int brokers;
    char *path;                        /* the control file; NULL: disabled */
    int down[KILN_BROKER_MAX + 1];     /* by broker id (1..brokers) */
    double up_at[KILN_BROKER_MAX + 1]; /* monotonic time of the automatic "up", 0: none */
    long outages, errors_pushed, commands;
} kiln_broker_ctl_t;

static double kiln_broker_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Kafka protocol request types by name (the numbers are the protocol's ApiKey). */
static const struct {
    const char *name;
    int16_t key;
} kiln_broker_apis[] = {{"produce", 0},      {"fetch", 1},        {"listoffsets", 2},
                        {"metadata", 3},     {"offsetcommit", 8}, {"offsetfetch", 9},
                        {"findcoordinator", 10}, {"initproducerid", 22}};

/* @returns the ApiKey for a name or number, or -1. */
static int kiln_broker_api_parse(const char *s) {
    for (size_t i = 0; i < sizeof(kiln_broker_apis) / sizeof(kiln_broker_apis[0]); i++)
        if (!strcasecmp(s, kiln_broker_apis[i].name))
            return kiln_broker_apis[i].key;
    char *end;
    long v = strtol(s, &end, 10);
    return *s && !*end && v >= 0 && v < 1000 ? (int)v : -1;
}

/* Parses a Kafka error by name ("NOT_LEADER_FOR_PARTITION", optionally with
 * the RD_KAFKA_RESP_ERR_ prefix; local errors start with '_') or number.
 * @returns 0 and sets *errp, or -1 when unknown. */
static int kiln_broker_err_parse(const char *s, rd_kafka_resp_err_t *errp) {
    if (!strncasecmp(s, "RD_KAFKA_RESP_ERR_", 18))
        s += 18;
    char *end;
    long v = strtol(s, &end, 10);
    if (*s && !*end) {
        *errp = (rd_kafka_resp_err_t)v;
        return 0;
    }
    const struct rd_kafka_err_desc *descs;
    size_t cnt;
    rd_kafka_get_err_descs(&descs, &cnt);
    for (size_t i = 0; i < cnt; i++)
        if (descs[i].name && !strcasecmp(descs[i].name, s)) {
            *errp = descs[i].code;
            return 0;
        }
    return -1;
}

/* Sets brokers \p id (0: all) down or up; an automatic "up" after \p ms when
 * going down with ms > 0. @returns 0 or -1 with \p reply set. */
static int kiln_broker_set_state(kiln_broker_ctl_t *bc, int id, int down, long ms, char *reply,
                                 size_t reply_size) {
    for (int b = id ? id : 1; b <= (id ? id : bc->brokers); b++) {
        rd_kafka_resp_err_t err = down ? rd_kafka_mock_broker_set_down(bc->mc, b)
                                       : rd_kafka_mock_broker_set_up(bc->mc, b);
        if (err) {
            snprintf(reply, reply_size, "error: could not set broker %d %s: %s", b,
                     down ? "down" : "up", rd_kafka_err2str(err));
            return -1;
        }
        if (down && !bc->down[b])
            bc->outages++;
        bc->down[b] = down;
        bc->up_at[b] = down && ms > 0 ? kiln_broker_now() + ms / 1000.0 : 0;
        KILN_LOG_WARN("fault: broker %d %s%s", b, down ? "down" : "up",
                      down && ms > 0 ? " (back up on a timer)" : "");
    }
    return 0;
}

/* Optional trailing broker id: 0 (all) when absent, -1 when invalid. */
static int kiln_broker_id_arg(const kiln_broker_ctl_t *bc, const char *s) {
    if (!s)
        return 0;
    int id = atoi(s);
    return id >= 1 && id <= bc->brokers ? id : -1;
}

/* Runs one control command; writes one reply line (without newline). */
static void kiln_broker_ctl_exec(kiln_broker_ctl_t *bc, char *line, char *reply, size_t rs) {
    char *argv[8];
    int argc = 0;
    for (char *tok = strtok(line, " \t\r\n"); tok && argc < 8; tok = strtok(NULL, " \t\r\n"))
        argv[argc++] = tok;
    if (!argc)
        return;
    const char *cmd = argv[0];
    bc->commands++;
    if (!strcmp(cmd, "down") || !strcmp(cmd, "up")) {
        int down = !strcmp(cmd, "down");
        long ms = down && argc > 1 ? atol(argv[1]) : 0;
        int id = kiln_broker_id_arg(bc, argc > 1 + down ? argv[1 + down] : NULL);
        if (id < 0 || ms < 0 || argc > 2 + down) {
            snprintf(reply, rs, "error: usage: %s", down ? "down [MS] [BROKER]" : "up [BROKER]");
            return;
        }
        char who[16] = "all";
        if (id)
            snprintf(who, sizeof(who), "%d", id);
        if (!kiln_broker_set_state(bc, id, down, ms, reply, rs))
            snprintf(reply, rs, "ok %s broker=%s ms=%ld", cmd, who, ms);
    } else if (!strcmp(cmd, "errors") || !strcmp(cmd, "clear")) {
        int errors = !strcmp(cmd, "errors");
        int api = argc > 1 ? kiln_broker_api_parse(argv[1]) : -1;
        long n = errors && argc > 2 ? atol(argv[2]) : 0;
        rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION;
        if (api < 0 || (errors && (argc < 3 || argc > 4 || n < 1 || n > 100000)) ||
            (!errors && argc != 2)) {
            snprintf(reply, rs, "error: usage: %s", errors ? "errors API N [ERR]" : "clear API");
            return;
        }
        if (errors && argc == 4 && kiln_broker_err_parse(argv[3], &err)) {
            snprintf(reply, rs, "error: unknown Kafka error \"%s\"", argv[3]);
            return;
        }
        if (!errors) {
            rd_kafka_mock_clear_request_errors(bc->mc, (int16_t)api);
            KILN_LOG_WARN("fault: request errors of ApiKey %d cleared", api);
            snprintf(reply, rs, "ok clear %s", argv[1]);
            return;
        }
        rd_kafka_resp_err_t *errs = malloc((size_t)n * sizeof(*errs));
        if (!errs) {
            snprintf(reply, rs, "error: out of memory");
            return;
        }
        for (long i = 0; i < n; i++)
            errs[i] = err;
        rd_kafka_mock_push_request_errors_array(bc->mc, (int16_t)api, (size_t)n, errs);
        free(errs);
        bc->errors_pushed += n;
        KILN_LOG_WARN("fault: the next %ld request(s) of ApiKey %d fail with %s", n, api,
                      rd_kafka_err2name(err));
        snprintf(reply, rs, "ok errors %s %ld %s", argv[1], n, rd_kafka_err2name(err));
    } else if (!strcmp(cmd, "rtt")) {
        long ms = argc > 1 ? atol(argv[1]) : -1;
        int id = kiln_broker_id_arg(bc, argc > 2 ? argv[2] : NULL);
        if (argc < 2 || argc > 3 || ms < 0 || id < 0) {
            snprintf(reply, rs, "error: usage: rtt MS [BROKER]");
            return;
        }
        for (int b = id ? id : 1; b <= (id ? id : bc->brokers); b++)
            rd_kafka_mock_broker_set_rtt(bc->mc, b, (int)ms);
        KILN_LOG_WARN("fault: round-trip delay %ld ms", ms);
        snprintf(reply, rs, "ok rtt %ld", ms);
    } else if (!strcmp(cmd, "status")) {
        char down[64] = "";
        size_t len = 0;
        for (int b = 1; b <= bc->brokers; b++)
            if (bc->down[b])
                len += snprintf(down + len, sizeof(down) - len, "%s%d", len ? "," : "", b);
        snprintf(reply, rs, "ok status brokers=%d down=%s outages=%ld errors_pushed=%ld commands=%ld",
                 bc->brokers, len ? down : "none", bc->outages, bc->errors_pushed, bc->commands);
    } else
        snprintf(reply, rs, "error: unknown command \"%s\" (see kiln broker --help)", cmd);
}

/* Brings back brokers whose "down MS" ran out, then runs the control file
 * if one arrived. */
static void kiln_broker_ctl_poll(kiln_broker_ctl_t *bc) {
    double now = kiln_broker_now();
    char reply[512];
    for (int b = 1; b <= bc->brokers; b++)
        if (bc->down[b] && bc->up_at[b] > 0 && now >= bc->up_at[b] &&
            kiln_broker_set_state(bc, b, 0, 0, reply, sizeof(reply)))
            KILN_LOG_ERROR("%s", reply + 7);
    if (!bc->path)
        return;
    char work[4096], out[4096], tmp[4096];
    snprintf(work, sizeof(work), "%s.work", bc->path);
    snprintf(out, sizeof(out), "%s.reply", bc->path);
    snprintf(tmp, sizeof(tmp), "%s.reply.tmp", bc->path);
    FILE *in = rename(bc->path, work) == 0 ? fopen(work, "r") : NULL;
    FILE *rp = in ? fopen(tmp, "w") : NULL;
    if (in) {
        char line[512];
        while (fgets(line, sizeof(line), in)) {
            if (line[0] == '#')
                continue;
            reply[0] = '\0';
            kiln_broker_ctl_exec(bc, line, reply, sizeof(reply));
            if (reply[0] && rp)
                fprintf(rp, "%s\n", reply);
            if (!strncmp(reply, "error", 5))
                KILN_LOG_WARN("control: %s", reply);
        }
        fclose(in);
        unlink(work);
        if (rp && !fclose(rp))
            rename(tmp, out);
        else
            KILN_LOG_WARN("could not write \"%s\": %s", out, strerror(errno));
    }
}

int kiln_cmd_broker(int argc, char **argv) {
    static struct option opts[] = {{"brokers", required_argument, 0, 'b'},
                                   {"control", required_argument, 0, 'C'}, KILN_CLI_LONGOPTS};
    kiln_cli_t cli = {0};
    int brokers = 1, c;
    const char *control = NULL;
    while ((c = getopt_long(argc, argv, "c:S:hb:", opts, NULL)) != -1) {
        if (kiln_cli_common_opt(&cli, c, optarg))
            continue;
        if (c == 'h') {
            kiln_broker_help();
            return KILN_EXIT_OK;
        } else if (c == 'b')
            brokers = atoi(optarg);
        else if (c == 'C')
            control = optarg;
        else
            return KILN_EXIT_USAGE;
    }
    if (brokers < 1 || brokers > KILN_BROKER_MAX) {
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
    kiln_broker_ctl_t bc = {.mc = mc, .brokers = brokers};
    if (!control)
        bc.path = kiln_conf_stack_path(cli.conf, "run/broker.ctl");
    else if (*control)
        bc.path = strdup(control);
    if (bc.path) {
        unlink(bc.path); /* a command left from an earlier broker is stale */
        KILN_LOG_INFO("fault injection: control file %s (see kiln broker --help)", bc.path);
    }
    kiln_cli_on_signals(&kiln_broker_run);
    while (kiln_broker_run) {
        rd_kafka_poll(rk, 100);
        kiln_broker_ctl_poll(&bc);
    }
    KILN_LOG_INFO("shutting down");
    free(bc.path);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    free(path);
    kiln_cli_free(&cli);
    return KILN_EXIT_OK;
}
