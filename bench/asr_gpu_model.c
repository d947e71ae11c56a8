/*
 * bench/asr_gpu_model.c - end-to-end throughput of the real Whisper model
 * code (kiln_whisper_transcribe: log-mel, encoder, cross K/V, decoder with
 * KV caches, greedy search with the logit rules) on a random-weight model
 * of a real shape, on any backend (bench/gpu.sh runs it on CUDA).
 *
 *   asr_gpu_model [--shape large-v3|tiny] [--layers N] [--backend cuda]
 *                 [--precision fp16[,fp32...]] [--batch 1,16,64] [--tokens 100]
 *                 [--reps 2] [--threads N] [--json PATH]
 *
 * Each run transcribes `batch` inputs of 30 s of noise (one window each)
 * with max_batch = batch, greedy, no timestamps, no fallback, the language
 * forced (no detection pass) and EOT suppressed, so that every window
 * decodes exactly --tokens tokens. One warm-up run at batch 1 first (CUDA
 * start-up, workspace allocation); then per batch size the best of --reps
 * runs. x_realtime = batch * 30 s / wall time. The log-mel front end runs
 * on the CPU inside that time (kiln_whisper_log_mel takes host memory); it
 * is also timed alone on the same inputs, and model_x_realtime leaves it
 * out. Several precisions run one after the other on the same weights (a
 * row per precision and batch). The JSON is rewritten after every row, so
 * a run stopped by a timeout leaves a valid file with the rows so far.
 * With KILN_WHISPER_PROFILE=1 the model prints its phase times.
 *
 * Build: make CUDA=1 build-cuda/bench/asr_gpu_model (any BUILD; without
 * CUDA=1 it runs on the CPU only), or bench/gpu.sh on a GPU machine.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kiln/kernels.h"
#include "kiln/whisper.h"
#include "models/whisper/whisper_int.h"

#define SR 16000
#define WIN_S 30

static double now_(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int parse_list_(const char *s, int *out, int max) {
    int n = 0;
    while (*s && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 4096)
            return -1;
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return n;
}

/* the JSON document: header fields, then the rows so far */
typedef struct {
    const char *path;
    char head[1024];
    char *rows;
    size_t len;
} bench_json_t;

/* Appends a row and rewrites the file. @returns 0, or -1 when it cannot be written. */
static int json_row_(bench_json_t *j, const char *row) {
    if (!j->path)
        return 0;
    size_t add = strlen(row) + 2;
    char *r = realloc(j->rows, j->len + add + 1);
    if (!r)
        return -1;
    j->rows = r;
    j->len += (size_t)snprintf(j->rows + j->len, add + 1, "%s%s", j->len ? ", " : "", row);
    FILE *fp = fopen(j->path, "w");
    if (!fp)
        return -1;
    fprintf(fp, "%s\"results\": [%s]}\n", j->head, j->rows);
    return fclose(fp);
}

static void usage_(void) {
    fprintf(stderr, "usage: asr_gpu_model [--shape large-v3|tiny] [--layers N] [--backend B] "
                    "[--precision P] [--batch 1,16,64] [--tokens N] [--reps N] [--threads N] "
                    "[--json PATH]\n");
}

/* One timed transcribe of n inputs. @returns wall seconds, or -1 on failure. */
static double run_(const kiln_whisper_model_t *m, const kiln_whisper_params_t *p, float **pcm,
                   const size_t *ns, int n, long *tokens) {
    kiln_whisper_result_t *r = calloc((size_t)n, sizeof(*r));
    if (!r)
        return -1;
    double t0 = now_();
    kiln_err_t e = kiln_whisper_transcribe(m, p, (const float *const *)pcm, ns, n, r);
    double t = now_() - t0;
    *tokens = 0;
    for (int i = 0; i < n; i++) {
        if (r[i].err != KILN_OK && e == KILN_OK)
            e = r[i].err;
        *tokens += r[i].n_tokens;
        kiln_whisper_result_clear(&r[i]);
    }
    free(r);
    if (e != KILN_OK) {
        fprintf(stderr, "asr_gpu_model: could not transcribe: %s\n", kiln_err2str(e));
        return -1;
    }
    return t;
}

