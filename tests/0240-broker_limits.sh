# 0240-broker_limits: the embedded broker keeps ~5 MB per partition in memory
# and forgets everything on restart. kiln must still lose nothing:
#  A. a partition filled past the cap (no backpressure): the worker reports the
#     dropped range, `kiln requeue` repairs it, every job ends done exactly once;
#  B. with backpressure, producers stop at the cap: nothing is dropped;
#  C. the broker is killed (-9) with jobs queued; `kiln up` restarts it and
#     re-produces; every job ends done exactly once.
. "$(dirname "$0")/lib.sh"
N=${LOSS_JOBS:-6000}
check "stack up (1 partition, no workers)" stack_up --workers 0 --set broker.partitions.transcribe=1 \
    --set producer.backpressure_timeout_ms=3000
tone "$TMPROOT/a.wav" 0.25
"$KILN" submit --id seed "$TMPROOT/a.wav" > /dev/null
uri=$(q "SELECT input_uri FROM jobs WHERE id='seed'")
pad=$(head -c 1000 /dev/zero | tr '\0' 'x')
uris=(); for i in $(seq "$N"); do uris+=("$uri"); done
# A: overflow the partition (about 1.2 KB per message, over 5 MB in all)
"$KILN" submit --no-backpressure --param pad="$pad" "${uris[@]}" > "$TMPROOT/ids-a" 2> "$TMPROOT/a.err"
check "A: $N jobs recorded" eq "$(wc -l < "$TMPROOT/ids-a")" "$N"
"$KILN" up --workers 1 --set scheduler.worker_timeout_ms=3000 --set worker.heartbeat_ms=300 > /dev/null 2>&1
check "A: worker reports the dropped messages" wait_until 60 grep -q "broker dropped" "$KILN_STACK_DIR/log/worker-w1.log"
check "A: loss recorded in broker_losses" wait_until 10 test "$(q "SELECT count(*) FROM broker_losses")" -ge 1
lost=$(q "SELECT sum(to_offset - from_offset) FROM broker_losses")
echo "# broker dropped $lost of $((N+1)) messages"
check "A: the backlog drains (queued jobs remain = the lost ones)" \
    wait_until 120 bash -c "[ \"\$(psql '$(pgconn)' -At -c \"SELECT count(*) FROM jobs WHERE status IN ('queued','running')\")\" = '$lost' ]"
"$KILN" requeue > "$TMPROOT/requeue.out" 2>&1
check "A: requeue re-produced the lost jobs" grep -q "re-produced $lost job" "$TMPROOT/requeue.out"
check "A: all jobs terminal" wait_until 120 all_terminal
check "A: every job done exactly once" eq "$(q "SELECT count(*) FROM jobs WHERE status='done'")" "$((N+1))"
check "A: one transcript per job" eq "$(q "SELECT count(*) FROM transcripts")" "$((N+1))"
# B: with backpressure and no consumer, the producer stops at the cap instead of losing data
kill -TERM "$(cat "$KILN_STACK_DIR/run/worker-w1.pid")"; sleep 2
losses_before=$(q "SELECT count(*) FROM broker_losses")
"$KILN" submit --param pad="$pad" "${uris[@]:0:4000}" > "$TMPROOT/ids-b" 2> "$TMPROOT/b.err"
rc=$?
check "B: producer refuses when the partition is full" test "$rc" -ne 0 -a "$(grep -c 'is full' "$TMPROOT/b.err")" -ge 1
nb=$(wc -l < "$TMPROOT/ids-b")
echo "# backpressure admitted $nb of 4000 jobs before the cap"
check "B: refused jobs leave no row" eq "$(q "SELECT count(*) FROM jobs WHERE status='queued'")" "$nb"
"$KILN" up --workers 1 --set scheduler.worker_timeout_ms=3000 --set worker.heartbeat_ms=300 > /dev/null 2>&1
check "B: admitted jobs all done" wait_until 120 all_terminal
check "B: nothing dropped" eq "$(q "SELECT count(*) FROM broker_losses")" "$losses_before"
# C: kill the broker while jobs are queued (worker stopped so they stay queued)
kill -TERM "$(cat "$KILN_STACK_DIR/run/worker-w1.pid")"; sleep 2
"$KILN" submit "${uris[@]:0:500}" > "$TMPROOT/ids-c" 2> "$TMPROOT/c.err"
check "C: 500 queued" eq "$(q "SELECT count(*) FROM jobs WHERE status='queued'")" 500
kill -9 "$(cat "$KILN_STACK_DIR/run/broker.pid")"; sleep 0.5
"$KILN" up --workers 1 --set scheduler.worker_timeout_ms=3000 --set worker.heartbeat_ms=300 > "$TMPROOT/up-c.log" 2>&1
check "C: kiln up noticed the restart and re-produced" grep -q "re-produced 500 job" "$TMPROOT/up-c.log"
check "C: all jobs terminal" wait_until 120 all_terminal
total=$((N + 1 + nb + 500))
check "C: every job done exactly once" eq "$(q "SELECT count(*) FROM jobs WHERE status='done'")" "$total"
check "C: one transcript per job" eq "$(q "SELECT count(*) FROM transcripts")" "$total"
finish
