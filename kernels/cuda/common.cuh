// kernels/cuda/common.cuh - what every kernels/cuda/*.cu shares: error
// checks, ceil_div, and the backend context (one stream, one cuBLAS handle,
// the matmul precision), created by kernels/cuda/register.cu.
//
// Errors: a failed CUDA/cuBLAS/cuFFT call prints the call, file and line
// once per call site and sets the kernels' error flag
// (kiln_kernels_take_error()); the op's output is then not valid. Tools and
// tests check the flag after each step and stop; a daemon fails the batch
// (STYLE.md 7: fail fast only in tools and tests).
#ifndef KILN_KERNELS_CUDA_COMMON_CUH
#define KILN_KERNELS_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdio.h>

#include "kiln/kernels.h"

#define KILN_CUDA_CHECK(call) kiln_cuda_check_((call), #call, __FILE__, __LINE__)
#define KILN_CUBLAS_CHECK(call) kiln_cublas_check_((call), #call, __FILE__, __LINE__)
#define KILN_CUDA_LAUNCH_CHECK() kiln_cuda_check_(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)

static inline int kiln_cuda_check_(cudaError_t e, const char *call, const char *file, int line) {
    if (e == cudaSuccess)
        return 0;
    fprintf(stderr, "kiln: CUDA error \"%s\" in %s at %s:%d\n", cudaGetErrorString(e), call, file,
            line);
    kiln_kernels_set_error_();
    return -1;
}

static inline int kiln_cublas_check_(cublasStatus_t s, const char *call, const char *file,
                                     int line) {
    if (s == CUBLAS_STATUS_SUCCESS)
        return 0;
    fprintf(stderr, "kiln: cuBLAS error %d in %s at %s:%d\n", (int)s, call, file, line);
    kiln_kernels_set_error_();
    return -1;
}

static inline unsigned kiln_ceil_div(size_t a, size_t b) { return (unsigned)((a + b - 1) / b); }

// @returns the sequence b whose rows [off[b], off[b + 1]) hold row r of a
// ragged batch (the last such b when sequences are empty, as the CPU's
// kiln_ragged_seq_()): binary search over off[0..B], a device array that
// the kernel only reads.
__device__ static inline int kiln_cuda_ragged_seq(const int *off, int B, int r) {
    int lo = 0, hi = B - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (__ldg(off + mid) <= r)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

// The backend's context (kernels/cuda/register.cu).
typedef struct kiln_cuda_ctx_s {
    cudaStream_t stream;
    cublasHandle_t blas;
    cublasComputeType_t compute; // CUBLAS_COMPUTE_32F or one of the _FAST_ modes
} kiln_cuda_ctx_t;

extern "C" kiln_cuda_ctx_t *kiln_cuda_ctx(void);

// launchers of the other .cu files, CPU argument order plus the stream
extern "C" {
void kiln_layernorm_cuda(float *out, const float *inp, const float *weight, const float *bias,
                         int N, int C, float eps, cudaStream_t stream);
void kiln_softmax_cuda(float *out, const float *inp, int N, int C, cudaStream_t stream);
void kiln_gelu_cuda(float *out, const float *inp, size_t n, cudaStream_t stream);
void kiln_add_cuda(float *out, const float *a, const float *b, size_t n, cudaStream_t stream);
void kiln_matmul_cuda(float *out, const float *inp, const float *weight, const float *bias,
                      int N, int C, int OC, cudaStream_t stream);
void kiln_conv1d_cuda(float *out, const float *inp, const float *weight, const float *bias,
                      int Tin, int C, int OC, int K, int stride, int pad, float *scratch,
                      cudaStream_t stream);
void kiln_attention_cuda(float *out, int ldo, const float *q, int ldq, const float *k, int ldk,
                         const float *v, int ldv, int Tq, int Tk, int H, int D, int causal,
                         float *scratch, cudaStream_t stream);
void kiln_attention_kv_cuda(float *out, int ldo, const float *q, int ldq,
                            const float *const *kt, int ldkt, const float *const *v, int ldv,
                            const int *Tk, int S, int H, int D, float *scratch,
                            cudaStream_t stream);
void kiln_logmel_cuda(float *out, const float *frames_power, const float *filters, int T,
                      int n_freq, int n_mels, cudaStream_t stream);
void kiln_power_spectrum_cuda(float *power, const float *frames, int T, int n_fft,
                              cudaStream_t stream);
void kiln_embed_cuda(float *out, const float *tok_emb, const float *pos_emb, const int *tok,
                     const int *pos, int N, int C, cudaStream_t stream);
void kiln_kv_append_cuda(float *const *kt, int ldkt, float *const *v, int ldv, const float *k,
                         const float *val, int ldx, const int *pos, int N, int C,
                         cudaStream_t stream);
void kiln_gather_rows_cuda(float *out, const float *inp, const int *idx, int N, int C,
                           cudaStream_t stream);
void kiln_add_rowbias_cuda(float *x, const float *bias, int N, int T, cudaStream_t stream);
void kiln_copy2d_cuda(float *dst, size_t ldd, const float *src, size_t lds, int rows, int cols,
                      cudaStream_t stream);
void kiln_transpose_cuda(float *out, const float *inp, int R, int C, cudaStream_t stream);
void kiln_im2col_cuda(float *out, const float *inp, const int *off, int B, int r0, int nr, int C,
                      int K, int dil, float slope, cudaStream_t stream);
void kiln_col2im_cuda(float *out, const float *y, const float *bias, const int *in_off,
                      const int *out_off, int B, int n_out, int OC, int K, int stride, int pad,
                      cudaStream_t stream);
void kiln_act_cuda(float *out, const float *inp, size_t n, int kind, float param,
                   cudaStream_t stream);
void kiln_gate_cuda(float *out, const float *inp, int N, int C, cudaStream_t stream);
void kiln_axpby_cuda(float *out, float a, const float *x, float b, const float *y, size_t n,
                     cudaStream_t stream);
// the text side of a VITS voice (kernels/cuda/voice_text.cu)
void kiln_rel_attention_cuda(float *out, const float *qkv, const float *rel_k, const float *rel_v,
                             const int *off, int B, int N, int H, int D, int W,
                             cudaStream_t stream);
void kiln_dwconv_cuda(float *out, const float *inp, const float *w, const float *b,
                      const int *off, int B, int N, int C, int K, int dil, cudaStream_t stream);
void kiln_spline_inv_cuda(float *x, const float *p, int ldp, int N, int bins, float tail,
                          float scale, cudaStream_t stream);
void kiln_expand_cuda(float *out, const float *stats, const int *idx, const float *noise, int N,
                      int C, float scale, cudaStream_t stream);
}

#endif
