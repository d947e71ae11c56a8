#!/usr/bin/env bash
# monitoring/kiln-targets.sh - writes Prometheus file_sd targets (JSON) for
# the kiln processes of an embedded stack, from the port files they leave in
# <stack.dir>/run/<name>.metrics (worker-<id>.metrics, scheduler.metrics).
#
#   kiln-targets.sh [STACK_DIR] [--job worker|scheduler] [--host HOST] > targets.json
#
# STACK_DIR defaults to $KILN_STACK_DIR, then ./var. Each target gets the
# labels worker="<id>" (or component="scheduler"). Write to a temporary file
# and rename it over the one Prometheus reads so it never sees half a file.
set -eu
dir=${KILN_STACK_DIR:-./var}
job=worker
host=127.0.0.1
while [ $# -gt 0 ]; do
  case $1 in
    --job) job=$2; shift 2;;
    --host) host=$2; shift 2;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
    *) dir=$1; shift;;
  esac
done
printf '['
sep=
for f in "$dir"/run/*.metrics; do
  [ -f "$f" ] || continue
  name=$(basename "$f" .metrics)
  port=$(head -n1 "$f" | tr -dc '0-9')
  [ -n "$port" ] || continue
  case $job:$name in
    worker:worker-*) labels="\"worker\": \"${name#worker-}\"";;
    scheduler:scheduler) labels="\"component\": \"scheduler\"";;
    *) continue;;
  esac
  printf '%s\n  {"targets": ["%s:%s"], "labels": {%s}}' "$sep" "$host" "$port" "$labels"
  sep=,
done
printf '\n]\n'
