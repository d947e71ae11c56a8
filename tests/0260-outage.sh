# 0260-outage: Postgres goes away in the middle of a run (fast shutdown, then
# back after a few seconds); workers retry with backoff, reconnect, and every
# job still ends with exactly one terminal row.
. "$(dirname "$0")/lib.sh"
N=${OUTAGE_JOBS:-600}
check "stack up" stack_up --workers 2 --set worker.max_batch=8
tone "$TMPROOT/a.wav" 0.5
files=(); for i in $(seq "$N"); do files+=("$TMPROOT/a.wav"); done
"$KILN" submit "${files[@]}" > "$TMPROOT/ids" 2> "$TMPROOT/submit.err"
check "submitted" eq "$(wc -l < "$TMPROOT/ids")" "$N"
datadir=$(sed -n 's/^stack.pg_datadir = //p' "$KILN_STACK_DIR/stack.conf")
runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$datadir" -m fast -w stop > /dev/null 2>&1 \
  || /usr/lib/postgresql/15/bin/pg_ctl -D "$datadir" -m fast -w stop > /dev/null 2>&1
check "postgres stopped" bash -c "! psql '$(pgconn)' -c 'select 1' > /dev/null 2>&1"
sleep 3
check "workers survive the outage" bash -c "kill -0 \$(cat '$KILN_STACK_DIR/run/worker-w1.pid') && kill -0 \$(cat '$KILN_STACK_DIR/run/worker-w2.pid')"
"$KILN" up --workers 2 > /dev/null 2>&1
check "postgres back (kiln up restarts what is missing)" psql "$(pgconn)" -c 'select 1' -q -o /dev/null
check "all jobs terminal" wait_until 120 all_terminal
check "exactly $N done" eq "$(q "SELECT count(*) FROM jobs WHERE status='done'")" "$N"
check "one transcript per job" eq "$(q "SELECT count(*) FROM transcripts")" "$N"
check "workers logged retries" bash -c "grep -qi 'retrying\|could not' '$KILN_STACK_DIR'/log/worker-w*.log"
finish
