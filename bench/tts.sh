#!/usr/bin/env bash
# bench/tts.sh - speech synthesis on the CPU: kiln (`kiln speak --repeat`)
# against Piper on onnxruntime (bench/tts_ort.py), same voice, same text,
# same number of threads, runs interleaved (kiln, ort, kiln, ort, ...) so
# that both see the same machine load. Prints each run's real-time factor
# (synthesis seconds per second of audio; lower is faster), the medians and
# their ratio, and with --json one JSON object.
#
#   bench/tts.sh [--json] [--threads N] [--rounds R] [--text FILE] [--voice DIR]
#
# Needs: the voice (make voices), piper-tts in var/venv (make test-ref), and
# a kiln with the speak command (KILN, default build/kiln).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
KILN=${KILN:-$root/build/kiln}
voice=$root/var/models/voices/en_US-joe-medium
text=$root/tests/golden/voice_corpus.txt
threads=$(nproc); rounds=3; json=0
while [ $# -gt 0 ]; do
  case $1 in
    --json) json=1;; --threads) threads=$2; shift;; --rounds) rounds=$2; shift;;
    --text) text=$2; shift;; --voice) voice=$2; shift;;
    *) echo "usage: bench/tts.sh [--json] [--threads N] [--rounds R] [--text FILE] [--voice DIR]" >&2; exit 2;;
  esac; shift
done
py=$root/var/venv/bin/python
"$py" -c 'import piper' 2>/dev/null || { echo "bench/tts.sh: piper-tts missing in var/venv (make test-ref)" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for r in $(seq 1 "$rounds"); do
  # one warm-up run each, then the timed one
  "$KILN" speak --voice "$voice" --threads "$threads" --repeat 2 --text-file "$text" -o "$tmp/k.wav" 2>/dev/null | tail -n 1 >> "$tmp/runs"
  "$py" "$root/bench/tts_ort.py" "$voice/en_US-joe-medium.onnx" "$text" "$threads" 2 2>/dev/null | tail -n 1 >> "$tmp/runs"
done
"$py" - "$tmp/runs" "$json" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
med = {e: statistics.median(r["rtf"] for r in runs if r["engine"] == e) for e in ("kiln", "onnxruntime")}
audio = runs[0]["audio_s"]
res = {"audio_s": audio, "threads": runs[0]["threads"], "rounds": len(runs) // 2,
       "rtf_kiln": med["kiln"], "rtf_onnxruntime": med["onnxruntime"],
       "speedup": med["onnxruntime"] / med["kiln"], "runs": runs}
if sys.argv[2] == "1":
    print(json.dumps(res))
else:
    for r in runs:
        print("%-12s run: %.2f s of audio in %.3f s  RTF %.4f" % (r["engine"], r["audio_s"], r["synth_s"], r["rtf"]))
    print("median RTF: kiln %.4f, onnxruntime %.4f; kiln is %.2fx onnxruntime's speed (%d threads)"
          % (med["kiln"], med["onnxruntime"], res["speedup"], res["threads"]))
PY
