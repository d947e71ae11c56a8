/*
 * bench/voice_convs.c - one-thread timings of the voice's CPU convolutions
 * (kiln_vconv1d_()) on en_US-joe-medium's shapes, random weights, each conv
 * over the rows one second of audio gives it (86 frames; the decoder's
 * stages at 8x, 64x and 256x; the encoder at 40 ids): the plain path
 * (im2col + sgemm), the direct AVX-512 loop where the shape has one, and
 * the Winograd form (models/voice/winograd.c), interleaved, the best of 15.
 * Prints a table and the Winograd form's speed-up over the faster of the
 * other two; the largest difference of its output from the plain path's.
 *
 *   make build/bench/voice_convs && build/bench/voice_convs
 *
 * CPU only; a ratio measured on the machine it runs on.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kiln/kernels.h"
#include "models/voice/voice_int.h"

static double vc_now_(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static float vc_rnd_(void) { return (float)rand() / (float)RAND_MAX - 0.5f; }

typedef struct vc_shape_s {
    const char *name;
    int C, OC, K, d, T;
} vc_shape_t;

static const vc_shape_t vc_shapes_[] = {
    {"dec stage0 k3 d1", 128, 128, 3, 1, 688},   {"dec stage0 k5 d2", 128, 128, 5, 2, 688},
    {"dec stage0 k7 d3", 128, 128, 7, 3, 688},   {"dec stage1 k3 d1", 64, 64, 3, 1, 5504},
    {"dec stage1 k5 d6", 64, 64, 5, 6, 5504},    {"dec stage1 k7 d12", 64, 64, 7, 12, 5504},
    {"dec stage2 k3 d1", 32, 32, 3, 1, 22016},   {"dec stage2 k5 d2", 32, 32, 5, 2, 22016},
    {"dec stage2 k7 d3", 32, 32, 7, 3, 22016},   {"flow WN k5", 192, 384, 5, 1, 86},
    {"conv_pre k7", 192, 256, 7, 1, 86},         {"enc ffn1 k3", 192, 768, 3, 1, 40},
    {"enc ffn2 k3", 768, 192, 3, 1, 40},
};

int main(int argc, char **argv) {
    if (argc > 1) {
        fprintf(argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) ? stdout
                                                                                  : stderr,
                "usage: voice_convs\n\nOne-thread timings of the voice's CPU convolutions: "
                "im2col + sgemm, the direct AVX-512 loop, the Winograd form.\n");
        return argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) ? 0 : 2;
    }
    srand(1);
    kiln_kernels_set_threads(1);
    struct kiln_voice_s *v = calloc(1, sizeof(*v)); /* only its buffer list is used */
    if (!v)
        return 1;
    printf("%-18s %4s %4s %2s %2s %6s | %9s %9s %9s | %7s %9s\n", "conv", "C", "OC", "K", "d",
           "T", "im2col ms", "direct ms", "wino ms", "speedup", "max diff");
    for (size_t s = 0; s < sizeof(vc_shapes_) / sizeof(vc_shapes_[0]); s++) {
        const vc_shape_t *sh = &vc_shapes_[s];
        kiln_vconv_t cv = {.oc = sh->OC, .ic = sh->C, .k = sh->K};
        size_t nw = (size_t)sh->OC * sh->C * sh->K, nx = (size_t)sh->T * sh->C;
        size_t ny = (size_t)sh->T * sh->OC;
        cv.w = malloc(nw * sizeof(float));
        cv.b = malloc((size_t)sh->OC * sizeof(float));
        float *x = malloc(nx * sizeof(float)), *y = malloc(ny * sizeof(float));
        float *yw = malloc(ny * sizeof(float)), *wt = malloc(nw * sizeof(float));
        if (!cv.w || !cv.b || !x || !y || !yw || !wt)
            return 1;
        for (size_t i = 0; i < nw; i++)
            cv.w[i] = vc_rnd_() * 2.0f / sqrtf((float)(sh->C * sh->K));
        for (int i = 0; i < sh->OC; i++)
            cv.b[i] = vc_rnd_();
        for (size_t i = 0; i < nx; i++)
            x[i] = vc_rnd_() * 4.0f;
        kiln_vconv_t dc = cv, wc = cv;
        int direct = kiln_vconv_direct_ok_(&cv);
        if (direct) {
            kiln_vconv_direct_layout_(&cv, wt);
            dc.wt = wt;
        }
        if (kiln_vwino_prepare_(v, &wc, kiln_vwino_m_(sh->K)))
            return 1;
        double best[3] = {1e9, 1e9, 1e9};
        for (int r = 0; r < 15; r++) {
            const kiln_vconv_t *cs[3] = {&cv, &dc, &wc};
            for (int p = 0; p < 3; p++) {
                if (p == 1 && !direct)
                    continue;
                double t = vc_now_();
                kiln_vconv1d_(p == 2 ? yw : y, x, cs[p], sh->T, sh->d, 0.1f, NULL);
                t = vc_now_() - t;
                best[p] = t < best[p] ? t : best[p];
            }
        }
        kiln_vconv1d_(y, x, &cv, sh->T, sh->d, 0.1f, NULL);
        double md = 0;
        for (size_t i = 0; i < ny; i++)
            md = fabs((double)yw[i] - y[i]) > md ? fabs((double)yw[i] - y[i]) : md;
        char dbuf[16];
        snprintf(dbuf, sizeof(dbuf), direct ? "%.3f" : "-", best[1] * 1e3);
        double other = direct && best[1] < best[0] ? best[1] : best[0];
        printf("%-18s %4d %4d %2d %2d %6d | %9.3f %9s %9.3f | %6.2fx %9.2g\n", sh->name, sh->C,
               sh->OC, sh->K, sh->d, sh->T, best[0] * 1e3, dbuf, best[2] * 1e3, other / best[2],
               md);
        free(cv.w), free(cv.b), free(x), free(y), free(yw), free(wt);
    }
    for (int i = 0; i < v->n_bufs; i++)
        free(v->bufs[i]);
    free(v->bufs);
    free(v);
    return 0;
}
