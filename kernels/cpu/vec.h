/*
 * kernels/cpu/vec.h - 16-lane float vectors for the fast CPU ops (not a
 * public header).
 *
 * The fast ops (kernels/cpu/fast_*.c) are plain C written on GCC's vector
 * extensions (`float __attribute__((vector_size(64)))`), not on intrinsics:
 * the compiler lowers a 16-lane vector to one AVX-512 register, two AVX2
 * registers or four SSE registers. Functions marked KILN_VEC_FN are built
 * three times (x86-64-v4, x86-64-v3, baseline) and the loader picks the
 * best one for the CPU at start-up (GCC target_clones / ifunc), so the
 * Makefile needs no -march flag and the binary runs everywhere.
 *
 * The math helpers below are the single-precision approximations every
 * fast BLAS-side library uses:
 *   kiln_v_exp  Cephes expf: range reduction x = n*ln2 + r, degree-6
 *               polynomial on r, 2^n through the exponent bits; relative
 *               error about 2 ulp; x < -87.3 gives exactly 0 (so -INFINITY,
 *               a masked score, gives 0).
 *   kiln_v_erf  the rational approximation of Eigen/XLA (odd degree-13
 *               numerator, even degree-8 denominator, |x| clamped to 4);
 *               absolute error below 2e-7 against erf().
 * tests/0100-kernels.c checks both against libm.
 */
#ifndef KILN_KERNELS_CPU_VEC_H
#define KILN_KERNELS_CPU_VEC_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#pragma GCC diagnostic ignored "-Wpsabi"

#define KILN_VL 16 /* lanes */
typedef float kiln_vf __attribute__((vector_size(64)));
typedef int32_t kiln_vi __attribute__((vector_size(64)));

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__) && !defined(KILN_NO_CLONES)
#define KILN_VEC_FN __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define KILN_VEC_FN
#endif

#define KILN_VINL static inline __attribute__((always_inline))

KILN_VINL kiln_vf kiln_v_load(const float *p) {
    kiln_vf v;
    memcpy(&v, p, sizeof(v));
    return v;
}

KILN_VINL void kiln_v_store_p_(float *p, const kiln_vf *v) { memcpy(p, v, sizeof(*v)); }
#define kiln_v_store(p, v) ({ kiln_vf t_ = (v); kiln_v_store_p_((p), &t_); })

KILN_VINL kiln_vf kiln_v_set1(float x) {
    kiln_vf v = {x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x};
    return v;
}

/* Loads n < 16 values, the other lanes set to \p fill. */
KILN_VINL kiln_vf kiln_v_load_part(const float *p, int n, float fill) {
    kiln_vf v = kiln_v_set1(fill);
    for (int i = 0; i < n; i++)
        v[i] = p[i];
    return v;
}

KILN_VINL void kiln_v_store_part_p_(float *p, const kiln_vf *v, int n) {
    for (int i = 0; i < n; i++)
        p[i] = (*v)[i];
}
#define kiln_v_store_part(p, v, n) ({ kiln_vf t_ = (v); kiln_v_store_part_p_((p), &t_, (n)); })

KILN_VINL float kiln_v_hsum_p_(const kiln_vf *v) {
    float s = 0.0f;
    for (int i = 0; i < KILN_VL; i++)
        s += (*v)[i];
    return s;
}
#define kiln_v_hsum(v) ({ kiln_vf t_ = (v); kiln_v_hsum_p_(&t_); })

KILN_VINL float kiln_v_hmax_p_(const kiln_vf *v) {
    float m = (*v)[0];
    for (int i = 1; i < KILN_VL; i++)
        m = (*v)[i] > m ? (*v)[i] : m;
    return m;
}
#define kiln_v_hmax(v) ({ kiln_vf t_ = (v); kiln_v_hmax_p_(&t_); })

/* lane-wise max / min (statement expressions: GCC warns about passing
 * 64-byte vectors by value to a function, even an inlined one) */
#define kiln_v_max(a, b)                                                                 \
    ({                                                                                   \
        kiln_vf a_ = (a), b_ = (b);                                                      \
        kiln_vi gt_ = a_ > b_;                                                           \
        (kiln_vf)((gt_ & (kiln_vi)a_) | (~gt_ & (kiln_vi)b_));                           \
    })
#define kiln_v_min(a, b)                                                                 \
    ({                                                                                   \
        kiln_vf a_ = (a), b_ = (b);                                                      \
        kiln_vi lt_ = a_ < b_;                                                           \
        (kiln_vf)((lt_ & (kiln_vi)a_) | (~lt_ & (kiln_vi)b_));                           \
    })

