# 0900-dlq_replay: `kiln dlq list` and `kiln dlq replay` (cmd/dlq.c).
# A file over worker.max_input_bytes dies TOO_LARGE. Replayed while the limit
# is unchanged it dies again (the DLQ then holds it twice). After the worker
# restarts with a larger limit, `kiln dlq replay --reason TOO_LARGE` sends it
# back once: it ends done exactly once, while jobs dead for other reasons and
# messages without a job id stay where they are. A second replay changes nothing.
. "$(dirname "$0")/lib.sh"
RAW=$KILN_BUILD/tools/rawproduce
CONSUME=$KILN_BUILD/tools/rawconsume
OUT=$TMPROOT/out
check "kiln dlq is a command" bash -c '"$KILN" dlq --help | grep -q "^usage: kiln dlq"'
check "stack up (max_input_bytes 100000)" stack_up --workers 1 --set worker.max_input_bytes=100000 \
    --set broker.partitions.transcribe=2
tone "$TMPROOT/good.wav" 0.5
tone "$TMPROOT/big.wav" 4.0                        # 128 KB > 100000 bytes
echo "this is not audio" > "$TMPROOT/text.wav"
"$KILN" submit --id good-1 "$TMPROOT/good.wav" > /dev/null
"$KILN" submit --id big-1 "$TMPROOT/big.wav" > /dev/null
"$KILN" submit --id bad-audio "$TMPROOT/text.wav" > /dev/null
# too deep to parse: dead as TOO_LARGE, but with no usable id (row "invalid:...")
printf 'bad-deep\t{"id":"bad-deep","modality":"transcribe","input":{"uri":"x"},"p":%s1%s}\n' \
    "$(printf '[%.0s' $(seq 40))" "$(printf ']%.0s' $(seq 40))" \
  | "$RAW" "$(broker_addr)" kiln.transcribe.jobs 2>/dev/null
check "all jobs terminal" wait_until 60 all_terminal
# a dead row commits with its dlq_outbox row; the worker produces the dead
# letter right after COMMIT and then deletes the row
outbox_empty() { [ "$(q "SELECT count(*) FROM dlq_outbox")" = 0 ]; }
four_and_sent() { [ "$(q "SELECT count(*) FROM jobs")" = 4 ] && all_terminal && outbox_empty; }
check "4 jobs terminal, dead letters delivered" wait_until 30 four_and_sent
check "big file dead TOO_LARGE" eq "$(q "SELECT status || ' ' || error FROM jobs WHERE id='big-1'")" "dead TOO_LARGE"
check "unparsable message dead TOO_LARGE without an id" \
    eq "$(q "SELECT count(*) FROM jobs WHERE id LIKE 'invalid:%' AND error='TOO_LARGE'")" 1

# ---- list
"$KILN" dlq list > "$OUT" 2> "$TMPROOT/list.err"
check "dlq list exits 0" test $? -eq 0
check "dlq list: one line per DLQ message (+ header)" eq "$(wc -l < "$OUT")" 4
check "dlq list: id, error, detail, attempts, status" \
    grep -qP '^big-1\tTOO_LARGE\t[^\t]*100000[^\t]*\t1\tdead$' "$OUT"
check "dlq list --reason filters" eq "$("$KILN" dlq list --reason BAD_INPUT | tail -n +2 | cut -f1)" bad-audio
check "dlq list --topic nosuch is a usage error" bash -c '"$KILN" dlq list --topic teleport 2>/dev/null; [ $? = 2 ]'

# ---- dry run: reports, changes nothing
"$KILN" dlq replay --reason TOO_LARGE --dry-run > "$OUT" 2>&1
check "dry run names the job" grep -q '^would replay *big-1 ' "$OUT"
check "dry run summary" grep -q '^would replay 1 job(s), skipped 0 (not dead), 1 not replayable' "$OUT"
check "dry run leaves the row dead" eq "$(q "SELECT status FROM jobs WHERE id='big-1'")" dead

