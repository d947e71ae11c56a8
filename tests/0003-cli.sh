#!/usr/bin/env bash
# tests/0003-cli.sh - the `kiln` command line without a stack: top-level
# dispatch and exit codes (cmd/main.c, cmd/cli.h), every subcommand's --help,
# configuration errors from --set (exit 2 before anything starts), secret
# masking in `kiln conf`, CONFIGURATION.md being current, and the benchmark
# list. Starts nothing: runs in a private empty stack directory and working
# directory so no stack.conf or kiln.conf from elsewhere leaks in. ~1 s.
. "$(dirname "$0")/lib.sh"

# only this test's settings: drop KILN_* configuration from the caller
for v in $(compgen -e | grep '^KILN_'); do
  case $v in KILN_SRC|KILN_BUILD|KILN_STACK_DIR|KILN_KEEP) ;; *) unset "$v" ;; esac
done
export KILN_STACK_DIR=$TMPROOT/stack
mkdir -p "$KILN_STACK_DIR"
cd "$TMPROOT" || exit 1

OUT=$TMPROOT/out ERR=$TMPROOT/err
# run CMD...: runs kiln with a time limit, stdout in $OUT, stderr in $ERR, status in $RC
run() { timeout 20 "$KILN" "$@" > "$OUT" 2> "$ERR"; RC=$?; }

rc_is() { [ "$RC" = "$1" ] || { echo "# exit status $RC, expected $1; stderr:" >&2; sed 's/^/#   /' "$ERR" >&2; return 1; }; }
out_has() { grep -q -- "$1" "$OUT" || { echo "# stdout lacks [$1]:" >&2; head -n 20 "$OUT" | sed 's/^/#   /' >&2; return 1; }; }
err_has() { grep -q -- "$1" "$ERR" || { echo "# stderr lacks [$1]:" >&2; sed 's/^/#   /' "$ERR" >&2; return 1; }; }
nowhere() { ! grep -q -- "$1" "$OUT" "$ERR" || { echo "# [$1] was printed" >&2; return 1; }; }

# ---- top level
run --help
check "kiln --help exits 0 and prints usage" eval 'rc_is 0 && out_has "^usage: kiln" && out_has "^Commands:"'
run help
check "kiln help exits 0" rc_is 0
run
check "kiln with no arguments exits 2 and prints usage" eval 'rc_is 2 && out_has "^usage: kiln"'
run frobnicate
check "an unknown command exits 2 and names it" eval 'rc_is 2 && err_has "unknown command \"frobnicate\""'

# ---- every subcommand listed under "Commands:" has a working --help
"$KILN" --help > "$TMPROOT/help" 2>&1
cmds=$(sed -n '/^Commands:/,/^$/{/^  [a-z]/{s/^  \([a-z][a-z-]*\).*/\1/;p}}' "$TMPROOT/help")
n=$(echo $cmds | wc -w)
check "kiln --help lists the commands ($n)" eval '[ "$n" -ge 10 ] || { echo "# commands: $cmds" >&2; false; }'
for c in $cmds; do
  run "$c" --help
  check "kiln $c --help exits 0 and prints usage" eval 'rc_is 0 && out_has "^usage: kiln $c"'
done
# and each one is dispatched: an unknown option is a usage error, not "unknown command"
for c in $cmds; do
  run "$c" --no-such-option
  check "kiln $c --no-such-option exits 2" eval 'rc_is 2 && ! grep -q "unknown command" "$ERR"'
done

