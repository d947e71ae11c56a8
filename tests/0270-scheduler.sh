# 0270-scheduler: a real multi-process run. Four workers whose engine speed
# differs 20x (pace engine: 2 ms vs 40 ms per audio second) drain the same
# backlog twice: once under static assignment, once under kiln's scheduler.
# kiln must shift partitions toward the fast workers and drain sooner,
# measured in the same run. Then a killed worker's partitions must move to
# live workers within the heartbeat timeout.
. "$(dirname "$0")/lib.sh"
M=${SCHED_JOBS:-1200}
check "stack up (no workers yet)" stack_up --workers 0 --set broker.partitions.transcribe=8 \
    --set worker.engine=pace --set scheduler.policy=static --set scheduler.min_dwell_ms=1000 \
    --set scheduler.move_cost_ms=200 --set worker.max_batch=16
start_worker() {  # id pace_us
  setsid "$KILN" worker --set worker.id="$1" --set worker.pace_us_per_unit="$2" \
      > "$KILN_STACK_DIR/log/worker-$1.log" 2>&1 < /dev/null &
  echo $! > "$KILN_STACK_DIR/run/worker-$1.pid"
}
start_worker fast1 2000; start_worker fast2 2000; start_worker slow1 40000; start_worker slow2 40000
check "4 workers hold partitions" wait_until 20 bash -c "[ \"\$(psql '$(pgconn)' -At -c \"SELECT count(DISTINCT worker) FROM assignments WHERE topic='kiln.transcribe.jobs' AND worker IS NOT NULL\")\" = 4 ]"
tone "$TMPROOT/a.wav" 1.0
files=(); for i in $(seq "$M"); do files+=("$TMPROOT/a.wav"); done
drain() {  # prints seconds from first submit to all terminal
  local t0 t1
  t0=$(date +%s.%N)
  "$KILN" submit "${files[@]}" > /dev/null 2>> "$TMPROOT/submit.err" || return 1
  wait_until 240 all_terminal || return 1
  t1=$(date +%s.%N)
  echo "$t0 $t1" | awk '{printf "%.2f", $2 - $1}'
}
t_static=$(drain)
check "static: all done" eq "$(q "SELECT count(*) FROM jobs WHERE status='done'")" "$M"
echo "# static drain: ${t_static}s; jobs per worker: $(q "SELECT string_agg(worker || '=' || n, ' ') FROM (SELECT worker, count(*) n FROM jobs GROUP BY 1 ORDER BY 1) x")"
# switch the scheduler to kiln's policy (same stack, same workers)
kill -TERM "$(cat "$KILN_STACK_DIR/run/scheduler.pid")"; sleep 1
"$KILN" up --workers 0 --set scheduler.policy=kiln > /dev/null 2>&1
before=$(q "SELECT count(*) FROM jobs")
fast_before=$(q "SELECT count(*) FROM jobs WHERE worker LIKE 'fast%'")
t_kiln=$(drain)
check "kiln: all done" eq "$(q "SELECT count(*) FROM jobs WHERE status='done'")" "$((M + before))"
echo "# kiln drain: ${t_kiln}s; jobs per worker (both phases): $(q "SELECT string_agg(worker || '=' || n, ' ') FROM (SELECT worker, count(*) n FROM jobs GROUP BY 1 ORDER BY 1) x")"
echo "# ratio static/kiln: $(echo "$t_static $t_kiln" | awk '{printf "%.2f", $1 / $2}')"
check "kiln drains sooner than static" awk -v s="$t_static" -v k="$t_kiln" 'BEGIN { exit !(k < s) }'
fast_kiln=$(( $(q "SELECT count(*) FROM jobs WHERE worker LIKE 'fast%'") - fast_before ))
echo "# kiln phase: fast workers did $fast_kiln of $M jobs (static phase: $fast_before of $M)"
check "kiln moved work to the fast workers (>= 75% of jobs)" test "$fast_kiln" -ge $(( M * 3 / 4 ))
check "the scheduler recorded its decisions" test "$(q "SELECT moved_total FROM scheduler_status")" -gt 0
check "desired workers published" test -n "$(q "SELECT desired->>'transcribe' FROM scheduler_status")"
# failure: kill -9 a fast worker; its partitions move within the timeout (3 s) + a round
victim=fast1
owned=$(q "SELECT count(*) FROM assignments WHERE worker='$victim'")
kill -9 "$(cat "$KILN_STACK_DIR/run/worker-$victim.pid")"
t0=$(date +%s)
check "killed worker owned partitions" test "$owned" -gt 0
check "its partitions move within 5 s" wait_until 5 bash -c "[ \"\$(psql '$(pgconn)' -At -c \"SELECT count(*) FROM assignments WHERE worker='$victim'\")\" = 0 ]"
echo "# partitions of $victim moved after $(( $(date +%s) - t0 ))s"
for w in fast2 slow1 slow2; do kill -TERM "$(cat "$KILN_STACK_DIR/run/worker-$w.pid")" 2>/dev/null; done
finish
