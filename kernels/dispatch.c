/*
 * kernels/dispatch.c - the one dispatch point for compute ops.
 *
 * Each backend is a kiln_kernels_t function table. The CPU tables are
 * static and always present: "cpu" (the fast ops of kernels/cpu/fast_*.c,
 * what models run) and "ref" (the readable references kiln_<op>_cpu, the
 * spec the others are tested against). Other backends (CUDA) register
 * theirs at start-up via kiln_kernels_register(), so this file, and every
 * CPU-only program, needs no CUDA symbol. Models fetch a table once and
 * call through it; KILN_KERNELS=ref in the environment makes
 * kiln_kernels_get(KILN_BACKEND_CPU) return the reference table (to check
 * a model end to end on the reference ops).
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/kernels.h"

/* host memory for the CPU tables */
static void *kiln_cpu_alloc_(size_t n) { return malloc(n ? n : 1); }
static void kiln_cpu_free_(void *p) { free(p); }
static void kiln_cpu_copy_(void *dst, const void *src, size_t n) { memcpy(dst, src, n); }
static void kiln_cpu_sync_(void) {}

/* data movement and the ragged-batch ops: the same functions in both CPU
 * tables (kernels/cpu/copy.c, kernels/cpu/ragged.c) */
#define KILN_CPU_COPY_OPS_                                                                \
    .embed = kiln_embed_cpu, .kv_append = kiln_kv_append_cpu,                            \
    .gather_rows = kiln_gather_rows_cpu, .add_rowbias = kiln_add_rowbias_cpu,            \
    .copy2d = kiln_copy2d_cpu, .transpose = kiln_transpose_cpu, .im2col = kiln_im2col_cpu, \
    .col2im = kiln_col2im_cpu, .act = kiln_act_cpu, .gate = kiln_gate_cpu,                \
    .axpby = kiln_axpby_cpu, .rel_attention = kiln_rel_attention_cpu,                      \
    .dwconv = kiln_dwconv_cpu, .spline_inv = kiln_spline_inv_cpu, .expand = kiln_expand_cpu

static const kiln_kernels_t kiln_kernels_cpu_ = {
    .name = "cpu",
    .matmul = kiln_matmul_fast,
    .layernorm = kiln_layernorm_fast,
    .gelu = kiln_gelu_fast,
    .softmax = kiln_softmax_fast,
    .attention = kiln_attention_fast,
    .conv1d = kiln_conv1d_fast,
    .add = kiln_add_fast,
    .logmel = kiln_logmel_cpu,
    .attention_kv = kiln_attention_kv_fast,
    .matmul_packed = kiln_matmul_packed_fast,
    .power_spectrum = kiln_power_spectrum_cpu,
    .alloc = kiln_cpu_alloc_,
    .free = kiln_cpu_free_,
    .upload = kiln_cpu_copy_,
    .download = kiln_cpu_copy_,
    .sync = kiln_cpu_sync_,
    KILN_CPU_COPY_OPS_,
    .host_memory = 1,
};

/* host_memory 0: a model on "ref" (or KILN_KERNELS=ref) takes the path of a
 * device backend (weights mirrored, inputs uploaded, logits downloaded, all
 * by memcpy), so that path is tested on machines without a GPU */
static const kiln_kernels_t kiln_kernels_ref_ = {
    .name = "ref",
    .matmul = kiln_matmul_cpu,
    .layernorm = kiln_layernorm_cpu,
    .gelu = kiln_gelu_cpu,
    .softmax = kiln_softmax_cpu,
    .attention = kiln_attention_cpu,
    .conv1d = kiln_conv1d_cpu,
    .add = kiln_add_cpu,
    .logmel = kiln_logmel_cpu,
    .attention_kv = kiln_attention_kv_cpu,
    .matmul_packed = kiln_matmul_packed_cpu,
    .power_spectrum = kiln_power_spectrum_cpu,
    .alloc = kiln_cpu_alloc_,
    .free = kiln_cpu_free_,
    .upload = kiln_cpu_copy_,
    .download = kiln_cpu_copy_,
    .sync = kiln_cpu_sync_,
    KILN_CPU_COPY_OPS_,
    .host_memory = 0,
};

static const kiln_kernels_t *kiln_kernels_tab_[KILN_BACKEND__COUNT] = {
    [KILN_BACKEND_CPU] = &kiln_kernels_cpu_,
    [KILN_BACKEND_REF] = &kiln_kernels_ref_,
};

static atomic_int kiln_kernels_err_;

static pthread_mutex_t kiln_kernels_dev_mu_ = PTHREAD_MUTEX_INITIALIZER;

void kiln_kernels_lock(const kiln_kernels_t *kk) {
    if (!kk->host_memory)
        pthread_mutex_lock(&kiln_kernels_dev_mu_);
}

void kiln_kernels_unlock(const kiln_kernels_t *kk) {
    if (!kk->host_memory)
        pthread_mutex_unlock(&kiln_kernels_dev_mu_);
}

const kiln_kernels_t *kiln_kernels_get(kiln_backend_t be) {
    if ((int)be < 0 || be >= KILN_BACKEND__COUNT)
        return NULL;
    if (be == KILN_BACKEND_CPU) {
        const char *e = getenv("KILN_KERNELS");
        if (e && !strcmp(e, "ref"))
            return &kiln_kernels_ref_;
    }
    return kiln_kernels_tab_[be];
}

void kiln_kernels_register(kiln_backend_t be, const kiln_kernels_t *table) {
    if (be == KILN_BACKEND_CUDA)
        kiln_kernels_tab_[be] = table;
}

