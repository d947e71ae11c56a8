// bench/asr_gpu_bench.cu - end-to-end Whisper throughput on one GPU with a
// large-v3-shaped model (random weights of the real shapes: d_model 1280, 20
// heads, 32 + 32 layers, 128 mel bins, 51866 tokens), built by bench/gpu.sh.
//
//   asr_gpu_bench [--batch 1,16,64] [--tokens 100] [--precision fp16]
//                 [--enc-layers 32] [--dec-layers 32] [--reps 3] [--json FILE]
//
// For each batch size B it runs, on the kernels' CUDA table (cuBLAS GEMMs,
// the attention kernels, layernorm/GELU, cuFFT), B 30 s windows through
//   front end  power spectrum (cuFFT) + mel projection + log of 3000 frames
//   encoder    conv stem (k3 s1, k3 s2, GELU) and 32 pre-LN blocks, the
//              attention of each window through cuBLAS (1500 x 1500)
//   cross K/V  each decoder layer's keys (transposed) and values per window
//   decoder    --tokens steps (default 100) for the B windows together: self
//              attention over a growing cache, cross attention, MLP, and the
//              output projection to 51866 logits for every row
// and reports x real time = B * 30 s / wall time (median of --reps passes),
// with each phase's time.
// Decoded tokens are fixed (the step's input embedding is random data): the
// benchmark measures the model's work, not a search; each step computes the
// full logits as a real step would. Activations and caches are fp32; the
// GEMMs use --precision (cuBLAS fp32 accumulate). Peak GPU memory is from
// cudaMemGetInfo. Warm-up: one pass at each batch size before timing.
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kernels/cuda/common.cuh"
#include "kiln/kernels.h"

