# 0920-valgrind: valgrind memcheck on the daemons end to end (issue #6;
# docs/leaks.md). In the embedded stack (Postgres runs natively) the
# broker, the scheduler, `kiln submit` and a worker each run under memcheck;
# the worker gets good wav/flac/ogg inputs, a silent one and poison ones
# (not audio, an empty wav, the malformed Ogg Vorbis stream that leaks in
# libvorbis), commits them and is stopped with SIGTERM (clean drain). Every
# valgrind log must say "0 errors" and "definitely lost: 0 bytes" (or "no
# leaks are possible"), and every process must exit 0.
#
#   make test        broker, scheduler, submit, a null-engine worker (decode +
#                    measure, no model) and `kiln speak` (the voice):
#                    25-45 s on 2 busy cores
#   make test-long   (KILN_LONG=1) also `kiln transcribe` and a whisper-engine
#                    worker on the same inputs: ~45 s of CPU per 30 s
#                    window under memcheck, 12-17 min on 2 busy cores
#   KILN_VALGRIND_WHISPER=1   the whisper part without the rest of test-long
#
# OpenBLAS is pinned to its Sandybridge kernels: memcheck runs the default
# Haswell FMA sgemm kernel >10x slower (minutes per encoder pass). Skips
# (77) when valgrind is absent or the build is a sanitizer build (SAN=1).
. "$(dirname "$0")/lib.sh"
# `kiln down` (lib.sh's cleanup) does not recognise processes run under
# valgrind (their command line starts with valgrind.bin): the test kills
# its own on exit, then cleans up as usual
VG_PIDS=()
trap 'for p in "${VG_PIDS[@]}"; do kill -KILL "$p" 2> /dev/null; done; cleanup' EXIT
command -v valgrind > /dev/null || { echo "skip - valgrind not installed (apt-get install valgrind)"; exit 77; }
if ldd "$KILN" | grep -q 'libasan\|libubsan'; then echo "skip - sanitizer build: valgrind cannot run it"; exit 77; fi
export OPENBLAS_CORETYPE=Sandybridge OPENBLAS_NUM_THREADS=1
VG=(valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
    --show-leak-kinds=definite --num-callers=40 --suppressions="$KILN_SRC/tests/valgrind.supp")
DEV=${KILN_SPEECH_DEV:-$KILN_SRC/../shared/data/speech/dev}
[ -f "$DEV/LJ001-0008.flac" ] || { echo "skip - no dev speech set in $DEV (KILN_SPEECH_DEV)"; exit 77; }

# vg_clean LOG: memcheck found no error and no definite leak
vg_clean() {
  if grep -q 'ERROR SUMMARY: 0 errors' "$1" &&
     grep -q -E 'definitely lost: 0 bytes|no leaks are possible' "$1"; then return 0; fi
  grep -E -A30 '^==[0-9]+== (Invalid|Conditional|Syscall|Mismatched|Source and|[0-9,]+ bytes in [0-9,]+ blocks are definitely)' "$1" \
    | head -80 | sed 's/^/# /'
  grep -E 'ERROR SUMMARY|definitely lost' "$1" | sed 's/^/# /'
  return 1
}
# stop PID NAME LOG: SIGTERM, wait up to 5 min (memcheck's leak check takes a
# while), then it must have exited 0 with a clean log
stop_clean() {
  local pid=$1 name=$2 log=$3 rc i
  kill -TERM "$pid"
  for i in $(seq 600); do kill -0 "$pid" 2> /dev/null || break; sleep 0.5; done
  kill -KILL "$pid" 2> /dev/null && echo "# $name: still running 5 min after SIGTERM: killed"
  wait "$pid"; rc=$?
  check "$name: exits 0 after SIGTERM" eq "$rc" 0
  check "$name: memcheck: 0 errors, 0 bytes definitely lost" vg_clean "$log"
}

# worker_run ENGINE TENANT: one worker under memcheck; submit (also under
# memcheck) the inputs, wait until terminal, check the rows, SIGTERM it.
worker_run() {
  local engine=$1 tenant=$2 wid=vg-$1 wait_s=$3
  "${VG[@]}" --log-file="$TMPROOT/vg-worker-$engine.log" "$KILN" worker --set worker.id="$wid" \
    --set worker.engine="$engine" > "$TMPROOT/worker-$engine.log" 2>&1 &
  local wpid=$!
  VG_PIDS+=("$wpid")
  holds() { [ "$(q "SELECT count(*) FROM assignments WHERE worker='$wid'")" -gt 0 ]; }
  check "$engine worker holds partitions" wait_until 120 holds
  "${VG[@]}" --log-file="$TMPROOT/vg-submit-$engine.log" "$KILN" submit --tenant "$tenant" \
    "${INPUTS[@]}" > "$TMPROOT/ids-$engine" 2> "$TMPROOT/submit-$engine.err"
  check "$engine: submit exits 0" eq "$?" 0
  check "$engine: submit: memcheck: 0 errors, 0 bytes definitely lost" vg_clean "$TMPROOT/vg-submit-$engine.log"
  terminal() { [ "$(q "SELECT count(*) FROM jobs WHERE tenant='$tenant' AND status NOT IN ('done','dead')")" = 0 ]; }
  check "$engine: all jobs terminal" wait_until "$wait_s" terminal
  st() { q "SELECT j.status FROM jobs j WHERE j.id = '$(awk -F'\t' -v f="$TMPROOT/$1" '$2 == f {print $1}' "$TMPROOT/ids-$engine")'"; }
  for f in good.flac good.wav good.ogg tone.wav silent.wav; do check "$engine: $f done" eq "$(st "$f")" done; done
  for f in text.wav empty.wav malformed.ogg; do check "$engine: $f dead" eq "$(st "$f")" dead; done
  check "$engine: one transcript per done job" eq \
    "$(q "SELECT count(*) FROM transcripts WHERE tenant='$tenant' AND engine='$engine'")" 5
  outbox_empty() { [ "$(q "SELECT count(*) FROM dlq_outbox")" = 0 ]; }
  check "$engine: dead letters delivered (outbox empty)" wait_until 30 outbox_empty
  stop_clean "$wpid" "$engine worker" "$TMPROOT/vg-worker-$engine.log"
  check "$engine worker drained" grep -q draining "$TMPROOT/worker-$engine.log"
}

