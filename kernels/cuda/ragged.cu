// kernels/cuda/ragged.cu - the ragged-batch ops of a speech decoder on the
// GPU (im2col, col2im, act, gate, axpby): the contracts of
// kernels/cpu/ragged.c (see include/kiln/kernels.h, "Ragged batches"), CPU
// argument order plus a stream, every pointer a device pointer (the offset
// arrays too). Registered by kernels/cuda/register.cu; checked against the
// CPU reference by tests/0110-kernels_cuda.c.
//
// Launch shapes (256 threads a block):
//   im2col, col2im, gate: one thread per output element (a float4 of 4
//       channels when the channel count is a multiple of 4 and the pointers
//       are 16-byte aligned, else one float). Block i covers the contiguous
//       output elements [i * 2048, (i + 1) * 2048) (in those units), its
//       threads striding by 256, so reads and writes are coalesced along
//       the channels and row/column indices stay 32-bit. A thread finds the
//       sequence of its row by binary search over the offsets and keeps it
//       for its next elements (2048 elements span a few rows at most, so
//       one search serves them all).
//   act, axpby: grid-stride loops over float4s (when aligned), then the
//       scalar tail.
//
// Parity with the CPU: im2col, the leaky ReLU and col2im do the CPU's float
// operations in its order (col2im sums the taps in increasing k, from the
// bias), so they are bit-exact; axpby is too, as its products and sum are
// rounded one by one (__fmul_rn/__fadd_rn: no FMA contraction, as the x86
// reference has none). tanh and the gate use tanhf/expf and an IEEE
// division (no fast-math intrinsics): within 2 ulp of glibc.
#include <cuda_runtime.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/cuda/common.cuh"

#define KILN_RG_BLOCK 256
#define KILN_RG_ITEMS 8 // elements per thread of the block-chunked kernels
#define KILN_RG_CHUNK (KILN_RG_BLOCK * KILN_RG_ITEMS)

// ----------------------------------------------------------------------------
// float and float4 helpers (the kernels are templates over the element type)

__device__ static inline float kiln_rg_leaky_(float x, float s) { return x < 0.0f ? s * x : x; }
__device__ static inline float4 kiln_rg_leaky_(float4 v, float s) {
    return make_float4(kiln_rg_leaky_(v.x, s), kiln_rg_leaky_(v.y, s), kiln_rg_leaky_(v.z, s),
                       kiln_rg_leaky_(v.w, s));
}
__device__ static inline void kiln_rg_zero_(float &v) { v = 0.0f; }
__device__ static inline void kiln_rg_zero_(float4 &v) { v = make_float4(0.0f, 0.0f, 0.0f, 0.0f); }
__device__ static inline void kiln_rg_acc_(float &a, float v) { a += v; }
__device__ static inline void kiln_rg_acc_(float4 &a, float4 v) {
    a.x += v.x;
    a.y += v.y;
    a.z += v.z;
    a.w += v.w;
}
__device__ static inline float kiln_rg_gate_(float a, float g) {
    return tanhf(a) * (1.0f / (1.0f + expf(-g)));
}
__device__ static inline float4 kiln_rg_gate_(float4 a, float4 g) {
    return make_float4(kiln_rg_gate_(a.x, g.x), kiln_rg_gate_(a.y, g.y), kiln_rg_gate_(a.z, g.z),
                       kiln_rg_gate_(a.w, g.w));
}

// ----------------------------------------------------------------------------
// kernels. A block-chunked kernel walks the elements [e0, e0 + KILN_RG_CHUNK)
// of an [rows, W] output (W in elements of T): its first element's row and
// column come from one 64-bit division; the rest are 32-bit.

template <typename T>
__global__ static void kiln_im2col_kernel_(T *out, const T *inp, const int *off, int B, int r0,
                                           int nr, int Cv, int K, int dil, int pad, float slope) {
    const unsigned W = (unsigned)K * Cv;
    const size_t n = (size_t)nr * W, e0 = (size_t)blockIdx.x * KILN_RG_CHUNK;
    const int i0 = (int)(e0 / W);
    const unsigned c0 = (unsigned)(e0 - (size_t)i0 * W);
    int lo = 0, hi = -1; // the sequence of the last row, [lo, hi)
    for (unsigned l = threadIdx.x; l < KILN_RG_CHUNK && e0 + l < n; l += blockDim.x) {
        unsigned t = c0 + l, di = t / W, col = t - di * W, k = col / Cv, c = col - k * Cv;
        int r = r0 + i0 + (int)di;
        if (r < lo || r >= hi) {
            int b = kiln_cuda_ragged_seq(off, B, r);
            lo = __ldg(off + b);
            hi = __ldg(off + b + 1);
        }
        int src = r + (int)k * dil - pad;
        T v;
        if (src >= lo && src < hi)
            v = kiln_rg_leaky_(inp[(size_t)src * Cv + c], slope);
        else
            kiln_rg_zero_(v);
        out[e0 + l] = v;
    }
}

