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
 * Backends, each a function table with the same argument order:
 *   KILN_BACKEND_REF   kernels/cpu/<op>.c, the readable reference and the
 *                      spec (plain C, one thread, OpenBLAS sgemm for the
 *                      matrix products); kiln_<op>_cpu().
 *   KILN_BACKEND_CPU   kernels/cpu/fast_*.c, what the models run on a CPU:
 *                      the same ops split over a thread pool, written on
 *                      GCC vector extensions (kernels/cpu/vec.h); checked
 *                      against the reference in tests/0100-kernels.c.
 *   KILN_BACKEND_CUDA  kernels/cuda/, registered at start-up by the CUDA
 *                      object through kiln_kernels_register(), so that a
 *                      CPU-only build links no CUDA library. With a CUDA
 *                      table every pointer argument is a device pointer.
 *
 *   const kiln_kernels_t *kk = kiln_kernels_get(KILN_BACKEND_CPU);
 *   kk->layernorm(out, x, gamma, beta, N, C, 1e-5f);
 *
 * Threading: the ops keep no state and may be called from any thread. The
 * CPU backend runs each op on the process-wide pool of kernels/cpu/pool.c
 * (kiln_kernels_set_threads() sizes it; one op runs on it at a time, a
 * concurrent caller runs its op on its own thread). OpenBLAS itself is set
 * to one thread once the pool starts.
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
    KILN_BACKEND_REF = 2,
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
    KILN_OP_ATTENTION_KV,
    KILN_OP_MATMUL_PACKED,
    KILN_OP_POWER_SPECTRUM,
    KILN_OP_EMBED,
    KILN_OP_KV_APPEND,
    KILN_OP_GATHER_ROWS,
    KILN_OP_ADD_ROWBIAS,
    KILN_OP_COPY2D,
    KILN_OP_TRANSPOSE,
    KILN_OP_IM2COL,
    KILN_OP_COL2IM,
    KILN_OP_ACT,
    KILN_OP_GATE,
    KILN_OP_AXPBY,
    KILN_OP_REL_ATTENTION,
    KILN_OP_DWCONV,
    KILN_OP_SPLINE_INV,
    KILN_OP_EXPAND,
    KILN_OP__COUNT
} kiln_op_t;

/* activations of the act op */
typedef enum kiln_act_e {
    KILN_ACT_LEAKY = 0, /* x < 0 ? param * x : x (leaky ReLU of slope param) */
    KILN_ACT_TANH = 1   /* tanh(x) (param unused) */
} kiln_act_t;

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
    void (*attention_kv)(float *out, int ldo, const float *q, int ldq, const float *const *kt,
                         int ldkt, const float *const *v, int ldv, const int *Tk, int S, int H,
                         int D, float *scratch);
    void (*matmul_packed)(float *out, const float *inp, const float *wp, const float *bias,
                          int N, int C, int OC);
    void (*power_spectrum)(float *power, const float *frames, int T, int n_fft);
    /* data movement of a decoder step (kernels/cpu/copy.c), so that a model
     * keeps every tensor in the backend's memory; int and pointer arrays are
     * the backend's memory too */
    void (*embed)(float *out, const float *tok_emb, const float *pos_emb, const int *tok,
                  const int *pos, int N, int C);
    void (*kv_append)(float *const *kt, int ldkt, float *const *v, int ldv, const float *k,
                      const float *val, int ldx, const int *pos, int N, int C);
    void (*gather_rows)(float *out, const float *inp, const int *idx, int N, int C);
    void (*add_rowbias)(float *x, const float *bias, int N, int T);
    void (*copy2d)(float *dst, size_t ldd, const float *src, size_t lds, int rows, int cols);
    void (*transpose)(float *out, const float *inp, int R, int C);
    /* ragged batches of sequences (a speech decoder's convolutions, built
     * as im2col + matmul; kernels/cpu/ragged.c); the offset arrays are the
     * backend's memory */
    void (*im2col)(float *out, const float *inp, const int *off, int B, int r0, int nr, int C,
                   int K, int dil, float slope);
    void (*col2im)(float *out, const float *y, const float *bias, const int *in_off,
                   const int *out_off, int B, int n_out, int OC, int K, int stride, int pad);
    void (*act)(float *out, const float *inp, size_t n, int kind, float param);
    void (*gate)(float *out, const float *inp, int N, int C);
    void (*axpby)(float *out, float a, const float *x, float b, const float *y, size_t n);
    void (*rel_attention)(float *out, const float *qkv, const float *rel_k, const float *rel_v,
                          const int *off, int B, int N, int H, int D, int W);
    void (*dwconv)(float *out, const float *inp, const float *w, const float *b, const int *off,
                   int B, int N, int C, int K, int dil);
    void (*spline_inv)(float *x, const float *p, int ldp, int N, int bins, float tail,
                       float scale);
    void (*expand)(float *out, const float *stats, const int *idx, const float *noise, int N,
                   int C, float scale);
    /* memory of the backend (device memory for CUDA; malloc for the CPU) */
    void *(*alloc)(size_t bytes);            /* NULL when out of memory */
    void (*free)(void *p);                   /* NULL is fine */
    void (*upload)(void *dst, const void *host_src, size_t bytes);
    void (*download)(void *host_dst, const void *src, size_t bytes);
    void (*sync)(void);                      /* waits for every queued op */
    /* matmul/conv precision: "fp32" (default), "tf32", "fp16" or "bf16" (inputs
     * rounded, fp32 accumulate); NULL for backends that only have fp32.
     * @returns 0, or -1 for a mode the backend does not know. */
    int (*set_precision)(const char *mode);
    /* 1 when a model may hand host buffers to the ops directly and skip the
     * copies (the "cpu" table); 0 for CUDA, and for "ref", whose memory is
     * the host's too but which a model treats as a device (so the device
     * path runs, and is tested, without a GPU) */
    int host_memory;
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

