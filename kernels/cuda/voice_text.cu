// kernels/cuda/voice_text.cu - the ops of a VITS voice's text side on the
// GPU (rel_attention, dwconv, spline_inv, expand): the contracts of
// kernels/cpu/ragged.c, CPU argument order plus a stream, every pointer a
// device pointer (the offset and index arrays too). Checked against the
// CPU by tests/0110-kernels_cuda.c.
//
//   rel_attention  one block per (row, head), 128 threads: the row's keys
//                  in chunks of KILN_RA_CHUNK scores in shared memory,
//                  softmax online across chunks (one chunk for sentences up
//                  to 4096 ids), output accumulated per head dimension
//   dwconv         one thread per (row, channel); the row's sequence by
//                  binary search over the offsets (kiln_cuda_ragged_seq)
//   spline_inv     one thread per row: the CPU's scalar code, in fp32
//   expand         one thread per (frame, channel)
#include <cuda_runtime.h>
#include <math.h>
#include <stddef.h>

#include "kernels/cuda/common.cuh"

#define KILN_RA_THREADS 128
#define KILN_RA_CHUNK 4096
#define KILN_VT_BLOCK 256
#define KILN_VT_MAX_BINS 32

// block-wide max / sum of v over KILN_RA_THREADS threads (red: 32 floats)
__device__ static float kiln_vt_block_max_(float v, float *red) {
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    if ((threadIdx.x & 31) == 0)
        red[threadIdx.x >> 5] = v;
    __syncthreads();
    float r = red[0];
    for (int w = 1; w < KILN_RA_THREADS / 32; w++)
        r = fmaxf(r, red[w]);
    __syncthreads();
    return r;
}

__device__ static float kiln_vt_block_sum_(float v, float *red) {
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    if ((threadIdx.x & 31) == 0)
        red[threadIdx.x >> 5] = v;
    __syncthreads();
    float r = 0.0f;
    for (int w = 0; w < KILN_RA_THREADS / 32; w++)
        r += red[w];
    __syncthreads();
    return r;
}

// grid (N, H); dynamic shared memory: D floats of q + KILN_RA_CHUNK scores
__global__ static void kiln_rel_attention_kernel_(float *out, const float *qkv,
                                                  const float *rel_k, const float *rel_v,
                                                  const int *off, int B, int H, int D, int W) {
    extern __shared__ float sh[];
    __shared__ float red[32];
    float *q = sh, *s = sh + D;
    const int i = blockIdx.x, h = blockIdx.y, C = H * D, ld = 3 * C;
    const int b = kiln_cuda_ragged_seq(off, B, i), o0 = off[b], T = off[b + 1] - o0, il = i - o0;
    const float scale = 1.0f / sqrtf((float)D);
    for (int d = threadIdx.x; d < D; d += blockDim.x)
        q[d] = qkv[(size_t)i * ld + h * D + d] * scale;
    __syncthreads();
    float m = -INFINITY, l = 0.0f;
    float acc = 0.0f; // out[d] for d = threadIdx.x (D <= KILN_RA_THREADS), else loop below
    float acc2[3] = {0.0f, 0.0f, 0.0f}; // d = threadIdx.x + 128 * (1..3), D <= 512
    for (int c0 = 0; c0 < T; c0 += KILN_RA_CHUNK) {
        const int n = T - c0 < KILN_RA_CHUNK ? T - c0 : KILN_RA_CHUNK;
        float cmax = -INFINITY;
        for (int jj = threadIdx.x; jj < n; jj += blockDim.x) {
            const int j = c0 + jj;
            const float *kj = qkv + (size_t)(o0 + j) * ld + C + h * D;
            float a = 0.0f;
            for (int d = 0; d < D; d++)
                a += q[d] * kj[d];
            if (j - il >= -W && j - il <= W) {
                const float *ek = rel_k + (size_t)(j - il + W) * D;
                float a2 = 0.0f;
                for (int d = 0; d < D; d++)
                    a2 += q[d] * ek[d];
                a += a2;
            }
            s[jj] = a;
            cmax = fmaxf(cmax, a);
        }
        cmax = kiln_vt_block_max_(cmax, red);
        const float mn = fmaxf(m, cmax), sc = expf(m - mn);
        float csum = 0.0f;
        for (int jj = threadIdx.x; jj < n; jj += blockDim.x) {
            s[jj] = expf(s[jj] - mn);
            csum += s[jj];
        }
        csum = kiln_vt_block_sum_(csum, red); // its barrier also publishes s[]
        l = l * sc + csum;
        for (int k = 0; k < 4; k++) {
            const int d = threadIdx.x + k * KILN_RA_THREADS;
            if (d >= D)
                break;
            float a = 0.0f;
            for (int jj = 0; jj < n; jj++) {
                const int j = c0 + jj;
                float v = qkv[(size_t)(o0 + j) * ld + 2 * C + h * D + d];
                a += s[jj] * v;
                if (j - il >= -W && j - il <= W)
                    a += s[jj] * rel_v[(size_t)(j - il + W) * D + d];
            }
            if (k == 0)
                acc = acc * sc + a;
            else
                acc2[k - 1] = acc2[k - 1] * sc + a;
        }
        m = mn;
        __syncthreads(); // s[] is rewritten by the next chunk
    }
    const float inv = 1.0f / l;
    for (int k = 0; k < 4; k++) {
        const int d = threadIdx.x + k * KILN_RA_THREADS;
        if (d >= D)
            break;
        out[(size_t)i * C + h * D + d] = (k == 0 ? acc : acc2[k - 1]) * inv;
    }
}

