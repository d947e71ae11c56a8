// kernels/cuda/register.cu - the CUDA backend's function table and its
// registration with the dispatcher (kernels/dispatch.c).
//
// A constructor runs when the CUDA objects are linked in (the CUDA=1 build
// links them into the program directly, so the linker keeps them): if a
// GPU is visible it creates one stream and one cuBLAS handle and registers
// the table, so kiln_kernels_get(KILN_BACKEND_CUDA) returns it; without a
// GPU nothing is registered and every caller falls back to the CPU. A
// CPU-only build has none of this file.
//
// The table's ops are the launchers of the other .cu files on the
// backend's stream; every pointer argument is a device pointer. alloc/
// free/upload/download are cudaMalloc/cudaFree/cudaMemcpy (synchronous);
// sync waits for the stream. set_precision picks cuBLAS's compute type.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <string.h>

#include "kernels/cuda/common.cuh"

static kiln_cuda_ctx_t kiln_cuda_ctx_;

extern "C" kiln_cuda_ctx_t *kiln_cuda_ctx(void) { return &kiln_cuda_ctx_; }

static void kiln_cu_matmul_(float *out, const float *inp, const float *w, const float *b, int N,
                            int C, int OC) {
    kiln_matmul_cuda(out, inp, w, b, N, C, OC, kiln_cuda_ctx_.stream);
}
static void kiln_cu_layernorm_(float *out, const float *inp, const float *w, const float *b,
                               int N, int C, float eps) {
    kiln_layernorm_cuda(out, inp, w, b, N, C, eps, kiln_cuda_ctx_.stream);
}
static void kiln_cu_gelu_(float *out, const float *inp, size_t n) {
    kiln_gelu_cuda(out, inp, n, kiln_cuda_ctx_.stream);
}
static void kiln_cu_softmax_(float *out, const float *inp, int N, int C) {
    kiln_softmax_cuda(out, inp, N, C, kiln_cuda_ctx_.stream);
}
static void kiln_cu_attention_(float *out, int ldo, const float *q, int ldq, const float *k,
                               int ldk, const float *v, int ldv, int Tq, int Tk, int H, int D,
                               int causal, float *scratch) {
    kiln_attention_cuda(out, ldo, q, ldq, k, ldk, v, ldv, Tq, Tk, H, D, causal, scratch,
                        kiln_cuda_ctx_.stream);
}
static void kiln_cu_conv1d_(float *out, const float *inp, const float *w, const float *b, int Tin,
                            int C, int OC, int K, int stride, int pad, float *scratch) {
    kiln_conv1d_cuda(out, inp, w, b, Tin, C, OC, K, stride, pad, scratch, kiln_cuda_ctx_.stream);
}
static void kiln_cu_add_(float *out, const float *a, const float *b, size_t n) {
    kiln_add_cuda(out, a, b, n, kiln_cuda_ctx_.stream);
}
static void kiln_cu_logmel_(float *out, const float *power, const float *filters, int T,
                            int n_freq, int n_mels) {
    kiln_logmel_cuda(out, power, filters, T, n_freq, n_mels, kiln_cuda_ctx_.stream);
}
static void kiln_cu_attention_kv_(float *out, int ldo, const float *q, int ldq,
                                  const float *const *kt, int ldkt, const float *const *v, int ldv,
                                  const int *Tk, int S, int H, int D, float *scratch) {
    kiln_attention_kv_cuda(out, ldo, q, ldq, kt, ldkt, v, ldv, Tk, S, H, D, scratch,
                           kiln_cuda_ctx_.stream);
}
static void kiln_cu_power_spectrum_(float *power, const float *frames, int T, int n_fft) {
    kiln_power_spectrum_cuda(power, frames, T, n_fft, kiln_cuda_ctx_.stream);
}

static void *kiln_cu_alloc_(size_t n) {
    void *p = NULL;
    if (cudaMalloc(&p, n ? n : 1) != cudaSuccess) {
        cudaGetLastError(); // out of memory is the caller's to handle, not sticky
        return NULL;
    }
    return p;
}
static void kiln_cu_free_(void *p) {
    if (p)
        KILN_CUDA_CHECK(cudaFree(p));
}
static void kiln_cu_upload_(void *dst, const void *src, size_t n) {
    KILN_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, kiln_cuda_ctx_.stream));
    KILN_CUDA_CHECK(cudaStreamSynchronize(kiln_cuda_ctx_.stream));
}
static void kiln_cu_download_(void *dst, const void *src, size_t n) {
    KILN_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, kiln_cuda_ctx_.stream));
    KILN_CUDA_CHECK(cudaStreamSynchronize(kiln_cuda_ctx_.stream));
}
static void kiln_cu_sync_(void) { KILN_CUDA_CHECK(cudaStreamSynchronize(kiln_cuda_ctx_.stream)); }

static int kiln_cu_set_precision_(const char *mode) {
    if (!strcmp(mode, "fp32"))
        kiln_cuda_ctx_.compute = CUBLAS_COMPUTE_32F;
    else if (!strcmp(mode, "tf32"))
        kiln_cuda_ctx_.compute = CUBLAS_COMPUTE_32F_FAST_TF32;
    else if (!strcmp(mode, "fp16"))
        kiln_cuda_ctx_.compute = CUBLAS_COMPUTE_32F_FAST_16F;
    else if (!strcmp(mode, "bf16"))
        kiln_cuda_ctx_.compute = CUBLAS_COMPUTE_32F_FAST_16BF;
    else
        return -1;
    return 0;
}

static kiln_kernels_t kiln_kernels_cuda_;

__attribute__((constructor)) static void kiln_cuda_register_(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n <= 0) {
        cudaGetLastError();
        return; // no GPU: the CPU backend stays the only one
    }
    if (cudaStreamCreateWithFlags(&kiln_cuda_ctx_.stream, cudaStreamNonBlocking) != cudaSuccess ||
        cublasCreate(&kiln_cuda_ctx_.blas) != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "kiln: a GPU is visible but CUDA could not start; using the CPU\n");
        cudaGetLastError();
        return;
    }
    cublasSetStream(kiln_cuda_ctx_.blas, kiln_cuda_ctx_.stream);
    kiln_cuda_ctx_.compute = CUBLAS_COMPUTE_32F;
    kiln_kernels_t *t = &kiln_kernels_cuda_;
    t->name = "cuda";
    t->matmul = kiln_cu_matmul_;
    t->layernorm = kiln_cu_layernorm_;
    t->gelu = kiln_cu_gelu_;
    t->softmax = kiln_cu_softmax_;
    t->attention = kiln_cu_attention_;
    t->conv1d = kiln_cu_conv1d_;
    t->add = kiln_cu_add_;
    t->logmel = kiln_cu_logmel_;
    t->attention_kv = kiln_cu_attention_kv_;
    t->matmul_packed = NULL; // the CPU's packed layout has no use on the GPU (cuBLAS)
    t->power_spectrum = kiln_cu_power_spectrum_;
    t->alloc = kiln_cu_alloc_;
    t->free = kiln_cu_free_;
    t->upload = kiln_cu_upload_;
    t->download = kiln_cu_download_;
    t->sync = kiln_cu_sync_;
    t->set_precision = kiln_cu_set_precision_;
    kiln_kernels_register(KILN_BACKEND_CUDA, t);
}
