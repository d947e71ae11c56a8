-- 004_roles.sql: database roles with the least privilege each component
-- needs, and row-level security by tenant for analysts.
--
--   kiln_worker     workers: claim jobs, write results, job status, offsets,
--                   heartbeats, broker losses; read (and lock) assignments
--   kiln_scheduler  the scheduler: read the fleet and the backlog, write
--                   assignments and its status
--   kiln_producer   kiln submit / libkiln / kiln requeue / kiln dlq: record
--                   jobs, read offsets (producer backpressure)
--   kiln_analyst    read-only, one tenant at a time: rows of jobs,
--                   transcripts, segments, words and artifacts, and the views
--                   built on them, are visible only where their tenant equals
--                   the session setting kiln.tenant (SET kiln.tenant = 'acme',
--                   or options=-c kiln.tenant=acme in the connection string)
--
-- The roles are NOLOGIN groups: grant them to login roles
-- (GRANT kiln_worker TO worker_gpu1) or ALTER ROLE kiln_worker LOGIN PASSWORD.
-- Roles belong to the cluster, not the database, so each is created only
-- when missing (another kiln database in the same cluster runs this again).
-- The owner of the tables (whoever ran `kiln migrate`; the embedded stack's
-- superuser postgres) is not subject to row-level security.
-- See docs/security.md.

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['kiln_worker', 'kiln_scheduler', 'kiln_producer', 'kiln_analyst'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
END
$$;

GRANT USAGE ON SCHEMA public TO kiln_worker, kiln_scheduler, kiln_producer, kiln_analyst;

-- workers (workers/worker.c, workers/batch.c)
GRANT SELECT, INSERT, UPDATE ON jobs, offsets, workers TO kiln_worker;
GRANT SELECT, INSERT ON transcripts, segments, words, artifacts TO kiln_worker;
GRANT INSERT ON broker_losses TO kiln_worker;
GRANT USAGE ON SEQUENCE broker_losses_id_seq TO kiln_worker;
-- the commit's fence reads assignments FOR SHARE, which needs UPDATE on one
-- column: the least harmful one
GRANT SELECT ON assignments TO kiln_worker;
GRANT UPDATE (assigned_at) ON assignments TO kiln_worker;

-- the scheduler (scheduler/scheduler.c)
GRANT SELECT ON jobs, workers TO kiln_scheduler;
GRANT SELECT, INSERT, UPDATE ON assignments, scheduler_status TO kiln_scheduler;

-- producers (producers/producer.c, cmd/submit.c, cmd/dlq.c)
GRANT SELECT, INSERT, UPDATE, DELETE ON jobs TO kiln_producer;
GRANT SELECT ON transcripts, offsets TO kiln_producer;

-- analysts: read-only
GRANT SELECT ON jobs, transcripts, segments, words, artifacts TO kiln_analyst;
GRANT SELECT ON v_transcripts, v_throughput TO kiln_analyst;

-- Row-level security. Policies are permissive and per role: the services
-- see and write every tenant's rows; an analyst sees the rows of the tenant
-- named by kiln.tenant, none when it is unset or empty, and has no policy
-- (hence no rows) for INSERT, UPDATE or DELETE even if granted by mistake.
-- segments, words and artifacts carry no tenant column: they follow their
-- job (whose own policy applies inside the subquery as well).
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['jobs', 'transcripts', 'segments', 'words', 'artifacts'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        IF EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = t::regclass
                   AND polname IN ('kiln_services', 'kiln_analyst_tenant')) THEN
            EXECUTE format('DROP POLICY IF EXISTS kiln_services ON %I', t);
            EXECUTE format('DROP POLICY IF EXISTS kiln_analyst_tenant ON %I', t);
        END IF;
        EXECUTE format('CREATE POLICY kiln_services ON %I FOR ALL'
                       ' TO kiln_worker, kiln_scheduler, kiln_producer'
                       ' USING (true) WITH CHECK (true)', t);
        IF t IN ('jobs', 'transcripts') THEN
            EXECUTE format('CREATE POLICY kiln_analyst_tenant ON %I FOR SELECT TO kiln_analyst'
                           ' USING (tenant = current_setting(''kiln.tenant'', true))', t);
        ELSE
            EXECUTE format('CREATE POLICY kiln_analyst_tenant ON %I FOR SELECT TO kiln_analyst'
                           ' USING (EXISTS (SELECT 1 FROM jobs j WHERE j.id = %I.job_id'
                           '   AND j.tenant = current_setting(''kiln.tenant'', true)))', t, t);
        END IF;
    END LOOP;
END
$$;

-- The views run with the privileges and row-level security of the user who
-- queries them, not of their owner (a superuser, who bypasses RLS): without
-- this an analyst would read every tenant through them. The policies on the
-- base tables are applied before any condition of the query, so a leaky
-- function in a WHERE clause cannot see other tenants' rows either.
ALTER VIEW v_transcripts SET (security_invoker = true);
ALTER VIEW v_throughput SET (security_invoker = true);
