# 0210-crash: during a 2,000-job run, kill -9 a worker at random points (at
# least 3 times) and restart it. Every job ends with exactly one terminal
# row and there are no duplicate artifacts.
. "$(dirname "$0")/lib.sh"
N=${CRASH_JOBS:-2000}
# the pace engine takes 10 ms per job here, so the kills land mid-batch
check "stack up" stack_up --workers 2 --set worker.max_batch=8 --set worker.engine=pace \
    --set worker.pace_us_per_unit=10000
tone "$TMPROOT/a.wav" 1.0
files=(); for i in $(seq "$N"); do files+=("$TMPROOT/a.wav"); done
"$KILN" submit "${files[@]}" > "$TMPROOT/ids" 2> "$TMPROOT/submit.err" &
spid=$!
kills=0
RANDOM=42
while :; do
  sleep "0.$(( RANDOM % 7 + 2 ))"
  w=$(( RANDOM % 2 + 1 ))
  pid=$(cat "$KILN_STACK_DIR/run/worker-w$w.pid" 2>/dev/null)
  if [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; then
    kills=$((kills+1)); echo "# kill -9 worker w$w (pid $pid) at $(q "SELECT count(*) FROM jobs WHERE status='done'") done"
  fi
  sleep 0.2
  "$KILN" up --workers 2 > /dev/null 2>&1   # restarts the killed worker (settings from stack.conf)
  done_n=$(q "SELECT count(*) FROM jobs WHERE status IN ('done','dead')")
  if [ "$kills" -ge 3 ] && { [ "$done_n" -ge "$N" ] || [ "$kills" -ge 8 ]; }; then break; fi
done
wait $spid
check "submit succeeded" eq $? 0
check "killed at least 3 times" test "$kills" -ge 3
check "all jobs terminal" wait_until 180 all_terminal
check "exactly $N jobs" eq "$(q "SELECT count(*) FROM jobs")" "$N"
check "exactly $N done" eq "$(q "SELECT count(*) FROM jobs WHERE status='done'")" "$N"
check "no duplicate result rows" eq "$(q "SELECT count(*) FROM transcripts")" "$N"
check "no duplicate artifact rows" eq "$(q "SELECT count(*) FROM artifacts")" "$N"
check "one artifact object per job" eq "$(find "$KILN_STACK_DIR/objects/results" -name transcript.json | wc -l)" "$N"
check "artifact rows match objects (sha256)" bash -c "
  psql '$(pgconn)' -At -F' ' -c \"SELECT sha256, substr(uri, 8) FROM artifacts ORDER BY random() LIMIT 50\" |
  while read -r sha path; do echo \"\$sha  \$path\"; done | sha256sum -c --quiet"
check "some jobs were retried after a crash" test "$(q "SELECT count(*) FROM jobs WHERE attempts > 1")" -ge 1
check "offsets cover every message" eq "$(q "SELECT sum(next_offset) FROM offsets")" "$N"
finish
