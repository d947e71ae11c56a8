#!/usr/bin/env bash
# bench/gpu.sh - the one prepared script for a GPU machine: builds the
# Whisper model code (models/whisper) and the voice model code (models/voice:
# loader, VITS CPU engine, device path) with the CUDA kernels, then, in order:
#   1. parity tests: tests/0110-kernels_cuda.c (every op) and
#      tests/0160-whisper_cuda.c (the Whisper model, CUDA vs CPU);
#   2. ASR: end-to-end throughput of the real model code
#      (kiln_whisper_transcribe on CUDA, bench/asr_gpu_model.c) on a
#      large-v3-shaped random-weight model, 100 decoder tokens per 30 s
#      window, batch 1, 16 and 64;
#   3. TTS: the joe-medium voice (kiln_voice_synth_ids, flow + HiFi-GAN on
#      CUDA, bench/tts_gpu_model.c) on the phoneme ids of bench/tts_ids.txt
#      (the 52 sentences of `kiln bench tts`; no espeak-ng needed): parity
#      with the CPU engine in fp32 (identical durations, SNR >= 40 dB), >= 60 s
#      of audio in one call (goal <= 100 ms), batch 1, 16 and 64 in fp32 and
#      fp16 (goal >= 3000x real time), and the CPU engine at batch 1 and 16;
#   4. tiny.en on the dev set with WER when the model and the data are there;
#   5. HF transformers on the same GPU (bench/asr_gpu_hf.py) when the machine
#      has PyTorch and transformers.
#
#   bash bench/gpu.sh --pack var/gpu-deps   # here, before a device run
#   bash bench/gpu.sh                       # on the GPU machine, from the repo root
#   GPU_SH_BUILD_ONLY=1 bash bench/gpu.sh   # here: the build alone (no GPU)
#
# It builds only what the models need (kernels/, models/whisper/, the voice
# files above, lib/log.c, lib/err.c; not the daemons, which need Kafka/
# Postgres client libraries, nor the voice front end, which needs espeak-ng),
# so the GPU machine needs nvcc, cuBLAS, cuFFT, and OpenBLAS + FFTW + jansson:
# found on the system, or carried. --pack DIR writes what travels with a
# device command (64 MiB at most; --pack checks < 60 MB; measured 36 MB):
#   DIR/deps.tar.xz  OpenBLAS/FFTW/jansson libraries and headers (~6 MB),
#                    unpacked here into $B/deps (DIR/lib, an older
#                    uncompressed pack, is used as it is);
#   DIR/voice/       config.json + model.safetensors of joe-medium with F16
#                    weights (bench/voice_f16.py, ~31 MB; widened to fp32
#                    on load), the voice of step 3 (KILN_VOICE overrides).
# Device run: command "bash bench/gpu.sh", carry ["var/gpu-deps"].
#
# tiny.en on the dev set needs a full CUDA build of kiln (make CUDA=1: Kafka,
# Postgres, audio codecs) plus var/models/whisper-tiny.en (75 MB) and the dev
# data (KILN_SPEECH_DEV or ../shared/data/speech/dev): on a machine that has
# them (make test-gpu's machine) the step runs; on the lent device machine the
# model does not fit in what travels (64 MiB), and the step says so and skips.
#
# Output: everything goes to $OUT (or bench/results/gpu-run when OUT is not
# set): gpu.log (this script's log), nvidia-smi.txt, test-0110.log,
# test-0160.log, asr-gpu-model-<date>-<host>.json (kiln ASR),
# tts-gpu-model-<date>-<host>.json (kiln TTS), asr-gpu-hf-<date>-<host>.json
# (transformers) and, when it ran, asr-gpu-tiny-<date>-<host>.jsonl (tiny.en
# transcripts); the JSONs belong in bench/results/.
#
# Budget: one device command (600 s at most); everything ends by
# GPU_SH_BUDGET seconds (default 540). Each step has a timeout, capped by
# what is left, and the earlier steps leave time for the TTS step: build
# ~1 min (parallel), parity 0110 <= 2 min, 0160 <= 2.5 min, ASR bench <= 200 s
# (random large-v3 model ~20 s, upload, warm-up, 3 batch sizes x GPU_REPS),
# TTS <= 100 s, transformers <= 150 s (only with > 30 s left). Knobs:
# GPU_PRECISION, GPU_BATCHES, GPU_REPS (ASR); GPU_TTS_PRECISION (fp32,fp16),
# GPU_TTS_REPS (3), GPU_TTS_DEVICE_SAMPLES (16777216: the device sub-batch,
# ~200 bytes per sample); GPU_SH_BUILD (build folder, default build-gpu).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

