# 0710-tenant_isolation: the Postgres roles and row-level security of
# schema/004_roles.sql. The scheduler, a worker and the producer run as
# kiln_scheduler, kiln_worker and kiln_producer (least privilege is enough to
# process jobs); then an analyst of tenant acme sees only acme's rows in every
# results table, both views and the full-text search, cannot write, and a
# leaky function sees no other tenant's text. Negative controls show that
# the checks would catch a leak.
. "$(dirname "$0")/lib.sh"
check "stack up (no workers yet)" stack_up --workers 0
A=acme B=globex
check "the roles exist and cannot log in by default" \
    eq "$(q "SELECT string_agg(rolname || '=' || rolcanlogin, ',' ORDER BY rolname) FROM pg_roles WHERE rolname LIKE 'kiln\_%'")" \
    "kiln_analyst=false,kiln_producer=false,kiln_scheduler=false,kiln_worker=false"
for r in kiln_worker kiln_scheduler kiln_producer kiln_analyst; do q "ALTER ROLE $r LOGIN" > /dev/null; done

# ---- the daemons and the producer under their own roles
kill -TERM "$(cat "$KILN_STACK_DIR/run/scheduler.pid")"
wait_until 10 bash -c "! kill -0 $(cat "$KILN_STACK_DIR/run/scheduler.pid") 2>/dev/null" > /dev/null
daemon() {  # name args...
  local name=$1; shift
  setsid "$KILN" "$@" > "$KILN_STACK_DIR/log/$name.log" 2>&1 < /dev/null &
  echo $! > "$KILN_STACK_DIR/run/$name.pid"
}
daemon scheduler scheduler --set pg.user=kiln_scheduler
daemon worker-w1 worker --set worker.id=w1 --set pg.user=kiln_worker
check "worker (kiln_worker) holds partitions from the scheduler (kiln_scheduler)" \
    wait_until 20 bash -c "[ \"\$(psql '$(pgconn)' -At -c \"SELECT count(*) FROM assignments WHERE worker = 'w1'\")\" -gt 0 ]"
tone "$TMPROOT/a.wav" 0.3
echo "not audio" > "$TMPROOT/bad.wav"
submit_as_producer() { "$KILN" submit --set pg.user=kiln_producer "$@" > /dev/null; }
check "submit as kiln_producer (tenant $A)" submit_as_producer --tenant $A "$TMPROOT/a.wav" "$TMPROOT/a.wav"
check "submit as kiln_producer (tenant $B)" \
    submit_as_producer --tenant $B "$TMPROOT/a.wav" "$TMPROOT/a.wav" "$TMPROOT/bad.wav"
check "the daemons are connected as their roles" eq "$(q "SELECT string_agg(DISTINCT usename, ',' ORDER BY usename)
    FROM pg_stat_activity WHERE application_name LIKE 'kiln-worker%' OR application_name LIKE 'kiln-sched%'")" \
    "kiln_scheduler,kiln_worker"
check "all jobs terminal" wait_until 30 all_terminal
check "4 done, 1 dead, as kiln_worker" \
    eq "$(q "SELECT count(*) FILTER (WHERE status = 'done') || ',' || count(*) FILTER (WHERE status = 'dead') FROM jobs")" "4,1"
check "no permission error in the daemons' logs" bash -c "! grep -il 'permission denied' '$KILN_STACK_DIR'/log/*.log"

# ---- rows for every results table (as superuser: the null engine writes no text)
q "UPDATE transcripts SET text = CASE tenant WHEN '$A' THEN 'the printing press of acme'
                                             ELSE 'a zebra crossing of globex' END" > /dev/null