static const char *kiln_kernels_why_[KILN_BACKEND__COUNT];

void kiln_kernels_unavailable(kiln_backend_t be, const char *why) {
    if ((int)be >= 0 && be < KILN_BACKEND__COUNT)
        kiln_kernels_why_[be] = why;
}

const char *kiln_kernels_why(kiln_backend_t be) {
    if ((int)be < 0 || be >= KILN_BACKEND__COUNT)
        return "unknown backend";
    if (kiln_kernels_tab_[be])
        return NULL;
    if (kiln_kernels_why_[be])
        return kiln_kernels_why_[be];
    return be == KILN_BACKEND_CUDA ? "this kiln was built without CUDA (build it with make CUDA=1)"
                                   : "backend not registered";
}

int kiln_backend_parse(const char *name, kiln_backend_t *be) {
    for (int b = 0; b < KILN_BACKEND__COUNT; b++)
        if (name && !strcmp(name, kiln_backend_name((kiln_backend_t)b))) {
            *be = (kiln_backend_t)b;
            return 0;
        }
    return -1;
}

int kiln_kernels_pick(const char *backend, const char *precision, const kiln_kernels_t **kkp,
                      kiln_backend_t *be, char *errstr, size_t errstr_size) {
    if (backend && !strcmp(backend, "auto")) /* the GPU when there is one */
        backend = kiln_kernels_get(KILN_BACKEND_CUDA) ? "cuda" : "cpu";
    if (!backend)
        backend = "cpu";
    if (kiln_backend_parse(backend, be)) {
        snprintf(errstr, errstr_size, "invalid backend \"%s\": use cpu, cuda or auto", backend);
        return -1;
    }
    const kiln_kernels_t *kk = kiln_kernels_get(*be);
    if (!kk) {
        snprintf(errstr, errstr_size, "could not use backend \"%s\": %s", backend,
                 kiln_kernels_why(*be));
        return -2;
    }
    /* the precision of the matrix products: a CPU table has fp32 only and ignores it */
    if (precision && *precision && strcmp(precision, "fp32") && strcmp(precision, "tf32") &&
        strcmp(precision, "fp16") && strcmp(precision, "bf16")) {
        snprintf(errstr, errstr_size, "invalid precision \"%s\": use fp32, tf32, fp16 or bf16",
                 precision);
        return -1;
    }
    if (precision && *precision && kk->set_precision && kk->set_precision(precision)) {
        snprintf(errstr, errstr_size, "invalid precision \"%s\" for backend \"%s\"", precision,
                 backend);
        return -1;
    }
    *kkp = kk;
    return 0;
}

int kiln_kernels_take_error(void) { return atomic_exchange(&kiln_kernels_err_, 0); }

void kiln_kernels_set_error_(void) { atomic_store(&kiln_kernels_err_, 1); }

int kiln_kernel_supported(kiln_backend_t be, kiln_op_t op) {
    const kiln_kernels_t *kk = kiln_kernels_get(be);
    if (!kk)
        return 0;
    switch (op) {
    case KILN_OP_MATMUL: return kk->matmul != NULL;
    case KILN_OP_LAYERNORM: return kk->layernorm != NULL;
    case KILN_OP_GELU: return kk->gelu != NULL;
    case KILN_OP_SOFTMAX: return kk->softmax != NULL;
    case KILN_OP_ATTENTION: return kk->attention != NULL;
    case KILN_OP_CONV1D: return kk->conv1d != NULL;
    case KILN_OP_ADD: return kk->add != NULL;
    case KILN_OP_LOGMEL: return kk->logmel != NULL;
    case KILN_OP_ATTENTION_KV: return kk->attention_kv != NULL;
    case KILN_OP_MATMUL_PACKED: return kk->matmul_packed != NULL;
    case KILN_OP_POWER_SPECTRUM: return kk->power_spectrum != NULL;
    case KILN_OP_EMBED: return kk->embed != NULL;
    case KILN_OP_KV_APPEND: return kk->kv_append != NULL;
    case KILN_OP_GATHER_ROWS: return kk->gather_rows != NULL;
    case KILN_OP_ADD_ROWBIAS: return kk->add_rowbias != NULL;
    case KILN_OP_COPY2D: return kk->copy2d != NULL;
    case KILN_OP_TRANSPOSE: return kk->transpose != NULL;
    case KILN_OP_IM2COL: return kk->im2col != NULL;
    case KILN_OP_COL2IM: return kk->col2im != NULL;
    case KILN_OP_ACT: return kk->act != NULL;
    case KILN_OP_GATE: return kk->gate != NULL;
    case KILN_OP_AXPBY: return kk->axpby != NULL;
    case KILN_OP_REL_ATTENTION: return kk->rel_attention != NULL;
    case KILN_OP_DWCONV: return kk->dwconv != NULL;
    case KILN_OP_SPLINE_INV: return kk->spline_inv != NULL;
    case KILN_OP_EXPAND: return kk->expand != NULL;
    default: return 0;
    }
}

const char *kiln_backend_name(kiln_backend_t be) {
    switch (be) {
    case KILN_BACKEND_CPU: return "cpu";
    case KILN_BACKEND_CUDA: return "cuda";
    case KILN_BACKEND_REF: return "ref";
    default: return "?";
    }
}

double kiln_nmse(const float *a, const float *ref, size_t n) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    if (den == 0.0)
        return num == 0.0 ? 0.0 : INFINITY;
    return num / den;
}