__global__ static void kiln_dwconv_kernel_(float *out, const float *inp, const float *w,
                                           const float *bias, const int *off, int B, int N,
                                           int C, int K, int dil) {
    const size_t n = (size_t)N * C;
    const int pad = dil * (K - 1) / 2;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n;
         e += (size_t)gridDim.x * blockDim.x) {
        const int r = (int)(e / C), c = (int)(e % C), q = kiln_cuda_ragged_seq(off, B, r);
        float a = bias ? bias[c] : 0.0f;
        for (int k = 0; k < K; k++) {
            const int src = r + k * dil - pad;
            if (src >= off[q] && src < off[q + 1])
                a += w[c * K + k] * inp[(size_t)src * C + c];
        }
        out[e] = a;
    }
}

// kiln_rq_spline_inverse() of kernels/cpu/ragged.c, line for line
__device__ static float kiln_vt_spline_inv_(float x, const float *uw, const float *uh,
                                            const float *ud, int bins, float B) {
    const float min_w = 1e-3f, min_h = 1e-3f, min_d = 1e-3f;
    if (x < -B || x > B || bins > KILN_VT_MAX_BINS)
        return x;
    float cw[KILN_VT_MAX_BINS + 1], ch[KILN_VT_MAX_BINS + 1];
    float w[KILN_VT_MAX_BINS], h[KILN_VT_MAX_BINS];
    for (int a = 0; a < 2; a++) {
        const float *u = a ? uh : uw, mins = a ? min_h : min_w;
        float *cum = a ? ch : cw, *sz = a ? h : w;
        float mx = -INFINITY, sum = 0.0f;
        for (int i = 0; i < bins; i++)
            mx = u[i] > mx ? u[i] : mx;
        for (int i = 0; i < bins; i++)
            sum += expf(u[i] - mx);
        float acc = 0.0f;
        cum[0] = -B;
        for (int i = 0; i < bins; i++) {
            acc += mins + (1.0f - mins * bins) * (expf(u[i] - mx) / sum);
            cum[i + 1] = 2.0f * B * acc - B;
        }
        cum[bins] = B;
        for (int i = 0; i < bins; i++)
            sz[i] = cum[i + 1] - cum[i];
    }
    const float cst = logf(expf(1.0f - min_d) - 1.0f);
    int idx = -1;
    for (int i = 0; i <= bins; i++)
        idx += x >= ch[i] + (i == bins ? 1e-6f : 0.0f);
    idx = idx < 0 ? 0 : idx > bins - 1 ? bins - 1 : idx;
    const float v0 = idx == 0 ? cst : ud[idx - 1], v1 = idx + 1 == bins ? cst : ud[idx];
    const float d0 = min_d + (v0 > 20.0f ? v0 : log1pf(expf(v0)));
    const float d1 = min_d + (v1 > 20.0f ? v1 : log1pf(expf(v1)));
    const float in_cw = cw[idx], in_w = w[idx], in_ch = ch[idx], in_h = h[idx];
    const float delta = in_h / in_w;
    const float y = x - in_ch;
    const float a = y * (d0 + d1 - 2.0f * delta) + in_h * (delta - d0);
    const float bq = in_h * d0 - y * (d0 + d1 - 2.0f * delta);
    const float c = -delta * y;
    const float disc = bq * bq - 4.0f * a * c;
    const float root = (2.0f * c) / (-bq - sqrtf(disc));
    return root * in_w + in_cw;
}

