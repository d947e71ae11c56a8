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
    {"stack.speak_workers", KILN_PROP_INT, "-1", -1, 64, U,
     "Number of speak workers (engine piper) `kiln up` starts next to the others. -1: one when "
     "speak.default_voice is installed under speak.voices_dir and `kiln up` is not given "
     "--workers, else none."},
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
    {"whisper.backend", KILN_PROP_STR, "cpu", 0, 0, W,
     "Compute backend of the whisper engine: cpu, cuda (a kiln built with `make CUDA=1`, on a "
     "GPU; the weights are copied to the device once at load) or auto (cuda when a GPU is "
     "visible, else cpu). cuda on a machine without one fails the load with the reason."},
    {"whisper.precision", KILN_PROP_STR, "fp16", 0, 0, W,
     "Input rounding of the matrix products on the cuda backend: fp32, tf32, fp16 or bf16 "
     "(fp32 accumulation; weights and activations stay fp32). The cpu backend is fp32."},
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
    {"job.max_headers", KILN_PROP_INT, "64", 0, 100000, W,
     "Most Kafka headers a job message may carry; more goes to the DLQ (BAD_JOB)."},
    {"worker.dlq_orphan_after_ms", KILN_PROP_INT, "60000", 4000, 3600000, W,
     "A dlq_outbox row not re-claimed by its (live) owner for this long may be taken over and "
     "sent by another worker after a scan of the DLQ (docs/chaos.md). The dead-letter "
     "producer's message.timeout.ms is half of it."},
    {"worker.dlq_relay_interval_ms", KILN_PROP_INT, "2000", 100, 3600000, W,
     "How often a worker looks for orphaned dlq_outbox rows (rows whose owner died)."},
    {"worker.modality", KILN_PROP_STR, "", 0, 0, W,
     "Modality this worker serves (its <prefix>.<modality>.jobs topic). Empty: the engine's "
     "(whisper, null, pace: transcribe; piper: speak). Must match the engine's."},

    /* speak workers (engine piper; docs/voice.md "speak jobs") */
    {"speak.voices_dir", KILN_PROP_STR, "var/models/voices", 0, 0, W | U,
     "Directory of converted Piper voices, one sub-directory per voice name (`make voices`)."},
    {"speak.default_voice", KILN_PROP_STR, "en_US-joe-medium", 0, 0, W,
     "Voice of speak jobs that name none (params.voice)."},
    {"speak.max_chars", KILN_PROP_INT, "20000", 1, 100000000, W,
     "Longest speak text accepted, in characters (code points); longer goes to the DLQ."},
    {"speak.default_format", KILN_PROP_STR, "wav", 0, 0, W,
     "Audio format of speak jobs that name none (params.format): wav, flac, ogg, opus, mp3."},
    {"speak.batch_max_ids", KILN_PROP_INT, "4096", 16, 10000000, W,
     "Phoneme ids per model call: the sentences of a batch's jobs go through the voice in "
     "chunks of at most this many ids (bounds memory). On speak.backend=cuda a call is one "
     "ragged batch on the GPU: raise it (e.g. 65536) so that a call fills the GPU; device "
     "memory stays bounded by speak.device_batch_samples."},
    {"speak.sentence_silence_ms", KILN_PROP_INT, "0", 0, 10000, W,
     "Silence after each sentence of a speak job, in milliseconds."},
    {"speak.backend", KILN_PROP_STR, "cpu", 0, 0, W,
     "Compute backend of the voices: cpu, cuda (a kiln built with `make CUDA=1`, on a GPU; "
     "each voice's weights are copied to the device once at load, and a batch's sentences run "
     "through the whole model as one ragged batch) or auto (cuda when a GPU is visible, else "
     "cpu). cuda on a machine without one fails the load with the reason."},
    {"speak.precision", KILN_PROP_STR, "fp32", 0, 0, W,
     "Input rounding of the flow's and decoder's matrix products on the cuda backend: fp32, "
     "tf32, fp16 or bf16 (fp32 accumulation; the text encoder and duration predictor always "
     "run fp32, so durations do not move)."},
    {"speak.device_batch_samples", KILN_PROP_INT, "4194304", 22050, 1000000000, W,
     "cuda backend: output samples per sub-batch of the flow and decoder (about 200 bytes of "
     "device memory each; the default is 190 s of 22 kHz audio, about 0.9 GB)."},

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
    {"scheduler.default_job_units", KILN_PROP_INT, "30", 1, BIG, S,
     "Work units assumed for a queued job that declares none, until jobs of its partition or "
     "modality have declared some (docs/scheduler.md)."},
    {"scheduler.rate_tau_ms", KILN_PROP_INT, "30000", 100, BIG, S,
     "Time constant of the measured arrival rate per partition (an exponentially weighted mean)."},

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
