/*
 * kernels/dispatch.c - the one dispatch point for compute ops.
 *
 * Each backend is a kiln_kernels_t function table. The CPU table is static
 * and always present; other backends (CUDA) register theirs at start-up via
 * kiln_kernels_register(), so this file, and every CPU-only program, needs
 * no CUDA symbol. Models fetch a table once and call through it.
 */
#include <cblas.h>
#include <math.h>

#include "kiln/kernels.h"

static const kiln_kernels_t kiln_kernels_cpu_ = {
    .name = "cpu",
    .matmul = kiln_matmul_cpu,
    .layernorm = kiln_layernorm_cpu,
    .gelu = kiln_gelu_cpu,
    .softmax = kiln_softmax_cpu,
    .attention = kiln_attention_cpu,
    .conv1d = kiln_conv1d_cpu,
    .add = kiln_add_cpu,
    .logmel = kiln_logmel_cpu,
};

static const kiln_kernels_t *kiln_kernels_tab_[KILN_BACKEND__COUNT] = {
    [KILN_BACKEND_CPU] = &kiln_kernels_cpu_,
};

const kiln_kernels_t *kiln_kernels_get(kiln_backend_t be) {
    if ((int)be < 0 || be >= KILN_BACKEND__COUNT)
        return NULL;
    return kiln_kernels_tab_[be];
}

void kiln_kernels_register(kiln_backend_t be, const kiln_kernels_t *table) {
    if (be > KILN_BACKEND_CPU && be < KILN_BACKEND__COUNT)
        kiln_kernels_tab_[be] = table;
}

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
    default: return 0;
    }
}

const char *kiln_backend_name(kiln_backend_t be) {
    switch (be) {
    case KILN_BACKEND_CPU: return "cpu";
    case KILN_BACKEND_CUDA: return "cuda";
    default: return "?";
    }
}

void kiln_kernels_set_threads(int n) {
    if (n > 0)
        openblas_set_num_threads(n);
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
