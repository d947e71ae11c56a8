/*
 * models/voice/voice_int.h - internals of the speech-synthesis engine shared
 * by the loader, the front end and the model (not a public header).
 *
 * Tensors are time-major like everything in kernels/: a sequence of T steps
 * with C channels is [T, C]. Convolution weights are re-laid at load time:
 * [OC, K, C] (k-major, kiln_vkmajor_()) for the convolutions of
 * kiln_vconv1d_(), [K * OC, C] for the transposed ones
 * (kiln_vconv_transpose_()); depthwise ones keep [C, 1, K].
 */
#ifndef KILN_VOICE_INT_H
#define KILN_VOICE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "kiln/err.h"
#include "kiln/voice.h"

#define KILN_VOICE_MAX_LAYERS 16
#define KILN_VOICE_MAX_UPS 6
#define KILN_VOICE_MAX_RES 6 /* resblocks per upsampling stage */
#define KILN_VOICE_MAX_DIL 4 /* convolutions per resblock */
#define KILN_VOICE_MAX_FLOWS 8
#define KILN_VOICE_MAX_WN 8
#define KILN_VOICE_MAX_DDS 6

/* a 1-D convolution: w [oc, ic, k] (or [k * oc, ic] for transposed), b [oc] */
typedef struct kiln_vconv_s {
    float *w, *b;
    int oc, ic, k;
    /* optional second copy of w as [K, C, OC] for kiln_vconv1d_()'s direct
     * path (kiln_vconv_direct_ok_()); set once by kiln_vdirect_prepare_() */
    float *wt;
    /* optional Winograd form F(wm, k) (models/voice/winograd.c): the
     * transformed weights [n, C, OC] (n = wm + k - 1), then AT [wm, n] and
     * BT [n, n]; set once by kiln_vwino_prepare_(), then kiln_vconv1d_()
     * takes that path */
    float *wu;
    int wm;
} kiln_vconv_t;

typedef struct kiln_vln_s {
    float *g, *b;
} kiln_vln_t;

/* dilated depthwise-separable conv stack of the duration predictor */
typedef struct kiln_vdds_s {
    int n;
    kiln_vconv_t sep[KILN_VOICE_MAX_DDS]; /* depthwise, w [C, 1, K] */
    kiln_vconv_t pw[KILN_VOICE_MAX_DDS];  /* 1x1 */
    kiln_vln_t n1[KILN_VOICE_MAX_DDS], n2[KILN_VOICE_MAX_DDS];
} kiln_vdds_t;

typedef struct kiln_venc_layer_s {
    kiln_vconv_t qkv;   /* fused q, k, v: [3C, C, 1] */
    kiln_vconv_t o;
    float *rel_k, *rel_v; /* [2 * window + 1, D] */
    kiln_vln_t n1, n2;
    kiln_vconv_t ffn1, ffn2;
} kiln_venc_layer_t;

typedef struct kiln_vcoupling_s {
    kiln_vconv_t pre, post;
    kiln_vconv_t in[KILN_VOICE_MAX_WN], rs[KILN_VOICE_MAX_WN];
} kiln_vcoupling_t;

typedef struct kiln_vconvflow_s {
    kiln_vconv_t pre, proj;
    kiln_vdds_t dds;
} kiln_vconvflow_t;

typedef struct kiln_vhparams_s {
    int n_vocab, hidden, inter, filter, n_heads, n_layers, kernel, window;
    int n_flows, wn_layers, flow_kernel, flow_dilation;
    int dp_filter, dp_layers, dp_kernel, dp_n_flows, dp_bins;
    float dp_tail_bound;
    int n_ups, ups_rate[KILN_VOICE_MAX_UPS], ups_kernel[KILN_VOICE_MAX_UPS], ups_ch0;
    int n_res, res_kernel[KILN_VOICE_MAX_RES], n_dil, res_dil[KILN_VOICE_MAX_RES][KILN_VOICE_MAX_DIL];
    int gin, n_speakers;
} kiln_vhparams_t;

