// kernels/cuda/elementwise.cu - CUDA versions of the row-wise and element-wise
// ops of kernels/cpu (layernorm, gelu, softmax, add), same argument order as
// the CPU reference plus a cudaStream_t; every pointer is a device pointer.
// Registered in the CUDA table by kernels/cuda/register.cu; checked against
// the CPU reference by tests/0110-kernels_cuda.c (tolerances there).
//
//   layernorm: one block per row, block-wide reductions in shared memory
//   softmax:   one block per row (max, sum of exp, scale)
//   gelu, add: grid-stride loops
#include <cuda_runtime.h>
#include <math.h>
#include <stddef.h>

#include "kernels/cuda/common.cuh"

#define KILN_CUDA_BLOCK 256

// ----------------------------------------------------------------------------
// block reduction helpers (blockDim.x == KILN_CUDA_BLOCK)

__device__ static float kiln_block_sum_(float v, float *sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s)
            sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    float r = sh[0];
    __syncthreads();
    return r;
}

__device__ static float kiln_block_max_(float v, float *sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s)
            sh[threadIdx.x] = fmaxf(sh[threadIdx.x], sh[threadIdx.x + s]);
        __syncthreads();
    }
    float r = sh[0];
    __syncthreads();
    return r;
}

// ----------------------------------------------------------------------------
// kernels

__global__ static void kiln_layernorm_kernel_(float *out, const float *inp, const float *weight,
                                              const float *bias, int C, float eps) {
    __shared__ float sh[KILN_CUDA_BLOCK];
    const float *x = inp + (size_t)blockIdx.x * C;
    float *y = out + (size_t)blockIdx.x * C;
    float s = 0.0f;
    for (int i = threadIdx.x; i < C; i += blockDim.x)
        s += x[i];
    float mean = kiln_block_sum_(s, sh) / C;
    float v = 0.0f;
    for (int i = threadIdx.x; i < C; i += blockDim.x)
        v += (x[i] - mean) * (x[i] - mean);
    float rstd = rsqrtf(kiln_block_sum_(v, sh) / C + eps);
    for (int i = threadIdx.x; i < C; i += blockDim.x)
        y[i] = (x[i] - mean) * rstd * weight[i] + (bias ? bias[i] : 0.0f);
}

__global__ static void kiln_softmax_kernel_(float *out, const float *inp, int C) {
    __shared__ float sh[KILN_CUDA_BLOCK];
    const float *x = inp + (size_t)blockIdx.x * C;
    float *y = out + (size_t)blockIdx.x * C;
    float m = -INFINITY;
    for (int i = threadIdx.x; i < C; i += blockDim.x)
        m = fmaxf(m, x[i]);
    m = kiln_block_max_(m, sh);
    if (m == -INFINITY) {
        for (int i = threadIdx.x; i < C; i += blockDim.x)
            y[i] = 0.0f;
        return;
    }
    float s = 0.0f;
    for (int i = threadIdx.x; i < C; i += blockDim.x)
        s += expf(x[i] - m);
    float inv = 1.0f / kiln_block_sum_(s, sh);
    for (int i = threadIdx.x; i < C; i += blockDim.x)
        y[i] = expf(x[i] - m) * inv;
}

__global__ static void kiln_gelu_kernel_(float *out, const float *inp, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    }
}

__global__ static void kiln_add_kernel_(float *out, const float *a, const float *b, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = a[i] + b[i];
}

// ----------------------------------------------------------------------------
// launchers (C linkage, CPU argument order + stream)

static unsigned kiln_grid_(size_t n) {
    size_t g = (n + KILN_CUDA_BLOCK - 1) / KILN_CUDA_BLOCK;
    return (unsigned)(g > 65535 ? 65535 : (g ? g : 1));
}

extern "C" {

void kiln_layernorm_cuda(float *out, const float *inp, const float *weight, const float *bias,
                         int N, int C, float eps, cudaStream_t stream) {
    if (N > 0) {
        kiln_layernorm_kernel_<<<N, KILN_CUDA_BLOCK, 0, stream>>>(out, inp, weight, bias, C, eps);
        KILN_CUDA_LAUNCH_CHECK();
    }
}

void kiln_softmax_cuda(float *out, const float *inp, int N, int C, cudaStream_t stream) {
    if (N > 0) {
        kiln_softmax_kernel_<<<N, KILN_CUDA_BLOCK, 0, stream>>>(out, inp, C);
        KILN_CUDA_LAUNCH_CHECK();
    }
}

void kiln_gelu_cuda(float *out, const float *inp, size_t n, cudaStream_t stream) {
    if (n == 0)
        return;
    kiln_gelu_kernel_<<<kiln_grid_(n), KILN_CUDA_BLOCK, 0, stream>>>(out, inp, n);
    KILN_CUDA_LAUNCH_CHECK();
}

void kiln_add_cuda(float *out, const float *a, const float *b, size_t n, cudaStream_t stream) {
    if (n == 0)
        return;
    kiln_add_kernel_<<<kiln_grid_(n), KILN_CUDA_BLOCK, 0, stream>>>(out, a, b, n);
    KILN_CUDA_LAUNCH_CHECK();
}

} // extern "C"
