# 0811-dlq_fenced: a batch that loses its partition while it runs (the
# scheduler moved it: epoch + 1) must not reach the DLQ; the new owner
# dead-letters the poison job once. Before the fix the old owner produced to
# the DLQ first and was fenced only at commit, so the DLQ got the job twice
# (found by the chaos soak, 0800).
. "$(dirname "$0")/lib.sh"
CONSUME=$KILN_BUILD/tools/rawconsume
# the pace engine holds the batch 1 s per audio second: time to move the partition
check "stack up (1 partition, no workers)" stack_up --workers 0 --set broker.partitions.transcribe=1 \
    --set worker.engine=pace --set worker.pace_us_per_unit=1000000
tone "$TMPROOT/a.wav" 1.0
echo "this is not audio" > "$TMPROOT/bad.wav"
"$KILN" submit --id poison-1 "$TMPROOT/bad.wav" > /dev/null
for i in 1 2 3; do "$KILN" submit --id good-$i "$TMPROOT/a.wav" > /dev/null; done
"$KILN" up --workers 1 > /dev/null 2>&1
running() { [ "$(q "SELECT count(*) FROM jobs WHERE status = 'running'")" = 4 ]; }
check "the batch is running" wait_until 20 running
# what the scheduler does when it moves a partition: a new epoch
q "UPDATE assignments SET epoch = epoch + 1; NOTIFY kiln_assign" > /dev/null
check "all jobs terminal" wait_until 30 all_terminal
check "the stale batch was fenced" grep -qE 'batch not committed|batch dropped before the DLQ' "$KILN_STACK_DIR/log/worker-w1.log"
check "poison job dead, good jobs done" eq "$(q "SELECT string_agg(status, ',' ORDER BY id) FROM jobs")" "done,done,done,dead"
# the dead row commits with its dlq_outbox row; the message follows the commit
outbox_empty() { [ "$(q "SELECT count(*) FROM dlq_outbox")" = 0 ]; }
check "dead letter sent (outbox empty)" wait_until 30 outbox_empty
"$CONSUME" "$(broker_addr)" kiln.transcribe.dlq > "$TMPROOT/dlq" 2>/dev/null
check "the DLQ holds the poison job once" eq "$(cut -f3 "$TMPROOT/dlq" | tr '\n' ' ')" "poison-1 "
finish
