#!/usr/bin/env bash
# deploy/compose/init-secrets.sh - writes random passwords for the compose
# stack (pg_password, minio_password, grafana_password) into DIR (default
# deploy/compose/secrets, or $SECRETS_DIR), leaving existing files alone.
# The files are mounted as Docker secrets; they never enter the image or git.
# Each file is world-readable (0644) because the containers read it as their
# own users (kiln runs as uid 10001); DIR itself is 0700, so other users of
# the host cannot reach the files.
#   init-secrets.sh [DIR]
set -eu
dir=${1:-${SECRETS_DIR:-$(dirname "$0")/secrets}}
mkdir -p "$dir"
chmod 700 "$dir"
for s in pg_password minio_password grafana_password; do
  [ -s "$dir/$s" ] && continue
  (umask 022; head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' > "$dir/$s")
  echo "wrote $dir/$s"
done