__global__ static void kiln_spline_inv_kernel_(float *x, const float *p, int ldp, int N,
                                               int bins, float tail, float scale) {
    const int n = blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= N || bins > KILN_VT_MAX_BINS)
        return;
    float u[2 * KILN_VT_MAX_BINS];
    const float *pr = p + (size_t)n * ldp;
    for (int i = 0; i < 2 * bins; i++)
        u[i] = pr[i] * scale;
    x[n] = kiln_vt_spline_inv_(x[n], u, u + bins, pr + 2 * bins, bins, tail);
}

__global__ static void kiln_expand_kernel_(float *out, const float *stats, const int *idx,
                                           const float *noise, int N, int C, float scale) {
    const size_t n = (size_t)N * C;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n;
         e += (size_t)gridDim.x * blockDim.x) {
        const int f = (int)(e / C), c = (int)(e % C);
        const float *m = stats + (size_t)idx[f] * 2 * C;
        out[e] = m[c] + noise[e] * expf(m[C + c]) * scale;
    }
}

static unsigned kiln_vt_grid_(size_t n) {
    size_t g = (n + KILN_VT_BLOCK - 1) / KILN_VT_BLOCK;
    return (unsigned)(g < 65535 ? (g ? g : 1) : 65535);
}

extern "C" void kiln_rel_attention_cuda(float *out, const float *qkv, const float *rel_k,
                                        const float *rel_v, const int *off, int B, int N, int H,
                                        int D, int W, cudaStream_t stream) {
    if (N <= 0 || H <= 0 || D > 4 * KILN_RA_THREADS) { // (the CPU does nothing for H 0)
        if (D > 4 * KILN_RA_THREADS)
            kiln_kernels_set_error_();
        return;
    }
    size_t shm = ((size_t)D + KILN_RA_CHUNK) * sizeof(float);
    kiln_rel_attention_kernel_<<<dim3((unsigned)N, (unsigned)H), KILN_RA_THREADS, shm, stream>>>(
        out, qkv, rel_k, rel_v, off, B, H, D, W);
    KILN_CUDA_LAUNCH_CHECK();
}

extern "C" void kiln_dwconv_cuda(float *out, const float *inp, const float *w, const float *b,
                                 const int *off, int B, int N, int C, int K, int dil,
                                 cudaStream_t stream) {
    if (N <= 0)
        return;
    kiln_dwconv_kernel_<<<kiln_vt_grid_((size_t)N * C), KILN_VT_BLOCK, 0, stream>>>(
        out, inp, w, b, off, B, N, C, K, dil);
    KILN_CUDA_LAUNCH_CHECK();
}

extern "C" void kiln_spline_inv_cuda(float *x, const float *p, int ldp, int N, int bins,
                                     float tail, float scale, cudaStream_t stream) {
    if (N <= 0)
        return;
    kiln_spline_inv_kernel_<<<kiln_ceil_div((size_t)N, 128), 128, 0, stream>>>(x, p, ldp, N, bins,
                                                                              tail, scale);
    KILN_CUDA_LAUNCH_CHECK();
}

extern "C" void kiln_expand_cuda(float *out, const float *stats, const int *idx,
                                 const float *noise, int N, int C, float scale,
                                 cudaStream_t stream) {
    if (N <= 0)
        return;
    kiln_expand_kernel_<<<kiln_vt_grid_((size_t)N * C), KILN_VT_BLOCK, 0, stream>>>(
        out, stats, idx, noise, N, C, scale);
    KILN_CUDA_LAUNCH_CHECK();
}