# ---- replay with the cause not fixed: the job dies again (the DLQ now holds it twice)
"$KILN" dlq replay --id big-1 > "$OUT" 2>&1
check "replay --id big-1 replays it" grep -q '^replayed 1 job(s)' "$OUT"
check "it dies again with the limit unchanged" wait_until 30 bash -c \
    "[ \"\$(psql '$(pgconn)' -At -c \"SELECT status || ' ' || attempts FROM jobs WHERE id='big-1'\")\" = 'dead 1' ]"
wait_until 30 outbox_empty
"$CONSUME" "$(broker_addr)" kiln.transcribe.dlq > "$TMPROOT/dlq" 2>/dev/null
check "the DLQ holds big-1 twice" eq "$(grep -c $'^[0-9]*\t[0-9]*\tbig-1\t' "$TMPROOT/dlq")" 2

# ---- fix the cause: restart the worker with a larger limit, then replay by reason
pid=$(cat "$KILN_STACK_DIR/run/worker-w1.pid")
kill -TERM "$pid"
check "worker drained and exited" wait_until 20 bash -c "! kill -0 $pid 2>/dev/null"
"$KILN" up --workers 1 --set worker.max_input_bytes=10000000 > "$TMPROOT/up2.log" 2>&1
check "worker restarted" wait_until 20 bash -c "kill -0 \$(cat '$KILN_STACK_DIR/run/worker-w1.pid') 2>/dev/null"
"$KILN" dlq replay --reason TOO_LARGE > "$OUT" 2>&1
rc=$?
check "replay --reason TOO_LARGE exits 0" test $rc -eq 0
check "big-1 replayed once although dead-lettered twice" eq "$(grep -c '^replayed *big-1 ' "$OUT")" 1
check "the message without an id is reported, not replayed" grep -q '^not replayable .*TOO_LARGE' "$OUT"
check "replay summary" grep -q '^replayed 1 job(s), skipped 0 (not dead), 1 not replayable' "$OUT"
check "big-1 ends done" wait_until 30 bash -c \
    "[ \"\$(psql '$(pgconn)' -At -c \"SELECT status FROM jobs WHERE id='big-1'\")\" = done ]"
check "error cleared, counted as one new attempt" \
    eq "$(q "SELECT coalesce(error, '-') || ' ' || attempts FROM jobs WHERE id='big-1'")" "- 1"
check "exactly one transcript for big-1" eq "$(q "SELECT count(*) FROM transcripts WHERE job_id='big-1'")" 1
check "other dead jobs untouched" eq "$(q "SELECT status || ' ' || error FROM jobs WHERE id='bad-audio'")" "dead BAD_INPUT"
check "unparsable message still dead" eq "$(q "SELECT count(*) FROM jobs WHERE id LIKE 'invalid:%' AND status='dead'")" 1
check "no job left open" wait_until 10 all_terminal
# completion events go out after the commit: give the last one a moment
done_events() { "$CONSUME" "$(broker_addr)" kiln.events 2>/dev/null | grep '"id":"big-1"' | grep -c '"status":"done"'; }
has_done_event() { [ "$(done_events)" -ge 1 ]; }
check "a done event for big-1" wait_until 10 has_done_event
check "exactly one done event for big-1" eq "$(done_events)" 1

# ---- replaying again changes nothing
"$KILN" dlq replay --reason TOO_LARGE > "$OUT" 2>&1
check "second replay: nothing replayed, big-1 skipped as done" \
    bash -c "grep -q '^replayed 0 job(s)' '$OUT' && grep -q '^skipped *big-1: status is done' '$OUT'"
sleep 2
check "still exactly one transcript" eq "$(q "SELECT count(*) FROM transcripts WHERE job_id='big-1'")" 1
check "good job done" eq "$(q "SELECT status FROM jobs WHERE id='good-1'")" done
finish
