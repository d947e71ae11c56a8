-- 005_speech.sql: results of speak jobs, their analyst view, and the same
-- roles and row-level security as 004_roles.sql gives transcripts.
--
-- A speak worker (engine piper, workers/batch_speak.c) inserts one row per
-- done job in the transaction that commits its batch (ON CONFLICT DO
-- NOTHING: a redelivered job never gets a second row). The audio, its word
-- and sentence timings (JSON) and a WebVTT are objects under
-- results/<tenant>/<job id>/ (speech.<format>, timings.json, speech.vtt),
-- also listed in artifacts.

CREATE TABLE speech (
    job_id         text PRIMARY KEY REFERENCES jobs (id),
    tenant         text NOT NULL,
    voice          text NOT NULL,
    characters     int NOT NULL,               -- code points of the text
    audio_seconds  double precision NOT NULL,  -- of the stored audio
    sample_rate    int NOT NULL,               -- of the stored audio
    format         text NOT NULL CHECK (format IN ('wav', 'flac', 'ogg', 'opus', 'mp3')),
    uri            text NOT NULL,              -- the audio
    timings_uri    text,                       -- timings.json
    engine         text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX speech_tenant ON speech (tenant, created_at);

-- One row per finished speak job (docs/queries.md).
CREATE VIEW speech_results AS
SELECT j.id AS job_id, j.tenant, j.status, s.voice, s.characters, s.audio_seconds,
       s.sample_rate, s.format, s.uri, s.timings_uri, s.engine,
       s.characters / nullif(s.audio_seconds, 0) AS characters_per_second,
       j.enqueued_at, j.started_at, j.finished_at,
       EXTRACT(EPOCH FROM (j.finished_at - j.enqueued_at)) AS latency_s,
       j.worker
FROM jobs j JOIN speech s ON s.job_id = j.id;

-- The view runs with the privileges and row-level security of who queries
-- it (an analyst sees only the tenant of kiln.tenant), as in 004_roles.sql.
ALTER VIEW speech_results SET (security_invoker = true);

GRANT SELECT, INSERT ON speech TO kiln_worker;
GRANT SELECT ON speech TO kiln_producer;  -- kiln submit --wait prints the result URIs
GRANT SELECT ON speech, speech_results TO kiln_analyst;

ALTER TABLE speech ENABLE ROW LEVEL SECURITY;
CREATE POLICY kiln_services ON speech FOR ALL TO kiln_worker, kiln_scheduler, kiln_producer
    USING (true) WITH CHECK (true);
CREATE POLICY kiln_analyst_tenant ON speech FOR SELECT TO kiln_analyst
    USING (tenant = current_setting('kiln.tenant', true));
