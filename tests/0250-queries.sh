# 0250-queries: every SQL block of docs/queries.md runs against a stack with
# real rows (done + dead jobs) and returns rows where rows must exist.
. "$(dirname "$0")/lib.sh"
check "stack up" stack_up --workers 1
tone "$TMPROOT/a.wav" 0.5
echo "not audio" > "$TMPROOT/bad.wav"
"$KILN" submit --tenant acme "$TMPROOT/a.wav" "$TMPROOT/a.wav" "$TMPROOT/bad.wav" > /dev/null 2>&1
check "jobs terminal" wait_until 30 all_terminal
# give one transcript searchable text (the null engine writes none)
q "UPDATE transcripts SET text = 'the invention of the printing press' WHERE job_id = (SELECT min(job_id) FROM transcripts)" > /dev/null
# and segments, as a model would write them
q "INSERT INTO segments (job_id, idx, start_ms, end_ms, text) SELECT min(job_id), 0, 0, 500, 'the invention' FROM transcripts" > /dev/null
# and a speech row, as a speak worker writes it (schema/005_speech.sql)
q "INSERT INTO speech (job_id, tenant, voice, characters, audio_seconds, sample_rate, format, uri, timings_uri, engine) SELECT min(job_id), 'acme', 'en_US-joe-medium', 13, 1.2, 22050, 'wav', 'file:///x/speech.wav', 'file:///x/timings.json', 'piper' FROM transcripts" > /dev/null
n=0
while IFS= read -r -d '' block; do
  n=$((n+1))
  title=$(printf '%s' "$block" | head -1)
  sql=$(printf '%s' "$block" | sed -n '/^```sql$/,/^```$/p' | sed '1d;$d')
  [ -n "$sql" ] || continue
  out=$(psql "$(pgconn)" -X -At -v ON_ERROR_STOP=1 -c "$sql" 2>&1); rc=$?
  check "query runs: $title" eq "$rc" 0
  case "$title" in *"still open"*) ;; *) check "query returns rows: $title" test -n "$out";; esac
done < <(awk 'BEGIN{RS="\n## "} NR>1 {printf "%s%c", $0, 0}' "$KILN_SRC/docs/queries.md")
check "found the 8 documented queries" eq "$n" 8
check "full-text search finds the transcript" eq "$(q "SELECT count(*) FROM transcripts WHERE tsv @@ plainto_tsquery('english', 'printing press')")" 1
check "full-text search uses the GIN index" bash -c "psql '$(pgconn)' -At -c \"SET enable_seqscan = off; EXPLAIN SELECT * FROM transcripts WHERE tsv @@ plainto_tsquery('english', 'press')\" | grep -q transcripts_tsv"
check "migrate is idempotent" bash -c "'$KILN' migrate | grep -q 'applied 0 migration'"
finish
