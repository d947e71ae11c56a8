#!/usr/bin/env bash
# bench/tts.sh - kept for old command lines: the TTS benchmark is now built
# into the binary (`kiln bench tts`, cmd/bench_tts.c: kiln against Piper on
# onnxruntime, single requests and batched, interleaved rounds, JSON in
# bench/results/). This wrapper passes its arguments on.
#
#   bench/tts.sh [--json] [--threads N] [--rounds R] [--batch N] [--text FILE] [--voice DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
KILN=${KILN:-$root/build/kiln}
cd "$root"
exec "$KILN" bench tts "$@"
