#!/usr/bin/env bash
# tests/run.sh - runs every test in numeric order and prints "N passed, N failed".
#
# A test is either a C program build/tests/NNNN-name (from tests/NNNN-name.c)
# or a shell script tests/NNNN-name.sh. Each prints "ok - ..." and
# "not ok - ..." lines (one per sub-test); exit 77 skips the whole file.
# A program that exits non-zero without printing "not ok" counts as one
# failure. TESTS=0100,0200 (prefixes) runs a subset. Shell tests get
# KILN (the binary), KILN_BUILD, KILN_SRC and the test stack env from
# tests/lib.sh.
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
build=${KILN_BUILD:-$src/build}
export KILN_SRC=$src KILN_BUILD=$build KILN=$build/kiln
logdir=$build/test-logs
mkdir -p "$logdir"
passed=0; failed=0; skipped=0
want() {
  [ -z "${TESTS:-}" ] && return 0
  local id=$1 t
  for t in ${TESTS//,/ }; do [[ $id == $t* ]] && return 0; done
  return 1
}
list=$( (ls "$build"/tests/[0-9][0-9][0-9][0-9]-* 2>/dev/null; ls "$src"/tests/[0-9][0-9][0-9][0-9]-*.sh 2>/dev/null) \
        | grep -v '\.[co]$\|\.d$' | awk -F/ '{print $NF"\t"$0}' | sort | cut -f2)
for t in $list; do
  name=$(basename "$t"); id=${name%%-*}
  want "$id" || continue
  case $t in *.sh) cmd=(bash "$t");; *) [ -x "$t" ] || continue; cmd=("$t");; esac
  start=$(date +%s)
  echo "# $name"
  "${cmd[@]}" >"$logdir/$name.log" 2>&1
  rc=$?
  ok=$(grep -c '^ok - ' "$logdir/$name.log")
  nok=$(grep -c '^not ok - ' "$logdir/$name.log")
  grep -E '^(ok|not ok|skip) - ' "$logdir/$name.log" | sed 's/^/  /'
  if [ $rc -eq 77 ]; then skipped=$((skipped+1)); continue; fi
  if [ $rc -ne 0 ] && [ "$nok" -eq 0 ]; then
    nok=1; echo "  not ok - $name exited with status $rc (log: $logdir/$name.log)"
  fi
  if [ "$nok" -gt 0 ]; then echo "  --- last lines of $logdir/$name.log:"; tail -n 25 "$logdir/$name.log" | sed 's/^/  | /'; fi
  passed=$((passed+ok)); failed=$((failed+nok))
  echo "  ($(( $(date +%s) - start ))s)"
done
echo "$passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