/**
 * Attention of S single query rows, each to its own keys (a decoder step:
 * row s looks at its sequence's self-attention cache, or at its window's
 * encoder output). For row s and head h:
 *   out[s, h*D + d] = sum_j p_j v[s][j*ldv + h*D + d],
 *   p = softmax_j(sum_e q[s*ldq + h*D + e] * kt[s][(h*D + e)*ldkt + j] / sqrt(D))
 * for j < Tk[s]. Keys are stored transposed (K^T, [H*D, ldkt]: one row per
 * feature, one column per key) so that a step appends a column and the
 * scores of 16 keys are one vector; values are rows [Tk, ldv].
 * Consecutive rows with the same kt, v and Tk (the beams of one window)
 * share the reads of their keys. \p scratch holds at least S * max(Tk)
 * floats (the reference uses it; the fast backend has its own per thread).
 */
void kiln_attention_kv_cpu(float *out, int ldo, const float *q, int ldq,
                           const float *const *kt, int ldkt, const float *const *v, int ldv,
                           const int *Tk, int S, int H, int D, float *scratch);

/**
 * Power spectrum of T frames that are already windowed: frames [T, n_fft]
 * -> power [T, n_fft/2 + 1], |rfft(frame)|^2 (FFTW on the CPU, cuFFT on
 * CUDA).
 */
void kiln_power_spectrum_cpu(float *power, const float *frames, int T, int n_fft);

/*
 * Data movement (kernels/cpu/copy.c). The CPU tables use these for both
 * "ref" and "cpu": they are memory-bound copies that a decoder step does on
 * a few rows, where one thread is as fast as the pool.
 */

/**
 * Token embedding plus position: for row r,
 *   out[r, c] = tok_emb[tok[r], c] + pos_emb[pos[r], c]
 * tok_emb is [V, C], pos_emb [n_ctx, C], tok and pos [N], out [N, C].
 */
void kiln_embed_cpu(float *out, const float *tok_emb, const float *pos_emb, const int *tok,
                    const int *pos, int N, int C);

/**
 * Appends one key and one value per row to its own cache (a decoder step):
 *   kt[r][c * ldkt + pos[r]] = k[r * ldx + c]   (keys stored transposed)
 *   v[r][pos[r] * ldv + c]   = val[r * ldx + c]
 * for c < C. kt and v are [N] pointers (rows may share a cache only at
 * different positions).
 */
void kiln_kv_append_cpu(float *const *kt, int ldkt, float *const *v, int ldv, const float *k,
                        const float *val, int ldx, const int *pos, int N, int C);

