/*
 * kiln/kernels.h - the compute ops the models are built from, and the one
 * dispatch point that picks a backend for them.
 *
 * Shape letters, used in every comment below and in kernels/:
 *   B  batch (independent sequences or windows)
 *   T  time (rows of a sequence; Tq query rows, Tk key rows)
 *   C  channels (features of one row); OC output channels
 *   H  attention heads, D head dimension (C = H * D)
 *   K  convolution kernel width
 *   N  number of rows when the op does not care about B and T (N = B * T)
 * All tensors are row-major float32; "[T, C]" means row t starts at t * C.
 *
 * Backends. kernels/cpu/ is the readable reference (plain C, OpenBLAS sgemm
 * for the matrix products) and is always there. kernels/cuda/ holds the GPU
 * versions with the same argument order; they are reached only through a
 * function table that the CUDA object registers with
 * kiln_kernels_register(), so a CPU-only build links no CUDA library.
 * With a CUDA table every pointer argument is a device pointer.
 *
 *   const kiln_kernels_t *kk = kiln_kernels_get(KILN_BACKEND_CPU);
 *   kk->layernorm(out, x, gamma, beta, N, C, 1e-5f);
 *
 * Threading: the CPU ops keep no state; they may be called from any thread.
 * kiln_kernels_set_threads() sets the BLAS thread count process-wide.
 */
#ifndef KILN_KERNELS_H
#define KILN_KERNELS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kiln_backend_e {
    KILN_BACKEND_CPU = 0,
    KILN_BACKEND_CUDA = 1,
    KILN_BACKEND__COUNT
} kiln_backend_t;

typedef enum kiln_op_e {
    KILN_OP_MATMUL = 0,
    KILN_OP_LAYERNORM,
    KILN_OP_GELU,
    KILN_OP_SOFTMAX,
    KILN_OP_ATTENTION,
    KILN_OP_CONV1D,
    KILN_OP_ADD,
    KILN_OP_LOGMEL,
    KILN_OP__COUNT
} kiln_op_t;

/*
 * The function table of one backend. Argument order is the same for every
 * backend; see the kiln_<op>_cpu() declarations below for the contracts.
 */
typedef struct kiln_kernels_s {
    const char *name;
    void (*matmul)(float *out, const float *inp, const float *weight, const float *bias,
                   int N, int C, int OC);
    void (*layernorm)(float *out, const float *inp, const float *weight, const float *bias,
                      int N, int C, float eps);
    void (*gelu)(float *out, const float *inp, size_t n);
    void (*softmax)(float *out, const float *inp, int N, int C);
    void (*attention)(float *out, int ldo, const float *q, int ldq, const float *k, int ldk,
                      const float *v, int ldv, int Tq, int Tk, int H, int D, int causal,
                      float *scratch);
    void (*conv1d)(float *out, const float *inp, const float *weight, const float *bias,
                   int Tin, int C, int OC, int K, int stride, int pad, float *scratch);
    void (*add)(float *out, const float *a, const float *b, size_t n);
    void (*logmel)(float *out, const float *frames_power, const float *filters, int T,
                   int n_freq, int n_mels);
} kiln_kernels_t;

/* ---- CPU reference ops (kernels/cpu/) --------------------------------- */

/**
 * out[N, OC] = inp[N, C] @ weight[OC, C]^T + bias[OC] (bias optional, NULL).
 * \p out must not alias \p inp.
 */
void kiln_matmul_cpu(float *out, const float *inp, const float *weight, const float *bias,
                     int N, int C, int OC);

/** Row-wise layer normalisation of inp[N, C] with weight/bias [C]. In place is fine. */
void kiln_layernorm_cpu(float *out, const float *inp, const float *weight, const float *bias,
                        int N, int C, float eps);

/** Exact (erf) GELU of n values: x * 0.5 * (1 + erf(x / sqrt(2))). In place is fine. */
void kiln_gelu_cpu(float *out, const float *inp, size_t n);

/** Row-wise softmax of inp[N, C] (rows of -INFINITY give zeros). In place is fine. */
void kiln_softmax_cpu(float *out, const float *inp, int N, int C);

/**
 * Multi-head scaled dot-product attention for one sequence:
 *   out[t, h*D:(h+1)*D] = softmax(q_h[t] . k_h^T / sqrt(D)) @ v_h
 * q is [Tq, ldq], k is [Tk, ldk], v is [Tk, ldv], out is [Tq, ldo]; head h
 * uses columns h*D .. h*D+D-1 of each (so a fused QKV buffer can be passed
 * with three offsets and one stride). With \p causal, query row t (the
 * (Tk-Tq+t)-th position) sees keys 0 .. Tk-Tq+t only.
 * \p scratch holds at least Tq * Tk floats.
 */
void kiln_attention_cpu(float *out, int ldo, const float *q, int ldq, const float *k, int ldk,
                        const float *v, int ldv, int Tq, int Tk, int H, int D, int causal,
                        float *scratch);

/**
 * 1-D convolution over time, time-major: inp [Tin, C], weight [OC, C, K]
 * (PyTorch Conv1d layout), bias [OC] (optional), zero padding \p pad on both
 * sides. out is [Tout, OC] with Tout = (Tin + 2*pad - K) / stride + 1.
 * \p scratch holds at least Tout * C * K floats (the im2col matrix).
 */
void kiln_conv1d_cpu(float *out, const float *inp, const float *weight, const float *bias,
                     int Tin, int C, int OC, int K, int stride, int pad, float *scratch);

/** out[i] = a[i] + b[i] for n values. out may alias a or b. */
void kiln_add_cpu(float *out, const float *a, const float *b, size_t n);

/**
 * Mel projection and log compression of a power spectrogram, without the
 * global clamp: out[m, t] = log10(max(sum_f filters[m, f] * power[t, f], 1e-10)).
 * power is [T, n_freq], filters [n_mels, n_freq], out [n_mels, T].
 * (Whisper's max-8 clamp and (x+4)/4 scaling need the global maximum and
 * are applied by the caller; see models/whisper/mel.c.)
 */
void kiln_logmel_cpu(float *out, const float *frames_power, const float *filters, int T,
                     int n_freq, int n_mels);

/* ---- dispatch (kernels/dispatch.c) ------------------------------------- */

/** @returns the function table of \p be, or NULL when that backend is not registered. */
const kiln_kernels_t *kiln_kernels_get(kiln_backend_t be);

/** Registers the table of a non-CPU backend (called by the CUDA object at start-up). */
void kiln_kernels_register(kiln_backend_t be, const kiln_kernels_t *table);

/** @returns 1 if backend \p be is registered and implements \p op. */
int kiln_kernel_supported(kiln_backend_t be, kiln_op_t op);

/** @returns "cpu" / "cuda" / "?". */
const char *kiln_backend_name(kiln_backend_t be);

/** Sets the number of BLAS threads (n <= 0: leave the library default). */
void kiln_kernels_set_threads(int n);

/** @returns the normalised mean squared error sum((a-b)^2) / sum(b^2) (0 when both are 0). */
double kiln_nmse(const float *a, const float *ref, size_t n);

#ifdef __cplusplus
}
#endif
#endif
