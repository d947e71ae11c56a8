// kernels/cuda/copy.cu - the data movement of a decoder step on the GPU
// (embed, kv_append, gather_rows, add_rowbias, copy2d, transpose): the
// contracts of kernels/cpu/copy.c, CPU argument order plus a stream, every
// pointer a device pointer (the index and pointer arrays too). Checked
// against the CPU by tests/0110-kernels_cuda.c (exact: they only move
// floats, and embed/add_rowbias do one fp32 add, as the CPU does).
//
//   embed, gather_rows, kv_append: one block per row, threads over C
//   add_rowbias:                    grid-stride loop over N * T
//   copy2d:                         cudaMemcpy2DAsync (device to device)
//   transpose:                      32 x 32 tiles through shared memory
#include <cuda_runtime.h>
#include <stddef.h>

#include "kernels/cuda/common.cuh"

#define KILN_CP_BLOCK 256
#define KILN_TR_TILE 32

__global__ static void kiln_embed_kernel_(float *out, const float *tok_emb, const float *pos_emb,
                                          const int *tok, const int *pos, int C) {
    const int r = blockIdx.x;
    const float *e = tok_emb + (size_t)tok[r] * C, *p = pos_emb + (size_t)pos[r] * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x)
        out[(size_t)r * C + c] = e[c] + p[c];
}

__global__ static void kiln_kv_append_kernel_(float *const *kt, int ldkt, float *const *v,
                                              int ldv, const float *k, const float *val, int ldx,
                                              const int *pos, int C) {
    const int r = blockIdx.x, t = pos[r];
    float *K = kt[r], *V = v[r] + (size_t)t * ldv;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        K[(size_t)c * ldkt + t] = k[(size_t)r * ldx + c];
        V[c] = val[(size_t)r * ldx + c];
    }
}

__global__ static void kiln_gather_kernel_(float *out, const float *inp, const int *idx, int C) {
    const int i = blockIdx.x;
    const float *src = inp + (size_t)idx[i] * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x)
        out[(size_t)i * C + c] = src[c];
}

__global__ static void kiln_rowbias_kernel_(float *x, const float *bias, size_t n, int T) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        x[i] += bias[i / T];
}

__global__ static void kiln_transpose_kernel_(float *out, const float *inp, int R, int C) {
    __shared__ float tile[KILN_TR_TILE][KILN_TR_TILE + 1];
    const int c0 = blockIdx.x * KILN_TR_TILE, r0 = blockIdx.y * KILN_TR_TILE;
    for (int i = threadIdx.y; i < KILN_TR_TILE; i += blockDim.y) {
        int r = r0 + i, c = c0 + threadIdx.x;
        if (r < R && c < C)
            tile[i][threadIdx.x] = inp[(size_t)r * C + c];
    }
    __syncthreads();
    for (int i = threadIdx.y; i < KILN_TR_TILE; i += blockDim.y) {
        int c = c0 + i, r = r0 + threadIdx.x;
        if (r < R && c < C)
            out[(size_t)c * R + r] = tile[threadIdx.x][i];
    }
}

static unsigned kiln_cp_threads_(int C) { return C >= KILN_CP_BLOCK ? KILN_CP_BLOCK : 128; }

extern "C" void kiln_embed_cuda(float *out, const float *tok_emb, const float *pos_emb,
                                const int *tok, const int *pos, int N, int C,
                                cudaStream_t stream) {
    if (N <= 0)
        return;
    kiln_embed_kernel_<<<N, kiln_cp_threads_(C), 0, stream>>>(out, tok_emb, pos_emb, tok, pos, C);
    KILN_CUDA_LAUNCH_CHECK();
}

extern "C" void kiln_kv_append_cuda(float *const *kt, int ldkt, float *const *v, int ldv,
                                    const float *k, const float *val, int ldx, const int *pos,
                                    int N, int C, cudaStream_t stream) {
    if (N <= 0)
        return;
    kiln_kv_append_kernel_<<<N, kiln_cp_threads_(C), 0, stream>>>(kt, ldkt, v, ldv, k, val, ldx,
                                                                  pos, C);
    KILN_CUDA_LAUNCH_CHECK();
}

extern "C" void kiln_gather_rows_cuda(float *out, const float *inp, const int *idx, int N, int C,
                                      cudaStream_t stream) {
    if (N <= 0)
        return;
    kiln_gather_kernel_<<<N, kiln_cp_threads_(C), 0, stream>>>(out, inp, idx, C);
    KILN_CUDA_LAUNCH_CHECK();
}

extern "C" void kiln_add_rowbias_cuda(float *x, const float *bias, int N, int T,
                                      cudaStream_t stream) {
    size_t n = (size_t)N * T;
    if (n == 0)
        return;
    size_t g = (n + KILN_CP_BLOCK - 1) / KILN_CP_BLOCK;
    kiln_rowbias_kernel_<<<(unsigned)(g > 65535 ? 65535 : g), KILN_CP_BLOCK, 0, stream>>>(x, bias,
                                                                                         n, T);
    KILN_CUDA_LAUNCH_CHECK();
}

extern "C" void kiln_copy2d_cuda(float *dst, size_t ldd, const float *src, size_t lds, int rows,
                                 int cols, cudaStream_t stream) {
    if (rows <= 0 || cols <= 0)
        return;
    KILN_CUDA_CHECK(cudaMemcpy2DAsync(dst, ldd * sizeof(float), src, lds * sizeof(float),
                                      (size_t)cols * sizeof(float), (size_t)rows,
                                      cudaMemcpyDeviceToDevice, stream));
}

extern "C" void kiln_transpose_cuda(float *out, const float *inp, int R, int C,
                                    cudaStream_t stream) {
    if (R <= 0 || C <= 0)
        return;
    dim3 grid(kiln_ceil_div(C, KILN_TR_TILE), kiln_ceil_div(R, KILN_TR_TILE));
    kiln_transpose_kernel_<<<grid, dim3(KILN_TR_TILE, 8), 0, stream>>>(out, inp, R, C);
    KILN_CUDA_LAUNCH_CHECK();
}