/** out[i, :] = inp[idx[i], :] for i < N; rows of C floats. out must not alias inp. */
void kiln_gather_rows_cpu(float *out, const float *inp, const int *idx, int N, int C);

/** x[n, t] += bias[n] for x [N, T] (a bias on the rows of a transposed output). */
void kiln_add_rowbias_cpu(float *x, const float *bias, int N, int T);

/**
 * Strided copy of \p rows rows of \p cols floats: dst[i * ldd + j] =
 * src[i * lds + j] (cudaMemcpy2D's contract). dst and src must not overlap.
 */
void kiln_copy2d_cpu(float *dst, size_t ldd, const float *src, size_t lds, int rows, int cols);

/** out[c, r] = inp[r, c]: inp [R, C] -> out [C, R]. out must not alias inp. */
void kiln_transpose_cpu(float *out, const float *inp, int R, int C);

/*
 * Ragged batches (kernels/cpu/ragged.c): B sequences of different lengths
 * stored back to back, time-major, sequence b in rows [off[b], off[b+1])
 * of one [off[B], C] buffer, with no padding between them. A convolution
 * reads zeros past either end of its own sequence, so each sequence's
 * result is what it would be alone (the batch needs no mask, and its
 * output does not depend on what else is in it).
 */

/**
 * The im2col matrix of rows r0 .. r0+nr-1 of a dilated "same" convolution
 * (padding dil * (K - 1) / 2 each side) with a leaky ReLU of \p slope on its
 * input (1: identity): for row r of sequence b and tap k,
 *   out[(r - r0), k * C + c] = act(inp[r + k * dil - pad, c])
 * when r + k * dil - pad is inside [off[b], off[b+1]), else 0.
 * out is [nr, K * C]; with weight [OC, K, C] (k-major) matmul(out, weight)
 * is the convolution. off has B + 1 entries.
 */
void kiln_im2col_cpu(float *out, const float *inp, const int *off, int B, int r0, int nr, int C,
                     int K, int dil, float slope);

/**
 * The scatter half of a transposed convolution (stride \p stride, padding
 * \p pad), written as a gather: y is [in_off[B], K * OC], the product of
 * the input rows with the weight re-laid [K * OC, C]; for output row o of
 * sequence b (local time u = o - out_off[b]),
 *   out[o, oc] = bias[oc] + sum y[in_off[b] + t, k * OC + oc]
 * over the taps k with u + pad - k = t * stride, 0 <= t < T_b (the
 * sequence's input length). out is [n_out, OC], n_out = out_off[B]; bias
 * is optional. Sums in increasing k.
 */
void kiln_col2im_cpu(float *out, const float *y, const float *bias, const int *in_off,
                     const int *out_off, int B, int n_out, int OC, int K, int stride, int pad);

/** out[i] = act(inp[i]) (kiln_act_t \p kind with \p param) for n values; in place is fine. */
void kiln_act_cpu(float *out, const float *inp, size_t n, int kind, float param);

/**
 * WaveNet's gated unit: out[n, c] = tanh(inp[n, c]) * sigmoid(inp[n, C + c])
 * for inp [N, 2C], out [N, C]. out must not alias inp.
 */
void kiln_gate_cpu(float *out, const float *inp, int N, int C);

/** out[i] = a * x[i] + b * y[i] for n values; out may alias x or y. */
void kiln_axpby_cpu(float *out, float a, const float *x, float b, const float *y, size_t n);

/**
 * VITS self-attention with relative positions (keys and values of
 * distance -W .. W, shared across heads) within each sequence of a ragged
 * batch: qkv [N, 3C] (q | k | v, C = H * D), out [N, C], rel_k, rel_v
 * [2W + 1, D]. For row i, head h, keys j of the same sequence:
 *   s_j = (q_i / sqrt(D)) . k_j + (|j - i| <= W ? (q_i / sqrt(D)) . rel_k[j - i + W] : 0)
 *   out_i = sum_j softmax(s)_j (v_j + (|j - i| <= W ? rel_v[j - i + W] : 0))
 */
void kiln_rel_attention_cpu(float *out, const float *qkv, const float *rel_k, const float *rel_v,
                            const int *off, int B, int N, int H, int D, int W);

