#!/usr/bin/env bash
# tests/fuzz/run.sh [NAME...] - `make fuzz`: runs each fuzz target (default:
# all), one after another, until FUZZ_RUNS executions (1,000,000) or
# FUZZ_SECONDS (300) have passed, whichever comes first.
#
# The committed corpus tests/fuzz/corpus/<name>/ seeds each run (its
# crash-* and other reproducers excepted: a bug not fixed yet would stop the
# run at once); the fuzzer works in a scratch copy under $FUZZ_BUILD/work/, and with
# FUZZ_MERGE=1 the inputs that add coverage are merged back (-merge=1) into
# the corpus, those up to FUZZ_MERGE_MAX_BYTES (32768) only: larger ones (whole
# weight files) would bloat the repository and the replay. A crash, leak, timeout or out-of-memory input is copied to
# tests/fuzz/corpus/<name>/ under libFuzzer's name (crash-<sha1>, ...), so
# that the replay test (tests/0700-fuzz_replay) keeps it as a regression
# input. Prints one line per target: executions, seconds, what it found.
# Exit status: 0 when no target found anything, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${FUZZ_BUILD:-build-fuzz}
RUNS=${FUZZ_RUNS:-1000000}
SECS=${FUZZ_SECONDS:-300}
bash tests/fuzz/build.sh "$@" || exit 1
# the targets' scratch files (removed at the end, also after a crash)
TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/kiln-fuzz.XXXXXX")
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for f in tests/fuzz/fuzz_*.c; do n=${f##*/fuzz_}; names+=("${n%.c}"); done
fi
found=0
summary=()
for n in "${names[@]}"; do
  corpus=tests/fuzz/corpus/$n
  work=$OUT/work/$n
  art=$OUT/artifacts/$n
  mkdir -p "$corpus" "$work" "$art"
  log=$OUT/fuzz_$n.log
  find "$corpus" -maxdepth 1 -type f ! -name 'crash-*' ! -name 'leak-*' ! -name 'timeout-*' \
       ! -name 'oom-*' -exec cp -n {} "$work/" \;
  echo "# fuzz_$n: up to $RUNS runs or $SECS s (log: $log)"
  # -timeout: one input may not take more than 20 s; -rss_limit_mb: 2 GiB;
  # -close_fd_mask=3: the libraries' own chatter (libsndfile prints decoder
  # errors) stays out of the log, libFuzzer's and the sanitizers' reports stay in
  "$OUT/fuzz_$n" -runs="$RUNS" -max_total_time="$SECS" -timeout=20 -rss_limit_mb=2048 \
      -close_fd_mask=3 -print_final_stats=1 -artifact_prefix="$art/" "$work" \
      < /dev/null > "$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  [ -n "$secs" ] || secs=$(grep -o 'time: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
  what="no crash"
  for a in "$art"/*; do
    [ -f "$a" ] || continue
    cp "$a" "$corpus/"
    what="FOUND $(basename "$a") (kept in $corpus/; stack in $log)"
    found=1
    rm -f "$a"
  done
  [ $rc -ne 0 ] && [ "$what" = "no crash" ] && { what="exited with status $rc (see $log)"; found=1; }
  if [ "${FUZZ_MERGE:-0}" = 1 ]; then
    # merge into a copy of the corpus without its reproducers (they would
    # crash the merge), then add what the merge kept to the corpus
    before=$(ls "$corpus" | wc -l)
    small=$OUT/small/$n into=$OUT/into/$n
    rm -rf "$small" "$into"; mkdir -p "$small" "$into"
    find "$work" -maxdepth 1 -type f -size -"${FUZZ_MERGE_MAX_BYTES:-32768}"c -exec cp {} "$small/" \;
    find "$corpus" -maxdepth 1 -type f ! -name 'crash-*' ! -name 'leak-*' ! -name 'timeout-*' \
         ! -name 'oom-*' -exec cp {} "$into/" \;
    "$OUT/fuzz_$n" -merge=1 -timeout=20 -rss_limit_mb=2048 -close_fd_mask=3 \
        -artifact_prefix="$art/" "$into" "$small" < /dev/null > "$OUT/merge_$n.log" 2>&1
    cp -n "$into"/* "$corpus/" 2>/dev/null
    what="$what; corpus $before -> $(ls "$corpus" | wc -l) files"
  fi
  line="fuzz_$n: ${execs:-?} executions in ${secs:-?} s: $what"
  echo "$line"
  summary+=("$line")
done
echo "# summary"
printf '%s\n' "${summary[@]}"
exit $found
