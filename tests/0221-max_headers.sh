# 0221-max_headers: a job message with more Kafka headers than job.max_headers
# (default 64) is dead-lettered in the parse step (BAD_JOB, the count in
# kiln-error-detail), once; a message at the limit and a `kiln submit` job
# (a few headers) are processed. Headers come from tests/tools/rawproduce
# ("+N" adds N filler headers).
. "$(dirname "$0")/lib.sh"
RAW=$KILN_BUILD/tools/rawproduce
CONSUME=$KILN_BUILD/tools/rawconsume
check "stack up" stack_up --workers 1 --set broker.partitions.transcribe=2
tone "$TMPROOT/a.wav" 0.25
b64=$(base64 -w0 "$TMPROOT/a.wav")
job() { printf '%s\t{"id":"%s","tenant":"hdr","modality":"transcribe","input":{"inline_b64":"%s"}}\t%s\n' "$1" "$1" "$b64" "$2"; }
{
  job hdr-many +100          # 100 headers: over the limit
  job hdr-limit +63          # 63 + kiln-tenant = 64: at the limit
} | sed 's/\t+63$/\tkiln-tenant=hdr\t+63/' | "$RAW" "$(broker_addr)" kiln.transcribe.jobs 2>/dev/null
check "raw messages delivered" eq $? 0
"$KILN" submit --tenant hdr --id hdr-submit "$TMPROOT/a.wav" > /dev/null
check "all jobs terminal" wait_until 30 all_terminal
check "message over job.max_headers dead (BAD_JOB)" eq \
  "$(q "SELECT status || ' ' || error || ': ' || error_detail FROM jobs WHERE id = 'hdr-many'")" \
  "dead BAD_JOB: message has 100 headers, more than job.max_headers (64)"
check "message at the limit done" eq "$(q "SELECT status FROM jobs WHERE id = 'hdr-limit'")" done
check "kiln submit job done" eq "$(q "SELECT status FROM jobs WHERE id = 'hdr-submit'")" done
check "kiln submit emits few headers" test "$("$CONSUME" "$(broker_addr)" kiln.transcribe.jobs 2>/dev/null |
  awk -F'\t' '$3 == "hdr-submit" { print gsub(/=/, "=", $4) }')" -le 8
"$CONSUME" "$(broker_addr)" kiln.transcribe.dlq > "$TMPROOT/dlq" 2>/dev/null
check "the DLQ holds it once" eq "$(cut -f3 "$TMPROOT/dlq" | tr '\n' ' ')" "hdr-many "
check "DLQ reason names the limit" grep -q 'kiln-error=BAD_JOB;kiln-error-detail=message has 100 headers' "$TMPROOT/dlq"
check "outbox drained" eq "$(q "SELECT count(*) FROM dlq_outbox")" 0
check "worker still running" kill -0 "$(cat "$KILN_STACK_DIR/run/worker-w1.pid")"
finish
