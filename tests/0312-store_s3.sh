#!/usr/bin/env bash
# tests/0312-store_s3.sh - the s3:// object store against moto and a
# signature-checking S3 stand-in.
#
# Starts three local servers (all on 127.0.0.1, free ports, killed by a trap
# on every exit path):
#   1. moto_server, no auth: round trips through kiln and boto3 (sha256 of
#      every object compared), NOT_FOUND, TOO_LARGE, prefixes, missing bucket;
#   2. moto_server with IAM auth (INITIAL_NO_AUTH_ACTION_COUNT): kiln's SigV4
#      signatures accepted, wrong secret / unknown key rejected with the S3
#      error text;
#   3. tests/s3/sigv4_check.py: every request checked against botocore's
#      signer and S3's canonical path encoding (moto mis-verifies non-ASCII).
# The C side is build/tests/0311-store_s3_client. Needs moto_server and
# boto3 in the python3 on PATH; skips (77) without them.
set -u
src=${KILN_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
build=${KILN_BUILD:-$src/build}
client=$build/tests/0311-store_s3_client
py=python3

skip() { echo "skip - $*"; exit 77; }
[ -x "$client" ] || skip "$client is not built"
command -v moto_server >/dev/null 2>&1 || skip "moto_server not on PATH"
$py -c 'import boto3, botocore' 2>/dev/null || skip "boto3 not importable by $py"

work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-0312-XXXXXX")
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

failed=0
ok() { echo "ok - $*"; }
notok() { echo "not ok - $*"; failed=$((failed + 1)); }

free_port() {
  $py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_http URL: until anything answers over HTTP (20 s at most)
wait_http() {
  local i
  for i in $(seq 1 100); do
    curl -s -o /dev/null -m 2 "$1" && return 0
    sleep 0.2
  done
  return 1
}

# start_moto NAME [ENV=VAL...]: starts moto_server, sets $port
start_moto() {
  local name=$1; shift
  port=$(free_port)
  env "$@" moto_server -H 127.0.0.1 -p "$port" >"$work/$name.log" 2>&1 &
  pids+=($!)
  if ! wait_http "http://127.0.0.1:$port/"; then
    notok "$name: moto_server did not answer on port $port"
    tail -n 20 "$work/$name.log"
    exit 1
  fi
}

# run_client PHASE: runs the C client, passing its ok / not ok lines through
run_client() {
  local rc
  "$client" "$1" >"$work/client-$1.log" 2>&1
  rc=$?
  grep -E '^(ok|not ok|skip) - ' "$work/client-$1.log"
  if [ $rc -ne 0 ]; then
    notok "client phase $1 exited with status $rc"
    grep -vE '^(ok|not ok|skip) - ' "$work/client-$1.log" | tail -n 20
  fi
}

export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
unset AWS_SESSION_TOKEN AWS_PROFILE

# ---- 1. plain moto
start_moto moto
ep=http://127.0.0.1:$port
bucket=kiln-test
if $py "$src/tests/s3/s3_helper.py" mkbucket "$ep" "$bucket" &&
   $py "$src/tests/s3/s3_helper.py" put-pattern "$ep" "$bucket" "from-boto3/ünï space.bin" 70000; then
  ok "moto: bucket and boto3 object created"
else
  notok "moto: could not create the bucket"; exit 1
fi
KILN_TEST_S3_ENDPOINT=$ep KILN_TEST_S3_BUCKET=$bucket \
KILN_TEST_S3_ACCESS_KEY=testing KILN_TEST_S3_SECRET_KEY=testing \
KILN_TEST_S3_MANIFEST=$work/manifest KILN_TEST_S3_DEAD_ENDPOINT=http://127.0.0.1:$(free_port) \
  run_client moto
if [ -s "$work/manifest" ]; then
  $py "$src/tests/s3/s3_helper.py" verify "$ep" "$bucket" "$work/manifest" || failed=$((failed + 1))
else
  notok "moto: the client wrote no manifest"
fi

# ---- 2. moto with IAM auth: 4 unauthenticated calls to set up user, policy,
# access key and bucket, then every request must be signed by that key
start_moto moto-auth INITIAL_NO_AUTH_ACTION_COUNT=4
ep=http://127.0.0.1:$port
if keys=$($py "$src/tests/s3/s3_helper.py" setup-auth "$ep" "$bucket" 2>"$work/setup-auth.err"); then
  read -r ak sk <<<"$keys"
  ok "moto-auth: IAM user and bucket created"
  KILN_TEST_S3_ENDPOINT=$ep KILN_TEST_S3_BUCKET=$bucket \
  KILN_TEST_S3_ACCESS_KEY=$ak KILN_TEST_S3_SECRET_KEY=$sk run_client auth
else
  notok "moto-auth: setup failed: $(tail -n 3 "$work/setup-auth.err")"
fi

# ---- 3. the signature checker
$py "$src/tests/s3/sigv4_check.py" AKIAKILNCHECK0000000 "check/secret+key" us-east-1 \
  >"$work/check.port" 2>"$work/check.log" &
pids+=($!)
for i in $(seq 1 50); do [ -s "$work/check.port" ] && break; sleep 0.1; done
port=$(head -n 1 "$work/check.port")
if [ -n "$port" ]; then
  KILN_TEST_S3_ENDPOINT=http://127.0.0.1:$port KILN_TEST_S3_BUCKET=$bucket \
  KILN_TEST_S3_ACCESS_KEY=AKIAKILNCHECK0000000 KILN_TEST_S3_SECRET_KEY="check/secret+key" \
    run_client sigcheck
else
  notok "sigv4_check.py did not start: $(tail -n 3 "$work/check.log")"
fi

[ $failed -eq 0 ]
