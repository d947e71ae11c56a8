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

static void kiln_cu_embed_(float *out, const float *tok_emb, const float *pos_emb,
                           const int *tok, const int *pos, int N, int C) {
    kiln_embed_cuda(out, tok_emb, pos_emb, tok, pos, N, C, kiln_cuda_ctx_.stream);
}
static void kiln_cu_kv_append_(float *const *kt, int ldkt, float *const *v, int ldv,
                               const float *k, const float *val, int ldx, const int *pos, int N,
                               int C) {
    kiln_kv_append_cuda(kt, ldkt, v, ldv, k, val, ldx, pos, N, C, kiln_cuda_ctx_.stream);
}
static void kiln_cu_gather_rows_(float *out, const float *inp, const int *idx, int N, int C) {
    kiln_gather_rows_cuda(out, inp, idx, N, C, kiln_cuda_ctx_.stream);
}
static void kiln_cu_add_rowbias_(float *x, const float *bias, int N, int T) {
    kiln_add_rowbias_cuda(x, bias, N, T, kiln_cuda_ctx_.stream);
}
static void kiln_cu_copy2d_(float *dst, size_t ldd, const float *src, size_t lds, int rows,
                            int cols) {
    kiln_copy2d_cuda(dst, ldd, src, lds, rows, cols, kiln_cuda_ctx_.stream);
}
static void kiln_cu_transpose_(float *out, const float *inp, int R, int C) {
    kiln_transpose_cuda(out, inp, R, C, kiln_cuda_ctx_.stream);
}
static void kiln_cu_im2col_(float *out, const float *inp, const int *off, int B, int r0, int nr,
                            int C, int K, int dil, float slope) {
    kiln_im2col_cuda(out, inp, off, B, r0, nr, C, K, dil, slope, kiln_cuda_ctx_.stream);
}
static void kiln_cu_col2im_(float *out, const float *y, const float *bias, const int *in_off,
                            const int *out_off, int B, int n_out, int OC, int K, int stride,
                            int pad) {
    kiln_col2im_cuda(out, y, bias, in_off, out_off, B, n_out, OC, K, stride, pad,
                     kiln_cuda_ctx_.stream);
}
static void kiln_cu_act_(float *out, const float *inp, size_t n, int kind, float param) {
    kiln_act_cuda(out, inp, n, kind, param, kiln_cuda_ctx_.stream);
}
static void kiln_cu_gate_(float *out, const float *inp, int N, int C) {
    kiln_gate_cuda(out, inp, N, C, kiln_cuda_ctx_.stream);
}
static void kiln_cu_axpby_(float *out, float a, const float *x, float b, const float *y,
                           size_t n) {
    kiln_axpby_cuda(out, a, x, b, y, n, kiln_cuda_ctx_.stream);
}
static void kiln_cu_rel_attention_(float *out, const float *qkv, const float *rel_k,
                                   const float *rel_v, const int *off, int B, int N, int H, int D,
                                   int W) {
    kiln_rel_attention_cuda(out, qkv, rel_k, rel_v, off, B, N, H, D, W, kiln_cuda_ctx_.stream);
}
static void kiln_cu_dwconv_(float *out, const float *inp, const float *w, const float *b,
                            const int *off, int B, int N, int C, int K, int dil) {
    kiln_dwconv_cuda(out, inp, w, b, off, B, N, C, K, dil, kiln_cuda_ctx_.stream);
}
static void kiln_cu_spline_inv_(float *x, const float *p, int ldp, int N, int bins, float tail,
                                float scale) {
    kiln_spline_inv_cuda(x, p, ldp, N, bins, tail, scale, kiln_cuda_ctx_.stream);
}
static void kiln_cu_expand_(float *out, const float *stats, const int *idx, const float *noise,
                            int N, int C, float scale) {
    kiln_expand_cuda(out, stats, idx, noise, N, C, scale, kiln_cuda_ctx_.stream);
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
        // no GPU: the CPU backend stays the only one
        kiln_kernels_unavailable(KILN_BACKEND_CUDA,
                                 "no CUDA device is visible (no GPU, or no driver)");
        return;
    }
    if (cudaStreamCreateWithFlags(&kiln_cuda_ctx_.stream, cudaStreamNonBlocking) != cudaSuccess ||
        cublasCreate(&kiln_cuda_ctx_.blas) != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "kiln: a GPU is visible but CUDA could not start; using the CPU\n");
        cudaGetLastError();
        kiln_kernels_unavailable(KILN_BACKEND_CUDA, "a GPU is visible but CUDA could not start");
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
    t->embed = kiln_cu_embed_;
    t->kv_append = kiln_cu_kv_append_;
    t->gather_rows = kiln_cu_gather_rows_;
    t->add_rowbias = kiln_cu_add_rowbias_;
    t->copy2d = kiln_cu_copy2d_;
    t->transpose = kiln_cu_transpose_;
    t->im2col = kiln_cu_im2col_;
    t->col2im = kiln_cu_col2im_;
    t->act = kiln_cu_act_;
    t->gate = kiln_cu_gate_;
    t->axpby = kiln_cu_axpby_;
    t->rel_attention = kiln_cu_rel_attention_;
    t->dwconv = kiln_cu_dwconv_;
    t->spline_inv = kiln_cu_spline_inv_;
    t->expand = kiln_cu_expand_;
    t->host_memory = 0;
    t->alloc = kiln_cu_alloc_;
    t->free = kiln_cu_free_;
    t->upload = kiln_cu_upload_;
    t->download = kiln_cu_download_;
    t->sync = kiln_cu_sync_;
    t->set_precision = kiln_cu_set_precision_;
    kiln_kernels_register(KILN_BACKEND_CUDA, t);
}
