#!/usr/bin/env bash
# bench/make-samples.sh - render the demo's sample speech with espeak-ng.
#
# Usage: bench/make-samples.sh [-f] OUTDIR
#
# Writes five short English sentences into OUTDIR as a mix of formats, so a
# fresh clone without ../shared/data still has audio for `make demo` and the
# pipeline tests:
#   kiln-sample-01.wav .. kiln-sample-03.wav  22050 Hz mono 16-bit (as espeak-ng writes)
#   kiln-sample-04.flac                       the same, FLAC 16-bit
#   kiln-sample-05.ogg                        the same, Ogg Vorbis
# and OUTDIR/transcripts.tsv, one "file<TAB>text" line per file and no
# header, the format of shared/data/speech/dev/transcripts.tsv.
#
# FLAC and Ogg come from sox when it is installed (`make deps` installs it);
# without sox a 40-line libsndfile converter is compiled on the fly with
# ${CC:-cc} (libsndfile1-dev is a build dependency of kiln anyway).
#
# Idempotent: when OUTDIR/.make-samples.stamp matches this script's inputs
# and every file is present, nothing is rendered again (-f forces it). Files
# are rendered in a temporary folder and moved into OUTDIR at the end, so an
# interrupted run never leaves half-written audio behind.
#
# Environment: KILN_SAMPLES_VOICE (espeak-ng voice, default en-us),
# KILN_SAMPLES_SPEED (words per minute, default 150).
# Exit status: 0 on success, 1 on failure, 2 on a usage error.
set -euo pipefail

usage() { sed -n '4p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

force=0
while getopts fh opt; do
  case $opt in
    f) force=1 ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
if [ $# -ne 1 ] || [ -z "$1" ]; then usage; fi
out=$1

voice=${KILN_SAMPLES_VOICE:-en-us}
speed=${KILN_SAMPLES_SPEED:-150}

# file<TAB>text; the extension picks the format.
samples=$(cat <<'EOF'
kiln-sample-01.wav	The quick brown fox jumps over the lazy dog.
kiln-sample-02.wav	Please call Stella and ask her to bring these things with her from the store.
kiln-sample-03.wav	The weather today is cold and windy with a chance of rain in the evening.
kiln-sample-04.flac	Batch inference sends many small requests through the model at the same time.
kiln-sample-05.ogg	Thank you for listening to this short test recording.
EOF
)

die() { echo "make-samples: $*" >&2; exit 1; }

command -v espeak-ng >/dev/null 2>&1 || die "espeak-ng not found (run: make deps)"
if command -v sox >/dev/null 2>&1; then converter=sox; else converter=libsndfile; fi

# Everything that changes the output goes into the stamp.
stamp="voice=$voice speed=$speed espeak=$(espeak-ng --version 2>/dev/null | head -n1)
$samples"
stamp_file=$out/.make-samples.stamp

up_to_date() {
  [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ] || return 1
  [ -f "$out/transcripts.tsv" ] || return 1
  local f
  while IFS=$'\t' read -r f _; do [ -s "$out/$f" ] || return 1; done <<<"$samples"
}

if [ $force -eq 0 ] && up_to_date; then
  echo "make-samples: $out is up to date"
  exit 0
fi

mkdir -p "$out" || die "could not create \"$out\""
tmp=$(mktemp -d "$out/.make-samples.XXXXXX") || die "could not create a temporary folder in \"$out\""
trap 'rm -rf "$tmp"' EXIT

# The fallback converter: wav -> flac (PCM_16) or ogg (Vorbis) by extension.
if [ $converter = libsndfile ]; then
  cat >"$tmp/convert.c" <<'EOF'
#include <sndfile.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    SF_INFO in_info = {0}, out_info;
    SNDFILE *in, *out;
    float buf[4096];
    sf_count_t n;
    const char *ext = argc == 3 ? strrchr(argv[2], '.') : NULL;

    if (!ext) {
        fprintf(stderr, "usage: convert IN OUT.flac|OUT.ogg\n");
        return 2;
    }
    if (!(in = sf_open(argv[1], SFM_READ, &in_info))) {
        fprintf(stderr, "could not open \"%s\": %s\n", argv[1], sf_strerror(NULL));
        return 1;
    }
    out_info = in_info;
    out_info.format = strcmp(ext, ".flac") == 0 ? SF_FORMAT_FLAC | SF_FORMAT_PCM_16
                                                : SF_FORMAT_OGG | SF_FORMAT_VORBIS;
    if (!(out = sf_open(argv[2], SFM_WRITE, &out_info))) {
        fprintf(stderr, "could not create \"%s\": %s\n", argv[2], sf_strerror(NULL));
        return 1;
    }
    while ((n = sf_readf_float(in, buf, 4096 / in_info.channels)) > 0)
        if (sf_writef_float(out, buf, n) != n) {
            fprintf(stderr, "could not write \"%s\": %s\n", argv[2], sf_strerror(out));
            return 1;
        }
    sf_close(in);
    return sf_close(out) == 0 ? 0 : 1;
}
EOF
  ${CC:-cc} -O1 -o "$tmp/convert" "$tmp/convert.c" -lsndfile 2>"$tmp/cc.log" ||
    die "no sox, and could not build the libsndfile converter: $(cat "$tmp/cc.log")"
fi

convert() { # IN.wav OUT.(flac|ogg)
  if [ $converter = sox ]; then sox -q "$1" "$2"; else "$tmp/convert" "$1" "$2"; fi
}

while IFS=$'\t' read -r f text; do
  case $f in
    *.wav) espeak-ng -v "$voice" -s "$speed" -w "$tmp/$f" "$text" ;;
    *.flac | *.ogg)
      espeak-ng -v "$voice" -s "$speed" -w "$tmp/src.wav" "$text"
      convert "$tmp/src.wav" "$tmp/$f"
      rm -f "$tmp/src.wav" ;;
    *) die "unknown sample format: $f" ;;
  esac
  [ -s "$tmp/$f" ] || die "could not render \"$f\""
done <<<"$samples"
printf '%s\n' "$samples" >"$tmp/transcripts.tsv"

# Publish: audio first, the transcripts next, the stamp last.
while IFS=$'\t' read -r f _; do mv -f "$tmp/$f" "$out/$f"; done <<<"$samples"
mv -f "$tmp/transcripts.tsv" "$out/transcripts.tsv"
printf '%s\n' "$stamp" >"$stamp_file"
echo "make-samples: wrote $(wc -l <"$out/transcripts.tsv") files to $out (flac/ogg via $converter)"