/**
 * Depthwise convolution (weight [C, K], bias [C] optional) with dilation
 * and "same" padding dil * (K - 1) / 2, within each sequence of a ragged
 * batch: out[r, c] = b[c] + sum_k w[c * K + k] * inp[r + k * dil - pad, c]
 * (zero outside the sequence). out must not alias inp.
 */
void kiln_dwconv_cpu(float *out, const float *inp, const float *w, const float *b,
                     const int *off, int B, int N, int C, int K, int dil);

/**
 * The inverse of a rational-quadratic spline with linear tails (neural
 * spline flows; the VITS duration predictor's ConvFlow) on one value:
 * uw, uh [bins] unnormalised widths and heights, ud [bins - 1] inner
 * derivatives, tails outside [-tail, tail] (identity there). bins <= 32.
 */
float kiln_rq_spline_inverse(float x, const float *uw, const float *uh, const float *ud,
                             int bins, float tail);

/**
 * x[n] = kiln_rq_spline_inverse(x[n]; p[n * ldp ..]) for n < N, the row's
 * parameters p = widths [bins] | heights [bins] | derivatives [bins - 1],
 * widths and heights multiplied by \p scale first (1 / sqrt(filter
 * channels) in VITS).
 */
void kiln_spline_inv_cpu(float *x, const float *p, int ldp, int N, int bins, float tail,
                         float scale);

/**
 * The monotonic expansion of VITS: frame n takes the statistics of id
 * idx[n] (stats [*, 2C]: mean | log-scale):
 *   out[n, c] = stats[idx[n], c] + noise[n, c] * exp(stats[idx[n], C + c]) * scale
 * (noise [N, C]; computed in that order).
 */
void kiln_expand_cpu(float *out, const float *stats, const int *idx, const float *noise, int N,
                     int C, float scale);

/**
 * Packs weight[OC, C] (a dense layer's PyTorch layout) into panels of 16
 * output rows: dst[p, c, i] = weight[16p + i, c] (0 past OC), so that one
 * vector load gives 16 outputs' weights for input feature c. dst holds
 * kiln_packed_size(OC, C) floats.
 */
void kiln_pack16_cpu(float *dst, const float *weight, int OC, int C);

/** @returns the floats a packed [OC, C] weight takes: ceil(OC / 16) * 16 * C. */
size_t kiln_packed_size(int OC, int C);

/**
 * out[N, OC] = inp[N, C] @ W^T + bias, W given packed by kiln_pack16_cpu().
 * Meant for few rows (a decoder step): every panel is read once for each
 * group of 8 rows, so the weights stream from memory once per step.
 */
void kiln_matmul_packed_cpu(float *out, const float *inp, const float *wp, const float *bias,
                            int N, int C, int OC);

/* ---- the CPU pool (kernels/cpu/pool.c) ---------------------------------- */

/** A task of kiln_parallel_for(): \p thread is 0 .. kiln_kernels_threads()-1. */
typedef void (*kiln_task_fn)(void *ctx, int task, int thread);

/**
 * Runs fn(ctx, t, thread) for every t in 0 .. n_tasks-1 on the pool and
 * returns when all have run. Called from inside a task, or while another
 * thread's job holds the pool, it runs the tasks inline.
 */
void kiln_parallel_for(int n_tasks, kiln_task_fn fn, void *ctx);

/** @returns the number of threads of the pool (the caller included). */
int kiln_kernels_threads(void);

/**
 * @returns at least \p n floats of scratch owned by the calling thread
 * (slots 0-3 are distinct buffers; 64-byte aligned), valid until the next
 * call with the same slot on this thread; NULL when memory runs out.
 */
float *kiln_scratch(int slot, size_t n);

/**
 * @returns nonzero, and clears the flag, when a fast op could not get its
 * scratch memory since the last call (its output is then not valid): the
 * model fails that batch with KILN_ERR__NOMEM.
 */
int kiln_kernels_take_error(void);

/** Sets the error flag (ops, when scratch memory runs out). */
void kiln_kernels_set_error_(void);

/**
 * Statistics of one row x[0, n) cut in two parts, [0, split) and
 * [split, n) (a decoder's logits: text tokens, then timestamps):
 * the maximum of each part and the first index where it is reached (-1
 * for an empty or all -INFINITY part), and sum exp(x - m) of each part
 * with m = the larger maximum (so log(sum[0] + sum[1]) + m is the row's
 * log-sum-exp). One vectorised pass for the maxima, one for the sums.
 */
