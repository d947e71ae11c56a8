#!/usr/bin/env bash
# bench/gpu.sh - the one prepared script for a GPU machine: builds kiln's
# kernels with CUDA, runs the CUDA parity test (tests/0110-kernels_cuda.c),
# then measures large-v3-shaped Whisper throughput (random weights of the
# real shape, 100 decoder tokens per 30 s window) at batch 1, 16 and 64 with
# kiln (bench/asr_gpu_bench.cu) and, when the machine has PyTorch and
# transformers, with HF transformers on the same GPU (bench/asr_gpu_hf.py).
#
#   bash bench/gpu.sh                 # on the GPU machine, from the repo root
#   bash bench/gpu.sh --pack DIR      # here: copy OpenBLAS/FFTW (libs, headers)
#                                     # into DIR for a machine that lacks them
#
# It builds only what it needs (kernels/, not the daemons), so the GPU
# machine needs nvcc, cuBLAS, cuFFT, and OpenBLAS + FFTW for the CPU
# reference: found on the system, or in var/gpu-deps (made with --pack here
# and carried along: device run with carry ["var/gpu-deps"]).
#
# Output: everything goes to $OUT (or bench/results/gpu-run when OUT is not
# set): gpu.log (this script's log), nvidia-smi.txt, test-0110.log, and
# asr-gpu-<date>-<host>.json / asr-gpu-hf-<date>-<host>.json, which belong
# in bench/results/ (copy them there from the returned files).
#
# GPU_SH_BUILD_ONLY=1 stops after the build (a compile check without a GPU).
# Budget: about 1 min to build, 1 min for the parity test, 2-4 min for the
# kiln benchmark, 2-4 min for transformers; each step has a timeout so the
# whole script stays under 10 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

if [ "${1:-}" = "--pack" ]; then
  dst=${2:?usage: bench/gpu.sh --pack DIR}
  mkdir -p "$dst/lib" "$dst/include"
  for l in libopenblas.so.0 libfftw3f.so.3 libgfortran.so.5 libquadmath.so.0; do
    src=$(ldconfig -p | awk -v l="$l" '$1 == l {print $NF; exit}')
    [ -n "$src" ] && cp -L "$src" "$dst/lib/$l"
  done
  ln -sf libopenblas.so.0 "$dst/lib/libopenblas.so"
  ln -sf libfftw3f.so.3 "$dst/lib/libfftw3f.so"
  cp -L /usr/include/x86_64-linux-gnu/cblas.h /usr/include/fftw3.h "$dst/include/" 2>/dev/null
  for h in openblas_config.h f77blas.h; do
    f=$(ls /usr/include/x86_64-linux-gnu/openblas*/$h 2>/dev/null | head -1)
    [ -n "$f" ] && cp -L "$f" "$dst/include/"
  done
  du -sh "$dst"
  exit 0
fi

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
  echo "# using carried OpenBLAS/FFTW from var/gpu-deps"
fi
if ! echo '#include <cblas.h>
#include <fftw3.h>
int main(void){return 0;}' | cc $INC -x c - -o /dev/null $LIBDIR -lopenblas -lfftw3f 2>/dev/null; then
  echo "✗ OpenBLAS/FFTW headers or libraries missing: run 'bash bench/gpu.sh --pack var/gpu-deps'"
  echo "  on the dev machine and carry var/gpu-deps"
  exit 1
fi