if [ "${1:-}" = "--pack" ]; then
  # what travels (64 MiB in all): deps.tar.xz (libs + headers, ~6 MB) and
  # voice/ (joe-medium with F16 weights, ~31 MB); nothing else is left in DIR
  dst=${2:?usage: bench/gpu.sh --pack DIR}
  VOICE=${KILN_VOICE:-var/models/voices/en_US-joe-medium}
  PYV=${PYTHON_VOICE:-var/venv/bin/python}
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$dst" "$tmp/lib" "$tmp/include"
  for l in libopenblas.so.0 libfftw3f.so.3 libgfortran.so.5 libquadmath.so.0 libjansson.so.4; do
    src=$(ldconfig -p | awk -v l="$l" '$1 == l {print $NF; exit}')
    [ -n "$src" ] && cp -L "$src" "$tmp/lib/$l"
  done
  ln -sf libopenblas.so.0 "$tmp/lib/libopenblas.so"
  ln -sf libfftw3f.so.3 "$tmp/lib/libfftw3f.so"
  ln -sf libjansson.so.4 "$tmp/lib/libjansson.so"
  cp -L /usr/include/x86_64-linux-gnu/cblas.h /usr/include/fftw3.h /usr/include/jansson.h \
    /usr/include/jansson_config.h "$tmp/include/" 2>/dev/null
  for h in openblas_config.h f77blas.h; do
    f=$(ls /usr/include/x86_64-linux-gnu/openblas*/$h 2>/dev/null | head -1)
    [ -n "$f" ] && cp -L "$f" "$tmp/include/"
  done
  tar -C "$tmp" -cJf "$dst/deps.tar.xz" lib include || { echo "✗ could not write $dst/deps.tar.xz"; exit 1; }
  rm -rf "$dst/lib" "$dst/include" # an older, uncompressed pack
  if [ -f "$VOICE/model.safetensors" ] && [ -x "$PYV" ]; then
    "$PYV" bench/voice_f16.py "$VOICE" "$dst/voice" || exit 1
  else
    echo "# no voice packed: needs $VOICE (make voices) and $PYV (numpy)"
  fi
  du -sh "$dst"/*
  total=$(du -sm "$dst" | cut -f1)
  echo "# $dst: $total MB (carry [\"$dst\"]; the limit is 64 MiB)"
  [ "$total" -lt 60 ] || { echo "✗ $dst is over 60 MB"; exit 1; }
  exit 0
fi

START=$(date +%s)
BUDGET=${GPU_SH_BUDGET:-540}
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
# step_timeout WANT [KEEP]: the step's timeout, capped by what is left of the
# budget less KEEP seconds (kept for the steps after it)
step_timeout() {
  local l; l=$(( $(left) - ${2:-0} )); [ "$l" -lt 1 ] && l=1; [ "$l" -lt "$1" ] && echo "$l" || echo "$1"
}

OUT=${OUT:-$ROOT/bench/results/gpu-run}
mkdir -p "$OUT"
LOG=$OUT/gpu.log
exec > >(tee -a "$LOG") 2>&1
B=${GPU_SH_BUILD:-$ROOT/build-gpu}
mkdir -p "$B/obj" "$B/cuda"
date_s=$(date -u +%Y-%m-%d)
host=$(hostname)
echo "# bench/gpu.sh on $host, $(date -u)"

if [ -z "${GPU_SH_BUILD_ONLY:-}" ]; then
  nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || { echo "✗ no nvidia-smi / GPU"; exit 1; }
  head -15 "$OUT/nvidia-smi.txt"
fi
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$NVCC")")}
"$NVCC" --version | tail -2

# ---- dependencies: the system's, or var/gpu-deps carried from the dev machine
# (--pack leaves them as var/gpu-deps/deps.tar.xz: unpacked into $B/deps, so
# that var/gpu-deps stays small enough to carry again)
INC="-Iinclude -I."
LIBDIR=""
DEPS=""
if [ -d var/gpu-deps/lib ]; then
  DEPS=var/gpu-deps
elif [ -f var/gpu-deps/deps.tar.xz ]; then
  DEPS=$B/deps
  if [ ! -f "$DEPS/.unpacked" ] || [ var/gpu-deps/deps.tar.xz -nt "$DEPS/.unpacked" ]; then
    rm -rf "$DEPS" && mkdir -p "$DEPS"
    { tar -C "$DEPS" -xJf var/gpu-deps/deps.tar.xz 2>/dev/null ||
      python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
        var/gpu-deps/deps.tar.xz "$DEPS"; } && touch "$DEPS/.unpacked" ||
      echo "✗ could not unpack var/gpu-deps/deps.tar.xz"
  fi
fi
if [ -n "$DEPS" ]; then
  INC="$INC -I$DEPS/include"
  LIBDIR="-L$DEPS/lib -Wl,-rpath,$(cd "$DEPS" && pwd)/lib"
  echo "# using carried OpenBLAS/FFTW/jansson from $DEPS"
fi
if ! echo '#include <cblas.h>
#include <fftw3.h>
#include <jansson.h>
int main(void){return 0;}' | cc $INC -x c - -o /dev/null $LIBDIR -lopenblas -lfftw3f -ljansson 2>/dev/null; then
  echo "✗ OpenBLAS/FFTW/jansson headers or libraries missing: run"
  echo "  'bash bench/gpu.sh --pack var/gpu-deps' on the dev machine and carry var/gpu-deps"
  exit 1
fi

# ---- build: the model's C sources + CUDA objects (in parallel), tests, bench
t0=$(date +%s)
CFLAGS="-std=gnu11 -O2 -g -Wall -Wextra -Werror -Wno-format-truncation -fPIC -D_GNU_SOURCE -pthread $INC"
SRCS=(kernels/dispatch.c kernels/cpu/*.c models/whisper/whisper.c models/whisper/loader.c
      models/whisper/mel.c models/whisper/ct2.c models/whisper/ggml.c models/whisper/hf.c
      models/voice/loader.c models/voice/vits.c models/voice/vits_dev.c models/voice/ops.c
      models/voice/winograd.c
      lib/log.c lib/err.c)
ARCH=${CUDA_ARCH:-sm_90}
objs=()
cuobjs=()
pids=()
for f in "${SRCS[@]}"; do
  o=$B/obj/$(echo "$f" | tr / _).o
  objs+=("$o")
  cc $CFLAGS -c "$f" -o "$o" & pids+=($!)
done
for f in kernels/cuda/*.cu; do
  o=$B/cuda/$(basename "$f" .cu).o
  cuobjs+=("$o")
  "$NVCC" -O3 -std=c++17 $INC -arch=$ARCH -Xcompiler -Wall,-Wextra,-Werror,-fPIC -c "$f" -o "$o" &
  pids+=($!)
done
fail=0
for p in "${pids[@]}"; do wait "$p" || fail=1; done
[ $fail -eq 0 ] || { echo "✗ compile failed (see above)"; exit 1; }
# the CUDA objects go in as objects, before the C objects (register.cu's constructor)
# cudart/cuBLAS/cuFFT: the toolkit's lib64, else wherever the image has them (pip wheels)
culib() {
  local d f
  for d in "$CUDA_HOME/lib64" "$CUDA_HOME/targets/x86_64-linux/lib" /usr/lib/x86_64-linux-gnu \
           $(find /usr/local /opt -path "*nvidia*/lib" -type d 2>/dev/null | head -20); do
    f=$(ls "$d/lib$1.so" "$d"/lib"$1".so.[0-9]* 2>/dev/null | head -1)
    [ -n "$f" ] && { echo "$f -Wl,-rpath,$d"; return; }
  done
  echo "-l$1"
}
CULIBS="$(culib cudart) $(culib cublas) $(culib cufft)"
echo "# CUDA libraries: $CULIBS"
LIBS="$LIBDIR -ljansson -lopenblas -lfftw3f -lm -ldl -pthread -lstdc++"
link() { # link OUT SRC [CFLAGS...]
  local out=$1 src=$2; shift 2
  cc $CFLAGS "$@" -o "$out" "$src" "${cuobjs[@]}" "${objs[@]}" $CULIBS $LIBS \
    || { echo "✗ link $src"; exit 1; }
}
link "$B/0110-kernels_cuda" tests/0110-kernels_cuda.c
link "$B/0160-whisper_cuda" tests/0160-whisper_cuda.c -DKILN_TEST_NO_AUDIO
link "$B/asr_gpu_model" bench/asr_gpu_model.c
link "$B/tts_gpu_model" bench/tts_gpu_model.c
echo "# built in $(( $(date +%s) - t0 )) s (arch $ARCH)"
[ -n "${GPU_SH_BUILD_ONLY:-}" ] && { echo "# GPU_SH_BUILD_ONLY: stopping after the build"; exit 0; }

