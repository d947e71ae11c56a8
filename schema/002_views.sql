-- 002_views.sql: analyst views.

-- One row per finished transcription job.
CREATE VIEW v_transcripts AS
SELECT j.id AS job_id, j.tenant, j.status, t.language, t.text, t.duration_s,
       t.engine, t.model_ran,
       j.enqueued_at, j.started_at, j.finished_at,
       EXTRACT(EPOCH FROM (j.finished_at - j.enqueued_at)) AS latency_s,
       j.worker, t.tsv
FROM jobs j JOIN transcripts t ON t.job_id = j.id;

-- Throughput per modality and hour: jobs, audio seconds, mean latency.
CREATE VIEW v_throughput AS
SELECT j.modality, date_trunc('hour', j.finished_at) AS hour,
       count(*) FILTER (WHERE j.status = 'done') AS jobs_done,
       count(*) FILTER (WHERE j.status = 'dead') AS jobs_dead,
       coalesce(sum(t.duration_s), 0) AS audio_seconds,
       avg(EXTRACT(EPOCH FROM (j.finished_at - j.enqueued_at))) AS mean_latency_s
FROM jobs j LEFT JOIN transcripts t ON t.job_id = j.id
WHERE j.finished_at IS NOT NULL
GROUP BY 1, 2;
