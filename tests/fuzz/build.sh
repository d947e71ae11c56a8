#!/usr/bin/env bash
# tests/fuzz/build.sh [NAME...] - builds the libFuzzer targets.
#
# Each tests/fuzz/fuzz_<name>.c becomes ${FUZZ_BUILD:-build-fuzz}/fuzz_<name>,
# linked by clang with -fsanitize=fuzzer,address,undefined. kiln's own sources
# (lib/*.c and the Whisper loaders) are compiled by clang as well, with
# coverage instrumentation and the same sanitizers, into libkiln-fuzz.a, so
# that the fuzzer sees (and ASan checks) kiln's code and not only the harness.
# Needs clang and its runtimes: Debian bookworm `clang` (clang-14) and
# `libclang-rt-14-dev`.
set -euo pipefail
cd "$(dirname "$0")/../.."
CLANG=${CLANG:-clang}
OUT=${FUZZ_BUILD:-build-fuzz}
if ! command -v "$CLANG" > /dev/null 2>&1; then
  echo "✗ $CLANG not found: apt-get install clang libclang-rt-14-dev" >&2
  exit 1
fi
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
CFLAGS="-std=gnu11 -O1 -g -Iinclude -I. -I/usr/include/postgresql -D_GNU_SOURCE -pthread $SAN"
LIBS="-lrdkafka -lpq -lsndfile -ljansson -lsoxr -lcurl -lcrypto -lm"
mkdir -p "$OUT/obj"

# kiln's sources: rebuilt when the source or any kiln header is newer
srcs=(lib/*.c models/whisper/loader.c models/whisper/ct2.c models/whisper/ggml.c models/whisper/hf.c)
newest_hdr=$(ls -t include/kiln/*.h lib/*.h models/whisper/*.h | head -1)
todo=()
for s in "${srcs[@]}"; do
  o=$OUT/obj/$(echo "${s%.c}" | tr / _).o
  if [ ! -f "$o" ] || [ "$s" -nt "$o" ] || [ "$newest_hdr" -nt "$o" ]; then todo+=("$s"); fi
done
# A source that does not compile is left out (with a warning): the link
# fails only when a target needs it.
if [ ${#todo[@]} -gt 0 ]; then
  echo "compiling ${#todo[@]} kiln source(s) with $CLANG"
  printf '%s\n' "${todo[@]}" | xargs -P "$(nproc)" -I{} sh -c \
    "o=$OUT/obj/\$(echo {} | sed 's/\.c\$//; s|/|_|g').o; $CLANG $CFLAGS -fsanitize=fuzzer-no-link \
       -Wall -Wno-unused-command-line-argument -c {} -o \$o 2> \$o.err \
     || { rm -f \$o; echo \"warning: {} does not compile, left out (\$o.err)\"; }"
  rm -f "$OUT/libkiln-fuzz.a"
fi
[ -f "$OUT/libkiln-fuzz.a" ] || ar rcs "$OUT/libkiln-fuzz.a" "$OUT"/obj/*.o

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for f in tests/fuzz/fuzz_*.c; do n=${f##*/fuzz_}; names+=("${n%.c}"); done
fi
for n in "${names[@]}"; do
  echo "linking $OUT/fuzz_$n"
  # shellcheck disable=SC2086
  "$CLANG" $CFLAGS -fsanitize=fuzzer -Wall -Wextra -Werror -o "$OUT/fuzz_$n" \
    "tests/fuzz/fuzz_$n.c" "$OUT/libkiln-fuzz.a" $LIBS
done