struct kiln_voice_s {
    kiln_vhparams_t hp;
    char path[512];
    /* front end */
    char espeak_voice[64];
    int sample_rate;
    float noise_scale, length_scale, noise_w;
    int id_bos, id_eos, id_pad;
    /* phoneme_id_map: code point -> id (single-code-point keys, the only kind
     * Piper's espeak voices use) */
    int n_map;
    uint32_t *map_cp;
    int *map_id;
    /* text encoder */
    float *emb;  /* [n_vocab, hidden] */
    kiln_venc_layer_t enc[KILN_VOICE_MAX_LAYERS];
    kiln_vconv_t enc_proj;
    /* duration predictor */
    kiln_vconv_t dp_pre, dp_proj;
    kiln_vdds_t dp_dds;
    float dp_m[2], dp_logs[2];
    kiln_vconvflow_t dp_flow[KILN_VOICE_MAX_FLOWS]; /* in forward order */
    /* flow */
    kiln_vcoupling_t flow[KILN_VOICE_MAX_FLOWS];
    /* decoder */
    kiln_vconv_t conv_pre, conv_post;
    kiln_vconv_t ups[KILN_VOICE_MAX_UPS]; /* w re-laid [k * oc, ic] */
    kiln_vconv_t res[KILN_VOICE_MAX_UPS * KILN_VOICE_MAX_RES][KILN_VOICE_MAX_DIL];
    _Atomic int direct_ready; /* res[][].wt laid out (kiln_vdirect_prepare_()) */
    /* the flow and decoder on a device backend (vits_dev.c); NULL: the CPU */
    struct kiln_vdev_s *dev;
    /* every buffer above, freed together */
    void **bufs;
    int n_bufs, cap_bufs;
};

/* ---- ops (models/voice/ops.c), time-major, on the kernels' CPU backend */

/**
 * out[T, OC] = res + conv(act(inp[T, C])) with dilation \p dil and "same"
 * zero padding dil * (K - 1) / 2 on both sides (what every VITS conv uses);
 * act is the leaky ReLU of \p slope (1: identity), fused into the im2col
 * copy; \p res (optional, [T, OC]) is a residual added to the output and
 * may alias \p out. out must not alias inp. Runs on the kernels' pool in
 * blocks of rows, so each thread's scratch stays bounded whatever T.
 */
void kiln_vconv1d_(float *out, const float *inp, const kiln_vconv_t *cv, int T, int dil,
                   float slope, const float *res);

/**
 * out = scale * (res + res2 + conv(act(inp))): kiln_vconv1d_() with a
 * second residual \p res2 (optional; it may alias out, res then must not)
 * and a scale on the sum, in the same pass (the decoder's mean of its
 * resblocks accumulates this way).
 */
void kiln_vconv1d_ex_(float *out, const float *inp, const kiln_vconv_t *cv, int T, int dil,
                      float slope, const float *res, const float *res2, float scale);

/**
 * Whether kiln_vconv1d_() can take its direct path for \p cv (no im2col,
 * no sgemm: a register-blocked AVX-512 loop over taps and channels, for the
 * narrow convolutions of the decoder's last stages) once cv->wt holds
 * kiln_vconv_direct_layout_()'s copy of the weights.
 */
int kiln_vconv_direct_ok_(const kiln_vconv_t *cv);

/** wt[(k * C + c) * OC + oc] = cv->w[(oc * K + k) * C + c] (cv->w k-major). */
void kiln_vconv_direct_layout_(const kiln_vconv_t *cv, float *wt);

/**
 * Re-lays a conv weight from PyTorch's [OC, C, K] to k-major [OC, K, C], the
 * layout kiln_vconv1d_() takes (its im2col copies whole input rows).
 * \p tmp holds C * K floats.
 */
void kiln_vkmajor_(kiln_vconv_t *cv, float *tmp);

/**
 * o[nt, OC] = a[nt, C] w[C, OC] on the direct AVX-512 loop when OC is 32
 * or 64 and the CPU has AVX-512F. @returns 0 (nothing done) otherwise.
 */
int kiln_vdirect_gemm_(float *o, const float *a, const float *w, int nt, int C, int OC);

/**
 * o[c] = tanh(a[c]) * sigmoid(b[c]), C values (WaveNet's gate): AVX-512F
 * with a polynomial e^x where the CPU has it and C is a multiple of 16
 * (within 1e-6 of tanhf/expf, tests/0607), tanhf and expf otherwise.
 */
void kiln_vgate_row_(float *o, const float *a, const float *b, int C);

/** Whether kiln_vdirect_gemm_() takes [C] x [C, OC] products on this CPU. */
int kiln_vdirect_gemm_ok_(int C, int OC);

/* ---- the Winograd form (models/voice/winograd.c) */

/** The tile size m kiln uses for an odd kernel size K (0: none). */
int kiln_vwino_m_(int K);

/**
 * F(m, K)'s matrices: at [m, n], bt [n, n] (floats), g [n, K] (doubles),
 * n = m + K - 1 <= 12, K <= 9. @returns 0, or -1 for sizes out of range.
 */
int kiln_vwino_matrices_(int m, int K, float *at, float *bt, double *g);

