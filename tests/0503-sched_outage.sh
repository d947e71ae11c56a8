# 0503-sched_outage: a Postgres outage longer than scheduler.worker_timeout_ms
# (3 s here) leaves every heartbeat stale. The scheduler must not take that as
# evidence of death: after the outage each worker gets the timeout again,
# counted from the scheduler's first round with Postgres back. Two stand-in
# workers (rows in `workers`, heartbeats written by this script) own the
# partitions; after the outage only fa heartbeats again. fb must keep its
# partitions for the grace period (before the fix they moved to fa in the
# first rounds), and must still lose them once it has been silent for the
# timeout with Postgres reachable. A third stand-in, fs, serves speak only:
# it must get every speak partition and no transcribe partition, and fa/fb no
# speak partition (modality-aware assignment, desired workers per modality).
. "$(dirname "$0")/lib.sh"
check "stack up (no workers)" stack_up --workers 0 --set broker.partitions.transcribe=4 \
    --set scheduler.min_dwell_ms=0
beat() {  # heartbeats for the id:modality pairs listed in $TMPROOT/beating, every 300 ms
  while [ -e "$TMPROOT/beating" ]; do
    for iw in $(cat "$TMPROOT/beating" 2>/dev/null); do
      psql "$(pgconn)" -X -q -c "INSERT INTO workers (id, slots, modalities, status, heartbeat)
        VALUES ('${iw%%:*}', 2, '{${iw#*:}}', 'up', now())
        ON CONFLICT (id) DO UPDATE SET status = 'up', heartbeat = now()" > /dev/null 2>&1
    done
    sleep 0.3
  done
}
echo "fa:transcribe fb:transcribe fs:speak" > "$TMPROOT/beating"
beat &
beat_pid=$!
owns() { [ "$(q "SELECT count(*) FROM assignments WHERE topic = 'kiln.transcribe.jobs' AND worker = '$1'")" "$2" "$3" ]; }
check "fa and fb own 2 partitions each" wait_until 15 bash -c "[ \"\$(psql '$(pgconn)' -X -At -c \"SELECT string_agg(worker || '=' || n, ' ' ORDER BY worker) FROM (SELECT worker, count(*) n FROM assignments WHERE topic = 'kiln.transcribe.jobs' GROUP BY 1) x\")\" = 'fa=2 fb=2' ]"
nspeak=$(q "SELECT count(*) FROM assignments WHERE topic = 'kiln.speak.jobs'")
check "speak partitions exist" test "$nspeak" -gt 0
check "all $nspeak speak partitions on fs (the one speak worker)" wait_until 5 bash -c "[ \"\$(psql '$(pgconn)' -X -At -c \"SELECT count(*) FROM assignments WHERE topic = 'kiln.speak.jobs' AND worker = 'fs'\")\" = $nspeak ]"
check "fs holds no transcribe partition" owns fs = 0
check "desired workers published per modality" eq "$(q "SELECT string_agg(k, ',' ORDER BY k) FROM scheduler_status, jsonb_object_keys(desired) k")" "image,speak,transcribe"
epochs=$(q "SELECT sum(epoch) FROM assignments WHERE topic = 'kiln.transcribe.jobs'")
datadir=$(sed -n 's/^stack.pg_datadir = //p' "$KILN_STACK_DIR/stack.conf")
runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$datadir" -m fast -w stop > /dev/null 2>&1 \
  || /usr/lib/postgresql/15/bin/pg_ctl -D "$datadir" -m fast -w stop > /dev/null 2>&1
check "postgres stopped" bash -c "! psql '$(pgconn)' -X -c 'select 1' > /dev/null 2>&1"
echo "fa:transcribe fs:speak" > "$TMPROOT/beating"
sleep 5   # > worker_timeout_ms: every heartbeat is now stale
"$KILN" up --workers 0 > /dev/null 2>&1
check "postgres back" psql "$(pgconn)" -X -c 'select 1' -q -o /dev/null
t_back=$(date +%s.%N)
sleep 2   # several scheduler rounds (300 ms), within the 3 s grace
check "fb keeps its partitions right after the outage" owns fb = 2
check "no epoch moved during the grace period" eq "$(q "SELECT sum(epoch) FROM assignments WHERE topic = 'kiln.transcribe.jobs'")" "$epochs"
check "fb (silent since the outage) loses its partitions after the timeout" wait_until 6 owns fb = 0
echo "# fb's partitions moved $(echo "$t_back $(date +%s.%N)" | awk '{printf "%.1f", $2 - $1}') s after Postgres came back (grace 3 s)"
check "fa owns all 4" owns fa = 4
check "the scheduler logged the gap" grep -q "after a gap" "$KILN_STACK_DIR/log/scheduler.log"
rm -f "$TMPROOT/beating"
wait "$beat_pid" 2>/dev/null
finish
