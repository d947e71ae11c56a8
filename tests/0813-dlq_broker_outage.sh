# 0813-dlq_broker_outage: the broker is down for 15 s while a worker
# dead-letters a job. The dead row and its dlq_outbox row commit; the dead
# letter is delivered once the broker is back, exactly once: the worker
# waits for the delivery report of the message already queued (its
# message.timeout.ms is worker.dlq_orphan_after_ms / 2 = 30 s) instead of
# producing it again. (Before the outbox the DLQ was produced inside the
# transaction, and a retry after the 10 s flush timeout produced it twice.)
. "$(dirname "$0")/lib.sh"
CONSUME=$KILN_BUILD/tools/rawconsume
CTL=$KILN_STACK_DIR/run/broker.ctl
# the pace engine holds the batch 2 s per audio second: time to take the broker down
check "stack up (1 partition, no workers)" stack_up --workers 0 --set broker.partitions.transcribe=1 \
    --set worker.engine=pace --set worker.pace_us_per_unit=2000000
tone "$TMPROOT/a.wav" 1.0
echo "this is not audio" > "$TMPROOT/bad.wav"
"$KILN" submit --id poison-1 "$TMPROOT/bad.wav" > /dev/null
"$KILN" submit --id good-1 "$TMPROOT/a.wav" > /dev/null
"$KILN" up --workers 1 > /dev/null 2>&1
running() { [ "$(q "SELECT count(*) FROM jobs WHERE status = 'running'")" = 2 ]; }
check "the batch is running" wait_until 20 running
printf 'down 15000\n' > "$CTL.tmp" && mv "$CTL.tmp" "$CTL"
check "broker down for 15 s" wait_until 5 grep -q '^ok down' "$CTL.reply"
check "all jobs terminal" wait_until 60 all_terminal
check "poison job dead, good job done" eq "$(q "SELECT string_agg(status, ',' ORDER BY id) FROM jobs")" "done,dead"
# a dead row commits with its dlq_outbox row; the worker produces the dead
# letter right after COMMIT and then deletes the row
outbox_empty() { [ "$(q "SELECT count(*) FROM dlq_outbox")" = 0 ]; }
check "dead letter delivered once the broker is back (outbox empty)" wait_until 60 outbox_empty
"$CONSUME" "$(broker_addr)" kiln.transcribe.dlq > "$TMPROOT/dlq" 2>/dev/null
check "the DLQ holds the poison job once" eq "$(cut -f3 "$TMPROOT/dlq" | tr '\n' ' ')" "poison-1 "
finish