template <typename T>
__global__ static void kiln_col2im_kernel_(T *out, const T *y, const T *bias, const int *in_off,
                                           const int *out_off, int B, int n_out, int OCv, int K,
                                           int stride, int pad) {
    const size_t n = (size_t)n_out * OCv, e0 = (size_t)blockIdx.x * KILN_RG_CHUNK;
    const int o0 = (int)(e0 / (unsigned)OCv);
    const unsigned c0 = (unsigned)(e0 - (size_t)o0 * OCv);
    int lo = 0, hi = -1, in0 = 0, Tb = 0; // the last row's sequence: rows, first input, length
    for (unsigned l = threadIdx.x; l < KILN_RG_CHUNK && e0 + l < n; l += blockDim.x) {
        unsigned t = c0 + l, d = t / (unsigned)OCv, c = t - d * (unsigned)OCv;
        int o = o0 + (int)d;
        if (o < lo || o >= hi) {
            int b = kiln_cuda_ragged_seq(out_off, B, o);
            lo = __ldg(out_off + b);
            hi = __ldg(out_off + b + 1);
            in0 = __ldg(in_off + b);
            Tb = __ldg(in_off + b + 1) - in0;
        }
        // the taps k with u + pad - k = ti * stride, 0 <= ti < Tb, in increasing k
        int num = o - lo + pad;
        T acc;
        if (bias)
            acc = bias[c];
        else
            kiln_rg_zero_(acc);
        if (num >= 0)
            for (int k = num % stride; k < K && k <= num; k += stride) {
                int ti = (num - k) / stride;
                if (ti < Tb)
                    kiln_rg_acc_(acc, y[((size_t)(in0 + ti) * K + k) * OCv + c]);
            }
        out[e0 + l] = acc;
    }
}

template <typename T>
__global__ static void kiln_gate_kernel_(T *out, const T *inp, int N, int Cv) {
    const size_t n = (size_t)N * Cv, e0 = (size_t)blockIdx.x * KILN_RG_CHUNK;
    const int n0 = (int)(e0 / (unsigned)Cv);
    const unsigned c0 = (unsigned)(e0 - (size_t)n0 * Cv);
    for (unsigned l = threadIdx.x; l < KILN_RG_CHUNK && e0 + l < n; l += blockDim.x) {
        unsigned t = c0 + l, d = t / (unsigned)Cv, c = t - d * (unsigned)Cv;
        const T *a = inp + (size_t)(n0 + (int)d) * 2 * Cv + c;
        out[e0 + l] = kiln_rg_gate_(a[0], a[Cv]);
    }
}

struct kiln_rg_leaky_op_ {
    float s;
    __device__ float operator()(float x) const { return kiln_rg_leaky_(x, s); }
};
struct kiln_rg_tanh_op_ {
    __device__ float operator()(float x) const { return tanhf(x); }
};

// out[i] = op(inp[i]): float4s [0, n4), then the floats [4 * n4, n)
template <typename Op>
__global__ static void kiln_map_kernel_(float *out, const float *inp, size_t n, size_t n4, Op op) {
    const size_t step = (size_t)gridDim.x * blockDim.x;
    const size_t first = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    for (size_t i = first; i < n4; i += step) {
        float4 v = reinterpret_cast<const float4 *>(inp)[i];
        reinterpret_cast<float4 *>(out)[i] = make_float4(op(v.x), op(v.y), op(v.z), op(v.w));
    }
    for (size_t i = 4 * n4 + first; i < n; i += step)
        out[i] = op(inp[i]);
}

__device__ static inline float kiln_rg_axpby_(float a, float x, float b, float y) {
    return __fadd_rn(__fmul_rn(a, x), __fmul_rn(b, y));
}

__global__ static void kiln_axpby_kernel_(float *out, float a, const float *x, float b,
                                          const float *y, size_t n, size_t n4) {
    const size_t step = (size_t)gridDim.x * blockDim.x;
    const size_t first = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    for (size_t i = first; i < n4; i += step) {
        float4 u = reinterpret_cast<const float4 *>(x)[i];
        float4 v = reinterpret_cast<const float4 *>(y)[i];
        reinterpret_cast<float4 *>(out)[i] =
            make_float4(kiln_rg_axpby_(a, u.x, b, v.x), kiln_rg_axpby_(a, u.y, b, v.y),
                        kiln_rg_axpby_(a, u.z, b, v.z), kiln_rg_axpby_(a, u.w, b, v.w));
    }
    for (size_t i = 4 * n4 + first; i < n; i += step)
        out[i] = kiln_rg_axpby_(a, x[i], b, y[i]);
}

// ----------------------------------------------------------------------------
// launchers (C linkage, CPU argument order + stream)