q "INSERT INTO segments (job_id, idx, start_ms, end_ms, text) SELECT job_id, 0, 0, 300, text FROM transcripts" > /dev/null
q "INSERT INTO words (job_id, seg_idx, idx, start_ms, end_ms, word) SELECT job_id, 0, 0, 0, 100, split_part(text, ' ', 2) FROM transcripts" > /dev/null
q "INSERT INTO artifacts (job_id, kind, uri, bytes, sha256) SELECT id, 'probe', 'file:///x/' || id, 1, 'x' FROM jobs ON CONFLICT DO NOTHING" > /dev/null

# expected: what the superuser sees for one tenant (and it must differ from everything)
ids_of() {  # table tenant
  local col=job_id; [ "$1" = jobs ] && col=id
  q "SELECT coalesce(string_agg(DISTINCT x.$col, ',' ORDER BY x.$col), '') FROM $1 x JOIN jobs j ON j.id = x.$col WHERE j.tenant = '$2'"
}
# analyst sessions: SET ROLE from the superuser's connection, and a real login
# with the tenant in the connection options (what a BI gateway would do)
aq() {  # tenant sql
  psql "$(pgconn)" -X -q -At -v ON_ERROR_STOP=1 -c "SET ROLE kiln_analyst" -c "SET kiln.tenant = '$1'" -c "$2"
}
alogin() {  # tenant sql
  psql "$(pgconn | sed 's/user=postgres/user=kiln_analyst/') options='-c kiln.tenant=$1'" -X -At -v ON_ERROR_STOP=1 -c "$2"
}
for t in jobs transcripts segments words artifacts; do
  col=job_id; [ $t = jobs ] && col=id
  ea=$(ids_of $t $A); eb=$(ids_of $t $B)
  check "$t: both tenants have rows" test -n "$ea" -a -n "$eb"
  check "$t: analyst of $A sees exactly $A's rows" \
      eq "$(aq $A "SELECT coalesce(string_agg(DISTINCT $col, ',' ORDER BY $col), '') FROM $t")" "$ea"
  check "$t: analyst logged in for $B sees exactly $B's rows" \
      eq "$(alogin $B "SELECT coalesce(string_agg(DISTINCT $col, ',' ORDER BY $col), '') FROM $t")" "$eb"
  check "$t: analyst without kiln.tenant sees nothing" \
      eq "$(psql "$(pgconn)" -X -q -At -c "SET ROLE kiln_analyst" -c "SELECT count(*) FROM $t")" 0
done
check "v_transcripts: analyst of $A sees exactly $A's jobs" \
    eq "$(aq $A "SELECT string_agg(job_id, ',' ORDER BY job_id) FROM v_transcripts")" "$(ids_of transcripts $A)"
check "v_transcripts: no other tenant through the view" \
    eq "$(aq $A "SELECT count(*) FROM v_transcripts WHERE tenant <> '$A'")" 0
check "v_throughput: analyst of $A counts only $A's jobs (2 done, 0 dead)" \
    eq "$(aq $A "SELECT sum(jobs_done) || ',' || sum(jobs_dead) FROM v_throughput")" "2,0"
check "v_throughput: the superuser counts all (4 done, 1 dead)" \
    eq "$(q "SELECT sum(jobs_done) || ',' || sum(jobs_dead) FROM v_throughput")" "4,1"
fts() { echo "SELECT count(*) FROM $1 WHERE tsv @@ plainto_tsquery('english', '$2')"; }
check "full-text search: $A finds its own text" eq "$(aq $A "$(fts transcripts 'printing press')")" 2
check "full-text search: $A does not find $B's text" eq "$(aq $A "$(fts transcripts zebra)")" 0
check "full-text search through v_transcripts: $A does not find $B's text" \
    eq "$(aq $A "$(fts v_transcripts zebra)")" 0
check "full-text search: $B finds its own text, not $A's" \
    eq "$(alogin $B "$(fts v_transcripts zebra)"),$(alogin $B "$(fts transcripts printing)")" "2,0"
check "full-text search: the superuser finds $B's text" eq "$(q "$(fts transcripts zebra)")" 2

