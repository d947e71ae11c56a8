# 0812-submit_pg_restart: a `kiln submit` (libkiln's producer) that is
# running when Postgres restarts reconnects and carries on. Before the fix it
# kept the dead connection: while waiting for room in a partition it waited
# out producer.backpressure_timeout_ms (10 minutes by default), then said
# "partition is full (0 unconsumed bytes)" and left a queued row that was
# never produced (found by the chaos soak, 0800).
. "$(dirname "$0")/lib.sh"
N=100
# a small partition cap so that the producer waits for room: the restart
# lands while it waits
check "stack up (1 partition, small cap, no workers)" stack_up --workers 0 \
    --set broker.partitions.transcribe=1 --set broker.partition_cap_bytes=20000 \
    --set producer.backpressure_timeout_ms=30000
tone "$TMPROOT/a.wav" 0.25
"$KILN" submit --id seed "$TMPROOT/a.wav" > /dev/null
uri=$(q "SELECT input_uri FROM jobs WHERE id = 'seed'")
uris=(); for i in $(seq "$N"); do uris+=("$uri"); done
timeout 90 "$KILN" submit "${uris[@]}" > "$TMPROOT/ids" 2> "$TMPROOT/submit.err" &
spid=$!
check "the producer waits for room" wait_until 30 grep -q 'waiting for workers' "$TMPROOT/submit.err"
datadir=$(sed -n 's/^stack.pg_datadir = //p' "$KILN_STACK_DIR/stack.conf")
runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$datadir" -m fast -w stop > /dev/null 2>&1 \
  || /usr/lib/postgresql/15/bin/pg_ctl -D "$datadir" -m fast -w stop > /dev/null 2>&1
sleep 2
"$KILN" up --workers 1 > /dev/null 2>&1             # Postgres back, and a worker makes room
wait "$spid"
rc=$?
check "submit succeeded across the restart (exit $rc)" eq "$rc" 0
check "every input submitted" eq "$(wc -l < "$TMPROOT/ids")" "$N"
check "all jobs terminal" wait_until 60 all_terminal
check "every job done" eq "$(q "SELECT count(*) FROM jobs WHERE status = 'done'")" "$((N + 1))"
[ "$rc" = 0 ] || grep -v '^%' "$TMPROOT/submit.err" | tail -n 5 | sed 's/^/# /'
finish