typedef struct kiln_row_stats_s {
    float max[2];
    int argmax[2];
    double sum[2];
} kiln_row_stats_t;
void kiln_row_stats(const float *x, int n, int split, kiln_row_stats_t *st);

/* ---- fast CPU ops (kernels/cpu/fast_*.c), the KILN_BACKEND_CPU table --- */

void kiln_matmul_fast(float *out, const float *inp, const float *weight, const float *bias,
                      int N, int C, int OC);
void kiln_matmul_packed_fast(float *out, const float *inp, const float *wp, const float *bias,
                             int N, int C, int OC);
void kiln_layernorm_fast(float *out, const float *inp, const float *weight, const float *bias,
                         int N, int C, float eps);
void kiln_gelu_fast(float *out, const float *inp, size_t n);
void kiln_softmax_fast(float *out, const float *inp, int N, int C);
void kiln_attention_fast(float *out, int ldo, const float *q, int ldq, const float *k, int ldk,
                         const float *v, int ldv, int Tq, int Tk, int H, int D, int causal,
                         float *scratch);
void kiln_attention_kv_fast(float *out, int ldo, const float *q, int ldq,
                            const float *const *kt, int ldkt, const float *const *v, int ldv,
                            const int *Tk, int S, int H, int D, float *scratch);
void kiln_conv1d_fast(float *out, const float *inp, const float *weight, const float *bias,
                      int Tin, int C, int OC, int K, int stride, int pad, float *scratch);
void kiln_add_fast(float *out, const float *a, const float *b, size_t n);

/* ---- dispatch (kernels/dispatch.c) ------------------------------------- */

/** @returns the function table of \p be, or NULL when that backend is not registered. */
const kiln_kernels_t *kiln_kernels_get(kiln_backend_t be);

/** Registers the table of a non-CPU backend (called by the CUDA object at start-up). */
void kiln_kernels_register(kiln_backend_t be, const kiln_kernels_t *table);

/**
 * A backend that could not start says why (the CUDA object, when no GPU
 * is visible); \p why must be a static string.
 */
void kiln_kernels_unavailable(kiln_backend_t be, const char *why);

/**
 * @returns NULL when backend \p be is registered, else why it is not
 * ("this kiln was built without CUDA ...", "no CUDA device is visible ...").
 */
const char *kiln_kernels_why(kiln_backend_t be);

/**
 * Calls on a device table (host_memory 0) one at a time, process-wide: the
 * CUDA backend has one stream and one cuBLAS handle. A model takes the lock
 * around a whole pass; for a host-memory table both are no-ops.
 */
void kiln_kernels_lock(const kiln_kernels_t *kk);
void kiln_kernels_unlock(const kiln_kernels_t *kk);

/**
 * What a model's set_backend() does first: resolves \p backend ("cpu",
 * "cuda", "ref", "auto" = cuda when registered, else cpu; NULL = cpu),
 * checks that it is available, and sets the matmul \p precision (NULL or
 * "": leave it; fp32/tf32/fp16/bf16; ignored by the CPU tables).
 * @returns 0 with *kk and *be set; -1 (bad name or precision) or -2
 *          (backend unavailable) with a message in \p errstr.
 */
int kiln_kernels_pick(const char *backend, const char *precision, const kiln_kernels_t **kk,
                      kiln_backend_t *be, char *errstr, size_t errstr_size);

/** Parses "cpu" / "cuda" / "ref" into *be. @returns 0, or -1 for another name. */
int kiln_backend_parse(const char *name, kiln_backend_t *be);

/** @returns 1 if backend \p be is registered and implements \p op. */
int kiln_kernel_supported(kiln_backend_t be, kiln_op_t op);

/** @returns "cpu" / "cuda" / "ref" / "?". */
const char *kiln_backend_name(kiln_backend_t be);

/**
 * Sets the number of threads of the CPU pool (n <= 0: leave it; default:
 * the CPUs online). Waits for a running op to finish.
 */
void kiln_kernels_set_threads(int n);

/** @returns the normalised mean squared error sum((a-b)^2) / sum(b^2) (0 when both are 0). */
double kiln_nmse(const float *a, const float *ref, size_t n);

#ifdef __cplusplus
}
#endif
#endif