# ---- build: kernels (C) + CUDA objects, the parity test, the benchmark
t0=$(date +%s)
CFLAGS="-std=gnu11 -O2 -g -Wall -Wextra -Werror -fPIC -D_GNU_SOURCE -pthread $INC"
objs=()
for f in kernels/dispatch.c kernels/cpu/*.c; do
  o=$B/obj/$(echo "$f" | tr / _).o
  cc $CFLAGS -c "$f" -o "$o" || { echo "✗ compile $f"; exit 1; }
  objs+=("$o")
done
ARCH=${CUDA_ARCH:-sm_90}
cuobjs=()
for f in kernels/cuda/*.cu; do
  o=$B/cuda/$(basename "$f" .cu).o
  "$NVCC" -O3 -std=c++17 $INC -arch=$ARCH -Xcompiler -Wall,-Wextra,-Werror,-fPIC -c "$f" -o "$o" \
    || { echo "✗ nvcc $f"; exit 1; }
  cuobjs+=("$o")
done
CULIBS="-L$CUDA_HOME/lib64 -lcudart -lcublas -lcufft"
LIBS="-lopenblas -lfftw3f -lm -pthread"
cc $CFLAGS -o "$B/0110-kernels_cuda" tests/0110-kernels_cuda.c "${cuobjs[@]}" "${objs[@]}" \
   $CULIBS -Wl,-rpath,"$CUDA_HOME/lib64" $LIBDIR $LIBS -lstdc++ \
   || { echo "✗ link tests/0110-kernels_cuda"; exit 1; }
# nvcc takes linker flags through -Xlinker
NVLIBDIR=""
[ -d var/gpu-deps ] && NVLIBDIR="-Lvar/gpu-deps/lib -Xlinker -rpath -Xlinker $ROOT/var/gpu-deps/lib"
"$NVCC" -O3 -std=c++17 $INC -arch=$ARCH -o "$B/asr_gpu_bench" bench/asr_gpu_bench.cu \
   "${cuobjs[@]}" "${objs[@]}" $CULIBS $NVLIBDIR -lopenblas -lfftw3f -lm -lpthread \
   || { echo "✗ build bench/asr_gpu_bench.cu"; exit 1; }
echo "# built in $(( $(date +%s) - t0 )) s (arch $ARCH)"
[ -n "${GPU_SH_BUILD_ONLY:-}" ] && { echo "# GPU_SH_BUILD_ONLY: stopping after the build"; exit 0; }

# ---- parity: every CUDA op against the CPU reference (NMSE, tolerances in the test)
t0=$(date +%s)
KILN_CUDA_TIMING=1 timeout 180 "$B/0110-kernels_cuda" > "$OUT/test-0110.log" 2>&1
rc=$?
grep -E '^(ok|not ok|skip)' "$OUT/test-0110.log"
grep -E '^# time' "$OUT/test-0110.log" | head -20
echo "# parity test: exit $rc in $(( $(date +%s) - t0 )) s"
[ $rc -eq 0 ] || echo "✗ CUDA parity test failed (rc $rc): see test-0110.log"

# ---- kiln throughput, large-v3 shape, batch 1 / 16 / 64
t0=$(date +%s)
J=$OUT/asr-gpu-$date_s-$host.json
timeout 300 "$B/asr_gpu_bench" --batch "${GPU_BATCHES:-1,16,64}" --tokens 100 \
  --precision "${GPU_PRECISION:-fp16}" --reps "${GPU_REPS:-3}" --json "$J"
echo "# kiln benchmark: exit $? in $(( $(date +%s) - t0 )) s"

# ---- HF transformers on the same GPU, when installed
t0=$(date +%s)
PY=${PYTHON:-python3}
if $PY -c 'import torch, transformers' 2>/dev/null; then
  timeout 300 $PY bench/asr_gpu_hf.py --batch "${GPU_BATCHES:-1,16,64}" --tokens 100 \
    --dtype float16 --reps "${GPU_REPS:-3}" --json "$OUT/asr-gpu-hf-$date_s-$host.json"
  echo "# transformers benchmark: exit $? in $(( $(date +%s) - t0 )) s"
else
  echo "# transformers/torch not installed: no side-by-side ratio"
fi

# ---- ratio at each batch size
if [ -f "$J" ] && [ -f "$OUT/asr-gpu-hf-$date_s-$host.json" ]; then
  $PY - "$J" "$OUT/asr-gpu-hf-$date_s-$host.json" <<'EOF'
import json, sys
k = {r["batch"]: r for r in json.load(open(sys.argv[1]))["results"]}
h = {r["batch"]: r for r in json.load(open(sys.argv[2]))["results"]}
for b in sorted(k):
    if b in h:
        print("# batch %3d: kiln %.1f x RT, transformers %.1f x RT, ratio %.2f"
              % (b, k[b]["x_realtime"], h[b]["x_realtime"], k[b]["x_realtime"] / h[b]["x_realtime"]))
EOF
fi
echo "# done: files in $OUT"
