# 0800-chaos: the chaos soak (issue 6; docs/chaos.md). N transcription jobs
# (1,000 in `make test`, 10,000 with KILN_LONG=1 from `make test-long`) plus
# a known set of poison jobs go through the embedded stack with 3 workers
# while a chaos loop kill -9s a random worker every 2-5 s and restarts it,
# restarts Postgres twice (fast, then immediate shutdown), takes the broker
# down for a few seconds and makes it fail produce and fetch requests
# (`kiln broker` fault injection through run/broker.ctl).
# Afterwards: every job has exactly one terminal row, no duplicate result or
# artifact rows, stored offsets equal the high watermarks, the DLQ holds
# exactly the poison jobs, each once (the dlq_outbox, docs/chaos.md), and a
# summary line reports dlq_repeats=0 lost=0 duplicates=0.
#
# Knobs: CHAOS_JOBS, CHAOS_SECONDS (nominal processing time the pace engine
# is tuned to), CHAOS_SEED (the chaos loop's random choices), CHAOS_ENGINE,
# CHAOS_SUBMIT_TIMEOUT.
. "$(dirname "$0")/lib.sh"
if [ -n "${KILN_LONG:-}" ]; then
  N=${CHAOS_JOBS:-10000}; SECS=${CHAOS_SECONDS:-240}; MIN_KILLS=20; OUTAGES=3
  N_UNDEC=6; N_EMPTY=4; N_JSON=4
else
  N=${CHAOS_JOBS:-1000}; SECS=${CHAOS_SECONDS:-20}; MIN_KILLS=4; OUTAGES=1
  N_UNDEC=3; N_EMPTY=2; N_JSON=2
fi
W=3
P=$((N_UNDEC + N_EMPTY + N_JSON))
# a faulty stack may slow a submit down but must not hang it: a call that
# outlives SUBMIT_TIMEOUT is killed (its jobs count as unacknowledged) and
# fails the test
SUBMIT_TIMEOUT=${CHAOS_SUBMIT_TIMEOUT:-120}
# the pace engine is the null engine plus a fixed wall time per audio second:
# tuned so that the N jobs of 0.25 s need about SECS seconds on W workers,
# long enough for the chaos to land in the middle of batches (with the bare
# null engine 1,000 jobs drain in 3 s, before the first fault)
PACE=$(( SECS * W * 4000000 / N ))
RAW=$KILN_BUILD/tools/rawproduce
CONSUME=$KILN_BUILD/tools/rawconsume
CTL=$KILN_STACK_DIR/run/broker.ctl
SUB=$TMPROOT/submit
mkdir -p "$SUB"

check "stack up ($W workers, ${CHAOS_ENGINE:-pace} engine, $N jobs)" stack_up --workers $W \
    --set worker.engine=${CHAOS_ENGINE:-pace} --set worker.pace_us_per_unit=$PACE --set worker.max_batch=8

# ---- helpers

# Sends commands to the broker's control file and waits for its reply.
broker_ctl() {
  rm -f "$CTL.reply"
  printf '%s\n' "$@" > "$CTL.tmp" && mv "$CTL.tmp" "$CTL"
  wait_until 10 test -e "$CTL.reply" && ! grep '^error' "$CTL.reply" >&2
}

pg_ctl_as_owner() {
  local bin datadir
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  datadir=$(sed -n 's/^stack.pg_datadir = //p' "$KILN_STACK_DIR/stack.conf")
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$bin/pg_ctl" -D "$datadir" "$@"
  else "$bin/pg_ctl" -D "$datadir" "$@"; fi > /dev/null 2>&1
}

pg_up() { psql "$(pgconn)" -X -q -c 'select 1' -o /dev/null 2>/dev/null; }

# `kiln up` restarts whatever is missing (a killed worker, a stopped Postgres)
restart_missing() { "$KILN" up --workers $W --wait-ready 0 >> "$TMPROOT/up-chaos.log" 2>&1; }