# a function that leaks its argument, cheap enough to run before any filter
leak="CREATE FUNCTION pg_temp.leak(text) RETURNS boolean LANGUAGE plpgsql COST 0.0000001
      AS \$\$ BEGIN RAISE NOTICE 'leaked: %', \$1; RETURN true; END \$\$"
out=$(psql "$(pgconn)" -X -q -At -c "SET ROLE kiln_analyst" -c "SET kiln.tenant = '$A'" -c "$leak" \
      -c "SELECT count(*) FROM v_transcripts WHERE pg_temp.leak(text)" \
      -c "SELECT count(*) FROM transcripts WHERE pg_temp.leak(text)" \
      -c "SELECT count(*) FROM segments WHERE pg_temp.leak(text)" 2>&1)
has() { grep -q -- "$1" <<< "$2"; }
check "a leaky function runs (sees $A's text)" has 'leaked: the printing press' "$out"
check "a leaky function never sees $B's text" eval '! has zebra "$out"'

# ---- analysts cannot write
denied() {  # sql: must fail with a permission error
  local err
  err=$(aq $A "$1" 2>&1 >/dev/null) && return 1
  grep -q 'permission denied' <<< "$err" || { echo "# $err" >&2; return 1; }
}
check "analyst cannot INSERT into jobs" denied "INSERT INTO jobs (id, tenant, modality) VALUES ('x', '$A', 'transcribe')"
check "analyst cannot UPDATE transcripts" denied "UPDATE transcripts SET text = 'x'"
check "analyst cannot DELETE segments" denied "DELETE FROM segments"
check "analyst cannot read offsets" denied "SELECT * FROM offsets"
check "analyst cannot read assignments" denied "SELECT * FROM assignments"
check "the rows are unchanged" eq "$(q "SELECT count(*) FROM transcripts WHERE text = 'x'")" 0

# ---- the services see every tenant
check "kiln_worker sees every tenant's jobs" \
    eq "$(psql "$(pgconn)" -X -q -At -c "SET ROLE kiln_worker" -c "SELECT count(DISTINCT tenant) FROM jobs")" 2
check "kiln_scheduler cannot read transcripts" bash -c \
    "! psql '$(pgconn)' -X -q -At -c 'SET ROLE kiln_scheduler' -c 'SELECT 1 FROM transcripts' 2>/dev/null"

# ---- negative controls: the same checks fail where the protection is removed
check "control: a view without security_invoker would leak $B's rows" eq "$(psql "$(pgconn)" -X -q -At -v ON_ERROR_STOP=1 \
    -c "BEGIN" -c "ALTER VIEW v_transcripts SET (security_invoker = false)" \
    -c "SET LOCAL ROLE kiln_analyst" -c "SET LOCAL kiln.tenant = '$A'" \
    -c "SELECT count(*) FROM v_transcripts WHERE tenant = '$B'" -c "ROLLBACK")" 2
check "control: without row-level security $A would see $B's jobs" eq "$(psql "$(pgconn)" -X -q -At -v ON_ERROR_STOP=1 \
    -c "BEGIN" -c "ALTER TABLE jobs DISABLE ROW LEVEL SECURITY" \
    -c "SET LOCAL ROLE kiln_analyst" -c "SET LOCAL kiln.tenant = '$A'" \
    -c "SELECT count(*) FROM jobs WHERE tenant = '$B'" -c "ROLLBACK")" 3

# ---- the migration is idempotent (roles are per cluster: a second database runs it again)
check "004_roles.sql runs again cleanly" \
    bash -c "psql '$(pgconn)' -X -q -v ON_ERROR_STOP=1 -f '$KILN_SRC/schema/004_roles.sql' 2>&1 | { ! grep -q .; }"
check "still 2 policies on each of the 6 tables (004 + speech)" \
    eq "$(q "SELECT count(*) FROM pg_policy WHERE polname IN ('kiln_services', 'kiln_analyst_tenant')")" 12
finish
