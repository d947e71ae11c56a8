/*
 * tests/tools/rawproduce.c - a plain librdkafka producer with NO kiln code,
 * for interop and poison tests: proves that any Kafka client can submit.
 *
 *   rawproduce BOOTSTRAP TOPIC < lines
 * Each stdin line is "KEY<TAB>VALUE[<TAB>HEADER=VAL...]"; the value is sent
 * as is (it may be invalid JSON on purpose). A header field "+N" adds N
 * filler headers x-0=0 .. x-<N-1>=<N-1> (the job.max_headers test). Exit 0
 * when every message was acknowledged.
 */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failed;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    if (m->err) {
        fprintf(stderr, "rawproduce: delivery failed: %s\n", rd_kafka_err2str(m->err));
        failed++;
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: rawproduce BOOTSTRAP TOPIC < KEY<TAB>VALUE lines\n");
        return 2;
    }
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], errstr, sizeof(errstr));
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "rawproduce: %s\n", errstr);
        return 1;
    }
    static char line[1 << 20];
    int n = 0;
    while (fgets(line, sizeof(line), stdin)) {
        line[strcspn(line, "\n")] = '\0';
        char *val = strchr(line, '\t');
        if (!val)
            continue;
        *val++ = '\0';
        rd_kafka_headers_t *h = rd_kafka_headers_new(4);
        char *hdr = strchr(val, '\t');
        if (hdr) {
            *hdr++ = '\0';
            for (char *tok = strtok(hdr, "\t"); tok; tok = strtok(NULL, "\t")) {
                if (tok[0] == '+') { /* +N: N filler headers x-0=0 .. x-<N-1>=<N-1> */
                    for (int k = 0, cnt = atoi(tok + 1); k < cnt; k++) {
                        char hn[32], hv[16];
                        snprintf(hn, sizeof(hn), "x-%d", k);
                        snprintf(hv, sizeof(hv), "%d", k);
                        rd_kafka_header_add(h, hn, -1, hv, -1);
                    }
                    continue;
                }
                char *eq = strchr(tok, '=');
                if (eq) {
                    *eq = '\0';
                    rd_kafka_header_add(h, tok, -1, eq + 1, -1);
                }
            }
        }
        rd_kafka_resp_err_t err = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(argv[2]), RD_KAFKA_V_KEY(line, strlen(line)),
            RD_KAFKA_V_VALUE(val, strlen(val)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
        if (err) {
            fprintf(stderr, "rawproduce: %s\n", rd_kafka_err2str(err));
            rd_kafka_headers_destroy(h);
            failed++;
        }
        n++;
        rd_kafka_poll(rk, 0);
    }
    rd_kafka_flush(rk, 30000);
    rd_kafka_destroy(rk);
    fprintf(stderr, "rawproduce: %d message(s), %d failed\n", n, failed);
    return failed ? 1 : 0;
}
