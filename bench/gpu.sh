#!/usr/bin/env bash
# bench/gpu.sh - the one prepared script for a GPU machine: builds the
# Whisper model code (models/whisper) with the CUDA kernels, runs the CUDA
# parity tests (tests/0110-kernels_cuda.c: every op; tests/0160-whisper_cuda.c:
# the model, CUDA vs CPU), then measures end-to-end throughput of the real
# model code (kiln_whisper_transcribe on the CUDA backend, bench/asr_gpu_model.c)
# on a large-v3-shaped random-weight model, 100 decoder tokens per 30 s window,
# batch 1, 16 and 64; tiny.en on the dev set with WER when the model and the
# data are there; and HF transformers on the same GPU (bench/asr_gpu_hf.py)
# when the machine has PyTorch and transformers.
#
#   bash bench/gpu.sh                 # on the GPU machine, from the repo root
#   bash bench/gpu.sh --pack DIR      # here: copy OpenBLAS/FFTW/jansson (libs,
#                                     # headers) into DIR for a machine that
#                                     # lacks them
#
# It builds only what the model needs (kernels/, models/whisper/, lib/log.c,
# lib/err.c; not the daemons, which need Kafka/Postgres client libraries), so
# the GPU machine needs nvcc, cuBLAS, cuFFT, and OpenBLAS + FFTW + jansson:
# found on the system, or in var/gpu-deps (made with --pack here and carried:
# device run with carry ["var/gpu-deps"]).
#
# tiny.en on the dev set needs a full CUDA build of kiln (make CUDA=1: Kafka,
# Postgres, audio codecs) plus var/models/whisper-tiny.en (75 MB) and the dev
# data (KILN_SPEECH_DEV or ../shared/data/speech/dev): on a machine that has
# them (make test-gpu's machine) the step runs; on the lent device machine the
# model does not fit in what travels (64 MiB), and the step says so and skips.
#
# Output: everything goes to $OUT (or bench/results/gpu-run when OUT is not
# set): gpu.log (this script's log), nvidia-smi.txt, test-0110.log,
# test-0160.log, asr-gpu-model-<date>-<host>.json (kiln), asr-gpu-hf-<date>-
# <host>.json (transformers) and, when it ran, asr-gpu-tiny-<date>-<host>.jsonl
# (tiny.en transcripts); the JSONs belong in bench/results/.
#
# GPU_SH_BUILD_ONLY=1 stops after the build (a compile check without a GPU).
# Budget (each step has a timeout; the whole script stays under 8 minutes):
# build ~1 min (parallel), parity 0110 <= 2 min, 0160 <= 2 min, kiln bench
# <= 3 min (random large-v3 model ~20 s, upload, warm-up, 3 batch sizes x
# GPU_REPS), transformers <= 3 min; steps run only while time is left
# (GPU_SH_BUDGET seconds, default 450).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

if [ "${1:-}" = "--pack" ]; then
  dst=${2:?usage: bench/gpu.sh --pack DIR}
  mkdir -p "$dst/lib" "$dst/include"
  for l in libopenblas.so.0 libfftw3f.so.3 libgfortran.so.5 libquadmath.so.0 libjansson.so.4; do
    src=$(ldconfig -p | awk -v l="$l" '$1 == l {print $NF; exit}')
    [ -n "$src" ] && cp -L "$src" "$dst/lib/$l"
  done
  ln -sf libopenblas.so.0 "$dst/lib/libopenblas.so"
  ln -sf libfftw3f.so.3 "$dst/lib/libfftw3f.so"
  ln -sf libjansson.so.4 "$dst/lib/libjansson.so"
  cp -L /usr/include/x86_64-linux-gnu/cblas.h /usr/include/fftw3.h /usr/include/jansson.h \
    /usr/include/jansson_config.h "$dst/include/" 2>/dev/null
  for h in openblas_config.h f77blas.h; do
    f=$(ls /usr/include/x86_64-linux-gnu/openblas*/$h 2>/dev/null | head -1)
    [ -n "$f" ] && cp -L "$f" "$dst/include/"
  done
  du -sh "$dst"
  exit 0
fi

START=$(date +%s)
BUDGET=${GPU_SH_BUDGET:-450}
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
# step_timeout WANT: the step's timeout, capped by what is left of the budget
step_timeout() { local l; l=$(left); [ "$l" -lt 1 ] && l=1; [ "$l" -lt "$1" ] && echo "$l" || echo "$1"; }

OUT=${OUT:-$ROOT/bench/results/gpu-run}
mkdir -p "$OUT"
LOG=$OUT/gpu.log
exec > >(tee -a "$LOG") 2>&1
B=$ROOT/build-gpu
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
INC="-Iinclude -I."
LIBDIR=""
if [ -d var/gpu-deps ]; then
  INC="$INC -Ivar/gpu-deps/include"
  LIBDIR="-Lvar/gpu-deps/lib -Wl,-rpath,$ROOT/var/gpu-deps/lib"
  echo "# using carried OpenBLAS/FFTW/jansson from var/gpu-deps"
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
echo "# built in $(( $(date +%s) - t0 )) s (arch $ARCH)"
[ -n "${GPU_SH_BUILD_ONLY:-}" ] && { echo "# GPU_SH_BUILD_ONLY: stopping after the build"; exit 0; }

# ---- parity: every CUDA op against the CPU reference, then the model CUDA vs CPU
for t in 0110-kernels_cuda:120 0160-whisper_cuda:150; do
  name=${t%%:*}
  t0=$(date +%s)
  KILN_CUDA_TIMING=1 timeout "$(step_timeout "${t##*:}")" "$B/$name" > "$OUT/test-${name%%-*}.log" 2>&1
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
KILN_WHISPER_PROFILE=1 timeout "$(step_timeout 200)" "$B/asr_gpu_model" --shape large-v3 \
  --backend cuda --precision "${GPU_PRECISION:-fp16,fp32}" --batch "${GPU_BATCHES:-1,16,64}" \
  --tokens 100 --reps "${GPU_REPS:-2}" --json "$J"
echo "# kiln benchmark: exit $? in $(( $(date +%s) - t0 )) s"

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
  timeout "$(step_timeout 180)" $PY bench/asr_gpu_hf.py --batch "${GPU_BATCHES:-1,16,64}" \
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
