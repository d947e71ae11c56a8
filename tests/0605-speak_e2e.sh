# 0605-speak_e2e: speak jobs end to end through the embedded stack, next to
# a transcribe worker: 3 good jobs (one multi-sentence, one flac resampled to
# 16 kHz), one read from a text file in the store, and 6 bad ones (empty,
# over speak.max_chars, unknown voice, unphonemisable, bad format, bad
# rate). Checks the speech rows against the stored audio (decoded with
# soxi), the timings JSON and WebVTT, batching, the DLQ messages and their
# reasons, the dead rows, and the analyst view under row-level security.
# The speak worker runs with speak.backend=ref: the device code path (flow
# and decoder as one ragged batch of table ops, models/voice/vits_dev.c) on
# the host, so the path a GPU worker takes is covered end to end here.
. "$(dirname "$0")/lib.sh"
VOICES=$KILN_SRC/var/models/voices
if [ ! -f "$VOICES/en_US-joe-medium/config.json" ]; then
  echo "skip - no voice in $VOICES (make voices)"; exit 77
fi
CONSUME=$KILN_BUILD/tools/rawconsume
check "stack up: 1 transcribe + 1 speak worker" stack_up --workers 1 --speak-workers 1 \
    --set speak.voices_dir="$VOICES" --set speak.max_chars=200 --set worker.max_queue_delay_us=1500000 \
    --set speak.backend=ref
check "the speak worker runs its voice on backend ref" wait_until 10 bash -c \
    "grep -q 'backend ref' \"$KILN_STACK_DIR\"/log/*s1*.log"
check "the speak worker serves speak" eq "$(q "SELECT engine || ':' || array_to_string(modalities, ',') FROM workers WHERE id = 's1'")" "piper:speak"
check "the scheduler gives the speak topic to s1 only" wait_until 10 bash -c \
    "[ \"\$(psql '$(pgconn)' -X -At -c \"SELECT string_agg(DISTINCT coalesce(worker, '-'), ',') FROM assignments WHERE topic = 'kiln.speak.jobs'\")\" = s1 ]"

T1="Hello from kiln."
T2="The quick brown fox jumps over the lazy dog. It was a sunny day! Was it really?"
T3="Kiln speaks flac."
sub() { "$KILN" submit --tenant acme --modality speak "$@" > /dev/null 2>> "$TMPROOT/submit.err"; }
sub --id sp-good-1 --text "$T1"
sub --id sp-good-2 --text "$T2"
printf '%s' "$T3" > "$TMPROOT/t3.txt"
sub --id sp-good-3 --format flac --sample-rate 16000 --text-file "$TMPROOT/t3.txt"
printf 'Read from the object store.\n' > "$TMPROOT/t4.txt"
sub --id sp-file-1 "$TMPROOT/t4.txt"   # uploaded: input.uri of a text file
sub --id sp-bad-empty --text ""
sub --id sp-bad-long --text "$(printf 'word %.0s' $(seq 60))"
sub --id sp-bad-voice --voice no_such_voice --text "Hello."
sub --id sp-bad-control --text "$(printf 'ring \a the bell')"
sub --id sp-bad-format --format wma --text "Hello."
sub --id sp-bad-rate --sample-rate 96000 --text "Hello."
check "all jobs terminal" wait_until 90 all_terminal

check "3 good jobs done" eq "$(q "SELECT count(*) FROM jobs WHERE id LIKE 'sp-good-%' AND status = 'done' AND modality = 'speak'")" 3
check "3 speech rows for them" eq "$(q "SELECT count(*) FROM speech WHERE job_id LIKE 'sp-good-%'")" 3
check "characters counted" eq "$(q "SELECT string_agg(characters::text, ',' ORDER BY job_id) FROM speech WHERE job_id LIKE 'sp-good-%'")" \
    "${#T1},${#T2},${#T3}"
check "text from input.uri spoken" eq "$(q "SELECT j.status || ',' || s.characters || ',' || (s.audio_seconds > 0.5) FROM jobs j JOIN speech s ON s.job_id = j.id WHERE j.id = 'sp-file-1'")" "done,28,true"
check "work units = characters" eq "$(q "SELECT string_agg(work_units::int::text, ',' ORDER BY id) FROM jobs WHERE id LIKE 'sp-good-%'")" \
    "${#T1},${#T2},${#T3}"
check "formats and rates" eq "$(q "SELECT string_agg(format || '@' || sample_rate, ',' ORDER BY job_id) FROM speech WHERE job_id LIKE 'sp-good-%'")" \
    "wav@22050,wav@22050,flac@16000"
check "voice recorded" eq "$(q "SELECT count(*) FROM speech WHERE voice = 'en_US-joe-medium' AND engine = 'piper'")" 4
check "audio_seconds > 0 and longer for more text" eq \
    "$(q "SELECT bool_and(audio_seconds > 0.3) AND max(audio_seconds) = (SELECT audio_seconds FROM speech WHERE job_id = 'sp-good-2') FROM speech")" t