# ---- inputs: a 0.25 s tone (uploaded once per job: `kiln submit FILE` also
# measures it, and the scheduler weighs partitions by those work units) and
# the poison files
tone "$TMPROOT/a.wav" 0.25
echo "this is not audio" > "$TMPROOT/undecodable.wav"
sox -n -r 16000 -c 1 -b 16 "$TMPROOT/empty.wav" trim 0 0 2>/dev/null
: > "$TMPROOT/poison.expected"
for i in $(seq "$N_UNDEC"); do echo "chaos-poison-undecodable-$i"; done >> "$TMPROOT/poison.expected"
for i in $(seq "$N_EMPTY"); do echo "chaos-poison-empty-$i"; done >> "$TMPROOT/poison.expected"
for i in $(seq "$N_JSON"); do echo "chaos-poison-json-$i"; done >> "$TMPROOT/poison.expected"

# Submits one poison job (retrying while Postgres or the broker is away).
submit_poison() {
  local id=$1 try file=$TMPROOT/empty.wav rc
  [[ $id == *-undecodable-* ]] && file=$TMPROOT/undecodable.wav
  for try in $(seq 30); do
    if [[ $id == *-json-* ]]; then
      printf '%s\t{"id": "%s", "modality": \n' "$id" "$id" |
        timeout "$SUBMIT_TIMEOUT" "$RAW" "$(broker_addr)" kiln.transcribe.jobs > /dev/null 2>&1
    else
      timeout "$SUBMIT_TIMEOUT" "$KILN" submit --tenant chaos --id "$id" "$file" >> "$SUB/poison.out" 2>&1
    fi
    rc=$?
    [ $rc = 124 ] && touch "$SUB/hung.poison-$id.$try"
    [ $rc = 0 ] && return 0
    sleep 1
  done
  echo "# could not submit poison job $id" >&2
  return 1
}

