# 0810-dup_in_batch: `kiln requeue` is documented as safe at any time, so a
# job's message may be in the broker's log more than once (requeue while the
# first copy is unconsumed, a producer retrying with the same --id). When two
# copies land in one batch the worker must still finish the job exactly once
# and keep the partition flowing (found by the chaos soak, 0800).
. "$(dirname "$0")/lib.sh"
check "stack up (1 partition, no workers)" stack_up --workers 0 --set broker.partitions.transcribe=1
tone "$TMPROOT/a.wav" 0.5
"$KILN" submit --id dup-1 "$TMPROOT/a.wav" > /dev/null
"$KILN" requeue > /dev/null 2>&1                    # a second copy of dup-1
"$KILN" requeue > /dev/null 2>&1                    # and a third
"$KILN" submit --id after-1 "$TMPROOT/a.wav" > /dev/null
check "4 messages queued for 2 jobs" eq "$("$KILN" status | awk '$1 == "kiln.transcribe.jobs" {print $4}')" 4
"$KILN" up --workers 1 > /dev/null 2>&1
check "both jobs done" wait_until 20 all_terminal
check "dup-1 done once" eq "$(q "SELECT status || ' ' || attempts FROM jobs WHERE id = 'dup-1'")" "done 1"
check "the job after it done" eq "$(q "SELECT status FROM jobs WHERE id = 'after-1'")" "done"
check "one transcript per job" eq "$(q "SELECT count(*) FROM transcripts")" 2
offset_is() { [ "$(q "SELECT next_offset FROM offsets")" = "$1" ]; }
check "offset past every copy" wait_until 5 offset_is 4
check "the claim never failed" bash -c "! grep 'could not claim batch' '$KILN_STACK_DIR/log/worker-w1.log'"
finish