# ---- parity: every CUDA op against the CPU reference, then the model CUDA vs CPU
for t in 0110-kernels_cuda:120 0160-whisper_cuda:150; do
  name=${t%%:*}
  t0=$(date +%s)
  KILN_CUDA_TIMING=1 timeout "$(step_timeout "${t##*:}" 150)" "$B/$name" > "$OUT/test-${name%%-*}.log" 2>&1
  rc=$?
  grep -E '^(ok|not ok|skip)|nmse .*vs cpu|tokens .*vs cpu' "$OUT/test-${name%%-*}.log"
  grep -E '^# time' "$OUT/test-${name%%-*}.log" | head -30
  echo "# test $name: exit $rc in $(( $(date +%s) - t0 )) s"
  [ $rc -eq 0 ] || echo "✗ $name failed (rc $rc): see test-${name%%-*}.log"
done

# ---- kiln: the real model code on CUDA, large-v3 shape, batch 1 / 16 / 64
t0=$(date +%s)
J=$OUT/asr-gpu-model-$date_s-$host.json
# fp16 first (the number to compare with transformers' float16), then fp32 while time is left
KILN_WHISPER_PROFILE=1 timeout "$(step_timeout 200 100)" "$B/asr_gpu_model" --shape large-v3 \
  --backend cuda --precision "${GPU_PRECISION:-fp16,fp32}" --batch "${GPU_BATCHES:-1,16,64}" \
  --tokens 100 --reps "${GPU_REPS:-2}" --json "$J"
echo "# kiln benchmark: exit $? in $(( $(date +%s) - t0 )) s"

# ---- kiln TTS: the voice's flow + decoder on CUDA (bench/tts_gpu_model.c) on the
# phoneme ids of bench/tts_ids.txt (no espeak-ng needed): parity with the CPU
# engine, >= 60 s of audio in one call, batch 1 / 16 / 64, the CPU side by side
VOICE=${KILN_VOICE:-var/gpu-deps/voice}
[ -f "$VOICE/model.safetensors" ] || VOICE=var/models/voices/en_US-joe-medium
TJ=$OUT/tts-gpu-model-$date_s-$host.json
if [ -f "$VOICE/model.safetensors" ]; then
  t0=$(date +%s)
  KILN_GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1) \
  timeout "$(step_timeout 100)" "$B/tts_gpu_model" --voice "$VOICE" --ids bench/tts_ids.txt \
    --backend cuda --precision "${GPU_TTS_PRECISION:-fp32,fp16}" --batches "${GPU_BATCHES:-1,16,64}" \
    --min-seconds 60 --reps "${GPU_TTS_REPS:-3}" --device-samples "${GPU_TTS_DEVICE_SAMPLES:-16777216}" \
    --cpu-compare --json "$TJ"
  echo "# kiln TTS benchmark: exit $? in $(( $(date +%s) - t0 )) s"