/* floor() of each lane (|x| < 2^31). */
KILN_VINL kiln_vf kiln_v_floor_p_(const kiln_vf *xp) {
    kiln_vf x = *xp;
    kiln_vf t = __builtin_convertvector(__builtin_convertvector(x, kiln_vi), kiln_vf);
    kiln_vi gt = t > x; /* -1 where truncation rounded up */
    return t + __builtin_convertvector(gt, kiln_vf);
}
#define kiln_v_floor(x) ({ kiln_vf t_ = (x); kiln_v_floor_p_(&t_); })

/* e^x (Cephes expf); lanes below -87.33 give 0, lanes above 88 give e^88. */
KILN_VINL kiln_vf kiln_v_exp_p_(const kiln_vf *xp) {
    kiln_vf x = *xp;
    const kiln_vi under = x < -87.33654f;
    x = kiln_v_min(x, kiln_v_set1(88.0f));
    x = kiln_v_max(x, kiln_v_set1(-87.33654f));
    kiln_vf fx = kiln_v_floor(x * 1.44269504088896341f + 0.5f);
    x = x - fx * 0.693359375f;
    x = x - fx * -2.12194440e-4f;
    kiln_vf z = x * x;
    kiln_vf y = kiln_v_set1(1.9875691500E-4f);
    y = y * x + 1.3981999507E-3f;
    y = y * x + 8.3334519073E-3f;
    y = y * x + 4.1665795894E-2f;
    y = y * x + 1.6666665459E-1f;
    y = y * x + 5.0000001201E-1f;
    y = y * z + x + 1.0f;
    kiln_vi e = (__builtin_convertvector(fx, kiln_vi) + 127) << 23;
    y = y * (kiln_vf)e;
    return (kiln_vf)((kiln_vi)y & ~under);
}
#define kiln_v_exp(x) ({ kiln_vf tx_ = (x); kiln_v_exp_p_(&tx_); })

/* erf(x), Eigen's generic_fast_erf_float. */
KILN_VINL kiln_vf kiln_v_erf_p_(const kiln_vf *xp) {
    kiln_vf x = *xp;
    x = kiln_v_min(x, kiln_v_set1(4.0f));
    x = kiln_v_max(x, kiln_v_set1(-4.0f));
    kiln_vf x2 = x * x;
    kiln_vf p = kiln_v_set1(-2.72614225801306e-10f);
    p = p * x2 + 2.77068142495902e-08f;
    p = p * x2 + -2.10102402082508e-06f;
    p = p * x2 + -5.69250639462346e-05f;
    p = p * x2 + -7.34990630326855e-04f;
    p = p * x2 + -2.95459980854025e-03f;
    p = p * x2 + -1.60960333262415e-02f;
    p = p * x;
    kiln_vf q = kiln_v_set1(-1.45660718464996e-05f);
    q = q * x2 + -2.13374055278905e-04f;
    q = q * x2 + -1.68282697438203e-03f;
    q = q * x2 + -7.37332916720468e-03f;
    q = q * x2 + -1.42647390514189e-02f;
    return p / q;
}
#define kiln_v_erf(x) ({ kiln_vf tx_ = (x); kiln_v_erf_p_(&tx_); })

/* GELU(x) = x/2 (1 + erf(x/sqrt 2)) */
#define kiln_v_gelu(x)                                                                   \
    ({                                                                                   \
        kiln_vf gx_ = (x);                                                               \
        0.5f * gx_ * (1.0f + kiln_v_erf(gx_ * 0.70710678118654752f));                    \
    })

/* Softmax of one row of n values (y may equal x); a row of -INFINITY gives zeros. */
KILN_VINL void kiln_v_softmax_row(float *y, const float *x, int n) {
    const int nv = n & ~(KILN_VL - 1);
    kiln_vf mv = kiln_v_set1(-INFINITY);
    int i = 0;
    for (; i < nv; i += KILN_VL)
        mv = kiln_v_max(mv, kiln_v_load(x + i));
    float mx = kiln_v_hmax(mv);
    for (; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    if (mx == -INFINITY) {
        for (i = 0; i < n; i++)
            y[i] = 0.0f;
        return;
    }
    kiln_vf acc = kiln_v_set1(0.0f);
    for (i = 0; i < nv; i += KILN_VL) {
        kiln_vf e = kiln_v_exp(kiln_v_load(x + i) - mx);
        kiln_v_store(y + i, e);
        acc += e;
    }
    if (i < n) {
        kiln_vf e = kiln_v_exp(kiln_v_load_part(x + i, n - i, -INFINITY) - mx);
        kiln_v_store_part(y + i, e, n - i);
        acc += e;
    }
    const float inv = 1.0f / kiln_v_hsum(acc);
    for (i = 0; i < nv; i += KILN_VL)
        kiln_v_store(y + i, kiln_v_load(y + i) * inv);
    for (; i < n; i++)
        y[i] *= inv;
}

#endif
