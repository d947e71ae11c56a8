# 0430-nvml_stub: the NVML path of the GPU metrics without a GPU. A stub
# libnvidia-ml (2 GPUs, fixed utilisation, memory that grows per call) is
# compiled here and loaded through KILN_NVML_LIBRARY; 0400-metrics then
# expects gpu="0" and gpu="1" series with the stub's values, sampled again
# at every scrape. Also: a library that fails nvmlInit gives gpu="none".
set -u
: "${KILN_BUILD:?run through tests/run.sh}"
CC=${CC:-cc}
command -v "$CC" >/dev/null 2>&1 || { echo "skip - no C compiler"; exit 77; }
T=$(mktemp -d /tmp/kiln-0430.XXXXXX)
trap 'rm -rf "$T"' EXIT
FAILS=0
cat > "$T/nvml.c" <<'C'
#include <stdint.h>
typedef struct { unsigned int gpu, memory; } util_t;
typedef struct { unsigned long long total, free, used; } mem_t;
static unsigned long long calls;
#ifdef FAIL_INIT
int nvmlInit_v2(void) { return 999; } /* NVML_ERROR_UNKNOWN */
#else
int nvmlInit_v2(void) { return 0; }
#endif
int nvmlDeviceGetCount_v2(unsigned int *n) { *n = 2; return 0; }
int nvmlDeviceGetHandleByIndex_v2(unsigned int i, void **d) { *d = (void *)(uintptr_t)(i + 1); return 0; }
int nvmlDeviceGetUtilizationRates(void *d, util_t *u) { u->gpu = d == (void *)1 ? 42 : 7; u->memory = 0; return 0; }
int nvmlDeviceGetMemoryInfo(void *d, mem_t *m) {
    m->total = 80ULL << 30;
    m->used = ((unsigned long long)(uintptr_t)d << 30) + (++calls << 20);
    m->free = m->total - m->used;
    return 0;
}
C
"$CC" -shared -fPIC -o "$T/libnvml-stub.so" "$T/nvml.c" && "$CC" -shared -fPIC -DFAIL_INIT -o "$T/libnvml-fail.so" "$T/nvml.c" ||
  { echo "not ok - compile the NVML stub"; exit 1; }
run() { # NAME ENV...: runs 0400-metrics with ENV and checks its GPU sub-test passed
  local name=$1; shift
  env "$@" "$KILN_BUILD/tests/0400-metrics" > "$T/out" 2>&1
  if grep -q '^ok - GPU gauges' "$T/out" && ! grep -q '^not ok' "$T/out"; then echo "ok - $name"
  else echo "not ok - $name"; sed 's/^/# /' "$T/out"; FAILS=$((FAILS+1)); fi
}
run "NVML stub with 2 GPUs: per-GPU series sampled at each render" KILN_NVML_LIBRARY="$T/libnvml-stub.so" KILN_TEST_NVML_STUB=1
run "NVML whose init fails: gpu=none" KILN_NVML_LIBRARY="$T/libnvml-fail.so"
run "KILN_NVML_LIBRARY=none: gpu=none" KILN_NVML_LIBRARY=none
exit $(( FAILS > 0 ? 1 : 0 ))