/**
 * Gives \p cv (k-major weights, odd K >= 3, C and OC multiples of 16) its
 * Winograd form F(m, K) in memory of \p v; kiln_vconv1d_() then computes
 * it that way. @returns 0, or -1 (no memory, or a shape it does not take:
 * cv unchanged).
 */
int kiln_vwino_prepare_(kiln_voice_t *v, kiln_vconv_t *cv, int m);

/**
 * The constant AT and BT the AVX-512 transforms use for F(m, n - m + 1)
 * (they must equal kiln_vwino_matrices_()'s). @returns -1 for a size
 * without tables.
 */
int kiln_vwino_tables_(int m, int n, const float **at, const float **bt);

/** Tests: 0 makes the Winograd transforms take their plain C form on any CPU. */
void kiln_vwino_set_simd_(int on);

/** kiln_vconv1d_ex_() for a conv with its Winograd form (cv->wu). */
void kiln_vwino_conv1d_(float *out, const float *inp, const kiln_vconv_t *cv, int T, int dil,
                        float slope, const float *res, const float *res2, float scale);

/** Depthwise conv (w [C, 1, K]) with dilation, same padding. */
void kiln_vdwconv_(float *out, const float *inp, const kiln_vconv_t *cv, int T, int dil);

/**
 * Transposed conv of act(inp) (leaky ReLU of \p slope; 1: identity):
 * inp [T, C] -> out [(T - 1) * stride - 2 * pad + K, OC], w re-laid as
 * [K * OC, C] (kiln_vrelayout_transpose_()). On the kernels' pool.
 */
void kiln_vconv_transpose_(float *out, const float *inp, const kiln_vconv_t *cv, int T,
                           int stride, int pad, float slope);

/** PyTorch ConvTranspose1d weight [C, OC, K] -> [K * OC, C]. */
void kiln_vrelayout_transpose_(float *dst, const float *w, int C, int OC, int K);

/** out = x < 0 ? slope * x : x, n values; in place is fine. */
void kiln_vleaky_(float *out, const float *x, size_t n, float slope);

/**
 * Multi-head self-attention with VITS relative positions (shared across
 * heads): qkv [T, 3C] (q | k | v), out [T, C]; rel_k, rel_v [2W + 1, D].
 * On the kernels' pool (blocks of rows x heads).
 */
void kiln_vrel_attention_(float *out, const float *qkv, const float *rel_k, const float *rel_v,
                          int T, int H, int D, int W);

/* ---- model (models/voice/vits.c) */

/* the noise: xoshiro256** seeded by splitmix64, normals by Box-Muller */
typedef struct kiln_vrng_s {
    uint64_t s[4];
    int has_spare;
    float spare;
} kiln_vrng_t;
void kiln_vrng_seed_(kiln_vrng_t *r, uint64_t seed);
float kiln_vrng_normal_(kiln_vrng_t *r);

/**
 * Text encoder and duration predictor only: frames per id of ids[T] into
 * dur[T] (what the full pass would use with the same noise_w, length_scale
 * and seed). @returns 0, -1 when memory runs out.
 */
int kiln_voice_durations_(kiln_voice_t *v, const int *ids, int T, float noise_w,
                          float length_scale, uint64_t seed, int *dur);

/* ---- device path (models/voice/vits_dev.c) */
typedef struct kiln_vdev_s kiln_vdev_t;

/**
 * B sequences through the whole model on v->dev's backend (models/voice/
 * vits_dev.c): out[b] gets what kiln_vsynth_one_() would give sequence b
 * with the generator seeded at seed + b * 0x9e3779b9 (same durations, the
 * audio to float rounding). order lists the sequences longest first; the
 * flow and decoder run in sub-batches of at most \p max_samples output
 * samples in that order. @returns KILN_OK, KILN_ERR__NOMEM (host or device
 * memory); on failure out[] may hold partial buffers (the caller clears).
 */
kiln_err_t kiln_vdev_synth_(kiln_voice_t *v, const int *const *ids, const int *n_ids, int B,
                            const int *order, float ns, float ls, float nw, uint64_t seed,
                            size_t max_samples, kiln_voice_audio_t *out);

/** Frees a device copy (NULL is fine). */
void kiln_vdev_free_(kiln_vdev_t *d);

/* ---- loader (models/voice/loader.c) */
float *kiln_voice_take_(kiln_voice_t *v, size_t n);

/* ---- front end (models/voice/frontend.c) */
/** @returns the id of code point \p cp, or -1. */
int kiln_voice_map_id_(const kiln_voice_t *v, uint32_t cp);

#endif