else
  echo "# kiln TTS benchmark skipped: no voice (bash bench/gpu.sh --pack var/gpu-deps, carried)"
fi

# ---- tiny.en on the dev set (needs a full `make CUDA=1` kiln, the model and the data)
DEV=${KILN_SPEECH_DEV:-$ROOT/../shared/data/speech/dev}
KILN=${KILN:-$ROOT/build-cuda/kiln}
if [ -x "$KILN" ] && [ -f var/models/whisper-tiny.en/model.bin ] && [ -f "$DEV/transcripts.tsv" ]; then
  t0=$(date +%s)
  T=$OUT/asr-gpu-tiny-$date_s-$host.jsonl
  files=$(cut -f1 "$DEV/transcripts.tsv" | sed "s|^|$DEV/|")
  timeout "$(step_timeout 90)" "$KILN" transcribe --backend cuda --precision fp16 \
    --format json --batch 16 $files > "$T"
  echo "# tiny.en dev set on cuda: exit $? in $(( $(date +%s) - t0 )) s"
  PYW=${PYTHON_WER:-$ROOT/var/venv/bin/python}
  [ -x "$PYW" ] && "$PYW" bench/asr_wer.py "$DEV" "$T" tests/golden/whisper-tiny.en-dev.tsv \
    || echo "# no WER: bench/asr_wer.py needs var/venv (jiwer)"
