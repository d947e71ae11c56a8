# 0200-e2e: 1,000 jobs through the embedded stack with 2 workers: exactly
# 1,000 done rows, no duplicates, stored offsets equal the high watermarks.
. "$(dirname "$0")/lib.sh"
N=${E2E_JOBS:-1000}
check "stack up" stack_up --workers 2
tone "$TMPROOT/a.wav" 0.5
files=(); for i in $(seq "$N"); do files+=("$TMPROOT/a.wav"); done
"$KILN" submit --tenant acme "${files[@]}" > "$TMPROOT/ids" 2> "$TMPROOT/submit.err"
check "submit printed $N ids" eq "$(wc -l < "$TMPROOT/ids")" "$N"
check "all jobs terminal" wait_until 120 all_terminal
check "exactly $N done rows" eq "$(q "SELECT count(*) FROM jobs WHERE status='done'")" "$N"
check "no duplicate transcripts" eq "$(q "SELECT count(*) - count(DISTINCT job_id) FROM transcripts")" 0
check "one transcript per job" eq "$(q "SELECT count(*) FROM transcripts")" "$N"
check "one artifact per job" eq "$(q "SELECT count(*) FROM artifacts")" "$N"
check "null engine says no model ran" eq "$(q "SELECT count(*) FROM transcripts WHERE NOT model_ran AND info->>'note' LIKE 'no model ran%'")" "$N"
check "durations measured" eq "$(q "SELECT count(*) FROM transcripts WHERE abs(duration_s - 0.5) < 0.01")" "$N"
check "artifacts in the store" eq "$(find "$KILN_STACK_DIR/objects/results/acme" -name transcript.json | wc -l)" "$N"
status=$("$KILN" status)
echo "$status" | sed 's/^/# /' | head -12
line=$(echo "$status" | grep 'kiln.transcribe.jobs')
hw=$(echo "$line" | awk '{print $4}'); backlog=$(echo "$line" | awk '{print $7}')
check "high watermarks sum to $N" eq "$hw" "$N"
check "stored offsets equal high watermarks (backlog 0)" eq "$backlog" 0
check "stored offsets sum to $N" eq "$(q "SELECT sum(next_offset) FROM offsets")" "$N"
check "both workers did work" eq "$(q "SELECT count(DISTINCT worker) FROM jobs")" 2
check "v_transcripts has every job" eq "$(q "SELECT count(*) FROM v_transcripts WHERE tenant='acme'")" "$N"
# graceful drain: SIGTERM a worker, it exits 0 and says it drained
pid=$(cat "$KILN_STACK_DIR/run/worker-w1.pid")
kill -TERM "$pid"
check "SIGTERM: worker exits" wait_until 20 bash -c "! kill -0 $pid 2>/dev/null"
check "SIGTERM: worker drained and left" grep -q "draining" "$KILN_STACK_DIR/log/worker-w1.log"
check "SIGTERM: status stopped" eq "$(q "SELECT status FROM workers WHERE id='w1'")" stopped
check "scheduler moves w1's partitions to w2" wait_until 10 bash -c "[ \"\$(psql '$(pgconn)' -At -c \"SELECT count(*) FROM assignments WHERE worker='w1'\")\" = 0 ]"
finish
