# 0504-sched_inputs: the scheduler daemon's inputs, measured end to end on
# the embedded stack with no workers (nothing is consumed):
#  - backlog of messages without a Postgres row and without the
#    kiln-work-units header (a foreign producer): high watermark - committed
#    offset, each estimated at the mean work units of the known jobs (here
#    8 kiln jobs of 2 s audio, so 2.0 each);
#  - the arrival rate (EWMA of watermark growth x units per job) while a
#    foreign producer sends 20 messages/s, and its decay once it stops.
# Read from the scheduler's /metrics.
. "$(dirname "$0")/lib.sh"
RAW=$KILN_BUILD/tools/rawproduce
check "stack up (no workers, rate tau 1 s)" stack_up --workers 0 \
    --set broker.partitions.transcribe=4 --set scheduler.rate_tau_ms=1000
check "scheduler serves /metrics" wait_until 10 test -s "$KILN_STACK_DIR/run/scheduler.metrics"
PORT=$(cat "$KILN_STACK_DIR/run/scheduler.metrics")
metric() {  # NAME -> value for modality="transcribe"
  curl -s --max-time 5 "http://127.0.0.1:$PORT/metrics" |
    awk -v n="$1" '$1 == n "{modality=\"transcribe\"}" { print $2 }'
}
near() {  # NAME WANT TOL
  local v; v=$(metric "$1")
  python3 -c "import sys; sys.exit(not ('$v' and abs(float('$v') - $2) <= $3))" ||
    { echo "# $1 = ${v:-none}, want $2 +- $3" >&2; return 1; }
}
tone "$TMPROOT/a.wav" 2.0
"$KILN" submit "$TMPROOT/a.wav" "$TMPROOT/a.wav" "$TMPROOT/a.wav" "$TMPROOT/a.wav" \
    "$TMPROOT/a.wav" "$TMPROOT/a.wav" "$TMPROOT/a.wav" "$TMPROOT/a.wav" > "$TMPROOT/ids" 2> "$TMPROOT/submit.err"
check "8 kiln jobs (2 work units each)" eq "$(q "SELECT count(*) || ' ' || sum(work_units) FROM jobs")" "8 16"
check "backlog = 16 work units" wait_until 10 near kiln_scheduler_backlog_work_units 16 0.01
# 40 foreign messages: no row, no kiln-work-units header
for i in $(seq 40); do printf 'f-%d\t{"id":"f-%d","modality":"transcribe"}\n' "$i" "$i"; done |
  "$RAW" "$(broker_addr)" kiln.transcribe.jobs 2>/dev/null
check "foreign producer delivered 40" eq $? 0
check "queued jobs = 48 (40 without a row)" wait_until 10 near kiln_scheduler_queued_jobs 48 0
check "backlog = 16 + 40 x 2.0 estimated" wait_until 10 near kiln_scheduler_backlog_work_units 96 0.5
check "rate back near 0 after the one-off burst" wait_until 10 near kiln_scheduler_arrival_rate_work_units 0 2
# a steady 20 messages/s for 8 s: 40 work units/s
( for s in $(seq 16); do
    for i in $(seq 10); do printf 'r-%d-%d\t{"id":"r-%d-%d"}\n' "$s" "$i" "$s" "$i"; done
    sleep 0.5
  done ) | "$RAW" "$(broker_addr)" kiln.transcribe.jobs 2>/dev/null &
prod=$!
sleep 5
check "arrival rate ~ 40 work units/s while producing" near kiln_scheduler_arrival_rate_work_units 40 15
echo "# measured rate: $(metric kiln_scheduler_arrival_rate_work_units) work units/s (sent 40)"
wait "$prod"
check "rate decays to ~0 once the producer stops" wait_until 10 near kiln_scheduler_arrival_rate_work_units 0 2
check "backlog counts all 208 queued messages" wait_until 5 near kiln_scheduler_queued_jobs 208 0
finish
