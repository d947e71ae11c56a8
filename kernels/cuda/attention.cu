// kernels/cuda/attention.cu - attention on the GPU, CPU argument order plus
// a stream, every pointer a device pointer (for attention_kv, the pointer
// arrays kt, v and the lengths Tk are device arrays too).
//
// attention (one sequence, Tq x Tk, optional causal mask), two paths:
//   flash  (scratch == NULL, or Tq * Tk < 4096): one fused kernel, no score
//          matrix in memory. A block holds 8 query rows, one warp each; key
//          and value tiles of 32 rows go through shared memory; every warp
//          keeps its row's running maximum, sum and output (D/32 values per
//          lane) and rescales them for each key (online softmax,
//          FlashAttention's recurrence). D <= 128.
//   cuBLAS (scratch of Tq * Tk floats given): per head, S = scale Q K^T
//          (GEMM, the context's precision), causal mask, row softmax
//          (elementwise.cu), O = S V (GEMM). The encoder's 1500 x 1500
//          attention goes here: tensor-core GEMMs beat the fused kernel's
//          scalar dot products by far at that size.
// attention_kv (decoder step): one block per (row, head); scores over the
//          row's keys read from K^T (coalesced along the keys), softmax in
//          shared memory, then the weighted sum of values with the block
//          split into groups of D threads.
#include <cuda_runtime.h>
#include <math.h>

#include "kernels/cuda/common.cuh"

#define KILN_FA_WARPS 8
#define KILN_FA_TK 32
#define KILN_FA_DMAX 128

__global__ static void kiln_flash_kernel_(float *out, int ldo, const float *q, int ldq,
                                          const float *k, int ldk, const float *v, int ldv,
                                          int Tq, int Tk, int D, int causal, float scale) {
    extern __shared__ float sm[];
    float *Ks = sm, *Vs = sm + KILN_FA_TK * D;
    const int h = blockIdx.y, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int t = blockIdx.x * KILN_FA_WARPS + warp;
    float qr[KILN_FA_DMAX / 32], acc[KILN_FA_DMAX / 32];
#pragma unroll
    for (int i = 0; i < KILN_FA_DMAX / 32; i++) {
        int d = lane + 32 * i;
        qr[i] = t < Tq && d < D ? q[(size_t)t * ldq + h * D + d] * scale : 0.0f;
        acc[i] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    const int last = causal ? Tk - Tq + t : Tk - 1;
    int row_hi = blockIdx.x * KILN_FA_WARPS + KILN_FA_WARPS - 1;
    row_hi = row_hi < Tq - 1 ? row_hi : Tq - 1;
    const int kmax = causal ? Tk - Tq + row_hi : Tk - 1;
    for (int j0 = 0; j0 <= kmax; j0 += KILN_FA_TK) {
        __syncthreads();
        for (int i = threadIdx.x; i < KILN_FA_TK * D; i += blockDim.x) {
            int jj = i / D, d = i % D, j = j0 + jj;
            Ks[i] = j < Tk ? k[(size_t)j * ldk + h * D + d] : 0.0f;
            Vs[i] = j < Tk ? v[(size_t)j * ldv + h * D + d] : 0.0f;
        }
        __syncthreads();
        if (t >= Tq)
            continue;
        int jend = last - j0 + 1;
        jend = jend < KILN_FA_TK ? jend : KILN_FA_TK;
        for (int jj = 0; jj < jend; jj++) {
            float s = 0.0f;
#pragma unroll
            for (int i = 0; i < KILN_FA_DMAX / 32; i++) {
                int d = lane + 32 * i;
                if (d < D)
                    s += qr[i] * Ks[jj * D + d];
            }
#pragma unroll
            for (int off = 16; off > 0; off >>= 1)
                s += __shfl_xor_sync(0xffffffffu, s, off);
            float mn = fmaxf(m, s);
            float corr = expf(m - mn), p = expf(s - mn);
            l = l * corr + p;
#pragma unroll
            for (int i = 0; i < KILN_FA_DMAX / 32; i++) {
                int d = lane + 32 * i;
                if (d < D)
                    acc[i] = acc[i] * corr + p * Vs[jj * D + d];
            }
            m = mn;
        }
    }
    if (t >= Tq)
        return;
#pragma unroll
    for (int i = 0; i < KILN_FA_DMAX / 32; i++) {
        int d = lane + 32 * i;
        if (d < D)
            out[(size_t)t * ldo + h * D + d] = l > 0.0f ? acc[i] / l : 0.0f;
    }
}

// scores of row i: keys after Tk - Tq + i get -inf
__global__ static void kiln_causal_mask_kernel_(float *s, int Tq, int Tk) {
    const size_t n = (size_t)Tq * Tk;
    for (size_t x = blockIdx.x * (size_t)blockDim.x + threadIdx.x; x < n;
         x += (size_t)gridDim.x * blockDim.x) {
        int i = (int)(x / Tk), j = (int)(x % Tk);
        if (j > Tk - Tq + i)
            s[x] = -INFINITY;
    }
}

extern "C" void kiln_attention_cuda(float *out, int ldo, const float *q, int ldq, const float *k,
                                    int ldk, const float *v, int ldv, int Tq, int Tk, int H, int D,
                                    int causal, float *scratch, cudaStream_t stream) {
    if (Tq <= 0 || Tk <= 0 || H <= 0)
        return;
    const float scale = 1.0f / sqrtf((float)D);
    if (!scratch || (size_t)Tq * Tk < 4096) {
        if (D > KILN_FA_DMAX) {
            fprintf(stderr, "kiln: CUDA flash attention needs a head size <= %d (got %d)\n",
                    KILN_FA_DMAX, D);
            kiln_kernels_set_error_();
            return;
        }
        dim3 grid(kiln_ceil_div(Tq, KILN_FA_WARPS), H);
        size_t smem = sizeof(float) * 2 * KILN_FA_TK * D;
        kiln_flash_kernel_<<<grid, 32 * KILN_FA_WARPS, smem, stream>>>(
            out, ldo, q, ldq, k, ldk, v, ldv, Tq, Tk, D, causal, scale);
        KILN_CUDA_LAUNCH_CHECK();
        return;
    }
    kiln_cuda_ctx_t *ctx = kiln_cuda_ctx();
    const float one = 1.0f, zero = 0.0f;
    KILN_CUBLAS_CHECK(cublasSetStream(ctx->blas, stream));
    for (int h = 0; h < H; h++) {
        // S[Tq, Tk] = scale Q_h K_h^T
        if (KILN_CUBLAS_CHECK(cublasGemmEx(ctx->blas, CUBLAS_OP_T, CUBLAS_OP_N, Tk, Tq, D, &scale,
                                           k + h * D, CUDA_R_32F, ldk, q + h * D, CUDA_R_32F,
                                           ldq, &zero, scratch, CUDA_R_32F, Tk, ctx->compute,
                                           CUBLAS_GEMM_DEFAULT)))
            return;
        if (causal) {
            size_t n = (size_t)Tq * Tk;
            unsigned g = kiln_ceil_div(n, 256);
            kiln_causal_mask_kernel_<<<g > 65535 ? 65535 : g, 256, 0, stream>>>(scratch, Tq, Tk);
            KILN_CUDA_LAUNCH_CHECK();
        }
        kiln_softmax_cuda(scratch, scratch, Tq, Tk, stream);
        // O_h[Tq, D] = S V_h
        if (KILN_CUBLAS_CHECK(cublasGemmEx(ctx->blas, CUBLAS_OP_N, CUBLAS_OP_N, D, Tq, Tk, &one,
                                           v + h * D, CUDA_R_32F, ldv, scratch, CUDA_R_32F, Tk,
                                           &zero, out + h * D, CUDA_R_32F, ldo, ctx->compute,
                                           CUBLAS_GEMM_DEFAULT)))
            return;
    }
}

// ---------------------------------------------------------------------------
// attention_kv

__device__ static float kiln_block_reduce_(float v, float *red, int op_max) {
    red[threadIdx.x] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s)
            red[threadIdx.x] = op_max ? fmaxf(red[threadIdx.x], red[threadIdx.x + s])
                                      : red[threadIdx.x] + red[threadIdx.x + s];
        __syncthreads();
    }
    float r = red[0];
    __syncthreads();
    return r;
}