#define CK(call)                                                                         \
    do {                                                                                 \
        cudaError_t e_ = (call);                                                         \
        if (e_ != cudaSuccess) {                                                         \
            fprintf(stderr, "asr_gpu_bench: %s at %s:%d: %s\n", #call, __FILE__, __LINE__, \
                    cudaGetErrorString(e_));                                             \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

static const int C = 1280, H = 20, D = 64, V = 51866, M = 128, TA = 1500, T0 = 3000;
static const int NFFT = 400, NF = 201;
static int LE = 32, LD = 32, NTOK = 100;
static const kiln_kernels_t *K;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// ---- random weights ------------------------------------------------------

static float *g_pool;
static const size_t POOL = (size_t)1 << 24;

static float *dev_alloc(size_t n) {
    float *p = (float *)K->alloc(n * sizeof(float));
    if (!p) {
        fprintf(stderr, "asr_gpu_bench: out of GPU memory (%zu floats)\n", n);
        exit(2);
    }
    return p;
}

// A device tensor of n values: offset + scale * uniform(-1, 1) from the pool.
static float *dev_rand(size_t n, float scale, float offset) {
    static size_t at = 0;
    float *d = dev_alloc(n);
    const size_t chunk = (size_t)1 << 22;
    float *h = (float *)malloc(sizeof(float) * (n < chunk ? n : chunk));
    for (size_t i = 0; i < n; i += chunk) {
        size_t m = n - i < chunk ? n - i : chunk;
        for (size_t j = 0; j < m; j++)
            h[j] = offset + scale * g_pool[(at + j * 7) % POOL];
        at = (at + 1234567) % POOL;
        K->upload(d + i, h, m * sizeof(float));
    }
    free(h);
    return d;
}

typedef struct {
    float *ln1_g, *ln1_b, *w_qkv, *b_qkv, *w_o, *b_o, *ln2_g, *ln2_b, *w1, *b1, *w2, *b2;
    float *lnx_g, *lnx_b, *wx_q, *bx_q, *wx_kv, *bx_kv, *wx_o, *bx_o; // decoder only
} layer_t;

static layer_t *g_enc, *g_dec;
static float *g_conv1_w, *g_conv1_b, *g_conv2_w, *g_conv2_b, *g_enc_pos, *g_enc_ln_g, *g_enc_ln_b;
static float *g_emb, *g_dec_ln_g, *g_dec_ln_b, *g_filters;

static void make_layer(layer_t *L, int dec) {
    const float w = 0.02f;
    L->ln1_g = dev_rand(C, 0.05f, 1);
    L->ln1_b = dev_rand(C, 0.02f, 0);
    L->w_qkv = dev_rand((size_t)3 * C * C, w, 0);
    L->b_qkv = dev_rand((size_t)3 * C, w, 0);
    L->w_o = dev_rand((size_t)C * C, w, 0);
    L->b_o = dev_rand(C, w, 0);
    L->ln2_g = dev_rand(C, 0.05f, 1);
    L->ln2_b = dev_rand(C, 0.02f, 0);
    L->w1 = dev_rand((size_t)4 * C * C, w, 0);
    L->b1 = dev_rand((size_t)4 * C, w, 0);
    L->w2 = dev_rand((size_t)4 * C * C, w, 0);
    L->b2 = dev_rand(C, w, 0);
    if (!dec)
        return;
    L->lnx_g = dev_rand(C, 0.05f, 1);
    L->lnx_b = dev_rand(C, 0.02f, 0);
    L->wx_q = dev_rand((size_t)C * C, w, 0);
    L->bx_q = dev_rand(C, w, 0);
    L->wx_kv = dev_rand((size_t)2 * C * C, w, 0);
    L->bx_kv = dev_rand((size_t)2 * C, w, 0);
    L->wx_o = dev_rand((size_t)C * C, w, 0);
    L->bx_o = dev_rand(C, w, 0);
}

// ---- small kernels the table does not have -------------------------------

// Appends row b's key (transposed) and value at column/row pos of its cache.
__global__ static void kv_append_kernel(float *const *kt, float *const *v, const float *qkv,
                                        int ldq, int C_, int tmax, int pos) {
    const int b = blockIdx.x;
    const float *row = qkv + (size_t)b * ldq;
    for (int c = threadIdx.x; c < C_; c += blockDim.x) {
        kt[b][(size_t)c * tmax + pos] = row[C_ + c];
        v[b][(size_t)pos * C_ + c] = row[2 * C_ + c];
    }
}

__global__ static void fill_int_kernel(int *p, int n, int v) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        p[i] = v;
}

// kt[c, t] += bias[c]
__global__ static void add_row_bias_kernel(float *kt, const float *bias, int rows, int cols) {
    size_t n = (size_t)rows * cols;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        kt[i] += bias[i / cols];
}

// ---- one batch -------------------------------------------------------------

typedef struct {
    double front, enc, cross, dec, total;
    size_t peak_bytes;
} times_t;

static void sync_check(const char *what) {
    K->sync();
    if (kiln_kernels_take_error()) {
        fprintf(stderr, "asr_gpu_bench: a kernel failed during %s\n", what);
        exit(1);
    }
}

static times_t run_batch(int B) {
    times_t t = {0, 0, 0, 0, 0, 0};
    const size_t N = (size_t)B * TA;
    const int tmax = NTOK + 4;
    size_t free0, total;
    CK(cudaMemGetInfo(&free0, &total));
    // buffers
    float *frames = dev_rand((size_t)B * T0 * NFFT, 0.1f, 0);
    float *power = dev_alloc((size_t)T0 * NF), *melT = dev_alloc((size_t)M * T0);
    float *mel = dev_rand((size_t)T0 * M, 1.0f, 0); // time-major mel for the stem
    float *x = dev_alloc(N * C), *h = dev_alloc(N * C), *qkv = dev_alloc(N * 3 * C);
    float *att = dev_alloc(N * C), *f = dev_alloc(N * 4 * C), *h1 = dev_alloc((size_t)T0 * C);
    float *col = dev_alloc((size_t)TA * C * 3 > (size_t)T0 * M * 3 ? (size_t)TA * C * 3
                                                                     : (size_t)T0 * M * 3);
    float *scr = dev_alloc((size_t)TA * TA);
    float *xk = dev_alloc((size_t)B * LD * C * TA), *xv = dev_alloc((size_t)B * LD * C * TA);
    float *sk = dev_alloc((size_t)B * LD * C * tmax), *sv = dev_alloc((size_t)B * LD * C * tmax);
    float *dx = dev_alloc((size_t)B * C), *dh = dev_alloc((size_t)B * C);
    float *dq = dev_alloc((size_t)B * 3 * C), *da = dev_alloc((size_t)B * C);
    float *df = dev_alloc((size_t)B * 4 * C), *logits = dev_alloc((size_t)B * V);
    // per-layer pointer arrays (device) for attention_kv and the cache append
    float **p_sk = (float **)K->alloc(sizeof(float *) * B * LD);
    float **p_sv = (float **)K->alloc(sizeof(float *) * B * LD);
    float **p_xk = (float **)K->alloc(sizeof(float *) * B * LD);
    float **p_xv = (float **)K->alloc(sizeof(float *) * B * LD);
    int *p_tk = (int *)K->alloc(sizeof(int) * B), *p_ta = (int *)K->alloc(sizeof(int) * B);
    if (!p_sk || !p_sv || !p_xk || !p_xv || !p_tk || !p_ta) {
        fprintf(stderr, "asr_gpu_bench: out of GPU memory\n");
        exit(2);
    }
    float **hp = (float **)malloc(sizeof(float *) * B * LD);
    int *ht = (int *)malloc(sizeof(int) * B);
    for (int l = 0; l < LD; l++)
        for (int b = 0; b < B; b++)
            hp[l * B + b] = sk + ((size_t)b * LD + l) * C * tmax;
    K->upload(p_sk, hp, sizeof(float *) * B * LD);
    for (int l = 0; l < LD; l++)
        for (int b = 0; b < B; b++)
            hp[l * B + b] = sv + ((size_t)b * LD + l) * C * tmax;
    K->upload(p_sv, hp, sizeof(float *) * B * LD);
    for (int l = 0; l < LD; l++)
        for (int b = 0; b < B; b++)
            hp[l * B + b] = xk + ((size_t)b * LD + l) * C * TA;
    K->upload(p_xk, hp, sizeof(float *) * B * LD);
    for (int l = 0; l < LD; l++)
        for (int b = 0; b < B; b++)
            hp[l * B + b] = xv + ((size_t)b * LD + l) * C * TA;
    K->upload(p_xv, hp, sizeof(float *) * B * LD);
    for (int b = 0; b < B; b++)
        ht[b] = TA;
    K->upload(p_ta, ht, sizeof(int) * B);
    float *hx = (float *)malloc(sizeof(float) * B * C);
    for (int i = 0; i < B * C; i++)
        hx[i] = g_pool[(i * 13) % POOL];
    float *dx0 = dev_alloc((size_t)B * C);
    K->upload(dx0, hx, sizeof(float) * B * C);
    cudaStream_t st = kiln_cuda_ctx()->stream; // the table's stream: our kernels go there too
    sync_check("setup");
    double t0 = now_s();

    // front end: power spectrum + log-mel of each window's 3000 frames
    for (int b = 0; b < B; b++) {
        K->power_spectrum(power, frames + (size_t)b * T0 * NFFT, T0, NFFT);
        K->logmel(melT, power, g_filters, T0, NF, M);
    }
    sync_check("front end");
    double t1 = now_s();

    // encoder: stem per window, then the blocks over all B windows
    for (int b = 0; b < B; b++) {
        float *xb = x + (size_t)b * TA * C;
        K->conv1d(h1, mel, g_conv1_w, g_conv1_b, T0, M, C, 3, 1, 1, col);
        K->gelu(h1, h1, (size_t)T0 * C);
        K->conv1d(xb, h1, g_conv2_w, g_conv2_b, T0, C, C, 3, 2, 1, col);
        K->gelu(xb, xb, (size_t)TA * C);
        K->add(xb, xb, g_enc_pos, (size_t)TA * C);
    }
    for (int l = 0; l < LE; l++) {
        layer_t *L = &g_enc[l];
        K->layernorm(h, x, L->ln1_g, L->ln1_b, (int)N, C, 1e-5f);
        K->matmul(qkv, h, L->w_qkv, L->b_qkv, (int)N, C, 3 * C);
        for (int b = 0; b < B; b++) {
            float *q = qkv + (size_t)b * TA * 3 * C;
            K->attention(att + (size_t)b * TA * C, C, q, 3 * C, q + C, 3 * C, q + 2 * C, 3 * C,
                         TA, TA, H, D, 0, scr);
        }
        K->matmul(h, att, L->w_o, L->b_o, (int)N, C, C);
        K->add(x, x, h, N * C);
        K->layernorm(h, x, L->ln2_g, L->ln2_b, (int)N, C, 1e-5f);
        K->matmul(f, h, L->w1, L->b1, (int)N, C, 4 * C);
        K->gelu(f, f, N * 4 * C);
        K->matmul(h, f, L->w2, L->b2, (int)N, 4 * C, C);
        K->add(x, x, h, N * C);
    }
    K->layernorm(x, x, g_enc_ln_g, g_enc_ln_b, (int)N, C, 1e-5f);
    sync_check("encoder");
    double t2 = now_s();

    // cross-attention keys (transposed) and values of every window and layer
    for (int l = 0; l < LD; l++)
        for (int b = 0; b < B; b++) {
            layer_t *L = &g_dec[l];
            const float *eb = x + (size_t)b * TA * C;
            float *kt = xk + ((size_t)b * LD + l) * C * TA, *vb = xv + ((size_t)b * LD + l) * C * TA;
            K->matmul(kt, L->wx_kv, eb, NULL, C, C, TA);
            add_row_bias_kernel<<<1024, 256, 0, st>>>(kt, L->bx_kv, C, TA);
            K->matmul(vb, eb, L->wx_kv + (size_t)C * C, L->bx_kv + C, TA, C, C);
        }
    sync_check("cross K/V");
    double t3 = now_s();

    // decoder: NTOK steps for the B rows
    for (int s = 0; s < NTOK; s++) {
        // the step's token + position embedding, and the cache length, without a sync
        CK(cudaMemcpyAsync(dx, dx0, sizeof(float) * B * C, cudaMemcpyDeviceToDevice, st));
        fill_int_kernel<<<1, 256, 0, st>>>(p_tk, B, s + 1);
        for (int l = 0; l < LD; l++) {
            layer_t *L = &g_dec[l];
            K->layernorm(dh, dx, L->ln1_g, L->ln1_b, B, C, 1e-5f);
            K->matmul(dq, dh, L->w_qkv, L->b_qkv, B, C, 3 * C);
            kv_append_kernel<<<B, 256, 0, st>>>(p_sk + (size_t)l * B, p_sv + (size_t)l * B, dq, 3 * C,
                                         C, tmax, s);
            K->attention_kv(da, C, dq, 3 * C, (const float *const *)(p_sk + (size_t)l * B), tmax,
                            (const float *const *)(p_sv + (size_t)l * B), C, p_tk, B, H, D, NULL);
            K->matmul(dh, da, L->w_o, L->b_o, B, C, C);
            K->add(dx, dx, dh, (size_t)B * C);
            K->layernorm(dh, dx, L->lnx_g, L->lnx_b, B, C, 1e-5f);
            K->matmul(dq, dh, L->wx_q, L->bx_q, B, C, C);
            K->attention_kv(da, C, dq, C, (const float *const *)(p_xk + (size_t)l * B), TA,
                            (const float *const *)(p_xv + (size_t)l * B), C, p_ta, B, H, D, NULL);
            K->matmul(dh, da, L->wx_o, L->bx_o, B, C, C);
            K->add(dx, dx, dh, (size_t)B * C);
            K->layernorm(dh, dx, L->ln2_g, L->ln2_b, B, C, 1e-5f);
            K->matmul(df, dh, L->w1, L->b1, B, C, 4 * C);
            K->gelu(df, df, (size_t)B * 4 * C);
            K->matmul(dh, df, L->w2, L->b2, B, 4 * C, C);
            K->add(dx, dx, dh, (size_t)B * C);
        }
        K->layernorm(dh, dx, g_dec_ln_g, g_dec_ln_b, B, C, 1e-5f);
        K->matmul(logits, dh, g_emb, NULL, B, C, V);
    }
    sync_check("decoder");
    double t4 = now_s();
    size_t free1;
    CK(cudaMemGetInfo(&free1, &total));
    t.front = t1 - t0;
    t.enc = t2 - t1;
    t.cross = t3 - t2;
    t.dec = t4 - t3;
    t.total = t4 - t0;
    t.peak_bytes = total - free1;
    float *bufs[] = {frames, power, melT, mel, x, h, qkv, att, f, h1, col, scr, xk, xv, sk, sv,
                     dx, dh, dq, da, df, logits, dx0};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
        K->free(bufs[i]);
    K->free(p_sk);
    K->free(p_sv);
    K->free(p_xk);
    K->free(p_xv);
    K->free(p_tk);
    K->free(p_ta);
    free(hp);
    free(ht);
    free(hx);
    (void)free0;
    return t;
}

int main(int argc, char **argv) {
    int batches[8] = {1, 16, 64}, nb = 3, reps = 3;
    const char *prec = "fp16", *json = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batch") && i + 1 < argc) {
            nb = 0;
            for (char *t = strtok(argv[++i], ","); t && nb < 8; t = strtok(NULL, ","))
                batches[nb++] = atoi(t);
        } else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) {
            NTOK = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--precision") && i + 1 < argc) {
            prec = argv[++i];
        } else if (!strcmp(argv[i], "--enc-layers") && i + 1 < argc) {
            LE = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--dec-layers") && i + 1 < argc) {
            LD = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--json") && i + 1 < argc) {
            json = argv[++i];
        } else {
            fprintf(stderr, "usage: asr_gpu_bench [--batch 1,16,64] [--tokens 100] "
                            "[--precision fp32|tf32|fp16|bf16] [--enc-layers 32] "
                            "[--dec-layers 32] [--reps 2] [--json FILE]\n");
            return 2;
        }
    }
    K = kiln_kernels_get(KILN_BACKEND_CUDA);
    if (!K) {
        fprintf(stderr, "asr_gpu_bench: no CUDA backend (no GPU visible?)\n");
        return 77;
    }
    if (K->set_precision(prec)) {
        fprintf(stderr, "asr_gpu_bench: unknown precision %s\n", prec);
        return 2;
    }
    cudaDeviceProp prop;
    int dev = 0, drv = 0, rt = 0;
    CK(cudaGetDevice(&dev));
    CK(cudaGetDeviceProperties(&prop, dev));
    cudaDriverGetVersion(&drv);
    int clock_khz = 0;
    if (cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, dev) != cudaSuccess)
        clock_khz = 0;
    cudaRuntimeGetVersion(&rt);
    fprintf(stderr, "asr_gpu_bench: %s, driver %d, runtime %d, precision %s, %d+%d layers, "
            "%d tokens per window\n", prop.name, drv, rt, prec, LE, LD, NTOK);
    // weights
    double tw = now_s();
    g_pool = (float *)malloc(sizeof(float) * POOL);
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < POOL; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        g_pool[i] = (float)((double)(s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    }
    g_conv1_w = dev_rand((size_t)C * M * 3, 0.05f, 0);
    g_conv1_b = dev_rand(C, 0.02f, 0);
    g_conv2_w = dev_rand((size_t)C * C * 3, 0.02f, 0);
    g_conv2_b = dev_rand(C, 0.02f, 0);
    g_enc_pos = dev_rand((size_t)TA * C, 0.5f, 0);
    g_enc_ln_g = dev_rand(C, 0.05f, 1);
    g_enc_ln_b = dev_rand(C, 0.02f, 0);
    g_emb = dev_rand((size_t)V * C, 0.05f, 0);
    g_dec_ln_g = dev_rand(C, 0.05f, 1);
    g_dec_ln_b = dev_rand(C, 0.02f, 0);
    g_filters = dev_rand((size_t)M * NF, 0.01f, 0.01f);
    g_enc = (layer_t *)calloc(LE, sizeof(layer_t));
    g_dec = (layer_t *)calloc(LD, sizeof(layer_t));
    for (int l = 0; l < LE; l++)
        make_layer(&g_enc[l], 0);
    for (int l = 0; l < LD; l++)
        make_layer(&g_dec[l], 1);
    sync_check("weights");
    fprintf(stderr, "asr_gpu_bench: weights ready in %.1f s\n", now_s() - tw);

    FILE *js = json ? fopen(json, "w") : NULL;
    char host[256] = "unknown";
    gethostname(host, sizeof(host) - 1);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char date[32];
    strftime(date, sizeof(date), "%Y-%m-%d", &tm);
    if (js)
        fprintf(js, "{\"bench\":\"asr-gpu\",\"machine\":\"%s\",\"date\":\"%s\",\"params\":{"
                    "\"gpu\":\"%s\",\"driver\":%d,\"cuda_runtime\":%d,\"sm_clock_khz\":%d,"
                    "\"precision\":\"%s\",\"storage\":\"fp32\",\"model\":\"large-v3 shape, "
                    "random weights\",\"enc_layers\":%d,\"dec_layers\":%d,\"tokens_per_window\":%d,"
                    "\"window_s\":30,\"reps\":%d},\"results\":[",
                host, date, prop.name, drv, rt, clock_khz, prec, LE, LD, NTOK, reps);
    printf("large-v3-shaped Whisper on %s (%s GEMMs, fp32 storage), %d tokens per 30 s window\n",
           prop.name, prec, NTOK);
    printf("  %6s %10s %10s %10s %10s %10s %12s %10s\n", "batch", "front s", "encoder s",
           "cross s", "decoder s", "total s", "x real time", "GPU GB");
    for (int i = 0; i < nb; i++) {
        int B = batches[i];
        run_batch(B); // warm-up (cuBLAS heuristics, cuFFT plan)
        times_t all[16];
        int n = reps < 1 ? 1 : reps > 16 ? 16 : reps;
        for (int r = 0; r < n; r++)
            all[r] = run_batch(B);
        for (int a = 1; a < n; a++) /* sort by total, take the median pass */
            for (int b = a; b > 0 && all[b].total < all[b - 1].total; b--) {
                times_t tmp = all[b];
                all[b] = all[b - 1];
                all[b - 1] = tmp;
            }
        times_t best = all[n / 2];
        double xrt = B * 30.0 / best.total;
        printf("  %6d %10.3f %10.3f %10.3f %10.3f %10.3f %12.1f %10.1f\n", B, best.front,
               best.enc, best.cross, best.dec, best.total, xrt, best.peak_bytes / 1e9);
        fflush(stdout);
        if (js)
            fprintf(js, "%s{\"batch\":%d,\"front_s\":%.6f,\"encoder_s\":%.6f,\"cross_kv_s\":%.6f,"
                        "\"decoder_s\":%.6f,\"total_s\":%.6f,\"x_realtime\":%.3f,"
                        "\"gpu_mem_gb\":%.3f}",
                    i ? "," : "", B, best.front, best.enc, best.cross, best.dec, best.total, xrt,
                    best.peak_bytes / 1e9);
    }
    if (js) {
        fprintf(js, "]}\n");
        fclose(js);
    }
    return 0;
}
