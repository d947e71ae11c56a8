# 0813-dlq_broker_outage: the broker is down for longer than the worker's
# DLQ flush timeout (10 s) while it dead-letters a job. The dead letter is
# delivered once the broker is back, exactly once: a retry waits for the
# message already queued instead of producing it again.
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
"$CONSUME" "$(broker_addr)" kiln.transcribe.dlq > "$TMPROOT/dlq" 2>/dev/null
check "the DLQ holds the poison job once" eq "$(cut -f3 "$TMPROOT/dlq" | tr '\n' ' ')" "poison-1 "
finish