# a long heartbeat timeout: a worker under memcheck spends seconds in one call
check "stack up" stack_up --workers 0 --set broker.partitions.transcribe=2 \
  --set scheduler.worker_timeout_ms=600000
# the broker and the scheduler `kiln up` started (nothing produced yet) are
# replaced by ones under memcheck
for d in scheduler broker; do
  pid=$(cat "$KILN_STACK_DIR/run/$d.pid")
  kill -TERM "$pid"
  wait_until 20 bash -c "! kill -0 $pid 2>/dev/null"
done
rm -f "$KILN_STACK_DIR/broker.addr"
"${VG[@]}" --log-file="$TMPROOT/vg-broker.log" "$KILN" broker > "$TMPROOT/broker.log" 2>&1 &
bpid=$!
VG_PIDS+=("$bpid")
check "broker under memcheck up" wait_until 60 test -s "$KILN_STACK_DIR/broker.addr"
"${VG[@]}" --log-file="$TMPROOT/vg-scheduler.log" "$KILN" scheduler > "$TMPROOT/scheduler.log" 2>&1 &
spid=$!
VG_PIDS+=("$spid")

cp "$DEV/LJ001-0008.flac" "$TMPROOT/good.flac"            # 1.8 s
cp "$DEV/LJ001-0174.wav" "$TMPROOT/good.wav"              # 2.5 s
cp "$DEV/fleurs-en-004.ogg" "$TMPROOT/good.ogg"           # Ogg Opus
tone "$TMPROOT/tone.wav" 0.5
sox -n -r 16000 -c 1 -b 16 "$TMPROOT/silent.wav" trim 0 1.0 2> /dev/null   # digital silence
echo "this is not audio" > "$TMPROOT/text.wav"
sox -n -r 16000 -c 1 -b 16 "$TMPROOT/empty.wav" trim 0 0 2> /dev/null
# the Ogg Vorbis stream libsndfile fails to open, leaking libvorbis's setup (docs/leaks.md)
cp "$KILN_SRC/tests/fuzz/corpus/audio/leak-9a355f23aacc89aa8345fd7fe1e11e12f1d76bcb" "$TMPROOT/malformed.ogg"
INPUTS=()
for f in good.flac good.wav good.ogg tone.wav silent.wav text.wav empty.wav malformed.ogg; do
  INPUTS+=("$TMPROOT/$f")
done

worker_run null vgnull 120

# the CPU engines without the stack: `kiln speak` (Piper voice, espeak-ng
# phonemes, ogg/vorbis writer) one sentence, ~10 s of CPU under memcheck
voice=${KILN_VOICE:-$KILN_SRC/var/models/voices/en_US-joe-medium}
if [ -f "$voice/model.safetensors" ]; then
  "${VG[@]}" --log-file="$TMPROOT/vg-speak.log" "$KILN" speak --voice "$voice" --threads 2 \
    -o "$TMPROOT/hello.ogg" "Hello world." > "$TMPROOT/speak.out" 2>&1
  check "speak: exits 0" eq "$?" 0
  check "speak: wrote audio" test -s "$TMPROOT/hello.ogg"
  check "speak: memcheck: 0 errors, 0 bytes definitely lost" vg_clean "$TMPROOT/vg-speak.log"
else
  echo "skip - speak under memcheck: voice not fetched (make voices)"
fi

if [ -n "${KILN_LONG:-}${KILN_VALGRIND_WHISPER:-}" ]; then
  # `kiln transcribe` on two threads (the kernels' pool), ~45 s of CPU a file
  "${VG[@]}" --log-file="$TMPROOT/vg-transcribe.log" "$KILN" transcribe --threads 2 --greedy \
    "$TMPROOT/good.flac" > "$TMPROOT/transcribe.out" 2> "$TMPROOT/transcribe.err"
  check "transcribe: exits 0" eq "$?" 0
  check "transcribe: text" grep -qi 'never been surpassed' "$TMPROOT/transcribe.out"
  check "transcribe: memcheck: 0 errors, 0 bytes definitely lost" vg_clean "$TMPROOT/vg-transcribe.log"
  export KILN_WHISPER_THREADS=1 KILN_WHISPER_PRESET=greedy
  worker_run whisper vgwhisper 1200
  tx() { q "SELECT lower(text) FROM transcripts t JOIN jobs j ON j.id = t.job_id WHERE j.tenant='vgwhisper' AND j.input_uri LIKE '%/$1'"; }
  flac_text() { [[ $(tx good.flac) == *'never been surpassed'* ]]; }
  check "whisper: flac transcribed" flac_text
  check "whisper: silence gives no text" eq "$(tx silent.wav)" ""
else
  echo "skip - whisper engine under memcheck: KILN_LONG=1 (make test-long) or KILN_VALGRIND_WHISPER=1"
fi
# scheduler before broker, as `kiln down` does: librdkafka 2.0.2's
# rd_kafka_query_watermark_offsets() ignores its timeout while the broker is
# down (librdkafka#2588), so a scheduler whose broker went first hangs
stop_clean "$spid" scheduler "$TMPROOT/vg-scheduler.log"
stop_clean "$bpid" broker "$TMPROOT/vg-broker.log"
finish
