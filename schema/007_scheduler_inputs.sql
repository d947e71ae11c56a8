-- 007_scheduler_inputs.sql - what the scheduler's backlog inputs need.
--
-- Since the scheduler counts Kafka messages without a Postgres row
-- (high watermark - committed offset - open rows), it reads the committed
-- offsets, and it counts the job rows that arrived since its last round by
-- enqueued_at (the arrival-rate input): an index keeps that a range scan as
-- the jobs table grows.
GRANT SELECT ON offsets TO kiln_scheduler;
CREATE INDEX IF NOT EXISTS jobs_enqueued_at ON jobs (enqueued_at);