# The submitter: N jobs in chunks over the first part of
# the run, poison jobs in between. A chunk that was cut short (Postgres away)
# is completed with fresh jobs. ids.C.T lists what `kiln submit` printed (jobs
# recorded and handed to the producer); unacked.C.T marks a call whose final
# flush reported undelivered messages: only those jobs, and rows recorded
# without a printed id, may legitimately need `kiln requeue`.
submitter() {
  local chunks=20 c left try got size poison
  size=$(( (N + chunks - 1) / chunks ))
  mapfile -t poison < "$TMPROOT/poison.expected"
  left=$N
  for c in $(seq "$chunks"); do
    local want=$(( left < size ? left : size )) i
    try=0
    while [ "$want" -gt 0 ]; do
      local files=()
      for ((i = 0; i < want; i++)); do files+=("$TMPROOT/a.wav"); done
      timeout "$SUBMIT_TIMEOUT" "$KILN" submit --tenant chaos "${files[@]}" > "$SUB/ids.$c.$try" 2> "$SUB/err.$c.$try"
      [ $? = 124 ] && touch "$SUB/hung.$c.$try" "$SUB/unacked.$c.$try"
      grep -q 'not every job message was acknowledged' "$SUB/err.$c.$try" && touch "$SUB/unacked.$c.$try"
      got=$(wc -l < "$SUB/ids.$c.$try")
      want=$((want - got)); left=$((left - got)); try=$((try + 1))
      [ "$want" -gt 0 ] && sleep 1
    done
    # one poison job after each of the first chunks
    [ "$c" -le "${#poison[@]}" ] && submit_poison "${poison[$((c - 1))]}"
    sleep 0.5
  done
  for ((c = chunks; c < ${#poison[@]}; c++)); do submit_poison "${poison[$c]}"; done
  touch "$SUB/done"
}

# ---- the chaos loop
submitter &
SUBMITTER=$!
RANDOM=${CHAOS_SEED:-6}
kills=0 pg_restarts=0 outages=0 request_errors=0
start=$(date +%s)
scale=$(( SECS / 40 )); [ "$scale" -ge 1 ] || scale=1
# scheduled faults: "second action"
events=("$((3 * scale)) errors" "$((6 * scale)) outage" "$((10 * scale)) pg-fast"
        "$((16 * scale)) errors" "$((26 * scale)) pg-immediate")
[ "$OUTAGES" -ge 2 ] && events+=("$((20 * scale)) outage")
[ "$OUTAGES" -ge 3 ] && events+=("$((32 * scale)) outage")
next_kill=$((start + 2 + RANDOM % 4))
run_event() {
  case $1 in
    errors)
      broker_ctl "errors produce 10" "errors fetch 10" "errors fetch 3 _TRANSPORT" "errors produce 2 _TRANSPORT" \
        && request_errors=$((request_errors + 25))
      echo "# t=$(( $(date +%s) - start ))s: produce and fetch request errors injected" ;;
    outage)
      local ms=$(( 2000 + RANDOM % 3000 ))
      broker_ctl "down $ms" && outages=$((outages + 1))
      echo "# t=$(( $(date +%s) - start ))s: broker down for $ms ms"
      sleep $(( ms / 1000 + 1 ))
      broker_ctl status > /dev/null
      check "broker back up after outage $outages" grep -q 'down=none' "$CTL.reply" ;;
    pg-fast|pg-immediate)
      local mode=${1#pg-}
      pg_ctl_as_owner -m "$mode" -w stop
      check "postgres stopped ($mode)" bash -c "! psql '$(pgconn)' -X -c 'select 1' > /dev/null 2>&1"
      echo "# t=$(( $(date +%s) - start ))s: postgres stopped ($mode), down for 3 s"
      sleep 3
      restart_missing
      check "postgres back after $mode shutdown" pg_up && pg_restarts=$((pg_restarts + 1)) ;;
  esac
}
deadline=$((start + SECS * 3 + 60))
while :; do
  now=$(date +%s)
  if [ "$now" -ge "$next_kill" ]; then
    w=$((RANDOM % W + 1))
    pid=$(cat "$KILN_STACK_DIR/run/worker-w$w.pid" 2>/dev/null)
    if [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; then
      kills=$((kills + 1))
      echo "# t=$((now - start))s: kill -9 worker w$w (pid $pid); $(q "SELECT count(*) FROM jobs WHERE status IN ('done','dead')" 2>/dev/null) terminal"
    fi
    sleep 0.3
    restart_missing
    next_kill=$(( $(date +%s) + 2 + RANDOM % 4 ))
  fi
  for i in "${!events[@]}"; do
    if [ "$now" -ge $((start + ${events[$i]%% *})) ]; then
      run_event "${events[$i]#* }"
      unset "events[$i]"
    fi
  done
  # stop once everything was submitted, every fault happened, enough kills
  # landed, and the jobs are through (or the run is overdue)
  if [ -e "$SUB/done" ] && [ "${#events[@]}" -eq 0 ] && [ "$kills" -ge "$MIN_KILLS" ]; then
    if all_terminal 2>/dev/null || [ "$now" -ge "$deadline" ]; then break; fi
  fi
  if [ "$now" -ge $((deadline + 120)) ]; then echo "# chaos loop overdue"; break; fi
  sleep 0.5
done
wait "$SUBMITTER"
chaos_s=$(( $(date +%s) - start ))
echo "# chaos over after ${chaos_s}s: $kills kills, $pg_restarts Postgres restarts, $outages broker outages"
restart_missing
stack_whole() {
  pg_up || return 1
  for w in $(seq $W); do kill -0 "$(cat "$KILN_STACK_DIR/run/worker-w$w.pid")" 2>/dev/null || return 1; done
}
check "stack whole after the chaos" stack_whole

# ---- drain: wait until the broker's log is consumed and nothing runs
status_line() { "$KILN" status 2>/dev/null | awk '$1 == "kiln.transcribe.jobs" {print $4, $7}'; }
quiescent() {
  all_terminal && return 0
  [ "$(status_line | cut -d' ' -f2)" = 0 ] && [ "$(q "SELECT count(*) FROM jobs WHERE status = 'running'")" = 0 ]
}
wait_until $((SECS * 2 + 60)) quiescent > /dev/null

# which recorded jobs are still open, and why
printed_ids() { cat "$@" 2>/dev/null | awk -F'\t' 'NF >= 2 {print $1}' | sort -u; }
printed_ids "$SUB"/ids.* "$SUB/poison.out" > "$TMPROOT/printed"
printed_ids $(ls "$SUB"/unacked.* 2>/dev/null | sed 's/unacked/ids/') > "$TMPROOT/unacked"
q "SELECT id FROM jobs WHERE status NOT IN ('done', 'dead') ORDER BY id" > "$TMPROOT/open"
n_open=$(wc -l < "$TMPROOT/open")
# open jobs whose message the broker acknowledged: those are lost
lost_ids=$(comm -12 "$TMPROOT/open" "$TMPROOT/printed" | comm -23 - "$TMPROOT/unacked")
n_lost=$(printf '%s' "$lost_ids" | grep -c .)
requeued=0
if [ "$n_open" -gt 0 ]; then
  echo "# $n_open job(s) open after the drain ($n_lost of them acknowledged by the broker):"
  q "SELECT id, status, attempts, kpartition, worker FROM jobs WHERE status NOT IN ('done', 'dead') LIMIT 20" | sed 's/^/#   /'
  "$KILN" status 2>&1 | sed -n '1,12p' | sed 's/^/#   /'
  # jobs recorded but never delivered are what `kiln requeue` is for
  requeued=$("$KILN" requeue 2>&1 | sed -n 's/^re-produced \([0-9]*\) job.*/\1/p')
  echo "# kiln requeue re-produced ${requeued:-0} job(s)"
  wait_until $((SECS + 60)) all_terminal > /dev/null
fi
check "no kiln submit hung (> ${SUBMIT_TIMEOUT}s)" eq "$(ls "$SUB"/hung.* 2>/dev/null | wc -l)" 0
for f in $(ls "$SUB"/hung.* 2>/dev/null); do grep -v '^%' "${f/hung/err}" 2>/dev/null | tail -n 3 | sed 's/^/#   hung submit: /'; done
check "no acknowledged job needed a requeue (lost before requeue: $n_lost)" eq "$n_lost" 0

# ---- the promises
total=$(q "SELECT count(*) FROM jobs")
n_done=$(q "SELECT count(*) FROM jobs WHERE status = 'done'")
n_dead=$(q "SELECT count(*) FROM jobs WHERE status = 'dead'")
check "every job has exactly one terminal row" all_terminal
check "$P poison jobs dead, every other job done" eq "$n_dead/$n_done" "$P/$((total - P))"
check "at least $N jobs done" test "$n_done" -ge "$N"
printed_n=$(wc -l < "$TMPROOT/printed")
missing=$(psql "$(pgconn)" -X -At -v ON_ERROR_STOP=1 \
  -c "CREATE TEMP TABLE printed (id text)" -c "\\copy printed FROM '$TMPROOT/printed'" \
  -c "SELECT count(*) FROM printed p LEFT JOIN jobs j USING (id)
      WHERE j.status IS DISTINCT FROM (CASE WHEN p.id LIKE 'chaos-poison-%' THEN 'dead' ELSE 'done' END)" | tail -n 1)
check "every job kiln submit reported ($printed_n) ended as expected" eq "$missing" 0
check "poison jobs dead for their input" eq \
  "$(q "SELECT count(*) FROM jobs WHERE id LIKE 'chaos-poison-%' AND status = 'dead' AND error = 'BAD_INPUT'")" \
  "$((N_UNDEC + N_EMPTY))"
check "invalid JSON jobs dead" eq \
  "$(q "SELECT count(*) FROM jobs WHERE id LIKE 'invalid:%' AND status = 'dead' AND error = 'BAD_JOB'")" "$N_JSON"
dup_tr=$(( $(q "SELECT count(*) FROM transcripts") - n_done ))
dup_art=$(( $(q "SELECT count(*) FROM artifacts") - $(q "SELECT count(DISTINCT job_id) FROM artifacts") ))
check "one transcript per done job, none for dead jobs" eq \
  "$(q "SELECT count(*) FROM transcripts t JOIN jobs j ON j.id = t.job_id AND j.status = 'done'")/$dup_tr" "$n_done/0"
check "one artifact row per done job" eq \
  "$(q "SELECT count(*) FROM jobs j WHERE j.status = 'done' AND (SELECT count(*) FROM artifacts a WHERE a.job_id = j.id) = 1")/$dup_art" \
  "$n_done/0"
check "one transcript object per done job" eq \
  "$(find "$KILN_STACK_DIR/objects/results" -name transcript.json | wc -l)" "$n_done"
check "artifact rows match objects (sha256)" bash -c "
  psql '$(pgconn)' -At -F' ' -c \"SELECT sha256, substr(uri, 8) FROM artifacts ORDER BY random() LIMIT 100\" |
  while read -r sha path; do echo \"\$sha  \$path\"; done | sha256sum -c --quiet"
check "some jobs were retried after a crash" test "$(q "SELECT count(*) FROM jobs WHERE attempts > 1")" -ge 1

# offsets: backlog 0 and the stored offsets sum to the high watermarks
read -r hw backlog <<< "$(status_line)"
stored=$(q "SELECT coalesce(sum(next_offset), 0) FROM offsets WHERE topic = 'kiln.transcribe.jobs'")
check "stored offsets equal the high watermarks (messages ${hw:-?}, backlog ${backlog:-?})" \
  eq "${backlog:-?}/$stored" "0/${hw:-?}"
check "every message accounted for (messages >= jobs)" test "${hw:-0}" -ge "$total"

# the DLQ holds exactly the poison jobs, each exactly once: dead letters go
# through the dlq_outbox table, committed with the dead row and produced
# after COMMIT; an orphaned row (its worker was killed) is sent by another
# worker's relay only after a scan of the DLQ for its kiln-outbox-id
# (docs/chaos.md). Wait until the outbox is empty; a relay runs at the start
# of a batch, so an idle fleet gets a job now and then.
outbox_left() { q "SELECT count(*) FROM dlq_outbox" 2>/dev/null; }
POKES=0
outbox_drained() {
  [ "$(outbox_left)" = 0 ] && return 0
  POKES=$((POKES + 1))
  "$KILN" submit --tenant chaos --id "chaos-poke-$POKES" "$TMPROOT/a.wav" > /dev/null 2>&1
  sleep 1
  [ "$(outbox_left)" = 0 ]
}
check "every dead letter sent (dlq_outbox empty; $(outbox_left) row(s) after the drain)" \
  wait_until 60 outbox_drained
[ "$POKES" -gt 0 ] && wait_until 30 all_terminal > /dev/null # the pokes, before `lost` is counted
"$CONSUME" "$(broker_addr)" kiln.transcribe.dlq > "$TMPROOT/dlq" 2>/dev/null
awk -F'\t' '{ a = $4; sub(/.*kiln-attempts=/, "", a); sub(/;.*/, "", a); print $3 "\t" a }' "$TMPROOT/dlq" |
  sort > "$TMPROOT/dlq.keys"
sort "$TMPROOT/poison.expected" > "$TMPROOT/poison.sorted"
check "DLQ holds exactly the $P poison jobs, each once" diff <(cut -f1 "$TMPROOT/dlq.keys") "$TMPROOT/poison.sorted"
dlq_repeats=$(( $(wc -l < "$TMPROOT/dlq.keys") - P ))
check "every DLQ message has its own kiln-outbox-id" eq \
  "$(grep -o 'kiln-outbox-id=[0-9]*' "$TMPROOT/dlq" | sort -u | wc -l)" "$(wc -l < "$TMPROOT/dlq")"
if [ "$dlq_repeats" -gt 0 ]; then
  echo "# $dlq_repeats DLQ repeat(s):"
  cut -f1 "$TMPROOT/dlq.keys" | uniq -d | while read -r k; do
    grep -P "\t$k\t" "$TMPROOT/dlq" | cut -f1-4 | sed 's/^/#   dlq: /'
    grep -h -- "job $k -> " "$KILN_STACK_DIR"/log/worker-w*.log | sed 's/^/#   /'
  done
fi
echo "# dead letters relayed after a worker died: $(cat "$KILN_STACK_DIR"/log/worker-w*.log | grep -c 'outbox relay: sent'), found already sent: $(cat "$KILN_STACK_DIR"/log/worker-w*.log | grep -c 'not sent again'); pokes: $POKES"

broker_ctl status > /dev/null
echo "# broker: $(cat "$CTL.reply")"
check "faults happened (kills >= $MIN_KILLS, 2 Postgres restarts, $OUTAGES outage(s))" \
  test "$kills" -ge "$MIN_KILLS" -a "$pg_restarts" -eq 2 -a "$outages" -eq "$OUTAGES"
check "workers saw the broker outage" grep -q 'Connection refused' "$KILN_STACK_DIR"/log/worker-w*.log
check "workers retried through the Postgres restarts" grep -qi 'retrying\|could not' "$KILN_STACK_DIR"/log/worker-w*.log
dups=$((dup_tr + dup_art))
lost=$(( n_lost + $(q "SELECT count(*) FROM jobs WHERE status NOT IN ('done', 'dead')") ))
check "chaos: jobs=$total done=$n_done poison=$n_dead kills=$kills pg_restarts=$pg_restarts broker_outages=$outages request_errors=$request_errors requeued=${requeued:-0} dlq_repeats=$dlq_repeats lost=$lost duplicates=$dups (${chaos_s}s)" \
  test "$lost" -eq 0 -a "$dups" -eq 0 -a "$dlq_repeats" -eq 0
finish
