# 0814-dlq_outbox: dead letters are exactly-once through the dlq_outbox table
# (workers/dlq_outbox.c, docs/chaos.md). Before the outbox, a worker produced
# the dead letter inside its batch transaction, and a crash or Postgres
# restart between the delivery and COMMIT put the job in the DLQ twice. Test
# hooks hold the worker at the two points that remain between the committed
# outbox row and its DELETE:
#  A. kill -9 after COMMIT, before the produce: the restarted worker's relay
#     takes the orphaned row over, scans the DLQ, does not find it, sends it;
#  B. kill -9 after the delivery, before the DELETE: the relay finds the
#     message in the DLQ (kiln-outbox-id) and deletes the row, no resend;
#  C. Postgres stopped after the delivery, before the DELETE: the worker
#     retries the DELETE from memory and never produces again.
# Each time the DLQ must hold the job exactly once and the outbox end empty.
. "$(dirname "$0")/lib.sh"
CONSUME=$KILN_BUILD/tools/rawconsume
LOG=$KILN_STACK_DIR/log/worker-w1.log
check "stack up (1 partition, no workers)" stack_up --workers 0 --set broker.partitions.transcribe=1 \
    --set worker.dlq_relay_interval_ms=200
tone "$TMPROOT/a.wav" 0.25
echo "this is not audio" > "$TMPROOT/bad.wav"

# (re)starts worker w1 with the test hook $1=$2 in its environment ("" none)
worker_up() {
  if [ -n "${1:-}" ]; then env "$1=$2" "$KILN" up --workers 1 > /dev/null 2>&1
  else "$KILN" up --workers 1 > /dev/null 2>&1; fi
}
kill_worker() { kill -9 "$(cat "$KILN_STACK_DIR/run/worker-w1.pid")"; sleep 2.5; } # 2.5 s: past the relay's grace
hooked() { [ "$(grep -c "test hook $1" "$LOG" 2>/dev/null)" -ge "$2" ]; }
dlq() { "$CONSUME" "$(broker_addr)" kiln.transcribe.dlq 2>/dev/null; }
dlq_count() { dlq | awk -F'\t' -v k="$1" '$3 == k' | wc -l; }
outbox() { q "SELECT count(*) FROM dlq_outbox"; }
# until the idle worker relays by itself, a good job makes it run a batch
POKES=0
poke_until_empty() {
  POKES=$((POKES + 1))
  "$KILN" submit --id "poke-$POKES" "$TMPROOT/a.wav" > /dev/null 2>&1
  sleep 0.5
  [ "$(outbox 2>/dev/null)" = 0 ]
}

# ---- A: killed between COMMIT and the produce
worker_up KILN_TEST_DLQ_PAUSE_AFTER_COMMIT_MS 60000
"$KILN" submit --id poison-a "$TMPROOT/bad.wav" > /dev/null
check "A: worker paused after committing the dead letter" wait_until 30 hooked KILN_TEST_DLQ_PAUSE_AFTER_COMMIT_MS 1
check "A: job dead, outbox row committed, DLQ still empty" eq \
  "$(q "SELECT status FROM jobs WHERE id = 'poison-a'")/$(outbox)/$(dlq_count poison-a)" "dead/1/0"
as_analyst() {
  psql "$(pgconn)" -X -q -At -v ON_ERROR_STOP=1 -c "BEGIN" -c "SET LOCAL ROLE kiln_analyst" \
    -c "SET LOCAL kiln.tenant = '$1'" -c "SELECT count(*) FROM dlq_outbox" -c "ROLLBACK"
}
check "A: an analyst sees the outbox row of its own tenant only (RLS)" eq \
  "$(as_analyst "$(q "SELECT tenant FROM jobs WHERE id = 'poison-a'")")/$(as_analyst other-tenant)" "1/0"
kill_worker
worker_up
check "A: the restarted worker relays the orphan" wait_until 30 poke_until_empty
check "A: the DLQ holds poison-a once" eq "$(dlq_count poison-a)" 1
check "A: relay scanned and sent it" grep -q "outbox relay: sent 1 of 1 orphaned" "$LOG"
has_outbox_id() { dlq | grep -P "\t$1\t" | grep -q 'kiln-outbox-id='; }
check "A: the message carries kiln-outbox-id" has_outbox_id poison-a

# ---- B: killed between the delivery and the DELETE
kill -9 "$(cat "$KILN_STACK_DIR/run/worker-w1.pid")"
worker_up KILN_TEST_DLQ_PAUSE_AFTER_DELIVERY_MS 60000
"$KILN" submit --id poison-b "$TMPROOT/bad.wav" > /dev/null
check "B: worker paused after the delivery" wait_until 30 hooked KILN_TEST_DLQ_PAUSE_AFTER_DELIVERY_MS 1
check "B: delivered once, outbox row still there" eq "$(dlq_count poison-b)/$(outbox)" "1/1"
kill_worker
worker_up
check "B: the restarted worker clears the orphan" wait_until 30 poke_until_empty
sleep 2 # the row goes with the scan, before any (wrong) produce: give that one time to land
check "B: found in the DLQ, not sent again" grep -q "is already in kiln.transcribe.dlq: not sent again" "$LOG"
check "B: the DLQ holds poison-b once" eq "$(dlq_count poison-b)" 1

# ---- C: Postgres stopped between the delivery and the DELETE
kill -9 "$(cat "$KILN_STACK_DIR/run/worker-w1.pid")"
worker_up KILN_TEST_DLQ_PAUSE_AFTER_DELIVERY_MS 3000
"$KILN" submit --id poison-c "$TMPROOT/bad.wav" > /dev/null
check "C: worker paused after the delivery" wait_until 30 hooked KILN_TEST_DLQ_PAUSE_AFTER_DELIVERY_MS 2
datadir=$(sed -n 's/^stack.pg_datadir = //p' "$KILN_STACK_DIR/stack.conf")
runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$datadir" -m fast -w stop > /dev/null 2>&1 \
  || /usr/lib/postgresql/15/bin/pg_ctl -D "$datadir" -m fast -w stop > /dev/null 2>&1
check "C: postgres stopped" bash -c "! psql '$(pgconn)' -X -c 'select 1' > /dev/null 2>&1"
check "C: the worker retries the DELETE" wait_until 30 grep -q "could not delete 1 delivered dead letter" "$LOG"
"$KILN" up --workers 1 > /dev/null 2>&1
check "C: outbox empty once Postgres is back" wait_until 30 bash -c "[ \"\$(psql '$(pgconn)' -X -At -c 'SELECT count(*) FROM dlq_outbox' 2>/dev/null)\" = 0 ]"
check "C: the DLQ holds poison-c once" eq "$(dlq_count poison-c)" 1

check "all jobs terminal" wait_until 30 all_terminal
check "3 dead jobs, 3 DLQ messages" eq "$(q "SELECT count(*) FROM jobs WHERE status = 'dead'")/$(dlq | wc -l)" "3/3"
finish
