# 0220-poison: every kind of bad input reaches the DLQ with its reason and a
# dead job row; the good jobs around them complete; the worker keeps running.
. "$(dirname "$0")/lib.sh"
RAW=$KILN_BUILD/tools/rawproduce
CONSUME=$KILN_BUILD/tools/rawconsume
check "stack up" stack_up --workers 1 --set worker.max_input_bytes=100000 --set broker.partitions.transcribe=2
tone "$TMPROOT/good.wav" 0.5
tone "$TMPROOT/big.wav" 4.0                       # 128 KB > 100000 bytes
echo "this is not audio" > "$TMPROOT/text.wav"
sox -n -r 16000 -c 1 -b 16 "$TMPROOT/empty.wav" trim 0 0 2>/dev/null
goods=()
submit_one() { "$KILN" submit --id "$1" "$2" > /dev/null 2>> "$TMPROOT/submit.err"; }
for i in 1 2 3; do submit_one "good-a$i" "$TMPROOT/good.wav"; done
submit_one bad-undecodable "$TMPROOT/text.wav"
submit_one bad-empty "$TMPROOT/empty.wav"
submit_one bad-too-large "$TMPROOT/big.wav"
T=kiln.transcribe.jobs
{
  printf 'bad-json\t{"id": "bad-json", "modality": \n'
  printf 'bad-missing\t{"id":"bad-missing","tenant":"t1","modality":"transcribe"}\n'
  printf 'bad-modality\t{"id":"bad-modality","modality":"teleport","input":{"uri":"file:///x"}}\n'
  printf 'bad-uri\t{"id":"bad-uri","modality":"transcribe","input":{"uri":"file:///etc/passwd"}}\n'
  printf 'bad-deep\t{"id":"bad-deep","modality":"transcribe","input":{"uri":"x"},"p":%s1%s}\n' \
    "$(printf '[%.0s' $(seq 40))" "$(printf ']%.0s' $(seq 40))"
} | "$RAW" "$(broker_addr)" "$T" 2>/dev/null
for i in 1 2 3; do submit_one "good-b$i" "$TMPROOT/good.wav"; done
check "all jobs terminal" wait_until 60 all_terminal
check "6 good jobs done" eq "$(q "SELECT count(*) FROM jobs WHERE id LIKE 'good-%' AND status='done'")" 6
dead() { q "SELECT error || ': ' || error_detail FROM jobs WHERE status='dead' AND id LIKE '$1'"; }
check "undecodable audio dead" bash -c "[[ \"$(dead bad-undecodable)\" == BAD_INPUT:*'could not decode audio'* ]]"
check "empty audio dead" bash -c "[[ \"$(dead bad-empty)\" == BAD_INPUT:*'empty'* ]]"
check "input over size limit dead" bash -c "[[ \"$(dead bad-too-large)\" == TOO_LARGE:* ]]"
check "missing field dead" bash -c "[[ \"$(dead bad-missing)\" == BAD_JOB:*input* ]]"
check "unknown modality dead" bash -c "[[ \"$(dead bad-modality)\" == BAD_JOB:*'unknown modality'* ]]"
check "input outside the store rejected" bash -c "[[ \"$(dead bad-uri)\" == BAD_KEY:* || \"$(dead bad-uri)\" == BAD_INPUT:* ]]"
# messages whose id cannot be read are keyed by topic:partition:offset
check "too deep JSON dead" eq "$(q "SELECT count(*) FROM jobs WHERE id LIKE 'invalid:%' AND error = 'TOO_LARGE' AND error_detail LIKE '%nests 41 deep%'")" 1
check "invalid JSON dead" eq "$(q "SELECT count(*) FROM jobs WHERE id LIKE 'invalid:%' AND error = 'BAD_JOB' AND error_detail LIKE 'invalid JSON%'")" 1
check "8 dead rows" eq "$(q "SELECT count(*) FROM jobs WHERE status='dead'")" 8
# a dead row commits with its dlq_outbox row; the worker produces the dead
# letter right after COMMIT and then deletes the row
outbox_empty() { [ "$(q "SELECT count(*) FROM dlq_outbox")" = 0 ]; }
check "dead letters delivered (outbox empty)" wait_until 30 outbox_empty
"$CONSUME" "$(broker_addr)" kiln.transcribe.dlq > "$TMPROOT/dlq" 2>/dev/null
check "8 DLQ messages" eq "$(wc -l < "$TMPROOT/dlq")" 8
check "DLQ headers carry the reason" eq "$(grep -c 'kiln-error=.*kiln-error-detail=.*kiln-attempts=' "$TMPROOT/dlq")" 8
check "DLQ keeps the original message" grep -q '"id":"bad-missing"' "$TMPROOT/dlq"
check "DLQ keeps the producer's headers" grep -q 'kiln-tenant=default' "$TMPROOT/dlq"
"$CONSUME" "$(broker_addr)" kiln.events > "$TMPROOT/events" 2>/dev/null
check "14 completion events" eq "$(wc -l < "$TMPROOT/events")" 14
check "worker still running" kill -0 "$(cat "$KILN_STACK_DIR/run/worker-w1.pid")"
finish
