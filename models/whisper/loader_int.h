/*
 * models/whisper/loader_int.h - what the three Whisper format loaders
 * (ct2.c, ggml.c, hf.c) share on top of whisper_int.h's tensor table: a
 * tensor copy by printf-formatted name, and one view of the twelve fields
 * that encoder and decoder layers have in common, so a single bind loop over
 * both sides serves each format. Internal, header-only (static inline).
 */
#ifndef KILN_WHISPER_LOADER_INT_H
#define KILN_WHISPER_LOADER_INT_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include "models/whisper/whisper_int.h"

/* The rank and shape arguments of kiln_wcopyf_: KILN_WSHAPE(3 * C, C). */
#define KILN_WSHAPE(...)                                                                 \
    (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[]){__VA_ARGS__}

/*
 * Copies the tensor named by fmt, ... into dst as fp32 through
 * kiln_wtab_copy (shape check, f16/bf16/int8 -> f32); dst NULL only checks.
 * @returns 0, or -1 with a message naming the file and the tensor.
 */
static inline int kiln_wcopyf_(const kiln_wtab_t *tab, char *errstr, size_t errstr_size,
                               float *dst, int rank, const int64_t *shape, const char *fmt,
                               ...)
    __attribute__((format(printf, 7, 8)));
static inline int kiln_wcopyf_(const kiln_wtab_t *tab, char *errstr, size_t errstr_size,
                               float *dst, int rank, const int64_t *shape, const char *fmt,
                               ...) {
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof(name), fmt, ap);
    va_end(ap);
    return kiln_wtab_copy(tab, name, rank, shape, dst, errstr, errstr_size);
}

/*
 * In a bind function with `tab`, `errstr` and `errstr_size` in scope:
 *   KILN_WCOPY(L.w_o, KILN_WSHAPE(C, C), "encoder/layer_%d/...", l);
 * copies the tensor or returns -1 from the enclosing function.
 */
#define KILN_WCOPY(dst, ...)                                                             \
    do {                                                                                 \
        if (kiln_wcopyf_(tab, errstr, errstr_size, dst, __VA_ARGS__))                    \
            return -1;                                                                   \
    } while (0)

/* The fields every encoder and decoder layer has (kiln_wenc_layer_t's). */
typedef struct kiln_wlayer_view_s {
    float *ln1_g, *ln1_b, *w_qkv, *b_qkv, *w_o, *b_o;
    float *ln2_g, *ln2_b, *w_fc1, *b_fc1, *w_fc2, *b_fc2;
} kiln_wlayer_view_t;

#define KILN_WLAYER_VIEW_(L)                                                             \
    ((kiln_wlayer_view_t){(L)->ln1_g, (L)->ln1_b, (L)->w_qkv, (L)->b_qkv, (L)->w_o,        \
                          (L)->b_o, (L)->ln2_g, (L)->ln2_b, (L)->w_fc1, (L)->b_fc1,      \
                          (L)->w_fc2, (L)->b_fc2})

/* @returns the common fields of encoder (side 0) or decoder (side 1) layer
 * l; all NULL before kiln_whisper_alloc_weights_(). */
static inline kiln_wlayer_view_t kiln_wlayer_view_(const kiln_whisper_model_t *m, int side,
                                                   int l) {
    if (side && m->dec)
        return KILN_WLAYER_VIEW_(&m->dec[l]);
    if (!side && m->enc)
        return KILN_WLAYER_VIEW_(&m->enc[l]);
    return (kiln_wlayer_view_t){0};
}

#endif
