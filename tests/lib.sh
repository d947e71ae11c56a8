# tests/lib.sh - helpers for the shell tests (sourced).
#
#   stack_up [--workers N] [--set k=v ...]   start a private embedded stack in a temp dir
#   stack_down                               stop it (also on exit, via trap)
#   q "SQL" [args...]                        run SQL on its Postgres (psql -At)
#   check NAME COND...                       print "ok - NAME" or "not ok - NAME"
#   wait_until SECONDS CMD...                poll CMD until it succeeds
#   tone FILE [SECONDS]                      write a 16 kHz sine wav (sox)
set -u
: "${KILN:?run through tests/run.sh}"
FAILS=0
TMPROOT=$(mktemp -d /tmp/kiln-test.XXXXXX)
chmod 755 "$TMPROOT"
export KILN_STACK_DIR=$TMPROOT/stack
STACK_UP=0

stack_up() {
  STACK_UP=1
  # fast failure detection and batching for tests
  "$KILN" up --set worker.engine=${TEST_ENGINE:-null} --set scheduler.worker_timeout_ms=3000 --set scheduler.interval_ms=300 \
      --set worker.heartbeat_ms=300 "$@" > "$TMPROOT/up.log" 2>&1
  local rc=$?
  [ $rc -eq 0 ] || { echo "kiln up failed ($rc):"; cat "$TMPROOT/up.log"; }
  return $rc
}

stack_down() {
  [ "$STACK_UP" = 1 ] && "$KILN" down > /dev/null 2>&1
  STACK_UP=0
}

# Sanitizer builds (make test SAN=1): any report in a daemon's log fails the test.
check_sanitizer_logs() {
  local hits
  hits=$(grep -l -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$KILN_STACK_DIR"/log/*.log 2>/dev/null)
  if [ -n "$hits" ]; then
    echo "not ok - sanitizer report in: $hits"; FAILS=$((FAILS+1))
    grep -h -A12 -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' $hits | head -40 | sed 's/^/# /'
  fi
}

cleanup() {
  stack_down
  check_sanitizer_logs
  if [ "$FAILS" -gt 0 ] || [ -n "${KILN_KEEP:-}" ]; then
    echo "# test files kept in $TMPROOT"
    for f in "$KILN_STACK_DIR"/log/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 15 "$f"; }; done
  else
    rm -rf "$TMPROOT"
  fi
}
trap cleanup EXIT

pgconn() {
  local port
  port=$(sed -n 's/^pg.port = //p' "$KILN_STACK_DIR/stack.conf")
  echo "host=127.0.0.1 port=$port dbname=kiln user=postgres"
}

q() { psql "$(pgconn)" -X -At -v ON_ERROR_STOP=1 -c "$1"; }

check() {
  local name=$1; shift
  if "$@"; then echo "ok - $name"; else echo "not ok - $name"; FAILS=$((FAILS+1)); fi
}

eq() { [ "$1" = "$2" ] || { echo "# expected [$2], got [$1]" >&2; return 1; }; }

wait_until() {
  local secs=$1; shift
  local end=$(( $(date +%s) + secs ))
  while [ "$(date +%s)" -lt "$end" ]; do "$@" && return 0; sleep 0.5; done
  "$@"
}

tone() {
  sox -n -r 16000 -c 1 -b 16 "$1" synth "${2:-0.5}" sine 440 vol 0.5 2>/dev/null
}

broker_addr() { cat "$KILN_STACK_DIR/broker.addr"; }

# all submitted jobs terminal?
all_terminal() { [ "$(q "SELECT count(*) FROM jobs WHERE status NOT IN ('done','dead')")" = 0 ]; }

finish() { exit $(( FAILS > 0 ? 1 : 0 )); }