// 1 when every pointer is 16-byte aligned (NULL counts as aligned) and \p w,
// the row width in floats, is a multiple of 4: the float4 path
static int kiln_rg_vec4_(int w, const void *p, const void *q, const void *r) {
    return w % 4 == 0 && (((uintptr_t)p | (uintptr_t)q | (uintptr_t)r) & 15) == 0;
}

static unsigned kiln_rg_chunks_(size_t n) { return kiln_ceil_div(n, KILN_RG_CHUNK); }

static unsigned kiln_rg_grid_(size_t n) {
    size_t g = (n + KILN_RG_BLOCK - 1) / KILN_RG_BLOCK;
    return (unsigned)(g > 65535 ? 65535 : (g ? g : 1));
}

extern "C" {

void kiln_im2col_cuda(float *out, const float *inp, const int *off, int B, int r0, int nr, int C,
                      int K, int dil, float slope, cudaStream_t stream) {
    if (nr <= 0 || C <= 0 || K <= 0 || B <= 0)
        return;
    int pad = dil * (K - 1) / 2;
    if (kiln_rg_vec4_(C, out, inp, NULL)) {
        size_t n = (size_t)nr * K * (C / 4);
        kiln_im2col_kernel_<float4><<<kiln_rg_chunks_(n), KILN_RG_BLOCK, 0, stream>>>(
            (float4 *)out, (const float4 *)inp, off, B, r0, nr, C / 4, K, dil, pad, slope);
    } else {
        size_t n = (size_t)nr * K * C;
        kiln_im2col_kernel_<float><<<kiln_rg_chunks_(n), KILN_RG_BLOCK, 0, stream>>>(
            out, inp, off, B, r0, nr, C, K, dil, pad, slope);
    }
    KILN_CUDA_LAUNCH_CHECK();
}

void kiln_col2im_cuda(float *out, const float *y, const float *bias, const int *in_off,
                      const int *out_off, int B, int n_out, int OC, int K, int stride, int pad,
                      cudaStream_t stream) {
    if (n_out <= 0 || OC <= 0 || B <= 0)
        return;
    if (kiln_rg_vec4_(OC, out, y, bias)) {
        size_t n = (size_t)n_out * (OC / 4);
        kiln_col2im_kernel_<float4><<<kiln_rg_chunks_(n), KILN_RG_BLOCK, 0, stream>>>(
            (float4 *)out, (const float4 *)y, (const float4 *)bias, in_off, out_off, B, n_out,
            OC / 4, K, stride, pad);
    } else {
        size_t n = (size_t)n_out * OC;
        kiln_col2im_kernel_<float><<<kiln_rg_chunks_(n), KILN_RG_BLOCK, 0, stream>>>(
            out, y, bias, in_off, out_off, B, n_out, OC, K, stride, pad);
    }
    KILN_CUDA_LAUNCH_CHECK();
}

void kiln_act_cuda(float *out, const float *inp, size_t n, int kind, float param,
                   cudaStream_t stream) {
    if (n == 0)
        return;
    size_t n4 = kiln_rg_vec4_(0, out, inp, NULL) ? n / 4 : 0;
    unsigned grid = kiln_rg_grid_(n4 ? n4 : n);
    if (kind == KILN_ACT_TANH)
        kiln_map_kernel_<<<grid, KILN_RG_BLOCK, 0, stream>>>(out, inp, n, n4, kiln_rg_tanh_op_());
    else
        kiln_map_kernel_<<<grid, KILN_RG_BLOCK, 0, stream>>>(out, inp, n, n4,
                                                             kiln_rg_leaky_op_{param});
    KILN_CUDA_LAUNCH_CHECK();
}

void kiln_gate_cuda(float *out, const float *inp, int N, int C, cudaStream_t stream) {
    if (N <= 0 || C <= 0)
        return;
    if (kiln_rg_vec4_(C, out, inp, NULL)) {
        size_t n = (size_t)N * (C / 4);
        kiln_gate_kernel_<float4><<<kiln_rg_chunks_(n), KILN_RG_BLOCK, 0, stream>>>(
            (float4 *)out, (const float4 *)inp, N, C / 4);
    } else {
        size_t n = (size_t)N * C;
        kiln_gate_kernel_<float><<<kiln_rg_chunks_(n), KILN_RG_BLOCK, 0, stream>>>(out, inp, N,
                                                                                   C);
    }
    KILN_CUDA_LAUNCH_CHECK();
}

void kiln_axpby_cuda(float *out, float a, const float *x, float b, const float *y, size_t n,
                     cudaStream_t stream) {
    if (n == 0)
        return;
    size_t n4 = kiln_rg_vec4_(0, out, x, y) ? n / 4 : 0;
    kiln_axpby_kernel_<<<kiln_rg_grid_(n4 ? n4 : n), KILN_RG_BLOCK, 0, stream>>>(out, a, x, b, y,
                                                                                n, n4);
    KILN_CUDA_LAUNCH_CHECK();
}

} // extern "C"
