// kernels/cuda/matmul.cu - dense layers on the GPU: matmul (cuBLAS GEMM) and
// conv1d (im2col kernel + the same GEMM); CPU argument order plus a stream,
// every pointer a device pointer.
//
// Row-major out[N, OC] = inp[N, C] W[OC, C]^T is, in cuBLAS's column-major
// terms, out^T = W^T' inp^T: cublasGemmEx(T, N, m=OC, n=N, k=C, A=W lda=C,
// B=inp ldb=C, C=out ldc=OC). The bias is broadcast into out first and the
// GEMM adds to it (beta = 1).
//
// Precision (kiln_cuda_ctx()->compute, set through the table's
// set_precision): CUBLAS_COMPUTE_32F (fp32, the default), or the tensor-core
// modes CUBLAS_COMPUTE_32F_FAST_TF32 / _FAST_16F / _FAST_16BF, where cuBLAS
// rounds the fp32 inputs to tf32/fp16/bf16 and accumulates in fp32. Storage
// stays fp32 in every mode.
#include <cuda_runtime.h>

#include "kernels/cuda/common.cuh"

#define KILN_MM_BLOCK 256

__global__ static void kiln_bias_rows_kernel_(float *out, const float *bias, size_t n, int OC) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = bias[i % OC];
}

// col[t, c*K + k] = inp[t*stride + k - pad, c], 0 outside the input
__global__ static void kiln_im2col_kernel_(float *col, const float *inp, int Tin, int C, int K,
                                           int stride, int pad, int Tout) {
    const size_t n = (size_t)Tout * C * K;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        int t = (int)(i / ((size_t)C * K)), r = (int)(i % ((size_t)C * K));
        int c = r / K, k = r % K, ti = t * stride + k - pad;
        col[i] = ti >= 0 && ti < Tin ? inp[(size_t)ti * C + c] : 0.0f;
    }
}

static unsigned kiln_mm_grid_(size_t n) {
    size_t g = (n + KILN_MM_BLOCK - 1) / KILN_MM_BLOCK;
    return (unsigned)(g > 65535 ? 65535 : (g ? g : 1));
}

extern "C" void kiln_matmul_cuda(float *out, const float *inp, const float *weight,
                                 const float *bias, int N, int C, int OC, cudaStream_t stream) {
    if (N <= 0 || OC <= 0)
        return;
    kiln_cuda_ctx_t *ctx = kiln_cuda_ctx();
    float alpha = 1.0f, beta = 0.0f;
    if (bias) {
        size_t n = (size_t)N * OC;
        kiln_bias_rows_kernel_<<<kiln_mm_grid_(n), KILN_MM_BLOCK, 0, stream>>>(out, bias, n, OC);
        KILN_CUDA_LAUNCH_CHECK();
        beta = 1.0f;
    }
    KILN_CUBLAS_CHECK(cublasSetStream(ctx->blas, stream));
    KILN_CUBLAS_CHECK(cublasGemmEx(ctx->blas, CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, &alpha, weight,
                                   CUDA_R_32F, C, inp, CUDA_R_32F, C, &beta, out, CUDA_R_32F, OC,
                                   ctx->compute, CUBLAS_GEMM_DEFAULT));
}

extern "C" void kiln_conv1d_cuda(float *out, const float *inp, const float *weight,
                                 const float *bias, int Tin, int C, int OC, int K, int stride,
                                 int pad, float *scratch, cudaStream_t stream) {
    int Tout = (Tin + 2 * pad - K) / stride + 1;
    if (Tout <= 0)
        return;
    size_t n = (size_t)Tout * C * K;
    kiln_im2col_kernel_<<<kiln_mm_grid_(n), KILN_MM_BLOCK, 0, stream>>>(scratch, inp, Tin, C, K,
                                                                       stride, pad, Tout);
    KILN_CUDA_LAUNCH_CHECK();
    kiln_matmul_cuda(out, scratch, weight, bias, Tout, C * K, OC, stream);
}
