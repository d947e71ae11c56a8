-- 003_scheduler.sql: what the scheduler decided last (for `kiln status`,
-- /metrics and autoscalers): desired workers per modality, rebalances.
CREATE TABLE scheduler_status (
    id          int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    policy      text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    rebalances  bigint NOT NULL DEFAULT 0,
    moved_total bigint NOT NULL DEFAULT 0,
    desired     jsonb NOT NULL DEFAULT '{}',
    last_plan   jsonb NOT NULL DEFAULT '{}'
);