# ---- usage and configuration errors: exit 2 before anything starts
run submit
check "kiln submit with no input exits 2" eval 'rc_is 2 && err_has "nothing to submit"'
run worker --set nosuch.key=1
check "kiln worker --set nosuch.key=1 exits 2" eval 'rc_is 2 && err_has "unknown configuration property \"nosuch.key\""'
run worker --set worker.max_batch=abc
check "kiln worker --set worker.max_batch=abc exits 2" eval 'rc_is 2 && err_has "invalid value \"abc\" for \"worker.max_batch\""'
run scheduler --set scheduler.interval_ms=1
check "kiln scheduler --set out-of-range value exits 2" eval 'rc_is 2 && err_has "out of range"'
run worker --set worker.max_batch
check "kiln worker --set without = exits 2" eval 'rc_is 2 && err_has "expected key=value"'
run worker --conf "$TMPROOT/no-such.conf"
check "kiln worker --conf missing file exits 2" eval 'rc_is 2 && err_has "no-such.conf"'
printf 'worker.max_batch = 4\nthis is not a setting\n' > "$TMPROOT/bad.conf"
run worker --conf "$TMPROOT/bad.conf"
check "kiln worker --conf bad line exits 2 with file:line" eval 'rc_is 2 && err_has "bad.conf:2: expected key = value"'
KILN_WORKER_MAX_BATCH=lots run worker
check "kiln worker with a bad KILN_* variable exits 2" eval 'rc_is 2 && err_has "KILN_WORKER_MAX_BATCH"'
run bench no-such-benchmark
check "kiln bench unknown benchmark exits 2" eval 'rc_is 2 && err_has "unknown benchmark"'

# ---- kiln conf: effective values shown, secrets masked
run conf --set worker.max_batch=77 --set kafka.client.id=visible-client
check "kiln conf shows the effective values" eval 'rc_is 0 && out_has "^worker.max_batch = 77$" && out_has "^kafka.client.id = visible-client$" && out_has "^stack.dir = $KILN_STACK_DIR$"'
run conf --set kafka.sasl.password=hunter2
check "kiln conf masks kafka.sasl.password" eval 'rc_is 0 && nowhere hunter2 && out_has "^kafka.sasl.password = \*\*\*\*\*\*\*\*$"'
echo "s3-secret-from-file" > "$TMPROOT/secret"
KILN_PG_PASSWORD=pg-hunter2 run conf --set s3.secret_key=@file:$TMPROOT/secret --set pg.password=hunter3
check "kiln conf masks s3.secret_key and pg.password" eval 'rc_is 0 && nowhere s3-secret-from-file && nowhere pg-hunter2 && nowhere hunter3 && out_has "^s3.secret_key = \*\*\*\*\*\*\*\*$" && out_has "^pg.password = \*\*\*\*\*\*\*\*$"'
echo "worker.max_batch = 5" > "$KILN_STACK_DIR/stack.conf"
KILN_WORKER_SLOTS=3 run conf
check "kiln conf reads stack.conf and KILN_* variables" eval 'rc_is 0 && out_has "^worker.max_batch = 5$" && out_has "^worker.slots = 3$"'
rm -f "$KILN_STACK_DIR/stack.conf"

# ---- CONFIGURATION.md is generated from the table and must be current
run conf --markdown
md_current() {
  rc_is 0 || return 1
  diff -u "$KILN_SRC/CONFIGURATION.md" "$OUT" > "$TMPROOT/md.diff" && return 0
  echo "# CONFIGURATION.md is out of date with lib/conf_props.c: run \`make docs\` and commit it" >&2
  head -n 30 "$TMPROOT/md.diff" | sed 's/^/#   /' >&2
  return 1
}
check "CONFIGURATION.md matches kiln conf --markdown (else run make docs)" md_current
run conf --reference
check "kiln conf --reference lists every property" eval 'rc_is 0 && out_has "worker.max_batch" && out_has "scheduler.interval_ms" && out_has "s3.secret_key"'

# ---- kiln bench --help lists the benchmarks, and each listed one is dispatched
run bench --help
benches=$(sed -n 's/^  \([a-z][a-z_-]*\)  .*/\1/p' "$OUT")
check "kiln bench --help lists benchmarks" eval 'rc_is 0 && out_has "^usage: kiln bench" && [ -n "$benches" ]'
for b in $benches; do
  run bench "$b" --help
  check "kiln bench $b is a known benchmark" eval '! grep -q "unknown benchmark" "$ERR" && [ "$RC" != 2 ]'
done

finish
