/*
 * tests/tools/rawconsume.c - reads a whole topic with plain librdkafka (no
 * kiln code) and prints one line per message:
 *   PARTITION<TAB>OFFSET<TAB>KEY<TAB>HEADERS(k=v;...)<TAB>VALUE
 * It stops when every partition reached its end.
 *   rawconsume BOOTSTRAP TOPIC
 */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: rawconsume BOOTSTRAP TOPIC\n");
        return 2;
    }
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "group.id", "rawconsume", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "enable.partition.eof", "true", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "rawconsume: %s\n", errstr);
        return 1;
    }
    const struct rd_kafka_metadata *md;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, argv[2], NULL);
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) || md->topic_cnt != 1) {
        fprintf(stderr, "rawconsume: no metadata for %s\n", argv[2]);
        return 1;
    }
    int np = md->topics[0].partition_cnt;
    rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(np);
    for (int p = 0; p < np; p++)
        rd_kafka_topic_partition_list_add(tl, argv[2], p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_assign(rk, tl);
    rd_kafka_topic_partition_list_destroy(tl);
    int eofs = 0, idle = 0;
    while (eofs < np && idle < 100) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) {
            idle++;
            continue;
        }
        idle = 0;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
            eofs++;
        else if (!m->err) {
            printf("%d\t%lld\t%.*s\t", m->partition, (long long)m->offset, (int)m->key_len,
                   (const char *)m->key);
            rd_kafka_headers_t *h = NULL;
            if (!rd_kafka_message_headers(m, &h) && h) {
                const char *name;
                const void *val;
                size_t sz;
                for (size_t i = 0; !rd_kafka_header_get_all(h, i, &name, &val, &sz); i++)
                    printf("%s=%.*s;", name, (int)sz, (const char *)val);
            }
            printf("\t%.*s\n", (int)m->len, (const char *)m->payload);
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return 0;
}
