#!/usr/bin/env bash
# bench/tts_wer.sh - intelligibility of kiln's speech synthesis: every line
# of TEXT (default tests/golden/voice_corpus.txt, one sentence or two per
# line) is spoken by kiln (`kiln speak`) and, as the control, by piper-tts on
# onnxruntime (bench/tts_ort.py --write), both with the voice's default
# scales; both sets are transcribed by kiln's own Whisper (tiny.en, or the
# model of --model, e.g. var/models/whisper-base from `make models-base`; `kiln
# transcribe --format json`, beam 5, the product's defaults) and scored
# against the text with Whisper's English normaliser and jiwer
# (bench/asr_wer.py). Prints each side's WER and the sentences with errors
# (normalised reference / hypothesis), and with --json one JSON object as
# the last line.
#
#   bench/tts_wer.sh [--json] [--text FILE] [--voice DIR] [--model DIR] [--seed N]
#                    [--keep DIR [--score-only]]
#
# --seed N is kiln's noise seed (default 1: kiln speak's); Piper on
# onnxruntime draws its own noise, unseeded, on every run.
#
# --keep DIR keeps the audio and transcripts in DIR; --score-only then scores
# what an earlier run left there again (no synthesis, no transcription).
#
# Needs: the voice (make voices), tiny.en (make models), piper-tts, jiwer and
# openai-whisper (--no-deps) in var/venv (make test-ref), and a kiln built
# with speak and transcribe (KILN, default build/kiln).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
KILN=$(realpath "${KILN:-$root/build/kiln}")
voice=$root/var/models/voices/en_US-joe-medium
model=$root/var/models/whisper-tiny.en
text=$root/tests/golden/voice_corpus.txt
json=0; keep=; score_only=0; seed=1
while [ $# -gt 0 ]; do
  case $1 in
    --json) json=1;; --text) text=$2; shift;; --voice) voice=$2; shift;;
    --model) model=$2; shift;; --keep) keep=$2; shift;; --score-only) score_only=1;;
    --seed) seed=$2; shift;;
    *) echo "usage: bench/tts_wer.sh [--json] [--text FILE] [--voice DIR] [--model DIR] [--seed N] [--keep DIR [--score-only]]" >&2; exit 2;;
  esac; shift
done
model=$(realpath "$model"); voice=$(realpath "$voice"); text=$(realpath "$text")
py=$root/var/venv/bin/python
"$py" -c 'import piper, jiwer' 2>/dev/null || { echo "bench/tts_wer.sh: piper-tts or jiwer missing in var/venv (make test-ref)" >&2; exit 1; }
if [ -n "$keep" ]; then tmp=$keep; mkdir -p "$tmp"; else tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT; fi
if [ "$score_only" = 0 ]; then
mkdir -p "$tmp/kiln" "$tmp/piper"
: > "$tmp/kiln/transcripts.tsv"
i=0
while IFS= read -r line || [ -n "$line" ]; do
  [ -n "$line" ] || continue
  i=$((i + 1)); f=$(printf 's%02d.wav' "$i")
  printf '%s\t%s\n' "$f" "$line" >> "$tmp/kiln/transcripts.tsv"
  printf '%s' "$line" > "$tmp/line.txt"
  "$KILN" speak --voice "$voice" --seed "$seed" --text-file "$tmp/line.txt" -o "$tmp/kiln/$f" \
    < /dev/null 2>/dev/null
done < "$text"
cp "$tmp/kiln/transcripts.tsv" "$tmp/piper/transcripts.tsv"
"$py" "$root/bench/tts_ort.py" --write "$tmp/piper" "$voice"/*.onnx "$tmp/piper/transcripts.tsv"
for side in kiln piper; do
  (cd "$tmp/$side" && "$KILN" transcribe --model "$model" --format json s*.wav > ../$side.json 2>/dev/null)
done
fi
"$py" - "$root/bench/asr_wer.py" "$tmp" "$json" "$(basename "$model")" "$seed" <<'PY'
import json, os, sys
import importlib.util
spec = importlib.util.spec_from_file_location("asr_wer", sys.argv[1])
aw = importlib.util.module_from_spec(spec); spec.loader.exec_module(aw)
import jiwer
tmp, want_json = sys.argv[2], sys.argv[3] == "1"
norm = aw.load_normalizer()
refs = {}
for l in open(os.path.join(tmp, "kiln", "transcripts.tsv"), encoding="utf-8"):
    f, t = l.rstrip("\n").split("\t", 1)
    refs[f] = t
res = {"bench": "tts_wer", "sentences": len(refs), "asr": "kiln %s (beam 5)" % sys.argv[4],
       "kiln_seed": int(sys.argv[5])}
for side in ("kiln", "piper"):
    hyp = {}
    for l in open(os.path.join(tmp, side + ".json"), encoding="utf-8"):
        o = json.loads(l)
        hyp[os.path.basename(o["file"])] = o["text"]
    R = [norm(refs[f]) for f in sorted(refs)]
    H = [norm(hyp.get(f, "")) for f in sorted(refs)]
    keep = [k for k, r in enumerate(R) if r.strip()]
    wer = jiwer.wer([R[k] for k in keep], [H[k] for k in keep])
    errs = []
    for k in keep:
        w = jiwer.wer(R[k], H[k])
        if w > 0:
            errs.append({"file": sorted(refs)[k], "ref": R[k], "hyp": H[k], "wer": round(w, 3)})
    res["wer_" + side] = round(100 * wer, 2)
    res["errors_" + side] = errs
    if not want_json:
        print("%-6s WER %.2f%% over %d sentences (%d with errors)" % (side, 100 * wer, len(keep), len(errs)))
        for e in errs:
            print("   %s  ref: %s\n        %s: %s" % (e["file"], e["ref"], side, e["hyp"]))
if want_json:
    print(json.dumps(res))
PY
