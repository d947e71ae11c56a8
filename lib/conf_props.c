/*
 * lib/conf_props.c - THE property table. Every configuration key of kiln is
 * declared here once; `--help` and CONFIGURATION.md are generated from it.
 */
#include "kiln/conf.h"

#define W KILN_SCOPE_WORKER
#define S KILN_SCOPE_SCHED
#define P KILN_SCOPE_PRODUCER
#define A KILN_SCOPE_ALL
#define U KILN_SCOPE_STACK
#define SECRET KILN_SCOPE_SECRET
#define BIG 4611686018427387904LL

const kiln_prop_t kiln_conf_table[] = {
    /* where things live */
    {"stack.dir", KILN_PROP_STR, "./var", 0, 0, A,
     "Directory of the embedded stack (Postgres data, broker address, objects, logs)."},
    {"stack.workers", KILN_PROP_INT, "2", 0, 64, U,
     "Number of workers `kiln up` starts."},
    {"stack.pg_port", KILN_PROP_INT, "0", 0, 65535, U,
     "Loopback port of the embedded Postgres (0 picks a free one)."},
    {"stack.pg_datadir", KILN_PROP_STR, "", 0, 0, U,
     "Data directory of the embedded Postgres (recorded by `kiln up`; default <stack.dir>/pg/data)."},
    {"log.level", KILN_PROP_STR, "info", 0, 0, A, "Log level: error, warn, info or debug."},

    /* broker */
    {"broker.bootstrap", KILN_PROP_STR, "", 0, 0, A,
     "Kafka bootstrap servers. Empty: read the embedded broker's address from broker.addr_file."},
    {"broker.addr_file", KILN_PROP_STR, "", 0, 0, A,
     "File holding the embedded broker's bootstrap address (default <stack.dir>/broker.addr)."},
    {"broker.topic_prefix", KILN_PROP_STR, "kiln", 0, 0, A,
     "Prefix of every topic name (<prefix>.<modality>.jobs, <prefix>.events)."},
    {"broker.partitions.transcribe", KILN_PROP_INT, "32", 1, 4096, A,
     "Partitions of the transcribe job topic (the unit the scheduler moves)."},
    {"broker.partitions.speak", KILN_PROP_INT, "8", 1, 4096, A,
     "Partitions of the speak job topic."},
    {"broker.partitions.image", KILN_PROP_INT, "8", 1, 4096, A,
     "Partitions of the image job topic."},
    {"broker.partition_cap_bytes", KILN_PROP_INT, "3145728", 0, BIG, P,
     "Embedded mode: producers wait while a partition holds more unconsumed bytes than this "
     "(the mock broker keeps only about 5 MB per partition). 0 disables the check."},

    /* object store */
    {"store.url", KILN_PROP_STR, "", 0, 0, A,
     "Object store root: file:///path or s3://bucket[/prefix]. Empty: file://<stack.dir>/objects."},
    {"s3.endpoint", KILN_PROP_STR, "", 0, 0, A,
     "S3 endpoint URL (e.g. http://127.0.0.1:9000). Empty: https://s3.<region>.amazonaws.com."},
    {"s3.region", KILN_PROP_STR, "us-east-1", 0, 0, A, "S3 region used for SigV4 signing."},
    {"s3.access_key", KILN_PROP_STR, "", 0, 0, A | SECRET,
     "S3 access key id (falls back to AWS_ACCESS_KEY_ID)."},
    {"s3.secret_key", KILN_PROP_STR, "", 0, 0, A | SECRET,
     "S3 secret key (falls back to AWS_SECRET_ACCESS_KEY)."},
    {"s3.timeout_ms", KILN_PROP_INT, "30000", 100, 3600000, A, "Timeout of one S3 request."},

    /* worker */
    {"worker.id", KILN_PROP_STR, "", 0, 0, W,
     "Worker id, unique in the fleet. Empty: <hostname>-<pid>."},
    {"worker.engine", KILN_PROP_STR, "whisper", 0, 0, W,
     "Engine that runs transcribe jobs: whisper (Whisper in C), null (decode + measure, "
     "no model; for overhead benchmarks) or pace (null + a fixed time per audio second)."},
    {"worker.model", KILN_PROP_STR, "", 0, 0, W,
     "Model directory or file for the engine (whisper: a CTranslate2 directory or a whisper.cpp "
     "ggml-*.bin; empty: ./var/models/whisper-tiny.en, fetched by `make models`)."},
    {"worker.pace_us_per_unit", KILN_PROP_INT, "10000", 0, 60000000, W,
     "pace engine only: wall time spent per work unit (audio second), in microseconds."},
    {"worker.gpu", KILN_PROP_STR, "none", 0, 0, W, "GPU this worker runs on (label only)."},
    {"worker.metrics_addr", KILN_PROP_STR, "127.0.0.1", 0, 0, W,
     "Address the worker serves GET /metrics (Prometheus) and /healthz on; 0.0.0.0 or :: to be "
     "scraped from other hosts (docs/monitoring.md)."},
    {"worker.metrics_port", KILN_PROP_INT, "0", -1, 65535, W,
     "Port of the worker's /metrics. 0: any free port, written to "
     "<stack.dir>/run/worker-<id>.metrics; -1: no metrics server."},
    {"worker.slots", KILN_PROP_INT, "1", 1, 64, W, "Concurrent batches a worker runs."},
    {"worker.max_batch", KILN_PROP_INT, "16", 1, 4096, W,
     "Largest batch handed to the engine."},
    {"worker.max_queue_delay_us", KILN_PROP_INT, "5000", 0, 60000000, W,
     "How long a partial batch waits for more jobs (Triton semantics)."},
    {"worker.memory_budget_mb", KILN_PROP_INT, "512", 1, 1048576, W,
     "In-flight input bytes above which the worker stops fetching."},
    {"worker.heartbeat_ms", KILN_PROP_INT, "1000", 50, 600000, W,
     "Heartbeat period into the workers table."},
    {"worker.retry_budget", KILN_PROP_INT, "5", 0, 1000, W,
     "Attempts at a job with transient errors before it goes to the DLQ."},
    {"worker.retry_backoff_ms", KILN_PROP_INT, "100", 1, 600000, W,
     "First retry backoff; doubles on each attempt (capped at 10 s)."},
    {"worker.max_input_bytes", KILN_PROP_INT, "268435456", 1, BIG, W,
     "Largest input file accepted (bigger goes to the DLQ)."},
    {"worker.max_audio_seconds", KILN_PROP_INT, "14400", 1, 1000000, W,
     "Longest audio accepted, in seconds."},
    {"worker.max_message_bytes", KILN_PROP_INT, "1048576", 64, 100000000, W,
     "Largest job message accepted."},
    {"worker.max_json_depth", KILN_PROP_INT, "32", 2, 1000, W, "Deepest JSON nesting accepted."},
    {"worker.max_inline_bytes", KILN_PROP_INT, "65536", 0, 100000000, W | P,
     "Largest inline_b64 payload accepted in a job message."},

    /* scheduler */
    {"scheduler.metrics_addr", KILN_PROP_STR, "127.0.0.1", 0, 0, S,
     "Address the scheduler serves GET /metrics (Prometheus) and /healthz on."},
    {"scheduler.metrics_port", KILN_PROP_INT, "0", -1, 65535, S,
     "Port of the scheduler's /metrics. 0: any free port, written to "
     "<stack.dir>/run/scheduler.metrics; -1: no metrics server."},
    {"scheduler.interval_ms", KILN_PROP_INT, "1000", 50, 600000, S,
     "How often the scheduler recomputes the assignment."},
    {"scheduler.worker_timeout_ms", KILN_PROP_INT, "10000", 100, 3600000, S,
     "A worker silent for this long loses its partitions."},

    {"scheduler.policy", KILN_PROP_STR, "kiln", 0, 0, S,
     "kiln: move partitions by queued work and measured throughput (docs/scheduler.md); "
     "static: balanced, sticky round-robin."},
    {"scheduler.hysteresis_pct", KILN_PROP_INT, "10", 0, 100, S,
     "Move partitions only if the expected drain time improves by more than this percentage."},
    {"scheduler.min_dwell_ms", KILN_PROP_INT, "30000", 0, 3600000, S,
     "A partition stays this long with a new owner unless its owner dies or its deadline is at risk."},
    {"scheduler.move_cost_ms", KILN_PROP_INT, "2000", 0, 3600000, S,
     "Expected cost of handing one partition over (finish in flight, commit, refetch)."},
    {"scheduler.target_drain_ms", KILN_PROP_INT, "300000", 1000, BIG, S,
     "Autoscaling signal: desired workers per modality drain the expected backlog in this time."},
    {"scheduler.default_throughput", KILN_PROP_INT, "10", 1, 1000000, S,
     "Work units per second assumed for a worker before its throughput is measured."},

    /* producer */
    {"producer.wait_timeout_ms", KILN_PROP_INT, "0", 0, BIG, P,
     "`submit --wait`: give up after this long (0: wait forever)."},
    {"producer.backpressure_timeout_ms", KILN_PROP_INT, "600000", 0, BIG, P,
     "How long a producer waits for room in a full partition before failing with QUEUE_FULL."},

    /* pass-through documentation rows (any kafka.* / pg.* key is accepted) */
    {"kafka.*", KILN_PROP_STR, "", 0, 0, A,
     "Any librdkafka property, e.g. kafka.security.protocol=SASL_SSL."},
    {"pg.*", KILN_PROP_STR, "", 0, 0, A,
     "Any libpq connection keyword, e.g. pg.host, pg.port, pg.dbname, pg.user, pg.password "
     "(pg.password and kafka.sasl.password are masked in dumps)."},
};

const unsigned kiln_conf_table_n = sizeof(kiln_conf_table) / sizeof(kiln_conf_table[0]);