int main(int argc, char **argv) {
    const char *shape = "large-v3", *backend = "cuda", *precision = "fp16", *json = NULL;
    int batches[16] = {1, 16, 64}, n_b = 3, tokens = 100, reps = 2, layers = 0, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            usage_();
            return 2;
        }
        i++;
        if (!strcmp(a, "--shape")) shape = v;
        else if (!strcmp(a, "--layers")) layers = atoi(v);
        else if (!strcmp(a, "--backend")) backend = v;
        else if (!strcmp(a, "--precision")) precision = v;
        else if (!strcmp(a, "--batch")) n_b = parse_list_(v, batches, 16);
        else if (!strcmp(a, "--tokens")) tokens = atoi(v);
        else if (!strcmp(a, "--reps")) reps = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--json")) json = v;
        else {
            usage_();
            return 2;
        }
    }
    kiln_whisper_hparams_t hp;
    if (!strcmp(shape, "large-v3"))
        hp = (kiln_whisper_hparams_t){51866, 1500, 1280, 20, 32, 448, 1280, 20, 32, 128};
    else if (!strcmp(shape, "tiny"))
        hp = (kiln_whisper_hparams_t){51864, 1500, 384, 6, 4, 448, 384, 6, 4, 80};
    else {
        usage_();
        return 2;
    }
    if (layers > 0)
        hp.n_audio_layer = hp.n_text_layer = layers;
    if (n_b <= 0 || tokens < 1 || tokens > 220 || reps < 1) {
        usage_();
        return 2;
    }
    if (threads > 0)
        kiln_kernels_set_threads(threads);
    char err[512];
    double t0 = now_();
    kiln_whisper_model_t *m = kiln_whisper_model_random_(&hp, 1, err, sizeof(err));
    if (!m) {
        fprintf(stderr, "asr_gpu_model: %s\n", err);
        return 1;
    }
    double t_make = now_() - t0;
    t0 = now_();
    char first[16];
    snprintf(first, sizeof(first), "%.*s", (int)strcspn(precision, ","), precision);
    if (kiln_whisper_model_set_backend(m, backend, first, err, sizeof(err)) != KILN_OK) {
        fprintf(stderr, "asr_gpu_model: %s\n", err);
        kiln_whisper_model_destroy(m);
        return 1;
    }
    double t_up = now_() - t0;
    printf("# model %s (%d+%d layers, width %d, %d mels, vocab %d): made in %.1f s, "
           "backend %s (%s) in %.1f s\n",
           shape, hp.n_audio_layer, hp.n_text_layer, hp.n_audio_state, hp.n_mels, hp.n_vocab,
           t_make, kiln_whisper_model_backend(m), precision, t_up);
    int maxb = 1;
    for (int i = 0; i < n_b; i++)
        maxb = batches[i] > maxb ? batches[i] : maxb;
    /* inputs: 30 s of noise each (no digital silence: such windows are skipped) */
    const size_t n_s = (size_t)WIN_S * SR;
    float **pcm = calloc((size_t)maxb, sizeof(float *));
    size_t *ns = calloc((size_t)maxb, sizeof(size_t));
    uint64_t s = 7;
    for (int i = 0; pcm && ns && i < maxb; i++) {
        ns[i] = n_s;
        if (!(pcm[i] = malloc(sizeof(float) * n_s)))
            break;
        for (size_t k = 0; k < n_s; k++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            pcm[i][k] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5) * 0.2f;
        }
    }
    kiln_whisper_params_t p = kiln_whisper_greedy_params();
    p.n_threads = threads;
    p.max_new_tokens = tokens;
    p.suppress_eot = 1;
    p.timestamps = 0;
    p.no_speech_threshold = 2.0f;
    p.no_speech_skip = 2.0f;
    p.compression_ratio_threshold = 0.0f;
    p.language = hp.n_vocab >= 51865 ? "l0" : NULL;
    bench_json_t J = {.path = json};
    snprintf(J.head, sizeof(J.head),
             "{\"bench\": \"asr-gpu-model\", \"code\": \"kiln_whisper_transcribe\", "
             "\"shape\": \"%s\", \"layers\": [%d, %d], \"width\": %d, \"mels\": %d, "
             "\"vocab\": %d, \"weights\": \"random\", \"backend\": \"%s\", "
             "\"precision\": \"%s\", \"tokens_per_window\": %d, \"window_s\": %d, "
             "\"model_make_s\": %.3f, \"upload_s\": %.3f, ",
             shape, hp.n_audio_layer, hp.n_text_layer, hp.n_audio_state, hp.n_mels, hp.n_vocab,
             kiln_whisper_model_backend(m), precision, tokens, WIN_S, t_make, t_up);
    long ntok;
    p.max_batch = 1;
    double tw = run_(m, &p, pcm, ns, 1, &ntok); /* warm-up */
    printf("# warm-up (batch 1): %.2f s, %ld tokens\n", tw, ntok);
    int rc = tw < 0;
    char precs[64], *save = NULL;
    snprintf(precs, sizeof(precs), "%s", precision);
    for (char *pr = strtok_r(precs, ",", &save); pr && !rc; pr = strtok_r(NULL, ",", &save)) {
    /* the first precision was set with the weights; the next ones change only the mode */
    const char *used = strcmp(kiln_whisper_model_backend(m), "cuda") ? "fp32" : pr;
    if (kiln_whisper_model_set_backend(m, backend, pr, err, sizeof(err)) != KILN_OK) {
        fprintf(stderr, "asr_gpu_model: %s\n", err);
        rc = 1;
        break;
    }
    for (int bi = 0; bi < n_b && !rc; bi++) {
        int B = batches[bi];
        p.max_batch = B;
        double best = 1e30;
        for (int r = 0; r < reps && !rc; r++) {
            double t = run_(m, &p, pcm, ns, B, &ntok);
            if (t < 0)
                rc = 1;
            else if (t < best)
                best = t;
        }
        if (rc)
            break;
        /* the CPU front end alone, on the same inputs */
        double tm0 = now_();
        for (int i = 0; i < B; i++) {
            float *mel = NULL;
            int nf = 0;
            if (kiln_whisper_log_mel(m, pcm[i], ns[i], &mel, &nf) == KILN_OK)
                free(mel);
        }
        double t_mel = now_() - tm0, audio = (double)B * WIN_S;
        double model_s = best - t_mel > 1e-9 ? best - t_mel : 1e-9;
        printf("%s batch %3d: %7.3f s for %d x %d s (%ld tokens): %7.1f x real time, %8.0f "
               "tokens/s; log-mel %.3f s, model alone %7.1f x real time\n",
               used, B, best, B, WIN_S, ntok, audio / best, ntok / best, t_mel, audio / model_s);
        if (ntok != (long)B * tokens)
            printf("# note: %ld tokens, expected %ld\n", ntok, (long)B * tokens);
        char row[512];
        snprintf(row, sizeof(row),
                 "{\"precision\": \"%s\", \"batch\": %d, \"audio_s\": %.1f, "
                 "\"wall_s\": %.4f, \"tokens\": %ld, \"x_realtime\": %.2f, "
                 "\"tokens_per_s\": %.1f, \"logmel_s\": %.4f, \"model_x_realtime\": %.2f, "
                 "\"reps\": %d}",
                 used, B, audio, best, ntok, audio / best, ntok / best, t_mel, audio / model_s,
                 reps);
        if (json_row_(&J, row)) {
            fprintf(stderr, "asr_gpu_model: could not write \"%s\"\n", json);
            rc = 1;
        }
        fflush(stdout);
    }
    }
    free(J.rows);
    for (int i = 0; pcm && i < maxb; i++)
        free(pcm[i]);
    free(pcm);
    free(ns);
    kiln_whisper_model_destroy(m);
    return rc;
}