else
  echo "# tiny.en dev set skipped: needs $KILN (make CUDA=1), var/models/whisper-tiny.en"
  echo "#   (make models; 75 MB, more than travels to a lent device machine) and $DEV"
fi

# ---- HF transformers on the same GPU, when installed
t0=$(date +%s)
PY=${PYTHON:-python3}
H=$OUT/asr-gpu-hf-$date_s-$host.json
if [ "$(left)" -gt 30 ] && $PY -c 'import torch, transformers' 2>/dev/null; then
  timeout "$(step_timeout 150)" $PY bench/asr_gpu_hf.py --batch "${GPU_BATCHES:-1,16,64}" \
    --tokens 100 --dtype float16 --reps "${GPU_REPS:-2}" --json "$H"
  echo "# transformers benchmark: exit $? in $(( $(date +%s) - t0 )) s"
else
  echo "# transformers/torch not installed (or no time left): no side-by-side ratio"
fi

# ---- ratio at each batch size
if [ -f "$J" ] && [ -f "$H" ]; then
  $PY - "$J" "$H" <<'EOF'
import json, sys
k = {r["batch"]: r for r in json.load(open(sys.argv[1]))["results"] if r["precision"] == "fp16"}
h = {r["batch"]: r for r in json.load(open(sys.argv[2]))["results"]}
for b in sorted(k):
    if b in h:
        print("# batch %3d: kiln fp16 %.1f x RT, transformers float16 %.1f x RT, ratio %.2f"
              % (b, k[b]["x_realtime"], h[b]["x_realtime"], k[b]["x_realtime"] / h[b]["x_realtime"]))
EOF
fi
echo "# done in $(( $(date +%s) - START )) s: files in $OUT"