__global__ static void kiln_attkv_kernel_(float *out, int ldo, const float *q, int ldq,
                                          const float *const *kt, int ldkt,
                                          const float *const *vv, int ldv, const int *Tk, int D,
                                          float scale) {
    extern __shared__ float sm[];
    const int r = blockIdx.x, h = blockIdx.y, T = Tk[r], bd = blockDim.x, tid = threadIdx.x;
    const float *K = kt[r], *V = vv[r];
    float *qs = sm, *sc = sm + D, *red = sc + ldkt;
    for (int i = tid; i < D; i += bd)
        qs[i] = q[(size_t)r * ldq + h * D + i] * scale;
    __syncthreads();
    float mloc = -INFINITY;
    for (int j = tid; j < T; j += bd) {
        float s = 0.0f;
        for (int e = 0; e < D; e++)
            s += qs[e] * K[(size_t)(h * D + e) * ldkt + j];
        sc[j] = s;
        mloc = fmaxf(mloc, s);
    }
    const float m = kiln_block_reduce_(mloc, red, 1);
    float sloc = 0.0f;
    for (int j = tid; j < T; j += bd) {
        float e = expf(sc[j] - m);
        sc[j] = e;
        sloc += e;
    }
    const float l = kiln_block_reduce_(sloc, red, 0);
    // weighted sum of values: G groups of D threads split the keys
    const int G = bd / D, g = tid / D, d = tid % D;
    float acc = 0.0f;
    if (g < G)
        for (int j = g; j < T; j += G)
            acc += sc[j] * V[(size_t)j * ldv + h * D + d];
    red[tid] = acc;
    __syncthreads();
    if (tid < D) {
        float s = 0.0f;
        for (int k = 0; k < G; k++)
            s += red[k * D + tid];
        out[(size_t)r * ldo + h * D + tid] = l > 0.0f ? s / l : 0.0f;
    }
}

extern "C" void kiln_attention_kv_cuda(float *out, int ldo, const float *q, int ldq,
                                       const float *const *kt, int ldkt, const float *const *v,
                                       int ldv, const int *Tk, int S, int H, int D, float *scratch,
                                       cudaStream_t stream) {
    (void)scratch;
    if (S <= 0 || H <= 0)
        return;
    const int bd = D <= 128 ? 128 : 256;
    if (D > bd) {
        fprintf(stderr, "kiln: CUDA attention_kv needs a head size <= 256 (got %d)\n", D);
        kiln_kernels_set_error_();
        return;
    }
    size_t smem = sizeof(float) * ((size_t)D + ldkt + bd);
    if (smem > 48 * 1024) {
        fprintf(stderr, "kiln: CUDA attention_kv: %d keys do not fit in shared memory\n", ldkt);
        kiln_kernels_set_error_();
        return;
    }
    dim3 grid(S, H);
    kiln_attkv_kernel_<<<grid, bd, smem, stream>>>(out, ldo, q, ldq, kt, ldkt, v, ldv, Tk, D,
                                                   1.0f / sqrtf((float)D));
    KILN_CUDA_LAUNCH_CHECK();
}
