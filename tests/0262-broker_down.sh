# 0262-broker_down: with the broker gone, nothing that asks it for watermarks
# may hang. librdkafka < 2.3 ignores rd_kafka_query_watermark_offsets()'s
# timeout while the broker is unreachable (librdkafka#2588), which froze the
# scheduler (no rounds, no reaction to SIGTERM) and `kiln status`; kiln now
# asks through kiln_kafka_watermarks() (rd_kafka_offsets_for_times(), whose
# timeout holds).
. "$(dirname "$0")/lib.sh"
check "stack up" stack_up --workers 1
tone "$TMPROOT/a.wav" 0.3
"$KILN" submit --wait "$TMPROOT/a.wav" > /dev/null 2>&1
check "a job went through" eq "$(q "SELECT count(*) FROM jobs WHERE status='done'")" 1
bpid=$(cat "$KILN_STACK_DIR/run/broker.pid")
kill -9 "$bpid"
check "broker gone" wait_until 10 bash -c "! kill -0 $bpid 2>/dev/null"
sleep 2
start=$(date +%s)
timeout 60 "$KILN" status > "$TMPROOT/status.out" 2>&1
rc=$?
took=$(( $(date +%s) - start ))
echo "# kiln status took ${took}s (rc $rc)"
check "kiln status returns without the broker (rc $rc, ${took}s)" test "$rc" -ne 124 -a "$took" -le 30
spid=$(cat "$KILN_STACK_DIR/run/scheduler.pid")
check "the scheduler still runs rounds (its heartbeat row advances)" wait_until 20 \
  bash -c "[ \"\$(psql '$(pgconn)' -X -At -c \"SELECT now() - updated_at < interval '3 seconds' FROM scheduler_status LIMIT 1\")\" = t ]"
kill -TERM "$spid"
check "the scheduler stops on SIGTERM within 10 s" wait_until 10 bash -c "! kill -0 $spid 2>/dev/null"
wpid=$(cat "$KILN_STACK_DIR/run/worker-w1.pid")
kill -TERM "$wpid"
check "the worker stops on SIGTERM within 20 s" wait_until 20 bash -c "! kill -0 $wpid 2>/dev/null"
finish