# the stored objects: audio decodes, its duration is the row's
for id in sp-good-1 sp-good-2 sp-good-3; do
  uri=$(q "SELECT uri FROM speech WHERE job_id = '$id'"); f=${uri#file://}
  check "$id: audio under results/acme/$id/" bash -c "[[ '$f' == '$KILN_STACK_DIR'/objects/results/acme/$id/speech.* ]] && [ -s '$f' ]"
  dur=$(soxi -D "$f" 2>/dev/null); rate=$(soxi -r "$f" 2>/dev/null)
  row=$(q "SELECT audio_seconds || ' ' || sample_rate FROM speech WHERE job_id = '$id'")
  check "$id: audio decodes (soxi: ${dur:-none} s at ${rate:-?} Hz; row: $row)" \
      python3 -c "import sys; d, r, (a, s) = float('$dur'), int('$rate'), '$row'.split(); sys.exit(not (abs(d - float(a)) < 0.01 and r == int(s)))"
  tj=$(q "SELECT timings_uri FROM speech WHERE job_id = '$id'"); tj=${tj#file://}
  check "$id: timings JSON matches the audio" python3 -c "
import json, sys
t = json.load(open('$tj'))
s = t['sentences']
ok = s and all(x['end'] > x['start'] and x['words'] for x in s) and abs(t['duration'] - float('$dur')) < 0.02
sys.exit(not ok)"
  check "$id: WebVTT stored" bash -c "head -1 '$KILN_STACK_DIR/objects/results/acme/$id/speech.vtt' | grep -q WEBVTT"
  check "$id: 3 artifacts rows" eq "$(q "SELECT count(*) FROM artifacts WHERE job_id = '$id'")" 3
done
check "multi-sentence job: 3 sentences in the timings" python3 -c "
import json, sys
t = json.load(open('$KILN_STACK_DIR/objects/results/acme/sp-good-2/timings.json'))
sys.exit(len(t['sentences']) != 3 or sum(len(s['words']) for s in t['sentences']) < 12)"
check "multi-sentence job: 3 WebVTT cues" eq "$(grep -c -- '-->' "$KILN_STACK_DIR/objects/results/acme/sp-good-2/speech.vtt")" 3
check "flac is FLAC" bash -c "file '$KILN_STACK_DIR/objects/results/acme/sp-good-3/speech.flac' | grep -q FLAC"

# the bad ones: dead rows, DLQ messages with their reasons
dead() { q "SELECT error || ': ' || error_detail FROM jobs WHERE status = 'dead' AND id = '$1'"; }
check "empty text dead" bash -c "[[ \"$(dead sp-bad-empty)\" == BAD_JOB:*'empty'* ]]"
check "text over speak.max_chars dead" bash -c "[[ \"$(dead sp-bad-long)\" == TOO_LARGE:*'300 characters is over the limit of 200'* ]]"
check "unknown voice dead" bash -c "[[ \"$(dead sp-bad-voice)\" == BAD_JOB:*'unknown voice'*no_such_voice* ]]"
check "unphonemisable text dead" bash -c "[[ \"$(dead sp-bad-control)\" == BAD_INPUT:*'cannot be phonemised: control character U+0007'* ]]"
check "unknown format dead" bash -c "[[ \"$(dead sp-bad-format)\" == BAD_JOB:*'params.format'* ]]"
check "sample rate out of range dead" bash -c "[[ \"$(dead sp-bad-rate)\" == BAD_JOB:*'params.sample_rate'* ]]"
check "6 dead speak rows" eq "$(q "SELECT count(*) FROM jobs WHERE status = 'dead' AND modality = 'speak'")" 6
check "no speech row for a dead job" eq "$(q "SELECT count(*) FROM speech s JOIN jobs j ON j.id = s.job_id WHERE j.status <> 'done'")" 0
"$CONSUME" "$(broker_addr)" kiln.speak.dlq > "$TMPROOT/dlq" 2>/dev/null
check "6 messages in kiln.speak.dlq" eq "$(wc -l < "$TMPROOT/dlq")" 6
for r in "sp-bad-empty.*kiln-error=BAD_JOB" "sp-bad-long.*kiln-error=TOO_LARGE" \
         "sp-bad-voice.*kiln-error=BAD_JOB.*unknown voice" "sp-bad-control.*kiln-error=BAD_INPUT.*phonemised"; do
  check "DLQ: ${r%%.\**}" grep -q "$r" "$TMPROOT/dlq"
done

# the analyst view under row-level security
q "ALTER ROLE kiln_analyst LOGIN" > /dev/null
aq() { psql "$(pgconn | sed 's/user=postgres/user=kiln_analyst/') options=-ckiln.tenant=$1" -X -At -c "$2"; }
check "analyst of acme sees its 4 results" eq "$(aq acme "SELECT count(*) FROM speech_results")" 4
check "analyst of acme: view joins the job" eq "$(aq acme "SELECT count(*) FROM speech_results WHERE status = 'done' AND latency_s >= 0 AND characters_per_second > 0")" 4
check "analyst of globex sees nothing" eq "$(aq globex "SELECT count(*) FROM speech_results") $(aq globex "SELECT count(*) FROM speech")" "0 0"
check "analyst cannot write speech" bash -c "! psql \"$(pgconn | sed 's/user=postgres/user=kiln_analyst/') options=-ckiln.tenant=acme\" -X -At -c \"DELETE FROM speech\" 2>/dev/null | grep -q DELETE\ [1-9]"
check "kiln status shows the speak topic" bash -c "'$KILN' status | grep -q 'kiln.speak.jobs'"
# one engine call for several jobs: the sentences of a batch's jobs go through the voice together
metrics=$(curl -s "http://127.0.0.1:$(cat "$KILN_STACK_DIR/run/worker-s1.metrics")/metrics")
ex=$(echo "$metrics" | awk '/^kiln_inference_exec_count/ {print $2}'); inf=$(echo "$metrics" | awk '/^kiln_inference_count/ {print $2}')
check "jobs batched through the voice ($inf jobs in $ex engine calls)" test "${inf:-0}" -gt "${ex:-0}"
check "work units metric counts characters" eq "$(echo "$metrics" | awk '/^kiln_work_units_total\{modality="speak"\}/ {print $2}')" "$(( ${#T1} + ${#T2} + ${#T3} + 28 ))"
check "speak worker still running" kill -0 "$(cat "$KILN_STACK_DIR/run/worker-s1.pid")"
finish
