#!/usr/bin/env bash
# bench/demo.sh - what `make demo` runs after building: start the embedded
# stack, submit sample audio as transcription jobs, show progress and results.
#
# Audio: sentences rendered with espeak-ng (always available), plus real
# recordings from ../shared/data/speech/dev when that folder exists.
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=${KILN_BUILD:-build}/kiln
export KILN_STACK_DIR=${KILN_STACK_DIR:-$PWD/var}
samples=$KILN_STACK_DIR/samples
mkdir -p "$KILN_STACK_DIR"
echo "== 1/4 rendering sample speech with espeak-ng into $samples"
bash bench/make-samples.sh "$samples"
files=("$samples"/*.wav "$samples"/*.flac "$samples"/*.ogg)
dev=../shared/data/speech/dev
if [ -d "$dev" ]; then
  echo "   + real recordings from $dev (first ${DEMO_DEV_FILES:-6} of its transcripts.tsv)"
  while IFS=$'\t' read -r f _; do files+=("$dev/$f"); done < <(head -n "${DEMO_DEV_FILES:-6}" "$dev/transcripts.tsv")
fi
echo "== 2/4 starting the embedded stack (Postgres, broker, object store, scheduler, 2 workers)"
"$KILN" up --workers 2
echo "== 3/4 submitting ${#files[@]} transcription jobs (tenant demo) and waiting"
rc=0
"$KILN" submit --tenant demo --wait "${files[@]}" || rc=$?
echo "== 4/4 where the results are"
port=$(sed -n 's/^pg.port = //p' "$KILN_STACK_DIR/stack.conf")
cat <<EOT
  Postgres : psql "host=127.0.0.1 port=$port dbname=kiln user=postgres"
             SELECT job_id, duration_s, latency_s, left(text, 60) FROM v_transcripts WHERE tenant = 'demo';
  Objects  : $KILN_STACK_DIR/objects/results/demo/<job id>/transcript.json
  Status   : $KILN status
  The stack is still running. Stop it with: $KILN down
EOT
exit $rc
