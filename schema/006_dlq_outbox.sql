-- 006_dlq_outbox.sql: the transactional outbox of dead letters (exactly-once
-- DLQ; workers/dlq_outbox.c and docs/chaos.md).
--
-- A worker inserts one dlq_outbox row per dead-lettered job in the same
-- transaction that marks the job dead and commits the partition's offset.
-- After COMMIT the row's owner produces it to its topic with the header
-- kiln-outbox-id = id and deletes the row once the broker acknowledged it.
-- Only the owner (worker, worker_host, worker_pid) may produce a row. A row
-- changes owner only when its owner process is gone (the workers row shows
-- another pid, or status 'stopped') or it has not been re-claimed for
-- worker.dlq_orphan_after_ms; the new owner first scans the topic from
-- dlq_outbox_scan for the row's kiln-outbox-id and produces it only when
-- absent.
--
-- dlq_outbox_scan: per DLQ partition, the offset below which every message
-- carrying a kiln-outbox-id has had its row deleted (advanced in the same
-- transaction as those deletes).
--
-- Rows hold the dead job's message and headers (tenant data): row-level
-- security as in 004_roles.sql, an analyst sees only kiln.tenant's rows.

CREATE TABLE dlq_outbox (
    id           bigserial PRIMARY KEY,
    job_id       text NOT NULL,
    tenant       text NOT NULL,
    topic        text NOT NULL,          -- <prefix>.<modality>.dlq
    key          bytea,                  -- the job message's key (NULL: none)
    payload      bytea,                  -- the job message as consumed
    headers      jsonb NOT NULL,         -- [{"n": name, "v": text | "x": hex | null}], in order
    worker       text NOT NULL,          -- owner: only this process may produce the row
    worker_host  text NOT NULL,
    worker_pid   int NOT NULL,
    owned_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    sends        int NOT NULL DEFAULT 0, -- produce attempts (relay takeovers included)
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dlq_outbox_topic ON dlq_outbox (topic, owned_at);

CREATE TABLE dlq_outbox_scan (
    topic        text NOT NULL,
    kpartition   int NOT NULL,
    next_offset  bigint NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, kpartition)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON dlq_outbox, dlq_outbox_scan TO kiln_worker;
GRANT USAGE ON SEQUENCE dlq_outbox_id_seq TO kiln_worker;
GRANT SELECT ON dlq_outbox TO kiln_analyst;

-- own policy names: 004's kiln_services / kiln_analyst_tenant stay on its five tables
ALTER TABLE dlq_outbox ENABLE ROW LEVEL SECURITY;
CREATE POLICY dlq_outbox_services ON dlq_outbox FOR ALL TO kiln_worker
    USING (true) WITH CHECK (true);
CREATE POLICY dlq_outbox_analyst_tenant ON dlq_outbox FOR SELECT TO kiln_analyst
    USING (tenant = current_setting('kiln.tenant', true));
