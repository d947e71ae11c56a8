-- 001_core.sql: jobs, results, offsets, assignments, workers.
-- The offsets table is the source of truth for consumption: a worker commits
-- its results and the next offset in one transaction, fenced by the epoch of
-- the partition's row in assignments.

CREATE TABLE jobs (
    id            text PRIMARY KEY,
    tenant        text NOT NULL,
    modality      text NOT NULL,
    status        text NOT NULL DEFAULT 'queued'
                  CHECK (status IN ('queued', 'running', 'done', 'failed', 'dead')),
    priority      int NOT NULL DEFAULT 0,
    attempts      int NOT NULL DEFAULT 0,
    work_units    double precision,
    input_uri     text,
    message       text,              -- the job message as produced (for requeue)
    topic         text,
    kpartition    int,
    enqueued_at   timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz,
    worker        text,
    error         text,
    error_detail  text,
    deadline      timestamptz
);
CREATE INDEX jobs_open ON jobs (enqueued_at) WHERE status IN ('queued', 'running');
CREATE INDEX jobs_tenant ON jobs (tenant, enqueued_at);
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE transcripts (
    job_id      text PRIMARY KEY REFERENCES jobs (id),
    tenant      text NOT NULL,
    language    text,
    text        text NOT NULL,
    duration_s  double precision,
    engine      text NOT NULL,
    model_ran   boolean NOT NULL,
    info        jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    tsv         tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED
);
CREATE INDEX transcripts_tsv ON transcripts USING gin (tsv);

CREATE TABLE segments (
    job_id          text NOT NULL REFERENCES jobs (id),
    idx             int NOT NULL,
    start_ms        bigint NOT NULL,
    end_ms          bigint NOT NULL,
    text            text NOT NULL,
    avg_logprob     real,
    no_speech_prob  real,
    PRIMARY KEY (job_id, idx)
);

CREATE TABLE words (
    job_id    text NOT NULL REFERENCES jobs (id),
    seg_idx   int NOT NULL,
    idx       int NOT NULL,
    start_ms  bigint NOT NULL,
    end_ms    bigint NOT NULL,
    word      text NOT NULL,
    prob      real,
    PRIMARY KEY (job_id, seg_idx, idx)
);

CREATE TABLE artifacts (
    job_id  text NOT NULL REFERENCES jobs (id),
    kind    text NOT NULL,
    uri     text NOT NULL,
    bytes   bigint NOT NULL,
    sha256  text NOT NULL,
    PRIMARY KEY (job_id, kind)
);

CREATE TABLE offsets (
    topic        text NOT NULL,
    kpartition   int NOT NULL,
    next_offset  bigint NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, kpartition)
);

-- One row per partition; epoch goes up whenever the owner changes. A worker's
-- commit locks the row FOR SHARE and checks (worker, epoch) = its own.
CREATE TABLE assignments (
    topic        text NOT NULL,
    kpartition   int NOT NULL,
    worker       text,
    epoch        bigint NOT NULL DEFAULT 0,
    assigned_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, kpartition)
);

CREATE TABLE workers (
    id          text PRIMARY KEY,
    host        text,
    pid         int,
    gpu         text,
    slots       int NOT NULL DEFAULT 1,
    engine      text,
    modalities  text[] NOT NULL DEFAULT '{transcribe}',
    started_at  timestamptz NOT NULL DEFAULT now(),
    heartbeat   timestamptz NOT NULL DEFAULT now(),
    status      text NOT NULL DEFAULT 'up',
    stats       jsonb NOT NULL DEFAULT '{}'
);

-- Messages the broker dropped before a worker read them (embedded mock
-- broker: 5 MB per partition, memory only). `kiln requeue` repairs them.
CREATE TABLE broker_losses (
    id           bigserial PRIMARY KEY,
    topic        text NOT NULL,
    kpartition   int NOT NULL,
    from_offset  bigint NOT NULL,
    to_offset    bigint NOT NULL,
    worker       text,
    detected_at  timestamptz NOT NULL DEFAULT now()
);
